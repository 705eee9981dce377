/* SPDX-License-Identifier: MIT */
/*
 * Groups, after the kernel's cgroup zswap selftests (tools/testing/selftests/cgroup/
 * test_zswap.c): each case asserts what its kernel namesake asserts, with a uzswap group
 * in place of a memory cgroup. Then the hierarchy, removal and exact accounting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "corpus.h"
#include "helpers.h"
#include "uzswap.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE

static unsigned char *corpus;
static size_t corpus_pages;

static struct uzs_group *new_group(struct uzs *uzs, struct uzs_group *parent, const char *name)
{
	struct uzs_group *g = NULL;

	CHECK_EQ(uzs_group_create(uzs, parent, name, &g), 0);
	return g;
}

static struct uzs_group_stats gstats(struct uzs_group *g)
{
	struct uzs_group_stats st;

	memset(&st, 0, sizeof(st));
	CHECK_EQ(uzs_group_get_stats(g, &st), 0);
	return st;
}

static const unsigned char *corpus_page(size_t i)
{
	return corpus + (i % corpus_pages) * PAGE;
}

/* Swap out corpus pages first..first+n-1 into g; every swap-out must succeed. */
static void store_corpus(struct uzs *uzs, struct uzs_group *g, uzs_slot_t *slots, size_t first,
			 size_t n)
{
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(uzs_swap_out(uzs, g, corpus_page(first + i), &slots[i]), 0);
}

/* Swap them back in (freeing the slots); returns how many differ. */
static size_t load_corpus(struct uzs *uzs, const uzs_slot_t *slots, size_t first, size_t n)
{
	unsigned char *page = aligned_alloc(PAGE, PAGE);
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		memset(page, 0xee, PAGE);
		CHECK_EQ(uzs_swap_in(uzs, slots[i], page, UZS_SWAPIN_FREE), 0);
		bad += memcmp(page, corpus_page(first + i), PAGE) != 0;
	}
	free(page);
	return bad;
}

/* ---- the kernel's selftests ---- */

/* A group over its memory budget swaps out and zswpout grows. The caller does what
 * uzs_group_memory_excess asks, as the transparent mode will: it swaps out its oldest
 * resident page, and once none is left, has the group write back compressed ones. */
static void test_zswap_usage(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = new_group(uzs, NULL, "usage");
	size_t n = 1024, oldest = 0;
	uzs_slot_t *slots = calloc(n, sizeof(*slots));
	uint64_t budget = 128 * PAGE;

	CHECK_EQ(uzs_group_set_memory_max(g, budget), 0);
	for (size_t i = 0; i < n; i++) {
		/* the workload touches page i: it becomes resident */
		CHECK_EQ(uzs_group_charge_resident(g, 1), 0);
		while (uzs_group_memory_excess(g) > 0) {
			if (oldest < i) {
				CHECK_EQ(uzs_swap_out(uzs, g, corpus_page(oldest), &slots[oldest]),
					 0);
				CHECK_EQ(uzs_group_charge_resident(g, -1), 0);
				oldest++;
			} else if (uzs_group_shrink(g, 1) != 1) {
				break;
			}
		}
	}
	CHECK(gstats(g).zswpout > 0);
	CHECK_EQ(gstats(g).zswpout, oldest);
	CHECK(gstats(g).zswap > 0);
	/* 1024 pages do not fit 128 pages even compressed: the group wrote some back */
	CHECK(gstats(g).zswpwb > 0);
	CHECK(gstats(g).memory_current <= budget);
	CHECK_EQ(uzs_group_memory_excess(g), 0);
	CHECK_EQ(load_corpus(uzs, slots, 0, oldest), 0);
	CHECK_EQ(gstats(g).zswap, 0);
	free(slots);
	uzs_close(uzs);
}

