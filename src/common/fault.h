/* SPDX-License-Identifier: MIT */
/*
 * fault — failure injection and race hooks for the fault-injection test build
 * (`make FAULT=1`, which compiles the library with -DUZS_FAULT_INJECTION and force-includes
 * this header). In every other build the calls below compile to nothing, so the hot paths
 * carry no trace of them.
 *
 * Failures: each site fails every Nth call or, with a seed, at a given rate; a failed
 * allocation returns NULL (malloc, calloc, realloc, aligned_alloc) or MAP_FAILED (mmap), a
 * failed compression -EINVAL, a failed swap file transfer -EIO, as the real calls would.
 * Hooks: the engine calls a test's function at the points where races matter, so a test
 * can run the other side of the race right there, in a fixed order.
 */
#ifndef UZS_FAULT_H
#define UZS_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum fault_site {
	FAULT_ALLOC,	  /* malloc, calloc, realloc, aligned_alloc in the library */
	FAULT_MMAP,	  /* mmap in the library (pool memory, maps) */
	FAULT_COMPRESS,	  /* comp_compress */
	FAULT_SWAP_READ,  /* reads of the swap file */
	FAULT_SWAP_WRITE, /* writes to the swap file */
	FAULT_NR_SITES
};

enum hook_point {
	HOOK_WB_PINNED,		/* writeback: slot pinned, its entry not yet borrowed */
	HOOK_WB_READ,		/* writeback: entry borrowed and decompressed, not yet written */
	HOOK_FREE_COUNTED,	/* free: the count reached zero, the entry not yet dropped */
	HOOK_RUN_LOAD_START,	/* run swap-in: arguments checked, nothing borrowed yet */
	HOOK_RUN_LOAD_BORROWED, /* run swap-in: every entry borrowed, none decompressed */
	HOOK_MOVE_BATCH,	/* eviction: victims marked busy, not yet moved (their first's address) */
	HOOK_MOVE_UNSHARE,	/* a move refused as shared, the page not yet made ours (its address) */
	HOOK_MOVE_INTO,		/* eviction of the caller's own pages: last round's staged copies
				 * dropped, this round's moves not yet made (the first's staging
				 * slot) */
	HOOK_SWAPIN_READ,	/* a fault's swap-in: pages decompressed, not yet installed (the
				 * first one's address) */
	HOOK_NR_POINTS
};

typedef void (*fault_hook_fn)(void *arg, uint64_t slot);

#ifdef UZS_FAULT_INJECTION

#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>

bool fault_hit(enum fault_site site);
void fault_hook(enum hook_point point, uint64_t slot);

/* Tests' controls. every: fail every Nth call (0: never). per_million with seed: fail at
 * that rate, the same calls for the same seed in a single thread. */
void fault_fail_every(enum fault_site site, unsigned long every);
void fault_fail_randomly(enum fault_site site, unsigned per_million, uint64_t seed);
void fault_reset(void);
unsigned long fault_injected(enum fault_site site);
/* Run fn(arg, slot) at point, once (the hook disarms itself before it runs, so fn may
 * go through the same point without recursing). */
void fault_on(enum hook_point point, fault_hook_fn fn, void *arg);

void *fault_malloc(size_t n);
void *fault_calloc(size_t n, size_t size);
void *fault_realloc(void *p, size_t n);
void *fault_aligned_alloc(size_t align, size_t n);
void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

#ifndef UZS_FAULT_IMPL
#define malloc(n) fault_malloc(n)
#define calloc(n, s) fault_calloc(n, s)
#define realloc(p, n) fault_realloc(p, n)
#define aligned_alloc(a, n) fault_aligned_alloc(a, n)
#define mmap(a, l, p, f, d, o) fault_mmap(a, l, p, f, d, o)
#endif

#else

static inline bool fault_hit(enum fault_site site)
{
	(void)site;
	return false;
}

static inline void fault_hook(enum hook_point point, uint64_t slot)
{
	(void)point;
	(void)slot;
}

#endif
#endif
