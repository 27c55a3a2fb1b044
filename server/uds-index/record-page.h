/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Record pages: the records of a closed chapter, one fixed-size page at a time.
 *
 * A record page holds up to geometry->records_per_page records after a 32-byte header. The
 * records are sorted by name and stored as an implicit binary search tree (the root at slot 0,
 * the children of slot i at 2i+1 and 2i+2, filled by an in-order walk of the sorted records), so
 * a search follows one path of at most log2(n)+1 slots from the top of the page down, touching
 * few cache lines and needing no scan. Unused slots are zero.
 *
 * Header (little-endian):
 *   0  magic "URPG"        4 bytes
 *   4  version (1)         u16
 *   6  record count        u16
 *   8  page number         u32  (record page number within the chapter)
 *   12 reserved (0)        u32
 *   16 virtual chapter     u64
 *   24 checksum            u64  XXH3-64 of bytes 0-23 and 32..end, seeded with the index nonce
 *
 * The nonce ties a page to its index; the chapter and page number tie it to its place, so a
 * stale page left from an older lap of the chapter ring, or a page of another index, is told
 * apart from the page a reader expects.
 */
#ifndef UDS_RECORD_PAGE_H
#define UDS_RECORD_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "geometry.h"
#include "record-name.h"

/* The data stored with a name (for VDO: where the block lives). */
struct uds_record_data {
	uint8_t data[UDS_RECORD_DATA_BYTES];
};

/* A name and its data, as stored in chapters. */
struct uds_volume_record {
	struct dd_record_name name;
	struct uds_record_data data;
};

/**
 * uds_encode_record_page() - Build a record page.
 * @geometry:        the index geometry (page size, records per page)
 * @nonce:           the index nonce (seeds the checksum)
 * @virtual_chapter: the chapter the page belongs to
 * @page_number:     the record page number within the chapter
 * @records:         the page's records in any order; sorted in place
 * @count:           number of records, at most geometry->records_per_page (0 is allowed)
 * @page:            geometry->bytes_per_page bytes, filled in
 *
 * Return: DD_SUCCESS, or DD_INVALID_ARGUMENT for too many records.
 */
int DD_MUST_CHECK uds_encode_record_page(const struct uds_geometry *geometry, uint64_t nonce,
                                         uint64_t virtual_chapter, uint32_t page_number,
                                         struct uds_volume_record *records, uint32_t count,
                                         uint8_t *page);

/**
 * uds_validate_record_page() - Check a record page read from storage.
 * @geometry:        the index geometry
 * @nonce:           the index nonce
 * @virtual_chapter: the chapter the page must belong to
 * @page_number:     the record page number it must have
 * @page:            geometry->bytes_per_page bytes
 *
 * Return: DD_SUCCESS; DD_BAD_MAGIC, DD_UNSUPPORTED_VERSION, DD_CHECKSUM_MISMATCH or
 *         DD_CORRUPT_DATA (wrong chapter or page number, bad count, unsorted records).
 *         Failures are not logged (a stale page is an expected outcome for rebuild).
 */
int DD_MUST_CHECK uds_validate_record_page(const struct uds_geometry *geometry, uint64_t nonce,
                                           uint64_t virtual_chapter, uint32_t page_number,
                                           const uint8_t *page);

/**
 * uds_search_record_page() - Look a name up in a validated record page.
 * @geometry: the index geometry
 * @page:     the page
 * @name:     the name to find
 * @data:     set to the record's data when found (may be NULL)
 *
 * Return: true if the page holds a record with this name.
 */
bool uds_search_record_page(const struct uds_geometry *geometry, const uint8_t *page,
                            const struct dd_record_name *name, struct uds_record_data *data);

/** uds_get_record_page_chapter() - The virtual chapter written in a page's header. */
uint64_t uds_get_record_page_chapter(const uint8_t *page);

/**
 * uds_get_record_page_records() - Copy out the records of a validated page (in tree order).
 * @geometry: the index geometry
 * @page:     the page
 * @records:  room for geometry->records_per_page records
 *
 * Return: the number of records copied.
 */
uint32_t uds_get_record_page_records(const struct uds_geometry *geometry, const uint8_t *page,
                                     struct uds_volume_record *records);

#endif /* UDS_RECORD_PAGE_H */
