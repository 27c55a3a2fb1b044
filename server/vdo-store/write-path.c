// SPDX-License-Identifier: GPL-2.0-only
/*
 * The write path (writes, zero writes and discards); see data-vio.h.
 *
 * Each step runs on the thread that owns what it touches and launches the next:
 *
 *   logical   walk the tree to the leaf; if a page on the way is missing, claim its slot
 *             (others wait for the page), allocate a block for it, journal it, increment it,
 *             link it in, and walk again
 *   physical  allocate a block for the data, trying each zone in turn (all full: ENOSPC, or
 *             with dedupe, go on without a block: a duplicate may still be found);
 *             acknowledge; without dedupe, write the data
 *   cpu       with dedupe: name the data (its record name chooses its hash zone)
 *   hash      join the hash lock of the name, which decides (dedupe.h): share a block that
 *             holds the data, or write the data to the allocation (as the lock's agent, or
 *             plainly); the new mapping is the block shared or written
 *   logical   fetch the old mapping
 *   journal   journal the change; on commit (in journal order) launch the increment of the new
 *             block and the decrement of the old one to their slabs' threads
 *   physical  make the slab journal entries (and the count changes)
 *   logical   store the new mapping, give the journal lock back; then let go of the hash lock
 *             (hash zone) and give back an allocation the data did not use (physical), and let
 *             go of the logical block
 *
 * Zero blocks and discards allocate nothing: they map to the zero block or to nothing, and are
 * acknowledged once the leaf is known (a block with no leaf page is unmapped already, so there
 * is nothing to do). A FUA write is acknowledged on commit instead.
 */
#include <errno.h>
#include <string.h>

#include "data-vio.h"
#include "dedupe.h"
#include "logger.h"

static void lookup_for_write(struct dd_completion *completion);
static dd_thread_id_t zone_thread_of_hash(const struct data_vio *data_vio);
static void launch_hashing(struct data_vio *data_vio);

static struct vdo_threads *threads_of(struct data_vio *data_vio)
{
	return &data_vio->store->thread_ids;
}

static void fail(struct data_vio *data_vio, int result)
{
	vdo_fail_data_vio(data_vio, result);
}

/* Acknowledge now, unless the write must wait to be durable. */
static void acknowledge_early(struct data_vio *data_vio)
{
	if (!data_vio->fua)
		vdo_acknowledge(data_vio);
}

/* The change is in place: the journal block no longer needs this data_vio's lock. */
static void release_journal_lock(struct data_vio *data_vio)
{
	vdo_release_journal_lock(data_vio->store->locks, data_vio->journal.point.sequence);
	data_vio->holds_journal_lock = false;
}

/* The block the data_vio's increment goes to: its new mapping's, or a new tree page's. */
static vdo_pbn_t increment_target(const struct data_vio *data_vio)
{
	return data_vio->allocating_tree_page ? data_vio->allocation : data_vio->new_mapping.pbn;
}

/* -------------------------------------------------------------------------------------------
 * The end: storing the mapping
 */

static void wind_up(struct dd_completion *completion);

/* The hash zone: let go of the hash lock, then wind up the rest. */
static void leave_hash_lock(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	vdo_release_hash_lock(data_vio, wind_up, zone_thread_of_hash(data_vio));
}

/* The allocation's zone: the data went to another block; give the allocation back. */
static void give_back_allocation(struct dd_completion *completion)
{
	vdo_give_back_allocation(completion->parent);
	wind_up(completion);
}

static void finish_write(struct dd_completion *completion)
{
	vdo_finish_data_vio(completion->parent);
}

/* The mapping is stored: let go of the hash lock and of an unused allocation, then finish. */
static void wind_up(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	uint32_t offset;

	if (data_vio->hash_lock != NULL) {
		vdo_launch_on(data_vio, leave_hash_lock, zone_thread_of_hash(data_vio));
		return;
	}
	if (data_vio->allocation != VDO_ZERO_BLOCK) {
		vdo_launch_on(
		    data_vio, give_back_allocation,
		    vdo_depot_slab_of(data_vio->store->depot, data_vio->allocation, &offset)
		        ->thread);
		return;
	}
	vdo_launch_on(data_vio, finish_write, vdo_logical_thread(data_vio));
}

