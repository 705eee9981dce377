/* SPDX-License-Identifier: MIT */
/*
 * run — multi-page runs, as the kernel swaps large folios: 2^n pages in nr consecutive
 * slots, stored all or nothing with one charge, one index walk and one LRU insertion, and
 * loaded only when the run is wholly in the cache or wholly in the swap file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fault.h"
#include "lru.h"
#include "pool.h"
#include "swapfile.h"
#include "tree.h"

static bool run_size_ok(unsigned nr)
{
	return nr >= 1 && nr <= UZS_RUN_MAX && !(nr & (nr - 1));
}

static unsigned order_of(unsigned nr)
{
	return (unsigned)__builtin_ctz(nr);
}

/* A range of slots that one run can span: inside one cluster of the swap file. */
static bool range_ok(struct uzs *uzs, uint64_t first, unsigned nr)
{
	return nr >= 1 && nr <= UZS_RUN_MAX && first >= 1 &&
	       first + nr <= swapfile_nr_slots(uzs->sf) &&
	       first / SLOTS_PER_CLUSTER == (first + nr - 1) / SLOTS_PER_CLUSTER;
}

/* ---- store ---- */

/* Runs this long are compressed (stores) or decompressed (loads) by the caller and the
 * helpers together. Measured with lz4 on 2 vCPUs: runs of 4 store at 0.94-1.03x the
 * per-page cost of single pages, runs of 16 at 0.79-0.91x; loads of 16 at 0.69x. */
#define SPREAD_STORE_MIN 4
#define SPREAD_LOAD_MIN 16

struct run_store {
	struct uzs *uzs;
	struct uzs_group *group;
	uint64_t first;
	const unsigned char *pages;
	unsigned lru_idx;
	bool pool_ok;
	struct entry *entries[UZS_RUN_MAX];
	int errs[UZS_RUN_MAX];
};

/* Entries made for a run that will not be stored (NULLs skipped): nothing was counted or
 * indexed yet. */
static void drop_entries(struct uzs *uzs, struct entry **entries, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++) {
		if (!entries[i])
			continue;
		if (entries[i]->kind != ENTRY_SAME)
			pool_free(uzs->pool, entries[i]->handle);
		free(entries[i]);
	}
	if (nr)
		pool_freed(uzs);
}

/* Page i of the run into a new entry in the pool: not yet charged, counted or indexed.
 * Runs on the caller or a helper thread, each with its own compressor and buffer. */
