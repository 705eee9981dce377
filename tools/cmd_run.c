/*
 * uzswap run — run an unmodified program with its anonymous memory served by uzswap, and
 * uzswap stat — print the live figures of such a run.
 *
 * The supervisor (this process) holds the engine and the fault handler; the program gets
 * the agent preloaded (tools/agent.c), which hands over its userfaultfd. Being another
 * process, the handler can never fault on itself, and one engine serves the program and
 * all its children (fork shares slots).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "cli.h"
#include "exec_check.h"
#include "uffd.h"
#include "uzswap.h"
#include "vm.h"

struct run_opts {
	uint64_t memory_max, zswap_max;
	const char *compressor;
	const char *swapfile;
	const char *stats_file;
	bool memory_default, memory_all_ram, compressor_default;
	bool no_pin;
};

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
	const struct run_opts *opts;
	struct timespec started;
};

/* Signals someone sent us, for the main thread to pass on (see forward). */
static int signal_pipe[2] = { -1, -1 };
static pid_t supervisor_pid;

static void run_usage(FILE *out)
{
	fputs("usage: uzswap run [--memory-max SIZE] [--zswap-max SIZE] [--compressor NAME]\n"
	      "                  [--swapfile PATH] [--stats FILE] [--no-pin] -- CMD [ARG...]\n"
	      "\n"
	      "Runs CMD (a dynamically linked program) with its anonymous memory - heap and\n"
	      "anonymous mappings, whatever allocator it uses, in it and every process it forks\n"
	      "or execs - served by uzswap: pages past the budget are compressed away and come\n"
	      "back on access, from the swap file once the compressed pool passes 3/4 of the\n"
	      "budget. A program the agent cannot be preloaded into (statically linked,\n"
	      "setuid, setgid, file capabilities) is refused, as CMD and when exec'd by it.\n"
	      "\n"
	      "  --memory-max SIZE  budget for resident plus compressed memory (memory.max);\n"
	      "                     default half of RAM; 'max': all of RAM\n"
	      "  --zswap-max SIZE   limit of the compressed pool (memory.zswap.max); default max\n"
	      "  --compressor NAME[:LEVEL]  lz4 (default), lzo, zstd or deflate\n"
	      "  --swapfile PATH    directory for the swap file, or the path of a new file;\n"
	      "                     default $UZSWAP_DIR, $TMPDIR or /var/tmp. It has no name:\n"
	      "                     nothing is left behind.\n"
	      "  --stats FILE       write the figures at exit to FILE instead of stderr\n"
	      "  --no-pin           let uzswap's own threads run on any CPU (default: the fault\n"
	      "                     thread has the last CPU uzswap may use, eviction the rest;\n"
	      "                     CMD's threads are never pinned)\n"
	      "\n"
	      "Exit status: CMD's (killed by a signal: the same signal); 1 uzswap could not run\n"
	      "it; 2 bad usage; 126 CMD cannot run under uzswap (see above) or cannot be\n"
	      "executed; 127 CMD not found.\n",
	      out);
}

static uint64_t all_of_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 2ull << 30;
}

/* --memory-max: a size of at least 1M, or 'max', taken as all of RAM (the budget then
 * only keeps the program from pushing the rest of the machine into swap, as a cgroup
 * without a limit would). */
static int parse_memory_max(const char *arg, struct run_opts *o)
{
	int r;

	if (!strcmp(arg, "max")) {
		o->memory_max = all_of_ram();
		o->memory_all_ram = true;
	} else if ((r = parse_size(arg, &o->memory_max)) == PARSE_SIZE_TOO_LARGE) {
		return die_usage("--memory-max '%s' is too large (more than 2^64 bytes)", arg);
	} else if (r) {
		return die_usage("--memory-max wants a size such as 512M or 4G, or 'max', not '%s'",
				 arg);
	} else if (o->memory_max < (1u << 20)) {
		return die_usage("--memory-max '%s' is too small: the budget must be at least 1M", arg);
	}
	o->memory_default = false;
	return 0;
}

/* Refused here rather than when the engine opens, with the choices. */
static int check_compressor(const char *spec)
{
	if (uzs_compressor_resolve(spec, NULL, NULL) == 0)
		return 0;
	return die_usage("--compressor wants lz4, lzo, zstd or deflate, optionally with a level "
			 "the compressor has (e.g. zstd:3, deflate:9), not '%s'", spec);
}

