// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of what format lays down and how it is read back: layouts for many sizes and every
 * refused configuration, the super block (round trip, each kind of damage, torn and lost
 * writes of a copy), sector checks, block map pages and slab summary blocks (round trips,
 * torn writes, corruption), and format itself on a RAM device.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "block-map-page.h"
#include "byte-order.h"
#include "errors.h"
#include "format.h"
#include "layout.h"
#include "memory-alloc.h"
#include "sector-check.h"
#include "summary-block.h"
#include "super-block.h"
#include "test-harness.h"

enum {
	NONCE = 0x0123456789abcdefULL,
};

static uint8_t *make_block(void)
{
	uint8_t *block;

	assert_success(dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "block", &block));
	return block;
}

static void check_layout_invariants(const struct vdo_layout *layout)
{
	assert_success(vdo_check_layout(layout));
	assert_true(layout->slab_data_blocks <=
	            (uint64_t) layout->slab_ref_blocks * VDO_COUNTS_PER_REF_BLOCK);
	assert_int_equal(layout->slab_data_blocks + layout->slab_ref_blocks +
	                     layout->slab_journal_blocks,
	                 layout->slab_blocks);
	assert_true(vdo_slab_origin(layout, layout->slab_count) <= layout->physical_blocks);
	assert_true(vdo_slab_origin(layout, layout->slab_count + 1) > layout->physical_blocks);
}

static void test_default_layouts(void **state)
{
	static const uint64_t sizes[] = { 1024,       4096,       65536,     262144,
		                          1ULL << 24, 1ULL << 28, 1ULL << 32 };
	struct vdo_format_config config = { 0 };
	struct vdo_layout layout;

	(void) state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_success(vdo_compute_layout(&config, sizes[i], &layout));
		check_layout_invariants(&layout);
		assert_int_equal(layout.logical_blocks, vdo_data_blocks(&layout));
		assert_true(layout.slab_count >= 1);
	}
	/* Large volumes get 2 GiB slabs and the largest default journals. */
	assert_success(vdo_compute_layout(&config, 1ULL << 32, &layout));
	assert_int_equal(layout.slab_blocks, 1U << 19);
	assert_int_equal(layout.slab_journal_blocks, 224);
	assert_int_equal(layout.journal_blocks, 32768);
	/* Thin provisioning: a logical size beyond the physical one. */
	config.logical_blocks = 1ULL << 30;
	assert_success(vdo_compute_layout(&config, 65536, &layout));
	assert_int_equal(layout.logical_blocks, 1ULL << 30);
}

