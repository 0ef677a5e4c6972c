//! The checker's streaming interface: what a live sink sees while a trace is still running.
use mmnotif_trace::{
    checker::{Checker, RuleId, SETTLE_NS},
    trace::*,
};

const MM: Addr = Addr(0xffff_8880_03a1_c000);
const KVM: Addr = Addr(0xffff_8880_06e1_0000);

fn header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.0"), |h, hook| h.with_attach(hook, "replay"))
}

fn call(tid: u32, range: u64, blockable: bool) -> RangeCall {
    RangeCall {
        tid,
        mm: MM,
        range: Addr(range),
        start: Addr(0x7f00_0000_0000),
        end: Addr(0x7f00_0000_1000),
        event: MmuEvent::Unmap,
        blockable,
    }
}

fn start(ts: u64, tid: u32, range: u64, blockable: bool) -> Event {
    let mut e = Event::new(ts, EventBody::RangeStart(call(tid, range, blockable)));
    e.pid = Some(tid);
    e.comm = Some(Comm::new("t"));
    e
}

fn ret(ts: u64, tid: u32, range: u64, ret: i64, itree: ItreeSnapshot) -> Event {
    Event::new(ts, EventBody::RangeStartRet(RangeStartRet { tid, range: Addr(range), ret, itree }))
}

fn end(ts: u64, tid: u32, range: u64) -> Event {
    Event::new(ts, EventBody::RangeEnd(RangeEnd { call: call(tid, range, true), itree: ItreeSnapshot::default() }))
}

fn kvm_start(ts: u64, tid: u32, range: u64) -> Event {
    Event::new(
        ts,
        EventBody::SubscriberStart(SubscriberStart {
            tid,
            mm: MM,
            range: Some(Addr(range)),
            subscriber: Some(KVM),
            callback: Symbol::new("kvm_mmu_notifier_invalidate_range_start"),
            has_end: Some(true),
            ret: Some(0),
            start: None,
            end: None,
        }),
    )
}

fn rules(v: &[mmnotif_trace::checker::Violation]) -> Vec<RuleId> {
    v.iter().map(|v| v.rule).collect()
}

#[test]
fn open_ranges_expose_their_start_time_for_an_age() {
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, true));
    c.push(&kvm_start(1_100, 7, 0x100));
    c.push(&ret(1_200, 7, 0x100, 0, ItreeSnapshot::default()));
    let open = c.open_ranges();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].tid, 7);
    assert_eq!(open[0].age_ns(5_000_001_000), 5_000_000_000);
    assert_eq!(open[0].open_subscribers.len(), 1);
    c.push(&end(2_000, 7, 0x100));
    assert!(c.open_ranges().is_empty());
}

#[test]
fn a_lost_subscriber_end_is_reported_while_the_trace_goes_on() {
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, true));
    c.push(&kvm_start(1_100, 7, 0x100));
    c.push(&ret(1_200, 7, 0x100, 0, ItreeSnapshot::default()));
    assert!(c.push(&end(2_000, 7, 0x100)).is_empty());
    // KVM's end never comes; once trace time has moved well past, the range is settled.
    let other = start(2_000 + 2 * SETTLE_NS, 8, 0x200, true);
    assert_eq!(rules(c.push(&other)), vec![RuleId::NotifierUnpairedStart]);
}

#[test]
fn task_exit_reports_an_open_range_at_once() {
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, true));
    c.push(&ret(1_200, 7, 0x100, 0, ItreeSnapshot::default()));
    let exit = Event::new(3_000, EventBody::TaskExit(TaskExit { tid: 7 }));
    let found = c.push(&exit).to_vec();
    assert_eq!(rules(&found), vec![RuleId::UnpairedStart]);
    assert_eq!(found[0].ts, 3_000);
    assert!(found[0].explanation.contains("before the task exited"), "{}", found[0].explanation);
    assert!(c.finish().violations.len() == 1);
}

#[test]
fn end_of_trace_conclusions_carry_the_last_timestamp() {
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, true));
    c.push(&ret(9_000, 7, 0x100, 0, ItreeSnapshot::default()));
    let report = c.finish();
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].ts, 9_000);
}

