//! Memory the allocator holds but nothing uses. glibc keeps freed memory resident in the arena
//! of the thread that freed it, under whatever still lives above it: the tens of MiB a start-up
//! allocates to read the kernel's BTF and kallsyms, and the peak of every burst of events. A
//! tracer runs for hours, so that memory is handed back to the kernel after each object load
//! and then once a minute; what stays resident is what the tracer holds (the checker's tables,
//! exported as `mmnotif_checker_state_entries`).

/// Returns the free pages of every arena to the kernel. It walks the arenas' free lists: well
/// under a millisecond for a tracer's few arenas.
pub(crate) fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
