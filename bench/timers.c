/*
 * timers.c - the cost and the precision of one-shot timers: libworker
 * against a raw binary heap with a timer thread, libuv and GLib.
 *
 * Two configurations by default, each a table of its own: 100,000 timers
 * with delays in [0, 100] ms, and 1,000,000 in [0, 1] s (-n and -d give
 * one of your choice).  Each round schedules N timers with delays drawn
 * uniformly from [0, SPAN], all from one thread: with worker_later() on
 * main's root worker, whose loop runs them; on the raw heap, whose own
 * thread runs them; with uv_timer_start() on a libuv loop; with
 * g_timeout_source_new() and g_source_attach() on a GMainContext.  All
 * get the same delays.  Rounds alternate the systems (A B C D A B C D
 * ...), so that a drift of the machine touches all alike.  For each run it
 * measures
 *
 *   sched   the scheduling cost: how long the loop that schedules the N
 *           timers took, divided by N (ns per timer); the loop reads the
 *           clock once per timer to note the deadline it checks against;
 *   alone   the same, for the N background timers of "pend" below, whose
 *           loop reads no clock of its own: the systems' calls alone;
 *   total   from the start of that loop until the last timer ran (ms);
 *   lateness of each timer: when its callback ran minus its own deadline,
 *           which is the time just before it was scheduled plus its delay
 *           (ms).  p50 and p99 are over every timer; "p99 due after" only
 *           over the timers due after the scheduling loop ended, because
 *           the ones due while it still ran cannot run before it ends and
 *           are late by however long it took (but for the raw heap, whose
 *           thread runs them meanwhile);
 *   bp      the p99 of the lateness counted from the first breakpoint
 *           after the deadline: a timer due while the loop still
 *           scheduled can run no sooner than the loop's wait begins, so
 *           its lateness counts from there (for the raw heap, whose
 *           thread waits all along, from the deadline);
 *   early   how many timers ran before their deadline;
 *   pend    the p99 lateness of P probe timers (default 10,000, delays
 *           uniform in [0, SPAN]) scheduled after N background timers due
 *           in 1000 s plus the N delays of the burst: the precision of a
 *           loop that holds a million pending timers.  The background
 *           timers are cancelled after.
 *
 * The raw peer is the floor of a timer: an array-backed binary heap of
 * (deadline, index) under a mutex, and one thread that sleeps on a
 * condition variable until the earliest deadline; a schedule that becomes
 * the earliest signals it.  No allocation per timer, no ids, no cancel.
 *
 * libuv and GLib count time in whole milliseconds: each delay is rounded
 * up to the next millisecond for them, and the lateness is still measured
 * against the exact deadline in nanoseconds.  Every system reads the clock
 * once per timer, as libworker does inside worker_later():
 * uv_update_time() before each uv_timer_start(), since libuv would
 * otherwise count every delay from the time cached when the loop last ran;
 * GLib and the raw heap read it when a timer is made.  GLib's main context
 * looks at every source at each iteration, so its cost grows with the
 * number of timers pending.
 *
 * Usage: timers [-n N] [-d SPAN_MS] [-p P] [-r ROUNDS] [-s SEED]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <uv.h>

#include "bench.h"
#include "worker.h"

#define NS_PER_S BENCH_NS_PER_S
#define NS_PER_MS BENCH_NS_PER_MS

/* The delay of the background timers: far beyond any run. */
#define BACKGROUND_S 1000u

/* The metrics of one run, in the order of the summary table. */
enum {
	M_SCHED,	/* ns per timer */
	M_ALONE,	/* ns per background timer */
	M_TOTAL,	/* ms */
	M_P50,		/* ms */
	M_P99,		/* ms */
	M_P99_AFTER,	/* ms */
	M_P99_BP,	/* ms */
	M_EARLY,	/* timers */
	M_PEND,		/* ms */
	M_COUNT
};

