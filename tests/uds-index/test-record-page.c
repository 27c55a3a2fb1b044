// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of record pages.
 *
 * Pages of random records (every small count, and full pages of 4 KiB and 32 KiB) are encoded,
 * validated and searched: every record must be found with its data, names that are absent
 * (random ones, and neighbours of present ones that differ in a single bit) must not be, and the
 * tree must hold the sorted records in in-order position. Damage must be caught: every single
 * bit flip of a 4 KiB page, a page checked against the wrong nonce, chapter or page number, and
 * structurally bad pages whose checksum has been recomputed (as a buggy writer would leave them).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "geometry.h"
#include "record-page.h"
#include "test-harness.h"
#include "test-random.h"

enum {
	NONCE = 0x5eed1e55,
	CHAPTER = 77,
	PAGE_NUMBER = 3,
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void random_bytes(uint8_t *bytes, size_t count)
{
	for (size_t i = 0; i < count; i += 8) {
		uint64_t value = next_random();

		memcpy(bytes + i, &value, (count - i < 8) ? count - i : 8);
	}
}

static void random_records(struct uds_volume_record *records, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		random_bytes(records[i].name.name, sizeof(records[i].name.name));
		random_bytes(records[i].data.data, sizeof(records[i].data.data));
	}
}

static void make_geometry(uint32_t bytes_per_page, struct uds_geometry *geometry)
{
	assert_success(uds_make_custom_geometry(bytes_per_page, 4, 4, 0, geometry));
	assert_int_equal(geometry->records_per_page,
	                 (bytes_per_page - UDS_RECORD_PAGE_HEADER_BYTES) / UDS_RECORD_BYTES);
}

static int compare_names(const void *a, const void *b)
{
	return memcmp(a, b, UDS_RECORD_NAME_BYTES);
}

/* Recompute the checksum of a page after a deliberate change, as a buggy writer would. */
static void reseal_page(const struct uds_geometry *geometry, uint8_t *page, uint64_t nonce)
{
	uint64_t seed = XXH3_64bits_withSeed(page, 24, nonce);
	uint64_t checksum = XXH3_64bits_withSeed(page + 32, geometry->bytes_per_page - 32, seed);

	for (int i = 0; i < 8; i++)
		page[24 + i] = (uint8_t) (checksum >> (8 * i));
}

static uint16_t get_le16(const uint8_t *bytes)
{
	return (uint16_t) (bytes[0] | (bytes[1] << 8));
}

/* Encode @count random records into @page, returning them (sorted) in @records. */
static void encode_random_page(const struct uds_geometry *geometry, uint32_t count,
                               struct uds_volume_record *records, uint8_t *page)
{
	random_records(records, count);
	assert_success(
	    uds_encode_record_page(geometry, NONCE, CHAPTER, PAGE_NUMBER, records, count, page));
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The in-order walk of a tree of @count nodes in slots, as a recursive reference. */
static void walk_tree(uint32_t slot, uint32_t count, uint32_t *order, uint32_t *next)
{
	if (slot >= count)
		return;
	walk_tree(2 * slot + 1, count, order, next);
	order[(*next)++] = slot;
	walk_tree(2 * slot + 2, count, order, next);
}

/* Check the page layout: header fields, the sorted records in tree order, zeroed free slots. */
static void check_layout(const struct uds_geometry *geometry, const uint8_t *page,
                         const struct uds_volume_record *sorted, uint32_t count)
{
	uint32_t *order = calloc(count + 1, sizeof(*order));
	uint32_t next = 0;
	size_t used = UDS_RECORD_PAGE_HEADER_BYTES + (size_t) count * UDS_RECORD_BYTES;

	assert_non_null(order);
	assert_memory_equal(page, "URPG", 4);
	assert_int_equal(get_le16(page + 4), 1);
	assert_int_equal(get_le16(page + 6), count);
	assert_int_equal(page[8], PAGE_NUMBER);
	assert_int_equal(uds_get_record_page_chapter(page), CHAPTER);
	walk_tree(0, count, order, &next);
	assert_int_equal(next, count);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *slot =
		    page + UDS_RECORD_PAGE_HEADER_BYTES + order[i] * UDS_RECORD_BYTES;

		assert_memory_equal(slot, sorted[i].name.name, UDS_RECORD_NAME_BYTES);
		assert_memory_equal(slot + UDS_RECORD_NAME_BYTES, sorted[i].data.data,
		                    UDS_RECORD_DATA_BYTES);
	}
	for (size_t i = used; i < geometry->bytes_per_page; i++)
		assert_int_equal(page[i], 0);
	free(order);
}

