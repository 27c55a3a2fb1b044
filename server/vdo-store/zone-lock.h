/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Zone locks: claims on keys (a logical block, a block map slot being filled) held by one
 * data_vio at a time, kept in a table owned by one zone thread.
 *
 * The lock node is embedded in the data_vio that wants the key. The first to ask holds the key;
 * later ones wait on the holder's list, in order. When the holder lets go, the first waiter
 * holds the key (with the rest of the list), and the caller launches it again.
 */
#ifndef VDO_ZONE_LOCK_H
#define VDO_ZONE_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

struct vdo_zone_lock {
	uint64_t key;
	struct vdo_zone_lock *hash_next;
	/* Holder: who waits, in order. */
	struct vdo_zone_lock *first_waiter;
	struct vdo_zone_lock *last_waiter;
	/* Waiter: the next one. */
	struct vdo_zone_lock *next_waiter;
};

struct vdo_lock_table {
	struct vdo_zone_lock **buckets;
	uint32_t mask;
};

/** vdo_make_lock_table() - A table for about @expected keys at once. */
int DD_MUST_CHECK vdo_make_lock_table(uint32_t expected, struct vdo_lock_table *table);

/** vdo_free_lock_table() - Free @table's buckets. */
void vdo_free_lock_table(struct vdo_lock_table *table);

/** vdo_lock_holder() - Who holds @key, or NULL. */
struct vdo_zone_lock *vdo_lock_holder(const struct vdo_lock_table *table, uint64_t key);

/**
 * vdo_acquire_zone_key() - Claim @key with @lock.
 *
 * Return: true if @lock now holds the key; false if it waits behind the holder.
 */
bool vdo_acquire_zone_key(struct vdo_lock_table *table, struct vdo_zone_lock *lock, uint64_t key);

/**
 * vdo_release_zone_key() - @lock (the holder) lets go of its key.
 *
 * Return: the waiter that holds the key now (to be launched again), or NULL.
 */
struct vdo_zone_lock *vdo_release_zone_key(struct vdo_lock_table *table,
                                           struct vdo_zone_lock *lock);

#endif /* VDO_ZONE_LOCK_H */
