/* SPDX-License-Identifier: MIT */
/* The transparent mode's races around a page's move out, each forced into one order with
 * the fault build's hooks (src/common/fault.h): the hook runs on the eviction thread at the point
 * where the race hurts, and does the program's side of it there. */
#define _GNU_SOURCE
#define UZS_FAULT_IMPL /* the test's own allocations never fail */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "regions.h"
#include "uffd.h"

#define WATCHDOG_S 60 /* a hang is a failure: the alarm kills the test */

struct drop_race {
	unsigned char *page;
	pthread_t writer;
	atomic_bool fired, done, wrote;
};

static void *write_dropped_page(void *arg)
{
	struct drop_race *d = arg;

	d->page[8] = 0x5a;
	atomic_store(&d->wrote, true);
	return NULL;
}

/* The program drops the page the evictor is about to move, then writes it again (from
 * another thread: the evictor's own faults are served as the mover's). */
static void drop_then_write(void *arg, uint64_t addr)
{
	struct drop_race *d = arg;

	d->page = (unsigned char *)(uintptr_t)addr;
	atomic_store(&d->fired, true);
	CHECK_EQ(madvise(d->page, PG, MADV_DONTNEED), 0);
	CHECK_EQ(pthread_create(&d->writer, NULL, write_dropped_page, d), 0);
	usleep(50000); /* its fault reaches the handler, which must hold it back */
	atomic_store(&d->done, true);
}

/* A write to a page dropped while its move was under way lands in a page the move can no
 * longer take: it is there afterwards (the move taking the new page would lose it). The
 * eviction round is started while the budget still has room, so the write's fault is
 * held back only because its page is in flight. */
static void write_after_drop_during_move_survives(void)
{
	struct fixture f = start(4 * MB);
	struct drop_race d = { 0 };
	size_t pages = 12 * MB / PG, low = 6 * MB / PG, high = pages;
	unsigned char *r;
	unsigned bad = 0;

	alarm(WATCHDOG_S);
	CHECK_EQ(uzs_region_create(f.vm, pages * PG, (void **)&r), 0);
	for (size_t i = low; i-- > 0;) /* backwards: see below */
		fill(r + i * PG, i, 1);
	uzs_vm_sync(f.vm); /* the eviction it set off is over: room up to the low watermark */
	fault_on(HOOK_MOVE_BATCH, drop_then_write, &d);
	/* page by page down to the high watermark, and not one more once the round has
	 * started. Backwards, so that no zero-fill window takes the room left in one go, and
	 * the victims, taken in fault order, are moved one call each (the kernel may refuse
	 * to move a page just installed as part of a stretch, which would hide the race) */
	while (high > low && !atomic_load(&d.fired)) {
		high--;
		fill(r + high * PG, high, 1);
	}
	while (!atomic_load(&d.done))
		usleep(1000);
	CHECK_EQ(pthread_join(d.writer, NULL), 0);
	CHECK(atomic_load(&d.wrote));
	CHECK_EQ(d.page[8], 0x5a);
	for (unsigned i = 0; i < PG; i++)
		bad += i != 8 && d.page[i] != 0; /* the rest of it reads as dropped */
	for (size_t i = 0; i < pages; i++) /* every other page is intact */
		bad += (i < low || i >= high) && r + i * PG != d.page && !same(r + i * PG, i, 1);
	CHECK_EQ(bad, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	alarm(0);
}

static void drop_page(void *arg, uint64_t addr)
{
	*(uint64_t *)arg = addr;
	CHECK_EQ(madvise((void *)(uintptr_t)addr, PG, MADV_DONTNEED), 0);
}

/* A page shared with a forked child is made ours before it moves; if the program dropped
 * it just before, making it ours would fault on the managed range from the mover itself,
 * on a page marked as moving, which the handler holds back: the kernel refuses that fault
 * instead of waiting (a hang here would fail through the watchdog), and the move is given
 * up. The page reads as dropped, every other page is intact, the child sees its copy. */
static void shared_page_dropped_before_unshare(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 12 * MB / PG;
	uint64_t dropped = 0;
	unsigned char *r, byte = 1;
	int go[2], status = -1;
	unsigned nonzero = 0;
	pid_t pid;

	alarm(WATCHDOG_S);
	r = filled_region(&f, pages, 1);
	CHECK_EQ(pipe(go), 0);
	/* forked without the C library (no pthread_atfork): the child gets no agent, so its
	 * copies stay shared however long the parent takes */
	pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) { /* holds the pages shared until the parent is done, then checks them */
		close(go[1]);
		while (read(go[0], &byte, 1) > 0) {
		}
		_exit(count_bad(r, pages, 1) == 0 ? 0 : 1);
	}
	close(go[0]);
	fault_on(HOOK_MOVE_UNSHARE, drop_page, &dropped);
	/* reading the evicted pages back evicts the resident ones, which the child shares */
	count_bad(r, pages, 1);
	CHECK(dropped != 0);
	for (size_t i = 0; i < pages; i++)
		if (r + i * PG != (unsigned char *)(uintptr_t)dropped)
			nonzero += !same(r + i * PG, i, 1); /* every other page intact */
	for (unsigned i = 0; i < PG; i++)
		nonzero += ((unsigned char *)(uintptr_t)dropped)[i] != 0; /* that one dropped */
	CHECK_EQ(nonzero, 0);
	CHECK_EQ(vstats(&f).evict_shared, 1); /* that page's move, and only that one */
	close(go[1]);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	alarm(0);
}

