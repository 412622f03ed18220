/*
 * clients.c - the clients of relayd, and the senders that run them.  A
 * sender owns its clients: client c of the run is sender c % --threads's.
 * It serves their non-blocking sockets from an epoll descriptor that its
 * loop watches, and a tick (worker_every) makes the frames due at
 * --rate, connects again after a delay, and tells when all is done.
 *
 * A client says hello, then writes its frames from the first one not
 * acknowledged, at most --in-flight ahead of the acks, a batch of frames
 * in hand at a time.  A frame counts as sent once its last byte has gone
 * to the kernel, and is kept (as its index) until an ack covers it.  When
 * the connection ends, for any reason, the client connects again after a
 * delay that doubles from BACKOFF_MIN to BACKOFF_MAX, with jitter so that
 * thousands of clients do not come back at once, and sends again from the
 * first frame not acknowledged.  It is done once it has made all its
 * frames (--frames, or until the end of --duration) and all are acked;
 * an --oversize or --cut client then misbehaves.  A sender gives up once
 * no ack has come for --timeout seconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

#define TICK		0.005		/* s between looks at the clients */
#define BATCH		(64 * 1024)	/* bytes of frames put in hand */
#define BATCH_FRAMES	256		/* frames in hand at most */
#define PUMP_ROUNDS	4		/* batches a client writes in a go */
#define BACKOFF_MIN	0.01		/* s before connecting again */
#define BACKOFF_MAX	1.0
#define CUT_LEN		1000u		/* the frame a --cut client cuts */
#define EPOLL_BATCH	256

/* What a client does after its good frames. */
enum { GOOD, OVERSIZE, CUT };

/* Where a client is. */
enum {
	C_IDLE,		/* not started yet: --parallel */
	C_WAIT,		/* to connect at wake */
	C_CONNECTING,
	C_UP,
	C_BAD,		/* misbehaved; waits for relayd to close */
	C_DONE
};

struct client {
	struct sender *sd;
	uint32_t index;		/* its number in the run */
	int kind;
	int state;
	int fd;
	unsigned events;	/* what epoll watches for */
	double wake;		/* C_WAIT: when to connect */
	double backoff;
	double due;		/* --rate: when the next frame is due */
	uint64_t made;		/* frames that exist: to be sent */
	uint64_t next;		/* the next frame to put in hand */
	uint64_t first;		/* the first frame in hand */
	uint64_t rng;		/* --split: the pieces' lengths */
	unsigned char *buf;	/* in hand: maybe the hello, then frames */
	size_t off;		/* bytes of buf written */
	size_t len;
	size_t cap;
	uint32_t ends[BATCH_FRAMES];	/* where each frame ends in buf */
	size_t nends;
	size_t nwritten;	/* frames of buf written whole */
	size_t start;		/* where the first frame begins in buf */
	bool hello;		/* the next batch starts with the hello */
	unsigned char in[MSG_LEN];	/* a message of relayd's, in part */
	size_t in_len;
};

struct sender {
	struct load *ld;
	worker_t *self;
	int epfd;
	struct client *v;	/* its clients */
	size_t n;
	size_t started;		/* clients started, from v[0] */
	size_t active;		/* started and not done */
	size_t quota;		/* active at once at most */
	size_t done;
	double progress;	/* when an ack last came */
	bool finished;
};

static double
now_s(void)
{
	return (double)now_ns() / 1e9;
}

static bool
time_up(const struct load *ld)
{
	return ld->deadline_ns != 0 && now_ns() >= ld->deadline_ns;
}

int
connect_to(int port, int rcvbuf)
{
	struct sockaddr_in sa = relay_loopback(port);
	struct timeval tv = { .tv_sec = IO_TIMEOUT };
	int fd, one = 1, err;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* Small pieces leave as packets of their own; calls that block
	 * give up in the end, so a stuck relayd fails the run instead of
	 * hanging it. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
	    sizeof(rcvbuf)) != 0) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int
