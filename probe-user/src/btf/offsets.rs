//! Fills [`KernelOffsets`] from the running kernel's BTF. Member names changed across kernel
//! versions; each lookup lists the names it accepts, newest first.

use probe_common::{ABSENT, KernelOffsets, OpsSlot};

use super::parse::{Btf, BtfError, MemberLoc};

/// A member the programs cannot work without.
fn required(btf: &Btf, strukt: &str, names: &[&str]) -> Result<MemberLoc, BtfError> {
    for name in names {
        if let Ok(loc) = btf.member(strukt, name) {
            return Ok(loc);
        }
    }
    Err(BtfError::NoMember(strukt.to_string(), names.join(" or ")))
}

/// A member reported when present ([`ABSENT`] otherwise).
fn optional(btf: &Btf, strukt: &str, names: &[&str]) -> u32 {
    names.iter().find_map(|n| btf.member(strukt, n).ok()).map_or(ABSENT, |loc| loc.offset)
}

/// Which subscriptions struct this kernel has.
pub(crate) fn subscriptions_struct(btf: &Btf) -> &'static str {
    if btf.has_struct("mmu_notifier_subscriptions") { "mmu_notifier_subscriptions" } else { "mmu_notifier_mm" }
}

/// The `mmu_notifier_ops` member names for `slot`: its name ([`OpsSlot::as_str`]), then the
/// name older kernels gave it, if it was renamed.
fn ops_member_names(slot: OpsSlot) -> Vec<&'static str> {
    let older = match slot {
        OpsSlot::SecondaryTlbs => Some("invalidate_range"),
        _ => None,
    };
    std::iter::once(slot.as_str()).chain(older).collect()
}

/// Reads every offset the programs use. `kvm_btf` is where `struct kvm` lives: vmlinux when
/// KVM is built in, the kvm module's split BTF otherwise, `None` when KVM is absent.
pub(crate) fn kernel_offsets(btf: &Btf, kvm_btf: Option<&Btf>) -> Result<KernelOffsets, BtfError> {
    let mut o = KernelOffsets::absent();
    o.task_mm = required(btf, "task_struct", &["mm"])?.offset;
    o.task_pid = required(btf, "task_struct", &["pid"])?.offset;
    o.task_tgid = required(btf, "task_struct", &["tgid"])?.offset;
    o.task_comm = required(btf, "task_struct", &["comm"])?.offset;
    o.task_group_leader = required(btf, "task_struct", &["group_leader"])?.offset;
    o.task_state = optional(btf, "task_struct", &["__state", "state"]);
    o.mm_subscriptions = required(btf, "mm_struct", &["notifier_subscriptions", "mmu_notifier_mm"])?.offset;

    let subs = subscriptions_struct(btf);
    o.subs_list = required(btf, subs, &["list"])?.offset;
    o.subs_has_itree = optional(btf, subs, &["has_itree"]);
    o.subs_invalidate_seq = optional(btf, subs, &["invalidate_seq"]);
    o.subs_active_invalidate_ranges = optional(btf, subs, &["active_invalidate_ranges"]);

    o.notifier_hlist = required(btf, "mmu_notifier", &["hlist"])?.offset;
    o.notifier_ops = required(btf, "mmu_notifier", &["ops"])?.offset;
    o.notifier_users = optional(btf, "mmu_notifier", &["users"]);
    for slot in OpsSlot::ALL {
        o.ops[slot as usize] = optional(btf, "mmu_notifier_ops", &ops_member_names(slot));
    }

    o.range_mm = required(btf, "mmu_notifier_range", &["mm"])?.offset;
    o.range_start = required(btf, "mmu_notifier_range", &["start"])?.offset;
    o.range_end = required(btf, "mmu_notifier_range", &["end"])?.offset;
    o.range_flags = required(btf, "mmu_notifier_range", &["flags"])?.offset;
    o.range_event = optional(btf, "mmu_notifier_range", &["event"]);
    // Interval subscribers exist since 5.5.
    o.interval_ops = optional(btf, "mmu_interval_notifier", &["ops"]);
    o.interval_ops_invalidate = optional(btf, "mmu_interval_notifier_ops", &["invalidate"]);
    o.interval_mm = optional(btf, "mmu_interval_notifier", &["mm"]);
    twopass_offsets(btf, &mut o);
    interval_tree_offsets(btf, subs, &mut o);
    wait_queue_offsets(btf, subs, &mut o);

    if let Some(kvm) = kvm_btf.filter(|b| b.has_struct("kvm")) {
        o.kvm_mmu_notifier = optional(kvm, "kvm", &["mmu_notifier"]);
        o.kvm_mn_active_invalidate_count = optional(kvm, "kvm", &["mn_active_invalidate_count"]);
        o.kvm_invalidate_in_progress = optional(kvm, "kvm", &["mmu_invalidate_in_progress", "mmu_notifier_count"]);
    }
    Ok(o)
}

