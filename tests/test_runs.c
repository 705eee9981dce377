/* SPDX-License-Identifier: MIT */
/*
 * Multi-page runs (large folios): round trips in every size with writeback forced, the
 * all-or-nothing store, partial runs refused on swap-in, the present test and holds.
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

/* Swap in a run whole, or, when part of it was written back (-EIO), page by page, as the
 * kernel falls back to small folios. Returns mismatching pages; counts the splits. */
static size_t load_run_or_split(struct uzs *uzs, uzs_slot_t first, const unsigned char *want,
				unsigned nr, unsigned char *buf, size_t *splits)
{
	size_t bad = 0;
	int r = uzs_swap_in_run(uzs, first, buf, nr, UZS_SWAPIN_FREE);

	if (r == -EIO && nr > 1) {
		++*splits;
		for (unsigned k = 0; k < nr; k++)
			CHECK_EQ(uzs_swap_in(uzs, first + k, buf + (size_t)k * PAGE, UZS_SWAPIN_FREE),
				 0);
		r = 0;
	}
	CHECK_EQ(r, 0);
	for (unsigned k = 0; k < nr; k++)
		bad += memcmp(buf + (size_t)k * PAGE, want + (size_t)k * PAGE, PAGE) != 0;
	return bad;
}

static void runs_round_trip_every_size(void)
{
	static const unsigned sizes[] = {1, 4, 16, 64, 512};
	unsigned char *buf = aligned_alloc(PAGE, UZS_RUN_MAX * PAGE);

	for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		unsigned nr = sizes[s];
		size_t runs = corpus_pages / nr, bad = 0, splits = 0;
		uzs_slot_t *first = calloc(runs, sizeof(*first));
		struct uzs *uzs = open_pool(2 << 20); /* a sixth of the corpus: writeback */
		struct uzs_stats st;

		for (size_t i = 0; i < runs; i++) {
			CHECK_EQ(uzs_swap_out_run(uzs, NULL, corpus + i * nr * PAGE, nr, &first[i]), 0);
			CHECK_EQ(first[i] % nr, 0);
		}
		st = settled(uzs);
		CHECK(st.written_back_pages > 0);
		CHECK_EQ(st.zswpout_runs[__builtin_ctz(nr)] + st.pswpout / nr, runs);
		for (size_t i = 0; i < runs; i++)
			bad += load_run_or_split(uzs, first[i], corpus + i * nr * PAGE, nr, buf,
						 &splits);
		CHECK_EQ(bad, 0);
		st = settled(uzs);
		CHECK_EQ(st.stored_pages, 0);
		CHECK_EQ(st.swap_slots_used, 0);
		CHECK_EQ(st.run_partial, splits);
		printf("# runs of %u: %zu runs, %llu written back, %zu split on swap-in\n", nr,
		       runs, (unsigned long long)st.written_back_pages, splits);
		free(first);
		uzs_close(uzs);
	}
	free(buf);
}

/* nr corpus pages from first, each stamped so that none is same-filled. */
static unsigned char *distinct_pages(size_t first, unsigned nr)
{
	unsigned char *p = aligned_alloc(PAGE, (size_t)nr * PAGE);

	memcpy(p, corpus + first * PAGE, (size_t)nr * PAGE);
	for (unsigned k = 0; k < nr; k++) {
		uint64_t stamp = 0xfeed000000000000ull + first + k;

		memcpy(p + (size_t)k * PAGE, &stamp, sizeof(stamp));
	}
	return p;
}

/* A corrupt page in a cached run: -EIO, no page of the buffer holds anything but the
 * marker or its own data (the corrupt one keeps the marker), every slot keeps its page. */
