//! KVM's own selftests for a guest (`tools/testing/selftests/kvm`): the few that drive KVM's
//! mmu notifier (`TESTS`), built from the kernel's own `linux-source-*` package against the
//! UAPI of its headers packages, statically linked with the host's gcc by a hand-written recipe
//! (the selftests' Makefile wants a `make headers` tree). Where the tree's layout and flags
//! differ between versions is data (`LAYOUTS`); the library's file list is read from the
//! tree's own Makefile. Results live in the store, keyed by what they were built from.
use super::buildroot::BuildRoot;
use super::cmd;
use super::debian::Resolved;
use super::ksource::{self, file_name};
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's view of the tests.
#[derive(Debug)]
pub(crate) enum KvmSelftests {
    /// Built: (name, program) of each of `TESTS`.
    Ready(Vec<(String, PathBuf)>),
    /// This kernel does not get them, and why (the guest prints it as a SKIP line).
    Unsupported(String),
}

/// The tests run in the guest (docs/vm-testbed.md says what each does to the notifier).
const TESTS: &[&str] = &["demand_paging_test", "memslot_modification_stress_test", "memslot_perf_test"];

/// The files taken out of a source tarball (paths inside the tree; `*` as tar matches it).
const MEMBERS: &[&str] = &[
    "tools/testing/selftests/kvm/*",
    "tools/testing/selftests/kselftest.h",
    // 7.x links cgroup_util.c into every test; it includes clone3_selftests.h.
    "tools/testing/selftests/cgroup/*",
    "tools/testing/selftests/clone3/*",
    "tools/include/*",
    "tools/arch/x86/include/*",
    "tools/lib/rbtree.c",
];

/// How one range of kernel versions lays its selftests out and builds them.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// The oldest `major.minor` this applies to (up to the next entry).
    since: (u32, u32),
    /// The file under `kvm/` that holds the `LIBKVM` lists.
    makefile: &'static str,
    /// The x86 directory under `lib/` and `include/` (`LIBKVM_<arch>`).
    arch: &'static str,
    /// Compiler flags beyond `BASE_FLAGS` (from the version's Makefile and lib.mk).
    flags: &'static [&'static str],
    /// Library code from outside `kvm/` every test links (paths under `selftests/`).
    outside: &'static [&'static str],
    /// Include directories under `selftests/` beyond the common ones.
    includes: &'static [&'static str],
}

/// From 6.12 on, the selftests build with lib.mk's flags and their own string functions.
const FLAGS_6_12: &[&str] = &[
    "-DCONFIG_64BIT",
    "-D_GNU_SOURCE=",
    "-fno-builtin-memcmp",
    "-fno-builtin-memcpy",
    "-fno-builtin-memset",
    "-fno-builtin-strnlen",
    "-fno-strict-aliasing",
];

/// Verified on the kernels the test bed boots (6.1, 6.12, 7.2, 7.3-rc).
const LAYOUTS: &[Layout] = &[
    Layout { since: (6, 1), makefile: "Makefile", arch: "x86_64", flags: &[], outside: &[], includes: &[] },
    Layout { since: (6, 12), makefile: "Makefile", arch: "x86_64", flags: FLAGS_6_12, outside: &[], includes: &[] },
    Layout {
        since: (7, 2),
        makefile: "Makefile.kvm",
        arch: "x86",
        flags: FLAGS_6_12,
        outside: &["cgroup/lib/cgroup_util.c"],
        includes: &["cgroup/lib/include"],
    },
];

/// Flags every file is compiled with. Guest code is loaded from the program's own ELF segments
/// at their link addresses and has no TLS canary: non-PIE, no stack protector, no fortify.
const BASE_FLAGS: &[&str] = &["-O2", "-std=gnu99", "-U_FORTIFY_SOURCE", "-fno-stack-protector", "-fno-PIE", "-w"];

/// The recipe's identity in the build stamp: change it when the flags or steps change.
const RECIPE: &str = "kvm-selftests recipe 1";

/// `major.minor` of a `linux-source-<major>.<minor>` package.
fn series(package: &str) -> Option<(u32, u32)> {
    let (major, minor) = package.strip_prefix("linux-source-")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The layout of a kernel series, or why it gets no tests.
fn layout(series: (u32, u32)) -> Result<&'static Layout, String> {
    LAYOUTS.iter().rev().find(|l| l.since <= series).ok_or_else(|| {
        format!(
            "{}.{}'s KVM selftests lack memslot_modification_stress_test and memslot_perf_test, and the \
             build recipe starts at {}.{}",
            series.0, series.1, LAYOUTS[0].since.0, LAYOUTS[0].since.1
        )
    })
}

