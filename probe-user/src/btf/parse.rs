//! A small reader for the kernel's BTF: enough to find struct members and their offsets,
//! including members nested in anonymous structs/unions, in vmlinux and in split module BTF.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("{what}: not BTF (bad magic {magic:#06x})")]
    BadMagic { what: String, magic: u16 },
    #[error("{what}: truncated BTF ({detail})")]
    Truncated { what: String, detail: String },
    #[error("{what}: unknown BTF kind {kind} at type {id}")]
    UnknownKind { what: String, kind: u32, id: u32 },
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("the kernel's BTF has no member {0}.{1}")]
    NoMember(String, String),
}

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
enum Type {
    /// Structs and unions: byte size and members.
    Composite {
        size: u32,
        members: Vec<Member>,
    },
    /// typedef/const/volatile/restrict/type_tag: look through to `0`.
    Alias(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Sized(u32),
    Pointer,
    Other,
}

/// One parsed BTF blob (vmlinux, or a module's split BTF on top of it).
pub(crate) struct Btf {
    /// Types indexed by id - 1 - `first_id` offset handled in `get`.
    types: Vec<Type>,
    names: Vec<u32>,
    strings: Vec<u8>,
    /// The first type id this blob defines (1 for vmlinux; base count + 1 for split BTF).
    first_id: u32,
    /// String offsets below this refer to the base blob.
    first_str: u32,
    base: Option<Box<Btf>>,
    structs_by_name: HashMap<String, u32>,
}

/// Where a member sits: byte offset from the start of the outer struct, and its byte size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberLoc {
    pub offset: u32,
    pub size: u32,
}

fn u32_at(data: &[u8], at: usize, what: &str) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| BtfError::Truncated { what: what.to_string(), detail: format!("reading byte {at}") })
}

impl Btf {
    /// Parses a complete (base) BTF blob, e.g. /sys/kernel/btf/vmlinux.
    pub(crate) fn parse(data: &[u8], what: &str) -> Result<Btf, BtfError> {
        Self::parse_with_base(data, what, None)
    }

    /// The base a split blob continues (`None` for a base blob).
    pub(crate) fn base(&self) -> Option<&Btf> {
        self.base.as_deref()
    }

    /// Parses a module's split BTF, whose type ids and strings continue the base's.
    pub(crate) fn parse_split(data: &[u8], what: &str, base: Btf) -> Result<Btf, BtfError> {
        Self::parse_with_base(data, what, Some(Box::new(base)))
    }

