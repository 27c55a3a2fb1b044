// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: restoring a delta index from saved zone streams.
 *
 * The input is wrapped in a valid checksummed stream (so the fuzzer's bytes reach the delta
 * index's own parser rather than stopping at the stream checksum) and restored into a small
 * index. A restore either succeeds, leaving an index that can be searched and changed, or fails
 * leaving it empty; it must never crash.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buffered-io.h"
#include "delta-index.h"
#include "logger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct uds_delta_index *index_under_test;

static void exercise(struct uds_delta_index *index)
{
	for (uint32_t list = 0; list < index->list_count; list++) {
		struct uds_delta_entry entry;

		if ((uds_get_delta_entry(index, list, 77, NULL, &entry) == DD_SUCCESS) &&
		    (entry.at_end || entry.key != 77))
			(void) uds_put_delta_entry(&entry, 77, 1, NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 8,
		.mean_delta = 64,
		.payload_bits = 5,
		.memory_size = 1 << 17,
		.tag = 'm',
	};
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	int fd;

	if (index_under_test == NULL) {
		dd_log_set_level(DD_LOG_ERROR);
		if (uds_make_delta_index(&params, &index_under_test) != DD_SUCCESS)
			return 0;
	}
	fd = memfd_create("fuzz", 0);
	if (fd < 0)
		return 0;
	if ((dd_make_buffered_writer(fd, 0, 1 << 20, 1, &writer) == DD_SUCCESS) &&
	    (dd_write_to_buffered_writer(writer, data, size) == DD_SUCCESS) &&
	    (dd_finish_buffered_writer(writer, false) == DD_SUCCESS) &&
	    (dd_make_buffered_reader(fd, 0, 1 << 20, 1, &reader) == DD_SUCCESS)) {
		if (uds_restore_delta_index(index_under_test, &reader, 1) == DD_SUCCESS)
			exercise(index_under_test);
		dd_free_buffered_reader(reader);
	}
	dd_free_buffered_writer(writer);
	close(fd);
	return 0;
}
