/* SPDX-License-Identifier: MIT */
/*
 * The engine's behaviours, one case each, through the public API (and the test hooks of
 * src/engine/test_hooks.h where a failure has to be provoked on purpose).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "corpus.h"
#include "uzswap.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE

static unsigned char *corpus;
static size_t corpus_pages;

static struct uzs *open_with(const char *comp, uint64_t pool_limit, bool exclusive,
			     uint64_t swap_bytes)
{
	struct uzs_config c;
	struct uzs *uzs = NULL;

	uzs_config_init(&c);
	c.compressor = comp;
	c.max_pool_bytes = pool_limit;
	c.exclusive_loads = exclusive;
	c.swapfile_bytes = swap_bytes ? swap_bytes : 64ull << 20;
	CHECK_EQ(uzs_open(&c, &uzs), 0);
	return uzs;
}

static struct uzs_stats stats_of(struct uzs *uzs)
{
	struct uzs_stats st;

	uzs_get_stats(uzs, &st);
	return st;
}

/* The statistics once the shrink worker has finished what it was doing: a writeback in
 * flight holds its entry and slot until its write completes, even if the page was freed
 * meanwhile. Gives up after two seconds (and the caller's checks then fail). */
static struct uzs_stats settled_stats(struct uzs *uzs)
{
	struct uzs_stats st = stats_of(uzs);

	for (int i = 0; i < 200 && (st.stored_pages || st.swap_slots_used); i++) {
		usleep(10000);
		st = stats_of(uzs);
	}
	return st;
}

/* A page of text-like bytes that compresses, distinct per seed. */
static void text_page(unsigned char *p, unsigned seed)
{
	for (unsigned i = 0; i < PAGE; i++)
		p[i] = (unsigned char)("uzswap page "[(i + seed) % 12] + (i / 512 == seed % 8));
	memcpy(p, &seed, sizeof(seed));
}

static void random_page(unsigned char *p, uint64_t seed)
{
	for (unsigned i = 0; i < PAGE; i += 8) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		memcpy(p + i, &seed, 8);
	}
}

/* Swap every corpus page out and back in; returns the number of mismatches. */
static size_t corpus_round_trip(struct uzs *uzs)
{
	uzs_slot_t *slots = calloc(corpus_pages, sizeof(*slots));
	unsigned char *out = aligned_alloc(PAGE, PAGE);
	size_t bad = 0;

	for (size_t i = 0; i < corpus_pages; i++)
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + i * PAGE, &slots[i]), 0);
	for (size_t i = 0; i < corpus_pages; i++) {
		memset(out, 0xee, PAGE);
		CHECK_EQ(uzs_swap_in(uzs, slots[i], out, UZS_SWAPIN_FREE), 0);
		bad += memcmp(out, corpus + i * PAGE, PAGE) != 0;
	}
	free(out);
	free(slots);
	return bad;
}

static void corpus_round_trip_every_compressor(void)
{
	for (const char *const *c = uzs_compressor_names(); *c; c++) {
		struct uzs *uzs = open_with(*c, 0, true, 0);
		struct uzs_stats st;

		CHECK_EQ(corpus_round_trip(uzs), 0);
		st = stats_of(uzs);
		CHECK_EQ(st.stored_pages, 0);
		CHECK_EQ(st.swap_slots_used, 0);
		CHECK_EQ(st.zswpout, corpus_pages);
		CHECK_EQ(st.zswpin, corpus_pages);
		uzs_close(uzs);
	}
}

static void corpus_round_trip_with_writeback(void)
{
	for (const char *const *c = uzs_compressor_names(); *c; c++) {
		struct uzs *uzs = open_with(*c, 1 << 20, true, 0);
		struct uzs_stats st;

		CHECK_EQ(corpus_round_trip(uzs), 0);
		st = settled_stats(uzs);
		CHECK(st.written_back_pages > 0);
		CHECK(st.pool_limit_hit > 0);
		CHECK_EQ(st.stored_pages, 0);
		CHECK_EQ(st.swap_slots_used, 0);
		fprintf(stderr, "  %s: written back %llu, refused to file %llu\n", *c,
			(unsigned long long)st.written_back_pages, (unsigned long long)st.pswpout);
		uzs_close(uzs);
	}
}

