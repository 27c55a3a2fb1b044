// SPDX-License-Identifier: GPL-2.0-only
/*
 * The slab depot; see slab-depot.h.
 */
#include "slab-depot.h"

#include <stdatomic.h>
#include <string.h>

#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"

struct depot_zone {
	unsigned int index;
	dd_thread_id_t thread;
	unsigned int lock_zone;
	/* The numbers of the zone's slabs, and which one it allocates from. */
	uint32_t *slabs;
	uint32_t count;
	uint32_t open;
	/* Draining: slabs left, and who waits. */
	uint32_t draining;
	struct dd_completion *drain_waiter;
	int drain_result;
	/* Blocks being written, and blocks whose advice is being verified or shared. */
	struct vdo_pbn_lock_pool *pbn_locks;
	/* Slabs still left for recovery, and allocations waiting for one to come back. */
	uint32_t recovering;
	struct vdo_slab_waiter *waiters;
};

struct vdo_slab_depot {
	struct vdo_layout layout;
	struct vdo_slab_context context;
	uint32_t slab_count;
	struct vdo_slab **slabs;
	/* One per slab, for its drain to report to its zone. */
	struct dd_completion *drained;
	unsigned int zone_count;
	struct depot_zone *zones;
	uint64_t free_blocks;
	atomic_uint recovering;
};

static void free_zones(struct vdo_slab_depot *depot)
{
	if (depot->zones == NULL)
		return;
	for (unsigned int z = 0; z < depot->zone_count; z++) {
		dd_free(depot->zones[z].slabs);
		vdo_free_pbn_lock_pool(depot->zones[z].pbn_locks);
	}
	dd_free(depot->zones);
}

void vdo_free_slab_depot(struct vdo_slab_depot *depot)
{
	if (depot == NULL)
		return;
	for (uint32_t s = 0; s < depot->slab_count; s++)
		vdo_free_slab(depot->slabs[s]);
	dd_free(depot->slabs);
	dd_free(depot->drained);
	free_zones(depot);
	vdo_free_slab_summary(depot->context.summary);
	dd_free(depot);
}

/* Deal slabs [0, slab_count) to the zones again, and size the per-slab arrays. */
static int deal_slabs(struct vdo_slab_depot *depot, uint32_t slab_count)
{
	struct vdo_slab **slabs;
	struct dd_completion *drained;
	int result = DD_ALLOCATE(slab_count, struct vdo_slab *, "slabs", &slabs);

	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE(slab_count, struct dd_completion, "slab drains", &drained);
	if (result != DD_SUCCESS) {
		dd_free(slabs);
		return result;
	}
	for (unsigned int z = 0; (result == DD_SUCCESS) && (z < depot->zone_count); z++) {
		struct depot_zone *zone = &depot->zones[z];
		uint32_t *numbers;

		result = DD_ALLOCATE(slab_count / depot->zone_count + 1, uint32_t, "zone slabs",
		                     &numbers);
		if (result != DD_SUCCESS)
			break;
		dd_free(zone->slabs);
		zone->slabs = numbers;
		zone->count = 0;
		for (uint32_t s = z; s < slab_count; s += depot->zone_count)
			zone->slabs[zone->count++] = s;
	}
	if (result != DD_SUCCESS) {
		dd_free(slabs);
		dd_free(drained);
		return result;
	}
	if (depot->slabs != NULL)
		memcpy(slabs, depot->slabs, depot->slab_count * sizeof(*slabs));
	for (uint32_t s = 0; s < slab_count; s++)
		dd_initialize_completion(&drained[s], depot->context.threads);
	dd_free(depot->slabs);
	dd_free(depot->drained);
	depot->slabs = slabs;
	depot->drained = drained;
	return DD_SUCCESS;
}

/* Leave @slab for recovery: it is not loaded, and counts as about as free as the summary says. */
static void leave_for_recovery(struct vdo_slab_depot *depot, struct vdo_slab *slab)
{
	struct vdo_summary_entry entry =
	    vdo_get_summary_entry_of(depot->context.summary, slab->number);
	uint32_t total = depot->layout.slab_data_blocks;

	slab->recovering = true;
	slab->free_estimate = total - (uint32_t) ((uint64_t) entry.fullness_hint * total / 255);
	depot->zones[slab->zone].recovering++;
	atomic_fetch_add(&depot->recovering, 1);
}

