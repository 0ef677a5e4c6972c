//! Any byte string fed to the JSON-lines reader and the checker must give a report or an
//! error, never a panic, and the checker must keep its counters consistent.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mmnotif_trace::{
    checker::Checker,
    trace::{TraceReader, TraceWriter, event_to_line},
};

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = TraceReader::new(Cursor::new(data)) else { return };
    let header = reader.header().clone();
    let mut checker = Checker::new(&header);
    let mut events = Vec::new();
    for event in reader.take(4096) {
        let Ok(event) = event else { continue };
        checker.push(&event);
        let _ = checker.open_ranges();
        events.push(event);
    }
    let report = checker.finish();
    let _ = report.to_string();
    let _ = serde_json::to_string(&report);

    // Writing what was read and reading it back gives the same events.
    let Ok(mut writer) = TraceWriter::new(Vec::new(), &header) else { return };
    for e in &events {
        let _ = writer.write_event(e);
    }
    let text = writer.into_inner();
    let Ok(again) = TraceReader::new(Cursor::new(&text[..])) else { panic!("own header unreadable") };
    for (got, want) in again.zip(&events) {
        let got = got.unwrap_or_else(|e| panic!("own output unreadable: {e}: {}", event_to_line(want)));
        assert_eq!(got.body, want.body);
    }
});
