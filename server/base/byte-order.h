/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Little-endian loads and stores at any alignment, for everything encoded on disk or in bit
 * streams. memcpy() into a local compiles to a single (unaligned) load or store on the machines
 * we run on, and the le*toh conversions are no-ops on little-endian hosts.
 */
#ifndef DD_BYTE_ORDER_H
#define DD_BYTE_ORDER_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/** dd_get_le16() - Read a little-endian 16-bit value from @bytes. */
static inline uint16_t dd_get_le16(const uint8_t *bytes)
{
	uint16_t value;

	memcpy(&value, bytes, sizeof(value));
	return le16toh(value);
}

/** dd_get_le32() - Read a little-endian 32-bit value from @bytes. */
static inline uint32_t dd_get_le32(const uint8_t *bytes)
{
	uint32_t value;

	memcpy(&value, bytes, sizeof(value));
	return le32toh(value);
}

/** dd_get_le64() - Read a little-endian 64-bit value from @bytes. */
static inline uint64_t dd_get_le64(const uint8_t *bytes)
{
	uint64_t value;

	memcpy(&value, bytes, sizeof(value));
	return le64toh(value);
}

/** dd_put_le16() - Write @value to @bytes as little-endian. */
static inline void dd_put_le16(uint8_t *bytes, uint16_t value)
{
	value = htole16(value);
	memcpy(bytes, &value, sizeof(value));
}

/** dd_put_le32() - Write @value to @bytes as little-endian. */
static inline void dd_put_le32(uint8_t *bytes, uint32_t value)
{
	value = htole32(value);
	memcpy(bytes, &value, sizeof(value));
}

/** dd_put_le64() - Write @value to @bytes as little-endian. */
static inline void dd_put_le64(uint8_t *bytes, uint64_t value)
{
	value = htole64(value);
	memcpy(bytes, &value, sizeof(value));
}

#endif /* DD_BYTE_ORDER_H */
