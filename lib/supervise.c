/*
 * supervise.c - supervision: a parent restarts the children that end
 * while it runs, as Erlang/OTP's supervisors do.
 *
 * DESIGN
 *
 * A child's attr.restart says when it comes back: TEMPORARY never,
 * TRANSIENT after it failed (a nonzero result), PERMANENT whenever it
 * ended while its parent was not ending.  The parent decides in its own
 * thread, in the built-in action of the child's CHILD_THREAD_END (which
 * control.c hands to worker__child_ended through w->control), so at one
 * of its breakpoints; a root worker supervises at its waits.  Its
 * attr.strategy says what it restarts: the child (ONE_FOR_ONE), all its
 * children (ONE_FOR_ALL), or the child and those started after it
 * (REST_FOR_ONE).  The others are ended first, the newest first, each in
 * turn (end.c), marked so that their own CHILD_THREAD_END restarts
 * nothing; then all come back in start order.  The order of siblings is
 * the order they were made in (worker_new), which a restart keeps.
 *
 * A restart keeps the handle, the name, the permanent listeners and the
 * place among the siblings: a child that may be restarted stays in its
 * parent's children when it ends (worker.c).  The parent keeps the times
 * of its last restart_max restarts in a ring: one more within
 * restart_period seconds and it gives up, ends its children and fails
 * with ECHILD, so that its own parent may restart it in turn (a new run
 * starts with an empty ring, as a new Erlang supervisor would).  With
 * restart_delay, a restart waits that long, doubled for each restart
 * already in the period, at most 30 times as long, on a timer of the
 * parent's (the restart is pending until then; the parent's end drops
 * it).
 *
 * Locks: none of its own: the ring and the pending restarts are the
 * parent's owner's; restart and restarts are atomics any thread reads.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

enum {
	RESTART_MAX_DEFAULT = 3,
	RESTART_MAX_LIMIT = 100000,	/* a ring of this many times at most */
	DELAY_GROWTH_MAX = 30		/* a delay at most 30 times the first */
};

#define RESTART_PERIOD_DEFAULT 5.0

/* A restart that waits for its delay: the children to start, in order. */
struct pending {
	struct list_node link;		/* in the parent's sup.pending */
	worker_t *parent;
	size_t n;
	worker_t *kids[];		/* referenced */
};

static void child_ended(worker_t *w, worker_t *child);

static bool
valid_restart(int restart)
{
	return restart >= WORKER_RESTART_TEMPORARY &&
	    restart <= WORKER_RESTART_PERMANENT;
}

/*
 * The supervision part of a new worker, from its attributes; EINVAL for a
 * bad one, ENOMEM if the ring of restart times cannot be had.
 */
int
worker__supervise_init(worker_t *w, const worker_attr_t *a)
{
	struct worker__supervise_part *s = &w->sup;

	if (!valid_restart(a->restart) ||
	    a->strategy < WORKER_ONE_FOR_ONE ||
	    a->strategy > WORKER_REST_FOR_ONE || a->restart_max < 0 ||
	    a->restart_max > RESTART_MAX_LIMIT ||
	    !(a->restart_period >= 0) || !isfinite(a->restart_period) ||
	    !(a->restart_delay >= 0) || !isfinite(a->restart_delay))
		return EINVAL;
	atomic_init(&s->restart, a->restart);
	atomic_init(&s->restarts, 0);
	s->by_parent = false;
	s->strategy = a->strategy;
	s->restart_max = a->restart_max != 0 ? (unsigned)a->restart_max :
	    RESTART_MAX_DEFAULT;
	s->restart_period = a->restart_period != 0 ? a->restart_period :
	    RESTART_PERIOD_DEFAULT;
	s->restart_delay = a->restart_delay;
	/* Beyond a century, as good as forever, and no overflow. */
	if (s->restart_period > WORKER_SECONDS_MAX)
		s->restart_period = WORKER_SECONDS_MAX;
	if (s->restart_delay > WORKER_SECONDS_MAX / DELAY_GROWTH_MAX)
		s->restart_delay = WORKER_SECONDS_MAX / DELAY_GROWTH_MAX;
	s->ntimes = 0;
	s->next = 0;
	list_init(&s->pending);
	free(s->times);
	if ((s->times = calloc(s->restart_max, sizeof(*s->times))) == NULL)
		return ENOMEM;
	w->control.child_ended = child_ended;
	return 0;
}

