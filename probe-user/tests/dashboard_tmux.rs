//! The dashboard on a real terminal: the built binary runs in a tmux pane of the minimum
//! supported size (80×24); keys are sent as a person would type them and the pane is read
//! back. Every way out (q, SIGTERM) must leave the shell's terminal as it was.

mod common;

use std::{
    net::SocketAddr,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{BIN, corpus, http_get, parse_exposition, sum};

/// A private tmux server with one 80×24 pane running a plain shell; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str) -> Tmux {
        let tmux = Tmux { socket: format!("mmnotif-{name}-{}", std::process::id()) };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "80",
            "-y",
            "24",
            // Through the user's shell (dash for many users): exec, so the pane's process is bash.
            "exec bash --norc --noprofile",
        ]);
        tmux.run(&["set-option", "-t", "main", "status", "off"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/setup.sh installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys by tmux name (`Tab`, `Enter`, `Space`, `q`).
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "main", key]);
        }
    }

    /// Types a shell command and runs it.
    fn command(&self, line: &str) {
        self.run(&["send-keys", "-t", "main", "-l", line]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }

    /// Waits until the pane shows what `ready` wants; fails with the last screen otherwise.
    /// The limit only bounds a hang: the assertions are on what is shown, not on time.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the pane never showed {what}:\n{screen}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process the pane's shell is running in the foreground.
    fn foreground_child(&self) -> u32 {
        let shell = self.run(&["display-message", "-p", "-t", "main", "#{pane_pid}"]);
        let shell = shell.trim();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).expect("children of the shell");
        children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("the shell runs a child")
    }

    /// The shell is back in charge and its terminal is in its normal (cooked, echoing) mode.
    fn assert_terminal_restored(&self) {
        self.command("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo");
        let screen = self.wait_for("the stty report", |s| {
            s.lines().any(|l| l.contains("icanon") && l.contains("echo") && !l.contains("grep"))
        });
        let report = screen.lines().rev().find(|l| l.contains("icanon") && !l.contains("grep")).unwrap_or_default();
        assert!(
            report.split_whitespace().any(|w| w == "icanon") && report.split_whitespace().any(|w| w == "echo"),
            "raw mode left on: {report}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").status();
    }
}

fn log_file(name: &str) -> String {
    std::env::temp_dir().join(format!("mmnotif-dashboard-{name}-{}.log", std::process::id())).display().to_string()
}

/// The number after `label` on the header's totals line.
fn header_count(screen: &str, label: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.trim_start().starts_with(label))?;
    let rest = line.trim_start().strip_prefix(label)?;
    rest.split_whitespace().next()?.replace(',', "").parse().ok()
}

#[test]
fn replay_dashboard_steps_plays_shows_a_detail_and_quits_cleanly() {
    let tmux = Tmux::start("replay");
    let log = log_file("replay");
    tmux.command(&format!(
        "{BIN} replay {} --tui --start-paused --log-file {log}; echo \"exit status $?\"",
        corpus("v6.6-double-end.jsonl").display()
    ));
    let screen = tmux.wait_for("the paused replay", |s| s.contains("replay line 0") && s.contains("paused"));
    assert_eq!(header_count(&screen, "events"), Some(0), "{screen}");
    assert!(screen.contains("kernel 6.6.0"), "{screen}");

    tmux.keys(&["n", "n", "n"]);
    let screen = tmux.wait_for("three events stepped", |s| s.contains("replay line 4"));
    assert_eq!(header_count(&screen, "events"), Some(3), "{screen}");

    tmux.keys(&["Space"]);
    let screen = tmux.wait_for("the end of the trace", |s| s.contains("finished") && s.contains("trace ended: FAIL"));
    assert!(screen.contains("notifier-double-end"), "{screen}");
    assert!(screen.contains("error"), "{screen}");

    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("a violation's detail", |s| s.contains("What happened"));
    assert!(screen.contains("violation: notifier-double-end"), "{screen}");
    // Esc and Tab arriving in one read would parse as Alt+Tab: let the detail close first.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the detail closed", |s| !s.contains("What happened"));
    tmux.keys(&["Tab"]);
    let screen = tmux.wait_for("the notifiers pane", |s| s.contains("Notifiers · sorted by starts"));
    assert!(screen.contains("nouveau_svmm_invalidate_range_start") || screen.contains("nouveau_svmm_inv"), "{screen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell again", |s| s.contains("exit status 1"));
    assert!(!screen.contains("Violations ("), "the dashboard is gone from the screen: {screen}");
    tmux.assert_terminal_restored();
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(logged.contains("replaying"), "{logged}");
}

#[test]
fn sigterm_restores_the_terminal() {
    let tmux = Tmux::start("sigterm");
    tmux.command(&format!(
        "{BIN} replay {} --tui --start-paused --log-file {}; echo \"exit status $?\"",
        corpus("lost-events.jsonl").display(),
        log_file("sigterm")
    ));
    tmux.wait_for("the dashboard", |s| s.contains("replay line 0"));
    let pid = tmux.foreground_child();
    // SAFETY: signalling the dashboard this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    tmux.wait_for("the shell again", |s| s.contains("exit status 0"));
    tmux.assert_terminal_restored();
}

