/*
 * framer.c - a connection's framer: a struct of its conn (conn.c), which
 * feeds it the bytes it reads.  It owns the frame being filled; it reads
 * the hello, then rebuilds frames from bytes that may split them
 * anywhere, checks their length and their sequence numbers, charges each
 * complete frame to the connection's credit, and bubbles it up to the
 * master.  Bad input ends the connection, with an error for the client.
 *
 * A frame's memory grows with the bytes that came for it, not with its
 * length prefix: it starts at what the read holds (at least FRAME_START)
 * and doubles as more comes, up to its length.  So a client that
 * announces a megabyte and sends ten bytes costs FRAME_START, and one
 * that sends half of it, twice that half at most.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relayd.h"

#define FRAME_START	4096	/* bytes of a frame's first allocation */

atomic_uint_least64_t frames_read;

void
framer_init(struct framer *fr, struct credit *cr, struct uplink *up)
{
	memset(fr, 0, sizeof(*fr));
	fr->up = up;
	fr->credit = cr;
	fr->conn = cr->conn;
}

/* A frame's received_at: wall-clock time, for the rows. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The data_free of a batch bubbled up: the library calls it once every
 * ancestor has handled its copy.
 */
static void
batch_up(void *p)
{
	struct batch *b = p;

	for (size_t i = 0; i < b->n; i++) {
		frame_pay(b->v[i]);
		frame_unref(b->v[i]);
	}
	free(b);
}

void
uplink_flush(struct uplink *up)
{
	struct batch *b = up->b;
	size_t n;
	int rc;

	if (b == NULL)
		return;
	up->b = NULL;
	n = b->n;
	/* From here on b is the library's: it may be gone when this
	 * returns, refused or not.  Only a tree that has lost its listener
	 * or its master refuses it, and then no later frame of these
	 * connections can be committed either, nor acked. */
	rc = worker_fire_ex(worker_parent(worker_current()), "batch", b,
	    batch_up, WORKER_BUBBLE);
	if (rc != 0)
		say("%zu frames lost on their way up: %s", n, strerror(rc));
}

bool
uplink_add(struct uplink *up, struct frame *f)
{
	if (up->b == NULL) {
		if ((up->b = malloc(sizeof(*up->b))) == NULL) {
			/* It goes nowhere: all three shares come back. */
			for (int i = 0; i < 3; i++)
				frame_pay(f);
			frame_unref(f);
			return false;
		}
		up->b->n = 0;
	}
	up->b->v[up->b->n++] = f;
	if (up->b->n == UP_MAX)
		uplink_flush(up);
	return true;
}

/* Sends the completed frame up to the master, in the conn's batch. */
static void
framer_emit(struct framer *fr)
{
	struct frame *f = fr->cur;
	uint64_t seq = f->seq;

	fr->cur = NULL;
	f->conn = fr->conn;
	memcpy(f->client, fr->client, sizeof(f->client));
	f->received_us = now_us();
	f->credit = credit_ref(fr->credit);
	fr->any = true;
	fr->last = seq;
	atomic_fetch_add_explicit(&frames_read, 1, memory_order_relaxed);
	/* From the budget of frames being read to that of frames on their
	 * way. */
	credit_charge(fr->credit, f->len);
	budget_partial_give(fr->credit->budget, fr->cap);
	fr->cap = 0;
	if (!uplink_add(fr->up, f)) {
		atomic_store(&fr->credit->lost, true);
		say("connection %" PRIu64 ": frame %" PRIu64 " lost: no "
		    "memory", fr->conn, seq);
	}
}

/* Copies up to want bytes of the header or hello being read; false
 * while it is not whole. */
static bool
framer_head(struct framer *fr, size_t want, const unsigned char **p,
    size_t *left)
{
	size_t n = want - fr->head_len;

	n = n < *left ? n : *left;
	memcpy(fr->head + fr->head_len, *p, n);
	fr->head_len += n;
	*p += n;
	*left -= n;
	if (fr->head_len < want)
		return false;
	fr->head_len = 0;
	return true;
}

/* The hello is whole: 0, or the ERR_* code that ends the connection. */
static int
framer_hello(struct framer *fr, uint64_t *val)
{
	if (memcmp(fr->head, HELLO_MAGIC, 4) != 0) {
		say("connection %" PRIu64 ": not a hello; closing it",
		    fr->conn);
		return ERR_HELLO;
	}
	if (get_be32(fr->head + 4) != PROTO_VERSION) {
		say("connection %" PRIu64 ": version %" PRIu32 " of the "
		    "protocol; closing it", fr->conn, get_be32(fr->head + 4));
		*val = PROTO_VERSION;
		return ERR_VERSION;
	}
	memcpy(fr->client, fr->head + 8, CLIENT_ID_LEN);
	fr->hello = true;
	return 0;
}

