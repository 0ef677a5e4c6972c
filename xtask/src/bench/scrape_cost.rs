//! `cargo xtask bench --scrape-cost`: what one Prometheus scrape of `--metrics` costs the
//! tracer. The tracer runs as the systemd unit runs it (`stream --format violations`), a KVM
//! process that has been through the workload's steps is held open so every inventory family
//! has series, and the tracer's CPU time (its threads' run times from schedstat, in ns) is
//! read over an idle window and over back-to-back scrapes: the difference, less the idle rate,
//! divided by the scrapes is the CPU one scrape costs.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Tracer, median, scrape};

/// How long the tracer's idle CPU rate is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

pub(super) fn run(bin: &Path, scrapes: u32) -> Result<u8> {
    let tracer = Tracer::start(bin, "violations", true)?;
    let addr = tracer.metrics.clone().context("the tracer serves no metrics")?;
    let pid = tracer.child.id();
    let workload = HeldWorkload::start(bin)?;
    let populated = wait_for_kvm_series(&addr);
    let measured = populated.and_then(|()| measure(pid, &addr, scrapes.max(1)));
    drop(workload);
    tracer.stop()?;
    let m = measured?;
    println!(
        "scrape cost: {} scrapes of {} bytes ({} series lines); tracer CPU {:.0} µs per scrape \
         (idle tracer {:.1} ms CPU/s); latency median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        m.scrapes,
        m.body_bytes,
        m.series,
        m.cpu_ns_per_scrape / 1e3,
        m.idle_cpu_ns_per_s / 1e6,
        m.latency_ms.median,
        m.latency_ms.p99,
        m.latency_ms.max,
    );
    Ok(0)
}

/// `workload` run once through its steps but the VM's close, then holding the VM open until
/// dropped.
struct HeldWorkload(Child);

impl HeldWorkload {
    fn start(bin: &Path) -> Result<HeldWorkload> {
        let child = Command::new(bin)
            .args(["workload", "--repeat", "1", "--hold-ms", "600000"])
            .args(["--steps", "madvise_dontneed,madvise_free,mprotect,mremap_dontunmap,munmap,fork"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the workload")?;
        Ok(HeldWorkload(child))
    }
}

impl Drop for HeldWorkload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until a scrape has the held KVM process's per-VM gauges (the inventory is refreshed
/// periodically).
fn wait_for_kvm_series(addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (response, _) = scrape(addr)?;
        if String::from_utf8_lossy(&response).contains("\nmmnotif_kvm_mn_active_invalidations{") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("no KVM process appeared in the metrics within 20 s")
}

struct Latency {
    median: f64,
    p99: f64,
    max: f64,
}

struct Measurement {
    scrapes: u32,
    body_bytes: usize,
    series: usize,
    cpu_ns_per_scrape: f64,
    idle_cpu_ns_per_s: f64,
    latency_ms: Latency,
}

fn measure(pid: u32, addr: &str, scrapes: u32) -> Result<Measurement> {
    let idle_start = (cpu_ns(pid)?, Instant::now());
    std::thread::sleep(IDLE_WINDOW);
    let idle_cpu_ns_per_s = cpu_ns(pid)?.saturating_sub(idle_start.0) as f64 / idle_start.1.elapsed().as_secs_f64();

    let (cpu_before, started) = (cpu_ns(pid)?, Instant::now());
    let mut latencies = Vec::with_capacity(scrapes as usize);
    let mut last = Vec::new();
    for _ in 0..scrapes {
        let (response, took) = scrape(addr)?;
        latencies.push(took.as_secs_f64() * 1e3);
        last = response;
    }
    let busy_cpu = cpu_ns(pid)?.saturating_sub(cpu_before) as f64 - idle_cpu_ns_per_s * started.elapsed().as_secs_f64();

    let body_start = last.windows(4).position(|w| w == b"\r\n\r\n").context("a response without a body")? + 4;
    let body = String::from_utf8_lossy(&last[body_start..]);
    let max = latencies.iter().copied().fold(0.0, f64::max);
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    Ok(Measurement {
        scrapes,
        body_bytes: body.len(),
        series: body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count(),
        cpu_ns_per_scrape: busy_cpu.max(0.0) / f64::from(scrapes),
        idle_cpu_ns_per_s,
        latency_ms: Latency { median: median(latencies), p99, max },
    })
}

/// CPU time of every thread of `pid` so far, in ns (first field of each thread's schedstat).
pub(super) fn cpu_ns(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("schedstat");
        // A thread that exited since the listing has no file left: it no longer counts.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let ns = text.split_whitespace().next().and_then(|f| f.parse::<u64>().ok());
        total += ns.with_context(|| format!("{}: {text:?}", path.display()))?;
    }
    Ok(total)
}
