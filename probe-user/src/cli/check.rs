//! `check`'s options: a command to run under the tracer or a trace to judge, and the reports.

use std::path::PathBuf;

use clap::Args;

use super::{MetricsArgs, TracerArgs};
use crate::{
    check::policy::{Allow, parse_rule},
    checker::RuleId,
};

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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{
        cli::{Cli, Command},
        loader::{AttachChoice, TracerOptions},
    };

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
        let set = check(&["--ring-size", "8192", "--wakeup-bytes", "4096", "--stacks", "--attach", "kprobe"]);
        assert_eq!(
            (set.ring_bytes, set.wakeup_bytes, set.stacks, set.attach),
            (8192, 4096, true, AttachChoice::Kprobe)
        );
        // Stacks are off unless asked for; the old --no-stacks still parses, and says the same.
        assert!(!check(&[]).stacks && !check(&["--no-stacks"]).stacks);
        // Unset, they are what check used before it took them: the loader's defaults.
        let (unset, default) = (check(&[]), TracerOptions::default());
        assert_eq!(
            (unset.ring_bytes, unset.wakeup_bytes, unset.stacks, unset.attach, unset.tracepoints),
            (default.ring_bytes, default.wakeup_bytes, default.stacks, default.attach, default.tracepoints)
        );
    }
}
