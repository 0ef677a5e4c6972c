//! mmnotif-trace's userspace: loader, decoder, checker, sinks.
pub mod btf;
pub mod checker;
pub mod cli;
pub mod decode;
pub mod exit;
pub mod filter;
pub mod inventory;
pub mod kallsyms;
pub mod loader;
pub mod metrics;
pub mod render;
pub mod session;
pub mod trace;
pub mod workload;
pub mod selftest;
pub mod cmd;
