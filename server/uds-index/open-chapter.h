/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The open chapter: the records of the chapter being filled, one part per zone.
 *
 * Each zone owns one struct uds_open_chapter_zone and only its thread touches it. Records are
 * kept in arrival order in an array (so that records which arrived together end up on the same
 * record pages) and found through an open-addressing hash table of record numbers keyed by name
 * bytes 8-15. A put of a name already present updates its data in place; a removal marks the
 * record deleted (it is skipped when the chapter is closed) and leaves a tombstone so that the
 * probe chains stay intact. A zone's capacity is records_per_chapter / zone_count; when any zone
 * is full, all zones close the chapter together.
 *
 * Closing collates the zones' records into the chapter's record order: round robin over the
 * zones, one record from each in turn, skipping deleted records.
 *
 * Saving writes every live record of every zone (collated) to a buffered stream with a count;
 * loading sends each record to the zone a routing function names, so a save can be loaded into
 * a different zone count (dropping the records a zone has no room for).
 */
#ifndef UDS_OPEN_CHAPTER_H
#define UDS_OPEN_CHAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffered-io.h"
#include "errors.h"
#include "geometry.h"
#include "record-name.h"
#include "record-page.h"

/* One zone's part of the open chapter. */
struct uds_open_chapter_zone {
	/* Records this zone may hold. */
	uint32_t capacity;
	/* Records put (including deleted ones). */
	uint32_t size;
	/* Records deleted. */
	uint32_t deletions;
	/* Records in arrival order; records[0..size). */
	struct uds_volume_record *records;
	/* deleted[i] is true when records[i] was removed. */
	bool *deleted;
	/* Hash slots: 0 is empty, UINT32_MAX a tombstone, else record number + 1. */
	uint32_t *slots;
	/* Number of slots, a power of two at least twice the capacity. */
	uint32_t slot_count;
	/* Bytes allocated. */
	size_t memory_size;
};

/**
 * uds_make_open_chapter() - Allocate one zone's open chapter.
 * @geometry:   the index geometry
 * @zone_count: the number of zones sharing a chapter (the capacity is records_per_chapter /
 *              zone_count)
 * @zone_ptr:   set to the new open chapter zone
 */
int DD_MUST_CHECK uds_make_open_chapter(const struct uds_geometry *geometry,
                                        unsigned int zone_count,
                                        struct uds_open_chapter_zone **zone_ptr);

/** uds_free_open_chapter() - Free an open chapter zone (NULL is fine). */
void uds_free_open_chapter(struct uds_open_chapter_zone *zone);

/** uds_reset_open_chapter() - Empty an open chapter zone. */
void uds_reset_open_chapter(struct uds_open_chapter_zone *zone);

/**
 * uds_prefetch_open_chapter_name() - Start loading what a search or put of @name will touch:
 *                                    stage 0 its home slot; stage 1, called later, the record
 *                                    that slot names. Only a hint; it changes nothing.
 */
void uds_prefetch_open_chapter_name(const struct uds_open_chapter_zone *zone,
                                    const struct dd_record_name *name, unsigned int stage);

/**
 * uds_search_open_chapter() - Find a live record.
 * @zone: the open chapter zone
 * @name: the name
 * @data: set to the record's data when found (may be NULL)
 *
 * Return: true if found.
 */
bool uds_search_open_chapter(const struct uds_open_chapter_zone *zone,
                             const struct dd_record_name *name, struct uds_record_data *data);

/**
 * uds_put_open_chapter() - Add a record, or update the data of a live record with this name.
 * @zone:          the open chapter zone
 * @name:          the name
 * @data:          the data
 * @remaining_ptr: set to the free record slots left after the put (0: the chapter must close)
 *
 * Return: DD_SUCCESS, or DD_OVERFLOW if the zone was already full (nothing changed).
 */
int DD_MUST_CHECK uds_put_open_chapter(struct uds_open_chapter_zone *zone,
                                       const struct dd_record_name *name,
                                       const struct uds_record_data *data, uint32_t *remaining_ptr);

/**
 * uds_remove_from_open_chapter() - Delete the live record with this name, if any.
 *
 * Return: true if a record was removed.
 */
