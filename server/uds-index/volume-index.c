// SPDX-License-Identifier: GPL-2.0-only
/*
 * The volume index; see volume-index.h for what it is for.
 *
 * Sub-indexes. A dense index has one sub-index holding every name. A sparse index has two: the
 * hook sub-index holds the names whose sample bits are a multiple of UDS_SPARSE_SAMPLE_RATE, for
 * the whole window of chapters_per_volume chapters, and the dense sub-index holds every other
 * name, for the newest dense_chapters_per_volume chapters only. A name lives in exactly one
 * sub-index, chosen by its sample bits, so everything below is about one sub-index at a time.
 *
 * Shape of a sub-index. It is sized for E entries (records_per_volume for a dense index;
 * records_per_volume / 32 hooks; dense_chapters * records_per_chapter * 31 / 32 other names).
 * It has L = max(E / RECORDS_PER_LIST, MIN_LIST_COUNT) delta lists. L never depends on the zone
 * count, so a save loads into any zone count, and MIN_LIST_COUNT (= UDS_MAX_ZONES^2) lists split
 * among any zone count up to UDS_MAX_ZONES without leaving a zone empty. A list covers 2^a
 * addresses, a being the bits needed for MEAN_DELTA * (E / L): 16 bits for every standard
 * geometry. The delta code is built for the true mean gap 2^a * L / E, which is MEAN_DELTA
 * (512) for the standard geometries and only differs for tiny ones. From name bytes 0-7 (a
 * big-endian u64, b): key = b & (2^a - 1), list = (b >> a) % L.
 *
 * Why 64 entries a list and a mean delta of 512 (UDS uses about 256 and 4096; figures from
 * bench/volume-index-bench and bench/uds-index-bench at 0.25 GB, 67.2M records):
 *  - A search decodes half a list on average, so halving the list halves the work of a search
 *    and of an insert's move of bits. The cost is per-list memory: an 8-byte list header and a
 *    2-byte flush chapter, 10 bytes per 64 entries = 1.25 bits an entry. Going from 128 to 64
 *    took the volume index from 183.7 to 189.2 MB and POSTs to a full index from about 770K
 *    to 880K a second, the decoding of lists being most of a zone thread's time.
 *  - Each halving of the mean delta saves one bit an entry (the Huffman code averages
 *    min_bits + 1.47 bits: 10.47 at 512 against 13.47 at 4096), but one name in mean_delta then
 *    shares its address with an existing entry: that name costs a collision entry (a whole
 *    16-byte name, 0.29 bits an entry at 512) and, in the engine, a needless chapter lookup for
 *    0.2% of new names (0.1% at 1024, 0.025% at 4096). With 128 entries a list, the index
 *    needed about 24.1 bits an entry at 1024 and 23.1 bits at 512: the bit saved pays for the
 *    shorter lists within the 3.4 bytes per record the whole process is allowed.
 *
 * Zones. The delta index gives each zone a contiguous range of lists; the zone of a name is the
 * zone of its list in its own sub-index. Since a name is only ever in one sub-index, that is well
 * defined, and the two sub-indexes of a sparse index need no common list count. Each zone keeps,
 * per sub-index, its own window [oldest, newest] of chapters and its counters, in its own cache
 * line, written only by the zone's thread.
 *
 * Values. An entry holds the low p bits of its virtual chapter. With the zone's newest chapter N
 * the chapter is N - ((N - value) mod 2^p), and the entry has expired when that is below the
 * zone's oldest chapter. For expiry to be seen at all, 2^p must exceed the window (chapter_count:
 * chapters_per_volume, or the dense chapters): were 2^p equal to it, as it is for 1024 chapters
 * and p = 10, a chapter would decode as the newest one the moment it expired, and no entry would
 * ever be purged. So, as in UDS, p is the bits needed for chapter_count - 1 + max(chapter_count /
 * 256, 2): 11 for 1024 chapters. An entry then reads as expired for 2^p - chapter_count chapters
 * (1024 for 1024 chapters), plenty of time to be purged; one that lingers longer aliases to a
 * live chapter, which is harmless, the index being a hint.
 *
 * Expiry is lazy, as in UDS. Each list remembers (in 16 bits; see needs_flush()) the oldest
 * chapter it may hold. A search of a list whose oldest chapter expired more than window /
 * FLUSH_DELAY_DIVISOR chapters ago (16 for 1024 chapters; no delay while the zone is short of
 * memory) first purges the list: one pass of the delta index (uds_purge_delta_list()) removes
 * every expired entry and reports the oldest chapter left; any search then goes to its key with
 * the delta index's fast search. Either way the entries with the key searched for (and expired
 * ones just after them) are checked and expired ones removed, so a search never returns an
 * expired entry. The delay trades a little memory (expired entries wait about ten chapters
 * longer: under 1% of a full index is expired entries) for less search time when every name is
 * new: with 64 entries a list, a list gets a new entry about every 16 chapters, and the delay
 * lets one purge remove several expired entries. A read-only lookup removes nothing.
 *
 * Early flush. Memory is sized for a full window (ordinary entries by the delta code's
 * estimate, plus one collision entry in mean_delta) plus SLACK_PERCENT, and one byte per list.
 * The slack holds the expired entries not yet purged (about 1%) and the gaps between lists
 * (the delta index rebalances a neighbourhood of lists at a time, so small gaps cost little):
 * a 0.25 GB index filled past its window uses about 97.5% of its list memory with 2% slack,
 * which leaves the early flush threshold (99.6%) well clear. Each zone counts its entries per
 * chapter value. When a zone opens a chapter with its lists using more than the flush
 * threshold (its capacity less the larger of 1/FLUSH_RESERVE_DIVISOR of it and one chapter's
 * expected bits), and its live entries alone (those of its window, at the zone's average bits
 * per entry) would too, its oldest chapter is raised until they would use a chapter's worth
 * less than the threshold. Expired entries not yet purged are not counted, so
 * the raise does not run away while purging catches up. A zone's oldest chapter only moves
 * forward (unless the zone is sent back to an older chapter). early_flushes counts chapters
 * expired early.
 *
 * Collisions. The first entry with a key is the default entry for every name with that address;
 * collision entries (with the full name) follow it. A search returns the collision entry of the
 * name if there is one, otherwise the default entry. After expired entries are removed the first
 * remaining entry becomes the default (the delta index drops its name).
 *
 * Saving. Each zone writes one stream: a header (below) and then, for each sub-index, the delta
 * index's own save of that zone. Loading reads every header, then restores each sub-index from
 * all the streams, into whatever zone count the index has; every new zone gets the combined
 * window: the newest chapter of any zone, and the oldest chapter of any zone but no older than
 * the full window below that newest chapter (zones expire different chapters early, and a chapter
 * one zone expired early is still on storage, so it may as well be visible again). Chapter
 * counts are rebuilt by walking the restored lists; every list is flushed at its next search.
 */
