/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Backing storage for a vdo-store volume: the provider interface, and its two providers.
 *
 * The store sees its storage as an array of 4 KiB blocks and talks to it in asynchronous
 * requests (struct vdo_io) with the semantics of a disk with a volatile write cache:
 *
 *   - a write completes when the device has it, not when it is durable;
 *   - FLUSH makes every write that completed before the flush was submitted durable;
 *   - a write with VDO_IO_PREFLUSH is preceded by such a flush (the write is not started until
 *     the flush is done), and a write with VDO_IO_FUA is durable when it completes;
 *   - a write of one 4 KiB block may be torn at 512-byte sector boundaries by a power cut, but
 *     each sector is written whole or not at all.
 *
 * Requests complete by calling io->done on a thread of the provider, never on the submitter's
 * stack, so that a zone thread can submit while it holds its own state. Nothing about the order
 * of completion is promised, except that a write submitted after another to the same block,
 * once both complete, wins.
 *
 * Providers:
 *   - file-device.c: a regular file or a block device, through io_uring (one ring, a reaper
 *     thread); FLUSH is fdatasync, FUA is RWF_DSYNC, PREFLUSH a linked fdatasync. When io_uring
 *     refuses requests for good, or the reaper can no longer wait for completions, the requests
 *     concerned (then all of them) complete with its error instead of hanging.
 *   - ram-device.c: memory, for tests. It keeps what is durable apart from what was written
 *     since, so a test can cut the power: drop every unflushed write, or keep a random subset of
 *     them (with torn sectors). It can also fail chosen blocks with EIO.
 */
#ifndef VDO_BLOCK_DEVICE_H
#define VDO_BLOCK_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "time-utils.h"

enum {
	VDO_BLOCK_SIZE = 4096,
	VDO_SECTOR_SIZE = 512,
	VDO_SECTORS_PER_BLOCK = VDO_BLOCK_SIZE / VDO_SECTOR_SIZE,
};

enum vdo_io_operation {
	VDO_IO_READ = 0,
	VDO_IO_WRITE,
	/* Make every write completed before it durable. */
	VDO_IO_FLUSH,
};

enum vdo_io_flags {
	/* Write only: durable when it completes. */
	VDO_IO_FUA = 1,
	/* Write only: flush first. */
	VDO_IO_PREFLUSH = 2,
};

struct vdo_io;
typedef void (*vdo_io_done_fn)(struct vdo_io *io);

/* One request, owned by its submitter until done is called. */
struct vdo_io {
	enum vdo_io_operation operation;
	unsigned int flags;
	/* The first block and how many (reads and writes). */
	uint64_t block;
	uint32_t count;
	/* count * VDO_BLOCK_SIZE bytes, aligned to VDO_BLOCK_SIZE. */
	void *buffer;
	/* Called once, on a provider thread, with result set. */
	vdo_io_done_fn done;
	/* DD_SUCCESS or an errno value. */
	int result;
	/* For the submitter. */
	void *context;
	/* For the provider. */
	struct vdo_io *next;
};

struct block_device;

/* What every provider implements. */
struct block_device_operations {
	/* Start @io; if io->result already holds an error, just complete it with that. */
	void (*submit)(struct block_device *device, struct vdo_io *io);
	/* Learn the size again after the storage grew; return the new size in blocks. */
	int (*refresh_size)(struct block_device *device, uint64_t *blocks_ptr);
	/* Wait until every request submitted has been called back and its done has returned;
	 * return whether any had to be waited for. */
	bool (*drain)(struct block_device *device);
	void (*close)(struct block_device *device);
};

struct block_device_stats {
	uint64_t reads;
	uint64_t writes;
	uint64_t flushes;
	uint64_t blocks_read;
	uint64_t blocks_written;
	uint64_t errors;
};

/* The part common to every provider; a provider embeds it first. */
struct block_device {
	const struct block_device_operations *operations;
	const char *name;
	/* The file or block device it is, for whoever must open it as well (the embedded dedupe
	 * index); NULL for storage that is no file (the RAM device). */
	const char *path;
	uint64_t blocks;
	struct block_device_stats stats;
};

/**
 * vdo_submit_io() - Submit @io to @device; io->done is called on a provider thread.
 *
 * Requests outside the device or malformed (no buffer, zero count, flags on a read) complete
 * with DD_INVALID_ARGUMENT or DD_OUT_OF_RANGE.
 */
void vdo_submit_io(struct block_device *device, struct vdo_io *io);

/**
 * vdo_sync_io() - Do one request and wait for it (for formatting, loading and tools).
 *
 * Return: its result.
 */
int DD_MUST_CHECK vdo_sync_io(struct block_device *device, enum vdo_io_operation operation,
                              unsigned int flags, uint64_t block, uint32_t count, void *buffer);

/**
 * vdo_sync_io_batch() - Do @count requests at once (each with its operation, flags, block,
 *                       count and buffer set) and wait for all of them.
 *
 * Return: the first error of any of them, or DD_SUCCESS.
 */
int DD_MUST_CHECK vdo_sync_io_batch(struct block_device *device, struct vdo_io *ios,
                                    uint32_t count);