static int make_entry(struct run_store *r, unsigned i)
{
	struct uzs *uzs = r->uzs;
	struct entry *e = malloc(sizeof(*e));
	const void *src;
	int err = 0;

	if (!e) {
		stat_inc(uzs->stats, C_REJECT_KMEMCACHE_FAIL);
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->slot = r->first + i;
	e->group = r->group;
	e->lru_idx = (uint8_t)r->lru_idx;
	if (page_same_filled(r->pages + (size_t)i * PAGE, &e->fill)) {
		e->kind = ENTRY_SAME;
	} else if (!r->pool_ok) {
		err = -ENOSPC;
	} else {
		err = compress_entry(uzs, r->pages + (size_t)i * PAGE, e, &src);
		if (!err && pool_store(uzs->pool, src, e->length, &e->handle)) {
			stat_inc(uzs->stats, C_REJECT_ALLOC_FAIL);
			err = -ENOMEM;
		}
	}
	if (err) {
		free(e);
		return err;
	}
	r->entries[i] = e;
	return 0;
}

static void make_entry_job(void *arg, unsigned i)
{
	struct run_store *r = arg;

	r->entries[i] = NULL;
	r->errs[i] = make_entry(r, i);
}

/* Compressed bytes of a run (a same-filled entry has length 0). */
static uint64_t run_bytes(struct entry **entries, unsigned nr)
{
	uint64_t bytes = 0;

	for (unsigned i = 0; i < nr; i++)
		bytes += entries[i]->length;
	return bytes;
}

/* A stored run in the engine's and its group's figures, one update each. (Entries leave
 * one by one, through entry_destroy.) */
static void count_stored_run(struct uzs *uzs, struct entry **entries, unsigned nr)
{
	struct stat_shard *sh = stat_mine(uzs->stats);
	int64_t same = 0, raw = 0;

	for (unsigned i = 0; i < nr; i++) {
		same += entries[i]->kind == ENTRY_SAME;
		raw += entries[i]->kind == ENTRY_RAW;
	}
	stat_shard_add(sh, C_STORED_PAGES, (int64_t)nr);
	stat_shard_add(sh, C_SAME_FILLED, same);
	stat_shard_add(sh, C_COMPRESSED_BYTES, (int64_t)run_bytes(entries, nr));
	stat_shard_add(sh, C_STORED_INCOMPRESSIBLE, raw);
	if (!group_charged(entries[0]->group))
		return;
	/* the charge itself went on through charge_group */
	GROUP_COUNT(entries[0]->group, c.zswapped_pages, (int64_t)nr);
	GROUP_COUNT(entries[0]->group, c.incomp_pages, raw);
}

static void lru_add_run(struct entry **entries, unsigned nr)
{
	struct lru *l = group_lru_lock(entries[0]->group, entries[0]->lru_idx);

	for (unsigned i = 0; i < nr; i++) {
		if (entries[i]->kind == ENTRY_SAME)
			continue;
		entries[i]->referenced = true;
		lru_add_head_locked(l, entries[i]);
	}
	pthread_mutex_unlock(&l->lock);
}

static int store_run(struct run_store *r, unsigned nr)
{
	struct uzs *uzs = r->uzs;
	int err = 0;

	if (group_zswap_disabled(r->group))
		return -ENOSPC;
	r->lru_idx = group_lru_index(&uzs->groups);
	r->pool_ok = pool_accepts(uzs); /* once per run, as the kernel does per folio */
	spread_for(&uzs->spread, nr, SPREAD_STORE_MIN, make_entry_job, r);
	for (unsigned i = 0; i < nr && !err; i++)
		err = r->errs[i];
	if (err) {
		drop_entries(uzs, r->entries, nr);
		return err;
	}
	if (charge_group(uzs, r->group, run_bytes(r->entries, nr))) {
		drop_entries(uzs, r->entries, nr);
		return -ENOSPC;
	}
	if (group_charged(r->group))
		group_get_many(r->group, nr);
	count_stored_run(uzs, r->entries, nr);
	stat_add(uzs->stats, C_ZSWPOUT, nr);
	stat_inc(uzs->stats, C_ZSWPOUT_RUN + order_of(nr));
	GROUP_COUNT(r->group, c.zswpout, nr);
	tree_insert_run(uzs->tree, r->entries, nr);
	lru_add_run(r->entries, nr);
	return 0;
}

static void release_run(struct uzs *uzs, uint64_t first, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		release_slot(uzs, first + i);
}

/* The cache refused the run: it goes to the swap file in one write. */
static int write_run_to_file(struct uzs *uzs, uint64_t first, const void *pages, unsigned nr)
{
	int err = swapfile_write_run(uzs->sf, first, nr, pages);

	if (err) {
		stat_inc(uzs->stats, C_SWAP_IO_FAIL);
		return err;
	}
	for (unsigned i = 0; i < nr; i++)
		slot_set_flags(uzs->sf, first + i, SLOT_ON_FILE);
	stat_add(uzs->stats, C_PSWPOUT, nr);
	return 0;
}

int uzs_swap_out_run(struct uzs *uzs, struct uzs_group *group, const void *pages, unsigned nr,
		     uzs_slot_t *first)
{
	struct run_store *r;
	uint64_t slot;
	int err;

	if (!uzs || !pages || !first || !run_size_ok(nr))
		return -EINVAL;
	if (nr == 1)
		return uzs_swap_out(uzs, group, pages, first);
	err = resolve_group(uzs, &group);
	if (err)
		return err;
	r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct run_store){.uzs = uzs, .group = group, .pages = pages};
	slot = r->first = swapfile_alloc_run(uzs->sf, nr);
	if (!slot)
		err = -ENOSPC;
	else if (store_run(r, nr) == 0)
		err = 0;
	else if (!group_writeback_enabled(group))
		err = -ENOSPC; /* nothing of this group may reach the file */
	else
		err = write_run_to_file(uzs, slot, pages, nr);
	free(r);
	if (err && slot)
		release_run(uzs, slot, nr);
	if (!err)
		*first = slot;
	return err;
}