#include "volume-index.h"

#include <string.h>

#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	/* Fewest delta lists: enough for any zone count up to UDS_MAX_ZONES. */
	MIN_LIST_COUNT = UDS_MAX_ZONES * UDS_MAX_ZONES,
	/* Entries per delta list of a full sub-index (see the top of this file). */
	RECORDS_PER_LIST = 64,
	/* Mean distance between the keys of a list when full (see the top of this file). */
	MEAN_DELTA = 512,
	/* Bits of a collision entry beyond an ordinary entry's value and shortest code. */
	COLLISION_NAME_BITS = 8 * DD_RECORD_NAME_SIZE,
	/*
	 * A flush chapter is kept in 16 bits, in units of 2^shift chapters, with the shift the
	 * least that makes a full window at most this many units.
	 */
	FLUSH_WINDOW_UNITS = 2048,
	/* Chapter values cover the window plus max(window / this, 2) expired chapters. */
	INVALID_CHAPTER_DIVISOR = 256,
	/* Free space added to the expected size of a full sub-index, in percent. */
	SLACK_PERCENT = 2,
	/* A list is byte aligned when packed: allowance per list, in bytes. */
	LIST_ROUNDING_BYTES = 1,
	/* The delta index rounds each zone's memory up to this (DELTA ZONE_ALLOCATION_UNIT). */
	DELTA_ZONE_UNIT = 64 * 1024,
	/* The delta index keeps this many guard bytes at the end of a zone's memory. */
	DELTA_GUARD_BYTES = 7,
	/* The early flush threshold leaves at least 1/this of a zone free. */
	FLUSH_RESERVE_DIVISOR = 256,
	/* A list is flushed once its oldest chapter expired window / this chapters ago. */
	FLUSH_DELAY_DIVISOR = 64,
	/* The sub-indexes, and the tags of their delta indexes. */
	DENSE_SUB_INDEX = 0,
	HOOK_SUB_INDEX = 1,
	MAX_SUB_INDEXES = 2,
	DENSE_TAG = 'v',
	HOOK_TAG = 'h',
};

/*
 * Saved zone stream (integers little-endian):
 *   magic "UVIX" (4), version u32, zone number u32, zone count u32, sub-index count u32,
 *   reserved u32 (0);
 *   per sub-index: list count u32, chapter count u32, oldest u64, newest u64, early flushes u64,
 *   discards u64, overflows u64;
 *   then per sub-index, the delta index's save of this zone.
 */
enum {
	SAVE_MAGIC_BYTES = 4,
	/* 2: the delta index's zone saves became version 2 (packed lists). */
	SAVE_VERSION = 2,
	SAVE_HEADER_BYTES = SAVE_MAGIC_BYTES + 5 * 4,
	SAVE_SUB_INDEX_BYTES = 2 * 4 + 5 * 8,
	SAVE_MAX_BYTES = SAVE_HEADER_BYTES + MAX_SUB_INDEXES * SAVE_SUB_INDEX_BYTES,
};

static const uint8_t SAVE_MAGIC[SAVE_MAGIC_BYTES] = { 'U', 'V', 'I', 'X' };

/* One zone's window of a sub-index and its counters; only the zone's thread writes them. */
struct sub_index_zone {
	uint64_t oldest;
	uint64_t newest;
	uint64_t early_flushes;
	uint64_t discard_count;
	uint64_t overflow_count;
	/* Entries of the zone per entry value (chapter modulo 2^payload bits). */
	uint32_t *chapter_counts;
	/* The flush delay in force (none while memory is short). */
	uint32_t flush_delay;
} __attribute__((aligned(64)));

/* The shape of a sub-index, derived from the geometry alone. */
struct sub_index_params {
	uint64_t entries;
	uint32_t chapter_count;
	uint32_t payload_bits;
	uint32_t list_count;
	uint32_t address_bits;
	uint32_t mean_delta;
	/* Expected bits of list data when full. */
	uint64_t list_bits;
	/* Bytes of list memory over all zones. */
	size_t memory_size;
	uint8_t tag;
};

struct uds_volume_sub_index {
	struct uds_delta_index *delta_index;
	struct sub_index_zone *zones;
	/* Per list, the oldest chapter it may hold, in 2^flush_shift chapter units, mod 2^16. */
	uint16_t *flush_chapters;
	uint32_t flush_shift;
	/* Chapters a list's oldest chapter may have been expired before the list is flushed. */
	uint32_t flush_delay;
	/* The chapter counts of all the zones. */
	uint32_t *chapter_counts;
	/* Chapters in a full window, and the mask of the chapter bits kept in an entry. */
	uint32_t chapter_count;
	uint32_t chapter_mask;
	uint32_t list_count;
	uint32_t address_bits;
	uint32_t address_mask;
	/* Expected bits of one chapter in one zone. */
	uint64_t chapter_zone_bits;
};

struct uds_volume_index {
	const struct uds_geometry *geometry;
	unsigned int zone_count;
	unsigned int sub_index_count;
	size_t memory_allocated;
	struct uds_volume_sub_index sub_indexes[MAX_SUB_INDEXES];
};

/* A saved zone's window and counters for one sub-index. */
struct saved_window {
	uint64_t oldest;
	uint64_t newest;
	uint64_t early_flushes;
	uint64_t discard_count;
	uint64_t overflow_count;
};

/* A saved zone's header. */
struct saved_header {
	uint32_t zone_number;
	uint32_t zone_count;
	uint32_t sub_index_count;
	struct {
		uint32_t list_count;
		uint32_t chapter_count;
		struct saved_window window;
	} sub[MAX_SUB_INDEXES];
};

/* ------------------------------------------------------------------------------------------ */
/* Shapes and sizes                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* The number of bits needed to hold any value in [0, value]. */
static uint32_t bits_for(uint64_t value)
{
	uint32_t bits = 1;

	while ((bits < 64) && ((value >> bits) != 0))
		bits++;
	return bits;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return (a > b) ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return (a < b) ? a : b;
}

/* Derive the shape of a sub-index for @entries entries over a window of @chapter_count. */
static void compute_sub_index_params(uint64_t entries, uint32_t chapter_count, uint8_t tag,
                                     struct sub_index_params *params)
{
	uint64_t records_per_list;
	uint64_t addresses;

