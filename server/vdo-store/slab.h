/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A slab: a run of data blocks with their reference counts and their slab journal, owned by one
 * physical zone thread.
 *
 * Every reference change is first an entry in the slab journal (slab-journal.c), and then a
 * change of the count in memory. The journal's blocks go to disk when full, or sooner when the
 * recovery journal needs the locks they hold; the counts go to disk a block at a time, oldest
 * dirtied first, when the slab journal needs room (slab.c). After a crash, a slab whose summary
 * entry says "dirty" is scrubbed: its counts are read and the journal entries they miss are
 * replayed into them (slab.c).
 *
 * The ordering that keeps this safe:
 *   1. a slab journal block, once written, is followed by a summary update that marks the slab
 *      dirty (if it was not already), and only then gives back its recovery journal lock: so
 *      when the recovery journal forgets an entry, the slab's journal has it and recovery will
 *      look there;
 *   2. the journal's head moves past a block only after the reference count blocks that depend
 *      on it were written and a flush made them durable;
 *   3. the entries of one slab arrive in recovery journal order (the journal releases data_vios
 *      in order, and each zone runs its queue in order), so recovery can tell which recovery
 *      journal entries a slab journal already has by comparing recovery points.
 */
#ifndef VDO_SLAB_H
#define VDO_SLAB_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "completion.h"
#include "errors.h"
#include "layout.h"
#include "lock-counter.h"
#include "pbn-lock.h"
#include "ref-counts.h"
#include "slab-journal-format.h"
#include "slab-summary.h"
#include "vdo-types.h"
#include "vio.h"

enum {
	/* Reference count block writes in flight per slab. */
	VDO_REF_WRITES_PER_SLAB = 4,
};

struct vdo_slab;

/* What every slab of a depot shares; set up before the zones run, then read-only. */
struct vdo_slab_context {
	struct block_device *device;
	const struct vdo_layout *layout;
	uint64_t nonce;
	struct dd_thread_set *threads;
	struct vdo_slab_summary *summary;
	struct vdo_lock_counter *locks;
	/* Called on a slab's thread when its metadata fails (enter read-only mode). */
	void (*fail)(void *context, int result);
	void *fail_context;
	/* Called on a slab's thread, once, when an entry waits for the slab's recovery. */
	void (*hurry)(void *context, struct vdo_slab *slab);
	void *hurry_context;
};

/*
 * A request to add one slab journal entry (and change the count); embedded in a data_vio.
 * Its completion is prepared by the caller and continued when the entry is made.
 */
struct vdo_slab_entry_request {
	struct dd_completion completion;
	uint32_t offset;
	bool increment;
	/* The recovery journal entry this change belongs to (slab journal form: see
	 * slab-journal-format.h). */
	struct vdo_journal_point recovery_point;
	struct vdo_slab_entry_request *next;
};

struct vdo_ref_write {
	struct vdo_slab *slab;
	bool busy;
	uint32_t index;
	uint8_t *buffer;
	struct vdo_vio vio;
	struct dd_completion completion;
};

struct vdo_slab_journal {
	vdo_pbn_t origin;
	uint32_t size;
	/* The oldest block still needed; blocks [head, tail) are on disk. */
	vdo_sequence_t head;
	/* The block being filled, in tail_block. */
	vdo_sequence_t tail;
	uint16_t entry_count;
	uint8_t *tail_block;
	/* The recovery journal block the tail block's entries lock (VDO_NO_LOCK if none). */
	vdo_sequence_t tail_lock;
	/* The recovery point of the newest entry made (after a load: of the newest entry on disk
	 * that scrubbing could reach); recovery skips entries up to it. */
	struct vdo_journal_point last_recovery_point;
	/* A block write in flight, and the lock it holds until it is durable in the summary. */
	bool writing;
	vdo_sequence_t writing_lock;
	uint8_t *write_buffer;
	struct vdo_vio write_vio;
	struct dd_completion write_completion;
	struct vdo_summary_update summary_update;
	bool updating_summary;
	/* A commit asked for while a write was in flight: write the tail block next if it locks a
	 * recovery journal block up to this one (VDO_NO_LOCK: none asked). */
	vdo_sequence_t commit_through;
	bool commit_all;
	/* Entries waiting for room, in arrival order. */
	struct vdo_slab_entry_request *waiters;
	struct vdo_slab_entry_request *last_waiter;
	/* The flush before the head moves. */
	bool reaping;
	vdo_sequence_t reap_target;
	struct vdo_vio reap_vio;
	struct dd_completion reap_completion;
};

