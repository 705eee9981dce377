/* SPDX-License-Identifier: MIT */
/*
 * zswap — the engine: store, load, free and dup of slots, writeback from the groups'
 * LRUs, the pool limit with its acceptance hysteresis, group limits with synchronous
 * reclaim, and the shrink worker.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "entry.h"
#include "fault.h"
#include "group.h"
#include "lru.h"
#include "pool.h"
#include "psi.h"
#include "stats.h"
#include "swapfile.h"
#include "tree.h"

#define MAX_RECLAIM_FAILURES 16
/* Global reclaim writes back this many entries of a group before moving to the next. */
#define VISIT_BATCH 4
#define COMPACT_EVERY 256
#define DEFAULT_SWAPFILE_BYTES (4ull << 30)
/* Empty pool pages go back to the OS this long after they empty, in one batch... */
#define RELEASE_DELAY_NS (100 * 1000 * 1000)
/* ...but for a reserve of 1/RESERVE_SHARE of the pool limit: a pool that grows again soon
 * reuses those pages instead of faulting in fresh ones (a fresh page, zeroed by the
 * kernel, costs several times a reused one; on a VM, tens of microseconds). Within the
 * limit's hysteresis band (accept_threshold_percent, 10% by default), so a pool cycling
 * between full and the threshold is served from it. */
#define RESERVE_SHARE 16
/* A reserve that no allocation touched for this long goes back too. */
#define RESERVE_IDLE_NS (2000 * 1000 * 1000L)


/* ---- per-thread scratch: compression output, then a page for writeback staging (a
 * store that reclaims for its group's limit writes back while holding its output), then
 * a page loads decompress into before the caller's page is touched ---- */

static __thread unsigned char *scratch_buf;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, free);
}

unsigned char *scratch(void)
{
	if (!scratch_buf) {
		pthread_once(&scratch_once, scratch_key_init);
		/* Page-aligned so writeback can hand it to O_DIRECT I/O without a copy. */
		scratch_buf = aligned_alloc(PAGE, COMP_DST_BYTES + 2 * PAGE);
		if (scratch_buf)
			pthread_setspecific(scratch_key, scratch_buf);
	}
	return scratch_buf;
}

static unsigned char *writeback_page(void)
{
	unsigned char *buf = scratch();

	return buf ? buf + COMP_DST_BYTES : NULL;
}

static unsigned char *load_bounce_page(void)
{
	unsigned char *buf = scratch();

	return buf ? buf + COMP_DST_BYTES + PAGE : NULL;
}

static void scratch_thread_cleanup(void)
{
	if (!scratch_buf)
		return;
	pthread_setspecific(scratch_key, NULL);
	free(scratch_buf);
	scratch_buf = NULL;
}

void engine_thread_cleanup(void)
{
	comp_thread_cleanup();
	scratch_thread_cleanup();
	swapfile_thread_cleanup();
}

/* ---- entries ---- */

void entry_lru_add(struct entry *e)
{
	struct lru *l = group_lru_lock(e->group, e->lru_idx);

	e->referenced = true;
	lru_add_head_locked(l, e);
	pthread_mutex_unlock(&l->lock);
}

void entry_lru_del(struct entry *e)
{
	struct lru *l = group_lru_lock(e->group, e->lru_idx);

	if (e->on_lru)
		lru_del_locked(l, e);
	pthread_mutex_unlock(&l->lock);
}

/* To the cold end without its referenced bit: written back first. */
void entry_lru_demote(struct entry *e)
{
	struct lru *l = group_lru_lock(e->group, e->lru_idx);

	if (e->on_lru) {
		lru_del_locked(l, e);
		e->referenced = false;
		lru_add_tail_locked(l, e);
	}
	pthread_mutex_unlock(&l->lock);
}

/* Word loads through memcpy: callers' pages need not be 8-byte aligned, and on x86 this
 * compiles to the same plain loads. */
static inline uint64_t word_at(const unsigned char *p, unsigned i)
{
	uint64_t w;

	memcpy(&w, p + i * 8, 8);
	return w;
}

bool page_same_filled(const void *page, uint64_t *fill)
{
	const unsigned char *p = page;
	uint64_t first = word_at(p, 0);

	/* The last word first: most pages differ there, so the common case exits at once. */
	if (word_at(p, PAGE / 8 - 1) != first)
		return false;
	for (unsigned i = 1; i < PAGE / 8 - 1; i++)
		if (word_at(p, i) != first)
			return false;
	*fill = first;
	return true;
}

void fill_page(void *page, uint64_t fill)
{
	unsigned char *p = page;

	for (unsigned i = 0; i < PAGE / 8; i++)
		memcpy(p + i * 8, &fill, 8);
}

/* The root's figures are the engine's; only groups below it count for themselves. */
bool group_charged(const struct uzs_group *g)
{
	return g->parent != NULL;
}

/* One walk up the hierarchy for a stored or dropped entry. The charge itself went on at
 * store time through group_try_charge; it comes off here. */
static void group_account(const struct entry *e, int sign)
{
	bool raw = e->kind == ENTRY_RAW;

	for (struct uzs_group *g = e->group; g->parent; g = g->parent) {
		atomic_fetch_add_explicit(&g->c.zswapped_pages, sign, memory_order_relaxed);
		if (raw)
			atomic_fetch_add_explicit(&g->c.incomp_pages, sign, memory_order_relaxed);
		if (sign < 0 && e->length)
			atomic_fetch_sub_explicit(&g->c.zswap_bytes, e->length,
						  memory_order_relaxed);
	}
}

