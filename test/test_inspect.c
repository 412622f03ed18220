/*
 * test_inspect.c - worker_inspect(): snapshots on a Unix socket, served
 * from a worker's loop to clients that may be many, slow or rude.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "test.h"

/* A private directory for the sockets of one test. */
struct place {
	char dir[64];
	char path[96];
};

static void
place_init(struct place *p)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/libworker-inspect-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/sock", p->dir);
}

static void
place_fini(struct place *p)
{
	unlink(p->path);
	rmdir(p->dir);
}

static int
connect_to(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	ck_assert_msg(connect(fd, (struct sockaddr *)&addr,
	    sizeof(addr)) == 0, "connect %s: %s", path, strerror(errno));
	return fd;
}

/*
 * Reads one snapshot, waiting at most wait_limit(); returns it malloc'd
 * without its newline, or NULL at end of file.  The server sends nothing
 * unasked, so a read that ends with a newline ends the snapshot.
 */
static char *
read_line(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	double until = now() + wait_limit();

	ck_assert_ptr_nonnull(buf);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		ck_assert_msg(now() < until, "no snapshot within the limit");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (len == cap) {
			buf = realloc(buf, cap *= 2);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(fd, buf + len, cap - len);
		if (n == 0) {
			free(buf);
			return NULL;
		}
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
		if (buf[len - 1] == '\n')
			break;
	}
	buf[len - 1] = '\0';
	return buf;
}

/* Reads a snapshot and says whether it holds a worker of that name. */
static bool
snapshot_has(int fd, const char *name)
{
	char *line = read_line(fd);
	json_error_t err;
	json_t *doc;
	bool found;

	ck_assert_msg(line != NULL, "the server closed");
	doc = json_loads(line, 0, &err);
	ck_assert_msg(doc != NULL, "invalid JSON (%s): %.200s", err.text,
	    line);
	found = strstr(line, name) != NULL;
	json_decref(doc);
	free(line);
	return found;
}

static void
ask(int fd)
{
	ck_assert_int_eq(write(fd, "\n", 1), 1);
}

