//! What one scrape shows of a session: a plain copy of the checker's statistics and
//! counts, the per-event breakdowns the checker does not keep, and the session totals.
//! The session thread captures it; the HTTP side only reads it.

use std::collections::BTreeMap;

use super::labels::{EVENT_LABELS, callback_label, kind_label};
use crate::{
    checker::{Checker, LogHistogram, RuleId, StateSizes},
    loader::{AttachReport, Incomplete},
    session::SessionTotals,
    trace::EventType,
};

/// Histogram upper bounds in nanoseconds: every power of four minus one from 255 ns to about
/// 17 s. Each is a bucket bound of the checker's [`LogHistogram`], so the cumulative counts
/// are exact, not interpolated.
pub const BUCKET_BOUNDS_NS: [u64; 14] = {
    let mut bounds = [0u64; 14];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = (1u64 << (8 + 2 * i)) - 1;
        i += 1;
    }
    bounds
};

/// Beyond this many callbacks, the rest are summed into one `other` series.
pub const MAX_CALLBACK_SERIES: usize = 64;

/// A Prometheus histogram: cumulative counts at [`BUCKET_BOUNDS_NS`], in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurationHistogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl DurationHistogram {
    pub fn from_log(h: &LogHistogram) -> DurationHistogram {
        DurationHistogram {
            buckets: BUCKET_BOUNDS_NS.iter().map(|&ns| (ns as f64 / 1e9, h.count_at_most(ns))).collect(),
            sum_seconds: h.sum() as f64 / 1e9,
            count: h.count(),
        }
    }

    fn add(&mut self, other: &DurationHistogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.iter().map(|&(le, _)| (le, 0)).collect();
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }
}

/// One subscriber callback's row.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackRow {
    pub callback: String,
    pub kind: &'static str,
    pub starts: u64,
    pub ends: u64,
    pub failures: u64,
    pub open_now: u64,
    pub durations: DurationHistogram,
}

/// Counts by label that only the exporter needs, kept per event by the recorder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBreakdown {
    /// `[event label][blockable]`.
    pub range_starts: [[u64; 2]; EVENT_LABELS.len()],
    pub range_ends: [[u64; 2]; EVENT_LABELS.len()],
    /// `(level, errno)` → failures.
    pub start_failures: BTreeMap<(&'static str, String), u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionSnapshot {
    pub events: [u64; EventType::ALL.len()],
    pub breakdown: EventBreakdown,
    pub callbacks: Vec<CallbackRow>,
    pub range_durations: DurationHistogram,
    pub open_ranges: u64,
    /// Trace time (CLOCK_MONOTONIC ns) at which the oldest open range started.
    pub oldest_open_started_ns: Option<u64>,
    pub violations: [u64; RuleId::ALL.len()],
    pub rule_checked: [bool; RuleId::ALL.len()],
    pub lost_ring_full: u64,
    pub probe_missed: u64,
    pub undecodable: u64,
    pub incomplete: Incomplete,
    pub warnings_mmu_notifier: u64,
    pub warnings_other: u64,
    pub records_emitted: u64,
    pub records_received: u64,
    /// Entries in each of the checker's tables.
    pub checker_state: StateSizes,
}

impl SessionSnapshot {
    pub fn capture(checker: &Checker, breakdown: &EventBreakdown, totals: &SessionTotals) -> SessionSnapshot {
        let stats = checker.stats();
        let t = &stats.totals;
        SessionSnapshot {
            events: EventType::ALL.map(|kind| stats.events_of_type(kind)),
            breakdown: breakdown.clone(),
            callbacks: callback_rows(checker),
            range_durations: DurationHistogram::from_log(&t.range_durations),
            open_ranges: t.open_now,
            oldest_open_started_ns: if t.open_now > 0 {
                checker.open_ranges().first().map(|o| o.started_ts)
            } else {
                None
            },
            violations: RuleId::ALL.map(|rule| checker.violation_count(rule)),
            rule_checked: RuleId::ALL.map(|rule| checker.rules().is_checked(rule)),
            // The session turns every growth of the kernel's loss counters into a `lost` event,
            // so the checker's sum is the ring-full and missed total (and a replay has it too,
            // undivided: there every loss counts as ring-full).
            lost_ring_full: t.lost.saturating_sub(totals.kernel.missed),
            probe_missed: totals.kernel.missed,
            undecodable: totals.undecodable,
            incomplete: totals.kernel.incomplete,
            warnings_mmu_notifier: t.warns.saturating_sub(t.unrelated_warns),
            warnings_other: t.unrelated_warns,
            records_emitted: totals.kernel.attempted,
            records_received: totals.received,
            checker_state: checker.state_sizes(),
        }
    }

