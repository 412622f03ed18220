/*
 * test_async.c - pyThreadWorker's Async, Defer and Channel in C:
 * worker_async, worker_async_get and worker_await (values, fail codes,
 * waiting from main and from workers, the caller's loop running while
 * it waits); deferred values (settled before and after the wait, from
 * workers, plain threads and timers, many waiters, timeouts); channels
 * (many subscribers, unsubscribing, subscribers that end or are freed,
 * freeing a channel with live subscribers, worker_channel_pub_ex's owned
 * payload).
 *
 * Workers only record what they saw; the test's own thread asserts after
 * joining them.  Steps are ordered with semaphores, events and timers:
 * where a test needs a worker to be inside a wait, it schedules a timer
 * with delay 0 on that worker just before the wait, and the timer's
 * callback, which can only run at a breakpoint, posts a semaphore.
 */
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#define TASK_SLEEP	0.05	/* seconds an async task sleeps */
#define SHORT		0.05	/* a timeout that must expire */
#define N_WAITERS	5	/* workers in one worker_defer_get */
#define N_SUBS		10	/* subscribers of one channel */
#define N_CHURN		200	/* subscribers freed while publishing */

/* Tells the test that the worker calling it is at a breakpoint: with
 * delay 0 the callback runs at the first one, which is the wait that the
 * caller enters next. */
static int
post_when_waiting(sem_t *s)
{
	return worker_later(worker_current(), post_cb, s, 0, NULL);
}

/* ---- Async ---------------------------------------------------------- */

static void *
sleep_value_task(void *arg)
{
	worker_sleep(TASK_SLEEP);
	return arg;
}

static void *
fail_task(void *arg)
{
	worker_fail((int)(intptr_t)arg);
	return arg;
}

static void *
forever_task(void *arg)
{
	(void)arg;
	worker_wait_forever();
	return arg;
}

/* Waits, without a loop, for a semaphore that someone posts. */
struct gate {
	sem_t open;
	sem_t entered;		/* posted when the task has started */
};

static void
gate_init(struct gate *g)
{
	ck_assert_int_eq(sem_init(&g->open, 0, 0), 0);
	ck_assert_int_eq(sem_init(&g->entered, 0, 0), 0);
}

static void
gate_fini(struct gate *g)
{
	sem_destroy(&g->open);
	sem_destroy(&g->entered);
}

static void *
gate_task(void *arg)
{
	struct gate *g = arg;

	sem_post(&g->entered);
	return sem_wait_bounded(&g->open) == 0 ? g : NULL;
}

/* The parent waits for its child: the task sleeps, then returns. */
START_TEST(async_get_waits)
{
	int token;
	void *ret = NULL;
	worker_t *a;
	double t0, elapsed;
	int rc;

	t0 = now();
	a = worker_async(sleep_value_task, &token);
	ck_assert_ptr_nonnull(a);
	rc = worker_async_get(a, &ret);
	elapsed = now() - t0;
	CHECK_OK(rc);
	ck_assert_ptr_eq(ret, &token);
	ck_assert_msg(elapsed >= TASK_SLEEP, "returned after %.6f s, before "
	    "the task could end", elapsed);
	ck_assert_int_eq(worker_is_running(a), 0);
	/* Again: it remembers. */
	ret = NULL;
	CHECK_OK(worker_async_get(a, &ret));
	ck_assert_ptr_eq(ret, &token);
	CHECK_OK(worker_async_get(a, NULL));
	CHECK_OK(worker_join(a));
	worker_unref(a);
}
END_TEST

static void *
post_then_return(void *arg)
{
	struct gate *g = arg;

	sem_post(&g->entered);
	return g;
}

/* The child finished before get: get returns at once with the value. */
START_TEST(async_get_after_end)
{
	struct gate g;
	void *ret = NULL;
	worker_t *a, *b;
	double t0, elapsed;

	gate_init(&g);
	a = worker_async(post_then_return, &g);
	ck_assert_ptr_nonnull(a);
	sem_wait_ok(&g.entered, "the task's post");
	/* It is returning, perhaps still ending. */
	CHECK_OK(worker_async_get(a, &ret));
	ck_assert_ptr_eq(ret, &g);

	b = worker_async(post_then_return, &g);
	ck_assert_ptr_nonnull(b);
	CHECK_OK(worker_join(b));
	ret = NULL;
	t0 = now();
	CHECK_OK(worker_async_get(b, &ret));
	elapsed = now() - t0;
	ck_assert_ptr_eq(ret, &g);
	ck_assert_msg(elapsed < time_slack(), "an ended task took %.6f s",
	    elapsed);
	CHECK_OK(worker_join(a));
	worker_unref(a);
	worker_unref(b);
	gate_fini(&g);
}
END_TEST

/* worker_fail in the task: get returns the code and *ret is NULL; an
 * async worker is quiet, so nothing reaches stderr. */
START_TEST(async_fail_propagates)
{
	void *ret = &ret;
	worker_t *a;
	FILE *err;
	int saved;
	long written;

	err = tmpfile();
	ck_assert_ptr_nonnull(err);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(err), STDERR_FILENO), 0);

	a = worker_async(fail_task, (void *)(intptr_t)42);
	if (a != NULL) {
		CHECK_RC(worker_async_get(a, &ret), 42);
		CHECK_OK(worker_join(a));
	}

	fflush(stderr);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(ret);
	CHECK_RC(worker_result(a, NULL), 42);
	fseek(err, 0, SEEK_END);
	written = ftell(err);
	fclose(err);
	ck_assert_msg(written == 0, "the async worker wrote %ld bytes on "
	    "stderr", written);
	worker_unref(a);
}
END_TEST

START_TEST(async_stopped)
{
	void *ret = &ret;
	worker_t *a = worker_async(forever_task, NULL);

	ck_assert_ptr_nonnull(a);
	CHECK_OK(worker_stop(a));
	CHECK_OK(worker_async_get(a, &ret));
	ck_assert_ptr_null(ret);
	CHECK_OK(worker_join(a));
	worker_unref(a);
}
END_TEST

START_TEST(await_on_main)
{
	int token;
	void *ret = NULL;

	CHECK_OK(worker_await(sleep_value_task, &token, &ret));
	ck_assert_ptr_eq(ret, &token);
	ret = &ret;
	CHECK_RC(worker_await(fail_task, (void *)(intptr_t)EPIPE, &ret),
	    EPIPE);
	ck_assert_ptr_null(ret);
	CHECK_OK(worker_await(sleep_value_task, &token, NULL));
}
END_TEST

/* The caller's loop runs while it waits: a timer on main opens the gate
 * the task waits at, so without the loop this would deadlock. */
