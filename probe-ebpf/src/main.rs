//! mmnotif-trace's kernel side: one small program per hook.
//!
//! The programs only copy what the kernel hands them into fixed records; every interpretation
//! (pairing, symbolization, filtering) happens in userspace. Member offsets come from the
//! running kernel's BTF through the `OFFSETS` global (Rust eBPF has no CO-RE).
#![no_std]
#![no_main]

mod blocked;
mod capability;
mod emit;
mod inventory;
mod kread;
mod outer;
mod subscribers;
mod tracepoints;
mod warn;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path, so this is never executed.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
