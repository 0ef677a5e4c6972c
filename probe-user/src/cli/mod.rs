//! Command-line interface. This `--help` text is the reference documentation of every
//! subcommand and flag.
//!
//! The live modes' options are in `live.rs`, `check`'s in `check.rs`.

mod check;
mod live;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use check::CheckArgs;
pub use live::{AttachArgs, LiveArgs, RecordArgs, StreamArgs, StreamFormat, TracerArgs};

#[derive(Parser, Debug)]
#[command(
    name = "mmnotif-trace",
    version,
    about = "Trace mmu-notifier invalidations (__mmu_notifier_invalidate_range_start/_end and every \
             subscriber's callbacks), pair them per range and per notifier, and flag what the kernel \
             and its subscribers get wrong.",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, on a terminal: open the live dashboard (the tracer with the \
                  built-in KVM workload as traffic; ? shows its keys, q quits). When stdin or \
                  stdout is not a terminal: print the live text stream instead (same as `stream \
                  --workload`).\n\nExit status: 0 success; 1 a check failed; 2 usage \
                  error; 4 check: nothing about pairing could be asserted (skip); 5 check: events were \
                  lost, the verdict is incomplete; 10 not root; 11 no kernel BTF; 12 no /dev/kvm; \
                  13 BPF load/attach failed; 14 the binary lacks its eBPF object; 15 bad input file; \
                  101 internal error (a panic)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// For the default live mode (no subcommand).
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Options of the dashboard (no subcommand, and `replay --tui`).
#[derive(Args, Debug, Clone, Default)]
pub struct DashboardArgs {
    /// Where the dashboard logs (it never logs to the terminal it draws on) [default:
    /// $XDG_STATE_HOME/mmnotif-trace/dashboard.log, else ~/.local/state/mmnotif-trace/dashboard.log]
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// `--metrics`, on every live mode.
#[derive(Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while tracing. ADDR is PORT (on
    /// 127.0.0.1), IP or IP:PORT; without a value, 127.0.0.1:9477.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = crate::metrics::DEFAULT_ADDR,
        value_parser = crate::metrics::parse_metrics_addr
    )]
    pub metrics: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report what this kernel offers (BTF, fentry/fexit, kprobes, each tracepoint, iterators,
    /// KVM), found by loading and attaching, and which attach method each hook uses.
    Probe(ProbeArgs),
    /// Trace live and print decoded events.
    Stream(StreamArgs),
    /// Trace live and write a v1 JSON-lines trace to a file (same records as `stream --format jsonl`).
    Record(RecordArgs),
    /// Run the checker over a recorded v1 trace and print its verdict, violations and statistics
    /// (with --tui: show them in the dashboard, with time controls).
    Replay(ReplayArgs),
    /// Audit every mm that has notifier subscriptions (BPF task iterator): subscribers, their
    /// callbacks, interval-tree state and KVM's invalidation counters.
    Inventory(InventoryArgs),
    /// Run the built-in KVM workload: create a VM with a memory slot, then madvise DONTNEED/FREE,
    /// mprotect, mremap, munmap, fork and VM close, each step named and timed.
    Workload(WorkloadArgs),
    /// Run the workload under the tracer and compare, step by step, the invalidations expected
    /// with those observed.
    Selftest(SelftestArgs),
    /// CI assertion mode: run a command under the tracer (or judge a recorded trace) and report
    /// the verdict as KTAP v1, JUnit XML and JSON, with a kselftest-style exit status.
    Check(CheckArgs),
    /// Print the shell completion script for SHELL (e.g. `mmnotif-trace completions bash >
    /// /usr/share/bash-completion/completions/mmnotif-trace`).
    Completions(CompletionsArgs),
    /// Print the man page mmnotif-trace(8), or with --dir write it and one page per subcommand
    /// (mmnotif-trace-SUBCOMMAND(8)) into a directory.
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write every page into this directory (created if missing) instead of printing
    /// mmnotif-trace(8).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextOrJsonl {
    Text,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
    #[command(flatten)]
    pub attach: AttachArgs,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace file (v1 JSON lines, as written by `record` or `stream --format jsonl`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
    /// Open the dashboard over the recording instead of printing (Space pause, n step, +/- speed)
    #[arg(long, conflicts_with = "format")]
    pub tui: bool,
    /// With --tui: replay at this multiple of the recorded pace (1/64 to 1048576)
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_speed, requires = "tui")]
    pub speed: f64,
    /// With --tui: start paused (step with n, play with Space)
    #[arg(long, requires = "tui")]
    pub start_paused: bool,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

