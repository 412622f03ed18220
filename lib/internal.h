/*
 * internal.h - what the files of lib/ share.  Nothing here is public.
 *
 * DESIGN
 *
 * A worker is a struct worker.  Its fields fall in four groups, by who may
 * touch them:
 *
 *   - immutable after worker_new(): name, id, fn, arg, parent, daemon...;
 *   - tree_lock (one process-wide mutex, tree.c): the parent/children links;
 *   - qlock (per worker): the locked queue, the run state, the waiters
 *     of worker_wait_thread() and joiners; the ring (ring.c) takes no
 *     lock, its slots are handed over by atomic sequence words;
 *   - llock (per worker): the listeners;
 *   - the owner thread only (the thread that runs the worker, or the
 *     thread of a root worker): the batch being handled, the pause cache,
 *     the unwinding frames and cleanup handlers.
 *
 * Lock order: tree_lock, then a qlock.  llock is a leaf.  No code holds
 * two qlocks at once, and no lock is held while a user callback runs or
 * while the owner thread unwinds.
 *
 * References: worker_new() gives the caller one; a started worker holds
 * one on itself until its end sequence is done; a child holds one on its
 * parent; an event holds one on its source (prepaid in bulk, pool.c).
 * A parent's list of children is weak: traversals take a reference with
 * worker__tryref() under tree_lock and skip workers that are already
 * being freed.
 */
#ifndef WORKER_INTERNAL_H
#define WORKER_INTERNAL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <time.h>

#include "heap.h"
#include "list.h"
#include "worker.h"

enum worker_phase {
	PHASE_IDLE,		/* never started, or completely ended */
	PHASE_RUNNING,		/* accepting events */
	PHASE_ENDING		/* end sequence under way */
};

/* How a run ended, as reported to the parent. */
enum worker_outcome {
	OUTCOME_DONE,		/* the task returned */
	OUTCOME_STOP,		/* STOP_THREAD or worker_exit() */
	OUTCOME_FAIL		/* worker_fail() */
};

/* Built-in events, classified once when they are fired. */
enum event_kind {
	KIND_USER,
	KIND_STOP,
	KIND_PAUSE,
	KIND_RESUME,
	KIND_CHILD,		/* any CHILD_THREAD_* */
	KIND_EXECUTE,
	KIND_REJECT,
	KIND_LISTENER_ERROR
};

/* A payload with a destructor, shared by every copy of one fire. */
struct payload {
	atomic_uint refs;
	void *data;
	void (*data_free)(void *);
};

/*
 * One queued event.  Each target of a fire gets its own copy; the copies
 * share the payload.  An event has exactly one owner at a time: a queue,
 * the batch, the loop handling it, the pause cache, or the EVENT_REJECT
 * that carries it.
 */
struct wevent {
	struct list_node link;
	struct wevent *spare_next;	/* in a worker's cache (pool.c) */
	uint32_t hash;
	uint8_t kind;
	bool pooled;		/* a node of the pool's size, to keep */
	worker_event_t pub;	/* pub.name points at name[] */
	struct payload *payload;
	char name[];
};

/* A non-local exit target: the start of a task, or one drained event. */
struct worker__frame {
	struct worker__frame *prev;
	struct worker__hook *hooks;	/* hooks older than the frame */
	size_t ncleanup;		/* handlers older than the frame */
	volatile int outcome;
	sigjmp_buf env;
};

/*
 * Internal cleanup, run when the owner thread unwinds past the code that
 * pushed it.  Hooks live on the stack of that code, so they cost no
 * allocation; user handlers (worker_cleanup_push) are kept apart so a
 * user's pop never takes one of ours.
 */
struct worker__hook {
	struct worker__hook *prev;
	size_t ncleanup;	/* user handlers pushed before it */
	void (*fn)(void *arg);
	void *arg;
};

struct cleanup {
	void (*fn)(void *);
	void *arg;
};

struct worker__ring;

struct worker {
	/* Immutable after worker_new(). */
	atomic_uint refs;
	uint64_t id;
	char *name;
	worker_fn fn;
	void *arg;
	worker_t *parent;	/* holds a reference */
	bool daemon;
	bool quiet;
	bool is_root;
	size_t stack_size;
	size_t queue_max;
	/* Read per event by producers, so kept off the written lines. */
	_Atomic(struct worker__ring *) ring;	/* set once (ring.c) */
	atomic_bool ring_locked;	/* qlock: ring.c's RING_LOCKED */

	/* tree_lock */
	struct list_node sibling;	/* in parent->children */
	list_t children;
	bool in_parent;

	/* qlock */
	pthread_mutex_t qlock;
	atomic_uint wake_seq;		/* the owner sleeps on it (futex) */
	pthread_cond_t end_cond;	/* worker_join() sleeps on it */
	list_t queue;
	int phase;
	bool sleeping;			/* the owner sleeps on sleep_word */
	atomic_uint *sleep_word;	/* wake_seq or a ring slot's word */
	unsigned sleep_val;		/* the value it sleeps on */
	bool woken;			/* worker__wake() since last look */
	atomic_uint wakers;		/* calls about to wake the owner */
	unsigned starts;		/* runs started */
	list_t waiters;			/* struct worker__waiter */
	pthread_t thread;
	bool thread_joinable;		/* a pthread to join is left */
	int result;			/* last finished run */
	void *ret;
	struct heap timers;		/* timer.c */
	struct timer **tmap;		/* timers by id */
	size_t tmap_size;
	size_t ntimers;

