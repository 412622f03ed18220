/*
 * control.c - what the built-in events do: STOP_THREAD unwinds the worker
 * (or cancels a root's wait), EXECUTE calls its function, and
 * CHILD_THREAD_END lets the supervisor that the life layer installed
 * (supervise.c) decide whether the child comes back.  The names and
 * kinds of every built-in event are the table in internal.h; PAUSE_THREAD
 * holds the loop, so its action is the loop's (loop.c).
 *
 * DESIGN
 *
 * An action runs after the user's listeners of its event (listen.c), in
 * the owner's thread.  A STOP_THREAD that comes while the listeners of an
 * earlier one still run (one of them waits, say to finish an orderly
 * shutdown) is not handed to anyone (worker__control_redundant): it does
 * not cut that shutdown short, and a storm of stops cannot nest one
 * dispatch per stop.  The earlier stop unwinds when its listeners are
 * done.  A root worker has no frame to unwind to:
 * a stop makes its current or next wait return ECANCELED and stops its
 * children.
 *
 * Locks: none; the state is the owner's.
 */
#include "internal.h"

void
worker__control_init(struct worker__control_part *c)
{
	c->ending = false;
	c->canceled = false;
	c->stopping = 0;
	c->ending_loop = 0;
	c->child_ended = NULL;
}

static void
stop_action(worker_t *w)
{
	struct worker__control_part *c = &w->control;

	if (c->ending)
		return;
	if (w->is_root) {
		c->canceled = true;
		worker__stop_children(w);
		return;
	}
	worker__throw(w, OUTCOME_STOP);
}

static void
execute_action(const worker_event_t *ev)
{
	const worker_execute_t *x = ev->data;

	if (x != NULL && x->fn != NULL)
		x->fn(x->arg);
}

/* The built-in action of ev, run after the user's listeners. */
void
worker__control(worker_t *w, struct wevent *ev)
{
	switch (ev->kind) {
	case KIND_STOP:
		stop_action(w);
		break;
	case KIND_EXECUTE:
		execute_action(&ev->pub);
		break;
	case KIND_CHILD_END:
		if (w->control.child_ended != NULL && ev->pub.source != NULL)
			w->control.child_ended(w, ev->pub.source);
		break;
	default:
		break;
	}
}