/* zswap_max = 0: every page goes to the swap file, zswpout stays 0, all come back. */
static void test_swapin_nozswap(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = new_group(uzs, NULL, "nozswap");
	size_t n = 512;
	uzs_slot_t *slots = calloc(n, sizeof(*slots));
	unsigned char *zero = calloc(1, PAGE), *back = aligned_alloc(PAGE, PAGE);
	uzs_slot_t zero_slot;

	CHECK_EQ(uzs_group_set_zswap_max(g, 0), 0);
	store_corpus(uzs, g, slots, 0, n);
	/* not even a same-filled page is kept: the limit is a refusal, not a size */
	CHECK_EQ(uzs_swap_out(uzs, g, zero, &zero_slot), 0);
	CHECK_EQ(gstats(g).zswpout, 0);
	CHECK_EQ(estats(uzs).zswpout, 0);
	CHECK_EQ(estats(uzs).pswpout, n + 1);
	CHECK_EQ(load_corpus(uzs, slots, 0, n), 0);
	CHECK_EQ(uzs_swap_in(uzs, zero_slot, back, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(back, zero, PAGE) == 0);
	CHECK_EQ(gstats(g).zswpin, 0);
	CHECK_EQ(estats(uzs).pswpin, n + 1);
	free(zero);
	free(back);
	free(slots);
	uzs_close(uzs);
}

/* Pages stored then read back count zswpin, one each. */
static void test_zswapin(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = new_group(uzs, NULL, "zswapin");
	size_t n = 777;
	uzs_slot_t *slots = calloc(n, sizeof(*slots));

	store_corpus(uzs, g, slots, 100, n);
	CHECK_EQ(gstats(g).zswpout, n);
	CHECK_EQ(gstats(g).zswapped, n * PAGE);
	CHECK_EQ(load_corpus(uzs, slots, 100, n), 0);
	CHECK_EQ(gstats(g).zswpin, n);
	CHECK_EQ(gstats(g).zswapped, 0);
	free(slots);
	uzs_close(uzs);
}

/*
 * Fill a group, cut its zswap_max to a quarter of its usage, then store more.
 * wb_group is where writeback is switched off (NULL: nowhere).
 */
static void writeback_after_cut(struct uzs *uzs, struct uzs_group *g, struct uzs_group *wb_group)
{
	size_t n = 1024, more = 256;
	uzs_slot_t *slots = calloc(n + more, sizeof(*slots));
	uint64_t usage, stored = 0;
	int refused = 0;

	store_corpus(uzs, g, slots, 0, n);
	usage = gstats(g).zswap;
	CHECK(usage > 0);
	CHECK_EQ(uzs_group_set_zswap_max(g, usage / 4), 0);
	if (wb_group)
		CHECK_EQ(uzs_group_set_zswap_writeback(wb_group, false), 0);
	for (size_t i = n; i < n + more; i++) {
		int r = uzs_swap_out(uzs, g, corpus_page(i), &slots[stored + n]);

		if (r == 0)
			stored++;
		else
			refused += r == -ENOSPC;
	}
	settled(uzs);
	if (!wb_group) {
		CHECK(gstats(g).zswpwb > 0);
		CHECK(gstats(g).zswap <= usage / 4);
		CHECK_EQ(stored, more);
		CHECK(uzs_group_shrink(g, 8) > 0);
	} else {
		CHECK_EQ(gstats(g).zswpwb, 0);
		CHECK_EQ(estats(uzs).written_back_pages, 0);
		CHECK_EQ(estats(uzs).pswpout, 0);
		CHECK_EQ(gstats(g).zswap, usage);
		CHECK_EQ(stored, 0);
		CHECK_EQ(refused, (int)more);
		CHECK_EQ(estats(uzs).swap_slots_used, n); /* the refused ones gave theirs back */
		CHECK_EQ(uzs_group_shrink(g, 8), -EPERM);
	}
	CHECK_EQ(load_corpus(uzs, slots, 0, n), 0);
	CHECK_EQ(load_corpus(uzs, slots + n, n, stored), 0);
	free(slots);
}

static void test_zswap_writeback_enabled(void)
{
	struct uzs *uzs = open_pool(0);

	writeback_after_cut(uzs, new_group(uzs, NULL, "wb"), NULL);
	uzs_close(uzs);
}

static void test_zswap_writeback_disabled(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = new_group(uzs, NULL, "nowb");

	writeback_after_cut(uzs, g, g);
	uzs_close(uzs);
}

/* Off anywhere above means off: the child's own setting is on, its parent's off. */
static void test_zswap_writeback_disabled_by_parent(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *parent = new_group(uzs, NULL, "parent");
	struct uzs_group *child = new_group(uzs, parent, "child");

	CHECK_EQ(gstats(child).zswap_writeback, 1);
	writeback_after_cut(uzs, child, parent);
	CHECK_EQ(gstats(child).zswap_writeback, 1);
	uzs_close(uzs);
}

/* A group at its own limit writes back only its own entries; a well-behaved group's
 * pages stay cached and its zswpwb stays 0. */
static void test_no_invasive_cgroup_shrink(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *quiet = new_group(uzs, NULL, "well-behaved");
	struct uzs_group *noisy = new_group(uzs, NULL, "limited");
	size_t n = 512, many = 2048;
	uzs_slot_t *qs = calloc(n, sizeof(*qs)), *ns = calloc(many, sizeof(*ns));
	uint64_t quiet_usage;
	size_t cached = 0;

	store_corpus(uzs, quiet, qs, 0, n);
	quiet_usage = gstats(quiet).zswap;
	CHECK_EQ(uzs_group_set_zswap_max(noisy, 256 << 10), 0);
	store_corpus(uzs, noisy, ns, n, many);
	settled(uzs);
	CHECK(gstats(noisy).zswpwb > 0);
	CHECK(gstats(noisy).zswap <= 256 << 10);
	CHECK_EQ(gstats(quiet).zswpwb, 0);
	CHECK_EQ(gstats(quiet).zswap, quiet_usage);
	for (size_t i = 0; i < n; i++)
		cached += uzs_test_cached(uzs, qs[i]) == 1;
	CHECK_EQ(cached, n);
	CHECK_EQ(load_corpus(uzs, qs, 0, n), 0);
	CHECK_EQ(load_corpus(uzs, ns, n, many), 0);
	free(qs);
	free(ns);
	uzs_close(uzs);
}

/* Pages that do not compress are stored raw and counted in zswap_incomp; with writeback
 * off they are refused instead (the file is no fallback) and counted as compress_poor. */
static void test_zswap_incompressible(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = new_group(uzs, NULL, "random");
	struct uzs_group *nowb = new_group(uzs, NULL, "random-nowb");
	unsigned char *page = aligned_alloc(PAGE, PAGE), *back = aligned_alloc(PAGE, PAGE);
	uzs_slot_t slots[64], slot;

	for (unsigned i = 0; i < 64; i++) {
		random_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, g, page, &slots[i]), 0);
	}
	CHECK_EQ(gstats(g).zswpout, 64);
	CHECK_EQ(gstats(g).zswap_incomp, 64);
	CHECK_EQ(gstats(g).zswap, 64 * PAGE);
	CHECK_EQ(estats(uzs).stored_incompressible_pages, 64);
	CHECK_EQ(uzs_group_set_zswap_writeback(nowb, false), 0);
	random_page(page, 1000);
	CHECK_EQ(uzs_swap_out(uzs, nowb, page, &slot), -ENOSPC);
	CHECK_EQ(estats(uzs).reject_compress_poor, 1);
	CHECK_EQ(gstats(nowb).zswap_incomp, 0);
	for (unsigned i = 0; i < 64; i++) {
		random_page(page, i);
		CHECK_EQ(uzs_swap_in(uzs, slots[i], back, UZS_SWAPIN_FREE), 0);
		CHECK(memcmp(page, back, PAGE) == 0);
	}
	CHECK_EQ(gstats(g).zswap_incomp, 0);
	free(page);
	free(back);
	uzs_close(uzs);
}

