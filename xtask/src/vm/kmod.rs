//! The test module (`tests/kmod`), built out of tree against each kernel's Debian headers with
//! the host's gcc-12 (the compiler Debian built these kernels with).
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MODULE: &str = "mmnotif_test";

/// Extracts the headers, kbuild and pahole packages of `r` (once) and returns the directory to
/// pass to kbuild as KDIR.
pub fn headers(paths: &Paths, r: &Resolved) -> Result<PathBuf> {
    let root = paths.kernel(&r.abi).join("headers");
    let kdir = root
        .join("usr/src")
        .join(format!("linux-headers-{}-amd64", r.abi));
    let done = root.join(".complete");
    if done.is_file() {
        return Ok(kdir);
    }
    println!("[{}] extracting headers, kbuild and pahole", r.name());
    let _ = std::fs::remove_dir_all(&root);
    cmd::mkdir(&root)?;
    for pkg in [
        "linux-headers-*-amd64",
        "linux-headers-*-common",
        "linux-kbuild-*",
        "pahole",
    ] {
        let deb = r.deb(paths, pkg)?;
        cmd::output(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    }
    // The arch headers' Makefile includes the -common tree as /usr/src/...; kbuild runs it with
    // the arch directory as the working directory, so a relative path works wherever we are.
    let mk = kdir.join("Makefile");
    let text =
        std::fs::read_to_string(&mk).with_context(|| format!("cannot read {}", mk.display()))?;
    let fixed = text.replace("include /usr/src/", "include ../");
    if fixed == text {
        bail!(
            "{} does not include /usr/src/...; the headers layout changed",
            mk.display()
        );
    }
    std::fs::write(&mk, fixed).with_context(|| format!("cannot write {}", mk.display()))?;
    std::fs::write(&done, "").with_context(|| format!("cannot write {}", done.display()))?;
    Ok(kdir)
}

/// Builds the module for `r` (skipped when the sources are unchanged) and returns the .ko.
pub fn build(paths: &Paths, r: &Resolved, kdir: &Path) -> Result<PathBuf> {
    let dir = paths.build(&r.abi).join("kmod");
    let ko = dir.join(format!("{MODULE}.ko"));
    let changed = sync_sources(&paths.kmod_src(), &dir)?;
    if !changed && ko.is_file() {
        return Ok(ko);
    }
    cmd::require_tool("gcc-12", "gcc-12")?;
    cmd::require_tool("make", "make")?;
    println!(
        "[{}] building {MODULE}.ko against {}",
        r.name(),
        kdir.display()
    );
    let _ = std::fs::remove_file(&ko);
    let tools = paths.kernel(&r.abi).join("headers/usr/bin");
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![tools];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).context("PATH cannot be rebuilt")?
        }
        None => tools.into_os_string(),
    };
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&dir)
        .arg(format!("KDIR={}", kdir.display()))
        .env("PATH", path);
    cmd::output(&mut make)
        .with_context(|| format!("building the test module for {} failed", r.abi))?;
    if !ko.is_file() {
        bail!("make succeeded but left no {}", ko.display());
    }
    Ok(ko)
}

/// Copies the regular files of `src` into `dst`; returns whether any differed.
pub fn sync_sources(src: &Path, dst: &Path) -> Result<bool> {
    cmd::mkdir(dst)?;
    let mut changed = false;
    let rd = std::fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))?;
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let keep = p.is_file()
            && p.extension()
                .is_none_or(|x| x == "c" || x == "h" || x == "sh")
            && !name.to_string_lossy().starts_with('.');
        if !keep {
            continue;
        }
        let new = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let target = dst.join(&name);
        if std::fs::read(&target).ok().as_deref() != Some(new.as_slice()) {
            std::fs::write(&target, &new)
                .with_context(|| format!("cannot write {}", target.display()))?;
            changed = true;
        }
    }
    Ok(changed)
}
