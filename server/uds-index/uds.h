/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The public interface of the deduplication index engine.
 *
 * An index maps 16-byte record names (hashes of data blocks) to 16 bytes of data (where the block
 * was stored). It remembers the most recent records (its window: about 64M records per 0.25 GB
 * of memory, 10x that when sparse), forgets the oldest, and answers each request with advice that
 * may be stale: a caller must verify it.
 *
 * Use: fill in struct uds_parameters, uds_open_index() (creating, loading a save, or rebuilding
 * after a crash), then submit struct uds_request objects with uds_launch_request(). Each request
 * is handled asynchronously by the zone thread that owns its name and its callback is invoked on
 * that thread when done: a callback must be short and must not block (hand work off instead).
 * Many requests may be in flight; requests for the same name are handled in submission order.
 * uds_flush_index() waits until every request launched so far has called back and its chapters
 * are written. uds_save_index() and uds_close_index() save the index so that the next open loads
 * it instead of rebuilding.
 *
 * Request semantics (as UDS):
 *   UDS_POST             found: old_data is the stored data, and the record is refreshed (copied
 *                        into the open chapter so it stays in the window); not found: the name is
 *                        added with new_data.
 *   UDS_UPDATE           the name is stored with new_data, found or not; old_data if found.
 *   UDS_QUERY            found: old_data, and the record is refreshed; not found: nothing added.
 *   UDS_QUERY_NO_UPDATE  found: old_data; nothing changes.
 *   UDS_DELETE           found: the name is removed.
 * location tells where a found record was: the open chapter, a dense or a sparse chapter.
 */
#ifndef UDS_H
#define UDS_H

#include <stdbool.h>
#include <stdint.h>

#include "completion.h"
#include "errors.h"
#include "record-name.h"
#include "record-page.h"

struct uds_index;

enum uds_request_type {
	UDS_POST = 0,
	UDS_UPDATE,
	UDS_QUERY,
	UDS_QUERY_NO_UPDATE,
	UDS_DELETE,
	UDS_REQUEST_TYPES,
};

enum uds_index_region {
	UDS_LOCATION_UNAVAILABLE = 0,
	UDS_LOCATION_IN_OPEN_CHAPTER,
	UDS_LOCATION_IN_DENSE,
	UDS_LOCATION_IN_SPARSE,
	UDS_LOCATIONS,
};

struct uds_request;
typedef void (*uds_request_callback_fn)(struct uds_request *request);

/* What a reader thread learned for a request from a page it read (private to the index). */
struct uds_read_assist {
	/* The page read (chapter UINT64_MAX: nothing learned). */
	uint64_t chapter;
	uint32_t page_number;
	/* From an index page: the record page it names for the request's name (UINT32_MAX: none).
	 */
	uint32_t record_page;
	/* That record page (or the record page read) was checked and searched: */
	bool record_searched;
	bool found;
	struct uds_record_data data;
};

/* One request. The caller owns it; it must stay put until its callback has run. */
struct uds_request {
	/* Set by the caller. */
	struct dd_record_name record_name;
	struct uds_record_data new_data;
	enum uds_request_type type;
	uds_request_callback_fn callback;
	struct uds_index *index;
	void *context;

	/* Set before the callback. status: DD_SUCCESS, or the error that failed the request (a
	 * POST, UPDATE or QUERY whose record the open chapter could not take stores nothing). */
	int status;
	bool found;
	struct uds_record_data old_data;
	enum uds_index_region location;

	/* private */
	struct dd_completion completion;
	struct uds_request *next_waiter;
	unsigned int zone_number;
	uint8_t requeue_count;
	bool read_failed;
	/* Sparse: the loads this request must see are those with a lower ticket (0: not set). */
	uint64_t sparse_ticket;
	/* A parked search of a closed chapter: the chapter (UINT64_MAX: none) and the record page
	 * its index page named (UINT32_MAX: not known yet). */
	uint64_t resume_chapter;
	uint32_t resume_record_page;
	struct uds_read_assist assist;
};

enum uds_open_mode {
	/* Make a new, empty index, destroying whatever the storage held. */
	UDS_CREATE = 0,
	/* Load the saved index, or rebuild it from its chapters if it was not saved cleanly. */
	UDS_LOAD,
	/* Load the saved index; fail rather than rebuild. */
	UDS_NO_REBUILD,
};

struct uds_parameters {
	/* The storage: a file (created if missing with UDS_CREATE) or a block device. */
	const char *path;
	/* The part of the storage the index owns: its first byte (a multiple of 4096) and its
	 * size in bytes (0: from offset to the end of the storage). */
	uint64_t offset;
	uint64_t size;
	/* Memory size in MB: 256, 512, 768 or a multiple of 1024 (UDS's 0.25 / 0.5 / 0.75 / N GB).
	 * 0 means 256. Ignored when loading (the stored geometry is used). */
	uint32_t memory_mb;
	/* Sparse index (10x the window in the same memory). */
	bool sparse;
	/* Zones (threads): 0 means cores / 2, at least 1; at most UDS_MAX_ZONES (16). */
	unsigned int zone_count;
	/* Page size in bytes, 0 for 4096. */
	uint32_t bytes_per_page;
	/* Threads that check and search pages in the OS cache for busy zones; 0 means 2. */
	unsigned int reader_threads;
	/* Threads that wait for pages read from the disk (the queue depth of cold reads); 0 means
	 * 8. */
	unsigned int disk_threads;
	/* Chapters' worth of pages in the page cache; 0 means 7. */
	uint32_t cache_chapters;
	/* For tests: an explicit shape instead of memory_mb (both 0 to use memory_mb). */
	uint32_t record_pages_per_chapter;
	uint32_t chapters_per_volume;
	uint32_t sparse_chapters_per_volume;
};