	entries = max_u64(entries, 1);
	params->entries = entries;
	params->chapter_count = chapter_count;
	params->payload_bits = bits_for((uint64_t) chapter_count - 1 +
	                                max_u64(chapter_count / INVALID_CHAPTER_DIVISOR, 2));
	params->list_count = (uint32_t) max_u64(entries / RECORDS_PER_LIST, MIN_LIST_COUNT);
	records_per_list = max_u64(entries / params->list_count, 1);
	params->address_bits = bits_for(MEAN_DELTA * records_per_list - 1);
	addresses = 1ULL << params->address_bits;
	params->mean_delta =
	    (uint32_t) max_u64((addresses * params->list_count + entries / 2) / entries, 1);
	/* One entry in mean_delta is a collision entry, with a whole name. */
	params->list_bits =
	    uds_compute_delta_index_bits(entries, params->mean_delta, params->payload_bits) +
	    entries *
	        (COLLISION_NAME_BITS + params->payload_bits +
	         uds_get_delta_min_bits(params->mean_delta)) /
	        params->mean_delta;
	params->memory_size = (size_t) ((params->list_bits * (100 + SLACK_PERCENT) / 100 + 7) / 8) +
	                      (size_t) params->list_count * LIST_ROUNDING_BYTES;
	params->tag = tag;
}

/* The shapes of the sub-indexes of @geometry; returns how many there are. */
static unsigned int compute_params(const struct uds_geometry *geometry,
                                   struct sub_index_params params[MAX_SUB_INDEXES])
{
	uint64_t dense_records;

	if (!uds_is_sparse_geometry(geometry)) {
		compute_sub_index_params(geometry->records_per_volume,
		                         geometry->chapters_per_volume, DENSE_TAG,
		                         &params[DENSE_SUB_INDEX]);
		return 1;
	}
	dense_records =
	    (uint64_t) geometry->dense_chapters_per_volume * geometry->records_per_chapter;
	compute_sub_index_params(dense_records - dense_records / UDS_SPARSE_SAMPLE_RATE,
	                         geometry->dense_chapters_per_volume, DENSE_TAG,
	                         &params[DENSE_SUB_INDEX]);
	compute_sub_index_params(geometry->records_per_volume / UDS_SPARSE_SAMPLE_RATE,
	                         geometry->chapters_per_volume, HOOK_TAG, &params[HOOK_SUB_INDEX]);
	return 2;
}

/* What uds_make_delta_index() allocates for @params with @zone_count zones (see there). */
static size_t compute_delta_memory(const struct sub_index_params *params, unsigned int zone_count)
{
	size_t share = (params->memory_size + zone_count - 1) / zone_count;
	size_t zone_size = (share + DELTA_ZONE_UNIT - 1) / DELTA_ZONE_UNIT * DELTA_ZONE_UNIT;

	return sizeof(struct uds_delta_index) +
	       zone_count * (sizeof(struct uds_delta_zone) + zone_size) +
	       ((size_t) params->list_count + 2 * zone_count) * sizeof(struct uds_delta_list);
}

/* The bytes of a sub-index's own arrays: zones, flush chapters and chapter counts. */
static size_t compute_bookkeeping_memory(const struct sub_index_params *params,
                                         unsigned int zone_count)
{
	return zone_count * sizeof(struct sub_index_zone) + params->list_count * sizeof(uint16_t) +
	       ((size_t) zone_count << params->payload_bits) * sizeof(uint32_t);
}

/* The bytes a volume index of @geometry with @zone_count zones allocates. */
static size_t compute_memory(const struct uds_geometry *geometry, unsigned int zone_count)
{
	struct sub_index_params params[MAX_SUB_INDEXES];
	unsigned int count = compute_params(geometry, params);
	size_t bytes = sizeof(struct uds_volume_index);

	for (unsigned int s = 0; s < count; s++)
		bytes += compute_delta_memory(&params[s], zone_count) +
		         compute_bookkeeping_memory(&params[s], zone_count);
	return bytes;
}

size_t uds_compute_volume_index_memory(const struct uds_geometry *geometry)
{
	size_t most = 0;

	/* The zone count only changes the rounding of zone memory; report the largest. */
	for (unsigned int zones = 1; zones <= UDS_MAX_ZONES; zones++) {
		size_t bytes = compute_memory(geometry, zones);

		if (bytes > most)
			most = bytes;
	}
	return most;
}

size_t uds_compute_volume_index_save_bytes(const struct uds_geometry *geometry,
                                           unsigned int zone_count)
{
	struct sub_index_params params[MAX_SUB_INDEXES];
	unsigned int count = compute_params(geometry, params);
	size_t bytes = SAVE_MAX_BYTES;

	if (zone_count == 0)
		zone_count = 1;
	for (unsigned int s = 0; s < count; s++) {
		uint32_t lists = (params[s].list_count + zone_count - 1) / zone_count;

		bytes += uds_compute_delta_save_bytes(
		    lists, (params[s].memory_size + zone_count - 1) / zone_count);
	}
	return bytes;
}

/* ------------------------------------------------------------------------------------------ */
/* Making and freeing                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int make_sub_index(const struct sub_index_params *params, unsigned int zone_count,
                          struct uds_volume_sub_index *sub_index, size_t *memory)
{
	struct uds_delta_index_params delta_params = {
		.zone_count = zone_count,
		.list_count = params->list_count,
		.mean_delta = params->mean_delta,
		.payload_bits = params->payload_bits,
		.memory_size = params->memory_size,
		.tag = params->tag,
	};
	int result;

	sub_index->chapter_count = params->chapter_count;
	sub_index->flush_delay = params->chapter_count / FLUSH_DELAY_DIVISOR;
	sub_index->flush_shift = 0;
	while ((params->chapter_count >> sub_index->flush_shift) > FLUSH_WINDOW_UNITS)
		sub_index->flush_shift++;
	sub_index->chapter_mask = (uint32_t) ((1ULL << params->payload_bits) - 1);
	sub_index->list_count = params->list_count;
	sub_index->address_bits = params->address_bits;
	sub_index->address_mask = (uint32_t) ((1ULL << params->address_bits) - 1);
	sub_index->chapter_zone_bits = params->list_bits / params->chapter_count / zone_count;
	result = dd_allocate_aligned(zone_count * sizeof(struct sub_index_zone),
	                             __alignof__(struct sub_index_zone), "volume index zones",
	                             &sub_index->zones);
	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE(params->list_count, uint16_t, "volume index flush chapters",
	                     &sub_index->flush_chapters);
	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE((size_t) zone_count << params->payload_bits, uint32_t,
	                     "volume index chapter counts", &sub_index->chapter_counts);
	if (result != DD_SUCCESS)
		return result;
	for (unsigned int z = 0; z < zone_count; z++) {
		sub_index->zones[z].chapter_counts =
		    &sub_index->chapter_counts[(size_t) z << params->payload_bits];
		sub_index->zones[z].flush_delay = sub_index->flush_delay;
	}
	result = uds_make_delta_index(&delta_params, &sub_index->delta_index);
	if (result != DD_SUCCESS)
		return result;
	*memory += compute_bookkeeping_memory(params, zone_count) + sizeof(struct uds_delta_index) +
	           sub_index->delta_index->memory_size;
	return DD_SUCCESS;
}

int uds_make_volume_index(const struct uds_geometry *geometry, unsigned int zone_count,
                          struct uds_volume_index **index_ptr)
{
	struct sub_index_params params[MAX_SUB_INDEXES];
	struct uds_volume_index *index;
	int result;

	if ((zone_count < 1) || (zone_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "volume index zone count %u",
		                             zone_count);
	result = dd_allocate(sizeof(*index), "volume index", &index);
	if (result != DD_SUCCESS)
		return result;
	index->geometry = geometry;
	index->zone_count = zone_count;
	index->sub_index_count = compute_params(geometry, params);
	index->memory_allocated = sizeof(*index);
	for (unsigned int s = 0; s < index->sub_index_count; s++) {
		result = make_sub_index(&params[s], zone_count, &index->sub_indexes[s],
		                        &index->memory_allocated);
		if (result != DD_SUCCESS) {
			uds_free_volume_index(index);
			return result;
		}
	}
	*index_ptr = index;
	return DD_SUCCESS;
}

void uds_free_volume_index(struct uds_volume_index *index)
{
	if (index == NULL)
		return;
	for (unsigned int s = 0; s < index->sub_index_count; s++) {
		uds_free_delta_index(index->sub_indexes[s].delta_index);
		dd_free(index->sub_indexes[s].zones);
		dd_free(index->sub_indexes[s].flush_chapters);
		dd_free(index->sub_indexes[s].chapter_counts);
	}
	dd_free(index);
}

/* ------------------------------------------------------------------------------------------ */
/* Names, zones and windows                                                                    */
/* ------------------------------------------------------------------------------------------ */

