//! Walks the inventory again and again on a thread of its own, for the live views that show
//! it (the dashboard's inventory pane, the metrics' per-mm gauges): the ring buffer's drain
//! never waits for a walk.

use std::{sync::mpsc, thread::JoinHandle, time::Duration};

use super::{InventoryWalk, InventoryWalker, WalkError};
use crate::object::KernelContext;

/// How often the live views read the inventory again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The walking thread; dropping this stops it (after the walk in progress, if any).
pub struct InventoryPoller {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InventoryPoller {
    /// Loads the iterator for `kernel` on a new thread called `name`, then walks at once and
    /// every [`REFRESH_INTERVAL`], handing each outcome to `report`. When the iterator cannot be
    /// loaded, every round reports that error, so a view's failure count keeps counting.
    pub fn spawn(
        name: &str,
        kernel: KernelContext,
        mut report: impl FnMut(Result<InventoryWalk, &WalkError>) + Send + 'static,
    ) -> std::io::Result<InventoryPoller> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let mut walker = InventoryWalker::open(kernel).map_err(WalkError::from);
            loop {
                match &mut walker {
                    Ok(w) => match w.walk_all() {
                        Ok(walk) => report(Ok(walk)),
                        Err(e) => report(Err(&e)),
                    },
                    Err(e) => report(Err(e)),
                }
                // Dropping the poller closes the channel, which ends the wait at once.
                if stopped.recv_timeout(REFRESH_INTERVAL) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
            }
        })?;
        Ok(InventoryPoller { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for InventoryPoller {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
