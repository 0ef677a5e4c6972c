//! The inventory decoder and its text rendering, over hand-built iterator records.

use probe_common::KernelOffsets;

use super::*;

fn record(kind: u32) -> InventoryRecord {
    InventoryRecord {
        kind,
        pid: 42,
        comm: *b"qemu-system-x86\0",
        mm: 0xffff888001000000,
        subscriptions: 0xffff888002000000,
        has_itree: 0,
        index: 0,
        invalidate_seq: 2,
        active_invalidate_ranges: 0,
        subscriber: 0,
        ops: 0,
        callbacks: [0; OPS_SLOTS],
        users: 0,
        truncated: 0,
        kvm: 0,
        kvm_mn_active_invalidate_count: 0,
        kvm_invalidate_in_progress: 0,
        interval_start: 0,
        interval_last: 0,
        interval_seq: 0,
        interval_invalidate: 0,
        interval_invalidate_start: 0,
        interval_invalidate_finish: 0,
    }
}

/// Records as an iterator program writes them to its seq file.
pub(super) fn bytes<T: Copy>(records: &[T]) -> Vec<u8> {
    records
        .iter()
        // SAFETY: plain-data records, read as the bytes they are.
        .flat_map(|r| unsafe { std::slice::from_raw_parts(r as *const T as *const u8, size_of::<T>()).to_vec() })
        .collect()
}

#[test]
fn groups_subscribers_under_the_following_mm_and_symbolizes() {
    let k = Kallsyms::parse("ffffffff81000000 t kvm_mmu_notifier_invalidate_range_start\nffffffff81000100 t kvm_mmu_notifier_invalidate_range_end\n").unwrap();
    let mut offsets = KernelOffsets::absent();
    offsets.subs_invalidate_seq = 16;
    offsets.kvm_mn_active_invalidate_count = 100;
    let mut sub = record(inventory_kind::SUBSCRIBER);
    sub.subscriber = 0xffff888003000000;
    sub.callbacks[OpsSlot::InvalidateRangeStart as usize] = 0xffffffff81000000;
    sub.callbacks[OpsSlot::InvalidateRangeEnd as usize] = 0xffffffff81000100;
    sub.kvm = 0xffff888004000000;
    sub.kvm_mn_active_invalidate_count = 0;
    let mut mm = record(inventory_kind::MM);
    mm.index = 1;
    let out = decode(&bytes(&[sub, mm]), &k, &offsets).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].comm, "qemu-system-x86");
    assert_eq!(out[0].invalidate_seq, Some(2));
    assert_eq!(out[0].active_invalidate_ranges, None, "absent offset must read as unknown");
    let s = &out[0].subscribers[0];
    assert_eq!(
        s.callbacks,
        vec![
            ("invalidate_range_start".to_string(), "kvm_mmu_notifier_invalidate_range_start".to_string()),
            ("invalidate_range_end".to_string(), "kvm_mmu_notifier_invalidate_range_end".to_string()),
        ]
    );
    let kvm = s.kvm.as_ref().unwrap();
    assert_eq!(kvm.mn_active_invalidate_count, Some(0));
    assert_eq!(kvm.mmu_invalidate_in_progress, None);
    let text = render_text(&out);
    assert!(text.contains("mn_active_invalidate_count 0  mmu_invalidate_in_progress not in this kernel"), "{text}");
}

