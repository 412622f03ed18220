/*
 * util.c - the helpers of util.h, shared by every test file.
 *
 * The bounded waits measure their deadlines on CLOCK_REALTIME because
 * sem_timedwait() takes one; everything that measures elapsed time uses
 * CLOCK_MONOTONIC.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "test.h"

/* ---- Time ----------------------------------------------------------- */

double
multiplier(void)
{
	const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
	double m = s != NULL ? atof(s) : 1.0;

	return m >= 1.0 ? m : 1.0;
}

double
wait_limit(void)
{
	return TEST_TIMEOUT / 2.0 * multiplier();
}

double
time_slack(void)
{
	const char *s = getenv("TEST_TIME_SLACK");

	if (s != NULL && atof(s) > 0)
		return atof(s);
	return 0.25 * multiplier();
}

double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
clock_eps(void)
{
	struct timespec res;
	double r = 0;

	if (clock_getres(CLOCK_MONOTONIC, &res) == 0)
		r = (double)res.tv_sec + (double)res.tv_nsec / 1e9;
	return r > 1e-6 ? r : 1e-6;
}

void
nap(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void
assert_on_time(double elapsed, double want, double eps)
{
	ck_assert_msg(elapsed >= want - eps, "came early: %.6f s < %.6f s",
	    elapsed, want);
	ck_assert_msg(elapsed < want + time_slack(),
	    "came late: %.6f s, want %.3f s (+%.3f s slack; set "
	    "TEST_TIME_SLACK to widen)", elapsed, want, time_slack());
}

/* ---- Semaphores ----------------------------------------------------- */

/* sem_timedwait() for at most wait_limit(): 0, or -1 with errno set. */
static int
sem_wait_limited(sem_t *s)
{
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)wait_limit();
	while ((rc = sem_timedwait(s, &ts)) == -1 && errno == EINTR)
		;
	return rc;
}

void
sem_wait_ok(sem_t *s, const char *what)
{
	int err = sem_wait_limited(s) == 0 ? 0 : errno;

	ck_assert_msg(err == 0, "waiting for %s: %s", what, strerror(err));
}

int
sem_wait_bounded(sem_t *s)
{
	return sem_wait_limited(s) == 0 ? 0 : ETIMEDOUT;
}

void
sem_wait_intr(sem_t *s)
{
	while (sem_wait(s) == -1 && errno == EINTR)
		;
}

/* ---- Listeners and callbacks ---------------------------------------- */

int
on_post(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	sem_post(ctx);
	return 0;
}

int
on_count(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add((atomic_int *)ctx, 1);
	return 0;
}

void
post_cb(void *sem)
{
	sem_post(sem);
}

void
fire_cb(void *name)
{
	worker_fire(worker_current(), name, NULL);
}

void
count_cb(void *counter)
{
	atomic_fetch_add((atomic_int *)counter, 1);
}

/* ---- Workers -------------------------------------------------------- */

worker_t *
idle_new(const char *name, worker_t *parent, sem_t *fence_sem)
{
	worker_attr_t attr = { .name = name, .parent = parent };
	worker_t *w = worker_new(NULL, NULL, &attr);

	ck_assert_msg(w != NULL, "worker_new(%s): %s", name, strerror(errno));
	if (fence_sem != NULL)
		CHECK_OK(worker_listen(w, "FENCE", on_post, fence_sem, NULL));
	return w;
}

void
fence(worker_t *w, sem_t *fence_sem)
{
	CHECK_OK(worker_fire(w, "FENCE", NULL));
	sem_wait_ok(fence_sem, "the fence");
}

void
stop_join(worker_t *w)
{
	CHECK_OK(worker_stop(w));
	CHECK_OK(worker_join(w));
}

void
stop_join_unref(worker_t *w)
{
	stop_join(w);
	worker_unref(w);
}

struct joiner {
	worker_t *w;
	int rc;
	sem_t done;
};

static void *
joiner_main(void *arg)
{
	struct joiner *j = arg;

	j->rc = worker_join(j->w);
	sem_post(&j->done);
	return NULL;
}

void
join_bounded(worker_t *w, const char *what)
{
	/* On the heap: a helper that hangs must not outlive its frame. */
	struct joiner *j = calloc(1, sizeof(*j));
	pthread_t th;

	ck_assert_ptr_nonnull(j);
	j->w = w;
	ck_assert_int_eq(sem_init(&j->done, 0, 0), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, joiner_main, j), 0);
	sem_wait_ok(&j->done, what);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	CHECK_OK(j->rc);
	sem_destroy(&j->done);
	free(j);
}

static void *
host_task(void *arg)
{
	struct host *h = arg;

	h->thread = pthread_self();
	sem_post(&h->ready);
	worker_wait_forever();
	return NULL;
}

worker_t *
host_new(struct host *h, const worker_attr_t *attr)
{
	worker_t *w;

	ck_assert_int_eq(sem_init(&h->ready, 0, 0), 0);
	w = worker_create(host_task, h, attr);
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&h->ready, "the host worker");
	return w;
}

void
host_free(worker_t *w, struct host *h)
{
	worker_unref(w);
	sem_destroy(&h->ready);
}

void
expect_no_child(const worker_t *parent, const char *name, int want)
{
	worker_t *found;
	int err;

	errno = 0;
	found = worker_find_child(parent, name);
	err = errno;
	ck_assert_msg(found == NULL, "worker_find_child(%s) found a child",
	    name != NULL ? name : "NULL");
	ck_assert_msg(err == want, "worker_find_child(%s): errno %d (%s), "
	    "want %d (%s)", name != NULL ? name : "NULL", err, strerror(err),
	    want, strerror(want));
}