struct fork_race {
	unsigned char *r, *victim;
	size_t pages;
	int absent[2], go[2];
	pid_t child;
};

/* The program forks while the evictor has chosen pages but not yet moved them. The child
 * counts the pages it does not have mapped, says so, and keeps all until told to end. */
static void fork_now(void *arg, uint64_t addr)
{
	struct fork_race *fr = arg;
	unsigned absent = 0;
	char byte;

	fr->victim = (unsigned char *)(uintptr_t)addr;
	fr->child = fork();
	if (fr->child)
		return;
	close(fr->go[1]);
	for (size_t i = 0; i < fr->pages; i++)
		absent += !resident(fr->r + i * PG);
	if (write(fr->absent[1], &absent, sizeof(absent)) != sizeof(absent))
		_exit(1);
	while (read(fr->go[0], &byte, 1) > 0) {
	}
	_exit(count_bad(fr->r, fr->pages, 1) == 0 ? 0 : 1); /* and it sees what was there */
}

/* A region of fr->pages written (eviction has moved part of it out and is at rest),
 * and the hook set to fork at the next eviction round. */
static void fork_race_ready(struct fixture *f, struct fork_race *fr)
{
	CHECK_EQ(uzs_region_create(f->vm, fr->pages * PG, (void **)&fr->r), 0);
	CHECK_EQ(pipe(fr->absent), 0);
	CHECK_EQ(pipe(fr->go), 0);
	for (size_t i = 0; i < fr->pages; i++)
		fill(fr->r + i * PG, i, 1);
	uzs_vm_sync(f->vm);
	fault_on(HOOK_MOVE_BATCH, fork_now, fr);
}

/* The moves of a round under way when the process forks are not made (they would take
 * pages the child already has a copy of, which the fork event, read later, would then
 * record for the child as swapped, and hold slots for): every page written before, once
 * the parent's are gone, the slots left are exactly one per page the child lacks. */
