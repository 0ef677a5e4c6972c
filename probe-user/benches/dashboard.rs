//! Whether the dashboard keeps up with a busy tracer: generated full-mode events are offered
//! at a fixed rate (by default 600k/s) to the live ingestion path (`SharedModel::push`, one
//! event at a time, as the ring buffer drain hands them over every 10 ms) while the UI thread
//! takes a snapshot and draws every pane into a TestBackend at the normal 10 Hz.
//!
//! Reports the ingestion rate achieved, the largest backlog (events offered but not yet
//! ingested) against what the default 4 MiB ring holds, and the cost of each frame. Then the
//! same without pacing: the most the ingestion path takes while the UI redraws.
//! Run with `cargo bench -p probe-user --bench dashboard` (optionally `-- <events/s> <seconds>`).
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use mmnotif_trace::{
    dashboard::{Model, Pane, SharedModel, Ui, event_loop::FRAME, view},
    session::DRAIN_INTERVAL,
    trace::Event,
};
use ratatui::{Terminal, backend::TestBackend};

#[path = "support/generator.rs"]
mod generator;

/// Events generated once and fed again with shifted timestamps (a pass leaves nothing open).
const BLOCK: usize = 1_000_000;
const RING_BYTES: usize = probe_common::DEFAULT_RING_BYTES as usize;

struct Ingested {
    events: u64,
    seconds: f64,
    /// Backlog found at each drain, sorted.
    backlogs: Vec<u64>,
}

impl Ingested {
    fn backlog(&self, q: f64) -> u64 {
        let at = ((self.backlogs.len() as f64 * q) as usize).min(self.backlogs.len().saturating_sub(1));
        self.backlogs.get(at).copied().unwrap_or(0)
    }
}

/// Feeds `offered` events per second (`None`: as fast as possible) for `seconds`.
fn ingest(
    model: &SharedModel,
    mut block: Vec<Event>,
    offered: Option<f64>,
    seconds: f64,
    stop: &AtomicBool,
) -> Ingested {
    let span = block.last().map_or(0, |e| e.ts) - block.first().map_or(0, |e| e.ts) + 1;
    let started = Instant::now();
    let (mut consumed, mut backlogs, mut at) = (0u64, Vec::new(), 0usize);
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed >= seconds {
            break;
        }
        // What the kernel would have put in the ring by now.
        let due = offered.map_or(consumed + 4096, |rate| (elapsed * rate) as u64);
        backlogs.push(due.saturating_sub(consumed));
        while consumed < due {
            if at == block.len() {
                at = 0;
                for e in &mut block {
                    e.ts += span;
                }
            }
            model.push(&block[at]);
            at += 1;
            consumed += 1;
        }
        if offered.is_some() {
            thread::sleep(DRAIN_INTERVAL);
        }
    }
    stop.store(true, Ordering::Relaxed);
    backlogs.sort_unstable();
    Ingested { events: consumed, seconds: started.elapsed().as_secs_f64(), backlogs }
}

struct Frames {
    count: u32,
    snapshot: Vec<Duration>,
    draw: Vec<Duration>,
}

/// Redraws every 100 ms until `stop`, cycling through the panes.
fn render(model: &SharedModel, stop: &AtomicBool) -> Frames {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let mut frames = Frames { count: 0, snapshot: Vec::new(), draw: Vec::new() };
    let mut ui = Ui::default();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        // Trace time follows the events here (generated timestamps are not wall time).
        let snapshot = model.snapshot(None);
        let t1 = Instant::now();
        ui.pane = Pane::ALL[frames.count as usize % Pane::ALL.len()];
        terminal.draw(|f| view::draw(f, &ui, &snapshot)).expect("draw");
        let t2 = Instant::now();
        frames.snapshot.push(t1 - t0);
        frames.draw.push(t2 - t1);
        frames.count += 1;
        thread::sleep(FRAME.saturating_sub(t2 - t0));
    }
    frames
}

fn stats(v: &[Duration]) -> String {
    let max = v.iter().max().copied().unwrap_or_default();
    let mean = v.iter().sum::<Duration>().checked_div(v.len() as u32).unwrap_or_default();
    format!("mean {:.2} ms, max {:.2} ms", mean.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3)
}

fn run(block: Vec<Event>, offered: Option<f64>, seconds: f64) -> (Ingested, Frames) {
    let model = SharedModel::new(Model::new(&generator::header(), "bench", None));
    let stop = Arc::new(AtomicBool::new(false));
    let ui = {
        let (model, stop) = (model.clone(), Arc::clone(&stop));
        thread::spawn(move || render(&model, &stop))
    };
    let ingested = ingest(&model, block, offered, seconds, &stop);
    let frames = ui.join().expect("render thread");
    (ingested, frames)
}

fn main() {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<f64>().ok());
    let offered = args.next().unwrap_or(600_000.0);
    let seconds = args.next().unwrap_or(10.0);
    let record = size_of::<probe_common::RawEvent>() + 8;
    let ring_events = (RING_BYTES / record) as u64;
    println!(
        "dashboard benchmark: {offered:.0} events/s offered for {seconds} s, drained every {} ms, redrawn every {} ms (120x40)",
        DRAIN_INTERVAL.as_millis(),
        FRAME.as_millis()
    );
    let block = generator::Generator::new().block(BLOCK);

    let (ingested, frames) = run(block.clone(), Some(offered), seconds);
    let rate = ingested.events as f64 / ingested.seconds;
    let max = ingested.backlog(1.0);
    let kept_up = max < ring_events && rate >= offered * 0.99;
    let ms = |events: u64| events as f64 / offered * 1e3;
    println!(
        "paced:   {rate:>10.0} events/s ingested ({} events in {:.2} s); backlog per drain p50 {} ({:.1} ms), p99 {} ({:.1} ms), max {max} ({:.1} ms); the ring holds {ring_events}: kept up: {}",
        ingested.events,
        ingested.seconds,
        ingested.backlog(0.5),
        ms(ingested.backlog(0.5)),
        ingested.backlog(0.99),
        ms(ingested.backlog(0.99)),
        ms(max),
        if kept_up { "yes" } else { "NO" }
    );
    println!(
        "         {} frames; snapshot under the lock {}; draw {}",
        frames.count,
        stats(&frames.snapshot),
        stats(&frames.draw)
    );

    let (ingested, frames) = run(block, None, seconds.min(5.0));
    println!(
        "unpaced: {:>10.0} events/s ingested while redrawing ({} frames; snapshot {}; draw {})",
        ingested.events as f64 / ingested.seconds,
        frames.count,
        stats(&frames.snapshot),
        stats(&frames.draw)
    );
}
