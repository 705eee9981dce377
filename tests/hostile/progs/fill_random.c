/* SPDX-License-Identifier: MIT */
/*
 * fill_random MB [ROUNDS]: like fill_verify, but the pages hold pseudo-random bytes
 * (xorshift64, seeded from each page's index), which no compressor can shrink: they go to
 * the swap file, so a run exercises it. Prints a checksum, or MISMATCH and exit 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096u

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill_page(uint64_t *w, size_t page)
{
	uint64_t x = page * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < PAGE / 8; i++)
		w[i] = next(&x);
}

static int check_page(const uint64_t *w, size_t page, uint64_t *sum)
{
	uint64_t x = page * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < PAGE / 8; i++) {
		if (w[i] != next(&x))
			return -1;
		*sum += w[i];
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	int rounds = argc > 2 ? atoi(argv[2]) : 2;
	size_t pages = (mb << 20) / PAGE;
	uint64_t *m = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t sum = 0;

	if (m == MAP_FAILED)
		return perror("mmap"), 2;
	for (size_t p = 0; p < pages; p++)
		fill_page(m + p * (PAGE / 8), p);
	for (int r = 0; r < rounds; r++)
		for (size_t p = 0; p < pages; p++)
			if (check_page(m + p * (PAGE / 8), p, &sum)) {
				printf("MISMATCH at page %zu\n", p);
				return 1;
			}
	printf("%zu MiB, %d rounds, sum %016llx\n", mb, rounds, (unsigned long long)sum);
	return 0;
}
