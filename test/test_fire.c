/*
 * test_fire.c - firing events: the sender, bubble and broadcast over a
 * three-level tree, one-level fires, payload ownership on every path,
 * EVENT_REJECT, bounded queues, and many producers at one worker.
 *
 * Workers record what they saw in atomics and post semaphores; only the
 * test's own thread asserts.  To prove that an event did NOT reach a
 * worker, the test fires a FENCE event at it afterwards and waits for the
 * fence: a wrong copy would have been queued before the fence, so it has
 * been counted by the time the fence is handled.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

/* Event names used as indices into struct node's hits. */
enum { EV_BUB, EV_UP, EV_DOWN, EV_BC, EV_PF, EV_CF, EV_COUNT };

static const char *const ev_names[EV_COUNT] = {
	"BUB", "UP", "DOWN", "BC", "PF", "CF",
};

/* What one worker saw of one event name. */
struct hit {
	atomic_int n;
	_Atomic(worker_t *) source;
	_Atomic(void *) data;
	atomic_uint flags;
	sem_t *sem;		/* posted after each hit, if not NULL */
};

/* A payload whose destructor counts its calls and records how many
 * listener calls had happened by then. */
struct payload {
	atomic_int frees;
	atomic_int seen_at_free;
	atomic_int *seen;	/* listener calls so far, or NULL */
	sem_t freed;
};

static int
on_hit(const worker_event_t *ev, void *ctx)
{
	struct hit *h = ctx;

	atomic_store(&h->source, ev->source);
	atomic_store(&h->data, ev->data);
	atomic_store(&h->flags, ev->flags);
	atomic_fetch_add(&h->n, 1);
	if (h->sem != NULL)
		sem_post(h->sem);
	return 0;
}

static void
payload_init(struct payload *p, atomic_int *seen)
{
	atomic_init(&p->frees, 0);
	atomic_init(&p->seen_at_free, -1);
	p->seen = seen;
	sem_init(&p->freed, 0, 0);
}

static void
payload_free(void *data)
{
	struct payload *p = data;

	if (p->seen != NULL)
		atomic_store(&p->seen_at_free, atomic_load(p->seen));
	atomic_fetch_add(&p->frees, 1);
	sem_post(&p->freed);
}

/* ---- The sender --------------------------------------------------- */

START_TEST(fire_from_main)
{
	sem_t got;
	struct hit h = { .sem = &got };
	int token = 42;
	worker_t *w;

	sem_init(&got, 0, 0);
	w = idle_new("rx", NULL, NULL);
	CHECK_OK(worker_listen(w, "PING", on_hit, &h, NULL));
	CHECK_OK(worker_start(w));

	CHECK_OK(worker_fire(w, "PING", &token));
	sem_wait_ok(&got, "PING");

	CHECK_ATOMIC(&h.n, 1);
	ck_assert_ptr_eq(h.data, &token);
	/* The test thread is main: its root worker is the sender. */
	ck_assert_ptr_eq(h.source, worker_current());
	ck_assert_uint_eq(h.flags, 0);

	stop_join_unref(w);
	sem_destroy(&got);
}
END_TEST

/* ---- Bubble, broadcast, one level: a three-level tree --------------- */

struct node {
	worker_t *w;
	struct hit hits[EV_COUNT];
	sem_t fence;
};

struct tree {
	struct node n[3];	/* grandparent, parent, child */
	sem_t got;		/* posted by every hit anywhere */
};

static void
tree_up(struct tree *t)
{
	static const char *const names[3] = { "grandparent", "parent",
	    "child" };

	memset(t, 0, sizeof(*t));
	sem_init(&t->got, 0, 0);
	for (int i = 0; i < 3; i++) {
		struct node *n = &t->n[i];

		sem_init(&n->fence, 0, 0);
		n->w = idle_new(names[i], i > 0 ? t->n[i - 1].w : NULL,
		    &n->fence);
		for (int e = 0; e < EV_COUNT; e++) {
			n->hits[e].sem = &t->got;
			CHECK_OK(worker_listen(n->w, ev_names[e], on_hit,
			    &n->hits[e], NULL));
		}
		/* Parents first, so each child's CHILD_THREAD_START finds
		 * its parent running. */
		CHECK_OK(worker_start(n->w));
	}
	ck_assert_ptr_eq(worker_parent(t->n[2].w), t->n[1].w);
	ck_assert_ptr_eq(worker_parent(t->n[1].w), t->n[0].w);
}

