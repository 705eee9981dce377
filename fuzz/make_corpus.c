/* SPDX-License-Identifier: MIT */
/*
 * make_corpus — writes the fuzzers' seed corpora: DIR/decode/ (real pages of the project's
 * page corpus compressed by each compressor, whole, truncated and with flipped bytes) and
 * DIR/ops/ (inputs for fuzz_ops that reach each operation and its error paths).
 *
 * Usage: make_corpus DIR, from the repository root (it reads corpus/, or ../shared/corpus/).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "compress.h"
#include "ops.h"

#define PAGE 4096u
#define CORPUS_NAME "python-heap-8k.pages.zst"

static const char *out_dir;
static unsigned nr_files;

static void write_file(const char *sub, const char *name, const void *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, sub, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
	nr_files++;
}

static void make_dir(const char *sub)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", out_dir, sub);
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		perror(out_dir);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
}

/* ---- decode: compressed pages ---- */

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else
		free(buf), buf = NULL;
	fclose(f);
	return buf;
}

/* The page corpus, decompressed: the repository's copy, else the shared one. */
static unsigned char *load_pages(size_t *nr_pages)
{
	static const char *const paths[] = {
		"corpus/" CORPUS_NAME,
		"../shared/corpus/" CORPUS_NAME,
	};
	unsigned char *z = NULL, *pages = NULL;
	unsigned long long raw;
	size_t len = 0;

	for (unsigned i = 0; i < 2 && !z; i++)
		z = read_all(paths[i], &len);
	if (!z)
		return NULL;
	raw = ZSTD_getFrameContentSize(z, len);
	if (raw != ZSTD_CONTENTSIZE_ERROR && raw != ZSTD_CONTENTSIZE_UNKNOWN && raw % PAGE == 0 &&
	    (pages = malloc((size_t)raw)) && ZSTD_decompress(pages, (size_t)raw, z, len) == raw)
		*nr_pages = (size_t)(raw / PAGE);
	else
		free(pages), pages = NULL;
	free(z);
	return pages;
}

/* Whole, cut short (the tail of a stream missing) and with three bytes flipped (damage
 * inside a stream that still parses). */
static void write_variants(const char *algo, const char *tag, const unsigned char *c, int len)
{
	unsigned char flipped[COMP_DST_BYTES];
	char name[64];

	snprintf(name, sizeof(name), "%s-%s", algo, tag);
	write_file("decode", name, c, (size_t)len);
	snprintf(name, sizeof(name), "%s-%s-cut", algo, tag);
	write_file("decode", name, c, (size_t)len * 2 / 3);
	memcpy(flipped, c, (size_t)len);
	for (int i = 1; i <= 3; i++)
		flipped[(size_t)len * (size_t)i / 4] ^= (unsigned char)(0x11 << (i - 1));
	snprintf(name, sizeof(name), "%s-%s-flip", algo, tag);
	write_file("decode", name, flipped, (size_t)len);
}

static void compress_one(const struct compressor *c, const char *tag, const void *page,
			 bool variants)
{
	unsigned char out[COMP_DST_BYTES];
	int len = comp_compress(c, page, PAGE, out);
	char name[64];

	if (len <= 0) {
		fprintf(stderr, "make_corpus: %s failed on page %s\n", c->name, tag);
		exit(1);
	}
	if (variants) {
		write_variants(c->name, tag, out, len);
		return;
	}
	snprintf(name, sizeof(name), "%s-%s", c->name, tag);
	write_file("decode", name, out, (size_t)len);
}

static void make_decode(const unsigned char *pages, size_t nr_pages)
{
	static const size_t picks[] = { 3, 1500, 4100, 7777 };
	unsigned char special[PAGE];
	uint64_t x = 88172645463325252ull;

	make_dir("decode");
	for (unsigned a = 0; a < NR_FUZZ_COMPRESSORS; a++) {
		struct compressor c;
		char tag[32];

		if (comp_lookup(fuzz_compressors[a], 0, &c))
			exit(1);
		for (unsigned i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
			snprintf(tag, sizeof(tag), "p%zu", picks[i] % nr_pages);
			compress_one(&c, tag, pages + picks[i] % nr_pages * PAGE, true);
		}
		memset(special, 0, PAGE);
		compress_one(&c, "zero", special, false);
		for (unsigned i = 0; i < PAGE; i += 8) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			memcpy(special + i, &x, 8);
		}
		compress_one(&c, "noise", special, false);
	}
}

/* ---- ops: inputs for fuzz_ops ---- */

struct input {
	uint8_t b[4096];
	size_t len;
};

static void put(struct input *in, enum fuzz_op op, const uint8_t *args)
{
	if (in->len + 1 + op_args[op] > sizeof(in->b)) {
		fprintf(stderr, "make_corpus: seed too long\n");
		exit(1);
	}
	in->b[in->len++] = (uint8_t)op;
	memcpy(in->b + in->len, args, op_args[op]);
	in->len += op_args[op];
}

#define OP(in, op, ...) put((in), (op), (const uint8_t[]){ __VA_ARGS__, 0, 0, 0, 0, 0 })

