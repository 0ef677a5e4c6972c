//! Probe hits the kernel did not run the tracer's programs for, read from the kernel's own
//! counters: nothing reaches the ring buffer for them, so without these a missed call would
//! look like a pairing violation.
//!
//! Two counters, for different mechanisms:
//! * a program's `recursion_misses` (`bpf_prog_info`, 5.12+): the kernel skipped the program
//!   because a BPF program was already active on that CPU. For fentry/fexit that is the
//!   trampoline's per-program recursion guard; for kprobes it is `bpf_prog_active`, which a
//!   userspace map operation also holds (with only migration disabled, so it can be preempted
//!   while holding it), and `trace_call_bpf` counts those skips from 6.7 on; earlier kernels
//!   skip the program without counting.
//! * a kprobe's `missed` (`bpf_link_info.perf_event.kprobe`, 6.7+): the kprobe itself did not
//!   run (re-entered on a CPU already in a kprobe handler) or, for a kretprobe, no instance was
//!   free when the function was entered (`maxactive`).
//!
//! The tracer's own programs and links are the `bpf-prog` and `bpf_link` descriptors of this
//! process, so other tracers on the same host are never counted. Both counters only grow while
//! their object lives, but links and programs go away when a session detaches them: the last
//! value read of each is kept, and [`MissLedger::total`] adds them all up.

use std::{collections::BTreeMap, fs, os::fd::RawFd};

/// The kernel objects a count comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    Program(u32),
    Kprobe(u32),
}

/// The last value read of every counter ever seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct MissLedger {
    last: BTreeMap<Source, u64>,
}

impl MissLedger {
    /// Records a reading; a counter never goes back, so a lower value (an id reused by a new
    /// object after the old one went away) starts a fresh count on top of the old one.
    pub(super) fn record(&mut self, source: Source, value: u64) {
        let slot = self.last.entry(source).or_insert(0);
        *slot = (*slot).max(value);
    }

    pub(super) fn total(&self) -> u64 {
        self.last.values().sum()
    }