/* Whether a crash left @slab for recovery. */
static bool needs_recovery(const struct vdo_slab_depot *depot, const bool *touched, uint32_t slab)
{
	return (touched != NULL) &&
	       (touched[slab] || vdo_get_summary_entry_of(depot->context.summary, slab).dirty);
}

/* Make and load (or reset, or leave for recovery) slabs [first, last). */
static int load_slabs(struct vdo_slab_depot *depot, uint32_t first, uint32_t last, bool reset,
                      const bool *touched)
{
	for (uint32_t s = first; s < last; s++) {
		struct depot_zone *zone = &depot->zones[s % depot->zone_count];
		int result = vdo_make_slab(&depot->context, s, zone->index, zone->thread,
		                           zone->lock_zone, &depot->slabs[s]);

		if (result != DD_SUCCESS)
			return result;
		depot->slabs[s]->pbn_locks = zone->pbn_locks;
		depot->slab_count = s + 1;
		if (needs_recovery(depot, touched, s)) {
			leave_for_recovery(depot, depot->slabs[s]);
			continue;
		}
		result = reset ? vdo_reset_slab(depot->slabs[s]) : vdo_load_slab(depot->slabs[s]);
		if (result != DD_SUCCESS)
			return dd_log_error_strerror(result, "cannot load slab %u", s);
		depot->free_blocks += vdo_free_blocks(depot->slabs[s]->counts);
	}
	return DD_SUCCESS;
}

static int make_zones(struct vdo_slab_depot *depot, const struct vdo_depot_config *config)
{
	int result =
	    DD_ALLOCATE(config->zone_count, struct depot_zone, "physical zones", &depot->zones);

	if (result != DD_SUCCESS)
		return result;
	depot->zone_count = config->zone_count;
	for (unsigned int z = 0; (result == DD_SUCCESS) && (z < config->zone_count); z++) {
		depot->zones[z] = (struct depot_zone){ .index = z,
			                               .thread = config->zone_threads[z],
			                               .lock_zone = config->lock_zones[z] };
		/* A write lock per data_vio, and a read lock per hash lock. */
		result = vdo_make_pbn_lock_pool(2 * VDO_DATA_VIO_COUNT, &depot->zones[z].pbn_locks);
	}
	return result;
}

int vdo_load_slab_depot(const struct vdo_depot_config *config, struct vdo_slab_depot **depot_ptr)
{
	struct vdo_slab_depot *depot;
	int result;

	if (config->zone_count == 0)
		return DD_INVALID_ARGUMENT;
	result = dd_allocate(sizeof(*depot), "slab depot", &depot);
	if (result != DD_SUCCESS)
		return result;
	depot->layout = *config->layout;
	depot->context = (struct vdo_slab_context){ .device = config->device,
		                                    .layout = &depot->layout,
		                                    .nonce = config->nonce,
		                                    .threads = config->threads,
		                                    .locks = config->locks,
		                                    .fail = config->fail,
		                                    .fail_context = config->fail_context,
		                                    .hurry = config->hurry,
		                                    .hurry_context = config->hurry_context };
	result =
	    vdo_load_slab_summary(config->device, config->layout, config->nonce, config->threads,
	                          config->summary_thread, config->reset, &depot->context.summary);
	if (result == DD_SUCCESS)
		result = make_zones(depot, config);
	if (result == DD_SUCCESS)
		result = deal_slabs(depot, depot->layout.slab_count);
	if (result == DD_SUCCESS)
		result =
		    load_slabs(depot, 0, depot->layout.slab_count, config->reset, config->touched);
	if (result != DD_SUCCESS) {
		vdo_free_slab_depot(depot);
		return result;
	}
	*depot_ptr = depot;
	return DD_SUCCESS;
}

unsigned int vdo_depot_zone_count(const struct vdo_slab_depot *depot)
{
	return depot->zone_count;
}

dd_thread_id_t vdo_depot_zone_thread(const struct vdo_slab_depot *depot, unsigned int zone)
{
	return depot->zones[zone].thread;
}

uint32_t vdo_depot_slab_count(const struct vdo_slab_depot *depot)
{
	return depot->slab_count;
}

struct vdo_slab *vdo_depot_slab(const struct vdo_slab_depot *depot, uint32_t number)
{
	return depot->slabs[number];
}

struct vdo_slab *vdo_depot_slab_of(const struct vdo_slab_depot *depot, vdo_pbn_t pbn,
                                   uint32_t *offset_ptr)
{
	uint32_t slab;

	if (!vdo_locate_data_block(&depot->layout, pbn, &slab, offset_ptr) ||
	    (slab >= depot->slab_count))
		return NULL;
	return depot->slabs[slab];
}

