/* SPDX-License-Identifier: MIT */
/*
 * supervisor — `uzswap run` as a library call (uzs_run_program): start a program with the
 * agent preloaded, take in its processes' userfaultfds, serve their memory under a budget,
 * pass signals on, answer `uzswap stat`, and wait until every process of the program has
 * ended. The command (tools/cmd_run.c) parses its options and prints around it.
 *
 * The supervisor holds the engine and the fault handler; the program gets the agent
 * (src/agent/preload.c), which hands over its userfaultfd. Being another process, the
 * handler can never fault on itself, and one engine serves the program and all its
 * children (fork shares slots).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "exec_check.h"
#include "uffd.h"
#include "uzswap.h"
#include "vm.h"

struct run {
	struct uzs *uzs;
	struct uzs_group *group;
	struct uzs_vm *vm;
	int agent_listen, stat_listen[2];
	pid_t child;
	int child_pidfd; /* readable once it has exited */
	volatile bool done;
	_Atomic unsigned long stat_refused; /* stat requests from other users */
	long peak_rss_kb; /* the program's, at exit (getrusage's ru_maxrss) */
	const struct uzs_run_options *opts;
	struct timespec started;
};

/* Signals someone sent us, for the main thread to pass on (see forward). */
static int signal_pipe[2] = { -1, -1 };
static pid_t supervisor_pid;

/* One line on stderr, as the command says everything: "uzswap: <what>". Returns 1, the
 * exit status of a run that could not start. */
static int say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("uzswap: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* ---- the agents' and stat clients' connections ---- */

static int listen_abstract(const char *fmt, long id)
{
	char name[64];
	int s;

	snprintf(name, sizeof(name), fmt, id);
	if ((s = vm_listen_abstract(name)) < 0)
		errno = -s;
	return s;
}

static void print_all(struct run *run, FILE *out)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(out, "# uzswap run: engine (/sys/kernel/debug/zswap names)\n");
	uzs_print_stats(run->uzs, out);
	fprintf(out, "# group (memory.stat names)\n");
	uzs_print_group_stats(run->uzs, out);
	fprintf(out, "# transparent mode (vmstat-like)\n");
	uzs_vm_print_stats(run->vm, out);
	fprintf(out, "stat_refused %lu\n", atomic_load(&run->stat_refused));
	if (run->peak_rss_kb)
		fprintf(out, "program_peak_rss_kB %ld\n", run->peak_rss_kb);
	fprintf(out, "wall_s %.3f\n", (double)(now.tv_sec - run->started.tv_sec) +
					  (double)(now.tv_nsec - run->started.tv_nsec) / 1e9);
}

/* The figures tell what a program does (its memory, its faults, how long it has run):
 * they are for its own user and root only. Another user's request is closed unanswered. */
static bool may_see_stats(int sock)
{
	struct ucred peer;
	socklen_t len = sizeof(peer);

	return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 &&
	       (peer.uid == geteuid() || peer.uid == 0);
}

static void answer_stat(struct run *run, int sock)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!may_see_stats(sock)) {
		atomic_fetch_add(&run->stat_refused, 1);
		close(sock);
		return;
	}
	if ((f = open_memstream(&text, &len))) {
		print_all(run, f);
		fclose(f);
		for (size_t off = 0; off < len;) {
			size_t chunk = len - off < 60000 ? len - off : 60000;

			if (send(sock, text + off, chunk, MSG_NOSIGNAL) < 0)
				break;
			off += chunk;
		}
		free(text);
	}
	close(sock);
}

static void *listener_main(void *arg)
{
	struct run *run = arg;

	while (!run->done) {
		struct pollfd p[3] = { { run->agent_listen, POLLIN, 0 },
				       { run->stat_listen[0], POLLIN, 0 },
				       { run->stat_listen[1], POLLIN, 0 } };

		if (poll(p, 3, 100) <= 0)
			continue;
		for (int i = 0; i < 3; i++) {
			int c;

			if (!(p[i].revents & POLLIN) || (c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
				continue;
			if (i == 0)
				vm_welcome_agent(run->vm, c);
			else
				answer_stat(run, c);
		}
	}
	return NULL;
}

/* ---- the program ---- */

/* Signals someone sent us go to every process of the program (pass_signals); the
 * terminal's (Ctrl-C, si_code SI_KERNEL) reach them anyway, the program sharing our
 * process group, and are not passed on: that would deliver them twice. (Not in the
 * program between its fork and exec: it has a copy of the pipe.) */
static void forward(int sig, siginfo_t *info, void *ctx)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	(void)ctx;
	if (info->si_code <= 0 && getpid() == supervisor_pid &&
	    write(signal_pipe[1], &b, 1) < 0) {
		/* full: 64 K signals not passed on yet; those of a kind are merged anyway */
	}
	errno = saved;
}

static int install_forwarding(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH,
				    SIGCONT, SIGALRM };
	struct sigaction sa = { .sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART };

	supervisor_pid = getpid();
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	return 0;
}

