/*
 * test_loop.c - the breakpoints: worker_wait_event, worker_wait_until,
 * worker_sleep, worker_update and worker_wait_forever, in started workers
 * and on root workers (main's and a plain pthread's), the pause cache, and
 * what stopping a root worker does to its waits and its children.
 *
 * Many tests run on main's root worker: the test's own thread fires at
 * worker_current() and then waits, which needs no other thread.  Steps
 * between threads are ordered with semaphores; only the tests whose
 * subject is time measure it, with CLOCK_MONOTONIC, never early, and at
 * most TEST_TIME_SLACK seconds late.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define SHORT 0.1		/* seconds: a timed wait that must expire */

/* ---- wait_event with timeout 0 ----------------------------------------- */

struct zero {
	int listen_rc, fire_rc[2], unlisten_rc;
	int empty;		/* nothing queued */
	int other;		/* only another name queued */
	int queued;		/* the event queued before the wait */
	void *data;
	int y_calls;
	int token;
};

static int
on_zero_y(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	((struct zero *)ctx)->y_calls++;
	return 0;
}

/* Runs on whatever worker calls it: main's root or a started worker. */
static void
zero_checks(struct zero *z)
{
	worker_t *self = worker_current();

	z->listen_rc = worker_listen(self, "Y", on_zero_y, z, NULL);
	z->empty = worker_wait_event("X", NULL, 0, NULL);
	z->fire_rc[0] = worker_fire(self, "Y", NULL);
	z->other = worker_wait_event("X", NULL, 0, NULL);
	z->fire_rc[1] = worker_fire(self, "X", &z->token);
	z->queued = worker_wait_event("X", NULL, 0, &z->data);
	z->unlisten_rc = worker_unlisten(self, on_zero_y, z);
}

static void
zero_expect(const struct zero *z)
{
	ck_assert_int_eq(z->listen_rc, 0);
	ck_assert_int_eq(z->fire_rc[0], 0);
	ck_assert_int_eq(z->fire_rc[1], 0);
	ck_assert_int_eq(z->unlisten_rc, 0);
	ck_assert_int_eq(z->empty, ETIMEDOUT);
	ck_assert_int_eq(z->other, ETIMEDOUT);
	/* The Y was handled (its listener ran) although it did not match. */
	ck_assert_int_eq(z->y_calls, 1);
	ck_assert_int_eq(z->queued, 0);
	ck_assert_ptr_eq(z->data, &z->token);
}

static void *
zero_task(void *arg)
{
	zero_checks(arg);
	return NULL;
}

