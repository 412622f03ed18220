/*
 * relayd.h - what relayd's role files share: the daemon's options and
 * results, the frames and their credit, a connection's framer, the
 * limits on connections, the acceptor, and the task of each worker.
 *
 * Clients connect to 127.0.0.1:PORT, say who they are, and send numbered
 * frames (wire.h; relay(5) is the reference).  Every frame becomes one row
 * of an SQLite database (table frames: id, client, sequence, connection,
 * received_at in microseconds since the epoch, payload), once per (client,
 * sequence) however often it is sent, and goes on to every subscriber
 * connected to 127.0.0.1:SUBPORT.  Once a frame is committed, relayd
 * acknowledges it on its connection; a client resends, on its next
 * connection, whatever was not acknowledged.  So a frame is lost only if
 * its client gives up on it, whatever happens to relayd: SIGTERM, SIGINT,
 * kill -9 (the rows of a commit survive it), a full disk.
 *
 * A subscriber speaks WebSocket (RFC 6455; ws.h has the details): it opens
 * one with an HTTP GET, and gets a text message "RELAYD1", which tells it
 * that every frame from then on will reach it, then each frame as one
 * binary message.  A GET of "/" without the upgrade gets a page that
 * shows the frames live.
 *
 * The worker tree is the one of TaskThread's introduction, one file each:
 *
 *	master		the root: the frames' crossroads, and the orderly
 *			stop on SIGINT or SIGTERM (master.c)
 *	  listener	accepts clients, within the limits, and hands each
 *			to a conn (listener.c, limits.c)
 *	    conn-K	--conn-workers of them: each serves many
 *			connections from one epoll descriptor in its loop
 *			(conn.c), each connection with its framer, which
 *			rebuilds frames from the bytes (framer.c)
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
 * Why a few conns that serve many connections each, and not a thread
 * per connection as before: a thread costs a stack, a kernel task and a
 * switch per read, and 10,000 clients made 20,000 threads; a fixed few
 * threads cost nothing per client but a struct conn and what it has read,
 * and keep the two CPUs on work instead of switching (test/relay_bench.sh
 * measures it).  The conn watches one epoll descriptor rather than each
 * socket with worker_watch(): a worker's loop polls all its watches each
 * round, which is linear in their number.  The framer is a struct of its
 * connection, not a worker: it only copies bytes, and a thread per framer
 * would bring back the switches.
 *
 * A worker talks only to its parent and its children.  Frames bubble up
 * from their conn to the master, a batch per round of reads, and the
 * master fires each down at the store and at the fanout.  A frame is a
 * heap block with a reference count: each fire hands one reference to the
 * library, with a destructor that drops it, and the library calls that
 * exactly once, whatever becomes of the event.
 *
 * Acknowledgements.  Each connection has a credit (below), which its
 * frames reference; the store, once it has committed a batch, writes into
 * the credit of each frame the frame's sequence number (committed).  The
 * conn looks at the credits of its connections with frames on their way,
 * a tick at a time, and writes an ack to each whose committed number has
 * moved.  Shared state rather than a message down the tree, because such
 * a message would queue behind the frames on their way up, and cross the
 * whole tree for every commit.  A connection's frames are committed in
 * the order they were read, so the number only grows.  The tick comes
 * every ACK_TICK while anything moves, and backs off to ACK_TICK_MAX once
 * nothing has for ACK_QUIET ticks (the store down, say), so that waiting
 * costs nothing.
 *
 * Backpressure.  The same credit bounds a connection's frames on their
 * way: its framer charges every frame it completes, and the frame pays
 * back once it has cleared every queue on the way up (the library calls
 * the batch's data_free after the last ancestor has handled it), the
 * store has written it and the fanout has queued it for the subscribers.
 * Before each read the conn looks at the credit, and at relayd's budget
 * for frames (--max-memory, struct budget below); without, it reads no
 * more from that socket until the tick finds some, so the bytes wait in
 * the kernel and TCP slows the client down.  A read the framer takes
 * whole.  The fanout has a bounded queue: when it refuses a frame
 * (EAGAIN), the master keeps it in a backlog and offers it again on a
 * timer, and meanwhile its credit does not come back, so the conns stop;
 * the store's inbox is bounded by the credit alone.  So, whatever the
 * speed of the clients, relayd holds per connection at most CONN_WINDOW
 * of frames on their way, the frames of one read past it (READ_CHUNK
 * bytes), the frame being read, whose memory grows with its bytes
 * received and not with its length prefix (framer.c), and its struct
 * conn; in all at most --max-memory of frames; and per subscriber
 * --sub-buffer: the fanout never waits for a subscriber, and drops one
 * that falls that far behind.  relayd(8) gives the figures.
 *
 * Hostile clients.  A connection must send a message (the hello, or a
 * frame) at least every --idle-timeout seconds, and each message must
 * arrive whole within --frame-timeout seconds of its first byte; the conn
 * checks both on a timer and closes the connection after an error
 * message.  At most --max-conns connections at once, --max-per-addr from
 * one address: past either, the listener accepts the client, writes a
 * refusal and closes, and serves everyone else.  relayd raises its
 * descriptor limit to the hard limit and keeps --max-conns below it; if
 * descriptors run out all the same (the subscribers have them), a spare
 * one kept for the purpose lets the listener refuse the client cleanly
 * instead of spinning on accept.  The threads are a fixed few, so no
 * client ever needs one.
 *
 * Bad input.  A frame longer than FRAME_MAX, a sequence number that does
 * not grow, or a hello that is not one, ends the connection with an error
 * message; the frames before it have gone up already.
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
 * the inbox, and no ack goes out.  Memory stays bounded by the credit:
 * while the store is down every connection stops being read once
 * CONN_WINDOW of its bytes wait.  More than STORE_RESTART_MAX restarts
 * in STORE_RESTART_PERIOD seconds and the master gives up (escalation):
 * relayd stops as after a failed worker, drains nothing into the
 * database, says how many frames it read are not committed, and exits
 * 1; their clients have no ack for them.
 *
 * Stopping.  SIGINT and SIGTERM reach the master as SIGNAL events
 * (worker_signals(), with both in the notify set); the master exits, and
 * the library ends its children as structured lifetimes do: the newest
 * first, each ended before the next, each given its stop_timeout.  So
 * first the listener: it closes its socket, and its conns are stopped all
 * at once (attr.stop_order); each drops the partial frames, closes its
 * connections and ends.  A conn stuck past CONN_STOP_TIMEOUT is left
 * behind with what it holds.  Every frame bubbled is in the master's
 * queue before the listener ends, and the master handles them before it
 * stops the next child; it hands the fanout its backlog, and the fanout's
 * stop gives the subscribers FLUSH_TIME to take the last frames.  Last the
 * store, whose stop commits its whole inbox; a store waiting for its
 * restart is started at once for that.  It has no stop_timeout: it holds
 * the frames, and each of its attempts ends within the busy timeout.
 * Every frame that relayd had read from a socket when the signal came is
 * in the database, unless the database fails then, and then the log says
 * how many are not.  The acks of the last commits find the connections
 * closed: the clients send those frames again to the next relayd, which
 * keeps them once.  Another signal meanwhile is only logged: a supervisor
 * or a terminal may well send two, and the stop ends by itself.
 *
 * Test hook.  RELAYD_FAIL_WRITES=N[,K] in the environment makes the store
 * fail its Nth insert and the K-1 after it (1 by default), counted from
 * 1 over the whole process, as a database error would; test/relay_test.sh
 * uses it where it cannot fill a disk.
 */
