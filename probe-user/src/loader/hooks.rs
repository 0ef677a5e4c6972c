//! The hook table and the attach-by-trying logic.

use aya::{
    Btf, Ebpf,
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, RawTracePoint, fentry::FEntryLinkId, fexit::FExitLinkId,
        kprobe::KProbeLinkId,
    },
};

use super::{
    AttachChoice, LoadError, TracepointChoice,
    attach::{AttachReport, HookStatus, Method, MethodChecks, Refusal},
    error_chain,
};
use crate::kallsyms::Kallsyms;

/// A tracepoint hook: a tp_btf program and its raw-tracepoint twin with the same body.
pub(super) struct TracepointHook {
    /// Name in the trace header's `attach` map.
    pub hook: &'static str,
    pub tracepoint: &'static str,
    pub btf_program: &'static str,
    pub raw_program: &'static str,
}

pub(super) const TRACEPOINT_HOOKS: [TracepointHook; 3] = [
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

/// The start function: what the capability programs try, and the outer hooks' main target.
pub(super) const START_FUNCTION: &str = "__mmu_notifier_invalidate_range_start";
pub(super) const END_FUNCTION: &str = "__mmu_notifier_invalidate_range_end";
pub(super) const ITREE_END_FUNCTION: &str = "mn_itree_inv_end";
pub(super) const REGISTER_FUNCTION: &str = "__mmu_notifier_register";
pub(super) const INTERVAL_INSERT_FUNCTIONS: [&str; 2] =
    ["mmu_interval_notifier_insert", "mmu_interval_notifier_insert_locked"];

/// One program attached to one kernel function.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProgramSite {
    pub program: &'static str,
    pub function: &'static str,
}

const fn site(program: &'static str, function: &'static str) -> ProgramSite {
    ProgramSite { program, function }
}

/// A hook on kernel functions, with the programs each method needs.
pub(super) struct FunctionHook {
    pub hook: &'static str,
    /// fentry/fexit programs (each is bound to its function at load time).
    pub trampoline: &'static [ProgramSite],
    pub trampoline_method: Method,
    /// kprobe/kretprobe programs.
    pub probe: &'static [ProgramSite],
    pub probe_method: Method,
}

/// The outer hooks and the registration hook: attached at start, all with one method so
/// entry-state maps of the kretprobe twins are filled by their own entry programs.
pub(super) const FUNCTION_HOOKS: [FunctionHook; 5] = [
    FunctionHook {
        hook: "range_start",
        trampoline: &[site("range_start_fentry", START_FUNCTION)],
        trampoline_method: Method::Fentry,
        probe: &[site("range_start_kprobe", START_FUNCTION)],
        probe_method: Method::Kprobe,
    },
    FunctionHook {
        hook: "range_start_ret",
        trampoline: &[site("range_start_fexit", START_FUNCTION)],
        trampoline_method: Method::Fexit,
        probe: &[site("range_start_kretprobe", START_FUNCTION)],
        probe_method: Method::Kretprobe,
    },
    FunctionHook {
        hook: "range_end",
        trampoline: &[site("range_end_fentry", END_FUNCTION)],
        trampoline_method: Method::Fentry,
        probe: &[site("range_end_kprobe", END_FUNCTION)],
        probe_method: Method::Kprobe,
    },
    FunctionHook {
        hook: "itree_end",
        trampoline: &[site("itree_end_fexit", ITREE_END_FUNCTION)],
        trampoline_method: Method::Fexit,
        probe: &[site("itree_end_kprobe", ITREE_END_FUNCTION), site("itree_end_kretprobe", ITREE_END_FUNCTION)],
        probe_method: Method::Kretprobe,
    },
    FunctionHook {
        hook: "subscriber_registered",
        trampoline: &[
            site("register_fentry", REGISTER_FUNCTION),
            site("interval_insert_fentry", INTERVAL_INSERT_FUNCTIONS[0]),
            site("interval_insert_locked_fentry", INTERVAL_INSERT_FUNCTIONS[1]),
        ],
        trampoline_method: Method::Fentry,
        probe: &[
            site("register_kprobe", REGISTER_FUNCTION),
            site("interval_insert_kprobe", INTERVAL_INSERT_FUNCTIONS[0]),
            site("interval_insert_kprobe", INTERVAL_INSERT_FUNCTIONS[1]),
        ],
        probe_method: Method::Kprobe,
    },
];

