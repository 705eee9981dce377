/* SPDX-License-Identifier: MIT */
/* The transparent-mode tests' fixture: an engine, a group with a budget and a vm over it,
 * and pages whose contents say which page and which generation they are. */
#ifndef UZS_TEST_REGIONS_H
#define UZS_TEST_REGIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "uffd.h"

#define PG 4096u
#define MB (1u << 20)

/* The transparent mode needs userfaultfd with faults taken inside system calls, UFFDIO_MOVE
 * and the events of a managed range (Linux 6.8 or later, and the right to use them). Where
 * this kernel or user lacks them the tests cannot run, which is no failure of uzswap's:
 * one line says why and the binary exits 77, which tests/run-tests.sh counts as skipped. */
static inline void skip_unless_transparent_mode_works(void)
{
	int fd = uffd_open_kernel_mode(), r = fd;

	if (fd >= 0) {
		r = uffd_handshake(fd, UFFD_MANAGED_FEATURES);
		close(fd);
	}
	if (r < 0) {
		printf("SKIP - userfaultfd here lacks kernel-mode faults, UFFDIO_MOVE or its events: "
		       "%s\n", strerror(-r));
		exit(77);
	}
}

struct fixture {
	struct uzs *uzs;
	struct uzs_group *g;
	struct uzs_vm *vm;
};

static inline struct fixture start(uint64_t budget)
{
	struct fixture f = { .uzs = open_pool(0) };

	CHECK_EQ(uzs_group_create(f.uzs, NULL, "prog", &f.g), 0);
	CHECK_EQ(uzs_group_set_memory_max(f.g, budget), 0);
	CHECK_EQ(uzs_vm_start(f.uzs, f.g, &f.vm), 0);
	return f;
}

static inline void stop(struct fixture *f)
{
	uzs_vm_stop(f->vm);
	CHECK_EQ(estats(f->uzs).swap_slots_used, 0); /* every slot given back */
	uzs_close(f->uzs);
}

static inline struct uzs_vm_stats vstats(struct fixture *f)
{
	struct uzs_vm_stats st;

	uzs_vm_get_stats(f->vm, &st);
	return st;
}

static inline struct uzs_group_stats gstats(struct fixture *f)
{
	struct uzs_group_stats st;

	uzs_group_get_stats(f->g, &st);
	return st;
}

/* A page's worth of words that depend on the page and a generation. */
static inline void fill(unsigned char *page, uint64_t pg, uint64_t gen)
{
	uint64_t *w = (uint64_t *)page;

	for (unsigned i = 0; i < PG / 8; i++)
		w[i] = (i % 7 == 0) ? pg * 1000003u + gen : (i & 0xff); /* compressible */
}

static inline bool same(const unsigned char *page, uint64_t pg, uint64_t gen)
{
	const uint64_t *w = (const uint64_t *)page;

	for (unsigned i = 0; i < PG / 8; i++)
		if (w[i] != ((i % 7 == 0) ? pg * 1000003u + gen : (i & 0xff)))
			return false;
	return true;
}

/* Is the page mapped now (mincore: no fault taken)? */
static inline bool resident(const void *addr)
{
	unsigned char v = 0;

	mincore((void *)((uintptr_t)addr & ~(uintptr_t)(PG - 1)), PG, &v);
	return v & 1;
}

static inline unsigned count_bad(unsigned char *r, size_t pages, uint64_t gen)
{
	unsigned bad = 0;

	for (size_t i = 0; i < pages; i++)
		bad += !same(r + i * PG, i, gen);
	return bad;
}

/* A region of pages, every page written with generation gen. */
static inline unsigned char *filled_region(struct fixture *f, size_t pages, uint64_t gen)
{
	unsigned char *r = NULL;

	CHECK_EQ(uzs_region_create(f->vm, pages * PG, (void **)&r), 0);
	for (size_t i = 0; r && i < pages; i++)
		fill(r + i * PG, i, gen);
	return r;
}

#endif
