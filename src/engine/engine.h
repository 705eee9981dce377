/* SPDX-License-Identifier: MIT */
/*
 * engine — the instance and the engine's internals shared by its files: engine.c (store,
 * load, writeback, the worker), multipage.c (multi-page runs) and group_api.c (the groups'
 * public calls and figures).
 */
#ifndef UZS_ENGINE_H
#define UZS_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "compress.h"
#include "entry.h"
#include "group.h"
#include "psi.h"
#include "spread.h"
#include "stats.h"
#include "uzswap.h"

#define PAGE UZS_PAGE_SIZE
#define MAX_COMPRESSORS 64u

struct uzs {
	struct swapfile *sf;
	struct tree *tree;
	struct pool *pool;
	struct groups groups;
	struct stats *stats;
	struct spread spread; /* helpers for long runs */

	uint64_t pool_limit;   /* bytes */
	uint64_t accept_bytes; /* a full pool takes stores again below this */
	_Atomic bool pool_full;
	bool exclusive_loads;
	bool shrinker_enabled;

	/* Append-only: stored entries name their compressor by index, so an entry made
	 * before a switch still decompresses with its own. */
	pthread_mutex_t comp_lock;
	struct compressor comps[MAX_COMPRESSORS];
	_Atomic unsigned nr_comps;
	_Atomic unsigned cur_comp;

	pthread_t worker;
	pthread_mutex_t worker_lock;
	pthread_cond_t worker_cond;
	bool worker_wake, worker_stop; /* worker_lock */
	_Atomic bool wake_pending;
	_Atomic bool release_armed;	 /* empty pool pages wait for the worker */
	/* worker only: the delayed release and the reserve it keeps */
	bool release_pending, reserve_held;
	struct timespec release_at;	 /* when to give empty pages back */
	struct timespec reserve_at;	 /* when to check whether the reserve idles */
	uint64_t reserve_hits;		 /* pool_cache_hits when the reserve was last seen */
	_Atomic int test_pressure;	 /* -1: read /proc/meminfo; 0/1: tests say */
	struct psi_watch *psi_watch;	 /* the shrinker's pressure trigger, or NULL */
	_Atomic bool psi;		 /* the trigger works (else MemAvailable is polled) */
	_Atomic bool psi_fired;		 /* it fired since the worker last looked */
};

/* Per-thread buffer for compression output (COMP_DST_BYTES). */
unsigned char *scratch(void);
/* Free the calling thread's compressor contexts and buffers (threads the engine ends). */
void engine_thread_cleanup(void);

bool page_same_filled(const void *page, uint64_t *fill);
void fill_page(void *page, uint64_t fill);

/* The root's figures are the engine's; only groups below it count for themselves. */
bool group_charged(const struct uzs_group *g);

/* Add (sign 1) or take away (-1) an entry in the engine's and its group's figures. */
void entry_count(struct uzs *uzs, const struct entry *e, int sign);
/* Free an entry the caller owns: off its LRU, out of the pool, uncounted. */
void entry_destroy(struct uzs *uzs, struct entry *e);
/* Put an entry's page into a buffer of the engine's own. -EIO when the compressed data is
 * corrupt (the buffer then undefined), -ENOMEM when no memory to decompress. */
int entry_read(struct uzs *uzs, const struct entry *e, void *page);
/* The same into a caller's page, untouched on error; -ENOMEM: a shortage, the entry intact. */
int entry_load(struct uzs *uzs, const struct entry *e, void *page);
void entry_lru_add(struct entry *e);
void entry_lru_del(struct entry *e);
/* Compress page into the scratch buffer; e says what to store (*src) and how long. */
int compress_entry(struct uzs *uzs, const void *page, struct entry *e, const void **src);
/* Charge g for bytes, writing back under a limit in the way first; -ENOSPC if no room. */
int charge_group(struct uzs *uzs, struct uzs_group *g, uint64_t bytes);
/* NULL means the root; -EINVAL another instance's group, -ENOENT a removed one. */
int resolve_group(struct uzs *uzs, struct uzs_group **group);
/* After pool_free: have empty pool pages given back soon. */
void pool_freed(struct uzs *uzs);
void entry_lru_demote(struct entry *e);

/* Does the pool take stores (the limit with its hysteresis)? Counts and wakes if not. */
bool pool_accepts(struct uzs *uzs);
/* Write back up to nr entries of top's subtree, first's own first. */
long reclaim_subtree(struct uzs *uzs, struct uzs_group *top, struct uzs_group *first, long nr);

void release_slot(struct uzs *uzs, uint64_t slot);
/* Read nr pages from the file, counting a failure (and a failed check) in the stats. */
int swapfile_read_counted(struct uzs *uzs, uint64_t first, unsigned nr, void *pages);
bool slot_live(uint32_t s);
int invalid_slot(struct uzs *uzs);

#endif
