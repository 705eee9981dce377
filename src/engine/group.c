/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "group.h"
#include "swapfile.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- NUMA nodes: which node a CPU belongs to, read once from sysfs ---- */

/* Mark the CPUs of a cpulist ("0-3,8,10-11") as belonging to node. */
static void parse_cpulist(struct groups *gs, const char *list, unsigned node)
{
	const char *p = list;

	while (*p && *p != '\n') {
		char *end;
		unsigned long lo = strtoul(p, &end, 10), hi = lo;

		if (end == p)
			return;
		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		for (unsigned long cpu = lo; cpu <= hi && cpu < sizeof(gs->cpu_node); cpu++)
			gs->cpu_node[cpu] = (uint8_t)node;
		p = *end == ',' ? end + 1 : end;
	}
}

static void read_nodes(struct groups *gs)
{
	gs->nr_nodes = 1;
	for (unsigned node = 0; node < GROUP_MAX_NODES; node++) {
		char path[64], list[4096];
		FILE *f;

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/cpulist", node);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(list, sizeof(list), f)) {
			parse_cpulist(gs, list, node);
			gs->nr_nodes = node + 1;
		}
		fclose(f);
	}
}

unsigned group_lru_index(struct groups *gs)
{
	unsigned sub = thread_shard() % GROUP_LRU_SUBLISTS, node = 0;

	if (gs->nr_nodes > 1) {
		/* getcpu is a vDSO call: no system call on the store path */
		int cpu = sched_getcpu();

		if (cpu >= 0 && (unsigned)cpu < sizeof(gs->cpu_node))
			node = gs->cpu_node[cpu];
	}
	return node * GROUP_LRU_SUBLISTS + sub;
}

/* ---- creation, removal, lifetime ---- */

static struct uzs_group *group_alloc(struct groups *gs, struct uzs_group *parent,
				     const char *name)
{
	size_t size = sizeof(struct uzs_group) + gs->nr_lrus * sizeof(struct lru);
	struct uzs_group *g = aligned_alloc(64, (size + 63) & ~(size_t)63);

	if (!g)
		return NULL;
	memset(g, 0, size);
	g->set = gs;
	g->parent = parent;
	snprintf(g->name, sizeof(g->name), "%s", name);
	atomic_init(&g->c.refs, 1);
	atomic_init(&g->zswap_max, UZS_MAX);
	atomic_init(&g->memory_max, UZS_MAX);
	atomic_init(&g->writeback, true);
	for (unsigned i = 0; i < gs->nr_lrus; i++)
		lru_init(&g->lrus[i]);
	return g;
}

static void group_free(struct uzs_group *g)
{
	for (unsigned i = 0; i < g->set->nr_lrus; i++)
		lru_destroy(&g->lrus[i]);
	free(g);
}

void group_put_many(struct uzs_group *g, int64_t n)
{
	while (g && atomic_fetch_sub_explicit(&g->c.refs, n, memory_order_acq_rel) == n) {
		struct uzs_group *parent = g->parent;

		atomic_fetch_sub(&g->set->nr_dying, 1);
		group_free(g);
		g = parent; /* the child's reference on it */
		n = 1;
	}
}

int groups_init(struct groups *gs, struct uzs *uzs)
{
	memset(gs, 0, sizeof(*gs));
	gs->uzs = uzs;
	read_nodes(gs);
	gs->nr_lrus = gs->nr_nodes * GROUP_LRU_SUBLISTS;
	pthread_mutex_init(&gs->lock, NULL);
	gs->root = group_alloc(gs, NULL, "");
	if (!gs->root)
		return -ENOMEM;
	gs->root->prev = gs->root->next = gs->root;
	gs->cursor = gs->root;
	atomic_init(&gs->nr_live, 1);
	return 0;
}

void groups_destroy(struct groups *gs)
{
	struct uzs_group *g;

	if (gs->root) {
		/* Live groups, newest first, so children go before their parents. */
		while ((g = gs->root->prev) != gs->root) {
			g->prev->next = g->next;
			g->next->prev = g->prev;
			group_free(g);
		}
		group_free(gs->root);
	}
	pthread_mutex_destroy(&gs->lock);
}

/* A name is one path component: printable, no '/', not empty, not too long. */
static bool name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > UZS_GROUP_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || !isgraph((unsigned char)name[i]))
			return false;
	return true;
}

static bool sibling_named(struct groups *gs, struct uzs_group *parent, const char *name)
{
	struct uzs_group *g = gs->root;

	do {
		if (g->parent == parent && !strcmp(g->name, name))
			return true;
		g = g->next;
	} while (g != gs->root);
	return false;
}

int group_create(struct groups *gs, struct uzs_group *parent, const char *name,
		 struct uzs_group **out)
{
	struct uzs_group *g;
	int err = 0;

	if (!name_valid(name))
		return -EINVAL;
	pthread_mutex_lock(&gs->lock);
	if (atomic_load(&parent->removed))
		err = -ENOENT;
	else if (sibling_named(gs, parent, name))
		err = -EEXIST;
	else if (!(g = group_alloc(gs, parent, name)))
		err = -ENOMEM;
	if (!err) {
		group_get(parent);
		parent->nr_children++;
		g->prev = gs->root->prev;
		g->next = gs->root;
		g->prev->next = g;
		gs->root->prev = g;
		atomic_fetch_add(&gs->nr_live, 1);
		*out = g;
	}
	pthread_mutex_unlock(&gs->lock);
	return err;
}

