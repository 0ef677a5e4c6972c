//! `cargo xtask bench --guest`: the full probe path measured in QEMU guests against a peer.
//! In one guest run per kernel, `tests/guest/bench.sh` times the worst-case invalidation loop
//! (`tests/guest/bench-loop.c`: a list and an interval subscriber of the test module on the
//! loop's mm, one page zapped and refaulted per iteration) untraced, under the tracer in full
//! mode (fentry and kprobe, each with and without stacks) and under bpftrace from the kernel's
//! own Debian archive (counting `__mmu_notifier_invalidate_range_start` calls, and printing one
//! line per call), interleaved round by round. Under TCG absolute times mean little; the ratios
//! to the untraced runs of the same rounds are the figure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::vm::{self, RootProgram, VmArgs};

/// The peer: bpftrace as the kernel's archive packages it.
const PEER: RootProgram = RootProgram { package: "bpftrace", path: "/usr/bin/bpftrace" };

/// What one guest benchmark run measures.
pub(crate) struct GuestPlan {
    pub kernels: Vec<String>,
    pub rounds: u32,
    pub iterations: u64,
}

/// One measurement the guest reported (one `MMNOTIF-BENCH:` line).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    pub round: u32,
    pub config: String,
    /// The loop's figures, or why the guest could not measure.
    pub sample: Result<Sample, String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub ns_per_op: f64,
    pub elapsed_ns: u64,
    /// Events the tracer or the peer reported (none when untraced).
    pub events: Option<u64>,
    pub lost: Option<u64>,
}

/// Parses one `MMNOTIF-BENCH: round=R config=NAME …` line, wherever it starts in a console
/// line; `None` for any other line.
pub(crate) fn parse_line(line: &str) -> Option<Result<Measurement>> {
    let rest = &line[line.find("MMNOTIF-BENCH: ")? + "MMNOTIF-BENCH: ".len()..];
    Some(parse_fields(rest.trim()).with_context(|| format!("the guest's benchmark line {:?}", rest.trim())))
}

fn parse_fields(rest: &str) -> Result<Measurement> {
    // `error=` is the last field and its value may hold spaces.
    let (fields, error) = match rest.split_once(" error=") {
        Some((f, e)) => (f, Some(e.to_owned())),
        None => (rest, None),
    };
    let mut map = BTreeMap::new();
    for field in fields.split_whitespace() {
        let (k, v) = field.split_once('=').with_context(|| format!("{field:?} is not key=value"))?;
        map.insert(k, v);
    }
    let get = |k: &str| map.get(k).copied().with_context(|| format!("no {k}="));
    let round = get("round")?.parse().context("round=")?;
    let config = get("config")?.to_owned();
    let optional = |k: &str| -> Result<Option<u64>> {
        match get(k)? {
            "-" => Ok(None),
            v => v.parse().map(Some).with_context(|| format!("{k}={v}")),
        }
    };
    let sample = match error {
        Some(e) => Err(e),
        None => Ok(Sample {
            ns_per_op: get("ns_per_op")?.parse().context("ns_per_op=")?,
            elapsed_ns: get("elapsed_ns")?.parse().context("elapsed_ns=")?,
            events: optional("events")?,
            lost: optional("lost")?,
        }),
    };
    Ok(Measurement { round, config, sample })
}

/// One configuration's figures over all rounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub config: String,
    pub median_ns: Option<f64>,
    /// Median over rounds of (this configuration's ns/op / the same round's untraced ns/op).
    pub ratio: Option<f64>,
    /// The lowest and highest of those per-round ratios: how much the rounds agree.
    pub ratio_range: Option<(f64, f64)>,
    /// Median over rounds of events per second of loop time.
    pub events_per_s: Option<f64>,
    pub lost: Option<u64>,
    pub rounds: usize,
    pub failed: usize,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The table: one row per configuration, in the order the guest ran them.
