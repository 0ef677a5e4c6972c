//! Known kernel bugs and fixes a violation pattern can be matched to, worded against the
//! traced kernel's version.
use std::fmt;

/// `major.minor.patch` from a `uname -r` string such as `6.12.43+deb13-amd64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|part| part.parse::<u32>().ok());
        let major = numbers.next()??;
        let minor = numbers.next()??;
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(KernelVersion { major, minor, patch })
    }

    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion { major, minor, patch }
    }

    /// Whether c2655835fd8c (compensating ends in a failed `__start`) is in this kernel:
    /// v5.12, and the 5.10 stable backport from 5.10.27.
    pub fn has_compensating_ends(self) -> bool {
        self >= KernelVersion::new(5, 12, 0)
            || (self.major == 5 && self.minor == 10 && self.patch >= 27)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The traced kernel as hints refer to it.
#[derive(Clone, Debug)]
pub struct KernelInfo {
    pub release: String,
    pub version: Option<KernelVersion>,
}

impl KernelInfo {
    pub fn new(release: &str) -> KernelInfo {
        KernelInfo { release: release.to_owned(), version: KernelVersion::parse(release) }
    }

    fn this_kernel(&self) -> String {
        if self.release.is_empty() { "the kernel version is not recorded".into() } else { format!("this kernel is {}", self.release) }
    }

    /// A subscriber whose start succeeded lost its end because another one failed.
    pub fn skipped_end(&self) -> String {
        let verdict = match self.version {
            Some(v) if v.has_compensating_ends() => ", which has that fix, so this is a regression or a caller bug",
            Some(_) => ", which predates the fix",
            None => "",
        };
        format!(
            "matches the skipped-end behaviour fixed by c2655835fd8c in v5.12 (5.10.27 in stable); {}{verdict}",
            self.this_kernel()
        )
    }

    /// Two ends for one range after a failure in a blockable range.
    pub fn double_end(&self) -> String {
        format!(
            "matches the v5.12+ double end: a start failed in a blockable range, __start delivered compensating ends and the caller still called __end; {}",
            self.this_kernel()
        )
    }

    pub fn compensating_end_to_failed(&self) -> String {
        "the v5.12+ compensating-end loop calls every subscriber with an end op, including the one whose start failed (the kernel WARNs about such a subscriber)".into()
    }

    pub fn pagemap_scan(&self) -> String {
        let when = match self.version {
            Some(v) if v >= KernelVersion::new(6, 7, 0) => format!("; {}", self.this_kernel()),
            Some(_) => format!("; {}, older than v6.7 where PAGEMAP_SCAN appeared, so a different caller does this", self.this_kernel()),
            None => String::new(),
        };
        format!(
            "matches the PAGEMAP_SCAN bug (v6.7, fixed by 4cccb6221cae): __start was skipped by the inline wrapper because the mm had no subscribers yet, one registered in between, and __end reached it{when}"
        )
    }

    pub fn blockable_failure(&self) -> String {
        let warn = match self.version {
            Some(v) if v >= KernelVersion::new(5, 4, 0) => "the kernel WARNs here since v5.4",
            Some(_) => "kernels before v5.4 only print \"callback failed\"",
            None => "the kernel WARNs here since v5.4",
        };
        let double = match self.version {
            Some(v) if v.has_compensating_ends() => "; on this kernel the compensating ends plus the caller's __end make every subscriber's end run twice",
            _ => "",
        };
        format!("only the OOM reaper may see a failure, and only in a non-blockable range; {warn}{double}")
    }

    pub fn failed_start_has_end_op(&self) -> String {
        format!(
            "since c2655835fd8c (v5.12) the kernel WARNs: a failing subscriber must not have an end op, because the compensating ends would call it for a start that failed; {}",
            self.this_kernel()
        )
    }

    pub fn itree_leak(&self) -> String {
        "matches the interval-tree leak in __start: interval subscribers succeeded, a list subscriber then failed, and -EAGAIN was returned without mn_itree_inv_end, so mmu_interval_read_begin() waits forever (reachable with nouveau SVM; found by reading, not reported upstream)".into()
    }

    pub fn zero_length(&self) -> String {
        "KVM has WARN_ON_ONCE(range->end <= range->start) since v5.17; hugetlb and mremap had len-0 bugs of this shape".into()
    }

    /// A subscriber failing with a lock or count taken on kernels before v5.3.
    pub fn early_subscriber_failure(&self, callback: &str) -> Option<String> {
        let old = self.version.is_some_and(|v| v < KernelVersion::new(5, 3, 0));
        if !old {
            return None;
        }
        if callback.starts_with("ib_umem") || callback.contains("odp") {
            Some("matches the RDMA ODP bug fixed by 7608bf40cf24 (v5.3): start returned -EAGAIN with its rwsem still held, and no end ever releases it".into())
        } else if callback.starts_with("hmm_") {
            Some("matches the hmm bug fixed in v5.3: hmm->notifiers was incremented and -EAGAIN returned without the decrement".into())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        assert_eq!(KernelVersion::parse("6.12.43+deb13-amd64"), Some(KernelVersion::new(6, 12, 43)));
        assert_eq!(KernelVersion::parse("5.2.0"), Some(KernelVersion::new(5, 2, 0)));
        assert_eq!(KernelVersion::parse("6.19-rc1"), Some(KernelVersion::new(6, 19, 0)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::new(5, 10, 27).has_compensating_ends());
        assert!(!KernelVersion::new(5, 10, 26).has_compensating_ends());
        assert!(!KernelVersion::new(5, 11, 0).has_compensating_ends());
    }
}
