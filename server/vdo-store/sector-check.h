/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Sector-checked blocks: metadata blocks that survive torn writes.
 *
 * Storage writes a 4 KiB block as eight 512-byte sectors, each whole or not at all, so a power
 * cut in the middle of rewriting a block can leave some sectors new and some old. A checksum of
 * the whole block would call such a block corrupt, though every sector in it is a good sector
 * of one version or the other, and the recovery journal knows how to bring it up to date. So
 * blocks that are rewritten in place (block map pages, reference count blocks) end each sector
 * with a 16-bit check of that sector's other 510 bytes, seeded with the volume's nonce, the
 * block's PBN and the sector's index: a sector from another volume, another block or another
 * place in the block fails its check, and so does a damaged one.
 *
 * The 8 x 510 bytes between the checks are the block's payload; vdo_payload_offset() maps a
 * payload offset to its place in the block, and the get/put helpers move bytes that may
 * straddle a sector's check.
 */
#ifndef VDO_SECTOR_CHECK_H
#define VDO_SECTOR_CHECK_H

#include <stdint.h>

#include "block-device.h"
#include "vdo-types.h"

enum {
	VDO_SECTOR_CHECK_BYTES = 2,
	VDO_SECTOR_PAYLOAD = VDO_SECTOR_SIZE - VDO_SECTOR_CHECK_BYTES,
	VDO_BLOCK_PAYLOAD = VDO_SECTORS_PER_BLOCK * VDO_SECTOR_PAYLOAD,
};

/* How the sectors of a block checked out. */
struct vdo_sector_verdict {
	/* Bit s set: sector s passed its check. */
	uint8_t good;
};

/** vdo_payload_offset() - Where payload byte @offset (< VDO_BLOCK_PAYLOAD) is in the block. */
static inline unsigned int vdo_payload_offset(unsigned int offset)
{
	return offset + VDO_SECTOR_CHECK_BYTES * (offset / VDO_SECTOR_PAYLOAD);
}

/** vdo_get_payload() - Copy @size payload bytes from @offset of @block to @to. */
void vdo_get_payload(const uint8_t *block, unsigned int offset, void *to, unsigned int size);

/** vdo_put_payload() - Copy @size bytes from @from to payload @offset of @block. */
void vdo_put_payload(uint8_t *block, unsigned int offset, const void *from, unsigned int size);

/** vdo_seal_sectors() - Write every sector's check, for the block at @pbn. */
void vdo_seal_sectors(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn);

/** vdo_check_sectors() - Check every sector of the block at @pbn. */
struct vdo_sector_verdict vdo_check_sectors(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn);

static inline bool vdo_all_sectors_good(struct vdo_sector_verdict verdict)
{
	return verdict.good == 0xff;
}

static inline bool vdo_no_sector_good(struct vdo_sector_verdict verdict)
{
	return verdict.good == 0;
}

#endif /* VDO_SECTOR_CHECK_H */
