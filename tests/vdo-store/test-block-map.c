// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the block map on a zone thread: walking empty trees, linking in pages level by level,
 * mappings kept in leaves, pages written and read back by a new map, a small leaf cache that
 * must write dirty pages to evict them, the journal locks dirty pages hold, and a damaged page
 * that stops the map.
 */
#include <stdlib.h>
#include <string.h>

#include "block-device.h"
#include "block-map-page.h"
#include "block-map.h"
#include "errors.h"
#include "format.h"
#include "lock-counter.h"
#include "memory-alloc.h"
#include "test-harness.h"
#include "work-queue.h"

enum {
	ZONE_THREAD = 0,
};

static const dd_thread_id_t zone_threads[1] = { ZONE_THREAD };
static const unsigned int lock_zones[1] = { 0 };

struct fixture {
	struct block_device *device;
	struct vdo_super_block super;
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_block_map *map;
	vdo_pbn_t next_page;
	int failure;
	struct vdo_map_request request;
	enum vdo_map_operation operation;
	struct vdo_map_cache_stats stats;
};

static bool is_data_block(void *context, vdo_pbn_t pbn)
{
	struct fixture *f = context;

	return (pbn >= f->super.layout.depot_origin) && (pbn < f->super.layout.physical_blocks);
}

static void record_failure(void *context, int result)
{
	((struct fixture *) context)->failure = result;
}

static void no_notify(void *context)
{
	(void) context;
}

static void make_map(struct fixture *f, uint32_t leaf_pages)
{
	struct vdo_block_map_config config = { .device = f->device,
		                               .nonce = f->super.nonce,
		                               .root_origin = f->super.layout.root_origin,
		                               .logical_blocks = f->super.layout.logical_blocks,
		                               .threads = f->threads,
		                               .zone_count = 1,
		                               .zone_threads = zone_threads,
		                               .lock_zones = lock_zones,
		                               .locks = f->locks,
		                               .leaf_pages_per_zone = leaf_pages,
		                               .is_data_block = is_data_block,
		                               .fail = record_failure,
		                               .context = f };

	assert_success(vdo_make_block_map(&config, &f->map));
}

static struct fixture *make_fixture(uint32_t leaf_pages)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vdo_format_config format = { .slab_blocks = 1024, .logical_blocks = 1ULL << 30 };
	struct dd_thread_set_config threads = dd_default_thread_set_config("maptest", 1);

	assert_success(vdo_make_ram_device(16384, &f->device));
	assert_success(vdo_format(f->device, &format, &f->super));
	assert_success(dd_make_thread_set(&threads, &f->threads));
	assert_success(
	    vdo_make_lock_counter(f->super.layout.journal_blocks, 1, no_notify, NULL, &f->locks));
	f->next_page = f->super.layout.depot_origin;
	make_map(f, leaf_pages);
	return f;
}

static void free_fixture(struct fixture *f)
{
	/* Requests finish before the zone thread is done with what follows them. */
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	vdo_free_block_map(f->map);
	vdo_close_device(f->device);
	dd_free_thread_set(f->threads);
	vdo_free_lock_counter(f->locks);
	free(f);
}

static void request_done(struct dd_completion *completion)
{
	dd_finish_completion(completion->parent, completion->result);
}

static void operate(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	dd_initialize_completion(&f->request.completion, f->threads);
	dd_prepare_completion(&f->request.completion, request_done, NULL, ZONE_THREAD, completion);
	vdo_map_operate(f->map, &f->request, f->operation);
}

static int run(struct fixture *f, enum vdo_map_operation operation)
{
	f->operation = operation;
	return dd_perform_synchronous_action(f->threads, ZONE_THREAD, operate, f);
}

/* Look @lbn up, linking in every missing page; return its leaf page. */
static vdo_pbn_t make_path(struct fixture *f, vdo_lbn_t lbn, unsigned int *links)
{
	*links = 0;
	for (;;) {
		f->request = (struct vdo_map_request){ .lbn = lbn };
		assert_success(run(f, VDO_MAP_LOOKUP));
		if (f->request.leaf_pbn != 0)
			return f->request.leaf_pbn;
		f->request.new_page = f->next_page++;
		f->request.lock = 1;
		assert_success(run(f, VDO_MAP_LINK));
		(*links)++;
	}
}

static struct vdo_mapping get(struct fixture *f, vdo_lbn_t lbn, vdo_pbn_t leaf)
{
	f->request = (struct vdo_map_request){ .lbn = lbn, .leaf_pbn = leaf };
	assert_success(run(f, VDO_MAP_GET));
	return f->request.mapping;
}