START_TEST(await_runs_callers_loop)
{
	struct gate g;
	void *ret = NULL;
	worker_t *a;

	gate_init(&g);
	CHECK_OK(worker_later(worker_current(), post_cb, &g.open, 0.01,
	    NULL));
	CHECK_OK(worker_await(gate_task, &g, &ret));
	ck_assert_ptr_eq(ret, &g);

	/* The same through worker_async_get. */
	a = worker_async(gate_task, &g);
	ck_assert_ptr_nonnull(a);
	CHECK_OK(worker_later(worker_current(), post_cb, &g.open, 0.01,
	    NULL));
	ret = NULL;
	CHECK_OK(worker_async_get(a, &ret));
	ck_assert_ptr_eq(ret, &g);
	CHECK_OK(worker_join(a));
	worker_unref(a);
	gate_fini(&g);
}
END_TEST

struct from_worker {
	struct gate g;
	int token;
	int rc[4];
	void *ret[4];
	worker_t *parent;	/* of the async, seen from the worker */
	int daemon, running, child_found;
	worker_t *async;
};

static void *
await_task(void *arg)
{
	struct from_worker *f = arg;
	worker_t *self = worker_current();
	worker_t *a, *found;

	f->rc[0] = worker_await(sleep_value_task, &f->token, &f->ret[0]);
	f->rc[1] = worker_await(fail_task, (void *)(intptr_t)42, &f->ret[1]);
	/* Its own timer opens the gate while it awaits. */
	f->rc[2] = worker_later(self, post_cb, &f->g.open, 0.01, NULL);
	f->rc[3] = worker_await(gate_task, &f->g, &f->ret[2]);

	/* An async made inside a worker is still parentless. */
	a = worker_async(gate_task, &f->g);
	if (a == NULL)
		return NULL;
	f->async = a;
	f->parent = worker_parent(a);
	f->daemon = worker_is_daemon(a);
	f->running = worker_is_running(a);
	found = worker_find_child(self, worker_name(a));
	f->child_found = found != NULL;
	worker_unref(found);
	sem_post(&f->g.open);
	(void)worker_async_get(a, &f->ret[3]);
	return NULL;
}

START_TEST(await_in_worker)
{
	struct from_worker f;
	worker_t *w;

	memset(&f, 0, sizeof(f));
	f.parent = worker_current();
	gate_init(&f.g);
	w = worker_create(await_task, &f, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));

	CHECK_OK(f.rc[0]);
	ck_assert_ptr_eq(f.ret[0], &f.token);
	CHECK_RC(f.rc[1], 42);
	ck_assert_ptr_null(f.ret[1]);
	CHECK_OK(f.rc[2]);
	CHECK_OK(f.rc[3]);
	ck_assert_ptr_eq(f.ret[2], &f.g);
	ck_assert_ptr_nonnull(f.async);
	ck_assert_ptr_null(f.parent);
	ck_assert_int_eq(f.daemon, 1);
	ck_assert_int_eq(f.running, 1);
	ck_assert_int_eq(f.child_found, 0);
	ck_assert_ptr_eq(f.ret[3], &f.g);
	CHECK_OK(worker_join(f.async));
	worker_unref(f.async);
	worker_unref(w);
	gate_fini(&f.g);
}
END_TEST

START_TEST(async_parentless_daemon)
{
	struct gate g;
	worker_t *a;

	gate_init(&g);
	a = worker_async(gate_task, &g);
	ck_assert_ptr_nonnull(a);
	sem_wait_ok(&g.entered, "the task");
	ck_assert_ptr_null(worker_parent(a));
	ck_assert_int_eq(worker_is_daemon(a), 1);
	ck_assert_int_eq(worker_is_running(a), 1);
	sem_post(&g.open);
	CHECK_OK(worker_async_get(a, NULL));
	CHECK_OK(worker_join(a));
	worker_unref(a);
	gate_fini(&g);
}
END_TEST

static void *
get_self_task(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)worker_async_get(worker_current(), NULL);
}

START_TEST(async_errors)
{
	void *ret = &ret;
	worker_t *a;

	errno = 0;
	ck_assert_ptr_null(worker_async(NULL, NULL));
	CHECK_RC(errno, EINVAL);
	CHECK_RC(worker_async_get(NULL, &ret), EINVAL);
	CHECK_RC(worker_await(NULL, NULL, &ret), EINVAL);
	ck_assert_ptr_eq(ret, &ret);

	/* A task waiting for itself. */
	a = worker_async(get_self_task, NULL);
	ck_assert_ptr_nonnull(a);
	CHECK_OK(worker_async_get(a, &ret));
	CHECK_RC((int)(intptr_t)ret, EDEADLK);
	CHECK_OK(worker_join(a));
	worker_unref(a);
}
END_TEST

/* A stopped root worker's get returns ECANCELED; the task goes on and a
 * second get waits for it. */
START_TEST(async_get_cancelled)
{
	struct gate g;
	void *ret = &ret;
	worker_t *a;

	gate_init(&g);
	a = worker_async(gate_task, &g);
	ck_assert_ptr_nonnull(a);
	CHECK_OK(worker_stop(worker_current()));
	CHECK_RC(worker_async_get(a, &ret), ECANCELED);
	ck_assert_ptr_eq(ret, &ret);
	sem_post(&g.open);
	CHECK_OK(worker_async_get(a, &ret));
	ck_assert_ptr_eq(ret, &g);
	CHECK_OK(worker_join(a));
	worker_unref(a);
	gate_fini(&g);
}
END_TEST

/* ---- Defer ---------------------------------------------------------- */

START_TEST(defer_resolve_then_get)
{
	worker_defer_t *d = worker_defer_new();
	int token;
	void *v = NULL;

	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_defer_resolve(d, &token));
	CHECK_OK(worker_defer_get(d, -1, &v));
	ck_assert_ptr_eq(v, &token);
	/* Any number of times, and without blocking. */
	v = NULL;
	CHECK_OK(worker_defer_get(d, 0, &v));
	ck_assert_ptr_eq(v, &token);
	CHECK_OK(worker_defer_get(d, 0, NULL));
	worker_defer_free(d);

	/* NULL is a value like any other. */
	d = worker_defer_new();
	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_defer_resolve(d, NULL));
	v = &v;
	CHECK_OK(worker_defer_get(d, 0, &v));
	ck_assert_ptr_null(v);
	worker_defer_free(d);
}
END_TEST

START_TEST(defer_reject_then_get)
{
	worker_defer_t *d = worker_defer_new();
	void *v = &v;

	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_defer_reject(d, EPIPE));
	CHECK_RC(worker_defer_get(d, -1, &v), EPIPE);
	ck_assert_ptr_eq(v, &v);
	CHECK_RC(worker_defer_get(d, 0, &v), EPIPE);
	ck_assert_ptr_eq(v, &v);
	worker_defer_free(d);
}
END_TEST

