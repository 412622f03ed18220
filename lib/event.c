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
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

enum {
	POOL_NAME_MAX = 47,	/* longest name a kept node holds */
	POOL_MAX = 64,		/* nodes in a worker's spares */
	PREPAY = 64		/* sender references taken at once */
};

static size_t
node_size(size_t name_len)
{
	return sizeof(struct wevent) + name_len + 1;
}

/*
 * The reserved nodes of w, in one block: what a stop, the notices to the
 * parent and the owner's take of a ring slot use when malloc() fails.
 * ENOMEM if the block cannot be had: then w is not made at all.
 */
int
worker__events_init(struct worker__event_part *e, worker_t *w)
{
	size_t size = node_size(POOL_NAME_MAX);
	char *block = calloc(RESERVE_NODES, size);

	e->nodes = NULL;
	e->nnodes = 0;
	e->prepaid = 0;
	e->unref_source = NULL;
	e->unref_count = 0;
	e->reserve_block = block;
	if (block == NULL)
		return ENOMEM;
	for (unsigned i = 0; i < RESERVE_NODES; i++) {
		struct wevent *ev = (struct wevent *)(void *)(block +
		    i * size);

		ev->home = w;
		ev->reserve = (uint8_t)i;
		atomic_init(&e->reserve[i], ev);
	}
	return 0;
}

/*
 * The worker is being freed: so are its spare nodes, and its reserved
 * nodes, which are all back home by now (each one queued holds w).
 */
void
worker__events_fini(struct worker__event_part *e)
{
	while (e->nodes != NULL) {
		struct wevent *next = e->nodes->spare_next;

		free(e->nodes);
		e->nodes = next;
	}
	e->nnodes = 0;
	free(e->reserve_block);
	e->reserve_block = NULL;
}

/* Takes reserved node i of w, or NULL if it is out already. */
static struct wevent *
reserve_take(worker_t *w, unsigned i)
{
	return atomic_exchange(&w->events.reserve[i], NULL);
}

/* A reserved node was freed: back to its worker. */
static void
reserve_put(struct wevent *ev)
{
	atomic_store(&ev->home->events.reserve[ev->reserve], ev);
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

/* A node for an event named with len bytes (the locked path). */
static struct wevent *
node_alloc(size_t len)
{
	bool pooled = len <= POOL_NAME_MAX;
	struct wevent *ev = malloc(node_size(pooled ? POOL_NAME_MAX : len));

	if (ev != NULL) {
		ev->pooled = pooled;
		ev->local = false;
		ev->home = NULL;
	}
	return ev;
}

/*
 * Owner of w: a node of the pool's size for an event of that kind, from
 * w's spares if it has one, else from malloc(), else reserved.
 */
struct wevent *
worker__event_node(worker_t *w, unsigned kind)
{
	struct wevent *ev = w->events.nodes;

	if (ev != NULL) {
		w->events.nodes = ev->spare_next;
		w->events.nnodes--;
		return ev;
	}
	if ((ev = node_alloc(POOL_NAME_MAX)) != NULL)
		return ev;
	if ((ev = reserve_take(w, RESERVE_TAKE)) == NULL && kind == KIND_STOP)
		ev = reserve_take(w, RESERVE_STOP);
	return ev;
}

/* Fills a node with one copy of an event: it holds its sender and pl. */
static struct wevent *
fill(struct wevent *ev, worker_t *source, const struct event_name *n,
    void *data, struct payload *pl, unsigned flags)
{
	memcpy(ev->name, n->name, n->len + 1);
	ev->hash = n->hash;
	ev->len = n->len < UINT32_MAX ? (uint32_t)n->len : UINT32_MAX;
	ev->kind = (uint8_t)n->kind;
	ev->pub.name = ev->name;
	ev->pub.data = data;
	ev->pub.source = worker__source_ref(source);
	ev->pub.flags = flags;
	ev->payload = pl;
	worker__payload_hold(pl);
	return ev;
}

/* A new event for the locked path. */
struct wevent *
worker__event_new(worker_t *source, const struct event_name *n, void *data,
    struct payload *pl, unsigned flags)
{
	struct wevent *ev = node_alloc(n->len);

	return ev != NULL ? fill(ev, source, n, data, pl, flags) : NULL;
}

/*
 * The same, when malloc() failed, on a reserved node: a STOP_THREAD on
 * one of target's, a CHILD_THREAD_* on one of source's.  NULL if there
 * is none: for a stop, one is queued already, and that one will do.
 */
struct wevent *
worker__event_reserved(worker_t *source, worker_t *target,
    const struct event_name *n, void *data, struct payload *pl,
    unsigned flags)
{
	struct wevent *ev = NULL;

	if (n->len > POOL_NAME_MAX)
		return NULL;
	if (n->kind == KIND_STOP)
		ev = reserve_take(target, RESERVE_STOP);
	else if ((n->kind == KIND_CHILD || n->kind == KIND_CHILD_END) &&
	    source != NULL)
		for (unsigned i = RESERVE_NOTIFY; ev == NULL &&
		    i < RESERVE_NODES; i++)
			ev = reserve_take(source, i);
	return ev != NULL ? fill(ev, source, n, data, pl, flags) : NULL;
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
	if (ev->home != NULL) {
		reserve_put(ev);
		return;
	}
	if (!ev->pooled || w->events.nnodes >= POOL_MAX) {
		free(ev);
		return;
	}
	ev->spare_next = w->events.nodes;
	w->events.nodes = ev;
	w->events.nnodes++;
}

/*
 * Frees ev: its payload reference, its sender reference and its node
 * (none for the owner's copy of a ring slot, which lives on its stack).
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
		worker_t *source = ev->pub.source;

		/* Home first: the source may be home, and this its last
		 * reference. */
		worker__event_node_free(ev);
		worker_unref(source);
		return;
	}
	if (ev->pub.source != NULL)
		unref_later(w, ev->pub.source);
	if (!ev->local)
		node_done(w, ev);
}

/* Frees the node of ev alone: its references went elsewhere. */
void
worker__event_node_free(struct wevent *ev)
{
	if (ev->home != NULL)
		reserve_put(ev);
	else if (!ev->local)
		free(ev);
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

/*
 * The thread running source has spent its prepaid references: takes
 * PREPAY more, of which the caller spends one (worker__source_ref).
 */
worker_t *
worker__source_prepay(worker_t *source)
{
	atomic_fetch_add_explicit(&source->refs, PREPAY,
	    memory_order_relaxed);
	source->events.prepaid = PREPAY - 1;
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
