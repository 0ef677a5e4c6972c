//! Reader and writer: round trips, and errors that point at the offending line.
use std::io::Cursor;

use mmnotif_trace::trace::*;

const HEADER: &str =
    r#"{"mmnotif_trace":1,"kernel":"6.12.0","attach":{"range_start":"fentry","range_end":"unavailable: no BTF"}}"#;

fn read_all(text: &str) -> (Header, Vec<Result<Event, TraceError>>) {
    let reader = TraceReader::new(Cursor::new(text.as_bytes().to_vec())).expect("header");
    let header = reader.header().clone();
    (header, reader.collect())
}

fn sample_events() -> Vec<Event> {
    let call = RangeCall {
        tid: 7,
        mm: Addr(0xffff_8880_03a1_c000),
        range: Addr(0xffff_c900_00a3_fc88),
        start: Addr(0x7f00_0000_0000),
        end: Addr(0x7f00_0020_0000),
        event: MmuEvent::Clear,
        blockable: true,
    };
    let task = |mut e: Event| {
        e.pid = Some(5);
        e.cpu = Some(3);
        e.comm = Some(Comm::new("a \"quoted\" name"));
        e
    };
    let kvm = Symbol::new("kvm_mmu_notifier_invalidate_range_start");
    vec![
        task(Event::new(1, EventBody::RangeStart(call.clone()))),
        Event::new(
            2,
            EventBody::RangeStartRet(RangeStartRet {
                tid: 7,
                range: call.range,
                ret: -11,
                itree: ItreeSnapshot { active: Some(1), seq: Some(9) },
            }),
        ),
        task(Event::new(
            3,
            EventBody::RangeEnd(RangeEnd {
                call: RangeCall { event: MmuEvent::Other(99), ..call.clone() },
                itree: ItreeSnapshot::default(),
            }),
        )),
        Event::new(
            4,
            EventBody::SubscriberStart(SubscriberStart {
                tid: 7,
                mm: call.mm,
                range: Some(call.range),
                subscriber: Some(Addr(0xffff_8880_06e1_0000)),
                callback: kvm.clone(),
                has_end: Some(true),
                ret: Some(0),
                start: None,
                end: None,
            }),
        ),
        task(Event::new(
            5,
            EventBody::SubscriberStart(SubscriberStart {
                tid: 7,
                mm: call.mm,
                range: None,
                subscriber: None,
                callback: kvm,
                has_end: None,
                ret: None,
                start: Some(call.start),
                end: Some(call.end),
            }),
        )),
        Event::new(
            6,
            EventBody::SubscriberEnd(SubscriberEnd {
                tid: 7,
                mm: call.mm,
                range: call.range,
                subscriber: Addr(1),
                callback: Symbol::new("kvm_mmu_notifier_invalidate_range_end"),
            }),
        ),
        Event::new(
            7,
            EventBody::IntervalInvalidate(IntervalInvalidate {
                tid: 7,
                mm: call.mm,
                range: call.range,
                subscriber: Addr(2),
                callback: Symbol::new("amdgpu_hmm_invalidate_gfx"),
                cur_seq: 11,
                ret: false,
            }),
        ),
        Event::new(8, EventBody::ItreeEnd(ItreeEnd { tid: 7, mm: call.mm, active: 0, seq: 12 })),
        Event {
            stack: Some(vec![Symbol::new("mn_itree_invalidate+0x8e"), Symbol::new("__oom_reap_task_mm+0x9d")].into()),
            ..Event::new(
                9,
                EventBody::Warn(Warn {
                    tid: 7,
                    caller: Symbol::new("mn_itree_invalidate+0x8e"),
                    detector: Some(Detector::Warning),
                }),
            )
        },
        Event::new(
            10,
            EventBody::Warn(Warn { tid: 7, caller: Symbol::new("x+0x1"), detector: Some(Detector::Other(9)) }),
        ),
        Event { pid: Some(5), ..Event::new(11, EventBody::TaskExit(TaskExit { tid: 7 })) },
        Event::new(12, EventBody::Lost(Lost { count: 3 })),
        Event::new(13, EventBody::ProbesLive(ProbesLive { callbacks: vec![] })),
        Event::new(
            14,
            EventBody::ProbesLive(ProbesLive {
                callbacks: vec![
                    ProbedCallback {
                        hook: Hook::SubscriberEnd,
                        callback: Symbol::new("kvm_mmu_notifier_invalidate_range_end [kvm]"),
                        address: Some(Addr(0xffff_ffff_c0a4_e5b0)),
                    },
                    ProbedCallback {
                        hook: Hook::IntervalInvalidate,
                        callback: Symbol::new("mmnt_invalidate_ok [mmnotif_test]"),
                        address: None,
                    },
                ],
            }),
        ),
    ]
}

