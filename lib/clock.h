/*
 * clock.h - the one clock of libworker: CLOCK_MONOTONIC in nanoseconds.
 *
 * DESIGN: every deadline (waits, timers, the spin before a sleep) is a
 * uint64_t of CLOCK_MONOTONIC nanoseconds, UINT64_MAX meaning none, so a
 * wall-clock change never fires a timer early or stretches a wait.  A
 * deadline is rounded up: nothing happens early.
 */
#ifndef WORKER_CLOCK_H
#define WORKER_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds accepted as a time; beyond this (about 95 years), "forever". */
#define WORKER_SECONDS_MAX 3e9

static inline uint64_t
worker__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The clock of the scheduler's tick: a few nanoseconds to read where
 * worker__now_ns() takes twenty, a few milliseconds coarse, and never
 * ahead of worker__now_ns().  For the statistics' "since when" stamps,
 * which count in seconds, on paths a task may run per event.
 */
static inline uint64_t
worker__coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timespec
worker__timespec(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u)
	};

	return ts;
}

/*
 * Seconds (0 to WORKER_SECONDS_MAX) as nanoseconds, rounded up: without
 * ceil(), so the library needs no libm whatever the compiler inlines.
 */
static inline uint64_t
worker__ns_up(double seconds)
{
	double ns = seconds * 1e9;
	uint64_t n = (uint64_t)ns;

	return n + ((double)n < ns);
}

/* now + seconds, rounded up; a century is as good as forever. */
static inline uint64_t
worker__deadline_ns(double seconds)
{
	if (seconds > WORKER_SECONDS_MAX)
		seconds = WORKER_SECONDS_MAX;
	return worker__now_ns() + worker__ns_up(seconds);
}

#endif
