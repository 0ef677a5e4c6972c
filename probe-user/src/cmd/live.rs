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
    checker::{Checker, Report, Violation},
    cli::{LiveArgs, MetricsArgs, TextOrJsonl},
    decode::Decoder,
    filter::EventFilter,
    loader::{AttachReport, Collector, KernelContext, LoadError, Tracer, TracerOptions},
    metrics::{Exporter, Recorder, SessionInfo},
    render::event_text,
    session::{self, SessionTotals, Sink},
    trace::{Event, Header, TraceWriter, event_to_line},
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

/// The checker every live session runs, the session's output, and the metrics recorder
/// when `--metrics` is on: one [`Sink`] so the recorder can publish between events.
pub struct CheckedSink<W: FnMut(&Event, &[Violation])> {
    pub checker: Checker,
    pub metrics: Option<Recorder>,
    pub output: W,
}

// On `&mut`: the session consumes its sink, and the checker must outlive the session.
impl<W: FnMut(&Event, &[Violation])> Sink for &mut CheckedSink<W> {
    fn event(&mut self, event: &Event) {
        let violations = self.checker.push(event);
        (self.output)(event, violations);
        if let Some(m) = self.metrics.as_mut() {
            m.observe(event);
        }
    }

    fn drained(&mut self, totals: &SessionTotals) {
        if let Some(m) = self.metrics.as_mut() {
            m.publish(&self.checker, totals);
        }
    }
}

impl<W: FnMut(&Event, &[Violation])> CheckedSink<W> {
    /// Runs the session to its end; the last metrics publication includes the final drain.
    pub fn run(
        mut self,
        collector: &mut Collector,
        decoder: &mut Decoder<'_>,
        filter: &EventFilter,
        stop: &AtomicBool,
        deadline: Option<Instant>,
    ) -> Result<(SessionTotals, Checker), LoadError> {
        let totals = session::run_sink(collector, decoder, filter, stop, deadline, &mut self)?;
        if let Some(m) = self.metrics.as_mut() {
            m.publish_now(&self.checker, &totals);
        }
        Ok((totals, self.checker))
    }
}

/// Starts the exporter for `--metrics`, saying where it listens.
pub async fn start_metrics(args: &MetricsArgs, tracer: &Tracer) -> Result<Option<Exporter>> {
    let Some(addr) = args.metrics else { return Ok(None) };
    let kernel = KernelContext {
        offsets: tracer.kernel.offsets,
        kallsyms: tracer.kernel.kallsyms.clone(),
        release: tracer.kernel.release.clone(),
    };
    let exporter = Exporter::start(addr, SessionInfo::new(&tracer.kernel.release, &tracer.attach)).await?.with_inventory(kernel)?;
    eprintln!("mmnotif-trace: serving metrics at http://{}/metrics", exporter.local_addr());
    Ok(Some(exporter))
}

pub async fn run(live: &LiveArgs, output: Output) -> Result<u8> {
    let opts = TracerOptions { ring_bytes: live.ring_size, wakeup_bytes: live.wakeup_bytes };
    let mut tracer = Tracer::start(&opts)?;
    let filter = EventFilter { pids: live.pids.clone(), comms: live.comms.clone() };
    let header = header(&tracer.kernel.release, &tracer.attach);
    eprintln!("mmnotif-trace: kernel {}: {}", tracer.kernel.release, tracer.attach.summary());
    let exporter = start_metrics(&live.metrics, &tracer).await?;
    let recorder = exporter.as_ref().map(Exporter::recorder);

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = live.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let stop_in_session = stop.clone();
    let session = tokio::task::spawn_blocking(move || -> Result<(SessionTotals, Report)> {
        let mut collector = tracer.collector()?;
        let mut decoder = Decoder::new(&tracer.kernel.kallsyms);
        // Every live mode checks as it goes; the text stream shows violations inline.
        let checker = Checker::new(&header);
        let (totals, checker) = match output {
            Output::Stdout(TextOrJsonl::Text) => {
                let mut out = Throttled { out: BufWriter::new(std::io::stdout().lock()), last: Instant::now() };
                let _ = writeln!(out.out, "# kernel {} attach {}", header.kernel, tracer.attach.summary());
                let sink = CheckedSink {
                    checker,
                    metrics: recorder,
                    output: |e: &Event, violations: &[Violation]| {
                        let _ = writeln!(out.out, "{}", event_text(e));
                        for v in violations {
                            let _ = writeln!(out.out, "!! {v}");
                        }
                        out.tick();
                    },
                };
                let r = sink.run(&mut collector, &mut decoder, &filter, &stop_in_session, deadline)?;
                let _ = out.out.flush();
                r
            }
            Output::Stdout(TextOrJsonl::Jsonl) => {
                let mut out = Throttled { out: BufWriter::new(std::io::stdout().lock()), last: Instant::now() };
                let _ = writeln!(out.out, "{}", serde_json::to_string(&header)?);
                let sink = CheckedSink {
                    checker,
                    metrics: recorder,
                    output: |e: &Event, _: &[Violation]| {
                        let _ = writeln!(out.out, "{}", event_to_line(e));
                        out.tick();
                    },
                };
                let r = sink.run(&mut collector, &mut decoder, &filter, &stop_in_session, deadline)?;
                let _ = out.out.flush();
                r
            }
            Output::File(path) => {
                let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut w = TraceWriter::new(BufWriter::new(file), &header).with_context(|| format!("writing {}", path.display()))?;
                let mut err = None;
                let sink = CheckedSink {
                    checker,
                    metrics: recorder,
                    output: |e: &Event, _: &[Violation]| {
                        if let Err(e) = w.write_event(e)
                            && err.is_none()
                        {
                            err = Some(e);
                        }
                    },
                };
                let r = sink.run(&mut collector, &mut decoder, &filter, &stop_in_session, deadline)?;
                if let Some(e) = err {
                    return Err(e).with_context(|| format!("writing {}", path.display()));
                }
                w.flush().with_context(|| format!("writing {}", path.display()))?;
                r
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
    drop(exporter);
    eprintln!("mmnotif-trace: {}", totals.summary());
    eprintln!("mmnotif-trace: {}", report_line(&report));
    Ok(0)
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
