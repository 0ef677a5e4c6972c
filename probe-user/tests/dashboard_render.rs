//! The dashboard drawn into ratatui's TestBackend from states built by feeding corpus traces
//! through the real checker: what a person would read on each pane, at the 80×24 minimum.

mod common;

use std::{fs::File, io::BufReader, sync::Arc};

use common::corpus;
use mmnotif_trace::{
    dashboard::{Model, Pane, Snapshot, Ui, snapshot::Inventory, view},
    inventory::{BlockedTask, IntervalSubscriber, KvmState, MmInventory, Subscriber},
    trace::{
        Addr, Comm, Event, EventBody, Header, Hook, ItreeSnapshot, MmuEvent, RangeCall, RangeStartRet, TraceReader,
    },
};
use ratatui::{
    Terminal,
    backend::TestBackend,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
};

/// The model after every event of a corpus trace; `finish` also draws end-of-trace conclusions.
fn model_of(name: &str, finish: bool) -> Model {
    let path = corpus(name);
    let reader = TraceReader::new(BufReader::new(File::open(&path).expect("corpus file"))).expect("header");
    let mut model = Model::new(reader.header(), format!("replay {name}"), None);
    for event in reader {
        model.ingest(&event.expect("valid corpus event"));
    }
    if finish {
        model.finish();
    }
    model
}

fn render(ui: &Ui, s: &Snapshot, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| view::draw(f, ui, s)).expect("draw");
    let buffer = terminal.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

fn key(ui: &mut Ui, s: &Snapshot, code: KeyCode) {
    ui.handle_key(KeyEvent::new(code, KeyModifiers::NONE), s);
}

fn full_header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.43+deb13-amd64"), |h, hook| h.with_attach(hook, "fentry"))
}

#[test]
fn empty_state_shows_zeros_and_placeholders_without_banners() {
    let snap = Model::new(&full_header(), "live", Some(5_000_000_000)).snapshot();
    let mut ui = Ui::default();
    let screen = render(&ui, &snap, 80, 24);
    assert!(screen.contains("kernel 6.12.43+deb13-amd64"), "{screen}");
    assert!(screen.contains("events 0 · 0/s · lost 0 · open ranges 0"), "{screen}");
    assert!(screen.contains("no violations so far"), "{screen}");
    assert!(!screen.contains("DEGRADED"), "full attach set: {screen}");
    assert!(!screen.contains("were lost"), "{screen}");
    for (pane, text) in [
        (Pane::Notifiers, "no subscriber callback seen yet"),
        (Pane::Processes, "no process seen yet"),
        (Pane::Events, "no events yet"),
    ] {
        key(&mut ui, &snap, KeyCode::Tab);
        assert_eq!(ui.pane, pane);
        let screen = render(&ui, &snap, 80, 24);
        assert!(screen.contains(text), "{pane:?}: {screen}");
    }
}

#[test]
fn degraded_trace_shows_the_banner_and_each_hooks_method() {
    let snap = model_of("tracepoint-mode.jsonl", false).snapshot();
    let screen = render(&Ui::default(), &snap, 80, 24);
    assert!(screen.contains("DEGRADED: no start/end probes · 16 of 18 rules not checked"), "{screen}");
    assert!(screen.contains("kvm_unmap_hva_range=tp_btf"), "{screen}");
    assert!(screen.contains("sched_process_exit=tp_btf"), "{screen}");
    let unavailable = screen.lines().find(|l| l.contains("unavailable:")).expect("unavailable line");
    assert!(unavailable.contains("range_start") && unavailable.contains("range_end"), "{screen}");
}

#[test]
fn lost_events_are_counted_and_flagged() {
    let snap = model_of("lost-events.jsonl", false).snapshot();
    let screen = render(&Ui::default(), &snap, 80, 24);
    assert!(screen.contains("lost 17"), "{screen}");
    assert!(screen.contains("17 kernel events were lost"), "{screen}");
    assert!(screen.contains("events-lost"), "the loss is also listed as a violation: {screen}");
    // Losses survive a reset: they must stay visible wherever results are shown.
    let mut model = model_of("lost-events.jsonl", false);
    model.reset();
    let screen = render(&Ui::default(), &model.snapshot(), 80, 24);
    assert!(screen.contains("events 0") && screen.contains("lost 17"), "{screen}");
}

