// SPDX-License-Identifier: GPL-2.0-only
/*
 * The open chapter; see open-chapter.h for what it is for.
 *
 * Records. A zone appends each new record to its records array and never moves it, so record
 * numbers stay valid until the zone is reset, and the array is already in arrival order when
 * the chapter closes. A removed record keeps its place (and its part of the capacity) with its
 * deleted flag set; putting the same name again appends a new record. So size only grows, and
 * the records left for a chapter are the capacity minus size.
 *
 * Hash table. slots[] maps a name to its record number with open addressing and linear probing.
 * The home slot comes from name bytes 8-15, read as one native 64-bit word and multiplied by a
 * 64-bit odd constant (Fibonacci hashing); the high half of the product is reduced with the mask
 * of the power-of-two table. Names are already uniform hashes, so the multiply is only there to
 * fold all 64 bits into the slot number cheaply. Bytes 8-15 are independent of bytes 0-7, which
 * chose the zone, so every zone sees uniformly spread home slots.
 *
 * A slot holds 0 (empty), UINT32_MAX (a tombstone) or a record number + 1. A search probes from
 * the home slot until it finds the name or an empty slot; tombstones keep probe paths intact
 * after removals. A put reuses the first tombstone on its path. A removal whose next slot is
 * empty ends every probe path that reaches it, so instead of a tombstone it empties its slot,
 * and any tombstones just before it too. Only records that have been put (live or deleted)
 * occupy slots, so slots in use (live + tombstones) <= size <= capacity <= slot_count / 2: the
 * load factor, tombstones included, never passes 1/2 and a probe always ends at an empty slot.
 * Search, put and remove touch only the slots on one probe path and the records they name; they
 * never allocate.
 *
 * Memory. 32 bytes of record and 1 byte of deleted flag per record of capacity, and 4 bytes per
 * slot, 2 to 4 slots per record (slot_count is the power of two at or above 2 * capacity): 41 to
 * 49 bytes per record. The chapters of uds_make_geometry() hold a whole number of record pages,
 * a little over a power of two (65,659 = 517 x 127 records for 256 MB), so with a power-of-two
 * zone count they get 4 slots per record: 49 bytes.
 *
 * Reset empties the slots with one memset() and sets size and deletions to 0. Deleted flags are
 * written when a record is appended, so they need no clearing.
 *
 * Collation takes the zones in turn, one live record from each, skipping deleted records and
 * zones that have run out, until every live record has been taken.
 *
 * Save format (a stream written with dd_write_to_buffered_writer(); integers little-endian):
 *   0  magic "UOCH"     4 bytes
 *   4  version (1)      u32
 *   8  record count     u64
 *  16  records          count x (name 16 bytes, data 16 bytes), in collated order
 * uds_compute_open_chapter_save_bytes() gives the payload bytes of the largest such stream; a
 * caller sizes the stream's region with dd_buffered_stream_size() of it. Loading checks the
 * header and routes each record to its zone. A save may be loaded into a different zone count,
 * whose zones split the chapter differently: a zone may then be offered more records than it
 * holds (a one-zone chapter more than half full, loaded into two zones, overflows one of them
 * about half the time). The open chapter is only a hint of what was recently seen, so such
 * records are dropped (counted and logged) and the load goes on; the kept ones are the earliest
 * of their zone in chapter order. A count of more than twice the capacity of all the zones
 * (which no save of this geometry writes: capacity * zone_count >= records_per_chapter / 2 for
 * any zone count), a name that appears twice in one zone or a bad zone number from the router
 * means a damaged or foreign stream and fails the load, which then leaves every zone empty.
 */
#include "open-chapter.h"

#include <assert.h>
#include <string.h>

#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"

/* Slot contents other than a record number + 1. */
#define SLOT_EMPTY     0u
#define SLOT_TOMBSTONE UINT32_MAX
/* "No slot": slot indices are below slot_count <= 2^31. */
#define NO_SLOT UINT32_MAX
/* 2^64 / golden ratio, odd: the multiplier of Fibonacci hashing. */
#define HASH_MULTIPLIER 0x9E3779B97F4A7C15ULL

enum {
	/* Largest zone capacity: keeps slot_count (>= 2 * capacity) within 2^31. */
	MAX_CAPACITY = 1u << 30,
	SAVE_MAGIC_BYTES = 4,
	SAVE_VERSION = 1,
	SAVE_HEADER_BYTES = SAVE_MAGIC_BYTES + 4 + 8,
	/* Records encoded or decoded per buffered stream call. */
	IO_BATCH_RECORDS = 128,
};

