use anyhow::Result;

use crate::{
    cli::{InventoryArgs, TextOrJsonl},
    inventory::{self, InventoryWalker, WalkError},
    loader::{KernelContext, require_root},
};

/// Every mm with subscriptions, and the tasks stuck in a notifier wait.
pub fn collect() -> Result<inventory::InventoryWalk> {
    // Load errors stay themselves in the chain: the exit status is chosen from them.
    require_root()?;
    InventoryWalker::open(KernelContext::discover()?)?.walk_all().map_err(|e| match e {
        WalkError::Load(e) => e.into(),
        WalkError::Decode(e) => e.into(),
    })
}

pub fn run(args: &InventoryArgs) -> Result<u8> {
    let inventory::InventoryWalk { mms, stuck } = collect()?;
    match args.format {
        TextOrJsonl::Text => print!("{}{}", inventory::render_text(&mms), inventory::render_blocked(&stuck)),
        TextOrJsonl::Jsonl => {
            for mm in &mms {
                println!("{}", serde_json::to_string(mm)?);
            }
        }
    }
    Ok(0)
}
