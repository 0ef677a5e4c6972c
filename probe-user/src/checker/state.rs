//! What the checker remembers between events: only ranges that are open or just closed, the
//! tasks that own them, and mms whose interval tree looks stuck.
use std::hash::{BuildHasherDefault, Hasher};

use crate::trace::{Addr, Comm, Event, MmuEvent, Stack, Symbol};

use super::{itree_leak::ItreeWitness, stats::NotifierRow};

/// Multiply-rotate hasher for small integer keys. Keys come from the traced kernel, and a
/// trace is checked by the person who recorded it, so flooding resistance buys nothing here
/// while SipHash would cost a sizeable share of the per-event budget.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub type FastHash = BuildHasherDefault<FastHasher>;
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;

/// Pairs an outer `__start` with its `__end`: the range struct lives in the caller's frame,
/// so its address is unique per task for as long as the range is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeKey {
    pub tid: u32,
    pub range: Addr,
}

/// Where an outer range is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OuterPhase {
    /// `__start` entered, return not yet seen.
    Starting,
    /// `__start` returned 0 (or its return is not traced).
    Open,
    /// `__start` returned non-zero; the caller must not call `__end`.
    Failed { ret: i64, ret_seq: u64 },
    /// `__end` was called; subscriber ends it delivers may still follow.
    Ended { end_seq: u64 },
    /// Only subscriber callbacks were seen for this key (its `__start` was not traced).
    Unseen,
}

impl OuterPhase {
    pub fn is_live(self) -> bool {
        matches!(self, OuterPhase::Starting | OuterPhase::Open)
    }
}

/// The `struct mmu_notifier_range` contents as `__start` (or `__end`) saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeArgs {
    pub start: Addr,
    pub end: Addr,
    pub event: MmuEvent,
    pub blockable: bool,
}

/// A subscriber's view of one outer range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifierPhase {
    /// Start succeeded; its end is owed.
    Open,
    /// Start succeeded and the subscriber has no end op.
    StartOnly,
    /// Start failed.
    Failed,
    /// End delivered (at least once).
    Ended,
}

#[derive(Clone, Debug)]
pub struct NotifierRecord {
    pub subscriber: Addr,
    pub callback: Symbol,
    pub row: NotifierRow,
    pub phase: NotifierPhase,
    pub start_seq: Option<u64>,
    pub start_ts: u64,
    pub end_seq: Option<u64>,
}

/// One outer range (one `__start` call) and the subscribers it reached.
#[derive(Clone, Debug)]
pub struct OuterRange {
    pub phase: OuterPhase,
    pub mm: Addr,
    pub args: Option<RangeArgs>,
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
    pub start_seq: Option<u64>,
    pub start_ts: u64,
    pub stack: Option<Stack>,
    pub notifiers: Vec<NotifierRecord>,
    /// A subscriber-level failure was already reported for these rules, so the outer
    /// failure they cause is not reported a second time.
    pub reported_blockable_failure: bool,
    pub reported_bad_errno: bool,
    /// Some compensating end was delivered inside a failed `__start`.
    pub saw_compensating_end: bool,
    /// The caller called `__end` although `__start` failed.
    pub ended_after_failure: bool,
    /// Trace time at which the range stopped being live (for retirement).
    pub closed_ts: u64,
    /// A range started before this one (and so nested outside it) was ended while this one
    /// was open. Reported when this one ends: if it never ends, its own unpaired start
    /// explains the order and nothing else is reported.
    pub outer_ended_first: Option<EndedFirst>,
    /// What this range did to the interval tree and the list, for the leak's explanation.
    pub itree: ItreeWitness,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedFirst {
    pub range: Addr,
    pub start_seq: Option<u64>,
    pub end_seq: u64,
}

impl OuterRange {
    /// A range first seen at `ev` (its `__start`, or a later event when that was not traced):
    /// nothing reported, nothing delivered yet, closed at `ev`'s time unless it is live.
    pub fn seen_at(
        phase: OuterPhase,
        mm: Addr,
        args: Option<RangeArgs>,
        ev: &Event,
        notifiers: Vec<NotifierRecord>,
    ) -> OuterRange {
        OuterRange {
            phase,
            mm,
            args,
            pid: ev.pid,
            comm: ev.comm.clone(),
            start_seq: None,
            start_ts: ev.ts,
            stack: None,
            notifiers,
            reported_blockable_failure: false,
            reported_bad_errno: false,
            saw_compensating_end: false,
            ended_after_failure: false,
            closed_ts: if phase.is_live() { 0 } else { ev.ts },
            outer_ended_first: None,
            itree: ItreeWitness::default(),
        }
    }

    /// When its `__start` was traced; `None` when only its end or subscriber calls were seen.
    pub fn traced_start_ts(&self) -> Option<u64> {
        self.start_seq.map(|_| self.start_ts)
    }

