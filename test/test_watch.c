/*
 * test_watch.c - descriptors in a worker's loop (worker_watch,
 * worker_unwatch), the descriptor that lets another event loop drive a
 * root worker (worker_fd), and signals as events (worker_signals).
 *
 * A watcher is a started worker whose task usually watches a pipe or a
 * socket itself and then sits in worker_wait_forever(); its callback
 * records what it saw (thread, revents, bytes read) and posts a
 * semaphore.  To show that a callback did NOT run, a test leaves a byte
 * in the pipe, makes the worker go round its loop with a PING event that
 * its listener acknowledges, and finds the byte still unread after the
 * worker has been joined.  Where a step must happen while the worker is
 * asleep in its wait, the test waits until the kernel shows the worker's
 * thread sleeping (/proc/self/task/TID/stat); that is only a help to hit
 * the case, never what the assertions rely on, but it also catches a
 * worker that spins instead of sleeping.
 *
 * The signal tests run in the process Check forks for each test, and
 * create no thread before worker_signals() has blocked the signals.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MAX_CALLS	16	/* callbacks whose revents are kept */
#define N_FLOOD		10000	/* events fired at a busy watcher */
#define N_FD_EVENTS	1000	/* events that drive main through worker_fd */
#define DELAY		0.05	/* seconds: a timer seen through worker_fd */

/* The state letter of thread tid in /proc ('R', 'S'...), or '?'. */
static int
thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	if ((f = fopen(path, "r")) == NULL)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The name in parentheses may hold anything: skip past the last
	 * closing one. */
	if ((p = strrchr(buf, ')')) == NULL || p[1] == '\0')
		return '?';
	return p[2];
}

/* Returns once thread tid sleeps in the kernel (without /proc, at once);
 * fails if it keeps running, as a worker spinning in its wait would. */
static void
wait_asleep(pid_t tid, const char *who)
{
	double end = now() + wait_limit();
	int st;

	while ((st = thread_state(tid)) != 'S' && st != '?') {
		ck_assert_msg(now() < end, "%s never went to sleep (state %c)",
		    who, st);
		sched_yield();
	}
}

static void
make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
close_pair(int p[2])
{
	if (p[0] >= 0)
		ck_assert_int_eq(close(p[0]), 0);
	if (p[1] >= 0)
		ck_assert_int_eq(close(p[1]), 0);
}

static void
write_str(int fd, const char *s)
{
	ssize_t len = (ssize_t)strlen(s);

	ck_assert_int_eq(write(fd, s, (size_t)len), len);
}

/* Asserts that exactly the bytes of want are waiting in fd. */
static void
expect_unread(int fd, const char *want)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	ck_assert_msg(n >= 0, "nothing left unread in the pipe (%s), want "
	    "\"%s\"", n < 0 ? strerror(errno) : "", want);
	buf[n] = '\0';
	ck_assert_str_eq(buf, want);
}

/* ---- A watching worker ---------------------------------------------- */

struct watcher {
	/* Set before the worker starts. */
	int fd;			/* the descriptor of the callback */
	unsigned events;
	int self_watch;		/* the task watches fd itself */
	int reads;		/* bytes a callback reads: 0 all, -1 none */
	int writes;		/* a callback writes a byte when writable */
	int unwatch_at;		/* the callback unwatches itself at call N */
	int exit_in_cb;		/* the callback calls worker_exit() */
	worker_t *notify;	/* the callback fires CB at it */
	/* Set by the task before it posts ready, or by worker_watch(). */
	uint64_t id;
	int watch_rc;
	pid_t tid;
	pthread_t thread;
	/* Set by the callbacks; read by the test after the join. */
	atomic_int calls;
	atomic_int wrong_thread;
	atomic_int wrong_fd;
	atomic_int after_exit;
	atomic_int cleanups;
	unsigned revents[MAX_CALLS];
	char got[64];
	size_t ngot;
	int eofs, read_errs, write_errs;
	int notify_rc;
	int unwatch_rc[2];
	sem_t ready, called, ack;
};

static void
watcher_init(struct watcher *x, int fd, unsigned events, int self_watch)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->events = events;
	x->self_watch = self_watch;
	x->watch_rc = -1;
	x->notify_rc = -1;
	x->unwatch_rc[0] = x->unwatch_rc[1] = -1;
	ck_assert_int_eq(sem_init(&x->ready, 0, 0), 0);
	ck_assert_int_eq(sem_init(&x->called, 0, 0), 0);
	ck_assert_int_eq(sem_init(&x->ack, 0, 0), 0);
}

static void
watcher_destroy(struct watcher *x)
{
	sem_destroy(&x->ready);
	sem_destroy(&x->called);
	sem_destroy(&x->ack);
}

/* Makes the pipe p and a watcher of its read end for readability. */
static void
pipe_watcher_init(struct watcher *x, int p[2], int self_watch)
{
	make_pipe(p);
	watcher_init(x, p[0], WORKER_READABLE, self_watch);
}

static void
pipe_watcher_destroy(struct watcher *x, int p[2])
{
	watcher_destroy(x);
	close_pair(p);
}

static void
on_ready(int fd, unsigned revents, void *ctx)
{
	struct watcher *x = ctx;
	int n = atomic_load(&x->calls);
	char buf[64];
	ssize_t r;

	if (!pthread_equal(pthread_self(), x->thread))
		atomic_fetch_add(&x->wrong_thread, 1);
	if (fd != x->fd)
		atomic_fetch_add(&x->wrong_fd, 1);
	if (n < MAX_CALLS)
		x->revents[n] = revents;
	if ((revents & WORKER_READABLE) != 0 && x->reads >= 0) {
		size_t room = sizeof(x->got) - 1 - x->ngot;
		size_t want = x->reads > 0 ? (size_t)x->reads : sizeof(buf);

		r = read(fd, buf, want < room ? want : room);
		if (r > 0) {
			memcpy(x->got + x->ngot, buf, (size_t)r);
			x->ngot += (size_t)r;
		} else if (r == 0) {
			x->eofs++;
		} else {
			x->read_errs++;
		}
	}
	if ((revents & WORKER_WRITABLE) != 0 && x->writes &&
	    write(fd, "w", 1) != 1)
		x->write_errs++;
	if (x->notify != NULL)
		x->notify_rc = worker_fire(x->notify, "CB", x);
	if (x->unwatch_at == n + 1) {
		x->unwatch_rc[0] = worker_unwatch(worker_current(), x->id);
		x->unwatch_rc[1] = worker_unwatch(worker_current(), x->id);
	}
	atomic_store(&x->calls, n + 1);
	sem_post(&x->called);
	if (x->exit_in_cb) {
		worker_exit();
		atomic_store(&x->after_exit, 1);
	}
}

