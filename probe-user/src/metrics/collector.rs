//! The client library's `Collector` over the published snapshots: every scrape turns the
//! latest session snapshot, the inventory and the session's constant facts into families.

use std::sync::Arc;

use prometheus::{core::Desc, proto::MetricFamily};

use super::{
    Shared,
    families::{self, Family, HistogramValue},
    inventory::InventorySnapshot,
    labels::{EVENT_LABELS, blockable_label},
    snapshot::{DurationHistogram, SessionInfo, SessionSnapshot},
};
use crate::{checker::RuleId, clock::monotonic_ns, trace::EventType};

pub struct SnapshotCollector {
    descs: Vec<Desc>,
    shared: Arc<Shared>,
}

impl SnapshotCollector {
    pub fn new(shared: Arc<Shared>) -> prometheus::Result<SnapshotCollector> {
        let descs = families::ALL.iter().map(|f| f.desc()).collect::<prometheus::Result<_>>()?;
        Ok(SnapshotCollector { descs, shared })
    }
}

impl prometheus::core::Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (info, session, inventory) = self.shared.read();
        encode(&info, &session, &inventory, monotonic_ns())
    }
}

fn histogram(h: &DurationHistogram) -> HistogramValue<'_> {
    HistogramValue { buckets: &h.buckets, sum: h.sum_seconds, count: h.count }
}

