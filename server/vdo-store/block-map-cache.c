// SPDX-License-Identifier: GPL-2.0-only
/*
 * The block map page cache; see block-map-cache.h.
 *
 * Pages are found through a chained hash table of PBNs. Leaf pages are also on an LRU list
 * (most recently used last), which eviction walks from the front. Dirty pages are on a list kept
 * in lock order: a page dirtied by a newer journal block goes last, and the rare page whose lock
 * moves to an older block is moved back into place, so the oldest lock is always first and
 * writing "up to block n" takes pages from the front. At most WRITE_SLOTS writes are in flight,
 * each from a buffer of its own.
 */
#include "block-map-cache.h"

#include <string.h>

#include "block-map-page.h"
#include "logger.h"
#include "memory-alloc.h"
#include "vio.h"

enum {
	WRITE_SLOTS = 16,
	MIN_BUCKETS = 1024,
};

struct vdo_map_page {
	struct vdo_map_cache *cache;
	vdo_pbn_t pbn;
	uint8_t *data;
	bool interior;
	bool loaded;
	unsigned int holds;
	bool dirty;
	vdo_sequence_t lock;
	bool writing;
	/* Requests waiting for the page to load. */
	struct vdo_page_request *waiters;
	struct vdo_map_page *hash_next;
	struct vdo_map_page *lru_prev;
	struct vdo_map_page *lru_next;
	struct vdo_map_page *dirty_prev;
	struct vdo_map_page *dirty_next;
	struct vdo_vio vio;
	struct dd_completion completion;
};

struct page_write {
	struct vdo_map_cache *cache;
	struct vdo_map_page *page;
	vdo_sequence_t lock;
	uint8_t *buffer;
	struct vdo_vio vio;
	struct dd_completion completion;
};

struct page_list {
	struct vdo_map_page *first;
	struct vdo_map_page *last;
};

struct vdo_map_cache {
	struct vdo_map_cache_config config;
	struct vdo_map_page **buckets;
	uint32_t bucket_count;
	uint32_t page_count;
	uint32_t leaf_count;
	struct page_list lru;
	struct page_list dirty;
	uint32_t dirty_count;
	struct page_write writes[WRITE_SLOTS];
	unsigned int writes_in_flight;
	/* Write dirty pages with locks up to this (or all of them). */
	vdo_sequence_t write_through;
	bool write_all;
	/* Requests waiting for a leaf page to be evicted, in order. */
	struct vdo_page_request *room_waiters;
	struct vdo_page_request *last_room_waiter;
	bool failed;
	struct dd_completion *drain_waiter;
	struct vdo_map_cache_stats stats;
};

static void make_progress(struct vdo_map_cache *cache);

/* --------------------------------------------------------------------------------------------
 * The hash table and lists
 */

static uint32_t bucket_of(const struct vdo_map_cache *cache, vdo_pbn_t pbn)
{
	return (uint32_t) ((pbn * 0x9e3779b97f4a7c15ULL) >> 32) & (cache->bucket_count - 1);
}

static struct vdo_map_page *lookup(const struct vdo_map_cache *cache, vdo_pbn_t pbn)
{
	struct vdo_map_page *page = cache->buckets[bucket_of(cache, pbn)];

	while ((page != NULL) && (page->pbn != pbn))
		page = page->hash_next;
	return page;
}

/* Double the buckets when the chains grow long; a failure only makes them longer. */
static void grow_buckets(struct vdo_map_cache *cache)
{
	uint32_t old_count = cache->bucket_count;
	struct vdo_map_page **old = cache->buckets;
	struct vdo_map_page **buckets;

	if (DD_ALLOCATE(2 * old_count, struct vdo_map_page *, "map page buckets", &buckets) !=
	    DD_SUCCESS)
		return;
	cache->buckets = buckets;
	cache->bucket_count = 2 * old_count;
	for (uint32_t b = 0; b < old_count; b++) {
		while (old[b] != NULL) {
			struct vdo_map_page *page = old[b];
			uint32_t bucket = bucket_of(cache, page->pbn);

			old[b] = page->hash_next;
			page->hash_next = buckets[bucket];
			buckets[bucket] = page;
		}
	}
	dd_free(old);
}

static void insert(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	uint32_t bucket;

	if (cache->page_count >= 2 * cache->bucket_count)
		grow_buckets(cache);
	bucket = bucket_of(cache, page->pbn);
	page->hash_next = cache->buckets[bucket];
	cache->buckets[bucket] = page;
	cache->page_count++;
}

static void unhash(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	struct vdo_map_page **link = &cache->buckets[bucket_of(cache, page->pbn)];

	while (*link != page)
		link = &(*link)->hash_next;
	*link = page->hash_next;
	cache->page_count--;
}

