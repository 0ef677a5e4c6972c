//! The dashboard over the live tracer: the session drains the ring buffer on its own thread
//! into the shared model, the iterator audit refreshes the inventory every few seconds, and
//! the built-in workload provides traffic.

use std::{
    path::Path,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    event_loop::{self, Source},
    logfile,
    model::Model,
    shared::SharedModel,
    snapshot::{Inventory, Snapshot},
    terminal::TerminalGuard,
    ui::Command,
};
use crate::{
    cmd::{
        live::{header, report_line},
        workload_command,
    },
    filter::EventFilter,
    inventory::{self, MmInventory},
    loader::{CallbackProbe, KernelContext, Tracer, TracerOptions, load_object},
    session::{self, SessionTotals},
    workload::monotonic_ns,
};

/// How often the inventory is read again.
pub const INVENTORY_INTERVAL: Duration = Duration::from_secs(2);

/// The last inventory read, or why there is none.
#[derive(Default)]
struct InventorySlot {
    mms: Option<(Arc<Vec<MmInventory>>, Instant)>,
    error: Option<String>,
}

/// Reads the inventory until `stop`, with its own copy of the eBPF object (the tracer's is
/// busy on the ingest thread).
fn read_inventory(slot: &Mutex<InventorySlot>, stop: &AtomicBool) {
    let set_error = |e: String| {
        log::warn!("inventory: {e}");
        if let Ok(mut s) = slot.lock() {
            s.error = Some(e);
        }
    };
    let kernel = match KernelContext::discover() {
        Ok(k) => k,
        Err(e) => return set_error(e.to_string()),
    };
    // The ring buffer of this copy is never used: the smallest size the kernel takes.
    let mut ebpf = match load_object(&kernel, &TracerOptions { ring_bytes: 4096, wakeup_bytes: 4096, ..TracerOptions::default() }) {
        Ok(o) => o,
        Err(e) => return set_error(e.to_string()),
    };
    while !stop.load(Ordering::Relaxed) {
        let read = inventory::run_iterator(&mut ebpf)
            .map_err(|e| e.to_string())
            .and_then(|bytes| inventory::decode(&bytes, &kernel.kallsyms, &kernel.offsets).map_err(|e| e.to_string()));
        match read {
            Ok(mms) => {
                if let Ok(mut s) = slot.lock() {
                    *s = InventorySlot { mms: Some((Arc::new(mms), Instant::now())), error: None };
                }
            }
            Err(e) => set_error(e),
        }
        let next = Instant::now() + INVENTORY_INTERVAL;
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            thread::sleep(Duration::from_millis(50));
        }
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
            s.inventory = match (&slot.mms, &slot.error) {
                (_, Some(e)) => Inventory::Failed(e.clone()),
                (Some((mms, at)), None) => Inventory::Read { mms: Arc::clone(mms), age_ns: at.elapsed().as_nanos() as u64 },
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

/// Traces live and shows the dashboard until the person quits (or SIGTERM); then prints the
/// session's summary and verdict lines like the text stream does.
pub fn run(log_file: Option<&Path>) -> Result<u8> {
    let (log_path, log) = logfile::open(log_file)?;
    let workload_log = log.try_clone().context("--log-file: duplicating the log file handle")?;
    logfile::install(log);
    let mut tracer = Tracer::start(&TracerOptions::default())?;
    let header = header(&tracer.kernel.release, &tracer.attach);
    log::info!("kernel {}: {}", tracer.kernel.release, tracer.attach.summary());
    let model = SharedModel::new(Model::new(&header, "live", Some(monotonic_ns())));
    let stop = Arc::new(AtomicBool::new(false));
    let feed_error = Arc::new(Mutex::new(None));

    let ingest: JoinHandle<Result<SessionTotals>> = {
        let (model, stop, feed_error) = (model.clone(), Arc::clone(&stop), Arc::clone(&feed_error));
        thread::Builder::new().name("ingest".into()).spawn(move || {
            let result = (|| {
                let filter = EventFilter::default();
                // The screen belongs to the dashboard: probe outcomes go to the log file.
                let probed = |p: &CallbackProbe| match p.error {
                    None => log::info!("{}", p.describe()),
                    Some(_) => log::warn!("{}", p.describe()),
                };
                Ok(session::trace(&mut tracer, &filter, &stop, None, |e| model.push(e), probed)?)
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
    let inventory_thread = {
        let (slot, stop) = (Arc::clone(&inventory), Arc::clone(&stop));
        thread::Builder::new().name("inventory".into()).spawn(move || read_inventory(&slot, &stop))?
    };
    // Every step but vm_close, so each round's VM stays open during the hold and the
    // inventory finds it subscribed.
    let steps = "madvise_dontneed,madvise_free,mprotect,mremap_dontunmap,munmap,fork";
    let workload = workload_command(&["--steps", steps, "--repeat", "0", "--hold-ms", "500"])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(workload_log))
        .spawn()
        .map(Workload)
        .context("starting the built-in workload");

    let shown = match &workload {
        Ok(_) => {
            let mut source = LiveSource { model: model.clone(), inventory, feed_error };
            TerminalGuard::enter()
                .context("setting up the terminal")
                .and_then(|mut term| Ok(event_loop::run(term.terminal(), &mut source)?))
        }
        Err(_) => Ok(()),
    };
    // The terminal is restored here (the guard is gone); from now on stderr is safe to use.
    stop.store(true, Ordering::Relaxed);
    // Dropping the child kills it.
    let workload_started = workload.map(drop);
    let totals = ingest.join().map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?;
    let _ = inventory_thread.join();
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
