/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Check runner every suite's main() uses (its own object, so programs
 * that only need the fd helpers do not pull Check in). */
#include <check.h>
#include <stdlib.h>

#include "test-util.h"

int test_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
