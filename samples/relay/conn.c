/*
 * conn.c - the conn: one per client, a child of the listener.  It owns the
 * client's socket, a buffer of bytes read from it and the framer it
 * starts; it reads only while the connection has credit, hands every
 * chunk to the framer, and ends when the framer does.  Its stop, when
 * relayd stops, reads no more and passes on what it has.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"

#define CHUNK		(32 * 1024)	/* bytes a conn reads at once */
#define FRAMER_QUEUE	4		/* chunks queued on a framer */
#define CONN_STACK	(256 * 1024)	/* stack of a conn or a framer: they
					 * keep their buffers on the heap, and
					 * two threads per client at the usual
					 * 8 MiB add up */
#define CREDIT_DELAY	0.002		/* seconds before a conn out of
					 * credit looks again */

struct conn {
	worker_t *self;
	worker_t *framer;
	struct credit *credit;
	int fd;
	uint64_t id;
	uint64_t watch;		/* 0 while the socket is not watched */
	uint64_t retry;		/* the pending retry timer, or 0 */
	int end;		/* END_*: what follows buf */
	bool end_sent;		/* the framer knows, or is gone */
	size_t len;		/* bytes of buf the framer has not taken */
	unsigned char buf[CHUNK];
};

static void conn_flush(struct conn *c);

static void
on_conn_readable(int fd, unsigned revents, void *ctx)
{
	struct conn *c = ctx;
	ssize_t n;

	(void)revents;
	n = read(fd, c->buf, sizeof(c->buf));
	if (n > 0) {
		c->len = (size_t)n;
	} else if (n == 0) {
		c->end = END_EOF;
	} else if (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR) {
		return;
	} else {
		/* A reset is a client leaving too; the framer tells whether
		 * it left in the middle of a frame. */
		if (verbose)
			say("connection %" PRIu64 ": %s", c->id,
			    strerror(errno));
		c->end = END_EOF;
	}
	conn_flush(c);
}

static void conn_retry(void *arg);

/*
 * Reads only while everything read so far has gone to the framer, the
 * stream has not ended and there is credit left: the socket is watched
 * exactly then.  Credit comes back from other threads without a word, so
 * a conn out of it looks again in a moment.
 */
static void
conn_update(struct conn *c)
{
	bool reading = c->len == 0 && c->end == END_NONE;
	bool credit = atomic_load_explicit(&c->credit->used,
	    memory_order_relaxed) < CONN_WINDOW;
	bool want = reading && credit;
	int rc;

	if (reading && !credit && c->retry == 0) {
		rc = worker_later(c->self, conn_retry, c, CREDIT_DELAY,
		    &c->retry);
		if (rc != 0)
			worker_fail(rc);
	}

	if (want && c->watch == 0) {
		rc = worker_watch(c->self, c->fd, WORKER_READABLE,
		    on_conn_readable, c, &c->watch);
		if (rc != 0) {
			say("connection %" PRIu64 ": watch: %s", c->id,
			    strerror(rc));
			worker_fail(rc);
		}
	} else if (!want && c->watch != 0) {
		(void)worker_unwatch(c->self, c->watch);
		c->watch = 0;
	}
}

static void
conn_retry(void *arg)
{
	struct conn *c = arg;

	c->retry = 0;
	conn_flush(c);
}

/*
 * Hands buf and the end of the stream, if it came, to the framer.  The
 * framer gets a copy: if its queue is full, the library frees the copy
 * and the bytes wait in buf, with the socket unwatched, for a retry.
 */
static void
conn_flush(struct conn *c)
{
	struct chunk *ch;
	int rc;

	if (c->end_sent || (c->len == 0 && c->end == END_NONE)) {
		conn_update(c);
		return;
	}
	if ((ch = malloc(sizeof(*ch) + c->len)) == NULL) {
		rc = ENOMEM;
	} else {
		ch->len = c->len;
		ch->end = c->end;
		memcpy(ch->data, c->buf, c->len);
		rc = worker_fire_ex(c->framer, "bytes", ch, free, 0);
	}
	if (rc == 0 || rc == ESRCH) {
		/* ESRCH: the framer has ended on bad input, and the conn
		 * ends with it; the bytes have nowhere to go. */
		c->len = 0;
		if (rc == ESRCH && c->end == END_NONE)
			c->end = END_EOF;
		c->end_sent = c->end != END_NONE;
	} else if (c->retry == 0) {
		rc = worker_later(c->self, conn_retry, c, RETRY_DELAY,
		    &c->retry);
		if (rc != 0)
			worker_fail(rc);
	}
	conn_update(c);
}