/* The agent lives next to uzswap in the build tree, and in ../lib/uzswap/ once installed
 * (relative to the binary, so an installed tree can be moved or staged with DESTDIR). */
static int agent_path(const struct uzs_run_options *o, char *out, size_t size)
{
	static const char *const places[] = { "", "/../lib/uzswap" };
	char exe[PATH_MAX];
	ssize_t n;

	if (o->agent) {
		snprintf(out, size, "%s", o->agent);
		return access(out, R_OK);
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		if ((size_t)snprintf(out, size, "%.*s%s/libuzswap-agent.so", (int)(size - 64), exe,
				     places[i]) >= size)
			return -1;
		if (access(out, R_OK) == 0)
			return 0;
	}
	return -1;
}

static pid_t spawn(char **cmd, const char *agent, const char *sockname)
{
	pid_t pid = fork();
	const char *old;
	char *preload;

	if (pid)
		return pid;
	old = getenv("LD_PRELOAD");
	if (asprintf(&preload, "%s%s%s", agent, old && *old ? ":" : "", old ? old : "") < 0)
		_exit(1);
	setenv("LD_PRELOAD", preload, 1);
	setenv(AGENT_ENV_SOCKET, sockname, 1);
	execvp(cmd[0], cmd);
	fprintf(stderr, "uzswap: cannot run %s: %s\n", cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* A signal sent to uzswap run reaches the whole program: its top process while it runs,
 * and every process of it with an agent (each fork and exec of it), also once the top
 * process is gone. Each process is signalled once, as a signal to a process group would
 * reach it. (The program's process group is ours and its shell's pipeline's: signalling
 * it would reach them too.) */
static void pass_signals(struct run *run, bool top_gone)
{
	unsigned char sig[64];
	ssize_t n;

	while ((n = read(signal_pipe[0], sig, sizeof(sig))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (!top_gone) /* not reaped: its pid is still its own (we reap it) */
				kill(run->child, sig[i]);
			vm_signal_processes(run->vm, sig[i], top_gone ? 0 : run->child);
		}
}

/* Reaps what has ended: the top process (its status in *status, and its peak RSS), and
 * the program's orphans, which come to us (a child subreaper) so that they stay among our
 * descendants for the agents' socket. True once the top process is reaped. */
static bool reap(struct run *run, int *status)
{
	struct rusage ru;
	bool top = false;
	pid_t pid;
	int st;

	while ((pid = wait4(-1, &st, WNOHANG, &ru)) > 0)
		if (pid == run->child) {
			*status = st;
			run->peak_rss_kb = ru.ru_maxrss;
			top = true;
		}
	return top;
}

/* Until the program has ended: its top process is reaped and none of its processes is
 * left running on memory only we can bring back. Returns the top process's status. */
static int supervise(struct run *run)
{
	bool top_gone = false;
	int status = 0;

	while (!top_gone || vm_live_spaces(run->vm) > 0) {
		struct pollfd p[2] = { { signal_pipe[0], POLLIN, 0 }, { run->child_pidfd, POLLIN, 0 } };

		if (poll(p, top_gone || run->child_pidfd < 0 ? 1 : 2, top_gone ? 10 : 100) > 0 &&
		    p[0].revents)
			pass_signals(run, top_gone);
		if (!top_gone && reap(run, &status)) {
			top_gone = true;
			close(run->child_pidfd);
			run->child_pidfd = -1;
		} else if (top_gone) {
			reap(run, &status);
		}
	}
	return status;
}


static int open_engine_for(const struct uzs_run_options *o, struct run *run)
{
	struct uzs_config c;
	int r;

	uzs_config_init(&c);
	c.compressor = o->compressor;
	c.swapfile_path = o->swapfile;
	c.swapfile_bytes = 64ull << 30; /* sparse: only what is written takes disk */
	c.encrypt_swapfile = o->encrypt;
	if ((r = uzs_open(&c, &run->uzs)) == -EEXIST && o->swapfile)
		return say("--swapfile %s exists and is not a directory: give a directory or the "
			   "path of a new file", o->swapfile);
	if (r < 0)
		return say("cannot open the engine (%s, swap file in %s): %s", o->compressor,
			   o->swapfile ? o->swapfile : "the default directory", strerror(-r));
	if ((r = uzs_group_create(run->uzs, NULL, "run", &run->group)) < 0 ||
	    (r = uzs_group_set_memory_max(run->group, o->memory_max)) < 0 ||
	    (r = uzs_group_set_zswap_max(run->group, o->zswap_max)) < 0)
		return say("cannot set up the group: %s", strerror(-r));
	if ((r = uzs_vm_start(run->uzs, run->group, &run->vm)) < 0)
		return say("cannot start the fault handler: %s", strerror(-r));
	if (o->no_pin && (r = uzs_vm_pin_threads(run->vm, false)) < 0)
		say("--no-pin: the fault handler's threads stay pinned: %s", strerror(-r));
	return 0;
}

/* Whether this kernel gives everything but fork events: it refuses those (EPERM) to a
 * caller without CAP_SYS_PTRACE, however the descriptor was opened, since a fork event
 * hands over a descriptor of the child's memory. */
static bool only_fork_events_refused(void)
{
	int fd = uffd_open_kernel_mode(), r;

	if (fd < 0)
		return false;
	r = uffd_handshake(fd, UFFD_MANAGED_FEATURES & ~(uint64_t)UFFD_FEATURE_EVENT_FORK);
	close(fd);
	return r == 0;
}

/* Faults taken inside system calls need a userfaultfd without UFFD_USER_MODE_ONLY. */
static int check_kernel_mode(void)
{
	int fd = uffd_open_kernel_mode(), r;

	if (fd < 0)
		return say("userfaultfd cannot serve faults inside system calls here (%s): needs "
			   "read-write access to /dev/userfaultfd, vm.unprivileged_userfaultfd=1 or "
			   "CAP_SYS_PTRACE", strerror(-fd));
	r = uffd_handshake(fd, UFFD_MANAGED_FEATURES);
	close(fd);
	if (r == -EPERM && only_fork_events_refused())
		return say("the kernel gives userfaultfd fork events, which uzswap run needs to follow "
			   "the program's forks, only to a caller with CAP_SYS_PTRACE: run uzswap as "
			   "root or with that capability (setcap cap_sys_ptrace=ep on its binary)");
	if (r < 0)
		return say("this kernel's userfaultfd lacks what uzswap needs (UFFDIO_MOVE and the "
			   "fork/remap/remove/unmap events: Linux 6.8 or later): %s", strerror(-r));
	return 0;
}

/* CMD as execvp will find it, refused before it runs when the agent could not be
 * preloaded into it: it would run outside the budget without a word. */
static int refuse_cmd(const char *cmd)
{
	char found[PATH_MAX];
	const char *why;

	exec_resolve(cmd, getenv("PATH"), found, sizeof(found));
	/* one line, as the shell says it, rather than a run that starts and prints figures */
	if (access(found, X_OK) < 0) {
		int err = errno; /* before say's write can change it */

		say("cannot run %s: %s", cmd, strerror(err));
		return err == ENOENT ? 127 : 126;
	}
	if (!(why = exec_check_path(found)))
		return 0;
	exec_say_refused(cmd, why);
	return 126;
}

/* ---- a swap file that cannot be written ---- */

/* The directory the swap file is in, as src/engine/swapfile.c chooses it: --swapfile's
 * directory, or the one of the file it names (unlinked by now), or the default. */
static void swap_dir(const struct uzs_run_options *o, char *out, size_t size)
{
	const char *dir = o->swapfile, *slash;
	struct stat st;

	if (dir && !(stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
		slash = strrchr(dir, '/');
		if (!slash)
			snprintf(out, size, ".");
		else
			snprintf(out, size, "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
		return;
	}
	if (!dir && (!(dir = getenv("UZSWAP_DIR")) || !*dir) && (!(dir = getenv("TMPDIR")) || !*dir))
		dir = "/var/tmp";
	snprintf(out, size, "%s", dir);
}

static void say_swap_failing(const struct run *run)
{
	char dir[PATH_MAX];
	struct statvfs v;
	bool full;

	swap_dir(run->opts, dir, sizeof(dir));
	full = statvfs(dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < (1u << 20);
	fprintf(stderr, "uzswap: writes to the swap file in %s fail (%s): evicted pages stay in "
		"the compressed pool, so memory.max %lluM cannot be held; --swapfile DIR on a "
		"file system with room fixes it\n", dir,
		full ? "its file system is full" : "its file system refuses them",
		(unsigned long long)(run->opts->memory_max >> 20));
}

/* Said once, as soon as it happens: the figures at exit come too late to explain why the
 * program used more memory than its budget. */
static void *watch_swap(void *arg)
{
	struct run *run = arg;

	while (!run->done) {
		struct uzs_stats st;

		uzs_get_stats(run->uzs, &st);
		if (st.swap_io_fail || st.writeback_fail) {
			say_swap_failing(run);
			break;
		}
		usleep(100000);
	}
	return NULL;
}


static int report(struct run *run, const struct uzs_run_options *o)
{
	FILE *out = stderr;

	if (o->stats_file && !(out = fopen(o->stats_file, "w")))
		return say("cannot write %s: %s", o->stats_file, strerror(errno));
	print_all(run, out);
	if (out != stderr)
		fclose(out);
	return 0;
}

static void shut_down_engine(struct run *run)
{
	uzs_vm_stop(run->vm);
	uzs_close(run->uzs);
}

static void shut_down(struct run *run, pthread_t listener, pthread_t watcher)
{
	run->done = true;
	pthread_join(listener, NULL);
	pthread_join(watcher, NULL);
	close(run->agent_listen);
	close(run->stat_listen[0]);
	if (run->stat_listen[1] >= 0)
		close(run->stat_listen[1]);
	shut_down_engine(run);
}


void uzs_run_options_init(struct uzs_run_options *o)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	*o = (struct uzs_run_options){
		.memory_max = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 2 : 1ull << 30,
		.zswap_max = UZS_MAX,
		.compressor = "lz4",
	};
}

/* The program started and its connections open: serve it until it has ended. */
static int run_started(struct run *run, char *const argv[], const char *agent, int *status)
{
	char sockname[64];
	pthread_t listener, watcher;

	snprintf(sockname, sizeof(sockname), "uzswap-agent-%d", (int)getpid());
	clock_gettime(CLOCK_MONOTONIC, &run->started);
	if (install_forwarding() < 0)
		return say("cannot set up signal forwarding: %s", strerror(errno));
	/* the program's orphans come to us: still our descendants, trusted on the agents'
	 * socket (vm_agents.c), signalled (pass_signals) and reaped by us */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return say("cannot become the program's subreaper: %s", strerror(errno));
	run->child = spawn((char **)argv, agent, sockname);
	if (run->child < 0)
		return say("fork: %s", strerror(errno));
	run->child_pidfd = (int)syscall(SYS_pidfd_open, run->child, 0);
	run->stat_listen[1] = listen_abstract("uzswap-stat-%ld", run->child);
	pthread_create(&listener, NULL, listener_main, run);
	pthread_create(&watcher, NULL, watch_swap, run);
	*status = supervise(run);
	report(run, run->opts);
	shut_down(run, listener, watcher);
	return 0;
}

int uzs_run_program(const struct uzs_run_options *o, char *const argv[], int *status)
{
	struct run run = { .stat_listen = { -1, -1 }, .child_pidfd = -1, .opts = o };
	char agent[PATH_MAX];
	int r;

	if (!o || !argv || !argv[0] || !status)
		return say("uzs_run_program: %s", strerror(EINVAL));
	if ((r = refuse_cmd(argv[0])))
		return r;
	if (check_kernel_mode() || open_engine_for(o, &run))
		return 1;
	if (agent_path(o, agent, sizeof(agent)) < 0) {
		shut_down_engine(&run);
		return say("the agent library is missing next to uzswap: %s", agent);
	}
	run.agent_listen = listen_abstract("uzswap-agent-%ld", getpid());
	run.stat_listen[0] = listen_abstract("uzswap-stat-%ld", getpid());
	if (run.agent_listen < 0 || run.stat_listen[0] < 0) {
		shut_down_engine(&run);
		return say("cannot listen for the program's agents: %s", strerror(errno));
	}
	if (o->settings_line)
		fprintf(stderr, "%s\n", o->settings_line);
	return run_started(&run, argv, agent, status);
}
