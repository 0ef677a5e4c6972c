//! Subscriber callbacks are only known at run time: the registration hooks (and, at start,
//! the iterator inventory) name each subscriber's ops, and a kprobe is attached to every
//! distinct callback the first time it is seen. Each outcome is kept so reports can say
//! which callbacks are probed and why any is not.

use std::collections::{BTreeMap, HashSet};

use aya::Ebpf;
use probe_common::OpsSlot;
use serde::Serialize;

use super::hooks::attach_kprobe;
use crate::{
    inventory::MmInventory,
    kallsyms::Kallsyms,
};

/// A subscriber the kernel told us about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovered {
    /// A list subscriber: its `invalidate_range_start` and `invalidate_range_end` (0 = NULL).
    List { start: u64, end: u64 },
    /// An interval subscriber: its `ops->invalidate`.
    Interval { invalidate: u64 },
}

/// What the inventory says is already subscribed, as discoveries, in inventory order.
pub fn seed_targets(mms: &[MmInventory]) -> Vec<Discovered> {
    let lists = mms.iter().flat_map(|m| &m.subscribers).map(|sub| Discovered::List {
        start: sub.callback_addrs[OpsSlot::InvalidateRangeStart as usize],
        end: sub.callback_addrs[OpsSlot::InvalidateRangeEnd as usize],
    });
    let intervals = mms.iter().flat_map(|m| &m.intervals).map(|iv| Discovered::Interval { invalidate: iv.invalidate_addr });
    lists.chain(intervals).collect()
}

/// The programs each kind of callback gets, by hook.
const PROGRAMS: [(&str, &[&str]); 3] = [
    ("subscriber_start", &["subscriber_start_entry", "subscriber_start_ret"]),
    ("subscriber_end", &["subscriber_end"]),
    ("interval_invalidate", &["interval_invalidate_entry", "interval_invalidate_ret"]),
];

fn programs_of(hook: &str) -> &'static [&'static str] {
    PROGRAMS.iter().find(|(h, _)| *h == hook).map_or(&[], |(_, p)| p)
}

/// Loads a callback hook's programs so attaching later is quick, and so a program the
/// kernel refuses is reported at start rather than at the first subscriber.
pub fn preload(ebpf: &mut Ebpf, hook: &str) -> Result<(), String> {
    for name in programs_of(hook) {
        let prog: &mut aya::programs::KProbe = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} missing from the object"))?
            .try_into()
            .map_err(|e| super::error_chain(&e))?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| super::error_chain(&e))?;
        }
    }
    Ok(())
}

/// The outcome of attaching one hook's programs to one callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackProbe {
    pub hook: &'static str,
    pub callback: String,
    /// `None`: attached; otherwise why not.
    pub error: Option<String>,
}

