/*
 * hello.c - a task that reschedules itself, and a master that stops it.
 *
 * The C form of TaskThread's "hello" example.  The master worker starts a
 * child, "hello", whose task schedules say_hello() with worker_every() and
 * then only waits: the timer runs in the child's own thread, at its
 * breakpoint, every tenth of a second.  Each run prints "hello N" and tells
 * the master with a "tick" event.  After a few ticks the master stops the
 * child, waits for its end and ends too.  main runs the master on its own
 * thread with worker_start_overlay().
 *
 * The ticks order the master's lines after the child's; the one timing
 * assumption is that the master takes less than an interval (0.1 s) to
 * react to the last tick, so that no "hello" comes after it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

#define INTERVAL 0.1	/* seconds between two hellos */
#define TICKS 5		/* the master stops the child after this many */

/* A tick is due every INTERVAL; a wait this long means something is
 * wrong. */
#define TIMEOUT 5.0

/* What the timer needs.  It lives in the child's task frame: the timer
 * runs only in the child's thread, and pending timers are dropped when
 * the child ends, so the timer never sees the frame after it is gone. */
struct hello {
	long count;
};

/* The timer callback, in the child's thread. */
static void
say_hello(void *arg)
{
	struct hello *h = arg;
	worker_t *self = worker_current();
	int rc;

	h->count++;
	printf("hello %ld\n", h->count);
	/* The count travels in the pointer itself, so nothing is allocated
	 * and nothing needs to be freed. */
	rc = worker_parent_fire(self, "tick", (void *)(intptr_t)h->count);
	/* A timer cannot return an error; a child that cannot reach its
	 * master has no reason to go on. */
	if (rc != 0) {
		fprintf(stderr, "hello: %s: tick: %s\n", worker_name(self),
		    strerror(rc));
		worker_fail(rc);
	}
}

/* The task of "hello": schedule the greeting, then serve the loop. */
static void *
hello_task(void *arg)
{
	struct hello h = { .count = 0 };
	int rc;

	(void)arg;
	/* The id would let the task cancel the timer; stopping the worker
	 * drops it too, which is all this child needs. */
	rc = worker_every(worker_current(), say_hello, &h, INTERVAL, NULL);
	if (rc != 0)
		worker_fail(rc);
	/* The breakpoint where the timer runs, and where the master's stop
	 * unwinds the task. */
	worker_wait_forever();
	return NULL;
}

/* Cleanup handler of the master: drops its reference on the child. */
static void
release(void *arg)
{
	worker_unref(arg);
}

/* The task of "master". */
static void *
master_task(void *arg)
{
	worker_attr_t attr = { .name = "hello" };
	worker_t *child;
	void *data;
	int i, rc;

	(void)arg;
	/* Created inside the master, the child is the master's. */
	if ((child = worker_create(hello_task, NULL, &attr)) == NULL)
		worker_fail(errno);
	/* If the master fails below, the handler drops the reference on
	 * the way out; its end sequence stops and joins the child. */
	worker_cleanup_push(release, child);

	for (i = 1; i <= TICKS; i++) {
		rc = worker_wait_event("tick", child, TIMEOUT, &data);
		if (rc != 0)
			worker_fail(rc);
		printf("master: tick %ld\n", (long)(intptr_t)data);
	}

	printf("master: stopping %s\n", worker_name(child));
	if ((rc = worker_stop(child)) != 0)
		worker_fail(rc);
	/* Runs the master's loop until the child has ended; the child's
	 * fail code is 0 when it was stopped. */
	if ((rc = worker_wait_thread(child, NULL)) != 0)
		worker_fail(rc);
	printf("master: %s has ended\n", worker_name(child));

	worker_cleanup_pop(1);
	return NULL;
}

int
main(void)
{
	worker_attr_t attr = { .name = "master" };
	worker_t *master;
	int rc, status = EXIT_SUCCESS;

	/* Two threads print; line buffering shows each line as soon as it
	 * is written, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((master = worker_new(master_task, NULL, &attr)) == NULL) {
		perror("hello: worker_new");
		return EXIT_FAILURE;
	}
	/* The master runs on main's thread and this returns when it has
	 * ended, its child with it. */
	if ((rc = worker_start_overlay(master)) != 0) {
		fprintf(stderr, "hello: worker_start_overlay: %s\n",
		    strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_result(master, NULL)) != 0) {
		fprintf(stderr, "hello: master failed: %s\n", strerror(rc));
		status = EXIT_FAILURE;
	} else {
		printf("main: master has ended\n");
	}
	worker_unref(master);
	return status;
}
