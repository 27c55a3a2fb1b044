// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of reference counts: every count transition and the ones refused, allocation, the
 * write-back order and locks, and the block format (round trips, provisional counts, torn and
 * damaged blocks, blocks never written).
 */
#include <stdlib.h>
#include <string.h>

#include "block-device.h"
#include "errors.h"
#include "memory-alloc.h"
#include "ref-counts.h"
#include "test-harness.h"

enum {
	NONCE = 0xfeedULL,
	BLOCKS = 2 * VDO_COUNTS_PER_REF_BLOCK + 100,
};

/* The points of a change in slab journal block @sequence; its recovery point is made up. */
static struct vdo_ref_points point(vdo_sequence_t sequence, uint16_t entry)
{
	return (struct vdo_ref_points){
		.slab = { .sequence = sequence, .entry = entry },
		.recovery = { .sequence = 10 * sequence, .entry = (uint16_t) (2 * entry) },
	};
}

static void test_transitions(void **state)
{
	struct vdo_ref_counts *counts;
	struct vdo_ref_points p = point(1, 0);

	(void) state;
	assert_success(vdo_make_ref_counts(BLOCKS, &counts));
	assert_int_equal(vdo_free_blocks(counts), BLOCKS);
	assert_int_equal(vdo_ref_block_count(counts), 3);
	/* Free -> 1 -> ... -> 254, and no further. */
	for (int i = 1; i <= VDO_MAX_REFERENCES; i++) {
		assert_success(vdo_adjust_ref_count(counts, 5, VDO_REF_INCREMENT, p));
		assert_int_equal(vdo_get_ref_count(counts, 5), i);
	}
	assert_int_equal(vdo_free_blocks(counts), BLOCKS - 1);
	assert_int_equal(vdo_adjust_ref_count(counts, 5, VDO_REF_INCREMENT, p), DD_BAD_STATE);
	for (int i = VDO_MAX_REFERENCES - 1; i >= 0; i--)
		assert_success(vdo_adjust_ref_count(counts, 5, VDO_REF_DECREMENT, p));
	assert_int_equal(vdo_free_blocks(counts), BLOCKS);
	assert_int_equal(vdo_adjust_ref_count(counts, 5, VDO_REF_DECREMENT, p), DD_BAD_STATE);
	/* Provisional: taken from free, given up or made real by an increment. */
	assert_success(vdo_adjust_ref_count(counts, 6, VDO_REF_PROVISIONAL, p));
	assert_int_equal(vdo_free_blocks(counts), BLOCKS - 1);
	assert_int_equal(vdo_adjust_ref_count(counts, 6, VDO_REF_PROVISIONAL, p), DD_BAD_STATE);
	assert_int_equal(vdo_adjust_ref_count(counts, 6, VDO_REF_DECREMENT, p), DD_BAD_STATE);
	assert_success(vdo_adjust_ref_count(counts, 6, VDO_REF_RELEASE_PROVISIONAL, p));
	assert_int_equal(vdo_free_blocks(counts), BLOCKS);
	assert_success(vdo_adjust_ref_count(counts, 6, VDO_REF_PROVISIONAL, p));
	assert_success(vdo_adjust_ref_count(counts, 6, VDO_REF_INCREMENT, p));
	assert_int_equal(vdo_get_ref_count(counts, 6), 1);
	/* Releasing a provisional reference that became real leaves it. */
	assert_success(vdo_adjust_ref_count(counts, 6, VDO_REF_RELEASE_PROVISIONAL, p));
	assert_int_equal(vdo_get_ref_count(counts, 6), 1);
	assert_int_equal(vdo_adjust_ref_count(counts, BLOCKS, VDO_REF_INCREMENT, p),
	                 DD_OUT_OF_RANGE);
	vdo_free_ref_counts(counts);
}

static void test_allocation(void **state)
{
	struct vdo_ref_counts *counts;
	uint32_t offset;

	(void) state;
	assert_success(vdo_make_ref_counts(10, &counts));
	assert_success(vdo_adjust_ref_count(counts, 0, VDO_REF_INCREMENT, point(1, 0)));
	for (uint32_t expected = 1; expected < 10; expected++) {
		assert_true(vdo_allocate_block(counts, &offset));
		assert_int_equal(offset, expected);
		assert_int_equal(vdo_get_ref_count(counts, offset), VDO_PROVISIONAL_REFERENCE);
	}
	assert_false(vdo_allocate_block(counts, &offset));
	assert_int_equal(vdo_free_blocks(counts), 0);
	/* The search wraps around to what was freed behind it. */
	assert_success(vdo_adjust_ref_count(counts, 3, VDO_REF_RELEASE_PROVISIONAL, point(1, 0)));
	assert_success(vdo_adjust_ref_count(counts, 0, VDO_REF_DECREMENT, point(1, 1)));
	assert_true(vdo_allocate_block(counts, &offset));
	assert_int_equal(offset, 0);
	assert_true(vdo_allocate_block(counts, &offset));
	assert_int_equal(offset, 3);
	vdo_free_ref_counts(counts);
}

