// SPDX-License-Identifier: GPL-2.0-only
/*
 * The delta index; see delta-index.h for what it is for.
 *
 * Bit streams. Each delta list is a stream of bits in its zone's memory. Bits are numbered in
 * little-endian order: bit n of the stream is bit (n % 8) of byte (n / 8). Fields are read and
 * written with one unaligned 64-bit little-endian load (and store) at the byte holding the
 * field's first bit, which reaches any field of up to 56 bits. Such an access may touch up to 7
 * bytes after the field, so every block of list memory ends with GUARD_BYTES bytes that no list
 * ever occupies. Those bytes are all ones: a corrupt list whose unary code runs on can only run
 * into ones, never off the end of memory, and the decoder also stops at the end of the list.
 *
 * Entries. An entry is [value: value_bits][delta code][name: 128 bits, collision entries only].
 * The delta code is a Huffman code for exponentially distributed deltas with three parameters
 * (see compute_coding()): deltas below min_keys take min_bits bits; each further run of
 * incr_keys deltas takes one more bit. A long code is its low min_bits bits (a value in
 * [min_keys, 2^min_bits)) followed by a unary count of zeros ended by a one. A delta of zero
 * anywhere but at the start of a list marks a collision entry: a second name with the same key,
 * told apart by the full name stored after it. The first entry with a key is the default for
 * every name with that key; collision entries follow it.
 *
 * Zones. A mutable index splits its lists evenly among zones. A zone's lists sit in order in one
 * block of memory with free gaps between them; list 0 and list N+1 are empty guard lists at the
 * very start and (over the all-ones guard bytes) at the very end, so that every real list has a
 * neighbour on each side and the gaps need no bounds checks. A list's header is 8 bytes: a
 * 48-bit bit offset and a 16-bit size. Inserting bits into a list shifts the smaller of the two
 * parts of the list into the neighbouring gap. When neither gap is large enough, the zone is
 * rebalanced locally: the lists of a neighbourhood of the growing list are moved so that the
 * neighbourhood's free space is shared out evenly again, with the needed room added next to
 * the growing list. The neighbourhood starts at a few lists either side and widens until its
 * lists would keep at least half the zone's average gap each, so most rebalances move a few
 * kilobytes, not the whole zone, and a zone can run with little free space. New positions are
 * computed from the list sizes as the lists are moved, never stored. Lists keep their bit
 * alignment when they move, so a move is a memmove() of bytes. Moving the lists that go down
 * in ascending order and then the lists that go up in descending order never overwrites a list
 * before it has moved.
 *
 * Searches. Each zone has one cursor: the list of the last search, the offset where it stopped
 * and the key before that entry. A search of the same list for a larger key starts there
 * instead of at the head of the list, which keeps sorted sequential access cheap (a rebuild
 * inserting names in list and key order, a walk that removes entries) without a saved position
 * in every list header. Changes to the list ahead of the cursor move it back to a valid place.
 * The search itself is one tight loop over the bit stream (see scan_to_key()).
 *
 * Immutable pages. A page packs a range of lists after a header and an offset table of 19-bit
 * list start offsets (one more than the lists, so that each list's end is the next one's
 * start). The header carries a magic number, version, coding parameters, nonce and an XXH3
 * checksum of the whole page, so that a page read from storage is verified before it is
 * searched.
 *
 * Saving. Each zone is written to its own checksummed stream: a header, the size of every list,
 * then the bits of all the lists packed back to back, so that a save is never larger than the
 * zone's list data plus two bytes a list. Restoring reads any number of zone streams into an
 * index with any zone count, lays the lists out evenly in their new zones, and walks every
 * restored list to check that it decodes exactly and to count its records.
 */
#include "delta-index.h"

#include <math.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"

enum {
	BITS_PER_BYTE = 8,
	/* Bytes a field access may touch past the end of the field. */
	GUARD_BYTES = sizeof(uint64_t) - 1,
	GUARD_BITS = GUARD_BYTES * BITS_PER_BYTE,
	/* The widest field get_field() and set_field() handle. */
	MAX_FIELD_BITS = 56,
	/*
	 * scan_to_key() decodes an entry from one load when its value and shortest delta code
	 * take at most this many of the load's 57 or more bits.
	 */
	FAST_HEAD_BITS = 48,
	CACHE_LINE_BYTES = 64,
	HUGE_PAGE_BYTES = 2 * 1024 * 1024,
	/* uds_prefetch_delta_list() fetches at most this much of a list. */
	PREFETCH_LIST_BYTES = 4 * CACHE_LINE_BYTES,
	COLLISION_BYTES = DD_RECORD_NAME_SIZE,
	COLLISION_BITS = COLLISION_BYTES * BITS_PER_BYTE,
	/* Zone memory is a multiple of this. */
	ZONE_ALLOCATION_UNIT = 64 * 1024,
	/* Bytes that hold the longest list at any bit alignment, plus guard bytes. */
	LIST_BUFFER_BYTES = (UDS_DELTA_LIST_MAX_BITS + 7) / BITS_PER_BYTE + 1 + GUARD_BYTES,
	/* A rebalance first tries the lists this many either side of the growing list... */
	RELAYOUT_MIN_RADIUS = 8,
	/* ...then a neighbourhood this many times wider, and so on up to the whole zone. */
	RELAYOUT_GROWTH = 4,
};

/* The largest zone: list offsets are 48-bit bit offsets. */
static const uint64_t MAX_ZONE_BYTES = (1ULL << 48) / BITS_PER_BYTE;

/*
 * Immutable page layout (all integers little-endian):
 *   0  magic "DLTP"                       4 bytes
 *   4  format version (1)                 1 byte
 *   5  value bits                         1 byte
 *   6  number of lists on the page        2 bytes
 *   8  index-wide number of the first     4 bytes
 *  12  incr_keys of the delta code          4 bytes
 *  16  nonce of the index                 8 bytes
 *  24  virtual chapter number             8 bytes
 *  32  checksum                           8 bytes: XXH3-64 of bytes 40..end seeded with
 *                                                   XXH3-64 of bytes 0..31
 *  40  offset table: list_count + 1 fields of 19 bits, the bit offset (from the start of the
 *      page) of each list's first bit; the last is the end of the last list
 *  ... list bits, then zeros up to the last 7 bytes, which are all ones
 */
enum {
	PAGE_MAGIC_OFFSET = 0,
	PAGE_VERSION_OFFSET = 4,
	PAGE_VALUE_BITS_OFFSET = 5,
	PAGE_LIST_COUNT_OFFSET = 6,
	PAGE_FIRST_LIST_OFFSET = 8,
	PAGE_INCR_KEYS_OFFSET = 12,
	PAGE_NONCE_OFFSET = 16,
	PAGE_CHAPTER_OFFSET = 24,
	PAGE_CHECKSUM_OFFSET = 32,
	PAGE_HEADER_BYTES = 40,
	PAGE_VERSION = 1,
	PAGE_OFFSET_BITS = 19,
	PAGE_MIN_BYTES = 128,
};

static const uint8_t PAGE_MAGIC[4] = { 'D', 'L', 'T', 'P' };

/*
 * Saved zone stream (all integers little-endian):
 *   header: magic "DLTZONE1" (8), version u32, tag u8, value bits u8, min bits u8, pad u8,
 *           min keys u32, incr keys u32, zone number u32, zone count u32, first list u32,
 *           list count u32, record count u64, collision count u64
 *   list sizes: list count x u16 (bits)
 *   list bits: the bits of every list, in list order, packed one after the other with no gap
 *              (the bit stream's numbering is the memory's), then zero bits to a whole byte
 * Version 1 (no longer read) framed each list by its number, bit offset and byte count.
 */
enum {
	SAVE_VERSION = 2,
	SAVE_MAGIC_BYTES = 8,
	SAVE_HEADER_BYTES = SAVE_MAGIC_BYTES + 4 + 4 + 4 + 4 + 4 + 4 + 4 + 4 + 8 + 8,
	/* Bytes of packed list bits staged before each write (and read). */
	SAVE_CHUNK_BYTES = 64 * 1024,
	SAVE_BUFFER_BYTES = SAVE_CHUNK_BYTES + LIST_BUFFER_BYTES,
};

static const uint8_t SAVE_MAGIC[SAVE_MAGIC_BYTES] = { 'D', 'L', 'T', 'Z', 'O', 'N', 'E', '1' };

/* ------------------------------------------------------------------------------------------ */
/* Little-endian loads and stores, and bit fields                                              */
/* ------------------------------------------------------------------------------------------ */

static inline uint64_t low_bits_mask(unsigned int bits)
{
	return (bits >= 64) ? ~0ULL : ((1ULL << bits) - 1);
}

/* Read a field of up to MAX_FIELD_BITS bits starting at bit @offset. */
static inline uint64_t get_field(const uint8_t *memory, uint64_t offset, unsigned int bits)
{
	uint64_t word = dd_get_le64(memory + offset / BITS_PER_BYTE);

	return (word >> (offset % BITS_PER_BYTE)) & low_bits_mask(bits);
}

/* Write a field of up to MAX_FIELD_BITS bits starting at bit @offset. */
static inline void set_field(uint64_t value, uint8_t *memory, uint64_t offset, unsigned int bits)
{
	uint8_t *address = memory + offset / BITS_PER_BYTE;
	unsigned int shift = offset % BITS_PER_BYTE;
	uint64_t mask = low_bits_mask(bits) << shift;
	uint64_t word = dd_get_le64(address);

	dd_put_le64(address, (word & ~mask) | ((value << shift) & mask));
}

/* Clear @bits bits starting at bit @offset. */
static void set_zero(uint8_t *memory, uint64_t offset, uint64_t bits)
{
	while (bits > 0) {
		unsigned int chunk = (bits > MAX_FIELD_BITS) ? MAX_FIELD_BITS : (unsigned int) bits;

		set_field(0, memory, offset, chunk);
		offset += chunk;
		bits -= chunk;
	}
}

/* Read 64 bits starting at bit @offset (one byte past them may be read, never used). */
static inline uint64_t get_word(const uint8_t *memory, uint64_t offset)
{
	const uint8_t *address = memory + offset / BITS_PER_BYTE;
	unsigned int shift = offset % BITS_PER_BYTE;

	/* Shifting in two steps keeps a shift of 64 (for shift == 0) out of it. */
	return (dd_get_le64(address) >> shift) | (((uint64_t) address[8] << 1) << (63 - shift));
}

/* Copy fewer than 2 * MAX_FIELD_BITS bits, lowest bits first. */
static inline void move_short_bits(const uint8_t *from, uint64_t from_offset, uint8_t *to,
                                   uint64_t to_offset, unsigned int size)
{
	if (size > MAX_FIELD_BITS) {
		set_field(get_field(from, from_offset, MAX_FIELD_BITS), to, to_offset,
		          MAX_FIELD_BITS);
		from_offset += MAX_FIELD_BITS;
		to_offset += MAX_FIELD_BITS;
		size -= MAX_FIELD_BITS;
	}
	if (size > 0)
		set_field(get_field(from, from_offset, size), to, to_offset, size);
}

