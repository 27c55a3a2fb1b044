// SPDX-License-Identifier: GPL-2.0-only
/*
 * End-to-end tests of the store on a RAM device: every kind of request, a randomized workload
 * checked against a model (writes, overwrites, zero blocks, partial writes, discards, flushes,
 * requests spanning blocks, many in flight), clean restarts, out of space, and power cuts at
 * random points: after recovery every write acknowledged before the last completed flush reads
 * back, and every other block holds one of the values written to it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "audit.h"
#include "block-device.h"
#include "block-map-page.h"
#include "block-map.h"
#include "errors.h"
#include "format.h"
#include "layout.h"
#include "memory-alloc.h"
#include "ref-counts.h"
#include "request-waiter.h"
#include "sector-check.h"
#include "super-block.h"
#include "test-harness.h"
#include "vdo-store.h"

enum {
	BLOCK = VDO_BLOCK_SIZE,
	DEVICE_BLOCKS = 16384,
};

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
	vdo_store_wait_for_idle(store);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.logical_blocks_used, 3);
	assert_int_equal(stats.data_blocks_used, 3);
	memset(data, 0, BLOCK);
	assert_success(
	    do_request(store, VDO_REQUEST_WRITE, VDO_REQUEST_FUA, 7 * BLOCK, BLOCK, data));
	assert_success(do_request(store, VDO_REQUEST_DISCARD, 0, 9 * BLOCK, BLOCK, NULL));
	assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL));
	vdo_store_wait_for_idle(store);
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

/* ---------------------------------------------------------------------------------------------
 * A model of the volume and random requests
 */

struct model {
	uint64_t blocks;
	uint8_t *data;
	/* Hashes each block may hold after a power cut. */
	uint64_t **candidates;
	uint32_t *candidate_counts;
	uint64_t seed;
};

