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
 * task's frame, calls the task, and when the task returns or unwinds,
 * first ends its children (end.c: the frame's leaving step, before any
 * cleanup handler runs), then does the end sequence of the contract, in
 * its order:
 *
 *   1. the parent gets CHILD_THREAD_DONE, _STOP or _ERROR;
 *   2. the queue closes (worker_is_running() turns 0); timers and watches
 *      are dropped;
 *   3. transient listeners go;
 *   4. events still queued are handed to the (permanent) listeners;
 *   5. the parent gets CHILD_THREAD_END;
 *   6. the result is published and worker_wait_thread() callers wake;
 *   7. children that step 0 could not reach (none, as a rule) are ended;
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
 *
 * A worker is made of parts, one per module (internal.h): worker__alloc()
 * gives each module its part with that module's init, and worker_free()
 * hands it back with its fini.  Nothing here sets another module's fields.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define STR(x) #x
#define XSTR(x) STR(x)

static atomic_uint_least64_t next_id = 1;

/* All-zero: every attribute's default. */
static const worker_attr_t default_attr;

static void worker_free(worker_t *w);

/* Seconds a parent waits for a stopped child when attr.stop_timeout is 0. */
#define STOP_TIMEOUT_DEFAULT 5.0

/* The run part; a root worker runs from its birth on its own thread. */
static void
run_init(worker_t *w)
{
	struct worker__run_part *r = &w->run;

	pthread_condattr_t ca;

	/* Joins with a timeout count on the clock of every deadline. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->end_cond, &ca);
	pthread_condattr_destroy(&ca);
	list_init(&r->waiters);
	if (w->is_root) {
		w->phase = PHASE_RUNNING;
		atomic_init(&w->running, 1);
		r->starts = 1;
		r->thread = pthread_self();
	}
}

const char *
worker_version(void)
{
	return XSTR(WORKER_VERSION_MAJOR) "." XSTR(WORKER_VERSION_MINOR) "."
	    XSTR(WORKER_VERSION_PATCH);
}

/* "worker-ID" into buf, which has room for it: without snprintf(),
 * whose machinery costs as much as the rest of worker_new(). */
static const char *
default_name(char *buf, size_t size, uint64_t id)
{
	static const char prefix[] = "worker-";
	char digits[24];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + id % 10);
		id /= 10;
	} while (id != 0);
	if (sizeof(prefix) + n > size)
		n = size - sizeof(prefix);
	memcpy(buf, prefix, sizeof(prefix) - 1);
	for (size_t i = 0; i < n; i++)
		buf[sizeof(prefix) - 1 + i] = digits[n - 1 - i];
	buf[sizeof(prefix) - 1 + n] = '\0';
	return buf;
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
	if (name == NULL)
		name = default_name(buf, sizeof(buf), w->id);
	if ((w->name = strdup(name)) == NULL ||
	    worker__events_init(&w->events, w) != 0) {
		free(w->name);
		free(w);
		return NULL;
	}
	atomic_init(&w->refs, 1);
	w->stop_timeout = STOP_TIMEOUT_DEFAULT;
	w->epoch = atomic_load(&worker__epoch);
	worker__fork_init();
	w->is_root = is_root;
	pthread_mutex_init(&w->qlock, NULL);
	worker__thread_init(&w->thread);
	worker__wake_init(&w->wake);
	worker__unwind_init(&w->unwind);
	worker__queue_init(&w->queue, 0);
	worker__ring_init(w);
	worker__inbox_init(&w->inbox);
	worker__embed_init(&w->embed);
	worker__timers_init(&w->timers);
	worker__watches_init(&w->watches);
	worker__tree_init(w);
	worker__control_init(&w->control);
	worker__listen_init(&w->listen);
	worker__loop_init(&w->loop);
	worker__signals_init(&w->signals);
	worker__channels_init(&w->channels);
	worker__stats_init(&w->stats);
	run_init(w);
	if (worker__supervise_init(w, &default_attr) != 0) {
		worker_free(w);
		return NULL;
	}
	return w;
}