/// A panic, on the UI thread or on the replay's feeding thread, gives the terminal back with
/// the panic's message on the normal screen (debug builds panic where MMNOTIF_TEST_PANIC says).
#[test]
fn a_panic_restores_the_terminal_and_shows_its_message() {
    for (place, status, message) in
        [("redraw", "101", "a deliberate panic"), ("replay-feed", "101", "the replay thread panicked")]
    {
        let tmux = Tmux::start(&format!("panic-{place}"));
        let log = log_file(&format!("panic-{place}"));
        tmux.command(&format!(
            "RUST_BACKTRACE=0 MMNOTIF_TEST_PANIC={place} {BIN} replay {} --tui --start-paused --log-file {log}; echo \"exit status $?\"",
            corpus("lost-events.jsonl").display()
        ));
        if place == "replay-feed" {
            // The feeding thread panics on its first event: step to it while the UI runs.
            tmux.wait_for("the paused replay", |s| s.contains("replay line 0"));
            tmux.keys(&["n"]);
        }
        // A number after "exit status " (the typed command, wrapped, shows `$?` there).
        let exited = |s: &str| {
            s.lines()
                .any(|l| l.strip_prefix("exit status ").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())))
        };
        let screen = tmux.wait_for("the shell again", exited);
        assert!(screen.contains(&format!("exit status {status}")), "{place}: {screen}");
        assert!(screen.contains(message), "{place}: the message is not on the screen: {screen}");
        assert!(!screen.contains("Violations ("), "{place}: the dashboard was left on the screen: {screen}");
        tmux.assert_terminal_restored();
        let logged = std::fs::read_to_string(&log).expect("log file");
        assert!(logged.contains(&format!("MMNOTIF_TEST_PANIC={place}")), "{place}: the log lacks the panic: {logged}");
    }
}

/// The terminal disappears under a paused replay (its tmux server is killed): the dashboard
/// must exit, not keep reading a hung-up terminal.
#[test]
fn a_dashboard_whose_terminal_goes_away_exits() {
    let tmux = Tmux::start("hangup");
    tmux.command(&format!(
        "{BIN} replay {} --tui --start-paused --log-file {}",
        corpus("lost-events.jsonl").display(),
        log_file("hangup")
    ));
    tmux.wait_for("the dashboard", |s| s.contains("replay line 0"));
    let pid = tmux.foreground_child();
    drop(tmux);
    // The limit only bounds a hang (the old behaviour was to spin forever).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        if Instant::now() > deadline {
            // SAFETY: stopping the process this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the dashboard (pid {pid}) still runs 30 s after its terminal went away");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

#[test]
fn live_dashboard_with_the_workload_on_this_host() {
    if !common::root() {
        return;
    }
    let tmux = Tmux::start("live");
    let log = log_file("live");
    tmux.command(&format!("{BIN} --log-file {log}; echo \"exit status $?\""));
    // This host has no kprobes and refuses fentry: the tracepoint mode, said plainly.
    let screen = tmux.wait_for("traffic from the workload", |s| header_count(s, "events").is_some_and(|n| n > 0));
    assert!(screen.contains("DEGRADED: no start/end probes"), "{screen}");
    assert!(screen.contains("kvm_unmap_hva_range=tp_btf"), "{screen}");
    assert!(screen.contains("unavailable: range_start"), "{screen}");
    assert!(screen.contains("lost 0"), "{screen}");

    tmux.keys(&["2"]);
    tmux.wait_for("KVM's callback in the notifiers table", |s| s.contains("kvm_mmu_notifier_invalidate_range_start"));
    tmux.keys(&["5"]);
    tmux.wait_for("the workload's VM in the inventory", |s| s.contains("mn_active_invalidate_count"));

    tmux.keys(&["Space"]);
    let frozen = tmux.wait_for("the pause marker", |s| s.contains("PAUSED"));
    tmux.keys(&["Space"]);
    tmux.wait_for("the display running again", |s| !s.contains("PAUSED"));
    assert!(frozen.contains("Inventory"), "{frozen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell again", |s| s.contains("exit status 0"));
    assert!(screen.contains("kernel emitted"), "the session summary follows the dashboard: {screen}");
    assert!(!screen.contains("Notifiers ·"), "{screen}");
    tmux.assert_terminal_restored();
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(logged.contains("degraded: no start/end probes"), "the attach summary goes to the log: {logged}");
}

#[test]
fn live_dashboard_serves_metrics_until_it_quits() {
    if !common::root() {
        return;
    }
    let tmux = Tmux::start("metrics");
    let log = log_file("metrics");
    tmux.command(&format!("{BIN} --log-file {log} --metrics 127.0.0.1:0; echo \"exit status $?\""));
    tmux.wait_for("traffic from the workload", |s| header_count(s, "events").is_some_and(|n| n > 0));
    // The screen is the dashboard's: the address is in the log.
    let logged = std::fs::read_to_string(&log).expect("log file");
    let addr: SocketAddr = logged
        .lines()
        .find_map(|l| l.split("serving metrics at http://").nth(1)?.strip_suffix("/metrics")?.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in the log: {logged}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let (status, body) = http_get(addr, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        let samples = parse_exposition(&body);
        let events = sum(&samples, "mmnotif_events_total", &[]);
        let walks = sum(&samples, "mmnotif_inventory_refreshes_total", &[("result", "ok")]);
        if events > 0.0 && walks > 0.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "no events or inventory walk in the scrape:\n{body}");
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(sum(&samples, "mmnotif_tracer_info", &[]), 1.0);

    tmux.keys(&["q"]);
    tmux.wait_for("the shell again", |s| s.contains("exit status 0"));
    tmux.assert_terminal_restored();
    assert!(http_get(addr, "/metrics").is_err(), "the endpoint closes with the dashboard");
}
