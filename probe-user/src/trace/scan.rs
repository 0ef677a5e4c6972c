//! The fast path of event decoding: a scanner for the lines writers produce — one flat JSON
//! object whose keys are the event fields, with plain values (strings without escapes,
//! integers, booleans) and `stack` as an array of such strings.
//!
//! It declines (returns `None`) at anything else: escapes, `null`, floats, unknown or repeated
//! keys, nested values other than `stack`, or any syntax error. The line then goes through
//! serde_json, which gives the same value or the same error, so accepting a line here must
//! never change what it decodes to; `decode::tests` checks the two agree.
use std::borrow::Cow;

use super::{
    addr::Addr,
    decode::{WireAddr, WireEnum, WireEvent, WireRet},
    intern::Interner,
    text::Stack,
};

/// Reads `line` into a [`WireEvent`], or `None` when it is outside the subset handled here.
/// A `stack` whose text `interner` has seen is taken from it without reading the frames.
pub(super) fn scan<'a>(line: &'a str, interner: &Interner) -> Option<WireEvent<'a>> {
    let mut c = Cursor { text: line, pos: 0 };
    let mut w = WireEvent::default();
    c.expect(b'{')?;
    if c.peek()? == b'}' {
        c.pos += 1;
        return c.at_end().then_some(w);
    }
    loop {
        let key = c.key()?;
        c.expect(b':')?;
        if !c.field(key, &mut w, interner)? {
            return None;
        }
        match c.peek()? {
            b',' => c.pos += 1,
            b'}' => {
                c.pos += 1;
                return c.at_end().then_some(w);
            }
            _ => return None,
        }
    }
}

/// Length of the plain string at the start of `rest`, up to its closing quote; `None` at an
/// escape or a control character (serde_json's business), or without a closing quote.
/// Eight bytes at a time: most of a line is string text.
fn plain_string_len(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let stop = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let mut i = 0;
    while let Some(chunk) = rest.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // The high bit of each byte that is zero (below 0x20 for `w`). Borrows can flag bytes
        // above a true hit, never below it, so the lowest flagged byte is the first stop.
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGHS;
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            return (rest.get(at) == Some(&b'"')).then_some(at);
        }
        i += 8;
    }
    let at = i + rest.get(i..)?.iter().position(|&b| stop(b))?;
    (rest.get(at) == Some(&b'"')).then_some(at)
}

/// The keys this path reads; any other key leaves the line to serde_json.
#[derive(Clone, Copy)]
enum Key {
    Ts,
    Type,
    Cpu,
    Pid,
    Tid,
    Comm,
    Mm,
    Range,
    Start,
    End,
    Subscriber,
    Event,
    Blockable,
    Ret,
    ItreeActive,
    ItreeSeq,
    Callback,
    Caller,
    HasEnd,
    CurSeq,
    Finish,
    Active,
    Seq,
    Count,
    Detector,
    Stack,
    Other,
}

