//! `mmnotif-trace check` around real commands on this host's kernel (root). Here no function
//! probe can attach, so the verdict is a skip (4) with its reason, while the checks the
//! tracepoints still allow run for real: kernel WARNs, lost events, the command's own status,
//! and the events of KVM processes (with `--pid-tree`, only the command's).

mod common;

use std::{
    fs,
    path::Path,
    process::{Command, Output, Stdio},
};

use common::{
    BIN, ktap,
    reports::{scratch, validate_json, validate_junit},
    stderr,
};
use serde_json::Value;

/// On a kernel with kprobes the pairing rules are checked: that is the guest suite's ground.
fn degraded_host() -> bool {
    !Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

fn check(args: &[&str]) -> Output {
    Command::new(BIN).arg("check").args(args).stdin(Stdio::null()).output().expect("run mmnotif-trace check")
}

fn json_report(path: &Path) -> Value {
    let v: Value = serde_json::from_str(&fs::read_to_string(path).expect("json report")).expect("json");
    validate_json(&v).unwrap_or_else(|e| panic!("the report does not match its schema:\n{e}"));
    v
}

fn mm_rows(report: &Value) -> &Vec<Value> {
    report["statistics"]["mms"].as_array().expect("mms")
}

#[test]
fn check_skips_here_with_its_reason_and_still_runs_the_degraded_checks() {
    if !common::root() {
        return;
    }
    if !degraded_host() {
        return;
    }
    let dir = scratch("host-skip");
    let (k, j, x) = (dir.join("r.ktap"), dir.join("r.json"), dir.join("r.xml"));
    let o = check(&[
        "--ktap-file",
        k.to_str().expect("utf8"),
        "--json",
        j.to_str().expect("utf8"),
        "--junit",
        x.to_str().expect("utf8"),
        "--",
        BIN,
        "workload",
        "--steps",
        "madvise_dontneed,mprotect",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("check: SKIP (exit status 4)"), "{err}");
    assert!(
        err.contains("no start/end probe") && err.contains("kprobes are compiled out"),
        "the reason, from the attach attempts: {err}"
    );
    // The command's own output passes through.
    assert!(String::from_utf8_lossy(&o.stdout).contains("madvise_dontneed"), "{}", String::from_utf8_lossy(&o.stdout));

    let text = fs::read_to_string(&k).expect("ktap");
    let doc = ktap::parse(&text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(doc.plan, Some(19));
    for t in &doc.results[..14] {
        assert!(
            t.ok && t.skipped() && t.data.as_deref().is_some_and(|d| d.starts_with("not checked: needs ")),
            "{t:?}"
        );
    }
    // The degraded checks: WARNs through error_report_end, losses, the command.
    for name in ["kernel-warn", "events-lost"] {
        let t = doc.results.iter().find(|t| t.description == name).expect(name);
        assert!(t.ok && t.directive.is_none(), "{name} is checked here: {t:?}");
    }
    let command = doc.results.last().expect("command case");
    assert_eq!(
        (command.description.as_str(), command.ok, command.data.as_deref()),
        ("command", true, Some("exit status 0"))
    );
    validate_junit(&x).unwrap_or_else(|e| panic!("{e}"));

    let report = json_report(&j);
    assert_eq!(report["mode"], "degraded");
    assert_eq!(report["attach"]["error_report_end"], "tp_btf");
    assert!(report["attach"]["range_start"].as_str().is_some_and(|m| m.starts_with("unavailable: ")), "{report:#}");
    assert_eq!(report["command"]["code"], 0);
    assert_eq!(report["session"]["lost"], 0);
    // The workload's own invalidations were seen (madvise 1, mprotect 2: machine.md).
    let pid = report["command"]["pid"].clone();
    let row = mm_rows(&report)
        .iter()
        .find(|m| m["pid"] == pid)
        .unwrap_or_else(|| panic!("no mm row for the command {pid}: {report:#}"));
    assert!(row["subscriber_calls"].as_u64().is_some_and(|n| n >= 3), "{row}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_command_fails_the_check_as_a_test_case_of_its_own() {
    if !common::root() {
        return;
    }
    let o = check(&["--ktap", "--", "sh", "-c", "echo from-the-command; exit 3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("from-the-command\nKTAP version 1\n"), "the command's output first, untouched: {out}");
    let doc = ktap::parse(&out, false).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let last = doc.results.last().expect("results");
    assert_eq!(
        (last.number, last.description.as_str(), last.ok, last.data.as_deref()),
        (19, "command", false, Some("exit status 3"))
    );
    assert!(
        stderr(&o).contains("because the command failed: sh -c 'echo from-the-command; exit 3': exit status 3"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_command_past_its_timeout_is_stopped_and_fails() {
    if !common::root() {
        return;
    }
    let o = check(&["--timeout", "1", "--ktap", "--", "sleep", "60"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let doc = ktap::parse(&out, true).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let last = doc.results.last().expect("results");
    assert_eq!(
        (last.ok, last.directive.as_deref(), last.data.as_deref()),
        (false, Some("TIMEOUT"), Some("1 seconds")),
        "{last:?}"
    );
}

#[test]
fn lost_events_make_the_verdict_incomplete_unless_allowed() {
    if !common::root() {
        return;
    }
    let dir = scratch("host-lost");
    let j = dir.join("r.json");
    // A one-page ring drained every 10 ms cannot hold what zapping a page in a loop produces.
    let run = |extra: &[&str]| {
        let mut args = vec!["--ring-size", "4096", "--json", j.to_str().expect("utf8")];
        args.extend(extra);
        args.extend(["--", BIN, "workload", "--hammer", "100000"]);
        check(&args)
    };
    let o = run(&[]);
    let report = json_report(&j);
    let lost = report["lost"].as_u64().expect("lost");
    assert!(lost > 0, "{report:#}");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(report["status"], "incomplete");
    assert_eq!(report["session"]["lost"], lost, "every lost record is accounted for");
    let rule = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"] == "events-lost")
        .expect("events-lost")
        .clone();
    assert_eq!(rule["verdict"], "fail");
    assert!(stderr(&o).contains("events were lost before reaching userspace"), "{}", stderr(&o));

    let o = run(&["--allow-lost"]);
    let report = json_report(&j);
    assert_eq!(o.status.code(), Some(if degraded_host() { 4 } else { 0 }), "{}", stderr(&o));
    assert!(
        report["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("tolerated by --allow-lost"))),
        "{report:#}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn pid_tree_keeps_the_commands_descendants_and_nothing_else() {
    if !common::root() {
        return;
    }
    let dir = scratch("host-tree");
    let j = dir.join("r.json");
    // Traffic from a KVM process outside the command's tree, for the whole run.
    let mut outsider = Command::new(BIN)
        .args(["workload", "--repeat", "0", "--hold-ms", "20", "--steps", "madvise_dontneed"])
        .stdout(Stdio::null())
        .spawn()
        .expect("outside workload");
    let outsider_pid = outsider.id();
    // The workload runs as a grandchild (sh does not exec it: another command follows).
    let inner = format!("{BIN} workload --steps madvise_dontneed,fork >/dev/null; true");
    let tree = check(&["--pid-tree", "--json", j.to_str().expect("utf8"), "--", "sh", "-c", &inner]);
    let tree_report = json_report(&j);
    let wide = check(&["--json", j.to_str().expect("utf8"), "--", "sh", "-c", &inner]);
    let wide_report = json_report(&j);
    let _ = outsider.kill();
    let _ = outsider.wait();

    assert_eq!(tree.status.code(), Some(if degraded_host() { 4 } else { 0 }), "{}", stderr(&tree));
    let summary = &tree_report["pid_tree"];
    assert!(summary["events_kept"].as_u64().is_some_and(|n| n >= 18), "madvise and fork of the grandchild: {summary}");
    assert!(
        summary["events_outside"].as_u64().is_some_and(|n| n >= 1),
        "the outsider's events were left out: {summary}"
    );
    let rows = mm_rows(&tree_report);
    assert!(!rows.is_empty());
    for row in rows {
        assert_ne!(row["pid"], outsider_pid, "an outside process was checked: {row}");
        assert_ne!(row["pid"], tree_report["command"]["pid"], "sh itself has no KVM mm: {row}");
    }
    assert!(
        tree_report["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.starts_with("--pid-tree (membership from fork-events): kept ")))
    );
    assert_eq!(
        (summary["membership_source"].as_str(), summary["events_gone"].as_u64()),
        (Some("fork-events"), Some(0)),
        "{summary}"
    );
    // System-wide (the default), the outsider is part of the verdict.
    assert!(wide_report["pid_tree"].is_null());
    assert!(mm_rows(&wide_report).iter().any(|row| row["pid"] == outsider_pid), "{wide_report:#}");
    assert!(wide.status.success() || wide.status.code() == Some(4), "{}", stderr(&wide));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_process_events_connector_reports_forks_with_their_parent() {
    if !common::root() {
        return;
    }
    let mut watch = mmnotif_trace::check::fork_watch::ForkWatch::open().expect("CONFIG_PROC_EVENTS is on here");
    let out = Command::new("sh").args(["-c", "sleep 0 & echo $!; wait"]).output().expect("sh");
    let grandchild: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("pid");
    let mut forks = Vec::new();
    watch.drain(|f| forks.push(f));
    let me = std::process::id();
    let sh = forks.iter().find(|f| f.parent_tgid == me).unwrap_or_else(|| panic!("our fork of sh: {forks:?}"));
    assert!(
        forks.iter().any(|f| f.parent_tgid == sh.child_tgid && f.child_tgid == grandchild),
        "sh's fork of {grandchild}: {forks:?}"
    );
    assert_eq!(watch.overflows, 0);
}
