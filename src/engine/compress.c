/* SPDX-License-Identifier: MIT */
#include "compress.h"
#include "fault.h"

#include <errno.h>
#include <lz4.h>
#include <lzo/lzo1x.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

const char *const comp_names[] = { "lz4", "zstd", "lzo", "deflate", NULL };

/* Everything one thread needs to (de)compress with any algorithm. */
struct comp_ctx {
	void *lz4_state;
	ZSTD_CCtx *zstd_c;
	ZSTD_DCtx *zstd_d;
	void *lzo_work;
	z_stream deflate;
	int deflate_level; /* 0: the deflate stream is not initialised */
	z_stream inflate;
	int inflate_ready;
};

static __thread struct comp_ctx *thread_ctx;
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static int lzo_ok;

static void ctx_free(void *p)
{
	struct comp_ctx *ctx = p;

	if (!ctx)
		return;
	free(ctx->lz4_state);
	ZSTD_freeCCtx(ctx->zstd_c);
	ZSTD_freeDCtx(ctx->zstd_d);
	free(ctx->lzo_work);
	if (ctx->deflate_level)
		deflateEnd(&ctx->deflate);
	if (ctx->inflate_ready)
		inflateEnd(&ctx->inflate);
	free(ctx);
}

static void ctx_key_init(void)
{
	pthread_key_create(&ctx_key, ctx_free);
	lzo_ok = lzo_init() == LZO_E_OK;
}

static struct comp_ctx *ctx_get(void)
{
	if (thread_ctx)
		return thread_ctx;
	pthread_once(&ctx_once, ctx_key_init);
	thread_ctx = calloc(1, sizeof(*thread_ctx));
	if (thread_ctx)
		pthread_setspecific(ctx_key, thread_ctx);
	return thread_ctx;
}

void comp_thread_cleanup(void)
{
	if (!thread_ctx)
		return;
	pthread_setspecific(ctx_key, NULL);
	ctx_free(thread_ctx);
	thread_ctx = NULL;
}

static int default_level(enum comp_algo algo)
{
	switch (algo) {
	case COMP_ZSTD:
		return ZSTD_CLEVEL_DEFAULT;
	case COMP_DEFLATE:
		return Z_DEFAULT_COMPRESSION == -1 ? 6 : Z_DEFAULT_COMPRESSION;
	default:
		return 1;
	}
}

static int level_ok(enum comp_algo algo, int level)
{
	switch (algo) {
	case COMP_LZ4:
		return level >= 1 && level <= 65537;
	case COMP_ZSTD:
		return level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel();
	case COMP_LZO:
		return level == 1;
	case COMP_DEFLATE:
		return level >= 1 && level <= 9;
	default:
		return 0;
	}
}

static int algo_by_name(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum comp_algo algo;
	} names[] = { { "lz4", COMP_LZ4 },	   { "zstd", COMP_ZSTD },	  { "lzo", COMP_LZO },
		      { "lzo1x", COMP_LZO },	   { "deflate", COMP_DEFLATE }, { "zlib", COMP_DEFLATE } };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && !strncasecmp(names[i].name, name, len))
			return names[i].algo;
	return -1;
}

int comp_lookup(const char *spec, int level, struct compressor *out)
{
	const char *colon;
	size_t len;
	int algo;

	if (!spec || !*spec)
		return -EINVAL;
	colon = strchr(spec, ':');
	len = colon ? (size_t)(colon - spec) : strlen(spec);
	algo = algo_by_name(spec, len);
	if (algo < 0)
		return -EINVAL;
	if (colon) {
		char *end;
		long l = strtol(colon + 1, &end, 10);

		if (end == colon + 1 || *end || l < -1000000 || l > 1000000)
			return -EINVAL;
		level = (int)l;
	}
	if (level == 0)
		level = default_level(algo);
	if (!level_ok(algo, level))
		return -EINVAL;
	out->algo = algo;
	out->level = level;
	memcpy(out->name, comp_names[algo], strlen(comp_names[algo]) + 1);
	return 0;
}

static int lz4_compress(struct comp_ctx *ctx, const struct compressor *c, const void *src,
			size_t len, void *dst)
{
	int n;

	if (!ctx->lz4_state && !(ctx->lz4_state = malloc(LZ4_sizeofState())))
		return -ENOMEM;
	n = LZ4_compress_fast_extState(ctx->lz4_state, src, dst, (int)len, COMP_DST_BYTES,
				       c->level);
	return n > 0 ? n : -EIO;
}

static int zstd_compress(struct comp_ctx *ctx, const struct compressor *c, const void *src,
			 size_t len, void *dst)
{
	size_t n;

	if (!ctx->zstd_c && !(ctx->zstd_c = ZSTD_createCCtx()))
		return -ENOMEM;
	n = ZSTD_compressCCtx(ctx->zstd_c, dst, COMP_DST_BYTES, src, len, c->level);
	return ZSTD_isError(n) ? -EIO : (int)n;
}