#[test]
fn itree_leak_waits_for_other_tasks_with_the_same_timestamp() {
    let leaky = ItreeSnapshot { active: Some(1), seq: Some(9) };
    // Task 8's range on the same mm was recorded at the same ts, but written after task 7's
    // failed return: the active count is task 8's, not a leak.
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, false));
    c.push(&ret(2_000, 7, 0x100, -11, leaky));
    c.push(&start(2_000, 8, 0x200, true));
    assert!(c.push(&ret(3_000, 8, 0x200, 0, leaky)).is_empty());
    c.push(&end(4_000, 8, 0x200));
    assert!(c.finish().violations.is_empty());

    // Alone, the same failed return is a leak, reported once trace time moves on.
    let mut c = Checker::new(&header());
    c.push(&start(1_000, 7, 0x100, false));
    assert!(c.push(&ret(2_000, 7, 0x100, -11, leaky)).is_empty());
    assert_eq!(rules(c.push(&start(3_000, 9, 0x300, true))), vec![RuleId::ItreeLeak]);
}

#[test]
fn rules_without_their_hooks_report_nothing() {
    // Only the outer hooks: subscriber rules are not checked and stay silent.
    let header = Header::new("6.12.0")
        .with_attach(Hook::RangeStart, "kprobe")
        .with_attach(Hook::RangeEnd, "kprobe")
        .with_attach(Hook::SubscriberEnd, "unavailable: module not loaded");
    let mut c = Checker::new(&header);
    c.push(&start(1_000, 7, 0x100, true));
    c.push(&kvm_start(1_100, 7, 0x100));
    c.push(&end(2_000, 7, 0x100));
    let report = c.finish();
    assert!(report.violations.is_empty(), "{report}");
    assert!(!report.checked.contains(&RuleId::NotifierUnpairedStart));
    let reason = &report.not_checked.iter().find(|n| n.rule == RuleId::NotifierUnpairedStart).expect("listed").reason;
    assert!(reason.contains("subscriber_start, subscriber_end (module not loaded)"), "{reason}");
    // Without the return probe a start counts as open from its entry, but unpaired-start
    // itself needs the return to tell failed starts apart, so it is not checked either.
    assert!(!report.checked.contains(&RuleId::UnpairedStart));
    assert!(report.checked.contains(&RuleId::UnpairedEnd));
}

fn interval(ts: u64, tid: u32, range: u64) -> Event {
    Event::new(
        ts,
        EventBody::IntervalInvalidate(IntervalInvalidate {
            tid,
            range: Addr(range),
            mm: MM,
            subscriber: Addr(0xffff_8880_0c44_0100),
            callback: Symbol::new("amdgpu_hmm_invalidate_gfx [amdgpu]"),
            cur_seq: 9,
            ret: true,
        }),
    )
}

fn failing_list_start(ts: u64, tid: u32, range: u64) -> Event {
    let mut e = kvm_start(ts, tid, range);
    if let EventBody::SubscriberStart(s) = &mut e.body {
        s.callback = Symbol::new("nouveau_svmm_invalidate_range_start [nouveau]");
        s.subscriber = Some(Addr(0xffff_8880_0a22_0040));
        s.has_end = Some(false);
        s.ret = Some(-11);
    }
    e
}

