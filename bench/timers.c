/*
 * timers.c - the cost and the precision of one-shot timers: libworker
 * against libuv.
 *
 * Each round schedules N timers (default 1,000,000) with delays drawn
 * uniformly from [0, 1] s, all from one thread onto that thread's own
 * loop: first with worker_later() on main's root worker, then with
 * uv_timer_start() on a libuv loop, with the same delays.  Rounds
 * alternate the two (A B A B ...), so that a drift of the machine touches
 * both alike.  For each run it measures
 *
 *   sched   the scheduling cost: how long the loop that schedules the N
 *           timers took, divided by N (ns per timer);
 *   total   from the start of that loop until the last timer ran (ms);
 *   lateness of each timer: when its callback ran minus its own deadline,
 *           which is the time just before it was scheduled plus its delay
 *           (ms).  p50 and p99 are over every timer; "p99 due after" only
 *           over the timers due after the scheduling loop ended, because
 *           the ones due while it still ran cannot run before it ends and
 *           are late by however long it took, in both libraries;
 *   early   how many timers ran before their deadline.
 *
 * libuv counts time in whole milliseconds: each delay is rounded up to
 * the next millisecond for uv_timer_start(), and the lateness is still
 * measured against the exact deadline in nanoseconds.  Both loops read the
 * clock once per timer, as libworker does inside worker_later():
 * uv_update_time() before each uv_timer_start(), since libuv would
 * otherwise count every delay from the time cached when the loop last ran.
 *
 * Usage: timers [-n N] [-r ROUNDS] [-s SEED]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "worker.h"

/* All timers are due within a second; a wait this long means something
 * is wrong. */
#define TIMEOUT 60.0

#define NS_PER_S 1000000000u
#define NS_PER_MS 1000000u

/* The metrics of one run, in the order of the summary table. */
enum {
	M_SCHED,	/* ns per timer */
	M_TOTAL,	/* ms */
	M_P50,		/* ms */
	M_P99,		/* ms */
	M_P99_AFTER,	/* ms */
	M_EARLY,	/* timers */
	M_COUNT
};

static const struct {
	const char *label;
	const char *format;
	int ratio;	/* 1: the summary shows libworker / libuv */
} metrics[M_COUNT] = {
	[M_SCHED] = { "sched ns/timer", " %8.1f", 1 },
	[M_TOTAL] = { "total ms", " %8.1f", 1 },
	[M_P50] = { "p50 late ms", " %8.3f", 0 },
	[M_P99] = { "p99 late ms", " %8.3f", 1 },
	[M_P99_AFTER] = { "p99 after ms", " %8.3f", 1 },
	[M_EARLY] = { "early timers", " %8.0f", 0 },
};

enum { SYS_WORKER, SYS_UV, SYS_COUNT };
static const char *const systems[SYS_COUNT] = { "libworker", "libuv" };

/*
 * The state of the current run, shared with the timer callbacks.  Both
 * libraries run the callbacks on the thread that scheduled them, so it
 * needs no lock.  The arrays are allocated once, for N timers.
 */
static struct {
	size_t n;
	uint64_t *delay;	/* ns, the same for both systems in a round */
	uint64_t *deadline;	/* ns, CLOCK_MONOTONIC */
	int64_t *late;		/* ns */
	size_t fired;
	uint64_t last;		/* when the last timer ran */
	int error;		/* an error in a callback, reported later */
} run;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a small, good generator, so that a seed gives the same
 * delays everywhere. */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Records that timer i ran; returns 1 when it was the last one. */
static int
record(size_t i)
{
	uint64_t t = now_ns();

	run.late[i] = (int64_t)(t - run.deadline[i]);
	if (++run.fired < run.n)
		return 0;
	run.last = t;
	return 1;
}

/* ---- libworker ------------------------------------------------------ */

/* The timer callback, on main's thread at its breakpoint. */
static void
on_worker_timer(void *arg)
{
	int rc;

	if (!record((uintptr_t)arg))
		return;
	/* A timer callback is no event, so main's wait needs one to learn
	 * that the last timer has run. */
	if ((rc = worker_fire(worker_current(), "done", NULL)) != 0)
		run.error = rc;
}

/* One libworker run; returns 0 or an error number.  *t0 and *t1 get the
 * start and the end of the scheduling loop. */
static int
run_worker(uint64_t *t0, uint64_t *t1)
{
	worker_t *self;
	size_t i;
	int rc;

	if ((self = worker_current()) == NULL)
		return errno;
	*t0 = now_ns();
	for (i = 0; i < run.n; i++) {
		run.deadline[i] = now_ns() + run.delay[i];
		rc = worker_later(self, on_worker_timer, (void *)(uintptr_t)i,
		    (double)run.delay[i] / NS_PER_S, NULL);
		if (rc != 0)
			return rc;
	}
	*t1 = now_ns();
	/* The timers run in this wait, main's loop. */
	if ((rc = worker_wait_event("done", self, TIMEOUT, NULL)) != 0)
		return rc;
	return run.error;
}

