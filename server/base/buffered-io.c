// SPDX-License-Identifier: GPL-2.0-only
/*
 * Buffered, checksummed streams; see buffered-io.h for the on-disk format.
 *
 * Both sides move blocks in batches of up to BATCH_BLOCKS, one pread() or pwrite() per batch, so
 * that a large save costs few system calls. The writer keeps the block being filled open until
 * more data arrives or the writer is finished: that is how the last block of a stream, and only
 * it, comes to carry the final flag, and why every other block is full. The reader reads a batch
 * ahead but verifies each block only when the stream reaches it, because whatever follows the
 * final block in the region is not part of the stream and may be anything.
 *
 * Header fields are encoded and decoded byte by byte in little-endian order, never by copying a
 * struct, so the format is the same on every host and compiler.
 */
#include "buffered-io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	/* Blocks moved by one system call. */
	BATCH_BLOCKS = 32,
	/* Where each field lives in a block; see buffered-io.h. */
	OFFSET_MAGIC = 0,
	OFFSET_VERSION = 4,
	OFFSET_FLAGS = 6,
	OFFSET_SEQUENCE = 8,
	OFFSET_NONCE = 16,
	OFFSET_PAYLOAD_BYTES = 24,
	OFFSET_RESERVED = 28,
	OFFSET_PAYLOAD = DD_BUFFERED_HEADER_SIZE,
	OFFSET_CHECKSUM = DD_BUFFERED_BLOCK_SIZE - DD_BUFFERED_TRAILER_SIZE,
	/* Bytes of a stream read at a time by dd_verify_buffered_data(). */
	VERIFY_CHUNK = 256,
	/* Longest explanation of a bad block. */
	REASON_MAX = 256,
};

_Static_assert(OFFSET_RESERVED + 4 == OFFSET_PAYLOAD, "header fields fill the header");
_Static_assert(OFFSET_PAYLOAD + DD_BUFFERED_PAYLOAD_SIZE == OFFSET_CHECKSUM, "payload size");
_Static_assert(sizeof(off_t) == sizeof(int64_t), "off_t must be 64 bits");

/* A block header, decoded. */
struct block_header {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint64_t sequence;
	uint64_t nonce;
	uint32_t payload_bytes;
	uint32_t reserved;
};

struct dd_buffered_writer {
	int fd;
	off_t offset;
	uint64_t nonce;
	/* Blocks in the region, and the payload bytes they can carry. */
	size_t region_blocks;
	size_t capacity;
	/* Payload bytes accepted so far. */
	size_t total;
	/* Room for batch_blocks blocks; block k of it is block batch_start + k of the stream. */
	uint8_t *buffer;
	size_t batch_blocks;
	size_t batch_start;
	/* Blocks of the buffer sealed and waiting to be written; the next one is being filled. */
	size_t sealed;
	/* Payload bytes in the block being filled. */
	size_t fill;
	/* The first error met, returned by every later call. */
	int error;
	bool finished;
};

struct dd_buffered_reader {
	int fd;
	off_t offset;
	uint64_t nonce;
	size_t region_blocks;
	/* Room for batch_blocks blocks; batch_count of them, from batch_start on, are loaded. */
	uint8_t *buffer;
	size_t batch_blocks;
	size_t batch_start;
	size_t batch_count;
	/* The current block, verified, and where it is in the stream. */
	const uint8_t *block;
	size_t index;
	size_t payload_bytes;
	bool final;
	/* Payload bytes of the current block already handed out. */
	size_t cursor;
	/* The first bad block or I/O error met, returned by every later read. */
	int error;
};

static void encode_header(uint8_t *block, const struct block_header *header)
{
	dd_put_le32(block + OFFSET_MAGIC, header->magic);
	dd_put_le16(block + OFFSET_VERSION, header->version);
	dd_put_le16(block + OFFSET_FLAGS, header->flags);
	dd_put_le64(block + OFFSET_SEQUENCE, header->sequence);
	dd_put_le64(block + OFFSET_NONCE, header->nonce);
	dd_put_le32(block + OFFSET_PAYLOAD_BYTES, header->payload_bytes);
	dd_put_le32(block + OFFSET_RESERVED, header->reserved);
}

