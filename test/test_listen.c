/*
 * test_listen.c - listeners: priority order, once, transient and
 * permanent across a restart, the source filter, unlisten, listeners
 * that change the listener set while an event is being dispatched,
 * LISTENER_ERROR and its data (code and event name), EXECUTE and a nested
 * wait inside a listener.
 *
 * Listeners run in the worker's thread and record into plain fields that
 * the test reads only after a semaphore post or a join (both order the
 * memory), or into atomics where another thread races with them.  A FENCE
 * event fired after the events under test tells the test when the worker
 * has handled all of them.
 */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

/* ---- Priority --------------------------------------------------------- */

#define NPRIO 5

struct order {
	int seen[16];
	int n;
};

struct order_slot {
	struct order *o;
	int index;
};

static int
on_order(const worker_event_t *ev, void *ctx)
{
	struct order_slot *sl = ctx;

	(void)ev;
	if (sl->o->n < 16)
		sl->o->seen[sl->o->n] = sl->index;
	sl->o->n++;
	return 0;
}

START_TEST(listen_priority)
{
	static const int prio[NPRIO] = { 1, 3, 3, 1, 2 };
	static const int want[NPRIO] = { 1, 2, 4, 0, 3 };
	struct order o = { .n = 0 };
	struct order_slot sl[NPRIO];
	sem_t fs;
	worker_t *w;

	sem_init(&fs, 0, 0);
	w = idle_new("prio", NULL, &fs);
	for (int i = 0; i < NPRIO; i++) {
		worker_listen_opts_t opts = { .priority = prio[i] };

		sl[i].o = &o;
		sl[i].index = i;
		CHECK_OK(worker_listen(w, "E", on_order, &sl[i], &opts));
	}
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);

	ck_assert_int_eq(o.n, NPRIO);
	for (int i = 0; i < NPRIO; i++)
		ck_assert_msg(o.seen[i] == want[i],
		    "call %d was listener %d, want %d", i, o.seen[i],
		    want[i]);
	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

/* ---- once, transient, permanent --------------------------------------- */

START_TEST(listen_once)
{
	worker_listen_opts_t once = { .once = 1 };
	atomic_int n_once = 0, n_all = 0;
	sem_t fs;
	worker_t *w;

	sem_init(&fs, 0, 0);
	w = idle_new("once", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_count, &n_once, &once));
	CHECK_OK(worker_listen(w, "E", on_count, &n_all, NULL));
	CHECK_OK(worker_start(w));
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);

	CHECK_ATOMIC(&n_once, 1);
	CHECK_ATOMIC(&n_all, 3);
	/* It removed itself, so there is nothing left to unlisten. */
	CHECK_RC(worker_unlisten(w, on_count, &n_once), ENOENT);
	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

/* A once listener is claimed when its event is taken, so a nested wait
 * inside it that handles the same name again does not call it again. */
struct once_nested {
	int calls;
	int fire_rc, wait_rc;
	sem_t done;
};

static int
on_once_nested(const worker_event_t *ev, void *ctx)
{
	struct once_nested *on = ctx;

	(void)ev;
	if (on->calls++ > 0)
		return 0;
	on->fire_rc = worker_fire(worker_current(), "E", NULL);
	on->wait_rc = worker_wait_event("E", NULL, TEST_TIMEOUT, NULL);
	sem_post(&on->done);
	return 0;
}

START_TEST(listen_once_nested)
{
	worker_listen_opts_t once = { .once = 1 };
	struct once_nested on = { .fire_rc = -1, .wait_rc = -1 };
	atomic_int n_all = 0;
	sem_t fs;
	worker_t *w;

	sem_init(&on.done, 0, 0);
	sem_init(&fs, 0, 0);
	w = idle_new("once-nested", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_once_nested, &on, &once));
	CHECK_OK(worker_listen(w, "E", on_count, &n_all, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", NULL));
	sem_wait_ok(&on.done, "the once listener");
	fence(w, &fs);

	ck_assert_int_eq(on.calls, 1);
	ck_assert_int_eq(on.fire_rc, 0);
	ck_assert_int_eq(on.wait_rc, 0);
	CHECK_ATOMIC(&n_all, 2);
	stop_join_unref(w);
	sem_destroy(&on.done);
	sem_destroy(&fs);
}
END_TEST

START_TEST(listen_transient_restart)
{
	worker_listen_opts_t transient = { .transient = 1 };
	atomic_int n_trans = 0, n_perm = 0;
	sem_t fs;
	worker_t *w;

	sem_init(&fs, 0, 0);
	w = idle_new("restart", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_count, &n_trans, &transient));
	CHECK_OK(worker_listen(w, "E", on_count, &n_perm, NULL));

	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);
	CHECK_ATOMIC(&n_trans, 1);
	CHECK_ATOMIC(&n_perm, 1);
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));

	/* The transient listener went with the run; the rest survive. */
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);
	CHECK_ATOMIC(&n_trans, 1);
	CHECK_ATOMIC(&n_perm, 2);
	CHECK_RC(worker_unlisten(w, on_count, &n_trans), ENOENT);

	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

