/*
 * main.c - relayd's entry: it reads the options, raises its descriptor
 * limit, opens both listening sockets before there is a tree to stop,
 * routes SIGINT and SIGTERM to the master, runs the master on the main
 * thread and prints the last line.  Also the two helpers every role uses,
 * say() and listen_self().
 *
 * Usage: relayd [-v] [-p PORT] [-s SUBPORT] [-d DB] [-q QUEUE] [-b BYTES]
 *	  [--max-conns N] [--max-per-addr N] [--idle-timeout SECS]
 *	  [--frame-timeout SECS] [--conn-workers N] [--max-memory BYTES]
 *	  [--inspect PATH]
 * Port 0 takes a free port; the line "relayd: ready: ..." on standard
 * error names the ports.  --inspect PATH has the master serve snapshots
 * of the tree on a Unix socket at PATH (worker_inspect()), which
 * worker-top(1) shows live.  Exits 0 after an orderly stop, 1 if a worker
 * failed or the socket could not be made, 2 on bad usage.  relayd.8 has
 * the rest.
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

#define FD_RESERVE	256	/* descriptors kept from the clients */
#define MAX_CONNS	10000	/* --max-conns by default */
#define MAX_PER_ADDR	256	/* --max-per-addr by default */
#define IDLE_TIMEOUT	60.0	/* --idle-timeout by default, seconds */
#define FRAME_TIMEOUT	30.0	/* --frame-timeout by default, seconds */
#define MAX_MEMORY	(256u << 20)	/* --max-memory by default, bytes */

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
    "              [--max-conns N] [--max-per-addr N] "
    "[--idle-timeout SECS]\n"
    "              [--frame-timeout SECS] [--conn-workers N] "
    "[--max-memory BYTES]\n"
    "              [--inspect PATH]\n"
    "  -p, --port PORT        clients on 127.0.0.1:PORT (7400; 0: any)\n"
    "  -s, --sub-port PORT    subscribers on 127.0.0.1:PORT (7401)\n"
    "  -d, --db FILE          the SQLite database (relay.db)\n"
    "  -q, --queue N          events queued on the fanout (1024)\n"
    "  -b, --sub-buffer BYTES how far a subscriber may fall behind "
    "(8388608)\n"
    "      --max-conns N      clients at once (10000, fewer if the\n"
    "                         descriptors do not allow)\n"
    "      --max-per-addr N   clients at once from one address (256)\n"
    "      --idle-timeout S   close a client silent for S seconds (60)\n"
    "      --frame-timeout S  close a client whose message takes longer "
    "(30)\n"
    "      --conn-workers N   threads that serve the clients "
    "(one per CPU)\n"
    "      --max-memory BYTES frames on their way and being read "
    "(268435456)\n"
    "  -v, --verbose          log every connection\n"
    "      --inspect PATH     serve snapshots of the tree for worker-top(1)\n"
    "                         on a Unix socket at PATH\n";

enum {
	OPT_INSPECT = 256, OPT_MAX_CONNS, OPT_MAX_PER_ADDR, OPT_IDLE,
	OPT_FRAME, OPT_WORKERS, OPT_MEMORY
};

/* The options of the limits on clients; false if one is bad. */
static bool
parse_limit(int c, const char *arg, struct relay *r, uint64_t *max_conns,
    uint64_t *per_addr)
{
	uint64_t n;

	switch (c) {
	case OPT_MAX_CONNS:
		return relay_parse_u64(arg, 1, 1u << 24, max_conns);
	case OPT_MAX_PER_ADDR:
		return relay_parse_u64(arg, 1, 1u << 24, per_addr);
	case OPT_IDLE:
		return relay_parse_secs(arg, &r->idle_timeout);
	case OPT_FRAME:
		return relay_parse_secs(arg, &r->frame_timeout);
	case OPT_WORKERS:
		if (!relay_parse_u64(arg, 1, 256, &n))
			return false;
		r->conn_workers = (unsigned)n;
		return true;
	case OPT_MEMORY:
		/* At least two frames of the largest. */
		if (!relay_parse_u64(arg, 4 * (FRAME_MAX + FRAME_COST),
		    SIZE_MAX / 2, &n))
			return false;
		r->budget.half = (size_t)n / 2;
		return true;
	}
	return false;
}

static bool
parse_options(int argc, char **argv, struct relay *r, uint64_t *max_conns,
    uint64_t *per_addr)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "sub-port", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "queue", required_argument, NULL, 'q' },
		{ "sub-buffer", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "inspect", required_argument, NULL, OPT_INSPECT },
		{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
		{ "max-per-addr", required_argument, NULL, OPT_MAX_PER_ADDR },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "frame-timeout", required_argument, NULL, OPT_FRAME },
		{ "conn-workers", required_argument, NULL, OPT_WORKERS },
		{ "max-memory", required_argument, NULL, OPT_MEMORY },
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
			if (!parse_limit(c, optarg, r, max_conns, per_addr))
				return false;
			break;
		}
	}
	return optind == argc;
}

/*
 * Raises the soft limit on descriptors to the hard one, and returns how
 * many clients it leaves room for: FD_RESERVE go to the database, the
 * sockets, the epoll sets and the subscribers.
 */
static uint64_t
client_fds(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024 - FD_RESERVE;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 24))
		return 1u << 24;
	return rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE :
	    rl.rlim_cur / 2;
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
		.sub_fd = -1,
		.idle_timeout = IDLE_TIMEOUT,
		.frame_timeout = FRAME_TIMEOUT,
		.budget = { .half = MAX_MEMORY / 2 }
	};
	uint64_t max_conns = 0, per_addr = MAX_PER_ADDR, fds;
	struct limits limits;
	long cpus;
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

	if (!parse_options(argc, argv, &r, &max_conns, &per_addr)) {
		fputs(usage, stderr);
		return 2;
	}
	/* Clients past the descriptors would be refused all the same, but
	 * later, and at the cost of the subscribers' descriptors. */
	fds = client_fds();
	if (max_conns == 0) {
		max_conns = MAX_CONNS < fds ? MAX_CONNS : fds;
	} else if (max_conns > fds) {
		say("--max-conns %" PRIu64 ": the descriptors allow %" PRIu64
		    " clients; taking that", max_conns, fds);
		max_conns = fds;
	}
	if (r.conn_workers == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		r.conn_workers = cpus < 1 ? 1 : cpus > 64 ? 64 :
		    (unsigned)cpus;
	}
	if (limits_init(&limits, (size_t)max_conns, (size_t)per_addr) !=
	    0) {
		say("no memory");
		return EXIT_FAILURE;
	}
	r.limits = &limits;
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
	say("limits: %" PRIu64 " clients, %" PRIu64 " from one address; "
	    "idle timeout %g s, frame timeout %g s; %zu MiB for frames; %u "
	    "conn workers", max_conns, per_addr, r.idle_timeout,
	    r.frame_timeout, r.budget.half >> 19, r.conn_workers);
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
	/* A conn given up on as stuck may still give its places back. */
	if (status == EXIT_SUCCESS)
		limits_fini(&limits);
	getrusage(RUSAGE_SELF, &ru);
	say("stopped: %" PRIu64 " frames read from %" PRIu64 " connections "
	    "(%" PRIu64 " refused), %" PRIu64 " rows committed (%" PRIu64
	    " were there already), slow subscribers dropped: %" PRIu64
	    "; peak RSS %ld KiB", (uint64_t)atomic_load(&frames_read),
	    r.conns, r.refused, r.rows, r.dups, r.dropped, ru.ru_maxrss);
	return status;
}
