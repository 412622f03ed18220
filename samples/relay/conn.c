/*
 * conn.c - a conn: one of the listener's --conn-workers children, which
 * serves many connections.  It owns an epoll descriptor, which its loop
 * watches (worker_watch), every connection the listener hands it (the
 * socket, and the struct conn with its framer, framer.c), and the batch of
 * frames read in a round on their way up.  It reads a connection while
 * it has credit, writes its welcome and its acks, closes it when it is
 * done, idle or too slow, and gives its place in the limits back.
 *
 * DESIGN
 *
 * Everything here is touched by the conn's thread only: the callbacks of
 * the epoll descriptor, of the tick and of the sweep, and the listeners,
 * all run in its loop.  What other threads touch is in the credit: the
 * bytes in flight and the committed number, which the store writes.
 *
 * A connection is in the epoll set exactly while it is read (reading):
 * not while it is out of credit or relayd out of room for frames (its
 * bytes wait in the kernel), nor once the client has ended its stream.
 * It is busy, on the list the tick walks, while it has frames not yet
 * acked, an ack to write, or no credit: the tick writes the acks that the
 * commits allow, reads again when credit comes back, and closes a
 * finished connection once all is acked.  The sweep, every SWEEP_MAX at
 * most, closes the connections that broke a timeout; those out of credit
 * are not held to them, since relayd is the one who does not read.
 *
 * Level-triggered epoll, one read per ready connection per round: a busy
 * client cannot starve the others, and what it left is there next round.
 * Only the connection being handled can close during a round, so an
 * event never refers to a freed one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"

#define EPOLL_BATCH	256		/* events per round */
#define SWEEP_MAX	1.0		/* s between two looks at timeouts */
#define NOT_BUSY	SIZE_MAX

struct shard;

/* One connection. */
struct conn {
	struct shard *sh;
	int fd;
	struct in_addr addr;
	struct credit *credit;	/* referenced; the framer borrows it */
	struct framer fr;
	size_t slot;		/* in sh->all */
	size_t busy;		/* in sh->busy, or NOT_BUSY */
	double last_rx;		/* when bytes last came */
	double msg_start;	/* when the message being read began, or 0 */
	bool reading;		/* in the epoll set */
	bool eof;		/* the client has sent all it will */
	uint64_t acked;		/* 1 + the sequence to ack, or 0 */
	uint64_t ack_sent;	/* acked as last put into out */
	unsigned char out[2 * MSG_LEN];
	size_t out_off;		/* bytes of out written */
	size_t out_len;		/* bytes of out to write, from out_off */
};

/* A growable array of connections. */
struct conns {
	struct conn **v;
	size_t n;
	size_t cap;
};

