//! `cargo xtask bench`: the workload's worst case (zap + refault one page of a KVM process)
//! untraced, under the count-only tracer (every probe runs, nothing is emitted: the floor) and
//! traced, interleaved, reporting the median slowdowns, events/s and losses; with
//! `--scrape-cost`, what one scrape of the metrics endpoint costs instead (`scrape_cost`); with
//! `--soak MINUTES`, the tracer's memory and state over a long run instead (`soak`); with
//! `--guest`, the full probe path against bpftrace in QEMU guests instead (`guest`).

mod guest;
mod scrape_cost;
mod smaps;
mod soak;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, ChildStderr, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Iterations per measurement.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: u64,
    /// Untraced/traced pairs to run.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Trace with `--metrics` on and scrape the endpoint every second, as Prometheus would.
    #[arg(long)]
    pub metrics: bool,
    /// Instead of the slowdown: measure what one scrape of `--metrics` costs the tracer (CPU
    /// time, response bytes, latency), with a KVM process in the inventory.
    #[arg(long)]
    pub scrape_cost: bool,
    /// Scrapes to measure with `--scrape-cost`.
    #[arg(long, default_value_t = 500)]
    pub scrapes: u32,
    /// Instead of the slowdown: run the tracer as the systemd unit does for this many minutes
    /// under repeated `workload --hammer`, sampling its memory, CPU, losses and checker tables.
    #[arg(long, value_name = "MINUTES")]
    pub soak: Option<u64>,
    /// With `--soak`: pause between workload runs (0: back to back, the highest rate).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub soak_pause_ms: u64,
    /// With `--soak`: run back to back (the highest rate) for this many minutes first, then at
    /// the `--soak-pause-ms` pace.
    #[arg(long, default_value_t = 0, value_name = "MINUTES")]
    pub soak_fast_minutes: u64,
    /// With `--soak`: hammer iterations per workload run (each run is a new process and VM).
    #[arg(long, default_value_t = 50_000)]
    pub soak_batch: u64,
    /// With `--soak`: hammer iterations per paced run (default: `--soak-batch`).
    #[arg(long)]
    pub soak_paced_batch: Option<u64>,
    /// With `--soak`: seconds between samples.
    #[arg(long, default_value_t = 60)]
    pub sample_secs: u64,
    /// Instead of the host: the worst-case loop in QEMU guests, untraced, under the tracer
    /// (fentry and kprobe, with and without stacks) and under bpftrace, `--rounds` interleaved
    /// rounds in one guest run per kernel (docs/vm-testbed.md).
    #[arg(long)]
    pub guest: bool,
    /// With `--guest`: the kernels (rows of xtask/src/vm/kernels.rs), one guest run each.
    #[arg(long = "kernel", value_name = "NAME", requires = "guest", default_values_t = ["6.12".to_owned(), "7.2".to_owned()],
          value_parser = clap::builder::PossibleValuesParser::new(crate::vm::kernels::KERNELS.iter().map(|k| k.name)))]
    pub kernels: Vec<String>,
    /// With `--guest`: loop iterations per measurement (TCG runs the loop about 100 times slower
    /// than the host).
    #[arg(long, default_value_t = 20_000)]
    pub guest_iterations: u64,
}

/// One `GET /metrics` as Prometheus sends it: (the whole response, how long it took).
pub(crate) fn scrape(addr: &str) -> Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let took = started.elapsed();
    if !response.starts_with(b"HTTP/1.1 200") {
        bail!("GET http://{addr}/metrics: {}", String::from_utf8_lossy(&response[..response.len().min(80)]));
    }
    Ok((response, took))
}

/// Scrapes `http://addr/metrics` every second until `stop` is set; returns the scrape count.
fn scrape_every_second(
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut scrapes = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if scrape(&addr).is_ok() {
                scrapes += 1;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        scrapes
    })
}

/// A running `mmnotif-trace stream`, attached.
struct Tracer {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// `HOST:PORT` of the metrics endpoint, with `--metrics`.
    metrics: Option<String>,
}

impl Tracer {
    /// Starts `stream` with `format` (and `--metrics` on an ephemeral loopback port) and waits
    /// until it has attached.
    fn start(bin: &Path, format: &str, metrics: bool) -> Result<Tracer> {
        Tracer::start_with(bin, &["stream", "--format", format], metrics)
    }

