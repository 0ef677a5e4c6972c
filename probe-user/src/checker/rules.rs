//! The rules the checker enforces, as one table (`rules!` below): per rule its id (stable:
//! sinks, dashboards and tests match on it), severity, the hooks it needs to be checkable at
//! all, whether lost events can fake it, and a one-line summary. [`RuleId`], [`RuleId::ALL`] and
//! every accessor come from that table; adding a rule is one row (plus its detection).
use std::fmt;

use serde::{Serialize, Serializer};

use crate::{
    kernel_facts::{Fact, KernelVersion},
    trace::{AttachState, Header, Hook},
};

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

/// Declares the rules: one row per rule, and from the rows [`RuleId`], [`RULES`] and
/// [`RuleId::ALL`] (in row order, which is the order of every report).
macro_rules! rules {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            id: $id:literal,
            severity: $severity:ident,
            hooks: [$($hook:ident),* $(,)?],
            affected_by_loss: $loss:literal,
            summary: $summary:literal $(,)?
        }
    )*) => {
        /// A rule the checker enforces: one row of the table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId {
            $($(#[$doc])* $variant,)*
        }

        /// Every rule's row, indexed by [`RuleId::index`].
        pub const RULES: [Rule; [$(RuleId::$variant),*].len()] = [$(
            Rule {
                id: RuleId::$variant,
                name: $id,
                severity: Severity::$severity,
                required_hooks: &[$(Hook::$hook),*],
                affected_by_loss: $loss,
                summary: $summary,
            },
        )*];

        impl RuleId {
            pub const ALL: [RuleId; RULES.len()] = [$(RuleId::$variant),*];
        }
    };
}

/// One row of the rule table: everything that identifies a rule outside its detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    /// The stable id sinks, dashboards, `--allow` and tests match on.
    pub name: &'static str,
    pub severity: Severity,
    /// Hooks whose events the rule cannot be decided without.
    pub required_hooks: &'static [Hook],
    /// Whether losing events can produce a false positive of this rule.
    pub affected_by_loss: bool,
    /// One line on what the rule means.
    pub summary: &'static str,
}