/* "after" is the p99 lateness of the timers due after scheduling. */
static const struct bench_metric metrics[M_COUNT] = {
	[M_SCHED] = { "sched ns", "sched ns/timer", " %9.1f", BENCH_LOWER },
	[M_ALONE] = { "alone ns", "sched ns/timer, calls alone", " %9.1f",
	    BENCH_LOWER },
	[M_TOTAL] = { "total ms", "total ms", " %9.1f", BENCH_LOWER },
	[M_P50] = { "p50 ms", "p50 late ms", " %9.3f", BENCH_NONE },
	[M_P99] = { "p99 ms", "p99 late ms", " %9.3f", BENCH_LOWER },
	[M_P99_AFTER] = { "after ms", "p99 after ms", " %9.3f", BENCH_LOWER },
	[M_P99_BP] = { "bp ms", "p99 late from breakpoint ms", " %9.3f",
	    BENCH_LOWER },
	[M_EARLY] = { "early", "early timers", " %9.0f", BENCH_NONE },
	[M_PEND] = { "pend ms", "p99 late ms, N pending", " %9.3f",
	    BENCH_LOWER },
};

enum { SYS_WORKER, SYS_RAW, SYS_UV, SYS_GLIB, SYS_COUNT };
static const char *const systems[SYS_COUNT] = {
	"libworker", "raw heap", "libuv", "glib"
};

/*
 * The state of the current run, shared with the timer callbacks.  All but
 * the raw heap run the callbacks on the thread that scheduled them; the
 * raw heap's thread is the only one to write here while it runs, and the
 * main thread reads after it has been told the last timer ran.
 */
static struct {
	size_t n;		/* timed timers */
	size_t nbg;		/* background timers */
	const uint64_t *delay;	/* ns, the same for every system */
	const uint64_t *bg_delay; /* ns, of the background timers, beyond
				 * BACKGROUND_S */
	uint64_t bg_ns;		/* how long their loop took */
	uint64_t *deadline;	/* ns, CLOCK_MONOTONIC */
	int64_t *late;		/* ns */
	int64_t *bp_late;	/* ns, from the first breakpoint after it */
	size_t fired;
	uint64_t last;		/* when the last timer ran */
	int error;		/* an error in a callback, reported later */
} run;

/*
 * One system: open() before a run, add_bg(j) for each background timer,
 * add(i) for each timed one (its deadline is already in run.deadline[i]),
 * wait() until the last timed one ran, close() to cancel the background
 * timers and free everything.  Each returns 0 or an error number.
 */
struct timer_sys {
	int (*open)(void);
	int (*add_bg)(size_t j);
	int (*add)(size_t i);
	int (*wait)(void);
	int (*close)(void);
};

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
	uint64_t t = bench_now_ns();

	run.late[i] = (int64_t)(t - run.deadline[i]);
	if (++run.fired < run.n)
		return 0;
	run.last = t;
	return 1;
}

/* A background timer never runs during a run. */
static void
background_ran(void)
{
	run.error = EPROTO;
}

/* The delay of timed timer i in whole milliseconds, rounded up. */
static uint64_t
delay_ms(size_t i)
{
	return (run.delay[i] + NS_PER_MS - 1) / NS_PER_MS;
}

/* The same for background timer j, beyond BACKGROUND_S. */
static uint64_t
bg_delay_ms(size_t j)
{
	return (run.bg_delay[j] + NS_PER_MS - 1) / NS_PER_MS;
}

/* ---- libworker ------------------------------------------------------ */

static struct {
	worker_t *self;
	uint64_t *ids;		/* of the background timers */
} lw;

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

static void
on_worker_background(void *arg)
{
	(void)arg;
	background_ran();
}

static int
worker_open(void)
{
	return (lw.self = worker_current()) == NULL ? errno : 0;
}

static int
worker_add_bg(size_t j)
{
	return worker_later(lw.self, on_worker_background, NULL,
	    BACKGROUND_S + (double)run.bg_delay[j] / NS_PER_S, &lw.ids[j]);
}

