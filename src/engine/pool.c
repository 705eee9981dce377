/* SPDX-License-Identifier: MIT */
/*
 * pool — zsmalloc-style allocator for compressed pages (see pool.h).
 *
 * Layout. One mmap reservation is cut into fixed 64 KiB virtual slots; a zspage of a class
 * with k pages (k <= 16) occupies the first k pages of one slot, so an object's address is
 * plain arithmetic (base + slot * SLOT_BYTES + index * size) and objects may straddle pages.
 *
 * Classes. Sizes are rounded up to a multiple of 16; each rounded size gets the page count
 * k <= 16 that wastes the least at the zspage tail, and sizes that end up with the same
 * (k, objects per zspage) share one class, as zsmalloc does.
 *
 * Lazy pages. A zspage hands out never-used objects in index order, so its pages are
 * touched (faulted in) one after another. The pool counts a page from the moment an
 * object first reaches into it, which is what the process really holds; so a half-filled
 * 16-page zspage costs only the pages it has used, and big zspages (little tail waste)
 * do not make every class's last, partly filled zspage expensive.
 *
 * Handles. A handle is (class << 40 | index + 1). The index selects a word in the class's
 * two-level handle table (chunks never move, so map can read them without the class
 * mutex); the word holds the object's location and compaction rewrites it.
 *
 * Locks. Per class: a mutex for alloc/free/compaction state and a rwlock that map holds
 * for reading until unmap and compaction holds for writing while it moves objects.
 * Compaction takes the rwlock before the mutex, so a caller that allocates or frees while
 * it has an object of the same class mapped cannot deadlock with it. Slots move between
 * classes through lock-free structures: a small cache of empty zspages (their pages stay
 * resident) and a stack of free slots (pages given back to the OS).
 */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE_SHIFT 12
#define PAGE_BYTES (1u << PAGE_SHIFT)
#define MAX_ZSPAGE_PAGES 16u
#define SLOT_BYTES ((uint64_t)MAX_ZSPAGE_PAGES * PAGE_BYTES)
#define CLASS_DELTA 16u
#define NR_SIZES (POOL_MAX_OBJECT / CLASS_DELTA)
#define NR_BUCKETS 8u /* partial zspages grouped by how full they are */
#define FULL_LIST NR_BUCKETS
#define NO_BUCKET 0xffu
#define NONE UINT32_MAX
#define MIN_POOL_BYTES (64ull << 20)
#define MAX_POOL_PAGES (1ull << 28) /* 1 TiB of pool: 16 TiB of address space */
#define SLOT_SLACK 64u
#define HCHUNK_SHIFT 10
#define HCHUNK (1u << HCHUNK_SHIFT)
#define HANDLE_CLASS_SHIFT 40
#define HANDLE_IDX_MASK ((1ull << HANDLE_CLASS_SHIFT) - 1)
#define HANDLE_NONE HANDLE_IDX_MASK
#define MAX_HANDLES ((1ull << 31) - 1) /* handle indices must fit a reverse-map entry */
#define WORD_FREE (1ull << 63)
#define WORD_LIVE (1ull << 62)
#define OBJ_BITS 16
#define REV_FREE (1u << 31)
#define OBJ_NONE (REV_FREE - 1)

struct zspage {
	uint32_t prev, next;       /* links in the class's fullness list */
	uint32_t *rev;             /* per object: handle index, or REV_FREE | next free */
	uint32_t rev_cap;
	uint32_t free_head;        /* freed objects, reused before fresh ones */
	uint16_t inuse, bump, touched; /* bump: first never-used object; touched: pages held */
	uint8_t bucket;
	_Atomic uint32_t stack_next; /* link in the free-slot stack */
};

struct size_class {
	pthread_mutex_t lock;
	pthread_rwlock_t migrate;
	uint32_t size, objs, pages, id;
	uint32_t head[NR_BUCKETS + 1];
	uint32_t partial_mask; /* bit b set when bucket b is not empty */
	uint64_t nr_objs, nr_zspages;
	_Atomic(uint64_t *) *dir; /* handle table chunks */
	uint64_t dir_len, handle_next, handle_free;
} __attribute__((aligned(64)));

