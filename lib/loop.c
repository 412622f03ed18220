/*
 * loop.c - the breakpoints: the loop every wait runs, and the built-in
 * actions of STOP_THREAD, PAUSE_THREAD and EXECUTE.
 *
 * DESIGN
 *
 * Every wait is one call of worker__loop() on the calling thread's worker.
 * The loop handles the batch (queue.c) event by event, checks what the
 * wait is waiting for after each, runs the due timers (timer.c) between
 * batches, and sleeps on the worker's futex word (queue.c) when the queue is
 * empty, until an event, a wake (another worker's state changed), the
 * nearest timer or the deadline.  Deadlines use CLOCK_MONOTONIC.
 *
 * Pause is a nested loop that waits for RESUME_THREAD.  While it runs,
 * the events it hands to listeners are also kept, in order, in the pause
 * cache; the outer wait reads the cache first when the pause is over, so it
 * does not miss an event that came during the pause.
 *
 * The data a wait returns may have a destructor (worker_fire_ex).  The
 * worker then keeps a reference on that payload in w->held until its next
 * breakpoint, so the data stays valid after the wait returns.  Only the
 * payload is kept, not the event: an event holds its sender, and a wait
 * must not keep a finished sender and its parents alive.
 *
 * All the state here is the owner thread's: no lock but the queue's.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/*
 * Takes the queued events into the batch, first sleeping until there are
 * some, the worker is woken, its nearest timer is due, or deadline passes
 * (CLOCK_MONOTONIC ns; UINT64_MAX: none).  A timer scheduled meanwhile
 * from another thread wakes the owner, and the next round
 * sleeps for the new nearest deadline.  One lock for the look, the sleep
 * and the take: this is the path of every event that wakes a worker.
 */
