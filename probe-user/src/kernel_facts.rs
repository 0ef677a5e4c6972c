//! What changed in the kernel's mmu-notifier code, and when: one row per fact, read by the
//! checker's hints (and anything else that must word or decide something by kernel version).
//! Hook availability is not here: the loader finds it by trying (feature detection beats
//! version numbers on distribution kernels full of backports).
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
        let mut numbers = release.split(|c: char| !c.is_ascii_digit()).take(3).map(|part| part.parse::<u32>().ok());
        let major = numbers.next()??;
        let minor = numbers.next()??;
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(KernelVersion { major, minor, patch })
    }

    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion { major, minor, patch }
    }

    /// Whether `fact` holds in this kernel: from its mainline release on, and in a stable
    /// series from the backport's first release in that series.
    pub fn has(self, fact: Fact) -> bool {
        let row = fact.row();
        self >= row.since
            || row.stable.iter().any(|b| b.major == self.major && b.minor == self.minor && self.patch >= b.patch)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The facts, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// `__start` WARNs when a subscriber fails in a blockable range or with anything but -EAGAIN.
    BlockableFailureWarn,
    /// When a list subscriber fails, `__start` calls every list subscriber's end (the 2019 RFC).
    CompensatingEnds,
    /// `__start` WARNs about a failing subscriber that has an end op.
    FailedStartEndOpWarn,
    /// Interval subscribers are invalidated first, and `__start` can return without ending them.
    IntervalTree,
    /// KVM WARNs on a zero-length or inverted range.
    KvmEmptyRangeWarn,
    /// PAGEMAP_SCAN could end a range whose start the inline wrapper skipped.
    PagemapScan,
    /// RDMA ODP's start could return -EAGAIN with its rwsem held.
    OdpEagainHoldsLock,
    /// hmm's start could return -EAGAIN with its notifier count raised.
    HmmEagainLeaksCount,
    /// `process_mrelease(2)`: a userspace OOM killer reaps a killed process's memory itself,
    /// through the same non-blocking invalidation as the OOM reaper.
    ProcessMrelease,
    /// Interval subscribers may implement the two-pass `invalidate_start`/`invalidate_finish`
    /// ops (include/linux/mmu_notifier.h:256-288, mm/mmu_notifier.c:263-270 and :470-495 in 7.2).
    TwoPassInterval,
    /// The kernel counts the kprobe programs it skips because a BPF program or a map syscall
    /// is active on that CPU (`trace_call_bpf` into `recursion_misses`), and reports a kprobe's
    /// own misses in its link info. Before, both happen silently (absent in 6.1.192's
    /// kernel/trace/bpf_trace.c:108, present in 6.12.95's :116-128).
    KprobeSkipsCounted,
}

/// One fact: since when it holds, where it was backported, and the commit, where recorded.
#[derive(Debug)]
pub struct FactRow {
    pub fact: Fact,
    pub since: KernelVersion,
    /// First release carrying a backport, per stable series.
    pub stable: &'static [KernelVersion],
    /// The mainline commit, when it is recorded (`None` rather than a guess).
    pub commit: Option<&'static str>,
}

const fn row(
    fact: Fact,
    since: KernelVersion,
    stable: &'static [KernelVersion],
    commit: Option<&'static str>,
) -> FactRow {
    FactRow { fact, since, stable, commit }
}

/// Every fact. Fixed bugs are rows too: `since` is the release with the fix.
pub(crate) static FACTS: [FactRow; 11] = [
    row(Fact::BlockableFailureWarn, KernelVersion::new(5, 4, 0), &[], None),
    row(Fact::CompensatingEnds, KernelVersion::new(5, 12, 0), &[KernelVersion::new(5, 10, 27)], Some("c2655835fd8c")),
    row(
        Fact::FailedStartEndOpWarn,
        KernelVersion::new(5, 12, 0),
        &[KernelVersion::new(5, 10, 27)],
        Some("c2655835fd8c"),
    ),
    row(Fact::IntervalTree, KernelVersion::new(5, 5, 0), &[], None),
    row(Fact::KvmEmptyRangeWarn, KernelVersion::new(5, 17, 0), &[], None),
    row(Fact::PagemapScan, KernelVersion::new(6, 7, 0), &[], Some("4cccb6221cae")),
    row(Fact::OdpEagainHoldsLock, KernelVersion::new(5, 3, 0), &[], Some("7608bf40cf24")),
    row(Fact::HmmEagainLeaksCount, KernelVersion::new(5, 3, 0), &[], None),
    row(Fact::ProcessMrelease, KernelVersion::new(5, 15, 0), &[], None),
    row(Fact::TwoPassInterval, KernelVersion::new(7, 2, 0), &[], None),
    row(Fact::KprobeSkipsCounted, KernelVersion::new(6, 7, 0), &[], None),
];

impl Fact {
    pub fn row(self) -> &'static FactRow {
        // Every fact has a row (the table test checks it), so this never falls through.
        FACTS.iter().find(|r| r.fact == self).unwrap_or(&FACTS[0])
    }

    /// The mainline release the fact holds from, as prose names it: `v5.12`.
    pub fn release(self) -> String {
        let since = self.row().since;
        format!("v{}.{}", since.major, since.minor)
    }

    /// How the fact is cited in prose: `c2655835fd8c in v5.12 (5.10.27 in stable)`.
    pub fn cite(self) -> String {
        let r = self.row();
        let mut s = match r.commit {
            Some(c) => format!("{c} in {}", self.release()),
            None => self.release(),
        };
        if !r.stable.is_empty() {
            let list: Vec<String> = r.stable.iter().map(|v| v.to_string()).collect();
            s.push_str(&format!(" ({} in stable)", list.join(", ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_has_exactly_one_row() {
        for r in &FACTS {
            assert_eq!(FACTS.iter().filter(|o| o.fact == r.fact).count(), 1, "{:?}", r.fact);
            assert_eq!(r.fact.row().fact, r.fact);
        }
    }

    #[test]
    fn parses_releases_and_applies_backports() {
        assert_eq!(KernelVersion::parse("6.12.43+deb13-amd64"), Some(KernelVersion::new(6, 12, 43)));
        assert_eq!(KernelVersion::parse("5.2.0"), Some(KernelVersion::new(5, 2, 0)));
        assert_eq!(KernelVersion::parse("6.19-rc1"), Some(KernelVersion::new(6, 19, 0)));
        assert_eq!(KernelVersion::parse("7.3.0-rc7"), Some(KernelVersion::new(7, 3, 0)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::new(5, 10, 27).has(Fact::CompensatingEnds));
        assert!(!KernelVersion::new(5, 10, 26).has(Fact::CompensatingEnds));
        assert!(!KernelVersion::new(5, 11, 0).has(Fact::CompensatingEnds));
        assert!(KernelVersion::new(5, 12, 0).has(Fact::CompensatingEnds));
        assert!(KernelVersion::new(7, 3, 0).has(Fact::PagemapScan));
        assert_eq!(Fact::CompensatingEnds.cite(), "c2655835fd8c in v5.12 (5.10.27 in stable)");
        assert_eq!(Fact::BlockableFailureWarn.cite(), "v5.4");
        assert_eq!(Fact::FailedStartEndOpWarn.release(), "v5.12");
    }
}
