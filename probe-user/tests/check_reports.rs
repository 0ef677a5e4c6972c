//! `mmnotif-trace check --replay`: the verdict per corpus scenario in every output format,
//! validated by real consumers (a strict KTAP v1 parser written from ktap.rst, xmllint with the
//! JUnit schema, the JSON schema), and the exit statuses. No root needed.

mod common;

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::{Command, Output},
};

use common::{
    BIN, corpus, corpus_traces, ktap,
    reports::{junit_testcase_names, scratch, validate_json, validate_junit},
    stderr,
};
use mmnotif_trace::checker::{RULES, RuleId};
use serde_json::Value;

/// Every rule id, in the checker's table order (the order of every report).
fn rules() -> Vec<&'static str> {
    RuleId::ALL.iter().map(|r| r.as_str()).collect()
}

fn check(args: &[&str]) -> Output {
    Command::new(BIN).arg("check").args(args).output().expect("run mmnotif-trace check")
}

struct Reports {
    code: Option<i32>,
    ktap: ktap::Document,
    junit: String,
    json: Value,
    stderr: String,
}

/// Runs `check --replay` with every report file, validating each with its consumer.
fn replay_with_reports(trace: &Path, extra: &[&str]) -> Reports {
    let name = trace.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = scratch(&name);
    let (k, j, x) = (dir.join("r.ktap"), dir.join("r.json"), dir.join("r.xml"));
    let mut args = vec!["--replay", trace.to_str().expect("utf8"), "--ktap-file", k.to_str().expect("utf8")];
    args.extend(["--json", j.to_str().expect("utf8"), "--junit", x.to_str().expect("utf8")]);
    args.extend(extra);
    let o = check(&args);
    let ktap_text = fs::read_to_string(&k).unwrap_or_else(|e| panic!("{name}: no KTAP file ({e}): {}", stderr(&o)));
    let ktap = ktap::parse(&ktap_text, true).unwrap_or_else(|e| panic!("{name}: invalid KTAP: {e}\n{ktap_text}"));
    validate_junit(&x).unwrap_or_else(|e| panic!("{name}: invalid JUnit: {e}"));
    let json: Value = serde_json::from_str(&fs::read_to_string(&j).expect("json file")).expect("json");
    validate_json(&json).unwrap_or_else(|e| panic!("{name}: JSON report does not match its schema:\n{e}"));
    let reports = Reports {
        code: o.status.code(),
        ktap,
        junit: fs::read_to_string(&x).expect("junit"),
        json,
        stderr: stderr(&o),
    };
    let _ = fs::remove_dir_all(&dir);
    reports
}

fn result<'a>(doc: &'a ktap::Document, name: &str) -> &'a ktap::TestResult {
    doc.results.iter().find(|r| r.description == name).unwrap_or_else(|| panic!("no KTAP result {name}: {doc:#?}"))
}

struct Expect {
    verdict: String,
    violations: BTreeMap<String, usize>,
    /// Violations found after a loss (`after-loss RULE`): reported, not failing.
    after_loss: BTreeMap<String, usize>,
    not_checked: Vec<String>,
}

fn expectation(trace: &Path) -> Expect {
    let text = fs::read_to_string(trace.with_extension("expect")).expect(".expect file");
    let mut e = Expect {
        verdict: String::new(),
        violations: BTreeMap::new(),
        after_loss: BTreeMap::new(),
        not_checked: Vec::new(),
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.split_once(' ') {
            Some(("verdict", v)) => e.verdict = v.to_owned(),
            Some(("not-checked", rule)) => e.not_checked.push(rule.to_owned()),
            Some(("after-loss", rule)) => *e.after_loss.entry(rule.to_owned()).or_default() += 1,
            Some(("note", _)) => {}
            _ => *e.violations.entry(line.to_owned()).or_default() += 1,
        }
    }
    e
}

