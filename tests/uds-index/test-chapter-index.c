// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the chapter index.
 *
 * A full chapter of random names, spread over the record pages in order, is put into the open
 * chapter index and packed into the chapter's index pages. Each page is opened and every name
 * must lead to its own record page; random absent names must mostly find nothing, and each one
 * that finds a page must share its list and address with a present name. Names forced to share
 * their address must each find their own page. Damaged pages, pages of another chapter or index,
 * searches for lists a page does not hold, page numbers out of range, lists that do not fit the
 * last page and lists that grow too long for any page are all checked.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chapter-index.h"
#include "geometry.h"
#include "logger.h"
#include "test-harness.h"
#include "test-random.h"

enum {
	NONCE = 0xC0FFEE,
	CHAPTER = 4242,
	MAX_PAGES = 256,
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Set bytes 8-13 of @name (the chapter index bits) to @bits. */
static void set_chapter_bits(struct dd_record_name *name, uint64_t bits)
{
	for (int i = 13; i >= 8; i--) {
		name->name[i] = (uint8_t) bits;
		bits >>= 8;
	}
}

/* The list and address of a name, computed here independently of the code under test. */
static uint64_t list_and_address(const struct uds_geometry *geometry,
                                 const struct dd_record_name *name)
{
	uint64_t bits = dd_record_name_chapter_index_bits(name);
	uint64_t address = bits & ((1ULL << geometry->chapter_address_bits) - 1);
	uint64_t list = (bits >> geometry->chapter_address_bits) % geometry->chapter_delta_lists;

	return (list << 32) | address;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a;
	uint64_t y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

/* A chapter: its names, their pages, and its packed index pages. */
struct chapter {
	struct uds_geometry geometry;
	struct uds_open_chapter_index *index;
	struct dd_record_name *names;
	uint32_t *pages;
	uint32_t count;
	uint8_t *memory;
	uint32_t page_count;
	uint32_t first_lists[MAX_PAGES];
	uint32_t list_counts[MAX_PAGES];
	struct uds_delta_page *opened;
};

/* Make a chapter of @count random names over the geometry's record pages, in page order. */
static void make_chapter(struct chapter *chapter, const struct uds_geometry *geometry,
                         uint32_t count)
{
	chapter->geometry = *geometry;
	chapter->count = count;
	chapter->names = calloc(count, sizeof(*chapter->names));
	chapter->pages = calloc(count, sizeof(*chapter->pages));
	chapter->memory = calloc(MAX_PAGES, geometry->bytes_per_page);
	chapter->opened = calloc(MAX_PAGES, sizeof(*chapter->opened));
	assert_non_null(chapter->names);
	assert_non_null(chapter->pages);
	assert_non_null(chapter->memory);
	assert_non_null(chapter->opened);
	chapter->page_count = 0;
	for (uint32_t i = 0; i < count; i++) {
		random_name(&chapter->names[i]);
		chapter->pages[i] =
		    (uint32_t) ((uint64_t) i * geometry->record_pages_per_chapter / count);
	}
	assert_success(uds_make_open_chapter_index(&chapter->geometry, NONCE, &chapter->index));
	uds_empty_open_chapter_index(chapter->index, CHAPTER);
}

static void free_chapter(struct chapter *chapter)
{
	uds_free_open_chapter_index(chapter->index);
	free(chapter->opened);
	free(chapter->memory);
	free(chapter->pages);
	free(chapter->names);
}

static void put_all(struct chapter *chapter)
{
	for (uint32_t i = 0; i < chapter->count; i++)
		assert_success(uds_put_open_chapter_index_record(chapter->index, &chapter->names[i],
		                                                 chapter->pages[i]));
}

static uint8_t *page_memory(struct chapter *chapter, uint32_t page)
{
	return chapter->memory + (size_t) page * chapter->geometry.bytes_per_page;
}

/* Pack the chapter into @page_count pages, the last of which drops what does not fit. */
static void pack_chapter(struct chapter *chapter, uint32_t page_count)
{
	uint32_t first = 0;

	assert_true(page_count <= MAX_PAGES);
	for (uint32_t p = 0; p < page_count; p++) {
		assert_success(uds_pack_open_chapter_index_page(
		    chapter->index, page_memory(chapter, p), first, p + 1 == page_count,
		    &chapter->list_counts[p]));
		chapter->first_lists[p] = first;
		first += chapter->list_counts[p];
		assert_true(first <= chapter->geometry.chapter_delta_lists);
	}
	chapter->page_count = page_count;
}

static void open_pages(struct chapter *chapter)
{
	for (uint32_t p = 0; p < chapter->page_count; p++) {
		struct uds_delta_page *page = &chapter->opened[p];

		assert_success(uds_open_chapter_index_page(page, &chapter->geometry, NONCE, CHAPTER,
		                                           page_memory(chapter, p)));
		assert_int_equal(page->lowest_list_number, chapter->first_lists[p]);
		assert_int_equal(page->index.list_count, chapter->list_counts[p]);
	}
}

/* The opened page that holds @list, or NULL if the list was not packed. */
static struct uds_delta_page *find_page(struct chapter *chapter, uint32_t list)
{
	for (uint32_t p = 0; p < chapter->page_count; p++) {
		if ((list >= chapter->first_lists[p]) &&
		    (list < chapter->first_lists[p] + chapter->list_counts[p]))
			return &chapter->opened[p];
	}
	return NULL;
}

/* Search the packed chapter for @name; UDS_NO_RECORD_PAGE when its list was not packed. */
static uint32_t search(struct chapter *chapter, const struct dd_record_name *name)
{
	uint32_t list = uds_chapter_index_list(&chapter->geometry, name);
	struct uds_delta_page *page = find_page(chapter, list);
	uint32_t record_page;

	assert_int_equal(list, list_and_address(&chapter->geometry, name) >> 32);
	if (page == NULL)
		return UDS_NO_RECORD_PAGE;
	assert_success(uds_search_chapter_index_page(page, &chapter->geometry, name, &record_page));
	return record_page;
}

static void check_all_found(struct chapter *chapter)
{
	for (uint32_t i = 0; i < chapter->count; i++)
		assert_int_equal(search(chapter, &chapter->names[i]), chapter->pages[i]);
}

/* The sorted list-and-address keys of the first @count names of @chapter (free() them). */
static uint64_t *sorted_keys(struct chapter *chapter, uint32_t count)
{
	uint64_t *keys = calloc(count + 1, sizeof(*keys));

	assert_non_null(keys);
	for (uint32_t i = 0; i < count; i++)
		keys[i] = list_and_address(&chapter->geometry, &chapter->names[i]);
	qsort(keys, count, sizeof(*keys), compare_u64);
	return keys;
}

/* Whether @name has the list and address of one of the @count @keys. */
static bool shares_address(struct chapter *chapter, const uint64_t *keys, uint32_t count,
                           const struct dd_record_name *name)
{
	uint64_t key = list_and_address(&chapter->geometry, name);

	return bsearch(&key, keys, count, sizeof(*keys), compare_u64) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Full chapters                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Absent names find a page only when they share a present name's list and address. */
static uint32_t check_absent_names(struct chapter *chapter, uint32_t tries)
{
	uint64_t *keys = sorted_keys(chapter, chapter->count);
	struct dd_record_name name;
	uint32_t false_positives = 0;

	for (uint32_t i = 0; i < tries; i++) {
		uint32_t record_page;

		random_name(&name);
		record_page = search(chapter, &name);
		if (record_page == UDS_NO_RECORD_PAGE)
			continue;
		assert_true(shares_address(chapter, keys, chapter->count, &name));
		assert_true(record_page < chapter->geometry.record_pages_per_chapter);
		false_positives++;
	}
	/*
	 * About 64 entries in the 2^address_bits addresses of a list: a rate near 1 in
	 * mean_delta (1 in 128 for a dense geometry). Allow twice that, plus a little.
	 */
	assert_true(false_positives <=
	            2 * (uint64_t) tries *
	                    (chapter->count / chapter->geometry.chapter_delta_lists) /
	                    (1ULL << chapter->geometry.chapter_address_bits) +
	                10);
	free(keys);
	return false_positives;
}

/*
 * A full chapter of random names. A dense geometry's small address range (a mean delta of 128)
 * gives a few hundred names whose address is taken: they must all find their own page too.
 */
static void full_chapter(uint32_t bytes_per_page, bool sparse)
{
	struct uds_geometry geometry;
	struct uds_delta_index_stats stats;
	struct chapter chapter;
	uint32_t false_positives;

	assert_success(uds_make_geometry(256, sparse, bytes_per_page, &geometry));
	make_chapter(&chapter, &geometry, geometry.records_per_chapter);
	put_all(&chapter);
	uds_get_delta_index_stats(chapter.index->delta_index, &stats);
	assert_int_equal(stats.overflow_count, 0);
	assert_true(stats.record_count + 64 >= chapter.count);
	if (!sparse)
		assert_true(stats.collision_count >= 100);
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	assert_int_equal(chapter.index->discarded_entries, 0);
	/* Every list is packed, the last pages empty. */
	assert_int_equal(chapter.first_lists[geometry.index_pages_per_chapter - 1] +
	                     chapter.list_counts[geometry.index_pages_per_chapter - 1],
	                 geometry.chapter_delta_lists);
	open_pages(&chapter);
	check_all_found(&chapter);
	false_positives = check_absent_names(&chapter, 200000);
	/* A dense chapter's absent names do share addresses, and then find the default page. */
	if (!sparse)
		assert_true(false_positives > 0);
	free_chapter(&chapter);
}

static void test_full_chapter_4k(void **state)
{
	(void) state;
	random_state = 1;
	full_chapter(4096, false);
}

static void test_full_chapter_32k(void **state)
{
	(void) state;
	random_state = 2;
	full_chapter(32768, false);
}

static void test_full_chapter_sparse(void **state)
{
	(void) state;
	random_state = 9;
	full_chapter(4096, true);
}

/* One open chapter index reused for several chapters keeps nothing of the earlier ones. */
static void test_reuse(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	struct dd_record_name *old_names;
	uint64_t *keys;
	uint32_t found = 0;

	(void) state;
	random_state = 3;
	assert_success(uds_make_custom_geometry(4096, 16, 8, 0, &geometry));
	make_chapter(&chapter, &geometry, geometry.records_per_chapter);
	put_all(&chapter);
	old_names = chapter.names;
	chapter.names = calloc(chapter.count, sizeof(*chapter.names));
	assert_non_null(chapter.names);
	for (uint32_t i = 0; i < chapter.count; i++)
		random_name(&chapter.names[i]);
	uds_empty_open_chapter_index(chapter.index, CHAPTER);
	assert_int_equal(chapter.index->virtual_chapter, CHAPTER);
	put_all(&chapter);
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	check_all_found(&chapter);
	/* An old name finds a page only through a new name at its address. */
	keys = sorted_keys(&chapter, chapter.count);
	for (uint32_t i = 0; i < chapter.count; i++) {
		if (search(&chapter, &old_names[i]) == UDS_NO_RECORD_PAGE)
			continue;
		assert_true(shares_address(&chapter, keys, chapter.count, &old_names[i]));
		found++;
	}
	/* About 1 in 128 of them do. */
	assert_true(found <= chapter.count / 32);
	free(keys);
	free(old_names);
	free_chapter(&chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* Collisions                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void test_collisions(void **state)
{
	/* Page of each name of a group sharing one address; the group's first is the default. */
	static const uint32_t group_pages[] = { 1, 2, 1, 3, 7, 0, 2, 5 };
	enum {
		GROUP = sizeof(group_pages) / sizeof(group_pages[0]),
		GROUPS = 40,
	};
	struct uds_geometry geometry;
	struct chapter chapter;
	struct dd_record_name names[GROUPS][GROUP];
	struct dd_record_name stranger;

	(void) state;
	random_state = 4;
	assert_success(uds_make_custom_geometry(4096, 8, 8, 0, &geometry));
	/* A background of ordinary names. */
	make_chapter(&chapter, &geometry, geometry.records_per_chapter / 2);
	put_all(&chapter);
	for (uint32_t g = 0; g < GROUPS; g++) {
		uint64_t bits = next_random() & ((1ULL << 48) - 1);

		for (uint32_t n = 0; n < GROUP; n++) {
			random_name(&names[g][n]);
			set_chapter_bits(&names[g][n], bits);
			assert_success(uds_put_open_chapter_index_record(
			    chapter.index, &names[g][n], group_pages[n]));
		}
	}
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	check_all_found(&chapter);
	for (uint32_t g = 0; g < GROUPS; g++) {
		for (uint32_t n = 0; n < GROUP; n++)
			assert_int_equal(search(&chapter, &names[g][n]), group_pages[n]);
		/* Another name at the address gets the default: the page of the first. */
		random_name(&stranger);
		set_chapter_bits(&stranger, dd_record_name_chapter_index_bits(&names[g][0]));
		assert_int_equal(search(&chapter, &stranger), group_pages[0]);
	}
	free_chapter(&chapter);
}

/* A name put again ends up with its last page, whether it was a default or a collision. */
static void test_repeated_names(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	struct dd_record_name first;
	struct dd_record_name second;
	struct dd_record_name lone;

	(void) state;
	random_state = 5;
	assert_success(uds_make_custom_geometry(4096, 8, 8, 0, &geometry));
	make_chapter(&chapter, &geometry, 100);
	put_all(&chapter);
	random_name(&first);
	random_name(&second);
	random_name(&lone);
	set_chapter_bits(&second, dd_record_name_chapter_index_bits(&first));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &first, 2));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &second, 3));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &second, 6));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &first, 4));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &first, 5));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &lone, 1));
	assert_success(uds_put_open_chapter_index_record(chapter.index, &lone, 1));
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	check_all_found(&chapter);
	assert_int_equal(search(&chapter, &first), 5);
	assert_int_equal(search(&chapter, &second), 6);
	assert_int_equal(search(&chapter, &lone), 1);
	free_chapter(&chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* Bad input and damage                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_bad_page_number(void **state)
{
	struct uds_geometry geometry;
	struct uds_open_chapter_index *index;
	struct dd_record_name name;

	(void) state;
	random_state = 6;
	assert_success(uds_make_custom_geometry(4096, 5, 8, 0, &geometry));
	assert_success(uds_make_open_chapter_index(&geometry, NONCE, &index));
	assert_true(index->memory_size > 0);
	uds_empty_open_chapter_index(index, CHAPTER);
	random_name(&name);
	assert_int_equal(uds_put_open_chapter_index_record(index, &name, 5), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_put_open_chapter_index_record(index, &name, UINT32_MAX),
	                 DD_INVALID_ARGUMENT);
	assert_success(uds_put_open_chapter_index_record(index, &name, 4));
	uds_free_open_chapter_index(index);
	uds_free_open_chapter_index(NULL);
}

/* A value beyond the chapter's record pages (which the payload width allows) is corrupt. */
static void test_value_out_of_range(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	struct uds_delta_entry entry;
	uint32_t list;
	uint32_t address;
	uint32_t record_page;

	(void) state;
	random_state = 7;
	assert_success(uds_make_custom_geometry(4096, 5, 8, 0, &geometry));
	assert_int_equal(geometry.chapter_payload_bits, 3);
	make_chapter(&chapter, &geometry, geometry.records_per_chapter);
	put_all(&chapter);
	address = (uint32_t) list_and_address(&geometry, &chapter.names[0]);
	list = (uint32_t) (list_and_address(&geometry, &chapter.names[0]) >> 32);
	assert_success(
	    uds_get_delta_entry(chapter.index->delta_index, list, address, NULL, &entry));
	assert_int_equal(entry.key, address);
	assert_success(uds_set_delta_entry_value(&entry, 6));
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	assert_int_equal(uds_search_chapter_index_page(find_page(&chapter, list), &geometry,
	                                               &chapter.names[0], &record_page),
	                 DD_CORRUPT_DATA);
	assert_int_equal(search(&chapter, &chapter.names[1]), chapter.pages[1]);
	free_chapter(&chapter);
}

static void test_wrong_list(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	uint32_t record_page = 17;
	uint32_t searched = 0;

	(void) state;
	random_state = 8;
	assert_success(uds_make_geometry(256, false, 0, &geometry));
	make_chapter(&chapter, &geometry, geometry.records_per_chapter / 4);
	put_all(&chapter);
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	assert_true(chapter.list_counts[1] > 0);
	for (uint32_t i = 0; i < chapter.count; i++) {
		uint32_t list = uds_chapter_index_list(&geometry, &chapter.names[i]);

		/* Lists below and above page 1's range. */
		if ((list >= chapter.first_lists[1]) &&
		    (list < chapter.first_lists[1] + chapter.list_counts[1]))
			continue;
		assert_int_equal(uds_search_chapter_index_page(&chapter.opened[1], &geometry,
		                                               &chapter.names[i], &record_page),
		                 DD_INVALID_ARGUMENT);
		if (++searched == 10)
			break;
	}
	assert_int_equal(searched, 10);
	assert_int_equal(record_page, 17);
	free_chapter(&chapter);
}

static void test_damaged_pages(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	struct uds_delta_page page;
	enum dd_log_level level = dd_log_get_level();
	uint8_t *memory;

	(void) state;
	random_state = 9;
	assert_success(uds_make_geometry(256, false, 0, &geometry));
	make_chapter(&chapter, &geometry, geometry.records_per_chapter);
	put_all(&chapter);
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	memory = page_memory(&chapter, 3);

	/* Another chapter (an older lap of the ring) or another index. */
	assert_int_equal(uds_open_chapter_index_page(&page, &geometry, NONCE, CHAPTER + 1, memory),
	                 DD_CORRUPT_DATA);
	assert_int_equal(
	    uds_open_chapter_index_page(&page, &geometry, NONCE, CHAPTER - 1024, memory),
	    DD_CORRUPT_DATA);
	assert_int_not_equal(
	    uds_open_chapter_index_page(&page, &geometry, NONCE + 1, CHAPTER, memory), DD_SUCCESS);

	/* Every single bit flip (the warnings they log are expected; keep them quiet). */
	dd_log_set_level(DD_LOG_ERROR);
	for (uint32_t bit = 0; bit < geometry.bytes_per_page * 8; bit++) {
		memory[bit / 8] ^= (uint8_t) (1 << (bit % 8));
		assert_int_not_equal(
		    uds_open_chapter_index_page(&page, &geometry, NONCE, CHAPTER, memory),
		    DD_SUCCESS);
		memory[bit / 8] ^= (uint8_t) (1 << (bit % 8));
	}
	dd_log_set_level(level);

	open_pages(&chapter);
	check_all_found(&chapter);
	free_chapter(&chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* Overflow                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* With too few pages, the lists the last page cannot hold are dropped and counted. */
static void test_last_page_overflow(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	uint32_t pages = 10;
	uint32_t packed;
	uint64_t dropped = 0;

	(void) state;
	random_state = 10;
	assert_success(uds_make_geometry(256, false, 0, &geometry));
	assert_true(geometry.index_pages_per_chapter > 2 * pages);
	make_chapter(&chapter, &geometry, geometry.records_per_chapter);
	put_all(&chapter);
	pack_chapter(&chapter, pages);
	packed = chapter.first_lists[pages - 1] + chapter.list_counts[pages - 1];
	assert_true(packed < geometry.chapter_delta_lists / 2);
	open_pages(&chapter);
	for (uint32_t i = 0; i < chapter.count; i++) {
		uint32_t list = uds_chapter_index_list(&geometry, &chapter.names[i]);

		if (list >= packed) {
			dropped++;
			assert_int_equal(search(&chapter, &chapter.names[i]), UDS_NO_RECORD_PAGE);
		} else {
			assert_int_equal(search(&chapter, &chapter.names[i]), chapter.pages[i]);
		}
	}
	/* Names that share a list, address and page share one entry; random names rarely do. */
	assert_true(chapter.index->discarded_entries <= dropped);
	assert_true(chapter.index->discarded_entries + 2 >= dropped);
	free_chapter(&chapter);
}

/* Names chosen to crowd one list are refused before the list outgrows a page. */
static void test_long_list(void **state)
{
	struct uds_geometry geometry;
	struct chapter chapter;
	uint32_t accepted = 0;
	uint32_t refused = 0;
	uint64_t *keys;

	(void) state;
	random_state = 11;
	assert_success(uds_make_custom_geometry(4096, 16, 8, 0, &geometry));
	make_chapter(&chapter, &geometry, 3000);
	for (uint32_t i = 0; i < chapter.count; i++) {
		uint64_t bits = dd_record_name_chapter_index_bits(&chapter.names[i]);
		int result;

		/* List 5: keep the address bits, replace the list bits. */
		bits &= (1ULL << geometry.chapter_address_bits) - 1;
		bits |= 5ULL << geometry.chapter_address_bits;
		set_chapter_bits(&chapter.names[i], bits);
		result = uds_put_open_chapter_index_record(chapter.index, &chapter.names[i],
		                                           chapter.pages[i]);
		if (result == DD_SUCCESS) {
			assert_int_equal(refused, 0);
			accepted++;
		} else {
			assert_int_equal(result, DD_OVERFLOW);
			chapter.pages[i] = UDS_NO_RECORD_PAGE;
			refused++;
		}
	}
	assert_true(accepted > 500);
	assert_true(refused > 0);
	assert_int_equal(chapter.index->discarded_entries, refused);
	pack_chapter(&chapter, geometry.index_pages_per_chapter);
	open_pages(&chapter);
	assert_int_equal(chapter.first_lists[chapter.page_count - 1] +
	                     chapter.list_counts[chapter.page_count - 1],
	                 geometry.chapter_delta_lists);
	assert_int_equal(chapter.index->discarded_entries, refused);
	/*
	 * Accepted names find their page. A refused name finds nothing, unless it shares its
	 * address with an accepted one (they crowd one list of 2^13 addresses, so some do): it then
	 * finds that name's page, as any absent name would.
	 */
	keys = sorted_keys(&chapter, accepted);
	for (uint32_t i = 0; i < chapter.count; i++) {
		if (i < accepted)
			assert_int_equal(search(&chapter, &chapter.names[i]), chapter.pages[i]);
		else if (!shares_address(&chapter, keys, accepted, &chapter.names[i]))
			assert_int_equal(search(&chapter, &chapter.names[i]), UDS_NO_RECORD_PAGE);
	}
	free(keys);
	free_chapter(&chapter);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_chapter_4k),
		cmocka_unit_test(test_full_chapter_32k),
		cmocka_unit_test(test_full_chapter_sparse),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_repeated_names),
		cmocka_unit_test(test_bad_page_number),
		cmocka_unit_test(test_value_out_of_range),
		cmocka_unit_test(test_wrong_list),
		cmocka_unit_test(test_damaged_pages),
		cmocka_unit_test(test_last_page_overflow),
		cmocka_unit_test(test_long_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
