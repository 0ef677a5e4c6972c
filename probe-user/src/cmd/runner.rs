//! The session runner of every live mode but the dashboard (`stream`, `record`, the default
//! text stream, `check`, `selftest`): tracer -> decoder -> filter -> checker -> sink, on a
//! blocking thread that also feeds the `--metrics` exporter.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Result;
use tokio::task::JoinHandle;

use crate::{
    checker::{Checker, OpenRange, Report, Violation},
    filter::EventFilter,
    loader::{AttachReport, CallbackProbe, KernelContext, Tracer, TracerOptions},
    metrics::{Exporter, Recorder, SessionInfo},
    session::{self, Delivery, SessionTotals, header},
    trace::{Event, Header},
};

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
    /// The ring buffer was drained (when a batch of records woke the reader, or after 10 ms
    /// without one): a moment for per-batch work, such as flushing output, instead of per event.
    fn drained(&mut self) {}
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

/// The session thread's end of the pipeline: the checker, the mode's sink and, with
/// `--metrics`, the recorder, which sees what the checker sees.
struct Checked<S> {
    checker: Checker,
    sink: S,
    metrics: Option<Recorder>,
}

impl<S: Sink> Checked<S> {
    fn deliver(&mut self, delivery: Delivery<'_>) {
        match delivery {
            Delivery::Event(e) => {
                if !self.sink.keep(e) {
                    return;
                }
                let violations = self.checker.push(e);
                self.sink.event(e, violations);
                if let Some(m) = &mut self.metrics {
                    m.observe(e);
                }
            }
            // Published after drains rather than per event, at most every 100 ms.
            Delivery::Drained(totals) => {
                self.sink.drained();
                if let Some(m) = &mut self.metrics {
                    m.publish(&self.checker, totals);
                }
            }
        }
    }

    fn finish(mut self, totals: SessionTotals) -> Result<SessionEnd<S::Output>> {
        // The last publication holds the final drain: a scrape before the endpoint closes
        // agrees with the closing summary.
        if let Some(m) = &mut self.metrics {
            m.publish_now(&self.checker, &totals);
        }
        let output = self.sink.close()?;
        let open_at_end = self.checker.open_ranges();
        Ok(SessionEnd { totals, open_at_end, report: self.checker.finish(), output })
    }
}

/// An attached tracer whose events are drained, checked and sunk on a blocking thread until
/// [`LiveSession::finish`].
pub struct LiveSession<O> {
    pub header: Header,
    pub attach: AttachReport,
    /// The traced kernel, for walks a command makes of its own (the stuck tasks at its end).
    pub kernel: KernelContext,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<SessionEnd<O>>>,
    /// Serves `--metrics` until the session has finished.
    exporter: Option<Exporter>,
}

impl<O: Send + 'static> LiveSession<O> {
    /// Attaches every hook the kernel allows and says how on stderr, serves metrics at
    /// `metrics` if given, and starts draining. `make_sink` runs on the session's thread, so the
    /// sink may hold what cannot move between threads (a stdout lock).
    pub async fn start<S, F>(
        opts: &TracerOptions,
        metrics: Option<SocketAddr>,
        filter: EventFilter,
        deadline: Option<Instant>,
        make_sink: F,
    ) -> Result<Self>
    where
        S: Sink<Output = O>,
        F: FnOnce(&Header, &AttachReport) -> Result<S> + Send + 'static,
    {
        let mut tracer = Tracer::start(opts)?;
        let header = header(&tracer.kernel.release, &tracer.attach);
        let attach = tracer.attach.clone();
        let kernel = tracer.kernel.clone();
        eprintln!("mmnotif-trace: kernel {}: {}", header.kernel, attach.summary());
        eprintln!("mmnotif-trace: {}", tracer.startup);
        // Bound before the session starts, so a taken port fails the command at once.
        let exporter = match metrics {
            Some(addr) => Some(serve_metrics(addr, &tracer).await?),
            None => None,
        };
        let recorder = exporter.as_ref().map(Exporter::recorder);
        let stop = Arc::new(AtomicBool::new(false));
        let (session_header, session_stop) = (header.clone(), stop.clone());
        let task = tokio::task::spawn_blocking(move || -> Result<SessionEnd<O>> {
            let sink = make_sink(&session_header, &tracer.attach)?;
            let mut checked = Checked { checker: Checker::new(&session_header), sink, metrics: recorder };
            let totals =
                session::trace(&mut tracer, &filter, &session_stop, deadline, |d| checked.deliver(d), announce_probe)?;
            checked.finish(totals)
        });
        Ok(LiveSession { header, attach, kernel, stop, task, exporter })
    }

    /// Makes the session drain what is pending and end; [`LiveSession::finish`] collects it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops draining (after what is pending) and returns the session's results; the metrics
    /// endpoint closes with it.
    pub async fn finish(self) -> Result<SessionEnd<O>> {
        self.request_stop();
        let end = self.task.await.map_err(|_| crate::exit::ThreadPanicked("tracing session"))?;
        drop(self.exporter);
        end
    }
}

/// Starts the exporter for the session of `tracer`, with the inventory gauges, and says where
/// it listens (port 0 picks one).
async fn serve_metrics(addr: SocketAddr, tracer: &Tracer) -> Result<Exporter> {
    let info = SessionInfo::new(&tracer.kernel.release, &tracer.attach);
    let exporter = Exporter::start(addr, info).await?.with_inventory(tracer.kernel.clone())?;
    eprintln!("mmnotif-trace: serving metrics at http://{}/metrics", exporter.local_addr());
    Ok(exporter)
}

/// Says on stderr which subscriber callback was probed, or why it could not be.
fn announce_probe(probe: &CallbackProbe) {
    eprintln!("mmnotif-trace: {}", probe.describe());
}