/* ---- hierarchy, global reclaim, removal ---- */

/* A parent's limit covers its children: a child storing past it makes room from the
 * parent's subtree (its sibling's entries), and the parent's charge never passes it. */
static void test_parent_limit_covers_children(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *p = new_group(uzs, NULL, "p");
	struct uzs_group *a = new_group(uzs, p, "a");
	struct uzs_group *b = new_group(uzs, p, "b");
	size_t n = 1024;
	uzs_slot_t *sa = calloc(n, sizeof(*sa)), *sb = calloc(n, sizeof(*sb));
	uint64_t limit = 512 << 10;

	CHECK_EQ(uzs_group_set_zswap_max(p, limit), 0);
	store_corpus(uzs, a, sa, 0, n);
	CHECK(gstats(p).zswap <= limit);
	store_corpus(uzs, b, sb, n, n);
	settled(uzs);
	CHECK(gstats(p).zswap <= limit);
	CHECK(gstats(a).zswpwb > 0);
	CHECK_EQ(gstats(p).zswpwb, gstats(a).zswpwb + gstats(b).zswpwb);
	CHECK_EQ(gstats(p).zswpout, 2 * n);
	CHECK_EQ(load_corpus(uzs, sa, 0, n), 0);
	CHECK_EQ(load_corpus(uzs, sb, n, n), 0);
	free(sa);
	free(sb);
	uzs_close(uzs);
}

