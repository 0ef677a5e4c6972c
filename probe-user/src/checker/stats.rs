//! Running statistics: per notifier callback, per mm, per event type, and totals. Tables are
//! keyed by things that are few (callbacks, processes) and capped, never by events.
use std::collections::HashMap;

use serde::Serialize;

use super::{
    histogram::{DurationSummary, LogHistogram},
    state::FastHash,
};
use crate::trace::{Addr, Comm, EventType, Symbol};

/// Beyond this many mms, further ones are folded into one "other" row.
pub const MAX_MM_ROWS: usize = 4096;
/// Beyond this many distinct callbacks, further ones are folded into one "other" row.
pub const MAX_NOTIFIER_ROWS: usize = 1024;

/// How a notifier was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// `invalidate_range_start`/`_end` of a list subscriber.
    List,
    /// `ops->invalidate` of an interval subscriber.
    Interval,
    /// Seen only through a tracepoint (no pairing possible).
    Tracepoint,
}

#[derive(Clone, Debug)]
pub struct NotifierStats {
    pub callback: Symbol,
    pub kind: NotifierKind,
    pub starts: u64,
    pub ends: u64,
    pub failures: u64,
    pub open_now: u64,
    pub durations: LogHistogram,
}

#[derive(Clone, Debug, Default)]
pub struct MmStats {
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
    pub starts: u64,
    pub ends: u64,
    pub failures: u64,
    pub open_now: u64,
    pub subscriber_calls: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub events: u64,
    pub range_starts: u64,
    pub range_ends: u64,
    pub range_failures: u64,
    pub open_now: u64,
    pub lost: u64,
    pub warns: u64,
    /// Warnings whose caller is not mmu-notifier code (statistics only).
    pub unrelated_warns: u64,
    pub violations: u64,
    pub range_durations: LogHistogram,
}

#[derive(Clone, Debug, Default)]
pub struct Statistics {
    notifiers: Vec<NotifierStats>,
    notifier_index: HashMap<Symbol, usize, FastHash>,
    mms: HashMap<Addr, MmStats, FastHash>,
    other_mms: MmStats,
    by_type: [u64; EventType::ALL.len()],
    pub totals: Totals,
}

/// Index of a notifier row, cached by open pairs so an end does not hash the symbol again.
pub type NotifierRow = usize;

impl Statistics {
    pub fn count_event(&mut self, kind: EventType) {
        self.totals.events += 1;
        if let Some(c) = self.by_type.get_mut(kind.index()) {
            *c += 1;
        }
    }

    pub fn notifier_row(&mut self, callback: &Symbol, kind: NotifierKind) -> NotifierRow {
        if let Some(&row) = self.notifier_index.get(callback.as_str()) {
            return row;
        }
        let (name, full) = if self.notifiers.len() >= MAX_NOTIFIER_ROWS {
            (Symbol::new("(other callbacks)"), true)
        } else {
            (callback.clone(), false)
        };
        if full && let Some(&row) = self.notifier_index.get(name.as_str()) {
            return row;
        }
        let row = self.notifiers.len();
        self.notifiers.push(NotifierStats {
            callback: name.clone(),
            kind,
            starts: 0,
            ends: 0,
            failures: 0,
            open_now: 0,
            durations: LogHistogram::default(),
        });
        self.notifier_index.insert(name, row);
        row
    }

    /// The row for an end callback with no matching start: the start callback's row when the
    /// names follow the `…_start`/`…_end` convention, else a row of its own.
    pub fn notifier_row_for_end(&mut self, end_callback: &Symbol) -> NotifierRow {
        let function = end_callback.function();
        if let Some(stem) = function.strip_suffix("_end") {
            let start = format!("{stem}_start");
            if let Some(row) = self.notifiers.iter().position(|n| n.callback.function() == start) {
                return row;
            }
            return self.notifier_row(&Symbol::from(start), NotifierKind::List);
        }
        self.notifier_row(end_callback, NotifierKind::List)
    }

    /// Every notifier row, in the order first seen.
    pub fn notifiers(&self) -> &[NotifierStats] {
        &self.notifiers
    }

    /// Events of one type seen so far.
    pub fn events_of_type(&self, kind: EventType) -> u64 {
        self.by_type.get(kind.index()).copied().unwrap_or(0)
    }

    pub fn notifier(&mut self, row: NotifierRow) -> Option<&mut NotifierStats> {
        self.notifiers.get_mut(row)
    }

    /// Whether `function` (no offset) is a callback this trace has seen.
    pub fn knows_callback(&self, function: &str) -> bool {
        self.notifiers.iter().any(|n| n.callback.function() == function)
    }

    /// Per-mm rows kept (at most [`MAX_MM_ROWS`]; the rest fold into one).
    pub fn mm_rows(&self) -> usize {
        self.mms.len()
    }

