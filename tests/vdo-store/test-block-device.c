// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the backing storage providers: the RAM device's durability model (flush, FUA,
 * preflush, the two kinds of power cut, torn sectors), its fault injection, and the file device
 * (io_uring) on a real file: every operation, many requests in flight, growth and bad requests.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block-device.h"
#include "errors.h"
#include "memory-alloc.h"
#include "test-harness.h"

static uint8_t *make_buffer(uint32_t blocks)
{
	uint8_t *buffer;

	assert_success(dd_allocate_aligned((size_t) blocks * VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
	                                   "test buffer", &buffer));
	return buffer;
}

static void fill(uint8_t *buffer, uint32_t blocks, uint8_t seed)
{
	for (size_t i = 0; i < (size_t) blocks * VDO_BLOCK_SIZE; i++)
		buffer[i] = (uint8_t) (seed + i * 7 + i / 4096);
}

static void write_blocks(struct block_device *device, uint64_t block, uint32_t count, uint8_t seed,
                         unsigned int flags)
{
	uint8_t *buffer = make_buffer(count);

	fill(buffer, count, seed);
	assert_success(vdo_sync_io(device, VDO_IO_WRITE, flags, block, count, buffer));
	dd_free(buffer);
}

/* Whether blocks [block, block + count) hold what write_blocks(seed) wrote. */
static bool holds(struct block_device *device, uint64_t block, uint32_t count, uint8_t seed)
{
	uint8_t *expected = make_buffer(count);
	uint8_t *actual = make_buffer(count);
	bool same;

	fill(expected, count, seed);
	assert_success(vdo_sync_io(device, VDO_IO_READ, 0, block, count, actual));
	same = (memcmp(expected, actual, (size_t) count * VDO_BLOCK_SIZE) == 0);
	dd_free(expected);
	dd_free(actual);
	return same;
}

static bool is_zero(struct block_device *device, uint64_t block)
{
	uint8_t *actual = make_buffer(1);
	bool zero = true;

	assert_success(vdo_sync_io(device, VDO_IO_READ, 0, block, 1, actual));
	for (int i = 0; i < VDO_BLOCK_SIZE; i++)
		zero = zero && (actual[i] == 0);
	dd_free(actual);
	return zero;
}

static struct block_device *crash(struct block_device *device, enum ram_crash_mode mode,
                                  uint64_t seed)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(device, mode, seed, &survivor));
	vdo_close_device(device);
	return survivor;
}

static void test_ram_flush_and_drop(void **state)
{
	struct block_device *device;

	(void) state;
	assert_success(vdo_make_ram_device(64, &device));
	assert_true(is_zero(device, 5));
	write_blocks(device, 0, 4, 1, 0);
	assert_success(vdo_sync_io(device, VDO_IO_FLUSH, 0, 0, 0, NULL));
	write_blocks(device, 0, 1, 2, 0);
	write_blocks(device, 10, 2, 3, 0);
	assert_true(holds(device, 0, 1, 2) && holds(device, 10, 2, 3));
	assert_int_equal(vdo_ram_device_unflushed(device), 3);
	device = crash(device, RAM_CRASH_DROP_ALL, 0);
	/* The flushed writes survive, the later ones are gone. */
	assert_true(holds(device, 0, 4, 1));
	assert_true(is_zero(device, 10) && is_zero(device, 11));
	assert_int_equal(vdo_ram_device_unflushed(device), 0);
	vdo_close_device(device);
}

static void test_ram_fua_and_preflush(void **state)
{
	struct block_device *device;

	(void) state;
	assert_success(vdo_make_ram_device(64, &device));
	write_blocks(device, 1, 1, 1, 0);
	write_blocks(device, 2, 1, 2, VDO_IO_FUA);
	device = crash(device, RAM_CRASH_DROP_ALL, 0);
	/* FUA covers only its own write. */
	assert_true(is_zero(device, 1) && holds(device, 2, 1, 2));
	write_blocks(device, 3, 1, 3, 0);
	write_blocks(device, 4, 1, 4, VDO_IO_PREFLUSH);
	device = crash(device, RAM_CRASH_DROP_ALL, 0);
	/* The preflush made the earlier write durable, but not the write it preceded. */
	assert_true(holds(device, 3, 1, 3) && is_zero(device, 4));
	write_blocks(device, 5, 1, 5, 0);
	write_blocks(device, 6, 1, 6, VDO_IO_PREFLUSH | VDO_IO_FUA);
	device = crash(device, RAM_CRASH_DROP_ALL, 0);
	assert_true(holds(device, 5, 1, 5) && holds(device, 6, 1, 6));
	vdo_close_device(device);
}

