//! The outer calls: `__mmu_notifier_invalidate_range_start`, its return and
//! `__mmu_notifier_invalidate_range_end`, paired per (task, range struct). Decides
//! unpaired-end, end-after-failed-start, range-mismatch, nesting-order, bad-range, and the
//! outer start's blockable-failure and bad-errno.
use super::*;

impl Checker {
    pub(super) fn on_range_start(&mut self, ev: &Event, call: &RangeCall, seq: u64) {
        self.stats.range_started(call.mm, call.blockable, ev.pid, ev.comm.as_ref());

        let key = RangeKey { tid: call.tid, range: call.range };
        self.settle_task(call.tid, None, ev.ts);
        if self.outer.get(&key).is_some_and(|r| r.phase.is_live()) {
            self.abandon_range(key, ev.ts, Abandon::Restarted);
        } else if self.outer.contains_key(&key) {
            self.retire(key, ev.ts);
        }

        let args = RangeArgs { start: call.start, end: call.end, event: call.event, blockable: call.blockable };
        let notifiers = self.spare_notifier_lists.pop().unwrap_or_default();
        let phase = if self.has_ret_hook { OuterPhase::Starting } else { OuterPhase::Open };
        let mut range = OuterRange::seen_at(phase, call.mm, Some(args), ev, notifiers);
        range.start_seq = Some(seq);
        range.stack = ev.stack.clone();
        self.outer.insert(key, range);
        self.tasks.entry(call.tid).or_default().live.push(call.range);
        self.mms.entry(call.mm).or_default().live_ranges += 1;
        self.check_range_args(ev, call, seq, true);
    }

    pub(super) fn on_range_start_ret(&mut self, ev: &Event, ret: &RangeStartRet, seq: u64) {
        let key = RangeKey { tid: ret.tid, range: ret.range };
        self.settle_task(ret.tid, Some(ret.range), ev.ts);
        self.settle_finishes(ev, key, ret.ret, seq);
        let Some(range) = self.outer.get_mut(&key) else { return };
        if range.phase != OuterPhase::Starting {
            return;
        }
        let mm = range.mm;
        if ret.ret == 0 {
            range.phase = OuterPhase::Open;
        } else {
            range.phase = OuterPhase::Failed { ret: ret.ret, ret_seq: seq };
            range.closed_ts = ev.ts;
            let blockable = range.args.is_some_and(|a| a.blockable);
            let report_blockable = blockable && !range.reported_blockable_failure;
            let report_errno = ret.ret != EAGAIN && !range.reported_bad_errno;
            let start_seq = range.start_seq;
            let witness = mem::take(&mut range.itree);
            let (pid, comm, event) = (range.pid, range.comm.clone(), range.args.map(|a| a.event));
            let stack = range.stack.clone();
            self.close_live(key, mm);
            // More ranges active in the tree than this mm has open: this __start left its own.
            let open = self.mms.get(&mm).map_or(0, |m| u64::from(m.live_ranges));
            if ret.itree.active.is_some_and(|a| a > open) && self.rules.is_checked(RuleId::ItreeLeak) {
                match self.leaks.get_mut(&mm) {
                    Some(leak) => leak.add(&witness, ret.itree),
                    None => {
                        let (owner_pid, owner_comm) = self.stats.mm_owner(mm);
                        let start = LeakingStart {
                            mm,
                            pid: owner_pid,
                            comm: owner_comm.as_ref(),
                            by: (pid, comm.as_ref()),
                            stack: stack.as_ref(),
                            event,
                            witness: &witness,
                            ts: ev.ts,
                        };
                        self.leaks.insert(mm, ItreeLeak::first(&start, ret.itree));
                    }
                }
            }
            self.stats.range_failed(mm);
            if report_blockable {
                let v = outer_violation(
                    RuleId::BlockableFailure,
                    ev,
                    key,
                    self.outer.get(&key),
                    format!(
                        "__mmu_notifier_invalidate_range_start failed with {} in a blockable range, where no subscriber may fail",
                        errno_name(ret.ret)
                    ),
                    [start_seq, Some(seq)],
                );
                let hint = self.kernel.blockable_failure();
                self.emit_with_hint(v, Some(hint));
            }
            if report_errno {
                self.bad_errno(ev, key, None, ret.ret, [start_seq, Some(seq)], None);
            }
        }
        self.observe_itree(mm, ret.itree, ev.ts, seq, Some(ret.tid));
    }

