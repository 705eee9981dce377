/* SPDX-License-Identifier: MIT */
/*
 * group — memory-cgroup-style groups: the hierarchy, charges, limits and LRU lists.
 *
 * Charges and event counts are hierarchical: a group's counters cover its whole subtree,
 * as memory.stat does, and a store adds to the group and every ancestor below the root
 * (the root's figures are the engine's own). A removed group keeps its struct, and its
 * parent link, while entries still point at it: charging through it still reaches every
 * live ancestor, so removal moves no charge and loses none. Its LRU lists are spliced
 * into its parent's, and a list once spliced tells lookups to go up a level.
 *
 * A group lives while it is referenced: by its creator until removal, by each child, by
 * each entry charged to it, and by reclaim while it works on it.
 */
#ifndef UZS_GROUP_H
#define UZS_GROUP_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "lru.h"
#include "uzswap.h"

/* Lists per group and node: threads storing into one group use different locks. */
#define GROUP_LRU_SUBLISTS 4u
#define GROUP_MAX_NODES 16u

/* Counters that every store, load and free of the group's entries updates: one line. */
struct group_counters {
	alignas(64) _Atomic int64_t zswap_bytes;
	_Atomic int64_t zswapped_pages;
	_Atomic int64_t incomp_pages;
	_Atomic int64_t zswpout;
	_Atomic int64_t zswpin;
	_Atomic int64_t zswpwb;
	_Atomic int64_t refs;
};

struct groups;

struct uzs_group {
	struct group_counters c;

	/* fixed at creation */
	alignas(64) struct groups *set;
	struct uzs_group *parent;
	char name[UZS_GROUP_NAME_MAX + 1];

	_Atomic uint64_t zswap_max;
	_Atomic uint64_t memory_max;
	_Atomic bool writeback;
	_Atomic bool removed;
	_Atomic int64_t resident_pages; /* hierarchical, like the counters */
	_Atomic unsigned lru_cursor;	/* the list reclaim tries first */

	/* groups lock */
	unsigned nr_children; /* live ones */
	struct uzs_group *prev, *next; /* ring of live groups, in creation order */

	struct lru lrus[]; /* nr_nodes * GROUP_LRU_SUBLISTS */
};

struct groups {
	struct uzs *uzs;
	pthread_mutex_t lock;
	struct uzs_group *root;
	struct uzs_group *cursor; /* the group global reclaim visited last */
	unsigned nr_lrus;
	unsigned nr_nodes;
	_Atomic int64_t nr_live, nr_dying;
	uint8_t cpu_node[1024]; /* node of each CPU, when there is more than one node */
};

int groups_init(struct groups *gs, struct uzs *uzs);
/* Free every group; call once no entry is left. */
void groups_destroy(struct groups *gs);

int group_create(struct groups *gs, struct uzs_group *parent, const char *name,
		 struct uzs_group **out);
/* -EBUSY while it has live children; -EINVAL for the root or a removed group. */
int group_remove(struct uzs_group *g);

static inline void group_get_many(struct uzs_group *g, int64_t n)
{
	atomic_fetch_add_explicit(&g->c.refs, n, memory_order_relaxed);
}
static inline void group_get(struct uzs_group *g)
{
	group_get_many(g, 1);
}
void group_put_many(struct uzs_group *g, int64_t n);
static inline void group_put(struct uzs_group *g)
{
	group_put_many(g, 1);
}

/* Charge bytes to g and its ancestors. NULL when every limit holds; otherwise nothing is
 * charged and the lowest group whose zswap_max it would pass is returned. */
struct uzs_group *group_try_charge(struct uzs_group *g, uint64_t bytes);
void group_uncharge(struct uzs_group *g, uint64_t bytes);
/* Is some group on the way up limited to zero (every store refused, no reclaim)? */
bool group_zswap_disabled(const struct uzs_group *g);
/* Writeback on here and in every ancestor? */
bool group_writeback_enabled(const struct uzs_group *g);

/* Add n to one counter of g and every ancestor below the root. */
static inline void group_count(struct uzs_group *g, size_t offset, int64_t n)
{
	for (; g->parent; g = g->parent)
		atomic_fetch_add_explicit((_Atomic int64_t *)((char *)g + offset), n,
					  memory_order_relaxed);
}
#define GROUP_COUNT(g, field, n) group_count((g), offsetof(struct uzs_group, field), (n))

/* The list for a new entry stored by the calling thread. */
unsigned group_lru_index(struct groups *gs);
/* Lock and return the list that holds (or should hold) the entry at index idx of g. */
struct lru *group_lru_lock(struct uzs_group *g, unsigned idx);
uint64_t group_lru_size(const struct uzs_group *g);

/* The next live group after the shrink cursor, with a reference; moves the cursor. */
struct uzs_group *groups_next_shrink(struct groups *gs);
/* Referenced live groups of top's subtree (top first), malloc'd; put each and free. */
struct uzs_group **groups_within(struct groups *gs, struct uzs_group *top, unsigned *nr);
/* Is g top or below it? */
bool group_within(const struct uzs_group *g, const struct uzs_group *top);

#endif
