/*
 * tree.c - how long a whole tree takes to stop: a root with F children,
 * each with F children, each with F children (default F = 10: 1 + 10 +
 * 100 + 1,000 = 1,111 workers), against the same tree of plain threads on
 * raw mutex + condition variable queues (peers.h).
 *
 * libworker: every worker creates its children with worker_create() (so
 * it is their parent), arrives at a latch (bench.h), and waits with
 * worker_wait_forever(); each has a cleanup handler that counts it when
 * the stop unwinds it.  When all have arrived, the main thread calls
 * worker_stop() on the root and worker_join() on it, which returns when
 * the root's end sequence is over: every child ended, down the tree.
 * Twice: "libworker" with the default stop order (each worker ends its
 * children the newest first, one ended before the next is stopped), and
 * "lw-parallel" with attr.stop_order = WORKER_STOP_PARALLEL (all stopped
 * at once, then all waited for, as raw does).  raw: every thread
 * creates its children's queues and threads, arrives, and pops its
 * queue; on PEER_STOP it pushes PEER_STOP to each child, joins them all
 * and frees their queues; the main thread pushes PEER_STOP to the root
 * and joins it.  Both are timed from the stop to
 * the return of the join, and both must then be back to the thread count
 * of before (/proc/self/status): every thread gone.  Building the tree is
 * timed too, for information.
 *
 * Twice, each with its own table: with the default stack size (8 MiB
 * here), and with 64 KiB stacks (worker_attr_t.stack_size, and the same
 * for the raw threads).  Most of a stop is the kernel's: ending threads
 * and unmapping their stacks, which glibc caches only up to 40 MiB, so
 * the size of the stacks weighs on it.
 *
 * Usage: tree [-f FANOUT] [-r ROUNDS]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

#define DEPTH 3			/* levels below the root */

/* libworker, raw, and libworker stopping its children all at once. */
enum { SYS_PARALLEL = SYS_RAW + 1, NSYS };
static const char *const systems[NSYS] = {
	"libworker", "raw", "lw-parallel"
};

enum { M_STOP, M_BUILD, M_COUNT };
static const struct bench_metric metrics[M_COUNT] = {
	[M_STOP] = { "stop ms", "stop + join ms", " %9.2f", BENCH_LOWER },
	[M_BUILD] = { "build ms", "build ms", " %9.2f", BENCH_LOWER },
};

/* The run under way: every node reads it, none writes but the counters. */
static struct {
	unsigned long fan;
	size_t stack;			/* stack size, 0: the default */
	int stop_order;			/* WORKER_STOP_* of every worker */
	struct bench_latch ready;	/* every node runs */
	atomic_ulong ended;		/* nodes that handled the stop */
} tree;

static void
count_end(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&tree.ended, 1, memory_order_relaxed);
}

/* ---- libworker ------------------------------------------------------ */

static void *
worker_node(void *arg)
{
	uintptr_t level = (uintptr_t)arg;
	worker_attr_t attr = { .stack_size = tree.stack,
	    .stop_order = tree.stop_order };
	unsigned long i;
	worker_t *c;

	worker_cleanup_push(count_end, NULL);
	for (i = 0; level < DEPTH && i < tree.fan; i++) {
		if ((c = worker_create(worker_node, (void *)(level + 1),
		    &attr)) == NULL)
			bench_die("tree: worker_create", errno);
		/* The child keeps itself alive while it runs, and this
		 * worker's end sequence stops and joins it. */
		worker_unref(c);
	}
	bench_latch_arrive(&tree.ready);
	worker_wait_forever();
	return NULL;
}

/* Starts the root, which builds the rest of the tree. */
static void *
build_worker(void)
{
	worker_attr_t attr = { .stack_size = tree.stack,
	    .stop_order = tree.stop_order };
	worker_t *root = worker_create(worker_node, (void *)0, &attr);

	if (root == NULL)
		bench_die("tree: worker_create", errno);
	return root;
}

static void
stop_worker(void *root)
{
	int rc;

	if ((rc = worker_stop(root)) != 0 || (rc = worker_join(root)) != 0)
		bench_die("tree: worker_stop", rc);
	worker_unref(root);
}

/* ---- raw ------------------------------------------------------------ */

struct raw_node {
	void *queue;
	uintptr_t level;
	pthread_t thread;
};

static void *raw_node(void *arg);

static struct raw_node *
raw_start(uintptr_t level)
{
	struct raw_node *n = malloc(sizeof(*n));

	if (n == NULL || (n->queue = peer_raw.create()) == NULL)
		bench_die("tree: raw node", ENOMEM);
	n->level = level;
	n->thread = bench_thread_stack(raw_node, n, tree.stack);
	return n;
}

static void
raw_stop(struct raw_node *n)
{
	int rc;

	if ((rc = peer_raw.push(n->queue, PEER_STOP)) != 0)
		bench_die("tree: push", rc);
}

static void
raw_free(struct raw_node *n)
{
	bench_join(n->thread);
	peer_raw.destroy(n->queue);
	free(n);
}

