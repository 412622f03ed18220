/*
 * pool.c - the memory and the references of events: where an event's node
 * comes from, where it goes once its worker has handled it, and how the
 * reference an event holds on its sender is paid.
 *
 * DESIGN
 *
 * Nodes.  Events that come through a worker's ring (ring.c) are copied
 * into nodes that the owner takes from its own cache, w->nodes, and gives
 * back to it when it has handled them: a stream of events reuses the same
 * few nodes, hot in the owner's cache, with no atomic operation and no
 * malloc().  Only nodes with room for POOL_NAME_MAX bytes of name are
 * kept, at most POOL_MAX of them; the cache is freed with the worker.
 * Producers on the locked path allocate their node with malloc(), of the
 * pool's size when the name fits, so the owner can keep those too.
 *
 * Sender references.  An event holds a reference on its source.  A thread
 * sending as its own worker (the common case: worker_fire() from a task
 * or a listener) takes them PREPAY at a time with one atomic addition and
 * spends them one by one in w->prepaid, which only the thread running w
 * touches; what is left is given back when the run ends.  The owner of
 * the receiving worker drops them in bulk: consecutive events from one
 * sender cost one atomic subtraction.  So the sender's reference count is
 * not a cache line that producer and consumer fight over per event.  The
 * owner's debt is paid before it takes its next batch from the locked
 * queue, sleeps, or leaves its loop.
 */
#include <stdlib.h>

#include "internal.h"

enum {
	POOL_NAME_MAX = 47,	/* longest name a kept node holds */
	POOL_MAX = 64,		/* nodes in a worker's cache */
	PREPAY = 64		/* sender references taken at once */
};

static size_t
node_size(size_t name_len)
{
	return sizeof(struct wevent) + name_len + 1;
}

/* A node for an event named with len bytes (the locked path). */
struct wevent *
worker__event_alloc(size_t len)
{
	bool pooled = len <= POOL_NAME_MAX;
	struct wevent *ev = malloc(node_size(pooled ? POOL_NAME_MAX : len));

	if (ev != NULL)
		ev->pooled = pooled;
	return ev;
}

/* Owner of w: a node of the pool's size, from w's cache if it has one. */
struct wevent *
worker__event_node(worker_t *w)
{
	struct wevent *ev = w->nodes;

	if (ev != NULL) {
		w->nodes = ev->spare_next;
		w->nnodes--;
		return ev;
	}
	return worker__event_alloc(POOL_NAME_MAX);
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
	if (ev->payload != NULL)
		worker__payload_put(ev->payload);
	if (ev->pub.source != NULL)
		unref_later(w, ev->pub.source);
	if (!ev->pooled || w->nnodes >= POOL_MAX) {
		free(ev);
		return;
	}
	ev->spare_next = w->nodes;
	w->nodes = ev;
	w->nnodes++;
}

/* The worker is being freed: so is its cache of nodes. */
void
worker__pool_free(worker_t *w)
{
	while (w->nodes != NULL) {
		struct wevent *next = w->nodes->spare_next;

		free(w->nodes);
		w->nodes = next;
	}
	w->nnodes = 0;
}

/* The reference an event sent by source holds on it (may be NULL). */
worker_t *
worker__source_ref(worker_t *source)
{
	if (source == NULL || source != worker__get_current())
		return worker_ref(source);
	if (source->prepaid == 0) {
		atomic_fetch_add_explicit(&source->refs, PREPAY,
		    memory_order_relaxed);
		source->prepaid = PREPAY;
	}
	source->prepaid--;
	return source;
}

/* The thread running w is done sending as w: gives back what is left. */
void
worker__source_settle(worker_t *w)
{
	unsigned n = w->prepaid;

	w->prepaid = 0;
	if (n != 0)
		worker__unref_many(w, n);
}
