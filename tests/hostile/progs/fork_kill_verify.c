/* SPDX-License-Identifier: MIT */
/*
 * fork_kill_verify MB SECONDS: fills MB MiB with a pattern that depends on each page's
 * index, forks, and the child checks the pattern in two threads, again and again, for
 * SECONDS. Lines: "forking", then the child's "child verifying", and at the end
 * "child done" (exit 0), or "MISMATCH ..." (exit 1) at the first wrong word. Run under
 * uzswap run with a budget below MB and the supervisor killed meanwhile: the child must
 * be killed, never read zeros where its memory was.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)

static uint64_t *mem;
static size_t pages;
static double deadline;

static uint64_t word_of(size_t page, size_t i)
{
	return (uint64_t)page * 0x9e3779b97f4a7c15ull ^ (uint64_t)i ^ 0x5555;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(3);
}

/* Half the pages (even or odd), until the deadline. */
static void *verify(void *arg)
{
	size_t half = (size_t)(uintptr_t)arg;
	char msg[128];

	while (now() < deadline)
		for (size_t p = half; p < pages; p += 2)
			for (size_t i = 0; i < WORDS; i += 64)
				if (mem[p * WORDS + i] != word_of(p, i)) {
					snprintf(msg, sizeof(msg), "MISMATCH page %zu word %zu: %llx\n",
						 p, i, (unsigned long long)mem[p * WORDS + i]);
					say(msg);
					_exit(1);
				}
	return NULL;
}

int main(int argc, char **argv)
{
	size_t bytes = (argc > 1 ? strtoul(argv[1], NULL, 10) : 96) << 20;
	double seconds = argc > 2 ? atof(argv[2]) : 20;
	pthread_t t[2];
	pid_t child;
	int st;

	pages = bytes / PAGE;
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return perror("mmap"), 2;
	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < WORDS; i++)
			mem[p * WORDS + i] = word_of(p, i);
	say("forking\n");
	child = fork();
	if (child < 0)
		return perror("fork"), 2;
	if (child == 0) {
		say("child verifying\n");
		deadline = now() + seconds;
		for (uintptr_t h = 0; h < 2; h++)
			pthread_create(&t[h], NULL, verify, (void *)h);
		for (int h = 0; h < 2; h++)
			pthread_join(t[h], NULL);
		say("child done\n");
		_exit(0);
	}
	if (waitpid(child, &st, 0) < 0)
		return perror("waitpid"), 2;
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}
