/* SPDX-License-Identifier: MIT */
/*
 * vm_space — a managed process's record: creating and freeing one, its staging slots,
 * reading a staged page. Apart from vm.c so that the fault path, the events and the
 * lifecycle share one place for them (space_charge and space_enqueue, per page, are
 * inline in vm_internal.h).
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- spaces ---- */

struct vm_space *space_new(struct uzs_vm *vm, int uffd)
{
	struct vm_space *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (ptable_init(&s->pt)) {
		free(s);
		return NULL;
	}
	s->vm = vm;
	s->uffd = uffd;
	s->staging_uffd = -1;
	s->sock = -1;
	return s;
}

int space_setup_staging(struct vm_space *s, uintptr_t base, unsigned slots)
{
	if (!slots || slots > AGENT_STAGING_SLOTS)
		return -EINVAL;
	s->slot_owner = calloc(slots, sizeof(*s->slot_owner));
	s->slot_free = calloc((slots + 63) / 64, sizeof(*s->slot_free));
	s->discard = malloc(slots * sizeof(*s->discard));
	if (!s->slot_owner || !s->slot_free || !s->discard)
		return -ENOMEM;
	s->staging = base;
	s->staging_slots = slots;
	for (unsigned i = 0; i < slots; i++)
		staging_give(s, i);
	return intervals_add(&s->excluded, base, base + (uintptr_t)slots * VM_PAGE);
}

/* Slots go out in address order from a cursor that moves on, so consecutive victims get
 * consecutive slots and their moves, and later their discards, are one call a stretch. */
uint32_t staging_take(struct vm_space *s)
{
	unsigned words = (s->staging_slots + 63) / 64, w = s->slot_cursor / 64;
	uint64_t bits = s->slot_free[w] & (~0ull << (s->slot_cursor % 64));
	uint32_t slot;

	while (!bits) {
		w = (w + 1) % words;
		bits = s->slot_free[w];
	}
	slot = w * 64 + (unsigned)__builtin_ctzll(bits);
	s->slot_free[w] &= ~(1ull << (slot % 64));
	s->nfree--;
	s->slot_cursor = slot + 1 < s->staging_slots ? slot + 1 : 0;
	return slot;
}

void staging_give(struct vm_space *s, uint32_t slot)
{
	s->slot_free[slot / 64] |= 1ull << (slot % 64);
	s->nfree++;
}

/* Give back everything a space holds: slots freed, charges dropped. */
static void release_page(void *arg, uint64_t pg, struct vpage *p)
{
	struct vm_space *s = arg;

	(void)pg;
	if (vp_kind(p) == VP_SWAPPED && vp_payload(p) != LOST_SLOT)
		uzs_free(s->vm->uzs, vp_payload(p));
	space_unaside(s, p);
	p->val = 0;
}

void space_free(struct vm_space *s)
{
	struct uzs_vm *vm = s->vm;

	ptable_walk(&s->pt, 0, UINT64_MAX, release_page, s);
	space_charge(s, -s->charged);
	if (s->uffd >= 0) {
		epoll_ctl(vm->epfd, EPOLL_CTL_DEL, s->uffd, NULL);
		close(s->uffd);
	}
	if (s->staging_uffd >= 0)
		close(s->staging_uffd);
	if (s->sock >= 0)
		close(s->sock);
	if (s->self && s->staging)
		munmap((void *)s->staging, (size_t)s->staging_slots * VM_PAGE);
	ptable_destroy(&s->pt);
	fifo_free(&s->inactive);
	fifo_free(&s->active);
	fifo_free(&s->staged);
	fifo_free(&s->aside);
	free(s->slot_owner);
	free(s->slot_free);
	free(s->discard);
	free(s->registered.v);
	free(s->excluded.v);
	free(s);
}

int space_add(struct uzs_vm *vm, struct vm_space *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };

	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, s->uffd, &ev) < 0)
		return -errno;
	s->next = vm->spaces;
	vm->spaces = s;
	return 0;
}

int space_read_staged(struct vm_space *s, unsigned slot, void *buf)
{
	uintptr_t at = s->staging + (uintptr_t)slot * VM_PAGE;
	struct iovec local = { buf, VM_PAGE }, remote = { (void *)at, VM_PAGE };

	if (s->self) {
		memcpy(buf, (void *)at, VM_PAGE);
		return 0;
	}
	return process_vm_readv(s->pid, &local, 1, &remote, 1, 0) == VM_PAGE ? 0 : -EIO;
}