#ifndef RELAYD_H
#define RELAYD_H

#include <netinet/in.h>
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
#define READ_CHUNK	(64 * 1024)	/* bytes a conn reads at once */
#define RETRY_DELAY	0.001		/* seconds before a refused fire is
					 * tried again */
#define ACK_TICK	0.001		/* s between looks at the credits */
#define ACK_TICK_MAX	0.064		/* ... while nothing moves */
#define ACK_QUIET	50		/* ticks without a move before the
					 * tick backs off */
#define ACK_TICK_CONNS	1000		/* busy connections per ACK_TICK */

/* Supervision of the store by the master (see "The store is supervised"). */
#define STORE_RESTART_DELAY	0.1	/* s before the first restart */
#define STORE_RESTART_MAX	10	/* restarts in STORE_RESTART_PERIOD */
#define STORE_RESTART_PERIOD	60.0	/* s: then the master gives up */
#define STORE_BUSY_MS		1000	/* ms a write waits for a lock held
					 * by another process: then the store
					 * fails, and the backoff takes over */

/* stop_timeout of each kind of worker, in seconds (see "Stopping"). */
#define CONN_STOP_TIMEOUT	5.0	/* a conn closing its connections */
#define LISTENER_STOP_TIMEOUT	10.0	/* more than its conns' */
#define FLUSH_TIME		1.0	/* the fanout's subscribers, to take
					 * the last frames */
