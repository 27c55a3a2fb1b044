// SPDX-License-Identifier: GPL-2.0-only
/*
 * The RAM device: backing storage in memory that can lose power; see block-device.h.
 *
 * Each block has its durable contents (NULL: zeros) and the list of versions written to it since
 * they last became durable, oldest first. A read sees the newest version; a flush makes each
 * block's newest version durable and drops the rest; a FUA write becomes durable at once (it is
 * the newest version of its block, so the older unflushed ones no longer matter); a preflush is a
 * flush done before the write. Requests are carried out in the order they are submitted, under
 * one mutex, and completed in that order by the device's completion thread.
 *
 * A crash waits for the completion thread to finish, then settles each block that has unflushed
 * versions: with RAM_CRASH_DROP_ALL it keeps its durable contents; with RAM_CRASH_RANDOM it
 * takes one of its versions (durable included) at random, and a new version is torn one time in
 * four, sector by sector, over the durable one. The settled contents move to a new device, and
 * the old one answers every later request with EIO, as a disk without power would.
 *
 * Tests can widen race windows with delays: failing requests are completed late, as a dying
 * disk's are, and a drain can sleep before it looks at what is in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block-device.h"
#include "logger.h"
#include "memory-alloc.h"
#include "time-utils.h"

struct ram_version {
	struct ram_version *newer;
	uint8_t data[VDO_BLOCK_SIZE];
};

struct ram_block {
	/* NULL: all zeros. */
	uint8_t *durable;
	struct ram_version *oldest;
	struct ram_version *newest;
	/* On the dirty list. */
	bool listed;
};

struct ram_device {
	struct block_device common;
	pthread_mutex_t mutex;
	pthread_cond_t work;
	pthread_cond_t idle;
	struct ram_block *blocks;
	uint64_t capacity;
	/* Blocks that may have unflushed versions. */
	uint64_t *dirty;
	uint64_t dirty_count;
	uint64_t dirty_room;
	uint64_t fail_first;
	uint64_t fail_count;
	bool powered_off;
	/* The completion thread's queue. */
	pthread_t thread;
	struct vdo_io *queue_head;
	struct vdo_io *queue_tail;
	unsigned int in_flight;
	bool stopping;
	struct ram_device_delays delays;
};

static const uint8_t zero_block[VDO_BLOCK_SIZE];

static struct ram_device *as_ram(struct block_device *device)
{
	return (struct ram_device *) device;
}

static const uint8_t *current_contents(const struct ram_block *block)
{
	if (block->newest != NULL)
		return block->newest->data;
	return (block->durable != NULL) ? block->durable : zero_block;
}

static void free_versions(struct ram_block *block)
{
	while (block->oldest != NULL) {
		struct ram_version *version = block->oldest;

		block->oldest = version->newer;
		dd_free(version);
	}
	block->newest = NULL;
}

/* Make @data the durable contents of @block. */
static int set_durable(struct ram_block *block, const uint8_t *data)
{
	if (block->durable == NULL) {
		int result =
		    dd_allocate_uninitialized(VDO_BLOCK_SIZE, "ram block", &block->durable);

		if (result != DD_SUCCESS)
			return result;
	}
	memcpy(block->durable, data, VDO_BLOCK_SIZE);
	return DD_SUCCESS;
}

static int flush_all(struct ram_device *ram)
{
	for (uint64_t i = 0; i < ram->dirty_count; i++) {
		struct ram_block *block = &ram->blocks[ram->dirty[i]];
		int result;

		block->listed = false;
		if (block->newest == NULL)
			continue;
		result = set_durable(block, block->newest->data);
		if (result != DD_SUCCESS)
			return result;
		free_versions(block);
	}
	ram->dirty_count = 0;
	return DD_SUCCESS;
}

static int note_dirty(struct ram_device *ram, uint64_t number)
{
	if (ram->dirty_count == ram->dirty_room) {
		uint64_t room = (ram->dirty_room == 0) ? 64 : 2 * ram->dirty_room;
		uint64_t *dirty = realloc(ram->dirty, room * sizeof(*dirty));

		if (dirty == NULL)
			return ENOMEM;
		ram->dirty = dirty;
		ram->dirty_room = room;
	}
	ram->dirty[ram->dirty_count++] = number;
	return DD_SUCCESS;
}

