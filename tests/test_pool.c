/* SPDX-License-Identifier: MIT */
/* Unit tests for the pool (zsmalloc-style allocator): data integrity for every size,
 * page-straddling objects, memory given back on free and compaction, errors, concurrency
 * with compaction, and density on the project corpus. */
#include "check.h"
#include "pool.h"

#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <zstd.h>

#define PAGE 4096u

static const char *corpus_path = "corpus/python-heap-8k.pages.zst";

/* xorshift: reproducible random numbers without shared state */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static int intact(const uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 8)))
			return 0;
	return 1;
}

static int write_obj(struct pool *pool, uint64_t h, size_t n, uint64_t seed)
{
	uint8_t *p = pool_map(pool, h);
	if (!p)
		return 0;
	fill(p, n, seed);
	pool_unmap(pool, h);
	return 1;
}

static int check_obj(struct pool *pool, uint64_t h, size_t n, uint64_t seed)
{
	uint8_t *p = pool_map(pool, h);
	if (!p)
		return 0;
	int ok = intact(p, n, seed);
	pool_unmap(pool, h);
	return ok;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void every_size_round_trips(void)
{
	struct pool *pool = pool_create(0);
	static uint64_t h[POOL_MAX_OBJECT + 1], sorted[POOL_MAX_OBJECT];

	CHECK(pool != NULL);
	for (size_t n = 1; n <= POOL_MAX_OBJECT; n++) {
		CHECK_EQ(pool_alloc(pool, n, &h[n]), 0);
		CHECK(h[n] != 0);
		CHECK(write_obj(pool, h[n], n, n));
	}
	for (size_t n = 1; n <= POOL_MAX_OBJECT; n++)
		CHECK(check_obj(pool, h[n], n, n));
	memcpy(sorted, &h[1], sizeof(sorted));
	qsort(sorted, POOL_MAX_OBJECT, sizeof(sorted[0]), cmp_u64);
	for (size_t i = 1; i < POOL_MAX_OBJECT; i++)
		CHECK(sorted[i] != sorted[i - 1]);
	for (size_t n = 1; n <= POOL_MAX_OBJECT; n++)
		pool_free(pool, h[n]);
	pool_destroy(pool);
}

static void objects_straddle_pages(void)
{
	static const size_t sizes[] = { 1552, 2100, 3000, 3712, 700 };
	enum { PER = 64 };
	struct pool *pool = pool_create(0);
	uint64_t h[5][PER];
	int straddlers = 0;

	for (int s = 0; s < 5; s++)
		for (int i = 0; i < PER; i++) {
			CHECK_EQ(pool_alloc(pool, sizes[s], &h[s][i]), 0);
			uint8_t *p = pool_map(pool, h[s][i]);
			straddlers += (uintptr_t)p % PAGE + sizes[s] > PAGE;
			fill(p, sizes[s], (uint64_t)s * PER + i);
			pool_unmap(pool, h[s][i]);
		}
	CHECK(straddlers > 0);
	for (int s = 0; s < 5; s++)
		for (int i = 0; i < PER; i++)
			CHECK(check_obj(pool, h[s][i], sizes[s], (uint64_t)s * PER + i));
	pool_destroy(pool);
}

static void free_returns_memory(void)
{
	enum { N = 5000 };
	static uint64_t h[N];
	struct pool *pool = pool_create(0);
	uint64_t seed = 42;

	CHECK_EQ(pool_total_bytes(pool), 0);
	for (int i = 0; i < N; i++)
		CHECK_EQ(pool_alloc(pool, 1 + rnd(&seed) % POOL_MAX_OBJECT, &h[i]), 0);
	CHECK(pool_total_bytes(pool) > 0);
	for (int i = 0; i < N; i++)
		pool_free(pool, h[i]);
	pool_release_empty(pool);
	CHECK_EQ(pool_total_bytes(pool), 0);
	CHECK(pool_map(pool, h[0]) == NULL); /* freed handles no longer map */
	pool_destroy(pool);
}

/* A partial release keeps a reserve of empty zspages (at most the bytes asked for) that
 * later allocations reuse before touching fresh pages; a full release leaves nothing. */
static void partial_release_keeps_a_reserve_for_reuse(void)
{
	enum { N = 4000, KEEP = 64 * PAGE };
	static uint64_t h[N];
	struct pool *pool = pool_create(0);

	for (int i = 0; i < N; i++)
		CHECK_EQ(pool_alloc(pool, 1000, &h[i]), 0);
	uint64_t full = pool_total_bytes(pool);
	for (int i = 0; i < N; i++)
		pool_free(pool, h[i]);
	CHECK_EQ(pool_empty_bytes(pool), full); /* every page waits in the cache */
	uint64_t given = pool_release_empty_above(pool, KEEP);
	CHECK(pool_empty_bytes(pool) <= KEEP);
	CHECK(pool_empty_bytes(pool) > 0);
	CHECK_EQ(pool_total_bytes(pool), pool_empty_bytes(pool));
	CHECK_EQ(given + pool_total_bytes(pool), full);
	uint64_t hits = pool_cache_hits(pool), reserve = pool_total_bytes(pool);
	CHECK_EQ(pool_alloc(pool, 1000, &h[0]), 0); /* served from the reserve */
	CHECK_EQ(pool_cache_hits(pool), hits + 1);
	CHECK(pool_total_bytes(pool) <= reserve);
	pool_free(pool, h[0]);
	CHECK_EQ(pool_release_empty(pool), reserve);
	CHECK_EQ(pool_total_bytes(pool), 0);
	CHECK_EQ(pool_release_empty_above(pool, KEEP), 0);
	pool_destroy(pool);
}

static void compaction_gives_back_memory(void)
{
	enum { N = 30000 };
	static uint64_t h[N];
	static uint32_t size[N];
	struct pool *pool = pool_create(0);
	uint64_t seed = 7;

	for (int i = 0; i < N; i++) {
		size[i] = 100 + rnd(&seed) % 3000;
		CHECK_EQ(pool_alloc(pool, size[i], &h[i]), 0);
		CHECK(write_obj(pool, h[i], size[i], i));
	}
	for (int i = 0; i < N; i++)
		if (rnd(&seed) & 1) {
			pool_free(pool, h[i]);
			h[i] = 0;
		}
	pool_release_empty(pool);
	uint64_t before = pool_total_bytes(pool);
	uint64_t given = pool_compact(pool);
	uint64_t after = pool_total_bytes(pool);
	CHECK(given > 0);
	CHECK(after < before);
	CHECK(after <= before - given / 2);
	for (int i = 0; i < N; i++)
		if (h[i])
			CHECK(check_obj(pool, h[i], size[i], i));
	for (int i = 0; i < N; i++)
		if (h[i])
			pool_free(pool, h[i]);
	pool_release_empty(pool);
	CHECK_EQ(pool_total_bytes(pool), 0);
	pool_destroy(pool);
}

static void bad_sizes_get_e2big(void)
{
	struct pool *pool = pool_create(0);
	uint64_t h = 0;

	CHECK_EQ(pool_alloc(pool, 0, &h), -E2BIG);
	CHECK_EQ(pool_alloc(pool, POOL_MAX_OBJECT + 1, &h), -E2BIG);
	CHECK_EQ(h, 0);
	pool_free(pool, 0); /* a bad handle is ignored */
	CHECK(pool_map(pool, 0) == NULL);
	pool_destroy(pool);
}

static void exhaustion_gets_enomem(void)
{
	enum { MAX = 1 << 17 };
	static uint64_t h[MAX];
	struct pool *pool = pool_create(1 << 20);
	int n = 0, err = 0;

	while (n < MAX && !(err = pool_alloc(pool, POOL_MAX_OBJECT, &h[n])))
		n++;
	CHECK_EQ(err, -ENOMEM);
	CHECK(n > 0);
	CHECK_EQ(pool_alloc(pool, 1000, &h[MAX - 1]), -ENOMEM);
	pool_free(pool, h[--n]);
	CHECK_EQ(pool_alloc(pool, POOL_MAX_OBJECT, &h[n]), 0); /* room again after a free */
	n++;
	for (int i = 0; i < n; i++)
		pool_free(pool, h[i]);
	pool_destroy(pool);
}

/* ---- concurrency: workers churn objects while a thread compacts ---- */

struct worker {
	struct pool *pool;
	uint64_t seed;
	int errors;
};

static atomic_int stop_compacting;

static void *compactor(void *arg)
{
	struct pool *pool = arg;
	while (!atomic_load(&stop_compacting))
		pool_compact(pool);
	return NULL;
}

static void *churn(void *arg)
{
	enum { LIVE = 512, ROUNDS = 20000 };
	struct worker *w = arg;
	uint64_t h[LIVE] = { 0 }, tag[LIVE];
	uint32_t size[LIVE];

	for (int r = 0; r < ROUNDS; r++) {
		int i = (int)(rnd(&w->seed) % LIVE);
		if (h[i]) {
			w->errors += !check_obj(w->pool, h[i], size[i], tag[i]);
			pool_free(w->pool, h[i]);
			h[i] = 0;
			continue;
		}
		size[i] = 1 + (uint32_t)(rnd(&w->seed) % POOL_MAX_OBJECT);
		tag[i] = rnd(&w->seed);
		if (pool_alloc(w->pool, size[i], &h[i])) {
			w->errors++;
			h[i] = 0;
		} else {
			w->errors += !write_obj(w->pool, h[i], size[i], tag[i]);
		}
	}
	for (int i = 0; i < LIVE; i++)
		if (h[i]) {
			w->errors += !check_obj(w->pool, h[i], size[i], tag[i]);
			pool_free(w->pool, h[i]);
		}
	return NULL;
}

static void threads_with_compaction(void)
{
	struct pool *pool = pool_create(0);
	struct worker w[4];
	pthread_t t[4], c;

	atomic_store(&stop_compacting, 0);
	CHECK_EQ(pthread_create(&c, NULL, compactor, pool), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ pool, 0x9e3779b97f4a7c15ull * (i + 1), 0 };
		CHECK_EQ(pthread_create(&t[i], NULL, churn, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].errors, 0);
	}
	atomic_store(&stop_compacting, 1);
	pthread_join(c, NULL);
	pool_release_empty(pool);
	CHECK_EQ(pool_total_bytes(pool), 0);
	pool_destroy(pool);
}

