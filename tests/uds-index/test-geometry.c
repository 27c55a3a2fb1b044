// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the index geometry: the UDS memory sizes, sparse, page sizes and bad arguments.
 */
#include "geometry.h"
#include "test-harness.h"

static void test_small_dense(void **state)
{
	struct uds_geometry g;

	(void) state;
	assert_success(uds_make_geometry(256, false, 0, &g));
	assert_int_equal(g.bytes_per_page, 4096);
	assert_int_equal(g.records_per_page, 127);
	/* At least the 65,536 records per chapter of UDS's 0.25 GB index, in whole pages. */
	assert_int_equal(g.record_pages_per_chapter, 517);
	assert_int_equal(g.records_per_chapter, 517 * 127);
	assert_int_equal(g.chapters_per_volume, 1024);
	assert_int_equal(g.sparse_chapters_per_volume, 0);
	assert_int_equal(g.dense_chapters_per_volume, 1024);
	assert_true(g.records_per_volume >= 64ULL * 1024 * 1024);
	assert_int_equal(g.chapter_delta_lists, 1024);
	assert_int_equal(g.chapter_payload_bits, 10);
	assert_int_equal(g.chapter_mean_delta, UDS_CHAPTER_MEAN_DELTA);
	/* 2^13 addresses for the 64 records of a list: a mean delta of 128. */
	assert_int_equal(g.chapter_address_bits, 13);
	/* About 19 bits per record of chapter index in 4 KiB pages (40 pages), plus slack. */
	assert_in_range(g.index_pages_per_chapter, 40, 43);
	assert_int_equal(g.pages_per_chapter, g.index_pages_per_chapter + 517);
	assert_int_equal(g.bytes_per_volume, (uint64_t) g.pages_per_chapter * 1024 * 4096);
}

static void test_sizes(void **state)
{
	struct uds_geometry g;

	(void) state;
	assert_success(uds_make_geometry(512, false, 0, &g));
	assert_true(g.records_per_chapter >= 2 * 65536);
	assert_success(uds_make_geometry(768, false, 0, &g));
	assert_true(g.records_per_chapter >= 3 * 65536);
	assert_success(uds_make_geometry(1024, false, 0, &g));
	assert_true(g.records_per_chapter >= 4 * 65536);
	assert_int_equal(g.chapters_per_volume, 1024);
	assert_success(uds_make_geometry(3072, false, 0, &g));
	assert_int_equal(g.chapters_per_volume, 3072);
}

static void test_sparse(void **state)
{
	struct uds_geometry dense;
	struct uds_geometry sparse;

	(void) state;
	assert_success(uds_make_geometry(256, false, 0, &dense));
	assert_success(uds_make_geometry(256, true, 0, &sparse));
	assert_true(uds_is_sparse_geometry(&sparse));
	assert_false(uds_is_sparse_geometry(&dense));
	assert_int_equal(sparse.chapters_per_volume, 10 * dense.chapters_per_volume);
	assert_int_equal(sparse.sparse_chapters_per_volume, 9728);
	assert_int_equal(sparse.dense_chapters_per_volume, 512);
	assert_int_equal(sparse.records_per_chapter, dense.records_per_chapter);
	/* Sparse chapter indexes keep the wide address range (see geometry.h). */
	assert_int_equal(sparse.chapter_mean_delta, UDS_SPARSE_CHAPTER_MEAN_DELTA);
	assert_int_equal(sparse.chapter_address_bits, 22);
	assert_true(sparse.index_pages_per_chapter > dense.index_pages_per_chapter);
	/* The newest 512 chapters (the open one included) are dense. */
	assert_false(uds_is_chapter_sparse(&sparse, 0, 10000, 10000));
	assert_false(uds_is_chapter_sparse(&sparse, 0, 10000, 10000 - 511));
	assert_true(uds_is_chapter_sparse(&sparse, 0, 10000, 10000 - 512));
	assert_false(uds_is_chapter_sparse(&dense, 0, 10000, 10));
}

static void test_page_sizes(void **state)
{
	struct uds_geometry g;

	(void) state;
	assert_success(uds_make_geometry(256, false, 32768, &g));
	assert_int_equal(g.records_per_page, 1023);
	assert_int_equal(g.record_pages_per_chapter, 65);
	assert_int_equal(g.chapter_payload_bits, 7);
	assert_int_equal(uds_chapter_slot(&g, 1024 + 5), 5);
}

static void test_bad_arguments(void **state)
{
	struct uds_geometry g;

	(void) state;
	assert_int_equal(uds_make_geometry(100, false, 0, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_geometry(1000, false, 0, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_geometry(256, false, 5000, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_geometry(256, false, 2048, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_geometry(256, false, 131072, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_custom_geometry(4096, 0, 16, 0, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_custom_geometry(4096, 4, 1, 0, &g), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_custom_geometry(4096, 4, 16, 15, &g), DD_INVALID_ARGUMENT);
	assert_success(uds_make_custom_geometry(4096, 1, 2, 0, &g));
	assert_int_equal(g.chapter_delta_lists, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_dense),   cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_sparse),        cmocka_unit_test(test_page_sizes),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
