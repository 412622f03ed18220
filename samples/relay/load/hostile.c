/*
 * hostile.c - relay-load --hostile KIND --conns N: N connections that
 * only hold what relayd gives them, for the tests of its limits.  "idle"
 * connects and says nothing; "slowloris" says its hello one byte a
 * second; "partial" says its hello and the header of a frame of FRAME_MAX
 * bytes, then --partial-bytes of it, and nothing more.  Once all are open
 * it prints "hostile: N connections open", so that a test may measure
 * relayd then, and waits until relayd has closed them all, or --hold
 * seconds; then it says what relayd did: how many it closed, when, with
 * which error, and how many it refused.  The connections are this
 * function's, on the main thread: nothing else runs meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

#define OPEN_TIMEOUT	10.0		/* s for a connection to open */

struct hconn {
	int fd;
	size_t said;		/* bytes of the hello said (slowloris) */
	double closed;		/* when relayd closed it, s into the hold */
	int type;		/* relayd's last message: MSG_* or 0 */
	int code;
};

struct tally {
	size_t open, closed, refused, idle, slow, other;
	double first, last;	/* s into the hold of the first, last close */
};

/* Opens one connection and says its first bytes; -1 if it cannot. */
static int
hostile_open(const struct load *ld, struct hconn *h, unsigned char *frame,
    size_t frame_len)
{
	struct pollfd p;
	bool done;

	if ((h->fd = connect_start(ld, &done)) < 0)
		return -1;
	p.fd = h->fd;
	p.events = POLLOUT;
	if (!done && (poll(&p, 1, (int)(OPEN_TIMEOUT * 1000)) != 1 ||
	    (p.revents & (POLLERR | POLLHUP)))) {
		close(h->fd);
		h->fd = -1;
		errno = ETIMEDOUT;
		return -1;
	}
	if (ld->hostile == HOSTILE_SLOWLORIS) {
		h->said = 1;
		(void)send(h->fd, frame, 1, MSG_NOSIGNAL);
	} else if (ld->hostile == HOSTILE_PARTIAL) {
		(void)send(h->fd, frame, frame_len, MSG_NOSIGNAL);
	}
	return 0;
}

/* Reads what relayd says to h; true once it has closed it. */
static bool
hostile_read(struct hconn *h)
{
	unsigned char b[MSG_LEN * 4];
	ssize_t n;

	while ((n = recv(h->fd, b, sizeof(b), MSG_DONTWAIT)) > 0) {
		/* The last whole message: the error, if there is one. */
		if (n >= MSG_LEN) {
			const unsigned char *m = b + (n / MSG_LEN - 1) *
			    MSG_LEN;

			if (m[0] != MSG_WELCOME) {
				h->type = m[0];
				h->code = m[1];
			}
		}
	}
	return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR);
}

static void
count_close(struct tally *t, struct hconn *h, double at)
{
	h->closed = at;
	close(h->fd);
	h->fd = -1;
	if (t->closed++ == 0)
		t->first = at;
	t->last = at;
	if (h->type == MSG_REFUSED)
		t->refused++;
	else if (h->type == MSG_ERROR && h->code == ERR_IDLE)
		t->idle++;
	else if (h->type == MSG_ERROR && h->code == ERR_SLOW_FRAME)
		t->slow++;
	else
		t->other++;
}

/* Waits until relayd has closed them all, or the hold is over. */
static void
hostile_hold(const struct load *ld, struct hconn *v, struct pollfd *p,
    unsigned char *frame, struct tally *t)
{
	uint64_t t0 = now_ns(), next_byte = t0 + 1000000000u;
	double at;

	/* poll() passes over the closed ones: their fd is -1. */
	while (t->closed < t->open &&
	    (double)(now_ns() - t0) / 1e9 < ld->hold) {
		for (size_t i = 0; i < t->open; i++) {
			p[i].fd = v[i].fd;
			p[i].events = POLLIN;
		}
		if (poll(p, t->open, 100) < 0 && errno != EINTR)
			break;
		at = (double)(now_ns() - t0) / 1e9;
		for (size_t i = 0; i < t->open; i++)
			if (v[i].fd >= 0 && (p[i].revents & (POLLIN |
			    POLLHUP | POLLERR)) && hostile_read(&v[i]))
				count_close(t, &v[i], at);
		if (ld->hostile != HOSTILE_SLOWLORIS || now_ns() < next_byte)
			continue;
		next_byte += 1000000000u;
		for (size_t i = 0; i < t->open; i++)
			if (v[i].fd >= 0 && v[i].said < HELLO_LEN - 1 &&
			    send(v[i].fd, frame + v[i].said, 1,
			    MSG_NOSIGNAL) == 1)
				v[i].said++;
	}
}

int
hostile(struct load *ld)
{
	unsigned char *frame;
	size_t frame_len = HELLO_LEN + HEAD_LEN + ld->partial_bytes;
	struct hconn *v;
	struct pollfd *p;
	struct tally t = { 0 };
	int status = 0;

	v = calloc(ld->hostile_n, sizeof(*v));
	p = calloc(ld->hostile_n, sizeof(*p));
	frame = calloc(1, frame_len);
	if (v == NULL || p == NULL || frame == NULL) {
		complain("no memory");
		free(v);
		free(p);
		free(frame);
		return 1;
	}
	make_hello(ld, 0, frame);
	put_be32(frame + HELLO_LEN, FRAME_MAX);
	memset(frame + HELLO_LEN + HEAD_LEN, 0x5a, ld->partial_bytes);
	for (; t.open < ld->hostile_n; t.open++)
		if (hostile_open(ld, &v[t.open], frame, frame_len) != 0) {
			complain("connection %zu: %s", t.open,
			    strerror(errno));
			status = 1;
			break;
		}
	printf("relay-load: hostile: %zu connections open\n", t.open);
	hostile_hold(ld, v, p, frame, &t);
	printf("relay-load: hostile: %zu opened, %zu closed by relayd "
	    "between %.1f and %.1f s: %zu idle, %zu too slow, %zu refused, "
	    "%zu otherwise; %zu still open\n", t.open, t.closed, t.first,
	    t.last, t.idle, t.slow, t.refused, t.other, t.open - t.closed);
	for (size_t i = 0; i < t.open; i++)
		if (v[i].fd >= 0)
			close(v[i].fd);
	free(v);
	free(p);
	free(frame);
	return status;
}
