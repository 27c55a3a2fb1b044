// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of deduplication in the store, with the embedded index in a file of its own and the
 * volume on a RAM device: identical blocks in flight share one block, data written again later
 * shares the old block, stale advice is caught by the compare, forced hash collisions never
 * share different data, a block takes at most 254 references and the lock forks, zero blocks
 * are never named, overwrites and discards drop references and free blocks, and a randomized
 * duplicate-heavy workload with overwrites racing advice reads back exactly and leaves the
 * volume passing check.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "block-device.h"
#include "dedupe-index.h"
#include "errors.h"
#include "format.h"
#include "memory-alloc.h"
#include "record-name.h"
#include "request-waiter.h"
#include "super-block.h"
#include "test-harness.h"
#include "uds.h"
#include "vdo-store.h"

enum {
	BLOCK = VDO_BLOCK_SIZE,
	DEVICE_BLOCKS = 16384,
	LOGICAL_BLOCKS = 8192,
	IN_FLIGHT = 64,
};

static char index_path[64];
static struct vdo_index_config index_config;

static int make_index_file(void **state)
{
	int fd;

	(void) state;
	snprintf(index_path, sizeof(index_path), "/tmp/test-dedupe-XXXXXX");
	fd = mkstemp(index_path);
	if (fd < 0)
		return -1;
	close(fd);
	index_config = (struct vdo_index_config){
		.kind = VDO_INDEX_EMBEDDED, .path = index_path, .memory_mb = 256, .create = true
	};
	return 0;
}

static int remove_index_file(void **state)
{
	(void) state;
	unlink(index_path);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 */

static void start_request(struct vdo_store *store, struct waiter *waiter,
                          enum vdo_request_operation operation, uint64_t block, void *buffer)
{
	pthread_mutex_init(&waiter->mutex, NULL);
	pthread_cond_init(&waiter->cond, NULL);
	waiter->done = false;
	waiter->request =
	    (struct vdo_request){ .operation = operation,
		                  .offset = block * BLOCK,
		                  .length = (operation == VDO_REQUEST_FLUSH) ? 0 : BLOCK,
		                  .buffer = buffer,
		                  .callback = request_done,
		                  .context = waiter };
	vdo_store_submit(store, &waiter->request);
}

static int finish_request(struct waiter *waiter)
{
	pthread_mutex_lock(&waiter->mutex);
	while (!waiter->done)
		pthread_cond_wait(&waiter->cond, &waiter->mutex);
	pthread_mutex_unlock(&waiter->mutex);
	pthread_cond_destroy(&waiter->cond);
	pthread_mutex_destroy(&waiter->mutex);
	return waiter->request.result;
}

static int do_request(struct vdo_store *store, enum vdo_request_operation operation, uint64_t block,
                      void *buffer)
{
	struct waiter waiter;

	start_request(store, &waiter, operation, block, buffer);
	return finish_request(&waiter);
}

/* Block contents for value @value (0: zeros). */
static void fill(uint8_t *block, uint64_t value)
{
	for (int i = 0; i < BLOCK; i += 8)
		memcpy(block + i,
		       &(uint64_t){ (value == 0) ? 0 : value * 0x9e3779b97f4a7c15ULL + i }, 8);
}

/* Write value @values[i] to block @first + i, IN_FLIGHT at a time. */
static void write_values(struct vdo_store *store, uint64_t first, const uint64_t *values,
                         uint64_t count)
{
	struct waiter *waiters = calloc(IN_FLIGHT, sizeof(*waiters));
	uint8_t *buffers;

	assert_success(dd_allocate_aligned(IN_FLIGHT * BLOCK, BLOCK, "buffers", &buffers));
	for (uint64_t start = 0; start < count; start += IN_FLIGHT) {
		uint64_t batch = (count - start < IN_FLIGHT) ? count - start : IN_FLIGHT;

		for (uint64_t i = 0; i < batch; i++) {
			fill(buffers + i * BLOCK, values[start + i]);
			start_request(store, &waiters[i], VDO_REQUEST_WRITE, first + start + i,
			              buffers + i * BLOCK);
		}
		for (uint64_t i = 0; i < batch; i++)
			assert_success(finish_request(&waiters[i]));
	}
	dd_free(buffers);
	free(waiters);
}

static void write_value(struct vdo_store *store, uint64_t block, uint64_t value)
{
	write_values(store, block, &value, 1);
}

static void expect_values(struct vdo_store *store, uint64_t first, const uint64_t *values,
                          uint64_t count)
{
	uint8_t *out;
	uint8_t *expected;

	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "out", &out));
	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "expected", &expected));
	for (uint64_t i = 0; i < count; i++) {
		fill(expected, values[i]);
		assert_success(do_request(store, VDO_REQUEST_READ, first + i, out));
		if (memcmp(out, expected, BLOCK) != 0)
			fail_msg("block %llu does not hold value %llu",
			         (unsigned long long) (first + i), (unsigned long long) values[i]);
	}
	dd_free(out);
	dd_free(expected);
}

