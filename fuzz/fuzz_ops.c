/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops — libFuzzer target: each input is a sequence of operations on one instance
 * (ops.h), checked after every step against a reference model of what the API promises.
 *
 * The pool limit (64 MiB) is far above what the swap file's 255 pages can need and the
 * shrinker is off, so the shrink worker never writes back on its own: every figure is
 * exact at every step, and pages leave the cache for the file only when an operation
 * asks for it (uzs_shrink, uzs_group_shrink, a store over a group's zswap_max). Which
 * pages such a writeback takes is the engine's choice; the model finds them with
 * uzs_test_cached and checks each was one it was allowed to take.
 *
 * FUZZ_OPS_TRACE=1 prints every operation, to read a finding.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "uzswap.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE
/* 1 MiB: 256 slots, slot 0 never handed out, so 255 pages fill the file and the model
 * stays small. */
#define SWAPFILE_BYTES (1u << 20)
#define NSLOTS 256u
#define USABLE_SLOTS (NSLOTS - 1)
#define MAX_ORDER 4 /* runs of up to 16 pages */
#define RUN_PAGES (1u << MAX_ORDER)
#define MAX_LIVE_GROUPS 8
#define MAX_GROUPS 32 /* records per input: removed groups keep theirs */
#define FULL_SCAN_EVERY 64
#define NO_WRITEBACK (-2) /* sync_writeback scope: the operation may write nothing back */
#define ANY_GROUP (-1)
/* The model's own bookkeeping and checks: coverage of their loops tells the fuzzer
 * nothing about the engine and cost half the time of a run. */
#define NO_COV __attribute__((no_sanitize("coverage")))

struct mslot {
	bool live;
	bool handed; /* an exclusive load took the page: swap-ins get -ENODATA */
	bool cached;
	bool held;   /* uzs_run_hold */
	uint8_t kind;
	uint8_t owner; /* the group charged at store time (a record index) */
	uint16_t count;
};

struct mgroup {
	struct uzs_group *h;
	bool live;
	int parent;
	unsigned children; /* live ones */
	uint64_t zswap_max, memory_max;
	bool writeback;
	/* pages of entries charged to this group; after its removal they are its parent's
	 * share (live_group), as the figures of a removed group move to its parent */
	uint64_t zswpout, zswpin, zswpwb;
	int64_t resident; /* pages charged to this group itself */
	char name[16];
};

static struct model {
	struct uzs *uzs;
	bool exclusive;
	struct mslot slot[NSLOTS];
	uint16_t live[USABLE_SLOTS]; /* the live slots, in no order, to pick from */
	uint16_t pos[NSLOTS];	     /* where each live slot sits in live[] */
	unsigned nlive;
	struct mgroup group[MAX_GROUPS];
	unsigned ngroups, nlive_groups;
	/* engine figures as the model expects them */
	uint64_t zswpout, pswpout, zswpin, pswpin, written_back;
	uint64_t invalid, nodata, partial;
	uint64_t out_runs[UZS_RUN_ORDERS], in_runs[UZS_RUN_ORDERS];
	/* what a failed check reports */
	size_t op_index;
	const char *op_name;
} M;

static unsigned char expect[NSLOTS][PAGE];
static _Alignas(PAGE) unsigned char pages[RUN_PAGES * PAGE];
static _Alignas(PAGE) unsigned char back[RUN_PAGES * PAGE];
static unsigned long long nr_ops;
static bool trace;

/* ---- failing ---- */

static void fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void fail(int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_ops: check failed (fuzz_ops.c:%d) at operation %zu (%s): ", line,
		M.op_index, M.op_name ? M.op_name : "teardown");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define FAIL(...) fail(__LINE__, __VA_ARGS__)
#define EXPECT_EQ(a, b)                                                                    \
	do {                                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);                        \
		if (a_ != b_)                                                              \
			FAIL("%s is %lld, expected %s = %lld", #a, a_, #b, b_);            \
	} while (0)

__attribute__((destructor)) static void report_ops(void)
{
	fprintf(stderr, "fuzz_ops: %llu operations\n", nr_ops);
}

/* ---- pages ---- */

NO_COV static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

NO_COV static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

NO_COV static void fill_words(unsigned char *p, uint64_t w)
{
	for (unsigned i = 0; i < PAGE; i += 8)
		memcpy(p + i, &w, 8);
}

/* Words of a small vocabulary: every compressor at every level shrinks it well below a
 * page, so with no limit in the way it is always cached. */
NO_COV static void text_page(unsigned char *p, uint64_t x)
{
	static const char *const words[16] = {
		"swap ", "page ", "slot ", "zswap ", "pool ", "the ", "of ", "cache ",
		"group ", "run ", "lz4 ", "entry ", "write ", "back ", "load ", "store ",
	};
	unsigned off = 0;

	while (off < PAGE) {
		const char *w = words[xorshift(&x) & 15];
		size_t len = strlen(w);

		if (len > PAGE - off)
			len = PAGE - off;
		memcpy(p + off, w, len);
		off += (unsigned)len;
	}
}

NO_COV static void random_page(unsigned char *p, uint64_t x)
{
	for (unsigned i = 0; i < PAGE; i += 8) {
		uint64_t w = xorshift(&x);

		memcpy(p + i, &w, 8);
	}
}

/* One word differs: at the first or last position half the time, the two words
 * same-filled detection looks at first. */
NO_COV static void near_page(unsigned char *p, uint64_t x, uint32_t seed)
{
	unsigned at = seed % 4 == 0 ? 0 : seed % 4 == 1 ? PAGE / 8 - 1 : seed % (PAGE / 8);
	uint64_t w = x ^ (mix64(x) | 1);

	fill_words(p, x);
	memcpy(p + at * 8, &w, 8);
}

NO_COV static void gen_page(unsigned char *p, unsigned kind, uint32_t seed)
{
	uint64_t x = mix64((uint64_t)seed * NR_KINDS + kind) | 1;

	switch (kind) {
	case K_ZERO:
		memset(p, 0, PAGE);
		break;
	case K_FILL:
		fill_words(p, x);
		break;
	case K_TEXT:
		text_page(p, x);
		break;
	case K_RANDOM:
		random_page(p, x);
		break;
	default:
		near_page(p, x, seed);
		break;
	}
}

static bool same_kind(unsigned kind)
{
	return kind == K_ZERO || kind == K_FILL;
}

/* ---- the model's slots and groups ---- */

NO_COV static struct uzs_stats stats(void)
{
	struct uzs_stats st;

	uzs_get_stats(M.uzs, &st);
	return st;
}

NO_COV static struct uzs_group_stats group_stats(int g)
{
	struct uzs_group_stats st;

	EXPECT_EQ(uzs_group_get_stats(M.group[g].h, &st), 0);
	return st;
}

NO_COV static void slot_add(uint64_t s, unsigned kind, int owner, bool cached,
			    const unsigned char *page)
{
	M.slot[s] = (struct mslot){ .live = true, .cached = cached, .kind = (uint8_t)kind,
				    .owner = (uint8_t)owner, .count = 1 };
	memcpy(expect[s], page, PAGE);
	M.pos[s] = (uint16_t)M.nlive;
	M.live[M.nlive++] = (uint16_t)s;
}

/* Drop one reference; at zero the slot and its cached copy are gone. */
static void slot_put(uint64_t s)
{
	unsigned at = M.pos[s];

	if (--M.slot[s].count)
		return;
	M.slot[s] = (struct mslot){ 0 };
	M.live[at] = M.live[--M.nlive];
	M.pos[M.live[at]] = (uint16_t)at;
}

static uint64_t pick_slot(uint8_t b)
{
	return M.live[b % M.nlive];
}

static int pick_group(uint8_t b)
{
	unsigned want = b % M.nlive_groups;

	for (unsigned g = 0; g < M.ngroups; g++)
		if (M.group[g].live && want-- == 0)
			return (int)g;
	FAIL("model: no live group %u", b % M.nlive_groups);
}

/* A removed group's pages are its nearest live ancestor's. */
NO_COV static int live_group(int g)
{
	while (!M.group[g].live)
		g = M.group[g].parent;
	return g;
}

NO_COV static bool within(int g, int top)
{
	for (; g >= 0; g = M.group[g].parent)
		if (g == top)
			return true;
	return false;
}

static bool writeback_on(int g)
{
	for (; g >= 0; g = M.group[g].parent)
		if (!M.group[g].writeback)
			return false;
	return true;
}

static bool zswap_disabled(int g)
{
	for (; g > 0; g = M.group[g].parent)
		if (M.group[g].zswap_max == 0)
			return true;
	return false;
}

/* The widest subtree a store into g may reclaim from for a zswap_max on its way up. */
static int reclaim_scope(int g)
{
	int top = NO_WRITEBACK;

	if (zswap_disabled(g))
		return NO_WRITEBACK;
	for (; g > 0; g = M.group[g].parent)
		if (M.group[g].zswap_max != UZS_MAX)
			top = g;
	return top;
}

/* Is there an aligned window of nr free slots (slot 0 is never handed out)? */
NO_COV static bool room_for(unsigned nr)
{
	for (unsigned base = nr; base + nr <= NSLOTS; base += nr) {
		unsigned i = 0;

		while (i < nr && !M.slot[base + i].live)
			i++;
		if (i == nr)
			return true;
	}
	return nr == 1 && M.nlive < USABLE_SLOTS;
}

/* ---- checks after every operation ---- */

NO_COV static void check_engine(const struct uzs_stats *st)
{
	unsigned cached = 0, same = 0, raw = 0;

	for (unsigned i = 0; i < M.nlive; i++) {
		const struct mslot *m = &M.slot[M.live[i]];

		cached += m->cached;
		same += m->cached && same_kind(m->kind);
		raw += m->cached && m->kind == K_RANDOM;
	}
	EXPECT_EQ(st->swap_slots_used, M.nlive);
	EXPECT_EQ(st->zswpout + st->pswpout, M.zswpout + M.pswpout);
	EXPECT_EQ(st->zswpin + st->pswpin, M.zswpin + M.pswpin);
	EXPECT_EQ(st->zswpout, M.zswpout);
	EXPECT_EQ(st->zswpin, M.zswpin);
	EXPECT_EQ(st->stored_pages, cached);
	EXPECT_EQ(st->same_filled_pages, same);
	EXPECT_EQ(st->stored_incompressible_pages, raw);
	EXPECT_EQ(st->written_back_pages, M.written_back);
	EXPECT_EQ(st->zswpwb, M.written_back);
	EXPECT_EQ(st->invalid_slot, M.invalid);
	EXPECT_EQ(st->nodata_slot, M.nodata);
	EXPECT_EQ(st->run_partial, M.partial);
	EXPECT_EQ(st->groups, M.nlive_groups);
	EXPECT_EQ(st->decompress_fail, 0);
	EXPECT_EQ(st->swap_io_fail, 0);
	EXPECT_EQ(st->swap_corrupt, 0);
	EXPECT_EQ(st->writeback_fail, 0);
	if (st->compressed_bytes > st->pool_total_size)
		FAIL("compressed_bytes %llu > pool_total_size %llu",
		     (unsigned long long)st->compressed_bytes,
		     (unsigned long long)st->pool_total_size);
	for (int o = 0; o < UZS_RUN_ORDERS; o++) {
		EXPECT_EQ(st->zswpout_runs[o], M.out_runs[o]);
		EXPECT_EQ(st->zswpin_runs[o], M.in_runs[o]);
	}
}

/* What each live group's own share must be: the pages of the entries charged to it or to
 * its removed descendants. */
struct shares {
	uint64_t pages[MAX_GROUPS], raw[MAX_GROUPS], out[MAX_GROUPS], in[MAX_GROUPS],
		wb[MAX_GROUPS];
	unsigned by_owner[MAX_GROUPS];
};

NO_COV static void model_shares(struct shares *sh)
{
	int lg[MAX_GROUPS];

	memset(sh, 0, sizeof(*sh));
	for (unsigned r = 0; r < M.ngroups; r++)
		lg[r] = live_group((int)r);
	for (unsigned i = 0; i < M.nlive; i++) {
		const struct mslot *m = &M.slot[M.live[i]];
		int g = lg[m->owner];

		if (!m->cached)
			continue;
		sh->by_owner[m->owner]++;
		sh->pages[g]++;
		sh->raw[g] += m->kind == K_RANDOM;
	}
	for (unsigned r = 0; r < M.ngroups; r++) {
		int g = lg[r];

		sh->out[g] += M.group[r].zswpout;
		sh->in[g] += M.group[r].zswpin;
		sh->wb[g] += M.group[r].zswpwb;
	}
}

/* A removed group lives on while entries charged to it or below it are cached. */
NO_COV static unsigned model_dying(const struct shares *sh)
{
	bool alive[MAX_GROUPS] = { false };
	unsigned n = 0;

	for (unsigned r = 0; r < M.ngroups; r++)
		for (int g = (int)r; sh->by_owner[r] && !M.group[g].live; g = M.group[g].parent)
			alive[g] = true;
	for (unsigned r = 0; r < M.ngroups; r++)
		n += alive[r];
	return n;
}

NO_COV static void check_groups(const struct uzs_stats *st)
{
	struct shares sh;
	uint64_t zswap = 0;

	model_shares(&sh);
	EXPECT_EQ(st->groups_dying, model_dying(&sh));
	for (unsigned g = 0; g < M.ngroups; g++) {
		struct uzs_group_stats l;

		if (!M.group[g].live)
			continue;
		EXPECT_EQ(uzs_group_get_local_stats(M.group[g].h, &l), 0);
		zswap += l.zswap;
		EXPECT_EQ(l.zswapped, sh.pages[g] * PAGE);
		EXPECT_EQ(l.zswap_incomp, sh.raw[g]);
		EXPECT_EQ(l.zswpout, sh.out[g]);
		EXPECT_EQ(l.zswpin, sh.in[g]);
		EXPECT_EQ(l.zswpwb, sh.wb[g]);
	}
	EXPECT_EQ(zswap, st->compressed_bytes);
}

/* Every slot's place (cache or file) as the model has it. */
NO_COV static void full_scan(void)
{
	for (uint64_t s = 1; s < NSLOTS; s++)
		if (uzs_test_cached(M.uzs, s) != (M.slot[s].live && M.slot[s].cached))
			FAIL("slot %llu: cached %d, model says live %d cached %d",
			     (unsigned long long)s, uzs_test_cached(M.uzs, s), M.slot[s].live,
			     M.slot[s].cached);
}

NO_COV static void check_all(void)
{
	struct uzs_stats st = stats();

	check_engine(&st);
	check_groups(&st);
	if (M.op_index % FULL_SCAN_EVERY == 0)
		full_scan();
}

/*
 * Writeback is the one change the caller asks for without naming the pages: find the
 * pages it took and check each was one it could take (not held, not same-filled, its
 * group's writeback on, inside the subtree the operation reclaims). scope: that subtree's
 * top, ANY_GROUP, or NO_WRITEBACK. Returns how many it took; *root: the root's figures
 * after (the engine's totals, far cheaper to read than uzs_get_stats).
 */
NO_COV static unsigned sync_writeback(int scope, struct uzs_group_stats *root)
{
	uint64_t delta;
	unsigned n = 0;

	*root = group_stats(0);
	delta = root->zswpwb - M.written_back;

	for (unsigned i = 0; delta && i < M.nlive; i++) {
		uint64_t s = M.live[i];
		struct mslot *m = &M.slot[s];
		int g = live_group(m->owner);

		if (!m->cached || uzs_test_cached(M.uzs, s))
			continue;
		if (m->held || same_kind(m->kind) || !writeback_on(g) || scope == NO_WRITEBACK ||
		    (scope != ANY_GROUP && !within(g, scope)))
			FAIL("slot %llu written back: held %d kind %d group %d wb %d scope %d",
			     (unsigned long long)s, m->held, m->kind, g, writeback_on(g), scope);
		m->cached = false;
		M.group[m->owner].zswpwb++;
		n++;
	}
	EXPECT_EQ(n, delta);
	M.written_back += n;
	return n;
}

static void check_cached(uint64_t s)
{
	if (M.slot[s].live)
		EXPECT_EQ(uzs_test_cached(M.uzs, s), M.slot[s].cached);
}

/* ---- swap-out ---- */

enum outcome { MUST_FAIL, MUST_CACHE, MUST_FILE, MUST_SUCCEED, MAY_FAIL };

static enum outcome predict_store(int g, unsigned nr, const uint8_t *kinds)
{
	bool wb = writeback_on(g), random = false, same = true;

	for (unsigned i = 0; i < nr; i++) {
		random |= kinds[i] == K_RANDOM;
		same &= same_kind(kinds[i]);
	}
	if (!room_for(nr))
		return MUST_FAIL;
	if (zswap_disabled(g))
		return wb ? MUST_FILE : MUST_FAIL;
	/* a page that does not compress is kept raw only if it may go to the file later */
	if (!wb && random)
		return MUST_FAIL;
	/* with no limit the pool takes everything; a same-filled page is charged nothing */
	if (reclaim_scope(g) == NO_WRITEBACK || (nr == 1 && same))
		return MUST_CACHE;
	return wb ? MUST_SUCCEED : MAY_FAIL;
}

/* Nothing stored: check_all then finds the slots in use and pswpout as they were. */
static void store_refused(int r, enum outcome want, const struct uzs_group_stats *root)
{
	if (r != -ENOSPC)
		FAIL("swap-out failed with %d", r);
	if (want != MUST_FAIL && want != MAY_FAIL)
		FAIL("swap-out refused (-ENOSPC), model expected outcome %d", want);
	EXPECT_EQ(root->zswpout, M.zswpout);
}

/* All or nothing: every page of a new run in the cache, or none. */
static bool run_cached(uint64_t first, unsigned nr)
{
	int c = uzs_test_cached(M.uzs, first);

	for (unsigned i = 1; i < nr; i++)
		if (uzs_test_cached(M.uzs, first + i) != c)
			FAIL("run at %llu of %u stored partly: slot %u differs",
			     (unsigned long long)first, nr, i);
	return c == 1;
}

/* A charged store passed every zswap_max on its way up. */
static void check_limits(int g)
{
	for (; g > 0; g = M.group[g].parent) {
		uint64_t zswap = group_stats(g).zswap;

		if (M.group[g].zswap_max != UZS_MAX && zswap > M.group[g].zswap_max)
			FAIL("group %d: zswap %llu over zswap_max %llu after a store", g,
			     (unsigned long long)zswap, (unsigned long long)M.group[g].zswap_max);
	}
}

static void check_new_run(uint64_t first, unsigned nr)
{
	if (first < 1 || first % nr || first + nr > NSLOTS)
		FAIL("swap-out of %u pages got slot %llu", nr, (unsigned long long)first);
	for (unsigned i = 0; i < nr; i++)
		if (M.slot[first + i].live)
			FAIL("swap-out got slot %llu, which is live",
			     (unsigned long long)first + i);
}

/* The new pages counted where they went (check_all checks pswpout against the model). */
static void count_store(int g, unsigned nr, bool cached, const struct uzs_group_stats *root)
{
	unsigned order = (unsigned)__builtin_ctz(nr);

	EXPECT_EQ(root->zswpout - M.zswpout, cached ? nr : 0);
	if (cached) {
		M.zswpout += nr;
		M.out_runs[order]++;
		M.group[g].zswpout += nr;
	} else {
		M.pswpout += nr;
	}
}

/* Swap out the nr pages in pages[] into group g, as one run or (nr 1) one page. */
static void do_store(int g, unsigned nr, const uint8_t *kinds, bool as_run, bool null_root)
{
	struct uzs_group_stats after;
	enum outcome want = predict_store(g, nr, kinds);
	struct uzs_group *h = g == 0 && null_root ? NULL : M.group[g].h;
	uzs_slot_t first = 0;
	bool cached;
	int r;

	r = as_run ? uzs_swap_out_run(M.uzs, h, pages, nr, &first)
		   : uzs_swap_out(M.uzs, h, pages, &first);
	sync_writeback(reclaim_scope(g), &after);
	if (r) {
		store_refused(r, want, &after);
		return;
	}
	if (want == MUST_FAIL)
		FAIL("swap-out of %u pages succeeded, model expected -ENOSPC", nr);
	check_new_run(first, nr);
	cached = run_cached(first, nr);
	if ((want == MUST_CACHE && !cached) || (want == MUST_FILE && cached))
		FAIL("swap-out of %u pages: cached %d, model expected outcome %d", nr, cached,
		     want);
	if (!cached && !writeback_on(g))
		FAIL("a page of group %d, whose writeback is off, went to the file", g);
	count_store(g, nr, cached, &after);
	if (cached && !(nr == 1 && same_kind(kinds[0])))
		check_limits(g);
	for (unsigned i = 0; i < nr; i++)
		slot_add(first + i, kinds[i], g, cached, pages + (size_t)i * PAGE);
}

static void op_out(const uint8_t *a)
{
	uint8_t kind = a[1] % NR_KINDS;

	gen_page(pages, kind, (uint32_t)(a[2] | a[3] << 8));
	do_store(pick_group(a[0]), 1, &kind, false, a[1] & 0x80);
}

static void op_out_run(const uint8_t *a)
{
	unsigned nr = 1u << (a[1] % (MAX_ORDER + 1));
	uint32_t seed = (uint32_t)(a[3] | a[4] << 8);
	uint8_t kinds[RUN_PAGES];

	for (unsigned i = 0; i < nr; i++) {
		kinds[i] = (uint8_t)(((a[2] & 0x80) ? a[2] + i : a[2]) % NR_KINDS);
		gen_page(pages + (size_t)i * PAGE, kinds[i], seed + i * 131);
	}
	do_store(pick_group(a[0]), nr, kinds, true, a[1] & 0x80);
}

/* ---- swap-in, free, dup ---- */

static void count_load(uint64_t first, unsigned nr, bool cached)
{
	if (!cached) {
		M.pswpin += nr;
		return;
	}
	M.zswpin += nr;
	M.in_runs[__builtin_ctz(nr)]++;
	for (unsigned i = 0; i < nr; i++)
		M.group[M.slot[first + i].owner].zswpin++;
}

/* After a good load: an exclusive load from the sole holder takes the page over; FREE
 * drops the caller's reference. */
static void after_load(uint64_t first, unsigned nr, unsigned flags)
{
	bool sole = true;

	for (unsigned i = 0; i < nr; i++)
		sole &= M.slot[first + i].count == 1;
	for (unsigned i = 0; i < nr; i++) {
		struct mslot *m = &M.slot[first + i];

		if (sole && (M.exclusive || (flags & UZS_SWAPIN_FREE)))
			m->cached = false;
		if (flags & UZS_SWAPIN_FREE)
			slot_put(first + i);
		else if (sole && M.exclusive)
			m->handed = true;
		check_cached(first + i);
	}
}

NO_COV static void check_loaded(uint64_t first, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		if (memcmp(back + (size_t)i * PAGE, expect[first + i], PAGE))
			FAIL("slot %llu (kind %d, cached %d) came back with other bytes",
			     (unsigned long long)first + i, M.slot[first + i].kind,
			     M.slot[first + i].cached);
}

static void swap_in_one(uint64_t s, unsigned flags)
{
	bool cached = M.slot[s].cached;
	int r;

	memset(back, 0xa5, PAGE);
	r = uzs_swap_in(M.uzs, s, back, flags);
	if (M.slot[s].handed) {
		EXPECT_EQ(r, -ENODATA);
		M.nodata++;
		return;
	}
	EXPECT_EQ(r, 0);
	check_loaded(s, 1);
	count_load(s, 1, cached);
	after_load(s, 1, flags);
}

/* The error a call on the nr slots from first must give before it looks at pages, or 0:
 * -EINVAL for a range that is not one run (counted nowhere), or the first slot that is
 * not live (invalid_slot) or, with need_data, handed over (nodata_slot). */
static int range_error(uint64_t first, unsigned nr, bool need_data)
{
	if (first < 1 || first + nr > NSLOTS)
		return -EINVAL;
	for (unsigned i = 0; i < nr; i++) {
		if (!M.slot[first + i].live) {
			M.invalid++;
			return -EINVAL;
		}
		if (need_data && M.slot[first + i].handed) {
			M.nodata++;
			return -ENODATA;
		}
	}
	return 0;
}

/* A run window around a live slot (or slot b when none is live). */
static uint64_t run_base(uint8_t b, unsigned nr)
{
	return (M.nlive ? pick_slot(b) : b) & ~(uint64_t)(nr - 1);
}

static unsigned cached_in(uint64_t first, unsigned nr)
{
	unsigned c = 0;

	for (unsigned i = 0; i < nr; i++)
		c += M.slot[first + i].cached;
	return c;
}

NO_COV static bool untouched(unsigned nr)
{
	for (size_t i = 0; i < (size_t)nr * PAGE; i++)
		if (back[i] != 0xa5)
			return false;
	return true;
}

static void op_in_run(const uint8_t *a)
{
	unsigned nr = 1u << (a[1] % (MAX_ORDER + 1)), flags = a[2] & UZS_SWAPIN_FREE;
	uint64_t first = run_base(a[0], nr);
	int want = range_error(first, nr, true);
	unsigned c = want ? 0 : cached_in(first, nr);
	int r;

	memset(back, 0xa5, (size_t)nr * PAGE);
	r = uzs_swap_in_run(M.uzs, first, back, nr, flags);
	if (!want && c && c < nr) {
		/* part in the cache, part in the file: refused, nothing touched */
		M.partial++;
		want = -EIO;
	}
	EXPECT_EQ(r, want);
	if (r == -EIO && !untouched(nr))
		FAIL("partial run at %llu: -EIO but the pages were written",
		     (unsigned long long)first);
	if (r)
		return;
	check_loaded(first, nr);
	count_load(first, nr, c == nr);
	after_load(first, nr, flags);
}

static void bad_slot_call(uint64_t s, unsigned call);

static void op_in(const uint8_t *a)
{
	if (!M.nlive) {
		bad_slot_call(a[0], 0);
		return;
	}
	swap_in_one(pick_slot(a[0]), a[1] & UZS_SWAPIN_FREE);
}

static void op_free(const uint8_t *a)
{
	uint64_t s;

	if (!M.nlive) {
		bad_slot_call(a[0], 1);
		return;
	}
	s = pick_slot(a[0]);
	EXPECT_EQ(uzs_free(M.uzs, s), 0);
	slot_put(s);
	check_cached(s);
}

static void op_dup(const uint8_t *a)
{
	uint64_t s;
	int r;

	if (!M.nlive) {
		bad_slot_call(a[0], 2);
		return;
	}
	s = pick_slot(a[0]);
	r = uzs_dup(M.uzs, s);
	if (M.slot[s].handed) {
		EXPECT_EQ(r, -ENODATA);
		M.nodata++;
		return;
	}
	EXPECT_EQ(r, 0);
	M.slot[s].count++;
}

/* ---- presence and holds ---- */

static uint64_t window_first(const uint8_t *a, unsigned nr)
{
	return run_base(a[0], nr) + ((a[2] & 0x80) ? a[2] % nr : 0);
}

static void op_present(const uint8_t *a)
{
	unsigned nr = 1u << (a[1] % (MAX_ORDER + 1));
	uint64_t first = window_first(a, nr);
	int want = range_error(first, nr, false);

	EXPECT_EQ(uzs_present(M.uzs, first, nr), want ? want : (int)cached_in(first, nr));
}

/* The engine holds slot by slot and stops at the first it cannot hold, undoing the rest. */
static void hold(uint64_t first, unsigned nr)
{
	int want = first < 1 || first + nr > NSLOTS ? -EINVAL : 0;

	for (unsigned i = 0; !want && i < nr; i++) {
		if (!M.slot[first + i].live) {
			M.invalid++;
			want = -EINVAL;
		} else if (M.slot[first + i].held) {
			want = -EBUSY;
		}
	}
	EXPECT_EQ(uzs_run_hold(M.uzs, first, nr), want);
	for (unsigned i = 0; !want && i < nr; i++)
		M.slot[first + i].held = true;
}

static void release(uint64_t first, unsigned nr)
{
	bool in_range = first >= 1 && first + nr <= NSLOTS;

	EXPECT_EQ(uzs_run_release(M.uzs, first, nr), in_range ? 0 : -EINVAL);
	for (unsigned i = 0; in_range && i < nr; i++)
		M.slot[first + i].held = false;
}

static void op_hold(const uint8_t *a)
{
	unsigned nr = 1u << (a[1] % (MAX_ORDER + 1));
	uint64_t first = window_first(a, nr);

	if (a[2] & 1)
		release(first, nr);
	else
		hold(first, nr);
}

/* ---- calls naming a slot that is not allocated ---- */

static void bad_slot_call(uint64_t s, unsigned call)
{
	uint64_t invalid = M.invalid;
	int r;

	switch (call % 6) {
	case 0:
		r = uzs_swap_in(M.uzs, s, back, 0);
		break;
	case 1:
		r = uzs_free(M.uzs, s);
		break;
	case 2:
		r = uzs_dup(M.uzs, s);
		break;
	case 3:
		r = uzs_present(M.uzs, s, 1);
		break;
	case 4:
		r = uzs_swap_in_run(M.uzs, s, back, 1, 0);
		break;
	default:
		r = uzs_run_hold(M.uzs, s, 1);
		break;
	}
	EXPECT_EQ(r, -EINVAL);
	/* whether a slot outside the file counts as invalid_slot or as a bad range is the
	 * engine's business: take either */
	M.invalid = stats().invalid_slot;
	if (M.invalid != invalid + 1 && !(call % 6 >= 3 && M.invalid == invalid))
		FAIL("invalid_slot went from %llu to %llu for slot %llu",
		     (unsigned long long)invalid, (unsigned long long)M.invalid,
		     (unsigned long long)s);
}

static void op_bad_slot(const uint8_t *a)
{
	uint64_t s = a[0];

	if (a[1] & 0x40)
		s = NSLOTS + a[0];
	else if (a[1] & 0x80)
		s = UINT64_MAX - a[0];
	while (s < NSLOTS && M.slot[s].live)
		s = (s + 1) % NSLOTS; /* slot 0 is never live */
	bad_slot_call(s, a[1]);
}

/* ---- groups ---- */

static int child_of(int parent)
{
	for (unsigned g = 0; g < M.ngroups; g++)
		if (M.group[g].live && M.group[g].parent == parent)
			return (int)g;
	return -1;
}

static void bad_name(char *name, size_t size, unsigned which)
{
	static const char *const bad[] = { "", ".", "..", "a/b", "sp ace", "tab\t", "nl\n" };

	if (which % 8 == 7)
		snprintf(name, size, "%0*d", UZS_GROUP_NAME_MAX + 1, 0);
	else
		snprintf(name, size, "%s", bad[which % 8]);
}

static void add_group(int parent, struct uzs_group *h, const char *name)
{
	struct mgroup *g = &M.group[M.ngroups++];

	*g = (struct mgroup){ .h = h, .live = true, .parent = parent, .zswap_max = UZS_MAX,
			      .memory_max = UZS_MAX, .writeback = true };
	snprintf(g->name, sizeof(g->name), "%s", name);
	if (parent >= 0)
		M.group[parent].children++;
	M.nlive_groups++;
}

static void op_group_create(const uint8_t *a)
{
	int parent = pick_group(a[0]), dup = child_of(parent), want = 0;
	unsigned mode = a[1] % 4;
	struct uzs_group *h = NULL, *ph = parent == 0 && (a[1] & 4) ? NULL : M.group[parent].h;
	char name[80];

	if (mode == 2 && dup >= 0) {
		snprintf(name, sizeof(name), "%s", M.group[dup].name);
		want = -EEXIST;
	} else if (mode == 3 || M.nlive_groups >= MAX_LIVE_GROUPS || M.ngroups >= MAX_GROUPS) {
		bad_name(name, sizeof(name), a[1] >> 3);
		want = -EINVAL;
	} else {
		snprintf(name, sizeof(name), "g%u", M.ngroups);
	}
	EXPECT_EQ(uzs_group_create(M.uzs, ph, name, &h), want);
	if (want)
		return;
	if (!h || strcmp(uzs_group_name(h), name) || uzs_group_parent(h) != M.group[parent].h)
		FAIL("group %s created with the wrong name or parent", name);
	add_group(parent, h, name);
}

static void op_group_remove(const uint8_t *a)
{
	int g = pick_group(a[0]);
	struct mgroup *m = &M.group[g];
	int want = g == 0 ? -EINVAL : m->children ? -EBUSY : 0;

	EXPECT_EQ(uzs_group_remove(m->h), want);
	if (want)
		return;
	m->live = false;
	m->h = NULL;
	M.group[m->parent].children--;
	M.nlive_groups--;
}

static uint64_t limit_value(uint8_t v, uint64_t unit)
{
	return v % 4 == 0 ? 0 : v % 4 == 1 ? UZS_MAX : (uint64_t)(v >> 2) * unit;
}

static void op_zswap_max(const uint8_t *a)
{
	int g = pick_group(a[0]);
	uint64_t v = limit_value(a[1], 1024);

	EXPECT_EQ(uzs_group_set_zswap_max(M.group[g].h, v), g ? 0 : -EINVAL);
	if (g)
		M.group[g].zswap_max = v;
	EXPECT_EQ(group_stats(g).zswap_max, M.group[g].zswap_max);
}

/* Resident pages charged to g's subtree, removed descendants included (they never
 * left the ancestors' counts). */
static int64_t subtree_resident(int g)
{
	int64_t n = 0;

	for (unsigned r = 0; r < M.ngroups; r++)
		if (within((int)r, g))
			n += M.group[r].resident;
	return n;
}

/* memory.current: resident pages (never below zero) plus the zswap charge. */
static uint64_t model_current(int g, const struct uzs_group_stats *st)
{
	int64_t resident = subtree_resident(g);

	return (resident < 0 ? 0 : (uint64_t)resident) * PAGE + st->zswap;
}

static uint64_t model_excess(int g)
{
	uint64_t excess = 0;

	for (; g > 0; g = M.group[g].parent) {
		struct uzs_group_stats st = group_stats(g);
		uint64_t cur = model_current(g, &st), max = M.group[g].memory_max;

		EXPECT_EQ(st.memory_current, cur);

		if (max != UZS_MAX && cur > max && cur - max > excess)
			excess = cur - max;
	}
	return excess;
}

static void op_memory_max(const uint8_t *a)
{
	int g = pick_group(a[0]);
	uint64_t v = limit_value(a[1], 1024);

	EXPECT_EQ(uzs_group_set_memory_max(M.group[g].h, v), g ? 0 : -EINVAL);
	if (g)
		M.group[g].memory_max = v;
	EXPECT_EQ(group_stats(g).memory_max, M.group[g].memory_max);
	EXPECT_EQ(uzs_group_memory_excess(M.group[g].h), model_excess(g));
}

static void op_resident(const uint8_t *a)
{
	int g = pick_group(a[0]);
	long pages = (long)(a[1] % 32) - 16;

	EXPECT_EQ(uzs_group_charge_resident(M.group[g].h, pages), 0);
	M.group[g].resident += pages;
	EXPECT_EQ(uzs_group_memory_excess(M.group[g].h), model_excess(g));
}

static void op_writeback(const uint8_t *a)
{
	int g = pick_group(a[0]);

	EXPECT_EQ(uzs_group_set_zswap_writeback(M.group[g].h, a[1] & 1), g ? 0 : -EINVAL);
	if (g)
		M.group[g].writeback = a[1] & 1;
	EXPECT_EQ(group_stats(g).zswap_writeback, M.group[g].writeback);
}

/* ---- compressors, reclaim, compaction ---- */

static void op_compressor(const uint8_t *a)
{
	static const struct {
		const char *name;
		int level, ok;
	} table[] = {
		{ "lz4", 0, 1 },      { "lz4", 2, 1 },     { "zstd", 0, 1 },   { "zstd", 1, 1 },
		{ "zstd", -1, 1 },    { "lzo", 0, 1 },     { "lzo1x", 0, 1 },  { "deflate", 1, 1 },
		{ "deflate", 0, 1 },  { "zlib", 0, 1 },    { "zstd:1", 0, 1 }, { "LZ4", 0, 1 },
		{ "lzo", 2, 0 },      { "deflate", 10, 0 }, { "brotli", 0, 0 }, { "lz4:x", 0, 0 },
		{ NULL, 0, 0 },
	};
	unsigned i = a[0] % (sizeof(table) / sizeof(table[0]));

	EXPECT_EQ(uzs_set_compressor(M.uzs, table[i].name, table[i].level),
		  table[i].ok ? 0 : -EINVAL);
}

static long shrink_count(uint8_t b)
{
	return b == 255 ? -1 : b >= 240 ? 64 + b : b % 16;
}

static void op_shrink(const uint8_t *a)
{
	long n = shrink_count(a[0]), r = uzs_shrink(M.uzs, n);
	struct uzs_group_stats st;

	if (n < 0) {
		EXPECT_EQ(r, -EINVAL);
		return;
	}
	if (r < 0 || r > n)
		FAIL("uzs_shrink(%ld) returned %ld", n, r);
	EXPECT_EQ(sync_writeback(ANY_GROUP, &st), r);
}

static void op_group_shrink(const uint8_t *a)
{
	int g = pick_group(a[0]);
	long n = shrink_count(a[1]), r = uzs_group_shrink(M.group[g].h, n);
	struct uzs_group_stats st;

	if (n < 0) {
		EXPECT_EQ(r, -EINVAL);
		return;
	}
	if (!writeback_on(g)) {
		EXPECT_EQ(r, -EPERM);
		return;
	}
	if (r < 0 || r > n)
		FAIL("uzs_group_shrink(%d, %ld) returned %ld", g, n, r);
	EXPECT_EQ(sync_writeback(g, &st), r);
}

static void op_compact(const uint8_t *a)
{
	(void)a;
	if (uzs_compact(M.uzs) < 0)
		FAIL("uzs_compact failed");
}

/* ---- printed figures ---- */

static void group_path(int g, char *buf, size_t size)
{
	char parent[256];

	if (g == 0) {
		snprintf(buf, size, "/");
		return;
	}
	group_path(M.group[g].parent, parent, sizeof(parent));
	snprintf(buf, size, "%s/%s", M.group[g].parent ? parent : "", M.group[g].name);
}

/* "name value" lines; a few of the values are known exactly. */
static void check_stat_lines(char *text)
{
	struct uzs_stats st = stats();
	unsigned lines = 0;

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[64];
		unsigned long long v;

		if (sscanf(line, "%63s %llu", name, &v) != 2)
			FAIL("uzs_print_stats line \"%s\"", line);
		lines++;
		if (!strcmp(name, "stored_pages"))
			EXPECT_EQ(v, st.stored_pages);
		else if (!strcmp(name, "swap_slots_used"))
			EXPECT_EQ(v, M.nlive);
		else if (!strcmp(name, "zswpout"))
			EXPECT_EQ(v, M.zswpout);
		else if (!strcmp(name, "groups"))
			EXPECT_EQ(v, M.nlive_groups);
	}
	if (lines < 28)
		FAIL("uzs_print_stats printed %u lines", lines);
}

