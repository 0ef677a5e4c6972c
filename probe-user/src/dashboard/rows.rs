//! The rows each table shows after the `/` filter and the `s` sort, shared by drawing and by
//! key handling (Enter opens the row that is drawn selected).

use std::{cmp::Ordering, sync::Arc};

use super::snapshot::{Process, Snapshot, ViolationEntry};
use crate::{
    checker::stats::{MmSummary, NotifierSummary},
    inventory::MmInventory,
};

/// A sortable column and its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub descending: bool,
}

pub const VIOLATION_COLUMNS: [&str; 5] = ["age", "severity", "rule", "process", "callback"];
pub const NOTIFIER_COLUMNS: [&str; 8] = ["callback", "process", "starts", "ends", "failed", "open", "p50", "p99"];
pub const PROCESS_COLUMNS: [&str; 8] = ["pid", "comm", "mm", "starts", "ends", "failed", "open", "calls"];

/// What `/` matches: a number is a pid; anything else a case-insensitive substring of a
/// comm, callback or rule id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    text: String,
}

impl Filter {
    pub fn new(text: &str) -> Filter {
        Filter { text: text.trim().to_lowercase() }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a row with this process and these texts (callbacks, rule ids) passes.
    pub fn matches(&self, process: &Process, texts: &[&str]) -> bool {
        if self.text.is_empty() {
            return true;
        }
        if let Ok(pid) = self.text.parse::<u32>() {
            return process.pid == Some(pid);
        }
        let hit = |t: &str| t.to_lowercase().contains(&self.text);
        process.comm.as_ref().is_some_and(|c| hit(c.as_str())) || texts.iter().any(|t| hit(t))
    }
}

fn directed(order: Ordering, sort: Sort) -> Ordering {
    if sort.descending { order.reverse() } else { order }
}

pub fn violations<'a>(s: &'a Snapshot, filter: &Filter, sort: Sort) -> Vec<&'a Arc<ViolationEntry>> {
    let mut rows: Vec<&Arc<ViolationEntry>> = s
        .violations
        .iter()
        .filter(|e| {
            let v = &e.violation;
            let callback = v.callback.as_ref().map_or("", |c| c.as_str());
            filter.matches(&s.process_of(v), &[v.rule.as_str(), callback])
        })
        .collect();
    // The list is newest first; a stable sort keeps that order among equals.
    rows.sort_by(|a, b| {
        let (a, b) = (&a.violation, &b.violation);
        let order = match sort.column {
            // Ascending age: newest first.
            0 => b.ts.cmp(&a.ts),
            1 => a.severity.cmp(&b.severity),
            2 => a.rule.as_str().cmp(b.rule.as_str()),
            3 => s.process_of(a).label().cmp(&s.process_of(b).label()),
            _ => a.callback.cmp(&b.callback),
        };
        directed(order, sort)
    });
    rows
}

pub fn notifiers<'a>(s: &'a Snapshot, filter: &Filter, sort: Sort) -> Vec<&'a NotifierSummary> {
    let mut rows: Vec<&NotifierSummary> = s
        .stats
        .notifiers
        .iter()
        .filter(|n| {
            let owners = s.callback_mms.get(&n.callback).map(Vec::as_slice).unwrap_or_default();
            let callback = [n.callback.as_str()];
            if owners.is_empty() {
                return filter.matches(&Process::default(), &callback);
            }
            owners.iter().any(|mm| filter.matches(&s.process_of_mm(*mm), &callback))
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = match sort.column {
            0 => a.callback.cmp(&b.callback),
            1 => s.owner_of(&a.callback).cmp(&s.owner_of(&b.callback)),
            2 => a.starts.cmp(&b.starts),
            3 => a.ends.cmp(&b.ends),
            4 => a.failures.cmp(&b.failures),
            5 => a.open_now.cmp(&b.open_now),
            6 => a.durations.p50_ns.cmp(&b.durations.p50_ns),
            _ => a.durations.p99_ns.cmp(&b.durations.p99_ns),
        };
        directed(order.then_with(|| a.callback.cmp(&b.callback)), sort)
    });
    rows
}

pub fn processes<'a>(s: &'a Snapshot, filter: &Filter, sort: Sort) -> Vec<&'a MmSummary> {
    let mut rows: Vec<&MmSummary> =
        s.stats.mms.iter().filter(|m| filter.matches(&Process { pid: m.pid, comm: m.comm.clone() }, &[])).collect();
    rows.sort_by(|a, b| {
        let order = match sort.column {
            0 => a.pid.cmp(&b.pid),
            1 => a.comm.cmp(&b.comm),
            2 => a.mm.cmp(&b.mm),
            3 => a.starts.cmp(&b.starts),
            4 => a.ends.cmp(&b.ends),
            5 => a.failures.cmp(&b.failures),
            6 => a.open_now.cmp(&b.open_now),
            _ => a.subscriber_calls.cmp(&b.subscriber_calls),
        };
        directed(order.then_with(|| a.mm.cmp(&b.mm)), sort)
    });
    rows
}

pub fn inventory<'a>(mms: &'a [MmInventory], filter: &Filter) -> Vec<&'a MmInventory> {
    mms.iter()
        .filter(|m| {
            let list = m.subscribers.iter().flat_map(|s| s.callbacks.iter().map(|(_, sym)| sym.as_str()));
            let callbacks: Vec<&str> = list.chain(m.intervals.iter().map(|iv| iv.invalidate.as_str())).collect();
            let process = Process { pid: Some(m.pid), comm: Some(m.comm.as_str().into()) };
            filter.matches(&process, &callbacks)
        })
        .collect()
}
