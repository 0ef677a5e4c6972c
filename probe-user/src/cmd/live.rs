//! `stream`, `record` and the default text stream: the sinks that print or record what the
//! session runner delivers.

use std::{
    fs::File,
    io::{BufWriter, StdoutLock, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use super::runner::{LiveSession, Sink};
use crate::{
    checker::Violation,
    cli::{LiveArgs, StreamFormat},
    filter::EventFilter,
    loader::{AttachReport, Tracer, TracerOptions, detach_event_programs},
    render::{event_text, report_line},
    trace::{Event, Header, TraceWriter, write_event_line},
};

pub enum Output {
    Stdout(StreamFormat),
    File(PathBuf),
}

/// Flushes buffered output after a drain, at most every 50 ms, so a pipe reader sees events
/// promptly without a write per event (and without reading the clock per event).
struct Throttled<W: Write> {
    out: W,
    last: Instant,
}

impl<W: Write> Throttled<W> {
    fn new(out: W) -> Self {
        Throttled { out, last: Instant::now() }
    }

    fn tick(&mut self) {
        if self.last.elapsed() >= Duration::from_millis(50) {
            let _ = self.out.flush();
            self.last = Instant::now();
        }
    }
}

/// The sinks of `stream` and `record`.
enum StreamSink {
    /// Text lines, with the checker's violations inline.
    Text(Throttled<BufWriter<StdoutLock<'static>>>),
    Jsonl(Throttled<BufWriter<StdoutLock<'static>>>),
    /// Only violations, as JSON lines, each flushed at once.
    Violations(BufWriter<StdoutLock<'static>>),
    File {
        path: PathBuf,
        writer: TraceWriter<BufWriter<File>>,
        error: Option<std::io::Error>,
    },
}

impl StreamSink {
    fn open(output: Output, header: &Header, attach: &AttachReport) -> Result<StreamSink> {
        Ok(match output {
            Output::Stdout(StreamFormat::Text) => {
                let mut out = Throttled::new(BufWriter::new(std::io::stdout().lock()));
                let _ = writeln!(out.out, "# kernel {} attach {}", header.kernel, attach.summary());
                StreamSink::Text(out)
            }
            Output::Stdout(StreamFormat::Jsonl) => {
                let mut out = Throttled::new(BufWriter::new(std::io::stdout().lock()));
                let _ = writeln!(out.out, "{}", serde_json::to_string(header)?);
                StreamSink::Jsonl(out)
            }
            Output::Stdout(StreamFormat::Violations) => {
                StreamSink::Violations(BufWriter::new(std::io::stdout().lock()))
            }
            Output::File(path) => {
                let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let writer = TraceWriter::new(BufWriter::new(file), header)
                    .with_context(|| format!("writing {}", path.display()))?;
                StreamSink::File { path, writer, error: None }
            }
        })
    }
}

impl Sink for StreamSink {
    type Output = ();

    fn event(&mut self, e: &Event, violations: &[Violation]) {
        match self {
            StreamSink::Text(out) => {
                let _ = writeln!(out.out, "{}", event_text(e));
                for v in violations {
                    let _ = writeln!(out.out, "!! {v}");
                }
            }
            StreamSink::Jsonl(out) => {
                let _ = write_event_line(&mut out.out, e);
            }
            StreamSink::Violations(out) => {
                if violations.is_empty() {
                    return;
                }
                for v in violations {
                    if let Ok(line) = serde_json::to_string(v) {
                        let _ = writeln!(out, "{line}");
                    }
                }
                let _ = out.flush();
            }
            StreamSink::File { writer, error, .. } => {
                // The first write error is reported when the session ends.
                if let Err(e) = writer.write_event(e)
                    && error.is_none()
                {
                    *error = Some(e);
                }
            }
        }
    }

    fn drained(&mut self) {
        if let StreamSink::Text(out) | StreamSink::Jsonl(out) = self {
            out.tick();
        }
    }

    fn close(self) -> Result<()> {
        match self {
            StreamSink::Text(mut out) | StreamSink::Jsonl(mut out) => {
                let _ = out.out.flush();
            }
            StreamSink::Violations(mut out) => {
                let _ = out.flush();
            }
            StreamSink::File { path, mut writer, error } => {
                if let Some(e) = error {
                    return Err(e).with_context(|| format!("writing {}", path.display()));
                }
                writer.flush().with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(())
    }
}

pub async fn run(live: &LiveArgs, output: Output) -> Result<u8> {
    let opts = live.tracer_options();
    let filter = EventFilter { pids: live.pids.clone(), comms: live.comms.clone() };
    let deadline = live.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let make_sink = move |header: &Header, attach: &AttachReport| StreamSink::open(output, header, attach);
    let session = LiveSession::start(&opts, live.metrics.metrics, filter, deadline, make_sink).await?;
    let mut workload = start_workload(live)?;
    wait_for_stop(deadline).await?;
    session.request_stop();
    if let Some(child) = workload.as_mut() {
        let _ = child.kill().await;
    }
    let end = session.finish().await?;
    eprintln!("mmnotif-trace: {}", end.totals.summary());
    eprintln!("mmnotif-trace: {}", report_line(&end.report));
    Ok(0)
}

/// `stream --count-only`: every probe attached and running, no record emitted, only the
/// kernel side's count printed at the end. Nothing is drained, so nothing is checked.
pub async fn count_only(live: &LiveArgs) -> Result<u8> {
    let opts = TracerOptions { count_only: true, ..live.tracer_options() };
    let mut tracer = tokio::task::spawn_blocking(move || Tracer::start(&opts))
        .await
        .map_err(|_| crate::exit::ThreadPanicked("loading the tracer"))??;
    eprintln!("mmnotif-trace: kernel {}: {} (count only)", tracer.kernel.release, tracer.attach.summary());
    eprintln!("mmnotif-trace: {}", tracer.startup);
    let deadline = live.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut workload = start_workload(live)?;
    wait_for_stop(deadline).await?;
    if let Some(child) = workload.as_mut() {
        let _ = child.kill().await;
    }
    let collector = tracer.collector()?;
    detach_event_programs(&mut tracer.ebpf);
    let counters = collector.counters()?;
    eprintln!(
        "mmnotif-trace: count only: the probes ran for {} events and emitted none; nothing was checked",
        counters.attempted
    );
    Ok(0)
}

/// `--workload`: the built-in workload as traffic, repeating until the trace stops.
fn start_workload(live: &LiveArgs) -> Result<Option<tokio::process::Child>> {
    if live.workload {
        Ok(Some(super::spawn_workload(&["--repeat", "0", "--hold-ms", "500"], false)?))
    } else {
        Ok(None)
    }
}

/// Until Ctrl-C, SIGTERM or the deadline.
async fn wait_for_stop(deadline: Option<Instant>) -> Result<()> {
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
    Ok(())
}
