//! Loads the eBPF object with this kernel's offsets, attaches every hook the kernel allows,
//! and says which method each hook got.

pub mod attach;
pub mod callbacks;
mod capabilities;
mod collector;
mod hooks;

pub use attach::{AttachReport, HookStatus, Method, Refusal};
pub use callbacks::{CallbackAttacher, CallbackProbe, Discovered, Probed};
pub use capabilities::{Capabilities, Check, probe_capabilities};
pub use collector::{Collector, Counters};
pub use hooks::{AttachChoice, TracepointChoice, error_chain};

use aya::{Ebpf, EbpfLoader};
use probe_common::{DEFAULT_RING_BYTES, KernelOffsets, ProbeConfig};
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
}

impl Default for TracerOptions {
    fn default() -> Self {
        TracerOptions {
            ring_bytes: DEFAULT_RING_BYTES,
            wakeup_bytes: 256 << 10,
            attach: AttachChoice::Auto,
            tracepoints: TracepointChoice::Auto,
            stacks: true,
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
    pub fn discover() -> Result<KernelContext, LoadError> {
        let (vmlinux, kvm_module) = btf::load_kernel_btf()?;
        let kallsyms = Kallsyms::load()?;
        let kvm_btf = kvm_module.as_ref().or(Some(&vmlinux));
        let mut offsets = btf::kernel_offsets(&vmlinux, kvm_btf).map_err(LoadBtfError::from)?;
        offsets.kvm_start_callback = kallsyms.address_of("kvm_mmu_notifier_invalidate_range_start").unwrap_or(0);
        Ok(KernelContext { offsets, kallsyms, release: kernel_release() })
    }
}

/// Loads the object with offsets and config baked in; attaches nothing yet.
pub fn load_object(ctx: &KernelContext, opts: &TracerOptions) -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    let config = ProbeConfig { wakeup_bytes: opts.wakeup_bytes, stacks: opts.stacks as u32, _pad: 0 };
    let ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &ctx.offsets, true)
        .override_global("CONFIG", &config, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(EBPF_OBJECT)?;
    Ok(ebpf)
}

/// A loaded, attached tracer.
pub struct Tracer {
    pub ebpf: Ebpf,
    pub attach: AttachReport,
    pub kernel: KernelContext,
    /// Subscriber callbacks probed so far (grows while tracing).
    pub callbacks: CallbackAttacher,
    /// The `probes_live` event for the callbacks probed at start, which a session delivers
    /// before any kernel record (`None` when callbacks are not probed on this kernel).
    pub startup_probes: Option<crate::trace::Event>,
}

impl Tracer {
    pub fn start(opts: &TracerOptions) -> Result<Tracer, LoadError> {
        require_root()?;
        let kernel = KernelContext::discover()?;
        let mut ebpf = load_object(&kernel, opts)?;
        let attach = hooks::attach_all(&mut ebpf, &kernel.kallsyms, opts.attach, opts.tracepoints)?;
        if attach.hooks.iter().all(|h| h.method.is_none()) {
            return Err(LoadError::NothingAttached(attach.summary()));
        }
        let callbacks_enabled =
            hooks::CALLBACK_HOOKS.iter().any(|(h, _)| attach.get(h).is_some_and(|s| s.method.is_some()));
        let mut callbacks = CallbackAttacher::new(callbacks_enabled);
        let mut startup_probes = None;
        if callbacks_enabled {
            // Subscribers registered before we started: take them from the inventory.
            let mms = crate::inventory::run_iterator(&mut ebpf).and_then(|bytes| {
                crate::inventory::decode(&bytes, &kernel.kallsyms, &kernel.offsets)
                    .map_err(|e| LoadError::Other(format!("inventory: {e}")))
            })?;
            // Reported with every later probe, by the session (see `session::trace`). The outer
            // hooks are already attached, so ranges that began before the seeded callbacks were
            // probed are excluded from their pairing like those of a later registration.
            startup_probes = callbacks.seed(&mut ebpf, &kernel.kallsyms, &mms);
        }
        Ok(Tracer { ebpf, attach, kernel, callbacks, startup_probes })
    }

    /// Takes the ring buffer and counters out of the object for a [`Collector`].
    pub fn collector(&mut self) -> Result<Collector, LoadError> {
        Collector::new(&mut self.ebpf)
    }
}
