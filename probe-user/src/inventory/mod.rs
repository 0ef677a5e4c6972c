//! The notifier inventory: every mm with subscriptions, its list subscribers and their
//! callbacks, interval-tree state and KVM's own counters, read by the `iter/task` program.

mod blocked;
mod poller;

use std::io::Read;

use aya::{Ebpf, programs::Iter};
use probe_common::{InventoryRecord, OPS_SLOTS, OpsSlot, inventory_kind};
use serde::Serialize;

use crate::{
    kallsyms::Kallsyms,
    object::{KernelContext, LoadError, TracerOptions, error_chain, load_object, require_root},
    trace::Addr,
};

pub use blocked::{BLOCKED_PROGRAM, BlockedTask, NOTIFIER_WAITS, NotifierWait, decode_blocked};
pub use poller::{InventoryPoller, REFRESH_INTERVAL};

pub const ITER_PROGRAM: &str = "inventory_task";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KvmState {
    pub kvm: Addr,
    /// `kvm->mn_active_invalidate_count`: non-zero while an invalidation is open; stuck non-zero
    /// means a missing end.
    pub mn_active_invalidate_count: Option<u64>,
    /// `kvm->mmu_invalidate_in_progress` (`mmu_notifier_count` before 6.0).
    pub mmu_invalidate_in_progress: Option<i64>,
    /// Why this VM's counters cannot be read on this kernel (its `struct kvm` is not found),
    /// when the subscriber is KVM's by its callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<&'static str>,
}

/// Why a KVM subscriber's counters are unreadable: nothing describes `struct kvm`.
pub const KVM_WITHOUT_BTF: &str =
    "no BTF describes struct kvm (KVM is a module and this kernel has no module BTF, as before 5.11)";

