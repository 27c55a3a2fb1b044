// SPDX-License-Identifier: GPL-2.0-only
/*
 * The block map's trees; see block-map.h.
 *
 * Every operation starts with one page request and continues in the page request's callback,
 * on the zone thread: a lookup asks for the root, then for each interior page on the way down;
 * GET and PUT ask for the leaf; LINK asks for the parent of the missing page, changes it, then
 * asks the cache for the new page (made in memory) and dirties that too.
 */
#include "block-map.h"

#include "block-map-page.h"
#include "logger.h"
#include "memory-alloc.h"

struct vdo_block_map {
	struct vdo_block_map_config config;
	vdo_lbn_t logical_blocks;
	struct vdo_map_cache **caches;
};

static void page_ready(struct dd_completion *completion);

unsigned int vdo_map_tree_path(vdo_lbn_t lbn, uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT])
{
	uint64_t page = lbn / VDO_BLOCK_MAP_ENTRIES_PER_PAGE;
	uint64_t leaf_number = page / VDO_BLOCK_MAP_TREE_COUNT;

	slots[0] = (uint16_t) (lbn % VDO_BLOCK_MAP_ENTRIES_PER_PAGE);
	for (unsigned int level = 1; level < VDO_BLOCK_MAP_TREE_HEIGHT; level++) {
		slots[level] = (uint16_t) (leaf_number % VDO_BLOCK_MAP_ENTRIES_PER_PAGE);
		leaf_number /= VDO_BLOCK_MAP_ENTRIES_PER_PAGE;
	}
	return (unsigned int) (page % VDO_BLOCK_MAP_TREE_COUNT);
}

unsigned int vdo_map_zone_of(const struct vdo_block_map *map, vdo_lbn_t lbn)
{
	unsigned int tree =
	    (unsigned int) ((lbn / VDO_BLOCK_MAP_ENTRIES_PER_PAGE) % VDO_BLOCK_MAP_TREE_COUNT);

	return tree % map->config.zone_count;
}

void vdo_set_logical_blocks(struct vdo_block_map *map, vdo_lbn_t logical_blocks)
{
	map->logical_blocks = logical_blocks;
}

vdo_lbn_t vdo_map_logical_blocks(const struct vdo_block_map *map)
{
	return map->logical_blocks;
}

void vdo_free_block_map(struct vdo_block_map *map)
{
	if (map == NULL)
		return;
	for (unsigned int z = 0; (map->caches != NULL) && (z < map->config.zone_count); z++)
		vdo_free_map_cache(map->caches[z]);
	dd_free(map->caches);
	dd_free(map);
}

int vdo_make_block_map(const struct vdo_block_map_config *config, struct vdo_block_map **map_ptr)
{
	struct vdo_block_map *map;
	int result;

	if ((config->zone_count == 0) || (config->zone_count > VDO_BLOCK_MAP_TREE_COUNT))
		return DD_INVALID_ARGUMENT;
	result = dd_allocate(sizeof(*map), "block map", &map);
	if (result != DD_SUCCESS)
		return result;
	map->config = *config;
	map->logical_blocks = config->logical_blocks;
	result =
	    DD_ALLOCATE(config->zone_count, struct vdo_map_cache *, "map caches", &map->caches);
	for (unsigned int z = 0; (result == DD_SUCCESS) && (z < config->zone_count); z++) {
		struct vdo_map_cache_config cache = {
			.device = config->device,
			.nonce = config->nonce,
			.threads = config->threads,
			.thread = config->zone_threads[z],
			.locks = config->locks,
			.lock_zone = config->lock_zones[z],
			.leaf_pages = config->leaf_pages_per_zone,
			.fail = config->fail,
			.context = config->context,
		};

		result = vdo_make_map_cache(&cache, &map->caches[z]);
	}
	if (result != DD_SUCCESS) {
		vdo_free_block_map(map);
		return result;
	}
	*map_ptr = map;
	return DD_SUCCESS;
}

static struct vdo_map_cache *cache_of(struct vdo_block_map *map, vdo_lbn_t lbn)
{
	return map->caches[vdo_map_zone_of(map, lbn)];
}

/* Ask for page @pbn for @request; page_ready continues. */
static void request_page(struct vdo_map_request *request, vdo_pbn_t pbn, bool interior, bool new)
{
	struct vdo_map_cache *cache = cache_of(request->map, request->lbn);
	struct vdo_page_request *page = &request->page;

	dd_initialize_completion(&page->completion, request->map->config.threads);
	dd_prepare_completion(&page->completion, page_ready, NULL,
	                      request->completion.callback_thread_id, request);
	page->pbn = pbn;
	page->interior = interior;
	if (new)
		vdo_new_map_page(cache, page);
	else
		vdo_get_map_page(cache, page);
}

static void finish(struct vdo_map_request *request, int result)
{
	dd_continue_completion(&request->completion, result);
}

static bool valid_child(struct vdo_block_map *map, struct vdo_mapping child)
{
	return (child.state == VDO_MAPPING_UNCOMPRESSED) &&
	       map->config.is_data_block(map->config.context, child.pbn);
}