static void mapping_stored(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	release_journal_lock(data_vio);
	/* An allocation the data went to is the mapping's now. */
	if (data_vio->allocation == data_vio->new_mapping.pbn)
		data_vio->allocation = VDO_ZERO_BLOCK;
	wind_up(completion);
}

static void store_mapping(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	dd_prepare_completion(&data_vio->map.completion, mapping_stored, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	data_vio->map.leaf_pbn = data_vio->leaf_pbn;
	data_vio->map.mapping = data_vio->new_mapping;
	data_vio->map.lock = data_vio->journal.point.sequence;
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_PUT);
}

/* A linked tree page: let its waiters walk again, and walk again ourselves. */
static void page_linked(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct logical_zone *zone = &data_vio->store->logical[data_vio->logical_zone];
	struct vdo_zone_lock *next;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	release_journal_lock(data_vio);
	data_vio->allocation = VDO_ZERO_BLOCK;
	data_vio->allocating_tree_page = false;
	data_vio->holds_slot_lock = false;
	next = vdo_release_zone_key(&zone->slot_locks, &data_vio->slot_lock);
	while (next != NULL) {
		/* Every waiter walks again; none keeps the slot. */
		struct data_vio *waiter =
		    (struct data_vio *) ((char *) next - offsetof(struct data_vio, slot_lock));

		next = vdo_release_zone_key(&zone->slot_locks, next);
		dd_launch_completion(&waiter->completion);
	}
	dd_reset_completion(&data_vio->completion);
	lookup_for_write(&data_vio->completion);
}

static void link_page(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	dd_prepare_completion(&data_vio->map.completion, page_linked, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	data_vio->map.new_page = data_vio->allocation;
	data_vio->map.lock = data_vio->journal.point.sequence;
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_LINK);
}

/* -------------------------------------------------------------------------------------------
 * Reference changes
 */

static void update_done(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS)
		data_vio->result = completion->result;
	if (atomic_fetch_sub(&data_vio->updates_left, 1) != 1)
		return;
	if (data_vio->result != DD_SUCCESS) {
		fail(data_vio, data_vio->result);
		return;
	}
	vdo_launch_on(data_vio, data_vio->allocating_tree_page ? link_page : store_mapping,
	              vdo_logical_thread(data_vio));
}

static void add_slab_entry(struct dd_completion *completion)
{
	struct vdo_slab_entry_request *request = (struct vdo_slab_entry_request *) completion;
	struct data_vio *data_vio = completion->parent;
	uint32_t offset;
	vdo_pbn_t target =
	    request->increment ? increment_target(data_vio) : data_vio->old_mapping.pbn;
	struct vdo_slab *slab = vdo_depot_slab_of(data_vio->store->depot, target, &offset);

	dd_set_completion_callback(completion, update_done, slab->thread);
	/* Its own block written and journaled: it no longer needs its lock. */
	if (request->increment && (target == data_vio->allocation) &&
	    (data_vio->pbn_lock != NULL)) {
		vdo_unlock_pbn(data_vio->store->depot, data_vio->pbn_lock);
		data_vio->pbn_lock = NULL;
	}
	vdo_add_slab_entry(slab, request);
}

/* Journal thread: send one reference change of @pbn to its slab's thread. */
static void launch_update(struct data_vio *data_vio, struct vdo_slab_entry_request *request,
                          vdo_pbn_t pbn, bool increment)
{
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(data_vio->store->depot, pbn, &offset);

	request->offset = offset;
	request->increment = increment;
	request->recovery_point = (struct vdo_journal_point){
		.sequence = data_vio->journal.point.sequence,
		.entry = (uint16_t) (2 * data_vio->journal.point.entry + (increment ? 0 : 1)),
	};
	dd_initialize_completion(&request->completion, data_vio->store->threads);
	dd_prepare_completion(&request->completion, add_slab_entry, NULL, slab->thread, data_vio);
	dd_launch_completion(&request->completion);
}

