/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The helper threads of a qcow2 image's group commit (qcow2_commit.c, "Group commit: the data
 * write"): started when the image opens read-write and kept until it is closed, so that a
 * commit does not create and join threads every time, and so that the threads that write (the
 * slow-path worker, an iothread, the job thread) need not be allowed to start threads under the
 * sandbox (seccomp/roles.c).
 *
 * Ownership. The pool belongs to its image; qcow2_pool_run() is called with q->lock held, so
 * one batch runs at a time. A batch is a function and an argument the caller shares with the
 * helpers; the caller runs it too and returns only after every helper that took the batch has
 * left it. The pool's mutex orders everything: the caller publishes the batch, bumps `gen` and
 * broadcasts `work`; a helper that sees a new gen takes the function and argument and counts
 * itself in `busy` (under the mutex), runs it, then decrements `busy` and signals `done` at
 * zero. When the caller has run the function itself it closes the batch (fn = NULL) and waits
 * for busy to reach zero: a helper that wakes later skips the closed batch, so the argument is
 * never used after the call returns. The function shares out the work itself (an atomic index,
 * see qcow2_commit.c), so a helper that joins late finds little or nothing left.
 */
#include "blockdev/qcow2.h"

#include <pthread.h>
#include <stdlib.h>

#include "seccomp/thread.h"

struct qcow2_pool {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	void (*fn)(void *);
	void *arg;
	uint64_t gen;
	unsigned int busy;
	bool stop;
	unsigned int nr;
	pthread_t threads[];
};

static void *pool_main(void *opaque)
{
	struct qcow2_pool *p = opaque;
	void (*fn)(void *);
	void *arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->gen == seen)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		if (!p->fn)
			continue; /* woke after the caller closed the batch */
		fn = p->fn;
		arg = p->arg;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		fn(arg);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void qcow2_pool_start(struct qcow2 *q, unsigned int nr)
{
	struct qcow2_pool *p = calloc(1, sizeof(*p) + nr * sizeof(pthread_t));

	if (!p)
		return;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	while (p->nr < nr && !sandbox_thread_spawn(&p->threads[p->nr], SANDBOX_ROLE_QCOW2_POOL,
						   "qcow2-pool", NULL, pool_main, p, NULL))
		p->nr++;
	if (!p->nr) {
		qcow2_pool_free(p);
		return;
	}
	q->pool = p;
}

void qcow2_pool_run(struct qcow2 *q, unsigned int helpers, void (*fn)(void *), void *arg)
{
	struct qcow2_pool *p = q->pool;

	if (!helpers || !p) { /* nothing to share, or no threads: all of it here */
		fn(arg);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->gen++;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	fn(arg);
	pthread_mutex_lock(&p->lock);
	/* close the batch: a helper that wakes from now on skips it, and @arg (often on the
	 * caller's stack) is only used by the helpers counted in busy, which are waited for */
	p->fn = NULL;
	p->arg = NULL;
	while (p->busy)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void qcow2_pool_free(struct qcow2_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nr; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
