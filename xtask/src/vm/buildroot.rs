//! Build roots: one Debian userland per archive (made with mmdebstrap, kept in the store) in
//! which apt installs a kernel's exact headers packages. Out-of-tree modules are built there, by
//! the compiler, kbuild and pahole of the kernel's own suite: 7.x headers need sid's gcc-16 and
//! glibc >= 2.38, which a bookworm host does not have, and 5.10 was built with bullseye's gcc-10.
//! Commands run in a private mount namespace (`unshare -m`), so the /proc and bind mounts they
//! need vanish with them.
use super::cmd;
use super::kernels::Archive;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages every root has besides `--variant=apt`'s essentials and the archive's own.
const BASE_PACKAGES: &[&str] = &["debian-archive-keyring", "ca-certificates"];

pub(super) struct BuildRoot {
    dir: PathBuf,
}

impl BuildRoot {
    /// The root of `archive`, made on first use from the archive's private sources list.
    pub(super) fn open(paths: &Paths, archive: &Archive) -> Result<Self> {
        let dir = paths.store.join("roots").join(archive.name);
        let done = dir.join(".mmnotif-complete");
        if done.is_file() {
            return Ok(BuildRoot { dir });
        }
        cmd::require_tool("mmdebstrap", "mmdebstrap")?;
        let _ = std::fs::remove_dir_all(&dir);
        cmd::mkdir(dir.parent().context("build root has no parent")?)?;
        let sources = paths.apt(archive.name).join("sources.list");
        let suite = archive.suites.first().context("an archive without suites")?;
        println!("vm: making the {} build root in {} (mmdebstrap, once)", archive.name, dir.display());
        let started = std::time::Instant::now();
        let mut c = Command::new("mmdebstrap");
        c.args(["--variant=apt", "--quiet"])
            .arg(format!(
                "--include={}",
                BASE_PACKAGES.iter().chain(archive.build_packages).copied().collect::<Vec<_>>().join(",")
            ))
            // The same relaxations as the private apt configuration (see apt.rs).
            .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
            .arg("--aptopt=Acquire::Languages \"none\"")
            .args([
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
            ])
            .arg(suite)
            .arg(&dir)
            .arg(&sources);
        cmd::output(&mut c).with_context(|| format!("making the {} build root failed", archive.name))?;
        std::fs::write(&done, "").with_context(|| format!("cannot write {}", done.display()))?;
        println!("vm: {} build root ready in {:.0} s", archive.name, started.elapsed().as_secs_f64());
        Ok(BuildRoot { dir })
    }

    /// Makes the root hold exactly these (package, version) pairs; a no-op when it does.
    pub(super) fn install(&self, packages: &[(String, String)]) -> Result<()> {
        let installed = |(name, version): &(String, String)| {
            self.run(&[], &["dpkg-query", "-W", "-f", "${Version}", name]).is_ok_and(|v| v.trim() == version)
        };
        if packages.iter().all(installed) {
            return Ok(());
        }
        let specs: Vec<String> = packages.iter().map(|(n, v)| format!("{n}={v}")).collect();
        self.apt_install(&specs.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `apt-get update` and `install` of `specs` (`name` or `name=version`) in the root.
    fn apt_install(&self, specs: &[&str]) -> Result<()> {
        println!("vm: installing in {}: {}", self.dir.display(), specs.join(" "));
        self.run(&[], &["apt-get", "-qq", "--error-on=any", "update"])?;
        let mut argv = vec!["apt-get", "-qq", "-y", "--no-install-recommends", "install"];
        argv.extend(specs);
        self.run(&[], &argv)?;
        Ok(())
    }

    /// Makes the root hold these packages, at apt's candidate versions when they are missing.
    pub(super) fn install_names(&self, packages: &[&str]) -> Result<()> {
        let installed = |name: &&str| {
            self.run(&[], &["dpkg-query", "-W", "-f", "${Status}", name]).is_ok_and(|s| s.ends_with(" installed"))
        };
        let missing: Vec<&str> = packages.iter().filter(|p| !installed(p)).copied().collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.apt_install(&missing)
    }

    /// A path inside the root, as the host sees it.
    pub(super) fn host_path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// Runs `argv` inside the root with /proc mounted and `binds` (host dir, path in the root)
    /// bind-mounted; returns its stdout, or fails with its output. Host paths reach the script
    /// through the environment, so no path is ever parsed by the shell.
    pub(super) fn run(&self, binds: &[(&Path, &str)], argv: &[&str]) -> Result<String> {
        let mut script = String::from(
            "set -e; mount -t proc proc \"$ROOT/proc\"; \
             mount --bind /etc/resolv.conf \"$ROOT/etc/resolv.conf\" 2>/dev/null || true; ",
        );
        for (i, (_, inside)) in binds.iter().enumerate() {
            if !inside.starts_with('/') || inside.contains(['"', '$', '`', '\\']) {
                bail!("bind target {inside:?} must be a plain absolute path");
            }
            script.push_str(&format!("mkdir -p \"$ROOT{inside}\"; mount --bind \"$BIND{i}\" \"$ROOT{inside}\"; "));
        }
        script.push_str("exec chroot \"$ROOT\" \"$@\"");
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--fork", "sh", "-c", &script, "sh"])
            .args(argv)
            .env("ROOT", &self.dir)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (i, (host, _)) in binds.iter().enumerate() {
            c.env(format!("BIND{i}"), host);
        }
        let out = cmd::output(&mut c)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