static void same_filled_pages_use_no_pool_memory(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot[3];
	struct uzs_stats st;

	memset(page, 0, PAGE);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[0]), 0);
	memset(page, 0xab, PAGE);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[1]), 0);
	for (unsigned i = 0; i < PAGE; i += 8)
		memcpy(page + i, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[2]), 0);
	st = stats_of(uzs);
	CHECK_EQ(st.same_filled_pages, 3);
	CHECK_EQ(st.stored_pages, 3);
	CHECK_EQ(st.pool_total_size, 0);
	CHECK_EQ(uzs_swap_in(uzs, slot[2], out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(out, page, PAGE));
	CHECK_EQ(uzs_swap_in(uzs, slot[0], out, UZS_SWAPIN_FREE), 0);
	CHECK_EQ(out[0], 0);
	CHECK_EQ(out[PAGE - 1], 0);
	CHECK_EQ(uzs_swap_in(uzs, slot[1], out, UZS_SWAPIN_FREE), 0);
	CHECK_EQ(out[100], 0xab);
	CHECK_EQ(stats_of(uzs).same_filled_pages, 0);
	uzs_close(uzs);
}

/* Callers' pages need not be aligned: a page at an odd address round-trips too. */
static void unaligned_pages_round_trip(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char *buf = malloc(3 * PAGE + 2), *in = buf + 1, *out = buf + PAGE * 2 + 1;
	uzs_slot_t slot[2];

	text_page(in, 11);
	CHECK_EQ(uzs_swap_out(uzs, NULL, in, &slot[0]), 0);
	memset(in, 0x5c, PAGE); /* same-filled, at an odd address */
	CHECK_EQ(uzs_swap_out(uzs, NULL, in, &slot[1]), 0);
	CHECK_EQ(uzs_swap_in(uzs, slot[1], out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(out, in, PAGE));
	CHECK_EQ(uzs_shrink(uzs, 1), 1); /* and through the swap file */
	text_page(in, 11);
	CHECK_EQ(uzs_swap_in(uzs, slot[0], out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(out, in, PAGE));
	free(buf);
	uzs_close(uzs);
}

static void incompressible_pages_are_stored_raw(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char *page = aligned_alloc(PAGE, PAGE), *out = aligned_alloc(PAGE, PAGE);
	uzs_slot_t slot[16];
	struct uzs_stats st;

	for (unsigned i = 0; i < 16; i++) {
		random_page(page, i + 1);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[i]), 0);
	}
	st = stats_of(uzs);
	CHECK_EQ(st.stored_incompressible_pages, 16);
	CHECK_EQ(st.stored_pages, 16);
	CHECK_EQ(st.compressed_bytes, 16 * PAGE);
	CHECK_EQ(st.pswpout, 0);
	for (unsigned i = 0; i < 16; i++) {
		random_page(page, i + 1);
		CHECK_EQ(uzs_swap_in(uzs, slot[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, page, PAGE));
	}
	CHECK_EQ(stats_of(uzs).stored_incompressible_pages, 0);
	free(page);
	free(out);
	uzs_close(uzs);
}

static void exclusive_load_frees_the_entry(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot;

	text_page(page, 7);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0);
	CHECK_EQ(stats_of(uzs).stored_pages, 1);
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), 0);
	CHECK(!memcmp(out, page, PAGE));
	CHECK_EQ(stats_of(uzs).stored_pages, 0);
	CHECK_EQ(stats_of(uzs).compressed_bytes, 0);
	/* the page was handed over: the slot is still held but has nothing to give */
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), -ENODATA);
	CHECK_EQ(stats_of(uzs).swap_slots_used, 1);
	CHECK_EQ(uzs_free(uzs, slot), 0);
	CHECK_EQ(stats_of(uzs).swap_slots_used, 0);
	uzs_close(uzs);
}

