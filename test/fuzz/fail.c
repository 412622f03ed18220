/*
 * fail.c - fuzz-fail: the library's allocations fail on a schedule.
 *
 *	fuzz-fail			the default sweep (make fuzz-ci)
 *	fuzz-fail nth N1 N2		every Nth allocation fails, N1..N2
 *	fuzz-fail after K1 K2		every allocation after the Kth fails
 *	fuzz-fail seeds S1 S2		seed inputs under a few patterns each
 *	fuzz-fail -1 nth|after N [SEED]	one pattern, in this process
 *
 * The program is linked with -Wl,--wrap=malloc,... and test/failmalloc.c,
 * so that the calls of the library (and of fuzz.c) to malloc, calloc,
 * realloc, aligned_alloc and strdup go through its schedule; libc's own
 * allocations do not.  Allocations fail
 * only while fuzz.c runs the programs of an input (fuzz_alloc_hook), and
 * never in the harness's own bookkeeping calls (fuzz_nofail_hook).
 *
 * The workload is an input written with fuzz.c's own operations: one
 * driver makes workers with children, listeners, timers, a channel and
 * deferred values, fires payloads with destructors, then stops and joins
 * them.  So every invariant of fuzz.c holds here too: each destructor and
 * each cleanup handler exactly once, every worker freed, no thread left,
 * and the watchdog bounds each run (FUZZ_TIMEOUT, 5 s here: the workload
 * takes some 50 ms).
 *
 * Each pattern runs in a child process of its own, so that an abort or a
 * hang is one failed pattern, not the end of the sweep; FUZZ_JOBS=N runs
 * N at once.  The last line is "fuzz-fail: N passed, M failed".
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../failmalloc.h"
#include "fuzz.h"

enum { NONE, NTH, AFTER };

static void
alloc_hook(int on)
{
	failmalloc_enable(on);
}

static void
nofail_hook(int on)
{
	failmalloc_pause(on);
}

/* ---- The workload ----------------------------------------------------- */

/*
 * An assembler for fuzz.c's input format: the bytes after each operation
 * are its arguments, in the order fuzz.c reads them.  A sub-program is
 * named by three bytes: its offset (two) and its length less 2.
 */
static uint8_t in[1024];
static size_t nin;

enum { SELF = 12, PARENT = 14, ROOT = 15 | 16 };	/* arg_worker() */
/* The byte that slot_of() reads as slot i (i < 6). */
#define SLOT(i) ((i) < 2 ? (i) : 6 | ((i) - 2) << 4)
enum { EV_A, EV_B, EV_C, EV_LONG };		/* fire_name() values */

static void
put(int n, ...)
{
	va_list ap;

	va_start(ap, n);
	while (n-- > 0)
		in[nin++] = (uint8_t)va_arg(ap, int);
	va_end(ap);
}

static void
op(enum fuzz_op o)
{
	in[nin++] = fuzz_op_byte(o);
}

/* A reference to the sub-program at offset at, of len operations' bytes. */
static void
subref(size_t at, size_t len)
{
	put(3, (int)(at >> 8), (int)(at & 0xff), (int)(len - 2));
}

/* Where the sub-programs go: after the driver's program. */
#define T_PARENT	400	/* a parent's task */
#define T_CHILD		440	/* its children's */
#define L_RELAY		480	/* a listener that fires on */
#define L_CLEAN		510	/* a listener with a cleanup handler */
#define X_TIMER		540	/* a timer's */
#define SUBLEN		40

