#include "lru.h"

void lru_init(struct lru *l)
{
	pthread_mutex_init(&l->lock, NULL);
	l->head.lru_next = l->head.lru_prev = &l->head;
	l->nr = 0;
}

void lru_destroy(struct lru *l)
{
	pthread_mutex_destroy(&l->lock);
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
	l->nr++;
}

void lru_add_tail_locked(struct lru *l, struct entry *e)
{
	link_between(e, l->head.lru_prev, &l->head);
	e->on_lru = true;
	l->nr++;
}

void lru_del_locked(struct lru *l, struct entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->on_lru = false;
	l->nr--;
}

void lru_add(struct lru *l, struct entry *e)
{
	pthread_mutex_lock(&l->lock);
	e->referenced = true;
	lru_add_head_locked(l, e);
	pthread_mutex_unlock(&l->lock);
}

void lru_del(struct lru *l, struct entry *e)
{
	pthread_mutex_lock(&l->lock);
	if (e->on_lru)
		lru_del_locked(l, e);
	pthread_mutex_unlock(&l->lock);
}

void lru_demote(struct lru *l, struct entry *e)
{
	pthread_mutex_lock(&l->lock);
	if (e->on_lru) {
		lru_del_locked(l, e);
		e->referenced = false;
		lru_add_tail_locked(l, e);
	}
	pthread_mutex_unlock(&l->lock);
}
