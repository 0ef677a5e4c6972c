//! Subscriber hooks: every list subscriber's `invalidate_range_start` (entry and return) and
//! `invalidate_range_end`, every interval subscriber's `ops->invalidate` (entry and return) and,
//! on 7.2+, its two-pass `ops->invalidate_start` (entry and return) and `ops->invalidate_finish`,
//! and the registration functions through which userspace learns which callbacks to attach.
//!
//! Callbacks are not known when the object is loaded, and most live in modules, so they are
//! kprobes: one loaded program is attached to every callback of its kind as it is discovered.

use aya_ebpf::{
    macros::{fentry, kprobe, kretprobe, map},
    maps::LruHashMap,
    programs::{FEntryContext, ProbeContext, RetProbeContext},
};
use probe_common::{EventKind, EventPayload as Payload, OpsSlot, flags};

use crate::{
    emit::{emit, saved},
    kread::{at, current_tid, offset},
};

/// What a callback was called with, kept from its entry until its return.
#[derive(Clone, Copy)]
#[repr(C)]
struct CallArgs {
    subscriber: u64,
    range: u64,
    /// `cur_seq` for interval callbacks.
    seq: u64,
}

#[map]
static LIST_CALL: LruHashMap<u32, CallArgs> = LruHashMap::with_max_entries(16384, 0);

#[map]
static INTERVAL_CALL: LruHashMap<u32, CallArgs> = LruHashMap::with_max_entries(16384, 0);

/// What `ops->invalidate_start` was called with; `slot` is its `finish` argument (a
/// `struct mmu_interval_notifier_finish **`), read at return for the pointer it left there.
#[derive(Clone, Copy)]
#[repr(C)]
struct StartArgs {
    subscriber: u64,
    range: u64,
    seq: u64,
    slot: u64,
}

/// Its own map: a subscriber may implement both `invalidate` and `invalidate_start` with
/// shared code, and one thread's entries must not overwrite each other.
#[map]
static TWOPASS_CALL: LruHashMap<u32, StartArgs> = LruHashMap::with_max_entries(16384, 0);

/// (ops table, start callback, end callback) of a list subscriber.
#[inline(always)]
fn list_callbacks(subscriber: u64) -> (u64, u64, u64) {
    let ops: u64 = at(subscriber, offset!(notifier_ops));
    let start = at(ops, offset!(ops[OpsSlot::InvalidateRangeStart as usize]));
    let end = at(ops, offset!(ops[OpsSlot::InvalidateRangeEnd as usize]));
    (ops, start, end)
}

#[inline(always)]
fn interval_callback(ops: u64) -> u64 {
    at(ops, offset!(interval_ops_invalidate))
}

#[inline(always)]
fn take(map: &LruHashMap<u32, CallArgs>) -> CallArgs {
    let tid = current_tid();
    let args = saved(unsafe { map.get(tid) }.copied(), CallArgs { subscriber: 0, range: 0, seq: 0 });
    let _ = map.remove(tid);
    args
}

// --- list subscribers ------------------------------------------------------------------------

#[kprobe]
pub fn subscriber_start_entry(ctx: ProbeContext) -> u32 {
    let args = CallArgs { subscriber: ctx.arg(0).unwrap_or(0), range: ctx.arg(1).unwrap_or(0), seq: 0 };
    let _ = LIST_CALL.insert(current_tid(), args, 0);
    0
}

#[kretprobe]
pub fn subscriber_start_ret(ctx: RetProbeContext) -> u32 {
    let args = take(&LIST_CALL);
    let (_, start, end) = list_callbacks(args.subscriber);
    let ret: u64 = ctx.ret();
    let p = Payload {
        mm: at(args.range, offset!(range_mm)),
        range: args.range,
        subscriber: args.subscriber,
        callback: start,
        ret: ret as u32 as i32 as i64,
        flags: if end != 0 { flags::HAS_END } else { 0 },
        ..Payload::default()
    };
    emit(EventKind::SubscriberStart, &p);
    0
}

#[kprobe]
pub fn subscriber_end(ctx: ProbeContext) -> u32 {
    let subscriber: u64 = ctx.arg(0).unwrap_or(0);
    let range: u64 = ctx.arg(1).unwrap_or(0);
    let (_, _, end) = list_callbacks(subscriber);
    let p = Payload { mm: at(range, offset!(range_mm)), range, subscriber, callback: end, ..Payload::default() };
    emit(EventKind::SubscriberEnd, &p);
    0
}

// --- interval subscribers --------------------------------------------------------------------

#[kprobe]
pub fn interval_invalidate_entry(ctx: ProbeContext) -> u32 {
    let args =
        CallArgs { subscriber: ctx.arg(0).unwrap_or(0), range: ctx.arg(1).unwrap_or(0), seq: ctx.arg(2).unwrap_or(0) };
    let _ = INTERVAL_CALL.insert(current_tid(), args, 0);
    0
}

