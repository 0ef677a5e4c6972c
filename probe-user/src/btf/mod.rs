//! The running kernel's BTF: struct member offsets for the eBPF programs.
mod offsets;
mod parse;
#[cfg(test)]
mod testing;

pub(crate) use offsets::{kernel_offsets, twopass_api};
pub(crate) use parse::{Btf, BtfError};

/// Where the kernel publishes its BTF.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Loads vmlinux BTF and, when KVM is a module, the kvm module's split BTF on top of it.
/// Returns (vmlinux, kvm-module BTF if there is one).
pub(crate) fn load_kernel_btf() -> Result<(Btf, Option<Btf>), LoadBtfError> {
    let data = std::fs::read(VMLINUX_BTF).map_err(|e| LoadBtfError::Read(VMLINUX_BTF.into(), e))?;
    let vmlinux = Btf::parse(&data, VMLINUX_BTF)?;
    let kvm_path = "/sys/kernel/btf/kvm";
    let kvm = match std::fs::read(kvm_path) {
        Ok(module) => {
            // Split BTF needs its own copy of the base.
            let base = Btf::parse(&data, VMLINUX_BTF)?;
            Some(Btf::parse_split(&module, kvm_path, base)?)
        }
        Err(_) => None,
    };
    Ok((vmlinux, kvm))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadBtfError {
    #[error("cannot read {0}: {1} (this kernel has no BTF; CONFIG_DEBUG_INFO_BTF=y is required)")]
    Read(String, std::io::Error),
    #[error(transparent)]
    Parse(#[from] BtfError),
}
