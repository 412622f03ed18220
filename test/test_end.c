/*
 * test_end.c - how workers end (end.c): children end before their
 * parent's cleanup handlers, the newest first and one at a time or all at
 * once, a stuck child is reported and given up on, and worker_shutdown()
 * ends every top-level worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

/* ---- A trace of who ended when ------------------------------------- */

#define TRACE_MAX 32

struct trace {
	atomic_int n;
	char log[TRACE_MAX];
};

static void
note(struct trace *t, char c)
{
	int i = atomic_fetch_add(&t->n, 1);

	if (i < TRACE_MAX)
		t->log[i] = c;
}

struct kid {
	struct trace *trace;
	char mark;		/* written by its cleanup handler */
	sem_t *up;		/* posted once it runs */
};

static void
kid_cleanup(void *arg)
{
	struct kid *k = arg;

	note(k->trace, k->mark);
}

static void *
kid_task(void *arg)
{
	struct kid *k = arg;

	worker_cleanup_push(kid_cleanup, k);
	sem_post(k->up);
	worker_wait_forever();
	return NULL;
}

struct parent {
	struct trace trace;
	struct kid kids[3];
	worker_t *handles[3];
	sem_t up;
	int stop_order;
};

static void
parent_cleanup(void *arg)
{
	note(arg, 'P');
}

/* A parent's task begins: its cleanup handler, then three children. */
static void
parent_begins(struct parent *p)
{
	worker_cleanup_push(parent_cleanup, &p->trace);
	for (int i = 0; i < 3; i++) {
		p->kids[i].trace = &p->trace;
		p->kids[i].mark = (char)('1' + i);
		p->kids[i].up = &p->up;
		p->handles[i] = worker_create(kid_task, &p->kids[i], NULL);
	}
}

static void *
parent_task(void *arg)
{
	struct parent *p = arg;

	parent_begins(p);
	worker_wait_forever();
	return NULL;
}

static void
stop_parent(int order, char *log)
{
	struct parent p;
	worker_t *w;

	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(sem_init(&p.up, 0, 0), 0);
	w = worker_create(parent_task, &p, &(worker_attr_t){
		.stop_order = order });
	ck_assert_ptr_nonnull(w);
	for (int i = 0; i < 3; i++)
		sem_wait_ok(&p.up, "a child");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(atomic_load(&p.trace.n), 4);
	memcpy(log, p.trace.log, 4);
	log[4] = '\0';
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(worker_is_running(p.handles[i]), 0);
		worker_unref(p.handles[i]);
	}
	worker_unref(w);
	sem_destroy(&p.up);
}

/*
 * The children end before the parent's cleanup handler runs, the newest
 * first (0.1 ran the parent's handlers first, while its children still
 * ran).
 */
START_TEST(children_end_first)
{
	char log[8];

	stop_parent(WORKER_STOP_REVERSE, log);
	ck_assert_str_eq(log, "321P");
	stop_parent(WORKER_STOP_PARALLEL, log);
	ck_assert_int_eq(log[3], 'P');
}
END_TEST

/* The same after the task returns, and after worker_exit(). */
static void *
returning_parent(void *arg)
{
	struct parent *p = arg;

	parent_begins(p);
	for (int i = 0; i < 3; i++)
		sem_wait_intr(&p->up);
	if (p->stop_order == 1)
		worker_exit();
	return NULL;
}

START_TEST(children_end_first_on_return_and_exit)
{
	for (int how = 0; how < 2; how++) {
		struct parent p;
		worker_t *w;

		memset(&p, 0, sizeof(p));
		p.stop_order = how;	/* here: 0 returns, 1 exits */
		ck_assert_int_eq(sem_init(&p.up, 0, 0), 0);
		w = worker_create(returning_parent, &p, NULL);
		ck_assert_ptr_nonnull(w);
		CHECK_OK(worker_join(w));
		ck_assert_int_eq(atomic_load(&p.trace.n), 4);
		ck_assert_msg(memcmp(p.trace.log, "321P", 4) == 0,
		    "how %d: trace %.4s", how, p.trace.log);
		for (int i = 0; i < 3; i++)
			worker_unref(p.handles[i]);
		worker_unref(w);
		sem_destroy(&p.up);
	}
}
END_TEST

