/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "spread.h"

#include <time.h>
#include <unistd.h>


/* How long an idle helper keeps watching for the next job before it sleeps. */
#define SPIN_NS 50000L

struct spread_job {
	void (*fn)(void *, unsigned);
	void *arg;
	unsigned nr;
	_Atomic unsigned next;
	_Atomic unsigned done;
};

static void work_on(struct spread_job *job)
{
	unsigned i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->nr) {
		job->fn(job->arg, i);
		atomic_fetch_add(&job->done, 1);
	}
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Wait for a generation other than seen: spinning first, then asleep. False: stop. */
static bool wait_for_job(struct spread *sp, unsigned seen)
{
	long until = now_ns() + SPIN_NS;
	bool stop;

	for (unsigned spins = 0; atomic_load(&sp->gen) == seen; spins++)
		if (spins % 64 == 0 && now_ns() >= until)
			break;
		else
			cpu_relax();
	pthread_mutex_lock(&sp->lock);
	while (atomic_load(&sp->gen) == seen && !sp->stop)
		pthread_cond_wait(&sp->wake, &sp->lock);
	stop = sp->stop;
	pthread_mutex_unlock(&sp->lock);
	return !stop;
}

static void *helper_main(void *arg)
{
	struct spread *sp = arg;
	unsigned seen = atomic_load(&sp->gen);

	while (wait_for_job(sp, seen)) {
		struct spread_job *job;

		seen = atomic_load(&sp->gen);
		/* Announce first, then look: the caller waits for helpers_in to drop before its
		 * job (on its stack) goes away. */
		atomic_fetch_add(&sp->helpers_in, 1);
		job = atomic_load(&sp->job);
		if (job)
			work_on(job);
		atomic_fetch_sub(&sp->helpers_in, 1);
	}
	sp->thread_exit();
	return NULL;
}

void spread_init(struct spread *sp, void (*thread_exit)(void))
{
	sp->thread_exit = thread_exit;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->wake, NULL);
	sp->nr_helpers = 0;
	sp->started = sp->stop = false;
	atomic_init(&sp->busy, false);
	atomic_init(&sp->gen, 0);
	atomic_init(&sp->job, NULL);
	atomic_init(&sp->helpers_in, 0);
}

static void start_helpers(struct spread *sp)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = cpus > 1 ? (unsigned)cpus - 1 : 0;

	if (want > SPREAD_MAX_HELPERS)
		want = SPREAD_MAX_HELPERS;
	pthread_mutex_lock(&sp->lock);
	if (!sp->started) {
		sp->started = true;
		while (sp->nr_helpers < want &&
		       !pthread_create(&sp->threads[sp->nr_helpers], NULL, helper_main, sp))
			sp->nr_helpers++;
	}
	pthread_mutex_unlock(&sp->lock);
}

void spread_destroy(struct spread *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->stop = true;
	pthread_cond_broadcast(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	for (unsigned i = 0; i < sp->nr_helpers; i++)
		pthread_join(sp->threads[i], NULL);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->lock);
}

static void run_alone(unsigned nr, void (*fn)(void *, unsigned), void *arg)
{
	for (unsigned i = 0; i < nr; i++)
		fn(arg, i);
}

void spread_for(struct spread *sp, unsigned nr, unsigned min_nr, void (*fn)(void *, unsigned),
		void *arg)
{
	struct spread_job job = {.fn = fn, .arg = arg, .nr = nr};
	bool idle = false;

	if (nr < min_nr || !atomic_compare_exchange_strong(&sp->busy, &idle, true)) {
		run_alone(nr, fn, arg);
		return;
	}
	if (!sp->started)
		start_helpers(sp);
	atomic_init(&job.next, 0);
	atomic_init(&job.done, 0);
	atomic_store(&sp->job, &job);
	pthread_mutex_lock(&sp->lock);
	atomic_fetch_add(&sp->gen, 1);
	pthread_cond_broadcast(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	work_on(&job);
	/* the last pages are in the helpers' hands: a few microseconds */
	while (atomic_load(&job.done) < nr)
		cpu_relax();
	atomic_store(&sp->job, NULL);
	while (atomic_load(&sp->helpers_in))
		cpu_relax();
	atomic_store(&sp->busy, false);
}
