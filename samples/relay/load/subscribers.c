/*
 * subscribers.c - relay-load's subscribers of relayd, over WebSocket
 * (../ws.h): the handshake by hand, which is HTTP, then wslay's client
 * for the messages.  Each WebSocket has a worker of its own, which owns
 * its socket, its wslay context and the bytes read and not yet given to
 * wslay.  "subscriber" checks each message as it comes: every client's
 * frames in order, each intact.  "slow" subscribes with a small receive
 * buffer and reads nothing until main says "check"; relayd must drop it.
 *
 * With --subscribers N there are N of the first kind, "subscriber-1"...,
 * each checking every frame.  They are the children of one worker,
 * "subscribers" ("slow" for the slow one), that stands for them towards
 * run(): it says "subscribed" once every one is, passes "expect" or
 * "check" on, and ends once they all have.  The senders are paced by the
 * slowest: ld->checked is the least of their counts, which each raises
 * after its reads.  The group's verdict is theirs.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "../ws.h"
#include "load.h"

#define START_TIMEOUT	15.0		/* seconds to subscribe */
#define READ_SIZE	(256 * 1024)	/* bytes the subscriber reads at once */
#define HEAD_MAX	4096		/* bytes of relayd's 101 response */
/* Bytes a frame of len takes on the clients' wire, as ld->written counts
 * them: the window compares the two. */
#define WIRE_COST(len)	(4 + (uint64_t)(len))

/* One WebSocket to relayd, its worker's, and the checks of what comes. */
struct wsub {
	struct load *ld;
	struct subscriber *g;	/* its group */
	worker_t *self;
	int fd;
	uint64_t watch;
	wslay_event_context_ptr ws;
	unsigned char *buf;	/* bytes read, not yet given to wslay */
	size_t len;
	size_t off;		/* bytes of buf given */
	bool read;		/* recv() was called in this turn */
	unsigned char *msg;	/* the message being received */
	size_t msg_len;
	size_t msg_cap;
	bool in_ctrl;		/* its current frame is a control frame */
	bool greeted;		/* the greeting came: frames count */
	unsigned char *payload;	/* room for the expected payload */
	uint64_t *next;		/* per client: the index due next */
	uint64_t seen;		/* frames checked */
	uint64_t bad;		/* frames wrong */
	uint16_t close_code;	/* of relayd's close frame, or 0 */
	atomic_uint_least64_t checked;	/* bytes of frames checked */
	atomic_bool gone;	/* the connection is closed */
	bool closed;		/* relayd closed the connection */
	bool timed_out;
	bool dropped;		/* the slow one: relayd dropped it */
	int err;		/* the setup failed */
};

/* The subscribers of a run, or the slow one; run() owns it. */
struct subscriber {
	struct load *ld;
	bool slow;
	size_t n;		/* WebSockets */
	size_t up;		/* subscribed so far */
	struct wsub *v;
	worker_t **w;		/* their workers, references of the group */
	int err;		/* a WebSocket could not subscribe */
};

