/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Requests for the end-to-end index tests (test-index.c, test-rebuild.c): each number has a
 * name (XXH3-128 of the number), requests run one at a time or many in flight, and the index
 * lives in a temporary file named by index_path.
 */
#ifndef UDS_TEST_INDEX_REQUESTS_H
#define UDS_TEST_INDEX_REQUESTS_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "geometry.h"
#include "test-harness.h"
#include "uds.h"

static char index_path[64];

struct test_request {
	struct uds_request request;
	atomic_bool done;
};

/** make_name() - The name of a number. */
static void make_name(uint64_t number, struct dd_record_name *name)
{
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, XXH3_128bits(&number, sizeof(number)));
	memcpy(name->name, canonical.digest, sizeof(name->name));
}

/** is_hook() - Whether the name of a number is a sparse hook. */
static inline bool is_hook(uint64_t number)
{
	struct dd_record_name name;

	make_name(number, &name);
	return (dd_record_name_sample_bits(&name) % UDS_SPARSE_SAMPLE_RATE) == 0;
}

/** request_done() - The callback of every request: mark it done. */
static void request_done(struct uds_request *request)
{
	atomic_store(&((struct test_request *) request)->done, true);
}

/** data_of() - The data a request found, as a number. */
static uint64_t data_of(const struct uds_request *request)
{
	uint64_t data;

	memcpy(&data, request->old_data.data, sizeof(data));
	return data;
}

/** run_named_request() - Run one request for a name synchronously, with data @data. */
static struct uds_request run_named_request(struct uds_index *index, enum uds_request_type type,
                                            const struct dd_record_name *name, uint64_t data)
{
	struct test_request tr;

	memset(&tr, 0, sizeof(tr));
	tr.request.record_name = *name;
	memcpy(tr.request.new_data.data, &data, sizeof(data));
	tr.request.type = type;
	tr.request.callback = request_done;
	tr.request.index = index;
	assert_success(uds_launch_request(&tr.request));
	while (!atomic_load(&tr.done))
		;
	assert_success(tr.request.status);
	return tr.request;
}

/** run_request() - Run one request for a number synchronously, with data @data. */
static struct uds_request run_request(struct uds_index *index, enum uds_request_type type,
                                      uint64_t number, uint64_t data)
{
	struct dd_record_name name;

	make_name(number, &name);
	return run_named_request(index, type, &name, data);
}

/* What to check of each request of a range: the request, its number, the data offset. */
typedef void (*range_check_fn)(const struct uds_request *request, uint64_t number, uint64_t offset);

/**
 * run_strided() - Run @type requests for numbers [first, first + count) with data number +
 *                 @offset, many in flight, in the order first + (i * @stride) % count (a stride
 *                 prime to count visits each number once); call @check (if any) on each.
 *                 Return: how many found.
 */
static uint64_t run_strided(struct uds_index *index, enum uds_request_type type, uint64_t first,
                            uint64_t count, uint64_t stride, uint64_t offset, range_check_fn check)
{
	enum {
		BATCH = 256
	};
	static struct test_request batch[BATCH];
	uint64_t found = 0;

	for (uint64_t done = 0; done < count;) {
		unsigned int n = (count - done < BATCH) ? (unsigned int) (count - done) : BATCH;

		for (unsigned int i = 0; i < n; i++) {
			uint64_t number = first + ((done + i) * stride) % count;
			uint64_t data = number + offset;

			memset(&batch[i], 0, sizeof(batch[i]));
			make_name(number, &batch[i].request.record_name);
			memcpy(batch[i].request.new_data.data, &data, sizeof(data));
			batch[i].request.type = type;
			batch[i].request.callback = request_done;
			batch[i].request.index = index;
			assert_success(uds_launch_request(&batch[i].request));
		}
		uds_flush_index(index);
		for (unsigned int i = 0; i < n; i++) {
			assert_true(atomic_load(&batch[i].done));
			assert_success(batch[i].request.status);
			found += batch[i].request.found;
			if (check != NULL)
				check(&batch[i].request, first + ((done + i) * stride) % count,
				      offset);
		}
		done += n;
	}
	return found;
}

/**
 * run_range() - Run @type requests for numbers [first, first + count) in order with data number
 *               + @offset, many in flight; call @check (if any) on each. Return: how many found.
 */
static uint64_t run_range(struct uds_index *index, enum uds_request_type type, uint64_t first,
                          uint64_t count, uint64_t offset, range_check_fn check)
{
	return run_strided(index, type, first, count, 1, offset, check);
}

/** store_range() - run_range() without checks, for POST and UPDATE. */
static void store_range(struct uds_index *index, enum uds_request_type type, uint64_t first,
                        uint64_t count, uint64_t offset)
{
	run_range(index, type, first, count, offset, NULL);
}

/** query_range() - QUERY_NO_UPDATE numbers [first, first + count); see run_range(). */
static uint64_t query_range(struct uds_index *index, uint64_t first, uint64_t count,
                            range_check_fn check, uint64_t offset)
{
	return run_range(index, UDS_QUERY_NO_UPDATE, first, count, offset, check);
}

/** check_data() - A name was found with data number + offset. */
static void check_data(const struct uds_request *request, uint64_t number, uint64_t offset)
{
	if (!request->found)
		fail_msg("name %llu not found", (unsigned long long) number);
	if (data_of(request) != number + offset)
		fail_msg("name %llu has data %llu, not %llu", (unsigned long long) number,
		         (unsigned long long) data_of(request),
		         (unsigned long long) (number + offset));
}

/** check_found() - Every number in [first, first + count) is found with data number + offset. */
static void check_found(struct uds_index *index, uint64_t first, uint64_t count, uint64_t offset)
{
	query_range(index, first, count, check_data, offset);
}

/** make_index_file() - Make the temporary file a test's index lives in. */
static int make_index_file(const char *prefix)
{
	int fd;

	snprintf(index_path, sizeof(index_path), "/tmp/%s-XXXXXX", prefix);
	fd = mkstemp(index_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

#endif /* UDS_TEST_INDEX_REQUESTS_H */
