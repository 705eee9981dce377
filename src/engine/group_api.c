/* SPDX-License-Identifier: MIT */
/* The groups' public calls: creation, limits, resident charges, reclaim and figures. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static bool group_ok(const struct uzs_group *g)
{
	return g && !atomic_load_explicit(&g->removed, memory_order_relaxed);
}

/* Limits live below the root: the root's figures are the whole engine's. */
static bool group_settable(const struct uzs_group *g)
{
	return group_ok(g) && g->parent;
}

struct uzs_group *uzs_root_group(struct uzs *uzs)
{
	return uzs ? uzs->groups.root : NULL;
}

int uzs_group_create(struct uzs *uzs, struct uzs_group *parent, const char *name,
		     struct uzs_group **out)
{
	if (!uzs || !out || (parent && parent->set != &uzs->groups))
		return -EINVAL;
	return group_create(&uzs->groups, parent ? parent : uzs->groups.root, name, out);
}

int uzs_group_remove(struct uzs_group *group)
{
	return group ? group_remove(group) : -EINVAL;
}

const char *uzs_group_name(const struct uzs_group *group)
{
	return group ? group->name : NULL;
}

struct uzs_group *uzs_group_parent(const struct uzs_group *group)
{
	return group ? group->parent : NULL;
}

int uzs_group_set_zswap_max(struct uzs_group *group, uint64_t bytes)
{
	if (!group_settable(group))
		return -EINVAL;
	atomic_store(&group->zswap_max, bytes);
	return 0;
}

int uzs_group_set_zswap_writeback(struct uzs_group *group, bool enabled)
{
	if (!group_settable(group))
		return -EINVAL;
	atomic_store(&group->writeback, enabled);
	return 0;
}

int uzs_group_set_memory_max(struct uzs_group *group, uint64_t bytes)
{
	if (!group_settable(group))
		return -EINVAL;
	atomic_store(&group->memory_max, bytes);
	return 0;
}

int uzs_group_charge_resident(struct uzs_group *group, long nr_pages)
{
	if (!group_ok(group))
		return -EINVAL;
	/* the root too: its memory_current is the whole instance's */
	for (struct uzs_group *g = group; g; g = g->parent)
		atomic_fetch_add_explicit(&g->resident_pages, nr_pages, memory_order_relaxed);
	return 0;
}

static uint64_t compressed_bytes_of(struct uzs_group *g)
{
	struct uzs *uzs = g->set->uzs;
	int64_t v;

	if (!g->parent)
		return stat_read(uzs->stats, C_COMPRESSED_BYTES);
	v = atomic_load_explicit(&g->c.zswap_bytes, memory_order_relaxed);
	return v < 0 ? 0 : (uint64_t)v;
}

static uint64_t memory_current_of(struct uzs_group *g)
{
	int64_t resident = atomic_load_explicit(&g->resident_pages, memory_order_relaxed);

	return (resident < 0 ? 0 : (uint64_t)resident) * PAGE + compressed_bytes_of(g);
}

uint64_t uzs_group_memory_excess(struct uzs_group *group)
{
	uint64_t excess = 0;

	for (struct uzs_group *g = group; g && g->parent; g = g->parent) {
		uint64_t max = atomic_load_explicit(&g->memory_max, memory_order_relaxed);
		uint64_t cur = memory_current_of(g);

		if (max != UZS_MAX && cur > max && cur - max > excess)
			excess = cur - max;
	}
	return excess;
}

int64_t uzs_group_memory_room(struct uzs_group *group)
{
	int64_t room = INT64_MAX;

	for (struct uzs_group *g = group; g && g->parent; g = g->parent) {
		uint64_t max = atomic_load_explicit(&g->memory_max, memory_order_relaxed);
		int64_t left;

		if (max == UZS_MAX)
			continue;
		left = (int64_t)(max > INT64_MAX ? INT64_MAX : max) - (int64_t)memory_current_of(g);
		if (left < room)
			room = left;
	}
	return room;
}

long uzs_group_shrink(struct uzs_group *group, long nr_pages)
{
	if (!group_ok(group) || nr_pages < 0)
		return -EINVAL;
	if (!group_writeback_enabled(group))
		return -EPERM;
	return reclaim_subtree(group->set->uzs, group, group, nr_pages);
}

static uint64_t counter_value(_Atomic int64_t *c)
{
	int64_t v = atomic_load_explicit(c, memory_order_relaxed);

	return v < 0 ? 0 : (uint64_t)v;
}

