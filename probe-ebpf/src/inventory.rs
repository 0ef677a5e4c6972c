//! `iter/task`: for every process whose mm has notifier subscriptions, one SUBSCRIBER record per
//! list subscriber followed by one MM record, written to the iterator's seq file.

use core::ffi::c_void;

use aya_ebpf::{bindings::seq_file, helpers::bpf_seq_write, macros::map, maps::PerCpuArray};
use probe_common::{InventoryRecord, MAX_SUBSCRIBERS, OPS_SLOTS, inventory_kind};

use crate::kread::{at, offset};

/// Scratch space: the record is too large to build comfortably on the 512-byte BPF stack.
#[map]
static SCRATCH: PerCpuArray<InventoryRecord> = PerCpuArray::with_max_entries(1, 0);

const RECORD_LEN: u32 = core::mem::size_of::<InventoryRecord>() as u32;

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn inventory_task(ctx: *mut c_void) -> i32 {
    // struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; }
    // struct bpf_iter_meta { struct seq_file *seq; ... }
    let (seq, task) = unsafe {
        let meta = *(ctx as *const *const *mut seq_file);
        let task = *(ctx as *const u64).add(1);
        (*meta, task)
    };
    if task == 0 {
        return 0;
    }
    // Threads share their leader's mm: report each process once.
    let pid: i32 = at(task, offset!(task_pid));
    let tgid: i32 = at(task, offset!(task_tgid));
    if pid != tgid {
        return 0;
    }
    let mm: u64 = at(task, offset!(task_mm));
    let subs: u64 = at(mm, offset!(mm_subscriptions));
    if subs == 0 {
        return 0;
    }
    let Some(r) = SCRATCH.get_ptr_mut(0) else { return 0 };
    let comm: [u8; 16] = at(task, offset!(task_comm));

    unsafe {
        (*r).kind = inventory_kind::MM;
        (*r).pid = tgid as u32;
        (*r).comm = comm;
        (*r).mm = mm;
        (*r).subscriptions = subs;
        (*r).has_itree = at::<u8>(subs, offset!(subs_has_itree)) as u32;
        (*r).invalidate_seq = at(subs, offset!(subs_invalidate_seq));
        (*r).active_invalidate_ranges = at(subs, offset!(subs_active_invalidate_ranges));
        (*r).index = 0;
        (*r).truncated = 0;
        clear_subscriber(r);
    }

    // Walk the hlist of `struct mmu_notifier`; readers use probe reads throughout (direct BTF
    // loads through hlist_node -> container were rejected by the verifier).
    let hlist = offset!(notifier_hlist) as u64;
    let mut node: u64 = at(subs, offset!(subs_list));
    let mut count: u32 = 0;
    let mut truncated = 0;
    let mut i = 0;
    while i < MAX_SUBSCRIBERS {
        if node == 0 {
            break;
        }
        let mn = node - hlist;
        let ops: u64 = at(mn, offset!(notifier_ops));
        unsafe {
            (*r).kind = inventory_kind::SUBSCRIBER;
            (*r).index = count;
            (*r).subscriber = mn;
            (*r).ops = ops;
            (*r).users = at(mn, offset!(notifier_users));
            let mut slot = 0;
            while slot < OPS_SLOTS {
                (*r).callbacks[slot] = at(ops, offset!(ops[slot]));
                slot += 1;
            }
            let kvm_start = offset!(kvm_start_callback);
            let start_slot = probe_common::OpsSlot::InvalidateRangeStart as usize;
            if kvm_start != 0 && (*r).callbacks[start_slot] == kvm_start {
                let kvm = mn - offset!(kvm_mmu_notifier) as u64;
                (*r).kvm = kvm;
                (*r).kvm_mn_active_invalidate_count = at(kvm, offset!(kvm_mn_active_invalidate_count));
                (*r).kvm_invalidate_in_progress = at(kvm, offset!(kvm_invalidate_in_progress));
            } else {
                (*r).kvm = 0;
                (*r).kvm_mn_active_invalidate_count = 0;
                (*r).kvm_invalidate_in_progress = 0;
            }
            bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
        }
        count += 1;
        node = at(node, 0); // hlist_node.next
        i += 1;
    }
    if node != 0 {
        truncated = 1;
    }
    // The MM record goes last so it can carry the total and the truncation flag.
    unsafe {
        (*r).kind = inventory_kind::MM;
        (*r).index = count;
        (*r).truncated = truncated;
        clear_subscriber(r);
        bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
    }
    0
}

#[inline(always)]
unsafe fn clear_subscriber(r: *mut InventoryRecord) {
    unsafe {
        (*r).subscriber = 0;
        (*r).ops = 0;
        (*r).users = 0;
        let mut slot = 0;
        while slot < OPS_SLOTS {
            (*r).callbacks[slot] = 0;
            slot += 1;
        }
        (*r).kvm = 0;
        (*r).kvm_mn_active_invalidate_count = 0;
        (*r).kvm_invalidate_in_progress = 0;
    }
}
