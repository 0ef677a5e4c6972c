//! The dashboard's state: a checker fed event by event, plus what the panes need that the
//! checker does not keep (rate history, recent violations with their events, which mm each
//! callback runs on). Pure: no terminal, no clock; live and replay feed it the same way.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use super::{
    history::History,
    recent::RecentEvents,
    snapshot::{HookAttach, Inventory, Process, Snapshot, ViolationEntry, pairing_available},
};
use crate::{
    checker::{Checker, OpenRange, Report, Severity, Statistics, Verdict, Violation},
    trace::{Addr, Event, EventBody, Header, Symbol},
};

/// Violations listed; older ones are counted in the header but drop off the list.
pub const MAX_LISTED_VIOLATIONS: usize = 1000;
/// mms remembered per callback (the table shows one process or a count).
const MAX_MMS_PER_CALLBACK: usize = 8;

enum Checking {
    Running(Box<Checker>),
    /// The input ended and the checker gave its final report.
    Ended {
        stats: Box<Statistics>,
        open: Vec<OpenRange>,
        verdict: Verdict,
    },
}

pub struct Model {
    kernel: String,
    source: String,
    hooks: Vec<HookAttach>,
    pairing: bool,
    not_checked: usize,
    checking: Checking,
    started_ts: Option<u64>,
    now_ts: u64,
    /// Events pushed, the fallback id of events without a sequence number (as the checker does).
    pushed: u64,
    history: History,
    /// Newest first.
    violations: VecDeque<Arc<ViolationEntry>>,
    /// Violations reported by the checker since the start, for telling new ones at the end.
    violations_total: u64,
    errors: u64,
    warnings: u64,
    recent: RecentEvents,
    callback_mms: HashMap<Symbol, Vec<Addr>>,
    last_owner: Option<(Symbol, Addr)>,
    baseline: Option<Box<Statistics>>,
    reset_ts: Option<u64>,
}

impl Model {
    /// A model for a trace with `header`; `source` names it in the header (`live`, a file).
    /// `started_ts` is the session start for a live trace (uptime counts from it), else the
    /// first event's time is used.
    pub fn new(header: &Header, source: impl Into<String>, started_ts: Option<u64>) -> Model {
        let checker = Checker::new(header);
        Model {
            kernel: header.kernel.clone(),
            source: source.into(),
            hooks: HookAttach::from_header(header),
            pairing: pairing_available(header),
            not_checked: checker.rules().not_checked().len(),
            checking: Checking::Running(Box::new(checker)),
            started_ts,
            now_ts: started_ts.unwrap_or(0),
            pushed: 0,
            history: History::default(),
            violations: VecDeque::new(),
            violations_total: 0,
            errors: 0,
            warnings: 0,
            recent: RecentEvents::default(),
            callback_mms: HashMap::new(),
            last_owner: None,
            baseline: None,
            reset_ts: None,
        }
    }

    /// Feeds one event to the checker and the dashboard's own tables. Events after the end
    /// of the input are ignored.
    pub fn ingest(&mut self, event: &Event) {
        let Checking::Running(checker) = &mut self.checking else {
            return;
        };
        self.pushed += 1;
        let id = event.seq.unwrap_or(self.pushed);
        self.started_ts.get_or_insert(event.ts);
        self.now_ts = self.now_ts.max(event.ts);
        self.recent.push(id, event);
        self.history.record(event.ts, checker.stats().totals.open_now);
        note_owner(&mut self.callback_mms, &mut self.last_owner, event);
        for v in checker.push(event) {
            list_violation(&mut self.violations, &self.recent, v);
            self.violations_total += 1;
            match v.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
        }
    }

    /// Moves the clock to `now` (trace time) without an event, so rates fall when idle.
    pub fn advance_clock(&mut self, now: u64) {
        if now <= self.now_ts {
            return;
        }
        self.now_ts = now;
        self.history.advance(now, self.stats().totals.open_now);
    }

