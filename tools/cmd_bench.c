/* SPDX-License-Identifier: MIT */
/*
 * uzswap bench — every page of a file swapped out and back in through the engine, checked
 * byte for byte, with the plain compressor library timed on the same pages in the same run
 * so that the engine's overhead is a ratio, not an absolute time on a noisy machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <lz4.h>
#include <lzo/lzo1x.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "cli.h"
#include "uzswap.h"

#define PAGE UZS_PAGE_SIZE
#define CORPUS_NAME "python-heap-8k.pages.zst"

struct bench_opts {
	const char *pages_path;
	const char *compressor;
	int threads;
	uint64_t pool_limit;
	const char *swapfile;
	int json;
	int groups;	  /* 0: every page in the root; N: page i in group i % N */
	unsigned run_pages; /* pages per swap-out and swap-in call (1: single pages) */
	int group_stats;  /* print every group's figures after the run */
	int encrypt;	  /* encrypt the pages written to the swap file */
};

struct pages {
	unsigned char *data;
	size_t nr;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- loading the pages ---- */

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, n = 0;
	unsigned char *b = malloc(cap);

	if (!f || !b) {
		int err = errno ? errno : ENOMEM;

		if (f)
			fclose(f);
		free(b);
		return -err;
	}
	for (;;) {
		size_t got = fread(b + n, 1, cap - n, f);

		n += got;
		if (n < cap)
			break;
		unsigned char *nb = realloc(b, cap *= 2);
		if (!nb) {
			free(b);
			fclose(f);
			return -ENOMEM;
		}
		b = nb;
	}
	if (ferror(f)) {
		free(b);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;
}

static int unzstd(const unsigned char *in, size_t in_len, unsigned char **out, size_t *out_len)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	size_t cap = 32 << 20, n = 0;
	unsigned char *b = malloc(cap);
	ZSTD_inBuffer ib = { in, in_len, 0 };
	int err = 0;

	if (!ds || !b) {
		err = -ENOMEM;
		goto done;
	}
	ZSTD_initDStream(ds);
	while (ib.pos < ib.size) {
		if (n == cap) {
			unsigned char *nb = realloc(b, cap *= 2);

			if (!nb) {
				err = -ENOMEM;
				goto done;
			}
			b = nb;
		}
		ZSTD_outBuffer ob = { b + n, cap - n, 0 };
		size_t r = ZSTD_decompressStream(ds, &ob, &ib);

		if (ZSTD_isError(r)) {
			err = -EILSEQ;
			goto done;
		}
		n += ob.pos;
		if (r == 0 && ob.pos == 0 && ib.pos == ib.size)
			break;
	}
done:
	ZSTD_freeDStream(ds);
	if (err) {
		free(b);
		return err;
	}
	*out = b;
	*out_len = n;
	return 0;
}

static int load_pages(const char *path, struct pages *p)
{
	unsigned char *raw, *data;
	size_t len, n = strlen(path);
	int err = read_file(path, &raw, &len);

	if (err)
		return die("cannot read %s: %s", path, strerror(-err));
	if (n > 4 && !strcmp(path + n - 4, ".zst")) {
		err = unzstd(raw, len, &data, &len);
		free(raw);
		if (err)
			return die("cannot decompress %s: not a valid zstd file", path);
		raw = data;
	}
	if (len == 0 || len % PAGE) {
		free(raw);
		return die("%s: %zu bytes is not a whole number of 4096-byte pages", path, len);
	}
	/* Page-aligned, like the memory a program swaps. */
	p->data = aligned_alloc(PAGE, len);
	if (!p->data) {
		free(raw);
		return die("out of memory for %zu bytes of pages", len);
	}
	memcpy(p->data, raw, len);
	free(raw);
	p->nr = len / PAGE;
	return 0;
}

/* The corpus kept in the repository, found next to the binary: build/../corpus. */
static const char *default_corpus(char *buf, size_t size)
{
	const char *env = getenv("UZSWAP_CORPUS");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		snprintf(buf, size, "%s/../corpus/" CORPUS_NAME, dirname(exe));
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return "corpus/" CORPUS_NAME;
}

