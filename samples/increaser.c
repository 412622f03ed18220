/*
 * increaser.c - a counter worker driven by commands on standard input.
 *
 * The C form of the program in pyThreadWorker's README.  It shows a
 * worker's life (start, pause, resume, stop, start again), listeners that
 * run in the worker's own thread even while it is paused, data handed over
 * with an event (the library frees it), and a question that the worker
 * answers with an event.
 *
 * Usage: increaser [PERIOD]
 *
 * The worker prints its count every PERIOD seconds (default 1).  Commands,
 * one per line: start, stop, pause, resume, set N, print, sleep SECONDS,
 * exit.  The end of the input is the same as exit.  "sleep" lets a script
 * such as increaser.txt pace itself.
 */
#define _POSIX_C_SOURCE 200809L	/* getline(), isatty() */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker.h"

/* How long "print" waits for the worker's answer. */
#define ANSWER_TIMEOUT 2.0

static const char commands[] =
    "commands: start, stop, pause, resume, set N, print, sleep SECONDS, exit";

/*
 * The worker's state.  Only the worker's thread touches count (its task and
 * its listeners), except while the worker is not running: see cmd_print().
 * period is set before the first start and only read afterwards.
 */
struct counter {
	long count;
	double period;
};

/* Fires name at w with a copy of v; the library frees the copy. */
static int
fire_long(worker_t *w, const char *name, long v)
{
	long *p;

	if ((p = malloc(sizeof(*p))) == NULL)
		return ENOMEM;
	*p = v;
	/* From here on the library owns p and frees it exactly once, also
	 * when w is not running and the event is rejected. */
	return worker_fire_ex(w, name, p, free, 0);
}

/* Listener of "set", in the worker's thread: no lock is needed. */
static int
on_set(const worker_event_t *ev, void *ctx)
{
	struct counter *c = ctx;

	c->count = *(const long *)ev->data;
	return 0;
}

/* Listener of "print": answers the asker with "count". */
static int
on_print(const worker_event_t *ev, void *ctx)
{
	const struct counter *c = ctx;

	return fire_long(ev->source, "count", c->count);
}

/* The task: count for ever, until stopped. */
static void *
count_task(void *arg)
{
	struct counter *c = arg;
	int rc;

	for (;;) {
		printf("%ld\n", c->count);
		c->count++;
		/* A breakpoint: the listeners run here, a pause holds here,
		 * and a stop unwinds the task from here. */
		if ((rc = worker_sleep(c->period)) != 0)
			worker_fail(rc);
	}
	return NULL;
}

static void
report(const char *what, int rc)
{
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", what, strerror(rc));
}

/* Parses a whole string as a number of seconds, 0 or more. */
static int
parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
		return EINVAL;
	*out = v;
	return 0;
}

/* Parses a whole string as a long. */
static int
parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0')
		return EINVAL;
	if (errno != 0)
		return errno;
	*out = v;
	return 0;
}

static void
cmd_stop(worker_t *w)
{
	int rc;

	/* Wait for the thread to end, so that a "start" right after this
	 * does not find the worker still ending (EBUSY), and so that
	 * cmd_print() may read the count. */
	if ((rc = worker_stop(w)) == 0)
		rc = worker_join(w);
	report("stop", rc);
}

static void
cmd_print(worker_t *w, const struct counter *c)
{
	void *data;
	int rc;

	rc = worker_fire(w, "print", NULL);
	if (rc == ESRCH) {
		/* Not running: it never ran, or it has ended.  worker_join()
		 * returns at once then, and once it has returned the worker's
		 * thread is done with the count, so main may read it. */
		if ((rc = worker_join(w)) == 0)
			printf("count: %ld (not running)\n", c->count);
		report("print", rc);
		return;
	}
	/* The answer comes from the worker's thread, even while it is
	 * paused; its data stays valid until main's next breakpoint. */
	if (rc == 0)
		rc = worker_wait_event("count", w, ANSWER_TIMEOUT, &data);
	if (rc == 0)
		printf("count: %ld\n", *(const long *)data);
	report("print", rc);
}