#[test]
fn a_kvm_subscriber_without_struct_kvm_btf_says_so() {
    let k = Kallsyms::parse("ffffffffc0001000 t kvm_mmu_notifier_invalidate_range_start\t[kvm]\n").unwrap();
    let mut offsets = KernelOffsets::absent();
    offsets.kvm_start_callback = 0xffffffffc0001000;
    let mut sub = record(inventory_kind::SUBSCRIBER);
    sub.callbacks[OpsSlot::InvalidateRangeStart as usize] = 0xffffffffc0001000;
    let mut other = record(inventory_kind::SUBSCRIBER);
    other.callbacks[OpsSlot::InvalidateRangeStart as usize] = 0xffffffffc0002000;
    let mut mm = record(inventory_kind::MM);
    mm.index = 2;
    let out = decode(&bytes(&[sub, other, mm]), &k, &offsets).unwrap();
    let kvm = out[0].subscribers[0].kvm.as_ref().expect("KVM's subscriber, by its callback");
    assert_eq!(kvm.unavailable, Some(KVM_WITHOUT_BTF));
    assert!(out[0].subscribers[1].kvm.is_none(), "another subscriber is not KVM's");
    let text = render_text(&out);
    assert!(text.contains("kvm: counters unavailable on this kernel: no BTF describes struct kvm"), "{text}");
    // Where the BTF is there, the offset is known and the VM is read instead.
    offsets.kvm_mmu_notifier = 8;
    let out = decode(&bytes(&[sub, mm]), &k, &offsets).unwrap();
    assert!(out[0].subscribers[0].kvm.is_none());
}

#[test]
fn interval_subscribers_belong_to_the_following_mm() {
    let k = Kallsyms::parse("ffffffffc0001000 t mmnt_invalidate_ok\t[mmnotif_test]\n").unwrap();
    let mut iv = record(inventory_kind::INTERVAL);
    iv.subscriber = 0xffff888005000000;
    iv.interval_start = 0x7f0000004000;
    iv.interval_last = 0x7f0000007fff;
    iv.interval_seq = 5;
    iv.interval_invalidate = 0xffffffffc0001000;
    let mut mm = record(inventory_kind::MM);
    mm.has_itree = 1;
    mm.invalidate_seq = 5;
    let mut other = record(inventory_kind::MM);
    other.mm += 0x1000;
    let mut offsets = KernelOffsets::absent();
    offsets.subs_invalidate_seq = 16;
    let out = decode(&bytes(&[iv, mm, other]), &k, &offsets).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[0].subscribers.is_empty() && out[1].intervals.is_empty());
    let got = &out[0].intervals[0];
    assert_eq!((got.start, got.last, got.invalidate_seq), (Addr(0x7f0000004000), Addr(0x7f0000007fff), 5));
    assert_eq!(got.invalidate, "mmnt_invalidate_ok [mmnotif_test]");
    assert_eq!(got.invalidate_addr, 0xffffffffc0001000);
    let text = render_text(&out);
    assert!(text.contains("[0x7f0000004000, 0x7f0000007fff] seq 5 (invalidating)"), "{text}");
    assert!(text.contains("mmnt_invalidate_ok [mmnotif_test]"), "{text}");
    // Idle: the interval's sequence is odd but one below the tree's.
    let mut idle = out.clone();
    idle[0].invalidate_seq = Some(6);
    let text = render_text(&idle);
    assert!(text.contains("seq 5\n"), "an idle interval is not invalidating: {text}");
    // A tree record with no mm after it is output cut short.
    let dangling = bytes(&[record(inventory_kind::MM), iv]);
    assert_eq!(decode(&dangling, &k, &KernelOffsets::absent()), Err(InventoryDecodeError::Dangling));
}

#[test]
fn a_process_seen_through_several_threads_is_listed_once() {
    let k = Kallsyms::default();
    let o = KernelOffsets::absent();
    let out = decode(&bytes(&[record(inventory_kind::MM), record(inventory_kind::MM)]), &k, &o).unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn rejects_partial_and_dangling_output() {
    let k = Kallsyms::default();
    let o = KernelOffsets::absent();
    let one = bytes(&[record(inventory_kind::SUBSCRIBER)]);
    assert_eq!(decode(&one, &k, &o), Err(InventoryDecodeError::Dangling));
    assert!(matches!(decode(&one[..10], &k, &o), Err(InventoryDecodeError::Length(10, _))));
    assert_eq!(decode(&bytes(&[record(9)]), &k, &o), Err(InventoryDecodeError::Kind(0, 9)));
}