/** vdo_device_blocks() - The size of @device in blocks. */
uint64_t vdo_device_blocks(const struct block_device *device);

/** vdo_refresh_device_size() - Learn the size of @device again (after it grew). */
int DD_MUST_CHECK vdo_refresh_device_size(struct block_device *device);

/**
 * vdo_drain_device() - Wait until every request submitted to @device has completed and its done
 *                      callback has returned.
 *
 * The store does not use this to learn whether its zones have work coming back: an answer
 * that arrives just before the call is not waited for (see vio.h).
 *
 * Return: true if there was anything to wait for.
 */
bool vdo_drain_device(struct block_device *device);

/** vdo_get_device_stats() - A snapshot of @device's counters. */
void vdo_get_device_stats(struct block_device *device, struct block_device_stats *stats);

/** vdo_close_device() - Wait for every request in flight, then free @device (NULL is fine). */
void vdo_close_device(struct block_device *device);

/**
 * vdo_open_file_device() - Open a regular file or block device as backing storage.
 * @path: the file; with @create_blocks > 0 a regular file is created or extended to that many
 *        blocks.
 *
 * A regular file must be a whole number of blocks long. O_DIRECT is used where the file system
 * supports it.
 */
int DD_MUST_CHECK vdo_open_file_device(const char *path, uint64_t create_blocks,
                                       struct block_device **device_ptr);

/* How the RAM device loses unflushed writes when the power is cut. */
enum ram_crash_mode {
	/* Every write since the last flush is lost. */
	RAM_CRASH_DROP_ALL = 0,
	/* Each block written since the last flush ends up with one of its versions (the durable one
	 * or any written since), chosen at random; a chosen new version may be torn, keeping a
	 * random subset of its sectors over the durable version. */
	RAM_CRASH_RANDOM,
};

/** vdo_make_ram_device() - A zero-filled RAM device of @blocks blocks (memory used lazily). */
int DD_MUST_CHECK vdo_make_ram_device(uint64_t blocks, struct block_device **device_ptr);

/**
 * vdo_ram_device_crash() - Cut the power. Requests in flight are waited for; then what became
 *                          durable is settled as @mode and @seed say and moves to a new device,
 *                          *@survivor_ptr, the disk as the next boot finds it. @device stays
 *                          powered off: every later request fails with EIO (it must still be
 *                          closed), so whatever still runs on it changes nothing.
 */
int DD_MUST_CHECK vdo_ram_device_crash(struct block_device *device, enum ram_crash_mode mode,
                                       uint64_t seed, struct block_device **survivor_ptr);

/** vdo_ram_device_grow() - Grow the RAM device to @blocks (seen after refresh_size). */
int DD_MUST_CHECK vdo_ram_device_grow(struct block_device *device, uint64_t blocks);

/**
 * vdo_ram_device_fail() - Make reads and writes touching blocks [@first, @first + @count) fail
 *                         with EIO (count 0: stop failing).
 */
void vdo_ram_device_fail(struct block_device *device, uint64_t first, uint64_t count);

/*
 * Delays that widen race windows, for tests: a dying disk answers its failing requests late,
 * and whoever waits for a device may be preempted just before it looks.
 */
struct ram_device_delays {
	/* A request that fails is completed this long after it was carried out. */
	dd_ktime_t error_ns;
	/* vdo_drain_device() sleeps this long before it looks at the requests in flight. */
	dd_ktime_t drain_ns;
};

/** vdo_ram_device_set_delays() - Set @device's delays (all zero by default). */
void vdo_ram_device_set_delays(struct block_device *device, struct ram_device_delays delays);

/**
 * vdo_ram_device_poke() - Change bytes of the durable (and current) image directly, to model
 *                         corruption; @offset is in bytes.
 */
void vdo_ram_device_poke(struct block_device *device, uint64_t offset, const void *bytes,
                         uint32_t size);

/** vdo_ram_device_unflushed() - How many blocks hold writes that are not durable yet. */
uint64_t vdo_ram_device_unflushed(struct block_device *device);

/* For tests only. */

struct io_uring;
struct io_uring_cqe;
struct __kernel_timespec;

/* The file device's calls into liburing that can fail, which a test may replace. */
struct vdo_ring_calls {
	/* As io_uring_submit(). */
	int (*submit)(struct io_uring *ring);
	/* As io_uring_wait_cqe_timeout(); the reaper's only wait. */
	int (*wait)(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
	            struct __kernel_timespec *timeout);
};

/**
 * vdo_set_file_device_ring_calls() - For tests only: file devices opened from now on use @calls
 *                                    (NULL: liburing's own) to submit and to wait, so that a
 *                                    test can make them fail. Not to be called while a file
 *                                    device is being opened.
 */
void vdo_set_file_device_ring_calls(const struct vdo_ring_calls *calls);

/* For providers. */

/** vdo_finish_io() - Set @io's result, count it in @device's stats and call io->done. */
void vdo_finish_io(struct block_device *device, struct vdo_io *io, int result);

#endif /* VDO_BLOCK_DEVICE_H */