/// Attaches kprobes to callbacks as they are discovered; remembers what it did.
pub struct CallbackAttacher {
    enabled: bool,
    seen: HashSet<(&'static str, u64)>,
    /// Every attempt, keyed by (hook, callback address), for reports.
    pub probes: BTreeMap<(&'static str, u64), CallbackProbe>,
    /// A fresh symbol table for modules loaded after the tracer started.
    late_symbols: Option<Kallsyms>,
}

impl CallbackAttacher {
    /// `enabled` is false when the kernel has no kprobes: nothing is attempted (the attach
    /// report already says why the callback hooks are unavailable).
    pub fn new(enabled: bool) -> Self {
        CallbackAttacher { enabled, seen: HashSet::new(), probes: BTreeMap::new(), late_symbols: None }
    }

    /// Attaches to the callbacks of every list and interval subscriber the inventory lists
    /// (the outcomes are in [`Self::probes`]).
    pub fn seed(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, mms: &[MmInventory]) {
        for found in seed_targets(mms) {
            self.discovered(ebpf, kallsyms, found);
        }
    }

    /// Attaches to the callbacks of a newly seen subscriber; returns the new attempts.
    pub fn discovered(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, found: Discovered) -> Vec<CallbackProbe> {
        if !self.enabled {
            return Vec::new();
        }
        let wanted: Vec<(&'static str, u64)> = match found {
            Discovered::List { start, end } => vec![("subscriber_start", start), ("subscriber_end", end)],
            Discovered::Interval { invalidate } => vec![("interval_invalidate", invalidate)],
        };
        let mut out = Vec::new();
        for (hook, addr) in wanted {
            if addr == 0 || !self.seen.insert((hook, addr)) {
                continue;
            }
            let probe = self.attach(ebpf, kallsyms, hook, addr);
            self.probes.insert((hook, addr), probe.clone());
            out.push(probe);
        }
        out
    }

    fn symbol_name(&mut self, kallsyms: &Kallsyms, addr: u64) -> Option<String> {
        let exact = |k: &Kallsyms| k.resolve(addr).filter(|r| r.offset == 0).map(|r| r.name.to_string());
        if let Some(name) = exact(kallsyms) {
            return Some(name);
        }
        // A module loaded after start: re-read the symbol table (once per miss at most).
        if let Some(name) = self.late_symbols.as_ref().and_then(exact) {
            return Some(name);
        }
        self.late_symbols = Kallsyms::load().ok();
        self.late_symbols.as_ref().and_then(exact)
    }

    fn attach(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, hook: &'static str, addr: u64) -> CallbackProbe {
        let Some(name) = self.symbol_name(kallsyms, addr) else {
            return CallbackProbe {
                hook,
                callback: format!("{addr:#x}"),
                error: Some("the address is not the start of a function in /proc/kallsyms".into()),
            };
        };
        let mut error = None;
        for program in programs_of(hook) {
            if let Err(e) = attach_kprobe(ebpf, program, &name) {
                error = Some(format!("{program}: {e}"));
                break;
            }
        }
        CallbackProbe { hook, callback: kallsyms.describe(addr), error }
    }

    /// How many callbacks are probed, and how many could not be.
    pub fn counts(&self) -> (usize, usize) {
        let failed = self.probes.values().filter(|p| p.error.is_some()).count();
        (self.probes.len() - failed, failed)
    }
}

impl CallbackProbe {
    /// One line for logs and stderr.
    pub fn describe(&self) -> String {
        match &self.error {
            None => format!("probing {} ({})", self.callback, self.hook),
            Some(e) => format!("cannot probe {} ({}): {e}", self.callback, self.hook),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        inventory::{IntervalSubscriber, Subscriber},
        trace::Addr,
    };

    #[test]
    fn the_inventory_seeds_list_and_interval_callbacks() {
        let mut callback_addrs = [0; probe_common::OPS_SLOTS];
        callback_addrs[OpsSlot::InvalidateRangeStart as usize] = 0x10;
        callback_addrs[OpsSlot::InvalidateRangeEnd as usize] = 0x20;
        let list = Subscriber { subscriber: Addr(1), ops: Addr(2), users: 1, callbacks: vec![], kvm: None, callback_addrs };
        let interval = IntervalSubscriber {
            subscriber: Addr(3),
            ops: Addr(4),
            start: Addr(0x1000),
            last: Addr(0x1fff),
            invalidate_seq: 2,
            invalidate: "mmnt_invalidate_ok [mmnotif_test]".into(),
            invalidate_addr: 0x30,
        };
        let mm = MmInventory {
            pid: 1,
            comm: "t".into(),
            mm: Addr(5),
            subscriptions: Addr(6),
            has_itree: true,
            invalidate_seq: Some(2),
            active_invalidate_ranges: Some(0),
            subscribers: vec![list],
            intervals: vec![interval],
            truncated: false,
        };
        assert_eq!(
            seed_targets(&[mm]),
            vec![Discovered::List { start: 0x10, end: 0x20 }, Discovered::Interval { invalidate: 0x30 }]
        );
    }
}
