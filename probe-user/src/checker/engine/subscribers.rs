//! Subscriber callbacks: list subscribers' starts and ends, paired within their outer range,
//! and interval subscribers' `invalidate`. Decides the notifier-* pairing rules,
//! failed-start-has-end-op, interval-blockable-false, and a subscriber's blockable-failure
//! and bad-errno.
use super::*;

impl Checker {
    pub(super) fn on_subscriber_start(&mut self, ev: &Event, s: &SubscriberStart, seq: u64) {
        let Some((range_ptr, subscriber)) = s.pairable() else {
            // Tracepoint mode: counted, never paired.
            self.stats.tracepoint_subscriber_call(&s.callback, s.mm, ev.pid, ev.comm.as_ref());
            return;
        };
        let row = self.stats.notifier_row(&s.callback, NotifierKind::List);
        self.stats.subscriber_call(s.mm);
        let key = RangeKey { tid: s.tid, range: range_ptr };
        let ret = s.ret.unwrap_or(0);

        match self.outer.get(&key).map(|r| r.phase) {
            Some(OuterPhase::Starting | OuterPhase::Open | OuterPhase::Unseen) => {}
            Some(OuterPhase::Failed { .. } | OuterPhase::Ended { .. }) => {
                // A new __start reusing the key whose entry was not traced.
                self.tasks.entry(s.tid).or_default().closing.retain(|r| *r != range_ptr);
                self.retire(key, ev.ts);
                self.insert_unseen(key, s.mm, ev);
            }
            None => self.insert_unseen(key, s.mm, ev),
        }
        if ret != 0
            && let Some(range) = self.outer.get_mut(&key)
        {
            range.itree.failed.get_or_insert_with(|| (s.callback.clone(), ret));
        }

        // A second start of the same subscriber on the same range: the first one's end is lost.
        let previous = self.outer.get_mut(&key).and_then(|r| {
            let pos = r.notifiers.iter().position(|n| n.subscriber == subscriber)?;
            Some(r.notifiers.swap_remove(pos))
        });
        if let Some(prev) = previous
            && prev.phase == NotifierPhase::Open
        {
            self.notifier_unpaired_start(
                key,
                &prev,
                ev.ts,
                "before the same subscriber was started again on this range",
            );
        }

        let Some(range) = self.outer.get_mut(&key) else { return };
        let blockable = range.args.map(|a| a.blockable);
        let phase = if ret != 0 {
            NotifierPhase::Failed
        } else if s.has_end == Some(false) {
            NotifierPhase::StartOnly
        } else {
            NotifierPhase::Open
        };
        range.notifiers.push(NotifierRecord {
            subscriber,
            callback: s.callback.clone(),
            row,
            phase,
            start_seq: Some(seq),
            start_ts: ev.ts,
            end_seq: None,
        });
        let outer_start_seq = range.start_seq;
        self.stats.subscriber_started(row, phase == NotifierPhase::Open, phase == NotifierPhase::Failed);
        if ret == 0 {
            return;
        }

        let events = [outer_start_seq, Some(seq)];
        let site = SubscriberSite { key, mm: s.mm, subscriber, callback: &s.callback };
        let early = self.kernel.early_subscriber_failure(s.callback.function());
        if blockable == Some(true) {
            if let Some(r) = self.outer.get_mut(&key) {
                r.reported_blockable_failure = true;
            }
            let v = subscriber_violation(
                RuleId::BlockableFailure,
                ev,
                &site,
                self.outer.get(&site.key),
                format!(
                    "{} failed with {} in a blockable range, where subscribers must not fail",
                    s.callback.function(),
                    errno_name(ret)
                ),
                events,
            );
            let hint = early.clone().unwrap_or_else(|| self.kernel.blockable_failure());
            self.emit_with_hint(v, Some(hint));
        }
        if ret != EAGAIN {
            if let Some(r) = self.outer.get_mut(&key) {
                r.reported_bad_errno = true;
            }
            self.bad_errno(ev, key, Some(&site), ret, events, early.clone());
        }
        if s.has_end == Some(true) {
            let v = subscriber_violation(
                RuleId::FailedStartHasEndOp,
                ev,
                &site,
                self.outer.get(&site.key),
                format!(
                    "{} failed its start but has an invalidate_range_end op, which will run for this range without a successful start",
                    s.callback.function()
                ),
                events,
            );
            let hint = self.kernel.failed_start_has_end_op();
            self.emit_with_hint(v, Some(hint));
        }
    }

    pub(super) fn insert_unseen(&mut self, key: RangeKey, mm: Addr, ev: &Event) {
        let notifiers = self.spare_notifier_lists.pop().unwrap_or_default();
        self.outer.insert(key, OuterRange::seen_at(OuterPhase::Unseen, mm, None, ev, notifiers));
        // Nothing will end it explicitly; it settles like a closed range.
        self.tasks.entry(key.tid).or_default().closing.push(key.range);
    }

