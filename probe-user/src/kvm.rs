//! Just enough of the KVM API to make this process a KVM subscriber: a VM with one memory
//! slot. Creating the VM registers KVM's mmu notifier on this process's mm.

use std::{
    fs::{File, OpenOptions},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use thiserror::Error;

pub(crate) const DEV_KVM: &str = "/dev/kvm";

// _IO(KVMIO, n) and _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region) from <linux/kvm.h>.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
const KVM_SET_USER_MEMORY_REGION: libc::c_ulong = 0x4020_AE46;
const KVM_API_VERSION: i32 = 12;

#[repr(C)]
struct UserspaceMemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

#[derive(Debug, Error)]
pub enum KvmError {
    #[error("{DEV_KVM} is not available: {0} (KVM missing or not permitted)")]
    Open(io::Error),
    #[error("{DEV_KVM}: {what} failed: {err}")]
    Ioctl { what: &'static str, err: io::Error },
    #[error("{DEV_KVM}: unexpected KVM API version {0} (expected {KVM_API_VERSION})")]
    ApiVersion(i32),
}

fn ioctl(fd: &impl AsRawFd, what: &'static str, req: libc::c_ulong, arg: libc::c_ulong) -> Result<i32, KvmError> {
    // SAFETY: callers pass requests whose argument is either an integer or a pointer to a live,
    // correctly laid out struct.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if ret < 0 { Err(KvmError::Ioctl { what, err: io::Error::last_os_error() }) } else { Ok(ret) }
}

/// Opens /dev/kvm and checks the API version: the cheapest proof that KVM works here.
pub(crate) fn open() -> Result<File, KvmError> {
    let kvm = OpenOptions::new().read(true).write(true).open(DEV_KVM).map_err(KvmError::Open)?;
    let version = ioctl(&kvm, "KVM_GET_API_VERSION", KVM_GET_API_VERSION, 0)?;
    if version != KVM_API_VERSION {
        return Err(KvmError::ApiVersion(version));
    }
    Ok(kvm)
}

/// A VM; dropping it closes the VM fd (KVM then unregisters its notifier).
pub(crate) struct Vm {
    fd: OwnedFd,
}

impl Vm {
    pub(crate) fn create(kvm: &File) -> Result<Vm, KvmError> {
        let fd = ioctl(kvm, "KVM_CREATE_VM", KVM_CREATE_VM, 0)?;
        // SAFETY: KVM_CREATE_VM returned a new fd we own.
        Ok(Vm { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Backs guest physical memory at 0 with `[addr, addr + len)` of this process.
    pub(crate) fn set_memory(&self, slot: u32, addr: u64, len: u64) -> Result<(), KvmError> {
        let region =
            UserspaceMemoryRegion { slot, flags: 0, guest_phys_addr: 0, memory_size: len, userspace_addr: addr };
        ioctl(
            &self.fd,
            "KVM_SET_USER_MEMORY_REGION",
            KVM_SET_USER_MEMORY_REGION,
            &region as *const _ as libc::c_ulong,
        )?;
        Ok(())
    }
}
