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

/// Text symbols sorted by address, and where each loaded module's memory ends.
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    text: Vec<Symbol>,
    /// (module, end of its core memory) from /proc/modules: an address past a module's last
    /// symbol but outside the module (a BPF trampoline or program in the module area) is not
    /// that module's.
    module_ends: Vec<(String, u64)>,
    /// `_etext`: core kernel text ends there.
    etext: Option<u64>,
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
        let mut syms = Self::parse(&text)?;
        if !syms.text.is_empty() && syms.text.iter().all(|s| s.addr == 0) {
            return Err(KallsymsError::Restricted);
        }
        // Without it, attribution is only bounded by MAX_FUNCTION_SIZE.
        if let Ok(modules) = std::fs::read_to_string("/proc/modules") {
            syms.set_modules(&modules);
        }
        Ok(syms)
    }

    /// Reads module extents from /proc/modules text (`name size refs deps state address ...`);
    /// lines it cannot read (or hidden addresses) only leave that module unbounded.
    pub fn set_modules(&mut self, proc_modules: &str) {
        self.module_ends = proc_modules
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let size: u64 = f.get(1)?.parse().ok()?;
                let base = u64::from_str_radix(f.get(5)?.trim_start_matches("0x"), 16).ok().filter(|b| *b != 0)?;
                Some((f[0].to_string(), base.checked_add(size)?))
            })
            .collect();
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
        let etext = syms.iter().find(|s| s.name == "_etext" && s.module.is_none()).map(|s| s.addr);
        Ok(Kallsyms { text: syms, module_ends: Vec::new(), etext })
    }

    /// The function containing `addr`, if any.
    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let idx = self.text.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let sym = &self.text[idx];
        let offset = addr - sym.addr;
        if offset > MAX_FUNCTION_SIZE {
            return None;
        }
        let past_end = match &sym.module {
            Some(m) => self.module_ends.iter().any(|(name, end)| name == m && addr >= *end),
            None => self.etext.is_some_and(|e| sym.addr <= e && addr >= e),
        };
        if past_end {
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
    fn addresses_past_a_module_or_the_kernel_text_are_not_attributed() {
        let mut k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81e00000 T last_fn\nffffffff82000000 T _etext\n\
             ffffffffa0000000 t mmnt_start\t[mmnotif_test]\nffffffffa0001000 t cleanup_module\t[mmnotif_test]\n",
        )
        .unwrap();
        // A trampoline above the module, before /proc/modules is known: attributed (bounded only
        // by the maximum function size).
        assert_eq!(k.describe(0xffffffffa000935a), "cleanup_module+0x835a [mmnotif_test]");
        k.set_modules("mmnotif_test 20480 0 - Live 0xffffffffa0000000 (OE)\nhidden 4096 0 - Live 0x0000000000000000\n");
        assert_eq!(k.describe(0xffffffffa000935a), "0xffffffffa000935a");
        assert_eq!(k.describe(0xffffffffa0001010), "cleanup_module+0x10 [mmnotif_test]");
        assert_eq!(k.describe(0xffffffff81e00010), "last_fn+0x10");
        assert_eq!(k.describe(0xffffffff82000010), "0xffffffff82000010");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = Kallsyms::parse("ffffffff81000000 T ok\nzzzz T bad\n").unwrap_err();
        assert_eq!(err.to_string(), "/proc/kallsyms:2: address \"zzzz\": invalid digit found in string");
        let err = Kallsyms::parse("ffffffff81000000\n").unwrap_err();
        assert!(err.to_string().starts_with("/proc/kallsyms:1: expected"), "{err}");
    }
}
