//! Running host tools with errors that say what ran and what it printed.
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` to completion, capturing its output; fails (with its stderr) on a non-zero exit.
pub(super) fn output(cmd: &mut Command) -> Result<Output> {
    let shown = show(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run `{shown}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        bail!("`{shown}` failed ({}):\n{}{}", out.status, tail(&stdout, 20), tail(&stderr, 40));
    }
    Ok(out)
}

pub(super) fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = all[start..].join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// Fails with a clear message when a host tool is missing.
pub(crate) fn require_tool(tool: &str, package: &str) -> Result<()> {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    if !found {
        bail!("`{tool}` is not installed (Debian package {package}; scripts/setup.sh installs it)");
    }
    Ok(())
}

/// Creates a directory and its parents, naming it on failure.
pub(super) fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}
