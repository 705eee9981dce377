/* SPDX-License-Identifier: MIT */
/*
 * workload — a memory-bound program for side-by-side runs under the kernel's zswap and
 * under `uzswap run`: it fills BYTES of heap with compressible data, then touches it
 * sequentially or at random, and prints a checksum (the same in both runs, or something
 * was lost).
 *   workload seq|rand MiB PASSES
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096u

static void fill_page(uint64_t *w, uint64_t pg)
{
	for (unsigned i = 0; i < PAGE / 8; i++)
		w[i] = (i % 8 == 0) ? pg * 2654435761u : (uint64_t)(i & 0x3f);
}

int main(int argc, char **argv)
{
	size_t pages, touches;
	unsigned passes;
	uint64_t sum = 0, x = 88172645463325252ull;
	unsigned char *mem;
	int random;

	if (argc != 4 || (strcmp(argv[1], "seq") && strcmp(argv[1], "rand"))) {
		fprintf(stderr, "usage: workload seq|rand MiB PASSES\n");
		return 2;
	}
	random = !strcmp(argv[1], "rand");
	pages = (size_t)strtoul(argv[2], NULL, 10) * (1u << 20) / PAGE;
	passes = (unsigned)strtoul(argv[3], NULL, 10);
	if (!pages || !(mem = malloc(pages * PAGE)))
		return 1;
	for (size_t p = 0; p < pages; p++)
		fill_page((uint64_t *)(mem + p * PAGE), p);
	touches = pages * passes;
	for (size_t t = 0; t < touches; t++) {
		size_t p;
		uint64_t *w;

		if (random) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p = x % pages;
		} else {
			p = t % pages;
		}
		w = (uint64_t *)(mem + p * PAGE);
		sum += w[0] + w[PAGE / 8 - 1];
		w[1] += 1;
	}
	for (size_t p = 0; p < pages; p++)
		sum += ((uint64_t *)(mem + p * PAGE))[1];
	printf("%s %zu pages, %zu touches, checksum %llu\n", argv[1], pages, touches,
	       (unsigned long long)sum);
	free(mem);
	return 0;
}
