/*
 * worker.c - the life of a worker: creation, start, the run and its end
 * sequence, join, references.
 *
 * DESIGN
 *
 * A run goes IDLE -> RUNNING -> ENDING -> IDLE (w->phase, under qlock).
 * worker_start() opens the queue before the thread exists, so an event
 * fired right after it returns is never refused.  The run itself,
 * run_worker(), is the same on a new thread and on an overlay: it opens the
 * task's frame, calls the task, and then does the end sequence of the
 * contract, in its order:
 *
 *   1. the parent gets CHILD_THREAD_DONE, _STOP or _ERROR;
 *   2. the queue closes (worker_is_running() turns 0); timers and watches
 *      are dropped;
 *   3. transient listeners go;
 *   4. events still queued are handed to the (permanent) listeners;
 *   5. the parent gets CHILD_THREAD_END;
 *   6. the result is published and worker_wait_thread() callers wake;
 *   7. children are stopped, and non-daemon ones joined;
 *   8. the worker leaves its parent's children; phase IDLE: joiners return.
 *
 * Steps 3 and 4 are swapped from the contract's order on purpose: a
 * transient listener belongs to the run, and its ctx typically points into
 * the task's frame, which is gone by now.  Calling it from the drain would
 * read a dead stack.
 *
 * The OS thread is joined by the first worker_join() after the run, by
 * the next worker_start(), or when the worker is freed; a worker freed on
 * its own thread detaches it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define STR(x) #x
#define XSTR(x) STR(x)

static atomic_uint_least64_t next_id = 1;

const char *
worker_version(void)
{
	return XSTR(WORKER_VERSION_MAJOR) "." XSTR(WORKER_VERSION_MINOR) "."
	    XSTR(WORKER_VERSION_PATCH);
}

/* A new worker with one reference, not linked, not running. */
worker_t *
worker__alloc(const char *name, bool is_root)
{
	worker_t *w = calloc(1, sizeof(*w));
	char buf[32];

	if (w == NULL)
		return NULL;
	w->id = atomic_fetch_add(&next_id, 1);
	if (name == NULL) {
		snprintf(buf, sizeof(buf), "worker-%llu",
		    (unsigned long long)w->id);
		name = buf;
	}
	if ((w->name = strdup(name)) == NULL) {
		free(w);
		return NULL;
	}
	atomic_init(&w->refs, 1);
	w->is_root = is_root;
	list_init(&w->children);
	list_init(&w->sibling);
	list_init(&w->queue);
	list_init(&w->waiters);
	list_init(&w->listeners);
	list_init(&w->garbage);
	list_init(&w->batch);
	list_init(&w->cache);
	list_init(&w->subscriptions);
	list_init(&w->watches);
	w->efd = -1;
	w->xfd = -1;
	w->tfd = -1;
	w->epfd = -1;
	w->sigfd = -1;
	atomic_init(&w->next_due, UINT64_MAX);
	pthread_mutex_init(&w->qlock, NULL);
	pthread_mutex_init(&w->llock, NULL);
	pthread_cond_init(&w->end_cond, NULL);
	return w;
}

static bool
valid_attr(const worker_attr_t *a)
{
	return (a->name == NULL || a->name[0] != '\0') &&
	    a->daemon >= WORKER_DAEMON_NO && a->daemon <= WORKER_DAEMON_YES &&
	    !(a->parent != NULL && a->no_parent) &&
	    (a->stack_size == 0 || a->stack_size >= (size_t)PTHREAD_STACK_MIN);
}

/* The default parent is the calling started worker; never a root. */
static worker_t *
choose_parent(const worker_attr_t *a)
{
	worker_t *cur;

	if (a->parent != NULL)
		return a->parent;
	if (a->no_parent || (cur = worker__get_current()) == NULL ||
	    cur->is_root)
		return NULL;
	return cur;
}

