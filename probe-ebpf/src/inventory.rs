//! `iter/task`: for every process whose mm has notifier subscriptions, one SUBSCRIBER record per
//! list subscriber and one INTERVAL record per interval subscriber, followed by one MM record,
//! written to the iterator's seq file.

use core::ffi::c_void;

use aya_ebpf::{bindings::seq_file, helpers::bpf_seq_write, macros::map, maps::PerCpuArray};
use probe_common::{ABSENT, InventoryRecord, MAX_SUBSCRIBERS, OPS_SLOTS, inventory_kind};

use crate::kread::{offset, peek};

/// Scratch space: the record is too large to build comfortably on the 512-byte BPF stack.
#[map]
static SCRATCH: PerCpuArray<InventoryRecord> = PerCpuArray::with_max_entries(1, 0);

const RECORD_LEN: u32 = core::mem::size_of::<InventoryRecord>() as u32;

/// Deeper than any red-black tree the kernel can hold (height <= 2 log2(n + 1)); a walk that
/// gets this deep is reading a tree changing under it and stops.
const RB_MAX_DEPTH: u32 = 64;

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
    // Threads share their leader's mm: report each process once, through its leader while the
    // leader still has the mm, else through every thread that has it (userspace keeps one): a
    // process whose leader has exited (an OOM victim with a thread stuck in the kernel) stays
    // visible.
    let pid: i32 = peek(task, offset!(task_pid));
    let tgid: i32 = peek(task, offset!(task_tgid));
    let mm: u64 = peek(task, offset!(task_mm));
    if pid != tgid {
        let leader: u64 = peek(task, offset!(task_group_leader));
        if mm == 0 || peek::<u64>(leader, offset!(task_mm)) == mm {
            return 0;
        }
    }
    let subs: u64 = peek(mm, offset!(mm_subscriptions));
    if subs == 0 {
        return 0;
    }
    let Some(r) = SCRATCH.get_ptr_mut(0) else { return 0 };
    let comm: [u8; 16] = peek(task, offset!(task_comm));

    unsafe {
        (*r).kind = inventory_kind::MM;
        (*r).pid = tgid as u32;
        (*r).comm = comm;
        (*r).mm = mm;
        (*r).subscriptions = subs;
        (*r).has_itree = peek::<u8>(subs, offset!(subs_has_itree)) as u32;
        (*r).invalidate_seq = peek(subs, offset!(subs_invalidate_seq));
        (*r).active_invalidate_ranges = peek(subs, offset!(subs_active_invalidate_ranges));
        (*r).index = 0;
        (*r).truncated = 0;
        clear_subscriber(r);
    }

    // The tree first: it leaves nothing in registers (its outcome is in the record), so the
    // verifier meets one state after it whatever it found. Put after the list walk, each of
    // that loop's exits would have the tree walk verified again (too large for 6.1).
    walk_intervals(seq, r, subs);
    unsafe { clear_subscriber(r) };

    // Walk the hlist of `struct mmu_notifier`; readers use probe reads throughout (direct BTF
    // loads through hlist_node -> container were rejected by the verifier).
    let hlist = offset!(notifier_hlist) as u64;
    let mut node: u64 = peek(subs, offset!(subs_list));
    let mut count: u32 = 0;
    let mut truncated = 0;
    let mut i = 0;
    while i < MAX_SUBSCRIBERS {
        if node == 0 {
            break;
        }
        let mn = node - hlist;
        let ops: u64 = peek(mn, offset!(notifier_ops));
        unsafe {
            (*r).kind = inventory_kind::SUBSCRIBER;
            (*r).index = count;
            (*r).subscriber = mn;
            (*r).ops = ops;
            (*r).users = peek(mn, offset!(notifier_users));
            let mut slot = 0;
            while slot < OPS_SLOTS {
                (*r).callbacks[slot] = peek(ops, offset!(ops[slot]));
                slot += 1;
            }
            let kvm_start = offset!(kvm_start_callback);
            let start_slot = probe_common::OpsSlot::InvalidateRangeStart as usize;
            if kvm_start != 0 && (*r).callbacks[start_slot] == kvm_start {
                let kvm = mn - offset!(kvm_mmu_notifier) as u64;
                (*r).kvm = kvm;
                (*r).kvm_mn_active_invalidate_count = peek(kvm, offset!(kvm_mn_active_invalidate_count));
                (*r).kvm_invalidate_in_progress = peek(kvm, offset!(kvm_invalidate_in_progress));
            } else {
                (*r).kvm = 0;
                (*r).kvm_mn_active_invalidate_count = 0;
                (*r).kvm_invalidate_in_progress = 0;
            }
            bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
        }
        count += 1;
        node = peek(node, 0); // hlist_node.next
        i += 1;
    }
    if node != 0 {
        truncated = 1;
    }
    // The MM record goes last so it can carry the total and the truncation flag.
    unsafe {
        (*r).kind = inventory_kind::MM;
        (*r).index = count;
        let tree_truncated = core::ptr::read_volatile(&(*r).truncated);
        (*r).truncated = tree_truncated | truncated;
        clear_subscriber(r);
        bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
    }
    0
}