struct pool {
	char *base;
	struct zspage *meta;
	uint64_t nslots, limit_pages;
	_Atomic uint64_t pages;
	_Atomic uint64_t next_slot;
	_Atomic uint64_t free_top; /* ABA tag << 32 | slot */
	_Atomic uint64_t empty_top; /* empty resident zspages: ABA tag << 32 | slot */
	_Atomic uint64_t empty_pages; /* pages those hold */
	_Atomic uint64_t cache_hits; /* zspages taken from that cache: is a reserve used? */
	uint32_t nr_classes;
	uint8_t size_to_class[NR_SIZES + 1];
	struct size_class classes[NR_SIZES];
};

/* ---- pages and slots ---- */

static bool charge(struct pool *p, uint64_t n)
{
	uint64_t v = atomic_fetch_add_explicit(&p->pages, n, memory_order_relaxed) + n;

	if (v <= p->limit_pages)
		return true;
	atomic_fetch_sub_explicit(&p->pages, n, memory_order_relaxed);
	return false;
}

static void uncharge(struct pool *p, uint64_t n)
{
	atomic_fetch_sub_explicit(&p->pages, n, memory_order_relaxed);
}

static char *slot_addr(const struct pool *p, uint32_t slot)
{
	return p->base + (uint64_t)slot * SLOT_BYTES;
}

static void stack_push(struct pool *p, _Atomic uint64_t *top, uint32_t slot)
{
	uint64_t old = atomic_load_explicit(top, memory_order_relaxed), new;

	do {
		atomic_store_explicit(&p->meta[slot].stack_next, (uint32_t)old, memory_order_relaxed);
		new = ((old >> 32) + 1) << 32 | slot;
	} while (!atomic_compare_exchange_weak_explicit(top, &old, new,
			memory_order_release, memory_order_relaxed));
}

static uint32_t stack_pop(struct pool *p, _Atomic uint64_t *top)
{
	uint64_t old = atomic_load_explicit(top, memory_order_acquire), new;
	uint32_t slot, next;

	do {
		slot = (uint32_t)old;
		if (slot == NONE)
			return NONE;
		next = atomic_load_explicit(&p->meta[slot].stack_next, memory_order_relaxed);
		new = ((old >> 32) + 1) << 32 | next;
	} while (!atomic_compare_exchange_weak_explicit(top, &old, new,
			memory_order_acquire, memory_order_acquire));
	return slot;
}

static void slot_push(struct pool *p, uint32_t slot)
{
	stack_push(p, &p->free_top, slot);
}

static uint32_t slot_pop(struct pool *p)
{
	return stack_pop(p, &p->free_top);
}

/* Never-used slots come from a bump counter, so creating the pool touches nothing. */
static uint32_t slot_fresh(struct pool *p)
{
	uint64_t n = atomic_load_explicit(&p->next_slot, memory_order_relaxed);

	do {
		if (n >= p->nslots)
			return NONE;
	} while (!atomic_compare_exchange_weak_explicit(&p->next_slot, &n, n + 1,
			memory_order_relaxed, memory_order_relaxed));
	return (uint32_t)n;
}

/* Empty zspages keep their pages until pool_release_empty: giving pages back costs a
 * syscall and a TLB shootdown on every CPU running the process, too dear for the free
 * path, and a zspage reused from here costs neither that nor page faults. */
static void cache_push(struct pool *p, uint32_t slot)
{
	atomic_fetch_add_explicit(&p->empty_pages, p->meta[slot].touched, memory_order_relaxed);
	stack_push(p, &p->empty_top, slot);
}

static uint32_t cache_pop(struct pool *p)
{
	uint32_t slot = stack_pop(p, &p->empty_top);

	if (slot != NONE)
		atomic_fetch_sub_explicit(&p->empty_pages, p->meta[slot].touched,
					  memory_order_relaxed);
	return slot;
}

/* A zspage for a new allocation came from the cache (not the release path's pops). */
static uint32_t cache_reuse(struct pool *p)
{
	uint32_t slot = cache_pop(p);

	if (slot != NONE)
		atomic_fetch_add_explicit(&p->cache_hits, 1, memory_order_relaxed);
	return slot;
}