/* ---------------------------------------------------------------------------------------------
 * Volumes
 */

static struct block_device *formatted_device(void)
{
	struct vdo_format_config config = { .slab_blocks = 1024, .logical_blocks = LOGICAL_BLOCKS };
	struct block_device *device;

	assert_success(vdo_make_ram_device(DEVICE_BLOCKS, &device));
	assert_success(vdo_format(device, &config, NULL));
	return device;
}

static struct vdo_store_config store_config(unsigned int zones)
{
	return (struct vdo_store_config){ .logical_zones = zones,
		                          .physical_zones = zones,
		                          .hash_zones = zones,
		                          .cpu_threads = zones,
		                          .block_map_cache_pages = 256,
		                          .index = &index_config };
}

/* Open with dedupe, and wait for the index to be online. */
static struct vdo_store *open_store(struct block_device *device,
                                    const struct vdo_store_config *config)
{
	struct vdo_store_stats stats;
	struct vdo_store *store;

	assert_success(vdo_store_open(device, config, &store));
	for (int i = 0; i < 60 * 1000; i++) {
		vdo_store_get_stats(store, &stats);
		if (strcmp(stats.index_state, "online") == 0)
			return store;
		assert_string_not_equal(stats.index_state, "error");
		usleep(1000);
	}
	fail_msg("the index did not come online");
	return NULL;
}

static struct vdo_store_stats stats_of(struct vdo_store *store)
{
	struct vdo_store_stats stats;

	vdo_store_wait_for_idle(store);
	vdo_store_get_stats(store, &stats);
	return stats;
}

