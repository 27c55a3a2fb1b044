// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lock counters; see lock-counter.h. Block @sequence uses slot sequence % blocks: a block is
 * only reused after it was reaped, when all its counts are back to zero.
 */
#include "lock-counter.h"

#include <stdatomic.h>

#include "memory-alloc.h"
#include "permassert.h"

struct vdo_lock_counter {
	uint32_t blocks;
	unsigned int zones;
	void (*notify)(void *context);
	void *context;
	atomic_bool notifying;
	/* Journal zone: locks handed out per slot; any thread: locks given back. */
	uint32_t *journal_counts;
	atomic_uint *journal_releases;
	/* Per slot: how many zones hold locks. */
	atomic_uint *holding_zones;
	/* counts[slot * zones + zone], each column owned by its zone's thread. */
	uint16_t *zone_counts;
};

int vdo_make_lock_counter(uint32_t blocks, unsigned int zones, void (*notify)(void *context),
                          void *context, struct vdo_lock_counter **counter_ptr)
{
	struct vdo_lock_counter *counter;
	int result = dd_allocate(sizeof(*counter), "lock counter", &counter);

	if (result != DD_SUCCESS)
		return result;
	counter->blocks = blocks;
	counter->zones = zones;
	counter->notify = notify;
	counter->context = context;
	result = DD_ALLOCATE(blocks, uint32_t, "journal lock counts", &counter->journal_counts);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(blocks, atomic_uint, "journal lock releases",
		                     &counter->journal_releases);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(blocks, atomic_uint, "zones holding", &counter->holding_zones);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE((size_t) blocks * zones, uint16_t, "zone lock counts",
		                     &counter->zone_counts);
	if (result != DD_SUCCESS) {
		vdo_free_lock_counter(counter);
		return result;
	}
	*counter_ptr = counter;
	return DD_SUCCESS;
}

void vdo_free_lock_counter(struct vdo_lock_counter *counter)
{
	if (counter == NULL)
		return;
	dd_free(counter->zone_counts);
	dd_free(counter->holding_zones);
	dd_free(counter->journal_releases);
	dd_free(counter->journal_counts);
	dd_free(counter);
}

static uint32_t slot_of(const struct vdo_lock_counter *counter, vdo_sequence_t sequence)
{
	return (uint32_t) (sequence % counter->blocks);
}

static void notify(struct vdo_lock_counter *counter)
{
	if (!atomic_exchange(&counter->notifying, true))
		counter->notify(counter->context);
}

void vdo_acquire_journal_lock(struct vdo_lock_counter *counter, vdo_sequence_t sequence,
                              uint32_t count)
{
	counter->journal_counts[slot_of(counter, sequence)] += count;
}

void vdo_release_journal_lock(struct vdo_lock_counter *counter, vdo_sequence_t sequence)
{
	atomic_fetch_add_explicit(&counter->journal_releases[slot_of(counter, sequence)], 1,
	                          memory_order_release);
	notify(counter);
}

static uint16_t *zone_count(struct vdo_lock_counter *counter, unsigned int zone,
                            vdo_sequence_t sequence)
{
	(void) DD_ASSERT(zone < counter->zones, "zone %u of %u", zone, counter->zones);
	return &counter->zone_counts[(size_t) slot_of(counter, sequence) * counter->zones + zone];
}

void vdo_acquire_zone_lock(struct vdo_lock_counter *counter, unsigned int zone,
                           vdo_sequence_t sequence)
{
	uint16_t *count = zone_count(counter, zone, sequence);

	(void) DD_ASSERT(*count < UINT16_MAX, "lock count overflow on journal block %llu",
	                 (unsigned long long) sequence);
	if ((*count)++ == 0)
		atomic_fetch_add(&counter->holding_zones[slot_of(counter, sequence)], 1);
}

void vdo_release_zone_lock(struct vdo_lock_counter *counter, unsigned int zone,
                           vdo_sequence_t sequence)
{
	uint16_t *count = zone_count(counter, zone, sequence);

	(void) DD_ASSERT(*count > 0, "lock count underflow on journal block %llu",
	                 (unsigned long long) sequence);
	if (--(*count) == 0) {
		if (atomic_fetch_sub(&counter->holding_zones[slot_of(counter, sequence)], 1) == 1)
			notify(counter);
	}
}

bool vdo_is_journal_block_locked(struct vdo_lock_counter *counter, vdo_sequence_t sequence)
{
	uint32_t slot = slot_of(counter, sequence);
	uint32_t released =
	    atomic_load_explicit(&counter->journal_releases[slot], memory_order_acquire);

	if (counter->journal_counts[slot] != released)
		return true;
	if (atomic_load(&counter->holding_zones[slot]) != 0)
		return true;
	/* Free: clear the slot for its next block. */
	counter->journal_counts[slot] = 0;
	atomic_fetch_sub(&counter->journal_releases[slot], released);
	return false;
}

void vdo_lock_counter_notified(struct vdo_lock_counter *counter)
{
	atomic_store(&counter->notifying, false);
}