START_TEST(defer_settles_once)
{
	worker_defer_t *d = worker_defer_new();
	int a, b;
	void *v = NULL;

	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_defer_resolve(d, &a));
	CHECK_RC(worker_defer_resolve(d, &b), EALREADY);
	CHECK_RC(worker_defer_reject(d, EPIPE), EALREADY);
	CHECK_OK(worker_defer_get(d, 0, &v));
	ck_assert_ptr_eq(v, &a);
	worker_defer_free(d);

	d = worker_defer_new();
	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_defer_reject(d, EPIPE));
	CHECK_RC(worker_defer_reject(d, EIO), EALREADY);
	CHECK_RC(worker_defer_resolve(d, &a), EALREADY);
	CHECK_RC(worker_defer_get(d, 0, &v), EPIPE);
	worker_defer_free(d);
}
END_TEST

START_TEST(defer_errors)
{
	worker_defer_t *d = worker_defer_new();
	void *v = &v;

	ck_assert_ptr_nonnull(d);
	CHECK_RC(worker_defer_resolve(NULL, &v), EINVAL);
	CHECK_RC(worker_defer_reject(NULL, EPIPE), EINVAL);
	CHECK_RC(worker_defer_reject(d, 0), EINVAL);
	CHECK_RC(worker_defer_get(NULL, 0, &v), EINVAL);
	CHECK_RC(worker_defer_get(d, NAN, &v), EINVAL);
	ck_assert_ptr_eq(v, &v);
	/* The bad reject did not settle it. */
	CHECK_RC(worker_defer_get(d, 0, &v), ETIMEDOUT);
	CHECK_OK(worker_defer_resolve(d, NULL));
	worker_defer_free(d);
	worker_defer_free(NULL);
}
END_TEST

START_TEST(defer_timeout)
{
	worker_defer_t *d = worker_defer_new();
	void *v = &v;
	double t0, elapsed;
	int rc;

	ck_assert_ptr_nonnull(d);
	t0 = now();
	rc = worker_defer_get(d, 0, &v);
	elapsed = now() - t0;
	CHECK_RC(rc, ETIMEDOUT);
	ck_assert_msg(elapsed < time_slack(), "timeout 0 blocked %.6f s",
	    elapsed);

	t0 = now();
	rc = worker_defer_get(d, SHORT, &v);
	elapsed = now() - t0;
	CHECK_RC(rc, ETIMEDOUT);
	assert_on_time(elapsed, SHORT, 1e-6);
	ck_assert_ptr_eq(v, &v);
	worker_defer_free(d);
}
END_TEST

struct resolver {
	worker_defer_t *d;
	sem_t go;		/* the getter is inside worker_defer_get */
	sem_t done;		/* the resolver has resolved */
	int wait_rc;
	int sleep_rc;
	int rc;
	atomic_int resolved;
	double resolved_at;	/* now() just before the resolve */
	int token;
};

static void
resolver_init(struct resolver *r)
{
	memset(r, 0, sizeof(*r));
	r->d = worker_defer_new();
	ck_assert_ptr_nonnull(r->d);
	ck_assert_int_eq(sem_init(&r->go, 0, 0), 0);
	ck_assert_int_eq(sem_init(&r->done, 0, 0), 0);
	r->rc = -1;
}

static void
resolver_fini(struct resolver *r)
{
	worker_defer_free(r->d);
	sem_destroy(&r->go);
	sem_destroy(&r->done);
}

static void *
resolve_now_task(void *arg)
{
	struct resolver *r = arg;

	r->rc = worker_defer_resolve(r->d, &r->token);
	sem_post(&r->done);
	return NULL;
}

/* Waits until the getter is inside its get, sleeps a little, resolves.
 * Runs as a worker's task and as a plain thread's function. */
static void *
resolve_later_task(void *arg)
{
	struct resolver *r = arg;

	r->wait_rc = sem_wait_bounded(&r->go);
	r->sleep_rc = worker_sleep(0.02);
	atomic_store(&r->resolved, 1);
	r->resolved_at = now();
	r->rc = worker_defer_resolve(r->d, &r->token);
	return NULL;
}

START_TEST(defer_resolved_by_worker)
{
	struct resolver r;
	worker_t *w;
	void *v = NULL;
	double t0, elapsed;
	int rc;

	/* Resolved in another worker, whenever. */
	resolver_init(&r);
	t0 = now();
	w = worker_create(resolve_now_task, &r, NULL);
	ck_assert_ptr_nonnull(w);
	rc = worker_defer_get(r.d, wait_limit(), &v);
	elapsed = now() - t0;
	CHECK_OK(worker_join(w));
	CHECK_OK(rc);
	ck_assert_msg(elapsed < time_slack(), "the get took %.6f s",
	    elapsed);
	CHECK_OK(r.rc);
	ck_assert_ptr_eq(v, &r.token);
	worker_unref(w);
	resolver_fini(&r);

	/* Resolved before the get. */
	resolver_init(&r);
	w = worker_create(resolve_now_task, &r, NULL);
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&r.done, "the resolve");
	v = NULL;
	CHECK_OK(worker_defer_get(r.d, 0, &v));
	CHECK_OK(worker_join(w));
	CHECK_OK(r.rc);
	ck_assert_ptr_eq(v, &r.token);
	worker_unref(w);
	resolver_fini(&r);
}
END_TEST

/* Resolved after main's get has started, by a worker or a plain thread:
 * a timer that can only run inside the get lets the resolver go. */
static void
run_resolve_during_get(int plain)
{
	struct resolver r;
	worker_t *w = NULL;
	pthread_t th;
	void *v = NULL;
	double returned_at;
	int rc, resolved;

	resolver_init(&r);
	if (plain) {
		ck_assert_int_eq(pthread_create(&th, NULL, resolve_later_task,
		    &r), 0);
	} else {
		w = worker_create(resolve_later_task, &r, NULL);
		ck_assert_ptr_nonnull(w);
	}
	CHECK_OK(post_when_waiting(&r.go));
	rc = worker_defer_get(r.d, wait_limit(), &v);
	returned_at = now();
	/* Read before the join, which would order it anyway. */
	resolved = atomic_load(&r.resolved);
	if (plain) {
		ck_assert_int_eq(pthread_join(th, NULL), 0);
	} else {
		CHECK_OK(worker_join(w));
		worker_unref(w);
	}
	CHECK_OK(rc);
	ck_assert_int_eq(resolved, 1);
	/* The resolve woke the getter; it did not sleep to its timeout. */
	ck_assert_msg(returned_at - r.resolved_at < time_slack(),
	    "the get returned %.6f s after the resolve (slack %.3f s; set "
	    "TEST_TIME_SLACK to widen)", returned_at - r.resolved_at,
	    time_slack());
	ck_assert_ptr_eq(v, &r.token);
	CHECK_OK(r.wait_rc);
	CHECK_OK(r.sleep_rc);
	CHECK_OK(r.rc);
	resolver_fini(&r);
}

