/*
 * test_supervise.c - supervision (supervise.c): a parent restarts the
 * children that end while it runs, by their restart policy and its
 * strategy, within its intensity, after a delay that doubles, and gives
 * up with ECHILD (so its own parent may restart it).
 *
 * Children count their runs; the test waits for a count, never for a
 * time, and a test that waits too long fails with its TCase timeout.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "util.h"

/* A child: fails its first `fails` runs, then waits until stopped. */
struct kid {
	atomic_int runs;
	int fails;		/* runs that end with worker_fail(EIO) */
	int returns;		/* runs after those that return */
	char mark;		/* written to the log as each run unwinds */
	struct endlog *log;
	atomic_int *group;	/* if set: fail only once this many ran */
	int group_size;
};

/* The order in which runs unwound (a failure or a stop). */
struct endlog {
	atomic_int n;
	char seq[64];
};

static void
kid_unwinds(void *arg)
{
	struct kid *k = arg;
	int i = atomic_fetch_add(&k->log->n, 1);

	if (i < (int)sizeof(k->log->seq) - 1)
		k->log->seq[i] = k->mark;
}

static void *
kid_task(void *arg)
{
	struct kid *k = arg;
	int run = atomic_fetch_add(&k->runs, 1) + 1;

	if (k->log != NULL)
		worker_cleanup_push(kid_unwinds, k);
	if (k->group != NULL && run == 1) {
		double until = now() + wait_limit();

		atomic_fetch_add(k->group, 1);
		while (atomic_load(k->group) < k->group_size && now() < until)
			worker_sleep(0.001);
	}
	if (run <= k->fails)
		worker_fail(EIO);
	if (run <= k->fails + k->returns)
		return NULL;
	worker_wait_forever();
	return NULL;
}

/* Runs the caller's loop until *n reaches want (a root supervises here). */
static int
wait_count(atomic_int *n, int want)
{
	double until = now() + wait_limit();

	while (atomic_load(n) < want && now() < until)
		worker_sleep(0.001);
	return atomic_load(n);
}

static worker_t *
kid_new(worker_t *parent, struct kid *k, int restart)
{
	worker_t *c = worker_create(kid_task, k, &(worker_attr_t){
		.parent = parent, .restart = restart, .quiet = 1 });

	ck_assert_ptr_nonnull(c);
	return c;
}

static worker_t *
supervisor(int strategy, int restart_max, double delay)
{
	worker_t *p = worker_create(NULL, NULL, &(worker_attr_t){
		.strategy = strategy, .restart_max = restart_max,
		.restart_delay = delay, .quiet = 1 });

	ck_assert_ptr_nonnull(p);
	return p;
}

/* ---- Policies ----------------------------------------------------- */

