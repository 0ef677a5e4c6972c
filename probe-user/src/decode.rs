//! Kernel records ([`RawEvent`]) → trace events: symbolization, comm and symbol interning,
//! sequence numbers. Pure apart from the symbol table it is given.

use std::collections::HashMap;

use probe_common::{EventKind, RawEvent};
use thiserror::Error;

use crate::{
    kallsyms::Kallsyms,
    trace::{Addr, Comm, Detector, Event, EventBody, Symbol, event::{SubscriberStart, TaskExit, Warn}},
};

/// The callback the `kvm:kvm_unmap_hva_range` tracepoint fires in.
pub const KVM_START_CALLBACK: &str = "kvm_mmu_notifier_invalidate_range_start";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("kernel record {seq} has unknown kind {kind}")]
    UnknownKind { seq: u64, kind: u32 },
}

pub struct Decoder<'k> {
    kallsyms: &'k Kallsyms,
    next_seq: u64,
    symbols: HashMap<u64, Symbol>,
    comms: HashMap<[u8; 16], Comm>,
    kvm_callback: Symbol,
}

impl<'k> Decoder<'k> {
    pub fn new(kallsyms: &'k Kallsyms) -> Self {
        Decoder {
            kallsyms,
            next_seq: 1,
            symbols: HashMap::new(),
            comms: HashMap::new(),
            kvm_callback: Symbol::new(KVM_START_CALLBACK),
        }
    }

    fn symbol(&mut self, addr: u64) -> Symbol {
        let k = self.kallsyms;
        self.symbols.entry(addr).or_insert_with(|| Symbol::from(k.describe(addr))).clone()
    }

    fn comm(&mut self, raw: &[u8; 16]) -> Comm {
        self.comms.entry(*raw).or_insert_with(|| Comm::from_kernel_bytes(raw)).clone()
    }

    pub fn decode(&mut self, r: &RawEvent) -> Result<Event, DecodeError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let kind = EventKind::from_u32(r.kind).ok_or(DecodeError::UnknownKind { seq, kind: r.kind })?;
        let body = match kind {
            EventKind::KvmUnmapRange => EventBody::SubscriberStart(SubscriberStart {
                tid: r.tid,
                mm: Addr(r.payload.mm),
                range: None,
                subscriber: None,
                callback: self.kvm_callback.clone(),
                has_end: None,
                ret: None,
                start: Some(Addr(r.payload.start)),
                end: Some(Addr(r.payload.end)),
            }),
            EventKind::ErrorReport => EventBody::Warn(Warn {
                tid: r.tid,
                caller: self.symbol(r.payload.callback),
                detector: Some(Detector::from_raw(r.payload.aux0 as u32)),
            }),
            EventKind::TaskExit => EventBody::TaskExit(TaskExit { tid: r.tid }),
        };
        Ok(Event { ts: r.ts_ns, seq: Some(seq), cpu: Some(r.cpu), pid: Some(r.pid), comm: Some(self.comm(&r.comm)), stack: None, body })
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
            payload: EventPayload { mm: 0xffff888001234000, start: 0x7f0000000000, end: 0x7f0000010000, ..Default::default() },
        }
    }

    #[test]
    fn kvm_tracepoint_becomes_an_unpairable_subscriber_start() {
        let k = Kallsyms::default();
        let mut d = Decoder::new(&k);
        let e = d.decode(&raw(EventKind::KvmUnmapRange)).unwrap();
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
    fn warn_is_symbolized_and_unknown_kinds_are_errors() {
        let k = Kallsyms::parse("ffffffff81661000 T __mmu_notifier_invalidate_range_start\n").unwrap();
        let mut d = Decoder::new(&k);
        let mut r = raw(EventKind::ErrorReport);
        r.payload.callback = 0xffffffff81661040;
        r.payload.aux0 = 2;
        let e = d.decode(&r).unwrap();
        let EventBody::Warn(w) = &e.body else { panic!("wrong body {e:?}") };
        assert_eq!(w.caller.as_str(), "__mmu_notifier_invalidate_range_start+0x40");
        assert_eq!(w.detector, Some(Detector::Warning));
        let mut bad = raw(EventKind::TaskExit);
        bad.kind = 99;
        assert_eq!(d.decode(&bad), Err(DecodeError::UnknownKind { seq: 2, kind: 99 }));
    }
}
