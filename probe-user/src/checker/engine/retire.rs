//! The end of a range's life: settling closed ranges once their subscriber ends had time to
//! arrive, and giving up on live ones whose task exited, whose key was reused or whose trace
//! ended. Decides unpaired-start and notifier-unpaired-start.
use super::*;

impl Checker {
    /// The task did something outside its subscriber callbacks, so every `__start`/`__end` it
    /// made before has returned: settle its closed ranges (except `keep`, the one this event
    /// is about).
    pub(super) fn settle_task(&mut self, tid: u32, keep: Option<Addr>, ts: u64) {
        let Some(task) = self.tasks.get_mut(&tid) else { return };
        if task.closing.is_empty() {
            return;
        }
        let mut closing = mem::take(&mut task.closing);
        let kept = keep.and_then(|k| closing.iter().position(|r| *r == k).map(|pos| closing.swap_remove(pos)));
        for range in closing.drain(..) {
            self.retire(RangeKey { tid, range }, ts);
        }
        if let Some(task) = self.tasks.get_mut(&tid) {
            closing.extend(kept);
            task.closing = closing;
        }
    }

    /// Forgets a closed range, reporting subscribers that never got their end.
    pub(super) fn retire(&mut self, key: RangeKey, ts: u64) {
        let Some(mut range) = self.outer.remove(&key) else { return };
        if range.phase.is_live() {
            // Callers retire only closed ranges; keep the live one rather than lose it.
            self.outer.insert(key, range);
            return;
        }
        let mut notifiers = mem::take(&mut range.notifiers);
        for n in notifiers.iter().filter(|n| n.phase == NotifierPhase::Open) {
            self.stats.subscriber_closed(n.row);
            let why = match range.phase {
                OuterPhase::Failed { .. } => "after __start failed",
                _ => "before the range was finished",
            };
            self.notifier_unpaired_start_in(&range, key, n, ts, why);
        }
        notifiers.clear();
        if self.spare_notifier_lists.len() < 64 {
            self.spare_notifier_lists.push(notifiers);
        }
    }

    pub(super) fn notifier_unpaired_start(&mut self, key: RangeKey, n: &NotifierRecord, ts: u64, why: &str) {
        self.stats.subscriber_closed(n.row);
        let Some(range) = self.outer.remove(&key) else { return };
        self.notifier_unpaired_start_in(&range, key, n, ts, why);
        self.outer.insert(key, range);
    }

    pub(super) fn notifier_unpaired_start_in(
        &mut self,
        range: &OuterRange,
        key: RangeKey,
        n: &NotifierRecord,
        ts: u64,
        why: &str,
    ) {
        if !self.rules.is_checked(RuleId::NotifierUnpairedStart)
            || !self.probes.judges(&n.callback, range.traced_start_ts())
        {
            return;
        }
        let (failed_ret, ret_seq) = match range.phase {
            OuterPhase::Failed { ret, ret_seq } => (Some(ret), Some(ret_seq)),
            _ => (None, None),
        };
        let explanation = wording::notifier_unpaired_start_words(&n.callback, failed_ret, why);
        let mut v = Violation::new(RuleId::NotifierUnpairedStart, ts, explanation);
        v.task = Some(TaskRef { pid: range.pid, tid: key.tid, comm: range.comm.clone() });
        v.mm = Some(range.mm);
        v.range = Some(range_ref(key.range, range.args));
        v.subscriber = Some(n.subscriber);
        v.callback = Some(n.callback.clone());
        v.events = [range.start_seq, n.start_seq, ret_seq].into_iter().flatten().collect();
        v.stack = range.stack.clone();
        let hint = match failed_ret {
            Some(_) if !range.saw_compensating_end => Some(self.kernel.skipped_end()),
            _ => self.kernel.early_subscriber_failure(n.callback.function()),
        };
        self.emit_with_hint(v, hint);
    }

    /// A live range will never end (task gone, trace over, key reused).
    pub(super) fn abandon_range(&mut self, key: RangeKey, ts: u64, why: Abandon) {
        let Some(mut range) = self.outer.remove(&key) else { return };
        if !range.phase.is_live() {
            self.outer.insert(key, range);
            self.retire(key, ts);
            return;
        }
        self.leave_live(key, range.mm);
        let mut still_open = Vec::new();
        for n in range.notifiers.iter().filter(|n| n.phase == NotifierPhase::Open) {
            self.stats.subscriber_closed(n.row);
            still_open.push(n.callback.function().to_owned());
        }
        let explanation = wording::unpaired_start_words(range.phase == OuterPhase::Starting, why, &still_open);
        let mut v = Violation::new(RuleId::UnpairedStart, ts, explanation);
        v.task = Some(TaskRef { pid: range.pid, tid: key.tid, comm: range.comm.clone() });
        v.mm = Some(range.mm);
        v.range = Some(range_ref(key.range, range.args));
        v.events = range.start_seq.into_iter().collect();
        v.events.extend(range.notifiers.iter().filter(|n| n.phase == NotifierPhase::Open).filter_map(|n| n.start_seq));
        v.stack = range.stack.take();
        self.emit(v);
        range.notifiers.clear();
        if self.spare_notifier_lists.len() < 64 {
            self.spare_notifier_lists.push(mem::take(&mut range.notifiers));
        }
    }

    pub(super) fn abandon_task(&mut self, tid: u32, ts: u64, why: Abandon) {
        self.forget_finishes(tid);
        let Some(task) = self.tasks.remove(&tid) else { return };
        for range in task.live {
            self.abandon_range(RangeKey { tid, range }, ts, why);
        }
        for range in task.closing {
            self.retire(RangeKey { tid, range }, ts);
        }
    }

    pub(super) fn drop_task_if_idle(&mut self, tid: u32) {
        if self.tasks.get(&tid).is_some_and(TaskState::is_idle) {
            self.tasks.remove(&tid);
        }
    }
}
