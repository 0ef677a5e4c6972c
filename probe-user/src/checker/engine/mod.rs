//! The state machine: one call per event, violations out, no I/O and no clock. Trace time
//! (`ts` of the events) is the only time it knows.
//!
//! This file holds the [`Checker`] itself, its public calls, time (settling and leak
//! confirmation), the interval-tree watch and the one place violations are emitted. The
//! transitions are split by what they pair: [`outer`] (`__start`/`__end`), [`subscribers`]
//! (subscriber callbacks), [`retire`] (ranges that end or are given up on) and [`warn`]
//! (WARNs and losses). They are `impl Checker` blocks over the same private state, and take
//! this module's imports with `use super::*`. How violations are worded is in
//! `checker/wording.rs`, how events are counted in `checker/stats.rs`.
use std::mem;

mod footprint;
mod outer;
mod retire;
mod subscribers;
mod twopass;
mod warn;

pub use footprint::StateSizes;

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
    Addr, Comm, Detector, Event, EventBody, Header, Hook, IntervalFinish, IntervalInvalidate, IntervalStart,
    ItreeSnapshot, MmuEvent, ProbesLive, RangeCall, RangeEnd, RangeStartRet, SubscriberEnd, SubscriberStart, Symbol,
    Warn,
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
    /// Of `counts`, those found at or after the earliest moment of a loss (they carry the loss
    /// note): possibly the loss's artefact, so they alone do not fail the verdict.
    after_loss: [u64; RuleId::ALL.len()],
    lost: u64,
    events_seen: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    next_settle_ts: u64,
    spare_notifier_lists: Vec<Vec<NotifierRecord>>,
    /// Finishes owed by two-pass interval starts, by (tid, finish pointer).
    pending_finishes: FastMap<(u32, Addr), PendingFinish>,
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
            after_loss: [0; RuleId::ALL.len()],
            lost: 0,
            events_seen: 0,
            first_ts: None,
            last_ts: 0,
            next_settle_ts: SETTLE_NS,
            spare_notifier_lists: Vec::new(),
            pending_finishes: FastMap::default(),
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
            EventBody::IntervalStart(i) => self.on_interval_start(event, i, seq),
            EventBody::IntervalFinish(f) => self.on_interval_finish(event, f, seq),
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
        let failing = RuleId::ALL.into_iter().any(|r| {
            let (all, after_loss) = (self.counts[r.index()], self.after_loss[r.index()]);
            r != RuleId::EventsLost && all > after_loss
        });
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
            self.after_loss[v.rule.index()] += 1;
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