START_TEST(permanent_comes_back)
{
	struct kid k = { .fails = 1, .returns = 1 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 0);
	worker_t *c = kid_new(p, &k, WORKER_RESTART_PERMANENT);

	/* Failed, returned, then runs: three runs, one handle. */
	ck_assert_int_eq(wait_count(&k.runs, 3), 3);
	ck_assert_ptr_eq(worker_find_child(p, worker_name(c)), c);
	worker_unref(c);	/* the reference worker_find_child took */
	stop_join(p);
	ck_assert_int_eq(worker_is_running(c), 0);
	ck_assert_int_eq(atomic_load(&k.runs), 3);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

START_TEST(transient_after_failure_only)
{
	struct kid fails = { .fails = 1 };
	struct kid returns = { .returns = 1 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 0);
	worker_t *a = kid_new(p, &fails, WORKER_RESTART_TRANSIENT);
	worker_t *b = kid_new(p, &returns, WORKER_RESTART_TRANSIENT);

	ck_assert_int_eq(wait_count(&fails.runs, 2), 2);
	CHECK_OK(worker_join_timeout(b, wait_limit()));
	/* A fence: an event P handles after b's CHILD_THREAD_END. */
	CHECK_OK(worker_fire(p, "fence", NULL));
	stop_join(p);
	ck_assert_int_eq(atomic_load(&returns.runs), 1);
	ck_assert_int_eq(atomic_load(&fails.runs), 2);
	worker_unref(a);
	worker_unref(b);
	worker_unref(p);
}
END_TEST

START_TEST(temporary_and_set_restart)
{
	struct kid k = { .fails = 5 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 0);
	worker_t *c = worker_new(kid_task, &k, &(worker_attr_t){
		.parent = p, .restart = WORKER_RESTART_PERMANENT, .quiet = 1 });

	ck_assert_ptr_nonnull(c);
	CHECK_RC(worker_set_restart(NULL, WORKER_RESTART_TEMPORARY), EINVAL);
	CHECK_RC(worker_set_restart(c, 3), EINVAL);
	CHECK_RC(worker_set_restart(worker_current(),
	    WORKER_RESTART_PERMANENT), EINVAL);
	CHECK_OK(worker_set_restart(c, WORKER_RESTART_TEMPORARY));
	CHECK_OK(worker_start(c));
	CHECK_OK(worker_join_timeout(c, wait_limit()));
	CHECK_OK(worker_fire(p, "fence", NULL));
	stop_join(p);
	ck_assert_int_eq(atomic_load(&k.runs), 1);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

START_TEST(bad_attributes)
{
	worker_attr_t bad[] = {
		{ .restart = 3 }, { .restart = -1 }, { .strategy = 3 },
		{ .strategy = -1 }, { .restart_max = -1 },
		{ .restart_period = -1 }, { .restart_period = NAN },
		{ .restart_delay = -1 }, { .restart_delay = INFINITY },
		{ .stop_order = 2 }, { .stop_timeout = NAN },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(worker_new(NULL, NULL, &bad[i]) == NULL &&
		    errno == EINVAL, "attribute set %zu was accepted", i);
	}
}
END_TEST

/* ---- Strategies ---------------------------------------------------- */

/*
 * Three PERMANENT children a, b, c; b fails on its first run.  ONE_FOR_ALL
 * ends c and a (the newest first, each in turn) and starts all three
 * again; REST_FOR_ONE does that for b and c only.  The log has each
 * unwinding: the failure, the strategy's stops, then the final stop of
 * the parent (the newest first).
 */
static void
strategy_case(int strategy, const char *want_seq, const int want_runs[3])
{
	struct endlog log;
	struct kid k[3];
	worker_t *kids[3];
	worker_t *p = supervisor(strategy, 10, 0);

	memset(&log, 0, sizeof(log));
	memset(k, 0, sizeof(k));
	for (int i = 0; i < 3; i++) {
		k[i].mark = (char)('A' + i);
		k[i].log = &log;
		k[i].fails = i == 1;
	}
	/* b must not fail before c has started: start them in order. */
	kids[0] = kid_new(p, &k[0], WORKER_RESTART_PERMANENT);
	ck_assert_int_eq(wait_count(&k[0].runs, 1), 1);
	kids[2] = NULL;
	kids[1] = worker_new(kid_task, &k[1], &(worker_attr_t){
		.parent = p, .restart = WORKER_RESTART_PERMANENT, .quiet = 1 });
	kids[2] = worker_new(kid_task, &k[2], &(worker_attr_t){
		.parent = p, .restart = WORKER_RESTART_PERMANENT, .quiet = 1 });
	ck_assert_ptr_nonnull(kids[1]);
	ck_assert_ptr_nonnull(kids[2]);
	CHECK_OK(worker_start(kids[2]));
	ck_assert_int_eq(wait_count(&k[2].runs, 1), 1);
	CHECK_OK(worker_start(kids[1]));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wait_count(&k[i].runs, want_runs[i]),
		    want_runs[i]);
	stop_join(p);
	ck_assert_msg(strncmp(log.seq, want_seq, strlen(want_seq)) == 0,
	    "starts %s, want %s", log.seq, want_seq);
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(atomic_load(&k[i].runs) == want_runs[i],
		    "child %c ran %d times, want %d", 'a' + i,
		    atomic_load(&k[i].runs), want_runs[i]);
		worker_unref(kids[i]);
	}
	worker_unref(p);
}

START_TEST(one_for_all)
{
	static const int runs[3] = { 2, 2, 2 };

	/* b failed; c then a were stopped; at the end, c b a. */
	strategy_case(WORKER_ONE_FOR_ALL, "BCACBA", runs);
}
END_TEST

START_TEST(rest_for_one)
{
	static const int runs[3] = { 1, 2, 2 };

	/* The order of the siblings is the order they were made: b before
	 * c, although c was started first.  b failed, c was stopped; both
	 * came back, a stayed. */
	strategy_case(WORKER_REST_FOR_ONE, "BCCBA", runs);
}
END_TEST

