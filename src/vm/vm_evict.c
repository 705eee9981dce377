/* SPDX-License-Identifier: MIT */
/*
 * vm_evict — the transparent mode's eviction thread and its policy.
 *
 * Policy (what user space can see of page use, as the kernel's two LRU lists):
 *  - A page brought in by a fault goes on the inactive list, in fault order.
 *  - Eviction takes the oldest inactive pages and moves them out of the program with
 *    UFFDIO_MOVE into a staging range, uncompressed. The move is atomic: a write that
 *    races it either lands before (and is moved with the page) or faults after (and waits
 *    for the page to come back). Nothing is compressed while the program can write it.
 *  - Staged pages wait there (about STAGE_TARGET of them): one touched again meanwhile is
 *    copied back without decompression and goes to the active list (the second chance,
 *    like the kernel's inactive list). Only the oldest staged pages are compressed.
 *  - A page that faults back from the engine soon after it left (its refault distance,
 *    in evictions, is below half the budget) goes to the active list too: it is part of
 *    the working set (the kernel's workingset refault detection).
 *  - The active list is demoted into the inactive one, oldest first, when it passes half
 *    of the budget or when nothing inactive is left.
 *
 * Watermarks (as kswapd's): eviction starts when the group's room falls below
 * max(budget/64, 128 pages) and goes on until it is above max(budget/32, 256 pages); a
 * fault that does not fit waits for it. (budget/16 and /8 left a tenth of the budget
 * unused on average: 2% more faults on a random workload, bench/README.md.)
 *
 * Cost: a round sends one request to the agent (drop the staged copies compressed last
 * round, move this round's victims out), and compresses the round before's staged pages
 * while the agent works. Victims get consecutive staging slots, so that both its moves
 * and its drops are a call per stretch of consecutive pages, each with one TLB flush.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fault.h"
#include "uffd.h"

#define AGENT_TIMEOUT_MS 2000
#define AGENT_POLL_MS 100
#define BSS_MAX (256ul << 10)
#define SCAN_INTERVAL_NS 2000000ull /* 2 ms between looks at a process's mappings */

static struct uzs_group *vm_group(struct uzs_vm *vm)
{
	return vm->group ? vm->group : uzs_root_group(vm->uzs);
}

/* Pages the program may still fault in: the group's room less the eviction reserve. */
long vm_headroom_pages(struct uzs_vm *vm)
{
	int64_t room = uzs_group_memory_room(vm_group(vm));

	if (room == INT64_MAX)
		return LONG_MAX / 2;
	return (long)(room / (int64_t)VM_PAGE) - EVICT_RESERVE;
}

static uint64_t mono_ns(void);

static long budget_pages(struct uzs_vm *vm)
{
	struct uzs_group_stats st;

	if (uzs_group_get_stats(vm_group(vm), &st) < 0 || st.memory_max == UZS_MAX)
		return LONG_MAX / 2;
	return (long)(st.memory_max / VM_PAGE);
}

/* ---- the agent: moves and discards inside the process ---- */

/* Staging pages to drop, as ranges of consecutive slots (slot order, so a batch's pages
 * go in a few calls). Their slots are free for moves in the same request at once: the
 * agent drops before it moves. They stay charged until the drop is done. */
struct drops {
	unsigned nranges, nslots;
	uint64_t start[AGENT_BATCH], len[AGENT_BATCH];
	uint32_t slot[AGENT_STAGING_SLOTS];
};

