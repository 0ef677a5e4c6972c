//! mmnotif-trace's userspace: loader, decoder, checker, sinks.
pub(crate) mod bounded_cache;
pub(crate) mod btf;
pub mod check;
// Its private state module's items are `pub`; they become `pub(crate)` with the checker's
// rework (issue 16), which owns checker/.
#[allow(unreachable_pub)]
pub mod checker;
pub mod cli;
pub(crate) mod clock;
pub mod cmd;
pub mod dashboard;
pub(crate) mod decode;
pub(crate) mod errno;
pub mod exit;
pub(crate) mod filter;
pub mod inventory;
pub(crate) mod kallsyms;
pub mod kernel_facts;
pub(crate) mod kvm;
pub mod loader;
pub mod manual;
pub(crate) mod memory;
pub mod metrics;
pub(crate) mod object;
pub(crate) mod render;
pub(crate) mod selftest;
pub mod session;
pub mod trace;
pub(crate) mod workload;
