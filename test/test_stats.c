/*
 * test_stats.c - worker_stats(), worker_set_log() and worker_dump_json().
 *
 * The counters are written by the owner after the listener returns, so a
 * test that has seen the listener run waits for the counter with
 * stats_until(): a bounded poll, failing with the field and its value.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "test.h"

static worker_stats_t
stats_of(const worker_t *w)
{
	worker_stats_t st;

	CHECK_OK(worker_stats(w, &st));
	return st;
}

/* Polls w's stats until field (an offset into worker_stats_t) is want. */
#define stats_until_op(w, field, op, want)				\
	do {								\
		double until_ = now() + wait_limit();			\
		worker_stats_t st_ = stats_of(w);			\
		while (!(st_.field op (want)) && now() < until_) {	\
			nap(0.001);					\
			st_ = stats_of(w);				\
		}							\
		ck_assert_msg(st_.field op (want), "%s is %llu, want %s %llu", \
		    #field, (unsigned long long)st_.field, #op,		\
		    (unsigned long long)(want));			\
	} while (0)
#define stats_until(w, field, want) stats_until_op(w, field, ==, want)

/* Polls w's stats until it does what. */
static void
doing_until(const worker_t *w, const char *what)
{
	double until = now() + wait_limit();
	worker_stats_t st = stats_of(w);

	while (strcmp(st.doing, what) != 0 && now() < until) {
		nap(0.001);
		st = stats_of(w);
	}
	ck_assert_str_eq(st.doing, what);
}

/* ---- Counters -------------------------------------------------------- */

START_TEST(stats_bad_input)
{
	worker_stats_t st;
	worker_t *w = idle_new("bad", NULL, NULL);

	CHECK_RC(worker_stats(NULL, &st), EINVAL);
	CHECK_RC(worker_stats(w, NULL), EINVAL);
	st = stats_of(w);
	ck_assert_str_eq(st.doing, "new");
	ck_assert_uint_eq(st.handled, 0);
	ck_assert(st.since_breakpoint == 0);
	worker_unref(w);
}
END_TEST

START_TEST(stats_count_handled_and_errors)
{
	sem_t fence_sem;
	atomic_int seen = 0;
	worker_t *w;

	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	w = idle_new("counted", NULL, &fence_sem);
	CHECK_OK(worker_listen(w, "tick", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));
	for (int i = 0; i < 100; i++)
		CHECK_OK(worker_fire(w, "tick", NULL));
	fence(w, &fence_sem);
	CHECK_ATOMIC(&seen, 100);
	/* 100 ticks and the fence. */
	ck_assert_uint_eq(stats_of(w).handled, 101);
	ck_assert_uint_eq(stats_of(w).listener_errors, 0);
	ck_assert_uint_ge(stats_of(w).queued_max, 1);
	/* The fence's listener posted its semaphore: the owner may not be
	 * back in its wait yet. */
	doing_until(w, "wait_forever");
	stop_join(w);
	/* Counters outlive the run: the STOP_THREAD counts too. */
	ck_assert_uint_eq(stats_of(w).handled, 102);
	ck_assert_str_eq(stats_of(w).doing, "ended");
	worker_unref(w);
	sem_destroy(&fence_sem);
}
END_TEST

static int
on_fail(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 7;
}

START_TEST(stats_count_listener_errors)
{
	sem_t fence_sem;
	worker_t *w;

	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	w = idle_new("failing", NULL, &fence_sem);
	CHECK_OK(worker_listen(w, "bad", on_fail, NULL, NULL));
	CHECK_OK(worker_start(w));
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_fire(w, "bad", NULL));
	fence(w, &fence_sem);
	stats_until(w, listener_errors, 3);
	stop_join_unref(w);
	sem_destroy(&fence_sem);
}
END_TEST

/* A task that stays outside its breakpoints until told to go on. */
struct held {
	sem_t in_task;
	sem_t go;
};

