/*
 * stats.h - the counters of worker_stats(), as the owner keeps them.
 *
 * DESIGN
 *
 * Every counter has one writer: the owner thread, with a relaxed load
 * and a relaxed store (a plain mov on the machines we run on), so the
 * event path pays no lock and no read-modify-write.  Only rejected is
 * added to by senders, on the path of a refusal.  Any thread reads them,
 * each field whole.
 *
 * Time in listeners is measured per "span": a run of at most
 * STATS_SPAN_MAX events handled back to back, with one clock read at
 * each end.  A precise clock read costs about a quarter of an event, so
 * one per event would cost far more than the 3 % the statistics may
 * take; per span it costs a sixteenth of that, and a worker that handles
 * one event per wake (where the read matters least, since it had nothing
 * else to do) is still timed event by event.  listener_max_ns is the
 * longest span, so a call shorter than its span shows as the span.
 *
 * busy_since is when the owner last left a breakpoint: for its task, a
 * callback, or a span of events.  Stamps that may come once per event of
 * a task's wait use the coarse clock (a few milliseconds of precision is
 * plenty for "seconds outside a breakpoint").
 *
 * Even so, the clock reads cost a ping-pong several per cent: they begin
 * with the first look at any worker (clock.c), so that a process that
 * never looks pays for the counters alone.
 *
 * WORKER_STATS=0 compiles the counting out, for the benchmark that
 * measures what it costs (bench/README); worker_stats() then reads zeros.
 */
#ifndef WORKER_STATS_H
#define WORKER_STATS_H

#ifndef WORKER_STATS
#define WORKER_STATS 1
#endif

#define STATS_SPAN_MAX 16

static inline void
worker__stats_init(struct worker__stats_part *s)
{
	atomic_init(&s->handled, 0);
	atomic_init(&s->queued_max, 0);
	atomic_init(&s->listener_errors, 0);
	atomic_init(&s->listener_ns, 0);
	atomic_init(&s->listener_max_ns, 0);
	atomic_init(&s->busy_since, 0);
	s->span_start = 0;
	s->span_events = 0;
	atomic_init(&s->rejected, 0);
}

/* Owner only: c += n without a read-modify-write. */
static inline void
worker__stats_add(atomic_uint_least64_t *c, uint64_t n)
{
#if WORKER_STATS
	atomic_store_explicit(c, atomic_load_explicit(c,
	    memory_order_relaxed) + n, memory_order_relaxed);
#else
	(void)c;
	(void)n;
#endif
}

/* Owner only: the owner leaves a breakpoint now, by the coarse clock. */
static inline void
worker__stats_busy(worker_t *w)
{
#if WORKER_STATS
	if (!atomic_load_explicit(&worker__timing, memory_order_relaxed))
		return;
	atomic_store_explicit(&w->stats.busy_since, worker__coarse_ns(),
	    memory_order_relaxed);
#else
	(void)w;
#endif
}

/* Owner: a run begins with its task; a span the last run's unwinding
 * left open is over. */
static inline void
worker__stats_run(worker_t *w)
{
	w->stats.span_start = 0;
	worker__stats_busy(w);
}

/* Owner: a span begins, unless one is under way. */
static inline void
worker__stats_span_begin(worker_t *w)
{
#if WORKER_STATS
	struct worker__stats_part *s = &w->stats;

	if (s->span_start != 0 ||
	    !atomic_load_explicit(&worker__timing, memory_order_relaxed))
		return;
	s->span_start = worker__now_ns();
	s->span_events = 0;
	atomic_store_explicit(&s->busy_since, s->span_start,
	    memory_order_relaxed);
#else
	(void)w;
#endif
}

/* Owner: the span under way, if any, ends now. */
static inline void
worker__stats_span_end(worker_t *w)
{
#if WORKER_STATS
	struct worker__stats_part *s = &w->stats;
	uint64_t now, took;

	if (s->span_start == 0)
		return;
	now = worker__now_ns();
	took = now > s->span_start ? now - s->span_start : 0;
	s->span_start = 0;
	worker__stats_add(&s->listener_ns, took);
	if (took > atomic_load_explicit(&s->listener_max_ns,
	    memory_order_relaxed))
		atomic_store_explicit(&s->listener_max_ns, took,
		    memory_order_relaxed);
	atomic_store_explicit(&s->busy_since, now, memory_order_relaxed);
#else
	(void)w;
#endif
}

/*
 * Owner, as it hands an event to the listeners.  Counted before, so that
 * an event that unwinds the worker (STOP_THREAD) counts too, and a
 * listener sees its own event counted.
 */
static inline void
worker__stats_handing(worker_t *w)
{
	worker__stats_add(&w->stats.handled, 1);
	worker__stats_span_begin(w);
}

/* Owner, once the listeners returned: a full span ends. */
static inline void
worker__stats_handed(worker_t *w)
{
#if WORKER_STATS
	if (++w->stats.span_events >= STATS_SPAN_MAX)
		worker__stats_span_end(w);
#else
	(void)w;
#endif
}

/* Owner, as it takes a batch: queued is how many wait now. */
static inline void
worker__stats_queued(worker_t *w, size_t (*queued)(const worker_t *))
{
#if WORKER_STATS
	uint64_t n = queued(w);

	if (n > atomic_load_explicit(&w->stats.queued_max,
	    memory_order_relaxed))
		atomic_store_explicit(&w->stats.queued_max, n,
		    memory_order_relaxed);
#else
	(void)w;
	(void)queued;
#endif
}

/* Any thread: a fire at w was refused. */
static inline void
worker__stats_rejected(worker_t *w)
{
#if WORKER_STATS
	atomic_fetch_add_explicit(&w->stats.rejected, 1,
	    memory_order_relaxed);
#else
	(void)w;
#endif
}

#endif
