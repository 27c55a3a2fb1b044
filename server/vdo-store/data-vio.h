/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * data_vios: the unit of work, one block of one request, from a fixed pool of 2048.
 *
 * data-vio.c has their life: taking one from the pool (waiting while none is free), splitting
 * requests into them, the lock on their logical block, acknowledgement, flushes, and going
 * back to the pool. read-path.c and write-path.c have the two journeys through the zones:
 *
 *   read   lock the logical block; walk the tree; read the mapped block (or give zeros); let go
 *   write  lock the logical block; (a partial block: read it first); walk the tree, linking in
 *          missing pages; allocate a block (unless the data is all zeros, or a discard);
 *          acknowledge; with dedupe, name the data and join its hash lock, which shares a
 *          block holding the same data or has the data written; without, write the data;
 *          fetch the old mapping; journal the change; on commit,
 *          increment the new block and decrement the old one in their slab journals; store the
 *          new mapping; give the journal lock back; let go of the logical block
 */
#ifndef VDO_DATA_VIO_H
#define VDO_DATA_VIO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "block-map.h"
#include "completion.h"
#include "record-name.h"
#include "recovery-journal.h"
#include "slab.h"
#include "vdo.h"
#include "zone-lock.h"

struct data_vio {
	/* The main completion: moves the data_vio from zone to zone. */
	struct dd_completion completion;
	struct vdo_store *store;
	struct vdo_request *request;
	enum vdo_request_operation operation;
	bool fua;
	vdo_lbn_t lbn;
	/* Bytes of the block the request covers, and where they are in its buffer. */
	uint32_t offset_in_block;
	uint32_t length;
	uint8_t *request_data;
	/* The whole block: a write's data, a read's result. */
	uint8_t *data;
	bool is_zero;
	bool is_discard;
	/* Holds one of the pool's discard permits. */
	bool discard_permit;
	/* The logical lock, and the lock on a block map slot being filled. */
	unsigned int logical_zone;
	struct vdo_zone_lock lbn_lock;
	bool holds_lbn_lock;
	struct vdo_zone_lock slot_lock;
	bool holds_slot_lock;
	/* The block map. */
	struct vdo_map_request map;
	vdo_pbn_t leaf_pbn;
	/* Allocation, and the physical block lock held on it until its increment is made. */
	vdo_pbn_t allocation;
	struct vdo_pbn_lock *pbn_lock;
	unsigned int zones_tried;
	unsigned int allocation_zone;
	/* A zone found full that still has slabs recovering (the zone count if none), and the
	 * wait there for one to come back. */
	unsigned int recovering_zone;
	struct vdo_slab_waiter slab_waiter;
	bool allocating_tree_page;
	struct vdo_mapping new_mapping;
	struct vdo_mapping old_mapping;
	/* The recovery journal entry, and the lock it holds. */
	struct vdo_journal_request journal;
	bool holds_journal_lock;
	/* Reference changes on commit, and how many are left. */
	struct vdo_slab_entry_request increment;
	struct vdo_slab_entry_request decrement;
	atomic_uint updates_left;
	/* The data read or written. */
	struct vdo_vio vio;
	/* Dedupe (dedupe.h): the data's name and hash zone; the hash lock and its links there
	 * (members, waiters); as an agent, the read lock it found and the block it read to
	 * verify advice; whether the new mapping shares a block written before. */
	struct dd_record_name record_name;
	unsigned int hash_zone;
	struct hash_lock *hash_lock;
	struct data_vio *member_prev;
	struct data_vio *member_next;
	struct data_vio *hash_next;
	struct vdo_pbn_lock *found_lock;
	uint8_t *scratch;
	bool is_duplicate;
	/* Acknowledgement and flushes. Readers of the same block look at acknowledged from the
	 * logical zone's thread (vdo_read_from_holder()): everything a write sets before it is
	 * acknowledged is theirs to read once they see it set. */
	atomic_bool acknowledged;
	bool committed;
	bool counted_for_flush;
	uint64_t flush_generation;
	struct dd_completion ack_completion;
	int result;
	/* The pool's and the flusher's lists. */
	struct data_vio *next;
};

/* data-vio.c */

