/*
 * master.c - the master: the root of relayd's tree.  It owns its three
 * children (the store, the fanout and the listener), starts them in that
 * order, and is the frames' crossroads: every frame bubbles up to it and
 * it puts each in the store's inbox and fires it at the fanout, keeping a
 * backlog while the fanout's queue is full.  It supervises the store,
 * which the library restarts when its database fails.  On SIGINT or
 * SIGTERM it exits, and the library ends its children in the order that
 * drains the tree; the listener or the fanout ending before that fails
 * it.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "relayd.h"

struct master {
	struct relay *r;
	worker_t *self;
	worker_t *listener;
	worker_t *fanout;
	worker_t *store;
	struct inbox inbox;	/* the store's: frames not yet committed */
	struct fifo backlog;	/* frames the fanout refused for now */
	uint64_t retry;		/* the timer offering the backlog again */
	bool store_ready;	/* the store's first run is up */
	bool stopping;		/* on a signal, or giving up on the store */
	bool giving_up;		/* the store is past its restarts */
	/* When the library restarted the store, as it counts them. */
	double restarts[STORE_RESTART_MAX];
	unsigned nrestarts;
};

/*
 * Fires f at the fanout with a reference of its own.  Returns EAGAIN if
 * its queue is full, else 0: taken, or lost with the fanout, and then the
 * master pays the fanout's share of credit.
 */
static int
master_send(struct master *m, struct frame *f)
{
	int rc;

	rc = worker_fire_ex(m->fanout, "frame", frame_ref(f), frame_unref,
	    0);
	if (rc == EAGAIN)
		return rc;
	/* ESRCH: the fanout has ended, and on_child_end() fails the
	 * master; the subscribers will not see the frame. */
	if (rc != 0) {
		if (!m->stopping)
			say("the fanout refused frame %" PRIu64 " of "
			    "connection %" PRIu64 ": %s", f->seq, f->conn,
			    strerror(rc));
		frame_pay(f);
	}
	return 0;
}

static void master_retry(void *arg);

/* Keeps a retry timer while the backlog lasts. */
static void
master_arm(struct master *m)
{
	int rc;

	if (m->retry != 0 || m->backlog.len == 0)
		return;
	rc = worker_later(m->self, master_retry, m, RETRY_DELAY, &m->retry);
	if (rc != 0)
		worker_fail(rc);
}

/* Offers the backlog again, oldest first, as far as it goes. */
static void
master_push(struct master *m)
{
	while (m->backlog.len > 0 &&
	    master_send(m, fifo_peek(&m->backlog, 0)) == 0)
		frame_unref(fifo_pop(&m->backlog));
	master_arm(m);
}

static void
master_retry(void *arg)
{
	struct master *m = arg;

	m->retry = 0;
	master_push(m);
}

/*
 * Puts f in the store's inbox, and tells the store if it does not know
 * yet.  A store that is down cannot be told: its next run starts with the
 * inbox anyway.
 */
static void
master_store(struct master *m, struct frame *f)
{
	bool wake;

	if (inbox_put(&m->inbox, frame_ref(f), &wake) != 0) {
		frame_unref(f);
		say("no memory: frame %" PRIu64 " of connection %" PRIu64
		    " lost for the store", f->seq, f->conn);
		/* No ack may cover it: its conn closes the connection, and
		 * the client sends it again. */
		atomic_store(&f->credit->lost, true);
		frame_pay(f);
		return;
	}
	if (wake && worker_fire(m->store, "frames", NULL) != 0)
		inbox_unnudge(&m->inbox);
}

/*
 * A frame from a conn.  A frame that the fanout refuses waits in the
 * backlog, and keeps its connection's credit meanwhile, as one waits in
 * the store's inbox until committed: that is what stops the conns when
 * the store or the fanout cannot keep up.
 */