/// A library file and whether it is compiled freestanding (`LIBKVM_STRING`: byte loops guest
/// code calls instead of glibc's IFUNC string functions).
#[derive(Debug, PartialEq, Eq)]
struct LibSource {
    path: String,
    freestanding: bool,
}

/// The `LIBKVM`, `LIBKVM_<arch>` and `LIBKVM_STRING` lists of a selftests Makefile.
fn lib_sources(makefile: &str, arch: &str) -> Vec<LibSource> {
    let arch_var = format!("LIBKVM_{arch}");
    makefile
        .lines()
        .filter_map(|l| l.split_once("+="))
        .filter_map(|(var, value)| {
            let var = var.trim();
            let value = value.trim();
            // `LIBKVM += $(LIBKVM_$(ARCH))` names other lists, not files.
            if value.contains('$') {
                return None;
            }
            let freestanding = match var {
                "LIBKVM_STRING" => true,
                "LIBKVM" => false,
                v if v == arch_var => false,
                _ => return None,
            };
            Some(LibSource { path: value.to_string(), freestanding })
        })
        .collect()
}

/// The compiler's arguments for one file of `tree`'s selftests (without the file itself).
fn compile_flags(l: &Layout, tree: &Path, uapi: &[PathBuf], source_dir: &Path) -> Vec<OsString> {
    let selftests = tree.join("tools/testing/selftests");
    let kvm = selftests.join("kvm");
    let mut args: Vec<OsString> = BASE_FLAGS.iter().chain(l.flags).map(OsString::from).collect();
    let mut include = |dir: PathBuf| {
        args.push("-I".into());
        args.push(dir.into());
    };
    include(tree.join("tools/include"));
    include(tree.join("tools/arch/x86/include"));
    include(kvm.join("include"));
    include(kvm.join("include").join(l.arch));
    include(source_dir.to_path_buf());
    include(selftests.clone());
    for i in l.includes {
        include(selftests.join(i));
    }
    for d in uapi {
        args.push("-isystem".into());
        args.push(d.into());
    }
    args.push(ksource::UAPI_PACKED.into());
    args
}