static void corrupt_page_in_run_is_eio_and_never_garbage(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned nr = 16, bad = 5;
	unsigned char *buf = aligned_alloc(PAGE, nr * PAGE), *page = aligned_alloc(PAGE, PAGE);
	unsigned char *pages = distinct_pages(0, nr), *marker = aligned_alloc(PAGE, PAGE);
	uzs_slot_t first;

	memset(marker, 0xab, PAGE);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, pages, nr, &first), 0);
	CHECK_EQ(uzs_present(uzs, first, nr), (int)nr);
	CHECK_EQ(uzs_test_corrupt_cached(uzs, first + bad), 0);
	memset(buf, 0xab, nr * PAGE);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, 0), -EIO);
	CHECK(memcmp(buf + (size_t)bad * PAGE, marker, PAGE) == 0);
	for (unsigned k = 0; k < nr; k++)
		CHECK(memcmp(buf + (size_t)k * PAGE, marker, PAGE) == 0 ||
		      memcmp(buf + (size_t)k * PAGE, pages + (size_t)k * PAGE, PAGE) == 0);
	CHECK_EQ(estats(uzs).decompress_fail, 1);
	CHECK_EQ(uzs_present(uzs, first, nr), (int)nr);
	for (unsigned k = 0; k < nr; k++) {
		if (k == bad)
			continue;
		CHECK_EQ(uzs_swap_in(uzs, first + k, page, UZS_SWAPIN_FREE), 0);
		CHECK(memcmp(page, pages + (size_t)k * PAGE, PAGE) == 0);
	}
	CHECK_EQ(uzs_free(uzs, first + bad), 0);
	CHECK_EQ(estats(uzs).stored_pages, 0);
	free(marker);
	free(pages);
	free(page);
	free(buf);
	uzs_close(uzs);
}

/* Part of a run written back: the run swap-in refuses with -EIO and leaves the buffer as
 * it was; the pages are all still there one by one. */
static void partial_run_swapin_is_eio_and_untouched(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned nr = 16;
	unsigned char *buf = aligned_alloc(PAGE, nr * PAGE), *page = aligned_alloc(PAGE, PAGE);
	uzs_slot_t first;
	long written;

	unsigned char *pages = distinct_pages(0, nr);

	CHECK_EQ(uzs_swap_out_run(uzs, NULL, pages, nr, &first), 0);
	CHECK_EQ(uzs_present(uzs, first, nr), (int)nr);
	written = uzs_shrink(uzs, 5);
	CHECK_EQ(written, 5);
	CHECK_EQ(uzs_present(uzs, first, nr), (int)nr - 5);
	memset(buf, 0xab, nr * PAGE);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, 0), -EIO);
	for (size_t i = 0; i < nr * PAGE; i++)
		if (buf[i] != 0xab) {
			CHECK(!"buffer touched");
			break;
		}
	CHECK_EQ(estats(uzs).run_partial, 1);
	CHECK_EQ(estats(uzs).zswpin, 0);
	for (unsigned k = 0; k < nr; k++) {
		CHECK_EQ(uzs_swap_in(uzs, first + k, page, UZS_SWAPIN_FREE), 0);
		CHECK(memcmp(page, pages + (size_t)k * PAGE, PAGE) == 0);
	}
	CHECK_EQ(estats(uzs).stored_pages, 0);
	free(pages);
	free(buf);
	free(page);
	uzs_close(uzs);
}

/* A run wholly written back comes back from the file in one piece. */
static void run_wholly_on_file_loads_from_file(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned nr = 64;
	unsigned char *buf = aligned_alloc(PAGE, nr * PAGE), *pages = distinct_pages(100, nr);
	uzs_slot_t first;

	CHECK_EQ(uzs_swap_out_run(uzs, NULL, pages, nr, &first), 0);
	CHECK_EQ(uzs_shrink(uzs, 1000), (long)nr);
	CHECK_EQ(uzs_present(uzs, first, nr), 0);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(buf, pages, nr * PAGE) == 0);
	CHECK_EQ(estats(uzs).pswpin, nr);
	CHECK_EQ(estats(uzs).zswpin, 0);
	free(buf);
	free(pages);
	uzs_close(uzs);
}

/* A run the cache cannot take whole is not stored in part: nothing stays in the cache,
 * no charge, no slot; with writeback on it goes to the file whole, with it off it fails. */
