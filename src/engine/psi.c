/* SPDX-License-Identifier: MIT */
/*
 * psi — a memory pressure trigger watched by a thread (see psi.h).
 *
 * The trigger: "some 150000 1000000", 150 ms in a 1 s window during which at least one
 * task of the group (or system) stalled on memory — reclaim, refaults of thrashing pages,
 * swap-in. That is the kernel documentation's own example threshold; 15% of the time is
 * well above what page cache churn costs on a healthy system, and comes long before the
 * OOM killer. The kernel sends at most one event per window, so the shrinker runs at most
 * once a second, as the MemAvailable poll did. Users without CAP_SYS_RESOURCE may only
 * use windows that are a multiple of 2 s (and the kernel says EINVAL or EPERM otherwise):
 * then "some 300000 2000000", the same share over 2 s.
 */
#define _GNU_SOURCE
#include "psi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct psi_watch {
	int fd;	     /* the trigger */
	int stop_fd; /* eventfd: psi_watch_stop wakes the thread through it */
	pthread_t thread;
	psi_event_fn *fn;
	void *arg;
};

static const char *const triggers[] = { "some 150000 1000000", "some 300000 2000000" };

/* The process's cgroup v2 path ("0::/path" in /proc/self/cgroup); false for the root or
 * when there is none, where the system-wide file says the same. */
static bool cgroup2_path(char *path, size_t size)
{
	char line[PATH_MAX + 8];
	FILE *f = fopen("/proc/self/cgroup", "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::/", 4) && line[4] != '\n' && line[4]) {
			line[strcspn(line, "\n")] = '\0';
			found = (size_t)snprintf(path, size, "%s", line + 3) < size;
		}
	fclose(f);
	return found;
}

static int open_trigger_at(const char *path)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(triggers) / sizeof(triggers[0]); i++) {
		/* the kernel wants the terminating NUL too */
		if (write(fd, triggers[i], strlen(triggers[i]) + 1) >= 0)
			return fd;
		if (errno != EINVAL && errno != EPERM)
			break;
	}
	close(fd);
	return -1;
}

/* The group's own file where cgroup v2 is mounted in either usual place, else the
 * system's. */
static int open_trigger(void)
{
	static const char *const mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	char group[PATH_MAX], path[PATH_MAX + 64];
	int fd;

	if (cgroup2_path(group, sizeof(group)))
		for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
			snprintf(path, sizeof(path), "%s%s/memory.pressure", mounts[i], group);
			if ((fd = open_trigger_at(path)) >= 0)
				return fd;
		}
	return open_trigger_at("/proc/pressure/memory");
}

static void *watch(void *arg)
{
	struct psi_watch *w = arg;
	struct pollfd fds[2] = { { w->fd, POLLPRI, 0 }, { w->stop_fd, POLLIN, 0 } };

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents)
			return NULL;
		if (fds[0].revents & (POLLERR | POLLNVAL))
			break; /* the trigger's cgroup was removed */
		if (fds[0].revents & POLLPRI)
			w->fn(w->arg, false);
	}
	w->fn(w->arg, true);
	return NULL;
}

struct psi_watch *psi_watch_start(psi_event_fn *fn, void *arg)
{
	struct psi_watch *w = malloc(sizeof(*w));

	if (!w)
		return NULL;
	*w = (struct psi_watch){ .fd = open_trigger(), .stop_fd = -1, .fn = fn, .arg = arg };
	if (w->fd >= 0)
		w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd >= 0 && !pthread_create(&w->thread, NULL, watch, w))
		return w;
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	return NULL;
}

void psi_watch_stop(struct psi_watch *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	while (write(w->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(w->thread, NULL);
	close(w->stop_fd);
	close(w->fd);
	free(w);
}