/*
 * One at a time: a child is stopped only once its younger sibling has
 * ended.  All at once: every child is stopped before the parent waits.
 */
struct sibling {
	worker_t **younger;	/* must have ended when this one stops */
	atomic_int *together;	/* children inside their STOP listener now */
	atomic_int *saw_all;	/* listeners that saw all three at once */
	int younger_ran;	/* the younger one ran when this one stopped */
};

static int
on_sibling_stop(const worker_event_t *ev, void *ctx)
{
	struct sibling *s = ctx;
	double until = now() + 2 * time_slack();

	(void)ev;
	if (s->younger != NULL && *s->younger != NULL)
		s->younger_ran = worker_is_running(*s->younger);
	atomic_fetch_add(s->together, 1);
	/* All at once, the three meet here; one at a time, they cannot. */
	while (atomic_load(s->together) < 3 && now() < until)
		worker_sleep(0.001);
	if (atomic_load(s->together) >= 3)
		atomic_fetch_add(s->saw_all, 1);
	/* Leave only once all who met have seen it. */
	while (atomic_load(s->saw_all) > 0 && atomic_load(s->saw_all) < 3 &&
	    now() < until)
		worker_sleep(0.001);
	atomic_fetch_sub(s->together, 1);
	return 0;
}

static void
order_case(int order, int *younger_ran, int *saw_all)
{
	atomic_int together = 0, all = 0;
	struct sibling s[3];
	worker_t *kids[3] = { NULL, NULL, NULL };
	worker_t *p = worker_create(NULL, NULL, &(worker_attr_t){
		.stop_order = order });

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 3; i++) {
		s[i].younger = i < 2 ? &kids[i + 1] : NULL;
		s[i].together = &together;
		s[i].saw_all = &all;
		s[i].younger_ran = 0;
		kids[i] = worker_new(NULL, NULL, &(worker_attr_t){
			.parent = p, .stop_timeout = 30 });
		ck_assert_ptr_nonnull(kids[i]);
		CHECK_OK(worker_listen(kids[i], WORKER_STOP_THREAD,
		    on_sibling_stop, &s[i], NULL));
	}
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_start(kids[i]));
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));
	*younger_ran = s[0].younger_ran + s[1].younger_ran;
	*saw_all = atomic_load(&all);
	for (int i = 0; i < 3; i++)
		worker_unref(kids[i]);
	worker_unref(p);
}

START_TEST(stop_orders)
{
	int younger_ran, saw_all;

	order_case(WORKER_STOP_REVERSE, &younger_ran, &saw_all);
	ck_assert_int_eq(younger_ran, 0);
	ck_assert_int_eq(saw_all, 0);
	order_case(WORKER_STOP_PARALLEL, &younger_ran, &saw_all);
	ck_assert_int_eq(saw_all, 3);
}
END_TEST

/*
 * A task that returned is DONE, even if a stop comes while it ends its
 * children: the stop is redundant then, and cuts nothing short.
 */
struct returning {
	sem_t ending;		/* the child's STOP listener runs */
	sem_t go;		/* it may return */
	worker_t *kid;
};

static int
slow_stop(const worker_event_t *ev, void *ctx)
{
	struct returning *r = ctx;

	(void)ev;
	sem_post(&r->ending);
	sem_wait_intr(&r->go);
	return 0;
}

static void *
returns_seven(void *arg)
{
	struct returning *r = arg;

	r->kid = worker_new(NULL, NULL, NULL);
	worker_listen(r->kid, WORKER_STOP_THREAD, slow_stop, r, NULL);
	worker_start(r->kid);
	return (void *)7;
}

START_TEST(stop_while_ending_children_is_redundant)
{
	struct returning r;
	worker_t *w;
	void *ret = NULL;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(sem_init(&r.ending, 0, 0), 0);
	ck_assert_int_eq(sem_init(&r.go, 0, 0), 0);
	w = worker_create(returns_seven, &r, NULL);
	ck_assert_ptr_nonnull(w);
	/* The task returned; w now waits for its child's stop. */
	sem_wait_ok(&r.ending, "the child's stop");
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_stop(w));
	sem_post(&r.go);
	CHECK_OK(worker_join_timeout(w, wait_limit()));
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_eq(ret, (void *)7);
	ck_assert_int_eq(worker_is_running(r.kid), 0);
	worker_unref(r.kid);
	worker_unref(w);
	sem_destroy(&r.ending);
	sem_destroy(&r.go);
}
END_TEST