static int
worker_add(size_t i)
{
	return worker_later(lw.self, on_worker_timer, (void *)(uintptr_t)i,
	    (double)run.delay[i] / NS_PER_S, NULL);
}

/* The timers run in this wait, main's loop. */
static int
worker_run_wait(void)
{
	int rc = worker_wait_event("done", lw.self, BENCH_TIMEOUT, NULL);

	return rc != 0 ? rc : run.error;
}

static int
worker_close(void)
{
	size_t j;
	int rc;

	for (j = 0; j < run.nbg; j++)
		if ((rc = worker_cancel(lw.self, lw.ids[j])) != 0)
			return rc;
	return 0;
}

static const struct timer_sys sys_worker = {
	worker_open, worker_add_bg, worker_add, worker_run_wait, worker_close
};

/* ---- raw heap ------------------------------------------------------- */

/* index NONE: a background timer. */
#define NONE SIZE_MAX

struct raw_timer {
	uint64_t due;
	size_t index;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* CLOCK_MONOTONIC; the thread sleeps on it */
	struct raw_timer *heap;	/* lock */
	size_t len;		/* lock */
	size_t cap;		/* lock */
	int quit;		/* lock */
	pthread_t thread;
	struct bench_latch done;	/* the last timed timer ran */
} rh;

static void
raw_sift_down(void)
{
	struct raw_timer *h = rh.heap, t = h[0];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < rh.len) {
		if (c + 1 < rh.len && h[c + 1].due < h[c].due)
			c++;
		if (t.due <= h[c].due)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = t;
}

/* Schedules index delay_ns from now. */
static int
raw_push(uint64_t delay_ns, size_t index)
{
	struct raw_timer t, *h;
	size_t i;

	pthread_mutex_lock(&rh.lock);
	t.due = bench_now_ns() + delay_ns;
	t.index = index;
	if (rh.len == rh.cap) {
		size_t cap = rh.cap != 0 ? 2 * rh.cap : 1024;

		if ((h = realloc(rh.heap, cap * sizeof(*h))) == NULL) {
			pthread_mutex_unlock(&rh.lock);
			return ENOMEM;
		}
		rh.heap = h;
		rh.cap = cap;
	}
	for (i = rh.len++; i > 0 && rh.heap[(i - 1) / 2].due > t.due;
	    i = (i - 1) / 2)
		rh.heap[i] = rh.heap[(i - 1) / 2];
	rh.heap[i] = t;
	/* Only a new earliest deadline changes how long the thread sleeps. */
	if (i == 0)
		pthread_cond_signal(&rh.cond);
	pthread_mutex_unlock(&rh.lock);
	return 0;
}

static void *
raw_thread(void *arg)
{
	struct timespec ts;
	size_t index;

	(void)arg;
	pthread_mutex_lock(&rh.lock);
	while (!rh.quit) {
		if (rh.len == 0) {
			pthread_cond_wait(&rh.cond, &rh.lock);
			continue;
		}
		if (rh.heap[0].due > bench_now_ns()) {
			ts.tv_sec = (time_t)(rh.heap[0].due / NS_PER_S);
			ts.tv_nsec = (long)(rh.heap[0].due % NS_PER_S);
			pthread_cond_timedwait(&rh.cond, &rh.lock, &ts);
			continue;
		}
		index = rh.heap[0].index;
		rh.heap[0] = rh.heap[--rh.len];
		raw_sift_down();
		pthread_mutex_unlock(&rh.lock);
		if (index == NONE)
			background_ran();
		else if (record(index))
			bench_latch_arrive(&rh.done);
		pthread_mutex_lock(&rh.lock);
	}
	pthread_mutex_unlock(&rh.lock);
	return NULL;
}

static int
raw_open(void)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&rh.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rh.cond, &ca);
	pthread_condattr_destroy(&ca);
	rh.heap = NULL;
	rh.len = rh.cap = 0;
	rh.quit = 0;
	bench_latch_init(&rh.done, 1);
	rh.thread = bench_thread(raw_thread, NULL);
	return 0;
}

