// SPDX-License-Identifier: GPL-2.0-only
/*
 * The write path (writes, zero writes and discards); see data-vio.h.
 *
 * Each step runs on the thread that owns what it touches and launches the next:
 *
 *   logical   walk the tree to the leaf; if a page on the way is missing, claim its slot
 *             (others wait for the page), allocate a block for it, journal it, increment it,
 *             link it in, and walk again
 *   physical  allocate a block for the data, trying each zone in turn (all full: ENOSPC);
 *             acknowledge; write the data
 *   logical   fetch the old mapping
 *   journal   journal the change; on commit (in journal order) launch the increment of the new
 *             block and the decrement of the old one to their slabs' threads
 *   physical  make the slab journal entries (and the count changes)
 *   logical   store the new mapping, give the journal lock back, let go of the logical block
 *
 * Zero blocks and discards allocate nothing: they map to the zero block or to nothing, and are
 * acknowledged once the leaf is known (a block with no leaf page is unmapped already, so there
 * is nothing to do). A FUA write is acknowledged on commit instead.
 */
#include <errno.h>
#include <string.h>

#include "data-vio.h"
#include "logger.h"

static void lookup_for_write(struct dd_completion *completion);

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
	data_vio->allocation = VDO_ZERO_BLOCK;
}

/* -------------------------------------------------------------------------------------------
 * The end: storing the mapping
 */

static void mapping_stored(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		fail(data_vio, completion->result);
		return;
	}
	release_journal_lock(data_vio);
	vdo_finish_data_vio(data_vio);
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
	struct vdo_slab *slab = vdo_depot_slab_of(
	    data_vio->store->depot,
	    request->increment ? data_vio->allocation : data_vio->old_mapping.pbn, &offset);

	dd_set_completion_callback(completion, update_done, slab->thread);
	/* Written and journaled: the block no longer needs its lock. */
	if (request->increment && (data_vio->pbn_lock != NULL)) {
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
		launch_update(data_vio, &data_vio->increment, data_vio->allocation, true);
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
	data_vio->new_mapping =
	    (struct vdo_mapping){ .pbn = pbn, .state = VDO_MAPPING_UNCOMPRESSED };
	acknowledge_early(data_vio);
	dd_set_completion_callback(&data_vio->completion, data_written,
	                           vdo_logical_thread(data_vio));
	vdo_submit_vio(data_vio->store->device, &data_vio->vio, &data_vio->completion,
	               VDO_IO_WRITE, 0, pbn, 1, data_vio->data);
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