/* Waits for n hits anywhere, then fences every node so that a copy that
 * should not exist has been counted. */
static void
tree_settle(struct tree *t, int n)
{
	for (int i = 0; i < n; i++)
		sem_wait_ok(&t->got, "a hit");
	for (int i = 0; i < 3; i++)
		fence(t->n[i].w, &t->n[i].fence);
}

static void
tree_expect(struct tree *t, int node, int ev, int n, worker_t *source,
    void *data, unsigned flags)
{
	struct hit *h = &t->n[node].hits[ev];
	int got = atomic_load(&h->n);
	unsigned got_flags = atomic_load(&h->flags);

	ck_assert_msg(got == n, "%s at %s: %d calls, want %d", ev_names[ev],
	    worker_name(t->n[node].w), got, n);
	if (n == 0)
		return;
	ck_assert_ptr_eq(h->source, source);
	ck_assert_ptr_eq(h->data, data);
	ck_assert_msg((got_flags & flags) == flags,
	    "%s at %s: flags %#x lack %#x", ev_names[ev],
	    worker_name(t->n[node].w), got_flags, flags);
}

static void
tree_down(struct tree *t)
{
	/* Ending the grandparent stops and joins the whole tree. */
	CHECK_OK(worker_stop(t->n[0].w));
	CHECK_OK(worker_join(t->n[0].w));
	for (int i = 0; i < 3; i++) {
		CHECK_OK(worker_join(t->n[i].w));
		ck_assert_int_eq(worker_is_running(t->n[i].w), 0);
	}
	for (int i = 2; i >= 0; i--) {
		worker_unref(t->n[i].w);
		sem_destroy(&t->n[i].fence);
	}
	sem_destroy(&t->got);
}

/*
 * Spreading from the node `from` (the child for a bubble, the
 * grandparent for a broadcast): fire_ex with flag reaches every node,
 * the target included, with main as the source; the one-call form
 * (spread) starts one level away and names `from` as the source.
 */
static void
run_spread(int from, unsigned flag, int ev_ex, int ev,
    int (*spread)(worker_t *, const char *, void *))
{
	struct tree t;
	worker_t *w;
	int tok1, tok2;

	tree_up(&t);
	w = t.n[from].w;

	CHECK_OK(worker_fire_ex(w, ev_names[ev_ex], &tok1, NULL, flag));
	tree_settle(&t, 3);
	for (int i = 0; i < 3; i++)
		tree_expect(&t, i, ev_ex, 1, worker_current(), &tok1, flag);

	CHECK_OK(spread(w, ev_names[ev], &tok2));
	tree_settle(&t, 2);
	for (int i = 0; i < 3; i++) {
		if (i == from)
			tree_expect(&t, i, ev, 0, NULL, NULL, 0);
		else
			tree_expect(&t, i, ev, 1, w, &tok2, flag);
	}

	tree_down(&t);
}

/* Up from the child: the target and every ancestor. */
START_TEST(fire_bubble)
{
	run_spread(2, WORKER_BUBBLE, EV_BUB, EV_UP, worker_bubble);
}
END_TEST

/* Down from the grandparent: the target and every descendant. */
START_TEST(fire_broadcast)
{
	run_spread(0, WORKER_BROADCAST, EV_DOWN, EV_BC, worker_broadcast);
}
END_TEST

START_TEST(fire_one_level)
{
	struct tree t;
	worker_t *g, *c;
	int tok1, tok2;

	tree_up(&t);
	g = t.n[0].w;
	c = t.n[2].w;

	CHECK_OK(worker_parent_fire(c, "PF", &tok1));
	tree_settle(&t, 1);
	tree_expect(&t, 0, EV_PF, 0, NULL, NULL, 0);
	tree_expect(&t, 1, EV_PF, 1, c, &tok1, 0);
	tree_expect(&t, 2, EV_PF, 0, NULL, NULL, 0);
	/* One level only: neither flag may send it on. */
	CHECK_ATOMIC(&t.n[1].hits[EV_PF].flags, 0);

	CHECK_OK(worker_children_fire(g, "CF", &tok2));
	tree_settle(&t, 1);
	tree_expect(&t, 0, EV_CF, 0, NULL, NULL, 0);
	tree_expect(&t, 1, EV_CF, 1, g, &tok2, 0);
	tree_expect(&t, 2, EV_CF, 0, NULL, NULL, 0);
	CHECK_ATOMIC(&t.n[1].hits[EV_CF].flags, 0);

	/* No parent: nobody to fire at.  No children: nothing to do. */
	CHECK_RC(worker_parent_fire(g, "PF", &tok1), ESRCH);
	CHECK_OK(worker_children_fire(c, "CF", &tok2));
	tree_settle(&t, 0);
	tree_expect(&t, 0, EV_PF, 0, NULL, NULL, 0);
	tree_expect(&t, 2, EV_CF, 0, NULL, NULL, 0);

	tree_down(&t);
	/* Whatever the parentless fire may have sent back to main. */
	(void)worker_update();
}
END_TEST