/** vdo_make_data_vio_pool() - The store's pool of VDO_DATA_VIO_COUNT data_vios. */
int DD_MUST_CHECK vdo_make_data_vio_pool(struct vdo_store *store);

/** vdo_free_data_vio_pool() - Free the pool; every data_vio must be back. */
void vdo_free_data_vio_pool(struct vdo_store *store);

/** vdo_wait_for_idle_pool() - Wait until every data_vio is back in the pool. */
void vdo_wait_for_idle_pool(struct vdo_store *store);

/** vdo_launch_request() - Split @request into data_vios and start them (may wait for some). */
void vdo_launch_request(struct vdo_store *store, struct vdo_request *request);

/** vdo_make_flusher() - Set up the flush generations. */
int DD_MUST_CHECK vdo_make_flusher(struct flusher *flusher);

/** vdo_free_flusher() - Free the flusher. */
void vdo_free_flusher(struct flusher *flusher);

/**
 * vdo_acknowledge() - The data_vio's part of its request is done (its result in
 *                     data_vio->result): count it, and call the request back when it was the
 *                     last part. A write acknowledged here is counted until it commits.
 */
void vdo_acknowledge(struct data_vio *data_vio);

/** vdo_write_committed() - A write's journal entry is durable (or it failed): tell flushes. */
void vdo_write_committed(struct data_vio *data_vio);

/** vdo_acquire_logical_lock() - Logical zone: lock the logical block, then run @next. */
void vdo_acquire_logical_lock(struct data_vio *data_vio, dd_action_fn next);

/** vdo_finish_data_vio() - Logical zone: let go of the logical block and of the data_vio. */
void vdo_finish_data_vio(struct data_vio *data_vio);

/** vdo_fail_data_vio() - Any zone: end with @result (cleaning up on the right threads). */
void vdo_fail_data_vio(struct data_vio *data_vio, int result);

/**
 * vdo_give_back_allocation() - The allocation's zone thread: release the data_vio's write lock
 *                              and its allocation, which it did not use.
 */
void vdo_give_back_allocation(struct data_vio *data_vio);

/** vdo_launch_on() - Continue @data_vio with @callback on @thread. */
void vdo_launch_on(struct data_vio *data_vio, dd_action_fn callback, dd_thread_id_t thread);

/** vdo_block_is_zero() - Whether the 4 KiB at @data are all zero. */
bool vdo_block_is_zero(const uint8_t *data);

/** vdo_logical_thread() - The thread of the data_vio's logical zone. */
dd_thread_id_t vdo_logical_thread(const struct data_vio *data_vio);

/* read-path.c */

/** vdo_start_read() - Logical zone, lock held: read the block (also the first step of a partial
 *                     write, which then goes on with vdo_continue_partial_write()). */
void vdo_start_read(struct dd_completion *completion);

/**
 * vdo_read_from_holder() - Logical zone: if the holder of the logical block is a write that
 *                          will complete, take its data and finish; false otherwise.
 */
bool vdo_read_from_holder(struct data_vio *data_vio, struct data_vio *holder);

/* write-path.c */

/** vdo_start_write() - Logical zone, lock held: write the block (after a read for partials). */
void vdo_start_write(struct dd_completion *completion);

/**
 * vdo_continue_partial_write() - Logical zone: the block a partial write changes has been read
 *                                into data_vio->data; merge the new part and write it whole.
 */
void vdo_continue_partial_write(struct data_vio *data_vio);

/**
 * vdo_write_data_for_lock() - Hash zone: the data_vio, agent of its hash lock, writes its data
 *                             to its allocation, then goes on with
 *                             vdo_hash_lock_data_written() on the allocation's zone thread.
 */
void vdo_write_data_for_lock(struct data_vio *data_vio);

/**
 * vdo_write_data_plainly() - Any thread: write the data to the data_vio's allocation without a
 *                            hash lock (ENOSPC if it has none), and go on.
 */
void vdo_write_data_plainly(struct data_vio *data_vio);

/**
 * vdo_continue_write_with_mapping() - Any thread: data_vio->new_mapping is where the data is
 *                                     (written, or shared); map it.
 */
void vdo_continue_write_with_mapping(struct data_vio *data_vio);

#endif /* VDO_DATA_VIO_H */
