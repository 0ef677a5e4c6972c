// SPDX-License-Identifier: GPL-2.0
/* The guest benchmark's worst case (`cargo xtask bench --guest`, tests/guest/bench.sh): with one
 * list notifier (with an end op) and one interval notifier over the loop's page registered on
 * this mm, zap one page with MADV_DONTNEED and fault it back in, ITERATIONS times. Every
 * iteration is one invalidate_range_start/end pair, one start and one end callback of the list
 * subscriber, and one interval invalidate.
 *
 * The subscribers are registered before the tracer starts (MMNOTIF_GATE, see tracer_gate) so
 * that registration, and the tracer's start, stay out of the timed loop.
 *
 * Prints one line: "MMNOTIF-BENCH-LOOP ns_per_op=<f> elapsed_ns=<n> iterations=<n>".
 * Usage: mmnotif-bench-loop ITERATIONS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "common.h"

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	volatile char *page;
	unsigned long long iterations;
	uint64_t t0, elapsed;
	char *end;
	long psz = page_size();
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s ITERATIONS\n", argv[0]);
		return 2;
	}
	iterations = strtoull(argv[1], &end, 10);
	if (*end || !iterations)
		die("ITERATIONS: want a positive number, got %s", argv[1]);
	page = mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		die("mmap");
	page[0] = 1;
	fd = mmnt_open();
	mmnt_reset(fd);
	reg_list(fd, MMNT_OK, 1);
	reg_interval_unprobed(fd, MMNT_OK, (uint64_t)(uintptr_t)page, (uint64_t)psz);
	tracer_gate();

	t0 = monotonic_ns();
	for (unsigned long long i = 0; i < iterations; i++) {
		if (madvise((void *)page, (size_t)psz, MADV_DONTNEED))
			die("madvise(MADV_DONTNEED)");
		page[0] = 1;
	}
	elapsed = monotonic_ns() - t0;

	/* Unregister here, not at exit: the 16 slots are shared by every run of the benchmark. */
	mmnt_reset(fd);
	printf("MMNOTIF-BENCH-LOOP ns_per_op=%.1f elapsed_ns=%llu iterations=%llu\n",
	       (double)elapsed / (double)iterations, (unsigned long long)elapsed, iterations);
	return 0;
}
