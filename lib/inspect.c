/*
 * inspect.c - worker_inspect(): a worker serves snapshots of the trees
 * on a Unix socket, for worker-top(1) and scripts.
 *
 * DESIGN
 *
 * The server has no thread: the listening socket and each client are
 * watches of the worker (watch.c), so everything here runs in its loop,
 * at its breakpoints, and needs no lock.  A client gets one snapshot
 * (json.c: one line) when it connects and one more per newline it sends.
 *
 * A client must not stall the worker.  Sockets are non-blocking, and a
 * client has at most one snapshot in flight: what the socket does not
 * take now waits for the client's socket to be writable, and requests
 * that come meanwhile are merged into one.  A client that never reads
 * costs one snapshot of memory; at most INSPECT_CLIENTS connections are
 * served at once, and a further one is closed at once.
 *
 * The socket is made 0600 before bind(): Linux gives the file the mode of
 * the socket (less the umask), so there is no moment when others may
 * connect.  A stale socket file (nobody accepts on it) is replaced.  When
 * the worker's run ends, its watches are dropped (watch.c), which closes
 * every descriptor here and removes the file, if it is still ours.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define INSPECT_CLIENTS 16

struct inspector {
	worker_t *w;			/* borrowed: it owns the watches */
	int fd;
	char *path;
	dev_t dev;			/* the socket file, to remove it */
	ino_t ino;
	unsigned refs;			/* its watch and its clients */
	unsigned clients;
};

struct client {
	struct inspector *in;
	int fd;
	uint64_t read_id;		/* 0: it asks for nothing more */
	uint64_t write_id;		/* 0: not waiting to write */
	unsigned watches;		/* of the two above, those on */
	char *out;			/* the snapshot in flight, or NULL */
	size_t len;
	size_t sent;
	bool again;			/* asked for one more meanwhile */
	bool eof;			/* shut its side: close once sent */
};

static void
inspector_put(struct inspector *in)
{
	struct stat st;

	if (--in->refs > 0)
		return;
	if (stat(in->path, &st) == 0 && st.st_dev == in->dev &&
	    st.st_ino == in->ino)
		unlink(in->path);
	close(in->fd);
	free(in->path);
	free(in);
}

static void
client_free(struct client *c)
{
	struct inspector *in = c->in;

	close(c->fd);
	free(c->out);
	free(c);
	in->clients--;
	inspector_put(in);
}

static bool
client_watch(struct client *c, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), uint64_t *id);

static void
client_unwatch(struct client *c, uint64_t *id)
{
	if (*id == 0)
		return;
	worker_unwatch(c->in->w, *id);
	*id = 0;
	c->watches--;
}

/* The client goes: its watches first, then what it holds. */
static void
client_close(struct client *c)
{
	client_unwatch(c, &c->read_id);
	client_unwatch(c, &c->write_id);
	client_free(c);
}

/* Its worker ended: the watches go one by one, the client with the last. */
static void
client_dropped(void *ctx)
{
	struct client *c = ctx;

	if (--c->watches == 0)
		client_free(c);
}

static void client_writable(int fd, unsigned revents, void *ctx);

/* Sends what the socket takes; false if the client is gone. */
static bool
client_flush(struct client *c)
{
	for (;;) {
		ssize_t n;

		if (c->out == NULL) {
			if (!c->again)
				break;
			c->again = false;
			c->sent = 0;
			if (worker__json_snapshot(NULL, &c->out,
			    &c->len) != 0)
				return false;
		}
		n = send(c->fd, c->out + c->sent, c->len - c->sent,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return false;
		if ((c->sent += (size_t)n) == c->len) {
			free(c->out);
			c->out = NULL;
		}
	}
	/* Wait for room only while there is something to send. */
	if (c->out != NULL && c->write_id == 0)
		return client_watch(c, WORKER_WRITABLE, client_writable,
		    &c->write_id);
	if (c->out == NULL)
		client_unwatch(c, &c->write_id);
	/* A client that is done asking goes once it has its answer. */
	return c->out != NULL || !c->eof;
}

static bool
client_watch(struct client *c, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), uint64_t *id)
{
	if (worker__watch(c->in->w, c->fd, events, cb, c, client_dropped,
	    id) != 0)
		return false;
	c->watches++;
	return true;
}