/* Everything the index counts. */
struct uds_index_stats {
	/* The nonce the index was created with: its identity; a recreated index has a new one. */
	uint64_t nonce;
	/* Requests by type and whether they found the name. */
	uint64_t requests[UDS_REQUEST_TYPES];
	uint64_t found[UDS_REQUEST_TYPES];
	/* Found requests by where the record was. */
	uint64_t found_in[UDS_LOCATIONS];
	/* Entries in the volume index now, and collision entries among them. */
	uint64_t entries_indexed;
	uint64_t collisions;
	/* Entries dropped: expired, early-flushed, or not added because memory was full. */
	uint64_t entries_discarded;
	uint64_t early_flushes;
	uint64_t overflows;
	/* Delta index rebalances. */
	uint64_t rebalances;
	/* Page cache. */
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t reads_queued;
	uint64_t read_errors;
	/* Sparse cache: names found in a cached chapter index, searches that found none, chapter
	 * indexes loaded. */
	uint64_t sparse_cache_hits;
	uint64_t sparse_cache_misses;
	uint64_t sparse_chapters_loaded;
	/* Chapters. */
	uint64_t chapters_written;
	uint64_t open_chapter;
	uint64_t oldest_chapter;
	/* Chapter index entries dropped for want of room, in all chapters written since open. */
	uint64_t chapter_index_discards;
	/* Chapters dropped by the last rebuild (corrupt or torn). */
	uint64_t chapters_dropped;
	bool rebuilt;
	/* Memory this index holds (all allocated when it opened), bytes. */
	uint64_t memory_used;
	uint64_t volume_index_memory;
	/* Records the index can hold, and records per chapter. */
	uint64_t records_per_volume;
	uint64_t records_per_chapter;
	unsigned int zone_count;
};

/**
 * uds_compute_index_size() - Bytes of storage an index with these parameters needs: the
 *                            smallest region (uds_parameters.size) it fits in. The index reads
 *                            and writes only that many bytes from uds_parameters.offset on.
 * @parameters: the configuration (path, offset and size are not used)
 * @size_ptr:   set to the size
 *
 * Return: DD_SUCCESS or DD_INVALID_ARGUMENT.
 */
int DD_MUST_CHECK uds_compute_index_size(const struct uds_parameters *parameters,
                                         uint64_t *size_ptr);

/**
 * uds_open_index() - Create, load or rebuild an index and start its threads.
 * @mode:       UDS_CREATE, UDS_LOAD or UDS_NO_REBUILD
 * @parameters: the configuration
 * @index_ptr:  set to the index
 *
 * The index lives in the region [offset, offset + size) of the storage and touches no byte
 * outside it. Creating writes only the first uds_compute_index_size() bytes of the region, and
 * extends a regular file that ends before them (never one that is longer).
 *
 * Return: DD_SUCCESS; DD_INVALID_ARGUMENT for bad parameters (an offset that is not a multiple
 *         of 4096 among them); DD_OUT_OF_RANGE if the region (or the storage) is too small;
 *         DD_BAD_MAGIC, DD_CHECKSUM_MISMATCH, DD_UNSUPPORTED_VERSION if the region does not
 *         hold a valid index; DD_END_OF_FILE with UDS_NO_REBUILD and no clean save; an errno
 *         for I/O errors. Every failure is logged.
 */
int DD_MUST_CHECK uds_open_index(enum uds_open_mode mode, const struct uds_parameters *parameters,
                                 struct uds_index **index_ptr);

/**
 * uds_launch_request() - Start a request.
 * @request: filled in by the caller (record_name, new_data for POST/UPDATE, type, callback,
 *           index)
 *
 * Return: DD_SUCCESS (the callback will run), or DD_INVALID_ARGUMENT (it will not).
 */
int DD_MUST_CHECK uds_launch_request(struct uds_request *request);

/**
 * uds_flush_index() - Wait until every request launched before the call has called back and every
 *                     chapter they closed is written to storage (not synced). Call it off the
 *                     index's threads (not from a callback).
 */
void uds_flush_index(struct uds_index *index);

/** uds_save_index() - Flush, then save the index (it keeps running). */
int DD_MUST_CHECK uds_save_index(struct uds_index *index);

/**
 * uds_close_index() - Flush, save and free the index.
 *
 * Return: the save's result; the index is freed either way.
 */
int uds_close_index(struct uds_index *index);

/** uds_free_index() - Stop the index without saving (NULL is fine). */
void uds_free_index(struct uds_index *index);

/** uds_get_index_stats() - Read the counters (consistent per zone). */
int DD_MUST_CHECK uds_get_index_stats(struct uds_index *index, struct uds_index_stats *stats);

/** uds_drop_index_os_cache() - Drop the OS cache of the index's chapters (benchmarks). */
void uds_drop_index_os_cache(struct uds_index *index);

#endif /* UDS_H */
