// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the backing storage providers: the RAM device's durability model (flush, FUA,
 * preflush, the two kinds of power cut, torn sectors), its fault injection, and the file device
 * (io_uring) on a real file: every operation, many requests in flight, growth and bad requests,
 * and io_uring's own failures (submissions refused for now or for good, or taking only some
 * entries; a reaper that cannot wait), injected through vdo_set_file_device_ring_calls(). Those
 * check that each request is called back exactly once, never on the submitter's stack, and that
 * drain and close return.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/*
 * Failures of io_uring itself, injected through vdo_set_file_device_ring_calls(): a script says
 * what the next submissions do (refuse with an error, or let the kernel take only some of the
 * queued entries), and the reaper's next wait can be made to fail, at once or once it finds a
 * completion.
 */
struct fake_step {
	/* Refuse with this errno value, submitting nothing... */
	int error;
	/* ...or let the kernel take only this many of the queued entries. */
	unsigned int take;
};

enum {
	MAX_STEPS = 32,
	MAX_REQUESTS = 16,
	/* How long a test waits for requests before calling the device hung. */
	HANG_SECONDS = 15,
};

static struct {
	pthread_mutex_t mutex;
	struct fake_step script[MAX_STEPS];
	unsigned int length;
	unsigned int next;
	/* An errno value to fail the reaper's next wait with (0: none)... */
	int wait_error;
	/* ...at once, rather than when that wait finds a completion. */
	bool wait_at_once;
	/* A submission found at the head of the queue an entry marked IOSQE_IO_DRAIN. */
	bool drain_seen;
} fake = { .mutex = PTHREAD_MUTEX_INITIALIZER };

/* Script the next submissions: @length steps, then liburing's own again. */
static void fake_script(const struct fake_step *script, unsigned int length)
{
	pthread_mutex_lock(&fake.mutex);
	if (length > 0)
		memcpy(fake.script, script, length * sizeof(*script));
	fake.length = length;
	fake.next = 0;
	fake.drain_seen = false;
	pthread_mutex_unlock(&fake.mutex);
}

/* Whether every scripted step has been taken. */
static bool fake_script_done(void)
{
	bool done;

	pthread_mutex_lock(&fake.mutex);
	done = (fake.next == fake.length);
	pthread_mutex_unlock(&fake.mutex);
	return done;
}

/*
 * Let the kernel take only @count of the queued entries, as a kernel that stops early does:
 * publish them all, as io_uring_submit() would, but enter for @count. The rest stay queued.
 */
static int submit_some(struct io_uring *ring, unsigned int count)
{
	ring->sq.sqe_head = ring->sq.sqe_tail;
	io_uring_smp_store_release(ring->sq.ktail, ring->sq.sqe_tail);
	return io_uring_enter((unsigned int) ring->ring_fd, count, 0, 0, NULL);
}

/* Whether the entry at the head of the queue, published but not taken, is marked to drain. */
static bool head_drains(const struct io_uring *ring)
{
	unsigned int head = *ring->sq.khead;

	if (head == ring->sq.sqe_head)
		return false;
	return (ring->sq.sqes[ring->sq.array[head & ring->sq.ring_mask]].flags & IOSQE_IO_DRAIN) !=
	       0;
}

/* The file device's io_uring_submit(): the script's next step, or the real thing. */
static int fake_submit(struct io_uring *ring)
{
	struct fake_step step = { 0 };
	bool scripted;

	pthread_mutex_lock(&fake.mutex);
	scripted = (fake.next < fake.length);
	if (scripted)
		step = fake.script[fake.next++];
	fake.drain_seen = fake.drain_seen || head_drains(ring);
	pthread_mutex_unlock(&fake.mutex);
	if (!scripted)
		return io_uring_submit(ring);
	if (step.error != 0)
		return -step.error;
	return submit_some(ring, step.take);
}

/* Take the wait error, if it applies to a wait that @found a completion or not. */
static int take_wait_error(bool found)
{
	int error = 0;

	pthread_mutex_lock(&fake.mutex);
	if (found || fake.wait_at_once) {
		error = fake.wait_error;
		fake.wait_error = 0;
	}
	pthread_mutex_unlock(&fake.mutex);
	return error;
}