bool uds_remove_from_open_chapter(struct uds_open_chapter_zone *zone,
                                  const struct dd_record_name *name);

/** uds_open_chapter_live_records() - Records put and not deleted. */
static inline uint32_t uds_open_chapter_live_records(const struct uds_open_chapter_zone *zone)
{
	return zone->size - zone->deletions;
}

/* A walk over the live records of several zones in chapter order (see the functions below). */
struct uds_open_chapter_collator {
	struct uds_open_chapter_zone *const *zones;
	unsigned int zone_count;
	/* The zone to take the next record from. */
	unsigned int next_zone;
	/* Live records not yet taken. */
	uint64_t remaining;
	/* Per zone, the record number to look at next. */
	uint32_t cursors[UDS_MAX_ZONES];
};

/**
 * uds_start_open_chapter_collation() - Start a walk over the live records of all zones in
 *                                      chapter order.
 * @collator:   the walk, filled in
 * @zones:      the zones' open chapters, which must not change during the walk
 * @zone_count: how many, at most UDS_MAX_ZONES
 */
void uds_start_open_chapter_collation(struct uds_open_chapter_collator *collator,
                                      struct uds_open_chapter_zone *const *zones,
                                      unsigned int zone_count);

/**
 * uds_collate_open_chapter_records() - Take the next records of a walk (say, one record page).
 * @collator:  the walk
 * @records:   room for @max_count records
 * @max_count: the most records to take
 *
 * Return: the number of records written to @records; less than @max_count only at the end.
 */
uint32_t uds_collate_open_chapter_records(struct uds_open_chapter_collator *collator,
                                          struct uds_volume_record *records, uint32_t max_count);

/**
 * uds_collate_open_chapters() - Gather the live records of all zones in chapter order.
 * @zones:      the zones' open chapters
 * @zone_count: how many
 * @records:    room for the sum of the zones' live records
 *
 * Return: the number of records written to @records.
 */
uint32_t uds_collate_open_chapters(struct uds_open_chapter_zone *const *zones,
                                   unsigned int zone_count, struct uds_volume_record *records);

/** uds_compute_open_chapter_save_bytes() - Stream bytes needed by uds_save_open_chapter(). */
size_t uds_compute_open_chapter_save_bytes(const struct uds_geometry *geometry);

/**
 * uds_save_open_chapter() - Write the live records of all zones to a stream.
 * @zones:      the zones' open chapters
 * @zone_count: how many
 * @writer:     the stream (not finished by this call)
 */
int DD_MUST_CHECK uds_save_open_chapter(struct uds_open_chapter_zone *const *zones,
                                        unsigned int zone_count, struct dd_buffered_writer *writer);

/* Names the zone of a name, for loading. */
typedef unsigned int (*uds_zone_router_fn)(const void *context, const struct dd_record_name *name);

/**
 * uds_load_open_chapter() - Read records saved by uds_save_open_chapter() into empty zones.
 * @zones:      the zones' open chapters, already reset
 * @zone_count: how many
 * @router:     gives each record's zone
 * @context:    passed to @router
 * @reader:     the stream
 *
 * The open chapter is a hint: records that a zone has no room for (a save loaded into another
 * zone count may route more than a zone's share to it) are dropped, and their number logged.
 *
 * Return: DD_SUCCESS, or an error (logged) for a corrupt stream; the zones are left empty on
 *         error.
 */
int DD_MUST_CHECK uds_load_open_chapter(struct uds_open_chapter_zone *const *zones,
                                        unsigned int zone_count, uds_zone_router_fn router,
                                        const void *context, struct dd_buffered_reader *reader);

/**
 * uds_load_open_chapter_dropping() - uds_load_open_chapter(), also telling how many records
 *                                    were dropped.
 * @dropped_ptr: set to the number of saved records that did not fit their zone (0 on error)
 */
int DD_MUST_CHECK uds_load_open_chapter_dropping(struct uds_open_chapter_zone *const *zones,
                                                 unsigned int zone_count, uds_zone_router_fn router,
                                                 const void *context,
                                                 struct dd_buffered_reader *reader,
                                                 uint64_t *dropped_ptr);

#endif /* UDS_OPEN_CHAPTER_H */
