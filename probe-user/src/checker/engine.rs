//! The state machine: one call per event, violations out, no I/O and no clock. Trace time
//! (`ts` of the events) is the only time it knows.
use std::mem;

use crate::{
    errno::{EAGAIN, errno_name},
    kernel_facts::Fact,
};

use super::{
    hints::KernelInfo,
    itree_leak::{ItreeLeak, LeakingStart},
    report::{Report, TaskRef, Verdict, Violation},
    rules::{RuleId, RuleSet},
    state::*,
    stats::{NotifierKind, Statistics},
    wording::{
        self, Abandon, LOSS_NOTE, SubscriberSite, UnpairedEnd, event_violation, outer_violation, range_ref,
        subscriber_violation,
    },
};
use crate::trace::{
    Addr, Comm, Detector, Event, EventBody, Header, Hook, IntervalInvalidate, ItreeSnapshot, MmuEvent, ProbesLive,
    RangeCall, RangeEnd, RangeStartRet, SubscriberEnd, SubscriberStart, Symbol, Warn,
};

/// A closed range may still receive the subscriber ends its `__end` delivers; once trace time
/// is this far past its close (and the task did nothing else meanwhile) it is settled.
pub const SETTLE_NS: u64 = 1_000_000_000;

/// At most this many violations are kept for the final report; all are counted.
pub const MAX_STORED_VIOLATIONS: usize = 10_000;

/// A live range, for sinks that show what is open and for how long.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpenRange {
    pub tid: u32,
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
    pub mm: Addr,
    pub range: Addr,
    pub start: Option<Addr>,
    pub end: Option<Addr>,
    pub event: Option<MmuEvent>,
    pub started_ts: u64,
    pub start_seq: Option<u64>,
    /// Subscribers whose start succeeded and whose end is still owed.
    pub open_subscribers: Vec<Symbol>,
}

impl OpenRange {
    /// How long the range has been open at trace time `now_ns` (the caller's clock).
    pub fn age_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.started_ts)
    }
}

pub struct Checker {
    rules: RuleSet,
    kernel: KernelInfo,
    /// Without the return probe a start counts as open from its entry.
    has_ret_hook: bool,
    outer: FastMap<RangeKey, OuterRange>,
    tasks: FastMap<u32, TaskState>,
    mms: FastMap<Addr, MmLive>,
    leak_suspects: Vec<Addr>,
    /// Every mm whose interval tree leaked, for the violation's wording and the report.
    leaks: FastMap<Addr, ItreeLeak>,
    probes: ProbeClock,
    stats: Statistics,
    new_violations: Vec<Violation>,
    stored: Vec<Violation>,
    not_stored: u64,
    counts: [u64; RuleId::ALL.len()],
    lost: u64,
    events_seen: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    next_settle_ts: u64,
    spare_notifier_lists: Vec<Vec<NotifierRecord>>,
}