static void *
watch_task(void *arg)
{
	struct watcher *x = arg;

	x->tid = (pid_t)syscall(SYS_gettid);
	x->thread = pthread_self();
	worker_cleanup_push(count_cb, &x->cleanups);
	if (x->self_watch)
		x->watch_rc = worker_watch(worker_current(), x->fd, x->events,
		    on_ready, x, &x->id);
	sem_post(&x->ready);
	worker_wait_forever();
	worker_cleanup_pop(1);
	return NULL;
}

static int
on_ack(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	sem_post(&((struct watcher *)ctx)->ack);
	return 0;
}

/* Starts a watcher (parent: the given worker, or none) and waits until
 * its task is in place. */
static worker_t *
watcher_start(struct watcher *x, worker_t *parent)
{
	worker_attr_t attr = { .name = "watcher", .parent = parent };
	worker_t *w = worker_new(watch_task, x, &attr);

	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "PING", on_ack, x, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&x->ready, "the watcher's task");
	if (x->self_watch) {
		CHECK_OK(x->watch_rc);
		ck_assert(x->id != 0);
	}
	return w;
}

/* A round trip through w's loop: what was queued before is handled. */
static void
ping(worker_t *w, struct watcher *x)
{
	CHECK_OK(worker_fire(w, "PING", NULL));
	sem_wait_ok(&x->ack, "the PING round trip");
}

static void
wait_calls(struct watcher *x, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		sem_wait_ok(&x->called, what);
}

/* What every watcher test expects of its callbacks after the join. */
static void
expect_calls(struct watcher *x, int calls, const char *got)
{
	CHECK_ATOMIC(&x->calls, calls);
	CHECK_ATOMIC(&x->wrong_thread, 0);
	CHECK_ATOMIC(&x->wrong_fd, 0);
	ck_assert_int_eq(x->read_errs, 0);
	ck_assert_int_eq(x->write_errs, 0);
	x->got[x->ngot] = '\0';
	ck_assert_str_eq(x->got, got);
}

/* ---- Readable, writable, level-triggered ---------------------------- */

/* One byte per call: the callback leaves data behind and is called
 * again, in the worker's own thread, until the pipe is empty. */
START_TEST(readable_level_triggered)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.reads = 1;
	w = watcher_start(&x, NULL);
	write_str(p[1], "abc");
	wait_calls(&x, 3, "three callbacks reading a byte each");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 3, "abc");
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(x.revents[i], WORKER_READABLE);
	ck_assert_int_eq(x.eofs, 0);
	CHECK_ATOMIC(&x.cleanups, 1);
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* A socket with room to write is reported writable at every round
 * until its callback unwatches it. */
START_TEST(writable_socketpair)
{
	struct watcher x;
	worker_t *w;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	watcher_init(&x, sv[0], WORKER_WRITABLE, 1);
	x.reads = -1;
	x.writes = 1;
	x.unwatch_at = 3;
	w = watcher_start(&x, NULL);
	wait_calls(&x, 3, "three writable callbacks");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 3, "");
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(x.revents[i], WORKER_WRITABLE);
	CHECK_OK(x.unwatch_rc[0]);
	CHECK_RC(x.unwatch_rc[1], ENOENT);
	expect_unread(sv[1], "www");
	worker_unref(w);
	watcher_destroy(&x);
	close_pair(sv);
}
END_TEST

/* Main's root worker watches too; worker_update() is its breakpoint. */
START_TEST(root_watch_update)
{
	struct watcher x;
	worker_t *self = worker_current();
	int p[2];

	pipe_watcher_init(&x, p, 0);
	x.thread = pthread_self();
	CHECK_OK(worker_watch(self, p[0], WORKER_READABLE, on_ready, &x,
	    &x.id));
	ck_assert_int_eq(worker_update(), 0);
	CHECK_ATOMIC(&x.calls, 0);
	write_str(p[1], "m");
	ck_assert_int_ge(worker_update(), 1);
	CHECK_ATOMIC(&x.calls, 1);
	/* All read: the next breakpoint has nothing to call. */
	CHECK_OK(worker_sleep(0));
	CHECK_OK(worker_unwatch(self, x.id));
	expect_calls(&x, 1, "m");
	ck_assert_uint_eq(x.revents[0], WORKER_READABLE);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* ---- Unwatch -------------------------------------------------------- */

START_TEST(unwatch_in_callback)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.reads = 1;
	x.unwatch_at = 1;
	w = watcher_start(&x, NULL);
	write_str(p[1], "a");
	wait_calls(&x, 1, "the callback that unwatches itself");
	/* Written after the unwatch: nobody reads it. */
	write_str(p[1], "b");
	ping(w, &x);
	ping(w, &x);
	wait_asleep(x.tid, "the watcher");
	CHECK_RC(worker_unwatch(w, x.id), ENOENT);
	stop_join(w);

	expect_calls(&x, 1, "a");
	CHECK_OK(x.unwatch_rc[0]);
	CHECK_RC(x.unwatch_rc[1], ENOENT);
	expect_unread(p[0], "b");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* Unwatched by main while the worker sleeps polling the pipe: it polls
 * the pipe no more, so a byte written afterwards stays there, and it
 * sleeps rather than spinning on it. */
START_TEST(unwatch_from_other_thread)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.reads = 1;
	w = watcher_start(&x, NULL);
	write_str(p[1], "a");
	wait_calls(&x, 1, "the callback before the unwatch");
	wait_asleep(x.tid, "the watcher");
	CHECK_OK(worker_unwatch(w, x.id));
	CHECK_RC(worker_unwatch(w, x.id), ENOENT);
	write_str(p[1], "b");
	ping(w, &x);
	wait_asleep(x.tid, "the watcher after the unwatch");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 1, "a");
	expect_unread(p[0], "b");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* ---- Watches added from another thread ------------------------------ */

