/*
 * loop.c - the breakpoints: the loop every wait runs, PAUSE_THREAD's
 * nested loop, worker_update(), and the last round of the end sequence.
 *
 * DESIGN
 *
 * Every wait is one call of worker__loop() on the calling thread's worker.
 * The loop handles the batch (send.c) event by event, then the events of
 * an open ring, each popped into an event on the loop's own stack (no
 * node, no list: the common case of a stream), checks what the wait is
 * waiting for after each, runs the due timers (timer.c) and the ready
 * descriptors (watch.c) between batches, at least every POP_ROUND events
 * of the ring, and sleeps (wake.c) when nothing is queued, until an
 * event, a wake (another worker's state changed), the nearest timer or
 * the deadline.  Deadlines use CLOCK_MONOTONIC.  A wait that may not
 * block (timeout 0, worker_update) handles what is queued when it starts,
 * no more: of the ring, the events published then (take_now).
 *
 * Pause is a nested loop that waits for RESUME_THREAD.  While it runs,
 * the events it hands to listeners are also kept, in order, in the pause
 * cache; the outer wait reads the cache first when the pause is over, so it
 * does not miss an event that came during the pause.
 *
 * The data a wait returns may have a destructor (worker_fire_ex).  The
 * worker then keeps a reference on that payload in w->loop.held until its
 * next breakpoint, so the data stays valid after the wait returns.  Only the
 * payload is kept, not the event: an event holds its sender, and a wait
 * must not keep a finished sender and its parents alive.
 *
 * All the state here is the owner thread's: no lock but the queue's.
 */
#include <assert.h>
#include <errno.h>

#include "internal.h"

void
worker__loop_init(struct worker__loop_part *lp)
{
	list_init(&lp->cache);
	lp->held = NULL;
	atomic_init(&lp->paused, 0);
	lp->depth = 0;
}

void
worker__loop_fini(worker_t *w)
{
	worker__drop_events(&w->loop.cache);
	worker__payload_put(w->loop.held);
	w->loop.held = NULL;
}

/*
 * Owner, qlock held, nothing queued: sleeps until until, on the ring slot
 * it waits for if the ring is open (ring.c), else on its own word.
 */
static int
sleep_until(worker_t *w, uint64_t until)
{
	bool published;
	unsigned val = 0;
	atomic_uint *word = worker__ring_mark_locked(w, &val, &published);

	if (published)
		return 0;
	return worker__sleep_locked(w, word, val, until);
}

/*
 * Takes the queued events into the batch (or leaves them in an open ring
 * for worker__next), first sleeping until there are some, the worker is
 * woken, its nearest timer is due, or deadline passes (CLOCK_MONOTONIC
 * ns; UINT64_MAX: none).  A timer scheduled meanwhile from another
 * thread wakes the owner, and the next round sleeps for the new nearest
 * deadline.  One lock for the look, the sleep and the take: this is the
 * path of every event that wakes a worker.
 */
