/*
 * throughput.c - events per second from one producer to one consumer
 * (1->1), and from two producers to one consumer (2->1): libworker
 * against a raw mutex + condition variable queue, GLib's GAsyncQueue and
 * libuv (peers.h), and the floor of a queue between threads: spin, a
 * bounded lock-free ring of pointers (Vyukov's) on which both sides spin
 * instead of sleeping, with no names, no listeners, no payloads.
 *
 * Each producer worker fires its share of N events (default 5,000,000 in
 * all) at the consumer worker as fast as worker_fire() lets it, each with
 * a pointer payload that names the producer; the consumer's listener
 * checks the pointer and counts per producer.  The peers' producer
 * threads push the same pointers on the consumer thread's queue (raw,
 * GLib), or append them to its mailbox and call uv_async_send() (libuv,
 * whose async callback takes the whole list at once).  Nothing bounds the
 * queues, in any system: a producer that runs ahead makes the queue grow.
 *
 * Every thread is started and waits on a barrier first, so that thread
 * creation stays out of the time.  The time runs from the first producer
 * leaving the barrier until the consumer has counted the last event.  No
 * thread is pinned: the two CPUs are shared as the scheduler likes.
 *
 * Usage: throughput [-n N] [-r ROUNDS]
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "bench.h"
#include "peers.h"
#include "worker.h"

#define MAX_PRODUCERS 2

/* The systems of this program: the peers', and the floor. */
enum { SYS_SPIN = SYS_COUNT, NSYS };
static const char *const systems[NSYS] = {
	[SYS_WORKER] = "libworker",
	[SYS_RAW] = "raw",
	[SYS_GLIB] = "glib",
	[SYS_UV] = "libuv",
	[SYS_SPIN] = "spin",
};

struct spin_ring;

/*
 * Events per second, and the round trip of a cache line between the two
 * CPUs just before the run (bench_line_ns): a VM's two vCPUs sit on cores
 * near or far from each other as the host places them, and which it was
 * changes every queue's numbers, for a while, by up to five times.
 */
enum { MET_RATE, MET_LINE, NMET };
static const struct bench_metric metrics[NMET] = {
	{ "Mev/s", "million events/s", " %9.3f", BENCH_HIGHER },
	{ "  line ns", "line round trip between the CPUs before the run, ns",
	  " %9.0f", BENCH_NONE },
};

struct tp;

struct producer {
	struct tp *tp;
	int i;
	uint64_t start;		/* when it left the barrier */
	pthread_t thread;	/* peers */
	worker_t *worker;	/* libworker */
};

/* One run.  The consumer's fields are written by the consumer only. */
struct tp {
	unsigned long per;	/* events per producer */
	int nprod;
	pthread_barrier_t go;	/* producers, consumer and main */
	const char *name;	/* the system's, for the threads */
	int (*send)(struct tp *tp, void *data);
	struct producer prod[MAX_PRODUCERS];
	char payload[MAX_PRODUCERS];	/* producer i sends &payload[i] */
	worker_t *consumer;	/* libworker */
	const struct peer_queue *q;	/* raw, GLib */
	void *queue;
	struct uvbox box;	/* libuv */
	struct spin_ring *ring;	/* spin */
	/*
	 * What the consumer writes per event, on cache lines of its own: a
	 * producer that read a field next to them per event would pay a
	 * cache miss per event that no queue causes.
	 */
	_Alignas(128) unsigned long count[MAX_PRODUCERS];
	unsigned long total;
	uint64_t t1;		/* the last event counted */
	char pad[128 - 2 * sizeof(unsigned long) - sizeof(unsigned long) -
	    sizeof(uint64_t)];
};

static void
wait_go(struct tp *tp)
{
	int rc = pthread_barrier_wait(&tp->go);

	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
		bench_die("throughput: pthread_barrier_wait", rc);
}

/* The consumer counts data; returns 1 when it was the last event. */
static int
take(struct tp *tp, void *data)
{
	ptrdiff_t i = (char *)data - tp->payload;

	if (i < 0 || i >= tp->nprod)
		bench_die("throughput: consumer", EPROTO);
	tp->count[i]++;
	if (++tp->total < tp->per * (unsigned long)tp->nprod)
		return 0;
	tp->t1 = bench_now_ns();
	return 1;
}

