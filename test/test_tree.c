/*
 * test_tree.c - parents and children: stopping with the parent, the
 * daemon rules and values, the default parent, worker_find_child, the
 * CHILD_THREAD_* events, worker_arg through their source, worker_dump and
 * the order of the end sequence.
 *
 * Workers only record what they saw; the test's own thread asserts after
 * it joined them.  Steps are ordered with semaphores and events.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* A parent and the child it made in its own task. */
struct family {
	sem_t child_up;		/* posted by the child once it runs */
	sem_t started;		/* the parent saw child_up (or making failed) */
	sem_t release;		/* lets a blocked cleanup handler finish */
	worker_t *child;	/* the parent's reference, handed to the test */
	worker_attr_t cattr;	/* how the parent makes the child */
	worker_fn cfn;		/* the child's task */
	void (*cleanup)(void *);	/* task_child_sleeps' handler */
	int create_errno;
	atomic_int cleaned;	/* the child's cleanup handler finished */
	atomic_int after;	/* code past a wait that must not run did */
};

static void
family_init(struct family *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(sem_init(&f->child_up, 0, 0), 0);
	ck_assert_int_eq(sem_init(&f->started, 0, 0), 0);
	ck_assert_int_eq(sem_init(&f->release, 0, 0), 0);
}

/* Drops the test's references to the parent p and its child. */
static void
family_fini(struct family *f, worker_t *p)
{
	worker_unref(f->child);
	worker_unref(p);
	sem_destroy(&f->child_up);
	sem_destroy(&f->started);
	sem_destroy(&f->release);
}

/* Makes the child with the default parent (this worker) and waits to be
 * stopped.  It tells the test itself, once the child runs: a post from the
 * child would not order the store to f->child before the test reads it. */
static void *
task_parent(void *arg)
{
	struct family *f = arg;

	f->child = worker_create(f->cfn, f, &f->cattr);
	if (f->child == NULL) {
		f->create_errno = errno;
		sem_post(&f->started);
		return NULL;
	}
	sem_wait_intr(&f->child_up);
	sem_post(&f->started);
	worker_wait_forever();
	atomic_store(&f->after, 1);
	return NULL;
}

/* Starts task_parent with the attributes pattr and returns once the
 * child it made runs. */
static worker_t *
family_start(struct family *f, const worker_attr_t *pattr)
{
	worker_t *p = worker_create(task_parent, f, pattr);

	ck_assert_ptr_nonnull(p);
	sem_wait_ok(&f->started, "the parent's child");
	CHECK_OK(f->create_errno);
	return p;
}

static void *
task_child_forever(void *arg)
{
	struct family *f = arg;

	sem_post(&f->child_up);
	worker_wait_forever();
	atomic_store(&f->after, 1);
	return NULL;
}

START_TEST(test_stopped_with_parent)
{
	struct family f;
	worker_t *p;
	void *ret = &f;

	family_init(&f);
	f.cfn = task_child_forever;
	f.cattr.name = "kid";
	p = family_start(&f, NULL);
	ck_assert_int_eq(worker_is_running(f.child), 1);
	ck_assert_ptr_eq(worker_parent(f.child), p);
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(worker_is_running(f.child), 0);
	ck_assert_int_eq(atomic_load(&f.after), 0);
	CHECK_OK(worker_result(f.child, &ret));
	ck_assert_ptr_null(ret);
	family_fini(&f, p);
}
END_TEST

/* Makes a child with default attributes and reports its daemon flag. */
static void *
task_make_default_child(void *arg)
{
	int *daemon = arg;
	worker_t *c;

	c = worker_new(NULL, NULL, NULL);
	if (c == NULL)
		return (void *)(intptr_t)errno;
	*daemon = worker_is_daemon(c);
	worker_unref(c);
	return NULL;
}

