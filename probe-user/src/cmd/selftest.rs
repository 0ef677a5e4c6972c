use std::{
    sync::{Arc, atomic::{AtomicBool, Ordering}},
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::live::CheckedSink;
use crate::{
    checker::{Checker, Violation},
    cli::{SelftestArgs, TextOrJson},
    decode::Decoder,
    filter::EventFilter,
    loader::{Tracer, TracerOptions},
    metrics::Exporter,
    selftest::{PlannedStep, StepRecord, judge},
    trace::Event,
};

pub async fn run(args: &SelftestArgs) -> Result<u8> {
    let mut tracer = Tracer::start(&TracerOptions::default())?;
    let summary = tracer.attach.summary();
    let exporter = super::live::start_metrics(&args.metrics, &tracer).await?;
    let recorder = exporter.as_ref().map(Exporter::recorder);
    let header = super::live::header(&tracer.kernel.release, &tracer.attach);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_in_session = stop.clone();
    let session = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut collector = tracer.collector()?;
        let mut decoder = Decoder::new(&tracer.kernel.kallsyms);
        let mut events = Vec::new();
        // The steps are judged from the events; the checker runs for the metrics' sake.
        let sink = CheckedSink {
            checker: Checker::new(&header),
            metrics: recorder,
            output: |e: &Event, _: &[Violation]| events.push(e.clone()),
        };
        let (totals, _) = sink.run(&mut collector, &mut decoder, &EventFilter::default(), &stop_in_session, None)?;
        Ok((events, totals))
    });

    let mut child = super::spawn_workload(&["--format", "jsonl"], true)?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("workload stdout not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut steps = Vec::new();
    let mut line_no = 0;
    while let Some(line) = lines.next_line().await.context("reading the workload's reports")? {
        line_no += 1;
        let rec: StepRecord = serde_json::from_str(&line).with_context(|| format!("workload output line {line_no}: {line}"))?;
        steps.push(PlannedStep::from_record(rec).map_err(|e| anyhow!("workload output line {line_no}: {e}"))?);
    }
    let status = child.wait().await.context("waiting for the workload")?;
    if !status.success() {
        stop.store(true, Ordering::Relaxed);
        return Err(anyhow!("the workload failed ({status})"));
    }
    // Let the last records reach the ring buffer reader.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let (events, totals) = session.await.context("the tracing session panicked")??;
    drop(exporter);
    let verdict = judge(&steps, &events, totals.kernel.lost);
    match args.format {
        TextOrJson::Text => print!("{}", verdict.render_text(&summary)),
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&verdict)?),
    }
    Ok(if verdict.pass { 0 } else { crate::exit::FAILED })
}