static int cmp_slot(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Take from the queue what fits one request (the rest stays queued). */
static void take_drops(struct vm_space *s, struct drops *d)
{
	unsigned i = 0;

	d->nranges = 0;
	qsort(s->discard, s->ndiscard, sizeof(*s->discard), cmp_slot);
	while (i < s->ndiscard && d->nranges < AGENT_BATCH) {
		unsigned k = 1;

		while (i + k < s->ndiscard && s->discard[i + k] == s->discard[i] + k)
			k++;
		d->start[d->nranges] = s->staging + (uintptr_t)s->discard[i] * VM_PAGE;
		d->len[d->nranges++] = (uint64_t)k * VM_PAGE;
		i += k;
	}
	d->nslots = i;
	memcpy(d->slot, s->discard, i * sizeof(d->slot[0]));
	s->ndiscard -= i;
	memmove(s->discard, s->discard + i, s->ndiscard * sizeof(s->discard[0]));
	for (i = 0; i < d->nslots; i++)
		staging_give(s, d->slot[i]);
}

/* The agent's drop result is not looked at: a drop within its own staging range, built
 * from our slot numbers, does not fail short of a bug. Were it to, moves into such a slot
 * would fail (EEXIST, the page stays resident) and the charge be low by a page. */
static void drops_done(struct vm_space *s, const struct drops *d)
{
	space_charge(s, -(long)d->nslots);
}

struct batch {
	unsigned n;
	uint32_t forks_seen; /* the space's, when the pages were chosen */
	uint64_t src[EVICT_BATCH], dst[EVICT_BATCH];
	uint32_t slot[EVICT_BATCH];
	int res[EVICT_BATCH];
	uint8_t why[EVICT_BATCH]; /* for a lasting refusal: UNMOVABLE_* (classify_refusals) */
	bool fork_busy; /* refused whole: the process was forking (forks_made not fresh) */
};

/* This process's own forks, kept apart from its own space's moves as the agent keeps a
 * remote process's (src/agent_core.c); and the vms' fault threads quiesced around them
 * (vm_forks_quiesce_all). */
static pthread_mutex_t self_fork_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t self_forks;
static pthread_once_t self_forks_counted = PTHREAD_ONCE_INIT;

static void self_before_fork(void)
{
	pthread_mutex_lock(&self_fork_lock);
	vm_forks_quiesce_all();
}

static void self_after_fork_parent(void)
{
	vm_forks_resume_all();
	self_forks++;
	pthread_mutex_unlock(&self_fork_lock);
}

static void self_after_fork_child(void)
{
	vm_forks_forget_all();
	pthread_mutex_init(&self_fork_lock, NULL);
	self_forks = 0;
}

static void count_self_forks(void)
{
	pthread_atfork(self_before_fork, self_after_fork_parent, self_after_fork_child);
}

uint32_t vm_self_forks(void)
{
	uint32_t n;

	pthread_once(&self_forks_counted, count_self_forks);
	pthread_mutex_lock(&self_fork_lock);
	n = self_forks;
	pthread_mutex_unlock(&self_fork_lock);
	return n;
}

/* Our own space's moves, as an agent makes them (see serve in src/agent_core.c). Drops
 * alone (no moves) may come with vm->lock held: they never wait for a fork, which waits
 * for the fault thread, which would wait for that lock. */
static void move_self(struct vm_space *s, struct batch *b)
{
	if (!b->n)
		return;
	/* never wait for a fork: it may be waiting for the fault thread, which may be waiting
	 * for this round to end (on_fork) */
	if (pthread_mutex_trylock(&self_fork_lock) != 0) {
		uffd_refuse_moves(b->res, b->n);
		b->fork_busy = true;
		return;
	}
	s->forks_made = self_forks;
	if (self_forks == b->forks_seen)
		uffd_move_pages(s->staging_uffd, b->src, b->dst, b->n, b->res);
	else
		uffd_refuse_moves(b->res, b->n);
	pthread_mutex_unlock(&self_fork_lock);
}

static pid_t tracer_of(pid_t pid);
static void note_tracer(struct vm_space *s, bool traced);

/* Start the drops and moves: done at once in this process; sent to a remote agent, which
 * works on them while we go on (agent_finish collects its answer). */
static int agent_start(struct vm_space *s, const struct drops *d, struct batch *b)
{
	struct agent_req req = { .ndrop = d->nranges, .nmove = b->n, .forks_seen = b->forks_seen };

	if (s->self) {
		for (unsigned i = 0; i < d->nranges; i++)
			madvise((void *)d->start[i], d->len[i], MADV_DONTNEED);
		if (b->n) {
			fault_hook(HOOK_MOVE_BATCH, b->src[0]);
			fault_hook(HOOK_MOVE_INTO, b->dst[0]);
		}
		move_self(s, b);
		return 0;
	}
	if (!d->nranges && !b->n)
		return 0;
	memcpy(req.drop_start, d->start, d->nranges * sizeof(d->start[0]));
	memcpy(req.drop_len, d->len, d->nranges * sizeof(d->len[0]));
	memcpy(req.move_src, b->src, b->n * sizeof(b->src[0]));
	memcpy(req.move_dst, b->dst, b->n * sizeof(b->dst[0]));
	return send(s->sock, &req, sizeof(req), MSG_NOSIGNAL) == (ssize_t)sizeof(req) ? 0 : -EPIPE;
}

/* The agent's answer. It comes quickly unless its process is stopped (SIGSTOP, a
 * debugger): then we keep waiting, since whether its moves happened is only known from
 * the answer. A hang-up means the process is gone. */
static int agent_finish(struct vm_space *s, const struct drops *d, struct batch *b)
{
	struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
	struct agent_reply rep;

	unsigned waited = 0;

	if (s->self || (!d->nranges && !b->n))
		return 0;
	while (poll(&pfd, 1, AGENT_POLL_MS) != 1) {
		if (s->vm->stop)
			return -EPIPE;
		/* stopped by a debugger that has just attached? Its reads need the pages */
		if (!s->traced && tracer_of(s->pid) > 0) {
			pthread_mutex_lock(&s->vm->lock);
			note_tracer(s, true);
			pthread_mutex_unlock(&s->vm->lock);
		}
		if (++waited >= AGENT_TIMEOUT_MS / AGENT_POLL_MS)
			s->unresponsive = true;
	}
	s->unresponsive = false;
	if (!(pfd.revents & POLLIN) || recv(s->sock, &rep, sizeof(rep), 0) <= 0)
		return -EPIPE;
	memcpy(b->res, rep.moved, b->n * sizeof(b->res[0]));
	if (b->n)
		s->forks_made = rep.forks;
	return 0;
}

/* Called with vm->lock held. A remote agent is called with the lock released, so the
 * fault thread goes on serving while the process takes its time. */
void space_flush_discards(struct vm_space *s)
{
	struct uzs_vm *vm = s->vm;

	while (s->ndiscard) {
		struct drops d;
		struct batch none = { .n = 0 };
		bool was_evicting = s->evicting;
		int r;

		take_drops(s, &d);
		if (!s->self) {
			s->evicting = true; /* not to be reaped meanwhile */
			pthread_mutex_unlock(&vm->lock);
		}
		r = agent_start(s, &d, &none);
		if (!r)
			r = agent_finish(s, &d, &none);
		if (!s->self) {
			pthread_mutex_lock(&vm->lock);
			s->evicting = was_evicting;
		}
		if (r < 0) { /* the process is gone: so are its pages */
			s->dead = true;
			return;
		}
		drops_done(s, &d);
	}
}

/* ---- memory that cannot be moved out ---- */

#define ASIDE_RETRY_MIN_NS 100000000ull  /* a pin held for a transfer is gone by then */
#define ASIDE_RETRY_MAX_NS 2000000000ull

/* A refusal that trying again at once would only repeat: the mapping is read-only or
 * locked or of another kind (EINVAL), the page pinned (EBUSY: src/uffd.c has already
 * tried making a page shared after fork our own), or not where a move can take it.
 * Retried later (EAGAIN: a fork in the way; EEXIST: the slot; ENOMEM), it is not. */
static bool lasting_refusal(int r)
{
	return r < 0 && r != -EAGAIN && r != -EEXIST && r != -ENOMEM && r != -EINTR;
}

/* The mapping around addr in the process's maps (smaps: with its flags): its range, and
 * whether it is writable and locked. false when not found. */
static bool vma_of(pid_t pid, bool flags, uintptr_t addr, struct interval *vma, bool *w,
		   bool *locked)
{
	char path[64], line[512];
	bool in = false, found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, flags ? "smaps" : "maps");
	if (!(f = fopen(path, "re")))
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
			if (in)
				break; /* the next mapping's: ours had no flags line */
			if ((in = lo <= addr && addr < hi)) {
				*vma = (struct interval){ lo, hi };
				*w = perms[1] == 'w';
				found = true;
				if (!flags)
					break;
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			*locked = strstr(line, " lo") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Why the kernel refused to move the page at addr with error r. The staging range is a
 * writable, unlocked anonymous mapping, and the kernel moves only between mappings alike
 * (validate_move_areas): a read-only or locked source is refused with EINVAL. Read from
 * /proc (maps, smaps only for a writable one), a refusal of the same mapping as the last
 * one (cache) taking the same answer. */
static uint8_t refusal_reason(struct vm_space *s, uintptr_t addr, int r, struct interval *vma,
			      uint8_t *cached)
{
	pid_t pid = s->self ? getpid() : s->pid;
	bool w = true, locked = false;

	if (r == -EBUSY)
		return UNMOVABLE_PINNED;
	if (r != -EINVAL)
		return UNMOVABLE_OTHER;
	if (vma->start <= addr && addr < vma->end)
		return *cached;
	if (!vma_of(pid, false, addr, vma, &w, &locked))
		*cached = UNMOVABLE_OTHER;
	else if (!w)
		*cached = UNMOVABLE_READONLY;
	else
		*cached = vma_of(pid, true, addr, vma, &w, &locked) && locked ? UNMOVABLE_LOCKED
										 : UNMOVABLE_OTHER;
	return *cached;
}

#define REFUSAL_CACHE_NS 100000000ull /* a retry's rounds reuse one look at /proc */

/* The reasons of a batch's lasting refusals: read without vm->lock (it reads /proc). The
 * mapping last looked at is kept a while: a retry of a large locked area refuses it
 * batch after batch, and each look at smaps walks the whole process. */
static void classify_refusals(struct vm_space *s, struct batch *b)
{
	uint64_t now = mono_ns();

	if (now - s->refused_at_ns > REFUSAL_CACHE_NS)
		s->refused_vma = (struct interval){ 0, 0 };
	for (unsigned i = 0; i < b->n; i++)
		if (lasting_refusal(b->res[i])) {
			uintptr_t was = s->refused_vma.start;

			b->why[i] = refusal_reason(s, b->src[i], b->res[i], &s->refused_vma,
						   &s->refused_why);
			if (s->refused_vma.start != was)
				s->refused_at_ns = now;
		}
}

static void count_unmovable(struct uzs_vm *vm, unsigned why, long nr)
{
	long now = atomic_fetch_add(&vm->st.unmovable[why], nr) + nr, total = 0;

	if (nr <= 0)
		return;
	if (now > atomic_load(&vm->st.unmovable_peak[why]))
		atomic_store(&vm->st.unmovable_peak[why], now);
	for (unsigned i = 0; i < UNMOVABLE_REASONS; i++)
		total += atomic_load(&vm->st.unmovable[i]);
	if (total > atomic_load(&vm->st.unmovable_total_peak))
		atomic_store(&vm->st.unmovable_total_peak, total);
}

/* A page the kernel will not move: kept resident and charged (the rest of the program's
 * memory is evicted instead), off the lists, so that eviction does not spend its rounds
 * on it. Called with vm->lock held, as every change of the counts is. */
static void set_aside(struct vm_space *s, uint64_t pg, struct vpage *p, unsigned why)
{
	vp_set(p, VP_RESIDENT, VP_ASIDE, why);
	p->qseq = ++s->qseq;
	if (fifo_push(&s->aside, pg, p->qseq) < 0) { /* no room to queue it: retried at once */
		p->val &= ~VP_ASIDE;
		space_enqueue(s, pg, p, false);
		return;
	}
	s->naside[why]++;
	count_unmovable(s->vm, why, 1);
	if (!s->aside_retry_ns) {
		s->aside_backoff_ns = s->aside_backoff_ns ? s->aside_backoff_ns : ASIDE_RETRY_MIN_NS;
		s->aside_retry_ns = mono_ns() + s->aside_backoff_ns;
	}
}

void space_unaside(struct vm_space *s, struct vpage *p)
{
	unsigned why = (unsigned)vp_payload(p);

	if (vp_kind(p) != VP_RESIDENT || !(p->val & VP_ASIDE) || why >= UNMOVABLE_REASONS)
		return;
	p->val &= ((1ull << VP_SHIFT) - 1) & ~VP_ASIDE; /* flag and reason cleared */
	s->naside[why]--;
	count_unmovable(s->vm, why, -1);
}

/* Once its wait is over, every page set aside goes back to the inactive list, to be
 * tried with the others (a mapping made writable again, unlocked, a pin let go); those
 * still refused come back here, and the next wait is twice as long. */
static void retry_aside(struct vm_space *s)
{
	struct qent e;

	if (!s->aside_retry_ns || mono_ns() < s->aside_retry_ns)
		return;
	s->aside_retry_ns = 0;
	while (fifo_pop(&s->aside, &e)) {
		struct vpage *p = ptable_get(&s->pt, e.pg, false);

		if (!p || p->qseq != e.qseq || !(p->val & VP_ASIDE))
			continue;
		space_unaside(s, p);
		space_enqueue(s, e.pg, p, false);
	}
	s->aside_backoff_ns = s->aside_backoff_ns * 2 < ASIDE_RETRY_MAX_NS
		? s->aside_backoff_ns * 2 : ASIDE_RETRY_MAX_NS;
}

/* ---- choosing victims ---- */

/* The oldest page of q still resident and still standing for that entry. */
static bool pop_resident(struct vm_space *s, struct fifo *q, bool active, uint64_t *pg)
{
	struct qent e;

	while (fifo_pop(q, &e)) {
		struct vpage *p = ptable_get(&s->pt, e.pg, false);

		if (p && vp_kind(p) == VP_RESIDENT && p->qseq == e.qseq &&
		    !!(p->val & VP_ACTIVE) == active && !(p->val & VP_UNCHARGED)) {
			*pg = e.pg;
			return true;
		}
	}
	return false;
}

/* Keep the active list within half the budget: its oldest pages go inactive. */
static void balance_lists(struct vm_space *s, long budget, unsigned want)
{
	uint64_t pg;

	while ((s->nactive > budget / 2 || s->inactive.len < want) &&
	       pop_resident(s, &s->active, true, &pg)) {
		struct vpage *p = ptable_get(&s->pt, pg, false);

		s->nactive--;
		space_enqueue(s, pg, p, false);
	}
}

static void pick_victims(struct vm_space *s, long budget, struct batch *b)
{
	uint64_t pg;

	b->n = 0;
	b->fork_busy = false;
	b->forks_seen = s->forks_seen;
	retry_aside(s);
	balance_lists(s, budget, EVICT_BATCH);
	while (b->n < EVICT_BATCH && s->nfree > STAGE_TARGET / 2 &&
	       pop_resident(s, &s->inactive, false, &pg)) {
		struct vpage *p = ptable_get(&s->pt, pg, false);
		uint32_t slot = staging_take(s);

		/* off the lists while it moves; faults on it wait (it may be gone already) */
		vp_set(p, VP_RESIDENT, VP_BUSY, slot);
		p->qseq = 0;
		s->slot_owner[slot] = pg;
		b->slot[b->n] = slot;
		b->src[b->n] = pg_addr(pg);
		b->dst[b->n] = s->staging + (uintptr_t)slot * VM_PAGE;
		b->n++;
	}
}

/* A slot whose contents are of no use: dropped before it is given out again, and
 * charged until then (drops_done takes it off). */
static void discard_slot(struct vm_space *s, uint32_t slot)
{
	s->slot_owner[slot] = 0;
	space_charge(s, 1);
	s->discard[s->ndiscard++] = slot;
}

/* Where each moved page is now (mremap may have moved its state, munmap dropped it),
 * and what became of it. Returns the pages moved out or set aside (both progress: the
 * lists are shorter by them). */
static unsigned settle_moves(struct vm_space *s, struct batch *b, int err)
{
	struct uzs_vm *vm = s->vm;
	unsigned moved = 0;

	for (unsigned i = 0; i < b->n; i++) {
		uint32_t slot = b->slot[i];
		uint64_t pg = s->slot_owner[slot];
		struct vpage *p = pg ? ptable_get(&s->pt, pg, false) : NULL;
		bool still = p && vp_kind(p) == VP_RESIDENT && (p->val & VP_BUSY) &&
			     vp_payload(p) == slot;
		int r = err ? err : b->res[i];

		if (p && vp_kind(p) == VP_NONE && (p->val & VP_BUSY) && vp_payload(p) == slot) {
			p->val = 0; /* unmapped or discarded while it moved (drop_page) */
			p = NULL;
		}

		if (!r && still) {
			vp_set(p, VP_STAGED, 0, slot);
			p->qseq = ++s->qseq;
			fifo_push(&s->staged, slot, p->qseq);
			s->nstaged++;
			moved++;
			atomic_fetch_add(&vm->st.evicted, 1);
		} else if (!r) { /* moved, but unmapped meanwhile (and uncharged then) */
			discard_slot(s, slot);
		} else {
			/* not moved. A slot a move found occupied (-EEXIST: never, short of a
			 * kernel that misreports worse than src/uffd.c knows) is dropped before
			 * it is given out again; any other is free at once */
			if (r == -EEXIST) {
				discard_slot(s, slot);
			} else {
				s->slot_owner[slot] = 0;
				staging_give(s, slot);
			}
			if (r == -EBUSY)
				atomic_fetch_add(&vm->st.evict_shared, 1);
			if (still && !err && lasting_refusal(r)) {
				set_aside(s, pg, p, b->why[i]);
				moved++;
			} else if (still) { /* a fork in the way, or busy a moment: again later */
				vp_set(p, VP_RESIDENT, 0, 0);
				space_enqueue(s, pg, p, false);
			}
		}
	}
	return moved;
}

/* ---- compressing the oldest staged pages ---- */

struct commit {
	unsigned n;
	uint32_t slot[EVICT_BATCH];
	uzs_slot_t sw[EVICT_BATCH];
	int res[EVICT_BATCH];
};

static void pick_commits(struct vm_space *s, bool all, struct commit *c)
{
	struct qent e;

	c->n = 0;
	while (c->n < EVICT_BATCH && (all || s->nstaged > (long)STAGE_TARGET) &&
	       fifo_pop(&s->staged, &e)) {
		uint32_t slot = (uint32_t)e.pg;
		uint64_t pg = s->slot_owner[slot];
		struct vpage *p = pg ? ptable_get(&s->pt, pg, false) : NULL;

		if (!p || vp_kind(p) != VP_STAGED || vp_payload(p) != slot || p->qseq != e.qseq ||
		    (p->val & VP_BUSY))
			continue; /* touched again, unmapped, or the slot was reused meanwhile */
		p->val |= VP_BUSY;
		c->slot[c->n] = slot;
		c->n++;
	}
}

/* The staged pages of a batch, read from a process in one call. */
static int read_commits(struct vm_space *s, struct commit *c, unsigned char *buf)
{
	struct iovec local = { buf, (size_t)c->n * VM_PAGE }, remote[EVICT_BATCH];

	for (unsigned i = 0; i < c->n; i++)
		remote[i] = (struct iovec){ (void *)(s->staging + (uintptr_t)c->slot[i] * VM_PAGE),
					    VM_PAGE };
	return process_vm_readv(s->pid, &local, 1, remote, c->n, 0) ==
		       (ssize_t)((size_t)c->n * VM_PAGE) ? 0 : -EIO;
}

/* A compressed copy is charged before its staged page is discarded: past the first page
 * of a batch (progress, even over budget), compress only while a whole page still fits
 * the budget, or, when the group is over it already (pages brought back for a debugger,
 * faults served after their wait), while the batch has added less than the eviction
 * reserve: its staged copies, dropped next round, give back far more than that, and
 * one page a round would leave the group over budget for good. The rest stay staged. */
static void compress_commits(struct vm_space *s, struct commit *c)
{
	struct uzs_vm *vm = s->vm;
	int r = s->self || !c->n ? 0 : read_commits(s, c, vm->evict_buf);
	int64_t room0 = uzs_group_memory_room(vm_group(vm));

	for (unsigned i = 0; i < c->n; i++) {
		const void *src = s->self ? (void *)(s->staging + (uintptr_t)c->slot[i] * VM_PAGE)
					  : vm->evict_buf + (size_t)i * VM_PAGE;
		int64_t room = uzs_group_memory_room(vm_group(vm));

		if (r == 0 && i > 0 && room < (int64_t)VM_PAGE &&
		    room < room0 - (int64_t)EVICT_RESERVE * VM_PAGE)
			r = -EAGAIN;
		c->res[i] = r < 0 ? r : uzs_swap_out(vm->uzs, vm->group, src, &c->sw[i]);
	}
}

/* The staged copy has served: compressed, or unmapped while its batch was out
 * (drop_page leaves busy staged pages to us). */
static void staged_copy_done(struct vm_space *s, uint32_t slot)
{
	s->slot_owner[slot] = 0;
	s->discard[s->ndiscard++] = slot;
	s->nstaged--;
}

static unsigned settle_commits(struct vm_space *s, struct commit *c)
{
	unsigned done = 0;

	for (unsigned i = 0; i < c->n; i++) {
		/* where the page is now: mremap may have moved it meanwhile */
		uint64_t pg = s->slot_owner[c->slot[i]];
		struct vpage *p = pg ? ptable_get(&s->pt, pg, false) : NULL;
		bool still = p && vp_kind(p) == VP_STAGED && vp_payload(p) == c->slot[i] &&
			     (p->val & VP_BUSY);

		if (c->res[i] < 0 && still) { /* the engine refused it: keep it staged */
			p->val &= ~VP_BUSY;
			p->qseq = ++s->qseq;
			fifo_push(&s->staged, c->slot[i], p->qseq);
			continue;
		}
		if (still) {
			vp_set(p, VP_SWAPPED, 0, c->sw[i]);
			p->evicted_at = s->vm->evict_clock++;
			done++;
		} else if (c->res[i] >= 0) {
			uzs_free(s->vm->uzs, c->sw[i]); /* unmapped while being compressed */
		}
		staged_copy_done(s, c->slot[i]);
	}
	return done;
}

#define FORK_EVENT_WAIT_NS 50000000ull

/* A process that has forked since the fork events taken in is not evicted from until the
 * event is in (its moves would be refused). One still missing after a while belongs to a
 * fork that sends none (no managed memory was copied). */
static bool forks_in_step(struct vm_space *s, uint64_t now)
{
	if (s->forks_made <= s->forks_seen) {
		s->forks_ahead_since = 0;
		return true;
	}
	if (!s->forks_ahead_since)
		s->forks_ahead_since = now;
	if (now - s->forks_ahead_since < FORK_EVENT_WAIT_NS)
		return false;
	s->forks_seen = s->forks_made;
	s->forks_ahead_since = 0;
	return true;
}

/* An answer counting fewer forks than the events taken in: a fork made without the C
 * library's fork (a raw clone), which nothing keeps apart from moves; take its count, or
 * every move would be refused from now on. */
static void settle_forks(struct vm_space *s, const struct batch *b)
{
	/* forks_made is only fresh after moves: drops or commits alone leave it as it was */
	if (b->n && !b->fork_busy && s->forks_made < b->forks_seen)
		s->forks_seen = s->forks_made;
}

/* One round on one space: drop the staged copies compressed last time, stage a batch of
 * victims, and compress a batch of the oldest staged pages while a remote agent does the
 * first two. Returns the pages handled. */
static unsigned evict_round(struct uzs_vm *vm, struct vm_space *s, long budget)
{
	struct drops d;
	struct batch b;
	struct commit c;
	unsigned done;
	int err;

	take_drops(s, &d);
	pick_victims(s, budget, &b);
	pick_commits(s, b.n == 0, &c);
	s->evicting = true;
	pthread_mutex_unlock(&vm->lock);
	err = agent_start(s, &d, &b);
	compress_commits(s, &c);
	if (!err)
		err = agent_finish(s, &d, &b);
	if (!err)
		classify_refusals(s, &b);
	pthread_mutex_lock(&vm->lock);
	s->evicting = false;
	drops_done(s, &d);
	if (!err)
		settle_forks(s, &b);
	done = settle_moves(s, &b, err) + settle_commits(s, &c);
	if (err == -EPIPE)
		s->dead = true;
	else if (s->self)
		space_flush_discards(s);
	/* a remote space's staged copies go with its next request, or evict_main's flush */
	return done;
}

/* The space with the most pages charged that can evict now. */
static struct vm_space *biggest_space(struct uzs_vm *vm)
{
	struct vm_space *best = NULL;
	uint64_t now = mono_ns();

	for (struct vm_space *s = vm->spaces; s; s = s->next)
		if (!s->dead && !s->unresponsive && !s->traced && s->staging &&
		    (s->self || s->sock >= 0) &&
		    forks_in_step(s, now) && (!best || s->charged > best->charged))
			best = s;
	return best;
}

static long unmovable_now(struct uzs_vm *vm)
{
	long n = 0;

	for (unsigned i = 0; i < UNMOVABLE_REASONS; i++)
		n += atomic_load(&vm->st.unmovable[i]);
	return n;
}

/* The group's compressed pages count against its budget as the kernel charges zswap to
 * the memory cgroup: past the pool target (vm_balance.c), the oldest go to the swap file.
 * Pages set aside (unmovable) are taken off the budget first: they hold their part of it
 * for good, and compressed pages filling the rest would leave no room that eviction could
 * make. */
static void shrink_compressed(struct uzs_vm *vm, long budget)
{
	struct uzs_group_stats st;
	long usable = budget - unmovable_now(vm);

	usable = usable > budget / 8 ? usable : budget / 8;
	if (vm->group && uzs_group_get_stats(vm->group, &st) == 0 &&
	    st.zswap > vm_balance_pool_target(vm, usable, &st)) {
		vm->shrinking = true;
		pthread_mutex_unlock(&vm->lock);
		uzs_group_shrink(vm->group, EVICT_BATCH);
		pthread_mutex_lock(&vm->lock);
		vm->shrinking = false;
	}
}

static void look_at_processes(struct uzs_vm *vm);

/* New mappings are registered promptly even while eviction is busy: memory the program
 * touches before that is outside the budget until then. */
static void maybe_scan(struct uzs_vm *vm)
{
	if (mono_ns() - vm->last_scan_ns <= SCAN_INTERVAL_NS)
		return;
	pthread_mutex_unlock(&vm->lock);
	look_at_processes(vm);
	pthread_mutex_lock(&vm->lock);
	vm->last_scan_ns = mono_ns();
}

#define STUCK_RETRY_NS 50000000ull

static void evict_to_low_watermark(struct uzs_vm *vm, bool kicked)
{
	long budget = budget_pages(vm);
	long high = budget / 64 > 128 ? budget / 64 : 128;
	long low = budget / 32 > 256 ? budget / 32 : 256;
	unsigned idle = 0;

	atomic_store(&vm->high_pages, high);
	if (budget >= LONG_MAX / 2 || vm_headroom_pages(vm) >= high) {
		atomic_store(&vm->evict_stuck, false);
		return;
	}
	if (atomic_load(&vm->evict_stuck) && !kicked && mono_ns() < vm->stuck_retry_ns)
		return;
	while (!vm->stop && vm_headroom_pages(vm) < low && idle < 3) {
		struct vm_space *s;

		maybe_scan(vm);
		shrink_compressed(vm, budget);
		/* chosen only now: both let go of the lock, and a space may be reaped meanwhile */
		s = biggest_space(vm);
		if (!s || !evict_round(vm, s, budget))
			idle++;
		else
			idle = 0;
		vm_kick_faults(vm);
	}
	atomic_store(&vm->evict_stuck, idle >= 3 && vm_headroom_pages(vm) < 1);
	if (atomic_load(&vm->evict_stuck)) {
		vm->stuck_retry_ns = mono_ns() + STUCK_RETRY_NS;
		vm_kick_faults(vm);
	}
}

/* ---- the processes' mappings ---- */

static bool manageable(const char *perms, unsigned long inode, const char *path)
{
	return !strcmp(perms, "rw-p") && inode == 0 && (!*path || !strcmp(path, "[heap]"));
}

/* Pages present in [start, end) at registration: they are resident already. */
static void adopt_present(struct vm_space *s, uintptr_t start, uintptr_t end)
{
	char path[64];
	uint64_t ent[512];
	int fd;
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)s->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	for (uintptr_t a = start; a < end; a += sizeof(ent) / 8 * VM_PAGE) {
		size_t cnt = (end - a) / VM_PAGE < 512 ? (end - a) / VM_PAGE : 512;
		ssize_t got = pread(fd, ent, cnt * 8, (off_t)(a / VM_PAGE * 8));

		for (ssize_t i = 0; i < got / 8; i++) {
			struct vpage *p;

			if (!(ent[i] >> 63) || !(p = ptable_get(&s->pt, a / VM_PAGE + (uint64_t)i, true)) ||
			    p->val)
				continue;
			vp_set(p, VP_RESIDENT, 0, 0);
			space_enqueue(s, a / VM_PAGE + (uint64_t)i, p, false);
			n++;
		}
	}
	close(fd);
	space_charge(s, n);
	atomic_fetch_add(&s->vm->st.adopted, (uint64_t)n);
}

/* Register [start, end) minus what is registered already. */
static void register_new(struct vm_space *s, uintptr_t start, uintptr_t end)
{
	uintptr_t at = start;

	while (at < end) {
		uintptr_t next = end;
		bool covered = false;

		for (size_t i = 0; i < s->registered.n; i++) {
			struct interval *x = &s->registered.v[i];

			if (x->start <= at && x->end > at) {
				at = x->end;
				covered = true;
				break;
			}
			if (x->start > at && x->start < next)
				next = x->start;
		}
		if (covered)
			continue;
		/* a failure is a mapping that changed since the maps were read: the next
		 * look tries again */
		if (uffd_register_missing(s->uffd, at, next - at) == 0) {
			intervals_add(&s->registered, at, next);
			adopt_present(s, at, next);
		}
		at = next;
	}
}

/* Read the anonymous mappings to take on, without the lock (the fault thread goes on). */
static size_t read_maps(struct vm_space *s, struct interval *out, size_t max)
{
	char path[64], line[512];
	unsigned long prev_end = 0;
	bool prev_file_data = false;
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)s->pid);
	if (!(f = fopen(path, "re")))
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long start, end, inode;
		char perms[8], pathname[256] = "";
		bool bss;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %255s", &start, &end, perms, &inode,
			   pathname) < 4)
			continue;
		/* A small anonymous mapping right after a library's writable data is that
		 * library's .bss: the C library's and the dynamic linker's own state, which
		 * the agent thread may read while it works. Left alone. */
		bss = start == prev_end && prev_file_data && end - start <= BSS_MAX;
		prev_end = end;
		prev_file_data = inode != 0 && perms[1] == 'w';
		if (!bss && manageable(perms, inode, pathname))
			out[n++] = (struct interval){ start, end };
	}
	fclose(f);
	return n;
}