/*
 * Copy @size bits to a lower address, lowest bits first, in 64-bit stores once the destination
 * is 64-bit aligned. Each store covers exactly the destination bits it means to write, and all
 * of them lie below the source bits still to be read, so overlapping ranges are safe.
 */
static void move_bits_down(const uint8_t *from, uint64_t from_offset, uint8_t *to,
                           uint64_t to_offset, uint64_t size)
{
	unsigned int head = (64 - to_offset % 64) % 64;

	if (head > size)
		head = (unsigned int) size;
	/* A head (and a tail) of up to 63 bits takes two fields. */
	move_short_bits(from, from_offset, to, to_offset, head);
	from_offset += head;
	to_offset += head;
	size -= head;
	while (size >= 64) {
		dd_put_le64(to + to_offset / BITS_PER_BYTE, get_word(from, from_offset));
		from_offset += 64;
		to_offset += 64;
		size -= 64;
	}
	move_short_bits(from, from_offset, to, to_offset, (unsigned int) size);
}

/* Copy @size bits to a higher address, highest bits first; the mirror of move_bits_down(). */
static void move_bits_up(const uint8_t *from, uint64_t from_offset, uint8_t *to, uint64_t to_offset,
                         uint64_t size)
{
	unsigned int tail = (to_offset + size) % 64;

	if (tail > size)
		tail = (unsigned int) size;
	size -= tail;
	if (tail > MAX_FIELD_BITS) {
		/* Highest part first: the lower part's source may lie under its destination. */
		set_field(
		    get_field(from, from_offset + size + MAX_FIELD_BITS, tail - MAX_FIELD_BITS), to,
		    to_offset + size + MAX_FIELD_BITS, tail - MAX_FIELD_BITS);
		tail = MAX_FIELD_BITS;
	}
	if (tail > 0)
		set_field(get_field(from, from_offset + size, tail), to, to_offset + size, tail);
	while (size >= 64) {
		size -= 64;
		dd_put_le64(to + (to_offset + size) / BITS_PER_BYTE,
		            get_word(from, from_offset + size));
	}
	if (size > MAX_FIELD_BITS) {
		set_field(get_field(from, from_offset + MAX_FIELD_BITS,
		                    (unsigned int) size - MAX_FIELD_BITS),
		          to, to_offset + MAX_FIELD_BITS, (unsigned int) size - MAX_FIELD_BITS);
		size = MAX_FIELD_BITS;
	}
	if (size > 0)
		set_field(get_field(from, from_offset, (unsigned int) size), to, to_offset,
		          (unsigned int) size);
}

/*
 * Copy @size bits; the ranges may overlap, as with memmove(). Zero-bit copies touch no memory
 * (a zero-width access at the very end of a zone would reach one byte past it).
 */
static void move_bits(const uint8_t *from, uint64_t from_offset, uint8_t *to, uint64_t to_offset,
                      uint64_t size)
{
	if (size == 0)
		return;
	if (size <= MAX_FIELD_BITS)
		set_field(get_field(from, from_offset, (unsigned int) size), to, to_offset,
		          (unsigned int) size);
	else if ((from == to) && (from_offset < to_offset))
		move_bits_up(from, from_offset, to, to_offset, size);
	else
		move_bits_down(from, from_offset, to, to_offset, size);
}

/* ------------------------------------------------------------------------------------------ */
/* The delta code                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * For keys spread uniformly with mean gap M, gaps are (nearly) exponentially distributed, and
 * the optimal prefix code gives each further log(2) * M values one more bit. So incr_keys is
 * round(ln 2 * M); min_bits is the smallest width whose 2^min_bits codes exceed incr_keys; the
 * first min_keys = 2^min_bits - incr_keys deltas use exactly min_bits bits.
 */
static void compute_coding(uint32_t mean_delta, uint32_t payload_bits,
                           struct uds_delta_coding *coding)
{
	uint32_t incr_keys = (uint32_t) llround(M_LN2 * (double) mean_delta);
	unsigned int min_bits = 1;

	if (incr_keys == 0)
		incr_keys = 1;
	while ((1ULL << min_bits) <= incr_keys)
		min_bits++;
	coding->value_bits = (uint8_t) payload_bits;
	coding->min_bits = (uint8_t) min_bits;
	coding->incr_keys = incr_keys;
	coding->min_keys = (uint32_t) ((1ULL << min_bits) - incr_keys);
}

/* The number of bits of the delta code for @delta (64-bit: a forged delta may be huge). */
static inline uint64_t delta_code_bits(const struct uds_delta_coding *coding, uint32_t delta)
{
	if (delta < coding->min_keys)
		return coding->min_bits;
	return coding->min_bits + 1 + (uint64_t) (delta - coding->min_keys) / coding->incr_keys;
}

static void encode_delta(const struct uds_delta_coding *coding, uint8_t *memory, uint64_t offset,
                         uint32_t delta)
{
	uint32_t excess;
	uint32_t zeros;

	if (delta < coding->min_keys) {
		set_field(delta, memory, offset, coding->min_bits);
		return;
	}
	excess = delta - coding->min_keys;
	zeros = excess / coding->incr_keys;
	set_field(coding->min_keys + excess % coding->incr_keys, memory, offset, coding->min_bits);
	set_zero(memory, offset + coding->min_bits, zeros);
	set_field(1, memory, offset + coding->min_bits + zeros, 1);
}

/*
 * Decode a code whose unary part did not end within the first word: scan whole words up to
 * @limit (the end of the list). Rare; it needs a gap of many times the mean delta.
 */
static int decode_long_delta(const struct uds_delta_coding *coding, const uint8_t *memory,
                             uint64_t offset, uint64_t limit, uint32_t low, uint32_t *delta_ptr,
                             uint32_t *bits_ptr)
{
	uint64_t unary_start = offset + coding->min_bits;
	uint64_t position = (offset / BITS_PER_BYTE + sizeof(uint64_t)) * BITS_PER_BYTE;
	uint64_t zeros;
	uint64_t delta;

	for (;;) {
		uint64_t word;

		if (position >= limit)
			return DD_CORRUPT_DATA;
		word = dd_get_le64(memory + position / BITS_PER_BYTE);
		if (word != 0) {
			position += (uint64_t) __builtin_ctzll(word);
			break;
		}
		position += 64;
	}
	zeros = position - unary_start;
	delta = low + zeros * coding->incr_keys;
	if ((position >= limit) || (delta > UINT32_MAX))
		return DD_CORRUPT_DATA;
	*delta_ptr = (uint32_t) delta;
	*bits_ptr = (uint32_t) (coding->min_bits + zeros + 1);
	return DD_SUCCESS;
}

/*
 * Decode the delta code starting at bit @offset; @limit is the end of the list. Returns the
 * delta and the code's length in bits.
 */
static inline int decode_delta(const struct uds_delta_coding *coding, const uint8_t *memory,
                               uint64_t offset, uint64_t limit, uint32_t *delta_ptr,
                               uint32_t *bits_ptr)
{
	uint64_t word = dd_get_le64(memory + offset / BITS_PER_BYTE) >> (offset % BITS_PER_BYTE);
	uint32_t low = (uint32_t) (word & low_bits_mask(coding->min_bits));

	if (dd_likely(low < coding->min_keys)) {
		*delta_ptr = low;
		*bits_ptr = coding->min_bits;
		return DD_SUCCESS;
	}
	word >>= coding->min_bits;
	if (dd_likely(word != 0)) {
		unsigned int zeros = (unsigned int) __builtin_ctzll(word);

		*delta_ptr = low + zeros * coding->incr_keys;
		*bits_ptr = coding->min_bits + zeros + 1;
		return DD_SUCCESS;
	}
	return decode_long_delta(coding, memory, offset, limit, low, delta_ptr, bits_ptr);
}

/* ------------------------------------------------------------------------------------------ */
/* Zones and their memory                                                                      */
/* ------------------------------------------------------------------------------------------ */

static inline uint64_t list_end(const struct uds_delta_list *list)
{
	return list->start + list->size;
}

static inline uint64_t list_byte_start(const struct uds_delta_list *list)
{
	return list->start / BITS_PER_BYTE;
}

/* The bytes a list touches, including partial bytes at either end. */
static inline uint64_t list_byte_size(const struct uds_delta_list *list)
{
	return (list->start % BITS_PER_BYTE + list->size + BITS_PER_BYTE - 1) / BITS_PER_BYTE;
}

static size_t zone_memory_size(unsigned int zone_count, size_t memory_size)
{
	size_t share = (memory_size + zone_count - 1) / zone_count;

	return (share + ZONE_ALLOCATION_UNIT - 1) / ZONE_ALLOCATION_UNIT * ZONE_ALLOCATION_UNIT;
}

/* The bit offset where the tail guard list (and the all-ones guard bytes) begins. */
static inline uint64_t guard_start(const struct uds_delta_zone *zone)
{
	return (uint64_t) (zone->size - GUARD_BYTES) * BITS_PER_BYTE;
}

/* Forget where the last search of the zone stopped. */
static inline void clear_cursor(struct uds_delta_zone *zone)
{
	zone->cursor = (struct uds_delta_cursor){ 0 };
}

/* Empty the zone: lists spread evenly over the memory, guard list and guard bytes set. */
static void reset_zone(struct uds_delta_zone *zone)
{
	uint64_t usable = guard_start(zone);
	uint64_t spacing = usable / zone->list_count;
	uint32_t i;

	memset(zone->lists, 0, (zone->list_count + 2) * sizeof(*zone->lists));
	for (i = 1; i <= zone->list_count; i++)
		zone->lists[i].start = spacing / 2 + (i - 1) * spacing;
	zone->lists[zone->list_count + 1].start = usable;
	memset(zone->memory + usable / BITS_PER_BYTE, 0xFF, GUARD_BYTES);
	clear_cursor(zone);
	zone->used_bits = 0;
	zone->discard_count += zone->record_count;
	zone->record_count = 0;
	zone->collision_count = 0;
}

/*
 * A new placement of lists [first, last] of a zone over the bytes between the end of list
 * first - 1 and the start of list last + 1 (the region), with the free space shared out evenly
 * and growing_bytes more placed just before list growing_index. Positions are computed, never
 * stored: the byte position of list i is
 *   base + spacing / 2 + (i - first) * spacing + (bytes of lists first..i-1)
 *        + (growing_bytes if i >= growing_index),
 * and lists keep their bit alignment.
 */
struct layout {
	uint32_t first;
	uint32_t last;
	uint32_t growing_index;
	uint64_t growing_bytes;
	/* The region's first byte and its length. */
	uint64_t base;
	uint64_t bytes;
	/* The bytes the lists of the region touch. */
	uint64_t list_bytes;
	uint64_t spacing;
};

