// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file device: a regular file or a block device as backing storage; see block-device.h.
 *
 * Requests go through one io_uring. Submitters fill submission entries under a mutex and submit
 * at once; one reaper thread waits for completions and calls each request's done. The semantics
 * map directly: FLUSH is an fsync with IORING_FSYNC_DATASYNC, FUA is a write with RWF_DSYNC, and
 * PREFLUSH is such an fsync linked (IOSQE_IO_LINK) ahead of the write, so the write starts only
 * once the flush is done. The fsync of a preflush carries the request's address with its low bit
 * set, which tells the reaper it is only the first half of a request. A short transfer (a
 * regular file's read at its end, or an interrupted write) is finished synchronously by the
 * reaper.
 *
 * Where io_uring is not allowed (some container sandboxes refuse it), a pool of threads does the
 * same with pread, pwritev2 and fdatasync.
 *
 * O_DIRECT is used when the file system accepts it, so that data is not cached twice; buffers
 * are block-aligned as block-device.h requires.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "block-device.h"
#include "logger.h"
#include "memory-alloc.h"

/*
 * The kernel orders what the submitter wrote before what the reaper reads, through the ring;
 * ThreadSanitizer cannot see that, so tell it.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *address);
void __tsan_release(void *address);
#define handed_to_kernel(io)  __tsan_release(io)
#define taken_from_kernel(io) __tsan_acquire(io)
#else
#define handed_to_kernel(io)  ((void) (io))
#define taken_from_kernel(io) ((void) (io))
#endif

enum {
	RING_ENTRIES = 256,
	POOL_THREADS = 4,
	/* user_data of the entry that tells the reaper to stop. */
	STOP_MARKER = 1,
	PREFLUSH_TAG = 1,
};

struct file_device {
	struct block_device common;
	char *path;
	int fd;
	bool is_block_device;
	bool use_ring;
	struct io_uring ring;
	pthread_mutex_t mutex;
	pthread_cond_t work;
	pthread_cond_t idle;
	unsigned int in_flight;
	/* The pool's queue (no ring). */
	struct vdo_io *queue_head;
	struct vdo_io *queue_tail;
	bool stopping;
	pthread_t threads[POOL_THREADS];
	unsigned int thread_count;
};

static struct file_device *as_file(struct block_device *device)
{
	return (struct file_device *) device;
}

static void request_done(struct file_device *file, struct vdo_io *io, int result)
{
	vdo_finish_io(&file->common, io, result);
	pthread_mutex_lock(&file->mutex);
	if (--file->in_flight == 0)
		pthread_cond_broadcast(&file->idle);
	pthread_mutex_unlock(&file->mutex);
}

/* Read or write the part of @io from byte @done on, synchronously. */
static int transfer_rest(struct file_device *file, struct vdo_io *io, size_t done)
{
	size_t total = (size_t) io->count * VDO_BLOCK_SIZE;
	off_t offset = (off_t) (io->block * VDO_BLOCK_SIZE);
	uint8_t *buffer = io->buffer;

	while (done < total) {
		ssize_t n;

		if (io->operation == VDO_IO_READ) {
			n = pread(file->fd, buffer + done, total - done, offset + (off_t) done);
		} else {
			struct iovec vector = { .iov_base = buffer + done,
				                .iov_len = total - done };

			n = pwritev2(file->fd, &vector, 1, offset + (off_t) done,
			             ((io->flags & VDO_IO_FUA) != 0) ? RWF_DSYNC : 0);
		}
		if ((n < 0) && (errno == EINTR))
			continue;
		if (n < 0)
			return errno;
		if (n == 0) {
			if (io->operation != VDO_IO_READ)
				return EIO;
			/* Past the end of a regular file: zeros. */
			memset(buffer + done, 0, total - done);
			break;
		}
		done += (size_t) n;
	}
	return DD_SUCCESS;
}

/* Carry out @io synchronously (the pool). */
static int perform(struct file_device *file, struct vdo_io *io)
{
	if (io->result != DD_SUCCESS)
		return io->result;
	if ((io->operation == VDO_IO_FLUSH) ||
	    ((io->operation == VDO_IO_WRITE) && ((io->flags & VDO_IO_PREFLUSH) != 0))) {
		if (fdatasync(file->fd) != 0)
			return errno;
		if (io->operation == VDO_IO_FLUSH)
			return DD_SUCCESS;
	}
	return transfer_rest(file, io, 0);
}

static void *pool_thread(void *argument)
{
	struct file_device *file = argument;

	dd_log_set_thread_name("filedev");
	pthread_setname_np(pthread_self(), "filedev");
	pthread_mutex_lock(&file->mutex);
	for (;;) {
		struct vdo_io *io = file->queue_head;

		if (io == NULL) {
			if (file->stopping)
				break;
			pthread_cond_wait(&file->work, &file->mutex);
			continue;
		}
		file->queue_head = io->next;
		if (file->queue_head == NULL)
			file->queue_tail = NULL;
		pthread_mutex_unlock(&file->mutex);
		request_done(file, io, perform(file, io));
		pthread_mutex_lock(&file->mutex);
	}
	pthread_mutex_unlock(&file->mutex);
	return NULL;
}

