/*
 * watch.c - file descriptors in the worker's loop (worker_watch,
 * worker_unwatch) and the descriptor that lets another event loop drive a
 * worker (worker_fd).
 *
 * DESIGN
 *
 * A worker with no watch sleeps on its futex word, as before: no
 * descriptor, no system call more.  The first watch gives the worker an
 * eventfd.  From then on the loop sleeps in ppoll() over the eventfd and
 * the watched descriptors, and a producer that finds the owner asleep
 * (w->sleeping with w->polling) writes the eventfd instead of waking
 * the futex.  Between batches of events the loop also polls
 * without waiting, so busy workers still serve their descriptors.
 *
 * The watches are a list guarded by w->qlock, since any thread may watch
 * or unwatch.  The owner polls from a copy it makes under the lock, and
 * before each callback looks the watch up again by id: a watch removed
 * meanwhile (also by an earlier callback of the same round) is not called.
 * The callback runs without the lock, with the values copied, so an
 * unwatch from inside it frees nothing the loop still reads.
 *
 * worker_fd() gives an epoll descriptor holding a second eventfd and a
 * timerfd: that eventfd is written when an event is queued, the timerfd is
 * armed at the nearest timer's deadline, and worker_update() reads both.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

/* Callbacks run per round at most; the rest wait for the next poll. */
#define READY_MAX 32

struct watch {
	struct list_node link;	/* qlock: in w->watches */
	uint64_t id;
	int fd;
	short events;		/* POLLIN, POLLOUT */
	void (*cb)(int fd, unsigned revents, void *ctx);
	void *ctx;
};

struct ready {
	uint64_t id;
	int fd;
	unsigned revents;
};

static atomic_uint_least64_t next_watch_id = 1;

