/* SPDX-License-Identifier: MIT */
/*
 * fork_sleepers N [top-exits]: forks N children, each of which writes 1 MiB of its own
 * (so it has pages uzswap serves) and sleeps ten minutes; signals keep their default
 * action. The top process waits for them, or with "top-exits" leaves at once, so that
 * only the children remain. Prints one line when all are forked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void child(void)
{
	size_t bytes = 1u << 20;
	char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m != MAP_FAILED)
		memset(m, 0x5a, bytes);
	sleep(600);
	_exit(0);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	int top_exits = argc > 2 && !strcmp(argv[2], "top-exits");

	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return perror("fork"), 1;
		if (pid == 0)
			child();
	}
	printf("forked %d\n", n);
	fflush(stdout);
	if (top_exits)
		return 0;
	while (wait(NULL) > 0) {
	}
	return 0;
}
