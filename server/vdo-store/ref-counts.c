// SPDX-License-Identifier: GPL-2.0-only
/*
 * Reference counts and their blocks; see ref-counts.h.
 *
 * The counts live in one array, padded to whole blocks. Each block's write-back state is a
 * dirty flag with the lock of its first change since it was last taken, and a writing flag
 * with the lock its write carries. Finding the oldest lock or the oldest dirty block scans the
 * blocks: a slab has at most a few thousand, and a block written covers thousands of changes.
 */
#include "ref-counts.h"

#include <string.h>

#include "block-device.h"
#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"
#include "sector-check.h"

enum {
	POINT_BYTES = 7,
	HEADER_BYTES = 2 * POINT_BYTES,
};

_Static_assert(HEADER_BYTES + VDO_COUNTS_PER_SECTOR == VDO_SECTOR_PAYLOAD,
               "two points and the counts fill a sector's payload");

struct ref_block {
	bool dirty;
	bool writing;
	vdo_sequence_t dirty_lock;
	vdo_sequence_t writing_lock;
};

struct vdo_ref_counts {
	uint32_t data_blocks;
	uint32_t free_blocks;
	uint32_t cursor;
	uint32_t block_count;
	/* The points of the latest journaled change: what every count reflects. */
	struct vdo_ref_points last_points;
	struct ref_block *blocks;
	/* block_count * VDO_COUNTS_PER_REF_BLOCK counts; those past data_blocks stay 0. */
	uint8_t *counts;
};

int vdo_make_ref_counts(uint32_t data_blocks, struct vdo_ref_counts **counts_ptr)
{
	struct vdo_ref_counts *counts;
	int result = dd_allocate(sizeof(*counts), "reference counts", &counts);

	if (result != DD_SUCCESS)
		return result;
	counts->data_blocks = data_blocks;
	counts->free_blocks = data_blocks;
	counts->block_count =
	    (data_blocks + VDO_COUNTS_PER_REF_BLOCK - 1) / VDO_COUNTS_PER_REF_BLOCK;
	result =
	    DD_ALLOCATE(counts->block_count, struct ref_block, "reference blocks", &counts->blocks);
	if (result == DD_SUCCESS)
		result = dd_allocate((size_t) counts->block_count * VDO_COUNTS_PER_REF_BLOCK,
		                     "counts", &counts->counts);
	if (result != DD_SUCCESS) {
		vdo_free_ref_counts(counts);
		return result;
	}
	*counts_ptr = counts;
	return DD_SUCCESS;
}

void vdo_free_ref_counts(struct vdo_ref_counts *counts)
{
	if (counts == NULL)
		return;
	dd_free(counts->counts);
	dd_free(counts->blocks);
	dd_free(counts);
}

uint32_t vdo_ref_block_count(const struct vdo_ref_counts *counts)
{
	return counts->block_count;
}

static void dirty_block(struct vdo_ref_counts *counts, uint32_t offset, vdo_sequence_t lock)
{
	struct ref_block *block = &counts->blocks[offset / VDO_COUNTS_PER_REF_BLOCK];

	if (!block->dirty) {
		block->dirty = true;
		block->dirty_lock = lock;
	}
}

/* The count after @operation, or -1 if the count does not allow it. */
static int apply(uint8_t count, enum vdo_ref_operation operation)
{
	switch (operation) {
	case VDO_REF_INCREMENT:
		if (count == VDO_PROVISIONAL_REFERENCE)
			return 1;
		return (count < VDO_MAX_REFERENCES) ? count + 1 : -1;
	case VDO_REF_DECREMENT:
		if ((count == VDO_EMPTY_REFERENCE) || (count == VDO_PROVISIONAL_REFERENCE))
			return -1;
		return count - 1;
	case VDO_REF_PROVISIONAL:
		return (count == VDO_EMPTY_REFERENCE) ? VDO_PROVISIONAL_REFERENCE : -1;
	case VDO_REF_RELEASE_PROVISIONAL:
		/* A block that got its reference meanwhile keeps it. */
		return (count == VDO_PROVISIONAL_REFERENCE) ? VDO_EMPTY_REFERENCE : count;
	}
	return -1;
}

static bool is_used(uint8_t count)
{
	return count != VDO_EMPTY_REFERENCE;
}

int vdo_adjust_ref_count(struct vdo_ref_counts *counts, uint32_t offset,
                         enum vdo_ref_operation operation, struct vdo_ref_points points)
{
	uint8_t old;
	int new;

