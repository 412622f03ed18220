/*
 * defer.c - deferred values: settled once, awaited by any number of
 * workers, each running its own loop while it waits.
 *
 * DESIGN: a mutex guards the state and the list of waiters (waitq.c).
 * Settling moves the waiters out under the lock and wakes them after it,
 * so no two locks are ever held together.  A getter's loop checks the
 * state each time it wakes; the value itself is read under the lock.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

enum defer_state { DEFER_PENDING, DEFER_RESOLVED, DEFER_REJECTED };

struct worker_defer {
	pthread_mutex_t lock;
	atomic_int state;	/* written under lock */
	void *value;		/* lock */
	int err;		/* lock */
	list_t waiters;		/* lock: struct worker__waiter */
};

worker_defer_t *
worker_defer_new(void)
{
	worker_defer_t *d = malloc(sizeof(*d));

	if (d == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	atomic_init(&d->state, DEFER_PENDING);
	d->value = NULL;
	d->err = 0;
	list_init(&d->waiters);
	return d;
}

static int
settle(worker_defer_t *d, int state, void *value, int err)
{
	list_t woken;

	list_init(&woken);
	pthread_mutex_lock(&d->lock);
	if (atomic_load(&d->state) != DEFER_PENDING) {
		pthread_mutex_unlock(&d->lock);
		return EALREADY;
	}
	d->value = value;
	d->err = err;
	atomic_store(&d->state, state);
	worker__waiters_take(&woken, &d->waiters);
	pthread_mutex_unlock(&d->lock);
	worker__waiters_wake(&woken);
	return 0;
}

int
worker_defer_resolve(worker_defer_t *d, void *value)
{
	if (d == NULL)
		return EINVAL;
	return settle(d, DEFER_RESOLVED, value, 0);
}

int
worker_defer_reject(worker_defer_t *d, int err)
{
	if (d == NULL || err == 0)
		return EINVAL;
	return settle(d, DEFER_REJECTED, NULL, err);
}

static int
defer_settled(void *d)
{
	return atomic_load(&((worker_defer_t *)d)->state) != DEFER_PENDING;
}

int
worker_defer_get(worker_defer_t *d, double timeout, void **value)
{
	worker_t *self;
	int rc;

	if (d == NULL || isnan(timeout))
		return EINVAL;
	if ((self = worker__current()) == NULL)
		return ENOMEM;
	rc = worker__wait_on(self, &d->lock, &d->waiters, defer_settled, d,
	    timeout, WAIT_CALL_DEFER);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&d->lock);
	rc = d->err;
	if (rc == 0 && value != NULL)
		*value = d->value;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void
worker_defer_free(worker_defer_t *d)
{
	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d);
}
