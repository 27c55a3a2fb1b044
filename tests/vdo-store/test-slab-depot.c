// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the slab depot on two physical zones: allocation until every data block is taken
 * (each block once, from the zone that owns it), giving allocations back, a clean save and load
 * that keep every count and free what was only provisional, growing the depot, and physical
 * block locks.
 */
#include <stdlib.h>
#include <string.h>

#include "block-device.h"
#include "errors.h"
#include "format.h"
#include "lock-counter.h"
#include "memory-alloc.h"
#include "slab-depot.h"
#include "test-harness.h"
#include "work-queue.h"

enum {
	SUMMARY_THREAD = 0,
	ZONES = 2,
	DEVICE_BLOCKS = 20000,
};

static const dd_thread_id_t zone_threads[ZONES] = { 1, 2 };
static const unsigned int lock_zones[ZONES] = { 0, 1 };

struct fixture {
	struct block_device *device;
	struct vdo_super_block super;
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_slab_depot *depot;
};

static void no_notify(void *context)
{
	(void) context;
}

static void load_depot(struct fixture *f)
{
	struct vdo_depot_config config = { .device = f->device,
		                           .layout = &f->super.layout,
		                           .nonce = f->super.nonce,
		                           .threads = f->threads,
		                           .summary_thread = SUMMARY_THREAD,
		                           .zone_count = ZONES,
		                           .zone_threads = zone_threads,
		                           .lock_zones = lock_zones,
		                           .locks = f->locks };

	assert_success(vdo_load_slab_depot(&config, &f->depot));
}

static struct fixture *make_fixture(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vdo_format_config format = { .slab_blocks = 1024, .slab_journal_blocks = 8 };
	struct dd_thread_set_config threads = dd_default_thread_set_config("depottest", 3);

	assert_success(vdo_make_ram_device(DEVICE_BLOCKS, &f->device));
	assert_success(vdo_format(f->device, &format, &f->super));
	assert_success(dd_make_thread_set(&threads, &f->threads));
	assert_success(vdo_make_lock_counter(f->super.layout.journal_blocks, ZONES, no_notify, NULL,
	                                     &f->locks));
	load_depot(f);
	return f;
}

static void free_fixture(struct fixture *f)
{
	vdo_free_slab_depot(f->depot);
	vdo_close_device(f->device);
	dd_free_thread_set(f->threads);
	vdo_free_lock_counter(f->locks);
	free(f);
}

/* Work done on a zone's thread. */
struct zone_work {
	struct fixture *fixture;
	unsigned int zone;
	vdo_pbn_t *pbns;
	uint64_t count;
	uint64_t limit;
	/* Increments: one per PBN, with its request. */
	struct vdo_slab_entry_request *requests;
	uint64_t remaining;
	struct dd_completion *action;
};

static void allocate_all(struct dd_completion *completion)
{
	struct zone_work *work = completion->parent;
	vdo_pbn_t pbn;

	while ((work->count < work->limit) &&
	       vdo_allocate_in_zone(work->fixture->depot, work->zone, &pbn))
		work->pbns[work->count++] = pbn;
	dd_finish_completion(completion, DD_SUCCESS);
}

static void release_all(struct dd_completion *completion)
{
	struct zone_work *work = completion->parent;

	for (uint64_t i = 0; i < work->count; i++) {
		uint32_t offset;
		struct vdo_slab *slab =
		    vdo_depot_slab_of(work->fixture->depot, work->pbns[i], &offset);

		if (slab->zone == work->zone)
			vdo_release_allocation(work->fixture->depot, work->pbns[i]);
	}
	dd_finish_completion(completion, DD_SUCCESS);
}

static void one_increment_done(struct zone_work *work)
{
	if (--work->remaining == 0)
		dd_finish_completion(work->action, DD_SUCCESS);
}

static void increment_done(struct dd_completion *completion)
{
	one_increment_done(completion->parent);
}

