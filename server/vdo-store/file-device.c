// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file device: a regular file or a block device as backing storage; see block-device.h.
 *
 * Requests go through one io_uring. Submitters fill submission entries under a mutex and submit
 * at once; one reaper thread waits for completions and calls each request's done. The semantics
 * map directly: FLUSH is an fsync with IORING_FSYNC_DATASYNC, FUA is a write with RWF_DSYNC, and
 * PREFLUSH is such an fsync linked (IOSQE_IO_LINK) ahead of the write, so the write starts only
 * once the flush is done. A short transfer (a regular file's read at its end, or an interrupted
 * write) is finished synchronously by the reaper.
 *
 * Each request in the ring holds a slot of a table, whose number its entries carry (the fsync of
 * a preflush with a tag bit, which tells the reaper it is only the first half of a request). The
 * slot keeps the request's first error and how many of its entries are still in the ring; the
 * request completes once, when the last of them is reaped or dropped. The table is also what lets
 * every request be failed when the ring stops working.
 *
 * Nothing io_uring says is ignored:
 *   - Submitting may take only some of the queued entries; the rest stay queued and the
 *     submitter submits again at once. If that cut a preflush from its write, the write is
 *     marked IOSQE_IO_DRAIN, so that it still starts only after the flush.
 *   - A transient refusal (EAGAIN, EBUSY, EINTR) is retried: a submitter lets go of the mutex,
 *     waits a millisecond (the reaper reaps meanwhile, which is what frees the kernel's
 *     resources) and tries again. The reaper itself, submitting from a done callback, must not
 *     wait for itself: it leaves the entries queued and retries between completions, waiting at
 *     most a millisecond for the next one (where its waits can time out; see below). After
 *     TRANSIENT_RETRIES tries without progress the error counts as a hard one.
 *   - A hard refusal drops every entry still queued: each becomes a nop the kernel may take
 *     later, and each request loses that entry, failing with the error once none is left (a
 *     preflush whose fsync was already taken fails when that fsync is reaped). Rewriting
 *     entries the kernel was shown but did not take is safe: without SQPOLL it reads them only
 *     when entered to submit, which happens under the mutex.
 *   - If the reaper cannot wait for completions any more, the ring is broken: the reaper peeks
 *     at it for a moment to let the kernel finish what it can (so that buffers are not handed
 *     back while the kernel may still use them, where that can be helped), then fails every
 *     request still in the ring, and every later one, with that error.
 * Requests that fail without a completion (malformed ones, refused ones, those of a broken ring)
 * are completed by a second thread, the same as the pool's below, since done is never called on
 * the submitter's stack. The reaper waits with a one-second timeout (where the kernel takes one
 * without an entry, IORING_FEAT_EXT_ARG), so that it stops even when the entry asking it to
 * could not be submitted.
 *
 * Tests may replace the two calls into liburing that can fail this way, io_uring_submit and the
 * reaper's wait, with vdo_set_file_device_ring_calls().
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
#include "permassert.h"
#include "time-utils.h"

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
	/* A power of two, so the kernel makes the submission queue exactly this long. */
	RING_ENTRIES = 256,
	POOL_THREADS = 4,
	/* Slots for requests in the ring made at start-up; the table doubles when they run out. */
	INITIAL_SLOTS = 2 * RING_ENTRIES,
	/* user_data of an entry whose request was failed before the kernel took it (now a nop). */
	DROPPED_DATA = 0,
	/* user_data of the entry that tells the reaper to stop. */
	STOP_DATA = 1,
	/* Otherwise user_data is (slot + 1) << 1, with this bit on the fsync of a preflush. */
	PREFLUSH_TAG = 1,
	/* How many times a transient refusal is retried without progress. */
	TRANSIENT_RETRIES = 10000,
	/* How many milliseconds a broken reaper lets the kernel finish what it holds. */
	BROKEN_GRACE_MS = 100,
};

static const uint32_t NO_SLOT = UINT32_MAX;

/* One request in the ring; see the top of the file. */
struct ring_request {
	/* NULL: the slot is free. */
	struct vdo_io *io;
	/* The first error of any of its entries. */
	int result;
	/* What its read or write entry moved, in bytes. */
	uint32_t transferred;
	/* Its entries in the ring: prepared, and neither reaped nor dropped yet. */
	uint32_t entries;
	/* The next free slot, for a free one. */
	uint32_t next_free;
};