/* ---- Payload ownership ------------------------------------------------ */

START_TEST(free_delivered)
{
	struct payload pay;
	atomic_int seen = 0;
	worker_t *w;

	payload_init(&pay, &seen);
	w = idle_new("rx", NULL, NULL);
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));

	CHECK_OK(worker_fire_ex(w, "E", &pay, payload_free, 0));
	sem_wait_ok(&pay.freed, "data_free");
	CHECK_ATOMIC(&pay.frees, 1);
	/* Freed only after the last listener that could see it. */
	CHECK_ATOMIC(&pay.seen_at_free, 2);

	stop_join_unref(w);
	CHECK_ATOMIC(&pay.frees, 1);
	sem_destroy(&pay.freed);
}
END_TEST

START_TEST(free_bubbled)
{
	struct payload pay;
	atomic_int seen = 0;
	worker_t *w[3];

	payload_init(&pay, &seen);
	for (int i = 0; i < 3; i++) {
		w[i] = idle_new("level", i > 0 ? w[i - 1] : NULL, NULL);
		CHECK_OK(worker_listen(w[i], "E", on_count, &seen, NULL));
		CHECK_OK(worker_start(w[i]));
	}

	CHECK_OK(worker_fire_ex(w[2], "E", &pay, payload_free,
	    WORKER_BUBBLE));
	sem_wait_ok(&pay.freed, "data_free");
	CHECK_ATOMIC(&pay.frees, 1);
	CHECK_ATOMIC(&pay.seen_at_free, 3);

	CHECK_OK(worker_stop(w[0]));
	CHECK_OK(worker_join(w[0]));
	for (int i = 2; i >= 0; i--) {
		CHECK_OK(worker_join(w[i]));
		worker_unref(w[i]);
	}
	CHECK_ATOMIC(&pay.frees, 1);
	CHECK_ATOMIC(&seen, 3);
	sem_destroy(&pay.freed);
}
END_TEST

#define BROADCAST_CHILDREN 10

START_TEST(free_broadcast)
{
	struct payload pay;
	atomic_int seen = 0;
	worker_t *parent, *kids[BROADCAST_CHILDREN];

	payload_init(&pay, &seen);
	parent = idle_new("parent", NULL, NULL);
	CHECK_OK(worker_listen(parent, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(parent));
	for (int i = 0; i < BROADCAST_CHILDREN; i++) {
		kids[i] = idle_new("kid", parent, NULL);
		CHECK_OK(worker_listen(kids[i], "E", on_count, &seen, NULL));
		CHECK_OK(worker_start(kids[i]));
	}

	CHECK_OK(worker_fire_ex(parent, "E", &pay, payload_free,
	    WORKER_BROADCAST));
	sem_wait_ok(&pay.freed, "data_free");
	CHECK_ATOMIC(&pay.frees, 1);
	CHECK_ATOMIC(&pay.seen_at_free, BROADCAST_CHILDREN + 1);

	CHECK_OK(worker_stop(parent));
	CHECK_OK(worker_join(parent));
	for (int i = 0; i < BROADCAST_CHILDREN; i++) {
		CHECK_OK(worker_join(kids[i]));
		worker_unref(kids[i]);
	}
	worker_unref(parent);
	CHECK_ATOMIC(&pay.frees, 1);
	sem_destroy(&pay.freed);
}
END_TEST

START_TEST(free_rejected)
{
	struct payload pay, pay2;
	worker_t *w, *never;

	payload_init(&pay, NULL);
	payload_init(&pay2, NULL);
	w = idle_new("gone", NULL, NULL);
	CHECK_OK(worker_start(w));
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));

	CHECK_RC(worker_fire_ex(w, "E", &pay, payload_free, 0), ESRCH);
	/* The sender (main's root) gets EVENT_REJECT, which carries the
	 * rejected event: its data lives until that has been handled. */
	CHECK_ATOMIC(&pay.frees, 0);
	ck_assert_int_eq(worker_update(), 1);
	CHECK_ATOMIC(&pay.frees, 1);

	/* A worker that never started rejects the same way. */
	never = idle_new("never", NULL, NULL);
	CHECK_RC(worker_fire_ex(never, "E", &pay2, payload_free, 0), ESRCH);
	ck_assert_int_eq(worker_update(), 1);
	CHECK_ATOMIC(&pay2.frees, 1);

	worker_unref(never);
	worker_unref(w);
	CHECK_ATOMIC(&pay.frees, 1);
	sem_destroy(&pay.freed);
	sem_destroy(&pay2.freed);
}
END_TEST