/* The conn worker; its task's. */
struct shard {
	struct relay *r;
	worker_t *self;
	int epfd;
	uint64_t watch;		/* of epfd; 0 while out of room for frames */
	double unblocked;	/* when it was last given room again */
	uint64_t tick;		/* the pending tick, or 0 */
	bool ticking;		/* the tick runs: it arms the next itself */
	unsigned quiet;		/* ticks in a row that moved nothing */
	double tick_delay;	/* of the pending tick */
	double now;		/* monotonic, taken as each callback starts */
	struct conns all;
	struct conns busy;
	struct uplink up;	/* frames read, on their way up */
	uint64_t idle_closed;	/* since the last line about them */
	uint64_t slow_closed;
	unsigned char buf[READ_CHUNK];
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends c to a, noting where in *slot; false without memory. */
static bool
conns_add(struct conns *a, struct conn *c, size_t *slot)
{
	if (a->n == a->cap) {
		size_t cap = a->cap != 0 ? 2 * a->cap : 64;
		struct conn **v = realloc(a->v, cap * sizeof(*v));

		if (v == NULL)
			return false;
		a->v = v;
		a->cap = cap;
	}
	*slot = a->n;
	a->v[a->n++] = c;
	return true;
}

/* Takes out the entry at slot: the last one moves into its place. */
static void
conns_remove(struct conns *a, size_t slot, bool busy)
{
	struct conn *last = a->v[--a->n];

	if (slot != a->n) {
		a->v[slot] = last;
		*(busy ? &last->busy : &last->slot) = slot;
	}
}

/* ---- Closing ---------------------------------------------------------- */

/*
 * Closes c and frees it.  why, if not NULL, is logged with a message cut
 * short; the frames before it have gone up.
 */
static void
conn_close(struct conn *c, const char *why)
{
	struct shard *sh = c->sh;

	framer_end(&c->fr, why);
	close(c->fd);		/* which takes it out of the epoll set */
	limits_give(sh->r->limits, c->addr);
	conns_remove(&sh->all, c->slot, false);
	if (c->busy != NOT_BUSY)
		conns_remove(&sh->busy, c->busy, true);
	if (verbose)
		say("connection %" PRIu64 ": closed after %" PRIu64 " frames, "
		    "%" PRIu64 " acked", c->credit->conn,
		    framer_sent(&c->fr), c->acked);
	credit_unref(c->credit);
	free(c);
}

/*
 * Writes what waits in out, and then the ack due if it has changed.
 * False if the connection is broken: the caller closes it.
 */
static bool
conn_flush(struct conn *c)
{
	ssize_t n;

	for (;;) {
		if (c->out_len == 0) {
			if (c->ack_sent >= c->acked)
				return true;
			put_msg(c->out, MSG_ACK, 0, c->acked - 1);
			c->out_off = 0;
			c->out_len = MSG_LEN;
			c->ack_sent = c->acked;
		}
		n = send(c->fd, c->out + c->out_off, c->out_len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR;
		c->out_off += (size_t)n;
		c->out_len -= (size_t)n;
	}
}

/* Queues a message of relayd's behind what waits in out. */
static void
conn_say(struct conn *c, int type, int code, uint64_t value)
{
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len);
		c->out_off = 0;
	}
	if (c->out_len + MSG_LEN > sizeof(c->out))
		return;		/* two unwritten: the client reads nothing */
	put_msg(c->out + c->out_len, type, code, value);
	c->out_len += MSG_LEN;
}

/* An error of the client's: tell it, if the socket takes it, and close. */
static void
conn_error(struct conn *c, int code, uint64_t value, const char *why)
{
	conn_say(c, MSG_ERROR, code, value);
	(void)conn_flush(c);
	conn_close(c, why);
}

/* ---- The tick: acks and credit ---------------------------------------- */

static void shard_tick(void *arg);
static void on_epoll(int fd, unsigned revents, void *ctx);

/*
 * The tick's period while things move: ACK_TICK, and longer with many
 * busy connections, since it looks at each of them, so that the looks
 * cost the same whatever their number.
 */
static double
tick_base(const struct shard *sh)
{
	return ACK_TICK * (double)(1 + sh->busy.n / ACK_TICK_CONNS);
}

/* Has the tick look at the busy connections within its period. */
static void
shard_arm(struct shard *sh)
{
	double base = tick_base(sh);
	int rc;

	if (sh->ticking || (sh->tick != 0 && sh->tick_delay <= base))
		return;
	if (sh->tick != 0)
		(void)worker_cancel(sh->self, sh->tick);
	sh->tick_delay = base;
	sh->quiet = 0;
	rc = worker_later(sh->self, shard_tick, sh, base, &sh->tick);
	if (rc != 0)
		worker_fail(rc);
}

/*
 * relayd is out of room for frames (--max-memory): the conn stops
 * polling its connections at all until the tick finds room, rather than
 * take each ready one out of the epoll set and put it back.
 */
static void
shard_block(struct shard *sh)
{
	if (sh->watch != 0)
		(void)worker_unwatch(sh->self, sh->watch);
	sh->watch = 0;
	shard_arm(sh);
}

/* Room again: poll the connections. */
static void
shard_unblock(struct shard *sh)
{
	int rc;

	if ((rc = worker_watch(sh->self, sh->epfd, WORKER_READABLE, on_epoll,
	    sh, &sh->watch)) != 0)
		worker_fail(rc);
	/* The time without polling is relayd's, not the clients'. */
	sh->unblocked = sh->now;
}