static void close_and_check(struct vdo_store *store, struct block_device *device)
{
	struct vdo_audit_report report;

	assert_success(vdo_store_close(store));
	assert_success(vdo_check_volume(device, stderr, &report));
	assert_int_equal(vdo_audit_problems(&report), 0);
	vdo_close_device(device);
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

/* Identical blocks in flight at once share one block; the same data written later too. */
static void test_identical_blocks_share(void **state)
{
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(2);
	struct vdo_store *store = open_store(device, &config);
	uint64_t values[200];
	struct vdo_store_stats stats;

	(void) state;
	for (int i = 0; i < 200; i++)
		values[i] = 7;
	write_values(store, 0, values, 200);
	stats = stats_of(store);
	assert_int_equal(stats.logical_blocks_used, 200);
	assert_int_equal(stats.data_blocks_used, 1);
	assert_true(stats.concurrent_data_matches + stats.dedupe_advice_valid > 0);
	/* Later, the index knows where the data is. */
	write_value(store, 300, 7);
	stats = stats_of(store);
	assert_int_equal(stats.data_blocks_used, 1);
	assert_true(stats.dedupe_advice_valid >= 1);
	assert_true(stats.posts_found >= 1);
	expect_values(store, 0, values, 200);
	expect_values(store, 300, values, 1);
	/* Overwrites and discards drop references; the last one frees the block. */
	for (int i = 0; i < 100; i++)
		values[i] = 1000 + i;
	write_values(store, 0, values, 100);
	for (uint64_t b = 100; b < 200; b++)
		assert_success(do_request(store, VDO_REQUEST_DISCARD, b, NULL));
	stats = stats_of(store);
	assert_int_equal(stats.data_blocks_used, 101);
	assert_success(do_request(store, VDO_REQUEST_DISCARD, 300, NULL));
	stats = stats_of(store);
	assert_int_equal(stats.data_blocks_used, 100);
	assert_int_equal(stats.logical_blocks_used, 100);
	close_and_check(store, device);
}

/* Zero blocks are never named; a 254-reference block forks into a new copy. */
static void test_zeros_and_rollover(void **state)
{
	enum {
		COPIES = 600,
	};
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(1);
	struct vdo_store *store = open_store(device, &config);
	uint64_t values[COPIES] = { 0 };
	struct vdo_store_stats before;
	struct vdo_store_stats stats;

	(void) state;
	before = stats_of(store);
	write_values(store, 0, values, 100);
	stats = stats_of(store);
	assert_int_equal(stats.posts_found + stats.posts_not_found,
	                 before.posts_found + before.posts_not_found);
	assert_int_equal(stats.data_blocks_used, 0);
	for (int i = 0; i < COPIES; i++)
		values[i] = 42;
	write_values(store, 1000, values, COPIES);
	stats = stats_of(store);
	/* 254 references per block at most: three blocks for 600 copies. */
	assert_int_equal(stats.data_blocks_used, (COPIES + 253) / 254);
	assert_true(stats.dedupe_forks >= 2);
	expect_values(store, 1000, values, COPIES);
	close_and_check(store, device);
}

/* Advice naming a block that was overwritten since is caught by the compare. */
static void test_stale_advice(void **state)
{
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(1);
	struct vdo_store *store = open_store(device, &config);
	uint64_t values[64];
	struct vdo_store_stats stats;

	(void) state;
	write_value(store, 0, 5);
	/* The block is freed, and taken by other data. */
	write_value(store, 0, 6);
	for (int i = 0; i < 64; i++)
		values[i] = 100 + i;
	write_values(store, 10, values, 64);
	/* The index still says 5 is where it was. */
	write_value(store, 1, 5);
	stats = stats_of(store);
	assert_int_equal(stats.dedupe_advice_stale, 1);
	expect_values(store, 1, &(uint64_t){ 5 }, 1);
	expect_values(store, 0, &(uint64_t){ 6 }, 1);
	expect_values(store, 10, values, 64);
	/* And it learned the new place. */
	write_value(store, 2, 5);
	stats = stats_of(store);
	assert_true(stats.dedupe_advice_valid >= 1);
	expect_values(store, 2, &(uint64_t){ 5 }, 1);
	close_and_check(store, device);
}

/* Every block has the same name: different data is never shared. */
static void same_name(const uint8_t *data, struct dd_record_name *name)
{
	(void) data;
	memset(name->name, 0x5a, sizeof(name->name));
}

static void test_forced_collisions(void **state)
{
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(2);
	struct vdo_store *store;
	uint64_t values[256];
	struct vdo_store_stats stats;

	(void) state;
	config.name_block = same_name;
	store = open_store(device, &config);
	for (int i = 0; i < 256; i++)
		values[i] = 1 + (i % 8);
	write_values(store, 0, values, 256);
	write_values(store, 500, values, 256);
	stats = stats_of(store);
	expect_values(store, 0, values, 256);
	expect_values(store, 500, values, 256);
	assert_true(stats.concurrent_hash_collisions + stats.dedupe_advice_stale > 0);
	assert_int_equal(stats.logical_blocks_used, 512);
	close_and_check(store, device);
}

/*
 * Many rounds of: data written at one block, the same data written elsewhere while the first
 * block is overwritten (its last reference dropped while the advice is read), and other writes
 * that take freed blocks. Every block reads back what was last written to it.
 */
static void test_overwrites_race_advice(void **state)
{
	enum {
		ROUNDS = 200,
	};
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(2);
	struct vdo_store *store = open_store(device, &config);
	uint64_t *expected = calloc(LOGICAL_BLOCKS, sizeof(*expected));
	uint8_t *buffers;

	(void) state;
	assert_success(dd_allocate_aligned(4 * BLOCK, BLOCK, "buffers", &buffers));
	for (uint64_t round = 0; round < ROUNDS; round++) {
		struct waiter waiters[4];
		uint64_t a = (round * 3) % 1000;
		uint64_t b = 1000 + (round * 7) % 1000;
		uint64_t c = 2000 + round;
		uint64_t value = 10 + round % 5;

		fill(buffers, value);
		assert_success(do_request(store, VDO_REQUEST_WRITE, a, buffers));
		expected[a] = value;
		fill(buffers, value);
		fill(buffers + BLOCK, 50000 + round);
		fill(buffers + 2 * BLOCK, 90000 + round);
		start_request(store, &waiters[0], VDO_REQUEST_WRITE, b, buffers);
		start_request(store, &waiters[1], VDO_REQUEST_WRITE, a, buffers + BLOCK);
		start_request(store, &waiters[2], VDO_REQUEST_WRITE, c, buffers + 2 * BLOCK);
		start_request(store, &waiters[3], VDO_REQUEST_DISCARD, c + 1, NULL);
		for (int i = 0; i < 4; i++)
			assert_success(finish_request(&waiters[i]));
		expected[b] = value;
		expected[a] = 50000 + round;
		expected[c] = 90000 + round;
		expected[c + 1] = 0;
	}
	expect_values(store, 0, expected, 2000 + ROUNDS + 1);
	dd_free(buffers);
	free(expected);
	close_and_check(store, device);
}

/* Whether @block holds value @a or value @b. */
static bool holds_either(struct vdo_store *store, uint64_t block, uint64_t a, uint64_t b)
{
	uint8_t *out;
	uint8_t *expected;
	bool found;

	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "out", &out));
	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "expected", &expected));
	assert_success(do_request(store, VDO_REQUEST_READ, block, out));
	fill(expected, a);
	found = (memcmp(out, expected, BLOCK) == 0);
	fill(expected, b);
	found = found || (memcmp(out, expected, BLOCK) == 0);
	dd_free(out);
	dd_free(expected);
	return found;
}

