//! Tracepoint hooks. Each hook has a tp_btf program and a raw tracepoint twin with the same
//! body; the loader attaches whichever the kernel accepts (tp_btf first).

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_task,
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use probe_common::{EventKind, EventPayload as Payload};

use crate::{
    emit::emit,
    kread::{at, offset},
};

/// Both context kinds expose the tracepoint's arguments as an array of u64.
#[inline(always)]
fn arg(ctx: &impl EbpfContext, n: usize) -> u64 {
    // For tp_btf the context *is* the u64 array; for raw tracepoints it is
    // `struct bpf_raw_tracepoint_args { __u64 args[0]; }`, the same layout.
    unsafe { *(ctx.as_ptr() as *const u64).add(n) }
}

#[inline(always)]
pub(crate) fn current_mm() -> u64 {
    let task = unsafe { bpf_get_current_task() };
    at::<u64>(task, offset!(task_mm))
}

// --- kvm:kvm_unmap_hva_range(start, end): fires inside KVM's invalidate_range_start ---------

#[inline(always)]
fn on_kvm_unmap(ctx: &impl EbpfContext) {
    let p = Payload { mm: current_mm(), start: arg(ctx, 0), end: arg(ctx, 1), ..Payload::default() };
    emit(EventKind::KvmUnmapRange, &p);
}

#[btf_tracepoint(function = "kvm_unmap_hva_range")]
pub fn kvm_unmap_hva_range_btf(ctx: BtfTracePointContext) -> i32 {
    on_kvm_unmap(&ctx);
    0
}

#[raw_tracepoint(tracepoint = "kvm_unmap_hva_range")]
pub fn kvm_unmap_hva_range_raw(ctx: RawTracePointContext) -> i32 {
    on_kvm_unmap(&ctx);
    0
}

// --- error_report:error_report_end(detector, id): WARN/KASAN/KFENCE reports -----------------

#[inline(always)]
fn on_error_report(ctx: &impl EbpfContext) {
    let p = Payload { mm: current_mm(), aux0: arg(ctx, 0) & 0xffff_ffff, callback: arg(ctx, 1), ..Payload::default() };
    emit(EventKind::ErrorReport, &p);
}

#[btf_tracepoint(function = "error_report_end")]
pub fn error_report_end_btf(ctx: BtfTracePointContext) -> i32 {
    on_error_report(&ctx);
    0
}

#[raw_tracepoint(tracepoint = "error_report_end")]
pub fn error_report_end_raw(ctx: RawTracePointContext) -> i32 {
    on_error_report(&ctx);
    0
}

// --- sched:sched_process_exit: the exiting thread is current -------------------------------

#[inline(always)]
fn on_task_exit() {
    emit(EventKind::TaskExit, &Payload { mm: current_mm(), ..Payload::default() });
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_btf(_ctx: BtfTracePointContext) -> i32 {
    on_task_exit();
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit_raw(_ctx: RawTracePointContext) -> i32 {
    on_task_exit();
    0
}
