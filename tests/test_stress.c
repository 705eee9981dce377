/* SPDX-License-Identifier: MIT */
/* Multi-threaded stress test of the engine, checked against an exact model.
 *
 * Each thread runs a seeded random sequence of swap-outs of pages whose content derives from
 * a 64-bit tag (text-like, random, same-filled, mixed), swap-ins verified byte for byte (with
 * and without UZS_SWAPIN_FREE), dups, frees, shrinks, compactions and compressor switches,
 * against a small pool limit so the shrink worker and writeback race every operation.
 *
 * The model. A thread owns the references it holds (struct held: slot, tag, its reference
 * count, whether an exclusive load handed the page over). Slots may be SHARED: a holder dups
 * the slot and puts the new reference into a mutex-protected exchange, from which any thread
 * may take it, so two threads hold the slot and swap in / free concurrently. Every slot has a
 * struct share with two counters over all of its references (the library's swap count):
 *   pre  <= library count: incremented after a dup succeeds, decremented before a free;
 *   post >= library count: incremented before a dup, decremented after a free returns.
 * A holder that reads post == its own count before a swap-in knows it is the only holder, so
 * the outcome of an exclusive load is exact. One that reads pre > its own count after the
 * swap-in knows another reference existed throughout, so the page stayed. Only in between
 * (another holder mid-free) is the outcome unknown (MAYBE): then the next swap-in must
 * return either the page or -ENODATA, which settles it.
 *
 * A global per-slot count (<= the library's count) catches a slot handed out twice.
 *
 * Environment: UZS_STRESS_OPS (total ops over all cases, default 200000), UZS_STRESS_SEED,
 * UZS_STRESS_THREADS (default 4). */
#define _GNU_SOURCE
#include "check.h"
#include "uzswap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE UZS_PAGE_SIZE
#define MAX_THREADS 16
#define EXCHANGE_SIZE 8
#define MAX_HELD 384
#define MAX_MYREFS 6
#define SLOT_COUNT_MAX 0x7fff /* the library's per-slot reference limit */
#define MAX_REPORTS 20

/* ---- random numbers and page contents ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static unsigned below(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd(s) % n);
}

static const char *const words[] = {
	"the", "page", "swap", "slot", "cache", "compressed", "memory", "kernel", "writeback",
	"pool", "zspage", "object", "handle", "entry", "tree", "lru", "cold", "hot", "reclaim",
	"def", "return", "self", "None", "import", "class", "while", "for", "in", "if", "else",
	"{", "}", "(", ")", "=", "==", "0", "1", "42", "0xdeadbeef", "\n", "\n\t", "    ",
	"struct", "static", "int", "uint64_t", "lock", "unlock", "mutex", "thread", "atomic",
};

enum page_kind { K_TEXT, K_RANDOM, K_SAME, K_MIXED, K_NEARLY_SAME, K_ZERO, NR_KINDS };

static enum page_kind kind_of(uint64_t tag)
{
	unsigned k = (unsigned)(mix64(tag ^ 0x1234) % 32);

	if (k < 11)
		return K_TEXT;
	if (k < 18)
		return K_RANDOM;
	if (k < 24)
		return K_SAME;
	if (k < 28)
		return K_MIXED;
	if (k < 31)
		return K_NEARLY_SAME;
	return K_ZERO;
}

static void text_fill(uint8_t *p, size_t n, uint64_t tag)
{
	uint64_t s = mix64(tag) | 1;
	size_t at = (size_t)snprintf((char *)p, n, "tag=%016" PRIx64 " ", tag);

	while (at < n) {
		const char *w = words[below(&s, sizeof(words) / sizeof(words[0]))];
		size_t l = strlen(w);

		if (l > n - at)
			l = n - at;
		memcpy(p + at, w, l);
		at += l;
		if (at < n)
			p[at++] = ' ';
	}
}

static void random_fill(uint8_t *p, size_t n, uint64_t tag)
{
	uint64_t s = mix64(tag ^ 0xabcdef) | 1;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rnd(&s);
		memcpy(p + i, &v, 8);
	}
}

static void make_page(uint64_t tag, uint8_t *p)
{
	uint64_t fill = mix64(tag ^ 0x5a5a), *w = (uint64_t *)p;

	switch (kind_of(tag)) {
	case K_TEXT:
		text_fill(p, PAGE, tag);
		break;
	case K_RANDOM:
		random_fill(p, PAGE, tag);
		break;
	case K_SAME:
		for (unsigned i = 0; i < PAGE / 8; i++)
			w[i] = fill;
		break;
	case K_MIXED:
		text_fill(p, PAGE / 2, tag);
		random_fill(p + PAGE / 2, PAGE / 2, tag);
		break;
	case K_NEARLY_SAME:
		/* one word differs: not same-filled, and it must not be stored as such */
		for (unsigned i = 0; i < PAGE / 8; i++)
			w[i] = fill;
		w[tag % (PAGE / 8)] = ~fill;
		break;
	default:
		memset(p, 0, PAGE);
		break;
	}
}

