/*
 * test_api.c - bad arguments and harmless answers: every function given
 * NULL, an empty name or an impossible value gives EINVAL (NULL and
 * errno EINVAL from constructors), never a crash; the questions about a
 * NULL worker answer harmlessly; and worker_version() matches the
 * version macros.
 */
#include <math.h>
#include <stdio.h>

#include "test.h"

static int
on_nothing(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static int
cond_nothing(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

/* A running parent and child, so that the only thing wrong with each
 * call below is the argument under test. */
struct pair {
	worker_t *parent, *child;
};

static void
pair_up(struct pair *p)
{
	worker_attr_t attr = { .name = "parent" };

	p->parent = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(p->parent);
	attr.name = "child";
	attr.parent = p->parent;
	p->child = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(p->child);
}

static void
pair_down(struct pair *p)
{
	/* The parent's end stops and joins the child. */
	CHECK_OK(worker_stop(p->parent));
	CHECK_OK(worker_join(p->parent));
	CHECK_OK(worker_join(p->child));
	worker_unref(p->child);
	worker_unref(p->parent);
}

START_TEST(api_lifecycle_einval)
{
	void *ret = &ret;

	CHECK_RC(worker_start(NULL), EINVAL);
	CHECK_RC(worker_start_overlay(NULL), EINVAL);
	/* A root worker is not a task that can be started. */
	CHECK_RC(worker_start(worker_current()), EINVAL);
	CHECK_RC(worker_start_overlay(worker_current()), EINVAL);
	CHECK_RC(worker_stop(NULL), EINVAL);
	CHECK_RC(worker_pause(NULL), EINVAL);
	CHECK_RC(worker_resume(NULL), EINVAL);
	CHECK_RC(worker_join(NULL), EINVAL);
	CHECK_RC(worker_wait_thread(NULL, &ret), EINVAL);
	CHECK_RC(worker_wait_thread(NULL, NULL), EINVAL);
	ck_assert_ptr_eq(ret, &ret);
	CHECK_RC(worker_result(NULL, &ret), EINVAL);
	/* Untouched on error. */
	ck_assert_ptr_eq(ret, &ret);
	CHECK_RC(worker_result(NULL, NULL), EINVAL);
}
END_TEST

START_TEST(api_fire_einval)
{
	struct pair p;
	worker_t *w;

	pair_up(&p);
	w = p.parent;

	CHECK_RC(worker_fire(NULL, "E", NULL), EINVAL);
	CHECK_RC(worker_fire(w, NULL, NULL), EINVAL);
	CHECK_RC(worker_fire(w, "", NULL), EINVAL);
	CHECK_RC(worker_fire_ex(NULL, "E", NULL, NULL, 0), EINVAL);
	CHECK_RC(worker_fire_ex(w, NULL, NULL, NULL, 0), EINVAL);
	CHECK_RC(worker_fire_ex(w, "", NULL, NULL, 0), EINVAL);
	CHECK_RC(worker_fire_ex(w, "E", NULL, NULL, 1u << 7), EINVAL);

	CHECK_RC(worker_bubble(NULL, "E", NULL), EINVAL);
	CHECK_RC(worker_bubble(p.child, NULL, NULL), EINVAL);
	CHECK_RC(worker_bubble(p.child, "", NULL), EINVAL);
	CHECK_RC(worker_broadcast(NULL, "E", NULL), EINVAL);
	CHECK_RC(worker_broadcast(p.parent, NULL, NULL), EINVAL);
	CHECK_RC(worker_broadcast(p.parent, "", NULL), EINVAL);
	CHECK_RC(worker_parent_fire(NULL, "E", NULL), EINVAL);
	CHECK_RC(worker_parent_fire(p.child, NULL, NULL), EINVAL);
	CHECK_RC(worker_parent_fire(p.child, "", NULL), EINVAL);
	CHECK_RC(worker_children_fire(NULL, "E", NULL), EINVAL);
	CHECK_RC(worker_children_fire(p.parent, NULL, NULL), EINVAL);
	CHECK_RC(worker_children_fire(p.parent, "", NULL), EINVAL);

	pair_down(&p);
	/* A bad argument is not a rejection: main got no EVENT_REJECT. */
	ck_assert_int_eq(worker_update(), 0);
}
END_TEST

START_TEST(api_listen_einval)
{
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	CHECK_RC(worker_listen(NULL, "E", on_nothing, NULL, NULL), EINVAL);
	CHECK_RC(worker_listen(w, "", on_nothing, NULL, NULL), EINVAL);
	CHECK_RC(worker_listen(w, NULL, on_nothing, NULL, NULL), EINVAL);
	CHECK_RC(worker_listen(w, "E", NULL, NULL, NULL), EINVAL);
	CHECK_RC(worker_unlisten(NULL, on_nothing, NULL), EINVAL);
	CHECK_RC(worker_unlisten(w, NULL, NULL), EINVAL);
	/* None of the bad calls added anything. */
	CHECK_RC(worker_unlisten(w, on_nothing, NULL), ENOENT);
	worker_unref(w);
}
END_TEST

START_TEST(api_wait_einval)
{
	CHECK_RC(worker_wait_event(NULL, NULL, 0, NULL), EINVAL);
	CHECK_RC(worker_wait_event("", NULL, 0, NULL), EINVAL);
	CHECK_RC(worker_wait_event("E", NULL, NAN, NULL), EINVAL);
	CHECK_RC(worker_wait_until(NULL, NULL, 0, NULL), EINVAL);
	CHECK_RC(worker_wait_until(cond_nothing, NULL, NAN, NULL), EINVAL);
	CHECK_RC(worker_sleep(-1), EINVAL);
	CHECK_RC(worker_sleep(NAN), EINVAL);
}
END_TEST

START_TEST(api_dump_einval)
{
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	CHECK_RC(worker_dump(NULL, w), EINVAL);
	CHECK_RC(worker_dump(stdout, NULL), EINVAL);
	worker_unref(w);
}
END_TEST

static void
expect_bad_attr(const worker_attr_t *attr, const char *what)
{
	worker_t *w;

	errno = 0;
	w = worker_new(NULL, NULL, attr);
	ck_assert_msg(w == NULL && errno == EINVAL,
	    "worker_new with %s: %p, errno %d (%s)", what, (void *)w, errno,
	    strerror(errno));
	errno = 0;
	w = worker_create(NULL, NULL, attr);
	ck_assert_msg(w == NULL && errno == EINVAL,
	    "worker_create with %s: %p, errno %d (%s)", what, (void *)w,
	    errno, strerror(errno));
}

START_TEST(api_new_einval)
{
	worker_t *parent = worker_new(NULL, NULL, NULL);
	worker_attr_t attr;

	ck_assert_ptr_nonnull(parent);
	memset(&attr, 0, sizeof(attr));
	attr.name = "";
	expect_bad_attr(&attr, "an empty name");

	memset(&attr, 0, sizeof(attr));
	attr.name = "bad";
	attr.parent = parent;
	attr.daemon = 7;
	expect_bad_attr(&attr, "daemon 7");
	attr.daemon = -2;	/* 0.2: -1 is WORKER_DAEMON_NO */
	expect_bad_attr(&attr, "daemon -2");
	attr.daemon = 2;	/* 0.1's WORKER_DAEMON_YES */
	expect_bad_attr(&attr, "daemon 2");

	attr.daemon = WORKER_DAEMON_INHERIT;
	attr.no_parent = 1;
	expect_bad_attr(&attr, "parent and no_parent");

	/* None of them joined the parent's children. */
	expect_no_child(parent, "bad", ENOENT);
	worker_unref(parent);
}
END_TEST

START_TEST(api_null_answers)
{
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(worker_is_running(NULL), 0);
	ck_assert_int_eq(worker_is_daemon(NULL), 0);
	ck_assert_ptr_null(worker_ref(NULL));
	worker_unref(NULL);
	ck_assert_ptr_null(worker_name(NULL));
	ck_assert_ptr_null(worker_parent(NULL));
	ck_assert_ptr_null(worker_arg(NULL));

	expect_no_child(NULL, "x", EINVAL);
	expect_no_child(w, NULL, EINVAL);
	expect_no_child(w, "", EINVAL);
	expect_no_child(w, "x", ENOENT);
	worker_unref(w);
}
END_TEST

START_TEST(api_version)
{
	char want[64];

	snprintf(want, sizeof(want), "%d.%d.%d", WORKER_VERSION_MAJOR,
	    WORKER_VERSION_MINOR, WORKER_VERSION_PATCH);
	ck_assert_ptr_nonnull(worker_version());
	ck_assert_str_eq(worker_version(), want);
}
END_TEST

Suite *
suite_api(void)
{
	Suite *s = suite_create("api");
	TCase *tc;

	tc = test_case(s, "einval");
	tcase_add_test(tc, api_lifecycle_einval);
	tcase_add_test(tc, api_fire_einval);
	tcase_add_test(tc, api_listen_einval);
	tcase_add_test(tc, api_wait_einval);
	tcase_add_test(tc, api_dump_einval);
	tcase_add_test(tc, api_new_einval);

	tc = test_case(s, "answers");
	tcase_add_test(tc, api_null_answers);
	tcase_add_test(tc, api_version);

	return s;
}
