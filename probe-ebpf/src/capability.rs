//! Empty programs the loader loads and attaches once to learn, by trying, which attach methods
//! this kernel allows on the mmu-notifier functions (`mmnotif-trace probe`).

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};

#[fentry(function = "__mmu_notifier_invalidate_range_start")]
pub fn cap_fentry(_ctx: FEntryContext) -> i32 {
    0
}

#[kprobe]
pub fn cap_kprobe(_ctx: ProbeContext) -> u32 {
    0
}