static void fork_during_eviction_round(void)
{
	struct fixture f = start(8 * MB); /* room for pages of the first region to stay in */
	struct fork_race fr = { .pages = 12 * MB / PG };
	size_t more_pages = MB / PG;
	unsigned char *more;
	unsigned absent = 0;
	int status = -1;

	alarm(WATCHDOG_S);
	CHECK_EQ(uzs_region_create(f.vm, more_pages * PG, (void **)&more), 0);
	fork_race_ready(&f, &fr);
	/* The round is set off by first touches of another region: while the process forks,
	 * no page of the first one is being brought back (a page swapped in for the parent
	 * as it forks is another race: see the README's fork gaps), and the newest pages,
	 * these, are not the ones evicted. */
	for (size_t i = 0; i < more_pages; i++)
		more[i * PG] = 1;
	CHECK_EQ(read(fr.absent[0], &absent, sizeof(absent)), (ssize_t)sizeof(absent));
	uzs_vm_sync(f.vm);
	CHECK_EQ(uzs_region_destroy(f.vm, fr.r, fr.pages * PG), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, more, more_pages * PG), 0);
	fprintf(stderr, "  the child lacks %u pages; slots held %llu\n", absent,
		(unsigned long long)estats(f.uzs).swap_slots_used);
	CHECK(fr.victim >= fr.r && fr.victim < fr.r + fr.pages * PG); /* its pages moving */
	CHECK(absent > 0 && absent < fr.pages);
	CHECK_EQ(estats(f.uzs).swap_slots_used, absent);
	close(fr.go[1]);
	CHECK_EQ(waitpid(fr.child, &status, 0), fr.child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	stop(&f);
	alarm(0);
}

/* The process forks while its pages are being read back (the evictor forks it, from the
 * hook, during a round that reading set off). The kernel hands out faults before events,
 * and stops refusing installs once a fork event is read: faults read together with it and
 * served first put pages in the parent after the child got its copy, while the fork event
 * recorded them as resident for the child, which then read zeros there (2 of 16 runs
 * under load, before the events of a read went first; this test does not catch it every
 * time). The child must see every page as it was. */
