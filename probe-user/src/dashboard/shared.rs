//! The model shared between the thread that ingests events and the thread that draws.
//! Ingestion takes the lock per event (uncontended, tens of nanoseconds); the UI takes it
//! ten times a second only to copy a [`Snapshot`], and draws without it.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{model::Model, snapshot::Snapshot};
use crate::trace::Event;

#[derive(Clone)]
pub struct SharedModel(Arc<Mutex<Model>>);

impl SharedModel {
    pub fn new(model: Model) -> SharedModel {
        SharedModel(Arc::new(Mutex::new(model)))
    }

    /// A panic while holding the lock leaves a model that is still consistent enough to
    /// draw (every update is a few counter bumps), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Model> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn push(&self, event: &Event) {
        self.lock().ingest(event);
    }

    /// The frame's data; `now` (trace time) advances the clock first in live mode.
    pub fn snapshot(&self, now: Option<u64>) -> Snapshot {
        let mut model = self.lock();
        if let Some(now) = now {
            model.advance_clock(now);
        }
        model.snapshot()
    }
}
