/* SPDX-License-Identifier: MIT */
/*
 * vm_fault — the fault thread: its loop, waiting for and reading messages, and serving
 * missing-page faults (zeros, pages from the engine, pages still in staging, readahead
 * streams, faults waiting for room). Apart from vm.c as the hot path; the events a
 * message may carry are handled in vm_events.c, quiet forks in vm_selffork.c.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"
#include "fault.h"
#include "uffd.h"

#define FAULT_SPIN_NS 50000ull /* how long the fault thread looks before sleeping */
#define HOT_TURNS 8 /* reads of the last faulting space per look at all of them */
#define PENDING_PATIENCE_NS 1000000000ull /* a fault waits at most this long for room */

/* ---- serving a fault ---- */

enum { SERVED, DEFER };

static void mark_resident(struct vm_space *s, uint64_t pg, unsigned n, bool active)
{
	for (unsigned i = 0; i < n; i++) {
		struct vpage *p = ptable_get(&s->pt, pg + i, true);

		if (!p)
			continue;
		vp_set(p, VP_RESIDENT, 0, 0);
		space_enqueue(s, pg + i, p, active);
	}
	space_charge(s, n);
}

/* How many pages from pg on are in state kind, up to max (a sequential fault's window),
 * never past the registered range pg is in: UFFDIO_COPY accepts any range registered
 * with some userfaultfd, so a window running on into a neighbour registered by another
 * (the staging range, say) would install pages there. */
static unsigned window_of(struct vm_space *s, uint64_t pg, unsigned kind, unsigned max)
{
	uintptr_t end = intervals_end_at(&s->registered, pg_addr(pg));
	uint64_t left = end > pg_addr(pg) ? (end - pg_addr(pg)) / VM_PAGE : 1;
	unsigned n = 1;

	if (left < max)
		max = (unsigned)left;
	while (n < max) {
		struct vpage *p = ptable_get(&s->pt, pg + n, false);

		if ((p ? vp_kind(p) : VP_NONE) != kind || (p && (p->val & VP_BUSY)))
			break;
		n++;
	}
	return n;
}

/* What keeping a stream is worth: its window, or nothing once it has not been continued
 * for a while (a stream that ended). */
static unsigned stream_worth(const struct vm_space *s, const struct stream *st)
{
	return s->fault_count - st->used > RA_STREAM_IDLE ? 0 : st->window;
}

/* The stream a fault at pg continues (it comes where one's last window ended), or a new
 * one in place of the stream worth least: random faults then churn one slot among them,
 * leaving the streams that have grown. */
static struct stream *stream_at(struct vm_space *s, uint64_t pg)
{
	struct stream *victim = &s->streams[0];
	unsigned least = UINT_MAX;

	s->fault_count++;
	for (unsigned i = 0; i < RA_STREAMS; i++) {
		struct stream *st = &s->streams[i];
		unsigned worth = stream_worth(s, st);

		if (st->window && st->end == pg) {
			st->used = s->fault_count;
			s->ra_hits_above += st->probe;
			st->probe = false;
			return st;
		}
		if (st->probe && st->end == pg + 2) { /* the page below a probe's */
			s->ra_hits_below++;
			st->probe = false;
		}
		if (worth < least) {
			least = worth;
			victim = st;
		}
	}
	victim->window = 0;
	victim->probe = false;
	victim->used = s->fault_count;
	return victim;
}

/* Each fault that continues a stream doubles its window (up to max); a fault that
 * continues none starts a stream with a window of first pages. */
static unsigned ahead(struct stream *st, unsigned max, unsigned first)
{
	st->window = st->window ? (st->window * 2 > max ? max : st->window * 2) : first;
	return st->window;
}

/* Which pages a stream a swap-in starts brings: the faulting page, and a neighbour too
 * while faults have mostly come for that neighbour next. That is an object straddling two
 * pages (a page-sized object behind malloc's header, say, read from either end first),
 * for which the kernel's swap readahead reads a cluster around every swap-in. A fault
 * round trip costs far more than a page read in for nothing, so a quarter of neighbours
 * used is worth it. Measured on the streams started with one page (probes): all of them
 * while no neighbour is read, one in RA_PROBE_EVERY while one is; a probe is a hit when
 * the page above or below faults before other streams push it out. Pure random faults
 * keep one page. */
