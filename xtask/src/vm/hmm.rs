//! The kernel's own HMM test suite for a guest: `lib/test_hmm.c` built as a module against the
//! kernel's headers in its build root (`kmod.rs` does the same for the project's module), and
//! the kselftest `hmm-tests` statically linked with the host's gcc (the guest has no C library),
//! both from the kernel's own `linux-source-*` package (`debian.rs` downloads it). The kselftest
//! harness comes from the newest kernel's source: older ones (6.1's) loop forever when a teardown
//! check fails. Where the kernel lacks `CONFIG_DEVICE_PRIVATE`, test_hmm is adapted
//! (`hmm_adapt.rs`). Only the few files needed are extracted; results live in the store, keyed
//! by what they were built from. Nothing of the kernel's source is kept in the checkout.
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::hmm_adapt;
use super::ksource::{self, copy, file_name};
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The guest's view of the suite.
#[derive(Debug)]
pub(crate) enum HmmSuite {
    /// Built: the module and the test program.
    Ready { module: PathBuf, tests: PathBuf },
    /// This kernel cannot run it, and why (the guest prints it as a SKIP line).
    Unsupported(String),
}

/// test_hmm's device memory chunk (`DEVMEM_CHUNK_SIZE`, 256 MiB): each coherent device
/// (`spm_addr_dev0`, `spm_addr_dev1`) needs one chunk of reserved RAM.
const CHUNK: u64 = 256 << 20;

/// The RAM reserved for the two coherent devices: the guest gets `--memory` plus this, and the
/// kernel command line `memmap=<size>$<start>` keeps it out of the page allocator. Returns the
/// start, placed right after the memory the guest keeps (QEMU maps RAM contiguously from 0 up
/// to 3 GiB).
pub(crate) fn coherent_reservation(memory: &str) -> Result<u64> {
    let t = memory.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => bail!("--memory {memory}: want a size in M or G"),
    };
    let start = digits.parse::<u64>().with_context(|| format!("--memory {memory}: not a size"))? << shift;
    if start + 2 * CHUNK > 3 << 30 {
        bail!("--memory {memory}: with the {} MiB reserved for test_hmm it passes 3 GiB", (2 * CHUNK) >> 20);
    }
    Ok(start)
}

/// The reserved RAM's size and the two devices' addresses in it.
pub(crate) fn coherent_layout(start: u64) -> (u64, [u64; 2]) {
    (2 * CHUNK, [start, start + CHUNK])
}

/// The files taken out of a source tarball (paths inside the tree; `*` as tar matches it).
const MEMBERS: &[&str] = &[
    "lib/test_hmm.c",
    "lib/test_hmm_uapi.h",
    "mm/gup_test.h",
    "tools/testing/selftests/kselftest_harness.h",
    "tools/testing/selftests/kselftest.h",
    "tools/testing/selftests/*/hmm-tests.c",
    // The mm selftests' helpers, which hmm-tests links from 7.x (`vm_util.c`, ...).
    "tools/testing/selftests/[mv]m/*.[ch]",
];

/// Options test_hmm needs (`y` in the kernel's configuration).
const NEEDED: &[&str] = &["CONFIG_ZONE_DEVICE", "CONFIG_HMM_MIRROR", "CONFIG_MIGRATION", "CONFIG_MMU_NOTIFIER"];

/// How test_hmm is built for a kernel configuration.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// As it is (the kernel has device-private memory).
    AsIs,
    /// With `hmm_adapt.rs`: no device-private memory, but migration is built.
    Adapted,
}

fn has(config: &str, option: &str) -> bool {
    config.lines().any(|l| l.strip_prefix(option).is_some_and(|rest| rest == "=y"))
}

/// What the configuration allows, or why it cannot run test_hmm.
fn plan(config: &str) -> Result<Plan, String> {
    let missing: Vec<&str> = NEEDED.iter().copied().filter(|o| !has(config, o)).collect();
    if !missing.is_empty() {
        return Err(format!("the kernel is built without {}", missing.join(" ")));
    }
    if has(config, "CONFIG_DEVICE_PRIVATE") {
        Ok(Plan::AsIs)
    } else if has(config, "CONFIG_DEVICE_MIGRATION") {
        Ok(Plan::Adapted)
    } else {
        Err("CONFIG_DEVICE_PRIVATE is unset and the kernel has no CONFIG_DEVICE_MIGRATION: migrate_vma_*(), \
             which test_hmm calls, are not built"
            .into())
    }
}

