/*
 * relayd.c - a relay daemon: frames from TCP clients into SQLite and on to
 * subscribers.
 *
 * Clients connect to 127.0.0.1:PORT and send frames: a 4-byte big-endian
 * length, then that many bytes of payload, at most 1 MiB.  The bytes may
 * arrive split anywhere.  Every frame becomes one row of an SQLite
 * database (table frames: id, connection, sequence, received_at in
 * microseconds since the epoch, payload), and goes on to every subscriber
 * connected to 127.0.0.1:SUBPORT.  A subscriber first gets the 8 bytes
 * "RELAYD1\n", which tell it that every frame from then on will reach it,
 * then the frames, in the clients' format.
 *
 * The worker tree is the one of TaskThread's introduction:
 *
 *	master		the root: the frames' crossroads, and the orderly
 *			stop on SIGINT or SIGTERM
 *	  listener	accepts clients
 *	    conn	one per client: reads bytes off its socket
 *	      framer	one per conn: rebuilds frames from the bytes
 *	  store		writes every frame into SQLite
 *	  fanout	sends every frame to the subscribers
 *
 * A worker talks only to its parent and its children.  A frame bubbles up
 * from its framer to the master, which fires it down at the store and at
 * the fanout.  A frame is a heap block with a reference count: each fire
 * hands one reference to the library, with a destructor that drops it, and
 * the library calls that exactly once, whatever becomes of the event.
 *
 * Backpressure.  Each connection has a credit of CONN_WINDOW bytes.  Its
 * framer charges every frame it completes, and the frame pays back once
 * it has cleared every queue on the way up (the library calls the
 * bubble's data_free after the last ancestor has handled its copy), the
 * store has written it and the fanout has queued it for the subscribers.
 * A conn reads only while it has credit; without, it unwatches its socket
 * and looks again a moment later, so the bytes wait in the kernel and TCP
 * slows the client down.  The store and the fanout have bounded queues:
 * when one refuses a frame (EAGAIN), the master keeps it in a backlog and
 * offers it again on a timer, and meanwhile its credit does not come
 * back, so the conns stop.  Credit rather than a "full" message down the
 * tree, because such a message queues behind the frames on its way: under
 * load it arrives too late to bound anything.  So, whatever the speed of
 * the clients, relayd holds per connection at most CONN_WINDOW, a frame
 * past it, a frame being filled and a few chunks; and per subscriber
 * --sub-buffer: the fanout never waits for a subscriber, and drops one that
 * falls that far behind.
 *
 * Bad input.  A frame longer than 1 MiB, or a client that leaves in the
 * middle of a frame, ends that connection's framer with a log line, and so
 * the connection; the frames before it have gone up already.
 *
 * Stopping.  SIGINT and SIGTERM reach the master as SIGNAL events
 * (worker_signals(), with both in the notify set), and its listener drains
 * the tree in order: the listener closes its socket and tells each conn
 * to stop; each conn hands the bytes it has read to its framer, which
 * bubbles every complete frame and drops a partial one; once every conn
 * has ended, the listener ends; the master passes on its backlog and
 * stops the store, whose STOP_THREAD comes after every frame in its queue
 * and which commits as it unwinds; the fanout gets a second to flush.
 * Then the master exits.  Every frame that relayd had read from a socket
 * when the signal came is in the database.  Another signal meanwhile is
 * only logged: a supervisor or a terminal may well send two, and the
 * drain ends by itself.
 *
 * Usage: relayd [-v] [-p PORT] [-s SUBPORT] [-d DB] [-q QUEUE] [-b BYTES]
 * Port 0 takes a free port; the line "relayd: ready: ..." on standard
 * error names the ports.  Exits 0 after an orderly stop, 1 if a worker
 * failed, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "worker.h"


#define CHUNK		(32 * 1024)	/* bytes a conn reads at once */
#define FRAMER_QUEUE	4		/* chunks queued on a framer */
#define CONN_STACK	(256 * 1024)	/* stack of a conn or a framer: they
					 * keep their buffers on the heap, and
					 * two threads per client at the usual
					 * 8 MiB add up */
#define CONN_WINDOW	(256 * 1024)	/* a connection's credit, bytes */
#define FRAME_COST	256		/* bytes a frame costs beyond its
					 * payload: events, headers */
#define RETRY_DELAY	0.001		/* seconds before a refused fire is
					 * tried again */
#define CREDIT_DELAY	0.002		/* seconds before a conn out of
					 * credit looks again */
#define ACCEPT_BATCH	64		/* accepts per callback */
#define ACCEPT_PAUSE	0.1		/* seconds without accepting after
					 * an accept error */
#define FLUSH_TIME	1.0		/* seconds the fanout gets to flush
					 * when it stops */
#define IOV_FRAMES	64		/* frames per sendmsg() */

/*
 * The daemon: its options, set by main() before any worker starts and only
 * read afterwards, and its results, each written by one worker and read by
 * main() once the tree has ended.
 */
struct relay {
	const char *db;
	size_t queue_max;	/* of the store and the fanout */
	size_t sub_buffer;	/* bytes a subscriber may fall behind */
	int port;
	int sub_port;
	int listen_fd;		/* taken by the listener when it starts */
	int sub_fd;		/* taken by the fanout when it starts */
	uint64_t first_conn;	/* store: the first free connection number */

	uint64_t conns;		/* listener: connections accepted */
	uint64_t rows;		/* store: rows committed */
	uint64_t dropped;	/* fanout: subscribers dropped as too slow */
	bool failed;		/* master: a worker failed */
};