/* The reaper's wait: the real one, unless it is to fail. */
static int fake_wait(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                     struct __kernel_timespec *timeout)
{
	int error = take_wait_error(false);
	int result;

	if (error != 0)
		return -error;
	result = io_uring_wait_cqe_timeout(ring, cqe_ptr, timeout);
	error = take_wait_error(result == 0);
	return (error != 0) ? -error : result;
}

/* Make the reaper's next wait fail with @error: @at_once, or once it finds a completion. */
static void fake_fail_wait(int error, bool at_once)
{
	pthread_mutex_lock(&fake.mutex);
	fake.wait_error = error;
	fake.wait_at_once = at_once;
	pthread_mutex_unlock(&fake.mutex);
}

/* Whether this process may use io_uring (some sandboxes refuse it; the device then has none). */
static bool ring_allowed(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(8, &ring, 0) != 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

/* Open a file device of @blocks blocks at @path whose ring calls are the fakes. */
static struct block_device *open_faked_device(const char *path, uint64_t blocks)
{
	static const struct vdo_ring_calls fakes = { .submit = fake_submit, .wait = fake_wait };
	struct block_device *device;

	if (!ring_allowed()) {
		unlink(path);
		skip();
	}
	fake_script(NULL, 0);
	fake_fail_wait(0, false);
	vdo_set_file_device_ring_calls(&fakes);
	assert_success(vdo_open_file_device(path, blocks, &device));
	vdo_set_file_device_ring_calls(NULL);
	return device;
}

/* Requests whose done calls are counted one by one, with where they ran. */
struct tally {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	struct vdo_io ios[MAX_REQUESTS];
	unsigned int count;
	unsigned int calls[MAX_REQUESTS];
	unsigned int total;
	/* The test's thread, and how many done calls ran on it. */
	pthread_t test_thread;
	unsigned int on_test_thread;
	/* For a tally submitted by a done callback (see chain_done()). */
	struct block_device *device;
	const struct fake_step *script;
	unsigned int script_length;
	/* Then fail the reaper's next wait with this errno value (0: none). */
	int wait_error;
};

/* An empty tally, for requests submitted by this thread. */
static void init_tally(struct tally *tally)
{
	*tally = (struct tally){ .mutex = PTHREAD_MUTEX_INITIALIZER,
		                 .cond = PTHREAD_COND_INITIALIZER,
		                 .test_thread = pthread_self() };
}

/* The done callback of a tally's requests: count the call, and where it ran. */
static void tally_done(struct vdo_io *io)
{
	struct tally *tally = io->context;

	pthread_mutex_lock(&tally->mutex);
	tally->calls[io - tally->ios]++;
	tally->total++;
	if (pthread_equal(pthread_self(), tally->test_thread))
		tally->on_test_thread++;
	pthread_cond_broadcast(&tally->cond);
	pthread_mutex_unlock(&tally->mutex);
}

/* Add a request to @tally; a read or write of @count blocks gets a buffer (freed by clear). */
static void add_request(struct tally *tally, enum vdo_io_operation operation, unsigned int flags,
                        uint64_t block, uint32_t count)
{
	struct vdo_io *io = &tally->ios[tally->count++];

	*io = (struct vdo_io){ .operation = operation,
		               .flags = flags,
		               .block = block,
		               .count = count,
		               .done = tally_done,
		               .context = tally };
	if (operation != VDO_IO_FLUSH) {
		io->buffer = make_buffer(count);
		fill(io->buffer, count, (uint8_t) block);
	}
}

/* Submit every request of @tally to @device. */
static void submit_tally(struct block_device *device, struct tally *tally)
{
	for (unsigned int i = 0; i < tally->count; i++)
		vdo_submit_io(device, &tally->ios[i]);
}

/* Wait until every request of @tally has been called back; fail the test if that never comes. */
static void await_tally(struct tally *tally)
{
	struct timespec deadline;
	unsigned int total;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += HANG_SECONDS;
	pthread_mutex_lock(&tally->mutex);
	while ((tally->total < tally->count) &&
	       (pthread_cond_timedwait(&tally->cond, &tally->mutex, &deadline) == 0))
		;
	total = tally->total;
	pthread_mutex_unlock(&tally->mutex);
	if (total < tally->count)
		fail_msg("hung: %u of %u requests called back after %d s", total, tally->count,
		         HANG_SECONDS);
}

/*
 * Check that each request of @tally was called back exactly once and never on the test's own
 * stack, that the first @successes succeeded and the others failed with @error.
 */
static void check_tally(struct tally *tally, unsigned int successes, int error)
{
	unsigned int calls[MAX_REQUESTS];
	int results[MAX_REQUESTS];
	unsigned int total;
	unsigned int on_test_thread;

	pthread_mutex_lock(&tally->mutex);
	for (unsigned int i = 0; i < tally->count; i++) {
		calls[i] = tally->calls[i];
		results[i] = tally->ios[i].result;
	}
	total = tally->total;
	on_test_thread = tally->on_test_thread;
	pthread_mutex_unlock(&tally->mutex);
	for (unsigned int i = 0; i < tally->count; i++) {
		assert_int_equal(calls[i], 1);
		assert_int_equal(results[i], (i < successes) ? DD_SUCCESS : error);
	}
	assert_int_equal(total, tally->count);
	assert_int_equal(on_test_thread, 0);
}

/* Free what init_tally() and add_request() set up. */
static void clear_tally(struct tally *tally)
{
	for (unsigned int i = 0; i < tally->count; i++)
		dd_free(tally->ios[i].buffer);
	pthread_cond_destroy(&tally->cond);
	pthread_mutex_destroy(&tally->mutex);
}

/* A drain or a close done on a thread of its own, so that a test can tell when it hangs. */
struct finisher {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	struct block_device *device;
	bool closing;
	bool finished;
};

/* The thread of a finisher: drain or close, then say so. */
static void *finish_device(void *argument)
{
	struct finisher *finisher = argument;

	if (finisher->closing)
		vdo_close_device(finisher->device);
	else
		vdo_drain_device(finisher->device);
	pthread_mutex_lock(&finisher->mutex);
	finisher->finished = true;
	pthread_cond_signal(&finisher->cond);
	pthread_mutex_unlock(&finisher->mutex);
	return NULL;
}

/* Drain @device, or close it; fail the test if that does not return. */
static void finish_or_fail(struct block_device *device, bool closing)
{
	/* Left to a thread that hangs, if one does. */
	struct finisher *finisher = calloc(1, sizeof(*finisher));
	struct timespec deadline;
	pthread_t thread;
	bool finished;

	assert_non_null(finisher);
	*finisher = (struct finisher){ .mutex = PTHREAD_MUTEX_INITIALIZER,
		                       .cond = PTHREAD_COND_INITIALIZER,
		                       .device = device,
		                       .closing = closing };
	assert_int_equal(pthread_create(&thread, NULL, finish_device, finisher), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += HANG_SECONDS;
	pthread_mutex_lock(&finisher->mutex);
	while (!finisher->finished &&
	       (pthread_cond_timedwait(&finisher->cond, &finisher->mutex, &deadline) == 0))
		;
	finished = finisher->finished;
	pthread_mutex_unlock(&finisher->mutex);
	if (!finished)
		fail_msg("hung: the %s did not return after %d s", closing ? "close" : "drain",
		         HANG_SECONDS);
	assert_int_equal(pthread_join(thread, NULL), 0);
	pthread_cond_destroy(&finisher->cond);
	pthread_mutex_destroy(&finisher->mutex);
	free(finisher);
}

/* Run @tally, wait for it, drain, check it as check_tally() does, and clear it. */
static void run_tally(struct block_device *device, struct tally *tally, unsigned int successes,
                      int error)
{
	submit_tally(device, tally);
	await_tally(tally);
	check_tally(tally, successes, error);
	/* Whatever a second call back would do, it has done once the drain returns. */
	finish_or_fail(device, false);
	check_tally(tally, successes, error);
	clear_tally(tally);
}

/* A done callback that scripts the fakes, then submits the tally in its context. */
static void chain_done(struct vdo_io *io)
{
	struct tally *tally = io->context;

	fake_script(tally->script, tally->script_length);
	if (tally->wait_error != 0)
		fake_fail_wait(tally->wait_error, true);
	submit_tally(tally->device, tally);
}

/*
 * Submit @tally from the done callback of another request, that is on the reaper, with the
 * fakes following @script from there; wait for it and check it as run_tally() does.
 */
static void run_tally_from_reaper(struct block_device *device, struct tally *tally,
                                  const struct fake_step *script, unsigned int length,
                                  unsigned int successes, int error)
{
	uint8_t *buffer = make_buffer(1);
	struct vdo_io trigger = { .operation = VDO_IO_READ,
		                  .block = 0,
		                  .count = 1,
		                  .buffer = buffer,
		                  .done = chain_done,
		                  .context = tally };

	tally->device = device;
	tally->script = script;
	tally->script_length = length;
	vdo_submit_io(device, &trigger);
	await_tally(tally);
	check_tally(tally, successes, error);
	finish_or_fail(device, false);
	assert_int_equal(trigger.result, DD_SUCCESS);
	check_tally(tally, successes, error);
	clear_tally(tally);
	dd_free(buffer);
}

/* Whether blocks [@block, @block + @count) hold what add_request() wrote there. */
static bool holds_request(struct block_device *device, uint64_t block, uint32_t count)
{
	return holds(device, block, count, (uint8_t) block);
}

/* Transient refusals of a lone request are retried: nothing submitted later carries it along. */
static void test_file_device_transient_refusals(void **state)
{
	static const struct fake_step refusals[] = { { .error = EAGAIN },
		                                     { .error = EBUSY },
		                                     { .error = EAGAIN } };
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 1, 2);
	fake_script(refusals, 3);
	run_tally(device, &tally, 1, DD_SUCCESS);
	assert_true(fake_script_done());
	assert_true(holds_request(device, 1, 2));
	finish_or_fail(device, true);
	unlink(path);
}

/* The reaper, refused while it submits from a done callback, retries between completions. */
static void test_file_device_transient_refusals_on_reaper(void **state)
{
	struct fake_step refusals[12];
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	for (unsigned int i = 0; i < 12; i++)
		refusals[i] = (struct fake_step){ .error = (i % 2 == 0) ? EAGAIN : EBUSY };
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 4, 1);
	add_request(&tally, VDO_IO_WRITE, 0, 5, 3);
	add_request(&tally, VDO_IO_FLUSH, 0, 0, 0);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_FUA | VDO_IO_PREFLUSH, 8, 2);
	run_tally_from_reaper(device, &tally, refusals, 12, 4, DD_SUCCESS);
	assert_true(fake_script_done());
	assert_true(holds_request(device, 4, 1) && holds_request(device, 5, 3));
	assert_true(holds_request(device, 8, 2));
	finish_or_fail(device, true);
	unlink(path);
}

