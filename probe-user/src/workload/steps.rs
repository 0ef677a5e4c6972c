//! The workload's steps. Each works on its own 64 KiB area of one THP-free mapping that is
//! also the VM's memory slot, and predicts the invalidations the kernel must issue.

use std::{fs::File, io::Read};

use super::{
    Span, StepReport, WorkloadError,
    memory::{self, PAGE},
};
use crate::{clock::monotonic_ns, kvm};

const AREA: u64 = 16 * PAGE;
const AREAS: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    MadviseDontneed,
    MadviseFree,
    Mprotect,
    MremapDontunmap,
    Munmap,
    Fork,
    VmClose,
}

pub(crate) const STEPS: [Step; 7] = [
    Step::MadviseDontneed,
    Step::MadviseFree,
    Step::Mprotect,
    Step::MremapDontunmap,
    Step::Munmap,
    Step::Fork,
    Step::VmClose,
];

impl Step {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::MadviseDontneed => "madvise_dontneed",
            Step::MadviseFree => "madvise_free",
            Step::Mprotect => "mprotect",
            Step::MremapDontunmap => "mremap_dontunmap",
            Step::Munmap => "munmap",
            Step::Fork => "fork",
            Step::VmClose => "vm_close",
        }
    }

    fn area(self) -> u64 {
        match self {
            Step::MadviseDontneed => 0,
            Step::MadviseFree => 1,
            Step::Mprotect => 2,
            Step::MremapDontunmap => 3,
            Step::Munmap => 4,
            Step::Fork => 5,
            Step::VmClose => 6,
        }
    }
}

pub(super) struct Context {
    _kvm: std::fs::File,
    /// Read buffer for /proc/self/smaps, allocated and touched up front: allocating (or
    /// freeing) it inside the fork step would itself map or unmap memory there.
    smaps_buf: Vec<u8>,
    vm: Option<kvm::Vm>,
    base: u64,
    pid: u32,
}

impl Context {
    pub(super) fn new() -> Result<Context, WorkloadError> {
        let kvm_dev = kvm::open()?;
        let base = memory::map_anon("setup", AREA * AREAS)?;
        memory::touch(base, AREA * AREAS);
        let vm = kvm::Vm::create(&kvm_dev)?;
        vm.set_memory(0, base, AREA * AREAS)?;
        let smaps_buf = vec![1u8; 4 << 20];
        Ok(Context { _kvm: kvm_dev, smaps_buf, vm: Some(vm), base, pid: std::process::id() })
    }

    fn area(&self, step: Step) -> (u64, u64) {
        (self.base + step.area() * AREA, AREA)
    }

    pub(super) fn run(&mut self, step: Step) -> Result<StepReport, WorkloadError> {
        let name = step.name();
        let (addr, len) = self.area(step);
        memory::touch(addr, len);
        let mut possible = Vec::new();
        let mut cow_within = Vec::new();
        let mut note = "";
        let t0 = monotonic_ns();
        let expected = match step {
            Step::MadviseDontneed => {
                memory::madvise(name, addr, len, libc::MADV_DONTNEED)?;
                vec![Span::new(addr, addr + len)]
            }
            Step::MadviseFree => {
                memory::madvise(name, addr, len, libc::MADV_FREE)?;
                vec![Span::new(addr, addr + len)]
            }
            Step::Mprotect => {
                memory::mprotect(name, addr, len, libc::PROT_READ)?;
                vec![Span::new(addr, addr + len)]
            }
            Step::MremapDontunmap => {
                // The pages move away; the old range is invalidated, the new one is fresh.
                let new = memory::mremap_dontunmap(name, addr, len)?;
                memory::munmap(name, new, len)?;
                vec![Span::new(addr, addr + len), Span::new(new, new + len)]
            }
            Step::Munmap => {
                memory::munmap(name, addr, len)?;
                vec![Span::new(addr, addr + len)]
            }
            Step::Fork => {
                note = "fork write-protects every private VMA that has an anon_vma; smaps shows anonymous \
                        pages, not anon_vma, so private VMAs without anonymous pages may or may not appear";
                let (expected, maybe) = fork_and_predict(name, &mut self.smaps_buf)?;
                possible = maybe;
                cow_within = expected.clone();
                expected
            }
            Step::VmClose => {
                self.vm = None;
                Vec::new()
            }
        };
        let t1 = monotonic_ns();
        Ok(StepReport { step: name, pid: self.pid, t0, t1, expected, possible, cow_within, note })
    }
}

/// Snapshots the VMAs, forks (the child exits at once), and returns (must, may) ranges.
fn fork_and_predict(step: &'static str, buf: &mut [u8]) -> Result<(Vec<Span>, Vec<Span>), WorkloadError> {
    // Allocate everything before reading smaps: an allocation after the snapshot could grow
    // a VMA and make the prediction wrong.
    let mut must = Vec::with_capacity(1024);
    let mut may = Vec::with_capacity(1024);
    let mut smaps =
        File::open("/proc/self/smaps").map_err(|err| WorkloadError::Sys { step, what: "open smaps", err })?;
    let mut len = 0;
    loop {
        let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) else {
            return Err(WorkloadError::Sys {
                step,
                what: "read smaps",
                err: std::io::Error::other("smaps larger than the buffer"),
            });
        };
        match smaps.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) => return Err(WorkloadError::Sys { step, what: "read smaps", err }),
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    for vma in memory::parse_smaps(&text) {
        if !vma.private {
            continue;
        }
        if vma.anonymous_kb > 0 { &mut must } else { &mut may }.push(Span::new(vma.start, vma.end));
    }
    // SAFETY: single-threaded process; the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(WorkloadError::Sys { step, what: "fork", err: std::io::Error::last_os_error() });
    }
    if pid == 0 {
        // SAFETY: leaving the child without running any parent state's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok((must, may))
}

/// The benchmark's worst case: zap and refault one page of a KVM-registered mm, `iterations`
/// times. Returns nanoseconds per iteration.
pub(crate) fn hammer(iterations: u64) -> Result<f64, WorkloadError> {
    let kvm_dev = kvm::open()?;
    let base = memory::map_anon("hammer", AREA)?;
    memory::touch(base, AREA);
    let vm = kvm::Vm::create(&kvm_dev)?;
    vm.set_memory(0, base, AREA)?;
    let t0 = monotonic_ns();
    for _ in 0..iterations {
        memory::madvise("hammer", base, PAGE, libc::MADV_DONTNEED)?;
        memory::touch(base, PAGE);
    }
    let elapsed = monotonic_ns() - t0;
    drop(vm);
    Ok(elapsed as f64 / iterations.max(1) as f64)
}