static void *
held_task(void *arg)
{
	struct held *h = arg;

	sem_post(&h->in_task);
	sem_wait_intr(&h->go);
	worker_wait_forever();
	return NULL;
}

START_TEST(stats_queue_behind_a_held_worker)
{
	struct held h;
	worker_attr_t attr = { .name = "held", .queue_max = 5 };
	sem_t fence_sem;
	worker_stats_t st;
	worker_t *w;
	double before;

	ck_assert_int_eq(sem_init(&h.in_task, 0, 0), 0);
	ck_assert_int_eq(sem_init(&h.go, 0, 0), 0);
	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	w = worker_new(held_task, &h, &attr);
	ck_assert_ptr_nonnull(w);
	/* The first look starts the clocks (stats_timing_from_first_look). */
	(void)stats_of(w);
	CHECK_OK(worker_listen(w, "FENCE", on_post, &fence_sem, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&h.in_task, "the held task");
	for (int i = 0; i < 5; i++)
		CHECK_OK(worker_fire(w, "x", NULL));
	for (int i = 0; i < 3; i++)
		CHECK_RC(worker_fire(w, "x", NULL), EAGAIN);
	st = stats_of(w);
	ck_assert_uint_eq(st.queued, 5);
	ck_assert_uint_eq(st.queued_max, 5);
	ck_assert_uint_eq(st.rejected, 3);
	ck_assert_str_eq(st.doing, "task");
	/* Outside its breakpoints, the time only grows. */
	before = st.since_breakpoint;
	nap(0.05);
	ck_assert(stats_of(w).since_breakpoint > before);
	ck_assert(stats_of(w).since_breakpoint >= 0.03);

	sem_post(&h.go);
	stats_until(w, queued, 0);
	fence(w, &fence_sem);
	doing_until(w, "wait_forever");
	st = stats_of(w);
	ck_assert_uint_eq(st.handled, 6);
	ck_assert_uint_eq(st.queued_max, 5);
	ck_assert(st.since_breakpoint == 0);
	ck_assert_str_eq(st.doing, "wait_forever");
	stop_join(w);
	/* A stopped worker refuses: ESRCH, and counts it. */
	CHECK_RC(worker_fire(w, "x", NULL), ESRCH);
	ck_assert_uint_eq(stats_of(w).rejected, 4);
	worker_unref(w);
	sem_destroy(&h.in_task);
	sem_destroy(&h.go);
	sem_destroy(&fence_sem);
}
END_TEST

static void
never(void *arg)
{
	(void)arg;
}

static void
ignore_fd(int fd, unsigned revents, void *ctx)
{
	(void)fd;
	(void)revents;
	(void)ctx;
}

START_TEST(stats_pending_timers_and_watches)
{
	struct host h;
	worker_t *w = host_new(&h, NULL);
	uint64_t t[3], wa[2];
	int fds[2];
	worker_stats_t st;

	ck_assert_int_eq(pipe(fds), 0);
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_later(w, never, NULL, 3600, &t[i]));
	CHECK_OK(worker_watch(w, fds[0], WORKER_READABLE, ignore_fd, NULL,
	    &wa[0]));
	CHECK_OK(worker_watch(w, fds[1], WORKER_WRITABLE, ignore_fd, NULL,
	    &wa[1]));
	st = stats_of(w);
	ck_assert_uint_eq(st.timers, 3);
	ck_assert_uint_eq(st.watches, 2);
	CHECK_OK(worker_cancel(w, t[1]));
	CHECK_OK(worker_unwatch(w, wa[0]));
	st = stats_of(w);
	ck_assert_uint_eq(st.timers, 2);
	ck_assert_uint_eq(st.watches, 1);
	stop_join(w);
	st = stats_of(w);
	ck_assert_uint_eq(st.timers, 0);
	ck_assert_uint_eq(st.watches, 0);
	host_free(w, &h);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* A listener that says it runs, then sleeps outside any breakpoint. */
struct slow {
	sem_t in_listener;
	sem_t go;
};

static int
on_slow(const worker_event_t *ev, void *ctx)
{
	struct slow *s = ctx;

	(void)ev;
	sem_post(&s->in_listener);
	sem_wait_intr(&s->go);
	nap(0.2);
	return 0;
}

#define LONG_NAME "a user event whose name is longer than the field"

START_TEST(stats_time_in_a_slow_listener)
{
	struct slow s;
	sem_t fence_sem;
	worker_stats_t st;
	worker_t *w;

	ck_assert_int_eq(sem_init(&s.in_listener, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.go, 0, 0), 0);
	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	w = idle_new("slowpoke", NULL, &fence_sem);
	(void)stats_of(w);
	CHECK_OK(worker_listen(w, LONG_NAME, on_slow, &s, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, LONG_NAME, NULL));
	sem_wait_ok(&s.in_listener, "the slow listener");
	st = stats_of(w);
	/* "listener " and as much of the name as the field holds. */
	ck_assert_uint_eq(strlen(st.doing), sizeof(st.doing) - 1);
	ck_assert_msg(strncmp(st.doing, "listener " LONG_NAME,
	    sizeof(st.doing) - 1) == 0, "doing: %s", st.doing);
	sem_post(&s.go);
	fence(w, &fence_sem);
	ck_assert_uint_eq(stats_of(w).handled, 2);
	/* The span of the slow call ends before the worker sleeps again. */
	stats_until_op(w, listener_max_ns, >=, 200000000);
	st = stats_of(w);
	ck_assert_uint_ge(st.listener_ns, 200000000);
	ck_assert_uint_le(st.listener_max_ns, st.listener_ns);
	stop_join_unref(w);
	sem_destroy(&s.in_listener);
	sem_destroy(&s.go);
	sem_destroy(&fence_sem);
}
END_TEST

/* A child that ends at once, three times, then stays. */
struct flaky {
	atomic_int runs;
	sem_t started;
};

static void *
flaky_task(void *arg)
{
	struct flaky *f = arg;

	sem_post(&f->started);
	if (atomic_fetch_add(&f->runs, 1) == 3)
		worker_wait_forever();
	return NULL;
}

START_TEST(stats_count_restarts)
{
	worker_t *p = worker_create(NULL, NULL, &(worker_attr_t){
	    .name = "supervisor", .restart_max = 100 });
	struct flaky f = { .runs = 0 };
	worker_t *c;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sem_init(&f.started, 0, 0), 0);
	c = worker_create(flaky_task, &f, &(worker_attr_t){
	    .name = "flaky", .parent = p,
	    .restart = WORKER_RESTART_PERMANENT });
	ck_assert_ptr_nonnull(c);
	for (int i = 0; i < 4; i++)
		sem_wait_ok(&f.started, "a run of the child");
	/* The fourth run is the third restart. */
	stats_until(c, restarts, 3);
	stop_join_unref(p);
	ck_assert_uint_eq(stats_of(c).restarts, 3);
	worker_unref(c);
	sem_destroy(&f.started);
}
END_TEST

