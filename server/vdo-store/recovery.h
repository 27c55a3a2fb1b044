/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Recovery after a crash: bring a dirty volume back to a clean state before it opens.
 *
 * The slab depot is loaded first, which scrubs every slab the summary marks dirty (slab.h):
 * each slab's counts then include its changes up to a known recovery point, sector by sector.
 * The recovery journal is then read from the super block's start (journal-reader.h) and every
 * entry replayed, in order:
 *   - into the block map, page by page: a data remapping sets its slot, a block map remapping
 *     points its parent slot at the new page (a page never written reads as a new, empty one);
 *   - into the reference counts: the increment of the new mapping and the decrement of the old
 *     one, each unless the slab's counts already include it.
 * Then everything changed is written, flushed, the summary marked clean, and the super block
 * written clean with the journal starting after every block it held, and one more recovery
 * counted. A crash during recovery leaves the volume dirty with its journal intact, so recovery
 * simply runs again.
 *
 * Metadata that makes no sense (a damaged page, a count that would overflow or underflow, a
 * mapping outside the data blocks) fails recovery with DD_CORRUPT_DATA, and the volume is
 * marked read-only: a read-only rebuild is the way back.
 */
#ifndef VDO_RECOVERY_H
#define VDO_RECOVERY_H

#include "block-device.h"
#include "errors.h"
#include "journal-reader.h"
#include "lock-counter.h"
#include "slab-depot.h"
#include "super-block.h"
#include "work-queue.h"

/* A slab depot for work done before the zones run (recovery, check, rebuild). */
struct vdo_offline_depot {
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_slab_depot *depot;
};

/**
 * vdo_load_offline_depot() - Load the depot of the volume @super describes (scrubbing what needs
 *                            it), or with @reset make every slab free without reading counts.
 */
int DD_MUST_CHECK vdo_load_offline_depot(struct block_device *device,
                                         const struct vdo_super_block *super, bool reset,
                                         struct vdo_offline_depot *offline);

/** vdo_free_offline_depot() - Free what vdo_load_offline_depot() made. */
void vdo_free_offline_depot(struct vdo_offline_depot *offline);

/**
 * vdo_replay_journal() - Replay the recovery journal into the block map (and, with @counts, into
 *                        @depot's counts), and write every page and count it changed, then
 *                        flush.
 */
int DD_MUST_CHECK vdo_replay_journal(struct block_device *device,
                                     const struct vdo_super_block *super,
                                     struct vdo_slab_depot *depot, bool counts,
                                     struct vdo_journal_contents *contents);

/**
 * vdo_recover() - Recover the dirty volume on @device described by @super, which is updated
 *                 (and written) as the volume ends up.
 */
int DD_MUST_CHECK vdo_recover(struct block_device *device, struct vdo_super_block *super,
                             uint64_t *entries_ptr);

#endif /* VDO_RECOVERY_H */
