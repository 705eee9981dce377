/* SPDX-License-Identifier: MIT */
/*
 * compress — the four compressors behind one interface, with per-thread contexts.
 *
 * Contexts (lz4 state, zstd CCtx/DCtx, lzo work memory, zlib streams) belong to the
 * calling thread and are made on first use, so compressing never takes a lock. They are
 * freed when the thread exits, or by comp_thread_cleanup().
 */
#ifndef UZS_COMPRESS_H
#define UZS_COMPRESS_H

#include <stddef.h>

enum comp_algo { COMP_LZ4, COMP_ZSTD, COMP_LZO, COMP_DEFLATE, COMP_NR_ALGOS };

struct compressor {
	enum comp_algo algo;
	int level; /* resolved: never 0 for zstd and deflate; lz4 acceleration >= 1 */
	char name[24];
};

/* A destination of this many bytes always holds the compressed form of a page. */
#define COMP_DST_BYTES (2 * 4096)

/* Look up "lz4", "zstd", "lzo"/"lzo1x", "deflate"/"zlib"; a "NAME:LEVEL" spec overrides
 * level. 0 or -EINVAL (unknown name, level out of range). */
int comp_lookup(const char *spec, int level, struct compressor *out);

/* Compress len bytes into dst (COMP_DST_BYTES). Returns the compressed length, or a
 * negative errno when the compressor failed. */
int comp_compress(const struct compressor *c, const void *src, size_t len, void *dst);

/* Decompress exactly dst_len bytes. 0, or -EIO when the data is corrupt or of another
 * length. */
int comp_decompress(const struct compressor *c, const void *src, size_t src_len, void *dst,
		    size_t dst_len);

void comp_thread_cleanup(void);

extern const char *const comp_names[];

#endif
