//! Types shared by the kernel side (`probe-ebpf`) and the loader (`probe-user`).
//!
//! Everything here is `#[repr(C)]` plain data: the eBPF programs write these records into the
//! ring buffer or a BPF iterator's seq file, and userspace reads them back byte for byte.
//! Rust eBPF has no CO-RE, so struct member offsets of the running kernel are read from its BTF
//! in userspace and handed to the programs in [`KernelOffsets`].
#![no_std]

mod named_enum;

/// Marks an offset the running kernel's BTF does not have (the member does not exist there).
pub const ABSENT: u32 = u32::MAX;

/// How many `mmu_notifier_ops` callback slots the iterator reports (see [`OpsSlot`]).
pub const OPS_SLOTS: usize = OpsSlot::ALL.len();

/// At most this many subscribers are read per mm (the list walk in BPF must be bounded).
pub const MAX_SUBSCRIBERS: u32 = 32;

named_enum! {
    /// `mmu_notifier_ops` members, in the order their offsets sit in [`KernelOffsets::ops`];
    /// the name is the member's (its newest, where it was renamed).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum OpsSlot: u32 {
        Release = 0 => "release",
        ClearFlushYoung = 1 => "clear_flush_young",
        ClearYoung = 2 => "clear_young",
        TestYoung = 3 => "test_young",
        InvalidateRangeStart = 4 => "invalidate_range_start",
        InvalidateRangeEnd = 5 => "invalidate_range_end",
        /// `arch_invalidate_secondary_tlbs` (6.6+) or `invalidate_range` (older kernels).
        SecondaryTlbs = 6 => "arch_invalidate_secondary_tlbs",
        AllocNotifier = 7 => "alloc_notifier",
        FreeNotifier = 8 => "free_notifier",
    }
}

/// Byte offsets of the kernel struct members the programs read, taken from the running
/// kernel's BTF. [`ABSENT`] where the kernel has no such member.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_mm: u32,
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_group_leader: u32,
    /// `task_struct.__state` (`state` before 5.14).
    pub task_state: u32,
    /// `subscriptions->wq.head` (the list of tasks waiting for the interval tree to go idle),
    /// and in each `wait_queue_entry` the task (`private`) and the list link (`entry`).
    pub subs_wq_head: u32,
    pub wq_entry_private: u32,
    pub wq_entry_link: u32,
    /// `mm_struct.notifier_subscriptions` (5.5+) or `mm_struct.mmu_notifier_mm` (older).
    pub mm_subscriptions: u32,
    /// `hlist_head list` inside the subscriptions struct.
    pub subs_list: u32,
    pub subs_has_itree: u32,
    pub subs_invalidate_seq: u32,
    pub subs_active_invalidate_ranges: u32,
    /// `hlist_node hlist` inside `struct mmu_notifier`.
    pub notifier_hlist: u32,
    pub notifier_ops: u32,
    pub notifier_users: u32,
    pub ops: [u32; OPS_SLOTS],
    /// `struct kvm.mmu_notifier` (container_of from a KVM subscriber).
    pub kvm_mmu_notifier: u32,
    pub kvm_mn_active_invalidate_count: u32,
    /// `mmu_invalidate_in_progress` (6.0+) or `mmu_notifier_count` (older).
    pub kvm_invalidate_in_progress: u32,
    /// `struct mmu_notifier_range` members.
    pub range_mm: u32,
    pub range_start: u32,
    pub range_end: u32,
    pub range_flags: u32,
    pub range_event: u32,
    /// `struct mmu_interval_notifier.ops` and `struct mmu_interval_notifier_ops.invalidate`.
    pub interval_ops: u32,
    pub interval_ops_invalidate: u32,
    /// `mmu_interval_notifier_ops.invalidate_start` / `.invalidate_finish`: the two-pass
    /// interval API (7.2+); [`ABSENT`] on older kernels, which turns its hooks off.
    pub interval_ops_invalidate_start: u32,
    pub interval_ops_invalidate_finish: u32,
    /// `mmu_interval_notifier.mm`, and `mmu_interval_notifier_finish.notifier` (7.2+).
    pub interval_mm: u32,
    pub finish_notifier: u32,
    /// `mmu_notifier_subscriptions.itree.rb_leftmost`: the interval tree's first node, cached.
    pub subs_itree_leftmost: u32,
    /// Where the `rb_node` sits inside `struct mmu_interval_notifier` (container_of from a node).
    pub interval_rb: u32,
    /// `mmu_interval_notifier.interval_tree.start` / `.last` (inclusive), from the notifier.
    pub interval_start: u32,
    pub interval_last: u32,
    /// `mmu_interval_notifier.invalidate_seq`.
    pub interval_seq: u32,
    /// `struct rb_node` members, for walking the tree in order.
    pub rb_parent_color: u32,
    pub rb_right: u32,
    pub rb_left: u32,
    /// Address of `kvm_mmu_notifier_invalidate_range_start` (from /proc/kallsyms): a subscriber
    /// whose ops point there is KVM's. 0 when KVM is absent. (The ops table itself is data,
    /// which kallsyms only lists with CONFIG_KALLSYMS_ALL.)
    pub kvm_start_callback: u64,
}