worker_t *
worker_new(worker_fn fn, void *arg, const worker_attr_t *attr)
{
	static const worker_attr_t defaults;
	worker_t *w;

	if (attr == NULL)
		attr = &defaults;
	if (!valid_attr(attr)) {
		errno = EINVAL;
		return NULL;
	}
	if ((w = worker__alloc(attr->name, false)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	w->fn = fn;
	w->arg = arg;
	w->parent = worker_ref(choose_parent(attr));
	if (attr->daemon == WORKER_DAEMON_INHERIT)
		w->daemon = w->parent != NULL && w->parent->daemon;
	else
		w->daemon = attr->daemon == WORKER_DAEMON_YES;
	w->quiet = attr->quiet != 0;
	w->stack_size = attr->stack_size;
	w->queue_max = attr->queue_max;
	worker__tree_link(w);
	return w;
}

worker_t *
worker_create(worker_fn fn, void *arg, const worker_attr_t *attr)
{
	worker_t *w = worker_new(fn, arg, attr);
	int rc;

	if (w != NULL && (rc = worker_start(w)) != 0) {
		worker_unref(w);
		errno = rc;
		return NULL;
	}
	return w;
}

static void
set_thread_name(const char *name)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%s", name);
	pthread_setname_np(pthread_self(), buf);
}

static void
call_task(void *arg)
{
	worker_t *w = arg;

	if (w->fn != NULL)
		w->task_ret = w->fn(w->arg);
	else
		worker_wait_forever();
	/* Handlers the task left pushed still run, once, as after a throw. */
	worker__run_cleanups(w, 0);
}

static void
notify_parent(worker_t *w, const char *name, void *data)
{
	if (w->parent != NULL)
		worker__send(w, w->parent, name, data, NULL, 0, false);
}

static void
report_outcome(worker_t *w, int outcome, int err)
{
	switch (outcome) {
	case OUTCOME_DONE:
		notify_parent(w, WORKER_CHILD_THREAD_DONE, w->task_ret);
		break;
	case OUTCOME_STOP:
		notify_parent(w, WORKER_CHILD_THREAD_STOP, NULL);
		break;
	default:
		if (!w->quiet)
			fprintf(stderr, "libworker: worker %s failed: %s\n",
			    w->name, strerror(err));
		notify_parent(w, WORKER_CHILD_THREAD_ERROR,
		    (void *)(intptr_t)err);
		break;
	}
}

/*
 * Makes the run's outcome what worker_result() says, before the parent
 * hears of it, so a CHILD_THREAD_* listener can ask.
 */
static void
publish_result(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	w->result = w->outcome == OUTCOME_FAIL ? w->fail_err : 0;
	w->ret = w->outcome == OUTCOME_DONE ? w->task_ret : NULL;
	pthread_mutex_unlock(&w->qlock);
}

/* Steps 2 to 8 of the end sequence; root workers end here too. */
void
worker__end(worker_t *w)
{
	list_t woken;

	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_ENDING;
	atomic_store(&w->running, 0);
	worker__ring_close_locked(w);
	pthread_mutex_unlock(&w->qlock);
	worker__timers_drop(w);
	worker__watches_drop(w);

	worker__remove_transient(w);
	worker__drain(w);
	worker__free_garbage(w);
	notify_parent(w, WORKER_CHILD_THREAD_END, NULL);

	list_init(&woken);
	pthread_mutex_lock(&w->qlock);
	atomic_fetch_add(&w->ends, 1);
	worker__waiters_take(&woken, &w->waiters);
	pthread_mutex_unlock(&w->qlock);
	worker__waiters_wake(&woken);

	worker__stop_children(w);
	worker__join_children(w);
	worker__tree_unlink(w);
	worker__unref_flush(w);
	worker__source_settle(w);

	/* Reset the owner's state before a restart can reuse it. */
	w->ending = false;
	w->task_ret = NULL;
	w->fail_err = 0;
	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_IDLE;
	pthread_cond_broadcast(&w->end_cond);
	pthread_mutex_unlock(&w->qlock);
}

/*
 * One run of w on the calling thread, from CHILD_THREAD_START to IDLE.
 * rename: give the thread w's name (not for the main thread: its name is
 * the process's, which ps, pgrep and killall go by).
 */
static void
run_worker(worker_t *w, bool rename)
{
	w->prev_current = worker__get_current();
	worker__set_current(w);
	if (rename)
		set_thread_name(w->name);
	if (worker__signals_watch(w) != 0)
		fprintf(stderr, "libworker: worker %s cannot watch its "
		    "signals\n", w->name);
	notify_parent(w, WORKER_CHILD_THREAD_START, NULL);

	w->outcome = worker__protect(w, call_task, w);
	publish_result(w);
	report_outcome(w, w->outcome, w->fail_err);
	worker__end(w);

	worker__set_current(w->prev_current);
	w->prev_current = NULL;
}

static void *
thread_main(void *arg)
{
	worker_t *w = arg;

	run_worker(w, true);
	worker_unref(w);	/* the run's own reference */
	return NULL;
}

/*
 * Claims w for a new run: EINVAL for a root, EBUSY unless it is idle.
 * Joins the thread of a previous run if nobody did.
 */
static int
begin_run(worker_t *w)
{
	pthread_t old;
	bool join_old;

	if (w == NULL || w->is_root)
		return EINVAL;
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_IDLE) {
		pthread_mutex_unlock(&w->qlock);
		return EBUSY;
	}
	join_old = w->thread_joinable;
	old = w->thread;
	w->thread_joinable = false;
	w->phase = PHASE_RUNNING;
	w->starts++;
	atomic_store(&w->running, 1);
	pthread_mutex_unlock(&w->qlock);
	if (join_old)
		pthread_join(old, NULL);
	worker_ref(w);		/* the run's own reference */
	worker__tree_link(w);
	return 0;
}