    pub fn mm(&mut self, mm: Addr) -> &mut MmStats {
        if !self.mms.contains_key(&mm) && self.mms.len() >= MAX_MM_ROWS {
            return &mut self.other_mms;
        }
        self.mms.entry(mm).or_default()
    }

    /// The process last named for `mm` (see [`Statistics::mm_task`]).
    pub fn mm_owner(&self, mm: Addr) -> (Option<u32>, Option<Comm>) {
        self.mms.get(&mm).map_or((None, None), |row| (row.pid, row.comm.clone()))
    }

    pub fn mm_task(&mut self, mm: Addr, pid: Option<u32>, comm: Option<&Comm>) {
        let row = self.mm(mm);
        if pid.is_some() {
            row.pid = pid;
        }
        if let Some(comm) = comm
            && row.comm.as_ref() != Some(comm)
        {
            row.comm = Some(comm.clone());
        }
    }

    // ---- the engine's transitions, counted: each call is one thing the checker saw ----

    /// An outer `__start` was entered. Non-blockable ranges come from another task (the OOM
    /// reaper, process_mrelease): they must not rename the mm's process.
    pub(super) fn range_started(&mut self, mm: Addr, blockable: bool, pid: Option<u32>, comm: Option<&Comm>) {
        self.totals.range_starts += 1;
        self.totals.open_now += 1;
        if blockable {
            self.mm_task(mm, pid, comm);
        }
        let row = self.mm(mm);
        row.starts += 1;
        row.open_now += 1;
    }

    /// An outer `__start` returned an error.
    pub(super) fn range_failed(&mut self, mm: Addr) {
        self.totals.range_failures += 1;
        self.mm(mm).failures += 1;
    }

    /// An outer `__end` was called (paired or not); its task names the mm's process.
    pub(super) fn range_end_called(&mut self, mm: Addr, pid: Option<u32>, comm: Option<&Comm>) {
        self.totals.range_ends += 1;
        self.mm_task(mm, pid, comm);
        self.mm(mm).ends += 1;
    }

    /// A live outer range stopped being open: it failed, ended or was given up on.
    pub(super) fn range_closed(&mut self, mm: Addr) {
        self.totals.open_now = self.totals.open_now.saturating_sub(1);
        let row = self.mm(mm);
        row.open_now = row.open_now.saturating_sub(1);
    }

    /// A subscriber callback ran for `mm` (start, end or interval invalidate).
    pub(super) fn subscriber_call(&mut self, mm: Addr) {
        self.mm(mm).subscriber_calls += 1;
    }

    /// A subscriber start seen only through a tracepoint: counted, never paired.
    pub(super) fn tracepoint_subscriber_call(
        &mut self,
        callback: &Symbol,
        mm: Addr,
        pid: Option<u32>,
        comm: Option<&Comm>,
    ) {
        let row = self.notifier_row(callback, NotifierKind::Tracepoint);
        if let Some(n) = self.notifier(row) {
            n.starts += 1;
        }
        self.mm_task(mm, pid, comm);
        self.subscriber_call(mm);
    }

    /// A list subscriber's start returned: `open` if it now owes an end, `failed` if it failed.
    pub(super) fn subscriber_started(&mut self, row: NotifierRow, open: bool, failed: bool) {
        if let Some(n) = self.notifier(row) {
            n.starts += 1;
            if open {
                n.open_now += 1;
            } else if failed {
                n.failures += 1;
            }
        }
    }

    /// A list subscriber's end ran (paired or not).
    pub(super) fn subscriber_ended(&mut self, row: NotifierRow) {
        if let Some(n) = self.notifier(row) {
            n.ends += 1;
        }
    }

    /// A list subscriber's end closed its open start after `duration_ns`.
    pub(super) fn subscriber_paired(&mut self, row: NotifierRow, duration_ns: u64) {
        if let Some(n) = self.notifier(row) {
            n.open_now = n.open_now.saturating_sub(1);
            n.durations.record(duration_ns);
        }
    }

    /// A list subscriber's open start will never get its end (its range was settled or given up).
    pub(super) fn subscriber_closed(&mut self, row: NotifierRow) {
        if let Some(n) = self.notifier(row) {
            n.open_now = n.open_now.saturating_sub(1);
        }
    }

    /// An interval subscriber's `invalidate` returned `ret` (false: it would have blocked).
    pub(super) fn interval_call(&mut self, callback: &Symbol, mm: Addr, ret: bool) {
        let row = self.notifier_row(callback, NotifierKind::Interval);
        if let Some(n) = self.notifier(row) {
            n.starts += 1;
            if !ret {
                n.failures += 1;
            }
        }
        self.subscriber_call(mm);
    }

    pub fn summary(&self) -> StatsSummary {
        self.summary_since(None)
    }