/* ---- the plain library calls ---- */

/* The plain library calls, measured beside the engine's: the codec a spec names, with
 * the level the engine resolves it to. */
enum raw_algo { RAW_LZ4, RAW_ZSTD, RAW_LZO, RAW_DEFLATE };
/* A destination of this many bytes always holds the compressed form of a page. */
#define RAW_DST_BYTES (2 * PAGE)

struct raw_codec {
	enum raw_algo algo;
	int level;
};

static int raw_codec_of(const char *spec, struct raw_codec *c)
{
	static const char *const names[] = { "lz4", "zstd", "lzo", "deflate" };
	const char *name;
	int r = uzs_compressor_resolve(spec, &name, &c->level);

	for (unsigned i = 0; !r && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			c->algo = (enum raw_algo)i;
			return 0;
		}
	return -EINVAL;
}

struct raw_ctx {
	struct raw_codec c;
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	void *lzo_work;
	z_stream def, inf;
};

static int raw_ctx_init(struct raw_ctx *r, const char *spec)
{
	memset(r, 0, sizeof(*r));
	if (raw_codec_of(spec, &r->c))
		return -EINVAL;
	r->zc = ZSTD_createCCtx();
	r->zd = ZSTD_createDCtx();
	r->lzo_work = malloc(LZO1X_1_MEM_COMPRESS);
	if (lzo_init() != LZO_E_OK || !r->zc || !r->zd || !r->lzo_work)
		return -ENOMEM;
	if (deflateInit2(&r->def, r->c.algo == RAW_DEFLATE ? r->c.level : 1, Z_DEFLATED, -12, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK || inflateInit2(&r->inf, -15) != Z_OK)
		return -ENOMEM;
	return 0;
}

static void raw_ctx_free(struct raw_ctx *r)
{
	ZSTD_freeCCtx(r->zc);
	ZSTD_freeDCtx(r->zd);
	free(r->lzo_work);
	deflateEnd(&r->def);
	inflateEnd(&r->inf);
}

static int raw_compress(struct raw_ctx *r, const void *src, void *dst)
{
	switch (r->c.algo) {
	case RAW_LZ4:
		return LZ4_compress_fast(src, dst, PAGE, RAW_DST_BYTES, r->c.level);
	case RAW_ZSTD:
		return (int)ZSTD_compressCCtx(r->zc, dst, RAW_DST_BYTES, src, PAGE, r->c.level);
	case RAW_LZO: {
		lzo_uint n = RAW_DST_BYTES;

		lzo1x_1_compress(src, PAGE, dst, &n, r->lzo_work);
		return (int)n;
	}
	default:
		deflateReset(&r->def);
		r->def.next_in = (Bytef *)src;
		r->def.avail_in = PAGE;
		r->def.next_out = dst;
		r->def.avail_out = RAW_DST_BYTES;
		deflate(&r->def, Z_FINISH);
		return (int)(RAW_DST_BYTES - r->def.avail_out);
	}
}

static void raw_decompress(struct raw_ctx *r, const void *src, int len, void *dst)
{
	switch (r->c.algo) {
	case RAW_LZ4:
		LZ4_decompress_safe(src, dst, len, PAGE);
		break;
	case RAW_ZSTD:
		ZSTD_decompressDCtx(r->zd, dst, PAGE, src, (size_t)len);
		break;
	case RAW_LZO: {
		lzo_uint n = PAGE;

		lzo1x_decompress_safe(src, (lzo_uint)len, dst, &n, NULL);
		break;
	}
	default:
		inflateReset(&r->inf);
		r->inf.next_in = (Bytef *)src;
		r->inf.avail_in = (uInt)len;
		r->inf.next_out = dst;
		r->inf.avail_out = PAGE;
		inflate(&r->inf, Z_FINISH);
	}
}

/* ---- the threads ---- */

enum phase { RAW_COMPRESS, RAW_DECOMPRESS, STORE, LOAD };

struct worker {
	pthread_t thread;
	struct bench *b;
	size_t first, nr;
	double busy_us;
	int err;
};

struct bench {
	struct bench_opts *o;
	struct pages *in;
	unsigned char *out;
	unsigned char *raw_buf; /* RAW_DST_BYTES per page: compressed by the plain calls */
	int *raw_len;
	uzs_slot_t *slots;
	struct uzs *uzs;
	struct uzs_group **groups; /* o->groups of them, or NULL */
	_Atomic size_t split_runs; /* runs loaded page by page: part was written back */
	enum phase phase;
	pthread_barrier_t start;
};

static struct uzs_group *group_of(struct bench *b, size_t page)
{
	return b->groups ? b->groups[page % b->o->groups] : NULL;
}

/* Store or load pages [i, i + n) as one run (n a power of two) or one by one. */
static int engine_call(struct bench *b, size_t i, unsigned n)
{
	unsigned char *page = b->in->data + i * PAGE, *out = b->out + i * PAGE;

	if (b->phase == STORE)
		return n > 1 ? uzs_swap_out_run(b->uzs, group_of(b, i), page, n, &b->slots[i])
			     : uzs_swap_out(b->uzs, group_of(b, i), page, &b->slots[i]);
	return n > 1 ? uzs_swap_in_run(b->uzs, b->slots[i], out, n, UZS_SWAPIN_FREE)
		     : uzs_swap_in(b->uzs, b->slots[i], out, UZS_SWAPIN_FREE);
}

/* The engine phases in runs of o->run_pages; the tail that does not fill a run, and a
 * run the engine could not load whole (part of it was written back), page by page. */
static int run_engine_range(struct bench *b, struct worker *w)
{
	size_t end = w->first + w->nr, i = w->first;
	unsigned n = b->o->run_pages;

	while (i < end) {
		unsigned len = i + n <= end ? n : 1;
		int err = engine_call(b, i, len);

		if (err == -EIO && len > 1 && b->phase == LOAD) {
			/* the run's pages are untouched by the refused load: each comes alone */
			err = 0;
			for (unsigned k = 0; k < len && !err; k++)
				err = engine_call(b, i + k, 1);
			if (!err)
				b->split_runs++;
		}
		if (err)
			return err;
		if (b->phase == STORE)
			for (unsigned k = 1; k < len; k++)
				b->slots[i + k] = b->slots[i] + k;
		i += len;
	}
	return 0;
}

static int run_range(struct bench *b, struct worker *w, struct raw_ctx *raw)
{
	if (b->phase == STORE || b->phase == LOAD)
		return run_engine_range(b, w);
	for (size_t i = w->first; i < w->first + w->nr; i++) {
		unsigned char *page = b->in->data + i * PAGE, *out = b->out + i * PAGE;
		unsigned char *cbuf = b->raw_buf + i * RAW_DST_BYTES;
		int err = 0;

		switch (b->phase) {
		case RAW_COMPRESS:
			b->raw_len[i] = raw_compress(raw, page, cbuf);
			break;
		case RAW_DECOMPRESS:
			raw_decompress(raw, cbuf, b->raw_len[i], out);
			break;
		default:
			break;
		}
		if (err)
			return err;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct raw_ctx raw;
	double t0;

	if (raw_ctx_init(&raw, w->b->o->compressor)) {
		w->err = -ENOMEM;
		pthread_barrier_wait(&w->b->start);
		return NULL;
	}
	pthread_barrier_wait(&w->b->start);
	t0 = now_us();
	w->err = run_range(w->b, w, &raw);
	w->busy_us = now_us() - t0;
	raw_ctx_free(&raw);
	return NULL;
}

/* Run one phase on every thread; returns the wall time and adds up the busy time. */
static int run_phase(struct bench *b, enum phase phase, double *wall_us, double *busy_us)
{
	int n = b->o->threads, err = 0;
	struct worker w[n];
	/* whole runs to each thread; the last takes what is left */
	size_t per = b->in->nr / (size_t)n / b->o->run_pages * b->o->run_pages, next = 0;
	double t0;

	b->phase = phase;
	pthread_barrier_init(&b->start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .b = b, .first = next,
					.nr = i == n - 1 ? b->in->nr - next : per };
		next += w[i].nr;
		pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
	}
	pthread_barrier_wait(&b->start);
	t0 = now_us();
	*busy_us = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		*busy_us += w[i].busy_us;
		if (w[i].err && !err)
			err = w[i].err;
	}
	*wall_us = now_us() - t0;
	pthread_barrier_destroy(&b->start);
	return err;
}

