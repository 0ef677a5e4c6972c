//! Thin wrappers over the memory syscalls the steps use, with errors naming the step.

use std::io;

use super::WorkloadError;

pub(super) const PAGE: u64 = 4096;

fn check(step: &'static str, what: &'static str, ok: bool) -> Result<(), WorkloadError> {
    if ok { Ok(()) } else { Err(WorkloadError::Sys { step, what, err: io::Error::last_os_error() }) }
}

/// An anonymous private mapping; THP is disabled on it so every range the kernel invalidates
/// is the one the step asked for (a huge page split would add its own invalidation).
pub(super) fn map_anon(step: &'static str, len: u64) -> Result<u64, WorkloadError> {
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check(step, "mmap", p != libc::MAP_FAILED)?;
    madvise(step, p as u64, len, libc::MADV_NOHUGEPAGE)?;
    Ok(p as u64)
}

/// Writes one byte per page so every page is populated.
pub(super) fn touch(addr: u64, len: u64) {
    let mut a = addr;
    while a < addr + len {
        // SAFETY: callers pass ranges inside their own read-write mappings.
        unsafe { std::ptr::write_volatile(a as *mut u8, 1) };
        a += PAGE;
    }
}

pub(super) fn madvise(step: &'static str, addr: u64, len: u64, advice: libc::c_int) -> Result<(), WorkloadError> {
    // SAFETY: the range belongs to this process's own mappings.
    check(step, "madvise", unsafe { libc::madvise(addr as *mut _, len as usize, advice) } == 0)
}

pub(super) fn mprotect(step: &'static str, addr: u64, len: u64, prot: libc::c_int) -> Result<(), WorkloadError> {
    // SAFETY: as above.
    check(step, "mprotect", unsafe { libc::mprotect(addr as *mut _, len as usize, prot) } == 0)
}

pub(super) fn munmap(step: &'static str, addr: u64, len: u64) -> Result<(), WorkloadError> {
    // SAFETY: the range is not referenced after this.
    check(step, "munmap", unsafe { libc::munmap(addr as *mut _, len as usize) } == 0)
}

/// mremap(MREMAP_MAYMOVE | MREMAP_DONTUNMAP): moves the pages, leaves the old range mapped.
pub(super) fn mremap_dontunmap(step: &'static str, addr: u64, len: u64) -> Result<u64, WorkloadError> {
    // mremap is variadic: `new_address` is the optional fifth argument, and a call that leaves
    // it out hands the kernel whatever the register it travels in last held. The kernel takes
    // MREMAP_DONTUNMAP through the same path as MREMAP_FIXED (mremap_to), which reads
    // `new_address` (as a placement hint here) and fails with EINVAL when it is not page
    // aligned. So pass it explicitly: NULL, "no preference".
    let no_hint = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: moves pages of this process's own private anonymous mapping.
    let p = unsafe {
        libc::mremap(addr as *mut _, len as usize, len as usize, libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP, no_hint)
    };
    check(step, "mremap", p != libc::MAP_FAILED)?;
    Ok(p as u64)
}

/// One line of /proc/self/smaps condensed to what decides whether fork invalidates a VMA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VmaInfo {
    pub start: u64,
    pub end: u64,
    pub private: bool,
    pub anonymous_kb: u64,
}

/// Parses smaps text: header lines `start-end perms offset dev inode [path]`, then `Key: value`.
pub(super) fn parse_smaps(text: &str) -> Vec<VmaInfo> {
    let mut out: Vec<VmaInfo> = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if let Some((s, e)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16))
        {
            let perms = parts.next().unwrap_or("");
            out.push(VmaInfo { start, end, private: perms.ends_with('p'), anonymous_kb: 0 });
        } else if first == "Anonymous:"
            && let Some(last) = out.last_mut()
        {
            last.anonymous_kb = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mremap_dontunmap_moves_the_pages_and_keeps_the_old_range_mapped() {
        let len = 4 * PAGE;
        let old = map_anon("test", len).expect("mmap");
        touch(old, len);
        let new = mremap_dontunmap("test", old, len).expect("mremap");
        assert_ne!(new, old);
        assert_eq!(new % PAGE, 0);
        // SAFETY: both ranges are this test's own mappings; the old one stays mapped (empty).
        let (moved, left) =
            unsafe { (std::ptr::read_volatile(new as *const u8), std::ptr::read_volatile(old as *const u8)) };
        assert_eq!((moved, left), (1, 0));
        munmap("test", new, len).expect("munmap new");
        munmap("test", old, len).expect("munmap old");
    }

    #[test]
    fn smaps_parsing_keeps_private_flag_and_anonymous_size() {
        let text = "\
55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Anonymous:             8 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 12  /dev/zero
Anonymous:             0 kB
";
        let v = parse_smaps(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], VmaInfo { start: 0x55d0c0a00000, end: 0x55d0c0a21000, private: true, anonymous_kb: 8 });
        assert!(!v[1].private);
    }
}