static const uint8_t SAVE_MAGIC[SAVE_MAGIC_BYTES] = { 'U', 'O', 'C', 'H' };

static_assert(sizeof(struct uds_volume_record) == UDS_RECORD_BYTES,
              "a volume record is a name and its data, unpadded");

/* ------------------------------------------------------------------------------------------ */
/* Allocation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* The smallest power of two at least twice @capacity (capacity <= MAX_CAPACITY). */
static uint32_t compute_slot_count(uint32_t capacity)
{
	uint32_t count = 2;

	while (count < 2 * capacity)
		count <<= 1;
	return count;
}

int uds_make_open_chapter(const struct uds_geometry *geometry, unsigned int zone_count,
                          struct uds_open_chapter_zone **zone_ptr)
{
	struct uds_open_chapter_zone *zone;
	uint32_t capacity;
	int result;

	if ((zone_count == 0) || (zone_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "open chapter for %u zones",
		                             zone_count);
	capacity = geometry->records_per_chapter / zone_count;
	if (capacity == 0)
		capacity = 1;
	if (capacity > MAX_CAPACITY)
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "open chapter zone of %u records is too large", capacity);

	result = dd_allocate(sizeof(*zone), "open chapter zone", &zone);
	if (result != DD_SUCCESS)
		return result;
	zone->capacity = capacity;
	zone->slot_count = compute_slot_count(capacity);
	result =
	    DD_ALLOCATE(capacity, struct uds_volume_record, "open chapter records", &zone->records);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(capacity, bool, "open chapter deleted flags", &zone->deleted);
	if (result == DD_SUCCESS)
		result =
		    DD_ALLOCATE(zone->slot_count, uint32_t, "open chapter slots", &zone->slots);
	if (result != DD_SUCCESS) {
		uds_free_open_chapter(zone);
		return result;
	}
	zone->memory_size = sizeof(*zone) +
	                    (size_t) capacity * (sizeof(*zone->records) + sizeof(*zone->deleted)) +
	                    (size_t) zone->slot_count * sizeof(*zone->slots);
	*zone_ptr = zone;
	return DD_SUCCESS;
}

void uds_free_open_chapter(struct uds_open_chapter_zone *zone)
{
	if (zone == NULL)
		return;
	dd_free(zone->records);
	dd_free(zone->deleted);
	dd_free(zone->slots);
	dd_free(zone);
}