static bool covered(const struct intervals *iv, uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < iv->n; i++)
		if (iv->v[i].start <= start && iv->v[i].end >= end)
			return true;
	return false;
}

int vm_scan_maps(struct uzs_vm *vm, struct vm_space *s)
{
	enum { MAX_MAPS = 4096 };
	struct interval *maps;
	size_t n;

	if (s->regions_only) /* the program said which memory is managed */
		return 0;
	if (!(maps = malloc(MAX_MAPS * sizeof(*maps))))
		return -ENOMEM;
	n = read_maps(s, maps, MAX_MAPS);
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < n; i++)
		if (!covered(&s->registered, maps[i].start, maps[i].end) &&
		    !intervals_overlap(&s->excluded, maps[i].start, maps[i].end))
			register_new(s, maps[i].start, maps[i].end);
	pthread_mutex_unlock(&vm->lock);
	free(maps);
	return 0;
}

/* ---- forked children ---- */

struct adopt_ctx {
	struct vm_space *s;
	long n;
};

static void adopt_page(void *arg, uint64_t pg, struct vpage *p)
{
	struct adopt_ctx *c = arg;

	if (vp_kind(p) != VP_RESIDENT || !(p->val & VP_UNCHARGED))
		return;
	p->val &= ~VP_UNCHARGED;
	space_enqueue(c->s, pg, p, false);
	c->n++;
}