impl KernelOffsets {
    pub const fn absent() -> Self {
        KernelOffsets {
            task_mm: ABSENT,
            task_pid: ABSENT,
            task_tgid: ABSENT,
            task_comm: ABSENT,
            task_group_leader: ABSENT,
            task_state: ABSENT,
            subs_wq_head: ABSENT,
            wq_entry_private: ABSENT,
            wq_entry_link: ABSENT,
            mm_subscriptions: ABSENT,
            subs_list: ABSENT,
            subs_has_itree: ABSENT,
            subs_invalidate_seq: ABSENT,
            subs_active_invalidate_ranges: ABSENT,
            notifier_hlist: ABSENT,
            notifier_ops: ABSENT,
            notifier_users: ABSENT,
            ops: [ABSENT; OPS_SLOTS],
            kvm_mmu_notifier: ABSENT,
            kvm_mn_active_invalidate_count: ABSENT,
            kvm_invalidate_in_progress: ABSENT,
            range_mm: ABSENT,
            range_start: ABSENT,
            range_end: ABSENT,
            range_flags: ABSENT,
            range_event: ABSENT,
            interval_ops: ABSENT,
            interval_ops_invalidate: ABSENT,
            interval_ops_invalidate_start: ABSENT,
            interval_ops_invalidate_finish: ABSENT,
            interval_mm: ABSENT,
            finish_notifier: ABSENT,
            subs_itree_leftmost: ABSENT,
            interval_rb: ABSENT,
            interval_start: ABSENT,
            interval_last: ABSENT,
            interval_seq: ABSENT,
            rb_parent_color: ABSENT,
            rb_right: ABSENT,
            rb_left: ABSENT,
            kvm_start_callback: 0,
        }
    }
}

/// The ring buffer's size in bytes unless `--ring-size` says otherwise: the size the eBPF object
/// declares, and the loader's and the command line's default.
pub const DEFAULT_RING_BYTES: u32 = 4 << 20;

/// Tunables the loader sets before the programs are loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Wake the reader only once this many bytes are pending in the ring buffer; below that
    /// userspace drains on its own timer. Waking per event nearly doubles the traced cost.
    pub wakeup_bytes: u64,
    /// Non-zero: outer start/end records carry a kernel stack id.
    pub stacks: u32,
    /// Non-zero: the programs run and count what they would emit, and emit nothing (the
    /// probes' own cost, as a floor for benchmarks).
    pub count_only: u32,
}