/* The first byte after the last byte list @list touches. */
static inline uint64_t byte_after_list(const struct uds_delta_list *list)
{
	return (list_end(list) + BITS_PER_BYTE - 1) / BITS_PER_BYTE;
}

/* Measure the region of @layout; false if its lists and the growing bytes do not fit in it. */
static bool measure_region(const struct uds_delta_zone *zone, struct layout *layout)
{
	uint64_t end = zone->lists[layout->last + 1].start / BITS_PER_BYTE;
	uint32_t count = layout->last - layout->first + 1;
	uint64_t needed;

	layout->base = byte_after_list(&zone->lists[layout->first - 1]);
	layout->bytes = (end > layout->base) ? end - layout->base : 0;
	layout->list_bytes = 0;
	for (uint32_t i = layout->first; i <= layout->last; i++)
		layout->list_bytes += list_byte_size(&zone->lists[i]);
	needed = layout->list_bytes + layout->growing_bytes;
	if (needed > layout->bytes)
		return false;
	layout->spacing = (layout->bytes - needed) / count;
	return true;
}

/* The new bit offset of list @i, given the bytes of the lists before it in the region. */
static inline uint64_t new_list_start(const struct uds_delta_zone *zone,
                                      const struct layout *layout, uint32_t i,
                                      uint64_t bytes_before)
{
	uint64_t position = layout->base + layout->spacing / 2 +
	                    (uint64_t) (i - layout->first) * layout->spacing + bytes_before;

	if (i >= layout->growing_index)
		position += layout->growing_bytes;
	return position * BITS_PER_BYTE + zone->lists[i].start % BITS_PER_BYTE;
}

/* Move list @i (whole bytes, so any bit alignment is kept) to bit offset @start. */
static void move_list(struct uds_delta_zone *zone, uint32_t i, uint64_t start)
{
	struct uds_delta_list *list = &zone->lists[i];
	uint64_t source = list_byte_start(list);

	list->start = start;
	memmove(zone->memory + list_byte_start(list), zone->memory + source, list_byte_size(list));
	zone->rebalance_bytes += list_byte_size(list);
}

/*
 * Put the lists of the region at their new places. Moving the lists that go down in ascending
 * order and then the lists that go up in descending order never overwrites a list before it
 * has moved. With @move false the headers are only set (for a restore, before any data).
 */
static void apply_layout(struct uds_delta_zone *zone, const struct layout *layout, bool move)
{
	uint64_t before = 0;
	uint32_t i;

	for (i = layout->first; i <= layout->last; i++) {
		uint64_t start = new_list_start(zone, layout, i, before);

		before += list_byte_size(&zone->lists[i]);
		if (!move)
			zone->lists[i].start = start;
		else if (start < zone->lists[i].start)
			move_list(zone, i, start);
	}
	if (!move)
		return;
	for (i = layout->last; i >= layout->first; i--) {
		uint64_t start;

		before -= list_byte_size(&zone->lists[i]);
		start = new_list_start(zone, layout, i, before);
		if (start > zone->lists[i].start)
			move_list(zone, i, start);
	}
}

/* Lay out every list of the zone evenly; false if they do not fit. */
static bool lay_out_zone(struct uds_delta_zone *zone, bool move)
{
	struct layout layout = {
		.first = 1,
		.last = zone->list_count,
		.growing_index = zone->list_count + 1,
	};

	if (!measure_region(zone, &layout))
		return false;
	apply_layout(zone, &layout, move);
	return true;
}

/*
 * Make @growing_bytes more room just before list @growing_index for list @center (which is
 * growing_index or growing_index - 1), by sharing out again the free space of a neighbourhood
 * of lists around @center. The neighbourhood starts at RELAYOUT_MIN_RADIUS lists either side and
 * grows by RELAYOUT_GROWTH until, after the move, its lists would keep at least half the zone's
 * average free space each (or it is the whole zone). So the lists stay evenly spread, as with a
 * rebalance of the whole zone, while a rebalance costs a few kilobytes of memmove() instead of
 * the whole zone.
 */
static int rebalance_zone(struct uds_delta_zone *zone, uint32_t center, uint32_t growing_index,
                          uint64_t growing_bytes)
{
	dd_ktime_t start = dd_monotonic_ns();
	uint64_t used = zone->used_bits / BITS_PER_BYTE + zone->list_count;
	uint64_t usable = zone->size - GUARD_BYTES;
	uint64_t want = ((usable > used) ? usable - used : 0) / zone->list_count / 2;
	struct layout layout = {
		.growing_index = growing_index,
		.growing_bytes = growing_bytes,
	};

	for (uint64_t radius = RELAYOUT_MIN_RADIUS;; radius *= RELAYOUT_GROWTH) {
		bool whole;

		layout.first = (center > radius) ? (uint32_t) (center - radius) : 1;
		layout.last = (uint32_t) ((center + radius < zone->list_count) ? center + radius
		                                                               : zone->list_count);
		whole = (layout.first == 1) && (layout.last == zone->list_count);
		if (measure_region(zone, &layout) && (whole || (layout.spacing >= want)))
			break;
		if (whole)
			return DD_OVERFLOW;
	}
	apply_layout(zone, &layout, true);
	zone->rebalance_count++;
	if ((layout.first == 1) && (layout.last == zone->list_count))
		zone->full_rebalance_count++;
	zone->rebalance_time += dd_monotonic_ns() - start;
	return DD_SUCCESS;
}

/*
 * Ask for huge pages for the whole 2 MiB pages within a large array. Searches touch the list
 * memory and the headers at random: with 4 KiB pages nearly every search of a large index also
 * misses the TLB, twice. Only a hint; ignored where unsupported.
 */
static void advise_huge_pages(void *memory, size_t size)
{
#ifdef MADV_HUGEPAGE
	uintptr_t start =
	    ((uintptr_t) memory + HUGE_PAGE_BYTES - 1) & ~(uintptr_t) (HUGE_PAGE_BYTES - 1);
	uintptr_t end = ((uintptr_t) memory + size) & ~(uintptr_t) (HUGE_PAGE_BYTES - 1);

	if (end > start)
		(void) madvise((void *) start, end - start, MADV_HUGEPAGE);
#else
	(void) memory;
	(void) size;
#endif
}

static int make_zone(struct uds_delta_zone *zone, size_t size, uint32_t first_list,
                     uint32_t list_count, const struct uds_delta_index_params *params)
{
	int result;

	result = dd_allocate(size, "delta zone memory", &zone->memory);
	if (result != DD_SUCCESS)
		return result;
	advise_huge_pages(zone->memory, size);
	result = DD_ALLOCATE(list_count + 2, struct uds_delta_list, "delta lists", &zone->lists);
	if (result != DD_SUCCESS)
		return result;
	advise_huge_pages(zone->lists, (list_count + 2) * sizeof(struct uds_delta_list));
	compute_coding(params->mean_delta, params->payload_bits, &zone->coding);
	zone->size = size;
	zone->first_list = first_list;
	zone->list_count = list_count;
	zone->tag = params->tag;
	reset_zone(zone);
	zone->discard_count = 0;
	return DD_SUCCESS;
}

static int check_params(const struct uds_delta_index_params *params)
{
	if ((params->zone_count < 1) || (params->zone_count > UDS_DELTA_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "delta index zone count %u",
		                             params->zone_count);
	if (params->list_count < params->zone_count)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%u delta lists are too few for %u zones",
		                             params->list_count, params->zone_count);
	if ((params->payload_bits < 1) || (params->payload_bits > UDS_DELTA_MAX_PAYLOAD_BITS))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "delta payload of %u bits",
		                             params->payload_bits);
	if ((params->mean_delta < 1) || (params->mean_delta > (1U << 30)))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "mean delta %u",
		                             params->mean_delta);
	if (params->memory_size == 0)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "no memory for delta lists");
	if (zone_memory_size(params->zone_count, params->memory_size) > MAX_ZONE_BYTES)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%zu bytes of delta lists in %u zones is too many",
		                             params->memory_size, params->zone_count);
	return DD_SUCCESS;
}

int uds_make_delta_index(const struct uds_delta_index_params *params,
                         struct uds_delta_index **index_ptr)
{
	struct uds_delta_index *index;
	size_t zone_size;
	int result = check_params(params);

	if (result != DD_SUCCESS)
		return result;
	result = dd_allocate(sizeof(*index), "delta index", &index);
	if (result != DD_SUCCESS)
		return result;
	index->zone_count = params->zone_count;
	index->list_count = params->list_count;
	index->lists_per_zone = (params->list_count + params->zone_count - 1) / params->zone_count;
	index->is_mutable = true;
	index->tag = params->tag;
	/* With uneven division the last zones get fewer lists; none may get none. */
	if ((uint64_t) index->lists_per_zone * (params->zone_count - 1) >= params->list_count) {
		dd_free(index);
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%u delta lists cannot be split into %u zones",
		                             params->list_count, params->zone_count);
	}
	result = dd_allocate_aligned(params->zone_count * sizeof(struct uds_delta_zone), 64,
	                             "delta zones", &index->zones);
	if (result != DD_SUCCESS) {
		dd_free(index);
		return result;
	}
	zone_size = zone_memory_size(params->zone_count, params->memory_size);
	for (unsigned int z = 0; z < params->zone_count; z++) {
		uint32_t first = z * index->lists_per_zone;
		uint32_t count = index->lists_per_zone;

		if (first + count > params->list_count)
			count = params->list_count - first;
		result = make_zone(&index->zones[z], zone_size, first, count, params);
		if (result != DD_SUCCESS) {
			index->zone_count = z + 1;
			uds_free_delta_index(index);
			return result;
		}
		index->memory_size += sizeof(struct uds_delta_zone) + zone_size +
		                      (count + 2) * sizeof(struct uds_delta_list);
	}
	*index_ptr = index;
	return DD_SUCCESS;
}

void uds_free_delta_index(struct uds_delta_index *index)
{
	if (index == NULL)
		return;
	for (unsigned int z = 0; z < index->zone_count; z++) {
		dd_free(index->zones[z].memory);
		dd_free(index->zones[z].lists);
	}
	dd_free(index->zones);
	dd_free(index);
}

void uds_reset_delta_index(struct uds_delta_index *index)
{
	for (unsigned int z = 0; z < index->zone_count; z++)
		reset_zone(&index->zones[z]);
}

