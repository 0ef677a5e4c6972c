//! The options of the live modes: how the tracer is set up and what it traces.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};
use probe_common::DEFAULT_RING_BYTES;

use super::{Cli, Command, MetricsArgs};
use crate::loader::{AttachChoice, TracepointChoice, TracerOptions};

/// How hooks are attached.
#[derive(Args, Debug, Clone)]
pub struct AttachArgs {
    /// Method for the function hooks (__start/__end, mn_itree_inv_end, registrations): fentry/fexit
    /// where the kernel allows it, else kprobes; or only one of them. Subscriber callbacks
    /// always use kprobes (they live in modules).
    #[arg(long, value_enum, default_value_t = AttachChoice::Auto)]
    pub attach: AttachChoice,
    /// Method for the tracepoint hooks: tp_btf, falling back to raw tracepoints; or only one.
    #[arg(long, value_enum, default_value_t = TracepointChoice::Auto, value_name = "METHOD")]
    pub tracepoint_method: TracepointChoice,
}

/// Options shared by every live mode.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Only events of these processes (thread group ids); repeatable.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only events of tasks with this exact command name; repeatable.
    #[arg(long = "comm", value_name = "COMM")]
    pub comms: Vec<String>,
    /// Also run the built-in workload as traffic (repeating until the trace stops).
    #[arg(long)]
    pub workload: bool,
    #[command(flatten)]
    pub tracer: TracerArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

impl LiveArgs {
    /// The options of `stream --workload`, every other flag at its default.
    pub fn with_workload() -> LiveArgs {
        match Cli::try_parse_from(["mmnotif-trace", "stream", "--workload"]).map(|c| c.command) {
            Ok(Some(Command::Stream(s))) => s.live,
            other => unreachable!("fixed arguments parse as a stream command: {other:?}"),
        }
    }

    pub fn tracer_options(&self) -> TracerOptions {
        self.tracer.tracer_options()
    }
}

/// How the tracer is set up: every live mode's, `check`'s included.
#[derive(Args, Debug, Clone)]
pub struct TracerArgs {
    /// Ring buffer size in bytes (power of two, at least 4096).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES, value_parser = parse_ring_size)]
    pub ring_size: u32,
    /// Wake the reader early once this many bytes are pending (otherwise it drains every 10 ms).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10)]
    pub wakeup_bytes: u64,
    /// Capture the kernel stack of every outer range start and end, so a violation shows its
    /// call path. Off by default: in the worst-case loop it costs 1.15-1.25x on top of the rest
    /// of the full probe path on an idle host, up to 1.8x on a busy one (README, benchmarks).
    #[arg(long)]
    pub stacks: bool,
    /// The default (no stacks); accepted so that unit files written when stacks were captured
    /// by default keep working.
    #[arg(long, hide = true, conflicts_with = "stacks")]
    pub no_stacks: bool,
    #[command(flatten)]
    pub attach: AttachArgs,
}

impl TracerArgs {
    pub fn tracer_options(&self) -> TracerOptions {
        TracerOptions {
            ring_bytes: self.ring_size,
            wakeup_bytes: self.wakeup_bytes,
            attach: self.attach.attach,
            tracepoints: self.attach.tracepoint_method,
            stacks: self.stacks,
            count_only: false,
        }
    }
}

/// What `stream` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StreamFormat {
    Text,
    Jsonl,
    Violations,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// text: every event, violations inline; jsonl: the v1 trace (a header line, then every
    /// event); violations: only the checker's violations, one JSON object a line (for a
    /// service's journal).
    #[arg(long, value_enum, default_value_t = StreamFormat::Text)]
    pub format: StreamFormat,
    /// Measure the probes alone: attach and run every program, but emit no record; the kernel
    /// side only counts. Prints nothing but that count and checks nothing (subscribers that
    /// register meanwhile are not probed). For comparing a full trace's cost with its floor.
    #[arg(long, conflicts_with_all = ["pids", "comms", "metrics"])]
    pub count_only: bool,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The trace file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub live: LiveArgs,
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v < 4096 || !v.is_power_of_two() {
        return Err(format!("{v} is not a power of two of at least 4096"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_must_be_a_power_of_two() {
        assert!(parse_ring_size("4096").is_ok());
        assert_eq!(parse_ring_size("5000").unwrap_err(), "5000 is not a power of two of at least 4096");
        assert!(Cli::try_parse_from(["mmnotif-trace", "stream", "--ring-size", "12"]).is_err());
    }
}