/* A task with no breakpoint until the test lets it go: events pile up in
 * its queue exactly as fired.  Each round ends in worker_update(). */
struct gate {
	sem_t ready, go;
	int rounds;
	int then_return;	/* after the rounds: return, not wait */
	atomic_int handled[4];	/* worker_update() answers per round */
};

static void
gate_init(struct gate *g, int rounds, int then_return)
{
	memset(g, 0, sizeof(*g));
	sem_init(&g->ready, 0, 0);
	sem_init(&g->go, 0, 0);
	g->rounds = rounds;
	g->then_return = then_return;
	for (int i = 0; i < 4; i++)
		atomic_init(&g->handled[i], -1);
}

static void
gate_destroy(struct gate *g)
{
	sem_destroy(&g->ready);
	sem_destroy(&g->go);
}

static void *
gate_task(void *arg)
{
	struct gate *g = arg;

	for (int i = 0; i < g->rounds; i++) {
		sem_post(&g->ready);
		sem_wait_intr(&g->go);
		atomic_store(&g->handled[i], worker_update());
	}
	sem_post(&g->ready);
	sem_wait_intr(&g->go);
	if (g->then_return)
		return g;
	worker_wait_forever();
	return NULL;
}

static worker_t *
gate_new(struct gate *g, size_t queue_max, worker_t *parent)
{
	worker_attr_t attr = {
		.name = "gated", .queue_max = queue_max, .parent = parent,
	};
	worker_t *w = worker_new(gate_task, g, &attr);

	ck_assert_msg(w != NULL, "worker_new: %s", strerror(errno));
	return w;
}

START_TEST(free_refused)
{
	struct gate g;
	struct payload pay;
	atomic_int seen = 0;
	worker_t *w;

	gate_init(&g, 0, 0);
	payload_init(&pay, NULL);
	w = gate_new(&g, 1, NULL);
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&g.ready, "the gated task");

	CHECK_OK(worker_fire(w, "E", NULL));
	CHECK_RC(worker_fire_ex(w, "E", &pay, payload_free, 0), EAGAIN);
	/* Refused: no listener can ever see it, so it is freed now. */
	CHECK_ATOMIC(&pay.frees, 1);

	sem_post(&g.go);
	stop_join_unref(w);
	CHECK_ATOMIC(&pay.frees, 1);
	CHECK_ATOMIC(&seen, 1);
	gate_destroy(&g);
	sem_destroy(&pay.freed);
}
END_TEST

#define DROPPED 3

/*
 * Queues DROPPED events with payloads at a gated task that has not
 * reached a breakpoint, then lets it go: it either meets a stop queued
 * before them (stop) or returns.  Either way each event is still handed
 * to the listener and its payload freed once.
 */
static void
run_dropped(int stop)
{
	struct gate g;
	struct payload pay[DROPPED];
	atomic_int seen = 0;
	void *ret = NULL;
	worker_t *w;

	gate_init(&g, 0, !stop);
	w = gate_new(&g, 0, NULL);
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&g.ready, "the gated task");

	if (stop)
		CHECK_OK(worker_stop(w));
	for (int i = 0; i < DROPPED; i++) {
		payload_init(&pay[i], NULL);
		CHECK_OK(worker_fire_ex(w, "E", &pay[i], payload_free, 0));
	}
	sem_post(&g.go);
	CHECK_OK(worker_join(w));
	if (!stop) {
		CHECK_OK(worker_result(w, &ret));
		ck_assert_ptr_eq(ret, &g);
	}

	CHECK_ATOMIC(&seen, DROPPED);
	for (int i = 0; i < DROPPED; i++) {
		CHECK_ATOMIC(&pay[i].frees, 1);
		sem_destroy(&pay[i].freed);
	}
	worker_unref(w);
	gate_destroy(&g);
}