/// The mm selftests' helpers `hmm-tests.c` includes that have a `.c` of their own in `dir` (from
/// 7.x it includes `vm_util.h` and `hugepage_settings.h`, and links their code). A `.c` with a
/// `main` is another test program (`gup_test.c` beside `<mm/gup_test.h>`), not a helper.
fn helpers(source: &str, dir: &Path) -> Vec<PathBuf> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#include"))
        .filter_map(|l| l.trim().trim_matches(['"', '<', '>']).strip_suffix(".h"))
        .filter_map(|h| h.rsplit('/').next())
        .map(|h| dir.join(format!("{h}.c")))
        .filter(|c| std::fs::read_to_string(c).is_ok_and(|text| !text.contains("int main(")))
        .collect()
}

/// The suite for `r`, harness from `newest`. Errors are real failures (a download or a build
/// that broke); a kernel that cannot run it is `Unsupported`.
pub(super) fn build(paths: &Paths, r: &Resolved, root: &BuildRoot, newest: &Resolved) -> Result<HmmSuite> {
    let unsupported = |why: String| Ok(HmmSuite::Unsupported(why));
    let headers = format!("/usr/src/linux-headers-{}-amd64", r.abi);
    let config_path = root.host_path(&format!("{headers}/.config"));
    let config =
        std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let plan = match plan(&config) {
        Ok(p) => p,
        Err(why) => return unsupported(why),
    };
    let deb = match r.source_deb(paths) {
        Ok(d) => d,
        Err(why) => return unsupported(format!("no kernel source: {why}")),
    };
    let harness_deb = newest.source_deb(paths).map_err(|why| anyhow::anyhow!("no {} source: {why}", newest.name()))?;
    let src = ksource::extract(paths, &deb, "hmm", MEMBERS)?;
    let harness = ksource::extract(paths, &harness_deb, "hmm", MEMBERS)?;
    let tests_c = find_tests(&src)?;
    let tests_text = std::fs::read_to_string(&tests_c).with_context(|| format!("cannot read {}", tests_c.display()))?;
    let tests_dir = tests_c.parent().context("hmm-tests.c has no directory")?;
    let linked = helpers(&tests_text, tests_dir);

    let out = paths.store.join("hmm").join("built").join(&r.abi);
    let module = out.join("lib").join("test_hmm.ko");
    let tests = out.join("hmm-tests");
    let stamp_path = out.join(".mmnotif-built");
    let stamp = format!(
        "{}\nharness {}\nplan {plan:?} {}\nheaders {}\n",
        file_name(&deb),
        file_name(&harness_deb),
        hmm_adapt::ID,
        r.headers.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
    );
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) && module.is_file() && tests.is_file() {
        return Ok(HmmSuite::Ready { module, tests });
    }
    println!("[{}] building test_hmm.ko and hmm-tests from {} ({plan:?})", r.name(), file_name(&deb));
    let _ = std::fs::remove_dir_all(&out);
    let lib = out.join("lib");
    cmd::mkdir(&lib)?;
    let c_src = std::fs::read_to_string(src.join("lib/test_hmm.c")).context("cannot read test_hmm.c")?;
    let c_src = match plan {
        Plan::AsIs => c_src,
        Plan::Adapted => {
            hmm_adapt::without_device_private(&c_src).with_context(|| format!("{} {}", r.name(), r.version))?
        }
    };
    std::fs::write(lib.join("test_hmm.c"), c_src).context("cannot write test_hmm.c")?;
    copy(&src.join("lib/test_hmm_uapi.h"), &lib.join("test_hmm_uapi.h"))?;
    std::fs::write(lib.join("Kbuild"), "obj-m += test_hmm.o\n").context("cannot write the Kbuild file")?;
    root.run(&[(lib.as_path(), "/build/hmm")], &["make", "-s", "-C", &headers, "M=/build/hmm", "modules"])
        .with_context(|| format!("building test_hmm.ko for {} failed", r.abi))?;
    if !module.is_file() {
        bail!("make succeeded but left no {}", module.display());
    }

    // hmm-tests includes "../kselftest_harness.h" (6.x), <lib/test_hmm_uapi.h> and
    // <mm/gup_test.h> from the tree's top: the same layout, the harness from the newest source.
    let inc = out.join("include");
    let selftests = inc.join("tools/testing/selftests");
    cmd::mkdir(&selftests.join("mm"))?;
    cmd::mkdir(&inc.join("lib"))?;
    cmd::mkdir(&inc.join("mm"))?;
    copy(&src.join("lib/test_hmm_uapi.h"), &inc.join("lib/test_hmm_uapi.h"))?;
    copy(&src.join("mm/gup_test.h"), &inc.join("mm/gup_test.h"))?;
    for h in ["kselftest_harness.h", "kselftest.h"] {
        copy(&harness.join("tools/testing/selftests").join(h), &selftests.join(h))?;
    }
    // The directory's headers too, for 7.x's `#include "kselftest_harness.h"` and the helpers.
    for e in std::fs::read_dir(tests_dir).with_context(|| format!("cannot list {}", tests_dir.display()))?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "h") {
            copy(&p, &selftests.join("mm").join(e.file_name()))?;
        }
    }
    let main = selftests.join("mm/hmm-tests.c");
    copy(&tests_c, &main)?;
    let mut gcc = ksource::static_gcc()?;
    gcc.arg("-I").arg(&inc).arg("-I").arg(&selftests);
    if !linked.is_empty() {
        // The helpers use this kernel's UAPI (7.x's vm_util.c: PAGEMAP_SCAN of linux/fs.h, newer
        // than the host's), with `__packed` defined as headers_install would have rewritten it.
        for dir in ksource::uapi_dirs(r, root)? {
            gcc.arg("-isystem").arg(dir);
        }
        gcc.arg(ksource::UAPI_PACKED).arg("-Wno-cpp");
    }
    gcc.arg("-o").arg(&tests).arg(&main).args(&linked);
    cmd::output(&mut gcc).with_context(|| format!("building hmm-tests for {} failed", r.abi))?;
    std::fs::write(&stamp_path, stamp).with_context(|| format!("cannot write {}", stamp_path.display()))?;
    Ok(HmmSuite::Ready { module, tests })
}

