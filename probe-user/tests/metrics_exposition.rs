//! The exporter's exposition of real checker runs (the full-mode corpus traces, which this
//! host's degraded mode cannot produce): lint-free for promtool, values equal to the
//! checker's own report, and no raw kernel address in any label.

mod common;

use std::{fs::File, io::BufReader};

use common::{corpus, corpus_traces, parse_exposition, promtool_check, sum};
use mmnotif_trace::{
    checker::{Checker, RuleId},
    loader::{AttachReport, HookStatus, Method},
    metrics::{
        EventBreakdown, InventorySnapshot, SessionInfo, SessionSnapshot, encode, families,
        inventory::{KvmGauges, MmGauges},
    },
    session::SessionTotals,
    trace::{EventType, Hook, TraceReader},
};
use prometheus::{Encoder, TextEncoder};

/// Replays a trace through the checker and the exporter's breakdown, as a live session does.
fn exposition(name: &str) -> (String, mmnotif_trace::checker::Report) {
    exposition_with(name, &InventorySnapshot::default())
}

/// The same, with `inventory` as the last inventory walk's gauges.
fn exposition_with(name: &str, inventory: &InventorySnapshot) -> (String, mmnotif_trace::checker::Report) {
    let file = File::open(corpus(name)).expect("corpus trace");
    let reader = TraceReader::new(BufReader::new(file)).expect("header");
    let mut checker = Checker::new(reader.header());
    let mut breakdown = EventBreakdown::default();
    for event in reader {
        let event = event.expect("valid trace");
        checker.push(&event);
        breakdown.observe(&event);
    }
    let mut attach = AttachReport::default();
    let mut start = HookStatus::new(Hook::RangeStart);
    start.method = Some(Method::Fentry);
    attach.hooks.push(start);
    attach.hooks.push(HookStatus::new(Hook::RangeEnd));
    let info = SessionInfo::new("6.12.43+deb13-amd64", &attach);
    let snapshot = SessionSnapshot::capture(&checker, &breakdown, &SessionTotals::default());
    let families = encode(&info, &snapshot, inventory, 0);
    let mut text = Vec::new();
    TextEncoder::new().encode(&families, &mut text).expect("encode");
    (String::from_utf8(text).expect("utf-8"), checker.report())
}

#[test]
fn every_corpus_trace_exposes_lint_free_metrics_without_addresses() {
    let names: Vec<String> =
        corpus_traces().iter().filter_map(|p| p.file_name()?.to_str().map(str::to_owned)).collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let (text, _) = exposition(&name);
        let (ok, report) = promtool_check(&text);
        assert!(ok && report.trim().is_empty(), "{name}: promtool check metrics:\n{report}\n{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(!line.contains("\"0x"), "{name}: a label value is a raw address: {line}");
        }
    }
}

/// An inventory walk that fills every per-mm family: one process with a KVM VM mid-invalidation
/// and an interval tree that is invalidating, and tasks stuck on a leaked interval tree.
fn busy_inventory() -> InventorySnapshot {
    InventorySnapshot {
        mms: vec![MmGauges {
            pid: "4242".into(),
            comm: "qemu-system-x86".into(),
            subscribers: 2,
            interval_subscribers: 1,
            itree_active: Some(1),
            itree_invalidating: Some(true),
            kvm: vec![KvmGauges { vm: "0".into(), active_invalidate_count: Some(1), invalidate_in_progress: Some(1) }],
        }],
        total_mms: 1,
        stuck: vec![("mmu_interval_read_begin", 1), ("mmu_interval_notifier_remove", 1)],
        refreshes_ok: 3,
        refreshes_failed: 1,
        last_refresh_unix_seconds: 1_764_000_000.0,
    }
}

/// promtool is only as good as what it is shown: this scrape has a series in every family the
/// exporter declares (a family with none would hide a naming mistake, as `_count` on a gauge
/// once did).
#[test]
fn a_scrape_with_every_family_populated_is_lint_free() {
    let inventory = busy_inventory();
    let mut seen = std::collections::BTreeSet::new();
    let mut texts = Vec::new();
    for name in ["clean-all-types.jsonl", "lost-then-unpaired-end.jsonl", "v6.6-double-end.jsonl", "itree-leak.jsonl"] {
        let (text, _) = exposition_with(name, &inventory);
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let series = line.split(['{', ' ']).next().unwrap_or_default();
            seen.insert(series.to_string());
        }
        texts.push((name, text));
    }
    let empty: Vec<&str> = families::ALL
        .iter()
        .map(|f| f.name)
        .filter(|family| {
            !seen.iter().any(|s| {
                s == family || ["_bucket", "_sum", "_count"].iter().any(|suffix| s.strip_suffix(suffix) == Some(family))
            })
        })
        .collect();
    assert!(empty.is_empty(), "families with no series in any scrape: {empty:?}");
    for (name, text) in texts {
        let (ok, report) = promtool_check(&text);
        assert!(ok && report.trim().is_empty(), "{name}: promtool check metrics:\n{report}\n{text}");
    }
}

