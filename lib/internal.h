/*
 * internal.h - what the files of lib/ share.  Nothing here is public.
 *
 * DESIGN
 *
 * The layers.  Each file of lib/ calls only files on its own line or
 * below it; `make lint` checks this from the objects' symbols
 * (test/layers.sh).  Read from the bottom, this is the path of an event:
 * fire.c -> tree.c (bubble, broadcast) -> send.c -> ring.c or queue.c ->
 * event.c -> wake.c, and on the owner's side loop.c -> send.c (take) ->
 * listen.c (dispatch) -> control.c (built-in actions) -> event.c (free).
 *
 *   api       fire.c wait.c exit.c async.c defer.c dump.c json.c inspect.c
 *   life      worker.c end.c supervise.c   life, children first, restarts
 *   services  channel.c signal.c fork.c
 *   observe   stats.c      counters, and what a worker does, in words
 *   waiting   waitq.c      waiting in the loop for another object
 *   loop      loop.c       the breakpoints' loop, pause, worker_update
 *   dispatch  listen.c     listeners, and handing an event to them
 *   control   control.c    the actions of the built-in events
 *   tree      tree.c       parents and children, bubble and broadcast
 *   sources   watch.c timer.c embed.c   descriptors, timers, worker_fd
 *   inbox     send.c       one copy of an event into a worker, the batch
 *   paths     ring.c queue.c   the lock-free and the locked way in
 *   event     event.c      events, payloads, their memory, the one free
 *   unwind    unwind.c     frames, hooks, the cleanup stack
 *   os        wake.c       sleeping and waking: futex, eventfd, ppoll
 *   thread    root.c       the calling thread's worker, root workers
 *   base      log.c heap.c calq.c list.h clock.c  and the built-in names
 *
 * Three calls go up, all into the life of a worker object (worker.c),
 * and layers.sh knows them by name: dropping a reference
 * (worker_unref, worker__unref_many) may free a worker, and the free
 * finishes every part; a root worker is allocated (worker__alloc) and
 * ended (worker__end) by the thread layer, since any thread may need one.
 *
 * The OS interfaces beyond pthreads live in wake.c (futex, eventfd,
 * ppoll), embed.c (epoll, timerfd), signal.c (signalfd) and root.c
 * (gettid): a port to another kernel is those four files.
 *
 * A worker is a struct worker made of parts (parts.h), one per module,
 * each with an init and a fini in its own file (as libdill's ctx.c does
 * it); worker.c allocates the worker and calls them.  Each part says which
 * lock guards its fields:
 *
 *   - immutable after worker_new(): name, id, fn, arg, parent, daemon...;
 *   - tree_lock (one process-wide mutex, tree.c): the parent/children links;
 *   - qlock (per worker): the run state and the parts marked qlock;
 *   - llock (per worker, listen.c): the listeners;
 *   - owner: only the thread that runs the worker (or the thread of a
 *     root worker) touches it.
 *
 * Lock order: tree_lock, then a qlock.  llock is a leaf.  No code holds
 * two qlocks at once, and no lock is held while a user callback runs or
 * while the owner thread unwinds.
 *
 * References: worker_new() gives the caller one; a started worker holds
 * one on itself until its end sequence is done; a child holds one on its
 * parent; an event holds one on its source (prepaid in bulk, event.c).
 * A parent's list of children is weak: traversals take a reference with
 * worker__tryref() under tree_lock and skip workers that are already
 * being freed.
 */
#ifndef WORKER_INTERNAL_H
#define WORKER_INTERNAL_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <poll.h>
#include <syslog.h>

#include "calq.h"
#include "clock.h"
#include "heap.h"
#include "list.h"
#include "worker.h"

/* ---- base: the built-in events ------------------------------------ */

/*
 * Every built-in event, classified once when it is fired.  To add one:
 * a kind here, a line in builtin_names[], and its action in control.c
 * (or, if it holds the loop as PAUSE_THREAD does, in loop.c).
 */