/* A run of w begins: its restarts of the last run count no more. */
void
worker__supervise_run(worker_t *w)
{
	w->sup.ntimes = 0;
	w->sup.next = 0;
}

void
worker__supervise_fini(worker_t *w)
{
	worker__supervise_end(w);
	free(w->sup.times);
	w->sup.times = NULL;
}

int
worker_set_restart(worker_t *w, int restart)
{
	if (w == NULL || w->is_root || !valid_restart(restart))
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	atomic_store(&w->sup.restart, restart);
	return 0;
}

/* ---- Intensity ------------------------------------------------------ */

/* Restarts of w's children within the last restart_period, now included. */
static unsigned
recent_restarts(const worker_t *w, uint64_t now)
{
	const struct worker__supervise_part *s = &w->sup;
	uint64_t period = worker__ns_up(s->restart_period);
	unsigned n = 0;

	for (unsigned i = 0; i < s->ntimes; i++)
		if (now - s->times[i] <= period)
			n++;
	return n;
}

static void
note_restart(worker_t *w, uint64_t now)
{
	struct worker__supervise_part *s = &w->sup;

	s->times[s->next] = now;
	s->next = (s->next + 1) % s->restart_max;
	if (s->ntimes < s->restart_max)
		s->ntimes++;
}

/* The delay before a restart, after k others in the period. */
static double
restart_delay(const worker_t *w, unsigned k)
{
	double first = w->sup.restart_delay;
	double most = first * DELAY_GROWTH_MAX;
	double d = first;

	for (unsigned i = 0; i < k && d < most; i++)
		d *= 2;
	return d < most ? d : most;
}

/*
 * Too many restarts: w gives up.  It ends its children and fails with
 * ECHILD, so its own parent may restart it; a root cannot fail, and only
 * ends its children.  Does not return for a started worker.
 */
static void
escalate(worker_t *w)
{
	worker__log(LOG_ERR, w, "worker %s: more than %u restarts in %.3g s; "
	    "giving up", w->name, w->sup.restart_max, w->sup.restart_period);
	if (w->is_root) {
		worker__end_children(w);
		return;
	}
	w->run.fail_err = ECHILD;
	worker__throw(w, OUTCOME_FAIL);
}

/* ---- Restarting ------------------------------------------------------ */


/*
 * Starts c again once its last run is completely over: its CHILD_THREAD_END
 * came before the last steps of its end, which take at most its
 * stop_timeout (its own stuck children); past that, it is left alone.
 */
static void
restart_one(worker_t *w, worker_t *c)
{
	int rc;

	/* Given up on, or started again by someone else meanwhile. */
	if (atomic_load(&c->tree.abandoned) || worker__running(c))
		return;
	if (worker__join_until(c, c->stop_timeout < 0 ? UINT64_MAX :
	    worker__deadline_ns(c->stop_timeout)) != 0) {
		worker__log(LOG_ERR, c, "worker %s: child %s did not finish "
		    "its end: not restarted", w->name, c->name);
		return;
	}
	if ((rc = worker_start(c)) == 0) {
		uint64_t n = atomic_fetch_add(&c->sup.restarts, 1) + 1;

		PROBE3(restart, w->name, c->name, n);
		return;
	}
	if (rc != ESRCH && rc != EBUSY)
		worker__log(LOG_ERR, c, "worker %s: cannot restart child %s: "
		    "%s", w->name, c->name, strerror(rc));
}

static void
restart_all(worker_t *w, worker_t **kids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		restart_one(w, kids[i]);
}

static void
pending_free(struct pending *p)
{
	list_remove(&p->link);
	for (size_t i = 0; i < p->n; i++)
		worker_unref(p->kids[i]);
	free(p);
}

/* A delayed restart is due (a timer of the parent's). */
static void
pending_due(void *arg)
{
	struct pending *p = arg;

	if (!p->parent->tree.closing)
		restart_all(p->parent, p->kids, p->n);
	pending_free(p);
}

/* w ends: the restarts that still wait for their delay never happen. */
void
worker__supervise_end(worker_t *w)
{
	struct list_node *n;

	while ((n = w->sup.pending.next) != &w->sup.pending)
		pending_free(container_of(n, struct pending, link));
}

