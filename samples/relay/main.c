/*
 * main.c - relayd's entry: it reads the options, opens both listening
 * sockets before there is a tree to stop, routes SIGINT and SIGTERM to the
 * master, runs the master on the main thread and prints the last line.
 * Also the two helpers every role uses, say() and listen_self().
 *
 * Usage: relayd [-v] [-p PORT] [-s SUBPORT] [-d DB] [-q QUEUE] [-b BYTES]
 *	  [--inspect PATH]
 * Port 0 takes a free port; the line "relayd: ready: ..." on standard
 * error names the ports.  --inspect PATH has the master serve snapshots
 * of the tree on a Unix socket at PATH (worker_inspect()), which
 * worker-top(1) shows live.  Exits 0 after an orderly stop, 1 if a worker
 * failed or the socket could not be made, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relayd.h"

bool verbose;

/* --inspect: where the master serves its snapshots, or NULL. */
static const char *inspect_path;

/* A line on standard error; stdio locks the stream, so lines never mix. */
void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	relay_vlog("relayd", fmt, ap);
	va_end(ap);
}

/*
 * Adds a listener to the calling worker.  Transient: its ctx lives in the
 * task's frame, and a transient listener goes before the end sequence
 * hands the last queued events to the listeners that are left.
 */
void
listen_self(const char *name, worker_listener_fn fn, void *ctx)
{
	worker_listen_opts_t opts = { .transient = 1 };
	int rc;

	if ((rc = worker_listen(worker_current(), name, fn, ctx, &opts)) != 0)
		worker_fail(rc);
}

static const char usage[] =
    "usage: relayd [-v] [-p PORT] [-s SUBPORT] [-d DB] [-q QUEUE] "
    "[-b BYTES]\n"
    "              [--inspect PATH]\n"
    "  -p, --port PORT        clients on 127.0.0.1:PORT (7400; 0: any)\n"
    "  -s, --sub-port PORT    subscribers on 127.0.0.1:PORT (7401)\n"
    "  -d, --db FILE          the SQLite database (relay.db)\n"
    "  -q, --queue N          events queued on the fanout (1024)\n"
    "  -b, --sub-buffer BYTES how far a subscriber may fall behind "
    "(8388608)\n"
    "  -v, --verbose          log every connection\n"
    "      --inspect PATH     serve snapshots of the tree for worker-top(1)\n"
    "                         on a Unix socket at PATH\n";

enum { OPT_INSPECT = 256 };

static bool
parse_options(int argc, char **argv, struct relay *r)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "sub-port", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "queue", required_argument, NULL, 'q' },
		{ "sub-buffer", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "inspect", required_argument, NULL, OPT_INSPECT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:d:q:b:vh", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'p':
		case 's':
			if (!relay_parse_u64(optarg, 0, 65535, &n))
				return false;
			*(c == 'p' ? &r->port : &r->sub_port) = (int)n;
			break;
		case 'd':
			r->db = optarg;
			break;
		case 'q':
			if (!relay_parse_u64(optarg, 1, 1u << 24, &n))
				return false;
			r->queue_max = (size_t)n;
			break;
		case 'b':
			if (!relay_parse_u64(optarg, 1, SIZE_MAX / 2, &n))
				return false;
			r->sub_buffer = (size_t)n;
			break;
		case 'v':
			verbose = true;
			break;
		case OPT_INSPECT:
			if (*optarg == '\0')
				return false;
			inspect_path = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(EXIT_SUCCESS);
		default:
			return false;
		}
	}
	return optind == argc;
}

/*
 * The master's task with --inspect: the socket first, then the master
 * proper.  worker_inspect() serves from the loop of a running worker, so
 * it is called here, in the master's run, before there is a child.  A
 * socket asked for and not made fails the master: better no daemon than
 * one that cannot be looked at.
 */
static void *
inspected_master_task(void *arg)
{
	int rc;

	if ((rc = worker_inspect(worker_current(), inspect_path)) != 0) {
		say("--inspect %s: %s", inspect_path, strerror(rc));
		worker_fail(rc);
	}
	return master_task(arg);
}

/* A listening socket on 127.0.0.1:*port; *port gets the port bound. */
static int
open_port(int *port)
{
	struct sockaddr_in sa = relay_loopback(*port);
	socklen_t len = sizeof(sa);
	int fd, one = 1, err;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int
main(int argc, char **argv)
{
	struct relay r = {
		.db = "relay.db",
		.queue_max = 1024,
		.sub_buffer = 8u << 20,
		.port = 7400,
		.sub_port = 7401,
		.listen_fd = -1,
		.sub_fd = -1
	};
	/* The master supervises the store (relayd.h), and ends its children
	 * the newest first, each in turn: that order drains the tree. */
	worker_attr_t attr = {
		.name = "master", .quiet = 1,
		.stop_order = WORKER_STOP_REVERSE,
		.strategy = WORKER_ONE_FOR_ONE,
		.restart_max = STORE_RESTART_MAX,
		.restart_period = STORE_RESTART_PERIOD,
		.restart_delay = STORE_RESTART_DELAY
	};
	struct rusage ru;
	worker_t *master;
	sigset_t sigs;
	int rc, status = EXIT_SUCCESS;

	if (!parse_options(argc, argv, &r)) {
		fputs(usage, stderr);
		return 2;
	}
	/* The sockets first, in main: a port in use fails here, at once,
	 * before there is a tree to stop. */
	if ((r.listen_fd = open_port(&r.port)) < 0 ||
	    (r.sub_fd = open_port(&r.sub_port)) < 0) {
		say("127.0.0.1:%d: %s", r.listen_fd < 0 ? r.port : r.sub_port,
		    strerror(errno));
		if (r.listen_fd >= 0)
			close(r.listen_fd);
		return EXIT_FAILURE;
	}
	if ((master = worker_new(inspect_path != NULL ?
	    inspected_master_task : master_task, &r, &attr)) == NULL) {
		say("worker_new: %s", strerror(errno));
		return EXIT_FAILURE;
	}
	/* Before any thread exists, so that every thread blocks them and
	 * only the master's loop sees them.  The notify set, not the stop
	 * set: a signal of the stop set stops the master, and a second one
	 * would stop it in the middle of the drain. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if ((rc = worker_signals(master, NULL, &sigs)) != 0) {
		say("worker_signals: %s", strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_start_overlay(master)) != 0) {
		say("worker_start_overlay: %s", strerror(rc));
		status = EXIT_FAILURE;
	} else if ((rc = worker_result(master, NULL)) != 0 || r.failed) {
		say("failed%s%s", rc != 0 ? ": " : "",
		    rc != 0 ? strerror(rc) : "");
		status = EXIT_FAILURE;
	}
	worker_unref(master);
	/* A child that never started left its socket here. */
	if (r.listen_fd >= 0)
		close(r.listen_fd);
	if (r.sub_fd >= 0)
		close(r.sub_fd);
	getrusage(RUSAGE_SELF, &ru);
	say("stopped: %" PRIu64 " frames read from %" PRIu64 " connections, %"
	    PRIu64 " rows committed, slow subscribers dropped: %" PRIu64
	    "; peak RSS %ld KiB", (uint64_t)atomic_load(&frames_read),
	    r.conns, r.rows, r.dropped, ru.ru_maxrss);
	return status;
}
