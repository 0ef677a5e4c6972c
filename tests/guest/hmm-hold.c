// SPDX-License-Identifier: GPL-2.0
/* Registers one interval notifier of the kernel's HMM test module (test_hmm) on this process,
 * then holds it until killed: a tracer started afterwards finds dmirror_interval_invalidate in
 * its inventory and probes it from its first event, so its count covers the whole window that
 * ftrace counts (tests/guest/hmm.sh). Usage: mmnotif-hmm-hold /dev/hmm_dmirrorN.
 *
 * The ioctl is test_hmm's user ABI (lib/test_hmm_uapi.h in the kernel tree): HMM_DMIRROR_READ
 * mirrors a range of the caller's memory, which inserts the interval notifier. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct dmirror_cmd {
	uint64_t addr;
	uint64_t ptr;
	uint64_t npages;
	uint64_t cpages;
	uint64_t faults;
};

#define DMIRROR_READ _IOWR('H', 0x00, struct dmirror_cmd)

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	struct dmirror_cmd cmd;
	char *mem, *mirror;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mirror = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || mem == MAP_FAILED || mirror == MAP_FAILED) {
		perror(argv[1]);
		return 1;
	}
	memset(mem, 0x5a, page);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)mem;
	cmd.ptr = (uintptr_t)mirror;
	cmd.npages = 1;
	if (ioctl(fd, DMIRROR_READ, &cmd) || mirror[0] != 0x5a) {
		perror("HMM_DMIRROR_READ");
		return 1;
	}
	printf("hmm-hold: mirroring one page through %s\n", argv[1]);
	fflush(stdout);
	for (;;)
		pause();
}