/* ------------------------------------------------------------------------------------------ */
/* Searching                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static inline uint32_t page_list_start(const uint8_t *page, uint32_t list_number)
{
	return (uint32_t) get_field(
	    page, PAGE_HEADER_BYTES * BITS_PER_BYTE + (uint64_t) list_number * PAGE_OFFSET_BITS,
	    PAGE_OFFSET_BITS);
}

int uds_start_delta_search(const struct uds_delta_index *index, uint32_t list_number, uint32_t key,
                           struct uds_delta_entry *entry)
{
	struct uds_delta_zone *zone;
	struct uds_delta_list *list;

	if (list_number >= index->list_count)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "delta list %u of %u",
		                             list_number, index->list_count);
	zone = &index->zones[uds_get_delta_zone_number(index, list_number)];
	list_number -= zone->first_list;
	entry->key = 0;
	entry->offset = 0;
	if (index->is_mutable) {
		const struct uds_delta_cursor *cursor = &zone->cursor;

		list = &zone->lists[list_number + 1];
		if ((cursor->list == list_number + 1) && (key > cursor->key) &&
		    (cursor->offset <= list->size)) {
			entry->key = cursor->key;
			entry->offset = cursor->offset;
		}
	} else {
		uint32_t start = page_list_start(zone->memory, list_number);

		list = &entry->page_list;
		list->start = start;
		list->size = (uint16_t) (page_list_start(zone->memory, list_number + 1) - start);
	}
	entry->at_end = false;
	entry->is_collision = false;
	entry->value_bits = zone->coding.value_bits;
	entry->entry_bits = 0;
	entry->delta = 0;
	entry->list_number = list_number;
	entry->zone = zone;
	entry->list = list;
	return DD_SUCCESS;
}

void uds_prefetch_delta_list(const struct uds_delta_index *index, uint32_t list_number,
                             unsigned int stage)
{
	const struct uds_delta_zone *zone;
	const struct uds_delta_list *list;
	uint64_t bytes;
	const uint8_t *first;

	if (!index->is_mutable || (list_number >= index->list_count))
		return;
	zone = &index->zones[uds_get_delta_zone_number(index, list_number)];
	list = &zone->lists[list_number - zone->first_list + 1];
	if (stage == 0) {
		__builtin_prefetch(list, 0, 3);
		return;
	}
	first = zone->memory + list_byte_start(list);
	bytes = list_byte_size(list);
	if (bytes > PREFETCH_LIST_BYTES)
		bytes = PREFETCH_LIST_BYTES;
	for (uint64_t offset = 0; offset < bytes; offset += CACHE_LINE_BYTES)
		__builtin_prefetch(first + offset, 0, 3);
}

static int report_corrupt_list(const struct uds_delta_entry *entry, const char *what)
{
	return dd_log_warning_strerror(DD_CORRUPT_DATA, "delta list %u (zone list %u): %s",
	                               entry->zone->first_list + entry->list_number,
	                               entry->list_number, what);
}

/* Leave @entry describing the entry at bit @offset of its list, whose key is @key. */
static inline void set_entry(struct uds_delta_entry *entry, uint32_t offset, uint32_t key,
                             uint32_t delta, uint32_t bits, bool collision)
{
	entry->offset = offset;
	entry->key = key;
	entry->delta = delta;
	entry->entry_bits = bits;
	entry->is_collision = collision;
	entry->at_end = false;
}

static int set_entry_at_end(struct uds_delta_entry *entry, uint32_t offset, uint32_t key)
{
	if (offset != entry->list->size)
		return report_corrupt_list(entry, "entry runs past the end of the list");
	entry->offset = offset;
	entry->key = key;
	entry->delta = 0;
	entry->entry_bits = 0;
	entry->is_collision = false;
	entry->at_end = true;
	return DD_SUCCESS;
}

/*
 * scan_to_key() for any coding: each delta code is decoded with its own load. Used when the
 * value and the shortest delta code together are too wide for scan_to_key()'s single load.
 */
static int scan_to_key_wide(struct uds_delta_entry *entry, uint32_t key)
{
	const struct uds_delta_coding coding = entry->zone->coding;
	const uint8_t *memory = entry->zone->memory;
	uint64_t start = entry->list->start;
	uint32_t size = entry->list->size;
	uint32_t offset = entry->offset + entry->entry_bits;
	uint32_t current = entry->key;

	while (offset < size) {
		uint32_t delta;
		uint32_t code_bits;
		uint32_t bits;
		bool collision;

		if (dd_unlikely(offset + coding.value_bits + coding.min_bits > size))
			return report_corrupt_list(entry, "entry runs past the end of the list");
		if (decode_delta(&coding, memory, start + offset + coding.value_bits, start + size,
		                 &delta, &code_bits) != DD_SUCCESS)
			return report_corrupt_list(entry, "undecodable delta");
		collision = (delta == 0) && (offset > 0);
		bits = coding.value_bits + code_bits + (collision ? COLLISION_BITS : 0);
		if (dd_unlikely(offset + bits > size))
			return report_corrupt_list(entry, "entry runs past the end of the list");
		current += delta;
		if (current >= key) {
			set_entry(entry, offset, current, delta, bits, collision);
			return DD_SUCCESS;
		}
		offset += bits;
	}
	return set_entry_at_end(entry, offset, current);
}

/*
 * Decode forward from the entry after @entry until reaching an entry whose key is at least
 * @key (or the end of the list); leave @entry describing where it stopped.
 *
 * This is the index's inner loop. One unaligned 64-bit load at the entry's first byte gives at
 * least 57 bits: the value, the low min_bits of the delta code and, almost always, the whole
 * unary part, so each entry costs one load, a few shifts and a count of trailing zeros. The
 * short and the long code are both computed and one chosen without a branch (the choice is a
 * coin toss for the volume index's code, which a branch would mispredict). Bits beyond the list
 * may be read (the guard bytes make that safe) but an entry is only accepted if it ends within
 * the list, so a corrupt page can never make the search leave its list.
 */
static int scan_to_key(struct uds_delta_entry *entry, uint32_t key)
{
	const struct uds_delta_coding *coding = &entry->zone->coding;
	const unsigned int value_bits = coding->value_bits;
	const unsigned int head_bits = coding->value_bits + coding->min_bits;
	const uint32_t min_mask = (uint32_t) low_bits_mask(coding->min_bits);
	const uint32_t min_keys = coding->min_keys;
	const uint32_t incr_keys = coding->incr_keys;
	const uint8_t *memory = entry->zone->memory;
	const uint64_t start = entry->list->start;
	const uint64_t end = start + entry->list->size;
	uint64_t position = start + entry->offset + entry->entry_bits;
	uint32_t current = entry->key;

	if (dd_unlikely(head_bits > FAST_HEAD_BITS))
		return scan_to_key_wide(entry, key);
	while (position < end) {
		uint64_t word =
		    dd_get_le64(memory + position / BITS_PER_BYTE) >> (position % BITS_PER_BYTE);
		uint32_t low = (uint32_t) (word >> value_bits) & min_mask;
		uint64_t unary = word >> head_bits;
		bool is_long = (low >= min_keys);
		uint32_t zeros = (uint32_t) __builtin_ctzll(unary | (1ULL << 63));
		uint32_t delta = is_long ? low + zeros * incr_keys : low;
		uint32_t bits = is_long ? head_bits + zeros + 1 : head_bits;
		bool collision;

		if (dd_unlikely(is_long & (unary == 0))) {
			uint32_t code_bits;

			/* The unary part runs past the word: a gap of many mean deltas. */
			if (decode_delta(coding, memory, position + value_bits, end, &delta,
			                 &code_bits) != DD_SUCCESS)
				return report_corrupt_list(entry, "undecodable delta");
			bits = value_bits + code_bits;
		}
		/*
		 * A zero delta is a short code of zero (min_keys is never 0): testing low keeps
		 * the multiply out of the chain from one entry's position to the next.
		 */
		collision = (low == 0) & (position != start);
		bits += collision ? COLLISION_BITS : 0;
		if (dd_unlikely(position + bits > end))
			return report_corrupt_list(entry, "entry runs past the end of the list");
		current += delta;
		if (current >= key) {
			set_entry(entry, (uint32_t) (position - start), current, delta, bits,
			          collision);
			return DD_SUCCESS;
		}
		position += bits;
	}
	return set_entry_at_end(entry, (uint32_t) (position - start), current);
}

int uds_next_delta_entry(struct uds_delta_entry *entry)
{
	if (entry->at_end)
		return dd_log_error_strerror(DD_BAD_STATE, "stepping past the end of a delta list");
	/* Every key is >= 0, so the scan stops at the next entry. */
	return scan_to_key(entry, 0);
}

/* Point the zone's cursor at @entry (a position of a mutable list). */
static inline void set_cursor(const struct uds_delta_entry *entry)
{
	struct uds_delta_cursor *cursor = &entry->zone->cursor;

	cursor->list = entry->list_number + 1;
	cursor->offset = entry->offset;
	cursor->key = entry->key - entry->delta;
}

int uds_remember_delta_offset(const struct uds_delta_entry *entry)
{
	if (entry->is_collision || (entry->list == &entry->page_list))
		return DD_BAD_STATE;
	set_cursor(entry);
	return DD_SUCCESS;
}

static void get_collision_name(const struct uds_delta_entry *entry, struct dd_record_name *name)
{
	uint64_t offset = entry->list->start + entry->offset + entry->entry_bits - COLLISION_BITS;

	for (int i = 0; i < COLLISION_BYTES; i++)
		name->name[i] = (uint8_t) get_field(
		    entry->zone->memory, offset + (uint64_t) i * BITS_PER_BYTE, BITS_PER_BYTE);
}

static void set_collision_name(const struct uds_delta_entry *entry,
                               const struct dd_record_name *name)
{
	uint64_t offset = entry->list->start + entry->offset + entry->entry_bits - COLLISION_BITS;

	for (int i = 0; i < COLLISION_BYTES; i++)
		set_field(name->name[i], entry->zone->memory, offset + (uint64_t) i * BITS_PER_BYTE,
		          BITS_PER_BYTE);
}

/* @entry has the searched key: look among the collision entries after it for @name. */
static int find_collision(struct uds_delta_entry *entry, const struct dd_record_name *name)
{
	struct uds_delta_entry candidate = *entry;

	for (;;) {
		struct dd_record_name stored;
		int result = uds_next_delta_entry(&candidate);

		if (result != DD_SUCCESS)
			return result;
		if (candidate.at_end || !candidate.is_collision)
			return DD_SUCCESS;
		get_collision_name(&candidate, &stored);
		if (memcmp(stored.name, name->name, COLLISION_BYTES) == 0) {
			*entry = candidate;
			return DD_SUCCESS;
		}
	}
}

/*
 * Ask for the cache lines a search will decode, after the first, all at once: the scan then
 * waits for one memory access instead of one for each line it crosses.
 */
static inline void prefetch_scan(const struct uds_delta_entry *entry)
{
	uint64_t first = (entry->list->start + entry->offset) / BITS_PER_BYTE;
	uint64_t end = (entry->list->start + entry->list->size) / BITS_PER_BYTE;
	const uint8_t *memory = entry->zone->memory;

	if (end > first + PREFETCH_LIST_BYTES)
		end = first + PREFETCH_LIST_BYTES;
	for (uint64_t byte = first + CACHE_LINE_BYTES; byte <= end; byte += CACHE_LINE_BYTES)
		__builtin_prefetch(memory + byte, 0, 3);
}