connect_start(const struct load *ld, bool *done)
{
	struct sockaddr_in sa = relay_loopback(ld->port);
	struct sockaddr_in from = { .sin_family = AF_INET,
	    .sin_addr = ld->bind };
	int fd, one = 1, err;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return -1;
	*done = false;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) != 0 ||
	    (ld->bind.s_addr != 0 && bind(fd, (struct sockaddr *)&from,
	    sizeof(from)) != 0))
		goto fail;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		*done = true;
	else if (errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* ---- A connection ------------------------------------------------------ */

/* Has epoll watch c's socket for events. */
static void
client_watch(struct client *c, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return;
	(void)epoll_ctl(c->sd->epfd, c->events == 0 ? EPOLL_CTL_ADD :
	    EPOLL_CTL_MOD, c->fd, &ev);
	c->events = events;
}

/*
 * The connection has ended: close it, and connect again after the
 * backoff, to send again from the first frame not acknowledged.
 */
static void
client_drop(struct client *c, double backoff)
{
	uint64_t r = next_rand(&c->rng);

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->events = 0;
	c->off = c->len = c->nends = c->nwritten = 0;
	c->in_len = 0;
	c->next = c->sd->ld->acked[c->index];
	if (c->backoff < backoff)
		c->backoff = backoff;
	/* Between half and one and a half of the backoff. */
	c->wake = now_s() + c->backoff * (0.5 + (double)(r % 1024) / 1024);
	c->backoff = 2 * c->backoff < BACKOFF_MAX ? 2 * c->backoff :
	    BACKOFF_MAX;
	c->state = C_WAIT;
}

/* The client will never write again: close, and count it done. */
static void
client_done(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->cap = 0;
	c->state = C_DONE;
	c->sd->active--;
	c->sd->done++;
}

/* Makes room for n more bytes in hand; false without memory. */
static bool
client_room(struct client *c, size_t n)
{
	size_t cap = c->cap != 0 ? c->cap : 256;
	unsigned char *b;

	while (cap < c->len + n)
		cap *= 2;
	if (cap == c->cap)
		return true;
	if ((b = realloc(c->buf, cap)) == NULL)
		return false;
	c->buf = b;
	c->cap = cap;
	return true;
}

/* Frame index may be sent now: it exists, and is within --in-flight. */
static bool
client_may_send(struct client *c, uint64_t index)
{
	struct load *ld = c->sd->ld;

	if (index >= ld->acked[c->index] + ld->in_flight)
		return false;
	if (index < c->made)
		return true;
	/* Without --rate, a frame exists as soon as it can be sent. */
	if (ld->rate > 0 || index >= ld->frames || time_up(ld))
		return false;
	c->made = index + 1;
	return true;
}

/* Puts the next batch in hand, once the last is written; false without
 * memory. */
static bool
client_fill(struct client *c)
{
	struct load *ld = c->sd->ld;
	uint32_t plen;

	c->off = c->len = c->nends = c->nwritten = 0;
	if (c->hello) {
		if (!client_room(c, HELLO_LEN))
			return false;
		make_hello(ld, c->index, c->buf);
		c->len = HELLO_LEN;
		c->hello = false;
	}
	c->start = c->len;
	c->first = c->next;
	while (c->nends < BATCH_FRAMES && c->len < BATCH &&
	    client_may_send(c, c->next)) {
		if (!client_room(c, HEAD_LEN + ld->max_size))
			return false;
		plen = make_payload(ld, c->index, (uint32_t)c->next,
		    c->buf + c->len + HEAD_LEN);
		put_be32(c->buf + c->len, plen);
		put_be64(c->buf + c->len + 4, c->next);
		c->len += HEAD_LEN + plen;
		c->ends[c->nends++] = (uint32_t)c->len;
		c->next++;
	}
	return true;
}

/* The length of the next piece with --split: a quarter tiny, the rest up
 * to 16 KiB. */
static size_t
piece_len(uint64_t *rng)
{
	uint64_t r = next_rand(rng);

	if ((r & 3) == 0)
		return 1 + (size_t)((r >> 2) % 16);
	return 1 + (size_t)((r >> 2) % 16384);
}

/* With a subscriber, the senders stay within the window of it. */
static bool
window_open(const struct load *ld)
{
	return ld->window == 0 || atomic_load(&ld->sub_gone) ||
	    atomic_load(&ld->written) - atomic_load(&ld->checked) <=
	    ld->window;
}

/*
 * Writes what is in hand, and more, until the socket is full, nothing is
 * left to send, or PUMP_ROUNDS batches are out.  False if the connection
 * was dropped.
 */
static bool
client_pump(struct client *c)
{
	struct load *ld = c->sd->ld;
	uint64_t *sent = &ld->sent[c->index];
	size_t n, piece;
	ssize_t w;

	for (int round = 0; round < PUMP_ROUNDS; ) {
		if (c->off == c->len) {
			if (!client_fill(c)) {
				complain("client %" PRIu32 ": no memory",
				    c->index);
				client_drop(c, BACKOFF_MAX);
				return false;
			}
			if (c->len == 0)
				break;
			round++;
		}
		/* Closed: the tick looks again, rather than a spin on a
		 * writable socket. */
		if (!window_open(ld)) {
			client_watch(c, EPOLLIN);
			return true;
		}
		n = c->len - c->off;
		if (ld->split && n > (piece = piece_len(&c->rng)))
			n = piece;
		w = send(c->fd, c->buf + c->off, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			client_watch(c, EPOLLIN | EPOLLOUT);
			return true;
		}
		if (w < 0) {
			client_drop(c, BACKOFF_MIN);
			return false;
		}
		c->off += (size_t)w;
		while (c->nwritten < c->nends &&
		    c->ends[c->nwritten] <= c->off) {
			if (c->first + c->nwritten + 1 > *sent)
				*sent = c->first + c->nwritten + 1;
			/* In the subscribers' format: no sequence number. */
			atomic_fetch_add_explicit(&ld->written,
			    c->ends[c->nwritten] - (c->nwritten > 0 ?
			    c->ends[c->nwritten - 1] : c->start) -
			    (HEAD_LEN - 4), memory_order_relaxed);
			c->nwritten++;
		}
	}
	client_watch(c, c->off < c->len ? EPOLLIN | EPOLLOUT : EPOLLIN);
	return true;
}

/* The bad ending of an --oversize or --cut client, once all is acked. */
static void
client_misbehave(struct client *c)
{
	unsigned char bytes[HEAD_LEN + CUT_LEN];

	memset(bytes, 0x5a, sizeof(bytes));
	put_be64(bytes + 4, c->next);
	if (c->kind == OVERSIZE) {
		put_be32(bytes, FRAME_MAX + 1);
		/* relayd closes as soon as it has read the length. */
		(void)send(c->fd, bytes, sizeof(bytes), MSG_NOSIGNAL);
		c->state = C_BAD;
		client_watch(c, EPOLLIN);
		return;
	}
	put_be32(bytes, CUT_LEN);
	if (send(c->fd, bytes, HEAD_LEN + CUT_LEN / 2, MSG_NOSIGNAL) < 0)
		complain("client %" PRIu32 ": send: %s", c->index,
		    strerror(errno));
	client_done(c);
}

/* Done when it can make no more frames and all it made are acked. */
static void
client_check_done(struct client *c)
{
	struct load *ld = c->sd->ld;
	bool more = c->made < ld->frames && !time_up(ld);

	if (c->state != C_UP || more || ld->acked[c->index] < c->made)
		return;
	if (c->kind == GOOD)
		client_done(c);
	else
		client_misbehave(c);
}

/* A message of relayd's; false if the connection was dropped. */
static bool
client_message(struct client *c, const unsigned char *m)
{
	struct load *ld = c->sd->ld;
	uint64_t v = get_be64(m + 4);

	switch (m[0]) {
	case MSG_WELCOME:
		c->backoff = BACKOFF_MIN;
		return true;
	case MSG_ACK:
		if (v >= c->next) {
			complain("client %" PRIu32 ": an ack of frame %" PRIu64
			    ", not sent yet", c->index, v);
			client_drop(c, BACKOFF_MAX);
			return false;
		}
		if (v + 1 > ld->acked[c->index])
			ld->acked[c->index] = v + 1;
		c->sd->progress = now_s();
		return true;
	case MSG_REFUSED:
		atomic_fetch_add(&ld->refusals, 1);
		client_drop(c, 0.1);
		return false;
	case MSG_ERROR:
		if (c->state == C_BAD && m[1] == ERR_TOO_LONG) {
			client_done(c);
			return false;
		}
		atomic_fetch_add(&ld->errors, 1);
		if (!ld->tolerate)
			complain("client %" PRIu32 ": relayd: error %d (%"
			    PRIu64 ")", c->index, m[1], v);
		client_drop(c, BACKOFF_MIN);
		return false;
	}
	complain("client %" PRIu32 ": a message of type %d", c->index, m[0]);
	client_drop(c, BACKOFF_MAX);
	return false;
}

static void
client_readable(struct client *c)
{
	unsigned char b[64 * MSG_LEN];
	size_t k;
	ssize_t n;

	n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		/* An --oversize client expects the end. */
		if (c->state == C_BAD)
			client_done(c);
		else
			client_drop(c, BACKOFF_MIN);
		return;
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)k) {
		k = MSG_LEN - c->in_len;
		if (k > (size_t)(n - i))
			k = (size_t)(n - i);
		memcpy(c->in + c->in_len, b + i, k);
		c->in_len += k;
		if (c->in_len < MSG_LEN)
			break;
		c->in_len = 0;
		if (!client_message(c, c->in))
			return;
	}
	if (c->state == C_UP && client_pump(c))
		client_check_done(c);
}

