//! Lines decoded in the input's buffer against lines copied out of it: whatever the buffer
//! size (so wherever lines straddle its end), a reader gives the same events and the same
//! file:line errors.
use std::io::BufReader;

use super::{MAX_LINE_BYTES, TraceReader};

const HEADER: &str = r#"{"mmnotif_trace":1,"kernel":"6.12.0","attach":{"range_start":"fentry"}}"#;

/// What a reader yields, as text: events with their line numbers, errors with their location.
fn read_all(reader: TraceReader<impl std::io::BufRead>) -> Vec<String> {
    reader
        .with_path("t.jsonl")
        .map(|r| match r {
            Ok(e) => format!("{e:?}"),
            Err(e) => e.to_string(),
        })
        .collect()
}

/// The same text through a one-byte buffer (every line copied), buffers that split lines at
/// varied places, and the whole text as the buffer (every line decoded in place).
fn assert_same_at_every_buffer_size(text: &[u8]) -> Vec<String> {
    let whole = read_all(TraceReader::new(text).expect("header"));
    for capacity in [1, 7, 64, 100, 301, 4096] {
        let chunked = read_all(TraceReader::new(BufReader::with_capacity(capacity, text)).expect("header"));
        assert_eq!(chunked, whole, "buffer of {capacity} bytes");
    }
    whole
}

#[test]
fn buffered_and_copied_lines_read_the_same() {
    let event = |ts: u64| {
        format!(
            r#"{{"ts":{ts},"type":"range_start","cpu":0,"pid":1,"tid":1,"comm":"c","mm":"0x1","range":"0x2","start":"0x3","end":"0x4","event":"clear","blockable":true,"stack":["a+0x1","b+0x2 [kvm]"]}}"#
        )
    };
    let mut text = format!("{HEADER}\n");
    for ts in 1..40 {
        text.push_str(&event(ts));
        text.push_str(match ts % 5 {
            0 => "\r\n",
            1 => "\n\n   \n",
            2 => "\n{\"ts\":1,\"type\":\"task_exit\"}\n",
            3 => "\n{\"ts\":1,\"type\":\"range_start\"\n",
            _ => "\n",
        });
    }
    let results = assert_same_at_every_buffer_size(text.as_bytes());
    assert_eq!(results.iter().filter(|r| r.starts_with("Event")).count(), 39);
    // Line 2 is the first event; two blank lines follow, then line 5 is the next event.
    assert!(results[0].contains("seq: Some(2)"), "{}", results[0]);
    assert!(results[1].contains("seq: Some(5)"), "{}", results[1]);
    assert_eq!(results[2], "t.jsonl:6: task_exit: missing field `tid`");
    assert!(results[4].starts_with("t.jsonl:8: not valid JSON"), "{}", results[4]);
}

#[test]
fn oversized_invalid_and_truncated_lines_are_reported_the_same() {
    let mut text = format!("{HEADER}\n").into_bytes();
    text.extend_from_slice(br#"{"ts":1,"type":"task_exit","tid":1}"#);
    text.push(b'\n');
    text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
    text.push(b'\n');
    text.extend_from_slice(b"{\"ts\":1,\"type\":\"task_exit\",\"tid\":1,\"comm\":\"\xff\"}\n");
    text.extend_from_slice(br#"{"ts":2,"type":"task_exit","tid":1}"#);
    text.push(b'\n');
    text.extend_from_slice(br#"{"ts":3,"type":"task"#);
    let results = assert_same_at_every_buffer_size(&text);
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(results[0].starts_with("Event"), "{}", results[0]);
    assert_eq!(results[1], format!("t.jsonl:3: line is longer than {MAX_LINE_BYTES} bytes"));
    assert_eq!(results[2], "t.jsonl:4: line is not valid UTF-8");
    assert!(results[3].contains("seq: Some(5)"), "{}", results[3]);
    assert!(results[4].starts_with("t.jsonl:6: truncated final line"), "{}", results[4]);
}
