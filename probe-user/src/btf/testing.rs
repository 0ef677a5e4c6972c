//! Hand-built BTF blobs for unit tests.

use super::parse::Btf;

/// Accumulates a BTF type section and string section.
pub(super) struct BlobBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    str_base: u32,
}

impl BlobBuilder {
    pub(super) fn new(str_base: u32) -> Self {
        BlobBuilder { types: Vec::new(), strings: vec![0], str_base }
    }

    pub(super) fn name(&mut self, s: &str) -> u32 {
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn word(&mut self, w: u32) {
        self.types.extend_from_slice(&w.to_le_bytes());
    }

    fn header(&mut self, name_off: u32, kind: u32, vlen: u32, size_or_type: u32) {
        self.word(name_off);
        self.word((kind << 24) | vlen);
        self.word(size_or_type);
    }

    pub(super) fn int(&mut self, name: &str, size: u32) {
        let n = self.name(name);
        self.header(n, 1, 0, size);
        self.word(size * 8);
    }

    pub(super) fn ptr(&mut self, to: u32) {
        self.header(0, 2, 0, to);
    }

    pub(super) fn array(&mut self, elem: u32, index: u32, nelems: u32) {
        self.header(0, 3, 0, 0);
        self.word(elem);
        self.word(index);
        self.word(nelems);
    }

    pub(super) fn typedef(&mut self, name: &str, to: u32) {
        let n = self.name(name);
        self.header(n, 8, 0, to);
    }

    /// `members`: (name or "" for anonymous, type id, bit offset).
    pub(super) fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) {
        let n = if name.is_empty() { 0 } else { self.name(name) };
        self.header(n, 4, members.len() as u32, size);
        for (mname, ty, bits) in members {
            let mn = if mname.is_empty() { 0 } else { self.name(mname) };
            self.word(mn);
            self.word(*ty);
            self.word(*bits);
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1);
        out.push(0);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(self.types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }

    pub(super) fn strings_len(&self) -> u32 {
        self.strings.len() as u32
    }
}

/// ids: 1 long, 2 int, 3 char, 4 anon struct { long x; int hidden; }, 5 long *, 6 char[16],
/// 7 typedef long_t, 8 struct outer { long_t plain; struct {..}; long *ptr; char name[16]; }
pub(super) fn sample_blob() -> Vec<u8> {
    sample_builder().finish()
}

fn sample_builder() -> BlobBuilder {
    let mut b = BlobBuilder::new(0);
    b.int("long", 8);
    b.int("int", 4);
    b.int("char", 1);
    b.strukt("", 16, &[("x", 1, 0), ("hidden", 2, 64)]);
    b.ptr(1);
    b.array(3, 2, 16);
    b.typedef("long_t", 1);
    b.strukt("outer", 56, &[("plain", 7, 0), ("", 4, 128), ("ptr", 5, 256), ("name", 6, 320)]);
    b
}

pub(super) fn sample_btf() -> Btf {
    Btf::parse(&sample_blob(), "sample").expect("the sample blob is valid")
}

/// A split blob on top of [`sample_btf`]: id 9 struct kvm_like { int count; struct outer embedded; }
pub(super) fn split_sample(_base: &Btf) -> Vec<u8> {
    let mut b = BlobBuilder::new(sample_builder().strings_len());
    b.strukt("kvm_like", 64, &[("count", 2, 0), ("embedded", 8, 64)]);
    b.finish()
}
