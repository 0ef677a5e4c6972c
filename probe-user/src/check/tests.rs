//! Judging checker reports: statuses and their precedence, the policy, the command's run
//! window, and how KTAP words each result. Reports come from the corpus traces.

use std::path::PathBuf;

use super::{
    command::{CommandEnd, CommandResult},
    json, ktap,
    outcome::{Disposition, LiveRun, RuleVerdict, Source, Status, evaluate},
    policy::{Allow, Policy},
};
use crate::{
    checker::{self, Checker, Report, RuleId},
    inventory::BlockedTask,
    session::SessionTotals,
    trace::{Addr, Header, TraceReader, parse_event_line},
};

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/corpus/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn replayed(name: &str) -> (Header, Report) {
    let text = corpus(name);
    let reader = TraceReader::new(text.as_bytes()).expect("header");
    let header = reader.header().clone();
    (header, checker::replay_reader(reader).expect("replay"))
}

fn replay_source(name: &str) -> Source {
    Source::Replay(PathBuf::from(format!("{name}.jsonl")))
}

fn judge(name: &str, policy: &Policy) -> super::CheckOutcome {
    let (header, report) = replayed(name);
    evaluate(report, &header, policy, replay_source(name))
}

fn live_source(end: CommandEnd, started_ts: u64, detach_ts: u64) -> Source {
    Source::Live(Box::new(LiveRun {
        command: CommandResult {
            argv: vec!["./test.sh".into(), "--fast".into()],
            pid: 42,
            end,
            started_ts,
            ended_ts: detach_ts,
        },
        session: SessionTotals::default(),
        pid_tree: None,
        detach_ts,
        open_at_end: Vec::new(),
        stuck: Vec::new(),
    }))
}

fn rule(o: &super::CheckOutcome, id: RuleId) -> &super::outcome::RuleResult {
    o.rules.iter().find(|r| r.rule == id).expect("every rule has a result")
}

#[test]
fn each_status_has_its_exit_code() {
    let pass = judge("v6.12-compensating-end", &Policy::default());
    assert_eq!((pass.status, pass.exit_code()), (Status::Pass, 0));
    assert!(pass.reasons.is_empty() && pass.notes.is_empty(), "{:?} {:?}", pass.reasons, pass.notes);

    let fail = judge("v5.2-skipped-end", &Policy::default());
    assert_eq!((fail.status, fail.exit_code()), (Status::Fail, 1));
    assert_eq!(fail.reasons, ["1 failing violation (notifier-unpaired-start=1)"]);
    assert_eq!(rule(&fail, RuleId::NotifierUnpairedStart).verdict, RuleVerdict::Fail);
    assert_eq!(rule(&fail, RuleId::KernelWarn).verdict, RuleVerdict::NotChecked);
    assert_eq!(
        rule(&fail, RuleId::KernelWarn).reason.as_deref(),
        Some("not checked: needs error_report_end (not attached on this kernel)")
    );
    assert!(fail.notes[0].starts_with("2 of 18 rules not checked"), "{:?}", fail.notes);

    let lost = judge("lost-events", &Policy::default());
    assert_eq!((lost.status, lost.exit_code()), (Status::Incomplete, 5));
    assert!(lost.reasons[0].starts_with("17 events were lost before reaching userspace"), "{:?}", lost.reasons);
    assert_eq!(rule(&lost, RuleId::EventsLost).verdict, RuleVerdict::Fail);
    assert_eq!(
        rule(&lost, RuleId::UnpairedStart).verdict,
        RuleVerdict::Incomplete,
        "a pairing rule cannot pass with losses"
    );
    assert_eq!(rule(&lost, RuleId::BadRange).verdict, RuleVerdict::Pass, "a per-event rule is unaffected");

    let skip = judge("tracepoint-mode", &Policy::default());
    assert_eq!((skip.status, skip.exit_code()), (Status::Skip, 4));
    assert!(!skip.pairing);
    assert_eq!(
        skip.reasons,
        [
            "no start/end probe: __mmu_notifier_invalidate_range_start/_end cannot be traced here, so invalidation pairing was not asserted (range_start: kprobes and fentry are not available on this host; range_end: not attached)"
        ]
    );
    assert_eq!(rule(&skip, RuleId::KernelWarn).verdict, RuleVerdict::Pass, "the degraded mode still checks WARNs");
}