START_TEST(defer_resolved_during_get)
{
	run_resolve_during_get(0);
}
END_TEST

START_TEST(defer_resolved_by_plain_thread)
{
	run_resolve_during_get(1);
}
END_TEST

static void
resolve_cb(void *arg)
{
	static int token;

	worker_defer_resolve(arg, &token);
}

static void
reject_cb(void *arg)
{
	worker_defer_reject(arg, EPIPE);
}

/* Main's own timer settles d while main is blocked in the get. */
START_TEST(defer_settled_by_main_timer)
{
	worker_defer_t *d = worker_defer_new();
	void *v = NULL;

	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_later(worker_current(), resolve_cb, d, 0, NULL));
	CHECK_OK(worker_defer_get(d, wait_limit(), &v));
	ck_assert_ptr_nonnull(v);
	worker_defer_free(d);

	d = worker_defer_new();
	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_later(worker_current(), reject_cb, d, 0.01, NULL));
	CHECK_RC(worker_defer_get(d, wait_limit(), &v), EPIPE);
	worker_defer_free(d);
}
END_TEST

struct waiter {
	worker_defer_t *d;
	sem_t *in_get;
	int later_rc;
	int rc;
	void *value;
	double returned_at;
};

static void *
waiter_task(void *arg)
{
	struct waiter *wt = arg;

	wt->later_rc = post_when_waiting(wt->in_get);
	wt->rc = worker_defer_get(wt->d, wait_limit(), &wt->value);
	wt->returned_at = now();
	return NULL;
}

/* Several workers in worker_defer_get at once all get the value. */
START_TEST(defer_many_waiters)
{
	struct waiter wt[N_WAITERS];
	worker_t *w[N_WAITERS];
	worker_defer_t *d = worker_defer_new();
	sem_t in_get;
	double resolved_at;
	int token;

	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(sem_init(&in_get, 0, 0), 0);
	for (int i = 0; i < N_WAITERS; i++) {
		wt[i].d = d;
		wt[i].in_get = &in_get;
		wt[i].rc = wt[i].later_rc = -1;
		wt[i].value = NULL;
		w[i] = worker_create(waiter_task, &wt[i], NULL);
		ck_assert_ptr_nonnull(w[i]);
	}
	for (int i = 0; i < N_WAITERS; i++)
		sem_wait_ok(&in_get, "a waiter in its get");
	resolved_at = now();
	CHECK_OK(worker_defer_resolve(d, &token));
	for (int i = 0; i < N_WAITERS; i++)
		CHECK_OK(worker_join(w[i]));

	for (int i = 0; i < N_WAITERS; i++) {
		CHECK_OK(wt[i].later_rc);
		CHECK_OK(wt[i].rc);
		ck_assert_ptr_eq(wt[i].value, &token);
		/* Woken by the resolve, not by its timeout. */
		ck_assert_msg(wt[i].returned_at - resolved_at < time_slack(),
		    "waiter %d returned %.6f s after the resolve", i,
		    wt[i].returned_at - resolved_at);
		worker_unref(w[i]);
	}
	worker_defer_free(d);
	sem_destroy(&in_get);
}
END_TEST

struct stopped_getter {
	worker_defer_t *d;
	sem_t in_get;
	atomic_int returned;
	atomic_int cleaned;
};

static void *
stopped_getter_task(void *arg)
{
	struct stopped_getter *sg = arg;

	worker_cleanup_push(count_cb, &sg->cleaned);
	post_when_waiting(&sg->in_get);
	worker_defer_get(sg->d, -1, NULL);
	atomic_store(&sg->returned, 1);
	worker_cleanup_pop(1);
	return NULL;
}

/* A worker stopped inside worker_defer_get unwinds and is no longer a
 * waiter: settling and freeing d afterwards is fine. */
START_TEST(defer_getter_stopped)
{
	struct stopped_getter sg;
	worker_t *w;

	memset(&sg, 0, sizeof(sg));
	sg.d = worker_defer_new();
	ck_assert_ptr_nonnull(sg.d);
	ck_assert_int_eq(sem_init(&sg.in_get, 0, 0), 0);
	w = worker_create(stopped_getter_task, &sg, NULL);
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&sg.in_get, "the worker in its get");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	CHECK_ATOMIC(&sg.returned, 0);
	CHECK_ATOMIC(&sg.cleaned, 1);
	CHECK_OK(worker_result(w, NULL));
	worker_unref(w);
	CHECK_OK(worker_defer_resolve(sg.d, NULL));
	worker_defer_free(sg.d);
	sem_destroy(&sg.in_get);
}
END_TEST

START_TEST(defer_get_cancelled)
{
	worker_defer_t *d = worker_defer_new();
	void *v = &v;

	ck_assert_ptr_nonnull(d);
	CHECK_OK(worker_stop(worker_current()));
	CHECK_RC(worker_defer_get(d, wait_limit(), &v), ECANCELED);
	ck_assert_ptr_eq(v, &v);
	/* One stop cancels one wait. */
	CHECK_RC(worker_defer_get(d, 0, &v), ETIMEDOUT);
	worker_defer_free(d);
}
END_TEST

/* ---- Channel -------------------------------------------------------- */

struct sub {
	worker_channel_t *ch;
	sem_t *subscribed;	/* posted by the task once subscribed */
	sem_t *seen;		/* posted by the listener */
	atomic_int got;
	void *data;		/* what the listener saw */
	worker_t *source;
	int sub_rc, wait_rc;
	void *wait_data;
};

static int
on_news(const worker_event_t *ev, void *ctx)
{
	struct sub *s = ctx;

	s->data = ev->data;
	s->source = ev->source;
	atomic_fetch_add(&s->got, 1);
	if (s->seen != NULL)
		sem_post(s->seen);
	return 0;
}

static void *
sub_task(void *arg)
{
	struct sub *s = arg;

	s->sub_rc = worker_channel_sub(s->ch, NULL);
	sem_post(s->subscribed);
	s->wait_rc = worker_wait_event("NEWS", NULL, wait_limit(),
	    &s->wait_data);
	return NULL;
}

