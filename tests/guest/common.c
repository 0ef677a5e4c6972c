// SPDX-License-Identifier: GPL-2.0
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <time.h>
#include <unistd.h>

static const char *cur_name;
static int cur_failed;
static char marker[128];

void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "MMNOTIF-TEST: FAIL %s: ", cur_name ? cur_name : "setup");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fprintf(stdout, " (errno %d %s)\n", errno, strerror(errno));
	fflush(stdout);
	exit(2);
}

long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int mmnt_open(void)
{
	int fd = open(MMNT_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open %s", MMNT_DEVICE);
	return fd;
}

int mmnt_reset(int fd)
{
	/* Under the tracer, keep what the slots counted before they are cleared: tracer.sh
	 * compares the sum of these dumps with the recording. The slots are unregistered
	 * first, so the counts are final: dumping allocates and writes, and in a process
	 * that has just forked each of those writes is a COW fault the subscribers (and the
	 * tracer) still see if they are registered. */
	const char *path = getenv("MMNOTIF_COUNTERS");

	if (path) {
		struct mmnt_counters c;
		uint32_t slot;
		FILE *f;

		for (slot = 0; slot < MMNT_SLOTS; slot++) {
			read_slot(fd, (int)slot, &c);
			if ((c.state == MMNT_STATE_ACTIVE || c.state == MMNT_STATE_RELEASED) &&
			    ioctl(fd, MMNT_IOC_UNREGISTER, &slot))
				die("unregister slot %u", slot);
		}
		f = fopen(path, "a");

		if (!f)
			die("open %s", path);
		dump_slots(fd, f);
		fclose(f);
	}
	if (ioctl(fd, MMNT_IOC_RESET))
		die("MMNT_IOC_RESET");
	return 0;
}

/* Under the tracer (tracer.sh sets MMNOTIF_PROBED to the file its stderr goes to), a new
 * subscriber's callbacks are probed a moment after it registers: wait for the tracer to say
 * so, or the scenario's first invalidations would go unseen. */
void wait_probed(const char *callback)
{
	const char *path = getenv("MMNOTIF_PROBED");
	char needle[128], buf[65536];

	if (!path)
		return;
	snprintf(needle, sizeof(needle), "probing %s ", callback);
	for (int i = 0; i < 2000; i++) {
		int f = open(path, O_RDONLY);
		ssize_t n = f >= 0 ? read(f, buf, sizeof(buf) - 1) : -1;

		if (f >= 0)
			close(f);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, needle))
				return;
		}
		sleep_ms(10);
	}
	die("the tracer did not report probing %s within 20 s (see %s)", callback, path);
}

static const char *const list_start_callbacks[] = {
	[MMNT_OK] = "mmnt_start_ok",
	[MMNT_FAIL_NONBLOCK] = "mmnt_start_eagain_nonblock",
	[MMNT_FAIL_ALWAYS] = "mmnt_start_buggy",
};

int reg_list(int fd, uint32_t behaviour, int end_op)
{
	struct mmnt_register r = { .kind = MMNT_KIND_LIST, .behaviour = behaviour,
				   .flags = end_op ? MMNT_F_END_OP : 0 };

	if (ioctl(fd, MMNT_IOC_REGISTER, &r))
		die("register list notifier (behaviour %u, end op %d)", behaviour, end_op);
	if (behaviour <= MMNT_FAIL_ALWAYS)
		wait_probed(list_start_callbacks[behaviour]);
	if (end_op)
		wait_probed("mmnt_end");
	return (int)r.slot;
}

int reg_interval_unprobed(int fd, uint32_t behaviour, uint64_t start, uint64_t length)
{
	struct mmnt_register r = { .kind = MMNT_KIND_INTERVAL, .behaviour = behaviour,
				   .start = start, .length = length };

	if (ioctl(fd, MMNT_IOC_REGISTER, &r))
		die("register interval notifier [%#llx, +%#llx)", (unsigned long long)start,
		    (unsigned long long)length);
	return (int)r.slot;
}

