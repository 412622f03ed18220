/*
 * exit.c - worker_exit(), worker_fail() and the cleanup stack: the calls
 * with which a task ends itself and says what to free on the way.
 *
 * DESIGN: a started worker unwinds (unwind.c) to the frame that started
 * it.  A root worker has no such frame: it never unwinds, and
 * worker_exit() on it stops and joins its children instead.  All state
 * is the calling thread's own worker's: no lock.
 */
#include <errno.h>

#include "internal.h"


void
worker_exit(void)
{
	worker_t *w = worker__current();

	if (w == NULL)
		return;
	/* A root never unwinds: it ends its children and goes on. */
	if (w->is_root)
		worker__end_children(w);
	else
		worker__throw(w, OUTCOME_STOP);
}

int
worker_fail(int err)
{
	worker_t *w;

	if (err < 0)
		return EINVAL;
	if ((w = worker__current()) == NULL)
		return ENOMEM;
	if (w->is_root || err == 0) {
		worker_exit();
		return 0;
	}
	w->run.fail_err = err;
	worker__throw(w, OUTCOME_FAIL);
}

int
worker_cleanup_push(void (*fn)(void *), void *arg)
{
	worker_t *w;

	if (fn == NULL)
		return EINVAL;
	if ((w = worker__current()) == NULL)
		return ENOMEM;
	return worker__cleanup_push(w, fn, arg);
}

void
worker_cleanup_pop(int execute)
{
	worker_t *w = worker__current();
	struct cleanup c;

	if (w != NULL && worker__cleanup_pop(w, &c) && execute)
		c.fn(c.arg);
}
