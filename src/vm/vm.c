/* SPDX-License-Identifier: MIT */
/*
 * vm — the transparent mode's fault thread: it serves missing-page faults (zeros, pages
 * from the engine, pages still in staging) and the program's memory events (munmap,
 * madvise, mremap, fork), for every space of one uzs_vm.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fault.h"
#include "uffd.h"

#define FAULT_SPIN_NS 50000ull /* how long the fault thread looks before sleeping */
#define HOT_TURNS 8 /* reads of the last faulting space per look at all of them */
#define FORK_GRACE_NS 100000000ull /* a forked child's time to exec before it is charged */
#define PENDING_PATIENCE_NS 1000000000ull /* a fault waits at most this long for room */
/* A swapped page whose data could not be kept anywhere (0 is never a slot): an access
 * raises SIGBUS, never zeros; it was counted in swapin_errors when it was lost. */
#define LOST_SLOT 0

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vm_kick_faults(struct uzs_vm *vm)
{
	uint64_t one = 1;

	if (write(vm->kick_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is already due to wake */
	}
}

void space_charge(struct vm_space *s, long nr)
{
	s->charged += nr;
	uzs_group_charge_resident(s->vm->group ? s->vm->group : uzs_root_group(s->vm->uzs), nr);
}

void space_enqueue(struct vm_space *s, uint64_t pg, struct vpage *p, bool active)
{
	p->qseq = ++s->qseq;
	if (active) {
		p->val |= VP_ACTIVE;
		s->nactive++;
	} else {
		p->val &= ~VP_ACTIVE;
	}
	/* a failed push leaves the page unqueued: it stays resident and is never evicted,
	 * which costs budget, not data */
	fifo_push(active ? &s->active : &s->inactive, pg, p->qseq);
}

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

/* The end of the interval holding addr; addr itself when none does. Faults come in runs
 * within one interval, so the last one found is tried first. */
static uintptr_t intervals_end_at(struct intervals *iv, uintptr_t addr)
{
	if (iv->hit.start <= addr && iv->hit.end > addr)
		return iv->hit.end;
	for (size_t i = 0; i < iv->n; i++)
		if (iv->v[i].start <= addr && iv->v[i].end > addr) {
			iv->hit = iv->v[i];
			return iv->hit.end;
		}
	return addr;
}

bool intervals_overlap(const struct intervals *iv, uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < iv->n; i++)
		if (iv->v[i].start < end && iv->v[i].end > start)
			return true;
	return false;
}

/* ---- spaces ---- */

static struct vm_space *space_new(struct uzs_vm *vm, int uffd)
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

static int space_setup_staging(struct vm_space *s, uintptr_t base, unsigned slots)
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

static void space_free(struct vm_space *s)
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

static int space_add(struct uzs_vm *vm, struct vm_space *s)
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
static void on_remove(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap)
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
static void on_remap(struct vm_space *s, uintptr_t from, uintptr_t to, uintptr_t len)
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

static void on_fork(struct vm_space *parent, int child_fd)
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

static void handle_msg(struct vm_space *s, const struct uffd_msg *m)
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

static void live_add(struct uzs_vm *vm)
{
	pthread_mutex_lock(&live_vms_lock);
	vm->next_live = live_vms;
	live_vms = vm;
	pthread_mutex_unlock(&live_vms_lock);
}

static void live_remove(struct uzs_vm *vm)
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

static unsigned quiet_during_fork(struct uzs_vm *vm, unsigned req)
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

static void *fault_main(void *arg)
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
