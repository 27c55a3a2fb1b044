// SPDX-License-Identifier: GPL-2.0-only
/*
 * What every provider shares: checking requests, counting them, and waiting for one; see
 * block-device.h.
 */
#include "block-device.h"

#include <errno.h>
#include <pthread.h>

#include "logger.h"

static int check_io(const struct block_device *device, const struct vdo_io *io)
{
	switch (io->operation) {
	case VDO_IO_FLUSH:
		return (io->flags == 0) ? DD_SUCCESS : DD_INVALID_ARGUMENT;
	case VDO_IO_READ:
		if (io->flags != 0)
			return DD_INVALID_ARGUMENT;
		break;
	case VDO_IO_WRITE:
		if ((io->flags & ~(unsigned int) (VDO_IO_FUA | VDO_IO_PREFLUSH)) != 0)
			return DD_INVALID_ARGUMENT;
		break;
	default:
		return DD_INVALID_ARGUMENT;
	}
	if ((io->buffer == NULL) || (io->count == 0))
		return DD_INVALID_ARGUMENT;
	if ((io->block >= device->blocks) || (io->count > device->blocks - io->block))
		return DD_OUT_OF_RANGE;
	return DD_SUCCESS;
}

static void count_io(struct block_device *device, const struct vdo_io *io)
{
	struct block_device_stats *stats = &device->stats;

	switch (io->operation) {
	case VDO_IO_READ:
		__atomic_fetch_add(&stats->reads, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&stats->blocks_read, io->count, __ATOMIC_RELAXED);
		break;
	case VDO_IO_WRITE:
		__atomic_fetch_add(&stats->writes, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&stats->blocks_written, io->count, __ATOMIC_RELAXED);
		if ((io->flags & VDO_IO_PREFLUSH) != 0)
			__atomic_fetch_add(&stats->flushes, 1, __ATOMIC_RELAXED);
		break;
	case VDO_IO_FLUSH:
		__atomic_fetch_add(&stats->flushes, 1, __ATOMIC_RELAXED);
		break;
	}
}

void vdo_finish_io(struct block_device *device, struct vdo_io *io, int result)
{
	io->result = result;
	if (result != DD_SUCCESS)
		__atomic_fetch_add(&device->stats.errors, 1, __ATOMIC_RELAXED);
	io->done(io);
}

void vdo_submit_io(struct block_device *device, struct vdo_io *io)
{
	int result = check_io(device, io);

	io->result = DD_SUCCESS;
	io->next = NULL;
	if (result != DD_SUCCESS) {
		dd_log_error_strerror(result,
		                      "%s: bad request (operation %d, blocks %llu+%u of %llu)",
		                      device->name, io->operation, (unsigned long long) io->block,
		                      io->count, (unsigned long long) device->blocks);
		/* Still completed by the provider: never on the submitter's stack. */
		io->result = result;
	} else {
		count_io(device, io);
	}
	device->operations->submit(device, io);
}

struct sync_waiter {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void sync_io_done(struct vdo_io *io)
{
	struct sync_waiter *waiter = io->context;

	pthread_mutex_lock(&waiter->mutex);
	waiter->done = true;
	waiter->result = io->result;
	pthread_cond_signal(&waiter->cond);
	pthread_mutex_unlock(&waiter->mutex);
}

int vdo_sync_io(struct block_device *device, enum vdo_io_operation operation, unsigned int flags,
                uint64_t block, uint32_t count, void *buffer)
{
	struct sync_waiter waiter = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                      .cond = PTHREAD_COND_INITIALIZER };
	struct vdo_io io = {
		.operation = operation,
		.flags = flags,
		.block = block,
		.count = count,
		.buffer = buffer,
		.done = sync_io_done,
		.context = &waiter,
	};

	vdo_submit_io(device, &io);
	pthread_mutex_lock(&waiter.mutex);
	while (!waiter.done)
		pthread_cond_wait(&waiter.cond, &waiter.mutex);
	pthread_mutex_unlock(&waiter.mutex);
	pthread_cond_destroy(&waiter.cond);
	pthread_mutex_destroy(&waiter.mutex);
	return waiter.result;
}

/* Several requests in flight at once, and how many are left. */
struct batch_waiter {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	uint32_t left;
	int result;
};

static void batch_io_done(struct vdo_io *io)
{
	struct batch_waiter *waiter = io->context;

	pthread_mutex_lock(&waiter->mutex);
	if ((io->result != DD_SUCCESS) && (waiter->result == DD_SUCCESS))
		waiter->result = io->result;
	if (--waiter->left == 0)
		pthread_cond_signal(&waiter->cond);
	pthread_mutex_unlock(&waiter->mutex);
}

int vdo_sync_io_batch(struct block_device *device, struct vdo_io *ios, uint32_t count)
{
	struct batch_waiter waiter = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                       .cond = PTHREAD_COND_INITIALIZER,
		                       .left = count };

	for (uint32_t i = 0; i < count; i++) {
		ios[i].done = batch_io_done;
		ios[i].context = &waiter;
		vdo_submit_io(device, &ios[i]);
	}
	pthread_mutex_lock(&waiter.mutex);
	while (waiter.left > 0)
		pthread_cond_wait(&waiter.cond, &waiter.mutex);
	pthread_mutex_unlock(&waiter.mutex);
	pthread_cond_destroy(&waiter.cond);
	pthread_mutex_destroy(&waiter.mutex);
	return waiter.result;
}

uint64_t vdo_device_blocks(const struct block_device *device)
{
	return device->blocks;
}

int vdo_refresh_device_size(struct block_device *device)
{
	uint64_t blocks;
	int result = device->operations->refresh_size(device, &blocks);

	if (result != DD_SUCCESS)
		return result;
	if (blocks < device->blocks)
		return dd_log_error_strerror(DD_BAD_STATE, "%s shrank from %llu to %llu blocks",
		                             device->name, (unsigned long long) device->blocks,
		                             (unsigned long long) blocks);
	device->blocks = blocks;
	return DD_SUCCESS;
}

bool vdo_drain_device(struct block_device *device)
{
	return device->operations->drain(device);
}

void vdo_get_device_stats(struct block_device *device, struct block_device_stats *stats)
{
	const struct block_device_stats *from = &device->stats;

	stats->reads = __atomic_load_n(&from->reads, __ATOMIC_RELAXED);
	stats->writes = __atomic_load_n(&from->writes, __ATOMIC_RELAXED);
	stats->flushes = __atomic_load_n(&from->flushes, __ATOMIC_RELAXED);
	stats->blocks_read = __atomic_load_n(&from->blocks_read, __ATOMIC_RELAXED);
	stats->blocks_written = __atomic_load_n(&from->blocks_written, __ATOMIC_RELAXED);
	stats->errors = __atomic_load_n(&from->errors, __ATOMIC_RELAXED);
}

void vdo_close_device(struct block_device *device)
{
	if (device != NULL)
		device->operations->close(device);
}
