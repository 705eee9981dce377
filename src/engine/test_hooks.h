/* SPDX-License-Identifier: MIT */
/* Internal hooks of the engine for tests: damage stored data on purpose. */
#ifndef UZS_TEST_HOOKS_H
#define UZS_TEST_HOOKS_H

#include "uzswap.h"

/* Flip bytes of the cached compressed object of slot. 0, or -ENOENT if not cached. */
int uzs_test_corrupt_cached(struct uzs *uzs, uzs_slot_t slot);
/* Say whether the system is low on memory (1/0), instead of /proc/meminfo (-1). */
void uzs_test_memory_pressure(struct uzs *uzs, int low);
/* The swap file's descriptor, to damage or fill the file. */
int uzs_test_swapfile_fd(struct uzs *uzs);
/* Is the slot's page in the cache (1), only in the swap file (0)? */
int uzs_test_cached(struct uzs *uzs, uzs_slot_t slot);

#endif
