/* SPDX-License-Identifier: MIT */
/*
 * fuzz_decode — libFuzzer target: arbitrary bytes as a compressed page for each of the
 * four decompressors. A pool object is only ever what the engine's own compressor wrote,
 * but a flipped bit in RAM or a bug elsewhere must end as -EIO, never as a write past the
 * page.
 *
 * Each input is decoded twice per compressor. Once into a malloc'd block of exactly one
 * page, so ASan sees an overrun by instrumented code or by intercepted calls (memcpy).
 * The decompressors themselves are system libraries ASan did not instrument, so a plain
 * store of theirs past the block would go unseen: the second decode reads from a copy
 * that ends where an inaccessible page begins and writes to a page with inaccessible
 * pages on both sides, so any overrun or over-read faults. Both must agree.
 *
 * Uninstrumented decompressors also give libFuzzer no coverage to steer by: every input
 * looks alike and the seeds collapse to a handful. So the target reports its own
 * feature through libFuzzer's extra counters: per compressor and result, how far into
 * the page the decoder wrote (in powers of two) before it finished or gave up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "compress.h"
#include "ops.h"

#define PAGE 4096u
#define SRC_PAGES 4u /* inputs up to 16 KiB get a guarded copy; run.sh caps them at 8 KiB */

static unsigned long long nr_inputs;
static unsigned char *src_end; /* SRC_PAGES pages, then an inaccessible one */
static unsigned char *dst_page; /* an inaccessible page, this one, another */
static struct compressor comps[NR_FUZZ_COMPRESSORS];

#define POISON 0xa5
#define DEPTHS 14 /* nothing written, then 1, 2-3, 4-7, ... 4096 bytes */
static uint8_t depth_seen[NR_FUZZ_COMPRESSORS][2][DEPTHS]
	__attribute__((section("__libfuzzer_extra_counters"), used));

__attribute__((destructor)) static void report_inputs(void)
{
	fprintf(stderr, "fuzz_decode: %llu inputs\n", nr_inputs);
}

static void die(const char *what)
{
	perror(what);
	abort();
}

/* pages readable and writable pages, then guard inaccessible ones after them; returns
 * the start. */
static unsigned char *map_guarded(unsigned pages, unsigned guard_before)
{
	size_t len = (size_t)(guard_before + pages + 1) * PAGE;
	unsigned char *m = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		die("mmap");
	m += (size_t)guard_before * PAGE;
	if (mprotect(m, (size_t)pages * PAGE, PROT_READ | PROT_WRITE))
		die("mprotect");
	return m;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	src_end = map_guarded(SRC_PAGES, 0) + (size_t)SRC_PAGES * PAGE;
	dst_page = map_guarded(1, 1);
	for (unsigned i = 0; i < NR_FUZZ_COMPRESSORS; i++)
		if (comp_lookup(fuzz_compressors[i], 0, &comps[i]))
			die(fuzz_compressors[i]);
	return 0;
}

static void check_result(const struct compressor *c, int r, size_t size, const char *where)
{
	if (r == 0 || r == -EIO)
		return;
	fprintf(stderr, "fuzz_decode: %s decompress of %zu bytes (%s) returned %d\n", c->name,
		size, where, r);
	abort();
}

/* How far into the page a decoder got: past the last byte that is not the poison. */
static unsigned depth(const unsigned char *dst)
{
	unsigned n = PAGE, d = 0;

	while (n && dst[n - 1] == POISON)
		n--;
	while (n) {
		d++;
		n >>= 1;
	}
	return d;
}

static void decode_with(unsigned i, const uint8_t *data, const uint8_t *guarded, size_t size)
{
	const struct compressor *c = &comps[i];
	unsigned char *dst = malloc(PAGE);
	int r, g;

	if (!dst)
		die("malloc");
	memset(dst, POISON, PAGE);
	r = comp_decompress(c, data, size, dst, PAGE);
	depth_seen[i][r == 0][depth(dst)]++;
	check_result(c, r, size, "malloc'd page");
	g = comp_decompress(c, guarded, size, dst_page, PAGE);
	check_result(c, g, size, "guarded page");
	if (r != g || (r == 0 && memcmp(dst, dst_page, PAGE))) {
		fprintf(stderr, "fuzz_decode: %s decoded %zu bytes two ways: %d and %d\n", c->name,
			size, r, g);
		abort();
	}
	free(dst);
}

/* libFuzzer hands over a heap copy of exactly size bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *guarded = data;

	if (size <= (size_t)SRC_PAGES * PAGE) {
		memcpy(src_end - size, data, size);
		guarded = src_end - size;
	}
	for (unsigned i = 0; i < NR_FUZZ_COMPRESSORS; i++)
		decode_with(i, data, guarded, size);
	nr_inputs++;
	return 0;
}
