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
 * signalfd lives as long as the worker.
 *
 * w->signals.fd and w->signals.stop are guarded by w->qlock.
 */
#include <errno.h>
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

int
worker_signals(worker_t *w, const sigset_t *stop, const sigset_t *notify)
{
	sigset_t none, all;
	int fd, rc;

	sigemptyset(&none);
	if (stop == NULL)
		stop = &none;
	if (notify == NULL)
		notify = &none;
	if (w == NULL || sigorset(&all, stop, notify) != 0 ||
	    sigisemptyset(&all))
		return EINVAL;
	pthread_mutex_lock(&w->qlock);
	rc = w->signals.fd >= 0 ? EBUSY : 0;
	pthread_mutex_unlock(&w->qlock);
	if (rc != 0)
		return rc;
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, NULL)) != 0)
		return rc;
	if ((fd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return errno;
	pthread_mutex_lock(&w->qlock);
	w->signals.fd = fd;
	w->signals.stop = *stop;
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
}

/* The worker is freed: close the signalfd. */
void
worker__signals_fini(worker_t *w)
{
	int fd;

	pthread_mutex_lock(&w->qlock);
	fd = w->signals.fd;
	w->signals.fd = -1;
	pthread_mutex_unlock(&w->qlock);
	if (fd >= 0)
		close(fd);
}