/* One "group /path" line for every live group, and no other. */
static void check_group_lines(char *text)
{
	bool seen[MAX_GROUPS] = { false };
	unsigned groups = 0;

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char path[256];
		unsigned g = 0;

		if (strncmp(line, "group ", 6))
			continue;
		for (; g < M.ngroups; g++) {
			group_path((int)g, path, sizeof(path));
			if (M.group[g].live && !seen[g] && !strcmp(line + 6, path))
				break;
		}
		if (g == M.ngroups)
			FAIL("uzs_print_group_stats printed \"%s\", no such live group", line);
		seen[g] = true;
		groups++;
	}
	EXPECT_EQ(groups, M.nlive_groups);
}

static void op_print(const uint8_t *a)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		FAIL("open_memstream");
	EXPECT_EQ((a[0] & 1) ? uzs_print_group_stats(M.uzs, f) : uzs_print_stats(M.uzs, f), 0);
	fclose(f);
	if (a[0] & 1)
		check_group_lines(text);
	else
		check_stat_lines(text);
	free(text);
}

/* ---- one input ---- */

static void (*const op_fn[OP_NR])(const uint8_t *) = {
	[OP_OUT] = op_out,
	[OP_OUT_RUN] = op_out_run,
	[OP_IN] = op_in,
	[OP_IN_RUN] = op_in_run,
	[OP_FREE] = op_free,
	[OP_DUP] = op_dup,
	[OP_PRESENT] = op_present,
	[OP_BAD_SLOT] = op_bad_slot,
	[OP_GROUP_CREATE] = op_group_create,
	[OP_GROUP_REMOVE] = op_group_remove,
	[OP_ZSWAP_MAX] = op_zswap_max,
	[OP_MEMORY_MAX] = op_memory_max,
	[OP_WRITEBACK] = op_writeback,
	[OP_COMPRESSOR] = op_compressor,
	[OP_SHRINK] = op_shrink,
	[OP_GROUP_SHRINK] = op_group_shrink,
	[OP_COMPACT] = op_compact,
	[OP_HOLD] = op_hold,
	[OP_RESIDENT] = op_resident,
	[OP_PRINT] = op_print,
};

