/*
 * main.c - worker-top(1): the worker trees of a process, live, like top(1),
 * from the snapshots that worker_inspect() serves on a Unix socket.  This
 * file: the options, -1 (one snapshot as text), and the helpers of all.
 *
 * Usage: worker-top [-1] [-d SECONDS] [-s SECONDS] SOCKET
 * Exits 0 when the user quits (or -1 printed its snapshot), 1 if it cannot
 * connect or the server goes away, 2 on bad usage, 3 on a snapshot that
 * is not what the protocol promises.
 *
 * DESIGN: one thread.  The server sends a snapshot, one JSON document on
 * one line, when we connect and then one for each "\n" we send; we send
 * the next request only once the answer to the last is in, so requests
 * never pile up behind a busy server (snap.c).  Rates are deltas between
 * two snapshots, matched by worker id, divided by the difference of the
 * server's own clock ("now"), so that an answer that comes late does not
 * make them jump.  Rows are plain text in fixed columns (row.c), the same
 * for -1 and for the screen (screen.c), which adds the highlighting.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>

#include "top.h"

#define ANSWER_WAIT	10.0	/* -1: s to wait for each snapshot */

bool curses_on;

void
die(int status, const char *fmt, ...)
{
	va_list ap;

	if (curses_on)
		endwin();
	fputs("worker-top: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size);

	if (p == NULL)
		die(EXIT_GONE, "out of memory");
	return p;
}

double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- -1: one snapshot as text --------------------------------------- */

/* Waits up to ANSWER_WAIT s for the next snapshot; prev: for the rates. */
static struct snap *
read_snap(struct conn *c, const struct snap *prev)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	double end = mono() + ANSWER_WAIT;
	struct snap *s;
	char *line;
	size_t len;

	while ((line = conn_line(c, &len)) == NULL) {
		if (mono() >= end)
			die(EXIT_GONE, "%s: no snapshot in %.0f s", c->path,
			    ANSWER_WAIT);
		if (poll(&pfd, 1, 100) > 0)
			conn_fill(c);
	}
	s = snap_parse(c->path, line, len);
	conn_drop(c, len);
	snap_derive(s, prev);
	return s;
}

/* A row without the blanks of its empty last columns. */
static void
print_trimmed(const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && line[n - 1] == ' ')
		n--;
	printf("%.*s\n", (int)n, line);
}

/*
 * Prints one snapshot, every worker, in the order the server sent.  The
 * rates need two: with an interval, this is the second of two taken that
 * far apart; with -d 0, the first, and "-" for the rates.
 */
static int
print_once(struct conn *c, double interval, double stuck)
{
	struct snap *first = read_snap(c, NULL), *s = first;
	struct timespec ts = {
		.tv_sec = (time_t)interval,
		.tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9)
	};
	char line[1024];
	size_t i;
	int namew;

	if (interval > 0) {
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		conn_ask(c);
		s = read_snap(c, first);
	}
	snap_rows(s, true);
	namew = name_width(s);
	fmt_real(line, sizeof(line), s->rate);
	printf("pid %lld, %zu workers, events/s %s\n", (long long)s->pid,
	    s->n, line);
	format_titles(line, sizeof(line), namew);
	print_trimmed(line);
	for (i = 0; i < s->nrows; i++) {
		format_row(line, sizeof(line), s->rows[i], namew, stuck);
		print_trimmed(line);
	}
	if (s != first)
		snap_free(first);
	snap_free(s);
	conn_close(c);
	if (fflush(stdout) != 0 || ferror(stdout))
		die(EXIT_GONE, "standard output: %s", strerror(errno));
	return 0;
}

/* ---- Options -------------------------------------------------------- */

static void __attribute__((noreturn))
usage(void)
{
	fputs("usage: worker-top [-1] [-d SECONDS] [-s SECONDS] SOCKET\n",
	    stderr);
	exit(EXIT_USAGE);
}

static double
parse_secs(const char *s)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d >= 0) ||
	    d > 86400) {
		fprintf(stderr, "worker-top: %s: not a number of seconds from "
		    "0 to 86400\n", s);
		usage();
	}
	return d;
}

int
main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	double interval = 1, stuck = 1;
	bool once = false;
	int ch;

	while ((ch = getopt(argc, argv, "1d:s:")) != -1) {
		switch (ch) {
		case '1':
			once = true;
			break;
		case 'd':
			interval = parse_secs(optarg);
			break;
		case 's':
			stuck = parse_secs(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	/* The screen asks at most ten times a second; only -1 may do
	 * without the second snapshot (-d 0). */
	if (!once && interval < 0.1) {
		fputs("worker-top: -d: at least 0.1 s, but with -1\n", stderr);
		usage();
	}
	signal(SIGPIPE, SIG_IGN);	/* a gone server is an EPIPE */
	if (!once && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))) {
		fputs("worker-top: the screen needs a terminal; -1 prints "
		    "one snapshot\n", stderr);
		usage();
	}
	conn_open(&c, argv[optind]);
	if (once)
		return print_once(&c, interval, stuck);
	return run_screen(&c, interval, stuck);
}
