/*
 * fanout.c - the fanout: a child of the master.  It owns the subscribers'
 * listening socket and every subscriber: its socket, its two buffers, its
 * WebSocket (a wslay context, driven from the fanout's loop) and its queue
 * of frame references.  Each frame fired at it is queued for every open
 * subscriber and sent without ever waiting for one; a subscriber that
 * falls --sub-buffer bytes behind is closed (status 1008).  On its stop it
 * gives them FLUSH_TIME to take the last frames, then closes them (1001).
 * ws.h describes what a subscriber sees.
 *
 * A subscriber goes through these states:
 *
 *	SUB_HTTP	reading the head of its request; http.c answers it
 *	SUB_OPEN	a WebSocket: counted in, it gets every frame
 *	SUB_CLOSING	its close frame is queued: no more frames; freed once
 *			the close is sent, or after CLOSE_GRACE
 *	SUB_DONE	an HTTP answer (the page, a refusal) goes out; then
 *			the write side is shut, and the socket closed at the
 *			client's end of file, or after CLOSE_GRACE
 *
 * It is counted in when its handshake is answered: the 101 response and
 * the greeting are queued in the same callback, and every "frame" event
 * the fanout handles after it is queued for the subscriber.
 *
 * The bytes.  obuf holds what goes to the socket next: the HTTP answer,
 * then what wslay makes of the messages (its send callback copies into
 * obuf), so that a few hundred frames leave in one send().  wslay holds
 * at most one frame at a time: the head of the subscriber's queue, as a
 * fragmented message whose read callback copies straight from the frame,
 * shared by every subscriber, and pops it once wslay has its last byte.
 * So a frame is never copied per subscriber before it is sent, and
 * closing a subscriber drops the rest of its queue without cutting a
 * message.  pending counts the bytes of frames queued and not yet taken
 * by wslay (payload and WS_HEAD each); obuf and wslay's own buffer are
 * bounded besides.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "relayd.h"
#include "ws.h"

#define OBUF_SIZE	(32 * 1024)	/* bytes for the socket, at most */
#define WS_HEAD		4		/* bytes counted per frame beyond its
					 * payload: about its header */
#define SUB_MSG_MAX	4096		/* longest message taken from a
					 * subscriber, which has nothing to
					 * say: longer closes it (1009) */
#define READS_PER_TURN	16		/* recv() calls per callback: a
					 * chatty subscriber cannot hold the
					 * fanout */
#define QUEUED_MAX	16		/* messages wslay holds for one: the
					 * frame being sent, the greeting, a
					 * close, and pongs; more is a flood
					 * of pings that are not read */
#define HANDSHAKE_TIMEOUT 10.0		/* seconds to send a request */
#define CLOSE_GRACE	10.0		/* seconds for a close to go out:
					 * after the bytes the kernel holds,
					 * which a slow reader takes slowly */

enum { SUB_HTTP, SUB_OPEN, SUB_CLOSING, SUB_DONE };

struct fanout;

struct sub {
	struct fanout *fo;
	int fd;
	int state;		/* SUB_* */
	uint64_t id;
	uint64_t watch;
	unsigned events;	/* what the watch waits for */
	uint64_t timer;		/* the handshake's deadline, or the grace */
	wslay_event_context_ptr ws;	/* from SUB_OPEN on */
	char *in;		/* the request; then bytes after its head,
				 * which wslay reads first */
	size_t in_len;
	size_t in_off;
	unsigned char *obuf;	/* bytes for the socket */
	size_t olen;
	size_t ooff;		/* bytes of obuf sent */
	struct fifo out;	/* frames not yet taken by wslay */
	size_t off;		/* bytes of the first taken */
	bool given;		/* the first is wslay's current message */
	bool eof;		/* the socket has ended or failed */
	bool shut;		/* SUB_DONE: the write side is shut */
	unsigned reads;		/* recv() calls in this callback */
	size_t pending;		/* bytes of frames not taken by wslay */
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
	size_t open;		/* subscribers in SUB_OPEN */
};