// The rule table. The JSON schema's rule enum (docs/check/report.schema.json) is generated
// from it (`cargo xtask schema`; checked by checker/schema.rs), and the rules table in
// docs/check.md is checked against it by tests/check_reports.rs.
rules! {
    UnpairedStart {
        id: "unpaired-start",
        severity: Error,
        // Without the return value a failed start would look open forever.
        hooks: [RangeStart, RangeStartRet, RangeEnd],
        affected_by_loss: true,
        summary: "__start returned 0 and no __end for that (task, range) followed",
    }
    UnpairedEnd {
        id: "unpaired-end",
        severity: Error,
        hooks: [RangeStart, RangeEnd],
        affected_by_loss: true,
        summary: "__end with no open __start for that (task, range)",
    }
    EndAfterFailedStart {
        id: "end-after-failed-start",
        severity: Error,
        // As for unpaired-start: without the return value no start looks failed.
        hooks: [RangeStart, RangeStartRet, RangeEnd],
        affected_by_loss: true,
        summary: "__start returned non-zero and an __end for it followed anyway",
    }
    RangeMismatch {
        id: "range-mismatch",
        severity: Error,
        hooks: [RangeStart, RangeEnd],
        affected_by_loss: false,
        summary: "__end's mm/start/end/event/flags differ from its __start",
    }
    NestingOrder {
        id: "nesting-order",
        severity: Warning,
        hooks: [RangeStart, RangeEnd],
        affected_by_loss: true,
        summary: "ranges of one task closed out of LIFO order",
    }
    BlockableFailure {
        id: "blockable-failure",
        severity: Error,
        hooks: [RangeStart, RangeStartRet],
        affected_by_loss: false,
        summary: "a start (outer or a subscriber's) failed in a blockable range",
    }
    BadErrno {
        id: "bad-errno",
        severity: Warning,
        hooks: [RangeStartRet],
        affected_by_loss: false,
        summary: "a start failed with something other than -EAGAIN",
    }
    FailedStartHasEndOp {
        id: "failed-start-has-end-op",
        severity: Warning,
        hooks: [SubscriberStart],
        affected_by_loss: false,
        summary: "a subscriber whose start failed has an invalidate_range_end op",
    }
    NotifierUnpairedStart {
        id: "notifier-unpaired-start",
        severity: Error,
        // The outer calls delimit which subscriber ends belong to which start.
        hooks: [RangeStart, RangeEnd, SubscriberStart, SubscriberEnd],
        affected_by_loss: true,
        summary: "a subscriber's start succeeded and it never got its end for that range",
    }
    NotifierUnpairedEnd {
        id: "notifier-unpaired-end",
        severity: Error,
        hooks: [SubscriberStart, SubscriberEnd],
        affected_by_loss: true,
        summary: "a subscriber got an end for a range whose start it never saw succeed",
    }
    NotifierDoubleEnd {
        id: "notifier-double-end",
        severity: Error,
        // The outer calls delimit which subscriber ends belong to which start.
        hooks: [RangeStart, RangeEnd, SubscriberStart, SubscriberEnd],
        affected_by_loss: true,
        summary: "a subscriber got two ends for one range",
    }
    IntervalBlockableFalse {
        id: "interval-blockable-false",
        severity: Warning,
        hooks: [RangeStart, IntervalInvalidate],
        affected_by_loss: false,
        summary: "an interval subscriber returned false in a blockable range",
    }
    IntervalFinishMissing {
        id: "interval-finish-missing",
        severity: Error,
        // The outer return bounds the window in which the kernel runs the finish pass.
        hooks: [RangeStart, RangeStartRet, IntervalStart, IntervalFinish],
        affected_by_loss: true,
        summary: "a two-pass interval start returned true and set *finish, and __start returned without that finish",
    }
    IntervalFinishUnstarted {
        id: "interval-finish-unstarted",
        severity: Error,
        hooks: [RangeStart, IntervalStart, IntervalFinish],
        affected_by_loss: true,
        summary: "a two-pass interval finish ran for a finish pointer no successful start of that subscriber queued",
    }
    ItreeLeak {
        id: "itree-leak",
        severity: Error,
        hooks: [RangeStart, RangeStartRet, RangeEnd],
        affected_by_loss: true,
        summary: "an mm's interval tree stays invalidating with no open range",
    }
    BadRange {
        id: "bad-range",
        severity: Warning,
        hooks: [RangeStart],
        affected_by_loss: false,
        summary: "start >= end, unaligned addresses, or an event value outside the enum",
    }
    KernelWarn {
        id: "kernel-warn",
        severity: Error,
        hooks: [ErrorReportEnd],
        affected_by_loss: false,
        summary: "the kernel reported a WARN from mmu-notifier code while tracing",
    }
    EventsLost {
        id: "events-lost",
        severity: Warning,
        hooks: [],
        affected_by_loss: false,
        summary: "events were lost, so pairing results for the affected interval are incomplete",
    }
}

impl RuleId {
    /// This rule's row of the table.
    pub fn rule(self) -> &'static Rule {
        &RULES[self.index()]
    }

    pub fn as_str(self) -> &'static str {
        self.rule().name
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RULES.iter().find(|r| r.name == name).map(|r| r.id)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn severity(self) -> Severity {
        self.rule().severity
    }

    /// One line on what the rule means.
    pub fn summary(self) -> &'static str {
        self.rule().summary
    }

    /// Hooks whose events the rule cannot be decided without.
    pub fn required_hooks(self) -> &'static [Hook] {
        self.rule().required_hooks
    }

    /// Whether losing events can produce a false positive of this rule.
    pub fn affected_by_loss(self) -> bool {
        self.rule().affected_by_loss
    }
}

// Each row sits at its rule's index, so `rule()` is a plain lookup.
const _: () = {
    let mut i = 0;
    while i < RULES.len() {
        assert!(RULES[i].id as usize == i);
        i += 1;
    }
};

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

/// Whether the traced kernel cannot have what `hook` observes, by its release: the two-pass
/// interval callbacks exist from 7.2 on. Only consulted when the header does not mention the
/// hook at all (recordings made before these hooks existed); a tracer that knows them writes
/// `absent` itself, from the kernel's BTF.
fn kernel_lacks(hook: Hook, release: &str) -> bool {
    matches!(hook, Hook::IntervalStart | Hook::IntervalFinish)
        && KernelVersion::parse(release).is_some_and(|v| !v.has(Fact::TwoPassInterval))
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
                    // Nothing to observe on this kernel, so nothing the rule needs is missed.
                    AttachState::Attached(_) | AttachState::Absent(_) => None,
                    AttachState::Unavailable(None) if kernel_lacks(hook, &header.kernel) => None,
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
