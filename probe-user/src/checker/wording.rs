//! How violations are built and worded, apart from the pairing state machine that decides
//! them. The engine decides *that* a rule is broken and with which events; the functions here
//! fill in who (task, mm, range, subscriber) and say why in words. They read the engine's
//! state but never change it, so wording can change without touching pairing.
use crate::{
    errno::errno_name,
    trace::{Addr, Event, MmuEvent, RangeCall, Symbol},
};

use super::{
    report::{RangeRef, TaskRef, Violation},
    rules::RuleId,
    state::{OuterRange, RangeArgs, RangeKey},
};

/// Page size the range arguments must be aligned to.
const PAGE_SIZE: u64 = 4096;

/// Added to a violation of a rule a loss can fake, once any events were lost.
pub(super) const LOSS_NOTE: &str = "events were lost; this may be an artefact";

/// Where a subscriber's callback broke a rule: its range, and which subscriber it was.
pub(super) struct SubscriberSite<'a> {
    pub(super) key: RangeKey,
    pub(super) mm: Addr,
    pub(super) subscriber: Addr,
    pub(super) callback: &'a Symbol,
}

/// Why a live range is being given up on.
#[derive(Clone, Copy)]
pub(super) enum Abandon {
    TaskExit,
    TraceEnd,
    Restarted,
}

impl Abandon {
    fn words(self) -> &'static str {
        match self {
            Abandon::TaskExit => "before the task exited",
            Abandon::TraceEnd => "before the trace ended",
            Abandon::Restarted => "before the same range struct was passed to __start again",
        }
    }
}

/// Why a subscriber's end has no successful start to pair with (`notifier-unpaired-end`).
#[derive(Clone, Copy)]
pub(super) enum UnpairedEnd {
    /// The task had no range with that key in the trace at all.
    NoRange,
    /// The subscriber's own start failed.
    StartFailed,
    /// The subscriber's start said it has no end op.
    NoEndOp,
    /// The range is known, but this subscriber's start on it was not seen.
    StartUnseen,
}

impl UnpairedEnd {
    pub(super) fn explain(self, callback: &Symbol) -> String {
        let f = callback.function();
        match self {
            UnpairedEnd::NoRange => format!(
                "{f} ran for a range on which this task had no __start or __end in the trace, so the subscriber undoes an invalidation it never began"
            ),
            UnpairedEnd::StartFailed => format!(
                "{f} ran for a range whose start failed in this same subscriber, so it undoes an invalidation that never began"
            ),
            UnpairedEnd::NoEndOp => {
                format!("{f} ran although its start reported no invalidate_range_end op for this subscriber")
            }
            UnpairedEnd::StartUnseen => format!(
                "{f} ran for a range whose start this subscriber never saw, so it undoes an invalidation it never began (a count it keeps would underflow)"
            ),
        }
    }
}

/// `bad-errno`: a start, the outer one (`subscriber` is `None`) or a subscriber's, failed with
/// something other than -EAGAIN.
pub(super) fn bad_errno_words(subscriber: Option<&Symbol>, ret: i64) -> String {
    match subscriber {
        None => format!(
            "__mmu_notifier_invalidate_range_start returned {}, but callers only expect 0 or -EAGAIN",
            errno_name(ret)
        ),
        Some(callback) => format!(
            "{} failed with {}; the only failure a start may return is -EAGAIN",
            callback.function(),
            errno_name(ret)
        ),
    }
}

/// `unpaired-start`: a live range that will never end, and the subscribers it leaves open.
pub(super) fn unpaired_start_words(never_returned: bool, why: Abandon, still_open: &[String]) -> String {
    let subject = if never_returned {
        "__mmu_notifier_invalidate_range_start was entered (its return was not seen)"
    } else {
        "__mmu_notifier_invalidate_range_start returned 0"
    };
    let mut explanation = format!("{subject} but no __mmu_notifier_invalidate_range_end followed {}", why.words());
    if !still_open.is_empty() {
        explanation.push_str(&format!("; subscribers left without their end: {}", still_open.join(", ")));
    }
    explanation
}

/// `notifier-unpaired-start`: a subscriber's start succeeded and its end never came, either
/// because the outer `__start` then failed (`failed_ret`) or for `why`.
pub(super) fn notifier_unpaired_start_words(callback: &Symbol, failed_ret: Option<i64>, why: &str) -> String {
    match failed_ret {
        Some(ret) => format!(
            "{}'s start succeeded, then __start failed with {} and this subscriber never got its end, so what its start took (e.g. KVM's invalidate count) stays held",
            callback.function(),
            errno_name(ret)
        ),
        None => format!(
            "{}'s start succeeded but it got no end {why}, so what its start took stays held",
            callback.function()
        ),
    }
}

/// `itree-leak` seen only from a snapshot (the failing `__start` was not traced).
pub(super) fn snapshot_leak_words(mm: Addr, active: Option<u64>, itree_seq: Option<u64>) -> String {
    let mut what = Vec::new();
    if let Some(a) = active.filter(|a| *a > 0) {
        what.push(format!("{a} active invalidate range(s)"));
    }
    if let Some(s) = itree_seq.filter(|s| s & 1 == 1) {
        what.push(format!("odd invalidate_seq {s}"));
    }
    format!(
        "the interval tree of mm {mm} still shows {} while no invalidation of that mm is open, so mmu_interval_read_begin() callers will wait for an end that never comes",
        what.join(" and ")
    )
}