/// The whole leak: the owner names the mm (its own blockable ranges), the reaper leaks one
/// range per failed start, the violation comes once, and the report keeps the running size
/// and the kernel's own count.
#[test]
fn an_itree_leak_is_reported_once_with_its_owner_subscribers_and_size() {
    for overlapping in [true, false] {
        let mut c = Checker::new(&header());
        c.push(&start(500, 40, 0x50, true)); // the owner, blockable
        c.push(&ret(510, 40, 0x50, 0, ItreeSnapshot { active: Some(1), seq: Some(8) }));
        c.push(&end(520, 40, 0x50));
        let mut found = Vec::new();
        for i in 0..3u64 {
            let ts = 1_000 + i * 1_000;
            let mut reaper = start(ts, 61, 0x100, false);
            reaper.comm = Some(Comm::new("oom_reaper"));
            found.extend(rules(c.push(&reaper)));
            if overlapping {
                c.push(&interval(ts + 100, 61, 0x100));
            }
            c.push(&failing_list_start(ts + 200, 61, 0x100));
            let seq = if overlapping { 9 } else { 8 };
            found.extend(rules(c.push(&ret(
                ts + 300,
                61,
                0x100,
                -11,
                ItreeSnapshot { active: Some(i + 1), seq: Some(seq) },
            ))));
        }
        found.extend(rules(c.push(&start(9_000, 40, 0x60, true))));
        let report = c.finish();
        assert_eq!(found, vec![RuleId::ItreeLeak], "once, live, for the mm (overlapping {overlapping})");
        let v = &report.violations[0];
        assert!(v.explanation.contains("of pid 40 (t)"), "the owner, not the reaper: {}", v.explanation);
        assert!(v.explanation.contains("(by pid 61, oom_reaper)"), "{}", v.explanation);
        assert!(v.explanation.contains("nouveau_svmm_invalidate_range_start [nouveau] failed"), "{}", v.explanation);
        assert_eq!(v.explanation.contains("amdgpu_hmm_invalidate_gfx [amdgpu] had succeeded"), overlapping);
        let hint = v.hint.as_deref().unwrap_or_default();
        assert_eq!(hint.contains("overlapping or not"), !overlapping, "{hint}");
        let [leak] = report.itree_leaks.as_slice() else { panic!("{:?}", report.itree_leaks) };
        assert_eq!((leak.leaked_ranges, leak.kernel_active_ranges), (3, Some(3)));
        assert_eq!(leak.overlapped(), overlapping);
        assert_eq!(leak.by_comm.as_ref().map(Comm::as_str), Some("oom_reaper"));
    }
}

const XE: Addr = Addr(0xffff_8880_0c44_0100);

fn twopass_start(ts: u64, tid: u32, range: u64, finish: u64, ret: bool) -> Event {
    Event::new(
        ts,
        EventBody::IntervalStart(IntervalStart {
            tid,
            mm: MM,
            range: Addr(range),
            subscriber: XE,
            callback: Symbol::new("xe_vma_userptr_invalidate_start"),
            cur_seq: 7,
            finish: Addr(finish),
            ret,
        }),
    )
}

fn twopass_finish(ts: u64, tid: u32, finish: u64) -> Event {
    Event::new(
        ts,
        EventBody::IntervalFinish(IntervalFinish {
            tid,
            mm: MM,
            subscriber: XE,
            callback: Symbol::new("xe_vma_userptr_invalidate_finish"),
            finish: Addr(finish),
        }),
    )
}

#[test]
fn a_missing_finish_is_reported_when_its_start_returns() {
    let mut c = Checker::new(&header());
    assert!(c.push(&start(1000, 7, 0x100, true)).is_empty());
    assert!(c.push(&twopass_start(1100, 7, 0x100, 0xf1, true)).is_empty());
    // Returned true without a finish struct: nothing owed.
    assert!(c.push(&twopass_start(1150, 7, 0x100, 0, true)).is_empty());
    let got = c.push(&ret(1200, 7, 0x100, 0, ItreeSnapshot::default())).to_vec();
    assert_eq!(rules(&got), vec![RuleId::IntervalFinishMissing]);
    assert_eq!(got[0].subscriber, Some(XE));
    assert!(got[0].explanation.contains("0xf1"), "{}", got[0].explanation);
    assert!(c.push(&end(1300, 7, 0x100)).is_empty());
    let report = c.finish();
    assert_eq!(report.violations.len(), 1, "{report}");
}