/* ---- the model ---- */

struct share {
	_Atomic int pre, post;
};

enum held_state {
	S_LIVE,	 /* the page is there */
	S_TAKEN, /* an exclusive load handed it over: -ENODATA until freed */
	S_MAYBE, /* a load may or may not have handed it over (a racing free elsewhere) */
};

struct held {
	uint64_t slot, tag;
	int myrefs;
	enum held_state state;
	struct share *sh;
};

struct xitem {
	uint64_t slot, tag;
	struct share *sh;
};

struct params {
	const char *name;
	bool exclusive;
	uint64_t pool_bytes;
	const char *compressor;
	long ops;	    /* total over all threads */
	unsigned bad_permille;
	unsigned quiesce_every; /* 0: no phases of bad calls on freed slots */
	bool overflow;	    /* dup one slot up to the reference limit */
};

struct counts {
	uint64_t ops, swapouts, swapins, nodata, invalid, frees, dups, shares, pickups, maybes,
		takes, shrinks, shrunk, compacts, switches, bad_calls;
};

struct stress {
	struct uzs *uzs;
	const struct params *p;
	uint64_t seed, nr_slots;
	unsigned threads;
	_Atomic uint16_t *model; /* per-slot reference count, <= the library's */
	pthread_mutex_t xlock;
	struct xitem xchg[EXCHANGE_SIZE];
	unsigned nx;
	pthread_barrier_t barrier;
	_Atomic unsigned failures;
	_Atomic uint64_t max_pool;
};

struct worker {
	struct stress *st;
	unsigned id;
	uint64_t rng;
	struct held *held;
	size_t n;
	uint64_t next_tag;
	uint8_t *mem, *aligned, *misaligned, *page, *expect, *poison;
	struct counts c;
};

static _Atomic unsigned reports;