void uds_reset_open_chapter(struct uds_open_chapter_zone *zone)
{
	/* Slots are only ever filled by records, so an empty zone has no slot to clear. */
	if (zone->size > 0)
		memset(zone->slots, 0, (size_t) zone->slot_count * sizeof(*zone->slots));
	zone->size = 0;
	zone->deletions = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The hash table                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* The home slot of @name: name bytes 8-15 mixed by one multiply, reduced by @mask. */
static inline uint32_t home_slot(const struct dd_record_name *name, uint32_t mask)
{
	uint64_t bits;

	memcpy(&bits, &name->name[8], sizeof(bits));
	return (uint32_t) ((bits * HASH_MULTIPLIER) >> 32) & mask;
}

/*
 * Find the slot that holds the live record named @name, or NO_SLOT. When @free_ptr is not NULL,
 * it receives the slot a new record with this name should take if it is absent: the first
 * tombstone on the probe path, or else the empty slot that ended it.
 */
static inline uint32_t probe(const struct uds_open_chapter_zone *zone,
                             const struct dd_record_name *name, uint32_t *free_ptr)
{
	const uint32_t *slots = zone->slots;
	uint32_t mask = zone->slot_count - 1;
	uint32_t free_slot = NO_SLOT;

	for (uint32_t i = home_slot(name, mask);; i = (i + 1) & mask) {
		uint32_t entry = slots[i];

		if (entry == SLOT_EMPTY) {
			if (free_ptr != NULL)
				*free_ptr = (free_slot == NO_SLOT) ? i : free_slot;
			return NO_SLOT;
		}
		if (entry == SLOT_TOMBSTONE) {
			if (free_slot == NO_SLOT)
				free_slot = i;
		} else if (dd_record_name_equal(&zone->records[entry - 1].name, name)) {
			return i;
		}
	}
}

/* Append a record (the zone is not full) and point the free slot @slot at it. */
static inline void append_record(struct uds_open_chapter_zone *zone, uint32_t slot,
                                 const struct dd_record_name *name,
                                 const struct uds_record_data *data)
{
	uint32_t number = zone->size++;

	zone->records[number].name = *name;
	zone->records[number].data = *data;
	zone->deleted[number] = false;
	zone->slots[slot] = number + 1;
}

bool uds_search_open_chapter(const struct uds_open_chapter_zone *zone,
                             const struct dd_record_name *name, struct uds_record_data *data)
{
	uint32_t slot = probe(zone, name, NULL);

	if (slot == NO_SLOT)
		return false;
	if (data != NULL)
		*data = zone->records[zone->slots[slot] - 1].data;
	return true;
}

/*
 * Updating the data of a name already present takes no new record, so it succeeds even when the
 * zone is full. *@remaining_ptr is also set (to 0) when DD_OVERFLOW is returned.
 */
void uds_prefetch_open_chapter_name(const struct uds_open_chapter_zone *zone,
                                    const struct dd_record_name *name, unsigned int stage)
{
	const uint32_t *slot = &zone->slots[home_slot(name, zone->slot_count - 1)];

	if (stage == 0) {
		__builtin_prefetch(slot);
		return;
	}
	if ((*slot != SLOT_EMPTY) && (*slot != SLOT_TOMBSTONE))
		__builtin_prefetch(&zone->records[*slot - 1]);
}

int uds_put_open_chapter(struct uds_open_chapter_zone *zone, const struct dd_record_name *name,
                         const struct uds_record_data *data, uint32_t *remaining_ptr)
{
	uint32_t free_slot = 0;
	uint32_t slot = probe(zone, name, &free_slot);

	if (slot != NO_SLOT) {
		zone->records[zone->slots[slot] - 1].data = *data;
	} else if (zone->size < zone->capacity) {
		append_record(zone, free_slot, name, data);
	} else {
		*remaining_ptr = 0;
		return DD_OVERFLOW;
	}
	*remaining_ptr = zone->capacity - zone->size;
	return DD_SUCCESS;
}

bool uds_remove_from_open_chapter(struct uds_open_chapter_zone *zone,
                                  const struct dd_record_name *name)
{
	uint32_t mask = zone->slot_count - 1;
	uint32_t slot = probe(zone, name, NULL);

	if (slot == NO_SLOT)
		return false;
	zone->deleted[zone->slots[slot] - 1] = true;
	zone->deletions++;
	if (zone->slots[(slot + 1) & mask] != SLOT_EMPTY) {
		zone->slots[slot] = SLOT_TOMBSTONE;
		return true;
	}
	/* No probe path goes past this slot, nor past the tombstones that lead only to it. */
	do {
		zone->slots[slot] = SLOT_EMPTY;
		slot = (slot - 1) & mask;
	} while (zone->slots[slot] == SLOT_TOMBSTONE);
	return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Collation                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* The live records of all the zones. */
static uint64_t count_live_records(struct uds_open_chapter_zone *const *zones,
                                   unsigned int zone_count)
{
	uint64_t count = 0;

	for (unsigned int z = 0; z < zone_count; z++)
		count += uds_open_chapter_live_records(zones[z]);
	return count;
}

/* Start a walk; zone_count is at most UDS_MAX_ZONES. */
static void start_collation(struct uds_open_chapter_collator *collator,
                            struct uds_open_chapter_zone *const *zones, unsigned int zone_count)
{
	*collator = (struct uds_open_chapter_collator){
		.zones = zones,
		.zone_count = zone_count,
		.remaining = count_live_records(zones, zone_count),
	};
}

/* The next live record in chapter order, or NULL at the end. */
static const struct uds_volume_record *next_collated(struct uds_open_chapter_collator *collator)
{
	/* Stop after a full turn finds nothing, should the live counts ever be wrong. */
	for (unsigned int idle = 0; (collator->remaining > 0) && (idle < collator->zone_count);
	     idle++) {
		unsigned int z = collator->next_zone;
		const struct uds_open_chapter_zone *zone = collator->zones[z];
		uint32_t i = collator->cursors[z];

		collator->next_zone = (z + 1 == collator->zone_count) ? 0 : z + 1;
		while ((i < zone->size) && zone->deleted[i])
			i++;
		collator->cursors[z] = i;
		if (i < zone->size) {
			collator->cursors[z] = i + 1;
			collator->remaining--;
			return &zone->records[i];
		}
	}
	return NULL;
}

void uds_start_open_chapter_collation(struct uds_open_chapter_collator *collator,
                                      struct uds_open_chapter_zone *const *zones,
                                      unsigned int zone_count)
{
	if (DD_ASSERT(zone_count <= UDS_MAX_ZONES, "%u zones", zone_count) != DD_SUCCESS)
		zone_count = 0;
	start_collation(collator, zones, zone_count);
}

uint32_t uds_collate_open_chapter_records(struct uds_open_chapter_collator *collator,
                                          struct uds_volume_record *records, uint32_t max_count)
{
	const struct uds_volume_record *record;
	uint32_t count = 0;

	while ((count < max_count) && ((record = next_collated(collator)) != NULL))
		records[count++] = *record;
	return count;
}

uint32_t uds_collate_open_chapters(struct uds_open_chapter_zone *const *zones,
                                   unsigned int zone_count, struct uds_volume_record *records)
{
	struct uds_open_chapter_collator collator;

	uds_start_open_chapter_collation(&collator, zones, zone_count);
	return uds_collate_open_chapter_records(&collator, records, UINT32_MAX);
}

/* ------------------------------------------------------------------------------------------ */
/* Saving and loading                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* The payload bytes of the largest stream uds_save_open_chapter() writes, not the region. */
size_t uds_compute_open_chapter_save_bytes(const struct uds_geometry *geometry)
{
	return SAVE_HEADER_BYTES + (size_t) geometry->records_per_chapter * UDS_RECORD_BYTES;
}

static void encode_record(const struct uds_volume_record *record, uint8_t *buffer)
{
	memcpy(buffer, record->name.name, UDS_RECORD_NAME_BYTES);
	memcpy(buffer + UDS_RECORD_NAME_BYTES, record->data.data, UDS_RECORD_DATA_BYTES);
}

static void decode_record(const uint8_t *buffer, struct uds_volume_record *record)
{
	memcpy(record->name.name, buffer, UDS_RECORD_NAME_BYTES);
	memcpy(record->data.data, buffer + UDS_RECORD_NAME_BYTES, UDS_RECORD_DATA_BYTES);
}

/* Write the header: magic, version, @count. */
static int write_header(struct dd_buffered_writer *writer, uint64_t count)
{
	uint8_t header[SAVE_HEADER_BYTES];

	memcpy(header, SAVE_MAGIC, SAVE_MAGIC_BYTES);
	dd_put_le32(header + SAVE_MAGIC_BYTES, SAVE_VERSION);
	dd_put_le64(header + SAVE_MAGIC_BYTES + 4, count);
	return dd_write_to_buffered_writer(writer, header, sizeof(header));
}

/* Write the live records of the collation in batches. */
static int write_records(struct uds_open_chapter_collator *collator,
                         struct dd_buffered_writer *writer)
{
	uint8_t buffer[IO_BATCH_RECORDS * UDS_RECORD_BYTES];
	const struct uds_volume_record *record;
	unsigned int batched = 0;
	int result = DD_SUCCESS;

	while ((result == DD_SUCCESS) && ((record = next_collated(collator)) != NULL)) {
		encode_record(record, &buffer[batched++ * UDS_RECORD_BYTES]);
		if (batched == IO_BATCH_RECORDS) {
			result = dd_write_to_buffered_writer(writer, buffer, sizeof(buffer));
			batched = 0;
		}
	}
	if ((result == DD_SUCCESS) && (batched > 0))
		result = dd_write_to_buffered_writer(writer, buffer, batched * UDS_RECORD_BYTES);
	return result;
}

int uds_save_open_chapter(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                          struct dd_buffered_writer *writer)
{
	struct uds_open_chapter_collator collator;
	int result;

	if ((zone_count == 0) || (zone_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "cannot save %u open chapter zones", zone_count);
	start_collation(&collator, zones, zone_count);
	result = write_header(writer, collator.remaining);
	if (result == DD_SUCCESS)
		result = write_records(&collator, writer);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot save the open chapter");
	return DD_SUCCESS;
}

/* Read and check the header; @capacity is the room of all the zones. */
static int read_header(struct dd_buffered_reader *reader, uint64_t capacity, uint64_t *count_ptr)
{
	uint8_t header[SAVE_HEADER_BYTES];
	uint32_t version;
	uint64_t count = 0;
	int result;

	result = dd_read_from_buffered_reader(reader, header, sizeof(header));
	if (result != DD_SUCCESS)
		return result;
	if (memcmp(header, SAVE_MAGIC, SAVE_MAGIC_BYTES) != 0)
		return dd_log_error_strerror(DD_BAD_MAGIC, "not an open chapter save");
	version = dd_get_le32(header + SAVE_MAGIC_BYTES);
	if (version != SAVE_VERSION)
		return dd_log_error_strerror(DD_UNSUPPORTED_VERSION, "open chapter save version %u",
		                             version);
	count = dd_get_le64(header + SAVE_MAGIC_BYTES + 4);
	if (count > 2 * capacity)
		return dd_log_error_strerror(
		    DD_OVERFLOW,
		    "%llu saved open chapter records are far more than the %llu the zones hold",
		    (unsigned long long) count, (unsigned long long) capacity);
	*count_ptr = count;
	return DD_SUCCESS;
}

/*
 * Route one loaded record to its zone and add it there; a record its zone has no room for is
 * dropped and counted in *@dropped_ptr.
 */
static int load_record(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                       uds_zone_router_fn router, const void *context,
                       const struct uds_volume_record *record, uint64_t *dropped_ptr)
{
	unsigned int z = router(context, &record->name);
	struct uds_open_chapter_zone *zone;
	uint32_t free_slot = 0;

	if (z >= zone_count)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "router chose zone %u of %u", z,
		                             zone_count);
	zone = zones[z];
	if (probe(zone, &record->name, &free_slot) != NO_SLOT)
		return dd_log_error_strerror(DD_CORRUPT_DATA, "a name is saved twice");
	if (zone->size >= zone->capacity) {
		(*dropped_ptr)++;
		return DD_SUCCESS;
	}
	append_record(zone, free_slot, &record->name, &record->data);
	return DD_SUCCESS;
}

/* Read @count records in batches and load each one; count those dropped in *@dropped_ptr. */
static int load_records(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                        uds_zone_router_fn router, const void *context,
                        struct dd_buffered_reader *reader, uint64_t count, uint64_t *dropped_ptr)
{
	uint8_t buffer[IO_BATCH_RECORDS * UDS_RECORD_BYTES];

	while (count > 0) {
		unsigned int batch =
		    (count < IO_BATCH_RECORDS) ? (unsigned int) count : IO_BATCH_RECORDS;
		int result = dd_read_from_buffered_reader(reader, buffer, batch * UDS_RECORD_BYTES);

		for (unsigned int i = 0; (i < batch) && (result == DD_SUCCESS); i++) {
			struct uds_volume_record record;

			decode_record(&buffer[i * UDS_RECORD_BYTES], &record);
			result =
			    load_record(zones, zone_count, router, context, &record, dropped_ptr);
		}
		if (result != DD_SUCCESS)
			return result;
		count -= batch;
	}
	return DD_SUCCESS;
}

/* Check that every zone is empty and sum their capacities. */
static int check_load_zones(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                            uint64_t *capacity_ptr)
{
	uint64_t capacity = 0;

	if ((zone_count == 0) || (zone_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "cannot load %u open chapter zones", zone_count);
	for (unsigned int z = 0; z < zone_count; z++) {
		if (zones[z]->size > 0)
			return dd_log_error_strerror(DD_BAD_STATE,
			                             "open chapter zone %u is not empty", z);
		capacity += zones[z]->capacity;
	}
	*capacity_ptr = capacity;
	return DD_SUCCESS;
}

int uds_load_open_chapter(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                          uds_zone_router_fn router, const void *context,
                          struct dd_buffered_reader *reader)
{
	uint64_t dropped = 0;

	return uds_load_open_chapter_dropping(zones, zone_count, router, context, reader, &dropped);
}

int uds_load_open_chapter_dropping(struct uds_open_chapter_zone *const *zones,
                                   unsigned int zone_count, uds_zone_router_fn router,
                                   const void *context, struct dd_buffered_reader *reader,
                                   uint64_t *dropped_ptr)
{
	uint64_t capacity = 0;
	uint64_t count = 0;
	uint64_t dropped = 0;
	int result;

	*dropped_ptr = 0;

	result = check_load_zones(zones, zone_count, &capacity);
	if (result == DD_INVALID_ARGUMENT)
		return result;
	if (result == DD_SUCCESS)
		result = read_header(reader, capacity, &count);
	if (result == DD_SUCCESS)
		result = load_records(zones, zone_count, router, context, reader, count, &dropped);
	if (result != DD_SUCCESS) {
		for (unsigned int z = 0; z < zone_count; z++)
			uds_reset_open_chapter(zones[z]);
		return dd_log_error_strerror(result, "cannot load the open chapter");
	}
	if (dropped > 0)
		dd_log_warning("dropped %llu of %llu saved open chapter records: their zones of %u "
		               "were full",
		               (unsigned long long) dropped, (unsigned long long) count,
		               zone_count);
	*dropped_ptr = dropped;
	return DD_SUCCESS;
}