struct file_device {
	struct block_device common;
	char *path;
	int fd;
	bool is_block_device;
	bool use_ring;
	struct io_uring ring;
	/* How this device submits and waits (liburing's calls, unless a test replaced them). */
	struct vdo_ring_calls calls;
	pthread_mutex_t mutex;
	pthread_cond_t work;
	pthread_cond_t idle;
	unsigned int in_flight;
	/* The ring's requests by slot; see struct ring_request. */
	struct ring_request *requests;
	uint32_t slot_count;
	uint32_t free_slot;
	uint32_t requests_in_ring;
	/* Every entry prepared, by its position in the submission queue (modulo its length). */
	struct io_uring_sqe *queued[RING_ENTRIES];
	unsigned int prepared;
	/* Why the ring can no longer be used (DD_SUCCESS while it can). */
	int broken;
	/* Whether the reaper's waits can time out (IORING_FEAT_EXT_ARG). */
	bool timed_waits;
	/* The reaper's own: entries it left queued after a transient refusal, and how often. */
	bool reaper_deferred;
	unsigned int reaper_retries;
	/* The pool's queue; with a ring, the requests that fail without a completion. */
	struct vdo_io *queue_head;
	struct vdo_io *queue_tail;
	bool stopping;
	pthread_t threads[POOL_THREADS];
	unsigned int thread_count;
};

/* liburing's own calls, and those devices opened from now on use (see block-device.h). */
static const struct vdo_ring_calls liburing_calls = {
	.submit = io_uring_submit,
	.wait = io_uring_wait_cqe_timeout,
};
static struct vdo_ring_calls ring_calls = {
	.submit = io_uring_submit,
	.wait = io_uring_wait_cqe_timeout,
};

/* On a reaper thread, the device it reaps for. */
static _Thread_local struct file_device *reaping_for;

static struct file_device *as_file(struct block_device *device)
{
	return (struct file_device *) device;
}

void vdo_set_file_device_ring_calls(const struct vdo_ring_calls *calls)
{
	ring_calls = (calls != NULL) ? *calls : liburing_calls;
}

/* Complete @io with @result, then count it out of the requests in flight. */
static void request_done(struct file_device *file, struct vdo_io *io, int result)
{
	vdo_finish_io(&file->common, io, result);
	pthread_mutex_lock(&file->mutex);
	if (--file->in_flight == 0)
		pthread_cond_broadcast(&file->idle);
	pthread_mutex_unlock(&file->mutex);
}

/* Hand @io to the pool's queue, to be done by a pool thread. Mutex held. */
static void enqueue(struct file_device *file, struct vdo_io *io)
{
	io->next = NULL;
	if (file->queue_tail != NULL)
		file->queue_tail->next = io;
	else
		file->queue_head = io;
	file->queue_tail = io;
	pthread_cond_signal(&file->work);
}