/* ---- report ---- */

struct result {
	size_t pages, mismatches, split_runs;
	double ratio, pool_efficiency;
	uint64_t pool_bytes, compressed_bytes, written_back;
	double store_us, load_us, raw_compress_us, raw_decompress_us, store_mbps, load_mbps;
	double single_store_us, single_load_us; /* with --run-pages N > 1: N = 1, same run */
};

static void report(const struct bench_opts *o, const struct result *r, struct uzs *uzs)
{
	if (o->json) {
		printf("{\"pages\": %zu, \"ratio\": %.3f, \"pool_bytes\": %llu, "
		       "\"compressed_bytes\": %llu, \"pool_efficiency\": %.4f, "
		       "\"store_us\": %.3f, \"load_us\": %.3f, \"raw_compress_us\": %.3f, "
		       "\"raw_decompress_us\": %.3f, \"store_mbps\": %.1f, \"load_mbps\": %.1f, "
		       "\"written_back_pages\": %llu, \"mismatches\": %zu, \"threads\": %d, "
		       "\"groups\": %d, \"run_pages\": %u, \"split_runs\": %zu, "
		       "\"single_store_us\": %.3f, \"single_load_us\": %.3f, "
		       "\"compressor\": \"%s\"}\n",
		       r->pages, r->ratio, (unsigned long long)r->pool_bytes,
		       (unsigned long long)r->compressed_bytes, r->pool_efficiency, r->store_us,
		       r->load_us, r->raw_compress_us, r->raw_decompress_us, r->store_mbps,
		       r->load_mbps, (unsigned long long)r->written_back, r->mismatches,
		       o->threads, o->groups, o->run_pages, r->split_runs, r->single_store_us,
		       r->single_load_us, o->compressor);
		return;
	}
	printf("pages %zu\nratio %.3f\npool_bytes %llu\npool_efficiency %.4f\n"
	       "store_us %.3f\nload_us %.3f\nraw_compress_us %.3f\nraw_decompress_us %.3f\n"
	       "store_mbps %.1f\nload_mbps %.1f\nwritten_back_pages %llu\nmismatches %zu\n"
	       "run_pages %u\nsplit_runs %zu\nsingle_store_us %.3f\nsingle_load_us %.3f\n",
	       r->pages, r->ratio, (unsigned long long)r->pool_bytes, r->pool_efficiency,
	       r->store_us, r->load_us, r->raw_compress_us, r->raw_decompress_us, r->store_mbps,
	       r->load_mbps, (unsigned long long)r->written_back, r->mismatches, o->run_pages,
	       r->split_runs, r->single_store_us, r->single_load_us);
	printf("# engine statistics after the run\n");
	uzs_print_stats(uzs, stdout);
	if (o->group_stats) {
		printf("# group statistics after the run (memory.stat names)\n");
		uzs_print_group_stats(uzs, stdout);
	}
}

