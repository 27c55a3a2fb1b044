// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sector checks and the payload between them; see sector-check.h.
 */
#include "sector-check.h"

#include <string.h>
#include <xxhash.h>

#include "byte-order.h"

static uint16_t sector_check(const uint8_t *sector, uint64_t nonce, vdo_pbn_t pbn,
                             unsigned int index)
{
	uint64_t seed = nonce ^ ((pbn << 3) | index) ^ 0x5ec7c4ec5ec7c4ecULL;

	return (uint16_t) XXH3_64bits_withSeed(sector, VDO_SECTOR_PAYLOAD, seed);
}

void vdo_get_payload(const uint8_t *block, unsigned int offset, void *to, unsigned int size)
{
	uint8_t *bytes = to;

	while (size > 0) {
		unsigned int room = VDO_SECTOR_PAYLOAD - offset % VDO_SECTOR_PAYLOAD;
		unsigned int length = (size < room) ? size : room;

		memcpy(bytes, block + vdo_payload_offset(offset), length);
		bytes += length;
		offset += length;
		size -= length;
	}
}

void vdo_put_payload(uint8_t *block, unsigned int offset, const void *from, unsigned int size)
{
	const uint8_t *bytes = from;

	while (size > 0) {
		unsigned int room = VDO_SECTOR_PAYLOAD - offset % VDO_SECTOR_PAYLOAD;
		unsigned int length = (size < room) ? size : room;

		memcpy(block + vdo_payload_offset(offset), bytes, length);
		bytes += length;
		offset += length;
		size -= length;
	}
}

void vdo_seal_sectors(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		uint8_t *sector = block + s * VDO_SECTOR_SIZE;

		dd_put_le16(sector + VDO_SECTOR_PAYLOAD, sector_check(sector, nonce, pbn, s));
	}
}

struct vdo_sector_verdict vdo_check_sectors(const uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	struct vdo_sector_verdict verdict = { 0 };

	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		const uint8_t *sector = block + s * VDO_SECTOR_SIZE;

		if (dd_get_le16(sector + VDO_SECTOR_PAYLOAD) == sector_check(sector, nonce, pbn, s))
			verdict.good |= (uint8_t) (1U << s);
	}
	return verdict;
}