static void group_figures(struct uzs_group *g, struct uzs_group_stats *st)
{
	struct stats *s = g->set->uzs->stats;

	memset(st, 0, sizeof(*st));
	if (!g->parent) {
		st->zswapped = stat_read(s, C_STORED_PAGES) * PAGE;
		st->zswap_incomp = stat_read(s, C_STORED_INCOMPRESSIBLE);
		st->zswpin = stat_read(s, C_ZSWPIN);
		st->zswpout = stat_read(s, C_ZSWPOUT);
		st->zswpwb = stat_read(s, C_WRITTEN_BACK);
	} else {
		st->zswapped = counter_value(&g->c.zswapped_pages) * PAGE;
		st->zswap_incomp = counter_value(&g->c.incomp_pages);
		st->zswpin = counter_value(&g->c.zswpin);
		st->zswpout = counter_value(&g->c.zswpout);
		st->zswpwb = counter_value(&g->c.zswpwb);
	}
	st->zswap = compressed_bytes_of(g);
	st->memory_current = memory_current_of(g);
	st->memory_max = atomic_load(&g->memory_max);
	st->zswap_max = atomic_load(&g->zswap_max);
	st->zswap_writeback = atomic_load(&g->writeback);
}

int uzs_group_get_stats(struct uzs_group *group, struct uzs_group_stats *stats)
{
	if (!group_ok(group) || !stats)
		return -EINVAL;
	group_figures(group, stats);
	return 0;
}

/* The figures that add up: the counters, not the limits. */
static void subtract_figures(struct uzs_group_stats *from, const struct uzs_group_stats *sub)
{
	from->zswap -= sub->zswap;
	from->zswapped -= sub->zswapped;
	from->zswap_incomp -= sub->zswap_incomp;
	from->zswpin -= sub->zswpin;
	from->zswpout -= sub->zswpout;
	from->zswpwb -= sub->zswpwb;
	from->memory_current -= sub->memory_current;
}

int uzs_group_get_local_stats(struct uzs_group *group, struct uzs_group_stats *stats)
{
	struct groups *gs;
	struct uzs_group *g;

	if (!group_ok(group) || !stats)
		return -EINVAL;
	gs = group->set;
	pthread_mutex_lock(&gs->lock);
	group_figures(group, stats);
	g = gs->root;
	do {
		if (g->parent == group) {
			struct uzs_group_stats child;

			group_figures(g, &child);
			subtract_figures(stats, &child);
		}
		g = g->next;
	} while (g != gs->root);
	pthread_mutex_unlock(&gs->lock);
	return 0;
}

/* "/a/b": the names from the root down. */
static void group_path(const struct uzs_group *g, char *buf, size_t size)
{
	char tail[4096] = "";

	if (!g->parent) {
		snprintf(buf, size, "/");
		return;
	}
	for (; g->parent; g = g->parent) {
		char joined[sizeof(tail)];

		snprintf(joined, sizeof(joined), "/%s%s", g->name, tail);
		memcpy(tail, joined, sizeof(tail));
	}
	snprintf(buf, size, "%s", tail);
}

static int print_limit(FILE *out, const char *name, uint64_t v)
{
	if (v == UZS_MAX)
		return fprintf(out, "  %s max\n", name);
	return fprintf(out, "  %s %llu\n", name, (unsigned long long)v);
}

static int print_group(FILE *out, struct uzs_group *g)
{
	struct uzs_group_stats st;
	char path[4096];
	int r;

	group_figures(g, &st);
	group_path(g, path, sizeof(path));
	r = fprintf(out,
		    "group %s\n  zswap %llu\n  zswapped %llu\n  zswap_incomp %llu\n"
		    "  zswpin %llu\n  zswpout %llu\n  zswpwb %llu\n  memory.current %llu\n",
		    path, (unsigned long long)st.zswap, (unsigned long long)st.zswapped,
		    (unsigned long long)st.zswap_incomp, (unsigned long long)st.zswpin,
		    (unsigned long long)st.zswpout, (unsigned long long)st.zswpwb,
		    (unsigned long long)st.memory_current);
	if (r >= 0)
		r = print_limit(out, "memory.max", st.memory_max);
	if (r >= 0)
		r = print_limit(out, "memory.zswap.max", st.zswap_max);
	if (r >= 0)
		r = fprintf(out, "  memory.zswap.writeback %llu\n",
			    (unsigned long long)st.zswap_writeback);
	return r < 0 ? -EIO : 0;
}

int uzs_print_group_stats(struct uzs *uzs, FILE *out)
{
	unsigned count;
	struct uzs_group **list;
	int err = 0;

	if (!uzs || !out)
		return -EINVAL;
	list = groups_within(&uzs->groups, uzs->groups.root, &count);
	if (!list)
		return -ENOMEM;
	for (unsigned i = 0; i < count; i++) {
		if (!err)
			err = print_group(out, list[i]);
		group_put(list[i]);
	}
	free(list);
	return err;
}