static void test_refused_layouts(void **state)
{
	struct vdo_layout layout;

	(void) state;
	struct {
		struct vdo_format_config config;
		uint64_t device_blocks;
	} bad[] = {
		{ { .slab_blocks = 1000 }, 65536 },
		{ { .slab_blocks = 64 }, 65536 },
		{ { .slab_blocks = 1U << 24 }, 1ULL << 26 },
		{ { .slab_blocks = 1024, .slab_journal_blocks = 2 }, 65536 },
		{ { .slab_blocks = 1024, .slab_journal_blocks = 300 }, 65536 },
		{ { .recovery_journal_blocks = 8 }, 65536 },
		{ { .physical_blocks = 70000 }, 65536 },
		{ { .slab_blocks = 65536 }, 65536 },
		{ { .slab_blocks = 128 }, 1ULL << 22 },
		{ { .logical_blocks = 1ULL << 41 }, 65536 },
		{ { 0 }, 100 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vdo_compute_layout(&bad[i].config, bad[i].device_blocks, &layout),
		                 DD_INVALID_ARGUMENT);
}

static void test_growing_layout(void **state)
{
	struct vdo_format_config config = { .slab_blocks = 1024 };
	struct vdo_layout layout;
	struct vdo_layout grown;

	(void) state;
	assert_success(vdo_compute_layout(&config, 20000, &layout));
	assert_int_equal(vdo_grow_layout(&layout, 20000 + 500, &grown), DD_INVALID_ARGUMENT);
	assert_success(vdo_grow_layout(&layout, 40000, &grown));
	assert_true(grown.slab_count > layout.slab_count);
	assert_int_equal(grown.depot_origin, layout.depot_origin);
	assert_int_equal(grown.slab_data_blocks, layout.slab_data_blocks);
	check_layout_invariants(&grown);
}

static struct vdo_super_block sample_super(void)
{
	struct vdo_super_block super = { .version = 2,
		                         .state = VDO_STATE_DIRTY,
		                         .generation = 7,
		                         .nonce = NONCE,
		                         .journal_start = 10,
		                         .journal_tail = 20,
		                         .logical_blocks_used = 123,
		                         .block_map_data_blocks = 4,
		                         .recovery_count = 2,
		                         .read_only_rebuild_count = 1 };
	struct vdo_format_config config = { .slab_blocks = 2048, .index_blocks = 777 };

	memset(super.uuid, 0xab, sizeof(super.uuid));
	super.index = (struct vdo_index_record){ .kind = VDO_INDEX_RECORD_REMOTE,
		                                 .sparse = true,
		                                 .memory_mb = 512,
		                                 .nonce = 0x1122334455667788ULL,
		                                 .name = "volume-a" };
	assert_success(vdo_compute_layout(&config, 100000, &super.layout));
	return super;
}

static void test_super_block_encoding(void **state)
{
	struct vdo_super_block super = sample_super();
	struct vdo_super_block decoded;
	uint8_t *block = make_block();

	(void) state;
	vdo_encode_super_block(&super, block);
	assert_success(vdo_decode_super_block(block, &decoded));
	assert_memory_equal(&super, &decoded, sizeof(super));
	/* Every single bit flip is caught. */
	for (unsigned int bit = 0; bit < VDO_BLOCK_SIZE * 8; bit += 7) {
		block[bit / 8] ^= (uint8_t) (1U << (bit % 8));
		assert_int_not_equal(vdo_decode_super_block(block, &decoded), DD_SUCCESS);
		block[bit / 8] ^= (uint8_t) (1U << (bit % 8));
	}
	block[0] = 'X';
	assert_int_equal(vdo_decode_super_block(block, &decoded), DD_BAD_MAGIC);
	/* Consistent checksums over impossible contents are refused too. */
	super.journal_tail = 5;
	vdo_encode_super_block(&super, block);
	assert_int_equal(vdo_decode_super_block(block, &decoded), DD_CORRUPT_DATA);
	super = sample_super();
	super.layout.slab_count++;
	vdo_encode_super_block(&super, block);
	assert_int_equal(vdo_decode_super_block(block, &decoded), DD_CORRUPT_DATA);
	super = sample_super();
	super.state = 9;
	vdo_encode_super_block(&super, block);
	assert_int_equal(vdo_decode_super_block(block, &decoded), DD_CORRUPT_DATA);
	dd_free(block);
}

static struct block_device *formatted_device(struct vdo_super_block *super)
{
	struct vdo_format_config config = { .slab_blocks = 1024 };
	struct block_device *device;

	assert_success(vdo_make_ram_device(20000, &device));
	assert_success(vdo_format(device, &config, super));
	return device;
}

static struct block_device *crash(struct block_device *device, enum ram_crash_mode mode,
                                  uint64_t seed)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(device, mode, seed, &survivor));
	vdo_close_device(device);
	return survivor;
}

static void test_super_block_saves_survive_crashes(void **state)
{
	(void) state;
	for (uint64_t seed = 0; seed < 60; seed++) {
		struct vdo_super_block super;
		struct vdo_super_block loaded;
		struct block_device *device = formatted_device(&super);
		uint64_t saved = super.generation;

		super.state = VDO_STATE_DIRTY;
		super.journal_tail = 50;
		/* The device loses the save without a flush behind it: the old or the new state,
		 * never nothing. (Saves are FUA, so write without it to model a lost write.) */
		if (seed % 2 == 0) {
			uint8_t *block = make_block();

			super.generation++;
			vdo_encode_super_block(&super, block);
			assert_success(vdo_sync_io(device, VDO_IO_WRITE, 0,
			                           super.generation % VDO_SUPER_BLOCK_COPIES, 1,
			                           block));
			dd_free(block);
		} else {
			assert_success(vdo_save_super_block(device, &super));
		}
		device = crash(device, RAM_CRASH_RANDOM, seed);
		assert_success(vdo_load_super_block(device, &loaded));
		if (seed % 2 == 1) {
			assert_int_equal(loaded.generation, super.generation);
		} else {
			assert_true((loaded.generation == saved) ||
			            (loaded.generation == super.generation));
		}
		assert_true((loaded.state == VDO_STATE_CLEAN) || (loaded.journal_tail == 50));
		vdo_close_device(device);
	}
}

