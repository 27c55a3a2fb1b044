/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The delta index: a compact sorted map from 32-bit keys to small fixed-width values.
 *
 * Keys are assumed to be uniformly distributed. They are split into many short delta lists by
 * the caller (the list number comes from some bits of the record name, the key from others).
 * Within a list, entries are kept in key order and only the difference between successive keys
 * (the delta) is stored, Huffman-coded for an exponential distribution, so that an entry costs
 * about payload_bits + min_bits + 1.5 bits instead of a whole key. Two different names with the
 * same list and key are told apart by collision entries, which carry the full 16-byte name.
 *
 * The index exists in two forms:
 *  - Mutable (struct uds_delta_index made by uds_make_delta_index()): the lists are split among
 *    zones, each zone a single block of memory owned by one zone thread. Entries can be
 *    searched, added, changed and removed. Used by the volume index and the open chapter's
 *    index. A zone can be saved to a checksummed stream and the whole index restored from the
 *    streams of any number of zones.
 *  - Immutable (struct uds_delta_page opened by uds_open_delta_page()): a range of lists packed
 *    by uds_pack_delta_page() into one fixed-size page, as the chapter index pages written to
 *    storage are. Searches run in place on the page's memory.
 *
 * A struct uds_delta_entry works as an iterator over one list, as the result of a search (the
 * entry found, or the place where the key would be inserted), and as the handle for changing or
 * removing that entry. All calls on one zone must come from the thread that owns the zone.
 */
#ifndef UDS_DELTA_INDEX_H
#define UDS_DELTA_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffered-io.h"
#include "errors.h"
#include "record-name.h"
#include "time-utils.h"

enum {
	/* The most zones a delta index (and the index as a whole) may have. */
	UDS_DELTA_MAX_ZONES = 64,
	/* The widest value an entry may carry. */
	UDS_DELTA_MAX_PAYLOAD_BITS = 32,
	/* The longest delta list, in bits. */
	UDS_DELTA_LIST_MAX_BITS = UINT16_MAX,
	/* The largest immutable page (list offsets are 19-bit bit offsets). */
	UDS_DELTA_PAGE_MAX_BYTES = 64 * 1024,
};

/*
 * Where one delta list lives in its zone's memory: 8 bytes a list. 48 bits of bit offset reach
 * 32 TiB of zone memory (uds_make_delta_index() refuses larger zones); a list holds at most
 * UDS_DELTA_LIST_MAX_BITS bits.
 */
struct uds_delta_list {
	/* Bit offset of the first bit of the list in the zone's memory. */
	uint64_t start : 48;
	/* Length of the list in bits. */
	uint64_t size : 16;
};

/* The Huffman code for deltas, derived from the mean delta; see compute_coding(). */
struct uds_delta_coding {
	/* Bits in an entry's value field. */
	uint8_t value_bits;
	/* Bits in the shortest delta code. */
	uint8_t min_bits;
	/* Number of deltas coded with min_bits bits. */
	uint32_t min_keys;
	/* Number of deltas coded with each additional bit. */
	uint32_t incr_keys;
};

/*
 * Where the last search of a zone stopped: a later search of the same list for a larger key
 * starts there instead of at the head of the list. One per zone, so that sorted sequential
 * access (a rebuild, a flush walk) stays cheap without a saved position in every list header.
 */
struct uds_delta_cursor {
	/* The list (1-based zone list index); 0 when the cursor is not set. */
	uint32_t list;
	/* Bit offset (within the list) of the entry where the search stopped. */
	uint32_t offset;
	/* The key of the entry just before that offset (the starting key for decoding there). */
	uint32_t key;
};

/* One zone of a delta index: a range of lists in one block of memory, owned by one thread. */
struct uds_delta_zone {
	/* The list memory; the last GUARD_BYTES bytes are the all-ones tail guard. */
	uint8_t *memory;
	/* Headers of lists 1..list_count, with guard lists at 0 and list_count + 1. */
	struct uds_delta_list *lists;
	/* Size of memory in bytes. */
	size_t size;
	/* Bits of list data in the zone (the sum of the list sizes). */
	uint64_t used_bits;
	/* The search cursor. */
	struct uds_delta_cursor cursor;
	/* The delta code. */
	struct uds_delta_coding coding;
	/* The index-wide number of this zone's first list. */
	uint32_t first_list;
	/* The number of lists in this zone. */
	uint32_t list_count;
	/* Statistics. */
	uint64_t record_count;
	uint64_t collision_count;
	uint64_t discard_count;
	uint64_t overflow_count;
	/* Rebalances, of a neighbourhood of lists or of the whole zone, and their cost. */
	uint64_t rebalance_count;
	uint64_t full_rebalance_count;
	uint64_t rebalance_bytes;
	dd_ktime_t rebalance_time;
	/* Tag identifying the index in saved streams. */
	uint8_t tag;
} __attribute__((aligned(64)));

