// SPDX-License-Identifier: GPL-2.0
/*
 * Blockable invalidations on the program's own mm, checked against the
 * module's per-slot counters: list notifiers (with and without an end op)
 * under madvise, mprotect, mremap, munmap and fork; counters surviving the
 * registering process; an interval notifier's sequence numbers; and a buggy
 * subscriber failing in blockable context; and, last, slots left registered
 * on a dead mm for the module unload to clean up.
 *
 * Usage: mmnotif-basic [scenario...]   (default: all but leave-registered)
 */
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 16
#define WARN_START "__mmu_notifier_invalidate_range_start"

static long pg;
static int fd;

static char *map_touched(size_t npages)
{
	char *p = mmap(NULL, npages * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %zu pages", npages);
	memset(p, 0x5a, npages * pg);
	return p;
}

static uint64_t u(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

#define D(after, before, field) ((long long)((after).field - (before).field))

/* The end-op slot must have seen exactly one end per start, all blockable, no failures. */
static void check_paired(const char *label, const struct mmnt_counters *c)
{
	check(c->ends_blockable == c->starts_blockable, "%s: ends_blockable %llu != starts_blockable %llu",
	      label, (unsigned long long)c->ends_blockable, (unsigned long long)c->starts_blockable);
	check(c->starts_nonblock == 0 && c->ends_nonblock == 0, "%s: non-blockable calls in a blockable test",
	      label);
	check(c->fails_blockable == 0 && c->fails_nonblock == 0, "%s: failures counted", label);
}

static void check_no_end(const char *label, const struct mmnt_counters *c)
{
	check(c->ends_blockable == 0 && c->ends_nonblock == 0, "%s: a slot without an end op got ends", label);
	check(c->fails_blockable == 0 && c->fails_nonblock == 0, "%s: failures counted", label);
}

static int list_ops(void)
{
	struct mmnt_counters a0, a1, b0, b1;
	int a, b, failed = 0;
	char *p, *q, *dst;

	mmnt_reset(fd);
	a = reg_list(fd, MMNT_OK, 1);
	b = reg_list(fd, MMNT_OK, 0);
	p = map_touched(NPAGES);

	scenario_begin("list-madvise");
	read_slot(fd, a, &a0);
	read_slot(fd, b, &b0);
	if (madvise(p + 4 * pg, 4 * pg, MADV_DONTNEED))
		die("madvise");
	read_slot(fd, a, &a1);
	read_slot(fd, b, &b1);
	print_slot("end-op", &a1);
	print_slot("no-end", &b1);
	check(D(a1, a0, by_event[EV_CLEAR]) == 1, "end-op slot: CLEAR starts +%lld, want +1",
	      D(a1, a0, by_event[EV_CLEAR]));
	check(D(b1, b0, by_event[EV_CLEAR]) == 1, "no-end slot: CLEAR starts +%lld, want +1",
	      D(b1, b0, by_event[EV_CLEAR]));
	check(D(a1, a0, starts_blockable) == 1 && D(a1, a0, ends_blockable) == 1,
	      "end-op slot: starts +%lld ends +%lld, want +1/+1", D(a1, a0, starts_blockable),
	      D(a1, a0, ends_blockable));
	check(a1.last_start == u(p + 4 * pg) && a1.last_end == u(p + 8 * pg),
	      "end-op slot: last range [%#llx,%#llx), want [%#llx,%#llx)",
	      (unsigned long long)a1.last_start, (unsigned long long)a1.last_end,
	      (unsigned long long)u(p + 4 * pg), (unsigned long long)u(p + 8 * pg));
	check(a1.last_event == EV_CLEAR && (a1.last_flags & 1), "end-op slot: last event %u flags %u, want CLEAR, blockable",
	      a1.last_event, a1.last_flags);
	check_paired("end-op", &a1);
	check_no_end("no-end", &b1);
	failed += scenario_end();

	scenario_begin("list-mprotect");
	memset(p, 1, NPAGES * pg);
	read_slot(fd, a, &a0);
	read_slot(fd, b, &b0);
	if (mprotect(p, NPAGES * pg, PROT_READ))
		die("mprotect");
	read_slot(fd, a, &a1);
	read_slot(fd, b, &b1);
	print_slot("end-op", &a1);
	check(D(a1, a0, by_event[EV_PROTECTION_VMA]) >= 1, "end-op slot: PROTECTION_VMA starts +%lld, want >= 1",
	      D(a1, a0, by_event[EV_PROTECTION_VMA]));
	check(D(b1, b0, by_event[EV_PROTECTION_VMA]) == D(a1, a0, by_event[EV_PROTECTION_VMA]),
	      "both slots must see the same invalidations");
	check(a1.last_start >= u(p) && a1.last_end <= u(p + NPAGES * pg) && a1.last_start < a1.last_end,
	      "end-op slot: last range [%#llx,%#llx) outside the mapping", (unsigned long long)a1.last_start,
	      (unsigned long long)a1.last_end);
	check_paired("end-op", &a1);
	check_no_end("no-end", &b1);
	if (mprotect(p, NPAGES * pg, PROT_READ | PROT_WRITE))
		die("mprotect back");
	memset(p, 2, NPAGES * pg);
	failed += scenario_end();

	scenario_begin("list-mremap");
	dst = mmap(NULL, NPAGES * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED)
		die("mmap destination");
	read_slot(fd, a, &a0);
	read_slot(fd, b, &b0);
	q = mremap(p, NPAGES * pg, NPAGES * pg, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (q != dst)
		die("mremap");
	read_slot(fd, a, &a1);
	read_slot(fd, b, &b1);
	print_slot("end-op", &a1);
	check(D(a1, a0, by_event[EV_UNMAP]) >= 1, "end-op slot: UNMAP starts +%lld, want >= 1",
	      D(a1, a0, by_event[EV_UNMAP]));
	check(D(b1, b0, starts_blockable) == D(a1, a0, starts_blockable), "both slots must see the same invalidations");
	check(q[0] == 2 && q[NPAGES * pg - 1] == 2, "moved pages lost their content");
	check_paired("end-op", &a1);
	check_no_end("no-end", &b1);
	failed += scenario_end();

	scenario_begin("list-munmap");
	read_slot(fd, a, &a0);
	if (munmap(q + 8 * pg, 8 * pg))
		die("munmap");
	read_slot(fd, a, &a1);
	read_slot(fd, b, &b1);
	print_slot("end-op", &a1);
	check(D(a1, a0, by_event[EV_UNMAP]) >= 1, "end-op slot: UNMAP starts +%lld, want >= 1",
	      D(a1, a0, by_event[EV_UNMAP]));
	check(a1.last_event == EV_UNMAP && a1.last_start <= u(q + 8 * pg) && a1.last_end >= u(q + 16 * pg),
	      "end-op slot: last range [%#llx,%#llx) event %u does not cover the unmapped [%#llx,%#llx)",
	      (unsigned long long)a1.last_start, (unsigned long long)a1.last_end, a1.last_event,
	      (unsigned long long)u(q + 8 * pg), (unsigned long long)u(q + 16 * pg));
	check_paired("end-op", &a1);
	check_no_end("no-end", &b1);
	failed += scenario_end();

	scenario_begin("list-fork");
	memset(q, 3, 8 * pg);
	read_slot(fd, a, &a0);
	read_slot(fd, b, &b0);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(0);
	if (waitpid(pid, NULL, 0) != pid)
		die("waitpid");
	read_slot(fd, a, &a1);
	read_slot(fd, b, &b1);
	print_slot("end-op", &a1);
	print_slot("no-end", &b1);
	check(D(a1, a0, by_event[EV_PROTECTION_PAGE]) >= 1, "end-op slot: PROTECTION_PAGE starts +%lld, want >= 1",
	      D(a1, a0, by_event[EV_PROTECTION_PAGE]));
	check(D(b1, b0, by_event[EV_PROTECTION_PAGE]) == D(a1, a0, by_event[EV_PROTECTION_PAGE]),
	      "both slots must see the same fork invalidations");
	check(a1.state == MMNT_STATE_ACTIVE && a1.releases == 0, "the child's exit released the parent's notifier");
	check_paired("end-op", &a1);
	check_no_end("no-end", &b1);
	failed += scenario_end();

	munmap(q, 8 * pg);
	mmnt_reset(fd);
	return failed;
}

/* A child registers, invalidates and exits; its slot must outlive it. */
static int list_release(void)
{
	struct mmnt_counters c, c2;
	int pipefd[2], slot = -1, status;
	pid_t pid;

	scenario_begin("list-release");
	mmnt_reset(fd);
	if (pipe(pipefd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int s = reg_list(fd, MMNT_OK, 1);
		char *p = map_touched(4);

		madvise(p, 4 * pg, MADV_DONTNEED);
		if (write(pipefd[1], &s, sizeof(s)) != sizeof(s))
			_exit(3);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &slot, sizeof(slot)) != sizeof(slot))
		die("read slot from child");
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	read_slot(fd, slot, &c);
	print_slot("child", &c);
	check(c.state == MMNT_STATE_RELEASED, "state %u, want RELEASED", c.state);
	check(c.releases == 1, "releases %llu, want 1", (unsigned long long)c.releases);
	check(c.pid == (uint32_t)pid, "pid %u, want %d", c.pid, pid);
	check(c.by_event[EV_CLEAR] >= 1, "the child's madvise was not counted");
	check(c.starts_blockable == c.ends_blockable, "starts %llu != ends %llu",
	      (unsigned long long)c.starts_blockable, (unsigned long long)c.ends_blockable);
	if (ioctl(fd, MMNT_IOC_UNREGISTER, &slot))
		die("unregister");
	read_slot(fd, slot, &c2);
	check(c2.state == MMNT_STATE_UNREGISTERED, "state %u after unregister", c2.state);
	check(c2.starts_blockable == c.starts_blockable && c2.releases == c.releases,
	      "counters changed by unregister");
	mmnt_reset(fd);
	return scenario_end();
}

static int interval_seq(void)
{
	struct mmnt_counters c0, c1;
	struct mmnt_seq s0 = { 0 }, s1 = { 0 }, s2 = { 0 };
	char *p;
	int slot;

	scenario_begin("interval-seq");
	mmnt_reset(fd);
	p = map_touched(NPAGES);
	slot = reg_interval(fd, MMNT_OK, u(p + 4 * pg), 4 * pg);
	s0.slot = s1.slot = s2.slot = slot;
	if (ioctl(fd, MMNT_IOC_SEQ, &s0))
		die("seq");
	read_slot(fd, slot, &c0);

	/* Outside the interval: no invalidate, the sequence stays valid. */
	if (madvise(p + 10 * pg, 2 * pg, MADV_DONTNEED))
		die("madvise outside");
	s1.check = s0.seq;
	if (ioctl(fd, MMNT_IOC_SEQ, &s1))
		die("seq");
	read_slot(fd, slot, &c1);
	check(D(c1, c0, inval_blockable) == 0, "invalidate outside the interval: +%lld",
	      D(c1, c0, inval_blockable));
	check(!s1.retry && s1.seq == s0.seq, "sequence moved without an overlapping invalidation");

	/* Overlapping: one blockable invalidate, the old sequence must retry. */
	if (madvise(p + 5 * pg, 1 * pg, MADV_DONTNEED))
		die("madvise inside");
	s2.check = s0.seq;
	if (ioctl(fd, MMNT_IOC_SEQ, &s2))
		die("seq");
	read_slot(fd, slot, &c1);
	print_slot("interval", &c1);
	check(D(c1, c0, inval_blockable) == 1, "invalidates +%lld, want 1", D(c1, c0, inval_blockable));
	check(c1.inval_nonblock == 0 && c1.inval_false == 0, "non-blockable or false invalidates");
	check(s2.retry == 1, "read_retry with the old sequence did not ask for a retry");
	check(s2.seq != s0.seq && s2.seq == c1.last_seq && (s2.seq & 1),
	      "sequence %#llx (old %#llx, last set %#llx): want a new odd value equal to the last set",
	      (unsigned long long)s2.seq, (unsigned long long)s0.seq, (unsigned long long)c1.last_seq);
	check(c1.last_start == u(p + 5 * pg) && c1.last_end == u(p + 6 * pg) && c1.last_event == EV_CLEAR,
	      "last range [%#llx,%#llx) event %u", (unsigned long long)c1.last_start,
	      (unsigned long long)c1.last_end, c1.last_event);

	/* Unmapping the whole mapping invalidates the interval once more. */
	read_slot(fd, slot, &c0);
	munmap(p, NPAGES * pg);
	read_slot(fd, slot, &c1);
	check(D(c1, c0, by_event[EV_UNMAP]) >= 1, "munmap did not invalidate the interval");
	mmnt_reset(fd);
	return scenario_end();
}

/* A two-pass interval notifier (7.2+): every first pass returns true and queues a finish, and
 * the kernel runs each finish before __start returns, so starts and finishes match one to
 * one once the invalidations are over. Not run where the module has no two-pass support. */
static int interval_twopass(void)
{
	struct mmnt_counters c0, c1;
	struct mmnt_seq s0 = { 0 }, s1 = { 0 };
	char *p;
	int slot;

	scenario_begin("interval-twopass");
	if (!twopass_available(fd)) {
		printf("  this kernel has no two-pass interval notifiers (7.2+)\n");
		return scenario_end();
	}
	mmnt_reset(fd);
	p = map_touched(NPAGES);
	slot = reg_interval_twopass(fd, MMNT_OK, u(p + 4 * pg), 4 * pg);
	s0.slot = s1.slot = slot;
	if (ioctl(fd, MMNT_IOC_SEQ, &s0))
		die("seq");
	read_slot(fd, slot, &c0);

	/* Overlapping, three times: three first passes, three finishes. */
	for (int i = 0; i < 3; i++)
		if (madvise(p + (4 + i) * pg, pg, MADV_DONTNEED))
			die("madvise inside");
	/* Outside: none. */
	if (madvise(p + 10 * pg, 2 * pg, MADV_DONTNEED))
		die("madvise outside");
	s1.check = s0.seq;
	if (ioctl(fd, MMNT_IOC_SEQ, &s1))
		die("seq");
	read_slot(fd, slot, &c1);
	print_slot("twopass", &c1);
	printf("  two-pass: starts %llu false %llu no-finish %llu finishes %llu\n",
	       (unsigned long long)c1.tp_starts, (unsigned long long)c1.tp_false,
	       (unsigned long long)c1.tp_no_finish, (unsigned long long)c1.tp_finishes);
	check(D(c1, c0, tp_starts) == 3, "first passes +%lld, want 3", D(c1, c0, tp_starts));
	check(D(c1, c0, tp_finishes) == 3, "finishes +%lld, want 3", D(c1, c0, tp_finishes));
	check(c1.tp_false == 0 && c1.tp_no_finish == 0, "false returns %llu, starts without finish %llu",
	      (unsigned long long)c1.tp_false, (unsigned long long)c1.tp_no_finish);
	check(c1.inval_blockable == 0 && c1.inval_nonblock == 0, "->invalidate ran beside ->invalidate_start");
	check(s1.retry == 1 && (s1.seq & 1) && s1.seq == c1.last_seq,
	      "sequence %#llx (retry %u, last set by a finish %#llx): want the finish's odd value",
	      (unsigned long long)s1.seq, s1.retry, (unsigned long long)c1.last_seq);

	/* Unmapping the whole mapping runs one more pair. */
	read_slot(fd, slot, &c0);
	munmap(p, NPAGES * pg);
	read_slot(fd, slot, &c1);
	check(D(c1, c0, tp_starts) >= 1 && c1.tp_starts == c1.tp_finishes,
	      "after munmap: starts %llu, finishes %llu", (unsigned long long)c1.tp_starts,
	      (unsigned long long)c1.tp_finishes);
	mmnt_reset(fd);
	return scenario_end();
}

/* Registered before the tracer starts (tracer.sh holds the tracer back until tracer_gate): the
 * tracer can only know this subscriber from its startup inventory, so it must find it in the
 * interval tree and probe its callback from there, or the invalidate below goes unseen. */
static int interval_preregistered(void)
{
	struct mmnt_counters c0, c1;
	char *p;
	int slot;

	scenario_begin("interval-preregistered");
	mmnt_reset(fd);
	p = map_touched(NPAGES);
	slot = reg_interval_unprobed(fd, MMNT_OK, u(p + 2 * pg), 4 * pg);
	tracer_gate();
	wait_probed("mmnt_invalidate_ok");
	read_slot(fd, slot, &c0);
	if (madvise(p + 3 * pg, pg, MADV_DONTNEED))
		die("madvise inside");
	read_slot(fd, slot, &c1);
	print_slot("interval", &c1);
	check(D(c1, c0, inval_blockable) == 1, "invalidates +%lld, want 1", D(c1, c0, inval_blockable));
	check(c1.last_start == u(p + 3 * pg) && c1.last_end == u(p + 4 * pg),
	      "last range [%#llx,%#llx)", (unsigned long long)c1.last_start, (unsigned long long)c1.last_end);
	munmap(p, NPAGES * pg);
	mmnt_reset(fd);
	return scenario_end();
}

/* A subscriber that fails in blockable context: the kernel WARNs, hands every
 * end-op subscriber a compensating end, and the caller then ends the range
 * again, so the failing subscriber (it has an end op) sees two ends. */
static int list_buggy_blockable(void)
{
	struct mmnt_counters c;
	char *p;
	int slot;

	scenario_begin("list-buggy-blockable");
	mmnt_reset(fd);
	p = map_touched(4);
	kmsg_mark();
	slot = reg_list(fd, MMNT_FAIL_ALWAYS, 1);
	if (madvise(p, 4 * pg, MADV_DONTNEED))
		die("madvise");
	if (ioctl(fd, MMNT_IOC_UNREGISTER, &slot))
		die("unregister");
	read_slot(fd, slot, &c);
	print_slot("buggy", &c);
	check(c.starts_blockable == 1 && c.fails_blockable == 1, "starts %llu fails %llu, want 1/1",
	      (unsigned long long)c.starts_blockable, (unsigned long long)c.fails_blockable);
	check(c.ends_blockable == 2, "ends %llu, want 2 (compensating end + the caller's end)",
	      (unsigned long long)c.ends_blockable);
	check(log_count("callback failed with -11 in blockable context") == 1,
	      "kernel log: want one 'callback failed with -11 in blockable context'");
	/* one for failing in blockable context, one for failing with an end op */
	check(WARNS_IN_START() == 2, "kernel log: %d WARNs in " WARN_START ", want 2", WARNS_IN_START());
	munmap(p, 4 * pg);
	mmnt_reset(fd);
	return scenario_end();
}

/* A child registers a list and an interval notifier and exits without
 * unregistering: the slots stay attached to its dead mm. Run last; /init then
 * unloads the module, whose exit must unregister both safely. */
static int leave_registered(void)
{
	struct mmnt_counters l, i;
	int pipefd[2], slots[2], status;
	pid_t pid;

	scenario_begin("leave-registered");
	mmnt_reset(fd);
	if (pipe(pipefd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char *p = map_touched(4);

		slots[0] = reg_list(fd, MMNT_OK, 1);
		slots[1] = reg_interval(fd, MMNT_OK, u(p), 4 * pg);
		if (write(pipefd[1], slots, sizeof(slots)) != sizeof(slots))
			_exit(3);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], slots, sizeof(slots)) != sizeof(slots))
		die("read slots from child");
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	read_slot(fd, slots[0], &l);
	read_slot(fd, slots[1], &i);
	check(l.state == MMNT_STATE_RELEASED && l.releases == 1, "list slot: state %u releases %llu",
	      l.state, (unsigned long long)l.releases);
	check(i.state == MMNT_STATE_ACTIVE && i.by_event[EV_UNMAP] >= 1,
	      "interval slot: state %u, exit_mmap's unmap not seen", i.state);
	return scenario_end();
}

int main(int argc, char **argv)
{
	int failed = 0, all = argc < 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pg = page_size();
	fd = mmnt_open();
	for (int i = 0; i < (all ? 1 : argc - 1); i++) {
		const char *want = all ? NULL : argv[i + 1];
#define RUN(name, fn) if (!want || !strcmp(want, name)) failed += fn()
		RUN("list-ops", list_ops);
		RUN("list-release", list_release);
		RUN("interval-seq", interval_seq);
		RUN("interval-preregistered", interval_preregistered);
		RUN("interval-twopass", interval_twopass);
		RUN("list-buggy-blockable", list_buggy_blockable);
		/* only when named: suite.sh runs it after everything else */
		if (want && !strcmp(want, "leave-registered"))
			failed += leave_registered();
	}
	return failed ? 1 : 0;
}
