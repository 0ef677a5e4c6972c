// SPDX-License-Identifier: GPL-2.0
/*
 * The OOM reaper's non-blocking invalidation, driven for real: a child in a
 * memory cgroup with a small memory.max registers test notifiers, parks one
 * thread inside the module (so its mm outlives the OOM kill and the reaper
 * runs before exit_mmap), and allocates until the memcg OOM killer kills it.
 * The module's counters and the kernel log are then checked.
 *
 * Usage: mmnotif-oom [scenario...]   (default: all but oom-itree-*)
 *   oom-baseline      one succeeding notifier with an end op
 *   oom-eagain        one notifier failing with -EAGAIN when non-blockable, no end op
 *   oom-eagain-endop  the same with an end op (kernel WARN expected)
 *   oom-rfc2019       a succeeding notifier with an end op plus a failing one without:
 *                     the succeeding one must get its compensating end, or, on a kernel built
 *                     without c2655835fd8c (KERNEL_LACKS), never get an end at all
 *   oom-interval      an interval notifier returning false when non-blockable
 *   oom-twopass       a two-pass interval notifier (7.2+) whose first pass always succeeds
 *   oom-itree-list    an interval notifier that always succeeds over the whole address space
 *                     plus a list notifier failing when non-blockable (no end op): the kernel
 *                     returns -EAGAIN without ending the interval tree (the interval-tree leak),
 *                     so mmu_interval_read_begin() and mmu_interval_notifier_remove() wait forever
 *   oom-itree-list-disjoint  the same with an interval no reaped range overlaps: only the
 *                     active-range count leaks, which still leaves removal waiting
 *   oom-itree-only    control: the interval notifier alone; nothing leaks, nothing waits
 *   oom-itree-list-mrelease  oom-itree-list reaped by process_mrelease(2) (5.15+) after a
 *                     SIGKILL instead of by the memcg OOM reaper
 *
 * The oom-itree-* scenarios leave tasks blocked in the kernel for good when the kernel leaks:
 * run them after everything that needs the module unloaded.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CG "/sys/fs/cgroup/mmnotif-oom"
#define CG_LIMIT "48M"
#define FAILED_NB "callback failed with -11 in non-blockable context"
#define WARN_START "__mmu_notifier_invalidate_range_start"
#define WAIT_REAPER_MS 30000
/* How long a reader or remover may take before it counts as stuck (removal of an interval
 * on an idle mm takes well under 100 ms even under TCG). */
#define STUCK_AFTER_MS 2000
/* Everything a process can map: the interval the leak scenarios watch. */
#define ALL_START 0x10000ULL
#define ALL_LENGTH ((1ULL << 47) - 0x1000ULL - ALL_START) /* up to x86-64's TASK_SIZE */
/* Below mmap_min_addr: never mapped, so no reaped range overlaps it. */
#define LOW_START 0x1000ULL
#define LOW_LENGTH 0x1000ULL

/* Or'ed into an interval slot's behaviour: register it with two-pass ops (MMNT_F_TWOPASS, 7.2+). */
#define TWOPASS 0x100

struct plan {
	const char *name;
	int nslots;
	int mrelease; /* kill and reap with process_mrelease instead of the memcg OOM reaper */
	/* interval slots watch [start, start + length); zero means the whole address space */
	struct { uint32_t kind, behaviour; int end_op; uint64_t start, length; } slot[2];
};

