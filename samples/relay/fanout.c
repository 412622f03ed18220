/*
 * fanout.c - the fanout: a child of the master.  It owns the subscribers'
 * listening socket and every subscriber: its socket and its queue of frame
 * references.  Each frame fired at it is queued for every subscriber and
 * sent without ever waiting for one; a subscriber that falls --sub-buffer
 * bytes behind is dropped.  On its stop it gives them FLUSH_TIME to take
 * the last frames.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"

#define IOV_FRAMES	64		/* frames per sendmsg() */

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
void *
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