/* Global reclaim visits groups in turn and skips those whose writeback is off. */
static void test_global_reclaim_round_robin(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g[4];
	const char *names[4] = {"g0", "g1", "g2", "nowb"};
	size_t n = 256;
	uzs_slot_t *slots = calloc(4 * n, sizeof(*slots));

	for (int i = 0; i < 4; i++) {
		g[i] = new_group(uzs, NULL, names[i]);
		store_corpus(uzs, g[i], slots + i * n, i * n, n);
	}
	CHECK_EQ(uzs_group_set_zswap_writeback(g[3], false), 0);
	CHECK_EQ(uzs_shrink(uzs, 120), 120);
	for (int i = 0; i < 3; i++) {
		/* each visit takes a few entries: the three share the 120 about evenly */
		CHECK(gstats(g[i]).zswpwb >= 20);
		CHECK(gstats(g[i]).zswpwb <= 60);
	}
	CHECK_EQ(gstats(g[3]).zswpwb, 0);
	/* everything the others had, and nothing of the group that may not write back */
	CHECK_EQ(uzs_shrink(uzs, 10 * n), 3 * n - 120);
	CHECK_EQ(gstats(g[3]).zswpwb, 0);
	CHECK_EQ(gstats(g[3]).zswapped, n * PAGE);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(load_corpus(uzs, slots + i * n, i * n, n), 0);
	free(slots);
	uzs_close(uzs);
}

/* Removing the group global reclaim's cursor points at is safe: reclaim goes on with the
 * next group, and the removed group's entries are reclaimed through its parent. */