/* The usable slab of @zone with the most free blocks (the zone's count if none has any). */
static uint32_t emptiest_slab(const struct vdo_slab_depot *depot, const struct depot_zone *zone)
{
	uint32_t best = zone->count;
	uint32_t best_free = 0;

	for (uint32_t i = 0; i < zone->count; i++) {
		const struct vdo_slab *slab = depot->slabs[zone->slabs[i]];
		uint32_t free;

		if (slab->recovering || slab->failed)
			continue;
		free = vdo_free_blocks(slab->counts);
		if (free > best_free) {
			best = i;
			best_free = free;
		}
	}
	return best;
}

bool vdo_allocate_in_zone(struct vdo_slab_depot *depot, unsigned int zone_number,
                          vdo_pbn_t *pbn_ptr)
{
	struct depot_zone *zone = &depot->zones[zone_number];
	struct vdo_slab *slab;
	uint32_t offset;

	(void) dd_assert_on_thread(depot->context.threads, zone->thread, __func__);
	if (zone->count == 0)
		return false;
	slab = depot->slabs[zone->slabs[zone->open]];
	if (slab->recovering || slab->failed || !vdo_allocate_block(slab->counts, &offset)) {
		zone->open = emptiest_slab(depot, zone);
		if (zone->open == zone->count) {
			zone->open = 0;
			return false;
		}
		slab = depot->slabs[zone->slabs[zone->open]];
		if (!vdo_allocate_block(slab->counts, &offset))
			return false;
	}
	*pbn_ptr = vdo_slab_pbn(slab, offset);
	return true;
}

void vdo_release_allocation(struct vdo_slab_depot *depot, vdo_pbn_t pbn)
{
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(depot, pbn, &offset);

	if (slab == NULL)
		return;
	(void) dd_assert_on_thread(depot->context.threads, slab->thread, __func__);
	if (vdo_adjust_ref_count(slab->counts, offset, VDO_REF_RELEASE_PROVISIONAL,
	                         (struct vdo_ref_points){ 0 }) != DD_SUCCESS)
		vdo_slab_fail(slab, DD_BAD_STATE);
}

bool vdo_zone_is_recovering(const struct vdo_slab_depot *depot, unsigned int zone)
{
	return depot->zones[zone].recovering > 0;
}

void vdo_wait_for_recovered_slab(struct vdo_slab_depot *depot, unsigned int zone_number,
                                 struct vdo_slab_waiter *waiter)
{
	struct depot_zone *zone = &depot->zones[zone_number];

	(void) dd_assert_on_thread(depot->context.threads, zone->thread, __func__);
	if (zone->recovering == 0) {
		dd_launch_completion(waiter->completion);
		return;
	}
	waiter->next = zone->waiters;
	zone->waiters = waiter;
}

void vdo_slab_back_from_recovery(struct vdo_slab_depot *depot, struct vdo_slab *slab, int result)
{
	struct depot_zone *zone = &depot->zones[slab->zone];
	struct vdo_slab_waiter *waiters = zone->waiters;

	vdo_slab_recovered(slab, result);
	zone->recovering--;
	atomic_fetch_sub(&depot->recovering, 1);
	zone->waiters = NULL;
	while (waiters != NULL) {
		struct vdo_slab_waiter *waiter = waiters;

		waiters = waiter->next;
		dd_launch_completion(waiter->completion);
	}
}

void vdo_slab_recovered_early(struct vdo_slab_depot *depot, struct vdo_slab *slab)
{
	slab->recovering = false;
	depot->zones[slab->zone].recovering--;
	atomic_fetch_sub(&depot->recovering, 1);
	depot->free_blocks += vdo_free_blocks(slab->counts);
	vdo_set_summary_entry_of(depot->context.summary, slab->number,
	                         vdo_clean_summary_entry(slab));
}

struct vdo_slab *vdo_first_slab_to_recover(const struct vdo_slab_depot *depot,
                                           unsigned int zone_number)
{
	const struct depot_zone *zone = &depot->zones[zone_number];
	struct vdo_slab *best = NULL;

	for (uint32_t i = 0; i < zone->count; i++) {
		struct vdo_slab *slab = depot->slabs[zone->slabs[i]];

		if (!slab->recovering && !slab->failed && (vdo_free_blocks(slab->counts) > 0))
			return NULL;
		if (slab->recovering &&
		    ((best == NULL) || (slab->free_estimate > best->free_estimate)))
			best = slab;
	}
	return best;
}