static void test_write_back_order_and_locks(void **state)
{
	struct vdo_ref_counts *counts;
	uint32_t index;

	(void) state;
	assert_success(vdo_make_ref_counts(BLOCKS, &counts));
	assert_int_equal(vdo_oldest_ref_lock(counts), VDO_NO_LOCK);
	assert_false(vdo_take_dirty_ref_block(counts, VDO_NO_LOCK, &index));
	/* Provisional changes are not written, so they dirty nothing. */
	assert_true(vdo_allocate_block(counts, &index));
	assert_int_equal(vdo_dirty_ref_blocks(counts), 0);
	assert_success(vdo_adjust_ref_count(counts, 2 * VDO_COUNTS_PER_REF_BLOCK, VDO_REF_INCREMENT,
	                                    point(3, 0)));
	assert_success(vdo_adjust_ref_count(counts, 1, VDO_REF_INCREMENT, point(4, 0)));
	assert_success(vdo_adjust_ref_count(counts, 2, VDO_REF_INCREMENT, point(5, 0)));
	assert_int_equal(vdo_oldest_ref_lock(counts), 3);
	assert_int_equal(vdo_dirty_ref_blocks(counts), 2);
	/* The oldest-dirtied block goes first, and keeps its lock until written. */
	assert_false(vdo_take_dirty_ref_block(counts, 3, &index));
	assert_true(vdo_take_dirty_ref_block(counts, 4, &index));
	assert_int_equal(index, 2);
	assert_int_equal(vdo_oldest_ref_lock(counts), 3);
	/* A change during the write dirties it again, with a new lock. */
	assert_success(vdo_adjust_ref_count(counts, 2 * VDO_COUNTS_PER_REF_BLOCK + 1,
	                                    VDO_REF_INCREMENT, point(6, 0)));
	vdo_ref_block_written(counts, 2);
	assert_int_equal(vdo_oldest_ref_lock(counts), 4);
	assert_true(vdo_take_dirty_ref_block(counts, VDO_NO_LOCK, &index));
	assert_int_equal(index, 0);
	assert_true(vdo_take_dirty_ref_block(counts, VDO_NO_LOCK, &index));
	assert_int_equal(index, 2);
	assert_false(vdo_take_dirty_ref_block(counts, VDO_NO_LOCK, &index));
	vdo_ref_block_written(counts, 0);
	vdo_ref_block_written(counts, 2);
	assert_int_equal(vdo_oldest_ref_lock(counts), VDO_NO_LOCK);
	vdo_dirty_all_ref_blocks(counts, 9);
	assert_int_equal(vdo_dirty_ref_blocks(counts), 3);
	assert_int_equal(vdo_oldest_ref_lock(counts), 9);
	vdo_free_ref_counts(counts);
}

static void test_block_format(void **state)
{
	struct vdo_ref_counts *counts;
	struct vdo_ref_counts *loaded;
	struct vdo_ref_points points[VDO_SECTORS_PER_BLOCK];
	uint8_t *block;
	uint8_t *older;
	uint32_t offset;

	(void) state;
	assert_success(dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "block", &block));
	assert_success(dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "block", &older));
	assert_success(vdo_make_ref_counts(BLOCKS, &counts));
	assert_success(vdo_make_ref_counts(BLOCKS, &loaded));
	for (uint32_t i = 0; i < VDO_COUNTS_PER_REF_BLOCK; i += 3) {
		for (uint32_t r = 0; r <= i % 7; r++)
			assert_success(vdo_adjust_ref_count(counts, i, VDO_REF_INCREMENT,
			                                    point(10, (uint16_t) i)));
	}
	vdo_pack_ref_block(counts, 0, older, NONCE, 100, NULL);
	assert_true(vdo_allocate_block(counts, &offset));
	assert_success(vdo_adjust_ref_count(counts, 3901, VDO_REF_INCREMENT, point(11, 2)));
	vdo_pack_ref_block(counts, 0, block, NONCE, 100, NULL);
	assert_success(vdo_unpack_ref_block(loaded, 0, block, NONCE, 100, points));
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		assert_int_equal(points[s].slab.sequence, 11);
		assert_int_equal(points[s].slab.entry, 2);
		assert_int_equal(points[s].recovery.sequence, 110);
		assert_int_equal(points[s].recovery.entry, 4);
	}
	for (uint32_t i = 0; i < VDO_COUNTS_PER_REF_BLOCK; i++) {
		uint8_t count = vdo_get_ref_count(counts, i);

		if (count == VDO_PROVISIONAL_REFERENCE)
			count = 0;
		assert_int_equal(vdo_get_ref_count(loaded, i), count);
	}
	assert_int_equal(vdo_free_blocks(loaded), vdo_free_blocks(counts) + 1);
	/* A torn write: each sector whole, with its own point. */
	memcpy(block + 7 * VDO_SECTOR_SIZE, older + 7 * VDO_SECTOR_SIZE, VDO_SECTOR_SIZE);
	assert_success(vdo_unpack_ref_block(loaded, 0, block, NONCE, 100, points));
	assert_int_equal(points[0].slab.sequence, 11);
	assert_int_equal(points[7].slab.sequence, 10);
	assert_int_equal(points[7].recovery.sequence, 100);
	assert_int_equal(vdo_get_ref_count(loaded, 3901), 0);
	/* Damage, another block's sectors, and a never-written block. */
	block[300] ^= 1;
	assert_int_equal(vdo_unpack_ref_block(loaded, 0, block, NONCE, 100, points),
	                 DD_CORRUPT_DATA);
	block[300] ^= 1;
	memcpy(block + VDO_SECTOR_SIZE, older, VDO_SECTOR_SIZE);
	assert_int_equal(vdo_unpack_ref_block(loaded, 0, block, NONCE, 100, points),
	                 DD_CORRUPT_DATA);
	memset(block, 0, VDO_BLOCK_SIZE);
	assert_success(vdo_unpack_ref_block(loaded, 0, block, NONCE, 100, points));
	assert_int_equal(vdo_free_blocks(loaded), BLOCKS);
	assert_int_equal(points[3].slab.sequence, 0);
	vdo_free_ref_counts(counts);
	vdo_free_ref_counts(loaded);
	dd_free(block);
	dd_free(older);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_allocation),
		cmocka_unit_test(test_write_back_order_and_locks),
		cmocka_unit_test(test_block_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