void entry_count(struct uzs *uzs, const struct entry *e, int sign)
{
	struct stat_shard *sh = stat_mine(uzs->stats);

	if (group_charged(e->group))
		group_account(e, sign);

	stat_shard_add(sh, C_STORED_PAGES, sign);
	if (e->kind == ENTRY_SAME)
		stat_shard_add(sh, C_SAME_FILLED, sign);
	else
		stat_shard_add(sh, C_COMPRESSED_BYTES, sign * (int64_t)e->length);
	if (e->kind == ENTRY_RAW)
		stat_shard_add(sh, C_STORED_INCOMPRESSIBLE, sign);
}

static void arm_release(struct uzs *uzs);

void pool_freed(struct uzs *uzs)
{
	if (pool_empty_bytes(uzs->pool) &&
	    !atomic_load_explicit(&uzs->release_armed, memory_order_relaxed))
		arm_release(uzs);
}

void entry_destroy(struct uzs *uzs, struct entry *e)
{
	if (e->kind != ENTRY_SAME) {
		entry_lru_del(e);
		pool_free(uzs->pool, e->handle);
		pool_freed(uzs);
	}
	entry_count(uzs, e, -1);
	if (group_charged(e->group))
		group_put(e->group);
	free(e);
}

/* Decompress an entry's page into page. -EIO when the compressed data is corrupt (page
 * then holds whatever the decompressor wrote), -ENOMEM when the decompressor's per-thread
 * state could not be allocated (a shortage, not damage: not counted, the entry intact). */
static int entry_decompress(struct uzs *uzs, const struct entry *e, void *page)
{
	const void *src = pool_map(uzs->pool, e->handle);
	int err;

	if (e->kind == ENTRY_RAW) {
		memcpy(page, src, PAGE);
		err = 0;
	} else {
		err = comp_decompress(&uzs->comps[e->comp], src, e->length, page, PAGE);
	}
	pool_unmap(uzs->pool, e->handle);
	if (err == -ENOMEM)
		return err;
	if (err)
		stat_inc(uzs->stats, C_DECOMPRESS_FAIL);
	return err ? -EIO : 0;
}

/* Put an entry's page into a buffer of the engine's own (writeback staging): on error its
 * contents are undefined. */
int entry_read(struct uzs *uzs, const struct entry *e, void *page)
{
	if (e->kind == ENTRY_SAME) {
		fill_page(page, e->fill);
		return 0;
	}
	return entry_decompress(uzs, e, page);
}

/* Put an entry's page into a caller's page, which an error leaves untouched: a compressed
 * page goes through this thread's bounce page (the decompressors write as they go, so a
 * corrupt object would leave garbage behind), copied over only once it decompressed. */
int entry_load(struct uzs *uzs, const struct entry *e, void *page)
{
	unsigned char *bounce;
	int err;

	if (e->kind != ENTRY_COMPRESSED)
		return entry_read(uzs, e, page);
	bounce = load_bounce_page();
	if (!bounce)
		return -ENOMEM;
	err = entry_decompress(uzs, e, bounce);
	if (!err)
		memcpy(page, bounce, PAGE);
	return err;
}

/* ---- limits and the shrink worker ---- */

static void wake_worker(struct uzs *uzs)
{
	if (atomic_exchange_explicit(&uzs->wake_pending, true, memory_order_acq_rel))
		return;
	pthread_mutex_lock(&uzs->worker_lock);
	uzs->worker_wake = true;
	pthread_cond_signal(&uzs->worker_cond);
	pthread_mutex_unlock(&uzs->worker_lock);
}

/* Empty pool pages appeared: have the worker give them back soon, all at once. */
static void arm_release(struct uzs *uzs)
{
	if (!atomic_exchange_explicit(&uzs->release_armed, true, memory_order_acq_rel))
		wake_worker(uzs);
}

/* The kernel's hysteresis: once full, refuse stores until reclaim has brought the pool
 * below the acceptance threshold, so the cache does not flap at its limit. */
bool pool_accepts(struct uzs *uzs)
{
	uint64_t total = pool_total_bytes(uzs->pool);

	if (atomic_load_explicit(&uzs->pool_full, memory_order_relaxed)) {
		if (total > uzs->accept_bytes)
			goto refuse;
		atomic_store_explicit(&uzs->pool_full, false, memory_order_relaxed);
	}
	if (total < uzs->pool_limit)
		return true;
	atomic_store_explicit(&uzs->pool_full, true, memory_order_relaxed);
refuse:
	stat_inc(uzs->stats, C_POOL_LIMIT_HIT);
	wake_worker(uzs);
	return false;
}