/* ---- load ---- */

/* Destroy the entries the caller came to own (NULLs skipped). */
static void destroy_owned(struct uzs *uzs, struct entry **entries, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		if (entries[i])
			entry_destroy(uzs, entries[i]);
}

/* zswpin for each entry's group (a run's entries share one; ranges may not). */
static void count_group_loads(struct entry **entries, unsigned nr)
{
	unsigned i = 0;

	while (i < nr) {
		unsigned j = i + 1;

		while (j < nr && entries[j]->group == entries[i]->group)
			j++;
		GROUP_COUNT(entries[i]->group, c.zswpin, (int64_t)(j - i));
		i = j;
	}
}

struct run_load {
	struct uzs *uzs;
	struct entry **entries;
	unsigned char *pages;
	_Atomic int err;
};

static void read_entry_job(void *arg, unsigned i)
{
	struct run_load *l = arg;
	int err = entry_load(l->uzs, l->entries[i], l->pages + (size_t)i * PAGE);
	int none = 0;

	/* corruption outranks a shortage: -EIO stays, -ENOMEM only where nothing was said */
	if (err == -ENOMEM)
		atomic_compare_exchange_strong(&l->err, &none, err);
	else if (err)
		atomic_store(&l->err, err);
}

static int read_cached_run(struct uzs *uzs, struct entry **entries, unsigned nr,
			   unsigned char *pages, bool take)
{
	struct run_load l = {.uzs = uzs, .entries = entries, .pages = pages};

	spread_for(&uzs->spread, nr, SPREAD_LOAD_MIN, read_entry_job, &l);
	if (atomic_load(&l.err))
		return atomic_load(&l.err);
	for (unsigned i = 0; !take && i < nr; i++)
		if (entries[i]->kind != ENTRY_SAME)
			entry_lru_demote(entries[i]); /* the caller holds the pages too */
	count_group_loads(entries, nr);
	stat_add(uzs->stats, C_ZSWPIN, nr);
	stat_inc(uzs->stats, C_ZSWPIN_RUN + order_of(nr));
	return 0;
}

/* Nothing of the run is cached: every page was written to its slot before leaving the
 * cache, so the run is on file as one piece. */
static int read_file_run(struct uzs *uzs, uint64_t first, unsigned char *pages, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		if (!(swapfile_state(uzs->sf, first + i) & SLOT_ON_FILE)) {
			stat_inc(uzs->stats, C_SWAP_IO_FAIL);
			return -EIO;
		}
	if (swapfile_read_counted(uzs, first, nr, pages))
		return -EIO;
	stat_add(uzs->stats, C_PSWPIN, nr);
	return 0;
}

