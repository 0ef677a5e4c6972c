//! `mmnotif-trace check`: a verdict a CI system understands, for a command run under the tracer
//! or for a recorded trace. The checker's report is judged against the policy (`--allow`,
//! `--fail-on`, `--allow-lost`) and the command's run ([`judge`], [`outcome`]), then written as
//! KTAP v1, JUnit XML and JSON (one file per format, each a pure function of the
//! [`CheckOutcome`]).
pub mod command;
pub mod fork_watch;
pub mod json;
pub mod judge;
pub mod junit;
pub mod ktap;
pub mod outcome;
pub mod pid_tree;
pub mod policy;
pub mod text;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use command::{CommandEnd, CommandResult};
pub use outcome::{CheckOutcome, Disposition, LiveRun, RuleVerdict, Source, Status, evaluate};
pub use policy::{Allow, Policy};

use crate::{checker, trace::TraceError};

/// Judges a recorded trace (`check --replay`).
pub fn check_trace(path: &Path, policy: &Policy) -> Result<CheckOutcome, TraceError> {
    let reader = checker::open_trace(path)?;
    let header = reader.header().clone();
    let report = checker::replay_reader(reader)?;
    Ok(evaluate(report, &header, policy, Source::Replay(path.to_owned())))
}