static void non_exclusive_load_keeps_a_copy_reclaimed_first(void)
{
	struct uzs *uzs = open_with("lz4", 0, false, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot[3];

	for (unsigned i = 0; i < 3; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[i]), 0);
	}
	CHECK_EQ(uzs_swap_in(uzs, slot[2], out, 0), 0);
	CHECK_EQ(uzs_swap_in(uzs, slot[2], out, 0), 0); /* still there */
	text_page(page, 2);
	CHECK(!memcmp(out, page, PAGE));
	CHECK_EQ(stats_of(uzs).stored_pages, 3);
	/* The newest page, but a duplicate of what the caller holds: written back first. */
	CHECK_EQ(uzs_shrink(uzs, 1), 1);
	CHECK_EQ(uzs_test_cached(uzs, slot[2]), 0);
	CHECK_EQ(uzs_test_cached(uzs, slot[0]), 1);
	CHECK_EQ(uzs_test_cached(uzs, slot[1]), 1);
	CHECK_EQ(uzs_swap_in(uzs, slot[2], out, 0), 0); /* from the file now */
	CHECK(!memcmp(out, page, PAGE));
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ(uzs_free(uzs, slot[i]), 0);
	CHECK_EQ(stats_of(uzs).stored_pages, 0);
	uzs_close(uzs);
}

static void lru_gives_referenced_entries_a_second_chance(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE];
	uzs_slot_t slot[4];

	for (unsigned i = 0; i < 4; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[i]), 0);
	}
	/* all referenced: the first pass clears the bits, then the oldest goes first */
	CHECK_EQ(uzs_shrink(uzs, 2), 2);
	CHECK_EQ(uzs_test_cached(uzs, slot[0]), 0);
	CHECK_EQ(uzs_test_cached(uzs, slot[1]), 0);
	CHECK_EQ(uzs_test_cached(uzs, slot[2]), 1);
	CHECK_EQ(uzs_test_cached(uzs, slot[3]), 1);
	CHECK_EQ(stats_of(uzs).written_back_pages, 2);
	CHECK_EQ(stats_of(uzs).zswpwb, 2);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(uzs_free(uzs, slot[i]), 0);
	uzs_close(uzs);
}

static void dup_shares_a_slot_until_the_last_free(void)
{
	struct uzs *uzs = open_with("zstd", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot;

	text_page(page, 3);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0);
	CHECK_EQ(uzs_dup(uzs, slot), 0);
	/* two holders: a swap-in by one leaves the page for the other */
	CHECK_EQ(uzs_swap_in(uzs, slot, out, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(out, page, PAGE));
	memset(out, 0, PAGE);
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), 0);
	CHECK(!memcmp(out, page, PAGE));
	CHECK_EQ(uzs_free(uzs, slot), 0);
	CHECK_EQ(uzs_free(uzs, slot), -EINVAL);
	CHECK_EQ(uzs_dup(uzs, slot), -EINVAL);
	CHECK_EQ(stats_of(uzs).swap_slots_used, 0);
	uzs_close(uzs);
}

static void unknown_freed_and_double_freed_slots_are_errors(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot;

	text_page(page, 1);
	memset(out, 0x11, PAGE);
	CHECK_EQ(uzs_swap_in(uzs, 0, out, 0), -EINVAL);
	CHECK_EQ(uzs_swap_in(uzs, 12345, out, 0), -EINVAL);
	CHECK_EQ(uzs_swap_in(uzs, UINT64_MAX, out, 0), -EINVAL);
	CHECK_EQ(uzs_free(uzs, 999), -EINVAL);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0);
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 7), -EINVAL); /* unknown flag */
	CHECK_EQ(uzs_free(uzs, slot), 0);
	CHECK_EQ(uzs_free(uzs, slot), -EINVAL);
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), -EINVAL);
	CHECK_EQ(out[0], 0x11); /* untouched */
	CHECK_EQ(stats_of(uzs).invalid_slot, 6); /* a bad flag is not a bad slot */
	CHECK_EQ(uzs_swap_out(uzs, NULL, NULL, &slot), -EINVAL);
	uzs_close(uzs);
}

