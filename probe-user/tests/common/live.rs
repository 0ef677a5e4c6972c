//! A live `mmnotif-trace` with `--metrics`, driven from a test.

use std::{
    collections::BTreeMap,
    io::Read,
    net::SocketAddr,
    process::{Command, ExitStatus, Stdio},
    time::Duration,
};

use super::{BIN, SeriesKey, http_get, parse_exposition};

/// A live `mmnotif-trace` child with `--metrics` on, its stderr read by a thread.
pub(crate) struct LiveTracer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Drained all along, so a full pipe never stalls the tracer.
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: std::sync::mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

impl LiveTracer {
    /// Starts `mmnotif-trace SUBCOMMAND --metrics 127.0.0.1:0 ARGS` (`args` is the subcommand
    /// and its arguments; the flag goes first so that it stays before `check`'s `--`) and
    /// waits for the address it serves on.
    pub(crate) fn start(args: &[&str]) -> LiveTracer {
        let (subcommand, rest) = args.split_first().expect("a subcommand");
        let mut child = Command::new(BIN)
            .arg(subcommand)
            .args(["--metrics", "127.0.0.1:0"])
            .args(rest)
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
    pub(crate) fn scrape(&self) -> (String, BTreeMap<SeriesKey, f64>) {
        let (status, body) = http_get(self.addr, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        let samples = parse_exposition(&body);
        (body, samples)
    }

    /// Scrapes every 250 ms until `done` holds (at most `tries` times); returns that scrape.
    pub(crate) fn scrape_until(
        &self,
        tries: u32,
        what: &str,
        done: impl Fn(&BTreeMap<SeriesKey, f64>) -> bool,
    ) -> (String, BTreeMap<SeriesKey, f64>) {
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

    /// Waits for the tracer to end by itself: (its status, stdout, stderr lines).
    pub(crate) fn wait(mut self) -> (ExitStatus, String, Vec<String>) {
        let status = self.child.wait().expect("tracer exit");
        let stdout = self.stdout.take().map(|t| t.join().expect("stdout reader")).unwrap_or_default();
        self.stderr_seen.extend(self.stderr.iter());
        (status, stdout, std::mem::take(&mut self.stderr_seen))
    }

    /// SIGTERM, then everything it wrote: (stdout, stderr lines).
    pub(crate) fn stop(mut self) -> (String, Vec<String>) {
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