/* Handle one completion entry; return false for the stop marker. */
static bool reap(struct file_device *file, const struct io_uring_cqe *cqe)
{
	uint64_t data = cqe->user_data;
	struct vdo_io *io = (struct vdo_io *) (uintptr_t) (data & ~(uint64_t) PREFLUSH_TAG);
	int result;

	if (data == STOP_MARKER)
		return false;
	taken_from_kernel(io);
	if ((data & PREFLUSH_TAG) != 0) {
		/* The write linked behind it reports; keep the flush's error for it. */
		if (cqe->res < 0)
			io->result = -cqe->res;
		return true;
	}
	if (io->result != DD_SUCCESS)
		result = io->result;
	else if (cqe->res < 0)
		result = -cqe->res;
	else if ((io->operation != VDO_IO_FLUSH) &&
	         ((size_t) cqe->res < (size_t) io->count * VDO_BLOCK_SIZE))
		result = transfer_rest(file, io, (size_t) cqe->res);
	else
		result = DD_SUCCESS;
	request_done(file, io, result);
	return true;
}

static void *reaper_thread(void *argument)
{
	struct file_device *file = argument;
	bool running = true;

	dd_log_set_thread_name("filedev");
	pthread_setname_np(pthread_self(), "filedev");
	while (running) {
		struct io_uring_cqe *cqe;
		int result = io_uring_wait_cqe(&file->ring, &cqe);

		if (result == -EINTR)
			continue;
		if (result < 0) {
			dd_log_error_strerror(-result, "%s: waiting for io_uring", file->path);
			break;
		}
		running = reap(file, cqe);
		io_uring_cqe_seen(&file->ring, cqe);
	}
	return NULL;
}

/* A submission entry; submits what is queued to make room if need be. Mutex held. */
static struct io_uring_sqe *get_entry(struct file_device *file)
{
	struct io_uring_sqe *sqe;

	while ((sqe = io_uring_get_sqe(&file->ring)) == NULL)
		io_uring_submit(&file->ring);
	return sqe;
}

static void prepare_ring_entries(struct file_device *file, struct vdo_io *io)
{
	struct io_uring_sqe *sqe;
	unsigned int bytes = io->count * VDO_BLOCK_SIZE;
	uint64_t offset = io->block * VDO_BLOCK_SIZE;

	if ((io->result != DD_SUCCESS) || (io->operation == VDO_IO_FLUSH)) {
		sqe = get_entry(file);
		if (io->result != DD_SUCCESS)
			io_uring_prep_nop(sqe);
		else
			io_uring_prep_fsync(sqe, file->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, (uintptr_t) io);
		return;
	}
	if ((io->operation == VDO_IO_WRITE) && ((io->flags & VDO_IO_PREFLUSH) != 0)) {
		/* Both halves of the link must go in one submission, or the link is broken. */
		while (io_uring_sq_space_left(&file->ring) < 2)
			io_uring_submit(&file->ring);
		sqe = get_entry(file);
		io_uring_prep_fsync(sqe, file->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		io_uring_sqe_set_data64(sqe, (uintptr_t) io | PREFLUSH_TAG);
	}
	sqe = get_entry(file);
	if (io->operation == VDO_IO_READ) {
		io_uring_prep_read(sqe, file->fd, io->buffer, bytes, offset);
	} else {
		io_uring_prep_write(sqe, file->fd, io->buffer, bytes, offset);
		if ((io->flags & VDO_IO_FUA) != 0)
			sqe->rw_flags = RWF_DSYNC;
	}
	io_uring_sqe_set_data64(sqe, (uintptr_t) io);
}

static void file_submit(struct block_device *device, struct vdo_io *io)
{
	struct file_device *file = as_file(device);

	pthread_mutex_lock(&file->mutex);
	file->in_flight++;
	if (file->use_ring) {
		prepare_ring_entries(file, io);
		handed_to_kernel(io);
		io_uring_submit(&file->ring);
	} else {
		if (file->queue_tail != NULL)
			file->queue_tail->next = io;
		else
			file->queue_head = io;
		file->queue_tail = io;
		pthread_cond_signal(&file->work);
	}
	pthread_mutex_unlock(&file->mutex);
}

static int measure(struct file_device *file, uint64_t *blocks_ptr)
{
	struct stat status;
	uint64_t bytes;

	if (fstat(file->fd, &status) != 0)
		return dd_log_error_strerror(errno, "cannot stat %s", file->path);
	if (S_ISBLK(status.st_mode)) {
		if (ioctl(file->fd, BLKGETSIZE64, &bytes) != 0)
			return dd_log_error_strerror(errno, "cannot size %s", file->path);
	} else if (S_ISREG(status.st_mode)) {
		bytes = (uint64_t) status.st_size;
	} else {
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%s is neither a regular file nor a block device",
		                             file->path);
	}
	if (bytes % VDO_BLOCK_SIZE != 0)
		dd_log_warning("%s: the last %llu bytes are not a whole block and are not used",
		               file->path, (unsigned long long) (bytes % VDO_BLOCK_SIZE));
	*blocks_ptr = bytes / VDO_BLOCK_SIZE;
	return DD_SUCCESS;
}

