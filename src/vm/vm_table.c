/* SPDX-License-Identifier: MIT */
/* vm_table — the page table and queues of the transparent mode. */
#include "vm_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* 35 bits of page number: 14 for the top level, 12 for the middle, 9 for a leaf. */
#define TOP_BITS 14
#define MID_BITS 12
#define LEAF_BITS 9
#define TOP_N (1u << TOP_BITS)
#define MID_N (1u << MID_BITS)
#define LEAF_N (1u << LEAF_BITS)
#define TOP_SHIFT (MID_BITS + LEAF_BITS)

int ptable_init(struct ptable *t)
{
	t->top = calloc(TOP_N, sizeof(*t->top));
	return t->top ? 0 : -ENOMEM;
}

void ptable_destroy(struct ptable *t)
{
	if (!t->top)
		return;
	for (unsigned i = 0; i < TOP_N; i++) {
		if (!t->top[i])
			continue;
		for (unsigned j = 0; j < MID_N; j++)
			free(t->top[i][j]);
		free(t->top[i]);
	}
	free(t->top);
	t->top = NULL;
}

struct vpage *ptable_get(struct ptable *t, uint64_t pg, bool create)
{
	uint64_t ti = pg >> TOP_SHIFT, mi = (pg >> LEAF_BITS) & (MID_N - 1);
	struct vpage **mid;

	if (ti >= TOP_N)
		return NULL;
	mid = t->top[ti];
	if (!mid) {
		if (!create || !(mid = calloc(MID_N, sizeof(*mid))))
			return NULL;
		t->top[ti] = mid;
	}
	if (!mid[mi]) {
		if (!create || !(mid[mi] = calloc(LEAF_N, sizeof(struct vpage))))
			return NULL;
	}
	return &mid[mi][pg & (LEAF_N - 1)];
}

void ptable_walk(struct ptable *t, uint64_t first, uint64_t end,
		 void (*fn)(void *arg, uint64_t pg, struct vpage *p), void *arg)
{
	uint64_t pg = first;

	while (pg < end && (pg >> TOP_SHIFT) < TOP_N) {
		struct vpage **mid = t->top[pg >> TOP_SHIFT];
		struct vpage *leaf;
		uint64_t leaf_end = (pg | (LEAF_N - 1)) + 1;

		if (!mid) {
			pg = ((pg >> TOP_SHIFT) + 1) << TOP_SHIFT;
			continue;
		}
		leaf = mid[(pg >> LEAF_BITS) & (MID_N - 1)];
		if (leaf) {
			for (uint64_t p = pg; p < leaf_end && p < end; p++)
				if (leaf[p & (LEAF_N - 1)].val)
					fn(arg, p, &leaf[p & (LEAF_N - 1)]);
		}
		pg = leaf_end;
	}
}

int fifo_push(struct fifo *q, uint64_t pg, uint32_t qseq)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 1024;
		struct qent *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	q->v[(q->head + q->len) % q->cap] = (struct qent){ .pg = pg, .qseq = qseq };
	q->len++;
	return 0;
}

bool fifo_pop(struct fifo *q, struct qent *out)
{
	if (!q->len)
		return false;
	*out = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return true;
}

void fifo_free(struct fifo *q)
{
	free(q->v);
	memset(q, 0, sizeof(*q));
}
