/*
 * wake.c - how an owner sleeps and how it is woken: the futex word, the
 * eventfd of ppoll(), and the descriptors that wake an outer event loop
 * (worker_fd).  With root.c, embed.c and signal.c, this is what a port to
 * another kernel replaces.
 *
 * DESIGN
 *
 * The owner sleeps on a futex rather than on a condition variable: a wake
 * is one atomic operation and one system call, and the sleeper touches one
 * word.  glibc's condition variables keep several shared words that
 * signaller and waiter both write, which cost a cross-CPU round trip 15%
 * more than GLib's futex-based GCond.  The word is w->wake.wake_seq, or a
 * word the caller chose and marked with WORKER_WAKE_MARK (a ring slot,
 * ring.c): the sleeper reads it under qlock, after it saw the queue
 * empty, and a waker changes it under qlock, so a wake between the unlock
 * and the futex wait makes the wait return at once.  A private futex wake
 * only hashes the address, so waking a word whose worker was just freed
 * is harmless.
 *
 * A worker that watches descriptors sleeps in ppoll() instead, over an
 * eventfd that wakers write (w->wake.polling).  A worker driven by an
 * outer loop (worker_fd, embed.c) has a second eventfd, written when an
 * event is queued, and a timerfd armed at its nearest timer.
 *
 * The owner is woken only when it really sleeps (w->wake.sleeping), so a
 * busy worker costs its producers no system call; before it sleeps it
 * watches its queue for a while (worker__spin).
 *
 * Locks: qlock for everything here but the atomics and spin_ns (owner).
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

enum { WAKE_NONE, WAKE_FUTEX, WAKE_POLL };

/* worker__spin(): bounds of w->wake.spin_ns, in ns */
enum { SPIN_MIN = 2000, SPIN_MAX = 40000, SPIN_PAUSE = 1000 };

void
worker__wake_init(struct worker__wake_part *wk)
{
	atomic_init(&wk->next_due, UINT64_MAX);
	wk->efd = -1;
	wk->xfd = -1;
	wk->tfd = -1;
}

void
worker__wake_fini(struct worker__wake_part *wk)
{
	worker__close_fd(&wk->efd);
	worker__close_fd(&wk->xfd);
	worker__close_fd(&wk->tfd);
}

/* ---- Descriptors ---------------------------------------------------- */

int
worker__eventfd_new(void)
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void
worker__eventfd_poke(int fd)
{
	uint64_t one = 1;

	/* Only EAGAIN can fail here, and then it is readable already. */
	if (write(fd, &one, sizeof(one)) < 0)
		errno = 0;
}

void
worker__eventfd_drain(int fd)
{
	uint64_t n;

	if (fd >= 0 && read(fd, &n, sizeof(n)) < 0)
		errno = 0;	/* EAGAIN: it was not readable */
}

void
worker__close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The eventfd that wakes a polling owner; created on first need. */
int
worker__need_eventfd_locked(worker_t *w)
{
	if (w->wake.efd < 0 && (w->wake.efd = worker__eventfd_new()) < 0)
		return errno;
	return 0;
}

/* ---- The futex ------------------------------------------------------ */

void
worker__futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * Marks word, which must hold free_val, as slept on; *val gets the value
 * to sleep on.  False if word changed meanwhile (do not sleep).
 */
bool
worker__mark(atomic_uint *word, unsigned free_val, unsigned *val)
{
	if (!atomic_compare_exchange_strong(word, &free_val,
	    free_val | WORKER_WAKE_MARK))
		return false;
	*val = free_val | WORKER_WAKE_MARK;
	return true;
}

/*
 * The owner no longer sleeps on word: removes the mark unless the word
 * was replaced.  True if it was still there, so the caller is the one to
 * wake the owner.
 */