#[test]
fn every_corpus_scenario_gets_its_verdict_in_every_format() {
    let traces = corpus_traces();
    assert!(traces.len() >= 15, "{traces:?}");
    for trace in traces {
        let name = trace.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let want = expectation(&trace);
        let r = replay_with_reports(&trace, &[]);
        let pairing = !want.not_checked.iter().any(|n| n == "unpaired-end");
        let (status, code) = match want.verdict.as_str() {
            "fail" => ("fail", 1),
            "incomplete" => ("incomplete", 5),
            _ if !pairing => ("skip", 4),
            _ => ("pass", 0),
        };
        assert_eq!(r.code, Some(code), "{name}: {}", r.stderr);
        assert_eq!(r.json["status"], status, "{name}");
        assert_eq!(r.json["exit_status"], code, "{name}");
        let lost = r.json["lost"].as_u64().expect("lost") > 0;

        // KTAP: one case per rule, in the rules' order, and no command case for a replay.
        assert_eq!(r.ktap.version, "KTAP version 1");
        assert_eq!(r.ktap.plan, Some(RuleId::ALL.len()), "{name}");
        let names: Vec<&str> = r.ktap.results.iter().map(|t| t.description.as_str()).collect();
        assert_eq!(names, rules(), "{name}");
        for rule in RuleId::ALL {
            let loss_fakes_it = rule.affected_by_loss();
            let rule = rule.as_str();
            let t = result(&r.ktap, rule);
            let found = want.violations.get(rule).copied().unwrap_or(0);
            let listed = t.diagnostics.iter().filter(|d| d.starts_with(&format!("{rule} (failing): "))).count();
            assert_eq!(listed, found, "{name}: {rule}: one diagnostic block per violation: {t:#?}");
            let after_loss = want.after_loss.get(rule).copied().unwrap_or(0);
            let listed_after = t
                .diagnostics
                .iter()
                .filter(|d| d.starts_with(&format!("{rule} (not counted, found after events were lost")))
                .count();
            assert_eq!(listed_after, after_loss, "{name}: {rule}: after-loss violations listed: {t:#?}");
            if found > 0 {
                assert!(!t.ok && t.directive.is_none(), "{name}: {rule} has violations: {t:?}");
            } else if want.not_checked.iter().any(|n| n == rule) {
                assert!(t.ok && t.skipped(), "{name}: {rule} was not checked: {t:?}");
                assert!(t.data.as_deref().is_some_and(|d| d.starts_with("not checked: needs ")), "{name}: {t:?}");
            } else if after_loss > 0 {
                assert!(t.ok && t.skipped(), "{name}: {rule} has only violations after a loss: {t:?}");
            } else if lost && loss_fakes_it {
                assert!(t.ok && t.skipped(), "{name}: {rule} cannot pass with losses: {t:?}");
            } else {
                assert!(t.ok && t.directive.is_none(), "{name}: {rule} passes: {t:?}");
            }
        }
        assert!(
            r.ktap
                .header_diagnostics
                .iter()
                .any(|d| d.starts_with(&format!("verdict: {} (exit status {code})", status.to_uppercase())))
        );

        // JUnit: a case per rule and per violation, names unique (the schema enforces it too).
        let cases = junit_testcase_names(&r.junit);
        let total: usize = want.violations.values().sum();
        let total_after_loss: usize = want.after_loss.values().sum();
        assert_eq!(cases.len(), RuleId::ALL.len() + total + total_after_loss, "{name}: {cases:?}");
        let mut unique = cases.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), cases.len(), "{name}: {cases:?}");
        for (rule, n) in &want.violations {
            let after = want.after_loss.get(rule).copied().unwrap_or(0);
            assert_eq!(
                cases.iter().filter(|c| c.starts_with(&format!("{rule}@"))).count(),
                *n + after,
                "{name}: {cases:?}"
            );
        }
        let ktap_skips = r.ktap.results.iter().filter(|t| t.skipped()).count();
        assert_eq!(
            r.junit.matches("<skipped ").count(),
            ktap_skips + total_after_loss,
            "{name}: the same rules are skipped in JUnit and KTAP, and every after-loss violation"
        );
        assert_eq!(
            r.junit.matches("<failure ").count(),
            total + r.ktap.results.iter().filter(|t| !t.ok).count(),
            "{name}"
        );

        // JSON: the same violations, rules not checked and kernel WARNs with their caller.
        let (mut got, mut got_after) = (BTreeMap::<String, usize>::new(), BTreeMap::<String, usize>::new());
        for v in r.json["violations"].as_array().expect("violations") {
            let tally = if v["disposition"] == "after-loss" { &mut got_after } else { &mut got };
            *tally.entry(v["rule"].as_str().expect("rule").to_owned()).or_default() += 1;
            assert!(v["disposition"] == "failing" || v["disposition"] == "after-loss", "{name}: {v}");
        }
        assert_eq!(got, want.violations, "{name}");
        assert_eq!(got_after, want.after_loss, "{name}");
        let mut not_checked: Vec<String> = r.json["not_checked"]
            .as_array()
            .expect("not_checked")
            .iter()
            .map(|n| n["rule"].as_str().expect("rule").to_owned())
            .collect();
        not_checked.sort();
        let mut want_not_checked = want.not_checked.clone();
        want_not_checked.sort();
        assert_eq!(not_checked, want_not_checked, "{name}");
        let warns = r.json["kernel_warns"].as_array().expect("kernel_warns");
        assert_eq!(warns.len(), want.violations.get("kernel-warn").copied().unwrap_or(0), "{name}");
        for w in warns {
            let caller = w["caller"].as_str().expect("a WARN names its caller");
            assert!(
                caller.starts_with(w["function"].as_str().expect("function")) && caller.contains("+0x"),
                "{name}: {w}"
            );
        }
    }
}