int uds_get_delta_entry(const struct uds_delta_index *index, uint32_t list_number, uint32_t key,
                        const struct dd_record_name *name, struct uds_delta_entry *entry)
{
	int result = uds_start_delta_search(index, list_number, key, entry);

	if (result != DD_SUCCESS)
		return result;
	prefetch_scan(entry);
	result = scan_to_key(entry, key);
	if (result != DD_SUCCESS)
		return result;
	if (index->is_mutable)
		set_cursor(entry);
	if ((name != NULL) && !entry->at_end && (entry->key == key))
		return find_collision(entry, name);
	return DD_SUCCESS;
}

uint32_t uds_get_delta_entry_value(const struct uds_delta_entry *entry)
{
	return (uint32_t) get_field(entry->zone->memory, entry->list->start + entry->offset,
	                            entry->value_bits);
}

int uds_get_delta_entry_collision(const struct uds_delta_entry *entry, struct dd_record_name *name)
{
	if (entry->at_end || !entry->is_collision)
		return dd_log_error_strerror(DD_BAD_STATE, "not a collision entry");
	get_collision_name(entry, name);
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Changing a list                                                                             */
/* ------------------------------------------------------------------------------------------ */

static int check_mutable_entry(const struct uds_delta_entry *entry)
{
	if (entry->list == &entry->page_list)
		return dd_log_error_strerror(DD_BAD_STATE, "delta index page is immutable");
	return DD_SUCCESS;
}

int uds_set_delta_entry_value(const struct uds_delta_entry *entry, uint32_t value)
{
	int result = check_mutable_entry(entry);

	if (result != DD_SUCCESS)
		return result;
	if (entry->at_end)
		return dd_log_error_strerror(DD_BAD_STATE, "no entry at the end of a delta list");
	if ((uint64_t) value > low_bits_mask(entry->value_bits))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "value %u exceeds %u bits", value,
		                             entry->value_bits);
	set_field(value, entry->zone->memory, entry->list->start + entry->offset,
	          entry->value_bits);
	return DD_SUCCESS;
}

static inline uint64_t free_bits_before(const struct uds_delta_list *list)
{
	return list[0].start - list_end(&list[-1]);
}

static inline uint64_t free_bits_after(const struct uds_delta_list *list)
{
	return list[1].start - list_end(&list[0]);
}

static int record_overflow(struct uds_delta_entry *entry)
{
	entry->zone->overflow_count++;
	return DD_OVERFLOW;
}

/* Decide which side of the list takes the new bits; rebalance if neither gap has room. */
static int make_room(struct uds_delta_entry *entry, uint32_t offset, uint32_t bits,
                     bool *before_ptr)
{
	struct uds_delta_list *list = entry->list;
	uint64_t before_bits = offset;
	uint64_t after_bits = list->size - offset;
	bool room_before = bits <= free_bits_before(list);
	bool room_after = bits <= free_bits_after(list);
	uint32_t growing_index;

	if (room_before && room_after) {
		*before_ptr = (before_bits != after_bits)
		                  ? (before_bits < after_bits)
		                  : (free_bits_before(list) > free_bits_after(list));
		return DD_SUCCESS;
	}
	if (room_before || room_after) {
		*before_ptr = room_before;
		return DD_SUCCESS;
	}
	*before_ptr = before_bits < after_bits;
	growing_index = entry->list_number + (*before_ptr ? 1 : 2);
	if (rebalance_zone(entry->zone, entry->list_number + 1, growing_index,
	                   (bits + BITS_PER_BYTE - 1) / BITS_PER_BYTE) != DD_SUCCESS)
		return record_overflow(entry);
	return DD_SUCCESS;
}

/* Open a gap of @bits bits at @offset within the entry's list. */
static int insert_bits(struct uds_delta_entry *entry, uint32_t offset, uint32_t bits)
{
	struct uds_delta_list *list = entry->list;
	uint8_t *memory = entry->zone->memory;
	bool before;
	int result;

	if ((uint64_t) list->size + bits > UDS_DELTA_LIST_MAX_BITS)
		return record_overflow(entry);
	result = make_room(entry, offset, bits, &before);
	if (result != DD_SUCCESS)
		return result;
	if (before) {
		uint64_t old_start = list->start;

		list->start -= bits;
		move_bits(memory, old_start, memory, list->start, offset);
	} else {
		uint64_t source = list->start + offset;

		move_bits(memory, source, memory, source + bits, list->size - offset);
	}
	list->size += bits;
	entry->zone->used_bits += bits;
	return DD_SUCCESS;
}

/* Close up @bits bits at @offset within the entry's list, moving the smaller part. */
static void delete_bits(struct uds_delta_entry *entry, uint32_t offset, uint32_t bits)
{
	struct uds_delta_list *list = entry->list;
	uint8_t *memory = entry->zone->memory;
	uint32_t before_bits = offset;
	uint32_t after_bits = list->size - offset - bits;
	bool before;

	if (before_bits != after_bits)
		before = before_bits < after_bits;
	else
		before = free_bits_before(list) < free_bits_after(list);
	if (before) {
		move_bits(memory, list->start, memory, list->start + bits, before_bits);
		list->start += bits;
	} else {
		uint64_t destination = list->start + offset;

		move_bits(memory, destination + bits, memory, destination, after_bits);
	}
	list->size -= bits;
	entry->zone->used_bits -= bits;
}

/* Write the value and delta code of the entry at @offset of @entry's list. */
static void encode_entry(const struct uds_delta_entry *entry, uint32_t offset, uint32_t value,
                         uint32_t delta)
{
	const struct uds_delta_coding *coding = &entry->zone->coding;
	uint64_t position = entry->list->start + offset;

	set_field(value, entry->zone->memory, position, coding->value_bits);
	encode_delta(coding, entry->zone->memory, position + coding->value_bits, delta);
}

/* The size of an ordinary entry with @delta, or 0 if no list could hold it. */
static uint32_t entry_bits_for(const struct uds_delta_coding *coding, uint32_t delta)
{
	uint64_t bits = coding->value_bits + delta_code_bits(coding, delta);

	return (bits > UDS_DELTA_LIST_MAX_BITS) ? 0 : (uint32_t) bits;
}

static int put_collision(struct uds_delta_entry *entry, uint32_t key, uint32_t value,
                         const struct dd_record_name *name)
{
	uint32_t offset = entry->offset + entry->entry_bits;
	uint32_t bits = entry->value_bits + entry->zone->coding.min_bits + COLLISION_BITS;
	int result;

	if (entry->at_end || (key != entry->key))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "a collision entry must follow an entry with its key");
	result = insert_bits(entry, offset, bits);
	if (result != DD_SUCCESS)
		return result;
	entry->offset = offset;
	entry->delta = 0;
	entry->entry_bits = bits;
	entry->is_collision = true;
	encode_entry(entry, offset, value, 0);
	set_collision_name(entry, name);
	entry->zone->collision_count++;
	return DD_SUCCESS;
}

static int put_at_end(struct uds_delta_entry *entry, uint32_t key, uint32_t value)
{
	uint32_t bits;
	int result;

	if ((key < entry->key) || ((key == entry->key) && (entry->offset > 0)))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "key %u does not follow the last key %u", key, entry->key);
	bits = entry_bits_for(&entry->zone->coding, key - entry->key);
	if (bits == 0)
		return record_overflow(entry);
	result = insert_bits(entry, entry->offset, bits);
	if (result != DD_SUCCESS)
		return result;
	entry->delta = key - entry->key;
	entry->key = key;
	entry->entry_bits = bits;
	entry->at_end = false;
	encode_entry(entry, entry->offset, value, entry->delta);
	return DD_SUCCESS;
}

/* Insert before the entry @entry refers to, whose delta shrinks accordingly. */
static int put_before(struct uds_delta_entry *entry, uint32_t key, uint32_t value)
{
	const struct uds_delta_coding *coding = &entry->zone->coding;
	uint32_t previous = entry->key - entry->delta;
	uint32_t next_value;
	uint32_t new_bits;
	uint32_t next_bits;
	int result;

	if ((key >= entry->key) || (key < previous) || ((key == previous) && (entry->offset > 0)))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "key %u does not belong before key %u", key, entry->key);
	new_bits = entry_bits_for(coding, key - previous);
	next_bits = entry_bits_for(coding, entry->key - key);
	if ((new_bits == 0) || (next_bits == 0))
		return record_overflow(entry);
	next_value = uds_get_delta_entry_value(entry);
	/* Two entries always take more bits than the one entry they replace. */
	result = insert_bits(entry, entry->offset, new_bits + next_bits - entry->entry_bits);
	if (result != DD_SUCCESS)
		return result;
	encode_entry(entry, entry->offset + new_bits, next_value, entry->key - key);
	entry->delta = key - previous;
	entry->key = key;
	entry->entry_bits = new_bits;
	encode_entry(entry, entry->offset, value, entry->delta);
	return DD_SUCCESS;
}

int uds_put_delta_entry(struct uds_delta_entry *entry, uint32_t key, uint32_t value,
                        const struct dd_record_name *name)
{
	uint32_t base_offset = entry->offset;
	uint32_t base_previous = entry->key - entry->delta;
	struct uds_delta_cursor *cursor = &entry->zone->cursor;
	int result = check_mutable_entry(entry);

	if (result != DD_SUCCESS)
		return result;
	if (entry->is_collision)
		return DD_DUPLICATE_NAME;
	if ((uint64_t) value > low_bits_mask(entry->value_bits))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "value %u exceeds %u bits", value,
		                             entry->value_bits);
	if (name != NULL)
		result = put_collision(entry, key, value, name);
	else if (entry->at_end)
		result = put_at_end(entry, key, value);
	else
		result = put_before(entry, key, value);
	if (result != DD_SUCCESS)
		return result;
	/*
	 * Bits were inserted at or after base_offset, so a cursor in this list beyond it has
	 * moved. The entry the search stopped at (the new entry itself, or the entry a collision
	 * follows) is always a valid place to restart.
	 */
	if ((cursor->list == entry->list_number + 1) && (base_offset < cursor->offset)) {
		cursor->key = base_previous;
		cursor->offset = base_offset;
	}
	entry->zone->record_count++;
	return DD_SUCCESS;
}

