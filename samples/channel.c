/*
 * channel.c - one event published to every subscriber of a channel.
 *
 * The C form of pyThreadWorker's channel example.  Three printer workers,
 * "foo", "bar" and "baz", each subscribe to a channel from their own task
 * and listen to "PRINT".  main publishes "PRINT" with "Hello channel!"
 * once; every printer gets its own copy and prints its name and the data.
 * Then main stops the printers and frees everything.
 *
 * The printers run in their own threads, so left alone their lines would
 * come out in any order.  Each printer's listener waits for its "turn"
 * from main before printing and answers "done" after, and main hands the
 * turns out one by one: the output is always the same, and no one sleeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* Every step takes a moment; a wait this long means something is wrong. */
#define TIMEOUT 5.0

static const char *const names[] = { "foo", "bar", "baz" };
#define NPRINTERS (sizeof(names) / sizeof(names[0]))

/* What a printer's task gets: set by main before the start, then only
 * read. */
struct printer_arg {
	worker_channel_t *channel;
	worker_t *main_worker;	/* told "ready" once subscribed */
};

/*
 * Listener of "PRINT", in the printer's own thread.  The event's data is
 * main's string, which outlives the printers.  A listener may wait: the
 * wait runs a nested loop of this worker.  main fires the turn after the
 * publication, so the turn is queued behind PRINT and this wait finds it.
 */
static int
on_print(const worker_event_t *ev, void *ctx)
{
	worker_t *self = worker_current();
	int rc;

	(void)ctx;
	if ((rc = worker_wait_event("turn", ev->source, TIMEOUT, NULL)) != 0) {
		fprintf(stderr, "channel: %s: waiting for the turn: %s\n",
		    worker_name(self), strerror(rc));
		return rc;
	}
	printf("%s: %s\n", worker_name(self), (const char *)ev->data);
	return worker_fire(ev->source, "done", NULL);
}

/* The task of a printer. */
static void *
printer_task(void *arg)
{
	const struct printer_arg *pa = arg;
	worker_listen_opts_t opts = { .transient = 1 };
	worker_t *self = worker_current();
	int rc;

	/* Listen before subscribing, so that no publication can come
	 * before the listener.  Transient: it goes when the task ends. */
	if ((rc = worker_listen(self, "PRINT", on_print, NULL, &opts)) != 0)
		worker_fail(rc);
	/* NULL subscribes the calling worker.  The channel holds no
	 * reference: a printer that is freed leaves it by itself. */
	if ((rc = worker_channel_sub(pa->channel, NULL)) != 0)
		worker_fail(rc);
	if ((rc = worker_fire(pa->main_worker, "ready", NULL)) != 0)
		worker_fail(rc);
	worker_wait_forever();
	return NULL;
}

/* Waits for the event name from w (NULL: from anyone); reports and
 * returns nonzero if it does not come. */
static int
expect(const char *name, worker_t *w)
{
	int rc;

	if ((rc = worker_wait_event(name, w, TIMEOUT, NULL)) != 0)
		fprintf(stderr, "channel: waiting for %s from %s: %s\n", name,
		    w != NULL ? worker_name(w) : "a printer", strerror(rc));
	return rc;
}

/* Publishes once and hands out the turns. */
static int
publish(worker_channel_t *ch, worker_t *printers[])
{
	size_t i;
	int rc;

	printf("main: publishing PRINT\n");
	if ((rc = worker_channel_pub(ch, "PRINT", "Hello channel!")) != 0) {
		fprintf(stderr, "channel: worker_channel_pub: %s\n",
		    strerror(rc));
		return rc;
	}
	/* One printer at a time: the others are still waiting for their
	 * turn, so the only "done" that can come is the one awaited. */
	for (i = 0; i < NPRINTERS; i++) {
		if ((rc = worker_fire(printers[i], "turn", NULL)) != 0) {
			fprintf(stderr, "channel: turn of %s: %s\n",
			    names[i], strerror(rc));
			return rc;
		}
		if ((rc = expect("done", printers[i])) != 0)
			return rc;
	}
	return 0;
}

int
main(void)
{
	worker_t *printers[NPRINTERS] = { NULL };
	struct printer_arg pa;
	worker_attr_t attr = { .name = NULL };
	size_t i, started = 0;
	int rc, status = EXIT_SUCCESS;

	/* Several threads print; line buffering shows each line as soon as
	 * it is written, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((pa.main_worker = worker_current()) == NULL) {
		perror("channel: worker_current");
		return EXIT_FAILURE;
	}
	if ((pa.channel = worker_channel_new()) == NULL) {
		perror("channel: worker_channel_new");
		return EXIT_FAILURE;
	}

	for (i = 0; i < NPRINTERS; i++) {
		attr.name = names[i];
		if ((printers[i] = worker_create(printer_task, &pa,
		    &attr)) == NULL) {
			fprintf(stderr, "channel: worker_create %s: %s\n",
			    names[i], strerror(errno));
			status = EXIT_FAILURE;
			break;
		}
		started++;
	}

	/* Publish only when every printer has subscribed.  The printers
	 * start together and may say "ready" in any order, so count them
	 * from any source: a wait for one printer's would drop another's
	 * that came first.  A printer that fails never says "ready", and
	 * the wait times out. */
	for (i = 0; i < started && status == EXIT_SUCCESS; i++)
		if (expect("ready", NULL) != 0)
			status = EXIT_FAILURE;
	if (status == EXIT_SUCCESS && publish(pa.channel, printers) != 0)
		status = EXIT_FAILURE;

	/* Stop the printers even when something went wrong, so that no
	 * thread outlives main. */
	for (i = 0; i < started; i++) {
		if ((rc = worker_stop(printers[i])) != 0 && rc != ESRCH)
			fprintf(stderr, "channel: worker_stop %s: %s\n",
			    names[i], strerror(rc));
		if ((rc = worker_join(printers[i])) != 0 ||
		    (rc = worker_result(printers[i], NULL)) != 0) {
			fprintf(stderr, "channel: %s: %s\n", names[i],
			    strerror(rc));
			status = EXIT_FAILURE;
		}
	}
	if (status == EXIT_SUCCESS)
		printf("main: the printers have ended\n");

	/* A stop aimed at a printer that had already ended is answered
	 * with a rejection notice on main's worker; handle it, so that
	 * nothing is left queued. */
	(void)worker_update();
	worker_channel_free(pa.channel);
	for (i = 0; i < started; i++)
		worker_unref(printers[i]);
	return status;
}
