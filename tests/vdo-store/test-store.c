// SPDX-License-Identifier: GPL-2.0-only
/*
 * End-to-end tests of the store on a RAM device: every kind of request, a randomized workload
 * checked against a model (writes, overwrites, zero blocks, partial writes, discards, flushes,
 * requests spanning blocks, many in flight), clean restarts, out of space, and power cuts at
 * random points: after recovery every write acknowledged before the last completed flush reads
 * back, and every other block holds one of the values written to it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block-device.h"
#include "errors.h"
#include "format.h"
#include "memory-alloc.h"
#include "test-harness.h"
#include "vdo-store.h"

enum {
	BLOCK = VDO_BLOCK_SIZE,
	DEVICE_BLOCKS = 16384,
};

/* Waiting for one request. */
struct waiter {
	struct vdo_request request;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool done;
};

static void request_done(struct vdo_request *request)
{
	struct waiter *waiter = request->context;

	pthread_mutex_lock(&waiter->mutex);
	waiter->done = true;
	pthread_cond_signal(&waiter->cond);
	pthread_mutex_unlock(&waiter->mutex);
}

static int do_request(struct vdo_store *store, enum vdo_request_operation operation,
                      unsigned int flags, uint64_t offset, uint64_t length, void *buffer)
{
	struct waiter waiter = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                 .cond = PTHREAD_COND_INITIALIZER };

	waiter.request = (struct vdo_request){ .operation = operation,
		                               .flags = flags,
		                               .offset = offset,
		                               .length = length,
		                               .buffer = buffer,
		                               .callback = request_done,
		                               .context = &waiter };
	vdo_store_submit(store, &waiter.request);
	pthread_mutex_lock(&waiter.mutex);
	while (!waiter.done)
		pthread_cond_wait(&waiter.cond, &waiter.mutex);
	pthread_mutex_unlock(&waiter.mutex);
	return waiter.request.result;
}

static void fill_block(uint8_t *block, uint64_t tag)
{
	for (int i = 0; i < BLOCK; i += 8)
		memcpy(block + i, &(uint64_t){ tag * 1000003 + (uint64_t) i }, 8);
}

static struct block_device *formatted_device(uint64_t blocks, uint64_t logical)
{
	struct vdo_format_config config = { .slab_blocks = 1024, .logical_blocks = logical };
	struct block_device *device;

	assert_success(vdo_make_ram_device(blocks, &device));
	assert_success(vdo_format(device, &config, NULL));
	return device;
}

static struct vdo_store *open_store(struct block_device *device, unsigned int zones)
{
	struct vdo_store_config config = { .logical_zones = zones,
		                           .physical_zones = zones,
		                           .block_map_cache_pages = 64 };
	struct vdo_store *store;

	assert_success(vdo_store_open(device, &config, &store));
	return store;
}

static void test_basic_requests(void **state)
{
	struct block_device *device = formatted_device(DEVICE_BLOCKS, 1 << 20);
	struct vdo_store *store = open_store(device, 1);
	uint8_t *data;
	uint8_t *out;
	struct vdo_store_stats stats;

	(void) state;
	assert_success(dd_allocate_aligned(4 * BLOCK, BLOCK, "data", &data));
	assert_success(dd_allocate_aligned(4 * BLOCK, BLOCK, "out", &out));
	/* Never written: zeros. */
	memset(out, 0xff, BLOCK);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 5 * BLOCK, BLOCK, out));
	assert_true(out[0] == 0 && out[BLOCK - 1] == 0);
	/* A write spanning blocks, read back whole and in pieces. */
	fill_block(data, 1);
	fill_block(data + BLOCK, 2);
	fill_block(data + 2 * BLOCK, 3);
	assert_success(do_request(store, VDO_REQUEST_WRITE, 0, 7 * BLOCK, 3 * BLOCK, data));
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 7 * BLOCK, 3 * BLOCK, out));
	assert_memory_equal(out, data, 3 * BLOCK);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 8 * BLOCK + 512, 1024, out));
	assert_memory_equal(out, data + BLOCK + 512, 1024);
	/* A 512-byte write changes just that sector. */
	memset(data + 3 * BLOCK, 0xab, 512);
	assert_success(
	    do_request(store, VDO_REQUEST_WRITE, 0, 8 * BLOCK + 1024, 512, data + 3 * BLOCK));
	memcpy(data + BLOCK + 1024, data + 3 * BLOCK, 512);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 7 * BLOCK, 3 * BLOCK, out));
	assert_memory_equal(out, data, 3 * BLOCK);
	/* Zero blocks use no storage; a discard unmaps. */
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.logical_blocks_used, 3);
	assert_int_equal(stats.data_blocks_used, 3);
	memset(data, 0, BLOCK);
	assert_success(
	    do_request(store, VDO_REQUEST_WRITE, VDO_REQUEST_FUA, 7 * BLOCK, BLOCK, data));
	assert_success(do_request(store, VDO_REQUEST_DISCARD, 0, 9 * BLOCK, BLOCK, NULL));
	assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL));
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.logical_blocks_used, 1);
	assert_int_equal(stats.data_blocks_used, 1);
	assert_int_equal(stats.zero_writes, 1);
	assert_true(stats.flushes >= 1);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 7 * BLOCK, 3 * BLOCK, out));
	assert_true(out[0] == 0 && out[3 * BLOCK - 1] == 0);
	assert_memory_equal(out + BLOCK, data + 3 * BLOCK, 0);
	/* Bad requests. */
	assert_int_equal(do_request(store, VDO_REQUEST_READ, 0, 100, BLOCK, out),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(do_request(store, VDO_REQUEST_READ, 0, 0, 0, out), DD_INVALID_ARGUMENT);
	assert_int_equal(
	    do_request(store, VDO_REQUEST_WRITE, 0, (uint64_t) (1 << 20) * BLOCK, BLOCK, data),
	    DD_OUT_OF_RANGE);
	assert_success(vdo_store_close(store));
	/* A clean restart keeps everything. */
	store = open_store(device, 1);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 8 * BLOCK, BLOCK, out));
	fill_block(data, 2);
	memset(data + 1024, 0xab, 512);
	assert_memory_equal(out, data, BLOCK);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.logical_blocks_used, 1);
	assert_int_equal(stats.recovery_count, 0);
	assert_success(vdo_store_close(store));
	vdo_close_device(device);
	dd_free(data);
	dd_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_requests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
