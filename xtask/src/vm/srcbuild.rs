//! Kernels the test bed compiles itself (rows of `kernels.rs` with `build`): Debian's source
//! tarball of the row's current kernel, changed as the row says (`revert.rs`), configured with
//! `guest-kernel.config` over `allnoconfig`, and built in the archive's build root with its own
//! compiler and pahole. The tree stays in the store (`built/<row>/`, outside any checkout), so
//! every clone on the machine reuses it and the test module builds against it.
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::kernels::{KernelRow, SourceBuild};
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The configuration every built kernel gets (one option a line, commented).
const CONFIG: &str = include_str!("guest-kernel.config");

/// Where the tree is mounted in the build root, for the kernel build and the module build alike
/// (kbuild records absolute paths, so both must see the same one).
pub(super) const TREE_IN_ROOT: &str = "/build/kernel";

/// Records what a tree was built from; a build whose record differs from what is wanted is redone.
const STAMP: &str = ".mmnotif-built";

/// A kernel built here.
pub(super) struct Built {
    pub vmlinux: PathBuf,
    /// The source tree, as the host sees it.
    pub tree: PathBuf,
    /// The build's record (`STAMP`): what the test module's build depends on.
    pub stamp: String,
}

fn dir(paths: &Paths, row: &KernelRow) -> PathBuf {
    paths.store.join("built").join(row.name)
}

/// The first line of the record: what was built (source, change, configuration).
fn identity(r: &Resolved, build: &SourceBuild) -> String {
    let (package, version) = r.headers.first().map(|(n, v)| (n.as_str(), v.as_str())).unwrap_or(("?", "?"));
    format!("{package} {version} {} config-{:016x}", build.change.id(), fnv1a(CONFIG.as_bytes()))
}

/// The record of `row`'s built kernel in the store, if there is a complete one.
pub(super) fn recorded(paths: &Paths, row: &KernelRow) -> Option<String> {
    let tree = dir(paths, row).join("src");
    let stamp = std::fs::read_to_string(tree.join(STAMP)).ok()?;
    tree.join("vmlinux").is_file().then_some(stamp)
}

/// `row`'s kernel: the recorded build when it was made from what `r` resolved, otherwise a new
/// build. With `rebuild` false (the kernel was not asked for by name), an older build is used
/// as it is, and the run says so.
pub(super) fn kernel(
    paths: &Paths,
    r: &Resolved,
    root: &BuildRoot,
    build: &SourceBuild,
    rebuild: bool,
) -> Result<Built> {
    let base = dir(paths, r.kernel);
    let tree = base.join("src");
    let want = identity(r, build);
    let built = |stamp: String| Built { vmlinux: tree.join("vmlinux"), tree: tree.clone(), stamp };
    match recorded(paths, r.kernel) {
        Some(stamp) if stamp.lines().next() == Some(want.as_str()) => return Ok(built(stamp)),
        Some(stamp) if !rebuild => {
            println!(
                "vm: {}: using the kernel built earlier ({}), not {want}: `cargo xtask vm --kernel {}` rebuilds it",
                r.name(),
                stamp.lines().next().unwrap_or("?"),
                r.name()
            );
            return Ok(built(stamp));
        }
        _ => {}
    }
    let started = Instant::now();
    let mut packages: Vec<&str> = r.kernel.archive.build_packages.to_vec();
    packages.extend(build.build_packages);
    root.install_names(&packages)?;
    let (package, _) = r.headers.first().context("a built kernel without its source package")?;
    let tarball = root.host_path(&format!("/usr/src/{package}.tar.xz"));
    let same_source = std::fs::read_to_string(tree.join(STAMP))
        .ok()
        .is_some_and(|s| s.split_whitespace().take(2).eq(want.split_whitespace().take(2)));
    if !same_source || !tree.join("Makefile").is_file() {
        let _ = std::fs::remove_dir_all(&base);
        cmd::mkdir(&tree)?;
        println!("[{}] extracting {}", r.name(), tarball.display());
        cmd::output(
            std::process::Command::new("tar")
                .arg("-xaf")
                .arg(&tarball)
                .arg("--strip-components=1")
                .arg("-C")
                .arg(&tree),
        )
        .with_context(|| format!("cannot extract the {} kernel source", r.name()))?;
    }
    let _ = std::fs::remove_file(tree.join(STAMP));
    apply_change(&tree, build, &base, r)?;
    let fragment = format!("{CONFIG}\nCONFIG_LOCALVERSION=\"-{}\"\n", build.change.id());
    std::fs::write(tree.join(".mmnotif.config"), &fragment).context("cannot write the kernel configuration")?;
    let binds = [(tree.as_path(), TREE_IN_ROOT)];
    let make = |args: &[&str]| -> Result<String> {
        let mut argv = vec!["make", "-s", "-C", TREE_IN_ROOT];
        argv.extend(args);
        root.run(&binds, &argv)
    };
    let allconfig = format!("KCONFIG_ALLCONFIG={TREE_IN_ROOT}/.mmnotif.config");
    root.run(&binds, &["env", &allconfig, "make", "-s", "-C", TREE_IN_ROOT, "allnoconfig"])
        .with_context(|| format!("configuring the {} kernel failed", r.name()))?;
    check_config(&tree.join(".config"), &fragment)?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
    println!(
        "[{}] building {want} in {} with the build root's compiler ({jobs} jobs; the first build takes minutes)",
        r.name(),
        tree.display()
    );
    make(&["-j", &jobs, "vmlinux", "modules"]).with_context(|| format!("building the {} kernel failed", r.name()))?;
    let release = make(&["kernelrelease"])?.trim().to_string();
    let secs = started.elapsed().as_secs();
    let stamp = format!("{want}\nrelease {release}\nbuilt-in-seconds {secs}\n");
    std::fs::write(tree.join(STAMP), &stamp).context("cannot record the kernel build")?;
    println!("[{}] built kernel {release} in {secs} s ({} min)", r.name(), secs.div_ceil(60));
    Ok(built(stamp))
}