/* A forked child's pages still shared with its parent become its own to charge and evict
 * once it has lived a while without exec (most children exec at once, and charging them
 * meanwhile would evict the parent's memory for nothing). From then on the budget counts
 * them in both processes, which bounds the memory both hold however many of them
 * copy-on-write has duplicated since (a write to one is not seen from here). */
static void adopt_inherited(struct uzs_vm *vm)
{
	uint64_t now = mono_ns();

	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		struct adopt_ctx c = { s, 0 };

		if (!s->inherit_at_ns || now < s->inherit_at_ns || s->dead || !s->pid)
			continue;
		s->inherit_at_ns = 0;
		ptable_walk(&s->pt, 0, UINT64_MAX, adopt_page, &c);
		space_charge(s, c.n);
	}
}

/* ---- the thread ---- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- debuggers and profilers ----
 * A tracer reads the process's memory through the kernel (PTRACE_PEEKDATA, /proc/PID/mem:
 * access_remote_vm), whose page faults may not wait for userfaultfd: an evicted page reads
 * as an error there ("Cannot access memory"). So once a process is seen traced, its
 * evicted pages are brought back, over the budget if need be, and none are evicted until
 * the tracer has gone. What an untraced reader of /proc/PID/mem asks for cannot be served
 * that way: it is not seen. */

