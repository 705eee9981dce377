/* SPDX-License-Identifier: MIT */
/*
 * vm_table — what the transparent mode knows about each page of an address space, and
 * the FIFO queues its eviction policy keeps.
 */
#ifndef UZS_VM_TABLE_H
#define UZS_VM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A page's state: the low bits of vpage.val; the payload (a swap slot or a staging slot)
 * sits above VP_SHIFT. */
enum {
	VP_NONE = 0,     /* never touched, or discarded: reads as zeros */
	VP_RESIDENT = 1, /* mapped in the process */
	VP_STAGED = 2,   /* moved out to a staging slot, not yet compressed */
	VP_SWAPPED = 3,  /* in the engine under a swap slot */
};
#define VP_KIND_MASK 3ull
#define VP_ACTIVE 4ull    /* resident on the active list (touched again after eviction) */
#define VP_BUSY 8ull      /* staged and being compressed: faults on it wait */
#define VP_UNCHARGED 16ull /* resident but not ours to charge (shared with the parent) */
#define VP_ASIDE 32ull     /* resident, set aside: a move refused it (payload: why) */
#define VP_SHIFT 8

struct vpage {
	uint64_t val;
	uint32_t qseq;       /* the queue entry that stands for this page (older ones are stale) */
	uint32_t evicted_at; /* the eviction clock when it left: its refault distance */
};

static inline unsigned vp_kind(const struct vpage *p)
{
	return (unsigned)(p->val & VP_KIND_MASK);
}

static inline uint64_t vp_payload(const struct vpage *p)
{
	return p->val >> VP_SHIFT;
}

static inline void vp_set(struct vpage *p, unsigned kind, uint64_t flags, uint64_t payload)
{
	p->val = kind | flags | (payload << VP_SHIFT);
}

/* A sparse three-level table over page numbers (47-bit addresses). */
struct ptable {
	struct vpage ***top;
};

int ptable_init(struct ptable *t);
void ptable_destroy(struct ptable *t);
/* The page's entry; with create, made (zeroed: VP_NONE) if missing. NULL: not there, or
 * no memory. */
struct vpage *ptable_get(struct ptable *t, uint64_t pg, bool create);
/* Call fn on every entry that exists for pages [first, end), skipping absent parts of the
 * table quickly (a munmap of a large reservation). */
void ptable_walk(struct ptable *t, uint64_t first, uint64_t end,
		 void (*fn)(void *arg, uint64_t pg, struct vpage *p), void *arg);

/* A growable FIFO of (page, qseq) pairs; entries whose page has since changed are skipped
 * by the reader (lazy deletion). */
struct qent {
	uint64_t pg;
	uint32_t qseq;
};

struct fifo {
	struct qent *v;
	size_t head, len, cap;
};

int fifo_push(struct fifo *q, uint64_t pg, uint32_t qseq);
bool fifo_pop(struct fifo *q, struct qent *out);
void fifo_free(struct fifo *q);

#endif
