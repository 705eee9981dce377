/*
 * zswap — the engine: store, load, free and dup of slots, writeback from the LRU, the
 * pool limit with its acceptance hysteresis, and the shrink worker.
 */
#define _GNU_SOURCE
#include "zswap.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "entry.h"
#include "lru.h"
#include "pool.h"
#include "stats.h"
#include "swapfile.h"
#include "tree.h"

#define PAGE UZS_PAGE_SIZE
#define MAX_COMPRESSORS 64u
/* LRU lists, one per thread shard: threads storing and loading at once do not bounce one
 * lock and one list between their CPUs; writeback takes from them in turn. */
#define LRU_SHARDS 8u
#define MAX_RECLAIM_FAILURES 16
#define COMPACT_EVERY 256
#define DEFAULT_SWAPFILE_BYTES (4ull << 30)
/* Empty pool pages go back to the OS this long after they empty, in one batch. */
#define RELEASE_DELAY_NS (100 * 1000 * 1000)

struct uzs {
	struct swapfile *sf;
	struct tree *tree;
	struct pool *pool;
	struct lru lrus[LRU_SHARDS];
	_Atomic unsigned lru_cursor; /* the shard writeback tries first */
	struct stats *stats;

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
	struct timespec release_at;	 /* worker only: when to give them back */
	_Atomic int test_pressure;	 /* -1: read /proc/meminfo; 0/1: tests say */
};

/* ---- per-thread scratch page pair: compression output, writeback staging ---- */

static __thread unsigned char *scratch_buf;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, free);
}

static unsigned char *scratch(void)
{
	if (!scratch_buf) {
		pthread_once(&scratch_once, scratch_key_init);
		/* Page-aligned so writeback can hand it to O_DIRECT I/O without a copy. */
		scratch_buf = aligned_alloc(PAGE, COMP_DST_BYTES);
		if (scratch_buf)
			pthread_setspecific(scratch_key, scratch_buf);
	}
	return scratch_buf;
}

static void scratch_cleanup(void)
{
	if (!scratch_buf)
		return;
	pthread_setspecific(scratch_key, NULL);
	free(scratch_buf);
	scratch_buf = NULL;
}

/* ---- entries ---- */

static struct lru *lru_of(struct uzs *uzs, const struct entry *e)
{
	return &uzs->lrus[e->lru_shard];
}

/* Word loads through memcpy: callers' pages need not be 8-byte aligned, and on x86 this
 * compiles to the same plain loads. */
static inline uint64_t word_at(const unsigned char *p, unsigned i)
{
	uint64_t w;

	memcpy(&w, p + i * 8, 8);
	return w;
}

static bool page_same_filled(const void *page, uint64_t *fill)
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

static void fill_page(void *page, uint64_t fill)
{
	unsigned char *p = page;

	for (unsigned i = 0; i < PAGE / 8; i++)
		memcpy(p + i * 8, &fill, 8);
}

static void entry_count(struct uzs *uzs, const struct entry *e, int sign)
{
	struct stat_shard *sh = stat_mine(uzs->stats);

	stat_shard_add(sh, C_STORED_PAGES, sign);
	if (e->kind == ENTRY_SAME)
		stat_shard_add(sh, C_SAME_FILLED, sign);
	else
		stat_shard_add(sh, C_COMPRESSED_BYTES, sign * (int64_t)e->length);
	if (e->kind == ENTRY_RAW)
		stat_shard_add(sh, C_STORED_INCOMPRESSIBLE, sign);
}

static void arm_release(struct uzs *uzs);

static void entry_destroy(struct uzs *uzs, struct entry *e)
{
	if (e->kind != ENTRY_SAME) {
		lru_del(lru_of(uzs, e), e);
		pool_free(uzs->pool, e->handle);
		if (pool_empty_bytes(uzs->pool) &&
		    !atomic_load_explicit(&uzs->release_armed, memory_order_relaxed))
			arm_release(uzs);
	}
	entry_count(uzs, e, -1);
	free(e);
}