bool uds_is_volume_index_sample(const struct uds_volume_index *index,
                                const struct dd_record_name *name)
{
	return (index->sub_index_count > 1) &&
	       ((dd_record_name_sample_bits(name) % UDS_SPARSE_SAMPLE_RATE) == 0);
}

/* The sub-index that holds @name. */
static unsigned int sub_index_of(const struct uds_volume_index *index,
                                 const struct dd_record_name *name)
{
	return uds_is_volume_index_sample(index, name) ? HOOK_SUB_INDEX : DENSE_SUB_INDEX;
}

static uint32_t get_list_number(const struct uds_volume_sub_index *sub_index,
                                const struct dd_record_name *name)
{
	return (uint32_t) ((dd_record_name_volume_index_bits(name) >> sub_index->address_bits) %
	                   sub_index->list_count);
}

static uint32_t get_key(const struct uds_volume_sub_index *sub_index,
                        const struct dd_record_name *name)
{
	return (uint32_t) dd_record_name_volume_index_bits(name) & sub_index->address_mask;
}

uint32_t uds_get_volume_index_order(const struct uds_volume_index *index,
                                    const struct dd_record_name *name)
{
	const struct uds_volume_sub_index *sub_index =
	    &index->sub_indexes[sub_index_of(index, name)];
	uint32_t bits = sub_index->address_bits + bits_for(sub_index->list_count - 1);
	uint64_t order = ((uint64_t) get_list_number(sub_index, name) << sub_index->address_bits) |
	                 get_key(sub_index, name);

	return (uint32_t) ((bits > 32) ? order >> (bits - 32) : order);
}

unsigned int uds_get_volume_index_zone(const struct uds_volume_index *index,
                                       const struct dd_record_name *name)
{
	const struct uds_volume_sub_index *sub_index =
	    &index->sub_indexes[sub_index_of(index, name)];

	return uds_get_delta_zone_number(sub_index->delta_index, get_list_number(sub_index, name));
}

/* The oldest chapter of a full window ending at @newest. */
static uint64_t full_window_start(const struct uds_volume_sub_index *sub_index, uint64_t newest)
{
	return (newest >= sub_index->chapter_count) ? newest - sub_index->chapter_count + 1 : 0;
}

/* Turn an entry's value into its chapter; false if the chapter is outside the zone's window. */
static bool decode_chapter(const struct uds_volume_sub_index *sub_index,
                           const struct sub_index_zone *zone, uint32_t value, uint64_t *chapter)
{
	uint64_t age = (zone->newest - value) & sub_index->chapter_mask;

	if (age > zone->newest - zone->oldest)
		return false;
	*chapter = zone->newest - age;
	return true;
}

static bool is_in_window(const struct sub_index_zone *zone, uint64_t chapter)
{
	return (chapter >= zone->oldest) && (chapter <= zone->newest);
}

/* A chapter in the units of the flush chapters. */
static inline uint16_t flush_units(const struct uds_volume_sub_index *sub_index, uint64_t chapter)
{
	return (uint16_t) (chapter >> sub_index->flush_shift);
}

/*
 * Whether list @list_number may hold entries older than the zone's oldest chapter (less the
 * flush delay). Flush chapters are compared modulo 2^16 units: a window is at most
 * FLUSH_WINDOW_UNITS units, and a list is searched many times a window, so the difference never
 * wraps in practice; were it to, a list would only be flushed late, which costs memory, not
 * correctness (every search checks the entries of its own key).
 */
static bool needs_flush(const struct uds_volume_sub_index *sub_index, uint32_t list_number,
                        const struct sub_index_zone *zone)
{
	return (int16_t) (uint16_t) (sub_index->flush_chapters[list_number] +
	                             (zone->flush_delay >> sub_index->flush_shift) -
	                             flush_units(sub_index, zone->oldest)) < 0;
}

/* Note that list @list_number may now hold an entry of @chapter. */
static void note_chapter(struct uds_volume_sub_index *sub_index, uint32_t list_number,
                         uint64_t chapter)
{
	uint16_t units = flush_units(sub_index, chapter);

	if ((int16_t) (uint16_t) (units - sub_index->flush_chapters[list_number]) < 0)
		sub_index->flush_chapters[list_number] = units;
}

/* Make every list of a zone be flushed at its next search (after a load or a jump back). */
static void reset_flush_chapters(struct uds_volume_sub_index *sub_index, unsigned int zone_number)
{
	const struct uds_delta_zone *delta_zone = &sub_index->delta_index->zones[zone_number];
	uint64_t oldest = sub_index->zones[zone_number].oldest;
	uint16_t flush = flush_units(sub_index, (oldest > 0) ? oldest - 1 : 0);

	for (uint32_t i = 0; i < delta_zone->list_count; i++)
		sub_index->flush_chapters[delta_zone->first_list + i] = flush;
}