/// All families for one scrape that have series; `now_ns` (CLOCK_MONOTONIC) dates the open-range age.
pub fn encode(info: &SessionInfo, s: &SessionSnapshot, inv: &InventorySnapshot, now_ns: u64) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(families::ALL.len());
    let mut push = |family: &'static Family, fill: &dyn Fn(&mut families::FamilyBuilder)| {
        let mut b = family.builder();
        fill(&mut b);
        out.push(b.build());
    };

    push(&families::TRACER_INFO, &|b| {
        b.gauge(&[&info.version, &info.kernel, info.mode], 1.0);
    });
    push(&families::HOOK_INFO, &|b| {
        for (hook, method) in &info.hooks {
            b.gauge(&[hook, method], 1.0);
        }
    });
    push(&families::RULE_CHECKED, &|b| {
        for (rule, checked) in RuleId::ALL.iter().zip(s.rule_checked) {
            b.gauge(&[rule.as_str()], if checked { 1.0 } else { 0.0 });
        }
    });
    push(&families::EVENTS, &|b| {
        for (kind, n) in EventType::ALL.iter().zip(s.events) {
            b.counter(&[kind.as_str()], n);
        }
    });
    for (family, counts) in
        [(&families::RANGE_STARTS, &s.breakdown.range_starts), (&families::RANGE_ENDS, &s.breakdown.range_ends)]
    {
        push(family, &|b| {
            for (event, by_blockable) in EVENT_LABELS.iter().zip(counts) {
                for (blockable, n) in by_blockable.iter().enumerate() {
                    b.counter(&[event, blockable_label(blockable == 1)], *n);
                }
            }
        });
    }
    push(&families::START_FAILURES, &|b| {
        // The one errno a start may legitimately return is always present, so rate() works
        // from the first scrape.
        for level in ["range", "subscriber"] {
            if !s.breakdown.start_failures.contains_key(&(level, "EAGAIN".to_owned())) {
                b.counter(&[level, "EAGAIN"], 0);
            }
        }
        for ((level, errno), n) in &s.breakdown.start_failures {
            b.counter(&[level, errno], *n);
        }
    });
    push(&families::SUBSCRIBER_CALLS, &|b| {
        for row in &s.callbacks {
            b.counter(&[&row.callback, row.kind, "start"], row.starts);
            b.counter(&[&row.callback, row.kind, "end"], row.ends);
        }
    });
    push(&families::SUBSCRIBER_FAILURES, &|b| {
        for row in &s.callbacks {
            b.counter(&[&row.callback, row.kind], row.failures);
        }
    });
    push(&families::SUBSCRIBER_OPEN, &|b| {
        for row in &s.callbacks {
            b.gauge(&[&row.callback, row.kind], row.open_now as f64);
        }
    });
    push(&families::SUBSCRIBER_DURATION, &|b| {
        for row in &s.callbacks {
            b.histogram(&[&row.callback, row.kind], &histogram(&row.durations));
        }
    });
    push(&families::RANGE_DURATION, &|b| {
        b.histogram(&[], &histogram(&s.range_durations));
    });
    push(&families::OPEN_RANGES, &|b| {
        b.gauge(&[], s.open_ranges as f64);
    });
    push(&families::CHECKER_STATE, &|b| {
        for (table, entries) in s.checker_state.rows() {
            b.gauge(&[table], entries as f64);
        }
    });
    push(&families::OLDEST_OPEN_RANGE_AGE, &|b| {
        b.gauge(&[], s.oldest_open_age_seconds(now_ns));
    });
    push(&families::VIOLATIONS, &|b| {
        for (rule, n) in RuleId::ALL.iter().zip(s.violations) {
            b.counter(&[rule.as_str(), &rule.severity().to_string()], n);
        }
    });
    push(&families::LOST_EVENTS, &|b| {
        b.counter(&["ring_full"], s.lost_ring_full);
        b.counter(&["probe_missed"], s.probe_missed);
        b.counter(&["undecodable"], s.undecodable);
    });
    push(&families::INCOMPLETE_RECORDS, &|b| {
        for (cause, n) in s.incomplete.by_cause() {
            b.counter(&[cause], n);
        }
    });
    push(&families::KERNEL_WARNINGS, &|b| {
        b.counter(&["mmu_notifier"], s.warnings_mmu_notifier);
        b.counter(&["other"], s.warnings_other);
    });
    push(&families::RECORDS_EMITTED, &|b| {
        b.counter(&[], s.records_emitted);
    });
    push(&families::RECORDS_RECEIVED, &|b| {
        b.counter(&[], s.records_received);
    });
    push(&families::MM_SUBSCRIBERS, &|b| {
        for mm in &inv.mms {
            b.gauge(&[&mm.pid, &mm.comm], mm.subscribers as f64);
        }
    });
    push(&families::MM_INTERVAL_SUBSCRIBERS, &|b| {
        for mm in &inv.mms {
            b.gauge(&[&mm.pid, &mm.comm], mm.interval_subscribers as f64);
        }
    });
    push(&families::MM_ITREE_ACTIVE, &|b| {
        for mm in &inv.mms {
            if let Some(active) = mm.itree_active {
                b.gauge(&[&mm.pid, &mm.comm], active as f64);
            }
        }
    });
    push(&families::MM_ITREE_INVALIDATING, &|b| {
        for mm in &inv.mms {
            if let Some(invalidating) = mm.itree_invalidating {
                b.gauge(&[&mm.pid, &mm.comm], if invalidating { 1.0 } else { 0.0 });
            }
        }
    });
    push(&families::KVM_ACTIVE_INVALIDATE, &|b| {
        for mm in &inv.mms {
            for vm in &mm.kvm {
                if let Some(count) = vm.active_invalidate_count {
                    b.gauge(&[&mm.pid, &mm.comm, &vm.vm], count as f64);
                }
            }
        }
    });
    push(&families::KVM_INVALIDATE_IN_PROGRESS, &|b| {
        for mm in &inv.mms {
            for vm in &mm.kvm {
                if let Some(n) = vm.invalidate_in_progress {
                    b.gauge(&[&mm.pid, &mm.comm, &vm.vm], n as f64);
                }
            }
        }
    });
    push(&families::STUCK_TASKS, &|b| {
        for (wait, n) in &inv.stuck {
            b.gauge(&[wait], *n as f64);
        }
    });
    push(&families::INVENTORY_MMS, &|b| {
        b.gauge(&[], inv.total_mms as f64);
    });
    push(&families::INVENTORY_REFRESHES, &|b| {
        b.counter(&["ok"], inv.refreshes_ok);
        b.counter(&["error"], inv.refreshes_failed);
    });
    push(&families::INVENTORY_LAST_REFRESH, &|b| {
        b.gauge(&[], inv.last_refresh_unix_seconds);
    });
    // A family without series (no inventory yet, no callback seen) is left out, not served
    // as a bare header.
    out.retain(|f| !f.get_metric().is_empty());
    out
}
