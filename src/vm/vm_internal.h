/* SPDX-License-Identifier: MIT */
/*
 * vm_internal — the structures shared by the vm's files: vm.c (lifecycle, regions API,
 * attach, stats), vm_fault.c (the fault thread, serving faults), vm_events.c (munmap,
 * madvise, mremap, fork events), vm_space.c (spaces, staging slots), vm_intervals.c
 * (range sets), vm_selffork.c (forks of this process), vm_fork.c (a forked child's
 * trim), vm_agents.c (children's agents), vm_balance.c (the pool target) and vm_evict.c
 * (the eviction policy, the agent calls, the maps scan).
 *
 * Locking: vm->lock guards every space's table, queues and staging. The fault thread is
 * the only one that changes pages that are not resident (NONE, SWAPPED) and the only one
 * that handles the program's events, so it may decompress outside the lock; the eviction
 * thread only takes resident pages and commits the staged ones it marked busy.
 */
#ifndef UZS_VM_INTERNAL_H
#define UZS_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <linux/userfaultfd.h>

#include "agent_proto.h"
#include "vm.h"
#include "vm_table.h"

#define VM_PAGE UZS_PAGE_SIZE /* the short name in the vm's files */
#define RA_MAX 64u        /* pages swapped in ahead of a sequential fault */
#define RA_STREAMS 8u     /* sequential streams followed at once */
#define RA_STREAM_IDLE 64u /* faults after which a stream not continued has ended */
#define RA_PROBE_EVERY 8u  /* one swap-in stream in this many starts with one page, always */
#define RA_PROBE_MIN 32u   /* probes before the neighbour is read ahead */
#define RA_PROBE_DECAY 1024u /* probe counts are halved here: recent behaviour counts */
enum { RA_ALONE, RA_ABOVE, RA_BELOW }; /* which neighbour a swap-in brings along */
#define ZERO_AROUND 64u   /* pages zero-filled ahead of a sequential first touch */
#define EVICT_BATCH AGENT_BATCH
#define STAGE_TARGET 128u /* pages kept staged (uncompressed) for a second chance */
/* Room faults leave to the eviction thread: a page being compressed is charged twice
 * (staged and compressed) until its staged copy is discarded, and that must fit too. */
#define EVICT_RESERVE 32
/* A swapped page whose data could not be kept anywhere (0 is never a slot): an access
 * raises SIGBUS, never zeros; it was counted in swapin_errors when it was lost. */
#define LOST_SLOT 0

/* Why a page could not be moved out (UFFDIO_MOVE refused it): its mapping is read-only or
 * locked (the kernel moves only between writable, unlocked anonymous mappings, as the
 * staging range is), it is pinned (io_uring buffers, a transfer in flight), or else. */
enum { UNMOVABLE_READONLY, UNMOVABLE_LOCKED, UNMOVABLE_PINNED, UNMOVABLE_OTHER,
       UNMOVABLE_REASONS };

struct interval {
	uintptr_t start, end;
};

struct intervals {
	struct interval *v;
	size_t n, cap;
	struct interval hit; /* the last one intervals_end_at found; cleared by any change */
};

struct vm_space {
	struct uzs_vm *vm;
	struct vm_space *next;
	pid_t pid;       /* 0 until a forked child's agent says hello */
	bool self;       /* this process: moves and discards are direct calls */
	bool regions_only; /* a child of a library process: only its regions are managed,
			    * never what its maps show */
	int uffd;        /* managed ranges */
	int staging_uffd; /* self only: the staging range (remote: the agent holds it) */
	int sock;        /* remote: the agent; -1 when none (yet) */
	pid_t fork_parent;

	struct ptable pt;
	struct fifo inactive, active;
	struct fifo staged; /* staging slots in the order they were filled */
	/* Resident pages a move refused for a lasting reason (VP_ASIDE, the reason as
	 * payload): still charged, no longer picked, tried again together once aside_retry_ns
	 * has passed, the wait doubling while they stay refused (vm_evict.c). */
	struct fifo aside;
	long naside[UNMOVABLE_REASONS];
	uint64_t aside_retry_ns, aside_backoff_ns;
	/* eviction thread: the mapping of the last refusal looked up, why, and when */
	struct interval refused_vma;
	uint8_t refused_why;
	uint64_t refused_at_ns;
	uint32_t qseq;
	long charged;    /* pages charged to the group: resident + staging */
	long nactive, nstaged;

