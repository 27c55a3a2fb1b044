// SPDX-License-Identifier: GPL-2.0-only
/*
 * Failures inside a running index, through the public API (uds.h), on a small geometry in a
 * temporary file: a put into the open chapter that fails, page reads that fail with an I/O
 * error while the index is closed, and chapter writes that fail.
 *
 * Faults are injected with the linker's --wrap (see CMakeLists.txt): the index's calls of
 * uds_put_open_chapter(), uds_volume_page_in_memory(), uds_start_volume_page_fetch(),
 * uds_fetch_volume_page() and uds_write_chapter_pages() reach the __wrap_ functions below,
 * which fail (or hold a read back) when a test asks and otherwise call the real function. The
 * engine itself has no hook. These run several threads, so they carry the "threads" label.
 */
#include <errno.h>

#include "index-requests.h"
#include "open-chapter.h"
#include "time-utils.h"
#include "volume.h"

enum {
	RECORD_PAGES = 4,
	CHAPTERS = 16,
	RECORDS_PER_CHAPTER = RECORD_PAGES * 127,
	POST_DATA = 1000000,
	/* Requests launched at once by the close tests. */
	IN_FLIGHT = 1024,
	/* How long a failing read takes once released. */
	READ_DELAY_NS = 200 * 1000,
};

/* A put of this name fails with put_fault (when it is not DD_SUCCESS). */
static struct dd_record_name put_fault_name;
static atomic_int put_fault;

/* While reads_fail is set, no page is in memory, and every read waits for reads_released and
 * then fails with EIO; reads_running counts the reads under way, reads_failed those done. */
static atomic_bool reads_fail;
static atomic_bool reads_released;
static atomic_uint reads_running;
static atomic_uint reads_failed;

/* Chapter writes fail with this (when it is not DD_SUCCESS). */
static atomic_int write_fault;

int __real_uds_put_open_chapter(struct uds_open_chapter_zone *zone,
                                const struct dd_record_name *name,
                                const struct uds_record_data *data, uint32_t *remaining_ptr);
int __wrap_uds_put_open_chapter(struct uds_open_chapter_zone *zone,
                                const struct dd_record_name *name,
                                const struct uds_record_data *data, uint32_t *remaining_ptr);
bool __real_uds_volume_page_in_memory(const struct uds_volume *volume, uint64_t virtual_chapter,
                                      uint32_t page_number);
bool __wrap_uds_volume_page_in_memory(const struct uds_volume *volume, uint64_t virtual_chapter,
                                      uint32_t page_number);
bool __real_uds_start_volume_page_fetch(const struct uds_volume *volume, uint64_t virtual_chapter,
                                        uint32_t page_number);
bool __wrap_uds_start_volume_page_fetch(const struct uds_volume *volume, uint64_t virtual_chapter,
                                        uint32_t page_number);
int __real_uds_fetch_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                 uint32_t page_number);
int __wrap_uds_fetch_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                 uint32_t page_number);
int __real_uds_write_chapter_pages(struct uds_volume *volume, uint64_t virtual_chapter,
                                   uint32_t first_page, const uint8_t *pages, uint32_t count);
int __wrap_uds_write_chapter_pages(struct uds_volume *volume, uint64_t virtual_chapter,
                                   uint32_t first_page, const uint8_t *pages, uint32_t count);

/** __wrap_uds_put_open_chapter() - The put, unless it is the put of the faulty name. */
int __wrap_uds_put_open_chapter(struct uds_open_chapter_zone *zone,
                                const struct dd_record_name *name,
                                const struct uds_record_data *data, uint32_t *remaining_ptr)
{
	int fault = atomic_load(&put_fault);

	if ((fault != DD_SUCCESS) && (memcmp(name, &put_fault_name, sizeof(*name)) == 0))
		return fault;
	return __real_uds_put_open_chapter(zone, name, data, remaining_ptr);
}

/** __wrap_uds_volume_page_in_memory() - No page is in memory while reads fail. */
bool __wrap_uds_volume_page_in_memory(const struct uds_volume *volume, uint64_t virtual_chapter,
                                      uint32_t page_number)
{
	if (atomic_load(&reads_fail))
		return false;
	return __real_uds_volume_page_in_memory(volume, virtual_chapter, page_number);
}

/** __wrap_uds_start_volume_page_fetch() - Every read must wait while reads fail. */
bool __wrap_uds_start_volume_page_fetch(const struct uds_volume *volume, uint64_t virtual_chapter,
                                        uint32_t page_number)
{
	if (atomic_load(&reads_fail))
		return false;
	return __real_uds_start_volume_page_fetch(volume, virtual_chapter, page_number);
}