/* Undoes begin_run() when the thread could not be created. */
static void
abort_run(worker_t *w)
{
	worker__tree_unlink(w);
	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_IDLE;
	w->starts--;
	atomic_store(&w->running, 0);
	pthread_cond_broadcast(&w->end_cond);
	pthread_mutex_unlock(&w->qlock);
	worker_unref(w);
}

int
worker_start(worker_t *w)
{
	pthread_attr_t attr;
	int rc;

	if ((rc = begin_run(w)) != 0)
		return rc;
	pthread_attr_init(&attr);
	if (w->stack_size != 0)
		pthread_attr_setstacksize(&attr, w->stack_size);
	/* Under qlock, so a joiner never sees the run without its thread. */
	pthread_mutex_lock(&w->qlock);
	rc = pthread_create(&w->thread, &attr, thread_main, w);
	w->thread_joinable = rc == 0;
	pthread_mutex_unlock(&w->qlock);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		abort_run(w);
	return rc;
}

int
worker_start_overlay(worker_t *w)
{
	char saved[16] = "";
	bool on_main;
	int rc;

	if ((rc = begin_run(w)) != 0)
		return rc;
	on_main = getpid() == gettid();
	pthread_getname_np(pthread_self(), saved, sizeof(saved));
	atomic_store(&w->on_main, on_main);
	run_worker(w, !on_main);
	atomic_store(&w->on_main, false);
	if (!on_main)
		pthread_setname_np(pthread_self(), saved);
	worker_unref(w);	/* the run's own reference */
	return 0;
}

/* True if w is running on the calling thread, as its worker or below. */
bool
worker__on_this_thread(const worker_t *w)
{
	for (worker_t *c = worker__get_current(); c != NULL;
	    c = c->prev_current)
		if (c == w)
			return true;
	return false;
}

/*
 * True if waiting for w's end from this thread can never return: w runs
 * here, or is an ancestor of a worker that runs here, and an ancestor
 * waits for its children before it ends.
 */
static bool
waits_for_itself(const worker_t *w)
{
	for (worker_t *c = worker__get_current(); c != NULL;
	    c = c->prev_current)
		for (const worker_t *a = c; a != NULL; a = a->parent)
			if (a == w)
				return true;
	return false;
}