static void
sub_problem(struct wsub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A frame the subscriber got is wrong: one more bad one. */
static void
sub_problem(struct wsub *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(&s->bad, "subscriber", fmt, ap);
	va_end(ap);
}

/* Checks one frame the subscriber got. */
static void
sub_check(struct wsub *s, const unsigned char *p, size_t len)
{
	struct load *ld = s->ld;
	uint32_t client, index;

	if (len < 8 || len > ld->max_size) {
		sub_problem(s, "a frame of %zu bytes", len);
		return;
	}
	client = get_be32(p);
	index = get_be32(p + 4);
	if (client >= ld->n) {
		sub_problem(s, "a frame of client %" PRIu32 ", which does "
		    "not exist", client);
		return;
	}
	if (index != s->next[client]) {
		sub_problem(s, "client %" PRIu32 ": frame %" PRIu32 " came "
		    "where %" PRIu64 " was due", client, index,
		    s->next[client]);
		return;
	}
	if (make_payload(ld, client, index, s->payload) != len ||
	    memcmp(s->payload, p, len) != 0)
		sub_problem(s, "client %" PRIu32 ": frame %" PRIu32 " is "
		    "damaged", client, index);
	s->next[client]++;
	s->seen++;
}

/* ---- wslay's callbacks ------------------------------------------------ */

/* Gives wslay the bytes read; reads the socket once per turn. */
static ssize_t
ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct wsub *s = user;
	ssize_t n;

	(void)flags;
	if (s->off == s->len && !s->read) {
		s->read = true;
		s->off = s->len = 0;
		n = recv(s->fd, s->buf, READ_SIZE, MSG_DONTWAIT);
		if (n > 0)
			s->len = (size_t)n;
		else if (n == 0 || (errno != EAGAIN &&
		    errno != EWOULDBLOCK && errno != EINTR)) {
			s->closed = true;
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
			return -1;
		}
	}
	if (s->off == s->len) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = (ssize_t)(s->len - s->off < len ? s->len - s->off : len);
	memcpy(buf, s->buf + s->off, (size_t)n);
	s->off += (size_t)n;
	return n;
}

/* A pong or the answer to a close: sent if the socket takes it now. */
static ssize_t
ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct wsub *s = user;
	ssize_t n;

	(void)flags;
	n = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0)
		return n;
	wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR ? WSLAY_ERR_WOULDBLOCK :
	    WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static int
ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    void *user)
{
	(void)ctx;
	(void)user;
	return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void
ws_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct wsub *s = user;
	size_t need;
	unsigned char *m;

	(void)ctx;
	s->in_ctrl = wslay_is_ctrl_frame(arg->opcode);
	if (s->in_ctrl)
		return;
	if (arg->opcode != WSLAY_CONTINUATION_FRAME)
		s->msg_len = 0;
	need = s->msg_len + (size_t)arg->payload_length;
	if (need > s->msg_cap) {
		if ((m = realloc(s->msg, need)) == NULL) {
			complain("subscriber: no memory");
			worker_fail(ENOMEM);
		}
		s->msg = m;
		s->msg_cap = need;
	}
}

static void
ws_frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct wsub *s = user;

	(void)ctx;
	if (s->in_ctrl)
		return;
	memcpy(s->msg + s->msg_len, arg->data, arg->data_length);
	s->msg_len += arg->data_length;
}

/* A whole message: the greeting, then frames; or relayd's close. */
static void
ws_message(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct wsub *s = user;

	(void)ctx;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!s->greeted && s->msg_len == WS_GREETING_LEN &&
		    memcmp(s->msg, WS_GREETING, WS_GREETING_LEN) == 0)
			s->greeted = true;
		else
			sub_problem(s, "a text message of %zu bytes",
			    s->msg_len);
		break;
	case WSLAY_BINARY_FRAME:
		if (!s->greeted) {
			sub_problem(s, "a frame before the greeting");
			break;
		}
		sub_check(s, s->msg, s->msg_len);
		atomic_fetch_add(&s->checked, WIRE_COST(s->msg_len));
		break;
	case WSLAY_CONNECTION_CLOSE:
		s->close_code = arg->status_code;
		s->closed = true;
		break;
	default:
		break;
	}
}

/*
 * Reads what has come and hands it to wslay, which calls back for each
 * message; answers a ping or a close.  s->closed once the stream ends.
 */
static void
sub_pump(struct wsub *s)
{
	s->read = false;
	wslay_event_set_error(s->ws, 0);
	if (wslay_event_recv(s->ws) != 0)
		s->closed = true;
	if (wslay_event_want_write(s->ws))
		(void)wslay_event_send(s->ws);
}

/*
 * The senders may be the window ahead of the slowest subscriber that is
 * still there: ld->checked is the least of their counts.  Any of them
 * may raise it, never lower it, so a count read a moment late only holds
 * the senders back.
 */