    fn start_with(bin: &Path, args: &[&str], metrics: bool) -> Result<Tracer> {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        if metrics {
            cmd.args(["--metrics", "127.0.0.1:0"]);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("starting the tracer")?;
        let mut stderr = BufReader::new(child.stderr.take().context("tracer stderr")?);
        let mut line = String::new();
        stderr.read_line(&mut line)?; // "mmnotif-trace: kernel …: <attach summary>" once attached
        let metrics = if metrics {
            // "mmnotif-trace: serving metrics at http://ADDR/metrics", among the start-up lines
            // ("ready in …" and the like) that follow the attach line.
            let mut addr = None;
            for _ in 0..8 {
                line.clear();
                if stderr.read_line(&mut line)? == 0 {
                    break;
                }
                addr = line
                    .trim()
                    .strip_prefix("mmnotif-trace: serving metrics at http://")
                    .and_then(|a| a.strip_suffix("/metrics"))
                    .map(str::to_owned);
                if addr.is_some() {
                    break;
                }
            }
            Some(addr.context("the tracer did not say where it serves metrics")?)
        } else {
            None
        };
        Ok(Tracer { child, stderr, metrics })
    }

    /// SIGTERM, then everything it printed after attaching.
    fn stop(mut self) -> Result<String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest)?;
        self.child.wait()?;
        Ok(rest)
    }
}

fn hammer(bin: &Path, iterations: u64) -> Result<f64> {
    let out = Command::new(bin)
        .args(["workload", "--hammer", &iterations.to_string()])
        .output()
        .context("workload --hammer")?;
    if !out.status.success() {
        bail!("workload --hammer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().context("parsing ns/op")
}

/// Runs one traced measurement; returns (ns/op, events received, events lost).
fn traced(bin: &Path, iterations: u64, metrics: bool) -> Result<(f64, u64, u64)> {
    let tracer = Tracer::start(bin, "jsonl", metrics)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = tracer.metrics.clone().map(|addr| scrape_every_second(addr, stop.clone()));
    let ns = hammer(bin, iterations);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(scrapes) = scraper.and_then(|t| t.join().ok()) {
        println!("  {scrapes} scrapes of the metrics endpoint while traced");
    }
    let rest = tracer.stop()?;
    // "mmnotif-trace: kernel emitted A events, received R, lost L[, …]"
    let summary = rest.lines().find(|l| l.contains("kernel emitted")).context("tracer printed no summary")?;
    let nums: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    let [_, received, lost, ..] = nums[..] else { bail!("unexpected summary {summary:?}") };
    Ok((ns?, received, lost))
}

/// Runs one measurement under `stream --count-only`: every probe runs, nothing is emitted or
/// read — the floor a tracer of these hooks cannot go below. Returns ns/op.
fn floor(bin: &Path, iterations: u64) -> Result<f64> {
    let tracer = Tracer::start_with(bin, &["stream", "--count-only"], false)?;
    let ns = hammer(bin, iterations);
    let rest = tracer.stop()?;
    if !rest.contains("count only: the probes ran for") {
        bail!("the count-only tracer printed no count: {rest}");
    }
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub(crate) fn run(args: &BenchArgs) -> Result<u8> {
    if args.guest {
        let plan =
            guest::GuestPlan { kernels: args.kernels.clone(), rounds: args.rounds, iterations: args.guest_iterations };
        return guest::run(&plan);
    }
    let bin = crate::build_release()?;
    if args.scrape_cost {
        return scrape_cost::run(&bin, args.scrapes);
    }
    if let Some(minutes) = args.soak {
        let plan = soak::SoakPlan {
            minutes,
            fast_minutes: args.soak_fast_minutes,
            pause_ms: args.soak_pause_ms,
            batch: args.soak_batch,
            paced_batch: args.soak_paced_batch.unwrap_or(args.soak_batch),
            sample_secs: args.sample_secs,
        };
        return soak::run(&bin, &plan);
    }
    let (mut ratios, mut floor_ratios, mut untraced_all, mut traced_all) = (vec![], vec![], vec![], vec![]);
    let (mut received_total, mut lost_total) = (0, 0);
    for round in 1..=args.rounds.max(1) {
        let base = hammer(&bin, args.iterations)?;
        let probes_only = floor(&bin, args.iterations)?;
        let (with, received, lost) = traced(&bin, args.iterations, args.metrics)?;
        println!(
            "round {round}: untraced {base:.0} ns/op, count-only {probes_only:.0} ns/op (ratio {:.3}), traced {with:.0} \
             ns/op, ratio {:.3}, lost {lost}",
            probes_only / base,
            with / base
        );
        ratios.push(with / base);
        floor_ratios.push(probes_only / base);
        untraced_all.push(base);
        traced_all.push(with);
        received_total += received;
        lost_total += lost;
    }
    let traced_ns = median(traced_all);
    println!(
        "median: untraced {:.0} ns/op, traced {:.0} ns/op, ratio {:.3} (count-only floor {:.3}); {:.0} events/s \
         while traced; {received_total} events received, {lost_total} lost",
        median(untraced_all),
        traced_ns,
        median(ratios),
        median(floor_ratios),
        1e9 / traced_ns
    );
    Ok(0)
}
