/*
 * relayd.h - what relayd's role files share: the daemon's options and
 * results, the frames and their credit, the chunks of bytes from a conn to
 * its framer, the acceptor, and the task of each worker.
 *
 * Clients connect to 127.0.0.1:PORT and send frames: a 4-byte big-endian
 * length, then that many bytes of payload, at most 1 MiB.  The bytes may
 * arrive split anywhere.  Every frame becomes one row of an SQLite
 * database (table frames: id, connection, sequence, received_at in
 * microseconds since the epoch, payload), and goes on to every subscriber
 * connected to 127.0.0.1:SUBPORT.  A subscriber speaks WebSocket (RFC
 * 6455; ws.h has the details): it opens one with an HTTP GET, and gets a
 * text message "RELAYD1", which tells it that every frame from then on
 * will reach it, then each frame as one binary message.  A GET of "/"
 * without the upgrade gets a page that shows the frames live.
 *
 * The worker tree is the one of TaskThread's introduction, one file each:
 *
 *	master		the root: the frames' crossroads, and the orderly
 *			stop on SIGINT or SIGTERM (master.c)
 *	  listener	accepts clients (listener.c)
 *	    conn	one per client: reads bytes off its socket (conn.c)
 *	      framer	one per conn: rebuilds frames from the bytes
 *			(framer.c)
 *	  store		writes every frame into SQLite (store.c);
 *			restarted by the master when its database fails
 *	  fanout	sends every frame to the subscribers, over
 *			WebSocket (fanout.c)
 *
 * main.c reads the options, opens the sockets and runs the master;
 * frame.c holds the frames, their credit and a queue of them; acceptor.c
 * the listening socket that the listener and the fanout share; http.c
 * and page.c the HTTP side of the subscribers' port (the handshake and
 * the page), while wslay (Debian: libwslay-dev) does the WebSocket
 * framing in the fanout's loop.
 *
 * A worker talks only to its parent and its children.  A frame bubbles up
 * from its framer to the master, which fires it down at the store and at
 * the fanout.  A frame is a heap block with a reference count: each fire
 * hands one reference to the library, with a destructor that drops it, and
 * the library calls that exactly once, whatever becomes of the event.
 *
 * Backpressure.  Each connection has a credit of CONN_WINDOW bytes.  Its
 * framer charges every frame it completes, and the frame pays back once
 * it has cleared every queue on the way up (the library calls the
 * bubble's data_free after the last ancestor has handled its copy), the
 * store has written it and the fanout has queued it for the subscribers.
 * A conn reads only while it has credit; without, it unwatches its socket
 * and looks again a moment later, so the bytes wait in the kernel and TCP
 * slows the client down.  The fanout has a bounded queue: when it
 * refuses a frame (EAGAIN), the master keeps it in a backlog and offers
 * it again on a timer, and meanwhile its credit does not come back, so the
 * conns stop; the store's inbox is bounded by the credit alone.  Credit
 * rather than a "full" message down the tree, because such a message
 * queues behind the frames on its way: under load it arrives too late to
 * bound anything.  So, whatever the speed of
 * the clients, relayd holds per connection at most CONN_WINDOW, a frame
 * past it, a frame being filled and a few chunks; and per subscriber
 * --sub-buffer: the fanout never waits for a subscriber, and drops one that
 * falls that far behind.
 *
 * Bad input.  A frame longer than 1 MiB, or a client that leaves in the
 * middle of a frame, ends that connection's framer with a log line, and so
 * the connection; the frames before it have gone up already.
 *
 * The store is supervised.  Its database may fail for a while: a lock
 * held by another process, a full disk.  The frames fired at the store do
 * not go through its event queue but into its inbox (struct inbox, below),
 * which the master owns and which outlives every run of the store: a run
 * takes a batch from the front, writes it in one transaction and removes
 * it only once committed.  A write that fails fails the store (the batch
 * stays at the front), and the master, its supervisor, starts it again
 * after STORE_RESTART_DELAY, doubling up to 30 times that while the
 * failures go on (attr.restart_delay); the new run opens the database
 * afresh and writes the inbox first.  Meanwhile the master goes on filling
 * the inbox.  Memory stays bounded by the credit: a frame pays its
 * store's share only once committed, so while the store is down every
 * conn stops reading once CONN_WINDOW of its bytes wait, and relayd holds
 * what it holds under a slow store, per connection at most CONN_WINDOW and
 * a frame.  More than STORE_RESTART_MAX restarts in STORE_RESTART_PERIOD
 * seconds and the master gives up (escalation): relayd stops as after a
 * failed worker, drains nothing into the database, says how many frames
 * it read are lost, and exits 1.
 *
 * Stopping.  SIGINT and SIGTERM reach the master as SIGNAL events
 * (worker_signals(), with both in the notify set); the master exits, and
 * the library ends its children as structured lifetimes do: the newest
 * first, each ended before the next, each given its stop_timeout.  So
 * first the listener: it closes its socket, and its conns are stopped all
 * at once (attr.stop_order); each conn's stop hands the bytes it has read
 * to its framer, which bubbles every complete frame and drops a partial
 * one, and ends with its framer.  A conn stuck past CONN_STOP_TIMEOUT is
 * left behind with what it holds.  Every frame bubbled is in the master's
 * queue before the listener ends, and the master handles them before it
 * stops the next child; it hands the fanout its backlog, and the fanout's
 * stop gives the subscribers FLUSH_TIME to take the last frames.  Last the
 * store, whose stop commits its whole inbox; a store waiting for its
 * restart is started at once for that.  It has no stop_timeout: it holds
 * the frames, and each of its attempts ends within the busy timeout.
 * Every frame that relayd had read from a socket when the signal came is
 * in the database, unless the database fails then, and then the log says
 * how many are lost.  Another signal meanwhile is only logged: a
 * supervisor or a terminal may well send two, and the stop ends by
 * itself.
 *
 * Test hook.  RELAYD_FAIL_WRITES=N[,K] in the environment makes the store
 * fail its Nth insert and the K-1 after it (1 by default), counted from
 * 1 over the whole process, as a database error would; test/relay_test.sh
 * uses it where it cannot fill a disk.
 */
