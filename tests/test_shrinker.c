/* SPDX-License-Identifier: MIT */
/* The shrinker under real memory pressure: with a PSI trigger (the kernel's pressure
 * stall information), a real stall on memory makes the engine write back cold pages. The
 * stall is made by two child processes in a small cgroup v1 memory group (no swap for
 * it), each reading a file-backed mapping four times the group's limit over and over:
 * every pass reclaims and refaults the file's pages, time the kernel counts as a memory
 * stall (on a quiet machine here, about 45% of the time; the trigger wants 15%).
 * Needs root, the cgroup v1 memory controller and PSI; skips (exit 77) otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "uzswap.h"

#define PAGE 4096u
#define NR_PAGES 512u
#define MEMCG_ROOT "/sys/fs/cgroup/memory"
#define LIMIT_BYTES (8u << 20)
#define THRASH_BYTES (4u * LIMIT_BYTES)
#define NR_CHILDREN 2
#define THRASH_DIR "/var/tmp"
#define TMPFS_MAGIC 0x01021994
#define CHILD_SECONDS 20 /* the child ends itself even if the parent dies */
#define WAIT_SECONDS 15

static char memcg[512];
static struct uzs *uzs;

static int skip(const char *why)
{
	printf("skip - %s\n", why);
	return 77;
}

static int write_file(const char *dir, const char *name, const char *value)
{
	char path[640];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -EIO;
}

/* A memory group below ours (so that our own limits still hold), LIMIT_BYTES of memory
 * and, where swap accounting exists, not a byte more with swap: the stall comes from
 * reclaiming and refaulting file pages, not from swapping. */
static int make_memcg(void)
{
	char line[512], own[384] = "";
	FILE *f = fopen("/proc/self/cgroup", "re");
	char limit[32];

	while (f && fgets(line, sizeof(line), f)) {
		char *c = strstr(line, ":memory:");
		if (c) {
			c[strcspn(c, "\n")] = '\0';
			snprintf(own, sizeof(own), "%s", strcmp(c + 8, "/") ? c + 8 : "");
		}
	}
	if (f)
		fclose(f);
	snprintf(memcg, sizeof(memcg), MEMCG_ROOT "%s/uzs-test-shrinker-%d", own, (int)getpid());
	if (mkdir(memcg, 0700))
		return -errno;
	snprintf(limit, sizeof(limit), "%u", LIMIT_BYTES);
	if (write_file(memcg, "memory.limit_in_bytes", limit))
		return -EIO;
	write_file(memcg, "memory.memsw.limit_in_bytes", limit); /* absent without swap accounting */
	return 0;
}

/* A child: into the group, then read the mapping page by page until killed. */
static void thrash(void)
{
	char pid[16], path[] = THRASH_DIR "/uzs-test-shrinker-XXXXXX";
	volatile unsigned char sum = 0;
	int fd;

	alarm(CHILD_SECONDS);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write_file(memcg, "cgroup.procs", pid) || (fd = mkstemp(path)) < 0)
		_exit(2);
	unlink(path);
	unsigned char *p = ftruncate(fd, THRASH_BYTES) ? MAP_FAILED
			 : mmap(NULL, THRASH_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(2);
	for (size_t i = 0; i < THRASH_BYTES; i += PAGE)
		p[i] = 1; /* real blocks, so that reading them back is real I/O */
	fsync(fd);
	for (;;)
		for (size_t i = 0; i < THRASH_BYTES; i += PAGE)
			sum += p[i];
}

static uint64_t psi_some_total_us(void)
{
	char line[256];
	unsigned long long total = 0;
	FILE *f = fopen("/proc/pressure/memory", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "some avg10=%*f avg60=%*f avg300=%*f total=%llu", &total) == 1)
			break;
	if (f)
		fclose(f);
	return total;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void text_page(unsigned char *p, unsigned seed)
{
	for (unsigned i = 0; i < PAGE; i++)
		p[i] = (unsigned char)("uzswap page "[(i + seed) % 12] + (i / 512 == seed % 8));
	memcpy(p, &seed, sizeof(seed));
}

