/*
 * end.c - how workers end, seen from outside: a worker's children end
 * before it does, a parent waits for each only so long, joins with and
 * without a limit, and worker_shutdown() for the whole process.
 *
 * DESIGN
 *
 * Children first.  When a worker leaves its task (a return, a stop, an
 * exit), it first ends its children: the newest first, each one stopped
 * and waited for before the next older one is stopped, or all stopped at
 * once and then all waited for (attr.stop_order).  It waits in its own
 * loop (waitq.c), so it handles their CHILD_THREAD_* events meanwhile,
 * and only then do its cleanup handlers run (unwind.c calls
 * worker__end_children as its frame's leaving step) and its end sequence
 * begin (worker.c).  Daemon children are stopped, not waited for.  From
 * the moment it begins, the worker takes no new child (tree.c).
 *
 * Deadlines.  A child that has not ended stop_timeout seconds after its
 * parent stopped it is stuck: the parent reports it (through the log,
 * with what the child is doing) and gives up on it; the child leaves its
 * parent's children and frees itself whenever it ends.  Where the loop
 * cannot run (the worker already ends, a stopped root, no memory for a
 * waiter, waits nested too deep) the parent blocks in a join instead,
 * with the same deadline.
 *
 * Locks: each child's qlock, one at a time, and tree_lock inside tree.c.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/*
 * Waits until w's run is over, or until the CLOCK_MONOTONIC time until
 * (UINT64_MAX: none): ETIMEDOUT.  Then joins its thread, if nobody did.
 */
int
worker__join_until(worker_t *w, uint64_t until)
{
	struct timespec ts = worker__timespec(until);
	pthread_t thread;
	bool join;

	if (w == NULL)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	if (worker__waits_for_itself(w))
		return EDEADLK;
	pthread_mutex_lock(&w->qlock);
	/*
	 * A run on a thread of its own is over when that thread has ended:
	 * without a time limit, join it at once, one sleep where waiting
	 * for the end and then for the thread took two.  A second joiner
	 * finds the thread taken and waits for the end as before.
	 */
	if (until == UINT64_MAX && w->phase != PHASE_IDLE &&
	    w->run.thread_joinable) {
		thread = w->run.thread;
		w->run.thread_joinable = false;
		pthread_mutex_unlock(&w->qlock);
		pthread_join(thread, NULL);
		return 0;
	}
	while (w->phase != PHASE_IDLE) {
		if (until == UINT64_MAX) {
			pthread_cond_wait(&w->run.end_cond, &w->qlock);
		} else if (pthread_cond_timedwait(&w->run.end_cond,
		    &w->qlock, &ts) == ETIMEDOUT && w->phase != PHASE_IDLE) {
			pthread_mutex_unlock(&w->qlock);
			return ETIMEDOUT;
		}
	}
	join = w->run.thread_joinable;
	thread = w->run.thread;
	w->run.thread_joinable = false;
	pthread_mutex_unlock(&w->qlock);
	if (join)
		pthread_join(thread, NULL);
	return 0;
}

int
worker_join(worker_t *w)
{
	return worker__join_until(w, UINT64_MAX);
}

int
worker_join_timeout(worker_t *w, double timeout)
{
	if (isnan(timeout))
		return EINVAL;
	return worker__join_until(w, timeout < 0 ? UINT64_MAX :
	    worker__deadline_ns(timeout));
}

/* ---- Stuck workers -------------------------------------------------- */

/* The wait a worker is in, as words. */
static const char *
wait_words(unsigned call)
{
	static const char *const words[] = {
		[WAIT_CALL_LOOP] = "waiting in a breakpoint",
		[WAIT_CALL_EVENT] = "waiting in worker_wait_event()",
		[WAIT_CALL_UNTIL] = "waiting in worker_wait_until()",
		[WAIT_CALL_SLEEP] = "in worker_sleep()",
		[WAIT_CALL_FOREVER] = "in worker_wait_forever()",
		[WAIT_CALL_UPDATE] = "in worker_update()",
		[WAIT_CALL_THREAD] = "waiting in worker_wait_thread()",
		[WAIT_CALL_DEFER] = "waiting in worker_defer_get()",
		[WAIT_CALL_CHILDREN] = "waiting for its children to end",
		[WAIT_CALL_PAUSE] = "paused",
	};

	return call < sizeof(words) / sizeof(words[0]) && words[call] != NULL ?
	    words[call] : words[WAIT_CALL_LOOP];
}