/* The used bits above which a zone expires chapters early when it opens a chapter. */
static uint64_t get_flush_threshold(const struct uds_volume_sub_index *sub_index,
                                    const struct uds_delta_zone *zone)
{
	uint64_t capacity = (uint64_t) (zone->size - DELTA_GUARD_BYTES) * 8 -
	                    (uint64_t) zone->list_count * LIST_ROUNDING_BYTES * 8;
	uint64_t reserve = max_u64(capacity / FLUSH_RESERVE_DIVISOR, sub_index->chapter_zone_bits);

	return (capacity > reserve) ? capacity - reserve : 0;
}

/* The entries of a zone in chapters [first, last], from its chapter counts. */
static uint64_t count_entries(const struct uds_volume_sub_index *sub_index,
                              const struct sub_index_zone *zone, uint64_t first, uint64_t last)
{
	uint64_t count = 0;

	for (uint64_t chapter = first; chapter <= last; chapter++)
		count += zone->chapter_counts[chapter & sub_index->chapter_mask];
	return count;
}

/*
 * If a zone's lists use more bits than the flush threshold, and its live entries (those of the
 * chapters in its window) alone would too, expire its oldest chapters until the live entries
 * would use one chapter's worth of bits less than the threshold, taking an entry's bits to be
 * the zone's average. While memory is short, lists are flushed as soon as they hold an expired
 * entry.
 */
static void expire_chapters_early(struct uds_volume_sub_index *sub_index, unsigned int zone_number)
{
	struct sub_index_zone *zone = &sub_index->zones[zone_number];
	const struct uds_delta_zone *delta_zone = &sub_index->delta_index->zones[zone_number];
	uint64_t used = delta_zone->used_bits;
	uint64_t threshold = get_flush_threshold(sub_index, delta_zone);
	uint64_t first = zone->oldest;
	uint64_t scaled_bits;
	uint64_t target;
	uint64_t live;

	zone->flush_delay = sub_index->flush_delay;
	if ((used <= threshold) || (delta_zone->record_count == 0))
		return;
	zone->flush_delay = 0;
	/* Bits per entry, times 256. */
	scaled_bits = (used << 8) / delta_zone->record_count;
	target = threshold - min_u64(threshold, sub_index->chapter_zone_bits);
	live = count_entries(sub_index, zone, zone->oldest, zone->newest);
	while ((zone->oldest < zone->newest) && (((live * scaled_bits) >> 8) > target)) {
		live -= min_u64(live, zone->chapter_counts[zone->oldest & sub_index->chapter_mask]);
		zone->oldest++;
	}
	if (zone->oldest == first)
		return;
	zone->early_flushes += zone->oldest - first;
	dd_log_debug("volume index zone %u: at chapter %llu, expiring chapters %llu to %llu early",
	             zone_number, (unsigned long long) zone->newest, (unsigned long long) first,
	             (unsigned long long) zone->oldest - 1);
}

/* Open @chapter in one zone of a sub-index. */
static void set_sub_index_zone_open_chapter(struct uds_volume_sub_index *sub_index,
                                            unsigned int zone_number, uint64_t chapter)
{
	struct sub_index_zone *zone = &sub_index->zones[zone_number];
	bool backwards = (chapter < zone->newest);
	uint64_t oldest = full_window_start(sub_index, chapter);

	/* Chapters expired early stay expired, unless the zone goes back. */
	zone->oldest = backwards ? oldest : min_u64(max_u64(zone->oldest, oldest), chapter);
	zone->newest = chapter;
	if (backwards)
		reset_flush_chapters(sub_index, zone_number);
	expire_chapters_early(sub_index, zone_number);
}

void uds_set_volume_index_zone_open_chapter(struct uds_volume_index *index,
                                            unsigned int zone_number, uint64_t virtual_chapter)
{
	for (unsigned int s = 0; s < index->sub_index_count; s++)
		set_sub_index_zone_open_chapter(&index->sub_indexes[s], zone_number,
		                                virtual_chapter);
}

