// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: an immutable delta index page read from storage.
 *
 * The first input byte picks whether the page checksum is left as the fuzzer wrote it (which
 * exercises the header and checksum checks) or recomputed (which lets the fuzzer reach the
 * structural checks and the search code behind them). A page that opens is then walked list
 * by list and searched; nothing may crash or read out of bounds, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "delta-index.h"

enum {
	PAGE_MIN = 128,
	PAGE_MAX = 8192,
	NONCE = 0x5EED
};

static void reseal(uint8_t *page, size_t size)
{
	uint64_t checksum = XXH3_64bits_withSeed(page + 40, size - 40, XXH3_64bits(page, 32));

	for (int i = 0; i < 8; i++)
		page[32 + i] = (uint8_t) (checksum >> (8 * i));
}

static void walk(struct uds_delta_page *page)
{
	for (uint32_t list = 0; list < page->index.list_count; list++) {
		struct uds_delta_entry entry;
		int result = uds_start_delta_search(&page->index, list, 0, &entry);

		while ((result == DD_SUCCESS) && !entry.at_end)
			result = uds_next_delta_entry(&entry);
		if (uds_get_delta_entry(&page->index, list, 1000, NULL, &entry) == DD_SUCCESS &&
		    !entry.at_end)
			(void) uds_get_delta_entry_value(&entry);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *page;
	size_t page_size;
	struct uds_delta_page opened;

	if (size < 1 + PAGE_MIN)
		return 0;
	page_size = size - 1 > PAGE_MAX ? PAGE_MAX : size - 1;
	page = malloc(page_size);
	memcpy(page, data + 1, page_size);
	if (data[0] & 1)
		reseal(page, page_size);
	if (uds_open_delta_page(&opened, NONCE, 256, 6, page, page_size) == DD_SUCCESS)
		walk(&opened);
	free(page);
	return 0;
}