#[test]
fn failures_outrank_losses_and_losses_outrank_skips() {
    // lost-then-unpaired-end: the violation follows the loss, and the lost start may be all
    // there is to it: INCOMPLETE, the violation reported as a possible artefact.
    let after = judge("lost-then-unpaired-end", &Policy::default());
    assert_eq!((after.status, after.exit_code()), (Status::Incomplete, 5));
    let unpaired = rule(&after, RuleId::UnpairedEnd);
    assert_eq!((unpaired.verdict, unpaired.failing, unpaired.after_loss), (RuleVerdict::Incomplete, 0, 1));
    assert_eq!(after.violations_of(RuleId::UnpairedEnd).next().map(|v| v.disposition), Some(Disposition::AfterLoss));
    assert!(
        after
            .reasons
            .iter()
            .any(|r| r.contains("1 violation found after the loss may be its artefact (unpaired-end=1)")),
        "{:?}",
        after.reasons
    );
    let stderr = super::text::summary(&after);
    assert!(stderr.contains("check: [unpaired-end] (after the loss, possibly its artefact): "), "{stderr}");
    // With --allow-lost the trace is taken as whole: the same violation fails the run.
    let whole = judge("lost-then-unpaired-end", &Policy::new(vec![], vec![], true));
    assert_eq!(whole.status, Status::Fail);
    // The same violation before the loss cannot be its artefact: FAIL.
    let text = corpus("lost-then-unpaired-end")
        .replace("\"ts\":3000004000,\"type\":\"lost\"", "\"ts\":3000006000,\"type\":\"lost\"");
    let text = {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(4, 5);
        lines.join("\n") + "\n"
    };
    let reader = TraceReader::new(text.as_bytes()).expect("header");
    let header = reader.header().clone();
    let report = checker::replay_reader(reader).expect("replay");
    let before = evaluate(report, &header, &Policy::default(), replay_source("x"));
    assert_eq!(before.status, Status::Fail, "{:?}", before.reasons);
    assert_eq!(rule(&before, RuleId::UnpairedEnd).failing, 1);
    // A degraded trace with losses: INCOMPLETE rather than SKIP, unless losses are accepted.
    let mut text = corpus("tracepoint-mode");
    text.push_str("{\"ts\":1000006000,\"type\":\"lost\",\"count\":4}\n");
    let reader = TraceReader::new(text.as_bytes()).expect("header");
    let header = reader.header().clone();
    let report = checker::replay_reader(reader).expect("replay");
    let o = evaluate(report.clone(), &header, &Policy::default(), replay_source("x"));
    assert_eq!(o.status, Status::Incomplete);
    let o = evaluate(report, &header, &Policy::new(vec![], vec![], true), replay_source("x"));
    assert_eq!(o.status, Status::Skip);
    assert_eq!(rule(&o, RuleId::EventsLost).verdict, RuleVerdict::Allowed);
    assert!(o.notes.iter().any(|n| n.starts_with("4 events lost, tolerated by --allow-lost")), "{:?}", o.notes);
}

#[test]
fn allow_tolerates_a_known_issue_only_for_its_callback() {
    let known = Policy::new(
        vec![Allow::parse("notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start").unwrap()],
        vec![],
        false,
    );
    let o = judge("v5.2-skipped-end", &known);
    assert_eq!((o.status, o.exit_code()), (Status::Pass, 0));
    let r = rule(&o, RuleId::NotifierUnpairedStart);
    assert_eq!((r.verdict, r.allowed, r.failing), (RuleVerdict::Allowed, 1, 0));
    assert_eq!(o.violations[0].disposition, Disposition::Allowed);
    assert_eq!(
        o.violations[0].allowed_by.as_deref(),
        Some("--allow notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start")
    );
    assert!(
        o.notes.iter().any(|n| n.contains("rules not checked")),
        "a pass still says what was not checked: {:?}",
        o.notes
    );

    let other = Policy::new(
        vec![Allow::parse("notifier-unpaired-start:nouveau_svmm_invalidate_range_start").unwrap()],
        vec![],
        false,
    );
    assert_eq!(judge("v5.2-skipped-end", &other).status, Status::Fail);
}

