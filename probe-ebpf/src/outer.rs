//! The outer hooks: `__mmu_notifier_invalidate_range_start` (entry and return),
//! `__mmu_notifier_invalidate_range_end` (entry) and `mn_itree_inv_end` (return).
//!
//! Each has an fentry/fexit program and a kprobe/kretprobe twin with the same body; the loader
//! attaches one of them. `__end` took a second `only_end` argument before 6.6; only the first
//! argument is read, so one program serves both signatures.

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::{LruHashMap, StackTrace},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, tracing::StackIdContext},
};
use probe_common::{EventKind, EventPayload as Payload, counter, flags};

use crate::{
    emit::{bump, emit, saved},
    kread::{at, current_tid, offset, stacks_enabled},
};

/// Kernel stacks of outer starts and ends; records carry the id + 1.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(8192, 0);

/// kretprobe twins only: the range `__start` was called with, by thread.
#[map]
static START_RANGE: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// kretprobe twin only: the subscriptions `mn_itree_inv_end` was called with, by thread.
#[map]
static ITREE_ARG: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// The mm of the range each thread last started or ended: `mn_itree_inv_end` only receives
/// the subscriptions struct, which has no pointer back to its mm.
#[map]
static TASK_MM: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

#[inline(always)]
fn range_payload(range: u64) -> Payload {
    Payload {
        mm: at(range, offset!(range_mm)),
        range,
        start: at(range, offset!(range_start)),
        end: at(range, offset!(range_end)),
        event: at::<u32>(range, offset!(range_event)),
        flags: at::<u32>(range, offset!(range_flags)),
        ..Payload::default()
    }
}

#[inline(always)]
fn stack_aux(ctx: &impl StackIdContext) -> u64 {
    if !stacks_enabled() {
        return 0;
    }
    match ctx.get_stackid(&STACKS, 0) {
        Ok(id) => id as u64 + 1,
        Err(_) => {
            bump(counter::STACK_MISSES);
            0
        }
    }
}

/// The mm's interval-tree state into `aux0`/`aux1`, when the kernel has one.
#[inline(always)]
fn read_itree(subscriptions: u64, p: &mut Payload) {
    if subscriptions == 0 || offset!(subs_active_invalidate_ranges) == probe_common::ABSENT {
        return;
    }
    p.aux0 = at(subscriptions, offset!(subs_active_invalidate_ranges));
    p.aux1 = at(subscriptions, offset!(subs_invalidate_seq));
    p.flags |= flags::ITREE_READ;
}

#[inline(always)]
fn on_range_call(ctx: &impl StackIdContext, kind: EventKind, range: u64) {
    let mut p = range_payload(range);
    p.aux0 = stack_aux(ctx);
    let _ = TASK_MM.insert(current_tid(), p.mm, 0);
    emit(kind, &p);
}

#[inline(always)]
fn on_range_start_ret(range: u64, ret: u64) {
    let mm: u64 = at(range, offset!(range_mm));
    // `__start` returns int: the low 32 bits, sign-extended.
    let mut p = Payload { mm, range, ret: ret as u32 as i32 as i64, ..Payload::default() };
    read_itree(at(mm, offset!(mm_subscriptions)), &mut p);
    emit(EventKind::RangeStartRet, &p);
}

#[inline(always)]
fn on_itree_end(subscriptions: u64) {
    let mm = saved(unsafe { TASK_MM.get(current_tid()) }.copied(), 0);
    let mut p = Payload { mm, ..Payload::default() };
    read_itree(subscriptions, &mut p);
    emit(EventKind::ItreeEnd, &p);
}

// --- fentry / fexit ------------------------------------------------------------------------

#[fentry(function = "__mmu_notifier_invalidate_range_start")]
pub fn range_start_fentry(ctx: FEntryContext) -> i32 {
    on_range_call(&ctx, EventKind::RangeStart, ctx.arg(0));
    0
}

#[fexit(function = "__mmu_notifier_invalidate_range_start")]
pub fn range_start_fexit(ctx: FExitContext) -> i32 {
    // fexit sees the arguments, then the return value.
    on_range_start_ret(ctx.arg(0), ctx.arg(1));
    0
}

#[fentry(function = "__mmu_notifier_invalidate_range_end")]
pub fn range_end_fentry(ctx: FEntryContext) -> i32 {
    on_range_call(&ctx, EventKind::RangeEnd, ctx.arg(0));
    0
}

#[fexit(function = "mn_itree_inv_end")]
pub fn itree_end_fexit(ctx: FExitContext) -> i32 {
    on_itree_end(ctx.arg(0));
    0
}

// --- kprobe / kretprobe --------------------------------------------------------------------

#[kprobe]
pub fn range_start_kprobe(ctx: ProbeContext) -> u32 {
    let range: u64 = ctx.arg(0).unwrap_or(0);
    let _ = START_RANGE.insert(current_tid(), range, 0);
    on_range_call(&ctx, EventKind::RangeStart, range);
    0
}

#[kretprobe]
pub fn range_start_kretprobe(ctx: RetProbeContext) -> u32 {
    let tid = current_tid();
    let range = saved(unsafe { START_RANGE.get(tid) }.copied(), 0);
    let _ = START_RANGE.remove(tid);
    on_range_start_ret(range, ctx.ret());
    0
}

#[kprobe]
pub fn range_end_kprobe(ctx: ProbeContext) -> u32 {
    on_range_call(&ctx, EventKind::RangeEnd, ctx.arg(0).unwrap_or(0));
    0
}

#[kprobe]
pub fn itree_end_kprobe(ctx: ProbeContext) -> u32 {
    let subscriptions: u64 = ctx.arg(0).unwrap_or(0);
    let _ = ITREE_ARG.insert(current_tid(), subscriptions, 0);
    0
}

#[kretprobe]
pub fn itree_end_kretprobe(_ctx: RetProbeContext) -> u32 {
    let tid = current_tid();
    let subscriptions = saved(unsafe { ITREE_ARG.get(tid) }.copied(), 0);
    let _ = ITREE_ARG.remove(tid);
    on_itree_end(subscriptions);
    0
}