static void test_remove_group_at_shrink_cursor(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g[3];
	const char *names[3] = {"a", "b", "c"};
	size_t n = 100;
	uzs_slot_t *slots = calloc(3 * n, sizeof(*slots));

	for (int i = 0; i < 3; i++) {
		g[i] = new_group(uzs, NULL, names[i]);
		store_corpus(uzs, g[i], slots + i * n, i * n, n);
	}
	/* the root has nothing, so the first writeback leaves the cursor on "a" */
	CHECK_EQ(uzs_shrink(uzs, 1), 1);
	CHECK_EQ(gstats(g[0]).zswpwb, 1);
	CHECK_EQ(uzs_group_remove(g[0]), 0);
	CHECK_EQ(uzs_shrink(uzs, 2), 2);
	CHECK_EQ(uzs_shrink(uzs, 10 * n), 3 * n - 3);
	CHECK_EQ(estats(uzs).written_back_pages, 3 * n);
	CHECK_EQ(gstats(uzs_root_group(uzs)).zswap, 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(load_corpus(uzs, slots + i * n, i * n, n), 0);
	CHECK_EQ(estats(uzs).groups_dying, 0);
	free(slots);
	uzs_close(uzs);
}

static void test_group_names_and_busy(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *a = new_group(uzs, NULL, "a"), *b = NULL, *x = NULL;
	char long_name[UZS_GROUP_NAME_MAX + 2];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	CHECK_EQ(uzs_group_create(uzs, NULL, "a", &x), -EEXIST);
	CHECK_EQ(uzs_group_create(uzs, NULL, "", &x), -EINVAL);
	CHECK_EQ(uzs_group_create(uzs, NULL, "a/b", &x), -EINVAL);
	CHECK_EQ(uzs_group_create(uzs, NULL, "..", &x), -EINVAL);
	CHECK_EQ(uzs_group_create(uzs, NULL, "tab\tname", &x), -EINVAL);
	CHECK_EQ(uzs_group_create(uzs, NULL, NULL, &x), -EINVAL);
	CHECK_EQ(uzs_group_create(uzs, NULL, long_name, &x), -EINVAL);
	long_name[UZS_GROUP_NAME_MAX] = 0;
	CHECK_EQ(uzs_group_create(uzs, NULL, long_name, &x), 0);
	CHECK_EQ(uzs_group_create(uzs, a, "a", &b), 0); /* same name, other parent */
	CHECK(strcmp(uzs_group_name(b), "a") == 0);
	CHECK(uzs_group_parent(b) == a);
	CHECK(uzs_group_parent(a) == uzs_root_group(uzs));
	CHECK_EQ(uzs_group_remove(a), -EBUSY);
	CHECK_EQ(uzs_group_remove(uzs_root_group(uzs)), -EINVAL);
	CHECK_EQ(uzs_group_set_zswap_max(uzs_root_group(uzs), 0), -EINVAL);
	CHECK_EQ(uzs_group_set_zswap_writeback(uzs_root_group(uzs), false), -EINVAL);
	CHECK_EQ(uzs_group_set_memory_max(uzs_root_group(uzs), 0), -EINVAL);
	CHECK_EQ(estats(uzs).groups, 4);
	CHECK_EQ(uzs_group_remove(b), 0);
	CHECK_EQ(uzs_group_remove(a), 0);
	CHECK_EQ(estats(uzs).groups, 2);
	CHECK_EQ(estats(uzs).groups_dying, 0); /* nothing held them */
	uzs_close(uzs);
}

/* A removed group's pages stay swappable-in; its charge and statistics show in its
 * parent, which now owns (and can reclaim) its entries; once they are gone, so is it. */
static void test_removal_reparents(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *p = new_group(uzs, NULL, "p");
	struct uzs_group *c = new_group(uzs, p, "c");
	struct uzs_group_stats before, local;
	size_t n = 600;
	uzs_slot_t *slots = calloc(n, sizeof(*slots));

	store_corpus(uzs, c, slots, 0, n);
	CHECK_EQ(uzs_group_get_local_stats(p, &local), 0);
	CHECK_EQ(local.zswap, 0);
	before = gstats(p);
	CHECK_EQ(uzs_group_remove(c), 0);
	CHECK_EQ(estats(uzs).groups_dying, 1);
	CHECK_EQ(gstats(p).zswap, before.zswap);
	CHECK_EQ(gstats(p).zswpout, n);
	CHECK_EQ(uzs_group_get_local_stats(p, &local), 0);
	CHECK_EQ(local.zswap, before.zswap);
	CHECK_EQ(local.zswapped, n * PAGE);
	/* the parent's reclaim reaches the entries it inherited */
	CHECK_EQ(uzs_group_shrink(p, 100), 100);
	CHECK_EQ(gstats(p).zswpwb, 100);
	CHECK_EQ(load_corpus(uzs, slots, 0, n), 0);
	CHECK_EQ(gstats(p).zswpin, n - 100);
	CHECK_EQ(gstats(p).zswap, 0);
	CHECK_EQ(estats(uzs).groups_dying, 0);
	free(slots);
	uzs_close(uzs);
}

/* Sum of every group's own share = the engine's totals. */
static void check_sums(struct uzs *uzs, struct uzs_group **groups, int nr)
{
	struct uzs_group_stats local;
	uint64_t zswap = 0, zswapped = 0, incomp = 0;
	struct uzs_stats st;

	for (int i = 0; i < nr; i++) {
		CHECK_EQ(uzs_group_get_local_stats(groups[i], &local), 0);
		zswap += local.zswap;
		zswapped += local.zswapped;
		incomp += local.zswap_incomp;
	}
	uzs_get_stats(uzs, &st);
	CHECK_EQ(zswap, st.compressed_bytes);
	CHECK(zswap <= st.pool_total_size);
	CHECK_EQ(zswapped, st.stored_pages * PAGE);
	CHECK_EQ(incomp, st.stored_incompressible_pages);
}

static void test_group_stats_add_up(void)
{
	struct uzs *uzs = open_pool(1 << 20);
	struct uzs_group *all[5];
	unsigned char *page = aligned_alloc(PAGE, PAGE);
	size_t n = 400;
	uzs_slot_t *slots = calloc(4 * n + 10, sizeof(*slots));
	FILE *out = tmpfile();
	char line[256];
	int group_lines = 0;

	all[0] = uzs_root_group(uzs);
	all[1] = new_group(uzs, NULL, "a");
	all[2] = new_group(uzs, all[1], "a1");
	all[3] = new_group(uzs, NULL, "b");
	all[4] = new_group(uzs, all[3], "b1");
	for (int i = 0; i < 4; i++)
		store_corpus(uzs, i ? all[i + 1] : NULL, slots + i * n, i * n, n);
	for (int i = 0; i < 10; i++) {
		random_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, all[2], page, &slots[4 * n + i]), 0);
	}
	settled(uzs);
	check_sums(uzs, all, 5);
	CHECK_EQ(uzs_print_group_stats(uzs, out), 0);
	rewind(out);
	while (fgets(line, sizeof(line), out))
		group_lines += !strncmp(line, "group /", 7);
	CHECK_EQ(group_lines, 5);
	fclose(out);
	for (size_t i = 0; i < 4 * n + 10; i++)
		CHECK_EQ(uzs_free(uzs, slots[i]), 0);
	settled(uzs);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(gstats(all[i]).zswap, 0);
		CHECK_EQ(gstats(all[i]).zswapped, 0);
		CHECK_EQ(gstats(all[i]).zswap_incomp, 0);
	}
	free(page);
	free(slots);
	uzs_close(uzs);
}

