//! `cargo xtask bench --soak MINUTES`: the tracer as the systemd unit runs it (`stream --format
//! violations --metrics`), for a long while under the workload's worst case, sampled at a
//! fixed interval: resident memory, CPU, events received and lost, open ranges and every
//! table the checker holds (`mmnotif_checker_state_entries`). The load is `workload --hammer`
//! run again and again, so processes, mms and KVM VMs come and go as on a real host; with
//! `--soak-pause-ms 0` it runs back to back, the highest rate the workload reaches; with
//! `--soak-fast-minutes N` the first N minutes run back to back and the rest at the paced rate,
//! so one tracer sees both a long stretch at full load and hours of ordinary churn.
//! The samples go to stdout and to a CSV under `target/bench/`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Tracer, scrape, scrape_cost::cpu_ns, smaps::RssByKind};

pub(super) struct SoakPlan {
    pub minutes: u64,
    /// Minutes at the highest rate (no pause) before the pace applies.
    pub fast_minutes: u64,
    pub pause_ms: u64,
    pub batch: u64,
    /// Iterations per run once paced: small bursts, which a ring buffer absorbs whole.
    pub paced_batch: u64,
    pub sample_secs: u64,
}

/// One sample of the running tracer.
struct Sample {
    secs: u64,
    rss_kib: u64,
    hwm_kib: u64,
    /// Resident KiB by kind of mapping, to tell a leak from the allocator or from code paged in.
    rss_by_kind: RssByKind,
    cpu_percent: f64,
    received: u64,
    lost: u64,
    violations: u64,
    open_ranges: u64,
    /// `mmnotif_checker_state_entries` by table.
    state: BTreeMap<String, u64>,
}

pub(super) fn run(bin: &Path, plan: &SoakPlan) -> Result<u8> {
    let tracer = Tracer::start(bin, "violations", true)?;
    let addr = tracer.metrics.clone().context("the tracer serves no metrics")?;
    let pid = tracer.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let load = spawn_load(bin.to_owned(), plan, stop.clone(), batches.clone());

    let csv_path = csv_path()?;
    let mut csv = String::new();
    let result = sample_loop(pid, &addr, plan, &mut csv, &csv_path);
    stop.store(true, Ordering::Relaxed);
    let load_result = load.join().map_err(|_| anyhow::anyhow!("the load thread panicked"))?;
    let rest = tracer.stop()?;
    let samples = result?;
    load_result?;
    let summary = rest.lines().find(|l| l.contains("kernel emitted")).unwrap_or("(no closing summary)");
    println!("tracer: {summary}");
    println!(
        "load: {} runs of `workload --hammer` ({} iterations for {} min, then {} every {} ms)",
        batches.load(Ordering::Relaxed),
        plan.batch,
        plan.fast_minutes,
        plan.paced_batch,
        plan.pause_ms
    );
    println!("samples: {}", csv_path.display());
    print_summary(&samples);
    Ok(0)
}

/// Runs `workload --hammer BATCH` until `stop`, back to back for the fast minutes and then
/// pausing `pause_ms` between runs.
fn spawn_load(
    bin: PathBuf,
    plan: &SoakPlan,
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<()>> {
    let (fast_batch, paced_batch) = (plan.batch.to_string(), plan.paced_batch.to_string());
    let pause = Duration::from_millis(plan.pause_ms);
    let fast_until = Instant::now() + Duration::from_secs(plan.fast_minutes * 60);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let fast = Instant::now() < fast_until;
            let batch = if fast { &fast_batch } else { &paced_batch };
            let out = Command::new(&bin)
                .args(["workload", "--hammer", batch])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .context("starting workload --hammer")?;
            if !out.status.success() {
                bail!("workload --hammer {batch} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            batches.fetch_add(1, Ordering::Relaxed);
            if !fast {
                std::thread::sleep(pause);
            }
        }
        Ok(())
    })
}

fn csv_path() -> Result<PathBuf> {
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    Ok(dir.join(format!("soak-{secs}.csv")))
}

fn sample_loop(pid: u32, addr: &str, plan: &SoakPlan, csv: &mut String, csv_path: &Path) -> Result<Vec<Sample>> {
    let started = Instant::now();
    let total = Duration::from_secs(plan.minutes * 60);
    let every = Duration::from_secs(plan.sample_secs.max(1));
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_cpu = (cpu_ns(pid)?, Instant::now());
    let mut next = started + every;
    while next <= started + total {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += every;
        let cpu = (cpu_ns(pid)?, Instant::now());
        let cpu_percent =
            cpu.0.saturating_sub(last_cpu.0) as f64 / cpu.1.duration_since(last_cpu.1).as_nanos() as f64 * 100.0;
        last_cpu = cpu;
        let (rss_kib, hwm_kib) = memory_kib(pid)?;
        let rss_by_kind = RssByKind::read(pid)?;
        let (response, _) = scrape(addr)?;
        let metrics = parse_metrics(&String::from_utf8_lossy(&response));
        let sum = |name: &str| metrics.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| *v as u64).sum::<u64>();
        let sample = Sample {
            secs: started.elapsed().as_secs(),
            rss_kib,
            hwm_kib,
            rss_by_kind,
            cpu_percent,
            received: sum("mmnotif_ring_records_received_total"),
            lost: sum("mmnotif_lost_events_total"),
            violations: sum("mmnotif_violations_total"),
            open_ranges: sum("mmnotif_open_ranges"),
            state: metrics
                .iter()
                .filter(|(n, _, _)| n == "mmnotif_checker_state_entries")
                .map(|(_, table, v)| (table.clone(), *v as u64))
                .collect(),
        };
        if samples.is_empty() {
            let tables: Vec<&str> = sample.state.keys().map(String::as_str).collect();
            csv.push_str(&format!(
                "secs,rss_kib,hwm_kib,{},cpu_percent,received,lost,violations,open_ranges,{}\n",
                RssByKind::KINDS.map(|k| format!("rss_{k}_kib")).join(","),
                tables.join(",")
            ));
        }
        let line = sample_line(&sample, samples.last());
        println!("soak {line}");
        let values: Vec<String> = sample.state.values().map(u64::to_string).collect();
        writeln!(
            csv,
            "{},{},{},{},{:.1},{},{},{},{},{}",
            sample.secs,
            sample.rss_kib,
            sample.hwm_kib,
            sample.rss_by_kind.values().map(|v| v.to_string()).join(","),
            sample.cpu_percent,
            sample.received,
            sample.lost,
            sample.violations,
            sample.open_ranges,
            values.join(",")
        )?;
        std::fs::write(csv_path, &*csv).with_context(|| format!("writing {}", csv_path.display()))?;
        samples.push(sample);
    }
    Ok(samples)
}