enum event_kind {
	KIND_USER,
	KIND_STOP,
	KIND_PAUSE,
	KIND_RESUME,
	KIND_CHILD,		/* CHILD_THREAD_START, _STOP, _ERROR, _DONE */
	KIND_CHILD_END,		/* CHILD_THREAD_END: a parent may restart */
	KIND_EXECUTE,
	KIND_REJECT,
	KIND_LISTENER_ERROR,
	KIND_SIGNAL
};

struct builtin_name {
	const char *name;
	enum event_kind kind;
	bool always_admitted;	/* even when queue_max is reached */
};

/* The table, in a function so that files which do not use it stay quiet. */
static inline const struct builtin_name *
worker__builtins(size_t *n)
{
	static const struct builtin_name names[] = {
		{ WORKER_STOP_THREAD, KIND_STOP, true },
		{ WORKER_PAUSE_THREAD, KIND_PAUSE, true },
		{ WORKER_RESUME_THREAD, KIND_RESUME, true },
		{ WORKER_CHILD_THREAD_START, KIND_CHILD, true },
		{ WORKER_CHILD_THREAD_STOP, KIND_CHILD, true },
		{ WORKER_CHILD_THREAD_ERROR, KIND_CHILD, true },
		{ WORKER_CHILD_THREAD_DONE, KIND_CHILD, true },
		{ WORKER_CHILD_THREAD_END, KIND_CHILD_END, true },
		{ WORKER_EXECUTE, KIND_EXECUTE, false },
		{ WORKER_EVENT_REJECT, KIND_REJECT, false },
		{ WORKER_LISTENER_ERROR, KIND_LISTENER_ERROR, false },
		{ WORKER_SIGNAL, KIND_SIGNAL, false },
	};

	*n = sizeof(names) / sizeof(names[0]);
	return names;
}

/* The entry of a built-in name, or NULL for a user event. */
static inline const struct builtin_name *
worker__builtin_of(const char *name)
{
	size_t n;
	const struct builtin_name *b = worker__builtins(&n);

	/* Every built-in name is upper case; most user names are not. */
	if (name[0] < 'A' || name[0] > 'Z')
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, b[i].name) == 0)
			return &b[i];
	return NULL;
}

/* Bit n set: some built-in name is n bytes long. */
#define BUILTIN_LEN(name)	(1u << (sizeof(name) - 1))
#define BUILTIN_LENGTHS							\
	(BUILTIN_LEN(WORKER_STOP_THREAD) | BUILTIN_LEN(WORKER_PAUSE_THREAD) | \
	BUILTIN_LEN(WORKER_RESUME_THREAD) |				\
	BUILTIN_LEN(WORKER_CHILD_THREAD_START) |			\
	BUILTIN_LEN(WORKER_CHILD_THREAD_STOP) |				\
	BUILTIN_LEN(WORKER_CHILD_THREAD_ERROR) |			\
	BUILTIN_LEN(WORKER_CHILD_THREAD_DONE) |				\
	BUILTIN_LEN(WORKER_CHILD_THREAD_END) |				\
	BUILTIN_LEN(WORKER_EXECUTE) |					\
	BUILTIN_LEN(WORKER_EVENT_REJECT) |				\
	BUILTIN_LEN(WORKER_LISTENER_ERROR) | BUILTIN_LEN(WORKER_SIGNAL))

/* As worker__builtin_of(), for a name whose length len is known. */
static inline const struct builtin_name *
worker__builtin_of_len(const char *name, size_t len)
{
	/* Upper case and of a built-in's length: few user names are. */
	if (name[0] < 'A' || name[0] > 'Z' || len >= 32 ||
	    !(BUILTIN_LENGTHS >> len & 1))
		return NULL;
	return worker__builtin_of(name);
}

/* 1 + the place of ev_name in the table if it is built in, else 0. */
static inline unsigned
worker__builtin_number(const char *ev_name)
{
	size_t n;
	const struct builtin_name *b = worker__builtins(&n),
	    *found = worker__builtin_of(ev_name);

	(void)n;
	return found != NULL ? (unsigned)(found - b) + 1 : 0;
}

/* The name of built-in event number (worker__builtin_number), or NULL. */
static inline const char *
worker__builtin_name(unsigned number)
{
	size_t n;
	const struct builtin_name *b = worker__builtins(&n);

	return number >= 1 && number <= n ? b[number - 1].name : NULL;
}