impl Checker {
    pub fn new(header: &Header) -> Checker {
        Checker {
            rules: RuleSet::from_header(header),
            kernel: KernelInfo::new(&header.kernel),
            has_ret_hook: header.is_attached(Hook::RangeStartRet),
            outer: FastMap::default(),
            tasks: FastMap::default(),
            mms: FastMap::default(),
            leak_suspects: Vec::new(),
            leaks: FastMap::default(),
            probes: ProbeClock::default(),
            stats: Statistics::default(),
            new_violations: Vec::new(),
            stored: Vec::new(),
            not_stored: 0,
            counts: [0; RuleId::ALL.len()],
            lost: 0,
            events_seen: 0,
            first_ts: None,
            last_ts: 0,
            next_settle_ts: SETTLE_NS,
            spare_notifier_lists: Vec::new(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn stats(&self) -> &Statistics {
        &self.stats
    }

    /// Violations of `rule` found so far (stored or not).
    pub fn violation_count(&self, rule: RuleId) -> u64 {
        self.counts.get(rule.index()).copied().unwrap_or(0)
    }

    /// Feeds one event; returns the violations it made certain (possibly about earlier events).
    pub fn push(&mut self, event: &Event) -> &[Violation] {
        self.new_violations.clear();
        self.events_seen += 1;
        let seq = event.seq.unwrap_or(self.events_seen);
        if self.first_ts.is_none() {
            self.first_ts = Some(event.ts);
        }
        if event.ts > self.last_ts {
            self.advance_time(event.ts);
        }
        self.stats.count_event(event.kind());
        match &event.body {
            EventBody::RangeStart(call) => self.on_range_start(event, call, seq),
            EventBody::RangeStartRet(ret) => self.on_range_start_ret(event, ret, seq),
            EventBody::RangeEnd(end) => self.on_range_end(event, end, seq),
            EventBody::SubscriberStart(s) => self.on_subscriber_start(event, s, seq),
            EventBody::SubscriberEnd(s) => self.on_subscriber_end(event, s, seq),
            EventBody::IntervalInvalidate(i) => self.on_interval(event, i, seq),
            EventBody::ItreeEnd(i) => {
                let snapshot = ItreeSnapshot { active: Some(i.active), seq: Some(i.seq) };
                self.observe_itree(i.mm, snapshot, event.ts, seq, Some(i.tid));
            }
            EventBody::Warn(w) => self.on_warn(event, w, seq),
            EventBody::TaskExit(t) => self.abandon_task(t.tid, event.ts, Abandon::TaskExit),
            EventBody::Lost(l) => self.on_lost(event, l.count, seq),
            EventBody::ProbesLive(p) => self.on_probes_live(event, p),
        }
        &self.new_violations
    }

    /// Ranges open right now, oldest first.
    pub fn open_ranges(&self) -> Vec<OpenRange> {
        let mut open: Vec<OpenRange> = self
            .outer
            .iter()
            .filter(|(_, r)| r.phase.is_live())
            .map(|(key, r)| OpenRange {
                tid: key.tid,
                pid: r.pid,
                comm: r.comm.clone(),
                mm: r.mm,
                range: key.range,
                start: r.args.map(|a| a.start),
                end: r.args.map(|a| a.end),
                event: r.args.map(|a| a.event),
                started_ts: r.start_ts,
                start_seq: r.start_seq,
                open_subscribers: r
                    .notifiers
                    .iter()
                    .filter(|n| n.phase == NotifierPhase::Open)
                    .map(|n| n.callback.clone())
                    .collect(),
            })
            .collect();
        open.sort_by_key(|o| (o.started_ts, o.tid, o.range));
        open
    }

    /// The report as of now, without end-of-trace conclusions.
    pub fn report(&self) -> Report {
        let mut stats = self.stats.summary();
        stats.totals.lost = self.lost;
        let violation_counts = RuleId::ALL
            .into_iter()
            .filter_map(|r| {
                let n = self.counts.get(r.index()).copied().unwrap_or(0);
                (n > 0).then_some((r, n))
            })
            .collect();
        let failing = RuleId::ALL
            .into_iter()
            .any(|r| r != RuleId::EventsLost && self.counts.get(r.index()).is_some_and(|n| *n > 0));
        let verdict = if failing {
            Verdict::Fail
        } else if self.lost > 0 {
            Verdict::Incomplete
        } else {
            Verdict::Pass
        };
        let mut itree_leaks: Vec<ItreeLeak> = self
            .leaks
            .values()
            .map(|leak| {
                // The owner may have been named only after the leak (by its exit, say).
                let (pid, comm) = self.stats.mm_owner(leak.mm);
                ItreeLeak { pid: pid.or(leak.pid), comm: comm.or_else(|| leak.comm.clone()), ..leak.clone() }
            })
            .collect();
        itree_leaks.sort_by_key(|l| (l.first_ts, l.mm));
        Report {
            itree_leaks,
            kernel: self.kernel.release.clone(),
            verdict,
            complete: self.lost == 0 && self.rules.not_checked().is_empty(),
            violations: self.stored.clone(),
            violations_not_stored: self.not_stored,
            violation_counts,
            checked: self.rules.checked(),
            not_checked: self.rules.not_checked().to_vec(),
            lost: self.lost,
            stats,
        }
    }

    /// Ends the trace: every range still open is unpaired, pending suspicions are decided.
    pub fn finish(mut self) -> Report {
        self.new_violations.clear();
        // Conclusions drawn at the end of the trace carry the time of its last event.
        let ts = self.last_ts;
        self.confirm_leaks(u64::MAX);
        self.settle_closed(u64::MAX);
        let mut tids: Vec<u32> = self.tasks.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            self.abandon_task(tid, ts, Abandon::TraceEnd);
        }
        self.report()
    }

    // ---- time ----

    fn advance_time(&mut self, ts: u64) {
        self.last_ts = ts;
        if !self.leak_suspects.is_empty() {
            self.confirm_leaks(ts);
        }
        if ts >= self.next_settle_ts {
            self.settle_closed(ts);
            self.next_settle_ts = ts.saturating_add(SETTLE_NS);
        }
    }

    /// Retires closed ranges whose subscriber ends had ample time to arrive.
    fn settle_closed(&mut self, now: u64) {
        let mut due: Vec<(u64, RangeKey)> = Vec::new();
        for (&tid, task) in &self.tasks {
            for &range in &task.closing {
                let key = RangeKey { tid, range };
                if let Some(r) = self.outer.get(&key)
                    && r.closed_ts.saturating_add(SETTLE_NS) <= now
                {
                    due.push((r.closed_ts, key));
                }
            }
        }
        // Hash-map order must not leak into the output order.
        due.sort_unstable();
        let report_ts = now.min(self.last_ts);
        for (_, key) in due {
            if let Some(task) = self.tasks.get_mut(&key.tid) {
                task.closing.retain(|r| *r != key.range);
            }
            self.retire(key, report_ts);
            self.drop_task_if_idle(key.tid);
        }
    }

    fn confirm_leaks(&mut self, now: u64) {
        let suspects = mem::take(&mut self.leak_suspects);
        for mm in suspects {
            let Some(live) = self.mms.get_mut(&mm) else { continue };
            let LeakState::Suspected { ts, seq, tid, active, itree_seq } = live.leak.clone() else { continue };
            if ts >= now {
                self.leak_suspects.push(mm);
                continue;
            }
            if live.live_ranges > 0 {
                live.leak = LeakState::Clean;
                continue;
            }
            live.leak = LeakState::Reported;
            let (explanation, overlapped, pid, comm, stack) = match self.leaks.get(&mm) {
                Some(leak) => (
                    leak.explain(active, itree_seq),
                    leak.overlapped(),
                    // The task is who leaked (the reaper); the owner is in the explanation.
                    leak.by_pid,
                    leak.by_comm.clone(),
                    leak.stack.clone(),
                ),
                // Seen only from a snapshot (the failing __start was not traced).
                None => (wording::snapshot_leak_words(mm, active, itree_seq), true, None, None, None),
            };
            let mut v = Violation::new(RuleId::ItreeLeak, ts, explanation);
            v.mm = Some(mm);
            v.task = tid.map(|tid| TaskRef { pid, tid, comm });
            v.stack = stack;
            v.events = seq.into_iter().collect();
            v.hint = Some(self.kernel.itree_leak(overlapped));
            self.emit(v);
        }
        self.mms.retain(|_, live| !live.is_idle());
    }

    // ---- outer ranges ----

    fn on_range_start(&mut self, ev: &Event, call: &RangeCall, seq: u64) {
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

    fn on_range_start_ret(&mut self, ev: &Event, ret: &RangeStartRet, seq: u64) {
        let key = RangeKey { tid: ret.tid, range: ret.range };
        self.settle_task(ret.tid, Some(ret.range), ev.ts);
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

    fn on_range_end(&mut self, ev: &Event, end: &RangeEnd, seq: u64) {
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

    fn end_live_range(&mut self, ev: &Event, key: RangeKey, call: &RangeCall, args: RangeArgs, seq: u64) {
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

    /// A live range stops being live: bookkeeping shared by failure and end.
    fn close_live(&mut self, key: RangeKey, mm: Addr) {
        if let Some(task) = self.tasks.get_mut(&key.tid) {
            if let Some(pos) = task.live.iter().rposition(|r| *r == key.range) {
                task.live.remove(pos);
            }
            task.closing.push(key.range);
        }
        self.stats.range_closed(mm);
        if let Some(live) = self.mms.get_mut(&mm) {
            live.live_ranges = live.live_ranges.saturating_sub(1);
            if live.is_idle() {
                self.mms.remove(&mm);
            }
        }
    }

    fn check_range_args(&mut self, ev: &Event, call: &RangeCall, seq: u64, at_start: bool) {
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

    // ---- subscribers ----

    fn on_subscriber_start(&mut self, ev: &Event, s: &SubscriberStart, seq: u64) {
        let Some((range_ptr, subscriber)) = s.pairable() else {
            // Tracepoint mode: counted, never paired.
            self.stats.tracepoint_subscriber_call(&s.callback, s.mm, ev.pid, ev.comm.as_ref());
            return;
        };
        let row = self.stats.notifier_row(&s.callback, NotifierKind::List);
        self.stats.subscriber_call(s.mm);
        let key = RangeKey { tid: s.tid, range: range_ptr };
        let ret = s.ret.unwrap_or(0);

        match self.outer.get(&key).map(|r| r.phase) {
            Some(OuterPhase::Starting | OuterPhase::Open | OuterPhase::Unseen) => {}
            Some(OuterPhase::Failed { .. } | OuterPhase::Ended { .. }) => {
                // A new __start reusing the key whose entry was not traced.
                self.tasks.entry(s.tid).or_default().closing.retain(|r| *r != range_ptr);
                self.retire(key, ev.ts);
                self.insert_unseen(key, s.mm, ev);
            }
            None => self.insert_unseen(key, s.mm, ev),
        }
        if ret != 0
            && let Some(range) = self.outer.get_mut(&key)
        {
            range.itree.failed.get_or_insert_with(|| (s.callback.clone(), ret));
        }

        // A second start of the same subscriber on the same range: the first one's end is lost.
        let previous = self.outer.get_mut(&key).and_then(|r| {
            let pos = r.notifiers.iter().position(|n| n.subscriber == subscriber)?;
            Some(r.notifiers.swap_remove(pos))
        });
        if let Some(prev) = previous
            && prev.phase == NotifierPhase::Open
        {
            self.notifier_unpaired_start(
                key,
                &prev,
                ev.ts,
                "before the same subscriber was started again on this range",
            );
        }

        let Some(range) = self.outer.get_mut(&key) else { return };
        let blockable = range.args.map(|a| a.blockable);
        let phase = if ret != 0 {
            NotifierPhase::Failed
        } else if s.has_end == Some(false) {
            NotifierPhase::StartOnly
        } else {
            NotifierPhase::Open
        };
        range.notifiers.push(NotifierRecord {
            subscriber,
            callback: s.callback.clone(),
            row,
            phase,
            start_seq: Some(seq),
            start_ts: ev.ts,
            end_seq: None,
        });
        let outer_start_seq = range.start_seq;
        self.stats.subscriber_started(row, phase == NotifierPhase::Open, phase == NotifierPhase::Failed);
        if ret == 0 {
            return;
        }

        let events = [outer_start_seq, Some(seq)];
        let site = SubscriberSite { key, mm: s.mm, subscriber, callback: &s.callback };
        let early = self.kernel.early_subscriber_failure(s.callback.function());
        if blockable == Some(true) {
            if let Some(r) = self.outer.get_mut(&key) {
                r.reported_blockable_failure = true;
            }
            let v = subscriber_violation(
                RuleId::BlockableFailure,
                ev,
                &site,
                self.outer.get(&site.key),
                format!(
                    "{} failed with {} in a blockable range, where subscribers must not fail",
                    s.callback.function(),
                    errno_name(ret)
                ),
                events,
            );
            let hint = early.clone().unwrap_or_else(|| self.kernel.blockable_failure());
            self.emit_with_hint(v, Some(hint));
        }
        if ret != EAGAIN {
            if let Some(r) = self.outer.get_mut(&key) {
                r.reported_bad_errno = true;
            }
            self.bad_errno(ev, key, Some(&site), ret, events, early.clone());
        }
        if s.has_end == Some(true) {
            let v = subscriber_violation(
                RuleId::FailedStartHasEndOp,
                ev,
                &site,
                self.outer.get(&site.key),
                format!(
                    "{} failed its start but has an invalidate_range_end op, which will run for this range without a successful start",
                    s.callback.function()
                ),
                events,
            );
            let hint = self.kernel.failed_start_has_end_op();
            self.emit_with_hint(v, Some(hint));
        }
    }

    fn insert_unseen(&mut self, key: RangeKey, mm: Addr, ev: &Event) {
        let notifiers = self.spare_notifier_lists.pop().unwrap_or_default();
        self.outer.insert(key, OuterRange::seen_at(OuterPhase::Unseen, mm, None, ev, notifiers));
        // Nothing will end it explicitly; it settles like a closed range.
        self.tasks.entry(key.tid).or_default().closing.push(key.range);
    }

    fn on_subscriber_end(&mut self, ev: &Event, s: &SubscriberEnd, seq: u64) {
        self.stats.subscriber_call(s.mm);
        let key = RangeKey { tid: s.tid, range: s.range };
        let site = SubscriberSite { key, mm: s.mm, subscriber: s.subscriber, callback: &s.callback };
        let near_start = self.near_trace_start(ev.ts);
        // Statistics are per notifier, named by its start callback: a paired end counts on
        // the row of the start it closes, an unpaired one on the row its name points to.
        let row = match self.outer.get(&key).and_then(|r| r.notifiers.iter().find(|n| n.subscriber == s.subscriber)) {
            Some(n) => n.row,
            None => self.stats.notifier_row_for_end(&s.callback),
        };
        self.stats.subscriber_ended(row);
        let Some(range) = self.outer.get_mut(&key) else {
            if !self.probes.judges(&s.callback, None) {
                return;
            }
            self.notifier_unpaired_end(ev, &site, UnpairedEnd::NoRange, [None, Some(seq)], near_start, None);
            return;
        };
        let inside_start = range.phase == OuterPhase::Starting;
        if inside_start {
            range.saw_compensating_end = true;
        }
        let orphan_outer = range.start_seq.is_none();
        let ended_after_failure = range.ended_after_failure;
        // Counted either way; judged only if both of the subscriber's probes were live when
        // the range began.
        let judged = self.probes.judges(&s.callback, range.traced_start_ts());
        let found = range.notifier_mut(s.subscriber).map(|n| {
            let before = (n.phase, n.start_seq, n.end_seq, n.start_ts);
            if matches!(
                n.phase,
                NotifierPhase::Open | NotifierPhase::Failed | NotifierPhase::StartOnly | NotifierPhase::Ended
            ) {
                n.phase = NotifierPhase::Ended;
                n.end_seq = Some(seq);
            }
            before
        });
        match found {
            Some((NotifierPhase::Open, _, _, start_ts)) => {
                self.stats.subscriber_paired(row, ev.ts.saturating_sub(start_ts));
            }
            Some(_) if !judged => {}
            Some((NotifierPhase::Ended, start_seq, end_seq, _)) => {
                let v = subscriber_violation(
                    RuleId::NotifierDoubleEnd,
                    ev,
                    &site,
                    self.outer.get(&site.key),
                    format!(
                        "{} ran a second time for the same range, so whatever its start took (a count, a lock) is released twice",
                        s.callback.function()
                    ),
                    [start_seq, end_seq, Some(seq)],
                );
                let hint = ended_after_failure.then(|| self.kernel.double_end());
                self.emit_with_hint(v, hint);
            }
            Some((NotifierPhase::Failed, start_seq, _, _)) => {
                let hint = inside_start.then(|| self.kernel.compensating_end_to_failed());
                self.notifier_unpaired_end(ev, &site, UnpairedEnd::StartFailed, [start_seq, Some(seq)], false, hint);
            }
            Some((NotifierPhase::StartOnly, start_seq, _, _)) => {
                self.notifier_unpaired_end(ev, &site, UnpairedEnd::NoEndOp, [start_seq, Some(seq)], false, None);
            }
            None => {
                if let Some(range) = self.outer.get_mut(&key) {
                    range.notifiers.push(NotifierRecord {
                        subscriber: s.subscriber,
                        callback: s.callback.clone(),
                        row,
                        phase: NotifierPhase::Ended,
                        start_seq: None,
                        start_ts: ev.ts,
                        end_seq: Some(seq),
                    });
                }
                if !judged {
                    return;
                }
                let outer_seq = self.outer.get(&key).and_then(|r| r.start_seq);
                let pagemap = orphan_outer
                    && self.outer.get(&key).and_then(|r| r.args).is_some_and(|a| a.event == MmuEvent::ProtectionVma);
                let hint = pagemap.then(|| self.kernel.pagemap_scan());
                let may_predate = orphan_outer && near_start;
                self.notifier_unpaired_end(
                    ev,
                    &site,
                    UnpairedEnd::StartUnseen,
                    [outer_seq, Some(seq)],
                    may_predate,
                    hint,
                );
            }
        }
    }

    fn on_interval(&mut self, ev: &Event, i: &IntervalInvalidate, seq: u64) {
        self.stats.interval_call(&i.callback, i.mm, i.ret);
        let key = RangeKey { tid: i.tid, range: i.range };
        if i.ret {
            if let Some(range) = self.outer.get_mut(&key) {
                range.itree.interval_succeeded(&i.callback);
            }
            return;
        }
        let Some(range) = self.outer.get(&key) else { return };
        if range.args.map(|a| a.blockable) != Some(true) {
            return;
        }
        let outer_seq = range.start_seq;
        let site = SubscriberSite { key, mm: i.mm, subscriber: i.subscriber, callback: &i.callback };
        let v = subscriber_violation(
            RuleId::IntervalBlockableFalse,
            ev,
            &site,
            self.outer.get(&site.key),
            format!(
                "interval subscriber {} returned false (would block) in a blockable range; the kernel WARNs and carries on as if it had succeeded",
                i.callback.function()
            ),
            [outer_seq, Some(seq)],
        );
        self.emit(v);
    }

    /// Subscriber callbacks became fully probed: from this event's `ts` on, their pairing is
    /// judged (see [`ProbeClock`]).
    fn on_probes_live(&mut self, ev: &Event, p: &ProbesLive) {
        self.probes.announce(p.callbacks.iter().map(|c| &c.callback), ev.ts);
    }

    // ---- warnings and loss ----

    fn on_warn(&mut self, ev: &Event, w: &Warn, seq: u64) {
        self.stats.totals.warns += 1;
        let is_warning = matches!(w.detector, None | Some(Detector::Warning));
        if !is_warning || !self.mmu_notifier_related(&w.caller) {
            self.stats.totals.unrelated_warns += 1;
            return;
        }
        let function = w.caller.function();
        let mut v = event_violation(RuleId::KernelWarn, ev, format!("the kernel WARNed at {} while tracing", w.caller));
        v.callback = Some(w.caller.clone());
        v.events = vec![seq];
        let hint = if function.starts_with("__mmu_notifier_invalidate_range_start") {
            Some("WARN_ON in __start fires for a failure in a blockable range or one other than -EAGAIN (v5.4+), and for a failing subscriber with an end op (v5.12+)".to_owned())
        } else if function.starts_with("kvm_mmu_notifier_invalidate_range_end") {
            Some(self.kernel.pagemap_scan())
        } else if function.starts_with("kvm_mmu_notifier_invalidate_range_start") {
            Some(self.kernel.zero_length())
        } else {
            None
        };
        self.emit_with_hint(v, hint);
    }

    fn mmu_notifier_related(&self, caller: &Symbol) -> bool {
        let f = caller.function();
        ["__mmu_notifier_", "mn_", "mmu_notifier_", "mmu_interval_", "kvm_mmu_notifier_"]
            .iter()
            .any(|p| f.starts_with(p))
            || self.stats.knows_callback(f)
    }

    fn on_lost(&mut self, ev: &Event, count: u64, seq: u64) {
        self.lost = self.lost.saturating_add(count);
        self.stats.totals.lost = self.lost;
        let mut v = event_violation(
            RuleId::EventsLost,
            ev,
            format!(
                "{count} events were lost before reaching userspace, so pairing after this point may be incomplete"
            ),
        );
        v.events = vec![seq];
        self.emit(v);
    }

    // ---- interval tree ----

    fn observe_itree(&mut self, mm: Addr, snapshot: ItreeSnapshot, ts: u64, seq: u64, tid: Option<u32>) {
        // mm 0: an mn_itree_inv_end that no traced __start of its thread led to (the release
        // path of exit_mmap): whose tree it was is unknown, so it says nothing about any mm.
        if snapshot.is_empty() || mm == Addr(0) || !self.rules.is_checked(RuleId::ItreeLeak) {
            return;
        }
        if let Some(leak) = self.leaks.get_mut(&mm) {
            leak.observe(snapshot);
        }
        if snapshot.invalidating() {
            let live = self.mms.entry(mm).or_default();
            if live.live_ranges == 0 && live.leak == LeakState::Clean {
                live.leak =
                    LeakState::Suspected { ts, seq: Some(seq), tid, active: snapshot.active, itree_seq: snapshot.seq };
                self.leak_suspects.push(mm);
            }
        } else if let Some(live) = self.mms.get_mut(&mm) {
            live.leak = LeakState::Clean;
            if live.is_idle() {
                self.mms.remove(&mm);
            }
        }
    }

    // ---- retiring ----

    /// The task did something outside its subscriber callbacks, so every `__start`/`__end` it
    /// made before has returned: settle its closed ranges (except `keep`, the one this event
    /// is about).
    fn settle_task(&mut self, tid: u32, keep: Option<Addr>, ts: u64) {
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
    fn retire(&mut self, key: RangeKey, ts: u64) {
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

    fn notifier_unpaired_start(&mut self, key: RangeKey, n: &NotifierRecord, ts: u64, why: &str) {
        self.stats.subscriber_closed(n.row);
        let Some(range) = self.outer.remove(&key) else { return };
        self.notifier_unpaired_start_in(&range, key, n, ts, why);
        self.outer.insert(key, range);
    }

    fn notifier_unpaired_start_in(
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
    fn abandon_range(&mut self, key: RangeKey, ts: u64, why: Abandon) {
        let Some(mut range) = self.outer.remove(&key) else { return };
        if !range.phase.is_live() {
            self.outer.insert(key, range);
            self.retire(key, ts);
            return;
        }
        if let Some(task) = self.tasks.get_mut(&key.tid)
            && let Some(pos) = task.live.iter().rposition(|r| *r == key.range)
        {
            task.live.remove(pos);
        }
        self.stats.range_closed(range.mm);
        if let Some(live) = self.mms.get_mut(&range.mm) {
            live.live_ranges = live.live_ranges.saturating_sub(1);
            if live.is_idle() {
                self.mms.remove(&range.mm);
            }
        }
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

    fn abandon_task(&mut self, tid: u32, ts: u64, why: Abandon) {
        let Some(task) = self.tasks.remove(&tid) else { return };
        for range in task.live {
            self.abandon_range(RangeKey { tid, range }, ts, why);
        }
        for range in task.closing {
            self.retire(RangeKey { tid, range }, ts);
        }
    }

    fn drop_task_if_idle(&mut self, tid: u32) {
        if self.tasks.get(&tid).is_some_and(TaskState::is_idle) {
            self.tasks.remove(&tid);
        }
    }

    // ---- building and emitting violations ----

    fn near_trace_start(&self, ts: u64) -> bool {
        self.first_ts.is_some_and(|first| ts.saturating_sub(first) < SETTLE_NS)
    }

    /// `bad-errno`, for the outer `__start` (`site` is `None`) or a subscriber's start.
    fn bad_errno(
        &mut self,
        ev: &Event,
        key: RangeKey,
        site: Option<&SubscriberSite<'_>>,
        ret: i64,
        events: [Option<u64>; 2],
        hint: Option<String>,
    ) {
        let range = self.outer.get(&key);
        let explanation = wording::bad_errno_words(site.map(|s| s.callback), ret);
        let v = match site {
            None => outer_violation(RuleId::BadErrno, ev, key, range, explanation, events),
            Some(site) => subscriber_violation(RuleId::BadErrno, ev, site, range, explanation, events),
        };
        self.emit_with_hint(v, hint);
    }

    /// `notifier-unpaired-end`: `site`'s subscriber got an end with no successful start to pair
    /// it with, for `why`. `may_predate`: that start may have come before the trace began.
    fn notifier_unpaired_end(
        &mut self,
        ev: &Event,
        site: &SubscriberSite<'_>,
        why: UnpairedEnd,
        events: [Option<u64>; 2],
        may_predate: bool,
        hint: Option<String>,
    ) {
        let explanation = why.explain(site.callback);
        let range = self.outer.get(&site.key);
        let mut v = subscriber_violation(RuleId::NotifierUnpairedEnd, ev, site, range, explanation, events);
        if may_predate {
            v.notes.push("the trace began less than a second earlier; the start may predate it".into());
        }
        self.emit_with_hint(v, hint);
    }

    fn emit_with_hint(&mut self, mut v: Violation, hint: Option<String>) {
        v.hint = hint;
        self.emit(v);
    }

    fn emit(&mut self, mut v: Violation) {
        if !self.rules.is_checked(v.rule) {
            return;
        }
        if self.lost > 0 && v.rule.affected_by_loss() {
            v.notes.push(LOSS_NOTE.into());
        }
        if let Some(c) = self.counts.get_mut(v.rule.index()) {
            *c += 1;
        }
        self.stats.totals.violations += 1;
        if self.stored.len() < MAX_STORED_VIOLATIONS {
            self.stored.push(v.clone());
        } else {
            self.not_stored += 1;
        }
        self.new_violations.push(v);
    }
}
