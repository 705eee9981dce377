/* SPDX-License-Identifier: MIT */
/*
 * pool — a zsmalloc-style allocator for compressed pages.
 *
 * Objects of 1..POOL_MAX_OBJECT bytes live in size classes; each class packs its objects
 * into zspages of one or more contiguous pages, and objects may straddle the pages of a
 * zspage. Callers hold handles, not pointers, so compaction can move objects. All pool
 * memory comes from one reserved mmap area. A zspage that empties keeps its pages, ready
 * for reuse without a page fault, until pool_release_empty gives them back to the OS
 * (MADV_DONTNEED) — the engine's worker does that shortly after, in a batch, so the free
 * path never pays for the syscall and its TLB shootdown; it may keep a reserve of them
 * (pool_release_empty_above) for a while, because reusing a resident page is far cheaper
 * than a fresh one (on a VM, a fresh page can cost tens of microseconds).
 *
 * Thread-safe. Locks: one mutex per size class (alloc, free, compaction) and one rwlock
 * per size class taken for reading by map/unmap and for writing while compaction moves
 * objects. No lock is global.
 */
#ifndef UZS_POOL_H
#define UZS_POOL_H

#include <stddef.h>
#include <stdint.h>

#define POOL_MAX_OBJECT 4096u

struct pool;

/* Reserve address space for up to about max_bytes of pool memory (the pool refuses
 * allocations, -ENOMEM, once its reservation is used up). NULL on failure. */
struct pool *pool_create(uint64_t max_bytes);
void pool_destroy(struct pool *pool);

/* Allocate an object of size bytes (1..POOL_MAX_OBJECT). 0 and *handle set (never 0),
 * -E2BIG for a bad size, -ENOMEM when no memory could be had. */
int pool_alloc(struct pool *pool, size_t size, uint64_t *handle);
void pool_free(struct pool *pool, uint64_t handle);

/* pool_alloc, then copy size bytes from src (unless NULL) into the new object: the store
 * path's one call, with no map/unmap round trip. */
int pool_store(struct pool *pool, const void *src, size_t size, uint64_t *handle);

/* Pin the object and return its address; it stays put (compaction waits) until
 * pool_unmap. The bytes are contiguous even when the object straddles pages.
 * NULL for an unknown or freed handle; call pool_unmap only after a non-NULL map. */
void *pool_map(struct pool *pool, uint64_t handle);
void pool_unmap(struct pool *pool, uint64_t handle);

/* Bytes of memory the pool holds: pages of live and cached-empty zspages, times 4096.
 * A zspage's page counts from when an object first reaches into it (untouched pages of
 * a partly filled zspage are not resident, so they are not counted). */
uint64_t pool_total_bytes(const struct pool *pool);

/* Move objects from sparse zspages into fuller ones of the same class and give the freed
 * pages back to the OS. Returns the bytes given back. */
uint64_t pool_compact(struct pool *pool);

/* Give every cached empty zspage back to the OS; returns the bytes given back. */
uint64_t pool_release_empty(struct pool *pool);

/* Give cached empty zspages back until at most keep bytes of them are left: a reserve
 * that the next growth reuses without page faults. Returns the bytes given back. */
uint64_t pool_release_empty_above(struct pool *pool, uint64_t keep);

/* How many allocations so far took their zspage from the empty cache (a relaxed read):
 * tells whether a kept reserve is being used. */
uint64_t pool_cache_hits(const struct pool *pool);

/* Bytes held by empty zspages waiting for pool_release_empty (a relaxed read). */
uint64_t pool_empty_bytes(const struct pool *pool);

#endif
