/* SPDX-License-Identifier: MIT */
#ifndef UZS_CLI_H
#define UZS_CLI_H

#include <stdint.h>

int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_stat(int argc, char **argv);

/* "64M", "1G", "4096", "max" (UINT64_MAX). 0, -1 for a bad size, or
 * PARSE_SIZE_TOO_LARGE for one past 64 bits. */
#define PARSE_SIZE_TOO_LARGE (-2)
int parse_size(const char *s, uint64_t *out);
/* Print "uzswap: <what>" to stderr and return 2 (bad usage) or 1. */
int die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
