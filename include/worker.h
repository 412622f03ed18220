/*
 * worker.h - workers: POSIX threads with event queues, parents and children.
 *
 * Each worker is one thread with its own event queue.  Workers fire named
 * events at each other; a worker runs its listeners in its own thread, at
 * its breakpoints (the wait functions).  A stopped worker unwinds to the
 * frame that started it and runs its cleanup handlers on the way.
 *
 * Functions returning int return 0 or a positive errno value, as pthreads
 * does; worker_update() returns a count, worker_fd() a descriptor or -1.
 * Constructors return NULL and set errno.  Every function may be called
 * from any thread; the waits, worker_exit(), worker_fail() and the cleanup
 * functions act on the calling thread's worker.  See worker(7) for the
 * model and the man pages of each function for the details.
 *
 * The header needs no feature-test macro: it compiles as C99 or later
 * and as C++.  worker_signals() is declared when <signal.h> defines
 * sigset_t, which takes POSIX (the default of gcc and clang, or
 * _POSIX_C_SOURCE with -std=c11).
 */
#ifndef WORKER_H
#define WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WORKER_VERSION_MAJOR 0
#define WORKER_VERSION_MINOR 2
#define WORKER_VERSION_PATCH 0

#if defined(__GNUC__)
#define WORKER_EXPORT __attribute__((visibility("default")))
#else
#define WORKER_EXPORT
#endif

/* Built-in event names. */
#define WORKER_STOP_THREAD		"STOP_THREAD"
#define WORKER_PAUSE_THREAD		"PAUSE_THREAD"
#define WORKER_RESUME_THREAD		"RESUME_THREAD"
#define WORKER_CHILD_THREAD_START	"CHILD_THREAD_START"
#define WORKER_CHILD_THREAD_STOP	"CHILD_THREAD_STOP"
#define WORKER_CHILD_THREAD_ERROR	"CHILD_THREAD_ERROR"
#define WORKER_CHILD_THREAD_DONE	"CHILD_THREAD_DONE"
#define WORKER_CHILD_THREAD_END		"CHILD_THREAD_END"
#define WORKER_EVENT_REJECT		"EVENT_REJECT"
#define WORKER_LISTENER_ERROR		"LISTENER_ERROR"
#define WORKER_EXECUTE			"EXECUTE"
#define WORKER_SIGNAL			"SIGNAL"

/* Values of worker_attr_t.stop_order: how a parent stops its children. */
enum {
	WORKER_STOP_REVERSE = 0,	/* newest first, each ended in turn */
	WORKER_STOP_PARALLEL = 1	/* all at once, then all waited for */
};

/* Values of worker_attr_t.restart: when its parent restarts it. */
enum {
	WORKER_RESTART_TEMPORARY = 0,	/* never */
	WORKER_RESTART_TRANSIENT = 1,	/* after it failed */
	WORKER_RESTART_PERMANENT = 2	/* whenever it ended */
};

/* Values of worker_attr_t.strategy: what a parent restarts. */
enum {
	WORKER_ONE_FOR_ONE = 0,		/* the child that ended */
	WORKER_ONE_FOR_ALL = 1,		/* all its children */
	WORKER_REST_FOR_ONE = 2		/* it and those started after it */
};

/* Values of worker_attr_t.daemon: .daemon = 1 (true) is a daemon. */
enum {
	WORKER_DAEMON_NO = -1,
	WORKER_DAEMON_INHERIT = 0,
	WORKER_DAEMON_YES = 1
};

/* Events of worker_watch() and revents of its callback. */
enum {
	WORKER_READABLE = 1,
	WORKER_WRITABLE = 2
};

/* Flags of worker_fire_ex() and worker_event_t.flags. */
enum {
	WORKER_BUBBLE = 1u << 0,
	WORKER_BROADCAST = 1u << 1
};

typedef struct worker worker_t;
typedef struct worker_defer worker_defer_t;
typedef struct worker_channel worker_channel_t;

typedef void *(*worker_fn)(void *arg);