    pub(super) fn on_range_end(&mut self, ev: &Event, end: &RangeEnd, seq: u64) {
        let call = &end.call;
        self.stats.range_end_called(call.mm, ev.pid, ev.comm.as_ref());
        let key = RangeKey { tid: call.tid, range: call.range };
        self.settle_task(call.tid, Some(call.range), ev.ts);
        let args = RangeArgs { start: call.start, end: call.end, event: call.event, blockable: call.blockable };

        let phase = self.outer.get(&key).map(|r| r.phase);
        match phase {
            Some(OuterPhase::Starting | OuterPhase::Open) => self.end_live_range(ev, key, call, args, seq),
            Some(OuterPhase::Failed { ret, ret_seq }) => {
                let start_seq = self.outer.get(&key).and_then(|r| r.start_seq);
                if let Some(r) = self.outer.get_mut(&key) {
                    r.phase = OuterPhase::Ended { end_seq: seq };
                    r.ended_after_failure = true;
                    r.closed_ts = ev.ts;
                }
                let v = outer_violation(
                    RuleId::EndAfterFailedStart,
                    ev,
                    key,
                    self.outer.get(&key),
                    format!(
                        "__mmu_notifier_invalidate_range_end was called for a range whose __start returned {}, so subscribers get ends the failed start did not ask for",
                        errno_name(ret)
                    ),
                    [start_seq, Some(ret_seq), Some(seq)],
                );
                let hint =
                    self.kernel.version.filter(|v| v.has(Fact::CompensatingEnds)).map(|_| self.kernel.double_end());
                self.emit_with_hint(v, hint);
            }
            Some(OuterPhase::Ended { end_seq }) => {
                let start_seq = self.outer.get(&key).and_then(|r| r.start_seq);
                let mut v = event_violation(
                    RuleId::UnpairedEnd,
                    ev,
                    format!(
                        "__mmu_notifier_invalidate_range_end was called a second time for the same range (first __end was event {end_seq}), with no __start in between"
                    ),
                );
                v.mm = Some(call.mm);
                v.range = Some(range_ref(call.range, Some(args)));
                v.events = [start_seq, Some(end_seq), Some(seq)].into_iter().flatten().collect();
                self.emit(v);
                if let Some(r) = self.outer.get_mut(&key) {
                    r.phase = OuterPhase::Ended { end_seq: seq };
                    r.closed_ts = ev.ts;
                }
            }
            Some(OuterPhase::Unseen) | None => {
                let mut v = event_violation(
                    RuleId::UnpairedEnd,
                    ev,
                    "__mmu_notifier_invalidate_range_end was called for a range this task never started with __mmu_notifier_invalidate_range_start".to_owned(),
                );
                v.mm = Some(call.mm);
                v.range = Some(range_ref(call.range, Some(args)));
                v.events = vec![seq];
                if self.near_trace_start(ev.ts) {
                    v.notes.push("the trace began less than a second earlier; the __start may predate it".into());
                }
                // PAGEMAP_SCAN invalidates with MMU_NOTIFIER_PROTECTION_VMA.
                let hint = (call.event == MmuEvent::ProtectionVma).then(|| self.kernel.pagemap_scan());
                self.emit_with_hint(v, hint);
                if phase.is_none() {
                    let notifiers = self.spare_notifier_lists.pop().unwrap_or_default();
                    let phase = OuterPhase::Ended { end_seq: seq };
                    self.outer.insert(key, OuterRange::seen_at(phase, call.mm, Some(args), ev, notifiers));
                    self.tasks.entry(call.tid).or_default().closing.push(call.range);
                } else if let Some(r) = self.outer.get_mut(&key) {
                    r.phase = OuterPhase::Ended { end_seq: seq };
                    r.args = Some(args);
                    r.closed_ts = ev.ts;
                }
                self.check_range_args(ev, call, seq, false);
            }
        }
        self.observe_itree(call.mm, end.itree, ev.ts, seq, Some(call.tid));
    }