/* Search for every record, for neighbours of every record, and for random names. */
static void check_searches(const struct uds_geometry *geometry, const uint8_t *page,
                           const struct uds_volume_record *records, uint32_t count)
{
	struct uds_record_data data;
	struct dd_record_name name;

	for (uint32_t i = 0; i < count; i++) {
		memset(&data, 0, sizeof(data));
		assert_true(uds_search_record_page(geometry, page, &records[i].name, &data));
		assert_memory_equal(data.data, records[i].data.data, UDS_RECORD_DATA_BYTES);
		assert_true(uds_search_record_page(geometry, page, &records[i].name, NULL));
		for (unsigned int bit = 0; bit < 128; bit += 9) {
			name = records[i].name;
			name.name[bit / 8] ^= (uint8_t) (1 << (bit % 8));
			assert_false(uds_search_record_page(geometry, page, &name, &data));
		}
	}
	for (int i = 0; i < 1000; i++) {
		random_bytes(name.name, sizeof(name.name));
		assert_false(uds_search_record_page(geometry, page, &name, NULL));
	}
	memset(name.name, 0, sizeof(name.name));
	assert_false(uds_search_record_page(geometry, page, &name, NULL));
	memset(name.name, 0xFF, sizeof(name.name));
	assert_false(uds_search_record_page(geometry, page, &name, NULL));
}

static void round_trip(uint32_t bytes_per_page, uint32_t count)
{
	struct uds_geometry geometry;
	struct uds_volume_record *records;
	struct uds_volume_record *copy;
	struct uds_volume_record *out;
	uint8_t *page;

	make_geometry(bytes_per_page, &geometry);
	if (count > geometry.records_per_page)
		count = geometry.records_per_page;
	records = calloc(geometry.records_per_page, sizeof(*records));
	copy = calloc(geometry.records_per_page, sizeof(*copy));
	out = calloc(geometry.records_per_page, sizeof(*out));
	page = malloc(bytes_per_page);
	assert_non_null(records);
	assert_non_null(copy);
	assert_non_null(out);
	assert_non_null(page);
	memset(page, 0xA5, bytes_per_page);

	random_records(records, count);
	memcpy(copy, records, count * sizeof(*records));
	qsort(copy, count, sizeof(*copy), compare_names);
	assert_success(
	    uds_encode_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, records, count, page));
	/* The records come back sorted in place. */
	assert_memory_equal(records, copy, count * sizeof(*records));
	assert_success(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
	check_layout(&geometry, page, copy, count);
	check_searches(&geometry, page, copy, count);

	assert_int_equal(uds_get_record_page_records(&geometry, page, out), count);
	qsort(out, count, sizeof(*out), compare_names);
	assert_memory_equal(out, copy, count * sizeof(*out));

	free(page);
	free(out);
	free(copy);
	free(records);
}

static void test_round_trips(void **state)
{
	static const uint32_t sizes[] = { 4096, 32768 };
	static const uint32_t counts[] = { 0, 1, 2, 3, 7, 8, 15, 25, 26, 100, 1000, UINT32_MAX };

	(void) state;
	random_state = 1;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
			round_trip(sizes[s], counts[c]);
	}
}

/* Every count from 0 to a full 4 KiB page, and a full 64 KiB page. */
static void test_every_count(void **state)
{
	(void) state;
	random_state = 2;
	for (uint32_t count = 0; count <= 127; count++)
		round_trip(4096, count);
	round_trip(65536, UINT32_MAX);
}

/* Names that share a long prefix defeat the bucket sort; they must still sort and be found. */
static void test_shared_prefixes(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[1023];
	struct uds_volume_record copy[1023];
	uint8_t *page = malloc(32768);

	(void) state;
	assert_non_null(page);
	random_state = 3;
	make_geometry(32768, &geometry);
	for (unsigned int prefix = 0; prefix <= 14; prefix += (prefix < 10) ? 5 : 4) {
		random_records(records, geometry.records_per_page);
		for (uint32_t i = 0; i < geometry.records_per_page; i++) {
			/* Distinct last two bytes, in scrambled order, keep the names distinct. */
			uint16_t tail = (uint16_t) (i * 0x9E37u);

			memset(records[i].name.name, 0x42, prefix);
			records[i].name.name[14] = (uint8_t) (tail >> 8);
			records[i].name.name[15] = (uint8_t) tail;
		}
		memcpy(copy, records, sizeof(records));
		qsort(copy, geometry.records_per_page, sizeof(copy[0]), compare_names);
		assert_success(uds_encode_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER,
		                                      records, geometry.records_per_page, page));
		assert_memory_equal(records, copy, sizeof(records));
		assert_success(
		    uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
		check_searches(&geometry, page, copy, geometry.records_per_page);
	}
	free(page);
}

/* A page given the same name twice still encodes, validates and finds it. */
static void test_repeated_name(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[127];
	struct uds_record_data data;
	uint8_t page[4096];

	(void) state;
	random_state = 4;
	make_geometry(4096, &geometry);
	random_records(records, 127);
	records[90].name = records[10].name;
	records[90].data = records[10].data;
	assert_success(
	    uds_encode_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, records, 127, page));
	assert_success(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
	for (uint32_t i = 0; i < 127; i++) {
		assert_true(uds_search_record_page(&geometry, page, &records[i].name, &data));
		assert_memory_equal(data.data, records[i].data.data, UDS_RECORD_DATA_BYTES);
	}
}