int uds_remove_delta_entry(struct uds_delta_entry *entry)
{
	struct uds_delta_cursor *cursor = &entry->zone->cursor;
	uint32_t previous = entry->key - entry->delta;
	struct uds_delta_entry next;
	int result = check_mutable_entry(entry);

	if (result != DD_SUCCESS)
		return result;
	if (entry->at_end)
		return dd_log_error_strerror(DD_BAD_STATE, "no entry at the end of a delta list");
	next = *entry;
	result = uds_next_delta_entry(&next);
	if (result != DD_SUCCESS)
		return result;
	if (entry->is_collision || next.at_end) {
		delete_bits(entry, entry->offset, entry->entry_bits);
		if (entry->is_collision)
			entry->zone->collision_count--;
		else
			next.key = entry->key - entry->delta;
		next.offset = entry->offset;
	} else {
		/* The next entry absorbs this one's delta (a collision entry becomes ordinary). */
		uint32_t next_value = uds_get_delta_entry_value(&next);
		uint32_t delta = entry->delta + next.delta;
		uint32_t bits =
		    entry->value_bits + (uint32_t) delta_code_bits(&entry->zone->coding, delta);

		if (next.is_collision)
			entry->zone->collision_count--;
		delete_bits(entry, entry->offset, entry->entry_bits + next.entry_bits - bits);
		next.offset = entry->offset;
		next.delta = delta;
		next.entry_bits = bits;
		next.is_collision = false;
		encode_entry(&next, next.offset, next_value, delta);
	}
	entry->zone->record_count--;
	entry->zone->discard_count++;
	*entry = next;
	/*
	 * Bits were removed at entry->offset; the entry now there follows the same key as the
	 * removed one did, so a cursor beyond it can restart there.
	 */
	if ((cursor->list == entry->list_number + 1) && (entry->offset < cursor->offset)) {
		cursor->key = previous;
		cursor->offset = entry->offset;
	}
	return DD_SUCCESS;
}

/* What uds_purge_delta_list() keeps track of as it goes. */
struct purge {
	struct uds_delta_zone *zone;
	uint64_t start;
	/* Where the next entry is read, and where the next kept entry is written. */
	uint32_t read;
	uint32_t write;
	/* The deltas of the entries removed since the last entry kept. */
	uint32_t pending;
	uint32_t removed;
	uint32_t collisions_removed;
};

/*
 * Write the kept entry read at purge->read (@bits long, @delta from the entry before it) at
 * purge->write, after removals: its delta grows by the removed entries' deltas, and a collision
 * entry whose default entry went becomes an ordinary entry (the first entry with its key).
 */
static void rewrite_kept_entry(struct purge *purge, uint32_t value, uint32_t delta, uint32_t bits,
                               bool collision)
{
	const struct uds_delta_coding *coding = &purge->zone->coding;
	uint8_t *memory = purge->zone->memory;
	uint32_t new_delta = purge->pending + delta;
	bool keep_collision = collision && (new_delta == 0) && (purge->write > 0);
	uint64_t code_bits = delta_code_bits(coding, new_delta);
	uint64_t position = purge->start + purge->write;

	if (collision && !keep_collision)
		purge->collisions_removed++;
	/* The name first: it moves down, and the code before it keeps its length. */
	if (keep_collision)
		move_bits(memory, purge->start + purge->read + bits - COLLISION_BITS, memory,
		          position + coding->value_bits + code_bits, COLLISION_BITS);
	set_field(value, memory, position, coding->value_bits);
	encode_delta(coding, memory, position + coding->value_bits, new_delta);
	purge->write +=
	    (uint32_t) (coding->value_bits + code_bits) + (keep_collision ? COLLISION_BITS : 0);
}

int uds_purge_delta_list(const struct uds_delta_index *index, uint32_t list_number, uint32_t newest,
                         uint32_t span, uint32_t *counts, uint32_t *removed_ptr,
                         uint32_t *max_age_ptr)
{
	struct uds_delta_entry entry;
	struct uds_delta_list *list;
	const struct uds_delta_coding *coding;
	uint32_t mask;
	uint32_t max_age = 0;
	struct purge purge = { 0 };
	int result = uds_start_delta_search(index, list_number, 0, &entry);

	if (result != DD_SUCCESS)
		return result;
	result = check_mutable_entry(&entry);
	if (result != DD_SUCCESS)
		return result;
	list = entry.list;
	coding = &entry.zone->coding;
	mask = (uint32_t) low_bits_mask(coding->value_bits);
	purge.zone = entry.zone;
	purge.start = list->start;
	while (purge.read < list->size) {
		uint64_t position = purge.start + purge.read;
		uint32_t value =
		    (uint32_t) get_field(purge.zone->memory, position, coding->value_bits);
		uint32_t age = (newest - value) & mask;
		uint32_t delta;
		uint32_t bits;
		bool collision;

		if ((purge.read + coding->value_bits + coding->min_bits > list->size) ||
		    (decode_delta(coding, purge.zone->memory, position + coding->value_bits,
		                  purge.start + list->size, &delta, &bits) != DD_SUCCESS))
			return report_corrupt_list(&entry, "undecodable delta");
		collision = (delta == 0) && (purge.read > 0);
		bits += coding->value_bits + (collision ? COLLISION_BITS : 0);
		if (purge.read + bits > list->size)
			return report_corrupt_list(&entry, "entry runs past the end of the list");
		if (age > span) {
			purge.pending += delta;
			purge.removed++;
			purge.collisions_removed += collision ? 1 : 0;
			if (counts != NULL)
				counts[value]--;
		} else {
			if (age > max_age)
				max_age = age;
			if (purge.write == purge.read)
				purge.write += bits;
			else
				rewrite_kept_entry(&purge, value, delta, bits, collision);
			purge.pending = 0;
		}
		purge.read += bits;
	}
	if (purge.write < list->size) {
		purge.zone->used_bits -= list->size - purge.write;
		list->size = purge.write;
		if (purge.zone->cursor.list == entry.list_number + 1)
			clear_cursor(purge.zone);
	}
	purge.zone->record_count -= purge.removed;
	purge.zone->discard_count += purge.removed;
	purge.zone->collision_count -= purge.collisions_removed;
	*removed_ptr = purge.removed;
	*max_age_ptr = max_age;
	return DD_SUCCESS;
}

void uds_get_delta_index_stats(const struct uds_delta_index *index,
                               struct uds_delta_index_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	stats->memory_allocated = index->memory_size;
	for (unsigned int z = 0; z < index->zone_count; z++) {
		const struct uds_delta_zone *zone = &index->zones[z];

		stats->record_count += zone->record_count;
		stats->collision_count += zone->collision_count;
		stats->discard_count += zone->discard_count;
		stats->overflow_count += zone->overflow_count;
		stats->rebalance_count += zone->rebalance_count;
		stats->full_rebalance_count += zone->full_rebalance_count;
		stats->rebalance_bytes += zone->rebalance_bytes;
		stats->rebalance_time += zone->rebalance_time;
		stats->list_count += zone->list_count;
		stats->used_bits += zone->used_bits;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Sizes                                                                                       */
/* ------------------------------------------------------------------------------------------ */

unsigned int uds_get_delta_min_bits(uint32_t mean_delta)
{
	struct uds_delta_coding coding;

	if (mean_delta == 0)
		return 0;
	compute_coding(mean_delta, 1, &coding);
	return coding.min_bits;
}

uint64_t uds_compute_delta_index_bits(uint64_t entry_count, uint32_t mean_delta,
                                      uint32_t payload_bits)
{
	/* Each delta code averages about min_bits + 1.5 bits. */
	return entry_count * (payload_bits + uds_get_delta_min_bits(mean_delta) + 1) +
	       entry_count / 2;
}

uint32_t uds_get_delta_page_count(uint32_t entry_count, uint32_t list_count, uint32_t mean_delta,
                                  uint32_t payload_bits, size_t bytes_per_page)
{
	uint64_t index_bits = uds_compute_delta_index_bits(entry_count, mean_delta, payload_bits);
	uint64_t bits_per_list = index_bits / list_count;
	uint64_t page_bits = (bytes_per_page - PAGE_HEADER_BYTES - GUARD_BYTES) * BITS_PER_BYTE;

	index_bits += (uint64_t) list_count * PAGE_OFFSET_BITS;
	/* A page loses up to one list's worth of bits (and one offset) at its end. */
	page_bits -= PAGE_OFFSET_BITS + bits_per_list;
	return (uint32_t) ((index_bits + page_bits - 1) / page_bits);
}

size_t uds_compute_delta_save_bytes(uint32_t list_count, size_t memory_size)
{
	/* The lists' bits, packed, never exceed the zone's memory less its guard bytes. */
	return SAVE_HEADER_BYTES + (size_t) list_count * sizeof(uint16_t) +
	       zone_memory_size(1, memory_size) - GUARD_BYTES;
}

/* ------------------------------------------------------------------------------------------ */
/* Immutable pages                                                                             */
/* ------------------------------------------------------------------------------------------ */

static uint64_t page_checksum(const uint8_t *memory, size_t memory_size)
{
	XXH64_hash_t seed = XXH3_64bits(memory, PAGE_CHECKSUM_OFFSET);

	return XXH3_64bits_withSeed(memory + PAGE_HEADER_BYTES, memory_size - PAGE_HEADER_BYTES,
	                            seed);
}

static inline uint64_t page_offset_table_end(uint32_t list_count)
{
	return PAGE_HEADER_BYTES * BITS_PER_BYTE + (uint64_t) (list_count + 1) * PAGE_OFFSET_BITS;
}

static inline void set_page_list_start(uint8_t *page, uint32_t list_number, uint32_t start)
{
	set_field(start, page,
	          PAGE_HEADER_BYTES * BITS_PER_BYTE + (uint64_t) list_number * PAGE_OFFSET_BITS,
	          PAGE_OFFSET_BITS);
}

/* How many lists from @first fit in a page of @memory_size bytes. */
static uint32_t count_lists_that_fit(const struct uds_delta_zone *zone, uint32_t first,
                                     size_t memory_size)
{
	uint64_t free_bits = (memory_size - GUARD_BYTES) * BITS_PER_BYTE - page_offset_table_end(0);
	uint32_t count = 0;

	while (first + count < zone->list_count) {
		uint64_t bits = PAGE_OFFSET_BITS + zone->lists[first + count + 1].size;

		if (bits > free_bits)
			break;
		free_bits -= bits;
		count++;
	}
	return count;
}

static void write_page_header(uint8_t *memory, const struct uds_delta_zone *zone, uint64_t nonce,
                              uint64_t chapter, uint32_t first_list, uint32_t list_count)
{
	memcpy(memory + PAGE_MAGIC_OFFSET, PAGE_MAGIC, sizeof(PAGE_MAGIC));
	memory[PAGE_VERSION_OFFSET] = PAGE_VERSION;
	memory[PAGE_VALUE_BITS_OFFSET] = zone->coding.value_bits;
	dd_put_le16(memory + PAGE_LIST_COUNT_OFFSET, (uint16_t) list_count);
	dd_put_le32(memory + PAGE_FIRST_LIST_OFFSET, first_list);
	dd_put_le32(memory + PAGE_INCR_KEYS_OFFSET, zone->coding.incr_keys);
	dd_put_le64(memory + PAGE_NONCE_OFFSET, nonce);
	dd_put_le64(memory + PAGE_CHAPTER_OFFSET, chapter);
}

int uds_pack_delta_page(const struct uds_delta_index *index, uint64_t nonce,
                        uint64_t virtual_chapter_number, uint32_t first_list, uint8_t *memory,
                        size_t memory_size, uint32_t *list_count_ptr)
{
	const struct uds_delta_zone *zone = &index->zones[0];
	uint32_t count;
	uint64_t offset;

	if (!index->is_mutable || (index->zone_count != 1) || (first_list > index->list_count))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "cannot pack list %u of this delta index", first_list);
	if ((memory_size < PAGE_MIN_BYTES) || (memory_size > UDS_DELTA_PAGE_MAX_BYTES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "delta page of %zu bytes",
		                             memory_size);
	count = count_lists_that_fit(zone, first_list, memory_size);
	if ((count == 0) && (first_list < index->list_count))
		return dd_log_error_strerror(DD_OVERFLOW,
		                             "delta list %u does not fit a %zu byte page",
		                             first_list, memory_size);
	memset(memory, 0, memory_size);
	write_page_header(memory, zone, nonce, virtual_chapter_number, first_list, count);
	offset = page_offset_table_end(count);
	for (uint32_t i = 0; i < count; i++) {
		const struct uds_delta_list *list = &zone->lists[first_list + i + 1];

		set_page_list_start(memory, i, (uint32_t) offset);
		move_bits(zone->memory, list->start, memory, offset, list->size);
		offset += list->size;
	}
	set_page_list_start(memory, count, (uint32_t) offset);
	memset(memory + memory_size - GUARD_BYTES, 0xFF, GUARD_BYTES);
	dd_put_le64(memory + PAGE_CHECKSUM_OFFSET, page_checksum(memory, memory_size));
	*list_count_ptr = count;
	return DD_SUCCESS;
}

static int check_page_offsets(const uint8_t *memory, size_t memory_size, uint32_t list_count)
{
	uint64_t limit = (memory_size - GUARD_BYTES) * BITS_PER_BYTE;

	if (page_offset_table_end(list_count) > limit)
		return dd_log_warning_strerror(DD_CORRUPT_DATA, "delta page claims %u lists",
		                               list_count);
	if (page_list_start(memory, 0) != page_offset_table_end(list_count))
		return dd_log_warning_strerror(DD_CORRUPT_DATA, "delta page lists start at %u",
		                               page_list_start(memory, 0));
	for (uint32_t i = 0; i < list_count; i++) {
		uint32_t start = page_list_start(memory, i);
		uint32_t end = page_list_start(memory, i + 1);

		if ((end < start) || (end - start > UDS_DELTA_LIST_MAX_BITS))
			return dd_log_warning_strerror(DD_CORRUPT_DATA,
			                               "delta page list %u spans bits %u to %u", i,
			                               start, end);
	}
	if (page_list_start(memory, list_count) > limit)
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "delta page lists overrun the page");
	return DD_SUCCESS;
}

static int check_page_guard(const uint8_t *memory, size_t memory_size)
{
	for (size_t i = memory_size - GUARD_BYTES; i < memory_size; i++) {
		if (memory[i] != 0xFF)
			return dd_log_warning_strerror(DD_CORRUPT_DATA, "delta page guard damaged");
	}
	return DD_SUCCESS;
}

static int check_page_header(const uint8_t *memory, size_t memory_size, uint64_t expected_nonce,
                             const struct uds_delta_coding *coding)
{
	if ((memory_size < PAGE_MIN_BYTES) || (memory_size > UDS_DELTA_PAGE_MAX_BYTES))
		return dd_log_warning_strerror(DD_INVALID_ARGUMENT, "delta page of %zu bytes",
		                               memory_size);
	if (memcmp(memory + PAGE_MAGIC_OFFSET, PAGE_MAGIC, sizeof(PAGE_MAGIC)) != 0)
		return DD_BAD_MAGIC;
	if (memory[PAGE_VERSION_OFFSET] != PAGE_VERSION)
		return dd_log_warning_strerror(DD_UNSUPPORTED_VERSION, "delta page version %u",
		                               memory[PAGE_VERSION_OFFSET]);
	/* A page of an older incarnation of the index is expected during a rebuild: no log. */
	if (dd_get_le64(memory + PAGE_NONCE_OFFSET) != expected_nonce)
		return DD_CORRUPT_DATA;
	if (dd_get_le64(memory + PAGE_CHECKSUM_OFFSET) != page_checksum(memory, memory_size))
		return dd_log_warning_strerror(DD_CHECKSUM_MISMATCH, "delta page checksum");
	if ((memory[PAGE_VALUE_BITS_OFFSET] != coding->value_bits) ||
	    (dd_get_le32(memory + PAGE_INCR_KEYS_OFFSET) != coding->incr_keys))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "delta page coded with other parameters");
	return DD_SUCCESS;
}