static void fork_while_pages_come_back(void)
{
	struct fixture f = start(4 * MB);
	struct fork_race fr = { .pages = 12 * MB / PG };
	unsigned absent = 0;
	int status = -1;

	alarm(WATCHDOG_S);
	fork_race_ready(&f, &fr);
	CHECK_EQ(count_bad(fr.r, fr.pages, 1), 0);
	CHECK_EQ(read(fr.absent[0], &absent, sizeof(absent)), (ssize_t)sizeof(absent));
	close(fr.go[1]);
	CHECK_EQ(waitpid(fr.child, &status, 0), fr.child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(uzs_region_destroy(f.vm, fr.r, fr.pages * PG), 0);
	stop(&f);
	alarm(0);
}

struct occupied_slot {
	uint64_t slot;            /* the staging slot filled behind the evictor's back */
	int uffd;                 /* the test's own: UFFDIO_COPY fills any registered range */
	unsigned char page[PG];   /* what it was filled with */
	atomic_int rounds_after;  /* later rounds seen */
	atomic_bool still_there;  /* whether the filling was still in the slot then */
};

static bool holds_filling(const struct occupied_slot *o)
{
	return resident((void *)(uintptr_t)o->slot) &&
	       memcmp((void *)(uintptr_t)o->slot, o->page, PG) == 0;
}

/* Later rounds, on the eviction thread (the only one that moves or drops staging): is
 * the filling still there, after the round that found it has been settled and dropped? */
static void look_at_slot(void *arg, uint64_t dst)
{
	struct occupied_slot *o = arg;

	(void)dst;
	atomic_store(&o->still_there, holds_filling(o));
	if (atomic_fetch_add(&o->rounds_after, 1) < 3)
		fault_on(HOOK_MOVE_INTO, look_at_slot, o);
}

static void fill_slot(void *arg, uint64_t dst)
{
	struct occupied_slot *o = arg;

	o->slot = dst;
	CHECK_EQ(uffd_copy(o->uffd, (uintptr_t)dst, o->page, PG), PG);
	fault_on(HOOK_MOVE_INTO, look_at_slot, o);
}

/* A move into a staging slot that holds a page (-EEXIST; a kernel misreporting a move
 * would leave one so) leaves the victim where it was, and the slot is dropped before it
 * is used again: handed back as free, it would refuse every later move into it. */
static void occupied_slot_is_dropped(void)
{
	struct fixture f = start(4 * MB);
	size_t pages = 12 * MB / PG;
	struct occupied_slot *o = calloc(1, sizeof(*o));
	unsigned char *r;

	alarm(WATCHDOG_S);
	memset(o->page, 0xa5, PG);
	o->uffd = uffd_open_kernel_mode();
	CHECK_EQ(uffd_handshake(o->uffd, 0), 0);
	fault_on(HOOK_MOVE_INTO, fill_slot, o);
	r = filled_region(&f, pages, 1);
	for (unsigned pass = 0; pass < 3 && atomic_load(&o->rounds_after) < 3; pass++)
		CHECK_EQ(count_bad(r, pages, 1), 0); /* more rounds, and nothing lost */
	CHECK(o->slot != 0);
	CHECK(atomic_load(&o->rounds_after) >= 3);
	CHECK(!atomic_load(&o->still_there));
	CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(vstats(&f).pages_lost, 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	close(o->uffd);
	free(o);
	alarm(0);
}

/* SIGBUS on a page that could not come back, caught in the thread that touched it. */
static __thread sigjmp_buf bus_jump;
static atomic_int bus_hits;

static void on_bus(int sig)
{
	(void)sig;
	atomic_fetch_add(&bus_hits, 1);
	siglongjmp(bus_jump, 1);
}

struct toucher {
	const unsigned char *page;
	uint64_t pg, gen;
	bool ok;
};

static void *touch_page(void *arg)
{
	struct toucher *t = arg;

	if (sigsetjmp(bus_jump, 1) == 0)
		t->ok = same(t->page, t->pg, t->gen);
	return NULL;
}

/* Wait until the page at addr is out of the program and compressed (not staged). */
static bool swapped_out(struct fixture *f, const void *addr)
{
	for (int i = 0; i < 400; i++) {
		if (!resident(addr) && !vstats(f).staged_pages)
			return true;
		usleep(5000);
	}
	return false;
}

/* A swapped page the fault thread cannot decompress for want of memory (its decompressor
 * state fails to allocate) is a shortage, not damage: the fault waits and is served once
 * memory is back, with the page's data; before, it was poisoned (SIGBUS) and its slot
 * freed. */
static void decompressor_shortage_defers_the_fault(void)
{
	struct fixture f = start(1 * MB);
	size_t pages = 4 * MB / PG;
	struct toucher t = { .pg = 0, .gen = 1 };
	struct sigaction sa = { .sa_handler = on_bus }, old;
	unsigned long injected;
	pthread_t th;
	unsigned char *r;

	alarm(WATCHDOG_S);
	atomic_store(&bus_hits, 0);
	/* zstd: its decompression needs per-thread state, which the fault thread does not
	 * have yet (it has served only first touches) */
	CHECK_EQ(uzs_set_compressor(f.uzs, "zstd", 0), 0);
	/* the page must stay compressed in the pool (a page read from the swap file needs no
	 * decompressor state): no writeback, whatever the pool target does */
	CHECK_EQ(uzs_group_set_zswap_writeback(f.g, false), 0);
	r = filled_region(&f, pages, 1);
	uzs_vm_sync(f.vm);
	CHECK(swapped_out(&f, r));
	t.page = r;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGBUS, &sa, &old), 0);
	fault_fail_every(FAULT_ALLOC, 1);
	CHECK_EQ(pthread_create(&th, NULL, touch_page, &t), 0);
	usleep(50 * 1000); /* the fault is tried, and retried, while allocations fail */
	injected = fault_injected(FAULT_ALLOC);
	fault_reset();
	pthread_join(th, NULL);
	sigaction(SIGBUS, &old, NULL);
	CHECK(injected > 0);
	CHECK_EQ(atomic_load(&bus_hits), 0);
	CHECK(t.ok);
	CHECK_EQ(vstats(&f).swapin_errors, 0);
	CHECK_EQ(estats(f.uzs).decompress_fail, 0);
	if (!atomic_load(&bus_hits)) /* else page 0 is poisoned: reading it would end the test */
		CHECK_EQ(count_bad(r, pages, 1), 0);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	alarm(0);
}

