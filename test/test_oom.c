/*
 * test_oom.c - when memory runs out (failmalloc.c): a stop still stops a
 * whole tree, a dispatch never aborts, calls that cannot allocate say
 * ENOMEM, and every payload destructor runs exactly once.
 *
 * Each test arms the schedule only around what it tests and disarms it
 * before it checks: Check's own assertions allocate, and would fail.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>

#include "failmalloc.h"
#include "test.h"
#include "util.h"

/* ---- A stop under memory exhaustion reaches every worker (L6) ------- */

struct tree {
	worker_t *top;
	worker_t *kids[4];
	sem_t ready;		/* the top and its children are up */
	atomic_int destroyed;	/* payload destructor calls */
	atomic_int accepted;	/* fires that took a payload */
};

static void
count_free(void *ctx)
{
	atomic_fetch_add(&((struct tree *)ctx)->destroyed, 1);
}

static void *
tree_top(void *arg)
{
	struct tree *t = arg;

	for (int i = 0; i < 4; i++)
		if ((t->kids[i] = worker_create(NULL, NULL, NULL)) == NULL)
			return NULL;
	sem_post(&t->ready);
	worker_wait_forever();
	return NULL;
}

/* Fires a counted payload at w and its children; fires that refuse it
 * have freed it too. */
static void
fire_counted(struct tree *t, worker_t *w)
{
	atomic_fetch_add(&t->accepted, 1);
	worker_fire_ex(w, "payload", t, count_free, WORKER_BROADCAST);
}

/*
 * Every allocation from the first on fails, or every n-th one: the top's
 * stop, its children's stops and their CHILD_THREAD_* notices come from
 * memory reserved in advance, so the join returns (0.1 hung: a stop that
 * could not be allocated left a child running and its parent joined it).
 */
static void
stop_tree_under(long after, long every)
{
	struct tree t = { 0 };
	int stop_rc, join_rc;

	ck_assert_int_eq(sem_init(&t.ready, 0, 0), 0);
	t.top = worker_create(tree_top, &t, NULL);
	ck_assert_ptr_nonnull(t.top);
	sem_wait_ok(&t.ready, "the tree");

	failmalloc_arm(after, every);
	for (int i = 0; i < 50; i++)
		fire_counted(&t, t.top);
	stop_rc = worker_stop(t.top);
	join_rc = worker_join(t.top);
	failmalloc_disarm();
	CHECK_RC(stop_rc, 0);
	CHECK_RC(join_rc, 0);
	ck_assert_int_eq(atomic_load(&t.destroyed), atomic_load(&t.accepted));
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(worker_is_running(t.kids[i]), 0);
		worker_unref(t.kids[i]);
	}
	worker_unref(t.top);
	sem_destroy(&t.ready);
}

START_TEST(oom_stop_reaches_tree)
{
	stop_tree_under(0, 0);
}
END_TEST

START_TEST(oom_stop_every_nth)
{
	for (long every = 2; every <= 9; every++)
		stop_tree_under(-1, every);
	for (long after = 1; after <= 40; after += 3)
		stop_tree_under(after, 0);
}
END_TEST

/* ---- A dispatch never aborts (L7) ----------------------------------- */

#define MANY 40		/* more listeners than a dispatch keeps on its stack */

struct many {
	sem_t go;		/* the task may reach its breakpoint */
	atomic_int calls[MANY];
};

static int
on_many(const worker_event_t *ev, void *ctx)
{
	atomic_int *n = ctx;

	(void)ev;
	atomic_fetch_add(n, 1);
	return 0;
}

static void *
many_task(void *arg)
{
	struct many *m = arg;

	/* Not at a breakpoint: the events queue up meanwhile. */
	sem_wait_intr(&m->go);
	worker_update();
	return NULL;
}

START_TEST(oom_dispatch_many_listeners)
{
	struct many m;
	worker_t *w;
	int join_rc;

	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(sem_init(&m.go, 0, 0), 0);
	w = worker_new(many_task, &m, NULL);
	ck_assert_ptr_nonnull(w);
	for (int i = 0; i < MANY; i++)
		CHECK_OK(worker_listen(w, "e", on_many, &m.calls[i], NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "e", NULL));
	CHECK_OK(worker_fire(w, "e", NULL));
	/* The dispatch cannot grow its snapshot past the stack. */
	failmalloc_arm(0, 0);
	sem_post(&m.go);
	join_rc = worker_join(w);
	failmalloc_disarm();
	CHECK_RC(join_rc, 0);
	ck_assert_int_gt(failmalloc_failed(), 0);
	for (int i = 0; i < MANY; i++)
		ck_assert_msg(atomic_load(&m.calls[i]) == 2,
		    "listener %d ran %d times, want 2", i,
		    atomic_load(&m.calls[i]));
	worker_unref(w);
	sem_destroy(&m.go);
}
END_TEST

/* ---- Calls that cannot allocate say ENOMEM --------------------------- */

static void
nothing(void *arg)
{
	(void)arg;
}

static void *
push_task(void *arg)
{
	int *rc = arg;

	failmalloc_arm(0, 0);
	*rc = worker_cleanup_push(nothing, NULL);
	failmalloc_disarm();
	return NULL;
}

START_TEST(oom_calls_say_enomem)
{
	worker_t *w = worker_create(NULL, NULL, NULL);
	int push_rc = -1;
	int rc[4];
	worker_t *p;

	ck_assert_ptr_nonnull(w);
	failmalloc_arm(0, 0);
	p = worker_new(NULL, NULL, NULL);
	rc[0] = errno;
	rc[1] = worker_listen(w, "e", on_many, NULL, NULL);
	rc[2] = worker_later(w, nothing, NULL, 1, NULL);
	rc[3] = worker_fire(w, "a name too long for a ring slot", NULL);
	failmalloc_disarm();
	ck_assert_ptr_null(p);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(rc[i] == ENOMEM, "call %d: %s, want ENOMEM", i,
		    strerror(rc[i]));

	p = worker_create(push_task, &push_rc, NULL);
	ck_assert_ptr_nonnull(p);
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(push_rc, ENOMEM);
	worker_unref(p);
	stop_join_unref(w);
}
END_TEST

Suite *
suite_oom(void)
{
	Suite *s = suite_create("oom");
	TCase *tc;

	tc = test_case(s, "oom");
	tcase_add_test(tc, oom_stop_reaches_tree);
	tcase_add_test(tc, oom_stop_every_nth);
	tcase_add_test(tc, oom_dispatch_many_listeners);
	tcase_add_test(tc, oom_calls_say_enomem);
	return s;
}
