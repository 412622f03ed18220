/*
 * test.h - what every test file of the Check suite shares.
 *
 * Each test file defines one `Suite *suite_NAME(void)` and lists it in
 * main.c.  Tests run in Check's fork mode: every test case in its own
 * process, so a crashed or hung test cannot take the others with it.
 */
#ifndef TEST_H
#define TEST_H

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "worker.h"
#include "util.h"

/* A generous timeout: tests wait on events, not on time, so this only
 * bounds a test that is hung.  CK_TIMEOUT_MULTIPLIER widens it further
 * under the sanitizers and valgrind. */
#define TEST_TIMEOUT 30

/* Asserts that an int-returning libworker call gave want, printing both
 * codes as text on failure (the OpenBSD regress CHECKr habit). */
#define CHECK_RC(call, want)						\
	do {								\
		int check_rc_ = (call);					\
		int check_want_ = (want);				\
		ck_assert_msg(check_rc_ == check_want_,			\
		    "%s: got %d (%s), want %d (%s)", #call, check_rc_,	\
		    strerror(check_rc_), check_want_,			\
		    strerror(check_want_));				\
	} while (0)

#define CHECK_OK(call) CHECK_RC(call, 0)

/* Asserts an atomic counter's value, naming the counter as written (the
 * check macros would print the expansion of atomic_load instead). */
#define CHECK_ATOMIC(ptr, want)						\
	do {								\
		long check_got_ = (long)atomic_load(ptr);		\
		long check_want_ = (long)(want);			\
		ck_assert_msg(check_got_ == check_want_,		\
		    "%s is %ld, want %ld", #ptr, check_got_,		\
		    check_want_);					\
	} while (0)

/* Creates a test case with the suite's timeout and adds it to s. */
static inline TCase *
test_case(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, TEST_TIMEOUT);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *suite_worker(void);
Suite *suite_stats(void);
Suite *suite_inspect(void);
Suite *suite_tree(void);
Suite *suite_unwind(void);
Suite *suite_fire(void);
Suite *suite_listen(void);
Suite *suite_loop(void);
Suite *suite_api(void);
Suite *suite_timer(void);
Suite *suite_async(void);
Suite *suite_watch(void);
Suite *suite_queue(void);
Suite *suite_fork(void);
Suite *suite_signal(void);
Suite *suite_oom(void);
Suite *suite_end(void);
Suite *suite_supervise(void);

#endif
