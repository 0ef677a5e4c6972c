//! Kernel records ([`RawEvent`]) → trace events: symbolization, comm and symbol interning,
//! sequence numbers. Pure apart from the symbol table it is given.

use std::collections::HashMap;

use probe_common::{EventKind, RawEvent, flags};
use thiserror::Error;

use crate::{
    bounded_cache::BoundedCache,
    kallsyms::Kallsyms,
    loader::Discovered,
    trace::{
        Addr, Comm, Detector, Event, EventBody, MmuEvent, Stack, Symbol,
        event::{
            IntervalFinish, IntervalInvalidate, IntervalStart, ItreeEnd, ItreeSnapshot, RangeCall, RangeEnd,
            RangeStartRet, SubscriberEnd, SubscriberStart, TaskExit, Warn,
        },
    },
};

/// Kernel stacks by id (the `STACKS` map while tracing); kept behind a trait so decoding
/// stays testable without a kernel.
pub trait StackSource {
    /// Return addresses, innermost first; `None` when the id is unknown.
    fn frames(&mut self, id: u32) -> Option<Vec<u64>>;
}

/// What one kernel record turns into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Event(Event),
    /// A subscriber was registered: attach to its callbacks (not itself a trace event).
    Registered {
        found: Discovered,
        mm: Addr,
        subscriber: Addr,
        pid: u32,
        comm: Comm,
    },
}

/// The callback the `kvm:kvm_unmap_hva_range` tracepoint fires in.
pub(crate) const KVM_START_CALLBACK: &str = "kvm_mmu_notifier_invalidate_range_start";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("kernel record {seq} has unknown kind {kind}")]
    UnknownKind { seq: u64, kind: u32 },
}

/// Distinct command names remembered: every thread that exits is an event, so a host that
/// runs for weeks shows the decoder more names than any view needs.
const COMM_CACHE_ENTRIES: usize = 4096;
/// Distinct code addresses remembered (callbacks and stack frames).
const SYMBOL_CACHE_ENTRIES: usize = 16384;

pub struct Decoder<'k> {
    kallsyms: &'k Kallsyms,
    next_seq: u64,
    symbols: BoundedCache<u64, Symbol>,
    comms: BoundedCache<[u8; 16], Comm>,
    kvm_callback: Symbol,
    stack_source: Option<Box<dyn StackSource + Send + 'k>>,
    /// By the kernel's stack id: bounded by the stack map's size, and an id keeps its stack
    /// (the map is not created to reuse ids).
    stacks: HashMap<u32, Stack>,
}

impl<'k> Decoder<'k> {
    pub fn new(kallsyms: &'k Kallsyms) -> Self {
        Decoder {
            kallsyms,
            next_seq: 1,
            symbols: BoundedCache::new(SYMBOL_CACHE_ENTRIES),
            comms: BoundedCache::new(COMM_CACHE_ENTRIES),
            kvm_callback: Symbol::new(KVM_START_CALLBACK),
            stack_source: None,
            stacks: HashMap::new(),
        }
    }

    /// Resolves stack ids through `source` (the kernel's stack map).
    pub fn with_stacks(mut self, source: Box<dyn StackSource + Send + 'k>) -> Self {
        self.stack_source = Some(source);
        self
    }

    /// The symbolized stack for a record's `aux0` (id + 1; 0 = none), cached by id: the
    /// kernel gives equal stacks equal ids.
    fn stack(&mut self, aux: u64) -> Option<Stack> {
        let id = u32::try_from(aux.checked_sub(1)?).ok()?;
        if let Some(frames) = self.stacks.get(&id) {
            return Some(frames.clone());
        }
        let frames = self.stack_source.as_mut()?.frames(id)?;
        // The innermost frames are the tracer's own: the BPF program and its trampoline, which
        // have no symbol or only the pseudo-modules' (`[bpf]`, ftrace's trampolines): the stack
        // starts at the first frame of the kernel proper.
        let k = self.kallsyms;
        let tracer_frame = |a: u64| k.resolve(a).is_none_or(|r| matches!(r.module, Some("bpf" | "__builtin__ftrace")));
        let symbols: Stack = frames.into_iter().skip_while(|&a| tracer_frame(a)).map(|a| self.symbol(a)).collect();
        self.stacks.insert(id, symbols.clone());
        Some(symbols)
    }