static int
raw_add_bg(size_t j)
{
	return raw_push((uint64_t)BACKGROUND_S * NS_PER_S + run.bg_delay[j],
	    NONE);
}

static int
raw_add(size_t i)
{
	return raw_push(run.delay[i], i);
}

static int
raw_wait(void)
{
	if (bench_latch_wait(&rh.done) == 0)
		return ETIMEDOUT;
	return run.error;
}

/* Cancels the background timers the only way this heap can: all. */
static int
raw_close(void)
{
	pthread_mutex_lock(&rh.lock);
	rh.quit = 1;
	rh.len = 0;
	pthread_cond_signal(&rh.cond);
	pthread_mutex_unlock(&rh.lock);
	bench_join(rh.thread);
	free(rh.heap);
	bench_latch_destroy(&rh.done);
	pthread_cond_destroy(&rh.cond);
	pthread_mutex_destroy(&rh.lock);
	return 0;
}

static const struct timer_sys sys_raw = {
	raw_open, raw_add_bg, raw_add, raw_wait, raw_close
};

/* ---- libuv ---------------------------------------------------------- */

/*
 * libuv's handles are the program's memory: two arrays allocated before
 * the first round, for the timed and the background timers.
 */
static struct {
	uv_loop_t loop;
	uv_timer_t *timers;
	uv_timer_t *bg;
	size_t inited;		/* timers[0..inited) */
	size_t bg_inited;	/* bg[0..bg_inited) */
} uv;

static void
on_uv_timer(uv_timer_t *t)
{
	/* The background timers keep the loop alive: stop it. */
	if (record((uintptr_t)t->data))
		uv_stop(t->loop);
}

static void
on_uv_background(uv_timer_t *t)
{
	(void)t;
	background_ran();
}

static int
uv_open(void)
{
	uv.inited = uv.bg_inited = 0;
	return -uv_loop_init(&uv.loop);
}

static int
uv_add_bg(size_t j)
{
	/* Cannot fail: it only links the handle to the loop. */
	uv_update_time(&uv.loop);
	(void)uv_timer_init(&uv.loop, &uv.bg[j]);
	uv.bg_inited++;
	return -uv_timer_start(&uv.bg[j], on_uv_background,
	    (uint64_t)BACKGROUND_S * 1000 + bg_delay_ms(j), 0);
}

static int
uv_add(size_t i)
{
	uv_update_time(&uv.loop);
	(void)uv_timer_init(&uv.loop, &uv.timers[i]);
	uv.inited++;
	uv.timers[i].data = (void *)(uintptr_t)i;
	/* Rounded up: libuv's own rounding down of the loop time can still
	 * make a timer up to a millisecond early. */
	return -uv_timer_start(&uv.timers[i], on_uv_timer, delay_ms(i), 0);
}

static int
uv_run_wait(void)
{
	(void)uv_run(&uv.loop, UV_RUN_DEFAULT);
	return run.fired == run.n ? run.error : EPROTO;
}

/* Outside the measure: a loop closes only when every handle it ever had
 * is closed. */
static int
uv_close_all(void)
{
	while (uv.inited > 0)
		uv_close((uv_handle_t *)&uv.timers[--uv.inited], NULL);
	while (uv.bg_inited > 0)
		uv_close((uv_handle_t *)&uv.bg[--uv.bg_inited], NULL);
	(void)uv_run(&uv.loop, UV_RUN_DEFAULT);
	return uv_loop_close(&uv.loop) != 0 ? EBUSY : 0;
}

static const struct timer_sys sys_uv = {
	uv_open, uv_add_bg, uv_add, uv_run_wait, uv_close_all
};

/* ---- GLib ----------------------------------------------------------- */

static struct {
	GMainContext *ctx;
	GSource **bg;		/* the background timers, referenced */
} gl;