static int swapin_side(struct vm_space *s, struct stream *st)
{
	uint32_t above = s->ra_hits_above, below = s->ra_hits_below;
	int side;

	if (st->window)
		return RA_ABOVE; /* a stream going on: its window doubles instead */
	side = s->ra_probes < RA_PROBE_MIN ? RA_ALONE
	       : above >= below && above * 4 >= s->ra_probes ? RA_ABOVE
	       : below * 4 >= s->ra_probes ? RA_BELOW : RA_ALONE;
	if (side != RA_ALONE && ++s->ra_starts % RA_PROBE_EVERY)
		return side;
	st->probe = true;
	if (++s->ra_probes >= RA_PROBE_DECAY) {
		s->ra_probes /= 2;
		s->ra_hits_above /= 2;
		s->ra_hits_below /= 2;
	}
	return RA_ALONE;
}

/* Install n pages from buf at pg: all in one call when they lie in one mapping, else
 * page by page. Returns how many were installed from the first on; *err says why the
 * next one was not (-EAGAIN: a memory event is pending, read it first and retry). */
static unsigned install(struct vm_space *s, uint64_t pg, const unsigned char *buf, unsigned n,
			long *err)
{
	long r = uffd_copy(s->uffd, pg_addr(pg), buf, (uintptr_t)n * VM_PAGE);
	unsigned done = r > 0 ? (unsigned)(r / VM_PAGE) : 0;

	*err = 0;
	while (done < n) {
		r = uffd_copy(s->uffd, pg_addr(pg + done), buf + (size_t)done * VM_PAGE, VM_PAGE);
		if (r != VM_PAGE) {
			*err = r < 0 ? r : -EAGAIN;
			break;
		}
		done++;
	}
	return done;
}

static int serve_zero(struct vm_space *s, uint64_t pg)
{
	struct uzs_vm *vm = s->vm;
	struct stream *st = stream_at(s, pg);
	unsigned n = window_of(s, pg, VP_NONE, ahead(st, ZERO_AROUND, 1));
	long room = vm_headroom_pages(vm), err;

	if ((long)n > room)
		n = room > 1 ? (unsigned)room : 1;
	n = install(s, pg, vm->zero, n, &err);
	if (!n && err == -EAGAIN)
		return DEFER;
	if (!n) { /* there already (another thread's fault), or the mapping went away */
		uffd_wake(s->uffd, pg_addr(pg), VM_PAGE);
		return SERVED;
	}
	mark_resident(s, pg, n, false);
	st->end = pg + n;
	atomic_fetch_add(&vm->st.zero_fills, n);
	return SERVED;
}

/* A page touched again soon after it left is part of the working set: the refault
 * distance (evictions since it left) is shorter than the active list may grow. */
static bool refault_is_hot(struct vm_space *s, const struct vpage *p)
{
	uint32_t distance = s->vm->evict_clock - p->evicted_at;
	long budget = vm_headroom_pages(s->vm) + s->charged;

	return distance < (uint32_t)(budget > 0 ? budget / 2 : 0);
}

/* Pages decompressed but not installed (a pending event, the mapping changed): stored
 * again, so nothing is lost; the fault is retried after the event. A page the engine
 * refuses (the swap file full, or the group's writeback off and the cache full) is
 * installed where it is, over the budget, if the mapping takes it now; failing that it is
 * lost, and an access raises SIGBUS (counted), never reads zeros. */
