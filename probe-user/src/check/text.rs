//! The summary `check` prints on stderr (stdout belongs to the command and to `--ktap`).

use super::outcome::{CheckOutcome, Disposition, RuleVerdict};

/// At most this many violations of each listed kind are spelled out on stderr; the reports
/// list them all.
const MAX_LISTED: usize = 20;

/// One line per violation with `disposition` (at most [`MAX_LISTED`]), then how many more.
fn list(lines: &mut Vec<String>, o: &CheckOutcome, disposition: Disposition, tag: &str, more: &str) {
    let listed: Vec<_> = o.violations.iter().filter(|j| j.disposition == disposition).collect();
    for j in listed.iter().take(MAX_LISTED) {
        let v = &j.violation;
        let subject = v.callback.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
        lines.push(format!("check: [{}]{subject}{tag}: {}", v.rule, v.explanation));
    }
    if listed.len() > MAX_LISTED {
        lines.push(format!("check: ... and {} more {more} (see --json or --junit)", listed.len() - MAX_LISTED));
    }
}

pub fn summary(o: &CheckOutcome) -> String {
    let mut lines = vec![format!("check: {} (exit status {})", o.status, o.exit_code())];
    lines.extend(o.reasons.iter().map(|r| format!("check: because {r}")));
    list(&mut lines, o, Disposition::Failing, "", "failing violations");
    // Not failing, but what someone chasing the run wants to see first after the failures.
    list(&mut lines, o, Disposition::AfterLoss, " (after the loss, possibly its artefact)", "after the loss");
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