static void test_super_block_damage(void **state)
{
	struct vdo_super_block super;
	struct vdo_super_block loaded;
	struct block_device *device = formatted_device(&super);
	uint8_t junk[16];

	(void) state;
	memset(junk, 0x5a, sizeof(junk));
	/* Copy 0 holds generation 2, the newest; damage it and copy 1 is used. */
	vdo_ram_device_poke(device, 100, junk, sizeof(junk));
	assert_success(vdo_load_super_block(device, &loaded));
	assert_int_equal(loaded.generation, 1);
	assert_int_equal(loaded.nonce, super.nonce);
	vdo_ram_device_poke(device, VDO_BLOCK_SIZE + 100, junk, sizeof(junk));
	assert_int_equal(vdo_load_super_block(device, &loaded), DD_CHECKSUM_MISMATCH);
	vdo_close_device(device);

	assert_success(vdo_make_ram_device(100, &device));
	assert_int_equal(vdo_load_super_block(device, &loaded), DD_BAD_MAGIC);
	vdo_ram_device_fail(device, 0, 1);
	assert_int_equal(vdo_load_super_block(device, &loaded), EIO);
	vdo_close_device(device);
}

static void test_payload_and_sector_checks(void **state)
{
	uint8_t *block = make_block();
	uint8_t pattern[VDO_BLOCK_PAYLOAD];
	uint8_t out[VDO_BLOCK_PAYLOAD];
	struct vdo_sector_verdict verdict;

	(void) state;
	for (unsigned int i = 0; i < VDO_BLOCK_PAYLOAD; i++)
		pattern[i] = (uint8_t) (i * 13 + 5);
	memset(block, 0, VDO_BLOCK_SIZE);
	/* Pieces of every size land where the whole would. */
	for (unsigned int offset = 0; offset < VDO_BLOCK_PAYLOAD;) {
		unsigned int size = 1 + offset % 37;

		if (size > VDO_BLOCK_PAYLOAD - offset)
			size = VDO_BLOCK_PAYLOAD - offset;
		vdo_put_payload(block, offset, pattern + offset, size);
		offset += size;
	}
	vdo_get_payload(block, 0, out, sizeof(out));
	assert_memory_equal(pattern, out, sizeof(out));
	assert_int_equal(vdo_payload_offset(VDO_SECTOR_PAYLOAD), VDO_SECTOR_SIZE);
	vdo_seal_sectors(block, NONCE, 77);
	assert_true(vdo_all_sectors_good(vdo_check_sectors(block, NONCE, 77)));
	assert_true(vdo_no_sector_good(vdo_check_sectors(block, NONCE, 78)));
	assert_true(vdo_no_sector_good(vdo_check_sectors(block, NONCE + 1, 77)));
	block[3 * VDO_SECTOR_SIZE + 100] ^= 0x10;
	verdict = vdo_check_sectors(block, NONCE, 77);
	assert_int_equal(verdict.good, 0xff & ~(1U << 3));
	dd_free(block);
}

static void test_block_map_pages(void **state)
{
	uint8_t *page = make_block();
	uint8_t *older = make_block();
	uint8_t *torn = make_block();
	uint8_t packed[5];

	(void) state;
	for (vdo_pbn_t pbn = 0; pbn <= VDO_MAX_PBN; pbn = pbn * 3 + 1) {
		for (uint8_t s = 0; s < 16; s++) {
			struct vdo_mapping mapping = { .pbn = pbn, .state = s };
			struct vdo_mapping back;

			vdo_pack_mapping(mapping, packed);
			back = vdo_unpack_mapping(packed);
			assert_int_equal(back.pbn, pbn);
			assert_int_equal(back.state, s);
		}
	}
	vdo_format_block_map_page(page, NONCE, 500);
	for (unsigned int slot = 0; slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE; slot++)
		assert_false(vdo_is_mapped(vdo_get_block_map_entry(page, slot)));
	vdo_seal_block_map_page(page, NONCE, 500);
	memcpy(older, page, VDO_BLOCK_SIZE);
	for (unsigned int slot = 0; slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE; slot++)
		vdo_set_block_map_entry(page, slot,
		                        (struct vdo_mapping){ .pbn = VDO_MAX_PBN - slot * 977,
		                                              .state = (uint8_t) (1 + slot % 15) });
	for (unsigned int slot = 0; slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE; slot++) {
		struct vdo_mapping mapping = vdo_get_block_map_entry(page, slot);

		assert_int_equal(mapping.pbn, VDO_MAX_PBN - slot * 977);
		assert_int_equal(mapping.state, 1 + slot % 15);
	}
	vdo_seal_block_map_page(page, NONCE, 500);
	assert_int_equal(vdo_validate_block_map_page(page, NONCE, 500), VDO_PAGE_VALID);
	assert_int_equal(vdo_validate_block_map_page(page, NONCE, 501), VDO_PAGE_UNFORMATTED);
	assert_int_equal(vdo_validate_block_map_page(page, NONCE ^ 1, 500), VDO_PAGE_UNFORMATTED);
	/* A torn write (sectors of the old and the new page) is still a good page... */
	memcpy(torn, page, VDO_BLOCK_SIZE);
	memcpy(torn + 2 * VDO_SECTOR_SIZE, older + 2 * VDO_SECTOR_SIZE, 3 * VDO_SECTOR_SIZE);
	assert_int_equal(vdo_validate_block_map_page(torn, NONCE, 500), VDO_PAGE_VALID);
	/* ...but a damaged one is not. */
	page[1000] ^= 1;
	assert_int_equal(vdo_validate_block_map_page(page, NONCE, 500), VDO_PAGE_CORRUPT);
	memset(page, 0, VDO_BLOCK_SIZE);
	assert_int_equal(vdo_validate_block_map_page(page, NONCE, 500), VDO_PAGE_UNFORMATTED);
	dd_free(page);
	dd_free(older);
	dd_free(torn);
}