static struct uzs *open_shrinking(void)
{
	struct uzs_config c;
	struct uzs *uzs = NULL;

	uzs_config_init(&c);
	c.compressor = "lz4";
	c.shrinker_enabled = true;
	c.swapfile_bytes = 16 << 20;
	return uzs_open(&c, &uzs) ? NULL : uzs;
}

/* Pages stored, then a real stall: the trigger fires, the shrinker writes back some of
 * them, and every run was the trigger's (the MemAvailable poll is not in use, and this
 * machine's MemAvailable would not say low anyway). */
static void real_stall_makes_the_psi_shrinker_write_back(void)
{
	unsigned char page[PAGE];
	uzs_slot_t slots[NR_PAGES];
	struct uzs_stats st;
	uint64_t some0 = psi_some_total_us();
	double t0 = now_s();
	pid_t child[NR_CHILDREN];
	int n;

	for (unsigned i = 0; i < NR_PAGES; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slots[i]), 0);
	}
	for (n = 0; n < NR_CHILDREN; n++) {
		child[n] = fork();
		CHECK(child[n] >= 0);
		if (child[n] < 0)
			break;
		if (child[n] == 0)
			thrash();
	}
	do {
		usleep(100000);
		uzs_get_stats(uzs, &st);
	} while ((!st.shrinker_psi_runs || !st.written_back_pages) && now_s() - t0 < WAIT_SECONDS);
	while (n--) {
		kill(child[n], SIGKILL);
		waitpid(child[n], NULL, 0);
	}
	fprintf(stderr, "  %.1f s: memory stall (some) %" PRIu64 " ms, shrinker runs %" PRIu64
		" (psi %" PRIu64 "), written back %" PRIu64 " of %u\n", now_s() - t0,
		(psi_some_total_us() - some0) / 1000, st.shrinker_runs, st.shrinker_psi_runs,
		st.written_back_pages, NR_PAGES);
	CHECK(psi_some_total_us() > some0);
	CHECK_EQ(st.shrinker_psi, 1);
	CHECK(st.shrinker_psi_runs > 0);
	CHECK_EQ(st.shrinker_runs, st.shrinker_psi_runs);
	CHECK(st.written_back_pages > 0 && st.written_back_pages < NR_PAGES);
	for (unsigned i = 0; i < NR_PAGES; i++) {
		unsigned char out[PAGE];

		text_page(page, i);
		CHECK_EQ(uzs_swap_in(uzs, slots[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, page, PAGE));
	}
}

static int unusable(void)
{
	struct statfs fs;

	if (geteuid() != 0)
		return skip("real memory pressure needs root (a memory cgroup for the child)");
	if (access(MEMCG_ROOT "/memory.limit_in_bytes", W_OK))
		return skip("no cgroup v1 memory controller at " MEMCG_ROOT);
	if (access("/proc/pressure/memory", R_OK))
		return skip("no PSI (/proc/pressure/memory): the kernel lacks it or psi=0");
	if (statfs(THRASH_DIR, &fs) || fs.f_type == TMPFS_MAGIC)
		return skip(THRASH_DIR " is tmpfs: its pages would need swap to be reclaimed");
	return 0;
}

int main(void)
{
	struct uzs_stats st;
	int rc = unusable();

	if (rc)
		return rc;
	uzs = open_shrinking();
	if (!uzs)
		return fprintf(stderr, "cannot open the engine\n"), 1;
	uzs_get_stats(uzs, &st);
	if (!st.shrinker_psi) {
		uzs_close(uzs);
		return skip("no PSI trigger could be set: the shrinker polls MemAvailable here");
	}
	if ((rc = make_memcg())) {
		uzs_close(uzs);
		fprintf(stderr, "cannot set up %s: %s\n", memcg, strerror(-rc));
		return 1;
	}
	RUN(real_stall_makes_the_psi_shrinker_write_back);
	uzs_close(uzs);
	/* the children are gone; its page cache moves to the parent group on removal */
	for (int i = 0; i < 50 && rmdir(memcg) && errno == EBUSY; i++)
		usleep(100000);
	return CHECK_DONE();
}
