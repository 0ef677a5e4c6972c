//! How each hook ended up attached (or why it did not): reported by `probe`, in the stream's
//! header and wherever results are shown.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use crate::trace::Hook;

/// An attach method, named as in the trace header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Fentry,
    Fexit,
    Kprobe,
    Kretprobe,
    TpBtf,
    RawTp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Fentry => "fentry",
            Method::Fexit => "fexit",
            Method::Kprobe => "kprobe",
            Method::Kretprobe => "kretprobe",
            Method::TpBtf => "tp_btf",
            Method::RawTp => "raw_tp",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed try, kept so reports can say why a method was not used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub method: Method,
    pub reason: String,
}

/// The outcome for one hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookStatus {
    /// Serialized as its name in the trace header's `attach` map.
    pub hook: Hook,
    pub method: Option<Method>,
    pub refused: Vec<Refusal>,
    /// The kernel has nothing for this hook to observe (e.g. the two-pass interval callbacks
    /// before 7.2), and why: no event of it can occur, which is not the same as missing them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absent: Option<String>,
}

impl HookStatus {
    pub fn new(hook: Hook) -> Self {
        HookStatus { hook, method: None, refused: Vec::new(), absent: None }
    }

    /// `tp_btf`, `absent: <why>`, or `unavailable: <why each method failed>`.
    pub fn describe(&self) -> String {
        match self.method {
            Some(m) => m.to_string(),
            None if self.absent.is_some() => format!("absent: {}", self.absent.as_deref().unwrap_or_default()),
            None if self.refused.is_empty() => "unavailable: not implemented for this attach set".into(),
            None => {
                let why: Vec<String> = self.refused.iter().map(|r| format!("{}: {}", r.method, r.reason)).collect();
                format!("unavailable: {}", why.join("; "))
            }
        }
    }
}

/// Every hook of a tracing session, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttachReport {
    pub hooks: Vec<HookStatus>,
    /// Whether an fentry and a kprobe program load and attach on the start function, each tried
    /// once per object: 5.10 cannot attach a tracing program again after detaching it.
    #[serde(skip)]
    pub methods: MethodChecks,
}

/// The outcome of trying each function-probe method once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodChecks {
    pub fentry: Result<(), String>,
    pub kprobe: Result<(), String>,
}

impl Default for MethodChecks {
    fn default() -> Self {
        let untried = || Err("not tried".to_string());
        MethodChecks { fentry: untried(), kprobe: untried() }
    }
}

impl AttachReport {
    pub fn get(&self, hook: Hook) -> Option<&HookStatus> {
        self.hooks.iter().find(|h| h.hook == hook)
    }

    /// The trace header's `attach` map.
    pub fn header_map(&self) -> BTreeMap<String, String> {
        self.hooks.iter().map(|h| (h.hook.as_str().to_owned(), h.describe())).collect()
    }

    /// True when the outer start/end pair can be observed (the product's core).
    pub fn pairing_available(&self) -> bool {
        Hook::PAIRING.into_iter().all(|h| self.get(h).is_some_and(|s| s.method.is_some()))
    }

    /// One line for banners: "degraded: ..." or the outer hooks' methods.
    pub fn summary(&self) -> String {
        let attached: Vec<String> =
            self.hooks.iter().filter_map(|h| h.method.map(|m| format!("{}={}", h.hook, m))).collect();
        let mode = if self.pairing_available() { "full" } else { "degraded: no start/end probes" };
        format!("{mode}; attached {}", if attached.is_empty() { "nothing".into() } else { attached.join(", ") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_attached_and_refused_hooks() {
        let mut kvm = HookStatus::new(Hook::KvmUnmapHvaRange);
        kvm.method = Some(Method::TpBtf);
        let mut start = HookStatus::new(Hook::RangeStart);
        start.refused.push(Refusal { method: Method::Fentry, reason: "EPERM".into() });
        start.refused.push(Refusal { method: Method::Kprobe, reason: "no kprobe PMU".into() });
        let report = AttachReport { hooks: vec![start, kvm], ..AttachReport::default() };
        let map = report.header_map();
        assert_eq!(map["kvm_unmap_hva_range"], "tp_btf");
        assert_eq!(map["range_start"], "unavailable: fentry: EPERM; kprobe: no kprobe PMU");
        assert!(!report.pairing_available());
        assert_eq!(report.summary(), "degraded: no start/end probes; attached kvm_unmap_hva_range=tp_btf");
    }

    #[test]
    fn a_hook_with_nothing_to_observe_is_absent_not_unavailable() {
        let mut finish = HookStatus::new(Hook::IntervalFinish);
        finish.absent = Some("no invalidate_finish before 7.2".into());
        let report = AttachReport { hooks: vec![finish], ..AttachReport::default() };
        assert_eq!(report.header_map()["interval_finish"], "absent: no invalidate_finish before 7.2");
    }
}
