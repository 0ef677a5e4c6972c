//! One module per subcommand, each returning the process exit status, and the session
//! runner the live ones share.
pub mod check;
pub mod inventory;
pub mod live;
pub mod manual;
pub mod probe;
pub mod replay;
pub mod runner;
pub mod selftest;
pub mod workload;

use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// Starts this binary's `workload` subcommand as a child process.
pub fn spawn_workload(args: &[&str], stdout_piped: bool) -> anyhow::Result<Child> {
    let mut cmd = Command::from(crate::workload::command(args)?);
    cmd.kill_on_drop(true);
    cmd.stdout(if stdout_piped { Stdio::piped() } else { Stdio::null() });
    cmd.spawn().context("starting the built-in workload")
}
