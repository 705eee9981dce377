/* SPDX-License-Identifier: MIT */
/*
 * vm — the transparent mode's lifecycle: starting and stopping a uzs_vm and its threads,
 * the regions API, attaching remote processes, the stats. The fault thread itself is in
 * vm_fault.c, the program's memory events in vm_events.c, spaces in vm_space.c.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uffd.h"

void vm_kick_faults(struct uzs_vm *vm)
{
	uint64_t one = 1;

	if (write(vm->kick_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is already due to wake */
	}
}

/* ---- lifecycle ---- */

static int self_space(struct uzs_vm *vm)
{
	int a = uffd_open_kernel_mode(), b = a < 0 ? a : uffd_open_kernel_mode();
	size_t bytes = (size_t)AGENT_STAGING_SLOTS * VM_PAGE;
	void *staging;
	int r;

	if (b < 0) {
		if (a >= 0)
			close(a);
		return b;
	}
	staging = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (staging == MAP_FAILED || !(vm->self = space_new(vm, a))) {
		if (staging != MAP_FAILED)
			munmap(staging, bytes);
		close(a);
		close(b);
		return -ENOMEM;
	}
	vm->self->self = true;
	vm->self->pid = getpid();
	vm->self->staging_uffd = b;
	vm->self->staging = (uintptr_t)staging;
	vm->self->staging_slots = AGENT_STAGING_SLOTS;
	vm->self->forks_seen = vm->self->forks_made = vm_self_forks();
	if ((r = uffd_handshake(a, UFFD_MANAGED_FEATURES)) < 0 ||
	    (r = uffd_handshake(b, UFFD_STAGING_FEATURES)) < 0 ||
	    (r = uffd_register_missing(b, (uintptr_t)staging, bytes)) < 0 ||
	    (r = space_setup_staging(vm->self, (uintptr_t)staging, AGENT_STAGING_SLOTS)) < 0 ||
	    (r = space_add(vm, vm->self)) < 0) {
		space_free(vm->self);
		vm->self = NULL;
		return r;
	}
	return 0;
}

static int vm_alloc(struct uzs *uzs, struct uzs_group *group, struct uzs_vm **out)
{
	struct uzs_vm *vm = calloc(1, sizeof(*vm));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	pthread_condattr_t mono;

	if (!vm)
		return -ENOMEM;
	vm->uzs = uzs;
	vm->group = group;
	vm->epfd = epoll_create1(EPOLL_CLOEXEC);
	vm->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->buf = aligned_alloc(VM_PAGE, (size_t)RA_MAX * VM_PAGE);
	vm->zero = aligned_alloc(VM_PAGE, (size_t)ZERO_AROUND * VM_PAGE);
	vm->evict_buf = aligned_alloc(VM_PAGE, (size_t)EVICT_BATCH * VM_PAGE);
	/* A thread has at most one message out (it waits for the answer), so this is room
	 * for 65,536 threads' worth during a fork, where growing could fail and nothing could
	 * be read any more; reserved only, 2.5 MiB of address space, touched as it fills. */
	vm->stash_cap = 65536;
	vm->stash = mmap(NULL, vm->stash_cap * sizeof(*vm->stash), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	vm->high_pages = 64;
	vm->agent_listen = vm->listen_stop = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->listen_lock, NULL);
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->evict_cond, &mono);
	pthread_condattr_destroy(&mono);
	pthread_cond_init(&vm->sync_cond, NULL);
	*out = vm;
	if (vm->stash == MAP_FAILED)
		vm->stash = NULL;
	if (vm->epfd < 0 || vm->kick_fd < 0 || !vm->buf || !vm->zero || !vm->evict_buf || !vm->stash ||
	    epoll_ctl(vm->epfd, EPOLL_CTL_ADD, vm->kick_fd, &ev) < 0)
		return -ENOMEM;
	memset(vm->zero, 0, (size_t)ZERO_AROUND * VM_PAGE);
	return 0;
}

