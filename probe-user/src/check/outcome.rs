//! The verdict of a check: every violation and every rule's result (judged in `judge.rs`),
//! the status and its exit code, and what every report must say was not checked.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::Serialize;

use super::{
    command::CommandResult,
    judge::{RuleContext, judge, plural, rule_result},
    pid_tree::PidTreeSummary,
    policy::Policy,
};
use crate::{
    checker::{NotChecked, OpenRange, Report, RuleId, Severity, StatsSummary, Violation, itree_leak::ItreeLeak},
    exit,
    inventory::BlockedTask,
    kernel_facts::{Fact, KernelVersion},
    session::SessionTotals,
    trace::{AttachState, Header, Hook},
};

/// The run's verdict; each has its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing failed and everything the kernel allows was checked.
    Pass,
    /// A violation counts against the run, or the command failed.
    Fail,
    /// The start/end pair cannot be observed on this kernel: nothing about pairing was asserted.
    Skip,
    /// Events were lost, so a violation may have been missed.
    Incomplete,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Fail => exit::FAILED,
            Status::Skip => exit::SKIP,
            Status::Incomplete => exit::INCOMPLETE,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Incomplete => "INCOMPLETE",
        })
    }
}

/// What a violation means for the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// Counts against the run.
    Failing,
    /// Tolerated by `--allow` (or, for `events-lost`, `--allow-lost`).
    Allowed,
    /// Its rule is not among `--fail-on`.
    NotFailOn,
    /// Found before the command started: activity the tracer attached into, not the test's.
    BeforeCommand,
    /// An unpaired start of a range opened just before the tracer detached: still in flight.
    InFlightAtDetach,
    /// Found after events were lost (the kernel skipped a probe, the ring was full) by a rule
    /// that pairs events: the missing event may be all there is to it. The run is incomplete
    /// rather than failed; `--allow-lost` treats the trace as whole and these as failing.
    AfterLoss,
}

impl Disposition {
    /// Why a violation with this disposition does not count (None when it does).
    pub fn excuse(self) -> Option<&'static str> {
        match self {
            Disposition::Failing => None,
            Disposition::Allowed => Some("allowed as a known issue"),
            Disposition::NotFailOn => Some("its rule is not among --fail-on"),
            Disposition::BeforeCommand => Some("found before the command started"),
            Disposition::InFlightAtDetach => Some("the range was still in flight when the tracer detached"),
            Disposition::AfterLoss => Some("found after events were lost: it may be their artefact"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct JudgedViolation {
    #[serde(flatten)]
    pub violation: Violation,
    pub disposition: Disposition,
    /// The `--allow` (or `--allow-lost`) that tolerates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
}

/// A rule's result, one test case in KTAP and JUnit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleVerdict {
    Pass,
    Fail,
    /// The hooks it needs are not attached.
    NotChecked,
    /// Nothing found, but events were lost and the rule pairs events.
    Incomplete,
    /// Violations, all tolerated by `--allow`.
    Allowed,
    /// Violations, none counting (not in `--fail-on`, or outside the command's run).
    Reported,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleResult {
    pub rule: RuleId,
    pub severity: Severity,
    pub summary: &'static str,
    pub verdict: RuleVerdict,
    /// Every violation of the rule, stored or only counted.
    pub violations: u64,
    pub failing: u64,
    pub allowed: u64,
    pub not_fail_on: u64,
    pub outside_run: u64,
    /// Found after events were lost: they make the run incomplete, not failed.
    pub after_loss: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A live check's command and tracing session.
pub struct LiveRun {
    pub command: CommandResult,
    pub session: SessionTotals,
    pub pid_tree: Option<PidTreeSummary>,
    /// When the tracer was told to stop (CLOCK_MONOTONIC ns, the events' clock).
    pub detach_ts: u64,
    /// Ranges open when the tracer stopped.
    pub open_at_end: Vec<OpenRange>,
    /// Tasks stuck in a notifier wait when the command had ended (tied to a leaked mm when
    /// they wait on its interval tree).
    pub stuck: Vec<BlockedTask>,
}

pub enum Source {
    Live(Box<LiveRun>),
    Replay(PathBuf),
}

impl Source {
    pub fn live(&self) -> Option<&LiveRun> {
        match self {
            Source::Live(run) => Some(run.as_ref()),
            Source::Replay(_) => None,
        }
    }
}

pub struct CheckOutcome {
    pub status: Status,
    /// Why the status is not PASS; empty for PASS.
    pub reasons: Vec<String>,
    /// What was not checked, tolerated or left out, whatever the status.
    pub notes: Vec<String>,
    pub kernel: String,
    /// Whether the start/end pair could be observed (full mode).
    pub pairing: bool,
    pub attach: BTreeMap<String, String>,
    pub rules: Vec<RuleResult>,
    pub violations: Vec<JudgedViolation>,
    pub violations_not_stored: u64,
    pub not_checked: Vec<NotChecked>,
    pub lost: u64,
    pub stats: StatsSummary,
    /// Every mm whose interval tree leaked.
    pub itree_leaks: Vec<ItreeLeak>,
    pub policy: Policy,
    pub source: Source,
}

impl CheckOutcome {
    pub fn exit_code(&self) -> u8 {
        self.status.exit_code()
    }

    pub fn violations_of(&self, rule: RuleId) -> impl Iterator<Item = &JudgedViolation> {
        self.violations.iter().filter(move |v| v.violation.rule == rule)
    }

    /// What a leak left behind, one line each: every leaked mm with its size, then every task
    /// stuck in a notifier wait (live checks only). Shared by the text and KTAP reports.
    pub fn damage_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .itree_leaks
            .iter()
            .map(|l| {
                let owner = match (&l.comm, l.pid) {
                    (Some(c), Some(p)) => format!(" of pid {p} ({c})"),
                    _ => String::new(),
                };
                let kernel = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
                format!(
                    "interval-tree leak: mm {}{owner}: {} range(s) leaked; kernel active_invalidate_ranges {}, invalidate_seq {}",
                    l.mm,
                    l.leaked_ranges,
                    kernel(l.kernel_active_ranges),
                    kernel(l.kernel_invalidate_seq)
                )
            })
            .collect();
        if let Some(run) = self.source.live() {
            lines.extend(run.stuck.iter().map(|t| format!("stuck: {}", t.describe())));
        }
        lines
    }
}

/// Why nothing about pairing can be asserted, when the start/end pair is not observable.
pub fn skip_reason(header: &Header) -> Option<String> {
    // Hooks refused for the same reason share it, so a long reason is given once.
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for hook in [Hook::RangeStart, Hook::RangeEnd] {
        let reason = match header.attach_state(hook) {
            AttachState::Attached(_) => continue,
            AttachState::Unavailable(reason) | AttachState::Absent(reason) => reason.unwrap_or("not attached"),
        };
        match groups.iter_mut().find(|(_, r)| *r == reason) {
            Some((hooks, _)) => hooks.push(hook.as_str()),
            None => groups.push((vec![hook.as_str()], reason)),
        }
    }
    let missing: Vec<String> = groups.iter().map(|(hooks, reason)| format!("{}: {reason}", hooks.join(", "))).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no start/end probe: __mmu_notifier_invalidate_range_start/_end cannot be traced here, so invalidation pairing was not asserted ({})",
            missing.join("; ")
        )
    })
}

