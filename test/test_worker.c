/*
 * test_worker.c - the life of one worker: new, create, start, overlay,
 * restart, results, joins (of itself and of its ancestors), references,
 * names, worker_arg, running state, pause and stop, waits on plain
 * pthreads, and pyThreadWorker's counter.
 *
 * Workers only record what they saw (plain fields published by a join or
 * a semaphore, atomics where the test reads while the worker runs); the
 * test's own thread asserts.  Steps are ordered with semaphores and
 * events; the only sleeps are where elapsed time is itself the subject.
 */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* What a task saw.  Plain fields are written before the worker ends (or
 * before it posts a semaphore) and read by the test after the join (or
 * the wait), which orders them. */
struct rec {
	sem_t started;		/* posted by a task once it runs */
	sem_t seen;		/* posted by listeners */
	atomic_int ran;		/* times the task started */
	atomic_int after;	/* code that must never run did */
	worker_t *self;		/* worker_current() in the task */
	worker_t *peer;		/* another worker the task talks to */
	pthread_t thread;	/* the thread the task ran on */
	int rc[8];
	char name[32];
};

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(sem_init(&r->started, 0, 0), 0);
	ck_assert_int_eq(sem_init(&r->seen, 0, 0), 0);
}

static void
rec_fini(struct rec *r)
{
	sem_destroy(&r->started);
	sem_destroy(&r->seen);
}

static void *
task_record(void *arg)
{
	struct rec *r = arg;

	r->self = worker_current();
	r->thread = pthread_self();
	r->rc[0] = worker_is_running(r->self);
	r->rc[1] = worker_is_main(NULL);
	atomic_fetch_add(&r->ran, 1);
	return (void *)0x1234;
}

/* Tells the test it runs, then waits for an event that never comes: only
 * a stop ends it, and it must never get past the wait. */
static void *
task_wait_never(void *arg)
{
	struct rec *r = arg;

	sem_post(&r->started);
	worker_wait_event("NEVER", NULL, -1, NULL);
	atomic_store(&r->after, 1);
	return (void *)1;
}

