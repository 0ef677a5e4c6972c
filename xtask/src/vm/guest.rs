//! The guest test programs (`tests/guest/*.c`, each linked with `common.c`), statically linked
//! with the host's gcc so the initramfs needs no C library.
use super::cmd;
use super::kmod;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Builds every program (skipped when the sources are unchanged); returns (guest name, path).
/// `tests/guest/foo.c` becomes `mmnotif-foo`; `common.c` is linked into each.
pub(super) fn build(paths: &Paths) -> Result<Vec<(String, PathBuf)>> {
    let out = paths.guest_build();
    let src = out.join("src");
    let mut changed = kmod::sync_sources(&paths.guest_src(), &src)?;
    let header = paths.kmod_src().join("mmnotif_test.h");
    let text = std::fs::read(&header).with_context(|| format!("cannot read {}", header.display()))?;
    if std::fs::read(src.join("mmnotif_test.h")).ok() != Some(text.clone()) {
        std::fs::write(src.join("mmnotif_test.h"), text).context("cannot copy mmnotif_test.h")?;
        changed = true;
    }
    let mut progs = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .with_context(|| format!("cannot list {}", src.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.ends_with(".c") && n != "common.c")
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no guest programs in {}", paths.guest_src().display());
    }
    for file in names {
        let name = format!("mmnotif-{}", file.trim_end_matches(".c"));
        let bin = out.join(&name);
        if changed || !bin.is_file() {
            cmd::require_tool("gcc", "gcc")?;
            println!("vm: building guest program {name}");
            let mut gcc = Command::new("gcc");
            gcc.args(["-static", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-I"])
                .arg(&src)
                .arg("-o")
                .arg(&bin)
                .arg(src.join(&file))
                .arg(src.join("common.c"));
            cmd::output(&mut gcc).with_context(|| format!("building guest program {name} failed"))?;
        }
        progs.push((name, bin));
    }
    Ok(progs)
}