/* c needs the tick: frames to ack, an ack to write, no credit. */
static bool
conn_busy(struct conn *c)
{
	if (c->busy == NOT_BUSY && !conns_add(&c->sh->busy, c, &c->busy)) {
		say("connection %" PRIu64 ": no memory; closing it",
		    c->credit->conn);
		conn_error(c, ERR_NOMEM, 0, NULL);
		return false;
	}
	shard_arm(c->sh);
	return true;
}

/*
 * Out of credit, or relayd out of room for frames: the conn reads no
 * more from c until the tick finds some.  False if c was closed.
 */
static bool
conn_pause(struct conn *c)
{
	(void)epoll_ctl(c->sh->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->reading = false;
	return conn_busy(c);
}

/* Credit is back: read c again.  False if closed. */
static bool
conn_resume(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (epoll_ctl(c->sh->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		say("connection %" PRIu64 ": epoll: %s; closing it",
		    c->credit->conn, strerror(errno));
		conn_error(c, ERR_NOMEM, 0, NULL);
		return false;
	}
	c->reading = true;
	c->last_rx = c->sh->now;
	return true;
}

/*
 * The tick's look at one busy connection.  Returns true if something
 * moved: an ack, credit, an end.
 */
static bool
conn_service(struct conn *c)
{
	uint64_t committed = atomic_load_explicit(&c->credit->committed,
	    memory_order_acquire);
	bool moved = false;

	if (committed > c->acked) {
		/* lost is set before any later frame is committed: the
		 * acquire above makes it visible. */
		if (atomic_load(&c->credit->lost)) {
			conn_error(c, ERR_NOMEM, 0, "a frame was lost");
			return true;
		}
		c->acked = committed;
		moved = true;
	}
	if (!conn_flush(c)) {
		conn_close(c, c->eof ? NULL : "the client left");
		return true;
	}
	if (!c->reading && !c->eof && atomic_load_explicit(&c->credit->used,
	    memory_order_relaxed) < CONN_WINDOW) {
		if (!conn_resume(c))
			return true;
		moved = true;
	}
	if (c->eof && c->out_len == 0 && c->acked >= framer_sent(&c->fr)) {
		conn_close(c, NULL);
		return true;
	}
	if (c->reading && c->out_len == 0 &&
	    c->acked >= framer_sent(&c->fr)) {
		conns_remove(&c->sh->busy, c->busy, true);
		c->busy = NOT_BUSY;
	}
	return moved;
}

static void
shard_tick(void *arg)
{
	struct shard *sh = arg;
	bool moved = false;
	int rc;

	sh->tick = 0;
	sh->now = mono_now();
	sh->ticking = true;
	if (sh->watch == 0 && budget_open(&sh->r->budget)) {
		shard_unblock(sh);
		moved = true;
	}
	/* Backwards: a connection that leaves the list (or closes) has the
	 * last one, already seen, moved into its place. */
	for (size_t i = sh->busy.n; i-- > 0;)
		if (i < sh->busy.n && conn_service(sh->busy.v[i]))
			moved = true;
	sh->ticking = false;
	if (sh->busy.n == 0 && sh->watch != 0)
		return;
	/* Commits come every few ticks under load: back off only once
	 * nothing has moved for ACK_QUIET ticks in a row. */
	sh->quiet = moved ? 0 : sh->quiet + 1;
	sh->tick_delay = sh->quiet < ACK_QUIET ? tick_base(sh) :
	    2 * sh->tick_delay;
	if (sh->tick_delay > ACK_TICK_MAX)
		sh->tick_delay = ACK_TICK_MAX;
	rc = worker_later(sh->self, shard_tick, sh, sh->tick_delay,
	    &sh->tick);
	if (rc != 0)
		worker_fail(rc);
}

/* ---- Reading ---------------------------------------------------------- */

/*
 * Hands n bytes read from c to its framer: the welcome after the hello,
 * an error that ends it.  False if c was closed.
 */
static bool
conn_feed(struct conn *c, const unsigned char *p, size_t n)
{
	uint64_t sent = framer_sent(&c->fr), val;
	bool hello = c->fr.hello;
	int err;

	err = framer_take(&c->fr, p, n, &val);
	/* The welcome first, even before an error in the same bytes. */
	if (!hello && c->fr.hello)
		conn_say(c, MSG_WELCOME, 0, PROTO_VERSION);
	if (err != 0) {
		conn_error(c, err, val, NULL);
		return false;
	}
	if (!hello && c->fr.hello && !conn_flush(c)) {
		conn_close(c, "the client left");
		return false;
	}
	/* A message completed: the clock of the next starts with it. */
	if (framer_sent(&c->fr) != sent || c->fr.hello != hello)
		c->msg_start = 0;
	if (framer_partial(&c->fr) && c->msg_start == 0)
		c->msg_start = c->sh->now;
	if (framer_sent(&c->fr) != sent)
		return conn_busy(c);
	return true;
}

/* The client has ended its stream: acks until all is acked, then close. */
static void
conn_eof(struct conn *c)
{
	framer_end(&c->fr, "the client left");
	(void)epoll_ctl(c->sh->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->reading = false;
	c->eof = true;
	c->msg_start = 0;
	if (c->out_len == 0 && c->acked >= framer_sent(&c->fr))
		conn_close(c, NULL);
	else
		(void)conn_busy(c);
}

static void
conn_readable(struct conn *c)
{
	struct shard *sh = c->sh;
	ssize_t n;

	/* Checked before the read, which the framer then takes whole: so
	 * a connection holds at most one read past its credit. */
	if (atomic_load_explicit(&c->credit->used, memory_order_relaxed) >=
	    CONN_WINDOW) {
		(void)conn_pause(c);
		return;
	}
	n = read(c->fd, sh->buf, sizeof(sh->buf));
	if (n > 0) {
		c->last_rx = sh->now;
		(void)conn_feed(c, sh->buf, (size_t)n);
	} else if (n == 0) {
		conn_eof(c);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR) {
		/* A reset is a client leaving too; no ack can reach it. */
		if (verbose)
			say("connection %" PRIu64 ": %s", c->credit->conn,
			    strerror(errno));
		conn_close(c, "the client left");
	}
}

/* The watch of the epoll descriptor: a round of ready connections. */
static void
on_epoll(int fd, unsigned revents, void *ctx)
{
	struct shard *sh = ctx;
	struct epoll_event ev[EPOLL_BATCH];
	int n;

	(void)revents;
	if ((n = epoll_wait(fd, ev, EPOLL_BATCH, 0)) <= 0)
		return;
	sh->now = mono_now();
	for (int i = 0; i < n; i++) {
		/* The events left are there again once unblocked. */
		if (!budget_open(&sh->r->budget)) {
			shard_block(sh);
			break;
		}
		conn_readable(ev[i].data.ptr);
	}
	uplink_flush(&sh->up);
}

/* ---- Timeouts --------------------------------------------------------- */

/* worker_every(): closes the connections that broke a timeout. */
static void
shard_sweep(void *arg)
{
	struct shard *sh = arg;
	const struct relay *r = sh->r;
	struct conn *c;

	sh->now = mono_now();
	if (sh->watch == 0)
		return;		/* relayd reads nobody: not their fault */
	for (size_t i = sh->all.n; i-- > 0;) {
		if (i >= sh->all.n)
			continue;
		c = sh->all.v[i];
		if (!c->reading && !c->eof)
			continue;	/* ours, not the client's: no credit */
		if (c->msg_start != 0 && sh->now - (c->msg_start >
		    sh->unblocked ? c->msg_start : sh->unblocked) >
		    r->frame_timeout) {
			sh->slow_closed++;
			conn_error(c, ERR_SLOW_FRAME, 0, verbose ?
			    "timed out" : NULL);
		} else if (c->msg_start == 0 && sh->now - (c->last_rx >
		    sh->unblocked ? c->last_rx : sh->unblocked) >
		    r->idle_timeout) {
			sh->idle_closed++;
			conn_error(c, ERR_IDLE, 0, NULL);
		}
	}
	if (sh->idle_closed + sh->slow_closed == 0)
		return;
	say("%s: closed %" PRIu64 " idle connections and %" PRIu64 " whose "
	    "message took too long", worker_name(sh->self), sh->idle_closed,
	    sh->slow_closed);
	sh->idle_closed = sh->slow_closed = 0;
}

/* ---- The worker ------------------------------------------------------- */

/* Listener of "client", from the listener: a new connection. */
static int
on_client(const worker_event_t *ev, void *ctx)
{
	struct shard *sh = ctx;
	struct handoff *h = ev->data;
	struct epoll_event e = { .events = EPOLLIN };
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->credit = credit_new(h->id, &sh->r->budget)) == NULL) {
		say("no memory for a new client; closing it");
		free(c);
		return 0;	/* handoff_free() closes it */
	}
	c->sh = sh;
	c->fd = h->fd;
	c->addr = h->addr;
	c->busy = NOT_BUSY;
	c->last_rx = mono_now();
	framer_init(&c->fr, c->credit, &sh->up);
	e.data.ptr = c;
	if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, c->fd, &e) != 0 ||
	    !conns_add(&sh->all, c, &c->slot)) {
		say("connection %" PRIu64 ": cannot serve it: %s; closing it",
		    h->id, strerror(errno));
		/* handoff_free() closes the socket, which leaves the set. */
		credit_unref(c->credit);
		free(c);
		return 0;
	}
	c->reading = true;
	h->fd = -1;		/* the conn's now, and its place */
	if (verbose)
		say("connection %" PRIu64 ": accepted by %s", h->id,
		    worker_name(sh->self));
	return 0;
}

