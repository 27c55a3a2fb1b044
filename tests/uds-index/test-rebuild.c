// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the rebuild of the volume index after a crash, through the public API (uds.h), on
 * small geometries in a temporary file. A "crash" is uds_free_index() without a save: the closed
 * chapters are on storage, the open chapter and the volume index are lost.
 *
 * The rebuild replays on its own threads into a volume index of as many zones as it has threads,
 * converting it to the index's zone count through an uncommitted save when they differ. The
 * environment variable UDS_REBUILD_THREADS sets the thread count, so each test chooses whether
 * the conversion runs: a 1-zone index rebuilt by several threads (conversion, window wrapped,
 * names updated in a later chapter), several zone and thread counts with and without
 * conversion, a sparse geometry (hooks only for sparse chapters), and an index with no closed
 * chapter. These run several threads, so they carry the "threads" label.
 */
#include <stdlib.h>
#include <unistd.h>

#include "index-requests.h"

enum {
	RECORD_PAGES = 4,
	CHAPTERS = 16,
	RECORDS_PER_CHAPTER = RECORD_PAGES * 127,
	POST_DATA = 1000000,
	UPDATE_DATA = 2000000,
};

/** parameters() - A small dense geometry with @zones zones. */
static struct uds_parameters parameters(unsigned int zones)
{
	return (struct uds_parameters){
		.path = index_path,
		.zone_count = zones,
		.record_pages_per_chapter = RECORD_PAGES,
		.chapters_per_volume = CHAPTERS,
	};
}

/** crash_and_rebuild() - Stop without saving, then open (rebuilding) on @threads threads. */
static struct uds_index *crash_and_rebuild(struct uds_index *index, const struct uds_parameters *p,
                                           unsigned int threads)
{
	struct uds_index_stats stats;
	char count[16];

	uds_flush_index(index);
	uds_free_index(index);
	snprintf(count, sizeof(count), "%u", threads);
	assert_int_equal(setenv("UDS_REBUILD_THREADS", count, 1), 0);
	assert_success(uds_open_index(UDS_LOAD, p, &index));
	assert_int_equal(unsetenv("UDS_REBUILD_THREADS"), 0);
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.rebuilt);
	assert_int_equal(stats.chapters_dropped, 0);
	assert_int_equal(stats.zone_count, p->zone_count);
	return index;
}

/** check_no_clean_save() - The rebuild committed no save: only another rebuild opens it. */
static void check_no_clean_save(struct uds_index *index, const struct uds_parameters *p)
{
	uds_free_index(index);
	assert_int_equal(uds_open_index(UDS_NO_REBUILD, p, &index), DD_END_OF_FILE);
}

/** setup() - Make the temporary file each test's index lives in. */
static int setup(void **state)
{
	(void) state;
	return make_index_file("test-rebuild");
}

/** teardown() - Remove the index file and the thread count setting. */
static int teardown(void **state)
{
	(void) state;
	unsetenv("UDS_REBUILD_THREADS");
	unlink(index_path);
	return 0;
}

/*
 * A 1-zone index rebuilt by three replay threads (so the rebuilt index is converted): the window
 * has wrapped, and some names of chapter 9 were updated in chapter 10. With one zone, the k-th
 * record stored is in chapter k / RECORDS_PER_CHAPTER, so the window is known exactly: every
 * name of every closed chapter in it is found, with the data of its newest copy.
 */
static void test_one_zone_many_threads(void **state)
{
	enum {
		UPDATED = (RECORDS_PER_CHAPTER + 2) / 3,
		/* Stored: names [0, 10 chapters), UPDATED updates, names [10, 20 chapters). */
		STORED = 20 * RECORDS_PER_CHAPTER + UPDATED,
		/* Closed chapters 0..19; the window keeps 5..19. */
		WINDOW_START = (20 + 1 - CHAPTERS) * RECORDS_PER_CHAPTER,
		WINDOW_END = 20 * RECORDS_PER_CHAPTER,
	};
	struct uds_parameters p = parameters(1);
	struct uds_index_stats stats;
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 10 * RECORDS_PER_CHAPTER, POST_DATA);
	for (uint64_t n = 9 * RECORDS_PER_CHAPTER; n < 10 * RECORDS_PER_CHAPTER; n += 3)
		store_range(index, UDS_UPDATE, n, 1, UPDATE_DATA);
	store_range(index, UDS_POST, 10 * RECORDS_PER_CHAPTER, 10 * RECORDS_PER_CHAPTER, POST_DATA);
	assert_int_equal(STORED / RECORDS_PER_CHAPTER, 20);
	for (int round = 0; round < 2; round++) {
		/* The second round rebuilds again after a crash right after the first rebuild. */
		index = crash_and_rebuild(index, &p, (round == 0) ? 3 : 2);
		assert_success(uds_get_index_stats(index, &stats));
		assert_int_equal(stats.open_chapter, 20);
		/* Chapters 5..9: names [5, 10 chapters), those of chapter 9 updated or not. */
		check_found(index, WINDOW_START, 9 * RECORDS_PER_CHAPTER - WINDOW_START, POST_DATA);
		for (uint64_t n = 9 * RECORDS_PER_CHAPTER; n < 10 * RECORDS_PER_CHAPTER; n++)
			check_found(index, n, 1,
			            ((n - 9 * RECORDS_PER_CHAPTER) % 3 == 0) ? UPDATE_DATA
			                                                     : POST_DATA);
		/* Chapters 10..19 (the updates first), less the names lost in the open chapter. */
		check_found(index, 10 * RECORDS_PER_CHAPTER,
		            WINDOW_END - 10 * RECORDS_PER_CHAPTER - UPDATED, POST_DATA);
		/* Names of the chapters before the window are gone (a stray hit is possible). */
		assert_true(query_range(index, 0, WINDOW_START, NULL, 0) < 10);
	}
	check_no_clean_save(index, &p);
}

