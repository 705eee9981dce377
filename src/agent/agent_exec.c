/* SPDX-License-Identifier: MIT */
/*
 * The agent's exec calls (part of libuzswap-agent.so, see tools/agent.c). A program a
 * managed process execs is managed only if the agent gets preloaded into it again:
 *  - one the dynamic loader would not preload it into (statically linked, setuid, setgid,
 *    file capabilities: src/exec_check.h) is refused, with one line on stderr and
 *    EACCES, instead of running outside the budget unseen;
 *  - the environment it gets keeps LD_PRELOAD naming the agent and the supervisor's
 *    socket, even where the program passes its own (env -i, a cleared environment).
 * The exported exec family is covered: execve, execv, execvp, execvpe, execl, execlp,
 * execle, fexecve, posix_spawn, posix_spawnp. The C library's own calls (system, popen)
 * run /bin/sh, which is managed and whose exec comes through here; only a raw execve
 * system call goes past. Nothing here allocates: it may run between vfork and exec.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_exec.h"
#include "agent_proto.h"
#include "exec_check.h"

#define EXPORTED __attribute__((visibility("default")))
#define MAX_ENV_FIXED 65536 /* entries: more would not fit on the stack; passed as is */

typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			const posix_spawnattr_t *, char *const[], char *const[]);

static struct {
	char socket_env[160]; /* "UZSWAP_AGENT_SOCKET=name"; "" when not managed */
	char agent[PATH_MAX];  /* this library's path, for LD_PRELOAD */
	execvpe_fn execvpe;
	spawn_fn spawn, spawnp;
} ex __attribute__((section(".data")));

void agent_exec_init(const char *socket_name)
{
	Dl_info self;

	if (!dladdr((void *)agent_exec_init, &self) || !self.dli_fname ||
	    strlen(self.dli_fname) >= sizeof(ex.agent))
		return;
	strcpy(ex.agent, self.dli_fname);
	ex.execvpe = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
	ex.spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
	ex.spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
	snprintf(ex.socket_env, sizeof(ex.socket_env), "%s=%s", AGENT_ENV_SOCKET, socket_name);
}

static int managed(void)
{
	return ex.socket_env[0] != '\0';
}

/* 0, or -1 with errno EACCES after saying why prog cannot run managed. */
static int refuse(const char *prog, const char *why)
{
	if (!why || !managed())
		return 0;
	exec_say_refused(prog, why);
	errno = EACCES;
	return -1;
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* envp with the two variables the agent needs, into out (room for n + 3 entries); the
 * program's own LD_PRELOAD libraries stay, after the agent. */
static void fix_env(char *const envp[], size_t n, char **out, char *preload, size_t size)
{
	size_t k = 0;
	int have_preload = 0;

	for (size_t i = 0; i < n; i++) {
		if (starts(envp[i], AGENT_ENV_SOCKET "="))
			continue;
		if (starts(envp[i], "LD_PRELOAD=")) {
			const char *old = envp[i] + strlen("LD_PRELOAD=");

			if (strstr(old, ex.agent))
				snprintf(preload, size, "%s", envp[i]);
			else
				snprintf(preload, size, "LD_PRELOAD=%s%s%s", ex.agent, *old ? ":" : "", old);
			out[k++] = preload;
			have_preload = 1;
			continue;
		}
		out[k++] = envp[i];
	}
	if (!have_preload) {
		snprintf(preload, size, "LD_PRELOAD=%s", ex.agent);
		out[k++] = preload;
	}
	out[k++] = ex.socket_env;
	out[k] = NULL;
}

static size_t env_len(char *const envp[])
{
	size_t n = 0;

	while (envp && envp[n])
		n++;
	return n;
}

/* The exec calls, each with the fixed environment. */
enum how { BY_PATH, BY_SEARCH, BY_FD, SPAWN, SPAWNP };
struct call {
	enum how how;
	const char *file;
	int fd;
	char *const *argv;
	pid_t *pid;
	const posix_spawn_file_actions_t *actions;
	const posix_spawnattr_t *attr;
};

static int do_call(const struct call *c, char *const env[])
{
	switch (c->how) {
	case BY_PATH:
		return (int)syscall(SYS_execve, c->file, c->argv, env);
	case BY_SEARCH:
		if (!ex.execvpe)
			return errno = ENOSYS, -1;
		return ex.execvpe(c->file, c->argv, env);
	case BY_FD:
		return (int)syscall(SYS_execveat, c->fd, "", c->argv, env, AT_EMPTY_PATH);
	case SPAWN:
		return ex.spawn ? ex.spawn(c->pid, c->file, c->actions, c->attr, c->argv, env) : ENOSYS;
	default:
		return ex.spawnp ? ex.spawnp(c->pid, c->file, c->actions, c->attr, c->argv, env) : ENOSYS;
	}
}

static int call_managed(const struct call *c, char *const envp[])
{
	size_t n = env_len(envp);

	if (!managed() || n > MAX_ENV_FIXED)
		return do_call(c, envp);
	{
		char *env[n + 3];
		char preload[PATH_MAX * 2];

		fix_env(envp, n, env, preload, sizeof(preload));
		return do_call(c, env);
	}
}

/* What execvp would run: found through the caller's PATH, as the C library does. */
static const char *searched(const char *file, char *buf, size_t size)
{
	exec_resolve(file, getenv("PATH"), buf, size);
	return buf;
}

EXPORTED int execve(const char *path, char *const argv[], char *const envp[])
{
	struct call c = { .how = BY_PATH, .file = path, .argv = argv };

	if (refuse(path, exec_check_path(path)))
		return -1;
	return call_managed(&c, envp);
}

EXPORTED int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORTED int execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct call c = { .how = BY_SEARCH, .file = file, .argv = argv };
	char found[PATH_MAX];

	if (refuse(file, exec_check_path(searched(file, found, sizeof(found)))))
		return -1;
	return call_managed(&c, envp);
}

