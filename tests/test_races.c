/* SPDX-License-Identifier: MIT */
/* The engine's races where an order of events could lose a page or a charge, each forced into one order with the fault build's hooks
 * (src/common/fault.h): the hook runs the other side of the race at the exact point where it
 * hurts, on the same thread, so every run takes the same interleaving. */
#define _GNU_SOURCE
#define UZS_FAULT_IMPL /* the test's own allocations never fail */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fault.h"
#include "helpers.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE
#define HOOK_NEVER_RAN (-12345)

struct world {
	struct uzs *uzs;
	struct uzs_group *g;
	unsigned char page[8][PAGE];
	uzs_slot_t slot[8];
	long hook_result;
	unsigned char out[PAGE];
};

static void text(unsigned char *p, unsigned i)
{
	for (unsigned k = 0; k < PAGE; k++)
		p[k] = (unsigned char)("uzswap races "[(k + i) % 13] + (k / 512) + i);
}

/* n pages stored in order (slot[0] the coldest) in group g. */
static void world_open(struct world *w, unsigned n, bool exclusive)
{
	struct uzs_config c;

	memset(w, 0, sizeof(*w));
	w->hook_result = HOOK_NEVER_RAN;
	fault_reset();
	uzs_config_init(&c);
	c.compressor = "lz4";
	c.exclusive_loads = exclusive;
	c.swapfile_bytes = 16ull << 20;
	CHECK_EQ(uzs_open(&c, &w->uzs), 0);
	CHECK_EQ(uzs_group_create(w->uzs, NULL, "g", &w->g), 0);
	for (unsigned i = 0; i < n; i++) {
		text(w->page[i], i);
		CHECK_EQ(uzs_swap_out(w->uzs, w->g, w->page[i], &w->slot[i]), 0);
	}
}

static uint64_t group_zswap(struct world *w)
{
	struct uzs_group_stats gs;

	CHECK_EQ(uzs_group_get_stats(w->g, &gs), 0);
	return gs.zswap;
}

/* Nothing left anywhere: no entry, no pool object, no slot, no charge. */
static void world_close_empty(struct world *w)
{
	struct uzs_stats st = settled(w->uzs);

	CHECK_EQ(st.stored_pages, 0);
	CHECK_EQ(st.compressed_bytes, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_EQ(group_zswap(w), 0);
	CHECK_EQ(uzs_group_remove(w->g), 0);
	uzs_close(w->uzs);
	fault_reset();
}

static void free_slot_hook(void *arg, uint64_t slot)
{
	struct world *w = arg;

	w->hook_result = uzs_free(w->uzs, slot);
}

/* Writeback picks the coldest entry, and its slot is freed before the
 * writeback gets to the entry. The stale entry must neither block reclaim (the next
 * entries are written back) nor leak (its memory and charge go). */
static void writeback_vs_free_before_borrow(void)
{
	struct world w;

	world_open(&w, 3, true);
	fault_on(HOOK_WB_PINNED, free_slot_hook, &w);
	CHECK_EQ(uzs_shrink(w.uzs, 2), 2); /* the freed one gives way to the other two */
	CHECK_EQ(w.hook_result, 0);
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[1]), 0);
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[2]), 0);
	CHECK_EQ(estats(w.uzs).swap_slots_used, 2); /* the pin let go of the freed slot */
	CHECK_EQ(estats(w.uzs).stored_pages, 0);
	for (unsigned i = 1; i < 3; i++) {
		CHECK_EQ(uzs_swap_in(w.uzs, w.slot[i], w.out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(w.out, w.page[i], PAGE));
	}
	world_close_empty(&w);
}

/* The free comes while writeback holds the entry. The free loses the race for
 * the entry, but the group's charge must still be released (by the last holder). */
static void writeback_vs_free_while_borrowed(void)
{
	struct world w;

	world_open(&w, 2, true);
	CHECK(group_zswap(&w) > 0);
	fault_on(HOOK_WB_READ, free_slot_hook, &w);
	uzs_shrink(w.uzs, 1);
	CHECK_EQ(w.hook_result, 0);
	CHECK_EQ(estats(w.uzs).stored_pages, 1);
	CHECK_EQ(estats(w.uzs).swap_slots_used, 1);
	CHECK_EQ(uzs_swap_in(w.uzs, w.slot[1], w.out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(w.out, w.page[1], PAGE));
	world_close_empty(&w);
}

/* The other way round: the free has taken the count to zero when writeback looks at the
 * slot. Writeback must skip it (and take the next), the free must finish its work. */
static void shrink_hook(void *arg, uint64_t slot)
{
	struct world *w = arg;

	(void)slot;
	w->hook_result = uzs_shrink(w->uzs, 1);
}

static void free_vs_writeback(void)
{
	struct world w;

	world_open(&w, 2, true);
	fault_on(HOOK_FREE_COUNTED, shrink_hook, &w);
	CHECK_EQ(uzs_free(w.uzs, w.slot[0]), 0);
	CHECK_EQ(w.hook_result, 1);			   /* it wrote the other page */
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[1]), 0); /* which is on file now */
	CHECK_EQ(estats(w.uzs).stored_pages, 0);
	CHECK_EQ(uzs_swap_in(w.uzs, w.slot[1], w.out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(w.out, w.page[1], PAGE));
	world_close_empty(&w);
}

