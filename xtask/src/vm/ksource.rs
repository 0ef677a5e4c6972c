//! What the builds of a kernel's own test code share (`hmm.rs`, `kvm_selftests.rs`): the few
//! files taken out of its `linux-source-*` package, the UAPI trees of its headers packages in
//! the build root, and the host gcc that links statically (the guest has no C library).
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::paths::Paths;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `members` (paths inside the tree; `*` as tar matches it) of a source package's tarball,
/// extracted once into the store's `<area>/src/<package>_<version>/`.
pub(super) fn extract(paths: &Paths, deb: &Path, area: &str, members: &[&str]) -> Result<PathBuf> {
    let name = file_name(deb);
    let dir = paths.store.join(area).join("src").join(name.trim_end_matches(".deb"));
    let done = dir.join(".mmnotif-complete");
    // The record names what was extracted: a changed member list extracts again.
    let record = members.join("\n");
    if std::fs::read_to_string(&done).is_ok_and(|r| r == record) {
        return Ok(dir);
    }
    let package = name.split('_').next().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    cmd::mkdir(&dir)?;
    println!("vm: extracting the {area} sources from {name}");
    let members: Vec<String> = members.iter().map(|m| format!("*/{m}")).collect();
    // The tarball is streamed from the package: it is never written out whole.
    let mut c = Command::new("sh");
    c.args(["-c", "dpkg-deb --fsys-tarfile \"$DEB\" | tar -xO \"$TARBALL\" | tar -xJ -C \"$DIR\" --strip-components=1 --wildcards \"$@\"", "sh"])
        .args(&members)
        .env("DEB", deb)
        .env("TARBALL", format!("./usr/src/{package}.tar.xz"))
        .env("DIR", &dir);
    cmd::output(&mut c).with_context(|| format!("cannot extract the {area} sources from {}", deb.display()))?;
    std::fs::write(&done, record).with_context(|| format!("cannot write {}", done.display()))?;
    Ok(dir)
}

/// The definition headers_install would have rewritten `__packed` to, for `uapi_dirs` (not all
/// of their headers include something that defines it).
pub(super) const UAPI_PACKED: &str = "-D__packed=__attribute__((packed))";

/// The kernel's UAPI headers as the headers packages in its build root hold them (newer than
/// the host's `linux-libc-dev`), in the order `-isystem` takes them. They are not run through
/// headers_install: builds add `UAPI_PACKED`.
pub(super) fn uapi_dirs(r: &Resolved, root: &BuildRoot) -> Result<Vec<PathBuf>> {
    let common = r
        .headers
        .iter()
        .map(|(n, _)| n)
        .find(|n| n.starts_with("linux-headers-") && n.ends_with("-common"))
        .context("no linux-headers-*-common among the kernel's packages")?;
    let common = format!("/usr/src/{common}");
    let arch = format!("/usr/src/linux-headers-{}-amd64", r.abi);
    Ok([
        format!("{common}/include/uapi"),
        format!("{common}/arch/x86/include/uapi"),
        format!("{arch}/arch/x86/include/generated/uapi"),
        format!("{arch}/include/generated/uapi"),
    ]
    .iter()
    .map(|d| root.host_path(d))
    .collect())
}

/// The host's gcc set to link a static program that runs in the guest.
pub(super) fn static_gcc() -> Result<Command> {
    cmd::require_tool("gcc", "gcc")?;
    let mut gcc = Command::new("gcc");
    gcc.args(["-static", "-O2", "-pthread"]);
    Ok(gcc)
}

pub(super) fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub(super) fn file_name(p: &Path) -> String {
    super::kernel::file_name(p)
}