static void put(struct fixture *f, vdo_lbn_t lbn, vdo_pbn_t leaf, struct vdo_mapping mapping,
                vdo_sequence_t lock)
{
	f->request = (struct vdo_map_request){
		.lbn = lbn, .leaf_pbn = leaf, .mapping = mapping, .lock = lock
	};
	assert_success(run(f, VDO_MAP_PUT));
}

static void drain(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	vdo_drain_map_zone(f->map, 0, completion);
}

static void reopen(struct fixture *f, uint32_t leaf_pages)
{
	assert_success(dd_perform_synchronous_action(f->threads, ZONE_THREAD, drain, f));
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	vdo_free_block_map(f->map);
	make_map(f, leaf_pages);
}

static void test_paths_and_mappings(void **state)
{
	struct fixture *f = make_fixture(64);
	uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT];
	vdo_lbn_t lbn = 123456789;
	struct vdo_mapping data = { .pbn = 9000, .state = VDO_MAPPING_UNCOMPRESSED };
	unsigned int links;
	vdo_pbn_t leaf;

	(void) state;
	assert_int_equal(vdo_map_tree_path(lbn, slots), (lbn / 812) % 60);
	assert_int_equal(slots[0], lbn % 812);
	assert_int_equal(slots[1], (lbn / 812 / 60) % 812);
	/* An empty tree: the first page below the root is missing. */
	f->request = (struct vdo_map_request){ .lbn = lbn };
	assert_success(run(f, VDO_MAP_LOOKUP));
	assert_int_equal(f->request.leaf_pbn, 0);
	assert_int_equal(f->request.missing_level, 3);
	assert_int_equal(f->request.missing_slot.pbn,
	                 f->super.layout.root_origin + (lbn / 812) % 60);
	assert_int_equal(f->request.missing_slot.slot, slots[4]);
	/* Four pages link it in: three interior levels and the leaf. */
	leaf = make_path(f, lbn, &links);
	assert_int_equal(links, 4);
	assert_false(vdo_is_mapped(get(f, lbn, leaf)));
	put(f, lbn, leaf, data, 2);
	assert_int_equal(get(f, lbn, leaf).pbn, 9000);
	/* Its neighbour shares the path. */
	assert_int_equal(make_path(f, lbn + 1, &links), leaf);
	assert_int_equal(links, 0);
	/* A new map reads it all back from disk. */
	reopen(f, 64);
	assert_int_equal(make_path(f, lbn, &links), leaf);
	assert_int_equal(links, 0);
	assert_int_equal(get(f, lbn, leaf).pbn, 9000);
	assert_int_equal(get(f, lbn, leaf).state, VDO_MAPPING_UNCOMPRESSED);
	/* Out of range. */
	f->request = (struct vdo_map_request){ .lbn = f->super.layout.logical_blocks };
	assert_int_equal(run(f, VDO_MAP_LOOKUP), DD_OUT_OF_RANGE);
	free_fixture(f);
}

static void read_stats(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	vdo_get_map_zone_stats(f->map, 0, &f->stats);
	dd_finish_completion(completion, DD_SUCCESS);
}

enum {
	/* Leaves of one tree (every 60th leaf page), far more than a cache of 4 leaves holds. */
	EVICTED_LEAVES = 40,
};

/* The first logical block test_small_cache_evicts maps in its leaf @i (slot i of the leaf). */
static vdo_lbn_t evicted_lbn(unsigned int i)
{
	return (vdo_lbn_t) i * 60 * 812 + i;
}

/* The mapping test_small_cache_evicts puts at evicted_lbn(@i) + @round. */
static struct vdo_mapping evicted_mapping(unsigned int i, unsigned int round)
{
	return (struct vdo_mapping){ .pbn = 10000 + 1000 * round + i,
		                     .state = VDO_MAPPING_UNCOMPRESSED };
}

/* Read every mapping back: each leaf holds its first @rounds mappings and nothing after them. */
static void check_evicted_leaves(struct fixture *f, const vdo_pbn_t *leaves, unsigned int rounds)
{
	for (unsigned int i = 0; i < EVICTED_LEAVES; i++) {
		for (unsigned int round = 0; round <= rounds; round++) {
			struct vdo_mapping mapping = get(f, evicted_lbn(i) + round, leaves[i]);

			if (round == rounds) {
				assert_false(vdo_is_mapped(mapping));
				continue;
			}
			assert_int_equal(mapping.pbn, evicted_mapping(i, round).pbn);
			assert_int_equal(mapping.state, evicted_mapping(i, round).state);
		}
	}
}

