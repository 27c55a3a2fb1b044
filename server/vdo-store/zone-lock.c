// SPDX-License-Identifier: GPL-2.0-only
/*
 * Zone locks; see zone-lock.h.
 */
#include "zone-lock.h"

#include "memory-alloc.h"

static uint32_t bucket_of(const struct vdo_lock_table *table, uint64_t key)
{
	return (uint32_t) ((key * 0x9e3779b97f4a7c15ULL) >> 32) & table->mask;
}

int vdo_make_lock_table(uint32_t expected, struct vdo_lock_table *table)
{
	uint32_t buckets = 64;

	while (buckets < expected)
		buckets *= 2;
	table->mask = buckets - 1;
	return DD_ALLOCATE(buckets, struct vdo_zone_lock *, "lock table", &table->buckets);
}

void vdo_free_lock_table(struct vdo_lock_table *table)
{
	dd_free(table->buckets);
	table->buckets = NULL;
}

struct vdo_zone_lock *vdo_lock_holder(const struct vdo_lock_table *table, uint64_t key)
{
	struct vdo_zone_lock *lock = table->buckets[bucket_of(table, key)];

	while ((lock != NULL) && (lock->key != key))
		lock = lock->hash_next;
	return lock;
}

static void insert(struct vdo_lock_table *table, struct vdo_zone_lock *lock)
{
	uint32_t bucket = bucket_of(table, lock->key);

	lock->hash_next = table->buckets[bucket];
	table->buckets[bucket] = lock;
}

bool vdo_acquire_zone_key(struct vdo_lock_table *table, struct vdo_zone_lock *lock, uint64_t key)
{
	struct vdo_zone_lock *holder = vdo_lock_holder(table, key);

	lock->key = key;
	lock->next_waiter = NULL;
	if (holder == NULL) {
		lock->first_waiter = NULL;
		lock->last_waiter = NULL;
		insert(table, lock);
		return true;
	}
	if (holder->last_waiter != NULL)
		holder->last_waiter->next_waiter = lock;
	else
		holder->first_waiter = lock;
	holder->last_waiter = lock;
	return false;
}

struct vdo_zone_lock *vdo_release_zone_key(struct vdo_lock_table *table, struct vdo_zone_lock *lock)
{
	struct vdo_zone_lock **link = &table->buckets[bucket_of(table, lock->key)];
	struct vdo_zone_lock *next = lock->first_waiter;

	while (*link != lock)
		link = &(*link)->hash_next;
	*link = lock->hash_next;
	if (next == NULL)
		return NULL;
	next->first_waiter = next->next_waiter;
	next->last_waiter = (next->next_waiter != NULL) ? lock->last_waiter : NULL;
	next->next_waiter = NULL;
	insert(table, next);
	return next;
}