/* Events queued behind STOP_THREAD. */
START_TEST(free_behind_stop)
{
	run_dropped(1);
}
END_TEST

/* A task that returns without reaching a breakpoint. */
START_TEST(free_task_returns)
{
	run_dropped(0);
}
END_TEST

/* The library owns data from the call on, error paths included. */
START_TEST(free_invalid)
{
	struct payload pay[4];
	atomic_int seen = 0;
	worker_t *w;
	sem_t fsem;

	sem_init(&fsem, 0, 0);
	for (int i = 0; i < 4; i++)
		payload_init(&pay[i], NULL);
	w = idle_new("rx", NULL, &fsem);
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));

	CHECK_RC(worker_fire_ex(w, "E", &pay[0], payload_free, 0x80),
	    EINVAL);
	CHECK_ATOMIC(&pay[0].frees, 1);
	CHECK_RC(worker_fire_ex(NULL, "E", &pay[1], payload_free, 0),
	    EINVAL);
	CHECK_ATOMIC(&pay[1].frees, 1);
	CHECK_RC(worker_fire_ex(w, NULL, &pay[2], payload_free, 0), EINVAL);
	CHECK_ATOMIC(&pay[2].frees, 1);
	CHECK_RC(worker_fire_ex(w, "", &pay[3], payload_free, 0), EINVAL);
	CHECK_ATOMIC(&pay[3].frees, 1);

	/* Nothing was queued. */
	fence(w, &fsem);
	CHECK_ATOMIC(&seen, 0);

	stop_join_unref(w);
	for (int i = 0; i < 4; i++) {
		CHECK_ATOMIC(&pay[i].frees, 1);
		sem_destroy(&pay[i].freed);
	}
	sem_destroy(&fsem);
}
END_TEST

/* A bubbled copy that a full ancestor refuses is dropped quietly: the
 * fire answers for its target, and the payload is still freed once. */
START_TEST(free_bubble_partly_refused)
{
	struct gate g;
	struct payload pay;
	atomic_int at_parent = 0, at_child = 0;
	worker_t *parent, *child;

	gate_init(&g, 0, 0);
	payload_init(&pay, &at_child);
	parent = gate_new(&g, 1, NULL);
	CHECK_OK(worker_listen(parent, "B", on_count, &at_parent, NULL));
	CHECK_OK(worker_start(parent));
	sem_wait_ok(&g.ready, "the gated task");
	CHECK_OK(worker_fire(parent, "E", NULL));
	CHECK_RC(worker_fire(parent, "E", NULL), EAGAIN);

	child = idle_new("child", parent, NULL);
	CHECK_OK(worker_listen(child, "B", on_count, &at_child, NULL));
	CHECK_OK(worker_start(child));
	CHECK_OK(worker_fire_ex(child, "B", &pay, payload_free,
	    WORKER_BUBBLE));
	sem_wait_ok(&pay.freed, "data_free");
	CHECK_ATOMIC(&pay.seen_at_free, 1);

	sem_post(&g.go);
	CHECK_OK(worker_stop(parent));
	CHECK_OK(worker_join(parent));
	CHECK_OK(worker_join(child));
	CHECK_ATOMIC(&at_parent, 0);
	CHECK_ATOMIC(&at_child, 1);
	CHECK_ATOMIC(&pay.frees, 1);
	worker_unref(child);
	worker_unref(parent);
	gate_destroy(&g);
	sem_destroy(&pay.freed);
}
END_TEST

/* ---- EVENT_REJECT ----------------------------------------------------- */

struct reject {
	worker_t *dead;
	struct payload pay;
	int fire_rc;		/* written by the task before its wait */
	/* Written by the EVENT_REJECT listener before it posts. */
	worker_t *source;
	char name[32];
	void *data;
	worker_t *inner_source;
	int frees_in_listener;
	atomic_int calls;
	sem_t got;
};

static void *
reject_task(void *arg)
{
	struct reject *r = arg;

	r->fire_rc = worker_fire_ex(r->dead, "PING", &r->pay, payload_free,
	    0);
	worker_wait_forever();
	return NULL;
}

static int
on_reject(const worker_event_t *ev, void *ctx)
{
	struct reject *r = ctx;
	const worker_event_t *rej = ev->data;

	r->source = ev->source;
	if (rej != NULL) {
		snprintf(r->name, sizeof(r->name), "%s",
		    rej->name != NULL ? rej->name : "(null)");
		r->data = rej->data;
		r->inner_source = rej->source;
	}
	r->frees_in_listener = atomic_load(&r->pay.frees);
	atomic_fetch_add(&r->calls, 1);
	sem_post(&r->got);
	return 0;
}