/* Runs task with r, freshly set up, in a new worker to its end. */
static worker_t *
run_rec(struct rec *r, worker_fn task, const worker_attr_t *attr)
{
	worker_t *w;

	rec_init(r);
	w = worker_create(task, r, attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	return w;
}

START_TEST(test_new_start)
{
	struct rec r;
	worker_t *w;
	void *ret = &r;

	rec_init(&r);
	w = worker_new(task_record, &r, NULL);
	ck_assert_ptr_nonnull(w);
	/* worker_new() does not start anything. */
	ck_assert_int_eq(worker_is_running(w), 0);
	ck_assert_ptr_null(worker_parent(w));
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(atomic_load(&r.ran), 1);
	ck_assert_ptr_eq(r.self, w);
	ck_assert(!pthread_equal(r.thread, pthread_self()));
	ck_assert_int_eq(r.rc[0], 1);
	ck_assert_int_eq(r.rc[1], 0);
	ck_assert_int_eq(worker_is_running(w), 0);
	/* A second join of an ended worker returns at once. */
	CHECK_OK(worker_join(w));
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_create)
{
	struct rec r;
	worker_attr_t attr;
	worker_t *w;

	/* All-zero attributes are the defaults. */
	memset(&attr, 0, sizeof(attr));
	w = run_rec(&r, task_record, &attr);
	ck_assert_int_eq(atomic_load(&r.ran), 1);
	ck_assert_ptr_eq(r.self, w);
	ck_assert(!pthread_equal(r.thread, pthread_self()));
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

static void *
task_overlay(void *arg)
{
	struct rec *r = arg;

	r->self = worker_current();
	r->thread = pthread_self();
	pthread_getname_np(pthread_self(), r->name, sizeof(r->name));
	r->rc[0] = worker_is_main(NULL);
	r->rc[1] = worker_is_main(r->self);
	r->rc[2] = worker_is_running(r->self);
	r->rc[3] = worker_join(r->self);
	/* The root underneath runs on this thread too: joining it would
	 * deadlock just the same. */
	r->rc[4] = worker_join(r->peer);
	return (void *)5;
}

START_TEST(test_overlay)
{
	char before[16], after[16];
	struct rec r;
	worker_t *root, *w;
	void *ret = NULL;

	rec_init(&r);
	root = worker_current();
	ck_assert_ptr_nonnull(root);
	r.peer = root;
	w = worker_new(task_overlay, &r,
	    &(worker_attr_t){ .name = "overlay-name" });
	ck_assert_ptr_nonnull(w);
	pthread_getname_np(pthread_self(), before, sizeof(before));
	CHECK_OK(worker_start_overlay(w));
	pthread_getname_np(pthread_self(), after, sizeof(after));
	/* The main thread's name is the process's: an overlay keeps it. */
	ck_assert_str_eq(r.name, before);
	ck_assert_str_eq(after, before);
	ck_assert_ptr_eq(r.self, w);
	ck_assert(pthread_equal(r.thread, pthread_self()));
	ck_assert_int_eq(r.rc[0], 1);
	ck_assert_int_eq(r.rc[1], 1);
	ck_assert_int_eq(r.rc[2], 1);
	CHECK_RC(r.rc[3], EDEADLK);
	CHECK_RC(r.rc[4], EDEADLK);
	/* The previous current worker is back, and the overlay that ended
	 * is no longer "main". */
	ck_assert_ptr_eq(worker_current(), root);
	ck_assert_int_eq(worker_is_main(NULL), 1);
	ck_assert_int_eq(worker_is_main(root), 1);
	ck_assert_int_eq(worker_is_main(w), 0);
	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_eq(ret, (void *)5);
	CHECK_RC(worker_start_overlay(NULL), EINVAL);
	CHECK_RC(worker_start_overlay(root), EINVAL);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

/* An overlay on a thread that is not main is not main either. */
static void *
plain_overlay(void *arg)
{
	struct rec *r = arg;
	worker_t *root = worker_current(), *w;

	r->peer = root;
	w = worker_new(task_overlay, r, NULL);
	if (w == NULL)
		return NULL;
	r->rc[5] = worker_start_overlay(w);
	r->rc[6] = worker_current() == root && r->self == w;
	r->rc[7] = worker_is_main(w);
	worker_unref(w);
	return root;
}

START_TEST(test_overlay_thread)
{
	struct rec r;
	pthread_t t;
	void *root;

	rec_init(&r);
	ck_assert_int_eq(pthread_create(&t, NULL, plain_overlay, &r), 0);
	ck_assert_int_eq(pthread_join(t, &root), 0);
	ck_assert_ptr_nonnull(root);
	CHECK_OK(r.rc[5]);
	ck_assert(pthread_equal(r.thread, t));
	ck_assert_int_eq(r.rc[0], 0);
	ck_assert_int_eq(r.rc[1], 0);
	ck_assert_int_eq(r.rc[2], 1);
	CHECK_RC(r.rc[3], EDEADLK);
	CHECK_RC(r.rc[4], EDEADLK);
	ck_assert_int_eq(r.rc[6], 1);
	ck_assert_int_eq(r.rc[7], 0);
	rec_fini(&r);
}
END_TEST

START_TEST(test_restart)
{
	struct rec r;
	worker_listen_opts_t trans = { .transient = 1 };
	/* Lowest priority: when it posts, the other listeners have run. */
	worker_listen_opts_t last = { .priority = -1 };
	atomic_int nperm = 0, ntrans = 0;
	worker_t *w;

	rec_init(&r);
	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "PING", on_count, &nperm, NULL));
	CHECK_OK(worker_listen(w, "PING", on_count, &ntrans, &trans));
	CHECK_OK(worker_listen(w, "PING", on_post, &r.seen, &last));

	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "PING", NULL));
	sem_wait_ok(&r.seen, "the first PING");
	ck_assert_int_eq(atomic_load(&nperm), 1);
	ck_assert_int_eq(atomic_load(&ntrans), 1);
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));

	/* The second run keeps the permanent listeners only. */
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "PING", NULL));
	sem_wait_ok(&r.seen, "the PING of the second run");
	ck_assert_int_eq(atomic_load(&nperm), 2);
	ck_assert_int_eq(atomic_load(&ntrans), 1);
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(atomic_load(&ntrans), 1);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_restart_task)
{
	struct rec r;
	worker_t *w;
	void *ret = NULL;

	w = run_rec(&r, task_record, NULL);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(atomic_load(&r.ran), 2);
	ck_assert_ptr_eq(r.self, w);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_eq(ret, (void *)0x1234);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_start_busy)
{
	worker_t *w;

	w = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_RC(worker_start(w), EBUSY);
	CHECK_RC(worker_start_overlay(w), EBUSY);
	ck_assert_int_eq(worker_is_running(w), 1);
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	CHECK_RC(worker_start(NULL), EINVAL);
	CHECK_RC(worker_start(worker_current()), EINVAL);
	worker_unref(w);
}
END_TEST

START_TEST(test_result_return)
{
	struct rec r;
	worker_t *w;
	void *ret = NULL;

	w = run_rec(&r, task_record, NULL);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_eq(ret, (void *)0x1234);
	CHECK_OK(worker_result(w, NULL));
	/* On an ended worker wait_thread returns at once with the same. */
	ret = NULL;
	CHECK_OK(worker_wait_thread(w, &ret));
	ck_assert_ptr_eq(ret, (void *)0x1234);
	ret = &r;
	CHECK_RC(worker_result(NULL, &ret), EINVAL);
	ck_assert_ptr_eq(ret, &r);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

/* Stops w, whose task is inside a breakpoint, and checks that the task
 * never got past it: a stopped task has no result. */
static void
expect_stopped(worker_t *w, struct rec *r)
{
	void *ret = r;

	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(atomic_load(&r->after), 0);
}

/* The same for a worker created with task, which posts started before
 * it enters the breakpoint. */
static void
run_stopped(worker_fn task)
{
	struct rec r;
	worker_t *w;

	rec_init(&r);
	w = worker_create(task, &r, NULL);
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&r.started, "the task");
	expect_stopped(w, &r);
	worker_unref(w);
	rec_fini(&r);
}

