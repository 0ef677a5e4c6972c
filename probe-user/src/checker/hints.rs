//! Known kernel bugs and fixes a violation pattern can be matched to, worded against the
//! traced kernel's version. Versions and commits come from `kernel_facts`, never from here.
use crate::kernel_facts::{Fact, KernelVersion};

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
        if self.release.is_empty() {
            "the kernel version is not recorded".into()
        } else {
            format!("this kernel is {}", self.release)
        }
    }

    /// A subscriber whose start succeeded lost its end because another one failed.
    pub fn skipped_end(&self) -> String {
        let verdict = match self.version {
            Some(v) if v.has(Fact::CompensatingEnds) => {
                ", whose version should have that fix: it was built without it (reverted or not backported), it regressed, or a caller bypassed it"
            }
            Some(_) => ", which predates the fix",
            None => "",
        };
        format!(
            "matches the skipped-end behaviour fixed by {}; {}{verdict}",
            Fact::CompensatingEnds.cite(),
            self.this_kernel()
        )
    }

    /// Two ends for one range after a failure in a blockable range.
    pub fn double_end(&self) -> String {
        format!(
            "matches the double end since {}: a start failed in a blockable range, __start delivered compensating ends and the caller still called __end; {}",
            Fact::CompensatingEnds.cite(),
            self.this_kernel()
        )
    }

    pub fn compensating_end_to_failed(&self) -> String {
        format!(
            "the compensating-end loop ({}) calls every subscriber with an end op, including the one whose start failed (the kernel WARNs about such a subscriber)",
            Fact::CompensatingEnds.cite()
        )
    }

    pub fn pagemap_scan(&self) -> String {
        let since = Fact::PagemapScan.release();
        let when = match self.version {
            Some(v) if v >= Fact::PagemapScan.row().since => format!("; {}", self.this_kernel()),
            Some(_) => format!(
                "; {}, older than {since} where PAGEMAP_SCAN appeared, so a different caller does this",
                self.this_kernel()
            ),
            None => String::new(),
        };
        let commit = Fact::PagemapScan.row().commit.unwrap_or("a later fix");
        format!(
            "matches the PAGEMAP_SCAN bug ({since}, fixed by {commit}): __start was skipped by the inline wrapper because the mm had no subscribers yet, one registered in between, and __end reached it{when}"
        )
    }

    /// A kernel WARN from mmu-notifier code, matched by the WARNing function to what makes
    /// it WARN; `None` where nothing known matches.
    pub fn kernel_warn(&self, function: &str) -> Option<String> {
        if function.starts_with("__mmu_notifier_invalidate_range_start") {
            Some(self.start_warn())
        } else if function.starts_with("kvm_mmu_notifier_invalidate_range_end") {
            Some(self.pagemap_scan())
        } else if function.starts_with("kvm_mmu_notifier_invalidate_range_start") {
            Some(self.zero_length())
        } else {
            None
        }
    }

    /// What `__start`'s own WARN_ON fires for.
    fn start_warn(&self) -> String {
        format!(
            "WARN_ON in __start fires for a failure in a blockable range or one other than -EAGAIN ({}+), and for a failing subscriber with an end op ({}+)",
            Fact::BlockableFailureWarn.release(),
            Fact::FailedStartEndOpWarn.release()
        )
    }

    pub fn blockable_failure(&self) -> String {
        let since = Fact::BlockableFailureWarn.cite();
        let warn = match self.version {
            Some(v) if !v.has(Fact::BlockableFailureWarn) => {
                format!("kernels before {since} only print \"callback failed\"")
            }
            _ => format!("the kernel WARNs here since {since}"),
        };
        let double = match self.version {
            Some(v) if v.has(Fact::CompensatingEnds) => {
                "; on this kernel the compensating ends plus the caller's __end make every subscriber's end run twice"
            }
            _ => "",
        };
        format!("only the OOM reaper may see a failure, and only in a non-blockable range; {warn}{double}")
    }

    pub fn failed_start_has_end_op(&self) -> String {
        format!(
            "since {} the kernel WARNs: a failing subscriber must not have an end op, because the compensating ends would call it for a start that failed; {}",
            Fact::FailedStartEndOpWarn.cite(),
            self.this_kernel()
        )
    }

    /// The interval-tree leak; `overlapped`: an interval subscriber's invalidate ran in a
    /// leaking range (otherwise only the active count leaked).
    pub fn itree_leak(&self, overlapped: bool) -> String {
        let first = if overlapped {
            "__start counts the range as active in the interval tree and invalidates the interval subscribers it overlaps before it calls the list subscribers; when a list subscriber then fails, it returns -EAGAIN without mn_itree_inv_end(), so the active count never returns to 0 and invalidate_seq stays odd"
        } else {
            "__start counts every range as active in the interval tree, overlapping or not, before it calls the list subscribers; when a list subscriber then fails, it returns -EAGAIN without mn_itree_inv_end(), so the active count never returns to 0 and the next range that overlaps an interval leaves invalidate_seq odd for good"
        };
        let since = match self.version {
            Some(v) if !v.has(Fact::IntervalTree) => {
                format!("; {} predates the interval tree, so this is something else", self.this_kernel())
            }
            _ => format!(" (every kernel since {}; no upstream fix known)", Fact::IntervalTree.cite()),
        };
        format!(
            "matches the interval-tree leak: {first}. Then mmu_interval_read_begin() (a driver's fault path) and mmu_interval_notifier_remove() on this mm wait forever, in D state{since}"
        )
    }

    pub fn zero_length(&self) -> String {
        format!(
            "KVM has WARN_ON_ONCE(range->end <= range->start) since {}; hugetlb and mremap had len-0 bugs of this shape",
            Fact::KvmEmptyRangeWarn.cite()
        )
    }

    /// A subscriber failing with a lock or count taken on kernels before v5.3.
    pub fn early_subscriber_failure(&self, callback: &str) -> Option<String> {
        let version = self.version?;
        if (callback.starts_with("ib_umem") || callback.contains("odp")) && !version.has(Fact::OdpEagainHoldsLock) {
            Some(format!(
                "matches the RDMA ODP bug fixed by {}: start returned -EAGAIN with its rwsem still held, and no end ever releases it",
                Fact::OdpEagainHoldsLock.cite()
            ))
        } else if callback.starts_with("hmm_") && !version.has(Fact::HmmEagainLeaksCount) {
            Some(format!(
                "matches the hmm bug fixed in {}: hmm->notifiers was incremented and -EAGAIN returned without the decrement",
                Fact::HmmEagainLeaksCount.cite()
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_warn_hints_by_function() {
        let k = KernelInfo::new("6.12.43+deb13-amd64");
        assert_eq!(
            k.kernel_warn("__mmu_notifier_invalidate_range_start+0x1a0").as_deref(),
            Some(
                "WARN_ON in __start fires for a failure in a blockable range or one other than -EAGAIN (v5.4+), and for a failing subscriber with an end op (v5.12+)"
            )
        );
        assert_eq!(k.kernel_warn("kvm_mmu_notifier_invalidate_range_end"), Some(k.pagemap_scan()));
        assert_eq!(k.kernel_warn("kvm_mmu_notifier_invalidate_range_start"), Some(k.zero_length()));
        assert_eq!(k.kernel_warn("mn_itree_inv_end"), None);
    }
}
