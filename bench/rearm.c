/*
 * rearm.c - events per second into a worker that re-arms a timeout on
 * every event, as a server does with the idle timeout of a connection,
 * and the same without the timeout.
 *
 * One producer worker fires N events (default 5,000,000) at a consumer
 * worker, as throughput.c's 1->1 does.  The consumer's listener, per
 * event, moves its timeout (1 s, which never runs) to one second from
 * now:
 *
 *   rearm    worker_rearm(), the call made for this;
 *   cancel   worker_cancel() and a new worker_later(), what a program
 *            had to do before;
 *   none     nothing: the cost of the events alone.
 *
 * libuv does the same on its loop with uv_timer_start() on the running
 * timer per message (uv again), and without a timer (uv none), with the
 * producer appending to a mailbox and calling uv_async_send() (peers.h).
 * Every system reads the clock once per event for the new deadline.
 * Rounds alternate the systems; the value is events/s from the producer
 * leaving a barrier until the consumer counted the last event.
 *
 * Usage: rearm [-n N] [-r ROUNDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

enum { R_REARM, R_NONE, R_CANCEL, R_UV_AGAIN, R_UV_NONE, R_COUNT };
static const char *const systems[R_COUNT] = {
	[R_REARM] = "rearm",
	[R_NONE] = "none",
	[R_CANCEL] = "cancel",
	[R_UV_AGAIN] = "uv again",
	[R_UV_NONE] = "uv none",
};

static const struct bench_metric metric = {
	"Mev/s", "million events/s", " %9.3f", BENCH_HIGHER
};

/* The timeout of the idle "connection", in seconds: it never runs. */
#define TIMEOUT 1.0

/* One run.  The consumer's fields are written by the consumer only. */
struct run {
	int sys;
	unsigned long n;
	pthread_barrier_t go;
	worker_t *consumer;
	uint64_t id;		/* libworker: the timeout */
	struct uvbox box;	/* libuv */
	uv_timer_t timer;
	uint64_t start;		/* the producer left the barrier */
	int error;		/* the first failed call, reported at the end */
	_Alignas(64) unsigned long count;
	uint64_t t1;		/* the last event counted */
};

static void
wait_go(struct run *r)
{
	int rc = pthread_barrier_wait(&r->go);

	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
		bench_die("rearm: pthread_barrier_wait", rc);
}

/* Counts one event; returns 1 when it was the last. */
static int
take(struct run *r)
{
	if (++r->count < r->n)
		return 0;
	r->t1 = bench_now_ns();
	return 1;
}

static void
note(struct run *r, int rc)
{
	if (rc != 0 && r->error == 0)
		r->error = rc;
}

/* ---- libworker ------------------------------------------------------ */

static void
timeout_cb(void *arg)
{
	/* An idle connection would be closed here; none ever is. */
	note(arg, EPROTO);
}

static int
on_item(const worker_event_t *ev, void *ctx)
{
	struct run *r = ctx;
	worker_t *self = worker_current();

	(void)ev;
	switch (r->sys) {
	case R_REARM:
		note(r, worker_rearm(self, r->id, TIMEOUT));
		break;
	case R_CANCEL:
		note(r, worker_cancel(self, r->id));
		note(r, worker_later(self, timeout_cb, r, TIMEOUT, &r->id));
		break;
	default:
		break;
	}
	(void)take(r);
	return 0;
}

static int
all_taken(const worker_event_t *ev, void *ctx)
{
	struct run *r = ctx;

	(void)ev;
	return r->count == r->n;
}

static void *
consumer_task(void *arg)
{
	struct run *r = arg;
	int rc;

	if (r->sys != R_NONE)
		note(r, worker_later(worker_current(), timeout_cb, r, TIMEOUT,
		    &r->id));
	wait_go(r);
	if ((rc = worker_wait_until(all_taken, r, -1, NULL)) != 0)
		bench_die("rearm: worker_wait_until", rc);
	if (r->sys != R_NONE)
		note(r, worker_cancel(worker_current(), r->id));
	return NULL;
}

static void *
producer_task(void *arg)
{
	struct run *r = arg;
	int rc;

	wait_go(r);
	r->start = bench_now_ns();
	for (unsigned long i = 0; i < r->n; i++)
		if ((rc = worker_fire(r->consumer, "item", r)) != 0)
			bench_die("rearm: worker_fire", rc);
	return NULL;
}

static void
join_worker(worker_t *w)
{
	int rc;

	if ((rc = worker_join(w)) != 0 || (rc = worker_result(w, NULL)) != 0)
		bench_die("rearm: worker", rc);
	worker_unref(w);
}

