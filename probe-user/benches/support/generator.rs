//! A synthetic but realistic full-mode trace shared by the benchmarks: many tasks
//! invalidating ranges of a few mms with KVM-like and GRU-like list subscribers, interval
//! subscribers on some mms, nested ranges, and OOM-reaper failures with compensating ends.
//! Optionally with kernel stacks on range starts and ends, as the tracer records by default.
// Each benchmark uses part of it.
#![allow(dead_code)]
use mmnotif_trace::trace::*;

pub(crate) const TASKS: u32 = 256;

/// Deterministic xorshift, so every run measures the same trace.
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) struct Generator {
    rng: Rng,
    ts: u64,
    comms: Vec<Comm>,
    kvm_start: Symbol,
    kvm_end: Symbol,
    gru_start: Symbol,
    gru_end: Symbol,
    interval: Symbol,
    /// Call paths into `__mmu_notifier_invalidate_range_*` (caller frames, innermost first);
    /// empty: events carry no stack. The last one is the OOM reaper's.
    paths: Vec<Vec<Symbol>>,
    range_start_fn: Symbol,
    range_end_fn: Symbol,
}

/// Realistic callers of the invalidation hooks on a 6.12 kernel.
const CALL_PATHS: [&[&str]; 7] = [
    &[
        "zap_page_range_single+0x131",
        "madvise_vma_behavior+0x5b2",
        "madvise_walk_vmas+0xa3",
        "do_madvise+0x152",
        "__x64_sys_madvise+0x2b",
        "do_syscall_64+0x82",
        "entry_SYSCALL_64_after_hwframe+0x76",
    ],
    &[
        "change_protection+0x2fd",
        "mprotect_fixup+0x1d8",
        "do_mprotect_pkey+0x2c4",
        "__x64_sys_mprotect+0x1f",
        "do_syscall_64+0x82",
        "entry_SYSCALL_64_after_hwframe+0x76",
    ],
    &[
        "unmap_vmas+0xd4",
        "vms_clear_ptes+0x11c",
        "vms_complete_munmap_vmas+0x8f",
        "do_vmi_align_munmap+0x1b5",
        "do_vmi_munmap+0xd3",
        "__vm_munmap+0xac",
        "__x64_sys_munmap+0x1b",
        "do_syscall_64+0x82",
        "entry_SYSCALL_64_after_hwframe+0x76",
    ],
    &[
        "copy_page_range+0x1e6",
        "dup_mmap+0x5e2",
        "copy_process+0x1b84",
        "kernel_clone+0xbd",
        "__do_sys_clone+0x66",
        "do_syscall_64+0x82",
        "entry_SYSCALL_64_after_hwframe+0x76",
    ],
    &[
        "try_to_unmap_one+0x17c",
        "rmap_walk_anon+0xd8",
        "try_to_unmap+0x5c",
        "shrink_folio_list+0x6a3",
        "shrink_lruvec+0x5d1",
        "shrink_node+0x2f4",
        "balance_pgdat+0x2b8",
        "kswapd+0x207",
        "kthread+0xd2",
        "ret_from_fork+0x34",
        "ret_from_fork_asm+0x1a",
    ],
    &[
        "migrate_pages_batch+0x4b3",
        "migrate_pages+0x9a8",
        "compact_zone+0x8e0",
        "kcompactd_do_work+0x119",
        "kcompactd+0x1ab",
        "kthread+0xd2",
        "ret_from_fork+0x34",
        "ret_from_fork_asm+0x1a",
    ],
    &["__oom_reap_task_mm+0x6e", "oom_reaper+0x158", "kthread+0xd2", "ret_from_fork+0x34", "ret_from_fork_asm+0x1a"],
];

impl Generator {
    pub(crate) fn new() -> Generator {
        Generator {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            ts: 1_000_000_000,
            comms: (0..TASKS).map(|i| Comm::new(&format!("worker-{}", i % 16))).collect(),
            kvm_start: Symbol::new("kvm_mmu_notifier_invalidate_range_start"),
            kvm_end: Symbol::new("kvm_mmu_notifier_invalidate_range_end"),
            gru_start: Symbol::new("gru_invalidate_range_start"),
            gru_end: Symbol::new("gru_invalidate_range_end"),
            interval: Symbol::new("amdgpu_hmm_invalidate_gfx"),
            paths: Vec::new(),
            range_start_fn: Symbol::new("__mmu_notifier_invalidate_range_start+0x5"),
            range_end_fn: Symbol::new("__mmu_notifier_invalidate_range_end+0x5"),
        }
    }

    /// Range starts and ends carry kernel stacks (the same trace otherwise).
    pub(crate) fn with_stacks(mut self) -> Generator {
        self.paths = CALL_PATHS.iter().map(|path| path.iter().map(|f| Symbol::new(f)).collect()).collect();
        self
    }

    /// A range event, with the stack of call path `path` when stacks are on.
    fn range_event(&mut self, tid: u32, body: EventBody, path: usize) -> Event {
        let hook = if matches!(body, EventBody::RangeStart(_)) { &self.range_start_fn } else { &self.range_end_fn };
        let stack = self.paths.get(path).map(|callers| std::iter::once(hook).chain(callers).cloned().collect());
        let mut e = self.event(tid, body);
        e.stack = stack;
        e
    }