/* Ten workers subscribe themselves; one publication reaches all. */
START_TEST(channel_ten_subscribers)
{
	struct sub s[N_SUBS];
	worker_t *w[N_SUBS];
	worker_channel_t *ch = worker_channel_new();
	sem_t subscribed, seen;
	int token;

	ck_assert_ptr_nonnull(ch);
	ck_assert_int_eq(sem_init(&subscribed, 0, 0), 0);
	ck_assert_int_eq(sem_init(&seen, 0, 0), 0);
	memset(s, 0, sizeof(s));
	for (int i = 0; i < N_SUBS; i++) {
		s[i].ch = ch;
		s[i].subscribed = &subscribed;
		s[i].seen = &seen;
		s[i].sub_rc = s[i].wait_rc = -1;
		w[i] = worker_new(sub_task, &s[i], NULL);
		ck_assert_ptr_nonnull(w[i]);
		CHECK_OK(worker_listen(w[i], "NEWS", on_news, &s[i], NULL));
		CHECK_OK(worker_start(w[i]));
	}
	for (int i = 0; i < N_SUBS; i++)
		sem_wait_ok(&subscribed, "a subscription");
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	for (int i = 0; i < N_SUBS; i++)
		sem_wait_ok(&seen, "a subscriber's listener");
	for (int i = 0; i < N_SUBS; i++)
		CHECK_OK(worker_join(w[i]));

	for (int i = 0; i < N_SUBS; i++) {
		CHECK_OK(s[i].sub_rc);
		CHECK_OK(s[i].wait_rc);
		CHECK_ATOMIC(&s[i].got, 1);
		ck_assert_ptr_eq(s[i].data, &token);
		ck_assert_ptr_eq(s[i].wait_data, &token);
		ck_assert_ptr_eq(s[i].source, worker_current());
		worker_unref(w[i]);
	}
	/* Freed, they have left: nobody is subscribed. */
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	worker_channel_free(ch);
	sem_destroy(&subscribed);
	sem_destroy(&seen);
}
END_TEST

START_TEST(channel_unsub_stops_delivery)
{
	worker_channel_t *ch = worker_channel_new();
	struct sub s;
	sem_t seen, mark;
	worker_t *w;
	int token;

	ck_assert_ptr_nonnull(ch);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sem_init(&seen, 0, 0), 0);
	ck_assert_int_eq(sem_init(&mark, 0, 0), 0);
	s.seen = &seen;
	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "NEWS", on_news, &s, NULL));
	CHECK_OK(worker_listen(w, "MARK", on_post, &mark, NULL));
	CHECK_OK(worker_start(w));

	/* Another thread subscribes w. */
	CHECK_OK(worker_channel_sub(ch, w));
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	sem_wait_ok(&seen, "the first publication");
	CHECK_OK(worker_channel_unsub(ch, w));
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	/* Handled in order: a NEWS queued before MARK would be seen first. */
	CHECK_OK(worker_fire(w, "MARK", NULL));
	sem_wait_ok(&mark, "the mark");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));

	CHECK_ATOMIC(&s.got, 1);
	ck_assert_ptr_eq(s.data, &token);
	worker_unref(w);
	worker_channel_free(ch);
	sem_destroy(&seen);
	sem_destroy(&mark);
}
END_TEST

START_TEST(channel_errors)
{
	worker_channel_t *ch = worker_channel_new();
	worker_t *self = worker_current(), *other;
	void *data = NULL;
	int token;

	ck_assert_ptr_nonnull(ch);
	other = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(other);

	/* NULL subscribes the calling thread's worker, here main's root. */
	CHECK_OK(worker_channel_sub(ch, NULL));
	CHECK_RC(worker_channel_sub(ch, self), EEXIST);
	CHECK_RC(worker_channel_sub(ch, NULL), EEXIST);
	CHECK_RC(worker_channel_unsub(ch, other), ENOENT);
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	CHECK_OK(worker_wait_event("NEWS", NULL, 0, &data));
	ck_assert_ptr_eq(data, &token);
	CHECK_OK(worker_channel_unsub(ch, self));
	CHECK_RC(worker_channel_unsub(ch, NULL), ENOENT);
	CHECK_OK(worker_channel_pub(ch, "NEWS", &token));
	CHECK_RC(worker_wait_event("NEWS", NULL, 0, NULL), ETIMEDOUT);

	CHECK_RC(worker_channel_sub(NULL, self), EINVAL);
	CHECK_RC(worker_channel_unsub(NULL, self), EINVAL);
	CHECK_RC(worker_channel_pub(NULL, "NEWS", NULL), EINVAL);
	CHECK_RC(worker_channel_pub(ch, NULL, NULL), EINVAL);
	CHECK_RC(worker_channel_pub(ch, "", NULL), EINVAL);
	worker_channel_free(NULL);
	worker_channel_free(ch);
	worker_unref(other);
}
END_TEST

/* A worker that is freed leaves every channel by itself, started or
 * not.  Run under valgrind and ASan: a stale pointer would show. */
START_TEST(channel_freed_subscriber_leaves)
{
	worker_channel_t *ch1 = worker_channel_new();
	worker_channel_t *ch2 = worker_channel_new();
	worker_t *w, *fresh;

	ck_assert_ptr_nonnull(ch1);
	ck_assert_ptr_nonnull(ch2);
	w = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_channel_sub(ch1, w));
	CHECK_OK(worker_channel_sub(ch2, w));
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	worker_unref(w);
	CHECK_OK(worker_channel_pub(ch1, "NEWS", NULL));
	CHECK_OK(worker_channel_pub(ch2, "NEWS", NULL));

	/* Never started, then freed: it would reject (ESRCH) if still in. */
	fresh = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(fresh);
	CHECK_OK(worker_channel_sub(ch1, fresh));
	CHECK_RC(worker_channel_pub(ch1, "NEWS", NULL), ESRCH);
	/* Handle the EVENT_REJECT that main's root got. */
	ck_assert_int_eq(worker_update(), 1);
	worker_unref(fresh);
	CHECK_OK(worker_channel_pub(ch1, "NEWS", NULL));

	/* A new worker, perhaps at a freed one's address, is not in. */
	fresh = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(fresh);
	CHECK_OK(worker_channel_sub(ch1, fresh));
	CHECK_OK(worker_channel_sub(ch2, fresh));
	CHECK_OK(worker_channel_unsub(ch1, fresh));
	CHECK_OK(worker_channel_unsub(ch2, fresh));
	worker_unref(fresh);
	worker_channel_free(ch1);
	worker_channel_free(ch2);
}
END_TEST

struct publisher {
	worker_channel_t *ch;
	worker_t *live, *ended;
	int rc[8];
	atomic_int rejects;
	int rejects_first;	/* after the first publication */
	worker_t *reject_source[2];
	int reject_named[2];	/* the rejected event was the NEWS */
};

static int
on_reject(const worker_event_t *ev, void *ctx)
{
	struct publisher *p = ctx;
	const worker_event_t *rejected = ev->data;
	int n = atomic_fetch_add(&p->rejects, 1);

	if (n < 2) {
		p->reject_source[n] = ev->source;
		p->reject_named[n] = rejected != NULL &&
		    rejected->name != NULL &&
		    strcmp(rejected->name, "NEWS") == 0;
	}
	return 0;
}