START_TEST(fire_event_reject)
{
	struct reject r;
	worker_attr_t attr = { .name = "sender" };
	worker_t *a;

	memset(&r, 0, sizeof(r));
	sem_init(&r.got, 0, 0);
	payload_init(&r.pay, NULL);
	r.dead = idle_new("dead", NULL, NULL);
	CHECK_OK(worker_start(r.dead));
	CHECK_OK(worker_stop(r.dead));
	CHECK_OK(worker_join(r.dead));

	a = worker_new(reject_task, &r, &attr);
	ck_assert_ptr_nonnull(a);
	CHECK_OK(worker_listen(a, WORKER_EVENT_REJECT, on_reject, &r, NULL));
	CHECK_OK(worker_start(a));
	sem_wait_ok(&r.got, "EVENT_REJECT");
	sem_wait_ok(&r.pay.freed, "data_free of the rejected event");

	ck_assert_int_eq(r.fire_rc, ESRCH);
	ck_assert_ptr_eq(r.source, r.dead);
	ck_assert_str_eq(r.name, "PING");
	ck_assert_ptr_eq(r.data, &r.pay);
	ck_assert_ptr_eq(r.inner_source, a);
	/* The data outlives the EVENT_REJECT listener, then goes. */
	ck_assert_int_eq(r.frees_in_listener, 0);

	stop_join_unref(a);
	CHECK_ATOMIC(&r.calls, 1);
	CHECK_ATOMIC(&r.pay.frees, 1);
	worker_unref(r.dead);
	sem_destroy(&r.got);
	sem_destroy(&r.pay.freed);
}
END_TEST

/* ---- Bounded queues --------------------------------------------------- */

#define QMAX 3

/* Counts the built-in events a full queue must still admit. */
struct admitted {
	atomic_int e, pause, resume, start, stop, end, stop_thread;
};

START_TEST(queue_max_admits_control)
{
	static const struct {
		const char *name;
		size_t off;
	} watch[] = {
		{ "E", offsetof(struct admitted, e) },
		{ WORKER_PAUSE_THREAD, offsetof(struct admitted, pause) },
		{ WORKER_RESUME_THREAD, offsetof(struct admitted, resume) },
		{ WORKER_CHILD_THREAD_START, offsetof(struct admitted, start) },
		{ WORKER_CHILD_THREAD_STOP, offsetof(struct admitted, stop) },
		{ WORKER_CHILD_THREAD_END, offsetof(struct admitted, end) },
		{ WORKER_STOP_THREAD, offsetof(struct admitted,
		    stop_thread) },
	};
	struct admitted ad;
	struct gate g;
	worker_attr_t kattr = { .name = "kid" };
	worker_t *w, *kid;
	void *ret = &ret;

	memset(&ad, 0, sizeof(ad));
	gate_init(&g, 1, 0);
	w = gate_new(&g, QMAX, NULL);
	for (size_t i = 0; i < sizeof(watch) / sizeof(watch[0]); i++)
		CHECK_OK(worker_listen(w, watch[i].name, on_count,
		    (char *)&ad + watch[i].off, NULL));
	CHECK_OK(worker_start(w));
	sem_wait_ok(&g.ready, "the gated task");

	for (int i = 0; i < QMAX; i++)
		CHECK_OK(worker_fire(w, "E", NULL));
	CHECK_RC(worker_fire(w, "E", NULL), EAGAIN);

	/* Control events get in although the queue is full. */
	CHECK_OK(worker_pause(w));
	CHECK_OK(worker_resume(w));
	kattr.parent = w;
	kid = worker_create(NULL, NULL, &kattr);
	ck_assert_msg(kid != NULL, "worker_create: %s", strerror(errno));
	CHECK_OK(worker_stop(kid));
	CHECK_OK(worker_join(kid));
	CHECK_OK(worker_stop(w));
	CHECK_RC(worker_fire(w, "E", NULL), EAGAIN);

	sem_post(&g.go);
	CHECK_OK(worker_join(w));
	CHECK_OK(worker_result(w, &ret));
	ck_assert_ptr_null(ret);

	CHECK_ATOMIC(&ad.e, QMAX);
	CHECK_ATOMIC(&ad.pause, 1);
	CHECK_ATOMIC(&ad.resume, 1);
	CHECK_ATOMIC(&ad.start, 1);
	CHECK_ATOMIC(&ad.stop, 1);
	CHECK_ATOMIC(&ad.end, 1);
	CHECK_ATOMIC(&ad.stop_thread, 1);

	worker_unref(kid);
	worker_unref(w);
	gate_destroy(&g);
}
END_TEST