/*
 * Rebuilds with and without conversion: as many threads as zones (the rebuilt index is the
 * index's own), more threads than zones, and fewer.
 */
static void test_zone_and_thread_counts(void **state)
{
	static const struct {
		unsigned int zones;
		unsigned int threads;
	} cases[] = { { 2, 2 }, { 3, 3 }, { 2, 5 }, { 4, 2 }, { 1, 1 } };
	uint64_t total = 6 * RECORDS_PER_CHAPTER + RECORDS_PER_CHAPTER / 2;

	(void) state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct uds_parameters p = parameters(cases[c].zones);
		struct uds_index *index;

		assert_success(uds_open_index(UDS_CREATE, &p, &index));
		store_range(index, UDS_POST, 0, total, POST_DATA);
		/* Two chapters of other names: all the names above are now in closed chapters. */
		store_range(index, UDS_POST, 1000000, 2 * RECORDS_PER_CHAPTER, POST_DATA);
		index = crash_and_rebuild(index, &p, cases[c].threads);
		check_found(index, 0, total, POST_DATA);
		/* The rebuilt index works on: new names go in and are found. */
		store_range(index, UDS_POST, 2000000, RECORDS_PER_CHAPTER, POST_DATA);
		check_found(index, 2000000, RECORDS_PER_CHAPTER, POST_DATA);
		check_no_clean_save(index, &p);
	}
}

/*
 * A sparse geometry: chapters 0..14 written, 15 open, 10 dense chapters, so chapters 0..5 are
 * sparse and replay their hooks only, and chapters 6..14 replay every name.
 */
static void test_sparse(void **state)
{
	enum {
		SPARSE_CHAPTERS = 40,
		DENSE_CHAPTERS = 10,
		SPARSE_END = 6 * RECORDS_PER_CHAPTER,
		DENSE_END = 15 * RECORDS_PER_CHAPTER,
	};
	static const unsigned int threads[] = { 3, 1 };

	(void) state;
	for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
		struct uds_parameters p = parameters(1);
		struct uds_index *index;
		uint64_t hooks = 0;
		uint64_t n;

		p.chapters_per_volume = SPARSE_CHAPTERS;
		p.sparse_chapters_per_volume = SPARSE_CHAPTERS - DENSE_CHAPTERS;
		assert_success(uds_open_index(UDS_CREATE, &p, &index));
		store_range(index, UDS_POST, 0, DENSE_END, POST_DATA);
		index = crash_and_rebuild(index, &p, threads[t]);
		/* Before any hook of chapter 3 is looked up, its other names are unknown. */
		for (n = 3 * RECORDS_PER_CHAPTER; is_hook(n); n++)
			;
		assert_false(run_request(index, UDS_QUERY_NO_UPDATE, n, 0).found);
		/* Every hook of every sparse chapter is found, in a sparse chapter. */
		for (n = 0; n < SPARSE_END; n++) {
			struct uds_request r;

			if (!is_hook(n))
				continue;
			hooks++;
			r = run_request(index, UDS_QUERY_NO_UPDATE, n, 0);
			if (!r.found)
				fail_msg("hook %llu not found", (unsigned long long) n);
			assert_int_equal(r.location, UDS_LOCATION_IN_SPARSE);
			assert_int_equal(data_of(&r), n + POST_DATA);
		}
		assert_true(hooks > 0);
		/* Every name of every dense chapter is found. */
		check_found(index, SPARSE_END, DENSE_END - SPARSE_END, POST_DATA);
		for (n = SPARSE_END; n < DENSE_END; n += 97)
			assert_int_equal(run_request(index, UDS_QUERY_NO_UPDATE, n, 0).location,
			                 UDS_LOCATION_IN_DENSE);
		check_no_clean_save(index, &p);
	}
}

/* No chapter was ever closed: the rebuild leaves an empty index whose open chapter is 0. */
static void test_nothing_to_replay(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index_stats stats;
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, RECORDS_PER_CHAPTER / 2, POST_DATA);
	index = crash_and_rebuild(index, &p, 4);
	assert_success(uds_get_index_stats(index, &stats));
	assert_int_equal(stats.open_chapter, 0);
	assert_false(run_request(index, UDS_QUERY_NO_UPDATE, 1, 0).found);
	store_range(index, UDS_POST, 0, 2 * RECORDS_PER_CHAPTER, POST_DATA);
	check_found(index, 0, 2 * RECORDS_PER_CHAPTER, POST_DATA);
	uds_free_index(index);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_zone_many_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zone_and_thread_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_replay, setup, teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