static void decode_header(const uint8_t *block, struct block_header *header)
{
	header->magic = dd_get_le32(block + OFFSET_MAGIC);
	header->version = dd_get_le16(block + OFFSET_VERSION);
	header->flags = dd_get_le16(block + OFFSET_FLAGS);
	header->sequence = dd_get_le64(block + OFFSET_SEQUENCE);
	header->nonce = dd_get_le64(block + OFFSET_NONCE);
	header->payload_bytes = dd_get_le32(block + OFFSET_PAYLOAD_BYTES);
	header->reserved = dd_get_le32(block + OFFSET_RESERVED);
}

/* The checksum a block should carry when written with @nonce. */
static uint64_t compute_checksum(const uint8_t *block, uint64_t nonce)
{
	return XXH3_64bits_withSeed(block, OFFSET_CHECKSUM, nonce);
}

static bool is_all_zero(const uint8_t *bytes, size_t length)
{
	for (size_t i = 0; i < length; i++) {
		if (bytes[i] != 0)
			return false;
	}
	return true;
}

static size_t min_size(size_t a, size_t b)
{
	return (a < b) ? a : b;
}

size_t dd_buffered_stream_size(size_t payload_bytes)
{
	size_t blocks = payload_bytes / DD_BUFFERED_PAYLOAD_SIZE;

	if ((payload_bytes % DD_BUFFERED_PAYLOAD_SIZE != 0) || (blocks == 0))
		blocks++;
	if (blocks > SIZE_MAX / DD_BUFFERED_BLOCK_SIZE)
		return SIZE_MAX;
	return blocks * DD_BUFFERED_BLOCK_SIZE;
}

/* Check the arguments that place a stream, for the writer or the reader. */
static int check_region(int fd, off_t offset, size_t region_size)
{
	if (fd < 0)
		return dd_log_warning_strerror(DD_INVALID_ARGUMENT, "bad file descriptor %d", fd);
	if (offset < 0)
		return dd_log_warning_strerror(DD_INVALID_ARGUMENT, "negative stream offset %lld",
		                               (long long) offset);
	if ((region_size == 0) || (region_size % DD_BUFFERED_BLOCK_SIZE != 0))
		return dd_log_warning_strerror(
		    DD_INVALID_ARGUMENT,
		    "stream region of %zu bytes is not a whole number of %d-byte blocks",
		    region_size, DD_BUFFERED_BLOCK_SIZE);
	if ((uint64_t) region_size > (uint64_t) (INT64_MAX - offset))
		return dd_log_warning_strerror(
		    DD_INVALID_ARGUMENT,
		    "stream region at %lld of %zu bytes passes the largest file offset",
		    (long long) offset, region_size);
	return DD_SUCCESS;
}

/* Allocate a block-aligned buffer of @blocks blocks. */
static int allocate_batch(size_t blocks, const char *what, uint8_t **buffer_ptr)
{
	return dd_allocate_aligned(blocks * DD_BUFFERED_BLOCK_SIZE, DD_BUFFERED_BLOCK_SIZE, what,
	                           buffer_ptr);
}

/* pwrite() all of @length bytes, resuming after signals and short writes. */
static int write_fully(int fd, const uint8_t *buffer, size_t length, off_t offset)
{
	while (length > 0) {
		ssize_t written = pwrite(fd, buffer, length, offset);

		if ((written < 0) && (errno == EINTR))
			continue;
		if (written < 0)
			return dd_log_warning_strerror(errno, "cannot write %zu bytes at %lld",
			                               length, (long long) offset);
		if (written == 0)
			return dd_log_warning_strerror(ENOSPC,
			                               "no progress writing %zu bytes at %lld",
			                               length, (long long) offset);
		buffer += written;
		length -= (size_t) written;
		offset += written;
	}
	return DD_SUCCESS;
}

