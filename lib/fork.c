/*
 * fork.c - what fork() leaves of the workers in the child process.
 *
 * DESIGN
 *
 * fork() copies the forking thread alone.  The other threads of the
 * parent, and so its workers, are gone in the child, but their memory,
 * and any lock one of them held at that moment, are copied.  So the child
 * treats every worker of the parent as gone: each worker records the fork
 * generation it was made in (w->epoch), the child starts a new
 * generation, and the calls on a handle of another generation answer
 * ESRCH before they touch any of its locks (worker__gone).  The forking
 * thread starts afresh too: it has no current worker, and gets a new root
 * (the child's main root) when it needs one.
 *
 * The process-wide locks, tree_lock, the channel lock and the log's,
 * are taken before the fork and released after it on both sides
 * (pthread_atfork), so the child never finds one held by a thread it
 * does not have.  The
 * handlers are registered with the first worker, not at load time: a
 * process may fork before its first libworker call.
 */
#include "internal.h"

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
before_fork(void)
{
	pthread_mutex_lock(&worker__tree_lock);
	pthread_mutex_lock(&worker__channel_lock);
	worker__log_lock(true);
}

static void
after_fork_parent(void)
{
	worker__log_lock(false);
	pthread_mutex_unlock(&worker__channel_lock);
	pthread_mutex_unlock(&worker__tree_lock);
}

static void
after_fork_child(void)
{
	worker__log_lock(false);
	pthread_mutex_unlock(&worker__channel_lock);
	pthread_mutex_unlock(&worker__tree_lock);
	worker__thread_forked();
}

static void
register_handlers(void)
{
	if (pthread_atfork(before_fork, after_fork_parent,
	    after_fork_child) != 0)
		worker__log(LOG_WARNING, NULL, "pthread_atfork failed: "
		    "a child process must not use the parent's workers");
}

/* A worker is made: from now on a fork must know of workers. */
void
worker__fork_init(void)
{
	pthread_once(&fork_once, register_handlers);
}