static const struct plan plans[] = {
	{ "oom-baseline", 1, 0, { { MMNT_KIND_LIST, MMNT_OK, 1, 0, 0 } } },
	{ "oom-eagain", 1, 0, { { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 0, 0, 0 } } },
	{ "oom-eagain-endop", 1, 0, { { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 1, 0, 0 } } },
	/* failing one first, so the succeeding one is at the list head and called first */
	{ "oom-rfc2019", 2, 0, { { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 0, 0, 0 }, { MMNT_KIND_LIST, MMNT_OK, 1, 0, 0 } } },
	{ "oom-interval", 1, 0, { { MMNT_KIND_INTERVAL, MMNT_FAIL_NONBLOCK, 0, 0, 0 } } },
	/* The 7.x reaper's non-blocking CLEAR through a first pass that queues a finish. */
	{ "oom-twopass", 1, 0, { { MMNT_KIND_INTERVAL, MMNT_OK | TWOPASS, 0, 0, 0 } } },
	/* the interval slot first: only the leak scenarios check for stuck tasks, on slot 0 */
	{ "oom-itree-list", 2, 0, { { MMNT_KIND_INTERVAL, MMNT_OK, 0, 0, 0 }, { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 0, 0, 0 } } },
	{ "oom-itree-list-disjoint", 2, 0,
	  { { MMNT_KIND_INTERVAL, MMNT_OK, 0, LOW_START, LOW_LENGTH }, { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 0, 0, 0 } } },
	{ "oom-itree-only", 1, 0, { { MMNT_KIND_INTERVAL, MMNT_OK, 0, 0, 0 } } },
	{ "oom-itree-list-mrelease", 2, 1,
	  { { MMNT_KIND_INTERVAL, MMNT_OK, 0, 0, 0 }, { MMNT_KIND_LIST, MMNT_FAIL_NONBLOCK, 0, 0, 0 } } },
};

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		die("write '%s' to %s", val, path);
	close(fd);
}

static void setup_cgroup(void)
{
	static int done;

	if (done)
		return;
	/* The root's subtree_control may already have +memory; writing it again is harmless. */
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	if (mkdir(CG, 0755) && errno != EEXIST)
		die("mkdir " CG);
	write_file(CG "/memory.max", CG_LIMIT);
	done = 1;
}

static int park_fd;

static void *parker(void *arg)
{
	struct mmnt_park p = { .timeout_ms = 60000, .flags = 0 };

	(void)arg;
	ioctl(park_fd, MMNT_IOC_PARK, &p);
	return NULL;
}

/* The child: join the cgroup, register, park a thread, allocate until killed. */
static void child(const struct plan *pl, int out)
{
	struct mmnt_status st;
	int slots[2];
	pthread_t t;
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(CG "/cgroup.procs", pid);
	park_fd = mmnt_open();
	for (int i = 0; i < pl->nslots; i++)
		slots[i] = pl->slot[i].behaviour & TWOPASS ?
				   reg_interval_twopass(park_fd, pl->slot[i].behaviour & ~TWOPASS, ALL_START, ALL_LENGTH) :
			   pl->slot[i].kind == MMNT_KIND_LIST ?
				   reg_list(park_fd, pl->slot[i].behaviour, pl->slot[i].end_op) :
			   pl->slot[i].length ?
				   reg_interval(park_fd, pl->slot[i].behaviour, pl->slot[i].start, pl->slot[i].length) :
				   reg_interval(park_fd, pl->slot[i].behaviour, ALL_START, ALL_LENGTH);
	if (pthread_create(&t, NULL, parker, NULL))
		_exit(4);
	for (int i = 0; i < 1000; i++) {
		if (ioctl(park_fd, MMNT_IOC_STATUS, &st))
			_exit(5);
		if (st.parked >= 1)
			break;
		sleep_ms(5);
	}
	if (write(out, slots, sizeof(slots)) != sizeof(slots))
		_exit(6);
	close(out);
	if (pl->mrelease)
		for (;;)
			pause(); /* until the parent's SIGKILL */
	/* Allocate and touch 1 MiB at a time until the memcg OOM killer ends this. */
	for (int i = 0; i < 1024; i++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			_exit(7);
		memset(p, i, 1 << 20);
	}
	_exit(8); /* never killed */
}

/* Wait for the OOM reaper to have finished with the victim (the only OOM kill
 * since this scenario's log marker): it either reaped it or gave up. The
 * messages name the victim task, not necessarily the child's pid, so they are
 * matched without it. */
static int wait_reaper(void)
{
	const char *reaped = "oom_reaper: reaped process ", *gave_up = "oom_reaper: unable to reap pid:";

	for (int ms = 0; ms < WAIT_REAPER_MS; ms += 100) {
		if (log_count(reaped))
			return 1;
		if (log_count(gave_up))
			return 2;
		sleep_ms(100);
	}
	return 0;
}

/* A child that makes one module call on an interval slot, as a driver's fault path
 * (MMNT_IOC_SEQ: mmu_interval_read_begin) or its teardown (MMNT_IOC_UNREGISTER:
 * mmu_interval_notifier_remove) would, and exits when the call returns. */
