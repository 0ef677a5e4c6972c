//! Replaying a recording: how fast a JSON-lines trace is decoded and checked, and whether
//! memory stays flat over a long one.
//!
//! Writes (once; it is deterministic) a realistic 10M-event full-mode trace with kernel stacks
//! on range starts and ends, as the tracer records by default, into cargo's benchmark scratch
//! directory, then measures on one thread:
//!   - decode only (the streaming reader, events dropped),
//!   - decode + check (what `replay` and `check --replay` do), with RSS every million events,
//!   - `mmnotif-trace replay FILE` as a child process: wall time and peak RSS,
//!   - the checker alone, on an already-decoded 1M-event block fed repeatedly,
//!   - encoding alone (the other direction, what `stream --format jsonl` and `record` do per
//!     event), on the same kind of block.
//!
//! Peak RSS (VmHWM) is reset before each in-process measurement (`/proc/self/clear_refs`).
//! Run with `cargo bench -p probe-user --bench replay [-- [MILLIONS] [--no-stacks] [--trace FILE]]`;
//! `MMNOTIF_TRACE_BIN` names another binary to time in the `replay` step.
use std::{
    fs::File,
    hint::black_box,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use mmnotif_trace::{
    checker::{Checker, open_trace},
    trace::{event_to_line, write_event_line},
};

#[path = "support/generator.rs"]
mod generator;

use generator::{Generator, header};

/// The binary whose `replay` is timed: this build's, or `$MMNOTIF_TRACE_BIN` (to compare builds).
fn binary() -> PathBuf {
    std::env::var_os("MMNOTIF_TRACE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mmnotif-trace")), PathBuf::from)
}

fn proc_status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0);
    kib as f64 / 1024.0
}

/// User + system CPU seconds of this process: on a shared machine a wall-clock rate also
/// measures the other tenants, so rates are given per CPU-second too.
fn cpu_seconds() -> f64 {
    cpu_of(&rusage(libc::RUSAGE_SELF))
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for the call.
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

/// User + system seconds.
fn cpu_of(usage: &libc::rusage) -> f64 {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resets VmHWM to the current RSS, so the next peak is the next measurement's own.
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        println!("  (cannot reset the peak RSS: {e}; VmHWM below includes earlier phases)");
    }
}