/// Writes one INTERVAL record per interval subscriber, in address order, walking the tree from
/// its cached leftmost node; sets the record's `truncated` when the walk stopped early. The
/// tree is read without its lock: a concurrent insert or removal can at worst shorten or
/// repeat part of the listing.
#[inline(always)]
fn walk_intervals(seq: *mut seq_file, r: *mut InventoryRecord, subs: u64) {
    let leftmost = offset!(subs_itree_leftmost);
    let rb = offset!(interval_rb);
    if leftmost == ABSENT || rb == ABSENT {
        return;
    }
    let mut node: u64 = peek(subs, leftmost);
    let mut i = 0;
    while i < MAX_SUBSCRIBERS {
        if node == 0 {
            return;
        }
        if node == RB_LOST {
            break;
        }
        let mni = node - rb as u64;
        let ops: u64 = peek(mni, offset!(interval_ops));
        unsafe {
            clear_subscriber(r);
            (*r).kind = inventory_kind::INTERVAL;
            (*r).index = i;
            (*r).subscriber = mni;
            (*r).ops = ops;
            (*r).interval_start = peek(mni, offset!(interval_start));
            (*r).interval_last = peek(mni, offset!(interval_last));
            (*r).interval_seq = peek(mni, offset!(interval_seq));
            (*r).interval_invalidate = peek(ops, offset!(interval_ops_invalidate));
            (*r).interval_invalidate_start = peek(ops, offset!(interval_ops_invalidate_start));
            (*r).interval_invalidate_finish = peek(ops, offset!(interval_ops_invalidate_finish));
            bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
        }
        node = rb_next(node);
        i += 1;
    }
    if node != 0 {
        unsafe { core::ptr::write_volatile(&mut (*r).truncated, 1) };
    }
}

/// What [`rb_next`] returns when the tree stopped looking like one.
const RB_LOST: u64 = 1;

/// The in-order successor of `node` (0 after the last): the leftmost node of the right subtree,
/// else the first ancestor reached from its left side.
#[inline(always)]
fn rb_next(node: u64) -> u64 {
    let right: u64 = peek(node, offset!(rb_right));
    if right != 0 {
        let mut n = right;
        let mut depth = 0;
        while depth < RB_MAX_DEPTH {
            let left: u64 = peek(n, offset!(rb_left));
            if left == 0 {
                return n;
            }
            n = left;
            depth += 1;
        }
        return RB_LOST;
    }
    let mut child = node;
    let mut depth = 0;
    while depth < RB_MAX_DEPTH {
        // The parent pointer shares its word with the colour bit.
        let parent = peek::<u64>(child, offset!(rb_parent_color)) & !3;
        if parent == 0 {
            return 0;
        }
        if peek::<u64>(parent, offset!(rb_right)) != child {
            return parent;
        }
        child = parent;
        depth += 1;
    }
    RB_LOST
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
        (*r).interval_start = 0;
        (*r).interval_last = 0;
        (*r).interval_seq = 0;
        (*r).interval_invalidate = 0;
        (*r).interval_invalidate_start = 0;
        (*r).interval_invalidate_finish = 0;
    }
}