#[derive(Args, Debug)]
pub struct InventoryArgs {
    #[arg(long, value_enum, default_value_t = TextOrJsonl::Text)]
    pub format: TextOrJsonl,
}

#[derive(Args, Debug)]
pub struct WorkloadArgs {
    /// Comma-separated steps, or "all": madvise_dontneed, madvise_free, mprotect,
    /// mremap_dontunmap, munmap, fork, vm_close.
    #[arg(long, default_value = "all")]
    pub steps: String,
    /// Run the step list this many times, each in a fresh VM (0: until killed).
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Keep the VM open this long after each round's steps, in milliseconds (unless the round
    /// closed it with vm_close).
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
    #[arg(long, value_enum, default_value_t = TextOrJsonl::Text)]
    pub format: TextOrJsonl,
    /// Instead of the steps: zap and refault one page this many times and print ns per iteration
    /// (the benchmark's worst case).
    #[arg(long, value_name = "ITERATIONS")]
    pub hammer: Option<u64>,
}

#[derive(Args, Debug)]
pub struct SelftestArgs {
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
    #[command(flatten)]
    pub attach: AttachArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(1.0 / 64.0..=1_048_576.0).contains(&v) {
        return Err(format!("{s} is outside 1/64 (0.015625) to 1048576"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_time_controls_need_the_dashboard() {
        assert!(Cli::try_parse_from(["mmnotif-trace", "replay", "t.jsonl", "--speed", "2"]).is_err());
        assert!(Cli::try_parse_from(["mmnotif-trace", "replay", "t.jsonl", "--tui", "--speed", "0"]).is_err());
        assert!(Cli::try_parse_from(["mmnotif-trace", "replay", "t.jsonl", "--tui", "--format", "json"]).is_err());
        let cli =
            Cli::try_parse_from(["mmnotif-trace", "replay", "t.jsonl", "--tui", "--speed", "0.5", "--start-paused"])
                .unwrap();
        let Some(Command::Replay(args)) = cli.command else { panic!("not replay") };
        assert!(args.tui && args.start_paused && args.speed == 0.5);
        assert!(
            Cli::try_parse_from(["mmnotif-trace", "--log-file", "x", "stream"]).is_err(),
            "--log-file is the dashboard's"
        );
        assert!(Cli::try_parse_from(["mmnotif-trace", "--log-file", "x"]).is_ok());
    }

    fn stream_metrics(args: &[&str]) -> Option<SocketAddr> {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Some(Command::Stream(s)) => s.live.metrics.metrics,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metrics_is_off_by_default_and_loopback_without_an_address() {
        assert_eq!(stream_metrics(&["mmnotif-trace", "stream"]), None);
        assert_eq!(stream_metrics(&["mmnotif-trace", "stream", "--metrics"]), Some("127.0.0.1:9477".parse().unwrap()));
        assert_eq!(
            stream_metrics(&["mmnotif-trace", "stream", "--metrics", "--workload"]),
            Some("127.0.0.1:9477".parse().unwrap())
        );
        assert_eq!(
            stream_metrics(&["mmnotif-trace", "stream", "--metrics", "9100"]),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(
            stream_metrics(&["mmnotif-trace", "stream", "--metrics=0.0.0.0:9100"]),
            Some("0.0.0.0:9100".parse().unwrap())
        );
        let default_mode = Cli::try_parse_from(["mmnotif-trace", "--metrics", "9200"]).expect("parses");
        assert!(default_mode.command.is_none());
        assert_eq!(default_mode.metrics.metrics, Some("127.0.0.1:9200".parse().unwrap()));
        assert!(matches!(
            Cli::try_parse_from(["mmnotif-trace", "selftest", "--metrics"]).map(|c| c.command),
            Ok(Some(Command::Selftest(SelftestArgs { metrics: MetricsArgs { metrics: Some(_) }, .. })))
        ));
        assert!(matches!(
            Cli::try_parse_from(["mmnotif-trace", "check", "--metrics", "9300", "--", "true"]).map(|c| c.command),
            Ok(Some(Command::Check(CheckArgs { metrics: MetricsArgs { metrics: Some(a) }, .. }))) if a.port() == 9300
        ));
        let bad = Cli::try_parse_from(["mmnotif-trace", "record", "-o", "x", "--metrics", "localhost:1"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("--metrics") && bad.contains("is not a port"), "{bad}");
        assert!(
            Cli::try_parse_from(["mmnotif-trace", "--metrics", "9200", "stream"]).is_err(),
            "default-mode flag before a subcommand"
        );
    }
}
