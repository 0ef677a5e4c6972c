//! `cargo xtask dist`: the statically linked binary (eBPF object inside), its man pages and
//! completions, and the Debian package, all under `target/dist/`.
//!
//! The binary is linked statically against glibc (`-C target-feature=+crt-static` on the
//! x86_64-unknown-linux-gnu target): the same C library and allocator the tests and benchmarks
//! measure, and nothing to install beyond `libc6-dev`'s `libc.a`. glibc's usual catch in static
//! binaries (NSS: host and user name look-ups) does not apply: the tool resolves no names.
//! docs/service.md says more.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{cargo, workspace_root};

/// The Rust target of the static binary.
pub(crate) const TARGET: &str = "x86_64-unknown-linux-gnu";
const BIN: &str = "mmnotif-trace";

/// What `cargo xtask dist` produced.
#[derive(Debug)]
pub(crate) struct Dist {
    /// `target/dist/mmnotif-trace`.
    pub binary: PathBuf,
    /// `target/dist/mmnotif-trace_<version>_amd64.deb`.
    pub deb: PathBuf,
    /// The man pages the package must install.
    pub man_pages: Vec<PathBuf>,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// `target/dist/`.
pub(crate) fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// Where cargo-deb looks for what its `target/release/...` assets name.
fn release_dir() -> PathBuf {
    target_dir().join(TARGET).join("release")
}

/// The whole of `cargo xtask dist`.
pub(crate) fn run() -> Result<Dist> {
    let binary = build_static()?;
    let assets = generate_assets(&binary)?;
    let deb = build_deb()?;
    println!("xtask: dist: {}", binary.display());
    println!("xtask: dist: {} man pages in {}", assets.man_pages.len(), dist_dir().join("man").display());
    for c in &assets.completions {
        println!("xtask: dist: {}", c.display());
    }
    println!("xtask: dist: {}", deb.display());
    Ok(Dist { binary, deb, man_pages: assets.man_pages })
}

/// Builds the static release binary, checks it, and copies it to `target/dist/`.
pub(crate) fn build_static() -> Result<PathBuf> {
    let status = cargo()
        .args(["build", "--release", "-p", "probe-user", "--bin", BIN, "--target", TARGET])
        // Only this target's flags: with --target, build scripts and proc macros (built for the
        // host) do not get them, and the eBPF build (its own target) neither.
        .env(
            format!("CARGO_TARGET_{}_RUSTFLAGS", TARGET.to_uppercase().replace('-', "_")),
            "-C target-feature=+crt-static",
        )
        // These would replace the target's flags.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // The binary must carry its eBPF object.
        .env_remove("AYA_BUILD_SKIP")
        .status()
        .context("cargo build (static)")?;
    if !status.success() {
        bail!("cargo build --release --target {TARGET} (static) failed");
    }
    let built = release_dir().join(BIN);
    let dir = dist_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let binary = dir.join(BIN);
    std::fs::copy(&built, &binary).with_context(|| format!("copying {} to {}", built.display(), binary.display()))?;
    check_binary(&binary)?;
    Ok(binary)
}

/// Checks that `bin` is statically linked (per `file` and `ldd`), carries an eBPF object and
/// runs `--version`; returns the version line.
pub(crate) fn check_binary(bin: &Path) -> Result<String> {
    let file = output(Command::new("file").arg("-b").arg(bin))?.trim().to_string();
    if !file_says_static(&file) {
        bail!("{}: not statically linked: file says {file:?}", bin.display());
    }
    let ldd = Command::new("ldd").arg(bin).output().context("running ldd")?;
    let ldd_text = format!("{}{}", String::from_utf8_lossy(&ldd.stdout), String::from_utf8_lossy(&ldd.stderr));
    if !ldd_says_static(&ldd_text) {
        bail!("{}: ldd lists shared libraries: {}", bin.display(), ldd_text.trim());
    }
    let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    if !has_embedded_bpf_object(&bytes) {
        bail!("{}: no eBPF object inside (was it built with AYA_BUILD_SKIP=1?)", bin.display());
    }
    let version = output(Command::new(bin).arg("--version"))?;
    let expected = format!("{BIN} {}", env!("CARGO_PKG_VERSION"));
    if version.trim() != expected {
        bail!("{} --version printed {version:?}, expected {expected:?}", bin.display());
    }
    println!("xtask: dist: {}: {file}; {}; {}", bin.display(), ldd_text.trim(), version.trim());
    Ok(version.trim().to_string())
}

/// `file -b` output for a static executable: `statically linked`, or `static-pie linked` for a
/// position-independent one (what rustc makes with crt-static on this target).
pub(crate) fn file_says_static(file: &str) -> bool {
    file.starts_with("ELF 64-bit") && (file.contains("statically linked") || file.contains("static-pie linked"))
}

/// `ldd` output for a binary that loads no shared library.
pub(crate) fn ldd_says_static(ldd: &str) -> bool {
    let t = ldd.trim();
    t.contains("not a dynamic executable") || t == "statically linked"
}

/// Whether `bytes` hold an ELF object for the BPF machine (e_machine 247) past the start, as
/// the loader's `include_bytes!` puts it.
pub(crate) fn has_embedded_bpf_object(bytes: &[u8]) -> bool {
    const EM_BPF: u16 = 247;
    let mut from = 1;
    while let Some(pos) = bytes.get(from..).and_then(|rest| rest.windows(4).position(|w| w == b"\x7fELF")) {
        let at = from + pos;
        // ELFCLASS64, little endian, version 1, then e_machine at offset 18.
        if let Some(h) = bytes.get(at..at + 20)
            && h[4] == 2
            && h[5] == 1
            && h[6] == 1
            && u16::from_le_bytes([h[18], h[19]]) == EM_BPF
        {
            return true;
        }
        from = at + 4;
    }
    false
}

/// The generated files under `target/dist/`.
#[derive(Debug)]
pub(crate) struct Assets {
    pub man_pages: Vec<PathBuf>,
    pub completions: Vec<PathBuf>,
}

/// Completion scripts: (shell, file name its shell loads it by).
const COMPLETIONS: [(&str, &str); 3] = [("bash", BIN), ("zsh", "_mmnotif-trace"), ("fish", "mmnotif-trace.fish")];

/// Man pages (gzipped) and completion scripts, generated by the built binary from its clap
/// definitions, into `target/dist/{man,completions}` and where cargo-deb takes them.
pub(crate) fn generate_assets(binary: &Path) -> Result<Assets> {
    let dist = dist_dir();
    let man_dir = dist.join("man");
    let _ = std::fs::remove_dir_all(&man_dir);
    let listed = output(Command::new(binary).arg("man").arg("--dir").arg(&man_dir))?;
    let mut man_pages = Vec::new();
    for page in listed.lines().map(PathBuf::from) {
        // Debian installs man pages compressed; -n keeps the archive reproducible.
        let status = Command::new("gzip").args(["-9nf"]).arg(&page).status().context("running gzip")?;
        if !status.success() {
            bail!("gzip {} failed", page.display());
        }
        man_pages.push(PathBuf::from(format!("{}.gz", page.display())));
    }
    if man_pages.is_empty() {
        bail!("{} man --dir wrote no page", binary.display());
    }
    let comp_dir = dist.join("completions");
    std::fs::create_dir_all(&comp_dir).with_context(|| format!("creating {}", comp_dir.display()))?;
    let mut completions = Vec::new();
    for (shell, name) in COMPLETIONS {
        let script = output(Command::new(binary).args(["completions", shell]))?;
        let path = comp_dir.join(name);
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        completions.push(path);
    }
    // cargo-deb's `target/release/dist-assets/...` (see probe-user/Cargo.toml).
    let staged = release_dir().join("dist-assets");
    let _ = std::fs::remove_dir_all(&staged);
    for (sub, files) in [("man", &man_pages), ("completions", &completions)] {
        let dir = staged.join(sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for f in files {
            let to = dir.join(f.file_name().context("file name")?);
            std::fs::copy(f, &to).with_context(|| format!("copying {} to {}", f.display(), to.display()))?;
        }
    }
    Ok(Assets { man_pages, completions })
}

/// Packages the static binary and the assets with cargo-deb (installed by scripts/setup.sh).
pub(crate) fn build_deb() -> Result<PathBuf> {
    let dist = dist_dir();
    let out = cargo()
        .args(["deb", "-p", "probe-user", "--target", TARGET, "--no-build", "--output"])
        .arg(&dist)
        .output()
        .context("running cargo deb (scripts/setup.sh installs cargo-deb)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    if !out.status.success() {
        bail!("cargo deb failed ({}): {}", out.status, stderr.trim());
    }
    // cargo-deb prints the package's path last.
    let deb = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb did not say where it wrote the package: {stdout:?}"))?;
    if !deb.is_file() {
        bail!("cargo deb reported {}, which does not exist", deb.display());
    }
    Ok(deb)
}

/// Files the package must install (besides one man page per subcommand).
pub(crate) const EXPECTED_FILES: [&str; 12] = [
    "usr/sbin/mmnotif-trace",
    "usr/share/man/man8/mmnotif-trace.8.gz",
    "usr/share/bash-completion/completions/mmnotif-trace",
    "usr/share/zsh/vendor-completions/_mmnotif-trace",
    "usr/share/fish/vendor_completions.d/mmnotif-trace.fish",
    "usr/share/mmnotif-trace/dashboards/overview.json",
    "usr/share/mmnotif-trace/dashboards/notifiers.json",
    "usr/share/mmnotif-trace/dashboards/violations.json",
    "usr/share/mmnotif-trace/dashboards/prometheus.yml",
    "usr/share/mmnotif-trace/dashboards/provisioning/datasources/mmnotif-trace.yaml",
    "usr/share/mmnotif-trace/dashboards/provisioning/dashboards/mmnotif-trace.yaml",
    "usr/lib/systemd/system/mmnotif-trace.service",
];

/// Installs `deb` into a throw-away root (`target/dist/deb-root`) with `dpkg --root --unpack`
/// (as root; else `dpkg-deb -x`), and checks what it installed: every expected file, a man page
/// per page `man --dir` wrote, the unit, the maintainer scripts' syntax, and that the installed
/// binary prints its version. Configuring (postinst) is left out: it talks to the running
/// system's systemd. Returns one line per check passed.
pub(crate) fn check_deb(deb: &Path, man_pages: &[PathBuf]) -> Result<Vec<String>> {
    let root = dist_dir().join("deb-root");
    let _ = std::fs::remove_dir_all(&root);
    let mut passed = Vec::new();
    if crate::is_root() {
        let db = root.join("var/lib/dpkg");
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(db.join(d)).with_context(|| format!("creating {}", db.join(d).display()))?;
        }
        for f in ["status", "available"] {
            std::fs::write(db.join(f), "").with_context(|| format!("creating {}", db.join(f).display()))?;
        }
        output(Command::new("dpkg").arg(format!("--root={}", root.display())).arg("--unpack").arg(deb))?;
        let status =
            output(Command::new("dpkg").arg(format!("--root={}", root.display())).args(["-s", "mmnotif-trace"]))?;
        if !status.lines().any(|l| l == "Status: install ok unpacked") {
            bail!("dpkg --root {} -s mmnotif-trace: {status}", root.display());
        }
        passed.push(format!("dpkg --root {} --unpack {}: install ok unpacked", root.display(), deb.display()));
        for script in ["postinst", "prerm", "postrm"] {
            let path = db.join("info").join(format!("mmnotif-trace.{script}"));
            if path.exists() {
                output(Command::new("sh").arg("-n").arg(&path))?;
                passed.push(format!("{script}: sh -n ok"));
            }
        }
    } else {
        output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        passed.push(format!("dpkg-deb -x {} {}", deb.display(), root.display()));
    }
    let mut missing: Vec<String> =
        EXPECTED_FILES.iter().filter(|f| !root.join(f).is_file()).map(|f| f.to_string()).collect();
    for page in man_pages {
        let name = page.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !root.join("usr/share/man/man8").join(&name).is_file() {
            missing.push(format!("usr/share/man/man8/{name}"));
        }
    }
    if !missing.is_empty() {
        bail!("the package does not install {}", missing.join(", "));
    }
    passed.push(format!("{} files and {} man pages installed", EXPECTED_FILES.len(), man_pages.len()));
    let unit_path = root.join("usr/lib/systemd/system/mmnotif-trace.service");
    let unit = std::fs::read_to_string(&unit_path).with_context(|| format!("reading {}", unit_path.display()))?;
    for line in ["ExecStart=/usr/sbin/mmnotif-trace stream ", "Restart=on-failure", "KillSignal=SIGTERM"] {
        if !unit.lines().any(|l| l.starts_with(line)) {
            bail!("{} has no line {line:?}", unit_path.display());
        }
    }
    passed.push("mmnotif-trace.service: ExecStart, Restart=on-failure, KillSignal=SIGTERM".into());
    let version = check_binary(&root.join("usr/sbin/mmnotif-trace"))?;
    passed.push(format!("installed binary: static, prints {version:?}"));
    std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    Ok(passed)
}

/// Runs `cmd` and returns its stdout; fails with its stderr if it fails.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("{cmd:?} printed non-UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_binaries_are_told_from_dynamic_ones() {
        assert!(file_says_static(
            "ELF 64-bit LSB pie executable, x86-64, version 1 (GNU/Linux), static-pie linked, BuildID[sha1]=ab, not stripped"
        ));
        assert!(file_says_static("ELF 64-bit LSB executable, x86-64, version 1 (SYSV), statically linked, stripped"));
        assert!(!file_says_static(
            "ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), dynamically linked, interpreter /lib64/ld-linux-x86-64.so.2"
        ));
        assert!(ldd_says_static("\tnot a dynamic executable\n"));
        assert!(ldd_says_static("\tstatically linked\n"));
        assert!(!ldd_says_static("\tlinux-vdso.so.1 (0x0)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x0)\n"));
    }

    fn elf_header(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn an_embedded_bpf_object_is_found_and_the_host_header_is_not_one() {
        let host = elf_header(62); // x86-64, at offset 0
        assert!(!has_embedded_bpf_object(&host));
        let mut with_bpf = host.clone();
        with_bpf.extend_from_slice(b"padding\x7fEL");
        with_bpf.extend(elf_header(247));
        assert!(has_embedded_bpf_object(&with_bpf));
        let mut truncated = host;
        truncated.extend_from_slice(b"\x7fELF\x02\x01");
        assert!(!has_embedded_bpf_object(&truncated));
    }
}
