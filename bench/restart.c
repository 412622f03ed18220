/*
 * restart.c - what a restart costs: a supervised worker fails and its
 * parent starts it again (supervise.c), next to the cost of starting a
 * new worker, and the memory of a supervisor after many restarts.
 *
 * The child is PERMANENT under a ONE_FOR_ONE parent with room for every
 * restart (restart_max 100000 in 1 s would be plenty; the run stays
 * below it).  Each run of the child stamps the time it began and, if it
 * is not the last, stamps the time it fails and calls worker_fail(): the
 * restart latency is from one run's failure to the next run's start,
 * all in the library (the parent's CHILD_THREAD_END, its join of the
 * ended thread, a new thread).  The start latency is from worker_create()
 * to the first line of the new worker's task.  Resident memory is read
 * before and after RESTARTS restarts: it must not grow with them.
 *
 * Usage: restart [-n RESTARTS] [-r ROUNDS]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "worker.h"

static struct {
	unsigned long n;		/* restarts per round */
	uint64_t *began;		/* [run]: when run began */
	uint64_t *failed;		/* [run]: when run failed */
	atomic_ulong runs;
	struct bench_latch done;	/* the last run began */
} r;

static void *
flapping(void *arg)
{
	unsigned long run = atomic_fetch_add(&r.runs, 1);

	(void)arg;
	r.began[run] = bench_now_ns();
	if (run == r.n) {
		bench_latch_arrive(&r.done);
		worker_wait_forever();
		return NULL;
	}
	r.failed[run] = bench_now_ns();
	worker_fail(EIO);
	return NULL;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The q-quantile of v[0..n-1], which it sorts. */
static double
quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), by_value);
	return v[(size_t)(q * (double)(n - 1))];
}

/* One round of restarts: their latencies in us into lat[0..n-1]. */
static void
restarts(double *lat, long *rss_before, long *rss_after)
{
	worker_t *p, *c;

	atomic_store(&r.runs, 0);
	bench_latch_init(&r.done, 1);
	p = worker_create(NULL, NULL, &(worker_attr_t){
		.restart_max = 100000, .restart_period = 1 });
	if (p == NULL)
		bench_die("restart: worker_create", errno);
	*rss_before = bench_rss_kib();
	c = worker_create(flapping, NULL, &(worker_attr_t){ .parent = p,
		.restart = WORKER_RESTART_PERMANENT, .quiet = 1 });
	if (c == NULL)
		bench_die("restart: worker_create", errno);
	if (bench_latch_wait(&r.done) == 0)
		bench_die("restart: the restarts", ETIMEDOUT);
	*rss_after = bench_rss_kib();
	for (unsigned long i = 0; i < r.n; i++)
		lat[i] = (double)(r.began[i + 1] - r.failed[i]) /
		    BENCH_NS_PER_US;
	worker_stop(p);
	worker_join(p);
	worker_unref(c);
	worker_unref(p);
	bench_latch_destroy(&r.done);
}

/* A plain start, for comparison: worker_create() to the task's start. */
static void *
started(void *arg)
{
	*(uint64_t *)arg = bench_now_ns();
	return NULL;
}

static void
starts(double *lat, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns(), t1 = 0;
		worker_t *w = worker_create(started, &t1, NULL);

		if (w == NULL)
			bench_die("restart: worker_create", errno);
		worker_join(w);
		worker_unref(w);
		lat[i] = (double)(t1 - t0) / BENCH_NS_PER_US;
	}
}

int
main(int argc, char **argv)
{
	unsigned long rounds = 5;
	double *lat, *plain, med = 0, p99 = 0, pmed = 0, pp99 = 0;
	long before = 0, after = 0, grew = 0;
	char a[32], b[32];

	r.n = 10000;
	bench_options(argc, argv, "restart [-n RESTARTS] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &r.n, 10000000 },
	    { 'r', &rounds, 1000 } }, 2);
	r.began = calloc(r.n + 1, sizeof(*r.began));
	r.failed = calloc(r.n + 1, sizeof(*r.failed));
	lat = calloc(r.n, sizeof(*lat));
	plain = calloc(r.n, sizeof(*plain));
	if (r.began == NULL || r.failed == NULL || lat == NULL ||
	    plain == NULL)
		bench_die("restart", ENOMEM);
	printf("restart: %lu restarts and %lu starts per round, %lu "
	    "rounds\nlibworker %s\n", r.n, r.n, rounds, worker_version());
	for (unsigned long i = 0; i < rounds; i++) {
		double m, q, pm, pq;

		restarts(lat, &before, &after);
		starts(plain, r.n);
		m = quantile(lat, r.n, 0.5);
		q = quantile(lat, r.n, 0.99);
		pm = quantile(plain, r.n, 0.5);
		pq = quantile(plain, r.n, 0.99);
		printf("    %lu restart us median %.1f p99 %.1f, start us "
		    "median %.1f p99 %.1f, rss %ld -> %ld KiB\n", i + 1, m, q,
		    pm, pq, before, after);
		/* The last round's numbers, after the warm-up of the first. */
		med = m;
		p99 = q;
		pmed = pm;
		pp99 = pq;
		if (i > 0 && after - before > grew)
			grew = after - before;
	}
	printf("\nsummary: restart, last round\n");
	snprintf(a, sizeof(a), "%.1f", med);
	snprintf(b, sizeof(b), "start %.1f", pmed);
	bench_target_row("restart median, us", a, b, med / pmed,
	    "info", 1);
	snprintf(a, sizeof(a), "%.1f", p99);
	snprintf(b, sizeof(b), "start %.1f", pp99);
	bench_target_row("restart p99, us", a, b, p99 / pp99, "info", 1);
	snprintf(a, sizeof(a), "%ld KiB", grew);
	bench_target_row("rss growth, 10k restarts", a, "-", 0, "< 1 MiB",
	    grew < 1024);
	free(r.began);
	free(r.failed);
	free(lat);
	free(plain);
	return 0;
}
