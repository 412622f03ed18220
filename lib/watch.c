/*
 * watch.c - file descriptors in the worker's loop (worker_watch,
 * worker_unwatch).
 *
 * DESIGN
 *
 * A worker with no watch sleeps on its futex word, as before: no
 * descriptor, no system call more.  The first watch gives the worker an
 * eventfd (wake.c).  From then on the loop sleeps in ppoll() over the
 * eventfd and the watched descriptors, and a producer that finds the
 * owner asleep writes the eventfd instead of waking the futex; so while
 * it watches, the worker holds its ring closed (ring.c), since only the
 * locked path wakes a poller.  Between batches of events the loop also
 * polls without waiting, so busy workers still serve their descriptors.
 *
 * The watches are a list guarded by w->qlock, since any thread may watch
 * or unwatch.  The owner polls from a copy it makes under the lock, and
 * before each callback looks the watch up again by id: a watch removed
 * meanwhile (also by an earlier callback of the same round) is not called.
 *
 * A watch whose callback runs is marked (running) until the callback
 * returns or unwinds.  A callback that waits runs nested loops, and they
 * leave its descriptor out of their polls: it is still unread, and would
 * call the callback again and again, each one deeper.  An unwatch from
 * another thread waits (watches.idle) until the callback has returned, so
 * its caller may close the descriptor right after; from the owner's own
 * thread it cannot wait for itself, and the callback's return frees the
 * watch instead.
 *
 * Locks: qlock, but for the poll set (owner).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#include "internal.h"

/* Callbacks run per round at most; the rest wait for the next poll. */
#define READY_MAX 32

struct watch {
	struct list_node link;	/* qlock: in w->watches.list */
	worker_t *owner;
	uint64_t id;
	int fd;
	short events;		/* POLLIN, POLLOUT */
	void (*cb)(int fd, unsigned revents, void *ctx);
	void *ctx;
	void (*dropped)(void *ctx);	/* its worker ended, or NULL */
	bool running;		/* qlock: its callback runs */
	bool owner_frees;	/* qlock: unwatched from its own callback */
};

struct ready {
	uint64_t id;
	int fd;
	unsigned revents;
};

static atomic_uint_least64_t next_watch_id = 1;

void
worker__watches_init(struct worker__watch_part *wa)
{
	list_init(&wa->list);
	pthread_cond_init(&wa->idle, NULL);
	atomic_init(&wa->count, 0);
	wa->pfds = NULL;
	wa->ids = NULL;
	wa->cap = 0;
}

/* A sleeping owner must look at its watches again; qlock held. */
static void
rethink_locked(worker_t *w)
{
	w->wake.woken = true;
	worker__signal_locked(w);
}

int
worker_watch(worker_t *w, int fd, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), void *ctx,
    uint64_t *id)
{
	return worker__watch(w, fd, events, cb, ctx, NULL, id);
}

/*
 * worker_watch(), and dropped(ctx) is called if the worker's run ends
 * with the watch still on, so that what the library itself watches
 * (inspect.c) is closed with its worker.
 */