#define LIST_APPEND(list, page, prev, next)          \
	do {                                         \
		(page)->prev = (list)->last;         \
		(page)->next = NULL;                 \
		if ((list)->last != NULL)            \
			(list)->last->next = (page); \
		else                                 \
			(list)->first = (page);      \
		(list)->last = (page);               \
	} while (0)

#define LIST_REMOVE(list, page, prev, next)                \
	do {                                               \
		if ((page)->prev != NULL)                  \
			(page)->prev->next = (page)->next; \
		else                                       \
			(list)->first = (page)->next;      \
		if ((page)->next != NULL)                  \
			(page)->next->prev = (page)->prev; \
		else                                       \
			(list)->last = (page)->prev;       \
		(page)->prev = (page)->next = NULL;        \
	} while (0)

static void touch(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	if (page->interior)
		return;
	LIST_REMOVE(&cache->lru, page, lru_prev, lru_next);
	LIST_APPEND(&cache->lru, page, lru_prev, lru_next);
}

/* Put a dirty page on the dirty list where its lock belongs. */
static void file_dirty(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	struct vdo_map_page *after = cache->dirty.last;

	while ((after != NULL) && (after->lock > page->lock))
		after = after->dirty_prev;
	page->dirty_prev = after;
	page->dirty_next = (after != NULL) ? after->dirty_next : cache->dirty.first;
	if (page->dirty_next != NULL)
		page->dirty_next->dirty_prev = page;
	else
		cache->dirty.last = page;
	if (after != NULL)
		after->dirty_next = page;
	else
		cache->dirty.first = page;
}

/* --------------------------------------------------------------------------------------------
 * Pages
 */

static void free_page(struct vdo_map_page *page)
{
	if (page == NULL)
		return;
	dd_free(page->data);
	dd_free(page);
}

static int make_page(struct vdo_map_cache *cache, vdo_pbn_t pbn, bool interior,
                     struct vdo_map_page **page_ptr)
{
	struct vdo_map_page *page;
	int result = dd_allocate(sizeof(*page), "map page", &page);

	if (result != DD_SUCCESS)
		return result;
	result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "map page data", &page->data);
	if (result != DD_SUCCESS) {
		dd_free(page);
		return result;
	}
	page->cache = cache;
	page->pbn = pbn;
	page->interior = interior;
	dd_initialize_completion(&page->completion, cache->config.threads);
	insert(cache, page);
	if (!interior) {
		cache->leaf_count++;
		LIST_APPEND(&cache->lru, page, lru_prev, lru_next);
	}
	*page_ptr = page;
	return DD_SUCCESS;
}

static void discard_page(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	unhash(cache, page);
	if (!page->interior) {
		cache->leaf_count--;
		LIST_REMOVE(&cache->lru, page, lru_prev, lru_next);
	}
	free_page(page);
}

/* Make room for one more leaf page by evicting the least recently used clean, unheld one. */
static bool make_room(struct vdo_map_cache *cache)
{
	if (cache->leaf_count < cache->config.leaf_pages)
		return true;
	for (struct vdo_map_page *page = cache->lru.first; page != NULL; page = page->lru_next) {
		if ((page->holds == 0) && page->loaded && !page->dirty && !page->writing) {
			discard_page(cache, page);
			cache->stats.evictions++;
			return true;
		}
	}
	return false;
}

static void hold(struct vdo_map_cache *cache, struct vdo_map_page *page,
                 struct vdo_page_request *request)
{
	page->holds++;
	touch(cache, page);
	request->page = page;
}

static void fail_cache(struct vdo_map_cache *cache, int result)
{
	if (cache->failed)
		return;
	cache->failed = true;
	dd_log_error_strerror(result, "the block map cache failed");
	if (cache->config.fail != NULL)
		cache->config.fail(cache->config.context, result);
}

static void load_done(struct dd_completion *completion)
{
	struct vdo_map_page *page = completion->parent;
	struct vdo_map_cache *cache = page->cache;
	struct vdo_page_request *waiters = page->waiters;
	int result = completion->result;

	page->waiters = NULL;
	if ((result == DD_SUCCESS) && (vdo_validate_block_map_page(page->data, cache->config.nonce,
	                                                           page->pbn) != VDO_PAGE_VALID)) {
		result = dd_log_error_strerror(DD_CORRUPT_DATA, "block map page %llu is damaged",
		                               (unsigned long long) page->pbn);
	}
	if (result != DD_SUCCESS) {
		fail_cache(cache, result);
		discard_page(cache, page);
	} else {
		page->loaded = true;
	}
	while (waiters != NULL) {
		struct vdo_page_request *request = waiters;

		waiters = request->next;
		if (result == DD_SUCCESS)
			hold(cache, page, request);
		dd_continue_completion(&request->completion, result);
	}
	make_progress(cache);
}

