/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The data store's API: a volume of 4 KiB logical blocks over backing storage, for frontends
 * (iSCSI, ublk, NBD) and tools.
 *
 * Requests are asynchronous: vdo_store_submit() takes a request and calls its callback once,
 * later, on the store's acknowledgement thread. A write is acknowledged as soon as the store can
 * be sure to complete it (its block is allocated); like a disk's write cache, an acknowledged
 * write is durable only after a flush completes, or when it was written with VDO_REQUEST_FUA.
 * A read sees every write acknowledged before it was submitted.
 *
 * Offsets and lengths are in bytes, multiples of 512; a request may span blocks. Writes that do
 * not cover whole blocks read the rest of the block first. Discards unmap whole blocks and zero
 * the covered parts of partial ones. Writes of zeros use no storage.
 *
 * Each request needs a data_vio per block it touches from a fixed pool of 2048; submit waits
 * (blocks its caller) while the pool is empty, which is the store's back-pressure.
 *
 * A volume whose metadata fails becomes read-only: reads go on, writes and discards fail with
 * DD_READ_ONLY, and the state survives restarts until an explicit read-only rebuild.
 */
#ifndef VDO_STORE_H
#define VDO_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "errors.h"

struct vdo_store;
struct vdo_index_config;
struct dd_record_name;

struct vdo_store_config {
	/* Zones, each a thread (0: 1 logical, 1 physical). */
	unsigned int logical_zones;
	unsigned int physical_zones;
	/* Block map leaf pages cached, in all (0: 32768, 128 MiB). */
	uint32_t block_map_cache_pages;
	/* After a crash, a pause between two slabs that background recovery brings back while
	 * nothing waits for them, so that it takes less of the storage from requests (0: none). */
	uint32_t recovery_pause_ms;
	/* Deduplication: the index to ask for advice (dedupe-index.h), opened with the volume
	 * and closed with it; NULL: no deduplication. */
	const struct vdo_index_config *index;
	/* Open no index at all, not even the volume's embedded one (tools that only look). */
	bool no_dedupe;
	/* Hash zones, each a thread (0: 1, at most 16), and the CPU threads that hash data (0:
	 * 1). */
	unsigned int hash_zones;
	unsigned int cpu_threads;
	/* How long a write waits for the index before it goes on without dedupe (0: 5000 ms),
	 * and the shortest time between two looks for late answers (0: 100 ms). */
	unsigned int dedupe_timeout_ms;
	unsigned int dedupe_timer_interval_ms;
	/* For tests: names blocks in place of hashing them, to make names collide (NULL: the
	 * record name). */
	void (*name_block)(const uint8_t *data, struct dd_record_name *name);
};

enum vdo_request_operation {
	VDO_REQUEST_READ = 0,
	VDO_REQUEST_WRITE,
	VDO_REQUEST_FLUSH,
	VDO_REQUEST_DISCARD,
};

enum {
	/* Write: complete only once the data is durable. */
	VDO_REQUEST_FUA = 1,
};

struct vdo_request;
typedef void (*vdo_request_callback)(struct vdo_request *request);

struct vdo_request {
	enum vdo_request_operation operation;
	unsigned int flags;
	uint64_t offset;
	uint64_t length;
	/* Reads fill it, writes take their data from it; length bytes. */
	void *buffer;
	vdo_request_callback callback;
	/* Set before the callback: DD_SUCCESS, DD_READ_ONLY, ENOSPC (no space left for a write),
	 * DD_OUT_OF_RANGE, DD_INVALID_ARGUMENT, or an I/O error. */
	int result;
	void *context;
	/* The store's. */
	uint64_t pending;
	int first_error;
};