static void vm_free(struct uzs_vm *vm)
{
	while (vm->spaces) {
		struct vm_space *s = vm->spaces;

		vm->spaces = s->next;
		space_free(s);
	}
	if (vm->epfd >= 0)
		close(vm->epfd);
	if (vm->kick_fd >= 0)
		close(vm->kick_fd);
	vm_children_stop(vm);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->listen_lock);
	pthread_cond_destroy(&vm->evict_cond);
	pthread_cond_destroy(&vm->sync_cond);
	free(vm->pending);
	free(vm->buf);
	free(vm->zero);
	free(vm->evict_buf);
	if (vm->stash)
		munmap(vm->stash, vm->stash_cap * sizeof(*vm->stash));
	free(vm);
}

/* The vm's threads take no signals: the program's handlers are for its own threads (and
 * one that forked, or took a lock of ours, on the fault thread would deadlock it). */
int vm_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

/* Where the vm's threads run. A fault is a round trip: the faulting thread sleeps, the
 * fault thread serves it and wakes it. That is cheapest when both are on one CPU (a wake-up
 * without an interrupt to another CPU), and the scheduler puts the woken thread there when
 * the other CPUs are busy, which they are with eviction when eviction keeps off the fault
 * thread's CPU. So with pinning the fault thread has the last CPU the caller may use and
 * the eviction thread the others; the program's threads are left alone (bench/README.md,
 * "Transparent mode": the random workload 7% faster). Without, or with one CPU, both may run on
 * any the caller may use. */
int uzs_vm_pin_threads(struct uzs_vm *vm, bool pin)
{
	cpu_set_t allowed, fault_cpus, evict_cpus;
	int last = -1, r;

	if (!vm || vm->owner != getpid())
		return -EINVAL;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return -errno;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed))
			last = cpu;
	fault_cpus = evict_cpus = allowed;
	if (pin && CPU_COUNT(&allowed) > 1) {
		CPU_ZERO(&fault_cpus);
		CPU_SET(last, &fault_cpus);
		CPU_CLR(last, &evict_cpus);
	}
	if ((r = pthread_setaffinity_np(vm->fault_thread, sizeof(fault_cpus), &fault_cpus)) ||
	    (r = pthread_setaffinity_np(vm->evict_thread, sizeof(evict_cpus), &evict_cpus)))
		return -r;
	return 0;
}

int uzs_vm_start(struct uzs *uzs, struct uzs_group *group, struct uzs_vm **out)
{
	struct uzs_vm *vm = NULL;
	int r;

	if (!uzs || !out)
		return -EINVAL;
	if ((r = vm_alloc(uzs, group, &vm)) < 0 || (r = self_space(vm)) < 0)
		goto fail;
	vm->owner = getpid();
	if ((r = vm_thread_start(&vm->fault_thread, fault_main, vm)) < 0)
		goto fail;
	if ((r = vm_thread_start(&vm->evict_thread, evict_main, vm)) < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->stop = true;
		pthread_mutex_unlock(&vm->lock);
		vm_kick_faults(vm);
		pthread_join(vm->fault_thread, NULL);
		goto fail;
	}
	live_add(vm);
	uzs_vm_pin_threads(vm, true); /* a speed-up only: a failure leaves them unpinned */
	*out = vm;
	return 0;
fail:
	if (vm)
		vm_free(vm);
	return r;
}

void uzs_vm_stop(struct uzs_vm *vm)
{
	/* In a forked child, the parent's vm: its threads are not here, and its descriptor
	 * numbers may be the child's own by now. Nothing to do. */
	if (!vm || vm->owner != getpid())
		return;
	live_remove(vm);
	vm_children_stop(vm); /* first: a hello is answered with the threads' help */
	pthread_mutex_lock(&vm->lock);
	vm->stop = true;
	pthread_cond_signal(&vm->evict_cond);
	pthread_mutex_unlock(&vm->lock);
	vm_kick_faults(vm);
	pthread_join(vm->evict_thread, NULL);
	pthread_join(vm->fault_thread, NULL);
	vm_free(vm);
}

