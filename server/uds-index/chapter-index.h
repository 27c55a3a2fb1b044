/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The chapter index: which record page of a closed chapter may hold a name.
 *
 * While a chapter is being closed, its records are put into an "open chapter index", a one-zone
 * mutable delta index keyed by part of the name (bytes 8-13, see
 * dd_record_name_chapter_index_bits()): the low geometry->chapter_address_bits bits are the
 * address within a list and the bits above them, modulo geometry->chapter_delta_lists, the list.
 * The value of an entry is the record page number. A second name with the same address is
 * stored as a collision entry carrying its full name, so a lookup of either finds its own page.
 *
 * The open chapter index is then packed into immutable delta pages (uds_pack_delta_page()), as
 * many whole lists as fit per page, in list order. Each page's header records the virtual
 * chapter, the nonce and a checksum. A reader keeps, per chapter, the last list of each index
 * page (the index page map) to find the one page to read for a name.
 */
#ifndef UDS_CHAPTER_INDEX_H
#define UDS_CHAPTER_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "delta-index.h"
#include "errors.h"
#include "geometry.h"
#include "record-name.h"

/* What a chapter index search returns when the name has no entry. */
#define UDS_NO_RECORD_PAGE UINT32_MAX

/* The chapter index of the chapter being closed. */
struct uds_open_chapter_index {
	const struct uds_geometry *geometry;
	struct uds_delta_index *delta_index;
	uint64_t virtual_chapter;
	uint64_t nonce;
	/* Entries dropped because their list did not fit in the chapter's index pages. */
	uint64_t discarded_entries;
	/* Bytes allocated. */
	size_t memory_size;
};

/** uds_chapter_index_list() - The chapter index list a name belongs to. */
uint32_t uds_chapter_index_list(const struct uds_geometry *geometry,
                                const struct dd_record_name *name);

/**
 * uds_make_open_chapter_index() - Allocate an open chapter index for a geometry.
 * @geometry:  the index geometry (kept by reference; must outlive the chapter index)
 * @nonce:     the index nonce, written into every packed page
 * @index_ptr: set to the new chapter index
 */
int DD_MUST_CHECK uds_make_open_chapter_index(const struct uds_geometry *geometry, uint64_t nonce,
                                              struct uds_open_chapter_index **index_ptr);

/** uds_free_open_chapter_index() - Free an open chapter index (NULL is fine). */
void uds_free_open_chapter_index(struct uds_open_chapter_index *index);

/** uds_empty_open_chapter_index() - Empty it and set the chapter its pages will carry. */
void uds_empty_open_chapter_index(struct uds_open_chapter_index *index, uint64_t virtual_chapter);

/**
 * uds_put_open_chapter_index_record() - Add a name with its record page number.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a page number beyond the chapter, DD_OVERFLOW if
 *         the index memory is full (the entry is dropped and counted).
 */
int DD_MUST_CHECK uds_put_open_chapter_index_record(struct uds_open_chapter_index *index,
                                                    const struct dd_record_name *name,
                                                    uint32_t page_number);

/**
 * uds_pack_open_chapter_index_page() - Pack lists, starting at @first_list, into one page.
 * @index:       the open chapter index
 * @page:        geometry->bytes_per_page bytes, filled in
 * @first_list:  the first list to pack
 * @last_page:   true for the chapter's last index page: lists that do not fit are dropped
 *               (their entries counted in discarded_entries) rather than left for a next page
 * @lists_ptr:   set to the number of lists packed
 *
 * Return: DD_SUCCESS or an error from the delta index.
 */
int DD_MUST_CHECK uds_pack_open_chapter_index_page(struct uds_open_chapter_index *index,
                                                   uint8_t *page, uint32_t first_list,
                                                   bool last_page, uint32_t *lists_ptr);

/**
 * uds_open_chapter_index_page() - Validate an index page read from storage and make it
 *                                 searchable.
 * @page:            filled in; refers to @memory, which must stay put while @page is used
 * @geometry:        the index geometry
 * @nonce:           the index nonce
 * @virtual_chapter: the chapter the page must belong to
 * @memory:          geometry->bytes_per_page bytes
 *
 * Return: DD_SUCCESS, or an error (not logged) if the page is corrupt or belongs elsewhere.
 */
int DD_MUST_CHECK uds_open_chapter_index_page(struct uds_delta_page *page,
                                              const struct uds_geometry *geometry, uint64_t nonce,
                                              uint64_t virtual_chapter, const uint8_t *memory);

/**
 * uds_search_chapter_index_page() - Find the record page that may hold a name.
 * @page:            an opened index page that holds the name's list
 * @geometry:        the index geometry
 * @name:            the name
 * @record_page_ptr: set to the record page number, or UDS_NO_RECORD_PAGE
 */
int DD_MUST_CHECK uds_search_chapter_index_page(struct uds_delta_page *page,
                                                const struct uds_geometry *geometry,
                                                const struct dd_record_name *name,
                                                uint32_t *record_page_ptr);

#endif /* UDS_CHAPTER_INDEX_H */