/// Judges a checker report: `header` is the trace's (which hooks were attached), `source` the
/// command's run (live) or the trace file (replay).
pub fn evaluate(report: Report, header: &Header, policy: &Policy, source: Source) -> CheckOutcome {
    let Report {
        kernel,
        violations,
        violations_not_stored,
        violation_counts,
        checked,
        not_checked,
        lost,
        stats,
        itree_leaks,
        ..
    } = report;
    let judged: Vec<JudgedViolation> = violations.into_iter().map(|v| judge(v, policy, &source)).collect();
    let cx = RuleContext { header, policy, checked: &checked, counts: &violation_counts, lost };
    let rules: Vec<RuleResult> = RuleId::ALL.into_iter().map(|rule| rule_result(rule, &judged, &cx)).collect();
    let skip = skip_reason(header);

    let mut reasons = Vec::new();
    let failing: Vec<String> = rules
        .iter()
        .filter(|r| r.rule != RuleId::EventsLost && r.failing > 0)
        .map(|r| format!("{}={}", r.rule, r.failing))
        .collect();
    if !failing.is_empty() {
        let n: u64 = rules.iter().filter(|r| r.rule != RuleId::EventsLost).map(|r| r.failing).sum();
        reasons.push(format!("{} ({})", plural(n, "failing violation"), failing.join(", ")));
    }
    if let Some(run) = source.live()
        && !run.command.end.passed()
    {
        reasons.push(format!("the command failed: {}: {}", run.command.command_line(), run.command.end.describe()));
    }
    let status = if !reasons.is_empty() {
        Status::Fail
    } else if lost > 0 && !policy.allow_lost {
        reasons.push(format!(
            "{} lost before reaching userspace, so rules that pair events may have missed a violation (--allow-lost accepts this)",
            plural(lost, "event was|events were")
        ));
        let after_loss: Vec<String> =
            rules.iter().filter(|r| r.after_loss > 0).map(|r| format!("{}={}", r.rule, r.after_loss)).collect();
        if !after_loss.is_empty() {
            let n: u64 = rules.iter().map(|r| r.after_loss).sum();
            reasons.push(format!(
                "{} found after the loss may be its artefact ({}): not counted as failing",
                plural(n, "violation"),
                after_loss.join(", ")
            ));
        }
        Status::Incomplete
    } else if let Some(why) = &skip {
        reasons.push(why.clone());
        Status::Skip
    } else {
        Status::Pass
    };

    let mut notes = Vec::new();
    if !not_checked.is_empty() {
        let names: Vec<&str> = not_checked.iter().map(|n| n.rule.as_str()).collect();
        notes.push(format!(
            "{} of {} rules not checked (their hooks are not attached): {}",
            not_checked.len(),
            RuleId::ALL.len(),
            names.join(", ")
        ));
    }
    if let Some(note) = uncounted_skips(header) {
        notes.push(note);
    }
    if lost > 0 && policy.allow_lost {
        notes.push(format!(
            "{} lost, tolerated by --allow-lost: rules that pair events may have missed a violation",
            plural(lost, "event")
        ));
    }
    let sum = |f: fn(&RuleResult) -> u64| rules.iter().filter(|r| r.rule != RuleId::EventsLost).map(f).sum::<u64>();
    let (allowed, not_fail_on, outside) = (sum(|r| r.allowed), sum(|r| r.not_fail_on), sum(|r| r.outside_run));
    if allowed > 0 {
        notes.push(format!("{} allowed as known issues", plural(allowed, "violation")));
    }
    if not_fail_on > 0 {
        notes.push(format!("{} of rules not among --fail-on, not counted", plural(not_fail_on, "violation")));
    }
    if outside > 0 {
        notes.push(format!(
            "{} outside the command's run (before it started, or ranges in flight when the tracer detached), not counted",
            plural(outside, "violation")
        ));
    }
    if violations_not_stored > 0 {
        notes.push(format!(
            "{violations_not_stored} further violations were counted but not stored; they are judged by rule only"
        ));
    }
    if let Some(run) = source.live() {
        if run.session.undecodable > 0 {
            notes.push(format!("{} kernel records could not be decoded", run.session.undecodable));
        }
        if let Some(incomplete) = run.session.kernel.incomplete.describe() {
            notes.push(format!("{incomplete} kernel records arrived incomplete"));
        }
        if let Some(tree) = &run.pid_tree {
            notes.push(format!(
                "--pid-tree (membership from {}): kept {} of {} (the command and its descendants); left out {} of {} other processes, kernel threads included",
                tree.membership_source,
                plural(tree.events_kept, "event"),
                plural(tree.processes_inside, "process|processes"),
                plural(tree.events_outside, "event"),
                tree.processes_outside
            ));
            if tree.fork_events_lost > 0 {
                notes.push(format!(
                    "--pid-tree: fork notifications were dropped {}; processes not seen forking were placed from /proc",
                    plural(tree.fork_events_lost, "time")
                ));
            }
            if tree.events_gone > 0 {
                notes.push(format!(
                    "--pid-tree: left out {} of {} that exited before their ancestry could be read (not checked)",
                    plural(tree.events_gone, "event"),
                    plural(tree.processes_gone, "process|processes")
                ));
            }
        }
    }

    CheckOutcome {
        status,
        reasons,
        notes,
        kernel,
        pairing: skip.is_none(),
        attach: header.attach.clone(),
        rules,
        violations: judged,
        violations_not_stored,
        not_checked,
        lost,
        stats,
        itree_leaks,
        policy: policy.clone(),
        source,
    }
}