static void restore_pages(struct vm_space *s, uint64_t pg, unsigned from, unsigned n)
{
	struct uzs_vm *vm = s->vm;

	for (unsigned i = from; i < n; i++) {
		struct vpage *p = ptable_get(&s->pt, pg + i, false);
		const unsigned char *page = vm->buf + (size_t)i * VM_PAGE;
		uzs_slot_t slot;

		if (uzs_swap_out(vm->uzs, vm->group, page, &slot) == 0) {
			vp_set(p, VP_SWAPPED, 0, slot);
		} else if (uffd_copy(s->uffd, pg_addr(pg + i), page, VM_PAGE) == VM_PAGE) {
			mark_resident(s, pg + i, 1, false);
			atomic_fetch_add(&vm->st.budget_overruns, 1);
		} else {
			vp_set(p, VP_SWAPPED, 0, LOST_SLOT);
			atomic_fetch_add(&vm->st.swapin_errors, 1);
		}
	}
}

/* The page below pg can come in with it: swapped, not in flight, and in pg's range. */
static bool below_swapped(struct vm_space *s, uint64_t pg)
{
	struct vpage *p = pg ? ptable_get(&s->pt, pg - 1, false) : NULL;

	return p && vp_kind(p) == VP_SWAPPED && !(p->val & VP_BUSY) &&
	       intervals_end_at(&s->registered, pg_addr(pg - 1)) > pg_addr(pg);
}

/* The pages a swap-in at pg brings: [*first, *first + n), pg among them. */
static unsigned swapin_window(struct vm_space *s, uint64_t pg, struct stream *st,
			      uint64_t *first)
{
	int side = swapin_side(s, st);

	*first = pg;
	if (side == RA_BELOW && below_swapped(s, pg)) {
		ahead(st, RA_MAX, 2);
		*first = pg - 1;
		return 2;
	}
	return window_of(s, pg, VP_SWAPPED, ahead(st, RA_MAX, side == RA_ABOVE ? 2 : 1));
}

/* A swap-in that did not install the faulting page: retried after the pending event
 * (EAGAIN), or after what came in with it (no error: the page itself did not decompress);
 * otherwise the thread is woken to fault again, or to find its range gone. */
static int swapin_result(struct vm_space *s, uint64_t pg, bool installed, long err)
{
	if (installed)
		return SERVED;
	if (err == -EAGAIN || err == 0)
		return DEFER;
	uffd_wake(s->uffd, pg_addr(pg), VM_PAGE);
	return SERVED;
}

static int serve_swapped(struct vm_space *s, uint64_t pg)
{
	struct uzs_vm *vm = s->vm;
	struct stream *st = stream_at(s, pg);
	uint64_t first;
	unsigned n = swapin_window(s, pg, st, &first), got = 0, done, keep;
	uzs_slot_t slots[RA_MAX];
	struct vpage *fp = ptable_get(&s->pt, pg, false);
	bool hot = refault_is_hot(s, fp);
	uint32_t distance = vm->evict_clock - fp->evicted_at;
	unsigned tier = vm_balance_tier(vm, vp_payload(fp));
	long err;
	int in_err = 0;

	for (unsigned i = 0; i < n; i++)
		slots[i] = vp_payload(ptable_get(&s->pt, first + i, false));
	/* Only this thread changes swapped pages: decompress without the lock. */
	pthread_mutex_unlock(&vm->lock);
	for (; got < n; got++)
		if (slots[got] == LOST_SLOT ||
		    (in_err = uzs_swap_in(vm->uzs, slots[got], vm->buf + (size_t)got * VM_PAGE,
					  UZS_SWAPIN_FREE)) < 0)
			break;
	if (got)
		fault_hook(HOOK_SWAPIN_READ, pg_addr(first));
	pthread_mutex_lock(&vm->lock);
	if (!got && in_err == -ENOMEM) {
		/* no memory to decompress just now: the slot keeps its page, the fault waits
		 * and is tried again (a shortage is no reason to lose the page) */
		st->probe = false;
		return DEFER;
	}
	if (!got) { /* the page cannot come back: the access raises SIGBUS */
		struct vpage *p = ptable_get(&s->pt, first, false);

		if (slots[0] != LOST_SLOT) { /* a lost page was counted when it was lost */
			atomic_fetch_add(&vm->st.swapin_errors, 1);
			uzs_free(vm->uzs, slots[0]);
			vp_set(p, VP_SWAPPED, 0, LOST_SLOT);
		}
		err = uffd_poison(s->uffd, pg_addr(first), VM_PAGE);
		if (err == -EAGAIN)
			return DEFER; /* an event first; still lost, poisoned when retried */
		vp_set(p, VP_NONE, 0, 0);
		if (err < 0 && first == pg)
			uffd_wake(s->uffd, pg_addr(pg), VM_PAGE); /* its range is gone */
		return first == pg ? SERVED : DEFER; /* the neighbour failed: pg comes alone */
	}
	/* the slots are gone (exclusive loads): the pages live in vm->buf until installed */
	for (unsigned i = 0; i < got; i++)
		vp_set(ptable_get(&s->pt, first + i, false), VP_NONE, 0, 0);
	done = install(s, first, vm->buf, got, &err);
	if (done)
		mark_resident(s, first, done, hot);
	keep = done;
	if (err == -ENOENT && !done && first != pg)
		keep = 1; /* the page below's range is gone: that says nothing of pg's */
	if (done < got && (err != -ENOENT || keep > done))
		restore_pages(s, first, keep, got);
	st->end = first + done;
	if (!done)
		st->probe = false; /* retried: its next fault is this one again */
	atomic_fetch_add(&vm->st.swapins, done);
	if (done > 1)
		atomic_fetch_add(&vm->st.readahead_pages, done - 1);
	if (done > pg - first)
		vm_balance_refault(vm, tier, distance);
	return swapin_result(s, pg, done > pg - first, err);
}