/* After a random crash each sector holds the durable sector or the same sector of a version. */
static void test_ram_random_crash(void **state)
{
	enum {
		BLOCKS = 32,
		VERSIONS = 3
	};
	uint8_t *versions[VERSIONS + 1];
	uint8_t *actual = make_buffer(BLOCKS);
	unsigned int whole[VERSIONS + 1] = { 0 };
	unsigned int torn = 0;

	(void) state;
	for (int v = 0; v <= VERSIONS; v++) {
		versions[v] = make_buffer(BLOCKS);
		fill(versions[v], BLOCKS, (uint8_t) (v * 40 + 1));
	}
	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct block_device *device;

		assert_success(vdo_make_ram_device(BLOCKS, &device));
		assert_success(
		    vdo_sync_io(device, VDO_IO_WRITE, VDO_IO_FUA, 0, BLOCKS, versions[0]));
		for (int v = 1; v <= VERSIONS; v++)
			assert_success(
			    vdo_sync_io(device, VDO_IO_WRITE, 0, 0, BLOCKS, versions[v]));
		device = crash(device, RAM_CRASH_RANDOM, seed);
		assert_success(vdo_sync_io(device, VDO_IO_READ, 0, 0, BLOCKS, actual));
		for (size_t b = 0; b < BLOCKS; b++) {
			size_t base = b * VDO_BLOCK_SIZE;
			int which = -1;

			for (int v = 0; v <= VERSIONS; v++) {
				if (memcmp(actual + base, versions[v] + base, VDO_BLOCK_SIZE) == 0)
					which = v;
			}
			if (which >= 0) {
				whole[which]++;
				continue;
			}
			torn++;
			for (size_t s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
				size_t at = base + s * VDO_SECTOR_SIZE;
				bool known = false;

				for (int v = 0; v <= VERSIONS; v++)
					known = known || (memcmp(actual + at, versions[v] + at,
					                         VDO_SECTOR_SIZE) == 0);
				assert_true(known);
			}
		}
		vdo_close_device(device);
	}
	/* Every outcome happens. */
	for (int v = 0; v <= VERSIONS; v++)
		assert_true(whole[v] > 0);
	assert_true(torn > 0);
	for (int v = 0; v <= VERSIONS; v++)
		dd_free(versions[v]);
	dd_free(actual);
}