static void
pace(struct subscriber *g)
{
	uint64_t least = UINT64_MAX, c, cur;

	if (g->slow)
		return;
	for (size_t i = 0; i < g->n; i++)
		if (!atomic_load(&g->v[i].gone) &&
		    (c = atomic_load(&g->v[i].checked)) < least)
			least = c;
	/* Nobody to wait for any more. */
	if (least == UINT64_MAX) {
		atomic_store(&g->ld->sub_gone, true);
		return;
	}
	cur = atomic_load(&g->ld->checked);
	while (least > cur &&
	    !atomic_compare_exchange_weak(&g->ld->checked, &cur, least))
		continue;
}

static void
on_sub_readable(int fd, unsigned revents, void *ctx)
{
	struct wsub *s = ctx;

	(void)fd;
	(void)revents;
	sub_pump(s);
	if (s->closed)
		atomic_store(&s->gone, true);
	pace(s->g);
	if (s->closed && s->watch != 0) {
		(void)worker_unwatch(s->self, s->watch);
		s->watch = 0;
	}
	/* The task's wait looks at the count after each event. */
	(void)worker_fire(s->self, "progress", NULL);
}

static int
sub_finished(const worker_event_t *ev, void *ctx)
{
	const struct wsub *s = ctx;

	(void)ev;
	return s->closed || s->seen >= s->ld->expect;
}

/* Cleanup handler of both kinds of subscriber. */
static void
sub_close(void *arg)
{
	struct wsub *s = arg;

	atomic_store(&s->gone, true);
	pace(s->g);
	if (s->watch != 0)
		(void)worker_unwatch(s->self, s->watch);
	s->watch = 0;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	wslay_event_context_free(s->ws);
	s->ws = NULL;
}

/* ---- Subscribing -------------------------------------------------------- */

/* Sends all of p (n bytes) on the blocking socket; 0 or an errno. */
static int
send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* relayd's answer (head, n bytes with its blank line) accepts key. */
static bool
accepted(const char *head, size_t n, const char *key)
{
	static const char name[] = "Sec-WebSocket-Accept:";
	char want[WS_ACCEPT_LEN + 1];
	const char *p, *eol, *end = head + n;

	if (n < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0)
		return false;
	ws_accept(key, WS_KEY_LEN, want);
	for (p = head; p < end; p = eol + 2) {
		if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			break;
		if ((size_t)(eol - p) < sizeof(name) - 1 ||
		    strncasecmp(p, name, sizeof(name) - 1) != 0)
			continue;
		p += sizeof(name) - 1;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		return eol - p >= WS_ACCEPT_LEN &&
		    memcmp(p, want, WS_ACCEPT_LEN) == 0;
	}
	return false;
}

/*
 * The opening handshake on the blocking socket: the GET with a fresh key,
 * then relayd's 101; what follows its head is the first of the stream.
 * 0 or an errno.
 */
