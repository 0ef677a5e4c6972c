//! The guest's initramfs: busybox, `/init` (tests/guest/init.sh), the test module, the guest
//! programs and suite, and any extra host binaries (statically linked, like busybox and the
//! tracer from `cargo xtask dist`).
use super::cpio::Cpio;
use super::hmm::HmmSuite;
use super::kernel::file_name;
use super::kvm_selftests::KvmSelftests;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where extra binaries land in the guest (it is on the guest's PATH).
pub(crate) const GUEST_BIN_DIR: &str = "/usr/local/bin";

/// What goes into one guest.
#[derive(Debug)]
pub(crate) struct InitramfsSpec {
    /// The test module for this kernel (`/lib/modules/mmnotif_test.ko`).
    pub module: PathBuf,
    /// This kernel's own KVM modules in load order (`/lib/modules/kvm/`, listed in
    /// `/lib/modules/kvm/order`), for the guest's KVM scenario.
    pub kvm_modules: Vec<PathBuf>,
    /// (name, host path) of the guest programs (`/tests/<name>`).
    pub guest_programs: Vec<(String, PathBuf)>,
    /// Host binaries copied to `/usr/local/bin/<file name>`; each must be statically linked.
    pub extra_binaries: Vec<PathBuf>,
    /// Further files: (host path, guest path, mode), e.g. a program of the build root with its
    /// libraries (`root_program.rs`).
    pub extra_files: Vec<super::root_program::GuestFile>,
    /// A command run after the suite (argv; empty: none). Its exit status is one more result.
    pub guest_cmd: Vec<String>,
    /// Run the built-in guest suite.
    pub run_suite: bool,
    /// Restrict the suite to these scenarios (empty: all).
    pub scenarios: Vec<String>,
    /// Open a shell on the console after the tests instead of powering off at once.
    pub keep: bool,
    /// Upstream fixes the kernel lacks (a kernel built here; `kernels.rs`), for the suite's
    /// expectations.
    pub kernel_lacks: Vec<String>,
    /// The kernel's own HMM test suite (`/lib/modules/hmm/test_hmm.ko`, `/tests/hmm-tests`), or
    /// why this kernel has none.
    pub hmm: super::hmm::HmmSuite,
    /// Physical addresses of test_hmm's two coherent devices (`spm_addr_dev0`, `spm_addr_dev1`).
    pub hmm_spm: Vec<u64>,
    /// KVM's own selftests (`/tests/kvm/<name>`), or why this kernel has none.
    pub kvm_selftests: KvmSelftests,
}

/// Writes the initramfs (uncompressed cpio newc) to `out`.
pub(crate) fn build_initramfs(paths: &Paths, out: &Path, spec: &InitramfsSpec) -> Result<()> {
    let f = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = Tree { cpio: Cpio::new(BufWriter::new(f)), dirs: BTreeSet::new() };
    for d in [
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/lib/modules",
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
        "/tests",
    ] {
        w.dir_all(d)?;
    }
    w.cpio.char_dev("/dev/console", 0o600, 5, 1)?;
    w.cpio.char_dev("/dev/null", 0o666, 1, 3)?;

    let busybox = Path::new("/bin/busybox");
    if !is_static(busybox)? {
        bail!("{} is not statically linked (install busybox-static)", busybox.display());
    }
    w.copy(busybox, "/bin/busybox", 0o755)?;
    w.cpio.symlink("/bin/sh", "busybox")?;
    let guest = paths.guest_src();
    w.copy(&guest.join("init.sh"), "/init", 0o755)?;
    w.copy(&guest.join("suite.sh"), "/tests/suite.sh", 0o755)?;
    w.copy(&guest.join("tracer.sh"), "/tests/tracer.sh", 0o755)?;
    w.copy(&guest.join("kvm.sh"), "/tests/kvm.sh", 0o755)?;
    w.copy(&guest.join("kvm-counts.sh"), "/tests/kvm-counts.sh", 0o644)?;
    w.copy(&guest.join("misses.sh"), "/tests/misses.sh", 0o644)?;
    w.copy(&guest.join("attach-loop.sh"), "/tests/attach-loop.sh", 0o755)?;
    w.copy(&guest.join("hmm.sh"), "/tests/hmm.sh", 0o755)?;
    w.copy(&guest.join("kvm-selftests.sh"), "/tests/kvm-selftests.sh", 0o755)?;
    w.copy(&guest.join("bench.sh"), "/tests/bench.sh", 0o755)?;
    let hmm_unsupported = match &spec.hmm {
        HmmSuite::Ready { module, tests } => {
            w.dir_all("/lib/modules/hmm")?;
            w.copy(module, "/lib/modules/hmm/test_hmm.ko", 0o644)?;
            w.copy(tests, "/tests/hmm-tests", 0o755)?;
            String::new()
        }
        HmmSuite::Unsupported(why) => why.clone(),
    };
    // Run by absolute path: each test loads its own ELF segments into its VM from argv[0].
    let kvm_selftests_unsupported = match &spec.kvm_selftests {
        KvmSelftests::Ready(tests) => {
            w.dir_all("/tests/kvm")?;
            for (name, path) in tests {
                w.copy(path, &format!("/tests/kvm/{name}"), 0o755)?;
            }
            String::new()
        }
        KvmSelftests::Unsupported(why) => why.clone(),
    };
    for (name, path) in &spec.guest_programs {
        w.copy(path, &format!("/tests/{name}"), 0o755)?;
    }
    w.copy(&spec.module, "/lib/modules/mmnotif_test.ko", 0o644)?;
    if !spec.kvm_modules.is_empty() {
        w.dir_all("/lib/modules/kvm")?;
        let mut order = String::new();
        for ko in &spec.kvm_modules {
            let name = file_name(ko);
            w.copy(ko, &format!("/lib/modules/kvm/{name}"), 0o644)?;
            order.push_str(&name);
            order.push('\n');
        }
        w.cpio.file("/lib/modules/kvm/order", 0o644, order.as_bytes())?;
    }

    for bin in &spec.extra_binaries {
        let name = file_name(bin);
        if name.is_empty() {
            bail!("--with-binary {}: not a file name", bin.display());
        }
        // The guest has no C library of its own: what runs there is statically linked, as the
        // tracer that `cargo xtask dist` ships is.
        if !is_static(bin)? {
            bail!(
                "--with-binary {}: dynamically linked; the guest takes static binaries (`cargo xtask \
                 dist` builds the tracer's, target/dist/mmnotif-trace)",
                bin.display()
            );
        }
        w.copy(bin, &format!("{GUEST_BIN_DIR}/{name}"), 0o755)?;
    }

    for (host, guest, mode) in &spec.extra_files {
        if let Some((dir, _)) = guest.rsplit_once('/') {
            w.dir_all(dir)?;
        }
        w.copy(host, guest, *mode)?;
    }

    let conf = format!(
        "RUN_SUITE={}\nSCENARIOS={}\nKEEP={}\nKERNEL_LACKS={}\nHMM_UNSUPPORTED={}\nHMM_SPM={}\n\
         KVM_SELFTESTS_UNSUPPORTED={}\n",
        spec.run_suite as u8,
        quote(&spec.scenarios.join(" ")),
        spec.keep as u8,
        quote(&spec.kernel_lacks.join(" ")),
        quote(&hmm_unsupported),
        quote(&spec.hmm_spm.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>().join(" ")),
        quote(&kvm_selftests_unsupported)
    );
    w.cpio.file("/etc/mmnotif-vm.conf", 0o644, conf.as_bytes())?;
    if !spec.guest_cmd.is_empty() {
        let argv: Vec<String> = spec.guest_cmd.iter().map(|a| quote(a)).collect();
        let script = format!("#!/bin/sh\n{}\n", argv.join(" "));
        w.cpio.file("/etc/mmnotif-guest-cmd", 0o755, script.as_bytes())?;
    }
    w.cpio.finish().with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

struct Tree {
    cpio: Cpio<BufWriter<std::fs::File>>,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn dir_all(&mut self, path: &str) -> Result<()> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            if self.dirs.insert(cur.clone()) {
                self.cpio.dir(&cur)?;
            }
        }
        Ok(())
    }

    fn copy(&mut self, host: &Path, guest: &str, mode: u32) -> Result<()> {
        let data = std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        self.cpio.file(guest, mode, &data)?;
        Ok(())
    }
}

