/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Lock counters: who still needs each recovery journal block.
 *
 * The recovery journal may reuse (reap) its oldest block only when every change recorded in it
 * has reached the structures that survive without it: the data_vio that made an entry has made
 * its slab journal entries and updated the block map, the slab journal blocks holding those
 * entries are written, and the block map pages holding the new mappings are written. Each of
 * those holds a lock on the journal block until then. Locks are held by zones, one counter per
 * journal block per zone, and each zone counts only in its own column, on its own thread, with
 * no atomics in the common case:
 *
 *   - the journal zone counts the locks it hands out (one per entry, to the data_vio making it);
 *     those locks are given back by whatever thread the data_vio is on when it is done, into an
 *     atomic per-block release count;
 *   - each logical zone (dirty block map pages) and physical zone (slab journal blocks not yet
 *     written) counts its own locks; a zone's first lock on a block increments an atomic count
 *     of zones holding the block, and its last release decrements it.
 *
 * A zone only takes a lock on a block while another lock on it is held (the data_vio's, which
 * it gives back after), so a block whose holders have all gone to zero stays free. When a
 * release may have freed a block, the counter calls its notify function (once until the journal
 * acknowledges it), and the journal reaps from its own thread.
 */
#ifndef VDO_LOCK_COUNTER_H
#define VDO_LOCK_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "vdo-types.h"

struct vdo_lock_counter;

/**
 * vdo_make_lock_counter() - Counters for @blocks journal blocks and @zones zones besides the
 *                           journal's own.
 * @notify: called (on any thread) when a block may have become free; at most once until
 *          vdo_lock_counter_notified() is called.
 */
int DD_MUST_CHECK vdo_make_lock_counter(uint32_t blocks, unsigned int zones,
                                        void (*notify)(void *context), void *context,
                                        struct vdo_lock_counter **counter_ptr);

/** vdo_free_lock_counter() - Free @counter (NULL is fine). */
void vdo_free_lock_counter(struct vdo_lock_counter *counter);

/** vdo_acquire_journal_lock() - Journal zone: @count more locks on block @sequence. */
void vdo_acquire_journal_lock(struct vdo_lock_counter *counter, vdo_sequence_t sequence,
                              uint32_t count);

/** vdo_release_journal_lock() - Any thread: give back one lock the journal zone handed out. */
void vdo_release_journal_lock(struct vdo_lock_counter *counter, vdo_sequence_t sequence);

/** vdo_acquire_zone_lock() - Zone @zone's thread: one more lock on block @sequence. */
void vdo_acquire_zone_lock(struct vdo_lock_counter *counter, unsigned int zone,
                           vdo_sequence_t sequence);

/** vdo_release_zone_lock() - Zone @zone's thread: one lock fewer on block @sequence. */
void vdo_release_zone_lock(struct vdo_lock_counter *counter, unsigned int zone,
                           vdo_sequence_t sequence);

/** vdo_is_journal_block_locked() - Journal zone: whether anyone still needs block @sequence. */
bool vdo_is_journal_block_locked(struct vdo_lock_counter *counter, vdo_sequence_t sequence);

/**
 * vdo_lock_counter_notified() - Journal zone: it has looked at the blocks; notify again on the
 *                               next release that may free one.
 */
void vdo_lock_counter_notified(struct vdo_lock_counter *counter);

#endif /* VDO_LOCK_COUNTER_H */