/* What w is doing, as words for a report, into buf. */
static const char *
doing_words(worker_t *w, char *buf, size_t size)
{
	unsigned d = atomic_load_explicit(&w->doing, memory_order_relaxed);
	char name[48];

	switch (d & 0xff) {
	case DOING_TASK:
		return "in its task, outside any breakpoint";
	case DOING_WAIT:
		return wait_words(d >> 8);
	case DOING_LISTENER:
		snprintf(buf, size, "in a listener of %s",
		    worker__listening_to(w, name, sizeof(name)));
		return buf;
	case DOING_TIMER:
		return "in a timer callback";
	case DOING_WATCH:
		return "in a watch callback";
	case DOING_PAUSED:
		return "paused";
	case DOING_STOPPING:
		return "ending its own children";
	case DOING_ENDING:
		return "in its end sequence";
	default:
		return "not running";
	}
}

/* c did not end in time after w stopped it: say so, and go on without it. */
static void
give_up(worker_t *w, worker_t *c, double waited)
{
	char buf[80];

	PROBE3(stuck, w->name, c->name, (uint64_t)(waited * 1000));
	worker__log(LOG_WARNING, c, "worker %s: child %s is stuck: not ended "
	    "%.3g s after its stop, %s; going on without it", w->name,
	    c->name, waited, doing_words(c, buf, sizeof(buf)));
	worker__tree_abandon(c);
}

/* A top-level worker did not end in time: said, and left to itself. */
static void
give_up_top(worker_t *t, double waited)
{
	char buf[80];

	PROBE3(stuck, (const char *)NULL, t->name, (uint64_t)(waited * 1000));
	worker__log(LOG_WARNING, t, "worker %s is stuck: not ended %.3g s "
	    "after worker_shutdown() stopped it, %s", t->name, waited,
	    doing_words(t, buf, sizeof(buf)));
}

/* ---- Children first -------------------------------------------------- */

/* One child being ended: which run of it, and until when to wait. */
struct ending {
	worker_t *child;	/* referenced */
	unsigned run;		/* the run that must end */
	bool waited;		/* a non-daemon that was running */
	uint64_t until;		/* CLOCK_MONOTONIC, UINT64_MAX: no limit */
	double timeout;
};

static int
ending_done(void *ctx)
{
	struct ending *e = ctx;

	return atomic_load(&e->child->run.ends) >= e->run;
}

/* Stops e->child and notes what to wait for. */
static void
stop_child(worker_t *w, struct ending *e)
{
	worker_t *c = e->child;

	pthread_mutex_lock(&c->qlock);
	e->run = c->run.starts;
	e->waited = !c->daemon && c->phase == PHASE_RUNNING;
	pthread_mutex_unlock(&c->qlock);
	e->timeout = c->stop_timeout;
	e->until = e->timeout < 0 ? UINT64_MAX :
	    worker__deadline_ns(e->timeout);
	worker__send(w, c, WORKER_STOP_THREAD, NULL, NULL, 0, false);
}

/* Waits for e->child to end, in w's loop if it can; ETIMEDOUT: stuck. */
static int
wait_child(worker_t *w, struct ending *e)
{
	worker_t *c = e->child;
	double left = -1;
	uint64_t now;
	int rc;

	if (!e->waited)
		return 0;
	if (e->until != UINT64_MAX) {
		now = worker__now_ns();
		left = e->until > now ? (double)(e->until - now) / 1e9 : 0;
	}
	rc = worker__wait_on(w, &c->qlock, &c->run.waiters, ending_done, e,
	    left, WAIT_CALL_CHILDREN);
	if (rc == 0 || rc == ETIMEDOUT)
		return rc;
	return worker__join_until(c, e->until) == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* Stops each of kids (the newest first) and waits for it in turn. */
static void
end_one_by_one(worker_t *w, worker_t **kids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct ending e = { .child = kids[i] };

		stop_child(w, &e);
		if (wait_child(w, &e) == ETIMEDOUT)
			give_up(w, e.child, e.timeout);
	}
}

/*
 * Ends the children kids of w, the newest first, each in turn (a
 * supervisor's strategy, supervise.c).  Nothing here allocates.
 */
void
worker__end_some(worker_t *w, worker_t **kids, size_t n)
{
	unsigned doing = worker__doing(w, DOING_STOPPING, 0);

	end_one_by_one(w, kids, n);
	worker__doing_restore(w, doing);
}

static void
end_all_at_once(worker_t *w, struct ending *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		stop_child(w, &e[i]);
	for (size_t i = 0; i < n; i++)
		if (wait_child(w, &e[i]) == ETIMEDOUT)
			give_up(w, e[i].child, e[i].timeout);
}

