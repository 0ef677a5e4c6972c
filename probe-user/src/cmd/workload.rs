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
                if r.possible.is_empty() { String::new() } else { format!(" (+ up to {} more, see note)", r.possible.len()) }
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
        workload::run(&steps, |r| print_report(args.format, r))?;
        round += 1;
        if args.repeat != 0 && round >= args.repeat {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
}
