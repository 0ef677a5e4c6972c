//! Boots one kernel under QEMU (TCG, PVH entry into the ELF vmlinux), streams its console to the
//! terminal (prefixed by the kernel's name) and to a log file, enforces a timeout and reads the
//! guest's verdict.
use super::cmd;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const RESULT_PREFIX: &str = "MMNOTIF-GUEST-RESULT:";
const TEST_PREFIX: &str = "MMNOTIF-TEST: ";

/// How TCG maps vCPUs to host threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TcgThreads {
    /// Every vCPU on one host thread. The test bed's setting: with one host thread per vCPU
    /// the guests died of `Oops: int3` at kernel text the kernel was patching (static keys,
    /// alternatives) on 6.12, 7.2 and 7.3-rc, once during boot before any module or tracer was
    /// loaded. Cross-modified code is only coherent here when the vCPUs share one thread.
    Single,
    /// One host thread per vCPU (MTTCG), kept to show the difference: under the attach loop's
    /// KVM, HMM and module traffic its guests also hung, with or without the tracer
    /// (docs/vm-testbed.md, "Attach stability").
    Multi,
}

impl TcgThreads {
    fn accel(self) -> &'static str {
        match self {
            TcgThreads::Single => "tcg,thread=single",
            TcgThreads::Multi => "tcg,thread=multi",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Boot {
    /// Label for output lines, e.g. "6.1".
    pub name: String,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// Extra kernel command line arguments.
    pub append: Vec<String>,
    pub memory: String,
    pub smp: u32,
    pub tcg: TcgThreads,
    pub timeout: Option<Duration>,
    pub log: PathBuf,
    /// Connect the terminal's stdin to the guest console (for --keep).
    pub interactive: bool,
    /// Where files the guest ships over the console are written (see [`FileCapture`]).
    pub files_dir: PathBuf,
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub pass: u32,
    pub fail: u32,
    /// The guest's FAIL lines and any problem seen on the console.
    pub failures: Vec<String>,
    pub elapsed: Duration,
    /// Files the guest shipped over the console.
    pub files: Vec<PathBuf>,
}

const FILE_BEGIN: &str = "@@MMNOTIF-FILE ";
const FILE_END: &str = "@@MMNOTIF-END";

/// Collects a file the guest prints as `@@MMNOTIF-FILE name`, gzip+base64 lines, `@@MMNOTIF-END`
/// (the guest has no other channel out). Lines that are not base64 (a kernel message printed
/// meanwhile) are left to the normal console handling.
#[derive(Default)]
struct FileCapture {
    current: Option<(String, String)>,
}

impl FileCapture {
    /// Takes `line` if it belongs to a shipped file; returns a finished (name, base64) pair.
    fn take(&mut self, line: &str) -> (bool, Option<(String, String)>) {
        if let Some(name) = line.strip_prefix(FILE_BEGIN) {
            self.current = Some((name.trim().to_string(), String::new()));
            return (true, None);
        }
        let Some((_, data)) = self.current.as_mut() else {
            return (false, None);
        };
        if line == FILE_END {
            return (true, self.current.take());
        }
        if !line.is_empty() && line.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
            data.push_str(line);
            data.push('\n');
            return (true, None);
        }
        (false, None)
    }
}

/// Writes a shipped file: base64 → gzip → `dir/name` (name reduced to its last component).
fn save_file(dir: &std::path::Path, name: &str, base64: &str) -> Result<PathBuf> {
    let name = std::path::Path::new(name).file_name().context("shipped file without a name")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let encoded = dir.join(format!("{}.gz.b64", name.to_string_lossy()));
    let path = dir.join(name);
    std::fs::write(&encoded, base64).with_context(|| format!("cannot write {}", encoded.display()))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"base64 -d < "$1" | gzip -dc > "$2""#)
        .arg("sh")
        .arg(&encoded)
        .arg(&path)
        .status()
        .context("cannot run base64/gzip")?;
    let _ = std::fs::remove_file(&encoded);
    if !status.success() {
        bail!("decoding the guest's {} failed", path.display());
    }
    Ok(path)
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.failures.is_empty() && self.fail == 0 && self.pass > 0
    }
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // Never leave a QEMU behind, whatever path we leave by.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub(crate) fn cmdline(b: &Boot) -> String {
    let mut args = vec![
        "console=ttyS0",
        "earlyprintk=serial,ttyS0",
        "log_buf_len=16M",
        "panic=-1",
        "oops=panic",
        "mitigations=off",
        "rdinit=/init",
    ];
    args.extend(b.append.iter().map(String::as_str));
    args.join(" ")
}

