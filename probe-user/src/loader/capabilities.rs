//! `mmnotif-trace probe`: what this kernel offers, found by trying each thing once.

use std::fmt::Write;

use serde::Serialize;

use super::{
    AttachChoice, AttachReport, KernelContext, LoadError, TracepointChoice, TracerOptions, hook_table, hooks,
    load_object, require_root,
};
use crate::{
    inventory,
    kernel_facts::{Fact, KernelVersion},
    kvm,
};

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Capabilities {
    pub kernel: String,
    pub checks: Vec<Check>,
    pub attach: AttachReport,
    /// The sentence about start/end pairing every report must carry.
    pub pairing: String,
}

/// Loads the object, attaches every hook the way a tracing session would, runs the iterator
/// once, opens /dev/kvm; then detaches everything (dropping the object).
pub fn probe_capabilities(choice: AttachChoice, tracepoints: TracepointChoice) -> Result<Capabilities, LoadError> {
    require_root()?;
    let mut checks = Vec::new();
    let mut kernel = KernelContext::discover()?;
    let subs = if kernel.offsets.subs_invalidate_seq != probe_common::ABSENT {
        "mm_struct.notifier_subscriptions (5.5+ layout)"
    } else {
        "mm_struct.mmu_notifier_mm (pre-5.5 layout)"
    };
    checks.push(Check {
        what: "BTF",
        ok: true,
        detail: format!("/sys/kernel/btf/vmlinux parsed; {subs} at offset {}", kernel.offsets.mm_subscriptions),
    });
    checks.push(Check { what: "kallsyms", ok: true, detail: format!("{} text symbols", kernel.kallsyms.len()) });

    let mut ebpf = load_object(&kernel, &TracerOptions::default())?;
    kernel.hold_btf();
    let attach = hooks::attach_all(&mut ebpf, &kernel, choice, tracepoints)?;
    // The two function-probe methods, as attach_all tried them (whatever `choice` says).
    let on_start = format!("loads and attaches on {}", hook_table::START_FUNCTION);
    for (what, result) in [("fentry/fexit", &attach.methods.fentry), ("kprobe/kretprobe", &attach.methods.kprobe)] {
        let (ok, detail) = match result {
            Ok(()) => (true, on_start.clone()),
            Err(reason) => (false, reason.clone()),
        };
        checks.push(Check { what, ok, detail });
    }
    // Whether a kprobe program the kernel skips shows up in the lost count (fentry's always do).
    let counted = KernelVersion::parse(&kernel.release).is_some_and(|v| v.has(Fact::KprobeSkipsCounted));
    checks.push(Check {
        what: "kprobe skips counted",
        ok: counted,
        detail: if counted {
            "a kprobe program the kernel skips is counted and reported as missed".to_string()
        } else {
            format!(
                "before {} the kernel skips a kprobe program (another BPF program or map syscall active on that CPU) without counting it",
                Fact::KprobeSkipsCounted.release()
            )
        },
    });
    for h in &attach.hooks {
        if hook_table::is_function_hook(h.hook) {
            continue;
        }
        checks.push(Check { what: h.hook.as_str(), ok: h.method.is_some(), detail: h.describe() });
    }
    match inventory::run_iterator(&mut ebpf, inventory::ITER_PROGRAM, &kernel) {
        Ok(bytes) => checks.push(Check {
            what: "iter/task",
            ok: true,
            detail: format!("inventory iterator ran ({} bytes)", bytes.len()),
        }),
        Err(e) => checks.push(Check { what: "iter/task", ok: false, detail: e.to_string() }),
    }
    match inventory::run_iterator(&mut ebpf, inventory::BLOCKED_PROGRAM, &kernel)
        .map_err(inventory::WalkError::from)
        .and_then(|bytes| Ok(inventory::decode_blocked(&bytes, &kernel.kallsyms)?))
    {
        Ok(stuck) => checks.push(Check {
            what: "stuck-task walk",
            ok: true,
            detail: format!("iter/task with kernel stacks ran; {} task(s) stuck in a notifier wait", stuck.len()),
        }),
        Err(e) => checks.push(Check { what: "stuck-task walk", ok: false, detail: e.to_string() }),
    }
    match kvm::open() {
        Ok(_) => checks.push(Check { what: "/dev/kvm", ok: true, detail: "KVM API version 12".into() }),
        Err(e) => checks.push(Check { what: "/dev/kvm", ok: false, detail: e.to_string() }),
    }
    let pairing = if attach.pairing_available() {
        "start/end pairing: available".to_string()
    } else {
        "start/end pairing: UNAVAILABLE on this kernel: no function probe can attach to \
         __mmu_notifier_invalidate_range_start/_end (see fentry/fexit and kprobe/kretprobe above). \
         Only the degraded tracepoint mode runs here: KVM's callbacks via kvm:kvm_unmap_hva_range, \
         WARNs via error_report_end, task exits, and the iterator inventory."
            .to_string()
    };
    Ok(Capabilities { kernel: kernel.release, checks, attach, pairing })
}

impl Capabilities {
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "kernel {}", self.kernel);
        for c in &self.checks {
            let _ = writeln!(s, "  {:<22} {:<4} {}", c.what, if c.ok { "yes" } else { "no" }, c.detail);
        }
        let _ = writeln!(s, "attach method per hook:");
        for h in &self.attach.hooks {
            // Function hooks share one reason (the fentry and kprobe checks above); repeating
            // it per hook would bury the table.
            let both_refused = h.refused.len() >= 2 && h.refused.iter().all(|r| !r.reason.starts_with("not tried"));
            let text = match h.method {
                None if hook_table::is_function_hook(h.hook) && both_refused => {
                    "unavailable (see fentry/fexit and kprobe/kretprobe above)".to_string()
                }
                _ => h.describe(),
            };
            let _ = writeln!(s, "  {:<22} {}", h.hook.as_str(), text);
        }
        let _ = writeln!(s, "{}", self.pairing);
        s
    }
}