/* Make every PBN's provisional reference real, as a write's increment would. */
static void increment_all(struct dd_completion *completion)
{
	struct zone_work *work = completion->parent;
	struct fixture *f = work->fixture;

	work->action = completion;
	work->remaining = work->count + 1;
	for (uint64_t i = 0; i < work->count; i++) {
		struct vdo_slab_entry_request *request = &work->requests[i];
		uint32_t offset;
		struct vdo_slab *slab = vdo_depot_slab_of(f->depot, work->pbns[i], &offset);

		dd_initialize_completion(&request->completion, f->threads);
		dd_prepare_completion(&request->completion, increment_done, NULL,
		                      zone_threads[work->zone], work);
		request->offset = offset;
		request->increment = true;
		request->recovery_point = (struct vdo_journal_point){ .sequence = 1 };
		vdo_add_slab_entry(slab, request);
	}
	one_increment_done(work);
}

static void drain_zone(struct dd_completion *completion)
{
	struct zone_work *work = completion->parent;

	vdo_drain_depot_zone(work->fixture->depot, work->zone, completion);
}

static int on_zone(struct zone_work *work, dd_action_fn action)
{
	return dd_perform_synchronous_action(work->fixture->threads, zone_threads[work->zone],
	                                     action, work);
}

static void save_and_reload(struct fixture *f)
{
	for (unsigned int z = 0; z < ZONES; z++) {
		struct zone_work work = { .fixture = f, .zone = z };

		assert_success(on_zone(&work, drain_zone));
	}
	assert_success(vdo_save_depot_summary(f->depot));
	vdo_free_slab_depot(f->depot);
	load_depot(f);
}

static int compare_pbns(const void *a, const void *b)
{
	vdo_pbn_t x = *(const vdo_pbn_t *) a;
	vdo_pbn_t y = *(const vdo_pbn_t *) b;

	return (x > y) - (x < y);
}

/* One count change or lock operation on block @pbn, on its zone's thread. */
struct block_work {
	struct fixture *fixture;
	vdo_pbn_t pbn;
	bool increment;
	struct vdo_slab_entry_request request;
	struct dd_completion *action;
	struct vdo_pbn_lock *lock;
	int result;
	uint8_t count;
};

static void count_changed(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;

	dd_finish_completion(work->action, completion->result);
}

static void change_count(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(work->fixture->depot, work->pbn, &offset);

	work->action = completion;
	dd_initialize_completion(&work->request.completion, work->fixture->threads);
	dd_prepare_completion(&work->request.completion, count_changed, NULL, slab->thread, work);
	work->request.offset = offset;
	work->request.increment = work->increment;
	work->request.recovery_point = (struct vdo_journal_point){ .sequence = 1 };
	vdo_add_slab_entry(slab, &work->request);
}

