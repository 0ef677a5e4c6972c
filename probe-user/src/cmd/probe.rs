use anyhow::Result;

use crate::{
    cli::{ProbeArgs, TextOrJson},
    loader::probe_capabilities,
};

pub fn run(args: &ProbeArgs) -> Result<u8> {
    let caps = probe_capabilities(args.attach.attach, args.attach.tracepoint_method)?;
    match args.format {
        TextOrJson::Text => print!("{}", caps.render_text()),
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&caps)?),
    }
    Ok(0)
}
