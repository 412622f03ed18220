/*
 * pingpong.c - the round trip of one event between two threads: libworker
 * against a raw mutex + condition variable queue, GLib's GAsyncQueue and
 * libuv (peers.h).
 *
 * Worker A fires "ping" at worker B; B's listener fires "pong" back at
 * the event's source; A waits for it with worker_wait_event(), the usual
 * way to wait for an answer.  The peers do the same with two threads and
 * one queue each way: raw and GLib threads block in pop; libuv runs a
 * loop on each thread, and a message is an append to a list under a mutex
 * followed by uv_async_send().  Every message carries the same pointer,
 * which both ends check, and both ends count what they got.  A run is
 * WARMUP untimed round trips, so that both threads are pinned and warm,
 * then N timed ones (default 200,000); the value is the mean round trip.
 *
 * Two layouts, each with its own table: both threads pinned to CPU 0 (as
 * "taskset -c 0" would), where a round trip is two context switches on one
 * CPU, and A on CPU 0 with B on CPU 1, where it is two wake-ups across
 * CPUs.  The main thread only starts and joins.
 *
 * Usage: pingpong [-n N] [-r ROUNDS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

#define WARMUP 1000

static const struct bench_metric metric = {
	"rt us", "round trip us", " %9.3f", BENCH_LOWER
};

/* One run.  A's fields are written by A only, B's by B only. */
struct pp {
	unsigned long trips;	/* WARMUP + N */
	int cpu_a;
	int cpu_b;
	uint64_t t0;		/* A: after the warm-up */
	uint64_t t1;		/* A: after the last round trip */
	unsigned long got;	/* A: answers */
	unsigned long answered;	/* B */
	worker_t *b;		/* libworker */
	const struct peer_queue *q;	/* raw, GLib */
	void *to_a;
	void *to_b;
	struct uvbox box_a;	/* libuv */
	struct uvbox box_b;
};

/* A got the answer to round trip number p->got + 1. */
static void
got(struct pp *p, void *data)
{
	if (data != p)
		bench_die("pingpong: A", EPROTO);
	if (++p->got == WARMUP)
		p->t0 = bench_now_ns();
	if (p->got == p->trips)
		p->t1 = bench_now_ns();
}

/* B answers data. */
static void
answer(struct pp *p, void *data)
{
	if (data != p)
		bench_die("pingpong: B", EPROTO);
	p->answered++;
}

static void
check(const struct pp *p, const char *sys)
{
	if (p->got != p->trips || p->answered != p->trips) {
		fprintf(stderr, "pingpong: %s: %lu answers to %lu pings of "
		    "%lu\n", sys, p->got, p->answered, p->trips);
		exit(EXIT_FAILURE);
	}
}

/* ---- libworker ------------------------------------------------------ */

static int
on_ping(const worker_event_t *ev, void *ctx)
{
	answer(ctx, ev->data);
	return worker_fire(ev->source, "pong", ev->data);
}

static void *
worker_b(void *arg)
{
	struct pp *p = arg;

	bench_pin(p->cpu_b);
	worker_wait_forever();
	return NULL;
}

static void *
worker_a(void *arg)
{
	struct pp *p = arg;
	void *data;
	int rc;

	bench_pin(p->cpu_a);
	while (p->got < p->trips) {
		if ((rc = worker_fire(p->b, "ping", p)) != 0)
			bench_die("pingpong: worker_fire", rc);
		/* No time limit, as the peers' pops have none. */
		if ((rc = worker_wait_event("pong", p->b, -1, &data)) != 0)
			bench_die("pingpong: worker_wait_event", rc);
		got(p, data);
	}
	return NULL;
}

/* Starts B, then A, joins A, stops and joins B. */
static void
run_worker(struct pp *p)
{
	worker_attr_t attr = { .name = "pong" };
	worker_t *a;
	int rc;

	if ((p->b = worker_new(worker_b, p, &attr)) == NULL)
		bench_die("pingpong: worker_new", errno);
	if ((rc = worker_listen(p->b, "ping", on_ping, p, NULL)) != 0 ||
	    (rc = worker_start(p->b)) != 0)
		bench_die("pingpong: worker_start", rc);
	attr.name = "ping";
	if ((a = worker_create(worker_a, p, &attr)) == NULL)
		bench_die("pingpong: worker_create", errno);
	if ((rc = worker_join(a)) != 0 ||
	    (rc = worker_stop(p->b)) != 0 ||
	    (rc = worker_join(p->b)) != 0)
		bench_die("pingpong: worker_join", rc);
	worker_unref(a);
	worker_unref(p->b);
}

/* ---- raw and GLib --------------------------------------------------- */

static void *
queue_b(void *arg)
{
	struct pp *p = arg;
	void *data;
	int rc;

	bench_pin(p->cpu_b);
	bench_name(p->q->name);
	while ((data = p->q->pop(p->to_b)) != PEER_STOP) {
		answer(p, data);
		if ((rc = p->q->push(p->to_a, data)) != 0)
			bench_die("pingpong: push", rc);
	}
	return NULL;
}

static void *
queue_a(void *arg)
{
	struct pp *p = arg;
	int rc;

	bench_pin(p->cpu_a);
	bench_name(p->q->name);
	while (p->got < p->trips) {
		if ((rc = p->q->push(p->to_b, p)) != 0)
			bench_die("pingpong: push", rc);
		got(p, p->q->pop(p->to_a));
	}
	return NULL;
}

