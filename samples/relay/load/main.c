/*
 * main.c - relay-load's entry: the options, then a run, a check or the
 * hostile connections; and the helpers every file uses: complain(),
 * vproblem() and now_ns().
 *
 * Usage: relay-load -p PORT [-s SUBPORT] [options]	a run
 *	  relay-load --verify --db FILE --record FILE [--partial]
 *	  relay-load -p PORT --hostile KIND --conns N [options]
 * Exits 0 if every check passed, 1 if one failed, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include "load.h"

#define PROBLEMS_SHOWN	10		/* problems printed in full */

void
complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	relay_vlog("relay-load", fmt, ap);
	va_end(ap);
}

void
vproblem(uint64_t *count, const char *who, const char *fmt, va_list ap)
{
	char line[256];

	if ((*count)++ >= PROBLEMS_SHOWN)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	complain("%s: %s", who, line);
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char usage[] =
    "usage: relay-load -p PORT [-s SUBPORT] [options]\n"
    "       relay-load --verify --db FILE --record FILE [--partial]\n"
    "       relay-load -p PORT --hostile idle|slowloris|partial "
    "--conns N [options]\n"
    "  -p, --port PORT        relayd's clients port on 127.0.0.1\n"
    "  -s, --sub-port PORT    subscribe; check it sees every frame\n"
    "      --subscribers N    N subscribers, each checking every frame (1)\n"
    "  -c, --clients N        clients that send good frames (10)\n"
    "  -f, --frames M         frames each (1000)\n"
    "  -d, --duration SECS    send for SECS seconds instead\n"
    "  -R, --rate N           frames a second per client (no limit)\n"
    "  -n, --min-size BYTES   shortest payload (8, the least)\n"
    "  -m, --max-size BYTES   longest payload (4096; 1048576 at most)\n"
    "  -P, --parallel N       connections at once (all)\n"
    "  -T, --threads N        sender threads (2)\n"
    "      --in-flight N      frames a client may have unacked (4096)\n"
    "      --split            write in pieces of random length\n"
    "      --bind ADDR        connect from this local address\n"
    "      --oversize K       K more clients end with a frame too long\n"
    "      --cut K            K more clients leave in the middle of one\n"
    "      --slow-sub         a subscriber that never reads\n"
    "      --tolerate         relayd may go away for good: only the\n"
    "                         acked frames must be stored\n"
    "      --seed N           of payloads and packet sizes (1)\n"
    "      --run-id HEX       the first half of the client ids (random)\n"
    "  -r, --record FILE      write what was sent, for --verify\n"
    "      --db FILE          relayd's database: check it at the end\n"
    "  -t, --timeout SECS     give up after so long without an ack, or\n"
    "                         waiting for the subscriber (30)\n"
    "  -w, --window BYTES     lead of the senders on the subscriber "
    "(4194304)\n"
    "      --verify           check the database --db against --record\n"
    "      --partial          with --verify: relayd was stopped early\n"
    "      --hostile KIND     open --conns connections that say nothing,\n"
    "                         their hello a byte a second, or half a frame\n"
    "      --conns N          with --hostile (1000)\n"
    "      --partial-bytes N  of the half frame (1000)\n"
    "      --hold SECS        how long they wait for relayd at most (60)\n";

enum {
	OPT_OVERSIZE = 256, OPT_CUT, OPT_SLOW, OPT_TOLERATE, OPT_SEED,
	OPT_VERIFY, OPT_DB, OPT_PARTIAL, OPT_IN_FLIGHT, OPT_SPLIT, OPT_BIND,
	OPT_RUN_ID, OPT_HOSTILE, OPT_CONNS, OPT_PARTIAL_BYTES, OPT_HOLD,
	OPT_SUBSCRIBERS
};

static const struct option longopts[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "sub-port", required_argument, NULL, 's' },
	{ "clients", required_argument, NULL, 'c' },
	{ "frames", required_argument, NULL, 'f' },
	{ "duration", required_argument, NULL, 'd' },
	{ "rate", required_argument, NULL, 'R' },
	{ "min-size", required_argument, NULL, 'n' },
	{ "max-size", required_argument, NULL, 'm' },
	{ "parallel", required_argument, NULL, 'P' },
	{ "threads", required_argument, NULL, 'T' },
	{ "record", required_argument, NULL, 'r' },
	{ "timeout", required_argument, NULL, 't' },
	{ "window", required_argument, NULL, 'w' },
	{ "oversize", required_argument, NULL, OPT_OVERSIZE },
	{ "cut", required_argument, NULL, OPT_CUT },
	{ "slow-sub", no_argument, NULL, OPT_SLOW },
	{ "tolerate", no_argument, NULL, OPT_TOLERATE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "db", required_argument, NULL, OPT_DB },
	{ "partial", no_argument, NULL, OPT_PARTIAL },
	{ "in-flight", required_argument, NULL, OPT_IN_FLIGHT },
	{ "split", no_argument, NULL, OPT_SPLIT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "run-id", required_argument, NULL, OPT_RUN_ID },
	{ "hostile", required_argument, NULL, OPT_HOSTILE },
	{ "conns", required_argument, NULL, OPT_CONNS },
	{ "partial-bytes", required_argument, NULL, OPT_PARTIAL_BYTES },
	{ "hold", required_argument, NULL, OPT_HOLD },
	{ "subscribers", required_argument, NULL, OPT_SUBSCRIBERS },
	{ NULL, 0, NULL, 0 }
};

/* --hostile KIND; false if KIND is none of them. */
static bool
parse_hostile(const char *s, int *out)
{
	static const char *const kinds[] = { "idle", "slowloris", "partial" };

	for (int i = 0; i < 3; i++)
		if (strcmp(s, kinds[i]) == 0) {
			*out = HOSTILE_IDLE + i;
			return true;
		}
	return false;
}

