/*
 * load.h - what relay-load's files share: the run's options and results,
 * the payloads, and the entry points of each concern.
 *
 * A run opens client connections to relayd and sends frames with random
 * payloads, cut into packets at random places (clients.c).  With
 * --sub-port it subscribes first, and checks that the subscriber sees
 * every frame, in order and intact (subscribers.c).  It can add clients
 * that misbehave (--oversize, --cut) and a subscriber that never reads
 * (--slow-sub), which relayd must drop.  It prints the rate, and with
 * --record writes what it sent (run.c).
 *
 * The run is a closed loop: with a subscriber, the senders stay at most
 * --window bytes ahead of what it has checked.  One thread that checks
 * everything cannot keep up with many that send, on few CPUs, and relayd
 * rightly drops a subscriber that falls --sub-buffer bytes behind; a
 * window below that, less 16 KiB (a piece) per sender, keeps ours in
 * step, so the rate printed is that of frames relayed and checked.
 *
 * A check (--verify, verify.c) reads relayd's database once relayd has
 * stopped, and compares it with the record: exactly the frames sent, each
 * once, each in its place, each payload byte for byte (--partial: relayd
 * was stopped in the middle, so each client's rows may stop short of what
 * it sent, but must be a prefix of it).
 *
 * A payload is a function of (seed, client, index) (payload.c): its first
 * 8 bytes are the client's number and the frame's index, big-endian, and
 * its length and the rest come from a generator seeded with the three.
 * So every check regenerates the payload it expects, and a record holds
 * only the seed, the sizes and how many frames each client sent
 * completely.
 *
 * The workers: "sender-N" runs clients one after the other on blocking
 * sockets (it only writes); "subscriber" reads in its loop through
 * worker_watch(); "slow" subscribes and then reads nothing until the end.
 * They are children of main's root worker, which waits for each with
 * worker_wait_thread() and hears of their start and end.
 */
#ifndef RELAY_LOAD_H
#define RELAY_LOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../wire.h"
#include "worker.h"

#define IO_TIMEOUT	30		/* seconds a socket call may block */

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
	uint64_t frames;	/* per client; UINT64_MAX with a duration */
	double duration;
	uint32_t min_size;
	uint32_t max_size;
	size_t parallel;
	bool slow_sub;
	bool tolerate;
	uint64_t seed;
	double timeout;
	const char *record;
	const char *db;
	bool verify;
	bool partial;

	uint64_t window;	/* bytes senders may be ahead; 0: no limit */

	uint64_t deadline_ns;	/* with a duration: when to stop sending */
	uint64_t *sent;		/* frames each client sent completely */
	uint64_t expect;	/* main, before "expect": frames sent */
	atomic_uint_least64_t written;	/* senders: bytes of frames sent */
	atomic_uint_least64_t checked;	/* subscriber: bytes of frames seen */
	atomic_bool sub_gone;	/* the subscriber's connection is closed */
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

/* ---- Clients (clients.c) --------------------------------------------- */

/* A connected blocking socket to 127.0.0.1:port, or -1 with errno. */
int connect_to(int port, int rcvbuf);

#define RING		4096		/* frames a sender has in hand */

/*
 * The bytes a client has in hand: whole frames appended at the back, sent
 * from the front in pieces of random length, so that a piece may end
 * anywhere in a frame or span several.  ends[] holds where each frame in
 * hand ends, in bytes since the connection began.
 */
struct stream {
	unsigned char *buf;
	size_t cap;
	size_t off;		/* bytes of buf sent */
	size_t len;		/* bytes in buf */
	uint64_t sent;		/* bytes sent since the connection began */
	uint64_t ends[RING];
	size_t head;
	size_t count;
};

/* A sender: run() allocates it zeroed and sets ld and first. */
struct sender {
	struct load *ld;
	size_t first;		/* its clients: first, first + parallel... */
	unsigned char *payload;	/* room for the longest payload */
	struct stream st;
};

/* The task of a sender; arg is its struct sender. */
void *sender_task(void *arg);

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

/* ---- The two things relay-load does (run.c, verify.c) ---------------- */

/* Each returns the exit status: 0 if every check passed, else 1. */
int run(struct load *ld);
int verify(struct load *ld);

#endif