/* ---- The log hook ---------------------------------------------------- */

struct logged {
	pthread_mutex_t lock;
	int count;
	int levels[64];
	char text[64][600];
	const worker_t *about[64];
};

static void
keep_log(int level, const worker_t *w, const char *msg, void *ctx)
{
	struct logged *l = ctx;

	pthread_mutex_lock(&l->lock);
	if (l->count < 64) {
		l->levels[l->count] = level;
		l->about[l->count] = w;
		snprintf(l->text[l->count], sizeof(l->text[0]), "%s", msg);
	}
	l->count++;
	pthread_mutex_unlock(&l->lock);
}

static int
logged_count(struct logged *l)
{
	int n;

	pthread_mutex_lock(&l->lock);
	n = l->count;
	pthread_mutex_unlock(&l->lock);
	return n;
}

/* Index of the first message containing what, or -1. */
static int
logged_find(struct logged *l, const char *what)
{
	int found = -1;

	pthread_mutex_lock(&l->lock);
	for (int i = 0; i < l->count && i < 64 && found < 0; i++)
		if (strstr(l->text[i], what) != NULL)
			found = i;
	pthread_mutex_unlock(&l->lock);
	return found;
}

static void
logged_init(struct logged *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
}

/* Makes stderr a file the test reads afterwards. */
static int
stderr_to_file(int *saved)
{
	char path[] = "/tmp/libworker-stderr-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	*saved = dup(STDERR_FILENO);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	return fd;
}