typedef struct worker_attr {	/* all-zero means all defaults */
	const char *name;	/* copied; dumps and the OS thread name */
	worker_t *parent;	/* NULL: the calling started worker, if any */
	int no_parent;		/* nonzero: parentless even inside a worker */
	int daemon;		/* WORKER_DAEMON_INHERIT (0), _NO or _YES */
	size_t stack_size;	/* 0: the system default */
	size_t queue_max;	/* 0: unbounded; else fire gives EAGAIN */
	int quiet;		/* nonzero: no report on stderr on failure */
	double stop_timeout;	/* s its parent waits for it once stopped;
				 * 0: 5 s; <0: no limit */
	int stop_order;		/* WORKER_STOP_REVERSE or _PARALLEL */
	int restart;		/* as a child: WORKER_RESTART_* */
	int strategy;		/* as a parent: WORKER_ONE_FOR_ONE ... */
	int restart_max;	/* restarts within restart_period; 0: 3 */
	double restart_period;	/* s; 0: 5 */
	double restart_delay;	/* s before a restart, doubling; 0: none */
} worker_attr_t;

typedef struct worker_event {
	const char *name;
	void *data;
	worker_t *source;	/* the worker that fired it */
	unsigned flags;		/* WORKER_BUBBLE, WORKER_BROADCAST */
} worker_event_t;

typedef int (*worker_listener_fn)(const worker_event_t *ev, void *ctx);

typedef struct worker_listen_opts {
	int priority;		/* higher runs first; ties in the order added */
	int once;		/* removed when first taken for a call */
	int transient;		/* removed when the worker ends */
	worker_t *source;	/* only events fired by this worker */
} worker_listen_opts_t;

/* The data of a LISTENER_ERROR event, valid during the listener. */
typedef struct worker_listener_error {
	int rc;			/* what the failed listener returned */
	const char *event;	/* the name of the event it failed on */
} worker_listener_error_t;

/* The data of an EXECUTE event: the receiving worker calls fn(arg). */
typedef struct worker_execute {
	void (*fn)(void *arg);
	void *arg;
} worker_execute_t;

/* ---- Workers -------------------------------------------------------- */

/* Library version as "MAJOR.MINOR.PATCH"; a static string. */
WORKER_EXPORT const char *worker_version(void);

/* New stopped worker running fn(arg) once started; the caller owns one
 * reference.  fn NULL runs worker_wait_forever().  attr may be NULL. */
WORKER_EXPORT worker_t *worker_new(worker_fn fn, void *arg,
    const worker_attr_t *attr);
/* worker_new() followed by worker_start(); the caller owns one reference. */
WORKER_EXPORT worker_t *worker_create(worker_fn fn, void *arg,
    const worker_attr_t *attr);
/* Starts w on a new thread, or restarts it after it ended; EBUSY if it
 * runs or has not finished ending. */
WORKER_EXPORT int worker_start(worker_t *w);
/* Runs w on the calling thread and returns when it has ended. */
WORKER_EXPORT int worker_start_overlay(worker_t *w);
/* Fires STOP_THREAD at w: it unwinds at its next breakpoint. */
WORKER_EXPORT int worker_stop(worker_t *w);
/* Fires PAUSE_THREAD at w: it holds at its next breakpoint. */
WORKER_EXPORT int worker_pause(worker_t *w);
/* Fires RESUME_THREAD at w: a paused worker goes on. */
WORKER_EXPORT int worker_resume(worker_t *w);
/* Blocks, without running the caller's loop, until w has ended. */
WORKER_EXPORT int worker_join(worker_t *w);
/* worker_join() for at most timeout seconds (<0: no limit): ETIMEDOUT. */
WORKER_EXPORT int worker_join_timeout(worker_t *w, double timeout);
/* Changes when w's parent restarts it (WORKER_RESTART_*). */
WORKER_EXPORT int worker_set_restart(worker_t *w, int restart);
/* Stops every top-level worker, newest first, and waits timeout seconds
 * in all (<0: no limit) for them to end; reports the stuck ones and
 * leaves them running: ETIMEDOUT. */