/// The two-pass interval API (7.2+): all of it or none, so its hooks are either usable or off.
fn twopass_offsets(btf: &Btf, o: &mut KernelOffsets) {
    let at = |strukt: &str, member: &str| btf.member(strukt, member).ok().map(|loc| loc.offset);
    let found = (|| {
        Some([
            at("mmu_interval_notifier_ops", "invalidate_start")?,
            at("mmu_interval_notifier_ops", "invalidate_finish")?,
            at("mmu_interval_notifier_finish", "notifier")?,
        ])
    })();
    if let Some([start, finish, notifier]) = found {
        o.interval_ops_invalidate_start = start;
        o.interval_ops_invalidate_finish = finish;
        o.finish_notifier = notifier;
    }
}

/// Whether this kernel has the two-pass interval API, and if not, what its BTF lacks.
pub(crate) fn twopass_api(o: &KernelOffsets) -> Result<(), &'static str> {
    if o.interval_ops_invalidate_start != ABSENT
        && o.interval_ops_invalidate_finish != ABSENT
        && o.finish_notifier != ABSENT
        && o.interval_ops != ABSENT
    {
        Ok(())
    } else {
        Err(
            "this kernel's mmu_interval_notifier_ops has no invalidate_start/invalidate_finish (two-pass interval API, 7.2+)",
        )
    }
}

/// What finding the tasks waiting for an mm's interval tree needs; all or none, like the tree.
fn wait_queue_offsets(btf: &Btf, subs: &str, o: &mut KernelOffsets) {
    let at = |strukt: &str, member: &str| btf.member(strukt, member).ok().map(|loc| loc.offset);
    let found = (|| {
        let head = at(subs, "wq")? + at("wait_queue_head", "head")?;
        Some([head, at("wait_queue_entry", "private")?, at("wait_queue_entry", "entry")?])
    })();
    if let Some([head, private, link]) = found {
        o.subs_wq_head = head;
        o.wq_entry_private = private;
        o.wq_entry_link = link;
    }
}

