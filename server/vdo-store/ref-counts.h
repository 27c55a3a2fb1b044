/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Reference counts: one byte per data block of a slab, owned by the slab's physical zone.
 *
 * A count is 0 (free), 1-254 (that many mappings or tree pages use the block) or 255
 * (provisional: allocated to a write in flight, not yet journaled). Every change but the
 * provisional ones comes from a slab journal entry, and is made with that entry's journal point.
 *
 * On disk the counts of a slab fill its reference count blocks, 3968 to a block. Each block is
 * sector-checked (sector-check.h); each sector's payload is two journal points of 7 bytes (a
 * 5-byte block sequence and a 2-byte entry) and 496 counts. The points say which changes the
 * sector's counts include: the slab's changes up to and including that slab journal entry, which
 * are also its changes up to that recovery journal entry (a slab's changes arrive in recovery
 * journal order). A torn write can leave sectors with different points: scrubbing replays, for
 * each block, the slab journal entries after its own sector's slab point, and recovery replays
 * the recovery journal entries after its sector's recovery point. Provisional counts are written
 * as 0: after a crash the write they belong to never happened.
 *
 * Write-back. A block is dirtied by the first change after it was last written, and from then
 * on holds a lock on the slab journal block of that change: the slab journal cannot reuse that
 * block until this one is written. Dirty blocks are kept in the order they were dirtied, so the
 * oldest lock is the first one; a block being written keeps its lock until the write completes
 * (a change during the write dirties it again, with a new lock).
 */
#ifndef VDO_REF_COUNTS_H
#define VDO_REF_COUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "errors.h"
#include "layout.h"
#include "vdo-types.h"

enum {
	VDO_EMPTY_REFERENCE = 0,
	VDO_PROVISIONAL_REFERENCE = 255,
};

enum vdo_ref_operation {
	/* A new mapping to the block (or a new tree page). */
	VDO_REF_INCREMENT = 0,
	/* A mapping to the block went away. */
	VDO_REF_DECREMENT,
	/* Allocate a free block to a write in flight. */
	VDO_REF_PROVISIONAL,
	/* The write in flight did not use its allocation. */
	VDO_REF_RELEASE_PROVISIONAL,
};

struct vdo_ref_counts;

/* What a sector's counts include: see above. */
struct vdo_ref_points {
	struct vdo_journal_point slab;
	struct vdo_journal_point recovery;
};

/** vdo_make_ref_counts() - Counts for @data_blocks blocks, all free. */
int DD_MUST_CHECK vdo_make_ref_counts(uint32_t data_blocks, struct vdo_ref_counts **counts_ptr);

/** vdo_free_ref_counts() - Free @counts (NULL is fine). */
void vdo_free_ref_counts(struct vdo_ref_counts *counts);

/** vdo_ref_block_count() - How many reference count blocks hold the counts. */
uint32_t vdo_ref_block_count(const struct vdo_ref_counts *counts);

/**
 * vdo_adjust_ref_count() - Change the count of block @offset.
 * @points: the slab and recovery journal entries of the change (ignored for provisional
 *          operations)
 *
 * Return: DD_SUCCESS, DD_OUT_OF_RANGE for an offset beyond the slab, or DD_BAD_STATE for a
 *         change the count does not allow (an increment past 254, a decrement of a free block,
 *         a provisional allocation of a block in use...), which means the metadata is
 *         inconsistent.
 */
int DD_MUST_CHECK vdo_adjust_ref_count(struct vdo_ref_counts *counts, uint32_t offset,
                                       enum vdo_ref_operation operation,
                                       struct vdo_ref_points points);

/**
 * vdo_ref_counts_last_points() - The points of the latest change made, or after unpacking, the
 *                                latest points any sector unpacked holds.
 */
struct vdo_ref_points vdo_ref_counts_last_points(const struct vdo_ref_counts *counts);

/** vdo_get_ref_count() - The count of block @offset. */
uint8_t vdo_get_ref_count(const struct vdo_ref_counts *counts, uint32_t offset);

/** vdo_free_blocks() - How many blocks are free (provisional ones are not). */
uint32_t vdo_free_blocks(const struct vdo_ref_counts *counts);

/**
 * vdo_allocate_block() - Find a free block, searching on from the last one allocated, and make
 *                        it provisional.
 *
 * Return: true with *offset_ptr set, or false if no block is free.
 */
bool vdo_allocate_block(struct vdo_ref_counts *counts, uint32_t *offset_ptr);

/** vdo_oldest_ref_lock() - The oldest slab journal block a dirty block locks (VDO_NO_LOCK). */
vdo_sequence_t vdo_oldest_ref_lock(const struct vdo_ref_counts *counts);

/**
 * vdo_take_dirty_ref_block() - Take the oldest dirty block that is not being written, to write
 *                              it, if its lock is older than @before (VDO_NO_LOCK: any lock);
 *                              false if there is none.
 */
bool vdo_take_dirty_ref_block(struct vdo_ref_counts *counts, vdo_sequence_t before,
                              uint32_t *index_ptr);

/** vdo_dirty_ref_blocks() - How many blocks are dirty or being written. */
uint32_t vdo_dirty_ref_blocks(const struct vdo_ref_counts *counts);

/**
 * vdo_pack_ref_block() - Encode block @index (taken to be written) for the block at @pbn.
 * @sector_points: the points to write in each sector; NULL for those of the latest change (what
 *                 every count includes in normal operation)
 */
void vdo_pack_ref_block(const struct vdo_ref_counts *counts, uint32_t index, uint8_t *block,
                        uint64_t nonce, vdo_pbn_t pbn,
                        const struct vdo_ref_points sector_points[VDO_SECTORS_PER_BLOCK]);

/** vdo_ref_block_written() - The write of block @index completed: release its lock. */
void vdo_ref_block_written(struct vdo_ref_counts *counts, uint32_t index);

/** vdo_dirty_all_ref_blocks() - Mark every block dirty (after a rebuild), under @lock. */
void vdo_dirty_all_ref_blocks(struct vdo_ref_counts *counts, vdo_sequence_t lock);

/**
 * vdo_unpack_ref_block() - Load block @index from @block, read from @pbn.
 * @points: receives each sector's points
 *
 * Return: DD_SUCCESS, or DD_CORRUPT_DATA if a sector fails its check or holds a provisional
 *         count. A block never written (no sector of ours) loads as all free, with points 0.
 */
int DD_MUST_CHECK vdo_unpack_ref_block(struct vdo_ref_counts *counts, uint32_t index,
                                       const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn,
                                       struct vdo_ref_points points[VDO_SECTORS_PER_BLOCK]);

/** vdo_reset_ref_counts() - Make every block free and clean (before a rebuild or a load). */
void vdo_reset_ref_counts(struct vdo_ref_counts *counts);

#endif /* VDO_REF_COUNTS_H */