/* Journal thread, in journal order: the entry is durable. */
static void committed(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	bool increment;
	bool decrement;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	data_vio->holds_journal_lock = true;
	if (!data_vio->allocating_tree_page) {
		data_vio->committed = true;
		vdo_write_committed(data_vio);
		vdo_acknowledge(data_vio);
	}
	increment =
	    data_vio->allocating_tree_page || vdo_mapping_uses_storage(data_vio->new_mapping);
	decrement =
	    !data_vio->allocating_tree_page && vdo_mapping_uses_storage(data_vio->old_mapping);
	atomic_store(&data_vio->updates_left, 1 + increment + decrement);
	if (increment)
		launch_update(data_vio, &data_vio->increment, increment_target(data_vio), true);
	if (decrement)
		launch_update(data_vio, &data_vio->decrement, data_vio->old_mapping.pbn, false);
	update_done(&data_vio->completion);
}

static void journal_change(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_journal_request *journal = &data_vio->journal;

	if (data_vio->allocating_tree_page) {
		journal->entry = (struct vdo_journal_entry){
			.operation = VDO_JOURNAL_BLOCK_MAP_REMAPPING,
			.slot = data_vio->map.missing_slot,
			.new_mapping = { .pbn = data_vio->allocation,
			                 .state = VDO_MAPPING_UNCOMPRESSED },
		};
	} else {
		journal->entry = (struct vdo_journal_entry){
			.operation = VDO_JOURNAL_DATA_REMAPPING,
			.slot = { .pbn = data_vio->leaf_pbn,
			          .slot = vdo_map_slot_of(data_vio->lbn) },
			.new_mapping = data_vio->new_mapping,
			.old_mapping = data_vio->old_mapping,
		};
	}
	dd_initialize_completion(&journal->completion, data_vio->store->threads);
	dd_prepare_completion(&journal->completion, committed, NULL, threads_of(data_vio)->journal,
	                      data_vio);
	vdo_add_journal_entry(data_vio->store->journal, journal);
}

/* -------------------------------------------------------------------------------------------
 * The old mapping
 */

static void got_old_mapping(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_mapping old = data_vio->map.mapping;
	struct vdo_mapping new = data_vio->new_mapping;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	data_vio->old_mapping = old;
	/* Zeros over zeros, or a discard of nothing: nothing changes. */
	if (!vdo_mapping_uses_storage(new) && (old.pbn == new.pbn) && (old.state == new.state)) {
		vdo_finish_data_vio(data_vio);
		return;
	}
	vdo_launch_on(data_vio, journal_change, threads_of(data_vio)->journal);
}

static void get_old_mapping(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	dd_prepare_completion(&data_vio->map.completion, got_old_mapping, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	data_vio->map.leaf_pbn = data_vio->leaf_pbn;
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_GET);
}

/* -------------------------------------------------------------------------------------------
 * Allocation and the data write
 */

/* The logical zone's thread: the data is on its block (or the write failed). */
static void data_written(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		/* The write may have been acknowledged: its data is lost. */
		if (atomic_load(&data_vio->acknowledged))
			vdo_enter_read_only(data_vio->store, completion->result);
		fail(data_vio, completion->result);
		return;
	}
	get_old_mapping(completion);
}

static void allocated(struct data_vio *data_vio, vdo_pbn_t pbn)
{
	/* A block just allocated is never locked: nobody else knows it. */
	int result = vdo_write_lock_pbn(data_vio->store->depot, pbn, &data_vio->pbn_lock);

	data_vio->allocation = pbn;
	if (result != DD_SUCCESS) {
		vdo_fail_data_vio(data_vio, result);
		return;
	}
	if (data_vio->allocating_tree_page) {
		vdo_launch_on(data_vio, journal_change, threads_of(data_vio)->journal);
		return;
	}
	acknowledge_early(data_vio);
	if (data_vio->store->hash_zones != NULL) {
		launch_hashing(data_vio);
		return;
	}
	vdo_write_data_plainly(data_vio);
}

static void try_allocate(struct dd_completion *completion);