/* ---- The source filter ------------------------------------------------ */

struct seen_data {
	void *data[8];
	worker_t *source[8];
	int n;
};

static int
on_seen(const worker_event_t *ev, void *ctx)
{
	struct seen_data *s = ctx;

	if (s->n < 8) {
		s->data[s->n] = ev->data;
		s->source[s->n] = ev->source;
	}
	s->n++;
	return 0;
}

START_TEST(listen_source_filter)
{
	struct seen_data only_a = { .n = 0 }, any = { .n = 0 };
	worker_listen_opts_t from_a = { 0 };
	int tok_a, tok_b, tok_main;
	sem_t fs;
	worker_t *w, *a, *b;

	sem_init(&fs, 0, 0);
	w = idle_new("hub", NULL, &fs);
	CHECK_OK(worker_start(w));
	a = idle_new("a", w, NULL);
	b = idle_new("b", w, NULL);
	CHECK_OK(worker_start(a));
	CHECK_OK(worker_start(b));
	from_a.source = a;
	CHECK_OK(worker_listen(w, "E", on_seen, &only_a, &from_a));
	CHECK_OK(worker_listen(w, "E", on_seen, &any, NULL));

	/* Two children bubble up to w, and main fires directly. */
	CHECK_OK(worker_bubble(b, "E", &tok_b));
	CHECK_OK(worker_bubble(a, "E", &tok_a));
	CHECK_OK(worker_fire(w, "E", &tok_main));
	CHECK_OK(worker_bubble(b, "E", &tok_b));
	fence(w, &fs);

	ck_assert_int_eq(any.n, 4);
	ck_assert_int_eq(only_a.n, 1);
	ck_assert_ptr_eq(only_a.data[0], &tok_a);
	ck_assert_ptr_eq(only_a.source[0], a);
	ck_assert_ptr_eq(any.source[0], b);
	ck_assert_ptr_eq(any.source[2], worker_current());

	/* Stopping the hub stops and joins its children. */
	stop_join_unref(w);
	CHECK_OK(worker_join(a));
	CHECK_OK(worker_join(b));
	worker_unref(a);
	worker_unref(b);
	sem_destroy(&fs);
}
END_TEST

/* ---- unlisten ----------------------------------------------------------- */

struct tally {
	atomic_int n;
};

static int
on_tally(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add(&((struct tally *)ctx)->n, 1);
	return 0;
}

static int
on_tally2(const worker_event_t *ev, void *ctx)
{
	return on_tally(ev, ctx);
}