#[test]
fn violations_pane_lists_newest_first_with_rule_process_and_callback() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let rules: Vec<&str> = snap.violations.iter().map(|v| v.violation.rule.as_str()).collect();
    assert!(rules.contains(&"notifier-double-end") && rules.contains(&"blockable-failure"), "{rules:?}");
    let screen = render(&Ui::default(), &snap, 100, 30);
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("error") || l.contains("warning")).collect();
    let position =
        |rule: &str| rows.iter().position(|l| l.contains(rule)).unwrap_or_else(|| panic!("{rule} missing: {screen}"));
    // The checker reports blockable-failure before the double end: newest is on top.
    assert!(position("notifier-double-end") < position("blockable-failure"), "{screen}");
    let double_end = rows[position("notifier-double-end")];
    assert!(
        double_end.contains("61 oom_reaper") && double_end.contains("kvm_mmu_notifier_invalidate_range_end"),
        "{double_end}"
    );
    assert!(screen.contains(&format!("1 Violations ({})", snap.violations.len())), "{screen}");
}

#[test]
fn enter_opens_the_detail_with_explanation_hint_events_and_stack() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let mut ui = Ui::default();
    let target = snap
        .violations
        .iter()
        .position(|v| v.violation.rule.as_str() == "blockable-failure")
        .expect("blockable-failure");
    for _ in 0..target {
        key(&mut ui, &snap, KeyCode::Char('j'));
    }
    key(&mut ui, &snap, KeyCode::Enter);
    let screen = render(&ui, &snap, 120, 50);
    assert!(screen.contains("violation: blockable-failure"), "{screen}");
    assert!(screen.contains("What happened") && screen.contains("Known bug"), "{screen}");
    assert!(screen.contains("only the OOM reaper may see a failure"), "hint from the checker: {screen}");
    assert!(screen.contains("Events involved"), "{screen}");
    assert!(
        screen.contains("subscriber_start nouveau_svmm_invalidate_range_start"),
        "the failing call, as an event line: {screen}"
    );
    assert!(screen.contains("Kernel stack"), "{screen}");
    key(&mut ui, &snap, KeyCode::Esc);
    assert!(!render(&ui, &snap, 120, 50).contains("What happened"), "Esc closes the detail");
}

#[test]
fn detail_shows_a_captured_kernel_stack() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let mut ui = Ui::default();
    let target = snap.violations.iter().position(|v| v.violation.stack.is_some()).expect("a violation with a stack");
    for _ in 0..target {
        key(&mut ui, &snap, KeyCode::Down);
    }
    key(&mut ui, &snap, KeyCode::Enter);
    let screen = render(&ui, &snap, 120, 60);
    assert!(screen.contains("__oom_reap_task_mm+0x9d"), "{screen}");
}

#[test]
fn a_leak_detail_shows_the_tasks_stuck_on_its_mm() {
    let mut snap = model_of("itree-leak.jsonl", false).snapshot();
    let mm = snap.violations[0].violation.mm.expect("the leak names its mm");
    let stuck = |tid: u32, mm: Option<Addr>| BlockedTask {
        tid,
        pid: tid,
        comm: "remover".into(),
        wait: "mmu_interval_notifier_remove",
        waits_for: "the mm's interval tree to finish invalidating, to remove an interval subscriber",
        mm,
        stack: vec![],
    };
    snap.inventory = Inventory::Read {
        mms: Arc::new(vec![]),
        stuck: Arc::new(vec![stuck(182, Some(mm)), stuck(183, Some(Addr(0xffff888009990000)))]),
        age_ns: 0,
    };
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::Enter);
    let screen = render(&ui, &snap, 160, 60);
    assert!(screen.contains("Stuck because of it"), "{screen}");
    assert!(
        screen.contains(&format!("tid 182 of pid 182 (remover) blocked in mmu_interval_notifier_remove on mm {mm}")),
        "{screen}"
    );
    assert!(!screen.contains("tid 183"), "a task stuck on another mm is not this leak's: {screen}");
}