/* A zone's thread: wait for a slab of the zone to come back from recovery, then try again. */
static void wait_for_slab(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_store *store = data_vio->store;

	data_vio->allocation_zone = data_vio->recovering_zone;
	data_vio->zones_tried = 0;
	data_vio->recovering_zone = vdo_depot_zone_count(store->depot);
	dd_set_completion_callback(completion, try_allocate,
	                           vdo_depot_zone_thread(store->depot, data_vio->allocation_zone));
	data_vio->slab_waiter.completion = completion;
	vdo_wait_for_recovered_slab(store->depot, data_vio->allocation_zone,
	                            &data_vio->slab_waiter);
}

static void try_allocate(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_store *store = data_vio->store;
	unsigned int zones = vdo_depot_zone_count(store->depot);
	vdo_pbn_t pbn;

	if (vdo_allocate_in_zone(store->depot, data_vio->allocation_zone, &pbn)) {
		allocated(data_vio, pbn);
		return;
	}
	if ((data_vio->recovering_zone == zones) &&
	    vdo_zone_is_recovering(store->depot, data_vio->allocation_zone))
		data_vio->recovering_zone = data_vio->allocation_zone;
	if (++data_vio->zones_tried == zones) {
		if (data_vio->recovering_zone < zones) {
			/* Not out of space yet: some slabs are still being recovered. */
			vdo_launch_on(
			    data_vio, wait_for_slab,
			    vdo_depot_zone_thread(store->depot, data_vio->recovering_zone));
			return;
		}
		if ((store->hash_zones != NULL) && !data_vio->allocating_tree_page) {
			/* The data may still have a duplicate; acknowledged only if it does. */
			launch_hashing(data_vio);
			return;
		}
		fail(data_vio, ENOSPC);
		return;
	}
	data_vio->allocation_zone = (data_vio->allocation_zone + 1) % zones;
	vdo_launch_on(data_vio, try_allocate,
	              vdo_depot_zone_thread(store->depot, data_vio->allocation_zone));
}

static void allocate(struct data_vio *data_vio)
{
	struct vdo_store *store = data_vio->store;
	unsigned int zones = vdo_depot_zone_count(store->depot);

	data_vio->zones_tried = 0;
	data_vio->recovering_zone = zones;
	data_vio->allocation_zone = atomic_fetch_add(&store->next_zone, 1) % zones;
	vdo_launch_on(data_vio, try_allocate,
	              vdo_depot_zone_thread(store->depot, data_vio->allocation_zone));
}

/* -------------------------------------------------------------------------------------------
 * Dedupe: naming the data, and what the hash lock decides
 */

static dd_thread_id_t zone_thread_of_hash(const struct data_vio *data_vio)
{
	return vdo_hash_zone_thread(data_vio->store->hash_zones, data_vio->hash_zone);
}

/* A CPU thread: name the data, then join its hash lock. */
static void name_data(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	vdo_name_data_vio(data_vio->store->hash_zones, data_vio);
	vdo_launch_on(data_vio, vdo_acquire_hash_lock, zone_thread_of_hash(data_vio));
}

static void launch_hashing(struct data_vio *data_vio)
{
	struct vdo_threads *threads = threads_of(data_vio);

	vdo_launch_on(data_vio, name_data, threads->cpu[data_vio->lbn % threads->cpu_count]);
}

/* Write the data to the data_vio's allocation, then run @done on @thread. */
static void write_data(struct data_vio *data_vio, dd_action_fn done, dd_thread_id_t thread)
{
	data_vio->new_mapping =
	    (struct vdo_mapping){ .pbn = data_vio->allocation, .state = VDO_MAPPING_UNCOMPRESSED };
	dd_set_completion_callback(&data_vio->completion, done, thread);
	vdo_submit_vio(data_vio->store->device, &data_vio->vio, &data_vio->completion, VDO_IO_WRITE,
	               0, data_vio->allocation, 1, data_vio->data);
}

