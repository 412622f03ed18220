/*
 * test_queue.c - the two ways into a worker's queue (lib/ring.c,
 * lib/queue.c) and the references events hold on their senders
 * (lib/pool.c).
 *
 * A worker that has received RING_AFTER (32) events through the locked
 * queue gets a lock-free ring; names longer than 24 bytes, watched
 * workers and a ring that stays full take the locked queue, and a bit in
 * the ring's tail keeps the two in one order.  None of that shows through
 * the API, so the tests arrange for each path and check what must hold
 * whichever path an event took: each sender's events arrive once, in the
 * order fired, under their own names; nothing is lost when a worker ends
 * mid-stream; a sleeping owner is woken; a sender lives exactly as long
 * as its events.
 *
 * Events carry their sequence number in data (see SEQ), so a lost,
 * duplicated or reordered event shows as a gap in the sequence.  Only the
 * consumer's listener touches its records, and the test reads them after
 * the consumer has been joined.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test.h"

#define N_ORDER		20000	/* events per producer, order_across_paths */
#define N_OVERFLOW	10000	/* events fired at a blocked consumer */
#define N_SENDER	1000	/* events of a sender that is freed */
#define N_PINGS		2000	/* round trips of the ping-pong */
#define N_TICKS		4000	/* events at a consumer with timeouts */
#define WARM_UP		64	/* locked events; RING_AFTER is 32 */
#define MILESTONE	2000	/* events that show a stream goes on */
#define WINDOW		128	/* events a paced producer may be ahead */
#define IDLE_EVERY	256	/* events between its pauses */
#define FLOOD_ROUNDS	8
#define FLOOD_STOP	3000	/* events handled before the stop */
#define DAWDLE		100e-6	/* seconds: longer than a worker's spin */
#define N_BURST		3000	/* events per burst, ring_grows_in_bursts */
#define BURSTS		6	/* each one may double the ring */
#define SLOW		1e-6	/* seconds the slow sink spends per event */
#define TICK_TIMEOUT	0.001	/* seconds: the timed sleeper's waits */

/*
 * Names of both ways: up to 24 bytes a ring slot holds the name, from 25
 * on the event takes the locked queue.  The two middle ones sit on the
 * boundary.  All are lower case, so none is taken for a built-in event.
 */
#define NAME_1	"s"
#define NAME_24	"ring-name-of-24-bytes-ok"
#define NAME_25	"lock-name-of-25-bytes-now"
#define NAME_40	"lock-name-of-40-bytes-for-the-locked-way"

_Static_assert(sizeof(NAME_24) - 1 == 24, "NAME_24 is 24 bytes");
_Static_assert(sizeof(NAME_25) - 1 == 25, "NAME_25 is 25 bytes");
_Static_assert(sizeof(NAME_40) - 1 == 40, "NAME_40 is 40 bytes");

enum { KIND_SHORT, KIND_24, KIND_25, KIND_40, NAME_KINDS };

static const char *const stream_names[NAME_KINDS] = {
	NAME_1, NAME_24, NAME_25, NAME_40,
};

#define MAX_PRODUCERS 2

/* data = seq << 3 | producer << 2 | kind of name */
#define SEQ(seq, id, kind) \
	((void *)(((uintptr_t)(seq) << 3) | ((uintptr_t)(id) << 2) | \
	    (uintptr_t)(kind)))

static uint32_t
lcg(uint32_t *x)
{
	*x = *x * 1664525u + 1013904223u;
	return *x >> 8;
}

/*
 * The kind of name of the next event of a mixed stream: runs of the ring's
 * names and of the locked queue's, of irregular length (16 on average),
 * so that the ring is locked and reopened again and again mid-stream.
 */
static unsigned
next_kind(uint32_t *x, int *locked)
{
	uint32_t r = lcg(x);

	if (r % 16 == 0)
		*locked = !*locked;
	return (*locked ? KIND_25 : KIND_SHORT) + ((r >> 4) & 1);
}

/* Busy, not asleep: a thread that sleeps would count as a context
 * switch of its own, and the sleep test counts them. */
static void
dawdle(double seconds)
{
	double end = now() + seconds;

	while (now() < end)
		;
}

/* Voluntary context switches of the calling thread so far. */
static long
sleeps_so_far(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return -1;
	return ru.ru_nvcsw;
}

static worker_t *
start_task(const char *name, worker_fn fn, void *arg)
{
	worker_attr_t attr = { .name = name };
	worker_t *w = worker_create(fn, arg, &attr);

	ck_assert_msg(w != NULL, "worker_create(%s): %s", name,
	    strerror(errno));
	return w;
}

/*
 * Gives w its ring: RING_AFTER locked events create it, and once the
 * fence has been handled the owner has taken the locked queue and opened
 * the ring, since nobody else fires meanwhile.
 */