/**
 * __wrap_uds_fetch_volume_page() - On a disk thread: while reads fail, wait until reads are
 *                                  released, take a little longer, and fail with EIO.
 */
int __wrap_uds_fetch_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                 uint32_t page_number)
{
	if (!atomic_load(&reads_fail))
		return __real_uds_fetch_volume_page(volume, virtual_chapter, page_number);
	atomic_fetch_add(&reads_running, 1);
	while (!atomic_load(&reads_released))
		dd_sleep_ns(100 * 1000);
	dd_sleep_ns(READ_DELAY_NS);
	atomic_fetch_add(&reads_failed, 1);
	atomic_fetch_sub(&reads_running, 1);
	return EIO;
}

/** __wrap_uds_write_chapter_pages() - The write, unless writes fail. */
int __wrap_uds_write_chapter_pages(struct uds_volume *volume, uint64_t virtual_chapter,
                                   uint32_t first_page, const uint8_t *pages, uint32_t count)
{
	int fault = atomic_load(&write_fault);

	if (fault != DD_SUCCESS)
		return fault;
	return __real_uds_write_chapter_pages(volume, virtual_chapter, first_page, pages, count);
}

static struct uds_parameters parameters(unsigned int zones)
{
	return (struct uds_parameters){
		.path = index_path,
		.zone_count = zones,
		.record_pages_per_chapter = RECORD_PAGES,
		.chapters_per_volume = CHAPTERS,
	};
}

static int setup(void **state)
{
	(void) state;
	atomic_store(&put_fault, DD_SUCCESS);
	atomic_store(&reads_fail, false);
	atomic_store(&reads_released, false);
	atomic_store(&reads_running, 0);
	atomic_store(&reads_failed, 0);
	atomic_store(&write_fault, DD_SUCCESS);
	return make_index_file("test-index-faults");
}

static int teardown(void **state)
{
	(void) state;
	atomic_store(&put_fault, DD_SUCCESS);
	atomic_store(&reads_fail, false);
	atomic_store(&write_fault, DD_SUCCESS);
	unlink(index_path);
	return 0;
}

/** launch() - Start a request for a number with data @data; do not wait for it. */
static void launch(struct uds_index *index, struct test_request *tr, enum uds_request_type type,
                   uint64_t number, uint64_t data)
{
	memset(tr, 0, sizeof(*tr));
	make_name(number, &tr->request.record_name);
	memcpy(tr->request.new_data.data, &data, sizeof(data));
	tr->request.type = type;
	tr->request.callback = request_done;
	tr->request.index = index;
	assert_success(uds_launch_request(&tr->request));
}

/** run_unchecked() - Run one request for a number and wait for it, whatever its status. */
static struct uds_request run_unchecked(struct uds_index *index, enum uds_request_type type,
                                        uint64_t number, uint64_t data)
{
	struct test_request tr;

	launch(index, &tr, type, number, data);
	while (!atomic_load(&tr.done))
		;
	return tr.request;
}

/* The requests the close tests launch and leave in flight. */
static struct test_request flight[IN_FLIGHT];

/** count_done() - How many of the first @count requests of flight[] have called back. */
static unsigned int count_done(unsigned int count)
{
	unsigned int done = 0;

	for (unsigned int i = 0; i < count; i++)
		done += atomic_load(&flight[i].done);
	return done;
}

/*
 * A put into the open chapter that fails fails the request, with the put's error, for each way
 * a request puts: a POST of a new name, an UPDATE, and a QUERY that refreshes a name found in
 * a closed chapter. Nothing is stored, and the index goes on.
 */