static int
handshake(struct wsub *s)
{
	unsigned char raw[16];
	char key[WS_KEY_LEN + 1], req[512], head[HEAD_MAX];
	const char *end = NULL;
	size_t got = 0, used;
	ssize_t n;
	int rc;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return errno;
	base64_encode_raw(key, sizeof(raw), raw);
	key[WS_KEY_LEN] = '\0';
	n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: "
	    "127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    s->ld->sub_port, key);
	if ((rc = send_all(s->fd, req, (size_t)n)) != 0)
		return rc;
	while (end == NULL) {
		if (got == sizeof(head))
			return EPROTO;
		n = recv(s->fd, head + got, sizeof(head) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? ECONNRESET : errno;
		got += (size_t)n;
		end = memmem(head, got, "\r\n\r\n", 4);
	}
	used = (size_t)(end - head) + 4;
	if (!accepted(head, used, key))
		return EPROTO;
	memcpy(s->buf, head + used, got - used);
	s->len = got - used;
	return 0;
}

/*
 * Subscribes: connects, opens the WebSocket and reads up to the greeting,
 * from which every frame relayd takes reaches us.  0 or an errno.
 */
static int
subscribe(struct wsub *s, int rcvbuf)
{
	static const struct wslay_event_callbacks cb = {
		.recv_callback = ws_recv,
		.send_callback = ws_send,
		.genmask_callback = ws_genmask,
		.on_frame_recv_start_callback = ws_frame_start,
		.on_frame_recv_chunk_callback = ws_frame_chunk,
		.on_msg_recv_callback = ws_message
	};
	uint64_t deadline = now_ns() + (uint64_t)(START_TIMEOUT * 1e9);
	struct pollfd pfd;
	int rc;

	if ((s->buf = malloc(READ_SIZE)) == NULL)
		return ENOMEM;
	if ((s->fd = connect_to(s->ld->sub_port, rcvbuf)) < 0)
		return errno;
	if ((rc = handshake(s)) != 0)
		return rc;
	if (wslay_event_context_client_init(&s->ws, &cb, s) != 0)
		return ENOMEM;
	/* Messages are put together here, as they are checked. */
	wslay_event_config_set_no_buffering(s->ws, 1);
	wslay_event_config_set_max_recv_msg_length(s->ws, FRAME_MAX);
	pfd.fd = s->fd;
	pfd.events = POLLIN;
	for (;;) {
		sub_pump(s);
		if (s->greeted)
			break;
		if (s->closed || s->bad > 0)
			return s->closed ? ECONNRESET : EPROTO;
		if (now_ns() >= deadline)
			return ETIMEDOUT;
		(void)poll(&pfd, 1,
		    (int)((deadline - now_ns()) / 1000000) + 1);
	}
	return worker_parent_fire(s->self, "subscribed", NULL);
}

/* The task of "subscriber"; arg is its struct wsub. */
static void *
sub_task(void *arg)
{
	struct wsub *s = arg;
	int rc;

	s->self = worker_current();
	worker_cleanup_push(sub_close, s);
	if ((rc = subscribe(s, 0)) != 0) {
		s->err = rc;
		worker_fail(rc);
	}
	if ((rc = worker_watch(s->self, s->fd, WORKER_READABLE,
	    on_sub_readable, s, &s->watch)) != 0) {
		s->err = rc;
		worker_fail(rc);
	}
	/* Frames are checked as they come, in the loop of these waits;
	 * main says how many to expect once the senders are done. */
	if ((rc = worker_wait_event("expect", NULL, -1, NULL)) != 0)
		worker_fail(rc);
	if (!sub_finished(NULL, s)) {
		rc = worker_wait_until(sub_finished, s, s->ld->timeout, NULL);
		s->timed_out = rc == ETIMEDOUT;
	}
	worker_cleanup_pop(1);
	return NULL;
}

/*
 * The task of "slow": subscribes with a small receive buffer, reads
 * nothing until main says "check", then expects the end of the stream
 * within IO_TIMEOUT, after whatever was buffered.
 */
static void *
slow_task(void *arg)
{
	struct wsub *s = arg;
	char junk[65536];
	ssize_t n;
	int rc;

	s->self = worker_current();
	worker_cleanup_push(sub_close, s);
	if ((rc = subscribe(s, 4096)) != 0) {
		s->err = rc;
		worker_fail(rc);
	}
	if ((rc = worker_wait_event("check", NULL, -1, NULL)) != 0)
		worker_fail(rc);
	do
		n = recv(s->fd, junk, sizeof(junk), 0);
	while (n > 0 || (n < 0 && errno == EINTR));
	s->dropped = n == 0 || errno == ECONNRESET;
	worker_cleanup_pop(1);
	return NULL;
}

/* ---- The group, for run() ----------------------------------------------- */

/* What ends the group's first wait: all subscribed, or one ended. */
static int
group_started(const worker_event_t *ev, void *ctx)
{
	struct subscriber *g = ctx;

	if (strcmp(ev->name, "subscribed") == 0)
		g->up++;
	else if (strcmp(ev->name, WORKER_CHILD_THREAD_END) == 0)
		g->err = EPROTO;
	return g->up == g->n || g->err != 0;
}

/* Cleanup handler of the group: its WebSockets end with it. */
static void
group_close(void *arg)
{
	struct subscriber *g = arg;

	for (size_t i = 0; i < g->n; i++) {
		if (g->w[i] == NULL)
			continue;
		(void)worker_stop(g->w[i]);
		(void)worker_join(g->w[i]);
		worker_unref(g->w[i]);
		g->w[i] = NULL;
	}
	atomic_store(&g->ld->sub_gone, true);
}

/* The task of "subscribers" and of the group of "slow". */
static void *
group_task(void *arg)
{
	struct subscriber *g = arg;
	worker_t *self = worker_current();
	worker_attr_t attr = { .parent = self, .quiet = 1 };
	const char *go = g->slow ? "check" : "expect";
	char name[32];
	int rc;

	worker_cleanup_push(group_close, g);
	for (size_t i = 0; i < g->n; i++) {
		if (g->n == 1)
			snprintf(name, sizeof(name), "%s", g->slow ? "slow" :
			    "subscriber");
		else
			snprintf(name, sizeof(name), "subscriber-%zu", i + 1);
		attr.name = name;
		g->w[i] = worker_create(g->slow ? slow_task : sub_task,
		    &g->v[i], &attr);
		if (g->w[i] == NULL) {
			g->err = errno;
			complain("%s: %s", name, strerror(errno));
			worker_fail(g->err);
		}
	}
	rc = worker_wait_until(group_started, g, START_TIMEOUT, NULL);
	if (rc != 0 || g->err != 0) {
		for (size_t i = 0; i < g->n && g->err == 0; i++)
			g->err = g->v[i].err;
		if (g->err == 0)
			g->err = rc != 0 ? rc : EPROTO;
		worker_fail(g->err);
	}
	if ((rc = worker_parent_fire(self, "subscribed", NULL)) != 0 ||
	    (rc = worker_wait_event(go, NULL, -1, NULL)) != 0)
		worker_fail(rc);
	for (size_t i = 0; i < g->n; i++)
		(void)worker_fire(g->w[i], go, NULL);
	for (size_t i = 0; i < g->n; i++)
		(void)worker_wait_thread(g->w[i], NULL);
	worker_cleanup_pop(1);
	return NULL;
}

/* What ends start_sub()'s wait: subscribed, or ended without. */
static int
started(const worker_event_t *ev, void *ctx)
{
	return ev->source == ctx &&
	    (strcmp(ev->name, "subscribed") == 0 ||
	    strcmp(ev->name, WORKER_CHILD_THREAD_END) == 0);
}

/*
 * Starts "subscribers", or with slow "slow", and waits until it is
 * subscribed, or NULL.
 */
worker_t *
start_sub(struct subscriber *g, bool slow)
{
	const char *name = slow ? "slow" : "subscribers";
	worker_attr_t attr = {
		.name = name, .parent = worker_current(), .quiet = 1
	};
	void *data;
	worker_t *w;
	int rc;

	g->slow = slow;
	if (slow)
		g->n = 1;
	if ((w = worker_create(group_task, g, &attr)) == NULL) {
		complain("%s: %s", name, strerror(errno));
		return NULL;
	}
	/* Each WebSocket has START_TIMEOUT, and they start together. */
	rc = worker_wait_until(started, w, START_TIMEOUT + 5, &data);
	if (rc == 0 && g->err == 0 && worker_is_running(w))
		return w;
	complain("%s: cannot subscribe on port %d: %s", name,
	    g->ld->sub_port, strerror(rc != 0 ? rc : g->err != 0 ?
	    g->err : EPROTO));
	(void)worker_stop(w);
	(void)worker_join(w);
	worker_unref(w);
	return NULL;
}

struct subscriber *
sub_new(struct load *ld)
{
	struct subscriber *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->ld = ld;
	g->n = ld->subscribers > 0 ? ld->subscribers : 1;
	g->v = calloc(g->n, sizeof(*g->v));
	g->w = calloc(g->n, sizeof(*g->w));
	if (g->v == NULL || g->w == NULL)
		goto nomem;
	for (size_t i = 0; i < g->n; i++) {
		struct wsub *s = &g->v[i];

		s->ld = ld;
		s->g = g;
		s->fd = -1;
		s->next = calloc(ld->n, sizeof(*s->next));
		s->payload = malloc(ld->max_size);
		if (s->next == NULL || s->payload == NULL)
			goto nomem;
	}
	return g;
nomem:
	sub_free(g);
	return NULL;
}

void
sub_free(struct subscriber *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; g->v != NULL && i < g->n; i++) {
		free(g->v[i].buf);
		free(g->v[i].msg);
		free(g->v[i].next);
		free(g->v[i].payload);
	}
	free(g->v);
	free(g->w);
	free(g);
}

