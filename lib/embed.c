/*
 * embed.c - worker_fd(): a descriptor that lets another event loop drive
 * a worker (libuv, GLib, a hand-written epoll loop).  Uses epoll and
 * timerfd, both Linux interfaces.
 *
 * DESIGN
 *
 * worker_fd() gives an epoll descriptor holding an eventfd and a timerfd
 * of the worker's own (wake.c keeps them): the eventfd is written when an
 * event is queued, the timerfd is armed at the nearest timer's deadline,
 * and worker_update() reads both, then makes the descriptor readable
 * again if work is left.  The eventfd is not the one of ppoll(), which
 * the owner's own waits drain and which must not hide events from an
 * outer loop.  Producers of such a worker take the locked path, which
 * knows the eventfd: the worker holds its ring closed for good.
 *
 * Locks: qlock.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "internal.h"

void
worker__embed_init(struct worker__embed_part *em)
{
	em->epfd = -1;
}

void
worker__embed_fini(worker_t *w)
{
	worker__close_fd(&w->embed.epfd);
}

/* After worker_update(): readable again if work is left. */
void
worker__fd_rearm(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	if (w->embed.epfd >= 0) {
		worker__fd_arm_locked(w);
		if (worker__pending_locked(w))
			worker__fd_signal_locked(w);
	}
	pthread_mutex_unlock(&w->qlock);
}

static int
make_fd_locked(worker_t *w)
{
	struct worker__wake_part *wk = &w->wake;
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if ((wk->xfd = worker__eventfd_new()) < 0 ||
	    (wk->tfd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    (w->embed.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(w->embed.epfd, EPOLL_CTL_ADD, wk->xfd, &ev) != 0 ||
	    epoll_ctl(w->embed.epfd, EPOLL_CTL_ADD, wk->tfd, &ev) != 0) {
		rc = errno;
		worker__close_fd(&w->embed.epfd);
		worker__close_fd(&wk->tfd);
		worker__close_fd(&wk->xfd);
		return rc;
	}
	worker__ring_hold_locked(w);
	/* What is already pending must show at once. */
	wk->fd_signaled = false;
	if (worker__pending_locked(w))
		worker__fd_signal_locked(w);
	worker__fd_arm_locked(w);
	return 0;
}

int
worker_fd(worker_t *w)
{
	int rc = 0;
	int fd;

	if (w == NULL || worker__gone(w)) {
		errno = w == NULL ? EINVAL : ESRCH;
		return -1;
	}
	pthread_mutex_lock(&w->qlock);
	if (w->embed.epfd < 0)
		rc = make_fd_locked(w);
	fd = w->embed.epfd;
	pthread_mutex_unlock(&w->qlock);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return fd;
}