/* pread() up to @length bytes, stopping early only at the end of the file. */
static int read_fully(int fd, uint8_t *buffer, size_t length, off_t offset, size_t *read_ptr)
{
	size_t done = 0;

	while (done < length) {
		ssize_t count = pread(fd, buffer + done, length - done, offset + (off_t) done);

		if ((count < 0) && (errno == EINTR))
			continue;
		if (count < 0)
			return dd_log_warning_strerror(errno, "cannot read %zu bytes at %lld",
			                               length - done, (long long) (offset + done));
		if (count == 0)
			break;
		done += (size_t) count;
	}
	*read_ptr = done;
	return DD_SUCCESS;
}

int dd_make_buffered_writer(int fd, off_t offset, size_t region_size, uint64_t nonce,
                            struct dd_buffered_writer **writer_ptr)
{
	struct dd_buffered_writer *writer;
	int result = check_region(fd, offset, region_size);

	if (result != DD_SUCCESS)
		return result;
	result = dd_allocate(sizeof(*writer), "buffered writer", &writer);
	if (result != DD_SUCCESS)
		return result;
	writer->fd = fd;
	writer->offset = offset;
	writer->nonce = nonce;
	writer->region_blocks = region_size / DD_BUFFERED_BLOCK_SIZE;
	writer->capacity = writer->region_blocks * DD_BUFFERED_PAYLOAD_SIZE;
	writer->batch_blocks = min_size(BATCH_BLOCKS, writer->region_blocks);
	result = allocate_batch(writer->batch_blocks, "buffered writer blocks", &writer->buffer);
	if (result != DD_SUCCESS) {
		dd_free(writer);
		return result;
	}
	*writer_ptr = writer;
	return DD_SUCCESS;
}

static uint8_t *open_block(struct dd_buffered_writer *writer)
{
	return writer->buffer + writer->sealed * DD_BUFFERED_BLOCK_SIZE;
}

/* Complete the block being filled: header, zeroed tail, checksum. */
static void seal_block(struct dd_buffered_writer *writer, bool final)
{
	uint8_t *block = open_block(writer);
	struct block_header header = {
		.magic = DD_BUFFERED_MAGIC,
		.version = DD_BUFFERED_VERSION,
		.flags = final ? DD_BUFFERED_FINAL : 0,
		.sequence = writer->batch_start + writer->sealed,
		.nonce = writer->nonce,
		.payload_bytes = (uint32_t) writer->fill,
	};

	encode_header(block, &header);
	memset(block + OFFSET_PAYLOAD + writer->fill, 0, DD_BUFFERED_PAYLOAD_SIZE - writer->fill);
	dd_put_le64(block + OFFSET_CHECKSUM, compute_checksum(block, writer->nonce));
	writer->sealed++;
	writer->fill = 0;
}

/* Write the sealed blocks of the buffer to their place in the region. */
static int flush_batch(struct dd_buffered_writer *writer)
{
	off_t position = writer->offset + (off_t) (writer->batch_start * DD_BUFFERED_BLOCK_SIZE);
	int result = write_fully(writer->fd, writer->buffer,
	                         writer->sealed * DD_BUFFERED_BLOCK_SIZE, position);

	if (result != DD_SUCCESS) {
		writer->error = result;
		return result;
	}
	writer->batch_start += writer->sealed;
	writer->sealed = 0;
	return DD_SUCCESS;
}

/* Seal the full block being filled and open the next, writing the batch when it is full. */
static int advance_block(struct dd_buffered_writer *writer)
{
	seal_block(writer, false);
	if (writer->sealed < writer->batch_blocks)
		return DD_SUCCESS;
	return flush_batch(writer);
}

static int check_writer_usable(struct dd_buffered_writer *writer)
{
	if (writer->error != DD_SUCCESS)
		return writer->error;
	if (writer->finished)
		return dd_log_warning_strerror(DD_BAD_STATE, "buffered stream at %lld is finished",
		                               (long long) writer->offset);
	return DD_SUCCESS;
}

/* Log and return the error for a write of @length bytes that does not fit in the region. */
static int report_overflow(const struct dd_buffered_writer *writer, size_t length)
{
	return dd_log_warning_strerror(
	    DD_OVERFLOW,
	    "buffered stream at %lld: %zu more bytes overflow its %zu blocks (%zu of %zu used)",
	    (long long) writer->offset, length, writer->region_blocks, writer->total,
	    writer->capacity);
}

