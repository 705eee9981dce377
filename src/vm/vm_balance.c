/* SPDX-License-Identifier: MIT */
/*
 * vm_balance — where the budget's boundary between resident and compressed pages lies:
 * how many bytes of the group's budget the compressed pool may hold before its oldest
 * pages go to the swap file (the pool target). It replaces a fixed share (3/4), which
 * starved programs whose pool held cold pages (resident faults on a hot set that did not
 * fit what the share left) and made programs whose pool held their working set read it
 * from the file.
 *
 * What is measured, as it happens (the fault thread, under vm->lock; nothing but counters):
 *  - each refault's tier (staging, pool, swap file: the slot's on-file flag, read before
 *    the load) and, for the engine's two, its refault distance (compressions since the
 *    page left, vpage.evicted_at against evict_clock, as the kernel's shadow entries);
 *    into log-scale histograms of distance per tier, halved at each decision so that
 *    recent behaviour counts;
 *  - what a fault of each tier costs, in ns: the fault thread reads the clock anyway
 *    before it looks for messages and again when it comes back to look (wait_events);
 *    a look that served exactly one fault gives that fault's service time. A moving
 *    average (1/16) of it per tier, plus the round trip the program pays for any fault
 *    (BAL_RTT_NS, measured: README). Until a tier has BAL_MIN_SAMPLES samples a prior
 *    stands in. A swap-file read counts at least BAL_FILE_FLOOR_NS, a device's random
 *    read: one the host's page cache answers faster was paid for with memory outside
 *    the budget, which is what the budget is there to bound.
 *
 * The decision (the eviction thread, each BAL_PERIOD refaults or a budget's worth of
 * compressions), a marginal comparison of expected stall time over the last periods:
 * moving the boundary by one step of `step` pages (budget/16) either way,
 *  - head: the refaults a step more of resident memory would have avoided (staged ones
 *    and swap-ins whose distance is below `step`), at their tier's cost. That is also
 *    the estimate of what a step less would cost (refaults just outside resident memory
 *    are as dense as hits just inside: the only estimate user space has, with no
 *    accessed bits);
 *  - tail: the pool refaults among the oldest entries that a step of writeback would
 *    send to the file (the step's bytes at the pool's average entry size, as a share of
 *    the pool's entries, taken from the far end of the pool's distance range), each
 *    costing a file read more than a pool read;
 *  - beyond: the file refaults just past the pool's end that a step more of pool would
 *    have kept in the pool, each saving that difference.
 * The pool shrinks a step when head > BAL_MARGIN * max(tail, beyond) (its room holds
 * pages that are not used, while resident pages fault; beyond counts too, since refaults
 * just past the pool's end say that end is in use, and the tail's window rests on an
 * estimate of where that end lies) and at least half of all refaults have a distance
 * the pool's room above its floor could hold resident (the working set does not fit
 * resident but would: the kernel's workingset test of a refault distance; a pool judged
 * cold while most refaults were far was read back whole by a later scan,
 * tests/programs/dicts.py, at a file read each), and grows a step when
 * beyond > BAL_MARGIN * head
 * (the working set spills from the pool to the file); each needs BAL_MIN_EVIDENCE
 * refaults behind it; otherwise it holds (no refaults: nothing changes). The margin is
 * the hysteresis, and a step back against the last one needs two decisions in a row. The difference file - pool is counted as at least half a pool read:
 * a writeback also costs a write, even when the file is in the page cache.
 *
 * Bounds: the target starts at 3/4 of the budget (the old rule, until evidence), never
 * falls below 1/8 of it (the pool is the cheaper tier for whatever is evicted next) and
 * leaves resident memory at least max(budget/16, BAL_MIN_RESIDENT) pages (staging,
 * watermarks and the eviction reserve live there).
 */
#include "vm_internal.h"


#include "engine.h"
#include "swapfile.h"

#define BAL_PERIOD 512u          /* refaults between decisions */
#define BAL_MIN_EVIDENCE 16u     /* refaults a move needs behind it (decayed counts) */
#define BAL_MARGIN 1.5           /* hysteresis: one side must outweigh the other this much */
#define BAL_MIN_SAMPLES 8u       /* timed faults before a tier's measured cost is trusted */
#define BAL_RTT_NS 13000u        /* a fault's round trip to the fault thread (README) */
#define BAL_STAGED_PRIOR_NS 3000u
#define BAL_POOL_PRIOR_NS 8000u
#define BAL_FILE_FLOOR_NS 50000u  /* a swap-file read is counted at least a device's */
#define BAL_SAMPLE_MAX_NS 5000000ull /* a longer look was the thread preempted: ignored */
#define BAL_MIN_RESIDENT 448l    /* pages: low watermark, staging and reserve */

