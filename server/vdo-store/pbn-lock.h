/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Physical block locks: claims on data blocks, one table per physical zone, owned by the zone's
 * thread.
 *
 * Two kinds, as in dm-vdo:
 *
 *   write  a write has just been given the block (its count is provisional) and is writing it;
 *          until the write's increment lands, nobody may take the block as a duplicate, since
 *          what it holds is not yet the write's data. One holder.
 *   read   a hash lock verifies advice that names the block, or shares it: it reads the block,
 *          compares it with its data, and adds references to it. Any number of holders share
 *          one read lock (the hash locks of the fragments of one compressed block, or of a
 *          name whose lock forked). The lock carries the block's increment limit: the
 *          references it can still take (254 less its count when the lock was made), which
 *          the data_vios sharing the block claim one by one; a claim beyond the limit fails
 *          and the claimer writes a copy of its own. Increments made under the lock are the
 *          only ones the block can get meanwhile (everything that shares a block does so
 *          through this one lock), so the limit holds.
 *
 * The provisional reference. While a read lock is held, an overwrite may drop the block's last
 * mapping. Freed, the block could be allocated to another write and overwritten before the
 * readers' increments land, which would then point their mappings at foreign data. So a
 * decrement that would free a read-locked block leaves it provisional instead and the lock
 * takes note; the readers' first increment turns it into a real reference, and when the last
 * holder lets go, the lock gives back a provisional reference nobody took.
 *
 * A lock is not a waiting line: whoever cannot have the lock it wants (a read of a block being
 * written) goes on without it (writes the data plainly). Locks come from a fixed pool per zone,
 * large enough for every data_vio to hold one write lock and every hash lock one read lock.
 */
#ifndef VDO_PBN_LOCK_H
#define VDO_PBN_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "vdo-types.h"

enum vdo_pbn_lock_type {
	VDO_PBN_WRITE_LOCK = 0,
	VDO_PBN_READ_LOCK,
};

struct vdo_pbn_lock {
	vdo_pbn_t pbn;
	enum vdo_pbn_lock_type type;
	/* How many hold it (a write lock: 1). Zone thread. */
	uint32_t holders;
	/* Read locks: the references the block may still take, and how many of them have been
	 * claimed (claims come from hash zones, on their own threads). */
	uint32_t increment_limit;
	atomic_uint increments_claimed;
	/* The block's last mapping went away while it was read-locked: its count is
	 * provisional until an increment lands or the lock is released. Zone thread. */
	bool has_provisional_reference;
	/* The table's chain, or the pool's free list. */
	struct vdo_pbn_lock *next;
};

struct vdo_pbn_lock_pool;

/** vdo_make_pbn_lock_pool() - A table with room for @capacity locks at once. */
int DD_MUST_CHECK vdo_make_pbn_lock_pool(uint32_t capacity, struct vdo_pbn_lock_pool **pool_ptr);

/** vdo_free_pbn_lock_pool() - Free @pool (NULL is fine); every lock must be back. */
void vdo_free_pbn_lock_pool(struct vdo_pbn_lock_pool *pool);

/** vdo_get_pbn_lock() - The lock on @pbn, or NULL. */
struct vdo_pbn_lock *vdo_get_pbn_lock(const struct vdo_pbn_lock_pool *pool, vdo_pbn_t pbn);

/**
 * vdo_make_pbn_lock() - Lock @pbn, which nobody has locked, as @type, with one holder.
 *
 * Return: DD_SUCCESS; DD_BAD_STATE if @pbn is locked already or the pool is empty (both mean
 *         the store's accounting is wrong).
 */
int DD_MUST_CHECK vdo_make_pbn_lock(struct vdo_pbn_lock_pool *pool, vdo_pbn_t pbn,
                                    enum vdo_pbn_lock_type type, struct vdo_pbn_lock **lock_ptr);

/**
 * vdo_release_pbn_lock() - One holder lets go. The last one gives the lock back to @pool.
 *
 * Return: true if the lock went back with a provisional reference nobody took, which the
 *         caller must give back (vdo_release_allocation()).
 */
bool vdo_release_pbn_lock(struct vdo_pbn_lock_pool *pool, struct vdo_pbn_lock *lock);

/**
 * vdo_claim_pbn_increment() - Claim one of a read lock's references. Any thread.
 *
 * Return: true if the claimer may add a reference to the block; false when the block has no
 *         more to give (a failed claim is not given back: the lock is spent).
 */
bool vdo_claim_pbn_increment(struct vdo_pbn_lock *lock);

/** vdo_pbn_locks_held() - How many locks are out of @pool now. */
uint32_t vdo_pbn_locks_held(const struct vdo_pbn_lock_pool *pool);

#endif /* VDO_PBN_LOCK_H */