    pub(super) fn on_subscriber_end(&mut self, ev: &Event, s: &SubscriberEnd, seq: u64) {
        self.stats.subscriber_call(s.mm);
        let key = RangeKey { tid: s.tid, range: s.range };
        let site = SubscriberSite { key, mm: s.mm, subscriber: s.subscriber, callback: &s.callback };
        let near_start = self.near_trace_start(ev.ts);
        // Statistics are per notifier, named by its start callback: a paired end counts on
        // the row of the start it closes, an unpaired one on the row its name points to.
        let row = match self.outer.get(&key).and_then(|r| r.notifiers.iter().find(|n| n.subscriber == s.subscriber)) {
            Some(n) => n.row,
            None => self.stats.notifier_row_for_end(&s.callback),
        };
        self.stats.subscriber_ended(row);
        let Some(range) = self.outer.get_mut(&key) else {
            if !self.probes.judges(&s.callback, None) {
                return;
            }
            self.notifier_unpaired_end(ev, &site, UnpairedEnd::NoRange, [None, Some(seq)], near_start, None);
            return;
        };
        let inside_start = range.phase == OuterPhase::Starting;
        if inside_start {
            range.saw_compensating_end = true;
        }
        let orphan_outer = range.start_seq.is_none();
        let ended_after_failure = range.ended_after_failure;
        // Counted either way; judged only if both of the subscriber's probes were live when
        // the range began.
        let judged = self.probes.judges(&s.callback, range.traced_start_ts());
        let found = range.notifier_mut(s.subscriber).map(|n| {
            let before = (n.phase, n.start_seq, n.end_seq, n.start_ts);
            if matches!(
                n.phase,
                NotifierPhase::Open | NotifierPhase::Failed | NotifierPhase::StartOnly | NotifierPhase::Ended
            ) {
                n.phase = NotifierPhase::Ended;
                n.end_seq = Some(seq);
            }
            before
        });
        match found {
            Some((NotifierPhase::Open, _, _, start_ts)) => {
                self.stats.subscriber_paired(row, ev.ts.saturating_sub(start_ts));
            }
            Some(_) if !judged => {}
            Some((NotifierPhase::Ended, start_seq, end_seq, _)) => {
                let v = subscriber_violation(
                    RuleId::NotifierDoubleEnd,
                    ev,
                    &site,
                    self.outer.get(&site.key),
                    format!(
                        "{} ran a second time for the same range, so whatever its start took (a count, a lock) is released twice",
                        s.callback.function()
                    ),
                    [start_seq, end_seq, Some(seq)],
                );
                let hint = ended_after_failure.then(|| self.kernel.double_end());
                self.emit_with_hint(v, hint);
            }
            Some((NotifierPhase::Failed, start_seq, _, _)) => {
                let hint = inside_start.then(|| self.kernel.compensating_end_to_failed());
                self.notifier_unpaired_end(ev, &site, UnpairedEnd::StartFailed, [start_seq, Some(seq)], false, hint);
            }
            Some((NotifierPhase::StartOnly, start_seq, _, _)) => {
                self.notifier_unpaired_end(ev, &site, UnpairedEnd::NoEndOp, [start_seq, Some(seq)], false, None);
            }
            None => {
                if let Some(range) = self.outer.get_mut(&key) {
                    range.notifiers.push(NotifierRecord {
                        subscriber: s.subscriber,
                        callback: s.callback.clone(),
                        row,
                        phase: NotifierPhase::Ended,
                        start_seq: None,
                        start_ts: ev.ts,
                        end_seq: Some(seq),
                    });
                }
                if !judged {
                    return;
                }
                let outer_seq = self.outer.get(&key).and_then(|r| r.start_seq);
                let pagemap = orphan_outer
                    && self.outer.get(&key).and_then(|r| r.args).is_some_and(|a| a.event == MmuEvent::ProtectionVma);
                let hint = pagemap.then(|| self.kernel.pagemap_scan());
                let may_predate = orphan_outer && near_start;
                self.notifier_unpaired_end(
                    ev,
                    &site,
                    UnpairedEnd::StartUnseen,
                    [outer_seq, Some(seq)],
                    may_predate,
                    hint,
                );
            }
        }
    }

    pub(super) fn on_interval(&mut self, ev: &Event, i: &IntervalInvalidate, seq: u64) {
        let site = SubscriberSite {
            key: RangeKey { tid: i.tid, range: i.range },
            mm: i.mm,
            subscriber: i.subscriber,
            callback: &i.callback,
        };
        self.interval_returned(ev, &site, i.ret, seq);
    }

    /// An interval subscriber's `invalidate` (or two-pass first pass) returned `ret`: true means
    /// it invalidated the range; false in a blockable range is the broken promise the kernel
    /// WARNs about and then ignores.
    pub(super) fn interval_returned(&mut self, ev: &Event, site: &SubscriberSite<'_>, ret: bool, seq: u64) {
        self.stats.interval_call(site.callback, site.mm, ret);
        if ret {
            if let Some(range) = self.outer.get_mut(&site.key) {
                range.itree.interval_succeeded(site.callback);
            }
            return;
        }
        let Some(range) = self.outer.get(&site.key) else { return };
        if range.args.map(|a| a.blockable) != Some(true) {
            return;
        }
        let v = subscriber_violation(
            RuleId::IntervalBlockableFalse,
            ev,
            site,
            Some(range),
            format!(
                "interval subscriber {} returned false (would block) in a blockable range; the kernel WARNs and carries on as if it had succeeded",
                site.callback.function()
            ),
            [range.start_seq, Some(seq)],
        );
        self.emit(v);
    }

    /// Subscriber callbacks became fully probed: from this event's `ts` on, their pairing is
    /// judged (see [`ProbeClock`]).
    pub(super) fn on_probes_live(&mut self, ev: &Event, p: &ProbesLive) {
        self.probes.announce(p.callbacks.iter().map(|c| &c.callback), ev.ts);
    }
}