/* -v: read by every thread, set before any of them exists. */
static bool verbose;

/*
 * Frames completed by all the framers.  After an orderly stop it equals
 * the rows committed, which is the promise of the drain: tests compare
 * the two in the last line of the log.
 */
static atomic_uint_least64_t frames_read;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line on standard error; stdio locks the stream, so lines never mix. */
static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	relay_vlog("relayd", fmt, ap);
	va_end(ap);
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Adds a listener to the calling worker.  Transient: its ctx lives in the
 * task's frame, and a transient listener goes before the end sequence
 * hands the last queued events to the listeners that are left.
 */
static void
listen_self(const char *name, worker_listener_fn fn, void *ctx)
{
	worker_listen_opts_t opts = { .transient = 1 };
	int rc;

	if ((rc = worker_listen(worker_current(), name, fn, ctx, &opts)) != 0)
		worker_fail(rc);
}

/* ---- Credit and frames ----------------------------------------------- */

/*
 * A connection's credit: bytes of its frames on their way from its framer
 * to the store and the fanout.  Its conn, its framer and each of its
 * frames hold a reference, so it outlives whichever goes last.
 */
struct credit {
	atomic_uint refs;
	atomic_size_t used;
	uint64_t conn;		/* the connection's number */
};

static struct credit *
credit_new(uint64_t conn)
{
	struct credit *cr = malloc(sizeof(*cr));

	if (cr == NULL)
		return NULL;
	atomic_init(&cr->refs, 1);
	atomic_init(&cr->used, 0);
	cr->conn = conn;
	return cr;
}

static struct credit *
credit_ref(struct credit *cr)
{
	atomic_fetch_add_explicit(&cr->refs, 1, memory_order_relaxed);
	return cr;
}

static void
credit_unref(struct credit *cr)
{
	if (cr != NULL && atomic_fetch_sub_explicit(&cr->refs, 1,
	    memory_order_acq_rel) == 1)
		free(cr);
}

/*
 * One frame, shared by everyone who holds a reference: the events that
 * carry it, the master's backlogs and the subscribers' queues.  Written by
 * its framer only, before it is first fired.
 */
struct frame {
	atomic_uint refs;
	atomic_uint owed;	/* the way up, store, fanout: 0 once paid */
	struct credit *credit;	/* its connection's, once complete */
	uint64_t conn;		/* the connection's number */
	uint64_t seq;		/* its place on the connection, from 0 */
	int64_t received_us;	/* when its last byte was read */
	uint32_t len;
	unsigned char head[4];	/* the length prefix, for the subscribers */
	unsigned char data[];
};

static struct frame *
frame_new(uint32_t len)
{
	struct frame *f = malloc(sizeof(*f) + len);

	if (f == NULL)
		return NULL;
	atomic_init(&f->refs, 1);
	atomic_init(&f->owed, 3);
	f->credit = NULL;
	f->len = len;
	put_be32(f->head, len);
	return f;
}

static struct frame *
frame_ref(struct frame *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	return f;
}

