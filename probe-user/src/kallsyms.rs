//! Kernel symbols from /proc/kallsyms: address → `symbol+0xoff [module]`, and name → address.

use std::fmt;

use thiserror::Error;

pub(crate) const PATH: &str = "/proc/kallsyms";

#[derive(Debug, Error)]
pub enum KallsymsError {
    #[error("cannot read {PATH}: {0}")]
    Read(std::io::Error),
    #[error("{PATH}:{line}: {what}")]
    Malformed { line: usize, what: String },
    #[error("{PATH} shows every address as 0 (kptr_restrict): run as root")]
    Restricted,
}

#[derive(Clone, Debug)]
struct Symbol {
    addr: u64,
    name: String,
    module: Option<String>,
}

/// Text symbols sorted by address.
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    text: Vec<Symbol>,
}

/// An address resolved to the function that contains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub module: Option<&'a str>,
}

impl fmt::Display for Resolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        if let Some(m) = self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// Addresses past the last symbol by more than this are not attributed to it.
const MAX_FUNCTION_SIZE: u64 = 1 << 20;

impl Kallsyms {
    pub fn load() -> Result<Kallsyms, KallsymsError> {
        let text = std::fs::read_to_string(PATH).map_err(KallsymsError::Read)?;
        let syms = Self::parse(&text)?;
        if !syms.text.is_empty() && syms.text.iter().all(|s| s.addr == 0) {
            return Err(KallsymsError::Restricted);
        }
        Ok(syms)
    }

    /// Parses kallsyms text: `ffffffff81000000 T name [module]` per line.
    pub fn parse(text: &str) -> Result<Kallsyms, KallsymsError> {
        let mut syms = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(KallsymsError::Malformed {
                    line: i + 1,
                    what: format!("expected 'address type name', got {line:?}"),
                });
            };
            let addr = u64::from_str_radix(addr, 16)
                .map_err(|e| KallsymsError::Malformed { line: i + 1, what: format!("address {addr:?}: {e}") })?;
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let module = parts.next().map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
            syms.push(Symbol { addr, name: name.to_string(), module });
        }
        syms.sort_by_key(|s| s.addr);
        Ok(Kallsyms { text: syms })
    }

    /// The function containing `addr`, if any.
    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let idx = self.text.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let sym = &self.text[idx];
        let offset = addr - sym.addr;
        if offset > MAX_FUNCTION_SIZE {
            return None;
        }
        Some(Resolved { name: &sym.name, offset, module: sym.module.as_deref() })
    }

    /// `name`, `name+0x10 [kvm]`, or the bare hex address when unknown.
    pub fn describe(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some(r) if r.offset == 0 => match r.module {
                Some(m) => format!("{} [{m}]", r.name),
                None => r.name.to_string(),
            },
            Some(r) => r.to_string(),
            None => format!("{addr:#x}"),
        }
    }

    /// Address of the text symbol `name` (the first one, if a static name repeats).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.text.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff8127e8e0 t kvm_mmu_notifier_invalidate_range_start
ffffffff8127ea00 t kvm_mmu_notifier_invalidate_range_end
ffffffff82000000 D some_data
ffffffffc0001000 t test_start\t[mmnotif_test]
";

    #[test]
    fn resolves_addresses_inside_functions() {
        let k = Kallsyms::parse(SAMPLE).unwrap();
        assert_eq!(k.describe(0xffffffff8127e8e0), "kvm_mmu_notifier_invalidate_range_start");
        assert_eq!(k.describe(0xffffffff8127e8f4), "kvm_mmu_notifier_invalidate_range_start+0x14");
        assert_eq!(k.describe(0xffffffffc0001000), "test_start [mmnotif_test]");
        assert_eq!(k.describe(0xffffffffc0001008), "test_start+0x8 [mmnotif_test]");
        // Below the first symbol, and far past the last one: no attribution.
        assert_eq!(k.describe(0x1000), "0x1000");
        assert_eq!(k.describe(0xffffffffc1001000), "0xffffffffc1001000");
        // Data symbols are not functions.
        assert_eq!(k.address_of("some_data"), None);
        assert_eq!(k.address_of("kvm_mmu_notifier_invalidate_range_end"), Some(0xffffffff8127ea00));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = Kallsyms::parse("ffffffff81000000 T ok\nzzzz T bad\n").unwrap_err();
        assert_eq!(err.to_string(), "/proc/kallsyms:2: address \"zzzz\": invalid digit found in string");
        let err = Kallsyms::parse("ffffffff81000000\n").unwrap_err();
        assert!(err.to_string().starts_with("/proc/kallsyms:1: expected"), "{err}");
    }
}
