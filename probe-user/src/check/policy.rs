//! What the CI run tolerates: `--allow RULE[:callback]`, `--fail-on RULE,...`, `--allow-lost`.

use std::fmt;

use crate::checker::{RuleId, Violation};

/// A known issue to tolerate: every violation of `rule`, or only those naming `callback`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    pub rule: RuleId,
    /// A function name (`kvm_mmu_notifier_invalidate_range_start`) or a full symbol with its
    /// offset; matched against the violation's callback (for `kernel-warn`, the WARN's caller).
    pub callback: Option<String>,
}

impl Allow {
    pub fn parse(spec: &str) -> Result<Allow, String> {
        let (rule, callback) = match spec.split_once(':') {
            Some((rule, callback)) => {
                let callback = callback.trim();
                if callback.is_empty() {
                    return Err(format!("{spec:?}: nothing after ':' (expected RULE or RULE:CALLBACK)"));
                }
                (rule, Some(callback.to_owned()))
            }
            None => (spec, None),
        };
        Ok(Allow { rule: parse_rule(rule.trim())?, callback })
    }

    pub fn matches(&self, v: &Violation) -> bool {
        if v.rule != self.rule {
            return false;
        }
        match (&self.callback, &v.callback) {
            (None, _) => true,
            (Some(want), Some(got)) => got.function() == want || got.as_str() == want,
            (Some(_), None) => false,
        }
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.callback {
            Some(cb) => write!(f, "{}:{cb}", self.rule),
            None => write!(f, "{}", self.rule),
        }
    }
}

/// A rule id as typed on the command line.
pub fn parse_rule(name: &str) -> Result<RuleId, String> {
    RuleId::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown rule id {name:?} (rule ids: {})", known.join(", "))
    })
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<Allow>,
    /// Only violations of these rules fail the run; empty: every rule does.
    pub fail_on: Vec<RuleId>,
    /// Lost events do not make the verdict incomplete (they are still reported).
    pub allow_lost: bool,
}

impl Policy {
    /// `--allow events-lost` means the same as `--allow-lost`.
    pub fn new(allow: Vec<Allow>, fail_on: Vec<RuleId>, allow_lost: bool) -> Policy {
        let allow_lost = allow_lost || allow.iter().any(|a| a.rule == RuleId::EventsLost);
        Policy { allow, fail_on, allow_lost }
    }

    pub fn fails_on(&self, rule: RuleId) -> bool {
        self.fail_on.is_empty() || self.fail_on.contains(&rule)
    }

    /// The first `--allow` that tolerates `v`.
    pub fn allowance(&self, v: &Violation) -> Option<&Allow> {
        self.allow.iter().find(|a| a.matches(v))
    }

    /// Whether every violation of `rule` is allowed, whatever its callback.
    pub fn allows_all_of(&self, rule: RuleId) -> Option<&Allow> {
        self.allow.iter().find(|a| a.rule == rule && a.callback.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Symbol;

    fn violation(rule: RuleId, callback: Option<&str>) -> Violation {
        let mut v = Violation::new(rule, 1, "x".into());
        v.callback = callback.map(Symbol::new);
        v
    }

    #[test]
    fn allow_specs_parse_and_match_by_function_or_full_symbol() {
        let any = Allow::parse("kernel-warn").unwrap();
        assert_eq!(any, Allow { rule: RuleId::KernelWarn, callback: None });
        assert!(any.matches(&violation(RuleId::KernelWarn, None)));
        assert!(!any.matches(&violation(RuleId::UnpairedEnd, None)));

        let by_fn = Allow::parse("kernel-warn:__mmu_notifier_invalidate_range_start").unwrap();
        assert_eq!(by_fn.to_string(), "kernel-warn:__mmu_notifier_invalidate_range_start");
        assert!(by_fn.matches(&violation(RuleId::KernelWarn, Some("__mmu_notifier_invalidate_range_start+0x1c4"))));
        assert!(!by_fn.matches(&violation(RuleId::KernelWarn, Some("kvm_mmu_notifier_invalidate_range_end+0x10"))));
        assert!(!by_fn.matches(&violation(RuleId::KernelWarn, None)), "no callback, no match");

        let exact = Allow::parse("kernel-warn:__mmu_notifier_invalidate_range_start+0x1c4").unwrap();
        assert!(exact.matches(&violation(RuleId::KernelWarn, Some("__mmu_notifier_invalidate_range_start+0x1c4"))));
        assert!(!exact.matches(&violation(RuleId::KernelWarn, Some("__mmu_notifier_invalidate_range_start+0x20"))));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(
            Allow::parse("kernel-warn:").unwrap_err(),
            "\"kernel-warn:\": nothing after ':' (expected RULE or RULE:CALLBACK)"
        );
        let err = Allow::parse("no-such-rule:foo").unwrap_err();
        assert!(err.starts_with("unknown rule id \"no-such-rule\" (rule ids: unpaired-start, "), "{err}");
        assert!(parse_rule("events-lost").is_ok());
    }

    #[test]
    fn fail_on_narrows_and_allow_events_lost_means_allow_lost() {
        let all = Policy::default();
        assert!(all.fails_on(RuleId::NestingOrder));
        let narrow = Policy::new(vec![], vec![RuleId::UnpairedStart], false);
        assert!(narrow.fails_on(RuleId::UnpairedStart) && !narrow.fails_on(RuleId::NestingOrder));
        assert!(Policy::new(vec![Allow::parse("events-lost").unwrap()], vec![], false).allow_lost);
        assert!(!Policy::new(vec![Allow::parse("kernel-warn").unwrap()], vec![], false).allow_lost);
    }
}