/* A TEMPORARY sibling ends with its group, and stays ended. */
START_TEST(temporary_not_restarted_by_group)
{
	struct kid perm = { .fails = 1 };
	struct kid temp = { 0 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ALL, 10, 0);
	worker_t *t = kid_new(p, &temp, WORKER_RESTART_TEMPORARY);
	worker_t *c;

	ck_assert_int_eq(wait_count(&temp.runs, 1), 1);
	c = kid_new(p, &perm, WORKER_RESTART_PERMANENT);
	ck_assert_int_eq(wait_count(&perm.runs, 2), 2);
	CHECK_OK(worker_join_timeout(t, wait_limit()));
	stop_join(p);
	ck_assert_int_eq(atomic_load(&temp.runs), 1);
	worker_unref(t);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

/* A CHILD_THREAD_END fired by hand while the child runs restarts nothing
 * and does not hold its parent (which would wait for the child's end). */
static void *
forger(void *arg)
{
	struct kid *k = arg;

	atomic_fetch_add(&k->runs, 1);
	for (int i = 0; i < 5; i++)
		worker_parent_fire(worker_current(), WORKER_CHILD_THREAD_END,
		    NULL);
	worker_wait_forever();
	return NULL;
}

START_TEST(forged_end_restarts_nothing)
{
	struct kid k = { 0 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 0);
	worker_t *c = worker_create(forger, &k, &(worker_attr_t){
		.parent = p, .restart = WORKER_RESTART_PERMANENT });

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(wait_count(&k.runs, 1), 1);
	/* A fence behind the forged events: the parent is not held. */
	CHECK_OK(worker_fire(p, "fence", NULL));
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join_timeout(p, wait_limit()));
	ck_assert_int_eq(atomic_load(&k.runs), 1);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

/* A restart racing the parent's own stop: the parent ends, and so does
 * the child, whatever the interleaving. */
START_TEST(restart_races_parent_stop)
{
	for (int round = 0; round < 30; round++) {
		struct kid k = { .fails = 1000000 };
		worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 100000, 0);
		worker_t *c = kid_new(p, &k, WORKER_RESTART_PERMANENT);

		wait_count(&k.runs, 1 + round % 5);
		CHECK_OK(worker_stop(p));
		CHECK_OK(worker_join_timeout(p, wait_limit()));
		CHECK_OK(worker_join_timeout(c, wait_limit()));
		ck_assert_int_eq(worker_is_running(c), 0);
		worker_unref(c);
		worker_unref(p);
	}
}
END_TEST

/* Two members of a ONE_FOR_ALL group fail together, once all three run:
 * the second's end comes while the first's restart stops its siblings.
 * All come back. */