START_TEST(test_result_stop)
{
	run_stopped(task_wait_never);
}
END_TEST

static void *
task_fail(void *arg)
{
	struct rec *r = arg;

	worker_fail(r->rc[0]);
	atomic_store(&r->after, 1);
	return (void *)1;
}

START_TEST(test_result_fail)
{
	worker_attr_t quiet = { .quiet = 1 };
	struct rec r;
	worker_t *w;
	void *ret = &r;

	rec_init(&r);
	r.rc[0] = 42;
	w = worker_create(task_fail, &r, &quiet);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	CHECK_RC(worker_result(w, &ret), 42);
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(atomic_load(&r.after), 0);

	/* worker_fail(0) is worker_exit(): a plain stop. */
	r.rc[0] = 0;
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join(w));
	ret = &r;
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(atomic_load(&r.after), 0);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_wait_thread_stopped)
{
	worker_t *w;
	void *ret = &w;

	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	/* Never started: nothing to wait for. */
	CHECK_OK(worker_wait_thread(w, &ret));
	ck_assert_ptr_null(ret);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_stop(w));
	ret = &w;
	CHECK_OK(worker_wait_thread(w, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_join(w));
	CHECK_RC(worker_wait_thread(NULL, NULL), EINVAL);
	worker_unref(w);
}
END_TEST

static int
on_fire_go(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	return worker_fire(ctx, "GO", NULL);
}

/* Asks the test's thread for GO, which only a caller that runs its loop
 * while it waits can answer, then fails with 7. */
static void *
task_fail_after_go(void *arg)
{
	struct rec *r = arg;

	r->rc[0] = worker_fire(r->peer, "BACK", NULL);
	r->rc[1] = worker_wait_event("GO", NULL, -1, NULL);
	worker_fail(7);
	atomic_store(&r->after, 1);
	return NULL;
}

START_TEST(test_wait_thread_fail)
{
	worker_attr_t quiet = { .quiet = 1 };
	struct rec r;
	worker_t *root, *w;
	void *ret = &r;

	rec_init(&r);
	root = worker_current();
	ck_assert_ptr_nonnull(root);
	r.peer = root;
	w = worker_new(task_fail_after_go, &r, &quiet);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(root, "BACK", on_fire_go, w, NULL));
	CHECK_OK(worker_start(w));
	CHECK_RC(worker_wait_thread(w, &ret), 7);
	ck_assert_ptr_null(ret);
	CHECK_OK(r.rc[0]);
	CHECK_OK(r.rc[1]);
	ck_assert_int_eq(atomic_load(&r.after), 0);
	CHECK_OK(worker_join(w));
	CHECK_RC(worker_result(w, NULL), 7);
	CHECK_OK(worker_unlisten(root, on_fire_go, w));
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

static void *
task_deadlock(void *arg)
{
	struct rec *r = arg;

	r->rc[0] = worker_join(worker_current());
	r->rc[1] = worker_wait_thread(worker_current(), NULL);
	return NULL;
}

START_TEST(test_deadlock)
{
	struct rec r;
	worker_t *w;

	w = run_rec(&r, task_deadlock, NULL);
	CHECK_RC(r.rc[0], EDEADLK);
	CHECK_RC(r.rc[1], EDEADLK);
	CHECK_RC(worker_join(worker_current()), EDEADLK);
	CHECK_RC(worker_wait_thread(worker_current(), NULL), EDEADLK);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_ref_unref)
{
	worker_attr_t attr = { .name = "kept" };
	worker_t *w;

	w = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_eq(worker_ref(w), w);
	ck_assert_ptr_eq(worker_ref(w), w);
	worker_unref(w);
	worker_unref(w);
	/* One reference is left: w must still be whole (valgrind and ASan
	 * would see a use after free). */
	ck_assert_str_eq(worker_name(w), "kept");
	CHECK_OK(worker_start(w));
	ck_assert_ptr_eq(worker_ref(w), w);
	worker_unref(w);
	ck_assert_int_eq(worker_is_running(w), 1);
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	ck_assert_ptr_null(worker_ref(NULL));
	worker_unref(NULL);
	worker_unref(w);
}
END_TEST

static void *
task_post_forever(void *arg)
{
	struct rec *r = arg;

	sem_post(&r->started);
	worker_wait_forever();
	atomic_store(&r->after, 1);
	return NULL;
}

/* Drops its only reference to the child it started: the running child
 * keeps itself alive. */
