//! The attach-by-trying logic over the hook table ([`super::hook_table`]).

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
    hook_table::{
        CALLBACK_HOOKS, FUNCTION_HOOKS, FunctionHook, ProgramSite, STAND_IN_HOOKS, START_FUNCTION, TRACEPOINT_HOOKS,
        TracepointHook,
    },
};
use crate::{kallsyms::Kallsyms, object::KernelContext, trace::Hook};

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

/// The hooks whose kretprobe twins depend on their entry twins, the pairing hooks: attached
/// with one method.
const PAIRED_GROUP: [Hook; 3] = Hook::PAIRING;

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
    let group = |hook: Hook| PAIRED_GROUP.contains(&hook);
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
    kernel: &KernelContext,
    choice: AttachChoice,
    tracepoints: TracepointChoice,
) -> Result<AttachReport, LoadError> {
    let (kallsyms, offsets) = (&kernel.kallsyms, &kernel.offsets);
    let btf = kernel.aya_btf();
    let btf = btf.as_deref();
    let mut report = AttachReport::default();

    // Try both function-probe methods once so every report can say why one is unavailable.
    let fentry = match btf {
        Some(btf) => try_fentry(ebpf, btf),
        None => Err("no kernel BTF".into()),
    };
    let kprobe = try_kprobe(ebpf);
    report.hooks.extend(attach_function_hooks(ebpf, &FUNCTION_HOOKS, btf, kallsyms, choice, &fentry, &kprobe));
    report.methods = MethodChecks { fentry: fentry.clone(), kprobe: kprobe.clone() };
    for callback in &CALLBACK_HOOKS {
        let (hook, method) = (callback.hook, callback.method);
        let mut status = HookStatus::new(hook);
        if callback.twopass
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
        report.hooks.push(attach_tracepoint(ebpf, btf, hook, tracepoints));
    }
    // A tracepoint that did not attach: its stand-in delivers the same records.
    let stand_ins: Vec<&FunctionHook> = (report.hooks.iter())
        .filter(|h| h.method.is_none())
        .filter_map(|h| h.hook.stand_in())
        .filter_map(|stand_in| STAND_IN_HOOKS.iter().find(|f| f.hook == stand_in))
        .collect();
    for stand_in in stand_ins {
        let hooks = std::slice::from_ref(stand_in);
        report.hooks.extend(attach_function_hooks(ebpf, hooks, btf, kallsyms, choice, &fentry, &kprobe));
    }
    Ok(report)
}
