//! Helpers shared by the metrics tests: reading the exposition format, plain HTTP GETs on
//! loopback, and promtool.
#![allow(dead_code)]

pub mod promql;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

/// One sample: metric name and its labels in order.
pub type SeriesKey = (String, BTreeMap<String, String>);

/// Parses the text exposition format (0.0.4) into samples; panics on a malformed line, which
/// is what a test wants.
pub fn parse_exposition(text: &str) -> BTreeMap<SeriesKey, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}")))),
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
pub fn sum(samples: &BTreeMap<SeriesKey, f64>, name: &str, matching: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| n == name && matching.iter().all(|(k, v)| labels.get(*k).is_some_and(|x| x == v)))
        .map(|(_, v)| *v)
        .sum()
}

/// GET `path` with HTTP/1.1 and `Connection: close`; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no header end in {response:?}")))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    // Chunked bodies are not expected from either server these tests talk to.
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    Ok((status, body.to_owned()))
}

/// `promtool check metrics` on `text`: (success, its report).
pub fn promtool_check(text: &str) -> (bool, String) {
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A live `mmnotif-trace` child with `--metrics` on, its stderr read by a thread.
pub struct LiveTracer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Drained all along, so a full pipe never stalls the tracer.
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: std::sync::mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_mmnotif-trace");

impl LiveTracer {
    /// Starts `mmnotif-trace ARGS --metrics 127.0.0.1:0` and waits for the address it serves on.
    pub fn start(args: &[&str]) -> LiveTracer {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--metrics", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mmnotif-trace");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let addr = line
                        .strip_prefix("mmnotif-trace: serving metrics at http://")
                        .and_then(|rest| rest.strip_suffix("/metrics"))
                        .map(|a| a.parse::<SocketAddr>().expect("address"));
                    seen.push(line);
                    if let Some(addr) = addr {
                        break addr;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("mmnotif-trace never said where it serves metrics; stderr: {seen:#?}");
                }
            }
        };
        LiveTracer { child, addr, stdout: Some(stdout), stderr: rx, stderr_seen: seen }
    }

    /// One scrape of `/metrics`, parsed; panics on a non-200 answer.
    pub fn scrape(&self) -> (String, BTreeMap<SeriesKey, f64>) {
        let (status, body) = http_get(self.addr, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        let samples = parse_exposition(&body);
        (body, samples)
    }

    /// Scrapes every 250 ms until `done` holds (at most `tries` times); returns that scrape.
    pub fn scrape_until(&self, tries: u32, what: &str, done: impl Fn(&BTreeMap<SeriesKey, f64>) -> bool) -> (String, BTreeMap<SeriesKey, f64>) {
        for _ in 0..tries {
            let scrape = self.scrape();
            if done(&scrape.1) {
                return scrape;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let (body, _) = self.scrape();
        panic!("the exporter never showed {what}; last scrape:\n{body}");
    }

    /// SIGTERM, then everything it wrote: (stdout, stderr lines).
    pub fn stop(mut self) -> (String, Vec<String>) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("tracer exit");
        let stdout = self.stdout.take().map(|t| t.join().expect("stdout reader")).unwrap_or_default();
        self.stderr_seen.extend(self.stderr.iter());
        assert!(status.success(), "tracer failed ({status}): {:#?}", self.stderr_seen);
        (stdout, std::mem::take(&mut self.stderr_seen))
    }
}

impl Drop for LiveTracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