/// `hmm-tests.c`: under selftests/vm up to 6.1, selftests/mm from 6.3.
fn find_tests(src: &Path) -> Result<PathBuf> {
    ["mm", "vm"]
        .iter()
        .map(|d| src.join("tools/testing/selftests").join(d).join("hmm-tests.c"))
        .find(|p| p.is_file())
        .with_context(|| format!("no hmm-tests.c under {}/tools/testing/selftests", src.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_6X: &str = "CONFIG_ZONE_DEVICE=y\nCONFIG_HMM_MIRROR=y\nCONFIG_MIGRATION=y\nCONFIG_MMU_NOTIFIER=y\n\
                             # CONFIG_DEVICE_PRIVATE is not set\nCONFIG_DEVICE_MIGRATION=y\n";

    #[test]
    fn the_configuration_decides_how_test_hmm_is_built() {
        assert_eq!(plan(DEBIAN_6X), Ok(Plan::Adapted));
        let private = DEBIAN_6X.replace("# CONFIG_DEVICE_PRIVATE is not set", "CONFIG_DEVICE_PRIVATE=y");
        assert_eq!(plan(&private), Ok(Plan::AsIs));
        let debian_510 = DEBIAN_6X.replace("CONFIG_DEVICE_MIGRATION=y\n", "");
        assert!(plan(&debian_510).unwrap_err().contains("no CONFIG_DEVICE_MIGRATION"));
        let no_hmm = DEBIAN_6X.replace("CONFIG_HMM_MIRROR=y", "# CONFIG_HMM_MIRROR is not set");
        assert_eq!(plan(&no_hmm), Err("the kernel is built without CONFIG_HMM_MIRROR".into()));
        // A longer option with the same prefix is another option.
        assert!(!has("CONFIG_MIGRATION_X=y\n", "CONFIG_MIGRATION"));
    }

    #[test]
    fn the_coherent_devices_sit_right_after_the_guest_memory() {
        assert_eq!(coherent_reservation("1G").unwrap(), 1 << 30);
        assert_eq!(coherent_reservation("1536M").unwrap(), 1536 << 20);
        assert_eq!(coherent_layout(1 << 30), (512 << 20, [0x4000_0000, 0x5000_0000]));
        assert!(coherent_reservation("3G").unwrap_err().to_string().contains("passes 3 GiB"));
        assert!(coherent_reservation("1T").is_err());
    }

    #[test]
    fn the_helpers_hmm_tests_links_are_the_included_ones_with_code() {
        let dir = std::env::temp_dir().join(format!("mmnotif-hmm-helpers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vm_util.c", "vm_util.h", "hugepage_settings.c", "other.c"] {
            std::fs::write(dir.join(f), "int helper(void) { return 0; }\n").unwrap();
        }
        std::fs::write(dir.join("gup_test.c"), "int main(int argc, char **argv) { return 0; }\n").unwrap();
        let source = "#include \"kselftest_harness.h\"\n#include \"hugepage_settings.h\"\n\
                      #include <mm/gup_test.h>\n#include <mm/vm_util.h>\n#include <stdio.h>\n";
        assert_eq!(helpers(source, &dir), vec![dir.join("hugepage_settings.c"), dir.join("vm_util.c")]);
        assert!(helpers("#include \"../kselftest_harness.h\"\n#include <mm/gup_test.h>\n", &dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