static void
run_queue(struct pp *p, const struct peer_queue *q)
{
	pthread_t a, b;
	int rc;

	p->q = q;
	if ((p->to_a = q->create()) == NULL || (p->to_b = q->create()) == NULL)
		bench_die("pingpong: queue", ENOMEM);
	b = bench_thread(queue_b, p);
	a = bench_thread(queue_a, p);
	bench_join(a);
	if ((rc = q->push(p->to_b, PEER_STOP)) != 0)
		bench_die("pingpong: push", rc);
	bench_join(b);
	q->destroy(p->to_a);
	q->destroy(p->to_b);
}

/* ---- libuv ---------------------------------------------------------- */

static void
uv_at_a(struct uvbox *box, void *data)
{
	struct pp *p = box->ctx;
	int rc;

	got(p, data);
	if (p->got < p->trips) {
		rc = uvbox_send(&p->box_b, p);
	} else {
		uvbox_close(box);
		rc = uvbox_send(&p->box_b, PEER_STOP);
	}
	if (rc != 0)
		bench_die("pingpong: uvbox_send", rc);
}

static void
uv_at_b(struct uvbox *box, void *data)
{
	struct pp *p = box->ctx;
	int rc;

	if (data == PEER_STOP) {
		uvbox_close(box);
		return;
	}
	answer(p, data);
	if ((rc = uvbox_send(&p->box_a, data)) != 0)
		bench_die("pingpong: uvbox_send", rc);
}

static void *
uv_b(void *arg)
{
	struct pp *p = arg;

	bench_pin(p->cpu_b);
	bench_name("libuv");
	uvbox_run(&p->box_b);
	return NULL;
}

static void *
uv_a(void *arg)
{
	struct pp *p = arg;
	int rc;

	bench_pin(p->cpu_a);
	bench_name("libuv");
	if ((rc = uvbox_send(&p->box_b, p)) != 0)
		bench_die("pingpong: uvbox_send", rc);
	uvbox_run(&p->box_a);
	return NULL;
}

static void
run_uv(struct pp *p)
{
	pthread_t a, b;
	int rc;

	if ((rc = uvbox_init(&p->box_a, uv_at_a, p)) != 0 ||
	    (rc = uvbox_init(&p->box_b, uv_at_b, p)) != 0)
		bench_die("pingpong: uvbox_init", rc);
	b = bench_thread(uv_b, p);
	a = bench_thread(uv_a, p);
	bench_join(a);
	bench_join(b);
	if ((rc = uvbox_destroy(&p->box_a)) != 0 ||
	    (rc = uvbox_destroy(&p->box_b)) != 0)
		bench_die("pingpong: uvbox_destroy", rc);
}

/* ---- main ----------------------------------------------------------- */

struct layout {
	const char *what;	/* in the title */
	const char *row;	/* in the final table */
	int cpu_b;		/* A is on CPU 0 */
	unsigned long n;
};

/* One run of system sys: the mean round trip in microseconds. */
static void
run(int round, int sys, double *m, void *ctx)
{
	const struct layout *l = ctx;
	struct pp p = {
		.trips = WARMUP + l->n, .cpu_a = 0, .cpu_b = l->cpu_b
	};

	(void)round;
	switch (sys) {
	case SYS_WORKER:
		run_worker(&p);
		break;
	case SYS_RAW:
		run_queue(&p, &peer_raw);
		break;
	case SYS_GLIB:
		run_queue(&p, &peer_glib);
		break;
	default:
		run_uv(&p);
		break;
	}
	check(&p, peer_systems[sys]);
	m[0] = (double)(p.t1 - p.t0) / (double)l->n / BENCH_NS_PER_US;
}

int
main(int argc, char **argv)
{
	static struct layout layouts[] = {
		{ "both threads on CPU 0", "ping-pong 1 CPU, us", 0, 0 },
		{ "A on CPU 0, B on CPU 1", "ping-pong 2 CPUs, us", 1, 0 },
	};
	static const int peers[] = { SYS_GLIB, SYS_UV }, raw[] = { SYS_RAW };
	enum { NLAYOUT = sizeof(layouts) / sizeof(layouts[0]) };
	unsigned long n = 200000, rounds = 5;
	struct bench_table t[NLAYOUT];
	char title[NLAYOUT][128], row[64];
	int l;

	bench_options(argc, argv, "pingpong [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &n, 100000000 },
	    { 'r', &rounds, 1000 } }, 2);
	printf("pingpong: %lu round trips per run after %d untimed, %lu "
	    "rounds\nlibworker %s, GLib %u.%u.%u, libuv %s\n", n, WARMUP,
	    rounds, worker_version(), glib_major_version, glib_minor_version,
	    glib_micro_version, uv_version_string());
	for (l = 0; l < NLAYOUT; l++) {
		layouts[l].n = n;
		snprintf(title[l], sizeof(title[l]), "pingpong, %s, %lu round "
		    "trips", layouts[l].what, n);
		if (bench_table_init(&t[l], title[l], peer_systems, SYS_COUNT,
		    &metric, 1, (int)rounds) != 0)
			bench_die("pingpong", ENOMEM);
		bench_play(&t[l], run, &layouts[l]);
	}
	printf("\n");
	for (l = 0; l < NLAYOUT; l++) {
		bench_target_ratio(&t[l], layouts[l].row, 0, peers, 2, 1.0);
		snprintf(row, sizeof(row), "%s vs raw", layouts[l].row);
		bench_target_ratio(&t[l], row, 0, raw, 1, 1.15);
		bench_table_free(&t[l]);
	}
	return 0;
}