static void
warm_up(worker_t *w, sem_t *fence_sem)
{
	for (int i = 0; i < WARM_UP; i++)
		CHECK_OK(worker_fire(w, "warm", NULL));
	fence(w, fence_sem);
}

/* ---- The consumer ---------------------------------------------------- */

struct sink {
	/* Set before the first event. */
	long total;			/* posts done when handled reaches it */
	int gate;			/* the first event waits for go */
	double slow;			/* seconds spent on each event */
	worker_t *source;		/* if set, every event's sender */
	char source_name[32];
	/* The listener's, read after the consumer's join. */
	long next[MAX_PRODUCERS];	/* the sequence number due */
	long disorder;			/* events out of their order */
	long bad_id, bad_seq, bad_want;	/* the first of them */
	long misnamed;			/* under another name than fired */
	long bad_source;		/* another sender, or a dead one */
	int gated;
	int gate_rc;
	/* Shared with the test. */
	atomic_long handled;
	atomic_long target;		/* posts reached when handled gets
					 * there; 0: none */
	sem_t done, reached, blocked, go;
	sem_t fence;			/* gated_sink_start()'s warm-up */
};

static void
sink_init(struct sink *k, long total)
{
	memset(k, 0, sizeof(*k));
	k->total = total;
	k->bad_id = -1;
	ck_assert_int_eq(sem_init(&k->done, 0, 0), 0);
	ck_assert_int_eq(sem_init(&k->reached, 0, 0), 0);
	ck_assert_int_eq(sem_init(&k->blocked, 0, 0), 0);
	ck_assert_int_eq(sem_init(&k->go, 0, 0), 0);
	ck_assert_int_eq(sem_init(&k->fence, 0, 0), 0);
}

static void
sink_destroy(struct sink *k)
{
	sem_destroy(&k->done);
	sem_destroy(&k->reached);
	sem_destroy(&k->blocked);
	sem_destroy(&k->go);
	sem_destroy(&k->fence);
}

static int
on_sink(const worker_event_t *ev, void *ctx)
{
	struct sink *k = ctx;
	uintptr_t v = (uintptr_t)ev->data;
	unsigned kind = v & 3, id = (v >> 2) & 1;
	long seq = (long)(v >> 3), n, t;

	if (k->gate && !k->gated) {
		/* Holds the consumer so that what comes next piles up. */
		k->gated = 1;
		sem_post(&k->blocked);
		k->gate_rc = sem_wait_bounded(&k->go);
	}
	if (k->slow > 0)
		dawdle(k->slow);
	if (seq != k->next[id] && k->disorder++ == 0) {
		k->bad_id = id;
		k->bad_seq = seq;
		k->bad_want = k->next[id];
	}
	k->next[id] = seq + 1;
	if (strcmp(ev->name, stream_names[kind]) != 0)
		k->misnamed++;
	/* The sender must still be alive: its name is read, not only its
	 * address compared, so that a freed one shows under the
	 * sanitizers and valgrind. */
	if (k->source != NULL && (ev->source != k->source ||
	    strcmp(worker_name(ev->source), k->source_name) != 0))
		k->bad_source++;
	n = atomic_fetch_add(&k->handled, 1) + 1;
	t = atomic_load(&k->target);
	if (t != 0 && n >= t && atomic_compare_exchange_strong(&k->target,
	    &t, 0))
		sem_post(&k->reached);
	if (n == k->total)
		sem_post(&k->done);
	return 0;
}

/* A started consumer that listens to every stream name, and to FENCE
 * if fence_sem is given. */
static worker_t *
sink_new(struct sink *k, sem_t *fence_sem)
{
	worker_t *w = idle_new("sink", NULL, fence_sem);

	for (int i = 0; i < NAME_KINDS; i++)
		CHECK_OK(worker_listen(w, stream_names[i], on_sink, k, NULL));
	CHECK_OK(worker_start(w));
	return w;
}

/* Waits until the consumer has handled `more` events beyond now. */
static void
sink_advance(struct sink *k, long more, const char *what)
{
	atomic_store(&k->target, atomic_load(&k->handled) + more);
	sem_wait_ok(&k->reached, what);
}

/* After the consumer's join: producer i's sequence arrived whole, in
 * order, want[i] events long. */
static void
sink_expect(const struct sink *k, const long *want, int producers)
{
	long sum = 0;

	ck_assert_msg(k->gate_rc == 0, "the gated listener was never let go");
	ck_assert_msg(k->disorder == 0, "%ld events out of order; the first: "
	    "producer %ld's %ld where %ld was due", k->disorder, k->bad_id,
	    k->bad_seq, k->bad_want);
	ck_assert_msg(k->misnamed == 0, "%ld events under another name than "
	    "they were fired with", k->misnamed);
	ck_assert_msg(k->bad_source == 0, "%ld events named another source "
	    "than %s", k->bad_source, k->source_name);
	for (int i = 0; i < producers; i++) {
		ck_assert_msg(k->next[i] == want[i], "producer %d: %ld events "
		    "arrived in order, want %ld", i, k->next[i], want[i]);
		sum += want[i];
	}
	CHECK_ATOMIC(&k->handled, sum);
}