WORKER_EXPORT int worker_shutdown(double timeout);
/* Runs the caller's loop until w ends; *ret gets its return value and
 * the call returns its fail code.  A breakpoint: may unwind the caller. */
WORKER_EXPORT int worker_wait_thread(worker_t *w, void **ret);
/* Fail code of w's last finished run (0 if it returned or was stopped);
 * *ret gets its return value, NULL if it did not return. */
WORKER_EXPORT int worker_result(const worker_t *w, void **ret);
/* 1 while w accepts events (started and not yet ending), else 0. */
WORKER_EXPORT int worker_is_running(const worker_t *w);
/* 1 if w is a daemon: its parent does not wait for it. */
WORKER_EXPORT int worker_is_daemon(const worker_t *w);
/* Takes one more reference on w; returns w. */
WORKER_EXPORT worker_t *worker_ref(worker_t *w);
/* Drops one reference; the last one frees w. */
WORKER_EXPORT void worker_unref(worker_t *w);
/* The calling thread's worker (borrowed); a root worker outside workers. */
WORKER_EXPORT worker_t *worker_current(void);
/* 1 if w (NULL: the current worker) runs on the main thread. */
WORKER_EXPORT int worker_is_main(const worker_t *w);
/* w's parent (borrowed), or NULL. */
WORKER_EXPORT worker_t *worker_parent(const worker_t *w);
/* The arg given to worker_new() for w, or NULL for NULL or a root. */
WORKER_EXPORT void *worker_arg(const worker_t *w);
/* w's name (owned by w), or NULL for NULL. */
WORKER_EXPORT const char *worker_name(const worker_t *w);
/* A child of w with that name as a new reference, or NULL. */
WORKER_EXPORT worker_t *worker_find_child(const worker_t *w,
    const char *name);
/* Writes the tree under root to out, parents before children. */
WORKER_EXPORT int worker_dump(FILE *out, const worker_t *root);

/* ---- Events --------------------------------------------------------- */

/* Queues event name on w with the caller's worker as source; data is
 * not owned. */
WORKER_EXPORT int worker_fire(worker_t *w, const char *name, void *data);
/* Like worker_fire(); with data_free the library owns data and calls
 * data_free(data) once, after the last listener that could see it. */
WORKER_EXPORT int worker_fire_ex(worker_t *w, const char *name, void *data,
    void (*data_free)(void *), unsigned flags);
/* Fires at from's parent with WORKER_BUBBLE; source is from. */
WORKER_EXPORT int worker_bubble(worker_t *from, const char *name,
    void *data);
/* Fires at each of from's children with WORKER_BROADCAST; source is from. */
WORKER_EXPORT int worker_broadcast(worker_t *from, const char *name,
    void *data);
/* Fires at from's parent only; source is from. */
WORKER_EXPORT int worker_parent_fire(worker_t *from, const char *name,
    void *data);
/* Fires at each of from's children only; source is from. */
WORKER_EXPORT int worker_children_fire(worker_t *from, const char *name,
    void *data);

/* ---- Listeners ------------------------------------------------------ */

/* Calls fn(ev, ctx) in w's thread for each event called name; opts may be
 * NULL.  Nonzero from fn fires LISTENER_ERROR. */
WORKER_EXPORT int worker_listen(worker_t *w, const char *name,
    worker_listener_fn fn, void *ctx, const worker_listen_opts_t *opts);
/* Removes every listener of w with this fn and ctx; ENOENT if none. */
WORKER_EXPORT int worker_unlisten(worker_t *w, worker_listener_fn fn,
    void *ctx);

/* ---- Waiting: the breakpoints (each may unwind the caller) ---------- */

/* Runs the loop until an event name (from source, if not NULL) is handled;
 * *data gets its data, valid until the caller's next breakpoint. */
WORKER_EXPORT int worker_wait_event(const char *name, worker_t *source,
    double timeout, void **data);