static void *
task_drop_child(void *arg)
{
	struct rec *r = arg;
	worker_attr_t attr = { .name = "orphan" };
	worker_t *c;

	c = worker_create(task_post_forever, r, &attr);
	if (c == NULL) {
		r->rc[0] = errno;
		sem_post(&r->started);
		return NULL;
	}
	worker_unref(c);
	worker_wait_forever();
	return NULL;
}

START_TEST(test_running_keeps_itself)
{
	struct rec r;
	worker_t *p, *c;

	rec_init(&r);
	p = worker_create(task_drop_child, &r, NULL);
	ck_assert_ptr_nonnull(p);
	sem_wait_ok(&r.started, "the orphan child");
	CHECK_OK(r.rc[0]);
	c = worker_find_child(p, "orphan");
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(worker_name(c), "orphan");
	ck_assert_int_eq(worker_is_running(c), 1);
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(worker_is_running(c), 0);
	ck_assert_int_eq(atomic_load(&r.after), 0);
	worker_unref(c);
	worker_unref(p);
	rec_fini(&r);
}
END_TEST

/* "worker-" and a serial number. */
static long
default_serial(const char *name)
{
	char *end;
	long n;

	if (name == NULL || strncmp(name, "worker-", 7) != 0)
		return -1;
	n = strtol(name + 7, &end, 10);
	return name[7] != '\0' && *end == '\0' ? n : -1;
}

START_TEST(test_name)
{
	char buf[32] = "copied-name";
	worker_attr_t attr = { .name = buf };
	worker_attr_t empty = { .name = "" };
	worker_t *w1, *w2, *w3;
	long n1, n2;

	w1 = worker_new(NULL, NULL, NULL);
	w2 = worker_new(NULL, NULL, NULL);
	w3 = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(w1);
	ck_assert_ptr_nonnull(w2);
	ck_assert_ptr_nonnull(w3);
	n1 = default_serial(worker_name(w1));
	n2 = default_serial(worker_name(w2));
	ck_assert_msg(n1 > 0, "default name %s", worker_name(w1));
	ck_assert_msg(n2 > 0, "default name %s", worker_name(w2));
	ck_assert_int_ne(n1, n2);
	/* The worker owns a copy: the caller's buffer may change. */
	strcpy(buf, "overwritten");
	ck_assert_str_eq(worker_name(w3), "copied-name");
	ck_assert_ptr_null(worker_name(NULL));
	ck_assert_str_eq(worker_name(worker_current()), "main");
	errno = 0;
	ck_assert_ptr_null(worker_new(NULL, NULL, &empty));
	ck_assert_int_eq(errno, EINVAL);
	worker_unref(w1);
	worker_unref(w2);
	worker_unref(w3);
}
END_TEST

static void *
task_thread_name(void *arg)
{
	struct rec *r = arg;

	r->rc[0] = pthread_getname_np(pthread_self(), r->name,
	    sizeof(r->name));
	return NULL;
}

START_TEST(test_thread_name)
{
	worker_attr_t sattr = { .name = "short-name" };
	worker_attr_t lattr = { .name = "a-very-long-worker-name" };
	struct rec rs, rl;
	worker_t *ws, *wl;

	rec_init(&rs);
	rec_init(&rl);
	ws = worker_create(task_thread_name, &rs, &sattr);
	wl = worker_create(task_thread_name, &rl, &lattr);
	ck_assert_ptr_nonnull(ws);
	ck_assert_ptr_nonnull(wl);
	CHECK_OK(worker_join(ws));
	CHECK_OK(worker_join(wl));
	CHECK_OK(rs.rc[0]);
	CHECK_OK(rl.rc[0]);
	ck_assert_str_eq(rs.name, "short-name");
	/* The kernel keeps 15 bytes and the terminator. */
	ck_assert_str_eq(rl.name, "a-very-long-wor");
	/* The worker itself keeps the whole name. */
	ck_assert_str_eq(worker_name(wl), "a-very-long-worker-name");
	worker_unref(ws);
	worker_unref(wl);
	rec_fini(&rs);
	rec_fini(&rl);
}
END_TEST

static void *
task_running(void *arg)
{
	struct rec *r = arg;

	r->rc[0] = worker_is_running(worker_current());
	sem_post(&r->started);
	r->rc[1] = worker_wait_event("GO", NULL, -1, NULL);
	return NULL;
}

START_TEST(test_is_running)
{
	struct rec r;
	worker_t *w;

	rec_init(&r);
	w = worker_new(task_running, &r, NULL);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_start(w));
	sem_wait_ok(&r.started, "the task");
	ck_assert_int_eq(worker_is_running(w), 1);
	CHECK_OK(worker_fire(w, "GO", NULL));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(worker_is_running(w), 0);
	ck_assert_int_eq(r.rc[0], 1);
	CHECK_OK(r.rc[1]);
	ck_assert_int_eq(worker_is_running(NULL), 0);
	/* A root worker counts as running. */
	ck_assert_int_eq(worker_is_running(worker_current()), 1);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