/* The eventfd that wakes a polling owner; created on first need. */
static int
need_eventfd(worker_t *w)
{
	if (w->efd < 0 &&
	    (w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return errno;
	return 0;
}

static void
drain_eventfd(int fd)
{
	uint64_t n;

	if (fd >= 0 && read(fd, &n, sizeof(n)) < 0)
		errno = 0;	/* EAGAIN: it was not readable */
}

static void
poke_eventfd(int fd)
{
	uint64_t one = 1;

	/* Only EAGAIN can fail here, and then it is readable already. */
	if (write(fd, &one, sizeof(one)) < 0)
		errno = 0;
}

/* Wakes the owner from ppoll(); qlock held. */
void
worker__poke_locked(worker_t *w)
{
	poke_eventfd(w->efd);
}

/* A sleeping owner must look at its watches again; qlock held. */
static void
rethink_locked(worker_t *w)
{
	w->woken = true;
	worker__signal_locked(w);
}

int
worker_watch(worker_t *w, int fd, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), void *ctx,
    uint64_t *id)
{
	struct watch *wa;
	uint64_t wid;
	int rc;

	if (w == NULL || fd < 0 || cb == NULL || events == 0 ||
	    (events & ~(unsigned)(WORKER_READABLE | WORKER_WRITABLE)) != 0)
		return EINVAL;
	if ((wa = malloc(sizeof(*wa))) == NULL)
		return ENOMEM;
	wid = atomic_fetch_add(&next_watch_id, 1);
	wa->id = wid;
	wa->fd = fd;
	wa->events = (short)(((events & WORKER_READABLE) ? POLLIN : 0) |
	    ((events & WORKER_WRITABLE) ? POLLOUT : 0));
	wa->cb = cb;
	wa->ctx = ctx;
	pthread_mutex_lock(&w->qlock);
	rc = w->phase != PHASE_RUNNING ? ESRCH : need_eventfd(w);
	if (rc == 0) {
		list_append(&w->watches, &wa->link);
		atomic_fetch_add(&w->nwatch, 1);
		/* Producers must take the locked path, which knows polling. */
		worker__ring_close_locked(w);
		/* A sleeping owner must start polling this descriptor too. */
		rethink_locked(w);
	}
	pthread_mutex_unlock(&w->qlock);
	if (rc != 0) {
		free(wa);
		return rc;
	}
	/* Not wa->id: once unlocked, wa may be unwatched and freed. */
	if (id != NULL)
		*id = wid;
	return 0;
}

static struct watch *
find_locked(worker_t *w, uint64_t id)
{
	struct list_node *n;

	list_for_each(n, &w->watches) {
		struct watch *wa = container_of(n, struct watch, link);

		if (wa->id == id)
			return wa;
	}
	return NULL;
}

int
worker_unwatch(worker_t *w, uint64_t id)
{
	struct watch *wa;

	if (w == NULL || id == 0)
		return EINVAL;
	pthread_mutex_lock(&w->qlock);
	if ((wa = find_locked(w, id)) != NULL) {
		list_remove(&wa->link);
		atomic_fetch_sub(&w->nwatch, 1);
		/* A poll still waiting on the descriptor must let go of it. */
		rethink_locked(w);
	}
	pthread_mutex_unlock(&w->qlock);
	free(wa);
	return wa != NULL ? 0 : ENOENT;
}

static unsigned
revents_of(short r)
{
	unsigned out = 0;

	if (r & (POLLIN | POLLPRI))
		out |= WORKER_READABLE;
	if (r & POLLOUT)
		out |= WORKER_WRITABLE;
	/* An error or a hang-up is for the reader and the writer to see. */
	if (r & (POLLERR | POLLHUP | POLLNVAL))
		out |= WORKER_READABLE | WORKER_WRITABLE;
	return out;
}

/*
 * Copies the poll set into w->pfds (eventfd first) and the ids alongside;
 * qlock held.  Returns the count, or 0 if memory ran out.
 */
static size_t
build_pollset(worker_t *w, uint64_t **ids)
{
	size_t n = atomic_load(&w->nwatch) + 1;
	struct list_node *pos;
	size_t i = 1;

	if (n > w->pfds_cap) {
		struct pollfd *p = realloc(w->pfds, n * sizeof(*p));
		uint64_t *q = realloc(w->pfd_ids, n * sizeof(*q));

		if (p != NULL)
			w->pfds = p;
		if (q != NULL)
			w->pfd_ids = q;
		if (p == NULL || q == NULL)
			return 0;
		w->pfds_cap = n;
	}
	w->pfds[0].fd = w->efd;
	w->pfds[0].events = POLLIN;
	list_for_each(pos, &w->watches) {
		struct watch *wa = container_of(pos, struct watch, link);

		w->pfds[i].fd = wa->fd;
		w->pfds[i].events = wa->events;
		w->pfd_ids[i] = wa->id;
		i++;
	}
	*ids = w->pfd_ids;
	return n;
}

static struct timespec
timeout_until(uint64_t until)
{
	uint64_t now = worker__now_ns();

	return worker__timespec(until > now ? until - now : 0);
}

/*
 * Polls w's descriptors: without waiting, or (wait) until an event is
 * queued, a wake, a ready descriptor or until (UINT64_MAX: no limit).
 * Fills ready[] and returns its count.  A wait consumes w->woken, as the
 * futex path does.
 */
static size_t
poll_round(worker_t *w, bool wait, uint64_t until, struct ready *ready)
{
	struct timespec ts;
	uint64_t *ids;
	size_t n, count = 0;

	pthread_mutex_lock(&w->qlock);
	if (wait && (!worker__queue_empty_locked(w) || w->woken)) {
		w->woken = false;
		pthread_mutex_unlock(&w->qlock);
		return 0;
	}
	if (atomic_load(&w->nwatch) == 0 ||
	    (n = build_pollset(w, &ids)) == 0) {
		pthread_mutex_unlock(&w->qlock);
		return 0;
	}
	w->sleeping = wait;
	w->polling = wait;
	pthread_mutex_unlock(&w->qlock);

	if (wait && until != UINT64_MAX)
		ts = timeout_until(until);
	else
		ts = (struct timespec){ 0, 0 };
	if (ppoll(w->pfds, n, (wait && until == UINT64_MAX) ? NULL : &ts,
	    NULL) > 0) {
		for (size_t i = 1; i < n && count < READY_MAX; i++)
			if (w->pfds[i].revents != 0) {
				ready[count].id = ids[i];
				ready[count].fd = w->pfds[i].fd;
				ready[count].revents =
				    revents_of(w->pfds[i].revents);
				count++;
			}
	}

	pthread_mutex_lock(&w->qlock);
	w->sleeping = false;
	w->polling = false;
	if (wait)
		w->woken = false;
	if (w->pfds[0].revents != 0)
		drain_eventfd(w->efd);
	pthread_mutex_unlock(&w->qlock);
	return count;
}

/* Calls the callbacks of the ready descriptors that are still watched. */
static int
call_ready(worker_t *w, const struct ready *ready, size_t count)
{
	int called = 0;

	for (size_t i = 0; i < count; i++) {
		void (*cb)(int, unsigned, void *) = NULL;
		void *ctx = NULL;
		struct watch *wa;

		pthread_mutex_lock(&w->qlock);
		if ((wa = find_locked(w, ready[i].id)) != NULL) {
			cb = wa->cb;
			ctx = wa->ctx;
		}
		pthread_mutex_unlock(&w->qlock);
		if (cb != NULL) {
			cb(ready[i].fd, ready[i].revents, ctx);
			called++;
		}
	}
	return called;
}

/*
 * Owner thread: one round of polling and callbacks (see poll_round for
 * wait and until).  Returns how many callbacks ran.
 */
int
worker__watches_run(worker_t *w, bool wait, uint64_t until)
{
	struct ready ready[READY_MAX];
	size_t count;

	if (atomic_load_explicit(&w->nwatch, memory_order_relaxed) == 0)
		return 0;
	count = poll_round(w, wait, until, ready);
	return call_ready(w, ready, count);
}

/* Drops every watch: the worker ends.  Descriptors stay the caller's. */
void
worker__watches_drop(worker_t *w)
{
	struct list_node *n;

	pthread_mutex_lock(&w->qlock);
	while ((n = list_pop(&w->watches)) != NULL)
		free(container_of(n, struct watch, link));
	atomic_store(&w->nwatch, 0);
	pthread_mutex_unlock(&w->qlock);
}

/* ---- worker_fd ---------------------------------------------------- */

/* Arms the timerfd at the nearest deadline; qlock held. */
void
worker__fd_timer_locked(worker_t *w, uint64_t due)
{
	struct itimerspec its;

	if (w->tfd < 0)
		return;
	memset(&its, 0, sizeof(its));
	if (due != UINT64_MAX) {
		its.it_value.tv_sec = (time_t)(due / 1000000000u);
		its.it_value.tv_nsec = (long)(due % 1000000000u);
		/* A zero value disarms: a deadline of 0 must still fire. */
		if (due == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* An event was queued: make worker_fd() readable; qlock held. */
void
worker__fd_signal_locked(worker_t *w)
{
	if (w->epfd >= 0 && !w->fd_signaled) {
		w->fd_signaled = true;
		poke_eventfd(w->xfd);
	}
}

/* worker_update() is about to handle everything: clear readability. */
void
worker__fd_clear(worker_t *w)
{
	uint64_t n;

	pthread_mutex_lock(&w->qlock);
	if (w->epfd >= 0) {
		w->fd_signaled = false;
		drain_eventfd(w->xfd);
		if (read(w->tfd, &n, sizeof(n)) < 0)
			errno = 0;	/* not expired: nothing to clear */
	}
	pthread_mutex_unlock(&w->qlock);
}

/* After worker_update(): readable again if work is left. */
void
worker__fd_rearm(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	if (w->epfd >= 0) {
		worker__fd_timer_locked(w, atomic_load(&w->next_due));
		if (!worker__queue_empty_locked(w))
			worker__fd_signal_locked(w);
	}
	pthread_mutex_unlock(&w->qlock);
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * The descriptors of worker_fd(): an eventfd of its own (the poll wake-up
 * one is drained by the owner's waits, which must not hide events from an
 * outer loop), a timerfd, and the epoll set holding both.
 */
static int
make_fd_locked(worker_t *w)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if ((w->xfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (w->tfd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    (w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->xfd, &ev) != 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev) != 0) {
		rc = errno;
		close_fd(&w->epfd);
		close_fd(&w->tfd);
		close_fd(&w->xfd);
		return rc;
	}
	/* Producers must take the locked path, which signals the fd. */
	worker__ring_close_locked(w);
	/* What is already pending must show at once. */
	w->fd_signaled = false;
	if (!worker__queue_empty_locked(w))
		worker__fd_signal_locked(w);
	worker__fd_timer_locked(w, atomic_load(&w->next_due));
	return 0;
}

int
worker_fd(worker_t *w)
{
	int rc = 0;
	int fd;

	if (w == NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&w->qlock);
	if (w->epfd < 0)
		rc = make_fd_locked(w);
	fd = w->epfd;
	pthread_mutex_unlock(&w->qlock);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return fd;
}

/* Closes what watches and worker_fd() opened; at worker_free(). */
void
worker__watches_free(worker_t *w)
{
	worker__watches_drop(w);
	free(w->pfds);
	free(w->pfd_ids);
	close_fd(&w->epfd);
	close_fd(&w->tfd);
	close_fd(&w->xfd);
	close_fd(&w->efd);
}
