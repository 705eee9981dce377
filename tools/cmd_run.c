/* SPDX-License-Identifier: MIT */
/*
 * uzswap run — run an unmodified program with its anonymous memory served by uzswap
 * (the options; the supervisor itself is uzs_run_program, src/vm/supervisor.c), and
 * uzswap stat — print the live figures of such a run.
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

#include "cli.h"
#include "uzswap.h"

struct run_opts {
	uint64_t memory_max, zswap_max;
	const char *compressor;
	const char *swapfile;
	const char *stats_file;
	bool memory_default, memory_all_ram, compressor_default;
	bool no_pin, encrypt;
};

static void run_usage(FILE *out)
{
	fputs("usage: uzswap run [--memory-max SIZE] [--zswap-max SIZE] [--compressor NAME]\n"
	      "                  [--swapfile PATH] [--stats FILE] [--encrypt] [--no-pin]\n"
	      "                  -- CMD [ARG...]\n"
	      "\n"
	      "Runs CMD (a dynamically linked program) with its anonymous memory - heap and\n"
	      "anonymous mappings, whatever allocator it uses, in it and every process it forks\n"
	      "or execs - served by uzswap: pages past the budget are compressed away and come\n"
	      "back on access, from the swap file once the compressed pool passes its target\n"
	      "(3/4 of the budget at first, then moved to where faults cost least). A program the agent cannot be preloaded into (statically linked,\n"
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
	      "  --encrypt          encrypt the pages written to the swap file (ChaCha20-Poly1305,\n"
	      "                     a key made at start and never written anywhere)\n"
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
		{ "encrypt", no_argument, NULL, 'E' },
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
		case 'E': o->encrypt = true; break;
		case 'h': run_usage(stdout); exit(0);
		default: return 2;
		}
	}
	if (optind >= argc)
		return die_usage("run wants a command: uzswap run [OPTIONS] -- CMD [ARG...]");
	*cmd = optind;
	return 0;
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

/* The first line a run prints: the settings taken, and which were defaults. */
static const char *settings_line(const struct run_opts *o, char *buf, size_t size)
{
	char mem[32] = "";

	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(o->memory_max >> 20));
	snprintf(buf, size, "uzswap run: memory.max %s%s, zswap.max %s, compressor %s%s", mem,
		o->memory_default   ? " (default: half of RAM)"
		: o->memory_all_ram ? " (max: all of RAM)"
				    : "",
		o->zswap_max == UZS_MAX ? "max" : "set", o->compressor,
		o->compressor_default ? " (default)" : "");
	return buf;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct uzs_run_options run;
	char settings[200];
	int cmd = 0, r, status;

	if ((r = parse_run(argc, argv, &o, &cmd)))
		return r;
	uzs_run_options_init(&run);
	run.memory_max = o.memory_max;
	run.zswap_max = o.zswap_max;
	run.compressor = o.compressor;
	run.swapfile = o.swapfile;
	run.stats_file = o.stats_file;
	run.no_pin = o.no_pin;
	run.encrypt = o.encrypt;
	run.settings_line = settings_line(&o, settings, sizeof(settings));
	if ((r = uzs_run_program(&run, argv + cmd, &status)))
		return r;
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