/* Have @io completed with @error by a pool thread, never on the submitter's stack. Mutex held. */
static void fail_later(struct file_device *file, struct vdo_io *io, int error)
{
	io->result = error;
	enqueue(file, io);
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

/* A pool thread: carries out (without a ring) or fails (with one) the queued requests. */
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

/* Add @count free slots to the table (at start-up, and when a deeper queue needs more). */
static int grow_slots(struct file_device *file, uint32_t count)
{
	uint32_t old_count = file->slot_count;
	struct ring_request *requests;
	int result;

	if (count > UINT32_MAX / 2 - old_count)
		return dd_log_error_strerror(ENOMEM, "%s: too many requests in flight", file->path);
	result =
	    dd_allocate_array(old_count + count, sizeof(*requests), "ring requests", &requests);
	if (result != DD_SUCCESS)
		return result;
	if (old_count > 0)
		memcpy(requests, file->requests, old_count * sizeof(*requests));
	dd_free(file->requests);
	file->requests = requests;
	file->slot_count = old_count + count;
	for (uint32_t slot = file->slot_count; slot > old_count; slot--) {
		file->requests[slot - 1].next_free = file->free_slot;
		file->free_slot = slot - 1;
	}
	return DD_SUCCESS;
}

/* Give @io a slot for its @entries entries; return its user_data. Mutex held. */
static int take_slot(struct file_device *file, struct vdo_io *io, uint32_t entries,
                     uint64_t *data_ptr)
{
	uint32_t slot;

	if (file->free_slot == NO_SLOT) {
		int result = grow_slots(file, file->slot_count);

		if (result != DD_SUCCESS)
			return result;
	}
	slot = file->free_slot;
	file->free_slot = file->requests[slot].next_free;
	file->requests[slot] = (struct ring_request){ .io = io, .entries = entries };
	file->requests_in_ring++;
	*data_ptr = ((uint64_t) slot + 1) << 1;
	return DD_SUCCESS;
}

/* The request an entry's user_data names, or NULL if it names none in the ring. Mutex held. */
static struct ring_request *request_of(struct file_device *file, uint64_t data)
{
	uint64_t slot = (data >> 1) - 1;

	if (DD_ASSERT((data > STOP_DATA) && (slot < file->slot_count) &&
	                  (file->requests[slot].entries > 0),
	              "%s: user_data %llu names no request in the ring", file->path,
	              (unsigned long long) data) != DD_SUCCESS)
		return NULL;
	return &file->requests[slot];
}

/* Free @request's slot. Mutex held. */
static void release_slot(struct file_device *file, struct ring_request *request)
{
	uint32_t slot = (uint32_t) (request - file->requests);

	*request = (struct ring_request){ .next_free = file->free_slot };
	file->free_slot = slot;
	file->requests_in_ring--;
}

/*
 * One of @request's entries is gone without being reaped (dropped, or the ring broke): record
 * @error and fail the request once none of its entries is left. Mutex held.
 */
static void lose_entry(struct file_device *file, struct ring_request *request, int error)
{
	struct vdo_io *io = request->io;

	if (request->result == DD_SUCCESS)
		request->result = error;
	if (--request->entries > 0)
		return;
	error = request->result;
	release_slot(file, request);
	fail_later(file, io, error);
}

/* The entry at @position of the submission queue (counting every entry ever prepared). */
static struct io_uring_sqe *queued_entry(struct file_device *file, unsigned int position)
{
	return file->queued[position % RING_ENTRIES];
}

/* A submission entry; make_room() has made sure there is one. Mutex held. */
static struct io_uring_sqe *next_entry(struct file_device *file)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&file->ring);

	file->queued[file->prepared++ % RING_ENTRIES] = sqe;
	return sqe;
}

/*
 * The kernel refused the queued entries for good: make each a nop it may take later (so that
 * the queue stays as liburing knows it) and take it from its request. Mutex held.
 */
static void drop_queued(struct file_device *file, int error)
{
	unsigned int left = io_uring_sq_ready(&file->ring);

	for (unsigned int position = file->prepared - left; position != file->prepared;
	     position++) {
		struct io_uring_sqe *sqe = queued_entry(file, position);
		uint64_t data = sqe->user_data;
		struct ring_request *request;

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, DROPPED_DATA);
		if ((data == DROPPED_DATA) || (data == STOP_DATA))
			continue;
		request = request_of(file, data);
		if (request != NULL)
			lose_entry(file, request, error);
	}
}

/*
 * A submission stopped after the fsync of a preflush and before its write cut their link; make
 * the write wait for everything submitted before it instead. Mutex held.
 */
static void keep_preflush_order(struct file_device *file)
{
	unsigned int left = io_uring_sq_ready(&file->ring);
	struct io_uring_sqe *sqe;
	struct ring_request *request;

	if (left == 0)
		return;
	sqe = queued_entry(file, file->prepared - left);
	if ((sqe->user_data == DROPPED_DATA) || (sqe->user_data == STOP_DATA) ||
	    ((sqe->user_data & PREFLUSH_TAG) != 0))
		return;
	request = request_of(file, sqe->user_data);
	if ((request != NULL) && (request->io->operation == VDO_IO_WRITE) &&
	    ((request->io->flags & VDO_IO_PREFLUSH) != 0))
		sqe->flags |= IOSQE_IO_DRAIN;
}