/* Take the coldest unreferenced entry off one list with its slot pinned; 0 if none. */
static uint64_t lru_isolate_cold_from(struct uzs *uzs, struct lru *l)
{
	uint64_t slot = 0;

	pthread_mutex_lock(&l->lock);
	if (atomic_load_explicit(&l->spliced, memory_order_relaxed)) {
		/* its group was removed: the entries are its parent's now */
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	for (uint64_t turn = 0, turns = 2 * l->nr + 1; turn < turns && l->nr; turn++) {
		struct entry *e = l->head.lru_prev;

		lru_del_locked(l, e);
		if (e->referenced || !slot_pin(uzs->sf, e->slot)) {
			/* second chance; or the slot is being freed and its entry with it */
			e->referenced = false;
			lru_add_head_locked(l, e);
			continue;
		}
		slot = e->slot;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	return slot;
}

/* A write that failed keeps the entry in RAM, back on the LRU unless it was freed. */
static void relist(struct uzs *uzs, struct entry *e)
{
	pthread_mutex_t *lock = tree_lock_of(uzs->tree, e->slot);

	pthread_mutex_lock(lock);
	if (!e->detached) {
		struct lru *l = group_lru_lock(e->group, e->lru_idx);

		if (!e->on_lru)
			lru_add_head_locked(l, e);
		pthread_mutex_unlock(&l->lock);
	}
	pthread_mutex_unlock(lock);
}

/* Write the entry of a pinned slot to the slot. 1 written, 0 lost a race (nothing to
 * do), -EIO the read or the write failed, -ENOMEM no staging page. */
static int writeback_slot(struct uzs *uzs, uint64_t slot)
{
	unsigned char *buf = writeback_page();
	/* The pin keeps the slot from being reused, so whatever entry the tree holds for it
	 * now is that slot's current page. */
	struct entry *e;
	int err;

	fault_hook(HOOK_WB_PINNED, slot);
	e = buf ? tree_borrow(uzs->tree, slot) : NULL;
	if (!e) {
		slot_unpin(uzs->sf, slot);
		return buf ? 0 : -ENOMEM;
	}
	entry_lru_del(e);
	err = entry_read(uzs, e, buf);
	if (!err)
		fault_hook(HOOK_WB_READ, slot);
	if (!err && (err = swapfile_write(uzs->sf, slot, buf))) {
		stat_inc(uzs->stats, C_SWAP_IO_FAIL);
		stat_inc(uzs->stats, C_WRITEBACK_FAIL);
	}
	if (err) {
		relist(uzs, e);
	} else {
		/* On file before out of the tree: a load that misses the tree reads the file. */
		slot_set_flags(uzs->sf, slot, SLOT_ON_FILE);
		stat_inc(uzs->stats, C_WRITTEN_BACK);
		GROUP_COUNT(e->group, c.zswpwb, 1);
	}
	if (tree_return(uzs->tree, e, !err))
		entry_destroy(uzs, e);
	slot_unpin(uzs->sf, slot);
	return err ? -EIO : 1;
}

/* Write back one cold entry of the group's own lists (and of its removed children, which
 * were spliced into them). -ENOENT: nothing there. */
static int writeback_from_group(struct uzs *uzs, struct uzs_group *g)
{
	unsigned n = uzs->groups.nr_lrus;
	unsigned start = atomic_fetch_add_explicit(&g->lru_cursor, 1, memory_order_relaxed);

	for (unsigned i = 0; i < n; i++) {
		uint64_t slot = lru_isolate_cold_from(uzs, &g->lrus[(start + i) % n]);

		if (slot)
			return writeback_slot(uzs, slot);
	}
	return -ENOENT;
}

static bool reclaimable(const struct uzs_group *g)
{
	return group_writeback_enabled(g) && group_lru_size(g);
}

/* Up to nr entries of one group; stops at its first failure. */
static long writeback_group_some(struct uzs *uzs, struct uzs_group *g, long nr, int *failures)
{
	long written = 0;

	while (written < nr && *failures < MAX_RECLAIM_FAILURES && reclaimable(g)) {
		int r = writeback_from_group(uzs, g);

		if (r == -ENOENT)
			break;
		if (r <= 0) {
			++*failures;
			break;
		}
		written++;
	}
	return written;
}

/* Writeback frees objects all over the pool; compaction turns them into whole free
 * pages, which is what lowers pool_total_size. */
static void compact_now_and_then(struct uzs *uzs, long before, long after)
{
	if (before / COMPACT_EVERY != after / COMPACT_EVERY)
		stat_add(uzs->stats, C_COMPACTED, (int64_t)pool_compact(uzs->pool));
}

static bool pool_below_threshold(struct uzs *uzs)
{
	return pool_total_bytes(uzs->pool) <= uzs->accept_bytes;
}

/* Global reclaim: the groups in turn from the saved cursor, a few entries each, skipping
 * those with writeback off or nothing on their lists; a whole round that finds nothing
 * ends it, as do MAX_RECLAIM_FAILURES failed writebacks in a row. */
static long reclaim_round_robin(struct uzs *uzs, long nr, bool to_threshold)
{
	long written = 0;
	int failures = 0;
	int64_t idle = 0;

	while (written < nr && failures < MAX_RECLAIM_FAILURES) {
		struct uzs_group *g;
		long n;
		int fails_before = failures;

		if (to_threshold && pool_below_threshold(uzs))
			break;
		g = groups_next_shrink(&uzs->groups);
		n = writeback_group_some(uzs, g, nr - written < VISIT_BATCH ? nr - written
									 : VISIT_BATCH,
					 &failures);
		group_put(g);
		if (n) {
			failures = 0;
			idle = 0;
			compact_now_and_then(uzs, written, written + n);
			written += n;
		} else if (failures == fails_before &&
			   ++idle >= atomic_load(&uzs->groups.nr_live)) {
			break;
		}
	}
	if (to_threshold && failures >= MAX_RECLAIM_FAILURES)
		stat_inc(uzs->stats, C_REJECT_RECLAIM_FAIL);
	return written;
}

/* Up to nr entries from the groups of top's subtree, first from first. */
long reclaim_subtree(struct uzs *uzs, struct uzs_group *top, struct uzs_group *first,
			    long nr)
{
	unsigned count;
	struct uzs_group **list;
	int failures = 0;
	long written = first ? writeback_group_some(uzs, first, nr, &failures) : 0;

	if (written >= nr)
		return written;
	list = groups_within(&uzs->groups, top, &count);
	for (unsigned i = 0; list && i < count; i++) {
		if (written < nr && list[i] != first)
			written += writeback_group_some(uzs, list[i], nr - written, &failures);
		group_put(list[i]);
	}
	free(list);
	return written;
}

static void reclaim_to_threshold(struct uzs *uzs)
{
	if (pool_below_threshold(uzs))
		return;
	reclaim_round_robin(uzs, LONG_MAX, true);
	if (!pool_below_threshold(uzs))
		stat_add(uzs->stats, C_COMPACTED, (int64_t)pool_compact(uzs->pool));
}

/* MemAvailable, not MemFree: free memory is low on any machine with a page cache. */
static long meminfo_kib(const char *key)
{
	char line[128];
	size_t len = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) && line[len] == ':') {
			v = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static bool memory_low(struct uzs *uzs)
{
	int forced = atomic_load(&uzs->test_pressure);
	long avail, total;

	if (forced >= 0)
		return forced;
	avail = meminfo_kib("MemAvailable");
	total = meminfo_kib("MemTotal");
	return avail >= 0 && total > 0 && avail < total / 16;
}

/* Is the system short of memory? The PSI trigger fired since the last look, where there
 * is one (*by_psi); else MemAvailable is low. The tests' forced answer stands in for the
 * MemAvailable poll either way. */
static bool under_pressure(struct uzs *uzs, bool *by_psi)
{
	*by_psi = atomic_exchange(&uzs->psi_fired, false);
	if (*by_psi)
		return true;
	if (atomic_load(&uzs->psi))
		return atomic_load(&uzs->test_pressure) == 1;
	return memory_low(uzs);
}

/* The shrinker: under system memory pressure, write back the colder part of the cache
 * (referenced entries get their second chance, which protects recent stores), and give
 * back the pool's reserve of empty pages, which is memory the system wants now. */
static void shrink_under_pressure(struct uzs *uzs)
{
	struct stats *st = uzs->stats;
	bool by_psi;

	if (!uzs->shrinker_enabled || !under_pressure(uzs, &by_psi))
		return;
	stat_inc(st, by_psi ? C_SHRINKER_PSI_RUNS : C_SHRINKER_RUNS);
	reclaim_round_robin(uzs, (long)((stat_read(st, C_STORED_PAGES) -
					stat_read(st, C_SAME_FILLED)) / 8), false);
	stat_add(st, C_COMPACTED, (int64_t)pool_release_empty(uzs->pool));
}

static void add_ns(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

static void deadline_in(struct timespec *t, long ns)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	add_ns(t, ns);
}

static bool time_reached(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static bool earlier(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Sleep until woken, until a pending release or the reserve's idle check is due, or a
 * second for the shrinker's MemAvailable poll. */
static void worker_wait(struct uzs *uzs)
{
	struct timespec until, t;
	bool timed = false;

	/* with a trigger, the tests' forced answer still needs the poll to be looked at */
	if (uzs->shrinker_enabled &&
	    (!atomic_load(&uzs->psi) || atomic_load(&uzs->test_pressure) >= 0)) {
		deadline_in(&until, 1000 * 1000 * 1000L);
		timed = true;
	}
	if (uzs->release_pending && (!timed || earlier(&uzs->release_at, &until))) {
		until = uzs->release_at;
		timed = true;
	}
	if (uzs->reserve_held && (t = uzs->reserve_at, !timed || earlier(&t, &until))) {
		until = t;
		timed = true;
	}
	if (timed)
		pthread_cond_timedwait(&uzs->worker_cond, &uzs->worker_lock, &until);
	else
		pthread_cond_wait(&uzs->worker_cond, &uzs->worker_lock);
}

static void release_above(struct uzs *uzs, uint64_t keep)
{
	stat_add(uzs->stats, C_COMPACTED, (int64_t)pool_release_empty_above(uzs->pool, keep));
}

/* Watch what is left after a release: it goes back once no allocation has used it for
 * RESERVE_IDLE_NS. */
static void hold_reserve(struct uzs *uzs)
{
	uzs->reserve_held = pool_empty_bytes(uzs->pool) != 0;
	uzs->reserve_hits = pool_cache_hits(uzs->pool);
	deadline_in(&uzs->reserve_at, RESERVE_IDLE_NS);
}

static void reserve_when_idle(struct uzs *uzs)
{
	if (!uzs->reserve_held || !time_reached(&uzs->reserve_at))
		return;
	if (pool_cache_hits(uzs->pool) == uzs->reserve_hits)
		release_above(uzs, 0);
	hold_reserve(uzs);
}

/* Give empty pool pages back, but for the reserve, once they have waited
 * RELEASE_DELAY_NS; then the reserve once it idles. */
static void release_when_due(struct uzs *uzs)
{
	if (!uzs->release_pending) {
		if (atomic_load(&uzs->release_armed)) {
			uzs->release_pending = true;
			deadline_in(&uzs->release_at, RELEASE_DELAY_NS);
		}
	} else if (time_reached(&uzs->release_at)) {
		uzs->release_pending = false;
		atomic_store(&uzs->release_armed, false);
		release_above(uzs, uzs->pool_limit / RESERVE_SHARE);
		hold_reserve(uzs);
		return;
	}
	reserve_when_idle(uzs);
}

/* The PSI watcher's thread: have the worker shrink, or poll MemAvailable from now on. */
static void psi_event(void *arg, bool lost)
{
	struct uzs *uzs = arg;

	if (lost)
		atomic_store(&uzs->psi, false);
	else
		atomic_store(&uzs->psi_fired, true);
	wake_worker(uzs);
}

static void *shrink_worker(void *arg)
{
	struct uzs *uzs = arg;

	pthread_mutex_lock(&uzs->worker_lock);
	while (!uzs->worker_stop) {
		if (!uzs->worker_wake)
			worker_wait(uzs);
		uzs->worker_wake = false;
		atomic_store(&uzs->wake_pending, false);
		if (uzs->worker_stop)
			break;
		pthread_mutex_unlock(&uzs->worker_lock);
		reclaim_to_threshold(uzs);
		shrink_under_pressure(uzs);
		release_when_due(uzs);
		pthread_mutex_lock(&uzs->worker_lock);
	}
	pthread_mutex_unlock(&uzs->worker_lock);
	engine_thread_cleanup();
	return NULL;
}

/* ---- store ---- */

/* Compress page into the scratch buffer and say in e what to store and how long it is.
 * A page that does not compress is stored raw, so it keeps its LRU place, when the group
 * may write back; when it may not, the file is no fallback and the cache refuses it. */
int compress_entry(struct uzs *uzs, const void *page, struct entry *e, const void **src)
{
	unsigned comp = atomic_load_explicit(&uzs->cur_comp, memory_order_acquire);
	unsigned char *buf = scratch();
	int n;

	if (!buf)
		return -ENOMEM;
	n = comp_compress(&uzs->comps[comp], page, PAGE, buf);
	if (n < 0) {
		stat_inc(uzs->stats, C_REJECT_COMPRESS_FAIL);
		return n;
	}
	e->kind = ENTRY_COMPRESSED;
	e->comp = (uint8_t)comp;
	*src = buf;
	if ((unsigned)n >= PAGE) {
		if (!group_writeback_enabled(e->group)) {
			stat_inc(uzs->stats, C_REJECT_COMPRESS_POOR);
			return -ENOSPC;
		}
		e->kind = ENTRY_RAW;
		*src = page;
		n = PAGE;
	}
	e->length = (uint32_t)n;
	return 0;
}

/* Charge e's group. A zswap_max in the way first makes room by writing back the oldest
 * entries under the group that set it, the storing group's own first; the store goes
 * ahead only once the charge fits. */
int charge_group(struct uzs *uzs, struct uzs_group *g, uint64_t bytes)
{
	struct uzs_group *over;

	while ((over = group_try_charge(g, bytes))) {
		if (reclaim_subtree(uzs, over, g, 1) == 0) {
			stat_inc(uzs->stats, C_REJECT_RECLAIM_FAIL);
			return -ENOSPC;
		}
	}
	return 0;
}

static int store_compressed(struct uzs *uzs, const void *page, struct entry *e)
{
	const void *src;
	int err = compress_entry(uzs, page, e, &src);

	if (!err)
		err = charge_group(uzs, e->group, e->length);
	if (err)
		return err;
	if (pool_store(uzs->pool, src, e->length, &e->handle)) {
		group_uncharge(e->group, e->length);
		stat_inc(uzs->stats, C_REJECT_ALLOC_FAIL);
		return -ENOMEM;
	}
	return 0;
}

static int zswap_store(struct uzs *uzs, struct uzs_group *group, uint64_t slot,
		       const void *page)
{
	struct entry *e;
	int err = 0;

	if (group_zswap_disabled(group))
		return -ENOSPC;
	e = malloc(sizeof(*e));
	if (!e) {
		stat_inc(uzs->stats, C_REJECT_KMEMCACHE_FAIL);
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->slot = slot;
	e->group = group;
	e->lru_idx = (uint8_t)group_lru_index(&uzs->groups);
	if (page_same_filled(page, &e->fill))
		e->kind = ENTRY_SAME;
	else if (!pool_accepts(uzs))
		err = -ENOSPC;
	else
		err = store_compressed(uzs, page, e);
	if (err) {
		free(e);
		return err;
	}
	if (group_charged(group))
		group_get(group);
	/* Counted before it is published: once on the LRU, writeback may free it at once. */
	entry_count(uzs, e, 1);
	stat_inc(uzs->stats, C_ZSWPOUT);
	stat_inc(uzs->stats, C_ZSWPOUT_RUN);
	GROUP_COUNT(group, c.zswpout, 1);
	tree_insert(uzs->tree, e); /* a freshly allocated slot: always empty */
	if (e->kind != ENTRY_SAME)
		entry_lru_add(e);
	return 0;
}

void release_slot(struct uzs *uzs, uint64_t slot)
{
	if (slot_put(uzs->sf, slot) == 1)
		slot_finish_free(uzs->sf, slot);
}

int resolve_group(struct uzs *uzs, struct uzs_group **group)
{
	if (!*group)
		*group = uzs->groups.root;
	if ((*group)->set != &uzs->groups)
		return -EINVAL;
	if (atomic_load_explicit(&(*group)->removed, memory_order_relaxed))
		return -ENOENT;
	return 0;
}

int uzs_swap_out(struct uzs *uzs, struct uzs_group *group, const void *page, uzs_slot_t *out)
{
	uint64_t slot;
	int err;

	if (!uzs || !page || !out)
		return -EINVAL;
	err = resolve_group(uzs, &group);
	if (err)
		return err;
	slot = swapfile_alloc(uzs->sf);
	if (!slot)
		return -ENOSPC;
	if (zswap_store(uzs, group, slot, page) == 0) {
		*out = slot;
		return 0;
	}
	if (!group_writeback_enabled(group)) {
		/* Nothing of this group may reach the file: the caller keeps the page. */
		release_slot(uzs, slot);
		return -ENOSPC;
	}
	/* The cache refused the page: it goes to the swap file. */
	err = swapfile_write(uzs->sf, slot, page);
	if (err) {
		stat_inc(uzs->stats, C_SWAP_IO_FAIL);
		release_slot(uzs, slot);
		return err;
	}
	slot_set_flags(uzs->sf, slot, SLOT_ON_FILE);
	stat_inc(uzs->stats, C_PSWPOUT);
	*out = slot;
	return 0;
}

/* ---- load, free, dup ---- */

bool slot_live(uint32_t s)
{
	return (s & SLOT_ALLOCATED) && (s & SLOT_COUNT_MASK) && !(s & SLOT_FREEING);
}

int invalid_slot(struct uzs *uzs)
{
	stat_inc(uzs->stats, C_INVALID_SLOT);
	return -EINVAL;
}

/* Read from the cache. 1 done, 0 not cached, -EIO corrupt, -ENOMEM no memory to
 * decompress (the entry kept). take: detach on success. */
static int load_cached(struct uzs *uzs, uint64_t slot, void *page, bool take)
{
	struct entry *e = tree_borrow(uzs->tree, slot);
	int err;

	if (!e)
		return 0;
	err = entry_load(uzs, e, page);
	if (!err && !take && e->kind != ENTRY_SAME)
		/* A copy the caller holds too: the cheapest thing to reclaim. */
		entry_lru_demote(e);
	if (!err)
		GROUP_COUNT(e->group, c.zswpin, 1);
	if (tree_return(uzs->tree, e, take && !err))
		entry_destroy(uzs, e);
	if (err)
		return err;
	stat_inc(uzs->stats, C_ZSWPIN);
	stat_inc(uzs->stats, C_ZSWPIN_RUN);
	return 1;
}

int swapfile_read_counted(struct uzs *uzs, uint64_t first, unsigned nr, void *pages)
{
	int err = swapfile_read_run(uzs->sf, first, nr, pages);

	if (err == -EBADMSG)
		stat_inc(uzs->stats, C_SWAP_CORRUPT);
	if (err)
		stat_inc(uzs->stats, C_SWAP_IO_FAIL);
	return err;
}

static int load_from_file(struct uzs *uzs, uint64_t slot, void *page)
{
	uint32_t s = swapfile_state(uzs->sf, slot);

	if (!(s & SLOT_HAS_DATA)) {
		stat_inc(uzs->stats, C_NODATA_SLOT);
		return -ENODATA;
	}
	if (!(s & SLOT_ON_FILE) || swapfile_read_counted(uzs, slot, 1, page))
		return -EIO;
	stat_inc(uzs->stats, C_PSWPIN);
	return 0;
}

int uzs_swap_in(struct uzs *uzs, uzs_slot_t slot, void *page, unsigned flags)
{
	uint32_t s;
	bool sole, take;
	int r;

	if (!uzs || !page || (flags & ~UZS_SWAPIN_FREE))
		return -EINVAL;
	s = swapfile_state(uzs->sf, slot);
	if (!slot_live(s))
		return invalid_slot(uzs);
	if (!(s & SLOT_HAS_DATA)) {
		stat_inc(uzs->stats, C_NODATA_SLOT);
		return -ENODATA;
	}
	/* Only the caller can reach this slot, so nothing can add a holder meanwhile. */
	sole = (s & SLOT_COUNT_MASK) == 1;
	take = sole && (uzs->exclusive_loads || (flags & UZS_SWAPIN_FREE));
	r = load_cached(uzs, slot, page, take);
	if (r == 0)
		r = load_from_file(uzs, slot, page);
	if (r < 0)
		return r;
	if (flags & UZS_SWAPIN_FREE)
		return uzs_free(uzs, slot);
	if (take)
		slot_clear_flags(uzs->sf, slot, SLOT_HAS_DATA | SLOT_ON_FILE);
	return 0;
}

int uzs_free(struct uzs *uzs, uzs_slot_t slot)
{
	struct entry *e;
	int r;

	if (!uzs)
		return -EINVAL;
	r = swapfile_state(uzs->sf, slot) ? slot_put(uzs->sf, slot) : -EINVAL;
	if (r < 0)
		return invalid_slot(uzs);
	if (r == 1) {
		fault_hook(HOOK_FREE_COUNTED, slot);
		e = tree_detach(uzs->tree, slot);
		if (e)
			entry_destroy(uzs, e);
		slot_finish_free(uzs->sf, slot);
	}
	return 0;
}

int uzs_dup(struct uzs *uzs, uzs_slot_t slot)
{
	int r;

	if (!uzs)
		return -EINVAL;
	r = swapfile_state(uzs->sf, slot) ? slot_dup(uzs->sf, slot) : -EINVAL;
	if (r == -EINVAL)
		return invalid_slot(uzs);
	if (r == -ENODATA)
		stat_inc(uzs->stats, C_NODATA_SLOT);
	return r;
}

/* ---- compressors ---- */

static int find_or_add_compressor(struct uzs *uzs, const struct compressor *c)
{
	unsigned n = atomic_load(&uzs->nr_comps);

	for (unsigned i = 0; i < n; i++)
		if (uzs->comps[i].algo == c->algo && uzs->comps[i].level == c->level)
			return (int)i;
	if (n == MAX_COMPRESSORS)
		return -ENOSPC;
	uzs->comps[n] = *c;
	atomic_store_explicit(&uzs->nr_comps, n + 1, memory_order_release);
	return (int)n;
}

int uzs_set_compressor(struct uzs *uzs, const char *name, int level)
{
	struct compressor c;
	int idx;

	if (!uzs || comp_lookup(name, level, &c))
		return -EINVAL;
	pthread_mutex_lock(&uzs->comp_lock);
	idx = find_or_add_compressor(uzs, &c);
	if (idx >= 0)
		atomic_store_explicit(&uzs->cur_comp, (unsigned)idx, memory_order_release);
	pthread_mutex_unlock(&uzs->comp_lock);
	return idx < 0 ? idx : 0;
}

const char *const *uzs_compressor_names(void)
{
	return comp_names;
}

int uzs_compressor_resolve(const char *spec, const char **name, int *level)
{
	struct compressor c;
	int r = comp_lookup(spec, 0, &c);

	if (r < 0)
		return r;
	if (name)
		*name = comp_names[c.algo];
	if (level)
		*level = c.level;
	return 0;
}

/* ---- reclaim on demand ---- */

long uzs_shrink(struct uzs *uzs, long nr_pages)
{
	if (!uzs || nr_pages < 0)
		return -EINVAL;
	return reclaim_round_robin(uzs, nr_pages, false);
}

long uzs_compact(struct uzs *uzs)
{
	uint64_t given;

	if (!uzs)
		return -EINVAL;
	given = pool_compact(uzs->pool) + pool_release_empty(uzs->pool);
	stat_add(uzs->stats, C_COMPACTED, (int64_t)given);
	return (long)given;
}

/* ---- open and close ---- */

unsigned uzs_version(void)
{
	return UZS_VERSION_NUMBER;
}

void uzs_config_init(struct uzs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->compressor = "lzo";
	c->max_pool_percent = 20;
	c->accept_threshold_percent = 90;
	c->exclusive_loads = true;
	c->shrinker_enabled = false;
}

static int config_limits(struct uzs *uzs, const struct uzs_config *c)
{
	uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);

	if (c->accept_threshold_percent < 1 || c->accept_threshold_percent > 100)
		return -EINVAL;
	if (!c->max_pool_bytes && (c->max_pool_percent < 1 || c->max_pool_percent > 100))
		return -EINVAL;
	uzs->pool_limit = c->max_pool_bytes ? c->max_pool_bytes : ram / 100 * c->max_pool_percent;
	uzs->accept_bytes = uzs->pool_limit / 100 * c->accept_threshold_percent;
	uzs->exclusive_loads = c->exclusive_loads;
	uzs->shrinker_enabled = c->shrinker_enabled;
	return 0;
}

static int open_parts(struct uzs *uzs, const struct uzs_config *c)
{
	uint64_t bytes = c->swapfile_bytes ? c->swapfile_bytes : DEFAULT_SWAPFILE_BYTES;
	int err = swapfile_open(c->swapfile_path, bytes, c->encrypt_swapfile, &uzs->sf);

	if (err)
		return err;
	uzs->tree = tree_create(swapfile_nr_slots(uzs->sf));
	/* Room above the limit for the stores in flight when it is reached. */
	uzs->pool = pool_create(uzs->pool_limit + (uzs->pool_limit >> 3) + (64u << 20));
	uzs->stats = aligned_alloc(64, sizeof(*uzs->stats));
	if (!uzs->tree || !uzs->pool || !uzs->stats)
		return -ENOMEM;
	memset(uzs->stats, 0, sizeof(*uzs->stats));
	return 0;
}

static void close_parts(struct uzs *uzs)
{
	pool_destroy(uzs->pool);
	tree_destroy(uzs->tree);
	swapfile_close(uzs->sf);
	free(uzs->stats);
	groups_destroy(&uzs->groups);
	spread_destroy(&uzs->spread);
	pthread_mutex_destroy(&uzs->comp_lock);
	pthread_mutex_destroy(&uzs->worker_lock);
	pthread_cond_destroy(&uzs->worker_cond);
	free(uzs);
}

static void init_worker_cond(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int uzs_open(const struct uzs_config *c, struct uzs **out)
{
	struct compressor comp;
	struct uzs *uzs;
	int err;

	if (!c || !out || comp_lookup(c->compressor ? c->compressor : "lzo",
				      c->compressor_level, &comp))
		return -EINVAL;
	/* aligned: it holds cache-line-aligned locks */
	uzs = aligned_alloc(64, (sizeof(*uzs) + 63) & ~(size_t)63);
	if (!uzs)
		return -ENOMEM;
	memset(uzs, 0, sizeof(*uzs));
	pthread_mutex_init(&uzs->comp_lock, NULL);
	pthread_mutex_init(&uzs->worker_lock, NULL);
	init_worker_cond(&uzs->worker_cond);
	uzs->comps[0] = comp;
	atomic_init(&uzs->nr_comps, 1);
	atomic_init(&uzs->test_pressure, -1);
	spread_init(&uzs->spread, engine_thread_cleanup);
	err = groups_init(&uzs->groups, uzs);
	if (!err)
		err = config_limits(uzs, c);
	if (!err)
		err = open_parts(uzs, c);
	if (!err)
		err = -pthread_create(&uzs->worker, NULL, shrink_worker, uzs);
	if (err) {
		close_parts(uzs);
		return err;
	}
	if (uzs->shrinker_enabled) {
		uzs->psi_watch = psi_watch_start(psi_event, uzs);
		atomic_store(&uzs->psi, uzs->psi_watch != NULL);
	}
	*out = uzs;
	return 0;
}

static void destroy_indexed(struct entry *e, void *arg)
{
	entry_destroy(arg, e);
}

void uzs_close(struct uzs *uzs)
{
	if (!uzs)
		return;
	psi_watch_stop(uzs->psi_watch);
	pthread_mutex_lock(&uzs->worker_lock);
	uzs->worker_stop = true;
	pthread_cond_signal(&uzs->worker_cond);
	pthread_mutex_unlock(&uzs->worker_lock);
	pthread_join(uzs->worker, NULL);
	tree_for_each(uzs->tree, destroy_indexed, uzs);
	close_parts(uzs);
	/* The caller's thread-local contexts; they are made again if it opens another. */
	engine_thread_cleanup();
}

/* ---- statistics ---- */

void uzs_get_stats(struct uzs *uzs, struct uzs_stats *st)
{
	struct stats *s = uzs->stats;

	memset(st, 0, sizeof(*st));
	st->stored_pages = stat_read(s, C_STORED_PAGES);
	st->stored_incompressible_pages = stat_read(s, C_STORED_INCOMPRESSIBLE);
	st->same_filled_pages = stat_read(s, C_SAME_FILLED);
	st->pool_total_size = pool_total_bytes(uzs->pool);
	st->pool_limit_hit = stat_read(s, C_POOL_LIMIT_HIT);
	st->written_back_pages = stat_read(s, C_WRITTEN_BACK);
	st->reject_reclaim_fail = stat_read(s, C_REJECT_RECLAIM_FAIL);
	st->reject_compress_fail = stat_read(s, C_REJECT_COMPRESS_FAIL);
	st->reject_compress_poor = stat_read(s, C_REJECT_COMPRESS_POOR);
	st->reject_alloc_fail = stat_read(s, C_REJECT_ALLOC_FAIL);
	st->reject_kmemcache_fail = stat_read(s, C_REJECT_KMEMCACHE_FAIL);
	st->decompress_fail = stat_read(s, C_DECOMPRESS_FAIL);
	st->zswpin = stat_read(s, C_ZSWPIN);
	st->zswpout = stat_read(s, C_ZSWPOUT);
	st->zswpwb = st->written_back_pages;
	st->pswpin = stat_read(s, C_PSWPIN);
	st->pswpout = stat_read(s, C_PSWPOUT);
	st->swap_slots_used = swapfile_used(uzs->sf);
	st->swap_slots_total = swapfile_nr_slots(uzs->sf) - 1;
	st->compressed_bytes = stat_read(s, C_COMPRESSED_BYTES);
	st->writeback_fail = stat_read(s, C_WRITEBACK_FAIL);
	st->swap_io_fail = stat_read(s, C_SWAP_IO_FAIL);
	st->swap_corrupt = stat_read(s, C_SWAP_CORRUPT);
	st->invalid_slot = stat_read(s, C_INVALID_SLOT);
	st->nodata_slot = stat_read(s, C_NODATA_SLOT);
	st->pool_compacted_bytes = stat_read(s, C_COMPACTED);
	st->groups = (uint64_t)atomic_load(&uzs->groups.nr_live);
	st->groups_dying = (uint64_t)atomic_load(&uzs->groups.nr_dying);
	st->run_partial = stat_read(s, C_RUN_PARTIAL);
	for (int order = 0; order < UZS_RUN_ORDERS; order++) {
		st->zswpout_runs[order] = stat_read(s, C_ZSWPOUT_RUN + order);
		st->zswpin_runs[order] = stat_read(s, C_ZSWPIN_RUN + order);
	}
	st->shrinker_psi_runs = stat_read(s, C_SHRINKER_PSI_RUNS);
	st->shrinker_runs = stat_read(s, C_SHRINKER_RUNS) + st->shrinker_psi_runs;
	st->shrinker_psi = atomic_load(&uzs->psi);
}

/* Per run size, named after the size as the kernel's hugepages-<size>kB directories are. */
static int print_run_stats(const struct uzs_stats *st, FILE *out)
{
	for (int order = 0; order < UZS_RUN_ORDERS; order++)
		if (fprintf(out, "zswpout_run_%ukB %llu\nzswpin_run_%ukB %llu\n",
			    (PAGE << order) / 1024, (unsigned long long)st->zswpout_runs[order],
			    (PAGE << order) / 1024, (unsigned long long)st->zswpin_runs[order]) < 0)
			return -EIO;
	return 0;
}

static int print_shrinker_stats(const struct uzs_stats *st, FILE *out)
{
	return fprintf(out, "shrinker_runs %llu\nshrinker_psi %llu\nshrinker_psi_runs %llu\n",
		       (unsigned long long)st->shrinker_runs, (unsigned long long)st->shrinker_psi,
		       (unsigned long long)st->shrinker_psi_runs) < 0 ? -EIO : 0;
}

int uzs_print_stats(struct uzs *uzs, FILE *out)
{
	struct uzs_stats st;
	const uint64_t *v = (const uint64_t *)&st;
	static const char *const names[] = {
		"stored_pages", "stored_incompressible_pages", "same_filled_pages",
		"pool_total_size", "pool_limit_hit", "written_back_pages", "reject_reclaim_fail",
		"reject_compress_fail", "reject_compress_poor", "reject_alloc_fail",
		"reject_kmemcache_fail", "decompress_fail", "zswpin", "zswpout", "zswpwb",
		"pswpin", "pswpout", "swap_slots_used", "swap_slots_total", "compressed_bytes",
		"writeback_fail", "swap_io_fail", "swap_corrupt", "invalid_slot", "nodata_slot",
		"pool_compacted_bytes", "groups", "groups_dying", "run_partial",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) ==
			       offsetof(struct uzs_stats, zswpout_runs) / sizeof(uint64_t),
		       "every statistic has a name");

	if (!uzs || !out)
		return -EINVAL;
	uzs_get_stats(uzs, &st);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (fprintf(out, "%s %llu\n", names[i], (unsigned long long)v[i]) < 0)
			return -EIO;
	return print_run_stats(&st, out) ? -EIO : print_shrinker_stats(&st, out);
}