static void test_summary_blocks(void **state)
{
	uint8_t *block = make_block();

	(void) state;
	vdo_format_summary_block(block);
	for (unsigned int i = 0; i < VDO_SUMMARY_ENTRIES_PER_BLOCK; i++) {
		struct vdo_summary_entry entry = vdo_get_summary_entry(block, i);

		assert_int_equal(entry.tail_block_offset, 0);
		assert_false(entry.load_ref_counts || entry.dirty);
		vdo_set_summary_entry(
		    block, i,
		    (struct vdo_summary_entry){ .tail_block_offset = (uint16_t) i,
		                                .fullness_hint = (uint8_t) (i * 3),
		                                .load_ref_counts = (i % 2) == 0,
		                                .dirty = (i % 3) == 0 });
	}
	vdo_seal_summary_block(block, NONCE, 9);
	assert_int_equal(vdo_validate_summary_block(block, NONCE, 9), VDO_SUMMARY_VALID);
	for (unsigned int i = 0; i < VDO_SUMMARY_ENTRIES_PER_BLOCK; i++) {
		struct vdo_summary_entry entry = vdo_get_summary_entry(block, i);

		assert_int_equal(entry.tail_block_offset, i);
		assert_int_equal(entry.fullness_hint, (uint8_t) (i * 3));
		assert_int_equal(entry.load_ref_counts, (i % 2) == 0);
		assert_int_equal(entry.dirty, (i % 3) == 0);
	}
	assert_int_equal(vdo_validate_summary_block(block, NONCE, 10), VDO_SUMMARY_UNFORMATTED);
	block[4000] ^= 4;
	assert_int_equal(vdo_validate_summary_block(block, NONCE, 9), VDO_SUMMARY_CORRUPT);
	dd_free(block);
}

static void test_format(void **state)
{
	struct vdo_super_block super;
	struct vdo_super_block loaded;
	struct block_device *device = formatted_device(&super);
	uint8_t *block = make_block();
	struct vdo_format_config config = { .slab_blocks = 1024 };

	(void) state;
	/* Format's writes are durable: a power cut right after changes nothing. */
	device = crash(device, RAM_CRASH_DROP_ALL, 0);
	assert_success(vdo_load_super_block(device, &loaded));
	assert_int_equal(loaded.state, VDO_STATE_CLEAN);
	assert_int_equal(loaded.nonce, super.nonce);
	assert_int_equal(loaded.journal_start, loaded.journal_tail);
	assert_memory_equal(&loaded.layout, &super.layout, sizeof(super.layout));
	for (unsigned int t = 0; t < VDO_BLOCK_MAP_TREE_COUNT; t++) {
		vdo_pbn_t pbn = loaded.layout.root_origin + t;

		assert_success(vdo_sync_io(device, VDO_IO_READ, 0, pbn, 1, block));
		assert_int_equal(vdo_validate_block_map_page(block, loaded.nonce, pbn),
		                 VDO_PAGE_VALID);
	}
	for (unsigned int b = 0; b < VDO_SUMMARY_BLOCKS; b++) {
		vdo_pbn_t pbn = loaded.layout.summary_origin + b;

		assert_success(vdo_sync_io(device, VDO_IO_READ, 0, pbn, 1, block));
		assert_int_equal(vdo_validate_summary_block(block, loaded.nonce, pbn),
		                 VDO_SUMMARY_VALID);
	}
	/* A new format gets a new nonce, so the old metadata is no longer ours. */
	assert_success(vdo_format(device, &config, &super));
	assert_int_not_equal(super.nonce, loaded.nonce);
	assert_int_equal(
	    vdo_validate_block_map_page(block, super.nonce, loaded.layout.summary_origin),
	    VDO_PAGE_UNFORMATTED);
	/* Write errors are reported. */
	vdo_ram_device_fail(device, 0, 2);
	assert_int_equal(vdo_format(device, &config, &super), EIO);
	vdo_close_device(device);
	dd_free(block);
}