/* Whether a submission refused with @error may succeed if tried again. */
static bool is_transient(int error)
{
	return (error == EAGAIN) || (error == EBUSY) || (error == EINTR);
}

/*
 * Submit every queued entry; see the top of the file for what happens when the kernel refuses.
 * Mutex held; a submitter other than the reaper lets go of it while it waits to retry.
 *
 * Return: DD_SUCCESS if the queue is empty; otherwise why not (the requests of any entries
 *         dropped have been failed already).
 */
static int submit_queued(struct file_device *file)
{
	/* Only a reaper whose waits time out can come back to what it leaves queued. */
	bool on_reaper = ((reaping_for == file) && file->timed_waits);
	unsigned int retries = 0;
	int result = DD_SUCCESS;

	while ((result == DD_SUCCESS) && (io_uring_sq_ready(&file->ring) > 0)) {
		int taken;

		if (file->broken != DD_SUCCESS)
			return file->broken;
		taken = file->calls.submit(&file->ring);
		if (taken > 0) {
			keep_preflush_order(file);
			retries = 0;
			continue;
		}
		result = (taken == 0) ? EAGAIN : -taken;
		if (!is_transient(result) ||
		    ((on_reaper ? file->reaper_retries++ : retries++) >= TRANSIENT_RETRIES)) {
			dd_log_error_strerror(result,
			                      "%s: io_uring refused %u entries; failing them",
			                      file->path, io_uring_sq_ready(&file->ring));
			/* They become nops, which go with the next submission. */
			drop_queued(file, result);
		} else if (on_reaper) {
			file->reaper_deferred = true;
			return result;
		} else {
			pthread_mutex_unlock(&file->mutex);
			dd_sleep_ns(DD_NSEC_PER_MSEC);
			pthread_mutex_lock(&file->mutex);
			result = DD_SUCCESS;
		}
	}
	if (on_reaper) {
		file->reaper_deferred = false;
		file->reaper_retries = 0;
	}
	return result;
}

/*
 * Make room for @needed entries in the submission queue. Mutex held (see submit_queued()).
 *
 * Return: DD_SUCCESS, or the error that prevents it; in particular the ring's breaking, which
 * may have happened while the mutex was let go: no request may take a slot once break_ring()
 * may have failed those in the ring.
 */
static int make_room(struct file_device *file, unsigned int needed)
{
	while (io_uring_sq_space_left(&file->ring) < needed) {
		int result = submit_queued(file);

		if (result != DD_SUCCESS)
			return result;
	}
	return file->broken;
}

/*
 * Queue @io's entries (a preflush write's two in one go, so that one submission takes both and
 * keeps their link). Mutex held.
 *
 * Return: DD_SUCCESS, or why @io could not be queued (then nothing of it is).
 */