static void wait_for_room(struct vdo_map_cache *cache, struct vdo_page_request *request)
{
	request->next = NULL;
	if (cache->last_room_waiter != NULL)
		cache->last_room_waiter->next = request;
	else
		cache->room_waiters = request;
	cache->last_room_waiter = request;
	cache->stats.waits_for_room++;
}

/* Start on a request for a page not in the cache: read it, or make it if it is new. */
static void start_page(struct vdo_map_cache *cache, struct vdo_page_request *request)
{
	struct vdo_map_page *page;
	int result;

	if (!request->interior && !make_room(cache)) {
		wait_for_room(cache, request);
		make_progress(cache);
		return;
	}
	result = make_page(cache, request->pbn, request->interior, &page);
	if (result != DD_SUCCESS) {
		dd_continue_completion(&request->completion, result);
		return;
	}
	if (request->fresh) {
		vdo_format_block_map_page(page->data, cache->config.nonce, page->pbn);
		page->loaded = true;
		hold(cache, page, request);
		dd_continue_completion(&request->completion, DD_SUCCESS);
		return;
	}
	cache->stats.reads++;
	request->next = NULL;
	page->waiters = request;
	dd_prepare_completion(&page->completion, load_done, NULL, cache->config.thread, page);
	vdo_submit_vio(cache->config.device, &page->vio, &page->completion, VDO_IO_READ, 0,
	               page->pbn, 1, page->data);
}

static void get_page(struct vdo_map_cache *cache, struct vdo_page_request *request)
{
	struct vdo_map_page *page;

	(void) dd_assert_on_thread(cache->config.threads, cache->config.thread, __func__);
	request->page = NULL;
	if (cache->failed) {
		dd_continue_completion(&request->completion, DD_READ_ONLY);
		return;
	}
	page = lookup(cache, request->pbn);
	if (page == NULL) {
		cache->stats.misses++;
		start_page(cache, request);
		return;
	}
	cache->stats.hits++;
	if (!page->loaded) {
		request->next = page->waiters;
		page->waiters = request;
		return;
	}
	hold(cache, page, request);
	dd_continue_completion(&request->completion, DD_SUCCESS);
}

void vdo_get_map_page(struct vdo_map_cache *cache, struct vdo_page_request *request)
{
	request->fresh = false;
	get_page(cache, request);
}

void vdo_new_map_page(struct vdo_map_cache *cache, struct vdo_page_request *request)
{
	request->fresh = true;
	get_page(cache, request);
}

void vdo_release_map_page(struct vdo_map_cache *cache, struct vdo_map_page *page)
{
	page->holds--;
	if ((page->holds == 0) && (cache->room_waiters != NULL))
		make_progress(cache);
}

uint8_t *vdo_map_page_data(struct vdo_map_page *page)
{
	return page->data;
}

void vdo_dirty_map_page(struct vdo_map_cache *cache, struct vdo_map_page *page, vdo_sequence_t lock)
{
	if (page->dirty && (page->lock <= lock))
		return;
	vdo_acquire_zone_lock(cache->config.locks, cache->config.lock_zone, lock);
	if (page->dirty) {
		vdo_release_zone_lock(cache->config.locks, cache->config.lock_zone, page->lock);
		LIST_REMOVE(&cache->dirty, page, dirty_prev, dirty_next);
		cache->dirty_count--;
	}
	page->dirty = true;
	page->lock = lock;
	file_dirty(cache, page);
	cache->dirty_count++;
}

/* --------------------------------------------------------------------------------------------
 * Writing
 */

static void write_done(struct dd_completion *completion)
{
	struct page_write *write = completion->parent;
	struct vdo_map_cache *cache = write->cache;

	write->page->writing = false;
	write->page = NULL;
	cache->writes_in_flight--;
	vdo_release_zone_lock(cache->config.locks, cache->config.lock_zone, write->lock);
	if (completion->result != DD_SUCCESS)
		fail_cache(cache, completion->result);
	make_progress(cache);
}

static struct page_write *idle_write(struct vdo_map_cache *cache)
{
	for (unsigned int w = 0; w < WRITE_SLOTS; w++) {
		if (cache->writes[w].page == NULL)
			return &cache->writes[w];
	}
	return NULL;
}

static void write_page(struct vdo_map_cache *cache, struct vdo_map_page *page,
                       struct page_write *write)
{
	LIST_REMOVE(&cache->dirty, page, dirty_prev, dirty_next);
	cache->dirty_count--;
	page->dirty = false;
	page->writing = true;
	write->page = page;
	write->lock = page->lock;
	memcpy(write->buffer, page->data, VDO_BLOCK_SIZE);
	vdo_seal_block_map_page(write->buffer, cache->config.nonce, page->pbn);
	cache->writes_in_flight++;
	cache->stats.writes++;
	dd_prepare_completion(&write->completion, write_done, NULL, cache->config.thread, write);
	vdo_submit_vio(cache->config.device, &write->vio, &write->completion, VDO_IO_WRITE, 0,
	               page->pbn, 1, write->buffer);
}

