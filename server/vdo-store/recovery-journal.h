/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The recovery journal: every mapping change, in order, made durable before anything else may
 * reflect it; owned by the journal zone thread.
 *
 * A data_vio asks for an entry (the block map slot, the new and old mappings). The entry goes
 * into the tail block in memory at once and gets its place, the recovery point that orders it
 * among all changes; the data_vio then waits until a write of that block has made the entry
 * durable. Blocks are written one write at a time, each with a flush before it (so the data the
 * entries point to is durable first) and FUA; a write takes every entry added before it started,
 * so the journal batches entries itself under load. Waiters are released in entry order, which
 * the zones rely on (slab.h).
 *
 * Each entry also gives its data_vio one lock on the entry's block (lock-counter.h), which the
 * data_vio gives back once its slab journal entries and block map update are made; those hold
 * locks of their own until they are written. The head of the journal moves past blocks nobody
 * locks, after a flush, and the blocks can then be reused. When the journal fills up, it asks
 * the zones to write what holds its oldest blocks (release_locks); entries that find no room
 * wait, in order.
 */
#ifndef VDO_RECOVERY_JOURNAL_H
#define VDO_RECOVERY_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "completion.h"
#include "errors.h"
#include "lock-counter.h"
#include "recovery-journal-format.h"
#include "vdo-types.h"
#include "vio.h"

struct vdo_recovery_journal;

/* A request for one entry; embedded in a data_vio. */
struct vdo_journal_request {
	/* Prepared by the caller; continued from the journal thread once the entry is durable,
	 * with DD_READ_ONLY if the journal has failed. */
	struct dd_completion completion;
	struct vdo_journal_entry entry;
	/* Set by the journal: the entry's block and index. The data_vio holds one lock on
	 * point.sequence from then on. */
	struct vdo_journal_point point;
	struct vdo_journal_request *next;
};

struct vdo_journal_config {
	struct block_device *device;
	uint64_t nonce;
	vdo_pbn_t origin;
	uint32_t size;
	struct dd_thread_set *threads;
	dd_thread_id_t thread;
	struct vdo_lock_counter *locks;
	/* Where to go on from (a clean start: head == tail). */
	vdo_sequence_t head;
	vdo_sequence_t tail;
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
	/* Journal thread: ask the zones to give back their locks on blocks up to @through. */
	void (*release_locks)(void *context, vdo_sequence_t through);
	/* Journal thread: the journal failed (enter read-only mode). */
	void (*fail)(void *context, int result);
	void *context;
};

struct vdo_journal_stats {
	uint64_t entries;
	uint64_t blocks_started;
	uint64_t writes;
	uint64_t waits_for_space;
	vdo_sequence_t head;
	vdo_sequence_t tail;
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
};

/** vdo_make_recovery_journal() - A journal going on from the config's head and tail. */
int DD_MUST_CHECK vdo_make_recovery_journal(const struct vdo_journal_config *config,
                                            struct vdo_recovery_journal **journal_ptr);

/** vdo_free_recovery_journal() - Free @journal (NULL is fine); nothing may be in flight. */
void vdo_free_recovery_journal(struct vdo_recovery_journal *journal);

/** vdo_add_journal_entry() - Journal thread: add @request's entry; see the request. */
void vdo_add_journal_entry(struct vdo_recovery_journal *journal,
                           struct vdo_journal_request *request);

/**
 * vdo_journal_notify() - Any thread: locks were given back, the head may move. For the lock
 *                        counter's notify function.
 */
void vdo_journal_notify(void *journal);

/**
 * vdo_drain_recovery_journal() - Journal thread: write every entry, then wait until every
 *                                block is given back and the head is at the tail, then
 *                                continue @waiter (DD_READ_ONLY if the journal failed).
 */
void vdo_drain_recovery_journal(struct vdo_recovery_journal *journal, struct dd_completion *waiter);

/** vdo_get_journal_stats() - Journal thread (or when quiet): the journal's counters. */
void vdo_get_journal_stats(const struct vdo_recovery_journal *journal,
                           struct vdo_journal_stats *stats);


#endif /* VDO_RECOVERY_JOURNAL_H */
