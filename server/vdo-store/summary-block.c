// SPDX-License-Identifier: GPL-2.0-only
/*
 * Encoding and checking slab summary blocks; see summary-block.h.
 */
#include "summary-block.h"

#include <string.h>

#include "block-device.h"
#include "byte-order.h"
#include "layout.h"
#include "sector-check.h"

enum {
	MAGIC = 0x53,
	VERSION = 1,
	ENTRY_BYTES = 4,
	FLAG_LOAD_REF_COUNTS = 1,
	FLAG_DIRTY = 2,
	TAIL_OFFSET = VDO_SUMMARY_ENTRIES_PER_SECTOR * ENTRY_BYTES,
};

_Static_assert(VDO_SUMMARY_ENTRIES_PER_SECTOR *VDO_SECTORS_PER_BLOCK ==
                   VDO_SUMMARY_ENTRIES_PER_BLOCK,
               "the layout's summary size matches the block format");
_Static_assert(TAIL_OFFSET + 2 == VDO_SECTOR_PAYLOAD, "entries and tail fill each sector");

static uint8_t *entry_bytes(uint8_t *block, unsigned int index)
{
	return block + (index / VDO_SUMMARY_ENTRIES_PER_SECTOR) * VDO_SECTOR_SIZE +
	       (index % VDO_SUMMARY_ENTRIES_PER_SECTOR) * ENTRY_BYTES;
}

void vdo_format_summary_block(uint8_t *block)
{
	memset(block, 0, VDO_BLOCK_SIZE);
	block[TAIL_OFFSET] = MAGIC;
	block[TAIL_OFFSET + 1] = VERSION;
}

struct vdo_summary_entry vdo_get_summary_entry(const uint8_t *block, unsigned int index)
{
	const uint8_t *bytes = entry_bytes((uint8_t *) block, index);

	return (struct vdo_summary_entry){
		.tail_block_offset = dd_get_le16(bytes),
		.fullness_hint = bytes[2],
		.load_ref_counts = (bytes[3] & FLAG_LOAD_REF_COUNTS) != 0,
		.dirty = (bytes[3] & FLAG_DIRTY) != 0,
	};
}

void vdo_set_summary_entry(uint8_t *block, unsigned int index, struct vdo_summary_entry entry)
{
	uint8_t *bytes = entry_bytes(block, index);

	dd_put_le16(bytes, entry.tail_block_offset);
	bytes[2] = entry.fullness_hint;
	bytes[3] = (uint8_t) ((entry.load_ref_counts ? FLAG_LOAD_REF_COUNTS : 0) |
	                      (entry.dirty ? FLAG_DIRTY : 0));
}

void vdo_seal_summary_block(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	vdo_seal_sectors(block, nonce, pbn);
}

enum vdo_summary_validity vdo_validate_summary_block(const uint8_t *block, uint64_t nonce,
                                                     vdo_pbn_t pbn)
{
	struct vdo_sector_verdict verdict = vdo_check_sectors(block, nonce, pbn);

	if (vdo_no_sector_good(verdict))
		return VDO_SUMMARY_UNFORMATTED;
	if (!vdo_all_sectors_good(verdict) || (block[TAIL_OFFSET] != MAGIC) ||
	    (block[TAIL_OFFSET + 1] != VERSION))
		return VDO_SUMMARY_CORRUPT;
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		const uint8_t *entry = block + s * VDO_SECTOR_SIZE;

		for (unsigned int e = 0; e < VDO_SUMMARY_ENTRIES_PER_SECTOR; e++) {
			if ((entry[e * ENTRY_BYTES + 3] & ~(FLAG_LOAD_REF_COUNTS | FLAG_DIRTY)) !=
			    0)
				return VDO_SUMMARY_CORRUPT;
		}
	}
	return VDO_SUMMARY_VALID;
}
