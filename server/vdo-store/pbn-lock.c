// SPDX-License-Identifier: GPL-2.0-only
/*
 * Physical block locks; see pbn-lock.h.
 *
 * The pool is an array of locks with a free list through their next fields, and a chained hash
 * table of the locks in use with twice as many buckets as the pool has locks.
 */
#include "pbn-lock.h"

#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"

struct vdo_pbn_lock_pool {
	struct vdo_pbn_lock *locks;
	struct vdo_pbn_lock *free;
	uint32_t capacity;
	uint32_t held;
	struct vdo_pbn_lock **buckets;
	uint32_t mask;
};

int vdo_make_pbn_lock_pool(uint32_t capacity, struct vdo_pbn_lock_pool **pool_ptr)
{
	struct vdo_pbn_lock_pool *pool;
	uint32_t buckets = 1;
	int result;

	while (buckets < 2 * capacity)
		buckets *= 2;
	result = dd_allocate(sizeof(*pool), "pbn lock pool", &pool);
	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE(capacity, struct vdo_pbn_lock, "pbn locks", &pool->locks);
	if (result == DD_SUCCESS)
		result =
		    DD_ALLOCATE(buckets, struct vdo_pbn_lock *, "pbn lock buckets", &pool->buckets);
	if (result != DD_SUCCESS) {
		vdo_free_pbn_lock_pool(pool);
		return result;
	}
	pool->capacity = capacity;
	pool->mask = buckets - 1;
	for (uint32_t i = capacity; i > 0; i--) {
		pool->locks[i - 1].next = pool->free;
		pool->free = &pool->locks[i - 1];
	}
	*pool_ptr = pool;
	return DD_SUCCESS;
}

void vdo_free_pbn_lock_pool(struct vdo_pbn_lock_pool *pool)
{
	if (pool == NULL)
		return;
	if (pool->held > 0)
		dd_log_error("%u physical block locks are still held", pool->held);
	dd_free(pool->buckets);
	dd_free(pool->locks);
	dd_free(pool);
}

static struct vdo_pbn_lock **bucket_of(const struct vdo_pbn_lock_pool *pool, vdo_pbn_t pbn)
{
	/* Fibonacci hashing spreads runs of neighbouring blocks. */
	return &pool->buckets[(uint32_t) ((pbn * 0x9e3779b97f4a7c15ULL) >> 32) & pool->mask];
}

struct vdo_pbn_lock *vdo_get_pbn_lock(const struct vdo_pbn_lock_pool *pool, vdo_pbn_t pbn)
{
	for (struct vdo_pbn_lock *lock = *bucket_of(pool, pbn); lock != NULL; lock = lock->next) {
		if (lock->pbn == pbn)
			return lock;
	}
	return NULL;
}

int vdo_make_pbn_lock(struct vdo_pbn_lock_pool *pool, vdo_pbn_t pbn, enum vdo_pbn_lock_type type,
                      struct vdo_pbn_lock **lock_ptr)
{
	struct vdo_pbn_lock **bucket = bucket_of(pool, pbn);
	struct vdo_pbn_lock *lock = pool->free;

	if (vdo_get_pbn_lock(pool, pbn) != NULL)
		return dd_log_error_strerror(DD_BAD_STATE, "block %llu is locked already",
		                             (unsigned long long) pbn);
	if (lock == NULL)
		return dd_log_error_strerror(DD_BAD_STATE, "all %u physical block locks are held",
		                             pool->capacity);
	pool->free = lock->next;
	*lock = (struct vdo_pbn_lock){ .pbn = pbn, .type = type, .holders = 1, .next = *bucket };
	atomic_init(&lock->increments_claimed, 0);
	*bucket = lock;
	pool->held++;
	*lock_ptr = lock;
	return DD_SUCCESS;
}

static void unlink_lock(struct vdo_pbn_lock_pool *pool, struct vdo_pbn_lock *lock)
{
	struct vdo_pbn_lock **link = bucket_of(pool, lock->pbn);

	while (*link != lock)
		link = &(*link)->next;
	*link = lock->next;
}

bool vdo_release_pbn_lock(struct vdo_pbn_lock_pool *pool, struct vdo_pbn_lock *lock)
{
	bool provisional;

	if (DD_ASSERT(lock->holders > 0, "block %llu's lock is held",
	              (unsigned long long) lock->pbn) != DD_SUCCESS)
		return false;
	if (--lock->holders > 0)
		return false;
	provisional = lock->has_provisional_reference;
	unlink_lock(pool, lock);
	lock->next = pool->free;
	pool->free = lock;
	pool->held--;
	return provisional;
}

bool vdo_claim_pbn_increment(struct vdo_pbn_lock *lock)
{
	uint32_t claim = atomic_fetch_add(&lock->increments_claimed, 1) + 1;

	return claim <= lock->increment_limit;
}

uint32_t vdo_pbn_locks_held(const struct vdo_pbn_lock_pool *pool)
{
	return pool->held;
}
