//! Compares what the workload says it caused with what the tracer observed. Pure: the command
//! gathers both sides, this decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    trace::{Addr, Event, EventBody},
    workload::Span,
};

/// A workload step report as read back from the workload's JSON-lines output.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct StepRecord {
    pub step: String,
    pub pid: u32,
    pub t0: u64,
    pub t1: u64,
    pub expected: Vec<SpanRecord>,
    pub possible: Vec<SpanRecord>,
    #[serde(default)]
    pub cow_within: Vec<SpanRecord>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct SpanRecord {
    pub start: String,
    pub end: String,
}

impl SpanRecord {
    pub(crate) fn parse(&self) -> Result<Span, String> {
        let a = Addr::parse(&self.start).map_err(|e| e.to_string())?;
        let b = Addr::parse(&self.end).map_err(|e| e.to_string())?;
        Ok(Span { start: a, end: b })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct StepVerdict {
    pub step: String,
    pub duration_ns: u64,
    pub expected: Vec<Span>,
    pub observed: Vec<Span>,
    /// Expected but not seen (or seen fewer times than expected).
    pub missing: Vec<Span>,
    /// Seen but neither expected nor possible (or seen more often than allowed).
    pub unexpected: Vec<Span>,
    /// Single-page copy-on-write invalidations accepted inside the step's `cow_within` ranges:
    /// during the step, or later in a range an earlier step forked (see [`judge`]).
    pub cow_faults: usize,
    pub pass: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SelftestVerdict {
    pub steps: Vec<StepVerdict>,
    /// KVM invalidations of the workload's process that fell outside every step.
    pub outside_steps: Vec<Span>,
    pub lost: u64,
    pub pass: bool,
}

/// The (start, end) of every KVM invalidation event of `pid`, with its timestamp.
fn kvm_invalidations(events: &[Event], pid: u32) -> Vec<(u64, Span)> {
    events
        .iter()
        .filter(|e| e.pid == Some(pid))
        .filter_map(|e| match &e.body {
            EventBody::SubscriberStart(s) => Some((e.ts, Span { start: s.start?, end: s.end? })),
            _ => None,
        })
        .collect()
}

/// One workload step with its parsed ranges.
#[derive(Clone, Debug)]
pub(crate) struct PlannedStep {
    pub record: StepRecord,
    pub expected: Vec<Span>,
    pub possible: Vec<Span>,
    pub cow_within: Vec<Span>,
}

impl PlannedStep {
    pub(crate) fn from_record(record: StepRecord) -> Result<PlannedStep, String> {
        let parse = |v: &[SpanRecord]| v.iter().map(|s| s.parse()).collect::<Result<Vec<_>, _>>();
        Ok(PlannedStep {
            expected: parse(&record.expected)?,
            possible: parse(&record.possible)?,
            cow_within: parse(&record.cow_within)?,
            record,
        })
    }
}

const PAGE: u64 = 4096;

fn is_cow_fault(s: &Span, within: &[Span]) -> bool {
    s.end.0.wrapping_sub(s.start.0) == PAGE
        && s.start.0.is_multiple_of(PAGE)
        && within.iter().any(|w| w.start <= s.start && s.end <= w.end)
}

/// Matches the workload's KVM invalidations to its steps. A fork leaves the parent's private
/// pages write-protected; after the child has gone, the parent's first write to such a page
/// may still copy it (the kernel copies whenever the page has another reference, such as
/// another CPU's LRU batch holding it), a single-page invalidation at whatever time that write
/// comes.
/// So such invalidations are accepted in a forked range during the fork step and at any time
/// after it, and counted as that step's copy-on-write faults.
pub(crate) fn judge(steps: &[PlannedStep], events: &[Event], lost: u64) -> SelftestVerdict {
    let pid = steps.first().map(|s| s.record.pid).unwrap_or(0);
    let mut seen = kvm_invalidations(events, pid);
    let mut verdicts: Vec<StepVerdict> = Vec::new();
    // (index of the step in `verdicts`, when it ended, the ranges it forked)
    let mut forked: Vec<(usize, u64, &[Span])> = Vec::new();
    for PlannedStep { record: rec, expected, possible, cow_within } in steps {
        let observed: Vec<Span> =
            seen.iter().filter(|(ts, _)| *ts >= rec.t0 && *ts <= rec.t1).map(|(_, s)| *s).collect();
        seen.retain(|(ts, _)| *ts < rec.t0 || *ts > rec.t1);
        let mut want: BTreeMap<Span, i64> = BTreeMap::new();
        for s in expected {
            *want.entry(*s).or_default() += 1;
        }
        let mut unexpected = Vec::new();
        let mut cow_faults = 0;
        let mut may: Vec<Span> = possible.clone();
        for s in &observed {
            match want.get_mut(s) {
                Some(n) if *n > 0 => *n -= 1,
                _ => match may.iter().position(|p| p == s) {
                    Some(i) => {
                        may.swap_remove(i);
                    }
                    None if is_cow_fault(s, cow_within) => cow_faults += 1,
                    None => match forked.iter().rev().find(|(_, _, within)| is_cow_fault(s, within)) {
                        Some(&(i, _, _)) => verdicts[i].cow_faults += 1,
                        None => unexpected.push(*s),
                    },
                },
            }
        }
        let missing: Vec<Span> = want.iter().flat_map(|(s, n)| std::iter::repeat_n(*s, (*n).max(0) as usize)).collect();
        let pass = missing.is_empty() && unexpected.is_empty();
        verdicts.push(StepVerdict {
            step: rec.step.clone(),
            duration_ns: rec.t1.saturating_sub(rec.t0),
            expected: expected.clone(),
            observed,
            missing,
            unexpected,
            cow_faults,
            pass,
        });
        if !cow_within.is_empty() {
            forked.push((verdicts.len() - 1, rec.t1, cow_within));
        }
    }
    // Between and after the steps: a late copy-on-write fault of a step that forked earlier.
    let mut outside_steps = Vec::new();
    for (ts, s) in seen {
        match forked.iter().rev().find(|(_, ended, within)| *ended < ts && is_cow_fault(&s, within)) {
            Some(&(i, _, _)) => verdicts[i].cow_faults += 1,
            None => outside_steps.push(s),
        }
    }
    let pass = !verdicts.is_empty() && verdicts.iter().all(|v| v.pass) && outside_steps.is_empty() && lost == 0;
    SelftestVerdict { steps: verdicts, outside_steps, lost, pass }
}

impl SelftestVerdict {
    pub(crate) fn render_text(&self, attach_summary: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "attach: {attach_summary}");
        let _ = writeln!(s, "{:<17} {:>10} {:>8} {:>8}  result", "step", "time", "expected", "observed");
        for v in &self.steps {
            let _ = write!(
                s,
                "{:<17} {:>7.1} us {:>8} {:>8}  {}",
                v.step,
                v.duration_ns as f64 / 1000.0,
                v.expected.len(),
                v.observed.len(),
                if v.pass { "PASS" } else { "FAIL" }
            );
            if v.cow_faults > 0 {
                let _ = write!(s, "  (+{} copy-on-write fault(s))", v.cow_faults);
            }
            for m in &v.missing {
                let _ = write!(s, "  missing [{}, {})", m.start, m.end);
            }
            for u in &v.unexpected {
                let _ = write!(s, "  unexpected [{}, {})", u.start, u.end);
            }
            s.push('\n');
        }
        for o in &self.outside_steps {
            let _ = writeln!(s, "FAIL: invalidation [{}, {}) outside every step", o.start, o.end);
        }
        let _ = writeln!(
            s,
            "lost events: {}{}",
            self.lost,
            if self.lost > 0 { " (FAIL: the comparison is incomplete)" } else { "" }
        );
        let _ = writeln!(s, "selftest: {}", if self.pass { "PASS" } else { "FAIL" });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Symbol, event::SubscriberStart};

    fn inval(ts: u64, pid: u32, a: u64, b: u64) -> Event {
        let mut e = Event::new(
            ts,
            EventBody::SubscriberStart(SubscriberStart {
                tid: pid,
                mm: Addr(1),
                range: None,
                subscriber: None,
                callback: Symbol::new("kvm_mmu_notifier_invalidate_range_start"),
                has_end: None,
                ret: None,
                start: Some(Addr(a)),
                end: Some(Addr(b)),
            }),
        );
        e.pid = Some(pid);
        e
    }

    fn step(name: &str, t0: u64, t1: u64, expected: Vec<Span>, possible: Vec<Span>) -> PlannedStep {
        let record =
            StepRecord { step: name.into(), pid: 5, t0, t1, expected: vec![], possible: vec![], cow_within: vec![] };
        PlannedStep { record, cow_within: expected.clone(), expected, possible }
    }

    #[test]
    fn exact_match_passes_and_every_kind_of_difference_fails() {
        let steps = vec![
            step("a", 10, 20, vec![Span::new(0x1000, 0x3000)], vec![]),
            step("b", 30, 40, vec![Span::new(0x3000, 0x4000)], vec![Span::new(0x5000, 0x6000)]),
        ];
        let good = vec![inval(15, 5, 0x1000, 0x3000), inval(35, 5, 0x3000, 0x4000), inval(36, 9, 0x7000, 0x8000)];
        let v = judge(&steps, &good, 0);
        assert!(v.pass, "{v:?}");
        assert_eq!(v.steps[1].observed.len(), 1, "another pid's event must not count");

        // A "possible" range may appear once.
        let mut with_possible = good.clone();
        with_possible.push(inval(37, 5, 0x5000, 0x6000));
        assert!(judge(&steps, &with_possible, 0).pass);

        // Missing, duplicated, outside any step, lost events: each fails.
        assert!(!judge(&steps, &good[1..], 0).pass);
        let mut dup = good.clone();
        dup.push(inval(16, 5, 0x1000, 0x3000));
        let v = judge(&steps, &dup, 0);
        assert_eq!(v.steps[0].unexpected, vec![Span::new(0x1000, 0x3000)]);
        let mut outside = good.clone();
        outside.push(inval(25, 5, 0x1000, 0x3000));
        assert_eq!(judge(&steps, &outside, 0).outside_steps.len(), 1);
        assert!(!judge(&steps, &good, 3).pass);
        assert!(!judge(&[], &good, 0).pass, "no steps is no evidence");

        // One page inside a forked range is a copy-on-write fault; two pages, or outside, is not.
        let mut cow = good.clone();
        cow.push(inval(17, 5, 0x2000, 0x3000));
        let v = judge(&steps, &cow, 0);
        assert!(v.pass && v.steps[0].cow_faults == 1, "{v:?}");
        let mut not_cow = good.clone();
        not_cow.push(inval(17, 5, 0x1000, 0x3000 + 0x1000));
        assert!(!judge(&steps, &not_cow, 0).pass);

        // After the forking step, between steps, inside a later step or after the last: still
        // that step's copy-on-write fault. Before it forked, or two pages: not.
        for ts in [25, 38, 50] {
            let mut late = good.clone();
            late.push(inval(ts, 5, 0x2000, 0x3000));
            let v = judge(&steps, &late, 0);
            assert!(v.pass && v.steps[0].cow_faults == 1, "at {ts}: {v:?}");
        }
        let mut early = good.clone();
        early.push(inval(5, 5, 0x2000, 0x3000));
        assert_eq!(judge(&steps, &early, 0).outside_steps, vec![Span::new(0x2000, 0x3000)]);
        let mut wide = good.clone();
        wide.push(inval(25, 5, 0x1000, 0x3000));
        assert!(!judge(&steps, &wide, 0).pass);
    }
}