static off_t
stderr_back(int fd, int saved)
{
	off_t size;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	size = lseek(fd, 0, SEEK_END);
	close(fd);
	return size;
}

/*
 * Nothing is timed until a first look at any worker: a process that never
 * looks does not pay for the clock reads.  From the look on, all is.
 */
START_TEST(stats_timing_from_first_look)
{
	struct slow s;
	sem_t fence_sem;
	worker_t *w;

	ck_assert_int_eq(sem_init(&s.in_listener, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.go, 0, 0), 0);
	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	w = idle_new("unwatched", NULL, &fence_sem);
	CHECK_OK(worker_listen(w, "slow", on_slow, &s, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "slow", NULL));
	sem_wait_ok(&s.in_listener, "the first slow call");
	sem_post(&s.go);
	fence(w, &fence_sem);
	doing_until(w, "wait_forever");
	/* That was the first look: the call before it went untimed. */
	ck_assert_uint_eq(stats_of(w).listener_ns, 0);
	ck_assert_uint_eq(stats_of(w).handled, 2);
	CHECK_OK(worker_fire(w, "slow", NULL));
	sem_wait_ok(&s.in_listener, "the second slow call");
	nap(0.05);
	ck_assert(stats_of(w).since_breakpoint >= 0.03);
	sem_post(&s.go);
	stats_until_op(w, listener_max_ns, >=, 200000000);
	stop_join_unref(w);
	sem_destroy(&s.in_listener);
	sem_destroy(&s.go);
	sem_destroy(&fence_sem);
}
END_TEST

static void *
failing_task(void *arg)
{
	(void)arg;
	worker_fail(EPROTO);
	return NULL;
}

static int
on_stuck(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	sem_post(&((struct slow *)ctx)->in_listener);
	sem_wait_intr(&((struct slow *)ctx)->go);
	return 0;
}

/*
 * Every kind of message a test can cause goes to the hook, with its
 * level and worker, and nothing to stderr: a failed task, a failing
 * LISTENER_ERROR listener, a stuck child (whose report names the user
 * event of its listener), restarts past the intensity.
 */
START_TEST(log_hook_gets_every_message)
{
	struct logged l;
	struct slow s;
	int saved, fd, i;
	worker_t *w, *p, *c;

	logged_init(&l);
	ck_assert_int_eq(sem_init(&s.in_listener, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.go, 0, 0), 0);
	fd = stderr_to_file(&saved);
	worker_set_log(keep_log, &l);

	w = worker_create(failing_task, NULL, &(worker_attr_t){
	    .name = "doomed" });
	join_bounded(w, "the failing task");
	ck_assert_int_ge(i = logged_find(&l, "worker doomed failed"), 0);
	ck_assert_int_eq(l.levels[i], LOG_ERR);
	ck_assert_ptr_eq(l.about[i], w);
	worker_unref(w);

	w = idle_new("lerr", NULL, NULL);
	CHECK_OK(worker_listen(w, "bad", on_fail, NULL, NULL));
	CHECK_OK(worker_listen(w, WORKER_LISTENER_ERROR, on_fail, NULL,
	    NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "bad", NULL));
	while (logged_find(&l, "LISTENER_ERROR listener failed") < 0)
		nap(0.001);
	stop_join_unref(w);

	p = worker_create(NULL, NULL, &(worker_attr_t){ .name = "parent" });
	c = worker_new(NULL, NULL, &(worker_attr_t){ .name = "stuck",
	    .parent = p, .stop_timeout = 0.1 });
	ck_assert_ptr_nonnull(c);
	CHECK_OK(worker_listen(c, "hang here", on_stuck, &s, NULL));
	CHECK_OK(worker_start(c));
	CHECK_OK(worker_fire(c, "hang here", NULL));
	sem_wait_ok(&s.in_listener, "the stuck listener");
	stop_join(p);
	sem_post(&s.go);
	join_bounded(c, "the stuck child");
	ck_assert_int_ge(i = logged_find(&l, "child stuck is stuck"), 0);
	ck_assert_int_eq(l.levels[i], LOG_WARNING);
	ck_assert_msg(strstr(l.text[i], "in a listener of hang here") != NULL,
	    "the report: %s", l.text[i]);
	worker_unref(c);
	worker_unref(p);

	worker_set_log(NULL, NULL);
	ck_assert_int_eq(stderr_back(fd, saved), 0);
	sem_destroy(&s.in_listener);
	sem_destroy(&s.go);
}
END_TEST