static void *
publisher_task(void *arg)
{
	struct publisher *p = arg;
	worker_t *self = worker_current();

	p->rc[0] = worker_listen(self, WORKER_EVENT_REJECT, on_reject, p,
	    NULL);
	p->rc[1] = worker_channel_pub(p->ch, "NEWS", p);
	/* Behind whatever the publication sent back. */
	p->rc[2] = worker_fire(self, "MARK", NULL);
	p->rc[3] = worker_wait_event("MARK", self, wait_limit(), NULL);
	p->rejects_first = atomic_load(&p->rejects);
	/* With only the ended one left, the publication fails. */
	p->rc[4] = worker_channel_unsub(p->ch, p->live);
	p->rc[5] = worker_channel_pub(p->ch, "NEWS", p);
	p->rc[6] = worker_fire(self, "MARK", NULL);
	p->rc[7] = worker_wait_event("MARK", self, wait_limit(), NULL);
	return NULL;
}

/* A subscriber that ended but is still referenced rejects its copy, and
 * only its copy: the live one gets it, the publisher hears EVENT_REJECT
 * once. */
START_TEST(channel_ended_subscriber)
{
	struct publisher p;
	struct sub s;
	sem_t seen;
	worker_t *pw;

	memset(&p, 0, sizeof(p));
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sem_init(&seen, 0, 0), 0);
	s.seen = &seen;
	p.ch = worker_channel_new();
	ck_assert_ptr_nonnull(p.ch);

	p.ended = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(p.ended);
	p.live = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(p.live);
	CHECK_OK(worker_listen(p.live, "NEWS", on_news, &s, NULL));
	CHECK_OK(worker_start(p.live));
	CHECK_OK(worker_channel_sub(p.ch, p.ended));
	CHECK_OK(worker_channel_sub(p.ch, p.live));
	CHECK_OK(worker_stop(p.ended));
	CHECK_OK(worker_join(p.ended));

	pw = worker_create(publisher_task, &p, NULL);
	ck_assert_ptr_nonnull(pw);
	CHECK_OK(worker_join(pw));
	sem_wait_ok(&seen, "the live subscriber's copy");
	CHECK_OK(worker_stop(p.live));
	CHECK_OK(worker_join(p.live));

	CHECK_OK(p.rc[0]);
	CHECK_OK(p.rc[1]);
	CHECK_OK(p.rc[2]);
	CHECK_OK(p.rc[3]);
	ck_assert_int_eq(p.rejects_first, 1);
	ck_assert_ptr_eq(p.reject_source[0], p.ended);
	ck_assert_int_eq(p.reject_named[0], 1);
	CHECK_OK(p.rc[4]);
	CHECK_RC(p.rc[5], ESRCH);
	CHECK_OK(p.rc[6]);
	CHECK_OK(p.rc[7]);
	CHECK_ATOMIC(&p.rejects, 2);
	ck_assert_ptr_eq(p.reject_source[1], p.ended);
	ck_assert_int_eq(p.reject_named[1], 1);
	CHECK_ATOMIC(&s.got, 1);
	ck_assert_ptr_eq(s.data, &p);
	ck_assert_ptr_eq(s.source, pw);

	worker_unref(pw);
	worker_unref(p.live);
	worker_unref(p.ended);
	worker_channel_free(p.ch);
	sem_destroy(&seen);
}
END_TEST

/* Freeing a channel unsubscribes its live subscribers; freeing them
 * afterwards must not touch the channel. */
START_TEST(channel_free_with_subscribers)
{
	worker_channel_t *ch = worker_channel_new(), *ch2;
	worker_t *w1, *w2;

	ck_assert_ptr_nonnull(ch);
	w1 = worker_create(NULL, NULL, NULL);
	w2 = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w1);
	ck_assert_ptr_nonnull(w2);
	CHECK_OK(worker_channel_sub(ch, w1));
	CHECK_OK(worker_channel_sub(ch, w2));
	worker_channel_free(ch);

	/* Perhaps at the same address: a new channel is empty. */
	ch2 = worker_channel_new();
	ck_assert_ptr_nonnull(ch2);
	CHECK_RC(worker_channel_unsub(ch2, w1), ENOENT);
	CHECK_OK(worker_channel_sub(ch2, w2));

	CHECK_OK(worker_stop(w1));
	CHECK_OK(worker_stop(w2));
	CHECK_OK(worker_join(w1));
	CHECK_OK(worker_join(w2));
	worker_unref(w1);
	worker_unref(w2);
	CHECK_OK(worker_channel_pub(ch2, "NEWS", NULL));
	worker_channel_free(ch2);
}
END_TEST

struct churn {
	worker_channel_t *ch;
	atomic_int stop;
	atomic_long pubs, other;
	sem_t started;
};

static void *
churn_publisher(void *arg)
{
	struct churn *c = arg;

	sem_post(&c->started);
	while (!atomic_load(&c->stop)) {
		int rc = worker_channel_pub(c->ch, "NEWS", NULL);

		atomic_fetch_add(&c->pubs, 1);
		if (rc != 0 && rc != ESRCH)
			atomic_fetch_add(&c->other, 1);
		/* Handle the EVENT_REJECTs this thread's root gets. */
		(void)worker_update();
	}
	return NULL;
}

/* Subscribers are freed while another thread publishes to them: a
 * publication never touches a worker that is gone (ASan, valgrind and
 * TSan watch this one). */
START_TEST(channel_pub_races_free)
{
	struct churn c;
	pthread_t th;

	memset(&c, 0, sizeof(c));
	c.ch = worker_channel_new();
	ck_assert_ptr_nonnull(c.ch);
	ck_assert_int_eq(sem_init(&c.started, 0, 0), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, churn_publisher, &c), 0);
	sem_wait_ok(&c.started, "the publisher");
	for (int i = 0; i < N_CHURN; i++) {
		worker_t *w = worker_create(NULL, NULL, NULL);

		ck_assert_ptr_nonnull(w);
		CHECK_OK(worker_channel_sub(c.ch, w));
		CHECK_OK(worker_stop(w));
		CHECK_OK(worker_join(w));
		worker_unref(w);
	}
	atomic_store(&c.stop, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_gt(atomic_load(&c.pubs), 0);
	CHECK_ATOMIC(&c.other, 0);
	worker_channel_free(c.ch);
	sem_destroy(&c.started);
}
END_TEST

/* ---- worker_channel_pub_ex ------------------------------------------ */

#define N_EX_SUBS	3	/* subscribers of one owned payload */

/* What happened to one owned payload and its copies. */
struct ex_rec {
	atomic_int freed;	/* data_free calls */
	atomic_int handled;	/* listener calls, all subscribers */
	atomic_int early;	/* listener calls that came after the free */
	atomic_int rejects;	/* EVENT_REJECTs that carried the payload */
	int handled_at_free;	/* handled when data_free ran */
	sem_t freed_sem;
};