void vdo_write_data_for_lock(struct data_vio *data_vio)
{
	uint32_t offset;
	struct vdo_slab *slab =
	    vdo_depot_slab_of(data_vio->store->depot, data_vio->allocation, &offset);

	write_data(data_vio, vdo_hash_lock_data_written, slab->thread);
}

void vdo_write_data_plainly(struct data_vio *data_vio)
{
	if (data_vio->allocation == VDO_ZERO_BLOCK) {
		fail(data_vio, ENOSPC);
		return;
	}
	write_data(data_vio, data_written, vdo_logical_thread(data_vio));
}

void vdo_continue_write_with_mapping(struct data_vio *data_vio)
{
	vdo_launch_on(data_vio, get_old_mapping, vdo_logical_thread(data_vio));
}

/* -------------------------------------------------------------------------------------------
 * The tree
 */

/* A page on the way is missing: claim its slot and make it, or wait for whoever does. */
static void fill_missing_page(struct data_vio *data_vio)
{
	struct logical_zone *zone = &data_vio->store->logical[data_vio->logical_zone];
	uint64_t key = (data_vio->map.missing_slot.pbn << 10) | data_vio->map.missing_slot.slot;

	/* Waiters walk again once the page is linked. */
	dd_set_completion_callback(&data_vio->completion, lookup_for_write, zone->thread);
	if (!vdo_acquire_zone_key(&zone->slot_locks, &data_vio->slot_lock, key))
		return;
	data_vio->holds_slot_lock = true;
	data_vio->allocating_tree_page = true;
	allocate(data_vio);
}

static void looked_up_for_write(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	data_vio->leaf_pbn = data_vio->map.leaf_pbn;
	if (data_vio->is_zero || data_vio->is_discard) {
		data_vio->new_mapping =
		    data_vio->is_discard
		        ? (struct vdo_mapping){ .state = VDO_MAPPING_UNMAPPED }
		        : (struct vdo_mapping){ .pbn = VDO_ZERO_BLOCK,
			                        .state = VDO_MAPPING_UNCOMPRESSED };
		if (data_vio->is_zero)
			atomic_fetch_add_explicit(&data_vio->store->zero_writes, 1,
			                          memory_order_relaxed);
		/* No leaf: the block is unmapped, which reads as zeros already. */
		if (data_vio->leaf_pbn == 0) {
			vdo_finish_data_vio(data_vio);
			return;
		}
		acknowledge_early(data_vio);
		get_old_mapping(&data_vio->completion);
		return;
	}
	if (data_vio->leaf_pbn == 0) {
		fill_missing_page(data_vio);
		return;
	}
	allocate(data_vio);
}

static void lookup_for_write(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	dd_initialize_completion(&data_vio->map.completion, data_vio->store->threads);
	dd_prepare_completion(&data_vio->map.completion, looked_up_for_write, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	data_vio->map.lbn = data_vio->lbn;
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_LOOKUP);
}

/* -------------------------------------------------------------------------------------------
 * The start
 */

void vdo_continue_partial_write(struct data_vio *data_vio)
{
	if (data_vio->is_discard)
		memset(data_vio->data + data_vio->offset_in_block, 0, data_vio->length);
	else
		memcpy(data_vio->data + data_vio->offset_in_block, data_vio->request_data,
		       data_vio->length);
	/* Now a whole-block write of the merged block. */
	data_vio->length = VDO_BLOCK_SIZE;
	data_vio->offset_in_block = 0;
	data_vio->is_discard = false;
	data_vio->is_zero = vdo_block_is_zero(data_vio->data);
	lookup_for_write(&data_vio->completion);
}

void vdo_start_write(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_store *store = data_vio->store;

	if (atomic_load(&store->read_only)) {
		fail(data_vio, DD_READ_ONLY);
		return;
	}
	if (data_vio->is_discard)
		atomic_fetch_add_explicit(&store->discards, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&store->writes, 1, memory_order_relaxed);
	if (data_vio->length < VDO_BLOCK_SIZE) {
		if (!data_vio->is_discard)
			atomic_fetch_add_explicit(&store->partial_writes, 1, memory_order_relaxed);
		vdo_start_read(completion);
		return;
	}
	lookup_for_write(completion);
}