static void
sub_free(struct sub *s)
{
	struct fanout *fo = s->fo;

	for (size_t i = 0; i < fo->nsubs; i++)
		if (fo->subs[i] == s) {
			fo->subs[i] = fo->subs[--fo->nsubs];
			break;
		}
	if (s->state == SUB_OPEN)
		fo->open--;
	if (s->watch != 0)
		(void)worker_unwatch(fo->acc.self, s->watch);
	if (s->timer != 0)
		(void)worker_cancel(fo->acc.self, s->timer);
	close(s->fd);
	wslay_event_context_free(s->ws);
	fifo_clear(&s->out);
	free(s->in);
	free(s->obuf);
	free(s);
}

static void on_sub_ready(int fd, unsigned revents, void *ctx);

/* Watches s for events (0: not at all); false if s was freed. */
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
		sub_free(s);
		return false;
	}
	s->events = events;
	return true;
}

/* Timer: the handshake or the close took too long. */
static void
sub_expire(void *arg)
{
	struct sub *s = arg;

	s->timer = 0;
	if (verbose)
		say("subscriber %" PRIu64 ": %s; closing it", s->id,
		    s->state == SUB_HTTP ? "no request in time" :
		    "the close did not go out in time");
	sub_free(s);
}

/* Replaces the timer of s with one in delay seconds; false if s was
 * freed. */
static bool
sub_timer(struct sub *s, double delay)
{
	int rc;

	if (s->timer != 0)
		(void)worker_cancel(s->fo->acc.self, s->timer);
	s->timer = 0;
	rc = worker_later(s->fo->acc.self, sub_expire, s, delay, &s->timer);
	if (rc != 0) {
		say("subscriber %" PRIu64 ": %s; dropping it", s->id,
		    strerror(rc));
		sub_free(s);
		return false;
	}
	return true;
}

/* ---- wslay's callbacks ------------------------------------------------ */

/* Copies what wslay sends into obuf; "would block" once it is full. */
static ssize_t
ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct sub *s = user;
	size_t n = OBUF_SIZE - s->olen;

	(void)flags;
	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n > len)
		n = len;
	memcpy(s->obuf + s->olen, data, n);
	s->olen += n;
	return (ssize_t)n;
}

/* Gives wslay the bytes after the request's head, then the socket's. */
static ssize_t
ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct sub *s = user;
	ssize_t n;

	(void)flags;
	if (s->in_off < s->in_len) {
		n = (ssize_t)(s->in_len - s->in_off < len ?
		    s->in_len - s->in_off : len);
		memcpy(buf, s->in + s->in_off, (size_t)n);
		s->in_off += (size_t)n;
		if (s->in_off == s->in_len) {
			free(s->in);
			s->in = NULL;
		}
		return n;
	}
	if (s->reads++ < READS_PER_TURN) {
		n = recv(s->fd, buf, len, MSG_DONTWAIT);
		if (n > 0)
			return n;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)) {
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		s->eof = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	return -1;
}

/*
 * The read callback of the message wslay is sending: the head of the
 * queue, copied straight from the frame; popped at its last byte.
 */
static ssize_t
ws_read_frame(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    const union wslay_event_msg_source *source, int *eof, void *user)
{
	struct sub *s = source->data;
	struct frame *f = fifo_peek(&s->out, 0);
	size_t n = f->len - s->off < len ? f->len - s->off : len;

	(void)ctx;
	(void)user;
	memcpy(buf, f->data + s->off, n);
	s->off += n;
	s->pending -= n;
	if (s->off == f->len) {
		*eof = 1;
		s->off = 0;
		s->given = false;
		s->pending -= WS_HEAD;
		frame_unref(fifo_pop(&s->out));
	}
	return (ssize_t)n;
}

/*
 * Hands wslay the next frame of the queue, if it has none.  An empty
 * frame is queued whole (a read callback cannot say "0 bytes, done").
 * False on failure.
 */
static bool
sub_give(struct sub *s)
{
	struct wslay_event_fragmented_msg fm = {
		.opcode = WSLAY_BINARY_FRAME,
		.source.data = s,
		.read_callback = ws_read_frame
	};
	struct wslay_event_msg m = { .opcode = WSLAY_BINARY_FRAME };
	struct frame *f;

	if (s->given || s->out.len == 0)
		return true;
	f = fifo_peek(&s->out, 0);
	if (f->len > 0) {
		s->given = true;
		return wslay_event_queue_fragmented_msg(s->ws, &fm) == 0;
	}
	frame_unref(fifo_pop(&s->out));
	s->pending -= WS_HEAD;
	return wslay_event_queue_msg(s->ws, &m) == 0;
}

/* ---- Sending ------------------------------------------------------------ */