/*
 * A consumer of total events from one producer whose first event holds it
 * until go is posted, with its ring already in use (warmed up), so that
 * what the test fires next piles up in the ring and then the locked queue.
 */
static worker_t *
gated_sink_start(struct sink *k, long total)
{
	worker_t *c;

	sink_init(k, total);
	k->gate = 1;
	c = sink_new(k, &k->fence);
	warm_up(c, &k->fence);
	return c;
}

/* Lets the gated consumer go, waits for all its events, stops it and
 * checks the one producer's sequence arrived whole and in order. */
static void
gated_sink_finish(worker_t *c, struct sink *k)
{
	const long want[1] = { k->total };

	sem_post(&k->go);
	sem_wait_ok(&k->done, "every event");
	/* The join pays the consumer's debts to the sender. */
	stop_join_unref(c);
	sink_expect(k, want, 1);
	sink_destroy(k);
}

/* ---- Producers ------------------------------------------------------- */

struct stream {
	worker_t *target;
	unsigned id;		/* which sequence of the sink */
	int mixed;		/* names of both ways, else NAME_1 only */
	uint32_t seed;
	long errors;		/* fires that did not return 0 */
	int first_err;
};

static void
stream_fire(struct stream *s, long seq, unsigned kind)
{
	int rc = worker_fire(s->target, stream_names[kind],
	    SEQ(seq, s->id, kind));

	if (rc != 0 && s->errors++ == 0)
		s->first_err = rc;
}

/* Fires count events of the stream s, numbered from `from` on. */
static void
stream_run(struct stream *s, long from, long count)
{
	uint32_t x = s->seed;
	int locked = 0;

	for (long seq = from; seq < from + count; seq++)
		stream_fire(s, seq, s->mixed ? next_kind(&x, &locked) :
		    KIND_SHORT);
	s->seed = x;
}

static void
stream_expect(const struct stream *s, const char *who)
{
	ck_assert_msg(s->errors == 0, "%s: %ld fires failed, the first with "
	    "%d (%s)", who, s->errors, s->first_err, strerror(s->first_err));
}

/* A producer worker's task. */
struct producer {
	struct stream s;
	long count;			/* events; -1: until *stop */
	pthread_barrier_t *start;	/* if set, waited on first */
	atomic_bool *stop;
	atomic_long *handled;		/* with count -1: pace by it */
	long fired;			/* the task's, read after its join */
};

static void *
produce(void *arg)
{
	struct producer *p = arg;
	long seq;

	if (p->start != NULL)
		pthread_barrier_wait(p->start);
	if (p->count >= 0) {
		stream_run(&p->s, 0, p->count);
		p->fired = p->count;
		return NULL;
	}
	/* A stream without end, at most WINDOW events ahead of the
	 * consumer, so that it lasts as long as the test needs it without
	 * piling up memory.  WINDOW is less than the ring's 256 slots: a
	 * full ring would send the producer to the locked queue, whose wake
	 * would rescue an owner that the ring failed to wake. */
	for (seq = 0; !atomic_load(p->stop); seq++) {
		long ahead = seq % IDLE_EVERY == IDLE_EVERY - 1 ? 0 : WINDOW;

		/* Now and then the consumer catches up and then has nothing
		 * for longer than its spin, so that it goes to sleep (on a
		 * ring slot, or in ppoll() while it watches) and the next
		 * event has to wake it. */
		while (seq - atomic_load(p->handled) > ahead &&
		    !atomic_load(p->stop))
			sched_yield();
		if (ahead == 0)
			dawdle(DAWDLE);
		stream_fire(&p->s, seq, KIND_SHORT);
	}
	p->fired = seq;
	return NULL;
}

/* ---- Order ----------------------------------------------------------- */

/*
 * `producers` workers each fire N_ORDER events, switching irregularly
 * between the ring's names and the locked queue's: each sequence must
 * arrive in the order fired, every event once, whichever way it took.
 */
static void
run_order(int producers)
{
	struct producer p[MAX_PRODUCERS];
	worker_t *pw[MAX_PRODUCERS];
	long want[MAX_PRODUCERS];
	pthread_barrier_t start;
	struct sink k;
	worker_t *c;

	sink_init(&k, (long)producers * N_ORDER);
	ck_assert_int_eq(pthread_barrier_init(&start, NULL,
	    (unsigned)producers), 0);
	c = sink_new(&k, NULL);
	for (int i = 0; i < producers; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].s.target = c;
		p[i].s.id = (unsigned)i;
		p[i].s.mixed = 1;
		p[i].s.seed = 12345u + 777u * (uint32_t)i;
		p[i].count = N_ORDER;
		p[i].start = &start;
		want[i] = N_ORDER;
		pw[i] = start_task("producer", produce, &p[i]);
	}
	sem_wait_ok(&k.done, "every event");
	for (int i = 0; i < producers; i++)
		CHECK_OK(worker_join(pw[i]));
	stop_join_unref(c);

	for (int i = 0; i < producers; i++) {
		stream_expect(&p[i].s, "producer");
		worker_unref(pw[i]);
	}
	sink_expect(&k, want, producers);
	pthread_barrier_destroy(&start);
	sink_destroy(&k);
}