#[kretprobe]
pub fn interval_invalidate_ret(ctx: RetProbeContext) -> u32 {
    let args = take(&INTERVAL_CALL);
    let ops: u64 = at(args.subscriber, offset!(interval_ops));
    let ret: u64 = ctx.ret();
    let p = Payload {
        mm: at(args.range, offset!(range_mm)),
        range: args.range,
        subscriber: args.subscriber,
        callback: interval_callback(ops),
        // `ops->invalidate` returns bool: only the low byte is defined.
        ret: (ret & 0xff != 0) as i64,
        aux0: args.seq,
        ..Payload::default()
    };
    emit(EventKind::IntervalInvalidate, &p);
    0
}

// --- two-pass interval subscribers (7.2+) ----------------------------------------------------

#[kprobe]
pub fn interval_start_entry(ctx: ProbeContext) -> u32 {
    let args = StartArgs {
        subscriber: ctx.arg(0).unwrap_or(0),
        range: ctx.arg(1).unwrap_or(0),
        seq: ctx.arg(2).unwrap_or(0),
        slot: ctx.arg(3).unwrap_or(0),
    };
    let _ = TWOPASS_CALL.insert(current_tid(), args, 0);
    0
}

#[kretprobe]
pub fn interval_start_ret(ctx: RetProbeContext) -> u32 {
    let tid = current_tid();
    let args = saved(unsafe { TWOPASS_CALL.get(tid) }.copied(), StartArgs { subscriber: 0, range: 0, seq: 0, slot: 0 });
    let _ = TWOPASS_CALL.remove(tid);
    let ops: u64 = at(args.subscriber, offset!(interval_ops));
    let ret: u64 = ctx.ret();
    let p = Payload {
        mm: at(args.range, offset!(range_mm)),
        range: args.range,
        subscriber: args.subscriber,
        callback: at(ops, offset!(interval_ops_invalidate_start)),
        // Returns bool: only the low byte is defined.
        ret: (ret & 0xff != 0) as i64,
        aux0: args.seq,
        // The kernel sets `*finish = NULL` before the call, so what is there now is what the
        // callback left.
        aux1: at(args.slot, 0),
        ..Payload::default()
    };
    emit(EventKind::IntervalStart, &p);
    0
}

#[kprobe]
pub fn interval_finish(ctx: ProbeContext) -> u32 {
    let finish: u64 = ctx.arg(0).unwrap_or(0);
    let subscriber: u64 = at(finish, offset!(finish_notifier));
    let ops: u64 = at(subscriber, offset!(interval_ops));
    let p = Payload {
        mm: at(subscriber, offset!(interval_mm)),
        subscriber,
        callback: at(ops, offset!(interval_ops_invalidate_finish)),
        aux1: finish,
        ..Payload::default()
    };
    emit(EventKind::IntervalFinish, &p);
    0
}

// --- registration: how userspace learns which callbacks to attach ----------------------------

/// `__mmu_notifier_register(subscription, mm)`: every list registration goes through it, and
/// the caller has set `subscription->ops` before calling.
#[inline(always)]
fn on_list_register(subscriber: u64, mm: u64) {
    let (ops, start, end) = list_callbacks(subscriber);
    emit(
        EventKind::Registered,
        &Payload { mm, subscriber, callback: start, aux0: end, aux1: ops, ..Payload::default() },
    );
}

/// `mmu_interval_notifier_insert[_locked](interval_sub, mm, start, length, ops)`.
#[inline(always)]
fn on_interval_insert(subscriber: u64, mm: u64, start: u64, length: u64, ops: u64) {
    let p = Payload {
        mm,
        subscriber,
        start,
        end: start.wrapping_add(length),
        callback: interval_callback(ops),
        aux0: at(ops, offset!(interval_ops_invalidate_start)),
        // `range` means nothing for a registration; it carries the third callback.
        range: at(ops, offset!(interval_ops_invalidate_finish)),
        aux1: ops,
        flags: flags::INTERVAL,
        ..Payload::default()
    };
    emit(EventKind::Registered, &p);
}

#[fentry(function = "__mmu_notifier_register")]
pub fn register_fentry(ctx: FEntryContext) -> i32 {
    on_list_register(ctx.arg(0), ctx.arg(1));
    0
}

#[fentry(function = "mmu_interval_notifier_insert")]
pub fn interval_insert_fentry(ctx: FEntryContext) -> i32 {
    on_interval_insert(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4));
    0
}

#[fentry(function = "mmu_interval_notifier_insert_locked")]
pub fn interval_insert_locked_fentry(ctx: FEntryContext) -> i32 {
    on_interval_insert(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4));
    0
}

#[kprobe]
pub fn register_kprobe(ctx: ProbeContext) -> u32 {
    on_list_register(ctx.arg(0).unwrap_or(0), ctx.arg(1).unwrap_or(0));
    0
}

/// Serves both interval insert functions (same arguments).
#[kprobe]
pub fn interval_insert_kprobe(ctx: ProbeContext) -> u32 {
    on_interval_insert(
        ctx.arg(0).unwrap_or(0),
        ctx.arg(1).unwrap_or(0),
        ctx.arg(2).unwrap_or(0),
        ctx.arg(3).unwrap_or(0),
        ctx.arg(4).unwrap_or(0),
    );
    0
}
