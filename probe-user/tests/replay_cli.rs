//! `mmnotif-trace replay`: verdicts and exit statuses from recorded traces.

mod common;

use std::process::Command;

use common::{BIN, corpus};

#[test]
fn replay_reports_the_v5_2_skipped_end_and_fails() {
    let trace = corpus("v5.2-skipped-end.jsonl");
    let o = Command::new(BIN).arg("replay").arg(trace).output().expect("run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("[notifier-unpaired-start]"), "{out}");
    assert!(out.contains("c2655835fd8c"), "{out}");
}

#[test]
fn replay_names_file_and_line_of_a_truncated_trace() {
    let dir = std::env::temp_dir().join(format!("mmnotif-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("cut.jsonl");
    std::fs::write(&path, "{\"mmnotif_trace\":1,\"kernel\":\"6.1.0\",\"attach\":{}}\n{\"ts\":1,\"type\":\"lo")
        .expect("write");
    let o = Command::new(BIN).args(["replay", path.to_str().expect("utf8")]).output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(15), "{err}");
    assert!(err.contains("cut.jsonl:2: truncated"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
