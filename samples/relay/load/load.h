/*
 * load.h - what relay-load's files share: the run's options and results,
 * the payloads, and the entry points of each concern.
 *
 * A run opens client connections to relayd and sends numbered frames
 * with random payloads (clients.c), as fast as relayd takes them or at
 * --rate frames a second each.  Each client keeps every frame until
 * relayd acknowledges it; when a connection ends, it connects again
 * after a growing delay and sends again what was not acknowledged, so a
 * relayd killed and started again on the same database ends up with
 * every frame once.  With --sub-port it subscribes first, and checks that
 * the subscriber sees every frame, in order and intact (subscribers.c).
 * It can add clients that misbehave (--oversize, --cut) and a subscriber
 * that never reads (--slow-sub), which relayd must drop.  With --db it
 * reads relayd's database at the end and prints the verdict (verify.c):
 *
 *	sent: N, acked: N, stored: N, lost: 0, duplicated: 0
 *
 * --hostile (hostile.c) opens connections that only hold relayd's
 * resources (silent ones, slow ones, half frames) and reports how relayd
 * treated them.
 *
 * The run is a closed loop: with a subscriber, the senders stay at most
 * --window bytes ahead of what it has checked.  One thread that checks
 * everything cannot keep up with many that send, on few CPUs, and relayd
 * rightly drops a subscriber that falls --sub-buffer bytes behind.
 *
 * A payload is a function of (seed, client, index) (payload.c): its first
 * 8 bytes are the client's number and the frame's index, big-endian, and
 * its length and the rest come from a generator seeded with the three.
 * A frame's sequence number is its index.  So a client keeps an
 * unacknowledged frame as its index alone, every check regenerates the
 * payload it expects, and a record holds only the seed, the sizes and
 * how many frames each client sent and had acknowledged.  A client's id
 * is the run's id (8 random bytes, or --run-id) and its number.
 *
 * The workers: "sender-N" serves its share of the clients from an epoll
 * descriptor in its loop; "subscriber" reads in its loop through
 * worker_watch(); "slow" subscribes and then reads nothing until the end.
 * They are children of main's root worker, which waits for each with
 * worker_wait_thread() and hears of their start and end.
 */
#ifndef RELAY_LOAD_H
#define RELAY_LOAD_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../wire.h"
#include "worker.h"

#define IO_TIMEOUT	30		/* seconds a socket call may block */

/* What --hostile opens. */
enum { HOSTILE_NONE, HOSTILE_IDLE, HOSTILE_SLOWLORIS, HOSTILE_PARTIAL };

/*
 * The run: options, set before any worker starts, and what each client
 * sent, written by its sender only and read by main after the senders
 * ended.
 */
struct load {
	int port;
	int sub_port;		/* 0: no subscriber */
	size_t subscribers;	/* with sub_port: how many (0: 1) */
	size_t clients;		/* good ones */
	size_t oversize;
	size_t cut;
	size_t n;		/* all clients */
	uint64_t frames;	/* per client; UINT32_MAX with a duration */
	double duration;
	double rate;		/* frames a second per client; 0: no limit */
	uint32_t min_size;
	uint32_t max_size;
	size_t parallel;	/* clients connected at once */
	size_t threads;		/* senders */
	uint64_t in_flight;	/* frames a client may have unacknowledged */
	bool split;		/* write in pieces of random length */
	bool slow_sub;
	bool tolerate;
	uint64_t seed;
	uint64_t run_id;	/* the first half of every client id */
	double timeout;
	const char *record;
	const char *db;
	bool verify;
	bool partial;
	struct in_addr bind;	/* the connections' source, or any */
	int hostile;		/* HOSTILE_* */
	size_t hostile_n;
	uint32_t partial_bytes;	/* of a HOSTILE_PARTIAL frame's payload */
	double hold;		/* s a hostile connection waits at most */

	uint64_t window;	/* bytes senders may be ahead; 0: no limit */

	uint64_t start_ns;
	uint64_t deadline_ns;	/* with a duration: when to stop making */
	uint64_t *sent;		/* frames each client sent completely */
	uint64_t *acked;	/* frames each client had acknowledged */
	uint64_t expect;	/* main, before "expect": frames sent */
	atomic_uint_least64_t written;	/* senders: bytes of frames sent */
	atomic_uint_least64_t checked;	/* subscriber: bytes of frames seen */
	atomic_bool sub_gone;	/* the subscriber's connection is closed */
	/* Senders: what happened to the connections, for the report. */
	atomic_uint_least64_t connects;
	atomic_uint_least64_t refusals;
	atomic_uint_least64_t errors;
	atomic_uint_least64_t unfinished;	/* clients given up on */
};

/* A line "relay-load: ..." on standard error (main.c). */
void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Counts a problem in *count and prints "WHO: PROBLEM" for the first few
 * only, so that a run gone wrong names its first problems and does not
 * bury them (main.c).
 */
void vproblem(uint64_t *count, const char *who, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));
/* The monotonic clock in nanoseconds, for rates and deadlines (main.c). */
uint64_t now_ns(void);

/* ---- Payloads (payload.c) -------------------------------------------- */

uint64_t next_rand(uint64_t *state);
uint64_t seed_of(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t salt);
uint32_t payload_len(const struct load *ld, uint32_t client, uint32_t index,
    uint64_t *s);
uint32_t make_payload(const struct load *ld, uint32_t client,
    uint32_t index, unsigned char *buf);
/* The hello of a client (HELLO_LEN bytes) into p. */
void make_hello(const struct load *ld, uint32_t client, unsigned char *p);

/* ---- Clients (clients.c, hostile.c) ---------------------------------- */

/* A connected blocking socket to 127.0.0.1:port, or -1 with errno. */
int connect_to(int port, int rcvbuf);
/* A socket to 127.0.0.1:port from ld->bind, connecting without waiting:
 * connected, or in progress (*done false); -1 with errno. */
int connect_start(const struct load *ld, bool *done);

/* A sender: run() allocates it zeroed and sets ld and first. */
struct sender;
struct sender *sender_new(struct load *ld, size_t first);
void sender_free(struct sender *sd);
/* The task of a sender; arg is its struct sender. */
void *sender_task(void *arg);

/* --hostile: opens the connections and reports; the exit status. */
int hostile(struct load *ld);

/* ---- Subscribers (subscribers.c) ------------------------------------- */

/* A subscriber's state; run() owns it, its worker uses it meanwhile. */
struct subscriber;

/* A new subscriber's state, or NULL without memory; sub_free() frees. */
struct subscriber *sub_new(struct load *ld);
void sub_free(struct subscriber *s);
/* Starts "subscriber", or with slow "slow", and waits until it has
 * subscribed; NULL if it did not. */
worker_t *start_sub(struct subscriber *s, bool slow);
/* The verdicts, printed once the worker has ended; true if good. */
bool sub_report(const struct load *ld, const struct subscriber *s,
    uint64_t total, double secs);
bool slow_report(const struct subscriber *s);

/* ---- The things relay-load does (run.c, verify.c) -------------------- */

/* Each returns the exit status: 0 if every check passed, else 1. */
int run(struct load *ld);
int verify(struct load *ld);
/* The check of the database after a run: prints the verdict line; 0 if
 * good, else 1. */
int check_db(struct load *ld);
/* Writes the record of a run; false after a complaint. */
bool write_record(const struct load *ld);

#endif
