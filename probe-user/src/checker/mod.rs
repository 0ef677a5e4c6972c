//! The checker: a pure state machine from trace events to violations and statistics.
//!
//! It does no I/O and reads no clock, so a live session and a replay of its recording give
//! the same results. Feed events with [`Checker::push`], end with [`Checker::finish`].
mod engine;
pub mod hints;
pub mod histogram;
pub mod itree_leak;
pub mod report;
pub mod rules;
#[cfg(test)]
mod schema;
mod state;
pub mod stats;
mod wording;

use std::{fs::File, io::BufRead, io::BufReader, path::Path};

pub use crate::kernel_facts::KernelVersion;
pub use engine::{Checker, MAX_STORED_VIOLATIONS, OpenRange, SETTLE_NS, StateSizes};
pub use hints::KernelInfo;
pub use histogram::{DurationSummary, LogHistogram};
pub use report::{RangeRef, Report, TaskRef, Verdict, Violation};
pub use rules::{NotChecked, RULES, Rule, RuleId, RuleSet, Severity};
pub use stats::{NotifierKind, Statistics, StatsSummary};

use crate::trace::{TraceError, TraceErrorKind, TraceReader};

/// Checks a whole recorded trace. Stops at the first malformed line.
pub fn replay<R: BufRead>(input: R) -> Result<Report, TraceError> {
    replay_reader(TraceReader::new(input)?)
}

/// Like [`replay`], with `path` named in error messages.
pub fn replay_file(path: impl AsRef<Path>) -> Result<Report, TraceError> {
    replay_reader(open_trace(path)?)
}

/// Opens a trace file and reads its header; errors name `path`.
pub fn open_trace(path: impl AsRef<Path>) -> Result<TraceReader<BufReader<File>>, TraceError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| TraceError::new(0, TraceErrorKind::Io(e)).with_path(path))?;
    let reader = TraceReader::new(BufReader::with_capacity(1 << 16, file)).map_err(|e| e.with_path(path))?;
    Ok(reader.with_path(path))
}

/// Checks every event of an opened reader.
pub fn replay_reader<R: BufRead>(reader: TraceReader<R>) -> Result<Report, TraceError> {
    let mut checker = Checker::new(reader.header());
    for event in reader {
        checker.push(&event?);
    }
    Ok(checker.finish())
}