/* The process's tracer (TracerPid in its status), 0 when none or unknown. */
static pid_t tracer_of(pid_t pid)
{
	char path[64], line[128];
	pid_t t = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &t) == 1)
			break;
	fclose(f);
	return t;
}

/* Called with vm->lock held: a tracer that came is counted and the fault thread asked to
 * bring the pages back; one gone lets eviction take the process's pages again. */
static void note_tracer(struct vm_space *s, bool traced)
{
	struct uzs_vm *vm = s->vm;

	if (traced == s->traced)
		return;
	s->traced = traced;
	s->bring_back = traced;
	if (!traced) {
		/* it may be all there was to evict: eviction is no longer stuck, and the faults
		 * waiting meanwhile must wait for it, not be served over the budget */
		atomic_store(&vm->evict_stuck, false);
		vm->evict_kick = true;
		return;
	}
	atomic_fetch_add(&vm->st.traced_attaches, 1);
	atomic_store(&vm->bring_back_any, true);
	vm_kick_faults(vm);
}

#define BRING_BACK_BATCH 256u
#define BRING_BACK_RELOOK_NS 20000000ull

struct back_ctx {
	uint64_t pg[BRING_BACK_BATCH];
	unsigned n;
	bool busy; /* pages in flight (moving, compressing): taken on a later pass */
};