/*
 * The kernel takes the fsync of a preflush but not the write linked behind it: the write is
 * submitted next, marked to start only after what went before.
 */
static void test_file_device_short_submit_of_preflush(void **state)
{
	static const struct fake_step one_at_a_time[] = { { .take = 1 }, { .take = 1 } };
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;
	bool drain_seen;

	(void) state;
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH | VDO_IO_FUA, 10, 3);
	fake_script(one_at_a_time, 2);
	run_tally(device, &tally, 1, DD_SUCCESS);
	assert_true(fake_script_done());
	pthread_mutex_lock(&fake.mutex);
	drain_seen = fake.drain_seen;
	pthread_mutex_unlock(&fake.mutex);
	assert_true(drain_seen);
	assert_true(holds_request(device, 10, 3));
	finish_or_fail(device, true);
	unlink(path);
}

/* Several requests, the kernel taking one entry per submission: what it leaves goes next. */
static void test_file_device_short_submits(void **state)
{
	struct fake_step one_at_a_time[7];
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	for (unsigned int i = 0; i < 7; i++)
		one_at_a_time[i] = (struct fake_step){ .take = 1 };
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, 0, 20, 1);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 21, 2);
	add_request(&tally, VDO_IO_FLUSH, 0, 0, 0);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 23, 1);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_FUA, 24, 2);
	fake_script(one_at_a_time, 7);
	run_tally(device, &tally, 5, DD_SUCCESS);
	assert_true(fake_script_done());
	assert_true(holds_request(device, 20, 1) && holds_request(device, 21, 2));
	assert_true(holds_request(device, 23, 1) && holds_request(device, 24, 2));
	finish_or_fail(device, true);
	unlink(path);
}