int reg_interval(int fd, uint32_t behaviour, uint64_t start, uint64_t length)
{
	int slot = reg_interval_unprobed(fd, behaviour, start, length);

	wait_probed(behaviour == MMNT_OK ? "mmnt_invalidate_ok" : "mmnt_invalidate_false_nonblock");
	return slot;
}

int reg_interval_twopass(int fd, uint32_t behaviour, uint64_t start, uint64_t length)
{
	struct mmnt_register r = { .kind = MMNT_KIND_INTERVAL, .behaviour = behaviour,
				   .flags = MMNT_F_TWOPASS, .start = start, .length = length };

	if (ioctl(fd, MMNT_IOC_REGISTER, &r))
		die("register two-pass interval notifier [%#llx, +%#llx)", (unsigned long long)start,
		    (unsigned long long)length);
	/* The finish is probed before the start (see the tracer's callbacks.rs): the start's
	 * probe line is the last one. */
	wait_probed("mmnt_invalidate_finish");
	wait_probed(behaviour == MMNT_OK ? "mmnt_invalidate_start_ok" :
					   "mmnt_invalidate_start_false_nonblock");
	return (int)r.slot;
}

int twopass_available(int fd)
{
	uint32_t features = 0;

	return !ioctl(fd, MMNT_IOC_FEATURES, &features) && (features & MMNT_FEAT_TWOPASS);
}

void tracer_gate(void)
{
	const char *gate = getenv("MMNOTIF_GATE");
	char path[256];
	int f;

	if (!gate)
		return;
	snprintf(path, sizeof(path), "%s.ready", gate);
	f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (f < 0)
		die("create %s", path);
	close(f);
	snprintf(path, sizeof(path), "%s.go", gate);
	for (int i = 0; i < 6000; i++) {
		if (!access(path, F_OK))
			return;
		sleep_ms(10);
	}
	die("%s did not appear within 60 s", path);
}

void read_slot(int fd, int slot, struct mmnt_counters *c)
{
	memset(c, 0, sizeof(*c));
	c->slot = (uint32_t)slot;
	if (ioctl(fd, MMNT_IOC_READ, c))
		die("read slot %d", slot);
}

void dump_slots(int fd, FILE *out)
{
	struct mmnt_counters c;

	for (int slot = 0; slot < MMNT_SLOTS; slot++) {
		read_slot(fd, slot, &c);
		if (c.state == MMNT_STATE_FREE)
			continue;
		fprintf(out, "{\"slot\":%u,\"state\":%u,\"kind\":%u,\"behaviour\":%u,\"flags\":%u,\"pid\":%u,"
		       "\"starts_blockable\":%llu,\"starts_nonblock\":%llu,\"ends_blockable\":%llu,"
		       "\"ends_nonblock\":%llu,\"fails_blockable\":%llu,\"fails_nonblock\":%llu,"
		       "\"inval_blockable\":%llu,\"inval_nonblock\":%llu,\"inval_false\":%llu,"
		       "\"tp_starts\":%llu,\"tp_false\":%llu,\"tp_no_finish\":%llu,\"tp_finishes\":%llu}\n",
		       c.slot, c.state, c.kind, c.behaviour, c.flags, c.pid,
		       (unsigned long long)c.starts_blockable, (unsigned long long)c.starts_nonblock,
		       (unsigned long long)c.ends_blockable, (unsigned long long)c.ends_nonblock,
		       (unsigned long long)c.fails_blockable, (unsigned long long)c.fails_nonblock,
		       (unsigned long long)c.inval_blockable, (unsigned long long)c.inval_nonblock,
		       (unsigned long long)c.inval_false, (unsigned long long)c.tp_starts,
		       (unsigned long long)c.tp_false, (unsigned long long)c.tp_no_finish,
		       (unsigned long long)c.tp_finishes);
	}
}