static uint64_t next_random(struct model *model)
{
	uint64_t z = (model->seed += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t hash_block(const uint8_t *block)
{
	return XXH64(block, BLOCK, 0);
}

static void make_model(struct model *model, uint64_t blocks, uint64_t seed)
{
	*model = (struct model){ .blocks = blocks, .seed = seed };
	model->data = calloc(blocks, BLOCK);
	model->candidates = calloc(blocks, sizeof(*model->candidates));
	model->candidate_counts = calloc(blocks, sizeof(*model->candidate_counts));
	for (uint64_t b = 0; b < blocks; b++) {
		model->candidates[b] = malloc(sizeof(uint64_t));
		model->candidates[b][0] = hash_block(model->data + b * BLOCK);
		model->candidate_counts[b] = 1;
	}
}

static void free_model(struct model *model)
{
	for (uint64_t b = 0; b < model->blocks; b++)
		free(model->candidates[b]);
	free(model->candidates);
	free(model->candidate_counts);
	free(model->data);
}

/* The block's current value may be what a power cut leaves. */
static void add_candidate(struct model *model, uint64_t block)
{
	uint32_t *count = &model->candidate_counts[block];

	model->candidates[block] =
	    realloc(model->candidates[block], (*count + 1) * sizeof(uint64_t));
	model->candidates[block][(*count)++] = hash_block(model->data + block * BLOCK);
}

/* Everything in the model now is durable. */
static void model_flushed(struct model *model, uint64_t first, uint64_t count)
{
	for (uint64_t b = first; b < first + count; b++) {
		model->candidate_counts[b] = 1;
		model->candidates[b][0] = hash_block(model->data + b * BLOCK);
	}
}

/* One request in flight, with what a read must return. */
struct flight {
	struct vdo_request request;
	uint8_t *buffer;
	uint8_t *expected;
	struct flights *owner;
	bool done;
};

struct flights {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	unsigned int outstanding;
	unsigned int mismatches;
	unsigned int errors;
	bool expect_errors;
};

static void flight_done(struct vdo_request *request)
{
	struct flight *flight = request->context;
	struct flights *flights = flight->owner;

	pthread_mutex_lock(&flights->mutex);
	if (request->result != DD_SUCCESS)
		flights->errors++;
	else if ((request->operation == VDO_REQUEST_READ) &&
	         (memcmp(flight->buffer, flight->expected, request->length) != 0))
		flights->mismatches++;
	flight->done = true;
	flights->outstanding--;
	pthread_cond_broadcast(&flights->cond);
	pthread_mutex_unlock(&flights->mutex);
}

static void wait_all(struct flights *flights)
{
	pthread_mutex_lock(&flights->mutex);
	while (flights->outstanding > 0)
		pthread_cond_wait(&flights->cond, &flights->mutex);
	pthread_mutex_unlock(&flights->mutex);
}

/* Make a random request (not a flush), apply it to the model, and start it. */
static void start_random(struct vdo_store *store, struct model *model, struct flight *flight,
                         struct flights *flights)
{
	uint64_t choice = next_random(model) % 100;
	uint64_t first = next_random(model) % model->blocks;
	uint64_t count = 1 + next_random(model) % 3;
	uint64_t offset;
	uint64_t length;
	enum vdo_request_operation operation;
	unsigned int flags = 0;

	if (first + count > model->blocks)
		count = model->blocks - first;
	offset = first * BLOCK;
	length = count * BLOCK;
	if (choice < 15) {
		/* A partial write or discard: a run of sectors within the blocks. */
		uint64_t sectors = count * (BLOCK / 512);
		uint64_t start = next_random(model) % sectors;
		uint64_t run = 1 + next_random(model) % (sectors - start);

		offset += start * 512;
		length = run * 512;
	}
	if (choice < 40)
		operation = VDO_REQUEST_WRITE;
	else if (choice < 50)
		operation = VDO_REQUEST_DISCARD;
	else
		operation = VDO_REQUEST_READ;
	if ((operation == VDO_REQUEST_WRITE) && (next_random(model) % 10 == 0))
		flags = VDO_REQUEST_FUA;
	if (operation == VDO_REQUEST_WRITE) {
		bool zeros = (next_random(model) % 8 == 0);

		for (uint64_t i = 0; i < length; i += 8)
			memcpy(flight->buffer + i, &(uint64_t){ zeros ? 0 : next_random(model) },
			       8);
		memcpy(model->data + offset, flight->buffer, length);
	} else if (operation == VDO_REQUEST_DISCARD) {
		memset(model->data + offset, 0, length);
	} else {
		memcpy(flight->expected, model->data + offset, length);
	}
	if (operation != VDO_REQUEST_READ) {
		for (uint64_t b = offset / BLOCK; b <= (offset + length - 1) / BLOCK; b++)
			add_candidate(model, b);
	}
	flight->request = (struct vdo_request){ .operation = operation,
		                                .flags = flags,
		                                .offset = offset,
		                                .length = length,
		                                .buffer = flight->buffer,
		                                .callback = flight_done,
		                                .context = flight };
	flight->owner = flights;
	flight->done = false;
	pthread_mutex_lock(&flights->mutex);
	flights->outstanding++;
	pthread_mutex_unlock(&flights->mutex);
	vdo_store_submit(store, &flight->request);
}

/* Run @count random requests, @window at a time; flush now and then. */
static void run_random(struct vdo_store *store, struct model *model, unsigned int count,
                       unsigned int window, struct flights *flights)
{
	struct flight *slots = calloc(window, sizeof(*slots));

	for (unsigned int w = 0; w < window; w++) {
		slots[w].buffer = malloc(4 * BLOCK);
		slots[w].expected = malloc(4 * BLOCK);
		slots[w].done = true;
	}
	for (unsigned int n = 0; n < count; n++) {
		struct flight *flight = &slots[n % window];

		pthread_mutex_lock(&flights->mutex);
		while (!flight->done)
			pthread_cond_wait(&flights->cond, &flights->mutex);
		pthread_mutex_unlock(&flights->mutex);
		if (next_random(model) % 50 == 0) {
			wait_all(flights);
			if (do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL) == DD_SUCCESS)
				model_flushed(model, 0, model->blocks);
		}
		start_random(store, model, flight, flights);
	}
	wait_all(flights);
	for (unsigned int w = 0; w < window; w++) {
		free(slots[w].buffer);
		free(slots[w].expected);
	}
	free(slots);
}

/* Every block reads as the model says. */
static void check_volume(struct vdo_store *store, const struct model *model)
{
	uint8_t *out = malloc(64 * BLOCK);

	for (uint64_t b = 0; b < model->blocks; b += 64) {
		uint64_t count = (model->blocks - b < 64) ? model->blocks - b : 64;

		assert_success(
		    do_request(store, VDO_REQUEST_READ, 0, b * BLOCK, count * BLOCK, out));
		for (uint64_t i = 0; i < count; i++) {
			if (memcmp(out + i * BLOCK, model->data + (b + i) * BLOCK, BLOCK) != 0)
				fail_msg("block %llu differs from the model",
				         (unsigned long long) (b + i));
		}
	}
	free(out);
}

/* Mapped blocks (non-zero ones) and blocks in use agree: nothing leaked, nothing shared. */
static void check_accounting(struct vdo_store *store, const struct model *model)
{
	struct vdo_store_stats stats;
	uint64_t nonzero = 0;

	for (uint64_t b = 0; b < model->blocks; b++) {
		const uint8_t *block = model->data + b * BLOCK;

		for (int i = 0; i < BLOCK; i++) {
			if (block[i] != 0) {
				nonzero++;
				break;
			}
		}
	}
	vdo_store_wait_for_idle(store);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.logical_blocks_used, nonzero);
	assert_int_equal(stats.data_blocks_used, nonzero);
}