/*
 * Restarts kids (in start order) now, or after delay seconds on a timer
 * of w's.  Without memory for the delay, at once.
 */
static void
restart_later(worker_t *w, worker_t **kids, size_t n, double delay)
{
	struct pending *p;

	if (delay <= 0 ||
	    (p = malloc(sizeof(*p) + n * sizeof(p->kids[0]))) == NULL) {
		restart_all(w, kids, n);
		return;
	}
	p->parent = w;
	p->n = n;
	for (size_t i = 0; i < n; i++)
		p->kids[i] = worker_ref(kids[i]);
	list_append(&w->sup.pending, &p->link);
	if (worker_later(w, pending_due, p, delay, NULL) != 0)
		pending_due(p);
}

/* Would the end of c, with its result, bring it back? */
static bool
wants_restart(const worker_t *c)
{
	switch (atomic_load(&c->sup.restart)) {
	case WORKER_RESTART_PERMANENT:
		return true;
	case WORKER_RESTART_TRANSIENT:
		return worker_result(c, NULL) != 0;
	default:
		return false;
	}
}

/*
 * The children a strategy restarts with c, in start order, referenced,
 * into *out (malloc()ed); the running ones among them but c are ended
 * first, the newest first, marked so that they restart nothing of their
 * own.  Returns their count, or 0 without memory (then c alone).
 */
static size_t
group_of(worker_t *w, worker_t *c, worker_t ***out)
{
	worker_t **newest;
	size_t n = worker__children_newest_first(w, &newest);
	size_t first = 0, k = 0;

	*out = NULL;
	if (n == 0) {
		free(newest);
		return 0;
	}
	/* newest[] runs newest first: c and those after it are its head. */
	if (w->sup.strategy == WORKER_REST_FOR_ONE)
		for (first = 0; first < n && newest[first] != c; first++)
			;
	else
		first = n - 1;
	if (first == n) {
		/* c left meanwhile: it alone. */
		for (size_t i = 0; i < n; i++)
			worker_unref(newest[i]);
		free(newest);
		return 0;
	}
	/* c and the running others of newest[0..first], newest first;
	 * not those already given up on. */
	for (size_t i = 0; i < n; i++) {
		worker_t *o = newest[i];

		if (i <= first && (o == c || (worker__running(o) &&
		    !atomic_load(&o->tree.abandoned)))) {
			o->sup.by_parent = o != c;
			newest[k++] = o;
		} else {
			worker_unref(o);
		}
	}
	worker__end_some(w, newest, k);
	/* In start order (the reverse), but for the TEMPORARY ones, which
	 * end for good with their group, as in Erlang. */
	for (size_t i = 0, j = k - 1; i < j; i++, j--) {
		worker_t *t = newest[i];

		newest[i] = newest[j];
		newest[j] = t;
	}
	n = k;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		worker_t *o = newest[i];

		if (o == c || atomic_load(&o->sup.restart) !=
		    WORKER_RESTART_TEMPORARY)
			newest[k++] = o;
		else
			worker_unref(o);
	}
	*out = newest;
	return k;
}

/* CHILD_THREAD_END of child reached w, in w's own thread. */
static void
child_ended(worker_t *w, worker_t *c)
{
	uint64_t now;
	worker_t **group;
	size_t n;
	unsigned recent;

	/* A running c sent its CHILD_THREAD_END by hand: nothing ended. */
	if (c->parent != w || w->tree.closing || w->control.ending ||
	    atomic_load(&c->tree.abandoned) || worker__running(c))
		return;
	if (c->sup.by_parent) {
		c->sup.by_parent = false;	/* its group restarts it */
		return;
	}
	if (!wants_restart(c))
		return;
	now = worker__now_ns();
	if ((recent = recent_restarts(w, now)) >= w->sup.restart_max) {
		escalate(w);
		return;
	}
	note_restart(w, now);
	if (w->sup.strategy == WORKER_ONE_FOR_ONE ||
	    (n = group_of(w, c, &group)) == 0) {
		restart_later(w, &c, 1, restart_delay(w, recent));
		return;
	}
	restart_later(w, group, n, restart_delay(w, recent));
	for (size_t i = 0; i < n; i++)
		worker_unref(group[i]);
	free(group);
}
