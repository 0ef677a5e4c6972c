//! Checks the recordings the QEMU guests made under the tracer (tests/guest/tracer.sh) against
//! the test module's own counters and against what the kernel's behaviour implies.
//!
//! `cargo xtask test` boots the guests, receives their files and runs this with
//! MMNOTIF_GUEST_FILES=<kernel>=<dir>[,<kernel>=<dir>...]. Without that variable there is
//! nothing to check, so the test is ignored by default rather than passing vacuously.
//!
//! Longer than 500 lines on purpose: it is one checklist, every check against the same
//! recordings of the guest scenarios (tests/guest/), read side by side with them; it runs only
//! where the guests ran, so each part would have no test of its own to stand in.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::BufReader,
    path::{Path, PathBuf},
};

use mmnotif_trace::{
    checker::replay_file,
    kernel_facts::{Fact, KernelVersion},
    trace::{Addr, Event, EventBody, Header, MmuEvent, TraceReader},
};
use serde_json::Value;

const METHODS: [(&str, [(&str, &str); 4]); 2] = [
    (
        "fentry",
        [
            ("range_start", "fentry"),
            ("range_start_ret", "fexit"),
            ("range_end", "fentry"),
            ("subscriber_start", "kretprobe"),
        ],
    ),
    (
        "kprobe",
        [
            ("range_start", "kprobe"),
            ("range_start_ret", "kretprobe"),
            ("range_end", "kprobe"),
            ("subscriber_start", "kretprobe"),
        ],
    ),
];

const SCENARIOS: [&str; 11] = [
    "list-ops",
    "interval-seq",
    "interval-preregistered",
    "oom-baseline",
    "oom-eagain",
    "oom-eagain-endop",
    "oom-rfc2019",
    "oom-interval",
    "oom-itree-list",
    "oom-itree-list-disjoint",
    "oom-itree-only",
];

/// Run where the kernel has the two-pass interval API (tests/guest/tracer.sh decides from the
/// module's symbols, which are built from the kernel's headers), with the fewest first passes
/// each must show.
const TWOPASS_SCENARIOS: [(&str, usize); 2] = [("interval-twopass", 4), ("oom-twopass", 1)];

/// Run where the kernel has process_mrelease(2) (tests/guest/suite.sh decides the same way).
const MRELEASE_SCENARIO: &str = "oom-itree-list-mrelease";

/// The interval-tree leak scenarios that leak (tests/guest/oom.c); `oom-itree-only` is their
/// control.
const LEAKING: [&str; 3] = ["oom-itree-list", "oom-itree-list-disjoint", MRELEASE_SCENARIO];

/// What a kernel built without c2655835fd8c (the compensating ends; the test bed's `5.10-prefix`)
/// runs under the tracer (tests/guest/suite.sh): the seed's case and clean scenarios to compare.
const WITHOUT_COMPENSATING_ENDS: [&str; 3] = ["list-ops", "oom-baseline", "oom-rfc2019"];

/// Upstream fixes the guest's kernel was built without (the guest ships `kernel-lacks`).
fn kernel_lacks(dir: &Path, commit: &str) -> bool {
    fs::read_to_string(dir.join("kernel-lacks")).is_ok_and(|t| t.split_whitespace().any(|c| c == commit))
}

/// The rule ids the checker must report per scenario; every other scenario is clean.
/// `compensating`: the kernel has c2655835fd8c (v5.12+, 5.10.27+).
fn expected_rules(scenario: &str, compensating: bool) -> Vec<&'static str> {
    match scenario {
        // Without the compensating ends the succeeding subscriber's start is never ended: the
        // bug the 2019 RFC fixed, once per failed start.
        "oom-rfc2019" if !compensating => vec!["notifier-unpaired-start"],
        // A subscriber that fails with an end op: the kernel WARNs in __start, and its
        // compensating-end loop still calls that subscriber's end, unpaired. The OOM reaper
        // retries, so each rule fires once per failed start.
        "oom-eagain-endop" => vec!["failed-start-has-end-op", "kernel-warn", "notifier-unpaired-end"],
        // Once per leaked mm, however many ranges leak.
        s if LEAKING.contains(&s) => vec!["itree-leak"],
        _ => vec![],
    }
}

struct Recording {
    header: Header,
    events: Vec<Event>,
    stderr: String,
    counters: Vec<Value>,
    trace: PathBuf,
}