/* The payload: malloc'ed, so that ASan and valgrind see a use after the
 * free or a second free. */
struct ex_news {
	struct ex_rec *rec;
	int token;
};

static void
ex_rec_init(struct ex_rec *r)
{
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(sem_init(&r->freed_sem, 0, 0), 0);
}

static struct ex_news *
ex_news_new(struct ex_rec *r, int token)
{
	struct ex_news *n = malloc(sizeof(*n));

	ck_assert_ptr_nonnull(n);
	n->rec = r;
	n->token = token;
	return n;
}

static void
ex_free(void *data)
{
	struct ex_news *n = data;
	struct ex_rec *r = n->rec;

	r->handled_at_free = atomic_load(&r->handled);
	free(n);
	atomic_fetch_add(&r->freed, 1);
	sem_post(&r->freed_sem);
}

/* One subscriber: what its listeners saw. */
struct ex_sub {
	sem_t *seen;		/* posted by its last listener */
	sem_t holding;		/* its HOLD listener runs */
	sem_t release;		/* lets the HOLD listener return */
	int token;		/* read from the payload by each listener */
};

/* Checks the payload is still there and reads it. */
static void
ex_look(const worker_event_t *ev, struct ex_sub *s)
{
	struct ex_news *n = ev->data;

	if (atomic_load(&n->rec->freed) != 0)
		atomic_fetch_add(&n->rec->early, 1);
	s->token = n->token;
	atomic_fetch_add(&n->rec->handled, 1);
}

static int
on_ex_first(const worker_event_t *ev, void *ctx)
{
	ex_look(ev, ctx);
	return 0;
}

static int
on_ex_last(const worker_event_t *ev, void *ctx)
{
	struct ex_sub *s = ctx;

	ex_look(ev, s);
	sem_post(s->seen);
	return 0;
}

static int
on_ex_hold(const worker_event_t *ev, void *ctx)
{
	struct ex_sub *s = ctx;

	(void)ev;
	sem_post(&s->holding);
	sem_wait_bounded(&s->release);
	return 0;
}

/*
 * Three subscribers, two listeners each: data_free runs once, after the
 * last listener of the last subscriber.  The third subscriber is held
 * busy while the other two handle their copies completely, so a free
 * after the first subscriber, or after each, would show.
 */
START_TEST(channel_pub_ex_three)
{
	worker_listen_opts_t last = { .priority = -1 };
	struct ex_sub s[N_EX_SUBS];
	worker_t *w[N_EX_SUBS];
	sem_t fs[N_EX_SUBS];
	worker_channel_t *ch = worker_channel_new();
	struct ex_rec r;
	sem_t seen;
	int i;

	ck_assert_ptr_nonnull(ch);
	ex_rec_init(&r);
	ck_assert_int_eq(sem_init(&seen, 0, 0), 0);
	memset(s, 0, sizeof(s));
	for (i = 0; i < N_EX_SUBS; i++) {
		s[i].seen = &seen;
		ck_assert_int_eq(sem_init(&s[i].holding, 0, 0), 0);
		ck_assert_int_eq(sem_init(&s[i].release, 0, 0), 0);
		ck_assert_int_eq(sem_init(&fs[i], 0, 0), 0);
		w[i] = idle_new("ex-sub", NULL, &fs[i]);
		CHECK_OK(worker_listen(w[i], "NEWS", on_ex_first, &s[i],
		    NULL));
		CHECK_OK(worker_listen(w[i], "NEWS", on_ex_last, &s[i],
		    &last));
		CHECK_OK(worker_listen(w[i], "HOLD", on_ex_hold, &s[i],
		    NULL));
		CHECK_OK(worker_start(w[i]));
		CHECK_OK(worker_channel_sub(ch, w[i]));
	}
	CHECK_OK(worker_fire(w[2], "HOLD", NULL));
	sem_wait_ok(&s[2].holding, "the third subscriber held");

	CHECK_OK(worker_channel_pub_ex(ch, "NEWS", ex_news_new(&r, 42),
	    ex_free));
	sem_wait_ok(&seen, "a first subscriber's listeners");
	sem_wait_ok(&seen, "a second subscriber's listeners");
	/* Both have finished with their copies, not the held one. */
	fence(w[0], &fs[0]);
	fence(w[1], &fs[1]);
	CHECK_ATOMIC(&r.handled, 4);
	CHECK_ATOMIC(&r.freed, 0);

	sem_post(&s[2].release);
	sem_wait_ok(&r.freed_sem, "the payload's data_free");
	sem_wait_ok(&seen, "the third subscriber's listeners");
	for (i = 0; i < N_EX_SUBS; i++)
		stop_join(w[i]);
	CHECK_ATOMIC(&r.freed, 1);
	CHECK_ATOMIC(&r.handled, 2 * N_EX_SUBS);
	CHECK_ATOMIC(&r.early, 0);
	ck_assert_int_eq(r.handled_at_free, 2 * N_EX_SUBS);
	for (i = 0; i < N_EX_SUBS; i++) {
		ck_assert_int_eq(s[i].token, 42);
		worker_unref(w[i]);
		sem_destroy(&s[i].holding);
		sem_destroy(&s[i].release);
		sem_destroy(&fs[i]);
	}
	worker_channel_free(ch);
	sem_destroy(&seen);
	sem_destroy(&r.freed_sem);
}
END_TEST

/* The payload is the library's from the call on: freed once also when
 * the call fails or has nobody to deliver to. */
START_TEST(channel_pub_ex_einval_empty)
{
	worker_channel_t *ch = worker_channel_new();
	struct ex_rec r;

	ck_assert_ptr_nonnull(ch);
	ex_rec_init(&r);
	CHECK_RC(worker_channel_pub_ex(NULL, "NEWS", ex_news_new(&r, 1),
	    ex_free), EINVAL);
	sem_wait_ok(&r.freed_sem, "the free after a NULL channel");
	CHECK_ATOMIC(&r.freed, 1);
	CHECK_RC(worker_channel_pub_ex(ch, "", ex_news_new(&r, 2), ex_free),
	    EINVAL);
	sem_wait_ok(&r.freed_sem, "the free after an empty name");
	CHECK_ATOMIC(&r.freed, 2);
	CHECK_RC(worker_channel_pub_ex(ch, NULL, ex_news_new(&r, 3),
	    ex_free), EINVAL);
	sem_wait_ok(&r.freed_sem, "the free after a NULL name");
	CHECK_ATOMIC(&r.freed, 3);
	/* No subscribers: delivered to nobody, which is no error. */
	CHECK_OK(worker_channel_pub_ex(ch, "NEWS", ex_news_new(&r, 4),
	    ex_free));
	sem_wait_ok(&r.freed_sem, "the free with no subscribers");
	CHECK_ATOMIC(&r.freed, 4);
	/* Nothing was queued anywhere: main's root got nothing. */
	ck_assert_int_eq(worker_update(), 0);
	CHECK_ATOMIC(&r.freed, 4);
	CHECK_ATOMIC(&r.handled, 0);
	worker_channel_free(ch);
	sem_destroy(&r.freed_sem);
}
END_TEST