/* A hard refusal of both halves of a preflush write fails it once; the device goes on. */
static void test_file_device_hard_refusal(void **state)
{
	static const struct fake_step refused[] = { { .error = EFAULT } };
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 2, 1);
	fake_script(refused, 1);
	run_tally(device, &tally, 0, EFAULT);
	assert_true(fake_script_done());
	assert_true(is_zero(device, 2));

	/* The refused entries went to the kernel as nops with the next submission. */
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 40, 4);
	add_request(&tally, VDO_IO_WRITE, 0, 44, 1);
	run_tally(device, &tally, 2, DD_SUCCESS);
	assert_true(holds_request(device, 40, 4) && holds_request(device, 44, 1));
	finish_or_fail(device, true);
	unlink(path);
}

/*
 * The reaper leaves what it submits from a done callback queued (refused for now); then the
 * kernel takes three entries (a preflush write, and the fsync of the next one) and refuses the
 * rest for good. Each request left out fails once; the write cut from its fsync fails once that
 * fsync is reaped.
 */
static void test_file_device_hard_refusal_on_reaper(void **state)
{
	struct fake_step script[MAX_REQUESTS + 2];
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;
	unsigned int length;

	(void) state;
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 30, 1);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 31, 1);
	add_request(&tally, VDO_IO_WRITE, 0, 32, 2);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH | VDO_IO_FUA, 34, 1);
	add_request(&tally, VDO_IO_READ, 0, 35, 1);
	add_request(&tally, VDO_IO_FLUSH, 0, 0, 0);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 36, 2);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_FUA, 38, 1);
	for (length = 0; length < tally.count; length++)
		script[length] = (struct fake_step){ .error = EAGAIN };
	script[length++] = (struct fake_step){ .take = 3 };
	script[length++] = (struct fake_step){ .error = EFAULT };
	run_tally_from_reaper(device, &tally, script, length, 1, EFAULT);
	assert_true(fake_script_done());
	assert_true(holds_request(device, 30, 1));
	assert_true(is_zero(device, 31) && is_zero(device, 32) && is_zero(device, 38));

	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 40, 4);
	run_tally(device, &tally, 1, DD_SUCCESS);
	assert_true(holds_request(device, 40, 4));
	finish_or_fail(device, true);
	unlink(path);
}

