//! The interval-tree leak: `__mmu_notifier_invalidate_range_start` counts a range as active in
//! the mm's interval tree (and invalidates the interval subscribers it overlaps) before it calls
//! the list subscribers; when one of those fails a non-blockable start, `__start` returns
//! -EAGAIN without `mn_itree_inv_end()`, so the active count never drops back to 0 and
//! `invalidate_seq` stays odd from the next overlapping invalidation on. Everything that waits
//! for the tree to go idle (`mmu_interval_read_begin()`, `mmu_interval_notifier_remove()`) then
//! waits forever. `docs/findings/itree-leak.md` has the kernel source lines.
//!
//! This file gathers the evidence per range and per mm and words the violation; the engine
//! decides when a leak is certain (no range of the mm open, yet the tree still invalidating).
use serde::Serialize;

use crate::trace::{Addr, Comm, ItreeSnapshot, MmuEvent, Stack, Symbol};

/// What one outer range did before its `__start` returned: the interval subscribers whose
/// invalidate succeeded, and the list callback that failed.
#[derive(Clone, Debug, Default)]
pub struct ItreeWitness {
    pub intervals_ok: Vec<Symbol>,
    pub failed: Option<(Symbol, i64)>,
}

impl ItreeWitness {
    pub fn interval_succeeded(&mut self, callback: &Symbol) {
        if !self.intervals_ok.contains(callback) {
            self.intervals_ok.push(callback.clone());
        }
    }
}

/// One mm whose interval tree leaked, as much as the trace tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItreeLeak {
    pub mm: Addr,
    /// The process whose mm it is (as last named by its own blockable invalidations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<Comm>,
    /// The task whose `__start` leaked first (the OOM reaper, or a process_mrelease caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_comm: Option<Comm>,
    /// Trace time of the first leaking `__start` return.
    pub first_ts: u64,
    /// The first leaking range's event (`CLEAR` from the 7.x OOM reaper, `UNMAP` before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<MmuEvent>,
    /// Interval subscribers whose invalidate succeeded in a leaking range (empty: the active
    /// count leaked without any interval overlapping the range).
    pub intervals: Vec<Symbol>,
    /// The list callbacks whose failure made `__start` return early.
    pub failed_callbacks: Vec<Symbol>,
    /// `__start` calls that returned an error while leaving the tree more active than the
    /// mm's open ranges explain: one leaked active range each.
    pub leaked_ranges: u64,
    /// The kernel's own `active_invalidate_ranges` and `invalidate_seq` at the last event of
    /// this mm that carried them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_active_ranges: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_invalidate_seq: Option<u64>,
    /// The first leaking `__start`'s kernel stack, when stacks were captured: the code path
    /// (reaper or process_mrelease) that leaked. On the violation, not repeated here.
    #[serde(skip)]
    pub stack: Option<Stack>,
}

/// The range a failing `__start` was about, as the leak record needs it.
pub struct LeakingStart<'a> {
    pub mm: Addr,
    pub pid: Option<u32>,
    pub comm: Option<&'a Comm>,
    /// The task that called `__start`, and its kernel stack.
    pub by: (Option<u32>, Option<&'a Comm>),
    pub stack: Option<&'a Stack>,
    pub event: Option<MmuEvent>,
    pub witness: &'a ItreeWitness,
    pub ts: u64,
}

impl ItreeLeak {
    pub fn first(start: &LeakingStart<'_>, snapshot: ItreeSnapshot) -> ItreeLeak {
        let mut leak = ItreeLeak {
            mm: start.mm,
            pid: start.pid,
            comm: start.comm.cloned(),
            by_pid: start.by.0,
            by_comm: start.by.1.cloned(),
            first_ts: start.ts,
            event: start.event,
            intervals: Vec::new(),
            failed_callbacks: Vec::new(),
            leaked_ranges: 0,
            kernel_active_ranges: None,
            kernel_invalidate_seq: None,
            stack: start.stack.cloned(),
        };
        leak.add(start.witness, snapshot);
        leak
    }

    /// One more leaking `__start`.
    pub fn add(&mut self, witness: &ItreeWitness, snapshot: ItreeSnapshot) {
        self.leaked_ranges += 1;
        for cb in &witness.intervals_ok {
            if !self.intervals.contains(cb) {
                self.intervals.push(cb.clone());
            }
        }
        if let Some((cb, _)) = &witness.failed
            && !self.failed_callbacks.contains(cb)
        {
            self.failed_callbacks.push(cb.clone());
        }
        self.observe(snapshot);
    }

    pub fn observe(&mut self, snapshot: ItreeSnapshot) {
        self.kernel_active_ranges = snapshot.active.or(self.kernel_active_ranges);
        self.kernel_invalidate_seq = snapshot.seq.or(self.kernel_invalidate_seq);
    }