/* Runs the loop until cond(ev, ctx) is nonzero for a handled event. */
WORKER_EXPORT int worker_wait_until(
    int (*cond)(const worker_event_t *ev, void *ctx), void *ctx,
    double timeout, void **data);
/* Runs the loop for the given number of seconds. */
WORKER_EXPORT int worker_sleep(double seconds);
/* Runs the loop until the worker is stopped. */
WORKER_EXPORT void worker_wait_forever(void);
/* Handles the events queued now without blocking; returns how many. */
WORKER_EXPORT int worker_update(void);

/* ---- Exit and cleanup ----------------------------------------------- */

/* Ends the current worker: runs its cleanup handlers and unwinds to its
 * start.  On a root worker: stops and joins its children and returns. */
WORKER_EXPORT void worker_exit(void);
/* Like worker_exit(), recording err (> 0) as the worker's fail code;
 * returns EINVAL at once, without unwinding, if err is negative. */
WORKER_EXPORT int worker_fail(int err);
/* Pushes fn(arg) on the current worker's cleanup stack; ENOMEM, and
 * nothing pushed, if the stack cannot grow. */
WORKER_EXPORT int worker_cleanup_push(void (*fn)(void *), void *arg);
/* Pops the newest cleanup handler, calling it if execute is nonzero. */
WORKER_EXPORT void worker_cleanup_pop(int execute);

/* ---- Timers --------------------------------------------------------- */

/* Runs fn(arg) once in w's thread, at a breakpoint, delay seconds from
 * now (0: at its next breakpoint); *id (if not NULL) names it. */
WORKER_EXPORT int worker_later(worker_t *w, void (*fn)(void *arg),
    void *arg, double delay, uint64_t *id);
/* Runs fn(arg) in w's thread every interval seconds, first one interval
 * from now, without drift, until cancelled or w ends. */
WORKER_EXPORT int worker_every(worker_t *w, void (*fn)(void *arg),
    void *arg, double interval, uint64_t *id);
/* Moves pending timer id of w to run delay seconds from now (a periodic
 * timer's next run; its interval stays); ENOENT if it is not pending. */
WORKER_EXPORT int worker_rearm(worker_t *w, uint64_t id, double delay);
/* Cancels timer id of w: 0 if it will not run again, ENOENT if it already
 * ran (a one-shot) or is unknown. */
WORKER_EXPORT int worker_cancel(worker_t *w, uint64_t id);

/* ---- Async, Defer, Channel ------------------------------------------ */

/* Starts fn(arg) on a new parentless, daemon, quiet worker; the caller
 * owns the returned reference. */
WORKER_EXPORT worker_t *worker_async(worker_fn fn, void *arg);
/* Runs the caller's loop until a ends; *ret gets its return value and the
 * call returns its fail code.  A breakpoint. */
WORKER_EXPORT int worker_async_get(worker_t *a, void **ret);
/* worker_async(), worker_async_get() and worker_unref() in one call. */
WORKER_EXPORT int worker_await(worker_fn fn, void *arg, void **ret);

/* A new pending deferred value; free it with worker_defer_free(). */
WORKER_EXPORT worker_defer_t *worker_defer_new(void);
/* Settles d with value and wakes its waiters; EALREADY if settled. */
WORKER_EXPORT int worker_defer_resolve(worker_defer_t *d, void *value);
/* Settles d with the nonzero error err; EALREADY if settled. */
WORKER_EXPORT int worker_defer_reject(worker_defer_t *d, int err);
/* Runs the caller's loop until d is settled: 0 and *value, the rejection
 * code, or ETIMEDOUT.  A breakpoint. */
WORKER_EXPORT int worker_defer_get(worker_defer_t *d, double timeout,
    void **value);
/* Frees d; no worker may be waiting on it. */
WORKER_EXPORT void worker_defer_free(worker_defer_t *d);

