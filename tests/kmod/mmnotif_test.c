// SPDX-License-Identifier: GPL-2.0
/*
 * mmnotif_test: a misc device that registers MMU notifiers with chosen
 * behaviour on the caller's mm and counts every callback they receive.
 *
 * Slots are module-global: a process may exit (and its mm be torn down)
 * while the counters stay readable. A list notifier's ->release only marks
 * the slot; the notifier is unregistered (and the mm reference the
 * notifier core took dropped) by MMNT_IOC_UNREGISTER, MMNT_IOC_RESET or
 * module unload.
 *
 * No call that can wait inside the notifier core holds mmnt_lock: removing
 * an interval notifier and mmu_interval_read_begin() wait for the mm's
 * interval-tree invalidations to end, and after the interval-tree leak
 * (a list start failing non-blockably after an interval succeeded) they
 * never do. Such a slot stays REMOVING, or keeps its waiters count, and
 * MMNT_IOC_RESET leaves it alone; every other slot stays usable.
 *
 * The start callbacks have one function per behaviour so that the kernel's
 * "%pS callback failed" message and a tracer name the behaviour.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>

/* The two-pass interval API (struct mmu_interval_notifier_finish, ops->invalidate_start and
 * ->invalidate_finish) is in Debian's 7.2 and 7.3-rc headers and in none before. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 2, 0)
#define MMNT_HAVE_TWOPASS 1
#else
#define MMNT_HAVE_TWOPASS 0
#endif

/* Finish structs per slot: the kernel may run one notifier's first pass in parallel on several
 * threads, and each invocation needs its own struct until its finish. */
#define MMNT_FINISHES 16

#include "mmnotif_test.h"

struct mmnt_slot {
	struct mmu_notifier mn;
	struct mmu_interval_notifier isub;
	struct mm_struct *mm;
	u32 state, kind, behaviour, flags, pid;
	int error;
	spinlock_t seq_lock; /* orders mmu_interval_set_seq against read_retry */
	atomic_t waiters;    /* MMNT_IOC_SEQ callers inside mmu_interval_read_begin() */
	atomic64_t starts_blockable, starts_nonblock;
	atomic64_t ends_blockable, ends_nonblock;
	atomic64_t fails_blockable, fails_nonblock;
	atomic64_t releases;
	atomic64_t inval_blockable, inval_nonblock, inval_false;
	atomic64_t by_event[9]; /* [8]: any other event value */
	u64 last_seq, last_start, last_end;
	u32 last_event, last_flags;
	atomic64_t tp_starts, tp_false, tp_no_finish, tp_finishes;
#if MMNT_HAVE_TWOPASS
	unsigned long finish_busy; /* bit i: finishes[i] is queued */
	struct mmnt_finish {
		struct mmu_interval_notifier_finish fin;
		unsigned long seq;
	} finishes[MMNT_FINISHES];
#endif
};

static struct mmnt_slot mmnt_slots[MMNT_SLOTS];
static DEFINE_MUTEX(mmnt_lock); /* slot state, registration, unregistration */

static DECLARE_WAIT_QUEUE_HEAD(mmnt_park_wq);
static atomic_t mmnt_parked = ATOMIC_INIT(0);
static atomic64_t mmnt_park_gen = ATOMIC64_INIT(0);

static void mmnt_note_range(struct mmnt_slot *s, const struct mmu_notifier_range *r)
{
	WRITE_ONCE(s->last_start, r->start);
	WRITE_ONCE(s->last_end, r->end);
	WRITE_ONCE(s->last_event, (u32)r->event);
	WRITE_ONCE(s->last_flags, r->flags);
}

static void mmnt_count_event(struct mmnt_slot *s, const struct mmu_notifier_range *r)
{
	u32 ev = (u32)r->event;

	atomic64_inc(&s->by_event[ev < 8 ? ev : 8]);
}

/* --- list notifier callbacks ------------------------------------------- */

static int mmnt_start(struct mmu_notifier *mn, const struct mmu_notifier_range *r, bool fail)
{
	struct mmnt_slot *s = container_of(mn, struct mmnt_slot, mn);
	bool blockable = mmu_notifier_range_blockable(r);

	mmnt_note_range(s, r);
	mmnt_count_event(s, r);
	atomic64_inc(blockable ? &s->starts_blockable : &s->starts_nonblock);
	if (!fail)
		return 0;
	atomic64_inc(blockable ? &s->fails_blockable : &s->fails_nonblock);
	return s->error;
}

