//! The event model: one [`Event`] per line of a v1 trace, the same values the live decoder
//! produces from kernel records. Serializing an `Event` yields exactly its v1 JSON line.
use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer};

use super::{addr::Addr, header::Hook};

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
    pub stack: Option<Vec<Symbol>>,
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

/// `enum mmu_notifier_event`. The numbering has been stable since each value was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmuEvent {
    Unmap,
    Clear,
    ProtectionVma,
    ProtectionPage,
    SoftDirty,
    /// Only for `->release`; never legitimately passed to `__start`.
    Release,
    Migrate,
    Exclusive,
    /// A value outside the enum.
    Other(u32),
}

impl MmuEvent {
    pub fn from_raw(value: u32) -> MmuEvent {
        match value {
            0 => MmuEvent::Unmap,
            1 => MmuEvent::Clear,
            2 => MmuEvent::ProtectionVma,
            3 => MmuEvent::ProtectionPage,
            4 => MmuEvent::SoftDirty,
            5 => MmuEvent::Release,
            6 => MmuEvent::Migrate,
            7 => MmuEvent::Exclusive,
            other => MmuEvent::Other(other),
        }
    }

    pub fn from_name(name: &str) -> Option<MmuEvent> {
        Some(match name {
            "unmap" => MmuEvent::Unmap,
            "clear" => MmuEvent::Clear,
            "protection_vma" => MmuEvent::ProtectionVma,
            "protection_page" => MmuEvent::ProtectionPage,
            "soft_dirty" => MmuEvent::SoftDirty,
            "release" => MmuEvent::Release,
            "migrate" => MmuEvent::Migrate,
            "exclusive" => MmuEvent::Exclusive,
            _ => return None,
        })
    }

    /// The v1 name, or `None` for a value outside the enum (written as a number).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            MmuEvent::Unmap => "unmap",
            MmuEvent::Clear => "clear",
            MmuEvent::ProtectionVma => "protection_vma",
            MmuEvent::ProtectionPage => "protection_page",
            MmuEvent::SoftDirty => "soft_dirty",
            MmuEvent::Release => "release",
            MmuEvent::Migrate => "migrate",
            MmuEvent::Exclusive => "exclusive",
            MmuEvent::Other(_) => return None,
        })
    }

    pub fn raw(self) -> u32 {
        match self {
            MmuEvent::Unmap => 0,
            MmuEvent::Clear => 1,
            MmuEvent::ProtectionVma => 2,
            MmuEvent::ProtectionPage => 3,
            MmuEvent::SoftDirty => 4,
            MmuEvent::Release => 5,
            MmuEvent::Migrate => 6,
            MmuEvent::Exclusive => 7,
            MmuEvent::Other(v) => v,
        }
    }
}

impl fmt::Display for MmuEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.raw()),
        }
    }
}

impl Serialize for MmuEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_u32(self.raw()),
        }
    }
}

/// `enum error_detector` of the `error_report_end` tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detector {
    Kfence,
    Kasan,
    Warning,
    Other(u32),
}

impl Detector {
    pub fn from_raw(value: u32) -> Detector {
        match value {
            0 => Detector::Kfence,
            1 => Detector::Kasan,
            2 => Detector::Warning,
            other => Detector::Other(other),
        }
    }

    pub fn from_name(name: &str) -> Option<Detector> {
        Some(match name {
            "kfence" => Detector::Kfence,
            "kasan" => Detector::Kasan,
            "warning" => Detector::Warning,
            _ => return None,
        })
    }

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Detector::Kfence => "kfence",
            Detector::Kasan => "kasan",
            Detector::Warning => "warning",
            Detector::Other(_) => return None,
        })
    }

    pub fn raw(self) -> u32 {
        match self {
            Detector::Kfence => 0,
            Detector::Kasan => 1,
            Detector::Warning => 2,
            Detector::Other(v) => v,
        }
    }
}

impl Serialize for Detector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_u32(self.raw()),
        }
    }
}

macro_rules! shared_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Cheap to clone (reference counted), so the checker can keep it per open range.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(text: &str) -> Self {
                $name(Arc::from(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::new(text)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(Arc::from(text))
            }
        }

        impl From<Arc<str>> for $name {
            fn from(text: Arc<str>) -> Self {
                $name(text)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

shared_text!(
    /// A kernel symbol, optionally with `+0xoff` and ` [module]`.
    Symbol
);
shared_text!(
    /// A task's command name.
    Comm
);

impl Symbol {
    /// The function name without `+0xoff`, `/0xsize` or a ` [module]` suffix.
    pub fn function(&self) -> &str {
        let text = self.as_str();
        let end = text.find(['+', ' ', '/']).unwrap_or(text.len());
        text.get(..end).unwrap_or(text)
    }
}

impl Comm {
    /// From a kernel `char comm[16]`: up to the first NUL, invalid UTF-8 replaced.
    pub fn from_kernel_bytes(bytes: &[u8]) -> Comm {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Comm::from(String::from_utf8_lossy(bytes.get(..len).unwrap_or(bytes)).into_owned())
    }
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

/// The `type` of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    RangeStart,
    RangeStartRet,
    RangeEnd,
    SubscriberStart,
    SubscriberEnd,
    IntervalInvalidate,
    ItreeEnd,
    Warn,
    TaskExit,
    Lost,
    ProbesLive,
    IntervalStart,
    IntervalFinish,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::RangeStart,
        EventType::RangeStartRet,
        EventType::RangeEnd,
        EventType::SubscriberStart,
        EventType::SubscriberEnd,
        EventType::IntervalInvalidate,
        EventType::ItreeEnd,
        EventType::Warn,
        EventType::TaskExit,
        EventType::Lost,
        EventType::ProbesLive,
        EventType::IntervalStart,
        EventType::IntervalFinish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RangeStart => "range_start",
            EventType::RangeStartRet => "range_start_ret",
            EventType::RangeEnd => "range_end",
            EventType::SubscriberStart => "subscriber_start",
            EventType::SubscriberEnd => "subscriber_end",
            EventType::IntervalInvalidate => "interval_invalidate",
            EventType::ItreeEnd => "itree_end",
            EventType::Warn => "warn",
            EventType::TaskExit => "task_exit",
            EventType::Lost => "lost",
            EventType::ProbesLive => "probes_live",
            EventType::IntervalStart => "interval_start",
            EventType::IntervalFinish => "interval_finish",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Position in [`EventType::ALL`], for per-type counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
