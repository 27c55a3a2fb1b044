/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The slab depot: every slab of the volume, dealt round-robin to the physical zones (slab n to
 * zone n % P), and the allocation of free blocks.
 *
 * Each physical zone is a zone thread that owns its slabs. It allocates from one slab (the
 * "open" slab) until that is full, then moves to the slab of the zone with the most free blocks.
 * A zone with no free block says so, and the caller tries the next zone (on that zone's thread),
 * until every zone has been asked: only then is the volume out of space.
 *
 * Loading reads the summary and every slab the summary says was used before the zones run.
 * After a crash, the slabs the recovery journal touched and those the summary marks dirty are
 * left for recovery (recovery.h) instead: such a slab is not allocated from, its entries wait
 * (slab.h), and a zone with no free block but slabs still recovering makes allocations wait for
 * the next one to come back rather than fail. Saving drains every slab on its own thread, then
 * marks every slab clean in the summary. Growing adds slabs at the end, which the zones take as
 * their own.
 */
#ifndef VDO_SLAB_DEPOT_H
#define VDO_SLAB_DEPOT_H

#include <stdbool.h>
#include <stdint.h>

#include "completion.h"
#include "errors.h"
#include "pbn-lock.h"
#include "slab.h"
#include "vdo-types.h"

struct vdo_slab_depot;

struct vdo_depot_config {
	struct block_device *device;
	const struct vdo_layout *layout;
	uint64_t nonce;
	struct dd_thread_set *threads;
	dd_thread_id_t summary_thread;
	/* The physical zones' threads, and their columns in the lock counter. */
	unsigned int zone_count;
	const dd_thread_id_t *zone_threads;
	const unsigned int *lock_zones;
	struct vdo_lock_counter *locks;
	void (*fail)(void *context, int result);
	void *fail_context;
	/* An entry waits for a slab being recovered (slab.h). */
	void (*hurry)(void *context, struct vdo_slab *slab);
	void *hurry_context;
	/* Do not load the counts but reset every slab (a read-only rebuild). */
	bool reset;
	/* After a crash: the slabs the recovery journal changes (NULL: none, and nothing is
	 * left for recovery). */
	const bool *touched;
};

/* Zone thread: an allocation waiting for a slab of its zone to come back from recovery. */
struct vdo_slab_waiter {
	struct dd_completion *completion;
	struct vdo_slab_waiter *next;
};

/**
 * vdo_load_slab_depot() - Load the summary and every slab (before the zones run).
 *
 * Return: DD_SUCCESS, or the error of the first slab that cannot be loaded (DD_CORRUPT_DATA
 *         for damaged metadata).
 */
int DD_MUST_CHECK vdo_load_slab_depot(const struct vdo_depot_config *config,
                                      struct vdo_slab_depot **depot_ptr);

/** vdo_free_slab_depot() - Free @depot (NULL is fine); nothing may be in flight. */
void vdo_free_slab_depot(struct vdo_slab_depot *depot);

/** vdo_depot_zone_count() - How many physical zones there are. */
unsigned int vdo_depot_zone_count(const struct vdo_slab_depot *depot);

/** vdo_depot_zone_thread() - The thread of physical zone @zone. */
dd_thread_id_t vdo_depot_zone_thread(const struct vdo_slab_depot *depot, unsigned int zone);

/**
 * vdo_depot_slab_of() - The slab holding data block @pbn and its offset there; NULL if @pbn is
 *                       not a data block of any slab.
 */
struct vdo_slab *vdo_depot_slab_of(const struct vdo_slab_depot *depot, vdo_pbn_t pbn,
                                   uint32_t *offset_ptr);

/**
 * vdo_allocate_in_zone() - Zone @zone's thread: allocate a free block of the zone (a
 *                          provisional reference).
 *
 * Return: true with *pbn_ptr set, or false if the zone has no free block.
 */
bool vdo_allocate_in_zone(struct vdo_slab_depot *depot, unsigned int zone, vdo_pbn_t *pbn_ptr);

/**
 * vdo_release_allocation() - The slab's thread: give back a provisional reference that was not
 *                            used.
 */
void vdo_release_allocation(struct vdo_slab_depot *depot, vdo_pbn_t pbn);

/**
 * vdo_zone_is_recovering() - Zone @zone's thread: whether some of its slabs are still being
 *                            recovered.
 */
bool vdo_zone_is_recovering(const struct vdo_slab_depot *depot, unsigned int zone);

/**
 * vdo_wait_for_recovered_slab() - Zone @zone's thread: launch @waiter's completion when the next
 *                                 slab of the zone comes back from recovery.
 */
void vdo_wait_for_recovered_slab(struct vdo_slab_depot *depot, unsigned int zone,
                                 struct vdo_slab_waiter *waiter);

/**
 * vdo_slab_back_from_recovery() - @slab's thread: the slab is recovered (or failed to be, with
 *                                 @result); it goes back to its zone.
 */
void vdo_slab_back_from_recovery(struct vdo_slab_depot *depot, struct vdo_slab *slab, int result);

/**
 * vdo_slab_recovered_early() - @slab was recovered before the zones run: it is its zone's again,
 *                              and its summary entry (not written) says it is clean.
 */
void vdo_slab_recovered_early(struct vdo_slab_depot *depot, struct vdo_slab *slab);

/**
 * vdo_first_slab_to_recover() - Before the zones run: the slab left for recovery that zone
 *                               @zone should get back first (the emptiest, as the summary says),
 *                               or NULL if the zone has a slab with free blocks already or none
 *                               left for recovery.
 */
struct vdo_slab *vdo_first_slab_to_recover(const struct vdo_slab_depot *depot, unsigned int zone);

/** vdo_depot_summary() - The depot's slab summary. */
struct vdo_slab_summary *vdo_depot_summary(const struct vdo_slab_depot *depot);

/** vdo_depot_slabs_recovering() - How many slabs are still left for recovery (any thread). */
uint32_t vdo_depot_slabs_recovering(const struct vdo_slab_depot *depot);

/** vdo_depot_free_blocks() - Free data blocks, as of the last load or save (any thread). */
uint64_t vdo_depot_free_blocks(const struct vdo_slab_depot *depot);

/** vdo_zone_free_blocks() - Zone @zone's thread: its free blocks now. */
uint64_t vdo_zone_free_blocks(const struct vdo_slab_depot *depot, unsigned int zone);

/**
 * vdo_drain_depot_zone() - Zone @zone's thread: drain every slab of the zone (slab.h), then
 *                          continue @waiter.
 */
void vdo_drain_depot_zone(struct vdo_slab_depot *depot, unsigned int zone,
                          struct dd_completion *waiter);

/**
 * vdo_commit_depot_zone() - Zone @zone's thread: write the tail blocks of its slab journals that
 *                           lock recovery journal blocks up to @through.
 */
void vdo_commit_depot_zone(struct vdo_slab_depot *depot, unsigned int zone, vdo_sequence_t through);

/**
 * vdo_save_depot_summary() - Mark every slab clean in the summary and write it (every zone
 *                            drained; any thread).
 */
int DD_MUST_CHECK vdo_save_depot_summary(struct vdo_slab_depot *depot);

/**
 * vdo_grow_slab_depot() - Add the slabs of @layout beyond the current ones (zones quiet; any
 *                         thread). The new slabs are never used, so nothing is written but the
 *                         caller's super block.
 */
int DD_MUST_CHECK vdo_grow_slab_depot(struct vdo_slab_depot *depot,
                                      const struct vdo_layout *layout);

/** vdo_depot_slab_count() - How many slabs there are. */
uint32_t vdo_depot_slab_count(const struct vdo_slab_depot *depot);

/** vdo_depot_slab() - Slab @number. */
struct vdo_slab *vdo_depot_slab(const struct vdo_slab_depot *depot, uint32_t number);

/**
 * vdo_write_lock_pbn() - The thread of @pbn's zone: write-lock @pbn, just allocated to a write
 *                        in flight, until its increment lands (pbn-lock.h).
 *
 * Return: DD_SUCCESS; DD_BAD_STATE if the block is locked already (allocated twice) or the
 *         zone has no lock left; DD_OUT_OF_RANGE if @pbn is no data block.
 */
int DD_MUST_CHECK vdo_write_lock_pbn(struct vdo_slab_depot *depot, vdo_pbn_t pbn,
                                     struct vdo_pbn_lock **lock_ptr);

/**
 * vdo_read_lock_pbn() - The thread of @pbn's zone: read-lock @pbn, named by advice, to verify
 *                       it and share it: a new lock with the block's increment limit, or one
 *                       more holder of the read lock already there.
 *
 * Return: the lock, or NULL if the block cannot be shared now: it is no data block, free,
 *         provisional, full, write-locked, or its slab is still recovering (or failed).
 */
struct vdo_pbn_lock *vdo_read_lock_pbn(struct vdo_slab_depot *depot, vdo_pbn_t pbn);

/**
 * vdo_unlock_pbn() - The thread of the block's zone: one holder of @lock lets go; the last one
 *                    frees a block whose provisional reference nobody took.
 */
void vdo_unlock_pbn(struct vdo_slab_depot *depot, struct vdo_pbn_lock *lock);

struct vdo_slab_stats {
	uint64_t free_blocks;
	uint64_t journal_blocks_written;
	uint64_t ref_blocks_written;
	uint64_t dirty_slabs;
	uint64_t recovering_slabs;
};

/** vdo_get_zone_slab_stats() - Zone @zone's thread (or when quiet): its slabs' counters. */
void vdo_get_zone_slab_stats(const struct vdo_slab_depot *depot, unsigned int zone,
                             struct vdo_slab_stats *stats);


#endif /* VDO_SLAB_DEPOT_H */