#[test]
fn notifiers_table_shows_counts_owner_and_sorts() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::Tab);
    let screen = render(&ui, &snap, 120, 30);
    assert!(screen.contains("Notifiers · sorted by starts"), "{screen}");
    let kvm = screen.lines().find(|l| l.contains("kvm_mmu_notifier_invalidate_range_start")).expect("kvm row");
    let n = &snap
        .stats
        .notifiers
        .iter()
        .find(|n| n.callback.as_str() == "kvm_mmu_notifier_invalidate_range_start")
        .expect("kvm stats");
    assert!(kvm.contains("61 oom_reaper"), "{kvm}");
    assert!(kvm.contains(&format!(" {} ", n.starts)), "{kvm}");
    let rows_in_order = |screen: &str| -> Vec<String> {
        screen.lines().filter(|l| l.contains("_invalidate_range_start")).map(str::to_owned).collect()
    };
    let before = rows_in_order(&screen);
    key(&mut ui, &snap, KeyCode::Char('s'));
    key(&mut ui, &snap, KeyCode::Char('s'));
    let screen = render(&ui, &snap, 120, 30);
    assert!(screen.contains("sorted by failed"), "{screen}");
    let nouveau_first = rows_in_order(&screen).first().is_some_and(|l| l.contains("nouveau"));
    assert!(nouveau_first, "the failing callback sorts first by failures: {before:?} -> {screen}");
}

#[test]
fn processes_and_events_panes_show_the_checkers_statistics() {
    let snap = model_of("clean-all-types.jsonl", false).snapshot();
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::Char('3'));
    let screen = render(&ui, &snap, 100, 30);
    for m in &snap.stats.mms {
        let pid = m.pid.expect("pid").to_string();
        assert!(
            screen.lines().any(|l| l.contains(&pid) && l.contains(&m.mm.expect("mm").to_string())),
            "{pid}: {screen}"
        );
    }
    key(&mut ui, &snap, KeyCode::Char('4'));
    let screen = render(&ui, &snap, 100, 30);
    for (kind, n) in &snap.stats.by_type {
        assert!(screen.lines().any(|l| l.contains(kind) && l.contains(&format!(" {n} "))), "{kind} {n}: {screen}");
    }
    assert!(screen.contains("events/s:") && screen.contains("open ranges:"), "sparklines: {screen}");
}

#[test]
fn open_ranges_are_listed_until_the_trace_ends() {
    let mut model = Model::new(&full_header(), "test", None);
    let call = RangeCall {
        tid: 77,
        mm: Addr(0xffff888003a1c000),
        range: Addr(0xffffc90000a3fc88),
        start: Addr(0x7f3a5c000000),
        end: Addr(0x7f3a5c200000),
        event: MmuEvent::Clear,
        blockable: true,
    };
    let mut start = Event::new(1_000_000_000, EventBody::RangeStart(call));
    start.pid = Some(77);
    start.comm = Some(Comm::new("stuck"));
    model.ingest(&start);
    let ret = RangeStartRet { tid: 77, range: Addr(0xffffc90000a3fc88), ret: 0, itree: ItreeSnapshot::default() };
    model.ingest(&Event::new(1_000_001_000, EventBody::RangeStartRet(ret)));
    model.advance_clock(4_000_000_000);
    let running = model.snapshot();
    assert_eq!(running.open_ranges.len(), 1);
    let mut ui = Ui::default();
    key(&mut ui, &running, KeyCode::Char('4'));
    let screen = render(&ui, &running, 100, 30);
    let row = screen.lines().find(|l| l.contains("77 stuck")).unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains("3s") && row.contains("0x7f3a5c000000 +2MiB") && row.contains("clear"), "{row}");
    assert!(screen.contains("open ranges: 1 now"), "{screen}");
    model.finish();
    let ended = model.snapshot();
    let unpaired = ended.violations.iter().filter(|v| v.violation.rule.as_str() == "unpaired-start").count();
    assert_eq!(unpaired, 1, "end-of-trace conclusions are listed once: {:?}", ended.violations);
    assert_eq!(ended.errors + ended.warnings, ended.violations.len() as u64);
    let screen = render(&Ui::default(), &ended, 100, 30);
    assert!(screen.contains("trace ended: FAIL"), "{screen}");
}

