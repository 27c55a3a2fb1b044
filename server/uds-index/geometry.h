/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Geometry: every size of an index, derived once from its configuration.
 *
 * An index stores records (a 16-byte name and 16 bytes of data) in chapters. A chapter is a run
 * of fixed-size pages on storage: first its chapter index pages (a delta index from part of the
 * name to the record page that holds it), then its record pages (records sorted within each page
 * and laid out as an implicit binary search tree). The volume is a ring of chapters; chapter
 * number v (a "virtual chapter number", which only grows) lives in physical slot v % chapters.
 *
 * Pages. UDS uses 32 KiB pages of 1024 records with no checksum on record pages. We default to
 * 4 KiB pages, each with a 32-byte header carrying a checksum, so a record page holds 127 records
 * (a perfect binary tree of depth 7). A lookup in a chapter that is not cached then reads two 4
 * KiB pages instead of two 32 KiB ones, and verifies every byte it reads. The page size is a
 * parameter (4 KiB to 64 KiB) so the two can be compared with the benchmark.
 *
 * Chapter index mean delta. The chapter index keys each record by an address in a range of about
 * mean_delta addresses per record; a delta code costs about log2(mean_delta) + 1.5 bits, and a
 * record whose address is already taken (a chance of about 1 in 2 * mean_delta) needs a
 * collision entry carrying its whole 16-byte name. UDS uses 2^16. A dense index only ever
 * searches a chapter's index for a name the volume index sends there, so a smaller range costs
 * it nothing but those collision entries: measured on full 0.25 GB chapters, 2^16 takes 27.5
 * bits per record (62 of 579 pages a chapter), 4096 23.5, 1024 21.5, 256 19.7, 128 18.9 (with
 * 0.4% of the records as collision entries) and 64 18.5, where collision entries start to eat
 * the gain. Dense chapters use 128 (42 index pages a chapter, 0.6 fewer bytes of storage per
 * record than 4096). A sparse index also searches the indexes of its cached sparse chapters for
 * names that no chapter holds, and every address match there costs a record page read, so it
 * keeps 2^16 (a false match per cached chapter of about 1 in 65,000 absent names).
 *
 * Memory sizes follow UDS: "0.25 GB" is 1024 chapters of about 65,536 records, "0.5" and "0.75"
 * are 2x and 3x the chapter, "1 GB" 4x, and N GB is N times as many chapters of the 1 GB size.
 * A sparse index keeps 10x the chapters, 95% of them sparse (only their sampled names, the
 * "hooks", stay in the volume index), so it covers 10x the window in the same memory.
 */
#ifndef UDS_GEOMETRY_H
#define UDS_GEOMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

enum {
	/* Bytes of a record: name and data. */
	UDS_RECORD_NAME_BYTES = 16,
	UDS_RECORD_DATA_BYTES = 16,
	UDS_RECORD_BYTES = UDS_RECORD_NAME_BYTES + UDS_RECORD_DATA_BYTES,
	/* Bytes of header at the start of every record page. */
	UDS_RECORD_PAGE_HEADER_BYTES = 32,
	/* Default and limits of the page size. */
	UDS_DEFAULT_BYTES_PER_PAGE = 4096,
	UDS_MIN_BYTES_PER_PAGE = 4096,
	UDS_MAX_BYTES_PER_PAGE = 65536,
	/* Chapters of the 0.25 GB to 1 GB sizes (more GB means more chapters). */
	UDS_DEFAULT_CHAPTERS_PER_VOLUME = 1024,
	/* Records per chapter of the 0.25 GB size; 0.5, 0.75 and 1 GB have 2x, 3x, 4x. */
	UDS_SMALL_RECORDS_PER_CHAPTER = 65536,
	/* Sparse: chapter multiplier and percentage of chapters that are sparse. */
	UDS_SPARSE_CHAPTER_FACTOR = 10,
	UDS_SPARSE_PERCENT = 95,
	/* A name is a sparse "hook" when its sample bits % this == 0. */
	UDS_SPARSE_SAMPLE_RATE = 32,
	/* Chapter index: one delta list per this many records, and the mean delta. */
	UDS_CHAPTER_RECORDS_PER_LIST = 64,
	UDS_CHAPTER_MEAN_DELTA = 128,
	UDS_SPARSE_CHAPTER_MEAN_DELTA = 1 << 16,
	/* Smallest and largest memory size, in MB. */
	UDS_MIN_MEMORY_MB = 256,
	UDS_MAX_MEMORY_MB = 1024 * 1024,
	/* Largest zone count. */
	UDS_MAX_ZONES = 16,
};

