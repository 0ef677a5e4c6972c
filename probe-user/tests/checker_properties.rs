//! Property tests: any interleaving of correct traffic is clean, and removing one end from it
//! yields exactly one violation of the rule that end's absence breaks.
use mmnotif_trace::{
    checker::{Checker, RuleId, Verdict},
    trace::*,
};
use proptest::{collection::vec, option, prelude::*, sample::Index};

/// What one task does with one top-level range.
#[derive(Clone, Debug)]
enum Plan {
    /// A successful invalidation; `subs[i]` says whether subscriber i has an end op. May
    /// contain one nested invalidation.
    Ok { subs: Vec<bool>, inner: Option<Vec<bool>> },
    /// A non-blockable invalidation in which subscriber `fail_at` (without end op) fails and
    /// the others get compensating ends (v5.12+).
    Fail { subs: Vec<bool>, fail_at: usize },
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        3 => (vec(any::<bool>(), 0..3), option::of(vec(any::<bool>(), 0..3)))
            .prop_map(|(subs, inner)| Plan::Ok { subs, inner }),
        1 => (vec(any::<bool>(), 1..4), any::<Index>())
            .prop_map(|(subs, idx)| { let fail_at = idx.index(subs.len()); Plan::Fail { subs, fail_at } }),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EndKind {
    Range,
    Subscriber,
}

struct TaskTrace {
    tid: u32,
    mm: Addr,
    /// Events in program order, with which ones are ends.
    events: Vec<(EventBody, Option<EndKind>)>,
}

impl TaskTrace {
    fn range_ptr(&self, depth: u64) -> Addr {
        Addr(0xffff_c900_0000_0000 + u64::from(self.tid) * 0x4000 + depth * 0x100)
    }

    fn call(&self, depth: u64, blockable: bool) -> RangeCall {
        RangeCall {
            tid: self.tid,
            mm: self.mm,
            range: self.range_ptr(depth),
            start: Addr(0x7f00_0000_0000),
            end: Addr(0x7f00_0020_0000),
            event: if blockable { MmuEvent::Clear } else { MmuEvent::Unmap },
            blockable,
        }
    }

    fn subscriber(i: usize) -> Addr {
        Addr(0xffff_8880_0600_0000 + i as u64 * 0x1000)
    }

    fn sub_start(&mut self, depth: u64, i: usize, has_end: bool, ret: i64) {
        self.events.push((
            EventBody::SubscriberStart(SubscriberStart {
                tid: self.tid,
                mm: self.mm,
                range: Some(self.range_ptr(depth)),
                subscriber: Some(Self::subscriber(i)),
                callback: Symbol::new(&format!("sub{i}_invalidate_range_start")),
                has_end: Some(has_end),
                ret: Some(ret),
                start: None,
                end: None,
            }),
            None,
        ));
    }

    fn sub_end(&mut self, depth: u64, i: usize) {
        self.events.push((
            EventBody::SubscriberEnd(SubscriberEnd {
                tid: self.tid,
                mm: self.mm,
                range: self.range_ptr(depth),
                subscriber: Self::subscriber(i),
                callback: Symbol::new(&format!("sub{i}_invalidate_range_end")),
            }),
            Some(EndKind::Subscriber),
        ));
    }

    fn ok_range(&mut self, depth: u64, subs: &[bool], inner: Option<&[bool]>) {
        self.events.push((EventBody::RangeStart(self.call(depth, true)), None));
        for (i, &has_end) in subs.iter().enumerate() {
            self.sub_start(depth, i, has_end, 0);
        }
        let range = self.range_ptr(depth);
        self.events.push((
            EventBody::RangeStartRet(RangeStartRet { tid: self.tid, range, ret: 0, itree: ItreeSnapshot::default() }),
            None,
        ));
        if let Some(inner) = inner {
            self.ok_range(depth + 1, inner, None);
        }
        self.events.push((
            EventBody::RangeEnd(RangeEnd { call: self.call(depth, true), itree: ItreeSnapshot::default() }),
            Some(EndKind::Range),
        ));
        for (i, &has_end) in subs.iter().enumerate() {
            if has_end {
                self.sub_end(depth, i);
            }
        }
    }

