/* SPDX-License-Identifier: MIT */
/*
 * entry — one page held by the cache.
 *
 * Fields are grouped by who guards them: immutable after the store, the tree shard lock,
 * the LRU lock. An entry has exactly one owner: the tree while it is indexed; whoever
 * detaches it from the tree afterwards, or, when it is borrowed at that moment (a load or a
 * writeback reading it), the last borrower to give it back.
 */
#ifndef UZS_ENTRY_H
#define UZS_ENTRY_H

#include <stdbool.h>
#include <stdint.h>

enum entry_kind {
	ENTRY_COMPRESSED, /* handle: pool object of length bytes, compressor comp */
	ENTRY_RAW,	  /* handle: pool object holding the page as it was */
	ENTRY_SAME,	  /* fill: the page is this word repeated; no pool memory */
};

struct uzs_group;

struct entry {
	/* immutable once stored */
	uint64_t slot;
	union {
		uint64_t handle;
		uint64_t fill;
	};
	struct uzs_group *group; /* charged group; holds a reference on it */
	uint32_t length;
	uint8_t kind;
	uint8_t comp; /* index in the engine's compressor table */
	uint8_t lru_idx; /* which of its group's lists: node and thread shard */

	/* tree shard lock */
	uint16_t borrowers;
	bool detached;

	/* LRU lock */
	bool on_lru;
	bool referenced;
	struct entry *lru_prev, *lru_next;
};

#endif