/* The socket is connected: the hello and the frames not acked. */
static void
client_up(struct client *c)
{
	struct load *ld = c->sd->ld;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	/* With relayd gone, a connection from a port in the ephemeral range
	 * to the same port can meet itself (TCP simultaneous open). */
	if (getsockname(c->fd, (struct sockaddr *)&sa, &len) == 0 &&
	    ntohs(sa.sin_port) == ld->port &&
	    sa.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
		client_drop(c, BACKOFF_MIN);
		return;
	}
	atomic_fetch_add(&ld->connects, 1);
	c->state = C_UP;
	c->hello = true;
	c->next = ld->acked[c->index];
	if (client_pump(c))
		client_check_done(c);
}

static void
client_connect(struct client *c)
{
	bool done;

	if ((c->fd = connect_start(c->sd->ld, &done)) < 0) {
		/* Out of descriptors or ports, say: later. */
		client_drop(c, BACKOFF_MAX);
		return;
	}
	c->state = C_CONNECTING;
	if (done) {
		client_up(c);
		return;
	}
	client_watch(c, EPOLLOUT);
}

/* The watch of the epoll descriptor: a round of ready sockets. */
static void
on_ready(int fd, unsigned revents, void *ctx)
{
	struct epoll_event ev[EPOLL_BATCH];
	struct client *c;
	int n, err;
	socklen_t len = sizeof(err);

	(void)revents;
	(void)ctx;
	n = epoll_wait(fd, ev, EPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		c = ev[i].data.ptr;
		if (c->state == C_CONNECTING) {
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
			    &len) != 0 || err != 0)
				client_drop(c, BACKOFF_MIN);
			else
				client_up(c);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			client_readable(c);
		if (c->state == C_UP && (ev[i].events & EPOLLOUT) &&
		    client_pump(c))
			client_check_done(c);
	}
}

