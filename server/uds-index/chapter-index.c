// SPDX-License-Identifier: GPL-2.0-only
/*
 * The chapter index; see chapter-index.h for what it is for.
 *
 * Keys. The 48 chapter index bits of a name give the address (the low chapter_address_bits) and
 * the list (the bits above, modulo the list count, which geometry makes a power of two so the
 * modulo is a mask).
 *
 * Collisions. The first entry with an address is the default for every name with that address;
 * a later name with the same address and a different page gets a collision entry carrying its
 * full name. A name with the same address and the same page as the default needs no entry of its
 * own: a search for it already finds the right page. A name put twice (which the open chapter
 * never does) ends up with its last page: if its entry is a collision entry the value is
 * changed; if it is the default entry, whose name is not stored, a collision entry is added,
 * which its searches then find first.
 *
 * Memory. The open chapter index is one zone sized for a full chapter: the expected bits of
 * records_per_chapter entries, plus two bits per entry because the address space of a list is
 * rounded up to a power of two (so the real mean delta lies between one and two times
 * chapter_mean_delta), plus 20% and a few bytes per list for collisions, gaps and list
 * alignment. A full chapter of hashed names therefore never overflows it.
 *
 * Long lists. A list is packed whole into a page, so no list may outgrow a page. Names that are
 * hashes never come close (a list holds about 64 entries, under 2,000 bits), but names chosen to
 * share their list could; a put that would take a list beyond what a page surely holds is
 * refused with DD_OVERFLOW (and the entry counted as discarded), so packing never fails.
 */
#include "chapter-index.h"

#include "logger.h"
#include "memory-alloc.h"

enum {
	BITS_PER_BYTE = 8,
	/* Generous bound of the bits of a delta page that hold no list (header, offsets, guard). */
	PAGE_OVERHEAD_BITS = 1024,
	/* Generous bound of the bits one new entry adds (payload, long delta code, full name). */
	MAX_ENTRY_BITS = 512,
	/* A tag for the open chapter index in the delta index. */
	CHAPTER_INDEX_TAG = 'c',
};

/* The list and address of a name in the chapter index. */
static inline void get_list_and_address(const struct uds_geometry *geometry,
                                        const struct dd_record_name *name, uint32_t *list_ptr,
                                        uint32_t *address_ptr)
{
	uint64_t bits = dd_record_name_chapter_index_bits(name);
	uint64_t list_bits = bits >> geometry->chapter_address_bits;
	uint32_t lists = geometry->chapter_delta_lists;

	*address_ptr = (uint32_t) (bits & ((1ULL << geometry->chapter_address_bits) - 1));
	*list_ptr = (uint32_t) (((lists & (lists - 1)) == 0) ? (list_bits & (lists - 1))
	                                                     : (list_bits % lists));
}

uint32_t uds_chapter_index_list(const struct uds_geometry *geometry,
                                const struct dd_record_name *name)
{
	uint32_t list;
	uint32_t address;

	get_list_and_address(geometry, name, &list, &address);
	return list;
}

/* The list memory for a full chapter; see the top of this file. */
static size_t compute_memory_size(const struct uds_geometry *geometry)
{
	uint64_t entries = geometry->records_per_chapter;
	uint64_t bits = uds_compute_delta_index_bits(entries, geometry->chapter_mean_delta,
	                                             geometry->chapter_payload_bits);
	uint64_t bytes = (bits + 2 * entries) / BITS_PER_BYTE;

	return (size_t) (bytes + bytes / 5 + 4 * (uint64_t) geometry->chapter_delta_lists + 4096);
}

/* The longest a list may grow to so that it still fits in one index page on its own. */
static inline uint64_t max_list_bits(const struct uds_geometry *geometry)
{
	uint64_t page_bits = (uint64_t) geometry->bytes_per_page * BITS_PER_BYTE;
	uint64_t limit = page_bits - PAGE_OVERHEAD_BITS;

	return (limit < UDS_DELTA_LIST_MAX_BITS) ? limit : UDS_DELTA_LIST_MAX_BITS;
}

int uds_make_open_chapter_index(const struct uds_geometry *geometry, uint64_t nonce,
                                struct uds_open_chapter_index **index_ptr)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = geometry->chapter_delta_lists,
		.mean_delta = geometry->chapter_mean_delta,
		.payload_bits = geometry->chapter_payload_bits,
		.memory_size = compute_memory_size(geometry),
		.tag = CHAPTER_INDEX_TAG,
	};
	struct uds_open_chapter_index *index;
	int result;

	result = dd_allocate(sizeof(*index), "open chapter index", &index);
	if (result != DD_SUCCESS)
		return result;
	result = uds_make_delta_index(&params, &index->delta_index);
	if (result != DD_SUCCESS) {
		dd_free(index);
		return result;
	}
	index->geometry = geometry;
	index->nonce = nonce;
	index->memory_size = sizeof(*index) + index->delta_index->memory_size;
	*index_ptr = index;
	return DD_SUCCESS;
}

void uds_free_open_chapter_index(struct uds_open_chapter_index *index)
{
	if (index == NULL)
		return;
	uds_free_delta_index(index->delta_index);
	dd_free(index);
}