/// Where kprobes were used on a kernel that skips their programs without counting (another BPF
/// program or a map syscall active on that CPU, a re-entered kprobe, a kretprobe out of
/// instances), a miss of that kind is in no lost count: say so.
fn uncounted_skips(header: &Header) -> Option<String> {
    let kprobes = header.attach.values().any(|m| m == "kprobe" || m == "kretprobe");
    let version = KernelVersion::parse(&header.kernel)?;
    (kprobes && !version.has(Fact::KprobeSkipsCounted)).then(|| {
        format!(
            "kernel {} does not count the kprobe programs it skips (from {} it does): a callback missed that way is in no lost count",
            header.kernel,
            Fact::KprobeSkipsCounted.release()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kernel: &str, method: &str) -> Header {
        Header::new(kernel).with_attach(Hook::SubscriberStart, method)
    }

    #[test]
    fn uncounted_kprobe_skips_are_noted_only_where_kprobes_ran_on_an_older_kernel() {
        let note = uncounted_skips(&header("6.1.0-57-amd64", "kprobe"));
        assert!(note.as_deref().is_some_and(|n| n.contains("6.1.0-57-amd64") && n.contains("v6.7")), "{note:?}");
        assert_eq!(uncounted_skips(&header("6.12.95+deb12-amd64", "kprobe")), None);
        assert_eq!(uncounted_skips(&header("6.1.0-57-amd64", "fentry")), None);
    }
}