static void all_or_nothing_store(void)
{
	struct uzs *uzs = open_pool(0);
	struct uzs_group *g = NULL, *nowb = NULL;
	struct uzs_group_stats gs;
	unsigned nr = 64;
	unsigned char *pages = aligned_alloc(PAGE, nr * PAGE), *buf = aligned_alloc(PAGE, nr * PAGE);
	uzs_slot_t first;

	CHECK_EQ(uzs_group_create(uzs, NULL, "small", &g), 0);
	CHECK_EQ(uzs_group_create(uzs, NULL, "small-nowb", &nowb), 0);
	/* room for a few pages, and nothing of the group's own to reclaim */
	CHECK_EQ(uzs_group_set_zswap_max(g, 16 << 10), 0);
	CHECK_EQ(uzs_swap_out_run(uzs, g, corpus, nr, &first), 0);
	CHECK_EQ(estats(uzs).stored_pages, 0);
	CHECK_EQ(estats(uzs).zswpout, 0);
	CHECK_EQ(estats(uzs).pswpout, nr);
	uzs_compact(uzs); /* the dropped objects' pages are given back at once */
	CHECK_EQ(estats(uzs).pool_total_size, 0);
	CHECK_EQ(uzs_group_get_stats(g, &gs), 0);
	CHECK_EQ(gs.zswap, 0);
	CHECK_EQ(gs.zswapped, 0);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(buf, corpus, nr * PAGE) == 0);
	CHECK_EQ(estats(uzs).pswpin, nr);

	/* one incompressible page in the middle of a run whose group may not write back */
	CHECK_EQ(uzs_group_set_zswap_writeback(nowb, false), 0);
	memcpy(pages, corpus + 200 * PAGE, nr * PAGE);
	random_page(pages + 37 * PAGE, 37);
	CHECK_EQ(uzs_swap_out_run(uzs, nowb, pages, nr, &first), -ENOSPC);
	CHECK_EQ(estats(uzs).reject_compress_poor, 1);
	CHECK_EQ(estats(uzs).stored_pages, 0);
	CHECK_EQ(estats(uzs).swap_slots_used, 0);
	CHECK_EQ(estats(uzs).compressed_bytes, 0);
	CHECK_EQ(uzs_group_get_stats(nowb, &gs), 0);
	CHECK_EQ(gs.zswap, 0);
	CHECK_EQ(gs.zswpout, 0);
	/* and the same run with the page compressible goes in whole, charged once */
	memcpy(pages + 37 * PAGE, corpus + 237 * PAGE, PAGE);
	CHECK_EQ(uzs_swap_out_run(uzs, nowb, pages, nr, &first), 0);
	CHECK_EQ(uzs_group_get_stats(nowb, &gs), 0);
	CHECK_EQ(gs.zswpout, nr);
	CHECK_EQ(gs.zswap, estats(uzs).compressed_bytes);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(buf, pages, nr * PAGE) == 0);
	CHECK_EQ(uzs_group_get_stats(nowb, &gs), 0);
	CHECK_EQ(gs.zswap, 0);
	free(pages);
	free(buf);
	uzs_close(uzs);
}

/* A held run keeps its answer: writeback passes it over until it is released. */
static void present_answer_holds_while_held(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned nr = 32;
	unsigned char *a = distinct_pages(300, nr), *b = distinct_pages(400, nr);
	uzs_slot_t first, other;

	CHECK_EQ(uzs_swap_out_run(uzs, NULL, a, nr, &first), 0);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, b, nr, &other), 0);
	CHECK_EQ(uzs_run_hold(uzs, first, nr), 0);
	CHECK_EQ(uzs_run_hold(uzs, first + 8, 8), -EBUSY);
	/* everything but the held run goes */
	CHECK_EQ(uzs_shrink(uzs, 10 * nr), (long)nr);
	CHECK_EQ(uzs_present(uzs, first, nr), (int)nr);
	CHECK_EQ(uzs_present(uzs, other, nr), 0);
	CHECK_EQ(uzs_run_release(uzs, first, nr), 0);
	CHECK_EQ(uzs_shrink(uzs, 10 * nr), (long)nr);
	CHECK_EQ(uzs_present(uzs, first, nr), 0);
	free(a);
	free(b);
	uzs_close(uzs);
}

