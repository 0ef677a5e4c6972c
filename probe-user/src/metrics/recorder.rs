//! The session thread's side of the exporter: counts what the checker does not break down,
//! and publishes a fresh snapshot for scrapes at most every [`PUBLISH_INTERVAL`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Shared,
    labels::{errno_label, event_index},
    snapshot::{EventBreakdown, SessionSnapshot},
};
use crate::{
    checker::Checker,
    session::SessionTotals,
    trace::{Event, EventBody},
};

/// A scrape sees the session at most this much behind.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

pub struct Recorder {
    shared: Arc<Shared>,
    breakdown: EventBreakdown,
    last_publish: Option<Instant>,
}

impl EventBreakdown {
    pub fn observe(&mut self, event: &Event) {
        match &event.body {
            EventBody::RangeStart(call) => {
                self.range_starts[event_index(call.event)][usize::from(call.blockable)] += 1;
            }
            EventBody::RangeEnd(end) => {
                self.range_ends[event_index(end.call.event)][usize::from(end.call.blockable)] += 1;
            }
            EventBody::RangeStartRet(r) if r.ret != 0 => self.count_failure("range", r.ret),
            EventBody::SubscriberStart(s) => {
                if let Some(ret) = s.ret.filter(|r| *r != 0) {
                    self.count_failure("subscriber", ret);
                }
            }
            _ => {}
        }
    }

    fn count_failure(&mut self, level: &'static str, ret: i64) {
        *self.start_failures.entry((level, errno_label(ret))).or_default() += 1;
    }
}

impl Recorder {
    pub fn new(shared: Arc<Shared>) -> Recorder {
        Recorder { shared, breakdown: EventBreakdown::default(), last_publish: None }
    }

    /// Every event the checker sees goes here too.
    pub fn observe(&mut self, event: &Event) {
        self.breakdown.observe(event);
    }

    /// Publishes unless the last publication is younger than [`PUBLISH_INTERVAL`].
    pub fn publish(&mut self, checker: &Checker, totals: &SessionTotals) {
        if self.last_publish.is_some_and(|t| t.elapsed() < PUBLISH_INTERVAL) {
            return;
        }
        self.publish_now(checker, totals);
    }

    /// Publishes now (at the end of a session, so the last scrape is complete).
    pub fn publish_now(&mut self, checker: &Checker, totals: &SessionTotals) {
        let snapshot = SessionSnapshot::capture(checker, &self.breakdown, totals);
        self.shared.set_session(snapshot);
        self.last_publish = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        metrics::labels::EVENT_LABELS,
        trace::{Addr, MmuEvent, RangeCall, RangeStartRet, SubscriberStart, Symbol},
    };

    fn call(event: MmuEvent, blockable: bool) -> RangeCall {
        RangeCall { tid: 1, mm: Addr(0x1000), range: Addr(0x2000), start: Addr(0), end: Addr(0x1000), event, blockable }
    }

    #[test]
    fn breaks_starts_down_by_event_and_blockability_and_failures_by_errno() {
        let mut b = EventBreakdown::default();
        b.observe(&Event::new(1, EventBody::RangeStart(call(MmuEvent::Clear, true))));
        b.observe(&Event::new(2, EventBody::RangeStart(call(MmuEvent::Unmap, false))));
        b.observe(&Event::new(3, EventBody::RangeStart(call(MmuEvent::Unmap, false))));
        b.observe(&Event::new(
            4,
            EventBody::RangeStartRet(RangeStartRet {
                tid: 1,
                range: Addr(0x2000),
                ret: -11,
                itree: Default::default(),
            }),
        ));
        b.observe(&Event::new(
            5,
            EventBody::RangeStartRet(RangeStartRet { tid: 1, range: Addr(0x2000), ret: 0, itree: Default::default() }),
        ));
        let sub = |ret| SubscriberStart {
            tid: 1,
            mm: Addr(0x1000),
            range: None,
            subscriber: None,
            callback: Symbol::new("kvm_mmu_notifier_invalidate_range_start"),
            has_end: None,
            ret,
            start: None,
            end: None,
        };
        b.observe(&Event::new(6, EventBody::SubscriberStart(sub(Some(-12)))));
        b.observe(&Event::new(7, EventBody::SubscriberStart(sub(None))));
        let clear = EVENT_LABELS.iter().position(|l| *l == "clear").unwrap();
        assert_eq!(b.range_starts[clear], [0, 1]);
        assert_eq!(b.range_starts[0], [2, 0]);
        assert!(b.range_ends.iter().flatten().all(|n| *n == 0));
        let failures: Vec<_> = b.start_failures.iter().map(|((l, e), n)| (*l, e.as_str(), *n)).collect();
        assert_eq!(failures, vec![("range", "EAGAIN", 1), ("subscriber", "ENOMEM", 1)]);
    }
}
