/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Slab summary blocks: the on-disk form of the slab summary, which keeps for every slab what
 * recovery needs to know before it reads the slab itself.
 *
 * A summary block is a sector-checked block (sector-check.h). Each sector's 510 payload bytes
 * hold 127 four-byte entries and a 2-byte tail: in sector 0 the magic (0x53) and version (1),
 * zero elsewhere. Entries never straddle sectors, so a torn write leaves each entry whole, old
 * or new. Entry n of block b is the entry of slab b * 1016 + n:
 *
 *   0   slab journal tail block offset     u16
 *   2   fullness hint                      u8    blocks in use, scaled to 0-255 (0: empty)
 *   3   flags                              u8    bit 0: the reference counts on disk are
 *                                                meaningful (the slab has been saved or
 *                                                scrubbed at least once); bit 1: they are
 *                                                out of date (replay the slab journal)
 *
 * All-zero entries describe a slab never used: every block free, nothing to read.
 */
#ifndef VDO_SUMMARY_BLOCK_H
#define VDO_SUMMARY_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "vdo-types.h"

enum {
	VDO_SUMMARY_ENTRIES_PER_SECTOR = 127,
};

struct vdo_summary_entry {
	uint16_t tail_block_offset;
	uint8_t fullness_hint;
	bool load_ref_counts;
	bool dirty;
};

enum vdo_summary_validity {
	VDO_SUMMARY_VALID = 0,
	/* No sector belongs to this block of this volume. */
	VDO_SUMMARY_UNFORMATTED,
	VDO_SUMMARY_CORRUPT,
};

/** vdo_format_summary_block() - Make @block a summary block of never-used slabs. */
void vdo_format_summary_block(uint8_t *block);

/** vdo_get_summary_entry() - Entry @index (< VDO_SUMMARY_ENTRIES_PER_BLOCK) of @block. */
struct vdo_summary_entry vdo_get_summary_entry(const uint8_t *block, unsigned int index);

/** vdo_set_summary_entry() - Set entry @index of @block. */
void vdo_set_summary_entry(uint8_t *block, unsigned int index, struct vdo_summary_entry entry);

/** vdo_seal_summary_block() - Compute the sector checks of the block at @pbn. */
void vdo_seal_summary_block(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn);

/** vdo_validate_summary_block() - Check a summary block read from @pbn. */
enum vdo_summary_validity vdo_validate_summary_block(const uint8_t *block, uint64_t nonce,
                                                     vdo_pbn_t pbn);

#endif /* VDO_SUMMARY_BLOCK_H */