/// Applies the row's change to the pristine file (kept beside it) and writes the difference to
/// `<base>/<change>.diff` for the log and for anyone reading the store.
fn apply_change(tree: &Path, build: &SourceBuild, base: &Path, r: &Resolved) -> Result<()> {
    let file = tree.join(build.change.file());
    let pristine = tree.join(format!("{}.orig", build.change.file()));
    if !pristine.is_file() {
        std::fs::copy(&file, &pristine).with_context(|| format!("cannot keep {}", pristine.display()))?;
    }
    let text = std::fs::read_to_string(&pristine).with_context(|| format!("cannot read {}", pristine.display()))?;
    let changed = build.change.apply(&text).with_context(|| format!("{} {}", r.name(), r.version))?;
    std::fs::write(&file, changed).with_context(|| format!("cannot write {}", file.display()))?;
    let diff =
        std::process::Command::new("diff").arg("-u").arg(&pristine).arg(&file).output().context("cannot run diff")?;
    let out = base.join(format!("{}.diff", build.change.id()));
    std::fs::write(&out, &diff.stdout).with_context(|| format!("cannot write {}", out.display()))?;
    let removed =
        String::from_utf8_lossy(&diff.stdout).lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count();
    println!(
        "[{}] {}: {removed} lines of {} removed ({})",
        r.name(),
        build.change.id(),
        build.change.file(),
        out.display()
    );
    Ok(())
}

/// Fails naming every option of `fragment` that the configuration did not keep (a dependency
/// missing from guest-kernel.config, or an option this source does not know).
fn check_config(config: &Path, fragment: &str) -> Result<()> {
    let have = std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let missing: Vec<&str> = fragment
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter(|want| !have.lines().any(|l| l == *want))
        .collect();
    if !missing.is_empty() {
        bail!("{}: the kernel configuration did not keep {}", config.display(), missing.join(" "));
    }
    Ok(())
}

/// A stable hash of the configuration text (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_configuration_is_an_option_or_a_comment() {
        for (i, line) in CONFIG.lines().enumerate() {
            let l = line.trim();
            assert!(
                l.is_empty() || l.starts_with('#') || (l.starts_with("CONFIG_") && l.ends_with("=y")),
                "guest-kernel.config:{}: {line:?}",
                i + 1
            );
        }
    }

    #[test]
    fn a_configuration_that_lost_an_option_is_named() {
        let dir = std::env::temp_dir().join(format!("mmnotif-srcbuild-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join(".config");
        std::fs::write(&config, "CONFIG_A=y\n# CONFIG_B is not set\n").unwrap();
        let err = check_config(&config, "# c\nCONFIG_A=y\nCONFIG_B=y\n").unwrap_err().to_string();
        assert!(err.ends_with("did not keep CONFIG_B=y"), "{err}");
        check_config(&config, "CONFIG_A=y\n").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
