//! The kernels the test bed boots, as data: one row per kernel. A row says which archive (set of
//! Debian suites) apt resolves it from and which `linux-image-amd64` version is "current" there.
//! Resolution, download, module build and boot all read this table; adding a kernel is a row.

/// A set of suites resolved together, with its own private apt configuration and lists.
#[derive(Debug, PartialEq, Eq)]
pub struct Archive {
    /// Names the private apt directory.
    pub name: &'static str,
    /// Suites on the main Debian mirror (component `main`).
    pub suites: &'static [&'static str],
    /// Suites on the security mirror.
    pub security_suites: &'static [&'static str],
}

/// bookworm as this host's apt sees it, plus backports (lower priority, used by name).
pub const BOOKWORM: Archive = Archive {
    name: "bookworm",
    suites: &["bookworm", "bookworm-updates", "bookworm-backports"],
    security_suites: &["bookworm-security"],
};

/// Which `linux-image-amd64` version is a row's current kernel.
#[derive(Debug, PartialEq, Eq)]
pub enum Current {
    /// apt's candidate in the archive (the suite with the highest priority wins).
    Candidate,
    /// The highest version offered by this suite (for low-priority suites such as backports).
    FromSuite(&'static str),
}

/// One kernel of the test bed.
#[derive(Debug, PartialEq, Eq)]
pub struct KernelRow {
    /// What `--kernel` takes, and the name in logs and reports.
    pub name: &'static str,
    pub about: &'static str,
    pub archive: &'static Archive,
    pub current: Current,
}

/// Every kernel, in the order `--kernel all` boots them.
pub const KERNELS: &[KernelRow] = &[
    KernelRow {
        name: "6.1",
        about: "bookworm's kernel (bookworm, -updates, -security)",
        archive: &BOOKWORM,
        current: Current::Candidate,
    },
    KernelRow {
        name: "6.12",
        about: "bookworm-backports' kernel",
        archive: &BOOKWORM,
        current: Current::FromSuite("bookworm-backports"),
    },
];

/// The row called `name`.
pub fn by_name(name: &str) -> Option<&'static KernelRow> {
    KERNELS.iter().find(|k| k.name == name)
}

/// The names `--kernel` accepts, `all` last.
pub fn choices() -> Vec<&'static str> {
    KERNELS.iter().map(|k| k.name).chain(["all"]).collect()
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