/* A delta index: mutable (several zones) or the immutable view of one page (one zone). */
struct uds_delta_index {
	struct uds_delta_zone *zones;
	unsigned int zone_count;
	uint32_t list_count;
	uint32_t lists_per_zone;
	/* Total bytes allocated for this index. */
	size_t memory_size;
	bool is_mutable;
	uint8_t tag;
};

/* What uds_make_delta_index() builds. */
struct uds_delta_index_params {
	/* Zones (threads) the lists are split among; 1..UDS_DELTA_MAX_ZONES. */
	unsigned int zone_count;
	/* Number of delta lists; at least zone_count. */
	uint32_t list_count;
	/* Expected mean distance between successive keys of a list when the index is full. */
	uint32_t mean_delta;
	/* Bits of value per entry; 1..UDS_DELTA_MAX_PAYLOAD_BITS. */
	uint32_t payload_bits;
	/* Bytes of list memory in all (split evenly among the zones, rounded up). */
	size_t memory_size;
	/* A byte identifying this index in saved streams. */
	uint8_t tag;
};

/* An immutable page of delta lists, searched in place. */
struct uds_delta_page {
	struct uds_delta_index index;
	struct uds_delta_zone zone;
	uint32_t lowest_list_number;
	uint32_t highest_list_number;
	uint64_t virtual_chapter_number;
};

/*
 * A position in a delta list. After uds_get_delta_entry():
 *  - at_end: the key is past the last entry; the entry can only be the insertion point for a
 *    new last entry.
 *  - is_collision: the entry is a collision entry whose full name matched the name searched.
 *  - otherwise: the first entry whose key is >= the key searched (equal means found).
 * Fields after "private" carry state between calls and are not for callers.
 */
struct uds_delta_entry {
	/* The key of this entry. */
	uint32_t key;
	/* True when positioned after the last entry. */
	bool at_end;
	/* True when this is a collision entry (carrying a full name). */
	bool is_collision;

	/* private */
	uint8_t value_bits;
	/* Bits of this entry: value, delta code and collision name if any. */
	uint32_t entry_bits;
	/* Bit offset of this entry within its list. */
	uint32_t offset;
	/* The delta from the previous entry's key. */
	uint32_t delta;
	/* The list number within the zone. */
	uint32_t list_number;
	struct uds_delta_zone *zone;
	struct uds_delta_list *list;
	/* List header built from an immutable page's offset table. */
	struct uds_delta_list page_list;
};

/* Counters summed over the zones of an index. */
struct uds_delta_index_stats {
	size_t memory_allocated;
	uint64_t record_count;
	uint64_t collision_count;
	uint64_t discard_count;
	uint64_t overflow_count;
	uint64_t rebalance_count;
	uint64_t full_rebalance_count;
	/* Bytes of list data moved by rebalances. */
	uint64_t rebalance_bytes;
	dd_ktime_t rebalance_time;
	uint32_t list_count;
	/* Bits of list data in use (entries only, without list headers or free space). */
	uint64_t used_bits;
};

/**
 * uds_make_delta_index() - Build an empty mutable delta index.
 * @params: its shape.
 * @index_ptr: receives the index.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a bad shape, or ENOMEM.
 */
int DD_MUST_CHECK uds_make_delta_index(const struct uds_delta_index_params *params,
                                       struct uds_delta_index **index_ptr);

/** uds_free_delta_index() - Free a mutable delta index (NULL is ignored). */
void uds_free_delta_index(struct uds_delta_index *index);

/** uds_reset_delta_index() - Empty every zone of the index. */
void uds_reset_delta_index(struct uds_delta_index *index);

/** uds_get_delta_zone_number() - The zone that holds list @list_number. */
static inline unsigned int uds_get_delta_zone_number(const struct uds_delta_index *index,
                                                     uint32_t list_number)
{
	return list_number / index->lists_per_zone;
}

/**
 * uds_start_delta_search() - Position @entry before the entries of a list that could hold @key.
 * @index: the index.
 * @list_number: the list, 0..list_count - 1.
 * @key: the key the caller is looking for (0 to walk the whole list).
 * @entry: the iterator to set up; uds_next_delta_entry() then yields the entries in order.
 *
 * Return: DD_SUCCESS or DD_INVALID_ARGUMENT for a list number out of range.
 */
int DD_MUST_CHECK uds_start_delta_search(const struct uds_delta_index *index, uint32_t list_number,
                                         uint32_t key, struct uds_delta_entry *entry);

/**
 * uds_next_delta_entry() - Step @entry to the next entry of its list (or to the end).
 *
 * Return: DD_SUCCESS, or DD_CORRUPT_DATA if the list's bits do not decode within the list.
 */