/* Main adds a watch while the worker, without any watch yet, sleeps in
 * worker_wait_forever() on its condition variable: the new descriptor is
 * served. */
START_TEST(watch_added_while_idle)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 0);
	w = watcher_start(&x, NULL);
	wait_asleep(x.tid, "the worker without watches");
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, on_ready, &x, &x.id));
	ck_assert(x.id != 0);
	write_str(p[1], "p");
	wait_calls(&x, 1, "the callback of the watch added while the worker "
	    "slept without watches");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 1, "p");
	ck_assert_uint_eq(x.revents[0], WORKER_READABLE);
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* The same while the worker sleeps in ppoll() over its own watch. */
START_TEST(watch_added_while_polling)
{
	struct watcher x, y;
	worker_t *w;
	int p[2], q[2];

	pipe_watcher_init(&x, p, 1);
	pipe_watcher_init(&y, q, 0);
	w = watcher_start(&x, NULL);
	y.thread = x.thread;
	wait_asleep(x.tid, "the worker polling one pipe");
	CHECK_OK(worker_watch(w, q[0], WORKER_READABLE, on_ready, &y, &y.id));
	ck_assert(y.id != 0 && y.id != x.id);
	write_str(q[1], "q");
	wait_calls(&y, 1, "the callback of the watch added while the worker "
	    "slept polling another");
	/* The first watch is still served. */
	write_str(p[1], "p");
	wait_calls(&x, 1, "the callback of the first watch");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 1, "p");
	expect_calls(&y, 1, "q");
	ck_assert_uint_eq(y.revents[0], WORKER_READABLE);
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
	pipe_watcher_destroy(&y, q);
}
END_TEST

/* ---- Stop, events and watches in one loop --------------------------- */