static int mmnt_start_ok(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	return mmnt_start(mn, r, false);
}

static int mmnt_start_eagain_nonblock(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	return mmnt_start(mn, r, !mmu_notifier_range_blockable(r));
}

static int mmnt_start_buggy(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	return mmnt_start(mn, r, true);
}

static void mmnt_end(struct mmu_notifier *mn, const struct mmu_notifier_range *r)
{
	struct mmnt_slot *s = container_of(mn, struct mmnt_slot, mn);

	mmnt_note_range(s, r);
	atomic64_inc(mmu_notifier_range_blockable(r) ? &s->ends_blockable : &s->ends_nonblock);
}

static void mmnt_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct mmnt_slot *s = container_of(mn, struct mmnt_slot, mn);

	atomic64_inc(&s->releases);
	if (READ_ONCE(s->state) == MMNT_STATE_ACTIVE)
		WRITE_ONCE(s->state, MMNT_STATE_RELEASED);
}

#define MMNT_LIST_OPS(name, start_fn, end_fn)                 \
	static const struct mmu_notifier_ops name = {         \
		.release = mmnt_release,                      \
		.invalidate_range_start = start_fn,           \
		.invalidate_range_end = end_fn,               \
	}

MMNT_LIST_OPS(mmnt_ops_ok, mmnt_start_ok, NULL);
MMNT_LIST_OPS(mmnt_ops_ok_end, mmnt_start_ok, mmnt_end);
MMNT_LIST_OPS(mmnt_ops_eagain, mmnt_start_eagain_nonblock, NULL);
MMNT_LIST_OPS(mmnt_ops_eagain_end, mmnt_start_eagain_nonblock, mmnt_end);
MMNT_LIST_OPS(mmnt_ops_buggy, mmnt_start_buggy, NULL);
MMNT_LIST_OPS(mmnt_ops_buggy_end, mmnt_start_buggy, mmnt_end);

/* [behaviour][has end op] */
static const struct mmu_notifier_ops *const mmnt_list_ops[3][2] = {
	[MMNT_OK] = { &mmnt_ops_ok, &mmnt_ops_ok_end },
	[MMNT_FAIL_NONBLOCK] = { &mmnt_ops_eagain, &mmnt_ops_eagain_end },
	[MMNT_FAIL_ALWAYS] = { &mmnt_ops_buggy, &mmnt_ops_buggy_end },
};

/* --- interval notifier callbacks --------------------------------------- */

static bool mmnt_invalidate(struct mmu_interval_notifier *isub, const struct mmu_notifier_range *r,
			    unsigned long cur_seq, bool fail_nonblock)
{
	struct mmnt_slot *s = container_of(isub, struct mmnt_slot, isub);
	bool blockable = mmu_notifier_range_blockable(r);

	mmnt_note_range(s, r);
	mmnt_count_event(s, r);
	atomic64_inc(blockable ? &s->inval_blockable : &s->inval_nonblock);
	if (!blockable && fail_nonblock) {
		atomic64_inc(&s->inval_false);
		return false;
	}
	spin_lock(&s->seq_lock);
	mmu_interval_set_seq(isub, cur_seq);
	WRITE_ONCE(s->last_seq, cur_seq);
	spin_unlock(&s->seq_lock);
	return true;
}

static bool mmnt_invalidate_ok(struct mmu_interval_notifier *isub,
			       const struct mmu_notifier_range *r, unsigned long cur_seq)
{
	return mmnt_invalidate(isub, r, cur_seq, false);
}

static bool mmnt_invalidate_false_nonblock(struct mmu_interval_notifier *isub,
					   const struct mmu_notifier_range *r,
					   unsigned long cur_seq)
{
	return mmnt_invalidate(isub, r, cur_seq, true);
}

static const struct mmu_interval_notifier_ops mmnt_iops_ok = {
	.invalidate = mmnt_invalidate_ok,
};

static const struct mmu_interval_notifier_ops mmnt_iops_false_nonblock = {
	.invalidate = mmnt_invalidate_false_nonblock,
};

#if MMNT_HAVE_TWOPASS
/* --- two-pass interval notifier callbacks (7.2+) ------------------------- */

