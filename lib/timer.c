/*
 * timer.c - worker_later(), worker_every(), worker_rearm(),
 * worker_cancel(): timers that run in the worker's own loop.
 *
 * DESIGN
 *
 * Each worker keeps its timers in a calendar queue (calq.c) ordered by
 * (deadline, sequence), so equal deadlines run in the order they were
 * scheduled, and in a chained hash table from id to timer, so a cancel
 * finds its timer in O(1).  Scheduling, cancelling and re-arming cost
 * O(1), whatever the number of timers, and none of them walks through
 * memory the others touched long ago: nodes come from chunks of the
 * worker's own (kept until it is freed: a worker holds the memory of
 * its most timers at once, about 100 bytes each), ids from
 * blocks of ID_BLOCK that the worker takes at once from the process's
 * counter, and a worker's ids being mostly consecutive, the table slots
 * of consecutive timers are neighbours.  No thread per timer: the loop
 * (loop.c) runs the due timers between batches of events and sleeps no
 * longer than the nearest deadline, of which wake.c keeps a lower bound
 * (w->wake.next_due) that the loop reads without the lock.  A round of
 * due timers yields to queued events every TIMER_ROUND timers: a thread
 * that schedules timers faster than the worker runs them must not keep
 * STOP_THREAD or any other event waiting behind them.
 *
 * Any thread may schedule, re-arm or cancel, so queue and table are
 * guarded by w->qlock, which the owner takes without contention in the
 * common case (a worker's timers are mostly its own).  The clock is
 * read before the lock is taken, in the call: the deadline is at least
 * the time of the call plus the delay, and at most the time it returns
 * plus the delay.  The owner takes a due timer out of the queue under
 * the lock and calls it without: a one-shot leaves the table too, so a
 * cancel from then on answers ENOENT; a periodic timer stays in the
 * table marked running, and a cancel during its call only marks it
 * cancelled, leaving the free to the owner when the call returns.  If
 * the call unwinds (the callback exits the worker), a hook frees the
 * timer.
 *
 * Memory: a schedule makes room for its timer in the table and the
 * queue (worker__calq_reserve) before it commits, so it fails cleanly
 * with ENOMEM, and nothing after it (a run, a re-arm, a periodic timer
 * put back) allocates.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (clock.h).  A deadline is rounded
 * up, so a timer never runs early.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
	TIMER_ROUND = 64,	/* due timers run before events get a turn */
	ID_BLOCK = 64,		/* ids a worker takes at once */
	CHUNK = 64		/* nodes allocated at once */
};

struct timer {
	struct calq_node cn;	/* hn.key: the deadline; hn.seq: the order */
	struct timer *next;	/* in the table's chain, or spare */
	uint64_t id;
	uint64_t interval;	/* 0 for a one-shot */
	uint64_t rearm;		/* running: the next deadline worker_rearm()
				 * set, or 0 */
	void (*fn)(void *);
	void *arg;
	bool running;		/* a periodic timer in its callback */
	bool cancelled;		/* cancelled while running */
};

/* A pull fetches the whole timer ahead from its node (calq.h). */
_Static_assert(offsetof(struct timer, cn) == 0 &&
    sizeof(struct timer) <= CALQ_NODE_BYTES, "a timer is a calq node's");

struct timer_chunk {
	struct timer_chunk *next;
	struct timer nodes[CHUNK];
};

#define timer_of(n) container_of(n, struct timer, cn)

static atomic_uint_least64_t next_timer_id = 1;

void
worker__timers_init(struct worker__timer_part *t)
{
	memset(&t->queue, 0, sizeof(t->queue));
	t->map = NULL;
	t->map_size = 0;
	t->count = 0;
	t->spare = NULL;
	t->chunks = NULL;
	t->last = NULL;
	t->fresh = NULL;
	t->fresh_next = 0;
	t->live = 0;
	t->next_id = 0;
	t->end_id = 0;
}

/* ---- Nodes and ids (qlock) ---------------------------------------- */

/*
 * A node for a new timer, or NULL without memory.  A node given back is
 * used again first: it is in the cache.  Past those, nodes are handed out
 * chunk by chunk in the order of their memory (fresh), without reading
 * them: a burst of timers writes its nodes one after the other, and the
 * next node's address never waits for the last node's line to come in,
 * as it would on a list of free nodes.
 */
static struct timer *
node_get(worker_t *w)
{
	struct worker__timer_part *tp = &w->timers;
	struct timer *t = tp->spare;

	if (t != NULL) {
		tp->spare = t->next;
	} else {
		if (tp->fresh == NULL) {
			struct timer_chunk *c = malloc(sizeof(*c));

			if (c == NULL)
				return NULL;
			/* Last, so that every chunk after fresh is fresh. */
			c->next = NULL;
			if (tp->last != NULL)
				tp->last->next = c;
			else
				tp->chunks = c;
			tp->last = c;
			tp->fresh = c;
			tp->fresh_next = 0;
		}
		t = &tp->fresh->nodes[tp->fresh_next++];
		if (tp->fresh_next == CHUNK) {
			tp->fresh = tp->fresh->next;
			tp->fresh_next = 0;
		}
	}
	tp->live++;
	return t;
}

