/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Common includes for the unit tests, which use cmocka (Debian's libcmocka-dev).
 */
#ifndef DD_TEST_HARNESS_H
#define DD_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Assert that an int-returning call succeeded, printing the error's name when it did not. */
#define assert_success(expression)                                       \
	do {                                                             \
		int assert_success_result_ = (expression);               \
		if (assert_success_result_ != 0)                         \
			fail_msg("%s failed: %s (%s)", #expression,      \
			         dd_strerror(assert_success_result_),    \
			         dd_error_name(assert_success_result_)); \
	} while (0)

#endif /* DD_TEST_HARNESS_H */
