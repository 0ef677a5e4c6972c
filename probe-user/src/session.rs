//! A live tracing session: drain the ring buffer, decode, filter, hand events to a sink, and
//! turn kernel-side loss counters into `lost` events so no sink can miss them.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::{
    decode::Decoder,
    filter::EventFilter,
    loader::{Collector, Counters, LoadError},
    trace::{Event, EventBody, event::Lost},
    workload::monotonic_ns,
};

/// How long the reader sleeps between drains when the kernel does not wake it.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);
/// How often the loss counters are read.
const COUNTER_INTERVAL: Duration = Duration::from_millis(100);

/// What a session saw, for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Records taken from the ring buffer.
    pub received: u64,
    /// Records the kernel side tried to emit / dropped because the ring was full.
    pub kernel: Counters,
    /// Records that could not be decoded, or were shorter than a record (counted, never
    /// silently dropped).
    pub undecodable: u64,
    /// Events handed to the sink after filtering.
    pub delivered: u64,
}

impl SessionTotals {
    pub fn summary(&self) -> String {
        format!(
            "kernel emitted {} events, received {}, lost {}{}",
            self.kernel.attempted,
            self.received,
            self.kernel.lost,
            if self.undecodable > 0 { format!(", {} undecodable", self.undecodable) } else { String::new() }
        )
    }
}

/// Where a session delivers its events. Any `FnMut(&Event)` is one; sinks that also keep
/// derived state fresh while no events arrive (metrics) implement [`Sink::drained`].
pub trait Sink {
    fn event(&mut self, event: &Event);
    /// Called after every drain of the ring buffer, at least every [`DRAIN_INTERVAL`] and
    /// once more at the end, with the totals so far.
    fn drained(&mut self, _totals: &SessionTotals) {}
}

impl<F: FnMut(&Event)> Sink for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// Takes everything pending: decodes, filters and delivers it; with `read_counters`, also
/// turns any growth of the kernel's loss counter into a `lost` event.
fn pump(
    collector: &mut Collector,
    decoder: &mut Decoder<'_>,
    filter: &EventFilter,
    totals: &mut SessionTotals,
    read_counters: bool,
    sink: &mut impl Sink,
) -> Result<(), LoadError> {
    let short_before = collector.malformed;
    collector.drain(|raw| {
        totals.received += 1;
        match decoder.decode(raw) {
            Ok(ev) if filter.matches(&ev) => {
                totals.delivered += 1;
                sink.event(&ev);
            }
            Ok(_) => {}
            Err(e) => {
                totals.undecodable += 1;
                log::warn!("{e}");
            }
        }
    });
    // Short records never reach the decoder; count them with the undecodable ones.
    totals.received += collector.malformed - short_before;
    totals.undecodable += collector.malformed - short_before;
    if read_counters {
        let before = totals.kernel.lost;
        totals.kernel = collector.counters()?;
        if totals.kernel.lost > before {
            let lost = Event::new(monotonic_ns(), EventBody::Lost(Lost { count: totals.kernel.lost - before }));
            totals.delivered += 1;
            sink.event(&lost);
        }
    }
    sink.drained(totals);
    Ok(())
}

/// Runs until `stop` is set (or `deadline` passes), then drains what is left.
pub fn run(
    collector: &mut Collector,
    decoder: &mut Decoder<'_>,
    filter: &EventFilter,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    sink: impl FnMut(&Event),
) -> Result<SessionTotals, LoadError> {
    run_sink(collector, decoder, filter, stop, deadline, sink)
}

/// [`run`] for a sink that also wants to hear about every drain.
pub fn run_sink(
    collector: &mut Collector,
    decoder: &mut Decoder<'_>,
    filter: &EventFilter,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    mut sink: impl Sink,
) -> Result<SessionTotals, LoadError> {
    let mut totals = SessionTotals::default();
    let mut last_counter_read = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            pump(collector, decoder, filter, &mut totals, true, &mut sink)?;
            return Ok(totals);
        }
        collector.wait(DRAIN_INTERVAL);
        let read_counters = last_counter_read.elapsed() >= COUNTER_INTERVAL;
        if read_counters {
            last_counter_read = Instant::now();
        }
        pump(collector, decoder, filter, &mut totals, read_counters, &mut sink)?;
    }
}