#[test]
fn writer_output_reads_back_identically() {
    let mut header = Header::new("6.12.0").with_attach(Hook::RangeStart, "fentry");
    header.extra.insert("host".into(), serde_json::json!("box"));
    let events = sample_events();
    let mut writer = TraceWriter::new(Vec::new(), &header).expect("header");
    for e in &events {
        writer.write_event(e).expect("write");
    }
    let text = String::from_utf8(writer.into_inner()).expect("utf8");
    let (read_header, read) = read_all(&text);
    assert_eq!(read_header, header);
    let read: Vec<Event> = read.into_iter().map(|r| r.expect("event")).collect();
    assert_eq!(read.len(), events.len());
    for (i, (got, want)) in read.iter().zip(&events).enumerate() {
        // The reader numbers events by line (the header is line 1).
        assert_eq!(got.seq, Some(i as u64 + 2));
        assert_eq!(Event { seq: None, ..got.clone() }, *want);
    }
}

#[test]
fn addresses_are_written_as_hex_strings() {
    let line = event_to_line(&sample_events()[0]);
    assert!(line.starts_with(r#"{"ts":1,"type":"range_start","cpu":3,"pid":5,"tid":7,"#), "{line}");
    assert!(line.contains(r#""mm":"0xffff888003a1c000""#), "{line}");
    assert!(line.contains(r#""event":"clear","blockable":true"#), "{line}");
    let other = event_to_line(&sample_events()[2]);
    assert!(other.contains(r#""event":99"#), "{other}");
}

#[test]
fn malformed_line_is_reported_with_file_and_line() {
    let text = format!(
        "{HEADER}\n{{\"ts\":1,\"type\":\"task_exit\",\"tid\":3}}\n{{\"ts\":2,\"type\":\n{{\"ts\":3,\"type\":\"task_exit\",\"tid\":4}}\n"
    );
    let reader = TraceReader::new(Cursor::new(text.into_bytes())).expect("header").with_path("run.jsonl");
    let results: Vec<_> = reader.collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    let err = results[1].as_ref().expect_err("line 3 is broken");
    assert_eq!(err.line, 3);
    assert!(err.to_string().starts_with("run.jsonl:3: not valid JSON"), "{err}");
    assert!(results[2].is_ok(), "reading goes on after a malformed line");
}

#[test]
fn missing_field_names_the_field_and_type() {
    let text = format!("{HEADER}\n{{\"ts\":1,\"type\":\"range_start_ret\",\"tid\":3,\"range\":\"0x10\"}}\n");
    let (_, results) = read_all(&text);
    let err = results[0].as_ref().expect_err("no ret");
    assert_eq!(err.to_string(), "line 2: range_start_ret: missing field `ret`");
}

#[test]
fn truncated_last_line_is_reported_as_truncation() {
    let text = format!("{HEADER}\n{{\"ts\":1,\"type\":\"task_exit\",\"tid\":3}}\n{{\"ts\":2,\"type\":\"range_st");
    let (_, results) = read_all(&text);
    assert_eq!(results.len(), 2);
    let err = results[1].as_ref().expect_err("truncated");
    assert!(err.is_truncation(), "{err}");
    assert_eq!(err.line, 3);
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn final_line_without_newline_is_fine_when_complete() {
    let text = format!("{HEADER}\n{{\"ts\":1,\"type\":\"task_exit\",\"tid\":3}}");
    let (_, results) = read_all(&text);
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok());
}

#[test]
fn unknown_keys_are_ignored() {
    let text =
        format!("{HEADER}\n{{\"ts\":1,\"type\":\"lost\",\"count\":2,\"future\":{{\"nested\":[1,2]}},\"cpu\":1}}\n");
    let (header, results) = read_all(&text);
    assert_eq!(header.attach_state(Hook::RangeEnd), AttachState::Unavailable(Some("no BTF")));
    assert_eq!(header.attach_state(Hook::ItreeEnd), AttachState::Unavailable(None));
    assert_eq!(header.attach_state(Hook::RangeStart), AttachState::Attached("fentry"));
    let event = results[0].as_ref().expect("event");
    assert_eq!(event.body, EventBody::Lost(Lost { count: 2 }));
    assert_eq!(event.cpu, Some(1));
}

#[test]
fn bad_hex_address_is_a_clear_error() {
    let text = format!(
        "{HEADER}\n{{\"ts\":1,\"type\":\"itree_end\",\"tid\":3,\"mm\":\"0xffff88zz\",\"active\":0,\"seq\":2}}\n{{\"ts\":1,\"type\":\"itree_end\",\"tid\":3,\"mm\":12,\"active\":0,\"seq\":2}}\n"
    );
    let (_, results) = read_all(&text);
    let err = results[0].as_ref().expect_err("bad hex");
    assert_eq!(
        err.to_string(),
        "line 2: itree_end: field `mm`: address \"0xffff88zz\" has a character that is not a hex digit"
    );
    let err = results[1].as_ref().expect_err("number instead of string");
    assert!(err.to_string().starts_with("line 3: not valid JSON"), "{err}");
}

#[test]
fn header_problems_are_reported() {
    for (text, want) in [
        ("", "empty trace"),
        ("{\"kernel\":\"x\",\"attach\":{}}\n", "missing `mmnotif_trace`"),
        ("{\"mmnotif_trace\":2,\"kernel\":\"x\",\"attach\":{}}\n", "unsupported trace format version 2"),
        ("{\"mmnotif_trace\":1,\"kernel\":\"x\",\"attach\":{\"range_start\":1}}\n", "must be a string"),
        ("{\"mmnotif_trace\":1,\"ker", "truncated"),
    ] {
        let err = TraceReader::new(Cursor::new(text.as_bytes().to_vec())).err().expect("error");
        assert!(err.to_string().contains(want), "{text:?}: {err}");
    }
}

#[test]
fn invalid_utf8_and_unknown_types_are_errors_not_panics() {
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"{\"ts\":1,\"type\":\"task_exit\",\"tid\":3,\"comm\":\"\xff\"}\n");
    bytes.extend_from_slice(b"{\"ts\":1,\"type\":\"teleport\"}\n");
    bytes.extend_from_slice(b"[1,2,3]\n");
    let reader = TraceReader::new(Cursor::new(bytes)).expect("header");
    let errors: Vec<String> = reader.map(|r| r.expect_err("all bad").to_string()).collect();
    assert_eq!(errors.len(), 3);
    assert!(errors[0].contains("UTF-8"), "{}", errors[0]);
    assert!(errors[1].contains("unknown event type \"teleport\""), "{}", errors[1]);
    assert!(errors[2].starts_with("line 4: not valid JSON"), "{}", errors[2]);
}

#[test]
fn probes_live_is_written_with_hooks_and_hex_addresses() {
    let events = sample_events();
    let line = event_to_line(&events[events.len() - 1]);
    assert_eq!(
        line,
        r#"{"ts":14,"type":"probes_live","callbacks":[{"hook":"subscriber_end","callback":"kvm_mmu_notifier_invalidate_range_end [kvm]","address":"0xffffffffc0a4e5b0"},{"hook":"interval_invalidate","callback":"mmnt_invalidate_ok [mmnotif_test]"}]}"#
    );
}

#[test]
fn bad_probes_live_lines_name_the_line_and_the_entry() {
    let lines = [
        r#"{"ts":1,"type":"probes_live"}"#,
        r#"{"ts":1,"type":"probes_live","callbacks":[{"callback":"f"}]}"#,
        r#"{"ts":1,"type":"probes_live","callbacks":[{"hook":"subscriber_end","callback":"f"},{"hook":"range_start","callback":"g"}]}"#,
        r#"{"ts":1,"type":"probes_live","callbacks":[{"hook":"subscriber_start"}]}"#,
        r#"{"ts":1,"type":"probes_live","callbacks":[{"hook":"subscriber_start","callback":"f","address":"0xzz"}]}"#,
        r#"{"ts":1,"type":"probes_live","callbacks":{"hook":"subscriber_start"}}"#,
    ];
    let text = format!("{HEADER}\n{}\n", lines.join("\n"));
    let reader = TraceReader::new(Cursor::new(text.into_bytes())).expect("header").with_path("run.jsonl");
    let errors: Vec<String> = reader.map(|r| r.expect_err("all bad").to_string()).collect();
    assert_eq!(errors.len(), lines.len(), "{errors:?}");
    assert_eq!(errors[0], "run.jsonl:2: probes_live: missing field `callbacks`");
    assert_eq!(errors[1], "run.jsonl:3: probes_live: callbacks[0]: missing field `hook`");
    assert!(
        errors[2].starts_with(
            "run.jsonl:4: probes_live: callbacks[1]: `hook` \"range_start\" is not a subscriber callback hook"
        ),
        "{}",
        errors[2]
    );
    assert_eq!(errors[3], "run.jsonl:5: probes_live: callbacks[0]: missing field `callback`");
    assert!(
        errors[4].starts_with("run.jsonl:6: probes_live: callbacks[0]: field `address`: address \"0xzz\""),
        "{}",
        errors[4]
    );
    assert!(errors[5].starts_with("run.jsonl:7: not valid JSON"), "{}", errors[5]);
}

#[test]
fn two_pass_events_round_trip_and_need_their_finish_pointer() {
    let lines = [
        r#"{"ts":1,"type":"interval_start","tid":7,"range":"0xffffc90000a3fc88","mm":"0xffff888003a1c000","subscriber":"0xffff88800c440100","callback":"xe_vma_userptr_invalidate_start [xe]","cur_seq":9,"finish":"0xffff88800c440180","ret":true}"#,
        r#"{"ts":2,"type":"interval_finish","tid":7,"mm":"0xffff888003a1c000","subscriber":"0xffff88800c440100","callback":"xe_vma_userptr_invalidate_finish [xe]","finish":"0xffff88800c440180"}"#,
    ];
    let text = format!("{HEADER}\n{}\n", lines.join("\n"));
    let reader = TraceReader::new(Cursor::new(text.into_bytes())).expect("header");
    let events: Vec<Event> = reader.map(|r| r.expect("valid")).collect();
    for (event, line) in events.iter().zip(lines) {
        assert_eq!(event_to_line(event), line);
    }
    let bad = [
        r#"{"ts":1,"type":"interval_start","tid":7,"range":"0x1","mm":"0x2","subscriber":"0x3","callback":"f","cur_seq":9,"ret":true}"#,
        r#"{"ts":1,"type":"interval_start","tid":7,"range":"0x1","mm":"0x2","subscriber":"0x3","callback":"f","cur_seq":9,"finish":"0x0","ret":0}"#,
        r#"{"ts":2,"type":"interval_finish","tid":7,"mm":"0x2","subscriber":"0x3","callback":"g"}"#,
    ];
    let text = format!("{HEADER}\n{}\n", bad.join("\n"));
    let reader = TraceReader::new(Cursor::new(text.into_bytes())).expect("header");
    let errors: Vec<String> = reader.map(|r| r.expect_err("all bad").to_string()).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("interval_start: missing field `finish`"), "{}", errors[0]);
    assert!(errors[1].contains("`ret` must be a bool"), "{}", errors[1]);
    assert!(errors[2].contains("interval_finish: missing field `finish`"), "{}", errors[2]);
}
