/* SPDX-License-Identifier: MIT */
/* A minimal test harness: each test binary runs its cases and prints one line per case
 * ("ok - name" or "FAIL - name: why") and a closing "N passed, N failed" line. */
#ifndef UZS_CHECK_H
#define UZS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed, check_case_failed;

#define CHECK(cond)                                                                        \
	do {                                                                                   \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
			check_case_failed = 1;                                                         \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                     \
	do {                                                                                   \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
		if (check_a_ != check_b_) {                                                        \
			fprintf(stderr, "  %s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__,  \
				__LINE__, #a, #b, check_a_, check_b_);                                     \
			check_case_failed = 1;                                                         \
		}                                                                                  \
	} while (0)

/* UZS_TEST_ONLY=name[,name...] runs those cases alone (for debugging; by default every
 * case runs). */
static inline int check_selected(const char *name)
{
	const char *only = getenv("UZS_TEST_ONLY");
	size_t n = strlen(name);

	if (!only || !*only)
		return 1;
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

#define RUN(fn)                                                                            \
	do {                                                                                   \
		if (!check_selected(#fn))                                                          \
			break;                                                                         \
		check_case_failed = 0;                                                             \
		fn();                                                                              \
		if (check_case_failed) {                                                           \
			check_failed++;                                                                \
			printf("FAIL - %s\n", #fn);                                                    \
		} else {                                                                           \
			check_passed++;                                                                \
			printf("ok - %s\n", #fn);                                                      \
		}                                                                                  \
		fflush(stdout);                                                                    \
	} while (0)

#define CHECK_DONE()                                                                       \
	(printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

#endif
