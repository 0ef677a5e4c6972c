//! `--metrics` on this host's real kernel, with the built-in KVM workload as traffic: the
//! live endpoint passes promtool, carries every metric the dashboards query, and a real
//! Prometheus server scraping it stores the tracer's own totals. Root only, like the other
//! host tests.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

use common::{
    BIN,
    dashboards::{dashboards, metric_names_used},
    live::LiveTracer,
    prometheus::PrometheusServer,
    promtool_check, sum,
};
use serde_json::Value;

const KVM_START: &str = "kvm_mmu_notifier_invalidate_range_start";

#[test]
fn promtool_accepts_the_live_endpoint_during_the_workload() {
    if !common::root() {
        return;
    }
    let tracer = LiveTracer::start(&["stream", "--workload", "--format", "jsonl"]);
    let (body, samples) = tracer.scrape_until(240, "KVM invalidations from the workload", |s| {
        sum(s, "mmnotif_subscriber_calls_total", &[("callback", KVM_START), ("call", "start")]) > 0.0
    });
    let (ok, report) = promtool_check(&body);
    assert!(ok && report.trim().is_empty(), "promtool check metrics:\n{report}\n{body}");
    assert_eq!(sum(&samples, "mmnotif_tracer_info", &[]), 1.0, "{body}");
    for cause in ["ring_full", "undecodable"] {
        assert!(
            samples.keys().any(|(n, l)| n == "mmnotif_lost_events_total" && l["cause"] == cause),
            "lost {cause}: {body}"
        );
    }
    let (_, stderr) = tracer.stop();
    assert!(stderr.iter().any(|l| l.contains("verdict")), "{stderr:#?}");
}

