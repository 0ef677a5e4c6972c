use std::time::Duration;

use anyhow::Result;

use crate::{
    cli::{TextOrJsonl, WorkloadArgs},
    workload::{self, StepReport},
};

fn print_report(format: TextOrJsonl, r: &StepReport) {
    match format {
        TextOrJsonl::Jsonl => println!("{}", serde_json::to_string(r).unwrap_or_default()),
        TextOrJsonl::Text => {
            let ranges: Vec<String> = r.expected.iter().map(|s| format!("[{}, {})", s.start, s.end)).collect();
            println!(
                "{:<17} {:>8.1} us  expects {} invalidation(s){}{}",
                r.step,
                (r.t1 - r.t0) as f64 / 1000.0,
                r.expected.len(),
                if ranges.is_empty() { String::new() } else { format!(": {}", ranges.join(" ")) },
                if r.possible.is_empty() {
                    String::new()
                } else {
                    format!(" (+ up to {} more, see note)", r.possible.len())
                }
            );
        }
    }
}

pub fn run(args: &WorkloadArgs) -> Result<u8> {
    if let Some(iterations) = args.hammer {
        let ns = workload::hammer(iterations)?;
        println!("{ns:.1}");
        return Ok(0);
    }
    let steps = workload::parse_steps(&args.steps)?;
    let mut round = 0u64;
    loop {
        // The pause happens with the VM still open, so an inventory taken meanwhile sees it.
        workload::run(&steps, Duration::from_millis(args.hold_ms), |r| {
            print_report(args.format, r);
            // A reader (selftest) must get each report as the step completes.
            let _ = std::io::Write::flush(&mut std::io::stdout());
        })?;
        round += 1;
        if args.repeat != 0 && round >= args.repeat {
            return Ok(0);
        }
    }
}
