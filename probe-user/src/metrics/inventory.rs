//! Per-mm gauges from the notifier inventory (KVM's counters, interval-tree state), fed by
//! an [`InventoryPoller`](crate::inventory::InventoryPoller).

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use super::Shared;
use crate::inventory::{InventoryWalk, MmInventory, WalkError};

/// Processes beyond this many get no per-mm series (they are still counted in
/// `mmnotif_inventory_mms`): pids are labels, so their number must stay bounded.
pub const MAX_MM_SERIES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmGauges {
    /// The VM's position among the mm's KVM subscribers (`0`, `1`, …), not its address.
    pub vm: String,
    pub active_invalidate_count: Option<u64>,
    pub invalidate_in_progress: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmGauges {
    pub pid: String,
    pub comm: String,
    pub subscribers: usize,
    pub interval_subscribers: usize,
    pub itree_active: Option<u64>,
    /// `None` when neither `invalidate_seq` nor `active_invalidate_ranges` could be read.
    pub itree_invalidating: Option<bool>,
    pub kvm: Vec<KvmGauges>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct InventorySnapshot {
    pub mms: Vec<MmGauges>,
    pub total_mms: usize,
    /// Tasks stuck in a notifier wait, by the wait's function (every known wait has a row,
    /// so a scrape shows 0 rather than nothing).
    pub stuck: Vec<(&'static str, usize)>,
    pub refreshes_ok: u64,
    pub refreshes_failed: u64,
    pub last_refresh_unix_seconds: f64,
}

impl InventorySnapshot {
    /// Takes a fresh walk's result, keeping the refresh counters.
    pub fn update(&mut self, walk: &InventoryWalk, now_unix_seconds: f64) {
        let inventory = &walk.mms;
        self.mms = mm_gauges(inventory);
        self.total_mms = inventory.len();
        self.stuck = crate::inventory::NOTIFIER_WAITS
            .iter()
            .map(|w| (w.function, walk.stuck.iter().filter(|t| t.wait == w.function).count()))
            .collect();
        self.refreshes_ok += 1;
        self.last_refresh_unix_seconds = now_unix_seconds;
    }
}

/// The mms that get series: those mid-invalidation first (what an alert is about), then
/// those with a KVM VM, then by pid; one series set per pid.
fn mm_gauges(inventory: &[MmInventory]) -> Vec<MmGauges> {
    let busy = |mm: &MmInventory| {
        mm.itree_invalidating()
            || mm
                .subscribers
                .iter()
                .any(|s| s.kvm.as_ref().and_then(|k| k.mn_active_invalidate_count).is_some_and(|c| c > 0))
    };
    let has_kvm = |mm: &MmInventory| mm.subscribers.iter().any(|s| s.kvm.is_some());
    let mut order: Vec<&MmInventory> = inventory.iter().collect();
    order.sort_by_key(|mm| (!busy(mm), !has_kvm(mm), mm.pid));
    order.dedup_by_key(|mm| mm.pid);
    order
        .into_iter()
        .take(MAX_MM_SERIES)
        .map(|mm| MmGauges {
            pid: mm.pid.to_string(),
            comm: mm.comm.clone(),
            subscribers: mm.subscribers.len(),
            interval_subscribers: mm.intervals.len(),
            itree_active: mm.active_invalidate_ranges,
            itree_invalidating: (mm.invalidate_seq.is_some() || mm.active_invalidate_ranges.is_some())
                .then(|| mm.itree_invalidating()),
            kvm: mm
                .subscribers
                .iter()
                .filter_map(|s| s.kvm.as_ref())
                .enumerate()
                .map(|(i, k)| KvmGauges {
                    vm: i.to_string(),
                    active_invalidate_count: k.mn_active_invalidate_count,
                    invalidate_in_progress: k.mmu_invalidate_in_progress,
                })
                .collect(),
        })
        .collect()
}

/// Where a live view's inventory walks go to become gauges.
#[derive(Clone)]
pub struct InventoryFeed(pub(super) Arc<Shared>);

impl InventoryFeed {
    /// Takes a walk's outcome: fresh gauges, or one more failed refresh.
    pub fn record(&self, walk: &Result<InventoryWalk, &WalkError>) {
        match walk {
            Ok(walk) => self.0.update_inventory(|inv| inv.update(walk, unix_now())),
            Err(_) => self.0.update_inventory(|inv| inv.refreshes_failed += 1),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        inventory::{KvmState, Subscriber},
        trace::Addr,
    };

    fn mm(pid: u32, kvm_counts: &[u64], seq: Option<u64>) -> MmInventory {
        MmInventory {
            pid,
            comm: format!("proc{pid}"),
            mm: Addr(0xffff_8880_0000_0000 + u64::from(pid)),
            subscriptions: Addr(0xffff_8880_1000_0000),
            has_itree: seq.is_some(),
            invalidate_seq: seq,
            active_invalidate_ranges: seq.map(|_| 0),
            subscribers: kvm_counts
                .iter()
                .map(|&c| Subscriber {
                    subscriber: Addr(0xffff_8880_2000_0000),
                    ops: Addr(0xffff_ffff_8100_0000),
                    users: 1,
                    callbacks: vec![],
                    callback_addrs: [0; probe_common::OPS_SLOTS],
                    kvm: Some(KvmState {
                        kvm: Addr(0xffff_c900_0000_0000),
                        mn_active_invalidate_count: Some(c),
                        mmu_invalidate_in_progress: None,
                        unavailable: None,
                    }),
                })
                .collect(),
            intervals: vec![],
            truncated: false,
        }
    }

    #[test]
    fn labels_by_pid_and_vm_index_and_puts_stuck_mms_first() {
        let inv = vec![mm(30, &[0], Some(2)), mm(10, &[], None), mm(20, &[0, 1], None), mm(5, &[], Some(3))];
        let mut snap = InventorySnapshot::default();
        snap.update(&InventoryWalk { mms: inv, stuck: vec![] }, 1.5);
        let pids: Vec<&str> = snap.mms.iter().map(|m| m.pid.as_str()).collect();
        assert_eq!(
            pids,
            ["20", "5", "30", "10"],
            "mid-invalidation (count>0, odd seq) first, KVM before others, then by pid"
        );
        let p20 = &snap.mms[0];
        assert_eq!(
            p20.kvm.iter().map(|k| (k.vm.as_str(), k.active_invalidate_count)).collect::<Vec<_>>(),
            [("0", Some(0)), ("1", Some(1))]
        );
        assert_eq!(p20.itree_invalidating, None, "unknown without seq/active");
        assert_eq!(snap.mms[1].itree_invalidating, Some(true));
        assert_eq!(snap.mms[2].itree_invalidating, Some(false));
        assert_eq!((snap.total_mms, snap.refreshes_ok, snap.last_refresh_unix_seconds), (4, 1, 1.5));
        assert!(snap.stuck.iter().all(|(_, n)| *n == 0), "every known wait has a row, at 0: {:?}", snap.stuck);
        assert_eq!(snap.stuck.len(), crate::inventory::NOTIFIER_WAITS.len());
    }

    #[test]
    fn caps_the_series_but_counts_every_mm() {
        let inv: Vec<MmInventory> = (1..=(MAX_MM_SERIES as u32 + 10)).map(|pid| mm(pid, &[0], None)).collect();
        let mut snap = InventorySnapshot::default();
        snap.update(&InventoryWalk { mms: inv, stuck: vec![] }, 0.0);
        assert_eq!(snap.mms.len(), MAX_MM_SERIES);
        assert_eq!(snap.total_mms, MAX_MM_SERIES + 10);
    }
}
