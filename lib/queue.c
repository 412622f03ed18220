/*
 * queue.c - events and the per-worker event queue.
 *
 * DESIGN
 *
 * Producers append to w->queue under w->qlock.  The owner thread takes the
 * whole queue in one step (worker__take_batch) into w->batch, which only it
 * touches, and handles the batch without the lock: one lock acquisition per
 * batch, not per event.  The owner is woken only when it is really asleep
 * (w->sleeping), so a busy worker costs its producers no system call.
 *
 * An event fired at several workers (bubble, broadcast) is copied once per
 * target; the copies share one struct payload whose reference count calls
 * the destructor exactly once, when the last copy is freed.  The firing
 * call holds a reference too, so a fire that queued nothing frees the data
 * before it returns.
 *
 * worker__queued() counts events admitted and not yet taken off the
 * batch; it is what queue_max bounds.  Built-in control events are
 * always admitted, so a full queue can still be stopped.
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

static struct wevent *
event_new(worker_t *source, worker_t *target, const char *name, void *data,
    struct payload *pl, unsigned flags)
{
	size_t len = strlen(name);
	struct wevent *ev = worker__event_alloc(target, len);

	if (ev == NULL)
		return NULL;
	memcpy(ev->name, name, len + 1);
	ev->hash = worker__hash(name, len);
	ev->kind = classify(name);
	ev->pub.name = ev->name;
	ev->pub.data = data;
	ev->pub.source = worker_ref(source);
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
 * The owner sleeps on a futex, w->wake_seq, rather than on a condition
 * variable: a wake is one atomic add and one system call, and the sleeper
 * touches one word.  glibc's condition variables keep several shared
 * words that signaller and waiter both write, which cost a cross-CPU
 * round trip 15% more than GLib's futex-based GCond.  The sleeper reads
 * wake_seq under qlock, after it saw the queue empty; a waker adds to it
 * under qlock, so a wake between the unlock and the futex wait makes the
 * wait return at once.
 */
static void
futex_wake(atomic_uint *word)
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

/* Lets the producer on: a pause, or the CPU itself if the thread has
 * only one, where the producer may be waiting for it. */
static void
spin_once(bool yield)
{
	if (yield) {
		sched_yield();
		return;
	}
	for (int i = 0; i < 64; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield");
#endif
	}
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
	bool yield = one_cpu();
	uint64_t end;

	if (w->spin_ns == 0)
		w->spin_ns = SPIN_MIN;
	end = worker__now_ns() + w->spin_ns;
	if (until < end)
		end = until;
	do {
		if (worker__queued(w) != 0) {
			if (w->spin_ns < SPIN_MAX)
				w->spin_ns *= 2;
			return;
		}
		spin_once(yield);
	} while (worker__now_ns() < end);
	if (w->spin_ns > SPIN_MIN)
		w->spin_ns -= w->spin_ns / 8;
}

/*
 * Owner of w, qlock held and the queue empty: sleeps until a wake or the
 * CLOCK_MONOTONIC time until (UINT64_MAX: none).  Returns ETIMEDOUT if
 * until passed, else 0 (woken, or for no reason: the caller looks again).
 */
int
worker__sleep_locked(worker_t *w, uint64_t until)
{
	unsigned seq = atomic_load(&w->wake_seq);
	struct timespec ts = worker__timespec(until);
	long rc;

	w->sleeping = true;
	pthread_mutex_unlock(&w->qlock);
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	rc = syscall(SYS_futex, &w->wake_seq, FUTEX_WAIT_BITSET_PRIVATE, seq,
	    until != UINT64_MAX ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
	pthread_mutex_lock(&w->qlock);
	w->sleeping = false;
	return rc == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

/*
 * Called with w->qlock held: if the owner sleeps, marks it awake and says
 * how to wake it (WAKE_NONE: it does not sleep).
 */
static unsigned
claim_wake(worker_t *w)
{
	if (!w->sleeping)
		return WAKE_NONE;
	w->sleeping = false;
	if (w->polling)
		return WAKE_POLL;
	atomic_fetch_add(&w->wake_seq, 1);
	return WAKE_FUTEX;
}

static void
send_wake(worker_t *w, unsigned how)
{
	if (how == WAKE_POLL)
		worker__poke_locked(w);
	else if (how == WAKE_FUTEX)
		futex_wake(&w->wake_seq);
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
unlock_and_wake(worker_t *w, unsigned how)
{
	if (how != WAKE_NONE)
		atomic_fetch_add_explicit(&w->wakers, 1, memory_order_relaxed);
	pthread_mutex_unlock(&w->qlock);
	if (how == WAKE_NONE)
		return;
	send_wake(w, how);
	atomic_fetch_sub_explicit(&w->wakers, 1, memory_order_release);
}

/* worker_free(): no call may still be about to wake w. */
void
worker__wakers_wait(worker_t *w)
{
	while (atomic_load_explicit(&w->wakers, memory_order_acquire) != 0)
		sched_yield();
}

/* Appends ev to w's queue, or says why not; wakes w if it sleeps. */
static int
enqueue(worker_t *w, struct wevent *ev)
{
	unsigned how;

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
	list_append(&w->queue, &ev->link);
	worker__count(&w->admitted);
	how = claim_wake(w);
	if (w->epfd >= 0)
		worker__fd_signal_locked(w);
	unlock_and_wake(w, how);
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
 * Queues one copy of an event on target.  With notify, a refusal because
 * target is not running is reported to the source with EVENT_REJECT.
 */
int
worker__send(worker_t *source, worker_t *target, const char *name,
    void *data, struct payload *pl, unsigned flags, bool notify)
{
	struct wevent *ev = event_new(source, target, name, data, pl, flags);
	int rc;

	if (ev == NULL)
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

/* Owner thread: moves the whole queue to the end of the batch. */
void
worker__take_batch(worker_t *w)
{
	worker__unref_flush(w);
	pthread_mutex_lock(&w->qlock);
	list_splice_tail(&w->batch, &w->queue);
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