struct vdo_slab_summary *vdo_depot_summary(const struct vdo_slab_depot *depot)
{
	return depot->context.summary;
}

uint32_t vdo_depot_slabs_recovering(const struct vdo_slab_depot *depot)
{
	return atomic_load(&depot->recovering);
}

uint64_t vdo_depot_free_blocks(const struct vdo_slab_depot *depot)
{
	return depot->free_blocks;
}

uint64_t vdo_zone_free_blocks(const struct vdo_slab_depot *depot, unsigned int zone_number)
{
	const struct depot_zone *zone = &depot->zones[zone_number];
	uint64_t free = 0;

	for (uint32_t i = 0; i < zone->count; i++) {
		const struct vdo_slab *slab = depot->slabs[zone->slabs[i]];

		free += slab->recovering ? slab->free_estimate : vdo_free_blocks(slab->counts);
	}
	return free;
}

static void slab_drained(struct dd_completion *completion)
{
	struct depot_zone *zone = completion->parent;

	if ((completion->result != DD_SUCCESS) && (zone->drain_result == DD_SUCCESS))
		zone->drain_result = completion->result;
	if (--zone->draining == 0)
		dd_continue_completion(zone->drain_waiter, zone->drain_result);
}

void vdo_drain_depot_zone(struct vdo_slab_depot *depot, unsigned int zone_number,
                          struct dd_completion *waiter)
{
	struct depot_zone *zone = &depot->zones[zone_number];

	(void) dd_assert_on_thread(depot->context.threads, zone->thread, __func__);
	(void) DD_ASSERT(zone->recovering == 0, "zone %u drains with slabs still recovering",
	                 zone_number);
	zone->drain_waiter = waiter;
	zone->drain_result = DD_SUCCESS;
	/* One more than the slabs, given up last, so that no slab finishes the drain early. */
	zone->draining = zone->count + 1;
	for (uint32_t i = 0; i < zone->count; i++) {
		uint32_t number = zone->slabs[i];

		dd_prepare_completion(&depot->drained[number], slab_drained, NULL, zone->thread,
		                      zone);
		vdo_drain_slab(depot->slabs[number], &depot->drained[number]);
	}
	if (--zone->draining == 0)
		dd_continue_completion(waiter, zone->drain_result);
}

void vdo_commit_depot_zone(struct vdo_slab_depot *depot, unsigned int zone_number,
                           vdo_sequence_t through)
{
	struct depot_zone *zone = &depot->zones[zone_number];

	for (uint32_t i = 0; i < zone->count; i++) {
		struct vdo_slab *slab = depot->slabs[zone->slabs[i]];

		if (slab->recovering)
			continue;
		if ((slab->journal.tail_lock != VDO_NO_LOCK) &&
		    (slab->journal.tail_lock <= through))
			vdo_commit_slab_journal(slab, through);
	}
}

int vdo_save_depot_summary(struct vdo_slab_depot *depot)
{
	depot->free_blocks = 0;
	for (uint32_t s = 0; s < depot->slab_count; s++) {
		struct vdo_slab *slab = depot->slabs[s];

		depot->free_blocks += vdo_free_blocks(slab->counts);
		vdo_set_summary_entry_of(depot->context.summary, s, vdo_clean_summary_entry(slab));
		slab->summary_dirty = false;
	}
	return vdo_save_slab_summary(depot->context.summary);
}

int vdo_grow_slab_depot(struct vdo_slab_depot *depot, const struct vdo_layout *layout)
{
	struct vdo_layout old_layout = depot->layout;
	uint32_t old_count = depot->slab_count;
	int result;

	if (layout->slab_count <= old_count)
		return DD_INVALID_ARGUMENT;
	result = deal_slabs(depot, layout->slab_count);
	if (result != DD_SUCCESS)
		return result;
	depot->layout = *layout;
	result = load_slabs(depot, old_count, layout->slab_count, false, NULL);
	if (result == DD_SUCCESS)
		return DD_SUCCESS;
	/* Go back to the old slabs, so that the depot stays as it was. */
	for (uint32_t s = old_count; s < depot->slab_count; s++)
		vdo_free_slab(depot->slabs[s]);
	depot->slab_count = old_count;
	depot->layout = old_layout;
	for (unsigned int z = 0; z < depot->zone_count; z++) {
		struct depot_zone *zone = &depot->zones[z];

		while ((zone->count > 0) && (zone->slabs[zone->count - 1] >= old_count))
			zone->count--;
		zone->open = 0;
	}
	return result;
}

