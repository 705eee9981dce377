/* SPDX-License-Identifier: MIT */
/*
 * unmovable MODE SMALL_MB BIG_MB: keeps SMALL_MB MiB of memory uzswap cannot move out of
 * the process, then writes BIG_MB MiB twice (two areas, each written and read back) and
 * prints a checksum, or MISMATCH and exit 1. MODE says how the small part is held:
 *   ro     written, then made read-only (mprotect PROT_READ)
 *   mlock  written and locked (mlock)
 *   uring  registered as io_uring fixed buffers (the kernel pins them); plain memory
 *          when io_uring is not available
 *   readv  read by another process with process_vm_readv (a child, which checks it; with
 *          UNMOVABLE_EXEC set, a program of its own that uzswap does not manage)
 *   writev written by another process with process_vm_writev (the same)
 * Its output is the same natively and under uzswap run.
 */
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096u

static uint64_t word_of(uint64_t salt, size_t page, size_t i)
{
	return ((uint64_t)page * 0x9e3779b97f4a7c15ull ^ (uint64_t)i) + salt;
}

static void fill(uint64_t *m, size_t bytes, uint64_t salt)
{
	for (size_t w = 0; w < bytes / 8; w += 8)
		m[w] = word_of(salt, w / (PAGE / 8), w % (PAGE / 8));
}

static int check(const uint64_t *m, size_t bytes, uint64_t salt, uint64_t *sum)
{
	for (size_t w = 0; w < bytes / 8; w += 8) {
		if (m[w] != word_of(salt, w / (PAGE / 8), w % (PAGE / 8))) {
			printf("MISMATCH salt %llu word %zu\n", (unsigned long long)salt, w);
			return -1;
		}
		*sum += m[w];
	}
	return 0;
}

static void *map(size_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return m;
}

/* Register the buffer with io_uring (pinned by the kernel while the ring lives). */
static int uring_pin(void *m, size_t bytes)
{
	struct io_uring_params p;
	struct iovec iov[64];
	size_t chunk = bytes / 64;
	int fd;

	memset(&p, 0, sizeof(p));
	fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 64; i++)
		iov[i] = (struct iovec){ (char *)m + (size_t)i * chunk, chunk };
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, iov, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read (or write) bytes at m in process pid through process_vm_readv/writev, 1 MiB at a
 * time, checking what is read; exits 0 when all went through. */
static void peer(pid_t pid, void *m, size_t bytes, int write)
{
	size_t chunk = 1u << 20;
	uint64_t *buf = malloc(chunk);

	for (size_t off = 0; buf && off < bytes; off += chunk) {
		struct iovec l = { buf, chunk }, r = { (char *)m + off, chunk };
		ssize_t n;

		if (write)
			for (size_t w = 0; w < chunk / 8; w += 8)
				buf[w] = word_of(7, (off + w * 8) / PAGE, w % (PAGE / 8));
		n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0)
			  : process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (n != (ssize_t)chunk)
			_exit(3);
		if (!write)
			for (size_t w = 0; w < chunk / 8; w += 8)
				if (buf[w] != word_of(5, (off + w * 8) / PAGE, w % (PAGE / 8)))
					_exit(4);
	}
	_exit(buf ? 0 : 5);
}

/* Another process reads (or writes) the small area through process_vm_readv/writev, as a
 * debugger or a profiler would: a child, or with UNMOVABLE_EXEC set a program of its own
 * that uzswap does not manage (its agent is not preloaded into it). */
static int remote_access(void *m, size_t bytes, int write)
{
	pid_t parent = getpid(), c = fork();
	int st;

	if (c < 0)
		return -1;
	if (c == 0 && getenv("UNMOVABLE_EXEC")) {
		char a[32], l[32], w[2] = { (char)('0' + write), 0 }, pid[16];

		unsetenv("LD_PRELOAD");
		snprintf(pid, sizeof(pid), "%d", (int)parent);
		snprintf(a, sizeof(a), "%lx", (unsigned long)(uintptr_t)m);
		snprintf(l, sizeof(l), "%zu", bytes);
		execl("/proc/self/exe", "unmovable", "peer", pid, a, l, w, (char *)NULL);
		_exit(6);
	}
	if (c == 0)
		peer(parent, m, bytes, write);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "ro";
	size_t small = (argc > 2 ? strtoul(argv[2], NULL, 10) : 2) << 20;
	size_t big = (argc > 3 ? strtoul(argv[3], NULL, 10) : 160) << 20;
	uint64_t *s = map(small), sum = 0, salt = 5;
	int ok = 0;

	if (!strcmp(mode, "peer") && argc > 5)
		peer((pid_t)atoi(argv[2]), (void *)(uintptr_t)strtoul(argv[3], NULL, 16),
		     strtoul(argv[4], NULL, 10), atoi(argv[5]));
	fill(s, small, 5);
	if (!strcmp(mode, "ro")) {
		ok = mprotect(s, small, PROT_READ);
	} else if (!strcmp(mode, "mlock")) {
		ok = mlock(s, small);
	} else if (!strcmp(mode, "uring")) {
		uring_pin(s, small); /* without io_uring the area is plain memory */
	} else if (!strcmp(mode, "readv") || !strcmp(mode, "writev")) {
		salt = mode[0] == 'w' ? 7 : 5;
		ok = remote_access(s, small, mode[0] == 'w');
	}
	if (ok) {
		printf("%s failed\n", mode);
		return 2;
	}
	for (int round = 0; round < 2; round++) {
		uint64_t *b = map(big);

		fill(b, big, (uint64_t)round);
		if (check(b, big, (uint64_t)round, &sum) || check(s, small, salt, &sum))
			return 1;
	}
	if (check(s, small, salt, &sum))
		return 1;
	printf("%s %zu MiB held, 2 x %zu MiB, sum %016llx\n", mode, small >> 20, big >> 20,
	       (unsigned long long)sum);
	return 0;
}