START_TEST(inspect_bad_input)
{
	struct place p;
	char longpath[200];
	worker_t *idle = idle_new("not started", NULL, NULL);
	struct host h;
	worker_t *w = host_new(&h, NULL);
	int fd;

	place_init(&p);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK_RC(worker_inspect(NULL, p.path), EINVAL);
	CHECK_RC(worker_inspect(w, NULL), EINVAL);
	CHECK_RC(worker_inspect(w, ""), EINVAL);
	CHECK_RC(worker_inspect(w, longpath), ENAMETOOLONG);
	CHECK_RC(worker_inspect(idle, p.path), ESRCH);
	CHECK_RC(worker_inspect(w, "/nonexistent-dir/sock"), ENOENT);
	/* A file that is not a socket stays, and is not served over. */
	fd = open(p.path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	CHECK_RC(worker_inspect(w, p.path), EADDRINUSE);
	ck_assert_int_eq(access(p.path, F_OK), 0);
	unlink(p.path);
	/* A path served already. */
	CHECK_OK(worker_inspect(w, p.path));
	CHECK_RC(worker_inspect(w, p.path), EADDRINUSE);
	stop_join(w);
	host_free(w, &h);
	worker_unref(idle);
	place_fini(&p);
}
END_TEST

START_TEST(inspect_serves_several_clients)
{
	struct place p;
	struct host h;
	worker_t *w = host_new(&h, &(worker_attr_t){ .name = "inspected" });
	struct stat st;
	int fds[3];

	place_init(&p);
	CHECK_OK(worker_inspect(w, p.path));
	ck_assert_int_eq(stat(p.path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	for (int i = 0; i < 3; i++)
		fds[i] = connect_to(p.path);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++) {
			ck_assert(snapshot_has(fds[i], "\"inspected\""));
			ask(fds[i]);
		}
	ck_assert_uint_eq(worker_stats(w, &(worker_stats_t){ 0 }), 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	stop_join(w);
	/* The socket went with the worker's run. */
	ck_assert_int_ne(access(p.path, F_OK), 0);
	host_free(w, &h);
	place_fini(&p);
}
END_TEST

/*
 * A client that asks and asks and never reads, with snapshots bigger than
 * a socket's buffer: the worker still handles its events, and another
 * client is still served.
 */
START_TEST(inspect_slow_client_does_not_stall)
{
	enum { KIDS = 1500 };
	struct place p;
	sem_t fence_sem;
	worker_t *w, **kids = calloc(KIDS, sizeof(*kids));
	char name[64];
	int rude, polite;

	ck_assert_ptr_nonnull(kids);
	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	place_init(&p);
	w = idle_new("busy", NULL, &fence_sem);
	for (int i = 0; i < KIDS; i++) {
		snprintf(name, sizeof(name), "child number %d with a longish "
		    "name", i);
		kids[i] = idle_new(name, w, NULL);
	}
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_inspect(w, p.path));
	rude = connect_to(p.path);
	ck_assert_int_eq(fcntl(rude, F_SETFL, O_NONBLOCK), 0);
	for (int i = 0; i < 1000; i++)
		(void)write(rude, "\n", 1);
	polite = connect_to(p.path);
	for (int round = 0; round < 3; round++) {
		fence(w, &fence_sem);
		ck_assert(snapshot_has(polite, "child number 1499"));
		ask(polite);
	}
	close(rude);
	close(polite);
	stop_join(w);
	for (int i = 0; i < KIDS; i++)
		worker_unref(kids[i]);
	worker_unref(w);
	free(kids);
	sem_destroy(&fence_sem);
	place_fini(&p);
}
END_TEST

/* A client that shuts its side at once (socat at the end of its input)
 * still gets the whole snapshot, bigger than a socket's buffer, then the
 * end. */
START_TEST(inspect_half_closed_client_gets_it_whole)
{
	enum { KIDS = 2000 };
	struct place p;
	worker_t *w, **kids = calloc(KIDS, sizeof(*kids));
	char name[64], *line;
	json_t *doc;
	int fd;

	ck_assert_ptr_nonnull(kids);
	place_init(&p);
	w = idle_new("parent", NULL, NULL);
	for (int i = 0; i < KIDS; i++) {
		snprintf(name, sizeof(name), "kid %d", i);
		kids[i] = idle_new(name, w, NULL);
	}
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_inspect(w, p.path));
	fd = connect_to(p.path);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	line = read_line(fd);
	ck_assert_ptr_nonnull(line);
	doc = json_loads(line, 0, NULL);
	ck_assert_msg(doc != NULL && strstr(line, "\"kid 1999\"") != NULL,
	    "a cut snapshot: %zu bytes", strlen(line));
	json_decref(doc);
	free(line);
	ck_assert_ptr_null(read_line(fd));
	close(fd);
	stop_join(w);
	for (int i = 0; i < KIDS; i++)
		worker_unref(kids[i]);
	worker_unref(w);
	free(kids);
	place_fini(&p);
}
END_TEST

/* Clients that hang up in the middle of a snapshot, or before it. */
START_TEST(inspect_client_gone_mid_read)
{
	struct place p;
	struct host h;
	worker_t *w = host_new(&h, &(worker_attr_t){ .name = "served" });
	char buf[10];
	int fd;

	place_init(&p);
	CHECK_OK(worker_inspect(w, p.path));
	for (int i = 0; i < 20; i++) {
		fd = connect_to(p.path);
		if (i % 2 == 0)
			ck_assert_int_eq(read(fd, buf, sizeof(buf)),
			    (ssize_t)sizeof(buf));
		ask(fd);
		close(fd);
	}
	fd = connect_to(p.path);
	ck_assert(snapshot_has(fd, "\"served\""));
	close(fd);
	stop_join(w);
	host_free(w, &h);
	place_fini(&p);
}
END_TEST

/* At most 16 at once: the next is hung up on; a place frees with a
 * client that leaves. */
START_TEST(inspect_client_limit)
{
	struct place p;
	struct host h;
	worker_t *w = host_new(&h, NULL);
	int fds[17];
	char *line;

	place_init(&p);
	CHECK_OK(worker_inspect(w, p.path));
	for (int i = 0; i < 16; i++) {
		fds[i] = connect_to(p.path);
		free(read_line(fds[i]));
	}
	fds[16] = connect_to(p.path);
	ck_assert_ptr_null(read_line(fds[16]));
	close(fds[16]);
	close(fds[0]);
	/* The server sees the hang-up before the next connection. */
	ask(fds[1]);
	free(read_line(fds[1]));
	fds[0] = connect_to(p.path);
	line = read_line(fds[0]);
	ck_assert_ptr_nonnull(line);
	free(line);
	stop_join(w);
	/* Every client hears the end. */
	for (int i = 0; i < 16; i++) {
		ck_assert_ptr_null(read_line(fds[i]));
		close(fds[i]);
	}
	host_free(w, &h);
	place_fini(&p);
}
END_TEST

/* A socket file left by a dead server is replaced. */
START_TEST(inspect_replaces_a_stale_socket)
{
	struct place p;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct host h;
	worker_t *w = host_new(&h, NULL);
	int old = socket(AF_UNIX, SOCK_STREAM, 0), fd;

	place_init(&p);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", p.path);
	ck_assert_int_eq(bind(old, (struct sockaddr *)&addr, sizeof(addr)),
	    0);
	close(old);
	CHECK_OK(worker_inspect(w, p.path));
	fd = connect_to(p.path);
	ck_assert(snapshot_has(fd, "\"trees\""));
	close(fd);
	stop_join(w);
	host_free(w, &h);
	place_fini(&p);
}
END_TEST

Suite *
suite_inspect(void)
{
	Suite *s = suite_create("inspect");
	TCase *tc = test_case(s, "inspect");

	tcase_add_test(tc, inspect_bad_input);
	tcase_add_test(tc, inspect_serves_several_clients);
	tcase_add_test(tc, inspect_slow_client_does_not_stall);
	tcase_add_test(tc, inspect_half_closed_client_gets_it_whole);
	tcase_add_test(tc, inspect_client_gone_mid_read);
	tcase_add_test(tc, inspect_client_limit);
	tcase_add_test(tc, inspect_replaces_a_stale_socket);
	return s;
}