/* The zone that owns data block @pbn, with its thread asserted; NULL if it is no data block. */
static struct depot_zone *zone_of_pbn(struct vdo_slab_depot *depot, vdo_pbn_t pbn,
                                      struct vdo_slab **slab_ptr, uint32_t *offset_ptr)
{
	struct vdo_slab *slab = vdo_depot_slab_of(depot, pbn, offset_ptr);
	struct depot_zone *zone;

	if (slab == NULL)
		return NULL;
	zone = &depot->zones[slab->zone];
	(void) dd_assert_on_thread(depot->context.threads, zone->thread, __func__);
	*slab_ptr = slab;
	return zone;
}

int vdo_write_lock_pbn(struct vdo_slab_depot *depot, vdo_pbn_t pbn,
                       struct vdo_pbn_lock **lock_ptr)
{
	struct vdo_slab *slab;
	uint32_t offset;
	struct depot_zone *zone = zone_of_pbn(depot, pbn, &slab, &offset);

	if (zone == NULL)
		return dd_log_error_strerror(DD_OUT_OF_RANGE, "block %llu is not a data block",
		                             (unsigned long long) pbn);
	return vdo_make_pbn_lock(zone->pbn_locks, pbn, VDO_PBN_WRITE_LOCK, lock_ptr);
}

/* How many more references @slab's block @offset can take now (0: none, or it is free). */
static uint32_t increment_limit(const struct vdo_slab *slab, uint32_t offset)
{
	uint8_t count = vdo_get_ref_count(slab->counts, offset);

	if ((count == VDO_EMPTY_REFERENCE) || (count == VDO_PROVISIONAL_REFERENCE))
		return 0;
	return VDO_MAX_REFERENCES - count;
}

struct vdo_pbn_lock *vdo_read_lock_pbn(struct vdo_slab_depot *depot, vdo_pbn_t pbn)
{
	struct vdo_slab *slab;
	uint32_t offset;
	struct depot_zone *zone = zone_of_pbn(depot, pbn, &slab, &offset);
	struct vdo_pbn_lock *lock;
	uint32_t limit;

	/* A slab still recovering does not know its counts yet. */
	if ((zone == NULL) || slab->recovering || slab->failed)
		return NULL;
	lock = vdo_get_pbn_lock(zone->pbn_locks, pbn);
	if (lock != NULL) {
		/* A block being written may not hold what its advice says yet. */
		if (lock->type != VDO_PBN_READ_LOCK)
			return NULL;
		lock->holders++;
		return lock;
	}
	limit = increment_limit(slab, offset);
	if ((limit == 0) || (vdo_make_pbn_lock(zone->pbn_locks, pbn, VDO_PBN_READ_LOCK, &lock) !=
	                     DD_SUCCESS))
		return NULL;
	lock->increment_limit = limit;
	return lock;
}

void vdo_unlock_pbn(struct vdo_slab_depot *depot, struct vdo_pbn_lock *lock)
{
	vdo_pbn_t pbn = lock->pbn;
	struct vdo_slab *slab;
	uint32_t offset;
	struct depot_zone *zone = zone_of_pbn(depot, pbn, &slab, &offset);

	if (zone == NULL)
		return;
	if (vdo_release_pbn_lock(zone->pbn_locks, lock))
		vdo_release_allocation(depot, pbn);
}

void vdo_get_zone_slab_stats(const struct vdo_slab_depot *depot, unsigned int zone_number,
                             struct vdo_slab_stats *stats)
{
	const struct depot_zone *zone = &depot->zones[zone_number];

	memset(stats, 0, sizeof(*stats));
	for (uint32_t i = 0; i < zone->count; i++) {
		const struct vdo_slab *slab = depot->slabs[zone->slabs[i]];

		if (slab->recovering) {
			stats->free_blocks += slab->free_estimate;
			stats->recovering_slabs++;
			continue;
		}
		stats->free_blocks += vdo_free_blocks(slab->counts);
		stats->journal_blocks_written += slab->journal_blocks_written;
		stats->ref_blocks_written += slab->ref_blocks_written;
		stats->dirty_slabs += slab->summary_dirty;
	}
}