/* Touched while staged: copy it back from staging and promote it (the second chance). */
static int serve_staged(struct vm_space *s, uint64_t pg, struct vpage *p)
{
	struct uzs_vm *vm = s->vm;
	unsigned slot = (unsigned)vp_payload(p);
	long r;

	if (space_read_staged(s, slot, vm->buf) < 0)
		return DEFER;
	r = uffd_copy(s->uffd, pg_addr(pg), vm->buf, VM_PAGE);
	if (r == -EAGAIN)
		return DEFER;
	if (r < 0 && r != -EEXIST) {
		uffd_wake(s->uffd, pg_addr(pg), VM_PAGE);
		return SERVED;
	}
	s->slot_owner[slot] = 0;
	s->discard[s->ndiscard++] = slot;
	s->nstaged--;
	vp_set(p, VP_RESIDENT, 0, 0);
	space_enqueue(s, pg, p, true);
	space_charge(s, 1);
	atomic_fetch_add(&vm->st.staged_refaults, 1);
	vm_balance_refault(vm, BAL_STAGED, 0);
	if (s->self)
		space_flush_discards(s);
	return SERVED;
}

/* past_budget: the fault has waited long enough; serve it even over the budget. */
static int serve_fault(struct vm_space *s, uintptr_t addr, bool past_budget)
{
	struct uzs_vm *vm = s->vm;
	uint64_t pg = addr / VM_PAGE;
	struct vpage *p = ptable_get(&s->pt, pg, true);
	unsigned kind = p ? vp_kind(p) : VP_NONE;

	if (!p || (p->val & VP_BUSY))
		return DEFER; /* no memory for the table now, or the page is in flight */
	if (kind == VP_RESIDENT) {
		/* A second fault on a page already installed: just wake the thread. A page of
		 * ours missing has left without our knowing (madvise and munmap come as events,
		 * which clear its state first; only a page adopted after a MADV_FREE can go
		 * quietly): there is nothing to give it but zeros, and the count says so. */
		long r = uffd_copy(s->uffd, addr, vm->zero, VM_PAGE);

		if (r == -EAGAIN)
			return DEFER;
		if (r < 0)
			uffd_wake(s->uffd, addr, VM_PAGE);
		else
			atomic_fetch_add(&vm->st.pages_lost, 1);
		return SERVED;
	}
	if (kind != VP_STAGED && !past_budget && vm_headroom_pages(vm) < 1)
		return DEFER;
	if (kind == VP_STAGED)
		return serve_staged(s, pg, p);
	if (kind == VP_SWAPPED)
		return serve_swapped(s, pg);
	return serve_zero(s, pg);
}