START_TEST(test_fn_null_waits)
{
	struct rec r;
	worker_t *w;
	void *ret = &r;
	int i;

	rec_init(&r);
	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "PING", on_post, &r.seen, NULL));
	CHECK_OK(worker_start(w));
	/* Each answer shows the worker is still in its loop, not ended. */
	for (i = 0; i < 3; i++) {
		CHECK_OK(worker_fire(w, "PING", NULL));
		sem_wait_ok(&r.seen, "the PING answer");
		ck_assert_int_eq(worker_is_running(w), 1);
	}
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(worker_is_running(w), 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

static void *
task_sleep_long(void *arg)
{
	struct rec *r = arg;

	sem_post(&r->started);
	r->rc[0] = worker_sleep(3600);
	atomic_store(&r->after, 1);
	return (void *)1;
}

START_TEST(test_stop_sleeping)
{
	/* The join is bounded by the TCase timeout, far below the hour the
	 * task sleeps. */
	run_stopped(task_sleep_long);
}
END_TEST

START_TEST(test_stop_paused)
{
	struct rec r;
	worker_t *w;

	rec_init(&r);
	w = worker_new(task_wait_never, &r, NULL);
	ck_assert_ptr_nonnull(w);
	/* Listeners of PAUSE_THREAD run just before the worker holds. */
	CHECK_OK(worker_listen(w, WORKER_PAUSE_THREAD, on_post, &r.seen,
	    NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&r.started, "the task");
	CHECK_OK(worker_pause(w));
	sem_wait_ok(&r.seen, "PAUSE_THREAD");
	expect_stopped(w, &r);
	ck_assert_int_eq(worker_is_running(w), 0);
	worker_unref(w);
	rec_fini(&r);
}
END_TEST

/* What a thread that libworker did not start saw. */
struct plain {
	sem_t ready;
	worker_t *me;		/* its root worker, published by ready */
	worker_t *parent;
	worker_t *source;	/* of the HELLO it got */
	void *data;
	int sleep_rc, is_main, is_main_null, same, timeout_rc;
	int listen_rc, wait_rc;
	char name[32];
};

static int
on_hello(const worker_event_t *ev, void *ctx)
{
	struct plain *p = ctx;

	p->source = ev->source;
	return 0;
}

static void *
plain_waits(void *arg)
{
	struct plain *p = arg;
	worker_t *me;

	p->sleep_rc = worker_sleep(0.01);
	me = worker_current();
	if (me == NULL) {
		sem_post(&p->ready);
		return NULL;
	}
	p->is_main = worker_is_main(me);
	p->is_main_null = worker_is_main(NULL);
	p->parent = worker_parent(me);
	snprintf(p->name, sizeof(p->name), "%s", worker_name(me));
	p->timeout_rc = worker_wait_event("NEVER", NULL, 0.01, NULL);
	p->same = worker_current() == me;
	p->listen_rc = worker_listen(me, "HELLO", on_hello, p, NULL);
	p->me = me;
	/* The test fires HELLO only after this post, so the root exists
	 * and listens by then. */
	sem_post(&p->ready);
	p->wait_rc = worker_wait_event("HELLO", NULL, wait_limit(),
	    &p->data);
	return NULL;
}

START_TEST(test_plain_thread)
{
	struct plain p;
	pthread_t t;

	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(sem_init(&p.ready, 0, 0), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, plain_waits, &p), 0);
	sem_wait_ok(&p.ready, "the plain thread's root worker");
	ck_assert_ptr_nonnull(p.me);
	ck_assert_ptr_ne(p.me, worker_current());
	CHECK_OK(worker_fire(p.me, "HELLO", (void *)0x77));
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	CHECK_OK(p.sleep_rc);
	ck_assert_int_eq(p.is_main, 0);
	ck_assert_int_eq(p.is_main_null, 0);
	ck_assert_ptr_null(p.parent);
	ck_assert_msg(strncmp(p.name, "thread-", 7) == 0, "root name %s",
	    p.name);
	CHECK_RC(p.timeout_rc, ETIMEDOUT);
	ck_assert_int_eq(p.same, 1);
	CHECK_OK(p.listen_rc);
	CHECK_OK(p.wait_rc);
	ck_assert_ptr_eq(p.data, (void *)0x77);
	ck_assert_ptr_eq(p.source, worker_current());
	sem_destroy(&p.ready);
}
END_TEST

/* pyThreadWorker's counter: a task that counts between short sleeps, and a
 * "reset" listener that must keep working while the worker is paused. */
struct counter {
	atomic_int count;
	atomic_int resets;
	atomic_int probed;	/* count as the last "probe" saw it */
	sem_t tick;		/* one post per count++ */
	sem_t paused;		/* PAUSE_THREAD reached the worker */
	sem_t reset;		/* the reset listener ran */
	sem_t probe;		/* the probe listener ran */
};

static void *
task_counter(void *arg)
{
	struct counter *c = arg;

	for (;;) {
		worker_sleep(0.002);
		atomic_fetch_add(&c->count, 1);
		sem_post(&c->tick);
	}
	return NULL;
}

static int
on_reset(const worker_event_t *ev, void *ctx)
{
	struct counter *c = ctx;

	atomic_store(&c->count, (int)(intptr_t)ev->data);
	atomic_fetch_add(&c->resets, 1);
	sem_post(&c->reset);
	return 0;
}

static int
on_probe(const worker_event_t *ev, void *ctx)
{
	struct counter *c = ctx;

	(void)ev;
	atomic_store(&c->probed, atomic_load(&c->count));
	sem_post(&c->probe);
	return 0;
}

START_TEST(test_counter)
{
	worker_attr_t attr = { .name = "counter" };
	struct counter c;
	worker_t *w;
	int i, n;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sem_init(&c.tick, 0, 0), 0);
	ck_assert_int_eq(sem_init(&c.paused, 0, 0), 0);
	ck_assert_int_eq(sem_init(&c.reset, 0, 0), 0);
	ck_assert_int_eq(sem_init(&c.probe, 0, 0), 0);
	w = worker_new(task_counter, &c, &attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "reset", on_reset, &c, NULL));
	CHECK_OK(worker_listen(w, "probe", on_probe, &c, NULL));
	CHECK_OK(worker_listen(w, WORKER_PAUSE_THREAD, on_post, &c.paused,
	    NULL));
	CHECK_OK(worker_start(w));
	for (i = 0; i < 3; i++)
		sem_wait_ok(&c.tick, "a tick");

	CHECK_OK(worker_pause(w));
	sem_wait_ok(&c.paused, "PAUSE_THREAD");
	/* The task is held inside its worker_sleep now, so every tick it
	 * made is posted; drop them so a new one shows it counted. */
	while (sem_trywait(&c.tick) == 0)
		;
	CHECK_OK(worker_fire(w, "reset", (void *)0));
	sem_wait_ok(&c.reset, "the reset listener");
	ck_assert_int_eq(atomic_load(&c.resets), 1);
	ck_assert_int_eq(atomic_load(&c.count), 0);
	/* Time a running counter would use to count many times over. */
	nap(0.05);
	CHECK_OK(worker_fire(w, "probe", NULL));
	sem_wait_ok(&c.probe, "the probe listener");
	ck_assert_int_eq(atomic_load(&c.probed), 0);
	ck_assert_int_eq(atomic_load(&c.count), 0);
	ck_assert_int_eq(sem_trywait(&c.tick), -1);

	CHECK_OK(worker_resume(w));
	for (i = 0; i < 3; i++)
		sem_wait_ok(&c.tick, "a tick after the resume");
	ck_assert_int_ge(atomic_load(&c.count), 3);

	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	n = atomic_load(&c.count);
	nap(0.02);
	ck_assert_int_eq(atomic_load(&c.count), n);
	ck_assert_int_eq(atomic_load(&c.resets), 1);
	worker_unref(w);
	sem_destroy(&c.tick);
	sem_destroy(&c.paused);
	sem_destroy(&c.reset);
	sem_destroy(&c.probe);
}
END_TEST