void uds_set_volume_index_open_chapter(struct uds_volume_index *index, uint64_t virtual_chapter)
{
	for (unsigned int z = 0; z < index->zone_count; z++)
		uds_set_volume_index_zone_open_chapter(index, z, virtual_chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* Searching and changing                                                                      */
/* ------------------------------------------------------------------------------------------ */

void uds_prefetch_volume_index_name(const struct uds_volume_index *index,
                                    const struct dd_record_name *name, unsigned int stage)
{
	const struct uds_volume_sub_index *sub_index =
	    &index->sub_indexes[sub_index_of(index, name)];
	uint32_t list_number = get_list_number(sub_index, name);

	if (stage == 0)
		__builtin_prefetch(&sub_index->flush_chapters[list_number], 0, 3);
	uds_prefetch_delta_list(sub_index->delta_index, list_number, stage);
}

/* Remove an entry (it then refers to the next one), keeping the chapter counts. */
static int remove_entry(struct sub_index_zone *zone, struct uds_delta_entry *entry)
{
	uint32_t value = uds_get_delta_entry_value(entry);
	int result = uds_remove_delta_entry(entry);

	if (result == DD_SUCCESS)
		zone->chapter_counts[value]--;
	return result;
}

static int expire_entry(struct sub_index_zone *zone, struct uds_delta_entry *entry)
{
	zone->discard_count++;
	return remove_entry(zone, entry);
}

static bool is_collision_for(const struct uds_delta_entry *entry, const struct dd_record_name *name)
{
	struct dd_record_name stored;

	return entry->is_collision &&
	       (uds_get_delta_entry_collision(entry, &stored) == DD_SUCCESS) &&
	       dd_record_name_equal(&stored, name);
}

/*
 * Go through the entries with the record's key (starting at @entry), removing the expired ones
 * and choosing the name's collision entry, or else the default entry. Expired entries just after
 * them go too, so that with neither, the record is left at a live entry (or the end of the list)
 * where an entry for the key would be inserted. @entry is left after all of them.
 */
static int search_key(struct uds_volume_index_record *record, struct sub_index_zone *zone,
                      uint32_t key, struct uds_delta_entry *entry, uint64_t *oldest)
{
	const struct uds_volume_sub_index *sub_index = record->sub_index;
	int result = DD_SUCCESS;

	while ((result == DD_SUCCESS) && !entry->at_end) {
		uint64_t chapter;

		if (!decode_chapter(sub_index, zone, uds_get_delta_entry_value(entry), &chapter)) {
			result = expire_entry(zone, entry);
			continue;
		}
		if (entry->key != key)
			break;
		if (!entry->is_collision ||
		    (!record->is_collision && is_collision_for(entry, record->name))) {
			record->delta_entry = *entry;
			record->virtual_chapter = chapter;
			record->is_found = true;
			record->is_collision = entry->is_collision;
		}
		*oldest = min_u64(*oldest, chapter);
		result = uds_next_delta_entry(entry);
	}
	if ((result == DD_SUCCESS) && !record->is_found)
		record->delta_entry = *entry;
	return result;
}

/* Search a list known to hold no expired entry (though the key's entries are checked anyway). */
static int search(struct uds_volume_index_record *record, struct sub_index_zone *zone,
                  uint32_t list_number, uint32_t key)
{
	uint64_t oldest = zone->newest;
	struct uds_delta_entry entry;
	int result =
	    uds_get_delta_entry(record->sub_index->delta_index, list_number, key, NULL, &entry);

	if (result == DD_SUCCESS)
		result = search_key(record, zone, key, &entry, &oldest);
	return result;
}

/*
 * Search a list that may hold expired entries: purge them all in one pass, then search, and
 * note the oldest chapter left in the list so that it is purged again only once that chapter
 * expires.
 */
static int flush_and_search(struct uds_volume_index_record *record, struct sub_index_zone *zone,
                            uint32_t list_number, uint32_t key)
{
	struct uds_volume_sub_index *sub_index = record->sub_index;
	uint32_t removed;
	uint32_t max_age;
	int result = uds_purge_delta_list(sub_index->delta_index, list_number,
	                                  (uint32_t) (zone->newest & sub_index->chapter_mask),
	                                  (uint32_t) (zone->newest - zone->oldest),
	                                  zone->chapter_counts, &removed, &max_age);

	if (result != DD_SUCCESS)
		return result;
	zone->discard_count += removed;
	sub_index->flush_chapters[list_number] = flush_units(sub_index, zone->newest - max_age);
	return search(record, zone, list_number, key);
}

int uds_get_volume_index_record(struct uds_volume_index *index, const struct dd_record_name *name,
                                struct uds_volume_index_record *record)
{
	struct uds_volume_sub_index *sub_index = &index->sub_indexes[sub_index_of(index, name)];
	uint32_t list_number = get_list_number(sub_index, name);
	uint32_t key = get_key(sub_index, name);
	struct sub_index_zone *zone;
	int result;

	*record = (struct uds_volume_index_record){
		.name = name,
		.index = index,
		.sub_index = sub_index,
		.zone_number = uds_get_delta_zone_number(sub_index->delta_index, list_number),
	};
	zone = &sub_index->zones[record->zone_number];
	if (needs_flush(sub_index, list_number, zone))
		result = flush_and_search(record, zone, list_number, key);
	else
		result = search(record, zone, list_number, key);
	if (result != DD_SUCCESS) {
		record->is_found = false;
		return dd_log_error_strerror(result, "volume index search failed");
	}
	return DD_SUCCESS;
}

/* Check that @chapter is in the window of the record's zone. */
static int check_chapter(const struct uds_volume_index_record *record, uint64_t chapter)
{
	const struct sub_index_zone *zone = &record->sub_index->zones[record->zone_number];

	if (is_in_window(zone, chapter))
		return DD_SUCCESS;
	return dd_log_warning_strerror(DD_INVALID_ARGUMENT,
	                               "chapter %llu is outside the window [%llu, %llu] of "
	                               "volume index zone %u",
	                               (unsigned long long) chapter,
	                               (unsigned long long) zone->oldest,
	                               (unsigned long long) zone->newest, record->zone_number);
}

int uds_put_volume_index_record(struct uds_volume_index_record *record, uint64_t virtual_chapter)
{
	struct uds_volume_sub_index *sub_index = record->sub_index;
	struct sub_index_zone *zone = &sub_index->zones[record->zone_number];
	const struct dd_record_name *collision_name = record->is_found ? record->name : NULL;
	uint32_t value = (uint32_t) (virtual_chapter & sub_index->chapter_mask);
	int result = check_chapter(record, virtual_chapter);

	if (result != DD_SUCCESS)
		return result;
	if (record->is_collision)
		return dd_log_warning_strerror(DD_DUPLICATE_NAME,
		                               "volume index already has this name");
	result = uds_put_delta_entry(&record->delta_entry, get_key(sub_index, record->name), value,
	                             collision_name);
	if (result == DD_OVERFLOW) {
		zone->overflow_count++;
		return DD_OVERFLOW;
	}
	if (result != DD_SUCCESS)
		return result;
	zone->chapter_counts[value]++;
	note_chapter(sub_index, get_list_number(sub_index, record->name), virtual_chapter);
	record->is_found = true;
	record->is_collision = (collision_name != NULL);
	record->virtual_chapter = virtual_chapter;
	return DD_SUCCESS;
}

int uds_set_volume_index_record_chapter(struct uds_volume_index_record *record,
                                        uint64_t virtual_chapter)
{
	struct sub_index_zone *zone = &record->sub_index->zones[record->zone_number];
	uint32_t value = (uint32_t) (virtual_chapter & record->sub_index->chapter_mask);
	uint32_t old_value;
	int result;

	if (!record->is_found)
		return dd_log_warning_strerror(DD_BAD_STATE, "no volume index entry to change");
	result = check_chapter(record, virtual_chapter);
	if (result != DD_SUCCESS)
		return result;
	old_value = uds_get_delta_entry_value(&record->delta_entry);
	result = uds_set_delta_entry_value(&record->delta_entry, value);
	if (result != DD_SUCCESS)
		return result;
	zone->chapter_counts[old_value]--;
	zone->chapter_counts[value]++;
	note_chapter(record->sub_index, get_list_number(record->sub_index, record->name),
	             virtual_chapter);
	record->virtual_chapter = virtual_chapter;
	return DD_SUCCESS;
}

int uds_remove_volume_index_record(struct uds_volume_index_record *record)
{
	int result;

	if (!record->is_found)
		return dd_log_warning_strerror(DD_BAD_STATE, "no volume index entry to remove");
	/* Whatever happens, the record no longer refers to an entry: search again to use it. */
	record->is_found = false;
	record->is_collision = false;
	result = remove_entry(&record->sub_index->zones[record->zone_number], &record->delta_entry);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot remove volume index entry");
	return DD_SUCCESS;
}

/*
 * Without removing anything, find the chapter a search would: the live collision entry of the
 * name, or else the first live entry with the key (which purging would make the default).
 */
int uds_lookup_volume_index_name(const struct uds_volume_index *index,
                                 const struct dd_record_name *name, uint64_t *chapter)
{
	const struct uds_volume_sub_index *sub_index =
	    &index->sub_indexes[sub_index_of(index, name)];
	uint32_t list_number = get_list_number(sub_index, name);
	uint32_t key = get_key(sub_index, name);
	const struct sub_index_zone *zone =
	    &sub_index->zones[uds_get_delta_zone_number(sub_index->delta_index, list_number)];
	uint64_t first_live = UINT64_MAX;
	struct uds_delta_entry entry;
	int result;

	*chapter = UINT64_MAX;
	result = uds_get_delta_entry(sub_index->delta_index, list_number, key, NULL, &entry);
	while ((result == DD_SUCCESS) && !entry.at_end && (entry.key == key)) {
		uint64_t live;

		if (decode_chapter(sub_index, zone, uds_get_delta_entry_value(&entry), &live)) {
			if (is_collision_for(&entry, name)) {
				*chapter = live;
				return DD_SUCCESS;
			}
			if (first_live == UINT64_MAX)
				first_live = live;
		}
		result = uds_next_delta_entry(&entry);
	}
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "volume index lookup failed");
	*chapter = first_live;
	return DD_SUCCESS;
}

void uds_get_volume_index_stats(const struct uds_volume_index *index,
                                struct uds_volume_index_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	stats->memory_allocated = index->memory_allocated;
	for (unsigned int s = 0; s < index->sub_index_count; s++) {
		const struct uds_volume_sub_index *sub_index = &index->sub_indexes[s];
		struct uds_delta_index_stats delta_stats;

		uds_get_delta_index_stats(sub_index->delta_index, &delta_stats);
		stats->record_count += delta_stats.record_count;
		stats->collision_count += delta_stats.collision_count;
		stats->rebalance_count += delta_stats.rebalance_count;
		stats->rebalance_time += delta_stats.rebalance_time;
		stats->list_count += delta_stats.list_count;
		stats->used_bits += delta_stats.used_bits;
		for (unsigned int z = 0; z < index->zone_count; z++)
			stats->capacity_bits +=
			    (uint64_t) (sub_index->delta_index->zones[z].size - DELTA_GUARD_BYTES) *
			    8;
		for (unsigned int z = 0; z < index->zone_count; z++) {
			stats->discard_count += sub_index->zones[z].discard_count;
			stats->overflow_count += sub_index->zones[z].overflow_count;
			stats->early_flushes += sub_index->zones[z].early_flushes;
		}
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Saving and loading                                                                          */
/* ------------------------------------------------------------------------------------------ */

static size_t encode_header(const struct saved_header *header, uint8_t *buffer)
{
	uint8_t *cursor = buffer + SAVE_HEADER_BYTES;

	memcpy(buffer, SAVE_MAGIC, SAVE_MAGIC_BYTES);
	dd_put_le32(buffer + 4, SAVE_VERSION);
	dd_put_le32(buffer + 8, header->zone_number);
	dd_put_le32(buffer + 12, header->zone_count);
	dd_put_le32(buffer + 16, header->sub_index_count);
	dd_put_le32(buffer + 20, 0);
	for (unsigned int s = 0; s < header->sub_index_count; s++) {
		const struct saved_window *window = &header->sub[s].window;

		dd_put_le32(cursor, header->sub[s].list_count);
		dd_put_le32(cursor + 4, header->sub[s].chapter_count);
		dd_put_le64(cursor + 8, window->oldest);
		dd_put_le64(cursor + 16, window->newest);
		dd_put_le64(cursor + 24, window->early_flushes);
		dd_put_le64(cursor + 32, window->discard_count);
		dd_put_le64(cursor + 40, window->overflow_count);
		cursor += SAVE_SUB_INDEX_BYTES;
	}
	return (size_t) (cursor - buffer);
}

int uds_save_volume_index_zone(const struct uds_volume_index *index, unsigned int zone_number,
                               struct dd_buffered_writer *writer)
{
	struct saved_header header = {
		.zone_number = zone_number,
		.zone_count = index->zone_count,
		.sub_index_count = index->sub_index_count,
	};
	uint8_t buffer[SAVE_MAX_BYTES];
	int result;

	if (zone_number >= index->zone_count)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "volume index zone %u of %u",
		                             zone_number, index->zone_count);
	for (unsigned int s = 0; s < index->sub_index_count; s++) {
		const struct sub_index_zone *zone = &index->sub_indexes[s].zones[zone_number];

		header.sub[s].list_count = index->sub_indexes[s].list_count;
		header.sub[s].chapter_count = index->sub_indexes[s].chapter_count;
		header.sub[s].window = (struct saved_window){
			.oldest = zone->oldest,
			.newest = zone->newest,
			.early_flushes = zone->early_flushes,
			.discard_count = zone->discard_count,
			.overflow_count = zone->overflow_count,
		};
	}
	result = dd_write_to_buffered_writer(writer, buffer, encode_header(&header, buffer));
	for (unsigned int s = 0; (s < index->sub_index_count) && (result == DD_SUCCESS); s++)
		result =
		    uds_save_delta_zone(index->sub_indexes[s].delta_index, zone_number, writer);
	if (result != DD_SUCCESS)
		return dd_log_warning_strerror(result, "cannot save volume index zone %u",
		                               zone_number);
	return DD_SUCCESS;
}

/* Decode and check the fixed part of a saved header. */
static int decode_header_start(const uint8_t *buffer, struct saved_header *header)
{
	if (memcmp(buffer, SAVE_MAGIC, SAVE_MAGIC_BYTES) != 0)
		return dd_log_warning_strerror(DD_BAD_MAGIC, "saved volume index has bad magic");
	if (dd_get_le32(buffer + 4) != SAVE_VERSION)
		return dd_log_warning_strerror(DD_UNSUPPORTED_VERSION,
		                               "saved volume index version %u",
		                               dd_get_le32(buffer + 4));
	header->zone_number = dd_get_le32(buffer + 8);
	header->zone_count = dd_get_le32(buffer + 12);
	header->sub_index_count = dd_get_le32(buffer + 16);
	if (dd_get_le32(buffer + 20) != 0)
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved volume index has a bad reserved field");
	return DD_SUCCESS;
}

/* Decode and check the part of a saved header about one sub-index. */
static int decode_sub_index(const struct uds_volume_sub_index *sub_index, const uint8_t *buffer,
                            unsigned int s, struct saved_header *header)
{
	struct saved_window *window = &header->sub[s].window;

	header->sub[s].list_count = dd_get_le32(buffer);
	header->sub[s].chapter_count = dd_get_le32(buffer + 4);
	window->oldest = dd_get_le64(buffer + 8);
	window->newest = dd_get_le64(buffer + 16);
	window->early_flushes = dd_get_le64(buffer + 24);
	window->discard_count = dd_get_le64(buffer + 32);
	window->overflow_count = dd_get_le64(buffer + 40);
	if ((header->sub[s].list_count != sub_index->list_count) ||
	    (header->sub[s].chapter_count != sub_index->chapter_count))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved volume index has %u lists and %u chapters, "
		                               "expected %u and %u",
		                               header->sub[s].list_count,
		                               header->sub[s].chapter_count, sub_index->list_count,
		                               sub_index->chapter_count);
	if ((window->oldest > window->newest) ||
	    (window->newest - window->oldest >= sub_index->chapter_count))
		return dd_log_warning_strerror(
		    DD_CORRUPT_DATA, "saved volume index has a bad window [%llu, %llu]",
		    (unsigned long long) window->oldest, (unsigned long long) window->newest);
	return DD_SUCCESS;
}

/* Read and check the header of saved zone @z of @count. */
static int read_header(const struct uds_volume_index *index, struct dd_buffered_reader *reader,
                       unsigned int z, unsigned int count, struct saved_header *header)
{
	uint8_t buffer[SAVE_MAX_BYTES];
	int result = dd_read_from_buffered_reader(reader, buffer, SAVE_HEADER_BYTES);

	if (result == DD_SUCCESS)
		result = decode_header_start(buffer, header);
	if (result != DD_SUCCESS)
		return result;
	if ((header->zone_number != z) || (header->zone_count != count))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved volume index zone %u of %u found in slot %u "
		                               "of %u",
		                               header->zone_number, header->zone_count, z, count);
	if (header->sub_index_count != index->sub_index_count)
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved volume index has %u sub-indexes, expected %u",
		                               header->sub_index_count, index->sub_index_count);
	result = dd_read_from_buffered_reader(reader, buffer,
	                                      index->sub_index_count * SAVE_SUB_INDEX_BYTES);
	for (unsigned int s = 0; (s < index->sub_index_count) && (result == DD_SUCCESS); s++)
		result = decode_sub_index(&index->sub_indexes[s], buffer + s * SAVE_SUB_INDEX_BYTES,
		                          s, header);
	return result;
}

