use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::runner::{LiveSession, Sink};
use crate::{
    checker::Violation,
    cli::{SelftestArgs, TextOrJson},
    filter::EventFilter,
    loader::TracerOptions,
    selftest::{PlannedStep, StepRecord, judge},
    trace::Event,
};

/// Keeps every event: the steps are judged against them once the workload is done (the
/// session's checker runs too, for `--metrics`).
struct Collected(Vec<Event>);

impl Sink for Collected {
    type Output = Vec<Event>;

    fn event(&mut self, event: &Event, _violations: &[Violation]) {
        self.0.push(event.clone());
    }

    fn close(self) -> Result<Vec<Event>> {
        Ok(self.0)
    }
}

pub async fn run(args: &SelftestArgs) -> Result<u8> {
    let opts = TracerOptions {
        attach: args.attach.attach,
        tracepoints: args.attach.tracepoint_method,
        ..TracerOptions::default()
    };
    let session =
        LiveSession::start(&opts, args.metrics.metrics, EventFilter::default(), None, |_, _| Ok(Collected(Vec::new())))
            .await?;
    let summary = session.attach.summary();
    let steps = run_workload().await;
    if steps.is_ok() {
        // Let the last records reach the ring buffer reader.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Detach before reporting, whether the workload ran or not.
    let end = session.finish().await;
    let steps = steps?;
    let end = end?;
    let verdict = judge(&steps, &end.output, end.totals.kernel.dropped());
    match args.format {
        TextOrJson::Text => print!("{}", verdict.render_text(&summary)),
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&verdict)?),
    }
    Ok(if verdict.pass { 0 } else { crate::exit::FAILED })
}

/// Runs the workload and reads the steps it reports having taken.
async fn run_workload() -> Result<Vec<PlannedStep>> {
    let mut child = super::spawn_workload(&["--format", "jsonl"], true)?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("workload stdout not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut steps = Vec::new();
    let mut line_no = 0;
    while let Some(line) = lines.next_line().await.context("reading the workload's reports")? {
        line_no += 1;
        let rec: StepRecord =
            serde_json::from_str(&line).with_context(|| format!("workload output line {line_no}: {line}"))?;
        steps.push(PlannedStep::from_record(rec).map_err(|e| anyhow!("workload output line {line_no}: {e}"))?);
    }
    let status = child.wait().await.context("waiting for the workload")?;
    if !status.success() {
        return Err(anyhow!("the workload failed ({status})"));
    }
    Ok(steps)
}