static void
block(worker_t *w, uint64_t deadline)
{
	uint64_t due = atomic_load_explicit(&w->wake.next_due,
	    memory_order_relaxed);

	worker__unref_flush(w);
	/* A worker with descriptors sleeps in ppoll() instead (watch.c). */
	if (atomic_load_explicit(&w->watches.count,
	    memory_order_relaxed) > 0) {
		worker__watches_run(w, true, due < deadline ? due : deadline);
		worker__take_batch(w);
		return;
	}
	/* Producers may have the slots taken so far while it looks, and a
	 * ring too small for them a bigger one. */
	worker__ring_free(w);
	worker__grow_ring(w);
	if (!list_empty(&w->inbox.batch))
		return;
	worker__spin(w, due < deadline ? due : deadline, worker__has_queued);
	/* The common case of a stream: the ring has more, no lock. */
	if (worker__ring_open(w) && worker__ring_ready(w)) {
		worker__stats_queued(w, worker__queued);
		return;
	}
	pthread_mutex_lock(&w->qlock);
	while (!worker__pending_locked(w) && !w->wake.woken) {
		uint64_t until = atomic_load_explicit(&w->wake.next_due,
		    memory_order_relaxed);

		if (deadline < until)
			until = deadline;
		if (until != UINT64_MAX && worker__now_ns() >= until)
			break;
		if (sleep_until(w, until) == ETIMEDOUT)
			break;
	}
	w->wake.woken = false;
	worker__take_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

static void
release_held(worker_t *w)
{
	worker__payload_put(w->loop.held);
	w->loop.held = NULL;
}

static int
found(worker_t *w, struct worker__wait *wt, struct wevent *ev)
{
	release_held(w);
	w->loop.held = ev->payload;
	worker__payload_hold(w->loop.held);
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

/*
 * Is this loop inside the one where w waits for its children to end
 * (end.c)?  A listener or callback that waits there would hold w's end
 * for good, since every further stop is redundant: its wait ends at once
 * instead, as in a worker that ends.
 */
static bool
nested_in_ending(const worker_t *w)
{
	return w->control.ending_loop != 0 &&
	    w->loop.depth > w->control.ending_loop;
}

/* Events a loop pops from the ring between two looks at its timers. */
enum { POP_ROUND = 64 };

static void
room_init(union worker__event_room *room)
{
	room->ev.home = NULL;
	room->ev.pooled = false;
	room->ev.local = true;
}

/*
 * A look that may not block: takes what came by the locked path, and
 * returns the start value of a count of ring pops (next_event) that lets
 * it pop what the ring holds now, at most one round, and no event that
 * comes later: what a listener fires meanwhile waits for the next look.
 */
static int
take_now(worker_t *w)
{
	worker__take_batch(w);
	return POP_ROUND - (int)worker__ring_published(w, POP_ROUND);
}

/*
 * The next event for a loop: from the batch, else from the ring into
 * room, or, while paused, into nodes at the end of the batch, since the
 * pause cache keeps what is handled then (settle).  No more from the ring
 * once *popped reaches POP_ROUND.
 */
static struct wevent *
next_event(worker_t *w, union worker__event_room *room, int *popped)
{
	struct wevent *ev;

	if (*popped >= POP_ROUND || !list_empty(&w->inbox.batch))
		return worker__next(w, NULL);
	if (atomic_load_explicit(&w->loop.paused, memory_order_relaxed)) {
		*popped += (int)worker__top_up(w);
		return worker__next(w, NULL);
	}
	if ((ev = worker__next(w, &room->ev)) != NULL)
		(*popped)++;
	return ev;
}

/* A handled event nobody waited for: keep it if a pause may need it. */
static void
settle(worker_t *w, struct wevent *ev)
{
	if (atomic_load_explicit(&w->loop.paused, memory_order_relaxed) &&
	    ev->kind != KIND_RESUME) {
		/* Not popped into a loop's stack while paused (next_event). */
		assert(!ev->local);
		list_append(&w->loop.cache, &ev->link);
	} else {
		worker__event_done(w, ev);
	}
}

static struct wevent *
cache_pop(worker_t *w)
{
	struct list_node *n;

	if (atomic_load_explicit(&w->loop.paused, memory_order_relaxed))
		return NULL;
	n = list_pop(&w->loop.cache);
	return n != NULL ? container_of(n, struct wevent, link) : NULL;
}

static int
is_resume(const worker_event_t *ev, void *ctx)
{
	(void)ctx;
	return container_of(ev, struct wevent, pub)->kind == KIND_RESUME;
}

/* PAUSE_THREAD's action: a nested loop until RESUME_THREAD. */
static void
pause_action(worker_t *w)
{
	struct worker__wait wt = { .call = WAIT_CALL_PAUSE,
	    .match = is_resume, .timeout = -1 };

	/* A worker that is stopping or ending does not pause: nothing but
	 * a RESUME could then end its stop. */
	if (w->control.ending || w->control.stopping > 0 ||
	    w->unwind.leaving || atomic_load_explicit(&w->loop.paused,
	    memory_order_relaxed))
		return;
	atomic_store_explicit(&w->loop.paused, 1, memory_order_relaxed);
	/* A stopped root leaves the pause; its outer wait must see it too. */
	if (worker__loop(w, &wt) == ECANCELED && !w->control.ending)
		w->control.canceled = true;
	atomic_store_explicit(&w->loop.paused, 0, memory_order_relaxed);
}

static void
event_unwound(void *ev)
{
	worker__event_free(NULL, ev);
}

/*
 * Hands ev to the listeners and the built-in actions.  Either returns with
 * ev still owned by the caller, or unwinds with ev freed.
 */
static inline __attribute__((always_inline)) void
handle(worker_t *w, struct wevent *ev)
{
	struct worker__hook hook;

	worker__stats_handing(w);
	worker__dispatch(w, ev);
	worker__stats_handed(w);
	if (ev->kind != KIND_PAUSE)
		return;
	worker__hook_push(w, &hook, event_unwound, ev);
	pause_action(w);
	worker__hook_pop(w, &hook);
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
	union worker__event_room room;
	struct wevent *ev;
	int count = 0, popped;

	room_init(&room);
	popped = take_now(w);
	while ((ev = next_event(w, &room, &popped)) != NULL) {
		handle(w, ev);
		settle(w, ev);
		count++;
	}
	return count;
}

/*
 * The loop of a wait.  Events come from the batch first, then from the
 * ring, POP_ROUND at most between two rounds of timers and descriptors,
 * which are served at least once per batch.
 */
static int
loop_run(worker_t *w, struct worker__wait *wt)
{
	uint64_t deadline = wt->timeout >= 0 ?
	    worker__deadline_ns(wt->timeout) : UINT64_MAX;
	bool took_batch = false;
	union worker__event_room room;
	struct wevent *ev;
	int popped = 0;

	room_init(&room);
	release_held(w);
	/* A wait that may not block handles what is queued now, no more. */
	if (wt->timeout == 0) {
		popped = take_now(w);
		took_batch = true;
	}
	for (;;) {
		if (w->control.ending || worker__stop_seen(w) ||
		    nested_in_ending(w))
			return ECANCELED;
		if ((ev = cache_pop(w)) != NULL) {
			if (wait_matches(wt, ev))
				return found(w, wt, ev);
			worker__event_free(w, ev);
			continue;
		}
		if (wait_done(wt)) {
			handle_queued(w);
			return 0;
		}
		ev = next_event(w, &room, &popped);
		if (ev == NULL) {
			/* Timers and descriptors are served between batches;
			 * either may end the wait.  Not listeners' time. */
			int ran;

			worker__stats_span_end(w);
			ran = worker__timers_run(w);

			ran += worker__watches_run(w, false, 0);
			if (ran > 0 && wait_done(wt)) {
				handle_queued(w);
				return 0;
			}
			/* Past the deadline: end the batch taken, no more. */
			if (took_batch && deadline_passed(deadline))
				return ETIMEDOUT;
			if (popped == 0 || !worker__ring_ready(w))
				block(w, deadline);
			took_batch = true;
			popped = 0;
			continue;
		}
		handle(w, ev);
		if (wait_matches(wt, ev))
			return found(w, wt, ev);
		settle(w, ev);
	}
}

/* A loop under way: what its unwinding must put back. */
struct loop_frame {
	worker_t *w;
	unsigned doing;		/* what the owner did before the loop */
};

static void
loop_unwound(void *arg)
{
	struct loop_frame *f = arg;

	f->w->loop.depth--;
	worker__doing_restore(f->w, f->doing);
}

/*
 * Runs w's loop until wt is satisfied (0), its timeout passes (ETIMEDOUT)
 * or the wait is cancelled (ECANCELED: a stopped root, or a worker that is
 * ending).  A started worker that handles STOP_THREAD unwinds from here.
 * A loop inside LOOP_DEPTH_MAX others returns ELOOP at once: each level
 * costs stack, and nothing but a runaway chain of waits goes that deep.
 */
/* One more loop inside the others: false past LOOP_DEPTH_MAX. */
static bool
loop_enter(worker_t *w, struct loop_frame *f, struct worker__hook *hook,
    unsigned call)
{
	if (w->loop.depth >= LOOP_DEPTH_MAX)
		return false;
	w->loop.depth++;
	f->w = w;
	f->doing = worker__doing(w, atomic_load_explicit(&w->loop.paused,
	    memory_order_relaxed) ? DOING_PAUSED : DOING_WAIT, call);
	worker__hook_push(w, hook, loop_unwound, f);
	return true;
}

static void
loop_leave(worker_t *w, struct loop_frame *f, struct worker__hook *hook)
{
	worker__hook_pop(w, hook);
	w->loop.depth--;
	worker__doing_restore(w, f->doing);
	/* Back to a listener, whose time goes on, or to the task. */
	worker__stats_span_end(w);
	if (w->listen.depth > 0)
		worker__stats_span_begin(w);
	else
		worker__stats_busy(w);
}

int
worker__loop(worker_t *w, struct worker__wait *wt)
{
	struct worker__hook hook;
	struct loop_frame f;
	int rc;

	if (!loop_enter(w, &f, &hook, wt->call))
		return ELOOP;
	rc = loop_run(w, wt);
	loop_leave(w, &f, &hook);
	/* Senders of the events handled need not wait for the next wait. */
	worker__unref_flush(w);
	return rc;
}

static void
drain_one(void *ev)
{
	worker__dispatch(worker__get_current(), ev);
}

/*
 * Hands one event of the end sequence to the listeners, in a frame of its
 * own: a listener that exits only ends its own call.  Handlers a listener
 * left pushed run when its call is over, as a task's do when it returns.
 */
static void
drain_event(worker_t *w, struct wevent *ev)
{
	size_t before = w->unwind.ncleanup;

	worker__stats_handing(w);
	if (worker__protect(w, drain_one, ev, NULL) == OUTCOME_DONE) {
		worker__stats_handed(w);
		worker__event_free(w, ev);
		worker__run_cleanups(w, before);
	}
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

	w->control.ending = true;
	w->control.stopping = 0;
	release_held(w);
	worker__drop_events(&w->loop.cache);
	/* One take is all there is, unless memory ran short for it.  The
	 * ring is locked: everything comes through the batch. */
	do {
		worker__take_batch(w);
		while ((ev = worker__next(w, NULL)) != NULL)
			drain_event(w, ev);
	} while (worker__pending(w));
	worker__stats_span_end(w);
	atomic_store(&w->loop.paused, 0);
	w->control.canceled = false;
}

/*
 * worker_update(): handles what is queued and due now, without blocking;
 * returns how many events, timers and callbacks ran.  It counts as a
 * loop: past LOOP_DEPTH_MAX it handles nothing.
 */
int
worker__update(worker_t *w)
{
	struct worker__hook hook;
	struct loop_frame f;
	int count;

	if (w->control.ending || !loop_enter(w, &f, &hook, WAIT_CALL_UPDATE))
		return 0;
	release_held(w);
	worker__fd_clear(w);
	count = worker__timers_run(w);
	count += worker__watches_run(w, false, 0);
	count += handle_queued(w);
	loop_leave(w, &f, &hook);
	worker__unref_flush(w);
	worker__fd_rearm(w);
	return count;
}