/* Give every zone of a sub-index the combined window of the saved zones, and their counters. */
static void combine_windows(struct uds_volume_sub_index *sub_index, unsigned int zone_count,
                            const struct saved_header *headers, unsigned int saved_count,
                            unsigned int s)
{
	struct saved_window combined = headers[0].sub[s].window;

	for (unsigned int z = 1; z < saved_count; z++) {
		const struct saved_window *saved = &headers[z].sub[s].window;

		combined.newest = max_u64(combined.newest, saved->newest);
		combined.oldest = min_u64(combined.oldest, saved->oldest);
		combined.early_flushes += saved->early_flushes;
		combined.discard_count += saved->discard_count;
		combined.overflow_count += saved->overflow_count;
	}
	combined.oldest = max_u64(combined.oldest, full_window_start(sub_index, combined.newest));
	for (unsigned int z = 0; z < zone_count; z++) {
		sub_index->zones[z].oldest = combined.oldest;
		sub_index->zones[z].newest = combined.newest;
		reset_flush_chapters(sub_index, z);
	}
	sub_index->zones[0].early_flushes = combined.early_flushes;
	sub_index->zones[0].discard_count = combined.discard_count;
	sub_index->zones[0].overflow_count = combined.overflow_count;
}

/* Count the entries of every zone by chapter (after a load). */
static int count_chapters(struct uds_volume_sub_index *sub_index)
{
	int result = DD_SUCCESS;

	for (uint32_t list = 0; (list < sub_index->list_count) && (result == DD_SUCCESS); list++) {
		unsigned int z = uds_get_delta_zone_number(sub_index->delta_index, list);
		struct uds_delta_entry entry;

		result = uds_start_delta_search(sub_index->delta_index, list, 0, &entry);
		if (result == DD_SUCCESS)
			result = uds_next_delta_entry(&entry);
		while ((result == DD_SUCCESS) && !entry.at_end) {
			sub_index->zones[z].chapter_counts[uds_get_delta_entry_value(&entry)]++;
			result = uds_next_delta_entry(&entry);
		}
	}
	return result;
}