static int file_refresh_size(struct block_device *device, uint64_t *blocks_ptr)
{
	return measure(as_file(device), blocks_ptr);
}

static bool file_drain(struct block_device *device)
{
	struct file_device *file = as_file(device);
	bool waited;

	pthread_mutex_lock(&file->mutex);
	waited = (file->in_flight > 0);
	while (file->in_flight > 0)
		pthread_cond_wait(&file->idle, &file->mutex);
	pthread_mutex_unlock(&file->mutex);
	return waited;
}

static void stop_threads(struct file_device *file)
{
	pthread_mutex_lock(&file->mutex);
	while (file->in_flight > 0)
		pthread_cond_wait(&file->idle, &file->mutex);
	file->stopping = true;
	if (file->use_ring && (file->thread_count > 0)) {
		struct io_uring_sqe *sqe = get_entry(file);

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, STOP_MARKER);
		io_uring_submit(&file->ring);
	}
	pthread_cond_broadcast(&file->work);
	pthread_mutex_unlock(&file->mutex);
	for (unsigned int t = 0; t < file->thread_count; t++)
		pthread_join(file->threads[t], NULL);
	file->thread_count = 0;
}

static void free_file_device(struct file_device *file)
{
	stop_threads(file);
	if (file->use_ring)
		io_uring_queue_exit(&file->ring);
	if (file->fd >= 0)
		close(file->fd);
	pthread_cond_destroy(&file->idle);
	pthread_cond_destroy(&file->work);
	pthread_mutex_destroy(&file->mutex);
	dd_free(file->path);
	dd_free(file);
}

static void file_close(struct block_device *device)
{
	struct file_device *file = as_file(device);

	if (fdatasync(file->fd) != 0)
		dd_log_error_strerror(errno, "%s: final flush", file->path);
	free_file_device(file);
}

static const struct block_device_operations file_operations = {
	.submit = file_submit,
	.refresh_size = file_refresh_size,
	.drain = file_drain,
	.close = file_close,
};

static int open_file(struct file_device *file, uint64_t create_blocks)
{
	int flags = O_RDWR | O_CLOEXEC | ((create_blocks > 0) ? O_CREAT : 0);
	struct stat status;

	file->fd = open(file->path, flags | O_DIRECT, 0600);
	if ((file->fd < 0) && (errno == EINVAL))
		file->fd = open(file->path, flags, 0600);
	if (file->fd < 0)
		return dd_log_error_strerror(errno, "cannot open %s", file->path);
	if (fstat(file->fd, &status) != 0)
		return dd_log_error_strerror(errno, "cannot stat %s", file->path);
	file->is_block_device = S_ISBLK(status.st_mode);
	if ((create_blocks > 0) && S_ISREG(status.st_mode) &&
	    ((uint64_t) status.st_size < create_blocks * VDO_BLOCK_SIZE) &&
	    (ftruncate(file->fd, (off_t) (create_blocks * VDO_BLOCK_SIZE)) != 0))
		return dd_log_error_strerror(errno, "cannot size %s", file->path);
	return measure(file, &file->common.blocks);
}

static int start_threads(struct file_device *file)
{
	int result = io_uring_queue_init(RING_ENTRIES, &file->ring, 0);

	file->use_ring = (result == 0);
	if (!file->use_ring)
		dd_log_info("%s: io_uring unavailable (%s); using a thread pool", file->path,
		            strerror(-result));
	for (unsigned int t = 0; t < (file->use_ring ? 1 : POOL_THREADS); t++) {
		if (pthread_create(&file->threads[t], NULL,
		                   file->use_ring ? reaper_thread : pool_thread, file) != 0)
			return dd_log_error_strerror(EAGAIN, "cannot start I/O threads");
		file->thread_count++;
	}
	return DD_SUCCESS;
}

int vdo_open_file_device(const char *path, uint64_t create_blocks, struct block_device **device_ptr)
{
	struct file_device *file;
	int result = dd_allocate(sizeof(*file), "file device", &file);

	if (result != DD_SUCCESS)
		return result;
	file->fd = -1;
	pthread_mutex_init(&file->mutex, NULL);
	pthread_cond_init(&file->work, NULL);
	pthread_cond_init(&file->idle, NULL);
	result = dd_duplicate(path, strlen(path) + 1, "device path", &file->path);
	if (result != DD_SUCCESS) {
		free_file_device(file);
		return result;
	}
	file->common = (struct block_device){ .operations = &file_operations, .name = file->path };
	result = open_file(file, create_blocks);
	if (result == DD_SUCCESS)
		result = start_threads(file);
	if (result != DD_SUCCESS) {
		free_file_device(file);
		return result;
	}
	*device_ptr = &file->common;
	return DD_SUCCESS;
}