pub(crate) fn table(measurements: &[Measurement]) -> Vec<Row> {
    let untraced: BTreeMap<u32, f64> = measurements
        .iter()
        .filter(|m| m.config == "untraced")
        .filter_map(|m| m.sample.as_ref().ok().map(|s| (m.round, s.ns_per_op)))
        .collect();
    let mut order: Vec<&str> = Vec::new();
    for m in measurements {
        if !order.contains(&m.config.as_str()) {
            order.push(&m.config);
        }
    }
    order
        .into_iter()
        .map(|config| {
            let all: Vec<&Measurement> = measurements.iter().filter(|m| m.config == config).collect();
            let ok: Vec<(u32, &Sample)> =
                all.iter().filter_map(|m| m.sample.as_ref().ok().map(|s| (m.round, s))).collect();
            let ratios: Vec<f64> = ok.iter().filter_map(|(r, s)| untraced.get(r).map(|u| s.ns_per_op / u)).collect();
            let ratio_range = ratios.iter().fold(None, |range: Option<(f64, f64)>, &r| {
                Some(range.map_or((r, r), |(lo, hi)| (lo.min(r), hi.max(r))))
            });
            let rates = ok
                .iter()
                .filter_map(|(_, s)| {
                    s.events.filter(|_| s.elapsed_ns > 0).map(|e| e as f64 * 1e9 / s.elapsed_ns as f64)
                })
                .collect();
            let lost = ok.iter().filter_map(|(_, s)| s.lost).reduce(|a, b| a + b);
            Row {
                config: config.to_owned(),
                median_ns: median(ok.iter().map(|(_, s)| s.ns_per_op).collect()),
                ratio: median(ratios),
                ratio_range,
                events_per_s: median(rates),
                lost,
                rounds: ok.len(),
                failed: all.len() - ok.len(),
            }
        })
        .collect()
}

/// The table as Markdown (as it goes into the README).
pub(crate) fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| configuration | median ns/op | ratio to untraced | rounds' ratios | events/s | lost | rounds |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        let failed = if r.failed > 0 { format!(" ({} failed)", r.failed) } else { String::new() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {}{failed} |\n",
            r.config,
            opt(r.median_ns, 0),
            opt(r.ratio, 2),
            r.ratio_range.map_or("-".to_owned(), |(lo, hi)| format!("{lo:.2}–{hi:.2}")),
            opt(r.events_per_s, 0),
            r.lost.map_or("-".to_owned(), |l| l.to_string()),
            r.rounds,
        ));
    }
    out
}