EXPORTED int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORTED int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct call c = { .how = BY_FD, .fd = fd, .argv = argv };
	char link[64], name[PATH_MAX];
	const char *why = exec_check_fd(fd);
	ssize_t n;

	if (why) { /* named by the file it is, if it still has a name */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, name, sizeof(name) - 1);
		name[n > 0 ? n : 0] = '\0';
		if (refuse(n > 0 ? name : "the program passed to fexecve", why))
			return -1;
	}
	return call_managed(&c, envp);
}

EXPORTED int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
			 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct call c = { .how = SPAWN, .file = path, .argv = argv, .pid = pid,
			  .actions = actions, .attr = attr };

	if (refuse(path, exec_check_path(path)))
		return EACCES;
	return call_managed(&c, envp);
}

EXPORTED int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct call c = { .how = SPAWNP, .file = file, .argv = argv, .pid = pid,
			  .actions = actions, .attr = attr };
	char found[PATH_MAX];

	if (refuse(file, exec_check_path(searched(file, found, sizeof(found)))))
		return EACCES;
	return call_managed(&c, envp);
}

/* ---- the execl family: their arguments as an array ---- */

static size_t count_args(va_list ap)
{
	size_t n = 1;
	va_list cp;

	va_copy(cp, ap);
	while (va_arg(cp, char *))
		n++;
	va_end(cp);
	return n;
}

#define COLLECT_ARGS(arg0, ap, argv, n)                 \
	char *argv[(n) + 1];                            \
	argv[0] = (char *)(arg0);                       \
	for (size_t i_ = 1; i_ <= (n); i_++)            \
		argv[i_] = va_arg(ap, char *) /* the last one read is NULL */

EXPORTED int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, arg);
	n = count_args(ap);
	COLLECT_ARGS(arg, ap, argv, n);
	va_end(ap);
	return execve(path, argv, environ);
}

EXPORTED int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, arg);
	n = count_args(ap);
	COLLECT_ARGS(arg, ap, argv, n);
	va_end(ap);
	return execvpe(file, argv, environ);
}

EXPORTED int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char *const *envp;
	size_t n;

	va_start(ap, arg);
	n = count_args(ap);
	COLLECT_ARGS(arg, ap, argv, n);
	envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}