/*
 * A producer: a worker's task for libworker, a thread's start routine for
 * the peers, the same code.  tp->send is the only difference, and its
 * indirect call costs every system the same.
 */
static void *
producer(void *arg)
{
	struct producer *p = arg;
	struct tp *tp = p->tp;
	void *data = &tp->payload[p->i];
	unsigned long i;
	int rc;

	bench_name(tp->name);
	wait_go(tp);
	p->start = bench_now_ns();
	for (i = 0; i < tp->per; i++)
		if ((rc = tp->send(tp, data)) != 0)
			bench_die("throughput: send", rc);
	return NULL;
}

/* Starts the peers' consumer and producers, lets them go, joins them. */
static void
run_threads(struct tp *tp, void *(*consumer)(void *))
{
	pthread_t c = bench_thread(consumer, tp);
	int i;

	for (i = 0; i < tp->nprod; i++)
		tp->prod[i].thread = bench_thread(producer, &tp->prod[i]);
	wait_go(tp);
	for (i = 0; i < tp->nprod; i++)
		bench_join(tp->prod[i].thread);
	bench_join(c);
}

/* ---- libworker ------------------------------------------------------ */

static int
send_worker(struct tp *tp, void *data)
{
	return worker_fire(tp->consumer, "item", data);
}

static int
on_item(const worker_event_t *ev, void *ctx)
{
	(void)take(ctx, ev->data);
	return 0;
}

static int
all_taken(const worker_event_t *ev, void *ctx)
{
	struct tp *tp = ctx;

	(void)ev;
	return tp->total == tp->per * (unsigned long)tp->nprod;
}

static void *
worker_consumer(void *arg)
{
	struct tp *tp = arg;
	int rc;

	bench_name(tp->name);
	wait_go(tp);
	/* No time limit, as the peers' pops have none. */
	if ((rc = worker_wait_until(all_taken, tp, -1, NULL)) != 0)
		bench_die("throughput: worker_wait_until", rc);
	return NULL;
}

static void
join_worker(worker_t *w)
{
	int rc;

	if ((rc = worker_join(w)) != 0 || (rc = worker_result(w, NULL)) != 0)
		bench_die("throughput: worker", rc);
	worker_unref(w);
}

static void
run_worker(struct tp *tp)
{
	int i, rc;

	tp->send = send_worker;
	if ((tp->consumer = worker_new(worker_consumer, tp, NULL)) == NULL)
		bench_die("throughput: worker_new", errno);
	if ((rc = worker_listen(tp->consumer, "item", on_item, tp,
	    NULL)) != 0 || (rc = worker_start(tp->consumer)) != 0)
		bench_die("throughput: worker_start", rc);
	for (i = 0; i < tp->nprod; i++)
		if ((tp->prod[i].worker = worker_create(producer,
		    &tp->prod[i], NULL)) == NULL)
			bench_die("throughput: worker_create", errno);
	wait_go(tp);
	for (i = 0; i < tp->nprod; i++)
		join_worker(tp->prod[i].worker);
	join_worker(tp->consumer);
}

/* ---- raw and GLib --------------------------------------------------- */

static int
send_queue(struct tp *tp, void *data)
{
	return tp->q->push(tp->queue, data);
}

static void *
queue_consumer(void *arg)
{
	struct tp *tp = arg;

	bench_name(tp->name);
	wait_go(tp);
	while (!take(tp, tp->q->pop(tp->queue)))
		;
	return NULL;
}

static void
run_queue(struct tp *tp, const struct peer_queue *q)
{
	tp->send = send_queue;
	tp->q = q;
	if ((tp->queue = q->create()) == NULL)
		bench_die("throughput: queue", ENOMEM);
	run_threads(tp, queue_consumer);
	q->destroy(tp->queue);
}

/* ---- libuv ---------------------------------------------------------- */

static int
send_uv(struct tp *tp, void *data)
{
	return uvbox_send(&tp->box, data);
}

static void
uv_at_consumer(struct uvbox *box, void *data)
{
	if (take(box->ctx, data))
		uvbox_close(box);
}

static void *
uv_consumer(void *arg)
{
	struct tp *tp = arg;

	bench_name(tp->name);
	wait_go(tp);
	uvbox_run(&tp->box);
	return NULL;
}

