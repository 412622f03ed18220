/*
 * async.c - worker_async(), worker_async_get(), worker_await(): a task on
 * its own worker, and a wait for its result that keeps the caller's loop
 * running.
 *
 * DESIGN: an async task is an ordinary worker, started parentless, daemon
 * and quiet (its failure is the getter's to report), and getting its
 * result is worker_wait_thread().  Nothing here needs a lock of its own.
 */
#include <errno.h>

#include "internal.h"

worker_t *
worker_async(worker_fn fn, void *arg)
{
	worker_attr_t attr = {
		.no_parent = 1, .daemon = WORKER_DAEMON_YES, .quiet = 1
	};

	worker_t *a;
	int rc;

	if (fn == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((a = worker_new(fn, arg, &attr)) == NULL)
		return NULL;
	/* A task of its caller's, not a top-level worker of the process. */
	a->is_async = true;
	if ((rc = worker_start(a)) != 0) {
		worker_unref(a);
		errno = rc;
		return NULL;
	}
	return a;
}

int
worker_async_get(worker_t *a, void **ret)
{
	return worker_wait_thread(a, ret);
}

static void
drop_task(void *a)
{
	worker_unref(a);
}

int
worker_await(worker_fn fn, void *arg, void **ret)
{
	struct worker__hook hook;
	worker_t *self, *a;
	int rc;

	if ((self = worker__current()) == NULL)
		return ENOMEM;
	if ((a = worker_async(fn, arg)) == NULL)
		return errno;
	/* A stop that unwinds the caller from the get drops the task too. */
	worker__hook_push(self, &hook, drop_task, a);
	rc = worker_async_get(a, ret);
	worker__hook_pop(self, &hook);
	/* The get returns as the task ends; its thread is gone only after
	 * the join, and then nothing of it outlives the call. */
	if (rc != ECANCELED)
		worker_join(a);
	worker_unref(a);
	return rc;
}
