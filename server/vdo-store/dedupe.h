/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Deduplication: hash zones and hash locks, between the write path and the index.
 *
 * A write of non-zero data is hashed (on a CPU thread) into its record name, whose bytes choose
 * a hash zone. The zone's thread owns the hash locks of the names in flight there and the
 * contexts of the index queries it makes, both from fixed pools. All the data_vios writing the
 * same data at once share one hash lock, and one of them, the agent, does the lock's work:
 * it asks the index where the data was stored before, verifies the advice by reading the block
 * and comparing it byte for byte, and either shares that block or writes the data itself, after
 * which the others share the agent's block. dedupe.c describes the states.
 *
 * A data_vio comes here with vdo_acquire_hash_lock() once its data has a name, and leaves with
 * one of three outcomes, each a call into the write path: it shares a block
 * (vdo_continue_write_with_mapping() with data_vio->new_mapping set and data_vio->is_duplicate),
 * it writes its own block as the lock's agent (vdo_write_data_for_lock(), which comes back with
 * vdo_hash_lock_data_written()), or it writes plainly without the lock
 * (vdo_write_data_plainly()). Once its mapping is stored it lets go with
 * vdo_release_hash_lock().
 */
#ifndef VDO_DEDUPE_H
#define VDO_DEDUPE_H

#include <stdbool.h>
#include <stdint.h>

#include "completion.h"
#include "dedupe-index.h"
#include "errors.h"
#include "record-name.h"
#include "slab-depot.h"
#include "timer.h"
#include "work-queue.h"

enum {
	VDO_MAX_HASH_ZONES = 16,
	/* dm-vdo's default dedupe timeout. */
	VDO_DEFAULT_DEDUPE_TIMEOUT_MS = 5000,
};

struct data_vio;
struct vdo_hash_zones;

struct vdo_dedupe_config {
	struct dd_thread_set *threads;
	unsigned int zone_count;
	const dd_thread_id_t *zone_threads;
	struct vdo_dedupe_index *index;
	struct vdo_slab_depot *depot;
	struct dd_timer *timer;
	/* The volume's nonce, which advice carries. */
	uint64_t nonce;
	/* How long a query may take before the write goes on without it (0: the default), and
	 * the shortest time between two looks for late queries (0: 100 ms or the timeout if it is
	 * shorter). */
	unsigned int timeout_ms;
	unsigned int min_timer_interval_ms;
	/* For tests: the record name of @data instead of its hash (NULL: the real name). */
	void (*name_block)(const uint8_t *data, struct dd_record_name *name);
};

/* The counters of all hash zones, with vdostats' names. */
struct vdo_dedupe_stats {
	uint64_t dedupe_advice_valid;
	uint64_t dedupe_advice_stale;
	uint64_t dedupe_advice_timeouts;
	uint64_t concurrent_data_matches;
	uint64_t concurrent_hash_collisions;
	uint64_t curr_dedupe_queries;
	uint64_t invalid_advice_pbn_count;
	/* Writes that went on without asking: the zone had no query context left. */
	uint64_t dedupe_context_busy;
	/* Writes that shared a block, and locks that ran out of references and forked. */
	uint64_t dedupe_shared;
	uint64_t dedupe_forks;
};

/** vdo_make_hash_zones() - Make the hash zones @config describes. */
int DD_MUST_CHECK vdo_make_hash_zones(const struct vdo_dedupe_config *config,
                                      struct vdo_hash_zones **zones_ptr);

/** vdo_free_hash_zones() - Free @zones (NULL is fine); nothing may be in flight. */
void vdo_free_hash_zones(struct vdo_hash_zones *zones);

/**
 * vdo_drain_hash_zone() - Zone @zone's thread: stop its timer, then finish @completion once no
 *                         query of the zone is out (the index must be closing or closed, so
 *                         that late answers come back).
 */
void vdo_drain_hash_zone(struct vdo_hash_zones *zones, unsigned int zone,
                         struct dd_completion *completion);

/** vdo_name_data_vio() - A CPU thread: name the data_vio's data and choose its hash zone. */
void vdo_name_data_vio(struct vdo_hash_zones *zones, struct data_vio *data_vio);

/** vdo_hash_zone_thread() - The thread of hash zone @zone. */
dd_thread_id_t vdo_hash_zone_thread(const struct vdo_hash_zones *zones, unsigned int zone);

/**
 * vdo_acquire_hash_lock() - The data_vio's hash zone thread: join (or start) the hash lock of
 *                           its name, and go on as the lock decides.
 */
void vdo_acquire_hash_lock(struct dd_completion *completion);

/**
 * vdo_hash_lock_data_written() - The physical zone thread of the agent's allocation: its data
 *                                is written; the block becomes the lock's to share.
 */
void vdo_hash_lock_data_written(struct dd_completion *completion);

/**
 * vdo_release_hash_lock() - The data_vio's hash zone thread: its mapping is stored (or it
 *                           failed); let go of the lock, then continue the completion's
 *                           callback as set by the caller... see dedupe.c.
 */
void vdo_release_hash_lock(struct data_vio *data_vio, dd_action_fn next, dd_thread_id_t thread);

/** vdo_get_dedupe_stats() - The counters of every hash zone. Any thread. */
void vdo_get_dedupe_stats(const struct vdo_hash_zones *zones, struct vdo_dedupe_stats *stats);

#endif /* VDO_DEDUPE_H */
