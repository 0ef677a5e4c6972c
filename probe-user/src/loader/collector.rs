//! Drains the ring buffer and reads the per-CPU loss counters.

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
    pub lost: u64,
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
        Ok(Counters { attempted: read(counter::ATTEMPTED)?, lost: read(counter::LOST)? })
    }
}