static void
run_uv(struct tp *tp)
{
	int rc;

	tp->send = send_uv;
	if ((rc = uvbox_init(&tp->box, uv_at_consumer, tp)) != 0)
		bench_die("throughput: uvbox_init", rc);
	run_threads(tp, uv_consumer);
	if ((rc = uvbox_destroy(&tp->box)) != 0)
		bench_die("throughput: uvbox_destroy", rc);
}

/* ---- spin ----------------------------------------------------------- */

/*
 * The floor: a single-producer ring per producer, whose consumer polls
 * them in turn (events of different producers need no order here).  Each
 * side keeps a copy of the other's index and reads the real one only
 * when its copy says the ring is full or empty, so an index's cache line
 * crosses between CPUs once per run of events, not once per event, and
 * neither side ever sleeps.
 */
#define SPIN_SLOTS 4096		/* a power of two */

struct spin_ring {
	_Alignas(64) atomic_ulong tail;	/* the producer writes */
	unsigned long head_seen;	/* the producer's copy of head */
	_Alignas(64) atomic_ulong head;	/* the consumer writes */
	unsigned long tail_seen;	/* the consumer's copy of tail */
	_Alignas(64) void *slots[SPIN_SLOTS];
};

/* A spin that gives the CPU away now and then: with three threads on two
 * CPUs, the one spun on may be waiting for this one's. */
static void
spin_pause(unsigned *tries)
{
	if (++*tries % 1024 == 0)
		sched_yield();
	else
		__builtin_ia32_pause();
}

/* The calling producer's ring; each run has threads of its own. */
static __thread struct spin_ring *my_ring;

static int
send_spin(struct tp *tp, void *data)
{
	struct spin_ring *r = my_ring;
	unsigned long tail;
	unsigned tries = 0;

	if (r == NULL) {
		r = &tp->ring[0];
		for (int i = 0; i < tp->nprod; i++)
			if (pthread_equal(tp->prod[i].thread, pthread_self()))
				r = &tp->ring[i];
		my_ring = r;
	}
	tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	while (tail - r->head_seen >= SPIN_SLOTS) {
		r->head_seen = atomic_load_explicit(&r->head,
		    memory_order_acquire);
		if (tail - r->head_seen >= SPIN_SLOTS)
			spin_pause(&tries);
	}
	r->slots[tail % SPIN_SLOTS] = data;
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	return 0;
}

static void *
spin_consumer(void *arg)
{
	struct tp *tp = arg;
	unsigned tries = 0;
	int i = 0;

	bench_name(tp->name);
	wait_go(tp);
	for (;;) {
		struct spin_ring *r = &tp->ring[i];
		unsigned long head = atomic_load_explicit(&r->head,
		    memory_order_relaxed);

		if (head == r->tail_seen) {
			r->tail_seen = atomic_load_explicit(&r->tail,
			    memory_order_acquire);
			if (head == r->tail_seen) {
				i = (i + 1) % tp->nprod;
				spin_pause(&tries);
				continue;
			}
		}
		if (take(tp, r->slots[head % SPIN_SLOTS]))
			return NULL;
		atomic_store_explicit(&r->head, head + 1,
		    memory_order_release);
	}
}

static void
run_spin(struct tp *tp)
{
	size_t size = (size_t)tp->nprod * sizeof(*tp->ring);

	tp->send = send_spin;
	tp->ring = aligned_alloc(_Alignof(struct spin_ring), size);
	if (tp->ring == NULL)
		bench_die("throughput: spin", ENOMEM);
	memset(tp->ring, 0, size);
	run_threads(tp, spin_consumer);
	free(tp->ring);
}

/* ---- main ----------------------------------------------------------- */

struct config {
	unsigned long n;
	int nprod;
};