static void
block(worker_t *w, uint64_t deadline)
{
	uint64_t due = atomic_load_explicit(&w->next_due,
	    memory_order_relaxed);

	worker__unref_flush(w);
	/* A worker with descriptors sleeps in ppoll() instead (watch.c). */
	if (atomic_load_explicit(&w->nwatch, memory_order_relaxed) > 0) {
		worker__watches_run(w, true, due < deadline ? due : deadline);
		worker__take_batch(w);
		return;
	}
	worker__spin(w, due < deadline ? due : deadline);
	pthread_mutex_lock(&w->qlock);
	while (worker__queue_empty_locked(w) && !w->woken) {
		uint64_t until = atomic_load_explicit(&w->next_due,
		    memory_order_relaxed);

		if (deadline < until)
			until = deadline;
		if (until != UINT64_MAX && worker__now_ns() >= until)
			break;
		if (worker__sleep_locked(w, until) == ETIMEDOUT)
			break;
	}
	w->woken = false;
	worker__take_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

static void
release_held(worker_t *w)
{
	worker__payload_put(w->held);
	w->held = NULL;
}

static int
found(worker_t *w, struct worker__wait *wt, struct wevent *ev)
{
	release_held(w);
	if ((w->held = ev->payload) != NULL)
		atomic_fetch_add(&w->held->refs, 1);
	wt->data = ev->pub.data;
	worker__event_done(w, ev);
	return 0;
}

static bool
deadline_passed(uint64_t deadline)
{
	return deadline != UINT64_MAX && worker__now_ns() >= deadline;
}

static bool
wait_done(const struct worker__wait *wt)
{
	return wt->done != NULL && wt->done(wt->done_ctx);
}

static bool
wait_matches(const struct worker__wait *wt, const struct wevent *ev)
{
	return wt->match != NULL && wt->match(&ev->pub, wt->match_ctx);
}

/* A handled event nobody waited for: keep it if a pause may need it. */
static void
settle(worker_t *w, struct wevent *ev)
{
	if (atomic_load_explicit(&w->paused, memory_order_relaxed) &&
	    ev->kind != KIND_RESUME)
		list_append(&w->cache, &ev->link);
	else
		worker__event_done(w, ev);
}

static struct wevent *
cache_pop(worker_t *w)
{
	struct list_node *n;

	if (atomic_load_explicit(&w->paused, memory_order_relaxed))
		return NULL;
	n = list_pop(&w->cache);
	return n != NULL ? container_of(n, struct wevent, link) : NULL;
}

/*
 * Handles the events queued now, without waiting for more; returns how
 * many.  A wait whose condition came true ends with this, so that what
 * was queued before the change (a CHILD_THREAD_END before the end of
 * the worker waited for) has been handled when the wait returns.
 */
static int
handle_queued(worker_t *w)
{
	struct wevent *ev;
	int count = 0;

	worker__take_batch(w);
	while ((ev = worker__next(w)) != NULL) {
		worker__dispatch(w, ev);
		settle(w, ev);
		count++;
	}
	return count;
}

static int
loop_run(worker_t *w, struct worker__wait *wt)
{
	uint64_t deadline = wt->timeout >= 0 ?
	    worker__deadline_ns(wt->timeout) : UINT64_MAX;
	bool took_batch = false;
	struct wevent *ev;

	release_held(w);
	for (;;) {
		if (w->ending)
			return ECANCELED;
		if (w->canceled) {
			w->canceled = false;
			return ECANCELED;
		}
		if ((ev = cache_pop(w)) != NULL) {
			if (wait_matches(wt, ev))
				return found(w, wt, ev);
			worker__event_done(w, ev);
			continue;
		}
		if (wait_done(wt)) {
			handle_queued(w);
			return 0;
		}
		if (list_empty(&w->batch)) {
			/* Timers and descriptors are served between batches;
			 * either may end the wait. */
			int ran = worker__timers_run(w);

			ran += worker__watches_run(w, false, 0);
			if (ran > 0 && wait_done(wt)) {
				handle_queued(w);
				return 0;
			}
			/* Past the deadline: end the batch taken, no more. */
			if (took_batch && deadline_passed(deadline))
				return ETIMEDOUT;
			block(w, deadline);
			took_batch = true;
			if (list_empty(&w->batch))
				continue;
		}
		ev = worker__next(w);
		worker__dispatch(w, ev);
		if (wait_matches(wt, ev))
			return found(w, wt, ev);
		settle(w, ev);
	}
}

/*
 * Runs w's loop until wt is satisfied (0), its timeout passes (ETIMEDOUT)
 * or the wait is cancelled (ECANCELED: a stopped root, or a worker that is
 * ending).  A started worker that handles STOP_THREAD unwinds from here.
 */
int
worker__loop(worker_t *w, struct worker__wait *wt)
{
	int rc = loop_run(w, wt);

	/* Senders of the events handled need not wait for the next wait. */
	worker__unref_flush(w);
	return rc;
}

static int
is_resume(const worker_event_t *ev, void *ctx)
{
	(void)ctx;
	return container_of(ev, struct wevent, pub)->kind == KIND_RESUME;
}

static void
pause_action(worker_t *w)
{
	struct worker__wait wt = { .match = is_resume, .timeout = -1 };

	if (w->ending || atomic_load_explicit(&w->paused,
	    memory_order_relaxed))
		return;
	atomic_store_explicit(&w->paused, 1, memory_order_relaxed);
	/* A stopped root leaves the pause; its outer wait must see it too. */
	if (worker__loop(w, &wt) == ECANCELED && !w->ending)
		w->canceled = true;
	atomic_store_explicit(&w->paused, 0, memory_order_relaxed);
}

/*
 * A STOP_THREAD handled while the listeners of an earlier one still run
 * (one of them waits, say to finish an orderly shutdown) does not cut that
 * shutdown short: the earlier stop unwinds when its listeners are done.
 */
static void
stop_action(worker_t *w)
{
	if (w->ending || (!w->is_root && w->stopping > 1))
		return;
	if (w->is_root) {
		w->canceled = true;
		worker__stop_children(w);
		return;
	}
	worker__throw(w, OUTCOME_STOP);
}

/* The built-in listener of ev, run after the user's listeners. */
void
worker__builtin(worker_t *w, struct wevent *ev)
{
	const worker_execute_t *x;

	switch (ev->kind) {
	case KIND_STOP:
		stop_action(w);
		break;
	case KIND_PAUSE:
		pause_action(w);
		break;
	case KIND_EXECUTE:
		if ((x = ev->pub.data) != NULL && x->fn != NULL)
			x->fn(x->arg);
		break;
	default:
		break;
	}
}

static void
drain_one(void *ev)
{
	worker__dispatch(worker__get_current(), ev);
}

/*
 * End sequence: hands the events still queued to the listeners.  The
 * queue is closed, so one batch is all there is.  A listener that exits
 * only ends its own call: each event runs under its own frame.
 */
void
worker__drain(worker_t *w)
{
	struct wevent *ev;

	w->ending = true;
	w->stopping = 0;
	release_held(w);
	worker__drop_events(&w->cache);
	worker__take_batch(w);
	while ((ev = worker__next(w)) != NULL)
		if (worker__protect(w, drain_one, ev) == OUTCOME_DONE)
			worker__event_free(ev);
	atomic_store(&w->paused, 0);
	w->canceled = false;
}

/* ---- The public waits ----------------------------------------------- */

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
wait_for(int (*match)(const worker_event_t *, void *), void *ctx,
    double timeout, void **data)
{
	struct worker__wait wt = {
		.match = match, .match_ctx = ctx, .timeout = timeout
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
	return wait_for(match_name, &m, timeout, data);
}

int
worker_wait_until(int (*cond)(const worker_event_t *ev, void *ctx),
    void *ctx, double timeout, void **data)
{
	if (cond == NULL)
		return EINVAL;
	return wait_for(cond, ctx, timeout, data);
}

int
worker_sleep(double seconds)
{
	int rc;

	if (isnan(seconds) || seconds < 0)
		return EINVAL;
	rc = wait_for(NULL, NULL, seconds, NULL);
	return rc == ETIMEDOUT ? 0 : rc;
}

void
worker_wait_forever(void)
{
	wait_for(NULL, NULL, -1, NULL);
}

int
worker_update(void)
{
	worker_t *w = worker__current();
	int count;

	if (w == NULL || w->ending)
		return 0;
	release_held(w);
	worker__fd_clear(w);
	count = worker__timers_run(w);
	count += worker__watches_run(w, false, 0);
	count += handle_queued(w);
	worker__unref_flush(w);
	worker__fd_rearm(w);
	return count;
}