#[test]
fn filter_keeps_matching_rows_in_every_pane() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::Char('/'));
    for c in "nouveau".chars() {
        key(&mut ui, &snap, KeyCode::Char(c));
    }
    assert!(render(&ui, &snap, 100, 30).contains("filter: nouveau"), "the footer shows what is typed");
    key(&mut ui, &snap, KeyCode::Enter);
    key(&mut ui, &snap, KeyCode::Tab);
    let screen = render(&ui, &snap, 120, 30);
    assert!(screen.contains("nouveau_svmm_invalidate_range_start"), "{screen}");
    assert!(!screen.contains("kvm_mmu_notifier_invalidate_range_start"), "{screen}");
    // A pid filter: only that process.
    key(&mut ui, &snap, KeyCode::Char('/'));
    for _ in 0.."nouveau".len() {
        key(&mut ui, &snap, KeyCode::Backspace);
    }
    for c in "4242".chars() {
        key(&mut ui, &snap, KeyCode::Char(c));
    }
    key(&mut ui, &snap, KeyCode::Enter);
    let screen = render(&ui, &snap, 120, 30);
    assert!(screen.contains("nothing matches the filter \"4242\""), "{screen}");
    key(&mut ui, &snap, KeyCode::Esc);
    assert!(ui.filter.is_empty(), "Esc clears the filter before it quits");
}

#[test]
fn inventory_pane_shows_subscribers_and_kvm_counters() {
    let mut snap = model_of("tracepoint-mode.jsonl", false).snapshot();
    snap.inventory = Inventory::Read {
        mms: Arc::new(vec![MmInventory {
            pid: 4242,
            comm: "qemu-system-x86".into(),
            mm: Addr(0xffff888003a1c000),
            subscriptions: Addr(0xffff888002000000),
            has_itree: false,
            invalidate_seq: Some(7),
            active_invalidate_ranges: Some(0),
            subscribers: vec![Subscriber {
                subscriber: Addr(0xffff888006e10000),
                ops: Addr(0xffffffff82000000),
                users: 1,
                callbacks: vec![("invalidate_range_start".into(), "kvm_mmu_notifier_invalidate_range_start".into())],
                kvm: Some(KvmState {
                    kvm: Addr(0xffffc90001000000),
                    mn_active_invalidate_count: Some(1),
                    mmu_invalidate_in_progress: None,
                    unavailable: None,
                }),
                callback_addrs: [0; probe_common::OPS_SLOTS],
            }],
            intervals: vec![IntervalSubscriber {
                subscriber: Addr(0xffff888007000000),
                ops: Addr(0xffffffffc0002000),
                start: Addr(0x7f0000000000),
                last: Addr(0x7f0000003fff),
                invalidate_seq: 7,
                invalidate: "mmnt_invalidate_ok [mmnotif_test]".into(),
                invalidate_addr: 0xffffffffc0001000,
                invalidate_start: None,
                invalidate_finish: None,
                invalidate_start_addr: 0,
                invalidate_finish_addr: 0,
            }],
            truncated: false,
        }]),
        stuck: Arc::new(vec![BlockedTask {
            tid: 182,
            pid: 180,
            comm: "remover".into(),
            wait: "mmu_interval_notifier_remove",
            waits_for: "the mm's interval tree to finish invalidating, to remove an interval subscriber",
            mm: Some(Addr(0xffff888003a1c000)),
            stack: vec![],
        }]),
        age_ns: 1_500_000_000,
    };
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::BackTab);
    assert_eq!(ui.pane, Pane::Inventory);
    let screen = render(&ui, &snap, 120, 30);
    assert!(screen.contains("pid 4242 qemu-system-x86 mm 0xffff888003a1c000"), "{screen}");
    assert!(screen.contains("invalidate_range_start=kvm_mmu_notifier_invalidate_range_start"), "{screen}");
    assert!(
        screen.contains("mn_active_invalidate_count 1 · mmu_invalidate_in_progress not in this kernel"),
        "{screen}"
    );
    assert!(screen.contains("1 mms with subscriptions · read 1s ago"), "{screen}");
    assert!(
        screen.contains(
            "[interval 0] subscriber 0xffff888007000000 [0x7f0000000000, 0x7f0000003fff] seq 7 (invalidating)"
        ),
        "{screen}"
    );
    assert!(screen.contains("      invalidate=mmnt_invalidate_ok [mmnotif_test]"), "{screen}");
    assert!(
        screen.contains(
            "stuck: tid 182 of pid 180 (remover) blocked in mmu_interval_notifier_remove on mm 0xffff888003a1c000"
        ),
        "{screen}"
    );
    // The same interval when the tree has moved on: its odd sequence alone is not an invalidation.
    if let Inventory::Read { mms, .. } = &mut snap.inventory {
        Arc::make_mut(mms)[0].invalidate_seq = Some(8);
    }
    let screen = render(&ui, &snap, 120, 30);
    assert!(
        screen.contains("[0x7f0000000000, 0x7f0000003fff] seq 7") && !screen.contains("seq 7 (invalidating)"),
        "{screen}"
    );
    snap.inventory = Inventory::Unavailable("a recorded trace carries no inventory".into());
    assert!(render(&ui, &snap, 80, 24).contains("a recorded trace carries no inventory"));
}

