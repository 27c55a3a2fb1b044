// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of record names: the hash against xxHash itself and a published vector, the field
 * extractors on a name whose bytes are known, hex formatting and strict hex parsing.
 */
#include <string.h>

#include <xxhash.h>

#include "errors.h"
#include "record-name.h"
#include "test-harness.h"

/* XXH3-128 of the empty input, from xxHash's own sanity tests, high half first. */
static const char EMPTY_INPUT_NAME[] = "99aa06d3014798d86001c324468d497f";

/* Compute the expected name straight from xxHash, without the code under test. */
static void expected_name(const void *data, size_t length, uint8_t expected[16])
{
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, XXH3_128bits(data, length));
	memcpy(expected, canonical.digest, 16);
}

static void test_hash_matches_xxhash(void **state)
{
	static const size_t lengths[] = { 0, 1, 3, 16, 17, 128, 129, 240, 241, 1000, 4096, 65536 };
	static uint8_t data[65536];
	struct dd_record_name name;
	uint8_t expected[16];

	(void) state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t) (i * 7 + (i >> 8));
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		dd_record_name_of_block(data, lengths[i], &name);
		expected_name(data, lengths[i], expected);
		assert_memory_equal(name.name, expected, 16);
	}
}

static void test_hash_of_empty_input(void **state)
{
	char hex[DD_RECORD_NAME_HEX_SIZE];
	struct dd_record_name name;
	XXH128_hash_t hash = XXH3_128bits("", 0);

	(void) state;
	assert_true(hash.high64 == 0x99aa06d3014798d8ULL);
	assert_true(hash.low64 == 0x6001c324468d497fULL);
	dd_record_name_of_block(NULL, 0, &name);
	dd_record_name_to_hex(&name, hex);
	assert_string_equal(hex, EMPTY_INPUT_NAME);
	/* The canonical form is big-endian: the high half's top byte comes first. */
	assert_int_equal(name.name[0], 0x99);
	assert_int_equal(name.name[15], 0x7f);
}

static void test_different_data_different_names(void **state)
{
	struct dd_record_name a;
	struct dd_record_name b;
	struct dd_record_name c;

	(void) state;
	dd_record_name_of_block("block one", 9, &a);
	dd_record_name_of_block("block two", 9, &b);
	dd_record_name_of_block("block one", 9, &c);
	assert_false(dd_record_name_equal(&a, &b));
	assert_true(dd_record_name_equal(&a, &c));
	assert_int_equal(dd_record_name_compare(&a, &c), 0);
}

static void test_extractors(void **state)
{
	struct dd_record_name name;

	(void) state;
	for (int i = 0; i < DD_RECORD_NAME_SIZE; i++)
		name.name[i] = (uint8_t) i;
	assert_true(dd_record_name_volume_index_bits(&name) == 0x0001020304050607ULL);
	assert_true(dd_record_name_chapter_index_bits(&name) == 0x08090a0b0c0dULL);
	assert_int_equal(dd_record_name_sample_bits(&name), 0x0e0f);

	memset(name.name, 0xff, sizeof(name.name));
	assert_true(dd_record_name_volume_index_bits(&name) == UINT64_MAX);
	assert_true(dd_record_name_chapter_index_bits(&name) == 0xffffffffffffULL);
	assert_int_equal(dd_record_name_sample_bits(&name), 0xffff);

	/* Each field sees only its own bytes. */
	memset(name.name, 0, sizeof(name.name));
	name.name[7] = 0x80;
	name.name[13] = 0x01;
	name.name[14] = 0x80;
	assert_true(dd_record_name_volume_index_bits(&name) == 0x80);
	assert_true(dd_record_name_chapter_index_bits(&name) == 0x01);
	assert_int_equal(dd_record_name_sample_bits(&name), 0x8000);
}

static void test_compare_orders_bytes(void **state)
{
	struct dd_record_name low = { { 0 } };
	struct dd_record_name high = { { 0 } };

	(void) state;
	low.name[15] = 0xff;
	high.name[0] = 0x01;
	assert_true(dd_record_name_compare(&low, &high) < 0);
	assert_true(dd_record_name_compare(&high, &low) > 0);
	assert_false(dd_record_name_equal(&low, &high));
}

static void test_hex_round_trip(void **state)
{
	char hex[DD_RECORD_NAME_HEX_SIZE];
	struct dd_record_name name;
	struct dd_record_name parsed;

	(void) state;
	for (int i = 0; i < DD_RECORD_NAME_SIZE; i++)
		name.name[i] = (uint8_t) (0x10 * i + 15 - i);
	dd_record_name_to_hex(&name, hex);
	assert_string_equal(hex, "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
	assert_success(dd_record_name_from_hex(hex, &parsed));
	assert_true(dd_record_name_equal(&name, &parsed));

	assert_success(dd_record_name_from_hex("0F1E2D3C4B5A69788796A5B4C3D2E1F0", &parsed));
	assert_true(dd_record_name_equal(&name, &parsed));

	dd_record_name_of_block("round trip", 10, &name);
	dd_record_name_to_hex(&name, hex);
	assert_int_equal(strlen(hex), 32);
	assert_success(dd_record_name_from_hex(hex, &parsed));
	assert_true(dd_record_name_equal(&name, &parsed));
}

static void test_hex_rejects_bad_input(void **state)
{
	static const char *const bad[] = {
		"",
		"0",
		"99aa06d3014798d86001c324468d497",   /* 31 digits */
		"99aa06d3014798d86001c324468d497f0", /* 33 digits */
		"99aa06d3014798d86001c324468d497g",
		"g9aa06d3014798d86001c324468d497f",
		"0x99aa06d3014798d86001c324468d49",
		" 99aa06d3014798d86001c324468d497",
		"99aa06d3014798d86001c324468d497 ",
		"99aa06d3014798d8-001c324468d497f",
		"99aa06d3014798d86001c324468d497f\n",
	};
	struct dd_record_name name;
	struct dd_record_name before;

	(void) state;
	memset(name.name, 0x5a, sizeof(name.name));
	before = name;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dd_record_name_from_hex(bad[i], &name), DD_INVALID_ARGUMENT);
		assert_true(dd_record_name_equal(&name, &before));
	}
	assert_int_equal(dd_record_name_from_hex(NULL, &name), DD_INVALID_ARGUMENT);
	assert_true(dd_record_name_equal(&name, &before));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_matches_xxhash),
		cmocka_unit_test(test_hash_of_empty_input),
		cmocka_unit_test(test_different_data_different_names),
		cmocka_unit_test(test_extractors),
		cmocka_unit_test(test_compare_orders_bytes),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hex_rejects_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
