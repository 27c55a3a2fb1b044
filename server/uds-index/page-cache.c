// SPDX-License-Identifier: GPL-2.0-only
/*
 * The per-zone page cache; see page-cache.h.
 */
#include "page-cache.h"

#include "memory-alloc.h"

enum {
	NO_ENTRY = UINT32_MAX,
};

static uint32_t hash_key(uint64_t virtual_chapter, uint32_t page_number, uint32_t mask)
{
	uint64_t key = (virtual_chapter << 20) ^ page_number;

	return (uint32_t) ((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

int uds_make_page_cache(const struct uds_geometry *geometry, uint32_t capacity,
                        struct uds_page_cache **cache_ptr)
{
	struct uds_page_cache *cache;
	uint32_t buckets = 1;
	int result;

	if (capacity < 2)
		capacity = 2;
	while (buckets < capacity)
		buckets *= 2;
	result = DD_ALLOCATE(1, struct uds_page_cache, "page cache", &cache);
	if (result != DD_SUCCESS)
		return result;
	cache->geometry = geometry;
	cache->capacity = capacity;
	cache->bucket_mask = buckets - 1;
	result = DD_ALLOCATE(capacity, struct uds_cached_page, "cached pages", &cache->pages);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(buckets, uint32_t, "page cache buckets", &cache->buckets);
	if (result != DD_SUCCESS) {
		uds_free_page_cache(cache);
		return result;
	}
	for (uint32_t i = 0; i < buckets; i++)
		cache->buckets[i] = NO_ENTRY;
	for (uint32_t i = 0; i < capacity; i++)
		cache->pages[i].hash_next = NO_ENTRY;
	*cache_ptr = cache;
	return DD_SUCCESS;
}

void uds_free_page_cache(struct uds_page_cache *cache)
{
	if (cache == NULL)
		return;
	dd_free(cache->buckets);
	dd_free(cache->pages);
	dd_free(cache);
}

struct uds_cached_page *uds_page_cache_find(struct uds_page_cache *cache, uint64_t virtual_chapter,
                                            uint32_t page_number)
{
	uint32_t i = cache->buckets[hash_key(virtual_chapter, page_number, cache->bucket_mask)];

	while (i != NO_ENTRY) {
		struct uds_cached_page *page = &cache->pages[i];

		if ((page->virtual_chapter == virtual_chapter) &&
		    (page->page_number == page_number)) {
			page->referenced = true;
			if (page->state == UDS_PAGE_READY)
				cache->stats.hits++;
			return page;
		}
		i = page->hash_next;
	}
	cache->stats.misses++;
	return NULL;
}

/* Take an entry out of its hash chain. */
static void unhash_page(struct uds_page_cache *cache, struct uds_cached_page *page)
{
	uint32_t index = (uint32_t) (page - cache->pages);
	uint32_t *link =
	    &cache->buckets[hash_key(page->virtual_chapter, page->page_number, cache->bucket_mask)];

	while (*link != NO_ENTRY) {
		if (*link == index) {
			*link = page->hash_next;
			break;
		}
		link = &cache->pages[*link].hash_next;
	}
	page->hash_next = NO_ENTRY;
}

/* Move the clock hand to an entry that may be replaced (not LOADING or pinned, not referenced). */
static struct uds_cached_page *choose_victim(struct uds_page_cache *cache)
{
	for (uint32_t steps = 0; steps < 2 * cache->capacity + 1; steps++) {
		struct uds_cached_page *page = &cache->pages[cache->clock_hand];

		cache->clock_hand = (cache->clock_hand + 1) % cache->capacity;
		if ((page->state == UDS_PAGE_LOADING) || page->pinned)
			continue;
		if (page->referenced) {
			page->referenced = false;
			continue;
		}
		return page;
	}
	return NULL;
}

struct uds_cached_page *uds_page_cache_claim(struct uds_page_cache *cache, uint64_t virtual_chapter,
                                             uint32_t page_number)
{
	struct uds_cached_page *page = choose_victim(cache);
	uint32_t bucket;

	if (page == NULL)
		return NULL;
	if (page->state != UDS_PAGE_EMPTY) {
		unhash_page(cache, page);
		cache->stats.evictions++;
	}
	page->virtual_chapter = virtual_chapter;
	page->page_number = page_number;
	page->state = UDS_PAGE_LOADING;
	cache->busy++;
	page->referenced = true;
	page->waiters = NULL;
	bucket = hash_key(virtual_chapter, page_number, cache->bucket_mask);
	page->hash_next = cache->buckets[bucket];
	cache->buckets[bucket] = (uint32_t) (page - cache->pages);
	return page;
}

void uds_page_cache_loaded(struct uds_page_cache *cache, struct uds_cached_page *page)
{
	if (page->state == UDS_PAGE_LOADING)
		cache->busy--;
	page->state = UDS_PAGE_READY;
}

void uds_page_cache_pin(struct uds_page_cache *cache, struct uds_cached_page *page)
{
	if (!page->pinned && (page->state == UDS_PAGE_READY)) {
		page->pinned = true;
		cache->busy++;
	}
}

void uds_page_cache_unpin(struct uds_page_cache *cache, struct uds_cached_page *page)
{
	if (page->pinned) {
		page->pinned = false;
		cache->busy--;
	}
}

void uds_page_cache_release(struct uds_page_cache *cache, struct uds_cached_page *page)
{
	if (page->state == UDS_PAGE_LOADING)
		cache->busy--;
	unhash_page(cache, page);
	page->state = UDS_PAGE_EMPTY;
	page->referenced = false;
	page->waiters = NULL;
}
