/*
 * relay-load.c - load for relayd, and the checks that nothing was lost.
 *
 * A run opens client connections to relayd and sends frames with random
 * payloads, cut into packets at random places.  With --sub-port it
 * subscribes first, and checks that the subscriber sees every frame, in
 * order and intact.  It can add clients that misbehave (--oversize, --cut)
 * and a subscriber that never reads (--slow-sub), which relayd must drop.
 * It prints the rate, and with --record writes what it sent.
 *
 * The run is a closed loop: with a subscriber, the senders stay at most
 * --window bytes ahead of what it has checked.  One thread that checks
 * everything cannot keep up with many that send, on few CPUs, and relayd
 * rightly drops a subscriber that falls --sub-buffer bytes behind; a
 * window below that, less 16 KiB (a piece) per sender, keeps ours in
 * step, so the rate printed is that of frames relayed and checked.
 *
 * A check (--verify) reads relayd's database once relayd has stopped, and
 * compares it with the record: exactly the frames sent, each once, each in
 * its place, each payload byte for byte (--partial: relayd was stopped in
 * the middle, so each client's rows may stop short of what it sent, but
 * must be a prefix of it).
 *
 * A payload is a function of (seed, client, index): its first 8 bytes are
 * the client's number and the frame's index, big-endian, and its length
 * and the rest come from a generator seeded with the three.  So every
 * check regenerates the payload it expects, and a record holds only the
 * seed, the sizes and how many frames each client sent completely.
 *
 * The workers: "sender-N" runs clients one after the other on blocking
 * sockets (it only writes); "subscriber" reads in its loop through
 * worker_watch(); "slow" subscribes and then reads nothing until the end.
 * They are children of main's root worker, which waits for each with
 * worker_wait_thread() and hears of their start and end.
 *
 * Usage: relay-load -p PORT [-s SUBPORT] [options]	a run
 *	  relay-load --verify --db FILE --record FILE [--partial]
 * Exits 0 if every check passed, 1 if one failed, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "worker.h"

#define IO_TIMEOUT	30		/* seconds a socket call may block */
#define START_TIMEOUT	15.0		/* seconds to subscribe */
#define REFILL		(32 * 1024)	/* bytes a sender keeps ready */
#define RING		4096		/* frames a sender has in hand */
#define CUT_LEN		1000u		/* the frame a --cut client cuts */
#define READ_SIZE	(256 * 1024)	/* bytes the subscriber reads at once */
#define PROBLEMS_SHOWN	10		/* problems printed in full */

/* What a client does after its good frames. */
enum { GOOD, OVERSIZE, CUT };

/*
 * The run: options, set before any worker starts, and what each client
 * sent, written by its sender only and read by main after the senders
 * ended.
 */
struct load {
	int port;
	int sub_port;		/* 0: no subscriber */
	size_t clients;		/* good ones */
	size_t oversize;
	size_t cut;
	size_t n;		/* all clients */
	uint64_t frames;	/* per client; UINT64_MAX with a duration */
	double duration;
	uint32_t min_size;
	uint32_t max_size;
	size_t parallel;
	bool slow_sub;
	bool tolerate;
	uint64_t seed;
	double timeout;
	const char *record;
	const char *db;
	bool verify;
	bool partial;

	uint64_t window;	/* bytes senders may be ahead; 0: no limit */

	uint64_t deadline_ns;	/* with a duration: when to stop sending */
	uint64_t *sent;		/* frames each client sent completely */
	uint64_t expect;	/* main, before "expect": frames sent */
	atomic_uint_least64_t written;	/* senders: bytes of frames sent */
	atomic_uint_least64_t checked;	/* subscriber: bytes of frames seen */
	atomic_bool sub_gone;	/* the subscriber's connection is closed */
};

static void complain(const char *fmt, ...) __attribute__((format(printf, 1,
    2)));

static void
complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	relay_vlog("relay-load", fmt, ap);
	va_end(ap);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Payloads -------------------------------------------------------- */

/* splitmix64: small, fast, and the same on every run. */
static uint64_t
next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static uint64_t
seed_of(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t salt)
{
	uint64_t s = ld->seed ^ salt;

	s ^= ((uint64_t)client << 32 | index) * 0xd1b54a32d192ed03u;
	(void)next_rand(&s);
	return s;
}

/* The length of payload (client, index); s is left for its bytes. */
static uint32_t
payload_len(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t *s)
{
	uint64_t span = (uint64_t)ld->max_size - ld->min_size + 1;

	*s = seed_of(ld, client, index, 0);
	return ld->min_size + (uint32_t)(next_rand(s) % span);
}