/*
 * Gives t back.  Once no timer is left, every node is fresh again, in
 * the order of their memory: nodes given back in the order their timers
 * ran lie anywhere, and the next burst of timers would take a cache miss
 * on each.  The chunks stay until the worker is freed, so that a worker
 * that schedules bursts does not fault their memory in again for each.
 */
static void
node_put(worker_t *w, struct timer *t)
{
	struct worker__timer_part *tp = &w->timers;

	if (--tp->live == 0) {
		tp->spare = NULL;
		tp->fresh = tp->chunks;
		tp->fresh_next = 0;
		return;
	}
	t->next = tp->spare;
	tp->spare = t;
}

/* A new number, unique in the process, from w's block of them. */
static uint64_t
new_id(worker_t *w)
{
	struct worker__timer_part *tp = &w->timers;

	if (tp->next_id == tp->end_id) {
		tp->next_id = atomic_fetch_add_explicit(&next_timer_id,
		    ID_BLOCK, memory_order_relaxed);
		tp->end_id = tp->next_id + ID_BLOCK;
	}
	return tp->next_id++;
}

/* ---- The id table (qlock) ----------------------------------------- */

static size_t
slot(const worker_t *w, uint64_t id)
{
	/* A worker's ids are mostly consecutive: the low bits spread them,
	 * and keep the slots of consecutive timers side by side. */
	return (size_t)id & (w->timers.map_size - 1);
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
			struct timer *next = t->next;
			size_t s = slot(w, t->id);

			t->next = map[s];
			map[s] = t;
			t = next;
		}
	}
	free(old);
}

static void
table_add(worker_t *w, struct timer *t)
{
	size_t s = slot(w, t->id);

	t->next = w->timers.map[s];
	w->timers.map[s] = t;
	w->timers.count++;
}

static struct timer **
table_find(worker_t *w, uint64_t id)
{
	struct timer **p;

	if (w->timers.map_size == 0)
		return NULL;
	for (p = &w->timers.map[slot(w, id)]; *p != NULL; p = &(*p)->next)
		if ((*p)->id == id)
			return p;
	return NULL;
}

static void
table_remove(worker_t *w, struct timer *t)
{
	struct timer **p = table_find(w, t->id);

	if (p != NULL) {
		*p = t->next;
		w->timers.count--;
	}
}

/*
 * Room for one more timer: a slot chain, the queue's share, a node.
 * NULL without memory, and then nothing changed.
 */
static struct timer *
make_room(worker_t *w)
{
	struct worker__timer_part *tp = &w->timers;

	if (tp->count >= tp->map_size)
		table_grow(w);
	if (tp->map_size == 0 ||
	    worker__calq_reserve(&tp->queue, tp->live + 1) != 0)
		return NULL;
	return node_get(w);
}

/* ---- Scheduling --------------------------------------------------- */

/*
 * t's deadline is set: it joins the queue after every timer queued before
 * with the same deadline (seq: a number larger than theirs), and whoever
 * must know of it hears of it (wake.c).
 */
static void
enqueue(worker_t *w, struct timer *t, uint64_t seq)
{
	t->cn.hn.seq = seq;
	worker__calq_insert(&w->timers.queue, &t->cn);
	if (t->cn.hn.key < atomic_load_explicit(&w->wake.next_due,
	    memory_order_relaxed))
		worker__due_locked(w, t->cn.hn.key);
}

/* The queue changed at its front: a new lower bound for the loop. */
static void
update_next_due(worker_t *w)
{
	worker__due_locked(w, worker__calq_next(&w->timers.queue));
}

static int
schedule(worker_t *w, void (*fn)(void *), void *arg, double delay,
    uint64_t interval, uint64_t *id)
{
	uint64_t deadline, tid;
	struct timer *t;

	if (worker__gone(w))
		return ESRCH;
	deadline = worker__deadline_ns(delay);
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_RUNNING) {
		pthread_mutex_unlock(&w->qlock);
		return ESRCH;
	}
	if ((t = make_room(w)) == NULL) {
		pthread_mutex_unlock(&w->qlock);
		return ENOMEM;
	}
	tid = new_id(w);
	t->id = tid;
	t->interval = interval;
	t->rearm = 0;
	t->fn = fn;
	t->arg = arg;
	t->running = false;
	t->cancelled = false;
	t->cn.hn.key = deadline;
	table_add(w, t);
	enqueue(w, t, tid);
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
worker_rearm(worker_t *w, uint64_t id, double delay)
{
	uint64_t deadline;
	struct timer **p;
	struct timer *t;

	if (w == NULL || id == 0 || !valid_delay(delay))
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	deadline = worker__deadline_ns(delay);
	pthread_mutex_lock(&w->qlock);
	if ((p = table_find(w, id)) == NULL) {
		pthread_mutex_unlock(&w->qlock);
		return ENOENT;
	}
	t = *p;
	if (t->running) {
		/* A periodic timer in its callback: its next run. */
		t->rearm = deadline;
	} else {
		worker__calq_move(&w->timers.queue, &t->cn, deadline,
		    new_id(w));
		if (deadline < atomic_load_explicit(&w->wake.next_due,
		    memory_order_relaxed))
			worker__due_locked(w, deadline);
	}
	pthread_mutex_unlock(&w->qlock);
	return 0;
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
	*p = t->next;
	w->timers.count--;
	if (t->running) {
		t->cancelled = true;	/* the owner frees it after the call */
	} else {
		worker__calq_remove(&w->timers.queue, &t->cn);
		node_put(w, t);
		update_next_due(w);
	}
	pthread_mutex_unlock(&w->qlock);
	return 0;
}

