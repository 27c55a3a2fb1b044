/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The on-disk form of slab journal blocks.
 *
 * A slab journal is a ring of blocks at the end of its slab; the block with sequence number n
 * lives in position n % size. Each block is written once for its sequence number (a partly
 * filled block that must be written is written as it is, and the next entries go to the next
 * sequence), so a block is checked whole:
 *
 *   0   magic 0x4a53 ("SJ")                 u16
 *   2   version (1)                         u8
 *   3   reserved (0)                        u8
 *   4   entry count                         u16
 *   6   reserved (0)                        u16
 *   8   nonce                               u64
 *   16  sequence                            u64
 *   24  head                                u64   the oldest block still needed when written
 *   32  recovery point of the last entry    u64 sequence, u16 entry (see below)
 *   42  reserved (0)                        6 bytes
 *   48  checksum                            u64   XXH3-64 of the block with this field zero,
 *                                                 seeded with the block's PBN
 *   56  entries, 3 bytes each, little-endian: bits 0-22 the block's offset in the slab, bit 23
 *       set for an increment, clear for a decrement
 *
 * Recovery points of slab journal entries count two per recovery journal entry (the entry's
 * index times two, plus one for its decrement), so that the increment and the decrement of one
 * remapping, which may land in the same slab, are ordered.
 */
#ifndef VDO_SLAB_JOURNAL_FORMAT_H
#define VDO_SLAB_JOURNAL_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "vdo-types.h"

enum {
	VDO_SLAB_JOURNAL_HEADER_BYTES = 56,
	VDO_SLAB_JOURNAL_ENTRY_BYTES = 3,
	VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK =
	    (4096 - VDO_SLAB_JOURNAL_HEADER_BYTES) / VDO_SLAB_JOURNAL_ENTRY_BYTES,
	VDO_MAX_SLAB_OFFSET = (1 << 23) - 1,
};

struct vdo_slab_journal_header {
	uint16_t entry_count;
	uint64_t nonce;
	vdo_sequence_t sequence;
	vdo_sequence_t head;
	struct vdo_journal_point recovery_point;
};

struct vdo_slab_journal_entry {
	uint32_t offset;
	bool increment;
};

/** vdo_start_slab_journal_block() - Clear @block for entries. */
void vdo_start_slab_journal_block(uint8_t *block);

/** vdo_set_slab_journal_entry() - Store entry @index of @block. */
void vdo_set_slab_journal_entry(uint8_t *block, unsigned int index,
                                struct vdo_slab_journal_entry entry);

/** vdo_get_slab_journal_entry() - Entry @index of @block. */
struct vdo_slab_journal_entry vdo_get_slab_journal_entry(const uint8_t *block, unsigned int index);

/** vdo_seal_slab_journal_block() - Write @header into @block and its checksum for @pbn. */
void vdo_seal_slab_journal_block(uint8_t *block, const struct vdo_slab_journal_header *header,
                                 vdo_pbn_t pbn);

/**
 * vdo_open_slab_journal_block() - Check a block read from @pbn and decode its header.
 *
 * Return: DD_SUCCESS if it is a slab journal block of the volume with @nonce whose sequence
 *         belongs in that position of a journal of @size blocks, with a sane entry count;
 *         DD_BAD_MAGIC (or DD_CHECKSUM_MISMATCH) if not.
 */
int DD_MUST_CHECK vdo_open_slab_journal_block(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn,
                                              uint32_t position, uint32_t size,
                                              struct vdo_slab_journal_header *header);

#endif /* VDO_SLAB_JOURNAL_FORMAT_H */