/* ---- density on the project corpus ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

/* Streaming, so a frame without a content size still decodes. */
static uint8_t *unzstd(const uint8_t *src, size_t len, size_t *out_len)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	ZSTD_inBuffer in = { src, len, 0 };
	size_t cap = 1 << 24, n = 0;
	uint8_t *out = malloc(cap);

	while (out && ds && in.pos < in.size) {
		if (n == cap) {
			uint8_t *nb = realloc(out, cap *= 2);
			if (!nb)
				break;
			out = nb;
		}
		ZSTD_outBuffer ob = { out + n, cap - n, 0 };
		if (ZSTD_isError(ZSTD_decompressStream(ds, &ob, &in)))
			break;
		n += ob.pos;
	}
	ZSTD_freeDStream(ds);
	if (!out || in.pos < in.size) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

static int same_filled(const uint8_t *page)
{
	uint64_t first, w;
	memcpy(&first, page, 8);
	for (unsigned i = 8; i < PAGE; i += 8) {
		memcpy(&w, page + i, 8);
		if (w != first)
			return 0;
	}
	return 1;
}

static void corpus_density(void)
{
	size_t zlen = 0, len = 0;
	uint8_t *z = read_file(corpus_path, &zlen);
	uint8_t *pages = z ? unzstd(z, zlen, &len) : NULL;
	static char out[LZ4_COMPRESSBOUND(PAGE)];

	free(z);
	if (!pages || len < PAGE) {
		fprintf(stderr, "  cannot read corpus %s (run from the repo root or pass its path)\n",
			corpus_path);
		CHECK(pages != NULL && len >= PAGE);
		free(pages);
		return;
	}
	struct pool *pool = pool_create(0);
	uint64_t stored = 0, objects = 0;
	for (size_t off = 0; off + PAGE <= len; off += PAGE) {
		if (same_filled(pages + off))
			continue;
		int c = LZ4_compress_default((const char *)pages + off, out, PAGE, sizeof(out));
		size_t n = c <= 0 || c >= (int)PAGE ? PAGE : (size_t)c;
		uint64_t h;
		CHECK_EQ(pool_alloc(pool, n, &h), 0);
		CHECK(write_obj(pool, h, n, objects));
		stored += n;
		objects++;
	}
	double density = (double)stored / (double)pool_total_bytes(pool);
	printf("# corpus: %llu objects, %llu bytes stored, pool %llu bytes, density %.4f\n",
		(unsigned long long)objects, (unsigned long long)stored,
		(unsigned long long)pool_total_bytes(pool), density);
	CHECK(density >= 0.95);
	pool_destroy(pool);
	free(pages);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		corpus_path = argv[1];
	RUN(every_size_round_trips);
	RUN(objects_straddle_pages);
	RUN(free_returns_memory);
	RUN(partial_release_keeps_a_reserve_for_reuse);
	RUN(compaction_gives_back_memory);
	RUN(bad_sizes_get_e2big);
	RUN(exhaustion_gets_enomem);
	RUN(threads_with_compaction);
	RUN(corpus_density);
	return CHECK_DONE();
}
