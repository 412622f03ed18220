/*
 * frame.c - relayd's frames, their connections' credit, and a queue of
 * frames: the data every role passes around, owned by no worker.
 *
 * A frame and a credit are shared between threads and counted: whoever
 * drops the last reference frees it.  A fifo belongs to one worker, which
 * alone touches it; the store's inbox is a fifo under a lock, shared by
 * the master and the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relayd.h"

/* ---- Credit ---------------------------------------------------------- */

bool
budget_open(struct budget *b)
{
	return atomic_load_explicit(&b->flight, memory_order_relaxed) <
	    b->half;
}

bool
budget_partial_take(struct budget *b, size_t n)
{
	size_t used = atomic_fetch_add_explicit(&b->partial, n,
	    memory_order_relaxed);

	if (used + n <= b->half)
		return true;
	atomic_fetch_sub_explicit(&b->partial, n, memory_order_relaxed);
	return false;
}

void
budget_partial_give(struct budget *b, size_t n)
{
	atomic_fetch_sub_explicit(&b->partial, n, memory_order_relaxed);
}

struct credit *
credit_new(uint64_t conn, struct budget *budget)
{
	struct credit *cr = malloc(sizeof(*cr));

	if (cr == NULL)
		return NULL;
	atomic_init(&cr->refs, 1);
	atomic_init(&cr->used, 0);
	atomic_init(&cr->committed, 0);
	atomic_init(&cr->lost, false);
	cr->conn = conn;
	cr->budget = budget;
	return cr;
}

struct credit *
credit_ref(struct credit *cr)
{
	atomic_fetch_add_explicit(&cr->refs, 1, memory_order_relaxed);
	return cr;
}

void
credit_charge(struct credit *cr, uint32_t len)
{
	atomic_fetch_add_explicit(&cr->used, FRAME_COST + (size_t)len,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&cr->budget->flight, FRAME_COST +
	    (size_t)len, memory_order_relaxed);
}

void
credit_unref(struct credit *cr)
{
	if (cr != NULL && atomic_fetch_sub_explicit(&cr->refs, 1,
	    memory_order_acq_rel) == 1)
		free(cr);
}

/* ---- Frames ---------------------------------------------------------- */

struct frame *
frame_start(uint32_t len, uint32_t cap)
{
	struct frame *f = malloc(sizeof(*f) + cap);

	if (f == NULL)
		return NULL;
	atomic_init(&f->refs, 1);
	atomic_init(&f->owed, 3);
	f->credit = NULL;
	f->len = len;
	put_be32(f->head, len);
	return f;
}

struct frame *
frame_new(uint32_t len)
{
	return frame_start(len, len);
}

/* Only its framer knows f yet: it may move. */
struct frame *
frame_grow(struct frame *f, uint32_t cap)
{
	return realloc(f, sizeof(*f) + cap);
}

struct frame *
frame_ref(struct frame *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	return f;
}

/* Drops one reference: the data_free of the frames fired down. */
void
frame_unref(void *p)
{
	struct frame *f = p;

	if (f != NULL && atomic_fetch_sub_explicit(&f->refs, 1,
	    memory_order_acq_rel) == 1) {
		credit_unref(f->credit);
		free(f);
	}
}

/*
 * One of the three conditions of the payback is met: the way up is done,
 * the store has written the frame, the fanout has queued it (or either
 * will never see it).  The third pays.
 */
void
frame_pay(struct frame *f)
{
	if (atomic_fetch_sub_explicit(&f->owed, 1, memory_order_acq_rel) !=
	    1)
		return;
	atomic_fetch_sub_explicit(&f->credit->used, FRAME_COST +
	    (size_t)f->len, memory_order_relaxed);
	atomic_fetch_sub_explicit(&f->credit->budget->flight, FRAME_COST +
	    (size_t)f->len, memory_order_relaxed);
}

/* ---- A queue of frames ----------------------------------------------- */

/* Appends f, taking over the caller's reference; ENOMEM keeps it his. */
int
fifo_push(struct fifo *q, struct frame *f)
{
	if (q->len == q->cap) {
		size_t cap = q->cap != 0 ? 2 * q->cap : 64;
		struct frame **v = malloc(cap * sizeof(*v));

		if (v == NULL)
			return ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			v[i] = q->v[(q->head + i) & (q->cap - 1)];
		free(q->v);
		q->v = v;
		q->head = 0;
		q->cap = cap;
	}
	q->v[(q->head + q->len) & (q->cap - 1)] = f;
	q->len++;
	return 0;
}

/* The i-th frame from the front, still queued. */
struct frame *
fifo_peek(const struct fifo *q, size_t i)
{
	return q->v[(q->head + i) & (q->cap - 1)];
}

/* Takes the oldest frame out; the caller gets its reference. */
struct frame *
fifo_pop(struct fifo *q)
{
	struct frame *f = q->v[q->head];

	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	return f;
}

void
fifo_clear(struct fifo *q)
{
	while (q->len > 0)
		frame_unref(fifo_pop(q));
	free(q->v);
	memset(q, 0, sizeof(*q));
}

/* ---- The store's inbox ----------------------------------------------- */

void
inbox_init(struct inbox *in)
{
	pthread_mutex_init(&in->lock, NULL);
	memset(&in->q, 0, sizeof(in->q));
	in->nudged = false;
}

int
inbox_put(struct inbox *in, struct frame *f, bool *wake)
{
	int rc;

	pthread_mutex_lock(&in->lock);
	rc = fifo_push(&in->q, f);
	/* One "frames" event at a time: the store takes all there is. */
	*wake = rc == 0 && !in->nudged;
	if (*wake)
		in->nudged = true;
	pthread_mutex_unlock(&in->lock);
	return rc;
}

void
inbox_unnudge(struct inbox *in)
{
	pthread_mutex_lock(&in->lock);
	in->nudged = false;
	pthread_mutex_unlock(&in->lock);
}

size_t
inbox_peek(struct inbox *in, struct frame **v, size_t max)
{
	size_t n;

	pthread_mutex_lock(&in->lock);
	n = in->q.len < max ? in->q.len : max;
	for (size_t i = 0; i < n; i++)
		v[i] = fifo_peek(&in->q, i);
	/* Found empty: a frame put from now on tells the store again. */
	if (n == 0)
		in->nudged = false;
	pthread_mutex_unlock(&in->lock);
	return n;
}

void
inbox_done(struct inbox *in, struct frame **v, size_t n)
{
	/* v holds them: the pops only move the front. */
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < n; i++)
		(void)fifo_pop(&in->q);
	pthread_mutex_unlock(&in->lock);
	/* A connection's frames come in the order they were read, so its
	 * committed number only grows; release: the conn that reads it
	 * sends the ack of a row that is there. */
	for (size_t i = 0; i < n; i++) {
		atomic_store_explicit(&v[i]->credit->committed,
		    v[i]->seq + 1, memory_order_release);
		frame_pay(v[i]);
		frame_unref(v[i]);
	}
}

size_t
inbox_len(struct inbox *in)
{
	size_t n;

	pthread_mutex_lock(&in->lock);
	n = in->q.len;
	pthread_mutex_unlock(&in->lock);
	return n;
}

/* Once neither the master nor the store uses it: what is left is lost. */
void
inbox_fini(struct inbox *in)
{
	fifo_clear(&in->q);
	pthread_mutex_destroy(&in->lock);
}
