/*
 * fuzz.h - the operation-sequence fuzzer of libworker (see README).
 *
 * fuzz.c is an interpreter: the bytes of an input choose operations on
 * the whole public API and their arguments, over a fixed set of slots.
 * Three driver threads each run a third of the input, and the workers'
 * tasks, listeners, timers and descriptor callbacks run sub-programs
 * taken from the same bytes.  When the drivers are done, everything is
 * stopped and joined and the invariants are checked.  A broken invariant,
 * or an input that runs for longer than the watchdog allows, prints what
 * happened and aborts, so that libFuzzer, the seed runner and the
 * failure-injection sweep all see a crash.
 *
 * run.c (fuzz-run), libfuzzer.c and fail.c (fuzz-fail) are the three
 * programs built from it.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Operations that trigger a known defect can be kept out while it is
 * being fixed (FUZZ_AVOID=name,name...); the default avoids nothing. */
enum {
	FUZZ_AVOID_STOP_LISTENER_WAIT = 1 << 0,	/* L3 */
	FUZZ_AVOID_WATCH_WAIT = 1 << 1,		/* L4 */
	FUZZ_AVOID_EXPLICIT_PARENT = 1 << 2,	/* L2 */
	FUZZ_AVOID_OVERLAY = 1 << 3,		/* L5 */
	FUZZ_AVOID_REMOTE_UNWATCH = 1 << 4,	/* L8 */
	FUZZ_AVOID_HUGE_INTERVAL = 1 << 5,	/* L9 */
	FUZZ_AVOID_BAD_FD = 1 << 6,		/* L10 */
	FUZZ_AVOID_CLEANUP_PUSH = 1 << 7,	/* L7 */
	FUZZ_AVOID_TIMER_REENTER = 1 << 8,
	FUZZ_AVOID_END_CLEANUP = 1 << 9,	/* N1 */
	FUZZ_AVOID_PAUSE = 1 << 10,		/* N2 */
	FUZZ_AVOID_RESTART = 1 << 11		/* L5, without an overlay */
};

/* Reads FUZZ_AVOID, FUZZ_TIMEOUT and FUZZ_VERBOSE; 0, or -1 after a
 * message on stderr for an unknown name. */
int fuzz_init(void);

/* Runs one input with three drivers and checks the invariants; returns
 * only if they hold. */
void fuzz_one(const uint8_t *data, size_t size);

/* The same with ndrivers driver threads (1 to 3). */
void fuzz_one_drivers(const uint8_t *data, size_t size, int ndrivers);

/* What the watchdog and the failure messages name as the input. */
void fuzz_set_label(const char *label);

/* Fills buf with the pseudo-random input of seed; returns its length. */
size_t fuzz_gen(uint64_t seed, uint8_t *buf, size_t cap);

/* Writes what the inputs so far exercised: operations, listener calls by
 * event, callbacks (FUZZ_STATS=1 in fuzz-run). */
void fuzz_stats(FILE *out);

/* The longest input fuzz_gen() makes, and the longest one worth running. */
#define FUZZ_GEN_MAX 600
#define FUZZ_INPUT_MAX 4096

/* The operations, for programs that write inputs by hand (fail.c). */
enum fuzz_op {
	OP_NEW, OP_CREATE, OP_START, OP_STOP, OP_PAUSE, OP_RESUME, OP_JOIN,
	OP_WAIT_THREAD, OP_FIRE, OP_FIRE_EX, OP_BUBBLE, OP_BROADCAST,
	OP_PARENT_FIRE, OP_CHILDREN_FIRE, OP_PUB, OP_PUB_EX, OP_SUB,
	OP_UNSUB, OP_LISTEN, OP_UNLISTEN, OP_LATER, OP_EVERY, OP_CANCEL,
	OP_WAIT_EVENT, OP_WAIT_UNTIL, OP_SLEEP, OP_UPDATE, OP_WAIT_FOREVER,
	OP_WATCH, OP_UNWATCH, OP_PIPE_WRITE, OP_DEFER_SETTLE, OP_DEFER_GET,
	OP_DEFER_RENEW, OP_DEFER_PRIVATE, OP_CLEANUP_PUSH, OP_CLEANUP_POP,
	OP_EXIT, OP_FAIL, OP_RETURN, OP_OVERLAY, OP_ASYNC, OP_ASYNC_GET,
	OP_AWAIT, OP_UNREF, OP_INSPECT, OP_BADARGS, OP_FIRE_ROOT,
	OP_STOP_ROOT, OP_NOP, OP_COUNT
};

/* A byte that the interpreter reads as operation op, and op's name. */
uint8_t fuzz_op_byte(enum fuzz_op op);
const char *fuzz_op_name(enum fuzz_op op);

/*
 * Failure injection (fail.c): fuzz.c calls fuzz_alloc_hook(1) once the
 * input's own set-up is done and fuzz_alloc_hook(0) before it stops
 * everything, and brackets its bookkeeping calls into the library with
 * fuzz_nofail_hook(1) and (0), so that only the operations under test
 * see allocations fail.  Both are NULL outside fuzz-fail.
 */
extern void (*fuzz_alloc_hook)(int on);
extern void (*fuzz_nofail_hook)(int on);

#endif /* FUZZ_H */