    /// Like [`Statistics::summary`], with every counter and duration counted from `baseline`,
    /// an earlier copy of these statistics (a dashboard's "reset counters"); gauges such as
    /// `open_now` stay absolute. Rows are never removed, so a row index names the same
    /// callback in both.
    pub fn summary_since(&self, baseline: Option<&Statistics>) -> StatsSummary {
        let durations = |now: &LogHistogram, then: Option<&LogHistogram>| match then {
            Some(then) => now.since(then).summary(),
            None => now.summary(),
        };
        let mut notifiers: Vec<NotifierSummary> = self
            .notifiers
            .iter()
            .enumerate()
            .map(|(row, n)| {
                let base = baseline.and_then(|b| b.notifiers.get(row));
                let before = |f: fn(&NotifierStats) -> u64| base.map_or(0, f);
                NotifierSummary {
                    callback: n.callback.clone(),
                    kind: n.kind,
                    starts: n.starts.saturating_sub(before(|b| b.starts)),
                    ends: n.ends.saturating_sub(before(|b| b.ends)),
                    failures: n.failures.saturating_sub(before(|b| b.failures)),
                    open_now: n.open_now,
                    durations: durations(&n.durations, base.map(|b| &b.durations)),
                }
            })
            .collect();
        notifiers.sort_by(|a, b| a.callback.cmp(&b.callback));
        let mm_since = |mm: Option<Addr>, s: &MmStats, base: Option<&MmStats>| {
            let mut row = MmSummary::from_stats(mm, s);
            if let Some(b) = base {
                row.starts = row.starts.saturating_sub(b.starts);
                row.ends = row.ends.saturating_sub(b.ends);
                row.failures = row.failures.saturating_sub(b.failures);
                row.subscriber_calls = row.subscriber_calls.saturating_sub(b.subscriber_calls);
            }
            row
        };
        let mut mms: Vec<MmSummary> =
            self.mms.iter().map(|(mm, s)| mm_since(Some(*mm), s, baseline.and_then(|b| b.mms.get(mm)))).collect();
        mms.sort_by_key(|m| m.mm);
        if self.other_mms.starts + self.other_mms.subscriber_calls > 0 {
            mms.push(mm_since(None, &self.other_mms, baseline.map(|b| &b.other_mms)));
        }
        let by_type = EventType::ALL
            .into_iter()
            .map(|t| {
                let now = self.by_type.get(t.index()).copied().unwrap_or(0);
                let then = baseline.and_then(|b| b.by_type.get(t.index()).copied()).unwrap_or(0);
                (t.as_str(), now.saturating_sub(then))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let t = &self.totals;
        let zero = Totals::default();
        let b = baseline.map_or(&zero, |b| &b.totals);
        StatsSummary {
            totals: TotalsSummary {
                events: t.events.saturating_sub(b.events),
                range_starts: t.range_starts.saturating_sub(b.range_starts),
                range_ends: t.range_ends.saturating_sub(b.range_ends),
                range_failures: t.range_failures.saturating_sub(b.range_failures),
                open_now: t.open_now,
                lost: t.lost.saturating_sub(b.lost),
                warns: t.warns.saturating_sub(b.warns),
                unrelated_warns: t.unrelated_warns.saturating_sub(b.unrelated_warns),
                violations: t.violations.saturating_sub(b.violations),
                range_durations: durations(&t.range_durations, baseline.map(|b| &b.totals.range_durations)),
            },
            by_type,
            notifiers,
            mms,
        }
    }
}

/// Serializable snapshot of [`Statistics`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsSummary {
    pub totals: TotalsSummary,
    pub by_type: std::collections::BTreeMap<&'static str, u64>,
    pub notifiers: Vec<NotifierSummary>,
    pub mms: Vec<MmSummary>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TotalsSummary {
    pub events: u64,
    pub range_starts: u64,
    pub range_ends: u64,
    pub range_failures: u64,
    pub open_now: u64,
    pub lost: u64,
    pub warns: u64,
    pub unrelated_warns: u64,
    pub violations: u64,
    pub range_durations: DurationSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotifierSummary {
    pub callback: Symbol,
    pub kind: NotifierKind,
    pub starts: u64,
    pub ends: u64,
    pub failures: u64,
    pub open_now: u64,
    pub durations: DurationSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct MmSummary {
    /// `None` for the row that folds mms beyond [`MAX_MM_ROWS`].
    pub mm: Option<Addr>,
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
    pub starts: u64,
    pub ends: u64,
    pub failures: u64,
    pub open_now: u64,
    pub subscriber_calls: u64,
}

impl MmSummary {
    fn from_stats(mm: Option<Addr>, s: &MmStats) -> MmSummary {
        MmSummary {
            mm,
            pid: s.pid,
            comm: s.comm.clone(),
            starts: s.starts,
            ends: s.ends,
            failures: s.failures,
            open_now: s.open_now,
            subscriber_calls: s.subscriber_calls,
        }
    }
}
