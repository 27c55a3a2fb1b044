/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Buffered, checksummed streams over a region of a file or block device.
 *
 * Everything the project saves to disk (index saves, chapter data, configuration, slab journals)
 * is written as a stream: a sequence of bytes that a writer appends and a reader later consumes
 * in the same order. A stream occupies a caller-chosen region [offset, offset + region_size) of
 * a file descriptor and is cut into fixed blocks of DD_BUFFERED_BLOCK_SIZE bytes. Every block is
 * checksummed and numbered so that a reader detects any corrupt, misplaced, stale or missing
 * block, and never hands a byte of one to its caller.
 *
 * ON-DISK FORMAT
 *
 * Block i of a stream (i = 0, 1, ...) lives at byte offset + i * 4096. All integers are
 * little-endian, whatever the host. Each block is laid out as follows:
 *
 *   offset size  field          contents
 *   ------ ----  -------------  ---------------------------------------------------------------
 *        0    4  magic          0x53424444, the bytes "DDBS" on disk: identifies a stream block.
 *        4    2  version        format version, 1. A reader refuses any other value.
 *        6    2  flags          bit 0: DD_BUFFERED_FINAL, set on the last block of the stream
 *                               and only there. The other bits are reserved and must be zero.
 *        8    8  sequence       i, the block's position in its stream. Catches blocks written
 *                               to, or read from, the wrong place.
 *       16    8  nonce          the nonce the stream was written with (see below). Used only to
 *                               tell in the log a stale or foreign block from a damaged one.
 *       24    4  payload bytes  bytes of payload in this block, at most
 *                               DD_BUFFERED_PAYLOAD_SIZE (4056). Every block but the final one
 *                               is full; the final block holds 1 to 4056 bytes, or 0 when the
 *                               whole stream is empty (the final block is then block 0).
 *       28    4  reserved       zero.
 *       32 4056  payload        the stream's bytes; the unused part of the final block is zero.
 *     4088    8  checksum       XXH3-64 of bytes 0 to 4087 of the block, seeded with the nonce.
 *
 * The nonce is chosen by the caller for each stream and each save (a generation count mixed with
 * the stream's identity, say). Because it seeds every checksum, a block left over from an older
 * save of the same stream, or from a different stream, does not validate even though its magic,
 * sequence and checksum are intact. A stream of n payload bytes needs
 * dd_buffered_stream_size(n) bytes of region: max(1, ceil(n / 4056)) blocks. What lies in the
 * region after the final block is never read as data.
 *
 * A reader verifies each block as it reaches it: the checksum, then magic, version, flags,
 * sequence, nonce, payload count, reserved and unused bytes. A stream whose final block is
 * missing (the file or region ends, or the next block is zeroed, stale or foreign) is refused
 * when the reader gets there, with the reason in the log; a caller that needs the whole stream
 * validated reads to the end and checks dd_buffered_reader_at_end().
 *
 * Writers and readers are not thread-safe; each belongs to one thread at a time. Errors are
 * sticky: after a failure, later calls on the same writer or reader return the same error.
 */
#ifndef DD_BUFFERED_IO_H
#define DD_BUFFERED_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

enum {
	/* Bytes in one on-disk block of a stream. */
	DD_BUFFERED_BLOCK_SIZE = 4096,
	/* Bytes of block header: magic, version, flags, sequence, nonce, payload bytes, reserved.
	 */
	DD_BUFFERED_HEADER_SIZE = 32,
	/* Bytes of block trailer: the checksum. */
	DD_BUFFERED_TRAILER_SIZE = 8,
	/* Bytes of payload one block carries. */
	DD_BUFFERED_PAYLOAD_SIZE =
	    DD_BUFFERED_BLOCK_SIZE - DD_BUFFERED_HEADER_SIZE - DD_BUFFERED_TRAILER_SIZE,
	/* The block magic, "DDBS" on disk. */
	DD_BUFFERED_MAGIC = 0x53424444,
	/* The format version this code writes and reads. */
	DD_BUFFERED_VERSION = 1,
	/* The flag marking the last block of a stream. */
	DD_BUFFERED_FINAL = 0x0001,
};

struct dd_buffered_writer;
struct dd_buffered_reader;

/**
 * dd_buffered_stream_size() - Bytes of file region needed to hold a stream (whole blocks).
 * @payload_bytes: bytes the stream will carry.
 *
 * Return: a multiple of DD_BUFFERED_BLOCK_SIZE, at least one block; SIZE_MAX if it would not fit
 *         in a size_t.
 */
size_t dd_buffered_stream_size(size_t payload_bytes);

/**
 * dd_make_buffered_writer() - Start writing a stream into a region of a file.
 * @fd: an open file descriptor, writable; it stays owned by the caller.
 * @offset: where the region starts (non-negative; block-aligned is best but not required).
 * @region_size: bytes of region, a non-zero multiple of DD_BUFFERED_BLOCK_SIZE.
 * @nonce: identifies this stream and this save; it seeds the block checksums.
 * @writer_ptr: receives the writer.
 *
 * Nothing is written until a batch of blocks fills or the writer is finished.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a bad fd, offset or size, or ENOMEM.
 */
int DD_MUST_CHECK dd_make_buffered_writer(int fd, off_t offset, size_t region_size, uint64_t nonce,
                                          struct dd_buffered_writer **writer_ptr);

/**
 * dd_write_to_buffered_writer() - Append bytes to a stream.
 * @writer: the writer.
 * @data: the bytes (may be NULL when @length is 0).
 * @length: how many.
 *
 * Return: DD_SUCCESS; DD_OVERFLOW, with nothing appended, if the stream would no longer fit in
 *         the region; DD_BAD_STATE after dd_finish_buffered_writer(); or an errno value from
 *         writing a full batch.
 */
int DD_MUST_CHECK dd_write_to_buffered_writer(struct dd_buffered_writer *writer, const void *data,
                                              size_t length);

/**
 * dd_finish_buffered_writer() - Write the rest of the stream, ending with its final block.
 * @writer: the writer; only dd_free_buffered_writer() may follow.
 * @sync: whether to fdatasync() the file before returning.
 *
 * Return: DD_SUCCESS, DD_BAD_STATE if already finished, or an errno value.
 */
int DD_MUST_CHECK dd_finish_buffered_writer(struct dd_buffered_writer *writer, bool sync);

/**
 * dd_free_buffered_writer() - Free a writer (NULL is ignored). Data not yet finished is lost: the
 *                             stream then has no final block and no reader accepts it.
 */
void dd_free_buffered_writer(struct dd_buffered_writer *writer);

/**
 * dd_make_buffered_reader() - Start reading a stream from a region of a file.
 * @fd: an open, readable file descriptor; it stays owned by the caller.
 * @offset: where the region starts, as given to the writer.
 * @region_size: bytes of region, a non-zero multiple of DD_BUFFERED_BLOCK_SIZE.
 * @nonce: the nonce the stream was written with.
 * @reader_ptr: receives the reader.
 *
 * The first block is read and verified at once, so that a region holding no valid stream (never
 * written, overwritten, written with another nonce) is refused here.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT, ENOMEM, an errno value from reading, or the error for
 *         a bad first block (see dd_read_from_buffered_reader()).
 */
int DD_MUST_CHECK dd_make_buffered_reader(int fd, off_t offset, size_t region_size, uint64_t nonce,
                                          struct dd_buffered_reader **reader_ptr);

/**
 * dd_read_from_buffered_reader() - Read exactly @length bytes of the stream.
 * @reader: the reader.
 * @data: receives the bytes (may be NULL when @length is 0).
 * @length: how many.
 *
 * On failure @data may hold a prefix of the bytes asked for; each of them was verified.
 *
 * Return: DD_SUCCESS; DD_END_OF_FILE if the stream ends first (the reader then stays at the end);
 *         for a bad block, DD_CHECKSUM_MISMATCH (damaged, stale or foreign), DD_BAD_MAGIC (not a
 *         stream block, e.g. zeroed), DD_UNSUPPORTED_VERSION or DD_CORRUPT_DATA (bad field,
 *         wrong sequence, or region or file ending without a final block); errno for I/O errors.
 */
int DD_MUST_CHECK dd_read_from_buffered_reader(struct dd_buffered_reader *reader, void *data,
                                               size_t length);

/**
 * dd_verify_buffered_data() - Read @length bytes and check that they equal @expected.
 *
 * Meant for magic strings and other fixed markers within a stream.
 *
 * Return: DD_SUCCESS, DD_CORRUPT_DATA if the bytes differ, or any error of
 *         dd_read_from_buffered_reader().
 */
int DD_MUST_CHECK dd_verify_buffered_data(struct dd_buffered_reader *reader, const void *expected,
                                          size_t length);

/**
 * dd_buffered_reader_at_end() - Tell whether every byte of the stream has been read.
 *
 * This may read and verify the next block. A reader in an error state, or one whose next block
 * is bad (the error is then logged and kept for the next read), is not at the end.
 */
bool dd_buffered_reader_at_end(struct dd_buffered_reader *reader);

/** dd_free_buffered_reader() - Free a reader (NULL is ignored). */
void dd_free_buffered_reader(struct dd_buffered_reader *reader);

#endif /* DD_BUFFERED_IO_H */
