// SPDX-License-Identifier: GPL-2.0-only
/*
 * Record pages; see record-page.h for the layout.
 *
 * Tree. Slot s (0-based) of the page is node k = s + 1 of a 1-based implicit tree: the children
 * of node k are 2k and 2k + 1. With the 32-byte header and 32-byte records, the two children of
 * any node sit at page offset 64k, so they share one 64-byte cache line (when the page buffer is
 * 64-byte aligned) and a search touches one line per level. The in-order walk that fills the
 * tree, and the one that checks it, step from a node to its in-order successor in amortised
 * constant time without a stack (down-right then all the way left, or up past every node we are
 * the right child of).
 *
 * Search. Names compare as byte strings, which is the order of the two big-endian 64-bit halves.
 * The descent is branch-free: at each level k becomes 2k + (node < name), so after the loop k
 * encodes the path taken; shifting off its trailing ones and the last zero gives the node where
 * the search last went left, the smallest name >= the one searched (the lower bound). One final
 * comparison tells whether it is the name. Every search of a full 4 KiB page is 7 levels.
 *
 * Sorting. Names are hashes, so they spread evenly over their first bits: a counting sort on the
 * top bits of the name into the page buffer (used as scratch before it is filled in), followed
 * by an insertion sort of each bucket, sorts a page in linear expected time. A bucket that turns
 * out large (names chosen to share a prefix) is sorted with qsort(), so the worst case stays
 * O(n log n).
 *
 * Checksum. XXH3-64 cannot skip the checksum field in one call, so it is chained: the hash of
 * bytes 0-23 seeded with the nonce seeds the hash of bytes 32..end. A changed nonce, header or
 * record changes the result.
 *
 * Equal names. Names in a chapter are unique (the open chapter merges repeated puts), but if a
 * page were given a name twice it would still encode and validate (the order check allows
 * equal neighbours) and a search would return one of the two.
 */
#include "record-page.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "byte-order.h"
#include "logger.h"

enum {
	MAGIC_OFFSET = 0,
	VERSION_OFFSET = 4,
	COUNT_OFFSET = 6,
	PAGE_NUMBER_OFFSET = 8,
	RESERVED_OFFSET = 12,
	CHAPTER_OFFSET = 16,
	CHECKSUM_OFFSET = 24,
	RECORD_PAGE_VERSION = 1,
	/* Buckets of the counting sort: at most this many, each for about two records. */
	MAX_SORT_BUCKETS = 1024,
	/* Buckets up to this size are insertion sorted; larger ones go to qsort(). */
	INSERTION_SORT_LIMIT = 24,
};

static const uint8_t RECORD_PAGE_MAGIC[4] = { 'U', 'R', 'P', 'G' };

/* The record in slot @slot of @page. */
static inline const uint8_t *slot_address(const uint8_t *page, uint32_t slot)
{
	return page + UDS_RECORD_PAGE_HEADER_BYTES + (size_t) slot * UDS_RECORD_BYTES;
}

/* Read 8 bytes as a big-endian number (a half of a name, in name order). */
static inline uint64_t get_be64(const uint8_t *bytes)
{
	uint64_t value;

	memcpy(&value, bytes, sizeof(value));
	return be64toh(value);
}

/* In-order successor of node @k (1-based) in a tree of @n nodes; 0 after the last node. */
static inline uint32_t next_in_order(uint32_t k, uint32_t n)
{
	if (2 * k + 1 <= n) {
		k = 2 * k + 1;
		while (2 * k <= n)
			k *= 2;
		return k;
	}
	/* Climb while we are a right child, then once more to the parent we are left of. */
	while (k & 1)
		k >>= 1;
	return k >> 1;
}

/* The first node (the smallest name) of a tree of @n nodes, or 0 for an empty tree. */
static inline uint32_t first_in_order(uint32_t n)
{
	uint32_t k = (n > 0) ? 1 : 0;

	while ((k > 0) && (2 * k <= n))
		k *= 2;
	return k;
}

/* The checksum of a page: see the top of this file. */
static uint64_t compute_checksum(const uint8_t *page, size_t size, uint64_t nonce)
{
	XXH64_hash_t seed = XXH3_64bits_withSeed(page, CHECKSUM_OFFSET, nonce);

	return XXH3_64bits_withSeed(page + UDS_RECORD_PAGE_HEADER_BYTES,
	                            size - UDS_RECORD_PAGE_HEADER_BYTES, seed);
}

