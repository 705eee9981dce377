/* SPDX-License-Identifier: MIT */
/* Helpers shared by the group and run tests: a small lz4 instance, its statistics once the
 * shrink worker has settled, and pages that do not compress. */
#ifndef UZS_TEST_HELPERS_H
#define UZS_TEST_HELPERS_H

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "uzswap.h"

/* lz4, a pool limit in bytes (0: the default share of RAM), a swap file of swap_bytes,
 * its pages encrypted or not. */
static inline struct uzs *open_engine(uint64_t pool_limit, uint64_t swap_bytes, bool encrypt)
{
	struct uzs_config c;
	struct uzs *uzs = NULL;

	uzs_config_init(&c);
	c.compressor = "lz4";
	c.max_pool_bytes = pool_limit;
	c.swapfile_bytes = swap_bytes;
	c.encrypt_swapfile = encrypt;
	CHECK_EQ(uzs_open(&c, &uzs), 0);
	return uzs;
}

/* The same with a 256 MiB plain swap file. */
static inline struct uzs *open_pool(uint64_t pool_limit)
{
	return open_engine(pool_limit, 256ull << 20, false);
}

static inline struct uzs_stats estats(struct uzs *uzs)
{
	struct uzs_stats st;

	uzs_get_stats(uzs, &st);
	return st;
}

/* The statistics once the shrink worker has finished what it was doing (a writeback in
 * flight holds its entry until its write completes): when they stop moving, or after
 * two seconds. */
static inline struct uzs_stats settled(struct uzs *uzs)
{
	struct uzs_stats a = estats(uzs), b;

	for (int i = 0; i < 200; i++) {
		usleep(10000);
		b = estats(uzs);
		if (a.stored_pages == b.stored_pages && a.written_back_pages == b.written_back_pages &&
		    a.compressed_bytes == b.compressed_bytes)
			return b;
		a = b;
	}
	return a;
}

/* A page of xorshift noise: lz4 cannot shrink it. */
static inline void random_page(unsigned char *p, uint64_t seed)
{
	seed = seed * 0x9e3779b97f4a7c15ull + 1;
	for (unsigned i = 0; i < UZS_PAGE_SIZE; i += 8) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		memcpy(p + i, &seed, 8);
	}
}

#endif