/* ---- worker_arg ------------------------------------------------------ */

static void *
task_own_arg(void *arg)
{
	void **seen = arg;

	*seen = worker_arg(worker_current());
	return NULL;
}

START_TEST(test_arg)
{
	void *seen = NULL;
	int tok;
	worker_t *w, *c, *z, *a;
	void *ret = NULL;

	/* From worker_new() on, before and after the run, and in it. */
	w = worker_new(task_own_arg, &seen, NULL);
	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_eq(worker_arg(w), &seen);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join(w));
	ck_assert_ptr_eq(seen, &seen);
	ck_assert_ptr_eq(worker_arg(w), &seen);

	c = worker_create(NULL, &tok, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_eq(worker_arg(c), &tok);
	stop_join(c);

	z = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_null(worker_arg(z));

	a = worker_async(task_own_arg, &seen);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(worker_arg(a), &seen);
	CHECK_OK(worker_async_get(a, &ret));

	ck_assert_ptr_null(worker_arg(NULL));
	/* A root worker was given no arg. */
	ck_assert_ptr_null(worker_arg(worker_current()));
	worker_unref(a);
	worker_unref(z);
	worker_unref(c);
	worker_unref(w);
}
END_TEST

/* ---- Joining an ancestor --------------------------------------------- */

/*
 * A parent waits for its children when it ends, so a worker that joins
 * its parent or grandparent would wait forever: EDEADLK at once.  A
 * sibling is no ancestor: joining it waits for its end as usual.
 */
struct lineage {
	worker_t *sibling;	/* set before the child is made */
	int child_join_parent;
	int child_join_sibling;
	int child_join_grandchild;
	int child_made;		/* errno of making the grandchild, or 0 */
	int gc_join_parent;
	int gc_join_grandparent;
	int parent_made;	/* errno of making the children, or 0 */
	int parent_wait;
};