static void test_random_workload(void **state)
{
	enum {
		LOGICAL = 3000
	};

	(void) state;
	for (unsigned int zones = 1; zones <= 2; zones++) {
		struct block_device *device = formatted_device(DEVICE_BLOCKS, LOGICAL);
		struct vdo_store *store = open_store(device, zones);
		struct flights flights = { .mutex = PTHREAD_MUTEX_INITIALIZER,
			                   .cond = PTHREAD_COND_INITIALIZER };
		struct model model;

		make_model(&model, LOGICAL, 17 + zones);
		run_random(store, &model, 20000, 64, &flights);
		assert_int_equal(flights.errors, 0);
		assert_int_equal(flights.mismatches, 0);
		check_volume(store, &model);
		check_accounting(store, &model);
		assert_success(vdo_store_close(store));
		store = open_store(device, 3 - zones);
		check_volume(store, &model);
		check_accounting(store, &model);
		assert_success(vdo_store_close(store));
		vdo_close_device(device);
		free_model(&model);
	}
}

static void test_out_of_space(void **state)
{
	/* Far more logical blocks than data blocks. */
	struct block_device *device = formatted_device(4096, 1 << 20);
	struct vdo_store *store = open_store(device, 1);
	uint8_t *data = malloc(BLOCK);
	uint64_t written = 0;
	int result = DD_SUCCESS;

	(void) state;
	for (uint64_t b = 0; result == DD_SUCCESS; b++) {
		fill_block(data, b + 1);
		result = do_request(store, VDO_REQUEST_WRITE, 0, b * BLOCK, BLOCK, data);
		written += (result == DD_SUCCESS);
	}
	assert_int_equal(result, ENOSPC);
	assert_true(written > 3000);
	/* Zero writes and discards still work, and free room. */
	memset(data, 0, BLOCK);
	assert_success(do_request(store, VDO_REQUEST_WRITE, 0, 0, BLOCK, data));
	assert_success(do_request(store, VDO_REQUEST_DISCARD, 0, BLOCK, BLOCK, NULL));
	/* The blocks are free once the requests have finished, a little after their callbacks. */
	vdo_store_wait_for_idle(store);
	fill_block(data, 7);
	assert_success(do_request(store, VDO_REQUEST_WRITE, 0, (written + 5) * BLOCK, BLOCK, data));
	assert_success(vdo_store_close(store));
	vdo_close_device(device);
	free(data);
}

