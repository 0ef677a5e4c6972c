//! The test module (`tests/kmod`), built out of tree in the kernel's build root (see
//! buildroot.rs): the root holds the kernel's exact headers, kbuild and compiler.
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use super::srcbuild::{Built, TREE_IN_ROOT};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub(super) const MODULE: &str = "mmnotif_test";

/// What the module is built against.
pub(super) enum Against<'a> {
    /// Debian's headers packages of `r`, installed in the build root (`BuildRoot::install`).
    Headers,
    /// A kernel tree built here (`srcbuild.rs`).
    Built(&'a Built),
}

/// Builds the module for `r` (skipped when neither the sources nor the kernel changed) and
/// returns the .ko.
pub(super) fn build(paths: &Paths, r: &Resolved, root: &BuildRoot, against: Against) -> Result<PathBuf> {
    let dir = paths.build(&r.abi).join("kmod");
    let ko = dir.join(format!("{MODULE}.ko"));
    let stamp = dir.join(".headers");
    let headers: String = match against {
        Against::Headers => r.headers.iter().map(|(n, v)| format!("{n} {v}\n")).collect(),
        Against::Built(k) => k.stamp.clone(),
    };
    let changed = sync_sources(&paths.kmod_src(), &dir)?;
    let same_headers = std::fs::read_to_string(&stamp).is_ok_and(|h| h == headers);
    if !changed && same_headers && ko.is_file() {
        return Ok(ko);
    }
    println!("[{}] building {MODULE}.ko in the build root", r.name());
    let _ = std::fs::remove_file(&ko);
    let mut binds = vec![(dir.as_path(), "/build/kmod")];
    let kdir = match against {
        Against::Headers => format!("KDIR=/usr/src/linux-headers-{}-amd64", r.abi),
        Against::Built(k) => {
            binds.push((k.tree.as_path(), TREE_IN_ROOT));
            format!("KDIR={TREE_IN_ROOT}")
        }
    };
    root.run(&binds, &["make", "-C", "/build/kmod", &kdir])
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