/// The tests for `r`. Errors are real failures (a build that broke); a kernel that does not
/// get them is `Unsupported`.
pub(super) fn build(paths: &Paths, r: &Resolved, root: &BuildRoot) -> Result<KvmSelftests> {
    let unsupported = |why: String| Ok(KvmSelftests::Unsupported(why));
    let Ok((package, _)) = &r.source else {
        return unsupported(format!("no kernel source: {}", r.source.as_ref().err().cloned().unwrap_or_default()));
    };
    let series = series(package).with_context(|| format!("{package}: not a linux-source-<major>.<minor> name"))?;
    let l = match layout(series) {
        Ok(l) => l,
        Err(why) => return unsupported(why),
    };
    let deb = match r.source_deb(paths) {
        Ok(d) => d,
        Err(why) => return unsupported(format!("no kernel source: {why}")),
    };
    let out = paths.store.join("kvm-selftests").join("built").join(&r.abi);
    let programs: Vec<(String, PathBuf)> = TESTS.iter().map(|t| (t.to_string(), out.join(t))).collect();
    let stamp_path = out.join(".mmnotif-built");
    let stamp = format!(
        "{}\nheaders {}\n{RECIPE} {l:?}\n",
        file_name(&deb),
        r.headers.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
    );
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) && programs.iter().all(|(_, p)| p.is_file()) {
        return Ok(KvmSelftests::Ready(programs));
    }
    let tree = ksource::extract(paths, &deb, "kvm-selftests", MEMBERS)?;
    let selftests = tree.join("tools/testing/selftests");
    let kvm = selftests.join("kvm");
    let makefile = kvm.join(l.makefile);
    let text = std::fs::read_to_string(&makefile).with_context(|| format!("cannot read {}", makefile.display()))?;
    let mut sources = lib_sources(&text, l.arch);
    if !sources.iter().any(|s| s.freestanding) || !sources.iter().any(|s| s.path.contains(l.arch)) {
        bail!(
            "{}: no LIBKVM_STRING or LIBKVM_{} list: the layout table does not fit this tree",
            makefile.display(),
            l.arch
        );
    }
    sources.extend(l.outside.iter().map(|o| LibSource { path: format!("../{o}"), freestanding: false }));
    println!("[{}] building KVM selftests {} from {}", r.name(), TESTS.join(" "), file_name(&deb));
    let _ = std::fs::remove_dir_all(&out);
    let obj = out.join("obj");
    cmd::mkdir(&obj)?;
    let uapi = ksource::uapi_dirs(r, root)?;
    let compile = |source: &Path, object: &Path, freestanding: bool| -> Result<()> {
        let dir = source.parent().context("a source file has no directory")?;
        let mut gcc = Command::new("gcc");
        gcc.args(compile_flags(l, &tree, &uapi, dir));
        if freestanding {
            gcc.arg("-ffreestanding");
        }
        gcc.arg("-c").arg(source).arg("-o").arg(object);
        cmd::output(&mut gcc).map(drop).with_context(|| format!("compiling {} for {} failed", source.display(), r.abi))
    };
    let mut objects = Vec::new();
    for s in &sources {
        let object = obj.join(format!("{}.o", s.path.trim_start_matches("../").replace('/', "_")));
        compile(&kvm.join(&s.path), &object, s.freestanding)?;
        objects.push(object);
    }
    for (test, program) in &programs {
        let object = obj.join(format!("{test}.o"));
        compile(&kvm.join(format!("{test}.c")), &object, false)?;
        let mut gcc = ksource::static_gcc()?;
        gcc.args(["-no-pie", "-s"]).arg(&object).args(&objects).arg("-ldl").arg("-o").arg(program);
        cmd::output(&mut gcc).with_context(|| format!("linking {test} for {} failed", r.abi))?;
    }
    let _ = std::fs::remove_dir_all(&obj);
    std::fs::write(&stamp_path, stamp).with_context(|| format!("cannot write {}", stamp_path.display()))?;
    Ok(KvmSelftests::Ready(programs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_series_takes_the_newest_layout_at_or_below_it() {
        assert_eq!(series("linux-source-6.12"), Some((6, 12)));
        assert_eq!(series("linux-source-7.3"), Some((7, 3)));
        assert_eq!(series("linux-image-6.1"), None);
        assert_eq!(series("linux-source-6"), None);
        assert_eq!(layout((6, 1)).unwrap().arch, "x86_64");
        assert!(layout((6, 1)).unwrap().flags.is_empty());
        assert_eq!(layout((6, 12)).unwrap().flags, FLAGS_6_12);
        assert_eq!(layout((7, 1)).unwrap().makefile, "Makefile");
        assert_eq!(layout((7, 2)).unwrap().makefile, "Makefile.kvm");
        assert_eq!(layout((7, 3)).unwrap().outside, ["cgroup/lib/cgroup_util.c"]);
        assert!(layout((5, 10)).unwrap_err().contains("5.10's KVM selftests lack"));
    }

    #[test]
    fn the_library_list_is_the_makefiles_for_this_arch() {
        let makefile = "LIBKVM += lib/assert.c\nLIBKVM += lib/memstress.c\n\
                        LIBKVM_STRING += lib/string_override.c\n\
                        LIBKVM_x86 += lib/x86/handlers.S\nLIBKVM_x86 += lib/x86/memstress.c\n\
                        LIBKVM_arm64 += lib/arm64/gic.c\nLIBKVM_x86_64 += lib/x86_64/old.c\n\
                        LIBKVM += $(LIBKVM_$(ARCH))\nTEST_GEN_PROGS_x86 += demand_paging_test\n";
        let plain = |p: &str| LibSource { path: p.into(), freestanding: false };
        assert_eq!(
            lib_sources(makefile, "x86"),
            vec![
                plain("lib/assert.c"),
                plain("lib/memstress.c"),
                LibSource { path: "lib/string_override.c".into(), freestanding: true },
                plain("lib/x86/handlers.S"),
                plain("lib/x86/memstress.c"),
            ]
        );
        assert_eq!(lib_sources(makefile, "x86_64")[3], plain("lib/x86_64/old.c"));
    }

    #[test]
    fn the_flags_are_non_pie_without_stack_protector_with_the_layouts_includes() {
        let tree = Path::new("/t");
        let uapi = [PathBuf::from("/root/uapi")];
        let flags: Vec<String> = compile_flags(&LAYOUTS[2], tree, &uapi, Path::new("/t/src"))
            .into_iter()
            .map(|f| f.into_string().unwrap())
            .collect();
        let joined = flags.join(" ");
        for f in ["-fno-PIE", "-fno-stack-protector", "-U_FORTIFY_SOURCE", "-fno-builtin-strnlen"] {
            assert!(flags.iter().any(|x| x == f), "{f} missing from {joined}");
        }
        assert!(joined.contains("-I /t/tools/testing/selftests/kvm/include/x86 "), "{joined}");
        assert!(joined.contains("-I /t/tools/testing/selftests/cgroup/lib/include"), "{joined}");
        assert!(joined.contains("-I /t/src "), "{joined}");
        assert!(joined.ends_with("-isystem /root/uapi -D__packed=__attribute__((packed))"), "{joined}");
        let old: Vec<OsString> = compile_flags(&LAYOUTS[0], tree, &uapi, Path::new("/t/src"));
        assert!(!old.iter().any(|f| f == "-D_GNU_SOURCE=" || f.to_string_lossy().contains("cgroup")));
    }
}
