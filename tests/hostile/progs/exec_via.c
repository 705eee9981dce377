/* SPDX-License-Identifier: MIT */
/*
 * exec_via HOW PROG [ARG...]: runs PROG the way a program might, HOW being one of execv,
 * execvp (PROG searched in PATH), execl, execlp, execle, execve-noenv (an empty
 * environment, as `env -i` gives), fexecve, posix_spawn, posix_spawnp, system. The exec
 * calls replace this process; on failure it says why and exits 126, as a shell does.
 * The spawns and system wait for PROG and exit with its status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failed(const char *how, int err)
{
	fprintf(stderr, "exec_via: %s: %s\n", how, strerror(err));
	return 126;
}

static int waited(const char *how, int err, pid_t pid)
{
	int status;

	if (err)
		return failed(how, err);
	if (waitpid(pid, &status, 0) < 0)
		return failed("waitpid", errno);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int joined_system(char **argv)
{
	char cmd[4096] = "";

	for (int i = 0; argv[i]; i++)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s'%s'", i ? " " : "", argv[i]);
	int status = system(cmd);

	return WIFEXITED(status) ? WEXITSTATUS(status) : 126;
}

int main(int argc, char **argv)
{
	const char *how = argc > 2 ? argv[1] : "";
	char **prog = argv + 2;
	char *empty[] = { NULL };
	pid_t pid;
	int fd;

	if (argc < 3)
		return fprintf(stderr, "usage: exec_via HOW PROG [ARG...]\n"), 2;
	fflush(stdout);
	if (!strcmp(how, "execv"))
		execv(prog[0], prog);
	else if (!strcmp(how, "execvp"))
		execvp(prog[0], prog);
	else if (!strcmp(how, "execl"))
		execl(prog[0], prog[0], argc > 3 ? prog[1] : NULL, (char *)NULL);
	else if (!strcmp(how, "execlp"))
		execlp(prog[0], prog[0], argc > 3 ? prog[1] : NULL, (char *)NULL);
	else if (!strcmp(how, "execle"))
		execle(prog[0], prog[0], argc > 3 ? prog[1] : NULL, (char *)NULL, environ);
	else if (!strcmp(how, "execve-noenv"))
		execve(prog[0], prog, empty);
	else if (!strcmp(how, "fexecve")) {
		if ((fd = open(prog[0], O_RDONLY | O_CLOEXEC)) < 0)
			return failed("open", errno);
		fexecve(fd, prog, environ);
	} else if (!strcmp(how, "posix_spawn"))
		return waited(how, posix_spawn(&pid, prog[0], NULL, NULL, prog, environ), pid);
	else if (!strcmp(how, "posix_spawnp"))
		return waited(how, posix_spawnp(&pid, prog[0], NULL, NULL, prog, environ), pid);
	else if (!strcmp(how, "system"))
		return joined_system(prog);
	else
		return fprintf(stderr, "exec_via: unknown HOW '%s'\n", how), 2;
	return failed(how, errno);
}