/* Drops one reference: the data_free of the frames fired down. */
static void
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
static void
frame_pay(struct frame *f)
{
	if (atomic_fetch_sub_explicit(&f->owed, 1, memory_order_acq_rel) == 1)
		atomic_fetch_sub_explicit(&f->credit->used,
		    FRAME_COST + (size_t)f->len, memory_order_relaxed);
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

/* A queue of frame references, oldest first; one worker's only. */
struct fifo {
	struct frame **v;
	size_t head;
	size_t len;
	size_t cap;		/* 0 or a power of two */
};

/* Appends f, taking over the caller's reference; ENOMEM keeps it his. */
static int
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
static struct frame *
fifo_peek(const struct fifo *q, size_t i)
{
	return q->v[(q->head + i) & (q->cap - 1)];
}

/* Takes the oldest frame out; the caller gets its reference. */
static struct frame *
fifo_pop(struct fifo *q)
{
	struct frame *f = q->v[q->head];

	q->head = (q->head + 1) & (q->cap - 1);
	q->len--;
	return f;
}

static void
fifo_clear(struct fifo *q)
{
	while (q->len > 0)
		frame_unref(fifo_pop(q));
	free(q->v);
	memset(q, 0, sizeof(*q));
}

/* ---- framer: bytes in, frames up ------------------------------------- */

/* What ends a connection's stream of bytes. */
enum { END_NONE, END_EOF, END_DRAIN };

/* The data of "bytes", from a conn to its framer; freed by the library. */
struct chunk {
	size_t len;
	int end;		/* END_*: nothing follows these bytes */
	unsigned char data[];
};

struct framer {
	struct credit *credit;	/* the connection's; referenced */
	uint64_t conn;
	uint64_t seq;		/* frames bubbled so far */
	unsigned char head[4];
	size_t head_len;	/* bytes of the next length prefix read */
	struct frame *cur;	/* the frame being filled, not yet fired */
	uint32_t got;		/* bytes of cur filled */
};

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
static void *
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

/* ---- conn: a client's socket ----------------------------------------- */

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

/* Listener of "drain": relayd stops; read no more, pass on what we have. */
static int
on_conn_drain(const worker_event_t *ev, void *ctx)
{
	struct conn *c = ctx;

	(void)ev;
	if (c->end == END_NONE)
		c->end = END_DRAIN;
	conn_flush(c);
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
	listen_self("drain", on_conn_drain, c);

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

/* ---- Accepting, for the listener and the fanout ---------------------- */

/* A listening socket in a worker's loop; take() gets each new socket. */
struct acceptor {
	const char *what;	/* "client" or "subscriber", for the log */
	worker_t *self;
	int fd;
	uint64_t watch;
	uint64_t retry;		/* accepting again after an error */
	void (*take)(int fd, void *ctx);
	void *ctx;
};

static void acceptor_start(struct acceptor *a);

static void
acceptor_resume(void *arg)
{
	struct acceptor *a = arg;

	a->retry = 0;
	acceptor_start(a);
}

static void
on_acceptable(int fd, unsigned revents, void *ctx)
{
	struct acceptor *a = ctx;
	int cfd, rc;

	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd >= 0) {
			a->take(cfd, a->ctx);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* Out of descriptors, say: the socket stays readable, so
		 * watching it would spin.  Look again in a moment. */
		say("accepting a %s: %s; trying again in %g s", a->what,
		    strerror(errno), ACCEPT_PAUSE);
		(void)worker_unwatch(a->self, a->watch);
		a->watch = 0;
		rc = worker_later(a->self, acceptor_resume, a, ACCEPT_PAUSE,
		    &a->retry);
		if (rc != 0)
			worker_fail(rc);
		return;
	}
}

static void
acceptor_start(struct acceptor *a)
{
	int rc;

	rc = worker_watch(a->self, a->fd, WORKER_READABLE, on_acceptable, a,
	    &a->watch);
	if (rc != 0) {
		say("watching for a %s: %s", a->what, strerror(rc));
		worker_fail(rc);
	}
}

/* Stops accepting and closes the socket; pending clients are refused. */
static void
acceptor_close(struct acceptor *a)
{
	if (a->watch != 0)
		(void)worker_unwatch(a->self, a->watch);
	if (a->retry != 0)
		(void)worker_cancel(a->self, a->retry);
	if (a->fd >= 0)
		close(a->fd);
	a->watch = 0;
	a->retry = 0;
	a->fd = -1;
}

/* ---- listener: accepts clients, one conn each ------------------------ */

struct listener {
	struct relay *r;
	struct acceptor acc;
	uint64_t next_id;	/* the next connection's number */
	size_t conns;		/* conns started and not yet ended */
	bool draining;
};

/* Starts a conn for a new client; the conn owns fd from then on. */
static void
conn_start(int fd, void *ctx)
{
	struct listener *l = ctx;
	worker_attr_t attr = { .stack_size = CONN_STACK };
	struct conn *c;
	char name[32];
	worker_t *w;

	if ((c = malloc(sizeof(*c))) == NULL ||
	    (c->credit = credit_new(l->next_id)) == NULL) {
		say("no memory for a new client; closing it");
		free(c);
		close(fd);
		return;
	}
	c->framer = NULL;
	c->fd = fd;
	c->id = l->next_id++;
	c->watch = 0;
	c->retry = 0;
	c->end = END_NONE;
	c->end_sent = false;
	c->len = 0;
	if (verbose)
		say("connection %" PRIu64 ": accepted", c->id);
	snprintf(name, sizeof(name), "conn-%" PRIu64, c->id);
	attr.name = name;
	/* Created here, the conn is the listener's child.  It keeps itself
	 * alive while it runs, and the listener reaches it only through
	 * worker_children_fire(), so the reference goes at once. */
	if ((w = worker_create(conn_task, c, &attr)) == NULL) {
		say("connection %" PRIu64 ": cannot start: %s; closing it",
		    c->id, strerror(errno));
		close(fd);
		credit_unref(c->credit);
		free(c);
		return;
	}
	worker_unref(w);
	l->conns++;
	l->r->conns++;
}

/* Listener of "drain", from the master: no new clients, conns wind up. */
static int
on_listener_drain(const worker_event_t *ev, void *ctx)
{
	struct listener *l = ctx;

	(void)ev;
	if (l->draining)
		return 0;
	l->draining = true;
	acceptor_close(&l->acc);
	(void)worker_children_fire(l->acc.self, "drain", NULL);
	return 0;
}

static int
on_conn_end(const worker_event_t *ev, void *ctx)
{
	struct listener *l = ctx;

	(void)ev;
	l->conns--;
	return 0;
}

static int
listener_done(const worker_event_t *ev, void *ctx)
{
	const struct listener *l = ctx;

	(void)ev;
	return l->draining && l->conns == 0;
}

static void
listener_close(void *arg)
{
	acceptor_close(arg);
}

/* The task of the listener; arg is the struct relay. */
static void *
listener_task(void *arg)
{
	struct relay *r = arg;
	struct listener l = {
		.r = r,
		.acc = { .what = "client", .fd = r->listen_fd,
		    .take = conn_start },
		.next_id = r->first_conn
	};

	r->listen_fd = -1;	/* the listener's from now on */
	l.acc.self = worker_current();
	l.acc.ctx = &l;
	worker_cleanup_push(listener_close, &l.acc);
	listen_self("drain", on_listener_drain, &l);
	listen_self(WORKER_CHILD_THREAD_END, on_conn_end, &l);
	acceptor_start(&l.acc);
	/* Every frame a conn bubbles reaches the master before the conn's
	 * end, and so before the listener's: the master relies on it. */
	(void)worker_wait_until(listener_done, &l, -1, NULL);
	worker_cleanup_pop(1);
	return NULL;
}

/* ---- store: SQLite --------------------------------------------------- */

struct store {
	struct relay *r;
	worker_t *self;
	sqlite3 *db;
	sqlite3_stmt *insert;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	bool in_txn;
	uint64_t pending;	/* rows inserted since BEGIN */
	uint64_t rows;		/* rows committed */
	int err;		/* nonzero once the database failed */
};

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS frames ("
    "id INTEGER PRIMARY KEY, "
    "connection INTEGER NOT NULL, "
    "sequence INTEGER NOT NULL, "
    "received_at INTEGER NOT NULL, "	/* microseconds since the epoch */
    "payload BLOB NOT NULL)";

static void
store_error(struct store *s, const char *what)
{
	say("store: %s: %s: %s", s->r->db, what, sqlite3_errmsg(s->db));
	s->err = EIO;
}

/*
 * Runs a statement of the setup.  If it returns a row and num is not NULL,
 * *num gets its first column.
 */
static bool
store_exec(struct store *s, const char *sql, sqlite3_int64 *num)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_error(s, sql);
		return false;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && num != NULL)
		*num = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_error(s, sql);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/*
 * WAL: readers do not block the store, nor the store them.  A database on
 * a file system without shared memory keeps its old mode: say so.
 */
static bool
store_wal(struct store *s)
{
	const unsigned char *mode;
	sqlite3_stmt *st;
	bool ok;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		store_error(s, "PRAGMA journal_mode=WAL");
		return false;
	}
	ok = sqlite3_step(st) == SQLITE_ROW &&
	    (mode = sqlite3_column_text(st, 0)) != NULL &&
	    strcasecmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!ok)
		say("store: %s: cannot use WAL mode", s->r->db);
	return ok;
}

