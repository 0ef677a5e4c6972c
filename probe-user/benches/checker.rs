//! Checker throughput on a synthetic but realistic trace: many tasks invalidating ranges of a
//! few mms with KVM-like and GRU-like list subscribers, interval subscribers on some mms,
//! nested ranges, and OOM-reaper failures with compensating ends.
//!
//! Measures (1) the checker alone on already-decoded events and (2) JSON-lines decoding plus
//! checking, and prints events/s and peak RSS. Run with
//! `cargo bench -p probe-user --bench checker` (optionally `-- <million events>`).
use std::{
    hint::black_box,
    io::{BufReader, Read},
    sync::Arc,
    time::Instant,
};

use mmnotif_trace::{
    checker::Checker,
    metrics::{Recorder, Shared, registry, render},
    session::SessionTotals,
    trace::*,
};

const TASKS: u32 = 256;

/// Deterministic xorshift, so every run measures the same trace.
struct Rng(u64);

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

struct Generator {
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
    fn new() -> Generator {
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
                let body = EventBody::SubscriberEnd(SubscriberEnd { tid, mm, range, subscriber: *sub, callback: end_cb.clone() });
                out.push(self.event(tid, body));
            }
            let body = EventBody::RangeStartRet(RangeStartRet { tid, range, ret: -11, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            return;
        }
        let body = EventBody::RangeStartRet(RangeStartRet { tid, range, ret: 0, itree: ItreeSnapshot::default() });
        out.push(self.event(tid, body));
        if nested {
            let inner = Addr(range.0 + 0x100);
            out.push(self.event(tid, EventBody::RangeStart(call(inner, true))));
            let body = EventBody::RangeStartRet(RangeStartRet { tid, range: inner, ret: 0, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            let body = EventBody::RangeEnd(RangeEnd { call: call(inner, true), itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
        }
        let body = EventBody::RangeEnd(RangeEnd { call: call(range, true), itree: ItreeSnapshot::default() });
        out.push(self.event(tid, body));
        for (sub, _, end_cb) in &all {
            let body = EventBody::SubscriberEnd(SubscriberEnd { tid, mm, range, subscriber: *sub, callback: end_cb.clone() });
            out.push(self.event(tid, body));
        }
    }

    /// About `n` events; tasks interleave at invalidation granularity, as on a busy host.
    fn block(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            let tid = self.rng.below(u64::from(TASKS)) as u32;
            self.invalidation(tid, &mut out);
        }
        out
    }
}

fn header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.43+deb13-amd64"), |h, hook| h.with_attach(hook, "replay"))
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Replays one text block `passes` times after a single header line.
struct RepeatedText {
    header: Vec<u8>,
    body: Arc<[u8]>,
    passes_left: usize,
    pos: usize,
    in_header: bool,
}

impl Read for RepeatedText {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.in_header {
            let rest = &self.header[self.pos..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            if self.pos == self.header.len() {
                self.in_header = false;
                self.pos = 0;
            }
            return Ok(n);
        }
        if self.passes_left == 0 {
            return Ok(0);
        }
        let rest = &self.body[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        if self.pos == self.body.len() {
            self.pos = 0;
            self.passes_left -= 1;
        }
        Ok(n)
    }
}

fn main() {
    let millions: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let target = millions * 1_000_000;
    println!("checker benchmark: {millions}M events, {TASKS} tasks, one thread");
    println!("size_of::<Event>() = {} bytes", std::mem::size_of::<Event>());

    // (1) Checker only. A 1M-event block is generated once and fed repeatedly (every pass
    // leaves no range open, so passes chain like one long trace); 10M decoded events would
    // need ~1.5 GB and measure the allocator, not the checker.
    let mut generator = Generator::new();
    let block = generator.block(1_000_000);
    let passes = target.div_ceil(block.len());
    let rss_before = proc_status_kib("VmRSS:");
    let mut checker = Checker::new(&header());
    let mut violations = 0usize;
    let mut rss_mid = 0;
    let t0 = Instant::now();
    for pass in 0..passes {
        for e in &block {
            violations += checker.push(black_box(e)).len();
        }
        if pass == passes / 2 {
            rss_mid = proc_status_kib("VmRSS:");
        }
    }
    let report = checker.finish();
    let secs = t0.elapsed().as_secs_f64();
    let n = (passes * block.len()) as f64;
    println!(
        "checker only:   {:>12.0} events/s  ({} events in {:.2} s, {} violations, {} open at end)",
        n / secs,
        passes * block.len(),
        secs,
        violations + report.violations.len(),
        report.stats.totals.open_now
    );
    println!(
        "                RSS {} MiB before checking (the decoded block), {} MiB halfway, {} MiB after; VmHWM {} MiB",
        rss_before / 1024,
        rss_mid / 1024,
        proc_status_kib("VmRSS:") / 1024,
        proc_status_kib("VmHWM:") / 1024
    );

    // (3) What --metrics adds on the session thread: the recorder's per-event breakdown and
    // a publication attempt after every 1000 events (a live session drains in batches), then
    // the cost of rendering one scrape of the final state.
    let shared = Arc::new(Shared::default());
    let mut recorder = Recorder::new(shared.clone());
    let mut checker = Checker::new(&header());
    let totals = SessionTotals::default();
    let t0 = Instant::now();
    let mut since_drain = 0;
    for _ in 0..passes {
        for e in &block {
            checker.push(black_box(e));
            recorder.observe(e);
            since_drain += 1;
            if since_drain == 1000 {
                recorder.publish(&checker, &totals);
                since_drain = 0;
            }
        }
    }
    recorder.publish_now(&checker, &totals);
    let secs = t0.elapsed().as_secs_f64();
    println!("check + metrics: {:>11.0} events/s  ({} events in {:.2} s)", n / secs, passes * block.len(), secs);
    let registry = registry(shared).expect("registry");
    let scrapes = 200;
    let t0 = Instant::now();
    let mut bytes = 0;
    for _ in 0..scrapes {
        bytes = black_box(render(&registry).expect("render")).len();
    }
    println!("                one scrape renders {bytes} bytes in {:.0} us", t0.elapsed().as_secs_f64() * 1e6 / f64::from(scrapes));

    // (2) Decode + check: a ~250k-event text block, read through the streaming reader.
    // A block of whole invalidations, so that passes chain without broken pairs.
    drop(block);
    let text_events = generator.block(250_000);
    let block_events = text_events.len();
    let mut body = Vec::with_capacity(block_events * 260);
    for e in &text_events {
        body.extend_from_slice(event_to_line(e).as_bytes());
        body.push(b'\n');
    }
    let body: Arc<[u8]> = body.into();
    drop(text_events);
    let passes = target.div_ceil(block_events);
    let header_line = format!("{}\n", serde_json::to_string(&header()).unwrap_or_default()).into_bytes();
    let input = RepeatedText { header: header_line, body: body.clone(), passes_left: passes, pos: 0, in_header: true };
    let t0 = Instant::now();
    let reader = TraceReader::new(BufReader::with_capacity(1 << 16, input)).expect("header");
    let mut checker = Checker::new(reader.header());
    let mut count = 0u64;
    let mut rss_mid = 0;
    for event in reader {
        let event = event.expect("generated trace is valid");
        checker.push(&event);
        count += 1;
        if count == target as u64 / 2 {
            rss_mid = proc_status_kib("VmRSS:");
        }
    }
    let report = checker.finish();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "decode + check: {:>12.0} events/s  ({} events, {:.1} MB of JSON in {:.2} s, {} violations)",
        count as f64 / secs,
        count,
        (body.len() * passes) as f64 / 1e6,
        secs,
        report.violations.len()
    );
    println!(
        "                RSS {} MiB halfway, {} MiB after; VmHWM {} MiB (peak of the whole run)",
        rss_mid / 1024,
        proc_status_kib("VmRSS:") / 1024,
        proc_status_kib("VmHWM:") / 1024
    );
}
