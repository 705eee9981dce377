/* SPDX-License-Identifier: MIT */
/*
 * wipeonfork MB: MB MiB marked MADV_WIPEONFORK and filled, then a fork. The kernel gives
 * the child that range empty (zeros), the parent keeps its data. The child counts the
 * pages that are not all zeros (0 expected), then writes and reads back its own pattern;
 * the parent checks its pattern after the child is gone. Prints both counts.
 */
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

int main(int argc, char **argv)
{
	size_t bytes = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20, pages = bytes / PAGE;
	uint64_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t child;
	int st;

	if (m == MAP_FAILED || madvise(m, bytes, MADV_WIPEONFORK) < 0)
		return perror("mmap/madvise"), 2;
	fill(m, pages, 1);
	fflush(stdout);
	if ((child = fork()) < 0)
		return perror("fork"), 2;
	if (child == 0) {
		printf("child: %zu pages not zero\n", wrong_pages(m, pages, 0, 1));
		fill(m, pages, 2);
		printf("child: %zu pages wrong after writing\n", wrong_pages(m, pages, 2, 0));
		return 0;
	}
	if (waitpid(child, &st, 0) < 0)
		return perror("waitpid"), 2;
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	printf("parent: %zu pages wrong\n", wrong_pages(m, pages, 1, 0));
	return 0;
}
