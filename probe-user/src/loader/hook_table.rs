//! Every hook the loader attaches, one row each: the eBPF programs (by their names in
//! probe-ebpf), what they attach to, and with which method. [`super::hooks`] does the attaching.

use super::attach::Method;
use crate::trace::Hook;

/// A tracepoint hook: a tp_btf program and its raw-tracepoint twin with the same body.
pub(super) struct TracepointHook {
    pub hook: Hook,
    pub tracepoint: &'static str,
    pub btf_program: &'static str,
    pub raw_program: &'static str,
}

pub(super) const TRACEPOINT_HOOKS: [TracepointHook; 3] = [
    TracepointHook {
        hook: Hook::KvmUnmapHvaRange,
        tracepoint: "kvm_unmap_hva_range",
        btf_program: "kvm_unmap_hva_range_btf",
        raw_program: "kvm_unmap_hva_range_raw",
    },
    TracepointHook {
        hook: Hook::ErrorReportEnd,
        tracepoint: "error_report_end",
        btf_program: "error_report_end_btf",
        raw_program: "error_report_end_raw",
    },
    TracepointHook {
        hook: Hook::SchedProcessExit,
        tracepoint: "sched_process_exit",
        btf_program: "sched_process_exit_btf",
        raw_program: "sched_process_exit_raw",
    },
];

/// The start function: what the capability programs try, and the outer hooks' main target.
pub(super) const START_FUNCTION: &str = "__mmu_notifier_invalidate_range_start";
const END_FUNCTION: &str = "__mmu_notifier_invalidate_range_end";
const ITREE_END_FUNCTION: &str = "mn_itree_inv_end";
const REGISTER_FUNCTION: &str = "__mmu_notifier_register";
const INTERVAL_INSERT_FUNCTIONS: [&str; 2] = ["mmu_interval_notifier_insert", "mmu_interval_notifier_insert_locked"];

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
    pub hook: Hook,
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
        hook: Hook::RangeStart,
        trampoline: &[site("range_start_fentry", START_FUNCTION)],
        trampoline_method: Method::Fentry,
        probe: &[site("range_start_kprobe", START_FUNCTION)],
        probe_method: Method::Kprobe,
    },
    FunctionHook {
        hook: Hook::RangeStartRet,
        trampoline: &[site("range_start_fexit", START_FUNCTION)],
        trampoline_method: Method::Fexit,
        probe: &[site("range_start_kretprobe", START_FUNCTION)],
        probe_method: Method::Kretprobe,
    },
    FunctionHook {
        hook: Hook::RangeEnd,
        trampoline: &[site("range_end_fentry", END_FUNCTION)],
        trampoline_method: Method::Fentry,
        probe: &[site("range_end_kprobe", END_FUNCTION)],
        probe_method: Method::Kprobe,
    },
    FunctionHook {
        hook: Hook::ItreeEnd,
        trampoline: &[site("itree_end_fexit", ITREE_END_FUNCTION)],
        trampoline_method: Method::Fexit,
        probe: &[site("itree_end_kprobe", ITREE_END_FUNCTION), site("itree_end_kretprobe", ITREE_END_FUNCTION)],
        probe_method: Method::Kretprobe,
    },
    FunctionHook {
        hook: Hook::SubscriberRegistered,
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

/// Function hooks that deliver a tracepoint hook's records where that tracepoint is missing
/// (see [`Hook::stand_in`]); attached only then, or the records would count twice.
pub(super) const STAND_IN_HOOKS: [FunctionHook; 1] = [
    // WARN capture where `error_report_end` is missing (kernels before 5.17): a probe on
    // `__warn` that emits the same record.
    FunctionHook {
        hook: Hook::Warn,
        trampoline: &[site("warn_fentry", "__warn")],
        trampoline_method: Method::Fentry,
        probe: &[site("warn_kprobe", "__warn")],
        probe_method: Method::Kprobe,
    },
];

/// A hook on subscriber callbacks: kprobes attached per callback as subscribers are
/// discovered (see [`super::callbacks`]).
pub(super) struct CallbackHook {
    pub hook: Hook,
    /// The method its report names (the last program's kind).
    pub method: Method,
    /// The kprobe programs attached to each callback, in attach order.
    pub programs: &'static [&'static str],
    /// Part of the two-pass interval API, which exists only where the kernel's BTF has it (7.2+).
    pub twopass: bool,
}

pub(super) const CALLBACK_HOOKS: [CallbackHook; 5] = [
    CallbackHook {
        hook: Hook::SubscriberStart,
        method: Method::Kretprobe,
        programs: &["subscriber_start_entry", "subscriber_start_ret"],
        twopass: false,
    },
    CallbackHook { hook: Hook::SubscriberEnd, method: Method::Kprobe, programs: &["subscriber_end"], twopass: false },
    CallbackHook {
        hook: Hook::IntervalInvalidate,
        method: Method::Kretprobe,
        programs: &["interval_invalidate_entry", "interval_invalidate_ret"],
        twopass: false,
    },
    CallbackHook {
        hook: Hook::IntervalStart,
        method: Method::Kretprobe,
        programs: &["interval_start_entry", "interval_start_ret"],
        twopass: true,
    },
    CallbackHook { hook: Hook::IntervalFinish, method: Method::Kprobe, programs: &["interval_finish"], twopass: true },
];

/// The programs a callback hook attaches to each callback (none for a hook that is not one).
pub(super) fn callback_programs(hook: Hook) -> &'static [&'static str] {
    CALLBACK_HOOKS.iter().find(|c| c.hook == hook).map_or(&[], |c| c.programs)
}

/// Whether `hook` is probed on kernel functions (as opposed to tracepoints or the iterator).
pub(super) fn is_function_hook(hook: Hook) -> bool {
    FUNCTION_HOOKS.iter().any(|h| h.hook == hook) || CALLBACK_HOOKS.iter().any(|c| c.hook == hook)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ProbedCallback;

    #[test]
    fn every_hook_has_exactly_one_row() {
        let rows: Vec<Hook> = (TRACEPOINT_HOOKS.iter().map(|h| h.hook))
            .chain(FUNCTION_HOOKS.iter().chain(&STAND_IN_HOOKS).map(|h| h.hook))
            .chain(CALLBACK_HOOKS.iter().map(|h| h.hook))
            .collect();
        for hook in Hook::ALL {
            assert_eq!(rows.iter().filter(|h| **h == hook).count(), 1, "{hook}");
        }
        assert_eq!(rows.len(), Hook::ALL.len());
    }

    #[test]
    fn the_callback_hooks_are_those_the_trace_format_names() {
        let table: Vec<Hook> = CALLBACK_HOOKS.iter().map(|c| c.hook).collect();
        assert_eq!(table, ProbedCallback::HOOKS);
    }

    #[test]
    fn every_stand_in_replaces_a_tracepoint_hook() {
        for stand_in in &STAND_IN_HOOKS {
            assert!(TRACEPOINT_HOOKS.iter().any(|t| t.hook.stand_in() == Some(stand_in.hook)), "{}", stand_in.hook);
        }
    }
}
