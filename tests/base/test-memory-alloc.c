// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the allocation wrapper: zeroing, overflow checks, alignment and accounting.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "memory-alloc.h"
#include "test-harness.h"

static void test_allocations_are_zeroed_and_counted(void **state)
{
	size_t before = dd_memory_in_use();
	uint64_t *numbers;

	(void) state;
	assert_success(DD_ALLOCATE(1000, uint64_t, "numbers", &numbers));
	for (int i = 0; i < 1000; i++)
		assert_int_equal(numbers[i], 0);
	assert_true(dd_memory_in_use() >= before + 8000);
	assert_true(dd_memory_peak() >= dd_memory_in_use());
	DD_FREE_AND_NULL(numbers);
	assert_null(numbers);
	assert_int_equal(dd_memory_in_use(), before);
	dd_free(NULL);
}

static void test_overflow_is_refused(void **state)
{
	void *pointer = NULL;

	(void) state;
	/*
	 * Products that wrap to 8 bytes, which any allocator hands out: only the wrapper's own
	 * overflow check can refuse them, whichever argument is the large one.
	 */
	assert_int_equal(dd_allocate_array(SIZE_MAX / 8 + 2, 8, "too much", &pointer), ENOMEM);
	assert_null(pointer);
	assert_int_equal(dd_allocate_array(8, SIZE_MAX / 8 + 2, "too much", &pointer), ENOMEM);
	assert_null(pointer);
}

static void test_aligned_and_duplicate(void **state)
{
	char *aligned;
	char *copy;

	(void) state;
	assert_success(dd_allocate_aligned(5000, 4096, "page", &aligned));
	assert_int_equal((uintptr_t) aligned % 4096, 0);
	assert_int_equal(aligned[4999], 0);
	assert_int_equal(dd_allocate_aligned(64, 48, "bad", &copy), DD_INVALID_ARGUMENT);
	assert_success(dd_duplicate("record", 7, "copy", &copy));
	assert_string_equal(copy, "record");
	dd_free(aligned);
	dd_free(copy);
	assert_non_null(dd_allocator_name());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allocations_are_zeroed_and_counted),
		cmocka_unit_test(test_overflow_is_refused),
		cmocka_unit_test(test_aligned_and_duplicate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
