/*
 * send.c - the way of one copy of an event into a worker, and the owner's
 * batch: which path it takes (the ring or the locked queue), whether it
 * is admitted, who hears of a refusal, and how the owner takes what came.
 *
 * DESIGN
 *
 * An event reaches a worker through its ring (ring.c) when it can, and
 * else through the locked queue (queue.c).  The owner thread moves what
 * came through the locked queue into w->inbox.batch, which only it
 * touches, after what a locked ring holds (what went there went before
 * the locked queue was used), and handles the batch without a lock.
 * Once the batch is empty, it pops the events of an open ring one by one
 * straight into an event on its stack: they all came after the batch.
 * (While it is paused, it moves them to the batch instead, since the
 * pause keeps what it handles: worker__top_up.)  The owner is woken
 * (wake.c) only when it is really asleep, so a busy worker costs its
 * producers no system call.
 *
 * worker__queued() counts events admitted and not yet taken off the
 * batch; it is what queue_max bounds (a worker with queue_max only uses
 * the locked queue).  Built-in control events are always admitted, so a
 * full queue can still be stopped.
 *
 * Locks: qlock for the locked path; the batch is the owner's.
 */
#include <errno.h>

#include "internal.h"

void
worker__inbox_init(struct worker__inbox_part *in)
{
	list_init(&in->batch);
	atomic_init(&in->taken, 0);
}

/* The worker is freed: so is what it took and never handled. */
void
worker__inbox_fini(worker_t *w)
{
	worker__drop_events(&w->inbox.batch);
}

/*
 * Events admitted and not yet taken off the batch.  Two counters, each
 * with one writer, cost the hot paths plain stores where one shared
 * counter would cost both sides an atomic read-modify-write.
 */
size_t
worker__queued(const worker_t *w)
{
	size_t taken = atomic_load_explicit(&w->inbox.taken,
	    memory_order_relaxed);
	size_t admitted = atomic_load_explicit(&w->queue.admitted,
	    memory_order_relaxed) + (size_t)worker__ring_admitted(w);

	/* Read without qlock, admitted may lag behind. */
	return admitted > taken ? admitted - taken : 0;
}

/*
 * Appends ev (named with len bytes) to w's locked queue, or puts it into
 * w's ring if that is open again by now (ring.c), or says why not; wakes
 * w if it sleeps.
 */
static int
enqueue(worker_t *w, struct wevent *ev, size_t len, bool always_admitted)
{
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_RUNNING) {
		pthread_mutex_unlock(&w->qlock);
		return ESRCH;
	}
	if (w->queue.max != 0 && !always_admitted &&
	    worker__queued(w) >= w->queue.max) {
		pthread_mutex_unlock(&w->qlock);
		return EAGAIN;
	}
	if (worker__ring_resend_locked(w, ev, len)) {
		pthread_mutex_unlock(&w->qlock);
		return 0;
	}
	worker__ring_locked_send(w);
	worker__queue_append_locked(w, ev);
	worker__fd_signal_locked(w);
	worker__unlock_and_wake(w);
	return 0;
}

static void
event_free_cb(void *ev)
{
	worker__event_free(NULL, ev);
}

/*
 * Tells a running sender that target refused ev.  The EVENT_REJECT owns
 * the rejected event, so the original payload lives until the sender's
 * listeners have seen it.
 */
static void
reject(worker_t *target, struct wevent *ev)
{
	worker_t *sender = ev->pub.source;
	struct payload *pl;

	if (ev->kind == KIND_REJECT || sender == NULL ||
	    !worker__running(sender) ||
	    (pl = worker__payload_new(ev, event_free_cb)) == NULL) {
		worker__event_free(NULL, ev);
		return;
	}
	worker__send(target, sender, WORKER_EVENT_REJECT, &ev->pub, pl, 0,
	    false);
	worker__payload_put(pl);
}

/*
 * Queues one copy of an event on target: through its ring if it can,
 * else on the locked queue.  With notify, a refusal because target is not
 * running is reported to the source with EVENT_REJECT.
 */