START_TEST(unlisten_every_match)
{
	struct tally c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	sem_t fs;
	worker_t *w;

	sem_init(&fs, 0, 0);
	w = idle_new("unlisten", NULL, &fs);
	/* Before start: listeners may be changed in any state. */
	CHECK_OK(worker_listen(w, "A", on_tally, &c1, NULL));
	CHECK_OK(worker_listen(w, "B", on_tally, &c1, NULL));
	CHECK_OK(worker_listen(w, "A", on_tally, &c1, NULL));
	CHECK_OK(worker_listen(w, "A", on_tally, &c2, NULL));
	CHECK_OK(worker_listen(w, "C", on_tally2, &c1, NULL));

	/* Every (on_tally, &c1), whatever the name; nothing else. */
	CHECK_OK(worker_unlisten(w, on_tally, &c1));
	CHECK_RC(worker_unlisten(w, on_tally, &c1), ENOENT);
	CHECK_RC(worker_unlisten(w, on_tally, &c3), ENOENT);
	CHECK_RC(worker_unlisten(w, on_tally2, &c2), ENOENT);

	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "A", NULL));
	CHECK_OK(worker_fire(w, "B", NULL));
	CHECK_OK(worker_fire(w, "C", NULL));
	fence(w, &fs);
	/* c1 only through on_tally2 on C; c2 on A. */
	CHECK_ATOMIC(&c1.n, 1);
	CHECK_ATOMIC(&c2.n, 1);

	/* While running, from another thread. */
	CHECK_OK(worker_unlisten(w, on_tally2, &c1));
	CHECK_OK(worker_fire(w, "C", NULL));
	fence(w, &fs);
	CHECK_ATOMIC(&c1.n, 1);

	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
	/* After the end as well. */
	CHECK_OK(worker_unlisten(w, on_tally, &c2));
	CHECK_RC(worker_unlisten(w, on_tally, &c2), ENOENT);
	worker_unref(w);
	sem_destroy(&fs);
}
END_TEST

/* ---- Listeners that change the listener set mid-dispatch -------------- */

struct self_unlisten {
	atomic_int n;
	int rc;
};

static int
on_self_unlisten(const worker_event_t *ev, void *ctx)
{
	struct self_unlisten *s = ctx;

	(void)ev;
	atomic_fetch_add(&s->n, 1);
	s->rc = worker_unlisten(worker_current(), on_self_unlisten, s);
	return 0;
}

START_TEST(listen_unlisten_self)
{
	struct self_unlisten su = { .rc = -1 };
	atomic_int before = 0, after = 0;
	worker_listen_opts_t hi = { .priority = 10 }, lo = { .priority = -10 };
	sem_t fs;
	worker_t *w;

	atomic_init(&su.n, 0);
	sem_init(&fs, 0, 0);
	w = idle_new("selfish", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_count, &before, &hi));
	CHECK_OK(worker_listen(w, "E", on_self_unlisten, &su, NULL));
	CHECK_OK(worker_listen(w, "E", on_count, &after, &lo));
	CHECK_OK(worker_start(w));
	for (int i = 0; i < 3; i++)
		CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);

	CHECK_ATOMIC(&su.n, 1);
	ck_assert_int_eq(su.rc, 0);
	CHECK_ATOMIC(&before, 3);
	CHECK_ATOMIC(&after, 3);
	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

struct adder {
	int added;
	int rc_hi, rc_lo;
	void *hi_data[4], *lo_data[4];
	int hi_n, lo_n;
};

static int
on_added_hi(const worker_event_t *ev, void *ctx)
{
	struct adder *a = ctx;

	if (a->hi_n < 4)
		a->hi_data[a->hi_n] = ev->data;
	a->hi_n++;
	return 0;
}

static int
on_added_lo(const worker_event_t *ev, void *ctx)
{
	struct adder *a = ctx;

	if (a->lo_n < 4)
		a->lo_data[a->lo_n] = ev->data;
	a->lo_n++;
	return 0;
}

/* On the first event adds one listener that sorts before it and one that
 * sorts after it: neither may see the event being dispatched. */
static int
on_adder(const worker_event_t *ev, void *ctx)
{
	struct adder *a = ctx;
	worker_listen_opts_t hi = { .priority = 10 }, lo = { .priority = -10 };

	(void)ev;
	if (a->added++ == 0) {
		a->rc_hi = worker_listen(worker_current(), "E", on_added_hi,
		    a, &hi);
		a->rc_lo = worker_listen(worker_current(), "E", on_added_lo,
		    a, &lo);
	}
	return 0;
}