START_TEST(order_across_paths)
{
	run_order(1);
}
END_TEST

/* Two senders: only each one's own order is promised. */
START_TEST(order_across_paths_two_producers)
{
	run_order(2);
}
END_TEST

/* ---- A full ring ----------------------------------------------------- */

/* A plain thread that fires N_OVERFLOW events, the first one alone. */
struct feeder {
	struct stream s;
	struct sink *k;
	int blocked_rc;
};

static void *
feed(void *arg)
{
	struct feeder *f = arg;

	stream_run(&f->s, 0, 1);
	/* The consumer sits in its listener from now on, so the rest fill
	 * the ring and then go to the locked queue. */
	f->blocked_rc = sem_wait_bounded(&f->k->blocked);
	stream_run(&f->s, 1, N_OVERFLOW - 1);
	return NULL;
}

/*
 * The consumer's listener holds on to the first event while a thread
 * fires N_OVERFLOW more: the ring's 256 slots fill, and the producer must
 * turn to the locked queue rather than fail or wait.  Let go, the consumer
 * gets the ring's events before the locked queue's, all in order.
 */
START_TEST(ring_overflow_keeps_order)
{
	struct feeder f;
	struct sink k;
	pthread_t th;
	worker_t *c = gated_sink_start(&k, N_OVERFLOW);

	memset(&f, 0, sizeof(f));
	f.s.target = c;
	f.k = &k;
	ck_assert_int_eq(pthread_create(&th, NULL, feed, &f), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(f.blocked_rc == 0, "the consumer never took the "
	    "first event");
	/* Every fire returned 0 although nothing was taken meanwhile. */
	stream_expect(&f.s, "the feeding thread");
	gated_sink_finish(c, &k);
}
END_TEST

/* ---- A ring that grows ----------------------------------------------- */

/* A producer of bursts: each waits until the sink has handled every
 * event before it, so that the sink runs out of events, and looks at
 * its ring again, between two bursts. */
struct burster {
	struct stream s;
	struct sink *k;
	int producers;
	pthread_barrier_t *start;
};

static void *
burst_task(void *arg)
{
	struct burster *b = arg;
	double limit = now() + wait_limit();

	pthread_barrier_wait(b->start);
	for (int i = 0; i < BURSTS; i++) {
		stream_run(&b->s, (long)i * N_BURST, N_BURST);
		/* The other producer's burst too. */
		while (atomic_load(&b->k->handled) <
		    (long)(i + 1) * N_BURST * b->producers && now() < limit)
			sched_yield();
		pthread_barrier_wait(b->start);
	}
	return NULL;
}

/*
 * Producers that outrun a slow sink wait for room in its ring, and the
 * ring grows (ring.c) each time the sink runs out of events: every
 * sequence still arrives whole and in order, across the swaps of ring,
 * the locked queue's names mixed in.
 */
static void
run_bursts(int producers)
{
	struct burster b[MAX_PRODUCERS];
	worker_t *pw[MAX_PRODUCERS];
	long want[MAX_PRODUCERS];
	pthread_barrier_t start;
	struct sink k;
	worker_t *c;

	sink_init(&k, (long)producers * BURSTS * N_BURST);
	k.slow = SLOW;
	ck_assert_int_eq(pthread_barrier_init(&start, NULL,
	    (unsigned)producers), 0);
	c = sink_new(&k, &k.fence);
	warm_up(c, &k.fence);
	for (int i = 0; i < producers; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].s.target = c;
		b[i].s.id = (unsigned)i;
		b[i].s.mixed = i == 1;
		b[i].s.seed = 4242u + (uint32_t)i;
		b[i].k = &k;
		b[i].producers = producers;
		b[i].start = &start;
		want[i] = BURSTS * N_BURST;
		pw[i] = start_task("burster", burst_task, &b[i]);
	}
	sem_wait_ok(&k.done, "every event");
	for (int i = 0; i < producers; i++)
		CHECK_OK(worker_join(pw[i]));
	stop_join_unref(c);
	for (int i = 0; i < producers; i++) {
		stream_expect(&b[i].s, "burster");
		worker_unref(pw[i]);
	}
	sink_expect(&k, want, producers);
	pthread_barrier_destroy(&start);
	sink_destroy(&k);
}

START_TEST(ring_grows_in_bursts)
{
	run_bursts(1);
}
END_TEST

START_TEST(ring_grows_two_producers)
{
	run_bursts(2);
}
END_TEST

/* ---- A watch added mid-stream ---------------------------------------- */

