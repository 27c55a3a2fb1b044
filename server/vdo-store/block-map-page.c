// SPDX-License-Identifier: GPL-2.0-only
/*
 * Encoding and checking block map pages; see block-map-page.h.
 */
#include "block-map-page.h"

#include <string.h>

#include "block-device.h"
#include "byte-order.h"
#include "sector-check.h"

enum {
	MAGIC = 0x4d42,
	VERSION = 1,
	FLAG_INITIALIZED = 1,
	HEADER_BYTES = 20,
	ENTRY_BYTES = 5,
};

_Static_assert(HEADER_BYTES + VDO_BLOCK_MAP_ENTRIES_PER_PAGE * ENTRY_BYTES == VDO_BLOCK_PAYLOAD,
               "a block map page's header and entries fill its payload");

void vdo_pack_mapping(struct vdo_mapping mapping, uint8_t *bytes)
{
	bytes[0] = (uint8_t) ((mapping.state & 0x0f) | (((mapping.pbn >> 32) & 0x0f) << 4));
	dd_put_le32(bytes + 1, (uint32_t) mapping.pbn);
}

struct vdo_mapping vdo_unpack_mapping(const uint8_t *bytes)
{
	return (struct vdo_mapping){
		.pbn = ((vdo_pbn_t) (bytes[0] >> 4) << 32) | dd_get_le32(bytes + 1),
		.state = bytes[0] & 0x0f,
	};
}

void vdo_format_block_map_page(uint8_t *page, uint64_t nonce, vdo_pbn_t pbn)
{
	uint8_t header[HEADER_BYTES];

	memset(page, 0, VDO_BLOCK_SIZE);
	dd_put_le16(header, MAGIC);
	header[2] = VERSION;
	header[3] = FLAG_INITIALIZED;
	dd_put_le64(header + 4, nonce);
	dd_put_le64(header + 12, pbn);
	vdo_put_payload(page, 0, header, sizeof(header));
}

struct vdo_mapping vdo_get_block_map_entry(const uint8_t *page, unsigned int slot)
{
	uint8_t bytes[ENTRY_BYTES];

	vdo_get_payload(page, HEADER_BYTES + slot * ENTRY_BYTES, bytes, sizeof(bytes));
	return vdo_unpack_mapping(bytes);
}

void vdo_set_block_map_entry(uint8_t *page, unsigned int slot, struct vdo_mapping mapping)
{
	uint8_t bytes[ENTRY_BYTES];

	vdo_pack_mapping(mapping, bytes);
	vdo_put_payload(page, HEADER_BYTES + slot * ENTRY_BYTES, bytes, sizeof(bytes));
}

void vdo_seal_block_map_page(uint8_t *page, uint64_t nonce, vdo_pbn_t pbn)
{
	vdo_seal_sectors(page, nonce, pbn);
}

enum vdo_page_validity vdo_validate_block_map_page(const uint8_t *page, uint64_t nonce,
                                                   vdo_pbn_t pbn)
{
	struct vdo_sector_verdict verdict = vdo_check_sectors(page, nonce, pbn);
	uint8_t header[HEADER_BYTES];

	if (vdo_no_sector_good(verdict))
		return VDO_PAGE_UNFORMATTED;
	if (!vdo_all_sectors_good(verdict))
		return VDO_PAGE_CORRUPT;
	vdo_get_payload(page, 0, header, sizeof(header));
	if ((dd_get_le16(header) != MAGIC) || (header[2] != VERSION) ||
	    ((header[3] & FLAG_INITIALIZED) == 0) || (dd_get_le64(header + 4) != nonce) ||
	    (dd_get_le64(header + 12) != pbn))
		return VDO_PAGE_CORRUPT;
	return VDO_PAGE_VALID;
}
