//! The summary `check` prints on stderr (stdout belongs to the command and to `--ktap`).

use super::outcome::{CheckOutcome, Disposition, RuleVerdict};

/// At most this many failing violations are spelled out on stderr; the reports list them all.
const MAX_LISTED: usize = 20;

pub fn summary(o: &CheckOutcome) -> String {
    let mut lines = vec![format!("check: {} (exit status {})", o.status, o.exit_code())];
    lines.extend(o.reasons.iter().map(|r| format!("check: because {r}")));
    let failing: Vec<_> = o.violations.iter().filter(|j| j.disposition == Disposition::Failing).collect();
    for j in failing.iter().take(MAX_LISTED) {
        let v = &j.violation;
        let subject = v.callback.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
        lines.push(format!("check: [{}]{subject}: {}", v.rule, v.explanation));
    }
    if failing.len() > MAX_LISTED {
        lines.push(format!(
            "check: ... and {} more failing violations (see --json or --junit)",
            failing.len() - MAX_LISTED
        ));
    }
    // Not failing, but what someone chasing the run wants to see first after the failures.
    let after_loss: Vec<_> = o.violations.iter().filter(|j| j.disposition == Disposition::AfterLoss).collect();
    for j in after_loss.iter().take(MAX_LISTED) {
        let v = &j.violation;
        let subject = v.callback.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
        lines.push(format!("check: [{}]{subject} (after the loss, possibly its artefact): {}", v.rule, v.explanation));
    }
    if after_loss.len() > MAX_LISTED {
        lines.push(format!(
            "check: ... and {} more after the loss (see --json or --junit)",
            after_loss.len() - MAX_LISTED
        ));
    }
    lines.extend(o.damage_lines().into_iter().map(|l| format!("check: {l}")));
    let count = |verdict: RuleVerdict| o.rules.iter().filter(|r| r.verdict == verdict).count();
    lines.push(format!(
        "check: rules: {} passed, {} failed, {} not checked, {} incomplete, {} allowed, {} reported only",
        count(RuleVerdict::Pass),
        count(RuleVerdict::Fail),
        count(RuleVerdict::NotChecked),
        count(RuleVerdict::Incomplete),
        count(RuleVerdict::Allowed),
        count(RuleVerdict::Reported)
    ));
    lines.extend(o.notes.iter().map(|n| format!("check: note: {n}")));
    lines.iter().map(|l| format!("mmnotif-trace: {l}\n")).collect()
}
