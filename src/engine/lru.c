/* SPDX-License-Identifier: MIT */
#include "lru.h"

void lru_init(struct lru *l)
{
	pthread_mutex_init(&l->lock, NULL);
	l->head.lru_next = l->head.lru_prev = &l->head;
	atomic_init(&l->nr, 0);
	atomic_init(&l->spliced, false);
}

void lru_destroy(struct lru *l)
{
	pthread_mutex_destroy(&l->lock);
}

/* Only the lock holder writes nr, so a plain read-modify-write is enough. */
static void nr_add(struct lru *l, int64_t n)
{
	atomic_store_explicit(&l->nr, atomic_load_explicit(&l->nr, memory_order_relaxed) + (uint64_t)n,
			      memory_order_relaxed);
}

static void link_between(struct entry *e, struct entry *prev, struct entry *next)
{
	e->lru_prev = prev;
	e->lru_next = next;
	prev->lru_next = e;
	next->lru_prev = e;
}

void lru_add_head_locked(struct lru *l, struct entry *e)
{
	link_between(e, &l->head, l->head.lru_next);
	e->on_lru = true;
	nr_add(l, 1);
}

void lru_add_tail_locked(struct lru *l, struct entry *e)
{
	link_between(e, l->head.lru_prev, &l->head);
	e->on_lru = true;
	nr_add(l, 1);
}

void lru_del_locked(struct lru *l, struct entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->on_lru = false;
	nr_add(l, -1);
}

void lru_splice_cold_locked(struct lru *src, struct lru *dst)
{
	struct entry *first = src->head.lru_next, *last = src->head.lru_prev;
	uint64_t nr = atomic_load_explicit(&src->nr, memory_order_relaxed);

	if (nr) {
		struct entry *coldest = dst->head.lru_prev;

		coldest->lru_next = first;
		first->lru_prev = coldest;
		last->lru_next = &dst->head;
		dst->head.lru_prev = last;
		nr_add(dst, (int64_t)nr);
	}
	src->head.lru_next = src->head.lru_prev = &src->head;
	atomic_store_explicit(&src->nr, 0, memory_order_relaxed);
	atomic_store_explicit(&src->spliced, true, memory_order_release);
}
