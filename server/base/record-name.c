// SPDX-License-Identifier: GPL-2.0-only
/*
 * Record names: hashing and hex conversion; see record-name.h for the layout of a name.
 *
 * The hash comes from Debian's libxxhash. Its canonical form is already the big-endian byte
 * string we store, so the name is a straight copy of it. Hex parsing is strict (exact length,
 * hex digits only) because names typed by people or read from tools must not be half-parsed.
 */
#include "record-name.h"

#include <xxhash.h>

#include "logger.h"

static const char hex_digits[] = "0123456789abcdef";

void dd_record_name_of_block(const void *data, size_t length, struct dd_record_name *name)
{
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, XXH3_128bits(data, length));
	_Static_assert(sizeof(canonical.digest) == DD_RECORD_NAME_SIZE, "name size");
	memcpy(name->name, canonical.digest, DD_RECORD_NAME_SIZE);
}

void dd_record_name_to_hex(const struct dd_record_name *name, char buffer[DD_RECORD_NAME_HEX_SIZE])
{
	for (int i = 0; i < DD_RECORD_NAME_SIZE; i++) {
		buffer[2 * i] = hex_digits[name->name[i] >> 4];
		buffer[2 * i + 1] = hex_digits[name->name[i] & 0xf];
	}
	buffer[2 * DD_RECORD_NAME_SIZE] = '\0';
}

/* The value of one hex digit, or -1 when @c is not one. */
static int hex_value(char c)
{
	if ((c >= '0') && (c <= '9'))
		return c - '0';
	if ((c >= 'a') && (c <= 'f'))
		return c - 'a' + 10;
	if ((c >= 'A') && (c <= 'F'))
		return c - 'A' + 10;
	return -1;
}

int dd_record_name_from_hex(const char *hex, struct dd_record_name *name)
{
	struct dd_record_name parsed;
	size_t length;

	if (hex == NULL)
		return dd_log_strerror(DD_LOG_DEBUG, DD_INVALID_ARGUMENT, "no record name given");
	length = strnlen(hex, 2 * DD_RECORD_NAME_SIZE + 1);
	if (length != 2 * DD_RECORD_NAME_SIZE)
		return dd_log_strerror(DD_LOG_DEBUG, DD_INVALID_ARGUMENT,
		                       "record name is not %d hex digits", 2 * DD_RECORD_NAME_SIZE);
	for (int i = 0; i < DD_RECORD_NAME_SIZE; i++) {
		int high = hex_value(hex[2 * i]);
		int low = hex_value(hex[2 * i + 1]);

		if ((high < 0) || (low < 0))
			return dd_log_strerror(
			    DD_LOG_DEBUG, DD_INVALID_ARGUMENT,
			    "record name has a non-hex character near position %d", 2 * i);
		parsed.name[i] = (uint8_t) ((high << 4) | low);
	}
	*name = parsed;
	return DD_SUCCESS;
}
