// SPDX-License-Identifier: GPL-2.0-only
/*
 * End-to-end tests of the index engine through its public API (uds.h), on a small geometry in a
 * temporary file: request semantics, filling past the window, save and load (also into another
 * zone count), rebuild after an unsaved stop and with a damaged chapter, damaged pages read by
 * each kind of thread, bad storage, an index in a region of a larger file (and its nonce, the
 * index's identity). The multi-zone cases carry the "threads" label so they also run under
 * ThreadSanitizer.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "index-requests.h"
#include "record-page.h"

enum {
	RECORD_PAGES = 4,
	CHAPTERS = 16,
	RECORDS_PER_CHAPTER = RECORD_PAGES * 127,
	WINDOW = (CHAPTERS - 1) * RECORDS_PER_CHAPTER,
};

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
	return make_index_file("test-index");
}

static int teardown(void **state)
{
	(void) state;
	unlink(index_path);
	return 0;
}

static void test_request_semantics(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index *index;
	struct uds_request r;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	r = run_request(index, UDS_QUERY, 1, 0);
	assert_false(r.found);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 1, 0);
	assert_false(r.found);
	r = run_request(index, UDS_POST, 1, 11);
	assert_false(r.found);
	r = run_request(index, UDS_POST, 1, 12);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 11);
	assert_int_equal(r.location, UDS_LOCATION_IN_OPEN_CHAPTER);
	r = run_request(index, UDS_UPDATE, 1, 13);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 11);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 1, 0);
	assert_int_equal(data_of(&r), 13);
	r = run_request(index, UDS_UPDATE, 2, 21);
	assert_false(r.found);
	r = run_request(index, UDS_QUERY, 2, 0);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 21);
	r = run_request(index, UDS_DELETE, 2, 0);
	assert_true(r.found);
	r = run_request(index, UDS_QUERY, 2, 0);
	assert_false(r.found);
	r = run_request(index, UDS_DELETE, 2, 0);
	assert_false(r.found);

	/* Push name 1 into a closed chapter: found there, and a POST copies it forward. */
	store_range(index, UDS_POST, 100, 3 * RECORDS_PER_CHAPTER, 1000000);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 1, 0);
	assert_true(r.found);
	assert_int_equal(r.location, UDS_LOCATION_IN_DENSE);
	assert_int_equal(data_of(&r), 13);
	r = run_request(index, UDS_POST, 1, 99);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 13);
	r = run_request(index, UDS_QUERY_NO_UPDATE, 1, 0);
	assert_int_equal(r.location, UDS_LOCATION_IN_OPEN_CHAPTER);
	assert_int_equal(data_of(&r), 13);
	uds_free_index(index);
}

static void test_window(void **state)
{
	struct uds_parameters p = parameters(1);
	uint64_t total = 3 * WINDOW;
	struct uds_index_stats stats;
	struct uds_index *index;
	uint64_t expired_found = 0;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total, 1000000);
	/* The newest names (the last closed chapters and the open one) are found. */
	check_found(index, total - WINDOW / 2, WINDOW / 2, 1000000);
	/* Names that left the window long ago are gone (a stray hit is possible, not a rule). */
	for (uint64_t number = 0; number < WINDOW; number++)
		expired_found += run_request(index, UDS_QUERY_NO_UPDATE, number, 0).found;
	assert_true(expired_found < 10);
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.chapters_written >= total / RECORDS_PER_CHAPTER - 1);
	assert_int_equal(stats.read_errors, 0);
	assert_true(stats.requests[UDS_POST] == total);
	uds_free_index(index);
}

static void save_load_round_trip(unsigned int zones_before, unsigned int zones_after)
{
	struct uds_parameters p = parameters(zones_before);
	uint64_t total = WINDOW / 2 + RECORDS_PER_CHAPTER / 3;
	struct uds_index *index;

	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total, 1000000);
	assert_success(uds_close_index(index));
	p.zone_count = zones_after;
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
	check_found(index, 0, total, 1000000);
	/* The load made the save stale: without a new save there is nothing clean to load. */
	uds_free_index(index);
	assert_int_equal(uds_open_index(UDS_NO_REBUILD, &p, &index), DD_END_OF_FILE);
}

static void test_save_load(void **state)
{
	(void) state;
	save_load_round_trip(1, 1);
}