static pid_t spawn_call(unsigned long req, int slot)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* It may never return: it must not hold the suite's output pipe open. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int fd = mmnt_open();
		struct mmnt_seq q = { .slot = (uint32_t)slot };
		uint32_t idx = (uint32_t)slot;

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(9);

		_exit(ioctl(fd, req, req == MMNT_IOC_SEQ ? (void *)&q : (void *)&idx) ? 1 : 0);
	}
	return pid;
}

static void read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
}

/* Waits up to STUCK_AFTER_MS for pid to exit. Returns 0 when it did (with status 0), 1 when it
 * is still blocked in the kernel function fn, 2 otherwise; `where` says what was seen. A blocked
 * task cannot be killed (it waits uninterruptibly) and is left behind. */
static int stuck_in(pid_t pid, const char *fn, char *where, size_t len)
{
	char path[64], wchan[128], stat[512], stack[4096];
	const char *state;
	int status;

	for (int ms = 0; ms < STUCK_AFTER_MS; ms += 50) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			snprintf(where, len, "returned (status %#x)", status);
			return status ? 2 : 0;
		}
		sleep_ms(50);
	}
	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	read_text(path, wchan, sizeof(wchan));
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	read_text(path, stat, sizeof(stat));
	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	read_text(path, stack, sizeof(stack));
	state = strrchr(stat, ')');
	snprintf(where, len, "state %c, wchan %s", state && state[1] ? state[2] : '?', wchan[0] ? wchan : "?");
	return state && state[2] == 'D' && (strstr(wchan, fn) || strstr(stack, fn)) ? 1 : 2;
}