/* Bucket of a distance: exact below 4, then four buckets per power of two. */
static unsigned bucket_of(uint32_t d)
{
	unsigned o;

	if (d < 4)
		return d;
	o = 31u - (unsigned)__builtin_clz(d);
	return 4u * (o - 1u) + ((d >> (o - 2u)) & 3u);
}

static double bucket_low(unsigned b)
{
	if (b < 4)
		return b;
	return (double)(4u + b % 4u) * (double)(1ull << (b / 4u - 1u));
}

/* Refaults of one tier's histogram with a distance in [lo, hi), a bucket's count spread
 * evenly over its width. */
static double hist_range(const uint32_t *h, double lo, double hi)
{
	double n = 0;

	for (unsigned b = 0; b < BAL_BUCKETS && lo < hi; b++) {
		double bl = bucket_low(b), bh = bucket_low(b + 1);
		double from = lo > bl ? lo : bl, to = hi < bh ? hi : bh;

		if (h[b] && to > from)
			n += h[b] * (to - from) / (bh - bl);
	}
	return n;
}

unsigned vm_balance_tier(struct uzs_vm *vm, uint64_t slot)
{
	return swapfile_state(vm->uzs->sf, slot) & SLOT_ON_FILE ? BAL_FILE : BAL_POOL;
}

void vm_balance_refault(struct uzs_vm *vm, unsigned tier, uint32_t distance)
{
	struct vm_balance *b = &vm->bal;

	b->refaults[tier]++;
	b->recent++;
	b->batch_tier = tier;
	b->batch_n++;
	if (tier == BAL_STAGED) {
		b->staged++;
		return;
	}
	b->hist[tier - BAL_POOL][bucket_of(distance)]++;
	if (tier == BAL_POOL && distance > b->max_pool_distance)
		b->max_pool_distance = distance;
}

void vm_balance_look(struct uzs_vm *vm, uint64_t now)
{
	struct vm_balance *b = &vm->bal;

	if (b->look_ns && now && b->batch_n == 1 && now - b->look_ns < BAL_SAMPLE_MAX_NS) {
		_Atomic uint32_t *avg = &b->cost_ns[b->batch_tier];
		int64_t cur = atomic_load_explicit(avg, memory_order_relaxed);
		int64_t sample = (int64_t)(now - b->look_ns);
		bool first = !atomic_fetch_add_explicit(&b->samples[b->batch_tier], 1,
							memory_order_relaxed);

		atomic_store_explicit(avg, (uint32_t)(first ? sample : cur + (sample - cur) / 16),
				      memory_order_relaxed);
	}
	b->look_ns = now;
	b->batch_n = 0;
}

/* A fault of this tier costs the program this long (ns): round trip plus service. */
static double tier_cost(struct vm_balance *b, unsigned tier)
{
	static const uint32_t prior[BAL_TIERS] = { BAL_STAGED_PRIOR_NS, BAL_POOL_PRIOR_NS,
						   BAL_FILE_FLOOR_NS };
	uint32_t avg = atomic_load_explicit(&b->cost_ns[tier], memory_order_relaxed);

	if (atomic_load_explicit(&b->samples[tier], memory_order_relaxed) < BAL_MIN_SAMPLES)
		avg = prior[tier];
	if (tier == BAL_FILE && avg < BAL_FILE_FLOOR_NS)
		avg = BAL_FILE_FLOOR_NS;
	return (double)BAL_RTT_NS + avg;
}

struct bal_view {
	double head, tail, beyond; /* expected stall, ns (see the top comment) */
	double head_n, tail_n, beyond_n; /* the refaults behind them */
	double fit_n, all_n; /* refaults the pool's room above its floor would hold; all */
};

static void weigh(struct vm_balance *b, long budget, const struct uzs_group_stats *st,
		  struct bal_view *v)
{
	double room = ((double)b->target - (double)(budget / 8) * VM_PAGE) / VM_PAGE;
	double entries = (double)(st->zswapped / VM_PAGE);
	double step = budget / 16 > 64 ? (double)(budget / 16) : 64;
	double per_entry = entries > 0 && st->zswap > 0 ? (double)st->zswap / entries : VM_PAGE;
	double moved = step * VM_PAGE / (per_entry > 64 ? per_entry : 64); /* entries a step */
	double share = entries > 0 && moved < entries ? moved / entries : 1;
	double edge = entries > b->max_pool_distance ? entries : b->max_pool_distance;
	double pool = tier_cost(b, BAL_POOL), file = tier_cost(b, BAL_FILE);
	double worse = file - pool > (pool - BAL_RTT_NS) / 2 ? file - pool : (pool - BAL_RTT_NS) / 2;
	double hp = hist_range(b->hist[0], 0, step), hf = hist_range(b->hist[1], 0, step);