int vm_serve_now(struct vm_space *s, uint64_t pg)
{
	return serve_fault(s, pg_addr(pg), true);
}

static void defer_fault(struct uzs_vm *vm, struct vm_space *s, uintptr_t addr)
{
	if (vm->npending == vm->pending_cap) {
		size_t cap = vm->pending_cap ? vm->pending_cap * 2 : 64;
		struct pending_fault *v = realloc(vm->pending, cap * sizeof(*v));

		if (!v)
			return; /* the thread stays blocked until it faults again */
		vm->pending = v;
		vm->pending_cap = cap;
	}
	vm->pending[vm->npending++] = (struct pending_fault){ s, addr, now_ns() };
	atomic_fetch_add(&vm->st.waits, 1);
}

static void wake_evictor(struct uzs_vm *vm)
{
	vm->evict_kick = true;
	pthread_cond_signal(&vm->evict_cond);
}

/* Faults that waited: serve those that now fit; past the patience, serve anyway (a
 * program is never stuck because nothing more could be evicted). Returns how many were
 * served. */
static unsigned retry_pending(struct uzs_vm *vm)
{
	size_t keep = 0, served;
	uint64_t now = now_ns();
	bool stuck = atomic_load(&vm->evict_stuck);

	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vm->npending; i++) {
		struct pending_fault f = vm->pending[i];
		int r = f.space->dead ? SERVED : serve_fault(f.space, f.addr, false);

		if (r == DEFER && (stuck || now - f.since_ns > PENDING_PATIENCE_NS) &&
		    serve_fault(f.space, f.addr, true) == SERVED)
			atomic_fetch_add(&vm->st.budget_overruns, 1);
		else if (r == DEFER)
			vm->pending[keep++] = f;
	}
	served = vm->npending - keep;
	vm->npending = keep;
	if (keep)
		wake_evictor(vm);
	pthread_mutex_unlock(&vm->lock);
	return (unsigned)served;
}

void handle_msg(struct vm_space *s, const struct uffd_msg *m)
{
	struct uzs_vm *vm = s->vm;
	uintptr_t addr;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		addr = (uintptr_t)m->arg.pagefault.address & ~(uintptr_t)(VM_PAGE - 1);
		atomic_fetch_add(&vm->st.faults, 1);
		pthread_mutex_lock(&vm->lock);
		if (vm->npending || serve_fault(s, addr, false) == DEFER) {
			/* keep order: once one waits, later ones queue behind it */
			pthread_mutex_unlock(&vm->lock);
			defer_fault(vm, s, addr);
			pthread_mutex_lock(&vm->lock);
			wake_evictor(vm);
		} else if (vm_headroom_pages(vm) < atomic_load(&vm->high_pages)) {
			wake_evictor(vm);
		}
		pthread_mutex_unlock(&vm->lock);
		break;
	case UFFD_EVENT_REMOVE:
		on_remove(s, m->arg.remove.start, m->arg.remove.end, false);
		break;
	case UFFD_EVENT_UNMAP:
		on_remove(s, m->arg.remove.start, m->arg.remove.end, true);
		break;
	case UFFD_EVENT_REMAP:
		on_remap(s, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_FORK:
		on_fork(s, (int)m->arg.fork.ufd);
		break;
	}
}

/* Handles what the space's descriptor holds; returns how many messages there were. The
 * kernel hands out faults before events, and stops refusing installs (EAGAIN) once a
 * fork event is read: faults read together with a fork event, served first, would put
 * pages in the parent after the child got its copy of the parent's memory, while the
 * fork event recorded them as resident for the child. So the events of a read go first,
 * in their order, then its faults. */