/* The first pass: counts like ->invalidate, then queues a finish from the slot's pool. With
 * none free it does the whole job here and leaves *finish NULL, as the API allows. */
static bool mmnt_invalidate_start(struct mmu_interval_notifier *isub,
				  const struct mmu_notifier_range *r, unsigned long cur_seq,
				  struct mmu_interval_notifier_finish **finish, bool fail_nonblock)
{
	struct mmnt_slot *s = container_of(isub, struct mmnt_slot, isub);
	int i;

	mmnt_note_range(s, r);
	mmnt_count_event(s, r);
	atomic64_inc(&s->tp_starts);
	if (!mmu_notifier_range_blockable(r) && fail_nonblock) {
		atomic64_inc(&s->tp_false);
		return false;
	}
	for (i = 0; i < MMNT_FINISHES; i++)
		if (!test_and_set_bit(i, &s->finish_busy))
			break;
	if (i == MMNT_FINISHES) {
		atomic64_inc(&s->tp_no_finish);
		spin_lock(&s->seq_lock);
		mmu_interval_set_seq(isub, cur_seq);
		WRITE_ONCE(s->last_seq, cur_seq);
		spin_unlock(&s->seq_lock);
		return true;
	}
	s->finishes[i].seq = cur_seq;
	*finish = &s->finishes[i].fin;
	return true;
}

static bool mmnt_invalidate_start_ok(struct mmu_interval_notifier *isub,
				     const struct mmu_notifier_range *r, unsigned long cur_seq,
				     struct mmu_interval_notifier_finish **finish)
{
	return mmnt_invalidate_start(isub, r, cur_seq, finish, false);
}

static bool mmnt_invalidate_start_false_nonblock(struct mmu_interval_notifier *isub,
						 const struct mmu_notifier_range *r,
						 unsigned long cur_seq,
						 struct mmu_interval_notifier_finish **finish)
{
	return mmnt_invalidate_start(isub, r, cur_seq, finish, true);
}

/* The second pass: publishes the sequence the first pass was given and frees the struct. */
static void mmnt_invalidate_finish(struct mmu_interval_notifier_finish *fin)
{
	struct mmnt_finish *f = container_of(fin, struct mmnt_finish, fin);
	struct mmnt_slot *s = container_of(fin->notifier, struct mmnt_slot, isub);

	atomic64_inc(&s->tp_finishes);
	spin_lock(&s->seq_lock);
	mmu_interval_set_seq(fin->notifier, f->seq);
	WRITE_ONCE(s->last_seq, f->seq);
	spin_unlock(&s->seq_lock);
	clear_bit(f - s->finishes, &s->finish_busy);
}

static const struct mmu_interval_notifier_ops mmnt_iops_twopass_ok = {
	.invalidate_start = mmnt_invalidate_start_ok,
	.invalidate_finish = mmnt_invalidate_finish,
};

static const struct mmu_interval_notifier_ops mmnt_iops_twopass_false_nonblock = {
	.invalidate_start = mmnt_invalidate_start_false_nonblock,
	.invalidate_finish = mmnt_invalidate_finish,
};
#endif

/* --- slot management (mmnt_lock held) ---------------------------------- */

static void mmnt_zero_counters(struct mmnt_slot *s)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(s->by_event); i++)
		atomic64_set(&s->by_event[i], 0);
	atomic64_set(&s->starts_blockable, 0);
	atomic64_set(&s->starts_nonblock, 0);
	atomic64_set(&s->ends_blockable, 0);
	atomic64_set(&s->ends_nonblock, 0);
	atomic64_set(&s->fails_blockable, 0);
	atomic64_set(&s->fails_nonblock, 0);
	atomic64_set(&s->releases, 0);
	atomic64_set(&s->inval_blockable, 0);
	atomic64_set(&s->inval_nonblock, 0);
	atomic64_set(&s->inval_false, 0);
	atomic64_set(&s->tp_starts, 0);
	atomic64_set(&s->tp_false, 0);
	atomic64_set(&s->tp_no_finish, 0);
	atomic64_set(&s->tp_finishes, 0);
#if MMNT_HAVE_TWOPASS
	s->finish_busy = 0;
#endif
	s->last_seq = s->last_start = s->last_end = 0;
	s->last_event = s->last_flags = 0;
}

static void mmnt_zero(struct mmnt_slot *s)
{
	mmnt_zero_counters(s);
	s->kind = s->behaviour = s->flags = s->pid = 0;
	s->error = 0;
	s->mm = NULL;
}