static size_t
workload(void)
{
	size_t at;

	nin = 0;
	/* worker 0: parentless, its task makes a child of its own */
	op(OP_CREATE), put(3, 3 << 3, 0, SLOT(0)), subref(T_PARENT, SUBLEN);
	/* worker 1: explicit child of 0, daemon; worker 2: child, not a
	 * daemon, with a queue of one (c % 4 is the parent's slot, c >> 4
	 * the daemon value, c >> 2 & 3 the queue) */
	op(OP_CREATE), put(3, 4 << 3, 0x24, SLOT(1)), subref(T_CHILD, SUBLEN);
	op(OP_CREATE), put(3, 4 << 3, 0x18, SLOT(2)), subref(T_CHILD, SUBLEN);
	/* listeners: plain, once, prioritised, transient, by source */
	op(OP_LISTEN), put(3, SLOT(0), EV_A, 0x01), subref(L_RELAY, SUBLEN);
	op(OP_LISTEN), put(3, SLOT(1), EV_A, 0x08), subref(L_CLEAN, SUBLEN);
	op(OP_LISTEN), put(3, SLOT(2), EV_B, 0x05), subref(L_CLEAN, SUBLEN);
	op(OP_LISTEN), put(3, SLOT(0), EV_C, 0x10), subref(L_CLEAN, SUBLEN);
	op(OP_LISTEN), put(3, SLOT(1), EV_A, 0xc0), subref(L_RELAY, SUBLEN);
	/* the channel */
	op(OP_SUB), put(2, 0, SLOT(0));
	op(OP_SUB), put(2, 0, SLOT(1));
	op(OP_SUB), put(2, 0, SLOT(2));
	/* payloads with destructors: plain, bubbling, broadcast, channel */
	for (at = 0; at < 3; at++) {
		op(OP_FIRE_EX), put(3, SLOT(1), EV_A, 0), subref(X_TIMER, 4);
		op(OP_FIRE_EX), put(3, SLOT(2), EV_B, 1), subref(X_TIMER, 4);
		op(OP_FIRE_EX), put(3, SLOT(0), EV_C, 2), subref(X_TIMER, 4);
		op(OP_FIRE_EX), put(3, SLOT(0), EV_LONG, 3), subref(X_TIMER, 4);
		op(OP_PUB_EX), put(2, EV_A, 0), subref(X_TIMER, 4);
		op(OP_FIRE), put(3, SLOT(1), EV_B, 1);
		op(OP_BROADCAST), put(3, SLOT(0), EV_C, 0);
	}
	/* timers: one-shot, periodic, one cancelled */
	op(OP_LATER), put(2, SLOT(0), 1), subref(X_TIMER, 8);
	op(OP_EVERY), put(2, SLOT(1), 1), subref(X_TIMER, 8);
	op(OP_LATER), put(2, SLOT(2), 3), subref(X_TIMER, 8);
	op(OP_CANCEL), put(1, 2);
	/* deferred values */
	op(OP_DEFER_SETTLE), put(1, 0x04);
	op(OP_DEFER_SETTLE), put(1, 0x09);
	op(OP_SLEEP), put(1, 3);
	/* a worker stopped and joined, then a fresh one, an async */
	op(OP_STOP), put(1, SLOT(1));
	op(OP_JOIN), put(1, SLOT(1));
	op(OP_CREATE), put(3, 3 << 3, 0, SLOT(3)), subref(T_CHILD, SUBLEN);
	op(OP_ASYNC), put(1, SLOT(4)), subref(T_CHILD, SUBLEN);
	op(OP_FIRE_EX), put(3, SLOT(3), EV_A, 0), subref(X_TIMER, 4);
	op(OP_PUB_EX), put(2, EV_B, 0), subref(X_TIMER, 4);
	op(OP_SLEEP), put(1, 2);
	/* the whole tree: the parent ends and stops its children */
	op(OP_STOP), put(1, SLOT(0));
	op(OP_JOIN), put(1, SLOT(0));
	op(OP_STOP), put(1, SLOT(3));
	op(OP_JOIN), put(1, SLOT(3));
	op(OP_RETURN), put(1, 0);
	if (nin > T_PARENT) {
		fprintf(stderr, "fuzz-fail: the workload is %zu bytes\n", nin);
		exit(2);
	}
	/* Every sub-program ends with RETURN 0; so does the padding. */
	memset(in + nin, fuzz_op_byte(OP_RETURN), sizeof(in) - nin);

	nin = T_PARENT;
	op(OP_LISTEN), put(3, SELF, EV_B, 0x03), subref(L_CLEAN, SUBLEN);
	op(OP_CREATE), put(3, 0, 0, SLOT(5)), subref(T_CHILD, SUBLEN);
	op(OP_CLEANUP_PUSH);
	op(OP_FIRE_EX), put(3, SELF, EV_B, 0), subref(X_TIMER, 4);
	op(OP_DEFER_GET), put(1, 0x50);
	op(OP_WAIT_EVENT), put(2, 0x05, EV_A);
	op(OP_FIRE_EX), put(3, SLOT(5), EV_C, 2), subref(X_TIMER, 4);
	op(OP_WAIT_FOREVER);
	op(OP_RETURN), put(1, 0);

	nin = T_CHILD;
	op(OP_CLEANUP_PUSH);
	op(OP_LATER), put(2, SELF, 0), subref(X_TIMER, 4);
	op(OP_WAIT_EVENT), put(2, 0x06, EV_A);
	op(OP_FIRE_EX), put(3, PARENT, EV_B, 1), subref(X_TIMER, 4);
	op(OP_DEFER_PRIVATE), put(1, 0x18);
	op(OP_CLEANUP_POP), put(1, 1);
	op(OP_PUB_EX), put(2, EV_C, 0), subref(X_TIMER, 4);
	op(OP_WAIT_FOREVER);
	op(OP_RETURN), put(1, 0);

	nin = L_RELAY;
	op(OP_FIRE_EX), put(3, PARENT, EV_C, 0), subref(X_TIMER, 4);
	op(OP_PUB), put(2, EV_LONG, 0);
	op(OP_RETURN), put(1, 1);

	nin = L_CLEAN;
	op(OP_CLEANUP_PUSH);
	op(OP_LISTEN), put(3, SELF, EV_LONG, 0x08), subref(X_TIMER, 4);
	op(OP_UPDATE);
	op(OP_CLEANUP_POP), put(1, 1);
	op(OP_RETURN), put(1, 0);

	nin = X_TIMER;
	op(OP_UPDATE);
	op(OP_CLEANUP_PUSH);
	op(OP_CLEANUP_POP), put(1, 0);
	op(OP_RETURN), put(1, 0);
	if (nin > 600) {
		fprintf(stderr, "fuzz-fail: the sub-programs overflow\n");
		exit(2);
	}
	return 600;
}

