/* SPDX-License-Identifier: MIT */
/* uzswap — the command line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "uzswap.h"

static void vreport(const char *fmt, va_list ap)
{
	fputs("uzswap: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	fputs("Try 'uzswap --help'.\n", stderr);
	return 2;
}

int die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	return 1;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!strcmp(s, "max")) {
		*out = UINT64_MAX;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return errno == ERANGE ? PARSE_SIZE_TOO_LARGE : -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && *end == 'i')
		end++; /* "64MiB" */
	if (*end == 'B')
		end++;
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return PARSE_SIZE_TOO_LARGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static void usage(FILE *out)
{
	fputs("usage: uzswap COMMAND [OPTIONS]\n"
	      "\n"
	      "commands:\n"
	      "  bench    swap pages out and back in through the engine, verify them, and\n"
	      "           report ratio, pool efficiency and per-page cost against the plain\n"
	      "           compressor (uzswap bench --help)\n"
	      "  run      run a program with its memory served by uzswap under a budget\n"
	      "           (uzswap run --help)\n"
	      "  stat     print the live figures of a program under uzswap run (uzswap stat PID)\n"
	      "  help     this text\n"
	      "\n"
	      "  uzswap --version   the command's and the library's version\n",
	      out);
}

/* The library's version is the one linked, which a packaged build may update apart. */
static int version(void)
{
	unsigned v = uzs_version();

	printf("uzswap %s (library %u.%u.%u)\n", UZS_VERSION_STRING, v / 10000, v / 100 % 100,
	       v % 100);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stat"))
		return cmd_stat(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return version();
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	return die_usage("unknown command '%s'", argv[1]);
}