static void open_instance(uint8_t flags, uint8_t comp)
{
	struct uzs_config c;

	memset(&M, 0, sizeof(M));
	uzs_config_init(&c);
	c.compressor = fuzz_compressors[comp % NR_FUZZ_COMPRESSORS];
	c.max_pool_bytes = 64ull << 20;
	c.shrinker_enabled = false;
	c.exclusive_loads = flags & 1;
	c.encrypt_swapfile = flags & 2;
	c.swapfile_bytes = SWAPFILE_BYTES;
	M.exclusive = c.exclusive_loads;
	EXPECT_EQ(uzs_open(&c, &M.uzs), 0);
	add_group(-1, uzs_root_group(M.uzs), "");
	EXPECT_EQ(stats().swap_slots_total, USABLE_SLOTS);
}

/* Every page must still come back; then the instance must be empty. */
static void drain(void)
{
	struct uzs_stats st;

	full_scan();
	while (M.nlive) {
		uint64_t s = M.live[M.nlive - 1];

		while (M.slot[s].count > 1) {
			EXPECT_EQ(uzs_free(M.uzs, s), 0);
			slot_put(s);
		}
		if (M.slot[s].handed) {
			EXPECT_EQ(uzs_free(M.uzs, s), 0);
			slot_put(s);
		} else {
			swap_in_one(s, UZS_SWAPIN_FREE);
		}
	}
	check_all();
	st = stats();
	EXPECT_EQ(st.stored_pages, 0);
	EXPECT_EQ(st.compressed_bytes, 0);
	EXPECT_EQ(st.swap_slots_used, 0);
	EXPECT_EQ(st.groups_dying, 0);
	for (unsigned g = 0; g < M.ngroups; g++)
		if (M.group[g].live)
			EXPECT_EQ(group_stats((int)g).zswap, 0);
}

static void trace_op(unsigned op, const uint8_t *a)
{
	fprintf(stderr, "op %zu %s", M.op_index, op_names[op]);
	for (unsigned i = 0; i < op_args[op]; i++)
		fprintf(stderr, " %u", a[i]);
	fprintf(stderr, " (live %u)\n", M.nlive);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* tmpfs: the swap file costs no disk I/O and each input creates one */
	setenv("UZSWAP_DIR", "/dev/shm", 0);
	trace = getenv("FUZZ_OPS_TRACE") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 2;

	if (size < 2)
		return 0;
	open_instance(data[0], data[1]);
	while (at < size) {
		unsigned op = data[at++] % OP_NR;

		if (size - at < op_args[op])
			break; /* arguments past the end: the input is over */
		M.op_index++;
		M.op_name = op_names[op];
		if (trace)
			trace_op(op, data + at);
		op_fn[op](data + at);
		at += op_args[op];
		nr_ops++;
		check_all();
	}
	M.op_name = NULL;
	drain();
	uzs_close(M.uzs);
	return 0;
}
