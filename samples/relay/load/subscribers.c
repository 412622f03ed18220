/*
 * subscribers.c - relay-load's subscribers of relayd.  "subscriber" owns
 * its socket and the bytes read and not yet checked, and checks each
 * frame as it comes: every client's frames in order, each intact.  "slow"
 * subscribes with a small receive buffer and reads nothing until main
 * says "check"; relayd must drop it.  Each gives its verdict to run().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

#define START_TIMEOUT	15.0		/* seconds to subscribe */
#define READ_SIZE	(256 * 1024)	/* bytes the subscriber reads at once */

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

/* A frame the subscriber got is wrong: one more bad one. */
static void
sub_problem(struct subscriber *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(&s->bad, "subscriber", fmt, ap);
	va_end(ap);
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

/* ---- Starting and the verdicts, for run() ----------------------------- */

/* What ends start_sub()'s wait: subscribed, or ended without. */
static int
started(const worker_event_t *ev, void *ctx)
{
	return ev->source == ctx &&
	    (strcmp(ev->name, "subscribed") == 0 ||
	    strcmp(ev->name, WORKER_CHILD_THREAD_END) == 0);
}

/*
 * Starts "subscriber", or with slow "slow", and waits until it is
 * subscribed, or NULL.
 */
worker_t *
start_sub(struct subscriber *s, bool slow)
{
	const char *name = slow ? "slow" : "subscriber";
	worker_attr_t attr = {
		.name = name, .parent = worker_current(), .quiet = 1
	};
	void *data;
	worker_t *w;
	int rc;

	if ((w = worker_create(slow ? slow_task : sub_task, s, &attr)) ==
	    NULL) {
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

struct subscriber *
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

void
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
bool
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

/* The slow subscriber's verdict, once it has checked; true if good. */
bool
slow_report(const struct subscriber *s)
{
	if (s->dropped) {
		printf("relay-load: relayd dropped the slow subscriber\n");
		return true;
	}
	complain("relayd kept the slow subscriber");
	return false;
}
