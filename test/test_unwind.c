/*
 * test_unwind.c - leaving a worker early: cleanup handlers on
 * worker_exit, worker_fail, a stop and a plain return; push and pop;
 * worker_exit on root workers; exit, fail and stop from inside listeners
 * and nested waits; no code past the wait a stopped worker was in;
 * handlers that free what the wait they interrupted used (a defer, the
 * last reference to a worker waited for) and their order across nested
 * waits; worker_fail's codes, negative ones included.
 *
 * Cleanup handlers append to a trail that the test reads after the join.
 * Steps are ordered with semaphores and events.
 */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define NTRAIL 8

/* The order in which cleanup handlers ran. */
struct trail {
	int order[NTRAIL];
	int n;
};

/* One cleanup handler's argument: which trail, and its number. */
struct step {
	struct trail *t;
	int id;
};

static void
note(void *arg)
{
	struct step *s = arg;

	if (s->t->n < NTRAIL)
		s->t->order[s->t->n] = s->id;
	s->t->n++;
}

/* A task's record: its handlers' trail and what it got to. */
struct unw {
	struct trail t;
	struct step s[3];
	sem_t started;
	sem_t entered;		/* a listener is inside its nested wait */
	int mode;
	int mid;		/* the trail's length at a point in the task */
	atomic_int after;	/* code past an exit or a wait ran */
	atomic_int after_listener;
	atomic_int after_nested;
};

static void
unw_init(struct unw *u, int mode)
{
	int i;

	memset(u, 0, sizeof(*u));
	for (i = 0; i < 3; i++) {
		u->s[i].t = &u->t;
		u->s[i].id = i + 1;
	}
	u->mode = mode;
	ck_assert_int_eq(sem_init(&u->started, 0, 0), 0);
	ck_assert_int_eq(sem_init(&u->entered, 0, 0), 0);
}

static void
unw_fini(struct unw *u)
{
	sem_destroy(&u->started);
	sem_destroy(&u->entered);
}

/* The trail must be exactly the handlers want[0..n-1]. */
static void
check_trail(const struct trail *t, const int *want, int n)
{
	int i;

	ck_assert_msg(t->n == n, "%d handlers ran, want %d", t->n, n);
	for (i = 0; i < n; i++)
		ck_assert_msg(t->order[i] == want[i],
		    "handler %d was #%d, want #%d", i, t->order[i], want[i]);
}

enum { BY_EXIT, BY_FAIL, BY_STOP, BY_RETURN };

static void *
task_three_handlers(void *arg)
{
	struct unw *u = arg;

	worker_cleanup_push(note, &u->s[0]);
	worker_cleanup_push(note, &u->s[1]);
	worker_cleanup_push(note, &u->s[2]);
	switch (u->mode) {
	case BY_EXIT:
		worker_exit();
		break;
	case BY_FAIL:
		worker_fail(9);
		break;
	case BY_STOP:
		sem_post(&u->started);
		worker_sleep(3600);
		break;
	case BY_RETURN:
		return (void *)3;
	}
	atomic_store(&u->after, 1);
	return (void *)1;
}

/* Runs task_three_handlers in mode; returns its fail code, *ret its
 * return value. */
static int
run_three(struct unw *u, int mode, void **ret)
{
	worker_attr_t quiet = { .quiet = 1 };
	worker_t *w;
	int rc;

	unw_init(u, mode);
	w = worker_create(task_three_handlers, u, &quiet);
	ck_assert_ptr_nonnull(w);
	if (mode == BY_STOP) {
		sem_wait_ok(&u->started, "the task");
		CHECK_OK(worker_stop(w));
	}
	CHECK_OK(worker_join(w));
	rc = worker_result(w, ret);
	worker_unref(w);
	unw_fini(u);
	return rc;
}

static const int newest_first[] = { 3, 2, 1 };

/* A task that left early in mode: it has no result, and all three
 * handlers ran, newest first, with nothing after the exit run. */
static void
expect_unwound(int mode, int want_rc)
{
	struct unw u;
	void *ret = &u;

	CHECK_RC(run_three(&u, mode, &ret), want_rc);
	ck_assert_ptr_null(ret);
	check_trail(&u.t, newest_first, 3);
	ck_assert_int_eq(atomic_load(&u.after), 0);
}

START_TEST(test_cleanup_on_exit)
{
	expect_unwound(BY_EXIT, 0);
}
END_TEST

START_TEST(test_cleanup_on_fail)
{
	expect_unwound(BY_FAIL, 9);
}
END_TEST

START_TEST(test_cleanup_on_stop)
{
	expect_unwound(BY_STOP, 0);
}
END_TEST

START_TEST(test_cleanup_on_return)
{
	struct unw u;
	void *ret = NULL;

	CHECK_OK(run_three(&u, BY_RETURN, &ret));
	ck_assert_ptr_eq(ret, (void *)3);
	check_trail(&u.t, newest_first, 3);
}
END_TEST

