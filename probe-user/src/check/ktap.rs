//! KTAP v1 (Documentation/dev-tools/ktap.rst): one test case per rule id, then one for the
//! command's own exit status; each violation as diagnostic lines before its rule's result.

use std::fmt::Write;

use super::{
    command::CommandEnd,
    outcome::{CheckOutcome, RuleVerdict, Source},
};

/// Appends `text` as diagnostic lines, one `# ` line per line of text.
fn diagnostic(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "# {}", line.trim_end());
    }
}

/// Text after a result's `#`: one line (a newline would end the result line).
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

fn result_line(
    out: &mut String,
    ok: bool,
    number: usize,
    description: &str,
    directive: Option<&str>,
    data: Option<&str>,
) {
    let _ = write!(out, "{} {number} {description}", if ok { "ok" } else { "not ok" });
    let data = data.map(one_line).filter(|d| !d.is_empty());
    match (directive, data) {
        (Some(d), Some(text)) => {
            let _ = write!(out, " # {d} {text}");
        }
        (Some(d), None) => {
            let _ = write!(out, " # {d}");
        }
        (None, Some(text)) => {
            let _ = write!(out, " # {text}");
        }
        (None, None) => {}
    }
    out.push('\n');
}

/// The whole KTAP document.
pub fn render(o: &CheckOutcome) -> String {
    let mut out = String::from("KTAP version 1\n");
    let mode = if o.pairing { "full" } else { "degraded: no start/end probes" };
    diagnostic(&mut out, &format!("mmnotif-trace check: kernel {} ({mode})", o.kernel));
    for (hook, method) in &o.attach {
        diagnostic(&mut out, &format!("attach {hook}: {method}"));
    }
    match &o.source {
        Source::Live(run) => {
            diagnostic(&mut out, &format!("command: {}", run.command.command_line()));
            diagnostic(&mut out, &format!("session: {}", run.session.summary()));
        }
        Source::Replay(path) => diagnostic(&mut out, &format!("trace: {}", path.display())),
    }
    diagnostic(&mut out, &format!("verdict: {} (exit status {})", o.status, o.exit_code()));
    for reason in &o.reasons {
        diagnostic(&mut out, &format!("because {reason}"));
    }
    for note in &o.notes {
        diagnostic(&mut out, &format!("note: {note}"));
    }
    for line in o.damage_lines() {
        diagnostic(&mut out, &line);
    }

    let live = o.source.live();
    let _ = writeln!(out, "1..{}", o.rules.len() + usize::from(live.is_some()));
    for (i, r) in o.rules.iter().enumerate() {
        for j in o.violations_of(r.rule) {
            let status = match j.disposition.excuse() {
                None => "failing".to_owned(),
                Some(why) => match &j.allowed_by {
                    Some(by) => format!("not counted, {why} ({by})"),
                    None => format!("not counted, {why}"),
                },
            };
            diagnostic(&mut out, &format!("{} ({status}): {}", r.rule, j.violation));
        }
        let reason = r.reason.as_deref();
        let (ok, directive) = match r.verdict {
            RuleVerdict::Pass | RuleVerdict::Reported => (true, None),
            RuleVerdict::Fail => (false, None),
            RuleVerdict::NotChecked | RuleVerdict::Incomplete => (true, Some("SKIP")),
            RuleVerdict::Allowed => (true, Some("XFAIL")),
        };
        result_line(&mut out, ok, i + 1, r.rule.as_str(), directive, reason);
    }
    if let Some(run) = live {
        let number = o.rules.len() + 1;
        let c = &run.command;
        diagnostic(&mut out, &format!("command: {}: {}", c.command_line(), c.end.describe()));
        match &c.end {
            CommandEnd::TimedOut { seconds, .. } => {
                result_line(&mut out, false, number, "command", Some("TIMEOUT"), Some(&format!("{seconds} seconds")))
            }
            end => result_line(&mut out, end.passed(), number, "command", None, Some(&end.describe())),
        }
    }
    out
}
