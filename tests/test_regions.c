/* SPDX-License-Identifier: MIT */
/* The transparent mode's regions: faults served by uzswap under a group's budget, the
 * program's own memory calls, and fork. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "regions.h"
#include "uffd.h"

static void region_reads_zeros_until_written(void)
{
	struct fixture f = start(64 * MB);
	unsigned char *r;
	unsigned nonzero = 0;

	CHECK_EQ(uzs_region_create(f.vm, 8 * MB, (void **)&r), 0);
	for (size_t i = 0; i < 8 * MB; i += 512)
		nonzero += r[i] != 0;
	CHECK_EQ(nonzero, 0);
	CHECK(vstats(&f).zero_fills >= 1);
	CHECK_EQ(uzs_region_destroy(f.vm, r, 8 * MB), 0);
	stop(&f);
}

/* 4x the budget written, then read back: everything byte-exact, pages went through the
 * engine, and the group ended within its budget. */
/* A wall clock reading an hour ahead of the kernel's, as just after the clock was set
 * back an hour: only this binary's calls (the library's among them) see it. */
static atomic_bool wall_clock_ahead;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (syscall(SYS_clock_gettime, id, ts))
		return -1;
	if (id == CLOCK_REALTIME && atomic_load(&wall_clock_ahead))
		ts->tv_sec += 3600;
	return 0;
}

/* The eviction thread's periodic look at the budget (every 2 ms) keeps its pace whatever
 * the wall clock says: a budget lowered with no fault to kick the thread is still
 * enforced at once, not an hour later. */
static void eviction_tick_ignores_the_wall_clock(void)
{
	struct fixture f;
	size_t pages = 4 * MB / PG;
	unsigned char *r;

	atomic_store(&wall_clock_ahead, true);
	f = start(16 * MB);
	r = filled_region(&f, pages, 1);
	usleep(20 * 1000); /* the thread is in its timed wait, begun under the shifted clock */
	CHECK_EQ(vstats(&f).evicted, 0);
	CHECK_EQ(uzs_group_set_memory_max(f.g, 2 * MB), 0); /* nothing wakes the thread */
	for (int i = 0; i < 200 && !vstats(&f).evicted; i++)
		usleep(5 * 1000);
	CHECK(vstats(&f).evicted > 0);
	CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	atomic_store(&wall_clock_ahead, false);
}

static void region_round_trip_over_budget(void)
{
	struct fixture f = start(8 * MB);
	size_t pages = 32 * MB / PG;
	unsigned char *r;
	struct uzs_group_stats gs;

	r = filled_region(&f, pages, 1);
	CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(count_bad(r, pages, 1), 0);
	gs = gstats(&f);
	CHECK(vstats(&f).evicted > pages);
	CHECK(vstats(&f).swapins > pages / 2);
	CHECK(gs.zswpout > 0);
	CHECK(gs.memory_current <= gs.memory_max);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	CHECK_EQ(gstats(&f).zswap, 0);
	stop(&f);
}

struct worker {
	unsigned char *base;
	size_t first, pages;
	unsigned rounds;
	unsigned bad;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (unsigned g = 1; g <= w->rounds; g++) {
		for (size_t i = w->first; i < w->first + w->pages; i++) {
			if (g > 1 && !same(w->base + i * PG, i, g - 1))
				w->bad++;
			fill(w->base + i * PG, i, g);
		}
	}
	return NULL;
}

