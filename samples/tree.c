/*
 * tree.c - events up and down a tree of workers.
 *
 * A worker started from inside another worker becomes its child.  Here
 * "parent" starts "child", which starts "grandchild".  The grandchild
 * bubbles "hello" up to its ancestors and the parent broadcasts "news" down
 * to its descendants; each worker that gets one prints it with the name of
 * the worker that sent it.  Then main dumps the tree and stops the parent,
 * and the tree ends from the bottom up: each worker stops its child and
 * prints the child's CHILD_THREAD_END before it ends itself.
 *
 * Every step is ordered by events and waits, never by sleeping, so the
 * output is always the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* Every step takes a moment; a wait this long means something is wrong. */
#define TIMEOUT 5.0

/*
 * What each worker keeps for its listeners.  The levels are static, so
 * they outlive every worker; each is touched by its own worker's thread
 * only, so it needs no lock.
 */
struct level {
	const char *child;	/* the name of this worker's child, or NULL */
	int turns;		/* "turn" events not used yet */
};

static struct level parent_level = { .child = "child" };
static struct level child_level = { .child = "grandchild" };
static struct level grandchild_level = { .child = NULL };

/*
 * Listener of "hello" and "news", ctx a struct level: prints "WORKER: EVENT
 * from SOURCE".
 *
 * worker_bubble() and worker_broadcast() queue the event on every worker of
 * its path, and each worker runs its listeners in its own thread, so left
 * alone the lines would come out in any order.  To print them in path
 * order, each worker but the first on the path waits for a "turn" event
 * from its neighbour before printing, then passes the turn on.  A listener
 * may wait: the wait runs a nested loop of this worker.  The tree has one
 * worker per level, so only one turn is ever about.
 */
static int
on_greeting(const worker_event_t *ev, void *ctx)
{
	struct level *lvl = ctx;
	worker_t *self = worker_current();
	int up = (ev->flags & WORKER_BUBBLE) != 0;
	int first, rc;

	if (up)
		first = worker_parent(ev->source) == self;
	else
		first = worker_parent(self) == ev->source;
	/* The copies of an event are queued one worker after the other,
	 * so the neighbour may have printed and passed the turn before the
	 * copy reached this worker: on_turn() counts the turns that came
	 * early. */
	while (!first && lvl->turns == 0) {
		rc = worker_wait_event("turn", NULL, TIMEOUT, NULL);
		if (rc != 0) {
			fprintf(stderr, "tree: %s: waiting for the turn: %s\n",
			    worker_name(self), strerror(rc));
			return rc;
		}
	}
	if (!first)
		lvl->turns--;
	printf("%s: %s from %s\n", worker_name(self), ev->name,
	    worker_name(ev->source));

	/* The top of the tree has no parent to pass the turn to, and the
	 * grandchild's worker_children_fire() finds no child and does
	 * nothing. */
	rc = 0;
	if (!up)
		rc = worker_children_fire(self, "turn", NULL);
	else if (worker_parent(self) != NULL)
		rc = worker_parent_fire(self, "turn", NULL);
	if (rc != 0)
		fprintf(stderr, "tree: %s: passing the turn: %s\n",
		    worker_name(self), strerror(rc));
	return rc;
}

/* Listener of "turn", ctx a struct level. */
static int
on_turn(const worker_event_t *ev, void *ctx)
{
	struct level *lvl = ctx;

	(void)ev;
	lvl->turns++;
	return 0;
}

/*
 * Listener of CHILD_THREAD_END: the child has ended.  Its fail code is 0
 * whether it returned or was stopped.
 */
static int
on_child_end(const worker_event_t *ev, void *ctx)
{
	int rc;

	(void)ctx;
	rc = worker_result(ev->source, NULL);
	printf("%s: %s from %s (%s)\n", worker_name(worker_current()),
	    ev->name, worker_name(ev->source),
	    rc == 0 ? "ok" : strerror(rc));
	return 0;
}

/*
 * Listener of STOP_THREAD, ctx a struct level.
 *
 * A worker's own listeners of STOP_THREAD run before the built-in action
 * unwinds it.  Once it has unwound it no longer takes events, so if it
 * left its child to the end sequence (which stops and joins the children)
 * it would never see that child's CHILD_THREAD_END.  Stopping the child
 * here, and waiting for it, ends the tree from the bottom up while every
 * parent still listens.
 */
static int
on_stop(const worker_event_t *ev, void *ctx)
{
	const struct level *lvl = ctx;
	worker_t *child;
	int rc;

	(void)ev;
	/* The child may have ended already; then there is nothing to do. */
	if (lvl->child == NULL ||
	    (child = worker_find_child(worker_current(), lvl->child)) == NULL)
		return 0;
	/* ESRCH: it is ending by itself.  Either way, wait for its end;
	 * what the wait returns is the child's outcome, and on_child_end
	 * reports that. */
	rc = worker_stop(child);
	if (rc == 0 || rc == ESRCH) {
		(void)worker_wait_thread(child, NULL);
		rc = 0;
	}
	worker_unref(child);
	return rc;
}