#[test]
fn reset_zeroes_counters_but_keeps_pairing_state() {
    let mut model = model_of("v6.6-double-end.jsonl", false);
    let before = model.snapshot();
    assert!(before.events > 0 && !before.violations.is_empty());
    model.reset();
    let after = model.snapshot();
    assert_eq!(after.events, 0);
    assert!(after.violations.is_empty() && after.errors == 0 && after.warnings == 0);
    assert!(
        after.stats.notifiers.iter().all(|n| n.starts == 0 && n.durations.count == 0),
        "{:?}",
        after.stats.notifiers
    );
    assert_eq!(after.open_ranges, before.open_ranges, "reset must not touch what is open");
    let screen = render(&Ui::default(), &after, 80, 24);
    assert!(screen.contains("since reset"), "{screen}");
}

#[test]
fn help_overlay_and_pause_marker() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    let mut ui = Ui::default();
    key(&mut ui, &snap, KeyCode::Char('?'));
    let screen = render(&ui, &snap, 80, 24);
    assert!(screen.contains("keys (any key closes)") && screen.contains("display freezes"), "{screen}");
    assert!(screen.contains("replay: half as fast"), "the whole help fits 80x24: {screen}");
    key(&mut ui, &snap, KeyCode::Char('x'));
    assert!(!render(&ui, &snap, 100, 30).contains("keys (any key closes)"));
    ui.frozen = true;
    assert!(render(&ui, &snap, 100, 30).contains("PAUSED"));
}

#[test]
fn every_pane_draws_at_80x24_and_smaller_without_panicking() {
    let snap = model_of("v6.6-double-end.jsonl", false).snapshot();
    for (w, h) in [(80, 24), (60, 16), (20, 6), (1, 1)] {
        let mut ui = Ui::default();
        for _ in Pane::ALL {
            let screen = render(&ui, &snap, w, h);
            assert_eq!(screen.lines().count(), usize::from(h));
            key(&mut ui, &snap, KeyCode::Tab);
        }
    }
    // At the minimum size the header, the tabs and the pane's rows all fit.
    let screen = render(&Ui::default(), &snap, 80, 24);
    assert!(screen.contains("1 Violations") && screen.contains("5 Inventory"), "{screen}");
    assert!(screen.contains("notifier-double-end"), "{screen}");
}