static void test_save_load_zones(void **state)
{
	(void) state;
	save_load_round_trip(3, 2);
}

/*
 * A save loaded into more zones can leave a zone's part of the open chapter full: a one-zone
 * chapter one record short of closing, split between two zones, fills one of them (the names
 * that do not fit are dropped). That zone must still keep every name posted after the load, and
 * the loaded names it kept stay found.
 */
static void test_load_fills_a_zone(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, RECORDS_PER_CHAPTER - 1, 1000000);
	assert_success(uds_close_index(index));
	p.zone_count = 2;
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
	store_range(index, UDS_POST, 100000, 64, 1000000);
	check_found(index, 100000, 64, 1000000);
	assert_true(query_range(index, 0, RECORDS_PER_CHAPTER - 1, NULL, 0) >=
	            RECORDS_PER_CHAPTER / 2);
	uds_free_index(index);
}

static void test_rebuild(void **state)
{
	struct uds_parameters p = parameters(2);
	uint64_t total = WINDOW / 2 + RECORDS_PER_CHAPTER / 2;
	struct uds_index_stats stats;
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total, 1000000);
	/* Two chapters of other names: all the names above are now in closed chapters. */
	store_range(index, UDS_POST, 1000000, 2 * RECORDS_PER_CHAPTER, 1000000);
	/* Stop without saving, as a crash would (the chapters are written, the rest is lost). */
	uds_flush_index(index);
	uds_free_index(index);
	assert_success(uds_open_index(UDS_LOAD, &p, &index));
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.rebuilt);
	assert_int_equal(stats.chapters_dropped, 0);
	check_found(index, 0, total, 1000000);
	uds_free_index(index);
}

static void test_rebuild_damaged_chapter(void **state)
{
	struct uds_parameters p = parameters(1);
	uint64_t total = 4 * RECORDS_PER_CHAPTER;
	struct uds_index_stats stats;
	struct uds_index *index;
	uint8_t byte;
	int fd;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total + 5, 1000000);
	uds_free_index(index);
	/* Flip a byte in a record page of chapter 1 (slot 1, past its index pages). */
	fd = open(index_path, O_RDWR);
	assert_true(fd >= 0);
	{
		struct uds_geometry g;
		off_t offset;

		assert_success(uds_make_custom_geometry(0, RECORD_PAGES, CHAPTERS, 0, &g));
		offset = 64 * 1024 +
		         ((off_t) g.pages_per_chapter + g.index_pages_per_chapter + 1) *
		             g.bytes_per_page +
		         100;
		assert_int_equal(pread(fd, &byte, 1, offset), 1);
		byte ^= 0x10;
		assert_int_equal(pwrite(fd, &byte, 1, offset), 1);
	}
	close(fd);
	assert_success(uds_open_index(UDS_LOAD, &p, &index));
	assert_success(uds_get_index_stats(index, &stats));
	assert_int_equal(stats.chapters_dropped, 1);
	check_found(index, 0, RECORDS_PER_CHAPTER, 1000000);
	check_found(index, 2 * RECORDS_PER_CHAPTER, 2 * RECORDS_PER_CHAPTER, 1000000);
	uds_free_index(index);
}

/* Flip a byte of the index storage. */
static void flip_byte(int fd, off_t offset)
{
	uint8_t byte;

	assert_int_equal(pread(fd, &byte, 1, offset), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, offset), 1);
}

/* Whether each name of the damaged-pages test was found. */
static bool damaged_found[4 * RECORDS_PER_CHAPTER];

static void note_found(const struct uds_request *request, uint64_t number, uint64_t offset)
{
	damaged_found[number] = request->found;
	if (request->found && (data_of(request) != number + offset))
		fail_msg("name %llu has data %llu", (unsigned long long) number,
		         (unsigned long long) data_of(request));
}

/*
 * Damaged pages of a live index cost only the lookups that need them: not found, and a read
 * error counted, whichever thread checks the page: the zone thread (one request in flight), a
 * reader (many in flight), or a disk thread (the OS cache dropped first). Every index page of
 * chapter 1 is damaged, and every record page of chapter 2, each in the data of one record, so
 * that a page used unchecked would answer with the wrong data or find a name it should not.
 * Every name of chapters 0 and 3 is found with its data.
 */