impl Key {
    /// The key at the start of `rest` (just after its opening quote) and its length, when it
    /// is one of [`Key`]'s, followed by its closing quote. A decision tree over the bytes:
    /// no search for the quote, no string comparison.
    fn read(rest: &[u8]) -> Option<(Key, usize)> {
        Some(match rest {
            [b'a', b'c', b't', b'i', b'v', b'e', b'"', ..] => (Key::Active, 6),
            [b'b', b'l', b'o', b'c', b'k', b'a', b'b', b'l', b'e', b'"', ..] => (Key::Blockable, 9),
            [b'c', b'a', b'l', b'l', b'b', b'a', b'c', b'k', b'"', ..] => (Key::Callback, 8),
            [b'c', b'a', b'l', b'l', b'e', b'r', b'"', ..] => (Key::Caller, 6),
            [b'c', b'o', b'm', b'm', b'"', ..] => (Key::Comm, 4),
            [b'c', b'o', b'u', b'n', b't', b'"', ..] => (Key::Count, 5),
            [b'c', b'p', b'u', b'"', ..] => (Key::Cpu, 3),
            [b'c', b'u', b'r', b'_', b's', b'e', b'q', b'"', ..] => (Key::CurSeq, 7),
            [b'd', b'e', b't', b'e', b'c', b't', b'o', b'r', b'"', ..] => (Key::Detector, 8),
            [b'e', b'n', b'd', b'"', ..] => (Key::End, 3),
            [b'e', b'v', b'e', b'n', b't', b'"', ..] => (Key::Event, 5),
            [b'f', b'i', b'n', b'i', b's', b'h', b'"', ..] => (Key::Finish, 6),
            [b'h', b'a', b's', b'_', b'e', b'n', b'd', b'"', ..] => (Key::HasEnd, 7),
            [b'i', b't', b'r', b'e', b'e', b'_', b'a', b'c', b't', b'i', b'v', b'e', b'"', ..] => {
                (Key::ItreeActive, 12)
            }
            [b'i', b't', b'r', b'e', b'e', b'_', b's', b'e', b'q', b'"', ..] => (Key::ItreeSeq, 9),
            [b'm', b'm', b'"', ..] => (Key::Mm, 2),
            [b'p', b'i', b'd', b'"', ..] => (Key::Pid, 3),
            [b'r', b'a', b'n', b'g', b'e', b'"', ..] => (Key::Range, 5),
            [b'r', b'e', b't', b'"', ..] => (Key::Ret, 3),
            [b's', b'e', b'q', b'"', ..] => (Key::Seq, 3),
            [b's', b't', b'a', b'c', b'k', b'"', ..] => (Key::Stack, 5),
            [b's', b't', b'a', b'r', b't', b'"', ..] => (Key::Start, 5),
            [b's', b'u', b'b', b's', b'c', b'r', b'i', b'b', b'e', b'r', b'"', ..] => (Key::Subscriber, 10),
            [b't', b'i', b'd', b'"', ..] => (Key::Tid, 3),
            [b't', b's', b'"', ..] => (Key::Ts, 2),
            [b't', b'y', b'p', b'e', b'"', ..] => (Key::Type, 4),
            _ => return None,
        })
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// Sets `slot` unless it is already set (serde_json rejects a repeated field).
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<bool> {
    if slot.is_some() {
        return Some(false);
    }
    *slot = Some(value?);
    Some(true)
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after JSON whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes().get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Only whitespace is left.
    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string without escapes or control characters, borrowed from the line.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let len = plain_string_len(self.bytes().get(start..)?)?;
        self.pos = start + len + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..start + len)
    }

    /// A key: one of [`Key`]'s, or [`Key::Other`] for any other plain string (the event
    /// fields are all named in `[a-z_]`); `None` at an escape, which is serde_json's business.
    fn key(&mut self) -> Option<Key> {
        self.expect(b'"')?;
        if let Some((key, len)) = Key::read(self.bytes().get(self.pos..)?) {
            self.pos += len + 1;
            return Some(key);
        }
        self.pos -= 1;
        self.string().map(|_| Key::Other)
    }