static void *
task_grandchild(void *arg)
{
	struct lineage *l = arg;
	worker_t *parent = worker_parent(worker_current());

	l->gc_join_parent = worker_join(parent);
	l->gc_join_grandparent = worker_join(worker_parent(parent));
	return NULL;
}

static void *
task_lineage_child(void *arg)
{
	struct lineage *l = arg;
	worker_t *g;

	l->child_join_parent = worker_join(worker_parent(worker_current()));
	l->child_join_sibling = worker_join(l->sibling);
	g = worker_create(task_grandchild, l, NULL);
	if (g == NULL) {
		l->child_made = errno;
		return NULL;
	}
	l->child_join_grandchild = worker_join(g);
	worker_unref(g);
	return NULL;
}

static void *
task_return_arg(void *arg)
{
	return arg;
}

static void *
task_lineage_parent(void *arg)
{
	struct lineage *l = arg;
	worker_t *c;

	l->sibling = worker_create(task_return_arg, NULL, NULL);
	if (l->sibling == NULL) {
		l->parent_made = errno;
		return NULL;
	}
	c = worker_create(task_lineage_child, l, NULL);
	if (c == NULL) {
		l->parent_made = errno;
		worker_unref(l->sibling);
		return NULL;
	}
	l->parent_wait = worker_wait_thread(c, NULL);
	worker_unref(c);
	worker_unref(l->sibling);
	return NULL;
}

START_TEST(test_deadlock_ancestors)
{
	struct lineage l;
	worker_t *p;

	memset(&l, -1, sizeof(l));
	l.sibling = NULL;
	l.child_made = l.parent_made = 0;
	p = worker_create(task_lineage_parent, &l, NULL);
	ck_assert_ptr_nonnull(p);
	/* A join of an ancestor that blocked would hang here. */
	CHECK_OK(worker_join(p));
	CHECK_OK(l.parent_made);
	CHECK_OK(l.child_made);
	CHECK_OK(l.parent_wait);
	CHECK_RC(l.child_join_parent, EDEADLK);
	CHECK_RC(l.gc_join_parent, EDEADLK);
	CHECK_RC(l.gc_join_grandparent, EDEADLK);
	CHECK_OK(l.child_join_sibling);
	CHECK_OK(l.child_join_grandchild);
	worker_unref(p);
}
END_TEST

/*
 * An overlay's end races a restart on another thread (issue L5).  Main
 * runs w as an overlay again and again; as each overlay begins, it tells
 * a helper thread, which joins w, so that it wakes as the overlay ends,
 * and restarts w on a thread of its own at once.
 * After each overlay, main's current worker is its root again.  Before
 * the fix the overlay restored main's worker from w's field after w was
 * idle, where the restart on the other thread had already written its
 * own: main's root could be lost.  The window is a few instructions
 * wide, so the test widens it where the system lets it: all threads on
 * one CPU, and main at SCHED_IDLE, so that the helper and the thread it
 * starts, woken by the overlay's end, run before main goes on.  (Both
 * only help to lose the race; TSan reports it either way.)
 */
#define N_OVERLAYS	2000

struct restarter {
	worker_t *w;
	sem_t began;		/* an overlay runs on main */
	atomic_int done;
	int starts, errs, join_errs;
};

/* On main, as an overlay: tells the helper, which then waits for the
 * overlay's end to restart w; on the helper's threads: nothing. */
static void *
task_overlay_began(void *arg)
{
	struct restarter *r = arg;

	if (worker_is_main(NULL))
		sem_post(&r->began);
	return NULL;
}

static void *
restarter_main(void *arg)
{
	struct restarter *r = arg;
	int rc;

	for (;;) {
		sem_wait_intr(&r->began);
		if (atomic_load(&r->done))
			break;
		/* Wakes as the overlay turns idle, and restarts w at once. */
		if (worker_join(r->w) != 0)
			r->join_errs++;
		if ((rc = worker_start(r->w)) == 0)
			r->starts++;
		else if (rc != EBUSY)
			r->errs++;
		if (worker_join(r->w) != 0)
			r->join_errs++;
	}
	return NULL;
}