static void test_damaged_pages_live(void **state)
{
	enum {
		READ_BY_ZONE,
		READ_BY_READERS,
		READ_BY_DISK_THREADS
	};
	struct uds_parameters p = parameters(1);
	uint64_t total = 4 * RECORDS_PER_CHAPTER;
	struct uds_index_stats stats;
	struct uds_geometry g;
	struct uds_index *index;
	off_t chapter_bytes;
	int fd;

	(void) state;
	assert_success(uds_make_custom_geometry(0, RECORD_PAGES, CHAPTERS, 0, &g));
	chapter_bytes = (off_t) g.pages_per_chapter * g.bytes_per_page;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total + 5, 1000000);
	assert_success(uds_close_index(index));
	fd = open(index_path, O_RDWR);
	assert_true(fd >= 0);
	for (uint32_t page = 0; page < g.pages_per_chapter; page++) {
		off_t page_offset = (off_t) page * g.bytes_per_page;

		if (page < g.index_pages_per_chapter)
			flip_byte(fd, 64 * 1024 + chapter_bytes + page_offset + 200);
		else
			flip_byte(fd, 64 * 1024 + 2 * chapter_bytes + page_offset +
			                  UDS_RECORD_PAGE_HEADER_BYTES + UDS_RECORD_NAME_BYTES);
	}
	close(fd);

	for (int reader = READ_BY_ZONE; reader <= READ_BY_DISK_THREADS; reader++) {
		assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
		if (reader == READ_BY_ZONE) {
			for (uint64_t n = 0; n < total; n++) {
				struct uds_request request =
				    run_request(index, UDS_QUERY_NO_UPDATE, n, 0);

				note_found(&request, n, 1000000);
			}
		} else {
			if (reader == READ_BY_DISK_THREADS)
				uds_drop_index_os_cache(index);
			query_range(index, 0, total, note_found, 1000000);
		}
		for (uint64_t n = 0; n < total; n++) {
			uint64_t chapter = n / RECORDS_PER_CHAPTER;

			if (damaged_found[n] != ((chapter == 0) || (chapter == 3)))
				fail_msg("reader %d: name %llu of chapter %llu found: %d", reader,
				         (unsigned long long) n, (unsigned long long) chapter,
				         damaged_found[n]);
		}
		assert_success(uds_get_index_stats(index, &stats));
		assert_true(stats.read_errors >= g.index_pages_per_chapter + RECORD_PAGES);
		assert_success(uds_close_index(index));
	}
}

static void test_bad_storage(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index *index;
	char junk[8192];
	int fd;

	(void) state;
	/* Not an index. */
	memset(junk, 0x5A, sizeof(junk));
	fd = open(index_path, O_RDWR | O_TRUNC);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t) sizeof(junk));
	close(fd);
	assert_int_equal(uds_open_index(UDS_LOAD, &p, &index), DD_BAD_MAGIC);
	/* A valid index cut short. */
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	uds_free_index(index);
	assert_int_equal(truncate(index_path, 1 << 20), 0);
	assert_int_equal(uds_open_index(UDS_LOAD, &p, &index), DD_OUT_OF_RANGE);
	/* Bad parameters. */
	p.zone_count = 17;
	assert_int_equal(uds_open_index(UDS_CREATE, &p, &index), DD_INVALID_ARGUMENT);
	p.zone_count = 1;
	p.bytes_per_page = 1000;
	assert_int_equal(uds_open_index(UDS_CREATE, &p, &index), DD_INVALID_ARGUMENT);
}

static void test_multi_zone_fill(void **state)
{
	struct uds_parameters p = parameters(4);
	uint64_t total = 2 * WINDOW;
	struct uds_index *index;

	(void) state;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, total, 1000000);
	check_found(index, total - WINDOW / 2, WINDOW / 2, 1000000);
	assert_success(uds_save_index(index));
	store_range(index, UDS_POST, total, RECORDS_PER_CHAPTER, 1000000);
	check_found(index, total, RECORDS_PER_CHAPTER, 1000000);
	uds_free_index(index);
}

/*
 * Sparse: hooks of sparse chapters stay in the volume index; the other names of a sparse chapter
 * are found once one of its hooks has brought its chapter index into the sparse cache.
 */
