/* SPDX-License-Identifier: MIT */
/*
 * vm_intervals — sets of address ranges (a space's registered and excluded ranges): add,
 * remove, overlap. Apart from vm.c because they know nothing of faults or threads; the
 * per-fault lookup (intervals_end_at) is inline in vm_internal.h.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <stdlib.h>

/* ---- interval sets (registered and excluded ranges) ---- */

int intervals_add(struct intervals *iv, uintptr_t start, uintptr_t end)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 32;
		struct interval *v = realloc(iv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		iv->v = v;
		iv->cap = cap;
	}
	iv->hit = (struct interval){ 0, 0 };
	iv->v[iv->n++] = (struct interval){ start, end };
	return 0;
}

void intervals_remove(struct intervals *iv, uintptr_t start, uintptr_t end)
{
	iv->hit = (struct interval){ 0, 0 };
	for (size_t i = 0; i < iv->n; i++) {
		struct interval *x = &iv->v[i];

		if (x->end <= start || x->start >= end)
			continue;
		if (x->start < start && x->end > end) { /* a hole in the middle: split */
			uintptr_t tail = x->end;

			x->end = start;
			intervals_add(iv, end, tail);
			return;
		}
		if (x->start < start) {
			x->end = start;
		} else if (x->end > end) {
			x->start = end;
		} else {
			iv->v[i--] = iv->v[--iv->n];
		}
	}
}

bool intervals_overlap(const struct intervals *iv, uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < iv->n; i++)
		if (iv->v[i].start < end && iv->v[i].end > start)
			return true;
	return false;
}