/* The stopped volume on @device passes vdo-store check. */
static void expect_clean_audit(struct block_device *device)
{
	struct vdo_audit_report report;

	assert_success(vdo_check_volume(device, stderr, &report));
	assert_int_equal(vdo_audit_problems(&report), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Power cuts
 */

/* Close @store, open the volume again: it holds what the model says, and passes check. */
static void close_and_verify(struct vdo_store *store, struct block_device *device,
                             const struct model *model)
{
	assert_success(vdo_store_close(store));
	store = open_store(device, 1);
	check_volume(store, model);
	check_accounting(store, model);
	assert_success(vdo_store_close(store));
	expect_clean_audit(device);
}

static void check_candidates(struct vdo_store *store, const struct model *model)
{
	uint8_t *out = malloc(BLOCK);

	for (uint64_t b = 0; b < model->blocks; b++) {
		uint64_t hash;
		bool found = false;

		assert_success(do_request(store, VDO_REQUEST_READ, 0, b * BLOCK, BLOCK, out));
		hash = hash_block(out);
		for (uint32_t c = 0; c < model->candidate_counts[b]; c++)
			found = found || (model->candidates[b][c] == hash);
		if (!found)
			fail_msg(
			    "block %llu holds a value never written to it, or lost a flushed one",
			    (unsigned long long) b);
	}
	free(out);
}

/* Make the model what the volume holds now (after a recovery, as the new baseline). */
static void adopt_volume(struct vdo_store *store, struct model *model)
{
	for (uint64_t b = 0; b < model->blocks; b++)
		assert_success(do_request(store, VDO_REQUEST_READ, 0, b * BLOCK, BLOCK,
		                          model->data + b * BLOCK));
	model_flushed(model, 0, model->blocks);
}

static void test_power_cuts(void **state)
{
	enum {
		LOGICAL = 2000
	};

	/* POWER_CUT_SEEDS=first,last runs other seeds (for stress runs). */
	uint64_t first = 1;
	uint64_t last = 10;

	(void) state;
	if (getenv("POWER_CUT_SEEDS") != NULL)
		assert_int_equal(
		    sscanf(getenv("POWER_CUT_SEEDS"), "%" SCNu64 ",%" SCNu64, &first, &last), 2);
	for (uint64_t seed = first; seed <= last; seed++) {
		struct block_device *device = formatted_device(DEVICE_BLOCKS, LOGICAL);
		struct vdo_store *store = open_store(device, 1 + seed % 2);
		struct flights flights = { .mutex = PTHREAD_MUTEX_INITIALIZER,
			                   .cond = PTHREAD_COND_INITIALIZER };
		struct block_device *survivor;
		struct model model;
		struct vdo_store_stats stats;

		make_model(&model, LOGICAL, seed * 7919);
		/* Two cuts in a row, the second one after a recovery. */
		for (int cut = 0; cut < 2; cut++) {
			print_message("power cut seed %llu cut %d\n", (unsigned long long) seed,
			              cut);
			run_random(store, &model, 1500 + 300 * (unsigned int) seed, 32, &flights);
			assert_int_equal(flights.mismatches, 0);
			assert_success(vdo_ram_device_crash(
			    device, (seed % 3 == 0) ? RAM_CRASH_DROP_ALL : RAM_CRASH_RANDOM,
			    seed * 31 + (uint64_t) cut, &survivor));
			/* The old store finds no power; it must still go away. */
			(void) vdo_store_close(store);
			vdo_close_device(device);
			device = survivor;
			store = open_store(device, 1 + (seed + (uint64_t) cut) % 2);
			vdo_store_get_stats(store, &stats);
			assert_int_equal(stats.recovery_count, (uint32_t) cut + 1);
			assert_false(stats.read_only);
			check_candidates(store, &model);
			adopt_volume(store, &model);
			check_accounting(store, &model);
		}
		/* And it goes on working. */
		run_random(store, &model, 1000, 16, &flights);
		assert_int_equal(flights.mismatches, 0);
		assert_int_equal(flights.errors, 0);
		close_and_verify(store, device, &model);
		vdo_close_device(device);
		free_model(&model);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Background recovery
 */

/* Write every block of the model with fresh data, @window at a time, then flush. */
static void write_everything(struct vdo_store *store, struct model *model, uint64_t tag)
{
	uint8_t *data = malloc(BLOCK);

	for (uint64_t b = 0; b < model->blocks; b++) {
		fill_block(data, tag + b);
		memcpy(model->data + b * BLOCK, data, BLOCK);
		assert_success(do_request(store, VDO_REQUEST_WRITE, 0, b * BLOCK, BLOCK, data));
	}
	assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL));
	model_flushed(model, 0, model->blocks);
	free(data);
}

/* Cut the power after everything written was flushed; open again with @config. */
static struct vdo_store *crash_and_open(struct vdo_store *store, struct block_device **device,
                                        enum ram_crash_mode mode,
                                        const struct vdo_store_config *config)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(*device, mode, 7, &survivor));
	(void) vdo_store_close(store);
	vdo_close_device(*device);
	*device = survivor;
	assert_success(vdo_store_open(*device, config, &store));
	return store;
}

/*
 * After a crash the volume opens before the slabs the journal touched are recovered: reads and
 * writes go on while they come back (writes that free blocks of such a slab wait for it), and
 * a crash before they are all back recovers again from the same journal.
 */
