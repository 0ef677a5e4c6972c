//! Checker throughput on a synthetic but realistic trace: many tasks invalidating ranges of a
//! few mms with KVM-like and GRU-like list subscribers, interval subscribers on some mms,
//! nested ranges, and OOM-reaper failures with compensating ends.
//!
//! Measures (1) the checker alone on already-decoded events, (2) JSON-lines decoding plus
//! checking and (3) what the `--metrics` recorder adds to the checker, and prints events/s and
//! peak RSS. Run with
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
    trace::{Event, TraceReader, event_to_line},
};

#[path = "support/generator.rs"]
mod generator;

use generator::{Generator, TASKS, header};

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
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
    println!(
        "                one scrape renders {bytes} bytes in {:.0} us",
        t0.elapsed().as_secs_f64() * 1e6 / f64::from(scrapes)
    );

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
