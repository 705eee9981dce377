/* SPDX-License-Identifier: MIT */
/*
 * dontfork MB: MB MiB marked MADV_DONTFORK and filled, then a fork. The child does not
 * have that range; it maps fresh memory of the same size at the same address, checks it
 * reads as zeros, fills it and reads it back. The parent checks its own data after the
 * child is gone. Prints the counts of wrong pages (0 expected).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)

static uint64_t word_of(size_t page, size_t i, uint64_t salt)
{
	return ((uint64_t)page * 0x9e3779b97f4a7c15ull ^ (uint64_t)i) + salt;
}

static void fill(uint64_t *m, size_t pages, uint64_t salt)
{
	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < WORDS; i++)
			m[p * WORDS + i] = word_of(p, i, salt);
}

static size_t wrong_pages(const uint64_t *m, size_t pages, uint64_t salt, int zeros)
{
	size_t bad = 0;

	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < WORDS; i++)
			if (m[p * WORDS + i] != (zeros ? 0 : word_of(p, i, salt))) {
				bad++;
				break;
			}
	return bad;
}

static int child_main(void *at, size_t bytes)
{
	size_t pages = bytes / PAGE;
	uint64_t *m = mmap(at, bytes, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (m == MAP_FAILED || m != at)
		return perror("child mmap"), 2;
	printf("child: %zu pages not zero\n", wrong_pages(m, pages, 0, 1));
	for (int round = 0; round < 2; round++) {
		fill(m, pages, 7 + (uint64_t)round);
		printf("child: %zu pages wrong\n", wrong_pages(m, pages, 7 + (uint64_t)round, 0));
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t bytes = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20, pages = bytes / PAGE;
	uint64_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t child;
	int st;

	if (m == MAP_FAILED || madvise(m, bytes, MADV_DONTFORK) < 0)
		return perror("mmap/madvise"), 2;
	fill(m, pages, 1);
	fflush(stdout);
	if ((child = fork()) < 0)
		return perror("fork"), 2;
	if (child == 0)
		return child_main(m, bytes);
	if (waitpid(child, &st, 0) < 0)
		return perror("waitpid"), 2;
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	printf("parent: %zu pages wrong\n", wrong_pages(m, pages, 1, 0));
	return 0;
}