/* Writes payload (client, index) into buf (max_size bytes); its length. */
static uint32_t
make_payload(const struct load *ld, uint32_t client, uint32_t index,
    unsigned char *buf)
{
	uint64_t s;
	uint32_t len = payload_len(ld, client, index, &s);

	put_be32(buf, client);
	put_be32(buf + 4, index);
	for (uint32_t k = 8; k < len; k += 8) {
		uint64_t r = next_rand(&s);
		uint32_t n = len - k < 8 ? len - k : 8;

		memcpy(buf + k, &r, n);
	}
	return len;
}

static int
kind_of(const struct load *ld, size_t client)
{
	if (client < ld->clients)
		return GOOD;
	return client < ld->clients + ld->oversize ? OVERSIZE : CUT;
}

/* A connected blocking socket to 127.0.0.1:port, or -1 with errno. */
static int
connect_to(int port, int rcvbuf)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};
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

/* ---- Senders --------------------------------------------------------- */

/*
 * The bytes a client has in hand: whole frames appended at the back, sent
 * from the front in pieces of random length, so that a piece may end
 * anywhere in a frame or span several.  ends[] holds where each frame in
 * hand ends, in bytes since the connection began.
 */
struct stream {
	unsigned char *buf;
	size_t cap;
	size_t off;		/* bytes of buf sent */
	size_t len;		/* bytes in buf */
	uint64_t sent;		/* bytes sent since the connection began */
	uint64_t ends[RING];
	size_t head;
	size_t count;
};

struct sender {
	struct load *ld;
	size_t first;		/* its clients: first, first + parallel... */
	unsigned char *payload;	/* room for the longest payload */
	struct stream st;
};

/* Appends bytes to the stream; false without memory. */
static bool
stream_add(struct stream *st, const void *p, size_t n)
{
	if (st->off > 0 && st->off == st->len)
		st->off = st->len = 0;
	if (st->len + n > st->cap && st->off > 0) {
		memmove(st->buf, st->buf + st->off, st->len - st->off);
		st->len -= st->off;
		st->off = 0;
	}
	if (st->len + n > st->cap) {
		size_t cap = st->cap != 0 ? st->cap : 2 * REFILL;
		unsigned char *b;

		while (cap < st->len + n)
			cap *= 2;
		if (cap != st->cap) {
			if ((b = realloc(st->buf, cap)) == NULL)
				return false;
			st->buf = b;
			st->cap = cap;
		}
	}
	memcpy(st->buf + st->len, p, n);
	st->len += n;
	return true;
}

/* The length of the next piece: a quarter tiny, the rest up to 16 KiB. */
static size_t
piece_len(uint64_t *rng)
{
	uint64_t r = next_rand(rng);

	if ((r & 3) == 0)
		return 1 + (size_t)((r >> 2) % 16);
	return 1 + (size_t)((r >> 2) % 16384);
}

static bool
time_up(const struct load *ld)
{
	return ld->deadline_ns != 0 && now_ns() >= ld->deadline_ns;
}

/*
 * Waits while the senders are more than the window ahead of the
 * subscriber; ETIMEDOUT if it makes no progress for IO_TIMEOUT.
 */
static int
await_window(struct load *ld)
{
	const struct timespec ms = { .tv_nsec = 1000000 };
	uint64_t checked, last = 0;
	unsigned idle = 0;

	while (ld->window != 0 && !atomic_load(&ld->sub_gone) &&
	    atomic_load(&ld->written) - (checked =
	    atomic_load(&ld->checked)) > ld->window) {
		if (checked != last) {
			last = checked;
			idle = 0;
		} else if (++idle > IO_TIMEOUT * 1000) {
			return ETIMEDOUT;
		}
		nanosleep(&ms, NULL);
	}
	return 0;
}

/*
 * Sends everything in hand and, while there are frames left, more; counts
 * each frame once its last byte is sent.  0, or the errno of send().
 */
