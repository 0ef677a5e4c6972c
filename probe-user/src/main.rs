//! `mmnotif-trace`: see `mmnotif-trace --help`.

use std::process::ExitCode;

use clap::Parser;
use mmnotif_trace::{
    cli::{Cli, Command, LiveArgs, MetricsArgs, StreamFormat},
    cmd, dashboard, exit,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        // The workload must stay single-threaded and free of a runtime (its fork step predicts
        // exactly which mappings fork touches), so it runs before any runtime is built.
        Some(Command::Workload(args)) => cmd::workload::run(args),
        Some(Command::Probe(args)) => cmd::probe::run(args),
        Some(Command::Inventory(args)) => cmd::inventory::run(args),
        Some(Command::Replay(args)) => cmd::replay::run(args),
        Some(Command::Completions(args)) => cmd::manual::completions(args),
        Some(Command::Man(args)) => cmd::manual::man(args),
        None if dashboard::live::interactive_terminal() => {
            dashboard::live::run(cli.dashboard.log_file.as_deref(), cli.metrics.metrics)
        }
        other => run_async(other, &cli.metrics),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Some errors repeat their cause in their own text; print each piece once.
            let mut line = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !line.contains(&text) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&text);
                }
            }
            eprintln!("mmnotif-trace: {line}");
            ExitCode::from(exit::for_error(&e))
        }
    }
}

fn run_async(command: &Option<Command>, metrics: &MetricsArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        match command {
            Some(Command::Stream(args)) if args.count_only => cmd::live::count_only(&args.live).await,
            Some(Command::Stream(args)) => cmd::live::run(&args.live, cmd::live::Output::Stdout(args.format)).await,
            Some(Command::Record(args)) => {
                cmd::live::run(&args.live, cmd::live::Output::File(args.output.clone())).await
            }
            Some(Command::Selftest(args)) => cmd::selftest::run(args).await,
            Some(Command::Check(args)) => cmd::check::run(args).await,
            // Not a terminal (piped, redirected): the live text stream with the workload.
            None => {
                let live = LiveArgs { metrics: metrics.clone(), ..LiveArgs::with_workload() };
                cmd::live::run(&live, cmd::live::Output::Stdout(StreamFormat::Text)).await
            }
            Some(
                Command::Workload(_)
                | Command::Probe(_)
                | Command::Inventory(_)
                | Command::Replay(_)
                | Command::Completions(_)
                | Command::Man(_),
            ) => {
                unreachable!("handled synchronously")
            }
        }
    })
}