#define FANOUT_STOP_TIMEOUT	3.0	/* more than FLUSH_TIME */

/* Supervision of the conns by the listener: a conn that fails (no
 * memory, say) loses its connections, whose clients come back. */
#define CONN_RESTART_MAX	10
#define CONN_RESTART_PERIOD	60.0

struct limits;

/*
 * relayd's memory for frames, against --max-memory, half for each kind:
 * complete frames on their way to the store and the fanout (flight: past
 * the half, the conns stop reading, as when a connection is out of
 * credit), and frames being read (partial: past the half, a frame that
 * would grow is refused, and its connection closed with ERR_NOMEM).  So
 * however many clients send, and whatever they announce, relayd's frames
 * stay within it.  Shared by every thread: atomics.
 */
struct budget {
	atomic_size_t flight;
	atomic_size_t partial;
	size_t half;		/* --max-memory / 2 */
};

/* Room left for complete frames: the conns may read. */
bool budget_open(struct budget *b);
/* n bytes more for a frame being read; false, and nothing taken, if they
 * would pass the half. */
bool budget_partial_take(struct budget *b, size_t n);
void budget_partial_give(struct budget *b, size_t n);

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
	unsigned conn_workers;	/* conns under the listener */
	double idle_timeout;	/* s without a message: closed */
	double frame_timeout;	/* s for a message to arrive whole */
	uint64_t first_conn;	/* store: the first free connection number */
	struct inbox *inbox;	/* the store's, owned by the master */
	struct limits *limits;	/* main's: the listener takes, conns give */
	struct budget budget;	/* --max-memory */

	uint64_t conns;		/* listener: connections accepted */
	uint64_t refused;	/* listener: connections refused */
	uint64_t rows;		/* store: frames committed, all runs */
	uint64_t dups;		/* store: of which already stored */
	uint64_t dropped;	/* fanout: subscribers dropped as too slow */
	bool failed;		/* master: a worker failed */
};

/* -v (main.c): read by every thread, set before any of them exists. */
extern bool verbose;

/*
 * Frames completed by all the framers (framer.c).  After an orderly stop
 * it equals the frames committed, which is the promise of the drain:
 * tests compare the two in the last line of the log.
 */
extern atomic_uint_least64_t frames_read;

/* A line "relayd: ..." on standard error (main.c). */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Adds a transient listener to the calling worker (main.c). */
void listen_self(const char *name, worker_listener_fn fn, void *ctx);

/* ---- Credit and frames (frame.c) ------------------------------------- */

/*
 * A connection's credit: bytes of its frames on their way from its framer
 * to the store and the fanout, and the acks they earn.  Its conn and each
 * of its frames hold a reference, so it outlives whichever goes last.
 */
struct credit {
	atomic_uint refs;
	atomic_size_t used;
	/* Store: 1 + the highest sequence committed; 0 before the first. */
	atomic_uint_least64_t committed;
	/* A frame of the connection will never be committed (no memory):
	 * set before any later frame of it can be, and then no ack may go
	 * out, since an ack covers every frame before it. */
	atomic_bool lost;
	uint64_t conn;		/* the connection's number */
	struct budget *budget;	/* relayd's, charged with used as well */
};

struct credit *credit_new(uint64_t conn, struct budget *budget);
/* Charges a complete frame of len bytes to cr and the budget. */
void credit_charge(struct credit *cr, uint32_t len);
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
	uint64_t seq;		/* its client's sequence number */
	int64_t received_us;	/* when its last byte was read */
	unsigned char client[CLIENT_ID_LEN];
	uint32_t len;
	unsigned char head[4];	/* the length prefix, for the subscribers */
	unsigned char data[];
};

/* A frame of len bytes.  frame_start() makes room for cap of them only,
 * cap <= len, and frame_grow() more, as the bytes come; NULL without
 * memory (frame_grow() then leaves f as it was). */
struct frame *frame_new(uint32_t len);
struct frame *frame_start(uint32_t len, uint32_t cap);
struct frame *frame_grow(struct frame *f, uint32_t cap);
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
/* The first n frames, v as inbox_peek() gave them, are committed: each
 * acknowledged to its connection's credit, paid, and dropped. */
void inbox_done(struct inbox *in, struct frame **v, size_t n);
size_t inbox_len(struct inbox *in);
void inbox_fini(struct inbox *in);