static void test_sparse(void **state)
{
	enum {
		SPARSE_CHAPTERS = 40,
		DENSE_CHAPTERS = 10,
	};
	struct uds_parameters p = parameters(1);
	uint64_t first_hook = UINT64_MAX;
	struct uds_index_stats stats;
	struct uds_index *index;
	struct uds_request r;
	uint64_t chapter_1 = RECORDS_PER_CHAPTER;
	uint64_t chapter_3 = 3 * RECORDS_PER_CHAPTER;

	(void) state;
	p.chapters_per_volume = SPARSE_CHAPTERS;
	p.sparse_chapters_per_volume = SPARSE_CHAPTERS - DENSE_CHAPTERS;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	/* Chapters 0..14 written, 15 open: chapters 0..5 are sparse. */
	store_range(index, UDS_POST, 0, 15 * RECORDS_PER_CHAPTER, 1000000);

	/* A non-hook of sparse chapter 3 is unknown until a hook of chapter 3 shows up. */
	for (uint64_t n = chapter_3; is_hook(n); n++)
		assert_true(n < chapter_3 + RECORDS_PER_CHAPTER);
	r = run_request(index, UDS_QUERY_NO_UPDATE, is_hook(chapter_3) ? chapter_3 + 1 : chapter_3,
	                0);
	if (!is_hook(chapter_3))
		assert_false(r.found);

	/* Read chapter 1 back in order: from its first hook on, every name is found. */
	for (uint64_t n = chapter_1; n < chapter_1 + RECORDS_PER_CHAPTER; n++) {
		r = run_request(index, UDS_QUERY_NO_UPDATE, n, 0);
		if (is_hook(n) && (first_hook == UINT64_MAX))
			first_hook = n;
		if (first_hook == UINT64_MAX)
			continue;
		if (!r.found)
			fail_msg("name %llu of sparse chapter 1 not found", (unsigned long long) n);
		assert_int_equal(r.location, UDS_LOCATION_IN_SPARSE);
		assert_int_equal(data_of(&r), n + 1000000);
	}
	assert_true(first_hook != UINT64_MAX);
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.sparse_chapters_loaded >= 1);
	assert_true(stats.sparse_cache_hits > 0);

	/* Every hook of every sparse chapter is found through the volume index. */
	for (uint64_t n = 0; n < 6 * RECORDS_PER_CHAPTER; n++) {
		if (!is_hook(n))
			continue;
		r = run_request(index, UDS_QUERY_NO_UPDATE, n, 0);
		assert_true(r.found);
		assert_int_equal(r.location, UDS_LOCATION_IN_SPARSE);
	}
	/* Every name of the dense chapters is found. */
	check_found(index, 6 * RECORDS_PER_CHAPTER, 9 * RECORDS_PER_CHAPTER, 1000000);

	/* A POST of a sparse non-hook copies it into the open chapter. */
	r = run_request(index, UDS_POST, chapter_1 + RECORDS_PER_CHAPTER - 1, 7);
	if (!is_hook(chapter_1 + RECORDS_PER_CHAPTER - 1)) {
		assert_true(r.found);
		assert_int_equal(r.location, UDS_LOCATION_IN_SPARSE);
	}
	r = run_request(index, UDS_QUERY_NO_UPDATE, chapter_1 + RECORDS_PER_CHAPTER - 1, 0);
	assert_int_equal(r.location, UDS_LOCATION_IN_OPEN_CHAPTER);
	assert_int_equal(data_of(&r), chapter_1 + RECORDS_PER_CHAPTER - 1 + 1000000);

	/* Once chapter 0 leaves the window, its hooks are gone too. */
	store_range(index, UDS_POST, 100000, SPARSE_CHAPTERS * RECORDS_PER_CHAPTER, 1000000);
	for (uint64_t n = 0; n < RECORDS_PER_CHAPTER; n++) {
		if (is_hook(n))
			assert_false(run_request(index, UDS_QUERY_NO_UPDATE, n, 0).found);
	}
	assert_success(uds_save_index(index));
	uds_free_index(index);
}

/*
 * More pages missing at once than the page cache holds (one chapter's worth, 256 requests in
 * flight spread over many chapters): requests wait for a free entry, and every name is found.
 */
