//! The live dashboard (`mmnotif-trace` on a terminal, `replay FILE --tui`).
//!
//! - [`model`]: the state, fed events one at a time (checker + what the panes need); pure.
//! - [`view`] + [`ui`]: drawing a [`Snapshot`] and what keys change; pure.
//! - [`event_loop`] and [`terminal`]: the terminal and the redraw loop.
//! - [`live`] and [`replay`]: the data sources, each ingesting on its own thread so that
//!   drawing (10 times a second) never slows the ring buffer's drain.
pub mod event_loop;
pub mod history;
pub mod live;
pub mod logfile;
pub mod model;
pub mod recent;
pub mod replay;
pub mod rows;
pub mod shared;
pub mod snapshot;
pub mod terminal;
pub mod ui;
pub mod view;

pub use model::Model;
pub use shared::SharedModel;
pub use snapshot::Snapshot;
pub use ui::{Command, Pane, Ui};
