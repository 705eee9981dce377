/* SPDX-License-Identifier: MIT */
/*
 * tree — the index from slot to entry.
 *
 * A flat array indexed by slot, reserved in address space and backed by the OS only where
 * used, guarded by a fixed set of shard locks chosen by cluster. Threads allocate slots
 * from their own clusters, so their stores and loads take different shard locks; a lookup
 * is one array read under an uncontended lock.
 */
#ifndef UZS_TREE_H
#define UZS_TREE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "entry.h"

struct tree;

struct tree *tree_create(uint64_t nr_slots);
void tree_destroy(struct tree *t);

pthread_mutex_t *tree_lock_of(struct tree *t, uint64_t slot);

/* Index e at its slot; the slot must be empty (returns false otherwise). */
bool tree_insert(struct tree *t, struct entry *e);

/* Borrow the entry at slot (NULL if none): it stays valid until tree_return. */
struct entry *tree_borrow(struct tree *t, uint64_t slot);

/* Give a borrowed entry back, detaching it from the tree first when detach is set.
 * True when the caller is now its owner and must destroy it. */
bool tree_return(struct tree *t, struct entry *e, bool detach);

/* Detach the entry at slot. Returns it when the caller now owns it; NULL when there was
 * none or a borrower will destroy it. */
struct entry *tree_detach(struct tree *t, uint64_t slot);

/* Is the entry still indexed? Call with its shard lock held. */
bool tree_holds(struct tree *t, const struct entry *e);

/* Runs: entries at consecutive slots inside one cluster, so one shard lock covers them. */

/* Index nr entries (for slots first.. first+nr-1, all empty) under one lock. */
void tree_insert_run(struct tree *t, struct entry **entries, unsigned nr);

/* Borrow the entries of nr consecutive slots in one locked walk: a snapshot no writeback
 * or free can tear. out[i] is NULL where there is none. Returns how many were found. */
unsigned tree_borrow_run(struct tree *t, uint64_t first, unsigned nr, struct entry **out);

/* Give back what tree_borrow_run lent (NULLs skipped), detaching when detach is set.
 * Entries the caller now owns stay in the array, the rest become NULL; returns how many
 * it owns. */
unsigned tree_return_run(struct tree *t, struct entry **entries, unsigned nr, bool detach);

/* Walk every indexed entry (at close, single-threaded). */
void tree_for_each(struct tree *t, void (*fn)(struct entry *e, void *arg), void *arg);

#endif