struct vdo_slab {
	struct vdo_slab_context *context;
	uint32_t number;
	/* The first data block, and the first reference count block. */
	vdo_pbn_t origin;
	vdo_pbn_t ref_origin;
	unsigned int zone;
	dd_thread_id_t thread;
	/* The lock counter's column for this slab's zone. */
	unsigned int lock_zone;
	/* The zone's physical block locks. */
	struct vdo_pbn_lock_pool *pbn_locks;
	struct vdo_ref_counts *counts;
	struct vdo_slab_journal journal;
	struct vdo_ref_write writes[VDO_REF_WRITES_PER_SLAB];
	unsigned int writes_in_flight;
	/* The summary says the counts on disk are out of date. */
	bool summary_dirty;
	/* From a load until recovery is done: for each sector of counts, the recovery point
	 * through which its counts include the slab's changes. */
	struct vdo_journal_point *included;
	/*
	 * Left for recovery after a crash (recovery.h): until the slab is handed back, whoever
	 * recovers it owns everything else here, and the slab's thread only parks entries for
	 * it (in order) and asks, once, for it to be recovered soon.
	 */
	bool recovering;
	struct vdo_slab_entry_request *parked;
	struct vdo_slab_entry_request *last_parked;
	bool hurried;
	struct dd_completion hurry_completion;
	/* What the summary said of the slab's free blocks when it was left for recovery. */
	uint32_t free_estimate;
	/* The newest slab journal block a sector of the counts read from disk names. */
	vdo_sequence_t claimed;
	/* An unrecoverable error happened; no more writes. */
	bool failed;
	/* Counters. */
	uint64_t journal_blocks_written;
	uint64_t ref_blocks_written;
	/* Draining: write everything, then continue this completion. */
	struct dd_completion *drain_waiter;
	/* Every count block has been written at least once (the summary's load_ref_counts), so a
	 * sector that fails its check is damage, never a block never written. Before the summary
	 * first says so, every count block is written (formatted): which are still to go, and
	 * what follows. */
	bool counts_on_disk;
	bool formatting;
	uint32_t unformatted;
	bool *formatted;
	void (*format_done)(struct vdo_slab *slab, int result);
	struct vdo_vio format_vio;
	struct dd_completion format_completion;
};

/* slab.c */

/** vdo_make_slab() - A slab, all free and clean, its journal starting at @sequence. */
int DD_MUST_CHECK vdo_make_slab(struct vdo_slab_context *context, uint32_t number,
                                unsigned int zone, dd_thread_id_t thread, unsigned int lock_zone,
                                struct vdo_slab **slab_ptr);

/** vdo_free_slab() - Free @slab (NULL is fine); nothing may be in flight. */
void vdo_free_slab(struct vdo_slab *slab);

/** vdo_slab_pbn() - The PBN of data block @offset. */
static inline vdo_pbn_t vdo_slab_pbn(const struct vdo_slab *slab, uint32_t offset)
{
	return slab->origin + offset;
}

/**
 * vdo_load_slab() - Read @slab's counts and journal, and scrub it if its summary says so
 *                   (before the zones run).
 */
int DD_MUST_CHECK vdo_load_slab(struct vdo_slab *slab);

/**
 * vdo_skip_stale_slab_journal() - Make @slab's journal go on past every block its ring holds
 *                                 (after a crash, before the zones run). A crash can leave
 *                                 blocks the summary never heard of; going on from the summary's
 *                                 tail would number new blocks like them, and a later scrub
 *                                 could take a stale one for the newest.
 */
int DD_MUST_CHECK vdo_skip_stale_slab_journal(struct vdo_slab *slab);

/**
 * vdo_reset_slab() - Make @slab all free and clean, its journal going on past every block its
 *                    ring holds, without trusting its counts on disk (a read-only rebuild
 *                    recomputes them; before the zones run).
 */