/* One subscriber's verdict, printed only if it fails or is alone. */
static bool
wsub_report(const struct load *ld, const struct wsub *s, const char *who,
    uint64_t total, double secs, bool alone)
{
	uint64_t behind = 0;

	for (size_t c = 0; c < ld->n; c++)
		if (s->next[c] > ld->sent[c])
			behind++;	/* more than was sent: counted below */
	if (ld->tolerate) {
		if (alone || s->bad > 0 || behind > 0)
			printf("relay-load: %s saw %" PRIu64 " frames of at "
			    "most %" PRIu64 " sent, %" PRIu64 " wrong%s\n",
			    who, s->seen, total, s->bad, s->closed ?
			    "; relayd closed the connection" : "");
		return s->bad == 0 && behind == 0;
	}
	if (alone || s->bad > 0 || behind > 0 || s->seen != total)
		printf("relay-load: %s saw %" PRIu64 " of %" PRIu64 " frames "
		    "in %.2f s, %" PRIu64 " wrong: lost: %" PRIu64 "\n", who,
		    s->seen, total, secs, s->bad,
		    total > s->seen ? total - s->seen : 0);
	if (s->timed_out)
		complain("%s gave up after %g s", who, ld->timeout);
	else if (s->closed && s->seen < total)
		complain("relayd closed the connection of %s (close status "
		    "%u)", who, (unsigned)s->close_code);
	return s->bad == 0 && behind == 0 && s->seen == total;
}