static bool
valid_attr(const worker_attr_t *a)
{
	return (a->name == NULL || a->name[0] != '\0') &&
	    a->daemon >= WORKER_DAEMON_NO && a->daemon <= WORKER_DAEMON_YES &&
	    !isnan(a->stop_timeout) &&
	    (a->stop_order == WORKER_STOP_REVERSE ||
	    a->stop_order == WORKER_STOP_PARALLEL) &&
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
	worker_t *w;
	int rc;

	if (attr == NULL)
		attr = &default_attr;
	if (!valid_attr(attr)) {
		errno = EINVAL;
		return NULL;
	}
	if (attr->parent != NULL && worker__gone(attr->parent)) {
		errno = ESRCH;
		return NULL;
	}
	if ((w = worker__alloc(attr->name, false)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	w->fn = fn;
	w->arg = arg;
	w->parent = worker__ref(choose_parent(attr));
	if (attr->daemon == WORKER_DAEMON_INHERIT)
		w->daemon = w->parent != NULL && w->parent->daemon;
	else
		w->daemon = attr->daemon == WORKER_DAEMON_YES;
	w->quiet = attr->quiet != 0;
	w->stack_size = attr->stack_size;
	w->stop_parallel = attr->stop_order == WORKER_STOP_PARALLEL;
	w->stop_timeout = attr->stop_timeout == 0 ? STOP_TIMEOUT_DEFAULT :
	    attr->stop_timeout < 0 ? -1 : attr->stop_timeout;
	worker__queue_init(&w->queue, attr->queue_max);
	worker__ring_init(w);
	if ((rc = worker__supervise_init(w, attr)) != 0 ||
	    (rc = worker__tree_link(w)) != 0) {
		worker_unref(w);
		errno = rc;
		return NULL;
	}
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
	size_t len = strnlen(name, sizeof(buf) - 1);

	/* The kernel keeps 15 bytes of a thread's name. */
	memcpy(buf, name, len);
	buf[len] = '\0';
	pthread_setname_np(pthread_self(), buf);
}

static void
call_task(void *arg)
{
	struct worker__wait forever = { .call = WAIT_CALL_FOREVER,
	    .timeout = -1 };
	worker_t *w = arg;

	if (w->fn != NULL)
		w->run.task_ret = w->fn(w->arg);
	else
		worker__loop(w, &forever);
	/* As after a throw: the children end first, then the handlers the
	 * task left pushed run, once. */
	worker__end_children(w);
	worker__run_cleanups(w, 0);
}

/* A parent that gave up on w (end.c) hears nothing more from it. */
static void
notify_parent(worker_t *w, const char *name, void *data)
{
	if (w->parent != NULL && !atomic_load(&w->tree.abandoned))
		worker__send(w, w->parent, name, data, NULL, 0, false);
}

static void
report_outcome(worker_t *w, int outcome, int err)
{
	switch (outcome) {
	case OUTCOME_DONE:
		notify_parent(w, WORKER_CHILD_THREAD_DONE, w->run.task_ret);
		break;
	case OUTCOME_STOP:
		notify_parent(w, WORKER_CHILD_THREAD_STOP, NULL);
		break;
	default:
		if (!w->quiet)
			worker__log(LOG_ERR, w, "worker %s failed: %s",
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
	struct worker__run_part *r = &w->run;

	pthread_mutex_lock(&w->qlock);
	r->result = r->outcome == OUTCOME_FAIL ? r->fail_err : 0;
	r->ret = r->outcome == OUTCOME_DONE ? r->task_ret : NULL;
	pthread_mutex_unlock(&w->qlock);
}

/* Steps 2 to 8 of the end sequence; root workers end here too. */
void
worker__end(worker_t *w)
{
	list_t woken;

	worker__tree_close(w, true);
	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_ENDING;
	atomic_store(&w->running, 0);
	worker__ring_close_locked(w);
	pthread_mutex_unlock(&w->qlock);
	worker__timers_drop(w);
	worker__supervise_end(w);
	worker__watches_drop(w);

	worker__remove_transient(w);
	worker__drain(w);
	worker__free_garbage(w);
	notify_parent(w, WORKER_CHILD_THREAD_END, NULL);

	list_init(&woken);
	pthread_mutex_lock(&w->qlock);
	atomic_fetch_add(&w->run.ends, 1);
	worker__waiters_take(&woken, &w->run.waiters);
	pthread_mutex_unlock(&w->qlock);
	worker__waiters_wake(&woken);

	/* Children this worker's own end could not reach (end.c). */
	worker__end_children(w);
	/* One its parent may restart keeps its place among its siblings. */
	if (atomic_load(&w->sup.restart) == WORKER_RESTART_TEMPORARY ||
	    atomic_load(&w->tree.abandoned))
		worker__tree_unlink(w);
	worker__unref_flush(w);
	worker__source_settle(w);

	/* Reset the owner's state before a restart can reuse it. */
	w->control.ending = false;
	w->run.task_ret = NULL;
	w->run.fail_err = 0;
	worker__tree_close(w, false);
	worker__doing(w, DOING_IDLE, 0);
	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_IDLE;
	pthread_mutex_unlock(&w->qlock);
	/* After the unlock: a joiner woken under qlock would only block on
	 * it again.  The run's reference keeps w alive. */
	pthread_cond_broadcast(&w->run.end_cond);
}

/*
 * One run of w on the calling thread, from CHILD_THREAD_START to IDLE.
 * rename: give the thread w's name (not for the main thread: its name is
 * the process's, which ps, pgrep and killall go by).
 */
static void
run_worker(worker_t *w, bool rename)
{
	/* A local: once the run is over, a restart may reuse w's field. */
	worker_t *prev = worker__get_current();

	w->thread.prev_current = prev;
	worker__set_current(w);
	if (rename)
		set_thread_name(w->name);
	if (worker__signals_watch(w) != 0)
		worker__log(LOG_WARNING, w, "worker %s cannot watch its "
		    "signals", w->name);
	notify_parent(w, WORKER_CHILD_THREAD_START, NULL);

	worker__supervise_run(w);
	PROBE2(start, w->name, w->id);
	worker__doing(w, DOING_TASK, 0);
	worker__stats_run(w);
	w->run.outcome = worker__protect(w, call_task, w,
	    worker__end_children);
	worker__doing(w, DOING_ENDING, 0);
	worker__stats_busy(w);
	PROBE3(end, w->name, w->id, w->run.outcome);
	publish_result(w);
	report_outcome(w, w->run.outcome, w->run.fail_err);
	worker__end(w);

	worker__set_current(prev);
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
 * Claims w for a new run: EINVAL for a root, EBUSY unless it is idle,
 * ESRCH if its parent is ending.  Joins the thread of a previous run if
 * nobody did.  The run begins under tree_lock, so a parent that begins
 * to end either sees it running (and stops it) or refuses it.
 */
static int
begin_run(worker_t *w)
{
	pthread_t old;
	bool join_old;
	int rc = 0;

	if (w == NULL || w->is_root)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&worker__tree_lock);
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_IDLE)
		rc = EBUSY;
	else
		rc = worker__tree_link_locked(w);
	if (rc != 0) {
		pthread_mutex_unlock(&w->qlock);
		pthread_mutex_unlock(&worker__tree_lock);
		return rc;
	}
	join_old = w->run.thread_joinable;
	old = w->run.thread;
	w->run.thread_joinable = false;
	w->phase = PHASE_RUNNING;
	w->run.starts++;
	atomic_store(&w->running, 1);
	pthread_mutex_unlock(&w->qlock);
	pthread_mutex_unlock(&worker__tree_lock);
	if (join_old)
		pthread_join(old, NULL);
	worker__ref(w);		/* the run's own reference */
	return 0;
}

/* Undoes begin_run() when the thread could not be created. */
static void
abort_run(worker_t *w)
{
	worker__tree_unlink(w);
	pthread_mutex_lock(&w->qlock);
	w->phase = PHASE_IDLE;
	w->run.starts--;
	atomic_store(&w->running, 0);
	pthread_cond_broadcast(&w->run.end_cond);
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
	rc = pthread_create(&w->run.thread, &attr, thread_main, w);
	w->run.thread_joinable = rc == 0;
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

int
worker_result(const worker_t *w, void **ret)
{
	worker_t *mw = (worker_t *)w;
	int result;

	if (w == NULL)
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&mw->qlock);
	result = w->run.result;
	if (ret != NULL)
		*ret = w->run.ret;
	pthread_mutex_unlock(&mw->qlock);
	return result;
}

int
worker_is_running(const worker_t *w)
{
	return w != NULL && !worker__gone(w) && worker__running(w);
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

/* A worker of the parent process is never freed in a child: its free
 * would join a thread and take locks the child does not have. */
worker_t *
worker_ref(worker_t *w)
{
	return w != NULL && worker__gone(w) ? w : worker__ref(w);
}

static void
worker_free(worker_t *w)
{
	worker_t *parent = w->parent;

	worker__tree_fini(w);
	worker__channels_fini(w);
	if (w->run.thread_joinable) {
		if (pthread_equal(w->run.thread, pthread_self()))
			pthread_detach(w->run.thread);
		else
			pthread_join(w->run.thread, NULL);
	}
	worker__wakers_wait(w);
	worker__ring_fini(w);
	worker__queue_fini(&w->queue);
	worker__inbox_fini(w);
	worker__loop_fini(w);
	worker__events_fini(&w->events);
	worker__listen_fini(w);
	worker__timers_fini(w);
	worker__watches_fini(w);
	worker__embed_fini(w);
	worker__wake_fini(&w->wake);
	worker__signals_fini(w);
	worker__supervise_fini(w);
	worker__unwind_fini(&w->unwind);
	pthread_mutex_destroy(&w->qlock);
	pthread_cond_destroy(&w->run.end_cond);
	free(w->name);
	free(w);
	worker_unref(parent);
}

/* Drops n references at once (event.c pays its debts with it). */
void
worker__unref_many(worker_t *w, unsigned n)
{
	if (atomic_fetch_sub_explicit(&w->refs, n, memory_order_acq_rel) == n)
		worker_free(w);
}

void
worker_unref(worker_t *w)
{
	if (w != NULL && !worker__gone(w))
		worker__unref_many(w, 1);
}