int dd_write_to_buffered_writer(struct dd_buffered_writer *writer, const void *data, size_t length)
{
	const uint8_t *bytes = data;
	int result = check_writer_usable(writer);

	if (result != DD_SUCCESS)
		return result;
	if (length > writer->capacity - writer->total)
		return report_overflow(writer, length);
	writer->total += length;
	while (length > 0) {
		size_t chunk;

		if (writer->fill == DD_BUFFERED_PAYLOAD_SIZE) {
			result = advance_block(writer);
			if (result != DD_SUCCESS)
				return result;
		}
		chunk = min_size(DD_BUFFERED_PAYLOAD_SIZE - writer->fill, length);
		memcpy(open_block(writer) + OFFSET_PAYLOAD + writer->fill, bytes, chunk);
		writer->fill += chunk;
		bytes += chunk;
		length -= chunk;
	}
	return DD_SUCCESS;
}

/* fdatasync() the file, resuming after signals. */
static int sync_file(int fd)
{
	while (fdatasync(fd) != 0) {
		if (errno != EINTR)
			return dd_log_warning_strerror(errno, "cannot sync buffered stream");
	}
	return DD_SUCCESS;
}

int dd_finish_buffered_writer(struct dd_buffered_writer *writer, bool sync)
{
	int result = check_writer_usable(writer);

	if (result != DD_SUCCESS)
		return result;
	seal_block(writer, true);
	writer->finished = true;
	result = flush_batch(writer);
	if ((result == DD_SUCCESS) && sync) {
		result = sync_file(writer->fd);
		writer->error = result;
	}
	return result;
}

void dd_free_buffered_writer(struct dd_buffered_writer *writer)
{
	if (writer == NULL)
		return;
	if (!writer->finished && (writer->error == DD_SUCCESS))
		dd_log_debug("buffered stream at %lld abandoned before it was finished",
		             (long long) writer->offset);
	dd_free(writer->buffer);
	dd_free(writer);
}

/* Log why block @index of the stream is refused, and return @error. */
static int __attribute__((format(printf, 4, 5)))
block_error(const struct dd_buffered_reader *reader, size_t index, int error, const char *format,
            ...)
{
	char reason[REASON_MAX];
	va_list args;

	va_start(args, format);
	vsnprintf(reason, sizeof(reason), format, args);
	va_end(args);
	return dd_log_warning_strerror(error, "buffered stream at %lld, block %zu: %s",
	                               (long long) reader->offset, index, reason);
}

/* Explain a block whose checksum does not match, as precisely as its contents allow. */
static int diagnose_checksum(const struct dd_buffered_reader *reader, const uint8_t *block,
                             size_t index, const struct block_header *header)
{
	uint64_t stored = dd_get_le64(block + OFFSET_CHECKSUM);

	if (is_all_zero(block, DD_BUFFERED_BLOCK_SIZE))
		return block_error(
		    reader, index, DD_BAD_MAGIC,
		    "zeroed block: the stream has no final block (truncated or never written)");
	if (header->magic != DD_BUFFERED_MAGIC)
		return block_error(
		    reader, index, DD_BAD_MAGIC,
		    "magic 0x%08x is not a stream block's: overwritten, or the stream is truncated",
		    header->magic);
	if (header->version != DD_BUFFERED_VERSION)
		return block_error(reader, index, DD_UNSUPPORTED_VERSION,
		                   "format version %u (this build reads %u), or a damaged block",
		                   header->version, DD_BUFFERED_VERSION);
	if ((header->nonce != reader->nonce) && (compute_checksum(block, header->nonce) == stored))
		return block_error(
		    reader, index, DD_CHECKSUM_MISMATCH,
		    "block of another stream or an older save (nonce 0x%016llx, not 0x%016llx)",
		    (unsigned long long) header->nonce, (unsigned long long) reader->nonce);
	return block_error(reader, index, DD_CHECKSUM_MISMATCH,
	                   "damaged block: checksum 0x%016llx stored, 0x%016llx computed",
	                   (unsigned long long) stored,
	                   (unsigned long long) compute_checksum(block, reader->nonce));
}