START_TEST(stop_reaches_watching_worker)
{
	struct watcher x;
	void *ret = &ret;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	w = watcher_start(&x, NULL);
	wait_asleep(x.tid, "the watcher");
	stop_join(w);

	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	CHECK_ATOMIC(&x.cleanups, 1);
	expect_calls(&x, 0, "");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

struct busy {
	struct watcher *x;
	atomic_int spins;
	atomic_int events;
};

/* Keeps the worker's queue from ever running empty until the pipe's
 * callback has run. */
static int
on_spin(const worker_event_t *ev, void *ctx)
{
	struct busy *b = ctx;

	(void)ev;
	atomic_fetch_add(&b->spins, 1);
	if (atomic_load(&b->x->calls) == 0)
		return worker_fire(worker_current(), "SPIN", NULL);
	return 0;
}

/* A flood of events from main and a worker that refires at itself: the
 * pipe written in the middle is still served, and so is every event. */
START_TEST(busy_worker_serves_fds)
{
	struct watcher x;
	struct busy b = { .x = &x };
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	w = watcher_start(&x, NULL);
	CHECK_OK(worker_listen(w, "SPIN", on_spin, &b, NULL));
	CHECK_OK(worker_listen(w, "E", on_count, &b.events, NULL));
	CHECK_OK(worker_fire(w, "SPIN", NULL));
	for (int i = 0; i < N_FLOOD; i++) {
		CHECK_OK(worker_fire(w, "E", NULL));
		if (i == N_FLOOD / 2)
			write_str(p[1], "x");
	}
	wait_calls(&x, 1, "the pipe's callback in the busy worker");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 1, "x");
	CHECK_ATOMIC(&b.events, N_FLOOD);
	ck_assert_int_ge(atomic_load(&b.spins), 1);
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* The callback fires at the watcher's parent, main's root worker. */
START_TEST(callback_fires_at_parent)
{
	struct watcher x;
	worker_t *self = worker_current(), *w;
	void *data = NULL;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.notify = self;
	w = watcher_start(&x, self);
	ck_assert_ptr_eq(worker_parent(w), self);
	write_str(p[1], "a");
	CHECK_OK(worker_wait_event("CB", w, wait_limit(), &data));
	ck_assert_ptr_eq(data, &x);
	stop_join(w);

	expect_calls(&x, 1, "a");
	CHECK_OK(x.notify_rc);
	/* The child's CHILD_THREAD_* events hold references on it. */
	(void)worker_update();
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* worker_exit() in a callback unwinds the worker: its cleanup handler
 * runs, its parent hears CHILD_THREAD_STOP, its watch is gone and the
 * descriptor is still open. */
START_TEST(callback_exits_worker)
{
	struct watcher x;
	worker_t *self = worker_current(), *w;
	void *ret = &ret;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.exit_in_cb = 1;
	w = watcher_start(&x, self);
	write_str(p[1], "a");
	CHECK_OK(worker_wait_event(WORKER_CHILD_THREAD_STOP, w, wait_limit(),
	    NULL));
	CHECK_OK(worker_join(w));

	expect_calls(&x, 1, "a");
	CHECK_ATOMIC(&x.after_exit, 0);
	CHECK_ATOMIC(&x.cleanups, 1);
	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	CHECK_RC(worker_unwatch(w, x.id), ENOENT);
	ck_assert_int_ne(fcntl(p[0], F_GETFD), -1);
	(void)worker_update();
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* The write end closed: the callback sees WORKER_READABLE (both bits,
 * as for any hang-up) and reads the end of file. */
START_TEST(hangup_is_readable)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	x.reads = 1;
	x.unwatch_at = 1;
	w = watcher_start(&x, NULL);
	ck_assert_int_eq(close(p[1]), 0);
	p[1] = -1;
	wait_calls(&x, 1, "the hang-up callback");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 1, "");
	ck_assert(x.revents[0] & WORKER_READABLE);
	ck_assert_uint_eq(x.revents[0], WORKER_READABLE | WORKER_WRITABLE);
	ck_assert_int_eq(x.eofs, 1);
	CHECK_OK(x.unwatch_rc[0]);
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* The end drops the watch but leaves the descriptor open, and a restart
 * does not bring the watch back. */
START_TEST(dropped_at_end)
{
	struct watcher x;
	worker_t *w;
	int p[2];

	pipe_watcher_init(&x, p, 1);
	w = watcher_start(&x, NULL);
	stop_join(w);

	CHECK_RC(worker_unwatch(w, x.id), ENOENT);
	CHECK_RC(worker_watch(w, p[0], WORKER_READABLE, on_ready, &x, NULL),
	    ESRCH);
	ck_assert_int_ne(fcntl(p[0], F_GETFD), -1);
	ck_assert_int_ne(fcntl(p[1], F_GETFD), -1);

	x.self_watch = 0;
	CHECK_OK(worker_start(w));
	sem_wait_ok(&x.ready, "the restarted task");
	write_str(p[1], "b");
	ping(w, &x);
	stop_join(w);

	expect_calls(&x, 0, "");
	CHECK_ATOMIC(&x.cleanups, 2);
	expect_unread(p[0], "b");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* ---- A callback that waits ------------------------------------------ */

/*
 * A callback that waits before it reads (issue L4): its descriptor is
 * still readable while it waits in worker_wait_event("GO"), and the loops
 * of that wait must not call it again for that descriptor.  Before the
 * fix every round of the nested loop called it again, nested deeper each
 * time, without bound.  A call nested in another returns at once here,
 * without waiting or reading, so the old behaviour shows as a count
 * instead of a stack overflow.
 */
struct slow_reader {
	uint64_t id;
	atomic_int calls;
	atomic_int depth;	/* calls running now */
	atomic_int nested;	/* calls made while another ran */
	int go_rc;
	char got[8];
	ssize_t n;
	sem_t in_cb;		/* the first call waits for GO */
	sem_t done;		/* it read and returns */
};

static void
wait_then_read(int fd, unsigned revents, void *ctx)
{
	struct slow_reader *r = ctx;

	(void)revents;
	atomic_fetch_add(&r->calls, 1);
	if (atomic_fetch_add(&r->depth, 1) > 0) {
		atomic_fetch_add(&r->nested, 1);
		atomic_fetch_sub(&r->depth, 1);
		return;
	}
	sem_post(&r->in_cb);
	r->go_rc = worker_wait_event("GO", NULL, wait_limit(), NULL);
	r->n = read(fd, r->got, sizeof(r->got) - 1);
	atomic_fetch_sub(&r->depth, 1);
	sem_post(&r->done);
}

START_TEST(callback_waits_before_read)
{
	struct slow_reader r;
	struct watcher other;
	worker_t *w;
	int p[2], q[2];

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(sem_init(&r.in_cb, 0, 0), 0);
	ck_assert_int_eq(sem_init(&r.done, 0, 0), 0);
	make_pipe(p);
	pipe_watcher_init(&other, q, 0);
	w = watcher_start(&other, NULL);
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, wait_then_read, &r,
	    &r.id));
	CHECK_OK(worker_watch(w, q[0], WORKER_READABLE, on_ready, &other,
	    &other.id));
	write_str(p[1], "a");
	sem_wait_ok(&r.in_cb, "the callback that waits for GO");

	/* While it waits: events, and the other descriptor's callback. */
	ping(w, &other);
	write_str(q[1], "q");
	wait_calls(&other, 1, "the other descriptor's callback during the "
	    "wait");
	ping(w, &other);
	CHECK_ATOMIC(&r.nested, 0);
	CHECK_ATOMIC(&r.calls, 1);

	CHECK_OK(worker_fire(w, "GO", NULL));
	sem_wait_ok(&r.done, "the callback after GO");
	/* Read empty: no more calls. */
	ping(w, &other);
	ping(w, &other);
	stop_join(w);

	ck_assert_msg(atomic_load(&r.calls) == 1, "the callback was called "
	    "%d times, %d of them nested in its own wait; want once",
	    atomic_load(&r.calls), atomic_load(&r.nested));
	CHECK_ATOMIC(&r.nested, 0);
	CHECK_OK(r.go_rc);
	ck_assert_int_eq(r.n, 1);
	ck_assert_str_eq(r.got, "a");
	expect_calls(&other, 1, "q");
	worker_unref(w);
	close_pair(p);
	pipe_watcher_destroy(&other, q);
	sem_destroy(&r.in_cb);
	sem_destroy(&r.done);
}
END_TEST

/* ---- Unwatch while the callback runs -------------------------------- */

/* sem_timedwait() for a short while, where the test expects nobody to
 * post: 0 if s was posted, else ETIMEDOUT. */
static int
sem_wait_briefly(sem_t *s, double seconds)
{
	struct timespec ts;
	long ns;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns = ts.tv_nsec + (long)(seconds * 1e9);
	ts.tv_sec += ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	while ((rc = sem_timedwait(s, &ts)) == -1 && errno == EINTR)
		;
	return rc == 0 ? 0 : ETIMEDOUT;
}

/*
 * worker_unwatch() from another thread returns only once the callback is
 * not running (issue L8), so its caller may close the descriptor and free
 * ctx right after.  The callback is held on a semaphore while a helper
 * thread unwatches: the helper stays blocked until the test lets the
 * callback finish, and then finds the callback's last store done.
 * Before the fix the unwatch returned at once, with the callback running.
 */
struct held {
	uint64_t id;
	atomic_int calls;
	atomic_int running;
	atomic_int finished;	/* the callback's very last store */
	sem_t in_cb;
	sem_t release;
};

static void
held_cb(int fd, unsigned revents, void *ctx)
{
	struct held *h = ctx;
	char c;

	(void)revents;
	atomic_fetch_add(&h->calls, 1);
	atomic_store(&h->running, 1);
	sem_post(&h->in_cb);
	sem_wait_intr(&h->release);
	if (read(fd, &c, 1) != 1)
		atomic_fetch_add(&h->calls, 100);
	atomic_store(&h->running, 0);
	atomic_store(&h->finished, 1);
}

struct unwatcher {
	worker_t *w;
	uint64_t id;
	pid_t tid;
	int rc;
	int finished;		/* the callback's state when unwatch returned */
	int running;
	struct held *h;
	sem_t started, returned;
};

static void *
unwatcher_main(void *arg)
{
	struct unwatcher *u = arg;

	u->tid = (pid_t)syscall(SYS_gettid);
	sem_post(&u->started);
	u->rc = worker_unwatch(u->w, u->id);
	u->finished = atomic_load(&u->h->finished);
	u->running = atomic_load(&u->h->running);
	sem_post(&u->returned);
	return NULL;
}

START_TEST(unwatch_waits_for_callback)
{
	struct unwatcher u;
	struct watcher x;
	struct held h;
	pthread_t th;
	worker_t *w;
	int p[2];

	memset(&h, 0, sizeof(h));
	memset(&u, 0, sizeof(u));
	ck_assert_int_eq(sem_init(&h.in_cb, 0, 0), 0);
	ck_assert_int_eq(sem_init(&h.release, 0, 0), 0);
	ck_assert_int_eq(sem_init(&u.started, 0, 0), 0);
	ck_assert_int_eq(sem_init(&u.returned, 0, 0), 0);
	pipe_watcher_init(&x, p, 0);
	w = watcher_start(&x, NULL);
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, held_cb, &h, &h.id));
	write_str(p[1], "ab");
	sem_wait_ok(&h.in_cb, "the held callback");

	u.w = w;
	u.id = h.id;
	u.h = &h;
	ck_assert_int_eq(pthread_create(&th, NULL, unwatcher_main, &u), 0);
	sem_wait_ok(&u.started, "the unwatching thread");
	wait_asleep(u.tid, "the unwatching thread");
	ck_assert_msg(sem_wait_briefly(&u.returned, 0.1 * multiplier()) ==
	    ETIMEDOUT, "worker_unwatch returned while the callback ran");
	sem_post(&h.release);
	sem_wait_ok(&u.returned, "worker_unwatch after the callback");
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	CHECK_OK(u.rc);
	ck_assert_int_eq(u.finished, 1);
	ck_assert_int_eq(u.running, 0);

	/* One byte was read; the other stays, watched by nobody. */
	ping(w, &x);
	ping(w, &x);
	stop_join(w);
	CHECK_ATOMIC(&h.calls, 1);
	CHECK_RC(worker_unwatch(w, h.id), ENOENT);
	expect_unread(p[0], "b");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
	sem_destroy(&h.in_cb);
	sem_destroy(&h.release);
	sem_destroy(&u.started);
	sem_destroy(&u.returned);
}
END_TEST