/* Fills obuf from wslay, frame after frame; false on failure. */
static bool
sub_fill(struct sub *s)
{
	if (s->ooff > 0) {
		memmove(s->obuf, s->obuf + s->ooff, s->olen - s->ooff);
		s->olen -= s->ooff;
		s->ooff = 0;
	}
	while (s->olen < OBUF_SIZE) {
		size_t before = s->olen;

		if (s->state == SUB_OPEN && !sub_give(s))
			return false;
		if (!wslay_event_want_write(s->ws))
			break;
		wslay_event_set_error(s->ws, 0);
		if (wslay_event_send(s->ws) != 0)
			return false;
		/* wslay stops only on a full obuf: never spin. */
		if (s->olen == before)
			break;
	}
	return true;
}

/*
 * Sends what waits for s until the socket is full; then the watch says
 * when it has room.  Frees s once it is done with.  False if s was freed.
 */
static bool
sub_flush(struct sub *s)
{
	ssize_t n;

	for (;;) {
		if (s->ws != NULL && !sub_fill(s)) {
			say("subscriber %" PRIu64 ": WebSocket failed; "
			    "dropping it", s->id);
			sub_free(s);
			return false;
		}
		if (s->ooff == s->olen)
			break;
		n = send(s->fd, s->obuf + s->ooff, s->olen - s->ooff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			if (verbose)
				say("subscriber %" PRIu64 ": %s; dropping it",
				    s->id, strerror(errno));
			sub_free(s);
			return false;
		}
		if (n < 0)
			return sub_watch(s, WORKER_READABLE | WORKER_WRITABLE);
		s->ooff += (size_t)n;
		if (s->ooff == s->olen)
			s->ooff = s->olen = 0;
	}
	/* All out: a close is done with; a page is followed by the end. */
	if (s->state == SUB_CLOSING && wslay_event_get_close_sent(s->ws)) {
		if (verbose)
			say("subscriber %" PRIu64 ": closed", s->id);
		sub_free(s);
		return false;
	}
	if (s->state == SUB_DONE && !s->shut) {
		(void)shutdown(s->fd, SHUT_WR);
		s->shut = true;
	}
	return sub_watch(s, WORKER_READABLE);
}

/*
 * Drops the frames wslay has not begun: all but the message it is
 * sending, which must end whole before a close frame can follow.
 */
static void
sub_trim(struct sub *s)
{
	size_t keep = s->given ? 1 : 0;

	for (size_t i = keep; i < s->out.len; i++)
		frame_unref(fifo_peek(&s->out, i));
	s->out.len = keep;
	s->pending = keep > 0 ? fifo_peek(&s->out, 0)->len - s->off +
	    WS_HEAD : 0;
}

/* SUB_OPEN to SUB_CLOSING: no more frames, a grace to go out. */
static bool
sub_closing(struct sub *s)
{
	s->state = SUB_CLOSING;
	s->fo->open--;
	sub_trim(s);
	return sub_timer(s, CLOSE_GRACE);
}

/* Closes the WebSocket of s with code and reason; false if s was freed. */
static bool
sub_close(struct sub *s, uint16_t code, const char *reason)
{
	if (!sub_closing(s))
		return false;
	if (wslay_event_queue_close(s->ws, code, (const uint8_t *)reason,
	    strlen(reason)) != 0) {
		sub_free(s);
		return false;
	}
	return sub_flush(s);
}

/* ---- Reading ------------------------------------------------------------ */

/* The handshake is answered: a WebSocket, counted in from now on. */
static bool
sub_open(struct sub *s)
{
	static const struct wslay_event_callbacks cb = {
		.recv_callback = ws_recv,
		.send_callback = ws_send
	};
	struct wslay_event_msg greeting = {
		.opcode = WSLAY_TEXT_FRAME,
		.msg = (const uint8_t *)WS_GREETING,
		.msg_length = WS_GREETING_LEN
	};

	if (wslay_event_context_server_init(&s->ws, &cb, s) != 0 ||
	    wslay_event_queue_msg(s->ws, &greeting) != 0) {
		say("subscriber %" PRIu64 ": no memory; dropping it", s->id);
		sub_free(s);
		return false;
	}
	wslay_event_config_set_max_recv_msg_length(s->ws, SUB_MSG_MAX);
	(void)worker_cancel(s->fo->acc.self, s->timer);
	s->timer = 0;
	s->state = SUB_OPEN;
	s->fo->open++;
	if (verbose)
		say("subscriber %" PRIu64 ": subscribed (%zu open)", s->id,
		    s->fo->open);
	return true;
}