int uzs_region_create(struct uzs_vm *vm, size_t bytes, void **out)
{
	size_t len = (bytes + VM_PAGE - 1) & ~(size_t)(VM_PAGE - 1);
	void *p;
	int r;

	if (!vm || !out || !len)
		return -EINVAL;
	/* Its forked children get agents from now on (not before: a process without regions
	 * has no fork events to match their hellos with). Without one (lack of resources, a
	 * raw fork system call, two vms with regions at once) a child's pages stay resident
	 * and uncharged. */
	pthread_mutex_lock(&vm->listen_lock);
	if (vm_children_listen(vm) < 0) {
		/* as said */
	}
	pthread_mutex_unlock(&vm->listen_lock);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	pthread_mutex_lock(&vm->lock);
	r = uffd_register_missing(vm->self->uffd, (uintptr_t)p, len);
	if (!r)
		r = intervals_add(&vm->self->registered, (uintptr_t)p, (uintptr_t)p + len);
	pthread_mutex_unlock(&vm->lock);
	if (r) {
		munmap(p, len);
		return r;
	}
	*out = p;
	return 0;
}

static bool any_evicting(struct uzs_vm *vm)
{
	if (vm->shrinking)
		return true;
	for (struct vm_space *s = vm->spaces; s; s = s->next)
		if (s->evicting)
			return true;
	return false;
}

void vm_sync_events(struct uzs_vm *vm)
{
	uint64_t req;

	pthread_mutex_lock(&vm->lock);
	req = ++vm->sync_req;
	pthread_mutex_unlock(&vm->lock);
	vm_kick_faults(vm);
	pthread_mutex_lock(&vm->lock);
	while (vm->sync_done < req && !vm->stop)
		pthread_cond_wait(&vm->sync_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void uzs_vm_sync(struct uzs_vm *vm)
{
	vm_sync_events(vm);
	pthread_mutex_lock(&vm->lock);
	/* and the eviction round or writeback in flight: pages it was compressing (or
	 * writing) when they were unmapped are only let go when it settles */
	while (any_evicting(vm)) {
		pthread_mutex_unlock(&vm->lock);
		usleep(200);
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
}

int uzs_region_destroy(struct uzs_vm *vm, void *addr, size_t bytes)
{
	size_t len = (bytes + VM_PAGE - 1) & ~(size_t)(VM_PAGE - 1);

	if (!vm || !addr || ((uintptr_t)addr & (VM_PAGE - 1)))
		return -EINVAL;
	if (munmap(addr, len) < 0)
		return -errno;
	/* munmap returns once the fault thread has read the unmap event; wait until it has
	 * also freed the slots, so the caller sees the memory given back */
	uzs_vm_sync(vm);
	return 0;
}

/* The space a fork event made for a child saying hello: its parent's first fork event
 * handled after the child's fork began (events are handled in order; an earlier one may
 * be a raw clone's, which never says hello, a later one a sibling's). */
static int find_forked(struct uzs_vm *vm, const struct vm_remote *r, struct vm_space **out)
{
	struct vm_space *s = NULL;

	for (struct vm_space *c = vm->spaces; c; c = c->next)
		if (!c->dead && c->fork_parent == r->fork_parent && !c->pid &&
		    c->forked_at_ns >= r->forked_after_ns &&
		    (!s || c->forked_at_ns < s->forked_at_ns))
			s = c;
	if (!s)
		return -EAGAIN;
	if (r->uffd >= 0)
		close(r->uffd); /* the fork event brought its descriptor */
	*out = s;
	return 0;
}

static int add_remote(struct uzs_vm *vm, const struct vm_remote *r, struct vm_space **out)
{
	struct vm_space *s;
	int err;

	fcntl(r->uffd, F_SETFL, O_NONBLOCK);
	if (!(s = space_new(vm, r->uffd))) {
		close(r->uffd);
		return -ENOMEM;
	}
	if ((err = uffd_handshake(r->uffd, UFFD_MANAGED_FEATURES)) < 0 ||
	    (err = space_add(vm, s)) < 0) {
		space_free(s);
		return err;
	}
	*out = s;
	return 0;
}

/* With the go-ahead a forked child gets its own userfaultfd (uffd >= 0), the one its fork
 * event brought: held only here, it would be released if this process died, and the
 * kernel would then fill the child's missing pages with zeros before its agent could end
 * it; held by the child too, its faults wait until the agent does. */
static void answer_agent(int sock, int32_t answer, int uffd)
{
	struct iovec io = { &answer, sizeof(answer) };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1 };

	if (uffd >= 0 && answer == 0) {
		struct cmsghdr *c;

		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	}
	if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0) {
		/* it is gone: its hang-up ends its space */
	}
}

/* The space stays pinned (not reaped: the process may end meanwhile) until the answer is
 * sent, and is given the agent's socket (which makes it evictable) only then. */
int vm_attach_remote(struct uzs_vm *vm, const struct vm_remote *r)
{
	struct vm_space *s = NULL;
	int err;

	pthread_mutex_lock(&vm->lock);
	err = r->fork_parent ? find_forked(vm, r, &s) : add_remote(vm, r, &s);
	if (err == -EAGAIN) {
		pthread_mutex_unlock(&vm->lock);
		return err;
	}
	if (!err && !(err = space_setup_staging(s, r->staging, r->staging_slots)))
		err = intervals_add(&s->excluded, r->stack, r->stack + r->stack_len);
	if (err) {
		if (s && !r->fork_parent)
			s->dead = true; /* (a forked child keeps its space: its faults need it) */
		pthread_mutex_unlock(&vm->lock);
		answer_agent(r->sock, err, -1);
		close(r->sock);
		return err;
	}
	s->pid = r->pid;
	s->pins++;
	pthread_mutex_unlock(&vm->lock);
	if (r->fork_parent)
		vm_fork_trim(vm, s);
	err = vm_scan_maps(vm, s);
	/* the go-ahead, or the agent ends its process */
	answer_agent(r->sock, err, r->fork_parent ? s->uffd : -1);
	pthread_mutex_lock(&vm->lock);
	s->pins--;
	s->sock = r->sock; /* only now: a request before the go-ahead would be read as it */
	pthread_mutex_unlock(&vm->lock);
	return err;
}

bool vm_manages_pid(struct uzs_vm *vm, pid_t pid)
{
	bool found = false;

	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s && !found; s = s->next)
		found = s->pid == pid || s->fork_parent == pid;
	pthread_mutex_unlock(&vm->lock);
	return found;
}

