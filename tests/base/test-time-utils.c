// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the time utilities: conversions, clocks that move forward, sleeps that last.
 */
#include "errors.h"
#include "test-harness.h"
#include "time-utils.h"

static void test_conversions(void **state)
{
	struct timespec converted = dd_ns_to_timespec(3 * (dd_ktime_t) DD_NSEC_PER_SEC + 250);

	(void) state;
	assert_int_equal(converted.tv_sec, 3);
	assert_int_equal(converted.tv_nsec, 250);
	converted = dd_ns_to_timespec(999);
	assert_int_equal(converted.tv_sec, 0);
	assert_int_equal(converted.tv_nsec, 999);
	assert_true(dd_seconds_between(0, DD_NSEC_PER_SEC / 2) == 0.5);
}

static void test_clocks_move_forward(void **state)
{
	dd_ktime_t first = dd_monotonic_ns();
	dd_ktime_t cpu = dd_thread_cpu_ns();
	volatile uint64_t sink = 0;

	(void) state;
	for (int i = 0; i < 1000000; i++)
		sink += (uint64_t) i;
	assert_true(sink > 0);
	assert_true(dd_monotonic_ns() >= first);
	assert_true(dd_thread_cpu_ns() > cpu);
	/* The process clock, read after the thread clock, includes this thread's time. */
	cpu = dd_thread_cpu_ns();
	assert_true(dd_process_cpu_ns() >= cpu);
	assert_true(dd_current_time_ns(CLOCK_REALTIME) > 1600000000LL * DD_NSEC_PER_SEC);
}

static void test_sleep_lasts_at_least_as_asked(void **state)
{
	dd_ktime_t start = dd_monotonic_ns();

	(void) state;
	dd_sleep_ns(2 * DD_NSEC_PER_MSEC);
	assert_true(dd_monotonic_ns() - start >= 2 * DD_NSEC_PER_MSEC);
	dd_sleep_ns(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_clocks_move_forward),
		cmocka_unit_test(test_sleep_lasts_at_least_as_asked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
