//! Command-line interface. This `--help` text is the reference documentation of every
//! subcommand and flag.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mmnotif-trace",
    version,
    about = "Trace mmu-notifier invalidations (__mmu_notifier_invalidate_range_start/_end and every \
             subscriber's callbacks), pair them per range and per notifier, and flag what the kernel \
             and its subscribers get wrong.",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand: trace live with the built-in KVM workload as traffic \
                  (same as `stream --workload`).\n\nExit status: 0 success; 1 a check failed; 2 usage \
                  error; 10 not root; 11 no kernel BTF; 12 no /dev/kvm; 13 BPF load/attach failed; \
                  14 the binary lacks its eBPF object; 15 bad input file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// For the default live mode (no subcommand).
    #[command(flatten)]
    pub metrics: MetricsArgs,
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
    /// Run the checker over a recorded v1 trace and print its verdict, violations and statistics.
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
    /// Ring buffer size in bytes (power of two, at least 4096).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = parse_ring_size)]
    pub ring_size: u32,
    /// Wake the reader early once this many bytes are pending (otherwise it drains every 10 ms).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10)]
    pub wakeup_bytes: u64,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    #[arg(long, value_enum, default_value_t = TextOrJsonl::Text)]
    pub format: TextOrJsonl,
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

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace file (v1 JSON lines, as written by `record` or `stream --format jsonl`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
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
    pub metrics: MetricsArgs,
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
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ring_size_must_be_a_power_of_two() {
        assert!(parse_ring_size("4096").is_ok());
        assert_eq!(parse_ring_size("5000").unwrap_err(), "5000 is not a power of two of at least 4096");
        assert!(Cli::try_parse_from(["mmnotif-trace", "stream", "--ring-size", "12"]).is_err());
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
        assert_eq!(stream_metrics(&["mmnotif-trace", "stream", "--metrics", "--workload"]), Some("127.0.0.1:9477".parse().unwrap()));
        assert_eq!(stream_metrics(&["mmnotif-trace", "stream", "--metrics", "9100"]), Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(stream_metrics(&["mmnotif-trace", "stream", "--metrics=0.0.0.0:9100"]), Some("0.0.0.0:9100".parse().unwrap()));
        let default_mode = Cli::try_parse_from(["mmnotif-trace", "--metrics", "9200"]).expect("parses");
        assert!(default_mode.command.is_none());
        assert_eq!(default_mode.metrics.metrics, Some("127.0.0.1:9200".parse().unwrap()));
        assert!(matches!(
            Cli::try_parse_from(["mmnotif-trace", "selftest", "--metrics"]).map(|c| c.command),
            Ok(Some(Command::Selftest(SelftestArgs { metrics: MetricsArgs { metrics: Some(_) }, .. })))
        ));
        let bad = Cli::try_parse_from(["mmnotif-trace", "record", "-o", "x", "--metrics", "localhost:1"]).unwrap_err().to_string();
        assert!(bad.contains("--metrics") && bad.contains("is not a port"), "{bad}");
        assert!(Cli::try_parse_from(["mmnotif-trace", "--metrics", "9200", "stream"]).is_err(), "default-mode flag before a subcommand");
    }
}