/*
 * Adds a listener to the calling worker.  Transient: it goes when the
 * worker ends, so a restarted task could add it again without doubling it.
 */
static void
listen_self(const char *name, worker_listener_fn fn, void *ctx)
{
	worker_listen_opts_t opts = { .transient = 1 };
	int rc;

	rc = worker_listen(worker_current(), name, fn, ctx, &opts);
	if (rc != 0)
		worker_fail(rc);
}

/*
 * Starts the next level of the tree: created inside a worker, the new one
 * is its child.  A running child keeps itself alive, and its parent finds
 * it by name when it needs it (on_stop), so the reference that
 * worker_create() returns is dropped at once and there is nothing to free
 * when the task unwinds.
 */
static void
start_child(worker_fn fn, void *arg, const char *name)
{
	worker_attr_t attr = { .name = name };
	worker_t *w;

	if ((w = worker_create(fn, arg, &attr)) == NULL)
		worker_fail(errno);
	worker_unref(w);
}

/* The task of "grandchild"; arg is main's worker, to tell it when done. */
static void *
grandchild_task(void *arg)
{
	worker_t *main_worker = arg;
	int rc;

	listen_self("news", on_greeting, &grandchild_level);
	listen_self("turn", on_turn, &grandchild_level);
	if ((rc = worker_bubble(worker_current(), "hello", NULL)) != 0)
		worker_fail(rc);

	/* The grandchild is the last on the path of "news", so when its
	 * own wait has seen it (after its listeners ran), every line has
	 * been printed. */
	if ((rc = worker_wait_event("news", NULL, TIMEOUT, NULL)) != 0)
		worker_fail(rc);
	if ((rc = worker_fire(main_worker, "ready", NULL)) != 0)
		worker_fail(rc);
	worker_wait_forever();
	return NULL;
}

/* The task of "child". */
static void *
child_task(void *arg)
{
	listen_self("hello", on_greeting, &child_level);
	listen_self("news", on_greeting, &child_level);
	listen_self("turn", on_turn, &child_level);
	listen_self(WORKER_CHILD_THREAD_END, on_child_end, NULL);
	listen_self(WORKER_STOP_THREAD, on_stop, &child_level);
	start_child(grandchild_task, arg, child_level.child);
	worker_wait_forever();
	return NULL;
}

/* The task of "parent". */
static void *
parent_task(void *arg)
{
	int rc;

	listen_self("hello", on_greeting, &parent_level);
	listen_self("turn", on_turn, &parent_level);
	listen_self(WORKER_CHILD_THREAD_END, on_child_end, NULL);
	listen_self(WORKER_STOP_THREAD, on_stop, &parent_level);
	start_child(child_task, arg, parent_level.child);

	/* The parent is the last on the path of "hello": once its own wait
	 * has seen it, the child has printed its line too. */
	if ((rc = worker_wait_event("hello", NULL, TIMEOUT, NULL)) != 0)
		worker_fail(rc);
	if ((rc = worker_broadcast(worker_current(), "news", NULL)) != 0)
		worker_fail(rc);
	worker_wait_forever();
	return NULL;
}

int
main(void)
{
	worker_attr_t attr = { .name = "parent" };
	worker_t *self, *parent;
	int rc, status = EXIT_SUCCESS;

	/* Several threads print; line buffering shows each line as soon as
	 * it is written, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* main's root worker is never a default parent, so "parent" is the
	 * top of its own tree.  The grandchild tells main (its task's arg)
	 * when the greetings are over. */
	if ((self = worker_current()) == NULL) {
		perror("tree: worker_current");
		return EXIT_FAILURE;
	}
	if ((parent = worker_create(parent_task, self, &attr)) == NULL) {
		perror("tree: worker_create");
		return EXIT_FAILURE;
	}

	if ((rc = worker_wait_event("ready", NULL, TIMEOUT, NULL)) != 0) {
		fprintf(stderr, "tree: waiting for the tree: %s\n",
		    strerror(rc));
		status = EXIT_FAILURE;
	} else {
		printf("main: the tree before the stop:\n");
		if ((rc = worker_dump(stdout, parent)) != 0) {
			fprintf(stderr, "tree: worker_dump: %s\n",
			    strerror(rc));
			status = EXIT_FAILURE;
		}
	}

	/* Stop the parent even when something went wrong, so that no
	 * thread outlives main. */
	printf("main: stopping parent\n");
	if ((rc = worker_stop(parent)) != 0) {
		fprintf(stderr, "tree: worker_stop: %s\n", strerror(rc));
		status = EXIT_FAILURE;
	}
	if ((rc = worker_join(parent)) != 0) {
		fprintf(stderr, "tree: worker_join: %s\n", strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_result(parent, NULL)) != 0) {
		fprintf(stderr, "tree: parent failed: %s\n", strerror(rc));
		status = EXIT_FAILURE;
	} else {
		printf("main: parent joined, the tree has ended\n");
	}
	worker_unref(parent);
	return status;
}