/*
 * 3,000 rounds of an unwatch racing a callback that is called again and
 * again (it leaves its byte unread): once worker_unwatch() has returned,
 * the callback is not running and never starts again.
 */
#define N_UNWATCH_RACE	3000

struct racer {
	atomic_int calls;
	atomic_int inside;
	atomic_int first;	/* this round's first call posted called */
	sem_t called;
};

static void
race_cb(int fd, unsigned revents, void *ctx)
{
	struct racer *r = ctx;

	(void)fd;
	(void)revents;
	atomic_store(&r->inside, 1);
	atomic_fetch_add(&r->calls, 1);
	if (atomic_exchange(&r->first, 1) == 0)
		sem_post(&r->called);
	/* A window for the unwatch to come while the callback runs. */
	for (int i = 0; i < 8; i++)
		sched_yield();
	atomic_store(&r->inside, 0);
}

START_TEST(unwatch_races_callback)
{
	struct watcher x;
	struct racer r;
	worker_t *w;
	uint64_t id;
	int p[2], inside = 0, late = 0, calls;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(sem_init(&r.called, 0, 0), 0);
	pipe_watcher_init(&x, p, 0);
	w = watcher_start(&x, NULL);
	write_str(p[1], "r");
	for (int i = 0; i < N_UNWATCH_RACE; i++) {
		atomic_store(&r.first, 0);
		CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, race_cb, &r,
		    &id));
		sem_wait_ok(&r.called, "the racing callback");
		CHECK_OK(worker_unwatch(w, id));
		inside += atomic_load(&r.inside);
		calls = atomic_load(&r.calls);
		ping(w, &x);
		if (atomic_load(&r.calls) != calls)
			late++;
	}
	ck_assert_msg(inside == 0, "the callback ran when worker_unwatch "
	    "returned in %d of %d rounds", inside, N_UNWATCH_RACE);
	ck_assert_msg(late == 0, "the callback ran after worker_unwatch "
	    "returned in %d of %d rounds", late, N_UNWATCH_RACE);
	stop_join(w);
	expect_unread(p[0], "r");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
	sem_destroy(&r.called);
}
END_TEST

/*
 * From inside the callback, worker_unwatch() returns 0 at once (it cannot
 * wait for the callback that calls it), and the callback is never called
 * again, though its descriptor stays readable: neither in a wait it runs
 * after the unwatch nor once it has returned.
 */
struct self_unwatch {
	/* Atomic: worker_watch() stores the id after the watch exists, and
	 * ThreadSanitizer does not see the pipe order the two threads. */
	_Atomic uint64_t id;
	atomic_int calls;
	int unwatch_rc, again_rc, go_rc;
	sem_t in_cb, done;
};

static void
unwatch_then_wait(int fd, unsigned revents, void *ctx)
{
	struct self_unwatch *s = ctx;

	(void)fd;
	(void)revents;
	atomic_fetch_add(&s->calls, 1);
	s->unwatch_rc = worker_unwatch(worker_current(), atomic_load(&s->id));
	s->again_rc = worker_unwatch(worker_current(), atomic_load(&s->id));
	sem_post(&s->in_cb);
	s->go_rc = worker_wait_event("GO", NULL, wait_limit(), NULL);
	sem_post(&s->done);
}

START_TEST(unwatch_self_then_wait)
{
	struct self_unwatch s;
	struct watcher x;
	uint64_t id;
	worker_t *w;
	int p[2];

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sem_init(&s.in_cb, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.done, 0, 0), 0);
	pipe_watcher_init(&x, p, 0);
	w = watcher_start(&x, NULL);
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, unwatch_then_wait,
	    &s, &id));
	atomic_store(&s.id, id);
	write_str(p[1], "u");
	/* A callback that waited for itself would never post this. */
	sem_wait_ok(&s.in_cb, "the callback's own unwatch");
	ping(w, &x);
	ping(w, &x);
	CHECK_ATOMIC(&s.calls, 1);
	CHECK_OK(worker_fire(w, "GO", NULL));
	sem_wait_ok(&s.done, "the callback after GO");
	ping(w, &x);
	ping(w, &x);
	stop_join(w);

	CHECK_ATOMIC(&s.calls, 1);
	CHECK_OK(s.unwatch_rc);
	CHECK_RC(s.again_rc, ENOENT);
	CHECK_OK(s.go_rc);
	CHECK_RC(worker_unwatch(w, id), ENOENT);
	expect_unread(p[0], "u");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
	sem_destroy(&s.in_cb);
	sem_destroy(&s.done);
}
END_TEST

