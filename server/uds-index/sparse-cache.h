/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The sparse cache: whole chapter indexes of a few sparse chapters, kept in memory per zone.
 *
 * A sparse index keeps only hooks (sampled names) of its sparse chapters in the volume index.
 * Another name of a sparse chapter can only be found if that chapter's index is in this cache:
 * when a hook turns up in a sparse chapter, the index loads that chapter's index pages here (in
 * every zone), and names that the volume index does not know are then looked up in each cached
 * chapter, newest first. Data written together is rewritten together, so the hook of a run of
 * old data brings in the chapter that holds the rest of the run.
 *
 * Each zone has its own cache, owned by its thread like the rest of the zone. An entry is EMPTY,
 * LOADING (its memory belongs to the reader thread filling it) or READY (its pages opened as
 * delta pages and searched in place). Loads are numbered as they start, so that a request can
 * wait for exactly the loads started before it arrived, as if they had been instantaneous: the
 * names that follow a hook in a zone's queue then see the chapter it brought in, however many
 * requests are in flight. Eviction is least recently used. A chapter that has been
 * searched SKIP_SEARCH_THRESHOLD times in a row without a hit is skipped until a hook asks for
 * it again, so a cached chapter that no longer helps costs nothing on the path of new names.
 */
#ifndef UDS_SPARSE_CACHE_H
#define UDS_SPARSE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "delta-index.h"
#include "errors.h"
#include "geometry.h"
#include "record-name.h"
#include "volume.h"

enum uds_sparse_chapter_state {
	UDS_SPARSE_EMPTY = 0,
	UDS_SPARSE_LOADING,
	UDS_SPARSE_READY,
};

/* One cached chapter index. */
struct uds_sparse_chapter {
	uint64_t virtual_chapter;
	enum uds_sparse_chapter_state state;
	/* Skipped by searches until a hook asks for the chapter again. */
	bool skip_search;
	/* Searches since the last hit. */
	uint32_t misses;
	/* Stamp of the last use, for LRU eviction. */
	uint64_t last_used;
	/* The order in which loads started (see uds_sparse_cache_loading_before()). */
	uint64_t ticket;
	/* index_pages_per_chapter pages, and each opened as a delta page. */
	uint8_t *data;
	struct uds_delta_page *pages;
};

struct uds_sparse_cache_stats {
	/* Names found in a cached chapter's index (the record page may still not hold them). */
	uint64_t hits;
	/* Searches of the cache that found nothing. */
	uint64_t misses;
	/* Chapters loaded, and chapters evicted to make room. */
	uint64_t loads;
	uint64_t evictions;
};

struct uds_sparse_cache {
	const struct uds_geometry *geometry;
	uint32_t capacity;
	struct uds_sparse_chapter *chapters;
	/* Entries now LOADING, and the ticket of the next load to start. */
	uint32_t loading;
	uint64_t next_ticket;
	uint64_t clock;
	struct uds_sparse_cache_stats stats;
};

/**
 * uds_make_sparse_cache() - Allocate an empty sparse cache.
 * @geometry:  the index geometry (kept by reference)
 * @capacity:  chapters it holds (at least 1)
 * @cache_ptr: set to the cache
 */
int DD_MUST_CHECK uds_make_sparse_cache(const struct uds_geometry *geometry, uint32_t capacity,
                                        struct uds_sparse_cache **cache_ptr);

/** uds_free_sparse_cache() - Free a sparse cache (NULL is fine). */
void uds_free_sparse_cache(struct uds_sparse_cache *cache);

/**
 * uds_sparse_cache_find() - The entry of a chapter (in any state but EMPTY), or NULL.
 *
 * A READY entry found this way is marked used and searched again even if it was skipped.
 */
struct uds_sparse_chapter *uds_sparse_cache_find(struct uds_sparse_cache *cache,
                                                 uint64_t virtual_chapter);

/**
 * uds_sparse_cache_claim() - Take an entry for a chapter about to be loaded.
 * @cache:          the cache
 * @virtual_chapter: the chapter
 * @oldest_chapter: the oldest chapter of the zone's window; entries older than it go first
 *
 * Evicts an empty or expired entry, or else the least recently used READY one. Return: the
 * entry, now LOADING, or NULL if every entry is loading.
 */
struct uds_sparse_chapter *uds_sparse_cache_claim(struct uds_sparse_cache *cache,
                                                  uint64_t virtual_chapter,
                                                  uint64_t oldest_chapter);

/**
 * uds_load_sparse_chapter() - Read and open the index pages of a claimed entry (blocking).
 * @volume:  the volume
 * @nonce:   the index nonce
 * @chapter: a LOADING entry; this is the only code touching it until uds_sparse_cache_loaded()
 *
 * Safe to call from a reader thread while the zone goes on. Return: DD_SUCCESS, or an error if a
 * page cannot be read or does not belong to the chapter.
 */
int DD_MUST_CHECK uds_load_sparse_chapter(const struct uds_volume *volume, uint64_t nonce,
                                          struct uds_sparse_chapter *chapter);

/**
 * uds_sparse_cache_loaded() - Finish a load: the entry becomes READY, or EMPTY if @result failed.
 */
void uds_sparse_cache_loaded(struct uds_sparse_cache *cache, struct uds_sparse_chapter *chapter,
                             int result);

/**
 * uds_sparse_cache_ticket() - The ticket the next load will get: a request that takes it now
 *                             must see every load started before it (see below).
 */
static inline uint64_t uds_sparse_cache_ticket(const struct uds_sparse_cache *cache)
{
	return cache->next_ticket;
}

/**
 * uds_sparse_cache_loading_before() - Tell whether a load that started before @ticket was taken
 *                                     is still in progress.
 */
bool uds_sparse_cache_loading_before(const struct uds_sparse_cache *cache, uint64_t ticket);

/**
 * uds_search_sparse_cache() - Look a name up in the cached chapters, newest first.
 * @cache:           the cache
 * @volume:          the volume (for the index page map)
 * @name:            the name
 * @oldest_chapter:  chapters older than this have expired and are not searched
 * @below_chapter:   only chapters older than this are searched (UINT64_MAX: all); the caller
 *                   passes the chapter of a match whose record page did not hold the name, so
 *                   that a false match in a chapter index never hides an older true one
 * @chapter_ptr:     set to the chapter whose index holds the name
 * @record_page_ptr: set to the record page that may hold its record
 *
 * Return: true if some cached chapter's index holds the name.
 */
bool uds_search_sparse_cache(struct uds_sparse_cache *cache, const struct uds_volume *volume,
                             const struct dd_record_name *name, uint64_t oldest_chapter,
                             uint64_t below_chapter, uint64_t *chapter_ptr,
                             uint32_t *record_page_ptr);

#endif /* UDS_SPARSE_CACHE_H */
