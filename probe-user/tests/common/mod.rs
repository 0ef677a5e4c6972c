//! Helpers shared by the integration tests: the built binary, the corpus, process output and
//! the gate of the tests that need root (here); the metrics tests' exposition parser, plain
//! HTTP GETs on loopback and promtool (here, and `dashboards`, `live`, `prometheus`,
//! `promql`); the `check` tests' strict KTAP parser and report validators (`ktap`, `reports`).
//! Each test binary uses part of it.
#![allow(dead_code)]

pub(crate) mod dashboards;
pub(crate) mod ktap;
pub(crate) mod live;
pub(crate) mod prometheus;
pub(crate) mod promql;
pub(crate) mod reports;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

/// The `mmnotif-trace` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mmnotif-trace");

/// A file of the checker's corpus, `tests/corpus/NAME` (a `.jsonl` trace or its `.expect`).
pub(crate) fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)
}

/// Every trace (`*.jsonl`) of the corpus, sorted.
pub(crate) fn corpus_traces() -> Vec<PathBuf> {
    let mut traces: Vec<PathBuf> = std::fs::read_dir(corpus(""))
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    traces.sort();
    traces
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether a test that loads BPF programs can run: they need root. As any other user the
/// test is skipped: this says so on stderr and the test returns at once, so a plain
/// `cargo test` passes running what it can. `cargo xtask test` (CI) runs as root, so there
/// nothing is skipped. Use as `if !root() { return; }`.
pub(crate) fn root() -> bool {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_owned();
    // Straight to stderr: the test harness captures eprintln! output of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: it loads BPF programs, which needs root");
    false
}

/// One sample: metric name and its labels in order.
pub(crate) type SeriesKey = (String, BTreeMap<String, String>);

/// Parses the text exposition format (0.0.4) into samples; panics on a malformed line, which
/// is what a test wants.
pub(crate) fn parse_exposition(text: &str) -> BTreeMap<SeriesKey, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                (name, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"))))
            }
            None => (series, BTreeMap::new()),
        };
        assert!(out.insert((name.to_owned(), labels), value).is_none(), "duplicate series: {line}");
    }
    out
}

fn parse_labels(mut text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (name, rest) = text.split_once("=\"").unwrap_or_else(|| panic!("bad labels: {text}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape: {text}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {text}"),
            }
        };
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        text = rest.get(end + 1..).unwrap_or_default().trim_start_matches(',');
    }
    labels
}

/// Sum of every sample of `name` whose labels include all of `matching`.
pub(crate) fn sum(samples: &BTreeMap<SeriesKey, f64>, name: &str, matching: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| n == name && matching.iter().all(|(k, v)| labels.get(*k).is_some_and(|x| x == v)))
        .map(|(_, v)| *v)
        .sum()
}

/// GET `path` with HTTP/1.1 and `Connection: close`; returns (status, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {response:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    // Chunked bodies are not expected from either server these tests talk to.
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    Ok((status, body.to_owned()))
}

/// `promtool check metrics` on `text`: (success, its report).
pub(crate) fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: run scripts/setup.sh");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

/// A TCP port nothing listens on right now (the kernel's choice).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
