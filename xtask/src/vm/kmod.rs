//! The test module (`tests/kmod`), built out of tree in the kernel's build root (see
//! buildroot.rs): the root holds the kernel's exact headers, kbuild and compiler.
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub(super) const MODULE: &str = "mmnotif_test";

/// Builds the module for `r` (skipped when neither the sources nor the headers changed) and
/// returns the .ko. `r`'s headers must be installed in `root` (`BuildRoot::install`).
pub(super) fn build(paths: &Paths, r: &Resolved, root: &BuildRoot) -> Result<PathBuf> {
    let dir = paths.build(&r.abi).join("kmod");
    let ko = dir.join(format!("{MODULE}.ko"));
    let stamp = dir.join(".headers");
    let headers: String = r.headers.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    let changed = sync_sources(&paths.kmod_src(), &dir)?;
    let same_headers = std::fs::read_to_string(&stamp).is_ok_and(|h| h == headers);
    if !changed && same_headers && ko.is_file() {
        return Ok(ko);
    }
    println!("[{}] building {MODULE}.ko in the build root", r.name());
    let _ = std::fs::remove_file(&ko);
    let kdir = format!("KDIR=/usr/src/linux-headers-{}-amd64", r.abi);
    root.run(&[(&dir, "/build/kmod")], &["make", "-C", "/build/kmod", &kdir])
        .with_context(|| format!("building the test module for {} failed", r.abi))?;
    if !ko.is_file() {
        bail!("make succeeded but left no {}", ko.display());
    }
    std::fs::write(&stamp, headers).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(ko)
}

/// Copies the regular files of `src` into `dst`; returns whether any differed.
pub(super) fn sync_sources(src: &Path, dst: &Path) -> Result<bool> {
    cmd::mkdir(dst)?;
    let mut changed = false;
    let rd = std::fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))?;
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let keep = p.is_file()
            && p.extension().is_none_or(|x| x == "c" || x == "h" || x == "sh")
            && !name.to_string_lossy().starts_with('.');
        if !keep {
            continue;
        }
        let new = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let target = dst.join(&name);
        if std::fs::read(&target).ok().as_deref() != Some(new.as_slice()) {
            std::fs::write(&target, &new).with_context(|| format!("cannot write {}", target.display()))?;
            changed = true;
        }
    }
    Ok(changed)
}
