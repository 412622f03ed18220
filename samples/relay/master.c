/*
 * master.c - the master: the root of relayd's tree.  It owns its three
 * children (the store, the fanout and the listener), starts them in that
 * order, and is the frames' crossroads: every frame bubbles up to it and
 * it fires each at the store and at the fanout, keeping a backlog for
 * either while its queue is full.  On SIGINT or SIGTERM it drains the tree
 * in order and exits; a child that ends before that fails it.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "relayd.h"

enum { TO_STORE, TO_FANOUT, TARGETS };

struct master {
	struct relay *r;
	worker_t *self;
	worker_t *listener;
	worker_t *target[TARGETS];	/* the store and the fanout */
	struct fifo backlog[TARGETS];	/* frames they refused for now */
	uint64_t retry;		/* the timer offering the backlogs again */
	bool draining;
};

/*
 * Fires f at target i with a reference of its own.  Returns EAGAIN if the
 * target's queue is full, else 0: taken, or lost with the target, and
 * then the master pays the target's share of credit.
 */
static int
master_send(struct master *m, int i, struct frame *f)
{
	int rc;

	rc = worker_fire_ex(m->target[i], "frame", frame_ref(f), frame_unref,
	    0);
	if (rc == EAGAIN)
		return rc;
	/* ESRCH: the store or the fanout has ended, and on_child_end()
	 * fails the master; nothing can be done with the frame. */
	if (rc != 0) {
		say("%s refused frame %" PRIu64 " of connection %" PRIu64
		    ": %s", worker_name(m->target[i]), f->seq, f->conn,
		    strerror(rc));
		frame_pay(f);
	}
	return 0;
}

static void master_retry(void *arg);

/* Keeps a retry timer while a backlog lasts. */
static void
master_arm(struct master *m)
{
	int rc;

	if (m->retry != 0 || (m->backlog[TO_STORE].len == 0 &&
	    m->backlog[TO_FANOUT].len == 0))
		return;
	rc = worker_later(m->self, master_retry, m, RETRY_DELAY, &m->retry);
	if (rc != 0)
		worker_fail(rc);
}

/* Offers the backlogs again, oldest first, as far as they go. */
static void
master_push(struct master *m)
{
	for (int i = 0; i < TARGETS; i++)
		while (m->backlog[i].len > 0 &&
		    master_send(m, i, fifo_peek(&m->backlog[i], 0)) == 0)
			frame_unref(fifo_pop(&m->backlog[i]));
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
 * Listener of "frame", bubbled up by every framer.  A frame that a target
 * refuses waits in that target's backlog, and keeps its connection's
 * credit meanwhile: that is what stops the conns when the store or the
 * fanout cannot keep up.
 */
static int
on_master_frame(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	struct frame *f = ev->data;

	for (int i = 0; i < TARGETS; i++) {
		/* Behind a backlog, a frame waits its turn. */
		if (m->backlog[i].len == 0 && master_send(m, i, f) == 0)
			continue;
		if (fifo_push(&m->backlog[i], frame_ref(f)) != 0) {
			frame_unref(f);
			say("no memory: frame %" PRIu64 " of connection %"
			    PRIu64 " lost for the %s", f->seq, f->conn,
			    worker_name(m->target[i]));
			frame_pay(f);
		}
	}
	master_arm(m);
	return 0;
}

/* A child ended before the drain: relayd cannot go on without it. */
static int
on_child_end(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int rc;

	if (m->draining)
		return 0;
	rc = worker_result(ev->source, NULL);
	say("the %s has ended%s%s", worker_name(ev->source),
	    rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
	m->r->failed = true;
	worker_fail(rc != 0 ? rc : EIO);
	return 0;
}

/*
 * Waits for a child inside the drain, noting whether it failed.  A signal
 * during the start finds some children not started yet (NULL).
 */
static void
master_wait(struct master *m, worker_t *w)
{
	int rc;

	if (w != NULL && (rc = worker_wait_thread(w, NULL)) != 0) {
		say("the %s failed: %s", worker_name(w), strerror(rc));
		m->r->failed = true;
	}
}

/*
 * The orderly stop (see "Stopping" in relayd.h).  Its waits run the
 * master's loop, so frames keep coming in, the backlog timer keeps
 * running, and another signal finds m->draining set.
 */
static void
master_drain(struct master *m)
{
	m->draining = true;
	if (m->listener != NULL &&
	    worker_fire(m->listener, "drain", NULL) == 0)
		master_wait(m, m->listener);
	while (m->backlog[TO_STORE].len > 0 || m->backlog[TO_FANOUT].len > 0) {
		master_push(m);
		if (m->backlog[TO_STORE].len > 0 ||
		    m->backlog[TO_FANOUT].len > 0)
			(void)worker_sleep(RETRY_DELAY);
	}
	/* STOP_THREAD is always admitted, behind every frame queued. */
	for (int i = 0; i < TARGETS; i++)
		if (m->target[i] != NULL)
			(void)worker_stop(m->target[i]);
	for (int i = 0; i < TARGETS; i++)
		master_wait(m, m->target[i]);
}

/* Listener of SIGNAL: SIGINT or SIGTERM. */
static int
on_master_signal(const worker_event_t *ev, void *ctx)
{
	struct master *m = ctx;
	int signo = (int)(intptr_t)ev->data;

	if (m->draining) {
		say("%s: already stopping", strsignal(signo));
		return 0;
	}
	say("%s: stopping after the frames received so far",
	    strsignal(signo));
	master_drain(m);
	worker_exit();
	return 0;
}

static void
master_close(void *arg)
{
	struct master *m = arg;

	for (int i = 0; i < TARGETS; i++) {
		fifo_clear(&m->backlog[i]);
		worker_unref(m->target[i]);
	}
	worker_unref(m->listener);
}

/*
 * Starts a child of the master; fails the master if it cannot.  Quiet:
 * on_child_end() reports its failure.
 */
static worker_t *
start_child(worker_fn fn, struct relay *r, const char *name,
    size_t queue_max)
{
	worker_attr_t attr = {
		.name = name, .queue_max = queue_max, .quiet = 1
	};
	worker_t *w;
	int rc;

	if ((w = worker_create(fn, r, &attr)) == NULL) {
		rc = errno;
		say("cannot start the %s: %s", name, strerror(rc));
		worker_fail(rc);
	}
	return w;
}

/* The task of the master; arg is the struct relay. */
void *
master_task(void *arg)
{
	struct master m = { .r = arg };
	int rc;

	m.self = worker_current();
	worker_cleanup_push(master_close, &m);
	listen_self(WORKER_SIGNAL, on_master_signal, &m);
	listen_self(WORKER_CHILD_THREAD_END, on_child_end, &m);
	listen_self("frame", on_master_frame, &m);

	/* The store first: it knows which connection numbers are free.  If
	 * it fails instead, on_child_end() fails the master. */
	m.target[TO_STORE] = start_child(store_task, m.r, "store",
	    m.r->queue_max);
	if ((rc = worker_wait_event("ready", m.target[TO_STORE], -1,
	    NULL)) != 0)
		worker_fail(rc);
	m.target[TO_FANOUT] = start_child(fanout_task, m.r, "fanout",
	    m.r->queue_max);
	m.listener = start_child(listener_task, m.r, "listener", 0);
	say("ready: clients 127.0.0.1:%d, subscribers 127.0.0.1:%d, "
	    "database %s", m.r->port, m.r->sub_port, m.r->db);
	worker_wait_forever();
	return NULL;
}