/* ---- The sender -------------------------------------------------------- */

/* Makes the frames due at --rate. */
static void
client_rate(struct client *c, double now)
{
	struct load *ld = c->sd->ld;
	uint64_t before = c->made;

	if (c->due == 0)
		c->due = now;
	/* Behind by more than a second (relayd was away): no burst. */
	if (c->due < now - 1)
		c->due = now - 1;
	while (c->due <= now && c->made < ld->frames && !time_up(ld)) {
		c->made++;
		c->due += 1 / ld->rate;
	}
	if (c->made != before && c->state == C_UP && c->off == c->len)
		(void)client_pump(c);
}

/* worker_every(): the clocks of the clients. */
static void
sender_tick(void *arg)
{
	struct sender *sd = arg;
	struct load *ld = sd->ld;
	double now = now_s();

	while (sd->started < sd->n && sd->active < sd->quota) {
		sd->v[sd->started++].state = C_WAIT;
		sd->active++;
	}
	for (size_t i = 0; i < sd->started; i++) {
		struct client *c = &sd->v[i];

		if (ld->rate > 0 && c->state != C_DONE)
			client_rate(c, now);
		if (c->state == C_WAIT && now >= c->wake)
			client_connect(c);
		else if (c->state == C_UP && c->off < c->len &&
		    !(c->events & EPOLLOUT))
			(void)client_pump(c);	/* the window reopened */
		if (c->state == C_UP)
			client_check_done(c);
	}
	if (sd->finished)
		return;
	if (sd->done == sd->n || now - sd->progress > ld->timeout) {
		sd->finished = true;
		(void)worker_fire(sd->self, "done", NULL);
	}
}