/* ---- base: clock.c ------------------------------------------------- */

/* Whether the statistics read clocks: from the first look on. */
extern atomic_bool worker__timing;
void worker__timing_on(void);

/* ---- base: log.c --------------------------------------------------- */

/* Writes one message about w (may be NULL); level is syslog's LOG_*. */
void worker__log(int level, const worker_t *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes (true) or releases the log's lock, around fork(). */
void worker__log_lock(bool lock);

#include "parts.h"

/* ---- thread: root.c ------------------------------------------------ */

extern atomic_uint worker__epoch;
/*
 * The calling thread's worker, or NULL.  Initial-exec: read with one
 * move in the shared library too, where the default model would call
 * __tls_get_addr() on every fire.
 */
extern __thread worker_t *worker__tls_current
    __attribute__((tls_model("initial-exec")));
void worker__thread_init(struct worker__thread_part *t);
void worker__thread_forked(void);
worker_t *worker__root_current(void);

/* The calling thread's worker, made a root worker on first need. */
static inline worker_t *
worker__current(void)
{
	worker_t *w = worker__tls_current;

	return w != NULL ? w : worker__root_current();
}

/* The calling thread's worker, or NULL if it has none yet. */
static inline worker_t *
worker__get_current(void)
{
	return worker__tls_current;
}

static inline void
worker__set_current(worker_t *w)
{
	worker__tls_current = w;
}
bool worker__on_this_thread(const worker_t *w);
bool worker__waits_for_itself(const worker_t *w);

/* ---- os: wake.c ---------------------------------------------------- */

/*
 * A sleeper may sleep on a word of its own choosing (a ring slot) after
 * setting this bit in it; whoever clears the bit wakes it (wake.c).
 */
#define WORKER_WAKE_MARK 1u

void worker__wake_init(struct worker__wake_part *wk);
void worker__wake_fini(struct worker__wake_part *wk);
void worker__relax(void);
void worker__futex_wake(atomic_uint *word);
bool worker__mark(atomic_uint *word, unsigned free_val, unsigned *val);
bool worker__unmark(atomic_uint *word, unsigned val);
void worker__spin(worker_t *w, uint64_t until,
    bool (*ready)(const worker_t *w));
int worker__sleep_locked(worker_t *w, atomic_uint *word, unsigned val,
    uint64_t until);
int worker__poll_locked(worker_t *w, struct pollfd *pfds, size_t n,
    bool wait, uint64_t until);
int worker__need_eventfd_locked(worker_t *w);
void worker__signal_locked(worker_t *w);
void worker__unlock_and_wake(worker_t *w);
void worker__wake(worker_t *w);
void worker__wakers_wait(worker_t *w);
void worker__fd_signal_locked(worker_t *w);
void worker__due_locked(worker_t *w, uint64_t due);
void worker__fd_arm_locked(worker_t *w);
void worker__fd_clear(worker_t *w);
int worker__eventfd_new(void);
void worker__eventfd_poke(int fd);
void worker__eventfd_drain(int fd);
void worker__close_fd(int *fd);

/* ---- unwind: unwind.c ---------------------------------------------- */

/* A non-local exit target: the start of a task, or one drained event. */
struct worker__frame {
	struct worker__frame *prev;
	struct worker__hook *hooks;	/* hooks older than the frame */
	size_t ncleanup;		/* handlers older than the frame */
	void (*leaving)(worker_t *w);	/* first thing a throw does, or NULL */
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

void worker__unwind_init(struct worker__unwind_part *u);
void worker__unwind_fini(struct worker__unwind_part *u);
int worker__protect(worker_t *w, void (*fn)(void *), void *arg,
    void (*leaving)(worker_t *w));
_Noreturn void worker__throw(worker_t *w, int outcome);
int worker__cleanup_push(worker_t *w, void (*fn)(void *), void *arg);
bool worker__cleanup_pop(worker_t *w, struct cleanup *c);
void worker__run_cleanups(worker_t *w, size_t down_to);

static inline void
worker__hook_push(worker_t *w, struct worker__hook *h,
    void (*fn)(void *), void *arg)
{
	h->fn = fn;
	h->arg = arg;
	h->ncleanup = w->unwind.ncleanup;
	h->prev = w->unwind.hooks;
	w->unwind.hooks = h;
}

static inline void
worker__hook_pop(worker_t *w, struct worker__hook *h)
{
	w->unwind.hooks = h->prev;
}

/* ---- event: event.c ------------------------------------------------ */

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
	struct wevent *spare_next;	/* in a worker's spare nodes */
	worker_t *home;		/* a reserved node's worker, or NULL */
	uint32_t hash;
	uint32_t len;		/* of name, UINT32_MAX if longer */
	uint8_t kind;
	uint8_t reserve;	/* a reserved node's index in home */
	bool pooled;		/* a node of the pool's size, to keep */
	bool local;		/* the owner's copy of a ring slot, on its
				 * stack (ring.c): no node to free */
	worker_event_t pub;	/* pub.name points at name[] */
	struct payload *payload;
	char name[];
};

/* What every copy of a fire needs: the name measured, hashed, classified. */
struct event_name {
	const char *name;
	size_t len;
	uint32_t hash;
	enum event_kind kind;
	bool always_admitted;
};

/* FNV-1a: names are short, and a hash check saves most strcmp calls. */
#define WORKER_HASH_START 2166136261u

static inline uint32_t
worker__hash_byte(uint32_t h, unsigned char c)
{
	return (h ^ c) * 16777619u;
}

static inline uint32_t
worker__hash(const char *name, size_t len)
{
	uint32_t h = WORKER_HASH_START;

	for (size_t i = 0; i < len; i++)
		h = worker__hash_byte(h, (unsigned char)name[i]);
	return h;
}

/*
 * Measures, hashes and classifies a name, once per fire: one pass that
 * hashes as it looks for the end, as worker__hash() would hash it.
 */
static inline void
worker__name_init(struct event_name *n, const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	const struct builtin_name *b;
	uint32_t h = WORKER_HASH_START;

	for (; *p != '\0'; p++)
		h = worker__hash_byte(h, *p);
	n->name = name;
	n->len = (size_t)(p - (const unsigned char *)name);
	n->hash = h;
	b = worker__builtin_of_len(name, n->len);
	n->kind = b != NULL ? b->kind : KIND_USER;
	n->always_admitted = b != NULL && b->always_admitted;
}

/* One more copy of an event shares pl (NULL: no payload). */
static inline void
worker__payload_hold(struct payload *pl)
{
	if (pl != NULL)
		atomic_fetch_add(&pl->refs, 1);
}

int worker__events_init(struct worker__event_part *e, worker_t *w);
void worker__events_fini(struct worker__event_part *e);
struct payload *worker__payload_new(void *data, void (*data_free)(void *));
void worker__payload_put(struct payload *pl);
struct wevent *worker__event_new(worker_t *source, const struct event_name *n,
    void *data, struct payload *pl, unsigned flags);
struct wevent *worker__event_reserved(worker_t *source, worker_t *target,
    const struct event_name *n, void *data, struct payload *pl,
    unsigned flags);
struct wevent *worker__event_node(worker_t *w, unsigned kind);
void worker__event_free(worker_t *w, struct wevent *ev);

/*
 * worker__event_free(w, ev) for the owner w, inline for the common case:
 * the stack copy of a ring slot, with no payload, from the sender of the
 * events before it, whose reference joins theirs (event.c).
 */
static inline void
worker__event_done(worker_t *w, struct wevent *ev)
{
	if (ev->local && ev->payload == NULL && ev->pub.source != NULL &&
	    ev->pub.source == w->events.unref_source) {
		w->events.unref_count++;
		return;
	}
	worker__event_free(w, ev);
}
void worker__event_node_free(struct wevent *ev);
void worker__drop_events(list_t *l);
worker_t *worker__source_prepay(worker_t *source);

void worker__source_settle(worker_t *w);
void worker__unref_flush(worker_t *w);

/* ---- paths: queue.c, ring.c ---------------------------------------- */

/* The longest name a ring slot holds; longer ones take the locked queue. */
#define RING_NAME_MAX 24

/*
 * An event on the owner's stack, with room for a ring slot's name: what
 * worker__ring_pop() fills.  A union, since a struct with a flexible
 * array may not be a member of another struct.
 */
union worker__event_room {
	struct wevent ev;
	char bytes[sizeof(struct wevent) + RING_NAME_MAX + 1];
};

void worker__queue_init(struct worker__queue_part *q, size_t max);
void worker__queue_fini(struct worker__queue_part *q);
void worker__queue_append_locked(worker_t *w, struct wevent *ev);
void worker__queue_take_locked(worker_t *w, list_t *into);
bool worker__queue_empty_locked(const worker_t *w);
bool worker__queue_changed(const worker_t *w);

void worker__ring_init(worker_t *w);
void worker__ring_fini(worker_t *w);
bool worker__ring_send(worker_t *source, worker_t *w,
    const struct event_name *n, void *data, struct payload *pl,
    unsigned flags);
size_t worker__ring_take(worker_t *w, list_t *into);
bool worker__ring_pop(worker_t *w, struct wevent *ev);
void worker__ring_free(worker_t *w);
size_t worker__ring_published(const worker_t *w, size_t max);
void worker__ring_take_locked(worker_t *w, list_t *into);
bool worker__ring_open(const worker_t *w);
bool worker__ring_locked(const worker_t *w);
void worker__ring_close_locked(worker_t *w);
void worker__ring_reopen_locked(worker_t *w);
void worker__ring_hold_locked(worker_t *w);
void worker__ring_release_locked(worker_t *w);
void worker__ring_locked_send(worker_t *w);
bool worker__ring_resend_locked(worker_t *w, struct wevent *ev, size_t len);
bool worker__ring_waited(const worker_t *w);
bool worker__ring_grow_locked(worker_t *w);
bool worker__ring_pending_locked(const worker_t *w);
bool worker__ring_ready(const worker_t *w);
uint64_t worker__ring_admitted(const worker_t *w);
atomic_uint *worker__ring_mark_locked(worker_t *w, unsigned *val,
    bool *published);

/* ---- inbox: send.c ------------------------------------------------- */

void worker__inbox_init(struct worker__inbox_part *in);
void worker__inbox_fini(worker_t *w);
int worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify);
bool worker__pending_locked(const worker_t *w);
bool worker__pending(worker_t *w);
bool worker__has_queued(const worker_t *w);
void worker__take_batch(worker_t *w);
void worker__take_locked(worker_t *w);
size_t worker__top_up(worker_t *w);
void worker__grow_ring(worker_t *w);
struct wevent *worker__next(worker_t *w, struct wevent *local);
size_t worker__queued(const worker_t *w);

