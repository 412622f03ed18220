/*
 * util.h - helpers that the test files share: bounded waits, clocks and
 * the tolerances of timed tests, listeners and callbacks that count or
 * post, and small workers for a test to fire at.  test.h includes it.
 *
 * Only the test's own thread may call what asserts; sem_wait_bounded()
 * and sem_wait_intr() are for the other threads.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <pthread.h>
#include <semaphore.h>

#include "worker.h"

/* ---- Time ----------------------------------------------------------- */

/* CK_TIMEOUT_MULTIPLIER, at least 1: valgrind and the sanitizers slow
 * everything down, and Check scales its timeout by it, so we scale our
 * own bounds alike. */
double multiplier(void);

/* A bound for one step, well under Check's timeout, so that a hang is
 * reported as the step that hung rather than as a timeout. */
double wait_limit(void);

/* How late a timed wait or a timer may come: TEST_TIME_SLACK seconds if
 * set, otherwise a quarter second scaled like Check's timeout. */
double time_slack(void);

/* CLOCK_MONOTONIC in seconds. */
double now(void);

/* The resolution of now(), at least 1 us for the rounding of doubles to
 * nanoseconds. */
double clock_eps(void);

/* Lets time pass where time itself is what is tested; never used to
 * order steps. */
void nap(double seconds);

/* Asserts that elapsed is never early (eps forgives clock rounding) and
 * at most time_slack() late. */
void assert_on_time(double elapsed, double want, double eps);

/* ---- Semaphores ----------------------------------------------------- */

/* Waits for s in the test's own thread, failing with what was awaited
 * rather than running into Check's timeout when nobody posts it. */
void sem_wait_ok(sem_t *s, const char *what);

/* The same for threads other than the test's, which must not assert:
 * 0, or ETIMEDOUT after wait_limit(). */
int sem_wait_bounded(sem_t *s);

/* An unbounded wait for threads other than the test's; a hang is caught
 * by the TCase timeout. */
void sem_wait_intr(sem_t *s);

/* ---- Listeners and callbacks ---------------------------------------- */

/* A listener that posts the sem_t *ctx. */
int on_post(const worker_event_t *ev, void *ctx);

/* A listener that adds one to the atomic_int *ctx. */
int on_count(const worker_event_t *ev, void *ctx);

/* A timer callback that posts the sem_t *sem. */
void post_cb(void *sem);

/* A timer callback that fires the event named name at the worker that
 * runs it, so that a root worker can wait for the timer. */
void fire_cb(void *name);

/* Adds one to the atomic_int *counter: a cleanup handler, timer
 * callback or data_free that counts its calls. */
void count_cb(void *counter);

/* ---- Workers -------------------------------------------------------- */

/* A stopped idle worker (its task is worker_wait_forever()), so that
 * listeners can be added before it starts; with fence_sem, it has the
 * FENCE listener that fence() needs. */
worker_t *idle_new(const char *name, worker_t *parent, sem_t *fence_sem);

/* Waits until w has handled everything fired at it before this call. */
void fence(worker_t *w, sem_t *fence_sem);

void stop_join(worker_t *w);
void stop_join_unref(worker_t *w);

/* worker_join(w) on a helper thread, failing with what was awaited if it
 * has not returned within wait_limit(): a join that hangs is reported as
 * the step that hung.  The hung helper is left behind; the test's process
 * ends with the failure. */
void join_bounded(worker_t *w, const char *what);

/* A started worker that only waits, to run timers and the like on. */
struct host {
	pthread_t thread;	/* the worker's thread, set before ready */
	sem_t ready;		/* posted by the task each time it starts */
};

/* Creates the host with attr (NULL: the defaults) and returns once its
 * task runs. */
worker_t *host_new(struct host *h, const worker_attr_t *attr);

/* Drops the test's reference to a host that has ended. */
void host_free(worker_t *w, struct host *h);

/* Asserts that worker_find_child(parent, name) finds nothing and sets
 * errno to want. */
void expect_no_child(const worker_t *parent, const char *name, int want);

#endif