static void test_small_cache(void **state)
{
	struct uds_parameters p = parameters(1);
	/* A stride of about a chapter: consecutive requests need different pages. */
	uint64_t stride = RECORDS_PER_CHAPTER + 1;
	uint64_t count = 9 * RECORDS_PER_CHAPTER;
	struct uds_index *index;

	(void) state;
	p.cache_chapters = 1;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 10 * RECORDS_PER_CHAPTER, 1000000);
	assert_int_equal(
	    run_strided(index, UDS_QUERY_NO_UPDATE, 0, count, stride, 1000000, check_data), count);
	/* QUERY copies what it finds into new chapters: stay within the window. */
	count = 4 * RECORDS_PER_CHAPTER;
	assert_int_equal(run_strided(index, UDS_QUERY, 5 * RECORDS_PER_CHAPTER, count, stride,
	                             1000000, check_data),
	                 count);
	uds_free_index(index);
}

/* The first number in [first, first + count) whose name is a hook. */
static uint64_t find_hook(uint64_t first, uint64_t count)
{
	for (uint64_t n = first; n < first + count; n++) {
		if (is_hook(n))
			return n;
	}
	fail_msg("no hook in [%llu, +%llu)", (unsigned long long) first,
	         (unsigned long long) count);
	return 0;
}

/*
 * Sparse: a newer cached chapter whose index matches a name it does not hold (another name with
 * the same chapter index bits) must not hide the older chapter that holds it.
 */
static void test_sparse_false_match(void **state)
{
	struct uds_parameters p = parameters(1);
	struct dd_record_name older;
	struct dd_record_name newer;
	struct dd_record_name other;
	struct uds_index *index;
	struct uds_request r;
	/* Far from the numbered names the test posts. */
	uint64_t number = 1ULL << 40;

	(void) state;
	p.chapters_per_volume = 40;
	p.sparse_chapters_per_volume = 30;
	while (is_hook(number))
		number++;
	/* Two non-hooks that differ only in their volume index bits. */
	make_name(number, &older);
	make_name(UINT64_MAX - number, &other);
	newer = older;
	memcpy(newer.name, other.name, 8);
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	/* Chapter 0: older + names [0, RPC - 1); chapter 1: newer + names [RPC - 1, 2 RPC - 2). */
	(void) run_named_request(index, UDS_POST, &older, 111);
	store_range(index, UDS_POST, 0, RECORDS_PER_CHAPTER - 1, 1000000);
	(void) run_named_request(index, UDS_POST, &newer, 222);
	/* Fifteen chapters written: chapters 0 and 1 are sparse. */
	store_range(index, UDS_POST, RECORDS_PER_CHAPTER - 1, 14 * RECORDS_PER_CHAPTER - 1,
	            1000000);
	/* A hook of each brings both chapter indexes into the sparse cache. */
	assert_true(
	    run_request(index, UDS_QUERY_NO_UPDATE, find_hook(0, RECORDS_PER_CHAPTER - 1), 0)
	        .found);
	assert_true(run_request(index, UDS_QUERY_NO_UPDATE,
	                        find_hook(RECORDS_PER_CHAPTER - 1, RECORDS_PER_CHAPTER - 1), 0)
	                .found);
	r = run_named_request(index, UDS_QUERY_NO_UPDATE, &older, 0);
	assert_true(r.found);
	assert_int_equal(r.location, UDS_LOCATION_IN_SPARSE);
	assert_int_equal(data_of(&r), 111);
	r = run_named_request(index, UDS_QUERY_NO_UPDATE, &newer, 0);
	assert_true(r.found);
	assert_int_equal(data_of(&r), 222);
	uds_free_index(index);
}

/* Sparse with two zones: a hook seen by one zone brings its chapter into both zones' caches. */
static void test_sparse_zones(void **state)
{
	struct uds_parameters p = parameters(2);
	struct uds_index_stats stats;
	struct uds_index *index;

	(void) state;
	p.chapters_per_volume = 40;
	p.sparse_chapters_per_volume = 30;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 15 * RECORDS_PER_CHAPTER, 1000000);
	/* Names 600..900 are in chapter 1 whichever zone they went to; it is sparse now. */
	for (uint64_t n = 600; n < 900; n++)
		(void) run_request(index, UDS_QUERY_NO_UPDATE, n, 0);
	uds_flush_index(index);
	check_found(index, 600, 300, 1000000);
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.sparse_chapters_loaded >= 2);
	uds_free_index(index);
}

/* ------------------------------------------------------------------------------------------ */
/* An index in a region of its storage                                                         */
/* ------------------------------------------------------------------------------------------ */