    fn parse_with_base(data: &[u8], what: &str, base: Option<Box<Btf>>) -> Result<Btf, BtfError> {
        let magic = data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { what: what.to_string(), magic });
        }
        let hdr_len = u32_at(data, 4, what)? as usize;
        let type_off = u32_at(data, 8, what)? as usize;
        let type_len = u32_at(data, 12, what)? as usize;
        let str_off = u32_at(data, 16, what)? as usize;
        let str_len = u32_at(data, 20, what)? as usize;
        let types_start = hdr_len + type_off;
        let strings_start = hdr_len + str_off;
        let types_data = data
            .get(types_start..types_start + type_len)
            .ok_or_else(|| BtfError::Truncated { what: what.to_string(), detail: "type section past end".into() })?;
        let strings = data
            .get(strings_start..strings_start + str_len)
            .ok_or_else(|| BtfError::Truncated { what: what.to_string(), detail: "string section past end".into() })?
            .to_vec();
        let (first_id, first_str) = match &base {
            Some(b) => (b.first_id + b.types.len() as u32, b.first_str + b.strings.len() as u32),
            None => (1, 0),
        };

        let mut types = Vec::new();
        let mut names = Vec::new();
        let mut pos = 0usize;
        while pos < types_data.len() {
            let id = first_id + types.len() as u32;
            let name_off = u32_at(types_data, pos, what)?;
            let info = u32_at(types_data, pos + 4, what)?;
            let size_or_type = u32_at(types_data, pos + 8, what)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                KIND_INT => {
                    pos += 4;
                    Type::Sized(size_or_type)
                }
                KIND_PTR => Type::Pointer,
                KIND_ARRAY => {
                    let elem = u32_at(types_data, pos, what)?;
                    let nelems = u32_at(types_data, pos + 8, what)?;
                    pos += 12;
                    Type::Array { elem, nelems }
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let at = pos + i * 12;
                        let raw_offset = u32_at(types_data, at + 8, what)?;
                        members.push(Member {
                            name_off: u32_at(types_data, at, what)?,
                            type_id: u32_at(types_data, at + 4, what)?,
                            // With kind_flag the top byte holds a bitfield size.
                            bit_offset: if kind_flag { raw_offset & 0x00ff_ffff } else { raw_offset },
                        });
                    }
                    pos += vlen * 12;
                    Type::Composite { size: size_or_type, members }
                }
                KIND_ENUM => {
                    pos += vlen * 8;
                    Type::Sized(size_or_type)
                }
                KIND_ENUM64 => {
                    pos += vlen * 12;
                    Type::Sized(size_or_type)
                }
                KIND_FLOAT => Type::Sized(size_or_type),
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => Type::Alias(size_or_type),
                KIND_FWD | KIND_FUNC => Type::Other,
                KIND_FUNC_PROTO => {
                    pos += vlen * 8;
                    Type::Other
                }
                KIND_VAR | KIND_DECL_TAG => {
                    pos += 4;
                    Type::Other
                }
                KIND_DATASEC => {
                    pos += vlen * 12;
                    Type::Other
                }
                _ => return Err(BtfError::UnknownKind { what: what.to_string(), kind, id }),
            };
            types.push(ty);
            names.push(if kind == KIND_STRUCT { name_off } else { 0 });
        }
        if pos != types_data.len() {
            return Err(BtfError::Truncated {
                what: what.to_string(),
                detail: "last type runs past the type section".into(),
            });
        }
        let mut btf = Btf { types, names, strings, first_id, first_str, base, structs_by_name: HashMap::new() };
        for (i, &name_off) in btf.names.iter().enumerate() {
            if name_off == 0 {
                continue;
            }
            let name = btf.name(name_off).to_string();
            // Keep the first definition; duplicates with the same name are identical in vmlinux.
            btf.structs_by_name.entry(name).or_insert(btf.first_id + i as u32);
        }
        btf.names = Vec::new();
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        if off < self.first_str {
            return self.base.as_ref().map_or("", |b| b.name(off));
        }
        let start = (off - self.first_str) as usize;
        let Some(rest) = self.strings.get(start..) else { return "" };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Option<&Type> {
        if id < self.first_id {
            return self.base.as_ref().and_then(|b| b.get(id));
        }
        self.types.get((id - self.first_id) as usize)
    }

    /// Looks through typedefs and qualifiers (bounded: BTF from a bad kernel must not loop us).
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            match self.get(id)? {
                Type::Alias(next) => id = *next,
                other => return Some(other),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> u32 {
        match self.resolve(id) {
            Some(Type::Composite { size, .. }) | Some(Type::Sized(size)) => *size,
            Some(Type::Pointer) => 8,
            Some(Type::Array { elem, nelems }) => self.size_of(*elem).saturating_mul(*nelems),
            _ => 0,
        }
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs_by_name.get(name).copied().or_else(|| self.base.as_ref().and_then(|b| b.struct_id(name)))
    }

    /// True when the BTF defines `struct name`.
    pub(crate) fn has_struct(&self, name: &str) -> bool {
        self.struct_id(name).is_some()
    }

    /// Byte size of `struct name`.
    #[cfg(test)]
    pub(crate) fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(name).ok_or_else(|| BtfError::NoStruct(name.to_string()))?;
        Ok(self.size_of(id))
    }

    /// Offset and size of `struct_name.member`, searching anonymous structs/unions too.
    pub(crate) fn member(&self, struct_name: &str, member: &str) -> Result<MemberLoc, BtfError> {
        let id = self.struct_id(struct_name).ok_or_else(|| BtfError::NoStruct(struct_name.to_string()))?;
        self.find_member(id, member, 0, 0)
            .ok_or_else(|| BtfError::NoMember(struct_name.to_string(), member.to_string()))
    }

    fn find_member(&self, id: u32, wanted: &str, base_bits: u32, depth: u32) -> Option<MemberLoc> {
        if depth > 8 {
            return None;
        }
        let Some(Type::Composite { members, .. }) = self.resolve(id) else { return None };
        for m in members {
            let bits = base_bits + m.bit_offset;
            if m.name_off == 0 {
                if let Some(found) = self.find_member(m.type_id, wanted, bits, depth + 1) {
                    return Some(found);
                }
            } else if self.name(m.name_off) == wanted {
                return Some(MemberLoc { offset: bits / 8, size: self.size_of(m.type_id) });
            }
        }
        None
    }
}
