/*
 * queue.c - the locked queue: the way into a worker for every event the
 * ring (ring.c) does not carry.
 *
 * DESIGN
 *
 * Producers append to w->queue.events under w->qlock; the owner moves the
 * whole queue into its batch (send.c) in one splice: one lock acquisition
 * per batch, not per event.  admitted counts the events ever queued here,
 * with one writer at a time (under qlock), so that the owner can tell
 * without the lock whether anything came since its last take, and
 * worker__queued() can count what waits.  Which events come here, and who
 * is woken, is send.c's business.
 *
 * Locks: qlock, but for spliced (owner) and reads of admitted.
 */
#include "internal.h"

void
worker__queue_init(struct worker__queue_part *q, size_t max)
{
	list_init(&q->events);
	q->max = max;
	atomic_init(&q->admitted, 0);
	q->spliced = 0;
}

/* The worker is freed: so is what it never handled. */
void
worker__queue_fini(struct worker__queue_part *q)
{
	worker__drop_events(&q->events);
}

void
worker__queue_append_locked(worker_t *w, struct wevent *ev)
{
	list_append(&w->queue.events, &ev->link);
	worker__count(&w->queue.admitted);
}

/* Owner, qlock held: moves the queue to the end of into. */
void
worker__queue_take_locked(worker_t *w, list_t *into)
{
	list_splice_tail(into, &w->queue.events);
	w->queue.spliced = atomic_load_explicit(&w->queue.admitted,
	    memory_order_relaxed);
}

bool
worker__queue_empty_locked(const worker_t *w)
{
	return list_empty(&w->queue.events);
}

/* Owner, without a lock: has anything been queued since the last take? */
bool
worker__queue_changed(const worker_t *w)
{
	return atomic_load_explicit(&w->queue.admitted,
	    memory_order_relaxed) != w->queue.spliced;
}