/* ---- sources: embed.c, timer.c, watch.c ---------------------------- */

void worker__embed_init(struct worker__embed_part *em);
void worker__embed_fini(worker_t *w);
void worker__fd_rearm(worker_t *w);

struct timer;
void worker__timers_init(struct worker__timer_part *t);
void worker__timers_fini(worker_t *w);
int worker__timers_run(worker_t *w);
void worker__timers_drop(worker_t *w);

void worker__watches_init(struct worker__watch_part *wa);
void worker__watches_fini(worker_t *w);
int worker__watches_run(worker_t *w, bool wait, uint64_t until);
void worker__watches_drop(worker_t *w);
int worker__watch(worker_t *w, int fd, unsigned events,
    void (*cb)(int fd, unsigned revents, void *ctx), void *ctx,
    void (*dropped)(void *ctx), uint64_t *id);

/* ---- tree: tree.c -------------------------------------------------- */

extern pthread_mutex_t worker__tree_lock;
void worker__tree_init(worker_t *w);
void worker__tree_fini(worker_t *w);
int worker__tree_link(worker_t *child);
int worker__tree_link_locked(worker_t *child);
void worker__tree_unlink(worker_t *child);
void worker__tree_close(worker_t *w, bool closing);
void worker__tree_abandon(worker_t *child);
size_t worker__children_newest_first(worker_t *w, worker_t ***out);
size_t worker__top_newest_first(worker_t ***out, bool *short_of_memory);
void worker__each_top_locked(bool (*fn)(worker_t *w, void *ctx), void *ctx);
int worker__tree_fire(worker_t *w, bool deep, worker_t *source,
    const char *name, void *data, struct payload *pl, unsigned flags);