	uintptr_t staging;
	unsigned staging_slots;
	uint64_t *slot_owner;   /* page number staged in each slot; 0: free */
	uint64_t *slot_free;    /* bitmap of the staging slots free for a move */
	unsigned nfree, slot_cursor;
	uint32_t *discard;      /* slots whose pages wait to be discarded */
	unsigned ndiscard;

	struct intervals registered, excluded;
	/* Sequential streams of faults (a program often fills or reads several areas at
	 * once: interleaved, each is still sequential): where each one's last window ended,
	 * and how large the next is. */
	struct stream {
		uint64_t end;
		unsigned window;
		uint32_t used; /* the fault count when it was last continued */
		bool probe;    /* a swap-in stream started with one page: is it continued? */
	} streams[RA_STREAMS];
	uint32_t fault_count;
	/* How often the page above or below a swap-in stream started with one page (a
	 * probe) faulted next (objects straddling pages), and how many probes there were. */
	uint32_t ra_probes, ra_hits_above, ra_hits_below, ra_starts;

	/* Forks, to keep moves and forks apart (see agent_req): the fork events taken in,
	 * the process's own count at its last moves, and since when that count has been
	 * ahead (a fork whose event is yet to be read). */
	uint32_t forks_seen, forks_made;
	uint64_t forks_ahead_since;
	uint64_t forked_at_ns;  /* a forked child: when its fork event was handled */
	uint64_t inherit_at_ns; /* a forked child: when the pages it shares with its parent
				 * become its own to charge and evict (0: nothing pending) */

	/* A debugger or profiler is attached (TracerPid): it reads memory through the kernel
	 * without waiting for faults, so evicted pages are brought back (bring_back, by the
	 * fault thread) and none are evicted until it detaches (vm_evict.c, vm_fault.c, vm.c). */
	bool traced, bring_back;
	bool dead;      /* the process exited: reap when no thread uses it */
	unsigned pins;  /* threads using it outside the lock, besides the eviction thread's */
	bool evicting;  /* the eviction thread works on it outside the lock */
	bool unresponsive;
};

/* The boundary between resident and compressed memory (vm_balance.c). */
enum { BAL_STAGED, BAL_POOL, BAL_FILE, BAL_TIERS }; /* where a refault came from */
#define BAL_BUCKETS 124u /* refault distances: 4 buckets per power of two up to 2^32 */

struct vm_balance {
	/* the fault thread, under vm->lock */
	uint32_t hist[2][BAL_BUCKETS]; /* pool, file refaults by distance (decayed) */
	uint32_t staged;               /* staged refaults (decayed as hist) */
	uint32_t max_pool_distance;
	uint32_t recent;               /* refaults since the last decision */
	uint64_t refaults[BAL_TIERS];  /* all of them */
	/* the fault thread only: its last look for messages (0: after a sleep, untimed),
	 * and the faults served since */
	uint64_t look_ns;
	unsigned batch_tier, batch_n;
	_Atomic uint32_t cost_ns[BAL_TIERS]; /* service time per fault, moving average */
	_Atomic uint32_t samples[BAL_TIERS];
	/* the eviction thread, under vm->lock */
	uint64_t target;        /* pool bytes the group may hold; 0: not set yet */
	uint32_t decided_clock; /* evict_clock at the last decision */
	int last_dir, pending;  /* the last step's direction, a reversal asked once */
	uint64_t shrinks, grows;
};

struct pending_fault {
	struct vm_space *space;
	uintptr_t addr;
	uint64_t since_ns;
};

struct uzs_vm {
	struct uzs *uzs;
	struct uzs_group *group;
	pthread_mutex_t lock;
	struct vm_space *spaces;
	struct vm_space *hot; /* fault thread only: the space whose faults came last */
	unsigned hot_turns;   /* fault thread only: its looks at hot (see wait_events) */
	struct vm_space *self;