    pub(super) fn end_live_range(&mut self, ev: &Event, key: RangeKey, call: &RangeCall, args: RangeArgs, seq: u64) {
        // The range directly above this one on the task's stack, if this is not the top.
        let above = self.tasks.get(&key.tid).and_then(|t| {
            let pos = t.live.iter().rposition(|r| *r == key.range)?;
            t.live.get(pos + 1).copied()
        });
        let Some(range) = self.outer.get_mut(&key) else { return };
        range.phase = OuterPhase::Ended { end_seq: seq };
        range.closed_ts = ev.ts;
        let started = range.start_ts;
        let start_seq = range.start_seq;
        let mm = range.mm;
        let opened = range.args;
        let ended_first = range.outer_ended_first.take();
        self.stats.totals.range_durations.record(ev.ts.saturating_sub(started));
        self.close_live(key, mm);

        if let Some(above) = above
            && let Some(inner) = self.outer.get_mut(&RangeKey { tid: key.tid, range: above })
            && inner.outer_ended_first.is_none()
        {
            inner.outer_ended_first = Some(EndedFirst { range: key.range, start_seq, end_seq: seq });
        }
        if let Some(first) = ended_first {
            let v = outer_violation(
                RuleId::NestingOrder,
                ev,
                key,
                self.outer.get(&key),
                format!(
                    "range {} was started before this one but ended first (event {}), while this one was still open; nested invalidations must end in reverse order",
                    first.range, first.end_seq
                ),
                [first.start_seq, start_seq, Some(first.end_seq), Some(seq)],
            );
            self.emit(v);
        }

        let diffs = wording::range_diffs(mm, opened, call.mm, args);
        if !diffs.is_empty() {
            let v = outer_violation(
                RuleId::RangeMismatch,
                ev,
                key,
                self.outer.get(&key),
                format!(
                    "__end saw a different range than its __start ({}), so subscribers end an invalidation they did not start",
                    diffs.join(", ")
                ),
                [start_seq, Some(seq)],
            );
            self.emit(v);
        }
    }

    /// A live range stops being live and waits, closed, for its subscriber ends: bookkeeping
    /// shared by failure and end.
    pub(super) fn close_live(&mut self, key: RangeKey, mm: Addr) {
        self.leave_live(key, mm);
        if let Some(task) = self.tasks.get_mut(&key.tid) {
            task.closing.push(key.range);
        }
    }

    /// A live range stops being live (closed, or abandoned): off its task's stack and its
    /// mm's count.
    pub(super) fn leave_live(&mut self, key: RangeKey, mm: Addr) {
        if let Some(task) = self.tasks.get_mut(&key.tid)
            && let Some(pos) = task.live.iter().rposition(|r| *r == key.range)
        {
            task.live.remove(pos);
        }
        self.stats.range_closed(mm);
        if let Some(live) = self.mms.get_mut(&mm) {
            live.live_ranges = live.live_ranges.saturating_sub(1);
            if live.is_idle() {
                self.mms.remove(&mm);
            }
        }
    }

    pub(super) fn check_range_args(&mut self, ev: &Event, call: &RangeCall, seq: u64, at_start: bool) {
        let problems = wording::range_problems(call, at_start);
        if problems.is_empty() {
            return;
        }
        let zero_length = call.start >= call.end;
        let key = RangeKey { tid: call.tid, range: call.range };
        let mut v = event_violation(
            RuleId::BadRange,
            ev,
            format!("{}: {}", if at_start { "__start" } else { "__end" }, problems.join("; ")),
        );
        v.mm = Some(call.mm);
        v.range = Some(range_ref(
            key.range,
            Some(RangeArgs { start: call.start, end: call.end, event: call.event, blockable: call.blockable }),
        ));
        v.events = vec![seq];
        let hint = zero_length.then(|| self.kernel.zero_length());
        self.emit_with_hint(v, hint);
    }
}