/*
 * Listener of STOP_THREAD: relayd stops.  The frames read have gone up;
 * the partial ones are dropped, and the clients will send them again.
 */
static int
on_conn_stop(const worker_event_t *ev, void *ctx)
{
	struct shard *sh = ctx;
	size_t partial = 0, n = sh->all.n;

	(void)ev;
	while (sh->all.n > 0) {
		struct conn *c = sh->all.v[sh->all.n - 1];

		partial += framer_partial(&c->fr);
		conn_close(c, NULL);
	}
	if (n > 0)
		say("%s: stopping: closed %zu connections, %zu of them in the "
		    "middle of a message", worker_name(sh->self), n, partial);
	return 0;
}

/* Cleanup handler: the conn owns its connections and the epoll set. */
static void
shard_close(void *arg)
{
	struct shard *sh = arg;

	while (sh->all.n > 0)
		conn_close(sh->all.v[sh->all.n - 1], NULL);
	/* Frames read in a round that a failure cut short: their
	 * connections are closed, and their clients send them again. */
	if (sh->up.b != NULL)
		for (size_t i = 0; i < sh->up.b->n; i++) {
			frame_pay(sh->up.b->v[i]);
			frame_unref(sh->up.b->v[i]);
		}
	free(sh->up.b);
	if (sh->epfd >= 0)
		close(sh->epfd);
	free(sh->all.v);
	free(sh->busy.v);
	free(sh);
}

/* The task of a conn; arg is the struct relay.  Each run starts anew. */
void *
conn_task(void *arg)
{
	struct relay *r = arg;
	struct shard *sh;
	double sweep;
	int rc;

	if ((sh = calloc(1, sizeof(*sh))) == NULL)
		worker_fail(ENOMEM);
	sh->r = r;
	sh->self = worker_current();
	sh->epfd = -1;
	worker_cleanup_push(shard_close, sh);
	if ((sh->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		worker_fail(errno);
	shard_unblock(sh);
	/* A timeout is kept to within a quarter of itself. */
	sweep = (r->idle_timeout < r->frame_timeout ? r->idle_timeout :
	    r->frame_timeout) / 4;
	if ((rc = worker_every(sh->self, shard_sweep, sh,
	    sweep < SWEEP_MAX ? sweep : SWEEP_MAX, NULL)) != 0)
		worker_fail(rc);
	listen_self("client", on_client, sh);
	listen_self(WORKER_STOP_THREAD, on_conn_stop, sh);
	worker_wait_forever();
	return NULL;
}
