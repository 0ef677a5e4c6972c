/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ioctl ABI of the mmnotif_test module (/dev/mmnotif_test), shared by the
 * module and the guest test programs.
 *
 * The module keeps a global table of MMNT_SLOTS slots. Each slot holds one
 * subscriber registered on the calling process's mm: a list notifier
 * (mmu_notifier_register) or an interval notifier
 * (mmu_interval_notifier_insert). A slot's counters live in the module, not
 * in the process, so they can be read after the process has exited.
 */
#ifndef MMNOTIF_TEST_H
#define MMNOTIF_TEST_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define MMNT_DEVICE "/dev/mmnotif_test"
#define MMNT_SLOTS 16

/* mmnt_register.kind */
#define MMNT_KIND_LIST 1
#define MMNT_KIND_INTERVAL 2

/* mmnt_register.behaviour: what the start (list) or invalidate (interval) callback does */
#define MMNT_OK 0             /* always succeed */
#define MMNT_FAIL_NONBLOCK 1  /* fail (list: return .error, default -EAGAIN; interval: return
                                 false) when the range is not blockable, else succeed */
#define MMNT_FAIL_ALWAYS 2    /* list only: return .error even when blockable (a buggy subscriber) */

/* mmnt_register.flags */
#define MMNT_F_END_OP 0x1     /* list only: the ops table has an invalidate_range_end */
#define MMNT_F_TWOPASS 0x2    /* interval only: two-pass ops (invalidate_start + invalidate_finish,
                                 7.2+; -EOPNOTSUPP elsewhere); behaviour applies to the start */

/* mmnt_counters.state */
#define MMNT_STATE_FREE 0
#define MMNT_STATE_ACTIVE 1        /* registered on a live mm */
#define MMNT_STATE_RELEASED 2      /* list notifier whose ->release ran (the mm was torn down) */
#define MMNT_STATE_UNREGISTERED 3  /* unregistered by MMNT_IOC_UNREGISTER; counters kept */
#define MMNT_STATE_REMOVING 4      /* an unregistration is waiting in the kernel (kept by RESET) */

struct mmnt_register {
	__u32 kind;
	__u32 behaviour;
	__u32 flags;
	__s32 error;   /* negative errno for failing list starts; 0 means -EAGAIN */
	__u64 start;   /* interval only: the range [start, start + length) */
	__u64 length;
	__u32 slot;    /* out */
	__u32 pad;
};

struct mmnt_counters {
	__u32 slot;    /* in */
	__u32 state;
	__u32 kind;
	__u32 behaviour;
	__u32 flags;
	__u32 pid;     /* tgid of the registering process */
	/* list notifiers: calls of invalidate_range_start / _end, split by blockability */
	__u64 starts_blockable;
	__u64 starts_nonblock;
	__u64 ends_blockable;
	__u64 ends_nonblock;
	__u64 fails_blockable;   /* starts that returned an error */
	__u64 fails_nonblock;
	__u64 releases;          /* ->release calls */
	/* interval notifiers: calls of ->invalidate */
	__u64 inval_blockable;
	__u64 inval_nonblock;
	__u64 inval_false;       /* invalidates that returned false */
	__u64 last_seq;          /* cur_seq of the last invalidate */
	/* last range seen by any callback of this slot */
	__u64 last_start;
	__u64 last_end;
	__u32 last_event;
	__u32 last_flags;
	/* list starts and interval invalidates by enum mmu_notifier_event
	 * (UNMAP 0, CLEAR 1, PROTECTION_VMA 2, PROTECTION_PAGE 3, SOFT_DIRTY 4,
	 * RELEASE 5, MIGRATE 6, EXCLUSIVE 7); any other value is counted in by_event_other */
	__u64 by_event[8];
	__u64 by_event_other;
	/* Appended (readers of the older, shorter struct use MMNT_IOC_READ_V1).
	 * Two-pass interval notifiers: calls of ->invalidate_start (all of them), those that
	 * returned false, those that returned true with *finish = NULL (no free finish struct),
	 * and calls of ->invalidate_finish. */
	__u64 tp_starts;
	__u64 tp_false;
	__u64 tp_no_finish;
	__u64 tp_finishes;
};

/* The struct MMNT_IOC_READ filled before the two-pass counters were appended. */
#define MMNT_COUNTERS_V1_SIZE 208

struct mmnt_seq {
	__u32 slot;       /* in: an interval slot */
	__u32 retry;      /* out: mmu_interval_read_retry(sub, check) */
	__u64 check;      /* in: a sequence returned earlier */
	__u64 seq;        /* out: mmu_interval_read_begin(sub) */
};

#define MMNT_PARK_KILLABLE 0x1  /* wake on a fatal signal too (default: ignore signals) */

struct mmnt_park {
	__u32 timeout_ms; /* 0: no timeout */
	__u32 flags;
};

struct mmnt_status {
	__u32 parked;     /* threads currently parked */
	__u32 active;     /* slots not FREE */
	__u64 releases;   /* MMNT_IOC_RELEASE_PARKED calls so far */
};

#define MMNT_IOC_MAGIC 0xB7
#define MMNT_IOC_REGISTER _IOWR(MMNT_IOC_MAGIC, 1, struct mmnt_register)
#define MMNT_IOC_READ _IOWR(MMNT_IOC_MAGIC, 2, struct mmnt_counters)
#define MMNT_IOC_UNREGISTER _IOW(MMNT_IOC_MAGIC, 3, __u32)
#define MMNT_IOC_RESET _IO(MMNT_IOC_MAGIC, 4)   /* unregister and free every slot no task is stuck on */
#define MMNT_IOC_SEQ _IOWR(MMNT_IOC_MAGIC, 5, struct mmnt_seq)
/* Park the calling thread in the module until MMNT_IOC_RELEASE_PARKED or the timeout.
 * Returns 0 when released, -ETIMEDOUT, or -EINTR (killable parks only). */
#define MMNT_IOC_PARK _IOW(MMNT_IOC_MAGIC, 6, struct mmnt_park)
#define MMNT_IOC_RELEASE_PARKED _IO(MMNT_IOC_MAGIC, 7)
#define MMNT_IOC_STATUS _IOR(MMNT_IOC_MAGIC, 8, struct mmnt_status)
#define MMNT_IOC_READ_V1 _IOC(_IOC_READ | _IOC_WRITE, MMNT_IOC_MAGIC, 2, MMNT_COUNTERS_V1_SIZE)
/* What this build of the module offers (MMNT_FEAT_*); -ENOTTY from older modules. */
#define MMNT_FEAT_TWOPASS 0x1  /* MMNT_F_TWOPASS works: the kernel has the two-pass API */
#define MMNT_IOC_FEATURES _IOR(MMNT_IOC_MAGIC, 9, __u32)

#endif