static void read_count(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(work->fixture->depot, work->pbn, &offset);

	work->count = vdo_get_ref_count(slab->counts, offset);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void write_lock(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;

	work->result = vdo_write_lock_pbn(work->fixture->depot, work->pbn, &work->lock);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void read_lock(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;

	work->lock = vdo_read_lock_pbn(work->fixture->depot, work->pbn);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void unlock(struct dd_completion *completion)
{
	struct block_work *work = completion->parent;

	vdo_unlock_pbn(work->fixture->depot, work->lock);
	dd_finish_completion(completion, DD_SUCCESS);
}

static int on_block(struct block_work *work, dd_action_fn action)
{
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(work->fixture->depot, work->pbn, &offset);

	return dd_perform_synchronous_action(work->fixture->threads, slab->thread, action, work);
}

static uint8_t count_of(struct fixture *f, vdo_pbn_t pbn)
{
	struct block_work work = { .fixture = f, .pbn = pbn };

	assert_success(on_block(&work, read_count));
	return work.count;
}

static void change(struct fixture *f, vdo_pbn_t pbn, bool increment)
{
	struct block_work work = { .fixture = f, .pbn = pbn, .increment = increment };

	assert_success(on_block(&work, change_count));
}

static struct vdo_pbn_lock *lock_for_reading(struct fixture *f, vdo_pbn_t pbn)
{
	struct block_work work = { .fixture = f, .pbn = pbn };

	assert_success(on_block(&work, read_lock));
	return work.lock;
}

static void let_go(struct fixture *f, struct vdo_pbn_lock *lock)
{
	struct block_work work = { .fixture = f, .pbn = lock->pbn, .lock = lock };

	assert_success(on_block(&work, unlock));
}

/*
 * Physical block locks: a block being written cannot be read-locked (nor write-locked twice);
 * read locks are shared and carry the block's increment limit; a free, provisional or full
 * block cannot be shared; and a read-locked block whose last mapping goes away stays
 * provisional until an increment lands or the last reader lets go.
 */
static void test_physical_block_locks(void **state)
{
	struct fixture *f = make_fixture();
	vdo_pbn_t pbns[4];
	struct zone_work allocation = { .fixture = f, .zone = 0, .pbns = pbns, .limit = 4 };
	struct block_work writing = { .fixture = f };
	struct vdo_pbn_lock *lock;
	struct vdo_pbn_lock *again;

	(void) state;
	assert_success(on_zone(&allocation, allocate_all));
	assert_int_equal(allocation.count, 4);
	/* pbns[0]: being written. */
	writing.pbn = pbns[0];
	assert_success(on_block(&writing, write_lock));
	assert_success(writing.result);
	assert_int_equal(writing.lock->type, VDO_PBN_WRITE_LOCK);
	assert_null(lock_for_reading(f, pbns[0]));
	assert_success(on_block(&writing, write_lock));
	assert_int_equal(writing.result, DD_BAD_STATE);
	/* pbns[1]: provisional, nothing to share yet. */
	assert_null(lock_for_reading(f, pbns[1]));
	/* pbns[2]: one mapping; readers share one lock and may add 253 more. */
	change(f, pbns[2], true);
	lock = lock_for_reading(f, pbns[2]);
	assert_non_null(lock);
	assert_int_equal(lock->type, VDO_PBN_READ_LOCK);
	assert_int_equal(lock->increment_limit, VDO_MAX_REFERENCES - 1);
	again = lock_for_reading(f, pbns[2]);
	assert_ptr_equal(again, lock);
	assert_int_equal(lock->holders, 2);
	for (unsigned int i = 0; i < VDO_MAX_REFERENCES - 1; i++)
		assert_true(vdo_claim_pbn_increment(lock));
	assert_false(vdo_claim_pbn_increment(lock));
	/* Its last mapping goes while it is read-locked: it stays, provisionally. */
	change(f, pbns[2], false);
	assert_true(lock->has_provisional_reference);
	assert_int_equal(count_of(f, pbns[2]), VDO_PROVISIONAL_REFERENCE);
	let_go(f, lock);
	assert_int_equal(count_of(f, pbns[2]), VDO_PROVISIONAL_REFERENCE);
	/* The last reader gives back what nobody took. */
	let_go(f, lock);
	assert_int_equal(count_of(f, pbns[2]), VDO_EMPTY_REFERENCE);
	assert_null(lock_for_reading(f, pbns[2]));
	/* pbns[3]: the same race, but the reader's increment lands: the block keeps it. */
	change(f, pbns[3], true);
	lock = lock_for_reading(f, pbns[3]);
	assert_non_null(lock);
	change(f, pbns[3], false);
	assert_int_equal(count_of(f, pbns[3]), VDO_PROVISIONAL_REFERENCE);
	change(f, pbns[3], true);
	assert_int_equal(count_of(f, pbns[3]), 1);
	let_go(f, lock);
	assert_int_equal(count_of(f, pbns[3]), 1);
	let_go(f, writing.lock);
	free_fixture(f);
}

static void test_allocate_everything(void **state)
{
	struct fixture *f = make_fixture();
	uint64_t data_blocks = vdo_data_blocks(&f->super.layout);
	vdo_pbn_t *all = calloc(data_blocks + 1, sizeof(*all));
	uint64_t total = 0;

	(void) state;
	assert_int_equal(vdo_depot_free_blocks(f->depot), data_blocks);
	for (unsigned int z = 0; z < ZONES; z++) {
		struct zone_work work = { .fixture = f,
			                  .zone = z,
			                  .pbns = all + total,
			                  .limit = data_blocks + 1 - total };

		assert_success(on_zone(&work, allocate_all));
		/* Every block comes from a slab of the zone. */
		for (uint64_t i = 0; i < work.count; i++) {
			uint32_t offset;
			struct vdo_slab *slab = vdo_depot_slab_of(f->depot, work.pbns[i], &offset);

			assert_non_null(slab);
			assert_int_equal(slab->zone, z);
		}
		assert_true(work.count > data_blocks / 3);
		total += work.count;
	}
	assert_int_equal(total, data_blocks);
	qsort(all, total, sizeof(*all), compare_pbns);
	for (uint64_t i = 1; i < total; i++)
		assert_true(all[i] > all[i - 1]);
	/* Given back, they can be taken again. */
	for (unsigned int z = 0; z < ZONES; z++) {
		struct zone_work work = { .fixture = f, .zone = z, .pbns = all, .count = total };
		struct zone_work again = { .fixture = f, .zone = z, .pbns = all, .limit = total };

		if (z == 1) {
			assert_success(on_zone(&work, release_all));
			assert_success(on_zone(&again, allocate_all));
			assert_true(again.count > 0);
		}
	}
	assert_null(vdo_depot_slab_of(f->depot, 0, &(uint32_t){ 0 }));
	assert_null(vdo_depot_slab_of(
	    f->depot, f->super.layout.depot_origin + f->super.layout.slab_data_blocks,
	    &(uint32_t){ 0 }));
	free(all);
	free_fixture(f);
}

static void test_save_and_load(void **state)
{
	enum {
		USED = 3000,
		PROVISIONAL = 50
	};
	struct fixture *f = make_fixture();
	uint64_t data_blocks = vdo_data_blocks(&f->super.layout);
	struct zone_work works[ZONES];

	(void) state;
	for (unsigned int z = 0; z < ZONES; z++) {
		works[z] =
		    (struct zone_work){ .fixture = f,
			                .zone = z,
			                .pbns = calloc(USED + PROVISIONAL, sizeof(vdo_pbn_t)),
			                .limit = USED };
		works[z].requests = calloc(USED, sizeof(*works[z].requests));
		assert_success(on_zone(&works[z], allocate_all));
		assert_success(on_zone(&works[z], increment_all));
		/* Some allocations stay provisional: they are free after the load. */
		works[z].limit = USED + PROVISIONAL;
		assert_success(on_zone(&works[z], allocate_all));
	}
	save_and_reload(f);
	assert_int_equal(vdo_depot_free_blocks(f->depot), data_blocks - ZONES * USED);
	for (unsigned int z = 0; z < ZONES; z++) {
		for (uint64_t i = 0; i < USED + PROVISIONAL; i++) {
			uint32_t offset;
			struct vdo_slab *slab =
			    vdo_depot_slab_of(f->depot, works[z].pbns[i], &offset);

			assert_int_equal(vdo_get_ref_count(slab->counts, offset),
			                 (i < USED) ? 1 : 0);
		}
		free(works[z].pbns);
		free(works[z].requests);
	}
	for (uint32_t s = 0; s < vdo_depot_slab_count(f->depot); s++)
		assert_false(vdo_depot_slab(f->depot, s)->summary_dirty);
	free_fixture(f);
}

static void test_grow(void **state)
{
	struct fixture *f = make_fixture();
	uint64_t before = vdo_depot_free_blocks(f->depot);
	struct vdo_layout grown;

	(void) state;
	assert_success(vdo_ram_device_grow(f->device, 2 * DEVICE_BLOCKS));
	assert_success(vdo_refresh_device_size(f->device));
	assert_success(vdo_grow_layout(&f->super.layout, 2 * DEVICE_BLOCKS, &grown));
	assert_success(vdo_grow_slab_depot(f->depot, &grown));
	assert_true(vdo_depot_free_blocks(f->depot) >= before + 19 * grown.slab_data_blocks);
	assert_int_equal(vdo_depot_slab_count(f->depot), grown.slab_count);
	f->super.layout = grown;
	/* The new slabs are used and survive a save. */
	for (unsigned int z = 0; z < ZONES; z++) {
		struct zone_work work = { .fixture = f, .zone = z, .limit = UINT64_MAX };

		work.pbns = calloc(vdo_data_blocks(&grown), sizeof(vdo_pbn_t));
		assert_success(on_zone(&work, allocate_all));
		assert_int_equal(vdo_zone_free_blocks(f->depot, z), 0);
		free(work.pbns);
	}
	save_and_reload(f);
	assert_int_equal(vdo_depot_free_blocks(f->depot), vdo_data_blocks(&grown));
	free_fixture(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allocate_everything),
		cmocka_unit_test(test_save_and_load),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_physical_block_locks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
