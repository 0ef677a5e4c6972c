//! The eBPF object and what loading it takes: the running kernel's facts ([`KernelContext`]),
//! the options baked into it ([`TracerOptions`]) and [`LoadError`]. The loader, which attaches
//! the object's programs, and the inventory, which loads an object of its own for the
//! iterator, both stand on this; it needs neither.

use aya::{Btf as AyaBtf, Ebpf, EbpfLoader};
use probe_common::{DEFAULT_RING_BYTES, KernelOffsets, ProbeConfig};
use serde::Serialize;
use std::sync::Arc;
use thiserror::Error;

use crate::{
    btf::{self, LoadBtfError},
    kallsyms::{Kallsyms, KallsymsError},
};

/// The eBPF object built by build.rs (empty when built with AYA_BUILD_SKIP=1).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe-ebpf"));

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("mmnotif-trace must run as root to load BPF programs (try: sudo mmnotif-trace ...)")]
    NotRoot,
    #[error(transparent)]
    Btf(#[from] LoadBtfError),
    #[error(transparent)]
    Kallsyms(#[from] KallsymsError),
    #[error("this binary was built without its eBPF object (AYA_BUILD_SKIP was set); rebuild without it")]
    NoObject,
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("no hook could be attached on this kernel: {0}")]
    NothingAttached(String),
    #[error("{0}")]
    Other(String),
}

/// What a tracing session needs from the command line.
#[derive(Clone, Debug)]
pub struct TracerOptions {
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_bytes: u32,
    /// Pending bytes that trigger an early wakeup of the reader.
    pub wakeup_bytes: u64,
    /// Which method function hooks may use.
    pub attach: AttachChoice,
    /// Which method tracepoint hooks may use.
    pub tracepoints: TracepointChoice,
    /// Capture kernel stacks of outer starts and ends.
    pub stacks: bool,
    /// Run the probes but emit nothing (see `stream --count-only`).
    pub count_only: bool,
}

impl Default for TracerOptions {
    fn default() -> Self {
        TracerOptions {
            ring_bytes: DEFAULT_RING_BYTES,
            wakeup_bytes: 256 << 10,
            attach: AttachChoice::Auto,
            tracepoints: TracepointChoice::Auto,
            // Off unless asked for (`--stacks`): their cost is not small (README, benchmarks).
            stacks: false,
            count_only: false,
        }
    }
}

/// Facts about the running kernel that every later step uses. Cloned for the threads that
/// load an object of their own (the inventory), so the kernel's BTF is parsed once.
#[derive(Clone)]
pub struct KernelContext {
    pub offsets: KernelOffsets,
    pub kallsyms: Kallsyms,
    pub release: String,
    /// aya's reading of the kernel's BTF while held (see [`KernelContext::hold_btf`]).
    aya_btf: Option<Arc<AyaBtf>>,
}

pub fn require_root() -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 { Err(LoadError::NotRoot) } else { Ok(()) }
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl KernelContext {
    /// aya's reading of the kernel's BTF for verifying BTF-typed programs (fentry, tp_btf,
    /// iterators): the held one, or read now; `None` where the kernel has none to give.
    pub(crate) fn aya_btf(&self) -> Option<Arc<AyaBtf>> {
        self.aya_btf.clone().or_else(|| AyaBtf::from_sys_fs().ok().map(Arc::new))
    }

    /// Reads aya's BTF once for the loads that follow (every hook, the iterator), instead of
    /// once per load: the blob is megabytes, and in an emulated guest each reading costs a
    /// noticeable part of the start-up.
    pub fn hold_btf(&mut self) {
        self.aya_btf = self.aya_btf();
    }

    /// Drops the held BTF once the start-up's loads are done: a tracer runs for hours, and the
    /// few later loads (an inventory walk's) read it again.
    pub fn release_btf(&mut self) {
        self.aya_btf = None;
    }

    pub fn discover() -> Result<KernelContext, LoadError> {
        let kernel_btf = btf::load_kernel_btf()?;
        let kallsyms = Kallsyms::load()?;
        let (vmlinux, kvm_module) = (kernel_btf.vmlinux(), kernel_btf.kvm_module());
        let mut offsets = btf::kernel_offsets(vmlinux, kvm_module.or(Some(vmlinux))).map_err(LoadBtfError::from)?;
        offsets.kvm_start_callback = kallsyms.address_of("kvm_mmu_notifier_invalidate_range_start").unwrap_or(0);
        Ok(KernelContext { offsets, kallsyms, release: kernel_release(), aya_btf: None })
    }
}

/// Loads the object with offsets and config baked in; attaches nothing yet.
pub fn load_object(ctx: &KernelContext, opts: &TracerOptions) -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    let config =
        ProbeConfig { wakeup_bytes: opts.wakeup_bytes, stacks: opts.stacks as u32, count_only: opts.count_only as u32 };
    // aya's loader reads the kernel's BTF for its relocations itself, as it is constructed, so
    // a held copy would only add a second one alive at once.
    let ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &ctx.offsets, true)
        .override_global("CONFIG", &config, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .map_max_entries("COUNTERS", probe_common::counter::COUNT * counter_rows()?)
        .load(EBPF_OBJECT)?;
    Ok(ebpf)
}

/// What the loader may use, from the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachChoice {
    // fentry/fexit where the kernel allows it, kprobes otherwise (the CLI help says so; doc
    // comments here would turn into a long per-value list there).
    #[default]
    Auto,
    Fentry,
    Kprobe,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TracepointChoice {
    #[default]
    Auto,
    TpBtf,
    Raw,
}

/// An error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How many CPU rows the counters need: one per possible CPU id (the highest in
/// `/sys/devices/system/cpu/possible`, plus one).
pub(crate) fn counter_rows() -> Result<u32, LoadError> {
    const POSSIBLE: &str = "/sys/devices/system/cpu/possible";
    let text = std::fs::read_to_string(POSSIBLE).map_err(|e| LoadError::Other(format!("{POSSIBLE}: {e}")))?;
    rows_for_possible(&text).ok_or_else(|| LoadError::Other(format!("{POSSIBLE}: no CPU list in {:?}", text.trim())))
}

/// "0-3,8-11" -> 12.
fn rows_for_possible(list: &str) -> Option<u32> {
    let last = list.trim().rsplit(',').next()?;
    let highest = last.rsplit('-').next()?.trim().parse::<u32>().ok()?;
    highest.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rows_cover_the_highest_possible_cpu() {
        assert_eq!(rows_for_possible("0-1\n"), Some(2));
        assert_eq!(rows_for_possible("0"), Some(1));
        assert_eq!(rows_for_possible("0-3,8-11"), Some(12));
        assert_eq!(rows_for_possible(""), None);
        assert_eq!(rows_for_possible("garbage"), None);
    }
}