static int parse_run(int argc, char **argv, struct run_opts *o, int *cmd)
{
	static const struct option longs[] = {
		{ "memory-max", required_argument, NULL, 'm' },
		{ "zswap-max", required_argument, NULL, 'z' },
		{ "compressor", required_argument, NULL, 'c' },
		{ "swapfile", required_argument, NULL, 's' },
		{ "stats", required_argument, NULL, 'S' },
		{ "no-pin", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	*o = (struct run_opts){ .memory_max = all_of_ram() / 2, .zswap_max = UZS_MAX,
				.compressor = "lz4", .memory_default = true,
				.compressor_default = true };
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longs, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_memory_max(optarg, o))
				return 2;
			break;
		case 'z':
			if ((r = parse_size(optarg, &o->zswap_max)) == PARSE_SIZE_TOO_LARGE)
				return die_usage("--zswap-max '%s' is too large (more than 2^64 bytes)",
						 optarg);
			if (r)
				return die_usage("--zswap-max wants a size or 'max', not '%s'", optarg);
			break;
		case 'c':
			if (check_compressor(optarg))
				return 2;
			o->compressor = optarg;
			o->compressor_default = false;
			break;
		case 's': o->swapfile = optarg; break;
		case 'S': o->stats_file = optarg; break;
		case 'P': o->no_pin = true; break;
		case 'h': run_usage(stdout); exit(0);
		default: return 2;
		}
	}
	if (optind >= argc)
		return die_usage("run wants a command: uzswap run [OPTIONS] -- CMD [ARG...]");
	*cmd = optind;
	return 0;
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
static int agent_path(char *out, size_t size)
{
	static const char *const places[] = { "", "/../lib/uzswap" };
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
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

/* Exit as the program did: same code, or killed by the same signal. */
static int exit_like(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		signal(sig, SIG_DFL);
		kill(getpid(), sig);
		return 128 + sig;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int open_engine_for(const struct run_opts *o, struct run *run)
{
	struct uzs_config c;
	int r;

	uzs_config_init(&c);
	c.compressor = o->compressor;
	c.swapfile_path = o->swapfile;
	c.swapfile_bytes = 64ull << 30; /* sparse: only what is written takes disk */
	if ((r = uzs_open(&c, &run->uzs)) == -EEXIST && o->swapfile)
		return die("--swapfile %s exists and is not a directory: give a directory or the "
			   "path of a new file", o->swapfile);
	if (r < 0)
		return die("cannot open the engine (%s, swap file in %s): %s", o->compressor,
			   o->swapfile ? o->swapfile : "the default directory", strerror(-r));
	if ((r = uzs_group_create(run->uzs, NULL, "run", &run->group)) < 0 ||
	    (r = uzs_group_set_memory_max(run->group, o->memory_max)) < 0 ||
	    (r = uzs_group_set_zswap_max(run->group, o->zswap_max)) < 0)
		return die("cannot set up the group: %s", strerror(-r));
	if ((r = uzs_vm_start(run->uzs, run->group, &run->vm)) < 0)
		return die("cannot start the fault handler: %s", strerror(-r));
	if (o->no_pin && (r = uzs_vm_pin_threads(run->vm, false)) < 0)
		fprintf(stderr, "uzswap: --no-pin: the fault handler's threads stay pinned: %s\n",
			strerror(-r));
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
		return die("userfaultfd cannot serve faults inside system calls here (%s): needs "
			   "read-write access to /dev/userfaultfd, vm.unprivileged_userfaultfd=1 or "
			   "CAP_SYS_PTRACE", strerror(-fd));
	r = uffd_handshake(fd, UFFD_MANAGED_FEATURES);
	close(fd);
	if (r == -EPERM && only_fork_events_refused())
		return die("the kernel gives userfaultfd fork events, which uzswap run needs to follow "
			   "the program's forks, only to a caller with CAP_SYS_PTRACE: run uzswap as "
			   "root or with that capability (setcap cap_sys_ptrace=ep on its binary)");
	if (r < 0)
		return die("this kernel's userfaultfd lacks what uzswap needs (UFFDIO_MOVE and the "
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
	if (!(why = exec_check_path(found)))
		return 0;
	exec_say_refused(cmd, why);
	return 126;
}

/* ---- a swap file that cannot be written ---- */

/* The directory the swap file is in, as src/swapfile.c chooses it: --swapfile's
 * directory, or the one of the file it names (unlinked by now), or the default. */
static void swap_dir(const struct run_opts *o, char *out, size_t size)
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

static void say_settings(const struct run_opts *o)
{
	char mem[32] = "";

	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(o->memory_max >> 20));
	fprintf(stderr, "uzswap run: memory.max %s%s, zswap.max %s, compressor %s%s\n", mem,
		o->memory_default   ? " (default: half of RAM)"
		: o->memory_all_ram ? " (max: all of RAM)"
				    : "",
		o->zswap_max == UZS_MAX ? "max" : "set", o->compressor,
		o->compressor_default ? " (default)" : "");
}

static int report(struct run *run, const struct run_opts *o)
{
	FILE *out = stderr;

	if (o->stats_file && !(out = fopen(o->stats_file, "w")))
		return die("cannot write %s: %s", o->stats_file, strerror(errno));
	print_all(run, out);
	if (out != stderr)
		fclose(out);
	return 0;
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
	uzs_vm_stop(run->vm);
	uzs_close(run->uzs);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct run run = { .stat_listen = { -1, -1 }, .child_pidfd = -1, .opts = &o };
	char agent[PATH_MAX], sockname[64];
	pthread_t listener, watcher;
	int cmd = 0, r, status;

	if ((r = parse_run(argc, argv, &o, &cmd)) || (r = refuse_cmd(argv[cmd])))
		return r;
	if (check_kernel_mode() || open_engine_for(&o, &run))
		return 1;
	if (agent_path(agent, sizeof(agent)) < 0)
		return die("the agent library is missing next to uzswap: %s", agent);
	snprintf(sockname, sizeof(sockname), "uzswap-agent-%d", (int)getpid());
	run.agent_listen = listen_abstract("uzswap-agent-%ld", getpid());
	run.stat_listen[0] = listen_abstract("uzswap-stat-%ld", getpid());
	if (run.agent_listen < 0 || run.stat_listen[0] < 0)
		return die("cannot listen for the program's agents: %s", strerror(errno));
	say_settings(&o);
	clock_gettime(CLOCK_MONOTONIC, &run.started);
	if (install_forwarding() < 0)
		return die("cannot set up signal forwarding: %s", strerror(errno));
	/* the program's orphans come to us: still our descendants, trusted on the agents'
	 * socket (vm_agents.c), signalled (pass_signals) and reaped by us */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return die("cannot become the program's subreaper: %s", strerror(errno));
	run.child = spawn(argv + cmd, agent, sockname);
	if (run.child < 0)
		return die("fork: %s", strerror(errno));
	run.child_pidfd = (int)syscall(SYS_pidfd_open, run.child, 0);
	run.stat_listen[1] = listen_abstract("uzswap-stat-%ld", run.child);
	pthread_create(&listener, NULL, listener_main, &run);
	pthread_create(&watcher, NULL, watch_swap, &run);
	status = supervise(&run);
	report(&run, &o);
	shut_down(&run, listener, watcher);
	return exit_like(status);
}

/* ---- uzswap stat ---- */

int cmd_stat(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char buf[65536];
	size_t got = 0;
	long pid;
	char *end;
	int s, len;
	ssize_t n;

	if (argc != 2 || !strcmp(argv[1], "--help")) {
		fputs("usage: uzswap stat PID\n\nPrints the live figures of a program running under "
		      "`uzswap run` (PID: the program's or uzswap's).\n",
		      argc == 2 ? stdout : stderr);
		return argc == 2 ? 0 : 2;
	}
	pid = strtol(argv[1], &end, 10);
	if (*end || pid <= 0)
		return die_usage("stat wants a process id, not '%s'", argv[1]);
	len = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "uzswap-stat-%ld", pid);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) < 0)
		return die("no program runs under uzswap run with pid %ld", pid);
	while ((n = recv(s, buf, sizeof(buf), 0)) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		got += (size_t)n;
	}
	close(s);
	if (!got) /* closed unanswered: another user's run */
		return die("uzswap run with pid %ld did not answer (it answers its own user and "
			   "root only)", pid);
	return 0;
}
