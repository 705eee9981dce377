/* SPDX-License-Identifier: MIT */
/*
 * vm_selffork — forks of this process (the library's own, not a managed child's): the
 * live vms, quiescing their fault threads around the fork, and the stash they read into
 * meanwhile. Not vm_fork.c, which trims a forked child's record at its hello.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- forks of this process ----
 * The C library's fork holds its malloc locks across the system call, and the kernel
 * keeps the forking thread in the call until the fork event is read. The fault thread
 * must then read it without malloc, or any lock a thread stuck in malloc may hold
 * (vm->lock, the engine's): it would wait for the fork, the fork for it. So a fork of
 * this process is announced first (a pthread_atfork handler, which runs before those
 * locks are taken), and until it is done the fault thread only reads what the
 * descriptors hold into a stash mapped with mmap; it handles it all afterwards. */

static pthread_mutex_t live_vms_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uzs_vm *live_vms;

void live_add(struct uzs_vm *vm)
{
	pthread_mutex_lock(&live_vms_lock);
	vm->next_live = live_vms;
	live_vms = vm;
	pthread_mutex_unlock(&live_vms_lock);
}

void live_remove(struct uzs_vm *vm)
{
	pthread_mutex_lock(&live_vms_lock);
	for (struct uzs_vm **pp = &live_vms; *pp; pp = &(*pp)->next_live)
		if (*pp == vm) {
			*pp = vm->next_live;
			break;
		}
	pthread_mutex_unlock(&live_vms_lock);
}

void vm_forks_quiesce_all(void)
{
	pthread_mutex_lock(&live_vms_lock); /* until resume: no vm comes or goes meanwhile */
	for (struct uzs_vm *vm = live_vms; vm; vm = vm->next_live) {
		unsigned req = atomic_fetch_add(&vm->fork_req, 1) + 1; /* odd: quiet */

		vm_kick_faults(vm);
		while (atomic_load(&vm->fork_ack) != req)
			usleep(20);
	}
}

void vm_forks_resume_all(void)
{
	for (struct uzs_vm *vm = live_vms; vm; vm = vm->next_live) {
		atomic_fetch_add(&vm->fork_req, 1);
		vm_kick_faults(vm);
	}
	pthread_mutex_unlock(&live_vms_lock);
}

/* In the child: the vms' threads stayed in the parent. */
void vm_forks_forget_all(void)
{
	pthread_mutex_init(&live_vms_lock, NULL);
	live_vms = NULL;
}

static bool stash_grow(struct uzs_vm *vm)
{
	size_t cap = vm->stash_cap * 2;
	void *p = mremap(vm->stash, vm->stash_cap * sizeof(*vm->stash), cap * sizeof(*vm->stash),
			 MREMAP_MAYMOVE);

	if (p == MAP_FAILED)
		return false;
	vm->stash = p;
	vm->stash_cap = cap;
	return true;
}

static void stash_space(struct uzs_vm *vm, struct vm_space *s)
{
	struct uffd_msg msgs[64];
	ssize_t n;

	while ((vm->nstash + 64 <= vm->stash_cap || stash_grow(vm)) &&
	       (n = read(s->uffd, msgs, sizeof(msgs))) > 0)
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			vm->stash[vm->nstash++] = (struct stashed_msg){ s, msgs[i] };
}

/* What was read during the fork, as one read: its events first, then its faults. */
static unsigned handle_stash(struct uzs_vm *vm)
{
	size_t n = vm->nstash;

	for (size_t i = 0; i < n; i++)
		if (vm->stash[i].msg.event != UFFD_EVENT_PAGEFAULT)
			handle_msg(vm->stash[i].space, &vm->stash[i].msg);
	for (size_t i = 0; i < n; i++)
		if (vm->stash[i].msg.event == UFFD_EVENT_PAGEFAULT)
			handle_msg(vm->stash[i].space, &vm->stash[i].msg);
	vm->nstash = 0;
	return (unsigned)n;
}

unsigned quiet_during_fork(struct uzs_vm *vm, unsigned req)
{
	struct epoll_event evs[32];

	atomic_store(&vm->fork_ack, req);
	while (atomic_load(&vm->fork_req) == req) {
		int n = epoll_wait(vm->epfd, evs, 32, 10);

		for (int i = 0; i < n; i++) {
			uint64_t v;

			if (evs[i].data.ptr)
				stash_space(vm, evs[i].data.ptr);
			else if (read(vm->kick_fd, &v, sizeof(v)) < 0) {
				/* nothing to clear */
			}
		}
	}
	return handle_stash(vm);
}