/// WARN capture where the `error_report_end` tracepoint is missing (kernels before 5.17): a
/// probe on `__warn` that emits the same record. Attached only then, or WARNs would count twice.
pub(super) const WARN_FALLBACK: FunctionHook = FunctionHook {
    hook: "warn",
    trampoline: &[site("warn_fentry", "__warn")],
    trampoline_method: Method::Fentry,
    probe: &[site("warn_kprobe", "__warn")],
    probe_method: Method::Kprobe,
};
/// The tracepoint [`WARN_FALLBACK`] stands in for.
const WARN_TRACEPOINT: &str = "error_report_end";

/// Hooks on subscriber callbacks: kprobes attached per callback as subscribers are
/// discovered (see [`super::callbacks`]).
pub(super) const CALLBACK_HOOKS: [(&str, Method); 5] = [
    ("subscriber_start", Method::Kretprobe),
    ("subscriber_end", Method::Kprobe),
    ("interval_invalidate", Method::Kretprobe),
    ("interval_start", Method::Kretprobe),
    ("interval_finish", Method::Kprobe),
];

/// The hooks on the two-pass interval callbacks, which exist only where the kernel's BTF has
/// them (7.2+).
const TWOPASS_HOOKS: [&str; 2] = ["interval_start", "interval_finish"];