fn is_static(bin: &Path) -> Result<bool> {
    Ok(shared_libraries(bin)?.is_empty())
}

/// The shared libraries (and the ELF interpreter) `bin` loads, per `ldd`.
pub(crate) fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    if !bin.is_file() {
        bail!("{} does not exist", bin.display());
    }
    let out = Command::new("ldd").arg(bin).output().context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", bin.display(), err.trim());
    }
    parse_ldd(&text).with_context(|| format!("{} on the host", bin.display()))
}

/// The shared libraries (and the ELF interpreter) in `ldd`'s output; none when it says the
/// binary is statically linked.
pub(crate) fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    if text.contains("statically linked") {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("=> not found") {
            bail!("shared library missing: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|w| w.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Single-quotes a word for /bin/sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_binaries_are_told_from_dynamic_ones() {
        // This test binary loads libc; busybox-static (a set-up package) loads nothing.
        let me = std::env::current_exe().expect("test binary");
        assert!(!is_static(&me).expect("ldd"));
        assert!(!shared_libraries(&me).expect("ldd").is_empty());
        let busybox = Path::new("/bin/busybox");
        if busybox.exists() {
            assert!(is_static(busybox).expect("ldd"));
        }
        assert!(is_static(Path::new("/no/such/binary")).is_err());
    }
}
