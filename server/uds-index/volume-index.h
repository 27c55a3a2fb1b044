/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The volume index: for each name, the newest chapter that may hold its record.
 *
 * A mutable, zoned delta index kept entirely in memory. The key is name bytes 0-7 (see
 * dd_record_name_volume_index_bits()): the low address bits are the key within a list and the
 * bits above pick the list; lists are split evenly among the zones, so a name's zone is fixed by
 * its list, and each zone belongs to one thread. The value of an entry is the low bits of the
 * virtual chapter number; with each zone's window [oldest, newest] the full number is recovered
 * as the one in the window with those low bits. Entries of chapters older than the window have
 * expired: they are removed lazily, whenever a search walks over them. If a zone's memory runs
 * short, the zone expires its oldest chapters early (counted as early flushes) rather than fail.
 * Two names with the same address are told apart by collision entries carrying the full name.
 *
 * Sparse indexes use two sub-indexes: one holds the hooks (names whose sample bits % 32 == 0)
 * of every chapter in the window; the other holds the other names of the dense chapters only.
 * A hook found in a sparse chapter tells the index which chapter's index to cache and search.
 *
 * Save and load go one zone stream each way, and a save loads into any zone count.
 */
#ifndef UDS_VOLUME_INDEX_H
#define UDS_VOLUME_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffered-io.h"
#include "delta-index.h"
#include "errors.h"
#include "geometry.h"
#include "record-name.h"

struct uds_volume_index;
struct uds_volume_sub_index;

/* The result of a search, positioned for a following put, set or remove. */
struct uds_volume_index_record {
	/* The name searched for. */
	const struct dd_record_name *name;
	/* The chapter of the entry found (valid when is_found). */
	uint64_t virtual_chapter;
	/* An entry with this name's address was found (it may belong to another name). */
	bool is_found;
	/* The entry found is a collision entry, so it certainly belongs to this name. */
	bool is_collision;

	/* private */
	struct uds_volume_index *index;
	struct uds_volume_sub_index *sub_index;
	unsigned int zone_number;
	struct uds_delta_entry delta_entry;
};

/* Counters of a volume index, summed over zones (and sub-indexes). */
struct uds_volume_index_stats {
	/* Bytes allocated. */
	size_t memory_allocated;
	/* Entries now in the index (live or not yet purged). */
	uint64_t record_count;
	/* Collision entries now in the index. */
	uint64_t collision_count;
	/* Entries removed because their chapter expired. */
	uint64_t discard_count;
	/* Entries that could not be added because a zone was full. */
	uint64_t overflow_count;
	/* Chapters expired early to free memory. */
	uint64_t early_flushes;
	/* Zone rebalances of the delta index. */
	uint64_t rebalance_count;
	dd_ktime_t rebalance_time;
	/* Delta lists. */
	uint32_t list_count;
	/* Bits of list data in use, and the bits the zones' memory can hold. */
	uint64_t used_bits;
	uint64_t capacity_bits;
};

/**
 * uds_compute_volume_index_memory() - Bytes a volume index for this geometry will allocate.
 */
size_t uds_compute_volume_index_memory(const struct uds_geometry *geometry);

/**
 * uds_make_volume_index() - Allocate an empty volume index.
 * @geometry:   the index geometry (kept by reference)
 * @zone_count: zones (threads), 1..UDS_MAX_ZONES
 * @index_ptr:  set to the new volume index
 */
int DD_MUST_CHECK uds_make_volume_index(const struct uds_geometry *geometry,
                                        unsigned int zone_count,
                                        struct uds_volume_index **index_ptr);

/** uds_free_volume_index() - Free a volume index (NULL is fine). */
void uds_free_volume_index(struct uds_volume_index *index);

/**
 * uds_get_volume_index_order() - Where a name's entry sits in its sub-index, as the top 32 bits
 *                                of (list number, key): names searched in this order walk each
 *                                zone's memory forwards (as a rebuild replaying sorted names
 *                                does). Hooks and other names each keep their own order.
 */
uint32_t uds_get_volume_index_order(const struct uds_volume_index *index,
                                    const struct dd_record_name *name);

/** uds_get_volume_index_zone() - The zone that owns a name. */
unsigned int uds_get_volume_index_zone(const struct uds_volume_index *index,
                                       const struct dd_record_name *name);

/** uds_is_volume_index_sample() - Tell whether a name is a sparse hook (false when dense). */
bool uds_is_volume_index_sample(const struct uds_volume_index *index,
                                const struct dd_record_name *name);

/**
 * uds_set_volume_index_open_chapter() - Set the open chapter of every zone (not thread safe:
 *                                       for loading and rebuilding).
 */
void uds_set_volume_index_open_chapter(struct uds_volume_index *index, uint64_t virtual_chapter);