named_enum! {
    /// What a [`RawEvent`] records.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum EventKind: u32 {
        /// `kvm:kvm_unmap_hva_range`: KVM's `invalidate_range_start` callback ran for [start, end).
        /// Tracepoint mode: no range pointer, subscriber pointer or return value is known.
        KvmUnmapRange = 1 => "kvm_unmap_range",
        /// `error_report:error_report_end`; `aux0` is the detector, `callback` the reporting address.
        ErrorReport = 2 => "error_report",
        /// `sched:sched_process_exit` for one thread.
        TaskExit = 3 => "task_exit",
        /// Entry of `__mmu_notifier_invalidate_range_start`: the range's fields; `aux0` is the
        /// stack id + 1 (0: none).
        RangeStart = 4 => "range_start",
        /// Its return: `ret`; with [`flags::ITREE_READ`], `aux0`/`aux1` are the mm's
        /// `active_invalidate_ranges`/`invalidate_seq`.
        RangeStartRet = 5 => "range_start_ret",
        /// Entry of `__mmu_notifier_invalidate_range_end`, like [`EventKind::RangeStart`].
        RangeEnd = 6 => "range_end",
        /// Return of a list subscriber's `invalidate_range_start`: `ret`, and
        /// [`flags::HAS_END`] when its ops have `invalidate_range_end`.
        SubscriberStart = 7 => "subscriber_start",
        /// Entry of a list subscriber's `invalidate_range_end`.
        SubscriberEnd = 8 => "subscriber_end",
        /// Return of an interval subscriber's `ops->invalidate`: `ret` is the bool, `aux0` the
        /// `cur_seq` it was given.
        IntervalInvalidate = 9 => "interval_invalidate",
        /// Return of `mn_itree_inv_end`: `aux0`/`aux1` as in [`EventKind::RangeStartRet`].
        ItreeEnd = 10 => "itree_end",
        /// A subscriber was registered: `subscriber`, `callback` (the start or invalidate
        /// callback), `aux0` (the end callback, list subscribers), `aux1` (the ops table), and
        /// [`flags::INTERVAL`] for interval subscribers. Userspace attaches to new callbacks.
        /// Interval subscribers also carry `ops->invalidate_start` in `aux0` and
        /// `ops->invalidate_finish` in `range` (0 where absent: NULL, or a kernel before 7.2).
        Registered = 11 => "registered",
        /// Return of an interval subscriber's `ops->invalidate_start` (two-pass API, 7.2+): `ret`
        /// is the bool, `aux0` the `cur_seq` it was given, `aux1` the `*finish` it left (0: none).
        IntervalStart = 12 => "interval_start",
        /// Entry of an interval subscriber's `ops->invalidate_finish`: `aux1` is the finish
        /// pointer it got, `subscriber` that struct's `notifier`, `mm` the subscriber's mm.
        /// `range` is 0: the kernel does not pass it.
        IntervalFinish = 13 => "interval_finish",
    }
}

/// Bits of [`EventPayload::flags`] set by the programs (range events carry the kernel's
/// `mmu_notifier_range.flags` there instead).
pub mod flags {
    /// `MMU_NOTIFIER_RANGE_BLOCKABLE` in `mmu_notifier_range.flags`.
    pub const RANGE_BLOCKABLE: u32 = 1;
    /// `aux0`/`aux1` hold the interval-tree state.
    pub const ITREE_READ: u32 = 1;
    /// The subscriber's ops have `invalidate_range_end`.
    pub const HAS_END: u32 = 1;
    /// A [`super::EventKind::Registered`] interval subscriber.
    pub const INTERVAL: u32 = 1;
}

/// What a hook supplies for one record; the common header is filled by the emitter.
/// Fields not meaningful for a kind are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventPayload {
    pub mm: u64,
    /// Address of the `struct mmu_notifier_range` (pairing key together with `tid`).
    pub range: u64,
    pub start: u64,
    pub end: u64,
    pub subscriber: u64,
    /// Kernel text address: the callback, or the WARN site.
    pub callback: u64,
    pub ret: i64,
    pub event: u32,
    pub flags: u32,
    pub aux0: u64,
    pub aux1: u64,
}

/// One record in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns`, CLOCK_MONOTONIC.
    pub ts_ns: u64,
    pub kind: u32,
    pub cpu: u32,
    /// Thread group id (what userspace calls the pid).
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; 16],
    pub payload: EventPayload,
}