/// Boots and supervises one guest. An error means QEMU could not run at all; a failed test run
/// is an `Outcome` with failures.
pub(crate) fn boot(b: &Boot) -> Result<Outcome> {
    cmd::require_tool("qemu-system-x86_64", "qemu-system-x86")?;
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", b.tcg.accel(), "-cpu", "max", "-m", &b.memory])
        .args(["-smp", &b.smp.to_string()])
        .args(["-nodefaults", "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&b.vmlinux)
        .arg("-initrd")
        .arg(&b.initramfs)
        .arg("-append")
        .arg(cmdline(b))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if b.interactive { Stdio::inherit() } else { Stdio::null() });
    let shown = cmd::show(&c);
    let mut log = std::fs::File::create(&b.log).with_context(|| format!("cannot create {}", b.log.display()))?;
    writeln!(log, "# {shown}").with_context(|| format!("cannot write {}", b.log.display()))?;

    let start = Instant::now();
    let mut child = Reaped(c.spawn().with_context(|| format!("cannot start `{shown}`"))?);
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child.0.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.0.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).replace('\r', "");
                if tx.send(line).is_err() {
                    break;
                }
                buf.clear();
            }
        })
    })
    .collect();
    drop(tx);

    let mut out = Outcome::default();
    let mut capture = FileCapture::default();
    let _ = std::fs::remove_dir_all(&b.files_dir);
    let mut result_seen = false;
    let mut timed_out = false;
    let mut halted = false;
    loop {
        let wait = match b.timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(left) => left,
                None => {
                    timed_out = true;
                    break;
                }
            },
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let (taken, finished) = capture.take(&line);
                if let Some((name, data)) = finished {
                    match save_file(&b.files_dir, &name, &data) {
                        Ok(path) => {
                            let _ = writeln!(log, "# received {}", path.display());
                            out.files.push(path);
                        }
                        Err(e) => out.failures.push(format!("{e:#}")),
                    }
                }
                if taken {
                    continue;
                }
                println!("[{}] {line}", b.name);
                let _ = writeln!(log, "{line}");
                inspect(&line, &mut out, &mut result_seen);
                // A kernel that cannot power the machine off halts instead, and QEMU would
                // wait for the time limit: the run is over, stop it.
                if line.contains(HALTED) && !halted {
                    halted = true;
                    let _ = writeln!(log, "# the guest halted instead of powering off: stopping QEMU");
                    let _ = child.0.kill();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out {
        let _ = child.0.kill();
        out.failures.push(format!("timed out after {} s", b.timeout.map(|t| t.as_secs()).unwrap_or(0)));
    }
    let status = child.0.wait().context("waiting for QEMU failed")?;
    for r in readers {
        let _ = r.join();
    }
    out.elapsed = start.elapsed();
    if !timed_out && !halted && !status.success() {
        out.failures.push(format!("QEMU exited with {status}"));
    }
    if !result_seen {
        out.failures.push(format!("no `{RESULT_PREFIX}` line from the guest"));
    }
    let _ = writeln!(log, "# elapsed {:.1} s, pass {} fail {}", out.elapsed.as_secs_f64(), out.pass, out.fail);
    if out.pass == 0 && out.failures.is_empty() && result_seen {
        bail!("the guest passed nothing");
    }
    Ok(out)
}

/// What a kernel prints when `poweroff` finds no way to power off (no ACPI S5).
const HALTED: &str = "reboot: System halted";

/// Picks results and fatal kernel conditions out of one console line.
fn inspect(line: &str, out: &mut Outcome, result_seen: &mut bool) {
    if let Some(rest) = line.find(RESULT_PREFIX).map(|i| &line[i + RESULT_PREFIX.len()..]) {
        let w: Vec<&str> = rest.split_whitespace().collect();
        if let ["pass", p, "fail", f, ..] = w.as_slice()
            && let (Ok(p), Ok(f)) = (p.parse(), f.parse())
        {
            out.pass = p;
            out.fail = f;
            *result_seen = true;
            return;
        }
        out.failures.push(format!("malformed result line: {line}"));
    } else if let Some(i) = line.find(TEST_PREFIX) {
        let rest = &line[i + TEST_PREFIX.len()..];
        if rest.starts_with("FAIL") {
            out.failures.push(rest.to_string());
        }
    } else if line.contains("Kernel panic - not syncing") {
        out.failures.push(format!("kernel panic: {}", line.trim()));
    } else if line.contains("BUG: ") && !line.contains("MMNOTIF") {
        out.failures.push(format!("kernel BUG: {}", line.trim()));
    } else if line.contains("Oops: ") {
        out.failures.push(format!("kernel oops: {}", line.trim()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_results_and_kernel_trouble() {
        let mut o = Outcome::default();
        let mut seen = false;
        inspect("MMNOTIF-TEST: PASS list-ops", &mut o, &mut seen);
        inspect("MMNOTIF-TEST: FAIL oom-eagain (2 checks failed)", &mut o, &mut seen);
        inspect("[   3.1] Kernel panic - not syncing: Fatal exception", &mut o, &mut seen);
        inspect("MMNOTIF-GUEST-RESULT: pass 14 fail 1", &mut o, &mut seen);
        assert!(seen);
        assert_eq!((o.pass, o.fail), (14, 1));
        assert_eq!(o.failures.len(), 2);
        assert!(!o.ok());
    }
}
