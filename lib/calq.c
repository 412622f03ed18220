/*
 * calq.c - the timers' queue: a calendar of buckets in front of a heap.
 *
 * DESIGN
 *
 * A binary heap of every timer costs each insert and each removal a walk
 * of up to log2(n) levels through nodes spread over the whole memory of
 * the timers: at a million timers, a cache miss per level.  Here only the
 * nodes due soon are in a heap (ready); the others wait in buckets, one
 * per span of SPAN ns of keys, in no order: an insert appends to its
 * bucket's array, a removal swaps the last node into its place, both
 * O(1).  A second heap (spans) orders the buckets by the start of their
 * span, and a hash table finds a span's bucket.  When the first bucket's
 * span has begun and comes before the heap's first node, the whole bucket
 * moves into the heap (a pull): each node is moved once or twice in its
 * life, and the heap holds about one span's worth of nodes, hot in the
 * cache.
 *
 * So pops come out in (key, seq) order, as from heap.h: a node in a
 * bucket has a key at least its span's start, and a bucket is pulled
 * before any node of the heap with a key not below that start is popped.
 * Keys below the horizon (the end of the last span pulled) go straight
 * into the heap.
 *
 * Memory: worker__calq_reserve() grows the heap for every node of the
 * queue before they come, so an insert never fails, and neither does a
 * pull: a node whose bucket cannot be made or grown goes into the heap
 * instead, where it is merely less cheap.  An empty bucket leaves the
 * calendar at once, for the spares (with its array, for the next span):
 * a timer moved from span to span, as an idle timeout is, leaves none
 * behind, and the next burst of timers allocates nothing.  The spares go
 * with the queue (worker__calq_fini).
 *
 * Locks: none; the owner of the queue says which lock guards it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "calq.h"
#include "list.h"

#define SPAN_SHIFT CALQ_SPAN_SHIFT

#define bucket_of(h) container_of(h, struct calq_bucket, hn)
#define node_of(h) container_of(h, struct calq_node, hn)

static size_t
slot_of(const struct calq *q, uint64_t span)
{
	return (size_t)span & (q->table_size - 1);
}

/* The table that finds a span's bucket: spans are consecutive numbers,
 * so their low bits are hash enough. */
static void
table_grow(struct calq *q)
{
	size_t size = q->table_size != 0 ? 2 * q->table_size : 64;
	struct calq_bucket **old = q->table;
	size_t old_size = q->table_size;
	struct calq_bucket **t = calloc(size, sizeof(*t));

	/* Without memory, chains only get longer: still correct. */
	if (t == NULL)
		return;
	q->table = t;
	q->table_size = size;
	for (size_t i = 0; i < old_size; i++) {
		struct calq_bucket *b = old[i];

		while (b != NULL) {
			struct calq_bucket *next = b->next;
			size_t s = slot_of(q, b->hn.seq);

			b->next = t[s];
			t[s] = b;
			b = next;
		}
	}
	free(old);
}

static struct calq_bucket *
table_find(const struct calq *q, uint64_t span)
{
	struct calq_bucket *b;

	if (q->table_size == 0)
		return NULL;
	for (b = q->table[slot_of(q, span)]; b != NULL; b = b->next)
		if (b->hn.seq == span)
			return b;
	return NULL;
}

static void
table_remove(struct calq *q, struct calq_bucket *b)
{
	struct calq_bucket **p = &q->table[slot_of(q, b->hn.seq)];

	while (*p != b)
		p = &(*p)->next;
	*p = b->next;
	q->nbuckets--;
}

/* The bucket of span, made if need be; NULL without memory. */
static struct calq_bucket *
bucket_for(struct calq *q, uint64_t span)
{
	struct calq_bucket *b = table_find(q, span);

	if (b != NULL)
		return b;
	if (q->nbuckets >= q->table_size)
		table_grow(q);
	if (q->table_size == 0)
		return NULL;
	if ((b = q->spare) != NULL) {
		q->spare = b->next;
	} else if ((b = malloc(sizeof(*b))) != NULL) {
		b->v = NULL;
		b->cap = 0;
	} else {
		return NULL;
	}
	b->n = 0;
	b->hn.key = span << SPAN_SHIFT;
	b->hn.seq = span;
	if (worker__heap_push(&q->spans, &b->hn) != 0) {
		free(b->v);
		free(b);
		return NULL;
	}
	b->next = q->table[slot_of(q, span)];
	q->table[slot_of(q, span)] = b;
	q->nbuckets++;
	return b;
}

/* b is empty, or was pulled: out of the table and the spans. */
static void
bucket_free(struct calq *q, struct calq_bucket *b)
{
	table_remove(q, b);
	worker__heap_remove(&q->spans, &b->hn);
	b->next = q->spare;
	q->spare = b;
}

