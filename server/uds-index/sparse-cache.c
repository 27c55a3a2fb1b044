// SPDX-License-Identifier: GPL-2.0-only
/*
 * The per-zone sparse cache; see sparse-cache.h.
 */
#include "sparse-cache.h"

#include "chapter-index.h"
#include "memory-alloc.h"

enum {
	/* Searches in a row without a hit after which a cached chapter is skipped. */
	SKIP_SEARCH_THRESHOLD = 20000,
	/* The most chapters one search looks at (the cache may be larger; the newest are kept). */
	MAX_SEARCHED = 64,
};

int uds_make_sparse_cache(const struct uds_geometry *geometry, uint32_t capacity,
                          struct uds_sparse_cache **cache_ptr)
{
	size_t bytes = (size_t) geometry->index_pages_per_chapter * geometry->bytes_per_page;
	struct uds_sparse_cache *cache;
	int result;

	if (capacity == 0)
		capacity = 1;
	result = DD_ALLOCATE(1, struct uds_sparse_cache, "sparse cache", &cache);
	if (result != DD_SUCCESS)
		return result;
	cache->geometry = geometry;
	cache->capacity = capacity;
	cache->next_ticket = 1;
	result =
	    DD_ALLOCATE(capacity, struct uds_sparse_chapter, "sparse chapters", &cache->chapters);
	for (uint32_t i = 0; (i < capacity) && (result == DD_SUCCESS); i++) {
		struct uds_sparse_chapter *chapter = &cache->chapters[i];

		result = dd_allocate_aligned(bytes, 4096, "sparse chapter pages",
		                             (void **) &chapter->data);
		if (result == DD_SUCCESS)
			result =
			    DD_ALLOCATE(geometry->index_pages_per_chapter, struct uds_delta_page,
			                "sparse delta pages", &chapter->pages);
	}
	if (result != DD_SUCCESS) {
		uds_free_sparse_cache(cache);
		return result;
	}
	*cache_ptr = cache;
	return DD_SUCCESS;
}

void uds_free_sparse_cache(struct uds_sparse_cache *cache)
{
	if (cache == NULL)
		return;
	if (cache->chapters != NULL) {
		for (uint32_t i = 0; i < cache->capacity; i++) {
			dd_free(cache->chapters[i].data);
			dd_free(cache->chapters[i].pages);
		}
		dd_free(cache->chapters);
	}
	dd_free(cache);
}

static void mark_used(struct uds_sparse_cache *cache, struct uds_sparse_chapter *chapter)
{
	chapter->last_used = ++cache->clock;
	chapter->misses = 0;
	chapter->skip_search = false;
}

struct uds_sparse_chapter *uds_sparse_cache_find(struct uds_sparse_cache *cache,
                                                 uint64_t virtual_chapter)
{
	for (uint32_t i = 0; i < cache->capacity; i++) {
		struct uds_sparse_chapter *chapter = &cache->chapters[i];

		if ((chapter->state != UDS_SPARSE_EMPTY) &&
		    (chapter->virtual_chapter == virtual_chapter)) {
			if (chapter->state == UDS_SPARSE_READY)
				mark_used(cache, chapter);
			return chapter;
		}
	}
	return NULL;
}

/* How much an entry is worth keeping: empty first, then expired, then by last use. */
static uint64_t keep_score(const struct uds_sparse_chapter *chapter, uint64_t oldest_chapter)
{
	if (chapter->state == UDS_SPARSE_EMPTY)
		return 0;
	if (chapter->virtual_chapter < oldest_chapter)
		return 1;
	return 2 + chapter->last_used;
}

struct uds_sparse_chapter *uds_sparse_cache_claim(struct uds_sparse_cache *cache,
                                                  uint64_t virtual_chapter, uint64_t oldest_chapter)
{
	struct uds_sparse_chapter *victim = NULL;
	uint64_t victim_score = UINT64_MAX;

	for (uint32_t i = 0; i < cache->capacity; i++) {
		struct uds_sparse_chapter *chapter = &cache->chapters[i];
		uint64_t score;

		if (chapter->state == UDS_SPARSE_LOADING)
			continue;
		score = keep_score(chapter, oldest_chapter);
		if (score < victim_score) {
			victim = chapter;
			victim_score = score;
		}
	}
	if (victim == NULL)
		return NULL;
	if (victim->state == UDS_SPARSE_READY)
		cache->stats.evictions++;
	victim->virtual_chapter = virtual_chapter;
	victim->state = UDS_SPARSE_LOADING;
	victim->skip_search = false;
	victim->misses = 0;
	victim->ticket = cache->next_ticket++;
	cache->loading++;
	return victim;
}

