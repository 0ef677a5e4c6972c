/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the guest test programs: the module's device, kernel log
 * markers, and PASS/FAIL bookkeeping. Every scenario prints exactly one line
 * "MMNOTIF-TEST: PASS <name>" or "MMNOTIF-TEST: FAIL <name>". */
#ifndef GUEST_COMMON_H
#define GUEST_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "mmnotif_test.h"

/* enum mmu_notifier_event values */
enum { EV_UNMAP = 0, EV_CLEAR, EV_PROTECTION_VMA, EV_PROTECTION_PAGE };

int mmnt_open(void);
int mmnt_reset(int fd);
/* Register on the caller's mm; returns the slot, exits the program on error. */
int reg_list(int fd, uint32_t behaviour, int end_op);
int reg_interval(int fd, uint32_t behaviour, uint64_t start, uint64_t length);
/* The same without waiting for the tracer to probe the callback: for registering before the
 * tracer starts (see tracer_gate). */
int reg_interval_unprobed(int fd, uint32_t behaviour, uint64_t start, uint64_t length);
/* A two-pass interval notifier (7.2+); waits until the tracer probes both callbacks. */
int reg_interval_twopass(int fd, uint32_t behaviour, uint64_t start, uint64_t length);
/* Whether the module (and so the kernel) offers two-pass interval notifiers. */
int twopass_available(int fd);
/* Under the tracer (MMNOTIF_PROBED set), wait until it reports probing this callback. */
void wait_probed(const char *callback);
/* For a scenario that sets up before the tracer starts (tracer.sh sets MMNOTIF_GATE): create
 * <gate>.ready, then wait for <gate>.go, which tracer.sh creates once the tracer is attached.
 * Does nothing without MMNOTIF_GATE. */
void tracer_gate(void);
void read_slot(int fd, int slot, struct mmnt_counters *c);
void print_slot(const char *label, const struct mmnt_counters *c);
/* One JSON object per used slot (counters survive the registering process). */
void dump_slots(int fd, FILE *out);

/* Scenario bookkeeping. */
void scenario_begin(const char *name);
/* Records a failed check when cond is false; returns cond. */
int check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the PASS/FAIL line; returns 1 on failure. */
int scenario_end(void);

/* Kernel log: write a marker for the current scenario, and return the log text
 * written after the last marker (static buffer, NUL-terminated). */
void kmsg_mark(void);
const char *log_since_mark(void);
/* Occurrences of needle in the log since the marker. */
int log_count(const char *needle);
/* Lines in the log since the marker that contain both a and b. */
int log_count_lines(const char *a, const char *b);
/* Kernel WARNs raised in __mmu_notifier_invalidate_range_start since the marker. */
#define WARNS_IN_START() log_count_lines("WARNING: ", " __mmu_notifier_invalidate_range_start")

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
long page_size(void);
void sleep_ms(long ms);

/* Whether the kernel was built without the upstream fix `commit` (KERNEL_LACKS, init.sh). */
int kernel_lacks(const char *commit);

#endif