	v->head_n = b->staged + hp + hf;
	v->fit_n = b->staged + hist_range(b->hist[0], 0, room) + hist_range(b->hist[1], 0, room);
	v->all_n = b->staged + hist_range(b->hist[0], 0, 1e10) + hist_range(b->hist[1], 0, 1e10);
	v->head = b->staged * tier_cost(b, BAL_STAGED) + hp * pool + hf * file;
	v->tail_n = hist_range(b->hist[0], edge * (1 - share), edge);
	v->tail = v->tail_n * worse;
	v->beyond_n = hist_range(b->hist[1], edge, edge * (1 + share));
	v->beyond = v->beyond_n * worse;
}

/* Older evidence counts half as much at each decision. */
static void decay(struct vm_balance *b)
{
	for (unsigned t = 0; t < 2; t++)
		for (unsigned i = 0; i < BAL_BUCKETS; i++)
			b->hist[t][i] /= 2;
	b->staged /= 2;
	b->max_pool_distance /= 2;
	b->recent = 0;
}

/* Which way the evidence points: -1 shrink the pool, +1 grow it, 0 hold. */
static int direction(const struct bal_view *v)
{
	/* the pool's end is in use if refaults come from just inside or just past it: the
	 * tail's estimate rests on where the end lies, the file refaults past it do not */
	double end = v->tail > v->beyond ? v->tail : v->beyond;

	if (v->head_n >= BAL_MIN_EVIDENCE && v->fit_n * 2 >= v->all_n &&
	    v->head > BAL_MARGIN * end)
		return -1;
	if (v->beyond_n >= BAL_MIN_EVIDENCE && v->beyond > BAL_MARGIN * v->head)
		return 1;
	return 0;
}

/* A step back the way the last one came is taken only when two decisions in a row ask
 * for it: a boundary near its balance point would otherwise swing a step either way,
 * each swing paying for the writebacks (and the reads back) of a step of pages. */
static bool steady(struct vm_balance *b, int dir)
{
	if (dir && dir == -b->last_dir && b->pending != dir) {
		b->pending = dir;
		return false;
	}
	b->pending = 0;
	return dir != 0;
}

static void decide(struct uzs_vm *vm, long budget, const struct uzs_group_stats *st)
{
	struct vm_balance *b = &vm->bal;
	uint64_t step = (uint64_t)(budget / 16 > 64 ? budget / 16 : 64) * VM_PAGE;
	long keep = budget / 16 > BAL_MIN_RESIDENT ? budget / 16 : BAL_MIN_RESIDENT;
	uint64_t lo = (uint64_t)budget / 8 * VM_PAGE;
	uint64_t hi = budget > keep ? (uint64_t)(budget - keep) * VM_PAGE : lo;
	struct bal_view v;
	int dir;

	weigh(b, budget, st, &v);
	if (b->target > hi)
		b->target = hi > lo ? hi : lo;
	dir = direction(&v);
	if ((dir < 0 && b->target <= lo) || (dir > 0 && b->target >= hi))
		dir = 0; /* at a bound: nothing to do, and no reversal to hold back later */
	if (steady(b, dir)) {
		b->target = dir < 0 ? (b->target > lo + step ? b->target - step : lo)
				    : (b->target + step < hi ? b->target + step : hi);
		b->shrinks += dir < 0;
		b->grows += dir > 0;
		b->last_dir = dir;
	}
	decay(b);
	b->decided_clock = vm->evict_clock;
}

uint64_t vm_balance_pool_target(struct uzs_vm *vm, long budget, const struct uzs_group_stats *st)
{
	struct vm_balance *b = &vm->bal;

	if (!b->target)
		b->target = (uint64_t)budget * VM_PAGE / 4 * 3;
	if (b->recent >= BAL_PERIOD || vm->evict_clock - b->decided_clock >= (uint32_t)budget)
		decide(vm, budget, st);
	return b->target;
}

void vm_balance_stats(struct uzs_vm *vm, struct uzs_vm_stats *st)
{
	struct vm_balance *b = &vm->bal;

	st->pool_target = b->target;
	st->pool_refaults = b->refaults[BAL_POOL];
	st->file_refaults = b->refaults[BAL_FILE];
	st->balance_shrinks = b->shrinks;
	st->balance_grows = b->grows;
	st->staged_cost_ns = atomic_load_explicit(&b->cost_ns[BAL_STAGED], memory_order_relaxed);
	st->pool_cost_ns = atomic_load_explicit(&b->cost_ns[BAL_POOL], memory_order_relaxed);
	st->file_cost_ns = atomic_load_explicit(&b->cost_ns[BAL_FILE], memory_order_relaxed);
}