int DD_MUST_CHECK uds_next_delta_entry(struct uds_delta_entry *entry);

/**
 * uds_remember_delta_offset() - Point the zone's cursor at @entry, so that later searches of
 * its list for larger keys start at @entry instead of at the beginning of the list (until a
 * search of another list of the zone moves the cursor).
 *
 * Return: DD_SUCCESS, or DD_BAD_STATE for a collision entry or an immutable page.
 */
int DD_MUST_CHECK uds_remember_delta_offset(const struct uds_delta_entry *entry);

/**
 * uds_prefetch_delta_list() - Start loading what a search of a list will read.
 * @index: the index (mutable).
 * @list_number: the list.
 * @stage: 0 prefetches the list's header; 1 (called later, once the header is likely cached)
 *         reads the header and prefetches the first cache lines of the list's bits.
 *
 * Only a hint: it changes nothing and never faults. Call it from the zone's thread only (stage
 * 1 reads a header that the zone's thread may be changing).
 */
void uds_prefetch_delta_list(const struct uds_delta_index *index, uint32_t list_number,
                             unsigned int stage);

/**
 * uds_get_delta_entry() - Find the entry for @key (and @name, among collisions) in a list.
 * @index: the index.
 * @list_number: the list.
 * @key: the key.
 * @name: the full name, used to pick a matching collision entry; may be NULL.
 * @entry: receives the first entry with a key >= @key, or the collision entry with @key whose
 *         name equals @name, or the end of the list.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT or DD_CORRUPT_DATA.
 */
int DD_MUST_CHECK uds_get_delta_entry(const struct uds_delta_index *index, uint32_t list_number,
                                      uint32_t key, const struct dd_record_name *name,
                                      struct uds_delta_entry *entry);

/** uds_get_delta_entry_value() - The value of the entry (which must not be at the end). */
uint32_t uds_get_delta_entry_value(const struct uds_delta_entry *entry);

/**
 * uds_get_delta_entry_collision() - Copy out the full name of a collision entry.
 *
 * Return: DD_SUCCESS or DD_BAD_STATE if the entry is not a collision entry.
 */
int DD_MUST_CHECK uds_get_delta_entry_collision(const struct uds_delta_entry *entry,
                                                struct dd_record_name *name);

/**
 * uds_set_delta_entry_value() - Change the value of an existing entry of a mutable index.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT if @value does not fit, DD_BAD_STATE at the end of
 * a list or on an immutable page.
 */
int DD_MUST_CHECK uds_set_delta_entry_value(const struct uds_delta_entry *entry, uint32_t value);

/**
 * uds_put_delta_entry() - Insert an entry at the position a search left in @entry.
 * @entry: the search result; on success it refers to the new entry.
 * @key: the new key: the key searched for.
 * @value: its value.
 * @name: NULL for an ordinary entry; the full name for a collision entry, which is placed after
 *        the existing entry with the same key (@entry must then refer to that entry).
 *
 * Return: DD_SUCCESS; DD_OVERFLOW when the list or the zone has no room (counted in the stats;
 * nothing is changed); DD_DUPLICATE_NAME when @entry is already a collision entry;
 * DD_INVALID_ARGUMENT for a key or value that does not belong at this position.
 */
int DD_MUST_CHECK uds_put_delta_entry(struct uds_delta_entry *entry, uint32_t key, uint32_t value,
                                      const struct dd_record_name *name);

/**
 * uds_remove_delta_entry() - Remove the entry @entry refers to; @entry then refers to the
 * following entry (or the end of the list).
 *
 * Return: DD_SUCCESS, DD_BAD_STATE or DD_CORRUPT_DATA.
 */
int DD_MUST_CHECK uds_remove_delta_entry(struct uds_delta_entry *entry);

/**
 * uds_purge_delta_list() - Remove, in one pass over a list of a mutable index, every entry
 * whose value lies outside a circular range: those with ((@newest - value) mod 2^value_bits) >
 * @span.
 * @index: the index.
 * @list_number: the list.
 * @newest: the newest value of the range.
 * @span: how far below @newest (circularly) values are kept.
 * @counts: if not NULL, counts[value] is decremented for each entry removed.
 * @removed_ptr: receives how many entries were removed.
 * @max_age_ptr: receives the largest (@newest - value) mod 2^value_bits kept (0 if none).
 *
 * The entries kept are compacted towards the start of the list, each removal's delta added to
 * the next entry kept; a collision entry whose key's first entry went becomes the first entry
 * (its name is dropped), as with uds_remove_delta_entry(). Much cheaper than removing entries
 * one by one while walking the list. Removed entries count as discards.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT, DD_BAD_STATE for an immutable page, or
 * DD_CORRUPT_DATA.
 */