static void test_background_recovery(void **state)
{
	enum {
		LOGICAL = 6000
	};
	struct vdo_store_config slow = { .logical_zones = 2,
		                         .physical_zones = 2,
		                         .block_map_cache_pages = 64,
		                         .recovery_pause_ms = 1000 };
	struct vdo_store_config normal = { .logical_zones = 1,
		                           .physical_zones = 2,
		                           .block_map_cache_pages = 64 };
	struct block_device *device = formatted_device(DEVICE_BLOCKS, LOGICAL);
	struct vdo_store *store = open_store(device, 2);
	struct flights flights = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                   .cond = PTHREAD_COND_INITIALIZER };
	struct vdo_store_stats stats;
	struct model model;

	(void) state;
	make_model(&model, LOGICAL, 4242);
	/* Every block, twice: the second pass frees blocks in every slab the first one used. */
	write_everything(store, &model, 1);
	write_everything(store, &model, 100000);
	store = crash_and_open(store, &device, RAM_CRASH_DROP_ALL, &slow);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.recovery_count, 1);
	assert_true(stats.recovery_entries > 0);
	assert_true(stats.slabs_recovering > 0);
	assert_string_equal(stats.operating_mode, "recovering");
	/* Reads need no slab; overwrites wait for the slabs of the blocks they free. */
	check_candidates(store, &model);
	run_random(store, &model, 1500, 32, &flights);
	assert_int_equal(flights.errors, 0);
	assert_int_equal(flights.mismatches, 0);
	assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL));
	model_flushed(&model, 0, model.blocks);
	vdo_store_get_stats(store, &stats);
	print_message("slabs still recovering at the second crash: %llu\n",
	              (unsigned long long) stats.slabs_recovering);
	/* A second crash, most likely before background recovery is over. */
	store = crash_and_open(store, &device, RAM_CRASH_RANDOM, &normal);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.recovery_count, 2);
	check_candidates(store, &model);
	adopt_volume(store, &model);
	check_accounting(store, &model);
	run_random(store, &model, 1000, 16, &flights);
	assert_int_equal(flights.errors, 0);
	close_and_verify(store, device, &model);
	vdo_close_device(device);
	free_model(&model);
}

/*
 * Cut the power under an open @store and close it with @delays on the dead disk: close must
 * fail, and *@device becomes the disk as the next boot finds it.
 */
static void close_on_dead_disk(struct vdo_store *store, struct block_device **device,
                               struct ram_device_delays delays)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(*device, RAM_CRASH_DROP_ALL, 11, &survivor));
	vdo_ram_device_set_delays(*device, delays);
	assert_int_not_equal(vdo_store_close(store), DD_SUCCESS);
	vdo_close_device(*device);
	*device = survivor;
}

/*
 * Close after the disk dies under the store: every request fails, late, as a dying disk's do.
 * Close must wait for every zone thread to finish what it holds, error handlers included,
 * before it frees anything, return the error, and leave the volume for recovery, never marked
 * clean. Each round but the first opens a volume that is still recovering slabs in the
 * background, so that close rushes them through on the dead disk: their failures give back
 * the journal's blocks, whose reaping then fails too, all while close is already waiting. The
 * drain delay makes the closing thread look at the device only after those last requests
 * have come back, so that a close that learns of outstanding work from the device alone frees
 * the journal under its failing thread (ThreadSanitizer and AddressSanitizer tell).
 */
static void test_close_after_the_disk_dies(void **state)
{
	struct vdo_store_config config = { .logical_zones = 2,
		                           .physical_zones = 2,
		                           .block_map_cache_pages = 64,
		                           .recovery_pause_ms = 100 };
	struct ram_device_delays delays = { .error_ns = 2 * 1000 * 1000,
		                            .drain_ns = 50 * 1000 * 1000 };
	struct block_device *device = formatted_device(DEVICE_BLOCKS, 4000);
	struct vdo_store *store;
	struct vdo_store_stats stats;
	uint8_t *data;

	(void) state;
	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "data", &data));
	for (unsigned int round = 0; round < 3; round++) {
		/* Writes all over, then a crash: the next open has slabs to recover. */
		assert_success(vdo_store_open(device, &config, &store));
		for (uint64_t b = 0; b < 4000; b += 5) {
			fill_block(data, b + round);
			assert_success(
			    do_request(store, VDO_REQUEST_WRITE, 0, b * BLOCK, BLOCK, data));
		}
		store = crash_and_open(store, &device, RAM_CRASH_DROP_ALL, &config);
		vdo_store_get_stats(store, &stats);
		assert_int_equal(stats.recovery_count, 2 * round + 1);
		assert_true(stats.slabs_recovering > 0);
		/* The disk dies while the slabs are still coming back. */
		close_on_dead_disk(store, &device, delays);
		/* It was not marked clean: this open recovers. */
		assert_success(vdo_store_open(device, &config, &store));
		vdo_store_get_stats(store, &stats);
		assert_int_equal(stats.recovery_count, 2 * round + 2);
		assert_success(vdo_store_close(store));
	}
	expect_clean_audit(device);
	vdo_close_device(device);
	dd_free(data);
}

