//! The scanner against serde_json: on the corpus, on edge cases of the JSON grammar and on
//! mutations of corpus lines, both decode paths give the same event or the same error, and a
//! reader names the same file and line either way.
use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

use super::scan;
use crate::trace::{
    TraceReader,
    decode::{decode_event, decode_event_reference},
    event::{EventBody, EventType},
    intern::Interner,
    writer::event_to_line,
};

/// Every trace of the checker's corpus and of the fuzzer's seed corpus.
fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("tests/corpus"), root.join("../fuzz/corpus/replay")] {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|x| x == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 30, "corpus looks incomplete: {files:?}");
    files
}

/// The event lines (after the header) of every corpus trace.
fn corpus_lines() -> Vec<String> {
    corpus_files()
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// Asserts that both decoders give the same result for `line`; returns whether the scanner
/// took it.
fn assert_agree(line: &str) -> bool {
    assert_agree_warm(line, &mut Interner::default())
}

/// [`assert_agree`], and the fast path gives that result again with `warm`, an interner that
/// may know the line's stack already (the scanner's known-stack shortcut), and once more
/// after `warm` has seen the line.
fn assert_agree_warm(line: &str, warm: &mut Interner) -> bool {
    let fast = decode_event(line, &mut Interner::default());
    let reference = format!("{:?}", decode_event_reference(line, &mut Interner::default()));
    assert_eq!(format!("{fast:?}"), reference, "line {line:?}");
    for pass in 0..2 {
        assert_eq!(format!("{:?}", decode_event(line, warm)), reference, "line {line:?}, warm interner, pass {pass}");
    }
    scan(line, &Interner::default()).is_some()
}

#[test]
fn corpus_lines_decode_the_same_both_ways() {
    let lines = corpus_lines();
    let scanned = lines.iter().filter(|l| assert_agree(l)).count();
    // Hand-written lines include probes_live (left to serde_json) and deliberate errors.
    assert!(scanned * 10 >= lines.len() * 8, "only {scanned} of {} corpus lines took the fast path", lines.len());
}

#[test]
fn every_line_the_writer_produces_takes_the_fast_path() {
    let mut seen = std::collections::BTreeSet::new();
    for line in corpus_lines() {
        let Ok(event) = decode_event_reference(&line, &mut Interner::default()) else { continue };
        let written = event_to_line(&event);
        assert!(assert_agree(&written) || matches!(event.body, EventBody::ProbesLive(_)), "declined {written}");
        seen.insert((event.kind(), event.stack.is_some()));
    }
    // The corpus exercises every type, and stacks.
    assert!(EventType::ALL.iter().all(|k| seen.iter().any(|(s, _)| s == k)), "types seen: {seen:?}");
    assert!(seen.iter().any(|(_, stack)| *stack));
}

const TASK_EXIT: &str = r#"{"ts":1,"type":"task_exit","tid":5}"#;

#[test]
fn edge_cases_of_the_grammar_decode_the_same_both_ways() {
    let ret = |v: &str| format!(r#"{{"ts":1,"type":"range_start_ret","tid":1,"range":"0x1","ret":{v}}}"#);
    let field = |f: &str| format!(r#"{{"ts":1,"type":"task_exit","tid":5,{f}}}"#);
    let call = |f: &str| {
        format!(
            r#"{{"ts":1,"type":"range_start","cpu":0,"pid":1,"comm":"c","tid":1,"mm":"0x1","range":"0x2","start":"0x3","end":"0x4","blockable":true,{f}}}"#
        )
    };
    let mut cases: Vec<String> = [
        TASK_EXIT,
        r#" { "ts" : 1 ,	"type" : "task_exit" , "tid" : 5 } "#,
        r#"{}"#,
        r#"[]"#,
        r#""task_exit""#,
        r#"{"ts":1"#,
        r#"{"ts":1,"type":"task_exit","tid":5,}"#,
        r#"{"ts":1,"type":"task_exit","tid":5} x"#,
        r#"{"ts":1,"type":"task_exit","tid":5}}"#,
        r#"{"ts":1 "type":"task_exit","tid":5}"#,
        r#"{"ts":1,"ts":2,"type":"task_exit","tid":5}"#,
        r#"{"t\u0073":1,"type":"task_exit","tid":5}"#,
        r#"{"TS":1,"ts":1,"type":"task_exit","tid":5}"#,
        r#"{"ts2":1,"ts":1,"type":"task_exit","tid":5}"#,
        r#"{"ts\":1,"type":"task_exit","tid":5}"#,
        r#"{"ts:1,"type":"task_exit","tid":5}"#,
        r#"{"t\u0073":1,"type":"task_exit","tid":5}"#,
        r#"{"ts":01,"type":"task_exit","tid":5}"#,
        r#"{"ts":0,"type":"task_exit","tid":5}"#,
        r#"{"ts":-1,"type":"task_exit","tid":5}"#,
        r#"{"ts":1.0,"type":"task_exit","tid":5}"#,
        r#"{"ts":1e3,"type":"task_exit","tid":5}"#,
        r#"{"ts":18446744073709551615,"type":"task_exit","tid":5}"#,
        r#"{"ts":18446744073709551616,"type":"task_exit","tid":5}"#,
        r#"{"ts":null,"type":"task_exit","tid":5}"#,
        r#"{"ts":"1","type":"task_exit","tid":5}"#,
        r#"{"ts":1,"type":"task_exit","tid":4294967295}"#,
        r#"{"ts":1,"type":"task_exit","tid":4294967296}"#,
        r#"{"ts":1,"type":"task_exit"}"#,
        r#"{"ts":1,"type":"task_exits","tid":5}"#,
    ]
    .map(str::to_owned)
    .to_vec();
    for v in [
        "0",
        "-0",
        "-11",
        "7",
        "true",
        "false",
        "tru",
        "truex",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "-",
        "--1",
        "-01",
        "null",
        "\"0\"",
    ] {
        cases.push(ret(v));
    }
    for f in [
        r#""comm":"plain""#,
        r#""comm":"a\"quoted\" name""#,
        r#""comm":"\u0041""#,
        "\"comm\":\"tab\there\"",
        r#""comm":"qému""#,
        r#""comm":null"#,
        r#""comm":5"#,
        r#""host":"unknown key""#,
        r#""host":{"nested":[1,2,{"x":null}]}"#,
        r#""stack":[]"#,
        r#""stack":[ ]"#,
        r#""stack":["a+0x1","b+0x2 [kvm]"]"#,
        r#""stack":[ "a+0x1" , "b+0x2" ]"#,
        r#""stack":["a+0x1",]"#,
        r#""stack":["a+0x1" "b"]"#,
        r#""stack":[1]"#,
        r#""stack":[["a"]]"#,
        r#""stack":["a\nb"]"#,
        r#""stack":"a""#,
        r#""stack":null"#,
        r#""stack":[],"stack":[]"#,
        r#""cpu":1,"pid":2,"comm":"c""#,
    ] {
        cases.push(field(f));
    }
    for f in [
        r#""event":"clear""#,
        r#""event":2"#,
        r#""event":99"#,
        r#""event":4294967296"#,
        r#""event":-1"#,
        r#""event":"nope""#,
        r#""event":true"#,
        r#""event":"clear","blockable":false"#,
        r#""event":"clear","stack":["a+0x1","]"]"#,
        r#""event":"clear","stack":["a+0x1 [kvm]","b+0x2"]"#,
        r#""event":"clear","stack":["a+0x1"],"stack":["a+0x1"]"#,
        r#""event":"clear","stack":["a+0x1"]]"#,
        r#""event":"clear","stack":["a+0x1\"]"]"#,
        r#""event":"clear","stack":[]"#,
    ] {
        cases.push(call(f));
    }
    // Addresses, read straight into their value on the fast path.
    let range = |v: &str| format!(r#"{{"ts":1,"type":"range_start_ret","tid":1,"range":{v},"ret":0}}"#);
    for v in [
        r#""0x1""#,
        r#""0xffffffffffffffff""#,
        r#""0xFFFF888003A1C000""#,
        r#""0X1""#,
        r#""0x""#,
        r#""0x1ffffffffffffffff""#,
        r#""0x0000000000000000001""#,
        r#""0x1g""#,
        r#""0x1 ""#,
        r#""0x\u0031""#,
        r#""0x1\"""#,
        r#""\u0030x1""#,
        r#""ffff""#,
        r#" "0x1" "#,
        r#""0x1"#,
        "1",
        "null",
        r#"["0x1"]"#,
    ] {
        cases.push(range(v));
    }
    for d in [r#""warning""#, "2", "7", r#""bogus""#, "-2", "1.5"] {
        cases.push(format!(r#"{{"ts":1,"type":"warn","tid":1,"caller":"f+0x1","detector":{d}}}"#));
    }
    let scanned = cases.iter().filter(|c| assert_agree(c)).count();
    // The plain cases above must exercise the fast path, not only the fallback.
    assert!(scanned >= 35, "only {scanned} edge cases took the fast path");
    assert!(assert_agree(&field(r#""stack":[ "a+0x1" , "b+0x2" ]"#)));
    assert!(assert_agree(r#" { "ts" : 1 ,	"type" : "task_exit" , "tid" : 5 } "#));
}

/// Corpus lines with a byte removed or a token inserted at every position decode the same way.
#[test]
fn mutated_corpus_lines_decode_the_same_both_ways() {
    // Two lines of each (type, with stack) kind, for coverage at a bounded cost.
    let mut picked: Vec<String> = Vec::new();
    let mut per_kind = std::collections::BTreeMap::new();
    for line in corpus_lines() {
        let key = match decode_event_reference(&line, &mut Interner::default()) {
            Ok(e) => format!("{}/{}", e.kind(), e.stack.is_some()),
            Err(_) => "error".to_owned(),
        };
        let n = per_kind.entry(key).or_insert(0);
        if *n < 2 {
            *n += 1;
            picked.push(line);
        }
    }
    // An interner that knows the unmutated lines' stacks: mutations next to them must not
    // be taken for them.
    let mut warm = Interner::default();
    for line in &picked {
        let _ = decode_event(line, &mut warm);
    }
    let inserts = ["\\", "\"", "-", "0", "9", " ", ",", "}", "]", "[", "null", ".5", "\u{1}", "é"];
    let mut cases = 0;
    for line in &picked {
        for (i, _) in line.char_indices() {
            let mut removed = line.clone();
            removed.remove(i);
            assert_agree_warm(&removed, &mut warm);
            for token in inserts {
                let mut inserted = line.clone();
                inserted.insert_str(i, token);
                assert_agree_warm(&inserted, &mut warm);
            }
            cases += 1 + inserts.len();
        }
    }
    assert!(cases > 10_000, "{cases} mutations");
}

/// A trace with corpus lines and malformed ones: the reader gives the same events and the
/// same `file:line:` errors with either decoder.
#[test]
fn a_reader_reports_the_same_events_and_errors_either_way() {
    let header = r#"{"mmnotif_trace":1,"kernel":"6.12.0","attach":{"range_start":"fentry"}}"#;
    let mut text = format!("{header}\n").into_bytes();
    let mut lines = corpus_lines();
    lines.truncate(300);
    let malformed = [
        r#"{"ts":1,"type":"range_start""#.as_bytes(),
        br#"{"ts":01,"type":"task_exit","tid":1}"#,
        br#"{"ts":1,"type":"task_exit"}"#,
        br#"{"ts":1,"type":"range_start_ret","tid":1,"range":"0x1","ret":-0}"#,
        br#"{"ts":1,"type":"task_exit","tid":1,"tid":2}"#,
        br#"{"ts":1,"type":"subscriber_end","tid":1,"mm":"0xzz","range":"0x1","subscriber":"0x2","callback":"f"}"#,
        b"{\"ts\":1,\"type\":\"task_exit\",\"tid\":1,\"comm\":\"\xff\"}",
        br#"{"ts":1,"type":"task_exit","tid":1,"stack":["a",]}"#,
    ];
    let mut malformed_at = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        if let Some(bad) = malformed.get(i % 37) {
            text.extend_from_slice(bad);
            text.push(b'\n');
        }
    }
    text.extend_from_slice(br#"{"ts":9,"type":"task"#);
    let path = std::env::temp_dir().join(format!("mmnotif-trace-scan-test-{}.jsonl", std::process::id()));
    std::fs::write(&path, &text).expect("write the test trace");
    let read = |reference: bool| -> Vec<String> {
        let file = File::open(&path).expect("open the test trace");
        let reader = TraceReader::new(BufReader::new(file)).expect("header").with_path(&path);
        let reader = if reference { reader.with_reference_decode() } else { reader };
        reader
            .map(|r| match r {
                Ok(e) => format!("{e:?}"),
                Err(e) => e.to_string(),
            })
            .collect()
    };
    let fast = read(false);
    let reference = read(true);
    std::fs::remove_file(&path).ok();
    assert_eq!(fast.len(), reference.len());
    for (f, r) in fast.iter().zip(&reference) {
        assert_eq!(f, r);
    }
    let prefix = format!("{}:", path.display());
    for (n, result) in fast.iter().enumerate() {
        if result.starts_with(&prefix) {
            malformed_at.push(n);
        }
    }
    assert!(malformed_at.len() >= malformed.len(), "errors: {malformed_at:?}");
    // The first malformed line follows the header and the first corpus line: line 3.
    assert!(fast[1].starts_with(&format!("{}:3: not valid JSON", path.display())), "{}", fast[1]);
    let last = fast.last().expect("results");
    assert!(last.contains("truncated final line"), "{last}");
}

/// The shortcut is taken for a stack seen before, also one whose frames hold brackets, and
/// not for a stack that only starts like one seen before.
#[test]
fn a_known_stack_is_taken_from_the_interner() {
    let line = |stack: &str| {
        format!(
            r#"{{"ts":1,"type":"range_start","cpu":0,"pid":1,"tid":1,"comm":"c","mm":"0x1","range":"0x2","start":"0x3","end":"0x4","event":"clear","blockable":true,"stack":[{stack}]}}"#
        )
    };
    let seen = line(r#""f+0x1 [kvm]","g+0x2""#);
    let mut interner = Interner::default();
    assert!(scan(&seen, &interner).is_some_and(|w| w.known_stack.is_none() && w.raw_stack.is_some()));
    let first = decode_event(&seen, &mut interner).expect("decodes");
    let wire = scan(&seen, &interner).expect("scanned");
    let known = wire.known_stack.expect("the stack is known after one decode");
    assert_eq!(Some(&known), first.stack.as_ref());
    let longer = line(r#""f+0x1 [kvm]","g+0x2","h+0x3""#);
    let wire = scan(&longer, &interner).expect("scanned");
    assert!(wire.known_stack.is_none());
    assert_eq!(wire.raw_stack, Some(r#""f+0x1 [kvm]","g+0x2","h+0x3""#));
}

#[test]
fn the_word_at_a_time_string_end_matches_a_byte_loop() {
    let naive = |rest: &[u8]| {
        let at = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        (rest[at] == b'"').then_some(at)
    };
    for len in 0..24 {
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for filler in [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                let mut text = vec![filler; len];
                text.push(stop);
                text.extend_from_slice(b"tail\"");
                assert_eq!(super::plain_string_len(&text), naive(&text), "{text:?}");
            }
        }
        let unterminated = vec![b'x'; len];
        assert_eq!(super::plain_string_len(&unterminated), None);
    }
}