struct restore_race {
	struct fixture *f;
	unsigned char *page;  /* the page whose swap-in is raced */
	unsigned char *other; /* a resident page whose drop leaves an event pending */
	pthread_t dropper;
	atomic_bool fired;
};

static void *drop_other(void *arg)
{
	struct restore_race *d = arg;

	CHECK_EQ(madvise(d->other, PG, MADV_DONTNEED), 0);
	return NULL;
}

/* On the fault thread, the pages decompressed and their slots gone: the program drops
 * another page (its event pending, so the install is refused: EAGAIN), and the group's
 * cache refuses every store with writeback off (so they cannot be stored again). */
static void pend_and_refuse(void *arg, uint64_t addr)
{
	struct restore_race *d = arg;

	if (addr != (uintptr_t)d->page) { /* another page's swap-in: wait for ours */
		fault_on(HOOK_SWAPIN_READ, pend_and_refuse, d);
		return;
	}
	atomic_store(&d->fired, true);
	CHECK_EQ(uzs_group_set_zswap_writeback(d->f->g, false), 0);
	CHECK_EQ(uzs_group_set_zswap_max(d->f->g, 0), 0);
	CHECK_EQ(pthread_create(&d->dropper, NULL, drop_other, d), 0);
	usleep(50 * 1000); /* its event reaches the descriptor */
}

/* Pages swapped in that can be neither installed nor stored again have lost their data:
 * the access raises SIGBUS (counted), never reads zeros as if nothing had been there. */
static void page_that_cannot_be_put_back_is_never_zeros(void)
{
	struct fixture f = start(1 * MB);
	size_t pages = 4 * MB / PG;
	struct restore_race d = { .f = &f };
	struct toucher t = { .pg = 0, .gen = 1 };
	struct sigaction sa = { .sa_handler = on_bus }, old;
	pthread_t th;
	unsigned char *r;

	alarm(WATCHDOG_S);
	atomic_store(&bus_hits, 0);
	r = filled_region(&f, pages, 1);
	uzs_vm_sync(f.vm);
	CHECK(swapped_out(&f, r));
	d.other = r + (pages - 1) * PG;
	d.page = r;
	t.page = r;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGBUS, &sa, &old), 0);
	fault_on(HOOK_SWAPIN_READ, pend_and_refuse, &d);
	CHECK_EQ(pthread_create(&th, NULL, touch_page, &t), 0);
	pthread_join(th, NULL);
	sigaction(SIGBUS, &old, NULL);
	CHECK(atomic_load(&d.fired));
	if (atomic_load(&d.fired))
		pthread_join(d.dropper, NULL);
	fault_reset();
	CHECK(!t.ok);
	CHECK_EQ(atomic_load(&bus_hits), 1);
	CHECK(vstats(&f).swapin_errors >= 1);
	CHECK_EQ(uzs_region_destroy(f.vm, r, pages * PG), 0);
	stop(&f);
	alarm(0);
}

int main(void)
{
	skip_unless_transparent_mode_works();
	RUN(write_after_drop_during_move_survives);
	RUN(shared_page_dropped_before_unshare);
	RUN(fork_during_eviction_round);
	RUN(fork_while_pages_come_back);
	RUN(occupied_slot_is_dropped);
	RUN(decompressor_shortage_defers_the_fault);
	RUN(page_that_cannot_be_put_back_is_never_zeros);
	return CHECK_DONE();
}
