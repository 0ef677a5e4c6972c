//! Label values from trace data, each drawn from a bounded set.

use crate::{
    checker::NotifierKind,
    errno::errno_symbol,
    trace::{MmuEvent, Symbol},
};

/// `mmu_notifier_event` names, plus `unknown` for values outside the enum.
pub const EVENT_LABELS: [&str; MmuEvent::KNOWN.len() + 1] = {
    let mut labels = ["unknown"; MmuEvent::KNOWN.len() + 1];
    let mut i = 0;
    while i < MmuEvent::KNOWN.len() {
        if let Some(name) = MmuEvent::KNOWN[i].name() {
            labels[i] = name;
        }
        i += 1;
    }
    labels
};

/// Index into [`EVENT_LABELS`] (its order is the enum's numbering; called per event).
pub fn event_index(event: MmuEvent) -> usize {
    match event.name() {
        Some(_) => event.raw() as usize,
        None => EVENT_LABELS.len() - 1,
    }
}

pub fn blockable_label(blockable: bool) -> &'static str {
    if blockable { "true" } else { "false" }
}

/// `EAGAIN` for known errnos, the number for other kernel errnos (-4095..-1), else `invalid`:
/// a garbage return value must not mint a new series each time.
pub fn errno_label(ret: i64) -> String {
    match errno_symbol(ret) {
        Some(name) => name.to_owned(),
        None if (-4095..=-1).contains(&ret) => ret.to_string(),
        None => "invalid".to_owned(),
    }
}

/// The callback's function name; `unresolved` when the kernel address had no symbol (a raw
/// address is never a label value), `other` for the checker's overflow row.
pub fn callback_label(callback: &Symbol) -> String {
    let function = callback.function();
    if function.is_empty() || function.starts_with("0x") {
        "unresolved".to_owned()
    } else if function.starts_with('(') {
        "other".to_owned()
    } else {
        function.to_owned()
    }
}

pub fn kind_label(kind: NotifierKind) -> &'static str {
    match kind {
        NotifierKind::List => "list",
        NotifierKind::Interval => "interval",
        NotifierKind::Tracepoint => "tracepoint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_bounded_and_never_addresses() {
        for event in MmuEvent::KNOWN {
            assert_eq!(Some(EVENT_LABELS[event_index(event)]), event.name(), "{event}");
        }
        assert_eq!(EVENT_LABELS[event_index(MmuEvent::ProtectionPage)], "protection_page");
        assert_eq!(EVENT_LABELS[event_index(MmuEvent::Other(99))], "unknown");
        assert_eq!(errno_label(-11), "EAGAIN");
        assert_eq!(errno_label(-5), "-5");
        assert_eq!(errno_label(12345), "invalid");
        assert_eq!(errno_label(-100_000), "invalid");
        assert_eq!(
            callback_label(&Symbol::new("kvm_mmu_notifier_invalidate_range_start+0x0/0x1a0 [kvm]")),
            "kvm_mmu_notifier_invalidate_range_start"
        );
        assert_eq!(callback_label(&Symbol::new("0xffffffffc0a01230")), "unresolved");
        assert_eq!(callback_label(&Symbol::new("(other callbacks)")), "other");
    }
}