/// Writes the generated trace to `path` unless a complete one is there (written under a
/// temporary name and renamed when done).
fn ensure_trace(path: &Path, events: usize, stacks: bool) -> std::io::Result<()> {
    if path.exists() {
        println!("trace: {} (reused)", path.display());
        return Ok(());
    }
    let t0 = Instant::now();
    let partial = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    writeln!(out, "{}", serde_json::to_string(&header()).map_err(std::io::Error::other)?)?;
    let mut generator = if stacks { Generator::new().with_stacks() } else { Generator::new() };
    let mut written = 0;
    while written < events {
        // Blocks of whole invalidations, so the trace holds no broken pairs.
        let block = generator.block(100_000.min(events - written));
        for e in &block {
            out.write_all(event_to_line(e).as_bytes())?;
            out.write_all(b"\n")?;
        }
        written += block.len();
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, path)?;
    println!("trace: {} written in {:.1} s", path.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

fn decode_only(path: &Path) -> (u64, f64, f64) {
    reset_peak_rss();
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    let reader = open_trace(path).expect("trace header");
    let mut count = 0u64;
    for event in reader {
        black_box(event.expect("generated trace is valid"));
        count += 1;
    }
    (count, t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

fn decode_and_check(path: &Path) -> (u64, f64, f64, Vec<f64>) {
    reset_peak_rss();
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    let reader = open_trace(path).expect("trace header");
    let mut checker = Checker::new(reader.header());
    let mut count = 0u64;
    let mut rss = Vec::new();
    for event in reader {
        checker.push(&event.expect("generated trace is valid"));
        count += 1;
        if count.is_multiple_of(1_000_000) {
            rss.push(proc_status_mib("VmRSS:"));
        }
    }
    let report = black_box(checker.finish());
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    println!("  {} violations, {} ranges open at the end", report.violations.len(), report.stats.totals.open_now);
    (count, secs, cpu, rss)
}

/// CPU seconds and peak RSS (MiB) of the waited-for children so far.
fn children_usage() -> (f64, f64) {
    let usage = rusage(libc::RUSAGE_CHILDREN);
    (cpu_of(&usage), usage.ru_maxrss as f64 / 1024.0)
}

/// `mmnotif-trace replay FILE`: wall seconds, CPU seconds and the child's peak RSS in MiB.
/// The peak is at least this process's RSS when it spawned the child (the kernel counts the
/// shared address space before `exec`), which is why the in-process phases keep it small.
fn replay_cli(path: &Path) -> (f64, f64, f64) {
    let (cpu0, _) = children_usage();
    let t0 = Instant::now();
    let status = Command::new(binary())
        .args(["replay", "--format", "json"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run mmnotif-trace replay");
    let secs = t0.elapsed().as_secs_f64();
    // 0: pass, 4: the checker found violations.
    assert!(matches!(status.code(), Some(0 | 4)), "replay exited with {status}");
    let (cpu1, peak) = children_usage();
    (secs, cpu1 - cpu0, peak)
}

fn checker_only(events: usize, stacks: bool) -> (usize, f64, f64) {
    // A 1M-event block, fed repeatedly (each pass leaves no range open, so passes chain).
    let mut generator = if stacks { Generator::new().with_stacks() } else { Generator::new() };
    let block = generator.block(1_000_000);
    let passes = events.div_ceil(block.len());
    let mut checker = Checker::new(&header());
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    for _ in 0..passes {
        for e in &block {
            black_box(checker.push(black_box(e)));
        }
    }
    black_box(checker.finish());
    (passes * block.len(), t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

/// Writes a 1M-event block as JSON lines into a buffer (emptied as a writer's would be),
/// repeatedly: events, wall seconds, CPU seconds and bytes written.
fn encode_only(events: usize, stacks: bool) -> (usize, f64, f64, usize) {
    let mut generator = if stacks { Generator::new().with_stacks() } else { Generator::new() };
    let block = generator.block(1_000_000);
    let passes = events.div_ceil(block.len());
    let mut out: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut bytes = 0;
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    for _ in 0..passes {
        for e in &block {
            write_event_line(&mut out, black_box(e)).expect("writing to memory");
            if out.len() >= 1 << 20 {
                bytes += out.len();
                black_box(&out);
                out.clear();
            }
        }
    }
    bytes += out.len();
    (passes * block.len(), t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0, bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let millions: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let stacks = !args.iter().any(|a| a == "--no-stacks");
    let given = args.iter().position(|a| a == "--trace").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let path = given.unwrap_or_else(|| {
        let name = format!("replay-{millions}M-{}.jsonl", if stacks { "stacks" } else { "nostacks" });
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
    });
    if let Err(e) = ensure_trace(&path, millions * 1_000_000, stacks) {
        panic!("writing {}: {e}", path.display());
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // Reading the file once puts it in the page cache, so the passes below measure decoding,
    // not the disk.
    let (count, _, _) = decode_only(&path);
    println!(
        "replay benchmark: {count} events, {:.2} GB of JSON ({:.0} bytes/event), stacks {}, one thread",
        bytes as f64 / 1e9,
        bytes as f64 / count as f64,
        if stacks { "on" } else { "off" }
    );
    let rates = |count: f64, secs: f64, cpu: f64| {
        format!("{:>9.0} events/s  ({secs:.2} s wall; {:>9.0} per CPU-second)", count / secs, count / cpu)
    };

    let (count, secs, cpu) = decode_only(&path);
    println!(
        "decode only:    {}, {:.0} MB/s; RSS after {:.1} MiB, peak {:.1} MiB",
        rates(count as f64, secs, cpu),
        bytes as f64 / secs / 1e6,
        proc_status_mib("VmRSS:"),
        proc_status_mib("VmHWM:")
    );

    let (count, secs, cpu, rss) = decode_and_check(&path);
    println!(
        "decode + check: {}; RSS after {:.1} MiB, peak {:.1} MiB",
        rates(count as f64, secs, cpu),
        proc_status_mib("VmRSS:"),
        proc_status_mib("VmHWM:")
    );
    let samples: Vec<String> = rss.iter().map(|r| format!("{r:.1}")).collect();
    println!("  RSS (MiB) after each million events: {}", samples.join(" "));

    let (secs, cpu, peak) = replay_cli(&path);
    println!("replay CLI:     {}; peak RSS {peak:.1} MiB (`replay --format json`)", rates(count as f64, secs, cpu));

    let (n, secs, cpu) = checker_only(millions * 1_000_000, stacks);
    println!("checker only:   {}", rates(n as f64, secs, cpu));

    let (n, secs, cpu, written) = encode_only(millions * 1_000_000, stacks);
    println!("encode only:    {}, {:.0} MB/s", rates(n as f64, secs, cpu), written as f64 / secs / 1e6);
}