/* ---- libuv ---------------------------------------------------------- */

static void
on_uv_timer(uv_timer_t *t)
{
	(void)record((uintptr_t)t->data);
}

/* One libuv run on a fresh loop; returns 0 or an error number.  timers
 * has room for N handles. */
static int
run_uv(uv_timer_t *timers, uint64_t *t0, uint64_t *t1)
{
	uv_loop_t loop;
	size_t i, inited = 0;
	int rc;

	if ((rc = uv_loop_init(&loop)) != 0)
		return -rc;
	*t0 = now_ns();
	for (i = 0; i < run.n; i++) {
		run.deadline[i] = now_ns() + run.delay[i];
		uv_update_time(&loop);
		/* Cannot fail: it only links the handle to the loop. */
		(void)uv_timer_init(&loop, &timers[i]);
		inited++;
		timers[i].data = (void *)(uintptr_t)i;
		/* Rounded up: libuv's own rounding down of the loop time
		 * can still make a timer up to a millisecond early. */
		rc = uv_timer_start(&timers[i], on_uv_timer,
		    (run.delay[i] + NS_PER_MS - 1) / NS_PER_MS, 0);
		if (rc != 0) {
			rc = -rc;
			break;
		}
	}
	*t1 = now_ns();
	/* Runs until no timer is left. */
	if (rc == 0)
		(void)uv_run(&loop, UV_RUN_DEFAULT);

	/* Outside the measure: a loop closes only when every handle it
	 * ever had is closed. */
	while (inited > 0)
		uv_close((uv_handle_t *)&timers[--inited], NULL);
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0 && rc == 0)
		rc = EBUSY;
	return rc;
}

/* ---- statistics ----------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile of n sorted values, per mille: in integers,
 * so that no rounding moves the rank. */
static int64_t
percentile(const int64_t *v, size_t n, unsigned per_mille)
{
	size_t rank = (n * per_mille + 999) / 1000;

	return v[rank > 0 ? rank - 1 : 0];
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Fills m[] from the run that scheduled between t0 and t1. */
static void
measure(uint64_t t0, uint64_t t1, double m[M_COUNT])
{
	size_t i, after = 0, early = 0;

	/* Gather the lateness of the timers due after the scheduling loop
	 * at the front, in place: late[] is not needed in order. */
	for (i = 0; i < run.n; i++) {
		if (run.late[i] < 0)
			early++;
		if (run.deadline[i] > t1) {
			int64_t tmp = run.late[after];

			run.late[after++] = run.late[i];
			run.late[i] = tmp;
		}
	}
	qsort(run.late, after, sizeof(*run.late), cmp_i64);
	m[M_P99_AFTER] = after > 0 ?
	    (double)percentile(run.late, after, 990) / NS_PER_MS : 0;
	qsort(run.late, run.n, sizeof(*run.late), cmp_i64);
	m[M_P50] = (double)percentile(run.late, run.n, 500) / NS_PER_MS;
	m[M_P99] = (double)percentile(run.late, run.n, 990) / NS_PER_MS;
	m[M_SCHED] = (double)(t1 - t0) / (double)run.n;
	m[M_TOTAL] = (double)(run.last - t0) / NS_PER_MS;
	m[M_EARLY] = (double)early;
}

/* "after" is the p99 lateness of the timers due after scheduling. */
static void
print_header(void)
{
	printf("\n%5s %-9s %9s %9s %9s %9s %9s %8s\n", "round", "system",
	    "sched ns", "total ms", "p50 ms", "p99 ms", "after ms", "early");
}

static void
print_run(int round, int sys, const double m[M_COUNT])
{
	printf("%5d %-9s %9.1f %9.1f %9.3f %9.3f %9.3f %8.0f\n",
	    round + 1, systems[sys], m[M_SCHED], m[M_TOTAL], m[M_P50],
	    m[M_P99], m[M_P99_AFTER], m[M_EARLY]);
	fflush(stdout);
}

/* The table: per system the median, min and max over the rounds, then
 * the median of the per-round ratios libworker / libuv. */
static void
print_summary(const double *res, int rounds)
{
	double *v;
	int k, r, s;

	if ((v = calloc((size_t)rounds, sizeof(*v))) == NULL) {
		perror("timers: summary");
		return;
	}
	printf("\nsummary: timers, N = %zu, %d rounds\n", run.n, rounds);
	printf("%-14s %26s %26s %9s\n", "", "libworker", "libuv", "lw/uv");
	printf("%-14s", "");
	for (s = 0; s < SYS_COUNT; s++)
		printf(" %8s %8s %8s", "median", "min", "max");
	printf(" %9s\n", "median");
	for (k = 0; k < M_COUNT; k++) {
		printf("%-14s", metrics[k].label);
		for (s = 0; s < SYS_COUNT; s++) {
			double lo, hi;

			for (r = 0; r < rounds; r++)
				v[r] = res[(r * SYS_COUNT + s) * M_COUNT + k];
			lo = hi = v[0];
			for (r = 1; r < rounds; r++) {
				lo = v[r] < lo ? v[r] : lo;
				hi = v[r] > hi ? v[r] : hi;
			}
			printf(metrics[k].format, median(v, (size_t)rounds));
			printf(metrics[k].format, lo);
			printf(metrics[k].format, hi);
		}
		if (!metrics[k].ratio) {
			printf(" %9s\n", "-");
			continue;
		}
		/* A ratio needs a libuv value that is not zero; a round
		 * without one is left out. */
		for (r = s = 0; r < rounds; r++) {
			double lw = res[(r * SYS_COUNT + SYS_WORKER) * M_COUNT +
			    k];
			double uv = res[(r * SYS_COUNT + SYS_UV) * M_COUNT + k];

			if (uv != 0)
				v[s++] = lw / uv;
		}
		if (s > 0)
			printf(" %9.3f\n", median(v, (size_t)s));
		else
			printf(" %9s\n", "-");
	}
	free(v);
}

/* ---- main ----------------------------------------------------------- */

/*
 * Writes to every page of p.  Not memset(): the compiler may drop a
 * memset() of zeros on memory from calloc(), which is already zero but
 * not yet mapped.
 */
static void
prefault(void *p, size_t size)
{
	volatile unsigned char *b = p;
	size_t i;

	for (i = 0; i < size; i += 4096)
		b[i] = 0;
}

static int
parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v == 0 || v > max ||
	    *s == '-')
		return EINVAL;
	*out = v;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: timers [-n N] [-r ROUNDS] [-s SEED]\n"
	    "N: timers per run (default 1000000), ROUNDS: at least 1 "
	    "(default 5)\n");
	exit(EXIT_FAILURE);
}