static void test_small_cache_evicts(void **state)
{
	struct fixture *f = make_fixture(4);
	vdo_pbn_t leaves[EVICTED_LEAVES];
	struct vdo_map_cache_stats stats;
	unsigned int links;

	(void) state;
	/* The locks the second round takes must not share a counter with lock 1. */
	assert_true(f->super.layout.journal_blocks > 3 + 2 * EVICTED_LEAVES);
	/* Link in the leaves, each with one mapping: the pages are new, dirty under lock 1. */
	for (unsigned int i = 0; i < EVICTED_LEAVES; i++) {
		leaves[i] = make_path(f, evicted_lbn(i), &links);
		put(f, evicted_lbn(i), leaves[i], evicted_mapping(i, 0), 3 + i);
	}
	check_evicted_leaves(f, leaves, 1);
	/*
	 * A second mapping in every leaf: each page is read back from disk (it was written to be
	 * evicted), dirtied again under a lock of its own, and must be written again before it is
	 * evicted again, or its older copy on disk would lose the new mapping.
	 */
	for (unsigned int i = 0; i < EVICTED_LEAVES; i++)
		put(f, evicted_lbn(i) + 1, leaves[i], evicted_mapping(i, 1),
		    3 + EVICTED_LEAVES + i);
	/*
	 * Every lock a written page held was given back; the last leaf, still dirty in the cache,
	 * holds its own.
	 */
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	for (unsigned int i = 0; i < EVICTED_LEAVES - 4; i++)
		assert_false(vdo_is_journal_block_locked(f->locks, 3 + EVICTED_LEAVES + i));
	assert_true(vdo_is_journal_block_locked(f->locks, 3 + 2 * EVICTED_LEAVES - 1));
	/* Read every mapping back through the small cache, and again from a new map. */
	check_evicted_leaves(f, leaves, 2);
	assert_success(dd_perform_synchronous_action(f->threads, ZONE_THREAD, read_stats, f));
	stats = f->stats;
	assert_true(stats.leaf_pages <= 4);
	assert_true(stats.reads >= 2 * EVICTED_LEAVES);
	assert_true(stats.evictions >= 3 * EVICTED_LEAVES - 4);
	assert_true(stats.writes >= 2 * EVICTED_LEAVES - 4);
	reopen(f, 4);
	for (vdo_sequence_t lock = 1; lock < 3 + 2 * EVICTED_LEAVES; lock++)
		assert_false(vdo_is_journal_block_locked(f->locks, lock));
	for (unsigned int i = 0; i < EVICTED_LEAVES; i++) {
		assert_int_equal(make_path(f, evicted_lbn(i), &links), leaves[i]);
		assert_int_equal(links, 0);
	}
	check_evicted_leaves(f, leaves, 2);
	free_fixture(f);
}

static void test_damaged_page(void **state)
{
	struct fixture *f = make_fixture(64);
	struct vdo_mapping data = { .pbn = 9001, .state = VDO_MAPPING_UNCOMPRESSED };
	uint8_t junk[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	unsigned int links;
	vdo_pbn_t leaf = make_path(f, 5, &links);

	(void) state;
	put(f, 5, leaf, data, 1);
	reopen(f, 64);
	vdo_ram_device_poke(f->device, leaf * VDO_BLOCK_SIZE + 700, junk, sizeof(junk));
	f->request = (struct vdo_map_request){ .lbn = 5, .leaf_pbn = leaf };
	assert_int_equal(run(f, VDO_MAP_GET), DD_CORRUPT_DATA);
	assert_int_equal(f->failure, DD_CORRUPT_DATA);
	/* The map stays stopped. */
	f->request = (struct vdo_map_request){ .lbn = 6, .leaf_pbn = leaf };
	assert_int_equal(run(f, VDO_MAP_GET), DD_READ_ONLY);
	free_fixture(f);
}

static void test_mapping_outside_the_data(void **state)
{
	struct fixture *f = make_fixture(64);
	unsigned int links;
	vdo_pbn_t leaf = make_path(f, 77, &links);

	(void) state;
	put(f, 77, leaf, (struct vdo_mapping){ .pbn = 3, .state = VDO_MAPPING_UNCOMPRESSED }, 1);
	f->request = (struct vdo_map_request){ .lbn = 77, .leaf_pbn = leaf };
	assert_int_equal(run(f, VDO_MAP_GET), DD_CORRUPT_DATA);
	/* The zero block is fine. */
	put(f, 78, leaf, (struct vdo_mapping){ .pbn = 0, .state = VDO_MAPPING_UNCOMPRESSED }, 1);
	assert_true(vdo_is_zero_mapping(get(f, 78, leaf)));
	free_fixture(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths_and_mappings),
		cmocka_unit_test(test_small_cache_evicts),
		cmocka_unit_test(test_damaged_page),
		cmocka_unit_test(test_mapping_outside_the_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
