//! `stream`, `record` and the default live mode.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::{Arc, atomic::{AtomicBool, Ordering}},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    checker::{Checker, Report},
    cli::{LiveArgs, TextOrJsonl},
    filter::EventFilter,
    loader::{AttachReport, CallbackProbe, Tracer},
    render::event_text,
    session::{self, SessionTotals},
    trace::{Header, TraceWriter, event_to_line},
};

pub enum Output {
    Stdout(TextOrJsonl),
    File(PathBuf),
}

/// The trace header for a live session.
pub fn header(kernel: &str, attach: &AttachReport) -> Header {
    let mut h = Header::new(kernel);
    h.attach = attach.header_map();
    h.extra.insert("mode".into(), serde_json::Value::from(if attach.pairing_available() { "full" } else { "degraded" }));
    h
}

/// Flushes buffered output at most every 50 ms so a pipe reader sees events promptly without
/// a write per event.
struct Throttled<W: Write> {
    out: W,
    last: Instant,
}

impl<W: Write> Throttled<W> {
    fn tick(&mut self) {
        if self.last.elapsed() >= Duration::from_millis(50) {
            let _ = self.out.flush();
            self.last = Instant::now();
        }
    }
}

pub async fn run(live: &LiveArgs, output: Output) -> Result<u8> {
    let opts = live.tracer_options();
    let mut tracer = Tracer::start(&opts)?;
    let filter = EventFilter { pids: live.pids.clone(), comms: live.comms.clone() };
    let header = header(&tracer.kernel.release, &tracer.attach);
    eprintln!("mmnotif-trace: kernel {}: {}", tracer.kernel.release, tracer.attach.summary());

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = live.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let stop_in_session = stop.clone();
    let session = tokio::task::spawn_blocking(move || -> Result<(SessionTotals, Report)> {
        // Every live mode checks as it goes; the text stream shows violations inline.
        let mut checker = Checker::new(&header);
        let totals = match output {
            Output::Stdout(TextOrJsonl::Text) => {
                let mut out = Throttled { out: BufWriter::new(std::io::stdout().lock()), last: Instant::now() };
                let _ = writeln!(out.out, "# kernel {} attach {}", header.kernel, tracer.attach.summary());
                let t = session::trace(&mut tracer, &filter, &stop_in_session, deadline, |e| {
                    let _ = writeln!(out.out, "{}", event_text(e));
                    for v in checker.push(e) {
                        let _ = writeln!(out.out, "!! {v}");
                    }
                    out.tick();
                }, announce_probe)?;
                let _ = out.out.flush();
                t
            }
            Output::Stdout(TextOrJsonl::Jsonl) => {
                let mut out = Throttled { out: BufWriter::new(std::io::stdout().lock()), last: Instant::now() };
                let _ = writeln!(out.out, "{}", serde_json::to_string(&header)?);
                let t = session::trace(&mut tracer, &filter, &stop_in_session, deadline, |e| {
                    let _ = writeln!(out.out, "{}", event_to_line(e));
                    checker.push(e);
                    out.tick();
                }, announce_probe)?;
                let _ = out.out.flush();
                t
            }
            Output::File(path) => {
                let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut w = TraceWriter::new(BufWriter::new(file), &header).with_context(|| format!("writing {}", path.display()))?;
                let mut err = None;
                let t = session::trace(&mut tracer, &filter, &stop_in_session, deadline, |e| {
                    checker.push(e);
                    if let Err(e) = w.write_event(e)
                        && err.is_none()
                    {
                        err = Some(e);
                    }
                }, announce_probe)?;
                if let Some(e) = err {
                    return Err(e).with_context(|| format!("writing {}", path.display()));
                }
                w.flush().with_context(|| format!("writing {}", path.display()))?;
                t
            }
        };
        Ok((totals, checker.finish()))
    });

    let mut workload = if live.workload {
        Some(super::spawn_workload(&["--repeat", "0", "--hold-ms", "500"], false)?)
    } else {
        None
    };
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
        _ = until_deadline => {}
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(child) = workload.as_mut() {
        let _ = child.kill().await;
    }
    let (totals, report) = session.await.context("the tracing session panicked")??;
    eprintln!("mmnotif-trace: {}", totals.summary());
    eprintln!("mmnotif-trace: {}", report_line(&report));
    Ok(0)
}

/// Says on stderr which subscriber callback was probed, or why it could not be.
pub fn announce_probe(probe: &CallbackProbe) {
    eprintln!("mmnotif-trace: {}", probe.describe());
}

/// The checker's verdict in one line for the end of a live session (`replay` prints it all).
pub fn report_line(report: &Report) -> String {
    let counts: Vec<String> = report.violation_counts.iter().map(|(rule, n)| format!("{rule}={n}")).collect();
    format!(
        "verdict {}: {} violations{}; {} of {} rules checked{}",
        report.verdict,
        report.violation_counts.values().sum::<u64>(),
        if counts.is_empty() { String::new() } else { format!(" ({})", counts.join(", ")) },
        report.checked.len(),
        crate::checker::RuleId::ALL.len(),
        if report.lost > 0 { format!(", {} events lost", report.lost) } else { String::new() },
    )
}
