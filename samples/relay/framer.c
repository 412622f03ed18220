/*
 * framer.c - the framer: one per conn, a child of it.  It owns the frame
 * being filled and rebuilds frames from the conn's chunks of bytes, which
 * may split a frame anywhere; it charges each complete frame to the
 * connection's credit, numbers it and bubbles it up to the master.  A
 * frame over FRAME_MAX, or the end of the stream, ends it, and with it
 * the connection.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "relayd.h"

atomic_uint_least64_t frames_read;

struct framer {
	struct credit *credit;	/* the connection's; referenced */
	uint64_t conn;
	uint64_t seq;		/* frames bubbled so far */
	unsigned char head[4];
	size_t head_len;	/* bytes of the next length prefix read */
	struct frame *cur;	/* the frame being filled, not yet fired */
	uint32_t got;		/* bytes of cur filled */
};

/* A frame's received_at: wall-clock time, for the rows. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The data_free of a frame bubbled up: the library calls it once every
 * ancestor has handled its copy.
 */
static void
frame_up(void *p)
{
	frame_pay(p);
	frame_unref(p);
}

/* Sends the completed frame up to the master, through conn and listener. */
static void
framer_emit(struct framer *fr)
{
	struct frame *f = fr->cur;
	int rc;

	fr->cur = NULL;
	f->conn = fr->conn;
	f->seq = fr->seq++;
	f->received_us = now_us();
	f->credit = credit_ref(fr->credit);
	atomic_fetch_add_explicit(&frames_read, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&fr->credit->used, FRAME_COST +
	    (size_t)f->len, memory_order_relaxed);
	/* From here on f is the library's: it may be gone when this
	 * returns, refused or not. */
	rc = worker_fire_ex(worker_parent(worker_current()), "frame", f,
	    frame_up, WORKER_BUBBLE);
	/* Only a tree stopped at once, after a worker failed, refuses it. */
	if (rc != 0)
		say("connection %" PRIu64 ": frame %" PRIu64 " lost: %s",
		    fr->conn, fr->seq - 1, strerror(rc));
}

/* Says what was left of a frame when the bytes ended. */
static void
framer_partial(const struct framer *fr, int end)
{
	const char *why = end == END_EOF ?
	    "the client left" : "stopping";

	if (fr->cur != NULL)
		say("connection %" PRIu64 ": %s in the middle of a frame "
		    "(%" PRIu32 " of %" PRIu32 " bytes); dropping it",
		    fr->conn, why, fr->got, fr->cur->len);
	else if (fr->head_len > 0)
		say("connection %" PRIu64 ": %s in the middle of a frame "
		    "(%zu of the 4 bytes of its length); dropping it",
		    fr->conn, why, fr->head_len);
}

/*
 * Takes one chunk.  Returns false when the framer is done: the stream
 * ended, or a frame was too long, which closes the connection.
 */
static bool
framer_take(struct framer *fr, const struct chunk *ch)
{
	const unsigned char *p = ch->data;
	size_t left = ch->len;
	uint32_t len;
	size_t n;

	while (left > 0) {
		if (fr->cur == NULL) {
			n = sizeof(fr->head) - fr->head_len;
			n = n < left ? n : left;
			memcpy(fr->head + fr->head_len, p, n);
			fr->head_len += n;
			p += n;
			left -= n;
			if (fr->head_len < sizeof(fr->head))
				break;
			len = get_be32(fr->head);
			if (len > FRAME_MAX) {
				say("connection %" PRIu64 ": a frame of %"
				    PRIu32 " bytes is over the limit of %u; "
				    "closing the connection", fr->conn, len,
				    FRAME_MAX);
				return false;
			}
			if ((fr->cur = frame_new(len)) == NULL) {
				say("connection %" PRIu64 ": no memory for a "
				    "frame of %" PRIu32 " bytes; closing the "
				    "connection", fr->conn, len);
				return false;
			}
			fr->head_len = 0;
			fr->got = 0;
		} else {
			n = fr->cur->len - fr->got;
			n = n < left ? n : left;
			memcpy(fr->cur->data + fr->got, p, n);
			fr->got += (uint32_t)n;
			p += n;
			left -= n;
		}
		if (fr->got == fr->cur->len)
			framer_emit(fr);
	}
	if (ch->end == END_NONE)
		return true;
	framer_partial(fr, ch->end);
	return false;
}

/* Cleanup handler: a frame still being filled was never fired. */
static void
framer_close(void *arg)
{
	struct framer *fr = arg;

	frame_unref(fr->cur);
	fr->cur = NULL;
	credit_unref(fr->credit);
}

/*
 * The task of a framer.  arg is the connection's credit, with a reference
 * for the framer: the conn's own memory may be gone before the framer is,
 * when the tree is stopped at once.
 */
void *
framer_task(void *arg)
{
	struct framer fr = { .credit = arg };
	worker_t *conn = worker_parent(worker_current());
	void *data;
	int rc;

	fr.conn = fr.credit->conn;
	worker_cleanup_push(framer_close, &fr);
	/* Each wait hands over the next chunk, which stays valid until the
	 * next wait; the bytes come in order, from the conn only. */
	do {
		if ((rc = worker_wait_event("bytes", conn, -1, &data)) != 0)
			worker_fail(rc);
	} while (framer_take(&fr, data));
	if (verbose)
		say("connection %" PRIu64 ": closed after %" PRIu64 " frames",
		    fr.conn, fr.seq);
	worker_cleanup_pop(1);
	return NULL;
}