/* Runs one command line; returns 1 for "exit", else 0. */
static int
run_command(worker_t *w, struct counter *c, char *line)
{
	char *cmd, *arg, *end;
	double seconds;
	long n;
	int rc;

	/* Split "COMMAND [ARGUMENT]", dropping blanks around both. */
	cmd = line + strspn(line, " \t\r\n");
	end = cmd + strlen(cmd);
	while (end > cmd && strchr(" \t\r\n", end[-1]) != NULL)
		*--end = '\0';
	if (*cmd == '\0' || *cmd == '#')
		return 0;
	arg = cmd + strcspn(cmd, " \t");
	if (*arg != '\0') {
		*arg++ = '\0';
		arg += strspn(arg, " \t");
	}

	if (strcmp(cmd, "set") == 0 || strcmp(cmd, "sleep") == 0) {
		if (*arg == '\0') {
			fprintf(stderr, "%s: missing argument\n", cmd);
			return 0;
		}
	} else if (*arg != '\0') {
		fprintf(stderr, "%s: unexpected argument: %s\n", cmd, arg);
		return 0;
	}

	if (strcmp(cmd, "start") == 0) {
		report("start", worker_start(w));
	} else if (strcmp(cmd, "stop") == 0) {
		cmd_stop(w);
	} else if (strcmp(cmd, "pause") == 0) {
		report("pause", worker_pause(w));
	} else if (strcmp(cmd, "resume") == 0) {
		report("resume", worker_resume(w));
	} else if (strcmp(cmd, "set") == 0) {
		if ((rc = parse_long(arg, &n)) != 0)
			fprintf(stderr, "set: %s: %s\n", arg, strerror(rc));
		else
			report("set", fire_long(w, "set", n));
	} else if (strcmp(cmd, "print") == 0) {
		cmd_print(w, c);
	} else if (strcmp(cmd, "sleep") == 0) {
		/* main's root worker runs its loop while it sleeps. */
		if ((rc = parse_seconds(arg, &seconds)) != 0)
			fprintf(stderr, "sleep: %s: %s\n", arg, strerror(rc));
		else
			report("sleep", worker_sleep(seconds));
	} else if (strcmp(cmd, "exit") == 0) {
		return 1;
	} else {
		fprintf(stderr, "%s: unknown command\n%s\n", cmd, commands);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct counter counter = { .count = 0, .period = 1.0 };
	worker_attr_t attr = { .name = "increaser" };
	worker_t *w;
	char *line = NULL;
	size_t size = 0;
	int echo, rc, status = EXIT_SUCCESS;

	if (argc > 2 || (argc == 2 &&
	    (parse_seconds(argv[1], &counter.period) != 0 ||
	    counter.period == 0))) {
		fprintf(stderr, "usage: increaser [PERIOD]\n"
		    "PERIOD: seconds between counts, more than 0\n");
		return EXIT_FAILURE;
	}
	/* Two threads print; line buffering shows each line as soon as it
	 * is written, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((w = worker_new(count_task, &counter, &attr)) == NULL) {
		perror("increaser: worker_new");
		return EXIT_FAILURE;
	}
	/* Listeners added before the start are permanent: they survive a
	 * stop and a new start. */
	if ((rc = worker_listen(w, "set", on_set, &counter, NULL)) != 0 ||
	    (rc = worker_listen(w, "print", on_print, &counter, NULL)) != 0) {
		fprintf(stderr, "increaser: worker_listen: %s\n",
		    strerror(rc));
		worker_unref(w);
		return EXIT_FAILURE;
	}

	/* A terminal echoes what is typed; for a script, show each command
	 * (not its comments and blank lines). */
	echo = !isatty(STDIN_FILENO);
	if (!echo)
		printf("%s\n", commands);
	while (getline(&line, &size, stdin) != -1) {
		if (echo && strchr("#\r\n", line[strspn(line, " \t")]) == NULL)
			printf("> %s%s", line,
			    strchr(line, '\n') != NULL ? "" : "\n");
		rc = run_command(w, &counter, line);

		/* main's root worker gets events too (the notice that an
		 * event was rejected, an answer that came too late), and it
		 * keeps the answer its last wait returned.  All of that waits
		 * for main's next breakpoint, which may not come for a while:
		 * reach one now, so their data is freed. */
		(void)worker_update();
		if (rc != 0)
			break;
	}
	if (ferror(stdin)) {
		perror("increaser: standard input");
		status = EXIT_FAILURE;
	}
	free(line);

	/* "exit" or the end of the input: stop the worker if it runs, wait
	 * for its thread, and let it go.  (Stopping a worker that does not
	 * run would only queue a rejection notice on main.) */
	if (worker_is_running(w) && (rc = worker_stop(w)) != 0)
		report("increaser: stop", rc);
	if ((rc = worker_join(w)) != 0) {
		report("increaser: join", rc);
		status = EXIT_FAILURE;
	}
	worker_unref(w);
	return status;
}
