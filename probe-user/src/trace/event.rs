//! The event model: one [`Event`] per line of a v1 trace, the same values the live decoder
//! produces from kernel records. Serializing an `Event` yields exactly its v1 JSON line.
use serde::Serialize;

use super::{
    addr::Addr,
    header::Hook,
    kernel_enum::{Detector, MmuEvent},
    text::{Comm, Stack, Symbol},
};

/// One traced occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    /// Identifies the event in reports: the line number when read from a file, the live
    /// decoder's sequence number otherwise. Not written to the trace (a file has line numbers).
    pub seq: Option<u64>,
    pub cpu: Option<u32>,
    /// Thread group id.
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
    /// Kernel stack, innermost first, as `sym+0xoff` strings.
    pub stack: Option<Stack>,
    pub body: EventBody,
}

/// What happened, with the fields specific to each `type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// Entry of `__mmu_notifier_invalidate_range_start`.
    RangeStart(RangeCall),
    /// Return of `__mmu_notifier_invalidate_range_start`.
    RangeStartRet(RangeStartRet),
    /// Entry of `__mmu_notifier_invalidate_range_end`.
    RangeEnd(RangeEnd),
    /// A list subscriber's `invalidate_range_start` returned (or, in tracepoint mode, KVM's ran).
    SubscriberStart(SubscriberStart),
    /// A list subscriber's `invalidate_range_end` ran.
    SubscriberEnd(SubscriberEnd),
    /// An interval subscriber's `ops->invalidate` returned.
    IntervalInvalidate(IntervalInvalidate),
    /// An interval subscriber's two-pass `ops->invalidate_start` returned (7.2+).
    IntervalStart(IntervalStart),
    /// An interval subscriber's two-pass `ops->invalidate_finish` ran (7.2+).
    IntervalFinish(IntervalFinish),
    /// `mn_itree_inv_end` finished.
    ItreeEnd(ItreeEnd),
    /// The kernel reported a warning (or another error report).
    Warn(Warn),
    /// A thread exited.
    TaskExit(TaskExit),
    /// Records were dropped before reaching userspace.
    Lost(Lost),
    /// The tracer finished attaching the probes of subscriber callbacks.
    ProbesLive(ProbesLive),
}

/// The arguments `__start` and `__end` receive (a `struct mmu_notifier_range`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeCall {
    pub tid: u32,
    pub mm: Addr,
    /// Address of the `struct mmu_notifier_range` (pairing key together with `tid`).
    pub range: Addr,
    pub start: Addr,
    pub end: Addr,
    pub event: MmuEvent,
    /// MMU_NOTIFIER_RANGE_BLOCKABLE.
    pub blockable: bool,
}

/// The interval-tree state of an mm (`active_invalidate_ranges`, `invalidate_seq`), when read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItreeSnapshot {
    pub active: Option<u64>,
    pub seq: Option<u64>,
}