static void corrupted_compressed_data_is_eio(void)
{
	for (const char *const *c = uzs_compressor_names(); *c; c++) {
		struct uzs *uzs = open_with(*c, 0, true, 0);
		unsigned char page[PAGE], out[PAGE];
		uzs_slot_t slot;

		text_page(page, 5);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0);
		CHECK_EQ(uzs_test_corrupt_cached(uzs, slot), 0);
		memset(out, 0xa5, PAGE);
		CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), -EIO);
		/* the promise of -EIO: what the decompressor wrote before it failed stays out */
		for (unsigned i = 0; i < PAGE; i++)
			if (out[i] != 0xa5) {
				fprintf(stderr, "  %s: byte %u of the page changed\n", *c, i);
				CHECK(!"page untouched on -EIO");
				break;
			}
		CHECK_EQ(stats_of(uzs).decompress_fail, 1);
		/* still an error the second time, never silently other data */
		CHECK_EQ(uzs_swap_in(uzs, slot, out, UZS_SWAPIN_FREE), -EIO);
		CHECK_EQ(uzs_free(uzs, slot), 0);
		CHECK_EQ(stats_of(uzs).stored_pages, 0);
		uzs_close(uzs);
	}
}

static void compressor_switch_keeps_old_entries_readable(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	const char *seq[] = { "zstd", "lzo", "deflate", "zstd:19", "lz4" };
	uzs_slot_t slot[6];
	unsigned char out[PAGE];

	CHECK_EQ(uzs_swap_out(uzs, NULL, corpus, &slot[0]), 0);
	for (unsigned i = 0; i < 5; i++) {
		CHECK_EQ(uzs_set_compressor(uzs, seq[i], 0), 0);
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + (i + 1) * PAGE, &slot[i + 1]), 0);
	}
	CHECK_EQ(uzs_set_compressor(uzs, "brotli", 0), -EINVAL);
	CHECK_EQ(uzs_set_compressor(uzs, "zstd", 99), -EINVAL);
	for (unsigned i = 0; i < 6; i++) {
		CHECK_EQ(uzs_swap_in(uzs, slot[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, corpus + i * PAGE, PAGE));
	}
	uzs_close(uzs);
}

static void full_pool_refuses_stores_to_the_file(void)
{
	/* no worker can catch up within the loop: stores past the limit go to the file */
	struct uzs *uzs = open_with("lz4", 256 << 10, true, 0);
	uzs_slot_t *slots = calloc(2048, sizeof(*slots));
	unsigned char out[PAGE];
	struct uzs_stats st;

	for (unsigned i = 0; i < 2048; i++)
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + i * PAGE, &slots[i]), 0);
	st = stats_of(uzs);
	CHECK(st.pool_limit_hit > 0);
	CHECK(st.pswpout > 0);
	CHECK_EQ(st.zswpout + st.pswpout, 2048);
	for (unsigned i = 0; i < 2048; i++) {
		CHECK_EQ(uzs_swap_in(uzs, slots[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, corpus + i * PAGE, PAGE));
	}
	free(slots);
	uzs_close(uzs);
}

static void full_swap_file_refuses_swap_out(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 8 * PAGE); /* slots 1..7 */
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot[8];

	for (unsigned i = 0; i < 7; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[i]), 0);
	}
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[7]), -ENOSPC);
	CHECK_EQ(uzs_free(uzs, slot[3]), 0);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[7]), 0);
	CHECK_EQ(slot[7], slot[3]); /* the freed slot is reused */
	for (unsigned i = 0; i < 8; i++) {
		if (i == 3)
			continue;
		text_page(page, i == 7 ? 6 : i);
		CHECK_EQ(uzs_swap_in(uzs, slot[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, page, PAGE));
	}
	uzs_close(uzs);
}