static bool
store_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		store_error(s, sql);
		return false;
	}
	return true;
}

/* Opens the database; false after a log line. */
static bool
store_open(struct store *s)
{
	sqlite3_int64 last = 0;

	if (sqlite3_open_v2(s->r->db, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		store_error(s, "open");
		return false;
	}
	/* A reader, such as sqlite3(1), may hold the lock for a moment. */
	sqlite3_busy_timeout(s->db, 5000);
	/* synchronous=NORMAL: in WAL mode a commit survives a crash of
	 * relayd, and costs no fsync. */
	if (!store_wal(s) ||
	    !store_exec(s, "PRAGMA synchronous=NORMAL", NULL) ||
	    !store_exec(s, store_schema, NULL) ||
	    !store_exec(s, "SELECT COALESCE(MAX(connection), 0) FROM frames",
	    &last))
		return false;
	/* Numbers go on from an earlier run, so rows never mix. */
	s->r->first_conn = (uint64_t)last + 1;
	return store_prepare(s, "INSERT INTO frames (connection, sequence, "
	    "received_at, payload) VALUES (?, ?, ?, ?)", &s->insert) &&
	    store_prepare(s, "BEGIN", &s->begin) &&
	    store_prepare(s, "COMMIT", &s->commit);
}

static bool
store_step(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		store_error(s, what);
		return false;
	}
	return true;
}

static void
store_commit(struct store *s)
{
	if (!s->in_txn)
		return;
	s->in_txn = false;
	if (store_step(s, s->commit, "COMMIT"))
		s->rows += s->pending;
	s->pending = 0;
}

/* Timer: the batch of events is handled, commit what it brought. */
static void
store_commit_cb(void *arg)
{
	store_commit(arg);
}

/*
 * Writes one frame.  The first frame of a batch opens a transaction and
 * schedules the commit for the end of the batch: a timer of delay 0 runs
 * once the events queued now are handled.  So a transaction holds what
 * came while the last one was written, at most the queue's size: few
 * commits under load, no delay when idle.
 */
static void
store_insert(struct store *s, const struct frame *f)
{
	int rc;

	if (s->err != 0)
		return;
	if (!s->in_txn) {
		if (!store_step(s, s->begin, "BEGIN"))
			return;
		s->in_txn = true;
		if ((rc = worker_later(s->self, store_commit_cb, s, 0,
		    NULL)) != 0) {
			say("store: %s", strerror(rc));
			s->err = rc;
			return;
		}
	}
	/* SQLITE_STATIC: the payload outlives the step, and the next frame
	 * binds its own before the statement runs again. */
	if (sqlite3_bind_int64(s->insert, 1, (sqlite3_int64)f->conn) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 2, (sqlite3_int64)f->seq) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s->insert, 3, f->received_us) != SQLITE_OK ||
	    sqlite3_bind_blob(s->insert, 4, f->data, (int)f->len,
	    SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "bind");
		return;
	}
	if (store_step(s, s->insert, "INSERT"))
		s->pending++;
}

/* Listener of "frame": written or not, the frame pays its credit. */
static int
on_store_frame(const worker_event_t *ev, void *ctx)
{
	struct store *s = ctx;
	struct frame *f = ev->data;

	store_insert(s, f);
	frame_pay(f);
	return 0;
}

static int
store_failed(const worker_event_t *ev, void *ctx)
{
	const struct store *s = ctx;

	(void)ev;
	return s->err != 0;
}

/*
 * Cleanup handler: commits what is left and closes.  The master stops the
 * store only after the last frame, and STOP_THREAD comes after it in the
 * queue, so this commit is the last one.
 */
static void
store_close(void *arg)
{
	struct store *s = arg;

	bool opened = s->commit != NULL;

	store_commit(s);
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		store_error(s, "close");
	s->r->rows = s->rows;
	if (opened)
		say("store: %" PRIu64 " rows committed to %s", s->rows,
		    s->r->db);
}

