//! What one frame shows: a copy of the model's state taken under its lock, so drawing never
//! holds up ingestion.

use std::{collections::HashMap, sync::Arc};

use crate::{
    checker::{OpenRange, StatsSummary, Verdict, Violation},
    inventory::{BlockedTask, MmInventory},
    trace::{Addr, AttachState, Comm, Header, Hook, Symbol},
};

/// How one hook is attached, for the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookAttach {
    pub hook: Hook,
    /// `None`: not attached.
    pub method: Option<String>,
}

impl HookAttach {
    /// Every hook, in the trace format's order, as the header records it.
    pub fn from_header(header: &Header) -> Vec<HookAttach> {
        Hook::ALL
            .into_iter()
            .map(|hook| HookAttach {
                hook,
                method: match header.attach_state(hook) {
                    AttachState::Attached(m) => Some(m.to_owned()),
                    AttachState::Unavailable(_) | AttachState::Absent(_) => None,
                },
            })
            .collect()
    }
}

/// Whether the outer start/end pair is observed (the same three hooks `probe` calls "full").
pub fn pairing_available(header: &Header) -> bool {
    Hook::PAIRING.into_iter().all(|h| header.is_attached(h))
}

/// A violation as the dashboard lists it, with the events it names resolved to text.
#[derive(Clone, Debug)]
pub struct ViolationEntry {
    pub violation: Violation,
    /// The events the violation names, oldest first; `None` where no longer retained.
    pub sequence: Vec<(u64, Option<String>)>,
}

/// A process as far as an mm's events tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: Option<u32>,
    pub comm: Option<Comm>,
}

impl Process {
    /// `1234 qemu`, `? qemu`, `1234`, or `?`.
    pub fn label(&self) -> String {
        match (self.pid, &self.comm) {
            (Some(pid), Some(comm)) => format!("{pid} {comm}"),
            (None, Some(comm)) => format!("? {comm}"),
            (Some(pid), None) => pid.to_string(),
            (None, None) => "?".into(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub kernel: String,
    /// `live` or `replay <file>`.
    pub source: String,
    pub hooks: Vec<HookAttach>,
    /// False: degraded, no start/end probes.
    pub pairing: bool,
    /// Rules this attach set cannot check.
    pub not_checked: usize,
    pub events: u64,
    pub events_per_sec: u64,
    /// Lost kernel events since the start (never reset: losses must stay visible).
    pub lost: u64,
    pub open_now: u64,
    pub errors: u64,
    pub warnings: u64,
    pub uptime_ns: u64,
    /// Trace time of the frame, for ages.
    pub now_ts: u64,
    /// Newest first.
    pub violations: Vec<Arc<ViolationEntry>>,
    pub stats: StatsSummary,
    pub open_ranges: Vec<OpenRange>,
    pub rate_history: Vec<u64>,
    pub open_history: Vec<u64>,
    /// mms each subscriber callback was seen on (a few at most).
    pub callback_mms: HashMap<Symbol, Vec<Addr>>,
    /// Set once the input ended (replay) and the checker drew its final conclusions.
    pub verdict: Option<Verdict>,
    /// Trace time counters were last reset at.
    pub reset_ts: Option<u64>,
    /// mm → process, from the statistics.
    pub processes: HashMap<Addr, Process>,
    /// The iterator audit, filled in by the live session (not part of the model).
    pub inventory: Inventory,
    /// What the source says about itself: replay position and speed, a stopped input.
    pub status: Option<String>,
    /// An input error that stopped the feed (shown in red).
    pub error: Option<String>,
}

/// The inventory view's content.
#[derive(Clone, Debug, Default)]
pub enum Inventory {
    #[default]
    NotReadYet,
    /// Why there is none (a recorded trace carries no inventory).
    Unavailable(String),
    Read {
        mms: Arc<Vec<MmInventory>>,
        /// Tasks stuck in a notifier wait.
        stuck: Arc<Vec<BlockedTask>>,
        /// How long ago it was read.
        age_ns: u64,
    },
    Failed(String),
}

impl Snapshot {
    pub fn process_of_mm(&self, mm: Addr) -> Process {
        self.processes.get(&mm).cloned().unwrap_or_default()
    }

    /// The process a violation happened in: its task, else its mm's owner.
    pub fn process_of(&self, v: &Violation) -> Process {
        let from_mm = v.mm.map(|mm| self.process_of_mm(mm)).unwrap_or_default();
        match &v.task {
            Some(t) => Process { pid: t.pid.or(from_mm.pid), comm: t.comm.clone().or(from_mm.comm) },
            None => from_mm,
        }
    }

    /// Who a callback runs for: one process, or how many mms.
    pub fn owner_of(&self, callback: &Symbol) -> String {
        match self.callback_mms.get(callback).map(Vec::as_slice) {
            None | Some([]) => "-".into(),
            Some([mm]) => self.process_of_mm(*mm).label(),
            Some(mms) => format!("{} mms", mms.len()),
        }
    }
}
