/*
 * root.c - the calling thread's worker, and root workers.  Uses gettid(),
 * a Linux call, to tell the main thread.
 *
 * DESIGN
 *
 * Each thread knows its current worker through a __thread pointer: the
 * worker a libworker thread runs, an overlay running on top of it, or the
 * thread's root worker.  A thread that libworker did not start gets a root
 * worker the first time it needs one.  A pthread_key destructor ends the
 * root worker of a foreign thread when that thread exits; the main
 * thread's root lives as long as the process (key destructors do not run
 * for it), as libdill's ctx.c does it.
 *
 * A root worker is always running while its thread lives.  It has no
 * frame to unwind to: a STOP_THREAD makes its wait return ECANCELED
 * instead (control.c), and worker_exit() on it only ends its children.
 *
 * Allocating and ending a root are worker.c's (worker__alloc,
 * worker__end): the two calls of this layer that go up (internal.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* The calling thread's worker; internal.h reads it inline. */
__thread worker_t *worker__tls_current;

/* The fork generation (fork.c): one more in each child process. */
atomic_uint worker__epoch;

static pthread_key_t root_key;
static pthread_once_t root_once = PTHREAD_ONCE_INIT;
static bool root_key_made;

static void root_thread_exit(void *arg);

static void
root_key_create(void)
{
	if (pthread_key_create(&root_key, root_thread_exit) != 0) {
		worker__log(LOG_ERR, NULL, "pthread_key_create failed");
		abort();
	}
	root_key_made = true;
}

static bool
on_main_thread(void)
{
	return getpid() == gettid();
}

/* A thread with no worker yet gets its root worker (worker__current). */
worker_t *
worker__root_current(void)
{
	bool is_main = on_main_thread();
	char name[32];
	worker_t *w;

	if (is_main)
		snprintf(name, sizeof(name), "main");
	else
		snprintf(name, sizeof(name), "thread-%ld", (long)gettid());
	if ((w = worker__alloc(name, true)) == NULL)
		return NULL;
	atomic_store(&w->on_main, is_main);
	if (!is_main) {
		pthread_once(&root_once, root_key_create);
		if (pthread_setspecific(root_key, w) != 0) {
			worker_unref(w);
			errno = ENOMEM;
			return NULL;
		}
	}
	worker__tls_current = w;
	return w;
}

/* A foreign thread is exiting: its root worker ends like any worker. */
static void
root_thread_exit(void *arg)
{
	worker_t *w = arg;

	worker__tls_current = w;
	worker__end(w);
	worker__tls_current = NULL;
	worker_unref(w);
}

void
worker__thread_init(struct worker__thread_part *t)
{
	t->prev_current = NULL;
}

/*
 * In the child of a fork, on the forking thread: the parent's workers are
 * gone, the thread's own included; it gets a new root when it needs one.
 */
void
worker__thread_forked(void)
{
	atomic_fetch_add(&worker__epoch, 1);
	worker__tls_current = NULL;
	if (root_key_made)
		pthread_setspecific(root_key, NULL);
}

/* True if w is running on the calling thread, as its worker or below. */
bool
worker__on_this_thread(const worker_t *w)
{
	for (worker_t *c = worker__tls_current; c != NULL;
	    c = c->thread.prev_current)
		if (c == w)
			return true;
	return false;
}

/*
 * True if waiting for w's end from this thread can never return: w runs
 * here, or is an ancestor of a worker that runs here, and an ancestor
 * waits for its children before it ends.
 */
bool
worker__waits_for_itself(const worker_t *w)
{
	for (worker_t *c = worker__tls_current; c != NULL;
	    c = c->thread.prev_current)
		for (const worker_t *a = c; a != NULL; a = a->parent)
			if (a == w)
				return true;
	return false;
}

worker_t *
worker_current(void)
{
	return worker__current();
}

int
worker_is_main(const worker_t *w)
{
	if (w == NULL && (w = worker__current()) == NULL)
		return 0;
	return atomic_load(&w->on_main);
}
