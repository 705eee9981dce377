/* SPDX-License-Identifier: MIT */
/*
 * test_hooks — ways for the tests to reach inside the engine (test_hooks.h). Built only into
 * the tests' copy of the library (libuzswap-internal.a), never into the installed one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "pool.h"
#include "swapfile.h"
#include "test_hooks.h"
#include "tree.h"

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

/* Wakes the worker too: with a PSI trigger it sleeps until one fires, not a second. */
void uzs_test_memory_pressure(struct uzs *uzs, int low)
{
	atomic_store(&uzs->test_pressure, low);
	pthread_mutex_lock(&uzs->worker_lock);
	uzs->worker_wake = true;
	pthread_cond_signal(&uzs->worker_cond);
	pthread_mutex_unlock(&uzs->worker_lock);
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