/*
 * A zone whose slabs with room are all still recovering makes allocations wait for the next
 * one to come back, rather than fail for want of space.
 */
static void test_allocation_waits_for_recovery(void **state)
{
	struct vdo_store_config slow = { .logical_zones = 1,
		                         .physical_zones = 1,
		                         .block_map_cache_pages = 64,
		                         .recovery_pause_ms = 100 };
	struct block_device *device = formatted_device(DEVICE_BLOCKS, 1 << 20);
	struct vdo_store *store = open_store(device, 1);
	struct vdo_store_stats stats;
	struct model model;
	uint8_t *data = malloc(BLOCK);
	uint64_t data_blocks;
	uint64_t more;

	(void) state;
	vdo_store_get_stats(store, &stats);
	data_blocks = stats.free_blocks;
	/* Nearly full, then free one block in every slab: every slab is touched. */
	make_model(&model, data_blocks - 200, 77);
	write_everything(store, &model, 1);
	for (uint64_t b = 0; b < model.blocks; b += 500) {
		memset(model.data + b * BLOCK, 0, BLOCK);
		assert_success(do_request(store, VDO_REQUEST_DISCARD, 0, b * BLOCK, BLOCK, NULL));
	}
	assert_success(do_request(store, VDO_REQUEST_FLUSH, 0, 0, 0, NULL));
	model_flushed(&model, 0, model.blocks);
	store = crash_and_open(store, &device, RAM_CRASH_DROP_ALL, &slow);
	vdo_store_get_stats(store, &stats);
	assert_true(stats.slabs_recovered_before_online >= 1);
	assert_true(stats.slabs_recovering > 1);
	/* Write until the volume is full: far more than the slab recovered first has room for,
	 * long before background recovery is over. */
	for (more = 0;; more++) {
		fill_block(data, 900000 + more);
		if (do_request(store, VDO_REQUEST_WRITE, 0, (model.blocks + more) * BLOCK, BLOCK,
		               data) != DD_SUCCESS)
			break;
	}
	vdo_store_wait_for_idle(store);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.slabs_recovering, 0);
	/* Full only when it is: at most a data block and a tree page short. */
	assert_true(stats.free_blocks <= 1);
	assert_true(more > 30);
	assert_success(vdo_store_close(store));
	expect_clean_audit(device);
	vdo_close_device(device);
	free_model(&model);
	free(data);
}

/* ---------------------------------------------------------------------------------------------
 * Damage, check and read-only rebuild
 */

/* The PBN of the leaf page holding @lbn, walking the trees on disk (0 if there is none). */
static vdo_pbn_t leaf_of(struct block_device *device, vdo_lbn_t lbn)
{
	struct vdo_super_block super;
	uint16_t slots[VDO_BLOCK_MAP_TREE_HEIGHT];
	uint8_t *page = malloc(BLOCK);
	vdo_pbn_t pbn;

	assert_success(vdo_load_super_block(device, &super));
	pbn = super.layout.root_origin + vdo_map_tree_path(lbn, slots);
	for (unsigned int level = VDO_BLOCK_MAP_TREE_HEIGHT - 1; (level > 0) && (pbn != 0);
	     level--) {
		assert_success(vdo_sync_io(device, VDO_IO_READ, 0, pbn, 1, page));
		pbn = vdo_get_block_map_entry(page, slots[level]).pbn;
	}
	free(page);
	return pbn;
}

/* A volume with @blocks blocks written (block b holds fill_block(b + 1)), closed. */
static struct block_device *written_volume(uint64_t blocks)
{
	struct block_device *device = formatted_device(DEVICE_BLOCKS, 1 << 16);
	struct vdo_store *store = open_store(device, 1);
	uint8_t *data = malloc(BLOCK);

	for (uint64_t b = 0; b < blocks; b++) {
		fill_block(data, b + 1);
		assert_success(do_request(store, VDO_REQUEST_WRITE, 0, b * 7 * BLOCK, BLOCK, data));
	}
	assert_success(vdo_store_close(store));
	free(data);
	return device;
}