/* A running or ending non-daemon child of w, referenced, or NULL. */
static worker_t *
next_to_join(worker_t *w)
{
	struct list_node *n;
	worker_t *found = NULL;

	pthread_mutex_lock(&worker__tree_lock);
	list_for_each(n, &w->tree.children) {
		worker_t *c = container_of(n, worker_t, tree.sibling);
		bool busy;

		if (c->daemon || worker__gone(c))
			continue;
		pthread_mutex_lock(&c->qlock);
		busy = c->phase != PHASE_IDLE;
		pthread_mutex_unlock(&c->qlock);
		if (busy && worker__tryref(c)) {
			found = c;
			break;
		}
	}
	pthread_mutex_unlock(&worker__tree_lock);
	return found;
}

/*
 * Without memory for the list: stops every child at once and joins the
 * non-daemon ones, each with its deadline.  Nothing here allocates.
 */
static void
end_without_memory(worker_t *w)
{
	worker_t *c;

	worker__stop_children(w);
	while ((c = next_to_join(w)) != NULL) {
		double timeout = c->stop_timeout;

		if (worker__join_until(c, timeout < 0 ? UINT64_MAX :
		    worker__deadline_ns(timeout)) == ETIMEDOUT)
			give_up(w, c, timeout);
		worker_unref(c);
	}
}

/*
 * Ends w's children before w itself ends (see DESIGN): on w's own thread,
 * when it leaves its task, and again in its end sequence for any child
 * this could not reach.  A root worker (worker_exit on it) takes new
 * children again afterwards.
 */
/* The lists of an ending that a throw cut short (a listener exited). */
struct lists {
	worker_t **kids;
	size_t n;
	struct ending *e;
	worker_t *w;		/* set: a throw puts back what was */
	bool was_leaving;
	unsigned was_loop;
};

static void
lists_free(void *arg)
{
	struct lists *l = arg;

	if (l->w != NULL) {
		l->w->unwind.leaving = l->was_leaving;
		l->w->control.ending_loop = l->was_loop;
	}
	for (size_t i = 0; i < l->n; i++)
		worker_unref(l->kids[i]);
	free(l->kids);
	free(l->e);
}

void
worker__end_children(worker_t *w)
{
	unsigned doing = worker__doing(w, DOING_STOPPING, 0);
	bool was_leaving = w->unwind.leaving;
	unsigned was_loop = w->control.ending_loop;
	struct worker__hook hook;
	struct lists l = { NULL, 0, NULL, NULL, false, 0 };

	/* A stop from now on is redundant (control.c), and a throw meanwhile
	 * goes straight to the cleanup handlers (unwind.c). */
	w->unwind.leaving = true;
	/* The waits below run one loop deeper than this; waits nested in
	 * them (listeners, callbacks) end at once (loop.c). */
	if (was_loop == 0)
		w->control.ending_loop = w->loop.depth + 1;
	worker__tree_close(w, true);
	l.n = worker__children_newest_first(w, &l.kids);
	l.w = w;
	l.was_leaving = was_leaving;
	l.was_loop = was_loop;
	worker__hook_push(w, &hook, lists_free, &l);
	if (!w->stop_parallel) {
		end_one_by_one(w, l.kids, l.n);
	} else if (l.n > 0 && (l.e = calloc(l.n, sizeof(*l.e))) != NULL) {
		for (size_t i = 0; i < l.n; i++)
			l.e[i].child = l.kids[i];
		end_all_at_once(w, l.e, l.n);
	}
	worker__hook_pop(w, &hook);
	l.w = NULL;
	lists_free(&l);
	/* No memory for the lists, or children the lists did not reach. */
	end_without_memory(w);
	if (w->is_root)
		worker__tree_close(w, false);
	w->unwind.leaving = was_leaving;
	w->control.ending_loop = was_loop;
	worker__doing_restore(w, doing);
}

/* ---- worker_shutdown -------------------------------------------------- */

int
worker_shutdown(double timeout)
{
	uint64_t until;
	worker_t **tops;
	bool short_of_memory;
	size_t n;
	int rc = 0;

	if (isnan(timeout))
		return EINVAL;
	until = timeout < 0 ? UINT64_MAX : worker__deadline_ns(timeout);
	/* All stopped first, the newest first, so that a stuck one does
	 * not eat the others' time; each ends its own children first. */
	n = worker__top_newest_first(&tops, &short_of_memory);
	for (size_t i = 0; i < n; i++)
		worker__send(NULL, tops[i], WORKER_STOP_THREAD, NULL, NULL, 0,
		    false);
	for (size_t i = 0; i < n; i++) {
		worker_t *t = tops[i];

		/* The caller's own worker cannot wait for itself. */
		if (!worker__waits_for_itself(t) &&
		    worker__join_until(t, until) == ETIMEDOUT) {
			give_up_top(t, timeout);
			rc = ETIMEDOUT;
		}
		worker_unref(t);
	}
	free(tops);
	/* Some were not even stopped: say so rather than 0. */
	return short_of_memory ? ENOMEM : rc;
}
