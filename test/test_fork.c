/*
 * test_fork.c - fork() with workers running (fork.c): in the child, the
 * parent's workers are gone and every call on them answers ESRCH without
 * hanging; the forking thread gets a new root and may make new workers.
 *
 * Each child runs under alarm(): a call that hangs kills it, and the
 * parent sees a signal instead of exit status 0.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

/* Seconds a child may take before alarm() kills it. */
#define CHILD_LIMIT 20

static int
on_nothing(const worker_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static void
nothing_cb(void *arg)
{
	(void)arg;
}

static void
fd_cb(int fd, unsigned revents, void *ctx)
{
	(void)fd;
	(void)revents;
	(void)ctx;
}

/* Waits for the child pid; fails the test unless it exited with 0. */
static void
expect_child_ok(pid_t pid, const char *what)
{
	int status;

	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "%s: the child was killed by "
	    "signal %d (a hang ends with SIGALRM %d)", what,
	    WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGALRM);
	ck_assert_msg(WEXITSTATUS(status) == 0, "%s: the child failed "
	    "check %d", what, WEXITSTATUS(status));
}

/*
 * ThreadSanitizer cannot follow a thread started in the child of a
 * multithreaded fork: it finds the new thread's id in use by a thread of
 * the parent and stops the child.  The plain and ASan builds check it.
 */
#if defined(__SANITIZE_THREAD__)
#define CHILD_MAY_START_THREADS 0
#else
#define CHILD_MAY_START_THREADS 1
#endif

/*
 * AddressSanitizer's allocator (gcc 12) takes no lock around fork(): a
 * child forked while another thread allocates may hang in malloc().  The
 * busy fork test then only checks what needs no memory in the child.
 */
#if defined(__SANITIZE_ADDRESS__)
#define BUSY_CHILD_MAY_ALLOCATE 0
#else
#define BUSY_CHILD_MAY_ALLOCATE 1
#endif

/* A new worker in the child works: started, stopped, joined. */
static int
new_worker_works(void)
{
	worker_t *n;
	int ok;

	if (!CHILD_MAY_START_THREADS)
		return worker_current() != NULL;
	if ((n = worker_create(NULL, NULL, NULL)) == NULL)
		return 0;
	ok = worker_stop(n) == 0 && worker_join(n) == 0;
	worker_unref(n);
	return ok;
}

/*
 * In the child: every call on w, a worker of the parent, answers ESRCH
 * (or the harmless answer of its kind).  Returns 0, or the number of the
 * first check that failed.
 */
static int
check_gone(worker_t *w, worker_t *old_root)
{
	uint64_t id;
	int pipefd[2];
	sigset_t set;
	void *ret;

	if (worker_stop(w) != ESRCH)
		return 1;
	if (worker_fire(w, "x", NULL) != ESRCH)
		return 2;
	if (worker_join(w) != ESRCH)
		return 3;
	if (worker_wait_thread(w, &ret) != ESRCH)
		return 4;
	if (worker_listen(w, "x", on_nothing, NULL, NULL) != ESRCH)
		return 5;
	if (worker_later(w, nothing_cb, NULL, 0, &id) != ESRCH)
		return 6;
	if (pipe(pipefd) != 0 ||
	    worker_watch(w, pipefd[0], WORKER_READABLE, fd_cb, NULL,
	    NULL) != ESRCH)
		return 7;
	if (worker_fd(w) != -1 || errno != ESRCH)
		return 8;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (worker_signals(w, &set, NULL) != ESRCH)
		return 9;
	if (worker_is_running(w) != 0)
		return 10;
	if (worker_result(w, NULL) != ESRCH)
		return 11;
	if (worker_start(w) != ESRCH)
		return 12;
	if (worker_current() == NULL || worker_current() == old_root)
		return 13;
	if (!new_worker_works())
		return 14;
	if (worker_rearm(w, 1, 0) != ESRCH || worker_cancel(w, 1) != ESRCH)
		return 15;
	worker_unref(w);	/* never frees it: no join, no lock */
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

static void *
settle_then_wait(void *arg)
{
	sem_post(arg);
	worker_wait_forever();
	return NULL;
}

START_TEST(fork_gone_handles)
{
	worker_t *root = worker_current();
	sem_t settled;
	worker_t *w;
	pid_t pid;

	/* Forked once w waits: no thread but this one allocates then. */
	ck_assert_int_eq(sem_init(&settled, 0, 0), 0);
	w = worker_create(settle_then_wait, &settled, &(worker_attr_t){
		.name = "pre-fork" });
	ck_assert_ptr_nonnull(w);
	sem_wait_ok(&settled, "the pre-fork worker");
	pid = fork();
	if (pid == 0) {
		alarm(CHILD_LIMIT);
		_exit(check_gone(w, root));
	}
	expect_child_ok(pid, "calls on a pre-fork worker");
	/* The parent's worker is untouched. */
	ck_assert_int_eq(worker_is_running(w), 1);
	stop_join_unref(w);
	sem_destroy(&settled);
}
END_TEST

/*
 * Another thread fires at the main root and makes and drops workers all
 * the time, so that a fork often happens while it holds the root's queue
 * lock or tree_lock: the child must find neither held.
 */
struct hammer {
	worker_t *target;
	atomic_int stop;
};

static void *
hammer(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(&h->stop)) {
		worker_t *w = worker_new(NULL, NULL, NULL);

		worker_fire(h->target, "noise", NULL);
		worker_unref(w);
	}
	return NULL;
}

START_TEST(fork_while_busy)
{
	struct hammer h = { .target = worker_current() };
	pthread_t t;

	ck_assert_ptr_nonnull(h.target);
	atomic_init(&h.stop, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, hammer, &h), 0);
	for (int i = 0; i < 50; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			alarm(CHILD_LIMIT);
			if (!BUSY_CHILD_MAY_ALLOCATE)
				_exit(worker_is_running(h.target) == 0 ? 0 : 1);
			_exit(worker_current() != h.target &&
			    worker_fire(h.target, "x", NULL) == ESRCH &&
			    new_worker_works() ? 0 : 1);
		}
		expect_child_ok(pid, "fork while another thread fires");
		worker_update();	/* the noise must not pile up */
	}
	atomic_store(&h.stop, 1);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	worker_update();
}
END_TEST

/* A task that forks: its child has a new root, not the task's worker. */
static void *
forking_task(void *arg)
{
	int *status = arg;
	worker_t *self = worker_current();
	pid_t pid = fork();

	if (pid == 0) {
		alarm(CHILD_LIMIT);
		_exit(worker_current() != self &&
		    worker_stop(self) == ESRCH && new_worker_works() ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, status, 0) != pid)
		*status = -1;
	return NULL;
}

START_TEST(fork_inside_worker)
{
	int status = -1;
	worker_t *w = worker_create(forking_task, &status, NULL);

	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_join(w));
	worker_unref(w);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the child of a worker's fork failed: status %#x", status);
}
END_TEST

Suite *
suite_fork(void)
{
	Suite *s = suite_create("fork");
	TCase *tc;

	tc = test_case(s, "fork");
	tcase_add_test(tc, fork_gone_handles);
	tcase_add_test(tc, fork_while_busy);
	tcase_add_test(tc, fork_inside_worker);
	return s;
}