struct vdo_store_stats {
	/* vdostats' fields. */
	uint64_t physical_blocks;
	uint64_t logical_blocks;
	uint64_t data_blocks_used;
	uint64_t overhead_blocks_used;
	uint64_t logical_blocks_used;
	uint64_t free_blocks;
	bool read_only;
	/* "normal", "recovering" (slabs still being recovered after a crash) or "read-only". */
	const char *operating_mode;
	uint32_t recovery_count;
	uint32_t read_only_rebuild_count;
	/* Slabs, and the recovery done by this open after a crash: the journal entries replayed,
	 * the slabs recovered before the volume came online, and those still being recovered in
	 * the background. */
	uint64_t slab_count;
	uint64_t recovery_entries;
	uint64_t slabs_recovered_before_online;
	uint64_t slabs_recovering;
	/* Requests. */
	uint64_t reads;
	uint64_t writes;
	uint64_t zero_writes;
	uint64_t partial_writes;
	uint64_t discards;
	uint64_t flushes;
	uint64_t read_hits_in_flight;
	/* Journals and caches. */
	uint64_t journal_entries;
	uint64_t journal_writes;
	uint64_t journal_waits_for_space;
	uint64_t journal_head;
	uint64_t journal_tail;
	uint64_t block_map_hits;
	uint64_t block_map_misses;
	uint64_t block_map_reads;
	uint64_t block_map_writes;
	uint64_t block_map_dirty_pages;
	uint64_t block_map_data_blocks;
	uint64_t slab_journal_blocks_written;
	uint64_t ref_blocks_written;
	uint64_t dirty_slabs;
	uint64_t device_reads;
	uint64_t device_writes;
	uint64_t device_flushes;
	/* Deduplication (vdostats' names): advice that led to a block holding the data, advice
	 * that did not, queries that took too long; data_vios that found the same data in flight,
	 * and those whose name matched but data did not; queries out now; advice naming no data
	 * block of this volume; writes that went on without asking (no query context left); data
	 * blocks shared; hash locks that ran out of references. */
	bool dedupe_enabled;
	uint64_t dedupe_advice_valid;
	uint64_t dedupe_advice_stale;
	uint64_t dedupe_advice_timeouts;
	uint64_t concurrent_data_matches;
	uint64_t concurrent_hash_collisions;
	uint64_t curr_dedupe_queries;
	uint64_t invalid_advice_pbn_count;
	uint64_t dedupe_context_busy;
	uint64_t dedupe_shared;
	uint64_t dedupe_forks;
	/* The index: its state ("online", "opening", "rebuilding", "offline", "error"), its
	 * answers, and its own figures. */
	const char *index_state;
	uint64_t posts_found;
	uint64_t posts_not_found;
	uint64_t queries_found;
	uint64_t queries_not_found;
	uint64_t updates_found;
	uint64_t updates_not_found;
	uint64_t entries_indexed;
	uint64_t index_memory_bytes;
};

/**
 * vdo_store_open() - Open the volume on @device. A volume left dirty by a crash is recovered
 *                    first (its journal replayed); a read-only one opens read-only.
 *
 * Metadata found damaged while opening (a block map page, reference counts, a slab journal)
 * makes the volume read-only, on disk too: it then opens read-only, with success, and stays
 * so until a read-only rebuild (vdo_store_is_read_only() tells).
 *
 * Return: DD_SUCCESS; DD_BAD_MAGIC (no volume); DD_UNSUPPORTED_VERSION, DD_CHECKSUM_MISMATCH
 *         or DD_CORRUPT_DATA when no copy of the super block can be trusted; DD_BAD_STATE when
 *         a read-only rebuild was left unfinished; DD_INVALID_ARGUMENT for a bad @config; or
 *         an I/O or allocation error.
 */
int DD_MUST_CHECK vdo_store_open(struct block_device *device, const struct vdo_store_config *config,
                                 struct vdo_store **store_ptr);

/**
 * vdo_store_close() - Finish every request, write everything and mark the volume clean (or
 *                     leave it read-only), then free @store. The device stays open.
 */
int vdo_store_close(struct vdo_store *store);

/** vdo_store_submit() - Start @request; see above. Never call from a callback. */
void vdo_store_submit(struct vdo_store *store, struct vdo_request *request);

/**
 * vdo_store_wait_for_idle() - Wait until every request submitted so far has finished all its
 *                             work (not only been called back: writes go on after their
 *                             acknowledgement).
 */
void vdo_store_wait_for_idle(struct vdo_store *store);

/** vdo_store_get_stats() - A snapshot of the counters. */
void vdo_store_get_stats(struct vdo_store *store, struct vdo_store_stats *stats);

/** vdo_store_logical_bytes() - The volume's size as hosts see it. */
uint64_t vdo_store_logical_bytes(const struct vdo_store *store);

/** vdo_store_is_read_only() - Whether the volume has gone read-only. */
bool vdo_store_is_read_only(const struct vdo_store *store);

/**
 * vdo_store_grow_logical() - Make the volume @logical_blocks long (more than now); no request
 *                            may be in flight.
 */
int DD_MUST_CHECK vdo_store_grow_logical(struct vdo_store *store, uint64_t logical_blocks);

/**
 * vdo_store_grow_physical() - Use the storage the device has grown to (whole new slabs); no
 *                             request may be in flight.
 */
int DD_MUST_CHECK vdo_store_grow_physical(struct vdo_store *store);

#endif /* VDO_STORE_H */