struct sender *
sender_new(struct load *ld, size_t first)
{
	struct sender *sd = calloc(1, sizeof(*sd));

	if (sd == NULL)
		return NULL;
	sd->ld = ld;
	sd->epfd = -1;
	sd->n = ld->n / ld->threads + (first < ld->n % ld->threads);
	if (sd->n > 0 && (sd->v = calloc(sd->n, sizeof(*sd->v))) == NULL) {
		free(sd);
		return NULL;
	}
	for (size_t i = 0; i < sd->n; i++) {
		struct client *c = &sd->v[i];

		c->sd = sd;
		c->index = (uint32_t)(first + i * ld->threads);
		c->kind = c->index < ld->clients ? GOOD :
		    c->index < ld->clients + ld->oversize ? OVERSIZE : CUT;
		c->fd = -1;
		c->backoff = BACKOFF_MIN;
		c->rng = seed_of(ld, c->index, 0, 1);
	}
	sd->quota = (ld->parallel + ld->threads - 1) / ld->threads;
	return sd;
}

void
sender_free(struct sender *sd)
{
	if (sd == NULL)
		return;
	for (size_t i = 0; i < sd->n; i++) {
		if (sd->v[i].fd >= 0)
			close(sd->v[i].fd);
		free(sd->v[i].buf);
	}
	if (sd->epfd >= 0)
		close(sd->epfd);
	free(sd->v);
	free(sd);
}

/* Says where the clients given up on were, the first few. */
static void
sender_unfinished(const struct sender *sd)
{
	static const char *const states[] = {
		"not started", "to connect", "connecting", "connected",
		"misbehaving", "done"
	};
	const struct load *ld = sd->ld;
	int shown = 0;

	complain("no ack for %g s: giving up on %zu clients", ld->timeout,
	    sd->n - sd->done);
	for (size_t i = 0; i < sd->n && shown < 3; i++) {
		const struct client *c = &sd->v[i];

		if (c->state == C_DONE)
			continue;
		complain("client %" PRIu32 ": %s; %" PRIu64 " frames made, %"
		    PRIu64 " in hand, %" PRIu64 " sent, %" PRIu64 " acked",
		    c->index, states[c->state], c->made, c->next,
		    ld->sent[c->index], ld->acked[c->index]);
		shown++;
	}
}

/* The task of a sender; arg is its struct sender. */
void *
sender_task(void *arg)
{
	struct sender *sd = arg;
	int rc;

	sd->self = worker_current();
	sd->progress = now_s();
	if ((sd->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		worker_fail(errno);
	if ((rc = worker_watch(sd->self, sd->epfd, WORKER_READABLE, on_ready,
	    sd, NULL)) != 0 ||
	    (rc = worker_every(sd->self, sender_tick, sd, TICK, NULL)) != 0)
		worker_fail(rc);
	sender_tick(sd);
	if ((rc = worker_wait_event("done", sd->self, -1, NULL)) != 0)
		worker_fail(rc);
	if (sd->done < sd->n) {
		if (!sd->ld->tolerate)
			sender_unfinished(sd);
		atomic_fetch_add(&sd->ld->unfinished, sd->n - sd->done);
	}
	return NULL;
}