/* A listener failing on every event, whose LISTENER_ERROR listener fails
 * too: one line, then "... 499 more" when the hook changes. */
START_TEST(log_repeats_are_counted)
{
	struct logged l;
	sem_t fence_sem;
	worker_t *w;
	int saved, fd;

	logged_init(&l);
	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	fd = stderr_to_file(&saved);
	worker_set_log(keep_log, &l);
	w = idle_new("flood", NULL, &fence_sem);
	CHECK_OK(worker_listen(w, WORKER_LISTENER_ERROR, on_fail, NULL,
	    NULL));
	CHECK_OK(worker_listen(w, "bad", on_fail, NULL, NULL));
	CHECK_OK(worker_start(w));
	for (int i = 0; i < 500; i++)
		CHECK_OK(worker_fire(w, "bad", NULL));
	fence(w, &fence_sem);
	stop_join_unref(w);
	/* Five seconds have not passed on any machine that runs this. */
	ck_assert_int_eq(logged_count(&l), 1);
	worker_set_log(NULL, NULL);
	ck_assert_int_eq(logged_count(&l), 2);
	ck_assert_str_eq(l.text[1], "worker flood: LISTENER_ERROR listener "
	    "failed with 7 ... 499 more");
	ck_assert_ptr_null(l.about[1]);
	ck_assert_int_eq(stderr_back(fd, saved), 0);
	sem_destroy(&fence_sem);
}
END_TEST

/* A hook that swaps itself out: no deadlock, and the swap holds. */
static void
swap_log(int level, const worker_t *w, const char *msg, void *ctx)
{
	keep_log(level, w, msg, ctx);
	worker_set_log(NULL, NULL);
}

START_TEST(log_hook_may_set_the_hook)
{
	struct logged l;
	worker_t *w;
	int saved, fd;

	logged_init(&l);
	worker_set_log(swap_log, &l);
	w = worker_create(failing_task, NULL, &(worker_attr_t){
	    .name = "first" });
	join_bounded(w, "the first failing task");
	worker_unref(w);
	ck_assert_int_eq(logged_count(&l), 1);
	/* The default is back: the next report goes to stderr. */
	fd = stderr_to_file(&saved);
	w = worker_create(failing_task, NULL, &(worker_attr_t){
	    .name = "second" });
	join_bounded(w, "the second failing task");
	worker_unref(w);
	ck_assert_int_gt(stderr_back(fd, saved), 0);
	ck_assert_int_eq(logged_count(&l), 1);
}
END_TEST

/* ---- JSON ------------------------------------------------------------- */

