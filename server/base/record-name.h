/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Record names: the 16-byte fingerprints by which the index knows a block of data.
 *
 * A record name is the XXH3-128 hash of a block's contents, stored in xxHash's canonical form,
 * which is big-endian: the high 64 bits of the hash first, most significant byte first. The name
 * is therefore the same byte string on every host, on disk and on the wire.
 *
 * The index does not use the name as one number; it cuts it into fields, and each consumer reads
 * only its own field so that the fields stay statistically independent of one another:
 *
 *   bytes  0..7   volume index bits   big-endian u64, chooses the volume index zone and the delta
 *                                     list and supplies the address bits within the list;
 *   bytes  8..13  chapter index bits  big-endian 48-bit value, places the name within a chapter
 *                                     index (delta list and address);
 *   bytes 14..15  sample bits         big-endian u16, decides whether the name is a sparse-index
 *                                     sample (a hook) by comparing it modulo the sampling rate.
 *
 * The extractors are inline because the index calls them on every request.
 */
#ifndef DD_RECORD_NAME_H
#define DD_RECORD_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"

enum {
	/* Bytes in a record name. */
	DD_RECORD_NAME_SIZE = 16,
	/* Bytes of buffer for a name in hex: two digits per byte and a terminating NUL. */
	DD_RECORD_NAME_HEX_SIZE = 2 * DD_RECORD_NAME_SIZE + 1,
};

struct dd_record_name {
	uint8_t name[DD_RECORD_NAME_SIZE];
};

/**
 * dd_record_name_of_block() - Compute the record name of a block of data.
 * @data: the data (may be NULL when @length is 0).
 * @length: its length in bytes.
 * @name: receives XXH3-128 of the data in canonical (big-endian) byte order.
 */
void dd_record_name_of_block(const void *data, size_t length, struct dd_record_name *name);

/* Read @count bytes at @bytes as a big-endian unsigned number (count <= 8). */
static inline uint64_t dd_record_name_get_be(const uint8_t *bytes, unsigned int count)
{
	uint64_t value = 0;

	for (unsigned int i = 0; i < count; i++)
		value = (value << 8) | bytes[i];
	return value;
}

/** dd_record_name_volume_index_bits() - Bytes 0-7 of @name as a big-endian u64. */
static inline uint64_t dd_record_name_volume_index_bits(const struct dd_record_name *name)
{
	return dd_record_name_get_be(&name->name[0], 8);
}

/** dd_record_name_chapter_index_bits() - Bytes 8-13 of @name as a big-endian 48-bit value. */
static inline uint64_t dd_record_name_chapter_index_bits(const struct dd_record_name *name)
{
	return dd_record_name_get_be(&name->name[8], 6);
}

/** dd_record_name_sample_bits() - Bytes 14-15 of @name as a big-endian u16. */
static inline uint16_t dd_record_name_sample_bits(const struct dd_record_name *name)
{
	return (uint16_t) dd_record_name_get_be(&name->name[14], 2);
}

/**
 * dd_record_name_compare() - Order two names as byte strings (memcmp order).
 *
 * Return: negative, zero or positive as @a sorts before, equal to or after @b.
 */
static inline int dd_record_name_compare(const struct dd_record_name *a,
                                         const struct dd_record_name *b)
{
	return memcmp(a->name, b->name, DD_RECORD_NAME_SIZE);
}

/** dd_record_name_equal() - Tell whether two names are the same. */
static inline bool dd_record_name_equal(const struct dd_record_name *a,
                                        const struct dd_record_name *b)
{
	return dd_record_name_compare(a, b) == 0;
}

/**
 * dd_record_name_to_hex() - Format a name as 32 lower-case hex digits, byte 0 first.
 * @name: the name.
 * @buffer: receives the digits and a terminating NUL.
 */
void dd_record_name_to_hex(const struct dd_record_name *name, char buffer[DD_RECORD_NAME_HEX_SIZE]);

/**
 * dd_record_name_from_hex() - Parse the form written by dd_record_name_to_hex().
 * @hex: exactly 32 hex digits (either case) and nothing else: no prefix, sign or spaces.
 * @name: receives the name; left untouched on failure.
 *
 * Return: DD_SUCCESS, or DD_INVALID_ARGUMENT for NULL, a wrong length or a non-hex character.
 */
int DD_MUST_CHECK dd_record_name_from_hex(const char *hex, struct dd_record_name *name);

#endif /* DD_RECORD_NAME_H */
