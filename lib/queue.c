/*
 * queue.c - events, the per-worker locked queue, and how owners sleep and
 * are woken.
 *
 * DESIGN
 *
 * An event reaches a worker through its ring (ring.c) when it can, and
 * else through the locked queue: producers append to w->queue under
 * w->qlock.  The owner thread moves what is queued into w->batch, which
 * only it touches, and handles the batch without the lock: one lock
 * acquisition per batch, not per event, and none at all while the ring is
 * in use.  The owner is woken only when it is really asleep (w->sleeping),
 * so a busy worker costs its producers no system call.
 *
 * An event fired at several workers (bubble, broadcast) is copied once per
 * target; the copies share one struct payload whose reference count calls
 * the destructor exactly once, when the last copy is freed.  The firing
 * call holds a reference too, so a fire that queued nothing frees the data
 * before it returns.
 *
 * worker__queued() counts events admitted and not yet taken off the
 * batch; it is what queue_max bounds (a worker with queue_max only uses
 * the locked queue).  Built-in control events are always admitted, so a
 * full queue can still be stopped.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>

#include "internal.h"

/* FNV-1a: names are short, and a hash check saves most strcmp calls. */
uint32_t
worker__hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return h;
}

static const struct {
	const char *name;
	enum event_kind kind;
} builtin_names[] = {
	{ WORKER_STOP_THREAD, KIND_STOP },
	{ WORKER_PAUSE_THREAD, KIND_PAUSE },
	{ WORKER_RESUME_THREAD, KIND_RESUME },
	{ WORKER_CHILD_THREAD_START, KIND_CHILD },
	{ WORKER_CHILD_THREAD_STOP, KIND_CHILD },
	{ WORKER_CHILD_THREAD_ERROR, KIND_CHILD },
	{ WORKER_CHILD_THREAD_DONE, KIND_CHILD },
	{ WORKER_CHILD_THREAD_END, KIND_CHILD },
	{ WORKER_EXECUTE, KIND_EXECUTE },
	{ WORKER_EVENT_REJECT, KIND_REJECT },
	{ WORKER_LISTENER_ERROR, KIND_LISTENER_ERROR },
};

static enum event_kind
classify(const char *name)
{
	/* Every built-in name is upper case; most user names are not. */
	if (name[0] < 'C' || name[0] > 'S')
		return KIND_USER;
	for (size_t i = 0; i < sizeof(builtin_names) /
	    sizeof(builtin_names[0]); i++)
		if (strcmp(name, builtin_names[i].name) == 0)
			return builtin_names[i].kind;
	return KIND_USER;
}

enum { WAKE_NONE, WAKE_FUTEX, WAKE_POLL };

/* worker__spin(): bounds of w->spin_ns, in ns */
enum { SPIN_MIN = 2000, SPIN_MAX = 40000 };

static bool
always_admitted(enum event_kind kind)
{
	return kind == KIND_STOP || kind == KIND_PAUSE ||
	    kind == KIND_RESUME || kind == KIND_CHILD;
}

struct payload *
worker__payload_new(void *data, void (*data_free)(void *))
{
	struct payload *pl = malloc(sizeof(*pl));

	if (pl == NULL)
		return NULL;
	atomic_init(&pl->refs, 1);
	pl->data = data;
	pl->data_free = data_free;
	return pl;
}

void
worker__payload_put(struct payload *pl)
{
	if (pl == NULL || atomic_fetch_sub(&pl->refs, 1) != 1)
		return;
	pl->data_free(pl->data);
	free(pl);
}

/* What every copy of a fire needs: the name measured, hashed, classified. */
struct event_name {
	const char *name;
	size_t len;
	uint32_t hash;
	enum event_kind kind;
};

static void
name_init(struct event_name *n, const char *name)
{
	n->name = name;
	n->len = strlen(name);
	n->hash = worker__hash(name, n->len);
	n->kind = classify(name);
}

static struct wevent *
event_new(worker_t *source, const struct event_name *n, void *data,
    struct payload *pl, unsigned flags)
{
	struct wevent *ev = worker__event_alloc(n->len);

	if (ev == NULL)
		return NULL;
	memcpy(ev->name, n->name, n->len + 1);
	ev->hash = n->hash;
	ev->kind = n->kind;
	ev->pub.name = ev->name;
	ev->pub.data = data;
	ev->pub.source = worker__source_ref(source);
	ev->pub.flags = flags;
	ev->payload = pl;
	if (pl != NULL)
		atomic_fetch_add(&pl->refs, 1);
	return ev;
}

void
worker__event_free(struct wevent *ev)
{
	worker__payload_put(ev->payload);
	worker_unref(ev->pub.source);
	free(ev);
}

static void
event_free_cb(void *ev)
{
	worker__event_free(ev);
}

void
worker__drop_events(list_t *l)
{
	struct list_node *n;

	while ((n = list_pop(l)) != NULL)
		worker__event_free(container_of(n, struct wevent, link));
}