/* The task of the store; arg is the struct relay. */
static void *
store_task(void *arg)
{
	struct store s = { .r = arg };
	int rc;

	s.self = worker_current();
	worker_cleanup_push(store_close, &s);
	if (!store_open(&s))
		worker_fail(EIO);
	listen_self("frame", on_store_frame, &s);
	/* The master starts the others once the connection numbers are
	 * known. */
	if ((rc = worker_parent_fire(s.self, "ready", NULL)) != 0)
		worker_fail(rc);
	(void)worker_wait_until(store_failed, &s, -1, NULL);
	worker_fail(s.err);
	return NULL;
}

/* ---- fanout: the subscribers ----------------------------------------- */

struct fanout;

struct sub {
	struct fanout *fo;
	int fd;
	uint64_t id;
	uint64_t watch;
	unsigned events;	/* what the watch waits for */
	size_t greet;		/* bytes of the greeting still to send */
	struct fifo out;	/* frames not completely sent */
	size_t off;		/* bytes of the first of them sent */
	size_t pending;		/* bytes waiting, greeting included */
};

struct fanout {
	struct relay *r;
	struct acceptor acc;
	uint64_t next_id;
	bool flush_due;		/* a flush timer is pending */
	bool stopping;
	struct sub **subs;
	size_t nsubs;
	size_t cap;
};

static void
sub_drop(struct sub *s)
{
	struct fanout *fo = s->fo;

	for (size_t i = 0; i < fo->nsubs; i++)
		if (fo->subs[i] == s) {
			fo->subs[i] = fo->subs[--fo->nsubs];
			break;
		}
	if (s->watch != 0)
		(void)worker_unwatch(fo->acc.self, s->watch);
	close(s->fd);
	fifo_clear(&s->out);
	free(s);
}

static void on_sub_ready(int fd, unsigned revents, void *ctx);

/* Watches s for events (0: not at all); false if s was dropped. */
static bool
sub_watch(struct sub *s, unsigned events)
{
	int rc;

	if (s->events == events)
		return true;
	if (s->watch != 0)
		(void)worker_unwatch(s->fo->acc.self, s->watch);
	s->watch = 0;
	s->events = 0;
	if (events == 0)
		return true;
	rc = worker_watch(s->fo->acc.self, s->fd, events, on_sub_ready, s,
	    &s->watch);
	if (rc != 0) {
		say("subscriber %" PRIu64 ": watch: %s; dropping it", s->id,
		    strerror(rc));
		sub_drop(s);
		return false;
	}
	s->events = events;
	return true;
}

/* Takes n sent bytes off the front of what waits for s. */
static void
sub_consume(struct sub *s, size_t n)
{
	size_t k = s->greet < n ? s->greet : n;

	s->greet -= k;
	s->pending -= k;
	n -= k;
	while (n > 0) {
		struct frame *f = fifo_peek(&s->out, 0);
		size_t rest = sizeof(f->head) + f->len - s->off;

		if (n < rest) {
			s->off += n;
			s->pending -= n;
			return;
		}
		n -= rest;
		s->pending -= rest;
		s->off = 0;
		frame_unref(fifo_pop(&s->out));
	}
}

/*
 * Sends what waits for s until the socket is full; then the watch says
 * when it has room.  False if s was dropped.
 */
static bool
sub_write(struct sub *s)
{
	struct iovec iov[2 * IOV_FRAMES + 1];
	struct msghdr msg = { .msg_iov = iov };
	size_t n, total, skip;
	ssize_t sent;

	while (s->pending > 0) {
		n = 0;
		total = 0;
		skip = s->off;
		if (s->greet > 0) {
			iov[n].iov_base = (char *)GREETING + GREETING_LEN -
			    s->greet;
			iov[n++].iov_len = s->greet;
		}
		for (size_t i = 0; i < s->out.len && i < IOV_FRAMES; i++) {
			struct frame *f = fifo_peek(&s->out, i);

			if (skip < sizeof(f->head)) {
				iov[n].iov_base = f->head + skip;
				iov[n++].iov_len = sizeof(f->head) - skip;
				skip = 0;
			} else {
				skip -= sizeof(f->head);
			}
			if (f->len > skip) {
				iov[n].iov_base = f->data + skip;
				iov[n++].iov_len = f->len - skip;
			}
			skip = 0;
		}
		for (size_t i = 0; i < n; i++)
			total += iov[i].iov_len;
		msg.msg_iovlen = n;
		sent = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			if (verbose)
				say("subscriber %" PRIu64 ": %s; dropping it",
				    s->id, strerror(errno));
			sub_drop(s);
			return false;
		}
		if (sent > 0)
			sub_consume(s, (size_t)sent);
		if (sent < 0 || (size_t)sent < total)
			return sub_watch(s, WORKER_READABLE |
			    WORKER_WRITABLE);
	}
	return sub_watch(s, WORKER_READABLE);
}

static void
on_sub_ready(int fd, unsigned revents, void *ctx)
{
	struct sub *s = ctx;
	char junk[4096];
	ssize_t n;

	/* A subscriber has nothing to say: reading only tells whether it
	 * has gone.  The end of its input is its leaving. */
	if (revents & WORKER_READABLE) {
		n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN &&
		    errno != EWOULDBLOCK && errno != EINTR)) {
			if (verbose)
				say("subscriber %" PRIu64 ": gone", s->id);
			sub_drop(s);
			return;
		}
	}
	if (revents & WORKER_WRITABLE)
		(void)sub_write(s);
}