	if (offset >= counts->data_blocks)
		return dd_log_error_strerror(DD_OUT_OF_RANGE,
		                             "reference count %u is beyond the slab's %u blocks",
		                             offset, counts->data_blocks);
	old = counts->counts[offset];
	new = apply(old, operation);
	if (new < 0)
		return dd_log_error_strerror(
		    DD_BAD_STATE, "reference count operation %d on block %u with count %u",
		    operation, offset, old);
	counts->counts[offset] = (uint8_t) new;
	if (is_used(old) && !is_used((uint8_t) new))
		counts->free_blocks++;
	else if (!is_used(old) && is_used((uint8_t) new))
		counts->free_blocks--;
	if ((operation == VDO_REF_INCREMENT) || (operation == VDO_REF_DECREMENT)) {
		counts->last_points = points;
		dirty_block(counts, offset, points.slab.sequence);
	}
	return DD_SUCCESS;
}

struct vdo_ref_points vdo_ref_counts_last_points(const struct vdo_ref_counts *counts)
{
	return counts->last_points;
}

uint8_t vdo_get_ref_count(const struct vdo_ref_counts *counts, uint32_t offset)
{
	return counts->counts[offset];
}

uint32_t vdo_free_blocks(const struct vdo_ref_counts *counts)
{
	return counts->free_blocks;
}

/* The first free block in [from, to), or @to. */
static uint32_t find_free(const struct vdo_ref_counts *counts, uint32_t from, uint32_t to)
{
	const uint8_t *found = memchr(counts->counts + from, VDO_EMPTY_REFERENCE, to - from);

	return (found == NULL) ? to : (uint32_t) (found - counts->counts);
}

bool vdo_allocate_block(struct vdo_ref_counts *counts, uint32_t *offset_ptr)
{
	uint32_t offset;

	if (counts->free_blocks == 0)
		return false;
	offset = find_free(counts, counts->cursor, counts->data_blocks);
	if (offset == counts->data_blocks)
		offset = find_free(counts, 0, counts->cursor);
	if (offset >= counts->data_blocks)
		return false;
	counts->counts[offset] = VDO_PROVISIONAL_REFERENCE;
	counts->free_blocks--;
	counts->cursor = offset + 1;
	if (counts->cursor == counts->data_blocks)
		counts->cursor = 0;
	*offset_ptr = offset;
	return true;
}

static vdo_sequence_t older_lock(vdo_sequence_t a, vdo_sequence_t b)
{
	if (a == VDO_NO_LOCK)
		return b;
	if (b == VDO_NO_LOCK)
		return a;
	return (a < b) ? a : b;
}

vdo_sequence_t vdo_oldest_ref_lock(const struct vdo_ref_counts *counts)
{
	vdo_sequence_t oldest = VDO_NO_LOCK;

	for (uint32_t i = 0; i < counts->block_count; i++) {
		const struct ref_block *block = &counts->blocks[i];

		if (block->dirty)
			oldest = older_lock(oldest, block->dirty_lock);
		if (block->writing)
			oldest = older_lock(oldest, block->writing_lock);
	}
	return oldest;
}

bool vdo_take_dirty_ref_block(struct vdo_ref_counts *counts, vdo_sequence_t before,
                              uint32_t *index_ptr)
{
	struct ref_block *chosen = NULL;

	for (uint32_t i = 0; i < counts->block_count; i++) {
		struct ref_block *block = &counts->blocks[i];

		if (block->dirty && !block->writing &&
		    ((chosen == NULL) || (block->dirty_lock < chosen->dirty_lock)))
			chosen = block;
	}
	if ((chosen == NULL) || ((before != VDO_NO_LOCK) && (chosen->dirty_lock >= before)))
		return false;
	chosen->dirty = false;
	chosen->writing = true;
	chosen->writing_lock = chosen->dirty_lock;
	*index_ptr = (uint32_t) (chosen - counts->blocks);
	return true;
}

uint32_t vdo_dirty_ref_blocks(const struct vdo_ref_counts *counts)
{
	uint32_t dirty = 0;

	for (uint32_t i = 0; i < counts->block_count; i++)
		dirty += (counts->blocks[i].dirty || counts->blocks[i].writing);
	return dirty;
}

static void pack_point(struct vdo_journal_point point, uint8_t *bytes)
{
	uint8_t sequence[8];

	dd_put_le64(sequence, point.sequence);
	memcpy(bytes, sequence, 5);
	dd_put_le16(bytes + 5, point.entry);
}

static struct vdo_journal_point unpack_point(const uint8_t *bytes)
{
	uint8_t sequence[8] = { 0 };

	memcpy(sequence, bytes, 5);
	return (struct vdo_journal_point){ .sequence = dd_get_le64(sequence),
		                           .entry = dd_get_le16(bytes + 5) };
}

