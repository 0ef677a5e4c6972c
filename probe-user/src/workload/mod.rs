//! The built-in workload: a KVM VM in this process, then one named, timed step per kind of
//! page-table change, each reporting the exact invalidation ranges it must cause.
//!
//! It runs in its own (single-threaded) process so the tracer can tell its events apart by pid.

mod memory;
mod steps;

use anyhow::Context;
use serde::Serialize;
use thiserror::Error;

pub(crate) use steps::{STEPS, Step, hammer};

use crate::{kvm, trace::Addr};

#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Kvm(#[from] kvm::KvmError),
    #[error("step {step}: {what} failed: {err}")]
    Sys { step: &'static str, what: &'static str, err: std::io::Error },
    #[error("unknown workload step {0:?} (known: {1})")]
    UnknownStep(String, String),
}

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct Span {
    pub start: Addr,
    pub end: Addr,
}

impl Span {
    pub(crate) fn new(start: u64, end: u64) -> Span {
        Span { start: Addr(start), end: Addr(end) }
    }
}

/// What one step did and what the tracer must have seen for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct StepReport {
    pub step: &'static str,
    pub pid: u32,
    /// CLOCK_MONOTONIC ns around the step (the clock BPF timestamps use).
    pub t0: u64,
    pub t1: u64,
    /// Invalidations that must be observed, each exactly once.
    pub expected: Vec<Span>,
    /// Invalidations that may be observed in addition (see the step's note).
    pub possible: Vec<Span>,
    /// Copy-on-write faults: single-page invalidations inside these ranges may follow (fork
    /// write-protects the parent's private pages; its next write to one breaks the sharing).
    pub cow_within: Vec<Span>,
    pub note: &'static str,
}

/// This binary's `workload` subcommand with `args`, not started yet.
pub(crate) fn command(args: &[&str]) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("locating the mmnotif-trace binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("workload").args(args);
    Ok(cmd)
}

/// Parses a comma-separated step list ("all" or names from [`STEPS`]).
pub(crate) fn parse_steps(list: &str) -> Result<Vec<Step>, WorkloadError> {
    if list == "all" {
        return Ok(STEPS.to_vec());
    }
    list.split(',')
        .map(|name| {
            STEPS.iter().copied().find(|s| s.name() == name.trim()).ok_or_else(|| {
                WorkloadError::UnknownStep(
                    name.to_string(),
                    STEPS.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
                )
            })
        })
        .collect()
}

/// Creates the VM and runs `steps` in order, handing each report to `report` as it completes;
/// then keeps the VM (unless a step closed it) for `linger` before tearing everything down.
pub(crate) fn run(
    steps: &[Step],
    linger: std::time::Duration,
    mut report: impl FnMut(&StepReport),
) -> Result<(), WorkloadError> {
    let mut ctx = steps::Context::new()?;
    for step in steps {
        let r = ctx.run(*step)?;
        report(&r);
    }
    std::thread::sleep(linger);
    Ok(())
}