/* The next dirty page to write, if any is wanted: oldest first, leaves only for room. */
static struct vdo_map_page *next_to_write(struct vdo_map_cache *cache)
{
	bool need_room = (cache->room_waiters != NULL);

	for (struct vdo_map_page *page = cache->dirty.first; page != NULL;
	     page = page->dirty_next) {
		if (page->writing)
			continue;
		if (cache->write_all || (page->lock <= cache->write_through) ||
		    (need_room && !page->interior))
			return page;
		if (!need_room)
			return NULL;
	}
	return NULL;
}

static void start_writes(struct vdo_map_cache *cache)
{
	while (!cache->failed) {
		struct page_write *write = idle_write(cache);
		struct vdo_map_page *page;

		if (write == NULL)
			return;
		page = next_to_write(cache);
		if (page == NULL)
			return;
		write_page(cache, page, write);
	}
}

void vdo_write_map_pages(struct vdo_map_cache *cache, vdo_sequence_t through)
{
	if (through == VDO_NO_LOCK)
		cache->write_all = true;
	else if (through > cache->write_through)
		cache->write_through = through;
	make_progress(cache);
}

static void serve_room_waiters(struct vdo_map_cache *cache)
{
	while ((cache->room_waiters != NULL) && (cache->failed || make_room(cache))) {
		struct vdo_page_request *request = cache->room_waiters;

		cache->room_waiters = request->next;
		if (cache->room_waiters == NULL)
			cache->last_room_waiter = NULL;
		/* Another request may have brought the page in meanwhile. */
		get_page(cache, request);
	}
}

static void check_drain(struct vdo_map_cache *cache)
{
	struct dd_completion *waiter = cache->drain_waiter;

	if ((waiter == NULL) || (cache->writes_in_flight > 0) ||
	    (!cache->failed && (cache->dirty_count > 0)))
		return;
	cache->drain_waiter = NULL;
	cache->write_all = false;
	dd_continue_completion(waiter, cache->failed ? DD_READ_ONLY : DD_SUCCESS);
}

static void make_progress(struct vdo_map_cache *cache)
{
	serve_room_waiters(cache);
	start_writes(cache);
	check_drain(cache);
}

void vdo_drain_map_cache(struct vdo_map_cache *cache, struct dd_completion *waiter)
{
	(void) dd_assert_on_thread(cache->config.threads, cache->config.thread, __func__);
	cache->drain_waiter = waiter;
	cache->write_all = true;
	make_progress(cache);
}

/* --------------------------------------------------------------------------------------------
 * Making and freeing
 */

void vdo_free_map_cache(struct vdo_map_cache *cache)
{
	if (cache == NULL)
		return;
	for (uint32_t b = 0; (cache->buckets != NULL) && (b < cache->bucket_count); b++) {
		while (cache->buckets[b] != NULL) {
			struct vdo_map_page *page = cache->buckets[b];

			cache->buckets[b] = page->hash_next;
			free_page(page);
		}
	}
	for (unsigned int w = 0; w < WRITE_SLOTS; w++)
		dd_free(cache->writes[w].buffer);
	dd_free(cache->buckets);
	dd_free(cache);
}

int vdo_make_map_cache(const struct vdo_map_cache_config *config, struct vdo_map_cache **cache_ptr)
{
	struct vdo_map_cache *cache;
	uint32_t buckets = MIN_BUCKETS;
	int result;

	if (config->leaf_pages == 0)
		return DD_INVALID_ARGUMENT;
	result = dd_allocate(sizeof(*cache), "map cache", &cache);
	if (result != DD_SUCCESS)
		return result;
	cache->config = *config;
	while (buckets < config->leaf_pages)
		buckets *= 2;
	cache->bucket_count = buckets;
	result = DD_ALLOCATE(buckets, struct vdo_map_page *, "map page buckets", &cache->buckets);
	for (unsigned int w = 0; (result == DD_SUCCESS) && (w < WRITE_SLOTS); w++) {
		cache->writes[w].cache = cache;
		dd_initialize_completion(&cache->writes[w].completion, config->threads);
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "map page write",
		                             &cache->writes[w].buffer);
	}
	if (result != DD_SUCCESS) {
		vdo_free_map_cache(cache);
		return result;
	}
	*cache_ptr = cache;
	return DD_SUCCESS;
}

void vdo_get_map_cache_stats(const struct vdo_map_cache *cache, struct vdo_map_cache_stats *stats)
{
	*stats = cache->stats;
	stats->leaf_pages = cache->leaf_count;
	stats->interior_pages = cache->page_count - cache->leaf_count;
	stats->dirty_pages = cache->dirty_count;
}