int worker__fire_from(worker_t *source, worker_t *w, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify);
void worker__stop_children(worker_t *w);

/* ---- control: control.c -------------------------------------------- */

void worker__control_init(struct worker__control_part *c);
void worker__control(worker_t *w, struct wevent *ev);

/*
 * A STOP_THREAD that comes while the listeners of an earlier one run (one
 * of them waits), or while the worker ends its children (end.c), is
 * handled once: the worker is already stopping, and handing it over again
 * would nest one dispatch per stop, or cut its children's ending short.
 */
static inline bool
worker__control_redundant(const worker_t *w, const struct wevent *ev)
{
	/* Also while a started worker ends its children: it is stopping
	 * already.  A root's stop still cancels the wait it is in. */
	return ev->kind == KIND_STOP && (w->control.stopping > 0 ||
	    (w->unwind.leaving && !w->is_root));
}

/* Did a stop cancel the root's wait since the last look?  Clears it. */
static inline bool
worker__stop_seen(worker_t *w)
{
	if (!w->control.canceled)
		return false;
	w->control.canceled = false;
	return true;
}

/* ---- dispatch: listen.c -------------------------------------------- */

void worker__listen_init(struct worker__listen_part *l);
void worker__listen_fini(worker_t *w);
void worker__dispatch(worker_t *w, struct wevent *ev);
void worker__remove_transient(worker_t *w);
void worker__free_garbage(worker_t *w);
const char *worker__listening_to(worker_t *w, char *buf, size_t size);