START_TEST(test_daemon_rules)
{
	worker_attr_t yes = { .daemon = WORKER_DAEMON_YES };
	worker_attr_t no = { .daemon = WORKER_DAEMON_NO };
	worker_attr_t bad = { .daemon = 3 };
	worker_attr_t attr;
	worker_t *plain, *dy, *dn, *cy, *cn, *cyn, *cp, *w;
	void *ret = &w;
	int daemon = -1;

	ck_assert_int_eq(worker_is_daemon(worker_current()), 0);
	ck_assert_int_eq(worker_is_daemon(NULL), 0);
	plain = worker_new(NULL, NULL, NULL);
	dy = worker_new(NULL, NULL, &yes);
	dn = worker_new(NULL, NULL, &no);
	ck_assert_ptr_nonnull(plain);
	ck_assert_ptr_nonnull(dy);
	ck_assert_ptr_nonnull(dn);
	ck_assert_int_eq(worker_is_daemon(plain), 0);
	ck_assert_int_eq(worker_is_daemon(dy), 1);
	ck_assert_int_eq(worker_is_daemon(dn), 0);

	/* WORKER_DAEMON_INHERIT (0) takes the parent's answer, both ways. */
	memset(&attr, 0, sizeof(attr));
	attr.parent = dy;
	cy = worker_new(NULL, NULL, &attr);
	attr.parent = dn;
	cn = worker_new(NULL, NULL, &attr);
	attr.parent = plain;
	cp = worker_new(NULL, NULL, &attr);
	/* An explicit NO under a daemon parent is not overridden. */
	attr.parent = dy;
	attr.daemon = WORKER_DAEMON_NO;
	cyn = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(cy);
	ck_assert_ptr_nonnull(cn);
	ck_assert_ptr_nonnull(cp);
	ck_assert_ptr_nonnull(cyn);
	ck_assert_int_eq(worker_is_daemon(cy), 1);
	ck_assert_int_eq(worker_is_daemon(cn), 0);
	ck_assert_int_eq(worker_is_daemon(cp), 0);
	ck_assert_int_eq(worker_is_daemon(cyn), 0);

	/* The same through the default parent, inside a daemon worker. */
	w = worker_create(task_make_default_child, &daemon, &yes);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(daemon, 1);

	errno = 0;
	ck_assert_ptr_null(worker_new(NULL, NULL, &bad));
	ck_assert_int_eq(errno, EINVAL);

	worker_unref(w);
	worker_unref(cy);
	worker_unref(cn);
	worker_unref(cp);
	worker_unref(cyn);
	worker_unref(plain);
	worker_unref(dy);
	worker_unref(dn);
}
END_TEST

/* Takes its time to clean up, so a parent's join that did not wait for
 * it would return before `cleaned` is set. */
static void
slow_cleanup(void *arg)
{
	struct family *f = arg;

	nap(0.05);
	atomic_store(&f->cleaned, 1);
}

/* Sleeps, with f->cleanup as its cleanup handler, until it is stopped. */
static void *
task_child_sleeps(void *arg)
{
	struct family *f = arg;

	worker_cleanup_push(f->cleanup, f);
	sem_post(&f->child_up);
	worker_sleep(3600);
	atomic_store(&f->after, 1);
	worker_cleanup_pop(0);
	return NULL;
}

START_TEST(test_joins_non_daemon)
{
	worker_attr_t yes = { .daemon = WORKER_DAEMON_YES };
	struct family f;
	worker_t *p;

	family_init(&f);
	f.cfn = task_child_sleeps;
	f.cleanup = slow_cleanup;
	/* Explicitly not daemon under a daemon parent: the child's own
	 * answer decides whether its parent waits. */
	f.cattr.daemon = WORKER_DAEMON_NO;
	p = family_start(&f, &yes);
	ck_assert_int_eq(worker_is_daemon(f.child), 0);
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(worker_is_running(f.child), 0);
	ck_assert_int_eq(atomic_load(&f.cleaned), 1);
	ck_assert_int_eq(atomic_load(&f.after), 0);
	family_fini(&f, p);
}
END_TEST

/* Holds the daemon child in its cleanup until the test lets it go, which
 * it does only after the parent's join returned. */
static void
blocked_cleanup(void *arg)
{
	struct family *f = arg;

	sem_wait_intr(&f->release);
	atomic_store(&f->cleaned, 1);
}

START_TEST(test_no_wait_for_daemon)
{
	struct family f;
	worker_t *p;

	family_init(&f);
	f.cfn = task_child_sleeps;
	f.cleanup = blocked_cleanup;
	f.cattr.daemon = WORKER_DAEMON_YES;
	p = family_start(&f, NULL);
	ck_assert_int_eq(worker_is_daemon(f.child), 1);
	CHECK_OK(worker_stop(p));
	/* Hangs (and the TCase times out) if the parent waits for its
	 * daemon child, whose cleanup is blocked until the post below. */
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(atomic_load(&f.cleaned), 0);
	sem_post(&f.release);
	CHECK_OK(worker_join(f.child));
	ck_assert_int_eq(atomic_load(&f.cleaned), 1);
	ck_assert_int_eq(atomic_load(&f.after), 0);
	ck_assert_int_eq(worker_is_running(f.child), 0);
	family_fini(&f, p);
}
END_TEST

START_TEST(test_finished_child_leaves)
{
	struct family f;
	worker_t *p, *found;

	family_init(&f);
	f.cfn = task_child_forever;
	f.cattr.name = "kid";
	p = family_start(&f, NULL);
	found = worker_find_child(p, "kid");
	ck_assert_ptr_eq(found, f.child);
	worker_unref(found);
	CHECK_OK(worker_stop(f.child));
	CHECK_OK(worker_join(f.child));
	expect_no_child(p, "kid", ENOENT);
	/* The parent goes on without it. */
	ck_assert_int_eq(worker_is_running(p), 1);
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));
	family_fini(&f, p);
}
END_TEST

