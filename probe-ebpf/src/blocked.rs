//! `iter/task`: the tasks stuck because of a notifier: every task in uninterruptible sleep with
//! its kernel stack (userspace recognises the waits that matter by their functions), and the
//! tasks queued on the interval-tree wait queue of the mms userspace asks about (which ties a
//! stuck task to the mm it waits for, even when no task of that mm is left).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::seq_file,
    helpers::{bpf_seq_write, generated::bpf_get_task_stack},
    macros::map,
    maps::{Array, PerCpuArray},
};
use probe_common::{BLOCKED_FRAMES, BlockedRecord, MAX_WAITERS, MAX_WATCHED_MMS, blocked_kind};

use crate::kread::{offset, peek};

#[map]
static BLOCKED_SCRATCH: PerCpuArray<BlockedRecord> = PerCpuArray::with_max_entries(1, 0);

/// The mms whose waiters to list (0: unused slot), written by userspace before each walk.
#[map]
static WATCHED_MMS: Array<u64> = Array::with_max_entries(MAX_WATCHED_MMS, 0);

const RECORD_LEN: u32 = core::mem::size_of::<BlockedRecord>() as u32;
/// `TASK_UNINTERRUPTIBLE`; `TASK_IDLE` includes it.
const TASK_UNINTERRUPTIBLE: u32 = 2;

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn blocked_tasks(ctx: *mut c_void) -> i32 {
    // struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; }
    // struct bpf_iter_meta { struct seq_file *seq; u64 session_id; u64 seq_num; }
    let (seq, seq_num, task) = unsafe {
        let meta = *(ctx as *const *const u64);
        let task = *(ctx as *const u64).add(1);
        (*(meta as *const *mut seq_file), *meta.add(2), task)
    };
    let Some(r) = BLOCKED_SCRATCH.get_ptr_mut(0) else { return 0 };
    if seq_num == 0 {
        write_waiters(seq, r);
    }
    if task == 0 {
        return 0;
    }
    let state: u32 = peek(task, offset!(task_state));
    if state & TASK_UNINTERRUPTIBLE == 0 {
        return 0;
    }
    unsafe {
        describe_task(r, task);
        (*r).kind = blocked_kind::TASK;
        (*r).mm = 0;
        (*r).state = state;
        let got =
            bpf_get_task_stack(task as *mut _, (*r).frames.as_mut_ptr() as *mut c_void, (BLOCKED_FRAMES * 8) as u32, 0);
        (*r).nr_frames = if got > 0 { (got / 8) as u32 } else { 0 };
        bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
    }
    0
}

/// One WAITER record per task on each watched mm's `subscriptions->wq`.
#[inline(always)]
fn write_waiters(seq: *mut seq_file, r: *mut BlockedRecord) {
    let head_off = offset!(subs_wq_head);
    let link = offset!(wq_entry_link);
    if head_off == probe_common::ABSENT || link == probe_common::ABSENT {
        return;
    }
    let mut i = 0;
    while i < MAX_WATCHED_MMS {
        let mm = WATCHED_MMS.get(i).copied().unwrap_or(0);
        i += 1;
        if mm == 0 {
            continue;
        }
        let subs: u64 = peek(mm, offset!(mm_subscriptions));
        if subs == 0 {
            continue;
        }
        let head = subs + head_off as u64;
        let mut node: u64 = peek(head, 0); // list_head.next
        let mut n = 0;
        while n < MAX_WAITERS {
            if node == 0 || node == head {
                break;
            }
            let entry = node - link as u64;
            let task: u64 = peek(entry, offset!(wq_entry_private));
            unsafe {
                describe_task(r, task);
                (*r).kind = blocked_kind::WAITER;
                (*r).mm = mm;
                (*r).state = peek(task, offset!(task_state));
                (*r).nr_frames = 0;
                bpf_seq_write(seq, r as *const c_void, RECORD_LEN);
            }
            node = peek(node, 0);
            n += 1;
        }
    }
}

#[inline(always)]
unsafe fn describe_task(r: *mut BlockedRecord, task: u64) {
    unsafe {
        (*r).pid = peek::<i32>(task, offset!(task_pid)) as u32;
        (*r).tgid = peek::<i32>(task, offset!(task_tgid)) as u32;
        (*r).comm = peek(task, offset!(task_comm));
        (*r)._pad = 0;
    }
}