enum {
	/* Where the region starts: a multiple of 4096, not of 64 KiB. */
	REGION_OFFSET = (1 << 20) + 3 * 4096,
	/* Bytes of the region past what the index uses, and of the file past the region. */
	REGION_SLACK = 64 * 1024,
	TAIL_BYTES = 40 * 1024,
	PATTERN_CHUNK = 64 * 1024,
};

/** pattern_byte() - The byte the pattern puts at @position of the storage. */
static uint8_t pattern_byte(uint64_t position)
{
	return (uint8_t) ((position * 131) ^ (position >> 11) ^ 0x5b);
}

/** write_pattern() - Write the pattern over bytes [first, first + count) of a file. */
static void write_pattern(int fd, uint64_t first, uint64_t count)
{
	static uint8_t buffer[PATTERN_CHUNK];

	while (count > 0) {
		size_t bytes = (count < sizeof(buffer)) ? (size_t) count : sizeof(buffer);

		for (size_t i = 0; i < bytes; i++)
			buffer[i] = pattern_byte(first + i);
		assert_int_equal(pwrite(fd, buffer, bytes, (off_t) first), (ssize_t) bytes);
		first += bytes;
		count -= bytes;
	}
}

/** check_pattern() - Bytes [first, first + count) of the index file still hold the pattern. */
static void check_pattern(uint64_t first, uint64_t count)
{
	static uint8_t buffer[PATTERN_CHUNK];
	int fd = open(index_path, O_RDONLY);

	assert_true(fd >= 0);
	while (count > 0) {
		size_t bytes = (count < sizeof(buffer)) ? (size_t) count : sizeof(buffer);

		assert_int_equal(pread(fd, buffer, bytes, (off_t) first), (ssize_t) bytes);
		for (size_t i = 0; i < bytes; i++) {
			if (buffer[i] != pattern_byte(first + i))
				fail_msg("byte %llu outside the index's region changed",
				         (unsigned long long) (first + i));
		}
		first += bytes;
		count -= bytes;
	}
	close(fd);
}

/** fill_with_pattern() - Make the index file @bytes long, all of it the pattern. */
static void fill_with_pattern(uint64_t bytes)
{
	int fd = open(index_path, O_RDWR | O_TRUNC);

	assert_true(fd >= 0);
	write_pattern(fd, 0, bytes);
	close(fd);
}

/** file_size() - The size of the index file. */
static uint64_t file_size(void)
{
	struct stat st;

	assert_int_equal(stat(index_path, &st), 0);
	return (uint64_t) st.st_size;
}

/** index_nonce() - The nonce an index reports. */
static uint64_t index_nonce(struct uds_index *index)
{
	struct uds_index_stats stats;

	assert_success(uds_get_index_stats(index, &stats));
	return stats.nonce;
}

/*
 * An index in the middle of a file whose every byte holds a pattern: it is created over the
 * pattern, saved and loaded (its chapters searched through the mapping, the OS cache dropped
 * first), stopped without a save and rebuilt, and created again. Every name is found each time,
 * the nonce stays until the index is created again, and no byte outside the part of the region
 * that the index uses changes; nor does the file's size.
 */