int
main(int argc, char **argv)
{
	unsigned long n = 1000000, rounds = 5, seed = 1;
	uv_timer_t *timers = NULL;
	double *res = NULL;
	uint64_t t0, t1, state;
	size_t i;
	int c, r, rc = 0, status = EXIT_FAILURE;

	while ((c = getopt(argc, argv, "n:r:s:")) != -1) {
		switch (c) {
		case 'n':
			if (parse_count(optarg, 100000000, &n) != 0)
				usage();
			break;
		case 'r':
			if (parse_count(optarg, 1000, &rounds) != 0)
				usage();
			break;
		case 's':
			if (parse_count(optarg, (unsigned long)-1, &seed) != 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	run.n = n;
	run.delay = calloc(n, sizeof(*run.delay));
	run.deadline = calloc(n, sizeof(*run.deadline));
	run.late = calloc(n, sizeof(*run.late));
	timers = calloc(n, sizeof(*timers));
	res = calloc(rounds * SYS_COUNT * M_COUNT, sizeof(*res));
	if (run.delay == NULL || run.deadline == NULL || run.late == NULL ||
	    timers == NULL || res == NULL) {
		perror("timers");
		goto out;
	}
	/* Fault the measuring arrays in now, so that the first run does
	 * not pay for them.  Not libuv's handles: the memory behind them is
	 * the program's to provide, as libworker's timers are libworker's,
	 * so in the first round both pay for their first touch. */
	prefault(run.deadline, n * sizeof(*run.deadline));
	prefault(run.late, n * sizeof(*run.late));

	printf("timers: %lu timers per run, delays uniform in [0, 1] s, "
	    "%lu rounds, seed %lu\nlibworker %s, libuv %s\n", n, rounds, seed,
	    worker_version(), uv_version_string());
	print_header();

	for (r = 0; r < (int)rounds; r++) {
		state = seed + (uint64_t)r * 0x100000001u;
		for (i = 0; i < n; i++)
			run.delay[i] = next_random(&state) % (NS_PER_S + 1);

		run.fired = 0;
		run.error = 0;
		if ((rc = run_worker(&t0, &t1)) != 0) {
			fprintf(stderr, "timers: libworker: %s\n",
			    strerror(rc));
			goto out;
		}
		measure(t0, t1, &res[(r * SYS_COUNT + SYS_WORKER) * M_COUNT]);
		print_run(r, SYS_WORKER,
		    &res[(r * SYS_COUNT + SYS_WORKER) * M_COUNT]);

		run.fired = 0;
		if ((rc = run_uv(timers, &t0, &t1)) != 0) {
			fprintf(stderr, "timers: libuv: %s\n", strerror(rc));
			goto out;
		}
		if (run.fired != n) {
			fprintf(stderr, "timers: libuv ran %zu of %lu timers\n",
			    run.fired, n);
			goto out;
		}
		measure(t0, t1, &res[(r * SYS_COUNT + SYS_UV) * M_COUNT]);
		print_run(r, SYS_UV, &res[(r * SYS_COUNT + SYS_UV) * M_COUNT]);
	}
	print_summary(res, (int)rounds);
	status = EXIT_SUCCESS;
out:
	free(res);
	free(timers);
	free(run.late);
	free(run.deadline);
	free(run.delay);
	return status;
}