void vdo_pack_ref_block(const struct vdo_ref_counts *counts, uint32_t index, uint8_t *block,
                        uint64_t nonce, vdo_pbn_t pbn,
                        const struct vdo_ref_points sector_points[VDO_SECTORS_PER_BLOCK])
{
	const uint8_t *from = counts->counts + (size_t) index * VDO_COUNTS_PER_REF_BLOCK;

	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		uint8_t *sector = block + s * VDO_SECTOR_SIZE;
		uint8_t *to = sector + HEADER_BYTES;

		const struct vdo_ref_points *points =
		    (sector_points != NULL) ? &sector_points[s] : &counts->last_points;

		pack_point(points->slab, sector);
		pack_point(points->recovery, sector + POINT_BYTES);
		for (unsigned int c = 0; c < VDO_COUNTS_PER_SECTOR; c++) {
			uint8_t count = from[s * VDO_COUNTS_PER_SECTOR + c];

			to[c] = (count == VDO_PROVISIONAL_REFERENCE) ? VDO_EMPTY_REFERENCE : count;
		}
	}
	vdo_seal_sectors(block, nonce, pbn);
}

void vdo_ref_block_written(struct vdo_ref_counts *counts, uint32_t index)
{
	counts->blocks[index].writing = false;
	counts->blocks[index].writing_lock = VDO_NO_LOCK;
}

void vdo_dirty_all_ref_blocks(struct vdo_ref_counts *counts, vdo_sequence_t lock)
{
	for (uint32_t i = 0; i < counts->block_count; i++) {
		if (!counts->blocks[i].dirty) {
			counts->blocks[i].dirty = true;
			counts->blocks[i].dirty_lock = lock;
		}
	}
}

/* How many of the counts of block @index are in use. */
static uint32_t used_in_block(const struct vdo_ref_counts *counts, uint32_t index)
{
	const uint8_t *from = counts->counts + (size_t) index * VDO_COUNTS_PER_REF_BLOCK;
	uint32_t used = 0;

	for (uint32_t c = 0; c < VDO_COUNTS_PER_REF_BLOCK; c++)
		used += is_used(from[c]);
	return used;
}

int vdo_unpack_ref_block(struct vdo_ref_counts *counts, uint32_t index, const uint8_t *block,
                         uint64_t nonce, vdo_pbn_t pbn,
                         struct vdo_ref_points points[VDO_SECTORS_PER_BLOCK])
{
	struct vdo_sector_verdict verdict = vdo_check_sectors(block, nonce, pbn);
	uint8_t *to = counts->counts + (size_t) index * VDO_COUNTS_PER_REF_BLOCK;
	uint32_t used_before = used_in_block(counts, index);

	if (vdo_no_sector_good(verdict)) {
		memset(to, 0, VDO_COUNTS_PER_REF_BLOCK);
		memset(points, 0, VDO_SECTORS_PER_BLOCK * sizeof(points[0]));
		counts->free_blocks += used_before;
		return DD_SUCCESS;
	}
	if (!vdo_all_sectors_good(verdict))
		return dd_log_error_strerror(
		    DD_CORRUPT_DATA,
		    "reference count block %llu is damaged (sectors 0x%02x "
		    "check)",
		    (unsigned long long) pbn, verdict.good);
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		const uint8_t *sector = block + s * VDO_SECTOR_SIZE;

		points[s].slab = unpack_point(sector);
		points[s].recovery = unpack_point(sector + POINT_BYTES);
		if (vdo_before_journal_point(counts->last_points.slab, points[s].slab))
			counts->last_points = points[s];
		for (unsigned int c = 0; c < VDO_COUNTS_PER_SECTOR; c++) {
			uint32_t offset =
			    index * VDO_COUNTS_PER_REF_BLOCK + s * VDO_COUNTS_PER_SECTOR + c;
			uint8_t count = sector[HEADER_BYTES + c];

			if ((count == VDO_PROVISIONAL_REFERENCE) ||
			    ((offset >= counts->data_blocks) && (count != VDO_EMPTY_REFERENCE)))
				return dd_log_error_strerror(DD_CORRUPT_DATA,
				                             "reference count block %llu holds "
				                             "impossible counts",
				                             (unsigned long long) pbn);
			to[s * VDO_COUNTS_PER_SECTOR + c] = count;
		}
	}
	counts->free_blocks = counts->free_blocks + used_before - used_in_block(counts, index);
	return DD_SUCCESS;
}

void vdo_reset_ref_counts(struct vdo_ref_counts *counts)
{
	memset(counts->counts, 0, (size_t) counts->block_count * VDO_COUNTS_PER_REF_BLOCK);
	memset(counts->blocks, 0, counts->block_count * sizeof(counts->blocks[0]));
	counts->free_blocks = counts->data_blocks;
	counts->cursor = 0;
	counts->last_points = (struct vdo_ref_points){ 0 };
}