/* Check the fields that say what a block is: magic, version, nonce, flags, reserved. */
static int check_identity(const struct dd_buffered_reader *reader, size_t index,
                          const struct block_header *header)
{
	if (header->magic != DD_BUFFERED_MAGIC)
		return block_error(reader, index, DD_BAD_MAGIC, "bad magic 0x%08x", header->magic);
	if (header->version != DD_BUFFERED_VERSION)
		return block_error(reader, index, DD_UNSUPPORTED_VERSION,
		                   "format version %u, this build reads %u", header->version,
		                   DD_BUFFERED_VERSION);
	if (header->nonce != reader->nonce)
		return block_error(
		    reader, index, DD_CORRUPT_DATA, "nonce 0x%016llx, expected 0x%016llx",
		    (unsigned long long) header->nonce, (unsigned long long) reader->nonce);
	if (((header->flags & ~DD_BUFFERED_FINAL) != 0) || (header->reserved != 0))
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "reserved bits set (flags 0x%04x, reserved 0x%08x)",
		                   header->flags, header->reserved);
	if (header->sequence != index)
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "carries sequence number %llu: misplaced block",
		                   (unsigned long long) header->sequence);
	return DD_SUCCESS;
}

/* Check the payload count against the rules for full, final and empty blocks. */
static int check_payload(const struct dd_buffered_reader *reader, const uint8_t *block,
                         size_t index, const struct block_header *header)
{
	bool final = (header->flags & DD_BUFFERED_FINAL) != 0;
	size_t count = header->payload_bytes;

	if (count > DD_BUFFERED_PAYLOAD_SIZE)
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "payload of %zu bytes exceeds the %d a block holds", count,
		                   DD_BUFFERED_PAYLOAD_SIZE);
	if (!final && (count != DD_BUFFERED_PAYLOAD_SIZE))
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "non-final block holds only %zu payload bytes", count);
	if (final && (count == 0) && (index != 0))
		return block_error(reader, index, DD_CORRUPT_DATA, "empty final block");
	if (!is_all_zero(block + OFFSET_PAYLOAD + count, DD_BUFFERED_PAYLOAD_SIZE - count))
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "bytes after the payload are not zero");
	return DD_SUCCESS;
}

/* Verify block @index of the stream, at @block, and decode its header into @header. */
static int verify_block(const struct dd_buffered_reader *reader, const uint8_t *block, size_t index,
                        struct block_header *header)
{
	int result;

	decode_header(block, header);
	if (compute_checksum(block, reader->nonce) != dd_get_le64(block + OFFSET_CHECKSUM))
		return diagnose_checksum(reader, block, index, header);
	result = check_identity(reader, index, header);
	if (result != DD_SUCCESS)
		return result;
	return check_payload(reader, block, index, header);
}

/* Make block @index of the stream available in the buffer, reading a batch if needed. */
static int fetch_block(struct dd_buffered_reader *reader, size_t index, const uint8_t **block_ptr)
{
	size_t wanted = min_size(reader->batch_blocks, reader->region_blocks - index);
	off_t position = reader->offset + (off_t) (index * DD_BUFFERED_BLOCK_SIZE);
	size_t bytes_read = 0;
	int result;

	if ((index < reader->batch_start) || (index >= reader->batch_start + reader->batch_count)) {
		reader->batch_start = index;
		reader->batch_count = 0;
		result = read_fully(reader->fd, reader->buffer, wanted * DD_BUFFERED_BLOCK_SIZE,
		                    position, &bytes_read);
		if (result != DD_SUCCESS)
			return result;
		reader->batch_count = bytes_read / DD_BUFFERED_BLOCK_SIZE;
		if (reader->batch_count == 0)
			return block_error(
			    reader, index, DD_CORRUPT_DATA,
			    "the file ends before this block: the stream is truncated");
	}
	*block_ptr = reader->buffer + (index - reader->batch_start) * DD_BUFFERED_BLOCK_SIZE;
	return DD_SUCCESS;
}