/**
 * uds_set_volume_index_zone_open_chapter() - Advance one zone's window to a new open chapter.
 * @index:           the volume index
 * @zone_number:     the zone (the caller is its thread)
 * @virtual_chapter: the new open chapter; the window becomes
 *                   [virtual_chapter - chapters_per_volume + 1, virtual_chapter], or narrower
 *                   after early flushes
 */
void uds_set_volume_index_zone_open_chapter(struct uds_volume_index *index,
                                            unsigned int zone_number, uint64_t virtual_chapter);

/**
 * uds_get_volume_index_record() - Search for a name, positioning @record for an update.
 * @index:  the volume index
 * @name:   the name (must stay valid while @record is used)
 * @record: filled in
 *
 * Expired entries met on the way are removed. For a sparse index, hooks are searched in the hook
 * sub-index and other names in the dense sub-index.
 */
int DD_MUST_CHECK uds_get_volume_index_record(struct uds_volume_index *index,
                                              const struct dd_record_name *name,
                                              struct uds_volume_index_record *record);

/**
 * uds_put_volume_index_record() - Add an entry for the record's name in a chapter.
 *
 * After a search that found nothing, adds an ordinary entry; after a search that found another
 * name's entry, adds a collision entry. Return: DD_SUCCESS, DD_OVERFLOW if the zone is full
 * (counted; the name is simply not indexed), DD_INVALID_ARGUMENT for a chapter outside the window.
 */
int DD_MUST_CHECK uds_put_volume_index_record(struct uds_volume_index_record *record,
                                              uint64_t virtual_chapter);

/**
 * uds_set_volume_index_record_chapter() - Point the found entry at another chapter.
 */
int DD_MUST_CHECK uds_set_volume_index_record_chapter(struct uds_volume_index_record *record,
                                                      uint64_t virtual_chapter);

/** uds_remove_volume_index_record() - Remove the found entry. */
int DD_MUST_CHECK uds_remove_volume_index_record(struct uds_volume_index_record *record);

/**
 * uds_lookup_volume_index_name() - Read-only lookup of a name's chapter.
 * @index:   the volume index
 * @name:    the name
 * @chapter: set to the chapter, or UINT64_MAX if the name has no live entry
 *
 * Removes nothing. May be called by the zone's thread only.
 */
int DD_MUST_CHECK uds_lookup_volume_index_name(const struct uds_volume_index *index,
                                               const struct dd_record_name *name,
                                               uint64_t *chapter);

/**
 * uds_prefetch_volume_index_name() - Start loading the memory a search for @name will touch,
 *                                    so that a zone thread with a batch of requests can overlap
 *                                    the cache misses of several searches.
 * @index: the volume index
 * @name:  the name that will be searched for
 * @stage: 0 prefetches the name's list header (and flush chapter); 1, called later, once the
 *         header is likely cached (say a few requests after stage 0), reads the header and
 *         prefetches the first cache lines of the list's bits
 *
 * Only a hint: it changes nothing, fails never, and a search gives the same answer whether or
 * not it was called. Call it only from the thread of the zone that owns @name (stage 1 reads a
 * list header that this thread may be changing). A typical pipeline: stage 0 for request i + 8,
 * stage 1 for request i + 4, then search request i.
 */
void uds_prefetch_volume_index_name(const struct uds_volume_index *index,
                                    const struct dd_record_name *name, unsigned int stage);

/** uds_get_volume_index_stats() - Sum the counters (read while the zones are quiet). */
void uds_get_volume_index_stats(const struct uds_volume_index *index,
                                struct uds_volume_index_stats *stats);

/**
 * uds_compute_volume_index_save_bytes() - Stream bytes needed to save one zone of an index of
 *                                         this geometry with this many zones (upper bound).
 */
size_t uds_compute_volume_index_save_bytes(const struct uds_geometry *geometry,
                                           unsigned int zone_count);

/**
 * uds_save_volume_index_zone() - Write one zone (its window and its entries) to a stream.
 * @index:       the volume index
 * @zone_number: the zone
 * @writer:      the stream (not finished by this call)
 */
int DD_MUST_CHECK uds_save_volume_index_zone(const struct uds_volume_index *index,
                                             unsigned int zone_number,
                                             struct dd_buffered_writer *writer);

/**
 * uds_load_volume_index() - Restore an index from the streams of all the zones of a save.
 * @index:        an index of the same geometry (any zone count)
 * @readers:      one stream per saved zone
 * @reader_count: the zone count of the save
 *
 * Return: DD_SUCCESS, or an error (logged) for a corrupt or mismatched save; the index is left
 *         empty on error.
 */
int DD_MUST_CHECK uds_load_volume_index(struct uds_volume_index *index,
                                        struct dd_buffered_reader **readers,
                                        unsigned int reader_count);

#endif /* UDS_VOLUME_INDEX_H */