static void find_evicted(void *arg, uint64_t pg, struct vpage *p)
{
	struct back_ctx *c = arg;
	unsigned kind = vp_kind(p);

	if (p->val & VP_BUSY)
		c->busy = true;
	else if ((kind == VP_SWAPPED || kind == VP_STAGED) && c->n < BRING_BACK_BATCH)
		c->pg[c->n++] = pg;
}

/* One batch for one traced space: the pages brought back; *more: some are left. */
static unsigned bring_back_space(struct vm_space *s, bool *more)
{
	struct uzs_vm *vm = s->vm;
	uint64_t before = atomic_load(&vm->st.swapins) + atomic_load(&vm->st.staged_refaults);
	struct back_ctx c = { .n = 0, .busy = false };
	uint64_t done;

	ptable_walk(&s->pt, 0, UINT64_MAX, find_evicted, &c);
	for (unsigned i = 0; i < c.n && !s->dead; i++) {
		struct vpage *p = ptable_get(&s->pt, c.pg[i], false);

		/* readahead may have brought it with a neighbour meanwhile */
		if (p && !(p->val & VP_BUSY) &&
		    (vp_kind(p) == VP_SWAPPED || vp_kind(p) == VP_STAGED))
			vm_serve_now(s, c.pg[i]);
	}
	done = atomic_load(&vm->st.swapins) + atomic_load(&vm->st.staged_refaults) - before;
	atomic_fetch_add(&vm->st.traced_pages_in, done);
	*more = c.n > 0 || c.busy;
	return (unsigned)done;
}

