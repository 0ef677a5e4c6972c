use anyhow::Result;

use crate::{
    cli::{InventoryArgs, TextOrJsonl},
    inventory,
    loader::{KernelContext, TracerOptions, load_object, require_root},
};

pub fn collect() -> Result<Vec<inventory::MmInventory>> {
    require_root()?;
    let kernel = KernelContext::discover()?;
    let mut ebpf = load_object(&kernel, &TracerOptions::default())?;
    let bytes = inventory::run_iterator(&mut ebpf)?;
    Ok(inventory::decode(&bytes, &kernel.kallsyms, &kernel.offsets)?)
}

pub fn run(args: &InventoryArgs) -> Result<u8> {
    let mms = collect()?;
    match args.format {
        TextOrJsonl::Text => print!("{}", inventory::render_text(&mms)),
        TextOrJsonl::Jsonl => {
            for mm in &mms {
                println!("{}", serde_json::to_string(mm)?);
            }
        }
    }
    Ok(0)
}
