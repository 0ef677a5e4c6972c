//! Who is stuck because of a notifier: tasks in uninterruptible sleep inside a kernel wait that
//! only a notifier's invalidation ending can finish, found by the `blocked_tasks` iterator
//! (task state and kernel stack), and tied to an mm when the task sits on that mm's
//! interval-tree wait queue. An interval-tree leak leaves such tasks behind for good.
use probe_common::{BlockedRecord, blocked_kind};
use serde::Serialize;

use super::{InventoryDecodeError, comm_str};
use crate::{kallsyms::Kallsyms, trace::Addr};

/// The iterator program in the object.
pub const BLOCKED_PROGRAM: &str = "blocked_tasks";
/// The map of mms whose wait queue the iterator reads.
pub(super) const WATCHED_MMS_MAP: &str = "WATCHED_MMS";

/// A kernel wait a notifier can leave hanging: the function the task sleeps in, and what it
/// is waiting for. One row per wait.
pub struct NotifierWait {
    pub function: &'static str,
    pub waits_for: &'static str,
}

pub const NOTIFIER_WAITS: &[NotifierWait] = &[
    NotifierWait {
        function: "mmu_interval_read_begin",
        waits_for: "the mm's interval tree to finish invalidating (a driver's fault path)",
    },
    NotifierWait {
        function: "mmu_interval_notifier_remove",
        waits_for: "the mm's interval tree to finish invalidating, to remove an interval subscriber",
    },
    NotifierWait {
        function: "kvm_swap_active_memslots",
        waits_for: "KVM's mn_active_invalidate_count to return to 0, to update memslots",
    },
];

/// A task stuck in one of the [`NOTIFIER_WAITS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockedTask {
    /// Thread id.
    pub tid: u32,
    pub pid: u32,
    pub comm: String,
    /// The wait's function (a [`NotifierWait::function`]).
    pub wait: &'static str,
    pub waits_for: &'static str,
    /// The mm whose interval-tree wait queue holds the task, when it is one the walk was asked
    /// about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mm: Option<Addr>,
    /// The kernel stack, innermost first, symbolized.
    pub stack: Vec<String>,
}

impl BlockedTask {
    /// One line for people: `tid 182 (mmnotif-oom) in mmu_interval_notifier_remove, waiting for ...`.
    pub fn describe(&self) -> String {
        let mm = self.mm.map(|mm| format!(" on mm {mm}")).unwrap_or_default();
        format!(
            "tid {} of pid {} ({}) blocked in {}{mm}, waiting for {}",
            self.tid, self.pid, self.comm, self.wait, self.waits_for
        )
    }
}

/// The notifier wait among a stack's functions, innermost first.
fn notifier_wait(stack: &[String]) -> Option<&'static NotifierWait> {
    stack.iter().find_map(|frame| {
        let function = frame.split(['+', ' ']).next().unwrap_or(frame);
        NOTIFIER_WAITS.iter().find(|w| w.function == function)
    })
}

/// Turns the iterator's output into the tasks stuck in a notifier wait; other blocked tasks are
/// dropped.
pub fn decode_blocked(bytes: &[u8], kallsyms: &Kallsyms) -> Result<Vec<BlockedTask>, InventoryDecodeError> {
    let size = size_of::<BlockedRecord>();
    if !bytes.len().is_multiple_of(size) {
        return Err(InventoryDecodeError::Length(bytes.len(), size));
    }
    let mut waiting_on = Vec::new();
    let mut out = Vec::new();
    for (i, chunk) in bytes.chunks_exact(size).enumerate() {
        // SAFETY: the chunk is exactly one record, written by the iterator program.
        let r = unsafe { std::ptr::read_unaligned(chunk.as_ptr() as *const BlockedRecord) };
        match r.kind {
            blocked_kind::WAITER => waiting_on.push((r.pid, Addr(r.mm))),
            blocked_kind::TASK => {
                let frames = r.frames.get(..r.nr_frames as usize).unwrap_or(&r.frames);
                let stack: Vec<String> = frames.iter().map(|a| kallsyms.describe(*a)).collect();
                let Some(wait) = notifier_wait(&stack) else { continue };
                out.push(BlockedTask {
                    tid: r.pid,
                    pid: r.tgid,
                    comm: comm_str(&r.comm),
                    wait: wait.function,
                    waits_for: wait.waits_for,
                    mm: None,
                    stack,
                });
            }
            other => return Err(InventoryDecodeError::Kind(i, other)),
        }
    }
    for task in &mut out {
        task.mm = waiting_on.iter().find(|(tid, _)| *tid == task.tid).map(|(_, mm)| *mm);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use probe_common::BLOCKED_FRAMES;

    use super::{super::tests::bytes, *};

    fn record(kind: u32, pid: u32, frames: &[u64], mm: u64) -> BlockedRecord {
        let mut r = BlockedRecord {
            kind,
            pid,
            tgid: 100,
            state: 2,
            comm: *b"mmnotif-oom\0\0\0\0\0",
            mm,
            nr_frames: frames.len() as u32,
            _pad: 0,
            frames: [0; BLOCKED_FRAMES],
        };
        r.frames[..frames.len()].copy_from_slice(frames);
        r
    }

    #[test]
    fn keeps_notifier_waits_and_ties_waiters_to_their_mm() {
        let k = Kallsyms::parse(
            "ffffffff81000000 t __schedule\nffffffff81001000 t schedule\n\
             ffffffff81002000 T mmu_interval_notifier_remove\nffffffff81003000 T io_schedule\n",
        )
        .unwrap();
        let stuck = record(1, 182, &[0xffffffff81000010, 0xffffffff81001020, 0xffffffff81002040], 0);
        let other = record(1, 7, &[0xffffffff81000010, 0xffffffff81003000], 0);
        let waiter = record(2, 182, &[], 0xffff888001000000);
        let out = decode_blocked(&bytes(&[waiter, stuck, other]), &k).unwrap();
        assert_eq!(out.len(), 1, "a task blocked elsewhere is not about notifiers: {out:?}");
        let t = &out[0];
        assert_eq!(
            (t.tid, t.pid, t.wait, t.mm),
            (182, 100, "mmu_interval_notifier_remove", Some(Addr(0xffff888001000000)))
        );
        assert_eq!(t.stack[2], "mmu_interval_notifier_remove+0x40");
        assert!(
            t.describe().contains("blocked in mmu_interval_notifier_remove on mm 0xffff888001000000"),
            "{}",
            t.describe()
        );
    }

    #[test]
    fn rejects_partial_output_and_unknown_kinds() {
        let k = Kallsyms::default();
        let one = bytes(&[record(1, 1, &[], 0)]);
        assert!(matches!(decode_blocked(&one[..9], &k), Err(InventoryDecodeError::Length(9, _))));
        assert_eq!(decode_blocked(&bytes(&[record(5, 1, &[], 0)]), &k), Err(InventoryDecodeError::Kind(0, 5)));
    }
}
