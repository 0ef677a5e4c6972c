//! Command-line interface. This `--help` text is the reference documentation of every
//! subcommand and flag.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use probe_common::DEFAULT_RING_BYTES;

use crate::{
    check::policy::{Allow, parse_rule},
    checker::RuleId,
    loader::{AttachChoice, TracepointChoice, TracerOptions},
};

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
    /// Do not capture kernel stacks of range starts and ends (cheaper; violations then show no
    /// call path).
    #[arg(long)]
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
            stacks: !self.no_stacks,
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

#[derive(Args, Debug)]
#[command(
    override_usage = "mmnotif-trace check [OPTIONS] -- CMD [ARGS...]\n       mmnotif-trace check [OPTIONS] --replay FILE",
    after_help = "The command's output passes through untouched; the reports are written \
                        once it has exited and the last events are drained.\n\n\
                        Exit status: 0 no violation; 1 a violation counts, or the command \
                        failed (its status is a test case of its own); 2 usage error, or the \
                        command could not be started; 4 skip: no start/end probe can attach on \
                        this kernel, so pairing was not asserted (WARNs and losses still are); \
                        5 events were lost, the verdict is incomplete (unless --allow-lost); \
                        10-15 as for every subcommand. A failure outranks a loss, and a loss \
                        outranks a skip."
)]
pub struct CheckArgs {
    /// Judge this recorded trace (v1 JSON lines) instead of running a command.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["command", "pid_tree", "timeout", "metrics"])]
    pub replay: Option<PathBuf>,
    /// Print the KTAP v1 report on stdout, after the command's own output.
    #[arg(long)]
    pub ktap: bool,
    /// Write the KTAP v1 report to this file.
    #[arg(long, value_name = "FILE")]
    pub ktap_file: Option<PathBuf>,
    /// Write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the full JSON report (violations, statistics, attach methods, rules not checked,
    /// lost events) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Tolerate a known issue: the violations of RULE, or only those naming CALLBACK (a
    /// function; for kernel-warn, the WARN's caller); repeatable.
    #[arg(long = "allow", value_name = "RULE[:CALLBACK]", value_parser = Allow::parse)]
    pub allow: Vec<Allow>,
    /// Only violations of these rules fail the run (default: every rule).
    #[arg(long, value_name = "RULE,...", value_delimiter = ',', value_parser = parse_rule)]
    pub fail_on: Vec<RuleId>,
    /// Lost events do not make the verdict incomplete (they are still reported).
    #[arg(long)]
    pub allow_lost: bool,
    /// Stop the command after this many seconds (SIGTERM, then SIGKILL 5 s later); it then
    /// counts as failed.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Only check the command and its descendants (default: system-wide, since kernel threads
    /// such as the OOM reaper act on the test's behalf).
    #[arg(long)]
    pub pid_tree: bool,
    #[command(flatten)]
    pub tracer: TracerArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The command to run under the tracer, after `--`.
    #[arg(last = true, value_name = "CMD", required_unless_present = "replay")]
    pub command: Vec<String>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{s}: must be a positive number of seconds")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
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
    fn check_takes_a_command_or_a_trace_but_not_both() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["mmnotif-trace", "check"], args].concat());
        let Ok(Cli { command: Some(Command::Check(c)), .. }) =
            parse(&["--allow", "kernel-warn:f", "--fail-on", "unpaired-start,kernel-warn", "--", "sh", "-c", "x"])
        else {
            panic!("a command after -- parses")
        };
        assert_eq!(c.command, ["sh", "-c", "x"]);
        assert_eq!(c.fail_on, [RuleId::UnpairedStart, RuleId::KernelWarn]);
        assert_eq!(c.allow[0].to_string(), "kernel-warn:f");
        assert!(parse(&["--replay", "t.jsonl"]).is_ok());
        for bad in [
            &[][..],
            &["--replay", "t.jsonl", "--", "true"],
            &["--replay", "t.jsonl", "--pid-tree"],
            &["--replay", "t.jsonl", "--metrics"],
            &["--allow", "nonsense", "--", "true"],
            &["--fail-on", "unpaired-start,nonsense", "--", "true"],
            &["--timeout", "0", "--", "true"],
            &["true"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} must be refused"));
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn check_takes_the_tracer_options_of_the_other_live_modes() {
        let check =
            |args: &[&str]| match Cli::try_parse_from([&["mmnotif-trace", "check"], args, &["--", "true"]].concat()) {
                Ok(Cli { command: Some(Command::Check(c)), .. }) => c.tracer.tracer_options(),
                other => panic!("{args:?}: {other:?}"),
            };
        let set = check(&["--ring-size", "8192", "--wakeup-bytes", "4096", "--no-stacks", "--attach", "kprobe"]);
        assert_eq!(
            (set.ring_bytes, set.wakeup_bytes, set.stacks, set.attach),
            (8192, 4096, false, AttachChoice::Kprobe)
        );
        // Unset, they are what check used before it took them: the loader's defaults.
        let (unset, default) = (check(&[]), TracerOptions::default());
        assert_eq!(
            (unset.ring_bytes, unset.wakeup_bytes, unset.stacks, unset.attach, unset.tracepoints),
            (default.ring_bytes, default.wakeup_bytes, default.stacks, default.attach, default.tracepoints)
        );
    }

    #[test]
    fn ring_size_must_be_a_power_of_two() {
        assert!(parse_ring_size("4096").is_ok());
        assert_eq!(parse_ring_size("5000").unwrap_err(), "5000 is not a power of two of at least 4096");
        assert!(Cli::try_parse_from(["mmnotif-trace", "stream", "--ring-size", "12"]).is_err());
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
