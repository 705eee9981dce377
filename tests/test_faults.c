/* SPDX-License-Identifier: MIT */
/* Fault injection: allocation (malloc and mmap), compression and swap file reads and
 * writes fail on demand, every Nth call or at random with a seed. Whatever fails, an
 * operation reports an error, the counters say why, and every page that was swapped out
 * comes back exactly, or its swap-out was refused and the caller still has it. */
#define _GNU_SOURCE
#define UZS_FAULT_IMPL /* the test's own allocations never fail */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "corpus.h"
#include "fault.h"
#include "helpers.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE
#define WORK_PAGES 600u
#define RUN_PAGES 8u

static unsigned char *corpus;
static size_t corpus_pages;

struct held {
	uzs_slot_t slot;
	const unsigned char *page; /* what it must read back as */
};

struct workload {
	struct uzs *uzs;
	struct uzs_group *g;
	struct held held[WORK_PAGES + RUN_PAGES];
	unsigned nr_held;
	unsigned refused, failed_loads;
	uint64_t rng;
};

static uint64_t next(struct workload *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* lz4, a group whose zswap_max forces synchronous writeback, a small swap file. Faults are
 * armed only after the open (opening under faults has its own test). */
static int work_open(struct workload *w, uint64_t swap_bytes)
{
	struct uzs_config c;

	memset(w, 0, sizeof(*w));
	w->rng = 0x9e3779b97f4a7c15ull;
	uzs_config_init(&c);
	c.compressor = "lz4";
	c.swapfile_bytes = swap_bytes;
	if (uzs_open(&c, &w->uzs))
		return -1;
	if (uzs_group_create(w->uzs, NULL, "g", &w->g) ||
	    uzs_group_set_zswap_max(w->g, 256 << 10))
		return -1;
	return 0;
}

static bool documented_store_error(int err)
{
	return err == -ENOMEM || err == -ENOSPC || err == -EIO;
}

/* A refused swap-out leaves nothing behind: no slot is taken. */
static void swap_out_one(struct workload *w, const unsigned char *page)
{
	uint64_t used = estats(w->uzs).swap_slots_used;
	uzs_slot_t slot;
	int err = uzs_swap_out(w->uzs, w->g, page, &slot);

	if (err) {
		CHECK(documented_store_error(err));
		CHECK_EQ(estats(w->uzs).swap_slots_used, used);
		w->refused++;
		return;
	}
	w->held[w->nr_held++] = (struct held){ slot, page };
}

static void swap_out_run(struct workload *w, const unsigned char *pages)
{
	uint64_t used = estats(w->uzs).swap_slots_used;
	uzs_slot_t first;
	int err = uzs_swap_out_run(w->uzs, w->g, pages, RUN_PAGES, &first);

	if (err) {
		CHECK(documented_store_error(err));
		CHECK_EQ(estats(w->uzs).swap_slots_used, used);
		w->refused++;
		return;
	}
	for (unsigned i = 0; i < RUN_PAGES; i++)
		w->held[w->nr_held++] = (struct held){ first + i, pages + i * PAGE };
}

/* A failed swap-in reports -EIO or -ENOMEM and leaves the page as it was. */
static void load_some(struct workload *w)
{
	unsigned char out[PAGE];
	struct held *h;
	int err;

	if (!w->nr_held)
		return;
	h = &w->held[next(w) % w->nr_held];
	memset(out, 0xa5, PAGE);
	err = uzs_swap_in(w->uzs, h->slot, out, 0);
	if (err == 0) {
		CHECK(!memcmp(out, h->page, PAGE));
		/* with exclusive loads the caller took the page: store it again */
		CHECK_EQ(uzs_free(w->uzs, h->slot), 0);
		*h = w->held[--w->nr_held];
		return;
	}
	CHECK(err == -EIO || err == -ENOMEM);
	CHECK_EQ(out[0], 0xa5);
	CHECK_EQ(out[PAGE - 1], 0xa5);
	w->failed_loads++;
}

static void run_workload(struct workload *w)
{
	for (unsigned i = 0; i < WORK_PAGES; i += RUN_PAGES) {
		const unsigned char *p = corpus + (size_t)(i % (corpus_pages - RUN_PAGES)) * PAGE;

		if (i % (4 * RUN_PAGES) == 0)
			swap_out_run(w, p);
		else
			for (unsigned k = 0; k < RUN_PAGES; k++)
				swap_out_one(w, p + k * PAGE);
		load_some(w);
		if (i % (8 * RUN_PAGES) == 0)
			uzs_shrink(w->uzs, 16);
	}
}

/* With faults off again, everything held reads back exactly and then nothing is left. */
static void all_back_and_empty(struct workload *w)
{
	unsigned char out[PAGE];
	struct uzs_group_stats gs;
	struct uzs_stats st;

	fault_reset();
	for (unsigned i = 0; i < w->nr_held; i++) {
		CHECK_EQ(uzs_swap_in(w->uzs, w->held[i].slot, out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, w->held[i].page, PAGE));
	}
	st = settled(w->uzs);
	CHECK_EQ(st.stored_pages, 0);
	CHECK_EQ(st.compressed_bytes, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_EQ(uzs_group_get_stats(w->g, &gs), 0);
	CHECK_EQ(gs.zswap, 0);
	CHECK_EQ(uzs_group_remove(w->g), 0);
	uzs_close(w->uzs);
}

/* The counters name the failure: one count per injected failure where the site has its
 * own counter; for allocation, that some reject or failure counter moved. */
static void check_counters(struct workload *w, enum fault_site site, unsigned long injected)
{
	struct uzs_stats st = estats(w->uzs);

	switch (site) {
	case FAULT_COMPRESS:
		CHECK_EQ(st.reject_compress_fail, injected);
		break;
	case FAULT_SWAP_WRITE:
	case FAULT_SWAP_READ:
		CHECK_EQ(st.swap_io_fail, injected);
		break;
	case FAULT_ALLOC:
	case FAULT_MMAP:
		CHECK(st.reject_kmemcache_fail + st.reject_alloc_fail + st.swap_io_fail +
			      st.writeback_fail > 0);
		break;
	default:
		break;
	}
	if (site == FAULT_SWAP_WRITE)
		CHECK(st.writeback_fail > 0);
}

static const char *const site_names[] = { "alloc", "mmap", "compress", "swap read",
					  "swap write" };

static void under_fault(enum fault_site site, unsigned long every, unsigned rate, uint64_t seed)
{
	struct workload w;
	unsigned long injected;

	if (work_open(&w, 64ull << 20)) {
		CHECK(!"open");
		return;
	}
	if (every)
		fault_fail_every(site, every);
	else
		fault_fail_randomly(site, rate, seed);
	run_workload(&w);
	injected = fault_injected(site);
	fault_fail_every(site, 0);
	if (injected == 0) {
		fprintf(stderr, "  %s every %lu rate %u: no call failed\n", site_names[site], every,
			rate);
		CHECK(injected > 0);
	}
	check_counters(&w, site, injected);
	printf("# %s, %s %lu: %lu failures injected, %u swap-outs refused, %u swap-ins failed, "
	       "%u pages held\n", site_names[site], every ? "every" : "random seed",
	       every ? every : (unsigned long)seed, injected, w.refused, w.failed_loads,
	       w.nr_held);
	all_back_and_empty(&w);
}

static const unsigned long everies[] = { 1, 2, 3, 7, 13 };

/* The library maps memory only when it opens (the pool, the index and the slot map are
 * reserved then and backed as they fill), so mmap failures are open_fails_cleanly's. */
static bool maps_while_running(enum fault_site s)
{
	return s != FAULT_MMAP;
}

static void each_site_every_nth_call(void)
{
	for (enum fault_site s = 0; s < FAULT_NR_SITES; s++)
		for (unsigned i = 0; maps_while_running(s) && i < sizeof(everies) / sizeof(everies[0]); i++)
			under_fault(s, everies[i], 0, 0);
}

static void each_site_at_random(void)
{
	for (enum fault_site s = 0; s < FAULT_NR_SITES; s++)
		for (uint64_t seed = 1; maps_while_running(s) && seed <= 4; seed++)
			under_fault(s, 0, 100000, seed);
}

/* Every site at once, at random. */
static void all_sites_at_random(void)
{
	for (uint64_t seed = 11; seed <= 16; seed++) {
		struct workload w;

		if (work_open(&w, 64ull << 20)) {
			CHECK(!"open");
			return;
		}
		for (enum fault_site s = 0; s < FAULT_NR_SITES; s++)
			fault_fail_randomly(s, 50000, seed * 31 + s);
		run_workload(&w);
		all_back_and_empty(&w);
	}
}

/* Opening fails cleanly wherever an allocation or a mapping fails: an error, no leak
 * (LeakSanitizer checks at exit), and the next open works. */
static void open_fails_cleanly(void)
{
	for (enum fault_site s = FAULT_ALLOC; s <= FAULT_MMAP; s++) {
		unsigned failed = 0;

		for (unsigned long nth = 1; nth <= 160; nth++) {
			struct uzs_config c;
			struct uzs *uzs = NULL;
			int err;

			uzs_config_init(&c);
			c.swapfile_bytes = 1 << 20;
			fault_fail_every(s, nth);
			err = uzs_open(&c, &uzs);
			fault_reset();
			CHECK(err == 0 || err == -ENOMEM);
			failed += err != 0;
			if (err == 0)
				uzs_close(uzs);
		}
		printf("# open with every Nth %s failing, N = 1..160: %u opens failed\n",
		       site_names[s], failed);
		CHECK(failed > 0);
	}
}

/* A full swap file under a refused cache: ENOSPC, and the pages held stay exact. */
static void full_swap_file_with_failing_writes(void)
{
	struct workload w;

	if (work_open(&w, 64 * PAGE)) {
		CHECK(!"open");
		return;
	}
	fault_fail_every(FAULT_SWAP_WRITE, 3);
	run_workload(&w);
	CHECK(w.refused > 0);
	CHECK(estats(w.uzs).swap_slots_used <= 64);
	all_back_and_empty(&w);
}

/* A decompressor that cannot get its per-thread state (a fresh thread, its allocation
 * failing) is a shortage, not damage: -ENOMEM, not counted as corrupt, the page left as
 * it was and the entry kept, so the same swap-in succeeds once memory is back. */
struct shortage {
	struct uzs *uzs;
	uzs_slot_t lz4_slot, slot;
	const unsigned char *want;
	int first_err, second_err;
	bool untouched, cached_after, same_after;
};

static void *shortage_thread(void *arg)
{
	struct shortage *t = arg;
	unsigned char out[PAGE];

	/* an lz4 page first: this thread's scratch pages exist, no decompressor state */
	CHECK_EQ(uzs_swap_in(t->uzs, t->lz4_slot, out, UZS_SWAPIN_FREE), 0);
	memset(out, 0xa5, PAGE);
	fault_fail_every(FAULT_ALLOC, 1);
	t->first_err = uzs_swap_in(t->uzs, t->slot, out, 0);
	fault_reset();
	t->untouched = true;
	for (unsigned i = 0; i < PAGE; i++)
		t->untouched = t->untouched && out[i] == 0xa5;
	t->cached_after = uzs_test_cached(t->uzs, t->slot) == 1;
	t->second_err = uzs_swap_in(t->uzs, t->slot, out, UZS_SWAPIN_FREE);
	t->same_after = !memcmp(out, t->want, PAGE);
	return NULL;
}

static void decompressor_shortage_is_enomem_not_corruption(void)
{
	static const char *const comps[] = { "zstd", "deflate" };

	for (unsigned i = 0; i < 2; i++) {
		struct shortage t = { .want = corpus + 3 * PAGE };
		struct uzs_config c;
		pthread_t th;

		uzs_config_init(&c);
		c.compressor = "lz4";
		c.swapfile_bytes = 16ull << 20;
		CHECK_EQ(uzs_open(&c, &t.uzs), 0);
		CHECK_EQ(uzs_swap_out(t.uzs, NULL, corpus + 2 * PAGE, &t.lz4_slot), 0);
		CHECK_EQ(uzs_set_compressor(t.uzs, comps[i], 0), 0);
		CHECK_EQ(uzs_swap_out(t.uzs, NULL, t.want, &t.slot), 0);
		CHECK_EQ(pthread_create(&th, NULL, shortage_thread, &t), 0);
		pthread_join(th, NULL);
		if (t.first_err != -ENOMEM)
			fprintf(stderr, "  %s: first swap-in %d\n", comps[i], t.first_err);
		CHECK_EQ(t.first_err, -ENOMEM);
		CHECK(t.untouched);
		CHECK(t.cached_after);
		CHECK_EQ(estats(t.uzs).decompress_fail, 0);
		CHECK_EQ(t.second_err, 0);
		CHECK(t.same_after);
		CHECK_EQ(settled(t.uzs).stored_pages, 0);
		uzs_close(t.uzs);
	}
}

int main(void)
{
	corpus = corpus_load(&corpus_pages);
	if (!corpus)
		return 1;
	RUN(each_site_every_nth_call);
	RUN(each_site_at_random);
	RUN(all_sites_at_random);
	RUN(open_fails_cleanly);
	RUN(full_swap_file_with_failing_writes);
	RUN(decompressor_shortage_is_enomem_not_corruption);
	free(corpus);
	return CHECK_DONE();
}
