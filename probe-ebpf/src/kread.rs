//! Reading kernel memory at offsets the loader found in BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use probe_common::{ABSENT, KernelOffsets, ProbeConfig, counter};

use crate::emit::bump;

/// Filled in by the loader (`override_global`) before load.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets::absent();

#[unsafe(no_mangle)]
static CONFIG: ProbeConfig = ProbeConfig { wakeup_bytes: 256 * 1024, stacks: 1, count_only: 0 };

/// Reads one offset from the `OFFSETS` global. Volatile so the compiler does not fold the
/// placeholder value the global has at compile time.
macro_rules! offset {
    ($($field:tt)+) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&$crate::kread::offsets().$($field)+) };
        value
    }};
}
pub(crate) use offset;

pub(crate) fn offsets() -> &'static KernelOffsets {
    &OFFSETS
}

pub(crate) fn wakeup_bytes() -> u64 {
    unsafe { core::ptr::read_volatile(&CONFIG.wakeup_bytes) }
}

pub(crate) fn count_only() -> bool {
    unsafe { core::ptr::read_volatile(&CONFIG.count_only) != 0 }
}

pub(crate) fn stacks_enabled() -> bool {
    unsafe { core::ptr::read_volatile(&CONFIG.stacks) != 0 }
}

/// The current thread id (the key of per-thread maps).
#[inline(always)]
pub(crate) fn current_tid() -> u32 {
    aya_ebpf::helpers::bpf_get_current_pid_tgid() as u32
}

/// Reads a `T` at `base + off` for an event record; 0/default when the member is absent, the
/// base is NULL or the read faults, and a fault is counted (`counter::READ_FAULTS`).
#[inline(always)]
pub(crate) fn at<T: Default + Copy>(base: u64, off: u32) -> T {
    match read(base, off) {
        Ok(value) => value.unwrap_or_default(),
        Err(()) => {
            bump(counter::READ_FAULTS);
            T::default()
        }
    }
}

/// [`at`] without the fault counter, for the iterators: their walks are sized to what the
/// oldest verifier accepts, and an extra branch in every read of those loops is not worth
/// risking; a walk that went wrong is reported by the records themselves (`truncated`).
#[inline(always)]
pub(crate) fn peek<T: Default + Copy>(base: u64, off: u32) -> T {
    read(base, off).ok().flatten().unwrap_or_default()
}

/// `Ok(None)` when there is nothing to read (the member is absent or the base is NULL),
/// `Err` when the read faulted.
#[inline(always)]
fn read<T: Copy>(base: u64, off: u32) -> Result<Option<T>, ()> {
    if base == 0 || off == ABSENT {
        return Ok(None);
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.map(Some).map_err(|_| ())
}
