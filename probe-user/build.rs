//! Builds the eBPF object (probe-ebpf) for the BPF target with the nightly toolchain and
//! bpf-linker, into OUT_DIR/probe-ebpf, where the loader embeds it.
//!
//! `AYA_BUILD_SKIP=1` skips that build (pure-logic work without the BPF toolchain); an empty
//! object is embedded instead and the loader says so when asked to load it.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../probe-ebpf");
    let ebpf_dir = ebpf_dir.to_str().ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-changed=../probe-common/src");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(out_dir.join("probe-ebpf"), b"")?;
        return Ok(());
    }
    let package = aya_build::Package { name: "probe-ebpf", root_dir: ebpf_dir, ..Default::default() };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
