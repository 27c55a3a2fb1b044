// SPDX-License-Identifier: GPL-2.0-only
/*
 * Encoding and checking slab journal blocks; see slab-journal-format.h.
 */
#include "slab-journal-format.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "block-device.h"
#include "byte-order.h"

enum {
	MAGIC = 0x4a53,
	VERSION = 1,
	CHECKSUM_OFFSET = 48,
	INCREMENT_BIT = 1 << 23,
};

static uint64_t block_checksum(const uint8_t *block, vdo_pbn_t pbn)
{
	XXH3_state_t state;
	static const uint8_t zeros[8];

	XXH3_64bits_reset_withSeed(&state, pbn);
	XXH3_64bits_update(&state, block, CHECKSUM_OFFSET);
	XXH3_64bits_update(&state, zeros, sizeof(zeros));
	XXH3_64bits_update(&state, block + CHECKSUM_OFFSET + 8,
	                   VDO_BLOCK_SIZE - CHECKSUM_OFFSET - 8);
	return XXH3_64bits_digest(&state);
}

void vdo_start_slab_journal_block(uint8_t *block)
{
	memset(block, 0, VDO_BLOCK_SIZE);
}

void vdo_set_slab_journal_entry(uint8_t *block, unsigned int index,
                                struct vdo_slab_journal_entry entry)
{
	uint8_t *bytes =
	    block + VDO_SLAB_JOURNAL_HEADER_BYTES + index * VDO_SLAB_JOURNAL_ENTRY_BYTES;
	uint32_t value = entry.offset | (entry.increment ? INCREMENT_BIT : 0);

	bytes[0] = (uint8_t) value;
	bytes[1] = (uint8_t) (value >> 8);
	bytes[2] = (uint8_t) (value >> 16);
}

struct vdo_slab_journal_entry vdo_get_slab_journal_entry(const uint8_t *block, unsigned int index)
{
	const uint8_t *bytes =
	    block + VDO_SLAB_JOURNAL_HEADER_BYTES + index * VDO_SLAB_JOURNAL_ENTRY_BYTES;
	uint32_t value = bytes[0] | ((uint32_t) bytes[1] << 8) | ((uint32_t) bytes[2] << 16);

	return (struct vdo_slab_journal_entry){ .offset = value & (INCREMENT_BIT - 1),
		                                .increment = (value & INCREMENT_BIT) != 0 };
}

void vdo_seal_slab_journal_block(uint8_t *block, const struct vdo_slab_journal_header *header,
                                 vdo_pbn_t pbn)
{
	memset(block, 0, VDO_SLAB_JOURNAL_HEADER_BYTES);
	dd_put_le16(block, MAGIC);
	block[2] = VERSION;
	dd_put_le16(block + 4, header->entry_count);
	dd_put_le64(block + 8, header->nonce);
	dd_put_le64(block + 16, header->sequence);
	dd_put_le64(block + 24, header->head);
	dd_put_le64(block + 32, header->recovery_point.sequence);
	dd_put_le16(block + 40, header->recovery_point.entry);
	dd_put_le64(block + CHECKSUM_OFFSET, block_checksum(block, pbn));
}

int vdo_open_slab_journal_block(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn,
                                uint32_t position, uint32_t size,
                                struct vdo_slab_journal_header *header)
{
	if ((dd_get_le16(block) != MAGIC) || (block[2] != VERSION) ||
	    (dd_get_le64(block + 8) != nonce))
		return DD_BAD_MAGIC;
	if (dd_get_le64(block + CHECKSUM_OFFSET) != block_checksum(block, pbn))
		return DD_CHECKSUM_MISMATCH;
	header->entry_count = dd_get_le16(block + 4);
	header->nonce = nonce;
	header->sequence = dd_get_le64(block + 16);
	header->head = dd_get_le64(block + 24);
	header->recovery_point.sequence = dd_get_le64(block + 32);
	header->recovery_point.entry = dd_get_le16(block + 40);
	if ((header->sequence == 0) || (header->sequence % size != position) ||
	    (header->head > header->sequence) || (header->sequence - header->head >= size) ||
	    (header->entry_count > VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK))
		return DD_BAD_MAGIC;
	return DD_SUCCESS;
}