/* Takes a new subscriber; it gets the greeting, then every frame. */
static void
sub_add(int fd, void *ctx)
{
	struct fanout *fo = ctx;
	struct sub *s;

	if (fo->nsubs == fo->cap) {
		size_t cap = fo->cap != 0 ? 2 * fo->cap : 8;
		struct sub **v = realloc(fo->subs, cap * sizeof(*v));

		if (v == NULL) {
			say("no memory for a new subscriber; closing it");
			close(fd);
			return;
		}
		fo->subs = v;
		fo->cap = cap;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		say("no memory for a new subscriber; closing it");
		close(fd);
		return;
	}
	s->fo = fo;
	s->fd = fd;
	s->id = fo->next_id++;
	s->greet = GREETING_LEN;
	s->pending = GREETING_LEN;
	fo->subs[fo->nsubs++] = s;
	if (verbose)
		say("subscriber %" PRIu64 ": accepted", s->id);
	(void)sub_write(s);
}

/* Timer: the batch of frames is queued, send it in as few calls. */
static void
fanout_flush(void *arg)
{
	struct fanout *fo = arg;

	fo->flush_due = false;
	/* Backwards: a drop moves the last subscriber into its place. */
	for (size_t i = fo->nsubs; i-- > 0;)
		if (!(fo->subs[i]->events & WORKER_WRITABLE))
			(void)sub_write(fo->subs[i]);
}

/*
 * Listener of "frame": queue it for every subscriber, dropping those that
 * are too far behind, and flush once the batch of events is handled.
 */
static int
on_fanout_frame(const worker_event_t *ev, void *ctx)
{
	struct fanout *fo = ctx;
	struct frame *f = ev->data;
	size_t size = sizeof(f->head) + f->len;
	int rc;

	for (size_t i = fo->nsubs; i-- > 0;) {
		struct sub *s = fo->subs[i];

		/* One frame is always taken, however long. */
		if (s->pending > 0 && s->pending + size > fo->r->sub_buffer) {
			say("subscriber %" PRIu64 " is too slow (%zu bytes "
			    "waiting); dropping it", s->id, s->pending);
			fo->r->dropped++;
			sub_drop(s);
			continue;
		}
		if (fifo_push(&s->out, frame_ref(f)) != 0) {
			frame_unref(f);
			say("subscriber %" PRIu64 ": no memory; dropping it",
			    s->id);
			sub_drop(s);
			continue;
		}
		s->pending += size;
	}
	/* Queued for everyone: the subscribers' buffers are bounded on
	 * their own. */
	frame_pay(f);
	if (fo->nsubs > 0 && !fo->flush_due) {
		rc = worker_later(fo->acc.self, fanout_flush, fo, 0, NULL);
		if (rc != 0) {
			say("fanout: %s", strerror(rc));
			worker_fail(rc);
		}
		fo->flush_due = true;
	}
	return 0;
}

static bool
fanout_pending(const struct fanout *fo)
{
	for (size_t i = 0; i < fo->nsubs; i++)
		if (fo->subs[i]->pending > 0)
			return true;
	return false;
}

/*
 * Listener of STOP_THREAD: the last frames are queued; give the
 * subscribers a moment to take them before the stop closes them.
 */
static int
on_fanout_stop(const worker_event_t *ev, void *ctx)
{
	struct fanout *fo = ctx;
	struct timespec t0, t;

	(void)ev;
	if (fo->stopping)
		return 0;
	fo->stopping = true;
	acceptor_close(&fo->acc);
	fanout_flush(fo);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The watches send while this sleeps. */
	while (fanout_pending(fo)) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) +
		    (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= FLUSH_TIME)
			break;
		(void)worker_sleep(0.01);
	}
	return 0;
}

static void
fanout_close(void *arg)
{
	struct fanout *fo = arg;

	while (fo->nsubs > 0)
		sub_drop(fo->subs[fo->nsubs - 1]);
	free(fo->subs);
	acceptor_close(&fo->acc);
}

/* The task of the fanout; arg is the struct relay. */
static void *
fanout_task(void *arg)
{
	struct relay *r = arg;
	struct fanout fo = {
		.r = r,
		.acc = { .what = "subscriber", .fd = r->sub_fd,
		    .take = sub_add },
		.next_id = 1
	};

	r->sub_fd = -1;		/* the fanout's from now on */
	fo.acc.self = worker_current();
	fo.acc.ctx = &fo;
	worker_cleanup_push(fanout_close, &fo);
	listen_self("frame", on_fanout_frame, &fo);
	listen_self(WORKER_STOP_THREAD, on_fanout_stop, &fo);
	acceptor_start(&fo.acc);
	worker_wait_forever();
	return NULL;
}

/* ---- master: the root ------------------------------------------------ */

enum { TO_STORE, TO_FANOUT, TARGETS };

struct master {
	struct relay *r;
	worker_t *self;
	worker_t *listener;
	worker_t *target[TARGETS];	/* the store and the fanout */
	struct fifo backlog[TARGETS];	/* frames they refused for now */
	uint64_t retry;		/* the timer offering the backlogs again */
	bool draining;
};

/*
 * Fires f at target i with a reference of its own.  Returns EAGAIN if the
 * target's queue is full, else 0: taken, or lost with the target, and
 * then the master pays the target's share of credit.
 */