START_TEST(wait_event_zero_timeout)
{
	struct zero on_main, in_worker;
	worker_t *w;

	memset(&on_main, 0, sizeof(on_main));
	memset(&in_worker, 0, sizeof(in_worker));
	zero_checks(&on_main);
	zero_expect(&on_main);

	w = worker_create(zero_task, &in_worker, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	worker_unref(w);
	zero_expect(&in_worker);
}
END_TEST

START_TEST(wait_event_timeout_expires)
{
	atomic_int y = 0;
	worker_t *self = worker_current();
	double t0, elapsed;
	int rc;

	CHECK_OK(worker_listen(self, "Y", on_count, &y, NULL));
	/* An unrelated event neither ends the wait nor stops its clock. */
	CHECK_OK(worker_fire(self, "Y", NULL));
	t0 = now();
	rc = worker_wait_event("X", NULL, SHORT, NULL);
	elapsed = now() - t0;
	CHECK_RC(rc, ETIMEDOUT);
	assert_on_time(elapsed, SHORT, 0);
	CHECK_ATOMIC(&y, 1);
	CHECK_OK(worker_unlisten(self, on_count, &y));
}
END_TEST

/* Children of main's root fire at it with worker_parent_fire, so each
 * event has its own source without any thread doing the firing. */
START_TEST(wait_event_source)
{
	worker_attr_t attr = { .parent = worker_current() };
	worker_t *a, *b;
	int tok_a, tok_b;
	void *data = NULL;

	attr.name = "a";
	a = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(a);
	attr.name = "b";
	b = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(b);

	CHECK_OK(worker_parent_fire(b, "X", &tok_b));
	CHECK_OK(worker_parent_fire(a, "X", &tok_a));
	CHECK_OK(worker_wait_event("X", a, 0, &data));
	ck_assert_ptr_eq(data, &tok_a);
	/* b's X was handled on the way; handled events are not kept. */
	CHECK_RC(worker_wait_event("X", b, 0, NULL), ETIMEDOUT);
	CHECK_OK(worker_parent_fire(b, "X", &tok_b));
	CHECK_OK(worker_wait_event("X", b, 0, &data));
	ck_assert_ptr_eq(data, &tok_b);

	CHECK_OK(worker_stop(a));
	CHECK_OK(worker_stop(b));
	CHECK_OK(worker_join(a));
	CHECK_OK(worker_join(b));
	/* Their CHILD_THREAD_* events hold references: handle them. */
	(void)worker_update();
	worker_unref(a);
	worker_unref(b);
}
END_TEST

/* The data a wait hands back stays valid until the next breakpoint. */
START_TEST(wait_event_holds_data)
{
	atomic_int frees = 0;
	worker_t *self = worker_current();
	void *data = NULL;

	CHECK_OK(worker_fire_ex(self, "X", &frees, count_cb, 0));
	CHECK_OK(worker_wait_event("X", NULL, 0, &data));
	ck_assert_ptr_eq(data, &frees);
	CHECK_ATOMIC(&frees, 0);
	ck_assert_int_eq(worker_update(), 0);
	CHECK_ATOMIC(&frees, 1);
}
END_TEST

/* ---- wait_until --------------------------------------------------------- */

struct sum {
	int total;
	int listener_calls;
	int cond_calls;
	int cond_early;		/* cond ran before the event's listener */
};

static int
on_sum_n(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	((struct sum *)ctx)->listener_calls++;
	return 0;
}

static int
sum_reaches_6(const worker_event_t *ev, void *ctx)
{
	struct sum *s = ctx;

	if (strcmp(ev->name, "N") != 0)
		return 0;
	s->cond_calls++;
	if (s->cond_calls > s->listener_calls)
		s->cond_early++;
	s->total += (int)(intptr_t)ev->data;
	return s->total >= 6;
}

static int
never(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

START_TEST(wait_until_predicate)
{
	struct sum s = { 0 };
	worker_t *self = worker_current();
	void *data = NULL;
	double t0, elapsed;
	int rc;

	CHECK_OK(worker_listen(self, "N", on_sum_n, &s, NULL));
	CHECK_OK(worker_fire(self, "N", (void *)(intptr_t)1));
	CHECK_OK(worker_fire(self, "Z", NULL));
	CHECK_OK(worker_fire(self, "N", (void *)(intptr_t)2));
	CHECK_OK(worker_fire(self, "N", (void *)(intptr_t)3));
	CHECK_OK(worker_fire(self, "N", (void *)(intptr_t)4));

	CHECK_OK(worker_wait_until(sum_reaches_6, &s, wait_limit(), &data));
	ck_assert_ptr_eq(data, (void *)(intptr_t)3);
	ck_assert_int_eq(s.total, 6);
	ck_assert_int_eq(s.cond_calls, 3);
	ck_assert_int_eq(s.cond_early, 0);
	/* It returned at the third N: the fourth is still queued. */
	ck_assert_int_eq(s.listener_calls, 3);
	ck_assert_int_eq(worker_update(), 1);
	ck_assert_int_eq(s.listener_calls, 4);

	CHECK_RC(worker_wait_until(never, NULL, 0, NULL), ETIMEDOUT);
	t0 = now();
	rc = worker_wait_until(never, NULL, SHORT, NULL);
	elapsed = now() - t0;
	CHECK_RC(rc, ETIMEDOUT);
	assert_on_time(elapsed, SHORT, 0);
	CHECK_OK(worker_unlisten(self, on_sum_n, &s));
}
END_TEST

/* ---- worker_sleep --------------------------------------------------- */

struct sleepy {
	worker_t *target;
	int fire_rc;
	int in_sleep;		/* the target's thread only */
	int calls, calls_in_sleep;
	sem_t fired;
};

static int
on_sleepy(const worker_event_t *ev, void *ctx)
{
	struct sleepy *s = ctx;

	(void)ev;
	s->calls++;
	if (s->in_sleep)
		s->calls_in_sleep++;
	return 0;
}

static void *
fire_at_target(void *arg)
{
	struct sleepy *s = arg;

	s->fire_rc = worker_fire(s->target, "T", NULL);
	sem_post(&s->fired);
	worker_wait_forever();
	return NULL;
}

/* On main: events queued from main and from another worker before the
 * sleep are handled during it. */
START_TEST(sleep_on_main)
{
	struct sleepy s;
	worker_t *self = worker_current(), *h;
	double t0, elapsed;
	int rc;

	memset(&s, 0, sizeof(s));
	sem_init(&s.fired, 0, 0);
	s.target = self;
	CHECK_OK(worker_listen(self, "T", on_sleepy, &s, NULL));
	h = worker_create(fire_at_target, &s, NULL);
	ck_assert_ptr_nonnull(h);
	sem_wait_ok(&s.fired, "the other worker's fire");
	CHECK_OK(s.fire_rc);
	CHECK_OK(worker_fire(self, "T", NULL));

	s.in_sleep = 1;
	t0 = now();
	rc = worker_sleep(SHORT);
	elapsed = now() - t0;
	s.in_sleep = 0;

	CHECK_OK(rc);
	assert_on_time(elapsed, SHORT, 0);
	ck_assert_int_eq(s.calls, 2);
	ck_assert_int_eq(s.calls_in_sleep, 2);
	CHECK_OK(worker_sleep(0));

	CHECK_OK(worker_stop(h));
	CHECK_OK(worker_join(h));
	worker_unref(h);
	CHECK_OK(worker_unlisten(self, on_sleepy, &s));
	sem_destroy(&s.fired);
}
END_TEST

struct sleeper {
	struct sleepy s;
	sem_t ready, go, done;
	int rc;
	double elapsed;
};

static void *
sleeper_task(void *arg)
{
	struct sleeper *sl = arg;
	double t0;

	sem_post(&sl->ready);
	sem_wait_intr(&sl->go);
	sl->s.in_sleep = 1;
	t0 = now();
	sl->rc = worker_sleep(SHORT);
	sl->elapsed = now() - t0;
	sl->s.in_sleep = 0;
	sem_post(&sl->done);
	worker_wait_forever();
	return NULL;
}

START_TEST(sleep_in_worker)
{
	struct sleeper sl;
	worker_t *w;

	memset(&sl, 0, sizeof(sl));
	sem_init(&sl.ready, 0, 0);
	sem_init(&sl.go, 0, 0);
	sem_init(&sl.done, 0, 0);
	w = worker_new(sleeper_task, &sl, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "T", on_sleepy, &sl.s, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&sl.ready, "the task");
	CHECK_OK(worker_fire(w, "T", NULL));
	CHECK_OK(worker_fire(w, "T", NULL));
	sem_post(&sl.go);
	sem_wait_ok(&sl.done, "the sleep");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	worker_unref(w);

	CHECK_OK(sl.rc);
	assert_on_time(sl.elapsed, SHORT, 0);
	ck_assert_int_eq(sl.s.calls, 2);
	ck_assert_int_eq(sl.s.calls_in_sleep, 2);
	sem_destroy(&sl.ready);
	sem_destroy(&sl.go);
	sem_destroy(&sl.done);
}
END_TEST

/* ---- worker_update ------------------------------------------------------ */

static int
on_chain(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return worker_fire(worker_current(), "D", NULL);
}

START_TEST(update_counts)
{
	atomic_int e = 0, d = 0;
	worker_t *self = worker_current();

	CHECK_OK(worker_listen(self, "E", on_count, &e, NULL));
	CHECK_OK(worker_listen(self, "D", on_count, &d, NULL));
	CHECK_OK(worker_listen(self, "C", on_chain, NULL, NULL));

	ck_assert_int_eq(worker_update(), 0);
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_fire(self, "E", NULL));
	ck_assert_int_eq(worker_update(), 3);
	CHECK_ATOMIC(&e, 3);
	ck_assert_int_eq(worker_update(), 0);

	/* What a listener fires during the update waits for the next. */
	CHECK_OK(worker_fire(self, "C", NULL));
	ck_assert_int_eq(worker_update(), 1);
	CHECK_ATOMIC(&d, 0);
	ck_assert_int_eq(worker_update(), 1);
	CHECK_ATOMIC(&d, 1);
	ck_assert_int_eq(worker_update(), 0);

	CHECK_OK(worker_unlisten(self, on_count, &e));
	CHECK_OK(worker_unlisten(self, on_count, &d));
	CHECK_OK(worker_unlisten(self, on_chain, NULL));
}
END_TEST

/* ---- Pause ---------------------------------------------------------- */

struct paused {
	sem_t ready, go, seen_x, seen_y, done;
	int use_update;		/* the task: worker_update, not wait_event */
	atomic_int returned;
	int rc;
	void *data;
	int token;
};

static void *
paused_task(void *arg)
{
	struct paused *p = arg;

	sem_post(&p->ready);
	if (p->use_update) {
		sem_wait_intr(&p->go);
		p->rc = worker_update();
	} else {
		p->rc = worker_wait_event("X", NULL, -1, &p->data);
	}
	atomic_store(&p->returned, 1);
	sem_post(&p->done);
	worker_wait_forever();
	return NULL;
}

static worker_t *
paused_new(struct paused *p, int use_update)
{
	worker_t *w;

	memset(p, 0, sizeof(*p));
	sem_init(&p->ready, 0, 0);
	sem_init(&p->go, 0, 0);
	sem_init(&p->seen_x, 0, 0);
	sem_init(&p->seen_y, 0, 0);
	sem_init(&p->done, 0, 0);
	p->use_update = use_update;
	p->rc = -1;
	w = worker_new(paused_task, p, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "X", on_post, &p->seen_x, NULL));
	CHECK_OK(worker_listen(w, "Y", on_post, &p->seen_y, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&p->ready, "the task");
	return w;
}

static void
paused_free(struct paused *p, worker_t *w, int stop)
{
	if (stop)
		CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	worker_unref(w);
	sem_destroy(&p->ready);
	sem_destroy(&p->go);
	sem_destroy(&p->seen_x);
	sem_destroy(&p->seen_y);
	sem_destroy(&p->done);
}

/*
 * The task waits for X and w is paused: X is handled while paused, then
 * the resume, and the wait must have seen X.  Y, handled after X while
 * still paused, shows that the wait did not return during the pause (had
 * it returned at X, the flag would have been set before Y was handled).
 */
static void
expect_wait_held(struct paused *p, worker_t *w)
{
	CHECK_OK(worker_fire(w, "X", &p->token));
	sem_wait_ok(&p->seen_x, "X handled while paused");
	CHECK_OK(worker_fire(w, "Y", NULL));
	sem_wait_ok(&p->seen_y, "Y handled while paused");
	CHECK_ATOMIC(&p->returned, 0);

	CHECK_OK(worker_resume(w));
	sem_wait_ok(&p->done, "the wait");
	CHECK_OK(p->rc);
	ck_assert_ptr_eq(p->data, &p->token);
}

START_TEST(pause_cache)
{
	struct paused p;
	worker_t *w = paused_new(&p, 0);

	CHECK_OK(worker_pause(w));
	expect_wait_held(&p, w);
	paused_free(&p, w, 1);
}
END_TEST

START_TEST(pause_holds_update)
{
	struct paused p;
	worker_t *w = paused_new(&p, 1);

	/* Both queued before the update starts. */
	CHECK_OK(worker_pause(w));
	CHECK_OK(worker_fire(w, "X", NULL));
	sem_post(&p.go);
	sem_wait_ok(&p.seen_x, "X handled while paused");
	CHECK_OK(worker_fire(w, "Y", NULL));
	sem_wait_ok(&p.seen_y, "Y handled while paused");
	CHECK_ATOMIC(&p.returned, 0);

	CHECK_OK(worker_resume(w));
	sem_wait_ok(&p.done, "the update");
	ck_assert_int_ge(p.rc, 1);
	paused_free(&p, w, 1);
}
END_TEST

/* A RESUME while not paused does nothing, nor does a second PAUSE while
 * paused: one RESUME ends the pause. */
START_TEST(pause_twice_resume_once)
{
	struct paused p;
	worker_t *w = paused_new(&p, 0);

	CHECK_OK(worker_resume(w));
	CHECK_OK(worker_pause(w));
	CHECK_OK(worker_pause(w));
	expect_wait_held(&p, w);
	paused_free(&p, w, 1);
}
END_TEST

/* A paused worker still unwinds on STOP_THREAD: its wait never returns. */
START_TEST(pause_then_stop)
{
	struct paused p;
	void *ret = &ret;
	worker_t *w = paused_new(&p, 0);

	CHECK_OK(worker_pause(w));
	CHECK_OK(worker_fire(w, "Y", NULL));
	sem_wait_ok(&p.seen_y, "Y handled while paused");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	CHECK_ATOMIC(&p.returned, 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	paused_free(&p, w, 0);
}
END_TEST

/* ---- Stopped root workers ------------------------------------------- */

struct rooted {
	worker_t *root;		/* a reference taken in the thread */
	worker_t *child;
	sem_t ready, go;
	int n_update;
	int rc[3];
	atomic_int returned;
	atomic_int child_stop, child_done, child_end;
};

static void
rooted_init(struct rooted *r)
{
	memset(r, 0, sizeof(*r));
	sem_init(&r->ready, 0, 0);
	sem_init(&r->go, 0, 0);
	for (int i = 0; i < 3; i++)
		r->rc[i] = -1;
	r->n_update = -1;
}

static void
rooted_destroy(struct rooted *r)
{
	worker_unref(r->root);
	sem_destroy(&r->ready);
	sem_destroy(&r->go);
}

/* A plain pthread: its root worker is created on first use. */
static void *
root_wait_event_main(void *arg)
{
	struct rooted *r = arg;

	r->root = worker_ref(worker_current());
	sem_post(&r->ready);
	r->rc[0] = worker_wait_event("X", NULL, wait_limit(), NULL);
	r->rc[1] = worker_wait_event("X", NULL, SHORT, NULL);
	return NULL;
}

static void *
root_update_main(void *arg)
{
	struct rooted *r = arg;

	r->root = worker_ref(worker_current());
	sem_post(&r->ready);
	sem_wait_intr(&r->go);
	/* The update handles the STOP but leaves the cancellation to the
	 * next wait. */
	r->n_update = worker_update();
	r->rc[0] = worker_wait_event("X", NULL, wait_limit(), NULL);
	r->rc[1] = worker_wait_event("X", NULL, 0, NULL);
	return NULL;
}

static void *
root_sleep_main(void *arg)
{
	struct rooted *r = arg;

	r->root = worker_ref(worker_current());
	sem_post(&r->ready);
	r->rc[0] = worker_sleep(wait_limit());
	r->rc[1] = worker_sleep(0.01);
	return NULL;
}

static void
run_root_thread(struct rooted *r, void *(*fn)(void *), int gated)
{
	pthread_t th;

	rooted_init(r);
	ck_assert_int_eq(pthread_create(&th, NULL, fn, r), 0);
	sem_wait_ok(&r->ready, "the thread's root worker");
	ck_assert_ptr_nonnull(r->root);
	CHECK_OK(worker_stop(r->root));
	if (gated)
		sem_post(&r->go);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
}

START_TEST(root_stop_wait_event)
{
	struct rooted r;

	run_root_thread(&r, root_wait_event_main, 0);
	/* One stop cancels one wait; the next one times out normally. */
	ck_assert_int_eq(r.rc[0], ECANCELED);
	ck_assert_int_eq(r.rc[1], ETIMEDOUT);
	rooted_destroy(&r);
}
END_TEST

START_TEST(root_stop_update)
{
	struct rooted r;

	run_root_thread(&r, root_update_main, 1);
	ck_assert_int_eq(r.n_update, 1);
	ck_assert_int_eq(r.rc[0], ECANCELED);
	ck_assert_int_eq(r.rc[1], ETIMEDOUT);
	rooted_destroy(&r);
}
END_TEST

START_TEST(root_stop_sleep)
{
	struct rooted r;

	run_root_thread(&r, root_sleep_main, 0);
	ck_assert_int_eq(r.rc[0], ECANCELED);
	ck_assert_int_eq(r.rc[1], 0);
	rooted_destroy(&r);
}
END_TEST

/* Main's own root, stopped by itself. */
START_TEST(root_stop_main)
{
	worker_t *self = worker_current();

	CHECK_OK(worker_stop(self));
	CHECK_RC(worker_wait_event("X", NULL, 0, NULL), ECANCELED);
	CHECK_RC(worker_wait_event("X", NULL, 0, NULL), ETIMEDOUT);

	CHECK_OK(worker_stop(self));
	ck_assert_int_eq(worker_update(), 1);
	CHECK_RC(worker_sleep(SHORT), ECANCELED);
	CHECK_OK(worker_sleep(0));
}
END_TEST

static void *
root_forever_main(void *arg)
{
	struct rooted *r = arg;

	r->root = worker_ref(worker_current());
	sem_post(&r->ready);
	worker_wait_forever();
	atomic_store(&r->returned, 1);
	return NULL;
}

START_TEST(root_wait_forever)
{
	struct rooted r;

	run_root_thread(&r, root_forever_main, 0);
	CHECK_ATOMIC(&r.returned, 1);
	rooted_destroy(&r);
}
END_TEST

static void *
root_parent_main(void *arg)
{
	struct rooted *r = arg;
	worker_attr_t attr = { .name = "rootkid" };
	worker_t *self = worker_current();

	r->root = worker_ref(self);
	worker_listen(self, WORKER_CHILD_THREAD_STOP, on_count,
	    &r->child_stop, NULL);
	worker_listen(self, WORKER_CHILD_THREAD_DONE, on_count,
	    &r->child_done, NULL);
	worker_listen(self, WORKER_CHILD_THREAD_END, on_count, &r->child_end,
	    NULL);
	attr.parent = self;
	r->child = worker_create(NULL, NULL, &attr);
	sem_post(&r->ready);
	if (r->child == NULL)
		return NULL;
	worker_wait_forever();
	atomic_store(&r->returned, 1);
	/* The root's STOP stopped the child without joining it. */
	r->rc[0] = worker_join(r->child);
	r->rc[1] = worker_result(r->child, NULL);
	/* Handle what the child sent while ending. */
	(void)worker_update();
	return NULL;
}

START_TEST(root_stop_stops_children)
{
	struct rooted r;

	run_root_thread(&r, root_parent_main, 0);
	ck_assert_ptr_nonnull(r.child);
	CHECK_ATOMIC(&r.returned, 1);
	ck_assert_int_eq(r.rc[0], 0);
	ck_assert_int_eq(r.rc[1], 0);
	ck_assert_int_eq(worker_is_running(r.child), 0);
	CHECK_ATOMIC(&r.child_stop, 1);
	CHECK_ATOMIC(&r.child_done, 0);
	CHECK_ATOMIC(&r.child_end, 1);
	CHECK_OK(worker_join(r.child));
	worker_unref(r.child);
	rooted_destroy(&r);
}
END_TEST

/*
 * A worker that stops does not pause (the fuzzer's N2): a PAUSE_THREAD
 * that comes while a STOP_THREAD listener waits would hold the stop until
 * a RESUME_THREAD nobody sends, since every further stop is redundant.
 */
struct pause_in_stop {
	sem_t waiting;
};

static int
stop_waits_for_go(const worker_event_t *ev, void *ctx)
{
	struct pause_in_stop *p = ctx;

	(void)ev;
	sem_post(&p->waiting);
	worker_wait_event("GO", NULL, wait_limit(), NULL);
	return 0;
}

START_TEST(no_pause_while_stopping)
{
	struct pause_in_stop p;
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(sem_init(&p.waiting, 0, 0), 0);
	CHECK_OK(worker_listen(w, WORKER_STOP_THREAD, stop_waits_for_go, &p,
	    NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_stop(w));
	sem_wait_ok(&p.waiting, "the stop listener");
	CHECK_OK(worker_pause(w));
	CHECK_OK(worker_fire(w, "GO", NULL));
	CHECK_OK(worker_join_timeout(w, wait_limit()));
	worker_unref(w);
	sem_destroy(&p.waiting);
}
END_TEST

/*
 * Nesting is bounded: a listener of "deeper" that fires "deeper" at its
 * own worker and waits for it nests one loop per event.  The 64th loop
 * returns ELOOP at once, and the chain unwinds; 0.1 went on until the
 * stack overflowed.
 */
struct nest {
	int depth;		/* listener calls under way */
	int deepest;
	int eloop;		/* waits that returned ELOOP */
	int other;		/* waits that returned anything else */
};

static int
on_deeper(const worker_event_t *ev, void *ctx)
{
	struct nest *n = ctx;
	int rc;

	(void)ev;
	if (++n->depth > n->deepest)
		n->deepest = n->depth;
	worker_fire(worker_current(), "deeper", NULL);
	/* Timeout 0: handles what is queued (the next "deeper"), no more. */
	rc = worker_wait_event("never", NULL, 0, NULL);
	if (rc == ELOOP)
		n->eloop++;
	else
		n->other++;
	n->depth--;
	return 0;
}

static void *
nest_task(void *arg)
{
	worker_listen(worker_current(), "deeper", on_deeper, arg, NULL);
	worker_fire(worker_current(), "deeper", NULL);
	/* The chain returns once the deepest wait says ELOOP. */
	worker_update();
	return NULL;
}

START_TEST(nesting_is_bounded)
{
	struct nest n = { 0 };
	worker_t *w = worker_create(nest_task, &n, NULL);

	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	worker_unref(w);
	/* worker_update() is loop 1: listener k waits in loop k + 1, and
	 * the 64th listener's wait would be the 65th loop. */
	ck_assert_int_eq(n.deepest, 64);
	ck_assert_int_eq(n.eloop, 1);
	ck_assert_int_ge(n.other, 63);
	ck_assert_int_eq(n.depth, 0);
}
END_TEST

Suite *
suite_loop(void)
{
	Suite *s = suite_create("loop");
	TCase *tc;

	tc = test_case(s, "wait");
	tcase_add_test(tc, wait_event_zero_timeout);
	tcase_add_test(tc, wait_event_timeout_expires);
	tcase_add_test(tc, wait_event_source);
	tcase_add_test(tc, wait_event_holds_data);
	tcase_add_test(tc, wait_until_predicate);

	tc = test_case(s, "sleep_update");
	tcase_add_test(tc, sleep_on_main);
	tcase_add_test(tc, sleep_in_worker);
	tcase_add_test(tc, update_counts);

	tc = test_case(s, "pause");
	tcase_add_test(tc, pause_cache);
	tcase_add_test(tc, pause_holds_update);
	tcase_add_test(tc, pause_twice_resume_once);
	tcase_add_test(tc, pause_then_stop);
	tcase_add_test(tc, no_pause_while_stopping);

	tc = test_case(s, "root");
	tcase_add_test(tc, root_stop_wait_event);
	tcase_add_test(tc, root_stop_update);
	tcase_add_test(tc, root_stop_sleep);
	tcase_add_test(tc, root_stop_main);
	tcase_add_test(tc, root_wait_forever);
	tcase_add_test(tc, root_stop_stops_children);

	tc = test_case(s, "nesting");
	tcase_add_test(tc, nesting_is_bounded);

	return s;
}