/* ---- loop: loop.c -------------------------------------------------- */

/* Which call a loop runs for, for reports of stuck workers (end.c). */
enum worker_wait_call {
	WAIT_CALL_LOOP,			/* none of the below */
	WAIT_CALL_EVENT,		/* worker_wait_event() */
	WAIT_CALL_UNTIL,		/* worker_wait_until() */
	WAIT_CALL_SLEEP,		/* worker_sleep() */
	WAIT_CALL_FOREVER,		/* worker_wait_forever(), a NULL task */
	WAIT_CALL_UPDATE,		/* worker_update() */
	WAIT_CALL_THREAD,		/* worker_wait_thread(), async_get */
	WAIT_CALL_DEFER,		/* worker_defer_get() */
	WAIT_CALL_CHILDREN,		/* the end of its children (end.c) */
	WAIT_CALL_PAUSE			/* PAUSE_THREAD's hold */
};

/* What a loop waits for.  All fields are optional. */
struct worker__wait {
	unsigned call;			/* enum worker_wait_call */
	int (*match)(const worker_event_t *ev, void *ctx);
	void *match_ctx;
	int (*done)(void *ctx);		/* checked whenever the loop wakes */
	void *done_ctx;
	double timeout;			/* negative: no limit */
	void *data;			/* out: data of the matching event */
};

void worker__loop_init(struct worker__loop_part *lp);
void worker__loop_fini(worker_t *w);
int worker__loop(worker_t *w, struct worker__wait *wt);
int worker__update(worker_t *w);
void worker__drain(worker_t *w);

/* ---- waiting: waitq.c ---------------------------------------------- */

/* A worker blocked in a loop until another worker's state changes. */
struct worker__waiter {
	struct list_node link;
	atomic_uint refs;
	worker_t *worker;	/* holds a reference */
	bool linked;		/* guarded by the lock of the list */
};

struct worker__waiter *worker__waiter_add(list_t *l, worker_t *w);
void worker__waiter_remove(struct worker__waiter *wt);
void worker__waiters_take(list_t *woken, list_t *l);
void worker__waiters_wake(list_t *woken);
int worker__wait_on(worker_t *self, pthread_mutex_t *lock, list_t *l,
    int (*done)(void *ctx), void *ctx, double timeout, unsigned call);

/* ---- observe: stats.c ---------------------------------------------- */

/* new, running, paused, ending, ended or root. */
const char *worker__state_name(worker_t *w);