/* Appends n to b; false if b's array cannot grow. */
static bool
bucket_add(struct calq_bucket *b, struct calq_node *n)
{
	if (b->n == b->cap) {
		size_t cap = b->cap != 0 ? 2 * b->cap : 16;
		struct heap_node **v = realloc(b->v, cap * sizeof(*v));

		if (v == NULL)
			return false;
		b->v = v;
		b->cap = cap;
	}
	worker__calq_bucket_append(b, n);
	return true;
}


static void
ready_push(struct calq *q, struct calq_node *n)
{
	/* Cannot fail: worker__calq_reserve() made the room. */
	n->bucket = NULL;
	(void)worker__heap_push(&q->ready, &n->hn);
}

void
worker__calq_insert_slow(struct calq *q, struct calq_node *n)
{
	struct calq_bucket *b;

	q->count++;
	if (n->hn.key < q->horizon ||
	    (b = bucket_for(q, n->hn.key >> SPAN_SHIFT)) == NULL ||
	    !bucket_add(b, n))
		ready_push(q, n);
}

void
worker__calq_remove(struct calq *q, struct calq_node *n)
{
	struct calq_bucket *b = n->bucket;

	q->count--;
	if (b == NULL) {
		worker__heap_remove(&q->ready, &n->hn);
		return;
	}
	if (--b->n != n->hn.index) {
		struct heap_node *last = b->v[b->n];

		b->v[n->hn.index] = last;
		last->index = n->hn.index;
	}
	n->bucket = NULL;
	if (b->n == 0)
		bucket_free(q, b);
}

void
worker__calq_move(struct calq *q, struct calq_node *n, uint64_t key,
    uint64_t seq)
{
	if (n->bucket != NULL && key >> SPAN_SHIFT == n->bucket->hn.seq &&
	    key >= q->horizon) {
		n->hn.key = key;
		n->hn.seq = seq;
		return;
	}
	worker__calq_remove(q, n);
	n->hn.key = key;
	n->hn.seq = seq;
	worker__calq_insert(q, n);
}

/*
 * Asks for every line of the struct around hn: the heap's order needs
 * only its key, but its owner reads the rest as soon as it is popped.
 */
static void
prefetch_node(const struct heap_node *hn)
{
	const char *p = (const char *)hn;

	for (size_t off = 0; off < CALQ_NODE_BYTES; off += 64)
		__builtin_prefetch(p + off);
	__builtin_prefetch(p + CALQ_NODE_BYTES - 1);
}

/* Moves every node of the first bucket into the heap. */
static void
pull(struct calq *q, struct calq_bucket *b)
{
	uint64_t end = (b->hn.seq + 1) << SPAN_SHIFT;

	for (size_t i = 0; i < b->n; i++) {
		/* The nodes lie anywhere: ask for the ones ahead now. */
		if (i + 4 < b->n)
			prefetch_node(b->v[i + 4]);
		ready_push(q, node_of(b->v[i]));
	}
	b->n = 0;
	if (end > q->horizon)
		q->horizon = end;
	bucket_free(q, b);
}

struct calq_node *
worker__calq_pop(struct calq *q, uint64_t now)
{
	for (;;) {
		struct heap_node *r = worker__heap_min(&q->ready);
		struct heap_node *s = worker__heap_min(&q->spans);

		if (s != NULL && s->key <= now &&
		    (r == NULL || s->key <= r->key)) {
			pull(q, bucket_of(s));
			continue;
		}
		if (r == NULL || r->key > now)
			return NULL;
		worker__heap_remove(&q->ready, r);
		q->count--;
		return node_of(r);
	}
}

uint64_t
worker__calq_next(const struct calq *q)
{
	struct heap_node *r = worker__heap_min(&q->ready);
	struct heap_node *s = worker__heap_min(&q->spans);
	uint64_t next = r != NULL ? r->key : UINT64_MAX;

	return s != NULL && s->key < next ? s->key : next;
}

void
worker__calq_fini(struct calq *q)
{
	for (size_t i = 0; i < q->table_size; i++) {
		struct calq_bucket *b = q->table[i];

		while (b != NULL) {
			struct calq_bucket *next = b->next;

			free(b->v);
			free(b);
			b = next;
		}
	}
	while (q->spare != NULL) {
		struct calq_bucket *b = q->spare;

		q->spare = b->next;
		free(b->v);
		free(b);
	}
	free(q->table);
	worker__heap_free(&q->ready);
	worker__heap_free(&q->spans);
	q->table = NULL;
	q->table_size = 0;
	q->nbuckets = 0;
	q->spare = NULL;
	q->horizon = 0;
	q->count = 0;
}