START_TEST(listen_add_during_dispatch)
{
	struct adder a = { .rc_hi = -1, .rc_lo = -1 };
	int tok1, tok2;
	sem_t fs;
	worker_t *w;

	sem_init(&fs, 0, 0);
	w = idle_new("adder", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_adder, &a, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", &tok1));
	CHECK_OK(worker_fire(w, "E", &tok2));
	fence(w, &fs);

	ck_assert_int_eq(a.added, 2);
	ck_assert_int_eq(a.rc_hi, 0);
	ck_assert_int_eq(a.rc_lo, 0);
	ck_assert_int_eq(a.hi_n, 1);
	ck_assert_ptr_eq(a.hi_data[0], &tok2);
	ck_assert_int_eq(a.lo_n, 1);
	ck_assert_ptr_eq(a.lo_data[0], &tok2);
	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

struct remover {
	atomic_int first, later;
	int rc[4];
	int n;
};

static int
on_later(const worker_event_t *ev, void *ctx)
{
	struct remover *r = ctx;

	(void)ev;
	atomic_fetch_add(&r->later, 1);
	return 0;
}

static int
on_remover(const worker_event_t *ev, void *ctx)
{
	struct remover *r = ctx;

	(void)ev;
	atomic_fetch_add(&r->first, 1);
	if (r->n < 4)
		r->rc[r->n] = worker_unlisten(worker_current(), on_later, r);
	r->n++;
	return 0;
}

START_TEST(listen_unlisten_later)
{
	struct remover r = { .n = 0 };
	worker_listen_opts_t hi = { .priority = 1 };
	sem_t fs;
	worker_t *w;

	atomic_init(&r.first, 0);
	atomic_init(&r.later, 0);
	sem_init(&fs, 0, 0);
	w = idle_new("remover", NULL, &fs);
	CHECK_OK(worker_listen(w, "E", on_remover, &r, &hi));
	CHECK_OK(worker_listen(w, "E", on_later, &r, NULL));
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_fire(w, "E", NULL));
	CHECK_OK(worker_fire(w, "E", NULL));
	fence(w, &fs);

	CHECK_ATOMIC(&r.first, 2);
	CHECK_ATOMIC(&r.later, 0);
	ck_assert_int_eq(r.rc[0], 0);
	ck_assert_int_eq(r.rc[1], ENOENT);
	stop_join_unref(w);
	sem_destroy(&fs);
}
END_TEST

/* ---- Listen and unlisten from another thread during a flood ----------- */

#define FLOOD 50000
#define TOGGLES 5000

struct flood {
	worker_t *w;
	atomic_int listen_errors;
	atomic_int extra_calls;
	int count;		/* w's thread only; read after a post */
	sem_t all;
};

static int
on_flood(const worker_event_t *ev, void *ctx)
{
	struct flood *f = ctx;

	(void)ev;
	if (++f->count == FLOOD)
		sem_post(&f->all);
	return 0;
}

static int
on_extra(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add(&((struct flood *)ctx)->extra_calls, 1);
	return 0;
}

static int
on_extra_once(const worker_event_t *ev, void *ctx)
{
	return on_extra(ev, ctx);
}

/*
 * A fixed amount of work rather than "until the flood is over": valgrind's
 * default scheduler is not fair (--fair-sched=no), so a thread looping on
 * the listener lock can keep the dispatcher from it for minutes, and an
 * open-ended toggler once ran into the test timeout there.  The yield is
 * for fairness only; no step depends on it.
 */
static void *
toggler_main(void *arg)
{
	struct flood *f = arg;

	for (int i = 0; i < TOGGLES; i++) {
		worker_listen_opts_t opts = {
			.priority = i % 3 - 1, .once = i % 2,
		};
		int rc;

		if (worker_listen(f->w, "E", on_extra, f, &opts) != 0 ||
		    worker_listen(f->w, "OTHER", on_extra, f, NULL) != 0)
			atomic_fetch_add(&f->listen_errors, 1);
		if (worker_unlisten(f->w, on_extra, f) != 0)
			atomic_fetch_add(&f->listen_errors, 1);
		/* A once listener may have gone by itself: ENOENT is fine. */
		if (worker_listen(f->w, "E", on_extra_once, f, &opts) != 0)
			atomic_fetch_add(&f->listen_errors, 1);
		rc = worker_unlisten(f->w, on_extra_once, f);
		if (rc != 0 && !(rc == ENOENT && opts.once))
			atomic_fetch_add(&f->listen_errors, 1);
		sched_yield();
	}
	return NULL;
}

START_TEST(listen_concurrent_flood)
{
	struct flood f;
	pthread_t th;
	worker_t *w;

	memset(&f, 0, sizeof(f));
	sem_init(&f.all, 0, 0);
	w = idle_new("flooded", NULL, NULL);
	f.w = w;
	CHECK_OK(worker_listen(w, "E", on_flood, &f, NULL));
	CHECK_OK(worker_start(w));
	ck_assert_int_eq(pthread_create(&th, NULL, toggler_main, &f), 0);

	for (int i = 0; i < FLOOD; i++)
		CHECK_OK(worker_fire(w, "E", NULL));
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	sem_wait_ok(&f.all, "the flood");
	stop_join_unref(w);

	ck_assert_int_eq(f.count, FLOOD);
	CHECK_ATOMIC(&f.listen_errors, 0);
	sem_destroy(&f.all);
}
END_TEST

/* ---- LISTENER_ERROR --------------------------------------------------- */

struct lerr {
	worker_t *source;
	int rc;			/* read from the data during the listener */
	char event[16];
	unsigned flags;
	int n;
	sem_t got;
};

static int
on_lerr(const worker_event_t *ev, void *ctx)
{
	struct lerr *l = ctx;
	const worker_listener_error_t *e = ev->data;

	l->source = ev->source;
	l->rc = e != NULL ? e->rc : -1;
	snprintf(l->event, sizeof(l->event), "%s", e != NULL ? e->event : "");
	l->flags = ev->flags;
	l->n++;
	sem_post(&l->got);
	return 0;
}

static int
on_fail7(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add((atomic_int *)ctx, 1);
	return 7;
}

START_TEST(listen_error_bubbles)
{
	struct lerr at_child, at_parent;
	atomic_int failed = 0, others = 0;
	worker_listen_opts_t hi = { .priority = 5 };
	sem_t pfs, cfs;
	worker_t *p, *c;

	memset(&at_child, 0, sizeof(at_child));
	memset(&at_parent, 0, sizeof(at_parent));
	sem_init(&at_child.got, 0, 0);
	sem_init(&at_parent.got, 0, 0);
	sem_init(&pfs, 0, 0);
	sem_init(&cfs, 0, 0);
	p = idle_new("parent", NULL, &pfs);
	CHECK_OK(worker_listen(p, WORKER_LISTENER_ERROR, on_lerr, &at_parent,
	    NULL));
	CHECK_OK(worker_start(p));
	c = idle_new("child", p, &cfs);
	CHECK_OK(worker_listen(c, WORKER_LISTENER_ERROR, on_lerr, &at_child,
	    NULL));
	/* The failing listener runs first; the others must still run. */
	CHECK_OK(worker_listen(c, "E", on_fail7, &failed, &hi));
	CHECK_OK(worker_listen(c, "E", on_count, &others, NULL));
	CHECK_OK(worker_listen(c, "E", on_count, &others, NULL));
	CHECK_OK(worker_start(c));

	CHECK_OK(worker_fire(c, "E", NULL));
	sem_wait_ok(&at_child.got, "LISTENER_ERROR at the child");
	sem_wait_ok(&at_parent.got, "LISTENER_ERROR at the parent");
	fence(c, &cfs);
	fence(p, &pfs);

	CHECK_ATOMIC(&failed, 1);
	CHECK_ATOMIC(&others, 2);
	ck_assert_int_eq(at_child.n, 1);
	ck_assert_ptr_eq(at_child.source, c);
	ck_assert_int_eq(at_child.rc, 7);
	ck_assert_str_eq(at_child.event, "E");
	ck_assert_uint_ne(at_child.flags & WORKER_BUBBLE, 0);
	ck_assert_int_eq(at_parent.n, 1);
	ck_assert_ptr_eq(at_parent.source, c);
	ck_assert_int_eq(at_parent.rc, 7);
	ck_assert_str_eq(at_parent.event, "E");

	stop_join_unref(p);
	CHECK_OK(worker_join(c));
	worker_unref(c);
	sem_destroy(&at_child.got);
	sem_destroy(&at_parent.got);
	sem_destroy(&pfs);
	sem_destroy(&cfs);
}
END_TEST

/* A failing LISTENER_ERROR listener must not fire another one.  The
 * task handles one batch per worker_update(), so a loop would show as a
 * third update that still finds something. */
struct lerr_loop {
	sem_t ready, go;
	int n[3];
	atomic_int lerr_calls;
};

static void *
lerr_loop_task(void *arg)
{
	struct lerr_loop *l = arg;

	sem_post(&l->ready);
	sem_wait_intr(&l->go);
	for (int i = 0; i < 3; i++)
		l->n[i] = worker_update();
	return NULL;
}

static int
on_lerr_fail(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add(&((struct lerr_loop *)ctx)->lerr_calls, 1);
	return 1;
}

START_TEST(listen_error_no_loop)
{
	struct lerr_loop l;
	atomic_int failed = 0;
	worker_attr_t attr = { .name = "lerr-loop", .quiet = 1 };
	worker_t *w;

	memset(&l, 0, sizeof(l));
	sem_init(&l.ready, 0, 0);
	sem_init(&l.go, 0, 0);
	w = worker_new(lerr_loop_task, &l, &attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "E", on_fail7, &failed, NULL));
	CHECK_OK(worker_listen(w, WORKER_LISTENER_ERROR, on_lerr_fail, &l,
	    NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&l.ready, "the task");
	CHECK_OK(worker_fire(w, "E", NULL));
	sem_post(&l.go);
	CHECK_OK(worker_join(w));

	ck_assert_int_eq(l.n[0], 1);	/* E */
	ck_assert_int_eq(l.n[1], 1);	/* its LISTENER_ERROR */
	ck_assert_int_eq(l.n[2], 0);	/* nothing more */
	CHECK_ATOMIC(&failed, 1);
	CHECK_ATOMIC(&l.lerr_calls, 1);
	worker_unref(w);
	sem_destroy(&l.ready);
	sem_destroy(&l.go);
}
END_TEST

/* ---- LISTENER_ERROR's data -------------------------------------------- */

#define NLERR 4
#define LONG_NAME 300	/* bytes of a long event name, past any inline copy */

/* Every LISTENER_ERROR one worker saw: the data is read during the
 * listener, which is as long as it is valid. */
struct lerrs {
	int n;
	int rc[NLERR];
	char event[NLERR][LONG_NAME + 8];
	worker_t *source[NLERR];
	sem_t got;
};

static void
lerrs_init(struct lerrs *l)
{
	memset(l, 0, sizeof(*l));
	sem_init(&l->got, 0, 0);
}

static int
on_lerrs(const worker_event_t *ev, void *ctx)
{
	struct lerrs *l = ctx;
	const worker_listener_error_t *e = ev->data;

	if (l->n < NLERR) {
		l->rc[l->n] = e != NULL ? e->rc : -1;
		snprintf(l->event[l->n], sizeof(l->event[0]), "%s",
		    e != NULL && e->event != NULL ? e->event : "(none)");
		l->source[l->n] = ev->source;
	}
	l->n++;
	sem_post(&l->got);
	return 0;
}

/* Fails with the code in ctx. */
static int
on_fail_with(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	return (int)(intptr_t)ctx;
}

/* The one entry of l for event, which must have code rc and come from
 * source. */
static void
expect_lerr(const struct lerrs *l, const char *who, const char *event,
    int rc, worker_t *source)
{
	int i, found = -1;

	for (i = 0; i < l->n && i < NLERR; i++) {
		if (strcmp(l->event[i], event) != 0)
			continue;
		ck_assert_msg(found < 0, "%s: two LISTENER_ERRORs for %.20s",
		    who, event);
		found = i;
	}
	ck_assert_msg(found >= 0, "%s: no LISTENER_ERROR for %.20s... "
	    "(%zu bytes)", who, event, strlen(event));
	ck_assert_msg(l->rc[found] == rc, "%s: %.20s failed with %d, want %d",
	    who, event, l->rc[found], rc);
	ck_assert_ptr_eq(l->source[found], source);
}

/* A child and its parent, each recording its LISTENER_ERRORs. */
struct lerr_pair {
	struct lerrs at_child, at_parent;
	sem_t pfs, cfs;
	worker_t *p, *c;
};

static void
lerr_pair_up(struct lerr_pair *lp)
{
	lerrs_init(&lp->at_child);
	lerrs_init(&lp->at_parent);
	sem_init(&lp->pfs, 0, 0);
	sem_init(&lp->cfs, 0, 0);
	lp->p = idle_new("parent", NULL, &lp->pfs);
	CHECK_OK(worker_listen(lp->p, WORKER_LISTENER_ERROR, on_lerrs,
	    &lp->at_parent, NULL));
	CHECK_OK(worker_start(lp->p));
	lp->c = idle_new("child", lp->p, &lp->cfs);
	CHECK_OK(worker_listen(lp->c, WORKER_LISTENER_ERROR, on_lerrs,
	    &lp->at_child, NULL));
}

/* Waits for n LISTENER_ERRORs at each, then for nothing more. */
static void
lerr_pair_wait(struct lerr_pair *lp, int n)
{
	for (int i = 0; i < n; i++) {
		sem_wait_ok(&lp->at_child.got, "LISTENER_ERROR at the child");
		sem_wait_ok(&lp->at_parent.got,
		    "LISTENER_ERROR at the parent");
	}
	fence(lp->c, &lp->cfs);
	fence(lp->p, &lp->pfs);
	ck_assert_int_eq(lp->at_child.n, n);
	ck_assert_int_eq(lp->at_parent.n, n);
}

static void
lerr_pair_down(struct lerr_pair *lp)
{
	stop_join_unref(lp->p);
	CHECK_OK(worker_join(lp->c));
	worker_unref(lp->c);
	sem_destroy(&lp->at_child.got);
	sem_destroy(&lp->at_parent.got);
	sem_destroy(&lp->pfs);
	sem_destroy(&lp->cfs);
}

/* Two events fail with two codes: each report names its own. */
START_TEST(listen_error_two_events)
{
	struct lerr_pair lp;

	lerr_pair_up(&lp);
	CHECK_OK(worker_listen(lp.c, "A", on_fail_with, (void *)11, NULL));
	CHECK_OK(worker_listen(lp.c, "B", on_fail_with, (void *)22, NULL));
	CHECK_OK(worker_start(lp.c));
	CHECK_OK(worker_fire(lp.c, "A", NULL));
	CHECK_OK(worker_fire(lp.c, "B", NULL));
	lerr_pair_wait(&lp, 2);

	expect_lerr(&lp.at_child, "child", "A", 11, lp.c);
	expect_lerr(&lp.at_child, "child", "B", 22, lp.c);
	expect_lerr(&lp.at_parent, "parent", "A", 11, lp.c);
	expect_lerr(&lp.at_parent, "parent", "B", 22, lp.c);
	lerr_pair_down(&lp);
}
END_TEST

/* The report carries the whole name of an event with a long one. */
START_TEST(listen_error_long_name)
{
	char name[LONG_NAME + 1];
	struct lerr_pair lp;

	memset(name, 'L', LONG_NAME);
	/* A distinct end, so a cut name cannot pass for the whole. */
	memcpy(name + LONG_NAME - 4, "-END", 5);
	ck_assert_uint_eq(strlen(name), LONG_NAME);
	lerr_pair_up(&lp);
	CHECK_OK(worker_listen(lp.c, name, on_fail_with, (void *)33, NULL));
	CHECK_OK(worker_start(lp.c));
	CHECK_OK(worker_fire(lp.c, name, NULL));
	lerr_pair_wait(&lp, 1);

	expect_lerr(&lp.at_child, "child", name, 33, lp.c);
	expect_lerr(&lp.at_parent, "parent", name, 33, lp.c);
	lerr_pair_down(&lp);
}
END_TEST

/* ---- EXECUTE ---------------------------------------------------------- */

struct exec {
	pthread_t task_thread;
	pthread_t fn_thread;
	worker_t *fn_current;
	int calls;
	int listener_first;	/* the EXECUTE listener ran before fn */
	int listener_calls;
	sem_t started, ran;
};

static void *
exec_task(void *arg)
{
	struct exec *x = arg;

	x->task_thread = pthread_self();
	sem_post(&x->started);
	worker_wait_forever();
	return NULL;
}

static void
exec_fn(void *arg)
{
	struct exec *x = arg;

	x->fn_thread = pthread_self();
	x->fn_current = worker_current();
	x->listener_first = x->listener_calls > 0;
	x->calls++;
	sem_post(&x->ran);
}

static int
on_execute(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	((struct exec *)ctx)->listener_calls++;
	return 0;
}

START_TEST(listen_execute)
{
	struct exec x;
	worker_execute_t ex = { .fn = exec_fn };
	worker_attr_t attr = { .name = "executor" };
	sem_t fs;
	worker_t *w;

	memset(&x, 0, sizeof(x));
	sem_init(&x.started, 0, 0);
	sem_init(&x.ran, 0, 0);
	sem_init(&fs, 0, 0);
	ex.arg = &x;
	w = worker_new(exec_task, &x, &attr);
	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_listen(w, "FENCE", on_post, &fs, NULL));
	CHECK_OK(worker_listen(w, WORKER_EXECUTE, on_execute, &x, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&x.started, "the task");

	CHECK_OK(worker_fire(w, WORKER_EXECUTE, &ex));
	sem_wait_ok(&x.ran, "the EXECUTE callback");
	/* NULL data: nothing to call, nothing to crash on. */
	CHECK_OK(worker_fire(w, WORKER_EXECUTE, NULL));
	fence(w, &fs);

	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.listener_calls, 2);
	ck_assert_int_eq(x.listener_first, 1);
	ck_assert(pthread_equal(x.fn_thread, x.task_thread));
	ck_assert(!pthread_equal(x.fn_thread, pthread_self()));
	ck_assert_ptr_eq(x.fn_current, w);
	stop_join_unref(w);
	sem_destroy(&x.started);
	sem_destroy(&x.ran);
	sem_destroy(&fs);
}
END_TEST

