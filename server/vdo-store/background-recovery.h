/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Background recovery: the slabs a crash left for recovery (recovery.h), recovered while the
 * volume runs, on a thread of their own.
 *
 * The volume opens once the recovery journal has been replayed into the block map and each
 * physical zone has a slab to allocate from. The recovery thread then takes the other slabs one
 * at a time, those with the most free blocks first, except that a slab an entry is waiting for
 * (slab.h) goes next. A slab is recovered with synchronous I/O on the recovery thread, which
 * owns it meanwhile; its summary entry is then written (clean, with its journal's new tail) and
 * the slab handed back to its zone's thread, which makes the entries parked for it and wakes the
 * allocations waiting in the zone.
 *
 * The recovery journal's blocks from the replay stay locked for the whole time, so the journal
 * cannot reap them: a crash before the last slab is back finds them still there and recovers
 * again from the same start. The last slab back gives the locks up.
 */
#ifndef VDO_BACKGROUND_RECOVERY_H
#define VDO_BACKGROUND_RECOVERY_H

#include <stdatomic.h>
#include <stdbool.h>

#include "errors.h"
#include "lock-counter.h"
#include "recovery.h"
#include "slab-depot.h"
#include "time-utils.h"
#include "work-queue.h"

struct vdo_background_recovery;

struct vdo_background_config {
	struct dd_thread_set *threads;
	/* The recovery thread. */
	dd_thread_id_t thread;
	struct vdo_slab_depot *depot;
	/* The recovery journal blocks [first_locked, end_locked) hold one journal-zone lock each,
	 * given back when the last slab is back. */
	struct vdo_lock_counter *locks;
	vdo_sequence_t first_locked;
	vdo_sequence_t end_locked;
	/* A pause before each slab no entry waits for. */
	dd_ktime_t pause_ns;
	/* Set when the volume goes read-only: the slabs left are handed back failed, unwritten. */
	const atomic_bool *read_only;
	/* Called on a zone thread once every slab is back. */
	void (*done)(void *context);
	void *context;
};

/**
 * vdo_recover_first_slabs() - Before the zones run: recover, for each zone that has no free block
 *                             in a slab it can use, the slab left for recovery that the summary
 *                             says is emptiest; and write the summary.
 *
 * Return: DD_SUCCESS, or the error of the slab that could not be recovered.
 */
int DD_MUST_CHECK vdo_recover_first_slabs(const struct vdo_recovery *recovery,
                                          struct vdo_slab_depot *depot, uint32_t *count_ptr);

/**
 * vdo_start_background_recovery() - Take over @recovery (freed when no longer needed), acquire
 *                                   the journal locks and start recovering the slabs still
 *                                   left; before the zones run.
 */
int DD_MUST_CHECK vdo_start_background_recovery(const struct vdo_background_config *config,
                                                struct vdo_recovery *recovery,
                                                struct vdo_background_recovery **background_ptr);

/**
 * vdo_hurry_slab_recovery() - @slab's thread: an entry waits for @slab; recover it next. For the
 *                             depot's hurry function.
 */
void vdo_hurry_slab_recovery(struct vdo_background_recovery *background, struct vdo_slab *slab);

/**
 * vdo_rush_background_recovery() - Any thread: no more pauses; the volume is closing and waits
 *                                  for the slabs left.
 */
void vdo_rush_background_recovery(struct vdo_background_recovery *background);

/**
 * vdo_free_background_recovery() - Free @background (NULL is fine) once it is done and its
 *                                  thread idle.
 */
void vdo_free_background_recovery(struct vdo_background_recovery *background);

#endif /* VDO_BACKGROUND_RECOVERY_H */