/* A real write failure: the file-size limit makes every write past it fail (EFBIG). */
static void limit_file_writes(bool on)
{
	static struct rlimit saved;
	struct rlimit tiny = { 4096, 4096 };

	if (on) {
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &saved);
		tiny.rlim_max = saved.rlim_max;
		setrlimit(RLIMIT_FSIZE, &tiny);
	} else {
		setrlimit(RLIMIT_FSIZE, &saved);
	}
}

static void failed_writeback_keeps_the_entry(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot[4];
	struct uzs_stats st;

	for (unsigned i = 0; i < 4; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot[i]), 0);
	}
	limit_file_writes(true);
	CHECK_EQ(uzs_shrink(uzs, 4), 0);
	limit_file_writes(false);
	st = stats_of(uzs);
	CHECK(st.writeback_fail > 0);
	CHECK_EQ(st.written_back_pages, 0);
	CHECK_EQ(st.stored_pages, 4);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(uzs_test_cached(uzs, slot[i]), 1);
	/* and once the file works again, writeback goes through */
	CHECK_EQ(uzs_shrink(uzs, 4), 4);
	for (unsigned i = 0; i < 4; i++) {
		text_page(page, i);
		CHECK_EQ(uzs_swap_in(uzs, slot[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, page, PAGE));
	}
	uzs_close(uzs);
}

static void failed_file_store_leaves_the_page_with_the_caller(void)
{
	struct uzs *uzs = open_with("lz4", 4096, true, 0); /* every compressible store refused */
	unsigned char page[PAGE];
	uzs_slot_t slot = 0;
	struct uzs_stats st;
	int err;

	text_page(page, 1);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0); /* fills the tiny pool */
	limit_file_writes(true);
	err = uzs_swap_out(uzs, NULL, page, &slot);
	limit_file_writes(false);
	CHECK(err == -EFBIG || err == -EIO);
	st = stats_of(uzs);
	CHECK_EQ(st.swap_slots_used, 1); /* the failed store's slot went back */
	CHECK(st.swap_io_fail > 0);
	uzs_close(uzs);
}

static void failed_file_read_is_eio(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	unsigned char page[PAGE], out[PAGE];
	uzs_slot_t slot;

	text_page(page, 9);
	CHECK_EQ(uzs_swap_out(uzs, NULL, page, &slot), 0);
	CHECK_EQ(uzs_shrink(uzs, 1), 1);
	/* the file loses its contents under us: a short read, never stale bytes */
	CHECK_EQ(ftruncate(uzs_test_swapfile_fd(uzs), 0), 0);
	memset(out, 0x22, PAGE);
	CHECK_EQ(uzs_swap_in(uzs, slot, out, 0), -EIO);
	CHECK_EQ(out[0], 0x22);
	CHECK(stats_of(uzs).swap_io_fail > 0);
	CHECK_EQ(uzs_free(uzs, slot), 0);
	uzs_close(uzs);
}

static void compaction_after_freeing_half_gives_memory_back(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	uzs_slot_t *slots = calloc(corpus_pages, sizeof(*slots));
	unsigned char out[PAGE];
	uint64_t before, after, seed = 42;
	long given;

	for (size_t i = 0; i < corpus_pages; i++)
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + i * PAGE, &slots[i]), 0);
	before = stats_of(uzs).pool_total_size;
	for (size_t i = 0; i < corpus_pages; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if (seed >> 63) {
			CHECK_EQ(uzs_free(uzs, slots[i]), 0);
			slots[i] = 0;
		}
	}
	given = uzs_compact(uzs);
	after = stats_of(uzs).pool_total_size;
	fprintf(stderr, "  pool %llu -> %llu bytes, compaction gave back %ld\n",
		(unsigned long long)before, (unsigned long long)after, given);
	CHECK(given > 0);
	CHECK(after < before * 6 / 10);
	for (size_t i = 0; i < corpus_pages; i++) {
		if (!slots[i])
			continue;
		CHECK_EQ(uzs_swap_in(uzs, slots[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, corpus + i * PAGE, PAGE));
	}
	free(slots);
	uzs_close(uzs);
}

