//! The README documents every subcommand and flag: it must match the CLI's own `--help`.

use clap::CommandFactory;
use mmnotif_trace::cli::Cli;

#[test]
fn readme_mentions_every_subcommand_and_flag() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let cli = Cli::command();
    let mut missing = Vec::new();
    for sub in cli.get_subcommands() {
        if !readme.contains(&format!("$ mmnotif-trace {} --help", sub.get_name())) {
            missing.push(format!("subcommand {}", sub.get_name()));
        }
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long()
                && !readme.contains(&format!("--{long}"))
            {
                missing.push(format!("{} --{long}", sub.get_name()));
            }
        }
    }
    assert!(missing.is_empty(), "README.md lacks {missing:?}: paste the current --help output");
}