static void test_ram_powered_off_faults_and_growth(void **state)
{
	struct block_device *device;
	struct block_device *survivor;
	uint8_t *buffer = make_buffer(2);
	uint8_t poke[3] = { 0xde, 0xad, 0xbe };

	(void) state;
	assert_success(vdo_make_ram_device(16, &device));
	write_blocks(device, 3, 1, 9, VDO_IO_FUA);
	assert_success(vdo_ram_device_crash(device, RAM_CRASH_DROP_ALL, 0, &survivor));
	/* The old device has no power: nothing more reaches the disk. */
	assert_int_equal(vdo_sync_io(device, VDO_IO_READ, 0, 3, 1, buffer), EIO);
	assert_int_equal(vdo_sync_io(device, VDO_IO_WRITE, VDO_IO_FUA, 3, 1, buffer), EIO);
	assert_int_equal(vdo_sync_io(device, VDO_IO_FLUSH, 0, 0, 0, NULL), EIO);
	vdo_close_device(device);
	assert_true(holds(survivor, 3, 1, 9));

	vdo_ram_device_fail(survivor, 4, 2);
	assert_int_equal(vdo_sync_io(survivor, VDO_IO_READ, 0, 3, 2, buffer), EIO);
	assert_int_equal(vdo_sync_io(survivor, VDO_IO_WRITE, 0, 5, 1, buffer), EIO);
	assert_success(vdo_sync_io(survivor, VDO_IO_READ, 0, 2, 2, buffer));
	vdo_ram_device_fail(survivor, 0, 0);
	assert_success(vdo_sync_io(survivor, VDO_IO_READ, 0, 3, 2, buffer));

	vdo_ram_device_poke(survivor, 3 * VDO_BLOCK_SIZE + VDO_BLOCK_SIZE - 1, poke, sizeof(poke));
	assert_success(vdo_sync_io(survivor, VDO_IO_READ, 0, 3, 2, buffer));
	assert_memory_equal(buffer + VDO_BLOCK_SIZE - 1, poke, sizeof(poke));

	assert_int_equal(vdo_sync_io(survivor, VDO_IO_READ, 0, 16, 1, buffer), DD_OUT_OF_RANGE);
	assert_success(vdo_ram_device_grow(survivor, 40));
	assert_int_equal(vdo_device_blocks(survivor), 16);
	assert_success(vdo_refresh_device_size(survivor));
	assert_int_equal(vdo_device_blocks(survivor), 40);
	assert_true(is_zero(survivor, 39));
	vdo_close_device(survivor);
	dd_free(buffer);
}

