//! `mmnotif-trace check`: attach, run the command (its output untouched), detach once it has
//! exited and the last events are drained, then report for CI. `--replay` judges a recorded
//! trace instead.

use std::{fs::File, io::Write, os::unix::process::ExitStatusExt, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use tokio::{
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    time::Instant,
};

use super::runner::{LiveSession, Sink};
use crate::{
    check::{
        self, CheckOutcome, CommandEnd, CommandResult, LiveRun, Policy, Source, evaluate,
        fork_watch::ForkWatch,
        json, junit, ktap,
        pid_tree::{self, PidTree, PidTreeSummary, ProcFs},
        text,
    },
    checker::Violation,
    cli::CheckArgs,
    clock::monotonic_ns,
    exit::UsageError,
    filter::EventFilter,
    inventory::{BlockedTask, InventoryWalker, WalkError},
    loader::KernelContext,
    trace::{Addr, Event},
};

/// Between attaching and starting the command: invalidations already in flight when the tracer
/// attached finish before the command's run begins.
const LEAD_IN: Duration = Duration::from_millis(100);
/// After the command exits: the last records reach the reader, and kernel threads finish
/// what the command's exit set off (the OOM reaper).
const DRAIN: Duration = Duration::from_millis(250);
/// After `--timeout`'s SIGTERM, how long the command has before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A report writer: KTAP, JUnit or JSON.
type Render = fn(&CheckOutcome) -> String;

/// The report files, created before the command runs so a bad path fails at once.
struct ReportFiles {
    files: Vec<(PathBuf, File, Render)>,
}

impl ReportFiles {
    fn create(args: &CheckArgs) -> Result<ReportFiles> {
        let mut files = Vec::new();
        let wanted: [(&Option<PathBuf>, &str, Render); 3] = [
            (&args.ktap_file, "--ktap-file", ktap::render),
            (&args.junit, "--junit", junit::render),
            (&args.json, "--json", json::render),
        ];
        for (path, option, render) in wanted {
            if let Some(path) = path {
                let file = File::create(path).map_err(|e| UsageError(format!("{option} {}: {e}", path.display())))?;
                files.push((path.clone(), file, render));
            }
        }
        Ok(ReportFiles { files })
    }

    fn write(self, outcome: &CheckOutcome) -> Result<()> {
        for (path, mut file, render) in self.files {
            file.write_all(render(outcome).as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

pub async fn run(args: &CheckArgs) -> Result<u8> {
    let policy = Policy::new(args.allow.clone(), args.fail_on.clone(), args.allow_lost);
    let files = ReportFiles::create(args)?;
    let outcome = match &args.replay {
        Some(path) => check::check_trace(path, &policy)?,
        None => run_live(args, &policy).await?,
    };
    files.write(&outcome)?;
    if args.ktap {
        let mut out = std::io::stdout().lock();
        out.write_all(ktap::render(&outcome).as_bytes()).context("writing the KTAP report to stdout")?;
        out.flush().context("writing the KTAP report to stdout")?;
    }
    eprint!("{}", text::summary(&outcome));
    Ok(outcome.exit_code())
}

/// `--pid-tree`'s filter: the tree, fed with the forks the connector reports.
struct TreeFilter {
    tree: PidTree<ProcFs>,
    watch: Option<ForkWatch>,
    /// When the fork queue was last read (CLOCK_MONOTONIC ns): events after that need a read.
    drained_at: u64,
}

impl TreeFilter {
    fn keeps(&mut self, event: &Event) -> bool {
        if let Some(watch) = &mut self.watch
            && event.ts >= self.drained_at
        {
            // Every fork before this event was queued before this read began.
            self.drained_at = monotonic_ns();
            let overflows = watch.overflows;
            let tree = &mut self.tree;
            watch.drain(|fork| tree.on_fork(fork.parent_tgid, fork.child_tgid));
            if watch.overflows > overflows {
                self.tree.fork_events_lost();
            }
        }
        self.tree.keeps(event)
    }
}

/// Narrows the session to the command's process tree with `--pid-tree`; sinks nothing else,
/// since the reports are written from the checker's report at the end.
struct CheckSink {
    tree: Option<TreeFilter>,
}

impl Sink for CheckSink {
    type Output = Option<PidTreeSummary>;

    fn keep(&mut self, event: &Event) -> bool {
        self.tree.as_mut().is_none_or(|tree| tree.keeps(event))
    }

    fn event(&mut self, _event: &Event, _violations: &[Violation]) {}

    fn close(self) -> Result<Self::Output> {
        Ok(self.tree.map(|filter| filter.tree.summary()))
    }
}

/// Sets up `--pid-tree` before the command exists, so its fork is seen.
fn tree_filter() -> Result<TreeFilter> {
    pid_tree::become_subreaper().context("--pid-tree: becoming the child subreaper of the command's descendants")?;
    let watch = match ForkWatch::open() {
        Ok(watch) => Some(watch),
        Err(e) => {
            eprintln!("mmnotif-trace: --pid-tree: no process events connector ({e}); placing processes from /proc");
            None
        }
    };
    let tree = PidTree::new(std::process::id(), ProcFs, watch.is_some());
    Ok(TreeFilter { tree, watch, drained_at: 0 })
}

async fn run_live(args: &CheckArgs, policy: &Policy) -> Result<CheckOutcome> {
    let opts = args.tracer.tracer_options();
    let tree = if args.pid_tree { Some(tree_filter()?) } else { None };
    let session = LiveSession::start(&opts, args.metrics.metrics, EventFilter::default(), None, move |_, _| {
        Ok(CheckSink { tree })
    })
    .await?;
    let header = session.header.clone();
    let kernel = session.kernel.clone();
    tokio::time::sleep(LEAD_IN).await;
    let command = match run_command(&args.command, args.timeout).await {
        Ok(command) => command,
        Err(e) => {
            // Detach before reporting that the command could not run.
            let _ = session.finish().await;
            return Err(e);
        }
    };
    tokio::time::sleep(DRAIN).await;
    let detach_ts = monotonic_ns();
    let end = session.finish().await?;
    if args.pid_tree {
        pid_tree::reap_adopted();
    }
    eprintln!("mmnotif-trace: {}", end.totals.summary());
    let leaked: Vec<_> = end.report.itree_leaks.iter().map(|l| l.mm).collect();
    let stuck = stuck_tasks(kernel, &leaked);
    let run =
        LiveRun { command, session: end.totals, pid_tree: end.output, detach_ts, open_at_end: end.open_at_end, stuck };
    Ok(evaluate(end.report, &header, policy, Source::Live(Box::new(run))))
}

/// The tasks left stuck in a notifier wait, those waiting on a leaked mm's interval tree tied
/// to it. A walk that fails is said on stderr, not fatal: the verdict does not depend on it.
fn stuck_tasks(kernel: KernelContext, leaked: &[Addr]) -> Vec<BlockedTask> {
    let walk = InventoryWalker::open(kernel).map_err(WalkError::from).and_then(|mut w| w.blocked(leaked));
    walk.unwrap_or_else(|e| {
        eprintln!("mmnotif-trace: warning: could not look for stuck tasks: {e}");
        Vec::new()
    })
}

fn send_signal(child: &Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling our own child, which has not been reaped yet (`id` is Some).
        unsafe { libc::kill(pid as i32, signal) };
    }
}

/// Runs the command with inherited stdin, stdout and stderr; SIGTERM sent to mmnotif-trace is
/// passed on to it, and Ctrl-C (which the terminal delivers to both) only waits for it.
async fn run_command(argv: &[String], timeout: Option<f64>) -> Result<CommandResult> {
    let (program, rest) = argv.split_first().ok_or_else(|| UsageError("no command given after --".into()))?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let started_ts = monotonic_ns();
    let mut child = Command::new(program)
        .args(rest)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| UsageError(format!("cannot run the command {program:?}: {e}")))?;
    let pid = child.id().unwrap_or(0);
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let end = loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.context("waiting for the command")?;
                break match status.code() {
                    Some(code) => CommandEnd::Exited { code },
                    None => CommandEnd::Signaled { signal: status.signal().unwrap_or(0) },
                };
            }
            _ = sigterm.recv() => send_signal(&child, libc::SIGTERM),
            _ = sigint.recv() => {}
            _ = &mut until_deadline => {
                send_signal(&child, libc::SIGTERM);
                let signal = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(_) => libc::SIGTERM,
                    Err(_) => {
                        let _ = child.kill().await;
                        libc::SIGKILL
                    }
                };
                break CommandEnd::TimedOut { seconds: timeout.unwrap_or_default(), signal };
            }
        }
    };
    Ok(CommandResult { argv: argv.to_vec(), pid, end, started_ts, ended_ts: monotonic_ns() })
}
