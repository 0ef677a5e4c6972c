//! Integration tests on this host's real kernel: real BPF programs, a real KVM VM as the
//! subscriber. They need root (CI runs them as root) and are skipped, saying so, otherwise.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

use common::{BIN, stderr, stdout};
fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmnotif-trace")
}

/// Runs the tracer with `args` (it must stop by itself, e.g. `--duration`), and `traffic` as a
/// separate process once the tracer says it is attached; returns the tracer's output.
fn trace_during(args: &[&str], traffic: &[&str]) -> Output {
    use std::io::{BufRead, BufReader, Read};
    let mut tracer =
        Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the tracer");
    let mut err = BufReader::new(tracer.stderr.take().expect("stderr"));
    let mut banner = String::new();
    err.read_line(&mut banner).expect("tracer stderr");
    assert!(banner.contains("kernel"), "the tracer did not start: {banner}");
    let traffic = Command::new(BIN).args(traffic).output().expect("run the traffic");
    assert!(traffic.status.success(), "traffic failed: {}", stderr(&traffic));
    // The tracer's --duration is only a bound: it stops once the traffic's last records had
    // time to arrive, however long a loaded machine took to run it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signalling our own child, not yet waited for.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    let mut stdout = Vec::new();
    tracer.stdout.take().expect("stdout").read_to_end(&mut stdout).expect("tracer stdout");
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("tracer stderr");
    let status = tracer.wait().expect("tracer exit");
    Output { status, stdout, stderr: (banner + &rest).into_bytes() }
}

