/* SPDX-License-Identifier: MIT */
/*
 * spread — a few helper threads that share the pages of a long run with the caller, so a
 * 16-page store compresses on every core instead of one. One run is spread at a time;
 * a caller that finds the helpers busy does its run alone. Helpers are started on first
 * use, spin briefly after a job (runs tend to come in streams) and then sleep.
 */
#ifndef UZS_SPREAD_H
#define UZS_SPREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define SPREAD_MAX_HELPERS 7u

struct spread_job;

struct spread {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t threads[SPREAD_MAX_HELPERS];
	unsigned nr_helpers; /* lock */
	bool started, stop;  /* lock */
	_Atomic bool busy;	/* a job is out */
	_Atomic unsigned gen;	/* bumped for each job */
	_Atomic(struct spread_job *) job;
	_Atomic unsigned helpers_in; /* helpers that may still look at the job */
	void (*thread_exit)(void);   /* frees a helper's per-thread state as it ends */
};

void spread_init(struct spread *sp, void (*thread_exit)(void));
void spread_destroy(struct spread *sp);

/* Call fn(arg, i) for every i < nr, on the caller and, when nr reaches min_nr and the
 * helpers are free, on them too. Returns when every call has returned. */
void spread_for(struct spread *sp, unsigned nr, unsigned min_nr, void (*fn)(void *, unsigned),
		void *arg);

#endif