static void
client_writable(int fd, unsigned revents, void *ctx)
{
	struct client *c = ctx;

	(void)fd;
	(void)revents;
	if (!client_flush(c))
		client_close(c);
}

static void
client_readable(int fd, unsigned revents, void *ctx)
{
	struct client *c = ctx;
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n < 0) {
		client_close(c);
		return;
	}
	/* Shut its side (socat at the end of its input): the snapshot in
	 * flight still goes out. */
	if (n == 0) {
		c->eof = true;
		client_unwatch(c, &c->read_id);
	} else if (memchr(buf, '\n', (size_t)n) != NULL) {
		c->again = true;
	}
	if (!client_flush(c))
		client_close(c);
}

static void
accept_client(struct inspector *in, int fd)
{
	struct client *c;

	if (in->clients >= INSPECT_CLIENTS || (c = calloc(1,
	    sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->in = in;
	c->fd = fd;
	c->again = true;
	in->clients++;
	in->refs++;
	if (!client_watch(c, WORKER_READABLE, client_readable,
	    &c->read_id)) {
		client_free(c);
		return;
	}
	if (!client_flush(c))
		client_close(c);
}

static void
inspector_readable(int fd, unsigned revents, void *ctx)
{
	struct inspector *in = ctx;
	int cfd;

	(void)revents;
	/* A few at a time: the worker has other things to do. */
	for (int i = 0; i < INSPECT_CLIENTS; i++) {
		if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) < 0)
			return;
		accept_client(in, cfd);
	}
}

static void
inspector_dropped(void *ctx)
{
	inspector_put(ctx);
}

/* Is the file at addr a socket that nobody serves any more? */
static bool
stale(const struct sockaddr_un *addr)
{
	struct stat st;
	int fd;
	bool refused;

	if (lstat(addr->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	refused = connect(fd, (const struct sockaddr *)addr,
	    sizeof(*addr)) < 0 && errno == ECONNREFUSED;
	close(fd);
	return refused;
}

/* A listening socket at path, mode 0600; -1 and errno on failure. */
static int
listen_at(const char *path, struct stat *st)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, rc;

	memcpy(addr.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (fchmod(fd, 0600) != 0)
		goto fail;
	rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc < 0 && errno == EADDRINUSE && stale(&addr) &&
	    unlink(path) == 0)
		rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc < 0 || stat(path, st) != 0 || listen(fd, 16) != 0)
		goto fail;
	return fd;
fail:
	rc = errno;
	close(fd);
	errno = rc;
	return -1;
}

int
worker_inspect(worker_t *w, const char *path)
{
	struct sockaddr_un addr;
	struct inspector *in;
	struct stat st;
	int rc;

	if (w == NULL || path == NULL || path[0] == '\0')
		return EINVAL;
	if (strlen(path) >= sizeof(addr.sun_path))
		return ENAMETOOLONG;
	if (worker__gone(w) || !worker__running(w))
		return ESRCH;
	worker__timing_on();
	if ((in = calloc(1, sizeof(*in))) == NULL ||
	    (in->path = strdup(path)) == NULL) {
		free(in);
		return ENOMEM;
	}
	if ((in->fd = listen_at(path, &st)) < 0) {
		rc = errno;
		free(in->path);
		free(in);
		return rc;
	}
	in->w = w;
	in->dev = st.st_dev;
	in->ino = st.st_ino;
	in->refs = 1;
	if ((rc = worker__watch(w, in->fd, WORKER_READABLE,
	    inspector_readable, in, inspector_dropped, NULL)) != 0)
		inspector_put(in);
	return rc;
}