/* ---- Errors --------------------------------------------------------- */

START_TEST(watch_errors)
{
	struct watcher x;
	worker_t *self = worker_current(), *idle, *w;
	uint64_t id1 = 0, id2 = 0, id3 = 0;
	int p[2];

	pipe_watcher_init(&x, p, 0);
	x.thread = pthread_self();
	CHECK_RC(worker_watch(NULL, p[0], WORKER_READABLE, on_ready, &x,
	    NULL), EINVAL);
	CHECK_RC(worker_watch(self, -1, WORKER_READABLE, on_ready, &x, NULL),
	    EINVAL);
	CHECK_RC(worker_watch(self, p[0], WORKER_READABLE, NULL, &x, NULL),
	    EINVAL);
	CHECK_RC(worker_watch(self, p[0], 0, on_ready, &x, NULL), EINVAL);
	CHECK_RC(worker_watch(self, p[0], 4, on_ready, &x, NULL), EINVAL);

	idle = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(idle);
	CHECK_RC(worker_watch(idle, p[0], WORKER_READABLE, on_ready, &x,
	    &id1), ESRCH);
	ck_assert(id1 == 0);
	worker_unref(idle);

	CHECK_RC(worker_unwatch(NULL, 1), EINVAL);
	CHECK_RC(worker_unwatch(self, 0), EINVAL);
	CHECK_RC(worker_unwatch(self, UINT64_MAX), ENOENT);

	/* Ids are nonzero and distinct, and belong to their worker. */
	w = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_watch(self, p[0], WORKER_READABLE, on_ready, &x,
	    &id1));
	CHECK_OK(worker_watch(self, p[1], WORKER_READABLE | WORKER_WRITABLE,
	    on_ready, &x, &id2));
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, on_ready, &x, &id3));
	CHECK_OK(worker_watch(w, p[0], WORKER_READABLE, on_ready, &x, NULL));
	ck_assert(id1 != 0 && id2 != 0 && id3 != 0);
	ck_assert(id1 != id2 && id2 != id3 && id1 != id3);
	CHECK_RC(worker_unwatch(self, id3), ENOENT);
	CHECK_RC(worker_unwatch(w, id1), ENOENT);
	CHECK_OK(worker_unwatch(self, id1));
	CHECK_OK(worker_unwatch(self, id2));
	CHECK_RC(worker_unwatch(self, id2), ENOENT);
	CHECK_OK(worker_unwatch(w, id3));
	/* The watch without an id goes with its worker. */
	stop_join(w);
	worker_unref(w);
	CHECK_ATOMIC(&x.calls, 0);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/*
 * A descriptor that is not open is EBADF (issue L10), on a started worker
 * and on main's root, and nothing is ever called for it.  Before the fix
 * the watch was taken, and ppoll() reported the number ready (POLLNVAL):
 * the callback was called for it at the worker's rounds.
 */
START_TEST(watch_closed_fd)
{
	worker_t *self = worker_current(), *w;
	struct watcher x;
	uint64_t id = 0;
	int p[2], fds[3];

	pipe_watcher_init(&x, p, 0);
	w = watcher_start(&x, NULL);
	/* A number that was open a moment ago, and two never opened. */
	fds[0] = p[0];
	ck_assert_int_eq(close(p[0]), 0);
	p[0] = -1;
	fds[1] = 1 << 20;
	fds[2] = INT_MAX;
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(fcntl(fds[i], F_GETFD) == -1 && errno == EBADF,
		    "descriptor %d is open", fds[i]);
		CHECK_RC(worker_watch(w, fds[i], WORKER_READABLE, on_ready, &x,
		    &id), EBADF);
		CHECK_RC(worker_watch(self, fds[i], WORKER_READABLE |
		    WORKER_WRITABLE, on_ready, &x, &id), EBADF);
		ck_assert(id == 0);
	}
	/* The worker goes round its loop, and sleeps rather than spins. */
	ping(w, &x);
	wait_asleep(x.tid, "the watcher");
	ping(w, &x);
	ck_assert_int_eq(worker_update(), 0);
	stop_join(w);

	expect_calls(&x, 0, "");
	worker_unref(w);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* ---- worker_fd ------------------------------------------------------ */

struct feeder {
	worker_t *target;	/* main's root worker */
	atomic_int fails;
};

static void *
feeder_task(void *arg)
{
	struct feeder *f = arg;

	for (int i = 0; i < N_FD_EVENTS; i++)
		if (worker_fire(f->target, "N", NULL) != 0)
			atomic_fetch_add(&f->fails, 1);
	return NULL;
}

/* Waits up to the test's limit for epfd; 1 if it became readable. */
static int
epoll_ready(int epfd)
{
	struct epoll_event ev;
	int n;

	while ((n = epoll_wait(epfd, &ev, 1, (int)(wait_limit() * 1000))) ==
	    -1 && errno == EINTR)
		;
	return n;
}

static int
epoll_now(int epfd)
{
	struct epoll_event ev;
	int n;

	while ((n = epoll_wait(epfd, &ev, 1, 0)) == -1 && errno == EINTR)
		;
	return n;
}

static int
epoll_of(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(epfd, 0);
	ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev), 0);
	return epfd;
}

