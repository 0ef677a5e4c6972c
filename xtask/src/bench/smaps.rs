//! Where a process's resident memory lives, from `/proc/PID/smaps`: the brk heap, other
//! anonymous mappings (glibc's per-thread arenas, large allocations, thread stacks), BPF maps
//! mapped into the process (the ring buffer), files (the binary's own code and data, paged in
//! as code paths first run) and the main stack. A soak that sees RSS step can then say whether
//! the step is allocator memory, which a leak would grow without end, or code and maps, which
//! are bounded by the binary and the maps' sizes.

use std::fmt;

use anyhow::{Context, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RssByKind {
    pub(super) heap: u64,
    pub(super) anon: u64,
    pub(super) bpf: u64,
    pub(super) file: u64,
    pub(super) stack: u64,
}

impl RssByKind {
    /// Column names, in the order of `values`.
    pub(super) const KINDS: [&'static str; 5] = ["heap", "anon", "bpf", "file", "stack"];

    pub(super) fn values(&self) -> [u64; 5] {
        [self.heap, self.anon, self.bpf, self.file, self.stack]
    }

    pub(super) fn read(pid: u32) -> Result<RssByKind> {
        let path = format!("/proc/{pid}/smaps");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path} (did the tracer exit?)"))?;
        parse(&text).with_context(|| format!("{path}: unexpected format"))
    }

    fn slot(&mut self, name: &str) -> &mut u64 {
        match name {
            "[heap]" => &mut self.heap,
            "[stack]" => &mut self.stack,
            n if n.starts_with("anon_inode:bpf") || n.starts_with("anon_inode:[bpf") => &mut self.bpf,
            n if n.starts_with('/') => &mut self.file,
            // Unnamed anonymous mappings, and the kernel's [vdso]/[vvar] pages.
            _ => &mut self.anon,
        }
    }
}

/// Sums the `Rss:` line of every mapping into its kind.
fn parse(text: &str) -> Result<RssByKind> {
    let mut by_kind = RssByKind::default();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: range perms offset dev inode [name]; the name may hold spaces.
            current = Some(line.splitn(6, char::is_whitespace).nth(5).map_or("", str::trim));
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).context("an Rss: line without a number")?;
            let name = current.context("an Rss: line before any mapping")?;
            *by_kind.slot(name) += kib;
        }
    }
    Ok(by_kind)
}

impl fmt::Display for RssByKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Self::KINDS.iter().zip(self.values()).map(|(k, v)| format!("{k} {v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_summed_by_kind() {
        let text = "\
55d0c0a00000-55d0c0c00000 r-xp 00000000 fe:01 123 /usr/sbin/mmnotif-trace
Size:               2048 kB
Rss:                 700 kB
55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0 [heap]
Rss:                 300 kB
7f0000000000-7f0004000000 rw-p 00000000 00:00 0 
Rss:                1200 kB
7f0010000000-7f0010800000 r--s 00000000 00:0f 99 anon_inode:bpf-ringbuf
Rss:                  64 kB
7f0020000000-7f0020001000 r--p 00000000 fe:01 7 /usr/lib/with space.so
Rss:                   4 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Rss:                  16 kB
";
        let r = parse(text).unwrap();
        assert_eq!(r, RssByKind { heap: 300, anon: 1200, bpf: 64, file: 704, stack: 16 });
        assert_eq!(r.to_string(), "heap 300 anon 1200 bpf 64 file 704 stack 16");
    }

    #[test]
    fn a_malformed_rss_line_is_an_error() {
        assert!(parse("00-10 r-xp 0 0:0 0 /x\nRss: lots kB\n").is_err());
        assert!(parse("Rss: 4 kB\n").is_err());
    }
}
