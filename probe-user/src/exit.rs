//! Exit statuses (documented in `--help`): each environment problem has its own.

use crate::{btf::LoadBtfError, kvm::KvmError, loader::LoadError, workload::WorkloadError};

pub const FAILED: u8 = 1;
/// Bad command line (clap uses it too), or `check`'s command could not be started.
pub const USAGE: u8 = 2;
/// `check`: the start/end pair cannot be observed on this kernel, so nothing about pairing
/// was asserted (kselftest's skip status).
pub const SKIP: u8 = 4;
/// `check`: events were lost, so the verdict is incomplete (unless `--allow-lost`).
pub const INCOMPLETE: u8 = 5;
pub const NOT_ROOT: u8 = 10;
pub const NO_BTF: u8 = 11;
pub const NO_KVM: u8 = 12;
pub const BPF: u8 = 13;
pub const NO_OBJECT: u8 = 14;
pub const BAD_INPUT: u8 = 15;
/// A panic: Rust's own status for one on the main thread, and ours for one on a worker thread.
pub const PANIC: u8 = 101;

/// A command line problem found after parsing (exit status 2), e.g. `check`'s command could
/// not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A worker thread panicked (its message was already printed by the panic hook).
#[derive(Debug, thiserror::Error)]
#[error("the {0} thread panicked")]
pub struct ThreadPanicked(pub &'static str);

pub fn for_load_error(e: &LoadError) -> u8 {
    match e {
        LoadError::NotRoot => NOT_ROOT,
        LoadError::Btf(LoadBtfError::Read(..)) => NO_BTF,
        LoadError::NoObject => NO_OBJECT,
        _ => BPF,
    }
}

pub fn for_workload_error(e: &WorkloadError) -> u8 {
    match e {
        WorkloadError::Kvm(KvmError::Open(_)) => NO_KVM,
        _ => FAILED,
    }
}

/// Maps an error from anywhere to its status by looking for the known error types in the chain.
pub fn for_error(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(le) = cause.downcast_ref::<LoadError>() {
            return for_load_error(le);
        }
        if let Some(we) = cause.downcast_ref::<WorkloadError>() {
            return for_workload_error(we);
        }
        if let Some(KvmError::Open(_)) = cause.downcast_ref::<KvmError>() {
            return NO_KVM;
        }
        if cause.downcast_ref::<crate::trace::TraceError>().is_some() {
            return BAD_INPUT;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return USAGE;
        }
        if cause.downcast_ref::<ThreadPanicked>().is_some() {
            return PANIC;
        }
    }
    FAILED
}