/* Hand the group's lists to its parent: entries reparented, nothing lost. The parent
 * cannot be removed meanwhile (it has a live child until the groups lock is dropped). */
static void splice_into_parent(struct uzs_group *g)
{
	for (unsigned i = 0; i < g->set->nr_lrus; i++) {
		struct lru *src = &g->lrus[i];
		struct lru *dst;

		pthread_mutex_lock(&src->lock);
		dst = group_lru_lock(g->parent, i);
		lru_splice_cold_locked(src, dst);
		pthread_mutex_unlock(&dst->lock);
		pthread_mutex_unlock(&src->lock);
	}
}

int group_remove(struct uzs_group *g)
{
	struct groups *gs = g->set;
	int err = 0;

	pthread_mutex_lock(&gs->lock);
	if (!g->parent || atomic_load(&g->removed))
		err = -EINVAL;
	else if (g->nr_children)
		err = -EBUSY;
	if (err) {
		pthread_mutex_unlock(&gs->lock);
		return err;
	}
	atomic_store(&g->removed, true);
	if (gs->cursor == g)
		gs->cursor = g->prev; /* reclaim goes on with the group after it */
	g->prev->next = g->next;
	g->next->prev = g->prev;
	g->parent->nr_children--;
	splice_into_parent(g);
	atomic_fetch_sub(&gs->nr_live, 1);
	atomic_fetch_add(&gs->nr_dying, 1);
	pthread_mutex_unlock(&gs->lock);
	group_put(g); /* the creator's reference; entries keep it until they go */
	return 0;
}

/* ---- charges and limits ---- */

static void uncharge_up_to(struct uzs_group *g, struct uzs_group *stop, uint64_t bytes)
{
	for (; g != stop && g->parent; g = g->parent)
		atomic_fetch_sub_explicit(&g->c.zswap_bytes, (int64_t)bytes, memory_order_relaxed);
}

void group_uncharge(struct uzs_group *g, uint64_t bytes)
{
	uncharge_up_to(g, NULL, bytes);
}

/* Charge first, then compare: two stores racing to a limit cannot both slip under it. */
struct uzs_group *group_try_charge(struct uzs_group *g, uint64_t bytes)
{
	for (struct uzs_group *level = g; level->parent; level = level->parent) {
		uint64_t max = atomic_load_explicit(&level->zswap_max, memory_order_relaxed);
		int64_t now = atomic_fetch_add_explicit(&level->c.zswap_bytes, (int64_t)bytes,
							memory_order_relaxed) + (int64_t)bytes;

		if (max != UZS_MAX && (uint64_t)now > max) {
			uncharge_up_to(g, level->parent, bytes);
			return level;
		}
	}
	return NULL;
}

bool group_zswap_disabled(const struct uzs_group *g)
{
	for (; g->parent; g = g->parent)
		if (atomic_load_explicit(&g->zswap_max, memory_order_relaxed) == 0)
			return true;
	return false;
}

bool group_writeback_enabled(const struct uzs_group *g)
{
	for (; g; g = g->parent)
		if (!atomic_load_explicit(&g->writeback, memory_order_relaxed))
			return false;
	return true;
}

/* ---- LRU lists ---- */

struct lru *group_lru_lock(struct uzs_group *g, unsigned idx)
{
	for (;; g = g->parent) {
		struct lru *l = &g->lrus[idx];

		if (atomic_load_explicit(&l->spliced, memory_order_acquire))
			continue;
		pthread_mutex_lock(&l->lock);
		if (!atomic_load_explicit(&l->spliced, memory_order_relaxed))
			return l;
		pthread_mutex_unlock(&l->lock);
	}
}

uint64_t group_lru_size(const struct uzs_group *g)
{
	uint64_t nr = 0;

	for (unsigned i = 0; i < g->set->nr_lrus; i++)
		nr += atomic_load_explicit(&g->lrus[i].nr, memory_order_relaxed);
	return nr;
}

/* ---- walking the groups ---- */

struct uzs_group *groups_next_shrink(struct groups *gs)
{
	struct uzs_group *g;

	pthread_mutex_lock(&gs->lock);
	g = gs->cursor = gs->cursor->next;
	group_get(g);
	pthread_mutex_unlock(&gs->lock);
	return g;
}

bool group_within(const struct uzs_group *g, const struct uzs_group *top)
{
	for (; g; g = g->parent)
		if (g == top)
			return true;
	return false;
}

struct uzs_group **groups_within(struct groups *gs, struct uzs_group *top, unsigned *nr)
{
	struct uzs_group **list, *g;
	unsigned n = 0;

	pthread_mutex_lock(&gs->lock);
	list = malloc(sizeof(*list) * (size_t)atomic_load(&gs->nr_live));
	g = top;
	if (list && !atomic_load(&top->removed)) {
		do {
			if (group_within(g, top)) {
				group_get(g);
				list[n++] = g;
			}
			g = g->next;
		} while (g != top);
	}
	pthread_mutex_unlock(&gs->lock);
	*nr = n;
	return list;
}
