/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The on-disk form of recovery journal blocks.
 *
 * The recovery journal is a ring of blocks; the block with sequence number n lives in position
 * n % size. A block is written each time it gets new entries while no write is in flight, so it
 * is written over several times as it fills, and a power cut can tear such a write. So each
 * block is sector-checked (sector-check.h), and each sector carries its own entries:
 *
 *   every sector, at its payload's start:
 *     0   sequence, low 32 bits            u32   tells this lap of the ring from older ones
 *     4   entries in this sector           u8
 *     5   reserved (0)                     u8
 *   sector 0, after that, the block header:
 *     6   magic 0x4a52 ("RJ")              u16
 *     8   version (1)                      u8
 *     9   reserved (0)                     u8
 *     10  sequence                         u64
 *     18  head                             u64   the oldest block still needed when written
 *     26  logical blocks used              u64   before this block's first entry
 *     34  block map data blocks            u64   before this block's first entry
 *   then entries of 18 bytes: sector 0 holds 25, the others 28 each (221 in all).
 *
 * An entry: 0 operation (1: data remapping, 2: block map remapping) u8; 1 the PBN of the block
 * map page changed, 5 bytes; 6 the slot in that page, u16; 8 the new mapping, 5 bytes; 13 the
 * old mapping, 5 bytes (block-map-page.h packs mappings).
 *
 * Entries fill the sectors in order and each rewrite only adds entries, so a torn write leaves
 * every sector whole, old or new. Reading stops after the first sector that is not full: what
 * follows such a sector was never acknowledged.
 */
#ifndef VDO_RECOVERY_JOURNAL_FORMAT_H
#define VDO_RECOVERY_JOURNAL_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "vdo-types.h"

enum {
	VDO_JOURNAL_ENTRY_BYTES = 18,
	VDO_JOURNAL_ENTRIES_IN_SECTOR_0 = 25,
	VDO_JOURNAL_ENTRIES_PER_SECTOR = 28,
	VDO_JOURNAL_ENTRIES_PER_BLOCK =
	    VDO_JOURNAL_ENTRIES_IN_SECTOR_0 + 7 * VDO_JOURNAL_ENTRIES_PER_SECTOR,
};

enum vdo_journal_operation {
	VDO_JOURNAL_DATA_REMAPPING = 1,
	VDO_JOURNAL_BLOCK_MAP_REMAPPING = 2,
};

/* A place in the block map: a page and a slot in it. */
struct vdo_block_map_slot {
	vdo_pbn_t pbn;
	uint16_t slot;
};

struct vdo_journal_entry {
	enum vdo_journal_operation operation;
	struct vdo_block_map_slot slot;
	struct vdo_mapping new_mapping;
	struct vdo_mapping old_mapping;
};

struct vdo_journal_block_header {
	vdo_sequence_t sequence;
	vdo_sequence_t head;
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
};

/** vdo_start_journal_block() - Clear @block and give it @header (no entries yet). */
void vdo_start_journal_block(uint8_t *block, const struct vdo_journal_block_header *header);

/** vdo_set_journal_block_head() - Record the journal's head in @block's header. */
void vdo_set_journal_block_head(uint8_t *block, vdo_sequence_t head);

/** vdo_put_journal_entry() - Store entry @index (the next one) of @block. */
void vdo_put_journal_entry(uint8_t *block, unsigned int index,
                           const struct vdo_journal_entry *entry);

/** vdo_seal_journal_block() - Compute the sector checks of @block for @pbn. */
void vdo_seal_journal_block(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn);

/**
 * vdo_open_journal_block() - Check the header of a block read from @pbn.
 *
 * Return: true if sector 0 is a good journal block sector of this volume whose sequence belongs
 *         in that position of a journal of @size blocks.
 */
bool vdo_open_journal_block(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn, uint32_t position,
                            uint32_t size, struct vdo_journal_block_header *header);

/**
 * vdo_count_journal_entries() - How many entries of a block (opened as above) can be trusted:
 *                               those of its good sectors up to the first sector that is bad,
 *                               of another lap, or not full.
 */
unsigned int vdo_count_journal_entries(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn,
                                       vdo_sequence_t sequence);

/**
 * vdo_get_journal_entry() - Decode entry @index of @block.
 *
 * Return: DD_SUCCESS or DD_CORRUPT_DATA for an entry that makes no sense (unknown operation, a
 *         slot past the page, a block map remapping that is not a new uncompressed page).
 */
int DD_MUST_CHECK vdo_get_journal_entry(const uint8_t *block, unsigned int index,
                                        struct vdo_journal_entry *entry);

#endif /* VDO_RECOVERY_JOURNAL_FORMAT_H */