static void test_region(void **state)
{
	struct uds_parameters p = parameters(2);
	uint64_t total = 3 * RECORDS_PER_CHAPTER + RECORDS_PER_CHAPTER / 2;
	uint64_t more = 2 * RECORDS_PER_CHAPTER;
	struct uds_index_stats stats;
	struct uds_index *index;
	uint64_t file_bytes;
	uint64_t needed;
	uint64_t nonce;

	(void) state;
	assert_success(uds_compute_index_size(&p, &needed));
	p.offset = REGION_OFFSET;
	p.size = needed + REGION_SLACK;
	file_bytes = p.offset + p.size + TAIL_BYTES;
	fill_with_pattern(file_bytes);

	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	nonce = index_nonce(index);
	assert_true(nonce != 0);
	store_range(index, UDS_POST, 0, total, 1000000);
	assert_success(uds_close_index(index));

	assert_success(uds_open_index(UDS_LOAD, &p, &index));
	assert_success(uds_get_index_stats(index, &stats));
	assert_false(stats.rebuilt);
	assert_true(stats.nonce == nonce);
	uds_drop_index_os_cache(index);
	check_found(index, 0, total, 1000000);
	store_range(index, UDS_POST, total, more, 1000000);
	/* Two chapters of other names put every name above in a written chapter. */
	store_range(index, UDS_POST, 5000000, 2 * RECORDS_PER_CHAPTER, 1000000);
	/* Stop without saving, as a crash would. */
	uds_flush_index(index);
	uds_free_index(index);

	assert_success(uds_open_index(UDS_LOAD, &p, &index));
	assert_success(uds_get_index_stats(index, &stats));
	assert_true(stats.rebuilt);
	assert_int_equal(stats.chapters_dropped, 0);
	assert_true(stats.nonce == nonce);
	check_found(index, 0, total + more, 1000000);
	assert_success(uds_close_index(index));

	/* Created again: a new identity, and none of the old names. */
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	assert_true(index_nonce(index) != nonce);
	assert_true(index_nonce(index) != 0);
	assert_int_equal(query_range(index, 0, 64, NULL, 0), 0);
	assert_success(uds_close_index(index));

	assert_int_equal(file_size(), file_bytes);
	check_pattern(0, p.offset);
	check_pattern(p.offset + needed, file_bytes - p.offset - needed);
}

/*
 * A region too small for the index is refused, when creating (before the file is touched) and
 * when loading; so is an offset that is not a multiple of 4096. A region given no size runs to
 * the end of the storage.
 */
static void test_region_too_small(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index *index;
	uint64_t file_bytes;
	uint64_t needed;

	(void) state;
	assert_success(uds_compute_index_size(&p, &needed));
	p.offset = REGION_OFFSET;
	file_bytes = p.offset + needed + TAIL_BYTES;
	fill_with_pattern(file_bytes);

	p.size = needed - UDS_MIN_BYTES_PER_PAGE;
	assert_int_equal(uds_open_index(UDS_CREATE, &p, &index), DD_OUT_OF_RANGE);
	check_pattern(0, file_bytes);
	p.size = needed;
	p.offset = REGION_OFFSET + 512;
	assert_int_equal(uds_open_index(UDS_CREATE, &p, &index), DD_INVALID_ARGUMENT);
	check_pattern(0, file_bytes);

	p.offset = REGION_OFFSET;
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 100, 1000000);
	assert_success(uds_close_index(index));
	p.size = needed - UDS_MIN_BYTES_PER_PAGE;
	assert_int_equal(uds_open_index(UDS_LOAD, &p, &index), DD_OUT_OF_RANGE);
	p.offset = REGION_OFFSET + 512;
	p.size = needed;
	assert_int_equal(uds_open_index(UDS_LOAD, &p, &index), DD_INVALID_ARGUMENT);
	/* A region that starts 4 KiB into the index (at its second super block) holds none. */
	p.offset = REGION_OFFSET + 4096;
	assert_int_equal(uds_open_index(UDS_NO_REBUILD, &p, &index), DD_BAD_MAGIC);
	/* No size: the region is the rest of the file, which holds the index. */
	p.offset = REGION_OFFSET;
	p.size = 0;
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
	check_found(index, 0, 100, 1000000);
	assert_success(uds_close_index(index));

	assert_int_equal(file_size(), file_bytes);
	check_pattern(0, p.offset);
	check_pattern(p.offset + needed, TAIL_BYTES);
}

/*
 * A file that ends before the region does is extended to the end of what the index uses, and
 * the bytes before the region are kept.
 */
static void test_region_extends_file(void **state)
{
	struct uds_parameters p = parameters(1);
	struct uds_index *index;
	uint64_t needed;

	(void) state;
	assert_success(uds_compute_index_size(&p, &needed));
	p.offset = REGION_OFFSET;
	fill_with_pattern(p.offset + 100);
	assert_success(uds_open_index(UDS_CREATE, &p, &index));
	store_range(index, UDS_POST, 0, 100, 1000000);
	assert_success(uds_close_index(index));
	assert_int_equal(file_size(), p.offset + needed);
	check_pattern(0, p.offset);
	assert_success(uds_open_index(UDS_NO_REBUILD, &p, &index));
	check_found(index, 0, 100, 1000000);
	assert_success(uds_close_index(index));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_semantics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_zones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_fills_a_zone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_damaged_chapter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_pages_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_storage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_zone_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_false_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_zones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_extends_file, setup, teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
