use anyhow::Result;

use crate::{
    checker::{self, report::Verdict},
    cli::{ReplayArgs, TextOrJson},
    dashboard, exit,
};

pub fn run(args: &ReplayArgs) -> Result<u8> {
    if args.tui {
        return dashboard::replay::run(&dashboard::replay::ReplayOptions {
            file: &args.file,
            speed: args.speed,
            start_paused: args.start_paused,
            log_file: args.dashboard.log_file.as_deref(),
        });
    }
    let report = checker::replay_file(&args.file)?;
    match args.format {
        TextOrJson::Text => print!("{report}"),
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.verdict == Verdict::Pass { 0 } else { exit::FAILED })
}
