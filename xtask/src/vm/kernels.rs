//! The kernels the test bed boots, as data: one row per kernel. A row says which archive (set of
//! Debian suites) apt resolves it from and which `linux-image-amd64` version is "current" there.
//! Resolution, download, module build and boot all read this table; adding a kernel is a row.
//! How an image is packaged (one `linux-image-*` with `/boot/vmlinuz-*`, or from 7.x the split
//! `linux-binary-*` / `linux-modules-*` under `/usr/lib/modules/<abi>/`) is not written here: the
//! resolver reads it from the image package's own dependencies.

/// A set of suites resolved together, with its own private apt configuration and lists.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Archive {
    /// Names the private apt directory.
    pub name: &'static str,
    /// Suites on the main Debian mirror (component `main`).
    pub suites: &'static [&'static str],
    /// Suites on the security mirror.
    pub security_suites: &'static [&'static str],
    /// What the build root needs besides the headers packages and their dependencies.
    pub build_packages: &'static [&'static str],
}

/// bookworm as this host's apt sees it, plus backports (lower priority, used by name).
pub(crate) const BOOKWORM: Archive = Archive {
    name: "bookworm",
    suites: &["bookworm", "bookworm-updates", "bookworm-backports"],
    security_suites: &["bookworm-security"],
    // The 6.12 headers ship a vmlinux, so kbuild makes module BTF, but they do not depend on pahole.
    build_packages: &["make", "pahole"],
};

/// bullseye, whose kernel (5.10 LTS) is updated through bullseye-security.
pub(crate) const BULLSEYE: Archive = Archive {
    name: "bullseye",
    suites: &["bullseye", "bullseye-updates"],
    security_suites: &["bullseye-security"],
    // 5.10's headers ship no vmlinux: no module BTF, no pahole (called dwarves in bullseye).
    build_packages: &["make"],
};

/// unstable, plus experimental (priority 1, used by name) for release candidates.
pub(crate) const SID: Archive = Archive {
    name: "sid",
    suites: &["sid", "experimental"],
    security_suites: &[],
    // 7.x's kbuild depends on pahole itself.
    build_packages: &["make"],
};

/// Which `linux-image-amd64` version is a row's current kernel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Current {
    /// apt's candidate in the archive (the suite with the highest priority wins).
    Candidate,
    /// The highest version offered by this suite (for low-priority suites such as backports).
    FromSuite(&'static str),
}

/// One kernel of the test bed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KernelRow {
    /// What `--kernel` takes, and the name in logs and reports.
    pub name: &'static str,
    pub about: &'static str,
    pub archive: &'static Archive,
    pub current: Current,
    /// Set for a kernel the test bed compiles itself from the archive's source package instead
    /// of booting Debian's image.
    pub build: Option<&'static SourceBuild>,
}

/// A kernel compiled by the test bed (`srcbuild.rs`): Debian's source of the row's current
/// kernel, changed as `change` says, with a small configuration of its own.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SourceBuild {
    /// The package whose tarball is built (`/usr/src/<package>.tar.xz`); it must carry the same
    /// upstream version as the archive's current image.
    pub source_package: &'static str,
    /// What is changed in the source before it is built.
    pub change: super::revert::Change,
    /// Upstream fixes this kernel does not have, for the guest suite's expectations
    /// (`KERNEL_LACKS` in the guest; tests/guest/suite.sh).
    pub lacks: &'static [&'static str],
    /// A build root package a kernel build needs besides the archive's `build_packages`.
    pub build_packages: &'static [&'static str],
}

/// bullseye's 5.10 source without the compensating ends of c2655835fd8c (merged in v5.12,
/// 5.10.27 in stable): the kernel the 2019 RFC describes.
pub(crate) const REVERT_COMPENSATING_ENDS: SourceBuild = SourceBuild {
    source_package: "linux-source-5.10",
    change: super::revert::Change::RevertCompensatingEnds,
    lacks: &["c2655835fd8c"],
    // gcc, kconfig's parsers, objtool (libelf), BTF (pahole is `dwarves` in bullseye), and the
    // scripts resolve_btfids' libbpf runs.
    build_packages: &[
        "gcc",
        "libc6-dev",
        "bc",
        "bison",
        "flex",
        "libelf-dev",
        "dwarves",
        "python3",
        "xz-utils",
        "perl",
    ],
};

/// Every kernel, in the order `--kernel all` boots them.
pub(crate) const KERNELS: &[KernelRow] = &[
    KernelRow {
        name: "5.10",
        about: "bullseye's LTS kernel (bullseye, -updates, -security)",
        archive: &BULLSEYE,
        current: Current::Candidate,
        build: None,
    },
    KernelRow {
        name: "5.10-prefix",
        about: "bullseye's 5.10 built from source with c2655835fd8c reverted (the 2019 RFC's bug); \
                `all` includes it once it is built",
        archive: &BULLSEYE,
        current: Current::Candidate,
        build: Some(&REVERT_COMPENSATING_ENDS),
    },
    KernelRow {
        name: "6.1",
        about: "bookworm's kernel (bookworm, -updates, -security)",
        archive: &BOOKWORM,
        current: Current::Candidate,
        build: None,
    },
    KernelRow {
        name: "6.12",
        about: "bookworm-backports' kernel",
        archive: &BOOKWORM,
        current: Current::FromSuite("bookworm-backports"),
        build: None,
    },
    KernelRow { name: "7.2", about: "unstable's kernel", archive: &SID, current: Current::Candidate, build: None },
    KernelRow {
        name: "7.3-rc",
        about: "experimental's release candidate",
        archive: &SID,
        current: Current::FromSuite("experimental"),
        build: None,
    },
];

/// The row called `name`.
pub(crate) fn by_name(name: &str) -> Option<&'static KernelRow> {
    KERNELS.iter().find(|k| k.name == name)
}

/// The values `--kernel` accepts, each with its description, `all` last.
pub(crate) fn choices() -> Vec<clap::builder::PossibleValue> {
    KERNELS
        .iter()
        .map(|k| clap::builder::PossibleValue::new(k.name).help(k.about))
        .chain([clap::builder::PossibleValue::new("all").help("every kernel above, two guests at a time")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for k in KERNELS {
            assert_eq!(by_name(k.name), Some(k));
            assert_eq!(KERNELS.iter().filter(|o| o.name == k.name).count(), 1);
        }
        assert!(by_name("all").is_none(), "`all` is not a kernel name");
    }
}