int DD_MUST_CHECK uds_purge_delta_list(const struct uds_delta_index *index, uint32_t list_number,
                                       uint32_t newest, uint32_t span, uint32_t *counts,
                                       uint32_t *removed_ptr, uint32_t *max_age_ptr);

/** uds_get_delta_index_stats() - Sum the counters of all zones into @stats. */
void uds_get_delta_index_stats(const struct uds_delta_index *index,
                               struct uds_delta_index_stats *stats);

/**
 * uds_compute_delta_index_bits() - Expected bits of list data for @entry_count entries with the
 * given mean delta and payload width: payload_bits + min_bits + 1.5 bits per entry.
 */
uint64_t uds_compute_delta_index_bits(uint64_t entry_count, uint32_t mean_delta,
                                      uint32_t payload_bits);

/**
 * uds_get_delta_min_bits() - The min_bits of the Huffman code for @mean_delta (0 if invalid).
 */
unsigned int uds_get_delta_min_bits(uint32_t mean_delta);

/**
 * uds_get_delta_page_count() - How many immutable pages of @bytes_per_page hold @entry_count
 * entries spread over @list_count lists (with an allowance for the lists that do not fit at the
 * end of a page).
 */
uint32_t uds_get_delta_page_count(uint32_t entry_count, uint32_t list_count, uint32_t mean_delta,
                                  uint32_t payload_bits, size_t bytes_per_page);

/**
 * uds_pack_delta_page() - Pack lists of a one-zone mutable index into an immutable page.
 * @index: the source; it must have a single zone.
 * @nonce: the nonce of the index the page belongs to.
 * @virtual_chapter_number: recorded in the page header.
 * @first_list: the first list to pack.
 * @memory: the page.
 * @memory_size: the page size, at most UDS_DELTA_PAGE_MAX_BYTES.
 * @list_count_ptr: receives how many lists (from @first_list on) fit on the page; may be 0
 *                  only when @first_list is the list count.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT, or DD_OVERFLOW if the page cannot hold even the
 * first list.
 */
int DD_MUST_CHECK uds_pack_delta_page(const struct uds_delta_index *index, uint64_t nonce,
                                      uint64_t virtual_chapter_number, uint32_t first_list,
                                      uint8_t *memory, size_t memory_size,
                                      uint32_t *list_count_ptr);

/**
 * uds_open_delta_page() - Validate an immutable page read from storage and set up @page to
 * search it in place.
 * @page: the descriptor to fill in.
 * @expected_nonce: the nonce the page must carry.
 * @mean_delta: the mean delta the page was built with.
 * @payload_bits: the value width the page was built with.
 * @memory: the page (it must stay valid while @page is used; it is never written).
 * @memory_size: the page size.
 *
 * Return: DD_SUCCESS; DD_BAD_MAGIC, DD_UNSUPPORTED_VERSION, DD_CHECKSUM_MISMATCH or
 * DD_CORRUPT_DATA for a page that is not a valid page of this index.
 */
int DD_MUST_CHECK uds_open_delta_page(struct uds_delta_page *page, uint64_t expected_nonce,
                                      uint32_t mean_delta, uint32_t payload_bits,
                                      const uint8_t *memory, size_t memory_size);

/**
 * uds_compute_delta_save_bytes() - An upper bound of the bytes of stream that saving one zone
 * of an index with @list_count lists and @memory_size bytes of memory writes.
 */
size_t uds_compute_delta_save_bytes(uint32_t list_count, size_t memory_size);

/**
 * uds_save_delta_zone() - Write one zone of a mutable index to a stream (from the zone's thread).
 * @index: the index.
 * @zone_number: the zone.
 * @writer: the stream; the caller finishes it.
 *
 * Return: DD_SUCCESS or the stream's error.
 */
int DD_MUST_CHECK uds_save_delta_zone(const struct uds_delta_index *index, unsigned int zone_number,
                                      struct dd_buffered_writer *writer);

/**
 * uds_restore_delta_index() - Replace the contents of a mutable index with saved zones.
 * @index: the index; it may have a different zone count from the one saved, but must have the
 *         same list count, tag, mean delta and payload width.
 * @readers: one stream per saved zone, in zone order.
 * @reader_count: the number of saved zones.
 *
 * On error the index is left empty.
 *
 * Return: DD_SUCCESS; DD_CORRUPT_DATA, DD_BAD_MAGIC, DD_UNSUPPORTED_VERSION or DD_OVERFLOW for
 * saved data that does not fit this index; or the streams' errors.
 */
int DD_MUST_CHECK uds_restore_delta_index(struct uds_delta_index *index,
                                          struct dd_buffered_reader **readers,
                                          unsigned int reader_count);

#endif /* UDS_DELTA_INDEX_H */
