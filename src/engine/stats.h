/* SPDX-License-Identifier: MIT */
/*
 * stats — engine counters, kept per thread shard so the hot paths never share a cache
 * line; a read sums the shards. Gauges (stored_pages, ...) go up and down, so a shard's
 * value may be negative; only the sum means anything.
 */
#ifndef UZS_STATS_H
#define UZS_STATS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "swapfile.h"
#include "uzswap.h"

enum counter {
	C_STORED_PAGES,
	C_STORED_INCOMPRESSIBLE,
	C_SAME_FILLED,
	C_COMPRESSED_BYTES,
	C_POOL_LIMIT_HIT,
	C_WRITTEN_BACK,
	C_REJECT_RECLAIM_FAIL,
	C_REJECT_COMPRESS_FAIL,
	C_REJECT_COMPRESS_POOR,
	C_REJECT_ALLOC_FAIL,
	C_REJECT_KMEMCACHE_FAIL,
	C_DECOMPRESS_FAIL,
	C_ZSWPIN,
	C_ZSWPOUT,
	C_PSWPIN,
	C_PSWPOUT,
	C_WRITEBACK_FAIL,
	C_SWAP_IO_FAIL,
	C_SWAP_CORRUPT,
	C_INVALID_SLOT,
	C_NODATA_SLOT,
	C_COMPACTED,
	C_RUN_PARTIAL,
	C_SHRINKER_RUNS,	/* shrinker runs on the MemAvailable poll's word */
	C_SHRINKER_PSI_RUNS,	/* shrinker runs the PSI trigger started */
	C_ZSWPOUT_RUN,					/* + order: runs stored */
	C_ZSWPIN_RUN = C_ZSWPOUT_RUN + UZS_RUN_ORDERS,	/* + order: runs loaded */
	C_NR = C_ZSWPIN_RUN + UZS_RUN_ORDERS
};

#define STAT_SHARDS 16u

struct stat_shard {
	alignas(64) _Atomic int64_t v[C_NR];
};

struct stats {
	struct stat_shard shard[STAT_SHARDS];
};

/* The calling thread's shard, for several updates in a row. */
static inline struct stat_shard *stat_mine(struct stats *s)
{
	return &s->shard[thread_shard() % STAT_SHARDS];
}

static inline void stat_shard_add(struct stat_shard *sh, enum counter c, int64_t n)
{
	atomic_fetch_add_explicit(&sh->v[c], n, memory_order_relaxed);
}

static inline void stat_add(struct stats *s, enum counter c, int64_t n)
{
	stat_shard_add(stat_mine(s), c, n);
}

static inline void stat_inc(struct stats *s, enum counter c)
{
	stat_add(s, c, 1);
}

static inline uint64_t stat_read(struct stats *s, enum counter c)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < STAT_SHARDS; i++)
		sum += atomic_load_explicit(&s->shard[i].v[c], memory_order_relaxed);
	return sum < 0 ? 0 : (uint64_t)sum;
}

#endif
