// SPDX-License-Identifier: GPL-2.0-only
/*
 * Geometry; see geometry.h.
 */
#include "geometry.h"

#include "delta-index.h"
#include "logger.h"

/* Number of bits needed to hold any value in [0, value]. */
static uint32_t bits_for(uint64_t value)
{
	uint32_t bits = 1;

	while ((bits < 64) && ((value >> bits) != 0))
		bits++;
	return bits;
}

/* The largest power of two that is at most @value (value >= 1). */
static uint32_t round_down_to_power_of_two(uint32_t value)
{
	uint32_t power = 1;

	while (power <= value / 2)
		power *= 2;
	return power;
}

static bool is_valid_page_size(uint32_t bytes_per_page)
{
	return (bytes_per_page >= UDS_MIN_BYTES_PER_PAGE) &&
	       (bytes_per_page <= UDS_MAX_BYTES_PER_PAGE) &&
	       ((bytes_per_page & (bytes_per_page - 1)) == 0);
}

/* Default a page size of 0 and check it. */
static int choose_page_size(uint32_t *bytes_per_page)
{
	if (*bytes_per_page == 0)
		*bytes_per_page = UDS_DEFAULT_BYTES_PER_PAGE;
	if (!is_valid_page_size(*bytes_per_page))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "page size %u is not a power of two in [%u, %u]",
		    *bytes_per_page, UDS_MIN_BYTES_PER_PAGE, UDS_MAX_BYTES_PER_PAGE);
	return DD_SUCCESS;
}

/*
 * Reserve the chapter index pages of a chapter. uds_get_delta_page_count() counts the delta codes
 * and payloads of the records and lets every page lose a whole list at its end, where a page
 * loses half a list on average: over a chapter of many pages that slack is worth about one page,
 * far more than the spread of a chapter of hashed names (a few thousand bits). It does not know
 * the collision entries, so they are added as the records their bits would make: a list of n
 * records in A addresses has about n * (n + 1) / (2 * A) records whose address is taken, each
 * of which costs a full name more. One page more covers chapters of few pages, where the
 * rounding of the estimate leaves no slack.
 */
static uint32_t compute_index_pages(const struct uds_geometry *geometry)
{
	uint64_t records = geometry->records_per_chapter;
	uint64_t records_per_list = records / geometry->chapter_delta_lists;
	uint64_t addresses = 1ULL << geometry->chapter_address_bits;
	uint64_t collisions =
	    (records * (records_per_list + 1) + 2 * addresses - 1) / (2 * addresses);
	uint64_t entry_bits = geometry->chapter_payload_bits +
	                      uds_get_delta_min_bits(geometry->chapter_mean_delta) + 2;
	uint64_t extra =
	    (collisions * (UDS_RECORD_NAME_BYTES * 8 + entry_bits) + entry_bits - 1) / entry_bits;
	uint32_t pages = uds_get_delta_page_count(
	    (uint32_t) (records + extra), geometry->chapter_delta_lists,
	    geometry->chapter_mean_delta, geometry->chapter_payload_bits, geometry->bytes_per_page);

	return pages + 1;
}

int uds_make_custom_geometry(uint32_t bytes_per_page, uint32_t record_pages_per_chapter,
                             uint32_t chapters_per_volume, uint32_t sparse_chapters,
                             struct uds_geometry *geometry)
{
	struct uds_geometry g = { 0 };
	uint32_t records_per_list;
	int result;

	result = choose_page_size(&bytes_per_page);
	if (result != DD_SUCCESS)
		return result;
	if ((record_pages_per_chapter == 0) || (record_pages_per_chapter > (1u << 20)))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "%u record pages per chapter",
		                             record_pages_per_chapter);
	if ((chapters_per_volume < 2) || (chapters_per_volume > (1u << 24)))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "%u chapters per volume",
		                             chapters_per_volume);
	if (sparse_chapters + 1 >= chapters_per_volume)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%u sparse chapters of %u leave no dense chapter",
		                             sparse_chapters, chapters_per_volume);

	g.bytes_per_page = bytes_per_page;
	g.records_per_page = (bytes_per_page - UDS_RECORD_PAGE_HEADER_BYTES) / UDS_RECORD_BYTES;
	g.record_pages_per_chapter = record_pages_per_chapter;
	g.records_per_chapter = g.records_per_page * record_pages_per_chapter;
	g.chapters_per_volume = chapters_per_volume;
	g.sparse_chapters_per_volume = sparse_chapters;
	g.dense_chapters_per_volume = chapters_per_volume - sparse_chapters;
	g.records_per_volume = (uint64_t) g.records_per_chapter * chapters_per_volume;

	g.chapter_delta_lists =
	    round_down_to_power_of_two(g.records_per_chapter / UDS_CHAPTER_RECORDS_PER_LIST ?: 1);
	g.chapter_mean_delta =
	    (sparse_chapters > 0) ? UDS_SPARSE_CHAPTER_MEAN_DELTA : UDS_CHAPTER_MEAN_DELTA;
	g.chapter_payload_bits = bits_for(record_pages_per_chapter - 1);
	/* Rounded down: the key range then matches the mean delta (a power of two here). */
	records_per_list = g.records_per_chapter / g.chapter_delta_lists;
	g.chapter_address_bits = bits_for((uint64_t) g.chapter_mean_delta * records_per_list - 1);
	g.index_pages_per_chapter = compute_index_pages(&g);
	g.pages_per_chapter = g.index_pages_per_chapter + g.record_pages_per_chapter;
	g.bytes_per_volume = (uint64_t) g.pages_per_chapter * chapters_per_volume * bytes_per_page;
	*geometry = g;
	return DD_SUCCESS;
}

int uds_make_geometry(uint32_t memory_mb, bool sparse, uint32_t bytes_per_page,
                      struct uds_geometry *geometry)
{
	uint32_t records_per_chapter;
	uint32_t chapters = UDS_DEFAULT_CHAPTERS_PER_VOLUME;
	uint32_t records_per_page;
	uint32_t sparse_chapters = 0;
	int result;

	if ((memory_mb == 256) || (memory_mb == 512) || (memory_mb == 768)) {
		records_per_chapter = UDS_SMALL_RECORDS_PER_CHAPTER * (memory_mb / 256);
	} else if ((memory_mb >= 1024) && (memory_mb <= UDS_MAX_MEMORY_MB) &&
	           ((memory_mb % 1024) == 0)) {
		records_per_chapter = UDS_SMALL_RECORDS_PER_CHAPTER * 4;
		chapters *= memory_mb / 1024;
	} else {
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT,
		    "memory size %u MB is not 256, 512, 768 or a multiple of 1024", memory_mb);
	}
	result = choose_page_size(&bytes_per_page);
	if (result != DD_SUCCESS)
		return result;
	if (sparse) {
		chapters *= UDS_SPARSE_CHAPTER_FACTOR;
		sparse_chapters = (uint32_t) ((uint64_t) chapters * UDS_SPARSE_PERCENT / 100);
	}
	records_per_page = (bytes_per_page - UDS_RECORD_PAGE_HEADER_BYTES) / UDS_RECORD_BYTES;
	return uds_make_custom_geometry(
	    bytes_per_page, (records_per_chapter + records_per_page - 1) / records_per_page,
	    chapters, sparse_chapters, geometry);
}
