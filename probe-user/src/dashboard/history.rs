//! Per-second history of the event rate and of open ranges, in trace time, for the sparklines
//! and the header's events/s. Trace time is the only clock: the caller says what "now" is.

use std::collections::VecDeque;

/// One bucket per second of trace time.
pub const BUCKET_NS: u64 = 1_000_000_000;
/// Buckets kept: wider than any sparkline the dashboard draws.
pub const HISTORY_LEN: usize = 300;

#[derive(Clone, Debug, Default)]
pub struct History {
    /// Start of the bucket being filled; `None` before the first event or clock tick.
    current_start: Option<u64>,
    current_events: u64,
    /// Completed buckets, oldest first.
    events: VecDeque<u64>,
    open: VecDeque<u64>,
}

impl History {
    /// Counts one event at trace time `ts`; `open_now` is sampled if the event closes buckets.
    pub fn record(&mut self, ts: u64, open_now: u64) {
        self.advance(ts, open_now);
        self.current_events += 1;
    }

    /// Closes every bucket that ends at or before `now`; empty seconds become zeros.
    pub fn advance(&mut self, now: u64, open_now: u64) {
        let Some(start) = self.current_start else {
            self.current_start = Some(now);
            return;
        };
        // An event slightly out of order (another CPU) counts in the current bucket.
        if now < start.saturating_add(BUCKET_NS) {
            return;
        }
        let elapsed = (now - start) / BUCKET_NS;
        self.push(self.current_events, open_now);
        // A long idle gap needs at most a screenful of zeros.
        for _ in 1..elapsed.min(HISTORY_LEN as u64 + 1) {
            self.push(0, open_now);
        }
        self.current_events = 0;
        self.current_start = Some(start + elapsed * BUCKET_NS);
    }

    fn push(&mut self, events: u64, open: u64) {
        if self.events.len() == HISTORY_LEN {
            self.events.pop_front();
            self.open.pop_front();
        }
        self.events.push_back(events);
        self.open.push_back(open);
    }

    /// Events in the last complete second, or in the current one if none is complete yet.
    pub fn rate(&self) -> u64 {
        self.events.back().copied().unwrap_or(self.current_events)
    }

    /// Events per second, oldest first; the last value is the second in progress.
    pub fn events(&self) -> Vec<u64> {
        self.events.iter().copied().chain(self.current_start.map(|_| self.current_events)).collect()
    }

    /// Open ranges at the end of each second, oldest first.
    pub fn open(&self) -> Vec<u64> {
        self.open.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_events_per_second_with_zeros_for_idle_seconds() {
        let mut h = History::default();
        for i in 0..5 {
            h.record(10 * BUCKET_NS + i, 1);
        }
        assert_eq!(h.rate(), 5, "no complete second yet: the current one");
        h.record(11 * BUCKET_NS, 2);
        h.record(14 * BUCKET_NS + 3, 0);
        assert_eq!(h.events(), vec![5, 1, 0, 0, 1]);
        assert_eq!(h.open(), vec![2, 0, 0, 0]);
        assert_eq!(h.rate(), 0);
        h.advance(15 * BUCKET_NS, 7);
        assert_eq!(h.events(), vec![5, 1, 0, 0, 1, 0]);
        assert_eq!(h.open().last(), Some(&7));
    }

    #[test]
    fn keeps_a_bounded_history_even_after_a_long_gap() {
        let mut h = History::default();
        h.record(0, 0);
        h.advance(u64::MAX / 2, 0);
        assert_eq!(h.open().len(), HISTORY_LEN);
        h.record(u64::MAX / 2 + 1, 0);
        assert_eq!(h.open().len(), HISTORY_LEN);
    }
}