/* A lookup holds the page at request->level: go down one level. */
static void descend(struct vdo_map_request *request, struct vdo_map_page *page)
{
	struct vdo_block_map *map = request->map;
	uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT];
	unsigned int level = request->level;
	struct vdo_mapping child;
	vdo_pbn_t parent = request->page.pbn;

	vdo_map_tree_path(request->lbn, slots);
	child = vdo_get_block_map_entry(vdo_map_page_data(page), slots[level]);
	vdo_release_map_page(cache_of(map, request->lbn), page);
	if (!vdo_is_mapped(child)) {
		request->leaf_pbn = 0;
		request->missing_level = level - 1;
		request->missing_slot =
		    (struct vdo_block_map_slot){ .pbn = parent, .slot = slots[level] };
		finish(request, DD_SUCCESS);
		return;
	}
	if (!valid_child(map, child)) {
		finish(request, dd_log_error_strerror(DD_CORRUPT_DATA,
		                                      "block map page %llu maps a page to block "
		                                      "%llu (state %u)",
		                                      (unsigned long long) parent,
		                                      (unsigned long long) child.pbn, child.state));
		return;
	}
	if (level == 1) {
		request->leaf_pbn = child.pbn;
		finish(request, DD_SUCCESS);
		return;
	}
	request->level = level - 1;
	request_page(request, child.pbn, true, false);
}

static void get_mapping(struct vdo_map_request *request, struct vdo_map_page *page)
{
	request->mapping =
	    vdo_get_block_map_entry(vdo_map_page_data(page), vdo_map_slot_of(request->lbn));
	vdo_release_map_page(cache_of(request->map, request->lbn), page);
	if (vdo_mapping_uses_storage(request->mapping) &&
	    !request->map->config.is_data_block(request->map->config.context,
	                                        request->mapping.pbn)) {
		finish(request,
		       dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "logical block %llu maps to block %llu, which "
		                             "is not a data block",
		                             (unsigned long long) request->lbn,
		                             (unsigned long long) request->mapping.pbn));
		return;
	}
	finish(request, DD_SUCCESS);
}

static void put_mapping(struct vdo_map_request *request, struct vdo_map_page *page)
{
	struct vdo_map_cache *cache = cache_of(request->map, request->lbn);

	vdo_set_block_map_entry(vdo_map_page_data(page), vdo_map_slot_of(request->lbn),
	                        request->mapping);
	vdo_dirty_map_page(cache, page, request->lock);
	vdo_release_map_page(cache, page);
	finish(request, DD_SUCCESS);
}

/* LINK holds the parent: point it at the new page, then make the new page. */
static void link_parent(struct vdo_map_request *request, struct vdo_map_page *page)
{
	struct vdo_map_cache *cache = cache_of(request->map, request->lbn);

	vdo_set_block_map_entry(
	    vdo_map_page_data(page), request->missing_slot.slot,
	    (struct vdo_mapping){ .pbn = request->new_page, .state = VDO_MAPPING_UNCOMPRESSED });
	vdo_dirty_map_page(cache, page, request->lock);
	vdo_release_map_page(cache, page);
	request->level = 0;
	request_page(request, request->new_page, request->missing_level > 0, true);
}

static void link_child(struct vdo_map_request *request, struct vdo_map_page *page)
{
	struct vdo_map_cache *cache = cache_of(request->map, request->lbn);

	vdo_dirty_map_page(cache, page, request->lock);
	vdo_release_map_page(cache, page);
	finish(request, DD_SUCCESS);
}

static void page_ready(struct dd_completion *completion)
{
	struct vdo_map_request *request = completion->parent;
	struct vdo_map_page *page = request->page.page;

	if (completion->result != DD_SUCCESS) {
		finish(request, completion->result);
		return;
	}
	switch (request->operation) {
	case VDO_MAP_LOOKUP:
		descend(request, page);
		return;
	case VDO_MAP_GET:
		get_mapping(request, page);
		return;
	case VDO_MAP_PUT:
		put_mapping(request, page);
		return;
	case VDO_MAP_LINK:
		if (request->level > 0)
			link_parent(request, page);
		else
			link_child(request, page);
		return;
	}
}

void vdo_map_operate(struct vdo_block_map *map, struct vdo_map_request *request,
                     enum vdo_map_operation operation)
{
	uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT];
	unsigned int tree = vdo_map_tree_path(request->lbn, slots);

	request->map = map;
	request->operation = operation;
	if (request->lbn >= map->logical_blocks) {
		finish(request, DD_OUT_OF_RANGE);
		return;
	}
	switch (operation) {
	case VDO_MAP_LOOKUP:
		request->level = VDO_BLOCK_MAP_TREE_HEIGHT - 1;
		request_page(request, map->config.root_origin + tree, true, false);
		return;
	case VDO_MAP_GET:
	case VDO_MAP_PUT:
		request_page(request, request->leaf_pbn, false, false);
		return;
	case VDO_MAP_LINK:
		/* Any non-zero level: the parent comes first. */
		request->level = 1;
		request_page(request, request->missing_slot.pbn, true, false);
		return;
	}
	finish(request, DD_INVALID_ARGUMENT);
}

void vdo_write_map_zone(struct vdo_block_map *map, unsigned int zone, vdo_sequence_t through)
{
	vdo_write_map_pages(map->caches[zone], through);
}

void vdo_drain_map_zone(struct vdo_block_map *map, unsigned int zone, struct dd_completion *waiter)
{
	vdo_drain_map_cache(map->caches[zone], waiter);
}

void vdo_get_map_zone_stats(const struct vdo_block_map *map, unsigned int zone,
                            struct vdo_map_cache_stats *stats)
{
	vdo_get_map_cache_stats(map->caches[zone], stats);
}