#[test]
fn selftest_sees_exactly_the_invalidations_each_step_causes() {
    if !common::root() {
        return;
    }
    let o = run(&["selftest", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    assert_eq!(v["lost"], 0, "{v:#}");
    let steps = v["steps"].as_array().expect("steps");
    let by_name =
        |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no step {name}: {v:#}"));
    // What this kernel must produce for each step (machine.md; the exact ranges are compared by
    // the selftest itself and reported as missing/unexpected).
    for (name, expected) in [
        ("madvise_dontneed", 1),
        ("madvise_free", 1),
        ("mprotect", 1),
        ("mremap_dontunmap", 2),
        ("munmap", 1),
        ("vm_close", 0),
    ] {
        let s = by_name(name);
        assert_eq!(s["expected"].as_array().map(Vec::len), Some(expected), "{name}: {s:#}");
        assert_eq!(s["observed"].as_array().map(Vec::len), Some(expected), "{name}: {s:#}");
        assert_eq!(s["observed"], s["expected"], "{name}: ranges differ: {s:#}");
    }
    let fork = by_name("fork");
    let fork_expected = fork["expected"].as_array().map(Vec::len).unwrap_or(0);
    assert!(fork_expected >= 5, "fork must write-protect at least stack, heap and data: {fork:#}");
    assert_eq!(fork["missing"].as_array().map(Vec::len), Some(0), "{fork:#}");
    assert_eq!(fork["unexpected"].as_array().map(Vec::len), Some(0), "{fork:#}");
    assert_eq!(v["outside_steps"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert_eq!(v["pass"], true, "{v:#}");
    assert!(o.status.success());
}

/// tp_btf works on this host, so the raw-tracepoint fallback is forced: the selftest's exact
/// per-step comparison must hold with it too.
#[test]
fn raw_tracepoint_fallback_sees_the_same_invalidations() {
    if !common::root() {
        return;
    }
    let o = run(&["selftest", "--tracepoint-method", "raw"]);
    let text = stdout(&o);
    assert!(text.contains("kvm_unmap_hva_range=raw_tp"), "{text}\n{}", stderr(&o));
    assert!(!text.contains("tp_btf"), "only raw tracepoints may be attached: {text}");
    assert!(o.status.success(), "selftest over raw tracepoints failed:\n{text}\n{}", stderr(&o));

    let o = trace_during(
        &["stream", "--format", "jsonl", "--tracepoint-method", "raw", "--duration", "60"],
        &["workload", "--steps", "madvise_dontneed"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let header: Value = serde_json::from_str(out.lines().next().expect("header")).expect("header json");
    for hook in ["kvm_unmap_hva_range", "error_report_end", "sched_process_exit"] {
        assert_eq!(header["attach"][hook], "raw_tp", "{header:#}");
    }
    let kvm_starts = out.lines().skip(1).filter(|l| l.contains("\"kvm_mmu_notifier_invalidate_range_start\"")).count();
    assert!(kvm_starts > 0, "the workload's invalidations must reach the stream: {out}");
}

#[test]
fn inventory_shows_the_workload_vm_as_an_idle_kvm_subscriber() {
    if !common::root() {
        return;
    }
    let mut workload = Command::new(BIN)
        .args(["workload", "--steps", "madvise_dontneed", "--hold-ms", "20000", "--format", "jsonl"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start workload");
    // The first report line means the VM exists.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(workload.stdout.as_mut().expect("stdout")), &mut line)
        .expect("read");
    let pid = workload.id();
    let o = run(&["inventory", "--format", "jsonl"]);
    let _ = workload.kill();
    let _ = workload.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let mms: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let mm = mms.iter().find(|m| m["pid"] == pid).unwrap_or_else(|| panic!("workload pid {pid} missing from {mms:#?}"));
    let subs = mm["subscribers"].as_array().expect("subscribers");
    assert_eq!(subs.len(), 1, "one VM, one subscriber: {mm:#}");
    let callbacks: Vec<(String, String)> = serde_json::from_value(subs[0]["callbacks"].clone()).expect("callbacks");
    for (slot, sym) in [
        ("invalidate_range_start", "kvm_mmu_notifier_invalidate_range_start"),
        ("invalidate_range_end", "kvm_mmu_notifier_invalidate_range_end"),
        ("release", "kvm_mmu_notifier_release"),
    ] {
        assert!(callbacks.contains(&(slot.to_string(), sym.to_string())), "{slot} -> {sym} missing: {callbacks:?}");
    }
    assert_eq!(subs[0]["kvm"]["mn_active_invalidate_count"], 0, "{mm:#}");
    assert_eq!(subs[0]["kvm"]["mmu_invalidate_in_progress"], 0, "{mm:#}");
    assert_eq!(mm["invalidate_seq"].as_u64().map(|s| s % 2), Some(0), "idle interval tree has an even seq: {mm:#}");
}

#[test]
fn a_tiny_ring_reports_exactly_the_events_it_lost() {
    if !common::root() {
        return;
    }
    // The hammer invalidates a page every few microseconds: far more than 32 records per drain.
    let o = trace_during(
        &["stream", "--format", "jsonl", "--ring-size", "4096", "--wakeup-bytes", "1000000000", "--duration", "60"],
        &["workload", "--hammer", "50000"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header")).expect("header json");
    assert_eq!(header["mmnotif_trace"], 1);
    assert_eq!(header["attach"]["kvm_unmap_hva_range"], "tp_btf");
    let mut received = 0u64;
    let mut lost_records = 0u64;
    for line in lines {
        let v: Value = serde_json::from_str(line).expect("event json");
        if v["type"] == "lost" {
            lost_records += v["count"].as_u64().expect("count");
        } else {
            received += 1;
        }
    }
    // "kernel emitted A events, received R, lost L[, …]"
    let err = stderr(&o);
    let summary = err.lines().find(|l| l.contains("kernel emitted")).unwrap_or_else(|| panic!("no summary in {err}"));
    let nums: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    let (emitted, got, lost) = (nums[0], nums[1], nums[2]);
    assert!(lost > 0, "a 4 KiB ring with no wakeups must overflow: {summary}");
    assert_eq!(lost, emitted - got, "{summary}");
    assert_eq!(lost_records, lost, "every lost event is reported in the stream: {summary}");
    assert_eq!(received, got, "every received event is printed (no filter): {summary}");
}

#[test]
fn probe_says_plainly_that_pairing_is_unavailable_here() {
    if !common::root() {
        return;
    }
    let o = run(&["probe", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let pairing = v["pairing"].as_str().expect("pairing");
    let hooks = v["attach"]["hooks"].as_array().expect("hooks");
    let method = |h: &str| hooks.iter().find(|x| x["hook"] == h).map(|x| x["method"].clone()).unwrap_or(Value::Null);
    if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        return; // a kernel with kprobes: covered by the guest suite
    }
    assert!(pairing.contains("UNAVAILABLE"), "{pairing}");
    assert_eq!(method("range_start"), Value::Null);
    assert_eq!(method("kvm_unmap_hva_range"), "tp_btf");
    let text = stdout(&run(&["probe"]));
    assert!(text.contains("kprobes are compiled out"), "{text}");
    assert!(text.contains("refuses BPF trampolines"), "{text}");
}

/// Runs `args` with the given setup in a private mount namespace, e.g. hiding /dev/kvm.
fn in_namespace(setup: &str, args: &str) -> Output {
    Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("{setup} && exec {BIN} {args}")])
        .output()
        .expect("unshare")
}

#[test]
fn missing_environment_gets_one_clear_line_and_its_own_exit_status() {
    if !common::root() {
        return;
    }
    let no_kvm = in_namespace("mount -t tmpfs none /dev", "workload");
    assert_eq!(no_kvm.status.code(), Some(12), "{}", stderr(&no_kvm));
    assert_eq!(stderr(&no_kvm).trim().lines().count(), 1, "{}", stderr(&no_kvm));
    assert!(stderr(&no_kvm).contains("/dev/kvm is not available"), "{}", stderr(&no_kvm));

    let no_btf = in_namespace("mount -t tmpfs none /sys/kernel/btf", "probe");
    assert_eq!(no_btf.status.code(), Some(11), "{}", stderr(&no_btf));
    assert!(stderr(&no_btf).contains("has no BTF"), "{}", stderr(&no_btf));
    assert_eq!(stderr(&no_btf).trim().lines().count(), 1);

    let not_root = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "probe"])
        .output()
        .expect("setpriv");
    assert_eq!(not_root.status.code(), Some(10), "{}", stderr(&not_root));
    assert!(stderr(&not_root).contains("must run as root"), "{}", stderr(&not_root));
    assert_eq!(stderr(&not_root).trim().lines().count(), 1);
}

/// Stopped while the kernel is still emitting, the closing figures must add up: every record
/// the kernel side counted was either received or counted lost. (Reading the counters after the
/// last drain, with the programs still attached, left records that were neither.)
#[test]
fn stopping_under_traffic_accounts_for_every_emitted_event() {
    if !common::root() {
        return;
    }
    /// Kills the background traffic however the test ends.
    struct Traffic(std::process::Child);
    impl Drop for Traffic {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _traffic = Traffic(
        Command::new(BIN).args(["workload", "--hammer", "100000000"]).stdout(Stdio::null()).spawn().expect("traffic"),
    );
    for _ in 0..3 {
        let o =
            trace_during(&["stream", "--format", "violations", "--duration", "60"], &["workload", "--hammer", "1000"]);
        let err = stderr(&o);
        let summary =
            err.lines().find(|l| l.contains("kernel emitted")).unwrap_or_else(|| panic!("no summary in {err}"));
        let nums: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
        let (emitted, received, lost) = (nums[0], nums[1], nums[2]);
        assert!(emitted > 1_000, "the traffic ran while tracing: {summary}");
        assert_eq!(emitted, received + lost, "{summary}");
    }
}

/// `stream --count-only` runs the probes and emits nothing: it prints no event, counts the
/// workload's invalidations and says that nothing was checked (never a verdict).
#[test]
fn count_only_counts_and_emits_nothing() {
    if !common::root() {
        return;
    }
    let o = trace_during(&["stream", "--count-only", "--duration", "60"], &["workload", "--hammer", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "count-only printed events: {}", stdout(&o));
    let err = stderr(&o);
    let count = err
        .lines()
        .find_map(|l| l.strip_prefix("mmnotif-trace: count only: the probes ran for "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(count >= 1000, "the 1000 zaps were counted: {err}");
    assert!(!err.contains("verdict"), "count-only checks nothing: {err}");
}