/// What walking the interval tree needs; all stay [`ABSENT`] unless every one is found, so the
/// walk is either possible or skipped (kernels before 5.5 have no interval subscribers).
fn interval_tree_offsets(btf: &Btf, subs: &str, o: &mut KernelOffsets) {
    let at = |strukt: &str, member: &str| btf.member(strukt, member).ok().map(|loc| loc.offset);
    let found = (|| {
        let leftmost = at(subs, "itree")? + at("rb_root_cached", "rb_leftmost")?;
        let node = at("mmu_interval_notifier", "interval_tree")?;
        Some([
            leftmost,
            node + at("interval_tree_node", "rb")?,
            node + at("interval_tree_node", "start")?,
            node + at("interval_tree_node", "last")?,
            at("mmu_interval_notifier", "invalidate_seq")?,
            at("rb_node", "__rb_parent_color")?,
            at("rb_node", "rb_right")?,
            at("rb_node", "rb_left")?,
        ])
    })();
    if let Some([leftmost, rb, start, last, seq, parent, right, left]) = found {
        o.subs_itree_leftmost = leftmost;
        o.interval_rb = rb;
        o.interval_start = start;
        o.interval_last = last;
        o.interval_seq = seq;
        o.rb_parent_color = parent;
        o.rb_right = right;
        o.rb_left = left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testing::*;

    #[test]
    fn finds_members_through_anonymous_structs_and_typedefs() {
        let btf = sample_btf();
        assert_eq!(btf.member("outer", "plain").unwrap(), MemberLoc { offset: 0, size: 8 });
        // `hidden` sits at byte 8 of an anonymous struct placed at byte 16.
        assert_eq!(btf.member("outer", "hidden").unwrap(), MemberLoc { offset: 24, size: 4 });
        assert_eq!(btf.member("outer", "ptr").unwrap(), MemberLoc { offset: 32, size: 8 });
        assert_eq!(btf.member("outer", "name").unwrap(), MemberLoc { offset: 40, size: 16 });
        assert_eq!(btf.member("outer", "missing"), Err(BtfError::NoMember("outer".into(), "missing".into())));
        assert_eq!(btf.member("nope", "x"), Err(BtfError::NoStruct("nope".into())));
        assert_eq!(btf.struct_size("outer").unwrap(), 56);
    }

    #[test]
    fn required_lists_every_accepted_name_when_all_are_missing() {
        let btf = sample_btf();
        let err = required(&btf, "outer", &["notifier_subscriptions", "mmu_notifier_mm"]).unwrap_err();
        assert_eq!(err.to_string(), "the kernel's BTF has no member outer.notifier_subscriptions or mmu_notifier_mm");
    }

    #[test]
    fn split_btf_resolves_base_types_and_strings() {
        let base = sample_btf();
        let split = split_sample(&base);
        let btf = Btf::parse_split(&split, "split", base).unwrap();
        // `kvm_like` is defined in the split blob and has a member whose type is from the base.
        assert_eq!(btf.member("kvm_like", "embedded").unwrap(), MemberLoc { offset: 8, size: 56 });
        assert_eq!(btf.member("outer", "plain").unwrap().offset, 0);
    }

    #[test]
    fn rejects_garbage_with_a_clear_error() {
        assert!(matches!(Btf::parse(b"\x00\x01garbage", "x"), Err(BtfError::BadMagic { .. })));
        let mut blob = sample_blob();
        blob.truncate(blob.len() - 5);
        let err = Btf::parse(&blob, "vmlinux").err().unwrap();
        assert!(err.to_string().starts_with("vmlinux: truncated BTF"), "{err}");
    }

    /// The real kernel's BTF: the structs the programs read must all resolve.
    #[test]
    fn running_kernel_btf_has_every_required_member() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("mmnotif-trace needs a kernel with BTF");
        let btf = Btf::parse(&data, "/sys/kernel/btf/vmlinux").unwrap();
        let o = kernel_offsets(&btf, Some(&btf)).unwrap();
        // Cross-check a few against independent facts about every kernel: comm is 16 bytes,
        // `mm` is a pointer, pid and tgid are adjacent ints.
        assert_eq!(btf.member("task_struct", "comm").unwrap().size, 16);
        assert_eq!(btf.member("task_struct", "mm").unwrap().size, 8);
        assert_eq!(o.task_tgid, o.task_pid + 4);
        assert_ne!(o.ops[OpsSlot::InvalidateRangeStart as usize], ABSENT);
        // Whatever precedes them (`vma` on older kernels), start, end and flags are adjacent.
        assert_eq!(btf.member("mmu_notifier_range", "start").unwrap().size, 8);
        assert_eq!(o.range_end, o.range_start + 8);
        assert_eq!(o.range_flags, o.range_end + 8);
        assert_ne!(o.range_event, ABSENT);
        assert_ne!(o.interval_ops_invalidate, ABSENT);
        // The tree walk: `rb_node` is three words, the interval's bounds follow it.
        assert_ne!(o.subs_itree_leftmost, ABSENT);
        assert_eq!((o.rb_parent_color, o.rb_right, o.rb_left), (0, 8, 16));
        assert_eq!(o.interval_start, o.interval_rb + 24);
        assert_eq!(o.interval_last, o.interval_start + 8);
        assert_ne!(o.interval_seq, ABSENT);
        assert!(o.ops[OpsSlot::InvalidateRangeEnd as usize] > o.ops[OpsSlot::InvalidateRangeStart as usize]);
        if btf.has_struct("mmu_notifier_subscriptions") {
            assert_ne!(o.subs_invalidate_seq, ABSENT);
        }
        if btf.has_struct("kvm") {
            assert_ne!(o.kvm_mmu_notifier, ABSENT);
            assert_ne!(o.kvm_mn_active_invalidate_count, ABSENT);
            assert_ne!(o.kvm_invalidate_in_progress, ABSENT);
        }
        eprintln!("{o:?}");
    }
}