static void fill_store_figures(struct bench *b, struct result *r)
{
	struct uzs_stats st;
	uint64_t pooled;

	uzs_get_stats(b->uzs, &st);
	pooled = st.stored_pages - st.same_filled_pages;
	r->pool_bytes = st.pool_total_size;
	r->compressed_bytes = st.compressed_bytes;
	r->ratio = st.compressed_bytes ? (double)pooled * PAGE / (double)st.compressed_bytes : 0;
	r->pool_efficiency =
		st.pool_total_size ? (double)st.compressed_bytes / (double)st.pool_total_size : 0;
}

static int open_engine(struct bench_opts *o, size_t nr_pages, struct uzs **uzs)
{
	struct uzs_config c;
	int err;

	uzs_config_init(&c);
	c.compressor = o->compressor;
	c.max_pool_bytes = o->pool_limit;
	if (!o->pool_limit)
		c.max_pool_bytes = (uint64_t)nr_pages * PAGE * 2; /* never the limit */
	c.swapfile_path = o->swapfile;
	c.encrypt_swapfile = o->encrypt;
	c.swapfile_bytes = ((uint64_t)nr_pages + 1024) * PAGE;
	err = uzs_open(&c, uzs);
	if (err == -EINVAL)
		return die("bad engine configuration (compressor '%s')", o->compressor);
	if (err)
		return die("cannot open the engine%s%s: %s", o->swapfile ? " with swap file " : "",
			   o->swapfile ? o->swapfile : "", strerror(-err));
	return 0;
}