/* When the reaper cannot wait any more, everything fails promptly, and the device closes. */
static void test_file_device_reaper_failure(void **state)
{
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	write_blocks(device, 3, 1, 3, 0);
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 1, 2);
	add_request(&tally, VDO_IO_READ, 0, 3, 1);
	add_request(&tally, VDO_IO_FLUSH, 0, 0, 0);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_FUA, 6, 3);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH | VDO_IO_FUA, 9, 1);
	fake_fail_wait(EBADFD, false);
	run_tally(device, &tally, 0, EBADFD);

	/* Later requests fail as well, through the same done path. */
	init_tally(&tally);
	add_request(&tally, VDO_IO_READ, 0, 3, 1);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 12, 1);
	run_tally(device, &tally, 0, EBADFD);
	assert_false(vdo_drain_device(device));
	finish_or_fail(device, true);
	unlink(path);
}

/*
 * The reaper's wait fails while what it submitted from a done callback is still queued (refused
 * for now): those requests never reach the kernel, and fail all the same.
 */
static void test_file_device_reaper_failure_with_queued_entries(void **state)
{
	struct fake_step refusals[MAX_STEPS];
	char *path = temporary_path();
	struct block_device *device = open_faked_device(path, 64);
	struct tally tally;

	(void) state;
	for (unsigned int i = 0; i < MAX_STEPS; i++)
		refusals[i] = (struct fake_step){ .error = EAGAIN };
	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_PREFLUSH, 1, 1);
	add_request(&tally, VDO_IO_WRITE, 0, 2, 2);
	add_request(&tally, VDO_IO_FLUSH, 0, 0, 0);
	add_request(&tally, VDO_IO_READ, 0, 4, 1);
	tally.wait_error = EBADFD;
	run_tally_from_reaper(device, &tally, refusals, MAX_STEPS, 0, EBADFD);

	init_tally(&tally);
	add_request(&tally, VDO_IO_WRITE, VDO_IO_FUA, 5, 1);
	run_tally(device, &tally, 0, EBADFD);
	finish_or_fail(device, true);
	unlink(path);
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
		cmocka_unit_test(test_file_device_transient_refusals),
		cmocka_unit_test(test_file_device_transient_refusals_on_reaper),
		cmocka_unit_test(test_file_device_short_submit_of_preflush),
		cmocka_unit_test(test_file_device_short_submits),
		cmocka_unit_test(test_file_device_hard_refusal),
		cmocka_unit_test(test_file_device_hard_refusal_on_reaper),
		cmocka_unit_test(test_file_device_reaper_failure),
		cmocka_unit_test(test_file_device_reaper_failure_with_queued_entries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
