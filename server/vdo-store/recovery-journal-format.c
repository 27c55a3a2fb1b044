// SPDX-License-Identifier: GPL-2.0-only
/*
 * Encoding and checking recovery journal blocks; see recovery-journal-format.h.
 */
#include "recovery-journal-format.h"

#include <string.h>

#include "block-device.h"
#include "block-map-page.h"
#include "byte-order.h"
#include "sector-check.h"

enum {
	MAGIC = 0x4a52,
	VERSION = 1,
	SECTOR_HEADER_BYTES = 6,
	BLOCK_HEADER_BYTES = 36,
	SECTOR_0_ENTRIES_AT = SECTOR_HEADER_BYTES + BLOCK_HEADER_BYTES,
};

_Static_assert(SECTOR_0_ENTRIES_AT + VDO_JOURNAL_ENTRIES_IN_SECTOR_0 * VDO_JOURNAL_ENTRY_BYTES <=
                   VDO_SECTOR_PAYLOAD,
               "sector 0's entries fit");
_Static_assert(SECTOR_HEADER_BYTES + VDO_JOURNAL_ENTRIES_PER_SECTOR * VDO_JOURNAL_ENTRY_BYTES <=
                   VDO_SECTOR_PAYLOAD,
               "a sector's entries fit");

static unsigned int capacity_of(unsigned int sector)
{
	return (sector == 0) ? VDO_JOURNAL_ENTRIES_IN_SECTOR_0 : VDO_JOURNAL_ENTRIES_PER_SECTOR;
}

/* Where entry @index goes: its sector and its byte offset in the block. */
static unsigned int locate(unsigned int index, unsigned int *sector_ptr)
{
	unsigned int sector = 0;

	if (index >= VDO_JOURNAL_ENTRIES_IN_SECTOR_0) {
		index -= VDO_JOURNAL_ENTRIES_IN_SECTOR_0;
		sector = 1 + index / VDO_JOURNAL_ENTRIES_PER_SECTOR;
		index %= VDO_JOURNAL_ENTRIES_PER_SECTOR;
	}
	*sector_ptr = sector;
	return sector * VDO_SECTOR_SIZE +
	       ((sector == 0) ? SECTOR_0_ENTRIES_AT : SECTOR_HEADER_BYTES) +
	       index * VDO_JOURNAL_ENTRY_BYTES;
}

void vdo_start_journal_block(uint8_t *block, const struct vdo_journal_block_header *header)
{
	uint8_t *at = block + SECTOR_HEADER_BYTES;

	memset(block, 0, VDO_BLOCK_SIZE);
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++)
		dd_put_le32(block + s * VDO_SECTOR_SIZE, (uint32_t) header->sequence);
	dd_put_le16(at, MAGIC);
	at[2] = VERSION;
	dd_put_le64(at + 4, header->sequence);
	dd_put_le64(at + 12, header->head);
	dd_put_le64(at + 20, header->logical_blocks_used);
	dd_put_le64(at + 28, header->block_map_data_blocks);
}

void vdo_set_journal_block_head(uint8_t *block, vdo_sequence_t head)
{
	dd_put_le64(block + SECTOR_HEADER_BYTES + 12, head);
}

void vdo_put_journal_entry(uint8_t *block, unsigned int index,
                           const struct vdo_journal_entry *entry)
{
	unsigned int sector;
	uint8_t *at = block + locate(index, &sector);
	uint8_t slot_pbn[8];

	at[0] = (uint8_t) entry->operation;
	dd_put_le64(slot_pbn, entry->slot.pbn);
	memcpy(at + 1, slot_pbn, 5);
	dd_put_le16(at + 6, entry->slot.slot);
	vdo_pack_mapping(entry->new_mapping, at + 8);
	vdo_pack_mapping(entry->old_mapping, at + 13);
	block[sector * VDO_SECTOR_SIZE + 4]++;
}

void vdo_seal_journal_block(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	vdo_seal_sectors(block, nonce, pbn);
}

bool vdo_open_journal_block(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn, uint32_t position,
                            uint32_t size, struct vdo_journal_block_header *header)
{
	const uint8_t *at = block + SECTOR_HEADER_BYTES;
	struct vdo_sector_verdict verdict = vdo_check_sectors(block, nonce, pbn);

	if (((verdict.good & 1) == 0) || (dd_get_le16(at) != MAGIC) || (at[2] != VERSION))
		return false;
	header->sequence = dd_get_le64(at + 4);
	header->head = dd_get_le64(at + 12);
	header->logical_blocks_used = dd_get_le64(at + 20);
	header->block_map_data_blocks = dd_get_le64(at + 28);
	return (header->sequence % size == position) && (header->head <= header->sequence) &&
	       ((uint32_t) header->sequence == dd_get_le32(block)) &&
	       (block[4] <= VDO_JOURNAL_ENTRIES_IN_SECTOR_0);
}

unsigned int vdo_count_journal_entries(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn,
                                       vdo_sequence_t sequence)
{
	struct vdo_sector_verdict verdict = vdo_check_sectors(block, nonce, pbn);
	unsigned int count = 0;

	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		const uint8_t *sector = block + s * VDO_SECTOR_SIZE;
		unsigned int entries = sector[4];

		if (((verdict.good & (1U << s)) == 0) ||
		    (dd_get_le32(sector) != (uint32_t) sequence) || (entries > capacity_of(s)))
			break;
		count += entries;
		if (entries < capacity_of(s))
			break;
	}
	return count;
}

int vdo_get_journal_entry(const uint8_t *block, unsigned int index, struct vdo_journal_entry *entry)
{
	unsigned int sector;
	const uint8_t *at = block + locate(index, &sector);
	uint8_t slot_pbn[8] = { 0 };

	memcpy(slot_pbn, at + 1, 5);
	entry->operation = (enum vdo_journal_operation) at[0];
	entry->slot.pbn = dd_get_le64(slot_pbn);
	entry->slot.slot = dd_get_le16(at + 6);
	entry->new_mapping = vdo_unpack_mapping(at + 8);
	entry->old_mapping = vdo_unpack_mapping(at + 13);
	if (((entry->operation != VDO_JOURNAL_DATA_REMAPPING) &&
	     (entry->operation != VDO_JOURNAL_BLOCK_MAP_REMAPPING)) ||
	    (entry->slot.slot >= VDO_BLOCK_MAP_ENTRIES_PER_PAGE) || (entry->slot.pbn > VDO_MAX_PBN))
		return DD_CORRUPT_DATA;
	if ((entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING) &&
	    ((entry->new_mapping.state != VDO_MAPPING_UNCOMPRESSED) ||
	     vdo_is_mapped(entry->old_mapping)))
		return DD_CORRUPT_DATA;
	return DD_SUCCESS;
}
