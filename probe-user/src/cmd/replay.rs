use std::io::Write;

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
    let text = match args.format {
        TextOrJson::Text => report.to_string(),
        TextOrJson::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    // A reader that stops early (`| head`) is not an error worth more than a quiet exit.
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(if report.verdict == Verdict::Pass { 0 } else { exit::FAILED })
}