static void test_too_many_records(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[128];
	uint8_t page[4096];

	(void) state;
	random_state = 5;
	make_geometry(4096, &geometry);
	random_records(records, 128);
	assert_int_equal(
	    uds_encode_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, records, 128, page),
	    DD_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void flip_every_bit(const struct uds_geometry *geometry, uint8_t *page)
{
	for (uint32_t bit = 0; bit < geometry->bytes_per_page * 8; bit++) {
		page[bit / 8] ^= (uint8_t) (1 << (bit % 8));
		assert_int_not_equal(
		    uds_validate_record_page(geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
		    DD_SUCCESS);
		page[bit / 8] ^= (uint8_t) (1 << (bit % 8));
	}
	assert_success(uds_validate_record_page(geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
}

static void test_bit_flips(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[127];
	uint8_t page[4096];

	(void) state;
	random_state = 6;
	make_geometry(4096, &geometry);
	encode_random_page(&geometry, 127, records, page);
	flip_every_bit(&geometry, page);
	/* A partly full page: flips in its zeroed free slots count too. */
	encode_random_page(&geometry, 7, records, page);
	flip_every_bit(&geometry, page);
}

static void test_wrong_identity(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[127];
	uint8_t page[4096];

	(void) state;
	random_state = 7;
	make_geometry(4096, &geometry);
	encode_random_page(&geometry, 100, records, page);
	assert_success(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
	assert_int_equal(uds_validate_record_page(&geometry, NONCE + 1, CHAPTER, PAGE_NUMBER, page),
	                 DD_CHECKSUM_MISMATCH);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER + 1, PAGE_NUMBER, page),
	                 DD_CORRUPT_DATA);
	assert_int_equal(
	    uds_validate_record_page(&geometry, NONCE, CHAPTER + 1024, PAGE_NUMBER, page),
	    DD_CORRUPT_DATA);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER + 1, page),
	                 DD_CORRUPT_DATA);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, 0, page),
	                 DD_CORRUPT_DATA);
	/* The same page written for another chapter and page is told apart. */
	encode_random_page(&geometry, 100, records, page);
	assert_success(uds_encode_record_page(&geometry, NONCE, CHAPTER + 1, PAGE_NUMBER + 1,
	                                      records, 100, page));
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_CORRUPT_DATA);
	assert_success(
	    uds_validate_record_page(&geometry, NONCE, CHAPTER + 1, PAGE_NUMBER + 1, page));
	assert_int_equal(uds_get_record_page_chapter(page), CHAPTER + 1);
}

/* Structural damage behind a valid checksum. */
static void test_resealed_damage(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_record records[127];
	uint8_t good[4096];
	uint8_t page[4096];

	(void) state;
	random_state = 8;
	make_geometry(4096, &geometry);
	encode_random_page(&geometry, 127, records, good);

	memcpy(page, good, sizeof(page));
	page[0] = 'X';
	reseal_page(&geometry, page, NONCE);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_BAD_MAGIC);

	memcpy(page, good, sizeof(page));
	page[4] = 2;
	reseal_page(&geometry, page, NONCE);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_UNSUPPORTED_VERSION);

	/* A count beyond the page. */
	memcpy(page, good, sizeof(page));
	page[6] = 128;
	reseal_page(&geometry, page, NONCE);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_CORRUPT_DATA);
	/* Searching such a page anyway stays within the page. */
	assert_true(uds_search_record_page(&geometry, page, &records[5].name, NULL));

	/* Reserved bits set. */
	memcpy(page, good, sizeof(page));
	page[12] = 1;
	reseal_page(&geometry, page, NONCE);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_CORRUPT_DATA);

	/* Two records swapped: the root and its left child. */
	for (uint32_t other = 1; other < 127; other += 37) {
		memcpy(page, good, sizeof(page));
		memcpy(page + 32, good + 32 + 32 * other, 32);
		memcpy(page + 32 + 32 * other, good + 32, 32);
		reseal_page(&geometry, page, NONCE);
		assert_int_equal(
		    uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
		    DD_CORRUPT_DATA);
	}

	/* A count one larger than the records: the extra node (zeros) is out of order. */
	encode_random_page(&geometry, 100, records, good);
	memcpy(page, good, sizeof(page));
	page[6] = 101;
	reseal_page(&geometry, page, NONCE);
	assert_int_equal(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page),
	                 DD_CORRUPT_DATA);

	/* Resealing without damage keeps the page valid (the reseal matches the format). */
	memcpy(page, good, sizeof(page));
	reseal_page(&geometry, page, NONCE);
	assert_success(uds_validate_record_page(&geometry, NONCE, CHAPTER, PAGE_NUMBER, page));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),      cmocka_unit_test(test_every_count),
		cmocka_unit_test(test_shared_prefixes),  cmocka_unit_test(test_repeated_name),
		cmocka_unit_test(test_too_many_records), cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_wrong_identity),   cmocka_unit_test(test_resealed_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