/* Groups under the root, named g0, g1, ... */
static int create_groups(struct bench *b)
{
	char name[32];
	int err;

	if (!b->o->groups)
		return 0;
	b->groups = calloc((size_t)b->o->groups, sizeof(*b->groups));
	if (!b->groups)
		return die("out of memory");
	for (int i = 0; i < b->o->groups; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		err = uzs_group_create(b->uzs, NULL, name, &b->groups[i]);
		if (err)
			return die("cannot create group %s: %s", name, strerror(-err));
	}
	return 0;
}

/* One store and load cycle in runs of run_pages, checked; *store_us, *load_us per page of
 * the calling threads' busy time. */
static int page_cycle(struct bench *b, unsigned run_pages, double *store_us, double *load_us)
{
	unsigned saved = b->o->run_pages;
	double wall, busy;
	int err;

	b->o->run_pages = run_pages;
	err = run_phase(b, STORE, &wall, &busy);
	*store_us = busy / b->in->nr;
	if (!err)
		err = run_phase(b, LOAD, &wall, &busy);
	*load_us = busy / b->in->nr;
	b->o->run_pages = saved;
	for (size_t i = 0; !err && i < b->in->nr; i++)
		if (memcmp(b->in->data + i * PAGE, b->out + i * PAGE, PAGE))
			err = -EIO;
	return err;
}

/* Rounds of single pages against runs, alternated in one process: this machine's speed
 * drifts from one moment to the next, so each round compares neighbours and the report
 * gives the medians. The last round's runs are the reported store and load phases. */
#define RUN_ROUNDS 7

