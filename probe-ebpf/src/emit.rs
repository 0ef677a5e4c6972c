//! The ring buffer, its loss counters, and the one function that writes a record.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, RingBuf},
};
use probe_common::{DEFAULT_RING_BYTES, EventKind, EventPayload as Payload, RawEvent, counter};

use crate::kread::{count_only, wakeup_bytes};

/// Default size; the loader resizes it (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Counters (`probe_common::counter`): records attempted, and everything the programs drop or
/// leave out (a full ring, a faulted read, a missing stack or entry state). Userspace reads them
/// with the ring and reports them with the lost events. Counters, not log lines: they cost one
/// increment on the failure path only, and what the kernel side drops must be countable at any
/// event rate.
///
/// One row of `counter::COUNT` per CPU (`counter::slot`; the loader sizes it for the possible
/// CPUs), in an array userspace maps and reads without a bpf() call. A map lookup from
/// userspace holds its CPU's `bpf_prog_active` with only migration disabled; on a preemptible
/// kernel the reader can be preempted there, and every kprobe program that fires on that CPU
/// meanwhile, in any task, is skipped by the kernel. Reading these through the syscall made
/// the tracer miss callbacks.
#[map]
static COUNTERS: Array<u64> = Array::with_max_entries(counter::COUNT, BPF_F_MMAPABLE);

#[inline(always)]
pub(crate) fn bump(index: u32) {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if let Some(slot) = COUNTERS.get_ptr_mut(counter::slot(cpu, index)) {
        unsafe { *slot += 1 };
    }
}

/// What an entry probe saved for its return probe, or `missing` (counted) when it is not there.
#[inline(always)]
pub(crate) fn saved<T>(found: Option<T>, missing: T) -> T {
    match found {
        Some(value) => value,
        None => {
            bump(counter::ENTRY_MISSING);
            missing
        }
    }
}

#[inline(always)]
pub(crate) fn emit(kind: EventKind, p: &Payload) {
    bump(counter::ATTEMPTED);
    // A constant of the loaded object: the verifier drops the branch not taken.
    if count_only() {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        bump(counter::LOST);
        return;
    };
    let e = entry.as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    // Field by field: a struct literal here was lowered to a byte-wise memset the verifier
    // refuses on ring buffer memory.
    unsafe {
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).kind = kind as u32;
        (*e).cpu = bpf_get_smp_processor_id();
        (*e).pid = (pid_tgid >> 32) as u32;
        (*e).tid = pid_tgid as u32;
        (*e).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let q = &mut (*e).payload;
        q.mm = p.mm;
        q.range = p.range;
        q.start = p.start;
        q.end = p.end;
        q.subscriber = p.subscriber;
        q.callback = p.callback;
        q.ret = p.ret;
        q.event = p.event;
        q.flags = p.flags;
        q.aux0 = p.aux0;
        q.aux1 = p.aux1;
    }
    // Batched wakeups: userspace drains on a short timer, and is woken early only when a
    // burst has filled a good part of the buffer.
    let flags =
        if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= wakeup_bytes() { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
    entry.submit(flags as u64);
}