int uds_open_delta_page(struct uds_delta_page *page, uint64_t expected_nonce, uint32_t mean_delta,
                        uint32_t payload_bits, const uint8_t *memory, size_t memory_size)
{
	struct uds_delta_coding coding;
	uint32_t list_count;
	int result;

	if ((payload_bits < 1) || (payload_bits > UDS_DELTA_MAX_PAYLOAD_BITS) || (mean_delta < 1))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "delta page coding");
	compute_coding(mean_delta, payload_bits, &coding);
	result = check_page_header(memory, memory_size, expected_nonce, &coding);
	if (result != DD_SUCCESS)
		return result;
	list_count = dd_get_le16(memory + PAGE_LIST_COUNT_OFFSET);
	result = check_page_offsets(memory, memory_size, list_count);
	if (result == DD_SUCCESS)
		result = check_page_guard(memory, memory_size);
	if (result != DD_SUCCESS)
		return result;

	memset(page, 0, sizeof(*page));
	page->zone.coding = coding;
	/* An immutable index is only read (is_mutable is false), so the page may be read-only. */
	page->zone.memory = (uint8_t *) memory;
	page->zone.size = memory_size;
	page->zone.list_count = list_count;
	page->zone.tag = 'p';
	page->index.zones = &page->zone;
	page->index.zone_count = 1;
	page->index.list_count = list_count;
	page->index.lists_per_zone = (list_count > 0) ? list_count : 1;
	page->index.is_mutable = false;
	page->index.tag = 'p';
	page->lowest_list_number = dd_get_le32(memory + PAGE_FIRST_LIST_OFFSET);
	page->highest_list_number = page->lowest_list_number + list_count - 1;
	page->virtual_chapter_number = dd_get_le64(memory + PAGE_CHAPTER_OFFSET);
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Saving and restoring                                                                        */
/* ------------------------------------------------------------------------------------------ */

struct saved_zone_header {
	uint32_t version;
	uint8_t tag;
	struct uds_delta_coding coding;
	uint32_t zone_number;
	uint32_t zone_count;
	uint32_t first_list;
	uint32_t list_count;
	uint64_t record_count;
	uint64_t collision_count;
};

static void encode_zone_header(const struct saved_zone_header *header, uint8_t *buffer)
{
	uint8_t *cursor = buffer + SAVE_MAGIC_BYTES;

	memcpy(buffer, SAVE_MAGIC, SAVE_MAGIC_BYTES);
	dd_put_le32(cursor, header->version);
	cursor[4] = header->tag;
	cursor[5] = header->coding.value_bits;
	cursor[6] = header->coding.min_bits;
	cursor[7] = 0;
	dd_put_le32(cursor + 8, header->coding.min_keys);
	dd_put_le32(cursor + 12, header->coding.incr_keys);
	dd_put_le32(cursor + 16, header->zone_number);
	dd_put_le32(cursor + 20, header->zone_count);
	dd_put_le32(cursor + 24, header->first_list);
	dd_put_le32(cursor + 28, header->list_count);
	dd_put_le64(cursor + 32, header->record_count);
	dd_put_le64(cursor + 40, header->collision_count);
}

static int decode_zone_header(const uint8_t *buffer, struct saved_zone_header *header)
{
	const uint8_t *cursor = buffer + SAVE_MAGIC_BYTES;

	if (memcmp(buffer, SAVE_MAGIC, SAVE_MAGIC_BYTES) != 0)
		return dd_log_warning_strerror(DD_BAD_MAGIC, "saved delta zone has bad magic");
	header->version = dd_get_le32(cursor);
	if (header->version != SAVE_VERSION)
		return dd_log_warning_strerror(DD_UNSUPPORTED_VERSION,
		                               "saved delta zone version %u", header->version);
	header->tag = cursor[4];
	header->coding.value_bits = cursor[5];
	header->coding.min_bits = cursor[6];
	header->coding.min_keys = dd_get_le32(cursor + 8);
	header->coding.incr_keys = dd_get_le32(cursor + 12);
	header->zone_number = dd_get_le32(cursor + 16);
	header->zone_count = dd_get_le32(cursor + 20);
	header->first_list = dd_get_le32(cursor + 24);
	header->list_count = dd_get_le32(cursor + 28);
	header->record_count = dd_get_le64(cursor + 32);
	header->collision_count = dd_get_le64(cursor + 40);
	return DD_SUCCESS;
}

/* Write the bits of every list of the zone, packed, through a staging buffer. */
static int save_list_bits(const struct uds_delta_zone *zone, struct dd_buffered_writer *writer)
{
	uint8_t *buffer;
	uint64_t bits = 0;
	int result = dd_allocate(SAVE_BUFFER_BYTES, "delta save buffer", &buffer);

	for (uint32_t i = 1; (i <= zone->list_count) && (result == DD_SUCCESS); i++) {
		const struct uds_delta_list *list = &zone->lists[i];
		size_t whole;

		move_bits(zone->memory, list->start, buffer, bits, list->size);
		bits += list->size;
		whole = bits / BITS_PER_BYTE;
		if (whole < SAVE_CHUNK_BYTES)
			continue;
		result = dd_write_to_buffered_writer(writer, buffer, whole);
		buffer[0] = buffer[whole];
		bits %= BITS_PER_BYTE;
	}
	if ((result == DD_SUCCESS) && (bits > 0)) {
		if (bits % BITS_PER_BYTE != 0)
			buffer[bits / BITS_PER_BYTE] &=
			    (uint8_t) low_bits_mask(bits % BITS_PER_BYTE);
		result = dd_write_to_buffered_writer(writer, buffer,
		                                     (bits + BITS_PER_BYTE - 1) / BITS_PER_BYTE);
	}
	dd_free(buffer);
	return result;
}