/*
 * The owner sleeps on a futex rather than on a condition variable: a wake
 * is one atomic operation and one system call, and the sleeper touches one
 * word.  glibc's condition variables keep several shared words that
 * signaller and waiter both write, which cost a cross-CPU round trip 15%
 * more than GLib's futex-based GCond.  The word is the ring slot the owner
 * waits for (ring.c) when its ring is open, else w->wake_seq: the sleeper
 * reads it under qlock, after it saw the queue empty, and a waker changes
 * it under qlock, so a wake between the unlock and the futex wait makes
 * the wait return at once.  A private futex wake only hashes the address,
 * so waking a word whose worker was just freed is harmless.
 */
void
worker__futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* CPUs the calling thread may run on; 0 until asked. */
static __thread int tls_cpus;

static bool
one_cpu(void)
{
	cpu_set_t set;

	if (tls_cpus == 0)
		tls_cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ?
		    CPU_COUNT(&set) : 1;
	return tls_cpus == 1;
}

/*
 * One short wait for another thread to make progress: a few pauses (tens
 * of nanoseconds), or the CPU itself if the calling thread has only one,
 * where the thread waited for may be waiting for it.
 */
void
worker__relax(void)
{
	if (one_cpu()) {
		sched_yield();
		return;
	}
	for (int i = 0; i < 4; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield");
#endif
	}
}

/* Owner, without a lock: has anything been queued since the last take? */
static bool
has_queued(const worker_t *w)
{
	return worker__ring_ready(w) || atomic_load_explicit(&w->admitted,
	    memory_order_relaxed) != w->spliced;
}

/*
 * Owner of w, out of events and about to sleep until until: first watches
 * its queue for a while.  A producer that finds the owner awake queues
 * without a system call, and the owner sees the event in well under a
 * microsecond instead of the 5-10 of a futex wake-up; two workers that
 * talk back and forth then never sleep.  How long adapts, as glibc's
 * adaptive mutexes do: a spin that caught an event doubles the next one
 * (up to SPIN_MAX), one that did not halves it (down to SPIN_MIN), so a
 * worker fed a stream spins and a worker that idles barely does.
 */
void
worker__spin(worker_t *w, uint64_t until)
{
	uint64_t end;

	if (w->spin_ns == 0)
		w->spin_ns = SPIN_MIN;
	end = worker__now_ns() + w->spin_ns;
	if (until < end)
		end = until;
	do {
		/* The clock costs more than a look: read it now and then. */
		for (int i = 0; i < 16; i++) {
			if (has_queued(w)) {
				if (w->spin_ns < SPIN_MAX)
					w->spin_ns *= 2;
				return;
			}
			worker__relax();
		}
	} while (worker__now_ns() < end);
	if (w->spin_ns > SPIN_MIN)
		w->spin_ns -= w->spin_ns / 8;
}

/*
 * Owner of w, qlock held and the queue empty: sleeps until a wake or the
 * CLOCK_MONOTONIC time until (UINT64_MAX: none).  Returns ETIMEDOUT if
 * until passed, else 0 (woken, an event came, or for no reason: the
 * caller looks again).
 */
