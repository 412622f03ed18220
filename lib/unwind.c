/*
 * unwind.c - frames, cleanup handlers, worker_exit() and worker_fail().
 *
 * DESIGN
 *
 * As in Lua's ldo.c, each thread keeps a chain of frames, here per worker
 * (w->frame): worker__protect() opens one around a call and is the only
 * function that calls sigsetjmp(); worker__throw() is the only one that
 * calls siglongjmp().  A frame remembers how many cleanup handlers and
 * hooks were older than itself, so a throw runs exactly those pushed
 * since, newest first, the user's handlers and the library's own hooks
 * (listen.c, waitq.c, timer.c...) in one order: a hook remembers how many
 * handlers were pushed before it.  So a handler pushed before a wait runs
 * after the wait has let go of what it used, and may free it (a defer, a
 * worker it waited for).  No library lock is ever held across a call that may throw, so a
 * jump never leaves a mutex locked.
 *
 * sigsetjmp(env, 0) does not save the signal mask: a worker's mask is its
 * own business and saving it would cost a system call per frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int
worker__protect(worker_t *w, void (*fn)(void *), void *arg)
{
	struct worker__frame frame;

	frame.prev = w->frame;
	frame.hooks = w->hooks;
	frame.ncleanup = w->ncleanup;
	frame.outcome = OUTCOME_DONE;
	w->frame = &frame;
	if (sigsetjmp(frame.env, 0) == 0)
		fn(arg);
	w->frame = frame.prev;
	return frame.outcome;
}

/* Runs, newest first, the user's handlers above down_to. */
void
worker__run_cleanups(worker_t *w, size_t down_to)
{
	while (w->ncleanup > down_to) {
		struct cleanup c = w->cleanups[--w->ncleanup];

		c.fn(c.arg);
	}
}

_Noreturn void
worker__throw(worker_t *w, int outcome)
{
	struct worker__frame *frame = w->frame;

	if (frame == NULL) {
		fprintf(stderr, "libworker: worker %s unwinds with no frame "
		    "to unwind to\n", w->name);
		abort();
	}
	for (;;) {
		struct worker__hook *h = w->hooks;

		if (h != frame->hooks && h->ncleanup >= w->ncleanup) {
			w->hooks = h->prev;
			h->fn(h->arg);
		} else if (w->ncleanup > frame->ncleanup) {
			struct cleanup c = w->cleanups[--w->ncleanup];

			c.fn(c.arg);
		} else {
			break;
		}
	}
	/* A handler may have thrown already; then this point is not reached. */
	frame->outcome = outcome;
	siglongjmp(frame->env, 1);
}

/* A root worker never unwinds: it ends its children and goes on. */
static void
root_exit(worker_t *w)
{
	worker__stop_children(w);
	worker__join_children(w);
}

void
worker_exit(void)
{
	worker_t *w = worker__current();

	if (w == NULL)
		return;
	if (w->is_root)
		root_exit(w);
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
	w->fail_err = err;
	worker__throw(w, OUTCOME_FAIL);
}

void
worker_cleanup_push(void (*fn)(void *), void *arg)
{
	worker_t *w = worker__current();

	if (w == NULL || fn == NULL)
		return;
	if (w->ncleanup == w->capcleanup) {
		size_t cap = w->capcleanup != 0 ? 2 * w->capcleanup : 8;
		struct cleanup *c = realloc(w->cleanups, cap * sizeof(*c));

		/* Without the handler the task would leak or worse. */
		if (c == NULL) {
			fprintf(stderr, "libworker: out of memory in "
			    "worker_cleanup_push\n");
			abort();
		}
		w->cleanups = c;
		w->capcleanup = cap;
	}
	w->cleanups[w->ncleanup].fn = fn;
	w->cleanups[w->ncleanup].arg = arg;
	w->ncleanup++;
}

void
worker_cleanup_pop(int execute)
{
	worker_t *w = worker__current();
	struct cleanup c;

	if (w == NULL || w->ncleanup == 0)
		return;
	c = w->cleanups[--w->ncleanup];
	if (execute)
		c.fn(c.arg);
}
