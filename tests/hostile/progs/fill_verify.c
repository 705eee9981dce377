/* SPDX-License-Identifier: MIT */
/*
 * fill_verify MB [ROUNDS]: writes MB MiB of private anonymous memory with a pattern that
 * depends on each page's index, reads it back ROUNDS times (default 2) and prints a
 * checksum, or MISMATCH and exit 1 at the first wrong byte. The baseline program of the
 * hostile cases: its output is the same natively and under uzswap run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096u

static uint64_t word_of(size_t page, size_t i)
{
	return (uint64_t)page * 0x9e3779b97f4a7c15ull ^ (uint64_t)i;
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	int rounds = argc > 2 ? atoi(argv[2]) : 2;
	size_t bytes = mb << 20, pages = bytes / PAGE, words = PAGE / 8;
	uint64_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t sum = 0;

	if (m == MAP_FAILED)
		return perror("mmap"), 2;
	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < words; i += 8)
			m[p * words + i] = word_of(p, i);
	for (int r = 0; r < rounds; r++)
		for (size_t p = 0; p < pages; p++)
			for (size_t i = 0; i < words; i += 8) {
				uint64_t v = m[p * words + i];

				if (v != word_of(p, i)) {
					printf("MISMATCH page %zu word %zu byte0=%u\n", p, i,
					       (unsigned)(v & 0xff));
					return 1;
				}
				sum += v;
			}
	printf("%zu MiB, %d rounds, sum %016llx\n", mb, rounds, (unsigned long long)sum);
	return 0;
}
