//! The completion scripts `mmnotif-trace completions SHELL` prints, loaded into real bash, zsh
//! and fish (installed by scripts/setup.sh, which CI runs first): each shell's own completion
//! machinery runs the script for a typed command line, and must offer a subcommand from its
//! prefix, every subcommand after the program name, and a subcommand's flags. The drivers in
//! tests/shells/ do the typing; a script that fails to load or to run offers nothing.

mod common;

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use clap::CommandFactory;
use common::BIN;
use mmnotif_trace::cli::Cli;

/// How long one completion may take (an interactive zsh in a pty included).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// The file name the script is installed under (as in the Debian package).
    fn script_name(self) -> &'static str {
        match self {
            Shell::Bash => "mmnotif-trace",
            Shell::Zsh => "_mmnotif-trace",
            Shell::Fish => "mmnotif-trace.fish",
        }
    }

    /// The shell, started without any user or system configuration, running `driver`.
    fn command(self, driver: &Path) -> Command {
        let mut c = Command::new(self.name());
        match self {
            Shell::Bash => c.args(["--norc", "--noprofile"]),
            Shell::Zsh => c.arg("-f"),
            Shell::Fish => c.arg("--no-config"),
        };
        c.arg(driver);
        c
    }
}

/// The completion script for `shell`, written where its driver loads it from: (the script,
/// an empty directory to run in, so no file name can pass for a completion).
fn install_script(shell: Shell) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mmnotif-completions-{}-{}", std::process::id(), shell.name()));
    let cwd = dir.join("empty");
    std::fs::create_dir_all(&cwd).expect("temporary directory");
    let out = Command::new(BIN).args(["completions", shell.name()]).output().expect("run mmnotif-trace");
    assert!(out.status.success(), "completions {}: {}", shell.name(), String::from_utf8_lossy(&out.stderr));
    let script = dir.join(shell.script_name());
    std::fs::write(&script, &out.stdout).expect("write the completion script");
    (script, cwd)
}

/// What `shell` offers when TAB is pressed at the end of `line`.
fn complete(shell: Shell, line: &str) -> Vec<String> {
    let (script, cwd) = install_script(shell);
    let driver =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/shells").join(format!("complete.{}", shell.name()));
    // zsh finds completion functions by directory ($fpath); bash and fish source the file.
    let target = match shell {
        Shell::Zsh => script.parent().expect("script directory").to_path_buf(),
        Shell::Bash | Shell::Fish => script,
    };
    let mut child = shell
        .command(&driver)
        .arg(&target)
        .arg(line)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {}: {e}; install it with scripts/setup.sh (cargo xtask setup)", shell.name())
        });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the shell") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish completing {line:?} within {TIMEOUT:?}", shell.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    assert!(status.success(), "{} completing {line:?} failed ({status}): {err}{out}", shell.name());
    let words: Vec<String> = out.lines().map(str::trim).filter(|w| !w.is_empty()).map(String::from).collect();
    assert!(!words.iter().any(|w| w.starts_with('!')), "{}: {words:?}", shell.name());
    words
}

/// The subcommands a user can type, from the clap definition.
fn subcommands() -> Vec<String> {
    Cli::command().get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string()).collect()
}

fn check_shell(shell: Shell) {
    let name = shell.name();
    let words = complete(shell, "mmnotif-trace ch");
    assert!(words.contains(&"check".to_string()), "{name}: `mmnotif-trace ch<TAB>` offers {words:?}");
    assert!(words.iter().all(|w| w.starts_with("ch")), "{name}: `mmnotif-trace ch<TAB>` offers {words:?}");

    let words = complete(shell, "mmnotif-trace ");
    for sub in subcommands() {
        assert!(words.contains(&sub), "{name}: `mmnotif-trace <TAB>` lacks {sub}: {words:?}");
    }

    let words = complete(shell, "mmnotif-trace stream --ring-s");
    assert!(
        words.contains(&"--ring-size".to_string()),
        "{name}: `mmnotif-trace stream --ring-s<TAB>` offers {words:?}"
    );
}

#[test]
fn bash_completes_subcommands_and_flags() {
    check_shell(Shell::Bash);
}

#[test]
fn zsh_completes_subcommands_and_flags() {
    check_shell(Shell::Zsh);
}

#[test]
fn fish_completes_subcommands_and_flags() {
    check_shell(Shell::Fish);
}