/* Empty the index: no entries, empty windows, no counts. */
static void reset_index(struct uds_volume_index *index)
{
	for (unsigned int s = 0; s < index->sub_index_count; s++) {
		struct uds_volume_sub_index *sub_index = &index->sub_indexes[s];

		uds_reset_delta_index(sub_index->delta_index);
		memset(sub_index->flush_chapters, 0,
		       sub_index->list_count * sizeof(*sub_index->flush_chapters));
		memset(sub_index->chapter_counts, 0,
		       ((size_t) index->zone_count * (sub_index->chapter_mask + 1)) *
		           sizeof(*sub_index->chapter_counts));
		for (unsigned int z = 0; z < index->zone_count; z++) {
			struct sub_index_zone *zone = &sub_index->zones[z];

			zone->oldest = 0;
			zone->newest = 0;
			zone->early_flushes = 0;
			zone->discard_count = 0;
			zone->overflow_count = 0;
			zone->flush_delay = sub_index->flush_delay;
		}
	}
}

/* Read the headers of every saved zone, then restore each sub-index from the streams. */
static int load_index(struct uds_volume_index *index, struct dd_buffered_reader **readers,
                      unsigned int reader_count, struct saved_header *headers)
{
	int result = DD_SUCCESS;

	for (unsigned int z = 0; (z < reader_count) && (result == DD_SUCCESS); z++)
		result = read_header(index, readers[z], z, reader_count, &headers[z]);
	for (unsigned int s = 0; (s < index->sub_index_count) && (result == DD_SUCCESS); s++)
		result = uds_restore_delta_index(index->sub_indexes[s].delta_index, readers,
		                                 reader_count);
	if (result != DD_SUCCESS)
		return result;
	for (unsigned int s = 0; (s < index->sub_index_count) && (result == DD_SUCCESS); s++) {
		combine_windows(&index->sub_indexes[s], index->zone_count, headers, reader_count,
		                s);
		result = count_chapters(&index->sub_indexes[s]);
	}
	return result;
}

int uds_load_volume_index(struct uds_volume_index *index, struct dd_buffered_reader **readers,
                          unsigned int reader_count)
{
	struct saved_header *headers;
	int result;

	reset_index(index);
	if ((reader_count < 1) || (reader_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "cannot load %u volume index zones", reader_count);
	result = DD_ALLOCATE(reader_count, struct saved_header, "volume index headers", &headers);
	if (result != DD_SUCCESS)
		return result;
	result = load_index(index, readers, reader_count, headers);
	dd_free(headers);
	if (result != DD_SUCCESS) {
		reset_index(index);
		return dd_log_warning_strerror(result, "cannot load the volume index");
	}
	return DD_SUCCESS;
}
