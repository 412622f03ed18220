/*
 * test_signal.c - the signal mask that worker_signals() changes (signal.c):
 * freeing its worker gives the blocked signals back, in the thread that
 * blocked them, and leaves alone what was blocked before.
 *
 * Check runs each test in a process of its own, so masks do not leak
 * from one test to the next.
 */
#include <signal.h>

#include "test.h"
#include "util.h"

static int
blocked(int sig)
{
	sigset_t mask;

	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
	return sigismember(&mask, sig);
}

static sigset_t
set_of(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	return set;
}

START_TEST(mask_restored_on_free)
{
	sigset_t usr2 = set_of(SIGUSR2);
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(blocked(SIGUSR2), 0);
	CHECK_OK(worker_signals(w, &usr2, NULL));
	ck_assert_int_eq(blocked(SIGUSR2), 1);
	worker_unref(w);
	ck_assert_msg(blocked(SIGUSR2) == 0,
	    "SIGUSR2 stays blocked after its worker was freed");
}
END_TEST

START_TEST(mask_keeps_what_was_blocked)
{
	sigset_t usr1 = set_of(SIGUSR1);
	sigset_t both = set_of(SIGUSR1);
	worker_t *w = worker_new(NULL, NULL, NULL);

	ck_assert_ptr_nonnull(w);
	sigaddset(&both, SIGUSR2);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
	CHECK_OK(worker_signals(w, NULL, &both));
	worker_unref(w);
	ck_assert_int_eq(blocked(SIGUSR1), 1);
	ck_assert_int_eq(blocked(SIGUSR2), 0);
}
END_TEST

static void *
wait_for_end(void *arg)
{
	(void)arg;
	worker_wait_event("END", NULL, wait_limit(), NULL);
	return NULL;
}

/*
 * The worker is freed on its own thread, after its run: the thread that
 * blocked the signals (here the test's, a root) unblocks them at its next
 * breakpoint.
 */
START_TEST(mask_restored_from_other_thread)
{
	sigset_t usr2 = set_of(SIGUSR2);
	worker_t *w = worker_create(wait_for_end, NULL, NULL);
	double until = now() + wait_limit();

	ck_assert_ptr_nonnull(w);
	CHECK_OK(worker_signals(w, &usr2, NULL));
	ck_assert_int_eq(blocked(SIGUSR2), 1);
	CHECK_OK(worker_fire(w, "END", NULL));
	worker_unref(w);	/* the run's own reference frees it */
	while (blocked(SIGUSR2) && now() < until)
		worker_sleep(0.001);
	ck_assert_msg(blocked(SIGUSR2) == 0,
	    "SIGUSR2 stays blocked in the thread that blocked it");
}
END_TEST

Suite *
suite_signal(void)
{
	Suite *s = suite_create("signal");
	TCase *tc;

	tc = test_case(s, "mask");
	tcase_add_test(tc, mask_restored_on_free);
	tcase_add_test(tc, mask_keeps_what_was_blocked);
	tcase_add_test(tc, mask_restored_from_other_thread);
	return s;
}
