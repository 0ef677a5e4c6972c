//! Writes a v1 trace: the header line, then one line per event.
use std::io::{self, Write};

use super::{event::Event, header::Header};

pub struct TraceWriter<W: Write> {
    out: W,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header line. Wrap `out` in a `BufWriter` for files.
    pub fn new(mut out: W, header: &Header) -> io::Result<TraceWriter<W>> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(TraceWriter { out })
    }

    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        write_event_line(&mut self.out, event)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The v1 JSON line of one event, without the newline.
pub fn event_to_line(event: &Event) -> String {
    // Serializing this model cannot fail: every map key is a string and no value is a float.
    serde_json::to_string(event).unwrap_or_default()
}

/// Writes the v1 JSON line of one event and its newline to `out`: serialized straight into the
/// writer, without a `String` per event.
pub fn write_event_line(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}
