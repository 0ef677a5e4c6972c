//! `stream`, `record` and the default live mode, and the session runner they share with
//! `check`: tracer -> decoder -> filter -> checker -> sink, on a blocking thread.

use std::{
    fs::File,
    io::{BufWriter, StdoutLock, Write},
    path::PathBuf,
    sync::{Arc, atomic::{AtomicBool, Ordering}},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::{signal::unix::{SignalKind, signal}, task::JoinHandle};

use crate::{
    checker::{Checker, OpenRange, Report, Violation},
    cli::{LiveArgs, TextOrJsonl},
    filter::EventFilter,
    loader::{AttachReport, CallbackProbe, Tracer, TracerOptions},
    render::event_text,
    session::{self, SessionTotals},
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

/// What a live session does with each event once the checker has seen it.
pub trait Sink {
    /// What the sink hands back when the session ends.
    type Output: Send + 'static;
    /// Whether the checker sees this event at all (`check --pid-tree` narrows the session here).
    fn keep(&mut self, _event: &Event) -> bool {
        true
    }
    /// One event, with the violations the checker found on it.
    fn event(&mut self, event: &Event, violations: &[Violation]);
    fn close(self) -> Result<Self::Output>;
}

/// What a session ends with.
pub struct SessionEnd<O> {
    pub totals: SessionTotals,
    /// Ranges still open when the tracer stopped, which the report calls unpaired.
    pub open_at_end: Vec<OpenRange>,
    pub report: Report,
    pub output: O,
}

/// An attached tracer whose events are drained, checked and sunk on a blocking thread until
/// [`LiveSession::finish`].
pub struct LiveSession<O> {
    pub header: Header,
    pub attach: AttachReport,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<SessionEnd<O>>>,
}

impl<O: Send + 'static> LiveSession<O> {
    /// Attaches every hook the kernel allows and starts draining. `make_sink` runs on the
    /// session's thread, so the sink may hold what cannot move between threads (a stdout lock).
    pub fn start<S, F>(opts: &TracerOptions, filter: EventFilter, deadline: Option<Instant>, make_sink: F) -> Result<Self>
    where
        S: Sink<Output = O>,
        F: FnOnce(&Header, &AttachReport) -> Result<S> + Send + 'static,
    {
        let mut tracer = Tracer::start(opts)?;
        let header = header(&tracer.kernel.release, &tracer.attach);
        let attach = tracer.attach.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (session_header, session_stop) = (header.clone(), stop.clone());
        let task = tokio::task::spawn_blocking(move || -> Result<SessionEnd<O>> {
            let mut checker = Checker::new(&session_header);
            let mut sink = make_sink(&session_header, &tracer.attach)?;
            let totals = session::trace(
                &mut tracer,
                &filter,
                &session_stop,
                deadline,
                |e| {
                    if sink.keep(e) {
                        let violations = checker.push(e);
                        sink.event(e, violations);
                    }
                },
                announce_probe,
            )?;
            let output = sink.close()?;
            let open_at_end = checker.open_ranges();
            Ok(SessionEnd { totals, open_at_end, report: checker.finish(), output })
        });
        Ok(LiveSession { header, attach, stop, task })
    }

    /// "kernel 6.18.0: degraded: …; attached …", for the banner on stderr.
    pub fn banner(&self) -> String {
        format!("kernel {}: {}", self.header.kernel, self.attach.summary())
    }

    /// Makes the session drain what is pending and end; [`LiveSession::finish`] collects it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops draining (after what is pending) and returns the session's results.
    pub async fn finish(self) -> Result<SessionEnd<O>> {
        self.request_stop();
        self.task.await.context("the tracing session panicked")?
    }
}

/// Flushes buffered output at most every 50 ms so a pipe reader sees events promptly without
/// a write per event.
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
    File { path: PathBuf, writer: TraceWriter<BufWriter<File>>, error: Option<std::io::Error> },
}

impl StreamSink {
    fn open(output: Output, header: &Header, attach: &AttachReport) -> Result<StreamSink> {
        Ok(match output {
            Output::Stdout(TextOrJsonl::Text) => {
                let mut out = Throttled::new(BufWriter::new(std::io::stdout().lock()));
                let _ = writeln!(out.out, "# kernel {} attach {}", header.kernel, attach.summary());
                StreamSink::Text(out)
            }
            Output::Stdout(TextOrJsonl::Jsonl) => {
                let mut out = Throttled::new(BufWriter::new(std::io::stdout().lock()));
                let _ = writeln!(out.out, "{}", serde_json::to_string(header)?);
                StreamSink::Jsonl(out)
            }
            Output::File(path) => {
                let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let writer = TraceWriter::new(BufWriter::new(file), header).with_context(|| format!("writing {}", path.display()))?;
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
                out.tick();
            }
            StreamSink::Jsonl(out) => {
                let _ = writeln!(out.out, "{}", event_to_line(e));
                out.tick();
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

    fn close(self) -> Result<()> {
        match self {
            StreamSink::Text(mut out) | StreamSink::Jsonl(mut out) => {
                let _ = out.out.flush();
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
    let session = LiveSession::start(&opts, filter, deadline, move |header, attach| StreamSink::open(output, header, attach))?;
    eprintln!("mmnotif-trace: {}", session.banner());

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
    session.request_stop();
    if let Some(child) = workload.as_mut() {
        let _ = child.kill().await;
    }
    let end = session.finish().await?;
    eprintln!("mmnotif-trace: {}", end.totals.summary());
    eprintln!("mmnotif-trace: {}", report_line(&end.report));
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