    /// Ends the input: the checker decides what is still open; its last violations are listed.
    /// Returns the checker's final report the first time.
    pub fn finish(&mut self) -> Option<Report> {
        let Checking::Running(_) = &self.checking else {
            return None;
        };
        let placeholder = Checking::Ended { stats: Box::default(), open: Vec::new(), verdict: Verdict::Pass };
        let Checking::Running(checker) = std::mem::replace(&mut self.checking, placeholder) else {
            return None;
        };
        let stats = Box::new(checker.stats().clone());
        let open = checker.open_ranges();
        let report = checker.finish();
        let total: u64 = report.violation_counts.values().sum();
        let new = usize::try_from(total.saturating_sub(self.violations_total)).unwrap_or(usize::MAX);
        let first_new = report.violations.len().saturating_sub(new);
        for v in report.violations.iter().skip(first_new) {
            list_violation(&mut self.violations, &self.recent, v);
            match v.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
        }
        self.violations_total = total;
        self.checking = Checking::Ended { stats, open, verdict: report.verdict };
        Some(report)
    }

    /// The checker while the input runs, for what is published from it (the metrics).
    pub fn checker(&self) -> Option<&Checker> {
        match &self.checking {
            Checking::Running(c) => Some(c),
            Checking::Ended { .. } => None,
        }
    }

    /// Counters, rates and the violation list start again from zero; the checker's pairing
    /// state is untouched (resetting it would invent unpaired ends), and losses stay shown.
    pub fn reset(&mut self) {
        self.baseline = Some(Box::new(self.stats().clone()));
        self.violations.clear();
        self.errors = 0;
        self.warnings = 0;
        self.history = History::default();
        self.history.advance(self.now_ts, 0);
        self.reset_ts = Some(self.now_ts);
    }

    fn stats(&self) -> &Statistics {
        match &self.checking {
            Checking::Running(c) => c.stats(),
            Checking::Ended { stats, .. } => stats,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let all = self.stats();
        let stats = all.summary_since(self.baseline.as_deref());
        let processes =
            stats.mms.iter().filter_map(|m| Some((m.mm?, Process { pid: m.pid, comm: m.comm.clone() }))).collect();
        let (open_ranges, verdict) = match &self.checking {
            Checking::Running(c) => (c.open_ranges(), None),
            Checking::Ended { open, verdict, .. } => (open.clone(), Some(*verdict)),
        };
        Snapshot {
            kernel: self.kernel.clone(),
            source: self.source.clone(),
            hooks: self.hooks.clone(),
            pairing: self.pairing,
            not_checked: self.not_checked,
            events: stats.totals.events,
            events_per_sec: self.history.rate(),
            lost: all.totals.lost,
            open_now: all.totals.open_now,
            errors: self.errors,
            warnings: self.warnings,
            uptime_ns: self.now_ts.saturating_sub(self.started_ts.unwrap_or(self.now_ts)),
            now_ts: self.now_ts,
            violations: self.violations.iter().cloned().collect(),
            stats,
            open_ranges,
            rate_history: self.history.events(),
            open_history: self.history.open(),
            callback_mms: self.callback_mms.clone(),
            verdict,
            reset_ts: self.reset_ts,
            processes,
            inventory: Inventory::default(),
            status: None,
            error: None,
        }
    }
}

fn list_violation(list: &mut VecDeque<Arc<ViolationEntry>>, recent: &RecentEvents, v: &Violation) {
    if list.len() == MAX_LISTED_VIOLATIONS {
        list.pop_back();
    }
    list.push_front(Arc::new(ViolationEntry { violation: v.clone(), sequence: recent.describe(&v.events) }));
}

/// Remembers which mm a subscriber callback ran for (the statistics key callbacks alone).
fn note_owner(owners: &mut HashMap<Symbol, Vec<Addr>>, last: &mut Option<(Symbol, Addr)>, event: &Event) {
    let (callback, mm) = match &event.body {
        EventBody::SubscriberStart(s) => (&s.callback, s.mm),
        EventBody::IntervalInvalidate(i) => (&i.callback, i.mm),
        _ => return,
    };
    // Most events repeat the previous pair; skip the hash lookup for them.
    if last.as_ref().is_some_and(|(c, m)| *m == mm && c == callback) {
        return;
    }
    let mms = owners.entry(callback.clone()).or_default();
    if !mms.contains(&mm) && mms.len() < MAX_MMS_PER_CALLBACK {
        mms.push(mm);
    }
    *last = Some((callback.clone(), mm));
}