/* Give an empty zspage's pages back to the OS; the caller owns the slot exclusively. */
static uint64_t release_to_os(struct pool *p, uint32_t slot)
{
	struct zspage *zs = &p->meta[slot];
	uint64_t bytes = (uint64_t)zs->touched * PAGE_BYTES;

	if (bytes)
		madvise(slot_addr(p, slot), bytes, MADV_DONTNEED);
	uncharge(p, zs->touched);
	zs->touched = 0;
	free(zs->rev);
	zs->rev = NULL;
	zs->rev_cap = 0;
	slot_push(p, slot);
	return bytes;
}

/* ---- zspage bookkeeping (class mutex held) ---- */

static unsigned bucket_of(const struct size_class *c, unsigned inuse)
{
	return inuse >= c->objs ? FULL_LIST : inuse * NR_BUCKETS / c->objs;
}

static void list_add(struct pool *p, struct size_class *c, uint32_t slot, unsigned b)
{
	struct zspage *zs = &p->meta[slot];

	zs->bucket = (uint8_t)b;
	zs->prev = NONE;
	zs->next = c->head[b];
	if (zs->next != NONE)
		p->meta[zs->next].prev = slot;
	c->head[b] = slot;
	if (b < NR_BUCKETS)
		c->partial_mask |= 1u << b;
}

static void list_del(struct pool *p, struct size_class *c, uint32_t slot)
{
	struct zspage *zs = &p->meta[slot];
	unsigned b = zs->bucket;

	if (b == NO_BUCKET)
		return;
	if (zs->prev != NONE)
		p->meta[zs->prev].next = zs->next;
	else
		c->head[b] = zs->next;
	if (zs->next != NONE)
		p->meta[zs->next].prev = zs->prev;
	if (b < NR_BUCKETS && c->head[b] == NONE)
		c->partial_mask &= ~(1u << b);
	zs->bucket = NO_BUCKET;
}

static void rebucket(struct pool *p, struct size_class *c, uint32_t slot)
{
	unsigned b = bucket_of(c, p->meta[slot].inuse);

	if (p->meta[slot].bucket == b)
		return;
	list_del(p, c, slot);
	list_add(p, c, slot, b);
}