static void expect_blocks(struct block_device *device, uint64_t blocks, vdo_pbn_t lost_leaf)
{
	struct vdo_store *store = open_store(device, 1);
	uint8_t *data = malloc(BLOCK);
	uint8_t *out = malloc(BLOCK);

	for (uint64_t b = 0; b < blocks; b++) {
		bool lost = (lost_leaf != 0) && (leaf_of(device, b * 7) == 0);

		fill_block(data, b + 1);
		if (lost)
			memset(data, 0, BLOCK);
		assert_success(do_request(store, VDO_REQUEST_READ, 0, b * 7 * BLOCK, BLOCK, out));
		assert_memory_equal(out, data, BLOCK);
	}
	/* Writable again. */
	assert_success(do_request(store, VDO_REQUEST_WRITE, 0, 5 * BLOCK, BLOCK, data));
	assert_success(vdo_store_close(store));
	free(data);
	free(out);
}

/* Change one count in the first reference count block, keeping the block well formed. */
static void miscount(struct block_device *device)
{
	struct vdo_super_block super;
	uint8_t *block;
	vdo_pbn_t pbn;

	assert_success(vdo_load_super_block(device, &super));
	pbn = vdo_slab_origin(&super.layout, 0) + super.layout.slab_data_blocks;
	assert_success(dd_allocate_aligned(BLOCK, BLOCK, "block", &block));
	assert_success(vdo_sync_io(device, VDO_IO_READ, 0, pbn, 1, block));
	/* Count of data block 3 of slab 0: sector 0, after its two 7-byte points. */
	block[14 + 3] += 2;
	vdo_seal_sectors(block, super.nonce, pbn);
	assert_success(vdo_sync_io(device, VDO_IO_WRITE, VDO_IO_FUA, pbn, 1, block));
	dd_free(block);
}

static void test_check_finds_a_miscount(void **state)
{
	struct block_device *device = written_volume(400);
	struct vdo_audit_report report;

	(void) state;
	assert_success(vdo_check_volume(device, NULL, &report));
	assert_int_equal(vdo_audit_problems(&report), 0);
	assert_int_equal(report.mapped_blocks, 400);
	assert_true(report.tree_pages >= 4);
	miscount(device);
	assert_success(vdo_check_volume(device, NULL, &report));
	assert_int_equal(report.leaked_blocks, 1);
	assert_int_equal(vdo_audit_problems(&report), 1);
	assert_success(vdo_rebuild_volume(device, &report));
	expect_clean_audit(device);
	expect_blocks(device, 400, 0);
	vdo_close_device(device);
}

static void test_damaged_counts_go_read_only(void **state)
{
	struct block_device *device = written_volume(300);
	struct vdo_super_block super;
	struct vdo_audit_report report;
	struct vdo_store *store;
	struct vdo_store_stats stats;
	uint8_t junk[64];
	uint8_t *out = malloc(BLOCK);
	uint8_t *data = malloc(BLOCK);

	(void) state;
	memset(junk, 0x5a, sizeof(junk));
	assert_success(vdo_load_super_block(device, &super));
	vdo_ram_device_poke(
	    device,
	    (vdo_slab_origin(&super.layout, 0) + super.layout.slab_data_blocks) * BLOCK + 100, junk,
	    sizeof(junk));
	/* It opens read-only: reads work, writes are refused. */
	store = open_store(device, 1);
	assert_true(vdo_store_is_read_only(store));
	fill_block(data, 11);
	assert_success(do_request(store, VDO_REQUEST_READ, 0, 10 * 7 * BLOCK, BLOCK, out));
	assert_memory_equal(out, data, BLOCK);
	assert_int_equal(do_request(store, VDO_REQUEST_WRITE, 0, 0, BLOCK, data), DD_READ_ONLY);
	assert_int_equal(vdo_store_close(store), DD_READ_ONLY);
	/* It stays so across restarts, until a read-only rebuild. */
	store = open_store(device, 1);
	assert_true(vdo_store_is_read_only(store));
	assert_int_equal(vdo_store_close(store), DD_READ_ONLY);
	assert_success(vdo_rebuild_volume(device, &report));
	assert_int_equal(report.mapped_blocks, 300);
	expect_clean_audit(device);
	expect_blocks(device, 300, 0);
	store = open_store(device, 1);
	vdo_store_get_stats(store, &stats);
	assert_int_equal(stats.read_only_rebuild_count, 1);
	assert_false(stats.read_only);
	assert_success(vdo_store_close(store));
	vdo_close_device(device);
	free(out);
	free(data);
}