static int write_block(struct ram_device *ram, uint64_t number, const uint8_t *data, bool fua)
{
	struct ram_block *block = &ram->blocks[number];
	struct ram_version *version;
	int result;

	if (fua) {
		free_versions(block);
		return set_durable(block, data);
	}
	result = dd_allocate_uninitialized(sizeof(*version), "ram version", &version);
	if (result != DD_SUCCESS)
		return result;
	memcpy(version->data, data, VDO_BLOCK_SIZE);
	version->newer = NULL;
	if (!block->listed) {
		result = note_dirty(ram, number);
		if (result != DD_SUCCESS) {
			dd_free(version);
			return result;
		}
		block->listed = true;
	}
	if (block->newest == NULL) {
		block->oldest = version;
	} else {
		block->newest->newer = version;
	}
	block->newest = version;
	return DD_SUCCESS;
}

static bool touches_failed_blocks(const struct ram_device *ram, const struct vdo_io *io)
{
	if ((ram->fail_count == 0) || (io->operation == VDO_IO_FLUSH))
		return false;
	return (io->block < ram->fail_first + ram->fail_count) &&
	       (ram->fail_first < io->block + io->count);
}

/* Carry out @io against the image. Mutex held. */
static int perform(struct ram_device *ram, struct vdo_io *io)
{
	uint8_t *buffer = io->buffer;
	int result = DD_SUCCESS;

	if (ram->powered_off || touches_failed_blocks(ram, io))
		return EIO;
	switch (io->operation) {
	case VDO_IO_READ:
		for (uint32_t i = 0; i < io->count; i++)
			memcpy(buffer + (size_t) i * VDO_BLOCK_SIZE,
			       current_contents(&ram->blocks[io->block + i]), VDO_BLOCK_SIZE);
		return DD_SUCCESS;
	case VDO_IO_FLUSH:
		return flush_all(ram);
	case VDO_IO_WRITE:
		if ((io->flags & VDO_IO_PREFLUSH) != 0)
			result = flush_all(ram);
		for (uint32_t i = 0; (result == DD_SUCCESS) && (i < io->count); i++)
			result =
			    write_block(ram, io->block + i, buffer + (size_t) i * VDO_BLOCK_SIZE,
			                (io->flags & VDO_IO_FUA) != 0);
		return result;
	}
	return DD_INVALID_ARGUMENT;
}

static void ram_submit(struct block_device *device, struct vdo_io *io)
{
	struct ram_device *ram = as_ram(device);

	pthread_mutex_lock(&ram->mutex);
	if (io->result == DD_SUCCESS)
		io->result = perform(ram, io);
	if (ram->queue_tail != NULL)
		ram->queue_tail->next = io;
	else
		ram->queue_head = io;
	ram->queue_tail = io;
	ram->in_flight++;
	pthread_cond_signal(&ram->work);
	pthread_mutex_unlock(&ram->mutex);
}

static void *completion_thread(void *argument)
{
	struct ram_device *ram = argument;
	dd_ktime_t delay;

	dd_log_set_thread_name("ramdev");
	pthread_mutex_lock(&ram->mutex);
	for (;;) {
		struct vdo_io *io = ram->queue_head;

		if (io == NULL) {
			if (ram->stopping)
				break;
			pthread_cond_wait(&ram->work, &ram->mutex);
			continue;
		}
		ram->queue_head = io->next;
		if (ram->queue_head == NULL)
			ram->queue_tail = NULL;
		delay = (io->result != DD_SUCCESS) ? ram->delays.error_ns : 0;
		pthread_mutex_unlock(&ram->mutex);
		if (delay > 0)
			dd_sleep_ns(delay);
		vdo_finish_io(&ram->common, io, io->result);
		pthread_mutex_lock(&ram->mutex);
		if (--ram->in_flight == 0)
			pthread_cond_broadcast(&ram->idle);
	}
	pthread_mutex_unlock(&ram->mutex);
	return NULL;
}

/* Wait until every request submitted has completed. Mutex held. */
static void wait_for_idle(struct ram_device *ram)
{
	while (ram->in_flight > 0)
		pthread_cond_wait(&ram->idle, &ram->mutex);
}