/// `range-mismatch`: what `__end` saw differently from its `__start`, one `what old -> new` each.
pub(super) fn range_diffs(mm: Addr, opened: Option<RangeArgs>, end_mm: Addr, args: RangeArgs) -> Vec<String> {
    let mut diffs = Vec::new();
    if mm != end_mm {
        diffs.push(format!("mm {mm} -> {end_mm}"));
    }
    if let Some(o) = opened {
        if o.start != args.start {
            diffs.push(format!("start {} -> {}", o.start, args.start));
        }
        if o.end != args.end {
            diffs.push(format!("end {} -> {}", o.end, args.end));
        }
        if o.event != args.event {
            diffs.push(format!("event {} -> {}", o.event, args.event));
        }
        if o.blockable != args.blockable {
            diffs.push(format!("blockable {} -> {}", o.blockable, args.blockable));
        }
    }
    diffs
}

/// `bad-range`: what is wrong with a `__start`'s (or `__end`'s) arguments; empty if nothing.
pub(super) fn range_problems(call: &RangeCall, at_start: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if call.start >= call.end {
        problems.push(if call.start == call.end {
            format!("the range [{}, {}) is empty", call.start, call.end)
        } else {
            format!("the range [{}, {}) ends before it starts", call.start, call.end)
        });
    }
    // exit_mmap and the OOM reaper's whole-mm ranges end at ULONG_MAX: "to the end of the
    // address space", not an unaligned end.
    let end_aligned = call.end.0 == u64::MAX || call.end.0.is_multiple_of(PAGE_SIZE);
    if !call.start.0.is_multiple_of(PAGE_SIZE) || !end_aligned {
        problems.push(format!("[{}, {}) is not page aligned", call.start, call.end));
    }
    match call.event {
        MmuEvent::Other(n) => problems.push(format!("event value {n} is outside enum mmu_notifier_event")),
        MmuEvent::Release if at_start => {
            problems.push("MMU_NOTIFIER_RELEASE is only for ->release and is never passed to __start".into())
        }
        _ => {}
    }
    problems
}

pub(super) fn range_ref(ptr: Addr, args: Option<RangeArgs>) -> RangeRef {
    RangeRef {
        ptr: Some(ptr),
        start: args.map(|a| a.start),
        end: args.map(|a| a.end),
        event: args.map(|a| a.event),
        blockable: args.map(|a| a.blockable),
    }
}

/// A violation found at `ev`, by its task and with its stack.
pub(super) fn event_violation(rule: RuleId, ev: &Event, explanation: String) -> Violation {
    let mut v = Violation::new(rule, ev.ts, explanation);
    if let Some(tid) = ev.tid() {
        v.task = Some(TaskRef { pid: ev.pid, tid, comm: ev.comm.clone() });
    }
    v.stack = ev.stack.clone();
    v
}

/// A violation about the outer range `key` (`range` is its state, if the checker has any):
/// what the event does not say about the task, mm and stack comes from the range's `__start`.
pub(super) fn outer_violation<const N: usize>(
    rule: RuleId,
    ev: &Event,
    key: RangeKey,
    range: Option<&OuterRange>,
    explanation: String,
    events: [Option<u64>; N],
) -> Violation {
    let mut v = event_violation(rule, ev, explanation);
    if let Some(range) = range {
        if let Some(task) = &mut v.task {
            task.pid = task.pid.or(range.pid);
            task.comm = task.comm.clone().or_else(|| range.comm.clone());
        }
        v.mm = Some(range.mm);
        v.range = Some(range_ref(key.range, range.args));
        if v.stack.is_none() {
            v.stack = range.stack.clone();
        }
    } else {
        v.range = Some(range_ref(key.range, None));
    }
    v.events = events.into_iter().flatten().collect();
    v
}

/// A violation by one subscriber's callback within the outer range `site.key`.
pub(super) fn subscriber_violation<const N: usize>(
    rule: RuleId,
    ev: &Event,
    site: &SubscriberSite<'_>,
    range: Option<&OuterRange>,
    explanation: String,
    events: [Option<u64>; N],
) -> Violation {
    let mut v = outer_violation(rule, ev, site.key, range, explanation, events);
    v.mm = Some(site.mm);
    v.subscriber = Some(site.subscriber);
    v.callback = Some(site.callback.clone());
    v
}

/// `interval-finish-missing`: `callback` (an `invalidate_start`) queued `finish` and the outer
/// `__start` returned with `ret` without running it.
pub(super) fn finish_missing_words(callback: &Symbol, finish: Addr, ret: i64) -> String {
    format!(
        "{} returned true and set *finish = {finish}, but __start returned ({}) without calling invalidate_finish for it; whatever the first pass left pending (a fence, a lock, a sequence wait) is never completed",
        callback.function(),
        if ret == 0 { "0".to_string() } else { errno_name(ret) }
    )
}

/// `interval-finish-unstarted`: `callback` (an `invalidate_finish`) got `finish`, which no
/// successful start of that subscriber in the current `__start` left in `*finish`.
pub(super) fn finish_unstarted_words(callback: &Symbol, finish: Addr, in_start: bool) -> String {
    let where_ = if in_start { "in this __start" } else { "on this thread" };
    format!(
        "{} ran for finish {finish}, which no invalidate_start of that subscriber that returned true queued {where_}; the kernel runs a finish only for a start that returned true and set *finish",
        callback.function()
    )
}
