//! The rule ids the checker enforces (stable: sinks, dashboards and tests match on them) and
//! which hooks each rule needs to be checkable at all.
use std::fmt;

use serde::{Serialize, Serializer};

use crate::trace::{AttachState, Header, Hook};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    UnpairedStart,
    UnpairedEnd,
    EndAfterFailedStart,
    RangeMismatch,
    NestingOrder,
    BlockableFailure,
    BadErrno,
    FailedStartHasEndOp,
    NotifierUnpairedStart,
    NotifierUnpairedEnd,
    NotifierDoubleEnd,
    IntervalBlockableFalse,
    ItreeLeak,
    BadRange,
    KernelWarn,
    EventsLost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The kernel warns about it, or the trace may be wrong; pairing is not broken.
    Warning,
    /// State a subscriber relies on (counts, locks, sequence numbers) is left inconsistent.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

use Hook::*;

impl RuleId {
    pub const ALL: [RuleId; 16] = [
        RuleId::UnpairedStart,
        RuleId::UnpairedEnd,
        RuleId::EndAfterFailedStart,
        RuleId::RangeMismatch,
        RuleId::NestingOrder,
        RuleId::BlockableFailure,
        RuleId::BadErrno,
        RuleId::FailedStartHasEndOp,
        RuleId::NotifierUnpairedStart,
        RuleId::NotifierUnpairedEnd,
        RuleId::NotifierDoubleEnd,
        RuleId::IntervalBlockableFalse,
        RuleId::ItreeLeak,
        RuleId::BadRange,
        RuleId::KernelWarn,
        RuleId::EventsLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::UnpairedStart => "unpaired-start",
            RuleId::UnpairedEnd => "unpaired-end",
            RuleId::EndAfterFailedStart => "end-after-failed-start",
            RuleId::RangeMismatch => "range-mismatch",
            RuleId::NestingOrder => "nesting-order",
            RuleId::BlockableFailure => "blockable-failure",
            RuleId::BadErrno => "bad-errno",
            RuleId::FailedStartHasEndOp => "failed-start-has-end-op",
            RuleId::NotifierUnpairedStart => "notifier-unpaired-start",
            RuleId::NotifierUnpairedEnd => "notifier-unpaired-end",
            RuleId::NotifierDoubleEnd => "notifier-double-end",
            RuleId::IntervalBlockableFalse => "interval-blockable-false",
            RuleId::ItreeLeak => "itree-leak",
            RuleId::BadRange => "bad-range",
            RuleId::KernelWarn => "kernel-warn",
            RuleId::EventsLost => "events-lost",
        }
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn severity(self) -> Severity {
        match self {
            RuleId::NestingOrder
            | RuleId::BadErrno
            | RuleId::FailedStartHasEndOp
            | RuleId::IntervalBlockableFalse
            | RuleId::BadRange
            | RuleId::EventsLost => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// One line on what the rule means.
    pub fn summary(self) -> &'static str {
        match self {
            RuleId::UnpairedStart => "__start returned 0 and no __end for that (task, range) followed",
            RuleId::UnpairedEnd => "__end with no open __start for that (task, range)",
            RuleId::EndAfterFailedStart => "__start returned non-zero and an __end for it followed anyway",
            RuleId::RangeMismatch => "__end's mm/start/end/event/flags differ from its __start",
            RuleId::NestingOrder => "ranges of one task closed out of LIFO order",
            RuleId::BlockableFailure => "a start (outer or a subscriber's) failed in a blockable range",
            RuleId::BadErrno => "a start failed with something other than -EAGAIN",
            RuleId::FailedStartHasEndOp => "a subscriber whose start failed has an invalidate_range_end op",
            RuleId::NotifierUnpairedStart => "a subscriber's start succeeded and it never got its end for that range",
            RuleId::NotifierUnpairedEnd => "a subscriber got an end for a range whose start it never saw succeed",
            RuleId::NotifierDoubleEnd => "a subscriber got two ends for one range",
            RuleId::IntervalBlockableFalse => "an interval subscriber returned false in a blockable range",
            RuleId::ItreeLeak => "an mm's interval tree stays invalidating with no open range",
            RuleId::BadRange => "start >= end, unaligned addresses, or an event value outside the enum",
            RuleId::KernelWarn => "the kernel reported a WARN from mmu-notifier code while tracing",
            RuleId::EventsLost => "events were lost, so pairing results for the affected interval are incomplete",
        }
    }

    /// Hooks whose events the rule cannot be decided without.
    pub fn required_hooks(self) -> &'static [Hook] {
        match self {
            // Without the return value a failed start would look open forever.
            RuleId::UnpairedStart | RuleId::EndAfterFailedStart => &[RangeStart, RangeStartRet, RangeEnd],
            RuleId::UnpairedEnd | RuleId::RangeMismatch | RuleId::NestingOrder => &[RangeStart, RangeEnd],
            RuleId::BlockableFailure => &[RangeStart, RangeStartRet],
            RuleId::BadErrno => &[RangeStartRet],
            RuleId::FailedStartHasEndOp => &[SubscriberStart],
            // The outer calls delimit which subscriber ends belong to which start.
            RuleId::NotifierUnpairedStart | RuleId::NotifierDoubleEnd => {
                &[RangeStart, RangeEnd, SubscriberStart, SubscriberEnd]
            }
            RuleId::NotifierUnpairedEnd => &[SubscriberStart, SubscriberEnd],
            RuleId::IntervalBlockableFalse => &[RangeStart, IntervalInvalidate],
            RuleId::ItreeLeak => &[RangeStart, RangeStartRet, RangeEnd],
            RuleId::BadRange => &[RangeStart],
            RuleId::KernelWarn => &[ErrorReportEnd],
            RuleId::EventsLost => &[],
        }
    }

