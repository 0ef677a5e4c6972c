//! Drains the ring buffer and reads the kernel side's per-CPU counters.

use std::{
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use probe_common::{RawEvent, counter};

use super::{LoadError, error_chain};

/// Totals of the kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub attempted: u64,
    /// Records dropped because the ring buffer was full.
    pub lost: u64,
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

pub struct Collector {
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// Records that were not a whole `RawEvent` (never expected; counted, not dropped silently).
    pub malformed: u64,
}

impl Collector {
    pub fn new(ebpf: &mut Ebpf) -> Result<Collector, LoadError> {
        let ring = ebpf.take_map("EVENTS").ok_or_else(|| LoadError::Other("map EVENTS missing".into()))?;
        let ring = RingBuf::try_from(ring).map_err(|e| LoadError::Other(error_chain(&e)))?;
        let counters = ebpf.take_map("COUNTERS").ok_or_else(|| LoadError::Other("map COUNTERS missing".into()))?;
        let counters = PerCpuArray::try_from(counters).map_err(|e| LoadError::Other(error_chain(&e)))?;
        Ok(Collector { ring, counters, malformed: 0 })
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

    pub fn counters(&self) -> Result<Counters, LoadError> {
        let read = |index: u32| -> Result<u64, LoadError> {
            let per_cpu = self.counters.get(&index, 0).map_err(|e| LoadError::Other(error_chain(&e)))?;
            Ok(per_cpu.iter().sum())
        };
        Ok(Counters {
            attempted: read(counter::ATTEMPTED)?,
            lost: read(counter::LOST)?,
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
