/*
 * fanout.c - one event delivered to each of 100 threads, again and again:
 * libworker's worker_children_fire() against a raw mutex + condition
 * variable queue and GLib's GAsyncQueue (peers.h), one queue per
 * receiving thread.
 *
 * A parent worker creates C children (default 100), each with a listener
 * that checks the payload and counts, waits for their CHILD_THREAD_START,
 * then fires one event at all of them N times (default 10,000) with
 * worker_children_fire().  The peers' producer is the main thread: it
 * pushes the same pointer on each of the C receiver threads' queues in
 * turn.  A receiver that has counted its N arrives at a latch (bench.h);
 * the time runs from the first fire until the last receiver arrives.  The
 * value is deliveries (N x C) per second.
 *
 * Nearly every delivery wakes a sleeping thread, in every system: 100
 * receivers share two CPUs, and perf counts about 1.7 context switches
 * and 3 futex calls per delivery in each, so a run takes seconds.  That is
 * why libuv, which the issue does not ask for here, is left out (its
 * mailbox is measured by throughput).
 *
 * Usage: fanout [-n N] [-r ROUNDS] [-c CHILDREN]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

/* libworker, raw and GLib: the first three of peer_systems. */
enum { NSYS = SYS_UV };

static const struct bench_metric metric = {
	"Mdel/s", "million deliveries/s", " %9.3f", BENCH_HIGHER
};

struct fo;

struct child {
	struct fo *fo;
	unsigned long got;	/* the child's own thread */
	pthread_t thread;	/* peers */
	void *queue;		/* raw, GLib */
};

/* One run. */
struct fo {
	unsigned long fires;
	int nchild;
	struct child *child;
	struct bench_latch ready;	/* peers: every receiver runs */
	struct bench_latch done;	/* every receiver counted all */
	uint64_t t0;
	int started;		/* libworker: CHILD_THREAD_START seen */
	const struct peer_queue *q;
};

/* Child c got data; returns 1 when it was its last. */
static int
got(struct child *c, void *data)
{
	if (data != c->fo)
		bench_die("fanout: receiver", EPROTO);
	if (++c->got < c->fo->fires)
		return 0;
	bench_latch_arrive(&c->fo->done);
	return 1;
}

/* ---- libworker ------------------------------------------------------ */

static int
on_tick(const worker_event_t *ev, void *ctx)
{
	(void)got(ctx, ev->data);
	return 0;
}

static int
all_started(const worker_event_t *ev, void *ctx)
{
	struct fo *fo = ctx;

	return strcmp(ev->name, WORKER_CHILD_THREAD_START) == 0 &&
	    ++fo->started == fo->nchild;
}

static void *
parent_task(void *arg)
{
	struct fo *fo = arg;
	worker_t *self = worker_current(), **kids;
	unsigned long i;
	int k, rc;

	if ((kids = calloc((size_t)fo->nchild, sizeof(*kids))) == NULL)
		bench_die("fanout", ENOMEM);
	/* Created here, so self is their parent. */
	for (k = 0; k < fo->nchild; k++) {
		if ((kids[k] = worker_new(NULL, NULL, NULL)) == NULL)
			bench_die("fanout: worker_new", errno);
		if ((rc = worker_listen(kids[k], "tick", on_tick,
		    &fo->child[k], NULL)) != 0 ||
		    (rc = worker_start(kids[k])) != 0)
			bench_die("fanout: worker_start", rc);
	}
	if ((rc = worker_wait_until(all_started, fo, BENCH_TIMEOUT,
	    NULL)) != 0)
		bench_die("fanout: worker_wait_until", rc);

	fo->t0 = bench_now_ns();
	for (i = 0; i < fo->fires; i++)
		if ((rc = worker_children_fire(self, "tick", fo)) != 0)
			bench_die("fanout: fire", rc);
	if (bench_latch_wait(&fo->done) == 0)
		bench_die("fanout: receivers", ETIMEDOUT);

	for (k = 0; k < fo->nchild; k++) {
		if ((rc = worker_stop(kids[k])) != 0 ||
		    (rc = worker_join(kids[k])) != 0)
			bench_die("fanout: worker_stop", rc);
		worker_unref(kids[k]);
	}
	free(kids);
	return NULL;
}

