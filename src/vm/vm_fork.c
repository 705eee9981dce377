/* SPDX-License-Identifier: MIT */
/*
 * vm_fork — what a forked child really got of its parent's memory. Its fork event records
 * the parent's pages for it (vm_events.c on_fork), but the kernel does not copy every range: one
 * marked MADV_DONTFORK is absent from the child (which may map new memory there), one
 * marked MADV_WIPEONFORK is empty in it. Left as recorded, the child would read its
 * parent's evicted pages where it must read zeros, count its empty pages as lost, and a
 * new mapping at such an address would be taken for one registered already (and never
 * be managed). The child's own /proc/PID/smaps says which ranges these are (VmFlags "wf";
 * a DONTFORK one is simply not there), read while the child waits for its go-ahead: no
 * code of its program runs then to change its mappings.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct child_vma {
	uintptr_t start, end;
	bool wiped; /* MADV_WIPEONFORK: the kernel gave it to the child empty */
};

struct child_vmas {
	struct child_vma *v;
	size_t n, cap;
};

static bool vmas_push(struct child_vmas *vs, uintptr_t start, uintptr_t end)
{
	if (vs->n == vs->cap) {
		size_t cap = vs->cap ? vs->cap * 2 : 256;
		struct child_vma *v = realloc(vs->v, cap * sizeof(*v));

		if (!v)
			return false;
		vs->v = v;
		vs->cap = cap;
	}
	vs->v[vs->n++] = (struct child_vma){ start, end, false };
	return true;
}

/* " wf" among the flags of a "VmFlags:" line. */
static bool flags_say_wiped(const char *line)
{
	for (const char *f = strstr(line, " wf"); f; f = strstr(f + 1, " wf"))
		if (f[3] == ' ' || f[3] == '\n' || f[3] == '\0')
			return true;
	return false;
}

/* Every mapping of the child, in address order; false if they could not all be read
 * (a mapping missed would pass for one the child lacks, and its pages be forgotten). */
static bool read_child_vmas(pid_t pid, struct child_vmas *vs)
{
	char path[64], line[512];
	bool ok = true, line_start = true;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if (!(f = fopen(path, "re")))
		return false;
	while (ok && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		bool whole_start = line_start;

		/* the rest of a line longer than the buffer (a long path) is no line's start */
		line_start = strchr(line, '\n') != NULL;
		if (!whole_start)
			continue;
		/* a mapping's first line starts with its range; the lines about it with a
		 * name and a colon ("VmFlags:" the last) */
		if (!strncmp(line, "VmFlags:", 8)) {
			if (vs->n)
				vs->v[vs->n - 1].wiped = flags_say_wiped(line + 7);
		} else if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			ok = vmas_push(vs, start, end);
	}
	ok = ok && !ferror(f) && vs->n > 0;
	fclose(f);
	return ok;
}

/* [start, end) is not in the child (unmap: its registration goes too), or empty in it. */
static void forget(struct vm_space *s, uintptr_t start, uintptr_t end, bool unmap)
{
	if (start < end && intervals_overlap(&s->registered, start, end))
		space_forget(s, start, end, unmap);
}

void vm_fork_trim(struct uzs_vm *vm, struct vm_space *s)
{
	struct child_vmas vs = { 0 };
	uintptr_t prev_end = 0;

	if (!read_child_vmas(s->pid, &vs)) {
		free(vs.v); /* left as the fork event recorded it */
		return;
	}
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vs.n; i++) {
		forget(s, prev_end, vs.v[i].start, true);
		if (vs.v[i].wiped)
			forget(s, vs.v[i].start, vs.v[i].end, false);
		if (vs.v[i].end > prev_end)
			prev_end = vs.v[i].end;
	}
	forget(s, prev_end, UINTPTR_MAX & ~(uintptr_t)(VM_PAGE - 1), true);
	pthread_mutex_unlock(&vm->lock);
	free(vs.v);
}