/* A new worker, returned, and a new child of it named "kid" in *c. */
static worker_t *
new_parent_and_kid(worker_t **c)
{
	worker_attr_t attr = { .name = "kid" };
	worker_t *p = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(p);
	attr.parent = p;
	*c = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(*c);
	return p;
}

START_TEST(test_unstarted_child_leaves)
{
	worker_t *p, *c, *found;

	p = new_parent_and_kid(&c);
	/* In the list from worker_new() on, started or not. */
	found = worker_find_child(p, "kid");
	ck_assert_ptr_eq(found, c);
	worker_unref(found);
	/* The last reference to a child that never ran frees it. */
	worker_unref(c);
	expect_no_child(p, "kid", ENOENT);
	worker_unref(p);
}
END_TEST

/* What the default parent is inside a started worker. */
struct parents {
	worker_t *self;
	worker_t *dflt;		/* parent of a child made with no attr */
	worker_t *none;		/* parent of a child made with no_parent */
	int errs;
};

static void *
task_parents(void *arg)
{
	struct parents *p = arg;
	worker_attr_t np = { .no_parent = 1 };
	worker_t *a, *b;

	p->self = worker_current();
	a = worker_new(NULL, NULL, NULL);
	b = worker_new(NULL, NULL, &np);
	if (a == NULL || b == NULL)
		p->errs++;
	p->dflt = worker_parent(a);
	p->none = worker_parent(b);
	worker_unref(a);
	worker_unref(b);
	return NULL;
}

