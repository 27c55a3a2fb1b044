/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A zone's cache of chapter pages read from the volume.
 *
 * Each zone thread owns one cache; nothing in it is shared, so it takes no locks. A lookup of a
 * closed chapter needs one chapter index page and one record page, and the cache holds the most
 * recently used of them: index pages are kept opened (validated and ready to search), record
 * pages validated. An entry does not copy its page: it points at the page in the mapped volume
 * (volume.h), so what the cache holds is the knowledge that a page is valid and in memory. Entries
 * are found through a hash table on (chapter, page) and replaced by the CLOCK algorithm (a
 * referenced bit per entry, a hand that clears it), which costs nothing on a hit beyond setting the
 * bit.
 *
 * An entry being read is LOADING: it cannot be evicted, and the requests that need it wait on
 * its waiter list (managed by the index) until the read completes. The index pins a page just
 * read while those requests run, so that none of them evicts it before the others have used it.
 * When every entry is LOADING or pinned, nothing can be claimed (uds_page_cache_can_claim()). The
 * index's total cache (about seven chapters' worth of pages) is split evenly among its zones.
 */
#ifndef UDS_PAGE_CACHE_H
#define UDS_PAGE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "delta-index.h"
#include "errors.h"
#include "geometry.h"

enum uds_cached_page_state {
	UDS_PAGE_EMPTY = 0,
	UDS_PAGE_LOADING,
	UDS_PAGE_READY,
};

struct uds_cached_page {
	uint64_t virtual_chapter;
	uint32_t page_number;
	enum uds_cached_page_state state;
	bool referenced;
	/* Held in the cache while the requests that waited for it use it. */
	bool pinned;
	/* Next entry in the same hash bucket, or UINT32_MAX. */
	uint32_t hash_next;
	/* The page, where it lies in the mapped volume (see volume.h). */
	const uint8_t *data;
	/* For index pages: the opened delta page over data. */
	struct uds_delta_page index_page;
	/* Requests waiting for a LOADING page (owned by the index). */
	void *waiters;
};

struct uds_page_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
};

struct uds_page_cache {
	const struct uds_geometry *geometry;
	uint32_t capacity;
	struct uds_cached_page *pages;
	uint32_t *buckets;
	uint32_t bucket_mask;
	uint32_t clock_hand;
	/* Entries that cannot be replaced: LOADING or pinned. */
	uint32_t busy;
	struct uds_page_cache_stats stats;
};

/**
 * uds_make_page_cache() - Allocate a cache of @capacity pages (at least 2).
 */
int DD_MUST_CHECK uds_make_page_cache(const struct uds_geometry *geometry, uint32_t capacity,
                                      struct uds_page_cache **cache_ptr);

/** uds_free_page_cache() - Free a cache (NULL is fine). */
void uds_free_page_cache(struct uds_page_cache *cache);

/**
 * uds_page_cache_find() - Find a page (READY or LOADING), or NULL. Counts a hit or a miss for
 *                         READY pages and misses; marks the entry referenced.
 */
struct uds_cached_page *uds_page_cache_find(struct uds_page_cache *cache, uint64_t virtual_chapter,
                                            uint32_t page_number);

/**
 * uds_page_cache_claim() - Take an entry for a page that is not in the cache: evicts the least
 *                          recently used entry that is not LOADING and gives it the new key in
 *                          the LOADING state.
 *
 * Return: the entry, or NULL if every entry is LOADING or pinned.
 */
struct uds_cached_page *uds_page_cache_claim(struct uds_page_cache *cache, uint64_t virtual_chapter,
                                             uint32_t page_number);

/** uds_page_cache_loaded() - Mark a LOADING entry READY: its page has been read and checked. */
void uds_page_cache_loaded(struct uds_page_cache *cache, struct uds_cached_page *page);

/** uds_page_cache_release() - Forget an entry (a failed read): it becomes EMPTY. */
void uds_page_cache_release(struct uds_page_cache *cache, struct uds_cached_page *page);

/**
 * uds_page_cache_pin() - Keep a READY entry from being replaced (while the requests that waited
 *                        for it run), until uds_page_cache_unpin().
 */
void uds_page_cache_pin(struct uds_page_cache *cache, struct uds_cached_page *page);

/** uds_page_cache_unpin() - Let a pinned entry be replaced again. */
void uds_page_cache_unpin(struct uds_page_cache *cache, struct uds_cached_page *page);

/** uds_page_cache_can_claim() - Whether uds_page_cache_claim() would find an entry. */
static inline bool uds_page_cache_can_claim(const struct uds_page_cache *cache)
{
	return cache->busy < cache->capacity;
}

#endif /* UDS_PAGE_CACHE_H */
