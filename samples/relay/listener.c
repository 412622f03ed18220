/*
 * listener.c - the listener: a child of the master.  It owns the clients'
 * listening socket and a count of its conns, which are its children: it
 * starts one per client and, on "drain" from the master, closes the socket,
 * tells each conn to wind up and ends once the last one has.  The frames
 * pass through it on their way up without a listener of its own.
 */
#include <stdbool.h>
#include <stddef.h>

#include "relayd.h"

struct listener {
	struct relay *r;
	struct acceptor acc;
	uint64_t next_id;	/* the next connection's number */
	size_t conns;		/* conns started and not yet ended */
	bool draining;
};

/* The acceptor's take(): a conn for the new client, which owns fd. */
static void
on_client(int fd, void *ctx)
{
	struct listener *l = ctx;

	if (!conn_start(fd, &l->next_id))
		return;
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
void *
listener_task(void *arg)
{
	struct relay *r = arg;
	struct listener l = {
		.r = r,
		.acc = { .what = "client", .fd = r->listen_fd,
		    .take = on_client },
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