#[test]
fn values_equal_the_checker_report() {
    for name in [
        "v6.6-double-end.jsonl",
        "bad-errno.jsonl",
        "lost-events.jsonl",
        "clean-all-types.jsonl",
        "interval-blockable-false.jsonl",
    ] {
        let (text, report) = exposition(name);
        let samples = parse_exposition(&text);
        let t = &report.stats.totals;
        assert_eq!(sum(&samples, "mmnotif_range_starts_total", &[]), t.range_starts as f64, "{name}");
        assert_eq!(sum(&samples, "mmnotif_range_ends_total", &[]), t.range_ends as f64, "{name}");
        assert_eq!(
            sum(&samples, "mmnotif_start_failures_total", &[("level", "range")]),
            t.range_failures as f64,
            "{name}"
        );
        assert_eq!(sum(&samples, "mmnotif_open_ranges", &[]), t.open_now as f64, "{name}");
        assert_eq!(sum(&samples, "mmnotif_lost_events_total", &[("cause", "ring_full")]), report.lost as f64, "{name}");
        assert_eq!(sum(&samples, "mmnotif_kernel_warnings_total", &[]), t.warns as f64, "{name}");
        assert_eq!(
            sum(&samples, "mmnotif_range_duration_seconds_count", &[]),
            t.range_durations.count as f64,
            "{name}"
        );
        for rule in RuleId::ALL {
            let expected = report.violation_counts.get(&rule).copied().unwrap_or(0) as f64;
            let got = sum(
                &samples,
                "mmnotif_violations_total",
                &[("rule", rule.as_str()), ("severity", &rule.severity().to_string())],
            );
            assert_eq!(got, expected, "{name}: {rule}");
            let checked = if report.checked.contains(&rule) { 1.0 } else { 0.0 };
            assert_eq!(sum(&samples, "mmnotif_rule_checked", &[("rule", rule.as_str())]), checked, "{name}: {rule}");
        }
        for kind in EventType::ALL {
            let expected = report.stats.by_type.get(kind.as_str()).copied().unwrap_or(0) as f64;
            assert_eq!(
                sum(&samples, "mmnotif_events_total", &[("type", kind.as_str())]),
                expected,
                "{name}: {}",
                kind.as_str()
            );
        }
        for n in &report.stats.notifiers {
            let callback = n.callback.function();
            assert_eq!(
                sum(&samples, "mmnotif_subscriber_calls_total", &[("callback", callback), ("call", "start")]),
                n.starts as f64,
                "{name}: {callback}"
            );
            assert_eq!(
                sum(&samples, "mmnotif_subscriber_calls_total", &[("callback", callback), ("call", "end")]),
                n.ends as f64,
                "{name}: {callback}"
            );
            assert_eq!(
                sum(&samples, "mmnotif_subscriber_failures_total", &[("callback", callback)]),
                n.failures as f64,
                "{name}: {callback}"
            );
            assert_eq!(
                sum(&samples, "mmnotif_subscriber_duration_seconds_count", &[("callback", callback)]),
                n.durations.count as f64,
                "{name}: {callback}"
            );
            let inf =
                sum(&samples, "mmnotif_subscriber_duration_seconds_bucket", &[("callback", callback), ("le", "+Inf")]);
            assert_eq!(inf, n.durations.count as f64, "{name}: {callback}");
        }
    }
}

#[test]
fn breakdowns_name_the_event_type_blockability_and_errno() {
    let (text, report) = exposition("bad-errno.jsonl");
    let samples = parse_exposition(&text);
    assert!(report.violation_counts.contains_key(&RuleId::BadErrno), "{report}");
    let non_eagain: f64 = samples
        .iter()
        .filter(|((n, l), _)| n == "mmnotif_start_failures_total" && l.get("errno").is_some_and(|e| e != "EAGAIN"))
        .map(|(_, v)| v)
        .sum();
    assert!(non_eagain >= 1.0, "a bad errno is counted under its own name:\n{text}");
    let info = sum(&samples, "mmnotif_tracer_info", &[("kernel", "6.12.43+deb13-amd64"), ("mode", "degraded")]);
    assert_eq!(info, 1.0, "{text}");
    assert_eq!(sum(&samples, "mmnotif_hook_info", &[("hook", "range_start"), ("method", "fentry")]), 1.0);
    assert_eq!(sum(&samples, "mmnotif_hook_info", &[("hook", "range_end"), ("method", "unavailable")]), 1.0);
    // Every (type, event, blockable) combination the trace holds, counted from its lines.
    let (clean, _) = exposition("clean-all-types.jsonl");
    let clean = parse_exposition(&clean);
    let mut expected: std::collections::BTreeMap<(String, String, String), f64> = Default::default();
    for line in std::fs::read_to_string(corpus("clean-all-types.jsonl")).expect("trace").lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let family = match v["type"].as_str() {
            Some("range_start") => "mmnotif_range_starts_total",
            Some("range_end") => "mmnotif_range_ends_total",
            _ => continue,
        };
        let key = (family.to_owned(), v["event"].as_str().expect("event").to_owned(), v["blockable"].to_string());
        *expected.entry(key).or_default() += 1.0;
    }
    assert!(expected.len() >= 6, "{expected:?}");
    for ((family, event, blockable), n) in &expected {
        assert_eq!(
            sum(&clean, family, &[("event", event), ("blockable", blockable)]),
            *n,
            "{family} {event} {blockable}"
        );
    }
    let total: f64 = expected.values().sum();
    let exposed = sum(&clean, "mmnotif_range_starts_total", &[]) + sum(&clean, "mmnotif_range_ends_total", &[]);
    assert_eq!(exposed, total, "no count outside the combinations the trace holds");
}
