//! A live tracing session: drain the ring buffer, decode, filter, hand events to a sink, and
//! turn kernel-side loss counters into `lost` events so no sink can miss them.

use aya::maps::{MapData, StackTraceMap};
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::{
    decode::{Decoded, Decoder, StackSource},
    filter::EventFilter,
    loader::{AttachReport, CallbackProbe, Collector, Counters, Discovered, LoadError, Tracer},
    trace::{Event, EventBody, Header, event::Lost},
};

/// How long the reader sleeps between drains when the kernel does not wake it.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);
/// How often the kernel's miss counters are read (each read is a few syscalls per program and
/// probe).
const COUNTER_INTERVAL: Duration = Duration::from_millis(100);

/// How often the session hands freed memory back to the kernel (see [`crate::memory`]).
const RETURN_FREED_INTERVAL: Duration = Duration::from_secs(60);
/// After the event programs are detached, how long a program already running on another CPU
/// is given to finish its record before the last drain.
const QUIESCE_GRACE: Duration = Duration::from_millis(10);

/// What the session tells the code that owns the probes.
pub enum Control {
    /// A subscriber registered: probe its callbacks (and maybe deliver the returned event).
    Registered(Discovered),
    /// The session is stopping: stop the kernel side emitting, so the last drain and the
    /// counters read with it cover the same records.
    Stopping,
}

/// The trace header for a live session.
pub fn header(kernel: &str, attach: &AttachReport) -> Header {
    let mut h = Header::new(kernel);
    h.attach = attach.header_map();
    h.extra
        .insert("mode".into(), serde_json::Value::from(if attach.pairing_available() { "full" } else { "degraded" }));
    h
}

/// What a session saw, for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Records taken from the ring buffer.
    pub received: u64,
    /// Records the kernel side tried to emit / dropped because the ring was full, and probe
    /// hits it skipped.
    pub kernel: Counters,
    /// Records that could not be decoded, or were shorter than a record (counted, never
    /// silently dropped).
    pub undecodable: u64,
    /// Events handed to the sink after filtering.
    pub delivered: u64,
}

impl SessionTotals {
    pub fn summary(&self) -> String {
        let incomplete = self.kernel.incomplete.describe().map(|d| format!(", incomplete {d}")).unwrap_or_default();
        let missed = match self.kernel.missed {
            0 => String::new(),
            n => format!(", missed {n} probe hits (the kernel skipped the tracer's programs)"),
        };
        format!(
            "kernel emitted {} events, received {}, lost {}{missed}{}{incomplete}",
            self.kernel.attempted,
            self.received,
            self.kernel.lost,
            if self.undecodable > 0 { format!(", {} undecodable", self.undecodable) } else { String::new() }
        )
    }
}

