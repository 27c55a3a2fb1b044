/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The block map: logical block -> mapping, as 60 interleaved radix trees of block map pages.
 *
 * Logical block n is slot n % 812 of leaf page n / 812; leaf page p belongs to tree p % 60, as
 * its leaf number p / 60. Each tree has 5 levels: its root (level 4, a page at a fixed place
 * laid down by format), three interior levels, and the leaves (level 0); the leaf number's
 * base-812 digits, most significant first, are the slots taken on the way down. Trees are dealt
 * to the logical zones round-robin (tree t to zone t % L); a zone's thread owns its trees'
 * pages, through its page cache (block-map-cache.h).
 *
 * A lookup walks a tree to the leaf page of a logical block. Pages below the root exist only
 * once something was written under them: a lookup that meets an unmapped slot stops there and
 * says which page is missing, and where it goes. A write then allocates a block for it,
 * journals the remapping of that slot, and links the new page in (vdo_map_link) before it
 * looks again; a read knows the block is unmapped.
 */
#ifndef VDO_BLOCK_MAP_H
#define VDO_BLOCK_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "block-map-cache.h"
#include "completion.h"
#include "errors.h"
#include "recovery-journal-format.h"
#include "vdo-types.h"

struct vdo_block_map;

struct vdo_block_map_config {
	struct block_device *device;
	uint64_t nonce;
	vdo_pbn_t root_origin;
	vdo_lbn_t logical_blocks;
	struct dd_thread_set *threads;
	unsigned int zone_count;
	const dd_thread_id_t *zone_threads;
	const unsigned int *lock_zones;
	struct vdo_lock_counter *locks;
	uint32_t leaf_pages_per_zone;
	/* Whether @pbn may hold a block map page (a data block of a slab). */
	bool (*is_data_block)(void *context, vdo_pbn_t pbn);
	void (*fail)(void *context, int result);
	void *context;
};

enum vdo_map_operation {
	VDO_MAP_LOOKUP = 0,
	VDO_MAP_GET,
	VDO_MAP_PUT,
	VDO_MAP_LINK,
};

/* One operation on the block map, on the zone of its logical block; embedded in a data_vio. */
struct vdo_map_request {
	/* Prepared by the caller for the zone's thread; continued when the operation is done. */
	struct dd_completion completion;
	vdo_lbn_t lbn;
	/* LOOKUP sets it (0 if a page on the way is missing); GET and PUT use it. */
	vdo_pbn_t leaf_pbn;
	/* GET sets it; PUT stores it. */
	struct vdo_mapping mapping;
	/* PUT and LINK: the recovery journal block of the change. */
	vdo_sequence_t lock;
	/* LOOKUP sets them when a page is missing: its level (0 for a leaf) and the slot it goes
	 * in; LINK puts new_page there. */
	unsigned int missing_level;
	struct vdo_block_map_slot missing_slot;
	vdo_pbn_t new_page;
	/* The block map's. */
	struct vdo_block_map *map;
	enum vdo_map_operation operation;
	unsigned int level;
	struct vdo_page_request page;
};

/** vdo_make_block_map() - A block map over the trees format laid down. */
int DD_MUST_CHECK vdo_make_block_map(const struct vdo_block_map_config *config,
                                     struct vdo_block_map **map_ptr);

/** vdo_free_block_map() - Free @map (NULL is fine); nothing may be in flight. */
void vdo_free_block_map(struct vdo_block_map *map);

/** vdo_map_zone_of() - The logical zone of logical block @lbn. */
unsigned int vdo_map_zone_of(const struct vdo_block_map *map, vdo_lbn_t lbn);


/** vdo_map_slot_of() - The slot of @lbn in its leaf page. */
static inline uint16_t vdo_map_slot_of(vdo_lbn_t lbn)
{
	return (uint16_t) (lbn % VDO_BLOCK_MAP_ENTRIES_PER_PAGE);
}

/**
 * vdo_map_operate() - The zone thread of request->lbn: do @operation (see the request).
 *
 * Errors continue the request: DD_READ_ONLY once the map has failed, DD_CORRUPT_DATA for a
 * damaged page or a mapping that points outside the data blocks, an I/O error.
 */
void vdo_map_operate(struct vdo_block_map *map, struct vdo_map_request *request,
                     enum vdo_map_operation operation);

/** vdo_set_logical_blocks() - Grow the logical size (any thread, when quiet). */
void vdo_set_logical_blocks(struct vdo_block_map *map, vdo_lbn_t logical_blocks);

/** vdo_map_logical_blocks() - The logical size. */
vdo_lbn_t vdo_map_logical_blocks(const struct vdo_block_map *map);

/**
 * vdo_write_map_zone() - Zone @zone's thread: write dirty pages holding recovery journal
 *                        blocks up to @through.
 */
void vdo_write_map_zone(struct vdo_block_map *map, unsigned int zone, vdo_sequence_t through);

/** vdo_drain_map_zone() - Zone @zone's thread: write every dirty page, then continue @waiter. */
void vdo_drain_map_zone(struct vdo_block_map *map, unsigned int zone, struct dd_completion *waiter);

/** vdo_get_map_zone_stats() - Zone @zone's thread (or when quiet): its cache's counters. */
void vdo_get_map_zone_stats(const struct vdo_block_map *map, unsigned int zone,
                            struct vdo_map_cache_stats *stats);

/**
 * vdo_map_tree_path() - The tree of @lbn's leaf page, and the slot taken at each level:
 *                       slots[4] in the root down to slots[1] (which maps the leaf page), and
 *                       slots[0], the slot of @lbn in its leaf page.
 */
unsigned int vdo_map_tree_path(vdo_lbn_t lbn, uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT]);

#endif /* VDO_BLOCK_MAP_H */
