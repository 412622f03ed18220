/*
 * idle.c - what an idle worker costs: N workers (default 10,000) alive at
 * once, each blocked in worker_wait_forever(), against N plain threads
 * each blocked on its own raw mutex + condition variable queue (peers.h).
 *
 * A run reads the resident memory (/proc/self/statm) and counts the open
 * descriptors (/proc/self/fd), starts the N workers or threads, waits
 * until each has arrived at a latch (bench.h) just before it blocks,
 * reads both again, then stops and joins them all.  The values are the
 * resident KiB per worker and the descriptors the N opened in all: a
 * worker without watches needs none.  Twice, each with its own table:
 * with the default stack size (8 MiB here) and with 64 KiB
 * (worker_attr_t.stack_size, and the same for the raw threads).  Only the
 * pages a thread touches count, so the stack size shows little.
 *
 * Two things would make a run after the first look cheaper than it is,
 * and are undone: the memory the last run freed is still resident in the
 * heap (malloc_trim() gives it back before each run), and glibc keeps up
 * to 40 MiB of the stacks of joined threads, resident, for reuse (the
 * program runs itself again with that cache off, GLIBC_TUNABLES).
 *
 * Usage: idle [-n N] [-r ROUNDS]
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

/* libworker and raw: the first two of peer_systems. */
enum { NSYS = SYS_GLIB };

enum { M_RSS, M_FDS, M_COUNT };
static const struct bench_metric metrics[M_COUNT] = {
	[M_RSS] = { "KiB/thr", "resident KiB per thread", " %9.2f",
	    BENCH_LOWER },
	[M_FDS] = { "fds", "descriptors opened", " %9.0f", BENCH_NONE },
};

static struct bench_latch ready;

/* ---- libworker ------------------------------------------------------ */

static void *
idle_task(void *arg)
{
	(void)arg;
	bench_latch_arrive(&ready);
	worker_wait_forever();
	return NULL;
}

static void *
start_workers(unsigned long n, size_t stack)
{
	worker_attr_t attr = { .stack_size = stack };
	worker_t **w = calloc(n, sizeof(*w));
	unsigned long i;

	if (w == NULL)
		bench_die("idle", ENOMEM);
	for (i = 0; i < n; i++)
		if ((w[i] = worker_create(idle_task, NULL, &attr)) == NULL)
			bench_die("idle: worker_create", errno);
	return w;
}

static void
stop_workers(void *arg, unsigned long n)
{
	worker_t **w = arg;
	unsigned long i;
	int rc;

	/* All the stops first, so that the threads end side by side. */
	for (i = 0; i < n; i++)
		if ((rc = worker_stop(w[i])) != 0)
			bench_die("idle: worker_stop", rc);
	for (i = 0; i < n; i++) {
		if ((rc = worker_join(w[i])) != 0)
			bench_die("idle: worker_join", rc);
		worker_unref(w[i]);
	}
	free(w);
}

/* ---- raw ------------------------------------------------------------ */

struct raw_thread {
	void *queue;
	pthread_t thread;
};

static void *
raw_idle(void *arg)
{
	struct raw_thread *t = arg;

	bench_latch_arrive(&ready);
	while (peer_raw.pop(t->queue) != PEER_STOP)
		;
	return NULL;
}

static void *
start_raw(unsigned long n, size_t stack)
{
	struct raw_thread *t = calloc(n, sizeof(*t));
	unsigned long i;

	if (t == NULL)
		bench_die("idle", ENOMEM);
	for (i = 0; i < n; i++) {
		if ((t[i].queue = peer_raw.create()) == NULL)
			bench_die("idle: queue", ENOMEM);
		t[i].thread = bench_thread_stack(raw_idle, &t[i], stack);
	}
	return t;
}

static void
stop_raw(void *arg, unsigned long n)
{
	struct raw_thread *t = arg;
	unsigned long i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = peer_raw.push(t[i].queue, PEER_STOP)) != 0)
			bench_die("idle: push", rc);
	for (i = 0; i < n; i++) {
		bench_join(t[i].thread);
		peer_raw.destroy(t[i].queue);
	}
	free(t);
}