void uds_empty_open_chapter_index(struct uds_open_chapter_index *index, uint64_t virtual_chapter)
{
	uds_reset_delta_index(index->delta_index);
	index->virtual_chapter = virtual_chapter;
	index->discarded_entries = 0;
}

/* The number of bits list @list_number of the open chapter index takes. */
static inline uint64_t get_list_bits(const struct uds_open_chapter_index *index,
                                     uint32_t list_number)
{
	/* The zone's list headers start with a guard list, so list n is at n + 1. */
	return index->delta_index->zones[0].lists[list_number + 1].size;
}

/* Add or change the entry @entry (a search for @name at @address) to say @page_number. */
static int put_entry(struct uds_delta_entry *entry, uint32_t address,
                     const struct dd_record_name *name, uint32_t page_number)
{
	bool found = !entry->at_end && (entry->key == address);

	if (entry->is_collision)
		return uds_set_delta_entry_value(entry, page_number);
	if (found && (uds_get_delta_entry_value(entry) == page_number))
		return DD_SUCCESS;
	return uds_put_delta_entry(entry, address, page_number, found ? name : NULL);
}

int uds_put_open_chapter_index_record(struct uds_open_chapter_index *index,
                                      const struct dd_record_name *name, uint32_t page_number)
{
	const struct uds_geometry *geometry = index->geometry;
	struct uds_delta_entry entry;
	uint32_t list;
	uint32_t address;
	int result;

	if (page_number >= geometry->record_pages_per_chapter)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "record page %u of a %u page chapter", page_number,
		                             geometry->record_pages_per_chapter);
	get_list_and_address(geometry, name, &list, &address);
	if (get_list_bits(index, list) + MAX_ENTRY_BITS > max_list_bits(geometry)) {
		index->discarded_entries++;
		return DD_OVERFLOW;
	}
	result = uds_get_delta_entry(index->delta_index, list, address, name, &entry);
	if (result != DD_SUCCESS)
		return result;
	result = put_entry(&entry, address, name, page_number);
	if (result == DD_OVERFLOW)
		index->discarded_entries++;
	return result;
}

/* Count the entries of list @list_number of the open chapter index. */
static int count_list_entries(const struct uds_open_chapter_index *index, uint32_t list_number,
                              uint64_t *count_ptr)
{
	struct uds_delta_entry entry;
	uint64_t count = 0;
	int result;

	result = uds_start_delta_search(index->delta_index, list_number, 0, &entry);
	while (result == DD_SUCCESS) {
		result = uds_next_delta_entry(&entry);
		if ((result != DD_SUCCESS) || entry.at_end)
			break;
		count++;
	}
	*count_ptr += count;
	return result;
}

int uds_pack_open_chapter_index_page(struct uds_open_chapter_index *index, uint8_t *page,
                                     uint32_t first_list, bool last_page, uint32_t *lists_ptr)
{
	const struct uds_geometry *geometry = index->geometry;
	uint32_t list_count = geometry->chapter_delta_lists;
	uint32_t count;
	int result;

	result = uds_pack_delta_page(index->delta_index, index->nonce, index->virtual_chapter,
	                             first_list, page, geometry->bytes_per_page, &count);
	if (result != DD_SUCCESS)
		return result;
	if (last_page) {
		for (uint32_t list = first_list + count; list < list_count; list++) {
			result = count_list_entries(index, list, &index->discarded_entries);
			if (result != DD_SUCCESS)
				return result;
		}
	}
	*lists_ptr = count;
	return DD_SUCCESS;
}

int uds_open_chapter_index_page(struct uds_delta_page *page, const struct uds_geometry *geometry,
                                uint64_t nonce, uint64_t virtual_chapter, const uint8_t *memory)
{
	int result =
	    uds_open_delta_page(page, nonce, geometry->chapter_mean_delta,
	                        geometry->chapter_payload_bits, memory, geometry->bytes_per_page);

	if (result != DD_SUCCESS)
		return result;
	/* A page of an older lap of the chapter ring is expected during a rebuild: no log. */
	if (page->virtual_chapter_number != virtual_chapter)
		return DD_CORRUPT_DATA;
	if ((uint64_t) page->lowest_list_number + page->index.list_count >
	    geometry->chapter_delta_lists)
		return DD_CORRUPT_DATA;
	return DD_SUCCESS;
}

int uds_search_chapter_index_page(struct uds_delta_page *page, const struct uds_geometry *geometry,
                                  const struct dd_record_name *name, uint32_t *record_page_ptr)
{
	struct uds_delta_entry entry;
	uint32_t list;
	uint32_t address;
	uint32_t value;
	int result;

	get_list_and_address(geometry, name, &list, &address);
	/* Unsigned: a list below the page's first list wraps around to a large number. */
	list -= page->lowest_list_number;
	if (list >= page->index.list_count)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "chapter index list %u is not on this page",
		                             list + page->lowest_list_number);
	result = uds_get_delta_entry(&page->index, list, address, name, &entry);
	if (result != DD_SUCCESS)
		return result;
	if (entry.at_end || (entry.key != address)) {
		*record_page_ptr = UDS_NO_RECORD_PAGE;
		return DD_SUCCESS;
	}
	value = uds_get_delta_entry_value(&entry);
	if (value >= geometry->record_pages_per_chapter)
		return DD_CORRUPT_DATA;
	*record_page_ptr = value;
	return DD_SUCCESS;
}