/* The subscribers' verdict; true if every one is good. */
bool
sub_report(const struct load *ld, const struct subscriber *g,
    uint64_t total, double secs)
{
	uint64_t seen = 0, lost = 0, bad = 0;
	size_t good = 0;
	char who[48];

	if (g->n == 1)
		return wsub_report(ld, &g->v[0], "the subscriber", total,
		    secs, true);
	for (size_t i = 0; i < g->n; i++) {
		snprintf(who, sizeof(who), "subscriber %zu", i + 1);
		if (wsub_report(ld, &g->v[i], who, total, secs, false))
			good++;
		seen += g->v[i].seen;
		bad += g->v[i].bad;
		lost += total > g->v[i].seen ? total - g->v[i].seen : 0;
	}
	printf("relay-load: %zu subscribers saw %" PRIu64 " frames in %.2f "
	    "s: %.0f frames/s each, %.0f in all; %zu good, %" PRIu64
	    " wrong: lost: %" PRIu64 "\n", g->n, seen, secs,
	    (double)seen / (double)g->n / secs, (double)seen / secs, good,
	    bad, ld->tolerate ? 0 : lost);
	return good == g->n;
}

/* The slow subscriber's verdict, once it has checked; true if good. */
bool
slow_report(const struct subscriber *g)
{
	if (g->v[0].dropped) {
		printf("relay-load: relayd dropped the slow subscriber\n");
		return true;
	}
	complain("relayd kept the slow subscriber");
	return false;
}