    /// Whether an interval subscriber overlapped a leaking range (the two cases need different
    /// explanations).
    pub fn overlapped(&self) -> bool {
        !self.intervals.is_empty()
    }

    /// The violation's explanation: who, what failed, what is left, what it does.
    pub fn explain(&self, active: Option<u64>, seq: Option<u64>) -> String {
        let who = match (&self.comm, self.pid) {
            (Some(c), Some(p)) => format!("mm {} of pid {p} ({c})", self.mm),
            (None, Some(p)) => format!("mm {} of pid {p}", self.mm),
            _ => format!("mm {}", self.mm),
        };
        let event = self.event.map(|e| format!(" {e}")).unwrap_or_default();
        let by = match (&self.by_comm, self.by_pid) {
            (Some(c), Some(p)) => format!(" (by pid {p}, {c})"),
            _ => String::new(),
        };
        let intervals = if self.overlapped() {
            format!("interval subscriber(s) {} had succeeded", list(&self.intervals))
        } else {
            "no interval subscriber overlapped it, but the range was already counted as active in the interval tree"
                .to_string()
        };
        let failed = if self.failed_callbacks.is_empty() {
            "a list subscriber failed".to_string()
        } else {
            format!("list callback {} failed", list(&self.failed_callbacks))
        };
        let mut left = Vec::new();
        if let Some(a) = active.filter(|a| *a > 0) {
            left.push(format!("{a} active invalidate range(s)"));
        }
        if let Some(s) = seq.filter(|s| s & 1 == 1) {
            left.push(format!("odd invalidate_seq {s}"));
        }
        let left = if left.is_empty() { "an interval tree still invalidating".into() } else { left.join(" and ") };
        format!(
            "{who}: in a non-blockable{event} range{by} {intervals}, then {failed} and __mmu_notifier_invalidate_range_start returned without ending the interval tree (no mn_itree_inv_end): {left} remain with no invalidation of that mm open, so mmu_interval_read_begin() and mmu_interval_notifier_remove() on it wait for an end that never comes"
        )
    }
}

fn list(symbols: &[Symbol]) -> String {
    symbols.iter().map(Symbol::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start<'a>(witness: &'a ItreeWitness, comm: &'a Comm) -> LeakingStart<'a> {
        LeakingStart {
            mm: Addr(0xffff888001000000),
            pid: Some(42),
            comm: Some(comm),
            by: (Some(17), None),
            stack: None,
            event: Some(MmuEvent::Clear),
            witness,
            ts: 7,
        }
    }

    #[test]
    fn names_the_intervals_the_failed_callback_and_what_is_left() {
        let comm = Comm::new("victim");
        let mut w = ItreeWitness::default();
        w.interval_succeeded(&Symbol::new("mmnt_invalidate_ok [mmnotif_test]"));
        w.interval_succeeded(&Symbol::new("mmnt_invalidate_ok [mmnotif_test]"));
        w.failed = Some((Symbol::new("mmnt_start_eagain_nonblock [mmnotif_test]"), -11));
        let mut leak = ItreeLeak::first(&start(&w, &comm), ItreeSnapshot { active: Some(1), seq: Some(9) });
        leak.add(&w, ItreeSnapshot { active: Some(2), seq: Some(9) });
        assert_eq!(leak.leaked_ranges, 2);
        assert_eq!(leak.intervals.len(), 1, "each subscriber is named once");
        assert_eq!(leak.kernel_active_ranges, Some(2));
        let text = leak.explain(Some(1), Some(9));
        assert!(text.starts_with("mm 0xffff888001000000 of pid 42 (victim):"), "{text}");
        assert!(text.contains("in a non-blockable clear range interval subscriber(s)"), "{text}");
        assert!(text.contains("interval subscriber(s) mmnt_invalidate_ok [mmnotif_test] had succeeded"), "{text}");
        assert!(text.contains("list callback mmnt_start_eagain_nonblock [mmnotif_test] failed"), "{text}");
        assert!(text.contains("1 active invalidate range(s) and odd invalidate_seq 9 remain"), "{text}");
    }

    #[test]
    fn says_so_when_no_interval_overlapped() {
        let comm = Comm::new("victim");
        let w = ItreeWitness { intervals_ok: Vec::new(), failed: None };
        let leak = ItreeLeak::first(&start(&w, &comm), ItreeSnapshot { active: Some(1), seq: Some(8) });
        assert!(!leak.overlapped());
        let text = leak.explain(Some(1), Some(8));
        assert!(text.contains("no interval subscriber overlapped it"), "{text}");
        assert!(text.contains("1 active invalidate range(s) remain"), "{text}");
        assert!(!text.contains("odd"), "{text}");
    }
}
