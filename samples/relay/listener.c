/*
 * listener.c - the listener: a child of the master.  It owns the clients'
 * listening socket and a count of its conns, which are its children: it
 * starts one per client.  Its stop closes the socket; then the library
 * stops its conns, all at once (attr.stop_order from the master), each
 * passing on what it has read, and waits for them.  The frames pass
 * through it on their way up without a listener of its own.
 */
#include <stdbool.h>
#include <stddef.h>

#include "relayd.h"

struct listener {
	struct relay *r;
	struct acceptor acc;
	uint64_t next_id;	/* the next connection's number */
};

/* The acceptor's take(): a conn for the new client, which owns fd. */
static void
on_client(int fd, void *ctx)
{
	struct listener *l = ctx;

	if (conn_start(fd, &l->next_id))
		l->r->conns++;
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
	listen_self(WORKER_STOP_THREAD, on_listener_stop, &l);
	acceptor_start(&l.acc);
	/* Every frame a conn bubbles reaches the master before the conn's
	 * end, and so before the listener's: the master relies on it. */
	worker_wait_forever();
	return NULL;
}