#[test]
fn allow_turns_a_known_issue_into_an_expected_failure() {
    let trace = corpus("v5.2-skipped-end.jsonl");
    let r =
        replay_with_reports(&trace, &["--allow", "notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let t = result(&r.ktap, "notifier-unpaired-start");
    assert!(t.ok && t.directive.as_deref() == Some("XFAIL"), "{t:?}");
    assert!(t.diagnostics[0].starts_with("notifier-unpaired-start (not counted, allowed as a known issue (--allow notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start)): "), "{t:?}");
    // A pass that could not check everything says so in every report.
    assert!(result(&r.ktap, "kernel-warn").skipped() && result(&r.ktap, "interval-blockable-false").skipped());
    assert!(
        r.ktap.header_diagnostics.iter().any(|d| d.starts_with("note: 2 of 18 rules not checked")),
        "{:?}",
        r.ktap.header_diagnostics
    );
    assert!(r.junit.contains(r#"<property name="note.1" value="2 of 18 rules not checked"#), "{}", r.junit);
    assert!(r.stderr.contains("check: note: 2 of 18 rules not checked"), "{}", r.stderr);
    assert_eq!(r.json["notes"][0].as_str().map(|n| n.starts_with("2 of 18 rules not checked")), Some(true));
    let v = &r.json["violations"][0];
    assert_eq!(
        (v["disposition"].as_str(), v["allowed_by"].as_str()),
        (Some("allowed"), Some("--allow notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start"))
    );
    assert!(r.junit.contains(r#"<testcase name="notifier-unpaired-start@0xffffc90000a3fc88/kvm_mmu_notifier_invalidate_range_start" classname="mmnotif-trace.violations">
      <skipped message="not counted, allowed as a known issue"#), "{}", r.junit);

    // Another subscriber's callback does not cover KVM's violation.
    let o = check(&[
        "--replay",
        trace.to_str().expect("utf8"),
        "--allow",
        "notifier-unpaired-start:nouveau_svmm_invalidate_range_start",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn fail_on_and_allow_lost_narrow_what_fails() {
    let v52 = corpus("v5.2-skipped-end.jsonl");
    let r = replay_with_reports(&v52, &["--fail-on", "kernel-warn,unpaired-end"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let t = result(&r.ktap, "notifier-unpaired-start");
    assert!(
        t.ok && t.directive.is_none() && t.data.as_deref().is_some_and(|d| d.contains("not among --fail-on")),
        "{t:?}"
    );
    assert_eq!(r.json["policy"]["fail_on"], serde_json::json!(["kernel-warn", "unpaired-end"]));

    let lost = corpus("lost-events.jsonl");
    let r = replay_with_reports(&lost, &["--allow-lost"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let t = result(&r.ktap, "events-lost");
    assert!(t.ok && t.directive.as_deref() == Some("XFAIL"), "{t:?}");
    let t = result(&r.ktap, "unpaired-start");
    assert!(
        t.ok && t.data.as_deref().is_some_and(|d| d.contains("17 events lost, tolerated by --allow-lost")),
        "{t:?}"
    );
    assert_eq!(r.json["lost"], 17);
}

#[test]
fn a_degraded_trace_is_a_skip_with_its_reason() {
    let r = replay_with_reports(&corpus("tracepoint-mode.jsonl"), &[]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    let why = "no start/end probe: __mmu_notifier_invalidate_range_start/_end cannot be traced here";
    assert!(r.stderr.contains(why), "{}", r.stderr);
    assert!(r.ktap.header_diagnostics.iter().any(|d| d.contains(why)), "{:?}", r.ktap.header_diagnostics);
    assert!(r.junit.contains(why));
    assert!(r.json["reasons"][0].as_str().is_some_and(|s| s.contains(why)));
    assert_eq!(r.json["mode"], "degraded");
    // What the degraded mode still checks: WARNs (this one is from unrelated code) and losses.
    let warn = result(&r.ktap, "kernel-warn");
    assert!(warn.ok && warn.directive.is_none(), "{warn:?}");
    assert_eq!(r.json["statistics"]["totals"]["unrelated_warns"], 1);
    assert!(result(&r.ktap, "events-lost").ok);
    assert!(result(&r.ktap, "unpaired-start").data.as_deref().is_some_and(|d| d.contains("range_start")));
}

#[test]
fn bad_usage_gets_one_line_and_status_2() {
    let trace = corpus("v5.2-skipped-end.jsonl");
    let trace = trace.to_str().expect("utf8");
    for (args, says) in [
        (&["--allow", "no-such-rule", "--replay", trace][..], "unknown rule id \"no-such-rule\""),
        (&["--fail-on", "kernel-warn,bogus", "--replay", trace][..], "unknown rule id \"bogus\""),
        (&["--replay", trace, "--", "true"][..], "cannot be used with"),
        (
            &["--json", "/nonexistent-dir/r.json", "--replay", trace][..],
            "--json /nonexistent-dir/r.json: No such file or directory",
        ),
        (&["--", "/nonexistent-program"][..], ""),
    ] {
        let o = check(args);
        let err = stderr(&o);
        if args[0] == "--" {
            // Running a command needs root: as root the command cannot start (2), else not root (10).
            let code = o.status.code();
            assert!(
                code == Some(2) && err.contains("cannot run the command \"/nonexistent-program\"") || code == Some(10),
                "{args:?}: {code:?} {err}"
            );
            continue;
        }
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(2));
    let o = check(&["--replay", "/nonexistent.jsonl"]);
    assert_eq!(o.status.code(), Some(15), "a trace that cannot be read is bad input: {}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn the_json_schema_rejects_what_the_report_must_not_be() {
    let r = replay_with_reports(&corpus("v5.2-skipped-end.jsonl"), &[]);
    let mut bad = r.json.clone();
    bad["status"] = "maybe".into();
    assert!(validate_json(&bad).is_err());
    let mut bad = r.json.clone();
    bad.as_object_mut().expect("object").remove("rules");
    assert!(validate_json(&bad).is_err());
    let mut bad = r.json.clone();
    bad["violations"][0]["mm"] = 12345.into();
    assert!(validate_json(&bad).is_err(), "addresses are strings");
}

#[test]
fn the_ktap_parser_follows_ktap_rst() {
    // The nested example of Documentation/dev-tools/ktap.rst.
    let example = "KTAP version 1\n1..1\n  KTAP version 1\n  1..3\n    KTAP version 1\n    1..1\n    # test_1: initializing test_1\n    ok 1 test_1\n  ok 1 example_test_1\n    KTAP version 1\n    1..2\n    ok 1 test_1 # SKIP test_1 skipped\n    ok 2 test_2\n  ok 2 example_test_2\n    KTAP version 1\n    1..3\n    ok 1 test_1\n    # test_2: FAIL\n    not ok 2 test_2\n    ok 3 test_3 # SKIP test_3 skipped\n  not ok 3 example_test_3\nnot ok 1 main_test\n";
    let doc = ktap::parse(example, true).expect("the spec's own example");
    let main = &doc.results[0];
    assert_eq!((main.description.as_str(), main.ok, main.subtests.len()), ("main_test", false, 3));
    let t3 = &main.subtests[2];
    assert_eq!(t3.subtests[1].diagnostics, ["test_2: FAIL"]);
    assert_eq!(
        (t3.subtests[2].directive.as_deref(), t3.subtests[2].data.as_deref()),
        (Some("SKIP"), Some("test_3 skipped"))
    );
    let ok5 =
        ktap::parse("KTAP version 1\n1..1\nok 1 check return code # rcode=0\n", true).expect("data without directive");
    assert_eq!((ok5.results[0].directive.as_deref(), ok5.results[0].data.as_deref()), (None, Some("rcode=0")));

    for (bad, why) in [
        ("1..1\nok 1 a\n", "version line"),
        ("KTAP version 1\n1..2\nok 1 a\n", "plan"),
        ("KTAP version 1\n1..2\nok 1 a\nok 3 b\n", "test number 3"),
        ("KTAP version 1\n1..1\nok 1 a # TIMEOUT 30 seconds\n", "must be \"not ok\""),
        ("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  not ok 1 x\nok 1 parent\n", "subtest failed"),
        ("KTAP version 1\n1..1\nok 1 a\nstray output\n", "not a KTAP line"),
        ("KTAP version 1\nok 1 a\n1..1\n", "plan must follow"),
    ] {
        let err = ktap::parse(bad, true).expect_err(bad);
        assert!(err.contains(why), "{bad:?}: {err}");
    }
    // Lenient mode skips a command's output before the version line and unknown lines.
    let lenient = ktap::parse("build output\nKTAP version 1\n1..1\nkernel: noise\nok 1 a\n", false).expect("lenient");
    assert_eq!(lenient.results.len(), 1);
}

/// The rule table in rules.rs is the one place a rule is declared; the JSON schema's enum is
/// generated from it (`cargo xtask schema`) and docs/check.md's table is written by hand, so
/// both are checked against it here.
#[test]
fn the_schema_and_the_docs_list_exactly_the_rule_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema: Value =
        serde_json::from_str(&fs::read_to_string(root.join("docs/check/report.schema.json")).expect("schema"))
            .expect("schema JSON");
    let schema_ids: Vec<&str> = schema["$defs"]["rule"]["enum"]
        .as_array()
        .expect("$defs/rule/enum")
        .iter()
        .map(|v| v.as_str().expect("a rule id string"))
        .collect();
    assert_eq!(schema_ids, rules(), "docs/check/report.schema.json $defs/rule enum (regenerate: cargo xtask schema)");

    // The rows of the table under "### Rules": `id` | severity | hooks | a loss can fake it | meaning.
    let doc = fs::read_to_string(root.join("docs/check.md")).expect("docs/check.md");
    let table: Vec<Vec<String>> = doc
        .split("\n### Rules\n")
        .nth(1)
        .expect("a ### Rules section in docs/check.md")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let doc_ids: Vec<&str> = table.iter().map(|row| row[0].trim_matches('`')).collect();
    assert_eq!(doc_ids, rules(), "docs/check.md rules table");
    for (row, rule) in table.iter().zip(RULES) {
        let hooks: Vec<String> = rule.required_hooks.iter().map(|h| format!("`{h}`")).collect();
        let hooks = if hooks.is_empty() { "—".to_string() } else { hooks.join(", ") };
        let loss = if rule.affected_by_loss { "yes" } else { "no" };
        assert_eq!(
            row[1..4],
            [rule.severity.to_string(), hooks, loss.to_string()],
            "docs/check.md row for {}",
            rule.name
        );
    }
}
