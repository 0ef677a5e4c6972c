//! Number and time formatting shared by the panes.

pub use crate::checker::report::fmt_ns as duration;

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An age or uptime at second resolution: `850ms`, `42s`, `3m05s`, `2h07m`, `3d04h`.
pub fn age(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts_and_ages() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(age(5_000_000), "5ms");
        assert_eq!(age(42_000_000_000), "42s");
        assert_eq!(age(185_000_000_000), "3m05s");
        assert_eq!(age(7_620_000_000_000), "2h07m");
        assert_eq!(age(273_600_000_000_000), "3d04h");
    }
}