#ifndef RELAYD_H
#define RELAYD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"
#include "worker.h"

#define CONN_WINDOW	(256 * 1024)	/* a connection's credit, bytes */
#define FRAME_COST	256		/* bytes a frame costs beyond its
					 * payload: events, headers */
#define RETRY_DELAY	0.001		/* seconds before a refused fire is
					 * tried again */

/* Supervision of the store by the master (see "The store is supervised"). */
#define STORE_RESTART_DELAY	0.1	/* s before the first restart */
#define STORE_RESTART_MAX	10	/* restarts in STORE_RESTART_PERIOD */
#define STORE_RESTART_PERIOD	60.0	/* s: then the master gives up */
#define STORE_BUSY_MS		1000	/* ms a write waits for a lock held
					 * by another process: then the store
					 * fails, and the backoff takes over */

/* stop_timeout of each kind of worker, in seconds (see "Stopping"). */
#define CONN_STOP_TIMEOUT	5.0	/* a conn passing on its last bytes */
#define LISTENER_STOP_TIMEOUT	10.0	/* more than its conns' */
#define FLUSH_TIME		1.0	/* the fanout's subscribers, to take
					 * the last frames */
#define FANOUT_STOP_TIMEOUT	3.0	/* more than FLUSH_TIME */

/*
 * The daemon: its options, set by main() before any worker starts and only
 * read afterwards, and its results, each written by one worker and read by
 * main() once the tree has ended.
 */
struct relay {
	const char *db;
	size_t queue_max;	/* of the fanout */
	size_t sub_buffer;	/* bytes a subscriber may fall behind */
	int port;
	int sub_port;
	int listen_fd;		/* taken by the listener when it starts */
	int sub_fd;		/* taken by the fanout when it starts */
	uint64_t first_conn;	/* store: the first free connection number */
	struct inbox *inbox;	/* the store's, owned by the master */

	uint64_t conns;		/* listener: connections accepted */
	uint64_t rows;		/* store: rows committed, all runs */
	uint64_t dropped;	/* fanout: subscribers dropped as too slow */
	bool failed;		/* master: a worker failed */
};

/* -v (main.c): read by every thread, set before any of them exists. */
extern bool verbose;

/*
 * Frames completed by all the framers (framer.c).  After an orderly stop
 * it equals the rows committed, which is the promise of the drain: tests
 * compare the two in the last line of the log.
 */
extern atomic_uint_least64_t frames_read;

/* A line "relayd: ..." on standard error (main.c). */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Adds a transient listener to the calling worker (main.c). */
void listen_self(const char *name, worker_listener_fn fn, void *ctx);

/* ---- Credit and frames (frame.c) ------------------------------------- */

/*
 * A connection's credit: bytes of its frames on their way from its framer
 * to the store and the fanout.  Its conn, its framer and each of its
 * frames hold a reference, so it outlives whichever goes last.
 */
struct credit {
	atomic_uint refs;
	atomic_size_t used;
	uint64_t conn;		/* the connection's number */
};

struct credit *credit_new(uint64_t conn);
struct credit *credit_ref(struct credit *cr);
void credit_unref(struct credit *cr);

/*
 * One frame, shared by everyone who holds a reference: the events that
 * carry it, the master's backlogs and the subscribers' queues.  Written by
 * its framer only, before it is first fired.
 */