#[test]
fn fail_on_limits_which_rules_fail_the_run() {
    let o = judge("v5.2-skipped-end", &Policy::new(vec![], vec![RuleId::KernelWarn, RuleId::UnpairedEnd], false));
    assert_eq!(o.status, Status::Pass);
    let r = rule(&o, RuleId::NotifierUnpairedStart);
    assert_eq!((r.verdict, r.not_fail_on), (RuleVerdict::Reported, 1));
    let o = judge("v5.2-skipped-end", &Policy::new(vec![], vec![RuleId::NotifierUnpairedStart], false));
    assert_eq!(o.status, Status::Fail);
}

#[test]
fn violations_beyond_the_storage_cap_count_unless_their_whole_rule_is_allowed() {
    let (header, mut report) = replayed("v5.2-skipped-end");
    *report.violation_counts.get_mut(&RuleId::NotifierUnpairedStart).expect("count") += 5;
    report.violations_not_stored = 5;
    let by_callback = Policy::new(
        vec![Allow::parse("notifier-unpaired-start:kvm_mmu_notifier_invalidate_range_start").unwrap()],
        vec![],
        false,
    );
    let o = evaluate(report.clone(), &header, &by_callback, replay_source("x"));
    let r = rule(&o, RuleId::NotifierUnpairedStart);
    assert_eq!((o.status, r.violations, r.failing, r.allowed), (Status::Fail, 6, 5, 1));
    let whole_rule = Policy::new(vec![Allow::parse("notifier-unpaired-start").unwrap()], vec![], false);
    let o = evaluate(report, &header, &whole_rule, replay_source("x"));
    assert_eq!((o.status, rule(&o, RuleId::NotifierUnpairedStart).allowed), (Status::Pass, 6));
}

/// A full-mode trace, pushed through a checker as a live session would be.
fn live_report(lines: &[&str]) -> (Header, Checker) {
    let header = TraceReader::new(corpus("unpaired-start").lines().next().expect("header").as_bytes())
        .expect("header")
        .header()
        .clone();
    let mut checker = Checker::new(&header);
    for (i, line) in lines.iter().enumerate() {
        checker.push(&parse_event_line(line, i as u64 + 2).expect("event"));
    }
    (header, checker)
}