/* ---- main ----------------------------------------------------------- */

/* Execs the program again with glibc's stack cache off, once. */
static void
no_stack_cache(char **argv)
{
	static const char tunable[] = "glibc.pthread.stack_cache_size=0";
	const char *t = getenv("GLIBC_TUNABLES");

	if (t != NULL && strstr(t, tunable) != NULL)
		return;
	if (setenv("GLIBC_TUNABLES", tunable, 1) == 0)
		execv("/proc/self/exe", argv);
	perror("idle: cannot turn glibc's stack cache off");
}

struct config {
	const char *what;	/* in the title */
	const char *row;	/* in the final table */
	size_t stack;
	unsigned long n;
};

static void
run(int round, int sys, double *m, void *ctx)
{
	const struct config *cf = ctx;
	unsigned long n = cf->n;
	size_t stack = cf->stack;
	long rss0, rss1;
	int fds0, fds1;
	void *all;

	(void)round;
	bench_latch_init(&ready, (unsigned)n);
	/* What the last run freed is still resident: give it back, or the
	 * next run would reuse it for nothing. */
	malloc_trim(0);
	rss0 = bench_rss_kib();
	fds0 = bench_nfds();
	all = sys == SYS_WORKER ? start_workers(n, stack) :
	    start_raw(n, stack);
	if (bench_latch_wait(&ready) == 0)
		bench_die("idle: start", ETIMEDOUT);
	rss1 = bench_rss_kib();
	fds1 = bench_nfds();
	if (sys == SYS_WORKER)
		stop_workers(all, n);
	else
		stop_raw(all, n);
	bench_latch_destroy(&ready);
	if (rss0 < 0 || rss1 < 0 || fds0 < 0 || fds1 < 0)
		bench_die("idle: /proc/self", EIO);
	m[M_RSS] = (double)(rss1 - rss0) / (double)n;
	m[M_FDS] = fds1 - fds0;
}

int
main(int argc, char **argv)
{
	static struct config configs[] = {
		{ "default stacks", "dflt", 0, 0 },
		{ "64 KiB stacks", "64K", 64 * 1024, 0 },
	};
	enum { NCONFIG = sizeof(configs) / sizeof(configs[0]) };
	unsigned long n = 10000, rounds = 5;
	struct bench_table t[NCONFIG];
	char title[NCONFIG][96], row[64], lw[32];
	double kib, fds;
	int c;

	no_stack_cache(argv);
	bench_options(argc, argv, "idle [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &n, 100000 },
	    { 'r', &rounds, 1000 } }, 2);
	printf("idle: %lu threads alive at once per run, %lu rounds\n"
	    "libworker %s\n", n, rounds, worker_version());
	for (c = 0; c < NCONFIG; c++) {
		configs[c].n = n;
		snprintf(title[c], sizeof(title[c]), "idle, %lu threads, %s",
		    n, configs[c].what);
		if (bench_table_init(&t[c], title[c], peer_systems, NSYS,
		    metrics, M_COUNT, (int)rounds) != 0)
			bench_die("idle", ENOMEM);
		bench_play(&t[c], run, &configs[c]);
	}

	/* The target is absolute; raw is there to show the floor. */
	printf("\n");
	for (c = 0; c < NCONFIG; c++) {
		kib = bench_median_of(&t[c], SYS_WORKER, M_RSS);
		fds = bench_median_of(&t[c], SYS_WORKER, M_FDS);
		snprintf(row, sizeof(row), "idle worker, %s, KiB",
		    configs[c].row);
		snprintf(lw, sizeof(lw), "%.2f %.0ffd", kib, fds);
		bench_target_peer(&t[c], row, lw, SYS_RAW, M_RSS,
		    "<= 12, 0 fd", kib <= 12 && fds == 0);
		bench_table_free(&t[c]);
	}
	return 0;
}