    fn symbol(&mut self, addr: u64) -> Symbol {
        let k = self.kallsyms;
        self.symbols.get_or_insert_with(addr, || Symbol::from(k.describe(addr)))
    }

    fn comm(&mut self, raw: &[u8; 16]) -> Comm {
        self.comms.get_or_insert_with(*raw, || Comm::from_kernel_bytes(raw))
    }

    pub fn decode(&mut self, r: &RawEvent) -> Result<Decoded, DecodeError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let kind = EventKind::from_repr(r.kind).ok_or(DecodeError::UnknownKind { seq, kind: r.kind })?;
        let p = &r.payload;
        let mut stack = None;
        let range_call = |tid| RangeCall {
            tid,
            mm: Addr(p.mm),
            range: Addr(p.range),
            start: Addr(p.start),
            end: Addr(p.end),
            event: MmuEvent::from_raw(p.event),
            blockable: p.flags & flags::RANGE_BLOCKABLE != 0,
        };
        let itree = || {
            if p.flags & flags::ITREE_READ != 0 {
                ItreeSnapshot { active: Some(p.aux0), seq: Some(p.aux1) }
            } else {
                ItreeSnapshot::default()
            }
        };
        let body = match kind {
            EventKind::KvmUnmapRange => EventBody::SubscriberStart(SubscriberStart {
                tid: r.tid,
                mm: Addr(p.mm),
                range: None,
                subscriber: None,
                callback: self.kvm_callback.clone(),
                has_end: None,
                ret: None,
                start: Some(Addr(p.start)),
                end: Some(Addr(p.end)),
            }),
            EventKind::ErrorReport => EventBody::Warn(Warn {
                tid: r.tid,
                caller: self.symbol(p.callback),
                detector: Some(Detector::from_raw(p.aux0 as u32)),
            }),
            EventKind::TaskExit => EventBody::TaskExit(TaskExit { tid: r.tid }),
            EventKind::RangeStart => {
                stack = self.stack(p.aux0);
                EventBody::RangeStart(range_call(r.tid))
            }
            EventKind::RangeStartRet => {
                EventBody::RangeStartRet(RangeStartRet { tid: r.tid, range: Addr(p.range), ret: p.ret, itree: itree() })
            }
            EventKind::RangeEnd => {
                stack = self.stack(p.aux0);
                // The entry hook cannot see the state after `__end`; `itree_end` carries it.
                EventBody::RangeEnd(RangeEnd { call: range_call(r.tid), itree: ItreeSnapshot::default() })
            }
            EventKind::SubscriberStart => EventBody::SubscriberStart(SubscriberStart {
                tid: r.tid,
                mm: Addr(p.mm),
                range: Some(Addr(p.range)),
                subscriber: Some(Addr(p.subscriber)),
                callback: self.symbol(p.callback),
                has_end: Some(p.flags & flags::HAS_END != 0),
                ret: Some(p.ret),
                start: None,
                end: None,
            }),
            EventKind::SubscriberEnd => EventBody::SubscriberEnd(SubscriberEnd {
                tid: r.tid,
                mm: Addr(p.mm),
                range: Addr(p.range),
                subscriber: Addr(p.subscriber),
                callback: self.symbol(p.callback),
            }),
            EventKind::IntervalInvalidate => EventBody::IntervalInvalidate(IntervalInvalidate {
                tid: r.tid,
                mm: Addr(p.mm),
                range: Addr(p.range),
                subscriber: Addr(p.subscriber),
                callback: self.symbol(p.callback),
                cur_seq: p.aux0,
                ret: p.ret != 0,
            }),
            EventKind::IntervalStart => EventBody::IntervalStart(IntervalStart {
                tid: r.tid,
                mm: Addr(p.mm),
                range: Addr(p.range),
                subscriber: Addr(p.subscriber),
                callback: self.symbol(p.callback),
                cur_seq: p.aux0,
                finish: Addr(p.aux1),
                ret: p.ret != 0,
            }),
            EventKind::IntervalFinish => EventBody::IntervalFinish(IntervalFinish {
                tid: r.tid,
                mm: Addr(p.mm),
                subscriber: Addr(p.subscriber),
                callback: self.symbol(p.callback),
                finish: Addr(p.aux1),
            }),
            EventKind::ItreeEnd => {
                EventBody::ItreeEnd(ItreeEnd { tid: r.tid, mm: Addr(p.mm), active: p.aux0, seq: p.aux1 })
            }
            EventKind::Registered => {
                let found = if p.flags & flags::INTERVAL != 0 {
                    Discovered::Interval { invalidate: p.callback, start: p.aux0, finish: p.range }
                } else {
                    Discovered::List { start: p.callback, end: p.aux0 }
                };
                let comm = self.comm(&r.comm);
                return Ok(Decoded::Registered {
                    found,
                    mm: Addr(p.mm),
                    subscriber: Addr(p.subscriber),
                    pid: r.pid,
                    comm,
                });
            }
        };
        Ok(Decoded::Event(Event {
            ts: r.ts_ns,
            seq: Some(seq),
            cpu: Some(r.cpu),
            pid: Some(r.pid),
            comm: Some(self.comm(&r.comm)),
            stack,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use probe_common::EventPayload;

    use super::*;
    use crate::trace::event_to_line;

    fn raw(kind: EventKind) -> RawEvent {
        RawEvent {
            ts_ns: 1000,
            kind: kind as u32,
            cpu: 1,
            pid: 10,
            tid: 11,
            comm: *b"workload\0\0\0\0\0\0\0\0",
            payload: EventPayload {
                mm: 0xffff888001234000,
                start: 0x7f0000000000,
                end: 0x7f0000010000,
                ..Default::default()
            },
        }
    }

    #[test]
    fn kvm_tracepoint_becomes_an_unpairable_subscriber_start() {
        let k = Kallsyms::default();
        let mut d = Decoder::new(&k);
        let Decoded::Event(e) = d.decode(&raw(EventKind::KvmUnmapRange)).unwrap() else { panic!("not an event") };
        assert_eq!(e.seq, Some(1));
        let EventBody::SubscriberStart(s) = &e.body else { panic!("wrong body {e:?}") };
        assert_eq!(s.pairable(), None);
        assert_eq!(s.start, Some(Addr(0x7f0000000000)));
        let line = event_to_line(&e);
        for needle in [
            "\"type\":\"subscriber_start\"",
            "\"callback\":\"kvm_mmu_notifier_invalidate_range_start\"",
            "\"start\":\"0x7f0000000000\"",
            "\"mm\":\"0xffff888001234000\"",
            "\"comm\":\"workload\"",
        ] {
            assert!(line.contains(needle), "{needle} missing from {line}");
        }
        assert!(!line.contains("\"ret\""), "tracepoint mode has no return value: {line}");
    }

    #[test]
    fn command_names_of_a_long_life_stay_bounded_and_right() {
        let k = Kallsyms::default();
        let mut d = Decoder::new(&k);
        // Three times more distinct names than remembered, as a busy host's exits give.
        for i in 0..3 * COMM_CACHE_ENTRIES {
            let mut r = raw(EventKind::TaskExit);
            let name = format!("worker-{i}");
            r.comm = [0; 16];
            r.comm[..name.len()].copy_from_slice(name.as_bytes());
            let Decoded::Event(e) = d.decode(&r).unwrap() else { panic!("not an event") };
            assert_eq!(e.comm.as_ref().map(|c| c.as_str()), Some(name.as_str()));
            assert!(d.comms.len() <= COMM_CACHE_ENTRIES, "{} names held", d.comms.len());
        }
    }

    struct OneStack(Vec<u64>);

    impl StackSource for OneStack {
        fn frames(&mut self, _id: u32) -> Option<Vec<u64>> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn stacks_start_below_the_tracers_own_frames() {
        let mut k = Kallsyms::parse(
            "ffffffff81661000 T __mmu_notifier_invalidate_range_start\nffffffff81700000 T oom_reaper\n\
             ffffffff82000000 T _etext\nffffffffa0000000 t cleanup_module\t[mmnotif_test]\n\
             ffffffffa0010000 t ftrace_trampoline\t[__builtin__ftrace]\n",
        )
        .unwrap();
        k.set_modules("mmnotif_test 8192 0 - Live 0xffffffffa0000000\n");
        // The BPF program (past the module's end), ftrace's trampoline, then the kernel.
        let frames = vec![0xffffffffa000835a, 0xffffffffa001c02d, 0xffffffff81661005, 0xffffffff81700158];
        let mut d = Decoder::new(&k).with_stacks(Box::new(OneStack(frames)));
        let mut r = raw(EventKind::RangeStart);
        r.payload.aux0 = 1;
        let Decoded::Event(e) = d.decode(&r).unwrap() else { panic!("not an event") };
        let stack: Vec<&str> = e.stack.iter().flatten().map(|s| s.as_str()).collect();
        assert_eq!(stack, ["__mmu_notifier_invalidate_range_start+0x5", "oom_reaper+0x158"]);
    }

    #[test]
    fn two_pass_records_keep_the_finish_pointer_and_registrations_name_all_three_callbacks() {
        let k = Kallsyms::parse("ffffffffc0001000 t xe_start [xe]\nffffffffc0002000 t xe_finish [xe]\n").unwrap();
        let mut d = Decoder::new(&k);
        let mut r = raw(EventKind::IntervalStart);
        r.payload.callback = 0xffffffffc0001000;
        r.payload.ret = 1;
        r.payload.aux0 = 9;
        r.payload.aux1 = 0xffff888000c0ffe0;
        let Decoded::Event(e) = d.decode(&r).unwrap() else { panic!("not an event") };
        let EventBody::IntervalStart(s) = &e.body else { panic!("wrong body {e:?}") };
        assert!(s.owes_finish() && s.cur_seq == 9 && s.finish == Addr(0xffff888000c0ffe0));
        let line = event_to_line(&e);
        assert!(line.contains("\"finish\":\"0xffff888000c0ffe0\"") && line.contains("\"ret\":true"), "{line}");

        let mut r = raw(EventKind::IntervalFinish);
        r.payload.callback = 0xffffffffc0002000;
        r.payload.subscriber = 0xffff888000c0ff00;
        r.payload.aux1 = 0xffff888000c0ffe0;
        let Decoded::Event(e) = d.decode(&r).unwrap() else { panic!("not an event") };
        let EventBody::IntervalFinish(f) = &e.body else { panic!("wrong body {e:?}") };
        assert_eq!((f.finish, f.subscriber), (Addr(0xffff888000c0ffe0), Addr(0xffff888000c0ff00)));
        assert_eq!(f.callback.as_str(), "xe_finish [xe]");

        let mut r = raw(EventKind::Registered);
        r.payload.flags = flags::INTERVAL;
        r.payload.aux0 = 0xffffffffc0001000;
        r.payload.range = 0xffffffffc0002000;
        let Decoded::Registered { found, .. } = d.decode(&r).unwrap() else { panic!("not a registration") };
        assert_eq!(
            found,
            Discovered::Interval { invalidate: 0, start: 0xffffffffc0001000, finish: 0xffffffffc0002000 }
        );
    }

    #[test]
    fn warn_is_symbolized_and_unknown_kinds_are_errors() {
        let k = Kallsyms::parse("ffffffff81661000 T __mmu_notifier_invalidate_range_start\n").unwrap();
        let mut d = Decoder::new(&k);
        let mut r = raw(EventKind::ErrorReport);
        r.payload.callback = 0xffffffff81661040;
        r.payload.aux0 = 2;
        let Decoded::Event(e) = d.decode(&r).unwrap() else { panic!("not an event") };
        let EventBody::Warn(w) = &e.body else { panic!("wrong body {e:?}") };
        assert_eq!(w.caller.as_str(), "__mmu_notifier_invalidate_range_start+0x40");
        assert_eq!(w.detector, Some(Detector::Warning));
        let mut bad = raw(EventKind::TaskExit);
        bad.kind = 99;
        assert_eq!(d.decode(&bad), Err(DecodeError::UnknownKind { seq: 2, kind: 99 }));
    }
}
