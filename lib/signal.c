/*
 * signal.c - worker_signals(): SIGINT, SIGTERM and friends as events in a
 * worker's loop, and an orderly stop of its tree.
 *
 * DESIGN
 *
 * No signal handler runs library code: the signals are blocked in the
 * calling thread (and so in every thread it starts afterwards) and read
 * from a signalfd that the worker watches like any descriptor (watch.c),
 * from the start of each of its runs.  Each signal fires SIGNAL at the
 * worker, with the signal number as data; a signal of the stop set then
 * stops the worker, whose end sequence stops its children in turn.  The
 * signalfd lives as long as the worker.  When the worker is freed, the
 * signals that worker_signals() blocked are unblocked again in the thread
 * that called it (at once, or at a breakpoint of that thread's worker);
 * threads started meanwhile inherited the mask and keep it, since a
 * thread's mask is only its own to change.
 *
 * w->signals.fd and w->signals.stop are guarded by w->qlock.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"

static void
on_signal(int fd, unsigned revents, void *ctx)
{
	struct signalfd_siginfo si;
	worker_t *w = ctx;
	bool stop;

	(void)revents;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		worker__send(w, w, WORKER_SIGNAL,
		    (void *)(intptr_t)si.ssi_signo, NULL, 0, false);
		pthread_mutex_lock(&w->qlock);
		stop = sigismember(&w->signals.stop, (int)si.ssi_signo) == 1;
		pthread_mutex_unlock(&w->qlock);
		if (stop)
			worker__send(w, w, WORKER_STOP_THREAD, NULL, NULL, 0,
			    false);
	}
}

/* The signals of all that old did not block: what a block changed. */
static void
newly_blocked(sigset_t *out, const sigset_t *all, const sigset_t *old)
{
	sigemptyset(out);
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(all, sig) == 1 && sigismember(old, sig) == 0)
			sigaddset(out, sig);
}

/* Remembers what to unblock, and where, when w is freed; qlock held. */
static void
remember_block(worker_t *w, const sigset_t *blocked, worker_t *caller)
{
	w->signals.blocked = *blocked;
	w->signals.thread = pthread_self();
	/* w itself would hold itself alive; its thread ends with it. */
	w->signals.caller = caller != w ? worker__ref(caller) : NULL;
}

int
worker_signals(worker_t *w, const sigset_t *stop, const sigset_t *notify)
{
	sigset_t none, all, old, blocked;
	worker_t *caller = worker__current();
	int fd, rc;

	sigemptyset(&none);
	if (stop == NULL)
		stop = &none;
	if (notify == NULL)
		notify = &none;
	if (w == NULL || sigorset(&all, stop, notify) != 0 ||
	    sigisemptyset(&all))
		return EINVAL;
	if (worker__gone(w))
		return ESRCH;
	pthread_mutex_lock(&w->qlock);
	rc = w->signals.fd >= 0 ? EBUSY : 0;
	pthread_mutex_unlock(&w->qlock);
	if (rc != 0)
		return rc;
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		return rc;
	newly_blocked(&blocked, &all, &old);
	if ((fd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		rc = errno;
		pthread_sigmask(SIG_UNBLOCK, &blocked, NULL);
		return rc;
	}
	pthread_mutex_lock(&w->qlock);
	w->signals.fd = fd;
	w->signals.stop = *stop;
	remember_block(w, &blocked, caller);
	pthread_mutex_unlock(&w->qlock);
	/* Not running yet: worker__signals_watch() does it at the start. */
	if ((rc = worker__signals_watch(w)) == ESRCH)
		rc = 0;
	if (rc != 0)
		worker__signals_fini(w);
	return rc;
}

/* A run of w begins: read its signals in its loop. */
int
worker__signals_watch(worker_t *w)
{
	int fd;

	pthread_mutex_lock(&w->qlock);
	fd = w->signals.fd;
	pthread_mutex_unlock(&w->qlock);
	if (fd < 0)
		return 0;
	return worker_watch(w, fd, WORKER_READABLE, on_signal, w, NULL);
}

void
worker__signals_init(struct worker__signal_part *s)
{
	s->fd = -1;
	sigemptyset(&s->stop);
	sigemptyset(&s->blocked);
	s->caller = NULL;
}

/* What an EXECUTE takes to the thread that blocked the signals. */
struct unblock {
	worker_execute_t x;
	sigset_t set;
};

static void
unblock_here(void *arg)
{
	struct unblock *u = arg;

	pthread_sigmask(SIG_UNBLOCK, &u->set, NULL);
}

/*
 * Unblocks what worker_signals() blocked, in the thread that called it:
 * at once if that is this thread, else at a breakpoint of that thread's
 * worker.  A thread's mask is only its own to change.
 */
static void
restore_mask(worker_t *w, const sigset_t *blocked, worker_t *caller)
{
	struct unblock *u;
	struct payload *pl;

	if (sigisemptyset(blocked))
		return;
	if (pthread_equal(w->signals.thread, pthread_self())) {
		pthread_sigmask(SIG_UNBLOCK, blocked, NULL);
		return;
	}
	if (caller == NULL || (u = malloc(sizeof(*u))) == NULL)
		return;
	if ((pl = worker__payload_new(u, free)) == NULL) {
		free(u);
		return;
	}
	u->x.fn = unblock_here;
	u->x.arg = u;
	u->set = *blocked;
	worker__send(NULL, caller, WORKER_EXECUTE, &u->x, pl, 0, false);
	worker__payload_put(pl);
}

/* The worker is freed: close the signalfd, give the signals back. */
void
worker__signals_fini(worker_t *w)
{
	sigset_t blocked;
	worker_t *caller;
	int fd;

	pthread_mutex_lock(&w->qlock);
	fd = w->signals.fd;
	w->signals.fd = -1;
	blocked = w->signals.blocked;
	sigemptyset(&w->signals.blocked);
	caller = w->signals.caller;
	w->signals.caller = NULL;
	pthread_mutex_unlock(&w->qlock);
	if (fd >= 0)
		close(fd);
	restore_mask(w, &blocked, caller);
	worker_unref(caller);
}
