//! The dashboard over the live tracer: the session drains the ring buffer on its own thread
//! into the shared model, the iterator audit refreshes the inventory every few seconds, and
//! the built-in workload provides traffic.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Instant,
};

use anyhow::{Context, Result};

use super::{
    event_loop::{self, Source},
    logfile,
    model::Model,
    shared::SharedModel,
    snapshot::{Inventory, Snapshot},
    ui::Command,
};
use crate::{
    clock::monotonic_ns,
    filter::EventFilter,
    inventory::{BlockedTask, InventoryPoller, InventoryWalk, MmInventory, WalkError},
    loader::{CallbackProbe, Tracer, TracerOptions},
    metrics::{Exporter, SessionInfo},
    render::report_line,
    session::{self, Delivery, SessionTotals, header},
    workload,
};

/// The last inventory read, or why there is none.
#[derive(Default)]
struct InventorySlot {
    walk: Option<ReadWalk>,
    error: Option<String>,
}

/// The last walk that succeeded, shared with the snapshots that show it.
struct ReadWalk {
    mms: Arc<Vec<MmInventory>>,
    stuck: Arc<Vec<BlockedTask>>,
    at: Instant,
}

impl InventorySlot {
    /// Takes a walk's outcome; a failure keeps the last inventory read, marked as failed.
    fn store(&mut self, walk: Result<InventoryWalk, &WalkError>) {
        match walk {
            Ok(InventoryWalk { mms, stuck }) => {
                let walk = ReadWalk { mms: Arc::new(mms), stuck: Arc::new(stuck), at: Instant::now() };
                *self = InventorySlot { walk: Some(walk), error: None }
            }
            Err(e) => {
                let e = e.to_string();
                // An iterator that cannot load fails alike every round: logged once.
                if self.error.as_ref() != Some(&e) {
                    log::warn!("inventory: {e}");
                }
                self.error = Some(e);
            }
        }
    }
}

/// `--metrics` in the dashboard, which has no async runtime of its own: the endpoint gets
/// one. The dashboard's inventory walks feed the per-mm gauges.
struct Metrics {
    // Dropped first: the endpoint stops before its runtime does.
    exporter: Exporter,
    _runtime: tokio::runtime::Runtime,
}

impl Metrics {
    fn serve(addr: SocketAddr, tracer: &Tracer) -> Result<Metrics> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the metrics endpoint")?;
        let exporter =
            runtime.block_on(Exporter::start(addr, SessionInfo::new(&tracer.kernel.release, &tracer.attach)))?;
        // The terminal belongs to the dashboard; the address goes to the log.
        log::info!("serving metrics at http://{}/metrics", exporter.local_addr());
        Ok(Metrics { exporter, _runtime: runtime })
    }
}

/// The workload child, killed when dropped.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct LiveSource {
    model: SharedModel,
    inventory: Arc<Mutex<InventorySlot>>,
    feed_error: Arc<Mutex<Option<String>>>,
}

impl Source for LiveSource {
    fn snapshot(&mut self) -> Snapshot {
        let mut s = self.model.snapshot(Some(monotonic_ns()));
        if let Ok(slot) = self.inventory.lock() {
            s.inventory = match (&slot.walk, &slot.error) {
                (_, Some(e)) => Inventory::Failed(e.clone()),
                (Some(walk), None) => Inventory::Read {
                    mms: Arc::clone(&walk.mms),
                    stuck: Arc::clone(&walk.stuck),
                    age_ns: walk.at.elapsed().as_nanos() as u64,
                },
                (None, None) => Inventory::NotReadYet,
            };
        }
        s.error = self.feed_error.lock().ok().and_then(|e| e.clone());
        s
    }

    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Reset => {
                self.model.lock().reset();
                true
            }
            // Pause freezes the display; stepping and speed are replay controls.
            Command::TogglePause | Command::Step | Command::Faster | Command::Slower | Command::Quit => false,
        }
    }
}