int DD_MUST_CHECK vdo_reset_slab(struct vdo_slab *slab);

/**
 * vdo_save_slab_counts() - Write every dirty count block now, without a flush (before the zones
 *                          run). A slab whose journal has gone past its first block gets all
 *                          its count blocks, even if every count is zero, so that the summary
 *                          can say where its journal goes on.
 */
int DD_MUST_CHECK vdo_save_slab_counts(struct vdo_slab *slab);

/**
 * vdo_slab_includes() - Whether the counts loaded include the change of block @offset made by
 *                       the recovery journal entry at @point (slab journal form), so that
 *                       recovery must not make it again.
 */
bool vdo_slab_includes(const struct vdo_slab *slab, uint32_t offset,
                       struct vdo_journal_point point);

/**
 * vdo_clean_summary_entry() - The summary entry of @slab with its counts on disk up to date (its
 *                             journal's tail, its fullness, whether its counts are on disk).
 */
struct vdo_summary_entry vdo_clean_summary_entry(const struct vdo_slab *slab);

/** vdo_slab_recovery_done() - Forget what the load included (recovery is over). */
void vdo_slab_recovery_done(struct vdo_slab *slab);

/**
 * vdo_write_ref_blocks() - Slab thread: start writing dirty reference count blocks whose locks
 *                          are older than @before (VDO_NO_LOCK: all of them).
 */
void vdo_write_ref_blocks(struct vdo_slab *slab, vdo_sequence_t before);

/** vdo_slab_is_quiet() - Slab thread: nothing of the slab is being written or waiting. */
bool vdo_slab_is_quiet(const struct vdo_slab *slab);

/**
 * vdo_drain_slab() - Slab thread: write the journal's tail and every dirty count block, move the
 *                    head up to the tail, then continue @waiter (with DD_READ_ONLY if the
 *                    slab has failed). Entries made meanwhile are written too.
 */
void vdo_drain_slab(struct vdo_slab *slab, struct dd_completion *waiter);

/**
 * vdo_check_drain() - Slab thread: continue the drain waiter if the slab is drained. For the
 *                     slab's own code, after each step that may finish a drain.
 */
void vdo_check_drain(struct vdo_slab *slab);

/**
 * vdo_format_slab_counts() - Slab thread: write every count block once, flush, then call @done
 *                            (counts_on_disk is set if it worked).
 */
void vdo_format_slab_counts(struct vdo_slab *slab, void (*done)(struct vdo_slab *slab, int result));

/** vdo_slab_fail() - Slab thread: stop the slab after an unrecoverable error. */
void vdo_slab_fail(struct vdo_slab *slab, int result);

/**
 * vdo_slab_recovered() - Slab thread: the slab has been recovered (or failed to be, with
 *                        @result): it is the thread's own again; make the entries parked for it.
 */
void vdo_slab_recovered(struct vdo_slab *slab, int result);

/* slab-journal.c */

/** vdo_start_slab_journal() - Set up an empty journal whose next block is @tail. */
void vdo_start_slab_journal(struct vdo_slab *slab, vdo_sequence_t tail);

/**
 * vdo_add_slab_entry() - Slab thread: journal a change and apply it; see the request. While the
 *                        slab is recovering, the entry waits until it is handed back.
 */
void vdo_add_slab_entry(struct vdo_slab *slab, struct vdo_slab_entry_request *request);

/**
 * vdo_commit_slab_journal() - Slab thread: write the tail block now if it holds a lock on a
 *                             recovery journal block up to @through (VDO_NO_LOCK: if it has any
 *                             entry).
 */
void vdo_commit_slab_journal(struct vdo_slab *slab, vdo_sequence_t through);

/**
 * vdo_reap_slab_journal() - Slab thread: move the head past blocks no reference count block
 *                           needs any more (after a flush), and start count writes if the
 *                           journal is getting full.
 */
void vdo_reap_slab_journal(struct vdo_slab *slab);

/** vdo_slab_journal_blocks_in_use() - Blocks from the head to the tail, the tail included. */
uint32_t vdo_slab_journal_blocks_in_use(const struct vdo_slab *slab);

#endif /* VDO_SLAB_H */
