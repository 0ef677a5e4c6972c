//! The QEMU test bed: distribution kernels, the test notifier module, the guest suite.
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct VmArgs {}

pub fn run(_args: &VmArgs) -> Result<()> {
    anyhow::bail!("the VM test bed is not built yet")
}