/* ---- Stuck children ----------------------------------------------- */

/* Reads what the library logs on stderr while the test runs. */
static int
capture_stderr(int *saved)
{
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	*saved = dup(STDERR_FILENO);
	ck_assert_int_ge(*saved, 0);
	ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
	close(fds[1]);
	return fds[0];
}

static void
release_stderr(int fd, int saved, char *buf, size_t size)
{
	ssize_t got;

	dup2(saved, STDERR_FILENO);
	close(saved);
	got = read(fd, buf, size - 1);
	buf[got > 0 ? got : 0] = '\0';
	close(fd);
}

struct stuck {
	sem_t entered;		/* the child is stuck */
	sem_t release;		/* it may go on */
	atomic_int cleaned;	/* its cleanup handler ran */
};

static void
stuck_cleanup(void *arg)
{
	atomic_store(&((struct stuck *)arg)->cleaned, 1);
}

/* Stuck outside any breakpoint, until released. */
static void *
stuck_task(void *arg)
{
	struct stuck *s = arg;

	worker_cleanup_push(stuck_cleanup, s);
	sem_post(&s->entered);
	sem_wait_intr(&s->release);
	worker_wait_forever();
	return NULL;
}

START_TEST(stuck_child_given_up)
{
	struct stuck s = { 0 };
	worker_t *p = worker_create(NULL, NULL, NULL);
	worker_t *c;
	char log[512];
	int saved, fd;

	ck_assert_int_eq(sem_init(&s.entered, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.release, 0, 0), 0);
	ck_assert_ptr_nonnull(p);
	c = worker_create(stuck_task, &s, &(worker_attr_t){
		.name = "stuck-kid", .parent = p, .stop_timeout = 0.05 });
	ck_assert_ptr_nonnull(c);
	sem_wait_ok(&s.entered, "the stuck child");
	fd = capture_stderr(&saved);
	CHECK_OK(worker_stop(p));
	/* The parent goes on without the child. */
	CHECK_OK(worker_join_timeout(p, wait_limit()));
	release_stderr(fd, saved, log, sizeof(log));
	ck_assert_msg(strstr(log, "stuck-kid") != NULL &&
	    strstr(log, "outside any breakpoint") != NULL,
	    "the report: %s", log);
	ck_assert_int_eq(worker_is_running(c), 1);
	ck_assert_ptr_null(worker_find_child(p, "stuck-kid"));
	/* Once it gets to a breakpoint, its stop reaches it, and it ends
	 * and frees itself (the creator's reference aside). */
	sem_post(&s.release);
	CHECK_OK(worker_join_timeout(c, wait_limit()));
	ck_assert_int_eq(atomic_load(&s.cleaned), 1);
	worker_unref(c);
	worker_unref(p);
	sem_destroy(&s.entered);
	sem_destroy(&s.release);
}
END_TEST

/* The report says which wait a stuck child is in. */
static int
sleeps_on_stop(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	sem_post(ctx);
	worker_sleep(wait_limit());
	return 0;
}

START_TEST(stuck_report_names_the_wait)
{
	worker_t *p = worker_create(NULL, NULL, NULL);
	sem_t in_listener;
	worker_t *c;
	char log[512];
	int saved, fd;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sem_init(&in_listener, 0, 0), 0);
	c = worker_new(NULL, NULL, &(worker_attr_t){ .name = "sleeper",
		.parent = p, .stop_timeout = 0.05 });
	ck_assert_ptr_nonnull(c);
	CHECK_OK(worker_listen(c, WORKER_STOP_THREAD, sleeps_on_stop,
	    &in_listener, NULL));
	CHECK_OK(worker_start(c));
	fd = capture_stderr(&saved);
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join_timeout(p, wait_limit()));
	release_stderr(fd, saved, log, sizeof(log));
	sem_wait_ok(&in_listener, "the child's stop listener");
	ck_assert_msg(strstr(log, "sleeper") != NULL &&
	    strstr(log, "worker_sleep") != NULL, "the report: %s", log);
	worker_unref(c);	/* it ends when its sleep does, by itself */
	worker_unref(p);
	sem_destroy(&in_listener);
}
END_TEST