static void test_damaged_leaf(void **state)
{
	struct block_device *device = written_volume(300);
	struct vdo_audit_report report;
	struct vdo_store *store;
	uint8_t junk[64];
	uint8_t *out = malloc(BLOCK);
	vdo_pbn_t leaf = leaf_of(device, 7 * 200);

	(void) state;
	assert_int_not_equal(leaf, 0);
	memset(junk, 0xa5, sizeof(junk));
	vdo_ram_device_poke(device, leaf * BLOCK + 1000, junk, sizeof(junk));
	/* Reading under the damaged leaf fails and stops writes. */
	store = open_store(device, 1);
	assert_int_equal(do_request(store, VDO_REQUEST_READ, 0, 7 * 200 * BLOCK, BLOCK, out),
	                 DD_CORRUPT_DATA);
	assert_true(vdo_store_is_read_only(store));
	assert_int_equal(vdo_store_close(store), DD_READ_ONLY);
	assert_success(vdo_check_volume(device, NULL, &report));
	assert_int_equal(report.bad_pages, 1);
	/* The rebuild drops the leaf: its blocks read as zeros, all others are kept. */
	assert_success(vdo_rebuild_volume(device, &report));
	assert_int_equal(report.bad_pages, 1);
	assert_true(report.mapped_blocks < 300);
	expect_clean_audit(device);
	expect_blocks(device, 300, leaf);
	vdo_close_device(device);
	free(out);
}

static void test_growth(void **state)
{
	struct block_device *device = formatted_device(4096, 4000);
	struct vdo_store *store = open_store(device, 2);
	struct vdo_store_stats before;
	struct vdo_store_stats after;
	uint8_t *data = malloc(BLOCK);
	uint8_t *out = malloc(BLOCK);
	uint64_t written = 0;

	(void) state;
	/* Fill the volume. */
	for (uint64_t b = 0; b < 4000; b++) {
		fill_block(data, b + 1);
		if (do_request(store, VDO_REQUEST_WRITE, 0, b * BLOCK, BLOCK, data) != DD_SUCCESS)
			break;
		written++;
	}
	assert_true(written < 4000);
	vdo_store_wait_for_idle(store);
	vdo_store_get_stats(store, &before);
	/* More storage, then a larger volume. */
	assert_success(vdo_ram_device_grow(device, 8192));
	assert_success(vdo_store_grow_physical(store));
	assert_int_equal(vdo_store_grow_logical(store, 4000), DD_INVALID_ARGUMENT);
	assert_success(vdo_store_grow_logical(store, 6000));
	vdo_store_get_stats(store, &after);
	assert_int_equal(after.physical_blocks, 8192);
	assert_int_equal(after.logical_blocks, 6000);
	assert_true(after.free_blocks > before.free_blocks + 3000);
	assert_int_equal(vdo_store_logical_bytes(store), 6000 * BLOCK);
	for (uint64_t b = written; b < 6000; b++) {
		fill_block(data, b + 1);
		assert_success(do_request(store, VDO_REQUEST_WRITE, 0, b * BLOCK, BLOCK, data));
	}
	assert_success(vdo_store_close(store));
	store = open_store(device, 1);
	for (uint64_t b = 0; b < 6000; b += 97) {
		fill_block(data, b + 1);
		assert_success(do_request(store, VDO_REQUEST_READ, 0, b * BLOCK, BLOCK, out));
		assert_memory_equal(out, data, BLOCK);
	}
	assert_success(vdo_store_close(store));
	expect_clean_audit(device);
	vdo_close_device(device);
	free(data);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_requests),
		cmocka_unit_test(test_random_workload),
		cmocka_unit_test(test_out_of_space),
		cmocka_unit_test(test_power_cuts),
		cmocka_unit_test(test_background_recovery),
		cmocka_unit_test(test_close_after_the_disk_dies),
		cmocka_unit_test(test_allocation_waits_for_recovery),
		cmocka_unit_test(test_check_finds_a_miscount),
		cmocka_unit_test(test_damaged_counts_go_read_only),
		cmocka_unit_test(test_damaged_leaf),
		cmocka_unit_test(test_growth),
	};

	/* TEST_FILTER=test_power_cuts runs just that one (for stress runs). */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