static void
run_worker(struct fo *fo)
{
	worker_t *parent;
	int rc;

	if ((parent = worker_create(parent_task, fo, NULL)) == NULL)
		bench_die("fanout: worker_create", errno);
	if ((rc = worker_join(parent)) != 0 ||
	    (rc = worker_result(parent, NULL)) != 0)
		bench_die("fanout: worker_join", rc);
	worker_unref(parent);
}

/* ---- raw and GLib --------------------------------------------------- */

static void *
queue_child(void *arg)
{
	struct child *c = arg;

	bench_name(c->fo->q->name);
	bench_latch_arrive(&c->fo->ready);
	while (!got(c, c->fo->q->pop(c->queue)))
		;
	return NULL;
}

static void
run_queue(struct fo *fo, const struct peer_queue *q)
{
	unsigned long i;
	int k, rc;

	fo->q = q;
	for (k = 0; k < fo->nchild; k++) {
		if ((fo->child[k].queue = q->create()) == NULL)
			bench_die("fanout: queue", ENOMEM);
		fo->child[k].thread = bench_thread(queue_child, &fo->child[k]);
	}
	if (bench_latch_wait(&fo->ready) == 0)
		bench_die("fanout: receivers", ETIMEDOUT);

	fo->t0 = bench_now_ns();
	for (i = 0; i < fo->fires; i++)
		for (k = 0; k < fo->nchild; k++)
			if ((rc = q->push(fo->child[k].queue, fo)) != 0)
				bench_die("fanout: push", rc);

	for (k = 0; k < fo->nchild; k++) {
		bench_join(fo->child[k].thread);
		q->destroy(fo->child[k].queue);
	}
}

/* ---- main ----------------------------------------------------------- */

struct config {
	unsigned long fires;
	int nchild;
};

/* One run of system sys: millions of deliveries per second. */
static void
run(int round, int sys, double *m, void *ctx)
{
	const struct config *cf = ctx;
	unsigned long fires = cf->fires;
	int nchild = cf->nchild;
	struct fo fo = { .fires = fires, .nchild = nchild };
	uint64_t t1;
	int k;

	(void)round;
	if ((fo.child = calloc((size_t)nchild, sizeof(*fo.child))) == NULL)
		bench_die("fanout", ENOMEM);
	for (k = 0; k < nchild; k++)
		fo.child[k].fo = &fo;
	bench_latch_init(&fo.ready, (unsigned)nchild);
	bench_latch_init(&fo.done, (unsigned)nchild);
	switch (sys) {
	case SYS_WORKER:
		run_worker(&fo);
		break;
	case SYS_RAW:
		run_queue(&fo, &peer_raw);
		break;
	default:
		run_queue(&fo, &peer_glib);
		break;
	}
	/* Every receiver has arrived, and so counted exactly N. */
	if ((t1 = bench_latch_wait(&fo.done)) == 0)
		bench_die("fanout: receivers", ETIMEDOUT);
	for (k = 0; k < nchild; k++)
		if (fo.child[k].got != fires)
			bench_die("fanout: a receiver's count", EPROTO);
	bench_latch_destroy(&fo.ready);
	bench_latch_destroy(&fo.done);
	free(fo.child);
	m[0] = (double)fires * nchild / ((double)(t1 - fo.t0) /
	    BENCH_NS_PER_S) / 1e6;
}

int
main(int argc, char **argv)
{
	static const int glib[] = { SYS_GLIB };
	unsigned long n = 10000, rounds = 5, children = 100;
	struct bench_table t;
	struct config cf;
	char title[96], row[64];

	bench_options(argc, argv, "fanout [-c CHILDREN] [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'c', &children, 10000 },
	    { 'n', &n, 100000000 }, { 'r', &rounds, 1000 } }, 3);
	printf("fanout: %lu events to each of %lu receivers per run, %lu "
	    "rounds\nlibworker %s, GLib %u.%u.%u\n", n, children, rounds,
	    worker_version(), glib_major_version, glib_minor_version,
	    glib_micro_version);
	snprintf(title, sizeof(title), "fanout, %lu events x %lu receivers",
	    n, children);
	if (bench_table_init(&t, title, peer_systems, NSYS, &metric, 1,
	    (int)rounds) != 0)
		bench_die("fanout", ENOMEM);
	cf.fires = n;
	cf.nchild = (int)children;
	bench_play(&t, run, &cf);
	printf("\n");
	snprintf(row, sizeof(row), "fan-out 1->%lu, Mdel/s", children);
	bench_target_ratio(&t, row, 0, glib, 1, 2.0);
	bench_table_free(&t);
	return 0;
}