static void check_bad_requests(struct block_device *device)
{
	uint8_t *buffer = make_buffer(1);
	uint64_t blocks = vdo_device_blocks(device);
	struct block_device_stats stats;

	assert_int_equal(vdo_sync_io(device, VDO_IO_READ, 0, blocks, 1, buffer), DD_OUT_OF_RANGE);
	assert_int_equal(vdo_sync_io(device, VDO_IO_WRITE, 0, blocks - 1, 2, buffer),
	                 DD_OUT_OF_RANGE);
	assert_int_equal(vdo_sync_io(device, VDO_IO_READ, 0, 0, 0, buffer), DD_INVALID_ARGUMENT);
	assert_int_equal(vdo_sync_io(device, VDO_IO_READ, VDO_IO_FUA, 0, 1, buffer),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(vdo_sync_io(device, VDO_IO_WRITE, 0, 0, 1, NULL), DD_INVALID_ARGUMENT);
	assert_int_equal(vdo_sync_io(device, VDO_IO_FLUSH, VDO_IO_FUA, 0, 0, NULL),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(vdo_sync_io(device, (enum vdo_io_operation) 9, 0, 0, 1, buffer),
	                 DD_INVALID_ARGUMENT);
	vdo_get_device_stats(device, &stats);
	assert_true(stats.errors >= 7);
	dd_free(buffer);
}

static void test_ram_bad_requests(void **state)
{
	struct block_device *device;

	(void) state;
	assert_int_equal(vdo_make_ram_device(0, &device), DD_INVALID_ARGUMENT);
	assert_success(vdo_make_ram_device(8, &device));
	check_bad_requests(device);
	vdo_close_device(device);
}

static char *temporary_path(void)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/vdo-device-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return path;
}

static void test_file_device_operations(void **state)
{
	char *path = temporary_path();
	struct block_device *device;
	struct block_device_stats stats;

	(void) state;
	assert_success(vdo_open_file_device(path, 256, &device));
	assert_int_equal(vdo_device_blocks(device), 256);
	assert_true(is_zero(device, 255));
	write_blocks(device, 0, 8, 1, 0);
	write_blocks(device, 8, 1, 2, VDO_IO_FUA);
	write_blocks(device, 9, 3, 3, VDO_IO_PREFLUSH);
	write_blocks(device, 12, 1, 4, VDO_IO_PREFLUSH | VDO_IO_FUA);
	assert_success(vdo_sync_io(device, VDO_IO_FLUSH, 0, 0, 0, NULL));
	assert_true(holds(device, 0, 8, 1) && holds(device, 8, 1, 2));
	assert_true(holds(device, 9, 3, 3) && holds(device, 12, 1, 4));
	vdo_get_device_stats(device, &stats);
	assert_int_equal(stats.writes, 4);
	assert_int_equal(stats.blocks_written, 13);
	assert_int_equal(stats.flushes, 3);
	check_bad_requests(device);
	vdo_close_device(device);

	/* Reopened: the data is on the file. */
	assert_success(vdo_open_file_device(path, 0, &device));
	assert_true(holds(device, 9, 3, 3));
	assert_int_equal(truncate(path, 300 * VDO_BLOCK_SIZE), 0);
	assert_success(vdo_refresh_device_size(device));
	assert_int_equal(vdo_device_blocks(device), 300);
	assert_int_equal(truncate(path, 100 * VDO_BLOCK_SIZE), 0);
	assert_int_equal(vdo_refresh_device_size(device), DD_BAD_STATE);
	vdo_close_device(device);
	unlink(path);
}

struct flight {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	unsigned int outstanding;
	unsigned int failures;
};

static void flight_done(struct vdo_io *io)
{
	struct flight *flight = io->context;

	pthread_mutex_lock(&flight->mutex);
	flight->failures += (io->result != DD_SUCCESS);
	if (--flight->outstanding == 0)
		pthread_cond_signal(&flight->cond);
	pthread_mutex_unlock(&flight->mutex);
}

static void run_all(struct block_device *device, struct vdo_io *ios, unsigned int count,
                    struct flight *flight)
{
	flight->outstanding = count;
	for (unsigned int i = 0; i < count; i++)
		vdo_submit_io(device, &ios[i]);
	pthread_mutex_lock(&flight->mutex);
	while (flight->outstanding > 0)
		pthread_cond_wait(&flight->cond, &flight->mutex);
	pthread_mutex_unlock(&flight->mutex);
	assert_int_equal(flight->failures, 0);
}

static void test_file_device_many_in_flight(void **state)
{
	enum {
		COUNT = 1000
	};
	char *path = temporary_path();
	struct flight flight = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                 .cond = PTHREAD_COND_INITIALIZER };
	struct block_device *device;
	struct vdo_io *ios = calloc(COUNT, sizeof(*ios));
	uint8_t *buffers = make_buffer(COUNT);

	(void) state;
	assert_success(vdo_open_file_device(path, COUNT, &device));
	for (unsigned int i = 0; i < COUNT; i++) {
		fill(buffers + (size_t) i * VDO_BLOCK_SIZE, 1, (uint8_t) i);
		ios[i] = (struct vdo_io){ .operation = VDO_IO_WRITE,
			                  .flags = (i % 100 == 0) ? VDO_IO_PREFLUSH : 0,
			                  .block = i,
			                  .count = 1,
			                  .buffer = buffers + (size_t) i * VDO_BLOCK_SIZE,
			                  .done = flight_done,
			                  .context = &flight };
	}
	run_all(device, ios, COUNT, &flight);
	memset(buffers, 0, (size_t) COUNT * VDO_BLOCK_SIZE);
	for (unsigned int i = 0; i < COUNT; i++) {
		ios[i].operation = VDO_IO_READ;
		ios[i].flags = 0;
	}
	run_all(device, ios, COUNT, &flight);
	for (unsigned int i = 0; i < COUNT; i++)
		assert_true(holds(device, i, 1, (uint8_t) i));
	vdo_close_device(device);
	unlink(path);
	dd_free(buffers);
	free(ios);
}

static void test_file_device_open_errors(void **state)
{
	struct block_device *device;

	(void) state;
	assert_int_equal(vdo_open_file_device("/nonexistent/dir/file", 0, &device), ENOENT);
	assert_int_equal(vdo_open_file_device("/nonexistent-file", 0, &device), ENOENT);
	assert_int_not_equal(vdo_open_file_device("/tmp", 0, &device), DD_SUCCESS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram_flush_and_drop),
		cmocka_unit_test(test_ram_fua_and_preflush),
		cmocka_unit_test(test_ram_random_crash),
		cmocka_unit_test(test_ram_powered_off_faults_and_growth),
		cmocka_unit_test(test_ram_bad_requests),
		cmocka_unit_test(test_file_device_operations),
		cmocka_unit_test(test_file_device_many_in_flight),
		cmocka_unit_test(test_file_device_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
