/*
 * clock.c - the switch of the statistics' clock reads (clock.h).
 *
 * DESIGN: timing listeners and stamping "since when" cost clock reads on
 * every event's path, a fifth of an event in a ping-pong.  A process that
 * never looks at its workers should not pay for them, so the reads start
 * with the first look (worker_stats(), worker_dump_json(),
 * worker_inspect()) and go on from then: a daemon that serves an
 * inspector from its start is timed from its start.
 */
#include "internal.h"

atomic_bool worker__timing;

/* Someone looks: time from now on. */
void
worker__timing_on(void)
{
	if (!atomic_load_explicit(&worker__timing, memory_order_relaxed))
		atomic_store_explicit(&worker__timing, true,
		    memory_order_relaxed);
}