/* The locked path of worker__send(), out of the way of the ring's. */
static __attribute__((noinline)) int
send_locked(worker_t *source, worker_t *target, const struct event_name *n,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	struct wevent *ev;
	int rc;

	if ((ev = worker__event_new(source, n, data, pl, flags)) == NULL &&
	    (ev = worker__event_reserved(source, target, n, data, pl,
	    flags)) == NULL)
		return n->kind == KIND_STOP ? 0 : ENOMEM;
	rc = enqueue(target, ev, n->len, n->always_admitted);
	if (rc != 0)
		worker__stats_rejected(target);
	if (rc == ESRCH && notify)
		reject(target, ev);
	else if (rc != 0)
		worker__event_free(NULL, ev);
	return rc;
}

int
worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	struct event_name n;

	if (worker__gone(target))
		return ESRCH;
	worker__name_init(&n, name);
	PROBE3(fire, source != NULL ? source->name : NULL, target->name,
	    name);
	if (worker__ring_send(source, target, &n, data, pl, flags))
		return 0;
	return send_locked(source, target, &n, data, pl, flags, notify);
}

/* qlock held: is anything queued for the owner to take? */
bool
worker__pending_locked(const worker_t *w)
{
	return !worker__queue_empty_locked(w) ||
	    worker__ring_pending_locked(w);
}

bool
worker__pending(worker_t *w)
{
	bool pending;

	pthread_mutex_lock(&w->qlock);
	pending = worker__pending_locked(w);
	pthread_mutex_unlock(&w->qlock);
	return pending;
}

/* Owner, without a lock: has anything come since the last take? */
bool
worker__has_queued(const worker_t *w)
{
	return worker__ring_ready(w) || worker__queue_changed(w);
}

/* Owner, without a lock: must the next take look under qlock? */
static bool
locked_path_used(const worker_t *w)
{
	return worker__ring_locked(w) || worker__queue_changed(w);
}

/*
 * Owner, qlock held: moves what is queued to the end of the batch.  What
 * is left in the ring (no memory for its nodes) goes before the locked
 * queue: that waits for the next take.
 */
void
worker__take_locked(worker_t *w)
{
	worker__stats_queued(w, worker__queued);
	worker__ring_take_locked(w, &w->inbox.batch);
	if (worker__ring_pending_locked(w))
		return;
	worker__queue_take_locked(w, &w->inbox.batch);
	worker__ring_reopen_locked(w);
}

/*
 * Owner thread: moves what came by the locked path to the end of the
 * batch; an open ring's events stay where they are, for worker__next().
 */
void
worker__take_batch(worker_t *w)
{
	worker__unref_flush(w);
	worker__stats_queued(w, worker__queued);
	/* The locked queue is empty while the ring is open. */
	if (worker__ring_open(w) || !locked_path_used(w))
		return;
	pthread_mutex_lock(&w->qlock);
	worker__take_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

/*
 * Owner thread, between two events: a ring a producer had to wait for
 * room in is replaced by a bigger one (ring.c), and the locked queue
 * taken behind what it held.
 */
void
worker__grow_ring(worker_t *w)
{
	if (!worker__ring_open(w) || !worker__ring_waited(w))
		return;
	pthread_mutex_lock(&w->qlock);
	if (worker__ring_grow_locked(w))
		worker__take_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

/*
 * Owner thread, paused: moves what an open ring holds now to the end of
 * the batch (see DESIGN); returns how many.
 */
size_t
worker__top_up(worker_t *w)
{
	return worker__ring_open(w) ?
	    worker__ring_take(w, &w->inbox.batch) : 0;
}

/*
 * Owner thread: the next event, from the batch, else (local not NULL)
 * from an open ring into *local; NULL if there is none.
 */
struct wevent *
worker__next(worker_t *w, struct wevent *local)
{
	struct list_node *n = list_pop(&w->inbox.batch);
	struct wevent *ev;

	if (n != NULL)
		ev = container_of(n, struct wevent, link);
	else if (local != NULL && worker__ring_pop(w, local))
		ev = local;
	else
		return NULL;
	worker__count(&w->inbox.taken);
	return ev;
}
