/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the store: its zones and what they own.
 *
 * Threads (one thread set):
 *   journal      the recovery journal
 *   logical n    block map trees t % L == n, their page cache, and the locks on logical blocks
 *                and on block map slots being filled
 *   physical n   slabs s % P == n: reference counts, slab journals, allocation
 *   summary      the slab summary
 *   ack          request callbacks, so that a caller's code never runs on a zone thread
 *   admin        read-only mode's super block write, and messages the zones do not own
 *   recovery     after a crash, the slabs recovered in the background (background-recovery.h)
 *   hash n       hash locks of the names whose byte 8 chooses zone n, and their queries to the
 *                index (dedupe.h)
 *   cpu n        hashing data into record names
 *
 * Work moves between them as completions (completion.h): a data_vio (data-vio.h) carries one
 * block of a request through the zones, one step on each thread, as dm-vdo's design describes.
 */
#ifndef VDO_INTERNAL_H
#define VDO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "background-recovery.h"
#include "block-map.h"
#include "dedupe.h"
#include "lock-counter.h"
#include "recovery-journal.h"
#include "slab-depot.h"
#include "super-block.h"
#include "vdo-store.h"
#include "work-queue.h"
#include "zone-lock.h"

enum {
	VDO_MAX_ZONES = 16,
	/* Discards in flight at most, so that a huge discard cannot take the whole pool. */
	VDO_MAX_DISCARDS = VDO_DATA_VIO_COUNT / 4,
};

struct data_vio;

struct vdo_threads {
	dd_thread_id_t journal;
	dd_thread_id_t summary;
	dd_thread_id_t ack;
	dd_thread_id_t admin;
	dd_thread_id_t recovery;
	dd_thread_id_t logical[VDO_MAX_ZONES];
	dd_thread_id_t physical[VDO_MAX_ZONES];
	dd_thread_id_t hash[VDO_MAX_ZONES];
	dd_thread_id_t cpu[VDO_MAX_ZONES];
	unsigned int logical_count;
	unsigned int physical_count;
	unsigned int hash_count;
	unsigned int cpu_count;
};

struct logical_zone {
	unsigned int index;
	dd_thread_id_t thread;
	struct vdo_lock_table lbn_locks;
	struct vdo_lock_table slot_locks;
};

/* A message asking a zone to give back journal locks; at most one in flight per zone. */
struct lock_release {
	struct vdo_store *store;
	unsigned int zone;
	bool logical;
	atomic_bool queued;
	_Atomic vdo_sequence_t through;
	struct dd_completion completion;
};

/* Flushes wait for the writes acknowledged before them to be committed. */
struct flusher {
	pthread_mutex_t mutex;
	uint64_t generation;
	/* Writes acknowledged and not committed, per generation (a ring). */
	uint64_t *counts;
	uint64_t oldest;
	struct data_vio *waiters;
	struct data_vio *last_waiter;
};

struct data_vio_pool {
	pthread_mutex_t mutex;
	pthread_cond_t available;
	pthread_cond_t idle;
	struct data_vio *vios;
	struct data_vio *free;
	uint32_t busy;
	uint32_t discards;
};

struct vdo_store {
	struct block_device *device;
	struct vdo_super_block super;
	struct vdo_store_config config;
	struct dd_thread_set *threads;
	struct vdo_threads thread_ids;
	struct vdo_lock_counter *locks;
	struct vdo_recovery_journal *journal;
	struct vdo_slab_depot *depot;
	struct vdo_block_map *map;
	struct logical_zone logical[VDO_MAX_ZONES];
	struct lock_release releases[2 * VDO_MAX_ZONES];
	struct data_vio_pool pool;
	struct flusher flusher;
	atomic_bool read_only;
	struct dd_completion read_only_completion;
	atomic_uint next_zone;
	/* After a crash: the journal replayed (until the slabs are handed over), the slabs
	 * recovered before the volume came online, and those recovered in the background. */
	struct vdo_recovery *recovery;
	uint64_t recovery_entries;
	uint32_t slabs_recovered_before_online;
	struct vdo_background_recovery *background;
	pthread_mutex_t background_mutex;
	pthread_cond_t background_done;
	bool background_running;
	/* Counters, updated with relaxed atomics. */
	atomic_uint_fast64_t reads;
	atomic_uint_fast64_t writes;
	atomic_uint_fast64_t zero_writes;
	atomic_uint_fast64_t partial_writes;
	atomic_uint_fast64_t discards;
	atomic_uint_fast64_t flushes;
	atomic_uint_fast64_t read_hits_in_flight;
	/* Deduplication, when an index is configured (by the caller, or the volume's embedded
	 * index), and the identity of the index met, to record at a clean close. */
	struct vdo_index_config index_config;
	uint64_t index_identity;
	struct vdo_dedupe_index *index;
	struct vdo_hash_zones *hash_zones;
	struct dd_timer *timer;
};

/** vdo_enter_read_only() - Any thread: an unrecoverable error; stop all writes. */
void vdo_enter_read_only(struct vdo_store *store, int result);

/* The failure hook every component gets. */
void vdo_component_failed(void *store, int result);

#endif /* VDO_INTERNAL_H */