/* ---- The sweep -------------------------------------------------------- */

static int timeout_s = 10;

static void
run_here(int m, long n, int seed, long *ncalls, long *nfail)
{
	static uint8_t buf[FUZZ_INPUT_MAX];
	char label[128];
	size_t size;

	if (fuzz_init() != 0)
		exit(2);
	/* Armed, but idle until fuzz.c runs the programs (alloc_hook). */
	failmalloc_arm(m == AFTER ? n : -1, m == NTH ? n : 0);
	failmalloc_enable(0);
	if (seed < 0) {
		size = workload();
		snprintf(label, sizeof(label), "the workload, %s %ld",
		    m == NTH ? "nth" : m == AFTER ? "after" : "none", n);
		fuzz_set_label(label);
		fuzz_one_drivers(in, size, 1);
	} else {
		size = fuzz_gen((uint64_t)seed, buf, sizeof(buf));
		snprintf(label, sizeof(label), "seed %d, %s %ld", seed,
		    m == NTH ? "nth" : "after", n);
		fuzz_set_label(label);
		fuzz_one(buf, size);
	}
	*ncalls = failmalloc_calls();
	*nfail = failmalloc_failed();
}

struct pattern {
	int mode;
	long n;
	int seed;		/* -1: the workload */
	pid_t pid;
	double start;
};

static long passed, failed;
static int jobs = 1;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
start_child(struct pattern *pt)
{
	long c, f;

	fflush(stdout);
	if ((pt->pid = fork()) < 0) {
		perror("fuzz-fail");
		exit(2);
	}
	if (pt->pid == 0) {
		run_here(pt->mode, pt->n, pt->seed, &c, &f);
		exit(0);
	}
	pt->start = now();
}

