//! Replays every trace in tests/corpus and compares with its `.expect` file:
//!   `verdict pass|fail|incomplete`   the report's verdict
//!   `<rule-id>`                      one line per expected violation (a multiset)
//!   `not-checked <rule-id>`          the exact set of rules reported as not checked
//!   `note <rule-id> <text>`          some violation of that rule carries a note with <text>
//!   `after-loss <rule-id>`           an expected violation found after a loss (`check` does not
//!                                    count it as failing; the checker lists it like the others)
mod common;

use std::{collections::BTreeMap, fs};

use common::{corpus, corpus_traces};
use mmnotif_trace::checker::{RuleId, replay_file};

struct Expectation {
    verdict: String,
    violations: BTreeMap<String, usize>,
    not_checked: Vec<String>,
    notes: Vec<(String, String)>,
}

fn parse_expect(text: &str) -> Expectation {
    let mut e =
        Expectation { verdict: String::new(), violations: BTreeMap::new(), not_checked: Vec::new(), notes: Vec::new() };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        match head {
            "verdict" => e.verdict = rest.to_owned(),
            "not-checked" => e.not_checked.push(rest.to_owned()),
            "after-loss" => *e.violations.entry(rest.to_owned()).or_default() += 1,
            "note" => {
                let (rule, text) = rest.split_once(' ').expect("note needs a rule and a text");
                e.notes.push((rule.to_owned(), text.to_owned()));
            }
            rule => {
                assert!(RuleId::from_name(rule).is_some(), "unknown rule id {rule:?} in an .expect file");
                *e.violations.entry(rule.to_owned()).or_default() += 1;
            }
        }
    }
    e
}

#[test]
fn every_corpus_trace_gives_its_expected_verdict() {
    let traces = corpus_traces();
    assert!(traces.len() >= 15, "corpus looks incomplete: {traces:?}");
    let mut failures = Vec::new();
    for trace in traces {
        let expect_path = trace.with_extension("expect");
        let expect =
            parse_expect(&fs::read_to_string(&expect_path).unwrap_or_else(|_| panic!("missing {expect_path:?}")));
        let report = replay_file(&trace).unwrap_or_else(|e| panic!("{e}"));
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for v in &report.violations {
            *got.entry(v.rule.as_str().to_owned()).or_default() += 1;
        }
        let mut not_checked: Vec<String> = report.not_checked.iter().map(|n| n.rule.as_str().to_owned()).collect();
        let mut want_not_checked = expect.not_checked.clone();
        not_checked.sort();
        want_not_checked.sort();
        let verdict = report.verdict.to_string().to_lowercase();
        let name = trace.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if got != expect.violations || verdict != expect.verdict || not_checked != want_not_checked {
            failures.push(format!(
                "{name}: verdict {verdict} (want {}), violations {got:?} (want {:?}), not checked {not_checked:?} (want {want_not_checked:?})\n{report}",
                expect.verdict, expect.violations
            ));
            continue;
        }
        for (rule, text) in &expect.notes {
            let found = report
                .violations
                .iter()
                .any(|v| v.rule.as_str() == rule && v.notes.iter().any(|n| n.contains(text.as_str())));
            if !found {
                failures.push(format!("{name}: no {rule} violation with note {text:?}\n{report}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn skipped_end_names_the_fix_and_the_kernel() {
    let path = corpus("v5.2-skipped-end.jsonl");
    let report = replay_file(&path).expect("replay");
    let v = &report.violations[0];
    let hint = v.hint.as_deref().unwrap_or_default();
    assert!(hint.contains("c2655835fd8c") && hint.contains("this kernel is 5.2.0"), "{hint}");
    assert_eq!(v.callback.as_ref().map(|c| c.as_str()), Some("kvm_mmu_notifier_invalidate_range_start"));
    let task = v.task.as_ref().expect("task");
    assert_eq!((task.pid, task.tid, task.comm.as_ref().map(|c| c.as_str())), (Some(61), 61, Some("oom_reaper")));
    // range_start, KVM's start and the failed return are the events involved.
    assert_eq!(v.events, vec![2, 3, 5]);
}

#[test]
fn not_checked_rules_name_the_missing_hooks() {
    let path = corpus("tracepoint-mode.jsonl");
    let report = replay_file(&path).expect("replay");
    let unpaired =
        report.not_checked.iter().find(|n| n.rule == RuleId::UnpairedStart).expect("unpaired-start not checked");
    assert!(
        unpaired.reason.contains("range_start (kprobes and fentry are not available on this host)"),
        "{}",
        unpaired.reason
    );
    assert!(unpaired.reason.contains("range_start_ret"), "{}", unpaired.reason);
    assert!(!report.complete);
    let kvm = report
        .stats
        .notifiers
        .iter()
        .find(|n| n.callback.as_str() == "kvm_mmu_notifier_invalidate_range_start")
        .expect("kvm row");
    assert_eq!(kvm.starts, 3);
    let text = report.to_string();
    assert!(text.contains("not checked:"), "{text}");
}

#[test]
fn report_serializes_to_json() {
    let path = corpus("v6.6-double-end.jsonl");
    let report = replay_file(&path).expect("replay");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["violation_counts"]["notifier-double-end"], 1);
    assert!(json["violations"][0]["explanation"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn attach_race_is_reported_without_probes_live() {
    // The trace of issue 15 as a tracer without probes_live recorded it: both ranges caught
    // between the attaches of KVM's callbacks look unpaired, which is what gating removes.
    let path = corpus("kvm-attach-race.jsonl");
    let text = fs::read_to_string(&path).expect("read trace");
    let without: String =
        text.lines().filter(|l| !l.contains("\"type\":\"probes_live\"")).map(|l| format!("{l}\n")).collect();
    let report = mmnotif_trace::checker::replay(without.as_bytes()).expect("replay");
    let mut rules: Vec<&str> = report.violations.iter().map(|v| v.rule.as_str()).collect();
    rules.sort_unstable();
    assert_eq!(rules, ["notifier-unpaired-end", "notifier-unpaired-start"], "{report}");
    // With probes_live, the same events are counted but not judged.
    let report = replay_file(&path).expect("replay");
    let kvm = report
        .stats
        .notifiers
        .iter()
        .find(|n| n.callback.function() == "kvm_mmu_notifier_invalidate_range_start")
        .expect("kvm row");
    assert_eq!((kvm.starts, kvm.ends), (2, 2), "{report}");
}