static bool ram_drain(struct block_device *device)
{
	struct ram_device *ram = as_ram(device);
	dd_ktime_t delay;
	bool waited;

	pthread_mutex_lock(&ram->mutex);
	delay = ram->delays.drain_ns;
	pthread_mutex_unlock(&ram->mutex);
	if (delay > 0)
		dd_sleep_ns(delay);
	pthread_mutex_lock(&ram->mutex);
	waited = (ram->in_flight > 0);
	wait_for_idle(ram);
	pthread_mutex_unlock(&ram->mutex);
	return waited;
}

static int ram_refresh_size(struct block_device *device, uint64_t *blocks_ptr)
{
	struct ram_device *ram = as_ram(device);

	pthread_mutex_lock(&ram->mutex);
	*blocks_ptr = ram->capacity;
	pthread_mutex_unlock(&ram->mutex);
	return DD_SUCCESS;
}

static void free_blocks(struct ram_device *ram)
{
	for (uint64_t i = 0; i < ram->capacity; i++) {
		free_versions(&ram->blocks[i]);
		dd_free(ram->blocks[i].durable);
	}
	dd_free(ram->blocks);
	ram->blocks = NULL;
	ram->capacity = 0;
}

static void ram_close(struct block_device *device)
{
	struct ram_device *ram = as_ram(device);

	pthread_mutex_lock(&ram->mutex);
	wait_for_idle(ram);
	ram->stopping = true;
	pthread_cond_signal(&ram->work);
	pthread_mutex_unlock(&ram->mutex);
	pthread_join(ram->thread, NULL);
	free_blocks(ram);
	free(ram->dirty);
	pthread_cond_destroy(&ram->idle);
	pthread_cond_destroy(&ram->work);
	pthread_mutex_destroy(&ram->mutex);
	dd_free(ram);
}

static const struct block_device_operations ram_operations = {
	.submit = ram_submit,
	.refresh_size = ram_refresh_size,
	.drain = ram_drain,
	.close = ram_close,
};

int vdo_make_ram_device(uint64_t blocks, struct block_device **device_ptr)
{
	struct ram_device *ram;
	int result;

	if (blocks == 0)
		return DD_INVALID_ARGUMENT;
	result = dd_allocate(sizeof(*ram), "ram device", &ram);
	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE(blocks, struct ram_block, "ram blocks", &ram->blocks);
	if (result != DD_SUCCESS) {
		dd_free(ram);
		return result;
	}
	ram->capacity = blocks;
	ram->common =
	    (struct block_device){ .operations = &ram_operations, .name = "ram", .blocks = blocks };
	pthread_mutex_init(&ram->mutex, NULL);
	pthread_cond_init(&ram->work, NULL);
	pthread_cond_init(&ram->idle, NULL);
	if (pthread_create(&ram->thread, NULL, completion_thread, ram) != 0) {
		dd_free(ram->blocks);
		dd_free(ram);
		return dd_log_error_strerror(EAGAIN, "cannot start the ram device's thread");
	}
	*device_ptr = &ram->common;
	return DD_SUCCESS;
}

static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The contents @block is left with by a random power cut. */
static void settle_randomly(struct ram_block *block, uint64_t *random, uint8_t *settled)
{
	const uint8_t *durable = (block->durable != NULL) ? block->durable : zero_block;
	unsigned int versions = 0;
	unsigned int choice;
	struct ram_version *version = block->oldest;

	for (struct ram_version *v = block->oldest; v != NULL; v = v->newer)
		versions++;
	memcpy(settled, durable, VDO_BLOCK_SIZE);
	choice = (unsigned int) (next_random(random) % (versions + 1));
	if (choice == 0)
		return;
	for (unsigned int i = 1; i < choice; i++)
		version = version->newer;
	if (next_random(random) % 4 != 0) {
		memcpy(settled, version->data, VDO_BLOCK_SIZE);
		return;
	}
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++) {
		if ((next_random(random) & 1) != 0)
			memcpy(settled + s * VDO_SECTOR_SIZE, version->data + s * VDO_SECTOR_SIZE,
			       VDO_SECTOR_SIZE);
	}
}

int vdo_ram_device_crash(struct block_device *device, enum ram_crash_mode mode, uint64_t seed,
                         struct block_device **survivor_ptr)
{
	struct ram_device *ram = as_ram(device);
	struct block_device *survivor_device = NULL;
	struct ram_device *survivor;
	uint64_t random = seed;
	uint8_t settled[VDO_BLOCK_SIZE];
	int result;