START_TEST(test_default_parent)
{
	worker_attr_t attr = { .name = "under-main" };
	worker_attr_t both = { .no_parent = 1 };
	struct parents ps;
	worker_t *root, *w, *c, *found;

	memset(&ps, 0, sizeof(ps));
	root = worker_current();
	ck_assert_ptr_nonnull(root);
	w = worker_create(task_parents, &ps, NULL);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	ck_assert_int_eq(ps.errs, 0);
	ck_assert_ptr_eq(ps.self, w);
	ck_assert_ptr_eq(ps.dflt, w);
	ck_assert_ptr_null(ps.none);
	worker_unref(w);

	/* The main root worker is never a default parent... */
	c = worker_new(NULL, NULL, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(worker_parent(c));
	worker_unref(c);

	/* ...but may be given explicitly. */
	attr.parent = root;
	c = worker_create(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_eq(worker_parent(c), root);
	found = worker_find_child(root, "under-main");
	ck_assert_ptr_eq(found, c);
	worker_unref(found);
	CHECK_OK(worker_stop(c));
	CHECK_OK(worker_join(c));
	worker_unref(c);

	both.parent = root;
	errno = 0;
	ck_assert_ptr_null(worker_new(NULL, NULL, &both));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(worker_parent(NULL));
}
END_TEST

START_TEST(test_find_child_ref)
{
	worker_t *p, *c, *found;

	p = new_parent_and_kid(&c);
	found = worker_find_child(p, "kid");
	ck_assert_ptr_eq(found, c);
	/* The found reference alone keeps the child: valgrind and ASan see
	 * a use after free if it did not. */
	worker_unref(c);
	ck_assert_str_eq(worker_name(found), "kid");
	ck_assert_ptr_eq(worker_parent(found), p);
	worker_unref(found);

	expect_no_child(p, "nobody", ENOENT);
	expect_no_child(p, "", EINVAL);
	expect_no_child(p, NULL, EINVAL);
	ck_assert_ptr_null(worker_find_child(NULL, "kid"));
	worker_unref(p);
}
END_TEST

/* The CHILD_THREAD_* events, in the order one parent saw them. */
enum { EV_START, EV_DONE, EV_STOP, EV_ERROR, EV_END, EV_N };

static const char *const child_events[EV_N] = {
	WORKER_CHILD_THREAD_START, WORKER_CHILD_THREAD_DONE,
	WORKER_CHILD_THREAD_STOP, WORKER_CHILD_THREAD_ERROR,
	WORKER_CHILD_THREAD_END,
};

#define NKIDS 3
#define NLOG 8

struct brood {
	worker_t *kids[NKIDS];
	int kind[NKIDS][NLOG];
	void *data[NKIDS][NLOG];
	int n[NKIDS];
	int strangers;		/* events from no known child */
	int ends;
	int create_errs;
	int stop_rc;
	int wait_rc;
};

static int
on_child_event(const worker_event_t *ev, void *ctx)
{
	struct brood *b = ctx;
	int i, k;

	for (k = 0; k < EV_N; k++)
		if (strcmp(ev->name, child_events[k]) == 0)
			break;
	for (i = 0; i < NKIDS; i++)
		if (b->kids[i] != NULL && ev->source == b->kids[i])
			break;
	if (k == EV_N || i == NKIDS) {
		b->strangers++;
		return 0;
	}
	if (b->n[i] < NLOG) {
		b->kind[i][b->n[i]] = k;
		b->data[i][b->n[i]] = ev->data;
	}
	b->n[i]++;
	if (k == EV_END)
		b->ends++;
	return 0;
}

static int
all_ended(const worker_event_t *ev, void *ctx)
{
	const struct brood *b = ctx;

	(void)ev;
	return b->ends == NKIDS;
}

static void *
task_return7(void *arg)
{
	(void)arg;
	return (void *)7;
}

static void *
task_fail5(void *arg)
{
	(void)arg;
	worker_fail(5);
	return (void *)1;
}

/* Makes one child that returns, one it stops and one that fails, and
 * waits until each has ended.  Its listeners run in this wait only, after
 * kids[] is filled in, so they can tell the children apart. */
static void *
task_brood(void *arg)
{
	worker_attr_t quiet = { .quiet = 1 };
	struct brood *b = arg;
	int i;

	b->kids[0] = worker_create(task_return7, NULL, NULL);
	b->kids[1] = worker_create(NULL, NULL, NULL);
	b->kids[2] = worker_create(task_fail5, NULL, &quiet);
	for (i = 0; i < NKIDS; i++)
		if (b->kids[i] == NULL)
			b->create_errs++;
	if (b->create_errs != 0)
		return NULL;
	b->stop_rc = worker_stop(b->kids[1]);
	b->wait_rc = worker_wait_until(all_ended, b, wait_limit(),
	    NULL);
	return NULL;
}

START_TEST(test_child_events)
{
	static const int want[NKIDS][3] = {
		{ EV_START, EV_DONE, EV_END },
		{ EV_START, EV_STOP, EV_END },
		{ EV_START, EV_ERROR, EV_END },
	};
	static void *const want_data[NKIDS] = {
		(void *)7, NULL, (void *)(intptr_t)5,
	};
	struct brood b;
	worker_t *p;
	int i, j, k;

	memset(&b, 0, sizeof(b));
	p = worker_new(task_brood, &b, NULL);
	ck_assert_ptr_nonnull(p);
	for (k = 0; k < EV_N; k++)
		CHECK_OK(worker_listen(p, child_events[k], on_child_event, &b,
		    NULL));
	CHECK_OK(worker_start(p));
	CHECK_OK(worker_join(p));
	ck_assert_int_eq(b.create_errs, 0);
	CHECK_OK(b.stop_rc);
	CHECK_OK(b.wait_rc);
	ck_assert_int_eq(b.strangers, 0);
	for (i = 0; i < NKIDS; i++) {
		ck_assert_msg(b.n[i] == 3, "child %d: %d events", i, b.n[i]);
		for (j = 0; j < 3; j++)
			ck_assert_msg(b.kind[i][j] == want[i][j],
			    "child %d event %d: %s, want %s", i, j,
			    child_events[b.kind[i][j]],
			    child_events[want[i][j]]);
		ck_assert_ptr_null(b.data[i][0]);
		ck_assert_ptr_eq(b.data[i][1], want_data[i]);
		ck_assert_ptr_null(b.data[i][2]);
	}
	CHECK_OK(worker_result(b.kids[0], NULL));
	CHECK_OK(worker_result(b.kids[1], NULL));
	CHECK_RC(worker_result(b.kids[2], NULL), 5);
	for (i = 0; i < NKIDS; i++) {
		ck_assert_int_eq(worker_is_running(b.kids[i]), 0);
		worker_unref(b.kids[i]);
	}
	worker_unref(p);
}
END_TEST

/* The line of out that is exactly text, or NULL. */
static const char *
find_line(const char *out, const char *text)
{
	size_t len = strlen(text);
	const char *line = out;

	while (*line != '\0') {
		if (strncmp(line, text, len) == 0 &&
		    (line[len] == '\n' || line[len] == '\0'))
			return line;
		line = strchr(line, '\n');
		if (line == NULL)
			break;
		line++;
	}
	return NULL;
}

/* worker_dump() of root into a string the caller frees. */
static char *
dump(const worker_t *root)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out;
	int rc;

	out = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(out);
	rc = worker_dump(out, root);
	ck_assert_int_eq(fclose(out), 0);
	CHECK_OK(rc);
	ck_assert_ptr_nonnull(buf);
	return buf;
}

START_TEST(test_dump)
{
	worker_attr_t attr;
	const char *lr, *la, *lb, *lc;
	worker_t *r, *a, *b, *c;
	struct host h;
	char *out;

	memset(&attr, 0, sizeof(attr));
	attr.name = "dump-root";
	r = host_new(&h, &attr);
	attr.parent = r;
	attr.name = "dump-a";
	attr.daemon = WORKER_DAEMON_YES;
	a = worker_new(NULL, NULL, &attr);
	attr.name = "dump-c";
	attr.daemon = WORKER_DAEMON_INHERIT;
	c = worker_new(NULL, NULL, &attr);
	attr.parent = a;
	attr.name = "dump-b";
	b = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(c);

	out = dump(r);
	lr = find_line(out, "dump-root [running] daemon=no queued=0");
	la = find_line(out, "  dump-a [new] daemon=yes queued=0");
	lb = find_line(out, "    dump-b [new] daemon=yes queued=0");
	lc = find_line(out, "  dump-c [new] daemon=no queued=0");
	ck_assert_msg(lr != NULL && la != NULL && lb != NULL && lc != NULL,
	    "dump:\n%s", out);
	/* Parents before children; siblings in any order. */
	ck_assert_msg(lr == out && lr < la && la < lb && lr < lc,
	    "dump:\n%s", out);
	free(out);

	out = dump(worker_current());
	ck_assert_msg(strncmp(out, "main [root] daemon=no queued=", 29) == 0,
	    "dump:\n%s", out);
	ck_assert_ptr_null(strstr(out, "dump-root"));
	free(out);

	CHECK_RC(worker_dump(NULL, r), EINVAL);
	CHECK_RC(worker_dump(stderr, NULL), EINVAL);

	worker_unref(b);
	worker_unref(a);
	worker_unref(c);
	stop_join(r);
	out = dump(r);
	ck_assert_msg(strcmp(out, "dump-root [ended] daemon=no queued=0\n")
	    == 0, "dump:\n%s", out);
	free(out);
	host_free(r, &h);
}
END_TEST

/* A worker that is busy outside any breakpoint while events pile up. */
struct backlog {
	sem_t started;
	sem_t release;
	int got[NLOG];		/* the data of each E, in order */
	int n;
};

static int
on_e(const worker_event_t *ev, void *ctx)
{
	struct backlog *bl = ctx;

	if (bl->n < NLOG)
		bl->got[bl->n] = (int)(intptr_t)ev->data;
	bl->n++;
	return 0;
}

static void *
task_blocked_then_wait(void *arg)
{
	struct backlog *bl = arg;

	sem_post(&bl->started);
	sem_wait_intr(&bl->release);
	worker_wait_forever();
	return (void *)1;
}

static void *
task_blocked_then_return(void *arg)
{
	struct backlog *bl = arg;

	sem_post(&bl->started);
	sem_wait_intr(&bl->release);
	return (void *)1;
}

static void
backlog_run(worker_fn fn, const int *plan, int nplan, struct backlog *bl,
    const char *end_event, void *end_data, void *want_ret)
{
	worker_attr_t attr;
	worker_t *w;
	void *data = &attr, *ret = &attr;
	int i;

	memset(bl, 0, sizeof(*bl));
	ck_assert_int_eq(sem_init(&bl->started, 0, 0), 0);
	ck_assert_int_eq(sem_init(&bl->release, 0, 0), 0);
	/* The main root as parent lets the test see the end events. */
	memset(&attr, 0, sizeof(attr));
	attr.parent = worker_current();
	w = worker_new(fn, bl, &attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "E", on_e, bl, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&bl->started, "the task");
	/* The task sits in sem_wait, not at a breakpoint: all of these
	 * queue up, the stop among them. */
	for (i = 0; i < nplan; i++) {
		if (plan[i] == 0)
			CHECK_OK(worker_stop(w));
		else
			CHECK_OK(worker_fire(w, "E",
			    (void *)(intptr_t)plan[i]));
	}
	sem_post(&bl->release);
	CHECK_OK(worker_join(w));
	CHECK_OK(worker_wait_event(end_event, w, 0, &data));
	ck_assert_ptr_eq(data, end_data);
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_eq(ret, want_ret);
	worker_unref(w);
	sem_destroy(&bl->started);
	sem_destroy(&bl->release);
}

START_TEST(test_drain_behind_stop)
{
	static const int plan[] = { 1, 2, 0, 3, 4 };
	struct backlog bl;
	int i;

	backlog_run(task_blocked_then_wait, plan, 5, &bl,
	    WORKER_CHILD_THREAD_STOP, NULL, NULL);
	ck_assert_int_eq(bl.n, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(bl.got[i], i + 1);
}
END_TEST

START_TEST(test_drain_after_return)
{
	static const int plan[] = { 1, 0, 2 };
	struct backlog bl;

	/* The task returns before it reaches a breakpoint: it is DONE, the
	 * stop never reached it, and both events still get handled. */
	backlog_run(task_blocked_then_return, plan, 3, &bl,
	    WORKER_CHILD_THREAD_DONE, (void *)1, (void *)1);
	ck_assert_int_eq(bl.n, 2);
	ck_assert_int_eq(bl.got[0], 1);
	ck_assert_int_eq(bl.got[1], 2);
}
END_TEST

/*
 * The 0.2 daemon values: WORKER_DAEMON_NO is -1, INHERIT 0, YES 1, so
 * `.daemon = true` means a daemon.  Written with plain values, as a
 * program that does not use the names would.
 */
START_TEST(test_daemon_values)
{
	worker_attr_t attr;
	worker_t *dp, *np, *c_no, *c_inh, *c_inh_np, *c_true_np;

	ck_assert_int_eq(WORKER_DAEMON_NO, -1);
	ck_assert_int_eq(WORKER_DAEMON_INHERIT, 0);
	ck_assert_int_eq(WORKER_DAEMON_YES, 1);

	memset(&attr, 0, sizeof(attr));
	attr.daemon = true;
	dp = worker_new(NULL, NULL, &attr);
	attr.daemon = 0;
	np = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(dp);
	ck_assert_ptr_nonnull(np);
	ck_assert_int_eq(worker_is_daemon(dp), 1);
	ck_assert_int_eq(worker_is_daemon(np), 0);

	/* -1 is no daemon even under a daemon parent; 0 inherits. */
	attr.parent = dp;
	attr.daemon = -1;
	c_no = worker_new(NULL, NULL, &attr);
	attr.daemon = 0;
	c_inh = worker_new(NULL, NULL, &attr);
	attr.parent = np;
	c_inh_np = worker_new(NULL, NULL, &attr);
	attr.daemon = true;
	c_true_np = worker_new(NULL, NULL, &attr);
	ck_assert_ptr_nonnull(c_no);
	ck_assert_ptr_nonnull(c_inh);
	ck_assert_ptr_nonnull(c_inh_np);
	ck_assert_ptr_nonnull(c_true_np);
	ck_assert_int_eq(worker_is_daemon(c_no), 0);
	ck_assert_int_eq(worker_is_daemon(c_inh), 1);
	ck_assert_int_eq(worker_is_daemon(c_inh_np), 0);
	ck_assert_int_eq(worker_is_daemon(c_true_np), 1);

	worker_unref(c_no);
	worker_unref(c_inh);
	worker_unref(c_inh_np);
	worker_unref(c_true_np);
	worker_unref(dp);
	worker_unref(np);
}
END_TEST

/* What the parent's CHILD_THREAD_START listener found through
 * ev->source. */
struct argmap {
	worker_t *source[NKIDS];
	void *arg[NKIDS];
	int n;
	sem_t started;
};

static int
on_start_arg(const worker_event_t *ev, void *ctx)
{
	struct argmap *m = ctx;

	if (m->n < NKIDS) {
		m->source[m->n] = ev->source;
		m->arg[m->n] = worker_arg(ev->source);
	}
	m->n++;
	sem_post(&m->started);
	return 0;
}

static void *
task_idle(void *arg)
{
	(void)arg;
	worker_wait_forever();
	return NULL;
}

/* A parent reaches each child's state from the events the child sends. */
START_TEST(test_child_arg_from_source)
{
	int tok[2];
	struct argmap m;
	worker_attr_t attr;
	worker_t *p, *c[2];
	int i, j;

	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(sem_init(&m.started, 0, 0), 0);
	p = idle_new("arg-parent", NULL, NULL);
	CHECK_OK(worker_listen(p, WORKER_CHILD_THREAD_START, on_start_arg,
	    &m, NULL));
	CHECK_OK(worker_start(p));
	memset(&attr, 0, sizeof(attr));
	attr.parent = p;
	c[0] = worker_create(NULL, &tok[0], &attr);
	c[1] = worker_create(task_idle, &tok[1], &attr);
	ck_assert_ptr_nonnull(c[0]);
	ck_assert_ptr_nonnull(c[1]);
	sem_wait_ok(&m.started, "the first CHILD_THREAD_START");
	sem_wait_ok(&m.started, "the second CHILD_THREAD_START");
	CHECK_OK(worker_stop(p));
	CHECK_OK(worker_join(p));

	ck_assert_int_eq(m.n, 2);
	/* The children start in any order. */
	for (i = 0; i < 2; i++) {
		j = m.source[0] == c[i] ? 0 : 1;
		ck_assert_ptr_eq(m.source[j], c[i]);
		ck_assert_ptr_eq(m.arg[j], &tok[i]);
	}
	for (i = 0; i < 2; i++) {
		CHECK_OK(worker_join(c[i]));
		worker_unref(c[i]);
	}
	worker_unref(p);
	sem_destroy(&m.started);
}
END_TEST

/*
 * A parent that is ending takes no new child (issue L2).  P's task is
 * held outside any breakpoint while LATE is queued on it, then returns:
 * LATE reaches P's listener only in the drain of its end sequence, while
 * P is ending.  There, and from the test's thread while that listener
 * waits, a child with .parent = P is refused: worker_new and
 * worker_create give NULL and ESRCH, and worker_start of P's idle child
 * gives ESRCH.  Once P has ended, a restart takes children again.
 * Before the fix all of them were taken (the ones started in the drain
 * were then stopped at step 7 with P's other children).
 */
struct ending {
	worker_t *p;
	worker_t *kid;		/* P's idle child, made before P ran */
	sem_t release;		/* lets P's task return */
	sem_t in_drain;		/* the LATE listener runs, in the drain */
	sem_t tried;		/* the test's thread has tried its part */
	/* What the LATE listener got, published by P's join. */
	int late_calls;
	int running;		/* worker_is_running(P) in the listener */
	worker_t *made_new, *made_create;
	int new_errno, create_errno, start_rc;
};

static void *
task_held_then_return(void *arg)
{
	struct ending *e = arg;

	sem_wait_intr(&e->release);
	return NULL;
}

static int
on_late(const worker_event_t *ev, void *ctx)
{
	struct ending *e = ctx;
	worker_attr_t attr = { .name = "late", .parent = e->p };

	(void)ev;
	e->late_calls++;
	e->running = worker_is_running(e->p);
	errno = 0;
	e->made_new = worker_new(NULL, NULL, &attr);
	e->new_errno = errno;
	errno = 0;
	e->made_create = worker_create(NULL, NULL, &attr);
	e->create_errno = errno;
	e->start_rc = worker_start(e->kid);
	sem_post(&e->in_drain);
	sem_wait_intr(&e->tried);
	return 0;
}

/* NULL and ESRCH from a constructor of a child of the ending P; a child
 * made anyway is left for the failure to report (P stops it). */
static void
expect_refused(worker_t *made, int err, const char *what)
{
	ck_assert_msg(made == NULL && err == ESRCH, "%s under an ending "
	    "parent: %s, errno %d (%s), want NULL and ESRCH", what,
	    made == NULL ? "NULL" : "a worker", err, strerror(err));
}

START_TEST(test_ending_parent_refuses)
{
	worker_attr_t pattr = { .name = "ending" };
	worker_attr_t kattr = { .name = "kid" };
	worker_t *made, *late;
	struct ending e;
	int err, rc;

	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(sem_init(&e.release, 0, 0), 0);
	ck_assert_int_eq(sem_init(&e.in_drain, 0, 0), 0);
	ck_assert_int_eq(sem_init(&e.tried, 0, 0), 0);
	e.p = worker_new(task_held_then_return, &e, &pattr);
	ck_assert_ptr_nonnull(e.p);
	kattr.parent = e.p;
	e.kid = worker_new(NULL, NULL, &kattr);
	ck_assert_ptr_nonnull(e.kid);
	CHECK_OK(worker_listen(e.p, "LATE", on_late, &e, NULL));
	CHECK_OK(worker_start(e.p));
	/* The task sits in sem_wait, not at a breakpoint: LATE stays
	 * queued until the drain. */
	CHECK_OK(worker_fire(e.p, "LATE", NULL));
	sem_post(&e.release);
	sem_wait_ok(&e.in_drain, "the LATE listener in P's drain");

	/* From another thread while P is ending. */
	errno = 0;
	made = worker_create(NULL, NULL, &kattr);
	err = errno;
	expect_refused(made, err, "worker_create from the test's thread");
	errno = 0;
	made = worker_new(NULL, NULL, &kattr);
	err = errno;
	expect_refused(made, err, "worker_new from the test's thread");
	rc = worker_start(e.kid);
	ck_assert_msg(rc == ESRCH, "worker_start of P's idle child from the "
	    "test's thread while P ends: %d (%s), want ESRCH", rc,
	    strerror(rc));
	sem_post(&e.tried);
	/* Before the fix this join could hang: P stopped its children
	 * before one of them started. */
	join_bounded(e.p, "P's join after children were refused");

	/* From P's own listener in its drain. */
	ck_assert_int_eq(e.late_calls, 1);
	ck_assert_int_eq(e.running, 0);
	expect_refused(e.made_new, e.new_errno, "worker_new in the drain");
	expect_refused(e.made_create, e.create_errno,
	    "worker_create in the drain");
	CHECK_RC(e.start_rc, ESRCH);
	ck_assert_int_eq(worker_is_running(e.kid), 0);

	/* Ended and restarted, P takes children again. */
	CHECK_OK(worker_start(e.p));
	late = worker_create(NULL, NULL, &kattr);
	ck_assert_msg(late != NULL, "worker_create under the restarted "
	    "parent: %s", strerror(errno));
	CHECK_OK(worker_start(e.kid));
	made = worker_new(NULL, NULL, &kattr);
	ck_assert_msg(made != NULL, "worker_new under the restarted "
	    "parent: %s", strerror(errno));
	ck_assert_ptr_eq(worker_parent(made), e.p);
	worker_unref(made);
	/* P's end stops and joins both running children. */
	sem_post(&e.release);
	join_bounded(e.p, "the restarted P's join");
	ck_assert_int_eq(worker_is_running(late), 0);
	ck_assert_int_eq(worker_is_running(e.kid), 0);
	CHECK_OK(worker_join(late));
	CHECK_OK(worker_join(e.kid));
	ck_assert_int_eq(e.late_calls, 1);

	worker_unref(late);
	worker_unref(e.kid);
	worker_unref(e.p);
	sem_destroy(&e.release);
	sem_destroy(&e.in_drain);
	sem_destroy(&e.tried);
}
END_TEST

/*
 * The same at step 7 of P's end sequence, where P has stopped its
 * children and joins them: its child B is held in its cleanup handler
 * while the test's thread starts P's idle child and creates another.
 * Before the fix both were taken, and P, which had fired its stops
 * already, waited for the unstopped child for ever: its join hung.
 */
struct joining {
	sem_t cleaning;		/* B's cleanup handler runs */
	sem_t release;		/* lets it finish */
	atomic_int cleaned;
};

static void
held_cleanup(void *arg)
{
	struct joining *j = arg;

	sem_post(&j->cleaning);
	sem_wait_intr(&j->release);
	atomic_store(&j->cleaned, 1);
}

static void *
task_held_cleanup(void *arg)
{
	worker_cleanup_push(held_cleanup, arg);
	worker_wait_forever();
	worker_cleanup_pop(0);
	return NULL;
}

START_TEST(test_joining_parent_refuses)
{
	worker_attr_t kattr = { .name = "kid" };
	worker_t *p, *b, *kid, *made;
	struct joining j;
	int err, rc;

	memset(&j, 0, sizeof(j));
	ck_assert_int_eq(sem_init(&j.cleaning, 0, 0), 0);
	ck_assert_int_eq(sem_init(&j.release, 0, 0), 0);
	p = idle_new("joining", NULL, NULL);
	kattr.parent = p;
	kid = worker_new(NULL, NULL, &kattr);
	ck_assert_ptr_nonnull(kid);
	CHECK_OK(worker_start(p));
	b = worker_create(task_held_cleanup, &j, &kattr);
	ck_assert_ptr_nonnull(b);
	CHECK_OK(worker_stop(p));
	sem_wait_ok(&j.cleaning, "B's cleanup, stopped by P's end");

	rc = worker_start(kid);
	errno = 0;
	made = worker_create(NULL, NULL, &kattr);
	err = errno;
	sem_post(&j.release);
	/* Before the fix: hangs, P joins a child it never stopped. */
	join_bounded(p, "P's join (it waits for a child started after it "
	    "stopped its children)");
	ck_assert_msg(rc == ESRCH, "worker_start of P's idle child while P "
	    "joins its children: %d (%s), want ESRCH", rc, strerror(rc));
	expect_refused(made, err, "worker_create while P joins its children");
	CHECK_ATOMIC(&j.cleaned, 1);
	ck_assert_int_eq(worker_is_running(kid), 0);
	ck_assert_int_eq(worker_is_running(b), 0);

	CHECK_OK(worker_join(b));
	worker_unref(b);
	worker_unref(kid);
	worker_unref(p);
	sem_destroy(&j.cleaning);
	sem_destroy(&j.release);
}
END_TEST

Suite *
suite_tree(void)
{
	Suite *s = suite_create("tree");
	TCase *tc;

	tcase_add_test(test_case(s, "stopped_with_parent"),
	    test_stopped_with_parent);
	tcase_add_test(test_case(s, "daemon_rules"), test_daemon_rules);
	tcase_add_test(test_case(s, "joins_non_daemon"),
	    test_joins_non_daemon);
	tcase_add_test(test_case(s, "no_wait_for_daemon"),
	    test_no_wait_for_daemon);
	tcase_add_test(test_case(s, "finished_child_leaves"),
	    test_finished_child_leaves);
	tcase_add_test(test_case(s, "unstarted_child_leaves"),
	    test_unstarted_child_leaves);
	tcase_add_test(test_case(s, "default_parent"), test_default_parent);
	tcase_add_test(test_case(s, "find_child_ref"), test_find_child_ref);
	tcase_add_test(test_case(s, "child_events"), test_child_events);
	tcase_add_test(test_case(s, "dump"), test_dump);
	tcase_add_test(test_case(s, "drain_behind_stop"),
	    test_drain_behind_stop);
	tcase_add_test(test_case(s, "drain_after_return"),
	    test_drain_after_return);
	tcase_add_test(test_case(s, "daemon_values"), test_daemon_values);
	tcase_add_test(test_case(s, "child_arg_from_source"),
	    test_child_arg_from_source);
	tc = test_case(s, "ending_parent");
	tcase_add_test(tc, test_ending_parent_refuses);
	tcase_add_test(tc, test_joining_parent_refuses);
	return s;
}
