//! `completions` and `man`: generated from the clap definitions (see [`crate::manual`]).

use anyhow::{Context, Result};

use crate::{
    cli::{CompletionsArgs, ManArgs},
    manual,
};

pub fn completions(args: &CompletionsArgs) -> Result<u8> {
    manual::print(&manual::completions(args.shell)).context("writing the completion script")?;
    Ok(0)
}

pub fn man(args: &ManArgs) -> Result<u8> {
    match &args.dir {
        Some(dir) => {
            for path in manual::write_man_pages(dir)? {
                println!("{}", path.display());
            }
        }
        None => {
            let pages = manual::man_pages()?;
            let main = pages.first().context("no man page rendered")?;
            manual::print(&main.roff).context("writing the man page")?;
        }
    }
    Ok(0)
}