static int load_run(struct uzs *uzs, uint64_t first, unsigned char *pages, unsigned nr,
		    bool take)
{
	struct entry *entries[UZS_RUN_MAX];
	unsigned found;
	int err;

	fault_hook(HOOK_RUN_LOAD_START, first);
	found = tree_borrow_run(uzs->tree, first, nr, entries);
	fault_hook(HOOK_RUN_LOAD_BORROWED, first);
	if (found == nr) {
		err = read_cached_run(uzs, entries, nr, pages, take);
	} else if (found == 0) {
		err = read_file_run(uzs, first, pages, nr);
	} else {
		/* a writeback or a free took part of it: no mixed data, nothing touched */
		stat_inc(uzs->stats, C_RUN_PARTIAL);
		err = -EIO;
	}
	if (tree_return_run(uzs->tree, entries, nr, take && !err && found == nr))
		destroy_owned(uzs, entries, nr);
	return err;
}

/* Every slot live and holding data; *sole when the caller is each one's only holder. */
static int check_run_slots(struct uzs *uzs, uint64_t first, unsigned nr, bool *sole)
{
	*sole = true;
	for (unsigned i = 0; i < nr; i++) {
		uint32_t s = swapfile_state(uzs->sf, first + i);

		if (!slot_live(s))
			return invalid_slot(uzs);
		if (!(s & SLOT_HAS_DATA)) {
			stat_inc(uzs->stats, C_NODATA_SLOT);
			return -ENODATA;
		}
		*sole = *sole && (s & SLOT_COUNT_MASK) == 1;
	}
	return 0;
}

int uzs_swap_in_run(struct uzs *uzs, uzs_slot_t first, void *pages, unsigned nr, unsigned flags)
{
	bool sole, take;
	int err;

	if (!uzs || !pages || (flags & ~UZS_SWAPIN_FREE) || !run_size_ok(nr) || first % nr ||
	    !range_ok(uzs, first, nr))
		return -EINVAL;
	err = check_run_slots(uzs, first, nr, &sole);
	if (err)
		return err;
	take = sole && (uzs->exclusive_loads || (flags & UZS_SWAPIN_FREE));
	err = load_run(uzs, first, pages, nr, take);
	for (unsigned i = 0; !err && i < nr; i++) {
		if (flags & UZS_SWAPIN_FREE)
			err = uzs_free(uzs, first + i);
		else if (take)
			slot_clear_flags(uzs->sf, first + i, SLOT_HAS_DATA | SLOT_ON_FILE);
	}
	return err;
}

/* ---- presence and holds ---- */

static int check_live(struct uzs *uzs, uint64_t first, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		if (!slot_live(swapfile_state(uzs->sf, first + i)))
			return invalid_slot(uzs);
	return 0;
}

int uzs_present(struct uzs *uzs, uzs_slot_t first, unsigned nr)
{
	struct entry *entries[UZS_RUN_MAX];
	unsigned found;
	int err;

	if (!uzs || !range_ok(uzs, first, nr))
		return -EINVAL;
	err = check_live(uzs, first, nr);
	if (err)
		return err;
	found = tree_borrow_run(uzs->tree, first, nr, entries);
	if (tree_return_run(uzs->tree, entries, nr, false))
		destroy_owned(uzs, entries, nr);
	return (int)found;
}

int uzs_run_hold(struct uzs *uzs, uzs_slot_t first, unsigned nr)
{
	if (!uzs || !range_ok(uzs, first, nr))
		return -EINVAL;
	for (unsigned i = 0; i < nr; i++) {
		int err = slot_hold(uzs->sf, first + i);

		if (err) {
			while (i-- > 0)
				slot_unhold(uzs->sf, first + i);
			return err == -EINVAL ? invalid_slot(uzs) : err;
		}
	}
	/* No new writeback can start on a held slot; one in flight ends with one page I/O. */
	for (unsigned i = 0; i < nr; i++)
		while (swapfile_state(uzs->sf, first + i) & SLOT_WB_PIN)
			sched_yield();
	return 0;
}

int uzs_run_release(struct uzs *uzs, uzs_slot_t first, unsigned nr)
{
	if (!uzs || !range_ok(uzs, first, nr))
		return -EINVAL;
	for (unsigned i = 0; i < nr; i++)
		slot_unhold(uzs->sf, first + i);
	return 0;
}
