/*
 * event.c - an event and its payload: the node that carries one copy of
 * a fire, the payload its copies share, where nodes come from and go
 * back to, the reference an event holds on its sender, and the one
 * function that frees an event.
 *
 * DESIGN
 *
 * Payloads.  An event fired at several workers (bubble, broadcast, a
 * channel) is copied once per target; the copies share one struct
 * payload whose reference count calls the destructor exactly once, when
 * the last copy is freed.  The firing call holds a reference too, so a
 * fire that queued nothing frees the data before it returns.
 *
 * Nodes.  Events that come through a worker's ring (ring.c) are copied
 * into nodes that the owner takes from its own spare nodes, and gives
 * back when it has handled them: a stream of events reuses the same few
 * nodes, hot in the owner's cache, with no atomic operation and no
 * malloc().  Only nodes with room for POOL_NAME_MAX bytes of name are
 * kept, at most POOL_MAX of them.  Producers on the locked path allocate
 * their node with malloc(), of the pool's size when the name fits, so the
 * owner can keep those too.
 *
 * Sender references.  An event holds a reference on its source.  A thread
 * sending as its own worker (the common case: worker_fire() from a task
 * or a listener) takes them PREPAY at a time with one atomic addition and
 * spends them one by one in w->events.prepaid, which only the thread
 * running w touches; what is left is given back when the run ends.  The
 * owner of the receiving worker drops them in bulk: consecutive events
 * from one sender cost one atomic subtraction.  So the sender's reference
 * count is not a cache line that producer and consumer fight over per
 * event.  The owner's debt is paid before it takes its next batch from
 * the locked queue, sleeps, or leaves its loop.
 *
 * Locks: none.  The spare nodes and debts are the owner's.
 */
#include <stdlib.h>

#include "internal.h"

enum {
	POOL_NAME_MAX = 47,	/* longest name a kept node holds */
	POOL_MAX = 64,		/* nodes in a worker's spares */
	PREPAY = 64		/* sender references taken at once */
};

void
worker__events_init(struct worker__event_part *e)
{
	e->nodes = NULL;
	e->nnodes = 0;
	e->prepaid = 0;
	e->unref_source = NULL;
	e->unref_count = 0;
}

/* The worker is being freed: so are its spare nodes. */
void
worker__events_fini(struct worker__event_part *e)
{
	while (e->nodes != NULL) {
		struct wevent *next = e->nodes->spare_next;

		free(e->nodes);
		e->nodes = next;
	}
	e->nnodes = 0;
}

/* ---- Payloads ------------------------------------------------------- */

struct payload *
worker__payload_new(void *data, void (*data_free)(void *))
{
	struct payload *pl = malloc(sizeof(*pl));

	if (pl == NULL)
		return NULL;
	atomic_init(&pl->refs, 1);
	pl->data = data;
	pl->data_free = data_free;
	return pl;
}

void
worker__payload_put(struct payload *pl)
{
	if (pl == NULL || atomic_fetch_sub(&pl->refs, 1) != 1)
		return;
	pl->data_free(pl->data);
	free(pl);
}

/* ---- Nodes ---------------------------------------------------------- */

static size_t
node_size(size_t name_len)
{
	return sizeof(struct wevent) + name_len + 1;
}

/* A node for an event named with len bytes (the locked path). */
static struct wevent *
node_alloc(size_t len)
{
	bool pooled = len <= POOL_NAME_MAX;
	struct wevent *ev = malloc(node_size(pooled ? POOL_NAME_MAX : len));

	if (ev != NULL)
		ev->pooled = pooled;
	return ev;
}

/* Owner of w: a node of the pool's size, from w's spares if it has one. */
struct wevent *
worker__event_node(worker_t *w)
{
	struct wevent *ev = w->events.nodes;

	if (ev != NULL) {
		w->events.nodes = ev->spare_next;
		w->events.nnodes--;
		return ev;
	}
	return node_alloc(POOL_NAME_MAX);
}

/* A new event for the locked path, holding its sender and payload. */
struct wevent *
worker__event_new(worker_t *source, const struct event_name *n, void *data,
    struct payload *pl, unsigned flags)
{
	struct wevent *ev = node_alloc(n->len);

	if (ev == NULL)
		return NULL;
	memcpy(ev->name, n->name, n->len + 1);
	ev->hash = n->hash;
	ev->kind = (uint8_t)n->kind;
	ev->pub.name = ev->name;
	ev->pub.data = data;
	ev->pub.source = worker__source_ref(source);
	ev->pub.flags = flags;
	ev->payload = pl;
	worker__payload_hold(pl);
	return ev;
}

/* Owner of w: one reference of source, dropped in bulk later. */
static void
unref_later(worker_t *w, worker_t *source)
{
	if (source != w->events.unref_source) {
		worker__unref_flush(w);
		w->events.unref_source = source;
	}
	w->events.unref_count++;
}

/* Owner of w: drops the sender references that unref_later() kept. */
void
worker__unref_flush(worker_t *w)
{
	struct worker__event_part *e = &w->events;

	if (e->unref_count == 0)
		return;
	worker__unref_many(e->unref_source, e->unref_count);
	e->unref_source = NULL;
	e->unref_count = 0;
}

/* Gives ev's node to w's spares, or back to malloc(). */
static void
node_done(worker_t *w, struct wevent *ev)
{
	if (!ev->pooled || w->events.nnodes >= POOL_MAX) {
		free(ev);
		return;
	}
	ev->spare_next = w->events.nodes;
	w->events.nodes = ev;
	w->events.nnodes++;
}

/*
 * Frees ev: its payload reference, its sender reference and its node.
 * w is the owner that handled it, on its own thread (the node goes to its
 * spares and the sender reference is dropped in bulk), or NULL anywhere
 * else.
 */
void
worker__event_free(worker_t *w, struct wevent *ev)
{
	/* Most events have no payload: skip the call. */
	if (ev->payload != NULL)
		worker__payload_put(ev->payload);
	if (w == NULL) {
		worker_unref(ev->pub.source);
		free(ev);
		return;
	}
	if (ev->pub.source != NULL)
		unref_later(w, ev->pub.source);
	node_done(w, ev);
}

void
worker__drop_events(list_t *l)
{
	struct list_node *n;

	while ((n = list_pop(l)) != NULL)
		worker__event_free(NULL, container_of(n, struct wevent,
		    link));
}

/* ---- Sender references ---------------------------------------------- */

/* The reference an event sent by source holds on it (may be NULL). */
worker_t *
worker__source_ref(worker_t *source)
{
	if (source == NULL || source != worker__get_current())
		return worker__ref(source);
	if (source->events.prepaid == 0) {
		atomic_fetch_add_explicit(&source->refs, PREPAY,
		    memory_order_relaxed);
		source->events.prepaid = PREPAY;
	}
	source->events.prepaid--;
	return source;
}

/* The thread running w is done sending as w: gives back what is left. */
void
worker__source_settle(worker_t *w)
{
	unsigned n = w->events.prepaid;

	w->events.prepaid = 0;
	if (n != 0)
		worker__unref_many(w, n);
}