static void
report(const struct pattern *pt, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		passed++;
		return;
	}
	failed++;
	if (pt->seed >= 0)
		printf("fuzz-fail: FAILED: seed %d, ", pt->seed);
	else
		printf("fuzz-fail: FAILED: the workload, ");
	printf("%s %ld (%s %d)\n", pt->mode == NTH ? "nth" : "after", pt->n,
	    WIFSIGNALED(status) ? "signal" : "exit",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/*
 * Runs the patterns, jobs at a time.  The child's own watchdog reports a
 * hang; a child that cannot even do that is killed a little later.
 */
static void
run_patterns(struct pattern *pts, size_t n)
{
	size_t next = 0, running = 0, i;

	while (next < n || running > 0) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		int status;

		while (next < n && running < (size_t)jobs) {
			start_child(&pts[next++]);
			running++;
		}
		for (i = 0; i < next; i++) {
			pid_t r;

			if (pts[i].pid <= 0)
				continue;
			if ((r = waitpid(pts[i].pid, &status, WNOHANG)) == 0 &&
			    now() - pts[i].start > timeout_s + 10) {
				kill(pts[i].pid, SIGKILL);
				r = waitpid(pts[i].pid, &status, 0);
			}
			if (r == pts[i].pid) {
				report(&pts[i], status);
				pts[i].pid = 0;
				running--;
			}
		}
		nanosleep(&ts, NULL);
	}
}

static struct pattern *pts;
static size_t npts;

static void
add(int mode, long first, long last, int seed)
{
	for (long n = first; n <= last; n++) {
		if ((pts = realloc(pts, (npts + 1) * sizeof(*pts))) == NULL) {
			perror("fuzz-fail");
			exit(2);
		}
		pts[npts].mode = mode;
		pts[npts].n = n;
		pts[npts].seed = seed;
		pts[npts].pid = 0;
		npts++;
	}
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	char *e;
	long c = 0, f = 0;

	if ((e = getenv("FUZZ_TIMEOUT")) == NULL || atoi(e) <= 0)
		setenv("FUZZ_TIMEOUT", "5", 1);
	timeout_s = atoi(getenv("FUZZ_TIMEOUT"));
	if ((e = getenv("FUZZ_JOBS")) != NULL && atoi(e) > 0)
		jobs = atoi(e);
	fuzz_alloc_hook = alloc_hook;
	fuzz_nofail_hook = nofail_hook;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (argc >= 4 && strcmp(argv[1], "-1") == 0) {
		run_here(strcmp(argv[2], "nth") == 0 ? NTH : AFTER,
		    atol(argv[3]), argc > 4 ? atoi(argv[4]) : -1, &c, &f);
		printf("fuzz-fail: passed: %ld allocations, %ld failed\n", c,
		    f);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "nth") == 0) {
		add(NTH, atol(argv[2]), atol(argv[3]), -1);
	} else if (argc == 4 && strcmp(argv[1], "after") == 0) {
		add(AFTER, atol(argv[2]), atol(argv[3]), -1);
	} else if (argc == 4 && strcmp(argv[1], "seeds") == 0) {
		for (int s = atoi(argv[2]); s <= atoi(argv[3]); s++) {
			add(NTH, 2, 4, s);
			add(NTH, 7, 7, s);
			add(AFTER, 50, 50, s);
		}
	} else if (argc == 1) {
		add(NTH, 1, 50, -1);
		add(AFTER, 0, 300, -1);
	} else {
		fprintf(stderr, "usage: fuzz-fail [nth|after FIRST LAST]\n"
		    "       fuzz-fail seeds FIRST LAST\n"
		    "       fuzz-fail -1 nth|after N [SEED]\n");
		return 2;
	}
	run_patterns(pts, npts);
	free(pts);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("fuzz-fail: %ld passed, %ld failed (%.1f s)\n", passed,
	    failed, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) /
	    1e9);
	return failed != 0;
}
