//! JUnit XML, as CI systems read it (the subset `docs/check/junit.xsd` defines): one test case
//! per rule id, one per violation (`rule@range/callback`), one for the command's exit status.

use std::{collections::HashSet, fmt::Write};

use super::outcome::{CheckOutcome, Disposition, JudgedViolation, RuleVerdict, Source};
use crate::checker::Violation;

/// Escapes text for XML attributes and content, replacing characters XML 1.0 cannot carry.
fn escape(text: &str) -> String {
    let plain = |c: char| {
        !matches!(c, '&' | '<' | '>' | '"' | '\'' | '\u{fffe}' | '\u{ffff}')
            && (c >= ' ' || matches!(c, '\t' | '\n' | '\r'))
    };
    if text.chars().all(plain) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// What a test case ended as.
enum CaseResult {
    Passed,
    Failure { message: String, kind: String, text: String },
    Skipped { message: String },
}

struct Case {
    name: String,
    classname: &'static str,
    result: CaseResult,
}

/// `rule@range/callback`: the range struct's address, else the address range, else the mm,
/// else `-`; the callback (for `kernel-warn`, the WARN's caller), else `-`.
pub fn violation_name(v: &Violation) -> String {
    let range = v
        .range
        .as_ref()
        .and_then(|r| r.ptr.map(|p| p.to_string()).or_else(|| Some(format!("{}-{}", r.start?, r.end?))))
        .or_else(|| v.mm.map(|mm| mm.to_string()))
        .unwrap_or_else(|| "-".into());
    let callback = v.callback.as_ref().map_or("-", |c| c.as_str());
    format!("{}@{range}/{callback}", v.rule)
}

/// Makes `name` unique among `taken` by appending ` #2`, ` #3`, …
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let mut n = 2;
    loop {
        let candidate = format!("{name} #{n}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

fn violation_case(j: &JudgedViolation, taken: &mut HashSet<String>) -> Case {
    let v = &j.violation;
    let result = match j.disposition.excuse() {
        None => CaseResult::Failure { message: v.explanation.clone(), kind: v.rule.to_string(), text: v.to_string() },
        Some(why) => {
            let by = j.allowed_by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default();
            CaseResult::Skipped { message: format!("not counted, {why}{by}: {}", v.explanation) }
        }
    };
    Case { name: unique(violation_name(v), taken), classname: "mmnotif-trace.violations", result }
}

fn cases(o: &CheckOutcome) -> Vec<Case> {
    let mut taken = HashSet::new();
    let mut cases = Vec::new();
    for r in &o.rules {
        let reason = r.reason.clone().unwrap_or_default();
        let result = match r.verdict {
            RuleVerdict::Pass | RuleVerdict::Reported => CaseResult::Passed,
            RuleVerdict::Fail => {
                let text: Vec<String> = o
                    .violations_of(r.rule)
                    .filter(|j| j.disposition == Disposition::Failing)
                    .map(|j| j.violation.to_string())
                    .collect();
                CaseResult::Failure {
                    message: format!("{}: {reason}", r.summary),
                    kind: r.rule.to_string(),
                    text: text.join("\n"),
                }
            }
            RuleVerdict::NotChecked | RuleVerdict::Incomplete | RuleVerdict::Allowed => {
                CaseResult::Skipped { message: reason }
            }
        };
        cases.push(Case { name: unique(r.rule.to_string(), &mut taken), classname: "mmnotif-trace.rules", result });
    }
    for j in &o.violations {
        cases.push(violation_case(j, &mut taken));
    }
    if let Some(run) = o.source.live() {
        let c = &run.command;
        let result = if c.end.passed() {
            CaseResult::Passed
        } else {
            CaseResult::Failure { message: c.end.describe(), kind: "command".into(), text: c.command_line() }
        };
        cases.push(Case { name: unique("command".into(), &mut taken), classname: "mmnotif-trace.command", result });
    }
    cases
}

/// The whole JUnit document.
pub fn render(o: &CheckOutcome) -> String {
    let cases = cases(o);
    let failures = cases.iter().filter(|c| matches!(c.result, CaseResult::Failure { .. })).count();
    let skipped = cases.iter().filter(|c| matches!(c.result, CaseResult::Skipped { .. })).count();
    let counts = format!(r#"tests="{}" failures="{failures}" errors="0" skipped="{skipped}""#, cases.len());

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, r#"<testsuites name="mmnotif-trace check" {counts}>"#);
    let _ = writeln!(out, r#"  <testsuite name="mmnotif-trace check" {counts}>"#);
    out.push_str("    <properties>\n");
    let mut properties: Vec<(String, String)> = vec![
        ("status".into(), o.status.to_string().to_lowercase()),
        ("exit-status".into(), o.exit_code().to_string()),
        ("kernel".into(), o.kernel.clone()),
        ("mode".into(), if o.pairing { "full" } else { "degraded" }.into()),
        ("lost-events".into(), o.lost.to_string()),
    ];
    match &o.source {
        Source::Live(run) => {
            properties.push(("command".into(), run.command.command_line()));
            properties.push(("session".into(), run.session.summary()));
        }
        Source::Replay(path) => properties.push(("trace".into(), path.display().to_string())),
    }
    properties.extend(o.attach.iter().map(|(hook, method)| (format!("attach.{hook}"), method.clone())));
    properties.extend(o.reasons.iter().enumerate().map(|(i, r)| (format!("reason.{}", i + 1), r.clone())));
    properties.extend(o.notes.iter().enumerate().map(|(i, n)| (format!("note.{}", i + 1), n.clone())));
    for (name, value) in properties {
        let _ = writeln!(out, r#"      <property name="{}" value="{}"/>"#, escape(&name), escape(&value));
    }
    out.push_str("    </properties>\n");
    for case in &cases {
        let open = format!(r#"    <testcase name="{}" classname="{}""#, escape(&case.name), case.classname);
        match &case.result {
            CaseResult::Passed => {
                let _ = writeln!(out, "{open}/>");
            }
            CaseResult::Skipped { message } => {
                let _ = writeln!(out, "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>", escape(message));
            }
            CaseResult::Failure { message, kind, text } => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    escape(message),
                    escape(kind),
                    escape(text)
                );
            }
        }
    }
    let mut summary = format!("verdict: {} (exit status {})\n", o.status, o.exit_code());
    for line in o.reasons.iter().map(|r| format!("because {r}")).chain(o.notes.iter().map(|n| format!("note: {n}"))) {
        summary.push_str(&line);
        summary.push('\n');
    }
    let _ = writeln!(out, "    <system-out>{}</system-out>", escape(&summary));
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checker::{RangeRef, RuleId},
        trace::{Addr, Symbol},
    };

    #[test]
    fn escapes_markup_and_characters_xml_cannot_carry() {
        assert_eq!(escape(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
        assert_eq!(escape("tab\there\u{1}x"), "tab\there\u{fffd}x");
    }

    #[test]
    fn violation_names_use_range_then_addresses_then_mm() {
        let mut v = Violation::new(RuleId::KernelWarn, 5, "w".into());
        assert_eq!(violation_name(&v), "kernel-warn@-/-");
        v.callback = Some(Symbol::new("__mmu_notifier_invalidate_range_start+0x40"));
        v.mm = Some(Addr(0xffff888000001000));
        assert_eq!(violation_name(&v), "kernel-warn@0xffff888000001000/__mmu_notifier_invalidate_range_start+0x40");
        v.range = Some(RangeRef {
            ptr: None,
            start: Some(Addr(0x1000)),
            end: Some(Addr(0x2000)),
            event: None,
            blockable: None,
        });
        assert_eq!(violation_name(&v), "kernel-warn@0x1000-0x2000/__mmu_notifier_invalidate_range_start+0x40");
        v.range = Some(RangeRef {
            ptr: Some(Addr(0xffffc90000a3fc88)),
            start: None,
            end: None,
            event: None,
            blockable: None,
        });
        assert_eq!(violation_name(&v), "kernel-warn@0xffffc90000a3fc88/__mmu_notifier_invalidate_range_start+0x40");
        let mut taken = HashSet::new();
        assert_eq!(unique("a".into(), &mut taken), "a");
        assert_eq!(unique("a".into(), &mut taken), "a #2");
        assert_eq!(unique("a".into(), &mut taken), "a #3");
    }
}