static int
master_send(struct master *m, int i, struct frame *f)
{
	int rc;

	rc = worker_fire_ex(m->target[i], "frame", frame_ref(f), frame_unref,
	    0);
	if (rc == EAGAIN)
		return rc;
	/* ESRCH: the store or the fanout has ended, and on_child_end()
	 * fails the master; nothing can be done with the frame. */
	if (rc != 0) {
		say("%s refused frame %" PRIu64 " of connection %" PRIu64
		    ": %s", worker_name(m->target[i]), f->seq, f->conn,
		    strerror(rc));
		frame_pay(f);
	}
	return 0;
}

static void master_retry(void *arg);

/* Keeps a retry timer while a backlog lasts. */
static void
master_arm(struct master *m)
{
	int rc;

	if (m->retry != 0 || (m->backlog[TO_STORE].len == 0 &&
	    m->backlog[TO_FANOUT].len == 0))
		return;
	rc = worker_later(m->self, master_retry, m, RETRY_DELAY, &m->retry);
	if (rc != 0)
		worker_fail(rc);
}

/* Offers the backlogs again, oldest first, as far as they go. */
static void
master_push(struct master *m)
{
	for (int i = 0; i < TARGETS; i++)
		while (m->backlog[i].len > 0 &&
		    master_send(m, i, fifo_peek(&m->backlog[i], 0)) == 0)
			frame_unref(fifo_pop(&m->backlog[i]));
	master_arm(m);
}

static void
master_retry(void *arg)
{
	struct master *m = arg;

	m->retry = 0;
	master_push(m);
}

/*
 * Listener of "frame", bubbled up by every framer.  A frame that a target
 * refuses waits in that target's backlog, and keeps its connection's
 * credit meanwhile: that is what stops the conns when the store or the
 * fanout cannot keep up.
 */
static int
on_master_frame(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	struct frame *f = ev->data;

	for (int i = 0; i < TARGETS; i++) {
		/* Behind a backlog, a frame waits its turn. */
		if (m->backlog[i].len == 0 && master_send(m, i, f) == 0)
			continue;
		if (fifo_push(&m->backlog[i], frame_ref(f)) != 0) {
			frame_unref(f);
			say("no memory: frame %" PRIu64 " of connection %"
			    PRIu64 " lost for the %s", f->seq, f->conn,
			    worker_name(m->target[i]));
			frame_pay(f);
		}
	}
	master_arm(m);
	return 0;
}

/* A child ended before the drain: relayd cannot go on without it. */
static int
on_child_end(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int rc;

	if (m->draining)
		return 0;
	rc = worker_result(ev->source, NULL);
	say("the %s has ended%s%s", worker_name(ev->source),
	    rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
	m->r->failed = true;
	worker_fail(rc != 0 ? rc : EIO);
	return 0;
}

/*
 * Waits for a child inside the drain, noting whether it failed.  A signal
 * during the start finds some children not started yet (NULL).
 */
static void
master_wait(struct master *m, worker_t *w)
{
	int rc;

	if (w != NULL && (rc = worker_wait_thread(w, NULL)) != 0) {
		say("the %s failed: %s", worker_name(w), strerror(rc));
		m->r->failed = true;
	}
}

/*
 * The orderly stop (see the top of this file).  Its waits run the
 * master's loop, so frames keep coming in, the backlog timer keeps
 * running, and another signal finds m->draining set.
 */
static void
master_drain(struct master *m)
{
	m->draining = true;
	if (m->listener != NULL &&
	    worker_fire(m->listener, "drain", NULL) == 0)
		master_wait(m, m->listener);
	while (m->backlog[TO_STORE].len > 0 || m->backlog[TO_FANOUT].len > 0) {
		master_push(m);
		if (m->backlog[TO_STORE].len > 0 ||
		    m->backlog[TO_FANOUT].len > 0)
			(void)worker_sleep(RETRY_DELAY);
	}
	/* STOP_THREAD is always admitted, behind every frame queued. */
	for (int i = 0; i < TARGETS; i++)
		if (m->target[i] != NULL)
			(void)worker_stop(m->target[i]);
	for (int i = 0; i < TARGETS; i++)
		master_wait(m, m->target[i]);
}

/* Listener of SIGNAL: SIGINT or SIGTERM. */
static int
on_master_signal(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int signo = (int)(intptr_t)ev->data;

	if (m->draining) {
		say("%s: already stopping", strsignal(signo));
		return 0;
	}
	say("%s: stopping after the frames received so far",
	    strsignal(signo));
	master_drain(m);
	worker_exit();
	return 0;
}

static void
master_close(void *arg)
{
	struct master *m = arg;

	for (int i = 0; i < TARGETS; i++) {
		fifo_clear(&m->backlog[i]);
		worker_unref(m->target[i]);
	}
	worker_unref(m->listener);
}

/*
 * Starts a child of the master; fails the master if it cannot.  Quiet:
 * on_child_end() reports its failure.
 */
static worker_t *
start_child(worker_fn fn, struct relay *r, const char *name,
    size_t queue_max)
{
	worker_attr_t attr = {
		.name = name, .queue_max = queue_max, .quiet = 1
	};
	worker_t *w;
	int rc;

	if ((w = worker_create(fn, r, &attr)) == NULL) {
		rc = errno;
		say("cannot start the %s: %s", name, strerror(rc));
		worker_fail(rc);
	}
	return w;
}

/* The task of the master; arg is the struct relay. */
static void *
master_task(void *arg)
{
	struct master m = { .r = arg };
	int rc;

	m.self = worker_current();
	worker_cleanup_push(master_close, &m);
	listen_self(WORKER_SIGNAL, on_master_signal, &m);
	listen_self(WORKER_CHILD_THREAD_END, on_child_end, &m);
	listen_self("frame", on_master_frame, &m);

	/* The store first: it knows which connection numbers are free.  If
	 * it fails instead, on_child_end() fails the master. */
	m.target[TO_STORE] = start_child(store_task, m.r, "store",
	    m.r->queue_max);
	if ((rc = worker_wait_event("ready", m.target[TO_STORE], -1,
	    NULL)) != 0)
		worker_fail(rc);
	m.target[TO_FANOUT] = start_child(fanout_task, m.r, "fanout",
	    m.r->queue_max);
	m.listener = start_child(listener_task, m.r, "listener", 0);
	say("ready: clients 127.0.0.1:%d, subscribers 127.0.0.1:%d, "
	    "database %s", m.r->port, m.r->sub_port, m.r->db);
	worker_wait_forever();
	return NULL;
}

/* ---- main ------------------------------------------------------------ */

static const char usage[] =
    "usage: relayd [-v] [-p PORT] [-s SUBPORT] [-d DB] [-q QUEUE] "
    "[-b BYTES]\n"
    "  -p, --port PORT        clients on 127.0.0.1:PORT (7400; 0: any)\n"
    "  -s, --sub-port PORT    subscribers on 127.0.0.1:PORT (7401)\n"
    "  -d, --db FILE          the SQLite database (relay.db)\n"
    "  -q, --queue N          events queued on the store and the fanout "
    "(1024)\n"
    "  -b, --sub-buffer BYTES how far a subscriber may fall behind "
    "(8388608)\n"
    "  -v, --verbose          log every connection\n";

static bool
parse_num(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && s[0] != '-' &&
	    *out >= min && *out <= max;
}

static bool
parse_options(int argc, char **argv, struct relay *r)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "sub-port", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "queue", required_argument, NULL, 'q' },
		{ "sub-buffer", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long long n;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:d:q:b:vh", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'p':
		case 's':
			if (!parse_num(optarg, 0, 65535, &n))
				return false;
			*(c == 'p' ? &r->port : &r->sub_port) = (int)n;
			break;
		case 'd':
			r->db = optarg;
			break;
		case 'q':
			if (!parse_num(optarg, 1, 1u << 24, &n))
				return false;
			r->queue_max = (size_t)n;
			break;
		case 'b':
			if (!parse_num(optarg, 1, SIZE_MAX / 2, &n))
				return false;
			r->sub_buffer = (size_t)n;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(EXIT_SUCCESS);
		default:
			return false;
		}
	}
	return optind == argc;
}

