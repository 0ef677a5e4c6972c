//! Every metric family the exporter serves: name, help and label names in one table, and a
//! builder that turns values into the client library's `MetricFamily`.
//!
//! Names follow Prometheus conventions: an `mmnotif_` prefix, base units (seconds), `_total`
//! on counters, `_info` on constant-1 metadata gauges. Label values are drawn from bounded
//! sets (enum names, callback symbols, capped pid/comm rows), never raw kernel addresses.

use prometheus::{
    core::Desc,
    proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

macro_rules! families {
    ($($id:ident: $kind:ident $name:literal [$($label:literal),*] $help:literal;)*) => {
        $(pub const $id: Family = Family { name: $name, help: $help, kind: Kind::$kind, labels: &[$($label),*] };)*
        /// Every family, in the order of this table.
        pub const ALL: &[&Family] = &[$(&$id),*];
    };
}

families! {
    TRACER_INFO: Gauge "mmnotif_tracer_info" ["version", "kernel", "mode"]
        "Constant 1: the tracer's version, the traced kernel's release and the tracing mode (full: start/end pairing, degraded: tracepoints only).";
    HOOK_INFO: Gauge "mmnotif_hook_info" ["hook", "method"]
        "Constant 1 per hook: the attach method it got, or unavailable.";
    RULE_CHECKED: Gauge "mmnotif_rule_checked" ["rule"]
        "1 if the checker can check this rule with the hooks attached, 0 if it is not checked (never reported as passed).";
    EVENTS: Counter "mmnotif_events_total" ["type"]
        "Trace events delivered to the checker, by event type.";
    RANGE_STARTS: Counter "mmnotif_range_starts_total" ["event", "blockable"]
        "Calls of __mmu_notifier_invalidate_range_start, by mmu_notifier_event and blockability.";
    RANGE_ENDS: Counter "mmnotif_range_ends_total" ["event", "blockable"]
        "Calls of __mmu_notifier_invalidate_range_end, by mmu_notifier_event and blockability.";
    START_FAILURES: Counter "mmnotif_start_failures_total" ["level", "errno"]
        "Invalidation starts that failed, by level (range: __mmu_notifier_invalidate_range_start, subscriber: a callback) and errno.";
    SUBSCRIBER_CALLS: Counter "mmnotif_subscriber_calls_total" ["callback", "kind", "call"]
        "Subscriber callbacks observed, by start callback symbol, notifier kind (list, interval, tracepoint) and call (start, end).";
    SUBSCRIBER_FAILURES: Counter "mmnotif_subscriber_failures_total" ["callback", "kind"]
        "Subscriber starts that failed (non-zero return, or false from an interval notifier), by callback.";
    SUBSCRIBER_OPEN: Gauge "mmnotif_subscriber_open" ["callback", "kind"]
        "Subscriber starts that succeeded and still wait for their end, by callback.";
    SUBSCRIBER_DURATION: Histogram "mmnotif_subscriber_duration_seconds" ["callback", "kind"]
        "Time from a subscriber's successful start to its end, by callback.";
    RANGE_DURATION: Histogram "mmnotif_range_duration_seconds" []
        "Time from __mmu_notifier_invalidate_range_start to the matching __mmu_notifier_invalidate_range_end.";
    OPEN_RANGES: Gauge "mmnotif_open_ranges" []
        "Invalidations started and not yet ended.";
    OLDEST_OPEN_RANGE_AGE: Gauge "mmnotif_oldest_open_range_age_seconds" []
        "How long the oldest invalidation still open has been open (0 when none is).";
    VIOLATIONS: Counter "mmnotif_violations_total" ["rule", "severity"]
        "Checker violations found, by rule id and severity.";
    LOST_EVENTS: Counter "mmnotif_lost_events_total" ["cause"]
        "Kernel events that never reached the checker, by cause (ring_full: the ring buffer was full, probe_missed: the kernel skipped the tracer's program for a probe hit, by its own miss counters, undecodable: a record could not be decoded).";
    INCOMPLETE_RECORDS: Counter "mmnotif_incomplete_records_total" ["cause"]
        "Kernel records that arrived with part of their content missing, by cause (read_fault: a kernel read faulted and the field is 0, stack_full: no room for the kernel stack, entry_missing: a return probe found no arguments from its entry).";
    KERNEL_WARNINGS: Counter "mmnotif_kernel_warnings_total" ["source"]
        "Kernel WARNs and error reports seen while tracing, by source (mmu_notifier code, or other).";
    RECORDS_EMITTED: Counter "mmnotif_kernel_records_emitted_total" []
        "Records the eBPF programs tried to emit (before any filtering).";
    RECORDS_RECEIVED: Counter "mmnotif_ring_records_received_total" []
        "Records taken from the ring buffer (before --pid/--comm filtering).";
    CHECKER_STATE: Gauge "mmnotif_checker_state_entries" ["table"]
        "Entries the checker holds, by table (ranges, tasks, mms, pending_finishes, leaks, stored_violations, probe_times, mm_rows, callback_rows): what the tracer's memory grows with; flat over a long run unless invalidations stay open.";
    MM_SUBSCRIBERS: Gauge "mmnotif_mm_subscribers" ["pid", "comm"]
        "List subscribers registered on a process's mm (from the inventory).";
    MM_INTERVAL_SUBSCRIBERS: Gauge "mmnotif_mm_interval_subscribers" ["pid", "comm"]
        "Interval subscribers in a process's interval tree (from the inventory).";
    MM_ITREE_ACTIVE: Gauge "mmnotif_mm_itree_active_invalidate_ranges" ["pid", "comm"]
        "active_invalidate_ranges of a process's interval tree (from the inventory).";
    MM_ITREE_INVALIDATING: Gauge "mmnotif_mm_itree_invalidating" ["pid", "comm"]
        "1 while a process's interval tree is mid-invalidation (odd invalidate_seq or active ranges), from the inventory.";
    KVM_ACTIVE_INVALIDATE: Gauge "mmnotif_kvm_mn_active_invalidations" ["pid", "comm", "vm"]
        "KVM's mn_active_invalidate_count per VM (non-zero while an invalidation is open; stuck non-zero means a missing end).";
    KVM_INVALIDATE_IN_PROGRESS: Gauge "mmnotif_kvm_mmu_invalidate_in_progress" ["pid", "comm", "vm"]
        "KVM's mmu_invalidate_in_progress per VM.";
    STUCK_TASKS: Gauge "mmnotif_stuck_tasks" ["wait"]
        "Tasks in uninterruptible sleep in a kernel wait only a notifier can end, by the function they sleep in (from the inventory); after an interval-tree leak they stay for good.";
    INVENTORY_MMS: Gauge "mmnotif_inventory_mms" []
        "Processes whose mm has notifier subscriptions, including those beyond the per-mm series cap.";
    INVENTORY_REFRESHES: Counter "mmnotif_inventory_refreshes_total" ["result"]
        "Inventory walks (BPF task iterator) done for the per-mm gauges, by result (ok, error).";
    INVENTORY_LAST_REFRESH: Gauge "mmnotif_inventory_last_refresh_timestamp_seconds" []
        "Unix time of the last successful inventory walk (0 before the first).";
}

impl Family {
    /// The client library's descriptor (validates the name and label names).
    pub fn desc(&self) -> prometheus::Result<Desc> {
        Desc::new(
            self.name.into(),
            self.help.into(),
            self.labels.iter().map(|l| l.to_string()).collect(),
            Default::default(),
        )
    }

    pub fn builder(&'static self) -> FamilyBuilder {
        FamilyBuilder { family: self, metrics: Vec::new() }
    }

    /// Names of the samples this family writes (a histogram writes three).
    pub fn sample_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect(),
            _ => vec![self.name.to_string()],
        }
    }
}

