//! A dynamically linked program from a kernel's build root, carried into its guest with its
//! whole shared-library closure and the root's own dynamic loader, so it runs on the C library
//! of the archive it was built for (the guest has none of its own). The guest gets
//! `/opt/<name>/<name>`, its libraries in `/opt/<name>/lib/`, and `/usr/local/bin/<name>`, a
//! script that runs it through that loader with that library path.
use super::buildroot::BuildRoot;
use super::initramfs::{GUEST_BIN_DIR, parse_ldd};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// A program a Debian package installs in the build root (for example the benchmark's peer,
/// bpftrace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootProgram {
    /// The package that provides it, installed at apt's candidate when missing.
    pub package: &'static str,
    /// Its absolute path inside the root.
    pub path: &'static str,
}

impl RootProgram {
    /// The command name in the guest.
    pub(crate) fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// One file for the initramfs: (host path, guest path, mode).
pub(crate) type GuestFile = (PathBuf, String, u32);

/// The files that carry `program` into the guest; the launcher script is written to `work`.
pub(super) fn guest_files(root: &BuildRoot, program: &RootProgram, work: &Path) -> Result<Vec<GuestFile>> {
    let name = program.name();
    let ldd =
        root.run(&[], &["ldd", program.path]).with_context(|| format!("ldd {} in the build root", program.path))?;
    let libs = parse_ldd(&ldd).with_context(|| format!("{} in the build root", program.path))?;
    if libs.is_empty() {
        bail!(
            "{} in the build root loads no shared library: not the dynamically linked program expected",
            program.path
        );
    }
    let loader = libs
        .iter()
        .find(|l| l.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ld-linux")))
        .context("ldd names no dynamic loader")?
        .clone();
    // The root's symlinks may be absolute: resolve them inside the root, not on the host.
    let mut argv = vec!["readlink", "-e", program.path];
    let lib_strs: Vec<&str> = libs.iter().filter_map(|l| l.to_str()).collect();
    argv.extend(&lib_strs);
    let real = root.run(&[], &argv).context("resolving the program's libraries in the build root")?;
    let real: Vec<&str> = real.lines().collect();
    if real.len() != lib_strs.len() + 1 {
        bail!("readlink in the build root resolved {} of {} paths", real.len(), lib_strs.len() + 1);
    }
    let dir = format!("/opt/{name}");
    let mut files = vec![(root.host_path(real[0]), format!("{dir}/{name}"), 0o755)];
    for (lib, real) in libs.iter().zip(&real[1..]) {
        let file = lib.file_name().and_then(|n| n.to_str()).context("a library path without a file name")?;
        files.push((root.host_path(real), format!("{dir}/lib/{file}"), 0o755));
    }
    let loader = loader.file_name().and_then(|n| n.to_str()).context("loader file name")?;
    let launcher = work.join(format!("{name}.launcher"));
    std::fs::write(&launcher, launcher_script(&dir, name, loader))
        .with_context(|| format!("cannot write {}", launcher.display()))?;
    files.push((launcher, format!("{GUEST_BIN_DIR}/{name}"), 0o755));
    Ok(files)
}

/// `/usr/local/bin/<name>`: runs the program through the root's loader, on the root's libraries.
fn launcher_script(dir: &str, name: &str, loader: &str) -> String {
    format!("#!/bin/sh\nexec {dir}/lib/{loader} --library-path {dir}/lib {dir}/{name} \"$@\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_runs_the_program_through_the_carried_loader() {
        let p = RootProgram { package: "bpftrace", path: "/usr/bin/bpftrace" };
        assert_eq!(p.name(), "bpftrace");
        assert_eq!(
            launcher_script("/opt/bpftrace", p.name(), "ld-linux-x86-64.so.2"),
            "#!/bin/sh\nexec /opt/bpftrace/lib/ld-linux-x86-64.so.2 --library-path /opt/bpftrace/lib \
             /opt/bpftrace/bpftrace \"$@\"\n"
        );
    }
}