/* Detach a slot from its mm; counters are kept. Called and returns with mmnt_lock held, but
 * drops it around the removal, which may wait (forever, after the interval-tree leak). */
static void mmnt_unregister(struct mmnt_slot *s)
{
	struct mm_struct *mm = s->mm;

	if (s->state != MMNT_STATE_ACTIVE && s->state != MMNT_STATE_RELEASED)
		return;
	s->state = MMNT_STATE_REMOVING;
	mutex_unlock(&mmnt_lock);
	if (s->kind == MMNT_KIND_LIST)
		mmu_notifier_unregister(&s->mn, mm); /* drops the notifier core's mm grab */
	else
		mmu_interval_notifier_remove(&s->isub);
	mutex_lock(&mmnt_lock);
	s->mm = NULL;
	s->state = MMNT_STATE_UNREGISTERED;
}

static int mmnt_register(struct mmnt_register *req)
{
	struct mmnt_slot *s = NULL;
	int i, ret;

	if (req->kind != MMNT_KIND_LIST && req->kind != MMNT_KIND_INTERVAL)
		return -EINVAL;
	if (req->behaviour > MMNT_FAIL_ALWAYS)
		return -EINVAL;
	if (req->flags & ~(req->kind == MMNT_KIND_LIST ? MMNT_F_END_OP : MMNT_F_TWOPASS))
		return -EINVAL;
	if ((req->flags & MMNT_F_TWOPASS) && !MMNT_HAVE_TWOPASS)
		return -EOPNOTSUPP;
	if (req->error > 0 || req->error < -MAX_ERRNO)
		return -EINVAL;
	if (req->kind == MMNT_KIND_INTERVAL &&
	    (req->behaviour == MMNT_FAIL_ALWAYS || !req->length ||
	     req->start + req->length < req->start))
		return -EINVAL;
	if (!current->mm)
		return -EINVAL;

	for (i = 0; i < MMNT_SLOTS && !s; i++)
		if (mmnt_slots[i].state == MMNT_STATE_FREE)
			s = &mmnt_slots[i];
	for (i = 0; i < MMNT_SLOTS && !s; i++)
		if (mmnt_slots[i].state == MMNT_STATE_UNREGISTERED)
			s = &mmnt_slots[i];
	if (!s)
		return -ENOSPC;

	mmnt_zero(s);
	memset(&s->mn, 0, sizeof(s->mn));
	memset(&s->isub, 0, sizeof(s->isub));
	s->kind = req->kind;
	s->behaviour = req->behaviour;
	s->flags = req->flags;
	s->error = req->error ? req->error : -EAGAIN;
	s->pid = task_tgid_nr(current);
	s->mm = current->mm;
	/* Counted callbacks may run as soon as registration publishes the subscriber. */
	s->state = MMNT_STATE_ACTIVE;

	if (req->kind == MMNT_KIND_LIST) {
		s->mn.ops = mmnt_list_ops[req->behaviour][!!(req->flags & MMNT_F_END_OP)];
		ret = mmu_notifier_register(&s->mn, current->mm);
	} else {
		const struct mmu_interval_notifier_ops *ops =
			req->behaviour == MMNT_OK ? &mmnt_iops_ok : &mmnt_iops_false_nonblock;
#if MMNT_HAVE_TWOPASS
		if (req->flags & MMNT_F_TWOPASS)
			ops = req->behaviour == MMNT_OK ? &mmnt_iops_twopass_ok :
							  &mmnt_iops_twopass_false_nonblock;
#endif
		ret = mmu_interval_notifier_insert(&s->isub, current->mm, req->start, req->length, ops);
	}
	if (ret) {
		s->state = MMNT_STATE_FREE;
		s->mm = NULL;
		return ret;
	}
	req->slot = s - mmnt_slots;
	return 0;
}