pub(crate) fn run(plan: &GuestPlan) -> Result<u8> {
    let tracer = crate::dist::build_static()?;
    let mut failed = Vec::new();
    for kernel in &plan.kernels {
        match one_kernel(plan, kernel, &tracer) {
            Ok(()) => {}
            Err(e) => {
                println!("bench --guest: kernel {kernel}: {e:#}");
                failed.push(kernel.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!("the guest benchmark failed on kernel {}", failed.join(", "));
    }
    Ok(0)
}

/// One guest run: every configuration, interleaved, on `kernel`; prints its table.
fn one_kernel(plan: &GuestPlan, kernel: &str, tracer: &std::path::Path) -> Result<()> {
    let args = VmArgs {
        kernel: kernel.to_owned(),
        no_suite: true,
        with_binary: vec![tracer.to_path_buf()],
        guest_cmd: vec!["/tests/bench.sh".into(), plan.rounds.to_string(), plan.iterations.to_string()],
        // bpftrace's LLVM and clang libraries travel in the initramfs, which lives in RAM.
        memory: "2G".into(),
        timeout: Some(3600),
        root_programs: vec![PEER],
        ..VmArgs::default()
    };
    let report = vm::run_reports(&args)?.pop().context("no kernel ran")?;
    let log: PathBuf = report.log.clone();
    let outcome = report.outcome.with_context(|| format!("the guest run (log {})", log.display()))?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    let measurements: Vec<Measurement> = text.lines().filter_map(parse_line).collect::<Result<_>>()?;
    let says = |tag: &str| text.lines().find_map(|l| l.split_once(tag).map(|(_, v)| v.trim().to_owned()));
    println!();
    println!("bench --guest: kernel {kernel} (ABI {}), log {}", report.abi, log.display());
    println!("  tracer: {}", says("MMNOTIF-BENCH-TRACER:").unwrap_or_else(|| "?".into()));
    println!("  peer: {}", says("MMNOTIF-BENCH-PEER:").unwrap_or_else(|| "?".into()));
    println!("  {} rounds × {} iterations per configuration", plan.rounds, plan.iterations);
    print!("{}", render(&table(&measurements)));
    for m in &measurements {
        if let Err(e) = &m.sample {
            println!("  round {} {}: {e}", m.round, m.config);
        }
    }
    if !outcome.ok() || !text.contains("MMNOTIF-BENCH-DONE") {
        bail!("the guest did not finish the benchmark: {}", outcome.failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(round: u32, config: &str, ns: f64, events: Option<u64>, lost: Option<u64>) -> Measurement {
        Measurement {
            round,
            config: config.into(),
            sample: Ok(Sample { ns_per_op: ns, elapsed_ns: 2_000_000_000, events, lost }),
        }
    }

    #[test]
    fn lines_parse_wherever_they_start() {
        let line =
            "[6.12] MMNOTIF-BENCH: round=2 config=fentry ns_per_op=5123.5 elapsed_ns=102470000 events=100000 lost=3";
        let got = parse_line(line).expect("a benchmark line").expect("parses");
        assert_eq!(
            got,
            Measurement {
                round: 2,
                config: "fentry".into(),
                sample: Ok(Sample { ns_per_op: 5123.5, elapsed_ns: 102_470_000, events: Some(100_000), lost: Some(3) })
            }
        );
        let untraced = parse_line("MMNOTIF-BENCH: round=1 config=untraced ns_per_op=10 elapsed_ns=5 events=- lost=-")
            .expect("line")
            .expect("parses");
        assert_eq!(untraced.sample.expect("sample").events, None);
        let failed = parse_line("MMNOTIF-BENCH: round=3 config=bpftrace-print error=bpftrace did not attach")
            .expect("line")
            .expect("parses");
        assert_eq!(failed.sample, Err("bpftrace did not attach".into()));
        assert!(parse_line("MMNOTIF-BENCH-LOOP ns_per_op=1").is_none());
        assert!(
            parse_line("MMNOTIF-BENCH: round=x config=a ns_per_op=1 elapsed_ns=1 events=- lost=-")
                .expect("line")
                .is_err()
        );
        assert!(parse_line("MMNOTIF-BENCH: round=1 config=a elapsed_ns=1 events=- lost=-").expect("line").is_err());
    }

    #[test]
    fn ratios_are_medians_of_per_round_ratios() {
        // Round 2's untraced run is slow and so is its traced run: the per-round ratio is what
        // stays stable, not the ratio of the medians (300/110 = 2.73 here).
        let ms = vec![
            m(1, "untraced", 100.0, None, None),
            m(1, "fentry", 200.0, Some(4_000), Some(0)),
            m(2, "untraced", 300.0, None, None),
            m(2, "fentry", 600.0, Some(2_000), Some(5)),
            m(3, "untraced", 110.0, None, None),
            m(3, "fentry", 330.0, Some(6_000), Some(1)),
            Measurement { round: 3, config: "bpftrace-count".into(), sample: Err("bpftrace did not attach".into()) },
        ];
        let rows = table(&ms);
        assert_eq!(
            rows.iter().map(|r| r.config.as_str()).collect::<Vec<_>>(),
            ["untraced", "fentry", "bpftrace-count"]
        );
        assert_eq!(rows[0].ratio, Some(1.0));
        assert_eq!(rows[1].median_ns, Some(330.0));
        assert_eq!(rows[1].ratio, Some(2.0));
        // 4000 events in 2 s: the median of 1000, 2000 and 3000 events/s.
        assert_eq!(rows[1].events_per_s, Some(2000.0));
        assert_eq!(rows[1].lost, Some(6));
        assert_eq!(rows[0].lost, None);
        assert_eq!((rows[2].rounds, rows[2].failed, rows[2].ratio), (0, 1, None));
        let text = render(&rows);
        assert_eq!(rows[1].ratio_range, Some((2.0, 3.0)));
        assert!(text.contains("| fentry | 330 | 2.00 | 2.00–3.00 | 2000 | 6 | 3 |"), "{text}");
        assert!(text.contains("| bpftrace-count | - | - | - | - | - | 0 (1 failed) |"), "{text}");
    }
}
