//! The full JSON report (schema: `docs/check/report.schema.json`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    command::CommandResult,
    outcome::{CheckOutcome, Disposition, JudgedViolation, RuleResult, Status},
    pid_tree::PidTreeSummary,
};
use crate::{
    checker::{NotChecked, RuleId, StatsSummary, TaskRef, itree_leak::ItreeLeak},
    inventory::BlockedTask,
    trace::Symbol,
};

/// Bumped when a field changes meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Session {
    /// Records the kernel side tried to emit.
    emitted: u64,
    received: u64,
    /// Dropped because the ring buffer was full.
    lost: u64,
    /// Probe hits the kernel did not run the tracer's programs for (its own miss counters).
    missed: u64,
    undecodable: u64,
    delivered: u64,
}

#[derive(Serialize)]
struct PolicyJson {
    allow: Vec<String>,
    /// Empty: every rule fails the run.
    fail_on: Vec<RuleId>,
    allow_lost: bool,
}

/// A WARN from mmu-notifier code, with the caller symbol.
#[derive(Serialize)]
struct KernelWarn<'a> {
    ts: u64,
    caller: Option<&'a Symbol>,
    function: Option<&'a str>,
    task: Option<&'a TaskRef>,
    hint: Option<&'a str>,
    disposition: Disposition,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    mmnotif_check: u32,
    status: Status,
    exit_status: u8,
    reasons: &'a [String],
    notes: &'a [String],
    kernel: &'a str,
    mode: &'static str,
    attach: &'a BTreeMap<String, String>,
    command: Option<&'a CommandResult>,
    replay: Option<String>,
    session: Option<Session>,
    pid_tree: Option<&'a PidTreeSummary>,
    policy: PolicyJson,
    rules: &'a [RuleResult],
    violations: &'a [JudgedViolation],
    violations_not_stored: u64,
    kernel_warns: Vec<KernelWarn<'a>>,
    not_checked: &'a [NotChecked],
    lost: u64,
    statistics: &'a StatsSummary,
    itree_leaks: &'a [ItreeLeak],
    stuck_tasks: &'a [BlockedTask],
}

/// The whole JSON document, pretty-printed.
pub fn render(o: &CheckOutcome) -> String {
    let live = o.source.live();
    let report = JsonReport {
        mmnotif_check: REPORT_VERSION,
        status: o.status,
        exit_status: o.exit_code(),
        reasons: &o.reasons,
        notes: &o.notes,
        kernel: &o.kernel,
        mode: if o.pairing { "full" } else { "degraded" },
        attach: &o.attach,
        command: live.map(|run| &run.command),
        replay: match &o.source {
            super::outcome::Source::Replay(path) => Some(path.display().to_string()),
            super::outcome::Source::Live(_) => None,
        },
        session: live.map(|run| Session {
            emitted: run.session.kernel.attempted,
            received: run.session.received,
            lost: run.session.kernel.lost,
            missed: run.session.kernel.missed,
            undecodable: run.session.undecodable,
            delivered: run.session.delivered,
        }),
        pid_tree: live.and_then(|run| run.pid_tree.as_ref()),
        policy: PolicyJson {
            allow: o.policy.allow.iter().map(ToString::to_string).collect(),
            fail_on: o.policy.fail_on.clone(),
            allow_lost: o.policy.allow_lost,
        },
        rules: &o.rules,
        violations: &o.violations,
        violations_not_stored: o.violations_not_stored,
        kernel_warns: o
            .violations_of(RuleId::KernelWarn)
            .map(|j| KernelWarn {
                ts: j.violation.ts,
                caller: j.violation.callback.as_ref(),
                function: j.violation.callback.as_ref().map(Symbol::function),
                task: j.violation.task.as_ref(),
                hint: j.violation.hint.as_deref(),
                disposition: j.disposition,
            })
            .collect(),
        not_checked: &o.not_checked,
        lost: o.lost,
        statistics: &o.stats,
        itree_leaks: &o.itree_leaks,
        stuck_tasks: live.map_or(&[], |run| run.stuck.as_slice()),
    };
    // Every map key here is a string and the only float is a finite timeout: this cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}
