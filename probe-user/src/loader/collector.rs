//! Drains the ring buffer and reads the kernel side's per-CPU counters.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use probe_common::{RawEvent, counter};

use super::{LoadError, error_chain, misses::MissLedger};

/// Totals of the kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub attempted: u64,
    /// Records dropped because the ring buffer was full.
    pub lost: u64,
    /// Probe hits the kernel did not run the tracer's programs for (see [`super::misses`]):
    /// whatever those calls would have emitted never existed.
    pub missed: u64,
    /// Records that reached the ring with something left out (see [`Incomplete`]).
    pub incomplete: Incomplete,
}

/// Records the eBPF programs emitted with part of their content missing, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Incomplete {
    /// A kernel read faulted: that field is 0.
    pub read_fault: u64,
    /// The kernel stack could not be stored (the stack map is full or the bucket taken).
    pub stack_full: u64,
    /// A return probe found no arguments saved by its entry: no subscriber or range.
    pub entry_missing: u64,
}

impl Incomplete {
    /// (cause, count), the causes named as in the metrics.
    pub fn by_cause(&self) -> [(&'static str, u64); 3] {
        [("read_fault", self.read_fault), ("stack_full", self.stack_full), ("entry_missing", self.entry_missing)]
    }

    pub fn total(&self) -> u64 {
        self.by_cause().iter().map(|(_, n)| n).sum()
    }

    /// "3 (read_fault 2, stack_full 1)"; `None` when every record was whole.
    pub fn describe(&self) -> Option<String> {
        let causes: Vec<String> =
            self.by_cause().iter().filter(|(_, n)| *n > 0).map(|(cause, n)| format!("{cause} {n}")).collect();
        (!causes.is_empty()).then(|| format!("{} ({})", self.total(), causes.join(", ")))
    }
}

impl Counters {
    /// Everything that never reached the ring: what the `lost` events and the checker count.
    pub fn dropped(&self) -> u64 {
        self.lost + self.missed
    }
}

/// The `COUNTERS` array, mapped into this process: read with plain loads, no bpf() call (see
/// the map's definition in the eBPF object for why that matters).
struct CounterArray {
    base: NonNull<u64>,
    rows: u32,
    bytes: usize,
    _map: MapData,
}

// SAFETY: the mapping is plain shared memory owned by this value; it is only read, through
// volatile loads, and unmapped once, on drop.
unsafe impl Send for CounterArray {}

impl CounterArray {
    fn map(map: MapData, rows: u32) -> Result<CounterArray, LoadError> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let bytes = (rows as usize * counter::COUNT as usize * size_of::<u64>()).div_ceil(page) * page;
        // SAFETY: a read-only shared mapping of a BPF array created with BPF_F_MMAPABLE, whose
        // size covers `rows * COUNT` u64 values; the fd stays open (in `_map`) while mapped.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ, libc::MAP_SHARED, map.fd().as_fd().as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(LoadError::Other(format!("mapping COUNTERS: {}", std::io::Error::last_os_error())));
        }
        let base = NonNull::new(ptr as *mut u64).ok_or_else(|| LoadError::Other("mapping COUNTERS: NULL".into()))?;
        Ok(CounterArray { base, rows, bytes, _map: map })
    }

    /// Counter `index` summed over CPUs.
    fn total(&self, index: u32) -> u64 {
        (0..self.rows)
            // SAFETY: `slot(row, index)` < rows * COUNT, inside the mapping; the kernel writes
            // these aligned u64s concurrently, so each is read once, whole.
            .map(|row| unsafe { std::ptr::read_volatile(self.base.as_ptr().add(counter::slot(row, index) as usize)) })
            .sum()
    }
}

impl Drop for CounterArray {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing uses after this.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

pub struct Collector {
    ring: RingBuf<MapData>,
    counters: CounterArray,
    misses: MissLedger,
    /// CLOCK_MONOTONIC ns of the last two miss samples: a miss counted by the last one happened
    /// after the one before.
    sampled_ns: [u64; 2],
    /// Records that were not a whole `RawEvent` (never expected; counted, not dropped silently).
    pub malformed: u64,
}

impl Collector {
    pub fn new(ebpf: &mut Ebpf) -> Result<Collector, LoadError> {
        let ring = ebpf.take_map("EVENTS").ok_or_else(|| LoadError::Other("map EVENTS missing".into()))?;
        let ring = RingBuf::try_from(ring).map_err(|e| LoadError::Other(error_chain(&e)))?;
        let counters = ebpf.take_map("COUNTERS").ok_or_else(|| LoadError::Other("map COUNTERS missing".into()))?;
        let aya::maps::Map::Array(map) = counters else {
            return Err(LoadError::Other("map COUNTERS is not an array".into()));
        };
        let counters = CounterArray::map(map, crate::object::counter_rows()?)?;
        let now = crate::clock::monotonic_ns();
        Ok(Collector { ring, counters, misses: MissLedger::default(), sampled_ns: [now, now], malformed: 0 })
    }

    /// Hands every record pending now to `sink`; returns how many.
    pub fn drain(&mut self, mut sink: impl FnMut(&RawEvent)) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if item.len() < size_of::<RawEvent>() {
                self.malformed += 1;
                continue;
            }
            // SAFETY: the kernel side writes exactly one RawEvent per record; read_unaligned
            // because ring buffer records are only 8-byte aligned by convention.
            let ev = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const RawEvent) };
            sink(&ev);
            n += 1;
        }
        n
    }

    /// Waits until the kernel wakes us (a burst filled part of the ring) or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut pfd = libc::pollfd { fd: self.ring.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; the return value only tells whether we woke early.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    }

    /// Reads the kernel's miss counters of the tracer's programs and probes now: before they
    /// are detached, which takes their counters with them.
    pub fn sample_misses(&mut self) {
        self.sampled_ns = [self.sampled_ns[1], crate::clock::monotonic_ns()];
        self.misses.sample();
    }

    /// The earliest time (CLOCK_MONOTONIC ns) at which a loss the counters show now, and did
    /// not at the sample before, can have happened.
    pub fn losses_since_ns(&self) -> u64 {
        self.sampled_ns[0]
    }

    /// The kernel-side counters, with the miss counters as last sampled.
    pub fn counters(&self) -> Result<Counters, LoadError> {
        let read = |index: u32| -> Result<u64, LoadError> { Ok(self.counters.total(index)) };
        Ok(Counters {
            attempted: read(counter::ATTEMPTED)?,
            lost: read(counter::LOST)?,
            missed: self.misses.total(),
            incomplete: Incomplete {
                read_fault: read(counter::READ_FAULTS)?,
                stack_full: read(counter::STACK_MISSES)?,
                entry_missing: read(counter::ENTRY_MISSING)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_records_are_described_by_cause_only_when_there_are_some() {
        assert_eq!(Incomplete::default().describe(), None);
        let some = Incomplete { read_fault: 2, stack_full: 0, entry_missing: 1 };
        assert_eq!(some.total(), 3);
        assert_eq!(some.describe().as_deref(), Some("3 (read_fault 2, entry_missing 1)"));
    }
}