void vm_count_refused_agent(struct uzs_vm *vm)
{
	atomic_fetch_add(&vm->st.agents_refused, 1);
}

void vm_signal_processes(struct uzs_vm *vm, int sig, pid_t except)
{
	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s; s = s->next)
		if (!s->dead && !s->self && s->pid > 0 && s->pid != except)
			kill(s->pid, sig);
	pthread_mutex_unlock(&vm->lock);
}

unsigned vm_live_spaces(struct uzs_vm *vm)
{
	unsigned n = 0;

	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s; s = s->next)
		n += !s->dead && !s->self;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

static void get_unmovable(struct uzs_vm *vm, struct uzs_vm_stats *st)
{
	uint64_t *now[] = { &st->unmovable_readonly, &st->unmovable_locked, &st->unmovable_pinned,
			    &st->unmovable_other };
	uint64_t *peak[] = { &st->unmovable_readonly_peak, &st->unmovable_locked_peak,
			     &st->unmovable_pinned_peak, &st->unmovable_other_peak };

	for (unsigned i = 0; i < UNMOVABLE_REASONS; i++) {
		long n = atomic_load(&vm->st.unmovable[i]);

		*now[i] = n > 0 ? (uint64_t)n : 0;
		*peak[i] = (uint64_t)atomic_load(&vm->st.unmovable_peak[i]);
		st->unmovable_pages += *now[i];
	}
	st->unmovable_peak_pages = (uint64_t)atomic_load(&vm->st.unmovable_total_peak);
}

/* The memory uzswap keeps in: set aside as unmovable, or brought back for a tracer. */
static int print_kept_in(const struct uzs_vm_stats *st, FILE *out)
{
	return fprintf(out,
		       "unmovable_pages %llu\nunmovable_peak_pages %llu\n"
		       "unmovable_readonly %llu\nunmovable_locked %llu\nunmovable_pinned %llu\n"
		       "unmovable_other %llu\nunmovable_readonly_peak %llu\n"
		       "unmovable_locked_peak %llu\nunmovable_pinned_peak %llu\n"
		       "unmovable_other_peak %llu\ntraced_processes %llu\ntraced_attaches %llu\n"
		       "traced_pages_in %llu\n",
		       (unsigned long long)st->unmovable_pages,
		       (unsigned long long)st->unmovable_peak_pages,
		       (unsigned long long)st->unmovable_readonly,
		       (unsigned long long)st->unmovable_locked,
		       (unsigned long long)st->unmovable_pinned,
		       (unsigned long long)st->unmovable_other,
		       (unsigned long long)st->unmovable_readonly_peak,
		       (unsigned long long)st->unmovable_locked_peak,
		       (unsigned long long)st->unmovable_pinned_peak,
		       (unsigned long long)st->unmovable_other_peak, (unsigned long long)st->traced,
		       (unsigned long long)st->traced_attaches,
		       (unsigned long long)st->traced_pages_in) < 0 ? -EIO : 0;
}

