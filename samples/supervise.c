/*
 * supervise.c - a supervision tree: crashed workers come back, too many
 * crashes go up a level, and a shutdown that reports who is stuck.
 *
 * The tree, Erlang style:
 *
 *   top (ONE_FOR_ONE, at most 10 restarts in 5 s)
 *     flaky   PERMANENT: crashes at random (its first few runs), and
 *             comes back each time
 *     once    TRANSIENT: fails on its first run, returns on its second,
 *             and is not restarted after a clean return
 *     middle  TRANSIENT supervisor (at most 2 restarts in 5 s)
 *       doomed  PERMANENT: fails on each of its first 3 runs
 *
 *   sleepy  a top-level worker that sits outside any breakpoint for a
 *           while, so worker_shutdown() reports it stuck
 *
 * doomed fails 3 times in a row: middle restarts it twice, then gives up
 * and fails with ECHILD, and top restarts middle, whose new doomed then
 * runs for good.  A listener of top's says which child failed; main waits
 * until everything has settled, and ends it all with
 * worker_shutdown(), which reports sleepy as stuck and leaves it; main
 * then waits for sleepy to see its stop and end.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker.h"

#define FLAKY_RUNS 4	/* main waits until flaky has run this often */
#define SLEEPY_SECONDS 1.5

static atomic_int flaky_runs, once_runs, doomed_runs, middles;

/* Sleeps outside any breakpoint, as blocking work would. */
static void
block_for(double seconds)
{
	struct timespec ts = { (time_t)seconds,
		(long)((seconds - (time_t)seconds) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void *
flaky(void *arg)
{
	int run = atomic_fetch_add(&flaky_runs, 1) + 1;
	unsigned seed = (unsigned)(uintptr_t)arg + (unsigned)run;

	/* Ticks of work, and now and then a crash, until it has had its
	 * share: more than top's 10 restarts in 5 s would take top down. */
	for (;;) {
		if (worker_sleep(0.01) != 0)
			return NULL;
		if (run < FLAKY_RUNS && rand_r(&seed) % 8 == 0)
			worker_fail(EIO);
	}
}

static void *
once(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&once_runs, 1) == 0)
		worker_fail(EAGAIN);
	return NULL;		/* a clean return: TRANSIENT stays down */
}

static void *
doomed(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&doomed_runs, 1) < 3)
		worker_fail(EIO);
	worker_wait_forever();
	return NULL;
}

static void
drop(void *w)
{
	worker_unref(w);
}

/* Makes a child of the calling worker, dropped when the caller unwinds. */
static void
child(worker_fn fn, void *arg, const char *name, int restart)
{
	worker_t *c = worker_create(fn, arg, &(worker_attr_t){
		.name = name, .restart = restart, .quiet = 1 });

	if (c == NULL || worker_cleanup_push(drop, c) != 0) {
		worker_unref(c);
		worker_fail(errno != 0 ? errno : ENOMEM);
	}
}

static void *
middle(void *arg)
{
	(void)arg;
	atomic_fetch_add(&middles, 1);
	child(doomed, NULL, "doomed", WORKER_RESTART_PERMANENT);
	worker_wait_forever();
	return NULL;
}

static void *
top(void *arg)
{
	worker_t *m;

	child(flaky, arg, "flaky", WORKER_RESTART_PERMANENT);
	child(once, NULL, "once", WORKER_RESTART_TRANSIENT);
	m = worker_create(middle, NULL, &(worker_attr_t){ .name = "middle",
	    .restart = WORKER_RESTART_TRANSIENT, .restart_max = 2,
	    .quiet = 1 });
	if (m == NULL || worker_cleanup_push(drop, m) != 0) {
		worker_unref(m);
		worker_fail(ENOMEM);
	}
	worker_wait_forever();
	return NULL;
}

static void *
sleepy(void *arg)
{
	(void)arg;
	block_for(SLEEPY_SECONDS);
	worker_wait_forever();	/* its stop is waiting here */
	return NULL;
}

/* top's failing children, said by a listener in top's own thread. */
static int
on_child(const worker_event_t *ev, void *ctx)
{
	(void)ctx;
	if (strcmp(ev->name, WORKER_CHILD_THREAD_ERROR) == 0)
		printf("  %s failed: %s\n", worker_name(ev->source),
		    strerror((int)(intptr_t)ev->data));
	return 0;
}

static int
settled(void)
{
	return atomic_load(&flaky_runs) >= FLAKY_RUNS &&
	    atomic_load(&once_runs) == 2 && atomic_load(&doomed_runs) >= 4;
}

int
main(void)
{
	worker_t *t, *s;
	int rc;

	t = worker_new(top, (void *)(uintptr_t)time(NULL), &(worker_attr_t){
		.name = "top", .restart_max = 10 });
	s = worker_create(sleepy, NULL, &(worker_attr_t){ .name = "sleepy" });
	if (t == NULL || s == NULL) {
		perror("supervise: worker_new");
		return 1;
	}
	worker_listen(t, WORKER_CHILD_THREAD_ERROR, on_child, NULL, NULL);
	if ((rc = worker_start(t)) != 0) {
		fprintf(stderr, "supervise: worker_start: %s\n",
		    strerror(rc));
		return 1;
	}
	for (int i = 0; i < 1000 && !settled(); i++)
		worker_sleep(0.01);
	printf("flaky ran %d times, once %d, middle %d, doomed %d\n",
	    atomic_load(&flaky_runs), atomic_load(&once_runs),
	    atomic_load(&middles), atomic_load(&doomed_runs));

	rc = worker_shutdown(0.2);
	printf("worker_shutdown: %s\n", rc == 0 ? "all ended" :
	    rc == ETIMEDOUT ? "ETIMEDOUT, a worker is stuck" : strerror(rc));
	/* sleepy ends once it reaches its breakpoint. */
	worker_join(s);
	printf("sleepy ended after all; top %s\n",
	    worker_is_running(t) ? "runs" : "ended");
	worker_unref(s);
	worker_unref(t);
	return settled() && rc == ETIMEDOUT ? 0 : 1;
}