    /// Seconds the oldest open range has been open at `now_ns` (CLOCK_MONOTONIC).
    pub fn oldest_open_age_seconds(&self, now_ns: u64) -> f64 {
        self.oldest_open_started_ns.map_or(0.0, |started| now_ns.saturating_sub(started) as f64 / 1e9)
    }
}

/// The checker's notifier rows under bounded labels: rows that map to the same label (and
/// every row past [`MAX_CALLBACK_SERIES`]) are summed.
fn callback_rows(checker: &Checker) -> Vec<CallbackRow> {
    let mut rows: Vec<CallbackRow> = Vec::new();
    for n in checker.stats().notifiers() {
        let mut callback = callback_label(&n.callback);
        let kind = kind_label(n.kind);
        if !rows.iter().any(|r| r.callback == callback && r.kind == kind) && rows.len() >= MAX_CALLBACK_SERIES - 1 {
            callback = "other".to_owned();
        }
        let durations = DurationHistogram::from_log(&n.durations);
        match rows.iter_mut().find(|r| r.callback == callback && r.kind == kind) {
            Some(row) => {
                row.starts += n.starts;
                row.ends += n.ends;
                row.failures += n.failures;
                row.open_now += n.open_now;
                row.durations.add(&durations);
            }
            None => rows.push(CallbackRow {
                callback,
                kind,
                starts: n.starts,
                ends: n.ends,
                failures: n.failures,
                open_now: n.open_now,
                durations,
            }),
        }
    }
    rows
}

/// Constant facts of a session, for the info metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub version: String,
    pub kernel: String,
    pub mode: &'static str,
    /// `(hook, method or "unavailable")`.
    pub hooks: Vec<(String, String)>,
}

impl SessionInfo {
    pub fn new(kernel: &str, attach: &AttachReport) -> SessionInfo {
        SessionInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: kernel.to_owned(),
            mode: if attach.pairing_available() { "full" } else { "degraded" },
            hooks: attach
                .hooks
                .iter()
                .map(|h| (h.hook.as_str().to_owned(), h.method.map_or("unavailable", |m| m.as_str()).to_owned()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_exact_log_histogram_bounds() {
        for ns in BUCKET_BOUNDS_NS {
            assert!(LogHistogram::is_exact_bound(ns), "{ns}");
        }
        assert_eq!(BUCKET_BOUNDS_NS[0], 255);
        assert!(BUCKET_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert!(*BUCKET_BOUNDS_NS.last().unwrap() > 10_000_000_000, "the top bound covers stuck ranges of seconds");
    }

    #[test]
    fn histogram_conversion_is_cumulative_and_exact() {
        let mut log = LogHistogram::default();
        for ns in [100, 200, 300, 5_000, 70_000, 2_000_000_000] {
            log.record(ns);
        }
        let h = DurationHistogram::from_log(&log);
        assert_eq!(h.count, 6);
        assert!((h.sum_seconds - 2.000_075_6).abs() < 1e-9, "{}", h.sum_seconds);
        let at = |le_ns: u64| h.buckets.iter().find(|(le, _)| (*le - le_ns as f64 / 1e9).abs() < 1e-15).map(|b| b.1);
        assert_eq!(at(255), Some(2));
        assert_eq!(at(1023), Some(3));
        assert_eq!(at(16383), Some(4));
        assert_eq!(at(262_143), Some(5));
        assert_eq!(at((1 << 30) - 1), Some(5));
        assert_eq!(at((1 << 34) - 1), Some(6));
        let mut sum = DurationHistogram::default();
        sum.add(&h);
        sum.add(&h);
        assert_eq!(sum.count, 12);
        assert_eq!(at(255).map(|c| c * 2), sum.buckets.first().map(|b| b.1));
    }
}
