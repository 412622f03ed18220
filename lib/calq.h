/*
 * calq.h - the timers' queue (calq.c): nodes kept in key order, as
 * heap.h keeps them, at a cost per node that does not grow with their
 * number.
 *
 * DESIGN: see calq.c.  The queue locks nothing: its owner (timer.c)
 * says which lock guards it.
 */
#ifndef WORKER_CALQ_H
#define WORKER_CALQ_H

#include <stddef.h>
#include <stdint.h>

#include "heap.h"

/* The span of a bucket: 2^17 ns, 131 us. */
#define CALQ_SPAN_SHIFT 17

/*
 * The size of the struct that embeds a calq_node (at its start): a pull
 * fetches all of it ahead (calq.c).  The timers' (timer.c) is 88 bytes,
 * which lie across two or three cache lines.
 */
#define CALQ_NODE_BYTES 96

/* A bucket: the nodes of one span, in no order (calq.c). */
struct calq_bucket {
	struct heap_node hn;		/* key: its span's start; seq: span */
	struct heap_node **v;		/* its nodes */
	size_t n;
	size_t cap;
	struct calq_bucket *next;	/* in the table's chain */
};

/* A node of the queue; hn.key and hn.seq order it, as in heap.h. */
struct calq_node {
	struct heap_node hn;		/* hn.index: in ready, or in bucket */
	struct calq_bucket *bucket;	/* NULL: in the ready heap */
};

struct calq {
	struct heap ready;		/* nodes, by key */
	struct heap spans;		/* buckets, by their span's start */
	struct calq_bucket **table;	/* buckets by span, hashed */
	size_t table_size;
	size_t nbuckets;
	struct calq_bucket *spare;	/* empty buckets, kept for reuse */
	uint64_t horizon;		/* keys below it go straight to ready */
	size_t count;			/* nodes in the queue */
};

/* Makes room for n nodes in all; 0: then inserts up to n cannot fail. */
static inline int
worker__calq_reserve(struct calq *q, size_t n)
{
	return worker__heap_reserve(&q->ready, n);
}

/* Appends n to b, which has room. */
static inline void
worker__calq_bucket_append(struct calq_bucket *b, struct calq_node *n)
{
	n->bucket = b;
	n->hn.index = b->n;
	b->v[b->n++] = &n->hn;
}

/* worker__calq_insert() but for its common case. */
void worker__calq_insert_slow(struct calq *q, struct calq_node *n);

/*
 * Adds n (its key and seq set); the room must have been reserved.  Inline
 * for the common case: n goes to a bucket that exists and has room.
 */
static inline void
worker__calq_insert(struct calq *q, struct calq_node *n)
{
	uint64_t span = n->hn.key >> CALQ_SPAN_SHIFT;
	struct calq_bucket *b;

	if (n->hn.key >= q->horizon && q->table_size != 0) {
		for (b = q->table[span & (q->table_size - 1)]; b != NULL;
		    b = b->next) {
			if (b->hn.seq != span)
				continue;
			if (b->n == b->cap)
				break;
			worker__calq_bucket_append(b, n);
			q->count++;
			return;
		}
	}
	worker__calq_insert_slow(q, n);
}
/* Takes n, which is in q, out of it. */
void worker__calq_remove(struct calq *q, struct calq_node *n);
/*
 * Gives n, which is in q, the key and seq given: where its bucket's span
 * holds the new key, it stays in place (an idle timeout moved on every
 * event mostly does), else it is taken out and put back.
 */
void worker__calq_move(struct calq *q, struct calq_node *n, uint64_t key,
    uint64_t seq);
/* Takes out and returns the first node if its key is at most now. */
struct calq_node *worker__calq_pop(struct calq *q, uint64_t now);
/* No node's key is below this; UINT64_MAX when q is empty. */
uint64_t worker__calq_next(const struct calq *q);
/* Frees what q holds but its nodes, and empties it. */
void worker__calq_fini(struct calq *q);

#endif