/// What a session hands its sink.
pub enum Delivery<'a> {
    /// An event that passed the filter.
    Event(&'a Event),
    /// The ring buffer was just drained (at least every [`DRAIN_INTERVAL`], and once more at
    /// the end): the totals so far, so state derived from them (the metrics) stays fresh while
    /// no events arrive.
    Drained(&'a SessionTotals),
}

/// Takes everything pending: decodes, filters and delivers it. First turns any growth of the
/// kernel's loss counters into a `lost` event, so every record that follows a loss reaches the
/// sink after it (the checker marks what it finds after a loss as possibly its artefact). The
/// ring's own counters are read every time (they are mapped memory); the kernel's miss counters
/// cost syscalls and are read only with `sample_misses`.
fn pump(
    collector: &mut Collector,
    decoder: &mut Decoder<'_>,
    filter: &EventFilter,
    totals: &mut SessionTotals,
    sample_misses: bool,
    sink: &mut impl FnMut(Delivery<'_>),
    registered: &mut impl FnMut(Control) -> Option<Event>,
) -> Result<(), LoadError> {
    if sample_misses {
        collector.sample_misses();
    }
    let before = totals.kernel.dropped();
    totals.kernel = collector.counters()?;
    if totals.kernel.dropped() > before {
        // Stamped with the earliest time these losses can have happened (see `on_lost`).
        let count = totals.kernel.dropped() - before;
        let lost = Event::new(collector.losses_since_ns(), EventBody::Lost(Lost { count }));
        totals.delivered += 1;
        sink(Delivery::Event(&lost));
    }
    let short_before = collector.malformed;
    collector.drain(|raw| {
        totals.received += 1;
        match decoder.decode(raw) {
            Ok(Decoded::Event(ev)) if filter.matches(&ev) => {
                totals.delivered += 1;
                sink(Delivery::Event(&ev));
            }
            Ok(Decoded::Event(_)) => {}
            Ok(Decoded::Registered { found, mm, subscriber, pid, comm }) => {
                log::info!("subscriber {subscriber} registered on mm {mm} by {pid} ({comm})");
                // Delivered before the records after this one in the ring, which include every
                // record of the probes just attached; records that happened before the attach
                // may still follow, and the checker places them by their own timestamps.
                if let Some(live) = registered(Control::Registered(found)) {
                    totals.delivered += 1;
                    sink(Delivery::Event(&live));
                }
            }
            Err(e) => {
                totals.undecodable += 1;
                log::warn!("{e}");
            }
        }
    });
    // Short records never reach the decoder; count them with the undecodable ones.
    totals.received += collector.malformed - short_before;
    totals.undecodable += collector.malformed - short_before;
    sink(Delivery::Drained(totals));
    Ok(())
}

/// Runs until `stop` is set (or `deadline` passes), then has the kernel side stopped and
/// drains what is left. `opening` goes to the sink before any kernel record. `control` is told
/// about every new subscriber (to probe its callbacks; it may return an event to deliver right
/// then) and, last, that the session is stopping.
#[allow(clippy::too_many_arguments)]
pub fn run(
    collector: &mut Collector,
    decoder: &mut Decoder<'_>,
    filter: &EventFilter,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    opening: Option<Event>,
    mut sink: impl FnMut(Delivery<'_>),
    mut control: impl FnMut(Control) -> Option<Event>,
) -> Result<SessionTotals, LoadError> {
    let mut totals = SessionTotals::default();
    if let Some(event) = opening {
        totals.delivered += 1;
        sink(Delivery::Event(&event));
    }
    let mut last_counter_read = Instant::now();
    let mut last_return = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            // Drain first so a full ring loses nothing while the programs are taken down.
            // Detaching takes the programs' and probes' miss counters with them: read them first.
            pump(collector, decoder, filter, &mut totals, true, &mut sink, &mut control)?;
            control(Control::Stopping);
            std::thread::sleep(QUIESCE_GRACE);
            pump(collector, decoder, filter, &mut totals, true, &mut sink, &mut control)?;
            return Ok(totals);
        }
        collector.wait(DRAIN_INTERVAL);
        let read_counters = last_counter_read.elapsed() >= COUNTER_INTERVAL;
        if read_counters {
            last_counter_read = Instant::now();
        }
        pump(collector, decoder, filter, &mut totals, read_counters, &mut sink, &mut control)?;
        if last_return.elapsed() >= RETURN_FREED_INTERVAL {
            last_return = Instant::now();
            crate::memory::return_freed();
        }
    }
}

/// The kernel's stack map, as the decoder's [`StackSource`].
struct KernelStacks(StackTraceMap<MapData>);

impl StackSource for KernelStacks {
    fn frames(&mut self, id: u32) -> Option<Vec<u64>> {
        let trace = self.0.get(&id, 0).ok()?;
        Some(trace.frames().iter().map(|f| f.ip).filter(|&ip| ip != 0).collect())
    }
}

/// Runs a whole session on a started tracer: drains, decodes (with kernel stacks), probes
/// the callbacks of subscribers as they register, and hands events and drains to `sink`.
/// Every probe outcome goes to `probed`: first those of the subscribers the startup
/// inventory found, then each new one. The `probes_live` events saying when callbacks became
/// observable go to `sink` like kernel records, whatever the filter: the checker needs them.
pub fn trace(
    tracer: &mut Tracer,
    filter: &EventFilter,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    sink: impl FnMut(Delivery<'_>),
    mut probed: impl FnMut(&CallbackProbe),
) -> Result<SessionTotals, LoadError> {
    let mut collector = tracer.collector()?;
    let stacks = tracer.ebpf.take_map("STACKS").and_then(|m| StackTraceMap::try_from(m).ok()).map(KernelStacks);
    let Tracer { ebpf, kernel, callbacks, startup_probes, .. } = tracer;
    for probe in callbacks.probes.values() {
        probed(probe);
    }
    let mut decoder = Decoder::new(&kernel.kallsyms);
    if let Some(stacks) = stacks {
        decoder = decoder.with_stacks(Box::new(stacks));
    }
    run(&mut collector, &mut decoder, filter, stop, deadline, startup_probes.take(), sink, |control| match control {
        Control::Registered(found) => {
            let outcome = callbacks.discovered(ebpf, &kernel.kallsyms, found);
            for probe in &outcome.attempts {
                probed(probe);
            }
            outcome.live
        }
        Control::Stopping => {
            crate::loader::detach_event_programs(ebpf);
            None
        }
    })
}
