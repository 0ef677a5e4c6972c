//! The first line of a trace: format version, kernel release and how each hook was attached.
use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};

/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// `{"mmnotif_trace":1,"kernel":…,"attach":{…},…}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// `uname -r` of the traced kernel.
    pub kernel: String,
    /// Hook name → attach method (`fentry`, `kprobe`, …, `replay`, `unavailable[: reason]`).
    pub attach: BTreeMap<String, String>,
    /// Keys this version does not interpret, kept so a rewrite does not lose them.
    pub extra: BTreeMap<String, serde_json::Value>,
}

probe_common::named_enum! {
    /// The hooks the `attach` map names, by their keys there.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Hook {
        RangeStart => "range_start",
        RangeStartRet => "range_start_ret",
        RangeEnd => "range_end",
        SubscriberStart => "subscriber_start",
        SubscriberEnd => "subscriber_end",
        IntervalInvalidate => "interval_invalidate",
        ItreeEnd => "itree_end",
        KvmUnmapHvaRange => "kvm_unmap_hva_range",
        ErrorReportEnd => "error_report_end",
        /// A probe on `__warn`, attached where `error_report_end` is missing (before 5.17).
        Warn => "warn",
        SchedProcessExit => "sched_process_exit",
        /// The two-pass interval callbacks (7.2+): `ops->invalidate_start`'s return and
        /// `ops->invalidate_finish`'s entry.
        IntervalStart => "interval_start",
        IntervalFinish => "interval_finish",
        /// Subscriber registrations (`__mmu_notifier_register`, `mmu_interval_notifier_insert*`):
        /// how the tracer learns which callbacks to probe. It yields no trace event.
        SubscriberRegistered => "subscriber_registered",
    }
}

impl Hook {
    /// The outer start/end hooks: pairing is observed only when all three are attached.
    pub const PAIRING: [Hook; 3] = [Hook::RangeStart, Hook::RangeStartRet, Hook::RangeEnd];

    /// The hook that delivers the same records when this one is unavailable.
    pub fn stand_in(self) -> Option<Hook> {
        match self {
            Hook::ErrorReportEnd => Some(Hook::Warn),
            _ => None,
        }
    }
}

/// By its name, as in the `attach` map.
impl Serialize for Hook {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How a hook was attached, as far as the checker cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachState<'a> {
    Attached(&'a str),
    /// Missing from the map, or `unavailable` with an optional reason.
    Unavailable(Option<&'a str>),
    /// `absent` with an optional reason: the traced kernel has nothing for this hook to
    /// observe (the two-pass interval callbacks before 7.2), so none of its events can occur.
    Absent(Option<&'a str>),
}

impl Header {
    /// A header for `kernel` with no hook attached yet (see [`Header::with_attach`]).
    pub fn new(kernel: impl Into<String>) -> Header {
        Header { kernel: kernel.into(), ..Header::default() }
    }

    pub fn with_attach(mut self, hook: Hook, method: impl Into<String>) -> Header {
        self.attach.insert(hook.as_str().to_owned(), method.into());
        self
    }

    pub fn attach_state(&self, hook: Hook) -> AttachState<'_> {
        match self.attach.get(hook.as_str()) {
            None => AttachState::Unavailable(None),
            Some(method) => {
                let method = method.trim();
                fn reason(rest: &str) -> Option<&str> {
                    let reason = rest.trim_start_matches([':', ' ']).trim();
                    (!reason.is_empty()).then_some(reason)
                }
                if let Some(rest) = method.strip_prefix("unavailable") {
                    AttachState::Unavailable(reason(rest))
                } else if let Some(rest) = method.strip_prefix("absent") {
                    AttachState::Absent(reason(rest))
                } else if method.is_empty() {
                    AttachState::Unavailable(None)
                } else {
                    AttachState::Attached(method)
                }
            }
        }
    }

    pub fn is_attached(&self, hook: Hook) -> bool {
        matches!(self.attach_state(hook), AttachState::Attached(_))
    }
}

impl Serialize for Header {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("mmnotif_trace", &FORMAT_VERSION)?;
        map.serialize_entry("kernel", &self.kernel)?;
        map.serialize_entry("attach", &self.attach)?;
        for (key, value) in &self.extra {
            if !matches!(key.as_str(), "mmnotif_trace" | "kernel" | "attach") {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}