static void *
task_pop(void *arg)
{
	struct unw *u = arg;

	worker_cleanup_push(note, &u->s[0]);
	worker_cleanup_push(note, &u->s[1]);
	worker_cleanup_pop(0);
	u->mid = u->t.n;
	worker_cleanup_pop(1);
	return NULL;
}

/* Runs task with u, freshly set up, in a worker of its own to its end. */
static void
run_pops(struct unw *u, worker_fn task)
{
	worker_t *w;

	unw_init(u, 0);
	w = worker_create(task, u, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	worker_unref(w);
}

START_TEST(test_pop)
{
	static const int want[] = { 1 };
	struct unw u;

	run_pops(&u, task_pop);
	/* pop(0) dropped #2 unrun; pop(1) ran #1; neither runs again at
	 * the end. */
	ck_assert_int_eq(u.mid, 0);
	check_trail(&u.t, want, 1);
	unw_fini(&u);
}
END_TEST

static void *
task_pop_empty(void *arg)
{
	struct unw *u = arg;

	worker_cleanup_pop(1);
	worker_cleanup_pop(0);
	worker_cleanup_push(note, &u->s[0]);
	worker_cleanup_pop(1);
	worker_cleanup_pop(1);
	worker_cleanup_pop(0);
	u->mid = u->t.n;
	return NULL;
}

START_TEST(test_pop_empty)
{
	static const int want[] = { 1 };
	static const int want_root[] = { 1, 3 };
	struct unw u;

	run_pops(&u, task_pop_empty);
	ck_assert_int_eq(u.mid, 1);
	check_trail(&u.t, want, 1);

	/* On the main root worker too; there handlers run only when popped
	 * with execute, since a root never unwinds. */
	memset(&u.t, 0, sizeof(u.t));
	worker_cleanup_pop(1);
	worker_cleanup_pop(0);
	worker_cleanup_push(note, &u.s[0]);
	worker_cleanup_pop(1);
	worker_cleanup_push(note, &u.s[1]);
	worker_cleanup_pop(0);
	worker_cleanup_push(note, &u.s[2]);
	worker_exit();
	ck_assert_int_eq(u.t.n, 1);
	worker_cleanup_pop(1);
	worker_cleanup_pop(1);
	check_trail(&u.t, want_root, 2);
	unw_fini(&u);
}
END_TEST

/* A raw pthread's root worker with a child it gave itself as parent. */
struct rooted {
	struct trail t;
	struct step s;
	sem_t started;
	worker_t *root;
	worker_t *child;
	int create_errno;
	int returned;		/* worker_exit() on the root returned */
	int running_after;	/* the child ran after worker_exit() */
	int trail_after;	/* the child's trail after worker_exit() */
	int found_after;	/* the root still listed the child */
	int still_current;
};

static void *
task_root_child(void *arg)
{
	struct rooted *r = arg;

	worker_cleanup_push(note, &r->s);
	sem_post(&r->started);
	worker_wait_forever();
	worker_cleanup_pop(0);
	return NULL;
}

/* Makes the child under this thread's root and waits until it runs. */
static int
plain_make_child(struct rooted *r)
{
	worker_attr_t attr = { .name = "root-kid" };

	r->root = worker_current();
	if (r->root == NULL)
		return r->create_errno = errno;
	attr.parent = r->root;
	r->child = worker_create(task_root_child, r, &attr);
	if (r->child == NULL)
		return r->create_errno = errno;
	sem_wait_intr(&r->started);
	return 0;
}

static void *
plain_exit_root(void *arg)
{
	struct rooted *r = arg;
	worker_t *found;

	if (plain_make_child(r) != 0)
		return NULL;
	worker_exit();
	r->returned = 1;
	r->still_current = worker_current() == r->root;
	r->running_after = worker_is_running(r->child);
	/* The child was joined, so its handler's writes are visible. */
	r->trail_after = r->t.n;
	found = worker_find_child(r->root, "root-kid");
	r->found_after = found != NULL;
	worker_unref(found);
	worker_unref(r->child);
	return NULL;
}

static void
rooted_init(struct rooted *r)
{
	memset(r, 0, sizeof(*r));
	r->s.t = &r->t;
	r->s.id = 1;
	ck_assert_int_eq(sem_init(&r->started, 0, 0), 0);
}

START_TEST(test_exit_root)
{
	struct rooted r;
	pthread_t t;

	rooted_init(&r);
	ck_assert_int_eq(pthread_create(&t, NULL, plain_exit_root, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	CHECK_OK(r.create_errno);
	ck_assert_int_eq(r.returned, 1);
	ck_assert_int_eq(r.still_current, 1);
	ck_assert_int_eq(r.running_after, 0);
	ck_assert_int_eq(r.trail_after, 1);
	ck_assert_int_eq(r.found_after, 0);
	sem_destroy(&r.started);
}
END_TEST

static void *
plain_leave_child(void *arg)
{
	struct rooted *r = arg;

	/* Returns with the child running: the thread's exit ends its root,
	 * which stops the child. */
	plain_make_child(r);
	return NULL;
}

START_TEST(test_thread_exit_stops_children)
{
	struct rooted r;
	pthread_t t;
	void *ret = &r;

	rooted_init(&r);
	ck_assert_int_eq(pthread_create(&t, NULL, plain_leave_child, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	CHECK_OK(r.create_errno);
	ck_assert_ptr_nonnull(r.child);
	/* Hangs (and the TCase times out) if nothing stopped the child. */
	CHECK_OK(worker_join(r.child));
	ck_assert_int_eq(worker_is_running(r.child), 0);
	ck_assert_int_eq(r.t.n, 1);
	CHECK_OK(worker_result(r.child, &ret));
	ck_assert_ptr_null(ret);
	worker_unref(r.child);
	sem_destroy(&r.started);
}
END_TEST

enum { IN_EXIT, IN_FAIL, IN_NESTED_STOP };

static int
on_quit(const worker_event_t *ev, void *ctx)
{
	struct unw *u = ctx;

	(void)ev;
	switch (u->mode) {
	case IN_EXIT:
		worker_exit();
		break;
	case IN_FAIL:
		worker_fail(11);
		break;
	case IN_NESTED_STOP:
		sem_post(&u->entered);
		worker_wait_event("NEVER", NULL, -1, NULL);
		atomic_store(&u->after_nested, 1);
		break;
	}
	atomic_store(&u->after_listener, 1);
	return 0;
}

static void *
task_listen_wait(void *arg)
{
	struct unw *u = arg;

	worker_cleanup_push(note, &u->s[0]);
	sem_post(&u->started);
	worker_wait_event("NEVER", NULL, -1, NULL);
	atomic_store(&u->after, 1);
	worker_cleanup_pop(0);
	return (void *)1;
}

/* Fires QUIT at a worker waiting in its task and checks that its parent,
 * the main root, gets end_event with end_data. */
static void
run_listener(struct unw *u, int mode, const char *end_event,
    void *end_data, int want_rc)
{
	static const int want[] = { 1 };
	worker_attr_t attr;
	worker_t *w;
	void *data = &attr, *ret = &attr;

	unw_init(u, mode);
	memset(&attr, 0, sizeof(attr));
	attr.parent = worker_current();
	attr.quiet = 1;
	w = worker_new(task_listen_wait, u, &attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "QUIT", on_quit, u, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&u->started, "the task");
	CHECK_OK(worker_fire(w, "QUIT", NULL));
	if (mode == IN_NESTED_STOP) {
		sem_wait_ok(&u->entered, "the nested wait");
		CHECK_OK(worker_stop(w));
	}
	CHECK_OK(worker_wait_event(end_event, w, wait_limit(), &data));
	ck_assert_ptr_eq(data, end_data);
	CHECK_OK(worker_join(w));
	CHECK_RC(worker_result(w, &ret), want_rc);
	ck_assert_ptr_null(ret);
	check_trail(&u->t, want, 1);
	ck_assert_int_eq(atomic_load(&u->after), 0);
	ck_assert_int_eq(atomic_load(&u->after_listener), 0);
	ck_assert_int_eq(atomic_load(&u->after_nested), 0);
	worker_unref(w);
	unw_fini(u);
}

START_TEST(test_exit_in_listener)
{
	struct unw u;

	run_listener(&u, IN_EXIT, WORKER_CHILD_THREAD_STOP, NULL, 0);
}
END_TEST

START_TEST(test_fail_in_listener)
{
	struct unw u;

	run_listener(&u, IN_FAIL, WORKER_CHILD_THREAD_ERROR,
	    (void *)(intptr_t)11, 11);
}
END_TEST

START_TEST(test_stop_in_nested_wait)
{
	struct unw u;

	run_listener(&u, IN_NESTED_STOP, WORKER_CHILD_THREAD_STOP, NULL, 0);
}
END_TEST

/* The breakpoints a started worker can be stopped in. */
enum {
	IN_WAIT_EVENT, IN_WAIT_UNTIL, IN_SLEEP, IN_FOREVER, IN_UPDATE,
	IN_WAIT_THREAD, IN_N
};

struct stuck {
	sem_t started;
	int kind;
	worker_t *other;	/* what IN_WAIT_THREAD waits for */
	atomic_int after;
	atomic_int go;		/* the GO listener ran */
};

static int
is_go(const worker_event_t *ev, void *ctx)
{
	(void)ctx;
	return strcmp(ev->name, "GO") == 0;
}

static int
on_go(const worker_event_t *ev, void *ctx)
{
	struct stuck *s = ctx;

	(void)ev;
	atomic_store(&s->go, 1);
	return 0;
}

static void *
task_stuck(void *arg)
{
	struct stuck *s = arg;

	sem_post(&s->started);
	switch (s->kind) {
	case IN_WAIT_EVENT:
		worker_wait_event("GO", NULL, -1, NULL);
		break;
	case IN_WAIT_UNTIL:
		worker_wait_until(is_go, NULL, -1, NULL);
		break;
	case IN_SLEEP:
		worker_sleep(3600);
		break;
	case IN_FOREVER:
		worker_wait_forever();
		break;
	case IN_UPDATE:
		/* Spins through breakpoints that never block; only GO, which
		 * is queued behind the stop, would end the loop. */
		while (atomic_load(&s->go) == 0)
			worker_update();
		break;
	case IN_WAIT_THREAD:
		worker_wait_thread(s->other, NULL);
		break;
	}
	atomic_store(&s->after, 1);
	return (void *)1;
}

START_TEST(test_no_code_after_wait)
{
	struct stuck s;
	worker_t *w;
	void *ret = &s;
	int rc;

	memset(&s, 0, sizeof(s));
	s.kind = _i;
	ck_assert_int_eq(sem_init(&s.started, 0, 0), 0);
	if (s.kind == IN_WAIT_THREAD) {
		s.other = worker_create(NULL, NULL, NULL);
		ck_assert_ptr_nonnull(s.other);
	}
	w = worker_new(task_stuck, &s, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "GO", on_go, &s, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&s.started, "the task");
	CHECK_OK(worker_stop(w));
	/* GO lands behind the stop, or is refused if the worker already
	 * ended; either way the task must not see it. */
	rc = worker_fire(w, "GO", NULL);
	ck_assert_msg(rc == 0 || rc == ESRCH, "fire GO: %s", strerror(rc));
	CHECK_OK(worker_join(w));
	ck_assert_msg(atomic_load(&s.after) == 0, "kind %d went on", _i);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	if (s.other != NULL) {
		ck_assert_int_eq(worker_is_running(s.other), 1);
		CHECK_OK(worker_stop(s.other));
		CHECK_OK(worker_join(s.other));
		worker_unref(s.other);
	}
	worker_unref(w);
	sem_destroy(&s.started);
}
END_TEST

/*
 * An orderly stop: the STOP_THREAD listener waits for GO before it lets
 * the worker end.  A second STOP_THREAD that comes during that wait must
 * not cut the listener short; the worker unwinds once the listener is
 * done.  Since 0.2 the second stop is handled once, by the first: it
 * reaches no listener (0.1 called the listener again, nested, which a
 * storm of stops turned into a stack overflow).
 */
struct orderly {
	sem_t waiting;		/* the listener waits for GO */
	atomic_int finished;	/* the listener got past its wait */
	atomic_int after;	/* code after the task's wait ran */
	atomic_int stops;	/* STOP_THREAD listener calls */
};

static int
orderly_on_stop(const worker_event_t *ev, void *ctx)
{
	struct orderly *o = ctx;

	(void)ev;
	/* A second call would be the nesting that 0.2 forbids. */
	if (atomic_fetch_add(&o->stops, 1) > 0)
		return 0;
	sem_post(&o->waiting);
	if (worker_wait_event("GO", NULL, wait_limit(), NULL) == 0)
		atomic_store(&o->finished, 1);
	return 0;
}

static void *
orderly_task(void *arg)
{
	struct orderly *o = arg;

	worker_listen(worker_current(), WORKER_STOP_THREAD, orderly_on_stop,
	    o, NULL);
	worker_wait_forever();
	atomic_store(&o->after, 1);
	return NULL;
}

START_TEST(test_second_stop_waits)
{
	struct orderly o;
	worker_t *w;

	memset(&o, 0, sizeof(o));
	ck_assert_int_eq(sem_init(&o.waiting, 0, 0), 0);
	w = worker_create(orderly_task, &o, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_stop(w));
	sem_wait_ok(&o.waiting, "the STOP_THREAD listener");
	/* Queued in order: the second stop is handled in the wait first. */
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_fire(w, "GO", NULL));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(atomic_load(&o.finished), 1);
	ck_assert_int_eq(atomic_load(&o.stops), 1);
	ck_assert_int_eq(atomic_load(&o.after), 0);
	CHECK_OK(worker_result(w, NULL));
	worker_unref(w);
	sem_destroy(&o.waiting);
}
END_TEST

/*
 * A storm of stops while a STOP_THREAD listener waits (issue L3): 20,000
 * worker_stop() calls from the test's thread and 1,000 from the listener
 * itself, as a signal handled by worker_signals() would, all queued while
 * the listener waits for GO.  The worker is stopping already: the
 * listener is called once and the worker unwinds once.  Before the fix
 * each stop reached the listener again, nested in the wait of the one
 * before, and the nesting overflowed the stack.  Here a listener nested
 * deeper than STORM_NEST returns at once instead of waiting, so the old
 * behaviour shows as a count rather than a crash; GO is fired STORM_NEST
 * times so that every level that waits gets one.
 */
#define N_STORM		20000	/* stops from the test's thread */
#define N_SELF_STOPS	1000	/* stops from the listener, at itself */
#define STORM_NEST	32

struct storm {
	sem_t waiting;		/* the first listener call waits for GO */
	atomic_int calls;	/* STOP_THREAD listener calls */
	atomic_int depth;	/* listener calls running now */
	atomic_int max_depth;
	atomic_int self_fails;	/* self stops that were refused */
	atomic_int finished;	/* listener calls that got GO */
	atomic_int cleanups;	/* unwinds: the task's handler ran */
	atomic_int after;	/* code after the task's wait ran */
};

static int
storm_on_stop(const worker_event_t *ev, void *ctx)
{
	struct storm *st = ctx;
	int depth = atomic_fetch_add(&st->depth, 1) + 1;

	(void)ev;
	if (depth > atomic_load(&st->max_depth))
		atomic_store(&st->max_depth, depth);
	if (atomic_fetch_add(&st->calls, 1) == 0) {
		for (int i = 0; i < N_SELF_STOPS; i++)
			if (worker_stop(worker_current()) != 0)
				atomic_fetch_add(&st->self_fails, 1);
		sem_post(&st->waiting);
	}
	if (depth <= STORM_NEST &&
	    worker_wait_event("GO", NULL, wait_limit(), NULL) == 0)
		atomic_fetch_add(&st->finished, 1);
	atomic_fetch_sub(&st->depth, 1);
	return 0;
}

static void *
storm_task(void *arg)
{
	struct storm *st = arg;

	worker_cleanup_push(count_cb, &st->cleanups);
	worker_wait_forever();
	atomic_store(&st->after, 1);
	worker_cleanup_pop(0);
	return NULL;
}

START_TEST(test_stop_storm)
{
	struct storm st;
	worker_t *w;
	int fails = 0;
	void *ret = &st;

	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(sem_init(&st.waiting, 0, 0), 0);
	w = worker_new(storm_task, &st, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, WORKER_STOP_THREAD, storm_on_stop, &st,
	    NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_stop(w));
	sem_wait_ok(&st.waiting, "the STOP_THREAD listener");
	for (int i = 0; i < N_STORM; i++)
		if (worker_stop(w) != 0)
			fails++;
	CHECK_OK(worker_fire(w, "GO", NULL));
	/* Only nested listeners would need these: the worker may have
	 * ended already. */
	for (int i = 1; i < STORM_NEST; i++) {
		int rc = worker_fire(w, "GO", NULL);

		ck_assert_msg(rc == 0 || rc == ESRCH, "fire GO: %s",
		    strerror(rc));
	}
	join_bounded(w, "the worker stopped by the storm");

	ck_assert_msg(atomic_load(&st.calls) == 1, "the STOP_THREAD "
	    "listener was called %d times, nested %d deep; want once",
	    atomic_load(&st.calls), atomic_load(&st.max_depth));
	CHECK_ATOMIC(&st.max_depth, 1);
	CHECK_ATOMIC(&st.finished, 1);
	CHECK_ATOMIC(&st.cleanups, 1);
	CHECK_ATOMIC(&st.after, 0);
	CHECK_ATOMIC(&st.self_fails, 0);
	ck_assert_int_eq(fails, 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(worker_is_running(w), 0);
	worker_unref(w);
	sem_destroy(&st.waiting);
}
END_TEST

/*
 * Cleanup handlers and the wait they interrupted (issue L1).  A handler
 * runs after the library has let go of what the wait used, so it may free
 * that: a defer the worker was getting, the last reference to a worker it
 * waited for.  Before the fix the handlers ran first and the wait's own
 * unwinding then touched freed memory (ASan: heap-use-after-free).
 */
struct l1 {
	worker_defer_t *d;
	worker_t *other;	/* the worker waited for; ours to drop */
	sem_t in_wait;		/* the worker is inside its wait */
	sem_t release;		/* lets the HOLD listener return */
	atomic_int handled;	/* runs of the freeing handler */
	atomic_int after;	/* code past the wait ran */
};

static void
l1_init(struct l1 *l)
{
	memset(l, 0, sizeof(*l));
	ck_assert_int_eq(sem_init(&l->in_wait, 0, 0), 0);
	ck_assert_int_eq(sem_init(&l->release, 0, 0), 0);
}

static void
l1_fini(struct l1 *l)
{
	sem_destroy(&l->in_wait);
	sem_destroy(&l->release);
}

static void
free_defer(void *arg)
{
	struct l1 *l = arg;

	atomic_fetch_add(&l->handled, 1);
	worker_defer_free(l->d);
}

static void *
task_get_then_free(void *arg)
{
	struct l1 *l = arg;

	worker_cleanup_push(free_defer, l);
	/* A timer with delay 0 runs at the first breakpoint: the get. */
	worker_later(worker_current(), post_cb, &l->in_wait, 0, NULL);
	worker_defer_get(l->d, -1, NULL);
	atomic_store(&l->after, 1);
	worker_cleanup_pop(0);
	return NULL;
}

/* Stopped inside worker_defer_get(d), the handler frees d. */
START_TEST(test_cleanup_frees_defer)
{
	struct l1 l;
	worker_t *w;
	void *ret = &l;

	l1_init(&l);
	l.d = worker_defer_new();
	ck_assert_ptr_nonnull(l.d);
	w = worker_create(task_get_then_free, &l, NULL);
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&l.in_wait, "the worker in its get");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	/* The handler freed d: nothing here may touch it again. */
	CHECK_ATOMIC(&l.handled, 1);
	CHECK_ATOMIC(&l.after, 0);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	worker_unref(w);
	l1_fini(&l);
}
END_TEST

static void
drop_other(void *arg)
{
	struct l1 *l = arg;

	atomic_fetch_add(&l->handled, 1);
	worker_unref(l->other);
}

/* Holds the worker inside its wait until the test lets it go. */
static int
on_hold(const worker_event_t *ev, void *ctx)
{
	struct l1 *l = ctx;

	(void)ev;
	sem_post(&l->in_wait);
	sem_wait_bounded(&l->release);
	return 0;
}

static void *
task_wait_then_drop(void *arg)
{
	struct l1 *l = arg;

	worker_cleanup_push(drop_other, l);
	worker_wait_thread(l->other, NULL);
	atomic_store(&l->after, 1);
	worker_cleanup_pop(0);
	return NULL;
}

/*
 * Stopped inside worker_wait_thread(other), the handler drops the last
 * reference to other.  The worker is held in a listener inside the wait
 * while the test queues the stop, ends other and drops its own reference:
 * when the worker goes on, other has ended, so the wait would return, but
 * the stop queued before that is handled first and unwinds it.
 */
START_TEST(test_cleanup_drops_waited)
{
	struct l1 l;
	worker_t *w, *other;

	l1_init(&l);
	other = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(other);
	l.other = worker_ref(other);	/* the handler's to drop */
	w = worker_new(task_wait_then_drop, &l, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "HOLD", on_hold, &l, NULL));
	CHECK_OK(worker_start(w));
	/* Its only breakpoint is the wait_thread, after the push. */
	CHECK_OK(worker_fire(w, "HOLD", NULL));
	sem_wait_ok(&l.in_wait, "the worker held in its wait");
	CHECK_OK(worker_stop(w));
	/* The join also reaps other's thread, which drops its own
	 * reference: the handler's is the last one left. */
	CHECK_OK(worker_stop(other));
	CHECK_OK(worker_join(other));
	worker_unref(other);
	sem_post(&l.release);
	CHECK_OK(worker_join(w));
	CHECK_ATOMIC(&l.handled, 1);
	CHECK_ATOMIC(&l.after, 0);
	CHECK_OK(worker_result(w, NULL));
	worker_unref(w);
	l1_fini(&l);
}
END_TEST

/*
 * The order across nesting.  The task pushes #1 and #2 and gets the
 * outer defer; inside that wait the GO listener pushes #3 and #4 and gets
 * the inner defer, where the stop comes.  Handlers run newest first, and
 * each after the library let go of the wait it interrupted: #4 and #3
 * while the GO event is still being handled (its data valid), then GO is
 * released (its data_free notes #9), then #2 and #1.  #4 frees the inner
 * defer and #2 the outer one, so a hook run late is a use after free.
 */
#define GO_FREED 9

struct nest {
	struct trail t;
	struct step s[4];
	struct step go_freed;
	worker_defer_t *outer, *inner;
	sem_t in_inner;
	atomic_int after;
	atomic_int after_listener;
};

static void
nest_free_outer(void *arg)
{
	struct nest *n = arg;

	note(&n->s[1]);
	worker_defer_free(n->outer);
}

static void
nest_free_inner(void *arg)
{
	struct nest *n = arg;

	note(&n->s[3]);
	worker_defer_free(n->inner);
}

/* GO's data_free: its data is the nest. */
static void
go_free(void *arg)
{
	struct nest *n = arg;

	note(&n->go_freed);
}

static int
on_go_nest(const worker_event_t *ev, void *ctx)
{
	struct nest *n = ctx;

	(void)ev;
	worker_cleanup_push(note, &n->s[2]);
	worker_cleanup_push(nest_free_inner, n);
	worker_later(worker_current(), post_cb, &n->in_inner, 0, NULL);
	worker_defer_get(n->inner, -1, NULL);
	atomic_store(&n->after_listener, 1);
	return 0;
}

static void *
task_nest(void *arg)
{
	struct nest *n = arg;

	worker_cleanup_push(note, &n->s[0]);
	worker_cleanup_push(nest_free_outer, n);
	worker_defer_get(n->outer, -1, NULL);
	atomic_store(&n->after, 1);
	return NULL;
}

START_TEST(test_cleanup_order_nested)
{
	static const int want[] = { 4, 3, GO_FREED, 2, 1 };
	struct nest n;
	worker_t *w;
	int i;

	memset(&n, 0, sizeof(n));
	for (i = 0; i < 4; i++) {
		n.s[i].t = &n.t;
		n.s[i].id = i + 1;
	}
	n.go_freed.t = &n.t;
	n.go_freed.id = GO_FREED;
	ck_assert_int_eq(sem_init(&n.in_inner, 0, 0), 0);
	n.outer = worker_defer_new();
	n.inner = worker_defer_new();
	ck_assert_ptr_nonnull(n.outer);
	ck_assert_ptr_nonnull(n.inner);
	w = worker_new(task_nest, &n, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "GO", on_go_nest, &n, NULL));
	CHECK_OK(worker_start(w));
	/* Handled at the task's first breakpoint, its outer get. */
	CHECK_OK(worker_fire_ex(w, "GO", &n, go_free, 0));
	sem_wait_ok(&n.in_inner, "the GO listener in its get");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	check_trail(&n.t, want, 5);
	CHECK_ATOMIC(&n.after, 0);
	CHECK_ATOMIC(&n.after_listener, 0);
	CHECK_OK(worker_result(w, NULL));
	worker_unref(w);
	sem_destroy(&n.in_inner);
}
END_TEST

/*
 * worker_fail(err): a negative err is EINVAL in the caller's thread,
 * without unwinding, and the task goes on; 0 is worker_exit(); a positive
 * err is the fail code.  The worker's parent, main's root, sees how it
 * ended.
 */
struct fail_case {
	int code;
	int unwinds;		/* worker_fail() does not return */
	const char *end_event;	/* what the parent gets */
	void *end_data;
	int result;		/* worker_result() */
	void *ret;
};

static const struct fail_case fail_cases[] = {
	{ -7, 0, WORKER_CHILD_THREAD_DONE, (void *)0x55, 0, (void *)0x55 },
	{ INT_MIN, 0, WORKER_CHILD_THREAD_DONE, (void *)0x55, 0, (void *)0x55 },
	{ 0, 1, WORKER_CHILD_THREAD_STOP, NULL, 0, NULL },
	{ 5, 1, WORKER_CHILD_THREAD_ERROR, (void *)(intptr_t)5, 5, NULL },
};

struct failer {
	struct trail t;
	struct step s;
	int code;
	int rc;			/* what worker_fail() returned */
	int mid;		/* handlers run by then */
	atomic_int after;
};

static void *
task_fail_code(void *arg)
{
	struct failer *f = arg;

	worker_cleanup_push(note, &f->s);
	f->rc = worker_fail(f->code);
	f->mid = f->t.n;
	atomic_store(&f->after, 1);
	/* Returning would run the handler: drop it to tell the two ends
	 * apart. */
	worker_cleanup_pop(0);
	return (void *)0x55;
}

/* Which of CHILD_THREAD_DONE, _STOP and _ERROR w sent its parent. */
struct end_of {
	worker_t *w;
	const char *name;
};

static int
is_end_of(const worker_event_t *ev, void *ctx)
{
	static const char *const ends[] = {
		WORKER_CHILD_THREAD_DONE, WORKER_CHILD_THREAD_STOP,
		WORKER_CHILD_THREAD_ERROR,
	};
	struct end_of *e = ctx;

	if (ev->source != e->w)
		return 0;
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		if (strcmp(ev->name, ends[i]) == 0) {
			e->name = ends[i];
			return 1;
		}
	return 0;
}

START_TEST(test_fail_codes)
{
	const struct fail_case *fc = &fail_cases[_i];
	worker_attr_t attr = { .quiet = 1 };
	struct failer f;
	struct end_of end;
	worker_t *w;
	void *data = &f, *ret = &f;

	memset(&f, 0, sizeof(f));
	f.s.t = &f.t;
	f.s.id = 1;
	f.code = fc->code;
	f.rc = -1;
	attr.parent = worker_current();
	w = worker_create(task_fail_code, &f, &attr);
	ck_assert_ptr_nonnull(w);
	end.w = w;
	end.name = NULL;
	CHECK_OK(worker_wait_until(is_end_of, &end, wait_limit(), &data));
	ck_assert_msg(strcmp(end.name, fc->end_event) == 0, "worker_fail(%d):"
	    " the parent got %s, want %s", fc->code, end.name, fc->end_event);
	ck_assert_msg(data == fc->end_data, "worker_fail(%d): %s data %p, "
	    "want %p", fc->code, fc->end_event, data, fc->end_data);
	CHECK_OK(worker_wait_event(WORKER_CHILD_THREAD_END, w, wait_limit(),
	    NULL));
	CHECK_OK(worker_join(w));
	if (fc->unwinds) {
		/* The handler ran on the way out; nothing after the call. */
		ck_assert_int_eq(atomic_load(&f.after), 0);
		ck_assert_int_eq(f.t.n, 1);
	} else {
		CHECK_RC(f.rc, EINVAL);
		ck_assert_int_eq(atomic_load(&f.after), 1);
		ck_assert_int_eq(f.mid, 0);
		ck_assert_int_eq(f.t.n, 0);
	}
	CHECK_RC(worker_result(w, &ret), fc->result);
	ck_assert_ptr_eq(ret, fc->ret);
	worker_unref(w);
}
END_TEST

/* On a root worker a negative code is EINVAL too, and not worker_exit():
 * the root's child keeps running and its handler stays. */
START_TEST(test_fail_negative_root)
{
	struct trail t = { .n = 0 };
	struct step s = { .t = &t, .id = 1 };
	worker_attr_t attr = { .name = "root-kid" };
	worker_t *root = worker_current(), *c;

	ck_assert_ptr_nonnull(root);
	attr.parent = root;
	c = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(c);
	worker_cleanup_push(note, &s);
	CHECK_RC(worker_fail(-1), EINVAL);
	CHECK_RC(worker_fail(INT_MIN), EINVAL);
	ck_assert_int_eq(t.n, 0);
	ck_assert_ptr_eq(worker_current(), root);
	ck_assert_int_eq(worker_is_running(c), 1);
	worker_cleanup_pop(0);
	ck_assert_int_eq(t.n, 0);
	CHECK_OK(worker_stop(c));
	CHECK_OK(worker_wait_event(WORKER_CHILD_THREAD_END, c, wait_limit(),
	    NULL));
	CHECK_OK(worker_join(c));
	worker_unref(c);
}
END_TEST

/*
 * A handler that a listener of the end sequence leaves pushed runs when
 * that listener's call is over, in the same run (the fuzzer's N1: it ran
 * in the next run, or never).
 */
static atomic_int late_handler_runs;

static void
late_handler(void *arg)
{
	(void)arg;
	atomic_fetch_add(&late_handler_runs, 1);
}

static int
on_late(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	worker_cleanup_push(late_handler, NULL);
	return 0;
}

static void *
returns_with_late_queued(void *arg)
{
	/* Queued now, handled only by the end sequence's drain. */
	worker_fire(worker_current(), "late", NULL);
	return arg;
}

START_TEST(drain_runs_left_handlers)
{
	worker_t *w = worker_new(returns_with_late_queued, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	atomic_store(&late_handler_runs, 0);
	CHECK_OK(worker_listen(w, "late", on_late, NULL, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join_timeout(w, wait_limit()));
	ck_assert_int_eq(atomic_load(&late_handler_runs), 1);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_join_timeout(w, wait_limit()));
	ck_assert_int_eq(atomic_load(&late_handler_runs), 2);
	worker_unref(w);
}
END_TEST

Suite *
suite_unwind(void)
{
	Suite *s = suite_create("unwind");

	tcase_add_test(test_case(s, "cleanup_on_exit"), test_cleanup_on_exit);
	tcase_add_test(test_case(s, "cleanup_on_fail"), test_cleanup_on_fail);
	tcase_add_test(test_case(s, "cleanup_on_stop"), test_cleanup_on_stop);
	tcase_add_test(test_case(s, "cleanup_on_return"),
	    test_cleanup_on_return);
	tcase_add_test(test_case(s, "pop"), test_pop);
	tcase_add_test(test_case(s, "pop_empty"), test_pop_empty);
	tcase_add_test(test_case(s, "exit_root"), test_exit_root);
	tcase_add_test(test_case(s, "thread_exit_stops_children"),
	    test_thread_exit_stops_children);
	tcase_add_test(test_case(s, "exit_in_listener"),
	    test_exit_in_listener);
	tcase_add_test(test_case(s, "fail_in_listener"),
	    test_fail_in_listener);
	tcase_add_test(test_case(s, "drain_handlers"),
	    drain_runs_left_handlers);
	tcase_add_test(test_case(s, "second_stop_waits"),
	    test_second_stop_waits);
	tcase_add_test(test_case(s, "stop_storm"), test_stop_storm);
	tcase_add_test(test_case(s, "stop_in_nested_wait"),
	    test_stop_in_nested_wait);
	tcase_add_loop_test(test_case(s, "no_code_after_wait"),
	    test_no_code_after_wait, 0, IN_N);
	tcase_add_test(test_case(s, "cleanup_frees_defer"),
	    test_cleanup_frees_defer);
	tcase_add_test(test_case(s, "cleanup_drops_waited"),
	    test_cleanup_drops_waited);
	tcase_add_test(test_case(s, "cleanup_order_nested"),
	    test_cleanup_order_nested);
	tcase_add_loop_test(test_case(s, "fail_codes"), test_fail_codes, 0,
	    (int)(sizeof(fail_cases) / sizeof(fail_cases[0])));
	tcase_add_test(test_case(s, "fail_negative_root"),
	    test_fail_negative_root);
	return s;
}
