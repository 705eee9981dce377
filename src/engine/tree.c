/* SPDX-License-Identifier: MIT */
#include "tree.h"

#include <stdalign.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "swapfile.h"

#define TREE_LOCKS 256u

struct tree_lock {
	alignas(64) pthread_mutex_t mutex;
};

struct tree {
	struct entry **slots;
	uint64_t nr_slots;
	size_t bytes;
	struct tree_lock locks[TREE_LOCKS];
};

struct tree *tree_create(uint64_t nr_slots)
{
	struct tree *t = aligned_alloc(64, sizeof(*t));

	if (!t)
		return NULL;
	t->nr_slots = nr_slots;
	t->bytes = nr_slots * sizeof(*t->slots);
	t->slots = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->slots == MAP_FAILED) {
		free(t);
		return NULL;
	}
	for (unsigned i = 0; i < TREE_LOCKS; i++)
		pthread_mutex_init(&t->locks[i].mutex, NULL);
	return t;
}

void tree_destroy(struct tree *t)
{
	if (!t)
		return;
	munmap(t->slots, t->bytes);
	for (unsigned i = 0; i < TREE_LOCKS; i++)
		pthread_mutex_destroy(&t->locks[i].mutex);
	free(t);
}

pthread_mutex_t *tree_lock_of(struct tree *t, uint64_t slot)
{
	return &t->locks[(slot / SLOTS_PER_CLUSTER) % TREE_LOCKS].mutex;
}

bool tree_insert(struct tree *t, struct entry *e)
{
	pthread_mutex_t *lock = tree_lock_of(t, e->slot);
	bool empty;

	e->borrowers = 0;
	e->detached = false;
	pthread_mutex_lock(lock);
	empty = !t->slots[e->slot];
	if (empty)
		t->slots[e->slot] = e;
	pthread_mutex_unlock(lock);
	return empty;
}

struct entry *tree_borrow(struct tree *t, uint64_t slot)
{
	pthread_mutex_t *lock = tree_lock_of(t, slot);
	struct entry *e;

	pthread_mutex_lock(lock);
	e = t->slots[slot];
	if (e)
		e->borrowers++;
	pthread_mutex_unlock(lock);
	return e;
}

static void detach_locked(struct tree *t, struct entry *e)
{
	if (!e->detached) {
		t->slots[e->slot] = NULL;
		e->detached = true;
	}
}

bool tree_return(struct tree *t, struct entry *e, bool detach)
{
	pthread_mutex_t *lock = tree_lock_of(t, e->slot);
	bool owner;

	pthread_mutex_lock(lock);
	if (detach)
		detach_locked(t, e);
	owner = --e->borrowers == 0 && e->detached;
	pthread_mutex_unlock(lock);
	return owner;
}

struct entry *tree_detach(struct tree *t, uint64_t slot)
{
	pthread_mutex_t *lock = tree_lock_of(t, slot);
	struct entry *e;

	pthread_mutex_lock(lock);
	e = t->slots[slot];
	if (e) {
		detach_locked(t, e);
		if (e->borrowers)
			e = NULL; /* the last borrower destroys it */
	}
	pthread_mutex_unlock(lock);
	return e;
}

void tree_insert_run(struct tree *t, struct entry **entries, unsigned nr)
{
	pthread_mutex_t *lock = tree_lock_of(t, entries[0]->slot);

	pthread_mutex_lock(lock);
	for (unsigned i = 0; i < nr; i++) {
		entries[i]->borrowers = 0;
		entries[i]->detached = false;
		t->slots[entries[i]->slot] = entries[i];
	}
	pthread_mutex_unlock(lock);
}

unsigned tree_borrow_run(struct tree *t, uint64_t first, unsigned nr, struct entry **out)
{
	pthread_mutex_t *lock = tree_lock_of(t, first);
	unsigned found = 0;

	pthread_mutex_lock(lock);
	for (unsigned i = 0; i < nr; i++) {
		out[i] = t->slots[first + i];
		if (out[i]) {
			out[i]->borrowers++;
			found++;
		}
	}
	pthread_mutex_unlock(lock);
	return found;
}

unsigned tree_return_run(struct tree *t, struct entry **entries, unsigned nr, bool detach)
{
	pthread_mutex_t *lock = NULL;
	unsigned owned = 0;

	for (unsigned i = 0; i < nr; i++) {
		struct entry *e = entries[i];

		if (!e)
			continue;
		if (!lock) {
			lock = tree_lock_of(t, e->slot);
			pthread_mutex_lock(lock);
		}
		if (detach)
			detach_locked(t, e);
		if (--e->borrowers == 0 && e->detached)
			owned++;
		else
			entries[i] = NULL;
	}
	if (lock)
		pthread_mutex_unlock(lock);
	return owned;
}

bool tree_holds(struct tree *t, const struct entry *e)
{
	return !e->detached && t->slots[e->slot] == e;
}

void tree_for_each(struct tree *t, void (*fn)(struct entry *e, void *arg), void *arg)
{
	/* Only the used clusters were ever touched; untouched pages read as zero. */
	for (uint64_t s = 1; s < t->nr_slots; s++)
		if (t->slots[s])
			fn(t->slots[s], arg);
}