	pthread_mutex_lock(&ram->mutex);
	wait_for_idle(ram);
	result = vdo_make_ram_device(ram->capacity, &survivor_device);
	if (result != DD_SUCCESS) {
		pthread_mutex_unlock(&ram->mutex);
		return result;
	}
	survivor = as_ram(survivor_device);
	for (uint64_t i = 0; i < ram->capacity; i++) {
		struct ram_block *block = &ram->blocks[i];

		if ((mode == RAM_CRASH_RANDOM) && (block->newest != NULL)) {
			settle_randomly(block, &random, settled);
			result = set_durable(block, settled);
			if (result != DD_SUCCESS)
				break;
		}
		survivor->blocks[i].durable = block->durable;
		block->durable = NULL;
		block->listed = false;
		free_versions(block);
	}
	ram->dirty_count = 0;
	ram->powered_off = true;
	pthread_mutex_unlock(&ram->mutex);
	if (result != DD_SUCCESS) {
		vdo_close_device(survivor_device);
		return result;
	}
	*survivor_ptr = survivor_device;
	return DD_SUCCESS;
}

void vdo_ram_device_set_delays(struct block_device *device, struct ram_device_delays delays)
{
	struct ram_device *ram = as_ram(device);

	pthread_mutex_lock(&ram->mutex);
	ram->delays = delays;
	pthread_mutex_unlock(&ram->mutex);
}

int vdo_ram_device_grow(struct block_device *device, uint64_t blocks)
{
	struct ram_device *ram = as_ram(device);
	struct ram_block *grown;

	pthread_mutex_lock(&ram->mutex);
	if (blocks <= ram->capacity) {
		pthread_mutex_unlock(&ram->mutex);
		return (blocks == ram->capacity) ? DD_SUCCESS : DD_INVALID_ARGUMENT;
	}
	grown = realloc(ram->blocks, blocks * sizeof(*grown));
	if (grown == NULL) {
		pthread_mutex_unlock(&ram->mutex);
		return ENOMEM;
	}
	memset(grown + ram->capacity, 0, (blocks - ram->capacity) * sizeof(*grown));
	ram->blocks = grown;
	ram->capacity = blocks;
	pthread_mutex_unlock(&ram->mutex);
	return DD_SUCCESS;
}

void vdo_ram_device_fail(struct block_device *device, uint64_t first, uint64_t count)
{
	struct ram_device *ram = as_ram(device);

	pthread_mutex_lock(&ram->mutex);
	ram->fail_first = first;
	ram->fail_count = count;
	pthread_mutex_unlock(&ram->mutex);
}

void vdo_ram_device_poke(struct block_device *device, uint64_t offset, const void *bytes,
                         uint32_t size)
{
	struct ram_device *ram = as_ram(device);
	const uint8_t *from = bytes;

	pthread_mutex_lock(&ram->mutex);
	for (uint32_t done = 0; done < size;) {
		uint64_t number = (offset + done) / VDO_BLOCK_SIZE;
		uint32_t within = (uint32_t) ((offset + done) % VDO_BLOCK_SIZE);
		uint32_t length = VDO_BLOCK_SIZE - within;
		struct ram_block *block;

		if (number >= ram->capacity)
			break;
		block = &ram->blocks[number];
		if (length > size - done)
			length = size - done;
		if (set_durable(block, (block->durable != NULL) ? block->durable : zero_block) !=
		    DD_SUCCESS)
			break;
		memcpy(block->durable + within, from + done, length);
		for (struct ram_version *v = block->oldest; v != NULL; v = v->newer)
			memcpy(v->data + within, from + done, length);
		done += length;
	}
	pthread_mutex_unlock(&ram->mutex);
}

uint64_t vdo_ram_device_unflushed(struct block_device *device)
{
	struct ram_device *ram = as_ram(device);
	uint64_t count = 0;

	pthread_mutex_lock(&ram->mutex);
	for (uint64_t i = 0; i < ram->dirty_count; i++)
		count += (ram->blocks[ram->dirty[i]].newest != NULL);
	pthread_mutex_unlock(&ram->mutex);
	return count;
}
