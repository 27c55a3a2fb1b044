/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Block map pages: the 4 KiB nodes of the block map trees, leaves and interior alike.
 *
 * A page is a sector-checked block (sector-check.h) whose payload is a 20-byte header and 812
 * five-byte entries:
 *
 *   0   magic 0x4d42 ("BM")            u16
 *   2   version (1)                    u8
 *   3   flags                          u8    bit 0: initialized
 *   4   nonce                          u64   the volume's
 *   12  PBN                            u64   where the page lives
 *   20  812 entries of 5 bytes: byte 0 holds the mapping state in its low 4 bits and bits 32-35
 *       of the PBN in its high 4 bits; bytes 1-4 hold bits 0-31 of the PBN, little-endian.
 *
 * In an interior page an entry maps the child page (state uncompressed, or unmapped when the
 * child does not exist yet); in a leaf it maps a logical block's data.
 *
 * Reading a page gives one of three verdicts: valid; unformatted (no sector belongs to this page
 * of this volume: it was allocated but never written, and reads as all unmapped when the
 * recovery journal says it is new); or corrupt (some sectors check and others do not, or the
 * header does not match), which puts the volume in read-only mode.
 */
#ifndef VDO_BLOCK_MAP_PAGE_H
#define VDO_BLOCK_MAP_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "vdo-types.h"

enum vdo_page_validity {
	VDO_PAGE_VALID = 0,
	VDO_PAGE_UNFORMATTED,
	VDO_PAGE_CORRUPT,
};

/** vdo_format_block_map_page() - Make @page an initialized page at @pbn with every entry unmapped.
 */
void vdo_format_block_map_page(uint8_t *page, uint64_t nonce, vdo_pbn_t pbn);

/** vdo_get_block_map_entry() - The mapping in @slot (< VDO_BLOCK_MAP_ENTRIES_PER_PAGE). */
struct vdo_mapping vdo_get_block_map_entry(const uint8_t *page, unsigned int slot);

/** vdo_set_block_map_entry() - Set the mapping in @slot. */
void vdo_set_block_map_entry(uint8_t *page, unsigned int slot, struct vdo_mapping mapping);

/** vdo_seal_block_map_page() - Compute the page's sector checks before writing it. */
void vdo_seal_block_map_page(uint8_t *page, uint64_t nonce, vdo_pbn_t pbn);

/** vdo_validate_block_map_page() - Check a page read from @pbn; see the verdicts above. */
enum vdo_page_validity vdo_validate_block_map_page(const uint8_t *page, uint64_t nonce,
                                                   vdo_pbn_t pbn);

/** vdo_pack_mapping() - Encode @mapping in 5 bytes. */
void vdo_pack_mapping(struct vdo_mapping mapping, uint8_t *bytes);

/** vdo_unpack_mapping() - Decode 5 bytes. */
struct vdo_mapping vdo_unpack_mapping(const uint8_t *bytes);

#endif /* VDO_BLOCK_MAP_PAGE_H */