/* Put an entry's page into page. -EIO when the compressed data is corrupt. */
static int entry_read(struct uzs *uzs, const struct entry *e, void *page)
{
	const void *src;
	int err = 0;

	if (e->kind == ENTRY_SAME) {
		fill_page(page, e->fill);
		return 0;
	}
	src = pool_map(uzs->pool, e->handle);
	if (e->kind == ENTRY_RAW)
		memcpy(page, src, PAGE);
	else
		err = comp_decompress(&uzs->comps[e->comp], src, e->length, page, PAGE);
	pool_unmap(uzs->pool, e->handle);
	if (err)
		stat_inc(uzs->stats, C_DECOMPRESS_FAIL);
	return err ? -EIO : 0;
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
static bool pool_accepts(struct uzs *uzs)
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

/* Take the coldest unreferenced entry off one LRU with its slot pinned; 0 if none. */
static uint64_t lru_isolate_cold_from(struct uzs *uzs, struct lru *l)
{
	uint64_t slot = 0;

	pthread_mutex_lock(&l->lock);
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

/* The shards in turn, starting where the last writeback left off. */
static uint64_t lru_isolate_cold(struct uzs *uzs)
{
	unsigned start = atomic_fetch_add_explicit(&uzs->lru_cursor, 1, memory_order_relaxed);

	for (unsigned i = 0; i < LRU_SHARDS; i++) {
		uint64_t slot = lru_isolate_cold_from(uzs, &uzs->lrus[(start + i) % LRU_SHARDS]);

		if (slot)
			return slot;
	}
	return 0;
}

static uint64_t lru_total(struct uzs *uzs)
{
	uint64_t nr = 0;

	for (unsigned i = 0; i < LRU_SHARDS; i++) {
		pthread_mutex_lock(&uzs->lrus[i].lock);
		nr += uzs->lrus[i].nr;
		pthread_mutex_unlock(&uzs->lrus[i].lock);
	}
	return nr;
}

/* A write that failed keeps the entry in RAM, back on the LRU unless it was freed. */
static void relist(struct uzs *uzs, struct entry *e)
{
	pthread_mutex_t *lock = tree_lock_of(uzs->tree, e->slot);

	pthread_mutex_lock(lock);
	if (!e->detached) {
		struct lru *l = lru_of(uzs, e);

		pthread_mutex_lock(&l->lock);
		if (!e->on_lru)
			lru_add_head_locked(l, e);
		pthread_mutex_unlock(&l->lock);
	}
	pthread_mutex_unlock(lock);
}

/* Write one cold entry to its own slot. 1 written, 0 lost a race (nothing to do),
 * -ENOENT nothing to write back, -EIO the read or the write failed. */
static int writeback_one(struct uzs *uzs)
{
	unsigned char *buf = scratch();
	uint64_t slot = buf ? lru_isolate_cold(uzs) : 0;
	struct entry *e;
	int err;

	if (!slot)
		return buf ? -ENOENT : -ENOMEM;
	/* The pin keeps the slot from being reused, so whatever entry the tree holds for it
	 * now is that slot's current page. */
	e = tree_borrow(uzs->tree, slot);
	if (!e) {
		slot_unpin(uzs->sf, slot);
		return 0;
	}
	lru_del(lru_of(uzs, e), e);
	err = entry_read(uzs, e, buf);
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
	}
	if (tree_return(uzs->tree, e, !err))
		entry_destroy(uzs, e);
	slot_unpin(uzs->sf, slot);
	return err ? -EIO : 1;
}

static long writeback_some(struct uzs *uzs, long nr, bool to_threshold)
{
	long written = 0;
	int failures = 0;

	while (written < nr && failures < MAX_RECLAIM_FAILURES) {
		int r;

		if (to_threshold && pool_total_bytes(uzs->pool) <= uzs->accept_bytes)
			break;
		r = writeback_one(uzs);
		if (r == -ENOENT)
			break;
		if (r <= 0) {
			failures++;
			continue;
		}
		failures = 0;
		/* Writeback frees objects all over the pool; compaction turns them into whole
		 * free pages, which is what lowers pool_total_size. */
		if (++written % COMPACT_EVERY == 0)
			stat_add(uzs->stats, C_COMPACTED, (int64_t)pool_compact(uzs->pool));
	}
	if (to_threshold && failures >= MAX_RECLAIM_FAILURES)
		stat_inc(uzs->stats, C_REJECT_RECLAIM_FAIL);
	return written;
}

static void reclaim_to_threshold(struct uzs *uzs)
{
	if (pool_total_bytes(uzs->pool) <= uzs->accept_bytes)
		return;
	writeback_some(uzs, LONG_MAX, true);
	if (pool_total_bytes(uzs->pool) > uzs->accept_bytes)
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

/* The shrinker: under system memory pressure, write back the colder part of the cache
 * (referenced entries get their second chance, which protects recent stores). */
static void shrink_under_pressure(struct uzs *uzs)
{
	if (!uzs->shrinker_enabled || !memory_low(uzs))
		return;
	writeback_some(uzs, (long)(lru_total(uzs) / 8), false);
}

static void add_ns(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

static bool time_reached(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Sleep until woken, until a pending release is due, or a second for the shrinker. */
static void worker_wait(struct uzs *uzs, bool release_pending)
{
	struct timespec until;

	if (release_pending) {
		until = uzs->release_at;
	} else if (uzs->shrinker_enabled) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
	} else {
		pthread_cond_wait(&uzs->worker_cond, &uzs->worker_lock);
		return;
	}
	pthread_cond_timedwait(&uzs->worker_cond, &uzs->worker_lock, &until);
}

/* Give empty pool pages back once they have waited RELEASE_DELAY_NS; true while a
 * release is still pending. */
static bool release_when_due(struct uzs *uzs, bool pending)
{
	if (!pending) {
		if (!atomic_load(&uzs->release_armed))
			return false;
		clock_gettime(CLOCK_MONOTONIC, &uzs->release_at);
		add_ns(&uzs->release_at, RELEASE_DELAY_NS);
		return true;
	}
	if (!time_reached(&uzs->release_at))
		return true;
	atomic_store(&uzs->release_armed, false);
	stat_add(uzs->stats, C_COMPACTED, (int64_t)pool_release_empty(uzs->pool));
	return false;
}

static void *shrink_worker(void *arg)
{
	struct uzs *uzs = arg;
	bool release_pending = false;

	pthread_mutex_lock(&uzs->worker_lock);
	while (!uzs->worker_stop) {
		if (!uzs->worker_wake)
			worker_wait(uzs, release_pending);
		uzs->worker_wake = false;
		atomic_store(&uzs->wake_pending, false);
		if (uzs->worker_stop)
			break;
		pthread_mutex_unlock(&uzs->worker_lock);
		reclaim_to_threshold(uzs);
		shrink_under_pressure(uzs);
		release_pending = release_when_due(uzs, release_pending);
		pthread_mutex_lock(&uzs->worker_lock);
	}
	pthread_mutex_unlock(&uzs->worker_lock);
	comp_thread_cleanup();
	scratch_cleanup();
	swapfile_thread_cleanup();
	return NULL;
}

/* ---- store ---- */

/* Compress page into a pool object (raw when it does not compress). */
static int compress_to_pool(struct uzs *uzs, const void *page, struct entry *e)
{
	unsigned comp = atomic_load_explicit(&uzs->cur_comp, memory_order_acquire);
	unsigned char *buf = scratch();
	const void *src = buf;
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
	if ((unsigned)n >= PAGE) {
		/* Stored as it is, so the page keeps its place in the LRU. */
		e->kind = ENTRY_RAW;
		src = page;
		n = PAGE;
	}
	e->length = (uint32_t)n;
	if (pool_store(uzs->pool, src, (size_t)n, &e->handle)) {
		stat_inc(uzs->stats, C_REJECT_ALLOC_FAIL);
		return -ENOMEM;
	}
	return 0;
}

static int zswap_store(struct uzs *uzs, struct uzs_group *group, uint64_t slot,
		       const void *page)
{
	struct entry *e = malloc(sizeof(*e));
	int err = 0;

	if (!e) {
		stat_inc(uzs->stats, C_REJECT_KMEMCACHE_FAIL);
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->slot = slot;
	e->group = group;
	e->lru_shard = (uint8_t)(thread_shard() % LRU_SHARDS);
	if (page_same_filled(page, &e->fill))
		e->kind = ENTRY_SAME;
	else if (!pool_accepts(uzs))
		err = -ENOSPC;
	else
		err = compress_to_pool(uzs, page, e);
	if (err) {
		free(e);
		return err;
	}
	/* Counted before it is published: once on the LRU, writeback may free it at once. */
	entry_count(uzs, e, 1);
	stat_inc(uzs->stats, C_ZSWPOUT);
	tree_insert(uzs->tree, e); /* a freshly allocated slot: always empty */
	if (e->kind != ENTRY_SAME)
		lru_add(lru_of(uzs, e), e);
	return 0;
}

static void release_slot(struct uzs *uzs, uint64_t slot)
{
	if (slot_put(uzs->sf, slot) == 1)
		slot_finish_free(uzs->sf, slot);
}

int uzs_swap_out(struct uzs *uzs, struct uzs_group *group, const void *page, uzs_slot_t *out)
{
	uint64_t slot;
	int err;

	if (!uzs || !page || !out)
		return -EINVAL;
	slot = swapfile_alloc(uzs->sf);
	if (!slot)
		return -ENOSPC;
	if (zswap_store(uzs, group, slot, page) == 0) {
		*out = slot;
		return 0;
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

static bool slot_live(uint32_t s)
{
	return (s & SLOT_ALLOCATED) && (s & SLOT_COUNT_MASK) && !(s & SLOT_FREEING);
}

static int invalid_slot(struct uzs *uzs)
{
	stat_inc(uzs->stats, C_INVALID_SLOT);
	return -EINVAL;
}

/* Read from the cache. 1 done, 0 not cached, -EIO corrupt. take: detach on success. */
static int load_cached(struct uzs *uzs, uint64_t slot, void *page, bool take)
{
	struct entry *e = tree_borrow(uzs->tree, slot);
	int err;

	if (!e)
		return 0;
	err = entry_read(uzs, e, page);
	if (!err && !take && e->kind != ENTRY_SAME)
		/* A copy the caller holds too: the cheapest thing to reclaim. */
		lru_demote(lru_of(uzs, e), e);
	if (tree_return(uzs->tree, e, take && !err))
		entry_destroy(uzs, e);
	if (err)
		return err;
	stat_inc(uzs->stats, C_ZSWPIN);
	return 1;
}

static int load_from_file(struct uzs *uzs, uint64_t slot, void *page)
{
	uint32_t s = swapfile_state(uzs->sf, slot);

	if (!(s & SLOT_HAS_DATA)) {
		stat_inc(uzs->stats, C_NODATA_SLOT);
		return -ENODATA;
	}
	if (!(s & SLOT_ON_FILE) || swapfile_read(uzs->sf, slot, page)) {
		stat_inc(uzs->stats, C_SWAP_IO_FAIL);
		return -EIO;
	}
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

/* ---- reclaim on demand ---- */

long uzs_shrink(struct uzs *uzs, long nr_pages)
{
	if (!uzs || nr_pages < 0)
		return -EINVAL;
	return writeback_some(uzs, nr_pages, false);
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
	int err = swapfile_open(c->swapfile_path, bytes, &uzs->sf);

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
	for (unsigned i = 0; i < LRU_SHARDS; i++)
		lru_destroy(&uzs->lrus[i]);
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
	for (unsigned i = 0; i < LRU_SHARDS; i++)
		lru_init(&uzs->lrus[i]);
	pthread_mutex_init(&uzs->comp_lock, NULL);
	pthread_mutex_init(&uzs->worker_lock, NULL);
	init_worker_cond(&uzs->worker_cond);
	uzs->comps[0] = comp;
	atomic_init(&uzs->nr_comps, 1);
	atomic_init(&uzs->test_pressure, -1);
	err = config_limits(uzs, c);
	if (!err)
		err = open_parts(uzs, c);
	if (!err)
		err = -pthread_create(&uzs->worker, NULL, shrink_worker, uzs);
	if (err) {
		close_parts(uzs);
		return err;
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
	pthread_mutex_lock(&uzs->worker_lock);
	uzs->worker_stop = true;
	pthread_cond_signal(&uzs->worker_cond);
	pthread_mutex_unlock(&uzs->worker_lock);
	pthread_join(uzs->worker, NULL);
	tree_for_each(uzs->tree, destroy_indexed, uzs);
	close_parts(uzs);
	/* The caller's thread-local contexts; they are made again if it opens another. */
	comp_thread_cleanup();
	scratch_cleanup();
	swapfile_thread_cleanup();
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
	st->invalid_slot = stat_read(s, C_INVALID_SLOT);
	st->nodata_slot = stat_read(s, C_NODATA_SLOT);
	st->pool_compacted_bytes = stat_read(s, C_COMPACTED);
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
		"writeback_fail", "swap_io_fail", "invalid_slot", "nodata_slot",
		"pool_compacted_bytes",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) == sizeof(st) / sizeof(uint64_t),
		       "every statistic has a name");

	if (!uzs || !out)
		return -EINVAL;
	uzs_get_stats(uzs, &st);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (fprintf(out, "%s %llu\n", names[i], (unsigned long long)v[i]) < 0)
			return -EIO;
	return 0;
}

/* ---- test hooks ---- */

int uzs_test_corrupt_cached(struct uzs *uzs, uzs_slot_t slot)
{
	struct entry *e = tree_borrow(uzs->tree, slot);
	unsigned char *p;

	if (!e)
		return -ENOENT;
	if (e->kind != ENTRY_SAME) {
		p = pool_map(uzs->pool, e->handle);
		for (uint32_t i = 0; i < e->length; i += 7)
			p[i] ^= 0x5a;
		pool_unmap(uzs->pool, e->handle);
	}
	if (tree_return(uzs->tree, e, false))
		entry_destroy(uzs, e);
	return 0;
}

void uzs_test_memory_pressure(struct uzs *uzs, int low)
{
	atomic_store(&uzs->test_pressure, low);
}

int uzs_test_swapfile_fd(struct uzs *uzs)
{
	return swapfile_fd(uzs->sf);
}

int uzs_test_cached(struct uzs *uzs, uzs_slot_t slot)
{
	struct entry *e = tree_borrow(uzs->tree, slot);

	if (!e)
		return 0;
	if (tree_return(uzs->tree, e, false))
		entry_destroy(uzs, e);
	return 1;
}
