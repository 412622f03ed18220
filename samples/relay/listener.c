/*
 * listener.c - the listener: a child of the master.  It owns the clients'
 * listening socket and its conns, --conn-workers children that it starts
 * and supervises.  It accepts each client, takes its place in the limits
 * (relayd.h, "Hostile clients") or refuses it, and hands it to the next
 * conn in turn.  Its stop closes the socket; then the library stops its
 * conns, all at once (attr.stop_order from the master), and waits for
 * them.  The frames pass through it on their way up without a listener
 * of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relayd.h"

struct listener {
	struct relay *r;
	struct acceptor acc;
	worker_t **conns;
	unsigned nconns;
	unsigned turn;		/* the conn that gets the next client */
	uint64_t next_id;	/* the next connection's number */
	uint64_t refused;	/* since the last line about them */
	uint64_t refuse_log;	/* the timer of that line, or 0 */
};

void
handoff_free(void *p)
{
	struct handoff *h = p;

	if (h->fd >= 0) {
		close(h->fd);
		limits_give(h->limits, h->addr);
	}
	free(h);
}

static void
refuse_log(void *arg)
{
	struct listener *l = arg;

	l->refuse_log = 0;
	say("refused %" PRIu64 " clients in the last second", l->refused);
	l->refused = 0;
}

/*
 * Turns a client away: a refusal, then the end of the stream.  What the
 * client has sent stays unread, and a close() would answer it with a
 * reset, which may overtake the refusal: shut the writing side first,
 * read what is there, then close.  A line a second at most in the log:
 * refusing is what relayd does under a flood.
 */
static void
refuse(struct listener *l, int fd, int code, uint64_t limit)
{
	unsigned char msg[MSG_LEN], junk[512];

	put_msg(msg, MSG_REFUSED, code, limit);
	(void)send(fd, msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(fd, SHUT_WR);
	for (int i = 0; i < 4 && recv(fd, junk, sizeof(junk),
	    MSG_DONTWAIT) > 0; i++)
		continue;
	close(fd);
	l->r->refused++;
	if (l->refused++ == 0 && worker_later(l->acc.self, refuse_log, l,
	    1.0, &l->refuse_log) != 0)
		l->refused = 0;
}

/* The acceptor's refuse(): out of descriptors. */
static void
on_no_fd(int fd, void *ctx)
{
	refuse(ctx, fd, REFUSE_NOFILE, 0);
}

/* The acceptor's take(): a place in the limits, and a conn. */
static void
on_client(int fd, void *ctx)
{
	struct listener *l = ctx;
	struct limits *lim = l->r->limits;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct handoff *h;
	int code;

	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0) {
		close(fd);	/* gone already */
		return;
	}
	if ((code = limits_take(lim, sa.sin_addr)) != 0) {
		refuse(l, fd, code, code == REFUSE_FULL ? lim->max :
		    lim->per_addr);
		return;
	}
	if ((h = malloc(sizeof(*h))) == NULL) {
		limits_give(lim, sa.sin_addr);
		say("no memory for a new client; closing it");
		close(fd);
		return;
	}
	h->fd = fd;
	h->addr = sa.sin_addr;
	h->id = l->next_id++;
	h->limits = lim;
	/* The next conn in turn; one being restarted passes its turn. */
	for (unsigned i = 0; i < l->nconns; i++) {
		worker_t *w = l->conns[l->turn++ % l->nconns];

		if (!worker_is_running(w))
			continue;
		/* Refused, the fire has called handoff_free(). */
		if (worker_fire_ex(w, "client", h, handoff_free, 0) == 0)
			l->r->conns++;
		return;
	}
	handoff_free(h);	/* no conn runs */
}

/*
 * Listener of STOP_THREAD, from the master's end: no new clients.  The
 * conns are stopped after this, as the listener unwinds.
 */
static int
on_listener_stop(const worker_event_t *ev, void *ctx)
{
	struct listener *l = ctx;

	(void)ev;
	acceptor_close(&l->acc);
	return 0;
}

static void
listener_close(void *arg)
{
	struct listener *l = arg;

	acceptor_close(&l->acc);
	for (unsigned i = 0; i < l->nconns; i++)
		worker_unref(l->conns[i]);
	free(l->conns);
}

/* Starts the conns; fails the listener if one cannot start. */
static void
start_conns(struct listener *l)
{
	worker_attr_t attr = {
		.stop_timeout = CONN_STOP_TIMEOUT,
		.restart = WORKER_RESTART_TRANSIENT
	};
	char name[32];
	int rc;

	if ((l->conns = calloc(l->r->conn_workers, sizeof(*l->conns))) ==
	    NULL)
		worker_fail(ENOMEM);
	for (unsigned i = 0; i < l->r->conn_workers; i++) {
		snprintf(name, sizeof(name), "conn-%u", i);
		attr.name = name;
		if ((l->conns[i] = worker_create(conn_task, l->r, &attr)) ==
		    NULL) {
			rc = errno;
			say("cannot start %s: %s", name, strerror(rc));
			worker_fail(rc);
		}
		l->nconns++;
	}
}

/* The task of the listener; arg is the struct relay. */
void *
listener_task(void *arg)
{
	struct relay *r = arg;
	struct listener l = {
		.r = r,
		.acc = { .what = "client", .fd = r->listen_fd,
		    .take = on_client, .refuse = on_no_fd, .spare = -1 },
		.next_id = r->first_conn
	};

	r->listen_fd = -1;	/* the listener's from now on */
	l.acc.self = worker_current();
	l.acc.ctx = &l;
	worker_cleanup_push(listener_close, &l);
	listen_self(WORKER_STOP_THREAD, on_listener_stop, &l);
	start_conns(&l);
	acceptor_start(&l.acc);
	/* Every frame a conn bubbles reaches the master before the conn's
	 * end, and so before the listener's: the master relies on it. */
	worker_wait_forever();
	return NULL;
}
