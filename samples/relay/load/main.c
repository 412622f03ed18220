/*
 * main.c - relay-load's entry: the options, then a run or a check; and the
 * helpers every file uses: complain(), vproblem() and now_ns().
 *
 * Usage: relay-load -p PORT [-s SUBPORT] [options]	a run
 *	  relay-load --verify --db FILE --record FILE [--partial]
 * Exits 0 if every check passed, 1 if one failed, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    "  -p, --port PORT        relayd's clients port on 127.0.0.1\n"
    "  -s, --sub-port PORT    subscribe; check it sees every frame\n"
    "      --subscribers N    N subscribers, each checking every frame (1)\n"
    "  -c, --clients N        clients that send good frames (10)\n"
    "  -f, --frames M         frames each (1000)\n"
    "  -d, --duration SECS    send for SECS seconds instead\n"
    "  -n, --min-size BYTES   shortest payload (8, the least)\n"
    "  -m, --max-size BYTES   longest payload (4096; 1048576 at most)\n"
    "  -P, --parallel N       connections at once (all)\n"
    "      --oversize K       K more clients end with a frame too long\n"
    "      --cut K            K more clients leave in the middle of one\n"
    "      --slow-sub         a subscriber that never reads\n"
    "      --tolerate         relayd may stop in the middle of the run\n"
    "      --seed N           of payloads and packet sizes (1)\n"
    "  -r, --record FILE      write what was sent, for --verify\n"
    "  -t, --timeout SECS     wait for the subscriber (30)\n"
    "  -w, --window BYTES     lead of the senders on the subscriber "
    "(4194304)\n"
    "      --verify           check the database --db against --record\n"
    "      --partial          with --verify: relayd was stopped early\n";

enum {
	OPT_OVERSIZE = 256, OPT_CUT, OPT_SLOW, OPT_TOLERATE, OPT_SEED,
	OPT_VERIFY, OPT_DB, OPT_PARTIAL, OPT_SUBSCRIBERS
};

static bool
parse_secs(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *out > 0 &&
	    *out < 1e6;
}

static bool
parse_options(int argc, char **argv, struct load *ld)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "sub-port", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "frames", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "min-size", required_argument, NULL, 'n' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "parallel", required_argument, NULL, 'P' },
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
		{ "subscribers", required_argument, NULL, OPT_SUBSCRIBERS },
		{ NULL, 0, NULL, 0 }
	};
	const uint64_t many = 1000000;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:c:f:d:n:m:P:r:t:w:", longopts,
	    NULL)) != -1) {
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
			ok = parse_secs(optarg, &ld->duration);
			break;
		case 'n':
		case 'm':
			ok = relay_parse_u64(optarg, 8, FRAME_MAX, &v);
			*(c == 'n' ? &ld->min_size : &ld->max_size) =
			    (uint32_t)v;
			break;
		case 'P':
			ok = relay_parse_u64(optarg, 1, 10000, &v);
			ld->parallel = (size_t)v;
			break;
		case 'r':
			ld->record = optarg;
			break;
		case 't':
			ok = parse_secs(optarg, &ld->timeout);
			break;
		case 'w':
			ok = relay_parse_u64(optarg, 1, UINT64_MAX / 2,
			    &ld->window);
			break;
		case OPT_OVERSIZE:
		case OPT_CUT:
			ok = relay_parse_u64(optarg, 0, many, &v);
			*(c == OPT_CUT ? &ld->cut : &ld->oversize) = (size_t)v;
			break;
		case OPT_SLOW:
			ld->slow_sub = true;
			break;
		case OPT_TOLERATE:
			ld->tolerate = true;
			break;
		case OPT_SEED:
			ok = relay_parse_u64(optarg, 0, UINT64_MAX,
			    &ld->seed);
			break;
		case OPT_VERIFY:
			ld->verify = true;
			break;
		case OPT_DB:
			ld->db = optarg;
			break;
		case OPT_PARTIAL:
			ld->partial = true;
			break;
		case OPT_SUBSCRIBERS:
			ok = relay_parse_u64(optarg, 1, 10000, &v);
			ld->subscribers = (size_t)v;
			break;
		default:
			ok = false;
			break;
		}
		if (!ok)
			return false;
	}
	if (optind != argc)
		return false;
	if (ld->verify)
		return ld->db != NULL && ld->record != NULL;
	ld->n = ld->clients + ld->oversize + ld->cut;
	if (ld->duration > 0)
		ld->frames = UINT32_MAX;	/* the clock says when */
	if (ld->parallel == 0 || ld->parallel > ld->n)
		ld->parallel = ld->n;
	if (ld->sub_port == 0)
		ld->window = 0;
	else if (ld->window == 0)
		ld->window = 4u << 20;
	return ld->port != 0 && ld->n > 0 && ld->min_size <= ld->max_size;
}

int
main(int argc, char **argv)
{
	struct load ld = {
		.clients = 10,
		.frames = 1000,
		.min_size = 8,
		.max_size = 4096,
		.seed = 1,
		.timeout = 30
	};

	if (!parse_options(argc, argv, &ld)) {
		fputs(usage, stderr);
		return 2;
	}
	/* Lines of the report go out as they come, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return ld.verify ? verify(&ld) : run(&ld);
}