static void
master_frame(struct master *m, struct frame *f)
{
	master_store(m, f);
	/* Behind a backlog, a frame waits its turn. */
	if (m->backlog.len == 0 && master_send(m, f) == 0)
		return;
	if (fifo_push(&m->backlog, frame_ref(f)) != 0) {
		frame_unref(f);
		say("no memory: frame %" PRIu64 " of connection %" PRIu64
		    " lost for the fanout", f->seq, f->conn);
		frame_pay(f);
	}
	master_arm(m);
}

/* Listener of "batch", bubbled up by every conn. */
static int
on_master_batch(const worker_event_t *ev, void *ctx)
{
	const struct batch *b = ev->data;

	for (size_t i = 0; i < b->n; i++)
		master_frame(ctx, b->v[i]);
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The store has ended while relayd runs: will the library restart it, and
 * after how long (*delay), or give up?  The library decides after this
 * listener and tells nothing, so the master counts as it does
 * (supervise.c): more than STORE_RESTART_MAX restarts in the period and it
 * gives up; the delay doubles for each restart in the period, up to 30
 * times the first.
 */
static bool
store_restarts(struct master *m, double *delay)
{
	double now = now_s();
	unsigned recent = 0;

	for (unsigned i = 0; i < m->nrestarts; i++)
		if (now - m->restarts[i] <= STORE_RESTART_PERIOD)
			m->restarts[recent++] = m->restarts[i];
	m->nrestarts = recent;
	if (recent >= STORE_RESTART_MAX)
		return false;
	m->restarts[m->nrestarts++] = now;
	*delay = STORE_RESTART_DELAY;
	for (unsigned i = 0; i < recent && *delay < 30 * STORE_RESTART_DELAY;
	    i++)
		*delay *= 2;
	if (*delay > 30 * STORE_RESTART_DELAY)
		*delay = 30 * STORE_RESTART_DELAY;
	return true;
}

/* The store's end while relayd runs: its frames wait in the inbox. */
static void
store_ended(struct master *m, int rc)
{
	double delay;

	if (!store_restarts(m, &delay)) {
		/* The library fails the master with ECHILD right after
		 * this listener: the stop that follows is not a drain. */
		say("the store has failed %d times in %g s; giving up: %zu "
		    "frames wait for it", STORE_RESTART_MAX,
		    STORE_RESTART_PERIOD, inbox_len(&m->inbox));
		m->stopping = true;
		m->giving_up = true;
		return;
	}
	say("the store has ended%s%s; %zu frames wait for it; restart %u in "
	    "%.3g s", rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "",
	    inbox_len(&m->inbox), m->nrestarts, delay);
}

/*
 * The listener has ended in the stop: every frame read is in the master's
 * queue before that, and handled by now.  The fanout gets its backlog
 * before the library stops it in turn.
 */
static void
master_flush_fanout(struct master *m)
{
	while (m->backlog.len > 0 && worker_is_running(m->fanout)) {
		master_push(m);
		if (m->backlog.len > 0)
			(void)worker_sleep(RETRY_DELAY);
	}
}

/*
 * Listener of CHILD_THREAD_END.  The store may end while relayd runs (its
 * supervision); the others may not, unless relayd stops.
 */
static int
on_child_end(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int rc = worker_result(ev->source, NULL);

	if (ev->source == m->store && m->store_ready && !m->stopping) {
		store_ended(m, rc);
		return 0;
	}
	if (m->stopping) {
		if (rc != 0) {
			say("the %s failed: %s", worker_name(ev->source),
			    strerror(rc));
			m->r->failed = true;
		}
		if (ev->source == m->listener && !m->giving_up)
			master_flush_fanout(m);
		return 0;
	}
	say("the %s has ended%s%s", worker_name(ev->source),
	    rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
	m->r->failed = true;
	worker_fail(rc != 0 ? rc : EIO);
	return 0;
}

/* Listener of "ready", from every run of the store. */
static int
on_store_ready(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;

	(void)ev;
	if (!m->store_ready)
		return 0;
	/* A restart the master thought would not come: it runs on. */
	if (m->giving_up) {
		m->giving_up = false;
		m->stopping = false;
	}
	say("the store is back: %zu frames wait for it",
	    inbox_len(&m->inbox));
	return 0;
}

/*
 * Listener of SIGNAL: SIGINT or SIGTERM.  The master exits, and the
 * library ends its children, the newest first (see "Stopping" in
 * relayd.h).
 */
static int
on_master_signal(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int signo = (int)(intptr_t)ev->data;

	if (m->stopping) {
		say("%s: already stopping", strsignal(signo));
		return 0;
	}
	say("%s: stopping after the frames received so far",
	    strsignal(signo));
	m->stopping = true;
	/* A store waiting for its restart would not come back in the stop,
	 * and its frames would be lost: it comes back now. */
	if (m->store != NULL && !worker_is_running(m->store) &&
	    worker_join_timeout(m->store, 1) == 0 &&
	    worker_start(m->store) == 0)
		say("the store restarts at once for the stop");
	worker_exit();
	return 0;
}

/*
 * Cleanup handler.  The children have ended: what is left in the store's
 * inbox will never be written.
 */
static void
master_close(void *arg)
{
	struct master *m = arg;
	size_t lost = inbox_len(&m->inbox);

	if (lost > 0) {
		say("%zu frames read were not committed: lost", lost);
		m->r->failed = true;
	}
	inbox_fini(&m->inbox);
	fifo_clear(&m->backlog);
	worker_unref(m->store);
	worker_unref(m->fanout);
	worker_unref(m->listener);
}

/*
 * Starts a child of the master; fails the master if it cannot.  Quiet:
 * on_child_end() reports its failure.
 */
static worker_t *
start_child(worker_fn fn, struct relay *r, worker_attr_t *attr)
{
	worker_t *w;
	int rc;

	attr->quiet = 1;
	if ((w = worker_create(fn, r, attr)) == NULL) {
		rc = errno;
		say("cannot start the %s: %s", attr->name, strerror(rc));
		worker_fail(rc);
	}
	return w;
}

/* The task of the master; arg is the struct relay. */
void *
master_task(void *arg)
{
	struct master m = { .r = arg };
	/* The store holds the frames: it has no stop_timeout, and its
	 * attempts are bounded by the busy timeout (relayd.h). */
	worker_attr_t store = { .name = "store", .stop_timeout = -1 };
	worker_attr_t fanout = {
		.name = "fanout", .queue_max = m.r->queue_max,
		.stop_timeout = FANOUT_STOP_TIMEOUT
	};
	/* Its conns are stopped at once, and restarted if they fail. */
	worker_attr_t listener = {
		.name = "listener", .stop_order = WORKER_STOP_PARALLEL,
		.stop_timeout = LISTENER_STOP_TIMEOUT,
		.strategy = WORKER_ONE_FOR_ONE,
		.restart_max = CONN_RESTART_MAX,
		.restart_period = CONN_RESTART_PERIOD
	};
	int rc;

	m.self = worker_current();
	inbox_init(&m.inbox);
	m.r->inbox = &m.inbox;
	worker_cleanup_push(master_close, &m);
	listen_self(WORKER_SIGNAL, on_master_signal, &m);
	listen_self(WORKER_CHILD_THREAD_END, on_child_end, &m);
	listen_self("batch", on_master_batch, &m);
	listen_self("ready", on_store_ready, &m);

	/* The store first: it knows which connection numbers are free.  If
	 * its first run fails, on_child_end() fails the master: a database
	 * that cannot even be opened is no passing trouble. */
	m.store = start_child(store_task, m.r, &store);
	if ((rc = worker_wait_event("ready", m.store, -1, NULL)) != 0)
		worker_fail(rc);
	if ((rc = worker_set_restart(m.store, WORKER_RESTART_PERMANENT)) != 0)
		worker_fail(rc);
	m.store_ready = true;
	m.fanout = start_child(fanout_task, m.r, &fanout);
	m.listener = start_child(listener_task, m.r, &listener);
	say("ready: clients 127.0.0.1:%d, subscribers 127.0.0.1:%d, "
	    "database %s", m.r->port, m.r->sub_port, m.r->db);
	worker_wait_forever();
	return NULL;
}