/* The sizes of an index. All fields are derived by uds_make_geometry(). */
struct uds_geometry {
	/* Bytes per page on storage. */
	uint32_t bytes_per_page;
	/* Records on one record page. */
	uint32_t records_per_page;
	/* Record pages in a chapter. */
	uint32_t record_pages_per_chapter;
	/* Chapter index pages reserved in a chapter. */
	uint32_t index_pages_per_chapter;
	/* index_pages_per_chapter + record_pages_per_chapter. */
	uint32_t pages_per_chapter;
	/* records_per_page * record_pages_per_chapter. */
	uint32_t records_per_chapter;
	/* Chapters in the volume, dense and sparse. */
	uint32_t chapters_per_volume;
	/* Of those, how many are sparse (0 for a dense index). */
	uint32_t sparse_chapters_per_volume;
	/* chapters_per_volume - sparse_chapters_per_volume. */
	uint32_t dense_chapters_per_volume;
	/* records_per_chapter * chapters_per_volume. */
	uint64_t records_per_volume;
	/* Chapter index shape. */
	uint32_t chapter_delta_lists;
	uint32_t chapter_mean_delta;
	uint32_t chapter_payload_bits;
	uint32_t chapter_address_bits;
	/* Bytes of the chapter ring on storage (pages_per_chapter * chapters * bytes_per_page). */
	uint64_t bytes_per_volume;
};

/**
 * uds_make_geometry() - Derive the geometry of an index.
 * @memory_mb:      the memory size in MB: 256, 512 or 768, or a multiple of 1024
 * @sparse:         whether the index is sparse
 * @bytes_per_page: page size; 0 for the default (4 KiB); a power of two in [4 KiB, 64 KiB]
 * @geometry:       filled in
 *
 * Return: DD_SUCCESS, or DD_INVALID_ARGUMENT (logged) for a size that is not supported.
 */
int DD_MUST_CHECK uds_make_geometry(uint32_t memory_mb, bool sparse, uint32_t bytes_per_page,
                                    struct uds_geometry *geometry);

/**
 * uds_make_custom_geometry() - Build a geometry from explicit shape parameters (for tests).
 * @bytes_per_page:           page size, as for uds_make_geometry()
 * @record_pages_per_chapter: record pages in each chapter (at least 1)
 * @chapters_per_volume:      chapters in the volume (at least 2)
 * @sparse_chapters:          of those, sparse ones (less than chapters_per_volume - 1)
 * @geometry:                 filled in
 *
 * Return: DD_SUCCESS or DD_INVALID_ARGUMENT.
 */
int DD_MUST_CHECK uds_make_custom_geometry(uint32_t bytes_per_page,
                                           uint32_t record_pages_per_chapter,
                                           uint32_t chapters_per_volume, uint32_t sparse_chapters,
                                           struct uds_geometry *geometry);

/** uds_is_sparse_geometry() - Tell whether a geometry has sparse chapters. */
static inline bool uds_is_sparse_geometry(const struct uds_geometry *geometry)
{
	return geometry->sparse_chapters_per_volume > 0;
}

/**
 * uds_chapter_slot() - The physical slot of a virtual chapter in the chapter ring.
 */
static inline uint32_t uds_chapter_slot(const struct uds_geometry *geometry,
                                        uint64_t virtual_chapter)
{
	return (uint32_t) (virtual_chapter % geometry->chapters_per_volume);
}

/**
 * uds_is_chapter_sparse() - Tell whether a closed chapter is sparse.
 * @geometry:       the geometry
 * @oldest_chapter: the oldest chapter still in the index
 * @newest_chapter: the newest chapter (the open one)
 * @chapter:        the chapter asked about, in [oldest_chapter, newest_chapter]
 *
 * The newest dense_chapters_per_volume chapters are dense; older ones are sparse.
 */
static inline bool uds_is_chapter_sparse(const struct uds_geometry *geometry,
                                         uint64_t oldest_chapter, uint64_t newest_chapter,
                                         uint64_t chapter)
{
	(void) oldest_chapter;
	return uds_is_sparse_geometry(geometry) &&
	       (chapter + geometry->dense_chapters_per_volume <= newest_chapter);
}

#endif /* UDS_GEOMETRY_H */
