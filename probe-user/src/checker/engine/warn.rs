//! Events that pair with nothing: a kernel WARN from mmu-notifier code (kernel-warn) and
//! lost events (events-lost).
use super::*;

impl Checker {
    pub(super) fn on_warn(&mut self, ev: &Event, w: &Warn, seq: u64) {
        self.stats.totals.warns += 1;
        let is_warning = matches!(w.detector, None | Some(Detector::Warning));
        if !is_warning || !self.mmu_notifier_related(&w.caller) {
            self.stats.totals.unrelated_warns += 1;
            return;
        }
        let mut v = event_violation(RuleId::KernelWarn, ev, format!("the kernel WARNed at {} while tracing", w.caller));
        v.callback = Some(w.caller.clone());
        v.events = vec![seq];
        let hint = self.kernel.kernel_warn(w.caller.function());
        self.emit_with_hint(v, hint);
    }

    pub(super) fn mmu_notifier_related(&self, caller: &Symbol) -> bool {
        let f = caller.function();
        ["__mmu_notifier_", "mn_", "mmu_notifier_", "mmu_interval_", "kvm_mmu_notifier_"]
            .iter()
            .any(|p| f.starts_with(p))
            || self.stats.knows_callback(f)
    }

    /// A `lost` event is stamped with the earliest time its losses can have happened (a live
    /// session reads the kernel's counters at intervals): what was found from then on, before
    /// this event arrived, may be their artefact too.
    pub(super) fn on_lost(&mut self, ev: &Event, count: u64, seq: u64) {
        self.lost = self.lost.saturating_add(count);
        self.stats.totals.lost = self.lost;
        for v in self.stored.iter_mut().filter(|v| v.ts >= ev.ts && v.rule.affected_by_loss()) {
            if !v.notes.iter().any(|n| n == LOSS_NOTE) {
                v.notes.push(LOSS_NOTE.into());
                self.after_loss[v.rule.index()] += 1;
            }
        }
        let mut v = event_violation(
            RuleId::EventsLost,
            ev,
            format!(
                "{count} events were lost before reaching userspace, so pairing after this point may be incomplete"
            ),
        );
        v.events = vec![seq];
        self.emit(v);
    }
}