int
worker__watch(worker_t *w, int fd, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), void *ctx,
    void (*dropped)(void *ctx), uint64_t *id)
{
	struct watch *wa;
	uint64_t wid;
	int rc;

	if (w == NULL || fd < 0 || cb == NULL || events == 0 ||
	    (events & ~(unsigned)(WORKER_READABLE | WORKER_WRITABLE)) != 0)
		return EINVAL;
	/* ppoll() would report it ready, as POLLNVAL, for ever. */
	if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
		return EBADF;
	if (worker__gone(w))
		return ESRCH;
	if ((wa = malloc(sizeof(*wa))) == NULL)
		return ENOMEM;
	wid = atomic_fetch_add(&next_watch_id, 1);
	wa->owner = w;
	wa->id = wid;
	wa->running = false;
	wa->owner_frees = false;
	wa->fd = fd;
	wa->events = (short)(((events & WORKER_READABLE) ? POLLIN : 0) |
	    ((events & WORKER_WRITABLE) ? POLLOUT : 0));
	wa->cb = cb;
	wa->ctx = ctx;
	wa->dropped = dropped;
	pthread_mutex_lock(&w->qlock);
	rc = w->phase != PHASE_RUNNING ? ESRCH :
	    worker__need_eventfd_locked(w);
	if (rc == 0) {
		list_append(&w->watches.list, &wa->link);
		/* Producers must take the locked path, which knows polling. */
		if (atomic_fetch_add(&w->watches.count, 1) == 0)
			worker__ring_hold_locked(w);
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

	list_for_each(n, &w->watches.list) {
		struct watch *wa = container_of(n, struct watch, link);

		if (wa->id == id)
			return wa;
	}
	return NULL;
}

/*
 * Once it returns, the callback of id is not running and never runs
 * again, so the caller may close the descriptor and free ctx.  From the
 * owner's own thread (the callback itself, or a wait nested in it) it
 * cannot wait for that: the callback's return frees the watch instead.
 */
int
worker_unwatch(worker_t *w, uint64_t id)
{
	struct watch *wa;

	if (w == NULL || id == 0)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&w->qlock);
	if ((wa = find_locked(w, id)) == NULL) {
		pthread_mutex_unlock(&w->qlock);
		return ENOENT;
	}
	list_remove(&wa->link);
	if (atomic_fetch_sub(&w->watches.count, 1) == 1)
		worker__ring_release_locked(w);
	/* A poll still waiting on the descriptor must let go of it. */
	rethink_locked(w);
	if (wa->running && worker__on_this_thread(w)) {
		wa->owner_frees = true;
		wa = NULL;
	}
	while (wa != NULL && wa->running)
		pthread_cond_wait(&w->watches.idle, &w->qlock);
	pthread_mutex_unlock(&w->qlock);
	free(wa);
	return 0;
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
 * Copies the poll set into w->watches.pfds from index 1 (0 is wake.c's
 * eventfd) and the ids alongside; qlock held.  Returns the count, the
 * eventfd included, or 0 if memory ran out.
 */
static size_t
build_pollset(worker_t *w, uint64_t **ids)
{
	struct worker__watch_part *ws = &w->watches;
	size_t n = atomic_load(&ws->count) + 1;
	struct list_node *pos;
	size_t i = 1;

	if (n > ws->cap) {
		struct pollfd *p = realloc(ws->pfds, n * sizeof(*p));
		uint64_t *q = realloc(ws->ids, n * sizeof(*q));

		if (p != NULL)
			ws->pfds = p;
		if (q != NULL)
			ws->ids = q;
		if (p == NULL || q == NULL)
			return 0;
		ws->cap = n;
	}
	list_for_each(pos, &ws->list) {
		struct watch *wa = container_of(pos, struct watch, link);

		/* Its callback waits: the descriptor is still unread. */
		if (wa->running)
			continue;
		ws->pfds[i].fd = wa->fd;
		ws->pfds[i].events = wa->events;
		ws->ids[i] = wa->id;
		i++;
	}
	*ids = ws->ids;
	return i;
}

/*
 * Polls w's descriptors: without waiting, or (wait) until an event is
 * queued, a wake, a ready descriptor or until (UINT64_MAX: no limit).
 * Fills ready[] and returns its count.  A wait consumes w->wake.woken, as the
 * futex path does.
 */
static size_t
poll_round(worker_t *w, bool wait, uint64_t until, struct ready *ready)
{
	struct pollfd *pfds;
	uint64_t *ids;
	size_t n, count = 0;
	int rc;

	pthread_mutex_lock(&w->qlock);
	if (wait && (worker__pending_locked(w) || w->wake.woken)) {
		w->wake.woken = false;
		pthread_mutex_unlock(&w->qlock);
		return 0;
	}
	if (atomic_load(&w->watches.count) == 0 ||
	    (n = build_pollset(w, &ids)) == 0) {
		pthread_mutex_unlock(&w->qlock);
		return 0;
	}
	pfds = w->watches.pfds;
	rc = worker__poll_locked(w, pfds, n, wait, until);
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 1; rc > 0 && i < n && count < READY_MAX; i++)
		if (pfds[i].revents != 0) {
			ready[count].id = ids[i];
			ready[count].fd = pfds[i].fd;
			ready[count].revents = revents_of(pfds[i].revents);
			count++;
		}
	return count;
}

/*
 * The callback of wa returned or unwound: it may run again, an unwatch
 * waiting for it may go on, or (unwatched from inside) it is freed here.
 */
static void
callback_done(void *arg)
{
	struct watch *wa = arg;
	worker_t *w = wa->owner;
	bool free_it;

	pthread_mutex_lock(&w->qlock);
	wa->running = false;
	free_it = wa->owner_frees;
	pthread_cond_broadcast(&w->watches.idle);
	pthread_mutex_unlock(&w->qlock);
	if (free_it)
		free(wa);
}

/*
 * Calls the callbacks of the ready descriptors that are still watched and
 * whose callback is not running already: one that waits (a nested loop)
 * is not called again for its descriptor until it returns.
 */
static int
call_ready(worker_t *w, const struct ready *ready, size_t count)
{
	int called = 0;

	for (size_t i = 0; i < count; i++) {
		struct worker__hook hook;
		struct watch *wa;
		unsigned doing;

		pthread_mutex_lock(&w->qlock);
		if ((wa = find_locked(w, ready[i].id)) != NULL &&
		    !wa->running)
			wa->running = true;
		else
			wa = NULL;
		pthread_mutex_unlock(&w->qlock);
		if (wa == NULL)
			continue;
		doing = worker__doing(w, DOING_WATCH, 0);
		worker__stats_busy(w);
		worker__hook_push(w, &hook, callback_done, wa);
		wa->cb(ready[i].fd, ready[i].revents, wa->ctx);
		worker__hook_pop(w, &hook);
		worker__doing_restore(w, doing);
		callback_done(wa);
		called++;
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

	if (atomic_load_explicit(&w->watches.count,
	    memory_order_relaxed) == 0)
		return 0;
	count = poll_round(w, wait, until, ready);
	return call_ready(w, ready, count);
}

/*
 * Drops every watch: the worker ends.  Descriptors stay the caller's;
 * the library's own watches are told, with no lock held.
 */
void
worker__watches_drop(worker_t *w)
{
	struct list_node *n;
	list_t gone;

	list_init(&gone);
	pthread_mutex_lock(&w->qlock);
	list_splice_tail(&gone, &w->watches.list);
	if (atomic_exchange(&w->watches.count, 0) != 0)
		worker__ring_release_locked(w);
	pthread_mutex_unlock(&w->qlock);
	while ((n = list_pop(&gone)) != NULL) {
		struct watch *wa = container_of(n, struct watch, link);

		if (wa->dropped != NULL)
			wa->dropped(wa->ctx);
		free(wa);
	}
}

/* The worker is freed: so is what its watches used. */
void
worker__watches_fini(worker_t *w)
{
	worker__watches_drop(w);
	free(w->watches.pfds);
	free(w->watches.ids);
	pthread_cond_destroy(&w->watches.idle);
}