static void test_put_failure(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index_stats before;
	struct uds_index_stats after;
	struct uds_index *index;
	struct uds_request r;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	/* Names 0..RPC-1 go to chapter 0, which closes; the rest stay in the open chapter. */
	store_range(index, UDS_POST, 0, RECORDS_PER_CHAPTER + 10, POST_DATA);
	atomic_store(&put_fault, DD_OVERFLOW);

	/* POST of a new name: not even its volume index entry is kept. */
	make_name(5000000, &put_fault_name);
	assert_success(uds_get_index_stats(index, &before));
	r = run_unchecked(index, UDS_POST, 5000000, 7);
	assert_int_equal(r.status, DD_OVERFLOW);
	assert_false(r.found);
	assert_success(uds_get_index_stats(index, &after));
	assert_int_equal(after.entries_indexed, before.entries_indexed);
	assert_false(run_request(index, UDS_QUERY_NO_UPDATE, 5000000, 0).found);

	/* UPDATE of a name of the open chapter: its data is unchanged. */
	make_name(RECORDS_PER_CHAPTER + 1, &put_fault_name);
	r = run_unchecked(index, UDS_UPDATE, RECORDS_PER_CHAPTER + 1, 7);
	assert_int_equal(r.status, DD_OVERFLOW);
	r = run_request(index, UDS_QUERY_NO_UPDATE, RECORDS_PER_CHAPTER + 1, 0);
	assert_true(r.found);
	assert_int_equal(data_of(&r), RECORDS_PER_CHAPTER + 1 + POST_DATA);

	/* QUERY of a name of closed chapter 0, which would copy it into the open chapter: its
	 * entry still names chapter 0. */
	make_name(3, &put_fault_name);
	r = run_unchecked(index, UDS_QUERY, 3, 0);
	assert_int_equal(r.status, DD_OVERFLOW);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 3, 0);
	assert_true(r.found);
	assert_int_equal(r.location, UDS_LOCATION_IN_DENSE);
	assert_int_equal(data_of(&r), 3 + POST_DATA);

	/* Other names are not affected, and once puts work the names can be stored. */
	assert_false(run_request(index, UDS_POST, 5000001, 8).found);
	atomic_store(&put_fault, DD_SUCCESS);
	(void) run_request(index, UDS_POST, 5000000, 7);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 5000000, 0);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 7);
	check_found(index, 0, RECORDS_PER_CHAPTER + 10, POST_DATA);
	uds_free_index(index);
}

/*
 * Closing an index while its page reads fail: IN_FLIGHT lookups of names in closed chapters
 * are launched while every read is held on a disk thread, so that none has called back when
 * the close starts; then the reads fail with EIO, one by one. The close must wait for every
 * request (each called back, unanswered but not failed) and for every read before it
 * frees anything; the sanitizers check the rest.
 */
static void test_close_while_reads_fail(void **state)
{
	struct uds_parameters p = parameters(2);
	uint64_t total = 4 * RECORDS_PER_CHAPTER;
	struct uds_index *index;
	unsigned int failed;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total + 5, POST_DATA);
	assert_success(uds_close_index(index));
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));

	atomic_store(&reads_fail, true);
	/* Names all in closed chapters: with two zones, a chapter closes a little short of full. */
	for (unsigned int i = 0; i < IN_FLIGHT; i++)
		launch(index, &flight[i], UDS_QUERY_NO_UPDATE, (i * 7) % (2 * RECORDS_PER_CHAPTER),
		       0);
	assert_int_equal(count_done(IN_FLIGHT), 0);
	atomic_store(&reads_released, true);
	assert_success(uds_close_index(index));

	assert_int_equal(count_done(IN_FLIGHT), IN_FLIGHT);
	for (unsigned int i = 0; i < IN_FLIGHT; i++) {
		assert_success(flight[i].request.status);
		assert_false(flight[i].request.found);
	}
	assert_int_equal(atomic_load(&reads_running), 0);
	failed = atomic_load(&reads_failed);
	assert_true(failed > 0);
	/* Nothing of the index runs once the close has returned. */
	dd_sleep_ns(20 * 1000 * 1000);
	assert_int_equal(atomic_load(&reads_failed), failed);

	/* The storage is intact: the names are all there. */
	atomic_store(&reads_fail, false);
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
	check_found(index, 0, total, POST_DATA);
	uds_free_index(index);
}

/*
 * Closing an index whose chapter writes fail, with requests in flight that close chapters and
 * look for names in chapters whose reads fail: every request calls back, and the close reports
 * the write error (the index is not saved) after the writer and every thread have finished.
 */
static void test_close_while_writes_fail(void **state)
{
	struct uds_parameters p = parameters(2);
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 2 * RECORDS_PER_CHAPTER + 5, POST_DATA);
	atomic_store(&write_fault, EIO);
	atomic_store(&reads_fail, true);
	for (unsigned int i = 0; i < IN_FLIGHT; i++) {
		if (i % 4 == 0)
			launch(index, &flight[i], UDS_QUERY_NO_UPDATE, i % RECORDS_PER_CHAPTER, 0);
		else
			launch(index, &flight[i], UDS_POST, 1000000 + i, POST_DATA);
	}
	atomic_store(&reads_released, true);
	assert_int_equal(uds_close_index(index), EIO);

	assert_int_equal(count_done(IN_FLIGHT), IN_FLIGHT);
	for (unsigned int i = 0; i < IN_FLIGHT; i++)
		assert_success(flight[i].request.status);
	assert_int_equal(atomic_load(&reads_running), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_reads_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_writes_fail, setup, teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