START_TEST(queue_max_drains)
{
	struct gate g;
	atomic_int seen = 0;
	worker_t *w;

	gate_init(&g, 2, 0);
	w = gate_new(&g, QMAX, NULL);
	CHECK_OK(worker_listen(w, "E", on_count, &seen, NULL));
	CHECK_OK(worker_start(w));

	for (int round = 0; round < 2; round++) {
		sem_wait_ok(&g.ready, "the gated task");
		if (round > 0)
			CHECK_ATOMIC(&g.handled[round - 1], QMAX);
		for (int i = 0; i < QMAX; i++)
			CHECK_OK(worker_fire(w, "E", NULL));
		CHECK_RC(worker_fire(w, "E", NULL), EAGAIN);
		sem_post(&g.go);
	}
	sem_wait_ok(&g.ready, "the gated task");
	CHECK_ATOMIC(&g.handled[1], QMAX);
	sem_post(&g.go);

	/* Drained: accepted again. */
	CHECK_OK(worker_fire(w, "E", NULL));
	stop_join_unref(w);
	CHECK_ATOMIC(&seen, 2 * QMAX + 1);
	gate_destroy(&g);
}
END_TEST

/* Children that refuse: children_fire and broadcast answer with the
 * refusal only when no child took the event. */
START_TEST(fire_children_refused)
{
	struct gate g;
	atomic_int at_full = 0, at_open = 0;
	sem_t fs;
	worker_t *parent, *full, *open;

	gate_init(&g, 0, 0);
	sem_init(&fs, 0, 0);
	parent = idle_new("parent", NULL, NULL);
	CHECK_OK(worker_start(parent));
	full = gate_new(&g, 1, parent);
	CHECK_OK(worker_listen(full, "E", on_count, &at_full, NULL));
	CHECK_OK(worker_start(full));
	sem_wait_ok(&g.ready, "the gated task");
	CHECK_OK(worker_fire(full, "E", NULL));

	CHECK_RC(worker_children_fire(parent, "E", NULL), EAGAIN);
	CHECK_RC(worker_broadcast(parent, "E", NULL), EAGAIN);

	open = idle_new("open", parent, &fs);
	CHECK_OK(worker_listen(open, "E", on_count, &at_open, NULL));
	CHECK_OK(worker_start(open));
	CHECK_OK(worker_children_fire(parent, "E", NULL));
	CHECK_OK(worker_broadcast(parent, "E", NULL));
	fence(open, &fs);
	CHECK_ATOMIC(&at_open, 2);

	sem_post(&g.go);
	CHECK_OK(worker_stop(parent));
	CHECK_OK(worker_join(parent));
	CHECK_OK(worker_join(full));
	CHECK_OK(worker_join(open));
	/* Only the event that filled it: every later copy was refused. */
	CHECK_ATOMIC(&at_full, 1);
	worker_unref(open);
	worker_unref(full);
	worker_unref(parent);
	gate_destroy(&g);
	sem_destroy(&fs);
}
END_TEST

/* ---- Many producers --------------------------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 100000L

struct stress {
	worker_t *w;
	pthread_barrier_t start;
	atomic_int fire_errors;
	/* Touched only by w's listener, read after the join. */
	long next[PRODUCERS];
	long disorder;
	long count;
	sem_t done;
};

struct producer {
	struct stress *s;
	uintptr_t id;
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	struct stress *s = p->s;

	pthread_barrier_wait(&s->start);
	for (long seq = 0; seq < PER_PRODUCER; seq++) {
		uintptr_t v = (uintptr_t)seq * PRODUCERS + p->id;

		if (worker_fire(s->w, "E", (void *)v) != 0)
			atomic_fetch_add(&s->fire_errors, 1);
	}
	return NULL;
}

static int
on_stress(const worker_event_t *ev, void *ctx)
{
	struct stress *s = ctx;
	uintptr_t v = (uintptr_t)ev->data;
	unsigned id = v % PRODUCERS;
	long seq = (long)(v / PRODUCERS);

	/* Each producer's events arrive in the order it fired them. */
	if (seq != s->next[id])
		s->disorder++;
	s->next[id] = seq + 1;
	if (++s->count == PRODUCERS * PER_PRODUCER)
		sem_post(&s->done);
	return 0;
}