static gboolean
on_glib_timer(gpointer data)
{
	(void)record((uintptr_t)data);
	return G_SOURCE_REMOVE;
}

static gboolean
on_glib_background(gpointer data)
{
	(void)data;
	background_ran();
	return G_SOURCE_REMOVE;
}

static int
glib_open(void)
{
	gl.ctx = g_main_context_new();
	return 0;
}

/* GLib aborts rather than fail for want of memory. */
static GSource *
glib_timeout(uint64_t ms, GSourceFunc fn, gpointer data)
{
	GSource *s = g_timeout_source_new((guint)ms);

	g_source_set_callback(s, fn, data, NULL);
	g_source_attach(s, gl.ctx);
	return s;
}

static int
glib_add_bg(size_t j)
{
	gl.bg[j] = glib_timeout((uint64_t)BACKGROUND_S * 1000 + bg_delay_ms(j),
	    on_glib_background, NULL);
	return 0;
}

static int
glib_add(size_t i)
{
	/* The context holds the source until it ran. */
	g_source_unref(glib_timeout(delay_ms(i), on_glib_timer,
	    (gpointer)(uintptr_t)i));
	return 0;
}

static int
glib_wait(void)
{
	uint64_t give_up = bench_now_ns() +
	    (uint64_t)(BENCH_TIMEOUT * NS_PER_S);

	while (run.fired < run.n && run.error == 0 &&
	    bench_now_ns() < give_up)
		g_main_context_iteration(gl.ctx, TRUE);
	return run.fired == run.n ? run.error : ETIMEDOUT;
}

static int
glib_close(void)
{
	size_t j;

	for (j = 0; j < run.nbg; j++) {
		g_source_destroy(gl.bg[j]);
		g_source_unref(gl.bg[j]);
	}
	g_main_context_unref(gl.ctx);
	return 0;
}

static const struct timer_sys sys_glib = {
	glib_open, glib_add_bg, glib_add, glib_wait, glib_close
};

static const struct timer_sys *const sys_ops[SYS_COUNT] = {
	[SYS_WORKER] = &sys_worker,
	[SYS_RAW] = &sys_raw,
	[SYS_UV] = &sys_uv,
	[SYS_GLIB] = &sys_glib,
};

/*
 * One run of s: nbg background timers, then the run.n timed ones.
 * Returns 0 or an error number; *t0 and *t1 get the start and the end of
 * the loop that schedules the timed timers.
 */
static int
timed_run(const struct timer_sys *s, size_t nbg, uint64_t *t0, uint64_t *t1)
{
	size_t i;
	int rc, rc2;

	run.fired = 0;
	run.error = 0;
	run.nbg = 0;
	if ((rc = s->open()) != 0)
		return rc;
	*t0 = bench_now_ns();
	for (i = 0; i < nbg && rc == 0; i++)
		if ((rc = s->add_bg(i)) == 0)
			run.nbg++;
	run.bg_ns = bench_now_ns() - *t0;
	*t0 = bench_now_ns();
	for (i = 0; i < run.n && rc == 0; i++) {
		run.deadline[i] = bench_now_ns() + run.delay[i];
		rc = s->add(i);
	}
	*t1 = bench_now_ns();
	if (rc == 0)
		rc = s->wait();
	rc2 = s->close();
	return rc != 0 ? rc : rc2;
}

/* ---- statistics ----------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

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

/*
 * Fills m[] from the burst run that scheduled between t0 and t1; the
 * system's loop waited from bp on (t1, or t0 for the raw heap's thread).
 */