	int epfd;
	int kick_fd; /* eventfd: wakes the fault thread (room made, new space, stop) */
	pthread_t fault_thread, evict_thread;
	pthread_cond_t evict_cond;
	bool evict_kick, stop;
	bool shrinking; /* the eviction thread is writing compressed pages back (lock dropped) */
	uint64_t sync_req, sync_done; /* uzs_vm_sync: loops of the fault thread asked, done */
	pthread_cond_t sync_cond;

	/* Library mode: the socket this process's forked children's agents connect to, and
	 * the thread taking their hellos (vm_agents.c); -1 until the first region. */
	int agent_listen, listen_stop;
	pthread_t listen_thread;
	bool listening;
	pthread_mutex_t listen_lock;

	struct pending_fault *pending;
	size_t npending, pending_cap;

	/* Forks of this process (see vm_forks_quiesce_all): an odd fork_req asks the fault thread
	 * to only read messages, into the stash (mmap'ed: no malloc), until it changes;
	 * fork_ack is the fork_req it is doing so for. */
	_Atomic unsigned fork_req, fork_ack;
	struct stashed_msg {
		struct vm_space *space;
		struct uffd_msg msg;
	} *stash;
	size_t nstash, stash_cap;
	struct uzs_vm *next_live;
	pid_t owner; /* the process whose threads serve it (a forked child has a copy) */

	unsigned char *buf;  /* fault thread: pages being installed */
	unsigned char *zero; /* ZERO_AROUND zero pages */
	unsigned char *evict_buf; /* eviction thread: a staged page read from a process */
	uint32_t evict_clock;
	_Atomic long high_pages; /* eviction starts when the room falls below this */
	uint64_t last_scan_ns; /* eviction thread: when the processes' mappings were read */
	_Atomic bool evict_stuck;
	_Atomic bool bring_back_any; /* a space's bring_back is set */
	uint64_t bring_back_next_ns; /* fault thread: when to look for pages to bring back */
	uint64_t stuck_retry_ns;
	struct vm_balance bal;

	struct {
		_Atomic uint64_t faults, zero_fills, swapins, staged_refaults, readahead_pages,
			evicted, evict_shared, waits, budget_overruns, swapin_errors, pages_lost,
			adopted, agents_refused;
		_Atomic uint64_t traced_attaches, traced_pages_in;
		/* pages set aside now (all spaces) and the most at once, by reason */
		_Atomic long unmovable[UNMOVABLE_REASONS], unmovable_peak[UNMOVABLE_REASONS],
			unmovable_total_peak;
	} st;
};