static json_t *
parse_dump(const worker_t *root)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_error_t err;
	json_t *doc;

	ck_assert_ptr_nonnull(f);
	CHECK_OK(worker_dump_json(f, root));
	fclose(f);
	ck_assert_msg(len > 0 && buf[len - 1] == '\n' &&
	    memchr(buf, '\n', len) == buf + len - 1, "one line: %s", buf);
	/* Jansson refuses invalid UTF-8 and control bytes in strings. */
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	ck_assert_msg(doc != NULL, "invalid JSON (%s) at %d: %s", err.text,
	    err.position, buf);
	free(buf);
	return doc;
}

START_TEST(json_bad_input)
{
	worker_t *w = idle_new("x", NULL, NULL);

	CHECK_RC(worker_dump_json(NULL, w), EINVAL);
	worker_unref(w);
}
END_TEST

START_TEST(json_fields_and_children)
{
	sem_t fence_sem;
	worker_t *p, *c;
	json_t *doc, *top, *kid;
	const char *fields[] = { "handled", "queued", "queued_max",
	    "rejected", "listener_errors", "restarts", "timers", "watches",
	    "listener_ns", "listener_max_ns" };

	ck_assert_int_eq(sem_init(&fence_sem, 0, 0), 0);
	p = idle_new("top", NULL, NULL);
	CHECK_OK(worker_start(p));
	c = idle_new("kid", p, &fence_sem);
	CHECK_OK(worker_start(c));
	fence(c, &fence_sem);
	doing_until(c, "wait_forever");
	doc = parse_dump(p);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "version")),
	    1);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "pid")),
	    getpid());
	ck_assert(json_is_real(json_object_get(doc, "now")));
	ck_assert_int_eq(json_array_size(json_object_get(doc, "trees")), 1);
	top = json_array_get(json_object_get(doc, "trees"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(top, "name")),
	    "top");
	ck_assert_str_eq(json_string_value(json_object_get(top, "state")),
	    "running");
	ck_assert(json_is_false(json_object_get(top, "daemon")));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		ck_assert_msg(json_is_integer(json_object_get(top, fields[i])),
		    "field %s", fields[i]);
	ck_assert(json_is_real(json_object_get(top, "since_breakpoint")));
	kid = json_array_get(json_object_get(top, "children"), 0);
	ck_assert_ptr_nonnull(kid);
	ck_assert_str_eq(json_string_value(json_object_get(kid, "name")),
	    "kid");
	ck_assert_str_eq(json_string_value(json_object_get(kid, "doing")),
	    "wait_forever");
	ck_assert_int_eq(json_integer_value(json_object_get(kid, "handled")),
	    1);
	json_decref(doc);
	stop_join_unref(p);
	worker_unref(c);
	sem_destroy(&fence_sem);
}
END_TEST

/* Names are user bytes; the document stays valid JSON and keeps every
 * valid character as it was. */