/* No room for a frame: the connection ends, and the client comes back. */
static int
framer_nomem(const struct framer *fr, const char *why)
{
	say("connection %" PRIu64 ": %s: no room for its frame; closing the "
	    "connection", fr->conn, why);
	return ERR_NOMEM;
}

/*
 * A frame's header is whole: starts the frame, with room for the bytes
 * at hand.  0, or the ERR_* code that ends the connection.
 */
static int
framer_start(struct framer *fr, size_t at_hand, uint64_t *val)
{
	uint32_t len = get_be32(fr->head), cap;
	uint64_t seq = get_be64(fr->head + 4);

	if (len > FRAME_MAX) {
		say("connection %" PRIu64 ": a frame of %" PRIu32 " bytes is "
		    "over the limit of %u; closing the connection", fr->conn,
		    len, FRAME_MAX);
		*val = FRAME_MAX;
		return ERR_TOO_LONG;
	}
	if (seq >= SEQ_LIMIT || (fr->any && seq <= fr->last)) {
		say("connection %" PRIu64 ": frame %" PRIu64 " after %" PRIu64
		    "; closing the connection", fr->conn, seq, fr->last);
		*val = fr->last;
		return ERR_SEQUENCE;
	}
	cap = at_hand > FRAME_START ? (uint32_t)at_hand : FRAME_START;
	cap = cap < len ? cap : len;
	if (!budget_partial_take(fr->credit->budget, cap))
		return framer_nomem(fr, "--max-memory");
	if ((fr->cur = frame_start(len, cap)) == NULL) {
		budget_partial_give(fr->credit->budget, cap);
		return framer_nomem(fr, "no memory");
	}
	fr->cur->seq = seq;
	fr->got = 0;
	fr->cap = cap;
	return 0;
}

/* Copies payload bytes into the frame being filled, growing it. */
static int
framer_fill(struct framer *fr, const unsigned char **p, size_t *left)
{
	struct frame *f = fr->cur;
	size_t n = f->len - fr->got;
	uint32_t cap;

	n = n < *left ? n : *left;
	if (fr->got + n > fr->cap) {
		cap = fr->cap < f->len / 2 ? 2 * fr->cap : f->len;
		cap = cap > fr->got + n ? cap : (uint32_t)(fr->got + n);
		if (!budget_partial_take(fr->credit->budget, cap - fr->cap))
			return framer_nomem(fr, "--max-memory");
		if ((f = frame_grow(f, cap)) == NULL) {
			budget_partial_give(fr->credit->budget, cap - fr->cap);
			return framer_nomem(fr, "no memory");
		}
		fr->cur = f;
		fr->cap = cap;
	}
	memcpy(f->data + fr->got, *p, n);
	fr->got += (uint32_t)n;
	*p += n;
	*left -= n;
	return 0;
}

int
framer_take(struct framer *fr, const unsigned char *p, size_t n,
    uint64_t *val)
{
	int err = 0;

	*val = 0;
	while (n > 0 && err == 0) {
		if (!fr->hello) {
			if (framer_head(fr, HELLO_LEN, &p, &n))
				err = framer_hello(fr, val);
			continue;
		}
		if (fr->cur == NULL) {
			if (!framer_head(fr, HEAD_LEN, &p, &n))
				break;
			err = framer_start(fr, n, val);
		} else {
			err = framer_fill(fr, &p, &n);
		}
		if (err == 0 && fr->got == fr->cur->len)
			framer_emit(fr);
	}
	return err;
}

bool
framer_partial(const struct framer *fr)
{
	return fr->head_len > 0 || fr->cur != NULL;
}

uint64_t
framer_sent(const struct framer *fr)
{
	return fr->any ? fr->last + 1 : 0;
}

void
framer_end(struct framer *fr, const char *why)
{
	if (why != NULL && fr->cur != NULL)
		say("connection %" PRIu64 ": %s in the middle of a frame "
		    "(%" PRIu32 " of %" PRIu32 " bytes); dropping it",
		    fr->conn, why, fr->got, fr->cur->len);
	else if (why != NULL && fr->head_len > 0)
		say("connection %" PRIu64 ": %s in the middle of a frame "
		    "(%zu of the %d bytes of its %s); dropping it", fr->conn,
		    why, fr->head_len, fr->hello ? HEAD_LEN : HELLO_LEN,
		    fr->hello ? "header" : "hello");
	if (fr->cur != NULL)
		budget_partial_give(fr->credit->budget, fr->cap);
	frame_unref(fr->cur);
	fr->cur = NULL;
	fr->cap = 0;
	fr->head_len = 0;
}