#[test]
fn only_the_commands_run_is_judged() {
    let start = |ts: u64, tid: u32, range: &str| {
        format!(
            r#"{{"ts":{ts},"type":"range_start","cpu":0,"pid":{tid},"tid":{tid},"comm":"t","mm":"0xffff888003a1c000","range":"{range}","start":"0x7f0000000000","end":"0x7f0000001000","event":"clear","blockable":true}}"#
        )
    };
    let ret = |ts: u64, tid: u32, range: &str| {
        format!(r#"{{"ts":{ts},"type":"range_start_ret","tid":{tid},"range":"{range}","ret":0}}"#)
    };
    let end = |ts: u64, tid: u32, range: &str| start(ts, tid, range).replace("range_start", "range_end");
    let lines = [
        // Before the command: an end whose start predates the tracer.
        end(1_000, 5, "0xffffc90000000100"),
        // During the run: a start that never ends (a real unpaired start).
        start(2_000_000_000, 7, "0xffffc90000000200"),
        ret(2_000_000_100, 7, "0xffffc90000000200"),
        // Just before the detach: a start still in flight.
        start(9_950_000_000, 8, "0xffffc90000000300"),
        ret(9_950_000_100, 8, "0xffffc90000000300"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (header, checker) = live_report(&lines);
    let open_at_end = checker.open_ranges();
    let report = checker.finish();
    let Source::Live(mut run) = live_source(CommandEnd::Exited { code: 0 }, 1_000_000_000, 10_000_000_000) else {
        unreachable!()
    };
    run.open_at_end = open_at_end;
    let o = evaluate(report, &header, &Policy::default(), Source::Live(run));
    let by_tid: Vec<(u32, Disposition)> =
        o.violations.iter().map(|j| (j.violation.task.as_ref().expect("task").tid, j.disposition)).collect();
    assert!(by_tid.contains(&(5, Disposition::BeforeCommand)), "{by_tid:?}");
    assert!(by_tid.contains(&(7, Disposition::Failing)), "{by_tid:?}");
    assert!(by_tid.contains(&(8, Disposition::InFlightAtDetach)), "{by_tid:?}");
    assert_eq!(o.status, Status::Fail);
    assert_eq!(o.reasons, ["1 failing violation (unpaired-start=1)"]);
    let r = rule(&o, RuleId::UnpairedStart);
    assert_eq!((r.failing, r.outside_run), (1, 1));
    assert_eq!(rule(&o, RuleId::UnpairedEnd).verdict, RuleVerdict::Reported);
}

#[test]
fn the_commands_exit_status_is_a_test_case_of_its_own() {
    let (header, report) = replayed("v6.12-compensating-end");
    let o = evaluate(report.clone(), &header, &Policy::default(), live_source(CommandEnd::Exited { code: 0 }, 0, 1));
    assert_eq!(o.status, Status::Pass);
    assert!(ktap::render(&o).ends_with("ok 19 command # exit status 0\n"));

    let o = evaluate(report.clone(), &header, &Policy::default(), live_source(CommandEnd::Exited { code: 3 }, 0, 1));
    assert_eq!((o.status, o.exit_code()), (Status::Fail, 1));
    assert_eq!(o.reasons, ["the command failed: ./test.sh --fast: exit status 3"]);
    let text = ktap::render(&o);
    assert!(
        text.ends_with("# command: ./test.sh --fast: exit status 3\nnot ok 19 command # exit status 3\n"),
        "{text}"
    );

    let o = evaluate(
        report,
        &header,
        &Policy::default(),
        live_source(CommandEnd::TimedOut { seconds: 2.0, signal: 15 }, 0, 1),
    );
    assert_eq!(o.status, Status::Fail);
    assert!(ktap::render(&o).ends_with("not ok 19 command # TIMEOUT 2 seconds\n"));
}

#[test]
fn ktap_puts_each_violation_before_its_rules_result() {
    let allow = Policy::new(vec![Allow::parse("kernel-warn").unwrap()], vec![], false);
    let o = judge("failed-start-has-end-op", &allow);
    let text = ktap::render(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "KTAP version 1");
    assert!(lines.contains(&"1..18"), "a replay has no command case: {text}");
    let result = |name: &str| {
        lines.iter().position(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} #"))).expect(name)
    };
    let warn = result("kernel-warn");
    assert!(
        lines[warn].starts_with("ok 17 kernel-warn # XFAIL 1 violation allowed as a known issue (--allow kernel-warn)"),
        "{}",
        lines[warn]
    );
    assert!(lines[warn - 1].starts_with("# "), "diagnostics precede the result");
    assert!(
        text.contains(
            "# kernel-warn (not counted, allowed as a known issue (--allow kernel-warn)): error [kernel-warn]"
        ),
        "{text}"
    );
    let op = result("failed-start-has-end-op");
    assert!(lines[op].starts_with("not ok 8 failed-start-has-end-op # 1 failing violation"), "{}", lines[op]);
    assert!(lines[result("unpaired-start")].starts_with("ok 1 unpaired-start"), "{text}");
}

#[test]
fn a_leak_its_size_and_the_tasks_it_left_stuck_are_in_every_report() {
    let (header, report) = replayed("itree-leak");
    let Source::Live(mut run) = live_source(CommandEnd::Exited { code: 0 }, 0, u64::MAX) else { unreachable!() };
    run.stuck.push(BlockedTask {
        tid: 182,
        pid: 182,
        comm: "remover".into(),
        wait: "mmu_interval_notifier_remove",
        waits_for: "the mm's interval tree to finish invalidating, to remove an interval subscriber",
        mm: Some(Addr(0xffff888003a1c000)),
        stack: vec!["__schedule+0x10".into(), "mmu_interval_notifier_remove+0x40".into()],
    });
    let o = evaluate(report, &header, &Policy::default(), Source::Live(run));
    assert_eq!(o.status, Status::Fail);
    let leak = "interval-tree leak: mm 0xffff888003a1c000: 1 range(s) leaked; kernel active_invalidate_ranges 1, invalidate_seq 9";
    let stuck = "stuck: tid 182 of pid 182 (remover) blocked in mmu_interval_notifier_remove on mm 0xffff888003a1c000";
    let text = super::text::summary(&o);
    assert!(text.contains(&format!("check: {leak}")) && text.contains(&format!("check: {stuck}")), "{text}");
    let ktap = ktap::render(&o);
    assert!(ktap.contains(&format!("# {leak}")) && ktap.contains(&format!("# {stuck}")), "{ktap}");
    let doc: serde_json::Value = serde_json::from_str(&json::render(&o)).expect("json");
    assert_eq!(doc["itree_leaks"][0]["leaked_ranges"], 1);
    assert_eq!(doc["stuck_tasks"][0]["wait"], "mmu_interval_notifier_remove");
}