    /// An address: read straight into its value when the string is `0x` and 1–16 hex
    /// digits (what [`Addr::parse`] accepts, so the value is the same), else as text.
    fn address(&mut self) -> Option<WireAddr<'a>> {
        self.expect(b'"')?;
        let rest = self.bytes().get(self.pos..)?;
        if let Some((addr, len)) = Addr::parse_prefix(rest)
            && rest.get(len) == Some(&b'"')
        {
            self.pos += len + 1;
            return Some(WireAddr::Value(addr));
        }
        // Back to the opening quote, for the string reader.
        self.pos -= 1;
        self.text().map(WireAddr::Text)
    }

    fn text(&mut self) -> Option<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    /// Digits of a JSON integer without sign, leading zeros, fraction or exponent, that fit
    /// in a u64 (serde_json reads anything else as a float or an error).
    fn digits(&mut self) -> Option<u64> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut pos = start;
        let mut value: u64 = 0;
        while let Some(&b) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            pos += 1;
        }
        let leading_zero = pos - start > 1 && bytes[start] == b'0';
        if pos == start || leading_zero || matches!(bytes.get(pos), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos = pos;
        Some(value)
    }

    fn uint(&mut self) -> Option<u64> {
        self.peek()?;
        self.digits()
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.uint()?).ok()
    }

    fn bool(&mut self) -> Option<bool> {
        self.peek()?;
        let rest = self.bytes().get(self.pos..)?;
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        Some(value)
    }

    /// `ret`: an integer in i64 range (serde_json reads `-0` as a float), or a bool.
    fn ret(&mut self) -> Option<WireRet> {
        match self.peek()? {
            b't' | b'f' => self.bool().map(WireRet::Bool),
            b'-' => {
                self.pos += 1;
                let magnitude = self.digits()?;
                if magnitude == 0 || magnitude > i64::MIN.unsigned_abs() {
                    return None;
                }
                Some(WireRet::Int(0i64.wrapping_sub_unsigned(magnitude)))
            }
            _ => i64::try_from(self.digits()?).ok().map(WireRet::Int),
        }
    }

    /// `event` and `detector`: a name or a non-negative number.
    fn name_or_number(&mut self) -> Option<WireEnum<'a>> {
        if self.peek()? == b'"' { self.text().map(WireEnum::Name) } else { self.uint().map(WireEnum::Number) }
    }

    /// `stack`: the text between the brackets of an array of plain strings.
    fn string_array(&mut self) -> Option<&'a str> {
        self.expect(b'[')?;
        let start = self.pos;
        if self.peek()? != b']' {
            loop {
                self.string()?;
                match self.peek()? {
                    b',' => self.pos += 1,
                    b']' => break,
                    _ => return None,
                }
            }
        }
        let inner = self.text.get(start..self.pos)?;
        self.pos += 1;
        Some(inner)
    }

    /// `stack` when its text is one `interner` made a stack from, found without reading it
    /// frame by frame (most of a line's bytes are its stack). `None` leaves it to
    /// [`Self::string_array`].
    ///
    /// Every text the interner holds is the inside of a well-formed array of plain strings,
    /// so if the text up to a `]` equals one, that `]` closes the array: the frame-by-frame
    /// reading would stop there too and take the same text. Which `]` is tried only decides
    /// whether the shortcut is found, never what it gives.
    fn known_stack(&mut self, interner: &Interner) -> Option<Stack> {
        if self.peek()? != b'[' {
            return None;
        }
        let start = self.pos + 1;
        let rest = self.bytes().get(start..)?;
        // The closing bracket follows a frame's closing quote (or the opening one at once).
        let end = memchr::memchr_iter(b']', rest)
            .find(|&i| i == 0 || i.checked_sub(1).and_then(|q| rest.get(q)) == Some(&b'"'))?;
        let stack = interner.known_stack(self.text.get(start..start + end)?)?.clone();
        self.pos = start + end + 1;
        Some(stack)
    }

    /// Reads the value of `key` into `w`; `Some(false)` for a key this path leaves to serde_json.
    fn field(&mut self, key: Key, w: &mut WireEvent<'a>, interner: &Interner) -> Option<bool> {
        match key {
            Key::Ts => once(&mut w.ts, self.uint()),
            Key::Type => once(&mut w.kind, self.text()),
            Key::Cpu => once(&mut w.cpu, self.u32()),
            Key::Pid => once(&mut w.pid, self.u32()),
            Key::Tid => once(&mut w.tid, self.u32()),
            Key::Comm => once(&mut w.comm, self.text()),
            Key::Mm => once(&mut w.mm, self.address()),
            Key::Range => once(&mut w.range, self.address()),
            Key::Start => once(&mut w.start, self.address()),
            Key::End => once(&mut w.end, self.address()),
            Key::Subscriber => once(&mut w.subscriber, self.address()),
            Key::Event => once(&mut w.event, self.name_or_number()),
            Key::Blockable => once(&mut w.blockable, self.bool()),
            Key::Ret => once(&mut w.ret, self.ret()),
            Key::ItreeActive => once(&mut w.itree_active, self.uint()),
            Key::ItreeSeq => once(&mut w.itree_seq, self.uint()),
            Key::Callback => once(&mut w.callback, self.text()),
            Key::Caller => once(&mut w.caller, self.text()),
            Key::HasEnd => once(&mut w.has_end, self.bool()),
            Key::CurSeq => once(&mut w.cur_seq, self.uint()),
            Key::Finish => once(&mut w.finish, self.address()),
            Key::Active => once(&mut w.active, self.uint()),
            Key::Seq => once(&mut w.seq, self.uint()),
            Key::Count => once(&mut w.count, self.uint()),
            Key::Detector => once(&mut w.detector, self.name_or_number()),
            Key::Stack if w.raw_stack.is_some() || w.known_stack.is_some() => Some(false),
            Key::Stack => {
                match self.known_stack(interner) {
                    Some(stack) => w.known_stack = Some(stack),
                    None => w.raw_stack = Some(self.string_array()?),
                }
                Some(true)
            }
            Key::Other => Some(false),
        }
    }
}

#[cfg(test)]
mod tests;