int
worker__sleep_locked(worker_t *w, uint64_t until)
{
	struct timespec ts = worker__timespec(until);
	bool published;
	unsigned val = 0;
	atomic_uint *word = worker__ring_mark_locked(w, &val, &published);
	long rc;

	if (published)
		return 0;
	if (word == NULL) {
		word = &w->wake_seq;
		val = atomic_load(word);
	}
	w->sleep_word = word;
	w->sleep_val = val;
	w->sleeping = true;
	pthread_mutex_unlock(&w->qlock);
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val,
	    until != UINT64_MAX ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
	pthread_mutex_lock(&w->qlock);
	/* Woken by a producer of the ring, by time or for no reason. */
	if (w->sleeping) {
		w->sleeping = false;
		if (word != &w->wake_seq)
			worker__ring_unmark(word, val);
	}
	return rc == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* How to wake the owner once qlock is released. */
struct wake {
	unsigned how;
	atomic_uint *word;	/* WAKE_FUTEX */
};

/*
 * Called with w->qlock held: if the owner sleeps, marks it awake and says
 * how to wake it (WAKE_NONE: it does not sleep, or a producer of the ring
 * already wakes it).
 */
static struct wake
claim_wake(worker_t *w)
{
	struct wake wk = { WAKE_NONE, NULL };

	if (!w->sleeping)
		return wk;
	w->sleeping = false;
	if (w->polling) {
		wk.how = WAKE_POLL;
		return wk;
	}
	if (w->sleep_word == &w->wake_seq)
		atomic_fetch_add(&w->wake_seq, 1);
	else if (!worker__ring_unmark(w->sleep_word, w->sleep_val))
		return wk;
	wk.how = WAKE_FUTEX;
	wk.word = w->sleep_word;
	return wk;
}

static void
send_wake(worker_t *w, struct wake wk)
{
	if (wk.how == WAKE_POLL)
		worker__poke_locked(w);
	else if (wk.how == WAKE_FUTEX)
		worker__futex_wake(wk.word);
}

/*
 * Called with w->qlock held.  The wake goes out before the unlock: the
 * moment the lock is free, the owner may handle the event, end and free
 * w, futex word included, and the caller holds no reference that would
 * prevent it.
 */
void
worker__signal_locked(worker_t *w)
{
	send_wake(w, claim_wake(w));
}

/*
 * The hot paths wake the owner after they unlock instead: an owner woken
 * under the lock only wakes to block on it again, which costs it two more
 * futex calls and a context switch.  w->wakers keeps the futex word and
 * the eventfd alive meanwhile: worker_free() waits for it to drop to
 * zero, and it cannot rise again then, because only a call that found w
 * running under qlock (or holds a reference) raises it.  Called with
 * qlock held, with what claim_wake() said under it.
 */
static void
unlock_and_wake(worker_t *w, struct wake wk)
{
	if (wk.how != WAKE_NONE)
		atomic_fetch_add_explicit(&w->wakers, 1, memory_order_relaxed);
	pthread_mutex_unlock(&w->qlock);
	if (wk.how == WAKE_NONE)
		return;
	send_wake(w, wk);
	atomic_fetch_sub_explicit(&w->wakers, 1, memory_order_release);
}

/* worker_free(): no call may still be about to wake w. */
void
worker__wakers_wait(worker_t *w)
{
	while (atomic_load_explicit(&w->wakers, memory_order_acquire) != 0)
		sched_yield();
}

/* Appends ev to w's locked queue, or says why not; wakes w if it sleeps. */
static int
enqueue(worker_t *w, struct wevent *ev)
{
	pthread_mutex_lock(&w->qlock);
	if (w->phase != PHASE_RUNNING) {
		pthread_mutex_unlock(&w->qlock);
		return ESRCH;
	}
	if (w->queue_max != 0 && !always_admitted(ev->kind) &&
	    worker__queued(w) >= w->queue_max) {
		pthread_mutex_unlock(&w->qlock);
		return EAGAIN;
	}
	worker__ring_locked_send(w);
	list_append(&w->queue, &ev->link);
	worker__count(&w->admitted);
	if (w->epfd >= 0)
		worker__fd_signal_locked(w);
	unlock_and_wake(w, claim_wake(w));
	return 0;
}

/*
 * Tells a running sender that target refused ev.  The EVENT_REJECT owns
 * the rejected event, so the original payload lives until the sender's
 * listeners have seen it.
 */
static void
reject(worker_t *target, struct wevent *ev)
{
	worker_t *sender = ev->pub.source;
	struct payload *pl;

	if (ev->kind == KIND_REJECT || sender == NULL ||
	    !worker_is_running(sender) ||
	    (pl = worker__payload_new(ev, event_free_cb)) == NULL) {
		worker__event_free(ev);
		return;
	}
	worker__send(target, sender, WORKER_EVENT_REJECT, &ev->pub, pl, 0,
	    false);
	worker__payload_put(pl);
}

/*
 * Queues one copy of an event on target: through its ring if it can
 * (ring.c), else on the locked queue.  With notify, a refusal because
 * target is not running is reported to the source with EVENT_REJECT.
 */
int
worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	struct event_name n;
	struct wevent *ev;
	int rc;

	name_init(&n, name);
	if (worker__ring_send(source, target, name, n.len, n.hash, n.kind,
	    data, pl, flags))
		return 0;
	if ((ev = event_new(source, &n, data, pl, flags)) == NULL)
		return ENOMEM;
	rc = enqueue(target, ev);
	if (rc == ESRCH && notify)
		reject(target, ev);
	else if (rc != 0)
		worker__event_free(ev);
	return rc;
}

/* Makes the owner of w leave its sleep and look at its wait again. */
void
worker__wake(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	w->woken = true;
	unlock_and_wake(w, claim_wake(w));
}

/* qlock held: is nothing queued for the owner to take? */
bool
worker__queue_empty_locked(const worker_t *w)
{
	return list_empty(&w->queue) && !worker__ring_pending_locked(w);
}

/*
 * Owner, qlock held: moves what is queued to the end of the batch, the
 * ring first (what went there went before the locked queue was used).
 */
void
worker__take_locked(worker_t *w)
{
	worker__ring_take_locked(w);
	list_splice_tail(&w->batch, &w->queue);
	w->spliced = atomic_load_explicit(&w->admitted, memory_order_relaxed);
	worker__ring_reopen_locked(w);
}

/* Owner thread: moves what is queued to the end of the batch. */
void
worker__take_batch(worker_t *w)
{
	worker__unref_flush(w);
	if (worker__ring_open(w)) {
		worker__ring_take(w);
		/* The locked queue is empty while the ring is open. */
		if (worker__ring_open(w))
			return;
	}
	pthread_mutex_lock(&w->qlock);
	worker__take_locked(w);
	pthread_mutex_unlock(&w->qlock);
}

/* Owner thread: the next event of the batch, or NULL. */
struct wevent *
worker__next(worker_t *w)
{
	struct list_node *n = list_pop(&w->batch);

	if (n == NULL)
		return NULL;
	worker__count(&w->taken);
	return container_of(n, struct wevent, link);
}