static unsigned drain_space(struct vm_space *s)
{
	struct uffd_msg msgs[64];
	unsigned seen = 0;
	ssize_t n;

	while ((n = read(s->uffd, msgs, sizeof(msgs))) > 0) {
		unsigned got = (unsigned)(n / (ssize_t)sizeof(msgs[0]));

		for (unsigned i = 0; i < got; i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				handle_msg(s, &msgs[i]);
		for (unsigned i = 0; i < got; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				handle_msg(s, &msgs[i]);
		seen += got;
		s->vm->hot = s;
		/* a read takes every message there is: a short one emptied the queue, and
		 * asking again would only cost a system call (the epoll set still sees any
		 * that came since) */
		if (got < sizeof(msgs) / sizeof(msgs[0]))
			break;
	}
	return seen;
}

/* Spaces whose process exited and that no thread uses any more. */
static void reap_dead(struct uzs_vm *vm)
{
	struct vm_space **pp = &vm->spaces;

	pthread_mutex_lock(&vm->lock);
	while (*pp) {
		struct vm_space *s = *pp;
		bool waited = false;

		for (size_t i = 0; i < vm->npending && !waited; i++)
			waited = vm->pending[i].space == s;
		if (s->dead && !s->evicting && !s->pins && !waited) {
			*pp = s->next;
			if (vm->hot == s)
				vm->hot = NULL;
			space_free(s);
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* After a fault the next one tends to follow within microseconds (the program resumes
 * and touches the next page): look for it without sleeping for a while, since waking
 * this thread from sleep costs more than serving the fault on a virtual machine (a
 * round trip measured 21-29 us sleeping, 12-13 us spinning). The look reads the space
 * that faulted last itself, one system call where epoll and then a read would be two
 * (the round trip's critical path); the epoll set, every few turns, sees the rest.
 * Returns the epoll events to handle; *handled: the messages already handled. */
static int wait_events(struct uzs_vm *vm, struct epoll_event *evs, int max, int timeout_ms,
		       bool spin, unsigned *handled)
{
	uint64_t now = spin ? now_ns() : 0, until = spin ? now + FAULT_SPIN_NS : 0;
	int n;

	*handled = 0;
	vm_balance_look(vm, now); /* the faults served since the last look are timed */
	while ((now = now_ns()) < until && !(atomic_load(&vm->fork_req) & 1)) {
		struct vm_space *hot = vm->hot;

		vm_balance_look(vm, now);
		/* the turn count outlives the call: a space whose reads never come back empty
		 * (two threads faulting in turn) must not keep the others unread */
		if (hot && ++vm->hot_turns % HOT_TURNS) {
			if ((*handled = drain_space(hot)) > 0)
				return 0;
		} else if ((n = epoll_wait(vm->epfd, evs, max, 0)) != 0) {
			return n;
		}
		cpu_relax();
	}
	vm_balance_look(vm, 0); /* what wakes it from a sleep is untimed */
	return epoll_wait(vm->epfd, evs, max, timeout_ms);
}

void *fault_main(void *arg)
{
	struct uzs_vm *vm = arg;
	struct epoll_event evs[32];
	unsigned handled = 0;

	for (;;) {
		int n;
		bool stop;
		uint64_t seen;
		unsigned fork_req = atomic_load(&vm->fork_req);

		if (fork_req & 1)
			handled += quiet_during_fork(vm, fork_req);
		pthread_mutex_lock(&vm->lock);
		seen = vm->sync_req;
		pthread_mutex_unlock(&vm->lock);
		n = wait_events(vm, evs, 32, vm->npending ? 1 : 100, handled > 0, &handled);

		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				uint64_t v;

				if (read(vm->kick_fd, &v, sizeof(v)) < 0) {
					/* nothing to clear */
				}
				continue;
			}
			handled += drain_space(evs[i].data.ptr);
		}
		if (vm->npending)
			handled += retry_pending(vm);
		if (atomic_load(&vm->bring_back_any))
			handled += vm_bring_back_traced(vm);
		reap_dead(vm);
		pthread_mutex_lock(&vm->lock);
		stop = vm->stop;
		vm->sync_done = seen;
		pthread_cond_broadcast(&vm->sync_cond);
		pthread_mutex_unlock(&vm->lock);
		if (stop) {
			engine_thread_cleanup();
			return NULL;
		}
	}
}