struct watch_probe {
	atomic_int calls;
	sem_t called;
};

static void
on_readable(int fd, unsigned revents, void *ctx)
{
	struct watch_probe *wp = ctx;
	char c;

	(void)revents;
	/* Read, so that the level-triggered poll does not call again. */
	if (read(fd, &c, 1) != 1)
		c = 0;
	atomic_fetch_add(&wp->calls, 1);
	sem_post(&wp->called);
}

/*
 * A watch sends every producer to the locked queue (the owner sleeps in
 * ppoll(), not on a ring slot), and the unwatch lets them back into the
 * ring: the stream must go on through both changes, in order, and the
 * watch must call back while the stream runs, and never after the
 * unwatch.
 */
START_TEST(watch_added_mid_stream)
{
	struct watch_probe wp;
	struct producer p;
	atomic_bool stop = false;
	struct sink k;
	worker_t *c, *pw;
	uint64_t id = 0;
	long want[1];
	char byte;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	atomic_init(&wp.calls, 0);
	ck_assert_int_eq(sem_init(&wp.called, 0, 0), 0);
	sink_init(&k, -1);
	c = sink_new(&k, NULL);
	memset(&p, 0, sizeof(p));
	p.s.target = c;
	p.count = -1;
	p.stop = &stop;
	p.handled = &k.handled;
	pw = start_task("producer", produce, &p);

	/* Far past RING_AFTER: the stream goes through the ring now. */
	sink_advance(&k, MILESTONE, "the stream");
	CHECK_OK(worker_watch(c, fds[0], WORKER_READABLE, on_readable, &wp,
	    &id));
	ck_assert_int_eq(write(fds[1], "w", 1), 1);
	sem_wait_ok(&wp.called, "the watch callback");
	sink_advance(&k, MILESTONE, "the stream while watched");

	CHECK_OK(worker_unwatch(c, id));
	/* Must stay unread: the watch is gone. */
	ck_assert_int_eq(write(fds[1], "u", 1), 1);
	sink_advance(&k, MILESTONE, "the stream after the unwatch");

	atomic_store(&stop, true);
	CHECK_OK(worker_join(pw));
	stop_join_unref(c);
	stream_expect(&p.s, "producer");
	want[0] = p.fired;
	sink_expect(&k, want, 1);
	CHECK_ATOMIC(&wp.calls, 1);
	ck_assert_msg(read(fds[0], &byte, 1) == 1 && byte == 'u',
	    "the byte written after the unwatch was read");

	worker_unref(pw);
	sink_destroy(&k);
	sem_destroy(&wp.called);
	ck_assert_int_eq(close(fds[0]), 0);
	ck_assert_int_eq(close(fds[1]), 0);
}
END_TEST

/* ---- Stopping a worker mid-stream ------------------------------------ */

/* A producer worker that fires at target until it is refused. */
struct flood {
	worker_t *target;
	atomic_int *frees;
	int mixed;		/* names of both ways, else NAME_1 only */
	uint32_t seed;
	/* The task's, read after its join. */
	long ok, refused, other;
	int other_rc;
};

static void *
flood_task(void *arg)
{
	struct flood *f = arg;
	uint32_t x = f->seed;
	int locked = 0, rc;

	for (;;) {
		/* The library owns the data from here: count_cb counts each
		 * time it gives it back, on whatever path. */
		rc = worker_fire_ex(f->target, stream_names[f->mixed ?
		    next_kind(&x, &locked) : KIND_SHORT], f->frees, count_cb,
		    0);
		if (rc == 0) {
			f->ok++;
		} else if (rc == ESRCH) {
			f->refused++;
			break;
		} else {
			f->other++;
			f->other_rc = rc;
			break;
		}
	}
	/* The EVENT_REJECT the refusal queued here is handed to the
	 * listeners (none) in the end sequence, which frees its data. */
	return NULL;
}

struct flood_sink {
	atomic_long handled;
	sem_t reached;
};

static int
on_flood(const worker_event_t *ev, void *ctx)
{
	struct flood_sink *k = ctx;

	(void)ev;
	if (atomic_fetch_add(&k->handled, 1) + 1 == FLOOD_STOP)
		sem_post(&k->reached);
	return 0;
}

/*
 * Two producers flood a consumer that is stopped mid-stream.  Whatever a
 * fire answered 0 for must reach the consumer's (permanent) listeners,
 * in its loop or in its end sequence, wherever it was when the ring was
 * locked for good; whatever was refused gets ESRCH; and every payload is
 * freed exactly once on both paths.  Rounds alternate between names of
 * the ring only, where the stop mostly finds the ring open and in use,
 * and names of both ways, where it mostly finds events behind the bit.
 */
