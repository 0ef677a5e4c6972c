//! Loads the eBPF object with this kernel's offsets (see [`crate::object`], re-exported here),
//! attaches every hook the kernel allows, and says which method each hook got.

pub mod attach;
pub mod callbacks;
mod capabilities;
mod collector;
mod hook_table;
mod hooks;
mod misses;
mod quiesce;
mod startup;

pub use crate::object::{
    AttachChoice, KernelContext, LoadError, TracepointChoice, TracerOptions, error_chain, kernel_release, load_object,
    require_root,
};
pub use attach::{AttachReport, HookStatus, Method, Refusal};
pub use callbacks::{CallbackAttacher, CallbackProbe, Discovered, Probed};
pub use capabilities::{Capabilities, Check, probe_capabilities};
pub use collector::{Collector, Counters, Incomplete};
pub use quiesce::detach_event_programs;
pub use startup::StartupTimings;

use aya::Ebpf;

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
    /// Where the start-up's time went.
    pub startup: StartupTimings,
}

impl Tracer {
    pub fn start(opts: &TracerOptions) -> Result<Tracer, LoadError> {
        require_root()?;
        let mut clock = startup::Clock::start();
        let mut kernel = KernelContext::discover()?;
        clock.lap(|t, d| t.kernel = d);
        let mut ebpf = load_object(&kernel, opts)?;
        kernel.hold_btf();
        clock.lap(|t, d| t.load = d);
        let attach = hooks::attach_all(&mut ebpf, &kernel, opts.attach, opts.tracepoints)?;
        clock.lap(|t, d| t.hooks = d);
        if attach.hooks.iter().all(|h| h.method.is_none()) {
            return Err(LoadError::NothingAttached(attach.summary()));
        }
        let callbacks_enabled =
            hook_table::CALLBACK_HOOKS.iter().any(|c| attach.get(c.hook).is_some_and(|s| s.method.is_some()));
        let mut callbacks = CallbackAttacher::new(callbacks_enabled);
        let mut startup_probes = None;
        if callbacks_enabled {
            // Subscribers registered before we started: take them from the inventory.
            let mms = crate::inventory::run_iterator(&mut ebpf, crate::inventory::ITER_PROGRAM, &kernel).and_then(
                |bytes| {
                    crate::inventory::decode(&bytes, &kernel.kallsyms, &kernel.offsets)
                        .map_err(|e| LoadError::Other(format!("inventory: {e}")))
                },
            )?;
            // Reported with every later probe, by the session (see `session::trace`). The outer
            // hooks are already attached, so ranges that began before the seeded callbacks were
            // probed are excluded from their pairing like those of a later registration.
            startup_probes = callbacks.seed(&mut ebpf, &kernel.kallsyms, &mms);
        }
        clock.lap(|t, d| t.subscribers = d);
        kernel.release_btf();
        crate::memory::return_freed();
        Ok(Tracer { ebpf, attach, kernel, callbacks, startup_probes, startup: clock.timings() })
    }

    /// Takes the ring buffer and counters out of the object for a [`Collector`].
    pub fn collector(&mut self) -> Result<Collector, LoadError> {
        Collector::new(&mut self.ebpf)
    }
}
