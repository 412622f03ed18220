/*
 * acceptor.c - a listening socket in a worker's loop, for the listener
 * (clients) and the fanout (subscribers).  The acceptor lives in its
 * worker's frame and is touched by that worker only; it owns the socket,
 * its watch, the timer that resumes accepting after an error and, with
 * refuse(), a spare descriptor; it hands every new socket to its take().
 *
 * Out of descriptors, the socket stays readable, and watching it would
 * spin.  With refuse(), the acceptor closes its spare descriptor, accepts
 * the client into that room, hands it to refuse(), which tells it and
 * closes it, and opens the spare again: the client hears why at once, and
 * the others go on.  Without, or when that fails too, it stops accepting
 * for ACCEPT_PAUSE and the clients wait in the backlog.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relayd.h"

#define ACCEPT_BATCH	64		/* accepts per callback */
#define ACCEPT_PAUSE	0.1		/* seconds without accepting after
					 * an accept error */

static void
acceptor_resume(void *arg)
{
	struct acceptor *a = arg;

	a->retry = 0;
	acceptor_start(a);
}

/*
 * Out of descriptors: turns the next client away with the spare one.
 * False if that could not be done (no spare, or it was taken meanwhile).
 */
static bool
refuse_one(struct acceptor *a)
{
	int cfd;

	if (a->refuse == NULL || a->spare < 0)
		return false;
	close(a->spare);
	cfd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd >= 0)
		a->refuse(cfd, a->ctx);
	a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return cfd >= 0 && a->spare >= 0;
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
		if ((errno == EMFILE || errno == ENFILE) && refuse_one(a))
			continue;
		/* The socket stays readable: look again in a moment. */
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

void
acceptor_start(struct acceptor *a)
{
	int rc;

	if (a->refuse != NULL && a->spare < 0)
		a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);

	rc = worker_watch(a->self, a->fd, WORKER_READABLE, on_acceptable, a,
	    &a->watch);
	if (rc != 0) {
		say("watching for a %s: %s", a->what, strerror(rc));
		worker_fail(rc);
	}
}

/* Stops accepting and closes the socket; pending clients are refused. */
void
acceptor_close(struct acceptor *a)
{
	if (a->watch != 0)
		(void)worker_unwatch(a->self, a->watch);
	if (a->retry != 0)
		(void)worker_cancel(a->self, a->retry);
	if (a->fd >= 0)
		close(a->fd);
	if (a->refuse != NULL && a->spare >= 0)
		close(a->spare);
	a->spare = -1;
	a->watch = 0;
	a->retry = 0;
	a->fd = -1;
}