void uzs_vm_get_stats(struct uzs_vm *vm, struct uzs_vm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->faults = atomic_load(&vm->st.faults);
	st->zero_fills = atomic_load(&vm->st.zero_fills);
	st->swapins = atomic_load(&vm->st.swapins);
	st->staged_refaults = atomic_load(&vm->st.staged_refaults);
	st->readahead_pages = atomic_load(&vm->st.readahead_pages);
	st->evicted = atomic_load(&vm->st.evicted);
	st->evict_shared = atomic_load(&vm->st.evict_shared);
	st->waits = atomic_load(&vm->st.waits);
	st->budget_overruns = atomic_load(&vm->st.budget_overruns);
	st->swapin_errors = atomic_load(&vm->st.swapin_errors);
	st->pages_lost = atomic_load(&vm->st.pages_lost);
	st->adopted = atomic_load(&vm->st.adopted);
	st->agents_refused = atomic_load(&vm->st.agents_refused);
	st->traced_attaches = atomic_load(&vm->st.traced_attaches);
	st->traced_pages_in = atomic_load(&vm->st.traced_pages_in);
	get_unmovable(vm, st);
	pthread_mutex_lock(&vm->lock);
	vm_balance_stats(vm, st);
	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		st->resident_pages += (uint64_t)s->charged;
		st->staged_pages += (uint64_t)s->nstaged;
		st->spaces += !s->dead && !s->self;
		st->traced += !s->dead && s->traced;
	}
	pthread_mutex_unlock(&vm->lock);
}

int uzs_vm_print_stats(struct uzs_vm *vm, FILE *out)
{
	struct uzs_vm_stats st;

	uzs_vm_get_stats(vm, &st);
	return fprintf(out,
		       "faults %llu\nzero_fills %llu\nswapin_pages %llu\nstaged_refaults %llu\n"
		       "readahead_pages %llu\nevicted_pages %llu\nevict_shared %llu\nwaits %llu\n"
		       "budget_overruns %llu\nswapin_errors %llu\npages_lost %llu\nadopted %llu\n"
		       "resident_pages %llu\n"
		       "staged_pages %llu\nprocesses %llu\nagents_refused %llu\n"
		       "pool_target %llu\npool_refaults %llu\nfile_refaults %llu\n"
		       "staged_cost_us %.1f\npool_cost_us %.1f\nfile_cost_us %.1f\n"
		       "balance_shrinks %llu\nbalance_grows %llu\n",
		       (unsigned long long)st.faults, (unsigned long long)st.zero_fills,
		       (unsigned long long)st.swapins, (unsigned long long)st.staged_refaults,
		       (unsigned long long)st.readahead_pages, (unsigned long long)st.evicted,
		       (unsigned long long)st.evict_shared, (unsigned long long)st.waits,
		       (unsigned long long)st.budget_overruns, (unsigned long long)st.swapin_errors,
		       (unsigned long long)st.pages_lost, (unsigned long long)st.adopted,
		       (unsigned long long)st.resident_pages, (unsigned long long)st.staged_pages,
		       (unsigned long long)st.spaces, (unsigned long long)st.agents_refused,
		       (unsigned long long)st.pool_target, (unsigned long long)st.pool_refaults,
		       (unsigned long long)st.file_refaults, st.staged_cost_ns / 1e3,
		       st.pool_cost_ns / 1e3, st.file_cost_ns / 1e3,
		       (unsigned long long)st.balance_shrinks,
		       (unsigned long long)st.balance_grows) < 0
		       ? -EIO : print_kept_in(&st, out);
}