/* ---- services: signal.c, channel.c --------------------------------- */

void worker__fork_init(void);

void worker__signals_init(struct worker__signal_part *s);
void worker__signals_fini(worker_t *w);
int worker__signals_watch(worker_t *w);

extern pthread_mutex_t worker__channel_lock;
void worker__channels_init(struct worker__channel_part *c);
void worker__channels_fini(worker_t *w);

/* ---- life: worker.c ------------------------------------------------ */

worker_t *worker__alloc(const char *name, bool is_root);
void worker__unref_many(worker_t *w, unsigned n);
void worker__end(worker_t *w);
void worker__end_children(worker_t *w);
void worker__end_some(worker_t *w, worker_t **kids, size_t n);
int worker__join_until(worker_t *w, uint64_t until);
int worker__supervise_init(worker_t *w, const worker_attr_t *attr);
void worker__supervise_fini(worker_t *w);
void worker__supervise_run(worker_t *w);
void worker__supervise_end(worker_t *w);

/* ---- api: json.c -------------------------------------------------- */

int worker__json_snapshot(const worker_t *root, char **buf, size_t *len);

/* ---- Small things every layer uses --------------------------------- */

/*
 * What the owner is doing, for a parent that finds it stuck and for
 * worker_stats(): the owner sets it as it enters and leaves each kind of
 * call, with one relaxed store, and any thread may read it.  A listener's
 * record holds no name, which may be gone by the time another thread
 * reads it: the number of a built-in event, and listen.c keeps the
 * listener called, whose own copy of the name it can read safely.
 */
enum worker_doing {
	DOING_IDLE,		/* not running */
	DOING_TASK,		/* in its task, outside any breakpoint */
	DOING_WAIT,		/* waiting in a breakpoint */
	DOING_LISTENER,		/* in a listener, or the action of a
				 * built-in event (its number, or 0) */
	DOING_TIMER,		/* in a timer's callback */
	DOING_WATCH,		/* in a watch's callback */
	DOING_PAUSED,		/* paused, until RESUME_THREAD */
	DOING_STOPPING,		/* ending its children before its own end */
	DOING_ENDING		/* in its end sequence */
};

/* Records what the owner of w does now; returns the record to restore. */
static inline unsigned
worker__doing(worker_t *w, enum worker_doing what, unsigned kind)
{
	unsigned old = atomic_load_explicit(&w->doing, memory_order_relaxed);

	atomic_store_explicit(&w->doing, (unsigned short)(what | kind << 8),
	    memory_order_relaxed);
	return old;
}

static inline void
worker__doing_restore(worker_t *w, unsigned old)
{
	atomic_store_explicit(&w->doing, (unsigned short)old,
	    memory_order_relaxed);
}

/*
 * Was w made before this process forked (fork.c)?  Its thread is not in
 * this process, and its locks may be held for ever: calls answer ESRCH.
 */
static inline bool
worker__gone(const worker_t *w)
{
	return w->epoch != atomic_load_explicit(&worker__epoch,
	    memory_order_relaxed);
}

/* A reference unless w is already being freed; tree walks need this. */
static inline bool
worker__tryref(worker_t *w)
{
	unsigned n = atomic_load(&w->refs);

	while (n != 0)
		if (atomic_compare_exchange_weak(&w->refs, &n, n + 1))
			return true;
	return false;
}

static inline worker_t *
worker__ref(worker_t *w)
{
	if (w != NULL)
		atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
	return w;
}

/* The reference an event sent by source holds on it (may be NULL). */
static inline worker_t *
worker__source_ref(worker_t *source)
{
	if (source == NULL || source != worker__get_current())
		return worker__ref(source);
	if (source->events.prepaid == 0)
		return worker__source_prepay(source);
	source->events.prepaid--;
	return source;
}

static inline bool
worker__running(const worker_t *w)
{
	return atomic_load(&w->running) != 0;
}

/* Adds one to a counter that only one thread at a time writes. */
static inline void
worker__count(atomic_size_t *counter)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter,
	    memory_order_relaxed) + 1, memory_order_relaxed);
}

#include "stats.h"
#include "probes.h"

#endif