START_TEST(fire_stress_producers)
{
	struct stress s;
	struct producer p[PRODUCERS];
	pthread_t th[PRODUCERS];

	memset(&s, 0, sizeof(s));
	sem_init(&s.done, 0, 0);
	pthread_barrier_init(&s.start, NULL, PRODUCERS);
	s.w = idle_new("sink", NULL, NULL);
	CHECK_OK(worker_listen(s.w, "E", on_stress, &s, NULL));
	CHECK_OK(worker_start(s.w));

	for (int i = 0; i < PRODUCERS; i++) {
		p[i].s = &s;
		p[i].id = (uintptr_t)i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, producer_main,
		    &p[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	sem_wait_ok(&s.done, "every event");
	stop_join_unref(s.w);

	CHECK_ATOMIC(&s.fire_errors, 0);
	ck_assert_int_eq(s.count, PRODUCERS * PER_PRODUCER);
	ck_assert_int_eq(s.disorder, 0);
	for (int i = 0; i < PRODUCERS; i++)
		ck_assert_int_eq(s.next[i], PER_PRODUCER);
	pthread_barrier_destroy(&s.start);
	sem_destroy(&s.done);
}
END_TEST

/* ---- Event memory ----------------------------------------------------- */

#define NAME_LENS 120	/* names of 1 to NAME_LENS bytes */
#define NAME_ROUNDS 50

struct names {
	sem_t done;
	long seen, bad;		/* the receiver's */
};

static int
on_named(const worker_event_t *ev, void *ctx)
{
	struct names *n = ctx;
	size_t len = (size_t)(uintptr_t)ev->data;

	if (strlen(ev->name) != len || strspn(ev->name, "n") != len)
		n->bad++;
	if (++n->seen == NAME_LENS * NAME_ROUNDS)
		sem_post(&n->done);
	return 0;
}

/* Event nodes are reused from one event to the next whatever the length
 * of the names, short ones in recycled nodes, long ones not: every event
 * still arrives under its own name. */
START_TEST(names_of_every_length)
{
	char names[NAME_LENS + 1][NAME_LENS + 1];
	struct names n;
	worker_t *w;

	memset(&n, 0, sizeof(n));
	ck_assert_int_eq(sem_init(&n.done, 0, 0), 0);
	w = idle_new("names", NULL, NULL);
	for (int len = 1; len <= NAME_LENS; len++) {
		memset(names[len], 'n', (size_t)len);
		names[len][len] = '\0';
		CHECK_OK(worker_listen(w, names[len], on_named, &n, NULL));
	}
	CHECK_OK(worker_start(w));
	for (int r = 0; r < NAME_ROUNDS; r++)
		for (int len = 1; len <= NAME_LENS; len++)
			CHECK_OK(worker_fire(w, names[len],
			    (void *)(uintptr_t)len));
	sem_wait_ok(&n.done, "every event");
	stop_join_unref(w);
	ck_assert_int_eq(n.seen, NAME_LENS * NAME_ROUNDS);
	ck_assert_int_eq(n.bad, 0);
	sem_destroy(&n.done);
}
END_TEST

Suite *
suite_fire(void)
{
	Suite *s = suite_create("fire");
	TCase *tc;

	tc = test_case(s, "source");
	tcase_add_test(tc, fire_from_main);

	tc = test_case(s, "tree");
	tcase_add_test(tc, fire_bubble);
	tcase_add_test(tc, fire_broadcast);
	tcase_add_test(tc, fire_one_level);

	tc = test_case(s, "payload");
	tcase_add_test(tc, free_delivered);
	tcase_add_test(tc, free_bubbled);
	tcase_add_test(tc, free_broadcast);
	tcase_add_test(tc, free_rejected);
	tcase_add_test(tc, free_refused);
	tcase_add_test(tc, free_behind_stop);
	tcase_add_test(tc, free_task_returns);
	tcase_add_test(tc, free_invalid);
	tcase_add_test(tc, free_bubble_partly_refused);

	tc = test_case(s, "reject");
	tcase_add_test(tc, fire_event_reject);

	tc = test_case(s, "queue_max");
	tcase_add_test(tc, queue_max_admits_control);
	tcase_add_test(tc, queue_max_drains);
	tcase_add_test(tc, fire_children_refused);

	tc = test_case(s, "stress");
	tcase_add_test(tc, fire_stress_producers);
	tcase_add_test(tc, names_of_every_length);

	return s;
}