	/* Written under qlock, read anywhere. */
	atomic_int running;		/* phase == PHASE_RUNNING */
	atomic_uint ends;		/* runs whose waiters were woken */
	atomic_size_t admitted;		/* events ever locked-queued (qlock) */
	atomic_int paused;
	atomic_bool on_main;		/* runs on the main thread now */
	atomic_uint_least64_t next_due;	/* nearest timer, UINT64_MAX: none */
	atomic_uint_least64_t ring_head;	/* owner: next slot to take */
	uint64_t locked_at;		/* qlock: where the ring was locked */

	/* llock */
	pthread_mutex_t llock;
	list_t listeners;		/* by priority, then age */
	list_t garbage;			/* removed, for the owner to free */
	atomic_uint lver;		/* changes of listeners (llock) */
	atomic_bool has_garbage;	/* garbage is not empty (llock) */

	/* Owner thread only. */
	struct listener **lcache;	/* copy of listeners at lcache_ver */
	size_t lcache_len;
	size_t lcache_cap;
	unsigned lcache_ver;
	unsigned ldepth;		/* dispatches under way */
	list_t batch;			/* taken from queue, not handled */
	atomic_size_t taken;		/* events ever taken off the batch */
	list_t cache;			/* handled while paused */
	struct payload *held;		/* data returned by the last wait */
	bool ending;			/* draining in the end sequence */
	bool canceled;			/* root: STOP handled, not yet seen */
	unsigned stopping;		/* STOP_THREAD dispatches under way */
	unsigned spin_ns;		/* worker__spin(), 0: not yet */
	size_t spliced;			/* admitted at the last take */
	struct wevent *nodes;		/* pool.c: spare nodes */
	unsigned nnodes;
	unsigned prepaid;		/* pool.c: references on w to spend */
	worker_t *unref_source;		/* pool.c: references owed to it */
	unsigned unref_count;
	int outcome;
	int fail_err;
	void *task_ret;
	struct worker__frame *frame;
	struct worker__hook *hooks;
	struct cleanup *cleanups;
	size_t ncleanup;
	size_t capcleanup;
	worker_t *prev_current;		/* current worker before an overlay */

	/* qlock: descriptors (watch.c) */
	list_t watches;
	atomic_size_t nwatch;		/* written under qlock */
	int efd;			/* eventfd, -1 until needed */
	int xfd;			/* eventfd of worker_fd(), or -1 */
	int tfd;			/* timerfd of worker_fd(), or -1 */
	int epfd;			/* worker_fd(), or -1 */
	bool polling;			/* the owner sleeps in ppoll() */
	bool fd_signaled;		/* efd written for worker_fd() */
	struct pollfd *pfds;		/* owner only: the poll set */
	uint64_t *pfd_ids;
	size_t pfds_cap;

	int sigfd;			/* qlock: signal.c, or -1 */
	sigset_t sig_stop;		/* qlock */

	/* worker__channel_lock (channel.c) */
	list_t subscriptions;
};

/* A worker blocked in a loop until another worker's state changes. */
struct worker__waiter {
	struct list_node link;
	atomic_uint refs;
	worker_t *worker;	/* holds a reference */
	bool linked;		/* guarded by the lock of the list */
};

/* What a loop waits for.  All fields are optional. */
struct worker__wait {
	int (*match)(const worker_event_t *ev, void *ctx);
	void *match_ctx;
	int (*done)(void *ctx);		/* checked whenever the loop wakes */
	void *done_ctx;
	double timeout;			/* negative: no limit */
	void *data;			/* out: data of the matching event */
};

/* worker.c */
worker_t *worker__alloc(const char *name, bool is_root);
void worker__unref_many(worker_t *w, unsigned n);
bool worker__tryref(worker_t *w);
bool worker__on_this_thread(const worker_t *w);
void worker__end(worker_t *w);

/* root.c */
worker_t *worker__current(void);
worker_t *worker__get_current(void);
void worker__set_current(worker_t *w);

/* tree.c */
extern pthread_mutex_t worker__tree_lock;
void worker__tree_link(worker_t *child);
void worker__tree_unlink(worker_t *child);
void worker__stop_children(worker_t *w);
void worker__join_children(worker_t *w);
int worker__tree_fire(worker_t *w, bool deep, worker_t *source,
    const char *name, void *data, struct payload *pl, unsigned flags);