/* Freed pages' pool memory goes back on its own: at once but for a reserve of 1/16 of
 * the pool limit, which is kept for the next growth, then the reserve too once nothing
 * has used it for two seconds. */
static void freed_memory_goes_back_but_a_reserve_for_a_while(void)
{
	enum { N = 2048 };
	uint64_t limit = 8 << 20, total = 0;
	struct uzs *uzs = open_with("lz4", limit, true, 0);
	uzs_slot_t *slots = calloc(N, sizeof(*slots));
	struct timespec t0, t1;
	int i;

	CHECK(N <= corpus_pages);
	for (i = 0; i < N; i++)
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + (size_t)i * PAGE, &slots[i]), 0);
	CHECK(stats_of(uzs).pool_total_size > limit / 16);
	for (i = 0; i < N; i++)
		CHECK_EQ(uzs_free(uzs, slots[i]), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* the release comes 100 ms after the frees; give a loaded machine a second */
	for (i = 0; i < 100 && (total = stats_of(uzs).pool_total_size) > limit / 16; i++)
		usleep(10000);
	CHECK(total <= limit / 16);
	CHECK(total > 0);
	for (i = 0; i < 600 && (total = stats_of(uzs).pool_total_size); i++)
		usleep(10000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_EQ(total, 0);
	CHECK(t1.tv_sec - t0.tv_sec >= 2); /* not before the reserve has idled */
	free(slots);
	uzs_close(uzs);
}

/* Under (simulated) memory pressure the shrinker writes back the colder part of the
 * cache on its own; switched off, it leaves the cache alone. */
static void shrinker_writes_back_under_memory_pressure(void)
{
	for (int enabled = 0; enabled <= 1; enabled++) {
		struct uzs_config c;
		struct uzs *uzs = NULL;
		uzs_slot_t slots[512];
		uint64_t wb = 0;

		uzs_config_init(&c);
		c.compressor = "lz4";
		c.shrinker_enabled = enabled;
		c.swapfile_bytes = 16 << 20;
		CHECK_EQ(uzs_open(&c, &uzs), 0);
		for (unsigned i = 0; i < 512; i++)
			CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + i * PAGE, &slots[i]), 0);
		uzs_test_memory_pressure(uzs, 1);
		/* the shrinker looks once a second; switched off, 1.2 s of nothing will do */
		for (int i = 0; i < (enabled ? 30 : 12) && !wb; i++) {
			usleep(100000);
			wb = stats_of(uzs).written_back_pages;
		}
		uzs_test_memory_pressure(uzs, 0);
		if (enabled)
			CHECK(wb > 0 && wb < 512); /* some, not all: the referenced get a chance */
		else
			CHECK_EQ(wb, 0);
		for (unsigned i = 0; i < 512; i++)
			CHECK_EQ(uzs_free(uzs, slots[i]), 0);
		uzs_close(uzs);
	}
}

