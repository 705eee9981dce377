/* SPDX-License-Identifier: MIT */
/*
 * lru — entries in store order with a second-chance referenced bit.
 *
 * New entries enter at the head, referenced; writeback takes from the tail, and an entry
 * found referenced there loses the bit and goes back to the head once before it can be
 * written back. Every group has a few lists per NUMA node (see group.h).
 */
#ifndef UZS_LRU_H
#define UZS_LRU_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "entry.h"

struct lru {
	alignas(64) pthread_mutex_t lock;
	struct entry head; /* sentinel: head.lru_next is the newest, head.lru_prev the oldest */
	_Atomic uint64_t nr; /* written under lock, read without it for estimates */
	/* Set, under lock, once a removed group's list has moved into its parent's: its
	 * entries must then be looked for there. Never cleared. */
	_Atomic bool spliced;
};

void lru_init(struct lru *l);
void lru_destroy(struct lru *l);

/* With l->lock held. */
void lru_add_head_locked(struct lru *l, struct entry *e);
void lru_add_tail_locked(struct lru *l, struct entry *e);
void lru_del_locked(struct lru *l, struct entry *e);

/* Move every entry of src to the cold end of dst and mark src spliced; both locked. */
void lru_splice_cold_locked(struct lru *src, struct lru *dst);

#endif