/// Traces live and shows the dashboard until the person quits (or SIGTERM), serving metrics at
/// `metrics` if given; then prints the session's summary and verdict lines like the text
/// stream does.
pub fn run(log_file: Option<&Path>, metrics: Option<SocketAddr>) -> Result<u8> {
    let (log_path, log) = logfile::open(log_file)?;
    let workload_log = log.try_clone().context("--log-file: duplicating the log file handle")?;
    logfile::install(log);
    let mut tracer = Tracer::start(&TracerOptions::default())?;
    let header = header(&tracer.kernel.release, &tracer.attach);
    log::info!("kernel {}: {}", tracer.kernel.release, tracer.attach.summary());
    let metrics = metrics.map(|addr| Metrics::serve(addr, &tracer)).transpose()?;
    // The inventory thread loads an object of its own: the tracer's is busy on the ingest thread.
    let kernel = tracer.kernel.clone();
    let model = SharedModel::new(Model::new(&header, "live", Some(monotonic_ns())));
    let stop = Arc::new(AtomicBool::new(false));
    let feed_error = Arc::new(Mutex::new(None));

    super::terminal::watch_panics();
    let ingest: JoinHandle<Result<SessionTotals>> = {
        let (model, stop, feed_error) = (model.clone(), Arc::clone(&stop), Arc::clone(&feed_error));
        let mut recorder = metrics.as_ref().map(|m| m.exporter.recorder());
        thread::Builder::new().name("ingest".into()).spawn(move || {
            let result = (|| {
                let filter = EventFilter::default();
                // The screen belongs to the dashboard: probe outcomes go to the log file.
                let probed = |p: &CallbackProbe| match p.error {
                    None => log::info!("{}", p.describe()),
                    Some(_) => log::warn!("{}", p.describe()),
                };
                let sink = |d: Delivery<'_>| match d {
                    Delivery::Event(e) => {
                        model.push(e);
                        if let Some(r) = &mut recorder {
                            r.observe(e);
                        }
                    }
                    Delivery::Drained(totals) => {
                        if let Some(r) = &mut recorder
                            && let Some(checker) = model.lock().checker()
                        {
                            r.publish(checker, totals);
                        }
                    }
                };
                Ok(session::trace(&mut tracer, &filter, &stop, None, sink, probed)?)
            })();
            if let Err(e) = &result {
                log::error!("tracing stopped: {e:#}");
                if let Ok(mut slot) = feed_error.lock() {
                    *slot = Some(format!("tracing stopped: {e:#}"));
                }
            }
            result
        })?
    };
    let inventory = Arc::new(Mutex::new(InventorySlot::default()));
    let inventory_poller = {
        let slot = Arc::clone(&inventory);
        let feed = metrics.as_ref().map(|m| m.exporter.inventory_feed());
        InventoryPoller::spawn("inventory", kernel, move |walk| {
            if let Some(feed) = &feed {
                feed.record(&walk);
            }
            if let Ok(mut slot) = slot.lock() {
                slot.store(walk);
            }
        })?
    };
    // Every step but vm_close, so each round's VM stays open during the hold and the
    // inventory finds it subscribed.
    let steps = "madvise_dontneed,madvise_free,mprotect,mremap_dontunmap,munmap,fork";
    let workload = workload::command(&["--steps", steps, "--repeat", "0", "--hold-ms", "500"])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(workload_log))
        .spawn()
        .map(Workload)
        .context("starting the built-in workload");

    let shown = match &workload {
        Ok(_) => {
            let mut source = LiveSource { model: model.clone(), inventory, feed_error };
            event_loop::show(&mut source)
        }
        Err(_) => Ok(()),
    };
    // The terminal is restored here (the guard is gone); from now on stderr is safe to use.
    stop.store(true, Ordering::Relaxed);
    // Dropping the child kills it.
    let workload_started = workload.map(drop);
    let totals = ingest.join().map_err(|_| crate::exit::ThreadPanicked("ingest"))?;
    drop(inventory_poller);
    drop(metrics);
    workload_started?;
    shown?;
    let totals = totals?;
    let report = model.lock().finish();
    eprintln!("mmnotif-trace: {}", totals.summary());
    if let Some(report) = report {
        eprintln!("mmnotif-trace: {}", report_line(&report));
    }
    eprintln!("mmnotif-trace: log in {}", log_path.display());
    Ok(0)
}

/// Whether the dashboard can run: it draws on stdout and reads keys from stdin. Otherwise
/// (piped, redirected) `main` falls back to the text stream.
pub fn interactive_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}
