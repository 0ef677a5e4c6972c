//! Streaming reader: the header first, then one [`Event`] per line, never holding more than
//! one line in memory.
use std::{
    io::{BufRead, Read},
    path::PathBuf,
};

use super::{
    decode::{DecodeError, DecodeFn, decode_event},
    error::{TraceError, TraceErrorKind},
    event::Event,
    header::{FORMAT_VERSION, Header},
    intern::Interner,
};

/// Longest line accepted; a longer one is reported rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a v1 trace from any `BufRead`. Each event's `seq` is set to its line number.
///
/// After a malformed line the iterator goes on with the next line; after a read error or a
/// truncated final line it ends.
pub struct TraceReader<R> {
    input: R,
    header: Header,
    path: Option<PathBuf>,
    line: u64,
    buf: Vec<u8>,
    interner: Interner,
    decode: DecodeFn,
    finished: bool,
}

/// One raw line, or why there is none.
enum RawLine {
    /// Complete line (the newline stripped); `terminated` is false for a final line without one.
    Line {
        terminated: bool,
    },
    Eof,
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and validates the header line.
    pub fn new(input: R) -> Result<TraceReader<R>, TraceError> {
        let mut reader = TraceReader {
            input,
            header: Header::default(),
            path: None,
            line: 0,
            buf: Vec::with_capacity(512),
            interner: Interner::default(),
            decode: decode_event,
            finished: false,
        };
        loop {
            match reader.next_raw_line().map_err(|kind| TraceError::new(reader.line, kind))? {
                RawLine::Eof => return Err(TraceError::new(0, TraceErrorKind::Empty)),
                RawLine::Line { terminated } => {
                    let text = std::str::from_utf8(&reader.buf)
                        .map_err(|_| TraceError::new(reader.line, TraceErrorKind::NotUtf8))?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    match parse_header(text) {
                        Ok(header) => reader.header = header,
                        Err(_) if !terminated && serde_json::from_str::<serde_json::Value>(text).is_err() => {
                            return Err(TraceError::new(reader.line, TraceErrorKind::Truncated));
                        }
                        Err(kind) => return Err(TraceError::new(reader.line, kind)),
                    }
                    return Ok(reader);
                }
            }
        }
    }

    /// Names the file in error messages.
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> TraceReader<R> {
        self.path = Some(path.into());
        self
    }

    /// Decodes with serde_json alone, for tests comparing it with the fast path.
    #[cfg(test)]
    pub(crate) fn with_reference_decode(mut self) -> TraceReader<R> {
        self.decode = super::decode::decode_event_reference;
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn error(&self, kind: TraceErrorKind) -> TraceError {
        let err = TraceError::new(self.line, kind);
        match &self.path {
            Some(path) => err.with_path(path.clone()),
            None => err,
        }
    }

    fn next_raw_line(&mut self) -> Result<RawLine, TraceErrorKind> {
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.input).take(limit).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(RawLine::Eof);
        }
        self.line += 1;
        let terminated = self.buf.last() == Some(&b'\n');
        if terminated {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if self.buf.len() > MAX_LINE_BYTES {
            // Skip the rest of the oversized line so the next call starts on a fresh one.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = (&mut self.input).take(1 << 16).read_until(b'\n', &mut sink)?;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            return Err(TraceErrorKind::TooLong(MAX_LINE_BYTES));
        }
        Ok(RawLine::Line { terminated })
    }
}

impl<R: BufRead> TraceReader<R> {
    /// The next line when it lies whole in the input's buffer: decoded there, without copying
    /// it out (most lines; the others, and read errors, take [`Self::next_raw_line`]).
    fn next_buffered(&mut self) -> Option<LineOutcome> {
        let available = self.input.fill_buf().ok()?;
        // An oversized line is for the copying path to report.
        let newline = memchr::memchr(b'\n', available.get(..=MAX_LINE_BYTES).unwrap_or(available))?;
        let mut text = &available[..newline];
        if let [rest @ .., b'\r'] = text {
            text = rest;
        }
        let outcome = decode_line(text, true, &mut self.interner, self.decode);
        self.input.consume(newline + 1);
        self.line += 1;
        Some(outcome)
    }