/* Pages of a run can be freed, duplicated and swapped in one by one: the run splits. */
static void runs_split_page_by_page(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned nr = 8;
	unsigned char *buf = aligned_alloc(PAGE, nr * PAGE), *page = aligned_alloc(PAGE, PAGE);
	uzs_slot_t first;

	CHECK_EQ(uzs_swap_out_run(uzs, NULL, corpus + 500 * PAGE, nr, &first), 0);
	CHECK_EQ(uzs_free(uzs, first + 3), 0);
	CHECK_EQ(uzs_dup(uzs, first + 5), 0);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, nr, 0), -EINVAL); /* slot 3 is gone */
	CHECK_EQ(uzs_present(uzs, first, nr), -EINVAL);
	CHECK_EQ(uzs_present(uzs, first + 4, 4), 4);
	CHECK_EQ(uzs_swap_in_run(uzs, first + 4, buf, 4, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(buf, corpus + 504 * PAGE, 4 * PAGE) == 0);
	/* slot 5 had two holders: one reference left, and its page */
	CHECK_EQ(uzs_swap_in(uzs, first + 5, page, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(page, corpus + 505 * PAGE, PAGE) == 0);
	for (unsigned k = 0; k < 3; k++) {
		CHECK_EQ(uzs_swap_in(uzs, first + k, page, UZS_SWAPIN_FREE), 0);
		CHECK(memcmp(page, corpus + (500 + k) * PAGE, PAGE) == 0);
	}
	CHECK_EQ(estats(uzs).stored_pages, 0);
	CHECK_EQ(estats(uzs).swap_slots_used, 0);
	free(buf);
	free(page);
	uzs_close(uzs);
}

struct thread_call {
	struct uzs *uzs;
	const unsigned char *pages;
	unsigned nr;
	bool free_after;
	int result;
};

static void *swap_out_in_thread(void *arg)
{
	struct thread_call *t = arg;
	uzs_slot_t first;

	t->result = uzs_swap_out_run(t->uzs, NULL, t->pages, t->nr, &first);
	if (!t->result && t->free_after)
		for (unsigned k = 0; k < t->nr; k++)
			t->result |= uzs_free(t->uzs, first + k);
	return NULL;
}

/* Each thread (thread shard) allocates from a cluster of its own, which stays its current
 * one after the thread stops. With two clusters taken that way and freed, a run of 512
 * still finds the free one instead of failing with -ENOSPC. */
static void run_finds_clusters_idle_threads_hold(void)
{
	struct uzs_config c;
	struct uzs *uzs = NULL;
	struct thread_call calls[3];
	pthread_t tid;

	uzs_config_init(&c);
	c.swapfile_bytes = 2 * 512 * PAGE; /* two clusters */
	CHECK_EQ(uzs_open(&c, &uzs), 0);
	for (int i = 0; i < 3; i++) {
		calls[i] = (struct thread_call){.uzs = uzs, .pages = corpus, .nr = i < 2 ? 1 : 512,
						.free_after = true, .result = -1};
		CHECK_EQ(pthread_create(&tid, NULL, swap_out_in_thread, &calls[i]), 0);
		pthread_join(tid, NULL);
		CHECK_EQ(calls[i].result, 0);
	}
	CHECK_EQ(estats(uzs).swap_slots_used, 0);
	uzs_close(uzs);
}

static void run_bad_arguments(void)
{
	struct uzs *uzs = open_pool(0);
	unsigned char *buf = aligned_alloc(PAGE, 1024 * PAGE);
	uzs_slot_t first;

	memcpy(buf, corpus, 16 * PAGE);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, buf, 3, &first), -EINVAL);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, buf, 0, &first), -EINVAL);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, buf, 1024, &first), -EINVAL);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, NULL, 4, &first), -EINVAL);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, buf, 16, &first), 0);
	CHECK_EQ(uzs_swap_in_run(uzs, first + 1, buf, 4, 0), -EINVAL); /* not aligned */
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, 16, 7), -EINVAL);   /* unknown flag */
	CHECK_EQ(uzs_swap_in_run(uzs, first + 16, buf, 16, 0), -EINVAL); /* never stored */
	CHECK_EQ(uzs_present(uzs, 0, 4), -EINVAL);
	CHECK_EQ(uzs_present(uzs, 510, 4), -EINVAL); /* crosses a cluster */
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, 16, UZS_SWAPIN_FREE), 0);
	CHECK(memcmp(buf, corpus, 16 * PAGE) == 0);
	CHECK_EQ(uzs_swap_in_run(uzs, first, buf, 16, 0), -EINVAL); /* freed */
	free(buf);
	uzs_close(uzs);
}

int main(void)
{
	corpus = corpus_load(&corpus_pages);
	if (!corpus)
		return 1;
	RUN(runs_round_trip_every_size);
	RUN(partial_run_swapin_is_eio_and_untouched);
	RUN(run_wholly_on_file_loads_from_file);
	RUN(all_or_nothing_store);
	RUN(present_answer_holds_while_held);
	RUN(runs_split_page_by_page);
	RUN(corrupt_page_in_run_is_eio_and_never_garbage);
	RUN(run_finds_clusters_idle_threads_hold);
	RUN(run_bad_arguments);
	free(corpus);
	return CHECK_DONE();
}
