/*
 * stats.c - worker_stats(): what a worker has done and is doing now.
 *
 * DESIGN: the counters are the owner's (stats.h), read here with relaxed
 * loads: each field is whole, the fields together are not one instant.
 * What is counted elsewhere is read from where it lives: the queue
 * (send.c), the timers' count under qlock, the watches', and the
 * restarts (supervise.c).  "doing" is the owner's record (internal.h) in
 * short words, the same words worker_dump_json() and worker-top show.
 */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

/* The run state in one word: new, running, paused, ending, ended, root. */
const char *
worker__state_name(worker_t *w)
{
	int phase;
	unsigned starts;

	if (w->is_root)
		return worker__running(w) ? "root" : "ended";
	pthread_mutex_lock(&w->qlock);
	phase = w->phase;
	starts = w->run.starts;
	pthread_mutex_unlock(&w->qlock);
	switch (phase) {
	case PHASE_RUNNING:
		return atomic_load(&w->loop.paused) ? "paused" : "running";
	case PHASE_ENDING:
		return "ending";
	default:
		return starts == 0 ? "new" : "ended";
	}
}

static const char *
wait_word(unsigned call)
{
	static const char *const words[] = {
		[WAIT_CALL_LOOP] = "breakpoint",
		[WAIT_CALL_EVENT] = "wait_event",
		[WAIT_CALL_UNTIL] = "wait_until",
		[WAIT_CALL_SLEEP] = "sleep",
		[WAIT_CALL_FOREVER] = "wait_forever",
		[WAIT_CALL_UPDATE] = "update",
		[WAIT_CALL_THREAD] = "wait_thread",
		[WAIT_CALL_DEFER] = "defer_get",
		[WAIT_CALL_CHILDREN] = "ending children",
		[WAIT_CALL_PAUSE] = "paused",
	};

	return call < sizeof(words) / sizeof(words[0]) && words[call] != NULL ?
	    words[call] : words[WAIT_CALL_LOOP];
}

/* Is the owner outside its breakpoints, running code of its user? */
static bool
busy(unsigned doing)
{
	switch (doing & 0xff) {
	case DOING_TASK:
	case DOING_LISTENER:
	case DOING_TIMER:
	case DOING_WATCH:
	case DOING_ENDING:
		return true;
	default:
		return false;
	}
}

static void
doing_word(worker_t *w, unsigned doing, char *buf, size_t size)
{
	char name[40];
	const char *word;

	switch (doing & 0xff) {
	case DOING_TASK:
		word = "task";
		break;
	case DOING_WAIT:
		word = wait_word(doing >> 8);
		break;
	case DOING_LISTENER:
		snprintf(buf, size, "listener %s",
		    worker__listening_to(w, name, sizeof(name)));
		return;
	case DOING_TIMER:
		word = "timer";
		break;
	case DOING_WATCH:
		word = "watch";
		break;
	case DOING_PAUSED:
		word = "paused";
		break;
	case DOING_STOPPING:
		word = "ending children";
		break;
	case DOING_ENDING:
		word = "ending";
		break;
	default:
		/* A root runs its thread's code between its waits. */
		word = w->is_root && worker__running(w) ? "task" :
		    worker__state_name(w);
		break;
	}
	snprintf(buf, size, "%s", word);
}

static double
since_breakpoint(const worker_t *w, unsigned doing)
{
	uint64_t since = atomic_load_explicit(&w->stats.busy_since,
	    memory_order_relaxed);
	uint64_t now;

	if (since == 0 || !(busy(doing) ||
	    ((doing & 0xff) == DOING_IDLE && w->is_root)))
		return 0;
	now = worker__now_ns();
	return now > since ? (double)(now - since) / 1e9 : 0;
}

static uint64_t
load(const atomic_uint_least64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int
worker_stats(const worker_t *cw, worker_stats_t *st)
{
	worker_t *w = (worker_t *)cw;
	unsigned doing;

	if (w == NULL || st == NULL)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	worker__timing_on();
	memset(st, 0, sizeof(*st));
	st->handled = load(&w->stats.handled);
	st->queued = worker__queued(w);
	st->queued_max = load(&w->stats.queued_max);
	if (st->queued > st->queued_max)
		st->queued_max = st->queued;
	st->rejected = load(&w->stats.rejected);
	st->listener_errors = load(&w->stats.listener_errors);
	st->restarts = load(&w->sup.restarts);
	pthread_mutex_lock(&w->qlock);
	st->timers = w->timers.count;
	pthread_mutex_unlock(&w->qlock);
	st->watches = atomic_load_explicit(&w->watches.count,
	    memory_order_relaxed);
	st->listener_ns = load(&w->stats.listener_ns);
	st->listener_max_ns = load(&w->stats.listener_max_ns);
	doing = atomic_load_explicit(&w->doing, memory_order_relaxed);
	st->since_breakpoint = since_breakpoint(w, doing);
	doing_word(w, doing, st->doing, sizeof(st->doing));
	return 0;
}
