//! Each violation judged against the policy and the command's run (what it means for the run),
//! and each rule's result from its judged violations.
use std::collections::BTreeMap;

use super::{
    outcome::{Disposition, JudgedViolation, LiveRun, RuleResult, RuleVerdict, Source},
    policy::Policy,
};
use crate::{
    checker::{RuleId, Violation},
    trace::Header,
};

/// A range opened this shortly before the tracer detached was in flight, not missing its end.
pub const IN_FLIGHT_NS: u64 = 100_000_000;

/// The hooks a rule needs that this trace lacks.
fn missing_hooks(rule: RuleId, header: &Header) -> Vec<&'static str> {
    rule.required_hooks().iter().filter(|h| !header.is_attached(**h)).map(|h| h.as_str()).collect()
}

pub(super) fn judge(violation: Violation, policy: &Policy, source: &Source) -> JudgedViolation {
    let (disposition, allowed_by) = disposition_of(&violation, policy, source);
    JudgedViolation { violation, disposition, allowed_by }
}

fn disposition_of(v: &Violation, policy: &Policy, source: &Source) -> (Disposition, Option<String>) {
    if v.rule == RuleId::EventsLost {
        return if policy.allow_lost {
            (Disposition::Allowed, Some("--allow-lost".into()))
        } else {
            (Disposition::Failing, None)
        };
    }
    if let Some(run) = source.live() {
        if v.ts < run.command.started_ts {
            return (Disposition::BeforeCommand, None);
        }
        if v.rule == RuleId::UnpairedStart && in_flight_at_detach(v, run) {
            return (Disposition::InFlightAtDetach, None);
        }
    }
    if !policy.allow_lost && v.may_be_loss_artefact() {
        return (Disposition::AfterLoss, None);
    }
    if !policy.fails_on(v.rule) {
        return (Disposition::NotFailOn, None);
    }
    match policy.allowance(v) {
        Some(allow) => (Disposition::Allowed, Some(format!("--allow {allow}"))),
        None => (Disposition::Failing, None),
    }
}

fn in_flight_at_detach(v: &Violation, run: &LiveRun) -> bool {
    let (Some(task), Some(range)) = (&v.task, &v.range) else { return false };
    run.open_at_end.iter().any(|open| {
        open.tid == task.tid
            && range.ptr == Some(open.range)
            && open.started_ts.saturating_add(IN_FLIGHT_NS) >= run.detach_ts
    })
}

#[derive(Default)]
struct Tally {
    failing: u64,
    allowed: u64,
    not_fail_on: u64,
    outside_run: u64,
    after_loss: u64,
}

impl Tally {
    fn add(&mut self, d: Disposition, n: u64) {
        match d {
            Disposition::Failing => self.failing += n,
            Disposition::Allowed => self.allowed += n,
            Disposition::NotFailOn => self.not_fail_on += n,
            Disposition::BeforeCommand | Disposition::InFlightAtDetach => self.outside_run += n,
            Disposition::AfterLoss => self.after_loss += n,
        }
    }
}

/// "1 violation", "3 violations"; irregular plurals are given whole ("process|processes").
pub(super) fn plural(n: u64, word: &str) -> String {
    let (one, many) = word
        .split_once('|')
        .map_or_else(|| (word.to_owned(), format!("{word}s")), |(a, b)| (a.to_owned(), b.to_owned()));
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

pub(super) struct RuleContext<'a> {
    pub(super) header: &'a Header,
    pub(super) policy: &'a Policy,
    pub(super) checked: &'a [RuleId],
    pub(super) counts: &'a BTreeMap<RuleId, u64>,
    pub(super) lost: u64,
}

pub(super) fn rule_result(rule: RuleId, judged: &[JudgedViolation], cx: &RuleContext<'_>) -> RuleResult {
    let mut tally = Tally::default();
    let mut stored = 0u64;
    for j in judged.iter().filter(|j| j.violation.rule == rule) {
        stored += 1;
        tally.add(j.disposition, 1);
    }
    let total = cx.counts.get(&rule).copied().unwrap_or(0).max(stored);
    // Violations beyond the checker's storage cap are known by rule only: judged by rule,
    // and counted as failing unless the rule is excluded or allowed whatever the callback.
    let unstored = total - stored;
    if unstored > 0 {
        let d = if rule == RuleId::EventsLost {
            if cx.policy.allow_lost { Disposition::Allowed } else { Disposition::Failing }
        } else if !cx.policy.fails_on(rule) {
            Disposition::NotFailOn
        } else if cx.policy.allows_all_of(rule).is_some() {
            Disposition::Allowed
        } else {
            Disposition::Failing
        };
        tally.add(d, unstored);
    }
    let lost_words = format!("{} lost", plural(cx.lost, "event"));
    let (verdict, reason) = if tally.failing > 0 {
        let words = if tally.failing == total {
            plural(tally.failing, "failing violation")
        } else {
            format!("{} of {total} violations failing", tally.failing)
        };
        (RuleVerdict::Fail, Some(words))
    } else if !cx.checked.contains(&rule) {
        let hooks = missing_hooks(rule, cx.header);
        (
            RuleVerdict::NotChecked,
            Some(format!("not checked: needs {} (not attached on this kernel)", hooks.join(", "))),
        )
    } else if tally.allowed > 0 {
        let by = if rule == RuleId::EventsLost {
            "--allow-lost".to_owned()
        } else {
            let specs: Vec<String> =
                cx.policy.allow.iter().filter(|a| a.rule == rule).map(|a| format!("--allow {a}")).collect();
            specs.join(", ")
        };
        (RuleVerdict::Allowed, Some(format!("{} allowed as a known issue ({by})", plural(tally.allowed, "violation"))))
    } else if total > 0 {
        let mut parts = Vec::new();
        if tally.not_fail_on > 0 {
            parts.push(format!(
                "{} not counted: the rule is not among --fail-on",
                plural(tally.not_fail_on, "violation")
            ));
        }
        if tally.outside_run > 0 {
            parts.push(format!("{} outside the command's run", plural(tally.outside_run, "violation")));
        }
        if tally.after_loss > 0 {
            parts.push(format!(
                "{} found after {lost_words}: possibly their artefact",
                plural(tally.after_loss, "violation")
            ));
        }
        let verdict = if tally.after_loss > 0 { RuleVerdict::Incomplete } else { RuleVerdict::Reported };
        (verdict, Some(parts.join("; ")))
    } else if cx.lost > 0 && rule.affected_by_loss() {
        if cx.policy.allow_lost {
            (
                RuleVerdict::Pass,
                Some(format!("{lost_words}, tolerated by --allow-lost: a violation may have been missed")),
            )
        } else {
            (RuleVerdict::Incomplete, Some(format!("incomplete: {lost_words}, so a violation may have been missed")))
        }
    } else {
        (RuleVerdict::Pass, None)
    };
    RuleResult {
        rule,
        severity: rule.severity(),
        summary: rule.summary(),
        verdict,
        violations: total,
        failing: tally.failing,
        allowed: tally.allowed,
        not_fail_on: tally.not_fail_on,
        outside_run: tally.outside_run,
        after_loss: tally.after_loss,
        reason,
    }
}