/*
 * Reads and ignores what the subscriber sends, up to its end: after an
 * HTTP answer, or once wslay reads no more.
 */
static bool
sub_read_rest(struct sub *s)
{
	char junk[4096];
	ssize_t n = recv(s->fd, junk, sizeof(junk), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR)) {
		if (verbose && s->state != SUB_DONE)
			say("subscriber %" PRIu64 ": gone", s->id);
		sub_free(s);
		return false;
	}
	return true;
}

/* SUB_OPEN, SUB_CLOSING: what the subscriber says, to wslay. */
static bool
sub_read_ws(struct sub *s)
{
	int rc;

	if (!wslay_event_get_read_enabled(s->ws))
		return sub_read_rest(s);
	s->reads = 0;
	wslay_event_set_error(s->ws, 0);
	rc = wslay_event_recv(s->ws);
	if (rc != 0 || s->eof) {
		if (verbose)
			say("subscriber %" PRIu64 ": gone", s->id);
		sub_free(s);
		return false;
	}
	if (wslay_event_get_queued_msg_count(s->ws) > QUEUED_MAX) {
		say("subscriber %" PRIu64 " pings without reading the pongs; "
		    "dropping it", s->id);
		sub_free(s);
		return false;
	}
	/* A close from the subscriber, or a message too long: wslay has
	 * queued its close frame and reads no more.  No more frames. */
	if (s->state == SUB_OPEN && !wslay_event_get_read_enabled(s->ws) &&
	    !sub_closing(s))
		return false;
	return true;
}

