/*
 * waitq.c - lists of workers waiting in their loop for a state change
 * elsewhere (worker_wait_thread; later, deferreds).
 *
 * DESIGN
 *
 * A waiter is a small heap node with two references: the waiting call's
 * and the list's.  The owner of the list links and unlinks nodes under its
 * own lock.  To wake, it moves every node to a private list under that
 * lock, then wakes each worker after dropping it: waking takes the
 * waiter's qlock, and holding two qlocks at once is what we never do.  The
 * node keeps its worker alive until both references are gone, so a waiter
 * that returns meanwhile cannot leave a dangling pointer behind.
 *
 * worker__wait_on() is the whole protocol for a waiting call: register,
 * run the loop until the condition holds, unregister, also when a stop
 * unwinds the waiter.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static void
waiter_put(struct worker__waiter *wt)
{
	if (atomic_fetch_sub(&wt->refs, 1) != 1)
		return;
	worker_unref(wt->worker);
	free(wt);
}

/* Links a waiter for w on l; the caller holds l's lock. */
struct worker__waiter *
worker__waiter_add(list_t *l, worker_t *w)
{
	struct worker__waiter *wt = malloc(sizeof(*wt));

	if (wt == NULL)
		return NULL;
	atomic_init(&wt->refs, 2);
	wt->worker = worker__ref(w);
	wt->linked = true;
	list_append(l, &wt->link);
	return wt;
}

/* The waiting call is done with wt; the caller holds the list's lock. */
void
worker__waiter_remove(struct worker__waiter *wt)
{
	if (wt->linked) {
		wt->linked = false;
		list_remove(&wt->link);
		waiter_put(wt);
	}
	waiter_put(wt);
}

/*
 * Moves every waiter of l to woken; the caller holds l's lock, then calls
 * worker__waiters_wake(woken) after dropping it.
 */
void
worker__waiters_take(list_t *woken, list_t *l)
{
	struct list_node *n;

	list_for_each(n, l)
		container_of(n, struct worker__waiter, link)->linked = false;
	list_splice_tail(woken, l);
}

void
worker__waiters_wake(list_t *woken)
{
	struct list_node *n;

	while ((n = list_pop(woken)) != NULL) {
		struct worker__waiter *wt =
		    container_of(n, struct worker__waiter, link);

		/* A waiter of the parent process (fork.c) is not there. */
		if (!worker__gone(wt->worker))
			worker__wake(wt->worker);
		waiter_put(wt);
	}
}

struct registration {
	pthread_mutex_t *lock;
	struct worker__waiter *waiter;
};

static void
unregister(void *arg)
{
	struct registration *r = arg;

	pthread_mutex_lock(r->lock);
	worker__waiter_remove(r->waiter);
	pthread_mutex_unlock(r->lock);
}

/*
 * Runs self's loop until done(ctx) holds, registered meanwhile on the
 * waiter list l (guarded by lock) of whatever will change that answer.
 * done must be safe to call both with and without lock held.  Returns 0,
 * ETIMEDOUT, ECANCELED or ENOMEM; a stop unwinds, unregistering first.
 */
int
worker__wait_on(worker_t *self, pthread_mutex_t *lock, list_t *l,
    int (*done)(void *ctx), void *ctx, double timeout, unsigned call)
{
	struct registration r = { .lock = lock };
	struct worker__wait wait = {
		.call = call, .done = done, .done_ctx = ctx, .timeout = timeout
	};
	struct worker__hook hook;
	bool already;
	int rc;

	pthread_mutex_lock(lock);
	already = done(ctx);
	if (!already)
		r.waiter = worker__waiter_add(l, self);
	pthread_mutex_unlock(lock);
	/* Still a breakpoint: the loop handles what is queued, returns. */
	if (already)
		return worker__loop(self, &wait);
	if (r.waiter == NULL)
		return ENOMEM;
	worker__hook_push(self, &hook, unregister, &r);
	rc = worker__loop(self, &wait);
	worker__hook_pop(self, &hook);
	unregister(&r);
	return rc;
}
