/* SPDX-License-Identifier: MIT */
/*
 * vm_events — the program's memory events as the fault thread reads them: munmap and
 * madvise (on_remove), mremap (on_remap), fork (on_fork). Apart from vm_fault.c: they
 * change the record of a range rather than serve a page.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "uffd.h"

#define FORK_GRACE_NS 100000000ull /* a forked child's time to exec before it is charged */

/* ---- the program's memory events ---- */

struct drop_ctx {
	struct vm_space *s;
	long uncharge;
};

static void drop_page(void *arg, uint64_t pg, struct vpage *p)
{
	struct drop_ctx *c = arg;
	struct vm_space *s = c->s;

	(void)pg;
	switch (vp_kind(p)) {
	case VP_RESIDENT:
		space_unaside(s, p);
		if (!(p->val & VP_UNCHARGED))
			c->uncharge++;
		if (p->val & VP_ACTIVE)
			s->nactive--;
		if (p->val & VP_BUSY) {
			/* Being moved out. It stays busy (gone, its slot still ours) until the move
			 * settles: a fault on the address meanwhile must wait, or the move could
			 * take the new page it installs and lose what the program writes there. */
			vp_set(p, VP_NONE, VP_BUSY, vp_payload(p));
			p->qseq = 0;
			return;
		}
		break;
	case VP_STAGED:
		if (!(p->val & VP_BUSY)) { /* the staged copy is garbage now */
			unsigned slot = (unsigned)vp_payload(p);

			s->slot_owner[slot] = 0;
			s->discard[s->ndiscard++] = slot;
			s->nstaged--;
		}
		break;
	case VP_SWAPPED:
		if (vp_payload(p) != LOST_SLOT)
			uzs_free(s->vm->uzs, vp_payload(p));
		break;
	case VP_NONE:
		if (p->val & VP_BUSY)
			return; /* dropped already, its move not yet settled */
		break;
	}
	p->val = 0;
	p->qseq = 0;
}

void space_forget(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap)
{
	struct drop_ctx c = { s, 0 };

	ptable_walk(&s->pt, start / VM_PAGE, end / VM_PAGE, drop_page, &c);
	space_charge(s, -c.uncharge);
	if (unmap)
		intervals_remove(&s->registered, start, end);
	if (s->self)
		space_flush_discards(s);
}

/* munmap, madvise(DONTNEED/FREE/REMOVE): the pages are gone; so are their slots. */
void on_remove(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap)
{
	pthread_mutex_lock(&s->vm->lock);
	space_forget(s, start, end, unmap);
	pthread_mutex_unlock(&s->vm->lock);
}

struct move_ctx {
	struct vm_space *s;
	int64_t delta; /* pages */
};

static void move_page(void *arg, uint64_t pg, struct vpage *p)
{
	struct move_ctx *c = arg;
	struct vm_space *s = c->s;
	uint64_t to = pg + (uint64_t)c->delta;
	struct vpage *q = ptable_get(&s->pt, to, true);

	if (!q)
		return;
	space_unaside(s, p); /* a mapping moved: worth trying again */
	q->val = p->val & ~VP_ACTIVE;
	q->evicted_at = p->evicted_at;
	if (vp_kind(p) == VP_STAGED || (p->val & VP_BUSY))
		s->slot_owner[vp_payload(p)] = to;
	if (vp_kind(p) == VP_RESIDENT && !(p->val & VP_BUSY)) {
		if (p->val & VP_ACTIVE)
			s->nactive--;
		space_enqueue(s, to, q, p->val & VP_ACTIVE);
	}
	p->val = 0;
	p->qseq = 0;
}

/* mremap moved pages: their states (and slots) follow them. */
void on_remap(struct vm_space *s, uintptr_t from, uintptr_t to, uintptr_t len)
{
	struct move_ctx c = { s, (int64_t)(to / VM_PAGE) - (int64_t)(from / VM_PAGE) };

	pthread_mutex_lock(&s->vm->lock);
	if (to > from) /* walk away from the destination so nothing is moved twice */
		for (uint64_t pg = (from + len) / VM_PAGE; pg-- > from / VM_PAGE;) {
			struct vpage *p = ptable_get(&s->pt, pg, false);

			if (p && p->val)
				move_page(&c, pg, p);
		}
	else
		ptable_walk(&s->pt, from / VM_PAGE, (from + len) / VM_PAGE, move_page, &c);
	intervals_remove(&s->registered, from, from + len);
	intervals_add(&s->registered, to, to + len);
	pthread_mutex_unlock(&s->vm->lock);
}

struct fork_ctx {
	struct vm_space *parent, *child;
};

/* A page of the child's that cannot have its data: an access raises SIGBUS, counted. */
static void fork_lost(struct fork_ctx *c, struct vpage *q)
{
	vp_set(q, VP_SWAPPED, 0, LOST_SLOT);
	atomic_fetch_add(&c->parent->vm->st.swapin_errors, 1);
}