int uds_save_delta_zone(const struct uds_delta_index *index, unsigned int zone_number,
                        struct dd_buffered_writer *writer)
{
	const struct uds_delta_zone *zone = &index->zones[zone_number];
	uint8_t buffer[SAVE_HEADER_BYTES];
	struct saved_zone_header header = {
		.version = SAVE_VERSION,
		.tag = zone->tag,
		.coding = zone->coding,
		.zone_number = zone_number,
		.zone_count = index->zone_count,
		.first_list = zone->first_list,
		.list_count = zone->list_count,
		.record_count = zone->record_count,
		.collision_count = zone->collision_count,
	};
	int result;

	encode_zone_header(&header, buffer);
	result = dd_write_to_buffered_writer(writer, buffer, sizeof(buffer));
	for (uint32_t i = 0; (i < zone->list_count) && (result == DD_SUCCESS); i++) {
		uint8_t size[sizeof(uint16_t)];

		dd_put_le16(size, zone->lists[i + 1].size);
		result = dd_write_to_buffered_writer(writer, size, sizeof(size));
	}
	if (result == DD_SUCCESS)
		result = save_list_bits(zone, writer);
	if (result != DD_SUCCESS)
		return dd_log_warning_strerror(result, "cannot save delta index zone %u",
		                               zone_number);
	return DD_SUCCESS;
}

/* State carried through a restore. */
struct restore {
	struct uds_delta_index *index;
	struct dd_buffered_reader **readers;
	unsigned int reader_count;
	struct saved_zone_header headers[UDS_DELTA_MAX_ZONES];
	/* Bits of packed list data in each saved zone. */
	uint64_t saved_bits[UDS_DELTA_MAX_ZONES];
	/* Staging for the packed bits being read: bytes held, and the next bit to use. */
	uint8_t *buffer;
	size_t buffer_bytes;
	uint64_t buffer_bit;
};

static struct uds_delta_list *find_list(struct uds_delta_index *index, uint32_t list_number,
                                        struct uds_delta_zone **zone_ptr)
{
	struct uds_delta_zone *zone = &index->zones[uds_get_delta_zone_number(index, list_number)];

	*zone_ptr = zone;
	return &zone->lists[list_number - zone->first_list + 1];
}

static int check_zone_header(const struct restore *restore, unsigned int z, uint32_t next_list)
{
	const struct saved_zone_header *header = &restore->headers[z];
	const struct uds_delta_coding *coding = &restore->index->zones[0].coding;

	if ((header->tag != restore->index->tag) ||
	    (header->coding.value_bits != coding->value_bits) ||
	    (header->coding.min_bits != coding->min_bits) ||
	    (header->coding.min_keys != coding->min_keys) ||
	    (header->coding.incr_keys != coding->incr_keys))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved delta zone %u belongs to another index", z);
	if ((header->zone_count != restore->reader_count) || (header->zone_number != z))
		return dd_log_warning_strerror(
		    DD_CORRUPT_DATA, "saved delta zone %u of %u found in slot %u of %u",
		    header->zone_number, header->zone_count, z, restore->reader_count);
	if ((header->first_list != next_list) ||
	    (header->list_count > restore->index->list_count - next_list))
		return dd_log_warning_strerror(
		    DD_CORRUPT_DATA, "saved delta zone %u holds lists %u+%u, expected %u", z,
		    header->first_list, header->list_count, next_list);
	if (header->collision_count > header->record_count)
		return dd_log_warning_strerror(
		    DD_CORRUPT_DATA, "saved delta zone %u has more collisions than records", z);
	return DD_SUCCESS;
}

static int read_zone_headers(struct restore *restore)
{
	uint32_t next_list = 0;

	for (unsigned int z = 0; z < restore->reader_count; z++) {
		uint8_t buffer[SAVE_HEADER_BYTES];
		int result =
		    dd_read_from_buffered_reader(restore->readers[z], buffer, sizeof(buffer));

		if (result == DD_SUCCESS)
			result = decode_zone_header(buffer, &restore->headers[z]);
		if (result == DD_SUCCESS)
			result = check_zone_header(restore, z, next_list);
		if (result != DD_SUCCESS)
			return result;
		next_list += restore->headers[z].list_count;
	}
	if (next_list != restore->index->list_count)
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved delta zones hold %u lists, expected %u",
		                               next_list, restore->index->list_count);
	return DD_SUCCESS;
}

static int read_list_sizes(struct restore *restore)
{
	for (unsigned int z = 0; z < restore->reader_count; z++) {
		const struct saved_zone_header *header = &restore->headers[z];

		restore->saved_bits[z] = 0;
		for (uint32_t i = 0; i < header->list_count; i++) {
			struct uds_delta_zone *zone;
			uint8_t size[sizeof(uint16_t)];
			int result =
			    dd_read_from_buffered_reader(restore->readers[z], size, sizeof(size));

			if (result != DD_SUCCESS)
				return result;
			find_list(restore->index, header->first_list + i, &zone)->size =
			    dd_get_le16(size);
			zone->used_bits += dd_get_le16(size);
			restore->saved_bits[z] += dd_get_le16(size);
		}
	}
	return DD_SUCCESS;
}

/* Place the lists of every zone evenly (byte-aligned) for the data about to be read. */
static int lay_out_zones(struct uds_delta_index *index)
{
	for (unsigned int z = 0; z < index->zone_count; z++) {
		struct uds_delta_zone *zone = &index->zones[z];

		for (uint32_t i = 1; i <= zone->list_count; i++)
			zone->lists[i].start = 0;
		if (!lay_out_zone(zone, false))
			return dd_log_warning_strerror(DD_OVERFLOW,
			                               "saved delta lists do not fit zone %u", z);
	}
	return DD_SUCCESS;
}

/*
 * Make the staging buffer hold the next @bits bits of saved zone @z, reading more of the
 * stream (at most @remaining bytes of it are list data) when needed.
 */
static int stage_bits(struct restore *restore, unsigned int z, uint64_t bits, uint64_t *remaining)
{
	size_t keep;
	size_t more;
	int result;

	if ((restore->buffer_bit + bits + BITS_PER_BYTE - 1) / BITS_PER_BYTE <=
	    restore->buffer_bytes)
		return DD_SUCCESS;
	keep = restore->buffer_bytes - restore->buffer_bit / BITS_PER_BYTE;
	memmove(restore->buffer, restore->buffer + restore->buffer_bit / BITS_PER_BYTE, keep);
	restore->buffer_bit %= BITS_PER_BYTE;
	more = SAVE_BUFFER_BYTES - keep;
	if (more > *remaining)
		more = (size_t) *remaining;
	result = dd_read_from_buffered_reader(restore->readers[z], restore->buffer + keep, more);
	if (result != DD_SUCCESS)
		return result;
	restore->buffer_bytes = keep + more;
	*remaining -= more;
	return DD_SUCCESS;
}

/* Read the packed bits of the lists of saved zone @z into their places. */
static int read_list_bits(struct restore *restore, unsigned int z)
{
	const struct saved_zone_header *header = &restore->headers[z];
	uint64_t remaining = (restore->saved_bits[z] + BITS_PER_BYTE - 1) / BITS_PER_BYTE;
	uint64_t tail;

	restore->buffer_bytes = 0;
	restore->buffer_bit = 0;
	for (uint32_t i = 0; i < header->list_count; i++) {
		struct uds_delta_zone *zone;
		struct uds_delta_list *list =
		    find_list(restore->index, header->first_list + i, &zone);
		int result;

		if (list->size == 0)
			continue;
		result = stage_bits(restore, z, list->size, &remaining);
		if (result != DD_SUCCESS)
			return result;
		move_bits(restore->buffer, restore->buffer_bit, zone->memory, list->start,
		          list->size);
		restore->buffer_bit += list->size;
	}
	tail = restore->buffer_bit % BITS_PER_BYTE;
	if ((tail != 0) && ((restore->buffer[restore->buffer_bit / BITS_PER_BYTE] >> tail) != 0))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved delta zone %u has bad padding", z);
	return DD_SUCCESS;
}

/* Walk a restored list to prove it decodes exactly, counting its records and collisions. */
static int verify_list(struct uds_delta_index *index, uint32_t list_number)
{
	struct uds_delta_entry entry;
	int result = uds_start_delta_search(index, list_number, 0, &entry);

	while (result == DD_SUCCESS) {
		result = uds_next_delta_entry(&entry);
		if ((result != DD_SUCCESS) || entry.at_end)
			break;
		entry.zone->record_count++;
		if (entry.is_collision)
			entry.zone->collision_count++;
	}
	return result;
}

static int verify_restored_index(struct restore *restore)
{
	uint64_t records = 0;
	uint64_t collisions = 0;
	struct uds_delta_index_stats stats;

	for (uint32_t i = 0; i < restore->index->list_count; i++) {
		int result = verify_list(restore->index, i);

		if (result != DD_SUCCESS)
			return result;
	}
	for (unsigned int z = 0; z < restore->reader_count; z++) {
		records += restore->headers[z].record_count;
		collisions += restore->headers[z].collision_count;
	}
	uds_get_delta_index_stats(restore->index, &stats);
	if ((stats.record_count != records) || (stats.collision_count != collisions))
		return dd_log_warning_strerror(DD_CORRUPT_DATA,
		                               "saved delta index holds %llu records and %llu "
		                               "collisions, expected %llu and %llu",
		                               (unsigned long long) stats.record_count,
		                               (unsigned long long) stats.collision_count,
		                               (unsigned long long) records,
		                               (unsigned long long) collisions);
	return DD_SUCCESS;
}

static int restore_lists(struct restore *restore)
{
	int result = read_zone_headers(restore);

	if (result != DD_SUCCESS)
		return result;
	uds_reset_delta_index(restore->index);
	result = read_list_sizes(restore);
	if (result == DD_SUCCESS)
		result = lay_out_zones(restore->index);
	for (unsigned int z = 0; (z < restore->reader_count) && (result == DD_SUCCESS); z++)
		result = read_list_bits(restore, z);
	if (result == DD_SUCCESS)
		result = verify_restored_index(restore);
	return result;
}

int uds_restore_delta_index(struct uds_delta_index *index, struct dd_buffered_reader **readers,
                            unsigned int reader_count)
{
	struct restore *restore;
	int result;

	if (!index->is_mutable || (reader_count < 1) || (reader_count > UDS_DELTA_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "cannot restore %u delta zones",
		                             reader_count);
	result = dd_allocate(sizeof(*restore), "delta restore", &restore);
	if (result != DD_SUCCESS)
		return result;
	restore->index = index;
	restore->readers = readers;
	restore->reader_count = reader_count;
	result =
	    dd_allocate(SAVE_BUFFER_BYTES + GUARD_BYTES, "delta restore buffer", &restore->buffer);
	if (result == DD_SUCCESS)
		result = restore_lists(restore);
	if (result != DD_SUCCESS) {
		uds_reset_delta_index(index);
		for (unsigned int z = 0; z < index->zone_count; z++)
			index->zones[z].discard_count = 0;
	}
	dd_free(restore->buffer);
	dd_free(restore);
	return result;
}