struct round_times {
	double single_store[RUN_ROUNDS], single_load[RUN_ROUNDS];
	double run_store[RUN_ROUNDS], run_load[RUN_ROUNDS];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* All rounds but the last run cycle; a warm-up cycle of each kind first. */
static int alternate_rounds(struct bench *b, struct round_times *t)
{
	double s, l;
	int err = page_cycle(b, 1, &s, &l);

	if (!err)
		err = page_cycle(b, b->o->run_pages, &s, &l);
	for (int r = 0; r < RUN_ROUNDS && !err; r++) {
		err = page_cycle(b, 1, &t->single_store[r], &t->single_load[r]);
		if (!err && r < RUN_ROUNDS - 1)
			err = page_cycle(b, b->o->run_pages, &t->run_store[r], &t->run_load[r]);
	}
	if (err)
		return die("alternating cycle failed: %s", strerror(-err));
	return 0;
}

static void take_medians(struct round_times *t, struct result *r)
{
	t->run_store[RUN_ROUNDS - 1] = r->store_us;
	t->run_load[RUN_ROUNDS - 1] = r->load_us;
	r->single_store_us = median_of(t->single_store, RUN_ROUNDS);
	r->single_load_us = median_of(t->single_load, RUN_ROUNDS);
	r->store_us = median_of(t->run_store, RUN_ROUNDS);
	r->load_us = median_of(t->run_load, RUN_ROUNDS);
}

static int bench_run(struct bench_opts *o, struct pages *in)
{
	struct bench b = { .o = o, .in = in };
	struct result r = { .pages = in->nr };
	struct round_times times;
	double wall, busy, mb = (double)in->nr * PAGE / 1e6;
	int err;

	if (open_engine(o, in->nr, &b.uzs))
		return 1;
	if (create_groups(&b)) {
		err = 1;
		goto out;
	}
	b.out = aligned_alloc(PAGE, in->nr * PAGE);
	b.raw_buf = malloc(in->nr * RAW_DST_BYTES);
	b.raw_len = calloc(in->nr, sizeof(int));
	b.slots = calloc(in->nr, sizeof(uzs_slot_t));
	if (!b.out || !b.raw_buf || !b.raw_len || !b.slots) {
		err = die("out of memory");
		goto out;
	}
	memset(b.out, 0, in->nr * PAGE); /* fault the buffer in before anything is timed */
	memset(b.raw_buf, 0, in->nr * RAW_DST_BYTES);
	/* An untimed pass first, so neither side is measured on a cold machine. */
	run_phase(&b, RAW_COMPRESS, &wall, &busy);
	run_phase(&b, RAW_COMPRESS, &wall, &busy);
	r.raw_compress_us = busy / in->nr;
	run_phase(&b, RAW_DECOMPRESS, &wall, &busy);
	r.raw_decompress_us = busy / in->nr;
	if (o->run_pages > 1 && (err = alternate_rounds(&b, &times)))
		goto out;
	if ((err = run_phase(&b, STORE, &wall, &busy))) {
		err = die("swap-out failed: %s", strerror(-err));
		goto out;
	}
	r.store_us = busy / in->nr;
	r.store_mbps = mb / (wall / 1e6);
	fill_store_figures(&b, &r);
	memset(b.out, 0, in->nr * PAGE);
	if ((err = run_phase(&b, LOAD, &wall, &busy))) {
		err = die("swap-in failed: %s", strerror(-err));
		goto out;
	}
	r.load_us = busy / in->nr;
	r.load_mbps = mb / (wall / 1e6);
	for (size_t i = 0; i < in->nr; i++)
		r.mismatches += memcmp(in->data + i * PAGE, b.out + i * PAGE, PAGE) != 0;
	{
		struct uzs_stats st;

		uzs_get_stats(b.uzs, &st);
		r.written_back = st.written_back_pages;
		r.split_runs = b.split_runs;
	}
	if (o->run_pages > 1)
		take_medians(&times, &r);
	report(o, &r, b.uzs);
	err = r.mismatches ? die("%zu pages came back different", r.mismatches) : 0;
out:
	uzs_close(b.uzs);
	free(b.groups);
	free(b.out);
	free(b.raw_buf);
	free(b.raw_len);
	free(b.slots);
	return err;
}

static void bench_usage(FILE *out)
{
	fputs("usage: uzswap bench [--pages FILE] [--compressor NAME[:LEVEL]] [--threads N]\n"
	      "                    [--pool-limit BYTES] [--swapfile PATH] [--groups N]\n"
	      "                    [--group-stats] [--run-pages N] [--encrypt] [--json]\n"
	      "\n"
	      "Swaps every page of FILE out through the engine and back in, verifies every\n"
	      "byte, and reports: pages, ratio, pool_bytes, pool_efficiency, store_us, load_us,\n"
	      "raw_compress_us, raw_decompress_us (the plain library calls on the same pages,\n"
	      "same run), store_mbps, load_mbps, written_back_pages, mismatches.\n"
	      "\n"
	      "  --pages FILE        raw 4096-byte pages, zstd-compressed if FILE ends in .zst\n"
	      "                      (default: the corpus kept in the repository)\n"
	      "  --compressor NAME   lz4 (default), zstd, lzo, deflate; NAME:LEVEL sets a level\n"
	      "  --threads N         threads swapping at once (default 1)\n"
	      "  --pool-limit BYTES  pool limit (K/M/G suffixes); small limits force writeback\n"
	      "                      (default: twice the pages, never reached)\n"
	      "  --swapfile PATH     where to create the swap file (default: a nameless file in\n"
	      "                      $UZSWAP_DIR, $TMPDIR or /var/tmp)\n"
	      "  --encrypt           encrypt pages written to the swap file (ChaCha20-Poly1305,\n"
	      "                      a key made at start that lives only in this process)\n"
	      "  --groups N          spread the pages over N groups under the root, page i in\n"
	      "                      group i % N (default 0: all in the root)\n"
	      "  --group-stats       print every group's figures after the run\n"
	      "  --run-pages N       swap pages out and in as runs of N (a power of two up to\n"
	      "                      512, as large folios); store_us and load_us stay per page.\n"
	      "                      Seven rounds alternate single pages and runs in this\n"
	      "                      process; store_us, load_us, single_store_us and\n"
	      "                      single_load_us are the medians of the rounds. A run part\n"
	      "                      of which was written back is loaded page by page\n"
	      "                      (split_runs counts them)\n"
	      "  --json              one JSON object instead of name-value lines\n"
	      "Exit status: 0 all pages intact, 1 an error or any mismatch, 2 bad usage.\n",
	      out);
}

static int parse_bench_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "pages", required_argument, NULL, 'p' },   { "compressor", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' }, { "pool-limit", required_argument, NULL, 'l' },
		{ "swapfile", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "groups", required_argument, NULL, 'g' }, { "group-stats", no_argument, NULL, 'G' },
		{ "run-pages", required_argument, NULL, 'r' }, { "encrypt", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },	     { NULL, 0, NULL, 0 }
	};
	char *end;
	int opt;

	*o = (struct bench_opts){ .compressor = "lz4", .threads = 1, .run_pages = 1 };
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p': o->pages_path = optarg; break;
		case 'c': o->compressor = optarg; break;
		case 's': o->swapfile = optarg; break;
		case 'j': o->json = 1; break;
		case 'G': o->group_stats = 1; break;
		case 'e': o->encrypt = 1; break;
		case 'r': {
			long v = strtol(optarg, &end, 10);

			if (*end || !*optarg || v < 1 || v > UZS_RUN_MAX || (v & (v - 1)))
				return die_usage("--run-pages wants a power of two from 1 to %u, not '%s'",
						 UZS_RUN_MAX, optarg);
			o->run_pages = (unsigned)v;
			break;
		}
		case 'g':
			o->groups = (int)strtol(optarg, &end, 10);
			if (*end || !*optarg || o->groups < 0 || o->groups > 1000000)
				return die_usage("--groups wants a number from 0 to 1000000, not '%s'",
						 optarg);
			break;
		case 'h': bench_usage(stdout); exit(0);
		case 't':
			o->threads = (int)strtol(optarg, &end, 10);
			if (*end || o->threads < 1 || o->threads > 256)
				return die_usage("--threads wants a number from 1 to 256, not '%s'", optarg);
			break;
		case 'l':
			if (parse_size(optarg, &o->pool_limit) || !o->pool_limit)
				return die_usage("--pool-limit wants a size such as 4M, not '%s'", optarg);
			break;
		default:
			return 2;
		}
	}
	if (optind < argc)
		return die_usage("bench takes no argument '%s'", argv[optind]);
	if (uzs_compressor_resolve(o->compressor, NULL, NULL))
		return die_usage("unknown compressor or level '%s' (lz4, zstd, lzo, deflate)",
				 o->compressor);
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o;
	struct pages in = { 0 };
	char buf[PATH_MAX + 64];
	int err = parse_bench_opts(argc, argv, &o);

	if (err)
		return err;
	if (!o.pages_path)
		o.pages_path = default_corpus(buf, sizeof(buf));
	if (load_pages(o.pages_path, &in))
		return 1;
	if ((size_t)o.threads > in.nr)
		o.threads = (int)in.nr;
	err = bench_run(&o, &in);
	free(in.data);
	return err;
}
