//! The hook table and the attach-by-trying logic.

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, KProbe, RawTracePoint},
};

use super::{
    LoadError,
    attach::{AttachReport, HookStatus, Method, Refusal},
};

/// A tracepoint hook: a tp_btf program and its raw-tracepoint twin with the same body.
pub struct TracepointHook {
    /// Name in the trace header's `attach` map.
    pub hook: &'static str,
    pub tracepoint: &'static str,
    pub btf_program: &'static str,
    pub raw_program: &'static str,
}

pub const TRACEPOINT_HOOKS: [TracepointHook; 3] = [
    TracepointHook {
        hook: "kvm_unmap_hva_range",
        tracepoint: "kvm_unmap_hva_range",
        btf_program: "kvm_unmap_hva_range_btf",
        raw_program: "kvm_unmap_hva_range_raw",
    },
    TracepointHook {
        hook: "error_report_end",
        tracepoint: "error_report_end",
        btf_program: "error_report_end_btf",
        raw_program: "error_report_end_raw",
    },
    TracepointHook {
        hook: "sched_process_exit",
        tracepoint: "sched_process_exit",
        btf_program: "sched_process_exit_btf",
        raw_program: "sched_process_exit_raw",
    },
];

/// Hooks on the mmu-notifier functions themselves (function probes).
pub const FUNCTION_HOOKS: [&str; 7] =
    ["range_start", "range_start_ret", "range_end", "subscriber_start", "subscriber_end", "interval_invalidate", "itree_end"];

/// The function the capability programs try to attach to.
pub const START_FUNCTION: &str = "__mmu_notifier_invalidate_range_start";

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

fn try_tp_btf(ebpf: &mut Ebpf, btf: &Btf, program: &str, tracepoint: &str) -> Result<(), String> {
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| error_chain(&e))?;
    prog.load(tracepoint, btf).map_err(|e| error_chain(&e))?;
    prog.attach().map_err(|e| error_chain(&e))?;
    Ok(())
}

fn try_raw_tp(ebpf: &mut Ebpf, program: &str, tracepoint: &str) -> Result<(), String> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| error_chain(&e))?;
    prog.load().map_err(|e| error_chain(&e))?;
    prog.attach(tracepoint).map_err(|e| error_chain(&e))?;
    Ok(())
}

/// Attaches one tracepoint hook: tp_btf first, raw tracepoint otherwise.
pub fn attach_tracepoint(ebpf: &mut Ebpf, btf: Option<&Btf>, hook: &TracepointHook) -> HookStatus {
    let mut status = HookStatus::new(hook.hook);
    match btf {
        Some(btf) => match try_tp_btf(ebpf, btf, hook.btf_program, hook.tracepoint) {
            Ok(()) => {
                status.method = Some(Method::TpBtf);
                return status;
            }
            Err(reason) => status.refused.push(Refusal { method: Method::TpBtf, reason }),
        },
        None => status.refused.push(Refusal { method: Method::TpBtf, reason: "no kernel BTF".into() }),
    }
    match try_raw_tp(ebpf, hook.raw_program, hook.tracepoint) {
        Ok(()) => status.method = Some(Method::RawTp),
        Err(reason) => status.refused.push(Refusal { method: Method::RawTp, reason }),
    }
    status
}

/// Tries fentry on the start function: Ok when the kernel loads and attaches it.
pub fn try_fentry(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let prog: &mut FEntry =
        ebpf.program_mut("cap_fentry").ok_or("program cap_fentry missing from the object")?.try_into().map_err(|e| error_chain(&e))?;
    prog.load(START_FUNCTION, btf).map_err(|e| {
        let msg = error_chain(&e);
        if msg.contains("Operation not permitted") || msg.contains("EPERM") {
            format!("{msg} (this kernel refuses BPF trampolines)")
        } else {
            msg
        }
    })?;
    let link = prog.attach().map_err(|e| error_chain(&e))?;
    prog.detach(link).map_err(|e| error_chain(&e))?;
    Ok(())
}

/// Tries a kprobe on the start function.
pub fn try_kprobe(ebpf: &mut Ebpf) -> Result<(), String> {
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/kprobe");
    let prog: &mut KProbe =
        ebpf.program_mut("cap_kprobe").ok_or("program cap_kprobe missing from the object")?.try_into().map_err(|e| error_chain(&e))?;
    if prog.fd().is_err() {
        prog.load().map_err(|e| error_chain(&e))?;
    }
    let link = prog.attach(START_FUNCTION, 0).map_err(|e| {
        let msg = error_chain(&e);
        if pmu.exists() { msg } else { format!("{msg} (kprobes are compiled out: no {})", pmu.display()) }
    })?;
    prog.detach(link).map_err(|e| error_chain(&e))?;
    Ok(())
}

/// Attaches every hook the kernel allows and reports each outcome.
pub fn attach_all(ebpf: &mut Ebpf) -> Result<AttachReport, LoadError> {
    let btf = Btf::from_sys_fs().ok();
    let mut report = AttachReport::default();

    // The function probes (outer start/end and subscriber callbacks) need fentry or kprobes.
    // Try both so the report says why each is unavailable.
    let fentry = match &btf {
        Some(btf) => try_fentry(ebpf, btf),
        None => Err("no kernel BTF".into()),
    };
    let kprobe = try_kprobe(ebpf);
    for hook in FUNCTION_HOOKS {
        let mut status = HookStatus::new(hook);
        match &fentry {
            Ok(()) => status.refused.push(Refusal {
                method: Method::Fentry,
                reason: "the kernel allows it, but this build has no function-probe programs yet".into(),
            }),
            Err(reason) => status.refused.push(Refusal { method: Method::Fentry, reason: reason.clone() }),
        }
        match &kprobe {
            Ok(()) => status.refused.push(Refusal {
                method: Method::Kprobe,
                reason: "the kernel allows it, but this build has no function-probe programs yet".into(),
            }),
            Err(reason) => status.refused.push(Refusal { method: Method::Kprobe, reason: reason.clone() }),
        }
        report.hooks.push(status);
    }
    for hook in &TRACEPOINT_HOOKS {
        report.hooks.push(attach_tracepoint(ebpf, btf.as_ref(), hook));
    }
    Ok(report)
}
