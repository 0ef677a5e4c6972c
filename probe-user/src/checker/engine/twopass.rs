//! Two-pass interval subscribers (7.2+): each `invalidate_start` that returned true and left a
//! finish pointer owes exactly one `invalidate_finish` with that pointer before its outer
//! `__start` returns. Decides interval-finish-missing and interval-finish-unstarted, and
//! interval-blockable-false for the first pass.
//!
//! The contract, in 7.2's mm/mmu_notifier.c: `mn_itree_invalidate` (:456-505) calls
//! `invalidate_start` instead of `invalidate` (:470-481), queues the finish only when the call
//! returned true and set `*finish` (:477-480), and runs every queued finish after the interval
//! loop (:495, through `mn_itree_finish_pass` :263-270), also when a later interval failed.
//! Finishes never run from `__end`. The release path (`mn_itree_release` :272-313) does the
//! same outside any `__start`: its starts and finishes pair here too, but a finish there is
//! judged only in traces without `probes_live` (nothing bounds when its start was probed).
use super::*;

impl Checker {
    pub(super) fn on_interval_start(&mut self, ev: &Event, i: &IntervalStart, seq: u64) {
        let key = RangeKey { tid: i.tid, range: i.range };
        if i.owes_finish() {
            let pending = PendingFinish {
                range: i.range,
                mm: i.mm,
                subscriber: i.subscriber,
                callback: i.callback.clone(),
                start_seq: seq,
            };
            // A pointer still pending from an earlier start was reported (or not judged) when
            // that start's __start returned; the newer start owns it now.
            self.pending_finishes.insert((i.tid, i.finish), pending);
        }
        // The first pass promises what `invalidate` does (:487-489 for a false one).
        let site = SubscriberSite { key, mm: i.mm, subscriber: i.subscriber, callback: &i.callback };
        self.interval_returned(ev, &site, i.ret, seq);
    }

    pub(super) fn on_interval_finish(&mut self, ev: &Event, f: &IntervalFinish, seq: u64) {
        // The finish pass runs inside the task's innermost `__start` that has not returned.
        let inner = self.tasks.get(&f.tid).and_then(|t| {
            t.live
                .iter()
                .rev()
                .map(|&range| RangeKey { tid: f.tid, range })
                .find(|key| self.outer.get(key).is_some_and(|r| r.phase == OuterPhase::Starting))
        });
        if let Some(pending) = self.pending_finishes.remove(&(f.tid, f.finish)) {
            if pending.subscriber == f.subscriber {
                return;
            }
            // Not this subscriber's: the start that queued the pointer still owes its finish.
            self.pending_finishes.insert((f.tid, f.finish), pending);
        }
        let range_start_ts = inner.and_then(|key| self.outer.get(&key)).and_then(|r| r.traced_start_ts());
        if !self.probes.judges(&f.callback, range_start_ts) {
            return;
        }
        let key = inner.unwrap_or(RangeKey { tid: f.tid, range: Addr(0) });
        let site = SubscriberSite { key, mm: f.mm, subscriber: f.subscriber, callback: &f.callback };
        let outer_seq = inner.and_then(|key| self.outer.get(&key)).and_then(|r| r.start_seq);
        let range = inner.and_then(|key| self.outer.get(&key));
        let mut v = subscriber_violation(
            RuleId::IntervalFinishUnstarted,
            ev,
            &site,
            range,
            wording::finish_unstarted_words(&f.callback, f.finish, inner.is_some()),
            [outer_seq, Some(seq)],
        );
        if inner.is_none() {
            v.range = None;
        }
        self.emit(v);
    }

    /// `__start` of `key` returned with `ret`: every finish its first passes queued is owed by
    /// now.
    pub(super) fn settle_finishes(&mut self, ev: &Event, key: RangeKey, ret: i64, seq: u64) {
        if self.pending_finishes.is_empty() {
            return;
        }
        let mut owed: Vec<((u32, Addr), PendingFinish)> = self
            .pending_finishes
            .iter()
            .filter(|((tid, _), p)| *tid == key.tid && p.range == key.range)
            .map(|(k, p)| (*k, p.clone()))
            .collect();
        // Hash-map order must not leak into the output order.
        owed.sort_by_key(|(_, p)| p.start_seq);
        for ((tid, finish), pending) in owed {
            self.pending_finishes.remove(&(tid, finish));
            let range = self.outer.get(&key);
            if !self.probes.judges(&pending.callback, range.and_then(|r| r.traced_start_ts())) {
                continue;
            }
            let outer_seq = range.and_then(|r| r.start_seq);
            let site =
                SubscriberSite { key, mm: pending.mm, subscriber: pending.subscriber, callback: &pending.callback };
            let v = subscriber_violation(
                RuleId::IntervalFinishMissing,
                ev,
                &site,
                range,
                wording::finish_missing_words(&pending.callback, finish, ret),
                [outer_seq, Some(pending.start_seq), Some(seq)],
            );
            self.emit(v);
        }
    }

    /// The task is gone (or the trace ended): what it still owes can no longer be paid, but
    /// no `__start` return bounded it, so it is dropped unjudged.
    pub(super) fn forget_finishes(&mut self, tid: u32) {
        if !self.pending_finishes.is_empty() {
            self.pending_finishes.retain(|(t, _), _| *t != tid);
        }
    }
}