static inline uintptr_t pg_addr(uint64_t pg)
{
	return (uintptr_t)pg * VM_PAGE;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Charge nr pages (negative: uncharge) to the space and its group. */
static inline void space_charge(struct vm_space *s, long nr)
{
	s->charged += nr;
	uzs_group_charge_resident(s->vm->group ? s->vm->group : uzs_root_group(s->vm->uzs), nr);
}

/* Queue a resident page on the active or inactive list (per page: inline). */
static inline void space_enqueue(struct vm_space *s, uint64_t pg, struct vpage *p, bool active)
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

/* The end of the interval holding addr; addr itself when none does. Faults come in runs
 * within one interval, so the last one found is tried first. */
static inline uintptr_t intervals_end_at(struct intervals *iv, uintptr_t addr)
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

/* vm.c */
void vm_kick_faults(struct uzs_vm *vm);
/* A thread of the vm's, with every signal blocked; 0 or -errno. */
int vm_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Wait until the fault thread has handled what the descriptors held when called (the
 * first half of uzs_vm_sync: not the eviction round in flight, so that the eviction
 * thread itself may call it). */
void vm_sync_events(struct uzs_vm *vm);

/* vm_intervals.c */
int intervals_add(struct intervals *iv, uintptr_t start, uintptr_t end);
void intervals_remove(struct intervals *iv, uintptr_t start, uintptr_t end);
bool intervals_overlap(const struct intervals *iv, uintptr_t start, uintptr_t end);

/* vm_space.c */
/* A new space on uffd (not yet in vm->spaces); NULL when out of memory. */
struct vm_space *space_new(struct uzs_vm *vm, int uffd);
/* Its staging range: slots pages at base. */
int space_setup_staging(struct vm_space *s, uintptr_t base, unsigned slots);
/* Free a space no thread uses (its pages, charges, descriptors). */
void space_free(struct vm_space *s);
/* Put a space in vm->spaces and the fault thread's epoll set. */
int space_add(struct uzs_vm *vm, struct vm_space *s);
/* A free staging slot (nfree must be > 0), and giving one back. */
uint32_t staging_take(struct vm_space *s);
void staging_give(struct vm_space *s, uint32_t slot);
/* Read staged page slot into buf (remote: process_vm_readv). */
int space_read_staged(struct vm_space *s, unsigned slot, void *buf);

/* vm_fault.c */
/* The fault thread's loop. */
void *fault_main(void *arg);
/* Handle one message of a space's descriptor: a fault, or an event (vm_events.c). */
void handle_msg(struct vm_space *s, const struct uffd_msg *m);
/* Serve a page as its fault would be, over the budget (the fault thread only). */
int vm_serve_now(struct vm_space *s, uint64_t pg);

/* vm_events.c */
/* Drop the record of the pages in [start, end) (their slots, their charge), and with
 * unmap the range's registration; vm->lock held. */
void space_forget(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap);
/* munmap or madvise(DONTNEED) of [start, end). */
void on_remove(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap);
/* mremap of len bytes from from to to. */
void on_remap(struct vm_space *s, uintptr_t from, uintptr_t to, uintptr_t len);
/* A fork of the space's process: child_fd is the child's descriptor. */
void on_fork(struct vm_space *parent, int child_fd);

/* vm_selffork.c */
/* Around a fork of this process, every live vm (see "forks of this process" in
 * vm_selffork.c): before (blocks until each fault thread only reads), in the parent
 * after, in the child. */
void vm_forks_quiesce_all(void);
void vm_forks_resume_all(void);
void vm_forks_forget_all(void);
/* A vm joining or leaving the live list. */
void live_add(struct uzs_vm *vm);
void live_remove(struct uzs_vm *vm);
/* The fault thread while a fork of this process is under way: stash, then handle. */
unsigned quiet_during_fork(struct uzs_vm *vm, unsigned req);

/* vm_agents.c */
int vm_children_listen(struct uzs_vm *vm);
void vm_children_stop(struct uzs_vm *vm);

/* vm_fork.c */
/* A forked child saying hello (stopped until its go-ahead): forget what its fork event
 * recorded of ranges the kernel did not copy into it as they were. */
void vm_fork_trim(struct uzs_vm *vm, struct vm_space *s);
/* vm_balance.c */
/* Where the page under swap slot slot is: BAL_POOL or BAL_FILE (one atomic load). */
unsigned vm_balance_tier(struct uzs_vm *vm, uint64_t slot);
/* A fault served from tier, distance compressions after the page left (vm->lock held). */
void vm_balance_refault(struct uzs_vm *vm, unsigned tier, uint32_t distance);
/* The fault thread looks for messages at now (a clock it read anyway; 0: it slept):
 * times the fault served since its last look. */
void vm_balance_look(struct uzs_vm *vm, uint64_t now);
/* The pool bytes the group may hold now, deciding again when due (vm->lock held). */
uint64_t vm_balance_pool_target(struct uzs_vm *vm, long budget,
				const struct uzs_group_stats *st);
void vm_balance_stats(struct uzs_vm *vm, struct uzs_vm_stats *st);

/* vm_evict.c */
/* This process's forks so far, counted from the first call (its own space's moves are
 * kept apart from them as an agent keeps its process's). */
uint32_t vm_self_forks(void);
void *evict_main(void *arg);
/* Pages the group may still take before passing its budget (negative: over). */
long vm_headroom_pages(struct uzs_vm *vm);
/* A page leaving the set-aside state (unmapped, moved by mremap, its space freed): it
 * is no longer counted as unmovable. Nothing for any other page. */
void space_unaside(struct vm_space *s, struct vpage *p);
/* The fault thread: bring back the evicted pages of traced processes, a batch at a time;
 * returns the pages brought back. */
unsigned vm_bring_back_traced(struct uzs_vm *vm);
/* Drop the staging pages queued for discard (the eviction thread, or a self space). */
void space_flush_discards(struct vm_space *s);

#endif