/// The counters in the `COUNTERS` map: one row of [`counter::COUNT`] per CPU.
pub mod counter {
    /// Records the programs tried to put in the ring buffer.
    pub const ATTEMPTED: u32 = 0;
    /// Records dropped because the ring buffer was full.
    pub const LOST: u32 = 1;
    /// Kernel reads by the event programs that faulted: the record carries 0 in that field.
    pub const READ_FAULTS: u32 = 2;
    /// Kernel stacks that could not be stored (the stack map is full, or a different stack
    /// has that bucket): the record has no stack.
    pub const STACK_MISSES: u32 = 3;
    /// Return probes that found no arguments saved by their entry probe (the kernel skipped the
    /// entry program, the entry ran before the attach, or it was evicted from the LRU map): the
    /// record has no subscriber or range.
    pub const ENTRY_MISSING: u32 = 4;
    pub const COUNT: u32 = 5;

    /// Where CPU `cpu`'s counter `index` is in the map.
    #[inline(always)]
    pub const fn slot(cpu: u32, index: u32) -> u32 {
        cpu * COUNT + index
    }
}

/// Record kinds the inventory iterator writes.
/// Kernel stack frames kept per blocked task.
pub const BLOCKED_FRAMES: usize = 16;
/// How many mms the blocked-task walk looks for waiters on (see [`BlockedRecord`]).
pub const MAX_WATCHED_MMS: u32 = 8;
/// Waiters read per watched mm.
pub const MAX_WAITERS: u32 = 16;

pub mod blocked_kind {
    /// A task in uninterruptible sleep, with its kernel stack.
    pub const TASK: u32 = 1;
    /// A task on the notifier wait queue of a watched mm (`mm` is set, no frames).
    pub const WAITER: u32 = 2;
}

/// One record of the `blocked_tasks` iterator: every task in uninterruptible sleep with its
/// kernel stack, then (on the first call) every task waiting on the interval-tree wait queue
/// of the mms userspace put in `WATCHED_MMS`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockedRecord {
    pub kind: u32,
    pub pid: u32,
    pub tgid: u32,
    pub state: u32,
    pub comm: [u8; 16],
    pub mm: u64,
    pub nr_frames: u32,
    pub _pad: u32,
    pub frames: [u64; BLOCKED_FRAMES],
}

pub mod inventory_kind {
    /// An mm with a subscriptions struct; `subscriber` fields are zero.
    pub const MM: u32 = 1;
    /// One list subscriber of the preceding mm.
    pub const SUBSCRIBER: u32 = 2;
    /// One interval subscriber of the preceding mm (the `interval_*` fields are set).
    pub const INTERVAL: u32 = 3;
}

/// One record of the inventory iterator (written with `bpf_seq_write`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InventoryRecord {
    pub kind: u32,
    pub pid: u32,
    pub comm: [u8; 16],
    pub mm: u64,
    pub subscriptions: u64,
    pub has_itree: u32,
    /// List subscribers walked so far for this mm (on MM records: the total).
    pub index: u32,
    pub invalidate_seq: u64,
    pub active_invalidate_ranges: u64,
    pub subscriber: u64,
    pub ops: u64,
    pub callbacks: [u64; OPS_SLOTS],
    pub users: u32,
    /// 1 when the list or tree walk stopped at [`MAX_SUBSCRIBERS`] with more entries left.
    pub truncated: u32,
    /// `struct kvm` address when the subscriber is KVM's, else 0.
    pub kvm: u64,
    pub kvm_mn_active_invalidate_count: u64,
    pub kvm_invalidate_in_progress: i64,
    /// Interval subscriber: its range `[start, last]` (inclusive), `invalidate_seq` and
    /// `ops->invalidate`.
    pub interval_start: u64,
    pub interval_last: u64,
    pub interval_seq: u64,
    pub interval_invalidate: u64,
    /// `ops->invalidate_start` / `ops->invalidate_finish` (0: NULL, or a kernel before 7.2).
    pub interval_invalidate_start: u64,
    pub interval_invalidate_finish: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C) structs of integers with no padding holes the kernel could leave
    // uninitialised in a way that matters to a reader (every field is written or zeroed).
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::RawEvent {}
    unsafe impl aya::Pod for super::InventoryRecord {}
}
