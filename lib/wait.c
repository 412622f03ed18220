/*
 * wait.c - the public waits: the breakpoints a task calls (worker(7)
 * lists them all).  A new wait function goes here.
 *
 * DESIGN: each wait is one run of the calling thread's loop (loop.c) with
 * a condition: an event that matches (worker__wait.match), or a state
 * elsewhere that changes (worker__wait_on, waitq.c, for the end of a
 * worker).  A thread that libworker did not start gets its root worker
 * here, the first time it waits.  No lock of its own.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "internal.h"

struct name_match {
	const char *name;
	const worker_t *source;
};

static int
match_name(const worker_event_t *ev, void *ctx)
{
	const struct name_match *m = ctx;

	return strcmp(ev->name, m->name) == 0 &&
	    (m->source == NULL || ev->source == m->source);
}

static int
wait_for(unsigned call, int (*match)(const worker_event_t *, void *),
    void *ctx, double timeout, void **data)
{
	struct worker__wait wt = {
		.call = call, .match = match, .match_ctx = ctx,
		.timeout = timeout
	};
	worker_t *w;
	int rc;

	if (isnan(timeout))
		return EINVAL;
	if ((w = worker__current()) == NULL)
		return ENOMEM;
	rc = worker__loop(w, &wt);
	if (rc == 0 && data != NULL)
		*data = wt.data;
	return rc;
}

int
worker_wait_event(const char *name, worker_t *source, double timeout,
    void **data)
{
	struct name_match m = { .name = name, .source = source };

	if (name == NULL || name[0] == '\0')
		return EINVAL;
	return wait_for(WAIT_CALL_EVENT, match_name, &m, timeout, data);
}

int
worker_wait_until(int (*cond)(const worker_event_t *ev, void *ctx),
    void *ctx, double timeout, void **data)
{
	if (cond == NULL)
		return EINVAL;
	return wait_for(WAIT_CALL_UNTIL, cond, ctx, timeout, data);
}

int
worker_sleep(double seconds)
{
	int rc;

	if (isnan(seconds) || seconds < 0)
		return EINVAL;
	rc = wait_for(WAIT_CALL_SLEEP, NULL, NULL, seconds, NULL);
	return rc == ETIMEDOUT ? 0 : rc;
}

void
worker_wait_forever(void)
{
	wait_for(WAIT_CALL_FOREVER, NULL, NULL, -1, NULL);
}

int
worker_update(void)
{
	worker_t *w = worker__current();

	return w != NULL ? worker__update(w) : 0;
}

struct thread_wait {
	worker_t *target;
	unsigned run;		/* the run to wait for */
};

static int
thread_ended(void *ctx)
{
	struct thread_wait *tw = ctx;

	return atomic_load(&tw->target->run.ends) >= tw->run;
}

int
worker_wait_thread(worker_t *w, void **ret)
{
	struct thread_wait tw = { .target = w };
	worker_t *self;
	int rc;

	if (w == NULL)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	if ((self = worker__current()) == NULL)
		return ENOMEM;
	if (worker__on_this_thread(w))
		return EDEADLK;
	pthread_mutex_lock(&w->qlock);
	tw.run = w->run.starts;
	pthread_mutex_unlock(&w->qlock);
	rc = worker__wait_on(self, &w->qlock, &w->run.waiters, thread_ended,
	    &tw, -1, WAIT_CALL_THREAD);
	if (rc != 0)
		return rc;
	return worker_result(w, ret);
}

