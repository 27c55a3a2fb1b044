// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of error strings, log levels and assertions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "logger.h"
#include "permassert.h"
#include "test-harness.h"

static void test_project_codes_have_names(void **state)
{
	(void) state;
	for (int code = DD_ERROR_BASE; code < DD_ERROR_LIMIT; code++) {
		assert_true(dd_is_project_error(code));
		assert_non_null(strstr(dd_error_name(code), "DD_"));
		assert_string_not_equal(dd_strerror(code), "Unknown error");
	}
	assert_string_equal(dd_error_name(DD_CORRUPT_DATA), "DD_CORRUPT_DATA");
	assert_false(dd_is_project_error(DD_ERROR_LIMIT));
}

static void test_errno_codes_are_described(void **state)
{
	(void) state;
	assert_string_equal(dd_error_name(ENOMEM), "ENOMEM");
	assert_string_equal(dd_strerror(ENOENT), "No such file or directory");
	assert_string_equal(dd_strerror(DD_SUCCESS), "Success");
	assert_string_equal(dd_strerror(-5), "Unknown error");
	assert_string_equal(dd_strerror(DD_ERROR_LIMIT + 7), "Unknown error");
	assert_false(dd_is_project_error(EIO));
}

static void test_log_levels(void **state)
{
	enum dd_log_level level;

	(void) state;
	assert_success(dd_log_parse_level("WARNING", &level));
	assert_int_equal(level, DD_LOG_WARNING);
	assert_int_equal(dd_log_parse_level("loud", &level), DD_INVALID_ARGUMENT);
	dd_log_set_level(DD_LOG_ERROR);
	assert_true(dd_log_is_enabled(DD_LOG_ERROR));
	assert_false(dd_log_is_enabled(DD_LOG_INFO));
	assert_int_equal(dd_log_strerror(DD_LOG_DEBUG, EIO, "dropped %d", 1), EIO);
	dd_log_set_level(DD_LOG_DEBUG);
	dd_log_set_thread_name("a-very-long-thread-name-that-gets-truncated");
	assert_int_equal(dd_log_warning_strerror(DD_BAD_STATE, "logged %s", "line"), DD_BAD_STATE);
	dd_log_set_level(DD_LOG_ERROR);
}

static void test_assertions_return_errors(void **state)
{
	(void) state;
	unsetenv("DD_ASSERT_ABORT");
	assert_int_equal(DD_ASSERT(1 + 1 == 2, "arithmetic"), DD_SUCCESS);
	assert_int_equal(DD_ASSERT(1 + 1 == 3, "arithmetic is %s", "broken"), DD_ASSERTION_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_project_codes_have_names),
		cmocka_unit_test(test_errno_codes_are_described),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_assertions_return_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
