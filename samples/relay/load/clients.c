/*
 * clients.c - the clients of relayd: the connections to it, and the
 * senders.  A sender owns its stream of bytes in hand and runs its clients
 * one after the other, each on a blocking socket of its own; a client
 * sends its good frames in pieces of random length and then, if it is one
 * of the --oversize or --cut clients, misbehaves.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define REFILL		(32 * 1024)	/* bytes a sender keeps ready */
#define CUT_LEN		1000u		/* the frame a --cut client cuts */

/* What a client does after its good frames. */
enum { GOOD, OVERSIZE, CUT };

static int
kind_of(const struct load *ld, size_t client)
{
	if (client < ld->clients)
		return GOOD;
	return client < ld->clients + ld->oversize ? OVERSIZE : CUT;
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
void *
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