/* An EVENT_REJECT carries the rejected copy, payload included. */
static int
on_ex_reject(const worker_event_t *ev, void *ctx)
{
	const worker_event_t *rejected = ev->data;
	struct ex_rec *r = ctx;
	struct ex_news *n;

	if (rejected == NULL || rejected->name == NULL ||
	    strcmp(rejected->name, "NEWS") != 0)
		return 0;
	n = rejected->data;
	if (atomic_load(&r->freed) != 0 || n->rec != r || n->token != 5)
		atomic_fetch_add(&r->early, 1);
	atomic_fetch_add(&r->rejects, 1);
	return 0;
}

/* Every subscriber is not running: ESRCH, the publisher (main's root)
 * hears EVENT_REJECT for each copy, and data_free runs once, after the
 * last of them. */
START_TEST(channel_pub_ex_none_running)
{
	worker_channel_t *ch = worker_channel_new();
	worker_t *fresh, *ended;
	struct ex_rec r;

	ck_assert_ptr_nonnull(ch);
	ex_rec_init(&r);
	fresh = worker_new(NULL, NULL, NULL);
	ended = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(fresh);
	ck_assert_ptr_nonnull(ended);
	stop_join(ended);
	CHECK_OK(worker_channel_sub(ch, fresh));
	CHECK_OK(worker_channel_sub(ch, ended));
	CHECK_OK(worker_listen(worker_current(), WORKER_EVENT_REJECT,
	    on_ex_reject, &r, NULL));

	CHECK_RC(worker_channel_pub_ex(ch, "NEWS", ex_news_new(&r, 5),
	    ex_free), ESRCH);
	ck_assert_int_eq(worker_update(), 2);
	CHECK_ATOMIC(&r.rejects, 2);
	CHECK_ATOMIC(&r.early, 0);
	sem_wait_ok(&r.freed_sem, "the payload's data_free");
	CHECK_ATOMIC(&r.freed, 1);

	CHECK_OK(worker_unlisten(worker_current(), on_ex_reject, &r));
	worker_unref(fresh);
	worker_unref(ended);
	CHECK_ATOMIC(&r.freed, 1);
	worker_channel_free(ch);
	sem_destroy(&r.freed_sem);
}
END_TEST

/* With data_free NULL, pub_ex is worker_channel_pub(): data is the
 * caller's, and the errors are the same. */
START_TEST(channel_pub_ex_unowned)
{
	worker_channel_t *ch = worker_channel_new();
	struct sub s;
	sem_t seen;
	worker_t *w, *fresh;
	int token;

	ck_assert_ptr_nonnull(ch);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sem_init(&seen, 0, 0), 0);
	s.seen = &seen;
	w = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "NEWS", on_news, &s, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_channel_sub(ch, w));
	CHECK_OK(worker_channel_pub_ex(ch, "NEWS", &token, NULL));
	sem_wait_ok(&seen, "the subscriber's listener");
	stop_join(w);
	CHECK_ATOMIC(&s.got, 1);
	ck_assert_ptr_eq(s.data, &token);
	ck_assert_ptr_eq(s.source, worker_current());

	CHECK_RC(worker_channel_pub_ex(NULL, "NEWS", &token, NULL), EINVAL);
	CHECK_RC(worker_channel_pub_ex(ch, "", &token, NULL), EINVAL);
	CHECK_RC(worker_channel_pub_ex(ch, NULL, &token, NULL), EINVAL);
	/* w has ended but is still subscribed: it rejects its copy. */
	CHECK_OK(worker_channel_unsub(ch, w));
	fresh = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(fresh);
	CHECK_OK(worker_channel_sub(ch, fresh));
	CHECK_RC(worker_channel_pub_ex(ch, "NEWS", &token, NULL), ESRCH);
	/* The EVENT_REJECT that main's root got. */
	ck_assert_int_eq(worker_update(), 1);
	worker_unref(fresh);
	CHECK_OK(worker_channel_pub_ex(ch, "NEWS", &token, NULL));
	worker_unref(w);
	worker_channel_free(ch);
	sem_destroy(&seen);
}
END_TEST

Suite *
suite_async(void)
{
	Suite *s = suite_create("async");
	TCase *tc;

	tc = test_case(s, "async");
	tcase_add_test(tc, async_get_waits);
	tcase_add_test(tc, async_get_after_end);
	tcase_add_test(tc, async_fail_propagates);
	tcase_add_test(tc, async_stopped);
	tcase_add_test(tc, await_on_main);
	tcase_add_test(tc, await_runs_callers_loop);
	tcase_add_test(tc, await_in_worker);
	tcase_add_test(tc, async_parentless_daemon);
	tcase_add_test(tc, async_errors);
	tcase_add_test(tc, async_get_cancelled);

	tc = test_case(s, "defer");
	tcase_add_test(tc, defer_resolve_then_get);
	tcase_add_test(tc, defer_reject_then_get);
	tcase_add_test(tc, defer_settles_once);
	tcase_add_test(tc, defer_errors);
	tcase_add_test(tc, defer_timeout);
	tcase_add_test(tc, defer_resolved_by_worker);
	tcase_add_test(tc, defer_resolved_during_get);
	tcase_add_test(tc, defer_resolved_by_plain_thread);
	tcase_add_test(tc, defer_settled_by_main_timer);
	tcase_add_test(tc, defer_many_waiters);
	tcase_add_test(tc, defer_getter_stopped);
	tcase_add_test(tc, defer_get_cancelled);

	tc = test_case(s, "channel");
	tcase_add_test(tc, channel_ten_subscribers);
	tcase_add_test(tc, channel_unsub_stops_delivery);
	tcase_add_test(tc, channel_errors);
	tcase_add_test(tc, channel_freed_subscriber_leaves);
	tcase_add_test(tc, channel_ended_subscriber);
	tcase_add_test(tc, channel_free_with_subscribers);
	tcase_add_test(tc, channel_pub_races_free);

	tc = test_case(s, "channel_pub_ex");
	tcase_add_test(tc, channel_pub_ex_three);
	tcase_add_test(tc, channel_pub_ex_einval_empty);
	tcase_add_test(tc, channel_pub_ex_none_running);
	tcase_add_test(tc, channel_pub_ex_unowned);

	return s;
}
