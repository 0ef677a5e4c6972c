//! Subscriber callbacks are only known at run time: the registration hooks (and, at start,
//! the iterator inventory) name each subscriber's ops, and a kprobe is attached to every
//! distinct callback the first time it is seen. Each outcome is kept so reports can say
//! which callbacks are probed and why any is not.
//!
//! The kernel keeps invalidating while the probes go in one by one, so a range can run with
//! only some of a subscriber's callbacks probed. Once all of them are attached, a
//! `probes_live` event carrying the time (CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`)
//! goes into the trace, and the checker judges that subscriber's pairing only in ranges that
//! began after it.

use std::collections::{BTreeMap, HashSet};

use aya::Ebpf;
use probe_common::OpsSlot;
use serde::Serialize;

use super::{hook_table::callback_programs, hooks::attach_kprobe};
use crate::{
    clock::monotonic_ns,
    inventory::MmInventory,
    kallsyms::Kallsyms,
    trace::{Addr, Event, EventBody, Hook, ProbedCallback, ProbesLive, Symbol},
};

/// A subscriber the kernel told us about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Discovered {
    /// A list subscriber: its `invalidate_range_start` and `invalidate_range_end` (0 = NULL).
    List { start: u64, end: u64 },
    /// An interval subscriber: its `ops->invalidate`, and the two-pass `invalidate_start` and
    /// `invalidate_finish` (0 = NULL, or a kernel before 7.2).
    Interval { invalidate: u64, start: u64, finish: u64 },
}

/// What the inventory says is already subscribed, as discoveries, in inventory order.
pub fn seed_targets(mms: &[MmInventory]) -> Vec<Discovered> {
    let lists = mms.iter().flat_map(|m| &m.subscribers).map(|sub| Discovered::List {
        start: sub.callback_addrs[OpsSlot::InvalidateRangeStart as usize],
        end: sub.callback_addrs[OpsSlot::InvalidateRangeEnd as usize],
    });
    let intervals = mms.iter().flat_map(|m| &m.intervals).map(|iv| Discovered::Interval {
        invalidate: iv.invalidate_addr,
        start: iv.invalidate_start_addr,
        finish: iv.invalidate_finish_addr,
    });
    lists.chain(intervals).collect()
}

/// A subscriber's callbacks with the hook that probes each, in attach order; NULL ops are left
/// out (nothing to probe).
fn callbacks_of(found: Discovered) -> Vec<(Hook, u64)> {
    let callbacks = match found {
        // The end first: a range caught between the two attaches then shows an end without its
        // start, rather than a start that looks open (in the open-range views and the
        // subscriber-open gauge) until the range is retired. The checker judges neither: the
        // range began before this subscriber's `probes_live`.
        Discovered::List { start, end } => {
            vec![(Hook::SubscriberEnd, end), (Hook::SubscriberStart, start)]
        }
        // The finish first, for the reason the list end goes first: a finish without its start
        // is not judged in a range that began before `probes_live`; an open start would be.
        Discovered::Interval { invalidate, start, finish } => {
            vec![(Hook::IntervalFinish, finish), (Hook::IntervalStart, start), (Hook::IntervalInvalidate, invalidate)]
        }
    };
    callbacks.into_iter().filter(|(_, addr)| *addr != 0).collect()
}

/// What probing a newly registered subscriber did.
#[derive(Debug, Default)]
pub struct Probed {
    /// Attach attempts on callbacks not seen before.
    pub attempts: Vec<CallbackProbe>,
    /// A `probes_live` event for the trace, when this left every callback of the subscriber
    /// probed for the first time.
    pub live: Option<Event>,
}

/// A `probes_live` event for callbacks whose probes are attached: the clock is read now, after
/// the last attach, on CLOCK_MONOTONIC like the kernel side's `bpf_ktime_get_ns`.
fn probes_live_now(callbacks: Vec<ProbedCallback>) -> Event {
    Event::new(monotonic_ns(), EventBody::ProbesLive(ProbesLive { callbacks }))
}

