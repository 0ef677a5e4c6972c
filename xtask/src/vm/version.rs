//! Debian package versions and dependency relations, compared the way dpkg compares them, so the
//! resolver can tell which offered version satisfies `linux-kbuild-6.1 (>= 6.1.192-2)`.
use std::cmp::Ordering;
use std::fmt;

/// A Debian version: `[epoch:]upstream[-revision]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DebVersion {
    text: String,
}

impl DebVersion {
    pub(super) fn new(text: &str) -> Self {
        DebVersion { text: text.trim().to_string() }
    }

    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    fn parts(&self) -> (u64, &str, &str) {
        let (epoch, rest) = match self.text.split_once(':') {
            Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, self.text.as_str()),
        };
        match rest.rsplit_once('-') {
            Some((up, rev)) => (epoch, up, rev),
            None => (epoch, rest, ""),
        }
    }

    /// The upstream part: what packages of one kernel release must agree on
    /// (`6.1.192` for `6.1.192-3`, `6.12.95` for `6.12.95-1~bpo12+1`).
    pub(super) fn upstream(&self) -> &str {
        self.parts().1
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (ea, ua, ra) = self.parts();
        let (eb, ub, rb) = other.parts();
        ea.cmp(&eb).then_with(|| compare_part(ua, ub)).then_with(|| compare_part(ra, rb))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's order of one non-digit character: `~` sorts before everything, even the end of the
/// string; letters before other characters.
fn char_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Alternating non-digit and digit runs: non-digits by [`char_order`], digits numerically.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        loop {
            let (ca, cb) = (a.first().copied(), b.first().copied());
            let a_digit = ca.is_none_or(|c| c.is_ascii_digit());
            let b_digit = cb.is_none_or(|c| c.is_ascii_digit());
            if a_digit && b_digit {
                break;
            }
            let ord = char_order(ca).cmp(&char_order(cb));
            if ord != Ordering::Equal {
                return ord;
            }
            a = &a[1.min(a.len())..];
            b = &b[1.min(b.len())..];
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let strip = |s: &[u8]| {
            let z = s.iter().take_while(|&&c| c == b'0').count();
            s[z..].to_vec()
        };
        let (da, db) = (strip(&a[..na]), strip(&b[..nb]));
        let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(&db));
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

/// A relation operator in a Depends field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Less,
    LessEq,
    Eq,
    GreaterEq,
    Greater,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Less,
            // `<` and `>` are the obsolete spellings of `<=` and `>=`.
            "<=" | "<" => Op::LessEq,
            "=" => Op::Eq,
            ">=" | ">" => Op::GreaterEq,
            ">>" => Op::Greater,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Less => "<<",
            Op::LessEq => "<=",
            Op::Eq => "=",
            Op::GreaterEq => ">=",
            Op::Greater => ">>",
        }
    }
}

/// One alternative of a dependency: a package name and an optional version relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Relation {
    pub package: String,
    pub constraint: Option<(Op, DebVersion)>,
}

impl Relation {
    /// True when `v` satisfies the constraint (always, without one).
    pub(super) fn allows(&self, v: &DebVersion) -> bool {
        let Some((op, want)) = &self.constraint else {
            return true;
        };
        let ord = v.cmp(want);
        match op {
            Op::Less => ord == Ordering::Less,
            Op::LessEq => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::GreaterEq => ord != Ordering::Less,
            Op::Greater => ord == Ordering::Greater,
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.constraint {
            Some((op, v)) => write!(f, "{} ({} {v})", self.package, op.as_str()),
            None => f.write_str(&self.package),
        }
    }
}

/// A Depends field: a list of dependencies, each a list of alternatives (`a | b`).
/// Architecture qualifiers (`:any`) and restrictions (`[amd64]`, `<!nocheck>`) are dropped.
pub(super) fn parse_depends(field: &str) -> Vec<Vec<Relation>> {
    field
        .split(',')
        .map(|dep| dep.split('|').filter_map(parse_relation).collect::<Vec<_>>())
        .filter(|alts| !alts.is_empty())
        .collect()
}

fn parse_relation(text: &str) -> Option<Relation> {
    let text = text.trim();
    let name_end = text.find([' ', '(', '[', '<']).unwrap_or(text.len());
    let package = text[..name_end].split(':').next()?.trim();
    if package.is_empty() {
        return None;
    }
    let constraint = text[name_end..].split_once('(').and_then(|(_, r)| r.split_once(')')).and_then(|(inner, _)| {
        let inner = inner.trim();
        let op_len = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
        Some((Op::parse(&inner[..op_len])?, DebVersion::new(&inner[op_len..])))
    });
    Some(Relation { package: package.to_string(), constraint })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebVersion {
        DebVersion::new(s)
    }

    #[test]
    fn orders_like_dpkg() {
        // Pairs dpkg --compare-versions puts in this order (a < b).
        for (a, b) in [
            ("6.1.192-2", "6.1.192-3"),
            ("6.1.176-1", "6.1.192-2"),
            ("6.12.95-1~bpo12+1", "6.12.95-1"),
            ("6.12.95-1~bpo12+1", "6.12.113-1~deb12u1"),
            ("7.3~rc6-1~exp1", "7.3~rc7-1~exp1"),
            ("7.3~rc7-1~exp1", "7.3-1"),
            ("1.24-4", "1.24-4.1"),
            ("1.0a", "1.0b"),
            ("1.0", "1.0a"),
            ("1.0a+x", "1.0+x"),
            ("9:1.0", "10:0.1"),
            ("1.2.3", "1:0.1"),
            ("1.09", "1.10"),
        ] {
            assert_eq!(v(a).cmp(&v(b)), Ordering::Less, "{a} < {b}");
            assert_eq!(v(b).cmp(&v(a)), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(v("1.001-1").cmp(&v("1.1-1")), Ordering::Equal);
    }

    #[test]
    fn upstream_part() {
        assert_eq!(v("6.1.192-3").upstream(), "6.1.192");
        assert_eq!(v("6.12.95-1~bpo12+1").upstream(), "6.12.95");
        assert_eq!(v("1:2.3-4-5").upstream(), "2.3-4");
        assert_eq!(v("7.3~rc7").upstream(), "7.3~rc7");
    }

    #[test]
    fn parses_and_checks_relations() {
        let deps = parse_depends(
            "linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), \
             a:any | b (<< 2) [amd64], gcc-12",
        );
        assert_eq!(deps.len(), 4);
        assert_eq!(deps[1][0].to_string(), "linux-kbuild-6.1 (>= 6.1.192-2)");
        assert!(deps[1][0].allows(&v("6.1.192-3")));
        assert!(!deps[1][0].allows(&v("6.1.176-1")));
        assert!(deps[0][0].allows(&v("6.1.192-2")));
        assert!(!deps[0][0].allows(&v("6.1.192-3")));
        assert_eq!(deps[2][0].package, "a");
        assert!(deps[2][1].allows(&v("1.9")));
        assert!(!deps[2][1].allows(&v("2")));
        assert!(deps[3][0].constraint.is_none());
    }
}