static void swap_in_hook(void *arg, uint64_t slot)
{
	struct world *w = arg;

	w->hook_result = uzs_swap_in(w->uzs, slot, w->out, 0);
}

/* Writeback has decompressed the page when the owner swaps it in: the owner gets the page,
 * and with exclusive loads the slot holds no data afterwards, whatever writeback wrote. */
static void writeback_vs_exclusive_swap_in(void)
{
	struct world w;

	world_open(&w, 1, true);
	fault_on(HOOK_WB_READ, swap_in_hook, &w);
	uzs_shrink(w.uzs, 1);
	CHECK_EQ(w.hook_result, 0);
	CHECK(!memcmp(w.out, w.page[0], PAGE));
	CHECK_EQ(uzs_swap_in(w.uzs, w.slot[0], w.out, 0), -ENODATA);
	CHECK_EQ(estats(w.uzs).stored_pages, 0);
	CHECK_EQ(uzs_free(w.uzs, w.slot[0]), 0);
	world_close_empty(&w);
}

/* Without exclusive loads the copy stays: after the writeback it is read from the file. */
static void writeback_vs_shared_swap_in(void)
{
	struct world w;

	world_open(&w, 1, false);
	fault_on(HOOK_WB_READ, swap_in_hook, &w);
	CHECK_EQ(uzs_shrink(w.uzs, 1), 1);
	CHECK_EQ(w.hook_result, 0);
	CHECK(!memcmp(w.out, w.page[0], PAGE));
	memset(w.out, 0, PAGE);
	CHECK_EQ(uzs_swap_in(w.uzs, w.slot[0], w.out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(w.out, w.page[0], PAGE));
	CHECK_EQ(estats(w.uzs).pswpin, 1);
	world_close_empty(&w);
}

/* A non-exclusive load leaves a copy the caller also holds; reclaim takes
 * that copy before any live entry, even one that is older. */
static void duplicate_copy_reclaimed_before_live_entries(void)
{
	struct world w;

	world_open(&w, 3, false);
	CHECK_EQ(uzs_swap_in(w.uzs, w.slot[2], w.out, 0), 0);
	CHECK_EQ(uzs_shrink(w.uzs, 1), 1);
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[2]), 0);
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[0]), 1);
	CHECK_EQ(uzs_test_cached(w.uzs, w.slot[1]), 1);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ(uzs_free(w.uzs, w.slot[i]), 0);
	world_close_empty(&w);
}

struct run_world {
	struct world w;
	unsigned char pages[8 * PAGE];
	uzs_slot_t first;
};

static void run_open(struct run_world *r)
{
	world_open(&r->w, 0, true);
	for (unsigned i = 0; i < 8; i++)
		text(r->pages + i * PAGE, 10 + i);
	CHECK_EQ(uzs_swap_out_run(r->w.uzs, r->w.g, r->pages, 8, &r->first), 0);
	CHECK_EQ(uzs_present(r->w.uzs, r->first, 8), 8);
}

/* Part of a run is written back after the caller looked. Before the load has
 * the entries, the run is partial: -EIO and the buffer untouched. */
static void partial_run_racing_writeback_before_borrow(void)
{
	struct run_world r;
	unsigned char out[8 * PAGE];

	run_open(&r);
	fault_on(HOOK_RUN_LOAD_START, shrink_hook, &r.w);
	memset(out, 0x77, sizeof(out));
	CHECK_EQ(uzs_swap_in_run(r.w.uzs, r.first, out, 8, 0), -EIO);
	CHECK_EQ(r.w.hook_result, 1);
	for (unsigned i = 0; i < sizeof(out); i++)
		if (out[i] != 0x77) {
			CHECK(!"a partial run touched the buffer");
			break;
		}
	CHECK_EQ(estats(r.w.uzs).run_partial, 1);
	CHECK_EQ(uzs_present(r.w.uzs, r.first, 8), 7);
	/* the caller splits the run: page by page, each from where it is */
	for (unsigned i = 0; i < 8; i++) {
		CHECK_EQ(uzs_swap_in(r.w.uzs, r.first + i, out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, r.pages + i * PAGE, PAGE));
	}
	world_close_empty(&r.w);
}

/* Once the load holds every entry, a writeback of one of them cannot hurt: the load
 * returns the whole run from the entries it holds. */
static void partial_run_racing_writeback_after_borrow(void)
{
	struct run_world r;
	unsigned char out[8 * PAGE];

	run_open(&r);
	fault_on(HOOK_RUN_LOAD_BORROWED, shrink_hook, &r.w);
	CHECK_EQ(uzs_swap_in_run(r.w.uzs, r.first, out, 8, UZS_SWAPIN_FREE), 0);
	CHECK_EQ(r.w.hook_result, 1);
	CHECK(!memcmp(out, r.pages, sizeof(out)));
	CHECK_EQ(estats(r.w.uzs).run_partial, 0);
	world_close_empty(&r.w);
}

int main(void)
{
	RUN(writeback_vs_free_before_borrow);
	RUN(writeback_vs_free_while_borrowed);
	RUN(free_vs_writeback);
	RUN(writeback_vs_exclusive_swap_in);
	RUN(writeback_vs_shared_swap_in);
	RUN(duplicate_copy_reclaimed_before_live_entries);
	RUN(partial_run_racing_writeback_before_borrow);
	RUN(partial_run_racing_writeback_after_borrow);
	return CHECK_DONE();
}
