/*
 * pool.c - the memory of events: where a queued event's node comes from,
 * and where it goes once its worker has handled it.
 *
 * DESIGN
 *
 * A steady stream of events from one thread to another would pay a
 * malloc() in the producer and a free() in the consumer per event, and
 * glibc gives a block freed by another thread back to its arena under
 * that arena's lock: in a 1->1 stream that was a third of the time.  So
 * the nodes of events with names up to POOL_NAME_MAX bytes are recycled:
 *
 *   - the owner of a worker, done with an event, pushes its node on
 *     w->spare, a lock-free stack (one CAS);
 *   - a thread that fires at w and has no node of its own takes the whole
 *     of w->spare with one exchange into its thread-local cache, and then
 *     takes nodes from there with no atomic operation at all.
 *
 * Nodes leave the stack only all at once, so it has no ABA problem.  Both
 * stores are bounded by POOL_MAX nodes: the owner counts the nodes it
 * pushed since it last saw the stack empty, which is never less than what
 * the stack holds, and a thread refills its cache only when it is empty.
 * A worker's spare nodes are freed with the worker; a thread's cache when
 * the thread leaves libworker (its worker's run ends, or the key
 * destructor of a foreign thread's root runs).
 *
 * The owner also drops the sender references of the events it handled in
 * bulk: consecutive events from one sender cost one atomic operation on
 * that sender's count instead of one each, so producer and consumer do
 * not fight over the cache line of the producer's reference count.  The
 * debt is paid before the owner takes its next batch, sleeps, or leaves
 * its loop.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
	POOL_NAME_MAX = 47,	/* longest name a recycled node holds */
	POOL_MAX = 64		/* nodes in a stack or a thread's cache */
};

static __thread struct wevent *tls_nodes;

static size_t
node_size(size_t name_len)
{
	return sizeof(struct wevent) + name_len + 1;
}

static void
free_chain(struct wevent *ev)
{
	while (ev != NULL) {
		struct wevent *next = ev->spare_next;

		free(ev);
		ev = next;
	}
}

/* A node for an event named with len bytes, aimed at target. */
struct wevent *
worker__event_alloc(worker_t *target, size_t len)
{
	struct wevent *ev;

	if (len > POOL_NAME_MAX) {
		if ((ev = malloc(node_size(len))) != NULL)
			ev->pooled = false;
		return ev;
	}
	if (tls_nodes == NULL && atomic_load_explicit(&target->spare,
	    memory_order_relaxed) != NULL)
		tls_nodes = atomic_exchange_explicit(&target->spare, NULL,
		    memory_order_acquire);
	if ((ev = tls_nodes) != NULL) {
		tls_nodes = ev->spare_next;
		return ev;
	}
	if ((ev = malloc(node_size(POOL_NAME_MAX))) != NULL)
		ev->pooled = true;
	return ev;
}

/* Owner of w: keeps the node of a handled event for w's producers. */
static void
recycle(worker_t *w, struct wevent *ev)
{
	struct wevent *head;

	if (!ev->pooled || w->spare_pushed >= POOL_MAX) {
		free(ev);
		/* A full stack that was emptied meanwhile takes nodes again. */
		if (atomic_load_explicit(&w->spare, memory_order_relaxed) ==
		    NULL)
			w->spare_pushed = 0;
		return;
	}
	head = atomic_load_explicit(&w->spare, memory_order_relaxed);
	do
		ev->spare_next = head;
	while (!atomic_compare_exchange_weak_explicit(&w->spare, &head, ev,
	    memory_order_release, memory_order_relaxed));
	w->spare_pushed = head == NULL ? 1 : w->spare_pushed + 1;
}

/* Owner of w: one reference of source, dropped in bulk later. */
static void
unref_later(worker_t *w, worker_t *source)
{
	if (source != w->unref_source) {
		worker__unref_flush(w);
		w->unref_source = source;
	}
	w->unref_count++;
}

/* Owner of w: drops the sender references that unref_later() kept. */
void
worker__unref_flush(worker_t *w)
{
	if (w->unref_count == 0)
		return;
	worker__unref_many(w->unref_source, w->unref_count);
	w->unref_source = NULL;
	w->unref_count = 0;
}

/* Owner of w, in w's thread: frees an event that w has handled. */
void
worker__event_done(worker_t *w, struct wevent *ev)
{
	worker__payload_put(ev->payload);
	if (ev->pub.source != NULL)
		unref_later(w, ev->pub.source);
	recycle(w, ev);
}

/* The worker is being freed: so are its spare nodes. */
void
worker__pool_free(worker_t *w)
{
	free_chain(atomic_exchange(&w->spare, NULL));
}

/* The calling thread leaves libworker: its cached nodes are freed. */
void
worker__pool_thread_exit(void)
{
	free_chain(tls_nodes);
	tls_nodes = NULL;
}