/* qsort() comparison of two records by name. */
static int compare_records(const void *a, const void *b)
{
	return memcmp(a, b, UDS_RECORD_NAME_BYTES);
}

/* Insertion sort of a few records, expected to be nearly in order. */
static void insertion_sort(struct uds_volume_record *records, uint32_t count)
{
	for (uint32_t i = 1; i < count; i++) {
		struct uds_volume_record record = records[i];
		uint32_t j = i;

		while ((j > 0) &&
		       (dd_record_name_compare(&records[j - 1].name, &record.name) > 0)) {
			records[j] = records[j - 1];
			j--;
		}
		records[j] = record;
	}
}

/* Sort each bucket of records (buckets delimited by @starts) in place. */
static void sort_buckets(struct uds_volume_record *records, const uint16_t *starts,
                         uint32_t bucket_count)
{
	for (uint32_t b = 0; b < bucket_count; b++) {
		uint32_t size = starts[b + 1] - starts[b];

		if (size > INSERTION_SORT_LIMIT)
			qsort(&records[starts[b]], size, sizeof(*records), compare_records);
		else if (size > 1)
			insertion_sort(&records[starts[b]], size);
	}
}

/* The number of bits of name prefix the counting sort of @count records uses. */
static unsigned int bucket_bits_for(uint32_t count)
{
	unsigned int bits = 0;

	while (((2u << bits) <= count) && ((1u << bits) < MAX_SORT_BUCKETS))
		bits++;
	return bits;
}

/*
 * Sort @count records by name, using @scratch (room for @count records) as the buffer of the
 * counting sort; the result is in @records.
 */
static void sort_records(struct uds_volume_record *records, uint32_t count, void *scratch)
{
	struct uds_volume_record *buffer = scratch;
	unsigned int bits = bucket_bits_for(count);
	uint32_t bucket_count = 1u << bits;
	unsigned int shift = 16 - bits;
	uint16_t starts[MAX_SORT_BUCKETS + 1];
	uint16_t next[MAX_SORT_BUCKETS];

	if (count <= INSERTION_SORT_LIMIT) {
		insertion_sort(records, count);
		return;
	}
	memset(starts, 0, (bucket_count + 1) * sizeof(starts[0]));
	for (uint32_t i = 0; i < count; i++)
		starts[(get_be64(records[i].name.name) >> 48 >> shift) + 1]++;
	for (uint32_t b = 0; b < bucket_count; b++) {
		starts[b + 1] += starts[b];
		next[b] = starts[b];
	}
	for (uint32_t i = 0; i < count; i++)
		buffer[next[get_be64(records[i].name.name) >> 48 >> shift]++] = records[i];
	sort_buckets(buffer, starts, bucket_count);
	memcpy(records, buffer, count * sizeof(*records));
}

/* Store one record into slot @slot of @page. */
static inline void put_record(uint8_t *page, uint32_t slot, const struct uds_volume_record *record)
{
	uint8_t *address = page + UDS_RECORD_PAGE_HEADER_BYTES + (size_t) slot * UDS_RECORD_BYTES;

	memcpy(address, record->name.name, UDS_RECORD_NAME_BYTES);
	memcpy(address + UDS_RECORD_NAME_BYTES, record->data.data, UDS_RECORD_DATA_BYTES);
}

int uds_encode_record_page(const struct uds_geometry *geometry, uint64_t nonce,
                           uint64_t virtual_chapter, uint32_t page_number,
                           struct uds_volume_record *records, uint32_t count, uint8_t *page)
{
	uint32_t k = first_in_order(count);

	if ((count > geometry->records_per_page) || (count > UINT16_MAX))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "%u records for a %u record page",
		                             count, geometry->records_per_page);
	/* The slots serve as the sort's scratch buffer before the tree is written over them. */
	sort_records(records, count, page + UDS_RECORD_PAGE_HEADER_BYTES);
	for (uint32_t i = 0; i < count; i++, k = next_in_order(k, count))
		put_record(page, k - 1, &records[i]);
	memset(page + UDS_RECORD_PAGE_HEADER_BYTES + (size_t) count * UDS_RECORD_BYTES, 0,
	       geometry->bytes_per_page - UDS_RECORD_PAGE_HEADER_BYTES -
	           (size_t) count * UDS_RECORD_BYTES);

	memcpy(page + MAGIC_OFFSET, RECORD_PAGE_MAGIC, sizeof(RECORD_PAGE_MAGIC));
	dd_put_le16(page + VERSION_OFFSET, RECORD_PAGE_VERSION);
	dd_put_le16(page + COUNT_OFFSET, (uint16_t) count);
	dd_put_le32(page + PAGE_NUMBER_OFFSET, page_number);
	dd_put_le32(page + RESERVED_OFFSET, 0);
	dd_put_le64(page + CHAPTER_OFFSET, virtual_chapter);
	dd_put_le64(page + CHECKSUM_OFFSET,
	            compute_checksum(page, geometry->bytes_per_page, nonce));
	return DD_SUCCESS;
}