unsigned vm_bring_back_traced(struct uzs_vm *vm)
{
	bool left = false;
	unsigned done = 0;

	if (mono_ns() < vm->bring_back_next_ns)
		return 0;
	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		bool more;

		if (!s->bring_back || s->dead)
			continue;
		done += bring_back_space(s, &more);
		s->bring_back = more;
		left |= more;
	}
	if (!left)
		atomic_store(&vm->bring_back_any, false);
	/* in flight, or refused for now (a mapping changing): look again later, not after
	 * every fault */
	vm->bring_back_next_ns = left && !done ? mono_ns() + BRING_BACK_RELOOK_NS : 0;
	pthread_mutex_unlock(&vm->lock);
	if (left && done)
		vm_kick_faults(vm);
	return done;
}

/* A process whose agent socket hung up has exited (or exec'd: the socket is CLOEXEC). */
static bool hung_up(struct vm_space *s)
{
	struct pollfd pfd = { .fd = s->sock, .events = POLLIN | POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

static void look_at_processes(struct uzs_vm *vm)
{
	struct vm_space *todo[64];
	unsigned n = 0;

	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		if (s->self || s->sock < 0 || s->dead)
			continue;
		if (hung_up(s)) {
			s->dead = true;
			continue;
		}
		s->unresponsive = false;
		if (n < 64) {
			s->evicting = true; /* keeps it from being reaped while we scan */
			todo[n++] = s;
		}
	}
	pthread_mutex_unlock(&vm->lock);
	bool traced[64];

	for (unsigned i = 0; i < n; i++) {
		vm_scan_maps(vm, todo[i]);
		traced[i] = tracer_of(todo[i]->pid) > 0;
	}
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < n; i++) {
		todo[i]->evicting = false;
		note_tracer(todo[i], traced[i]);
	}
	pthread_mutex_unlock(&vm->lock);
	vm_kick_faults(vm);
}

void *evict_main(void *arg)
{
	struct uzs_vm *vm = arg;

	pthread_mutex_lock(&vm->lock);
	while (!vm->stop) {
		struct timespec until;

		if (!vm->evict_kick) {
			/* the condvar waits on CLOCK_MONOTONIC (vm_alloc): a change of the
			 * wall clock neither stretches nor skips the 2 ms */
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += 2000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&vm->evict_cond, &vm->lock, &until);
		}
		bool kicked = vm->evict_kick;

		vm->evict_kick = false;
		maybe_scan(vm);
		adopt_inherited(vm);
		evict_to_low_watermark(vm, kicked);
		for (struct vm_space *s = vm->spaces; s; s = s->next)
			if (!s->dead && s->ndiscard)
				space_flush_discards(s);
	}
	pthread_mutex_unlock(&vm->lock);
	engine_thread_cleanup();
	return NULL;
}