struct frame {
	atomic_uint refs;
	atomic_uint owed;	/* the way up, store, fanout: 0 once paid */
	struct credit *credit;	/* its connection's, once complete */
	uint64_t conn;		/* the connection's number */
	uint64_t seq;		/* its place on the connection, from 0 */
	int64_t received_us;	/* when its last byte was read */
	uint32_t len;
	unsigned char head[4];	/* the length prefix, for the subscribers */
	unsigned char data[];
};

struct frame *frame_new(uint32_t len);
struct frame *frame_ref(struct frame *f);
void frame_unref(void *p);
void frame_pay(struct frame *f);

/* A queue of frame references, oldest first; one worker's only. */
struct fifo {
	struct frame **v;
	size_t head;
	size_t len;
	size_t cap;		/* 0 or a power of two */
};

int fifo_push(struct fifo *q, struct frame *f);
struct frame *fifo_peek(const struct fifo *q, size_t i);
struct frame *fifo_pop(struct fifo *q);
void fifo_clear(struct fifo *q);

/*
 * The frames handed to the store and not yet committed, oldest first.  The
 * master owns it and appends; the runs of the store, one after another,
 * copy a batch off the front and remove it once committed, so a run that
 * fails leaves its batch to the next.  Two threads share it: under lock.
 */
struct inbox {
	pthread_mutex_t lock;
	struct fifo q;
	bool nudged;		/* the store was told, and has not yet found
				 * the inbox empty */
};

void inbox_init(struct inbox *in);
/* Appends f with the caller's reference; ENOMEM keeps it the caller's.
 * *wake: the store must be told (a "frames" event). */
int inbox_put(struct inbox *in, struct frame *f, bool *wake);
/* The store could not be told: the next frame tries again. */
void inbox_unnudge(struct inbox *in);
/* Copies up to max frames off the front into v (the inbox keeps their
 * references); 0 when empty, which ends the nudge. */
size_t inbox_peek(struct inbox *in, struct frame **v, size_t max);
/* The first n frames, v as inbox_peek() gave them, are committed: out,
 * each paid and dropped. */
void inbox_done(struct inbox *in, struct frame **v, size_t n);
size_t inbox_len(struct inbox *in);
void inbox_fini(struct inbox *in);

/* ---- From a conn to its framer (conn.c, framer.c) -------------------- */

/* What ends a connection's stream of bytes. */
enum { END_NONE, END_EOF, END_DRAIN };

/* The data of "bytes", from a conn to its framer; freed by the library. */
struct chunk {
	size_t len;
	int end;		/* END_*: nothing follows these bytes */
	unsigned char data[];
};

/* ---- Accepting, for the listener and the fanout (acceptor.c) --------- */

/* A listening socket in a worker's loop; take() gets each new socket. */
struct acceptor {
	const char *what;	/* "client" or "subscriber", for the log */
	worker_t *self;
	int fd;
	uint64_t watch;
	uint64_t retry;		/* accepting again after an error */
	void (*take)(int fd, void *ctx);
	void *ctx;
};

void acceptor_start(struct acceptor *a);
void acceptor_close(struct acceptor *a);

/* ---- The subscribers' HTTP side (http.c, page.c) --------------------- */

#define HTTP_HEAD_MAX	8192		/* bytes of a request's head */

/* What a subscriber's request gets (http_answer()). */
enum { HTTP_MORE, HTTP_UPGRADE, HTTP_PAGE, HTTP_REFUSE };

/*
 * Reads the request received so far, req (len bytes).  HTTP_MORE until
 * its head is complete; then writes the answer into out (cap bytes),
 * sets *outlen to its length (0 if it did not fit) and *used to the bytes
 * of req that were the head, and says what it is: the handshake of a
 * WebSocket, the page, or a refusal (400, 404, 405, 426, 431).
 */
int http_answer(const char *req, size_t len, char *out, size_t cap,
    size_t *outlen, size_t *used);

/* The page of GET / (page.c). */
extern const char page_html[];
extern const size_t page_len;

/* ---- The workers ----------------------------------------------------- */

/* The master (master.c); arg is the struct relay. */
void *master_task(void *arg);
/* The listener, the store and the fanout; arg is the struct relay. */
void *listener_task(void *arg);
void *store_task(void *arg);
void *fanout_task(void *arg);
/*
 * Starts a conn, a child of the calling worker, for the client on fd, and
 * numbers it *next_id (conn.c).  fd is the conn's from then on: closed if
 * the conn cannot start.  True if it started.
 */
bool conn_start(int fd, uint64_t *next_id);
/* A conn's framer (framer.c); arg is the connection's credit, with a
 * reference for the framer. */
void *framer_task(void *arg);

#endif
