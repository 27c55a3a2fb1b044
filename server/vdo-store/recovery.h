/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Recovery after a crash, in two parts: the journal before the volume opens, the slabs after.
 *
 * Replaying the journal (before the zones run) reads it from the super block's start
 * (journal-reader.h) and takes every entry, in order:
 *   - into the block map, page by page: a data remapping sets its slot, a block map remapping
 *     points its parent slot at the new page (a page never written reads as a new, empty one;
 *     a page allocated in the journal's window is made again from nothing, as its first write
 *     may have been torn);
 *   - into a list of reference changes per slab (the increment of the new mapping and the
 *     decrement of the old one, each with its recovery point).
 * Every page it changed is written, the journal's ring is made continuous past the last block
 * walked (empty blocks over any the walk could not reach, so that a later walk from the same
 * head carries on into whatever the journal writes next), and all of it flushed.
 *
 * Each slab the journal touched, or the summary marks dirty, is then recovered on its own
 * (vdo_recover_slab()): loaded and scrubbed (slab.h), its listed changes applied unless its
 * counts include them already (each sector of counts knows the recovery point it includes),
 * its journal moved on past every block its ring holds, its counts written and flushed. A slab
 * is recovered either before the volume opens or, by background recovery
 * (background-recovery.h), while it runs: the journal's blocks stay locked until the last slab
 * is done, so a crash meanwhile simply recovers again from the same start.
 *
 * Metadata that makes no sense (a damaged page, a count that would overflow or underflow, a
 * mapping outside the data blocks) fails with DD_CORRUPT_DATA, and the volume becomes
 * read-only: a read-only rebuild is the way back.
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

struct vdo_recovery;

/* A slab depot for work done before the zones run (recovery, check, rebuild). */
struct vdo_offline_depot {
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_slab_depot *depot;
};

/**
 * vdo_load_offline_depot() - Load the depot of the volume @super describes; with @reset make
 *                            every slab free without reading counts; with @recovery leave the
 *                            slabs it must recover unloaded.
 */
int DD_MUST_CHECK vdo_load_offline_depot(struct block_device *device,
                                         const struct vdo_super_block *super, bool reset,
                                         const struct vdo_recovery *recovery,
                                         struct vdo_offline_depot *offline);

/** vdo_free_offline_depot() - Free what vdo_load_offline_depot() made. */
void vdo_free_offline_depot(struct vdo_offline_depot *offline);

/**
 * vdo_replay_recovery_journal() - Replay the journal of the volume @super describes into the
 *                                 block map, and with @keep_changes list its reference changes
 *                                 for vdo_recover_slab() (before the zones run).
 */
int DD_MUST_CHECK vdo_replay_recovery_journal(struct block_device *device,
                                              const struct vdo_super_block *super,
                                              bool keep_changes,
                                              struct vdo_recovery **recovery_ptr);

/** vdo_free_recovery() - Free @recovery (NULL is fine). */
void vdo_free_recovery(struct vdo_recovery *recovery);

/** vdo_recovery_contents() - What the journal held. */
const struct vdo_journal_contents *vdo_recovery_contents(const struct vdo_recovery *recovery);

/**
 * vdo_take_journal_contents() - Set @super's journal and counters from the replay: the journal
 *                               goes on after every block found, and starts at the replayed
 *                               blocks if @keep_window (they stay until the slabs are
 *                               recovered), or after them.
 */
void vdo_take_journal_contents(const struct vdo_recovery *recovery, bool keep_window,
                               struct vdo_super_block *super);

/**
 * vdo_recovery_touched() - For each slab of the volume, whether the journal changes its counts
 *                          (an array of the layout's slab count).
 */
const bool *vdo_recovery_touched(const struct vdo_recovery *recovery);

/**
 * vdo_recover_slab() - Load and scrub @slab, apply the journal's changes to it, and write its
 *                      counts durably; on whichever thread owns the slab until it is done.
 */
int DD_MUST_CHECK vdo_recover_slab(const struct vdo_recovery *recovery, struct vdo_slab *slab);

/**
 * vdo_recover_all_slabs() - Before the zones run: recover every slab @depot left for recovery,
 *                           setting (not writing) their summary entries.
 */
int DD_MUST_CHECK vdo_recover_all_slabs(const struct vdo_recovery *recovery,
                                        struct vdo_slab_depot *depot);

/**
 * vdo_recover() - Recover the dirty volume on @device described by @super completely, offline
 *                 (for the tools); @super is updated and written clean.
 * @entries_ptr: if not NULL, receives the number of journal entries replayed
 */
int DD_MUST_CHECK vdo_recover(struct block_device *device, struct vdo_super_block *super,
                              uint64_t *entries_ptr);

/**
 * vdo_mark_read_only() - Record read-only mode in @super after @error, and return @error with
 *                        a message.
 */
int vdo_mark_read_only(struct block_device *device, struct vdo_super_block *super, int error);

#endif /* VDO_RECOVERY_H */
