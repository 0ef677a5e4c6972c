//! WARN capture where the `error_report_end` tracepoint does not exist (before 5.17): a probe on
//! `__warn(file, line, caller, taint, regs, args)`, the function every WARN() reaches. It emits
//! the record `error_report_end(ERROR_DETECTOR_WARN, caller)` would, so userspace and the
//! checker see one kind of WARN whatever the kernel. The loader attaches it only when that
//! tracepoint is unavailable (a WARN would otherwise be reported twice).

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use probe_common::{EventKind, EventPayload as Payload};

use crate::{emit::emit, tracepoints::current_mm};

/// ERROR_DETECTOR_WARN of `enum error_detector` (include/trace/events/error_report.h):
/// KFENCE = 0, KASAN = 1, WARN = 2.
const ERROR_DETECTOR_WARN: u64 = 2;

#[inline(always)]
fn on_warn(caller: u64) {
    let p = Payload { mm: current_mm(), aux0: ERROR_DETECTOR_WARN, callback: caller, ..Payload::default() };
    emit(EventKind::ErrorReport, &p);
}

#[fentry(function = "__warn")]
pub fn warn_fentry(ctx: FEntryContext) -> i32 {
    on_warn(ctx.arg(2));
    0
}

#[kprobe]
pub fn warn_kprobe(ctx: ProbeContext) -> u32 {
    on_warn(ctx.arg(2).unwrap_or(0));
    0
}