    /// Whether losing events can produce a false positive of this rule.
    pub fn affected_by_loss(self) -> bool {
        matches!(
            self,
            RuleId::UnpairedStart
                | RuleId::UnpairedEnd
                | RuleId::EndAfterFailedStart
                | RuleId::NestingOrder
                | RuleId::NotifierUnpairedStart
                | RuleId::NotifierUnpairedEnd
                | RuleId::NotifierDoubleEnd
                | RuleId::ItreeLeak
        )
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A rule the attach set cannot support, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotChecked {
    pub rule: RuleId,
    pub reason: String,
}

/// Which rules this trace can check, decided once from the header.
#[derive(Clone, Debug)]
pub struct RuleSet {
    checked: [bool; RuleId::ALL.len()],
    not_checked: Vec<NotChecked>,
}

impl RuleSet {
    pub fn from_header(header: &Header) -> RuleSet {
        let mut checked = [true; RuleId::ALL.len()];
        let mut not_checked = Vec::new();
        for rule in RuleId::ALL {
            let missing: Vec<String> = rule
                .required_hooks()
                .iter()
                .filter_map(|&hook| match header.attach_state(hook) {
                    AttachState::Attached(_) => None,
                    _ if hook
                        .stand_in()
                        .is_some_and(|s| matches!(header.attach_state(s), AttachState::Attached(_))) =>
                    {
                        None
                    }
                    AttachState::Unavailable(Some(reason)) => Some(format!("{hook} ({reason})")),
                    AttachState::Unavailable(None) => Some(hook.to_string()),
                })
                .collect();
            if !missing.is_empty() {
                checked[rule.index()] = false;
                let plural = if missing.len() == 1 { "hook" } else { "hooks" };
                not_checked.push(NotChecked {
                    rule,
                    reason: format!("needs the {plural} {}, not attached in this trace", missing.join(", ")),
                });
            }
        }
        RuleSet { checked, not_checked }
    }

    pub fn is_checked(&self, rule: RuleId) -> bool {
        self.checked.get(rule.index()).copied().unwrap_or(false)
    }

    pub fn checked(&self) -> Vec<RuleId> {
        RuleId::ALL.into_iter().filter(|r| self.is_checked(*r)).collect()
    }

    pub fn not_checked(&self) -> &[NotChecked] {
        &self.not_checked
    }
}