static int run_plan(int fd, const struct plan *pl)
{
	struct mmnt_counters c[2];
	int pipefd[2], slots[2], status, reaper, warns, failed_msgs;
	pid_t pid;

	scenario_begin(pl->name);
	if ((pl->slot[0].behaviour & TWOPASS) && !twopass_available(fd)) {
		printf("  this kernel has no two-pass interval notifiers (7.2+)\n");
		return scenario_end();
	}
	mmnt_reset(fd);
	setup_cgroup();
	kmsg_mark();
	if (pipe(pipefd))
		die("pipe");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(pipefd[0]);
		child(pl, pipefd[1]);
	}
	close(pipefd[1]);
	if (read(pipefd[0], slots, sizeof(slots)) != sizeof(slots)) {
		waitpid(pid, &status, 0);
		check(0, "child failed before parking (status %#x)", status);
		close(pipefd[0]);
		return scenario_end();
	}
	close(pipefd[0]);

	if (pl->mrelease) {
		/* What a userspace OOM killer does: kill, then reap at once from its own context. */
		int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

		if (pidfd < 0 || kill(pid, SIGKILL))
			die("pidfd_open/kill %d", pid);
		reaper = syscall(SYS_process_mrelease, pidfd, 0) == 0 ? 1 : errno == EAGAIN ? 2 : 0;
		printf("  process_mrelease: %s\n", reaper == 1 ? "reaped" : strerror(errno));
		close(pidfd);
	} else {
		reaper = wait_reaper();
	}
	/* Let the parked thread go; the process can now finish exiting. */
	if (ioctl(fd, MMNT_IOC_RELEASE_PARKED))
		die("release parked");
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");

	for (int i = 0; i < pl->nslots; i++) {
		read_slot(fd, slots[i], &c[i]);
		print_slot(i ? "second" : "first", &c[i]);
	}
	warns = WARNS_IN_START();
	failed_msgs = log_count(FAILED_NB);
	printf("  reaper %s, WARNs in %s: %d, '%s': %d\n",
	       reaper == 1 ? "reaped" : reaper == 2 ? "gave up" : "never reported", WARN_START, warns,
	       FAILED_NB, failed_msgs);

	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x, want killed by SIGKILL",
	      status);
	check(pl->mrelease || log_count("Memory cgroup out of memory: Killed process") >= 1, "no memcg OOM kill in the log");
	check(reaper != 0, "the OOM reaper did not report within %d ms", WAIT_REAPER_MS);

	if (!strcmp(pl->name, "oom-baseline")) {
		check(reaper == 1, "the reaper should have reaped the process");
		check(c[0].starts_nonblock >= 1, "no non-blockable start: the reaper did not run before exit_mmap");
		check(c[0].ends_nonblock == c[0].starts_nonblock, "non-blockable ends %llu != starts %llu",
		      (unsigned long long)c[0].ends_nonblock, (unsigned long long)c[0].starts_nonblock);
		check(c[0].fails_nonblock == 0 && c[0].fails_blockable == 0, "failures counted");
		check(failed_msgs == 0 && warns == 0, "unexpected callback failure or WARN in the log");
	} else if (!strcmp(pl->name, "oom-eagain")) {
		check(reaper == 2, "the reaper should have given up");
		check(c[0].fails_nonblock >= 1 && c[0].fails_nonblock == c[0].starts_nonblock,
		      "non-blockable starts %llu, failures %llu: every one should fail",
		      (unsigned long long)c[0].starts_nonblock, (unsigned long long)c[0].fails_nonblock);
		check(c[0].ends_nonblock == 0 && c[0].ends_blockable == 0, "ends on a slot without an end op");
		check(failed_msgs == (int)c[0].fails_nonblock, "want one '%s' per failure in the log", FAILED_NB);
		check(warns == 0, "unexpected WARN in %s", WARN_START);
	} else if (!strcmp(pl->name, "oom-eagain-endop")) {
		check(reaper == 2, "the reaper should have given up");
		check(c[0].fails_nonblock >= 1, "no non-blockable failure");
		check(c[0].ends_nonblock == c[0].starts_nonblock,
		      "a failing subscriber with an end op gets a compensating end per start: ends %llu starts %llu",
		      (unsigned long long)c[0].ends_nonblock, (unsigned long long)c[0].starts_nonblock);
		check(failed_msgs == (int)c[0].fails_nonblock, "want one '%s' per failure in the log", FAILED_NB);
		check(warns == (int)c[0].fails_nonblock,
		      "want one WARN in %s per failure (a failing subscriber has an end op)", WARN_START);
	} else if (!strcmp(pl->name, "oom-rfc2019")) {
		const struct mmnt_counters *bad = &c[0], *good = &c[1];

		check(reaper == 2, "the reaper should have given up");
		check(bad->fails_nonblock >= 1, "the failing subscriber did not fail");
		check(good->starts_nonblock >= 1, "the succeeding subscriber saw no non-blockable start");
		check(good->fails_nonblock == 0, "the succeeding subscriber failed");
		check(good->starts_nonblock >= bad->fails_nonblock,
		      "every failed range should have started the succeeding subscriber too");
		if (kernel_lacks("c2655835fd8c")) {
			/* The 2019 RFC's bug: the failed start returns without ending anyone. */
			printf("  the kernel skipped %llu end(s) of the succeeding subscriber (no compensating ends)\n",
			       (unsigned long long)good->starts_nonblock);
			check(good->ends_nonblock == 0,
			      "the succeeding subscriber got %llu ends on a kernel without compensating ends",
			      (unsigned long long)good->ends_nonblock);
		} else {
			check(good->ends_nonblock == good->starts_nonblock,
			      "the succeeding subscriber's ends %llu != starts %llu: compensating ends missing",
			      (unsigned long long)good->ends_nonblock, (unsigned long long)good->starts_nonblock);
		}
		check(bad->ends_nonblock == 0, "the subscriber without an end op got ends");
		check(failed_msgs == (int)bad->fails_nonblock, "want one '%s' per failure in the log", FAILED_NB);
		check(warns == 0, "unexpected WARN in %s", WARN_START);
	} else if (!strcmp(pl->name, "oom-interval")) {
		check(reaper == 2, "the reaper should have given up");
		check(c[0].inval_nonblock >= 1 && c[0].inval_false == c[0].inval_nonblock,
		      "non-blockable invalidates %llu, false %llu: every one should return false",
		      (unsigned long long)c[0].inval_nonblock, (unsigned long long)c[0].inval_false);
		check(failed_msgs == 0 && warns == 0, "an interval false is not a list failure: no message, no WARN");
	} else if (!strcmp(pl->name, "oom-twopass")) {
		printf("  two-pass: starts %llu false %llu no-finish %llu finishes %llu\n",
		       (unsigned long long)c[0].tp_starts, (unsigned long long)c[0].tp_false,
		       (unsigned long long)c[0].tp_no_finish, (unsigned long long)c[0].tp_finishes);
		check(reaper == 1, "the reaper should have reaped the process");
		/* 7.x's reaper invalidates with CLEAR; exit_mmap unmaps with UNMAP, its release RELEASE. */
		check(c[0].by_event[EV_CLEAR] >= 1, "no CLEAR first pass: the reaper did not run before exit_mmap");
		check(c[0].tp_starts >= 1 && c[0].tp_finishes == c[0].tp_starts - c[0].tp_no_finish,
		      "first passes %llu (without a finish %llu), finishes %llu: want one finish per queued one",
		      (unsigned long long)c[0].tp_starts, (unsigned long long)c[0].tp_no_finish,
		      (unsigned long long)c[0].tp_finishes);
		check(c[0].tp_false == 0 && c[0].inval_blockable == 0 && c[0].inval_nonblock == 0,
		      "false first passes or ->invalidate calls");
		check(failed_msgs == 0 && warns == 0, "unexpected callback failure or WARN in the log");
	} else if (!strncmp(pl->name, "oom-itree-", 10)) {
		/* The damage, from the kernel itself: does a fault path's read_begin, then a
		 * removal, of the interval on the dead mm return? */
		const struct mmnt_counters *iv = &c[0], *list = &c[1];
		int leak = pl->nslots == 2, disjoint = pl->slot[0].length != 0;
		char rwhere[160], mwhere[160];
		pid_t reader = spawn_call(MMNT_IOC_SEQ, slots[0]);
		int r = stuck_in(reader, "mmu_interval_read_begin", rwhere, sizeof(rwhere));
		pid_t remover = spawn_call(MMNT_IOC_UNREGISTER, slots[0]);
		int m = stuck_in(remover, "mmu_interval_notifier_remove", mwhere, sizeof(mwhere));

		printf("  reader pid %d: %s; remover pid %d: %s\n", reader, rwhere, remover, mwhere);
		if (leak) {
			printf("  leaked active ranges: %llu (one per failed non-blockable start)\n",
			       (unsigned long long)list->fails_nonblock);
			check(reaper == 2, "the reaper should have given up");
			check(list->fails_nonblock >= 1, "the list subscriber never failed non-blockably");
			check(failed_msgs == (int)list->fails_nonblock, "want one '%s' per failure in the log", FAILED_NB);
			check(warns == 0, "unexpected WARN in %s: the leak is silent", WARN_START);
			if (disjoint)
				check(iv->inval_nonblock == 0, "a reaped range overlapped the disjoint interval");
			else
				/* Every failed range invalidated the interval first. 5.10's exit_mmap reaps
				 * an OOM victim once more after the list is gone: more interval calls there. */
				check(iv->inval_nonblock >= list->fails_nonblock,
				      "the interval succeeded %llu times, the list subscriber failed %llu: want at least as many",
				      (unsigned long long)iv->inval_nonblock, (unsigned long long)list->fails_nonblock);
			check(r == 1, "a reader should wait in mmu_interval_read_begin for good: %s", rwhere);
			check(m == 1, "a remover should wait in mmu_interval_notifier_remove for good: %s", mwhere);
		} else {
			check(reaper == 1, "the reaper should have reaped the process");
			check(iv->inval_nonblock >= 1, "the reaper never invalidated the interval");
			check(failed_msgs == 0 && warns == 0, "unexpected callback failure or WARN in the log");
			check(r == 0 && m == 0, "nothing should wait on a clean mm: reader %s, remover %s", rwhere, mwhere);
		}
	}
	for (int i = 0; i < pl->nslots; i++)
		check(pl->slot[i].kind != MMNT_KIND_LIST || (c[i].state == MMNT_STATE_RELEASED && c[i].releases == 1),
		      "slot %d: state %u releases %llu, want released once by exit_mmap", i, c[i].state,
		      (unsigned long long)c[i].releases);
	mmnt_reset(fd);
	return scenario_end();
}

int main(int argc, char **argv)
{
	int fd, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = mmnt_open();
	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		/* The leak scenarios leave stuck tasks behind: only when named. */
		int want = argc < 2 && strncmp(plans[i].name, "oom-itree-", 10);

		for (int j = 1; j < argc; j++)
			want |= !strcmp(argv[j], plans[i].name);
		if (want)
			failed += run_plan(fd, &plans[i]);
	}
	return failed ? 1 : 0;
}