    fn failed_range(&mut self, subs: &[bool], fail_at: usize) {
        self.events.push((EventBody::RangeStart(self.call(0, false)), None));
        for (i, &has_end) in subs.iter().enumerate() {
            if i == fail_at {
                self.sub_start(0, i, false, -11);
            } else {
                self.sub_start(0, i, has_end, 0);
            }
        }
        for (i, &has_end) in subs.iter().enumerate() {
            if has_end && i != fail_at {
                self.sub_end(0, i);
            }
        }
        let range = self.range_ptr(0);
        self.events.push((
            EventBody::RangeStartRet(RangeStartRet { tid: self.tid, range, ret: -11, itree: ItreeSnapshot::default() }),
            None,
        ));
    }
}

fn build(tasks: &[Vec<Plan>], exits: &[bool], choices: &[Index]) -> Vec<(Event, Option<EndKind>)> {
    let mut per_task: Vec<TaskTrace> = Vec::new();
    for (n, plans) in tasks.iter().enumerate() {
        let tid = 100 + n as u32;
        let mut t = TaskTrace { tid, mm: Addr(0xffff_8880_0300_0000 + (n as u64 % 2) * 0x1000), events: Vec::new() };
        for p in plans {
            match p {
                Plan::Ok { subs, inner } => t.ok_range(0, subs, inner.as_deref()),
                Plan::Fail { subs, fail_at } => t.failed_range(subs, *fail_at),
            }
        }
        if exits.get(n).copied().unwrap_or(false) {
            t.events.push((EventBody::TaskExit(TaskExit { tid }), None));
        }
        t.events.reverse();
        per_task.push(t);
    }
    let mut out = Vec::new();
    let mut step = 0usize;
    loop {
        let ready: Vec<usize> = (0..per_task.len()).filter(|&i| !per_task[i].events.is_empty()).collect();
        if ready.is_empty() {
            break;
        }
        let pick = match choices.get(step % choices.len().max(1)) {
            Some(idx) => ready[idx.index(ready.len())],
            None => ready[0],
        };
        step += 1;
        let t = &mut per_task[pick];
        let (body, end) = t.events.pop().expect("ready task has events");
        let mut ev = Event::new(1_000_000 + out.len() as u64 * 250, body);
        ev.pid = Some(t.tid);
        ev.cpu = Some(pick as u32 % 4);
        ev.comm = Some(Comm::new("worker"));
        ev.seq = Some(out.len() as u64 + 1);
        out.push((ev, end));
    }
    out
}

fn full_header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.0"), |h, hook| h.with_attach(hook, "replay"))
}

fn check(events: impl IntoIterator<Item = Event>) -> mmnotif_trace::checker::Report {
    let mut checker = Checker::new(&full_header());
    for e in events {
        checker.push(&e);
    }
    checker.finish()
}

fn scenario() -> impl Strategy<Value = (Vec<Vec<Plan>>, Vec<bool>, Vec<Index>)> {
    (vec(vec(plan(), 1..4), 1..5), vec(any::<bool>(), 5), vec(any::<Index>(), 1..64))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn correct_interleavings_are_clean((tasks, exits, choices) in scenario()) {
        let events = build(&tasks, &exits, &choices);
        let report = check(events.into_iter().map(|(e, _)| e));
        prop_assert!(report.violations.is_empty(), "{report}");
        prop_assert_eq!(report.verdict, Verdict::Pass);
        prop_assert_eq!(report.stats.totals.open_now, 0);
        prop_assert!(report.stats.notifiers.iter().all(|n| n.open_now == 0), "{report}");
    }

    #[test]
    fn deleting_one_end_gives_exactly_one_violation((tasks, exits, choices) in scenario(), which in any::<Index>()) {
        let events = build(&tasks, &exits, &choices);
        let ends: Vec<usize> = events.iter().enumerate().filter(|(_, (_, e))| e.is_some()).map(|(i, _)| i).collect();
        prop_assume!(!ends.is_empty());
        let victim = ends[which.index(ends.len())];
        let kind = events[victim].1;
        let want = match kind {
            Some(EndKind::Range) => RuleId::UnpairedStart,
            _ => RuleId::NotifierUnpairedStart,
        };
        let report = check(events.into_iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, (e, _))| e));
        prop_assert_eq!(report.violations.len(), 1, "deleted event {} ({:?}):\n{}", victim + 1, kind, report);
        prop_assert_eq!(report.violations[0].rule, want, "{}", report);
    }

    #[test]
    fn same_trace_same_report((tasks, exits, choices) in scenario(), which in any::<Index>()) {
        // Determinism: hash-map order must never reach the output.
        let events = build(&tasks, &exits, &choices);
        let victim = which.index(events.len());
        let trimmed: Vec<Event> = events.into_iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, (e, _))| e).collect();
        let a = serde_json::to_string(&check(trimmed.clone())).expect("json");
        let b = serde_json::to_string(&check(trimmed)).expect("json");
        prop_assert_eq!(a, b);
    }
}