static void mmnt_read(struct mmnt_slot *s, struct mmnt_counters *c)
{
	int i;

	c->state = READ_ONCE(s->state);
	c->kind = s->kind;
	c->behaviour = s->behaviour;
	c->flags = s->flags;
	c->pid = s->pid;
	c->starts_blockable = atomic64_read(&s->starts_blockable);
	c->starts_nonblock = atomic64_read(&s->starts_nonblock);
	c->ends_blockable = atomic64_read(&s->ends_blockable);
	c->ends_nonblock = atomic64_read(&s->ends_nonblock);
	c->fails_blockable = atomic64_read(&s->fails_blockable);
	c->fails_nonblock = atomic64_read(&s->fails_nonblock);
	c->releases = atomic64_read(&s->releases);
	c->inval_blockable = atomic64_read(&s->inval_blockable);
	c->inval_nonblock = atomic64_read(&s->inval_nonblock);
	c->inval_false = atomic64_read(&s->inval_false);
	c->last_seq = READ_ONCE(s->last_seq);
	c->last_start = READ_ONCE(s->last_start);
	c->last_end = READ_ONCE(s->last_end);
	c->last_event = READ_ONCE(s->last_event);
	c->last_flags = READ_ONCE(s->last_flags);
	for (i = 0; i < 8; i++)
		c->by_event[i] = atomic64_read(&s->by_event[i]);
	c->by_event_other = atomic64_read(&s->by_event[8]);
	c->tp_starts = atomic64_read(&s->tp_starts);
	c->tp_false = atomic64_read(&s->tp_false);
	c->tp_no_finish = atomic64_read(&s->tp_no_finish);
	c->tp_finishes = atomic64_read(&s->tp_finishes);
}

/* Frees every slot no task is stuck on (mmnt_lock held). */
static void mmnt_reset_all(void)
{
	int i;

	for (i = 0; i < MMNT_SLOTS; i++) {
		struct mmnt_slot *s = &mmnt_slots[i];

		if (s->state != MMNT_STATE_REMOVING && !atomic_read(&s->waiters))
			mmnt_unregister(s);
		if (s->state == MMNT_STATE_REMOVING || atomic_read(&s->waiters)) {
			/* Stuck for good: keep it, but count from zero like the others. */
			mmnt_zero_counters(s);
			continue;
		}
		mmnt_zero(s);
		s->state = MMNT_STATE_FREE;
	}
}

/* --- parking ----------------------------------------------------------- */

static long mmnt_park(const struct mmnt_park *p)
{
	s64 gen = atomic64_read(&mmnt_park_gen);
	unsigned long timeout = msecs_to_jiffies(p->timeout_ms);
	long ret;

#define MMNT_RELEASED (atomic64_read(&mmnt_park_gen) != gen)
	atomic_inc(&mmnt_parked);
	if (p->flags & MMNT_PARK_KILLABLE) {
		if (p->timeout_ms) {
			ret = wait_event_killable_timeout(mmnt_park_wq, MMNT_RELEASED, timeout);
			ret = ret < 0 ? -EINTR : ret == 0 ? -ETIMEDOUT : 0;
		} else {
			ret = wait_event_killable(mmnt_park_wq, MMNT_RELEASED) ? -EINTR : 0;
		}
	} else {
		/* TASK_IDLE: a SIGKILL (the OOM killer's) does not end the park. */
		if (p->timeout_ms) {
			ret = wait_event_idle_timeout(mmnt_park_wq, MMNT_RELEASED, timeout);
			ret = ret == 0 ? -ETIMEDOUT : 0;
		} else {
			wait_event_idle(mmnt_park_wq, MMNT_RELEASED);
			ret = 0;
		}
	}
	atomic_dec(&mmnt_parked);
#undef MMNT_RELEASED
	return ret;
}

/* --- ioctl ------------------------------------------------------------- */

static struct mmnt_slot *mmnt_slot_at(u32 idx)
{
	return idx < MMNT_SLOTS ? &mmnt_slots[idx] : NULL;
}

