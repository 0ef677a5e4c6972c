//! What the checker remembers between events: only ranges that are open or just closed, the
//! tasks that own them, and mms whose interval tree looks stuck.
use std::hash::{BuildHasherDefault, Hasher};

use crate::trace::{Addr, Comm, MmuEvent, Symbol};

use super::stats::NotifierRow;

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
    pub stack: Option<Vec<Symbol>>,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedFirst {
    pub range: Addr,
    pub start_seq: Option<u64>,
    pub end_seq: u64,
}

impl OuterRange {
    pub fn notifier_mut(&mut self, subscriber: Addr) -> Option<&mut NotifierRecord> {
        self.notifiers.iter_mut().find(|n| n.subscriber == subscriber)
    }
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