/* queue.c */
uint32_t worker__hash(const char *name, size_t len);
void worker__futex_wake(atomic_uint *word);
void worker__relax(void);
struct payload *worker__payload_new(void *data, void (*data_free)(void *));
void worker__payload_put(struct payload *pl);
void worker__event_free(struct wevent *ev);
int worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify);
void worker__wake(worker_t *w);
void worker__wakers_wait(worker_t *w);
int worker__sleep_locked(worker_t *w, uint64_t until);
void worker__spin(worker_t *w, uint64_t until);
void worker__signal_locked(worker_t *w);
void worker__take_batch(worker_t *w);
void worker__take_locked(worker_t *w);
bool worker__queue_empty_locked(const worker_t *w);
struct wevent *worker__next(worker_t *w);
void worker__drop_events(list_t *l);

/* ring.c */
bool worker__ring_send(worker_t *source, worker_t *w, const char *name,
    size_t len, uint32_t hash, unsigned kind, void *data,
    struct payload *pl, unsigned flags);
size_t worker__ring_take(worker_t *w);
void worker__ring_take_locked(worker_t *w);
bool worker__ring_open(const worker_t *w);
void worker__ring_close_locked(worker_t *w);
void worker__ring_reopen_locked(worker_t *w);
void worker__ring_locked_send(worker_t *w);
bool worker__ring_pending_locked(const worker_t *w);
bool worker__ring_ready(const worker_t *w);
uint64_t worker__ring_admitted(const worker_t *w);
atomic_uint *worker__ring_mark_locked(worker_t *w, unsigned *val,
    bool *published);
bool worker__ring_unmark(atomic_uint *word, unsigned val);
void worker__ring_free(worker_t *w);

/* pool.c */
struct wevent *worker__event_alloc(size_t len);
struct wevent *worker__event_node(worker_t *w);
void worker__event_done(worker_t *w, struct wevent *ev);
void worker__unref_flush(worker_t *w);
void worker__pool_free(worker_t *w);
worker_t *worker__source_ref(worker_t *source);
void worker__source_settle(worker_t *w);

/* fire.c */
int worker__fire_from(worker_t *source, worker_t *w, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify);

/* listen.c */
void worker__dispatch(worker_t *w, struct wevent *ev);
void worker__remove_transient(worker_t *w);
void worker__free_listeners(worker_t *w);
void worker__free_garbage(worker_t *w);

/* loop.c */
int worker__loop(worker_t *w, struct worker__wait *wt);
void worker__builtin(worker_t *w, struct wevent *ev);
void worker__drain(worker_t *w);

/* unwind.c */
int worker__protect(worker_t *w, void (*fn)(void *), void *arg);
_Noreturn void worker__throw(worker_t *w, int outcome);
void worker__run_cleanups(worker_t *w, size_t down_to);

/* timer.c */
uint64_t worker__now_ns(void);
uint64_t worker__deadline_ns(double seconds);
struct timespec worker__timespec(uint64_t ns);
int worker__timers_run(worker_t *w);
void worker__timers_drop(worker_t *w);
void worker__timers_free(worker_t *w);

/* watch.c */
void worker__poke_locked(worker_t *w);
int worker__watches_run(worker_t *w, bool wait, uint64_t until);
void worker__watches_drop(worker_t *w);
void worker__watches_free(worker_t *w);
void worker__fd_timer_locked(worker_t *w, uint64_t due);
void worker__fd_signal_locked(worker_t *w);
void worker__fd_clear(worker_t *w);
void worker__fd_rearm(worker_t *w);

/* signal.c */
int worker__signals_watch(worker_t *w);
void worker__signals_close(worker_t *w);

/* channel.c */
void worker__channels_leave(worker_t *w);

/* waitq.c */
struct worker__waiter *worker__waiter_add(list_t *l, worker_t *w);
void worker__waiter_remove(struct worker__waiter *wt);
void worker__waiters_take(list_t *woken, list_t *l);
void worker__waiters_wake(list_t *woken);
int worker__wait_on(worker_t *self, pthread_mutex_t *lock, list_t *l,
    int (*done)(void *ctx), void *ctx, double timeout);

/*
 * Events admitted and not yet taken off the batch.  Two counters, each
 * with one writer, cost the hot paths plain stores where one shared
 * counter would cost both sides an atomic read-modify-write.
 */
static inline size_t
worker__queued(const worker_t *w)
{
	size_t taken = atomic_load_explicit(&w->taken, memory_order_relaxed);
	size_t admitted = atomic_load_explicit(&w->admitted,
	    memory_order_relaxed) + (size_t)worker__ring_admitted(w);

	/* Read without qlock, admitted may lag behind. */
	return admitted > taken ? admitted - taken : 0;
}

/* Adds one to a counter that only one thread at a time writes. */
static inline void
worker__count(atomic_size_t *counter)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter,
	    memory_order_relaxed) + 1, memory_order_relaxed);
}

static inline void
worker__hook_push(worker_t *w, struct worker__hook *h,
    void (*fn)(void *), void *arg)
{
	h->fn = fn;
	h->arg = arg;
	h->ncleanup = w->ncleanup;
	h->prev = w->hooks;
	w->hooks = h;
}

static inline void
worker__hook_pop(worker_t *w, struct worker__hook *h)
{
	w->hooks = h->prev;
}

#endif