#define FAIL(w, ...)                                                                       \
	do {                                                                               \
		atomic_fetch_add(&(w)->st->failures, 1);                                   \
		if (atomic_fetch_add(&reports, 1) < MAX_REPORTS) {                         \
			fprintf(stderr, "  [%s t%u op %" PRIu64 "] ", (w)->st->p->name,    \
				(w)->id, (w)->c.ops);                                      \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

static void expect_rc(struct worker *w, int rc, int want, const char *what,
		      const struct held *h)
{
	if (rc != want)
		FAIL(w, "%s slot %" PRIu64 " tag %" PRIx64 " refs %d state %d: got %d, want %d",
		     what, h ? h->slot : 0, h ? h->tag : 0, h ? h->myrefs : 0,
		     h ? (int)h->state : -1, rc, want);
}

#define EXPECT_RC(w, rc, want, what, h) expect_rc(w, (int)(rc), want, what, h)

static void model_add(struct worker *w, uint64_t slot, int d)
{
	if (d > 0) {
		if (atomic_fetch_add(&w->st->model[slot], 1) == 0 && d > 1)
			FAIL(w, "model: dup of slot %" PRIu64 " with no reference", slot);
	} else if (atomic_fetch_sub(&w->st->model[slot], 1) == 0) {
		FAIL(w, "model: slot %" PRIu64 " count underflow", slot);
	}
}

/* Swap-in into the page buffer, poisoned first so a stale or partial copy shows. */
static int swap_in(struct worker *w, uint64_t slot, unsigned flags)
{
	w->page = (rnd(&w->rng) & 1) ? w->aligned : w->misaligned;
	memcpy(w->page, w->poison, PAGE);
	return uzs_swap_in(w->st->uzs, slot, w->page, flags);
}

static void verify(struct worker *w, const struct held *h, const char *what)
{
	make_page(h->tag, w->expect);
	if (memcmp(w->page, w->expect, PAGE)) {
		size_t i = 0;

		while (w->page[i] == w->expect[i])
			i++;
		FAIL(w, "%s slot %" PRIu64 " tag %" PRIx64 " kind %d refs %d: content differs at "
		     "byte %zu (%02x != %02x)", what, h->slot, h->tag, (int)kind_of(h->tag),
		     h->myrefs, i, w->page[i], w->expect[i]);
	}
}

static void untouched(struct worker *w, const char *what, uint64_t slot)
{
	if (memcmp(w->page, w->poison, PAGE))
		FAIL(w, "%s slot %" PRIu64 ": failed swap-in wrote the page", what, slot);
}

static void drop_held(struct worker *w, size_t i)
{
	w->held[i] = w->held[--w->n];
}

/* One reference of held i is gone (free or swap-in with FREE returned 0). */
static void ref_released(struct worker *w, size_t i)
{
	struct held *h = &w->held[i];

	if (atomic_fetch_sub(&h->sh->post, 1) == 1)
		free(h->sh);
	if (--h->myrefs == 0)
		drop_held(w, i);
}

/* ---- operations ---- */

static void op_swap_out(struct worker *w)
{
	struct held *h;
	uint64_t tag = mix64(w->st->seed ^ ((uint64_t)w->id << 48) ^ w->next_tag++), slot = 0;
	int r;

	/* the caller's page need not be page-aligned */
	w->page = (rnd(&w->rng) & 1) ? w->aligned : w->misaligned;
	make_page(tag, w->page);
	r = uzs_swap_out(w->st->uzs, NULL, w->page, &slot);
	if (r) {
		FAIL(w, "swap_out tag %" PRIx64 ": %d", tag, r);
		return;
	}
	if (slot == 0 || slot >= w->st->nr_slots) {
		FAIL(w, "swap_out gave slot %" PRIu64, slot);
		return;
	}
	if (atomic_fetch_add(&w->st->model[slot], 1) != 0)
		FAIL(w, "swap_out gave slot %" PRIu64 ", which is still held", slot);
	w->c.swapouts++;
	h = &w->held[w->n++];
	h->slot = slot;
	h->tag = tag;
	h->myrefs = 1;
	h->state = S_LIVE;
	h->sh = malloc(sizeof(*h->sh));
	if (!h->sh)
		abort();
	atomic_init(&h->sh->pre, 1);
	atomic_init(&h->sh->post, 1);
}

/* A swap-in that returned the page: did it hand the page over? */
static void after_load(struct worker *w, struct held *h, int post_others)
{
	if (!w->st->p->exclusive || h->myrefs > 1) {
		h->state = S_LIVE;
	} else if (post_others == 0) {
		h->state = S_TAKEN; /* the only holder: certainly taken */
		w->c.takes++;
	} else if (atomic_load(&h->sh->pre) - h->myrefs >= 1) {
		h->state = S_LIVE; /* another holder throughout: certainly kept */
	} else {
		h->state = S_MAYBE;
		w->c.maybes++;
	}
}

static void op_swap_in_keep(struct worker *w, size_t i)
{
	struct held *h = &w->held[i];
	int post_others = atomic_load(&h->sh->post) - h->myrefs;
	int r = swap_in(w, h->slot, 0);

	if (h->state == S_TAKEN) {
		EXPECT_RC(w, r, -ENODATA, "swap_in of a handed-over slot", h);
		untouched(w, "swap_in -ENODATA", h->slot);
		w->c.nodata += r == -ENODATA;
		return;
	}
	if (h->state == S_MAYBE && r == -ENODATA) {
		untouched(w, "swap_in -ENODATA", h->slot);
		w->c.nodata++;
		h->state = S_TAKEN;
		return;
	}
	EXPECT_RC(w, r, 0, "swap_in", h);
	if (r)
		return;
	w->c.swapins++;
	verify(w, h, "swap_in");
	after_load(w, h, post_others);
}

static void op_swap_in_free(struct worker *w, size_t i)
{
	struct held *h = &w->held[i];
	int r;

	if (h->state == S_TAKEN) {
		r = swap_in(w, h->slot, UZS_SWAPIN_FREE);
		EXPECT_RC(w, r, -ENODATA, "swap_in FREE of a handed-over slot", h);
		untouched(w, "swap_in FREE -ENODATA", h->slot);
		w->c.nodata += r == -ENODATA;
		return; /* the reference stays */
	}
	atomic_fetch_sub(&h->sh->pre, 1);
	model_add(w, h->slot, -1);
	r = swap_in(w, h->slot, UZS_SWAPIN_FREE);
	if (h->state == S_MAYBE && r == -ENODATA) {
		untouched(w, "swap_in FREE -ENODATA", h->slot);
		w->c.nodata++;
		model_add(w, h->slot, 1);
		atomic_fetch_add(&h->sh->pre, 1);
		h->state = S_TAKEN;
		return;
	}
	EXPECT_RC(w, r, 0, "swap_in FREE", h);
	if (r) {
		model_add(w, h->slot, 1);
		atomic_fetch_add(&h->sh->pre, 1);
		return;
	}
	w->c.swapins++;
	verify(w, h, "swap_in FREE");
	ref_released(w, i);
}

static void op_free(struct worker *w, size_t i)
{
	struct held *h = &w->held[i];
	int r;

	atomic_fetch_sub(&h->sh->pre, 1);
	model_add(w, h->slot, -1);
	r = uzs_free(w->st->uzs, h->slot);
	EXPECT_RC(w, r, 0, "free", h);
	if (r) {
		model_add(w, h->slot, 1);
		atomic_fetch_add(&h->sh->pre, 1);
		return;
	}
	w->c.frees++;
	ref_released(w, i);
}

/* Add a reference to h's slot: 0, or -ENODATA when handed over. */
static int dup_ref(struct worker *w, struct held *h)
{
	int r;

	atomic_fetch_add(&h->sh->post, 1);
	r = uzs_dup(w->st->uzs, h->slot);
	if (r) {
		atomic_fetch_sub(&h->sh->post, 1);
		return r;
	}
	model_add(w, h->slot, 2);
	atomic_fetch_add(&h->sh->pre, 1);
	w->c.dups++;
	return 0;
}

static void op_dup(struct worker *w, size_t i)
{
	struct held *h = &w->held[i];
	int r;

	if (h->myrefs >= MAX_MYREFS)
		return;
	r = dup_ref(w, h);
	if (h->state == S_TAKEN || (h->state == S_MAYBE && r == -ENODATA)) {
		EXPECT_RC(w, r, -ENODATA, "dup of a handed-over slot", h);
		w->c.nodata += r == -ENODATA;
		if (r == -ENODATA)
			h->state = S_TAKEN;
		return;
	}
	EXPECT_RC(w, r, 0, "dup", h);
	if (r == 0) {
		h->myrefs++;
		h->state = S_LIVE; /* the page was there, and now someone else holds it too */
	}
}

static void op_share(struct worker *w, size_t i)
{
	struct stress *st = w->st;
	struct held *h = &w->held[i];
	int r;

	if (h->state != S_LIVE)
		return;
	pthread_mutex_lock(&st->xlock);
	if (st->nx < EXCHANGE_SIZE) {
		r = dup_ref(w, h);
		EXPECT_RC(w, r, 0, "dup to share", h);
		if (r == 0) {
			st->xchg[st->nx++] = (struct xitem){ h->slot, h->tag, h->sh };
			w->c.shares++;
		}
	}
	pthread_mutex_unlock(&st->xlock);
}

static void op_pickup(struct worker *w)
{
	struct stress *st = w->st;
	struct xitem it = { 0, 0, NULL };

	pthread_mutex_lock(&st->xlock);
	if (st->nx) {
		unsigned k = below(&w->rng, st->nx);

		it = st->xchg[k];
		st->xchg[k] = st->xchg[--st->nx];
	}
	pthread_mutex_unlock(&st->xlock);
	if (!it.sh)
		return;
	w->held[w->n++] = (struct held){ it.slot, it.tag, 1, S_LIVE, it.sh };
	w->c.pickups++;
}

/* Calls that must fail whatever the other threads do. */
static void op_bad(struct worker *w)
{
	struct stress *st = w->st;
	const uint64_t bad_slots[] = { 0, st->nr_slots, st->nr_slots + 1, st->nr_slots + 4096,
				       1ull << 40, UINT64_MAX };
	uint64_t slot = bad_slots[below(&w->rng, sizeof(bad_slots) / sizeof(bad_slots[0]))];
	int r;

	w->c.bad_calls++;
	switch (below(&w->rng, 6)) {
	case 0:
		r = swap_in(w, slot, 0);
		EXPECT_RC(w, r, -EINVAL, "swap_in of a bad slot", (struct held *)NULL);
		untouched(w, "swap_in of a bad slot", slot);
		w->c.invalid++;
		break;
	case 1:
		r = swap_in(w, slot, UZS_SWAPIN_FREE);
		EXPECT_RC(w, r, -EINVAL, "swap_in FREE of a bad slot", (struct held *)NULL);
		untouched(w, "swap_in FREE of a bad slot", slot);
		w->c.invalid++;
		break;
	case 2:
		r = uzs_free(st->uzs, slot);
		EXPECT_RC(w, r, -EINVAL, "free of a bad slot", (struct held *)NULL);
		w->c.invalid++;
		break;
	case 3:
		r = uzs_dup(st->uzs, slot);
		EXPECT_RC(w, r, -EINVAL, "dup of a bad slot", (struct held *)NULL);
		w->c.invalid++;
		break;
	case 4:
		/* unknown flags on a slot we hold: refused before anything happens */
		if (w->n) {
			struct held *h = &w->held[below(&w->rng, (unsigned)w->n)];

			r = swap_in(w, h->slot, 2);
			EXPECT_RC(w, r, -EINVAL, "swap_in with bad flags", h);
			untouched(w, "swap_in with bad flags", h->slot);
		}
		break;
	default:
		r = uzs_swap_in(st->uzs, 1, NULL, 0);
		EXPECT_RC(w, r, -EINVAL, "swap_in into NULL", (struct held *)NULL);
		r = (int)uzs_shrink(st->uzs, -1);
		EXPECT_RC(w, r, -EINVAL, "shrink(-1)", (struct held *)NULL);
		r = uzs_set_compressor(st->uzs, "lz5", 0);
		EXPECT_RC(w, r, -EINVAL, "set_compressor(lz5)", (struct held *)NULL);
		break;
	}
}

static void op_switch_compressor(struct worker *w)
{
	static const struct {
		const char *name;
		int level;
	} comps[] = { { "lz4", 0 }, { "lz4", 8 }, { "zstd", 0 }, { "zstd", 1 }, { "zstd", 5 },
		      { "lzo", 0 }, { "deflate", 0 }, { "deflate", 1 }, { "deflate", 9 } };
	unsigned k = below(&w->rng, sizeof(comps) / sizeof(comps[0]));
	int r = uzs_set_compressor(w->st->uzs, comps[k].name, comps[k].level);

	if (r)
		FAIL(w, "set_compressor(%s, %d): %d", comps[k].name, comps[k].level, r);
	w->c.switches++;
}

static void op_stats(struct worker *w)
{
	struct uzs_stats s;
	uint64_t m;

	uzs_get_stats(w->st->uzs, &s);
	if (s.decompress_fail || s.swap_io_fail || s.writeback_fail)
		FAIL(w, "stats: decompress_fail %" PRIu64 " swap_io_fail %" PRIu64
		     " writeback_fail %" PRIu64, s.decompress_fail, s.swap_io_fail,
		     s.writeback_fail);
	if (s.swap_slots_used > s.swap_slots_total)
		FAIL(w, "stats: %" PRIu64 " slots used of %" PRIu64, s.swap_slots_used,
		     s.swap_slots_total);
	m = atomic_load(&w->st->max_pool);
	while (s.pool_total_size > m &&
	       !atomic_compare_exchange_weak(&w->st->max_pool, &m, s.pool_total_size))
		;
}

/* Dup one exactly-owned slot to the reference limit, then back. */
static void op_overflow(struct worker *w)
{
	struct held *h = NULL;
	int r, k = 0;

	for (size_t i = 0; i < w->n; i++)
		if (w->held[i].state == S_LIVE && w->held[i].myrefs == 1 &&
		    atomic_load(&w->held[i].sh->post) == 1) {
			h = &w->held[i];
			break;
		}
	if (!h)
		return;
	while ((r = uzs_dup(w->st->uzs, h->slot)) == 0 && ++k <= SLOT_COUNT_MAX)
		;
	EXPECT_RC(w, r, -EOVERFLOW, "dup beyond the limit", h);
	EXPECT_RC(w, k + 1, SLOT_COUNT_MAX, "references at the limit", h);
	r = swap_in(w, h->slot, 0); /* shared: the page stays */
	EXPECT_RC(w, r, 0, "swap_in at the limit", h);
	if (r == 0) {
		w->c.swapins++;
		verify(w, h, "swap_in at the limit");
	}
	for (int j = 0; j < k; j++) {
		r = uzs_free(w->st->uzs, h->slot);
		if (r) {
			EXPECT_RC(w, r, 0, "free after the limit", h);
			break;
		}
	}
}

/* All threads stopped storing: free some exactly-owned slots and make every call on them
 * fail, since nobody can have reallocated them. */
static void quiesced_bad_calls(struct worker *w)
{
	uint64_t freed[4];
	unsigned nf = 0;
	int r;

	pthread_barrier_wait(&w->st->barrier);
	for (size_t i = 0; i < w->n && nf < 4;) {
		struct held *h = &w->held[i];
		uint64_t slot = h->slot;

		if (h->myrefs != 1 || atomic_load(&h->sh->post) != 1 || below(&w->rng, 2)) {
			i++;
			continue;
		}
		if (h->state == S_LIVE)
			op_swap_in_free(w, i);
		else
			op_free(w, i);
		if (i < w->n && w->held[i].slot == slot && w->held[i].myrefs == 1) {
			i++; /* still held (-ENODATA kept the reference) */
			continue;
		}
		freed[nf++] = slot;
	}
	for (unsigned j = 0; j < nf; j++) {
		struct held fake = { freed[j], 0, 0, S_LIVE, NULL };

		r = uzs_free(w->st->uzs, freed[j]);
		EXPECT_RC(w, r, -EINVAL, "double free", &fake);
		r = uzs_dup(w->st->uzs, freed[j]);
		EXPECT_RC(w, r, -EINVAL, "dup of a freed slot", &fake);
		r = swap_in(w, freed[j], 0);
		EXPECT_RC(w, r, -EINVAL, "swap_in of a freed slot", &fake);
		untouched(w, "swap_in of a freed slot", freed[j]);
		r = swap_in(w, freed[j], UZS_SWAPIN_FREE);
		EXPECT_RC(w, r, -EINVAL, "swap_in FREE of a freed slot", &fake);
		untouched(w, "swap_in FREE of a freed slot", freed[j]);
		w->c.invalid += 4;
		w->c.bad_calls += 4;
	}
	pthread_barrier_wait(&w->st->barrier);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct params *p = w->st->p;
	long ops = p->ops / (long)w->st->threads;

	for (long k = 0; k < ops; k++, w->c.ops++) {
		unsigned x = below(&w->rng, 1000);
		size_t i = w->n ? below(&w->rng, (unsigned)w->n) : 0;

		if (p->quiesce_every && k % p->quiesce_every == p->quiesce_every - 1) {
			quiesced_bad_calls(w);
			continue;
		}
		if (p->overflow && k == ops / 2) {
			op_overflow(w);
			continue;
		}
		if (x < p->bad_permille) {
			op_bad(w);
			continue;
		}
		x = below(&w->rng, 1000);
		if (w->n && w->held[i].state == S_TAKEN && x % 4) {
			/* a handed-over page: mostly just let the slot go */
			op_free(w, i);
			continue;
		}
		if (w->n == 0 || (w->n < 32 && x < 500) || (x < 300 && w->n < MAX_HELD)) {
			op_swap_out(w);
		} else if (x < 470) {
			op_swap_in_keep(w, i);
		} else if (x < 620 || (x < 720 && w->n >= MAX_HELD)) {
			op_swap_in_free(w, i);
		} else if (x < 730) {
			op_free(w, i);
		} else if (x < 780) {
			op_dup(w, i);
		} else if (x < 830) {
			op_share(w, i);
		} else if (x < 880) {
			if (w->n < MAX_HELD)
				op_pickup(w);
		} else if (x < 930) {
			op_swap_in_keep(w, i);
		} else if (x < 936) {
			/* mostly a few pages; sometimes the whole LRU, so that writeback takes
			 * entries the moment they are stored */
			long n = below(&w->rng, 8) ? 1 + below(&w->rng, 8) : 100000;
			long r = uzs_shrink(w->st->uzs, n);

			if (r < 0 || r > n)
				FAIL(w, "shrink(%ld): %ld", n, r);
			w->c.shrinks++;
			w->c.shrunk += r > 0 ? (uint64_t)r : 0;
		} else if (x < 948) {
			long r = uzs_compact(w->st->uzs);

			if (r < 0)
				FAIL(w, "compact: %ld", r);
			w->c.compacts++;
		} else if (x < 984 && w->id == 0) {
			op_switch_compressor(w);
		} else {
			op_stats(w);
		}
	}
	/* everything still held goes */
	while (w->n) {
		struct held *h = &w->held[w->n - 1];

		if (h->state == S_LIVE && below(&w->rng, 2))
			op_swap_in_free(w, w->n - 1);
		else
			op_free(w, w->n - 1);
	}
	return NULL;
}

/* ---- a run ---- */

static uint64_t seed_base;
static unsigned nr_threads = 4;
static long total_ops = 200000;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void run_stress(const struct params *p)
{
	struct uzs_config cfg;
	struct stress st;
	struct worker w[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	struct counts sum = { 0 };
	struct uzs_stats s;
	double t0 = now_s();
	int r;

	memset(&st, 0, sizeof(st));
	st.p = p;
	st.threads = nr_threads;
	st.seed = seed_base;
	for (const char *c = p->name; *c; c++)
		st.seed = mix64(st.seed ^ (uint8_t)*c);
	uzs_config_init(&cfg);
	cfg.compressor = p->compressor;
	cfg.max_pool_bytes = p->pool_bytes;
	cfg.exclusive_loads = p->exclusive;
	cfg.swapfile_path = NULL;
	cfg.swapfile_bytes = 32ull << 20;
	r = uzs_open(&cfg, &st.uzs);
	CHECK_EQ(r, 0);
	if (r)
		return;
	uzs_get_stats(st.uzs, &s);
	st.nr_slots = s.swap_slots_total + 1;
	st.model = calloc(st.nr_slots, sizeof(*st.model));
	pthread_mutex_init(&st.xlock, NULL);
	pthread_barrier_init(&st.barrier, NULL, nr_threads);
	printf("# %s: seed %#" PRIx64 ", %u threads, %ld ops, exclusive_loads %d, pool %" PRIu64
	       " KiB, %s\n", p->name, st.seed, nr_threads, p->ops, p->exclusive,
	       p->pool_bytes >> 10, p->compressor);
	fflush(stdout);

	for (unsigned t = 0; t < nr_threads; t++) {
		w[t] = (struct worker){ .st = &st, .id = t };
		w[t].rng = mix64(st.seed + t) | 1; /* deterministic per thread */
		w[t].held = calloc(MAX_HELD + 1, sizeof(*w[t].held));
		w[t].mem = aligned_alloc(PAGE, 5 * PAGE);
		w[t].aligned = w[t].mem;
		w[t].misaligned = w[t].mem + PAGE + 64; /* the swap file's bounce path */
		w[t].page = w[t].aligned;
		w[t].expect = w[t].mem + 2 * PAGE + 64;
		w[t].poison = w[t].mem + 3 * PAGE + 64;
		memset(w[t].poison, 0xa7, PAGE);
		w[t].poison[100] = 0x11; /* not same-filled */
		pthread_create(&tid[t], NULL, worker_main, &w[t]);
	}
	for (unsigned t = 0; t < nr_threads; t++) {
		pthread_join(tid[t], NULL);
		sum.ops += w[t].c.ops;
		sum.swapouts += w[t].c.swapouts;
		sum.swapins += w[t].c.swapins;
		sum.nodata += w[t].c.nodata;
		sum.invalid += w[t].c.invalid;
		sum.frees += w[t].c.frees;
		sum.dups += w[t].c.dups;
		sum.shares += w[t].c.shares;
		sum.pickups += w[t].c.pickups;
		sum.maybes += w[t].c.maybes;
		sum.takes += w[t].c.takes;
		sum.shrinks += w[t].c.shrinks;
		sum.shrunk += w[t].c.shrunk;
		sum.compacts += w[t].c.compacts;
		sum.switches += w[t].c.switches;
		sum.bad_calls += w[t].c.bad_calls;
		free(w[t].held);
		free(w[t].mem);
	}
	/* references still in the exchange */
	for (unsigned k = 0; k < st.nx; k++) {
		r = uzs_free(st.uzs, st.xchg[k].slot);
		CHECK_EQ(r, 0);
		atomic_fetch_sub(&st.model[st.xchg[k].slot], 1);
		if (atomic_fetch_sub(&st.xchg[k].sh->post, 1) == 1)
			free(st.xchg[k].sh);
	}
	CHECK_EQ(atomic_load(&st.failures), 0);
	for (uint64_t k = 0; k < st.nr_slots; k++)
		if (atomic_load(&st.model[k])) {
			CHECK_EQ(atomic_load(&st.model[k]), 0);
			break;
		}

	/* A writeback in flight may still hold a freed slot's pin and entry: let it finish. */
	for (int k = 0; k < 200; k++) {
		uzs_get_stats(st.uzs, &s);
		if (!s.stored_pages && !s.swap_slots_used)
			break;
		usleep(10000);
	}
	CHECK_EQ(s.stored_pages, 0);
	CHECK_EQ(s.swap_slots_used, 0);
	CHECK_EQ(s.compressed_bytes, 0);
	CHECK_EQ(s.stored_incompressible_pages, 0);
	CHECK_EQ(s.same_filled_pages, 0);
	CHECK_EQ(s.decompress_fail, 0);
	CHECK_EQ(s.swap_io_fail, 0);
	CHECK_EQ(s.writeback_fail, 0);
	CHECK(s.written_back_pages > 0);
	CHECK_EQ(s.zswpwb, s.written_back_pages);
	CHECK(s.zswpin > 0);
	CHECK(s.pool_limit_hit > 0);
	/* every call is accounted for exactly once */
	CHECK_EQ(s.zswpout + s.pswpout, sum.swapouts);
	CHECK_EQ(s.zswpin + s.pswpin, sum.swapins);
	CHECK_EQ(s.invalid_slot, sum.invalid);
	CHECK_EQ(s.nodata_slot, sum.nodata);
	if (p->exclusive)
		CHECK(sum.takes > 0);
	CHECK(sum.shares > 0 && sum.pickups > 0);
	uzs_compact(st.uzs);
	uzs_get_stats(st.uzs, &s);
	CHECK_EQ(s.pool_total_size, 0);
	printf("# %s: %.2f s, %" PRIu64 " ops: %" PRIu64 " out, %" PRIu64 " in, %" PRIu64
	       " free, %" PRIu64 " dup, %" PRIu64 " shared, %" PRIu64 " handed over (%" PRIu64
	       " unsure), %" PRIu64 " nodata, %" PRIu64 " bad, %" PRIu64 " shrunk, %" PRIu64
	       " switches | zswpout %" PRIu64 " pswpout %" PRIu64 " zswpin %" PRIu64
	       " pswpin %" PRIu64 " written_back %" PRIu64 " limit_hit %" PRIu64
	       " max_pool %" PRIu64 " KiB compacted %" PRIu64 " KiB\n",
	       p->name, now_s() - t0, sum.ops, sum.swapouts, sum.swapins, sum.frees, sum.dups,
	       sum.shares, sum.takes, sum.maybes, sum.nodata, sum.bad_calls, sum.shrunk,
	       sum.switches, s.zswpout, s.pswpout, s.zswpin, s.pswpin, s.written_back_pages,
	       s.pool_limit_hit, atomic_load(&st.max_pool) >> 10, s.pool_compacted_bytes >> 10);
	fflush(stdout);
	uzs_close(st.uzs);
	pthread_barrier_destroy(&st.barrier);
	pthread_mutex_destroy(&st.xlock);
	free(st.model);
}

static void stress_exclusive(void)
{
	struct params p = { "stress_exclusive", true, 512u << 10, "lz4", total_ops * 2 / 5,
			    10, 0, false };
	run_stress(&p);
}

static void stress_non_exclusive(void)
{
	struct params p = { "stress_non_exclusive", false, 768u << 10, "lzo", total_ops * 2 / 5,
			    10, 0, false };
	run_stress(&p);
}

static void bad_calls_during_stress(void)
{
	struct params p = { "bad_calls_during_stress", true, 256u << 10, "zstd",
			    total_ops / 5, 100, 250, true };
	run_stress(&p);
}

static void on_alarm(int sig)
{
	static const char msg[] = "test_stress: timed out (a hang?)\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(2);
}

int main(void)
{
	const char *e;

	seed_base = 0x5eed2024u;
	if ((e = getenv("UZS_STRESS_SEED")) && *e)
		seed_base = strtoull(e, NULL, 0);
	if ((e = getenv("UZS_STRESS_OPS")) && *e)
		total_ops = atol(e);
	if ((e = getenv("UZS_STRESS_THREADS")) && *e)
		nr_threads = (unsigned)atoi(e);
	if (nr_threads < 1 || nr_threads > MAX_THREADS)
		nr_threads = 4;
	if (total_ops < 1000)
		total_ops = 1000;
	printf("# test_stress: UZS_STRESS_SEED=%#" PRIx64 " UZS_STRESS_OPS=%ld "
	       "UZS_STRESS_THREADS=%u\n", seed_base, total_ops, nr_threads);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)(300 + total_ops / 500));

	RUN(stress_exclusive);
	RUN(stress_non_exclusive);
	RUN(bad_calls_during_stress);
	return CHECK_DONE();
}