bool
worker__unmark(atomic_uint *word, unsigned val)
{
	return atomic_compare_exchange_strong(word, &val,
	    val & ~WORKER_WAKE_MARK);
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

/*
 * Owner of w, out of events and about to sleep until until: first watches
 * for ready(w) for a while.  A producer that finds the owner awake queues
 * without a system call, and the owner sees the event in well under a
 * microsecond instead of the 5-10 of a futex wake-up; two workers that
 * talk back and forth then never sleep.  How long adapts, as glibc's
 * adaptive mutexes do: a spin that caught an event doubles the next one
 * (up to SPIN_MAX), one that did not shrinks it (down to SPIN_MIN), so a
 * worker fed a stream spins and a worker that idles barely does.
 *
 * Only the first SPIN_PAUSE ns are spent on pauses.  A producer that is
 * running queues an event every few tens of nanoseconds; one that has
 * not queued anything for that long is most likely not running at all,
 * and may well be waiting for this very CPU: with more threads than CPUs
 * (two producers and a consumer on two CPUs, or any other load), an
 * owner that spins on pauses holds the CPU its producer needs, the
 * producer gets it back only when the owner sleeps, and the two then
 * hand one event over per pair of context switches.  So the rest of the
 * spin yields the CPU between looks: sched_yield() returns at once when
 * nothing else waits for the CPU, and otherwise runs the producer, which
 * fills the ring before the owner looks again.
 */
void
worker__spin(worker_t *w, uint64_t until, bool (*ready)(const worker_t *w))
{
	unsigned *spin = &w->wake.spin_ns;
	uint64_t now, pause_end, end;

	if (*spin == 0)
		*spin = SPIN_MIN;
	now = worker__now_ns();
	end = now + *spin;
	if (until < end)
		end = until;
	pause_end = now + SPIN_PAUSE < end ? now + SPIN_PAUSE : end;
	do {
		/* The clock costs more than a look: read it now and then. */
		for (int i = 0; i < 16; i++) {
			if (ready(w))
				goto caught;
			worker__relax();
		}
	} while ((now = worker__now_ns()) < pause_end);
	while (now < end) {
		sched_yield();
		if (ready(w))
			goto caught;
		now = worker__now_ns();
	}
	if (*spin > SPIN_MIN)
		*spin -= *spin / 8;
	return;
caught:
	if (*spin < SPIN_MAX)
		*spin *= 2;
}

/*
 * Owner of w, qlock held and nothing queued: sleeps on word (NULL: the
 * worker's own wake_seq; else a word marked with val) until a wake or
 * the CLOCK_MONOTONIC time until (UINT64_MAX: none).  Returns ETIMEDOUT
 * if until passed, else 0 (woken, an event came, or for no reason: the
 * caller looks again).
 */
int
worker__sleep_locked(worker_t *w, atomic_uint *word, unsigned val,
    uint64_t until)
{
	struct worker__wake_part *wk = &w->wake;
	struct timespec ts = worker__timespec(until);
	long rc;

	if (word == NULL) {
		word = &wk->wake_seq;
		val = atomic_load(word);
	}
	wk->sleep_word = word;
	wk->sleep_val = val;
	wk->sleeping = true;
	pthread_mutex_unlock(&w->qlock);
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
	rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val,
	    until != UINT64_MAX ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
	pthread_mutex_lock(&w->qlock);
	/* Woken by a producer of the ring, by time or for no reason. */
	if (wk->sleeping) {
		wk->sleeping = false;
		if (word != &wk->wake_seq)
			worker__unmark(word, val);
	}
	return rc == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

static struct timespec
timeout_until(uint64_t until)
{
	uint64_t now = worker__now_ns();

	return worker__timespec(until > now ? until - now : 0);
}

/*
 * Owner of w, qlock held: polls pfds[1..n-1] (pfds[0] is the wake-up
 * eventfd, filled in here) without waiting, or (wait) until a wake, a
 * ready descriptor or until (UINT64_MAX: none).  Returns with qlock held
 * and what ppoll() returned; a wait consumes w->wake.woken, as a futex
 * sleep does.
 */
int
worker__poll_locked(worker_t *w, struct pollfd *pfds, size_t n, bool wait,
    uint64_t until)
{
	struct worker__wake_part *wk = &w->wake;
	struct timespec ts = { 0, 0 };
	int rc;

	pfds[0].fd = wk->efd;
	pfds[0].events = POLLIN;
	wk->sleeping = wait;
	wk->polling = wait;
	pthread_mutex_unlock(&w->qlock);
	if (wait && until != UINT64_MAX)
		ts = timeout_until(until);
	rc = ppoll(pfds, n, (wait && until == UINT64_MAX) ? NULL : &ts, NULL);
	pthread_mutex_lock(&w->qlock);
	wk->sleeping = false;
	wk->polling = false;
	if (wait)
		wk->woken = false;
	if (rc > 0 && pfds[0].revents != 0)
		worker__eventfd_drain(wk->efd);
	return rc;
}

/* ---- Waking --------------------------------------------------------- */

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
	struct worker__wake_part *wk = &w->wake;
	struct wake out = { WAKE_NONE, NULL };

	if (!wk->sleeping)
		return out;
	wk->sleeping = false;
	if (wk->polling) {
		out.how = WAKE_POLL;
		return out;
	}
	if (wk->sleep_word == &wk->wake_seq)
		atomic_fetch_add(&wk->wake_seq, 1);
	else if (!worker__unmark(wk->sleep_word, wk->sleep_val))
		return out;
	out.how = WAKE_FUTEX;
	out.word = wk->sleep_word;
	return out;
}

static void
send_wake(worker_t *w, struct wake how)
{
	if (how.how == WAKE_POLL)
		worker__eventfd_poke(w->wake.efd);
	else if (how.how == WAKE_FUTEX)
		worker__futex_wake(how.word);
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
 * futex calls and a context switch.  w->wake.wakers keeps the futex word
 * and the eventfd alive meanwhile: worker_free() waits for it to drop to
 * zero, and it cannot rise again then, because only a call that found w
 * running under qlock (or holds a reference) raises it.  Called with
 * qlock held; returns with it released.
 */
void
worker__unlock_and_wake(worker_t *w)
{
	struct wake how = claim_wake(w);

	if (how.how != WAKE_NONE)
		atomic_fetch_add_explicit(&w->wake.wakers, 1,
		    memory_order_relaxed);
	pthread_mutex_unlock(&w->qlock);
	if (how.how == WAKE_NONE)
		return;
	send_wake(w, how);
	atomic_fetch_sub_explicit(&w->wake.wakers, 1, memory_order_release);
}

/* Makes the owner of w leave its sleep and look at its wait again. */
void
worker__wake(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	w->wake.woken = true;
	worker__unlock_and_wake(w);
}

/* worker_free(): no call may still be about to wake w. */
void
worker__wakers_wait(worker_t *w)
{
	while (atomic_load_explicit(&w->wake.wakers,
	    memory_order_acquire) != 0)
		sched_yield();
}

/* ---- An outer loop (worker_fd) -------------------------------------- */

/* An event was queued: make worker_fd() readable; qlock held. */
void
worker__fd_signal_locked(worker_t *w)
{
	if (w->wake.xfd >= 0 && !w->wake.fd_signaled) {
		w->wake.fd_signaled = true;
		worker__eventfd_poke(w->wake.xfd);
	}
}

/* Arms worker_fd()'s timerfd at due (UINT64_MAX: disarms); qlock held. */
static void
arm_timerfd(int tfd, uint64_t due)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (due != UINT64_MAX) {
		its.it_value = worker__timespec(due);
		/* A zero value disarms: a deadline of 0 must still fire. */
		if (due == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * The nearest timer is now due (UINT64_MAX: none); qlock held.  A
 * sleeping owner must wake earlier if it moved closer, and an outer loop
 * must hear of it.
 */
void
worker__due_locked(worker_t *w, uint64_t due)
{
	uint64_t old = atomic_load_explicit(&w->wake.next_due,
	    memory_order_relaxed);

	atomic_store_explicit(&w->wake.next_due, due, memory_order_relaxed);
	if (due < old)
		worker__signal_locked(w);
	if (due != old && w->wake.tfd >= 0)
		arm_timerfd(w->wake.tfd, due);
}

/* Arms worker_fd()'s timerfd at the nearest timer again; qlock held. */
void
worker__fd_arm_locked(worker_t *w)
{
	if (w->wake.tfd >= 0)
		arm_timerfd(w->wake.tfd, atomic_load(&w->wake.next_due));
}

/* worker_update() is about to handle everything: clear readability. */
void
worker__fd_clear(worker_t *w)
{
	pthread_mutex_lock(&w->qlock);
	if (w->wake.xfd >= 0) {
		w->wake.fd_signaled = false;
		worker__eventfd_drain(w->wake.xfd);
		/* Not expired: nothing to clear. */
		worker__eventfd_drain(w->wake.tfd);
	}
	pthread_mutex_unlock(&w->qlock);
}