static int lzo_compress(struct comp_ctx *ctx, const void *src, size_t len, void *dst)
{
	lzo_uint out_len = COMP_DST_BYTES;

	if (!lzo_ok)
		return -EIO;
	if (!ctx->lzo_work && !(ctx->lzo_work = malloc(LZO1X_1_MEM_COMPRESS)))
		return -ENOMEM;
	if (lzo1x_1_compress(src, len, dst, &out_len, ctx->lzo_work) != LZO_E_OK)
		return -EIO;
	return (int)out_len;
}

/* A raw deflate stream (no zlib header: 4 KiB pages need no framing) kept per thread and
 * re-made only when the level changes. */
static int deflate_ready(struct comp_ctx *ctx, int level)
{
	if (ctx->deflate_level == level)
		return deflateReset(&ctx->deflate) == Z_OK ? 0 : -EIO;
	if (ctx->deflate_level)
		deflateEnd(&ctx->deflate);
	ctx->deflate_level = 0;
	memset(&ctx->deflate, 0, sizeof(ctx->deflate));
	if (deflateInit2(&ctx->deflate, level, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	ctx->deflate_level = level;
	return 0;
}

static int deflate_compress(struct comp_ctx *ctx, const struct compressor *c, const void *src,
			    size_t len, void *dst)
{
	z_stream *zs = &ctx->deflate;
	int err = deflate_ready(ctx, c->level);

	if (err)
		return err;
	zs->next_in = (Bytef *)src;
	zs->avail_in = (uInt)len;
	zs->next_out = dst;
	zs->avail_out = COMP_DST_BYTES;
	if (deflate(zs, Z_FINISH) != Z_STREAM_END)
		return -EIO;
	return (int)(COMP_DST_BYTES - zs->avail_out);
}

int comp_compress(const struct compressor *c, const void *src, size_t len, void *dst)
{
	struct comp_ctx *ctx = ctx_get();

	if (!ctx)
		return -ENOMEM;
	if (fault_hit(FAULT_COMPRESS))
		return -EINVAL;
	switch (c->algo) {
	case COMP_LZ4:
		return lz4_compress(ctx, c, src, len, dst);
	case COMP_ZSTD:
		return zstd_compress(ctx, c, src, len, dst);
	case COMP_LZO:
		return lzo_compress(ctx, src, len, dst);
	case COMP_DEFLATE:
		return deflate_compress(ctx, c, src, len, dst);
	default:
		return -EINVAL;
	}
}

static int zstd_decompress(struct comp_ctx *ctx, const void *src, size_t src_len, void *dst,
			   size_t dst_len)
{
	size_t n;

	if (!ctx->zstd_d && !(ctx->zstd_d = ZSTD_createDCtx()))
		return -ENOMEM;
	n = ZSTD_decompressDCtx(ctx->zstd_d, dst, dst_len, src, src_len);
	return !ZSTD_isError(n) && n == dst_len ? 0 : -EIO;
}

static int lzo_decompress(const void *src, size_t src_len, void *dst, size_t dst_len)
{
	lzo_uint out_len = dst_len;
	int r = lzo1x_decompress_safe(src, src_len, dst, &out_len, NULL);

	return r == LZO_E_OK && out_len == dst_len ? 0 : -EIO;
}

static int inflate_page(struct comp_ctx *ctx, const void *src, size_t src_len, void *dst,
			size_t dst_len)
{
	z_stream *zs = &ctx->inflate;

	if (!ctx->inflate_ready) {
		memset(zs, 0, sizeof(*zs));
		if (inflateInit2(zs, -15) != Z_OK)
			return -ENOMEM;
		ctx->inflate_ready = 1;
	} else if (inflateReset(zs) != Z_OK) {
		return -EIO;
	}
	zs->next_in = (Bytef *)src;
	zs->avail_in = (uInt)src_len;
	zs->next_out = dst;
	zs->avail_out = (uInt)dst_len;
	return inflate(zs, Z_FINISH) == Z_STREAM_END && zs->avail_out == 0 ? 0 : -EIO;
}

int comp_decompress(const struct compressor *c, const void *src, size_t src_len, void *dst,
		    size_t dst_len)
{
	struct comp_ctx *ctx;

	switch (c->algo) {
	case COMP_LZ4:
		return LZ4_decompress_safe(src, dst, (int)src_len, (int)dst_len) == (int)dst_len
			       ? 0
			       : -EIO;
	case COMP_LZO:
		return lzo_decompress(src, src_len, dst, dst_len);
	case COMP_ZSTD:
	case COMP_DEFLATE:
		ctx = ctx_get();
		if (!ctx)
			return -ENOMEM;
		return c->algo == COMP_ZSTD ? zstd_decompress(ctx, src, src_len, dst, dst_len)
					    : inflate_page(ctx, src, src_len, dst, dst_len);
	default:
		return -EINVAL;
	}
}