    pub fn notifier_mut(&mut self, subscriber: Addr) -> Option<&mut NotifierRecord> {
        self.notifiers.iter_mut().find(|n| n.subscriber == subscriber)
    }
}

/// A finish the kernel owes: a two-pass interval start returned true and left `finish` in
/// `*finish`, so mm/mmu_notifier.c queued it (:477-480 in 7.2) for the finish pass that runs
/// before `__start` returns (:495).
#[derive(Clone, Debug)]
pub struct PendingFinish {
    pub range: Addr,
    pub mm: Addr,
    pub subscriber: Addr,
    pub callback: Symbol,
    pub start_seq: u64,
}

/// A task's ranges: live ones in start order (for LIFO checks) and closed ones that may still
/// receive subscriber ends.
#[derive(Clone, Debug, Default)]
pub struct TaskState {
    pub live: Vec<Addr>,
    pub closing: Vec<Addr>,
}

impl TaskState {
    pub fn is_idle(&self) -> bool {
        self.live.is_empty() && self.closing.is_empty()
    }
}

/// Per-mm state kept only while the mm has live ranges or a suspected interval-tree leak.
#[derive(Clone, Debug, Default)]
pub struct MmLive {
    pub live_ranges: u32,
    pub leak: LeakState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LeakState {
    #[default]
    Clean,
    /// Seen invalidating with no live range at `ts`; confirmed once trace time moves past
    /// `ts` (records of other tasks with the same ts may still open a range).
    Suspected { ts: u64, seq: Option<u64>, tid: Option<u32>, active: Option<u64>, itree_seq: Option<u64> },
    /// Reported; not reported again until a clean observation.
    Reported,
}

impl MmLive {
    pub fn is_idle(&self) -> bool {
        self.live_ranges == 0 && self.leak == LeakState::Clean
    }
}

/// From when each subscriber callback is fully observed, learned from `probes_live` events.
///
/// A subscriber's callbacks are probed one after another while the kernel keeps invalidating,
/// so a range that began before all of them were live can show a start without its end (or
/// an end without its start) that the kernel did call. Its pairing is therefore judged only
/// for ranges whose `__start` was traced at or after the `probes_live` naming the callback.
/// Decided by the events' own timestamps: records that happened before an attach may be
/// delivered after its `probes_live`.
#[derive(Clone, Debug, Default)]
pub struct ProbeClock {
    /// Whether the trace has any `probes_live`. Traces without one (older recordings,
    /// hand-written ones) had every callback probed throughout: all pairing is judged.
    announced: bool,
    /// Callback symbol → the latest `probes_live` naming it. The latest, not the first: a
    /// start callback shared by two ops tables is fully observed for the later one only once
    /// that one's end callback is live too, and an event cannot say which table it ran for.
    live_since: FastMap<Symbol, u64>,
}

impl ProbeClock {
    pub fn announce<'a>(&mut self, callbacks: impl IntoIterator<Item = &'a Symbol>, ts: u64) {
        self.announced = true;
        for callback in callbacks {
            let since = self.live_since.entry(callback.clone()).or_insert(ts);
            *since = (*since).max(ts);
        }
    }

    /// Callbacks with a recorded probe time.
    pub fn len(&self) -> usize {
        self.live_since.len()
    }

    /// Whether the pairing of a subscriber that ran `callback` can be judged in a range whose
    /// `__start` was traced at `range_start_ts` (`None`: its `__start` is not in the trace, so
    /// it predates the tracer and every callback probe).
    pub fn judges(&self, callback: &Symbol, range_start_ts: Option<u64>) -> bool {
        if !self.announced {
            return true;
        }
        match (self.live_since.get(callback), range_start_ts) {
            (Some(&since), Some(start)) => start >= since,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_probes_live_everything_is_judged() {
        let clock = ProbeClock::default();
        assert!(clock.judges(&Symbol::new("kvm_start"), Some(5)));
        assert!(clock.judges(&Symbol::new("kvm_start"), None));
    }

    #[test]
    fn a_callback_is_judged_from_its_latest_probes_live_on_and_an_unnamed_one_never() {
        let (start, other) = (Symbol::new("kvm_start"), Symbol::new("gru_start"));
        let mut clock = ProbeClock::default();
        clock.announce([], 10);
        assert!(!clock.judges(&start, Some(50)), "announced traces judge only named callbacks");
        clock.announce([&start], 100);
        assert!(!clock.judges(&start, Some(99)));
        assert!(clock.judges(&start, Some(100)));
        assert!(!clock.judges(&start, None), "a range whose __start predates the trace");
        // Named again later (another ops table shares it): the later time wins, an earlier
        // one does not move it back.
        clock.announce([&start], 200);
        clock.announce([&start], 150);
        assert!(!clock.judges(&start, Some(199)));
        assert!(clock.judges(&start, Some(200)));
        assert!(!clock.judges(&other, Some(1_000)));
    }
}