    fn event(&mut self, tid: u32, body: EventBody) -> Event {
        self.ts += 1 + self.rng.below(400);
        let mut e = Event::new(self.ts, body);
        e.pid = Some(1000 + tid / 8);
        e.cpu = Some(tid % 2);
        e.comm = self.comms.get(tid as usize).cloned();
        e
    }

    /// One task's complete invalidation (7–20 events), appended to `out`.
    fn invalidation(&mut self, tid: u32, out: &mut Vec<Event>) {
        let mm = Addr(0xffff_8880_0300_0000 + u64::from(tid / 8) * 0x2000);
        let range = Addr(0xffff_c900_0000_0000 + u64::from(tid) * 0x4000);
        let start = Addr(0x7f00_0000_0000 + self.rng.below(1 << 20) * 4096);
        let end = Addr(start.0 + (1 + self.rng.below(512)) * 4096);
        let subs = [(Addr(0xffff_8880_0600_0000), self.kvm_start.clone(), self.kvm_end.clone())];
        let gru = (Addr(0xffff_8880_0700_0000), self.gru_start.clone(), self.gru_end.clone());
        let with_gru = tid.is_multiple_of(4);
        let with_interval = tid % 8 == 1;
        let fail = self.rng.below(1000) == 0;
        let nested = !fail && self.rng.below(20) == 0;
        let call = |range: Addr, blockable: bool| RangeCall {
            tid,
            mm,
            range,
            start,
            end,
            event: if blockable { MmuEvent::Clear } else { MmuEvent::Unmap },
            blockable,
        };
        let blockable = !fail;
        // Drawn only with stacks on, so that the trace is otherwise the same.
        let path = match self.paths.len() {
            0 => 0,
            n if fail => n - 1,
            n => self.rng.below(n as u64 - 1) as usize,
        };
        let e = self.range_event(tid, EventBody::RangeStart(call(range, blockable)), path);
        out.push(e);
        if with_interval {
            let body = EventBody::IntervalInvalidate(IntervalInvalidate {
                tid,
                mm,
                range,
                subscriber: Addr(0xffff_8880_0800_0000),
                callback: self.interval.clone(),
                cur_seq: 7,
                ret: true,
            });
            out.push(self.event(tid, body));
        }
        let mut all: Vec<(Addr, Symbol, Symbol)> = subs.to_vec();
        if with_gru {
            all.push(gru);
        }
        for (i, (sub, cb, _)) in all.iter().enumerate() {
            let failing = fail && i + 1 == all.len();
            let body = EventBody::SubscriberStart(SubscriberStart {
                tid,
                mm,
                range: Some(range),
                subscriber: Some(*sub),
                callback: cb.clone(),
                has_end: Some(!failing),
                ret: Some(if failing { -11 } else { 0 }),
                start: None,
                end: None,
            });
            out.push(self.event(tid, body));
        }
        if fail {
            // v5.12+: compensating ends for everyone with an end op, then -EAGAIN.
            for (sub, _, end_cb) in all.iter().take(all.len() - 1) {
                let body = EventBody::SubscriberEnd(SubscriberEnd {
                    tid,
                    mm,
                    range,
                    subscriber: *sub,
                    callback: end_cb.clone(),
                });
                out.push(self.event(tid, body));
            }
            let body =
                EventBody::RangeStartRet(RangeStartRet { tid, range, ret: -11, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            return;
        }
        let body = EventBody::RangeStartRet(RangeStartRet { tid, range, ret: 0, itree: ItreeSnapshot::default() });
        out.push(self.event(tid, body));
        if nested {
            let inner = Addr(range.0 + 0x100);
            let e = self.range_event(tid, EventBody::RangeStart(call(inner, true)), path);
            out.push(e);
            let body =
                EventBody::RangeStartRet(RangeStartRet { tid, range: inner, ret: 0, itree: ItreeSnapshot::default() });
            out.push(self.event(tid, body));
            let body = EventBody::RangeEnd(RangeEnd { call: call(inner, true), itree: ItreeSnapshot::default() });
            let e = self.range_event(tid, body, path);
            out.push(e);
        }
        let body = EventBody::RangeEnd(RangeEnd { call: call(range, true), itree: ItreeSnapshot::default() });
        let e = self.range_event(tid, body, path);
        out.push(e);
        for (sub, _, end_cb) in &all {
            let body =
                EventBody::SubscriberEnd(SubscriberEnd { tid, mm, range, subscriber: *sub, callback: end_cb.clone() });
            out.push(self.event(tid, body));
        }
    }

    /// About `n` events; tasks interleave at invalidation granularity, as on a busy host.
    pub(crate) fn block(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            let tid = self.rng.below(u64::from(TASKS)) as u32;
            self.invalidation(tid, &mut out);
        }
        out
    }
}

/// Every hook attached, as on a distribution kernel.
pub(crate) fn header() -> Header {
    Hook::ALL.into_iter().fold(Header::new("6.12.43+deb13-amd64"), |h, hook| h.with_attach(hook, "replay"))
}
