/* SPDX-License-Identifier: MIT */
/*
 * peek MB: writes MB MiB with a pattern, then has a debugger-like process of its own (not
 * managed by uzswap: its agent is not preloaded) attach with ptrace and read the first
 * word of every page with PTRACE_PEEKDATA and through /proc/PID/mem, as gdb's
 * `x/2xg ADDR` does, checking each against the pattern; then it detaches, and the program
 * reads everything back, writes MB MiB more and prints a checksum (MISMATCH and exit 1 at
 * a wrong word, "tracer failed" and exit 1 when the tracer could not read). An evicted
 * page the tracer could not read is retried for up to 10 s. Its output is the same natively and under uzswap run.
 * peek hold MB: see hold().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static uint64_t word_of(uint64_t salt, size_t page)
{
	return (uint64_t)page * 0x9e3779b97f4a7c15ull + salt;
}

static uint64_t *fill(size_t bytes, uint64_t salt)
{
	uint64_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		exit(2);
	for (size_t p = 0; p < bytes / PAGE; p++)
		for (size_t i = 0; i < PAGE / 8; i += 64)
			m[p * (PAGE / 8) + i] = word_of(salt, p) ^ i;
	return m;
}

static int check(const uint64_t *m, size_t bytes, uint64_t salt, uint64_t *sum)
{
	for (size_t p = 0; p < bytes / PAGE; p++)
		for (size_t i = 0; i < PAGE / 8; i += 64) {
			if (m[p * (PAGE / 8) + i] != (word_of(salt, p) ^ i)) {
				printf("MISMATCH page %zu\n", p);
				return -1;
			}
			*sum += m[p * (PAGE / 8) + i];
		}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One word of the tracee, by PEEKDATA or /proc/PID/mem; retried while it errs, up to the
 * deadline. */
static int peek(pid_t pid, int mem, uintptr_t addr, int by_mem, uint64_t *v, double until)
{
	for (;;) {
		long w;

		errno = 0;
		if (by_mem) {
			if (pread(mem, v, 8, (off_t)addr) == 8)
				return 0;
		} else if ((w = ptrace(PTRACE_PEEKDATA, pid, (void *)addr, NULL)) != -1 || !errno) {
			*v = (uint64_t)w;
			return 0;
		}
		if (now_s() > until)
			return -1;
		usleep(1000);
	}
}

static int tracer(pid_t pid, uintptr_t base, size_t bytes)
{
	char path[64];
	double start, worst = 0, until;
	int st, mem, bad = 0;

	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0 || waitpid(pid, &st, __WALL) != pid)
		return 3;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((mem = open(path, O_RDONLY)) < 0)
		return 4;
	until = now_s() + 10;
	for (size_t p = 0; p < bytes / PAGE && !bad; p++) {
		uint64_t v;

		start = now_s();
		if (peek(pid, mem, base + p * PAGE, (int)(p & 1), &v, until) < 0 ||
		    v != word_of(1, p))
			bad = 1;
		if (now_s() - start > worst)
			worst = now_s() - start;
	}
	if (bad) /* only then: the output is compared with a run without uzswap */
		fprintf(stderr, "peek: page unreadable after %.3f s\n", worst);
	close(mem);
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return bad;
}

/* For a debugger run from outside: print the pid, the address of the first page (the oldest: the
 * first evicted) and its first word, then wait until stdin closes (at most a minute)
 * and check everything. */
static int hold(size_t bytes)
{
	uint64_t *m = fill(bytes, 1), sum = 0;
	char c;

	printf("%d %lx %016llx\n", (int)getpid(), (unsigned long)(uintptr_t)m,
	       (unsigned long long)word_of(1, 0)); /* not read from m: that would bring it in */
	fflush(stdout);
	alarm(60);
	while (read(0, &c, 1) > 0) {
	}
	return check(m, bytes, 1, &sum) ? 1 : 0;
}

int main(int argc, char **argv)
{
	size_t bytes = (argc > 1 ? strtoul(argv[1], NULL, 10) : 36) << 20;
	uint64_t *m, sum = 0;
	pid_t c;
	int st;

	if (argc > 4 && !strcmp(argv[1], "tracer"))
		return tracer((pid_t)atoi(argv[2]), (uintptr_t)strtoul(argv[3], NULL, 16),
			      strtoul(argv[4], NULL, 10));
	if (argc > 2 && !strcmp(argv[1], "hold"))
		return hold(strtoul(argv[2], NULL, 10) << 20);
	m = fill(bytes, 1);
	if ((c = fork()) == 0) {
		char pid[16], addr[32], len[32];

		unsetenv("LD_PRELOAD");
		snprintf(pid, sizeof(pid), "%d", (int)getppid());
		snprintf(addr, sizeof(addr), "%lx", (unsigned long)(uintptr_t)m);
		snprintf(len, sizeof(len), "%zu", bytes);
		execl("/proc/self/exe", "peek", "tracer", pid, addr, len, (char *)NULL);
		_exit(5);
	}
	if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) {
		printf("tracer failed\n");
		return 1;
	}
	if (check(m, bytes, 1, &sum))
		return 1;
	m = fill(bytes, 2);
	if (check(m, bytes, 2, &sum))
		return 1;
	printf("%zu MiB read by a tracer, sum %016llx\n", bytes >> 20, (unsigned long long)sum);
	return 0;
}
