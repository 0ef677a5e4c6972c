//! The clock the kernel stamps BPF events with, read from userspace.

/// `CLOCK_MONOTONIC` in ns: the clock of `bpf_ktime_get_ns`, so userspace times compare with
/// event timestamps.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