/// Collects the series of one family for one scrape.
pub struct FamilyBuilder {
    family: &'static Family,
    metrics: Vec<Metric>,
}

/// One histogram series: cumulative counts at upper bounds (seconds), sum (seconds), count.
pub struct HistogramValue<'a> {
    pub buckets: &'a [(f64, u64)],
    pub sum: f64,
    pub count: u64,
}

impl FamilyBuilder {
    fn series(&self, labels: &[&str]) -> Metric {
        // A mismatch is a bug in this module, caught by the unit tests; keep serving.
        debug_assert_eq!(labels.len(), self.family.labels.len(), "{}", self.family.name);
        let pairs = self
            .family
            .labels
            .iter()
            .zip(labels)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        let mut metric = Metric::default();
        metric.set_label(pairs);
        metric
    }

    pub fn counter(&mut self, labels: &[&str], value: u64) -> &mut Self {
        debug_assert_eq!(self.family.kind, Kind::Counter);
        let mut metric = self.series(labels);
        let mut counter = Counter::default();
        counter.set_value(value as f64);
        metric.set_counter(counter);
        self.metrics.push(metric);
        self
    }

    pub fn gauge(&mut self, labels: &[&str], value: f64) -> &mut Self {
        debug_assert_eq!(self.family.kind, Kind::Gauge);
        let mut metric = self.series(labels);
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
        self.metrics.push(metric);
        self
    }

    pub fn histogram(&mut self, labels: &[&str], value: &HistogramValue<'_>) -> &mut Self {
        debug_assert_eq!(self.family.kind, Kind::Histogram);
        let mut metric = self.series(labels);
        let mut histogram = Histogram::default();
        histogram.set_sample_count(value.count);
        histogram.set_sample_sum(value.sum);
        histogram.set_bucket(
            value
                .buckets
                .iter()
                .map(|&(upper, count)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(upper);
                    bucket.set_cumulative_count(count);
                    bucket
                })
                .collect(),
        );
        metric.set_histogram(histogram);
        self.metrics.push(metric);
        self
    }

    pub fn build(self) -> MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name(self.family.name.to_string());
        family.set_help(self.family.help.to_string());
        family.set_field_type(match self.family.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
        });
        family.set_metric(self.metrics);
        family
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_family_is_a_valid_descriptor_with_conventional_names() {
        let mut names = HashSet::new();
        for family in ALL {
            family.desc().unwrap_or_else(|e| panic!("{}: {e}", family.name));
            assert!(names.insert(family.name), "duplicate {}", family.name);
            assert!(family.name.starts_with("mmnotif_"), "{}", family.name);
            assert_eq!(family.kind == Kind::Counter, family.name.ends_with("_total"), "{}", family.name);
            if family.name.ends_with("_info") {
                assert_eq!(family.kind, Kind::Gauge);
            }
            for label in family.labels {
                assert!(
                    !["mm", "range", "subscriber", "addr"].contains(label),
                    "{}: raw-address label {label}",
                    family.name
                );
            }
        }
    }
}