#[test]
fn every_metric_the_dashboards_query_is_in_a_live_scrape() {
    if !common::root() {
        return;
    }
    let tracer = LiveTracer::start(&["stream", "--format", "jsonl"]);
    // A VM that stays open, so the inventory has a KVM subscriber to report.
    let mut workload = Command::new(BIN)
        .args(["workload", "--steps", "madvise_dontneed,mprotect", "--hold-ms", "120000", "--format", "jsonl"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start workload");
    let mut line = String::new();
    BufReader::new(workload.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("first step report");
    let pid = workload.id().to_string();
    let (body, samples) = tracer.scrape_until(240, "the workload's VM in the inventory and its invalidations", |s| {
        s.keys().any(|(n, l)| n == "mmnotif_kvm_mn_active_invalidations" && l.get("pid") == Some(&pid))
            && sum(s, "mmnotif_subscriber_calls_total", &[("callback", KVM_START)]) > 0.0
    });
    let _ = workload.kill();
    let _ = workload.wait();
    assert_eq!(
        sum(&samples, "mmnotif_kvm_mn_active_invalidations", &[("pid", &pid)]),
        0.0,
        "an idle VM has no open invalidation: {body}"
    );
    assert_eq!(sum(&samples, "mmnotif_mm_subscribers", &[("pid", &pid)]), 1.0, "one VM, one subscriber: {body}");
    assert_eq!(
        sum(&samples, "mmnotif_mm_interval_subscribers", &[("pid", &pid)]),
        0.0,
        "KVM subscribes by list only: {body}"
    );
    let served: std::collections::BTreeSet<&str> = samples.keys().map(|(n, _)| n.as_str()).collect();
    for (name, dashboard) in dashboards() {
        for metric in metric_names_used(&dashboard) {
            assert!(
                served.contains(metric.as_str()),
                "{name} queries {metric}, which the live endpoint does not serve:\n{body}"
            );
        }
    }
    tracer.stop();
}

/// `kernel emitted A events, received R, lost L[, U undecodable][, incomplete …]` → (A, R, L, U).
fn summary_numbers(stderr: &[String]) -> (f64, f64, f64, f64) {
    let line = stderr
        .iter()
        .find_map(|l| l.strip_prefix("mmnotif-trace: kernel emitted "))
        .unwrap_or_else(|| panic!("no summary: {stderr:#?}"));
    let counts = line.split(", incomplete").next().unwrap_or(line);
    let numbers: Vec<f64> = counts.split([' ', ',']).filter_map(|w| w.parse().ok()).collect();
    match numbers.as_slice() {
        [a, r, l] => (*a, *r, *l, 0.0),
        [a, r, l, u] => (*a, *r, *l, *u),
        _ => panic!("summary {line:?}"),
    }
}

#[test]
fn prometheus_stores_the_tracer_totals() {
    if !common::root() {
        return;
    }
    // The workload waits at a gate until the tracer runs, so its pid can be the filter and
    // every event it causes is counted; exec keeps that pid.
    let mut gate = Command::new("sh")
        .args(["-c", r#"read go && exec "$0" workload --repeat 2 --format jsonl"#, BIN])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gated workload");
    let pid = gate.id();
    let tracer = LiveTracer::start(&["stream", "--format", "jsonl", "--pid", &pid.to_string()]);
    let prometheus = PrometheusServer::start(tracer.addr);
    prometheus.wait_for(240, "up", |up| up == 1.0);

    writeln!(gate.stdin.take().expect("gate stdin"), "go").expect("open the gate");
    let status = gate.wait().expect("workload");
    assert!(status.success(), "workload {status}");
    let exited = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    // The tracer publishes within a drain and a publication interval (~110 ms) of the
    // workload's last event; a scrape taken 2 s after its exit holds everything.
    prometheus.wait_for(240, "max(timestamp(mmnotif_events_total))", |ts| ts >= exited + 2.0);

    let by = |expr: &str, label: &str| -> BTreeMap<String, f64> {
        prometheus.query(expr).into_iter().map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v)).collect()
    };
    let stored_events = by("mmnotif_events_total", "type");
    let stored_starts = by(r#"sum by (callback) (mmnotif_subscriber_calls_total{call="start"})"#, "callback");
    let stored_lost = by("mmnotif_lost_events_total", "cause");
    let stored_violations = prometheus.query_sum("sum(mmnotif_violations_total)");
    let stored_warnings = prometheus.query_sum("sum(mmnotif_kernel_warnings_total)");
    let stored_emitted = prometheus.query_sum("mmnotif_kernel_records_emitted_total");
    let stored_received = prometheus.query_sum("mmnotif_ring_records_received_total");
    let (trace, stderr) = tracer.stop();

    // The tracer's own totals: its trace, its summary line and its verdict line.
    let mut lines = trace.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header")).expect("header json");
    assert_eq!(header["mmnotif_trace"], 1);
    let mut events: BTreeMap<String, f64> = BTreeMap::new();
    let mut starts: BTreeMap<String, f64> = BTreeMap::new();
    for line in lines {
        let e: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let kind = e["type"].as_str().expect("type").to_owned();
        if kind == "subscriber_start" {
            let callback = e["callback"].as_str().expect("callback");
            *starts.entry(callback.split(['+', ' ']).next().unwrap_or(callback).to_owned()).or_default() += 1.0;
        }
        *events.entry(kind).or_default() += 1.0;
    }
    assert!(starts.get(KVM_START).is_some_and(|n| *n >= 10.0), "the workload's invalidations are traced: {starts:?}");
    for (kind, n) in &stored_events {
        assert_eq!(
            *n,
            events.get(kind).copied().unwrap_or(0.0),
            "events of type {kind}: stored {stored_events:?}, traced {events:?}"
        );
    }
    assert_eq!(stored_events.values().sum::<f64>(), events.values().sum::<f64>(), "every traced event type is stored");
    assert_eq!(stored_starts, starts, "subscriber starts by callback");
    assert_eq!(stored_warnings, events.get("warn").copied().unwrap_or(0.0));
    let (emitted, received, lost, undecodable) = summary_numbers(&stderr);
    assert_eq!(stored_lost.get("ring_full").copied(), Some(lost), "{stderr:#?}");
    assert_eq!(stored_lost.get("undecodable").copied(), Some(undecodable), "{stderr:#?}");
    // Other processes keep the kernel side busy after the last scrape (task exits), so these
    // only grow between the scrape and the summary.
    assert!(stored_emitted > 0.0 && stored_emitted <= emitted, "emitted: stored {stored_emitted}, summary {emitted}");
    assert!(
        stored_received >= events.values().sum::<f64>() && stored_received <= received,
        "received: stored {stored_received}, summary {received}"
    );
    let verdict =
        stderr.iter().find_map(|l| l.strip_prefix("mmnotif-trace: verdict ")).unwrap_or_else(|| panic!("{stderr:#?}"));
    let violations: f64 = verdict
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{verdict}"));
    assert_eq!(stored_violations, violations, "{verdict}");
}

#[test]
fn selftest_serves_metrics_while_it_runs() {
    if !common::root() {
        return;
    }
    let selftest = LiveTracer::start(&["selftest", "--format", "json"]);
    let (body, samples) = selftest.scrape();
    assert_eq!(sum(&samples, "mmnotif_tracer_info", &[]), 1.0, "{body}");
    let (status, stdout, stderr) = selftest.wait();
    assert!(status.success(), "{stdout}\n{stderr:#?}");
    let verdict: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(verdict["pass"], true, "{verdict:#}");
}

#[test]
fn check_serves_metrics_while_its_command_runs() {
    if !common::root() {
        return;
    }
    // The command keeps a VM open for a few seconds, so there is something to scrape.
    let command = [BIN, "workload", "--steps", "madvise_dontneed,mprotect", "--hold-ms", "3000"];
    let check = LiveTracer::start(&[&["check", "--"][..], &command].concat());
    let (body, samples) = check.scrape_until(240, "KVM invalidations from the command", |s| {
        sum(s, "mmnotif_subscriber_calls_total", &[("callback", KVM_START), ("call", "start")]) > 0.0
    });
    assert_eq!(sum(&samples, "mmnotif_tracer_info", &[]), 1.0, "{body}");
    let (status, _, stderr) = check.wait();
    // 0, or 4 (skip) on a kernel where the start/end pair cannot be observed (this host).
    assert!(matches!(status.code(), Some(0 | 4)), "check {status}: {stderr:#?}");
    assert!(stderr.iter().any(|l| l.contains("serving metrics at")), "{stderr:#?}");
}

#[test]
fn a_taken_port_is_a_one_line_error_naming_the_option() {
    if !common::root() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let out = Command::new(BIN)
        .args(["stream", "--duration", "5", "--metrics", &addr.to_string()])
        .output()
        .expect("run mmnotif-trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr.lines().last().unwrap_or_default();
    assert!(error.starts_with(&format!("mmnotif-trace: cannot serve metrics on {addr} (--metrics): ")), "{stderr}");
    assert!(error.contains("in use"), "{stderr}");
}

/// The packaged systemd unit's command (`stream --format violations --metrics`): events reach
/// the metrics while stdout carries only violations (JSON lines), and SIGTERM, what
/// `systemctl stop` sends, detaches it promptly with a zero status and the closing summary.
#[test]
fn the_service_command_prints_only_violations_and_stops_on_sigterm() {
    if !common::root() {
        return;
    }
    let tracer = LiveTracer::start(&["stream", "--format", "violations", "--workload"]);
    let (body, _) = tracer.scrape_until(240, "KVM invalidations from the workload", |s| {
        sum(s, "mmnotif_subscriber_calls_total", &[("callback", KVM_START), ("call", "start")]) > 0.0
    });
    let started = std::time::Instant::now();
    let (stdout, stderr) = tracer.stop();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "SIGTERM took {took:?} to stop the tracer");
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not a JSON line: {line:?}"));
        assert!(v["rule"].is_string() && v["severity"].is_string(), "not a violation: {line}");
    }
    let (emitted, received, _, _) = summary_numbers(&stderr);
    assert!(received > 0.0 && emitted >= received, "{stderr:#?}\n{body}");
    assert!(stderr.iter().any(|l| l.contains("verdict")), "{stderr:#?}");
}