/* Check that an in-order walk of the tree of @count records meets the names in order. */
static bool is_tree_ordered(const uint8_t *page, uint32_t count)
{
	uint32_t k = first_in_order(count);
	const uint8_t *previous = NULL;

	for (; k != 0; k = next_in_order(k, count)) {
		const uint8_t *current = slot_address(page, k - 1);

		if ((previous != NULL) && (memcmp(previous, current, UDS_RECORD_NAME_BYTES) > 0))
			return false;
		previous = current;
	}
	return true;
}

int uds_validate_record_page(const struct uds_geometry *geometry, uint64_t nonce,
                             uint64_t virtual_chapter, uint32_t page_number, const uint8_t *page)
{
	uint32_t count = dd_get_le16(page + COUNT_OFFSET);

	if (memcmp(page + MAGIC_OFFSET, RECORD_PAGE_MAGIC, sizeof(RECORD_PAGE_MAGIC)) != 0)
		return DD_BAD_MAGIC;
	if (dd_get_le16(page + VERSION_OFFSET) != RECORD_PAGE_VERSION)
		return DD_UNSUPPORTED_VERSION;
	if (dd_get_le64(page + CHECKSUM_OFFSET) !=
	    compute_checksum(page, geometry->bytes_per_page, nonce))
		return DD_CHECKSUM_MISMATCH;
	if ((dd_get_le64(page + CHAPTER_OFFSET) != virtual_chapter) ||
	    (dd_get_le32(page + PAGE_NUMBER_OFFSET) != page_number) ||
	    (dd_get_le32(page + RESERVED_OFFSET) != 0) || (count > geometry->records_per_page))
		return DD_CORRUPT_DATA;
	return is_tree_ordered(page, count) ? DD_SUCCESS : DD_CORRUPT_DATA;
}

/* The record count of a page, never more than the page can hold. */
static inline uint32_t get_count(const struct uds_geometry *geometry, const uint8_t *page)
{
	uint32_t count = dd_get_le16(page + COUNT_OFFSET);

	return (count <= geometry->records_per_page) ? count : geometry->records_per_page;
}

bool uds_search_record_page(const struct uds_geometry *geometry, const uint8_t *page,
                            const struct dd_record_name *name, struct uds_record_data *data)
{
	uint32_t count = get_count(geometry, page);
	uint64_t high = get_be64(&name->name[0]);
	uint64_t low = get_be64(&name->name[8]);
	const uint8_t *record;
	uint32_t k = 1;

	while (k <= count) {
		const uint8_t *node = slot_address(page, k - 1);
		uint64_t node_high = get_be64(node);
		uint64_t node_low = get_be64(node + 8);

		k = 2 * k + ((node_high < high) | ((node_high == high) & (node_low < low)));
	}
	/* Drop the trailing right turns and the last left turn: k is now the lower bound. */
	k >>= __builtin_ctz(~k) + 1;
	if (k == 0)
		return false;
	record = slot_address(page, k - 1);
	if (memcmp(record, name->name, UDS_RECORD_NAME_BYTES) != 0)
		return false;
	if (data != NULL)
		memcpy(data->data, record + UDS_RECORD_NAME_BYTES, UDS_RECORD_DATA_BYTES);
	return true;
}

uint64_t uds_get_record_page_chapter(const uint8_t *page)
{
	return dd_get_le64(page + CHAPTER_OFFSET);
}

uint32_t uds_get_record_page_records(const struct uds_geometry *geometry, const uint8_t *page,
                                     struct uds_volume_record *records)
{
	uint32_t count = get_count(geometry, page);

	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *record = slot_address(page, i);

		memcpy(records[i].name.name, record, UDS_RECORD_NAME_BYTES);
		memcpy(records[i].data.data, record + UDS_RECORD_NAME_BYTES, UDS_RECORD_DATA_BYTES);
	}
	return count;
}