int uds_load_sparse_chapter(const struct uds_volume *volume, uint64_t nonce,
                            struct uds_sparse_chapter *chapter)
{
	const struct uds_geometry *g = volume->geometry;

	for (uint32_t page = 0; page < g->index_pages_per_chapter; page++) {
		uint8_t *data = chapter->data + (size_t) page * g->bytes_per_page;
		int result = uds_read_volume_page(volume, chapter->virtual_chapter, page, data);

		if (result == DD_SUCCESS)
			result = uds_open_chapter_index_page(&chapter->pages[page], g, nonce,
			                                     chapter->virtual_chapter, data);
		if (result != DD_SUCCESS)
			return result;
	}
	return DD_SUCCESS;
}

void uds_sparse_cache_loaded(struct uds_sparse_cache *cache, struct uds_sparse_chapter *chapter,
                             int result)
{
	cache->loading--;
	if (result != DD_SUCCESS) {
		chapter->state = UDS_SPARSE_EMPTY;
		return;
	}
	chapter->state = UDS_SPARSE_READY;
	cache->stats.loads++;
	mark_used(cache, chapter);
}

bool uds_sparse_cache_loading_before(const struct uds_sparse_cache *cache, uint64_t ticket)
{
	if (cache->loading == 0)
		return false;
	for (uint32_t i = 0; i < cache->capacity; i++) {
		if ((cache->chapters[i].state == UDS_SPARSE_LOADING) &&
		    (cache->chapters[i].ticket < ticket))
			return true;
	}
	return false;
}

/* Gather the searchable chapters, newest first. */
static uint32_t searchable_chapters(struct uds_sparse_cache *cache, uint64_t oldest_chapter,
                                    struct uds_sparse_chapter **order)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < cache->capacity; i++) {
		struct uds_sparse_chapter *chapter = &cache->chapters[i];
		uint32_t j;

		if ((chapter->state != UDS_SPARSE_READY) || chapter->skip_search ||
		    (chapter->virtual_chapter < oldest_chapter))
			continue;
		for (j = count;
		     (j > 0) && (order[j - 1]->virtual_chapter < chapter->virtual_chapter); j--) {
			if (j < MAX_SEARCHED)
				order[j] = order[j - 1];
		}
		if (j < MAX_SEARCHED)
			order[j] = chapter;
		if (count < MAX_SEARCHED)
			count++;
	}
	return count;
}

/* Search one cached chapter's index for a name. */
static bool search_chapter_index(struct uds_sparse_chapter *chapter,
                                 const struct uds_volume *volume, const struct dd_record_name *name,
                                 uint32_t *record_page_ptr)
{
	const struct uds_geometry *g = volume->geometry;
	uint32_t list = uds_chapter_index_list(g, name);
	uint32_t page;

	if ((uds_find_index_page(volume, chapter->virtual_chapter, list, &page) != DD_SUCCESS) ||
	    (uds_search_chapter_index_page(&chapter->pages[page], g, name, record_page_ptr) !=
	     DD_SUCCESS))
		return false;
	return *record_page_ptr != UDS_NO_RECORD_PAGE;
}

bool uds_search_sparse_cache(struct uds_sparse_cache *cache, const struct uds_volume *volume,
                             const struct dd_record_name *name, uint64_t oldest_chapter,
                             uint64_t below_chapter, uint64_t *chapter_ptr,
                             uint32_t *record_page_ptr)
{
	struct uds_sparse_chapter *order[MAX_SEARCHED];
	uint32_t count = searchable_chapters(cache, oldest_chapter, order);

	for (uint32_t i = 0; i < count; i++) {
		struct uds_sparse_chapter *chapter = order[i];

		if (chapter->virtual_chapter >= below_chapter)
			continue;
		if (search_chapter_index(chapter, volume, name, record_page_ptr)) {
			cache->stats.hits++;
			mark_used(cache, chapter);
			*chapter_ptr = chapter->virtual_chapter;
			return true;
		}
		if (++chapter->misses >= SKIP_SEARCH_THRESHOLD)
			chapter->skip_search = true;
	}
	cache->stats.misses++;
	return false;
}