/* ---- charges stay exact under racing swap-out, swap-in, free, writeback, removal ---- */

#define STRESS_THREADS 4
#define STRESS_ROUNDS 40
#define STRESS_PAGES 96

struct stress_ctx {
	struct uzs *uzs;
	struct uzs_group *parent;
	int id;
	size_t bad;
	uzs_slot_t *orphans; /* slots of removed groups, freed at the end */
	size_t nr_orphans;
};

static void stress_round(struct stress_ctx *x, int round, uzs_slot_t *slots, size_t *first)
{
	char name[32];
	struct uzs_group *g = NULL;
	unsigned char *page = aligned_alloc(PAGE, PAGE);

	snprintf(name, sizeof(name), "t%d-r%d", x->id, round);
	memset(slots, 0, STRESS_PAGES * sizeof(*slots));
	if (uzs_group_create(x->uzs, x->parent, name, &g)) {
		x->bad++;
		free(page);
		return;
	}
	uzs_group_set_zswap_max(g, (uint64_t)(round % 4) * (64 << 10) + (32 << 10));
	if (round % 5 == 0)
		uzs_group_set_zswap_writeback(g, false);
	*first = (size_t)(x->id * 7919 + round * 131);
	for (size_t i = 0; i < STRESS_PAGES; i++)
		if (uzs_swap_out(x->uzs, g, corpus_page(*first + i), &slots[i]))
			slots[i] = 0; /* refused: kept by the caller, which is fine */
	/* half come back now, a quarter are dropped, a quarter outlive the group */
	for (size_t i = 0; i < STRESS_PAGES; i++) {
		if (!slots[i] || i % 4 == 3)
			continue;
		if (i % 2 == 0) {
			x->bad += uzs_swap_in(x->uzs, slots[i], page, UZS_SWAPIN_FREE) != 0 ||
				  memcmp(page, corpus_page(*first + i), PAGE) != 0;
		} else {
			x->bad += uzs_free(x->uzs, slots[i]) != 0;
		}
		slots[i] = 0;
	}
	if (round % 3 == 0)
		uzs_group_shrink(g, 4);
	x->bad += uzs_group_remove(g) != 0;
	free(page);
}

