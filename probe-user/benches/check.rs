//! `check`'s own costs:
//! (1) judging a report at the checker's storage cap (10,000 violations) and writing it as
//!     KTAP, JUnit and JSON;
//! (2) as root, the wall time `check` adds around a command that does nothing (attach, lead-in,
//!     drain, reports), and the workload's worst case (zap and refault one page of a KVM
//!     process) untraced, under `check` and under `check --pid-tree`.
//! Run with `cargo bench -p probe-user --bench check`.
use std::{
    process::{Command, Stdio},
    time::Instant,
};

use mmnotif_trace::{
    check::{Policy, Source, evaluate, json, junit, ktap},
    checker::Checker,
    trace::{Header, Hook, parse_event_line},
};

const BIN: &str = env!("CARGO_BIN_EXE_mmnotif-trace");

fn full_header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.43+deb13-amd64"), |h, hook| h.with_attach(hook, "fentry"))
}

/// A trace of `n` ends without a start (each an `unpaired-end`), by 64 tasks.
fn unpaired_ends(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"ts":{},"type":"range_end","cpu":0,"pid":{tid},"tid":{tid},"comm":"w","mm":"0xffff888003a1c000","range":"0xffffc9000{:07x}","start":"0x7f0000000000","end":"0x7f0000001000","event":"clear","blockable":true}}"#,
                2_000_000_000 + i * 1000,
                i * 64,
                tid = 1000 + i % 64
            )
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reports() {
    let header = full_header();
    let lines = unpaired_ends(12_000);
    let mut checker = Checker::new(&header);
    for (i, line) in lines.iter().enumerate() {
        checker.push(&parse_event_line(line, i as u64 + 2).expect("event"));
    }
    let report = checker.finish();
    let stored = report.violations.len();
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut sizes = [0usize; 3];
    for _ in 0..5 {
        let t = Instant::now();
        let o = evaluate(report.clone(), &header, &Policy::default(), Source::Replay("bench.jsonl".into()));
        times[0].push(t.elapsed().as_secs_f64() * 1e3);
        for (k, render) in [ktap::render, junit::render, json::render].into_iter().enumerate() {
            let t = Instant::now();
            sizes[k] = std::hint::black_box(render(&o)).len();
            times[k + 1].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!("report with {stored} stored violations (of {}):", report.violation_counts.values().sum::<u64>());
    println!("  judge {:.1} ms", median(times[0].clone()));
    for (k, name) in ["KTAP", "JUnit", "JSON"].iter().enumerate() {
        println!("  {name:<5} {:.1} ms, {:.1} MiB", median(times[k + 1].clone()), sizes[k] as f64 / (1 << 20) as f64);
    }
}

fn wall(args: &[&str]) -> f64 {
    let t = Instant::now();
    let status = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run");
    assert!(status.code().is_some_and(|c| c == 0 || c == 4), "{args:?}: {status}");
    t.elapsed().as_secs_f64()
}

/// ns per iteration printed by `workload --hammer`, run directly or under `check` with `wrap`.
fn hammer(wrap: &[&str], iterations: &str) -> f64 {
    let mut cmd = Command::new(BIN);
    if !wrap.is_empty() {
        cmd.args(wrap).arg("--").arg(BIN);
    }
    let out = cmd.args(["workload", "--hammer", iterations]).stderr(Stdio::null()).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no ns/op in {text:?}"))
}

fn live() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("live: skipped (needs root)");
        return;
    }
    let bare: Vec<f64> = (0..5).map(|_| wall(&["workload", "--steps", "madvise_dontneed"])).collect();
    let wrapped: Vec<f64> =
        (0..5).map(|_| wall(&["check", "--", BIN, "workload", "--steps", "madvise_dontneed"])).collect();
    println!(
        "wall time of a one-step workload: {:.0} ms alone, {:.0} ms under check",
        median(bare) * 1e3,
        median(wrapped) * 1e3
    );
    let iterations = "100000";
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let untraced = hammer(&[], iterations);
        let wide = hammer(&["check"], iterations);
        let tree = hammer(&["check", "--pid-tree"], iterations);
        println!(
            "  hammer ns/op: untraced {untraced:.0}, check {wide:.0} ({:.2}x), check --pid-tree {tree:.0} ({:.2}x)",
            wide / untraced,
            tree / untraced
        );
        rounds.push((wide / untraced, tree / untraced));
    }
    println!(
        "hammer slowdown, median of 3 rounds: check {:.2}x, check --pid-tree {:.2}x",
        median(rounds.iter().map(|r| r.0).collect()),
        median(rounds.iter().map(|r| r.1).collect())
    );
}

fn main() {
    reports();
    live();
}
