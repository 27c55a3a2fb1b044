// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the vdo-store metadata blocks as they are read from disk.
 *
 * The first byte picks the structure, the next 8 the nonce and 8 more the block's PBN; the rest
 * is the block (zero-padded to 4 KiB). Each is decoded as loading or recovery would: the super
 * block, a recovery journal block and its entries, a slab journal block and its entries, a
 * block map page and its mappings, a slab summary block, a reference count block. Nothing may
 * crash or read out of bounds, and what a decoder accepts must make sense.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block-map-page.h"
#include "byte-order.h"
#include "recovery-journal-format.h"
#include "ref-counts.h"
#include "slab-journal-format.h"
#include "summary-block.h"
#include "super-block.h"

static uint8_t block[VDO_BLOCK_SIZE];

static void journal_block(uint64_t nonce, vdo_pbn_t pbn)
{
	struct vdo_journal_block_header header;
	unsigned int entries;

	if (!vdo_open_journal_block(block, nonce, pbn, (uint32_t) (pbn % 64), 64, &header))
		return;
	entries = vdo_count_journal_entries(block, nonce, pbn, header.sequence);
	if (entries > VDO_JOURNAL_ENTRIES_PER_BLOCK)
		abort();
	for (unsigned int i = 0; i < entries; i++) {
		struct vdo_journal_entry entry;

		if ((vdo_get_journal_entry(block, i, &entry) == DD_SUCCESS) &&
		    (entry.slot.slot >= VDO_BLOCK_MAP_ENTRIES_PER_PAGE))
			abort();
	}
}

static void slab_journal_block(uint64_t nonce, vdo_pbn_t pbn)
{
	struct vdo_slab_journal_header header;

	if (vdo_open_slab_journal_block(block, nonce, pbn, (uint32_t) (pbn % 16), 16, &header) !=
	    DD_SUCCESS)
		return;
	if (header.entry_count > VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK)
		abort();
	for (unsigned int i = 0; i < header.entry_count; i++) {
		if (vdo_get_slab_journal_entry(block, i).offset > VDO_MAX_SLAB_OFFSET)
			abort();
	}
}

static void map_page(uint64_t nonce, vdo_pbn_t pbn)
{
	if (vdo_validate_block_map_page(block, nonce, pbn) != VDO_PAGE_VALID)
		return;
	for (unsigned int slot = 0; slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE; slot++) {
		struct vdo_mapping mapping = vdo_get_block_map_entry(block, slot);

		if ((mapping.pbn > VDO_MAX_PBN) || (mapping.state > 15))
			abort();
	}
}

static void summary_block(uint64_t nonce, vdo_pbn_t pbn)
{
	if (vdo_validate_summary_block(block, nonce, pbn) != VDO_SUMMARY_VALID)
		return;
	for (unsigned int i = 0; i < VDO_SUMMARY_ENTRIES_PER_BLOCK; i++)
		(void) vdo_get_summary_entry(block, i);
}

static void count_block(uint64_t nonce, vdo_pbn_t pbn)
{
	static struct vdo_ref_counts *counts;
	struct vdo_ref_points points[VDO_SECTORS_PER_BLOCK];

	if ((counts == NULL) && (vdo_make_ref_counts(VDO_COUNTS_PER_REF_BLOCK - 7, &counts) != 0))
		abort();
	/* As loading a slab does: a failed unpack may leave the counts half loaded. */
	vdo_reset_ref_counts(counts);
	if ((vdo_unpack_ref_block(counts, 0, block, nonce, pbn, points) == DD_SUCCESS) &&
	    (vdo_free_blocks(counts) > VDO_COUNTS_PER_REF_BLOCK - 7))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vdo_super_block super;
	uint64_t nonce;
	vdo_pbn_t pbn;

	if (size < 17)
		return 0;
	nonce = dd_get_le64(data + 1);
	pbn = dd_get_le64(data + 9) & VDO_MAX_PBN;
	memset(block, 0, sizeof(block));
	memcpy(block, data + 17, (size - 17 < sizeof(block)) ? size - 17 : sizeof(block));
	switch (data[0] % 6) {
	case 0:
		if ((vdo_decode_super_block(block, &super) == DD_SUCCESS) &&
		    (super.layout.slab_count > VDO_MAX_SLABS))
			abort();
		break;
	case 1:
		journal_block(nonce, pbn);
		break;
	case 2:
		slab_journal_block(nonce, pbn);
		break;
	case 3:
		map_page(nonce, pbn);
		break;
	case 4:
		summary_block(nonce, pbn);
		break;
	case 5:
		count_block(nonce, pbn);
		break;
	}
	return 0;
}