/* Make each copy of @device's super block the version @version says, checksum and all. */
static void rewrite_version(struct block_device *device, uint32_t version)
{
	uint8_t *block = make_block();

	for (uint64_t copy = 0; copy < 2; copy++) {
		assert_success(vdo_sync_io(device, VDO_IO_READ, 0, copy, 1, block));
		dd_put_le32(block + 8, version);
		/* Version 1 ended at byte 160, with zeros after. */
		if (version == 1)
			memset(block + 160, 0, 264 - 160);
		dd_put_le64(block + VDO_BLOCK_SIZE - 8, XXH3_64bits(block, VDO_BLOCK_SIZE - 8));
		assert_success(vdo_sync_io(device, VDO_IO_WRITE, VDO_IO_FUA, copy, 1, block));
	}
	dd_free(block);
}

/*
 * Formats: the index region and record of version 2; a version 1 volume (before dedupe) reads
 * as one with no index and is written as version 2 at its next save; a newer version is refused
 * with a clear error.
 */
static void test_format_versions(void **state)
{
	struct vdo_format_config config = { .slab_blocks = 1024, .index_blocks = 500 };
	struct vdo_index_record index = { .kind = VDO_INDEX_RECORD_EMBEDDED, .memory_mb = 256 };
	struct vdo_super_block super;
	struct vdo_super_block loaded;
	struct block_device *device;

	(void) state;
	assert_success(vdo_make_ram_device(20000, &device));
	assert_success(vdo_format_with_index(device, &config, &index, &super));
	assert_success(vdo_load_super_block(device, &loaded));
	assert_int_equal(loaded.version, 2);
	assert_int_equal(loaded.index.kind, VDO_INDEX_RECORD_EMBEDDED);
	assert_int_equal(loaded.index.memory_mb, 256);
	assert_int_equal(loaded.index.nonce, 0);
	assert_int_equal(loaded.layout.index_blocks, 500);
	assert_int_equal(loaded.layout.index_origin,
	                 loaded.layout.summary_origin + VDO_SUMMARY_BLOCKS);
	assert_int_equal(loaded.layout.depot_origin, loaded.layout.index_origin + 500);
	/* An embedded index needs its region. */
	config.index_blocks = 0;
	assert_int_equal(vdo_format_with_index(device, &config, &index, &super),
	                 DD_INVALID_ARGUMENT);
	/* Version 1. */
	assert_success(vdo_format(device, &config, &super));
	rewrite_version(device, 1);
	assert_success(vdo_load_super_block(device, &loaded));
	assert_int_equal(loaded.version, 1);
	assert_int_equal(loaded.index.kind, VDO_INDEX_RECORD_NONE);
	assert_int_equal(loaded.layout.index_blocks, 0);
	assert_int_equal(loaded.layout.depot_origin, super.layout.depot_origin);
	assert_success(vdo_save_super_block(device, &loaded));
	assert_success(vdo_load_super_block(device, &loaded));
	assert_int_equal(loaded.version, 2);
	/* A version this program does not know. */
	rewrite_version(device, 3);
	assert_int_equal(vdo_load_super_block(device, &loaded), DD_UNSUPPORTED_VERSION);
	vdo_close_device(device);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_layouts),
		cmocka_unit_test(test_refused_layouts),
		cmocka_unit_test(test_growing_layout),
		cmocka_unit_test(test_super_block_encoding),
		cmocka_unit_test(test_super_block_saves_survive_crashes),
		cmocka_unit_test(test_super_block_damage),
		cmocka_unit_test(test_payload_and_sector_checks),
		cmocka_unit_test(test_block_map_pages),
		cmocka_unit_test(test_summary_blocks),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_versions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
