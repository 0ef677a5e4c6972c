//! The Prometheus exporter of live sessions (`--metrics [ADDR]`): metric families derived
//! from the checker's statistics and violations, the session totals (lost events by cause)
//! and the notifier inventory, served as text format 0.0.4 at `http://ADDR/metrics`.
//!
//! The session thread owns the checker; it hands each event to a [`Recorder`] and publishes
//! a snapshot after each ring-buffer drain (at most every 100 ms). Scrapes read the latest
//! snapshot, so a slow scraper never delays tracing.

mod addr;
mod collector;
pub mod families;
mod http;
pub mod inventory;
pub mod labels;
mod recorder;
pub mod snapshot;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use prometheus::{Encoder, Registry, TextEncoder};
use thiserror::Error;

use crate::{
    inventory::{InventoryPoller, InventoryWalk, WalkError},
    loader::KernelContext,
};

pub use addr::{DEFAULT_ADDR, DEFAULT_PORT, parse_metrics_addr};
pub use collector::{SnapshotCollector, encode};
pub use inventory::{InventoryFeed, InventorySnapshot};
pub use recorder::{PUBLISH_INTERVAL, Recorder};
pub use snapshot::{EventBreakdown, SessionInfo, SessionSnapshot};

/// The content type of what `/metrics` serves.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot serve metrics on {addr} (--metrics): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("metric registry: {0}")]
    Registry(#[source] prometheus::Error),
    #[error("encoding metrics: {0}")]
    Encode(#[source] prometheus::Error),
    #[error("starting the metrics inventory thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the session thread and the inventory thread publish and scrapes read.
#[derive(Default)]
pub struct Shared {
    info: Mutex<SessionInfo>,
    session: Mutex<SessionSnapshot>,
    inventory: Mutex<InventorySnapshot>,
}

/// A poisoned lock only means a publisher panicked mid-update of plain data; serve it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(info: SessionInfo) -> Shared {
        Shared { info: Mutex::new(info), ..Shared::default() }
    }

    pub fn set_session(&self, snapshot: SessionSnapshot) {
        *lock(&self.session) = snapshot;
    }

    pub fn update_inventory(&self, update: impl FnOnce(&mut InventorySnapshot)) {
        update(&mut lock(&self.inventory));
    }

    /// Copies, so no lock is held while a scrape is encoded.
    pub fn read(&self) -> (SessionInfo, SessionSnapshot, InventorySnapshot) {
        (lock(&self.info).clone(), lock(&self.session).clone(), lock(&self.inventory).clone())
    }
}

/// A registry holding the exporter's one collector over `shared`.
pub fn registry(shared: Arc<Shared>) -> Result<Registry, MetricsError> {
    let registry = Registry::new();
    let collector = SnapshotCollector::new(shared).map_err(MetricsError::Registry)?;
    registry.register(Box::new(collector)).map_err(MetricsError::Registry)?;
    Ok(registry)
}

/// The exposition text of everything `registry` holds.
pub fn render(registry: &Registry) -> Result<String, MetricsError> {
    let mut out = Vec::with_capacity(16 << 10);
    TextEncoder::new().encode(&registry.gather(), &mut out).map_err(MetricsError::Encode)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A running exporter: the HTTP server and, if asked for, the inventory thread. Dropping it
/// stops both.
pub struct Exporter {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    inventory: Option<InventoryPoller>,
}

impl Exporter {
    /// Binds `addr` and serves `/metrics` on the current tokio runtime.
    pub async fn start(addr: SocketAddr, info: SessionInfo) -> Result<Exporter, MetricsError> {
        let shared = Arc::new(Shared::new(info));
        let registry = registry(shared.clone())?;
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
        let server = tokio::spawn(http::serve(listener, registry));
        Ok(Exporter { shared, local_addr, server, inventory: None })
    }

    /// Also refresh the per-mm inventory gauges every [`crate::inventory::REFRESH_INTERVAL`],
    /// with an iterator loaded for `kernel`; the first failure is said on stderr.
    pub fn with_inventory(mut self, kernel: KernelContext) -> Result<Exporter, MetricsError> {
        let feed = self.inventory_feed();
        let mut reported = false;
        let report = move |walk: Result<InventoryWalk, &WalkError>| {
            feed.record(&walk);
            // Said once; the failure counter shows whether it goes on.
            if let Err(e) = walk
                && !reported
            {
                eprintln!("mmnotif-trace: metrics: cannot read the inventory for the per-mm gauges: {e}");
                reported = true;
            }
        };
        self.inventory =
            Some(InventoryPoller::spawn("metrics-inventory", kernel, report).map_err(MetricsError::Thread)?);
        Ok(self)
    }

    /// For a view that walks the inventory itself (the dashboard): where its walks go.
    pub fn inventory_feed(&self) -> InventoryFeed {
        InventoryFeed(self.shared.clone())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The session thread's handle.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.shared.clone())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}