/* Header, two groups (g1 under the root, g2 under g1) and some pages of every kind in
 * them, singly and as runs: what every seed starts from. */
static void start(struct input *in, unsigned header)
{
	in->len = 0;
	in->b[in->len++] = (uint8_t)(header & 3);
	in->b[in->len++] = (uint8_t)(header % NR_FUZZ_COMPRESSORS);
	OP(in, OP_GROUP_CREATE, 0, 0);
	OP(in, OP_GROUP_CREATE, 1, 0);
	for (uint8_t k = 0; k < NR_KINDS; k++)
		OP(in, OP_OUT, k % 3, k, k * 7, 1);
	OP(in, OP_OUT_RUN, 1, 2, 0x80 | 2, 5, 0);
	OP(in, OP_OUT_RUN, 2, 4, 0x80, 9, 0);
}

static unsigned variant;

static void noise(uint8_t *b, size_t len, uint64_t x)
{
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)(x >> 32);
	}
}

/* One file per seed and header variant, padded with noise operations to SEED_BYTES: an
 * instance costs a few milliseconds to open and close, so long inputs are what make many
 * operations a second, and inputs bred from these stay long. */
#define SEED_BYTES 3072u

static void finish(struct input *in, const char *name)
{
	char file[64];

	if (in->len < SEED_BYTES) {
		noise(in->b + in->len, SEED_BYTES - in->len, in->len * 2654435761u + variant + 1);
		in->len = SEED_BYTES;
	}
	snprintf(file, sizeof(file), "%s-h%u", name, variant);
	write_file("ops", file, in->b, in->len);
}

static void seed_outs(struct input *in)
{
	for (uint8_t g = 0; g < 3; g++)
		for (uint8_t k = 0; k < NR_KINDS; k++)
			OP(in, OP_OUT, g, (uint8_t)(k | (g == 0 ? 0x80 : 0)), g, k);
	for (uint8_t o = 0; o <= 4; o++)
		OP(in, OP_OUT_RUN, o, o, o == 3 ? 0x83 : o, o, 3);
	finish(in, "swap-out");
}

static void seed_ins(struct input *in)
{
	for (uint8_t i = 0; i < 12; i++)
		OP(in, OP_IN, (uint8_t)(i * 5), i & 1);
	OP(in, OP_IN, 0, 0);
	OP(in, OP_IN, 0, 0);
	finish(in, "swap-in");
}

static void seed_in_runs(struct input *in)
{
	for (uint8_t o = 0; o <= 4; o++)
		OP(in, OP_IN_RUN, (uint8_t)(o * 3), o, o & 1);
	/* part of a run written back: the next load of it is partial */
	OP(in, OP_OUT_RUN, 0, 4, 2, 1, 1);
	OP(in, OP_SHRINK, 3);
	OP(in, OP_IN_RUN, 20, 4, 0);
	OP(in, OP_PRESENT, 20, 4, 0);
	finish(in, "swap-in-run");
}

static void seed_free_dup(struct input *in)
{
	OP(in, OP_DUP, 1);
	OP(in, OP_DUP, 1);
	OP(in, OP_IN, 1, 0);
	OP(in, OP_FREE, 1);
	OP(in, OP_IN, 1, 1);
	OP(in, OP_FREE, 2);
	OP(in, OP_IN, 3, 0);
	OP(in, OP_DUP, 3);
	for (uint8_t i = 0; i < 30; i++)
		OP(in, OP_FREE, i);
	OP(in, OP_IN, 0, 0);
	OP(in, OP_DUP, 0);
	finish(in, "free-dup");
}

static void seed_present_hold(struct input *in)
{
	for (uint8_t o = 0; o <= 4; o++) {
		OP(in, OP_PRESENT, (uint8_t)(o * 2), o, o & 1 ? 0x83 : 0);
		OP(in, OP_HOLD, (uint8_t)(o * 2), o, 0);
	}
	OP(in, OP_HOLD, 2, 2, 0);
	OP(in, OP_SHRINK, 250);
	OP(in, OP_HOLD, 2, 2, 1);
	OP(in, OP_HOLD, 0, 4, 1);
	OP(in, OP_SHRINK, 250);
	OP(in, OP_PRESENT, 3, 4, 0);
	finish(in, "present-hold");
}

static void seed_bad_slots(struct input *in)
{
	for (uint8_t call = 0; call < 6; call++) {
		OP(in, OP_BAD_SLOT, 200, call);
		OP(in, OP_BAD_SLOT, 0, call);
		OP(in, OP_BAD_SLOT, 3, (uint8_t)(0x40 | call));
		OP(in, OP_BAD_SLOT, 0, (uint8_t)(0x80 | call));
	}
	finish(in, "bad-slot");
}

static void seed_groups(struct input *in)
{
	for (uint8_t m = 0; m < 16; m++)
		OP(in, OP_GROUP_CREATE, m, m);
	OP(in, OP_GROUP_REMOVE, 0);
	OP(in, OP_GROUP_REMOVE, 1);
	for (uint8_t g = 0; g < 8; g++)
		OP(in, OP_GROUP_REMOVE, (uint8_t)(7 - g));
	OP(in, OP_IN_RUN, 4, 4, 0);
	finish(in, "groups");
}