/* Read and verify block @index and make it the current block. */
static int load_block(struct dd_buffered_reader *reader, size_t index)
{
	struct block_header header;
	const uint8_t *block = NULL;
	int result;

	if (index >= reader->region_blocks)
		return block_error(reader, index, DD_CORRUPT_DATA,
		                   "the region of %zu blocks ends without the stream's final block",
		                   reader->region_blocks);
	result = fetch_block(reader, index, &block);
	if (result == DD_SUCCESS)
		result = verify_block(reader, block, index, &header);
	if (result != DD_SUCCESS)
		return result;
	reader->block = block;
	reader->index = index;
	reader->payload_bytes = header.payload_bytes;
	reader->final = (header.flags & DD_BUFFERED_FINAL) != 0;
	reader->cursor = 0;
	return DD_SUCCESS;
}

/*
 * Make sure the current block has bytes left to read, moving to the next block if need be.
 * Returns DD_END_OF_FILE, without logging, at the end of the stream.
 */
static int ensure_data(struct dd_buffered_reader *reader)
{
	int result;

	if (reader->error != DD_SUCCESS)
		return reader->error;
	if (reader->cursor < reader->payload_bytes)
		return DD_SUCCESS;
	if (reader->final)
		return DD_END_OF_FILE;
	result = load_block(reader, reader->index + 1);
	reader->error = result;
	return result;
}

int dd_make_buffered_reader(int fd, off_t offset, size_t region_size, uint64_t nonce,
                            struct dd_buffered_reader **reader_ptr)
{
	struct dd_buffered_reader *reader;
	int result = check_region(fd, offset, region_size);

	if (result != DD_SUCCESS)
		return result;
	result = dd_allocate(sizeof(*reader), "buffered reader", &reader);
	if (result != DD_SUCCESS)
		return result;
	reader->fd = fd;
	reader->offset = offset;
	reader->nonce = nonce;
	reader->region_blocks = region_size / DD_BUFFERED_BLOCK_SIZE;
	reader->batch_blocks = min_size(BATCH_BLOCKS, reader->region_blocks);
	result = allocate_batch(reader->batch_blocks, "buffered reader blocks", &reader->buffer);
	if (result == DD_SUCCESS)
		result = load_block(reader, 0);
	if (result != DD_SUCCESS) {
		dd_free_buffered_reader(reader);
		return result;
	}
	*reader_ptr = reader;
	return DD_SUCCESS;
}

int dd_read_from_buffered_reader(struct dd_buffered_reader *reader, void *data, size_t length)
{
	uint8_t *bytes = data;

	while (length > 0) {
		size_t chunk;
		int result = ensure_data(reader);

		if (result == DD_END_OF_FILE)
			return dd_log_warning_strerror(
			    result, "buffered stream at %lld ends %zu byte(s) short of a read",
			    (long long) reader->offset, length);
		if (result != DD_SUCCESS)
			return result;
		chunk = min_size(reader->payload_bytes - reader->cursor, length);
		memcpy(bytes, reader->block + OFFSET_PAYLOAD + reader->cursor, chunk);
		reader->cursor += chunk;
		bytes += chunk;
		length -= chunk;
	}
	return reader->error;
}

int dd_verify_buffered_data(struct dd_buffered_reader *reader, const void *expected, size_t length)
{
	const uint8_t *wanted = expected;
	uint8_t chunk[VERIFY_CHUNK];
	size_t matched = length;

	for (size_t done = 0; done < length;) {
		size_t count = min_size(sizeof(chunk), length - done);
		int result = dd_read_from_buffered_reader(reader, chunk, count);

		if (result != DD_SUCCESS)
			return result;
		for (size_t i = 0; (i < count) && (matched == length); i++) {
			if (chunk[i] != wanted[done + i])
				matched = done + i;
		}
		done += count;
	}
	if (matched != length)
		return dd_log_warning_strerror(
		    DD_CORRUPT_DATA,
		    "buffered stream at %lld: expected data differs at byte %zu of %zu",
		    (long long) reader->offset, matched, length);
	return DD_SUCCESS;
}

bool dd_buffered_reader_at_end(struct dd_buffered_reader *reader)
{
	return ensure_data(reader) == DD_END_OF_FILE;
}

void dd_free_buffered_reader(struct dd_buffered_reader *reader)
{
	if (reader == NULL)
		return;
	dd_free(reader->buffer);
	dd_free(reader);
}
