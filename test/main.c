/*
 * main.c - runs every suite of the libworker Check suite.
 *
 * Fork mode is the default and must stay so: a failed assertion in
 * CK_NOFORK mode longjmps out of the test, which would collide with the
 * library's own unwinding.
 */
#include <stdlib.h>

#include "test.h"

int
main(void)
{
	Suite *(*suites[])(void) = {
		suite_worker, suite_tree, suite_unwind, suite_fire,
		suite_listen, suite_loop, suite_api, suite_timer, suite_async,
		suite_watch, suite_queue, suite_fork, suite_signal,
		suite_oom, suite_end, suite_supervise, suite_stats,
		suite_inspect,
	};
	SRunner *sr = srunner_create(NULL);
	int failed;

	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		srunner_add_suite(sr, suites[i]());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