static void region_threads_share_budget(void)
{
	struct fixture f = start(8 * MB);
	size_t pages = 24 * MB / PG;
	struct worker w[4];
	pthread_t t[4];
	unsigned char *r;

	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&r), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ r, i * pages / 4, pages / 4, 3, 0 };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].bad, 0);
	}
	CHECK_EQ(count_bad(r, pages, 3), 0);
	CHECK(vstats(&f).evicted > 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* Writers hammer counters in pages that eviction keeps taking away: every increment must
 * be there at the end (eviction moves the page atomically before compressing it). */
struct hammer {
	uint64_t *base;
	size_t pages, stride;
	unsigned id, iters;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	uint64_t x = h->id + 1;

	for (unsigned i = 0; i < h->iters; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		h->base[(x % h->pages) * h->stride + h->id]++;
	}
	return NULL;
}

static void no_lost_writes(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG;
	struct hammer h[4];
	pthread_t t[4];
	uint64_t *r, sum = 0;

	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&r), 0);
	for (unsigned i = 0; i < 4; i++) {
		h[i] = (struct hammer){ r, pages, PG / 8, i, 200000 };
		pthread_create(&t[i], NULL, hammer, &h[i]);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (size_t p = 0; p < pages; p++)
		for (unsigned i = 0; i < 4; i++)
			sum += r[p * (PG / 8) + i];
	CHECK_EQ(sum, 4 * 200000);
	CHECK(vstats(&f).evicted > 0);
	CHECK_EQ(vstats(&f).pages_lost, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* read(2) into an evicted page: the kernel's own access faults and is served. */
static void syscall_into_evicted_page(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG;
	unsigned char *r;
	int p[2];

	r = filled_region(&f, pages, 1);
	CHECK(pipe(p) == 0);
	CHECK_EQ(write(p[1], "uzswap", 6), 6);
	CHECK(!resident(r)); /* the first page is long gone */
	CHECK_EQ(read(p[0], r + 100, 6), 6);
	CHECK(!memcmp(r + 100, "uzswap", 6));
	CHECK_EQ(write(p[1], r + PG * 3, 64), 64); /* and out of another evicted page */
	close(p[0]);
	close(p[1]);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* Pages that were swapped out and then discarded (DONTNEED) or unmapped free their
 * slots and read as zeros (DONTNEED) — the rest stay intact. */
static void madvise_and_munmap_free_slots(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG, half = pages / 2;
	unsigned char *r;
	uint64_t before;
	unsigned nonzero = 0;

	r = filled_region(&f, pages, 1);
	before = estats(f.uzs).swap_slots_used;
	CHECK(before > half / 2);
	CHECK_EQ(madvise(r, half * PG, MADV_DONTNEED), 0);
	uzs_vm_sync(f.vm);
	CHECK(estats(f.uzs).swap_slots_used < before);
	for (size_t i = 0; i < half * PG; i += 256)
		nonzero += r[i] != 0;
	CHECK_EQ(nonzero, 0);
	before = estats(f.uzs).swap_slots_used;
	CHECK_EQ(munmap(r + half * PG, half / 2 * PG), 0); /* the third quarter */
	uzs_vm_sync(f.vm);
	CHECK(estats(f.uzs).swap_slots_used < before);
	for (size_t i = half + half / 2; i < pages; i++)
		CHECK(same(r + i * PG, i, 1));
	CHECK_EQ(uzs_region_destroy(f.vm, r + (half + half / 2) * PG, half / 2 * PG), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, half * PG), 0);
	CHECK_EQ(estats(f.uzs).swap_slots_used, 0);
	CHECK_EQ(gstats(&f).memory_current, 0);
	stop(&f);
}

/* mremap moves evicted pages: their slots follow them to the new address. */
static void mremap_moves_slots(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG;
	unsigned char *r, *moved, *hole;
	unsigned bad = 0;

	r = filled_region(&f, pages, 1);
	CHECK(vstats(&f).evicted > 0);
	/* somewhere else for sure: reserve a hole and move over it */
	hole = mmap(NULL, pages * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	moved = mremap(r, pages * PG, pages * PG, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
	CHECK(moved == hole);
	for (size_t i = 0; i < pages; i++)
		bad += !same(moved + i * PG, i, 1);
	CHECK_EQ(bad, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, moved, pages * PG), 0);
	CHECK_EQ(estats(f.uzs).swap_slots_used, 0);
	stop(&f);
}

/* After fork the child sees the memory as it was at fork time, evicted pages included,
 * whatever the parent writes afterwards; the shared slots are freed once both are done. */
static void fork_child_sees_fork_time_memory(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 12 * MB / PG;
	unsigned char *r;
	int status = -1;
	pid_t pid;

	r = filled_region(&f, pages, 1);
	CHECK(vstats(&f).evicted > 0);
	pid = fork();
	if (pid == 0) {
		usleep(200000); /* let the parent overwrite first */
		_exit(count_bad(r, pages, 1) == 0 ? 0 : 1);
	}
	for (size_t i = 0; i < pages; i++)
		fill(r + i * PG, i, 2);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(count_bad(r, pages, 2), 0);
	/* Pages shared with the child are made the parent's own before they move (as the
	 * parent's write would), so the kernel never refuses a move (EBUSY: 35,000 refusals
	 * here when they were left resident). */
	fprintf(stderr, "  evict_shared %llu\n", (unsigned long long)vstats(&f).evict_shared);
	CHECK_EQ(vstats(&f).evict_shared, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* The slot that holds page pg of generation gen, with one reference more (the test's);
 * 0 if none does. Dup'ed before it is read, so an exclusive load takes nothing. */
static uzs_slot_t slot_holding(struct fixture *f, uint64_t pg, uint64_t gen)
{
	unsigned char *buf = aligned_alloc(PG, PG);
	uint64_t total = estats(f->uzs).swap_slots_total;
	uzs_slot_t found = 0;

	for (uzs_slot_t slot = 1; slot < total && !found; slot++) {
		if (uzs_dup(f->uzs, slot))
			continue;
		if (uzs_swap_in(f->uzs, slot, buf, 0) == 0 && same(buf, pg, gen))
			found = slot;
		else
			uzs_free(f->uzs, slot);
	}
	free(buf);
	return found;
}

/* A swapped page whose slot has all the references a slot can take (-EOVERFLOW on one
 * more) still reaches a forked child: read and stored again for it. Before, the child's
 * page was left empty and read as zeros, with nothing counted. */
static void fork_child_gets_a_page_whose_slot_is_full(void)
{
	struct fixture f = start(1 * MB);
	size_t pages = 4 * MB / PG;
	unsigned long extra = 1; /* slot_holding's */
	unsigned char *r;
	uzs_slot_t slot;
	int status = -1;
	pid_t pid;

	r = filled_region(&f, pages, 1);
	uzs_vm_sync(f.vm);
	for (int i = 0; i < 400 && (resident(r) || vstats(&f).staged_pages); i++)
		usleep(5000);
	CHECK(!resident(r));
	slot = slot_holding(&f, 0, 1);
	CHECK(slot != 0);
	while (slot && uzs_dup(f.uzs, slot) == 0)
		extra++;
	CHECK_EQ(uzs_dup(f.uzs, slot), -EOVERFLOW);
	pid = fork();
	if (pid == 0)
		_exit(count_bad(r, pages, 1) == 0 ? 0 : 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(vstats(&f).swapin_errors, 0);
	while (slot && extra--)
		CHECK_EQ(uzs_free(f.uzs, slot), 0);
	CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* The most pages of r the process has mapped while it reads them all (gen) and writes
 * them again (gen + 1), checking both; -1 if a page was wrong. */
static long pass_peak_resident(unsigned char *r, size_t pages, uint64_t gen)
{
	long peak = 0;

	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < pages; i++) {
			if (round == 0 && !same(r + i * PG, i, gen))
				return -1;
			if (round == 1)
				fill(r + i * PG, i, gen + 1);
			if (i % 512 == 511) {
				long n = 0;

				for (size_t j = 0; j < pages; j++)
					n += resident(r + j * PG);
				peak = n > peak ? n : peak;
			}
		}
	return count_bad(r, pages, gen + 1) ? -1 : peak;
}

/* A forked child's pages are evicted too (its own thread moves them out for the parent's
 * engine), and so are a grandchild's: each reads and rewrites 4x the budget, exactly,
 * never holding more than the budget. Before, a child kept all it touched: 8,192 of
 * 8,192 pages here. The parent then reads its memory back under the budget: after a
 * fork, eviction rounds without moves used to set the parent back to "a fork not seen
 * yet", and its moves were refused (16.8 MB held of 8, half the runs). */
static long forked_pass(unsigned char *r, size_t pages, uint64_t gen)
{
	usleep(200000); /* past the grace before what it shares with its parent is charged */
	return pass_peak_resident(r, pages, gen);
}

static void forked_children_stay_under_budget(void)
{
	const size_t budget = 8 * MB, pages = 32 * MB / PG;
	struct fixture f = start(budget);
	unsigned char *r;
	int status = -1;
	pid_t pid;

	r = filled_region(&f, pages, 1);
	pid = fork();
	if (pid == 0) {
		long peak = forked_pass(r, pages, 1);
		pid_t grand = fork();
		int st = -1;

		if (grand == 0) {
			long grand_peak = forked_pass(r, pages, 2);

			_exit(grand_peak >= 0 && grand_peak * PG <= (long)budget ? 0 : 1);
		}
		waitpid(grand, &st, 0);
		fprintf(stderr, "  child's peak %ld pages of %zu\n", peak, budget / PG);
		_exit(peak >= 0 && peak * PG <= (long)budget && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0 ? 0 : 1);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(count_bad(r, pages, 1), 0); /* the parent's own memory untouched */
	for (int i = 0; i < 500 && vstats(&f).spaces > 0; i++)
		usleep(10000); /* until the children's exits are seen and their pages let go */
	CHECK_EQ(vstats(&f).spaces, 0); /* other processes than this one */
	CHECK(gstats(&f).memory_current <= budget);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* Descriptors of this process's that are userfaultfds. */
static int count_uffds(void)
{
	char path[64], link[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0) {
			link[len] = '\0';
			n += strstr(link, "userfaultfd") != NULL;
		}
	}
	return n;
}

/* A forked child keeps none of the engine's descriptors (a sibling holding another
 * child's would keep that one from seeing the engine go: 4 userfaultfds here before,
 * the child's own two now: its staging range's, and its managed ranges' that its agent
 * is handed with the go-ahead, so they outlive the engine until the agent ends the
 * child), and one still running when the vm stops is ended
 * rather than left to read zeros where its pages were evicted. A child stopping its
 * parent's vm (an atexit handler) neither hangs nor ends its sibling (a guard only: it
 * passed before uzs_vm_stop learnt to do nothing in another process than the owner). */
static void forked_children_end_with_the_vm(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 8 * MB / PG;
	int status = -1, first_status = -1;
	unsigned char *r;
	pid_t first, second;

	r = filled_region(&f, pages, 1);
	first = fork();
	if (first == 0)
		for (;;)
			if (count_bad(r, pages, 1))
				_exit(1);
	second = fork();
	if (second == 0) {
		int n = count_uffds(), bad = count_bad(r, pages, 1);

		fprintf(stderr, "  the second child's userfaultfds: %d\n", n);
		alarm(10);
		uzs_vm_stop(f.vm); /* the parent's vm: nothing to do here */
		_exit(n == 2 && bad == 0 ? 0 : 1);
	}
	CHECK_EQ(waitpid(second, &status, 0), second);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(waitpid(first, &first_status, WNOHANG), 0); /* still reading */
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	uzs_vm_stop(f.vm);
	for (int i = 0; i < 500 && waitpid(first, &first_status, WNOHANG) == 0; i++)
		usleep(10000);
	CHECK(WIFSIGNALED(first_status) && WTERMSIG(first_status) == SIGKILL);
	if (!WIFSIGNALED(first_status)) { /* left running: end it here */
		kill(first, SIGKILL);
		waitpid(first, &first_status, 0);
	}
	CHECK_EQ(estats(f.uzs).swap_slots_used, 0);
	uzs_close(f.uzs);
}

/* A forked child forks twice, writing its memory anew in between: each grandchild sees
 * its own fork's memory while all of them evict under the budget. (The hellos must go to
 * the right spaces: a hello can come before its fork event is handled, and matching the
 * parent's newest space then took a sibling's, review finding. This test did not catch
 * that old matching in 6 runs: here each hello is in before the next fork.) */
static int twin_reads(unsigned char *r, size_t pages, uint64_t gen)
{
	for (int pass = 0; pass < 2; pass++)
		if (count_bad(r, pages, gen))
			return 1;
	return 0;
}

static void children_forked_back_to_back_keep_their_memory(void)
{
	const size_t pages = 16 * MB / PG;
	struct fixture f = start(4 * MB);
	unsigned char *r;
	int status = -1;
	pid_t pid;

	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&r), 0);
	pid = fork();
	if (pid == 0) { /* forks from a child, whose forks the parent does not settle */
		pid_t twin[2];
		int st[2] = { -1, -1 };

		for (int t = 0; t < 2; t++) {
			for (size_t i = 0; i < pages; i++)
				fill(r + i * PG, i, 10 + (uint64_t)t);
			if ((twin[t] = fork()) == 0)
				_exit(twin_reads(r, pages, 10 + (uint64_t)t));
		}
		for (int t = 0; t < 2; t++)
			waitpid(twin[t], &st[t], 0);
		_exit(WIFEXITED(st[0]) && !WEXITSTATUS(st[0]) && WIFEXITED(st[1]) &&
		      !WEXITSTATUS(st[1]) ? 0 : 1);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(vstats(&f).evicted > pages);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* A hot set that fits the budget stays in after warm-up, while cold pages stream by:
 * fewer than 5% of hot accesses find their page gone. */
static void hot_set_stays_resident(void)
{
	struct fixture f = start(16 * MB);
	size_t hot = 5 * MB / PG, cold = 64 * MB / PG, misses = 0, hot_accesses = 0;
	unsigned char *r;
	uint64_t x = 12345;

	CHECK_EQ(uzs_region_create(f.vm, (hot + cold) * PG, (void **)&r), 0);
	for (int phase = 0; phase < 2; phase++) { /* warm-up, then measured */
		for (unsigned i = 0; i < 400000; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (i % 10 == 9) {
				r[(hot + x % cold) * PG + 8]++;
				continue;
			}
			if (phase == 1) {
				hot_accesses++;
				misses += !resident(r + (x % hot) * PG);
			}
			r[(x % hot) * PG]++;
		}
	}
	fprintf(stderr, "  hot misses %zu of %zu\n", misses, hot_accesses);
	CHECK(misses * 20 < hot_accesses);
	CHECK(vstats(&f).evicted > cold / 2);
	CHECK_EQ(uzs_region_destroy(f.vm, r, (hot + cold) * PG), 0);
	stop(&f);
}

/* Pages discarded (madvise DONTNEED) just as eviction takes them, and written again at
 * once: the new contents must stay (the move in flight must not carry off the page the
 * re-fault installed). Page o, DEPTH faults behind the writer, is near the cold end of
 * the inactive list, where eviction is picking. */
static void discard_racing_eviction_keeps_new_writes(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG, words = PG / 8;
	uint64_t *r;
	unsigned lost = 0;

	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&r), 0);
	for (uint64_t round = 1; round <= 12; round++) {
		size_t depth = 700 + round * 29 % 300;

		for (size_t i = 0; i < pages; i++) {
			r[i * words] = round << 32 | i;
			if (i < depth)
				continue;
			size_t o = i - depth;
			CHECK_EQ(madvise(r + o * words, PG, MADV_DONTNEED), 0);
			r[o * words] = round << 32 | o;
		}
		for (size_t i = 0; i < pages; i++)
			lost += r[i * words] != (round << 32 | i);
	}
	CHECK_EQ(lost, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* A region whose next neighbour is registered with another userfaultfd (as a staging
 * range is): sequential faults up to the region's end must not install pages past it
 * (UFFDIO_COPY accepts a range registered with any userfaultfd). */
static void readahead_stops_at_region_end(void)
{
	struct fixture f = start(64 * MB);
	unsigned char *r, *next;
	unsigned sum = 0, installed = 0;
	int uffd;

	CHECK_EQ(uzs_region_create(f.vm, 2 * MB, (void **)&r), 0);
	/* the region is now [r, r + 1 MiB): its second half replaced in one call (unmapping
	 * first left a hole another thread's mmap could take) */
	next = mmap(r + MB, MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		    -1, 0);
	uzs_vm_sync(f.vm);
	CHECK(next == r + MB);
	uffd = uffd_open_kernel_mode();
	CHECK(uffd >= 0);
	CHECK_EQ(uffd_handshake(uffd, 0), 0);
	CHECK_EQ(uffd_register_missing(uffd, (uintptr_t)next, MB), 0);
	for (size_t i = 0; i < MB; i += PG) /* sequential: the window grows to its maximum */
		sum += r[i];
	for (size_t i = 0; i < MB; i += PG)
		installed += resident(next + i); /* mincore: looks without faulting */
	CHECK_EQ(sum, 0);
	CHECK_EQ(installed, 0);
	close(uffd);
	munmap(next, MB);
	CHECK_EQ(uzs_region_destroy(f.vm, r, MB), 0);
	stop(&f);
}

/* Two areas filled at once, a page of each in turn: each is a sequential stream of its
 * own, and its windows grow (up to 64 pages), although consecutive faults alternate
 * between them (with one stream followed, every fault would start a window of one). */
static void interleaved_streams_read_ahead(void)
{
	struct fixture f = start(64 * MB);
	size_t pages = 4 * MB / PG;
	unsigned char *a, *b;
	uint64_t before;

	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&a), 0);
	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&b), 0);
	before = vstats(&f).faults;
	for (size_t i = 0; i < pages; i++) {
		a[i * PG] = 1;
		b[i * PG] = 2;
	}
	fprintf(stderr, "  %llu faults for %zu pages\n",
		(unsigned long long)(vstats(&f).faults - before), 2 * pages);
	CHECK(vstats(&f).faults - before < 2 * pages / 16);
	CHECK_EQ(uzs_region_destroy(f.vm, a, pages * PG), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, b, pages * PG), 0);
	stop(&f);
}

static void region_bad_arguments(void)
{
	struct fixture f = start(8 * MB);
	void *r = NULL;

	CHECK_EQ(uzs_region_create(f.vm, 0, &r), -EINVAL);
	CHECK_EQ(uzs_region_create(NULL, PG, &r), -EINVAL);
	CHECK_EQ(uzs_region_create(f.vm, PG, NULL), -EINVAL);
	CHECK_EQ(uzs_region_create(f.vm, 3 * PG, &r), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, (char *)r + 1, PG), -EINVAL);
	CHECK_EQ(uzs_region_destroy(f.vm, NULL, PG), -EINVAL);
	CHECK_EQ(uzs_region_destroy(f.vm, r, 3 * PG), 0);
	stop(&f);
}

/* Faults taken by touches at random pages: each touch reads one page (two = 0) or a
 * page-sized object straddling two pages, its upper page first (two = 1, as a compiler
 * may order it). Returns the faults, and *ahead the pages read in ahead meanwhile. */
static uint64_t random_touch_faults(struct fixture *f, volatile unsigned char *r, size_t pages,
				    int two, uint64_t *ahead)
{
	struct uzs_vm_stats before = vstats(f), after;
	uint64_t x = 88172645463325252ull;

	for (unsigned i = 0; i < 6000; i++) {
		size_t q;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		q = x % (pages - 1);
		if (two)
			r[(q + 1) * PG + 16]++;
		r[q * PG + 16]++;
	}
	after = vstats(f);
	*ahead = after.readahead_pages - before.readahead_pages;
	return after.faults - before.faults;
}

/* An object straddling two pages faults twice per touch unless the second page comes
 * with the first: once the probes see the neighbour fault next, swap-ins bring it along
 * (about one fault a touch, not two); touches of single pages bring nothing along. The
 * data is intact either way. */
static void straddling_objects_bring_their_neighbour(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 16 * MB / PG;
	unsigned char *r = filled_region(&f, pages, 1);
	uint64_t single, pair, single_ahead, pair_ahead;

	single = random_touch_faults(&f, r, pages, 0, &single_ahead);
	pair = random_touch_faults(&f, r, pages, 1, &pair_ahead);
	fprintf(stderr, "  single: %llu faults, %llu ahead; pairs: %llu faults, %llu ahead\n",
		(unsigned long long)single, (unsigned long long)single_ahead,
		(unsigned long long)pair, (unsigned long long)pair_ahead);
	CHECK(single_ahead * 20 < single);
	CHECK(pair * 2 < single * 3);
	CHECK(pair_ahead * 2 > pair);
	for (size_t i = 0; i < pages; i++) /* touches added to byte 16, which fill made 2 */
		r[i * PG + 16] = 2;
	CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* The threads of this process whose ids are not in before[0..n). */
static int new_threads(const pid_t *before, int n, pid_t *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int found = 0;

	while (d && (e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		bool old = tid <= 0;

		for (int i = 0; i < n && !old; i++)
			old = before[i] == tid;
		if (!old && found < max)
			out[found++] = tid;
	}
	if (d)
		closedir(d);
	return found;
}

/* How many of the vm's two threads have exactly the CPU set want. */
static int threads_on(const pid_t *tids, const cpu_set_t *want)
{
	int n = 0;

	for (int i = 0; i < 2; i++) {
		cpu_set_t got;

		CHECK_EQ(sched_getaffinity(tids[i], sizeof(got), &got), 0);
		n += CPU_EQUAL(&got, want);
	}
	return n;
}

/* The fault thread alone on the caller's last CPU, eviction on the others; unpinned,
 * both anywhere the caller may run; with one CPU, both on it. */
static void vm_threads_pinned_apart(void)
{
	cpu_set_t allowed, last, rest, first;
	pid_t before[64], vm_threads[4];
	int n, top = -1, low = -1;
	struct fixture f = { .uzs = open_pool(0) };

	CHECK_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed)) {
			top = cpu;
			low = low < 0 ? cpu : low;
		}
	CPU_ZERO(&last);
	CPU_SET(top, &last);
	rest = allowed;
	CPU_CLR(top, &rest);
	CHECK_EQ(uzs_group_create(f.uzs, NULL, "prog", &f.g), 0);
	n = new_threads(NULL, 0, before, 64); /* the engine's own threads are older */
	CHECK_EQ(uzs_vm_start(f.uzs, f.g, &f.vm), 0);
	CHECK_EQ(new_threads(before, n, vm_threads, 4), 2);
	if (CPU_COUNT(&allowed) > 1) {
		CHECK_EQ(threads_on(vm_threads, &last), 1);
		CHECK_EQ(threads_on(vm_threads, &rest), 1);
	} else {
		CHECK_EQ(threads_on(vm_threads, &allowed), 2);
	}
	CHECK_EQ(uzs_vm_pin_threads(f.vm, false), 0);
	CHECK_EQ(threads_on(vm_threads, &allowed), 2);
	CPU_ZERO(&first);
	CPU_SET(low, &first);
	CHECK_EQ(sched_setaffinity(0, sizeof(first), &first), 0);
	CHECK_EQ(uzs_vm_pin_threads(f.vm, true), 0);
	CHECK_EQ(threads_on(vm_threads, &first), 2);
	CHECK_EQ(sched_setaffinity(0, sizeof(allowed), &allowed), 0);
	CHECK_EQ(uzs_vm_pin_threads(NULL, true), -EINVAL);
	stop(&f);
}

/* ---- moves counted as the page tables say ---- */

#define TOUCH_PAGES 8u
#define TOUCH_ROUNDS 4000
#define PMD_BYTES (2ul << 20)

struct toucher {
	unsigned char *src;   /* the pages being moved */
	atomic_long go, done; /* the round to touch in, the round touched */
	long before, after;   /* touches that found their page there, and gone */
};

static __thread sigjmp_buf toucher_jump;
static __thread bool toucher_armed;

/* A read of a page gone raises SIGBUS (its source's userfaultfd says so): back to the
 * toucher. Any other thread's SIGBUS is a real one. */
static void toucher_bus(int sig)
{
	if (!toucher_armed) {
		signal(sig, SIG_DFL);
		return; /* the access faults again, and the default action ends the test */
	}
	siglongjmp(toucher_jump, 1);
}

/* Reads the page: true if it was there, false if the read raised SIGBUS. */
static bool touch_once(volatile unsigned char *page)
{
	bool there = false;

	toucher_armed = true;
	if (!sigsetjmp(toucher_jump, 1)) {
		(void)page[0];
		there = true;
	}
	toucher_armed = false;
	return there;
}

/* The page a round touches: the first (even rounds), or the first past the 2 MiB
 * boundary the pages straddle (odd rounds), where the kernel starts a new step. */
static unsigned touched_page(long round)
{
	return round % 2 ? TOUCH_PAGES / 2 : 0;
}

/* Each round, after a delay that grows and wraps, read one page while it may be moving:
 * a first access marks the page's entry accessed, which makes the kernel retry a step of
 * the move (the page's entry changed under it). */
static void *touch_while_moving(void *arg)
{
	struct toucher *t = arg;

	for (long round = 0; round < TOUCH_ROUNDS; round++) {
		while (atomic_load(&t->go) != round)
			;
		/* the step past the boundary comes later in the move */
		for (unsigned spin = (round % 2 ? 40u : 0u) + (unsigned)(round / 2 % 48) * 4; spin--;)
			__asm__ volatile("pause");
		if (touch_once(t->src + (size_t)touched_page(round) * PG))
			t->before++;
		else
			t->after++;
		atomic_store(&t->done, round);
	}
	return NULL;
}

/* One round's pages, from the source's own userfaultfd (so a later access there is
 * SIGBUS, not a new page), their accessed bits cleared. */
static void fill_sources(int uffd, unsigned char *src, unsigned char *buf, long round)
{
	for (unsigned i = 0; i < TOUCH_PAGES; i++)
		fill(buf + (size_t)i * PG, i, (uint64_t)round);
	CHECK_EQ(uffd_copy(uffd, (uintptr_t)src, buf, TOUCH_PAGES * PG), TOUCH_PAGES * PG);
	CHECK_EQ(madvise(src, TOUCH_PAGES * PG, MADV_COLD), 0);
}

/* Every page said moved is at its destination with its contents, and gone from its
 * source; every page said not moved is still at its source with its contents. */
static void check_moves(unsigned char *src, unsigned char *dst, const int *res, long round)
{
	for (unsigned i = 0; i < TOUCH_PAGES; i++) {
		unsigned char *from = src + (size_t)i * PG, *to = dst + (size_t)i * PG;
		unsigned char *at = res[i] == 0 ? to : from, *not_at = res[i] == 0 ? from : to;

		CHECK(resident(at) && !resident(not_at));
		if (resident(at))
			CHECK(same(at, i, (uint64_t)round));
	}
}

/* TOUCH_PAGES pages straddling a 2 MiB boundary, inside a mapping of their own. */
static unsigned char *straddling_pages(unsigned char **mapping)
{
	*mapping = mmap(NULL, 2 * PMD_BYTES, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(*mapping != MAP_FAILED);
	return (unsigned char *)(((uintptr_t)*mapping + PMD_BYTES) & ~(PMD_BYTES - 1)) -
	       TOUCH_PAGES / 2 * PG;
}

static int uffd_for(void *addr, size_t bytes, uint64_t features)
{
	int uffd = uffd_open_kernel_mode();

	CHECK(uffd >= 0);
	CHECK_EQ(uffd_handshake(uffd, features), 0);
	CHECK_EQ(uffd_register_missing(uffd, (uintptr_t)addr, bytes), 0);
	return uffd;
}

static void move_rounds(struct toucher *t, int src_uffd, int dst_uffd, unsigned char *dst)
{
	unsigned char *buf = malloc(TOUCH_PAGES * PG);
	uint64_t from[TOUCH_PAGES], to[TOUCH_PAGES];
	int res[TOUCH_PAGES];

	for (unsigned i = 0; i < TOUCH_PAGES; i++) {
		from[i] = (uintptr_t)t->src + i * PG;
		to[i] = (uintptr_t)dst + i * PG;
	}
	for (long round = 0; round < TOUCH_ROUNDS; round++) {
		fill_sources(src_uffd, t->src, buf, round);
		atomic_store(&t->go, round);
		uffd_move_pages(dst_uffd, from, to, TOUCH_PAGES, res);
		while (atomic_load(&t->done) != round)
			sched_yield();
		check_moves(t->src, dst, res, round);
		madvise(t->src, TOUCH_PAGES * PG, MADV_DONTNEED);
		madvise(dst, TOUCH_PAGES * PG, MADV_DONTNEED);
	}
	free(buf);
}

/* Linux 6.18's UFFDIO_MOVE can say -EEXIST, or a short count, for pages it did move, when
 * a step of its loop was retried because the program touched the page then
 * (src/agent/uffd.c). Counted as failed, such a page is lost. Here pages are moved while
 * another thread touches them, at the start of the move or where it starts a new step,
 * and what each move said is checked against where the pages are. */
static void moves_counted_as_the_page_tables_say(void)
{
	unsigned char *mapping, *src = straddling_pages(&mapping);
	unsigned char *dst = mmap(NULL, TOUCH_PAGES * PG, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int src_uffd = uffd_for(src, TOUCH_PAGES * PG, UFFD_FEATURE_SIGBUS);
	int dst_uffd = uffd_for(dst, TOUCH_PAGES * PG, UFFD_FEATURE_MOVE);
	struct toucher t = { .src = src, .go = -1, .done = -1 };
	struct sigaction bus = { .sa_handler = toucher_bus }, old;
	uint64_t corrected = uffd_moves_corrected();
	pthread_t thread;

	CHECK(dst != MAP_FAILED);
	CHECK_EQ(sigaction(SIGBUS, &bus, &old), 0);
	CHECK_EQ(pthread_create(&thread, NULL, touch_while_moving, &t), 0);
	move_rounds(&t, src_uffd, dst_uffd, dst);
	pthread_join(thread, NULL);
	CHECK_EQ(sigaction(SIGBUS, &old, NULL), 0);
	/* the touches swept across the moves: some found their page, some found it gone */
	CHECK(t.before > 0 && t.after > 0);
	printf("  %ld touches before the move, %ld after; %llu misreported moves counted right\n",
	       t.before, t.after, (unsigned long long)(uffd_moves_corrected() - corrected));
	close(src_uffd);
	close(dst_uffd);
	munmap(mapping, 2 * PMD_BYTES);
	munmap(dst, TOUCH_PAGES * PG);
}

/* A page that leaves a region without an event (here moved out by the test itself, as
 * a kernel that misreports a move would leave it) reads as zeros, and is counted lost:
 * a loss is never silent. The pages around it are untouched. */
static void a_page_gone_unseen_is_counted_lost(void)
{
	struct fixture f = start(64 * MB);
	unsigned char *r, *aside = mmap(NULL, PG, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int uffd;
	unsigned zero = 0;

	CHECK(aside != MAP_FAILED);
	uffd = uffd_for(aside, PG, UFFD_FEATURE_MOVE);
	CHECK_EQ(uzs_region_create(f.vm, 16 * PG, (void **)&r), 0);
	fill(r, 0, 7);
	fill(r + PG, 1, 7);
	CHECK_EQ(vstats(&f).pages_lost, 0);
	CHECK_EQ(uffd_move(uffd, (uintptr_t)aside, (uintptr_t)r, PG, 0), PG);
	for (unsigned i = 0; i < PG; i++)
		zero += r[i] == 0;
	CHECK_EQ(zero, PG);
	for (int ms = 0; ms < 1000 && vstats(&f).pages_lost == 0; ms++)
		usleep(1000); /* counted once the faulting thread is already woken */
	CHECK_EQ(vstats(&f).pages_lost, 1);
	CHECK(same(aside, 0, 7));
	CHECK(same(r + PG, 1, 7));
	CHECK_EQ(vstats(&f).pages_lost, 1);
	CHECK_EQ(uzs_region_destroy(f.vm, r, 16 * PG), 0);
	close(uffd);
	munmap(aside, PG);
	stop(&f);
}

/* Touches at random pages of r, each a write: fault counts show where pages came from. */
static void random_writes(volatile unsigned char *r, size_t pages, unsigned n, uint64_t *x)
{
	for (unsigned i = 0; i < n; i++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		r[(*x % pages) * PG + 16]++;
	}
}

/* Pages that compress about 8 to 1 (512 bytes of noise, then zeros). */
static unsigned char *sparse_region(struct fixture *f, size_t pages)
{
	unsigned char *r = NULL;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	CHECK_EQ(uzs_region_create(f->vm, pages * PG, (void **)&r), 0);
	for (size_t i = 0; r && i < pages; i++)
		for (unsigned w = 0; w < 512 / 8; w++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			memcpy(r + i * PG + w * 8, &x, 8);
		}
	return r;
}

/* A working set that fits the budget only compressed (about 7/8 of it as pool): random
 * touches over it find their pages in the pool, and the pool is kept, not written to the
 * swap file page by page. A fixed share of 3/4 for the pool sent a tenth of the set to
 * the file and back again, a writeback for every read from the file. */
static void pool_keeps_a_working_set_that_fits_compressed(void)
{
	struct fixture f = start(16 * MB);
	size_t pages = 27000;
	unsigned char *r = sparse_region(&f, pages);
	struct uzs_group_stats g0;
	struct uzs_vm_stats v0, v1;
	uint64_t x = 88172645463325252ull, written, swapins;

	random_writes(r + 2048, pages, 25000, &x); /* warm-up: the boundary moves */
	g0 = gstats(&f);
	v0 = vstats(&f);
	random_writes(r + 2048, pages, 15000, &x);
	v1 = vstats(&f);
	written = gstats(&f).zswpwb - g0.zswpwb;
	swapins = v1.swapins - v0.swapins;
	fprintf(stderr, "  swap-ins %llu, written back %llu, from the file %llu, pool target %llu MB"
		" (%llu up, %llu down), costs us staged %.1f pool %.1f file %.1f\n",
		(unsigned long long)swapins, (unsigned long long)written,
		(unsigned long long)(v1.file_refaults - v0.file_refaults),
		(unsigned long long)(v1.pool_target >> 20), (unsigned long long)v1.balance_grows,
		(unsigned long long)v1.balance_shrinks, v1.staged_cost_ns / 1e3,
		v1.pool_cost_ns / 1e3, v1.file_cost_ns / 1e3);
	CHECK(swapins > 10000); /* the set does not fit resident */
	CHECK(written * 50 < swapins);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
}

/* A large compressed set that is never touched again, and a hot set that does not fit
 * what a pool at 3/4 of the budget leaves resident (but fits the budget less a pool
 * of its own size): the cold compressed pages go to the swap file and the hot set
 * becomes resident, so its touches stop faulting. */
static void cold_pool_gives_way_to_a_hot_set(void)
{
	struct fixture f = start(16 * MB);
	size_t cold = 48 * MB / PG, hot = 6 * MB / PG;
	unsigned char *c = filled_region(&f, cold, 1), *h = filled_region(&f, hot, 2);
	struct uzs_vm_stats v0, v1;
	uint64_t x = 88172645463325252ull, faults;

	random_writes(h, hot, 30000, &x); /* warm-up: the boundary moves */
	v0 = vstats(&f);
	random_writes(h, hot, 15000, &x);
	v1 = vstats(&f);
	faults = v1.swapins + v1.staged_refaults - v0.swapins - v0.staged_refaults;
	fprintf(stderr, "  hot faults %llu of 15000 touches, written back %llu, pool target %llu MB"
		" (%llu up, %llu down), costs us staged %.1f pool %.1f file %.1f\n",
		(unsigned long long)faults, (unsigned long long)gstats(&f).zswpwb,
		(unsigned long long)(v1.pool_target >> 20), (unsigned long long)v1.balance_grows,
		(unsigned long long)v1.balance_shrinks, v1.staged_cost_ns / 1e3,
		v1.pool_cost_ns / 1e3, v1.file_cost_ns / 1e3);
	CHECK(faults < 500);
	CHECK_EQ(count_bad(c, cold, 1), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, c, cold * PG), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, h, hot * PG), 0);
	stop(&f);
}

int main(void)
{
	skip_unless_transparent_mode_works();
	RUN(region_reads_zeros_until_written);
	RUN(region_round_trip_over_budget);
	RUN(region_threads_share_budget);
	RUN(no_lost_writes);
	RUN(syscall_into_evicted_page);
	RUN(madvise_and_munmap_free_slots);
	RUN(mremap_moves_slots);
	RUN(fork_child_sees_fork_time_memory);
	RUN(fork_child_gets_a_page_whose_slot_is_full);
	RUN(forked_children_stay_under_budget);
	RUN(forked_children_end_with_the_vm);
	RUN(children_forked_back_to_back_keep_their_memory);
	RUN(hot_set_stays_resident);
	RUN(discard_racing_eviction_keeps_new_writes);
	RUN(readahead_stops_at_region_end);
	RUN(interleaved_streams_read_ahead);
	RUN(straddling_objects_bring_their_neighbour);
	RUN(region_bad_arguments);
	RUN(vm_threads_pinned_apart);
	RUN(moves_counted_as_the_page_tables_say);
	RUN(a_page_gone_unseen_is_counted_lost);
	RUN(eviction_tick_ignores_the_wall_clock);
	RUN(pool_keeps_a_working_set_that_fits_compressed);
	RUN(cold_pool_gives_way_to_a_hot_set);
	return CHECK_DONE();
}