/* ---- A connection's framer (framer.c) -------------------------------- */

#define UP_MAX		256	/* frames in a batch on the way up */

/*
 * Frames on their way up from a conn to the master, as the data of one
 * "batch" event: an event per frame would cost each worker on the way a
 * dispatch per frame.  The library frees it with batch_up(), once every
 * ancestor has handled it, which pays each frame's way up.
 */
struct batch {
	size_t n;
	struct frame *v[UP_MAX];
};

/* A conn's batch being filled, which all its framers share. */
struct uplink {
	struct batch *b;	/* or NULL */
};

/* Adds a complete frame with its reference; sends the batch up once it
 * is full.  False if the frame was lost (the tree refused it). */
bool uplink_add(struct uplink *up, struct frame *f);
/* Sends up what the batch holds. */
void uplink_flush(struct uplink *up);

/*
 * The hello and the frames of one connection, rebuilt from its bytes,
 * which may split them anywhere.  Its conn's, and touched by it only.
 */
struct framer {
	struct uplink *up;	/* its conn's */
	struct credit *credit;	/* the connection's; the conn's reference */
	uint64_t conn;
	bool hello;		/* the hello has come */
	bool any;		/* a frame has come: last is its number */
	uint64_t last;
	unsigned char client[CLIENT_ID_LEN];
	unsigned char head[HELLO_LEN];	/* the hello or a frame's header */
	size_t head_len;	/* bytes of head read */
	struct frame *cur;	/* the frame being filled, not yet fired */
	uint32_t got;		/* bytes of cur filled */
	uint32_t cap;		/* bytes of cur allocated */
};

void framer_init(struct framer *fr, struct credit *cr, struct uplink *up);
/*
 * Takes n bytes of p: 0, or on bad input an ERR_* code, with its value
 * in *val (wire.h), and then the connection must end.
 */
int framer_take(struct framer *fr, const unsigned char *p, size_t n,
    uint64_t *val);
/* In the middle of a message: some of its bytes have come. */
bool framer_partial(const struct framer *fr);
/* 1 + the number of the last frame bubbled; 0 before the first. */
uint64_t framer_sent(const struct framer *fr);
/* The end of the bytes: drops what is left of a message, and logs it
 * with why unless why is NULL. */
void framer_end(struct framer *fr, const char *why);

/* ---- Limits on connections (limits.c) -------------------------------- */

/*
 * How many connections are open, in all and per address.  The listener
 * takes a place for each client it accepts; the conn that closes the
 * connection gives it back.  Under lock: several threads share it.
 */
struct limits {
	pthread_mutex_t lock;
	size_t max;		/* --max-conns */
	size_t per_addr;	/* --max-per-addr */
	size_t open;		/* connections open */
	struct addr_count *v;	/* open addressing, linear probing */
	size_t cap;		/* a power of two, >= 2 * max */
};

/* 0, or ENOMEM. */
int limits_init(struct limits *l, size_t max, size_t per_addr);
void limits_fini(struct limits *l);
/* A place for a client from addr: 0, or the REFUSE_* code (wire.h). */
int limits_take(struct limits *l, struct in_addr addr);
void limits_give(struct limits *l, struct in_addr addr);

/* ---- Accepting, for the listener and the fanout (acceptor.c) --------- */

/*
 * A listening socket in a worker's loop; take() gets each new socket.
 * With refuse(), the acceptor keeps a spare descriptor, and when it runs
 * out of them, accepts a client with the spare and hands it to refuse()
 * to be turned away; without, it stops accepting for a moment.
 */
struct acceptor {
	const char *what;	/* "client" or "subscriber", for the log */
	worker_t *self;
	int fd;
	uint64_t watch;
	uint64_t retry;		/* accepting again after an error */
	void (*take)(int fd, void *ctx);
	void *ctx;
	void (*refuse)(int fd, void *ctx);	/* or NULL */
	int spare;		/* with refuse(): /dev/null, or -1 */
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
/* A conn (conn.c), a child of the listener; arg is the struct relay. */
void *conn_task(void *arg);

/*
 * What the listener hands a conn in a "client" event: a new connection,
 * with its place in the limits.  Whoever ends up with it closes it and
 * gives its place back; handoff_free() does both for one never taken.
 */
struct handoff {
	int fd;
	struct in_addr addr;
	uint64_t id;		/* the connection's number */
	struct limits *limits;
};

void handoff_free(void *p);

#endif