/* ---- A nested wait inside a listener ---------------------------------- */

struct nested {
	char log[8];		/* the order in which things happened */
	int n;
	int fire_rc;
	int wait_rc;
	void *reply;
	int token;
	sem_t done;
};

static void
nested_log(struct nested *ns, char c)
{
	if (ns->n < (int)sizeof(ns->log) - 1)
		ns->log[ns->n++] = c;
}

/* ASK fires PING at its own worker and waits, inside the listener, for
 * the PONG that the PING listener sends back. */
static int
on_ask(const worker_event_t *ev, void *ctx)
{
	struct nested *ns = ctx;

	(void)ev;
	nested_log(ns, 'a');
	ns->fire_rc = worker_fire(worker_current(), "PING", NULL);
	ns->wait_rc = worker_wait_event("PONG", worker_current(), -1,
	    &ns->reply);
	nested_log(ns, 'A');
	sem_post(&ns->done);
	return 0;
}

static int
on_ping(const worker_event_t *ev, void *ctx)
{
	struct nested *ns = ctx;

	(void)ev;
	nested_log(ns, 'p');
	return worker_fire(worker_current(), "PONG", &ns->token);
}

START_TEST(listen_nested_wait)
{
	struct nested ns;
	worker_t *w;

	memset(&ns, 0, sizeof(ns));
	ns.fire_rc = ns.wait_rc = -1;
	sem_init(&ns.done, 0, 0);
	w = idle_new("nested", NULL, NULL);
	CHECK_OK(worker_listen(w, "ASK", on_ask, &ns, NULL));
	CHECK_OK(worker_listen(w, "PING", on_ping, &ns, NULL));
	CHECK_OK(worker_start(w));

	CHECK_OK(worker_fire(w, "ASK", NULL));
	sem_wait_ok(&ns.done, "the ASK listener");
	stop_join_unref(w);

	ck_assert_int_eq(ns.fire_rc, 0);
	ck_assert_int_eq(ns.wait_rc, 0);
	ck_assert_ptr_eq(ns.reply, &ns.token);
	ck_assert_str_eq(ns.log, "apA");
	sem_destroy(&ns.done);
}
END_TEST

Suite *
suite_listen(void)
{
	Suite *s = suite_create("listen");
	TCase *tc;

	tc = test_case(s, "order");
	tcase_add_test(tc, listen_priority);
	tcase_add_test(tc, listen_once);
	tcase_add_test(tc, listen_once_nested);
	tcase_add_test(tc, listen_transient_restart);
	tcase_add_test(tc, listen_source_filter);

	tc = test_case(s, "unlisten");
	tcase_add_test(tc, unlisten_every_match);
	tcase_add_test(tc, listen_unlisten_self);
	tcase_add_test(tc, listen_add_during_dispatch);
	tcase_add_test(tc, listen_unlisten_later);
	tcase_add_test(tc, listen_concurrent_flood);

	tc = test_case(s, "error_data");
	tcase_add_test(tc, listen_error_two_events);
	tcase_add_test(tc, listen_error_long_name);

	tc = test_case(s, "builtin");
	tcase_add_test(tc, listen_error_bubbles);
	tcase_add_test(tc, listen_error_no_loop);
	tcase_add_test(tc, listen_execute);
	tcase_add_test(tc, listen_nested_wait);

	return s;
}
