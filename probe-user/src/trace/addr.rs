//! Kernel addresses, written as `"0x…"` hex strings in the trace so that 64-bit values survive
//! JSON tools that read every number as a double.
use std::fmt;

use serde::{Serialize, Serializer};

/// A kernel virtual address (or any 64-bit value the format writes as hex).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u64);

/// Why a string is not a v1 address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrParseError {
    #[error("address {0:?} does not start with 0x")]
    MissingPrefix(String),
    #[error("address {0:?} has no hex digits after 0x")]
    Empty(String),
    #[error("address {0:?} has a character that is not a hex digit")]
    NotHex(String),
    #[error("address {0:?} does not fit in 64 bits")]
    TooLong(String),
}

impl Addr {
    /// Parses `0x` followed by 1–16 hex digits (either case). Leading zeros beyond 16 digits
    /// are accepted as long as the value fits.
    pub fn parse(text: &str) -> Result<Addr, AddrParseError> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or_else(|| AddrParseError::MissingPrefix(text.to_owned()))?;
        if digits.is_empty() {
            return Err(AddrParseError::Empty(text.to_owned()));
        }
        let mut value: u64 = 0;
        // Up to 16 digits always fit: no overflow check per digit (replay parses several
        // addresses per event).
        let fits = digits.len() <= 16;
        for byte in digits.bytes() {
            let nibble = HEX_VALUE[usize::from(byte)];
            if nibble == NOT_HEX {
                return Err(AddrParseError::NotHex(text.to_owned()));
            }
            if !fits && value >> 60 != 0 {
                return Err(AddrParseError::TooLong(text.to_owned()));
            }
            value = (value << 4) | u64::from(nibble);
        }
        Ok(Addr(value))
    }
}

impl Addr {
    /// The address at the start of `bytes` when it is written the way the writers write it,
    /// `0x` and 1–16 hex digits (either case), and how many bytes it takes; `None` for anything
    /// else, which [`Addr::parse`] then judges. Lets a decoder read an address straight from a
    /// line instead of finding the string's end first.
    pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<(Addr, usize)> {
        let digits = bytes.strip_prefix(b"0x")?;
        let mut value: u64 = 0;
        let mut n = 0;
        while let Some(&byte) = digits.get(n) {
            let nibble = HEX_VALUE[usize::from(byte)];
            if nibble == NOT_HEX {
                break;
            }
            if n == 16 {
                return None;
            }
            value = (value << 4) | u64::from(nibble);
            n += 1;
        }
        (n > 0).then_some((Addr(value), 2 + n))
    }
}

/// Marks a byte that is not a hex digit in [`HEX_VALUE`].
const NOT_HEX: u8 = 0xff;

/// The value of each byte as a hex digit (either case), or [`NOT_HEX`]: one load per digit
/// instead of three range tests.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl From<u64> for Addr {
    fn from(v: u64) -> Self {
        Addr(v)
    }
}

impl std::str::FromStr for Addr {
    type Err = AddrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Addr::parse(s)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // "0x" + at most 16 digits; formatted on the stack to keep the writer allocation-free.
        let mut buf = [0u8; 18];
        serializer.serialize_str(format_hex(self.0, &mut buf))
    }
}

impl<'de> serde::Deserialize<'de> for Addr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Addr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Writes `0x<lowercase hex>` into `buf` and returns it as a str.
pub(crate) fn format_hex(value: u64, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut n = 0;
    let mut v = value;
    loop {
        tmp[n] = DIGITS[(v & 0xf) as usize];
        n += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..n {
        buf[2 + i] = tmp[n - 1 - i];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(&buf[..2 + n]).unwrap_or("0x0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in [0u64, 1, 0xffff_8880_03a1_c000, u64::MAX] {
            let mut buf = [0u8; 18];
            let text = format_hex(v, &mut buf).to_owned();
            assert_eq!(Addr::parse(&text), Ok(Addr(v)));
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(Addr::parse("ffff"), Err(AddrParseError::MissingPrefix(_))));
        assert!(matches!(Addr::parse("0x"), Err(AddrParseError::Empty(_))));
        assert!(matches!(Addr::parse("0xfg"), Err(AddrParseError::NotHex(_))));
        assert!(matches!(Addr::parse("0x1ffffffffffffffff"), Err(AddrParseError::TooLong(_))));
        assert_eq!(Addr::parse("0x0000000000000000001"), Ok(Addr(1)));
        for bad in ["0x1g", "0x1/", "0x1:", "0x1@", "0x1G", "0x1`", "0x1 ", "0x1\u{e9}"] {
            assert!(matches!(Addr::parse(bad), Err(AddrParseError::NotHex(_))), "{bad}");
        }
    }

    #[test]
    fn a_prefix_read_agrees_with_the_parser() {
        let mut read = 0;
        for text in [
            "0x1",
            "0xffffffffffffffff",
            "0xFFFF888003a1c000",
            "0x0000000000000000",
            "0x1ffffffffffffffff",
            "0x0000000000000000001",
            "0x",
            "0X1",
            "ffff",
            "0x1g",
        ] {
            // As in a line: the string's closing quote follows.
            let quoted = format!("{text}\"");
            match Addr::parse_prefix(quoted.as_bytes()) {
                Some((addr, len)) if quoted.as_bytes().get(len) == Some(&b'"') => {
                    assert_eq!(Addr::parse(text), Ok(addr), "{text}");
                    read += 1;
                }
                // Declined (or stopped short of the quote): the parser decides.
                _ => {}
            }
        }
        assert_eq!(read, 4, "the four plain addresses are read as a prefix");
    }

    #[test]
    fn reads_both_cases() {
        assert_eq!(Addr::parse("0xABCDEF0123456789"), Ok(Addr(0xabcd_ef01_2345_6789)));
        assert_eq!(Addr::parse("0Xabcdef"), Ok(Addr(0xab_cdef)));
    }
}