static void *stress_thread(void *arg)
{
	struct stress_ctx *x = arg;
	uzs_slot_t slots[STRESS_PAGES];
	unsigned char *page = aligned_alloc(PAGE, PAGE);

	for (int round = 0; round < STRESS_ROUNDS; round++) {
		size_t first = 0;

		stress_round(x, round, slots, &first);
		/* the survivors of the removed group: still readable through the parent */
		for (size_t i = 3; i < STRESS_PAGES; i += 4) {
			if (!slots[i])
				continue;
			if (round % 2) {
				x->bad += uzs_swap_in(x->uzs, slots[i], page, 0) != 0 ||
					  memcmp(page, corpus_page(first + i), PAGE) != 0;
			}
			x->orphans[x->nr_orphans++] = slots[i];
		}
	}
	free(page);
	return NULL;
}

static void test_charges_exact_under_stress(void)
{
	struct uzs *uzs = open_pool(768 << 10);
	struct uzs_group *parent = new_group(uzs, NULL, "stress");
	struct uzs_group *all[2] = {uzs_root_group(uzs), parent};
	struct stress_ctx ctx[STRESS_THREADS];
	pthread_t tid[STRESS_THREADS];
	size_t bad = 0;

	for (int t = 0; t < STRESS_THREADS; t++) {
		ctx[t] = (struct stress_ctx){.uzs = uzs, .parent = parent, .id = t};
		ctx[t].orphans = calloc(STRESS_ROUNDS * STRESS_PAGES, sizeof(uzs_slot_t));
		CHECK_EQ(pthread_create(&tid[t], NULL, stress_thread, &ctx[t]), 0);
	}
	for (int t = 0; t < STRESS_THREADS; t++) {
		pthread_join(tid[t], NULL);
		bad += ctx[t].bad;
	}
	CHECK_EQ(bad, 0);
	settled(uzs);
	check_sums(uzs, all, 2);
	CHECK_EQ(estats(uzs).groups, 2);
	for (int t = 0; t < STRESS_THREADS; t++) {
		for (size_t i = 0; i < ctx[t].nr_orphans; i++)
			CHECK_EQ(uzs_free(uzs, ctx[t].orphans[i]), 0);
		free(ctx[t].orphans);
	}
	settled(uzs);
	CHECK_EQ(estats(uzs).stored_pages, 0);
	CHECK_EQ(estats(uzs).swap_slots_used, 0);
	CHECK_EQ(estats(uzs).groups_dying, 0);
	CHECK_EQ(gstats(parent).zswap, 0);
	CHECK_EQ(gstats(parent).zswapped, 0);
	CHECK_EQ(gstats(parent).zswap_incomp, 0);
	CHECK(gstats(parent).zswpin > 0);
	CHECK(gstats(parent).zswpwb > 0);
	CHECK(gstats(parent).zswpout >= gstats(parent).zswpin + gstats(parent).zswpwb);
	uzs_close(uzs);
}

int main(void)
{
	corpus = corpus_load(&corpus_pages);
	if (!corpus)
		return 1;
	RUN(test_zswap_usage);
	RUN(test_swapin_nozswap);
	RUN(test_zswapin);
	RUN(test_zswap_writeback_enabled);
	RUN(test_zswap_writeback_disabled);
	RUN(test_zswap_writeback_disabled_by_parent);
	RUN(test_no_invasive_cgroup_shrink);
	RUN(test_zswap_incompressible);
	RUN(test_parent_limit_covers_children);
	RUN(test_global_reclaim_round_robin);
	RUN(test_remove_group_at_shrink_cursor);
	RUN(test_group_names_and_busy);
	RUN(test_removal_reparents);
	RUN(test_group_stats_add_up);
	RUN(test_charges_exact_under_stress);
	free(corpus);
	return CHECK_DONE();
}
