/*
 * lru — entries in store order with a second-chance referenced bit.
 *
 * New entries enter at the head, referenced; writeback takes from the tail, and an entry
 * found referenced there loses the bit and goes back to the head once before it can be
 * written back. The engine keeps one list per thread shard (per group and node later).
 */
#ifndef UZS_LRU_H
#define UZS_LRU_H

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>

#include "entry.h"

struct lru {
	alignas(64) pthread_mutex_t lock;
	struct entry head; /* sentinel: head.lru_next is the newest, head.lru_prev the oldest */
	uint64_t nr;
};

void lru_init(struct lru *l);
void lru_destroy(struct lru *l);

/* With l->lock held. */
void lru_add_head_locked(struct lru *l, struct entry *e);
void lru_add_tail_locked(struct lru *l, struct entry *e);
void lru_del_locked(struct lru *l, struct entry *e);

void lru_add(struct lru *l, struct entry *e);
/* Remove e if it is on the list. */
void lru_del(struct lru *l, struct entry *e);
/* Move e to the cold end without its referenced bit: it is written back first. */
void lru_demote(struct lru *l, struct entry *e);

#endif
