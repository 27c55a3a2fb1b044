/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The block map page cache of one logical zone: the zone's interior tree pages, all kept once
 * loaded, and a bounded number of its leaf pages; owned by the zone's thread.
 *
 * A page is asked for by PBN with a request whose completion continues once the page is in
 * memory; the request holds the page (it cannot be evicted) until it is released. Pages are
 * read on first use and checked (block-map-page.h); a page that is not valid fails the request
 * and the cache (the volume goes read-only). A page just allocated in the tree is made in
 * memory, formatted, and never read.
 *
 * A change to a page dirties it under the recovery journal lock of the change (the first change
 * since the page was last written sets the lock; lock-counter.h). Dirty pages are written, from
 * a copy so that changes can go on meanwhile, oldest lock first: when the recovery journal asks
 * for its oldest blocks, when a leaf page must be evicted and none is clean, and when the cache
 * drains. A write gives back the lock it carried. Clean, unheld leaf pages are evicted least
 * recently used first when the cache is full; requests that find no page to evict wait, in
 * order, for a write to finish.
 */
#ifndef VDO_BLOCK_MAP_CACHE_H
#define VDO_BLOCK_MAP_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "completion.h"
#include "errors.h"
#include "lock-counter.h"
#include "vdo-types.h"

struct vdo_map_page;
struct vdo_map_cache;

/* A request for a page; embedded in whoever asks. */
struct vdo_page_request {
	/* Prepared by the caller; continued on the zone thread when the page is held (page set)
	 * or the request failed (an error recorded). */
	struct dd_completion completion;
	vdo_pbn_t pbn;
	bool interior;
	/* The cache's: a page just allocated (made, not read). */
	bool fresh;
	struct vdo_map_page *page;
	struct vdo_page_request *next;
};

struct vdo_map_cache_config {
	struct block_device *device;
	uint64_t nonce;
	struct dd_thread_set *threads;
	dd_thread_id_t thread;
	struct vdo_lock_counter *locks;
	unsigned int lock_zone;
	/* Leaf pages kept at most. */
	uint32_t leaf_pages;
	/* The cache could not read or write a page: the volume must go read-only. */
	void (*fail)(void *context, int result);
	void *context;
};

struct vdo_map_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t reads;
	uint64_t writes;
	uint64_t evictions;
	uint64_t waits_for_room;
	uint32_t leaf_pages;
	uint32_t interior_pages;
	uint32_t dirty_pages;
};

/** vdo_make_map_cache() - An empty cache. */
int DD_MUST_CHECK vdo_make_map_cache(const struct vdo_map_cache_config *config,
                                     struct vdo_map_cache **cache_ptr);

/** vdo_free_map_cache() - Free @cache and its pages (NULL is fine); nothing may be in flight. */
void vdo_free_map_cache(struct vdo_map_cache *cache);

/** vdo_get_map_page() - Zone thread: hold the page @request names; see the request. */
void vdo_get_map_page(struct vdo_map_cache *cache, struct vdo_page_request *request);

/**
 * vdo_new_map_page() - Zone thread: hold a page just allocated at @request->pbn, formatted in
 *                      memory; continues the request like vdo_get_map_page().
 */
void vdo_new_map_page(struct vdo_map_cache *cache, struct vdo_page_request *request);

/** vdo_release_map_page() - Zone thread: stop holding @page. */
void vdo_release_map_page(struct vdo_map_cache *cache, struct vdo_map_page *page);

/** vdo_map_page_data() - The 4 KiB of a held page (block-map-page.h). */
uint8_t *vdo_map_page_data(struct vdo_map_page *page);

/**
 * vdo_dirty_map_page() - Zone thread: the held @page was changed by the recovery journal entry
 *                        in block @lock, which the page now holds until it is written (a lock
 *                        older than the one it holds replaces it).
 */
void vdo_dirty_map_page(struct vdo_map_cache *cache, struct vdo_map_page *page,
                        vdo_sequence_t lock);

/**
 * vdo_write_map_pages() - Zone thread: start writing the dirty pages that hold locks on
 *                         recovery journal blocks up to @through (VDO_NO_LOCK: all of them).
 */
void vdo_write_map_pages(struct vdo_map_cache *cache, vdo_sequence_t through);

/**
 * vdo_drain_map_cache() - Zone thread: write every dirty page, then continue @waiter once none
 *                         is dirty or being written (DD_READ_ONLY if the cache failed).
 */
void vdo_drain_map_cache(struct vdo_map_cache *cache, struct dd_completion *waiter);

/** vdo_get_map_cache_stats() - Zone thread (or when quiet): the cache's counters. */
void vdo_get_map_cache_stats(const struct vdo_map_cache *cache, struct vdo_map_cache_stats *stats);

#endif /* VDO_BLOCK_MAP_CACHE_H */