/* One run of system sys: millions of events per second. */
static void
run(int round, int sys, double *m, void *ctx)
{
	const struct config *cf = ctx;
	struct tp *tp = aligned_alloc(_Alignof(struct tp), sizeof(*tp));
	uint64_t t0;
	int i;

	(void)round;
	if (tp == NULL)
		bench_die("throughput", ENOMEM);
	m[MET_LINE] = bench_line_ns();
	memset(tp, 0, sizeof(*tp));
	tp->per = cf->n / (unsigned long)cf->nprod;
	tp->nprod = cf->nprod;
	tp->name = systems[sys];
	pthread_barrier_init(&tp->go, NULL, (unsigned)cf->nprod + 2);
	for (i = 0; i < cf->nprod; i++) {
		tp->prod[i].tp = tp;
		tp->prod[i].i = i;
	}
	switch (sys) {
	case SYS_WORKER:
		run_worker(tp);
		break;
	case SYS_RAW:
		run_queue(tp, &peer_raw);
		break;
	case SYS_GLIB:
		run_queue(tp, &peer_glib);
		break;
	case SYS_UV:
		run_uv(tp);
		break;
	default:
		run_spin(tp);
		break;
	}
	t0 = tp->prod[0].start;
	for (i = 0; i < cf->nprod; i++) {
		if (tp->count[i] != tp->per) {
			fprintf(stderr, "throughput: %s: %lu of %lu events "
			    "from producer %d\n", systems[sys],
			    tp->count[i], tp->per, i);
			exit(EXIT_FAILURE);
		}
		if (tp->prod[i].start < t0)
			t0 = tp->prod[i].start;
	}
	m[MET_RATE] = (double)tp->total / ((double)(tp->t1 - t0) /
	    BENCH_NS_PER_S) / 1e6;
	pthread_barrier_destroy(&tp->go);
	free(tp);
}

/*
 * An info row: the line round trips seen before the runs (fastest and
 * slowest), and the share of libworker's runs that had one over twice
 * the fastest - runs on distant cores.
 */
static void
line_row(struct bench_table *t, int nprod)
{
	double lo = INFINITY, hi = 0;
	char row[64], lw[32], far[32];
	int r, s, slow = 0;

	for (r = 0; r < t->rounds; r++)
		for (s = 0; s < t->nsys; s++) {
			double v = bench_run(t, r, s)[MET_LINE];

			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
	if (hi == 0)
		return;
	for (r = 0; r < t->rounds; r++)
		if (bench_run(t, r, SYS_WORKER)[MET_LINE] > 2 * lo)
			slow++;
	snprintf(row, sizeof(row), "throughput %d->1, line ns", nprod);
	snprintf(lw, sizeof(lw), "%.0f-%.0f", lo, hi);
	snprintf(far, sizeof(far), "far in %d/%d", slow, t->rounds);
	bench_target_row(row, lw, far, (double)slow / t->rounds, "info", 1);
}

int
main(int argc, char **argv)
{
	static const int peers[] = { SYS_GLIB, SYS_UV };
	unsigned long n = 5000000, rounds = 5;
	struct bench_table t[MAX_PRODUCERS];
	struct config cf;
	char title[MAX_PRODUCERS][96], row[64];
	int p;

	bench_options(argc, argv, "throughput [-n N] [-r ROUNDS]",
	    (const struct bench_opt[]){ { 'n', &n, 1000000000 },
	    { 'r', &rounds, 1000 } }, 2);
	printf("throughput: %lu events per run, %lu rounds\nlibworker %s, "
	    "GLib %u.%u.%u, libuv %s\n", n, rounds, worker_version(),
	    glib_major_version, glib_minor_version, glib_micro_version,
	    uv_version_string());
	for (p = 0; p < MAX_PRODUCERS; p++) {
		cf.nprod = p + 1;
		cf.n = n / (unsigned long)cf.nprod * (unsigned long)cf.nprod;
		snprintf(title[p], sizeof(title[p]), "throughput %d->1, %lu "
		    "events", cf.nprod, cf.n);
		if (bench_table_init(&t[p], title[p], systems, NSYS,
		    metrics, NMET, (int)rounds) != 0)
			bench_die("throughput", ENOMEM);
		bench_play(&t[p], run, &cf);
	}
	printf("\n");
	for (p = 0; p < MAX_PRODUCERS; p++) {
		/* 2.5 times the better of GLib and libuv, and never below
		 * 1.5 times it in any round; how far from the floor is told. */
		snprintf(row, sizeof(row), "throughput %d->1, Mev/s", p + 1);
		bench_target_ratio_worst(&t[p], row, MET_RATE, peers, 2, 2.5,
		    1.5);
		snprintf(row, sizeof(row), "throughput %d->1 vs spin", p + 1);
		bench_target_peer(&t[p], row, NULL, SYS_SPIN, MET_RATE, "info",
		    1);
		line_row(&t[p], p + 1);
		bench_table_free(&t[p]);
	}
	return 0;
}
