//! The package's `mmnotif-trace.service` under a real systemd: a Debian root with systemd
//! (made once with mmdebstrap from the host's Debian mirror, kept in the store) is booted with
//! `systemd-nspawn -b`, its changes kept in memory (`--volatile=overlay`), with every capability
//! and the `bpf` and `perf_event_open` system calls allowed. Inside, the .deb is installed and
//! the unit started; the metrics are scraped from the host (the container shares its network),
//! the journal must hold the attach and serve lines, and `systemctl stop` must end the service
//! successfully after the closing summary (the tracer detached and drained).
//!
//! This host's PID 1 is not systemd, so nspawn runs without a system bus: `--register=no` (no
//! machined) and `--keep-unit` (no transient scope).

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench::scrape,
    vm::{self, paths::Paths},
};

/// What the root holds besides the minimal base: an init, and the bus systemctl talks over.
const PACKAGES: &str = "systemd,systemd-sysv,dbus";
const SUITE: &str = "bookworm";

/// Checks the unit in `deb`; returns one line per check that passed.
pub(crate) fn check(deb: &Path) -> Result<Vec<String>> {
    vm::require_tool("systemd-nspawn", "systemd-container")?;
    vm::require_tool("mmdebstrap", "mmdebstrap")?;
    let root = systemd_root()?;
    let deb_dir = deb.parent().context("the package has no directory")?;
    let deb_name = deb.file_name().context("the package has no file name")?.to_string_lossy().into_owned();
    let port = free_port()?;
    let container = Container::boot(&root, deb_dir)?;
    let mut passed = Vec::new();
    let outcome = exercise(&container, &deb_name, port, &mut passed);
    container.shut_down();
    outcome.map(|()| passed)
}

fn exercise(c: &Container, deb_name: &str, port: u16, passed: &mut Vec<String>) -> Result<()> {
    // Until systemd has opened its socket systemctl cannot connect; then --wait waits for the
    // boot to finish. "degraded" (a unit of the minimal root failed) still runs services.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.run(&["systemctl", "is-system-running", "--wait"]) {
            Ok(_) => break,
            Err(e) if e.to_string().contains("degraded") => break,
            Err(e) if Instant::now() > deadline => return Err(e.context("the container's systemd never came up")),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    c.run(&["dpkg", "-i", &format!("/mnt/dist/{deb_name}")])?;
    passed.push(format!("dpkg -i {deb_name} in a booted {SUITE} root"));
    // The EnvironmentFile the unit reads: a port free on the host (the network is shared).
    c.run(&["sh", "-c", &format!("echo MMNOTIF_TRACE_OPTS=--metrics=127.0.0.1:{port} > /etc/default/mmnotif-trace")])?;
    c.run(&["systemctl", "start", "mmnotif-trace"])?;
    let body = scrape_when_up(port).context("the service's metrics endpoint")?;
    for needed in ["mmnotif_hook_info{", "mmnotif_kernel_records_emitted_total"] {
        if !body.contains(needed) {
            bail!("the scrape of the service lacks {needed}");
        }
    }
    passed.push(format!("systemctl start: metrics served on 127.0.0.1:{port} ({} bytes)", body.len()));
    let journal = c.run(&["journalctl", "-u", "mmnotif-trace", "-o", "cat", "--no-pager"])?;
    for needed in ["attached", "serving metrics at"] {
        if !journal.contains(needed) {
            bail!("the journal lacks {needed:?}:\n{journal}");
        }
    }
    passed.push("journal: the attach and serve lines".into());
    c.run(&["systemctl", "stop", "mmnotif-trace"])?;
    let state = c.run(&["systemctl", "show", "mmnotif-trace", "-p", "ActiveState,Result,ExecMainStatus"])?;
    for needed in ["ActiveState=inactive", "Result=success", "ExecMainStatus=0"] {
        if !state.contains(needed) {
            bail!("after systemctl stop: {}", state.trim().replace('\n', ", "));
        }
    }
    let journal = c.run(&["journalctl", "-u", "mmnotif-trace", "-o", "cat", "--no-pager"])?;
    let summary =
        journal.lines().find(|l| l.contains("kernel emitted")).context("no closing summary in the journal")?;
    passed.push(format!("systemctl stop: exit 0 after {}", summary.trim_start_matches("mmnotif-trace: ")));
    Ok(())
}

/// The Debian root with systemd, made on first use.
fn systemd_root() -> Result<PathBuf> {
    let dir = Paths::new().store.join("roots").join(format!("systemd-{SUITE}"));
    let done = dir.join(".mmnotif-complete");
    if done.is_file() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().context("root without parent")?)?;
    let mirror = vm::debian_mirror()?;
    println!("xtask: making the {SUITE} root with systemd in {} (mmdebstrap, once)", dir.display());
    let out = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet", &format!("--include={PACKAGES}"), SUITE])
        .arg(&dir)
        .arg(&mirror)
        .output()
        .context("running mmdebstrap")?;
    if !out.status.success() {
        bail!("mmdebstrap {SUITE} from {mirror} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::write(&done, "").with_context(|| format!("writing {}", done.display()))?;
    Ok(dir)
}

/// A booted container: nspawn and the container's init.
struct Container {
    nspawn: Child,
    init: u32,
}

impl Container {
    fn boot(root: &Path, dist: &Path) -> Result<Container> {
        let mut nspawn = Command::new("systemd-nspawn")
            .arg("--directory")
            .arg(root)
            .arg(format!("--machine=mmnotif-service-{}", std::process::id()))
            .args(["--volatile=overlay", "--register=no", "--keep-unit", "--boot", "--console=pipe", "--quiet"])
            .args(["--capability=all", "--system-call-filter=bpf perf_event_open"])
            .arg(format!("--bind-ro={}:/mnt/dist", dist.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting systemd-nspawn")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // nspawn's child becomes the container's init once it has exec'd systemd; until then
            // its namespaces are not yet the container's.
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", nspawn.id())).unwrap_or_default();
            let init: Option<u32> = children.split_whitespace().next().and_then(|p| p.parse().ok());
            if let Some(init) = init
                && std::fs::read_to_string(format!("/proc/{init}/comm")).is_ok_and(|c| c.trim() == "systemd")
            {
                return Ok(Container { nspawn, init });
            }
            if let Some(status) = nspawn.try_wait()? {
                let mut err = String::new();
                nspawn.stderr.take().map(|mut e| e.read_to_string(&mut err));
                bail!("systemd-nspawn exited ({status}): {}", err.trim());
            }
            if Instant::now() > deadline {
                let _ = nspawn.kill();
                bail!("systemd-nspawn started no init within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `argv` inside the container (in all its namespaces); its stdout, or an error with
    /// its output.
    fn run(&self, argv: &[&str]) -> Result<String> {
        let out = Command::new("nsenter")
            .args(["--target", &self.init.to_string(), "--all", "--"])
            .args(argv)
            .output()
            .with_context(|| format!("nsenter {}", argv.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{} ({}): {}{}",
                argv.join(" "),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Powers the container off (SIGTERM to nspawn), killing it if it takes too long.
    fn shut_down(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The metrics response, once the service answers (it attaches first).
fn scrape_when_up(port: u16) -> Result<String> {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match scrape(&addr) {
            Ok((response, _)) => return Ok(String::from_utf8_lossy(&response).into_owned()),
            Err(e) if Instant::now() > deadline => return Err(e.context("30 s after systemctl start")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