START_TEST(stop_during_stream_loses_nothing)
{
	for (int round = 0; round < FLOOD_ROUNDS; round++) {
		struct flood f[2];
		struct flood_sink k;
		atomic_int frees;
		worker_t *c, *pw[2];
		long ok = 0, refused = 0;

		atomic_init(&frees, 0);
		atomic_init(&k.handled, 0);
		ck_assert_int_eq(sem_init(&k.reached, 0, 0), 0);
		c = idle_new("sink", NULL, NULL);
		for (int i = 0; i < NAME_KINDS; i++)
			CHECK_OK(worker_listen(c, stream_names[i], on_flood,
			    &k, NULL));
		CHECK_OK(worker_start(c));
		for (int i = 0; i < 2; i++) {
			memset(&f[i], 0, sizeof(f[i]));
			f[i].target = c;
			f[i].frees = &frees;
			f[i].mixed = round % 2;
			f[i].seed = 99u * (uint32_t)(round * 2 + i + 1);
			pw[i] = start_task("flood", flood_task, &f[i]);
		}

		sem_wait_ok(&k.reached, "the first events");
		CHECK_OK(worker_stop(c));
		CHECK_OK(worker_join(c));
		for (int i = 0; i < 2; i++)
			CHECK_OK(worker_join(pw[i]));

		for (int i = 0; i < 2; i++) {
			ck_assert_msg(f[i].other == 0, "round %d: a fire "
			    "gave %d (%s)", round, f[i].other_rc,
			    strerror(f[i].other_rc));
			ck_assert_msg(f[i].refused == 1, "round %d: producer "
			    "%d never refused", round, i);
			ok += f[i].ok;
			refused += f[i].refused;
		}
		ck_assert_msg(atomic_load(&k.handled) == ok, "round %d: %ld "
		    "events handled, but %ld fires returned 0", round,
		    (long)atomic_load(&k.handled), ok);
		ck_assert_msg(atomic_load(&frees) == ok + refused, "round %d: "
		    "data_free called %d times for %ld fires (%ld refused)",
		    round, atomic_load(&frees), ok + refused, refused);

		for (int i = 0; i < 2; i++)
			worker_unref(pw[i]);
		worker_unref(c);
		sem_destroy(&k.reached);
	}
}
END_TEST

/* ---- Senders outliving their events ---------------------------------- */

/*
 * A worker leaves its channels when it is freed, and a publication to an
 * empty channel returns 0 (worker_channel(3)): so once everything that
 * referenced the sender is gone, publishing on a channel the sender
 * subscribed to tells whether it was freed, the prepaid references
 * included.  A sender still alive rejects with ESRCH; the EVENT_REJECT
 * this queues on the test's thread is handled at once.
 */
static void
expect_freed(worker_channel_t *ch, const char *who)
{
	int rc = worker_channel_pub(ch, "probe", NULL);

	(void)worker_update();
	ck_assert_msg(rc == 0, "%s outlived its events: the channel still "
	    "has it (%s)", who, strerror(rc));
}

/*
 * The consumer holds on to the first event, so that when the sender has
 * ended and the test dropped its reference, N_SENDER - 1 events (in the
 * ring and in the locked queue) are all that keep it.  Each must still
 * name it, and when the last is handled it must go.
 */
START_TEST(sender_freed_after_stream)
{
	worker_attr_t attr = { .name = "sender" };
	worker_channel_t *ch;
	struct producer p;
	struct sink k;
	worker_t *sender;
	worker_t *c = gated_sink_start(&k, N_SENDER);

	ch = worker_channel_new();
	ck_assert_ptr_nonnull(ch);

	memset(&p, 0, sizeof(p));
	p.s.target = c;
	p.s.mixed = 1;
	p.s.seed = 4242u;
	p.count = N_SENDER;
	sender = worker_new(produce, &p, &attr);
	ck_assert_msg(sender != NULL, "worker_new: %s", strerror(errno));
	CHECK_OK(worker_channel_sub(ch, sender));
	k.source = sender;
	snprintf(k.source_name, sizeof(k.source_name), "%s", "sender");
	CHECK_OK(worker_start(sender));

	CHECK_OK(worker_join(sender));
	stream_expect(&p.s, "the sender");
	sem_wait_ok(&k.blocked, "the first event");
	worker_unref(sender);

	gated_sink_finish(c, &k);
	expect_freed(ch, "the sender");
	worker_channel_free(ch);
}
END_TEST

/* A plain thread as the sender: its root worker ends with the thread. */
struct sender_thread {
	struct stream s;
	struct sink *k;
	worker_channel_t *ch;
	int sub_rc;
};

static void *
send_from_thread(void *arg)
{
	struct sender_thread *st = arg;
	worker_t *self = worker_current();

	st->sub_rc = self != NULL ? worker_channel_sub(st->ch, self) : ENOMEM;
	st->k->source = self;
	snprintf(st->k->source_name, sizeof(st->k->source_name), "%s",
	    worker_name(self));
	stream_run(&st->s, 0, N_SENDER);
	return NULL;
}

/* The same with a thread's root worker, which its thread's exit ends and
 * unreferences while its events are still queued. */