/// Whether `hook` is probed on kernel functions (as opposed to tracepoints or the iterator).
pub(super) fn is_function_hook(hook: &str) -> bool {
    FUNCTION_HOOKS.iter().any(|h| h.hook == hook) || CALLBACK_HOOKS.iter().any(|(h, _)| *h == hook)
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

/// Attaches one tracepoint hook: tp_btf first, raw tracepoint otherwise (or only the one
/// `choice` names).
pub(super) fn attach_tracepoint(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    hook: &TracepointHook,
    choice: TracepointChoice,
) -> HookStatus {
    let mut status = HookStatus::new(hook.hook);
    if choice == TracepointChoice::Raw {
        status.refused.push(Refusal { method: Method::TpBtf, reason: "not tried (--tracepoint-method raw)".into() });
    } else {
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
    }
    if choice == TracepointChoice::TpBtf {
        status.refused.push(Refusal { method: Method::RawTp, reason: "not tried (--tracepoint-method tp-btf)".into() });
        return status;
    }
    match try_raw_tp(ebpf, hook.raw_program, hook.tracepoint) {
        Ok(()) => status.method = Some(Method::RawTp),
        Err(reason) => status.refused.push(Refusal { method: Method::RawTp, reason }),
    }
    status
}

/// Tries fentry on the start function: Ok when the kernel loads and attaches it.
pub(super) fn try_fentry(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let prog: &mut FEntry = ebpf
        .program_mut("cap_fentry")
        .ok_or("program cap_fentry missing from the object")?
        .try_into()
        .map_err(|e| error_chain(&e))?;
    // Tried once per object (`probe` reports it, then attaches like a session does).
    if prog.fd().is_err() {
        prog.load(START_FUNCTION, btf).map_err(|e| {
            let msg = error_chain(&e);
            if msg.contains("Operation not permitted") || msg.contains("EPERM") {
                format!("{msg} (this kernel refuses BPF trampolines)")
            } else {
                msg
            }
        })?;
    }
    let link = prog.attach().map_err(|e| error_chain(&e))?;
    prog.detach(link).map_err(|e| error_chain(&e))?;
    Ok(())
}

/// Tries a kprobe on the start function.
pub(super) fn try_kprobe(ebpf: &mut Ebpf) -> Result<(), String> {
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/kprobe");
    let prog: &mut KProbe = ebpf
        .program_mut("cap_kprobe")
        .ok_or("program cap_kprobe missing from the object")?
        .try_into()
        .map_err(|e| error_chain(&e))?;
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

/// An attached program, kept so a partly attached hook group can be taken down again.
enum Link {
    FEntry(&'static str, FEntryLinkId),
    FExit(&'static str, FExitLinkId),
    KProbe(&'static str, KProbeLinkId),
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e| error_chain(&e))
}

/// Loads (once) and attaches a kprobe or kretprobe program to `function`.
pub(super) fn attach_kprobe(ebpf: &mut Ebpf, program_name: &str, function: &str) -> Result<KProbeLinkId, String> {
    let prog: &mut KProbe = program(ebpf, program_name)?;
    if prog.fd().is_err() {
        prog.load().map_err(|e| error_chain(&e))?;
    }
    prog.attach(function, 0).map_err(|e| error_chain(&e))
}

fn attach_site(ebpf: &mut Ebpf, btf: &Btf, site: ProgramSite, method: Method) -> Result<Link, String> {
    match method {
        Method::Fentry => {
            let prog: &mut FEntry = program(ebpf, site.program)?;
            prog.load(site.function, btf).map_err(|e| error_chain(&e))?;
            Ok(Link::FEntry(site.program, prog.attach().map_err(|e| error_chain(&e))?))
        }
        Method::Fexit => {
            let prog: &mut FExit = program(ebpf, site.program)?;
            prog.load(site.function, btf).map_err(|e| error_chain(&e))?;
            Ok(Link::FExit(site.program, prog.attach().map_err(|e| error_chain(&e))?))
        }
        _ => Ok(Link::KProbe(site.program, attach_kprobe(ebpf, site.program, site.function)?)),
    }
}

fn detach(ebpf: &mut Ebpf, link: Link) {
    // Best effort: a link that cannot be detached stays until the object is dropped.
    let _ = match link {
        Link::FEntry(name, id) => program::<FEntry>(ebpf, name).and_then(|p| p.detach(id).map_err(|e| error_chain(&e))),
        Link::FExit(name, id) => program::<FExit>(ebpf, name).and_then(|p| p.detach(id).map_err(|e| error_chain(&e))),
        Link::KProbe(name, id) => program::<KProbe>(ebpf, name).and_then(|p| p.detach(id).map_err(|e| error_chain(&e))),
    };
}

/// Attaches every program of `hook` with one method, or none of them.
fn attach_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kallsyms: &Kallsyms,
    hook: &FunctionHook,
    trampoline: bool,
) -> Result<Vec<Link>, String> {
    let (sites, method) =
        if trampoline { (hook.trampoline, hook.trampoline_method) } else { (hook.probe, hook.probe_method) };
    let mut links = Vec::new();
    for site in sites {
        let result = if kallsyms.address_of(site.function).is_none() {
            Err(format!("{} is not in /proc/kallsyms (absent or inlined on this kernel)", site.function))
        } else {
            attach_site(ebpf, btf, *site, method).map_err(|e| format!("{} on {}: {e}", site.program, site.function))
        };
        match result {
            Ok(link) => links.push(link),
            Err(e) => {
                for link in links {
                    detach(ebpf, link);
                }
                return Err(e);
            }
        }
    }
    Ok(links)
}

/// The hooks whose kretprobe twins depend on their entry twins: attached with one method.
const PAIRED_GROUP: [&str; 3] = ["range_start", "range_start_ret", "range_end"];

/// Attaches `hooks` with the method `choice` allows, trampolines first in `auto`.
fn attach_function_hooks(
    ebpf: &mut Ebpf,
    hooks: &[FunctionHook],
    btf: Option<&Btf>,
    kallsyms: &Kallsyms,
    choice: AttachChoice,
    fentry: &Result<(), String>,
    kprobe: &Result<(), String>,
) -> Vec<HookStatus> {
    let mut statuses: Vec<HookStatus> = hooks.iter().map(|h| HookStatus::new(h.hook)).collect();
    let not_tried = |flag: &str| format!("not tried (--attach {flag})");
    let fentry_ok = match (choice, fentry, btf) {
        (AttachChoice::Kprobe, _, _) => Err(not_tried("kprobe")),
        (_, Ok(()), Some(btf)) => Ok(btf),
        (_, Err(e), _) => Err(e.clone()),
        (_, Ok(()), None) => Err("no kernel BTF".to_string()),
    };
    let kprobe_ok = match (choice, kprobe) {
        (AttachChoice::Fentry, _) => Err(not_tried("fentry")),
        (_, Ok(())) => Ok(()),
        (_, Err(e)) => Err(e.clone()),
    };
    // aya wants a Btf even for kprobes (unused there).
    let any_btf = btf.cloned().unwrap_or_else(Btf::new);

    let mut trampolines: Vec<Option<Vec<Link>>> = Vec::new();
    for (hook, status) in hooks.iter().zip(statuses.iter_mut()) {
        let links = match &fentry_ok {
            Ok(btf) => match attach_hook(ebpf, btf, kallsyms, hook, true) {
                Ok(links) => Some(links),
                Err(reason) => {
                    status.refused.push(Refusal { method: hook.trampoline_method, reason });
                    None
                }
            },
            Err(reason) => {
                status.refused.push(Refusal { method: hook.trampoline_method, reason: reason.clone() });
                None
            }
        };
        trampolines.push(links);
    }
    // A kretprobe finds its entry arguments only if its own kprobe twin ran: the paired group
    // is all trampolines or all kprobes.
    let group = |name: &str| PAIRED_GROUP.contains(&name);
    let group_complete = hooks.iter().zip(&trampolines).filter(|(h, _)| group(h.hook)).all(|(_, l)| l.is_some());
    for ((hook, status), links) in hooks.iter().zip(statuses.iter_mut()).zip(trampolines) {
        match links {
            Some(_) if group_complete || !group(hook.hook) => {
                status.method = Some(hook.trampoline_method);
                continue;
            }
            Some(links) => {
                for link in links {
                    detach(ebpf, link);
                }
                status.refused.push(Refusal {
                    method: hook.trampoline_method,
                    reason: "attached, but its start/end partners could not be; the group uses kprobes".into(),
                });
            }
            None => {}
        }
        match &kprobe_ok {
            Ok(()) => match attach_hook(ebpf, &any_btf, kallsyms, hook, false) {
                Ok(_) => status.method = Some(hook.probe_method),
                Err(reason) => status.refused.push(Refusal { method: hook.probe_method, reason }),
            },
            Err(reason) => status.refused.push(Refusal { method: hook.probe_method, reason: reason.clone() }),
        }
    }
    statuses
}

/// Attaches every hook the kernel allows and reports each outcome.
pub(super) fn attach_all(
    ebpf: &mut Ebpf,
    kallsyms: &Kallsyms,
    offsets: &probe_common::KernelOffsets,
    choice: AttachChoice,
    tracepoints: TracepointChoice,
) -> Result<AttachReport, LoadError> {
    let btf = Btf::from_sys_fs().ok();
    let mut report = AttachReport::default();

    // Try both function-probe methods once so every report can say why one is unavailable.
    let fentry = match &btf {
        Some(btf) => try_fentry(ebpf, btf),
        None => Err("no kernel BTF".into()),
    };
    let kprobe = try_kprobe(ebpf);
    report.hooks.extend(attach_function_hooks(ebpf, &FUNCTION_HOOKS, btf.as_ref(), kallsyms, choice, &fentry, &kprobe));
    report.methods = MethodChecks { fentry: fentry.clone(), kprobe: kprobe.clone() };
    for (hook, method) in CALLBACK_HOOKS {
        let mut status = HookStatus::new(hook);
        if TWOPASS_HOOKS.contains(&hook)
            && let Err(why) = crate::btf::twopass_api(offsets)
        {
            status.absent = Some(why.to_string());
            report.hooks.push(status);
            continue;
        }
        match &kprobe {
            Ok(()) => match super::callbacks::preload(ebpf, hook) {
                Ok(()) => status.method = Some(method),
                Err(reason) => status.refused.push(Refusal { method, reason }),
            },
            Err(reason) => status.refused.push(Refusal {
                method,
                reason: format!("{reason} (callbacks are attached with kprobes: most live in modules)"),
            }),
        }
        report.hooks.push(status);
    }
    for hook in &TRACEPOINT_HOOKS {
        report.hooks.push(attach_tracepoint(ebpf, btf.as_ref(), hook, tracepoints));
    }
    let warn_tracepoint = report.hooks.iter().find(|h| h.hook == WARN_TRACEPOINT).and_then(|h| h.method);
    if warn_tracepoint.is_none() {
        let fallback = std::slice::from_ref(&WARN_FALLBACK);
        report.hooks.extend(attach_function_hooks(ebpf, fallback, btf.as_ref(), kallsyms, choice, &fentry, &kprobe));
    }
    Ok(report)
}