static int
send_frames(struct sender *sd, int fd, uint32_t client, uint64_t *rng)
{
	struct load *ld = sd->ld;
	struct stream *st = &sd->st;
	unsigned char head[4];
	uint64_t total = 0;
	uint32_t index = 0, len;
	size_t n;
	ssize_t w;
	int rc;

	for (;;) {
		while (st->len - st->off < REFILL && st->count < RING &&
		    index < ld->frames && !time_up(ld)) {
			len = make_payload(ld, client, index++, sd->payload);
			put_be32(head, len);
			if (!stream_add(st, head, sizeof(head)) ||
			    !stream_add(st, sd->payload, len))
				return ENOMEM;
			total += sizeof(head) + len;
			st->ends[(st->head + st->count++) % RING] = total;
		}
		if (st->off == st->len)
			return 0;
		if ((rc = await_window(ld)) != 0)
			return rc;
		n = piece_len(rng);
		if (n > st->len - st->off)
			n = st->len - st->off;
		if ((w = send(fd, st->buf + st->off, n, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		st->off += (size_t)w;
		st->sent += (uint64_t)w;
		atomic_fetch_add(&ld->written, (uint64_t)w);
		while (st->count > 0 && st->ends[st->head] <= st->sent) {
			st->head = (st->head + 1) % RING;
			st->count--;
			ld->sent[client]++;
		}
	}
}

/* After a frame over the limit: relayd must close the connection. */
static int
await_close(int fd, uint32_t client)
{
	char junk[4096];
	ssize_t n;

	for (;;) {
		n = recv(fd, junk, sizeof(junk), 0);
		if (n == 0 || (n < 0 && (errno == ECONNRESET ||
		    errno == EPIPE)))
			return 0;
		if (n < 0 && errno != EINTR) {
			complain("client %" PRIu32 ": relayd did not close "
			    "the connection after a frame over the limit: %s",
			    client, strerror(errno));
			return errno;
		}
	}
}

/* The bad ending of an --oversize or --cut client. */
static int
misbehave(int fd, uint32_t client, int kind)
{
	unsigned char bytes[4 + CUT_LEN];

	memset(bytes, 0x5a, sizeof(bytes));
	if (kind == OVERSIZE) {
		put_be32(bytes, FRAME_MAX + 1);
		/* relayd may close as soon as it has read the length, so
		 * the bytes after it may be refused: no matter. */
		(void)send(fd, bytes, sizeof(bytes), MSG_NOSIGNAL);
		return await_close(fd, client);
	}
	put_be32(bytes, CUT_LEN);
	if (send(fd, bytes, 4 + CUT_LEN / 2, MSG_NOSIGNAL) < 0) {
		complain("client %" PRIu32 ": send: %s", client,
		    strerror(errno));
		return errno;
	}
	return 0;
}

static int
run_client(struct sender *sd, uint32_t client)
{
	struct load *ld = sd->ld;
	uint64_t rng = seed_of(ld, client, 0, 1);
	int kind = kind_of(ld, client);
	int fd, rc;

	/* A new connection: the buffer stays, its contents go. */
	sd->st.off = sd->st.len = 0;
	sd->st.sent = 0;
	sd->st.head = sd->st.count = 0;
	if ((fd = connect_to(ld->port, 0)) < 0) {
		rc = errno;
		if (!ld->tolerate)
			complain("client %" PRIu32 ": connect: %s", client,
			    strerror(rc));
		return ld->tolerate ? 0 : rc;
	}
	rc = send_frames(sd, fd, client, &rng);
	if (rc != 0 && !ld->tolerate)
		complain("client %" PRIu32 ": send: %s", client,
		    strerror(rc));
	else if (rc == 0 && kind != GOOD)
		rc = misbehave(fd, client, kind);
	close(fd);
	return ld->tolerate ? 0 : rc;
}

static void
sender_free(void *arg)
{
	struct sender *sd = arg;

	free(sd->st.buf);
	free(sd->payload);
}

/* The task of a sender; arg is its struct sender. */
static void *
sender_task(void *arg)
{
	struct sender *sd = arg;
	struct load *ld = sd->ld;
	int rc;

	worker_cleanup_push(sender_free, sd);
	if ((sd->payload = malloc(ld->max_size)) == NULL)
		worker_fail(ENOMEM);
	for (size_t c = sd->first; c < ld->n; c += ld->parallel)
		if ((rc = run_client(sd, (uint32_t)c)) != 0)
			worker_fail(rc);
	worker_cleanup_pop(1);
	return NULL;
}

/* ---- Subscribers ----------------------------------------------------- */

struct subscriber {
	struct load *ld;
	worker_t *self;
	int fd;
	uint64_t watch;
	unsigned char *buf;	/* bytes read, not yet checked */
	size_t len;
	size_t cap;
	unsigned char *payload;	/* room for the expected payload */
	uint64_t *next;		/* per client: the index due next */
	uint64_t seen;		/* frames checked */
	uint64_t bad;		/* frames wrong */
	bool paces;		/* the senders wait for this one */
	bool closed;		/* relayd closed the connection */
	bool timed_out;
	bool dropped;		/* the slow one: relayd dropped it */
	int err;		/* the setup failed */
};

static void
sub_problem(struct subscriber *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sub_problem(struct subscriber *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (s->bad++ >= PROBLEMS_SHOWN)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	complain("subscriber: %s", line);
}

/* Checks one frame the subscriber got. */
static void
sub_check(struct subscriber *s, const unsigned char *p, uint32_t len)
{
	struct load *ld = s->ld;
	uint32_t client, index;

	if (len < 8) {
		sub_problem(s, "a frame of %" PRIu32 " bytes", len);
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

/* Checks every complete frame read so far. */
static void
sub_parse(struct subscriber *s)
{
	size_t pos = 0;
	uint32_t len;

	while (s->len - pos >= 4) {
		len = get_be32(s->buf + pos);
		if (len > FRAME_MAX) {
			sub_problem(s, "a frame of %" PRIu32 " bytes; giving "
			    "up", len);
			s->closed = true;
			break;
		}
		if (s->len - pos - 4 < len)
			break;
		sub_check(s, s->buf + pos + 4, len);
		pos += 4 + (size_t)len;
		atomic_fetch_add(&s->ld->checked, 4 + (uint64_t)len);
	}
	memmove(s->buf, s->buf + pos, s->len - pos);
	s->len -= pos;
}

static void
on_sub_readable(int fd, unsigned revents, void *ctx)
{
	struct subscriber *s = ctx;
	unsigned char *b;
	ssize_t n;

	(void)revents;
	if (s->cap - s->len < READ_SIZE) {
		if ((b = realloc(s->buf, s->len + READ_SIZE)) == NULL) {
			complain("subscriber: no memory");
			worker_fail(ENOMEM);
		}
		s->buf = b;
		s->cap = s->len + READ_SIZE;
	}
	n = recv(fd, s->buf + s->len, s->cap - s->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n > 0) {
		s->len += (size_t)n;
		sub_parse(s);
	} else {
		s->closed = true;
	}
	/* Nobody to wait for any more. */
	if (s->closed)
		atomic_store(&s->ld->sub_gone, true);
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
	const struct subscriber *s = ctx;

	(void)ev;
	return s->closed || s->seen >= s->ld->expect;
}

/* Cleanup handler of both subscribers. */
static void
sub_close(void *arg)
{
	struct subscriber *s = arg;

	if (s->paces)
		atomic_store(&s->ld->sub_gone, true);
	if (s->watch != 0)
		(void)worker_unwatch(s->self, s->watch);
	s->watch = 0;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Subscribes: connects and reads the greeting; 0 or an errno. */
static int
subscribe(struct subscriber *s, int rcvbuf)
{
	char greeting[GREETING_LEN];
	size_t got = 0;
	ssize_t n;

	if ((s->fd = connect_to(s->ld->sub_port, rcvbuf)) < 0)
		return errno;
	while (got < GREETING_LEN) {
		n = recv(s->fd, greeting + got, GREETING_LEN - got, 0);
		if (n <= 0)
			return n == 0 ? ECONNRESET : errno;
		got += (size_t)n;
	}
	if (memcmp(greeting, GREETING, GREETING_LEN) != 0)
		return EPROTO;
	/* From here on, every frame relayd takes reaches us: tell main. */
	return worker_parent_fire(s->self, "subscribed", NULL);
}

/* The task of "subscriber"; arg is its struct subscriber. */
static void *
sub_task(void *arg)
{
	struct subscriber *s = arg;
	int rc;

	s->self = worker_current();
	s->paces = true;
	worker_cleanup_push(sub_close, s);
	if ((rc = subscribe(s, 0)) != 0) {
		s->err = rc;
		worker_fail(rc);
	}
	if (fcntl(s->fd, F_SETFL, O_NONBLOCK) != 0 ||
	    (rc = worker_watch(s->self, s->fd, WORKER_READABLE,
	    on_sub_readable, s, &s->watch)) != 0) {
		s->err = rc != 0 ? rc : errno;
		worker_fail(s->err);
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
	struct subscriber *s = arg;
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

/* ---- A run ----------------------------------------------------------- */

static int
started(const worker_event_t *ev, void *ctx)
{
	return ev->source == ctx &&
	    (strcmp(ev->name, "subscribed") == 0 ||
	    strcmp(ev->name, WORKER_CHILD_THREAD_END) == 0);
}

/* Starts a subscriber and waits until it is subscribed, or NULL. */
static worker_t *
start_sub(worker_fn fn, struct subscriber *s, const char *name)
{
	worker_attr_t attr = {
		.name = name, .parent = worker_current(), .quiet = 1
	};
	void *data;
	worker_t *w;
	int rc;

	if ((w = worker_create(fn, s, &attr)) == NULL) {
		complain("%s: %s", name, strerror(errno));
		return NULL;
	}
	rc = worker_wait_until(started, w, START_TIMEOUT, &data);
	if (rc == 0 && s->err == 0 && worker_is_running(w))
		return w;
	complain("%s: cannot subscribe on port %d: %s", name,
	    s->ld->sub_port, strerror(rc != 0 ? rc : s->err != 0 ?
	    s->err : EPROTO));
	(void)worker_stop(w);
	(void)worker_join(w);
	worker_unref(w);
	return NULL;
}

static struct subscriber *
sub_new(struct load *ld)
{
	struct subscriber *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ld = ld;
	s->fd = -1;
	s->next = calloc(ld->n, sizeof(*s->next));
	s->payload = malloc(ld->max_size);
	if (s->next == NULL || s->payload == NULL) {
		free(s->next);
		free(s->payload);
		free(s);
		return NULL;
	}
	return s;
}

static void
sub_free(struct subscriber *s)
{
	if (s == NULL)
		return;
	free(s->buf);
	free(s->next);
	free(s->payload);
	free(s);
}

/* The subscriber's verdict; true if it is good. */
static bool
sub_report(const struct load *ld, const struct subscriber *s,
    uint64_t total, double secs)
{
	uint64_t behind = 0;

	for (size_t c = 0; c < ld->n; c++)
		if (s->next[c] > ld->sent[c])
			behind++;	/* more than was sent: counted below */
	if (ld->tolerate) {
		printf("relay-load: the subscriber saw %" PRIu64 " frames of "
		    "at most %" PRIu64 " sent, %" PRIu64 " wrong%s\n",
		    s->seen, total, s->bad, s->closed ?
		    "; relayd closed the connection" : "");
		return s->bad == 0 && behind == 0;
	}
	printf("relay-load: the subscriber saw %" PRIu64 " of %" PRIu64
	    " frames in %.2f s, %" PRIu64 " wrong: lost: %" PRIu64 "\n",
	    s->seen, total, secs, s->bad,
	    total > s->seen ? total - s->seen : 0);
	if (s->timed_out)
		complain("the subscriber gave up after %g s", ld->timeout);
	else if (s->closed && s->seen < total)
		complain("relayd closed the subscriber's connection");
	return s->bad == 0 && behind == 0 && s->seen == total;
}

static bool
write_record(const struct load *ld)
{
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "w")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	fprintf(f, "relay-load 1\nseed %" PRIu64 "\nmin-size %" PRIu32
	    "\nmax-size %" PRIu32 "\nclients %zu\n", ld->seed, ld->min_size,
	    ld->max_size, ld->n);
	for (size_t c = 0; c < ld->n; c++)
		fprintf(f, "%" PRIu64 "\n", ld->sent[c]);
	ok = !ferror(f);
	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		complain("%s: cannot write it", ld->record);
	return ok;
}

/* Stops a worker that may wait for main, and drops it. */
static void
finish(worker_t *w)
{
	if (w == NULL)
		return;
	(void)worker_stop(w);
	(void)worker_join(w);
	worker_unref(w);
}

static int
run(struct load *ld)
{
	struct subscriber *sub = NULL, *slow = NULL;
	worker_t *sub_w = NULL, *slow_w = NULL, **senders = NULL;
	struct sender *sd = NULL;
	worker_attr_t attr = { .parent = worker_current(), .quiet = 1 };
	uint64_t t0, t1, total = 0, bytes = 0;
	size_t started_n = 0;
	char name[32];
	bool ok = true;

	if ((ld->sent = calloc(ld->n, sizeof(*ld->sent))) == NULL ||
	    (senders = calloc(ld->parallel, sizeof(*senders))) == NULL ||
	    (sd = calloc(ld->parallel, sizeof(*sd))) == NULL) {
		complain("no memory");
		ok = false;
		goto out;
	}
	if (ld->sub_port != 0 && ((sub = sub_new(ld)) == NULL ||
	    (sub_w = start_sub(sub_task, sub, "subscriber")) == NULL)) {
		ok = false;
		goto out;
	}
	if (ld->slow_sub && ((slow = sub_new(ld)) == NULL ||
	    (slow_w = start_sub(slow_task, slow, "slow")) == NULL)) {
		ok = false;
		goto out;
	}

	t0 = now_ns();
	if (ld->duration > 0)
		ld->deadline_ns = t0 + (uint64_t)(ld->duration * 1e9);
	for (size_t i = 0; i < ld->parallel; i++) {
		sd[i].ld = ld;
		sd[i].first = i;
		snprintf(name, sizeof(name), "sender-%zu", i);
		attr.name = name;
		if ((senders[i] = worker_create(sender_task, &sd[i],
		    &attr)) == NULL) {
			complain("%s: %s", name, strerror(errno));
			ok = false;
			break;
		}
		started_n++;
	}
	for (size_t i = 0; i < started_n; i++)
		if (worker_wait_thread(senders[i], NULL) != 0)
			ok = false;
	t1 = now_ns();
	for (size_t c = 0; c < ld->n; c++) {
		uint64_t unused;

		total += ld->sent[c];
		for (uint32_t i = 0; i < ld->sent[c]; i++)
			bytes += 4 + payload_len(ld, (uint32_t)c, i, &unused);
	}
	printf("relay-load: %zu clients sent %" PRIu64 " frames (%.1f MB) "
	    "in %.2f s: %.0f frames/s\n", ld->n, total, (double)bytes / 1e6,
	    (double)(t1 - t0) / 1e9,
	    (double)total / ((double)(t1 - t0) / 1e9));

	if (sub_w != NULL) {
		ld->expect = total;
		if (worker_fire(sub_w, "expect", NULL) != 0 ||
		    worker_wait_thread(sub_w, NULL) != 0 ||
		    !sub_report(ld, sub, total,
		    (double)(now_ns() - t0) / 1e9))
			ok = false;
	}
	if (slow_w != NULL) {
		if (worker_fire(slow_w, "check", NULL) != 0 ||
		    worker_wait_thread(slow_w, NULL) != 0) {
			ok = false;
		} else if (slow->dropped) {
			printf("relay-load: relayd dropped the slow "
			    "subscriber\n");
		} else {
			complain("relayd kept the slow subscriber");
			ok = false;
		}
	}
	if (ld->record != NULL && !write_record(ld))
		ok = false;
out:
	for (size_t i = 0; i < started_n; i++)
		finish(senders[i]);
	finish(sub_w);
	finish(slow_w);
	sub_free(sub);
	sub_free(slow);
	free(senders);
	free(sd);
	free(ld->sent);
	return ok ? 0 : 1;
}

/* ---- The check of the database --------------------------------------- */

/* Reads a record into ld (seed, sizes, clients, sent); false if bad. */
static bool
read_record(struct load *ld)
{
	unsigned long long seed, n, v;
	unsigned long min, max;
	FILE *f;
	bool ok;

	if ((f = fopen(ld->record, "r")) == NULL) {
		complain("%s: %s", ld->record, strerror(errno));
		return false;
	}
	ok = fscanf(f, "relay-load 1 seed %llu min-size %lu max-size %lu "
	    "clients %llu", &seed, &min, &max, &n) == 4 &&
	    min >= 8 && max >= min && max <= FRAME_MAX && n <= UINT32_MAX &&
	    (ld->sent = calloc(n != 0 ? n : 1, sizeof(*ld->sent))) != NULL;
	for (unsigned long long c = 0; ok && c < n; c++) {
		ok = fscanf(f, "%llu", &v) == 1;
		ld->sent[c] = v;
	}
	fclose(f);
	if (!ok) {
		complain("%s: not a record of relay-load", ld->record);
		return false;
	}
	ld->seed = seed;
	ld->min_size = (uint32_t)min;
	ld->max_size = (uint32_t)max;
	ld->n = (size_t)n;
	return true;
}

struct check {
	struct load *ld;
	uint64_t *got;		/* per client: rows checked */
	int64_t *conn;		/* per client: its connection number, or 0 */
	unsigned char *payload;
	uint64_t rows;
	uint64_t problems;
};

static void problem(struct check *ck, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
problem(struct check *ck, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (ck->problems++ >= PROBLEMS_SHOWN)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	complain("%s: %s", ck->ld->db, line);
}

/*
 * Checks one row.  Rows come in the order of their ids, which is the
 * order relayd took the frames in, so each client's rows must come as 0,
 * 1, 2...: that one test finds a frame lost, doubled or out of order.
 */
static void
check_row(struct check *ck, int64_t id, int64_t conn, int64_t seq,
    const unsigned char *p, int len)
{
	struct load *ld = ck->ld;
	uint32_t client, index;

	if (len < 8) {
		problem(ck, "row %" PRId64 ": a payload of %d bytes", id, len);
		return;
	}
	client = get_be32(p);
	index = get_be32(p + 4);
	if (client >= ld->n) {
		problem(ck, "row %" PRId64 ": client %" PRIu32 " does not "
		    "exist", id, client);
		return;
	}
	if (index != ck->got[client]) {
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 " where %" PRIu64 " was due", id, client, index,
		    ck->got[client]);
		return;
	}
	ck->got[client]++;
	if (index >= ld->sent[client])
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 ", which it did not send completely", id, client,
		    index);
	else if (make_payload(ld, client, index, ck->payload) !=
	    (uint32_t)len || memcmp(ck->payload, p, (size_t)len) != 0)
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 ": the payload is damaged", id, client, index);
	if (seq != (int64_t)index)
		problem(ck, "row %" PRId64 ": client %" PRIu32 ", frame %"
		    PRIu32 " has sequence %" PRId64, id, client, index, seq);
	if (ck->conn[client] == 0)
		ck->conn[client] = conn;
	else if (ck->conn[client] != conn)
		problem(ck, "row %" PRId64 ": client %" PRIu32 " on "
		    "connections %" PRId64 " and %" PRId64, id, client,
		    ck->conn[client], conn);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Each client had a connection of its own. */
static void
check_conns(struct check *ck)
{
	size_t n = ck->ld->n;

	qsort(ck->conn, n, sizeof(*ck->conn), cmp_i64);
	for (size_t c = 1; c < n; c++)
		if (ck->conn[c] != 0 && ck->conn[c] == ck->conn[c - 1])
			problem(ck, "two clients on connection %" PRId64,
			    ck->conn[c]);
}

static void
read_rows(struct check *ck)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_open_v2(ck->ld->db, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT id, connection, "
	    "sequence, payload FROM frames ORDER BY id", -1, &st, NULL) !=
	    SQLITE_OK) {
		problem(ck, "%s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_blob(st, 3);

		ck->rows++;
		check_row(ck, sqlite3_column_int64(st, 0),
		    sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
		    p, p != NULL ? sqlite3_column_bytes(st, 3) : 0);
	}
	if (rc != SQLITE_DONE)
		problem(ck, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int
verify(struct load *ld)
{
	struct check ck = { .ld = ld };
	uint64_t total = 0;

	if (!read_record(ld))
		return 1;
	ck.got = calloc(ld->n + 1, sizeof(*ck.got));
	ck.conn = calloc(ld->n + 1, sizeof(*ck.conn));
	ck.payload = malloc(ld->max_size);
	if (ck.got == NULL || ck.conn == NULL || ck.payload == NULL) {
		complain("no memory");
		ck.problems++;
	} else {
		read_rows(&ck);
		check_conns(&ck);
	}
	for (size_t c = 0; c < ld->n; c++) {
		total += ld->sent[c];
		if (ck.got != NULL && !ld->partial &&
		    ck.got[c] != ld->sent[c])
			problem(&ck, "client %zu: %" PRIu64 " rows for %"
			    PRIu64 " frames sent", c, ck.got[c],
			    ld->sent[c]);
	}
	if (ld->partial)
		printf("relay-load: %s: %" PRIu64 " rows for at most %" PRIu64
		    " frames sent, each client's a prefix of what it sent; "
		    "%" PRIu64 " problems\n", ld->db, ck.rows, total,
		    ck.problems);
	else
		printf("relay-load: %s: %" PRIu64 " rows for %" PRIu64
		    " frames sent, %" PRIu64 " problems: lost: %" PRIu64 "\n",
		    ld->db, ck.rows, total, ck.problems,
		    total > ck.rows ? total - ck.rows : 0);
	free(ck.got);
	free(ck.conn);
	free(ck.payload);
	free(ld->sent);
	return ck.problems == 0 ? 0 : 1;
}

/* ---- main ------------------------------------------------------------ */

static const char usage[] =
    "usage: relay-load -p PORT [-s SUBPORT] [options]\n"
    "       relay-load --verify --db FILE --record FILE [--partial]\n"
    "  -p, --port PORT        relayd's clients port on 127.0.0.1\n"
    "  -s, --sub-port PORT    subscribe; check it sees every frame\n"
    "  -c, --clients N        clients that send good frames (10)\n"
    "  -f, --frames M         frames each (1000)\n"
    "  -d, --duration SECS    send for SECS seconds instead\n"
    "  -n, --min-size BYTES   shortest payload (8, the least)\n"
    "  -m, --max-size BYTES   longest payload (4096; 1048576 at most)\n"
    "  -P, --parallel N       connections at once (all)\n"
    "      --oversize K       K more clients end with a frame too long\n"
    "      --cut K            K more clients leave in the middle of one\n"
    "      --slow-sub         a subscriber that never reads\n"
    "      --tolerate         relayd may stop in the middle of the run\n"
    "      --seed N           of payloads and packet sizes (1)\n"
    "  -r, --record FILE      write what was sent, for --verify\n"
    "  -t, --timeout SECS     wait for the subscriber (30)\n"
    "  -w, --window BYTES     lead of the senders on the subscriber "
    "(4194304)\n"
    "      --verify           check the database --db against --record\n"
    "      --partial          with --verify: relayd was stopped early\n";

enum {
	OPT_OVERSIZE = 256, OPT_CUT, OPT_SLOW, OPT_TOLERATE, OPT_SEED,
	OPT_VERIFY, OPT_DB, OPT_PARTIAL
};

static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && s[0] != '-' &&
	    *out >= min && *out <= max;
}

static bool
parse_secs(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *out > 0 &&
	    *out < 1e6;
}

static bool
parse_options(int argc, char **argv, struct load *ld)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "sub-port", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "frames", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "min-size", required_argument, NULL, 'n' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "parallel", required_argument, NULL, 'P' },
		{ "record", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "window", required_argument, NULL, 'w' },
		{ "oversize", required_argument, NULL, OPT_OVERSIZE },
		{ "cut", required_argument, NULL, OPT_CUT },
		{ "slow-sub", no_argument, NULL, OPT_SLOW },
		{ "tolerate", no_argument, NULL, OPT_TOLERATE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "db", required_argument, NULL, OPT_DB },
		{ "partial", no_argument, NULL, OPT_PARTIAL },
		{ NULL, 0, NULL, 0 }
	};
	const uint64_t many = 1000000;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:c:f:d:n:m:P:r:t:w:", longopts,
	    NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'p':
		case 's':
			ok = parse_u64(optarg, 1, 65535, &v);
			*(c == 'p' ? &ld->port : &ld->sub_port) = (int)v;
			break;
		case 'c':
			ok = parse_u64(optarg, 0, many, &v);
			ld->clients = (size_t)v;
			break;
		case 'f':
			ok = parse_u64(optarg, 0, UINT32_MAX, &v);
			ld->frames = v;
			break;
		case 'd':
			ok = parse_secs(optarg, &ld->duration);
			break;
		case 'n':
		case 'm':
			ok = parse_u64(optarg, 8, FRAME_MAX, &v);
			*(c == 'n' ? &ld->min_size : &ld->max_size) =
			    (uint32_t)v;
			break;
		case 'P':
			ok = parse_u64(optarg, 1, 10000, &v);
			ld->parallel = (size_t)v;
			break;
		case 'r':
			ld->record = optarg;
			break;
		case 't':
			ok = parse_secs(optarg, &ld->timeout);
			break;
		case 'w':
			ok = parse_u64(optarg, 1, UINT64_MAX / 2, &ld->window);
			break;
		case OPT_OVERSIZE:
		case OPT_CUT:
			ok = parse_u64(optarg, 0, many, &v);
			*(c == OPT_CUT ? &ld->cut : &ld->oversize) = (size_t)v;
			break;
		case OPT_SLOW:
			ld->slow_sub = true;
			break;
		case OPT_TOLERATE:
			ld->tolerate = true;
			break;
		case OPT_SEED:
			ok = parse_u64(optarg, 0, UINT64_MAX, &ld->seed);
			break;
		case OPT_VERIFY:
			ld->verify = true;
			break;
		case OPT_DB:
			ld->db = optarg;
			break;
		case OPT_PARTIAL:
			ld->partial = true;
			break;
		default:
			ok = false;
			break;
		}
		if (!ok)
			return false;
	}
	if (optind != argc)
		return false;
	if (ld->verify)
		return ld->db != NULL && ld->record != NULL;
	ld->n = ld->clients + ld->oversize + ld->cut;
	if (ld->duration > 0)
		ld->frames = UINT32_MAX;	/* the clock says when */
	if (ld->parallel == 0 || ld->parallel > ld->n)
		ld->parallel = ld->n;
	if (ld->sub_port == 0)
		ld->window = 0;
	else if (ld->window == 0)
		ld->window = 4u << 20;
	return ld->port != 0 && ld->n > 0 && ld->min_size <= ld->max_size;
}

int
main(int argc, char **argv)
{
	struct load ld = {
		.clients = 10,
		.frames = 1000,
		.min_size = 8,
		.max_size = 4096,
		.seed = 1,
		.timeout = 30
	};

	if (!parse_options(argc, argv, &ld)) {
		fputs(usage, stderr);
		return 2;
	}
	/* Lines of the report go out as they come, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return ld.verify ? verify(&ld) : run(&ld);
}
