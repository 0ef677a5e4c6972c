use anyhow::Result;

use crate::{
    cli::{InventoryArgs, TextOrJsonl},
    inventory::{self, InventoryWalker, WalkError},
    loader::{KernelContext, require_root},
};

pub fn collect() -> Result<Vec<inventory::MmInventory>> {
    // Load errors stay themselves in the chain: the exit status is chosen from them.
    require_root()?;
    InventoryWalker::open(KernelContext::discover()?)?.walk().map_err(|e| match e {
        WalkError::Load(e) => e.into(),
        WalkError::Decode(e) => e.into(),
    })
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