static long mmnt_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	long ret = 0;

	switch (cmd) {
	case MMNT_IOC_REGISTER: {
		struct mmnt_register req;

		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		mutex_lock(&mmnt_lock);
		ret = mmnt_register(&req);
		mutex_unlock(&mmnt_lock);
		if (!ret && copy_to_user(uarg, &req, sizeof(req)))
			ret = -EFAULT;
		return ret;
	}
	case MMNT_IOC_READ:
	case MMNT_IOC_READ_V1: {
		/* Readers built before the two-pass counters get the prefix they know. */
		size_t len = cmd == MMNT_IOC_READ ? sizeof(struct mmnt_counters) : MMNT_COUNTERS_V1_SIZE;
		struct mmnt_counters c;
		struct mmnt_slot *s;

		BUILD_BUG_ON(offsetof(struct mmnt_counters, tp_starts) != MMNT_COUNTERS_V1_SIZE);
		memset(&c, 0, sizeof(c));
		if (copy_from_user(&c, uarg, len))
			return -EFAULT;
		s = mmnt_slot_at(c.slot);
		if (!s)
			return -EINVAL;
		mutex_lock(&mmnt_lock);
		mmnt_read(s, &c);
		mutex_unlock(&mmnt_lock);
		return copy_to_user(uarg, &c, len) ? -EFAULT : 0;
	}
	case MMNT_IOC_FEATURES: {
		__u32 features = MMNT_HAVE_TWOPASS ? MMNT_FEAT_TWOPASS : 0;

		return copy_to_user(uarg, &features, sizeof(features)) ? -EFAULT : 0;
	}
	case MMNT_IOC_UNREGISTER: {
		struct mmnt_slot *s;
		u32 idx;

		if (get_user(idx, (u32 __user *)uarg))
			return -EFAULT;
		s = mmnt_slot_at(idx);
		if (!s)
			return -EINVAL;
		mutex_lock(&mmnt_lock);
		if (s->state == MMNT_STATE_FREE)
			ret = -ENOENT;
		else
			mmnt_unregister(s);
		mutex_unlock(&mmnt_lock);
		return ret;
	}
	case MMNT_IOC_RESET:
		mutex_lock(&mmnt_lock);
		mmnt_reset_all();
		mutex_unlock(&mmnt_lock);
		return 0;
	case MMNT_IOC_SEQ: {
		struct mmnt_seq q;
		struct mmnt_slot *s;

		if (copy_from_user(&q, uarg, sizeof(q)))
			return -EFAULT;
		s = mmnt_slot_at(q.slot);
		if (!s)
			return -EINVAL;
		mutex_lock(&mmnt_lock);
		if (s->kind != MMNT_KIND_INTERVAL || s->state != MMNT_STATE_ACTIVE)
			ret = -EINVAL;
		else
			atomic_inc(&s->waiters); /* keeps the slot registered without the lock */
		mutex_unlock(&mmnt_lock);
		if (ret)
			return ret;
		/* What a driver's fault path does; waits while the mm's interval tree is invalidating. */
		q.seq = mmu_interval_read_begin(&s->isub);
		spin_lock(&s->seq_lock);
		q.retry = mmu_interval_read_retry(&s->isub, q.check);
		spin_unlock(&s->seq_lock);
		atomic_dec(&s->waiters);
		if (!ret && copy_to_user(uarg, &q, sizeof(q)))
			ret = -EFAULT;
		return ret;
	}
	case MMNT_IOC_PARK: {
		struct mmnt_park p;

		if (copy_from_user(&p, uarg, sizeof(p)))
			return -EFAULT;
		if (p.flags & ~MMNT_PARK_KILLABLE)
			return -EINVAL;
		return mmnt_park(&p);
	}
	case MMNT_IOC_RELEASE_PARKED:
		atomic64_inc(&mmnt_park_gen);
		wake_up_all(&mmnt_park_wq);
		return 0;
	case MMNT_IOC_STATUS: {
		struct mmnt_status st = { 0 };
		int i;

		st.parked = atomic_read(&mmnt_parked);
		st.releases = atomic64_read(&mmnt_park_gen);
		mutex_lock(&mmnt_lock);
		for (i = 0; i < MMNT_SLOTS; i++)
			st.active += mmnt_slots[i].state != MMNT_STATE_FREE;
		mutex_unlock(&mmnt_lock);
		return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
	}
	default:
		return -ENOTTY;
	}
}

static const struct file_operations mmnt_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = mmnt_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice mmnt_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mmnotif_test",
	.fops = &mmnt_fops,
	.mode = 0600,
};

static int __init mmnt_init(void)
{
	int i;

	for (i = 0; i < MMNT_SLOTS; i++)
		spin_lock_init(&mmnt_slots[i].seq_lock);
	return misc_register(&mmnt_dev);
}

static void __exit mmnt_exit(void)
{
	misc_deregister(&mmnt_dev);
	mutex_lock(&mmnt_lock);
	mmnt_reset_all();
	mutex_unlock(&mmnt_lock);
}

module_init(mmnt_init);
module_exit(mmnt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("MMU notifier subscribers with chosen behaviour, for testing mmnotif-trace");
