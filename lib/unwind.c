/*
 * unwind.c - frames, hooks and the cleanup stack: how a worker unwinds.
 * The public calls that unwind are in exit.c.
 *
 * DESIGN
 *
 * As in Lua's ldo.c, each thread keeps a chain of frames, here per worker
 * (w->unwind.frame): worker__protect() opens one around a call and is the only
 * function that calls sigsetjmp(); worker__throw() is the only one that
 * calls siglongjmp().  A frame remembers how many cleanup handlers and
 * hooks were older than itself, so a throw runs exactly those pushed
 * since, newest first, the user's handlers and the library's own hooks
 * (listen.c, waitq.c, timer.c...) in one order: a hook remembers how many
 * handlers were pushed before it.  So a handler pushed before a wait runs
 * after the wait has let go of what it used, and may free it (a defer, a
 * worker it waited for).  No library lock is ever held across a call
 * that may throw, so a jump never leaves a mutex locked.
 *
 * sigsetjmp(env, 0) does not save the signal mask: a worker's mask is its
 * own business and saving it would cost a system call per frame.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void
worker__unwind_init(struct worker__unwind_part *u)
{
	u->leaving = false;
	u->frame = NULL;
	u->hooks = NULL;
	u->cleanups = NULL;
	u->ncleanup = 0;
	u->capcleanup = 0;
}

void
worker__unwind_fini(struct worker__unwind_part *u)
{
	free(u->cleanups);
	u->cleanups = NULL;
}

/*
 * Calls fn(arg) in a frame that a throw unwinds to; returns how the call
 * ended.  A throw to this frame first calls leaving(w), if not NULL and
 * not already under way (a throw from inside it goes straight on), before
 * any cleanup handler: what must end before the frame's owner releases
 * anything (its children, worker.c).
 */
int
worker__protect(worker_t *w, void (*fn)(void *), void *arg,
    void (*leaving)(worker_t *w))
{
	struct worker__unwind_part *u = &w->unwind;
	struct worker__frame frame;

	frame.prev = u->frame;
	frame.hooks = u->hooks;
	frame.ncleanup = u->ncleanup;
	frame.leaving = leaving;
	frame.outcome = OUTCOME_DONE;
	u->frame = &frame;
	if (sigsetjmp(frame.env, 0) == 0)
		fn(arg);
	u->frame = frame.prev;
	u->leaving = false;
	return frame.outcome;
}

/* Runs, newest first, the user's handlers above down_to. */
void
worker__run_cleanups(worker_t *w, size_t down_to)
{
	struct cleanup c;

	while (w->unwind.ncleanup > down_to && worker__cleanup_pop(w, &c))
		c.fn(c.arg);
}

_Noreturn void
worker__throw(worker_t *w, int outcome)
{
	struct worker__unwind_part *u = &w->unwind;
	struct worker__frame *frame = u->frame;

	if (frame == NULL) {
		worker__log(LOG_ERR, w, "worker %s unwinds with no frame to "
		    "unwind to", w->name);
		abort();
	}
	if (frame->leaving != NULL && !u->leaving) {
		u->leaving = true;
		frame->leaving(w);
	}
	for (;;) {
		struct worker__hook *h = u->hooks;
		struct cleanup c;

		if (h != frame->hooks && h->ncleanup >= u->ncleanup) {
			u->hooks = h->prev;
			h->fn(h->arg);
		} else if (u->ncleanup > frame->ncleanup &&
		    worker__cleanup_pop(w, &c)) {
			c.fn(c.arg);
		} else {
			break;
		}
	}
	/* A handler may have thrown already; then this point is not reached. */
	frame->outcome = outcome;
	siglongjmp(frame->env, 1);
}

/*
 * Pushes fn(arg) on w's cleanup stack; ENOMEM if the stack cannot grow,
 * and then nothing is pushed.
 */
int
worker__cleanup_push(worker_t *w, void (*fn)(void *), void *arg)
{
	struct worker__unwind_part *u = &w->unwind;

	if (u->ncleanup == u->capcleanup) {
		size_t cap = u->capcleanup != 0 ? 2 * u->capcleanup : 8;
		struct cleanup *c = realloc(u->cleanups, cap * sizeof(*c));

		if (c == NULL)
			return ENOMEM;
		u->cleanups = c;
		u->capcleanup = cap;
	}
	u->cleanups[u->ncleanup].fn = fn;
	u->cleanups[u->ncleanup].arg = arg;
	u->ncleanup++;
	return 0;
}

/* Takes the newest handler off w's stack into *c; false if it is empty. */
bool
worker__cleanup_pop(worker_t *w, struct cleanup *c)
{
	struct worker__unwind_part *u = &w->unwind;

	if (u->ncleanup == 0)
		return false;
	*c = u->cleanups[--u->ncleanup];
	return true;
}