static void *
raw_node(void *arg)
{
	struct raw_node *n = arg, **kids = NULL;
	unsigned long i, nkids = n->level < DEPTH ? tree.fan : 0;

	if (nkids > 0 && (kids = calloc(nkids, sizeof(*kids))) == NULL)
		bench_die("tree: raw node", ENOMEM);
	for (i = 0; i < nkids; i++)
		kids[i] = raw_start(n->level + 1);
	bench_latch_arrive(&tree.ready);
	while (peer_raw.pop(n->queue) != PEER_STOP)
		;
	count_end(NULL);
	/* All stops first, then the joins, as libworker's end does. */
	for (i = 0; i < nkids; i++)
		raw_stop(kids[i]);
	for (i = 0; i < nkids; i++)
		raw_free(kids[i]);
	free(kids);
	return NULL;
}

static void *
build_raw(void)
{
	return raw_start(0);
}

static void
stop_raw(void *root)
{
	raw_stop(root);
	raw_free(root);
}

/* ---- main ----------------------------------------------------------- */

static unsigned long
tree_size(unsigned long fan)
{
	unsigned long n = 1, level = 1;
	int d;

	for (d = 0; d < DEPTH; d++)
		n += (level *= fan);
	return n;
}

/* A joined thread leaves the count a moment after its join returns. */
static int
threads_back_to(int before)
{
	struct timespec ms = { 0, 1000000 };
	int i;

	for (i = 0; i < 1000 && bench_nthreads() != before; i++)
		nanosleep(&ms, NULL);
	return bench_nthreads() == before;
}

static void
run(int round, int sys, double *m, void *ctx)
{
	unsigned long nodes = tree_size(tree.fan);
	int before = bench_nthreads();
	uint64_t t0, t1, t2;
	void *root;

	(void)round;
	(void)ctx;
	bench_latch_init(&tree.ready, (unsigned)nodes);
	atomic_store(&tree.ended, 0);
	tree.stop_order = sys == SYS_PARALLEL ? WORKER_STOP_PARALLEL :
	    WORKER_STOP_REVERSE;
	t0 = bench_now_ns();
	root = sys != SYS_RAW ? build_worker() : build_raw();
	if ((t1 = bench_latch_wait(&tree.ready)) == 0)
		bench_die("tree: build", ETIMEDOUT);
	t1 = bench_now_ns();
	if (sys != SYS_RAW)
		stop_worker(root);
	else
		stop_raw(root);
	t2 = bench_now_ns();
	if (atomic_load(&tree.ended) != nodes || !threads_back_to(before)) {
		fprintf(stderr, "tree: %s: %lu of %lu nodes stopped, %d "
		    "threads left of %d\n", systems[sys],
		    atomic_load(&tree.ended), nodes, bench_nthreads(), before);
		exit(EXIT_FAILURE);
	}
	bench_latch_destroy(&tree.ready);
	m[M_STOP] = (double)(t2 - t1) / BENCH_NS_PER_MS;
	m[M_BUILD] = (double)(t1 - t0) / BENCH_NS_PER_MS;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *what;
		const char *row;
		size_t stack;
	} configs[] = {
		{ "default stacks", "dflt", 0 },
		{ "64 KiB stacks", "64K", 64 * 1024 },
	};
	enum { NCONFIG = sizeof(configs) / sizeof(configs[0]) };
	unsigned long rounds = 5, nodes;
	struct bench_table t[NCONFIG];
	char title[NCONFIG][96], row[64];
	double stop;
	int c;

	tree.fan = 10;
	bench_options(argc, argv, "tree [-f FANOUT] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'f', &tree.fan, 30 },
	    { 'r', &rounds, 1000 } }, 2);
	nodes = tree_size(tree.fan);
	printf("tree: %lu workers (%lu x %lu x %lu under a root), %lu "
	    "rounds\nlibworker %s\n", nodes, tree.fan, tree.fan, tree.fan,
	    rounds, worker_version());
	for (c = 0; c < NCONFIG; c++) {
		tree.stack = configs[c].stack;
		snprintf(title[c], sizeof(title[c]), "tree, %lu workers, %s",
		    nodes, configs[c].what);
		if (bench_table_init(&t[c], title[c], systems, NSYS,
		    metrics, M_COUNT, (int)rounds) != 0)
			bench_die("tree", ENOMEM);
		bench_play(&t[c], run, NULL);
	}

	/* The targets: all at once under 50 ms (raw shows the floor),
	 * one at a time under 4 times that. */
	printf("\n");
	for (c = 0; c < NCONFIG; c++) {
		double par = bench_median_of(&t[c], SYS_PARALLEL, M_STOP);
		char pv[32];

		stop = bench_median_of(&t[c], SYS_WORKER, M_STOP);
		snprintf(row, sizeof(row), "tree stop %lu par, %s, ms",
		    nodes, configs[c].row);
		bench_target_peer(&t[c], row, bench_fmt(pv, sizeof(pv), par),
		    SYS_RAW, M_STOP, "< 50 ms", par < 50);
		snprintf(row, sizeof(row), "tree stop %lu rev/par, %s", nodes,
		    configs[c].row);
		bench_target_peer(&t[c], row, NULL, SYS_PARALLEL, M_STOP,
		    "< 4x", stop < 4 * par);
		bench_table_free(&t[c]);
	}
	return 0;
}