/* SUB_HTTP: more of the request; answers it once its head is in. */
static bool
sub_read_request(struct sub *s)
{
	ssize_t n;
	size_t used;
	int what;

	n = recv(s->fd, s->in + s->in_len, HTTP_HEAD_MAX - s->in_len,
	    MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return true;
	if (n <= 0) {
		if (verbose)
			say("subscriber %" PRIu64 ": gone before its "
			    "request", s->id);
		sub_free(s);
		return false;
	}
	s->in_len += (size_t)n;
	what = http_answer(s->in, s->in_len, (char *)s->obuf, OBUF_SIZE,
	    &s->olen, &used);
	if (what == HTTP_MORE)
		return true;
	if (what == HTTP_UPGRADE) {
		s->in_off = used;
		if (s->in_off == s->in_len) {
			free(s->in);
			s->in = NULL;
		}
		/* Bytes after the head, if any, are wslay's to read. */
		return sub_open(s) && (s->in == NULL || sub_read_ws(s)) &&
		    sub_flush(s);
	}
	if (verbose)
		say("subscriber %" PRIu64 ": %s", s->id, what == HTTP_PAGE ?
		    "the page" : "refused");
	s->state = SUB_DONE;
	return sub_timer(s, CLOSE_GRACE) && sub_flush(s);
}

static void
on_sub_ready(int fd, unsigned revents, void *ctx)
{
	struct sub *s = ctx;
	bool alive = true;

	(void)fd;
	if (revents & WORKER_READABLE) {
		if (s->state == SUB_HTTP)
			alive = sub_read_request(s);
		else if (s->state == SUB_DONE)
			alive = sub_read_rest(s);
		else
			alive = sub_read_ws(s);
	}
	/* Reading may have queued a pong or a close: send it. */
	if (alive && s->state != SUB_HTTP)
		(void)sub_flush(s);
}

/* Takes a new subscriber; it sends its request first. */
static void
sub_add(int fd, void *ctx)
{
	struct fanout *fo = ctx;
	struct sub *s;

	if (fo->nsubs == fo->cap) {
		size_t cap = fo->cap != 0 ? 2 * fo->cap : 8;
		struct sub **v = realloc(fo->subs, cap * sizeof(*v));

		if (v == NULL)
			goto nomem;
		fo->subs = v;
		fo->cap = cap;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	if ((s->in = malloc(HTTP_HEAD_MAX)) == NULL ||
	    (s->obuf = malloc(OBUF_SIZE)) == NULL) {
		free(s->in);
		free(s);
		goto nomem;
	}
	s->fo = fo;
	s->fd = fd;
	s->state = SUB_HTTP;
	s->id = fo->next_id++;
	fo->subs[fo->nsubs++] = s;
	if (verbose)
		say("subscriber %" PRIu64 ": accepted", s->id);
	if (sub_timer(s, HANDSHAKE_TIMEOUT))
		(void)sub_watch(s, WORKER_READABLE);
	return;
nomem:
	say("no memory for a new subscriber; closing it");
	close(fd);
}

/* ---- The frames ------------------------------------------------------- */

/* Timer: the batch of frames is queued, send it in as few calls. */
static void
fanout_flush(void *arg)
{
	struct fanout *fo = arg;

	fo->flush_due = false;
	/* Backwards: a free moves the last subscriber into its place. */
	for (size_t i = fo->nsubs; i-- > 0;) {
		struct sub *s = fo->subs[i];

		if ((s->state == SUB_OPEN || s->state == SUB_CLOSING) &&
		    !(s->events & WORKER_WRITABLE))
			(void)sub_flush(s);
	}
}

/*
 * Listener of "frame": queue it for every open subscriber, closing those
 * that are too far behind, and flush once the batch of events is handled.
 */
static int
on_fanout_frame(const worker_event_t *ev, void *ctx)
{
	struct fanout *fo = ctx;
	struct frame *f = ev->data;
	size_t size = (size_t)f->len + WS_HEAD;
	int rc;

	for (size_t i = fo->nsubs; i-- > 0;) {
		struct sub *s = fo->subs[i];

		if (s->state != SUB_OPEN)
			continue;
		/* One frame is always taken, however long. */
		if (s->pending > 0 && s->pending + size > fo->r->sub_buffer) {
			say("subscriber %" PRIu64 " is too slow (%zu bytes "
			    "waiting); dropping it", s->id, s->pending);
			fo->r->dropped++;
			(void)sub_close(s, WS_TOO_SLOW, "too slow");
			continue;
		}
		if (fifo_push(&s->out, frame_ref(f)) != 0) {
			frame_unref(f);
			say("subscriber %" PRIu64 ": no memory; dropping it",
			    s->id);
			(void)sub_close(s, WSLAY_CODE_INTERNAL_SERVER_ERROR,
			    "no memory");
			continue;
		}
		s->pending += size;
	}
	/* Queued for everyone: the subscribers' buffers are bounded on
	 * their own. */
	frame_pay(f);
	if (fo->open > 0 && !fo->flush_due) {
		rc = worker_later(fo->acc.self, fanout_flush, fo, 0, NULL);
		if (rc != 0) {
			say("fanout: %s", strerror(rc));
			worker_fail(rc);
		}
		fo->flush_due = true;
	}
	return 0;
}

/* An open subscriber still has frames to take. */
static bool
fanout_pending(const struct fanout *fo)
{
	for (size_t i = 0; i < fo->nsubs; i++) {
		const struct sub *s = fo->subs[i];

		if (s->state == SUB_OPEN && (s->pending > 0 ||
		    s->olen > s->ooff || wslay_event_want_write(s->ws)))
			return true;
	}
	return false;
}

/* Seconds since t0. */
static double
since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	    (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Listener of STOP_THREAD: the last frames are queued; give the
 * subscribers a moment to take them, then close them, before the stop
 * frees them.
 */
static int
on_fanout_stop(const worker_event_t *ev, void *ctx)
{
	struct fanout *fo = ctx;
	struct timespec t0;

	(void)ev;
	if (fo->stopping)
		return 0;
	fo->stopping = true;
	acceptor_close(&fo->acc);
	fanout_flush(fo);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The watches send while this sleeps. */
	while (fanout_pending(fo) && since(&t0) < FLUSH_TIME)
		(void)worker_sleep(0.01);
	for (size_t i = fo->nsubs; i-- > 0;)
		if (fo->subs[i]->state == SUB_OPEN)
			(void)sub_close(fo->subs[i], WS_GOING_AWAY,
			    "relayd stops");
	/* The closes are small: a moment for them to go out. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (fo->nsubs > 0 && since(&t0) < 0.1)
		(void)worker_sleep(0.01);
	return 0;
}

static void
fanout_close(void *arg)
{
	struct fanout *fo = arg;

	while (fo->nsubs > 0)
		sub_free(fo->subs[fo->nsubs - 1]);
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