impl ItreeSnapshot {
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.seq.is_none()
    }

    /// Whether this shows an invalidation in progress (active ranges, or an odd sequence).
    pub fn invalidating(&self) -> bool {
        self.active.is_some_and(|a| a > 0) || self.seq.is_some_and(|s| s & 1 == 1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeStartRet {
    pub tid: u32,
    pub range: Addr,
    pub ret: i64,
    /// The mm's interval-tree state when `__start` returned.
    pub itree: ItreeSnapshot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeEnd {
    pub call: RangeCall,
    /// The mm's interval-tree state when `__end` returned.
    pub itree: ItreeSnapshot,
}

/// `range`, `subscriber`, `has_end` and `ret` are absent in tracepoint mode
/// (`kvm:kvm_unmap_hva_range`), which carries `start`/`end` instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberStart {
    pub tid: u32,
    pub mm: Addr,
    pub range: Option<Addr>,
    /// The `struct mmu_notifier *`.
    pub subscriber: Option<Addr>,
    pub callback: Symbol,
    /// Whether the subscriber's ops have `invalidate_range_end`.
    pub has_end: Option<bool>,
    pub ret: Option<i64>,
    pub start: Option<Addr>,
    pub end: Option<Addr>,
}

impl SubscriberStart {
    /// Pairing needs the range pointer and the subscriber; tracepoint-mode events lack both.
    pub fn pairable(&self) -> Option<(Addr, Addr)> {
        Some((self.range?, self.subscriber?))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberEnd {
    pub tid: u32,
    pub mm: Addr,
    pub range: Addr,
    pub subscriber: Addr,
    pub callback: Symbol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalInvalidate {
    pub tid: u32,
    pub mm: Addr,
    pub range: Addr,
    /// The `struct mmu_interval_notifier *`.
    pub subscriber: Addr,
    pub callback: Symbol,
    pub cur_seq: u64,
    pub ret: bool,
}

/// The first pass of a two-pass interval subscriber (`ops->invalidate_start`, 7.2+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalStart {
    pub tid: u32,
    pub mm: Addr,
    pub range: Addr,
    /// The `struct mmu_interval_notifier *`.
    pub subscriber: Addr,
    pub callback: Symbol,
    pub cur_seq: u64,
    /// The `struct mmu_interval_notifier_finish *` the callback left in `*finish` (0: none,
    /// so no second pass is owed).
    pub finish: Addr,
    pub ret: bool,
}

impl IntervalStart {
    /// Whether the kernel queues a finish for this start: only when it returned true and left
    /// a non-NULL `*finish` (mm/mmu_notifier.c:477-480 in 7.2).
    pub fn owes_finish(&self) -> bool {
        self.ret && self.finish != Addr(0)
    }
}

/// The second pass (`ops->invalidate_finish`, 7.2+). The kernel passes only the finish
/// struct; `subscriber` is its `notifier` member, which the kernel set after the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalFinish {
    pub tid: u32,
    pub mm: Addr,
    pub subscriber: Addr,
    pub callback: Symbol,
    pub finish: Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItreeEnd {
    pub tid: u32,
    pub mm: Addr,
    pub active: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warn {
    pub tid: u32,
    /// `symbol+0xoff` of the reporting site.
    pub caller: Symbol,
    pub detector: Option<Detector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskExit {
    pub tid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    pub count: u64,
}

/// Subscriber callbacks probed while tracing: every probe of each subscriber whose callbacks
/// are listed was attached before the event's `ts` (CLOCK_MONOTONIC, read after the last
/// attach), so from then on none of that subscriber's calls can go unseen. Calls in a range
/// whose `__start` came earlier may have been missed: the checker does not judge their
/// pairing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbesLive {
    pub callbacks: Vec<ProbedCallback>,
}

/// One callback in a [`ProbesLive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbedCallback {
    /// `subscriber_start`, `subscriber_end`, `interval_invalidate`, `interval_start` or
    /// `interval_finish`.
    pub hook: Hook,
    /// The symbol the callback's events carry in `callback`.
    pub callback: Symbol,
    /// The callback's address (absent in hand-written traces).
    pub address: Option<Addr>,
}

impl ProbedCallback {
    /// The hooks whose probes sit on subscriber callbacks.
    pub const HOOKS: [Hook; 5] = [
        Hook::SubscriberStart,
        Hook::SubscriberEnd,
        Hook::IntervalInvalidate,
        Hook::IntervalStart,
        Hook::IntervalFinish,
    ];
}

impl Event {
    /// An event with only `ts` and `body` set.
    pub fn new(ts: u64, body: EventBody) -> Event {
        Event { ts, seq: None, cpu: None, pid: None, comm: None, stack: None, body }
    }

    /// The thread the event happened on (`lost` has none).
    pub fn tid(&self) -> Option<u32> {
        Some(match &self.body {
            EventBody::RangeStart(c) => c.tid,
            EventBody::RangeStartRet(r) => r.tid,
            EventBody::RangeEnd(e) => e.call.tid,
            EventBody::SubscriberStart(s) => s.tid,
            EventBody::SubscriberEnd(s) => s.tid,
            EventBody::IntervalInvalidate(i) => i.tid,
            EventBody::IntervalStart(i) => i.tid,
            EventBody::IntervalFinish(i) => i.tid,
            EventBody::ItreeEnd(i) => i.tid,
            EventBody::Warn(w) => w.tid,
            EventBody::TaskExit(t) => t.tid,
            EventBody::Lost(_) | EventBody::ProbesLive(_) => return None,
        })
    }

    pub fn kind(&self) -> EventType {
        self.body.kind()
    }
}

probe_common::named_enum! {
    /// The `type` of an event.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum EventType {
        RangeStart => "range_start",
        RangeStartRet => "range_start_ret",
        RangeEnd => "range_end",
        SubscriberStart => "subscriber_start",
        SubscriberEnd => "subscriber_end",
        IntervalInvalidate => "interval_invalidate",
        ItreeEnd => "itree_end",
        Warn => "warn",
        TaskExit => "task_exit",
        Lost => "lost",
        ProbesLive => "probes_live",
        IntervalStart => "interval_start",
        IntervalFinish => "interval_finish",
    }
}

impl EventType {
    /// Position in [`EventType::ALL`], for per-type counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl EventBody {
    pub fn kind(&self) -> EventType {
        match self {
            EventBody::RangeStart(_) => EventType::RangeStart,
            EventBody::RangeStartRet(_) => EventType::RangeStartRet,
            EventBody::RangeEnd(_) => EventType::RangeEnd,
            EventBody::SubscriberStart(_) => EventType::SubscriberStart,
            EventBody::SubscriberEnd(_) => EventType::SubscriberEnd,
            EventBody::IntervalInvalidate(_) => EventType::IntervalInvalidate,
            EventBody::IntervalStart(_) => EventType::IntervalStart,
            EventBody::IntervalFinish(_) => EventType::IntervalFinish,
            EventBody::ItreeEnd(_) => EventType::ItreeEnd,
            EventBody::Warn(_) => EventType::Warn,
            EventBody::TaskExit(_) => EventType::TaskExit,
            EventBody::Lost(_) => EventType::Lost,
            EventBody::ProbesLive(_) => EventType::ProbesLive,
        }
    }
}