fn load(dir: &Path, method: &str, scenario: &str) -> Recording {
    let base = dir.join(format!("{method}-{scenario}"));
    let trace = base.with_extension("jsonl");
    let file = fs::File::open(&trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    let reader = TraceReader::new(BufReader::new(file)).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    let header = reader.header().clone();
    let events: Vec<Event> = reader.map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", trace.display()))).collect();
    let stderr = fs::read_to_string(base.with_extension("err")).expect("tracer stderr");
    let counters = fs::read_to_string(base.with_extension("counters"))
        .expect("counters")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("counters line {l:?}: {e}")))
        .collect();
    Recording { header, events, stderr, counters, trace }
}

fn sum(counters: &[Value], pick: impl Fn(&Value) -> bool, fields: &[&str]) -> u64 {
    counters.iter().filter(|c| pick(c)).map(|c| fields.iter().map(|f| c[*f].as_u64().unwrap_or(0)).sum::<u64>()).sum()
}

fn callback_is(cb: &str, name: &str) -> bool {
    cb == name || cb.starts_with(&format!("{name} ")) || cb.starts_with(&format!("{name}+"))
}

/// Compares the tracer's per-callback counts with the module's counters.
/// Probe hits the kernel skipped and counted ("missed N probe hits" in the tracer's summary):
/// on 7.x (preemptible BPF programs) a rare skip is the kernel's, not the tracer's, and the
/// tracer reports it. 0 when the summary names none.
fn counted_misses(r: &Recording) -> u64 {
    r.stderr.split(", missed ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// `missed`: counted misses (see [`counted_misses`]); each module count may exceed the tracer's
/// by at most that many, never the other way round.
fn check_counts(r: &Recording, what: &str, missed: u64) -> Vec<String> {
    let mut problems = Vec::new();
    // blockability of each range, from its outer start (the callback events do not carry it)
    let mut blockable: HashMap<(u32, Addr), bool> = HashMap::new();
    let mut tally: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let list_starts = [(0u64, "mmnt_start_ok"), (1, "mmnt_start_eagain_nonblock"), (2, "mmnt_start_buggy")];
    for e in &r.events {
        match &e.body {
            EventBody::RangeStart(c) => {
                blockable.insert((c.tid, c.range), c.blockable);
            }
            EventBody::SubscriberStart(s) => {
                let b = s.range.and_then(|range| blockable.get(&(s.tid, range)).copied());
                for (_, name) in list_starts {
                    if callback_is(s.callback.as_str(), name) {
                        *tally.entry((name, if b == Some(false) { "nonblock" } else { "blockable" })).or_default() += 1;
                        if s.ret.is_some_and(|r| r != 0) {
                            *tally.entry((name, "failed")).or_default() += 1;
                        }
                    }
                }
            }
            EventBody::SubscriberEnd(s) if callback_is(s.callback.as_str(), "mmnt_end") => {
                let b = blockable.get(&(s.tid, s.range)).copied();
                *tally.entry(("mmnt_end", if b == Some(false) { "nonblock" } else { "blockable" })).or_default() += 1;
            }
            // Two-pass subscribers: every first pass, the false ones, the ones that left no
            // finish, and every finish (the kernel does not pass the range to a finish).
            EventBody::IntervalStart(i) => {
                *tally.entry(("twopass", "starts")).or_default() += 1;
                if !i.ret {
                    *tally.entry(("twopass", "false")).or_default() += 1;
                } else if i.finish == Addr(0) {
                    *tally.entry(("twopass", "no_finish")).or_default() += 1;
                }
            }
            EventBody::IntervalFinish(_) => {
                *tally.entry(("twopass", "finishes")).or_default() += 1;
            }
            EventBody::IntervalInvalidate(i) => {
                let b = blockable.get(&(i.tid, i.range)).copied();
                *tally.entry(("interval", if b == Some(false) { "nonblock" } else { "blockable" })).or_default() += 1;
                if !i.ret {
                    *tally.entry(("interval", "false")).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    let c = &r.counters;
    let list = |b: u64| move |v: &Value| v["kind"] == 1 && v["behaviour"] == b;
    let mut expect = |key: (&'static str, &'static str), module: u64| {
        let traced = tally.get(&key).copied().unwrap_or(0);
        if traced > module || module - traced > missed {
            problems.push(format!(
                "{what}: {} {}: module counted {module}, tracer saw {traced} (counted misses {missed})",
                key.0, key.1
            ));
        }
    };
    for (b, name) in list_starts {
        expect((name, "blockable"), sum(c, list(b), &["starts_blockable"]));
        expect((name, "nonblock"), sum(c, list(b), &["starts_nonblock"]));
        expect((name, "failed"), sum(c, list(b), &["fails_blockable", "fails_nonblock"]));
    }
    let with_end = |v: &Value| v["kind"] == 1 && v["flags"].as_u64().unwrap_or(0) & 1 == 1;
    expect(("mmnt_end", "blockable"), sum(c, with_end, &["ends_blockable"]));
    expect(("mmnt_end", "nonblock"), sum(c, with_end, &["ends_nonblock"]));
    let interval = |v: &Value| v["kind"] == 2;
    expect(("interval", "blockable"), sum(c, interval, &["inval_blockable"]));
    expect(("interval", "nonblock"), sum(c, interval, &["inval_nonblock"]));
    expect(("interval", "false"), sum(c, interval, &["inval_false"]));
    // Counters a module without two-pass support does not write count as 0.
    expect(("twopass", "starts"), sum(c, interval, &["tp_starts"]));
    expect(("twopass", "false"), sum(c, interval, &["tp_false"]));
    expect(("twopass", "no_finish"), sum(c, interval, &["tp_no_finish"]));
    expect(("twopass", "finishes"), sum(c, interval, &["tp_finishes"]));
    problems
}

/// The seed's case: inside the failed non-blocking start, the succeeding subscriber gets its
/// compensating end (`compensating`: the kernel has c2655835fd8c) or none at all; `__start`
/// returns -EAGAIN; no outer end follows.
fn check_rfc2019_sequence(r: &Recording, what: &str, compensating: bool) -> Vec<String> {
    let failed = r.events.iter().position(|e| matches!(&e.body, EventBody::RangeStartRet(x) if x.ret == -11));
    let Some(ret_at) = failed else { return vec![format!("{what}: no __start returned -EAGAIN")] };
    let EventBody::RangeStartRet(ret) = &r.events[ret_at].body else { unreachable!() };
    let key = (ret.tid, ret.range);
    let start_at = r.events[..ret_at]
        .iter()
        .rposition(|e| matches!(&e.body, EventBody::RangeStart(c) if (c.tid, c.range) == key))
        .expect("the failed start's entry");
    let inside: Vec<String> = r.events[start_at + 1..ret_at]
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SubscriberStart(s) if s.tid == key.0 => {
                Some(format!("start {} {:?}", s.callback.function(), s.ret))
            }
            EventBody::SubscriberEnd(s) if s.tid == key.0 => Some(format!("end {}", s.callback.function())),
            _ => None,
        })
        .collect();
    let all = ["start mmnt_start_ok Some(0)", "start mmnt_start_eagain_nonblock Some(-11)", "end mmnt_end"];
    let want = if compensating { &all[..] } else { &all[..2] };
    let mut problems = Vec::new();
    if inside != want {
        problems.push(format!("{what}: inside the failed start saw {inside:?}, want {want:?}"));
    }
    if let EventBody::RangeStart(c) = &r.events[start_at].body
        && c.blockable
    {
        problems.push(format!("{what}: the OOM reaper's start must be non-blockable"));
    }
    let outer_end = r.events[ret_at..]
        .iter()
        .any(|e| matches!(&e.body, EventBody::RangeEnd(x) if (x.call.tid, x.call.range) == key));
    if outer_end {
        problems.push(format!("{what}: an outer end followed the failed start"));
    }
    problems
}

/// The interval-tree leak: reported once, for the victim's mm, with as many leaked ranges as
/// the module's list subscriber failed non-blockable starts (each one leaks one active range),
/// the kernel's own active count agreeing, and the interval subscriber named only when it
/// overlapped the reaped ranges.
fn check_leak(r: &Recording, report: &mmnotif_trace::checker::Report, scenario: &str, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let failing_list = |v: &Value| v["kind"] == 1 && v["behaviour"] == 1;
    let fails = sum(&r.counters, failing_list, &["fails_nonblock"]);
    let reported = report.violation_counts.iter().find(|(r, _)| r.as_str() == "itree-leak").map_or(0, |(_, n)| *n);
    if reported != 1 {
        problems.push(format!("{what}: itree-leak reported {reported} times, want once (one leaked mm):\n{report}"));
    }
    let [leak] = report.itree_leaks.as_slice() else {
        return vec![format!("{what}: want one leaked mm in the report, got {:?}", report.itree_leaks)];
    };
    if leak.leaked_ranges != fails || fails == 0 {
        problems.push(format!(
            "{what}: {} leaked range(s) reported, the module counted {fails} failed starts",
            leak.leaked_ranges
        ));
    }
    if leak.kernel_active_ranges != Some(fails) {
        problems.push(format!(
            "{what}: the kernel's active_invalidate_ranges read {:?} at the end, want {fails}",
            leak.kernel_active_ranges
        ));
    }
    if !leak.failed_callbacks.iter().any(|c| callback_is(c.as_str(), "mmnt_start_eagain_nonblock")) {
        problems.push(format!("{what}: the failing list callback is not named: {:?}", leak.failed_callbacks));
    }
    let overlapping = scenario != "oom-itree-list-disjoint";
    if leak.overlapped() != overlapping
        || (overlapping && !leak.intervals.iter().any(|c| callback_is(c.as_str(), "mmnt_invalidate_ok")))
    {
        problems
            .push(format!("{what}: interval subscribers named {:?}, want them only when overlapping", leak.intervals));
    }
    if leak.comm.as_ref().is_none_or(|c| c.as_str() != "mmnotif-oom") {
        problems.push(format!("{what}: the leaked mm's process is named {:?}", leak.comm));
    }
    problems
}

/// Interval scenarios: `ops->invalidate` gets odd (invalidating) sequence numbers, and
/// `mn_itree_inv_end` leaves the tree quiescent (no active range, even sequence).
fn check_interval_tree(r: &Recording, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let seqs: Vec<u64> = r
        .events
        .iter()
        .filter_map(|e| if let EventBody::IntervalInvalidate(i) = &e.body { Some(i.cur_seq) } else { None })
        .collect();
    if seqs.is_empty() || seqs.iter().any(|s| s % 2 == 0) {
        problems.push(format!("{what}: interval invalidates with cur_seq {seqs:?}, want some, all odd"));
    }
    let last =
        r.events.iter().rev().find_map(|e| if let EventBody::ItreeEnd(i) = &e.body { Some(i.clone()) } else { None });
    match last {
        Some(i) if i.active == 0 && i.seq % 2 == 0 => {}
        other => problems.push(format!("{what}: last mn_itree_inv_end {other:?}, want active 0 and an even seq")),
    }
    problems
}

/// The two-pass scenarios: both callback hooks attached, at least `min_starts` first passes,
/// each with an odd `cur_seq` and a finish pointer, and each finish naming a pointer a start
/// left, with none left over.
fn check_twopass(r: &Recording, what: &str, min_starts: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for hook in ["interval_start", "interval_finish"] {
        let got = r.header.attach.get(hook).map(String::as_str);
        let want = if hook == "interval_start" { "kretprobe" } else { "kprobe" };
        if got != Some(want) {
            problems.push(format!("{what}: hook {hook} attached as {got:?}, want {want}"));
        }
    }
    let mut queued: Vec<Addr> = Vec::new();
    let mut starts = 0;
    for e in &r.events {
        match &e.body {
            EventBody::IntervalStart(i) => {
                starts += 1;
                if i.cur_seq % 2 == 0 || !i.owes_finish() {
                    problems.push(format!("{what}: first pass {i:?}: want an odd cur_seq, true and a finish"));
                }
                queued.push(i.finish);
            }
            EventBody::IntervalFinish(f) => match queued.iter().position(|q| *q == f.finish) {
                Some(pos) => {
                    queued.swap_remove(pos);
                }
                None => problems.push(format!("{what}: finish {f:?} for a pointer no start left")),
            },
            _ => {}
        }
    }
    if starts < min_starts || !queued.is_empty() {
        problems.push(format!(
            "{what}: {starts} first passes (want at least {min_starts}), finishes never seen for {queued:?}"
        ));
    }
    problems
}

/// oom-twopass: the 7.x OOM reaper's non-blockable CLEAR reached the first pass, and its finish
/// ran inside that same `__start` (the checker, run on every scenario, must find nothing).
fn check_reaper_clear_twopass(r: &Recording, what: &str) -> Vec<String> {
    let mut reaper_ranges: HashMap<(u32, Addr), bool> = HashMap::new();
    let mut open_finish: HashMap<u32, Vec<Addr>> = HashMap::new();
    let mut paired_in_reaper = 0;
    for e in &r.events {
        match &e.body {
            EventBody::RangeStart(c) => {
                reaper_ranges.insert((c.tid, c.range), !c.blockable && c.event == MmuEvent::Clear);
            }
            EventBody::IntervalStart(i) if reaper_ranges.get(&(i.tid, i.range)) == Some(&true) && i.owes_finish() => {
                open_finish.entry(i.tid).or_default().push(i.finish);
            }
            EventBody::IntervalFinish(f) => {
                if let Some(q) = open_finish.get_mut(&f.tid)
                    && let Some(pos) = q.iter().position(|p| *p == f.finish)
                {
                    q.swap_remove(pos);
                    paired_in_reaper += 1;
                }
            }
            _ => {}
        }
    }
    if paired_in_reaper == 0 {
        return vec![format!("{what}: no first pass and finish inside a non-blockable CLEAR (the 7.x reaper)")];
    }
    Vec::new()
}

/// A recording with counted misses: every rule wanted is found, and whatever else was found
/// came after the loss (it carries the loss note), so it may be the misses' doing.
fn check_rules_after_misses(r: &Recording, what: &str, want: Vec<&str>) -> Vec<String> {
    let report = replay_file(&r.trace).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for rule in &want {
        if !report.violation_counts.keys().any(|r| r.as_str() == *rule) {
            problems.push(format!("{what}: {rule} not found (counted misses)\n{report}"));
        }
    }
    for v in &report.violations {
        let rule = v.rule.as_str();
        if rule != "events-lost" && !want.contains(&rule) && !v.may_be_loss_artefact() {
            problems.push(format!("{what}: {rule} found before any loss\n{report}"));
        }
    }
    problems
}

/// `probe` in the guest: both methods available, each hook on the method `auto` prefers.
fn check_probe(dir: &Path, kernel: &str) -> Vec<String> {
    let path = dir.join("probe.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut problems = Vec::new();
    for what in ["fentry/fexit", "kprobe/kretprobe"] {
        let check = v["checks"].as_array().and_then(|c| c.iter().find(|c| c["what"] == what).cloned());
        if check.as_ref().map(|c| c["ok"].clone()) != Some(Value::Bool(true)) {
            problems.push(format!("{kernel}: probe says {what} is not available: {check:?}"));
        }
    }
    let hooks = v["attach"]["hooks"].as_array().cloned().unwrap_or_default();
    for (hook, want) in [
        ("range_start", "fentry"),
        ("range_start_ret", "fexit"),
        ("range_end", "fentry"),
        ("itree_end", "fexit"),
        ("subscriber_start", "kretprobe"),
    ] {
        let got = hooks.iter().find(|h| h["hook"] == hook).map(|h| h["method"].clone());
        if got != Some(Value::from(want)) {
            problems.push(format!("{kernel}: probe names {got:?} for {hook}, want {want}"));
        }
    }
    if v["pairing"] != "start/end pairing: available" {
        problems.push(format!("{kernel}: {}", v["pairing"]));
    }
    problems
}

#[test]
#[ignore = "needs the QEMU guests' recordings: run by `cargo xtask test`"]
fn guest_recordings_match_the_module_and_the_kernel() {
    let spec = std::env::var("MMNOTIF_GUEST_FILES").expect("MMNOTIF_GUEST_FILES=<kernel>=<dir>,...");
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in spec.split(',').filter(|s| !s.is_empty()) {
        let (kernel, dir) = entry.split_once('=').expect("<kernel>=<dir>");
        problems.extend(check_probe(Path::new(dir), kernel));
        let release = load(Path::new(dir), "fentry", "list-ops").header.kernel;
        let mrelease = KernelVersion::parse(&release).is_some_and(|v| v.has(Fact::ProcessMrelease));
        let compensating = !kernel_lacks(Path::new(dir), "c2655835fd8c");
        let twopass = KernelVersion::parse(&release).is_some_and(|v| v.has(Fact::TwoPassInterval));
        let scenarios: Vec<&str> = if compensating {
            SCENARIOS
                .into_iter()
                .chain(mrelease.then_some(MRELEASE_SCENARIO))
                .chain(TWOPASS_SCENARIOS.iter().filter(|_| twopass).map(|(name, _)| *name))
                .collect()
        } else {
            WITHOUT_COMPENSATING_ENDS.to_vec()
        };
        for (method, hooks) in METHODS {
            for &scenario in &scenarios {
                let what = format!("{kernel} {method} {scenario}");
                let r = load(Path::new(dir), method, scenario);
                for (hook, want) in hooks {
                    if r.header.attach.get(hook).map(String::as_str) != Some(want) {
                        problems.push(format!(
                            "{what}: hook {hook} attached as {:?}, want {want}",
                            r.header.attach.get(hook)
                        ));
                    }
                }
                // Nothing lost in the ring; lost events only for the probe hits the kernel skipped
                // and counted, and then every check below that needs the whole trace is waived
                // for this recording (it says so), the counts compared within the misses.
                let missed = counted_misses(&r);
                let lost_events: u64 =
                    r.events.iter().map(|e| if let EventBody::Lost(l) = &e.body { l.count } else { 0 }).sum();
                if !r.stderr.contains(", lost 0") || lost_events != missed {
                    problems.push(format!("{what}: events were lost: {}", r.stderr));
                }
                if missed > 0 {
                    println!(
                        "{what}: the kernel skipped {missed} of the tracer's probe hits (counted): counts compared within them, sequence checks waived"
                    );
                }
                if !r.events.iter().any(|e| matches!(e.body, EventBody::RangeStart(_))) {
                    problems.push(format!("{what}: no range_start recorded"));
                }
                // tracer.sh records fentry with --stacks and kprobe without (the default).
                let with_stack = r
                    .events
                    .iter()
                    .filter(|e| matches!(e.body, EventBody::RangeStart(_) | EventBody::RangeEnd(_)))
                    .filter(|e| e.stack.as_ref().is_some_and(|s| !s.is_empty()))
                    .count();
                match (method, with_stack) {
                    ("fentry", 0) => problems.push(format!("{what}: --stacks, but no range start or end has a stack")),
                    ("kprobe", n) if n > 0 => {
                        problems.push(format!("{what}: {n} range starts/ends with a stack, without --stacks"))
                    }
                    _ => {}
                }
                problems.extend(check_counts(&r, &what, missed));
                if missed > 0 {
                    problems.extend(check_rules_after_misses(&r, &what, expected_rules(scenario, compensating)));
                    checked += 1;
                    continue;
                }
                if let Some((_, min_starts)) = TWOPASS_SCENARIOS.iter().find(|(name, _)| *name == scenario) {
                    problems.extend(check_twopass(&r, &what, *min_starts));
                }
                match scenario {
                    "oom-twopass" => problems.extend(check_reaper_clear_twopass(&r, &what)),
                    // No `ops->invalidate` runs there: check_twopass covers its sequences.
                    "interval-twopass" => {}
                    s if s.contains("interval") => problems.extend(check_interval_tree(&r, &what)),
                    _ => {}
                }
                // Registered before the tracer started: only the startup inventory's tree walk
                // can have found it (the counts above show the probe saw every invalidate).
                if scenario == "interval-preregistered"
                    && !r.stderr.contains("probing mmnt_invalidate_ok [mmnotif_test] (interval_invalidate)")
                {
                    problems
                        .push(format!("{what}: the pre-registered interval subscriber was not probed: {}", r.stderr));
                }
                if scenario == "oom-rfc2019" {
                    problems.extend(check_rfc2019_sequence(&r, &what, compensating));
                }
                let report = replay_file(&r.trace).unwrap_or_else(|e| panic!("{e}"));
                let counts = &report.violation_counts;
                let got: Vec<&str> = counts.keys().map(|r| r.as_str()).collect();
                let mut want = expected_rules(scenario, compensating);
                let names_fix = |v: &mmnotif_trace::checker::Violation| {
                    v.rule.as_str() == "notifier-unpaired-start"
                        && v.hint.as_deref().is_some_and(|h| h.contains("c2655835fd8c"))
                };
                if !compensating && scenario == "oom-rfc2019" && !report.violations.iter().any(names_fix) {
                    problems.push(format!("{what}: no hint names the missing fix c2655835fd8c:\n{report}"));
                }
                want.sort();
                let mut got_sorted = got.clone();
                got_sorted.sort();
                if got_sorted != want {
                    problems.push(format!("{what}: checker found {got:?}, want {want:?}\n{report}"));
                }
                let failed_starts =
                    r.events.iter().filter(|e| matches!(&e.body, EventBody::RangeStartRet(x) if x.ret != 0)).count()
                        as u64;
                if LEAKING.contains(&scenario) {
                    problems.extend(check_leak(&r, &report, scenario, &what));
                } else if !want.is_empty() && counts.values().any(|&n| n != failed_starts) {
                    problems
                        .push(format!("{what}: want each rule once per failed start ({failed_starts}): {counts:?}"));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no recordings named in MMNOTIF_GUEST_FILES");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
