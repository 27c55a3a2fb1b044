/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The layout of a volume: where each part of the store lives on the backing storage, in 4 KiB
 * blocks (PBNs).
 *
 *   PBN 0, 1             the super block, two copies (super-block.h)
 *   journal_origin       the recovery journal, journal_blocks blocks
 *   root_origin          the 60 block map tree roots, one page each
 *   summary_origin       the slab summary, VDO_SUMMARY_BLOCKS blocks (room for VDO_MAX_SLABS)
 *   index_origin         the embedded dedupe index's storage, index_blocks blocks (0: none);
 *                        the index engine reads and writes it itself (dedupe-index.h)
 *   depot_origin         the slabs, slab_blocks each, one after another
 *   (the rest)           less than a slab: unused until the storage grows
 *
 * Each slab (slab_blocks, a power of two) is laid out as
 *
 *   slab origin          data blocks: user data and block map pages, data_blocks of them
 *   + data_blocks        reference counts, one byte per data block, ref_blocks blocks
 *   + data_blocks + ref_blocks
 *                        the slab journal, slab_journal_blocks blocks
 *
 * Only the slab count depends on the storage's size, so growing the physical size adds slabs
 * and changes nothing else; the slab summary is sized for the most slabs a volume may have.
 * Growing the logical size changes nothing on disk but the super block: the block map trees are
 * of fixed height, and their pages are allocated as they are needed.
 *
 * The defaults scale with the storage: slabs of a power of two near an eighth of it, from 4 MiB
 * to 2 GiB (so large volumes get dm-vdo's 2 GiB slabs); a slab journal of 1/64 of the slab, 8 to
 * 224 blocks; a recovery journal of 1/64 of the storage, 64 blocks to 128 MiB.
 */
#ifndef VDO_LAYOUT_H
#define VDO_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "vdo-types.h"

enum {
	VDO_SUPER_BLOCK_COPIES = 2,
	/* Reference counts per reference count block: 8 sectors of 496 counts, each after a
	 * slab journal point and a recovery journal point (7 bytes each) and before its sector
	 * check (ref-counts.h). */
	VDO_COUNTS_PER_SECTOR = 496,
	VDO_COUNTS_PER_REF_BLOCK = 8 * VDO_COUNTS_PER_SECTOR,
	/* Slab summary entries per block (127 per sector; summary-block.h), and its size. */
	VDO_SUMMARY_ENTRIES_PER_BLOCK = 1016,
	VDO_MAX_SLABS = 8192,
	VDO_SUMMARY_BLOCKS =
	    (VDO_MAX_SLABS + VDO_SUMMARY_ENTRIES_PER_BLOCK - 1) / VDO_SUMMARY_ENTRIES_PER_BLOCK,
	/* Slab sizes allowed: 128 blocks (for tests) to 32 GiB. */
	VDO_MIN_SLAB_BITS = 7,
	VDO_MAX_SLAB_BITS = 23,
	VDO_MIN_SLAB_JOURNAL_BLOCKS = 4,
	VDO_MIN_RECOVERY_JOURNAL_BLOCKS = 16,
	VDO_MAX_RECOVERY_JOURNAL_BLOCKS = 1 << 18,
};

/* What a volume is formatted with; 0 in a field asks for the default. */
struct vdo_format_config {
	/* The storage to use (0: all of it). */
	uint64_t physical_blocks;
	/* The volume's size as the host sees it (0: the data blocks the slabs hold). */
	uint64_t logical_blocks;
	uint32_t slab_blocks;
	uint32_t slab_journal_blocks;
	uint32_t recovery_journal_blocks;
	/* Blocks reserved for the embedded dedupe index (0: none). */
	uint64_t index_blocks;
};

struct vdo_layout {
	uint64_t physical_blocks;
	uint64_t logical_blocks;
	uint64_t journal_origin;
	uint32_t journal_blocks;
	uint64_t root_origin;
	uint64_t summary_origin;
	uint64_t index_origin;
	uint64_t index_blocks;
	uint64_t depot_origin;
	uint32_t slab_count;
	uint32_t slab_bits;
	uint32_t slab_blocks;
	uint32_t slab_data_blocks;
	uint32_t slab_ref_blocks;
	uint32_t slab_journal_blocks;
};

/**
 * vdo_compute_layout() - The layout of a volume on @device_blocks blocks of storage.
 *
 * Return: DD_SUCCESS, or DD_INVALID_ARGUMENT (with a message) when the configuration cannot be
 *         laid out: a slab size that is not a power of two in range, a journal too small or too
 *         large for its slab, storage too small for one slab, more slabs than VDO_MAX_SLABS, or
 *         a logical size beyond what 36-bit mappings address.
 */
int DD_MUST_CHECK vdo_compute_layout(const struct vdo_format_config *config, uint64_t device_blocks,
                                     struct vdo_layout *layout);

/**
 * vdo_check_layout() - Whether a layout read from disk is consistent: the same checks as
 *                      vdo_compute_layout() plus the regions adding up.
 */
int DD_MUST_CHECK vdo_check_layout(const struct vdo_layout *layout);

/**
 * vdo_grow_layout() - The layout after the storage grew to @physical_blocks: more slabs.
 *
 * Return: DD_SUCCESS, or DD_INVALID_ARGUMENT if it would not add a slab or would exceed
 *         VDO_MAX_SLABS.
 */
int DD_MUST_CHECK vdo_grow_layout(const struct vdo_layout *layout, uint64_t physical_blocks,
                                  struct vdo_layout *grown);

/** vdo_slab_origin() - The first block of slab @slab. */
static inline uint64_t vdo_slab_origin(const struct vdo_layout *layout, uint32_t slab)
{
	return layout->depot_origin + ((uint64_t) slab << layout->slab_bits);
}

/**
 * vdo_locate_data_block() - The slab holding data block @pbn and the block's offset there; false
 *                           if @pbn is not a data block of any slab of @layout.
 */
static inline bool vdo_locate_data_block(const struct vdo_layout *layout, uint64_t pbn,
                                         uint32_t *slab_ptr, uint32_t *offset_ptr)
{
	uint64_t slab;
	uint64_t offset;

	if (pbn < layout->depot_origin)
		return false;
	slab = (pbn - layout->depot_origin) >> layout->slab_bits;
	offset = (pbn - layout->depot_origin) & (((uint64_t) 1 << layout->slab_bits) - 1);
	if ((slab >= layout->slab_count) || (offset >= layout->slab_data_blocks))
		return false;
	*slab_ptr = (uint32_t) slab;
	*offset_ptr = (uint32_t) offset;
	return true;
}

/** vdo_data_blocks() - The data blocks of all slabs. */
static inline uint64_t vdo_data_blocks(const struct vdo_layout *layout)
{
	return (uint64_t) layout->slab_count * layout->slab_data_blocks;
}

/** vdo_overhead_blocks() - Blocks of metadata (everything that is not a slab's data block). */
uint64_t vdo_overhead_blocks(const struct vdo_layout *layout);

#endif /* VDO_LAYOUT_H */