/* Give the child its own copy of page: stored under a slot of its own, or, if the engine
 * refuses it (the swap file full, or writeback off and the cache full), installed in the
 * child's memory (resident, uncharged like the rest of what it inherits); lost only if
 * the child cannot take it either (it is already gone). */
static void fork_copy(struct fork_ctx *c, uint64_t pg, struct vpage *q, const void *page)
{
	struct uzs_vm *vm = c->parent->vm;
	uzs_slot_t slot;

	if (uzs_swap_out(vm->uzs, vm->group, page, &slot) == 0)
		vp_set(q, VP_SWAPPED, 0, slot);
	else if (uffd_copy(c->child->uffd, pg_addr(pg), page, VM_PAGE) == VM_PAGE)
		vp_set(q, VP_RESIDENT, VP_UNCHARGED, 0);
	else
		fork_lost(c, q);
}

/* The child sees the parent's memory as it was: resident pages are the kernel's (shared
 * copy-on-write, not charged twice), swapped pages share their slot (one more
 * reference; a slot with the most references a slot can have is read and stored again
 * for the child), staged pages are stored for the child from the parent's staging.
 * Never silently zeros: a page whose data the child cannot get raises SIGBUS there. */
static void fork_page(void *arg, uint64_t pg, struct vpage *p)
{
	struct fork_ctx *c = arg;
	struct uzs *uzs = c->parent->vm->uzs;
	struct vpage *q = ptable_get(&c->child->pt, pg, true);
	unsigned char page[VM_PAGE];
	uzs_slot_t slot = vp_payload(p);
	int err;

	if (!q) {
		/* no memory for the child's table: what the kernel holds is the child's
		 * anyway; any other page is poisoned in the child at once (counted) */
		if (vp_kind(p) != VP_RESIDENT && vp_kind(p) != VP_NONE) {
			uffd_poison(c->child->uffd, pg_addr(pg), VM_PAGE);
			atomic_fetch_add(&c->parent->vm->st.swapin_errors, 1);
		}
		return;
	}
	switch (vp_kind(p)) {
	case VP_RESIDENT:
		vp_set(q, VP_RESIDENT, VP_UNCHARGED, 0);
		break;
	case VP_SWAPPED:
		err = slot == LOST_SLOT ? -ENODATA : uzs_dup(uzs, slot);
		if (err == 0)
			vp_set(q, VP_SWAPPED, 0, slot);
		/* the parent is not the slot's only holder (it has the most references), so
		 * this read takes nothing from it, even with exclusive loads */
		else if (err == -EOVERFLOW && uzs_swap_in(uzs, slot, page, 0) == 0)
			fork_copy(c, pg, q, page);
		else
			fork_lost(c, q);
		break;
	case VP_STAGED:
		if (space_read_staged(c->parent, (unsigned)slot, page) == 0)
			fork_copy(c, pg, q, page);
		else
			fork_lost(c, q);
		break;
	}
}

void on_fork(struct vm_space *parent, int child_fd)
{
	struct uzs_vm *vm = parent->vm;
	struct vm_space *child = space_new(vm, child_fd);
	struct fork_ctx c = { parent, child };

	if (!child) {
		close(child_fd); /* the child then reads zeros where pages were out: cannot
				  * happen short of memory exhaustion in this process */
		return;
	}
	fcntl(child_fd, F_SETFL, O_NONBLOCK);
	child->fork_parent = parent->pid;
	child->regions_only = parent->self || parent->regions_only;
	/* what it shares with its parent is charged once it has lived a while with an agent
	 * (adopt_inherited); a child without one (a raw fork system call) keeps it uncharged */
	child->forked_at_ns = now_ns();
	child->inherit_at_ns = child->forked_at_ns + FORK_GRACE_NS;
	pthread_mutex_lock(&vm->lock);
	/* pages in flight have no settled state to copy: let the eviction round finish */
	while (parent->evicting) {
		pthread_mutex_unlock(&vm->lock);
		usleep(100);
		pthread_mutex_lock(&vm->lock);
	}
	parent->forks_seen++;
	ptable_walk(&parent->pt, 0, UINT64_MAX, fork_page, &c);
	for (size_t i = 0; i < parent->registered.n; i++)
		intervals_add(&child->registered, parent->registered.v[i].start,
			      parent->registered.v[i].end);
	for (size_t i = 0; i < parent->excluded.n; i++)
		intervals_add(&child->excluded, parent->excluded.v[i].start,
			      parent->excluded.v[i].end);
	if (space_add(vm, child) < 0) {
		pthread_mutex_unlock(&vm->lock);
		space_free(child);
		return;
	}
	pthread_mutex_unlock(&vm->lock);
}