/* ---- Running them (owner thread) ---------------------------------- */

/* The next deadline of a periodic timer: one interval on, skipping the
 * runs that were missed while the worker was busy, phase kept. */
static uint64_t
next_deadline(const struct timer *t, uint64_t now)
{
	uint64_t next = t->cn.hn.key + t->interval;

	if (next <= now)
		next += ((now - next) / t->interval + 1) * t->interval;
	return next;
}

/*
 * Gives back done (a one-shot that ran, or NULL), then takes the first
 * due timer out of the queue, or returns NULL; also NULL when yield is
 * set and events are queued.  One lock for both.
 */
static struct timer *
take_due(worker_t *w, uint64_t now, bool yield, struct timer *done)
{
	struct calq_node *n = NULL;
	struct timer *t;

	pthread_mutex_lock(&w->qlock);
	if (done != NULL)
		node_put(w, done);
	if (!yield || !worker__pending_locked(w))
		n = worker__calq_pop(&w->timers.queue, now);
	if (n == NULL) {
		/* The round is over.  Until now next_due stayed where it
		 * was, at most now: still a lower bound (nothing is due
		 * before it), so one update serves the whole round. */
		update_next_due(w);
		pthread_mutex_unlock(&w->qlock);
		return NULL;
	}
	t = timer_of(n);
	if (t->interval == 0)
		table_remove(w, t);
	else
		t->running = true;
	pthread_mutex_unlock(&w->qlock);
	return t;
}

/* After the call of a periodic timer: puts it back if still wanted. */
static void
finish(worker_t *w, struct timer *t)
{
	bool keep;

	pthread_mutex_lock(&w->qlock);
	t->running = false;
	keep = !t->cancelled && w->phase == PHASE_RUNNING;
	if (keep) {
		/* The queue's room for it was made when it was scheduled. */
		t->cn.hn.key = t->rearm != 0 ? t->rearm :
		    next_deadline(t, worker__now_ns());
		t->rearm = 0;
		enqueue(w, t, new_id(w));
	} else {
		if (!t->cancelled)
			table_remove(w, t);
		node_put(w, t);
	}
	pthread_mutex_unlock(&w->qlock);
}

/* The callback unwound the worker: forget the timer. */
static void
timer_unwound(void *arg)
{
	struct timer *t = arg;
	worker_t *w = worker__get_current();

	pthread_mutex_lock(&w->qlock);
	if (t->interval != 0 && !t->cancelled)
		table_remove(w, t);
	node_put(w, t);
	pthread_mutex_unlock(&w->qlock);
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
	uint64_t due = atomic_load_explicit(&w->wake.next_due,
	    memory_order_relaxed), now;
	struct timer *t, *done = NULL;
	int count = 0;

	/* next_due is a lower bound: nothing is due before it. */
	if (due == UINT64_MAX || (now = worker__now_ns()) < due)
		return 0;
	while ((t = take_due(w, now, count >= TIMER_ROUND, done)) != NULL) {
		struct worker__hook hook;
		unsigned doing = worker__doing(w, DOING_TIMER, 0);

		worker__stats_busy(w);
		worker__hook_push(w, &hook, timer_unwound, t);
		t->fn(t->arg);
		worker__hook_pop(w, &hook);
		worker__doing_restore(w, doing);
		done = NULL;
		if (t->interval == 0)
			done = t;
		else
			finish(w, t);
		count++;
	}
	return count;
}

/* Drops every pending timer; w no longer accepts new ones. */
void
worker__timers_drop(worker_t *w)
{
	struct calq_node *n;

	pthread_mutex_lock(&w->qlock);
	while ((n = worker__calq_pop(&w->timers.queue, UINT64_MAX)) != NULL) {
		table_remove(w, timer_of(n));
		node_put(w, timer_of(n));
	}
	atomic_store_explicit(&w->wake.next_due, UINT64_MAX,
	    memory_order_relaxed);
	pthread_mutex_unlock(&w->qlock);
}

/* Frees what the timers used; at worker_free(), nothing is pending. */
void
worker__timers_fini(worker_t *w)
{
	struct worker__timer_part *tp = &w->timers;

	worker__timers_drop(w);
	worker__calq_fini(&tp->queue);
	free(tp->map);
	tp->map = NULL;
	tp->map_size = 0;
	while (tp->chunks != NULL) {
		struct timer_chunk *c = tp->chunks;

		tp->chunks = c->next;
		free(c);
	}
	tp->spare = NULL;
	tp->last = NULL;
	tp->fresh = NULL;
}
