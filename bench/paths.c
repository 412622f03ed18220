/*
 * paths.c - one path of libworker at a time, on one thread, for
 * callgrind's instruction counts: noise-free where the timed benchmarks
 * are not.  Not a benchmark of its own: "make bench" does not run it
 * ("make -C bench paths" builds it).
 *
 *   events   a worker fires N events at itself, 64 at a time, and
 *            handles them with worker_update(): fire and handling, per
 *            event, through the ring (it has its ring before the count)
 *   later    N worker_later() on the calling thread's worker
 *   run      running those N timers (in one worker_sleep())
 *   rearm    N worker_rearm() of one timer
 *   spawn    N cycles of worker_new(), worker_listen(), worker_start(),
 *            worker_stop(), worker_join(), worker_unref(); the worker's
 *            own thread counts too
 *
 * Each is a function of its own, to toggle callgrind's collection on (a
 * warm-up before it, outside it, is not counted):
 *
 *   valgrind --tool=callgrind --toggle-collect=path_events ./paths events
 *   valgrind --tool=callgrind --toggle-collect=path_later \
 *       --toggle-collect=path_run ./paths timers
 *   valgrind --tool=callgrind --toggle-collect=path_rearm ./paths rearm
 *   valgrind --tool=callgrind --toggle-collect=path_spawn \
 *       --toggle-collect=thread_main ./paths spawn
 *   callgrind_annotate --inclusive=yes callgrind.out.PID | grep path_
 *
 * and the count of a path divided by N is its cost per event, timer or
 * cycle.  The delays of the timers are spread over 100 ms, as in the
 * timers bench.
 *
 * Usage: paths events|timers|rearm|spawn [-n N]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "worker.h"

static unsigned long handled, ran;

static int
on_item(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	handled++;
	return 0;
}

static void
timer_cb(void *arg)
{
	(void)arg;
	ran++;
}

static void
check(const char *what, int rc)
{
	if (rc != 0)
		bench_die(what, rc);
}

static void
events(worker_t *self, unsigned long n)
{
	for (unsigned long k = 0; k < n / 64; k++) {
		for (int i = 0; i < 64; i++)
			check("worker_fire", worker_fire(self, "item", NULL));
		(void)worker_update();
	}
}

__attribute__((noinline)) void
path_events(worker_t *self, unsigned long n)
{
	events(self, n);
}

__attribute__((noinline)) void
path_later(worker_t *self, unsigned long n)
{
	uint64_t x = 1;

	for (unsigned long i = 0; i < n; i++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		check("worker_later", worker_later(self, timer_cb, NULL,
		    (double)(x >> 33 & 0xfffffff) / (0xfffffff * 10.0),
		    NULL));
	}
}

__attribute__((noinline)) void
path_run(void)
{
	check("worker_sleep", worker_sleep(0.11));
}

__attribute__((noinline)) void
path_rearm(worker_t *self, uint64_t id, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		check("worker_rearm", worker_rearm(self, id, 1.0));
}

static int
on_stop(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static void
spawns(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		worker_t *w = worker_new(NULL, NULL, NULL);

		if (w == NULL)
			bench_die("worker_new", errno);
		check("worker_listen", worker_listen(w, WORKER_STOP_THREAD,
		    on_stop, NULL, NULL));
		check("worker_start", worker_start(w));
		check("worker_stop", worker_stop(w));
		check("worker_join", worker_join(w));
		worker_unref(w);
	}
}

__attribute__((noinline)) void
path_spawn(unsigned long n)
{
	spawns(n);
}

int
main(int argc, char **argv)
{
	unsigned long n = 0;
	worker_t *self = worker_current();
	const char *what = argc > 1 ? argv[1] : "";
	uint64_t id;

	if (self == NULL)
		bench_die("worker_current", errno);
	bench_options(argc - 1, argv + 1, "paths events|timers|rearm|spawn "
	    "[-n N]", (const struct bench_opt[]){ { 'n', &n, 100000000 } },
	    1);
	check("worker_listen", worker_listen(self, "item", on_item, NULL,
	    NULL));
	if (strcmp(what, "events") == 0) {
		/* Its ring first: the count is of the ring's path. */
		events(self, 6400);
		path_events(self, n != 0 ? n : 128000);
	} else if (strcmp(what, "timers") == 0) {
		path_later(self, n != 0 ? n : 100000);
		path_run();
	} else if (strcmp(what, "rearm") == 0) {
		check("worker_later", worker_later(self, timer_cb, NULL, 1.0,
		    &id));
		path_rearm(self, id, n != 0 ? n : 100000);
		check("worker_cancel", worker_cancel(self, id));
	} else if (strcmp(what, "spawn") == 0) {
		spawns(100);
		path_spawn(n != 0 ? n : 1000);
	} else {
		fprintf(stderr, "usage: paths events|timers|rearm|spawn "
		    "[-n N]\n");
		return 1;
	}
	printf("paths %s: %lu events, %lu timers ran\n", what, handled, ran);
	return 0;
}