    /// The next line through `buf`: one that straddles the input's buffer, the last one, or
    /// a read error.
    fn next_copied(&mut self) -> LineOutcome {
        match self.next_raw_line() {
            Ok(RawLine::Eof) => LineOutcome::Eof,
            Ok(RawLine::Line { terminated }) => decode_line(&self.buf, terminated, &mut self.interner, self.decode),
            Err(kind @ TraceErrorKind::Io(_)) => LineOutcome::Fatal(kind),
            Err(kind) => LineOutcome::Bad(kind),
        }
    }
}

/// What reading one line gave.
enum LineOutcome {
    Event(Event),
    Blank,
    /// A malformed line; reading goes on.
    Bad(TraceErrorKind),
    /// A read error or a truncated last line: reading ends.
    Fatal(TraceErrorKind),
    Eof,
}

/// Decodes one line (newline stripped); `terminated` is false for a last line without one,
/// which is reported as truncated if it does not decode.
fn decode_line(bytes: &[u8], terminated: bool, interner: &mut Interner, decode: DecodeFn) -> LineOutcome {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return if terminated {
            LineOutcome::Bad(TraceErrorKind::NotUtf8)
        } else {
            LineOutcome::Fatal(TraceErrorKind::Truncated)
        };
    };
    // Event lines start with their `{`: only other lines need trimming to tell if blank.
    if !text.starts_with('{') && text.trim().is_empty() {
        return LineOutcome::Blank;
    }
    match decode(text, interner) {
        Ok(event) => LineOutcome::Event(event),
        Err(DecodeError::Json(_)) if !terminated => LineOutcome::Fatal(TraceErrorKind::Truncated),
        Err(DecodeError::Json(msg)) => LineOutcome::Bad(TraceErrorKind::Json(msg)),
        Err(DecodeError::Bad(msg)) => LineOutcome::Bad(TraceErrorKind::BadEvent(msg)),
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let outcome = match self.next_buffered() {
                Some(outcome) => outcome,
                None => self.next_copied(),
            };
            return Some(match outcome {
                LineOutcome::Blank => continue,
                LineOutcome::Event(mut event) => {
                    event.seq = Some(self.line);
                    Ok(event)
                }
                LineOutcome::Bad(kind) => Err(self.error(kind)),
                LineOutcome::Fatal(kind) => {
                    self.finished = true;
                    Err(self.error(kind))
                }
                LineOutcome::Eof => {
                    self.finished = true;
                    return None;
                }
            });
        }
        None
    }
}

fn parse_header(text: &str) -> Result<Header, TraceErrorKind> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| TraceErrorKind::BadHeader(e.to_string()))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(TraceErrorKind::BadHeader("not a JSON object".into()));
    };
    let version = match fields.remove("mmnotif_trace") {
        None => {
            return Err(TraceErrorKind::BadHeader("missing `mmnotif_trace` (is this an mmnotif-trace file?)".into()));
        }
        Some(v) => v.as_u64().ok_or_else(|| TraceErrorKind::BadHeader("`mmnotif_trace` must be a number".into()))?,
    };
    if version != FORMAT_VERSION {
        return Err(TraceErrorKind::UnsupportedVersion(version));
    }
    let kernel = match fields.remove("kernel") {
        Some(serde_json::Value::String(k)) => k,
        Some(_) => return Err(TraceErrorKind::BadHeader("`kernel` must be a string".into())),
        None => return Err(TraceErrorKind::BadHeader("missing `kernel`".into())),
    };
    let mut attach = std::collections::BTreeMap::new();
    match fields.remove("attach") {
        Some(serde_json::Value::Object(map)) => {
            for (hook, method) in map {
                match method {
                    serde_json::Value::String(m) => {
                        attach.insert(hook, m);
                    }
                    _ => return Err(TraceErrorKind::BadHeader(format!("attach method of `{hook}` must be a string"))),
                }
            }
        }
        Some(_) => return Err(TraceErrorKind::BadHeader("`attach` must be an object".into())),
        None => return Err(TraceErrorKind::BadHeader("missing `attach`".into())),
    }
    Ok(Header { kernel, attach, extra: fields.into_iter().collect() })
}

/// Decodes one event line outside a reader (e.g. for tests or a socket); `line` only
/// labels errors.
pub fn parse_event_line(text: &str, line: u64) -> Result<Event, TraceError> {
    let mut interner = Interner::default();
    decode_event(text, &mut interner).map_err(|e| {
        TraceError::new(
            line,
            match e {
                DecodeError::Json(msg) => TraceErrorKind::Json(msg),
                DecodeError::Bad(msg) => TraceErrorKind::BadEvent(msg),
            },
        )
    })
}

#[cfg(test)]
mod tests;