static void seed_limits(struct input *in)
{
	OP(in, OP_ZSWAP_MAX, 1, 4 * 8 + 2);
	for (uint8_t k = 0; k < 8; k++)
		OP(in, OP_OUT, 1, k % NR_KINDS, k, 2);
	OP(in, OP_ZSWAP_MAX, 2, 0);
	OP(in, OP_OUT, 2, K_TEXT, 1, 1);
	OP(in, OP_OUT_RUN, 2, 3, K_TEXT, 1, 1);
	OP(in, OP_WRITEBACK, 1, 0);
	OP(in, OP_OUT, 2, K_TEXT, 2, 1);
	OP(in, OP_OUT, 1, K_RANDOM, 2, 1);
	OP(in, OP_OUT_RUN, 1, 2, 0x80, 2, 1);
	OP(in, OP_GROUP_SHRINK, 1, 4);
	OP(in, OP_WRITEBACK, 1, 1);
	OP(in, OP_GROUP_SHRINK, 1, 4);
	OP(in, OP_ZSWAP_MAX, 0, 1);
	OP(in, OP_MEMORY_MAX, 1, 10);
	OP(in, OP_MEMORY_MAX, 2, 1);
	OP(in, OP_MEMORY_MAX, 0, 0);
	OP(in, OP_RESIDENT, 1, 30);
	OP(in, OP_RESIDENT, 2, 31);
	OP(in, OP_RESIDENT, 0, 3);
	OP(in, OP_RESIDENT, 2, 0);
	OP(in, OP_PRINT, 0);
	OP(in, OP_PRINT, 1);
	OP(in, OP_GROUP_REMOVE, 2);
	OP(in, OP_RESIDENT, 1, 20);
	OP(in, OP_PRINT, 1);
	finish(in, "limits");
}

static void seed_compressors(struct input *in)
{
	for (uint8_t c = 0; c < 17; c++) {
		OP(in, OP_COMPRESSOR, c);
		OP(in, OP_OUT, c, K_TEXT, c, 4);
		OP(in, OP_OUT, c, K_RANDOM, c, 4);
	}
	for (uint8_t i = 0; i < 20; i++)
		OP(in, OP_IN, i, 0);
	finish(in, "compressors");
}

static void seed_reclaim(struct input *in)
{
	OP(in, OP_SHRINK, 2);
	OP(in, OP_SHRINK, 255);
	OP(in, OP_GROUP_SHRINK, 2, 3);
	for (uint8_t i = 0; i < 10; i++)
		OP(in, OP_FREE, i);
	OP(in, OP_COMPACT, 0);
	OP(in, OP_SHRINK, 245);
	for (uint8_t i = 0; i < 10; i++)
		OP(in, OP_IN, i, i & 1);
	finish(in, "reclaim");
}

/* Runs of 16 until the swap file is full, then every kind of store refused. */
static void seed_full(struct input *in)
{
	for (uint8_t i = 0; i < 16; i++)
		OP(in, OP_OUT_RUN, i, 4, (uint8_t)(i | 0x80), i, 7);
	OP(in, OP_OUT, 0, K_TEXT, 1, 1);
	OP(in, OP_OUT_RUN, 0, 1, K_ZERO, 1, 1);
	OP(in, OP_FREE, 7);
	OP(in, OP_OUT_RUN, 0, 1, K_ZERO, 1, 1);
	OP(in, OP_OUT, 0, K_ZERO, 1, 1);
	finish(in, "full");
}

/* Long inputs of noise: many operations per instance from the first run on. */
static void seed_noise(struct input *in, unsigned n)
{
	char name[32];

	in->len = 1024u << (n % 3);
	noise(in->b, in->len, 0x9e3779b97f4a7c15ull * (n + 1));
	snprintf(name, sizeof(name), "noise%u", n);
	variant = n % 4;
	finish(in, name);
}

static void make_ops(void)
{
	static void (*const seeds[])(struct input *) = {
		seed_outs,   seed_ins,	   seed_in_runs,     seed_free_dup, seed_present_hold,
		seed_bad_slots, seed_groups, seed_limits, seed_compressors, seed_reclaim,
		seed_full,
	};
	struct input in;

	make_dir("ops");
	/* every seed under a few headers: loads exclusive or not, each compressor */
	for (variant = 0; variant < 3; variant++)
		for (unsigned i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
			start(&in, variant + i);
			seeds[i](&in);
		}
	for (unsigned n = 0; n < 6; n++)
		seed_noise(&in, n);
}

int main(int argc, char **argv)
{
	size_t nr_pages = 0;
	unsigned char *pages;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (from the repository root)\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	pages = load_pages(&nr_pages);
	if (!pages) {
		fprintf(stderr, "make_corpus: cannot load corpus/" CORPUS_NAME "\n");
		return 1;
	}
	make_decode(pages, nr_pages);
	make_ops();
	free(pages);
	comp_thread_cleanup();
	printf("make_corpus: %u files in %s\n", nr_files, out_dir);
	return 0;
}
