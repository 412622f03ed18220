/*
 * spawn.c - the cost of a short life: create, start, stop and join a
 * worker, against a thread that blocks on a raw mutex + condition variable
 * queue, on a GLib GAsyncQueue, or in a libuv loop (peers.h).
 *
 * libworker: worker_create() of a worker whose task is
 * worker_wait_forever(), worker_stop(), worker_join(), worker_unref().
 * Each peer gives its thread the same life, queue included: the queue
 * (or the loop and its mailbox) is created, pthread_create() starts a
 * thread that blocks on it, the main thread pushes PEER_STOP, joins the
 * thread and frees the queue.  N cycles (default 10,000) one after the
 * other, all from the main thread; the value is the mean cycle.  Every
 * stop is counted as it is handled.  The floor: pthread_create() of a
 * thread that only counts, and pthread_join(): what any new thread costs
 * here, queue or no queue.
 *
 * Usage: spawn [-n N] [-r ROUNDS]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

static const struct bench_metric metric = {
	"us/cycle", "us per cycle", " %9.3f", BENCH_LOWER
};

/* The systems of this program: the peers', and the floor. */
enum { SYS_FLOOR = SYS_COUNT, NSYS };
static const char *const systems[NSYS] = {
	[SYS_WORKER] = "libworker",
	[SYS_RAW] = "raw",
	[SYS_GLIB] = "glib",
	[SYS_UV] = "libuv",
	[SYS_FLOOR] = "thread",
};

/* Threads that handled their stop, in all systems; read after joins. */
static atomic_ulong stopped;

/* ---- libworker ------------------------------------------------------ */

static int
on_stop(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add_explicit(&stopped, 1, memory_order_relaxed);
	return 0;
}

static void
cycle_worker(void)
{
	worker_t *w;
	int rc;

	/* Created by main, whose root worker is no default parent: the
	 * worker has none, as the peers' threads have none. */
	if ((w = worker_new(NULL, NULL, NULL)) == NULL)
		bench_die("spawn: worker_new", errno);
	if ((rc = worker_listen(w, WORKER_STOP_THREAD, on_stop, NULL,
	    NULL)) != 0 ||
	    (rc = worker_start(w)) != 0 ||
	    (rc = worker_stop(w)) != 0 ||
	    (rc = worker_join(w)) != 0)
		bench_die("spawn: worker", rc);
	worker_unref(w);
}

/* ---- raw and GLib --------------------------------------------------- */

static void *
queue_thread(void *arg)
{
	void **qv = arg;
	const struct peer_queue *q = qv[0];

	while (q->pop(qv[1]) != PEER_STOP)
		;
	atomic_fetch_add_explicit(&stopped, 1, memory_order_relaxed);
	return NULL;
}

static void
cycle_queue(const struct peer_queue *q)
{
	void *qv[2] = { (void *)q, NULL };
	pthread_t t;
	int rc;

	if ((qv[1] = q->create()) == NULL)
		bench_die("spawn: queue", ENOMEM);
	t = bench_thread(queue_thread, qv);
	if ((rc = q->push(qv[1], PEER_STOP)) != 0)
		bench_die("spawn: push", rc);
	bench_join(t);
	q->destroy(qv[1]);
}

/* ---- libuv ---------------------------------------------------------- */

static void
uv_at_thread(struct uvbox *box, void *data)
{
	if (data != PEER_STOP)
		return;
	atomic_fetch_add_explicit(&stopped, 1, memory_order_relaxed);
	uvbox_close(box);
}

static void *
uv_thread(void *arg)
{
	uvbox_run(arg);
	return NULL;
}

static void
cycle_uv(void)
{
	struct uvbox box;
	pthread_t t;
	int rc;

	if ((rc = uvbox_init(&box, uv_at_thread, NULL)) != 0)
		bench_die("spawn: uvbox_init", rc);
	t = bench_thread(uv_thread, &box);
	if ((rc = uvbox_send(&box, PEER_STOP)) != 0)
		bench_die("spawn: uvbox_send", rc);
	bench_join(t);
	if ((rc = uvbox_destroy(&box)) != 0)
		bench_die("spawn: uvbox_destroy", rc);
}

/* ---- the floor ------------------------------------------------------- */

static void *
bare_thread(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&stopped, 1, memory_order_relaxed);
	return NULL;
}

static void
cycle_floor(void)
{
	bench_join(bench_thread(bare_thread, NULL));
}

/* ---- main ----------------------------------------------------------- */

/* n cycles of system sys: the mean cycle in microseconds. */
static void
run(int round, int sys, double *m, void *ctx)
{
	unsigned long n = *(const unsigned long *)ctx, i;
	uint64_t t0;

	(void)round;
	atomic_store(&stopped, 0);
	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		switch (sys) {
		case SYS_WORKER:
			cycle_worker();
			break;
		case SYS_RAW:
			cycle_queue(&peer_raw);
			break;
		case SYS_GLIB:
			cycle_queue(&peer_glib);
			break;
		case SYS_UV:
			cycle_uv();
			break;
		default:
			cycle_floor();
			break;
		}
	}
	m[0] = (double)(bench_now_ns() - t0) / (double)n / BENCH_NS_PER_US;
	if (atomic_load(&stopped) != n) {
		fprintf(stderr, "spawn: %s: %lu of %lu threads stopped\n",
		    systems[sys], atomic_load(&stopped), n);
		exit(EXIT_FAILURE);
	}
}

int
main(int argc, char **argv)
{
	static const int glib[] = { SYS_GLIB };
	unsigned long n = 10000, rounds = 5;
	struct bench_table t;
	char title[64];

	bench_options(argc, argv, "spawn [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &n, 10000000 },
	    { 'r', &rounds, 1000 } }, 2);
	printf("spawn: %lu cycles per run, %lu rounds\nlibworker %s, GLib "
	    "%u.%u.%u, libuv %s\n", n, rounds, worker_version(),
	    glib_major_version, glib_minor_version, glib_micro_version,
	    uv_version_string());
	snprintf(title, sizeof(title), "spawn, %lu cycles", n);
	if (bench_table_init(&t, title, systems, NSYS, &metric, 1,
	    (int)rounds) != 0)
		bench_die("spawn", ENOMEM);
	bench_play(&t, run, &n);
	printf("\n");
	/* Four fifths of GLib's thread, which is little more than the
	 * floor: a new thread and its join. */
	bench_target_ratio(&t, "spawn, us/cycle", 0, glib, 1, 0.8);
	bench_target_peer(&t, "spawn vs a bare thread", NULL, SYS_FLOOR, 0,
	    "info", 1);
	bench_table_free(&t);
	return 0;
}