/*
 * Power cuts with duplicate-heavy data: what was flushed survives, what was not is either the
 * old or the new data, and reference counts of shared blocks recover exactly (check is clean).
 */
static void test_power_cuts_with_duplicates(void **state)
{
	enum {
		BLOCKS = 1500,
		ROUNDS = 4,
	};
	struct block_device *device = formatted_device();
	struct vdo_store_config config = store_config(2);
	uint64_t *flushed = calloc(BLOCKS, sizeof(*flushed));
	uint64_t *unflushed = calloc(BLOCKS, sizeof(*unflushed));
	struct vdo_audit_report report;

	(void) state;
	for (uint64_t round = 0; round < ROUNDS; round++) {
		struct vdo_store *store = open_store(device, &config);
		struct block_device *survivor;

		/* Every block is what was flushed, or what was written after. */
		for (uint64_t b = 0; b < BLOCKS; b++) {
			assert_true(holds_either(store, b, flushed[b], unflushed[b]));
			flushed[b] = holds_either(store, b, flushed[b], flushed[b]) ? flushed[b]
			                                                            : unflushed[b];
		}
		/* Few distinct values: most writes share a block. */
		for (uint64_t b = 0; b < BLOCKS; b++)
			unflushed[b] = 1 + (b * 7 + round) % 23;
		write_values(store, 0, unflushed, BLOCKS / 2);
		assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, NULL));
		memcpy(flushed, unflushed, (BLOCKS / 2) * sizeof(*flushed));
		write_values(store, BLOCKS / 2, unflushed + BLOCKS / 2, BLOCKS - BLOCKS / 2);
		for (uint64_t b = 0; b < BLOCKS / 2; b++)
			unflushed[b] = flushed[b];
		assert_success(vdo_ram_device_crash(device, RAM_CRASH_RANDOM, round, &survivor));
		(void) vdo_store_close(store);
		vdo_close_device(device);
		device = survivor;
		assert_success(vdo_check_volume(device, stderr, &report));
	}
	free(flushed);
	free(unflushed);
	close_and_check(open_store(device, &config), device);
}

/*
 * A volume on a file, formatted with its embedded index: the index lives in the volume's own
 * region, is created on first use, recorded at close, and loaded (not created) on the next
 * open, where it still knows the data written before.
 */
static void test_embedded_index_in_the_volume(void **state)
{
	struct vdo_format_config format = { .slab_blocks = 1024, .logical_blocks = LOGICAL_BLOCKS };
	struct vdo_index_record record = { .kind = VDO_INDEX_RECORD_EMBEDDED, .memory_mb = 256 };
	struct uds_parameters shape = { .memory_mb = 256 };
	struct vdo_store_config config = store_config(1);
	char path[64];
	struct block_device *device;
	struct vdo_super_block super;
	struct vdo_store *store;
	struct vdo_store_stats stats;
	uint64_t bytes;
	int fd;

	(void) state;
	snprintf(path, sizeof(path), "/tmp/test-dedupe-volume-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_success(uds_compute_index_size(&shape, &bytes));
	format.index_blocks = (bytes + BLOCK - 1) / BLOCK;
	assert_success(vdo_open_file_device(path, format.index_blocks + DEVICE_BLOCKS, &device));
	assert_success(vdo_format_with_index(device, &format, &record, &super));
	config.index = NULL;
	store = open_store(device, &config);
	write_value(store, 0, 77);
	write_value(store, 1, 77);
	stats = stats_of(store);
	assert_int_equal(stats.data_blocks_used, 1);
	assert_success(vdo_store_close(store));
	assert_success(vdo_load_super_block(device, &super));
	assert_int_not_equal(super.index.nonce, 0);
	/* Loaded, not created: it still knows where 77 is. */
	store = open_store(device, &config);
	write_value(store, 2, 77);
	stats = stats_of(store);
	assert_int_equal(stats.dedupe_advice_valid, 1);
	assert_int_equal(stats.data_blocks_used, 1);
	expect_values(store, 0, (uint64_t[]){ 77, 77, 77 }, 3);
	close_and_check(store, device);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical_blocks_share),
		cmocka_unit_test(test_zeros_and_rollover),
		cmocka_unit_test(test_stale_advice),
		cmocka_unit_test(test_forced_collisions),
		cmocka_unit_test(test_overwrites_race_advice),
		cmocka_unit_test(test_embedded_index_in_the_volume),
		cmocka_unit_test(test_power_cuts_with_duplicates),
	};

	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, make_index_file, remove_index_file);
}
