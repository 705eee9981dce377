/* SPDX-License-Identifier: MIT */
/* fault — see fault.h. Compiled into the fault-injection build only. */
#ifdef UZS_FAULT_INJECTION
#define UZS_FAULT_IMPL
#include "fault.h"

#include <stdatomic.h>

/* The build force-includes fault.h before this file could ask it not to redirect. */
#undef malloc
#undef calloc
#undef realloc
#undef aligned_alloc
#undef mmap

struct site_plan {
	_Atomic unsigned long every;
	_Atomic unsigned per_million;
	_Atomic uint64_t seed;
	_Atomic unsigned long calls, injected;
};

static struct site_plan plans[FAULT_NR_SITES];

struct hook {
	_Atomic(fault_hook_fn) fn;
	void *_Atomic arg;
};

static struct hook hooks[HOOK_NR_POINTS];

/* splitmix64: one call number and the seed give one well-mixed word. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

bool fault_hit(enum fault_site site)
{
	struct site_plan *p = &plans[site];
	unsigned long every = atomic_load(&p->every);
	unsigned rate = atomic_load(&p->per_million);
	unsigned long call;
	bool hit;

	if (!every && !rate)
		return false;
	call = atomic_fetch_add(&p->calls, 1) + 1;
	hit = every ? call % every == 0 : mix(call ^ atomic_load(&p->seed)) % 1000000 < rate;
	if (hit)
		atomic_fetch_add(&p->injected, 1);
	return hit;
}

void fault_hook(enum hook_point point, uint64_t slot)
{
	fault_hook_fn fn = atomic_exchange(&hooks[point].fn, NULL);

	if (fn)
		fn(atomic_load(&hooks[point].arg), slot);
}

void fault_fail_every(enum fault_site site, unsigned long every)
{
	atomic_store(&plans[site].per_million, 0);
	atomic_store(&plans[site].calls, 0);
	atomic_store(&plans[site].every, every);
}

void fault_fail_randomly(enum fault_site site, unsigned per_million, uint64_t seed)
{
	atomic_store(&plans[site].every, 0);
	atomic_store(&plans[site].calls, 0);
	atomic_store(&plans[site].seed, seed);
	atomic_store(&plans[site].per_million, per_million);
}

void fault_reset(void)
{
	for (unsigned i = 0; i < FAULT_NR_SITES; i++) {
		fault_fail_every(i, 0);
		atomic_store(&plans[i].injected, 0);
	}
	for (unsigned i = 0; i < HOOK_NR_POINTS; i++)
		atomic_store(&hooks[i].fn, NULL);
}

unsigned long fault_injected(enum fault_site site)
{
	return atomic_load(&plans[site].injected);
}

void fault_on(enum hook_point point, fault_hook_fn fn, void *arg)
{
	atomic_store(&hooks[point].arg, arg);
	atomic_store(&hooks[point].fn, fn);
}

void *fault_malloc(size_t n)
{
	return fault_hit(FAULT_ALLOC) ? NULL : malloc(n);
}

void *fault_calloc(size_t n, size_t size)
{
	return fault_hit(FAULT_ALLOC) ? NULL : calloc(n, size);
}

void *fault_realloc(void *p, size_t n)
{
	return fault_hit(FAULT_ALLOC) ? NULL : realloc(p, n);
}

void *fault_aligned_alloc(size_t align, size_t n)
{
	return fault_hit(FAULT_ALLOC) ? NULL : aligned_alloc(align, n);
}

void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return fault_hit(FAULT_MMAP) ? MAP_FAILED : mmap(addr, len, prot, flags, fd, off);
}
#else
/* ISO C wants something in every translation unit. */
typedef int fault_injection_not_built;
#endif