/// Loads a callback hook's programs so attaching later is quick, and so a program the
/// kernel refuses is reported at start rather than at the first subscriber.
pub fn preload(ebpf: &mut Ebpf, hook: Hook) -> Result<(), String> {
    for name in callback_programs(hook) {
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
    pub hook: Hook,
    pub callback: String,
    /// `None`: attached; otherwise why not.
    pub error: Option<String>,
}

/// Attaches kprobes to callbacks as they are discovered; remembers what it did.
pub struct CallbackAttacher {
    enabled: bool,
    seen: HashSet<(Hook, u64)>,
    /// Every attempt, keyed by (hook, callback address), for reports.
    pub probes: BTreeMap<(Hook, u64), CallbackProbe>,
    /// Subscribers (by their callbacks) already named in a `probes_live` event.
    announced: HashSet<Discovered>,
    /// A fresh symbol table for modules loaded after the tracer started.
    late_symbols: Option<Kallsyms>,
}

impl CallbackAttacher {
    /// `enabled` is false when the kernel has no kprobes: nothing is attempted (the attach
    /// report already says why the callback hooks are unavailable).
    pub fn new(enabled: bool) -> Self {
        CallbackAttacher {
            enabled,
            seen: HashSet::new(),
            probes: BTreeMap::new(),
            announced: HashSet::new(),
            late_symbols: None,
        }
    }

    /// Attaches to the callbacks of every list and interval subscriber the inventory lists
    /// (the outcomes are in [`Self::probes`]). Returns the `probes_live` event that opens the
    /// trace: it names the callbacks of every such subscriber whose probes all attached
    /// (possibly none), and its presence tells the checker that this trace announces when
    /// callbacks become observable. `None` when callbacks are not probed on this kernel.
    pub fn seed(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, mms: &[MmInventory]) -> Option<Event> {
        if !self.enabled {
            return None;
        }
        let mut callbacks = Vec::new();
        for found in seed_targets(mms) {
            self.attach_new(ebpf, kallsyms, found);
            callbacks.extend(self.newly_live(kallsyms, found).into_iter().flatten());
        }
        Some(probes_live_now(callbacks))
    }

    /// Attaches to the callbacks of a newly seen subscriber.
    pub fn discovered(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, found: Discovered) -> Probed {
        if !self.enabled {
            return Probed::default();
        }
        let attempts = self.attach_new(ebpf, kallsyms, found);
        let live = self.newly_live(kallsyms, found).map(probes_live_now);
        Probed { attempts, live }
    }

    /// Attaches to those of `found`'s callbacks not tried before; returns the attempts.
    fn attach_new(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, found: Discovered) -> Vec<CallbackProbe> {
        let mut out = Vec::new();
        for (hook, addr) in callbacks_of(found) {
            if !self.seen.insert((hook, addr)) {
                continue;
            }
            let probe = self.attach(ebpf, kallsyms, hook, addr);
            self.probes.insert((hook, addr), probe.clone());
            out.push(probe);
        }
        out
    }

    /// `found`'s callbacks, for a `probes_live` event, if every one of them is probed now and
    /// the subscriber has not been announced before. A subscriber one of whose probes failed
    /// is never announced, so its pairing is never judged.
    fn newly_live(&mut self, kallsyms: &Kallsyms, found: Discovered) -> Option<Vec<ProbedCallback>> {
        let callbacks = callbacks_of(found);
        let all_probed =
            callbacks.iter().all(|(hook, addr)| self.probes.get(&(*hook, *addr)).is_some_and(|p| p.error.is_none()));
        if callbacks.is_empty() || !all_probed || !self.announced.insert(found) {
            return None;
        }
        let callbacks = callbacks
            .into_iter()
            // The symbol exactly as the decoder names the callback in its events.
            .map(|(hook, addr)| ProbedCallback {
                hook,
                callback: Symbol::from(kallsyms.describe(addr)),
                address: Some(Addr(addr)),
            })
            .collect();
        Some(callbacks)
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

    fn attach(&mut self, ebpf: &mut Ebpf, kallsyms: &Kallsyms, hook: Hook, addr: u64) -> CallbackProbe {
        let Some(name) = self.symbol_name(kallsyms, addr) else {
            return CallbackProbe {
                hook,
                callback: format!("{addr:#x}"),
                error: Some("the address is not the start of a function in /proc/kallsyms".into()),
            };
        };
        let mut error = None;
        for program in callback_programs(hook) {
            if let Err(e) = attach_kprobe(ebpf, program, &name) {
                error = Some(format!("{program}: {e}"));
                break;
            }
        }
        CallbackProbe { hook, callback: kallsyms.describe(addr), error }
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
    use crate::inventory::{IntervalSubscriber, Subscriber};

    fn attempt(attacher: &mut CallbackAttacher, hook: Hook, addr: u64, error: Option<&str>) {
        attacher.seen.insert((hook, addr));
        let probe = CallbackProbe { hook, callback: format!("{addr:#x}"), error: error.map(String::from) };
        attacher.probes.insert((hook, addr), probe);
    }

    #[test]
    fn a_list_subscriber_has_its_end_probed_before_its_start() {
        assert_eq!(
            callbacks_of(Discovered::List { start: 0x10, end: 0x20 }),
            vec![(Hook::SubscriberEnd, 0x20), (Hook::SubscriberStart, 0x10)]
        );
        assert_eq!(callbacks_of(Discovered::List { start: 0x10, end: 0 }), vec![(Hook::SubscriberStart, 0x10)]);
        assert_eq!(
            callbacks_of(Discovered::Interval { invalidate: 0x30, start: 0, finish: 0 }),
            vec![(Hook::IntervalInvalidate, 0x30)]
        );
        assert_eq!(
            callbacks_of(Discovered::Interval { invalidate: 0, start: 0x40, finish: 0x50 }),
            vec![(Hook::IntervalFinish, 0x50), (Hook::IntervalStart, 0x40)]
        );
    }

    #[test]
    fn a_subscriber_is_announced_once_and_only_when_every_probe_attached() {
        let kallsyms = Kallsyms::parse("0000000000000010 T kvm_start\n0000000000000020 T kvm_end\n").unwrap();
        let kvm = Discovered::List { start: 0x10, end: 0x20 };
        let mut attacher = CallbackAttacher::new(true);
        attempt(&mut attacher, Hook::SubscriberEnd, 0x20, None);
        assert_eq!(attacher.newly_live(&kallsyms, kvm), None, "the start is not probed yet");
        attempt(&mut attacher, Hook::SubscriberStart, 0x10, None);
        let live = attacher.newly_live(&kallsyms, kvm).expect("both probed");
        let named: Vec<(Hook, &str, Option<Addr>)> =
            live.iter().map(|c| (c.hook, c.callback.as_str(), c.address)).collect();
        assert_eq!(
            named,
            vec![
                (Hook::SubscriberEnd, "kvm_end", Some(Addr(0x20))),
                (Hook::SubscriberStart, "kvm_start", Some(Addr(0x10)))
            ]
        );
        assert_eq!(attacher.newly_live(&kallsyms, kvm), None, "a second VM with the same ops is not announced again");

        let broken = Discovered::List { start: 0x40, end: 0x50 };
        attempt(&mut attacher, Hook::SubscriberEnd, 0x50, Some("no such function"));
        attempt(&mut attacher, Hook::SubscriberStart, 0x40, None);
        assert_eq!(attacher.newly_live(&kallsyms, broken), None, "never judged: its end is not observed");
        assert_eq!(attacher.newly_live(&kallsyms, Discovered::List { start: 0, end: 0 }), None, "nothing to pair");
    }

    #[test]
    fn the_inventory_seeds_list_and_interval_callbacks() {
        let mut callback_addrs = [0; probe_common::OPS_SLOTS];
        callback_addrs[OpsSlot::InvalidateRangeStart as usize] = 0x10;
        callback_addrs[OpsSlot::InvalidateRangeEnd as usize] = 0x20;
        let list =
            Subscriber { subscriber: Addr(1), ops: Addr(2), users: 1, callbacks: vec![], kvm: None, callback_addrs };
        let interval = IntervalSubscriber {
            subscriber: Addr(3),
            ops: Addr(4),
            start: Addr(0x1000),
            last: Addr(0x1fff),
            invalidate_seq: 2,
            invalidate: "mmnt_invalidate_ok [mmnotif_test]".into(),
            invalidate_addr: 0x30,
            invalidate_start: None,
            invalidate_finish: None,
            invalidate_start_addr: 0,
            invalidate_finish_addr: 0,
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
            vec![
                Discovered::List { start: 0x10, end: 0x20 },
                Discovered::Interval { invalidate: 0x30, start: 0, finish: 0 }
            ]
        );
    }
}