    /// Reads every counter of this process's programs and links now.
    pub(super) fn sample(&mut self) {
        for (fd, kind) in own_bpf_fds() {
            let reading = match kind {
                FdKind::Program => program_misses(fd),
                FdKind::Link => kprobe_link_misses(fd),
            };
            if let Some((source, value)) = reading {
                self.record(source, value);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum FdKind {
    Program,
    Link,
}

/// This process's BPF program and link descriptors (`/proc/self/fd`).
fn own_bpf_fds() -> Vec<(RawFd, FdKind)> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
        let target = fs::read_link(entry.path()).ok()?;
        match target.to_str()? {
            "anon_inode:bpf-prog" => Some((fd, FdKind::Program)),
            "anon_inode:bpf_link" => Some((fd, FdKind::Link)),
            _ => None,
        }
    })
    .collect()
}

// uapi/linux/bpf.h (stable ABI): the offsets read here.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// `bpf_prog_info`: `id` (u32) and `recursion_misses` (u64, from 5.12).
const PROG_INFO_ID: usize = 4;
const PROG_INFO_RECURSION_MISSES: usize = 208;
const PROG_INFO_LEN: usize = 256;
/// `bpf_link_info`: `type`, `id`, then the `perf_event` member's `type` and its kprobe's
/// `missed` (from 6.7; a kernel without it leaves the bytes zero).
const LINK_INFO_TYPE: usize = 0;
const LINK_INFO_ID: usize = 4;
const LINK_INFO_PERF_EVENT_TYPE: usize = 16;
const LINK_INFO_KPROBE_MISSED: usize = 48;
const LINK_INFO_LEN: usize = 64;
const BPF_LINK_TYPE_PERF_EVENT: u32 = 7;
const BPF_PERF_EVENT_KPROBE: u32 = 3;
const BPF_PERF_EVENT_KRETPROBE: u32 = 4;

/// `BPF_OBJ_GET_INFO_BY_FD` into `buf`; how many bytes the kernel filled.
fn object_info(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = InfoAttr { bpf_fd: fd as u32, info_len: buf.len() as u32, info: buf.as_mut_ptr() as u64 };
    // SAFETY: `attr` points at `buf`, which is `info_len` bytes long and outlives the call; the
    // kernel writes at most that many bytes and updates `info_len`.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &mut attr as *mut InfoAttr, size_of::<InfoAttr>())
    };
    (rc == 0).then_some(attr.info_len as usize)
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    buf.get(at..at + 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

fn program_misses(fd: RawFd) -> Option<(Source, u64)> {
    let mut buf = [0u8; PROG_INFO_LEN];
    let filled = object_info(fd, &mut buf)?;
    parse_program_info(&buf[..filled.min(PROG_INFO_LEN)])
}

fn kprobe_link_misses(fd: RawFd) -> Option<(Source, u64)> {
    let mut buf = [0u8; LINK_INFO_LEN];
    let filled = object_info(fd, &mut buf)?;
    parse_link_info(&buf[..filled.min(LINK_INFO_LEN)])
}

/// A program's `recursion_misses`; `None` before 5.12 (the kernel's struct ends before it).
fn parse_program_info(info: &[u8]) -> Option<(Source, u64)> {
    (info.len() >= PROG_INFO_RECURSION_MISSES + 8)
        .then(|| (Source::Program(u32_at(info, PROG_INFO_ID)), u64_at(info, PROG_INFO_RECURSION_MISSES)))
}

/// A kprobe or kretprobe link's `missed`; `None` for any other link.
fn parse_link_info(info: &[u8]) -> Option<(Source, u64)> {
    let kprobe = u32_at(info, LINK_INFO_TYPE) == BPF_LINK_TYPE_PERF_EVENT
        && matches!(u32_at(info, LINK_INFO_PERF_EVENT_TYPE), BPF_PERF_EVENT_KPROBE | BPF_PERF_EVENT_KRETPROBE);
    kprobe.then(|| (Source::Kprobe(u32_at(info, LINK_INFO_ID)), u64_at(info, LINK_INFO_KPROBE_MISSED)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(buf: &mut [u8], at: usize, v: u32) {
        buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put64(buf: &mut [u8], at: usize, v: u64) {
        buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn the_ledger_keeps_the_last_value_of_objects_that_went_away() {
        let mut ledger = MissLedger::default();
        ledger.record(Source::Program(7), 2);
        ledger.record(Source::Kprobe(3), 1);
        ledger.record(Source::Program(7), 5);
        assert_eq!(ledger.total(), 6);
        // Program 7 unloaded: no new reading, its 5 still count.
        ledger.record(Source::Kprobe(3), 4);
        assert_eq!(ledger.total(), 9);
        // A reading never lowers a count.
        ledger.record(Source::Kprobe(3), 0);
        assert_eq!(ledger.total(), 9);
    }

    #[test]
    fn program_misses_need_a_kernel_that_has_the_field() {
        let mut info = [0u8; PROG_INFO_LEN];
        put32(&mut info, PROG_INFO_ID, 42);
        put64(&mut info, PROG_INFO_RECURSION_MISSES, 3);
        assert_eq!(parse_program_info(&info), Some((Source::Program(42), 3)));
        // 5.10's bpf_prog_info ends with run_cnt, before recursion_misses.
        assert_eq!(parse_program_info(&info[..PROG_INFO_RECURSION_MISSES]), None);
    }

    #[test]
    fn only_kprobe_links_give_a_kprobe_miss_count() {
        let mut info = [0u8; LINK_INFO_LEN];
        put32(&mut info, LINK_INFO_TYPE, BPF_LINK_TYPE_PERF_EVENT);
        put32(&mut info, LINK_INFO_ID, 9);
        put32(&mut info, LINK_INFO_PERF_EVENT_TYPE, BPF_PERF_EVENT_KRETPROBE);
        put64(&mut info, LINK_INFO_KPROBE_MISSED, 11);
        assert_eq!(parse_link_info(&info), Some((Source::Kprobe(9), 11)));
        // A tracepoint perf link (BPF_PERF_EVENT_TRACEPOINT = 5).
        put32(&mut info, LINK_INFO_PERF_EVENT_TYPE, 5);
        assert_eq!(parse_link_info(&info), None);
        // A raw tracepoint link (BPF_LINK_TYPE_RAW_TRACEPOINT = 1).
        put32(&mut info, LINK_INFO_TYPE, 1);
        put32(&mut info, LINK_INFO_PERF_EVENT_TYPE, BPF_PERF_EVENT_KPROBE);
        assert_eq!(parse_link_info(&info), None);
    }
}