static void
measure(uint64_t t0, uint64_t t1, uint64_t bp, double m[M_COUNT])
{
	size_t i, after = 0, early = 0;

	for (i = 0; i < run.n; i++)
		run.bp_late[i] = run.late[i] - (run.deadline[i] < bp ?
		    (int64_t)(bp - run.deadline[i]) : 0);
	qsort(run.bp_late, run.n, sizeof(*run.bp_late), cmp_i64);
	m[M_P99_BP] = (double)percentile(run.bp_late, run.n, 990) /
	    NS_PER_MS;

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

static void
fill_delays(uint64_t *d, size_t n, uint64_t span, uint64_t state)
{
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = next_random(&state) % (span + 1);
}

struct config {
	unsigned long n;
	unsigned long span_ms;	/* delays in [0, span_ms] */
	unsigned long probes;
	unsigned long seed;
	uint64_t *burst;	/* the round's delays of the N timers */
	uint64_t *probe;	/* the round's delays of the probes */
};

/* One run of system sys: the N timers, then the probes with N pending. */
static void
run_sys(int round, int sys, double *m, void *ctx)
{
	struct config *cf = ctx;
	uint64_t t0, t1;
	int rc;

	/* New delays each round, the same for every system. */
	if (sys == 0) {
		uint64_t span = (uint64_t)cf->span_ms * NS_PER_MS;

		fill_delays(cf->burst, cf->n, span,
		    cf->seed + (uint64_t)round * 0x100000001u);
		fill_delays(cf->probe, cf->probes, span,
		    ~cf->seed - (uint64_t)round);
	}
	run.n = cf->n;
	run.delay = cf->burst;
	if ((rc = timed_run(sys_ops[sys], 0, &t0, &t1)) != 0)
		bench_die(systems[sys], rc);
	measure(t0, t1, sys == SYS_RAW ? t0 : t1, m);

	run.n = cf->probes;
	run.delay = cf->probe;
	run.bg_delay = cf->burst;
	if ((rc = timed_run(sys_ops[sys], cf->n, &t0, &t1)) != 0)
		bench_die(systems[sys], rc);
	m[M_ALONE] = (double)run.bg_ns / (double)cf->n;
	qsort(run.late, run.n, sizeof(*run.late), cmp_i64);
	m[M_PEND] = (double)percentile(run.late, run.n, 990) / NS_PER_MS;
}

/* The rows of the final table, for the configuration cf. */
static void
print_targets(const struct bench_table *t, const struct config *cf)
{
	static const int raw[] = { SYS_RAW }, uv[] = { SYS_UV };
	static const int others[] = { SYS_RAW, SYS_UV, SYS_GLIB };
	double pend = bench_median_of(t, SYS_WORKER, M_PEND);
	double bp = bench_median_of(t, SYS_WORKER, M_P99_BP);
	char row[96], nb[32], span[64];

	bench_fmt(nb, sizeof(nb), (double)cf->n);
	if (cf->span_ms % 1000 == 0)
		snprintf(span, sizeof(span), "%s/%lus", nb,
		    cf->span_ms / 1000);
	else
		snprintf(span, sizeof(span), "%s/%lums", nb, cf->span_ms);
	snprintf(row, sizeof(row), "timer sched vs raw, %s, ns", nb);
	bench_target_ratio(t, row, M_SCHED, raw, 1, 1.2);
	/* Half the cost of uv_timer_start(): a ratio of at most 0.5. */
	snprintf(row, sizeof(row), "timer sched vs libuv, %s, ns", nb);
	bench_target_ratio(t, row, M_SCHED, uv, 1, 0.5);
	snprintf(row, sizeof(row), "timer calls alone vs libuv, %s, ns", nb);
	bench_target_ratio(t, row, M_ALONE, uv, 1, 0.5);
	snprintf(row, sizeof(row), "timer p99 from bp, %s, ms", span);
	bench_target_peer(t, row, NULL, bench_best(t, others, 3, M_P99_BP),
	    M_P99_BP, "<= 1 ms", bp <= 1.0);
	snprintf(row, sizeof(row), "timer p99 late, %s pend, ms", nb);
	bench_target_peer(t, row, NULL, bench_best(t, others, 3, M_PEND),
	    M_PEND, "<= 1 ms", pend <= 1.0);
}

/* Plays every round of configuration cf, prints its summary and rows. */
static void
play(struct config *cf, unsigned long rounds)
{
	struct bench_table t;
	size_t most = cf->n > cf->probes ? cf->n : cf->probes;
	char title[128];

	cf->burst = calloc(cf->n, sizeof(*cf->burst));
	cf->probe = calloc(cf->probes, sizeof(*cf->probe));
	run.deadline = calloc(most, sizeof(*run.deadline));
	run.late = calloc(most, sizeof(*run.late));
	run.bp_late = calloc(most, sizeof(*run.bp_late));
	lw.ids = calloc(cf->n, sizeof(*lw.ids));
	uv.timers = calloc(most, sizeof(*uv.timers));
	uv.bg = calloc(cf->n, sizeof(*uv.bg));
	gl.bg = calloc(cf->n, sizeof(*gl.bg));
	snprintf(title, sizeof(title), "timers, N = %lu in [0, %lu] ms, pend: "
	    "%lu probes with N pending", cf->n, cf->span_ms, cf->probes);
	if (cf->burst == NULL || cf->probe == NULL || run.deadline == NULL ||
	    run.late == NULL || run.bp_late == NULL || lw.ids == NULL ||
	    uv.timers == NULL || uv.bg == NULL || gl.bg == NULL ||
	    bench_table_init(&t, title, systems, SYS_COUNT, metrics, M_COUNT,
	    (int)rounds) != 0)
		bench_die("timers", ENOMEM);
	/* Fault the measuring arrays in now, so that the first run does
	 * not pay for them.  Not libuv's handles: the memory behind them is
	 * the program's to provide, as libworker's timers are libworker's,
	 * so in the first round both pay for their first touch. */
	prefault(run.deadline, most * sizeof(*run.deadline));
	prefault(run.late, most * sizeof(*run.late));
	prefault(run.bp_late, most * sizeof(*run.bp_late));

	bench_play(&t, run_sys, cf);
	print_targets(&t, cf);

	bench_table_free(&t);
	free(gl.bg);
	free(uv.bg);
	free(uv.timers);
	free(lw.ids);
	free(run.bp_late);
	free(run.late);
	free(run.deadline);
	free(cf->probe);
	free(cf->burst);
}

int
main(int argc, char **argv)
{
	/* The two: 100,000 timers over 100 ms, a million over 1 s. */
	struct config cfs[2] = {
		{ .n = 100000, .span_ms = 100, .probes = 10000, .seed = 1 },
		{ .n = 1000000, .span_ms = 1000, .probes = 10000, .seed = 1 },
	};
	struct config one = { .n = 0, .span_ms = 0, .probes = 10000,
	    .seed = 1 };
	unsigned long rounds = 5, n = 0, span = 0;
	int c, ncfg = 2;

	bench_options(argc, argv, "timers [-n N] [-d SPAN_MS] [-p P] "
	    "[-r ROUNDS] [-s SEED]",
	    (const struct bench_opt[]){ { 'n', &n, 100000000 },
	    { 'd', &span, 1000000 }, { 'p', &one.probes, 100000000 },
	    { 'r', &rounds, 1000 }, { 's', &one.seed, (unsigned long)-1 } },
	    5);
	/* -n or -d: that one configuration (the other taken from 1 s). */
	if (n != 0 || span != 0) {
		one.n = n != 0 ? n : 1000000;
		one.span_ms = span != 0 ? span : 1000;
		cfs[0] = one;
		ncfg = 1;
	}
	for (c = 0; c < ncfg; c++) {
		cfs[c].probes = one.probes;
		cfs[c].seed = one.seed;
	}
	printf("timers: %d configuration(s), %lu rounds each, seed %lu\n"
	    "libworker %s, libuv %s, GLib %u.%u.%u\n", ncfg, rounds,
	    one.seed, worker_version(), uv_version_string(),
	    glib_major_version, glib_minor_version, glib_micro_version);
	for (c = 0; c < ncfg; c++)
		play(&cfs[c], rounds);
	printf("\n");
	return 0;
}