fn sample_line(s: &Sample, previous: Option<&Sample>) -> String {
    let (prev_secs, prev_received) = previous.map_or((0, 0), |p| (p.secs, p.received));
    let rate = s.received.saturating_sub(prev_received) as f64 / (s.secs.saturating_sub(prev_secs)).max(1) as f64;
    let tables: Vec<String> = s.state.iter().map(|(t, n)| format!("{t}={n}")).collect();
    format!(
        "{:>3}:{:02} rss {} KiB (peak {}; {}), cpu {:.0}%, {:.0} events/s, received {}, lost {}, violations {}, \
         open {}; checker {}",
        s.secs / 60,
        s.secs % 60,
        s.rss_kib,
        s.hwm_kib,
        s.rss_by_kind,
        s.cpu_percent,
        rate,
        s.received,
        s.lost,
        s.violations,
        s.open_ranges,
        tables.join(" ")
    )
}

/// VmRSS and VmHWM of `pid`, in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path} (did the tracer exit?)"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("{path}: no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// `(metric name, value of its first label, value)` of every sample line in an exposition.
fn parse_metrics(text: &str) -> Vec<(String, String, f64)> {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, b)| b);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, label) = match series.split_once('{') {
                Some((name, labels)) => {
                    let first = labels.split_once('"').and_then(|(_, rest)| rest.split_once('"')).map(|(v, _)| v);
                    (name, first.unwrap_or(""))
                }
                None => (series, ""),
            };
            Some((name.to_owned(), label.to_owned(), value))
        })
        .collect()
}

/// The figures a reader wants: memory at the start and the end of the steady state, its
/// growth per hour (least squares over the samples after the first tenth), the rate and the
/// losses.
fn print_summary(samples: &[Sample]) {
    let Some(last) = samples.last() else {
        println!("soak: no sample (shorter than one sampling interval)");
        return;
    };
    let steady = &samples[samples.len() / 10..];
    let slope_kib_per_hour = slope(steady.iter().map(|s| (s.secs as f64, s.rss_kib as f64))) * 3600.0;
    let first = &steady[0];
    let peak_state: Vec<String> = last
        .state
        .keys()
        .map(|t| format!("{t} {}", steady.iter().filter_map(|s| s.state.get(t)).max().copied().unwrap_or(0)))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "soak summary: {} min, {} events received ({:.0}/s), {} lost, {} violations; rss {} KiB at {} min, {} KiB at \
         {} min, growth {:+.0} KiB/hour over the last {} samples; peak rss {} KiB; checker tables at most: {}",
        last.secs / 60,
        last.received,
        last.received as f64 / last.secs.max(1) as f64,
        last.lost,
        last.violations,
        first.rss_kib,
        first.secs / 60,
        last.rss_kib,
        last.secs / 60,
        slope_kib_per_hour,
        steady.len(),
        last.hwm_kib,
        peak_state.join(", ")
    );
    let growth: Vec<String> = RssByKind::KINDS
        .iter()
        .zip(first.rss_by_kind.values().into_iter().zip(last.rss_by_kind.values()))
        .map(|(k, (a, b))| format!("{k} {:+}", b as i64 - a as i64))
        .collect();
    let _ = write!(out, "; rss change by kind from {} min (KiB): {}", first.secs / 60, growth.join(", "));
    println!("{out}");
}

/// Least-squares slope of y over x (0 for fewer than two points).
fn slope(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_name_and_first_label() {
        let text = "HTTP/1.1 200 OK\r\n\r\n# HELP x y\nmmnotif_open_ranges 2\nmmnotif_checker_state_entries{table=\"tasks\"} 3\n";
        let m = parse_metrics(text);
        assert_eq!(
            m,
            [
                ("mmnotif_open_ranges".to_owned(), String::new(), 2.0),
                ("mmnotif_checker_state_entries".to_owned(), "tasks".to_owned(), 3.0)
            ]
        );
    }

    #[test]
    fn slope_of_a_line_and_of_a_flat_series() {
        assert!((slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)].into_iter()) - 2.0).abs() < 1e-9);
        assert_eq!(slope([(0.0, 7.0), (60.0, 7.0)].into_iter()), 0.0);
        assert_eq!(slope([(0.0, 7.0)].into_iter()), 0.0);
    }
}
