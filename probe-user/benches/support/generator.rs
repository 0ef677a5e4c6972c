//! A synthetic but realistic full-mode trace shared by the benchmarks: many tasks
//! invalidating ranges of a few mms with KVM-like and GRU-like list subscribers, interval
//! subscribers on some mms, nested ranges, and OOM-reaper failures with compensating ends.
use mmnotif_trace::trace::*;

pub(crate) const TASKS: u32 = 256;

/// Deterministic xorshift, so every run measures the same trace.
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) struct Generator {
    rng: Rng,
    ts: u64,
    comms: Vec<Comm>,
    kvm_start: Symbol,
    kvm_end: Symbol,
    gru_start: Symbol,
    gru_end: Symbol,
    interval: Symbol,
}

impl Generator {
    pub(crate) fn new() -> Generator {
        Generator {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            ts: 1_000_000_000,
            comms: (0..TASKS).map(|i| Comm::new(&format!("worker-{}", i % 16))).collect(),
            kvm_start: Symbol::new("kvm_mmu_notifier_invalidate_range_start"),
            kvm_end: Symbol::new("kvm_mmu_notifier_invalidate_range_end"),
            gru_start: Symbol::new("gru_invalidate_range_start"),
            gru_end: Symbol::new("gru_invalidate_range_end"),
            interval: Symbol::new("amdgpu_hmm_invalidate_gfx"),
        }
    }

    fn event(&mut self, tid: u32, body: EventBody) -> Event {
        self.ts += 1 + self.rng.below(400);
        let mut e = Event::new(self.ts, body);
        e.pid = Some(1000 + tid / 8);
        e.cpu = Some(tid % 2);
        e.comm = self.comms.get(tid as usize).cloned();
        e
    }

    /// One task's complete invalidation (7–20 events), appended to `out`.
    fn invalidation(&mut self, tid: u32, out: &mut Vec<Event>) {
        let mm = Addr(0xffff_8880_0300_0000 + u64::from(tid / 8) * 0x2000);
        let range = Addr(0xffff_c900_0000_0000 + u64::from(tid) * 0x4000);
        let start = Addr(0x7f00_0000_0000 + self.rng.below(1 << 20) * 4096);
        let end = Addr(start.0 + (1 + self.rng.below(512)) * 4096);
        let subs = [(Addr(0xffff_8880_0600_0000), self.kvm_start.clone(), self.kvm_end.clone())];
        let gru = (Addr(0xffff_8880_0700_0000), self.gru_start.clone(), self.gru_end.clone());
        let with_gru = tid.is_multiple_of(4);
        let with_interval = tid % 8 == 1;
        let fail = self.rng.below(1000) == 0;
        let nested = !fail && self.rng.below(20) == 0;
        let call = |range: Addr, blockable: bool| RangeCall {
            tid,
            mm,
            range,
            start,
            end,
            event: if blockable { MmuEvent::Clear } else { MmuEvent::Unmap },
            blockable,
        };
        let blockable = !fail;
        out.push(self.event(tid, EventBody::RangeStart(call(range, blockable))));
        if with_interval {
            let body = EventBody::IntervalInvalidate(IntervalInvalidate {
                tid,
                mm,
                range,
                subscriber: Addr(0xffff_8880_0800_0000),
                callback: self.interval.clone(),
                cur_seq: 7,
                ret: true,
            });
            out.push(self.event(tid, body));
        }
        let mut all: Vec<(Addr, Symbol, Symbol)> = subs.to_vec();
        if with_gru {
            all.push(gru);
        }
        for (i, (sub, cb, _)) in all.iter().enumerate() {
            let failing = fail && i + 1 == all.len();
            let body = EventBody::SubscriberStart(SubscriberStart {
                tid,
                mm,
                range: Some(range),
                subscriber: Some(*sub),
                callback: cb.clone(),
                has_end: Some(!failing),
                ret: Some(if failing { -11 } else { 0 }),
                start: None,
                end: None,
            });
            out.push(self.event(tid, body));
        }
        if fail {
            // v5.12+: compensating ends for everyone with an end op, then -EAGAIN.
            for (sub, _, end_cb) in all.iter().take(all.len() - 1) {
                let body = EventBody::SubscriberEnd(SubscriberEnd {
                    tid,
                    mm,
                    range,
                    subscriber: *sub,
                    callback: end_cb.clone(),
                });
                out.push(self.event(tid, body));
            }
            let body =
                EventBody::RangeStartRet(RangeStartRet { tid, range, ret: -11, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            return;
        }
        let body = EventBody::RangeStartRet(RangeStartRet { tid, range, ret: 0, itree: ItreeSnapshot::default() });
        out.push(self.event(tid, body));
        if nested {
            let inner = Addr(range.0 + 0x100);
            out.push(self.event(tid, EventBody::RangeStart(call(inner, true))));
            let body =
                EventBody::RangeStartRet(RangeStartRet { tid, range: inner, ret: 0, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            let body = EventBody::RangeEnd(RangeEnd { call: call(inner, true), itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
        }
        let body = EventBody::RangeEnd(RangeEnd { call: call(range, true), itree: ItreeSnapshot::default() });
        out.push(self.event(tid, body));
        for (sub, _, end_cb) in &all {
            let body =
                EventBody::SubscriberEnd(SubscriberEnd { tid, mm, range, subscriber: *sub, callback: end_cb.clone() });
            out.push(self.event(tid, body));
        }
    }

    /// About `n` events; tasks interleave at invalidation granularity, as on a busy host.
    pub(crate) fn block(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            let tid = self.rng.below(u64::from(TASKS)) as u32;
            self.invalidation(tid, &mut out);
        }
        out
    }
}

/// Every hook attached, as on a distribution kernel.
pub(crate) fn header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.43+deb13-amd64"), |h, hook| h.with_attach(hook, "replay"))
}