int
worker_join(worker_t *w)
{
	pthread_t thread;
	bool join;

	if (w == NULL)
		return EINVAL;
	if (waits_for_itself(w))
		return EDEADLK;
	pthread_mutex_lock(&w->qlock);
	while (w->phase != PHASE_IDLE)
		pthread_cond_wait(&w->end_cond, &w->qlock);
	join = w->thread_joinable;
	thread = w->thread;
	w->thread_joinable = false;
	pthread_mutex_unlock(&w->qlock);
	if (join)
		pthread_join(thread, NULL);
	return 0;
}

struct thread_wait {
	worker_t *target;
	unsigned run;		/* the run to wait for */
};

static int
thread_ended(void *ctx)
{
	struct thread_wait *tw = ctx;

	return atomic_load(&tw->target->ends) >= tw->run;
}

int
worker_wait_thread(worker_t *w, void **ret)
{
	struct thread_wait tw = { .target = w };
	worker_t *self;
	int rc;

	if (w == NULL)
		return EINVAL;
	if ((self = worker__current()) == NULL)
		return ENOMEM;
	if (worker__on_this_thread(w))
		return EDEADLK;
	pthread_mutex_lock(&w->qlock);
	tw.run = w->starts;
	pthread_mutex_unlock(&w->qlock);
	rc = worker__wait_on(self, &w->qlock, &w->waiters, thread_ended, &tw,
	    -1);
	if (rc != 0)
		return rc;
	return worker_result(w, ret);
}

int
worker_result(const worker_t *w, void **ret)
{
	worker_t *mw = (worker_t *)w;
	int result;

	if (w == NULL)
		return EINVAL;
	pthread_mutex_lock(&mw->qlock);
	result = w->result;
	if (ret != NULL)
		*ret = w->ret;
	pthread_mutex_unlock(&mw->qlock);
	return result;
}

int
worker_is_running(const worker_t *w)
{
	return w != NULL && atomic_load(&w->running);
}

int
worker_is_daemon(const worker_t *w)
{
	return w != NULL && w->daemon;
}

worker_t *
worker_parent(const worker_t *w)
{
	return w != NULL ? w->parent : NULL;
}

void *
worker_arg(const worker_t *w)
{
	return w != NULL ? w->arg : NULL;
}

const char *
worker_name(const worker_t *w)
{
	return w != NULL ? w->name : NULL;
}

worker_t *
worker_ref(worker_t *w)
{
	if (w != NULL)
		atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
	return w;
}

/* A reference unless w is already being freed; tree walks need this. */
bool
worker__tryref(worker_t *w)
{
	unsigned n = atomic_load(&w->refs);

	while (n != 0)
		if (atomic_compare_exchange_weak(&w->refs, &n, n + 1))
			return true;
	return false;
}

static void
worker_free(worker_t *w)
{
	worker_t *parent = w->parent;

	worker__tree_unlink(w);
	worker__channels_leave(w);
	if (w->thread_joinable) {
		if (pthread_equal(w->thread, pthread_self()))
			pthread_detach(w->thread);
		else
			pthread_join(w->thread, NULL);
	}
	worker__wakers_wait(w);
	worker__ring_free(w);
	worker__drop_events(&w->queue);
	worker__drop_events(&w->batch);
	worker__drop_events(&w->cache);
	worker__payload_put(w->held);
	worker__pool_free(w);
	worker__free_listeners(w);
	worker__timers_free(w);
	worker__watches_free(w);
	worker__signals_close(w);
	free(w->cleanups);
	pthread_mutex_destroy(&w->qlock);
	pthread_mutex_destroy(&w->llock);
	pthread_cond_destroy(&w->end_cond);
	free(w->name);
	free(w);
	worker_unref(parent);
}

/* Drops n references at once (pool.c pays its debts with it). */
void
worker__unref_many(worker_t *w, unsigned n)
{
	if (atomic_fetch_sub_explicit(&w->refs, n, memory_order_acq_rel) == n)
		worker_free(w);
}

void
worker_unref(worker_t *w)
{
	if (w != NULL)
		worker__unref_many(w, 1);
}
