/* SPDX-License-Identifier: MIT */
/*
 * psi — a memory pressure trigger (the kernel's PSI, Documentation/accounting/psi.rst)
 * watched by a small thread of its own, which tells the engine when the system stalls on
 * memory. A thread, not the worker: the worker sleeps on a condition variable that the
 * store path signals, and waiting on the trigger's descriptor there would need the store
 * path to write to an eventfd instead, a system call where today it mostly has none.
 */
#ifndef UZS_PSI_H
#define UZS_PSI_H

#include <stdbool.h>

struct psi_watch;

/* Called on the watcher's thread: each time the trigger fires (lost false), or once when
 * the trigger stops working (lost true: its cgroup went away), after which it is silent. */
typedef void psi_event_fn(void *arg, bool lost);

/* Open a trigger on the calling process's cgroup v2 memory.pressure, else the system's
 * /proc/pressure/memory, and watch it. NULL when the kernel or the user cannot have one
 * (no PSI, no permission): the caller then polls MemAvailable as before. */
struct psi_watch *psi_watch_start(psi_event_fn *fn, void *arg);
/* Stop the thread and close the trigger; no call to fn after it returns. NULL is fine. */
void psi_watch_stop(struct psi_watch *w);

#endif
