/*
 * timer.c - worker_later(), worker_every(), worker_cancel(): timers that
 * run in the worker's own loop.
 *
 * DESIGN
 *
 * Each worker keeps its timers in a min-heap (heap.h) ordered by
 * (deadline, sequence), so equal deadlines run in the order they were
 * scheduled, and in a small chained hash table from id to timer, so a
 * cancel finds its timer in O(1) and removes it in O(log n).  No thread
 * per timer: the loop (loop.c) runs the due timers between batches of
 * events and sleeps no longer than the nearest deadline, which wake.c
 * keeps (w->wake.next_due) so the loop can look without the lock.
 * A round of due timers yields to queued events every TIMER_ROUND
 * timers: a thread that schedules timers faster than the worker runs them
 * must not keep STOP_THREAD or any other event waiting behind them.
 *
 * Any thread may schedule or cancel, so heap and table are guarded by
 * w->qlock.  The owner takes a due timer out of the heap under the lock
 * and calls it without: a one-shot leaves the table too, so a cancel from
 * then on answers ENOENT; a periodic timer stays in the table marked
 * running, and a cancel during its call only marks it cancelled, leaving
 * the free to the owner when the call returns.  If the call unwinds (the
 * callback exits the worker), a hook frees the timer.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (clock.h).  A deadline is rounded
 * up, so a timer never runs early.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Due timers run before queued events get their turn again. */
enum { TIMER_ROUND = 64 };

struct timer {
	struct heap_node hn;	/* hn.key: the deadline */
	struct timer *hnext;	/* chain in the id table */
	uint64_t id;
	uint64_t interval;	/* 0 for a one-shot */
	void (*fn)(void *);
	void *arg;
	bool running;		/* a periodic timer in its callback */
	bool cancelled;		/* cancelled while running */
};

#define timer_of(n) container_of(n, struct timer, hn)

static atomic_uint_least64_t next_timer_id = 1;

void
worker__timers_init(struct worker__timer_part *t)
{
	memset(&t->heap, 0, sizeof(t->heap));
	t->map = NULL;
	t->map_size = 0;
	t->count = 0;
}

/* ---- The id table (qlock) ---------------------------------------- */

static size_t
slot(const worker_t *w, uint64_t id)
{
	/* Ids are sequential: a multiplicative mix spreads them. */
	return (size_t)((id * 0x9e3779b97f4a7c15u) >> 32) &
	    (w->timers.map_size - 1);
}

static void
table_grow(worker_t *w)
{
	size_t size = w->timers.map_size != 0 ? 2 * w->timers.map_size : 64;
	struct timer **old = w->timers.map;
	size_t old_size = w->timers.map_size;
	struct timer **map = calloc(size, sizeof(*map));

	/* Without memory, chains only get longer: still correct. */
	if (map == NULL)
		return;
	w->timers.map = map;
	w->timers.map_size = size;
	for (size_t i = 0; i < old_size; i++) {
		struct timer *t = old[i];

		while (t != NULL) {
			struct timer *next = t->hnext;
			size_t s = slot(w, t->id);

			t->hnext = map[s];
			map[s] = t;
			t = next;
		}
	}
	free(old);
}

static bool
table_add(worker_t *w, struct timer *t)
{
	size_t s;

	if (w->timers.count >= w->timers.map_size)
		table_grow(w);
	if (w->timers.map_size == 0)
		return false;
	s = slot(w, t->id);
	t->hnext = w->timers.map[s];
	w->timers.map[s] = t;
	w->timers.count++;
	return true;
}

static struct timer **
table_find(worker_t *w, uint64_t id)
{
	struct timer **p;

	if (w->timers.map_size == 0)
		return NULL;
	for (p = &w->timers.map[slot(w, id)]; *p != NULL; p = &(*p)->hnext)
		if ((*p)->id == id)
			return p;
	return NULL;
}

static void
table_remove(worker_t *w, struct timer *t)
{
	struct timer **p = table_find(w, t->id);

	if (p != NULL) {
		*p = t->hnext;
		w->timers.count--;
	}
}

/* ---- Scheduling --------------------------------------------------- */

/* Publishes the nearest deadline (wake.c wakes whoever must know). */
static void
update_next_due(worker_t *w)
{
	struct heap_node *min = worker__heap_min(&w->timers.heap);

	worker__due_locked(w, min != NULL ? min->key : UINT64_MAX);
}

static int
schedule(worker_t *w, void (*fn)(void *), void *arg, double delay,
    uint64_t interval, uint64_t *id)
{
	struct timer *t;
	uint64_t tid;

	if (worker__gone(w))
		return ESRCH;
	if ((t = malloc(sizeof(*t))) == NULL)
		return ENOMEM;
	tid = atomic_fetch_add(&next_timer_id, 1);
	t->id = tid;
	t->hn.seq = t->id;
	t->interval = interval;
	t->fn = fn;
	t->arg = arg;
	t->running = false;
	t->cancelled = false;
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_RUNNING) {
		pthread_mutex_unlock(&w->qlock);
		free(t);
		return ESRCH;
	}
	t->hn.key = worker__deadline_ns(delay);
	if (!table_add(w, t)) {
		pthread_mutex_unlock(&w->qlock);
		free(t);
		return ENOMEM;
	}
	if (worker__heap_push(&w->timers.heap, &t->hn) != 0) {
		table_remove(w, t);
		pthread_mutex_unlock(&w->qlock);
		free(t);
		return ENOMEM;
	}
	update_next_due(w);
	pthread_mutex_unlock(&w->qlock);
	/* Not t->id: once unlocked, t may have run and been freed. */
	if (id != NULL)
		*id = tid;
	return 0;
}