void print_slot(const char *label, const struct mmnt_counters *c)
{
	printf("  %s slot %u state %u: starts b%llu/nb%llu ends b%llu/nb%llu fails b%llu/nb%llu "
	       "releases %llu inval b%llu/nb%llu false %llu seq %llu "
	       "ev[unmap %llu clear %llu prot_vma %llu prot_page %llu] last [%#llx,%#llx) ev %u fl %u\n",
	       label, c->slot, c->state, (unsigned long long)c->starts_blockable,
	       (unsigned long long)c->starts_nonblock, (unsigned long long)c->ends_blockable,
	       (unsigned long long)c->ends_nonblock, (unsigned long long)c->fails_blockable,
	       (unsigned long long)c->fails_nonblock, (unsigned long long)c->releases,
	       (unsigned long long)c->inval_blockable, (unsigned long long)c->inval_nonblock,
	       (unsigned long long)c->inval_false, (unsigned long long)c->last_seq,
	       (unsigned long long)c->by_event[0], (unsigned long long)c->by_event[1],
	       (unsigned long long)c->by_event[2], (unsigned long long)c->by_event[3],
	       (unsigned long long)c->last_start, (unsigned long long)c->last_end, c->last_event,
	       c->last_flags);
}

void scenario_begin(const char *name)
{
	cur_name = name;
	cur_failed = 0;
	printf("--- %s\n", name);
	fflush(stdout);
}

int check(int cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return 1;
	cur_failed++;
	printf("  check failed: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 0;
}

int scenario_end(void)
{
	if (cur_failed)
		printf("MMNOTIF-TEST: FAIL %s (%d checks failed)\n", cur_name, cur_failed);
	else
		printf("MMNOTIF-TEST: PASS %s\n", cur_name);
	fflush(stdout);
	cur_name = NULL;
	return cur_failed != 0;
}

void kmsg_mark(void)
{
	struct timespec ts;
	int fd;

	char line[160];
	int n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(marker, sizeof(marker), "mmnotif-test: begin %s %ld.%09ld", cur_name, (long)ts.tv_sec,
		 ts.tv_nsec);
	/* With its newline the record is complete, so readable at once. (No stdio here:
	 * /dev/kmsg refuses the lseek(SEEK_CUR) a FILE would make.) */
	n = snprintf(line, sizeof(line), "%s\n", marker);
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, line, n) != n)
		die("write /dev/kmsg");
	close(fd);
}

#define LOG_BUF (16 << 20)
static char log_buf[LOG_BUF + 1];

const char *log_since_mark(void)
{
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log_buf, LOG_BUF);
	const char *p, *last = NULL;

	if (n < 0)
		die("klogctl(READ_ALL)");
	log_buf[n] = 0;
	for (p = log_buf; (p = strstr(p, marker)); p++)
		last = p;
	if (!last) {
		check(0, "kernel log marker '%s' not found (log overwritten?)", marker);
		return "";
	}
	return last;
}

int log_count_lines(const char *a, const char *b)
{
	const char *p = log_since_mark(), *hit;
	int n = 0;

	while ((hit = strstr(p, a))) {
		const char *bol = hit, *eol = strchr(hit, '\n');
		size_t len;

		while (bol > p && bol[-1] != '\n')
			bol--;
		len = (eol ? eol : hit + strlen(hit)) - bol;
		if (memmem(bol, len, b, strlen(b)))
			n++;
		p = eol ? eol + 1 : hit + strlen(hit);
	}
	return n;
}

int log_count(const char *needle)
{
	const char *p = log_since_mark();
	int n = 0;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	return n;
}

int kernel_lacks(const char *commit)
{
	const char *list = getenv("KERNEL_LACKS");
	size_t n = strlen(commit);

	for (const char *p = list; p && (p = strstr(p, commit)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return 1;
	return 0;
}
