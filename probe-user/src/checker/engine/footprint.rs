//! What the checker holds right now, table by table. A tracer that runs for weeks keeps its
//! memory bounded exactly when every one of these stays bounded, so they are exported
//! (`mmnotif_checker_state_entries`) and sampled by the soak benchmark.
use super::*;

/// Entries in each of the checker's tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Invalidations being paired: open ones, and closed ones waiting for late subscriber ends.
    pub ranges: usize,
    /// Tasks with a range in flight.
    pub tasks: usize,
    /// Mms with live interval-tree state.
    pub mms: usize,
    /// Two-pass interval starts owed their finish.
    pub pending_finishes: usize,
    /// Mms whose interval tree leaked.
    pub leaks: usize,
    /// Violations kept for the report (at most [`MAX_STORED_VIOLATIONS`]).
    pub stored_violations: usize,
    /// Callbacks with a recorded probe time.
    pub probe_times: usize,
    /// Per-mm statistics rows (capped; the rest fold into one).
    pub mm_rows: usize,
    /// Per-callback statistics rows (capped likewise).
    pub callback_rows: usize,
}

impl StateSizes {
    /// `(table label, entries)`, in a fixed order.
    pub fn rows(&self) -> [(&'static str, usize); 9] {
        [
            ("ranges", self.ranges),
            ("tasks", self.tasks),
            ("mms", self.mms),
            ("pending_finishes", self.pending_finishes),
            ("leaks", self.leaks),
            ("stored_violations", self.stored_violations),
            ("probe_times", self.probe_times),
            ("mm_rows", self.mm_rows),
            ("callback_rows", self.callback_rows),
        ]
    }
}

impl Checker {
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            ranges: self.outer.len(),
            tasks: self.tasks.len(),
            mms: self.mms.len(),
            pending_finishes: self.pending_finishes.len(),
            leaks: self.leaks.len(),
            stored_violations: self.stored.len(),
            probe_times: self.probes.len(),
            mm_rows: self.stats.mm_rows(),
            callback_rows: self.stats.notifiers().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::{Checker, SETTLE_NS};
    use crate::trace::TraceReader;

    const HEADER: &str = r#"{"mmnotif_trace":1,"kernel":"6.12.43+deb13-amd64","attach":{"range_start":"fentry","range_start_ret":"fexit","range_end":"fentry","subscriber_start":"kretprobe","subscriber_end":"kprobe","sched_process_exit":"tp_btf"}}"#;

    fn range(ts: u64, kind: &str, tid: u32) -> String {
        format!(
            r#"{{"ts":{ts},"type":"{kind}","cpu":0,"pid":{tid},"tid":{tid},"comm":"t","mm":"0xffff888003a1c000","range":"0xffffc90000a3fc88","start":"0x7f0000000000","end":"0x7f0000001000","event":"clear","blockable":true}}"#
        )
    }

    /// A paired range is held until it is settled, then nothing of it is left: the tables a
    /// long run depends on shrink back instead of growing with every invalidation.
    #[test]
    fn a_paired_range_leaves_nothing_behind_once_settled() {
        let reader = TraceReader::new(HEADER.as_bytes()).expect("header");
        let mut checker = Checker::new(reader.header());
        for i in 0..100u64 {
            for line in [range(1_000 + i * 10, "range_start", 7), range(1_005 + i * 10, "range_end", 7)] {
                checker.push(&crate::trace::parse_event_line(&line, 2).expect("event"));
            }
        }
        let during = checker.state_sizes();
        assert!(during.ranges >= 1 && during.tasks == 1, "{during:?}");
        // Another task, well past the settle delay: task 7's ranges are retired.
        let line = range(10_000 + 3 * SETTLE_NS, "range_start", 8);
        checker.push(&crate::trace::parse_event_line(&line, 3).expect("event"));
        let after = checker.state_sizes();
        assert_eq!((after.ranges, after.stored_violations), (1, 0), "only task 8's range is held: {after:?}");
    }
}