START_TEST(sender_thread_freed_after_stream)
{
	struct sender_thread st;
	struct sink k;
	pthread_t th;
	worker_t *c = gated_sink_start(&k, N_SENDER);

	memset(&st, 0, sizeof(st));
	st.s.target = c;
	st.s.mixed = 1;
	st.s.seed = 2424u;
	st.k = &k;
	st.ch = worker_channel_new();
	ck_assert_ptr_nonnull(st.ch);
	ck_assert_int_eq(pthread_create(&th, NULL, send_from_thread, &st), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	CHECK_OK(st.sub_rc);
	stream_expect(&st.s, "the sending thread");

	sem_wait_ok(&k.blocked, "the first event");
	gated_sink_finish(c, &k);
	expect_freed(st.ch, "the thread's root worker");
	worker_channel_free(st.ch);
}
END_TEST

/* ---- Sleeping on a ring slot ----------------------------------------- */

/* One side of the ping-pong. */
struct rally {
	worker_t *peer;
	int serves;		/* fires first: the pinger */
	uint32_t seed;
	/* The task's, read after its join. */
	long rounds;		/* round trips completed */
	long bad;		/* answers with the wrong number */
	int err;		/* the wait or fire that failed */
	long naps;		/* its own sleeps, in maybe_dawdle() */
	long sleeps;		/* voluntary context switches but those */
};

/* What is left of the rally's time: a wake that is lost is not made up
 * for by the timeout of one wait, which would only slow the rally down. */
static double
time_left(double end)
{
	double left = end - now();

	return left > 0 ? left : 0;
}

/*
 * Now and then keeps the peer waiting past its spin, so that it goes to
 * sleep on its ring slot and the next event must wake it.  Asleep, not
 * busy: a peer that shares this thread's CPU (the machine is busy with
 * other work) spends its spin yielding the CPU, and would get it back
 * only once a busy wait here had fired the event, never having slept.
 * Each nap is one voluntary context switch of this thread's own, taken
 * off its count.
 */
static void
maybe_dawdle(struct rally *r)
{
	if (lcg(&r->seed) % 4 == 0) {
		nap(DAWDLE);
		r->naps++;
	}
}

static void *
rally_task(void *arg)
{
	struct rally *r = arg;
	const char *out = r->serves ? "ping" : "pong";
	const char *in = r->serves ? "pong" : "ping";
	long before = sleeps_so_far();
	double end = now() + wait_limit();
	void *data;

	for (long i = 0; i < N_PINGS; i++) {
		if (r->serves) {
			maybe_dawdle(r);
			if ((r->err = worker_fire(r->peer, out,
			    (void *)(intptr_t)i)) != 0)
				break;
		}
		if ((r->err = worker_wait_event(in, r->peer, time_left(end),
		    &data)) != 0)
			break;
		if ((intptr_t)data != i)
			r->bad++;
		if (!r->serves) {
			maybe_dawdle(r);
			if ((r->err = worker_fire(r->peer, out, data)) != 0)
				break;
		}
		r->rounds++;
	}
	r->sleeps = sleeps_so_far() - before - r->naps;
	return NULL;
}

/*
 * Two workers play N_PINGS round trips with short names, so both get a
 * ring early on; each waits in worker_wait_event().  A wake lost between
 * the sleeper's mark on its slot and the producer's publication would
 * hang one side until wait_limit().
 */
START_TEST(sleeper_woken_by_ring)
{
	worker_attr_t aa = { .name = "pinger" }, ba = { .name = "ponger" };
	struct rally a, b;
	worker_t *wa, *wb;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.serves = 1;
	a.seed = 1u;
	b.seed = 2u;
	wa = worker_new(rally_task, &a, &aa);
	wb = worker_new(rally_task, &b, &ba);
	ck_assert_ptr_nonnull(wa);
	ck_assert_ptr_nonnull(wb);
	a.peer = wb;
	b.peer = wa;
	CHECK_OK(worker_start(wb));
	CHECK_OK(worker_start(wa));
	CHECK_OK(worker_join(wa));
	CHECK_OK(worker_join(wb));

	ck_assert_msg(a.err == 0 && b.err == 0, "the rally broke off after "
	    "%ld round trips: pinger %s, ponger %s", a.rounds,
	    strerror(a.err), strerror(b.err));
	ck_assert_int_eq(a.rounds, N_PINGS);
	ck_assert_int_eq(b.rounds, N_PINGS);
	ck_assert_msg(a.bad == 0 && b.bad == 0, "%ld pings and %ld pongs "
	    "carried the wrong number", b.bad, a.bad);
	/* Else the test proved nothing about sleeping. */
	ck_assert_msg(a.sleeps > 0 && b.sleeps > 0, "a side never slept "
	    "(pinger %ld, ponger %ld context switches)", a.sleeps, b.sleeps);
	worker_unref(wa);
	worker_unref(wb);
}
END_TEST

/* The producer of the timed test: N_TICKS events with pauses. */
struct ticker {
	worker_t *target;
	sem_t *timed_out;
	uint32_t seed;
	long errors;
	int first_err;
	int timed_out_rc;
};

static void *
tick_task(void *arg)
{
	struct ticker *t = arg;

	for (long i = 0; i < N_TICKS; i++) {
		uint32_t r = lcg(&t->seed);
		int rc;

		/* Halfway, at least one wait must have timed out on a ring
		 * slot; after that the pauses only make it likely. */
		if (i == N_TICKS / 2)
			t->timed_out_rc = sem_wait_bounded(t->timed_out);
		else if (r % 32 == 0)
			nap(0.0002 + (double)((r >> 5) % 16) * 0.0001);
		if ((rc = worker_fire(t->target, "tick", (void *)(intptr_t)i))
		    != 0 && t->errors++ == 0)
			t->first_err = rc;
	}
	return NULL;
}

/* The consumer: waits for each tick with a short timeout. */
struct timed {
	sem_t timed_out;
	/* The task's, read after its join. */
	long got;		/* ticks returned by the waits, in order */
	long bad;		/* returned out of order */
	long timeouts;
	int err;		/* neither 0 nor ETIMEDOUT, or -1: too long */
};

static void *
timed_task(void *arg)
{
	struct timed *t = arg;
	double end = now() + wait_limit();
	int posted = 0;
	void *data;

	while (t->got < N_TICKS) {
		int rc = worker_wait_event("tick", NULL, TICK_TIMEOUT, &data);

		if (rc == 0) {
			if ((intptr_t)data != t->got)
				t->bad++;
			t->got++;
		} else if (rc == ETIMEDOUT) {
			t->timeouts++;
			if (!posted && t->got >= N_TICKS / 2) {
				posted = 1;
				sem_post(&t->timed_out);
			}
		} else {
			t->err = rc;
			break;
		}
		if (now() > end) {
			t->err = -1;
			break;
		}
	}
	return NULL;
}

/*
 * The consumer sleeps with a timeout of TICK_TIMEOUT in a loop while a
 * producer streams with pauses of about as long, so timeouts race with
 * publication on the slot the consumer marked: each tick must come out
 * of exactly one wait, in order, and be handled exactly once.
 */
START_TEST(timed_sleeper_sees_each_once)
{
	worker_attr_t ca = { .name = "timed" }, pa = { .name = "ticker" };
	atomic_int handled = 0;
	struct ticker tk;
	struct timed t;
	worker_t *c, *p;

	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(sem_init(&t.timed_out, 0, 0), 0);
	c = worker_new(timed_task, &t, &ca);
	ck_assert_ptr_nonnull(c);
	CHECK_OK(worker_listen(c, "tick", on_count, &handled, NULL));
	CHECK_OK(worker_start(c));
	memset(&tk, 0, sizeof(tk));
	tk.target = c;
	tk.timed_out = &t.timed_out;
	tk.seed = 7u;
	p = worker_create(tick_task, &tk, &pa);
	ck_assert_ptr_nonnull(p);

	CHECK_OK(worker_join(p));
	CHECK_OK(worker_join(c));
	ck_assert_msg(tk.errors == 0, "%ld fires failed, the first with %s",
	    tk.errors, strerror(tk.first_err));
	ck_assert_msg(tk.timed_out_rc == 0, "no wait timed out halfway");
	ck_assert_msg(t.err == 0, "the consumer's wait failed: %s",
	    t.err < 0 ? "it took too long" : strerror(t.err));
	ck_assert_int_eq(t.got, N_TICKS);
	ck_assert_msg(t.bad == 0, "%ld ticks came out of order", t.bad);
	CHECK_ATOMIC(&handled, N_TICKS);
	ck_assert_int_gt(t.timeouts, 0);

	worker_unref(p);
	worker_unref(c);
	sem_destroy(&t.timed_out);
}
END_TEST

Suite *
suite_queue(void)
{
	Suite *s = suite_create("queue");
	TCase *tc;

	tc = test_case(s, "order");
	tcase_add_test(tc, order_across_paths);
	tcase_add_test(tc, order_across_paths_two_producers);

	tc = test_case(s, "ring");
	tcase_add_test(tc, ring_overflow_keeps_order);
	tcase_add_test(tc, ring_grows_in_bursts);
	tcase_add_test(tc, ring_grows_two_producers);
	tcase_add_test(tc, watch_added_mid_stream);

	tc = test_case(s, "stop");
	tcase_add_test(tc, stop_during_stream_loses_nothing);

	tc = test_case(s, "sender");
	tcase_add_test(tc, sender_freed_after_stream);
	tcase_add_test(tc, sender_thread_freed_after_stream);

	tc = test_case(s, "sleep");
	tcase_add_test(tc, sleeper_woken_by_ring);
	tcase_add_test(tc, timed_sleeper_sees_each_once);

	return s;
}