static void bad_configs_are_refused(void)
{
	struct uzs_config c;
	struct uzs *uzs = NULL;

	uzs_config_init(&c);
	CHECK(!strcmp(c.compressor, "lzo"));
	CHECK_EQ(c.max_pool_percent, 20);
	CHECK_EQ(c.accept_threshold_percent, 90);
	CHECK(c.exclusive_loads);
	CHECK(!c.shrinker_enabled);
	c.compressor = "nope";
	CHECK_EQ(uzs_open(&c, &uzs), -EINVAL);
	uzs_config_init(&c);
	c.max_pool_percent = 101;
	CHECK_EQ(uzs_open(&c, &uzs), -EINVAL);
	uzs_config_init(&c);
	c.accept_threshold_percent = 0;
	CHECK_EQ(uzs_open(&c, &uzs), -EINVAL);
	uzs_config_init(&c);
	c.swapfile_bytes = 4096; /* room for no page */
	CHECK_EQ(uzs_open(&c, &uzs), -EINVAL);
	uzs_config_init(&c);
	c.swapfile_path = "/nonexistent-dir/swap";
	CHECK_EQ(uzs_open(&c, &uzs), -ENOENT);
	CHECK(uzs == NULL);
}

static void swap_file_is_private_and_leaves_nothing_behind(void)
{
	char path[] = "/var/tmp/uzswap-test-XXXXXX";
	char file[64];
	struct uzs_config c;
	struct uzs *uzs = NULL;
	struct stat st;

	CHECK(mkdtemp(path) != NULL);
	snprintf(file, sizeof(file), "%s/swap", path);
	uzs_config_init(&c);
	c.swapfile_path = file;
	c.swapfile_bytes = 1 << 20;
	CHECK_EQ(uzs_open(&c, &uzs), 0);
	CHECK(access(file, F_OK) != 0); /* unlinked at once */
	CHECK_EQ(fstat(uzs_test_swapfile_fd(uzs), &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(st.st_nlink, 0);
	uzs_close(uzs);
	CHECK_EQ(rmdir(path), 0);
}

static void stats_print_as_name_value_lines(void)
{
	struct uzs *uzs = open_with("lz4", 0, true, 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	uzs_slot_t slot;

	CHECK_EQ(uzs_swap_out(uzs, NULL, corpus, &slot), 0);
	CHECK_EQ(uzs_print_stats(uzs, f), 0);
	fclose(f);
	CHECK(strstr(buf, "stored_pages 1\n") != NULL);
	CHECK(strstr(buf, "zswpout 1\n") != NULL);
	CHECK(strstr(buf, "\npool_total_size ") != NULL);
	CHECK(strstr(buf, "\nreject_kmemcache_fail 0\n") != NULL);
	CHECK(strstr(buf, "\nshrinker_runs 0\nshrinker_psi 0\nshrinker_psi_runs 0\n") != NULL);
	free(buf);
	uzs_close(uzs);
}

int main(void)
{
	corpus = corpus_load(&corpus_pages);
	if (!corpus) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	RUN(corpus_round_trip_every_compressor);
	RUN(corpus_round_trip_with_writeback);
	RUN(same_filled_pages_use_no_pool_memory);
	RUN(unaligned_pages_round_trip);
	RUN(incompressible_pages_are_stored_raw);
	RUN(exclusive_load_frees_the_entry);
	RUN(non_exclusive_load_keeps_a_copy_reclaimed_first);
	RUN(lru_gives_referenced_entries_a_second_chance);
	RUN(dup_shares_a_slot_until_the_last_free);
	RUN(unknown_freed_and_double_freed_slots_are_errors);
	RUN(corrupted_compressed_data_is_eio);
	RUN(compressor_switch_keeps_old_entries_readable);
	RUN(full_pool_refuses_stores_to_the_file);
	RUN(full_swap_file_refuses_swap_out);
	RUN(failed_writeback_keeps_the_entry);
	RUN(failed_file_store_leaves_the_page_with_the_caller);
	RUN(failed_file_read_is_eio);
	RUN(compaction_after_freeing_half_gives_memory_back);
	RUN(freed_memory_goes_back_but_a_reserve_for_a_while);
	RUN(shrinker_writes_back_under_memory_pressure);
	RUN(bad_configs_are_refused);
	RUN(swap_file_is_private_and_leaves_nothing_behind);
	RUN(stats_print_as_name_value_lines);
	free(corpus);
	return CHECK_DONE();
}