static bool
valid_delay(double seconds)
{
	return isfinite(seconds) && seconds >= 0;
}

int
worker_later(worker_t *w, void (*fn)(void *arg), void *arg, double delay,
    uint64_t *id)
{
	if (w == NULL || fn == NULL || !valid_delay(delay))
		return EINVAL;
	return schedule(w, fn, arg, delay, 0, id);
}

int
worker_every(worker_t *w, void (*fn)(void *arg), void *arg,
    double interval, uint64_t *id)
{
	uint64_t ns;

	if (w == NULL || fn == NULL || !valid_delay(interval))
		return EINVAL;
	/* Beyond this, nanoseconds overflow a deadline. */
	if (interval > WORKER_SECONDS_MAX)
		return ERANGE;
	if ((ns = worker__ns_up(interval)) == 0)
		return EINVAL;
	return schedule(w, fn, arg, interval, ns, id);
}

int
worker_cancel(worker_t *w, uint64_t id)
{
	struct timer **p;
	struct timer *t;

	if (w == NULL || id == 0)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&w->qlock);
	if ((p = table_find(w, id)) == NULL) {
		pthread_mutex_unlock(&w->qlock);
		return ENOENT;
	}
	t = *p;
	*p = t->hnext;
	w->timers.count--;
	if (t->running) {
		t->cancelled = true;	/* the owner frees it after the call */
		t = NULL;
	} else {
		worker__heap_remove(&w->timers.heap, &t->hn);
		update_next_due(w);
	}
	pthread_mutex_unlock(&w->qlock);
	free(t);
	return 0;
}

/* ---- Running them (owner thread) ---------------------------------- */

/* The next deadline of a periodic timer: one interval on, skipping the
 * runs that were missed while the worker was busy, phase kept. */
static uint64_t
next_deadline(const struct timer *t, uint64_t now)
{
	uint64_t next = t->hn.key + t->interval;

	if (next <= now)
		next += ((now - next) / t->interval + 1) * t->interval;
	return next;
}

/*
 * Takes the first due timer out of the heap, or returns NULL; also NULL
 * when yield is set and events are queued.
 */
static struct timer *
take_due(worker_t *w, uint64_t now, bool yield)
{
	struct heap_node *min;
	struct timer *t;

	pthread_mutex_lock(&w->qlock);
	min = worker__heap_min(&w->timers.heap);
	if (min == NULL || min->key > now ||
	    (yield && worker__pending_locked(w))) {
		pthread_mutex_unlock(&w->qlock);
		return NULL;
	}
	t = timer_of(min);
	worker__heap_remove(&w->timers.heap, min);
	if (t->interval == 0)
		table_remove(w, t);
	else
		t->running = true;
	update_next_due(w);
	pthread_mutex_unlock(&w->qlock);
	return t;
}

/* After the call: reschedules a periodic timer that is still wanted. */
static void
finish(worker_t *w, struct timer *t)
{
	bool keep;

	if (t->interval == 0) {
		free(t);
		return;
	}
	pthread_mutex_lock(&w->qlock);
	t->running = false;
	keep = !t->cancelled && w->phase == PHASE_RUNNING;
	if (keep) {
		t->hn.key = next_deadline(t, worker__now_ns());
		keep = worker__heap_push(&w->timers.heap, &t->hn) == 0;
		if (keep)
			update_next_due(w);
	}
	if (!keep && !t->cancelled)
		table_remove(w, t);
	pthread_mutex_unlock(&w->qlock);
	if (!keep)
		free(t);
}

/* The callback unwound the worker: forget the timer. */
static void
timer_unwound(void *arg)
{
	struct timer *t = arg;
	worker_t *w = worker__get_current();

	if (t->interval != 0) {
		pthread_mutex_lock(&w->qlock);
		if (!t->cancelled)
			table_remove(w, t);
		pthread_mutex_unlock(&w->qlock);
	}
	free(t);
}

/*
 * Runs the timers due now, in deadline order; returns how many ran.
 * Timers that become due meanwhile wait for the next call, so a timer
 * that reschedules itself with delay 0 cannot hold the loop, and after
 * TIMER_ROUND timers the call returns early if events are queued.
 */
int
worker__timers_run(worker_t *w)
{
	uint64_t now;
	struct timer *t;
	int count = 0;

	if (atomic_load_explicit(&w->wake.next_due, memory_order_relaxed) ==
	    UINT64_MAX)
		return 0;
	now = worker__now_ns();
	while ((t = take_due(w, now, count >= TIMER_ROUND)) != NULL) {
		struct worker__hook hook;
		unsigned doing = worker__doing(w, DOING_TIMER, 0);

		worker__stats_busy(w);
		worker__hook_push(w, &hook, timer_unwound, t);
		t->fn(t->arg);
		worker__hook_pop(w, &hook);
		worker__doing_restore(w, doing);
		finish(w, t);
		count++;
	}
	return count;
}

/* Drops every pending timer; w no longer accepts new ones. */
void
worker__timers_drop(worker_t *w)
{
	struct heap_node *min;

	pthread_mutex_lock(&w->qlock);
	while ((min = worker__heap_min(&w->timers.heap)) != NULL) {
		worker__heap_remove(&w->timers.heap, min);
		table_remove(w, timer_of(min));
		free(timer_of(min));
	}
	atomic_store_explicit(&w->wake.next_due, UINT64_MAX,
	    memory_order_relaxed);
	pthread_mutex_unlock(&w->qlock);
}

/* Frees what the timers used; at worker_free(), nothing is pending. */
void
worker__timers_fini(worker_t *w)
{
	worker__timers_drop(w);
	worker__heap_free(&w->timers.heap);
	free(w->timers.map);
	w->timers.map = NULL;
	w->timers.map_size = 0;
}