START_TEST(json_hostile_names)
{
	static const struct {
		const char *name;
		const char *want;
	} cases[] = {
		{ "quote\"back\\slash", "quote\"back\\slash" },
		{ "ctl\x01\x1f\n\t", "ctl\x01\x1f\n\t" },
		{ "del\x7f", "del\x7f" },
		{ "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac"
		    "\xf0\x9f\x98\x80" },
		{ "bad\xff", "bad\xef\xbf\xbd" },
		{ "overlong\xc0\x80", "overlong\xef\xbf\xbd\xef\xbf\xbd" },
		{ "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd"
		    "\xef\xbf\xbd" },
		{ "cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd" },
		{ "big\xf4\x90\x80\x80", "big\xef\xbf\xbd\xef\xbf\xbd"
		    "\xef\xbf\xbd\xef\xbf\xbd" },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	worker_t *p = idle_new("parent", NULL, NULL);
	worker_t *kids[sizeof(cases) / sizeof(cases[0])];
	json_t *doc, *children;

	for (size_t i = 0; i < n; i++)
		kids[i] = idle_new(cases[i].name, p, NULL);
	doc = parse_dump(p);
	children = json_object_get(json_array_get(json_object_get(doc,
	    "trees"), 0), "children");
	ck_assert_int_eq(json_array_size(children), n);
	for (size_t i = 0; i < n; i++) {
		const char *got = json_string_value(json_object_get(
		    json_array_get(children, i), "name"));

		ck_assert_msg(got != NULL && strcmp(got, cases[i].want) == 0,
		    "case %zu: got \"%s\"", i, got != NULL ? got : "(none)");
	}
	json_decref(doc);
	for (size_t i = 0; i < n; i++)
		worker_unref(kids[i]);
	worker_unref(p);
}
END_TEST

/* A chain deeper than parsers take is cut, and says so. */
START_TEST(json_deep_chain_is_truncated)
{
	enum { DEPTH = 600 };
	worker_t **chain = calloc(DEPTH, sizeof(*chain));
	json_t *doc, *w;
	int levels = 0;

	ck_assert_ptr_nonnull(chain);
	for (int i = 0; i < DEPTH; i++)
		chain[i] = idle_new("link", i > 0 ? chain[i - 1] : NULL,
		    NULL);
	doc = parse_dump(chain[0]);
	w = json_array_get(json_object_get(doc, "trees"), 0);
	while (json_array_size(json_object_get(w, "children")) == 1) {
		w = json_array_get(json_object_get(w, "children"), 0);
		levels++;
	}
	ck_assert_int_eq(levels, 512);
	ck_assert(json_is_true(json_object_get(w, "truncated")));
	json_decref(doc);
	for (int i = DEPTH - 1; i >= 0; i--)
		worker_unref(chain[i]);
	free(chain);
}
END_TEST

/* NULL: every running top-level tree, and the calling thread's root. */
START_TEST(json_every_tree)
{
	worker_t *a = worker_create(NULL, NULL, &(worker_attr_t){
	    .name = "tree-a" });
	worker_t *b = worker_create(NULL, NULL, &(worker_attr_t){
	    .name = "tree-b" });
	worker_t *unstarted = idle_new("not-started", NULL, NULL);
	json_t *doc, *trees;
	bool seen_a = false, seen_b = false, seen_root = false;

	(void)worker_current();
	doc = parse_dump(NULL);
	trees = json_object_get(doc, "trees");
	for (size_t i = 0; i < json_array_size(trees); i++) {
		json_t *t = json_array_get(trees, i);
		const char *name = json_string_value(json_object_get(t,
		    "name"));
		const char *state = json_string_value(json_object_get(t,
		    "state"));

		ck_assert_str_ne(name, "not-started");
		seen_a |= strcmp(name, "tree-a") == 0;
		seen_b |= strcmp(name, "tree-b") == 0;
		seen_root |= strcmp(state, "root") == 0;
	}
	ck_assert(seen_a && seen_b && seen_root);
	json_decref(doc);
	stop_join_unref(a);
	stop_join_unref(b);
	worker_unref(unstarted);
}
END_TEST

Suite *
suite_stats(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = test_case(s, "counters");

	tcase_add_test(tc, stats_bad_input);
	tcase_add_test(tc, stats_count_handled_and_errors);
	tcase_add_test(tc, stats_count_listener_errors);
	tcase_add_test(tc, stats_queue_behind_a_held_worker);
	tcase_add_test(tc, stats_pending_timers_and_watches);
	tcase_add_test(tc, stats_time_in_a_slow_listener);
	tcase_add_test(tc, stats_count_restarts);
	tcase_add_test(tc, stats_timing_from_first_look);
	tc = test_case(s, "log");
	tcase_add_test(tc, log_hook_gets_every_message);
	tcase_add_test(tc, log_repeats_are_counted);
	tcase_add_test(tc, log_hook_may_set_the_hook);
	tc = test_case(s, "json");
	tcase_add_test(tc, json_bad_input);
	tcase_add_test(tc, json_fields_and_children);
	tcase_add_test(tc, json_hostile_names);
	tcase_add_test(tc, json_deep_chain_is_truncated);
	tcase_add_test(tc, json_every_tree);
	return s;
}