#[test]
fn a_finish_pairs_with_its_start_and_a_false_start_queues_nothing() {
    let mut c = Checker::new(&header());
    c.push(&start(1000, 7, 0x100, false));
    c.push(&twopass_start(1100, 7, 0x100, 0xf1, true));
    assert!(c.push(&twopass_finish(1150, 7, 0xf1)).is_empty());
    // Set *finish but returned false: the kernel drops that finish, so running it is wrong.
    assert!(c.push(&twopass_start(1160, 7, 0x100, 0xf2, false)).is_empty());
    let got = c.push(&twopass_finish(1170, 7, 0xf2)).to_vec();
    assert_eq!(rules(&got), vec![RuleId::IntervalFinishUnstarted]);
    // The same pointer twice: the second finish has no start left to pair with.
    c.push(&twopass_start(1180, 7, 0x100, 0xf3, true));
    assert!(c.push(&twopass_finish(1190, 7, 0xf3)).is_empty());
    assert_eq!(rules(c.push(&twopass_finish(1195, 7, 0xf3))), vec![RuleId::IntervalFinishUnstarted]);
    // The reaper's non-blocking CLEAR failing with -EAGAIN after the finish pass: nothing else.
    assert!(c.push(&ret(1200, 7, 0x100, -11, ItreeSnapshot::default())).is_empty());
    assert_eq!(c.finish().violations.len(), 2);
}

#[test]
fn two_pass_rules_are_checked_where_the_kernel_cannot_have_the_api() {
    let without = |kernel: &str| {
        Hook::ALL
            .into_iter()
            .filter(|h| !matches!(h, Hook::IntervalStart | Hook::IntervalFinish))
            .fold(Header::new(kernel), |h, hook| h.with_attach(hook, "replay"))
    };
    let twopass = [RuleId::IntervalFinishMissing, RuleId::IntervalFinishUnstarted];
    // A recording of a pre-7.2 kernel that does not name the hooks: nothing to miss.
    let old = Checker::new(&without("6.12.57+deb13-amd64"));
    assert!(twopass.iter().all(|r| old.rules().is_checked(*r)));
    // On 7.2 the same header means the callbacks went unobserved.
    let new = Checker::new(&without("7.2.13+deb14-amd64"));
    assert!(twopass.iter().all(|r| !new.rules().is_checked(*r)));
    // What the tracer writes itself where the kernel's BTF lacks the ops.
    let absent = without("7.2.13+deb14-amd64")
        .with_attach(Hook::IntervalStart, "absent: no invalidate_start")
        .with_attach(Hook::IntervalFinish, "absent: no invalidate_finish");
    assert_eq!(absent.attach_state(Hook::IntervalStart), AttachState::Absent(Some("no invalidate_start")));
    let absent = Checker::new(&absent);
    assert!(twopass.iter().all(|r| absent.rules().is_checked(*r)));
}

fn lost(ts: u64, count: u64) -> Event {
    Event::new(ts, EventBody::Lost(Lost { count }))
}

/// When an unpaired end is found at 3 s into the trace.
const UNPAIRED_END_TS: u64 = 3_000_000_000;

fn unpaired_end_notes(loss_from: u64) -> Vec<String> {
    let mut c = Checker::new(&header());
    // A whole range first, so the trace does not just begin at the end below.
    c.push(&start(1_000, 8, 0x200, true));
    c.push(&ret(1_100, 8, 0x200, 0, ItreeSnapshot::default()));
    c.push(&end(1_200, 8, 0x200));
    // An end whose start the kernel never let the tracer see.
    let found = c.push(&end(UNPAIRED_END_TS, 7, 0x100)).to_vec();
    assert_eq!(rules(&found), vec![RuleId::UnpairedEnd]);
    assert!(found[0].notes.is_empty(), "{:?}", found[0].notes);
    // The session reads the kernel's counters after the fact and stamps the loss with the
    // earliest time it can have happened.
    c.push(&lost(loss_from, 1));
    let report = c.finish();
    report.violations.iter().find(|v| v.rule == RuleId::UnpairedEnd).map(|v| v.notes.clone()).unwrap_or_default()
}

#[test]
fn a_loss_counted_after_a_violation_it_may_explain_marks_that_violation() {
    let notes = unpaired_end_notes(UNPAIRED_END_TS - 500_000_000);
    assert!(notes.iter().any(|n| n.contains("lost")), "{notes:?}");
}

#[test]
fn a_loss_that_began_after_a_violation_leaves_it_as_it_was() {
    let notes = unpaired_end_notes(UNPAIRED_END_TS + 500_000_000);
    assert!(notes.is_empty(), "{notes:?}");
}