/*
 * Listener of STOP_THREAD, as the listener ends: relayd stops.  Read no
 * more, pass on what we have, and wait until the framer has bubbled every
 * frame it completes; then the stop ends the conn.  The wait runs the
 * retries of a framer's full queue; CONN_STOP_TIMEOUT bounds it.
 */
static int
on_conn_stop(const worker_event_t *ev, void *ctx)
{
	struct conn *c = ctx;

	(void)ev;
	if (c->end == END_NONE)
		c->end = END_DRAIN;
	conn_flush(c);
	if (c->framer != NULL)
		(void)worker_wait_thread(c->framer, NULL);
	return 0;
}

/* Cleanup handler: the conn owns its socket and its own memory. */
static void
conn_close(void *arg)
{
	struct conn *c = arg;

	if (c->watch != 0)
		(void)worker_unwatch(c->self, c->watch);
	if (c->retry != 0)
		(void)worker_cancel(c->self, c->retry);
	close(c->fd);
	worker_unref(c->framer);
	credit_unref(c->credit);
	free(c);
}

/* The task of a conn; arg is its struct conn, which it owns. */
static void *
conn_task(void *arg)
{
	struct conn *c = arg;
	worker_attr_t attr = {
		.queue_max = FRAMER_QUEUE, .stack_size = CONN_STACK
	};
	char name[32];
	int rc;

	c->self = worker_current();
	worker_cleanup_push(conn_close, c);
	listen_self(WORKER_STOP_THREAD, on_conn_stop, c);

	snprintf(name, sizeof(name), "framer-%" PRIu64, c->id);
	attr.name = name;
	if ((c->framer = worker_create(framer_task, credit_ref(c->credit),
	    &attr)) == NULL) {
		rc = errno;
		credit_unref(c->credit);	/* the framer's */
		say("connection %" PRIu64 ": cannot start its framer: %s",
		    c->id, strerror(rc));
		worker_fail(rc);
	}
	conn_update(c);
	/* The socket's callbacks, the retries and the listener's events all
	 * run in this wait.  The framer ends when the stream does, or on
	 * bad input; either way the connection is over. */
	if ((rc = worker_wait_thread(c->framer, NULL)) != 0)
		worker_fail(rc);
	worker_cleanup_pop(1);
	return NULL;
}

bool
conn_start(int fd, uint64_t *next_id)
{
	worker_attr_t attr = {
		.stack_size = CONN_STACK, .stop_timeout = CONN_STOP_TIMEOUT
	};
	struct conn *c;
	char name[32];
	worker_t *w;

	if ((c = malloc(sizeof(*c))) == NULL ||
	    (c->credit = credit_new(*next_id)) == NULL) {
		say("no memory for a new client; closing it");
		free(c);
		close(fd);
		return false;
	}
	c->framer = NULL;
	c->fd = fd;
	c->id = (*next_id)++;
	c->watch = 0;
	c->retry = 0;
	c->end = END_NONE;
	c->end_sent = false;
	c->len = 0;
	if (verbose)
		say("connection %" PRIu64 ": accepted", c->id);
	snprintf(name, sizeof(name), "conn-%" PRIu64, c->id);
	attr.name = name;
	/* Created on the listener's thread, the conn is the listener's
	 * child.  It keeps itself alive while it runs, and the listener
	 * reaches it only through worker_children_fire(), so the reference
	 * goes at once. */
	if ((w = worker_create(conn_task, c, &attr)) == NULL) {
		say("connection %" PRIu64 ": cannot start: %s; closing it",
		    c->id, strerror(errno));
		close(fd);
		credit_unref(c->credit);
		free(c);
		return false;
	}
	worker_unref(w);
	return true;
}