/* ---- worker_shutdown ------------------------------------------------ */

START_TEST(shutdown_every_top_level)
{
	struct stuck s = { 0 };
	worker_t *a = worker_create(NULL, NULL, NULL);
	worker_t *b = worker_create(NULL, NULL, NULL);
	worker_t *kid, *stuck;
	char log[512];
	int saved, fd, rc;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	kid = worker_create(NULL, NULL, &(worker_attr_t){ .parent = a });
	ck_assert_ptr_nonnull(kid);
	ck_assert_int_eq(sem_init(&s.entered, 0, 0), 0);
	ck_assert_int_eq(sem_init(&s.release, 0, 0), 0);
	stuck = worker_create(stuck_task, &s, &(worker_attr_t){
		.name = "stuck-top" });
	ck_assert_ptr_nonnull(stuck);
	sem_wait_ok(&s.entered, "the stuck worker");

	fd = capture_stderr(&saved);
	rc = worker_shutdown(0.1);
	release_stderr(fd, saved, log, sizeof(log));
	CHECK_RC(rc, ETIMEDOUT);
	ck_assert_msg(strstr(log, "stuck-top") != NULL, "the report: %s",
	    log);
	ck_assert_int_eq(worker_is_running(a), 0);
	ck_assert_int_eq(worker_is_running(b), 0);
	ck_assert_int_eq(worker_is_running(kid), 0);
	ck_assert_int_eq(worker_is_running(stuck), 1);

	sem_post(&s.release);
	CHECK_OK(worker_shutdown(wait_limit()));
	ck_assert_int_eq(worker_is_running(stuck), 0);
	CHECK_OK(worker_shutdown(0));	/* nothing left to stop */
	CHECK_RC(worker_shutdown(NAN), EINVAL);
	worker_unref(kid);
	worker_unref(a);
	worker_unref(b);
	worker_unref(stuck);
	sem_destroy(&s.entered);
	sem_destroy(&s.release);
}
END_TEST

/*
 * A daemon's main: a signal stops the master (worker_signals), and
 * worker_shutdown() then ends every top-level worker that is left.
 */
START_TEST(shutdown_after_signal)
{
	sigset_t usr1;
	worker_t *master = worker_new(NULL, NULL, &(worker_attr_t){
		.name = "master" });
	worker_t *other, *kid;

	/* Blocked before any thread starts, so that every thread keeps it
	 * blocked and only the master's signalfd reads it. */
	ck_assert_ptr_nonnull(master);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	CHECK_OK(worker_signals(master, &usr1, NULL));
	CHECK_OK(worker_start(master));
	other = worker_create(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(other);
	kid = worker_create(NULL, NULL, &(worker_attr_t){ .parent = master });
	ck_assert_ptr_nonnull(kid);
	ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
	CHECK_OK(worker_join_timeout(master, wait_limit()));
	ck_assert_int_eq(worker_is_running(kid), 0);
	ck_assert_int_eq(worker_is_running(other), 1);
	CHECK_OK(worker_shutdown(wait_limit()));
	ck_assert_int_eq(worker_is_running(other), 0);
	worker_unref(kid);
	worker_unref(other);
	worker_unref(master);
}
END_TEST

Suite *
suite_end(void)
{
	Suite *s = suite_create("end");
	TCase *tc;

	tc = test_case(s, "children_first");
	tcase_add_test(tc, children_end_first);
	tcase_add_test(tc, children_end_first_on_return_and_exit);
	tcase_add_test(tc, stop_orders);
	tcase_add_test(tc, stop_while_ending_children_is_redundant);

	tc = test_case(s, "stuck");
	tcase_add_test(tc, stuck_child_given_up);
	tcase_add_test(tc, stuck_report_names_the_wait);
	tcase_add_test(tc, shutdown_every_top_level);
	tcase_add_test(tc, shutdown_after_signal);
	return s;
}
