use anyhow::Result;

use crate::{
    checker::{self, report::Verdict},
    cli::{ReplayArgs, TextOrJson},
    exit,
};

pub fn run(args: &ReplayArgs) -> Result<u8> {
    let report = checker::replay_file(&args.file)?;
    match args.format {
        TextOrJson::Text => print!("{report}"),
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.verdict == Verdict::Pass { 0 } else { exit::FAILED })
}