/* A new channel with no subscribers. */
WORKER_EXPORT worker_channel_t *worker_channel_new(void);
/* Subscribes w (NULL: the current worker) to ch; holds no reference. */
WORKER_EXPORT int worker_channel_sub(worker_channel_t *ch, worker_t *w);
/* Unsubscribes w (NULL: the current worker) from ch. */
WORKER_EXPORT int worker_channel_unsub(worker_channel_t *ch, worker_t *w);
/* Fires name with data at every subscriber; data is not owned. */
WORKER_EXPORT int worker_channel_pub(worker_channel_t *ch, const char *name,
    void *data);
/* Like worker_channel_pub(); with data_free the library owns data and
 * calls data_free(data) once, after the last subscriber's listeners. */
WORKER_EXPORT int worker_channel_pub_ex(worker_channel_t *ch,
    const char *name, void *data, void (*data_free)(void *));
/* Unsubscribes everyone and frees ch. */
WORKER_EXPORT void worker_channel_free(worker_channel_t *ch);

/* ---- Descriptors, embedding, signals -------------------------------- */

/* Calls cb(fd, revents, ctx) in w's thread, at its breakpoints, while fd
 * is ready for events (WORKER_READABLE, WORKER_WRITABLE); fd stays the
 * caller's. */
WORKER_EXPORT int worker_watch(worker_t *w, int fd, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), void *ctx,
    uint64_t *id);
/* Stops watch id of w; safe from inside its callback. */
WORKER_EXPORT int worker_unwatch(worker_t *w, uint64_t id);
/* A descriptor (owned by w) readable while w has queued events or a due
 * timer; worker_update() clears it.  -1 and errno on failure. */
WORKER_EXPORT int worker_fd(worker_t *w);
#if defined(_POSIX_C_SOURCE) || defined(_XOPEN_SOURCE) || \
    defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE) || \
    defined(_BSD_SOURCE) || defined(__DEFINED_sigset_t)
/* Blocks the signals of stop and notify in the calling thread and reads
 * them in w's loop: each fires SIGNAL at w (data: the number), and a
 * signal of stop then stops w and so its whole tree. */
WORKER_EXPORT int worker_signals(worker_t *w, const sigset_t *stop,
    const sigset_t *notify);
#endif

/* ---- Observability -------------------------------------------------- */

/* What worker_stats() reports of one worker; field names are those of
 * worker_dump_json() too. */
typedef struct worker_stats {
	uint64_t handled;	/* events handed to listeners, all runs */
	uint64_t queued;	/* events waiting now */
	uint64_t queued_max;	/* high-water mark of queued */
	uint64_t rejected;	/* fires at it refused (ESRCH, EAGAIN) */
	uint64_t listener_errors;	/* listener calls that failed */
	uint64_t restarts;	/* restarts by its supervising parent */
	uint64_t timers, watches;	/* pending now */
	uint64_t listener_ns;	/* time in listeners, all runs */
	uint64_t listener_max_ns;	/* the longest listener call */
	double since_breakpoint;	/* s since it last passed a breakpoint;
					 * 0 while it waits in one */
	char doing[48];		/* "task", "wait_event", "listener EVENT",
				 * "timer", "watch", "paused", "ended"... */
} worker_stats_t;

/* Fills *st with w's counters and what it is doing now; any thread. */
WORKER_EXPORT int worker_stats(const worker_t *w, worker_stats_t *st);
/* Writes one JSON document of the tree under root (NULL: every top-level
 * tree and the root workers), each worker with its stats. */
WORKER_EXPORT int worker_dump_json(FILE *out, const worker_t *root);
/* Sends every message of the library to fn (level: syslog's LOG_ERR,
 * LOG_WARNING, LOG_INFO; w: the worker it is about, or NULL); NULL fn:
 * back to the default, stderr. */
WORKER_EXPORT void worker_set_log(void (*fn)(int level, const worker_t *w,
    const char *msg, void *ctx), void *ctx);
/* Makes w serve worker_dump_json() snapshots on a Unix socket at path,
 * from its own loop, until it ends. */
WORKER_EXPORT int worker_inspect(worker_t *w, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* WORKER_H */
