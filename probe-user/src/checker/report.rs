//! What the checker produces: violations as they are found, and the end-of-trace report.
use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use super::{
    itree_leak::ItreeLeak,
    rules::{NotChecked, RuleId, Severity},
    stats::StatsSummary,
};
use crate::trace::{Addr, Comm, MmuEvent, Stack, Symbol};

/// The task a violation happened on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskRef {
    pub pid: Option<u32>,
    pub tid: u32,
    pub comm: Option<Comm>,
}

/// The range a violation is about, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RangeRef {
    /// Address of the `struct mmu_notifier_range`.
    pub ptr: Option<Addr>,
    pub start: Option<Addr>,
    pub end: Option<Addr>,
    pub event: Option<MmuEvent>,
    pub blockable: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: RuleId,
    pub severity: Severity,
    /// Trace time of the event that made the violation certain.
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mm: Option<Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<Symbol>,
    /// Ids (line numbers, or live sequence numbers) of the events involved, oldest first.
    pub events: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Stack>,
    pub explanation: String,
    /// The known kernel bug or fix this matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Violation {
    /// Found at or after the earliest moment events can have been lost, by a rule that pairs
    /// events: the lost event may be all there is to it.
    pub fn may_be_loss_artefact(&self) -> bool {
        self.notes.iter().any(|n| n == super::wording::LOSS_NOTE)
    }

    pub fn new(rule: RuleId, ts: u64, explanation: String) -> Violation {
        Violation {
            rule,
            severity: rule.severity(),
            ts,
            task: None,
            mm: None,
            range: None,
            subscriber: None,
            callback: None,
            events: Vec::new(),
            stack: None,
            explanation,
            hint: None,
            notes: Vec::new(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ts={}", self.severity, self.rule, self.ts)?;
        if let Some(task) = &self.task {
            write!(f, " tid={}", task.tid)?;
            if let Some(pid) = task.pid {
                write!(f, " pid={pid}")?;
            }
            if let Some(comm) = &task.comm {
                write!(f, " comm={comm}")?;
            }
        }
        if let Some(mm) = self.mm {
            write!(f, " mm={mm}")?;
        }
        if let Some(range) = &self.range {
            if let Some(ptr) = range.ptr {
                write!(f, " range={ptr}")?;
            }
            if let (Some(start), Some(end)) = (range.start, range.end) {
                write!(f, " [{start}, {end})")?;
            }
            if let Some(event) = range.event {
                write!(f, " {event}")?;
            }
            if let Some(b) = range.blockable {
                f.write_str(if b { " blockable" } else { " non-blockable" })?;
            }
        }
        if let Some(sub) = self.subscriber {
            write!(f, " subscriber={sub}")?;
        }
        if let Some(cb) = &self.callback {
            write!(f, " callback={cb}")?;
        }
        if !self.events.is_empty() {
            let ids: Vec<String> = self.events.iter().map(u64::to_string).collect();
            write!(f, " events={}", ids.join(","))?;
        }
        write!(f, "\n    {}", self.explanation)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        for note in &self.notes {
            write!(f, "\n    note: {note}")?;
        }
        if let Some(stack) = &self.stack {
            for frame in stack {
                write!(f, "\n      {frame}")?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No violation, nothing lost (rules listed as not checked were not checked).
    Pass,
    /// At least one violation other than `events-lost`.
    Fail,
    /// No violation found, but events were lost.
    Incomplete,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Incomplete => "INCOMPLETE",
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub verdict: Verdict,
    /// False when events were lost or some rules could not be checked.
    pub complete: bool,
    pub violations: Vec<Violation>,
    /// Violations found beyond the stored ones (counted in `violation_counts`).
    pub violations_not_stored: u64,
    pub violation_counts: BTreeMap<RuleId, u64>,
    pub checked: Vec<RuleId>,
    pub not_checked: Vec<NotChecked>,
    pub lost: u64,
    pub stats: StatsSummary,
    /// Every mm whose interval tree leaked: who, what, and how many ranges so far.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub itree_leaks: Vec<ItreeLeak>,
}

/// A duration for people: `850ns`, `12.3us`, `4.1ms`, `2.00s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kernel = if self.kernel.is_empty() { "unknown kernel" } else { &self.kernel };
        writeln!(
            f,
            "verdict: {} ({kernel}; {} of {} rules checked{})",
            self.verdict,
            self.checked.len(),
            RuleId::ALL.len(),
            if self.lost > 0 { format!("; {} events lost", self.lost) } else { String::new() }
        )?;
        for v in &self.violations {
            writeln!(f, "{v}")?;
        }
        if self.violations_not_stored > 0 {
            writeln!(f, "... and {} more violations (counted below, not listed)", self.violations_not_stored)?;
        }
        if !self.violation_counts.is_empty() {
            writeln!(f, "violations by rule:")?;
            for (rule, n) in &self.violation_counts {
                writeln!(f, "  {rule:<26} {n}")?;
            }
        }
        if !self.not_checked.is_empty() {
            writeln!(f, "not checked:")?;
            for nc in &self.not_checked {
                writeln!(f, "  {:<26} {}", nc.rule.as_str(), nc.reason)?;
            }
        }
        let t = &self.stats.totals;
        let d = &t.range_durations;
        writeln!(
            f,
            "totals: {} events, {} range starts ({} failed), {} ends, {} open, {} warns ({} unrelated), range duration p50 {} p99 {} max {}",
            t.events,
            t.range_starts,
            t.range_failures,
            t.range_ends,
            t.open_now,
            t.warns,
            t.unrelated_warns,
            fmt_ns(d.p50_ns),
            fmt_ns(d.p99_ns),
            fmt_ns(d.max_ns)
        )?;
        if !self.stats.by_type.is_empty() {
            let parts: Vec<String> = self.stats.by_type.iter().map(|(k, n)| format!("{k}={n}")).collect();
            writeln!(f, "events by type: {}", parts.join(" "))?;
        }
        if !self.stats.notifiers.is_empty() {
            writeln!(f, "notifiers:")?;
            writeln!(
                f,
                "  {:<48} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>9}",
                "callback", "starts", "ends", "failed", "open", "p50", "p99", "max"
            )?;
            for n in &self.stats.notifiers {
                writeln!(
                    f,
                    "  {:<48} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>9}",
                    n.callback.as_str(),
                    n.starts,
                    n.ends,
                    n.failures,
                    n.open_now,
                    fmt_ns(n.durations.p50_ns),
                    fmt_ns(n.durations.p99_ns),
                    fmt_ns(n.durations.max_ns)
                )?;
            }
        }
        if !self.stats.mms.is_empty() {
            writeln!(f, "mms:")?;
            for m in &self.stats.mms {
                let mm = m.mm.map_or_else(|| "(other)".to_owned(), |a| a.to_string());
                let comm = m.comm.as_ref().map_or("?", Comm::as_str);
                let pid = m.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
                writeln!(
                    f,
                    "  {mm:<20} pid {pid:<8} {comm:<16} starts {} ends {} failed {} open {} subscriber calls {}",
                    m.starts, m.ends, m.failures, m.open_now, m.subscriber_calls
                )?;
            }
        }
        Ok(())
    }
}
