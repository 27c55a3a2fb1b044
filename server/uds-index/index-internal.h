/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the parts of the index share: the index, its zones and its chapter writer.
 *
 * The index is split by job: index.c runs requests on the zone threads and opens and closes the
 * index; chapter-writer.c turns closed chapters into pages and writes them; index-save.c saves
 * and loads; rebuild.c rebuilds the volume index from the chapters on storage. Nothing outside
 * server/uds-index includes this header: users see uds.h only.
 */
#ifndef UDS_INDEX_INTERNAL_H
#define UDS_INDEX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "completion.h"
#include "geometry.h"
#include "index-layout.h"
#include "open-chapter.h"
#include "page-cache.h"
#include "sparse-cache.h"
#include "uds.h"
#include "volume-index.h"
#include "volume.h"
#include "work-queue.h"

enum {
	DEFAULT_READER_THREADS = 2,
	DEFAULT_DISK_THREADS = 8,
	DEFAULT_CACHE_CHAPTERS = 7,
	/* Times a request may be parked for reads before it gives up on the chapter. */
	MAX_REQUEUES = 4,
	NO_CHAPTER = -1,
};

/* uds_request.resume_chapter when no search is under way. */
#define NO_RESUME_CHAPTER UINT64_MAX

struct uds_index;

/*
 * A read of one cache entry by a reader or disk thread. The thread also searches the page for
 * the name of the request that claimed the entry (and, for an index page, checks and searches
 * the record page it names), so that the zone thread need not touch those cold pages at all.
 */
struct page_read {
	struct dd_completion completion;
	struct index_zone *zone;
	struct uds_cached_page *page;
	int result;
	/* Reader-owned while the read runs: the name to search, and what was learned. */
	struct dd_record_name name;
	struct uds_read_assist assist;
	/* Zone-owned: the request parked on the entry that claimed it, or NULL. */
	struct uds_request *claimer;
};

/* A message telling a zone to close a chapter. */
struct close_message {
	struct dd_completion completion;
	struct index_zone *zone;
	uint64_t chapter;
};

/* A load of one sparse cache entry by a reader thread. */
struct sparse_load {
	struct dd_completion completion;
	struct index_zone *zone;
	struct uds_sparse_chapter *chapter;
	int result;
};

/* A message asking a zone to cache a sparse chapter's index. */
struct sparse_message {
	struct dd_completion completion;
	struct index_zone *zone;
	uint64_t chapter;
};

struct zone_stats {
	uint64_t requests[UDS_REQUEST_TYPES];
	uint64_t found[UDS_REQUEST_TYPES];
	uint64_t found_in[UDS_LOCATIONS];
	uint64_t reads_queued;
	uint64_t read_errors;
};

struct index_zone {
	struct uds_index *index;
	unsigned int id;
	struct uds_open_chapter_zone *open_chapter;
	struct uds_open_chapter_zone *writing_chapter;
	/* The open chapter's number. */
	uint64_t newest_chapter;
	/* The chapter held in writing_chapter, or UINT64_MAX. */
	uint64_t writing_chapter_number;
	struct uds_page_cache *cache;
	/* One per cache entry. */
	struct page_read *reads;
	/* Requests waiting, in arrival order, for a cache entry that is not LOADING; and whether
	 * the zone is restarting them (then a restarted one may claim ahead of those behind it). */
	struct uds_request *cache_waiters;
	struct uds_request *cache_waiters_tail;
	bool restarting_cache_waiters;
	/* Sparse indexes only: the cached sparse chapter indexes, one load per entry, and the
	 * requests waiting for loads in progress before they search the cache. */
	struct uds_sparse_cache *sparse_cache;
	struct sparse_load *sparse_loads;
	struct uds_request *sparse_waiters;
	struct zone_stats stats;
} __attribute__((aligned(64)));

struct chapter_writer {
	pthread_t thread;
	pthread_mutex_t mutex;
	pthread_cond_t changed;
	bool started;
	bool stopping;
	/* The chapter being collected, and the zones that have handed in their part. */
	uint64_t chapter;
	unsigned int zones_closed;
	struct uds_open_chapter_zone **parts;
	/* Every chapter below this one is written (or failed). */
	uint64_t written_below;
	int result;
	uint64_t chapters_written;
	/* Chapter index entries dropped for want of room, in all chapters written (mutex). */
	uint64_t chapter_index_discards;
	/* Writer-owned buffers: one record page's records, and a batch of pages to write. */
	struct uds_volume_record *records;
	uint8_t *pages;
	uint16_t *last_lists;
	struct uds_open_chapter_index *chapter_index;
};

struct uds_index {
	struct uds_geometry geometry;
	struct uds_parameters parameters;
	int fd;
	struct uds_index_layout layout;
	struct uds_volume *volume;
	struct uds_volume_index *volume_index;
	unsigned int zone_count;
	struct index_zone *zones;
	struct dd_thread_set *zone_threads;
	/* Page reads: readers check pages in the OS cache and never wait for the disk; a read
	 * that would wait goes on to a disk thread. */
	struct dd_thread_set *reader_threads;
	struct dd_thread_set *disk_threads;
	atomic_uint next_reader;
	atomic_uint next_disk_thread;
	struct chapter_writer writer;
	/* Requests launched and not yet called back. */
	atomic_uint_fast64_t requests_in_flight;
	/* Rebuild results. */
	bool rebuilt;
	uint64_t chapters_dropped;
	/* What opening the index left allocated: all its memory, since it allocates no more. */
	uint64_t memory_bytes;
};

/* The oldest chapter of the window whose open chapter is @newest. */
static inline uint64_t uds_oldest_chapter_of(const struct uds_index *index, uint64_t newest)
{
	uint64_t window = index->geometry.chapters_per_volume;

	return (newest + 1 >= window) ? newest + 1 - window : 0;
}

/* Whether a page number of a chapter is one of its chapter index pages. */
static inline bool uds_is_index_page(const struct uds_index *index, uint32_t page_number)
{
	return page_number < index->geometry.index_pages_per_chapter;
}

/* index.c: check a page just read into a cache entry, and open it if it is an index page. */
int uds_validate_cached_page(struct uds_index *index, struct uds_cached_page *page);

/* chapter-writer.c: allocate the writer's buffers (the thread starts later). */
int uds_make_chapter_writer(struct uds_index *index);

/* chapter-writer.c: start the writer thread; @open_chapter is the first chapter it will get. */
int uds_start_chapter_writer(struct uds_index *index, uint64_t open_chapter);

/* chapter-writer.c: stop the writer thread (after its current chapter) and free its buffers. */
void uds_free_chapter_writer(struct uds_index *index);

/* chapter-writer.c: wait (rarely) until every chapter below @chapter is written. */
void uds_wait_for_chapter_writer(struct chapter_writer *writer, uint64_t chapter);

/* chapter-writer.c: hand a zone's part of the chapter being closed to the writer. */
void uds_submit_to_chapter_writer(struct chapter_writer *writer, unsigned int zone_number,
                                  struct uds_open_chapter_zone *part, unsigned int zone_count);

/* index-save.c: load a save into the new index, before its threads get any request. */
int uds_load_index_save(struct uds_index *index, const struct uds_save_info *save);

/* rebuild.c: rebuild the volume index from the chapters on storage; sets the open chapter. */
int uds_rebuild_index(struct uds_index *index, uint64_t *open_chapter_ptr);

#endif /* UDS_INDEX_INTERNAL_H */