/* The options with no short form; false if the argument is bad. */
static bool
parse_long(int c, const char *arg, struct load *ld)
{
	const uint64_t many = 1000000;
	char *end;
	uint64_t v;
	bool ok = true;

	switch (c) {
	case OPT_OVERSIZE:
	case OPT_CUT:
		ok = relay_parse_u64(arg, 0, many, &v);
		*(c == OPT_CUT ? &ld->cut : &ld->oversize) = (size_t)v;
		break;
	case OPT_SLOW:
		ld->slow_sub = true;
		break;
	case OPT_TOLERATE:
		ld->tolerate = true;
		break;
	case OPT_SEED:
		ok = relay_parse_u64(arg, 0, UINT64_MAX, &ld->seed);
		break;
	case OPT_VERIFY:
		ld->verify = true;
		break;
	case OPT_DB:
		ld->db = arg;
		break;
	case OPT_PARTIAL:
		ld->partial = true;
		break;
	case OPT_SUBSCRIBERS:
		ok = relay_parse_u64(arg, 1, 10000, &v);
		ld->subscribers = (size_t)v;
		break;
	case OPT_IN_FLIGHT:
		ok = relay_parse_u64(arg, 1, UINT32_MAX, &ld->in_flight);
		break;
	case OPT_SPLIT:
		ld->split = true;
		break;
	case OPT_BIND:
		ok = inet_pton(AF_INET, arg, &ld->bind) == 1;
		break;
	case OPT_RUN_ID:
		errno = 0;
		ld->run_id = strtoull(arg, &end, 16);
		ok = errno == 0 && end != arg && *end == '\0';
		break;
	case OPT_HOSTILE:
		ok = parse_hostile(arg, &ld->hostile);
		break;
	case OPT_CONNS:
		ok = relay_parse_u64(arg, 1, many, &v);
		ld->hostile_n = (size_t)v;
		break;
	case OPT_PARTIAL_BYTES:
		ok = relay_parse_u64(arg, 0, FRAME_MAX - 1, &v);
		ld->partial_bytes = (uint32_t)v;
		break;
	case OPT_HOLD:
		ok = relay_parse_secs(arg, &ld->hold);
		break;
	default:
		ok = false;
		break;
	}
	return ok;
}

static bool
parse_options(int argc, char **argv, struct load *ld)
{
	const uint64_t many = 1000000;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:c:f:d:R:n:m:P:T:r:t:w:",
	    longopts, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'p':
		case 's':
			ok = relay_parse_u64(optarg, 1, 65535, &v);
			*(c == 'p' ? &ld->port : &ld->sub_port) = (int)v;
			break;
		case 'c':
			ok = relay_parse_u64(optarg, 0, many, &v);
			ld->clients = (size_t)v;
			break;
		case 'f':
			ok = relay_parse_u64(optarg, 0, UINT32_MAX, &v);
			ld->frames = v;
			break;
		case 'd':
			ok = relay_parse_secs(optarg, &ld->duration);
			break;
		case 'R':
			ok = relay_parse_secs(optarg, &ld->rate);
			break;
		case 'n':
		case 'm':
			ok = relay_parse_u64(optarg, 8, FRAME_MAX, &v);
			*(c == 'n' ? &ld->min_size : &ld->max_size) =
			    (uint32_t)v;
			break;
		case 'P':
		case 'T':
			ok = relay_parse_u64(optarg, 1, many, &v);
			*(c == 'P' ? &ld->parallel : &ld->threads) =
			    (size_t)v;
			break;
		case 'r':
			ld->record = optarg;
			break;
		case 't':
			ok = relay_parse_secs(optarg, &ld->timeout);
			break;
		case 'w':
			ok = relay_parse_u64(optarg, 1, UINT64_MAX / 2,
			    &ld->window);
			break;
		default:
			ok = parse_long(c, optarg, ld);
			break;
		}
		if (!ok)
			return false;
	}
	if (optind != argc)
		return false;
	if (ld->verify)
		return ld->db != NULL && ld->record != NULL;
	if (ld->hostile != HOSTILE_NONE)
		return ld->port != 0;
	ld->n = ld->clients + ld->oversize + ld->cut;
	if (ld->duration > 0)
		ld->frames = UINT32_MAX;	/* the clock says when */
	if (ld->parallel == 0 || ld->parallel > ld->n)
		ld->parallel = ld->n;
	if (ld->threads > ld->n)
		ld->threads = ld->n;
	if (ld->sub_port == 0)
		ld->window = 0;
	else if (ld->window == 0)
		ld->window = 4u << 20;
	return ld->port != 0 && ld->n > 0 && ld->min_size <= ld->max_size;
}

/* As many descriptors as allowed: 10,000 clients need as many. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct load ld = {
		.clients = 10,
		.frames = 1000,
		.min_size = 8,
		.max_size = 4096,
		.threads = 2,
		.in_flight = 4096,
		.seed = 1,
		.timeout = 30,
		.hostile_n = 1000,
		.partial_bytes = 1000,
		.hold = 60
	};

	if (!parse_options(argc, argv, &ld)) {
		fputs(usage, stderr);
		return 2;
	}
	/* Lines of the report go out as they come, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_nofile();
	if (ld.run_id == 0 && getrandom(&ld.run_id, sizeof(ld.run_id), 0) !=
	    sizeof(ld.run_id))
		ld.run_id = now_ns();
	if (ld.verify)
		return verify(&ld);
	return ld.hostile != HOSTILE_NONE ? hostile(&ld) : run(&ld);
}