static int prepare_ring_entries(struct file_device *file, struct vdo_io *io)
{
	bool preflush = ((io->operation == VDO_IO_WRITE) && ((io->flags & VDO_IO_PREFLUSH) != 0));
	unsigned int bytes = io->count * VDO_BLOCK_SIZE;
	uint64_t offset = io->block * VDO_BLOCK_SIZE;
	struct io_uring_sqe *sqe;
	uint64_t data;
	int result = make_room(file, preflush ? 2 : 1);

	if (result == DD_SUCCESS)
		result = take_slot(file, io, preflush ? 2 : 1, &data);
	if (result != DD_SUCCESS)
		return result;
	handed_to_kernel(io);
	if (io->operation == VDO_IO_FLUSH) {
		sqe = next_entry(file);
		io_uring_prep_fsync(sqe, file->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, data);
		return DD_SUCCESS;
	}
	if (preflush) {
		sqe = next_entry(file);
		io_uring_prep_fsync(sqe, file->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		io_uring_sqe_set_data64(sqe, data | PREFLUSH_TAG);
	}
	sqe = next_entry(file);
	if (io->operation == VDO_IO_READ) {
		io_uring_prep_read(sqe, file->fd, io->buffer, bytes, offset);
	} else {
		io_uring_prep_write(sqe, file->fd, io->buffer, bytes, offset);
		if ((io->flags & VDO_IO_FUA) != 0)
			sqe->rw_flags = RWF_DSYNC;
	}
	io_uring_sqe_set_data64(sqe, data);
	return DD_SUCCESS;
}

/* Start @io through the ring, or fail it through the pool's thread. Mutex held. */
static void submit_to_ring(struct file_device *file, struct vdo_io *io)
{
	int result = io->result;

	if (result == DD_SUCCESS)
		result = file->broken;
	if (result == DD_SUCCESS)
		result = prepare_ring_entries(file, io);
	if (result != DD_SUCCESS) {
		fail_later(file, io, result);
		return;
	}
	/* What the kernel refuses is failed by submit_queued() itself, @io among them or not. */
	(void) submit_queued(file);
}

/* The block_device_operations submit. */
static void file_submit(struct block_device *device, struct vdo_io *io)
{
	struct file_device *file = as_file(device);

	pthread_mutex_lock(&file->mutex);
	file->in_flight++;
	if (file->use_ring)
		submit_to_ring(file, io);
	else
		enqueue(file, io);
	pthread_mutex_unlock(&file->mutex);
}

/* Handle one completion entry; return false for the stop marker. */
static bool reap(struct file_device *file, const struct io_uring_cqe *cqe)
{
	uint64_t data = cqe->user_data;
	struct ring_request *request;
	struct vdo_io *io;
	uint32_t transferred;
	int result;

	if (data == STOP_DATA)
		return false;
	if (data == DROPPED_DATA)
		return true;
	pthread_mutex_lock(&file->mutex);
	request = request_of(file, data);
	if (request == NULL) {
		pthread_mutex_unlock(&file->mutex);
		return true;
	}
	if ((cqe->res < 0) && (request->result == DD_SUCCESS))
		request->result = -cqe->res;
	else if ((cqe->res >= 0) && ((data & PREFLUSH_TAG) == 0))
		request->transferred = (uint32_t) cqe->res;
	if (--request->entries > 0) {
		/* The other half of a preflush write is still to come; it reports. */
		pthread_mutex_unlock(&file->mutex);
		return true;
	}
	io = request->io;
	result = (file->broken != DD_SUCCESS) ? file->broken : request->result;
	transferred = request->transferred;
	release_slot(file, request);
	pthread_mutex_unlock(&file->mutex);

	taken_from_kernel(io);
	if ((result == DD_SUCCESS) && (io->operation != VDO_IO_FLUSH) &&
	    ((size_t) transferred < (size_t) io->count * VDO_BLOCK_SIZE))
		result = transfer_rest(file, io, transferred);
	request_done(file, io, result);
	return true;
}

/*
 * The reaper cannot wait for completions any more: fail every request in the ring, and every
 * later one, with @error.
 */
static void break_ring(struct file_device *file, int error)
{
	struct io_uring_cqe *cqe;

	dd_log_error_strerror(error, "%s: cannot wait for io_uring; failing every request",
	                      file->path);
	pthread_mutex_lock(&file->mutex);
	file->broken = error;
	pthread_mutex_unlock(&file->mutex);

	/* Peeking needs no waiting: take what the kernel still finishes, for a moment. */
	for (unsigned int waited = 0; waited < BROKEN_GRACE_MS; waited++) {
		bool left;

		while (io_uring_peek_cqe(&file->ring, &cqe) == 0) {
			(void) reap(file, cqe);
			io_uring_cqe_seen(&file->ring, cqe);
		}
		pthread_mutex_lock(&file->mutex);
		left = (file->requests_in_ring > 0);
		pthread_mutex_unlock(&file->mutex);
		if (!left)
			break;
		dd_sleep_ns(DD_NSEC_PER_MSEC);
	}

	pthread_mutex_lock(&file->mutex);
	for (uint32_t slot = 0; slot < file->slot_count; slot++) {
		struct ring_request *request = &file->requests[slot];

		while (request->entries > 0)
			lose_entry(file, request, error);
	}
	pthread_mutex_unlock(&file->mutex);
}

/* Submit again what the reaper left queued after a transient refusal. */
static void retry_deferred(struct file_device *file)
{
	pthread_mutex_lock(&file->mutex);
	/* What the kernel refuses for good is failed by submit_queued() itself. */
	(void) submit_queued(file);
	pthread_mutex_unlock(&file->mutex);
}

/* Whether the device is closing (checked when the reaper's wait times out). */
static bool stop_requested(struct file_device *file)
{
	bool stopping;

	pthread_mutex_lock(&file->mutex);
	stopping = file->stopping;
	pthread_mutex_unlock(&file->mutex);
	return stopping;
}

/* Wait for the next completion: a second at most, or a millisecond when entries wait to go. */
static int wait_for_completion(struct file_device *file, struct io_uring_cqe **cqe_ptr)
{
	struct __kernel_timespec timeout = { .tv_sec = 1 };

	if (file->reaper_deferred)
		timeout = (struct __kernel_timespec){ .tv_nsec = DD_NSEC_PER_MSEC };
	/* Without IORING_FEAT_EXT_ARG liburing would queue a timeout entry of its own. */
	if (!file->timed_waits)
		return file->calls.wait(&file->ring, cqe_ptr, NULL);
	return file->calls.wait(&file->ring, cqe_ptr, &timeout);
}

/* The reaper: completes what the ring completes, until told to stop or the ring breaks. */
static void *reaper_thread(void *argument)
{
	struct file_device *file = argument;
	bool running = true;

	dd_log_set_thread_name("filedev");
	pthread_setname_np(pthread_self(), "filedev");
	reaping_for = file;
	while (running) {
		struct io_uring_cqe *cqe;
		int result;

		if (file->reaper_deferred)
			retry_deferred(file);
		result = wait_for_completion(file, &cqe);
		if (result == -EINTR)
			continue;
		if (result == -ETIME) {
			running = !stop_requested(file);
			continue;
		}
		if (result < 0) {
			break_ring(file, -result);
			break;
		}
		running = reap(file, cqe);
		io_uring_cqe_seen(&file->ring, cqe);
	}
	return NULL;
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

/* Ask the reaper to stop, by an entry it will reap last. Mutex held. */
static void stop_reaper(struct file_device *file)
{
	int result = make_room(file, 1);

	if (result == DD_SUCCESS) {
		struct io_uring_sqe *sqe = next_entry(file);

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, STOP_DATA);
		result = submit_queued(file);
	}
	if (result != DD_SUCCESS)
		dd_log_error_strerror(result, "%s: cannot tell the reaper to stop; it will see it",
		                      file->path);
}

/* Wait for every request in flight, then stop and join the device's threads. */
static void stop_threads(struct file_device *file)
{
	pthread_mutex_lock(&file->mutex);
	while (file->in_flight > 0)
		pthread_cond_wait(&file->idle, &file->mutex);
	file->stopping = true;
	/* A broken ring's reaper is gone already. */
	if (file->use_ring && (file->thread_count > 0) && (file->broken == DD_SUCCESS))
		stop_reaper(file);
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
	dd_free(file->requests);
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

/*
 * With a ring: the reaper, and one pool thread for the requests failed before they reach the
 * kernel. Without: the pool.
 */
static int start_threads(struct file_device *file)
{
	int result = io_uring_queue_init(RING_ENTRIES, &file->ring, 0);

	file->use_ring = (result == 0);
	if (!file->use_ring)
		dd_log_info("%s: io_uring unavailable (%s); using a thread pool", file->path,
		            strerror(-result));
	if (file->use_ring) {
		file->calls = ring_calls;
		file->timed_waits = ((file->ring.features & IORING_FEAT_EXT_ARG) != 0);
		result = grow_slots(file, INITIAL_SLOTS);
		if (result != DD_SUCCESS)
			return result;
	}
	for (unsigned int t = 0; t < (file->use_ring ? 2 : POOL_THREADS); t++) {
		bool reaper = (file->use_ring && (t == 0));

		if (pthread_create(&file->threads[t], NULL, reaper ? reaper_thread : pool_thread,
		                   file) != 0)
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
	file->free_slot = NO_SLOT;
	pthread_mutex_init(&file->mutex, NULL);
	pthread_cond_init(&file->work, NULL);
	pthread_cond_init(&file->idle, NULL);
	result = dd_duplicate(path, strlen(path) + 1, "device path", &file->path);
	if (result != DD_SUCCESS) {
		free_file_device(file);
		return result;
	}
	file->common = (struct block_device){ .operations = &file_operations,
		                                .name = file->path,
		                                .path = file->path };
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
