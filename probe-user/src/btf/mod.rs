//! The running kernel's BTF: struct member offsets for the eBPF programs.
mod offsets;
mod parse;
#[cfg(test)]
mod testing;

pub(crate) use offsets::{kernel_offsets, twopass_api};
pub(crate) use parse::{Btf, BtfError};

/// Where the kernel publishes its BTF.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's BTF: vmlinux's, or, when KVM is a module, the kvm module's split BTF
/// with vmlinux's as its base. Parsed once: the blob is megabytes, and in an emulated guest
/// each parse costs the tracer a noticeable part of its start-up.
pub(crate) struct KernelBtf(Btf);

impl KernelBtf {
    pub(crate) fn vmlinux(&self) -> &Btf {
        // Split BTF always has a base, and a base blob is vmlinux's own.
        self.0.base().unwrap_or(&self.0)
    }

    /// The kvm module's BTF, when KVM is a module.
    pub(crate) fn kvm_module(&self) -> Option<&Btf> {
        self.0.base().map(|_| &self.0)
    }
}

pub(crate) fn load_kernel_btf() -> Result<KernelBtf, LoadBtfError> {
    let data = std::fs::read(VMLINUX_BTF).map_err(|e| LoadBtfError::Read(VMLINUX_BTF.into(), e))?;
    let vmlinux = Btf::parse(&data, VMLINUX_BTF)?;
    let kvm_path = "/sys/kernel/btf/kvm";
    Ok(match std::fs::read(kvm_path) {
        Ok(module) => KernelBtf(Btf::parse_split(&module, kvm_path, vmlinux)?),
        Err(_) => KernelBtf(vmlinux),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LoadBtfError {
    #[error("cannot read {0}: {1} (this kernel has no BTF; CONFIG_DEBUG_INFO_BTF=y is required)")]
    Read(String, std::io::Error),
    #[error(transparent)]
    Parse(#[from] BtfError),
}