static void
run_worker(struct run *r)
{
	worker_attr_t ca = { .name = "consumer" }, pa = { .name = "producer" };
	worker_t *p;
	int rc;

	if ((r->consumer = worker_new(consumer_task, r, &ca)) == NULL)
		bench_die("rearm: worker_new", errno);
	if ((rc = worker_listen(r->consumer, "item", on_item, r,
	    NULL)) != 0 || (rc = worker_start(r->consumer)) != 0)
		bench_die("rearm: worker_start", rc);
	if ((p = worker_create(producer_task, r, &pa)) == NULL)
		bench_die("rearm: worker_create", errno);
	wait_go(r);
	join_worker(p);
	join_worker(r->consumer);
}

/* ---- libuv ---------------------------------------------------------- */

static void
on_uv_timeout(uv_timer_t *t)
{
	note(t->data, EPROTO);
}

static void
uv_at_consumer(struct uvbox *box, void *data)
{
	struct run *r = box->ctx;

	(void)data;
	if (r->sys == R_UV_AGAIN) {
		/* The loop's time, then the timer one timeout from it. */
		uv_update_time(&box->loop);
		note(r, -uv_timer_start(&r->timer, on_uv_timeout,
		    (uint64_t)(TIMEOUT * 1000), 0));
	}
	if (take(r)) {
		uv_close((uv_handle_t *)&r->timer, NULL);
		uvbox_close(box);
	}
}

static void *
uv_consumer(void *arg)
{
	struct run *r = arg;

	bench_name("uv consumer");
	(void)uv_timer_init(&r->box.loop, &r->timer);
	r->timer.data = r;
	if (r->sys == R_UV_AGAIN)
		note(r, -uv_timer_start(&r->timer, on_uv_timeout,
		    (uint64_t)(TIMEOUT * 1000), 0));
	wait_go(r);
	uvbox_run(&r->box);
	return NULL;
}

static void *
uv_producer(void *arg)
{
	struct run *r = arg;
	int rc;

	bench_name("uv producer");
	wait_go(r);
	r->start = bench_now_ns();
	for (unsigned long i = 0; i < r->n; i++)
		if ((rc = uvbox_send(&r->box, r)) != 0)
			bench_die("rearm: uvbox_send", rc);
	return NULL;
}

static void
run_uv(struct run *r)
{
	pthread_t c, p;
	int rc;

	if ((rc = uvbox_init(&r->box, uv_at_consumer, r)) != 0)
		bench_die("rearm: uvbox_init", rc);
	c = bench_thread(uv_consumer, r);
	p = bench_thread(uv_producer, r);
	wait_go(r);
	bench_join(p);
	bench_join(c);
	if ((rc = uvbox_destroy(&r->box)) != 0)
		bench_die("rearm: uvbox_destroy", rc);
}

/* ---- main ----------------------------------------------------------- */

static void
run_sys(int round, int sys, double *m, void *ctx)
{
	struct run *r = aligned_alloc(_Alignof(struct run), sizeof(*r));

	(void)round;
	if (r == NULL)
		bench_die("rearm", ENOMEM);
	memset(r, 0, sizeof(*r));
	r->sys = sys;
	r->n = *(const unsigned long *)ctx;
	pthread_barrier_init(&r->go, NULL, 3);
	if (sys == R_UV_AGAIN || sys == R_UV_NONE)
		run_uv(r);
	else
		run_worker(r);
	if (r->count != r->n || r->error != 0) {
		fprintf(stderr, "rearm: %s: %lu of %lu events, error %d\n",
		    systems[sys], r->count, r->n, r->error);
		exit(EXIT_FAILURE);
	}
	m[0] = (double)r->n / ((double)(r->t1 - r->start) / BENCH_NS_PER_S) /
	    1e6;
	pthread_barrier_destroy(&r->go);
	free(r);
}

int
main(int argc, char **argv)
{
	unsigned long n = 5000000, rounds = 5;
	struct bench_table t;
	char title[96];

	bench_options(argc, argv, "rearm [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &n, 1000000000 },
	    { 'r', &rounds, 1000 } }, 2);
	printf("rearm: %lu events per run, a %.0f s timeout re-armed on "
	    "each, %lu rounds\nlibworker %s, libuv %s\n", n, TIMEOUT, rounds,
	    worker_version(), uv_version_string());
	snprintf(title, sizeof(title), "rearm, %lu events, 1->1", n);
	if (bench_table_init(&t, title, systems, R_COUNT, &metric, 1,
	    (int)rounds) != 0)
		bench_die("rearm", ENOMEM);
	bench_play(&t, run_sys, &n);
	printf("\n");
	/* No target in the issue: what the timeout costs, said plainly. */
	bench_target_peer(&t, "rearm per event vs none", NULL, R_NONE, 0,
	    "info", 1);
	bench_target_peer(&t, "rearm vs cancel+later", NULL, R_CANCEL, 0,
	    "info", 1);
	bench_target_peer(&t, "rearm vs libuv timer_start", NULL, R_UV_AGAIN,
	    0, "info", 1);
	bench_table_free(&t);
	return 0;
}