/* Main's root worker driven by a plain epoll loop. */
START_TEST(fd_drives_root)
{
	worker_t *root = worker_current(), *w;
	struct feeder f = { .target = root };
	atomic_int got = 0, timer = 0;
	double t0, elapsed;
	int fd, epfd;

	fd = worker_fd(root);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(worker_fd(root), fd);
	epfd = epoll_of(fd);
	ck_assert_int_eq(epoll_now(epfd), 0);
	CHECK_OK(worker_listen(root, "N", on_count, &got, NULL));

	w = worker_create(feeder_task, &f, NULL);
	ck_assert_ptr_nonnull(w);
	while (atomic_load(&got) < N_FD_EVENTS) {
		ck_assert_msg(epoll_ready(epfd) == 1, "worker_fd() not "
		    "readable with %d of %d events handled",
		    atomic_load(&got), N_FD_EVENTS);
		(void)worker_update();
	}
	CHECK_OK(worker_join(w));
	worker_unref(w);
	CHECK_ATOMIC(&f.fails, 0);
	CHECK_ATOMIC(&got, N_FD_EVENTS);
	/* One update with nothing left clears it. */
	ck_assert_int_eq(worker_update(), 0);
	ck_assert_int_eq(epoll_now(epfd), 0);

	/* An event queued from main's own thread shows too. */
	CHECK_OK(worker_fire(root, "N", NULL));
	ck_assert_int_eq(epoll_now(epfd), 1);
	ck_assert_int_eq(worker_update(), 1);
	ck_assert_int_eq(epoll_now(epfd), 0);

	/* A timer makes it readable when due, not before, and the update
	 * runs it. */
	t0 = now();
	CHECK_OK(worker_later(root, count_cb, &timer, DELAY, NULL));
	ck_assert_int_eq(epoll_ready(epfd), 1);
	elapsed = now() - t0;
	ck_assert_msg(elapsed >= DELAY - 1e-6, "readable early: %.6f s",
	    elapsed);
	CHECK_ATOMIC(&timer, 0);
	ck_assert_int_ge(worker_update(), 1);
	CHECK_ATOMIC(&timer, 1);
	ck_assert_int_eq(epoll_now(epfd), 0);

	ck_assert_int_eq(worker_fd(root), fd);
	errno = 0;
	ck_assert_int_eq(worker_fd(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	CHECK_OK(worker_unlisten(root, on_count, &got));
	ck_assert_int_eq(close(epfd), 0);
}
END_TEST

/*
 * A round of due timers through worker_fd(): once the update has run the
 * due ones, the descriptor waits for the next deadline instead of staying
 * readable (the round sets the next deadline once, at its end).  It may
 * still become readable a little early, as worker_watch(3) allows: the
 * queue knows a lower bound of its next deadline until it looks closer.
 * An update then returns 0, and the next one runs the timer, never early.
 */
START_TEST(fd_after_a_round_of_timers)
{
	worker_t *root = worker_current();
	atomic_int due = 0, later = 0;
	int epfd = epoll_of(worker_fd(root)), idle = 0;
	double t0;

	for (int i = 0; i < 100; i++)
		CHECK_OK(worker_later(root, count_cb, &due, 0, NULL));
	t0 = now();
	CHECK_OK(worker_later(root, count_cb, &later, DELAY, NULL));
	ck_assert_int_eq(epoll_ready(epfd), 1);
	ck_assert_int_ge(worker_update(), 100);
	CHECK_ATOMIC(&due, 100);
	while (atomic_load(&later) == 0) {
		ck_assert_int_eq(epoll_ready(epfd), 1);
		if (worker_update() == 0)
			idle++;
	}
	ck_assert_msg(now() - t0 >= DELAY - 1e-6, "the timer ran early");
	/* A descriptor left readable would make it thousands. */
	ck_assert_msg(idle <= 2, "%d updates with nothing to do", idle);
	ck_assert_int_eq(epoll_now(epfd), 0);
	ck_assert_int_eq(close(epfd), 0);
}
END_TEST

/* A root driven through worker_fd() that also watches a descriptor and
 * runs one of its own waits: an event that comes afterwards must still
 * make worker_fd() readable. */
START_TEST(fd_after_wait_with_watch)
{
	worker_t *root = worker_current();
	struct watcher x;
	int p[2], fd, epfd;

	pipe_watcher_init(&x, p, 0);
	x.thread = pthread_self();
	fd = worker_fd(root);
	ck_assert_int_ge(fd, 0);
	epfd = epoll_of(fd);
	CHECK_OK(worker_watch(root, p[0], WORKER_READABLE, on_ready, &x,
	    &x.id));

	CHECK_OK(worker_fire(root, "X", NULL));
	ck_assert_int_eq(epoll_now(epfd), 1);
	CHECK_OK(worker_wait_event("X", NULL, 0, NULL));
	CHECK_OK(worker_fire(root, "Y", NULL));
	ck_assert_msg(epoll_now(epfd) == 1, "worker_fd() not readable with "
	    "an event queued");
	ck_assert_int_eq(worker_update(), 1);
	ck_assert_int_eq(epoll_now(epfd), 0);

	CHECK_OK(worker_unwatch(root, x.id));
	CHECK_ATOMIC(&x.calls, 0);
	ck_assert_int_eq(close(epfd), 0);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* The same through worker_update() alone: a timer that fires at its
 * own worker during the update, with a watch on that worker. */
START_TEST(fd_after_update_with_watch)
{
	worker_t *root = worker_current();
	struct watcher x;
	atomic_int t = 0;
	int p[2], fd, epfd, rounds;

	pipe_watcher_init(&x, p, 0);
	x.thread = pthread_self();
	fd = worker_fd(root);
	ck_assert_int_ge(fd, 0);
	epfd = epoll_of(fd);
	CHECK_OK(worker_watch(root, p[0], WORKER_READABLE, on_ready, &x,
	    &x.id));
	CHECK_OK(worker_listen(root, "T", on_count, &t, NULL));

	CHECK_OK(worker_later(root, fire_cb, "T", 0, NULL));
	ck_assert_int_eq(epoll_ready(epfd), 1);
	/* As a host loop does: update while it is readable (T, fired
	 * during the update, may make it readable once more). */
	for (rounds = 0; rounds < 4 && epoll_now(epfd) == 1; rounds++)
		(void)worker_update();
	ck_assert_msg(rounds < 4, "worker_fd() stays readable");
	CHECK_ATOMIC(&t, 1);

	CHECK_OK(worker_fire(root, "Y", NULL));
	ck_assert_msg(epoll_now(epfd) == 1, "worker_fd() not readable with "
	    "an event queued");
	ck_assert_int_eq(worker_update(), 1);

	CHECK_OK(worker_unlisten(root, on_count, &t));
	CHECK_OK(worker_unwatch(root, x.id));
	CHECK_ATOMIC(&x.calls, 0);
	ck_assert_int_eq(close(epfd), 0);
	pipe_watcher_destroy(&x, p);
}
END_TEST

/* ---- worker_signals ------------------------------------------------- */

#define MAX_SIGNALS 8

struct sigs {
	worker_t *master;
	worker_t *child;	/* a reference the master's task takes */
	atomic_int n;
	int signo[MAX_SIGNALS];
	atomic_int wrong_source;
	atomic_int child_cleanup;
	atomic_int master_returned;
	sem_t ready, got;
};

static int
on_signal_event(const worker_event_t *ev, void *ctx)
{
	struct sigs *s = ctx;
	int n = atomic_load(&s->n);

	if (n < MAX_SIGNALS)
		s->signo[n] = (int)(intptr_t)ev->data;
	if (ev->source != s->master)
		atomic_fetch_add(&s->wrong_source, 1);
	atomic_store(&s->n, n + 1);
	sem_post(&s->got);
	return 0;
}

static void
child_cleanup(void *arg)
{
	atomic_fetch_add(&((struct sigs *)arg)->child_cleanup, 1);
}

static void *
sig_child_task(void *arg)
{
	worker_cleanup_push(child_cleanup, arg);
	worker_wait_forever();
	worker_cleanup_pop(0);
	return NULL;
}

static void *
master_task(void *arg)
{
	worker_attr_t attr = { .name = "sigchild" };
	struct sigs *s = arg;

	s->child = worker_create(sig_child_task, s, &attr);
	sem_post(&s->ready);
	worker_wait_forever();
	atomic_store(&s->master_returned, 1);
	return NULL;
}

/* SIGHUP is a notice, SIGTERM stops the master and so its tree; neither
 * kills the process. */
START_TEST(signals_stop_tree)
{
	worker_attr_t attr = { .name = "master" };
	sigset_t stop, notify, mask, pending;
	void *ret = &ret;
	struct sigs s;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sem_init(&s.ready, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.got, 0, 0), 0);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigemptyset(&notify);
	sigaddset(&notify, SIGHUP);

	/* No thread before the signals are blocked. */
	s.master = worker_new(master_task, &s, &attr);
	ck_assert_ptr_nonnull(s.master);
	CHECK_OK(worker_listen(s.master, WORKER_SIGNAL, on_signal_event, &s,
	    NULL));
	CHECK_OK(worker_signals(s.master, &stop, &notify));
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
	ck_assert_int_eq(sigismember(&mask, SIGTERM), 1);
	ck_assert_int_eq(sigismember(&mask, SIGHUP), 1);

	CHECK_OK(worker_start(s.master));
	sem_wait_ok(&s.ready, "the master's task");
	ck_assert_ptr_nonnull(s.child);

	ck_assert_int_eq(kill(getpid(), SIGHUP), 0);
	sem_wait_ok(&s.got, "SIGNAL for SIGHUP");
	CHECK_ATOMIC(&s.n, 1);
	ck_assert_int_eq(worker_is_running(s.master), 1);
	ck_assert_int_eq(worker_is_running(s.child), 1);

	ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
	sem_wait_ok(&s.got, "SIGNAL for SIGTERM");
	CHECK_OK(worker_join(s.master));

	CHECK_ATOMIC(&s.n, 2);
	ck_assert_int_eq(s.signo[0], SIGHUP);
	ck_assert_int_eq(s.signo[1], SIGTERM);
	CHECK_ATOMIC(&s.wrong_source, 0);
	CHECK_ATOMIC(&s.master_returned, 0);
	CHECK_OK(worker_result(s.master, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(worker_is_running(s.child), 0);
	CHECK_ATOMIC(&s.child_cleanup, 1);
	CHECK_OK(worker_join(s.child));
	ck_assert_int_eq(sigpending(&pending), 0);
	ck_assert_int_eq(sigismember(&pending, SIGHUP), 0);
	ck_assert_int_eq(sigismember(&pending, SIGTERM), 0);

	worker_unref(s.child);
	worker_unref(s.master);
	sem_destroy(&s.ready);
	sem_destroy(&s.got);
}
END_TEST

START_TEST(signals_errors)
{
	sigset_t set, empty, mask;
	worker_t *w;

	sigemptyset(&empty);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);

	CHECK_RC(worker_signals(NULL, &set, NULL), EINVAL);
	CHECK_RC(worker_signals(w, NULL, NULL), EINVAL);
	CHECK_RC(worker_signals(w, &empty, &empty), EINVAL);
	CHECK_RC(worker_signals(w, &empty, NULL), EINVAL);
	/* The failed calls blocked nothing. */
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
	ck_assert_int_eq(sigismember(&mask, SIGUSR1), 0);

	CHECK_OK(worker_signals(w, NULL, &set));
	CHECK_RC(worker_signals(w, &set, NULL), EBUSY);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
	ck_assert_int_eq(sigismember(&mask, SIGUSR1), 1);
	worker_unref(w);
}
END_TEST

Suite *
suite_watch(void)
{
	Suite *s = suite_create("watch");
	TCase *tc;

	tc = test_case(s, "ready");
	tcase_add_test(tc, readable_level_triggered);
	tcase_add_test(tc, writable_socketpair);
	tcase_add_test(tc, root_watch_update);
	tcase_add_test(tc, hangup_is_readable);

	tc = test_case(s, "unwatch");
	tcase_add_test(tc, unwatch_in_callback);
	tcase_add_test(tc, unwatch_from_other_thread);
	tcase_add_test(tc, watch_added_while_idle);
	tcase_add_test(tc, watch_added_while_polling);
	tcase_add_test(tc, dropped_at_end);
	tcase_add_test(tc, watch_errors);

	tc = test_case(s, "closed_fd");
	tcase_add_test(tc, watch_closed_fd);

	tc = test_case(s, "loop");
	tcase_add_test(tc, stop_reaches_watching_worker);
	tcase_add_test(tc, busy_worker_serves_fds);
	tcase_add_test(tc, callback_fires_at_parent);
	tcase_add_test(tc, callback_exits_worker);

	tc = test_case(s, "waiting_callback");
	tcase_add_test(tc, callback_waits_before_read);

	tc = test_case(s, "unwatch_running");
	tcase_add_test(tc, unwatch_waits_for_callback);
	tcase_add_test(tc, unwatch_races_callback);
	tcase_add_test(tc, unwatch_self_then_wait);

	tc = test_case(s, "fd");
	tcase_add_test(tc, fd_drives_root);
	tcase_add_test(tc, fd_after_a_round_of_timers);
	tcase_add_test(tc, fd_after_wait_with_watch);
	tcase_add_test(tc, fd_after_update_with_watch);

	tc = test_case(s, "signals");
	tcase_add_test(tc, signals_stop_tree);
	tcase_add_test(tc, signals_errors);

	return s;
}