START_TEST(test_overlay_restart_race)
{
	struct sched_param sp = { .sched_priority = 0 };
	worker_t *root = worker_current(), *cur = root;
	int overlays = 0, rc;
	struct restarter r;
	cpu_set_t all, one;
	pthread_t th;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(sem_init(&r.began, 0, 0), 0);
	r.w = worker_new(task_overlay_began, &r, NULL);
	ck_assert_ptr_nonnull(r.w);
	/* Best effort: the helper and its threads inherit the CPU. */
	ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof(all),
	    &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	ck_assert_int_eq(pthread_create(&th, NULL, restarter_main, &r), 0);
	(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	while (overlays < N_OVERLAYS) {
		rc = worker_start_overlay(r.w);
		if (rc == EBUSY) {
			/* The helper's run: wait for it. */
			CHECK_OK(worker_join(r.w));
			continue;
		}
		CHECK_OK(rc);
		overlays++;
		cur = worker_current();
		if (cur != root)
			break;
	}
	atomic_store(&r.done, 1);
	sem_post(&r.began);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	(void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
	ck_assert_msg(cur == root, "after overlay %d main's worker is %p "
	    "(%s), not its root %p", overlays, (void *)cur, worker_name(cur),
	    (void *)root);
	CHECK_OK(worker_join(r.w));
	ck_assert_int_eq(r.errs, 0);
	ck_assert_int_eq(r.join_errs, 0);
	ck_assert_int_eq(worker_is_main(NULL), 1);
	worker_unref(r.w);
	sem_destroy(&r.began);
}
END_TEST

/* worker_join_timeout(): ETIMEDOUT while w runs, 0 once it ended. */
static void *
until_end(void *arg)
{
	(void)arg;
	worker_wait_event("END", NULL, -1, NULL);
	return NULL;
}

static void *
join_self(void *arg)
{
	*(int *)arg = worker_join_timeout(worker_current(), 1);
	return NULL;
}

START_TEST(test_join_timeout)
{
	worker_t *w = worker_create(until_end, NULL, NULL);
	worker_t *idle = worker_new(NULL, NULL, NULL);
	int self_rc = -1;
	worker_t *s;

	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(idle);
	CHECK_RC(worker_join_timeout(w, 0), ETIMEDOUT);
	CHECK_RC(worker_join_timeout(w, 0.02), ETIMEDOUT);
	ck_assert_int_eq(worker_is_running(w), 1);
	CHECK_RC(worker_join_timeout(NULL, 1), EINVAL);
	CHECK_RC(worker_join_timeout(w, NAN), EINVAL);
	/* A worker never started has nothing to wait for. */
	CHECK_OK(worker_join_timeout(idle, 0));
	CHECK_OK(worker_fire(w, "END", NULL));
	CHECK_OK(worker_join_timeout(w, wait_limit()));
	ck_assert_int_eq(worker_is_running(w), 0);
	/* After the end, at once; a negative timeout is no limit. */
	CHECK_OK(worker_join_timeout(w, 0));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "END", NULL));
	CHECK_OK(worker_join_timeout(w, -1));

	s = worker_create(join_self, &self_rc, NULL);
	ck_assert_ptr_nonnull(s);
	CHECK_OK(worker_join(s));
	ck_assert_int_eq(self_rc, EDEADLK);
	worker_unref(s);
	worker_unref(idle);
	worker_unref(w);
}
END_TEST

Suite *
suite_worker(void)
{
	Suite *s = suite_create("worker");

	tcase_add_test(test_case(s, "join_timeout"), test_join_timeout);
	tcase_add_test(test_case(s, "new_start"), test_new_start);
	tcase_add_test(test_case(s, "create"), test_create);
	tcase_add_test(test_case(s, "overlay"), test_overlay);
	tcase_add_test(test_case(s, "overlay_thread"), test_overlay_thread);
	tcase_add_test(test_case(s, "overlay_restart_race"),
	    test_overlay_restart_race);
	tcase_add_test(test_case(s, "restart"), test_restart);
	tcase_add_test(test_case(s, "restart_task"), test_restart_task);
	tcase_add_test(test_case(s, "start_busy"), test_start_busy);
	tcase_add_test(test_case(s, "result_return"), test_result_return);
	tcase_add_test(test_case(s, "result_stop"), test_result_stop);
	tcase_add_test(test_case(s, "result_fail"), test_result_fail);
	tcase_add_test(test_case(s, "wait_thread_stopped"),
	    test_wait_thread_stopped);
	tcase_add_test(test_case(s, "wait_thread_fail"),
	    test_wait_thread_fail);
	tcase_add_test(test_case(s, "deadlock"), test_deadlock);
	tcase_add_test(test_case(s, "ref_unref"), test_ref_unref);
	tcase_add_test(test_case(s, "running_keeps_itself"),
	    test_running_keeps_itself);
	tcase_add_test(test_case(s, "name"), test_name);
	tcase_add_test(test_case(s, "thread_name"), test_thread_name);
	tcase_add_test(test_case(s, "is_running"), test_is_running);
	tcase_add_test(test_case(s, "fn_null_waits"), test_fn_null_waits);
	tcase_add_test(test_case(s, "stop_sleeping"), test_stop_sleeping);
	tcase_add_test(test_case(s, "stop_paused"), test_stop_paused);
	tcase_add_test(test_case(s, "plain_thread"), test_plain_thread);
	tcase_add_test(test_case(s, "counter"), test_counter);
	tcase_add_test(test_case(s, "arg"), test_arg);
	tcase_add_test(test_case(s, "deadlock_ancestors"),
	    test_deadlock_ancestors);
	return s;
}