/* Fullest partial zspage: filling it first lets the sparse ones drain. */
static uint32_t fullest_partial(const struct size_class *c)
{
	if (!c->partial_mask)
		return NONE;
	return c->head[31 - __builtin_clz(c->partial_mask)];
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Pages an object is about to reach that the pool has not touched yet: made resident in
 * one call once the class mutex is dropped (cheaper than the faults the copy would take,
 * and a thread storing into the same class does not wait behind the system call). */
struct populate {
	void *addr;
	size_t bytes;
};

/* A kernel without MADV_POPULATE_WRITE answers EINVAL and the copy faults the pages in. */
static void populate(const struct populate *pop)
{
	if (pop->bytes)
		madvise(pop->addr, pop->bytes, MADV_POPULATE_WRITE);
}

static int take_obj(struct pool *p, struct size_class *c, struct zspage *zs, uint32_t *obj,
		    struct populate *pop)
{
	if (zs->free_head != OBJ_NONE) {
		*obj = zs->free_head;
		zs->free_head = zs->rev[*obj] & ~REV_FREE;
		return 0;
	}
	if (zs->bump >= c->objs)
		return -ENOSPC;
	uint32_t end = (uint32_t)(((uint64_t)(zs->bump + 1) * c->size + PAGE_BYTES - 1) >> PAGE_SHIFT);
	if (end > zs->touched) {
		if (!charge(p, end - zs->touched))
			return -ENOMEM;
		pop->addr = slot_addr(p, (uint32_t)(zs - p->meta)) + (uint64_t)zs->touched * PAGE_BYTES;
		pop->bytes = (size_t)(end - zs->touched) * PAGE_BYTES;
		zs->touched = (uint16_t)end;
	}
	*obj = zs->bump++;
	return 0;
}

static void put_obj(struct zspage *zs, uint32_t obj)
{
	zs->rev[obj] = REV_FREE | zs->free_head;
	zs->free_head = obj;
}

/* A cached zspage may hold more pages than this class uses: return the excess. */
static void trim_cached(struct pool *p, struct size_class *c, uint32_t slot)
{
	struct zspage *zs = &p->meta[slot];

	if (zs->touched <= c->pages)
		return;
	madvise(slot_addr(p, slot) + (uint64_t)c->pages * PAGE_BYTES,
		(uint64_t)(zs->touched - c->pages) * PAGE_BYTES, MADV_DONTNEED);
	uncharge(p, zs->touched - c->pages);
	zs->touched = (uint16_t)c->pages;
}

static int zspage_prepare(struct pool *p, struct size_class *c, uint32_t slot)
{
	struct zspage *zs = &p->meta[slot];

	if (zs->rev_cap < c->objs) {
		uint32_t *rev = realloc(zs->rev, c->objs * sizeof(*rev));
		if (!rev)
			return -ENOMEM;
		zs->rev = rev;
		zs->rev_cap = c->objs;
	}
	zs->free_head = OBJ_NONE;
	zs->inuse = zs->bump = 0;
	zs->bucket = NO_BUCKET;
	return 0;
}

/* Park an empty zspage in the cache, or hand back the slot for release_to_os. A zspage
 * holding no pages is not worth a cache entry. */
static uint32_t zspage_park(struct pool *p, uint32_t slot)
{
	if (!p->meta[slot].touched)
		return slot;
	cache_push(p, slot);
	return NONE;
}

static int zspage_new(struct pool *p, struct size_class *c, uint32_t *slot)
{
	uint32_t s = cache_reuse(p);

	if (s != NONE)
		trim_cached(p, c, s);
	else if ((s = slot_pop(p)) == NONE && (s = slot_fresh(p)) == NONE)
		return -ENOMEM;
	if (zspage_prepare(p, c, s)) {
		if (zspage_park(p, s) != NONE)
			release_to_os(p, s);
		return -ENOMEM;
	}
	*slot = s;
	return 0;
}

/* ---- handles ---- */

static uint64_t *handle_word(struct size_class *c, uint64_t idx)
{
	if (idx >= c->dir_len * HCHUNK)
		return NULL;
	uint64_t *chunk = atomic_load_explicit(&c->dir[idx >> HCHUNK_SHIFT], memory_order_acquire);
	return chunk ? &chunk[idx & (HCHUNK - 1)] : NULL;
}

static int handle_get(struct size_class *c, uint64_t *idx)
{
	if (c->handle_free != HANDLE_NONE) {
		*idx = c->handle_free;
		c->handle_free = *handle_word(c, *idx) & ~WORD_FREE;
		return 0;
	}
	if (c->handle_next >= c->dir_len * HCHUNK)
		return -ENOMEM;
	_Atomic(uint64_t *) *slotp = &c->dir[c->handle_next >> HCHUNK_SHIFT];
	if (!atomic_load_explicit(slotp, memory_order_relaxed)) {
		uint64_t *chunk = calloc(HCHUNK, sizeof(*chunk));
		if (!chunk)
			return -ENOMEM;
		atomic_store_explicit(slotp, chunk, memory_order_release);
	}
	*idx = c->handle_next++;
	return 0;
}

static void handle_put(struct size_class *c, uint64_t idx)
{
	*handle_word(c, idx) = WORD_FREE | c->handle_free;
	c->handle_free = idx;
}

static uint64_t loc_word(uint32_t slot, uint32_t obj)
{
	return WORD_LIVE | (uint64_t)slot << OBJ_BITS | obj;
}

static struct size_class *handle_class(struct pool *p, uint64_t handle, uint64_t *idx)
{
	uint64_t cls = handle >> HANDLE_CLASS_SHIFT;

	if (cls >= p->nr_classes || !(handle & HANDLE_IDX_MASK))
		return NULL;
	*idx = (handle & HANDLE_IDX_MASK) - 1;
	return &p->classes[cls];
}

/* ---- alloc / free ---- */

static int alloc_locked(struct pool *p, struct size_class *c, uint64_t *handle,
			struct populate *pop)
{
	uint32_t slot = fullest_partial(c), obj;
	bool fresh = slot == NONE;
	uint64_t idx;
	int err;

	if (fresh && (err = zspage_new(p, c, &slot)))
		return err;
	struct zspage *zs = &p->meta[slot];
	err = take_obj(p, c, zs, &obj, pop);
	if (!err && (err = handle_get(c, &idx)))
		put_obj(zs, obj);
	if (err) {
		if (fresh && zspage_park(p, slot) != NONE)
			release_to_os(p, slot);
		return err;
	}
	*handle_word(c, idx) = loc_word(slot, obj);
	zs->rev[obj] = (uint32_t)idx;
	zs->inuse++;
	c->nr_objs++;
	c->nr_zspages += fresh;
	rebucket(p, c, slot);
	*handle = (uint64_t)c->id << HANDLE_CLASS_SHIFT | (idx + 1);
	return 0;
}

/* The class mutex covers only the allocation: making pages resident and the copy happen
 * after it, so threads storing into one class overlap their copies. The migrate lock,
 * held for reading throughout, keeps compaction from moving the new object meanwhile (the
 * order, migrate then mutex, is compaction's too). */
int pool_store(struct pool *pool, const void *src, size_t size, uint64_t *handle)
{
	if (size == 0 || size > POOL_MAX_OBJECT)
		return -E2BIG;
	struct size_class *c =
		&pool->classes[pool->size_to_class[(size + CLASS_DELTA - 1) / CLASS_DELTA]];
	struct populate pop = { NULL, 0 };

	pthread_rwlock_rdlock(&c->migrate);
	pthread_mutex_lock(&c->lock);
	int err = alloc_locked(pool, c, handle, &pop);
	uint64_t loc = err ? 0 : *handle_word(c, (*handle & HANDLE_IDX_MASK) - 1) & ~WORD_LIVE;
	pthread_mutex_unlock(&c->lock);
	if (!err) {
		populate(&pop);
		if (src)
			memcpy(slot_addr(pool, (uint32_t)(loc >> OBJ_BITS)) +
				       (uint64_t)(loc & ((1u << OBJ_BITS) - 1)) * c->size,
			       src, size);
	}
	pthread_rwlock_unlock(&c->migrate);
	return err;
}

int pool_alloc(struct pool *pool, size_t size, uint64_t *handle)
{
	return pool_store(pool, NULL, size, handle);
}

/* Returns a slot the caller must release to the OS once the mutex is dropped, or NONE. */
static uint32_t free_locked(struct pool *p, struct size_class *c, uint64_t idx)
{
	uint64_t *w = idx < c->handle_next ? handle_word(c, idx) : NULL;

	if (!w || !(*w & WORD_LIVE))
		return NONE; /* unknown handle or double free: ignore rather than corrupt */
	uint32_t slot = (uint32_t)((*w & ~WORD_LIVE) >> OBJ_BITS);
	struct zspage *zs = &p->meta[slot];
	put_obj(zs, (uint32_t)(*w & ((1u << OBJ_BITS) - 1)));
	handle_put(c, idx);
	c->nr_objs--;
	if (--zs->inuse) {
		rebucket(p, c, slot);
		return NONE;
	}
	list_del(p, c, slot);
	c->nr_zspages--;
	return zspage_park(p, slot);
}

void pool_free(struct pool *pool, uint64_t handle)
{
	uint64_t idx;
	struct size_class *c = handle_class(pool, handle, &idx);

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	uint32_t victim = free_locked(pool, c, idx);
	pthread_mutex_unlock(&c->lock);
	if (victim != NONE)
		release_to_os(pool, victim);
}

/* ---- map ---- */

void *pool_map(struct pool *pool, uint64_t handle)
{
	uint64_t idx;
	struct size_class *c = handle_class(pool, handle, &idx);

	if (!c)
		return NULL;
	pthread_rwlock_rdlock(&c->migrate);
	uint64_t *w = handle_word(c, idx);
	if (!w || !(*w & WORD_LIVE)) {
		pthread_rwlock_unlock(&c->migrate);
		return NULL;
	}
	uint64_t loc = *w & ~WORD_LIVE;
	return slot_addr(pool, (uint32_t)(loc >> OBJ_BITS)) +
	       (uint64_t)(loc & ((1u << OBJ_BITS) - 1)) * c->size;
}

void pool_unmap(struct pool *pool, uint64_t handle)
{
	uint64_t idx;
	struct size_class *c = handle_class(pool, handle, &idx);

	if (c)
		pthread_rwlock_unlock(&c->migrate);
}

uint64_t pool_total_bytes(const struct pool *pool)
{
	return atomic_load_explicit(&((struct pool *)pool)->pages, memory_order_relaxed) *
	       PAGE_BYTES;
}

/* ---- compaction (migrate rwlock held for writing, then the class mutex) ---- */

/* Worth it only when the class's free objects add up to a whole zspage: then the
 * sparsest zspage's objects always fit elsewhere. */
static bool can_compact(const struct size_class *c)
{
	return c->nr_zspages * c->objs - c->nr_objs >= c->objs;
}

static bool move_obj(struct pool *p, struct size_class *c, uint32_t src, uint32_t i)
{
	uint32_t dst = fullest_partial(c), j;
	struct populate pop = { NULL, 0 };

	if (dst == NONE || take_obj(p, c, &p->meta[dst], &j, &pop))
		return false;
	populate(&pop);
	struct zspage *from = &p->meta[src], *to = &p->meta[dst];
	memcpy(slot_addr(p, dst) + (uint64_t)j * c->size, slot_addr(p, src) + (uint64_t)i * c->size,
		c->size);
	uint32_t idx = from->rev[i];
	*handle_word(c, idx) = loc_word(dst, j);
	to->rev[j] = idx;
	to->inuse++;
	rebucket(p, c, dst);
	put_obj(from, i);
	from->inuse--;
	return true;
}

/* Empty the sparsest zspage into the fuller ones. Returns whether to go on; *victim gets
 * the emptied slot, to be released after the locks are dropped. */
static bool compact_step(struct pool *p, struct size_class *c, uint32_t *victim)
{
	if (!c->partial_mask || !can_compact(c))
		return false;
	uint32_t src = c->head[__builtin_ctz(c->partial_mask)];
	struct zspage *zs = &p->meta[src];
	bool ok = true;

	list_del(p, c, src);
	for (uint32_t i = 0; ok && zs->inuse && i < zs->bump; i++)
		if (!(zs->rev[i] & REV_FREE))
			ok = move_obj(p, c, src, i);
	if (zs->inuse) {
		rebucket(p, c, src);
		return false;
	}
	c->nr_zspages--;
	*victim = src;
	return true;
}

static uint64_t compact_class(struct pool *p, struct size_class *c)
{
	uint64_t freed = 0;
	bool more = true;

	while (more) {
		uint32_t victim = NONE;

		pthread_rwlock_wrlock(&c->migrate);
		pthread_mutex_lock(&c->lock);
		more = compact_step(p, c, &victim);
		pthread_mutex_unlock(&c->lock);
		pthread_rwlock_unlock(&c->migrate);
		if (victim != NONE)
			freed += release_to_os(p, victim);
	}
	return freed;
}

uint64_t pool_compact(struct pool *pool)
{
	uint64_t freed = 0;

	for (uint32_t i = 0; i < pool->nr_classes; i++)
		freed += compact_class(pool, &pool->classes[i]);
	return freed;
}

uint64_t pool_release_empty_above(struct pool *pool, uint64_t keep)
{
	uint64_t freed = 0;
	uint32_t slot;

	while (pool_empty_bytes(pool) > keep && (slot = cache_pop(pool)) != NONE)
		freed += release_to_os(pool, slot);
	return freed;
}

uint64_t pool_release_empty(struct pool *pool)
{
	return pool_release_empty_above(pool, 0);
}

uint64_t pool_cache_hits(const struct pool *pool)
{
	return atomic_load_explicit(&((struct pool *)pool)->cache_hits, memory_order_relaxed);
}

uint64_t pool_empty_bytes(const struct pool *pool)
{
	return atomic_load_explicit(&pool->empty_pages, memory_order_relaxed) * PAGE_BYTES;
}

/* ---- setup ---- */

/* Page count (1..16) whose zspage wastes the smallest fraction at its tail. */
static void pick_pages(uint32_t size, uint32_t *pages, uint32_t *objs)
{
	uint64_t best_waste = 1, best_span = 0;

	for (uint32_t k = 1; k <= MAX_ZSPAGE_PAGES; k++) {
		uint64_t span = (uint64_t)k * PAGE_BYTES, waste = span % size;
		if (best_span == 0 || waste * best_span < best_waste * span) {
			best_waste = waste;
			best_span = span;
			*pages = k;
		}
	}
	*objs = *pages * PAGE_BYTES / size;
}

static void init_classes(struct pool *p)
{
	struct size_class *last = NULL;

	for (uint32_t i = NR_SIZES; i >= 1; i--) {
		uint32_t size = i * CLASS_DELTA, pages, objs;

		pick_pages(size, &pages, &objs);
		if (!last || last->pages != pages || last->objs != objs) {
			last = &p->classes[p->nr_classes];
			last->id = p->nr_classes++;
			last->size = size;
			last->pages = pages;
			last->objs = objs;
		}
		p->size_to_class[i] = (uint8_t)last->id;
	}
	p->size_to_class[0] = p->size_to_class[1];
}

static int init_class(struct pool *p, struct size_class *c)
{
	uint64_t max_objs = p->limit_pages * c->objs / c->pages + c->objs;

	if (max_objs > MAX_HANDLES)
		max_objs = MAX_HANDLES;
	c->dir_len = max_objs / HCHUNK + 1;
	c->dir = calloc(c->dir_len, sizeof(*c->dir));
	if (!c->dir)
		return -ENOMEM;
	for (unsigned b = 0; b <= NR_BUCKETS; b++)
		c->head[b] = NONE;
	c->handle_free = HANDLE_NONE;
	if (pthread_mutex_init(&c->lock, NULL))
		return -ENOMEM;
	if (pthread_rwlock_init(&c->migrate, NULL)) {
		pthread_mutex_destroy(&c->lock);
		return -ENOMEM;
	}
	return 0;
}

static void *map_noreserve(uint64_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

/* Shrinks the reservation until the kernel grants it (or it gets below 64 MiB). */
static int reserve(struct pool *p, uint64_t limit_pages)
{
	for (uint64_t n = limit_pages + SLOT_SLACK; n >= MIN_POOL_BYTES / PAGE_BYTES; n /= 2) {
		p->base = map_noreserve(n * SLOT_BYTES);
		if (!p->base)
			continue;
		p->meta = map_noreserve(n * sizeof(*p->meta));
		if (p->meta) {
			p->nslots = n;
			p->limit_pages = limit_pages < n - SLOT_SLACK ? limit_pages : n - SLOT_SLACK;
			/* slots are touched sparsely; a huge page would hold far more than we count */
			madvise(p->base, n * SLOT_BYTES, MADV_NOHUGEPAGE);
			return 0;
		}
		munmap(p->base, n * SLOT_BYTES);
	}
	return -ENOMEM;
}

static void destroy_classes(struct pool *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct size_class *c = &p->classes[i];

		for (uint64_t d = 0; d < c->dir_len; d++)
			free(atomic_load_explicit(&c->dir[d], memory_order_relaxed));
		free(c->dir);
		pthread_mutex_destroy(&c->lock);
		pthread_rwlock_destroy(&c->migrate);
	}
}

struct pool *pool_create(uint64_t max_bytes)
{
	struct pool *p = aligned_alloc(64, sizeof(*p));
	uint64_t limit = max_bytes < MIN_POOL_BYTES ? MIN_POOL_BYTES : max_bytes;
	uint64_t limit_pages = (limit + PAGE_BYTES - 1) / PAGE_BYTES;

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	atomic_init(&p->free_top, NONE);
	atomic_init(&p->empty_top, NONE);
	if (limit_pages > MAX_POOL_PAGES)
		limit_pages = MAX_POOL_PAGES;
	init_classes(p);
	if (reserve(p, limit_pages)) {
		free(p);
		return NULL;
	}
	for (uint32_t i = 0; i < p->nr_classes; i++) {
		if (init_class(p, &p->classes[i])) {
			free(p->classes[i].dir);
			destroy_classes(p, i);
			munmap(p->base, p->nslots * SLOT_BYTES);
			munmap(p->meta, p->nslots * sizeof(*p->meta));
			free(p);
			return NULL;
		}
	}
	return p;
}

void pool_destroy(struct pool *pool)
{
	if (!pool)
		return;
	uint64_t used = atomic_load_explicit(&pool->next_slot, memory_order_relaxed);
	for (uint64_t s = 0; s < used && s < pool->nslots; s++)
		free(pool->meta[s].rev);
	destroy_classes(pool, pool->nr_classes);
	munmap(pool->base, pool->nslots * SLOT_BYTES);
	munmap(pool->meta, pool->nslots * sizeof(*pool->meta));
	free(pool);
}