impl KvmState {
    /// `kvm 0x…: mn_active_invalidate_count 0 · mmu_invalidate_in_progress 0`, or why the
    /// counters cannot be read; `sep` goes between the two counters. A counter this kernel's
    /// `struct kvm` does not have (5.10 has no `mn_active_invalidate_count`) says so.
    pub fn describe(&self, sep: &str) -> String {
        if let Some(why) = self.unavailable {
            return format!("kvm: counters unavailable on this kernel: {why}");
        }
        let known = |v: Option<String>| v.unwrap_or_else(|| "not in this kernel".into());
        format!(
            "kvm {}: mn_active_invalidate_count {}{sep}mmu_invalidate_in_progress {}",
            self.kvm,
            known(self.mn_active_invalidate_count.map(|v| v.to_string())),
            known(self.mmu_invalidate_in_progress.map(|v| v.to_string()))
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subscriber {
    pub subscriber: Addr,
    pub ops: Addr,
    pub users: u32,
    /// Non-NULL callbacks, by ops member name, symbolized.
    pub callbacks: Vec<(String, String)>,
    pub kvm: Option<KvmState>,
    /// The same callbacks as addresses, by [`OpsSlot`] (0: NULL), for attaching probes.
    #[serde(skip)]
    pub callback_addrs: [u64; OPS_SLOTS],
}

/// A `struct mmu_interval_notifier` in an mm's interval tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IntervalSubscriber {
    pub subscriber: Addr,
    pub ops: Addr,
    /// The watched range, `[start, last]` inclusive as the kernel keeps it.
    pub start: Addr,
    pub last: Addr,
    /// Even when idle, odd while an invalidation covering it is in progress.
    pub invalidate_seq: u64,
    /// `ops->invalidate`, symbolized.
    pub invalidate: String,
    #[serde(skip)]
    pub invalidate_addr: u64,
    /// The two-pass `ops->invalidate_start` / `ops->invalidate_finish`, symbolized; absent
    /// when NULL (and always before 7.2, which has no such ops).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidate_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidate_finish: Option<String>,
    #[serde(skip)]
    pub invalidate_start_addr: u64,
    #[serde(skip)]
    pub invalidate_finish_addr: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MmInventory {
    pub pid: u32,
    pub comm: String,
    pub mm: Addr,
    pub subscriptions: Addr,
    pub has_itree: bool,
    pub invalidate_seq: Option<u64>,
    pub active_invalidate_ranges: Option<u64>,
    pub subscribers: Vec<Subscriber>,
    /// Interval subscribers, in address order.
    pub intervals: Vec<IntervalSubscriber>,
    /// The list or the tree had more subscribers than the walk reads.
    pub truncated: bool,
}

impl MmInventory {
    /// Whether an interval of this mm is being invalidated now. An idle interval's own
    /// sequence is odd too (one below the tree's): it is invalidating only while it equals the
    /// tree's odd sequence.
    pub fn interval_invalidating(&self, iv: &IntervalSubscriber) -> bool {
        Some(iv.invalidate_seq) == self.invalidate_seq && iv.invalidate_seq % 2 == 1
    }

    /// The interval tree is mid-invalidation: odd sequence or active ranges.
    pub fn itree_invalidating(&self) -> bool {
        self.invalidate_seq.is_some_and(|s| s % 2 == 1) || self.active_invalidate_ranges.is_some_and(|a| a > 0)
    }
}

/// One walk for a live view: every mm with subscriptions, and the tasks stuck in a notifier
/// wait (tied to an mm when they wait on the interval tree of one that is invalidating).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryWalk {
    pub mms: Vec<MmInventory>,
    pub stuck: Vec<BlockedTask>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryDecodeError {
    #[error("inventory output is {0} bytes, not a multiple of the {1}-byte record")]
    Length(usize, usize),
    #[error("inventory record {0} has unknown kind {1}")]
    Kind(usize, u32),
    #[error("inventory output ends with subscribers that no mm record follows")]
    Dangling,
}

pub fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// Turns the iterator's byte stream into inventory entries. Values whose member `offsets`
/// marks [`probe_common::ABSENT`] are reported as unknown rather than 0.
pub fn decode(
    bytes: &[u8],
    kallsyms: &Kallsyms,
    offsets: &probe_common::KernelOffsets,
) -> Result<Vec<MmInventory>, InventoryDecodeError> {
    let size = size_of::<InventoryRecord>();
    if !bytes.len().is_multiple_of(size) {
        return Err(InventoryDecodeError::Length(bytes.len(), size));
    }
    let known = |off: u32| off != probe_common::ABSENT;
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut pending_intervals = Vec::new();
    for (i, chunk) in bytes.chunks_exact(size).enumerate() {
        // SAFETY: the chunk is exactly one record, written by the iterator program.
        let r = unsafe { std::ptr::read_unaligned(chunk.as_ptr() as *const InventoryRecord) };
        match r.kind {
            inventory_kind::SUBSCRIBER => {
                let callbacks = OpsSlot::ALL
                    .iter()
                    .zip(r.callbacks.iter())
                    .filter(|(_, addr)| **addr != 0)
                    .map(|(slot, addr)| (slot.as_str().to_string(), kallsyms.describe(*addr)))
                    .collect();
                let kvm = if r.kvm != 0 {
                    Some(KvmState {
                        kvm: Addr(r.kvm),
                        mn_active_invalidate_count: known(offsets.kvm_mn_active_invalidate_count)
                            .then_some(r.kvm_mn_active_invalidate_count),
                        mmu_invalidate_in_progress: known(offsets.kvm_invalidate_in_progress)
                            .then_some(r.kvm_invalidate_in_progress),
                        unavailable: None,
                    })
                } else {
                    // KVM's by its start callback, but without the offset of its notifier in
                    // struct kvm the VM cannot be found.
                    let kvm_start = offsets.kvm_start_callback != 0
                        && r.callbacks[OpsSlot::InvalidateRangeStart as usize] == offsets.kvm_start_callback;
                    (kvm_start && !known(offsets.kvm_mmu_notifier)).then_some(KvmState {
                        kvm: Addr(0),
                        mn_active_invalidate_count: None,
                        mmu_invalidate_in_progress: None,
                        unavailable: Some(KVM_WITHOUT_BTF),
                    })
                };
                pending.push(Subscriber {
                    subscriber: Addr(r.subscriber),
                    ops: Addr(r.ops),
                    users: r.users,
                    callbacks,
                    kvm,
                    callback_addrs: r.callbacks,
                });
            }
            inventory_kind::INTERVAL => pending_intervals.push(IntervalSubscriber {
                subscriber: Addr(r.subscriber),
                ops: Addr(r.ops),
                start: Addr(r.interval_start),
                last: Addr(r.interval_last),
                invalidate_seq: r.interval_seq,
                invalidate: kallsyms.describe(r.interval_invalidate),
                invalidate_addr: r.interval_invalidate,
                invalidate_start: (r.interval_invalidate_start != 0)
                    .then(|| kallsyms.describe(r.interval_invalidate_start)),
                invalidate_finish: (r.interval_invalidate_finish != 0)
                    .then(|| kallsyms.describe(r.interval_invalidate_finish)),
                invalidate_start_addr: r.interval_invalidate_start,
                invalidate_finish_addr: r.interval_invalidate_finish,
            }),
            inventory_kind::MM => out.push(MmInventory {
                pid: r.pid,
                comm: comm_str(&r.comm),
                mm: Addr(r.mm),
                subscriptions: Addr(r.subscriptions),
                has_itree: r.has_itree != 0,
                invalidate_seq: known(offsets.subs_invalidate_seq).then_some(r.invalidate_seq),
                active_invalidate_ranges: known(offsets.subs_active_invalidate_ranges)
                    .then_some(r.active_invalidate_ranges),
                subscribers: std::mem::take(&mut pending),
                intervals: std::mem::take(&mut pending_intervals),
                truncated: r.truncated != 0,
            }),
            other => return Err(InventoryDecodeError::Kind(i, other)),
        }
    }
    if !pending.is_empty() || !pending_intervals.is_empty() {
        return Err(InventoryDecodeError::Dangling);
    }
    // A process whose leader has exited is reported by each of its threads: keep one.
    let mut seen = std::collections::HashSet::new();
    out.retain(|mm| seen.insert(mm.mm));
    Ok(out)
}

/// Loads and runs the iterator `program` once; returns its raw output.
pub fn run_iterator(ebpf: &mut Ebpf, program: &str, kernel: &KernelContext) -> Result<Vec<u8>, LoadError> {
    let err =
        |e: &(dyn std::error::Error + 'static)| LoadError::Other(format!("iterator {program}: {}", error_chain(e)));
    let prog: &mut Iter = ebpf
        .program_mut(program)
        .ok_or_else(|| LoadError::Other(format!("program {program} missing")))?
        .try_into()
        .map_err(|e| err(&e))?;
    if prog.fd().is_err() {
        // Loaded once: the walks a live view repeats reuse the loaded program.
        let btf = kernel.aya_btf().ok_or_else(|| LoadError::Other(format!("iterator {program}: no kernel BTF")))?;
        prog.load("task", &btf).map_err(|e| err(&e))?;
    }
    let link_id = prog.attach().map_err(|e| err(&e))?;
    let link = prog.take_link(link_id).map_err(|e| err(&e))?;
    let mut file = link.into_file().map_err(|e| err(&e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| LoadError::Other(format!("reading iterator {program}: {e}")))?;
    Ok(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Decode(#[from] InventoryDecodeError),
}

/// The iterator program of an object of its own, loaded once and walked as often as needed.
pub struct InventoryWalker {
    kernel: KernelContext,
    ebpf: Ebpf,
}

impl InventoryWalker {
    /// Loads the object for `kernel` (a live session passes a copy of its own context, so
    /// the kernel's BTF is not parsed twice).
    pub fn open(kernel: KernelContext) -> Result<InventoryWalker, LoadError> {
        require_root()?;
        // The ring buffer is not used by the iterator: one page is enough.
        let ebpf = load_object(&kernel, &TracerOptions { ring_bytes: 4096, ..TracerOptions::default() })?;
        crate::memory::return_freed();
        Ok(InventoryWalker { kernel, ebpf })
    }

    /// Every mm with subscriptions, as of now.
    pub fn walk(&mut self) -> Result<Vec<MmInventory>, WalkError> {
        let bytes = run_iterator(&mut self.ebpf, ITER_PROGRAM, &self.kernel)?;
        Ok(decode(&bytes, &self.kernel.kallsyms, &self.kernel.offsets)?)
    }

    /// [`InventoryWalker::walk`], then the stuck tasks, watching the mms that are invalidating.
    pub fn walk_all(&mut self) -> Result<InventoryWalk, WalkError> {
        let mms = self.walk()?;
        let watched: Vec<Addr> = mms.iter().filter(|m| m.itree_invalidating()).map(|m| m.mm).collect();
        let stuck = self.blocked(&watched)?;
        Ok(InventoryWalk { mms, stuck })
    }

    /// The tasks stuck in a notifier wait, as of now; those on the interval-tree wait queue of
    /// one of `watched` (at most [`probe_common::MAX_WATCHED_MMS`]) carry that mm.
    pub fn blocked(&mut self, watched: &[Addr]) -> Result<Vec<BlockedTask>, WalkError> {
        let map = self
            .ebpf
            .map_mut(blocked::WATCHED_MMS_MAP)
            .ok_or_else(|| LoadError::Other(format!("map {} missing", blocked::WATCHED_MMS_MAP)))?;
        let mut slots: aya::maps::Array<_, u64> = aya::maps::Array::try_from(map)
            .map_err(|e| LoadError::Other(format!("{}: {e}", blocked::WATCHED_MMS_MAP)))?;
        for i in 0..probe_common::MAX_WATCHED_MMS {
            let mm = watched.get(i as usize).map_or(0, |a| a.0);
            slots.set(i, mm, 0).map_err(|e| LoadError::Other(format!("{}: {e}", blocked::WATCHED_MMS_MAP)))?;
        }
        let bytes = run_iterator(&mut self.ebpf, blocked::BLOCKED_PROGRAM, &self.kernel)?;
        Ok(decode_blocked(&bytes, &self.kernel.kallsyms)?)
    }
}

/// Renders the stuck tasks for people (nothing when there are none).
pub fn render_blocked(blocked: &[BlockedTask]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for task in blocked {
        let _ = writeln!(s, "stuck: {}", task.describe());
    }
    s
}

/// Renders the inventory for people.
pub fn render_text(mms: &[MmInventory]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if mms.is_empty() {
        s.push_str("no process has mmu notifier subscriptions\n");
    }
    for mm in mms {
        let _ = write!(s, "pid {} ({}) mm {} subscriptions {}", mm.pid, mm.comm, mm.mm, mm.subscriptions);
        let _ = write!(s, "  itree: {}", if mm.has_itree { "yes" } else { "no" });
        if let Some(seq) = mm.invalidate_seq {
            let _ = write!(s, " seq {seq}{}", if seq % 2 == 1 { " (invalidating)" } else { "" });
        }
        if let Some(a) = mm.active_invalidate_ranges {
            let _ = write!(s, " active {a}");
        }
        s.push('\n');
        for (i, sub) in mm.subscribers.iter().enumerate() {
            let _ = writeln!(s, "  [{i}] subscriber {} ops {} users {}", sub.subscriber, sub.ops, sub.users);
            for (slot, sym) in &sub.callbacks {
                let _ = writeln!(s, "      {slot:<31} {sym}");
            }
            if let Some(k) = &sub.kvm {
                let _ = writeln!(s, "      {}", k.describe("  "));
            }
        }
        for (i, iv) in mm.intervals.iter().enumerate() {
            let busy = if mm.interval_invalidating(iv) { " (invalidating)" } else { "" };
            let _ = writeln!(
                s,
                "  [interval {i}] subscriber {} [{}, {}] seq {}{busy}",
                iv.subscriber, iv.start, iv.last, iv.invalidate_seq
            );
            let _ = writeln!(s, "      {:<31} {}", "invalidate", iv.invalidate);
            for (slot, sym) in
                [("invalidate_start", &iv.invalidate_start), ("invalidate_finish", &iv.invalidate_finish)]
            {
                if let Some(sym) = sym {
                    let _ = writeln!(s, "      {slot:<31} {sym}");
                }
            }
        }
        if mm.truncated {
            let _ =
                writeln!(s, "  (more subscribers than the {} per kind the walk reads)", probe_common::MAX_SUBSCRIBERS);
        }
    }
    s
}

#[cfg(test)]
mod tests;