START_TEST(one_for_all_overlapping_failures)
{
	atomic_int group = 0;
	struct kid k[3];
	worker_t *kids[3];
	worker_t *p = supervisor(WORKER_ONE_FOR_ALL, 100, 0);

	memset(k, 0, sizeof(k));
	k[0].fails = 1;
	k[1].fails = 1;
	for (int i = 0; i < 3; i++) {
		k[i].group = &group;
		k[i].group_size = 3;
	}
	for (int i = 0; i < 3; i++)
		kids[i] = kid_new(p, &k[i], WORKER_RESTART_PERMANENT);
	for (int i = 0; i < 3; i++)
		ck_assert_int_ge(wait_count(&k[i].runs, 2), 2);
	/* Settled: every child runs, and the supervisor does too. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(wait_count(&k[i].runs, 2) >= 2, 1);
	ck_assert_int_eq(worker_is_running(p), 1);
	stop_join(p);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(worker_is_running(kids[i]), 0);
		worker_unref(kids[i]);
	}
	worker_unref(p);
}
END_TEST

/* ---- Intensity, escalation, delay ------------------------------------ */

START_TEST(intensity_gives_up)
{
	struct kid k = { .fails = 1000 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 3, 0);
	worker_t *c = kid_new(p, &k, WORKER_RESTART_PERMANENT);

	CHECK_OK(worker_join_timeout(p, wait_limit()));
	/* The first run and three restarts, then P fails with ECHILD. */
	ck_assert_int_eq(atomic_load(&k.runs), 4);
	CHECK_RC(worker_result(p, NULL), ECHILD);
	ck_assert_int_eq(worker_is_running(c), 0);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

/* A middle supervisor that makes its always-failing child each run. */
static void *
middle_task(void *arg)
{
	struct kid *k = arg;
	worker_t *c = worker_create(kid_task, k, &(worker_attr_t){
		.restart = WORKER_RESTART_PERMANENT, .quiet = 1 });

	worker_wait_forever();
	worker_unref(c);
	return NULL;
}

static void
drop_child(void *c)
{
	worker_unref(c);
}

static void *
middle_task_clean(void *arg)
{
	struct kid *k = arg;
	worker_t *c = worker_create(kid_task, k, &(worker_attr_t){
		.restart = WORKER_RESTART_PERMANENT, .quiet = 1 });

	if (c != NULL)
		worker_cleanup_push(drop_child, c);
	worker_wait_forever();
	return NULL;
}

START_TEST(escalates_two_levels)
{
	struct kid k = { .fails = 1000 };
	worker_t *top = supervisor(WORKER_ONE_FOR_ONE, 1, 0);
	worker_t *mid = worker_create(middle_task_clean, &k, &(worker_attr_t){
		.parent = top, .restart = WORKER_RESTART_TRANSIENT,
		.restart_max = 2, .quiet = 1 });

	(void)middle_task;
	ck_assert_ptr_nonnull(mid);
	CHECK_OK(worker_join_timeout(top, wait_limit()));
	/* mid gave up twice (1 run + 2 restarts of its child each time);
	 * top restarted mid once, then gave up itself. */
	CHECK_RC(worker_result(top, NULL), ECHILD);
	CHECK_RC(worker_result(mid, NULL), ECHILD);
	ck_assert_int_eq(atomic_load(&k.runs), 6);
	worker_unref(mid);
	worker_unref(top);
}
END_TEST

START_TEST(stop_during_backoff)
{
	struct kid k = { .fails = 1 };
	/* The restart would come a minute later: the stop comes first. */
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 60);
	worker_t *c = kid_new(p, &k, WORKER_RESTART_PERMANENT);

	CHECK_OK(worker_join_timeout(c, wait_limit()));
	CHECK_OK(worker_fire(p, "fence", NULL));
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join_timeout(p, wait_limit()));
	ck_assert_int_eq(atomic_load(&k.runs), 1);
	ck_assert_int_eq(worker_is_running(c), 0);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

START_TEST(delayed_restart_happens)
{
	struct kid k = { .fails = 2 };
	worker_t *p = supervisor(WORKER_ONE_FOR_ONE, 10, 0.001);
	worker_t *c = kid_new(p, &k, WORKER_RESTART_PERMANENT);

	ck_assert_int_eq(wait_count(&k.runs, 3), 3);
	stop_join(p);
	worker_unref(c);
	worker_unref(p);
}
END_TEST

/* A root worker supervises at its waits. */
START_TEST(root_supervises)
{
	struct kid k = { .fails = 2 };
	worker_t *c = kid_new(worker_current(), &k, WORKER_RESTART_PERMANENT);

	ck_assert_int_eq(wait_count(&k.runs, 3), 3);
	stop_join_unref(c);
}
END_TEST

Suite *
suite_supervise(void)
{
	Suite *s = suite_create("supervise");
	TCase *tc;

	tc = test_case(s, "policy");
	tcase_add_test(tc, permanent_comes_back);
	tcase_add_test(tc, transient_after_failure_only);
	tcase_add_test(tc, temporary_and_set_restart);
	tcase_add_test(tc, bad_attributes);

	tc = test_case(s, "strategy");
	tcase_add_test(tc, one_for_all);
	tcase_add_test(tc, rest_for_one);
	tcase_add_test(tc, temporary_not_restarted_by_group);
	tcase_add_test(tc, forged_end_restarts_nothing);
	tcase_add_test(tc, restart_races_parent_stop);
	tcase_add_test(tc, one_for_all_overlapping_failures);

	tc = test_case(s, "intensity");
	tcase_add_test(tc, intensity_gives_up);
	tcase_add_test(tc, escalates_two_levels);
	tcase_add_test(tc, stop_during_backoff);
	tcase_add_test(tc, delayed_restart_happens);
	tcase_add_test(tc, root_supervises);
	return s;
}