/* A listening socket on 127.0.0.1:*port; *port gets the port bound. */
static int
open_port(int *port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)*port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};
	socklen_t len = sizeof(sa);
	int fd, one = 1, err;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int
main(int argc, char **argv)
{
	struct relay r = {
		.db = "relay.db",
		.queue_max = 1024,
		.sub_buffer = 8u << 20,
		.port = 7400,
		.sub_port = 7401,
		.listen_fd = -1,
		.sub_fd = -1
	};
	worker_attr_t attr = { .name = "master", .quiet = 1 };
	struct rusage ru;
	worker_t *master;
	sigset_t sigs;
	int rc, status = EXIT_SUCCESS;

	if (!parse_options(argc, argv, &r)) {
		fputs(usage, stderr);
		return 2;
	}
	/* The sockets first, in main: a port in use fails here, at once,
	 * before there is a tree to stop. */
	if ((r.listen_fd = open_port(&r.port)) < 0 ||
	    (r.sub_fd = open_port(&r.sub_port)) < 0) {
		say("127.0.0.1:%d: %s", r.listen_fd < 0 ? r.port : r.sub_port,
		    strerror(errno));
		if (r.listen_fd >= 0)
			close(r.listen_fd);
		return EXIT_FAILURE;
	}
	if ((master = worker_new(master_task, &r, &attr)) == NULL) {
		say("worker_new: %s", strerror(errno));
		return EXIT_FAILURE;
	}
	/* Before any thread exists, so that every thread blocks them and
	 * only the master's loop sees them.  The notify set, not the stop
	 * set: a signal of the stop set stops the master, and a second one
	 * would stop it in the middle of the drain. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if ((rc = worker_signals(master, NULL, &sigs)) != 0) {
		say("worker_signals: %s", strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_start_overlay(master)) != 0) {
		say("worker_start_overlay: %s", strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_result(master, NULL)) != 0 || r.failed) {
		say("failed%s%s", rc != 0 ? ": " : "",
		    rc != 0 ? strerror(rc) : "");
		status = EXIT_FAILURE;
	}
	worker_unref(master);
	/* A child that never started left its socket here. */
	if (r.listen_fd >= 0)
		close(r.listen_fd);
	if (r.sub_fd >= 0)
		close(r.sub_fd);
	getrusage(RUSAGE_SELF, &ru);
	say("stopped: %" PRIu64 " frames read from %" PRIu64 " connections, %"
	    PRIu64 " rows committed, slow subscribers dropped: %" PRIu64
	    "; peak RSS %ld KiB", (uint64_t)atomic_load(&frames_read),
	    r.conns, r.rows, r.dropped, ru.ru_maxrss);
	return status;
}
