// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the checksummed stream format: round trips of many shapes, streams side by side,
 * the on-disk layout byte by byte, and the reader's refusal of every kind of bad stream:
 * overflowed, foreign, stale, bit-flipped, truncated, misplaced or from another version.
 *
 * Every test works on an anonymous memory file (memfd_create), so nothing touches the disk.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "buffered-io.h"
#include "errors.h"
#include "logger.h"
#include "memory-alloc.h"
#include "test-harness.h"

enum {
	BLOCK = DD_BUFFERED_BLOCK_SIZE,
	PAYLOAD = DD_BUFFERED_PAYLOAD_SIZE,
	NONCE = 0x1234,
};

static int make_file(void)
{
	int fd = memfd_create("buffered-io-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static uint8_t *make_pattern(size_t length, unsigned int seed)
{
	uint8_t *data;

	assert_success(dd_allocate(length, "pattern", &data));
	for (size_t i = 0; i < length; i++)
		data[i] = (uint8_t) ((i * 131 + seed * 17 + (i >> 9)) ^ (i >> 3));
	return data;
}

/* Write @data as one stream, @chunk bytes per call (0: all at once). */
static void write_stream(int fd, off_t offset, size_t region, uint64_t nonce, const uint8_t *data,
                         size_t length, size_t chunk)
{
	struct dd_buffered_writer *writer;

	assert_success(dd_make_buffered_writer(fd, offset, region, nonce, &writer));
	if (chunk == 0)
		chunk = (length > 0) ? length : 1;
	for (size_t done = 0; done < length; done += chunk) {
		size_t count = (length - done < chunk) ? length - done : chunk;

		assert_success(dd_write_to_buffered_writer(writer, data + done, count));
	}
	assert_success(dd_finish_buffered_writer(writer, (length % 2) == 0));
	dd_free_buffered_writer(writer);
}

/* Read the whole stream back, @chunk bytes per call, and check it ends where it should. */
static void check_stream(int fd, off_t offset, size_t region, uint64_t nonce,
                         const uint8_t *expected, size_t length, size_t chunk)
{
	struct dd_buffered_reader *reader;
	uint8_t *data;
	uint8_t extra;

	assert_success(dd_allocate(length, "read back", &data));
	assert_success(dd_make_buffered_reader(fd, offset, region, nonce, &reader));
	if (chunk == 0)
		chunk = (length > 0) ? length : 1;
	for (size_t done = 0; done < length; done += chunk) {
		size_t count = (length - done < chunk) ? length - done : chunk;

		assert_false(dd_buffered_reader_at_end(reader));
		assert_success(dd_read_from_buffered_reader(reader, data + done, count));
	}
	assert_memory_equal(data, expected, length);
	assert_true(dd_buffered_reader_at_end(reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, &extra, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);
	dd_free(data);
}

/* Open a reader and read @length bytes; return the first error, or DD_SUCCESS. */
static int try_read(int fd, size_t region, uint64_t nonce, uint8_t *data, size_t length)
{
	struct dd_buffered_reader *reader;
	int result = dd_make_buffered_reader(fd, 0, region, nonce, &reader);

	if (result != DD_SUCCESS)
		return result;
	result = dd_read_from_buffered_reader(reader, data, length);
	dd_free_buffered_reader(reader);
	return result;
}

static void read_block(int fd, size_t index, uint8_t block[BLOCK])
{
	assert_int_equal(pread(fd, block, BLOCK, (off_t) (index * BLOCK)), BLOCK);
}

static void write_block(int fd, size_t index, const uint8_t block[BLOCK])
{
	assert_int_equal(pwrite(fd, block, BLOCK, (off_t) (index * BLOCK)), BLOCK);
}

static uint64_t le_field(const uint8_t *bytes, int size)
{
	uint64_t value = 0;

	for (int i = size - 1; i >= 0; i--)
		value = (value << 8) | bytes[i];
	return value;
}

static void put_le_field(uint8_t *bytes, int size, uint64_t value)
{
	for (int i = 0; i < size; i++)
		bytes[i] = (uint8_t) (value >> (8 * i));
}

/* Recompute the checksum of a block the test has edited, as a writer with @nonce would. */
static void reseal(uint8_t block[BLOCK], uint64_t nonce)
{
	put_le_field(block + BLOCK - 8, 8,
	             XXH3_64bits_withSeed(block, BLOCK - DD_BUFFERED_TRAILER_SIZE, nonce));
}

static void test_stream_size(void **state)
{
	(void) state;
	assert_int_equal(dd_buffered_stream_size(0), BLOCK);
	assert_int_equal(dd_buffered_stream_size(1), BLOCK);
	assert_int_equal(dd_buffered_stream_size(PAYLOAD), BLOCK);
	assert_int_equal(dd_buffered_stream_size(PAYLOAD + 1), 2 * BLOCK);
	assert_int_equal(dd_buffered_stream_size(10 * PAYLOAD), 10 * BLOCK);
	assert_int_equal(dd_buffered_stream_size(SIZE_MAX), SIZE_MAX);
	assert_int_equal(PAYLOAD, 4056);
}

static void test_round_trip_sizes(void **state)
{
	static const size_t sizes[] = {
		0,
		1,
		100,
		PAYLOAD - 1,
		PAYLOAD,
		PAYLOAD + 1,
		2 * PAYLOAD,
		3 * PAYLOAD - 7,
		32 * PAYLOAD,
		32 * PAYLOAD + 1,
		33 * PAYLOAD,
		100 * PAYLOAD + 5,
		8 << 20,
	};

	(void) state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t region = dd_buffered_stream_size(sizes[i]);
		uint8_t *data = make_pattern(sizes[i], (unsigned int) i);
		int fd = make_file();

		write_stream(fd, 0, region, NONCE + i, data, sizes[i], 0);
		check_stream(fd, 0, region, NONCE + i, data, sizes[i], 0);
		check_stream(fd, 0, region, NONCE + i, data, sizes[i], 4097);
		assert_int_equal(lseek(fd, 0, SEEK_END), (off_t) region);
		close(fd);
		dd_free(data);
	}
}

static void test_odd_chunks_and_small_writes(void **state)
{
	static const size_t chunks[] = { 1, 3, 7, 13, 255, 4095, 4096, 4097, 8113, 65537 };
	size_t length = 20 * PAYLOAD + 333;
	uint8_t *data = make_pattern(length, 7);
	size_t region = dd_buffered_stream_size(length) + 5 * BLOCK;
	int fd = make_file();

	(void) state;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		write_stream(fd, 0, region, NONCE, data, length, chunks[i]);
		for (size_t j = 0; j < sizeof(chunks) / sizeof(chunks[0]); j++)
			check_stream(fd, 0, region, NONCE, data, length, chunks[j]);
	}
	close(fd);
	dd_free(data);
}

static void test_many_small_records(void **state)
{
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	size_t region = 64 * BLOCK;
	int fd = make_file();

	(void) state;
	assert_success(dd_make_buffered_writer(fd, 0, region, NONCE, &writer));
	for (uint32_t i = 0; i < 50000; i++) {
		uint8_t record[5] = { (uint8_t) i, (uint8_t) (i >> 8), (uint8_t) (i >> 16), 0xee };

		assert_success(dd_write_to_buffered_writer(writer, record, 1 + i % 5));
	}
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);

	assert_success(dd_make_buffered_reader(fd, 0, region, NONCE, &reader));
	for (uint32_t i = 0; i < 50000; i++) {
		uint8_t expected[5] = { (uint8_t) i, (uint8_t) (i >> 8), (uint8_t) (i >> 16),
			                0xee };
		uint8_t record[5];

		assert_success(dd_read_from_buffered_reader(reader, record, 1 + i % 5));
		assert_memory_equal(record, expected, 1 + i % 5);
	}
	assert_true(dd_buffered_reader_at_end(reader));
	dd_free_buffered_reader(reader);
	close(fd);
}

static void test_two_streams_side_by_side(void **state)
{
	size_t length_a = 5 * PAYLOAD + 17;
	size_t length_b = 3 * PAYLOAD;
	size_t region_a = dd_buffered_stream_size(length_a);
	size_t region_b = dd_buffered_stream_size(length_b) + BLOCK;
	uint8_t *a = make_pattern(length_a, 1);
	uint8_t *b = make_pattern(length_b, 2);
	struct dd_buffered_writer *writer_a;
	struct dd_buffered_writer *writer_b;
	struct dd_buffered_reader *reader;
	int fd = make_file();

	(void) state;
	/* Interleave the two writers, as a save of several structures might. */
	assert_success(dd_make_buffered_writer(fd, 0, region_a, 1, &writer_a));
	assert_success(dd_make_buffered_writer(fd, (off_t) region_a, region_b, 2, &writer_b));
	for (size_t i = 0; i < 5; i++) {
		assert_success(
		    dd_write_to_buffered_writer(writer_a, a + i * (length_a / 5), length_a / 5));
		assert_success(
		    dd_write_to_buffered_writer(writer_b, b + i * (length_b / 5), length_b / 5));
	}
	assert_success(
	    dd_write_to_buffered_writer(writer_a, a + length_a - length_a % 5, length_a % 5));
	assert_success(
	    dd_write_to_buffered_writer(writer_b, b + length_b - length_b % 5, length_b % 5));
	assert_success(dd_finish_buffered_writer(writer_b, true));
	assert_success(dd_finish_buffered_writer(writer_a, true));
	dd_free_buffered_writer(writer_a);
	dd_free_buffered_writer(writer_b);

	check_stream(fd, 0, region_a, 1, a, length_a, 1000);
	check_stream(fd, (off_t) region_a, region_b, 2, b, length_b, 999);
	/* Neither stream is readable with the other's nonce. */
	assert_int_equal(dd_make_buffered_reader(fd, (off_t) region_a, region_b, 1, &reader),
	                 DD_CHECKSUM_MISMATCH);
	assert_int_equal(dd_make_buffered_reader(fd, 0, region_a, 2, &reader),
	                 DD_CHECKSUM_MISMATCH);
	close(fd);
	dd_free(a);
	dd_free(b);
}

static void test_unaligned_offset(void **state)
{
	size_t length = 2 * PAYLOAD + 1;
	size_t region = dd_buffered_stream_size(length);
	uint8_t *data = make_pattern(length, 3);
	int fd = make_file();

	(void) state;
	write_stream(fd, 512 + 3, region, NONCE, data, length, 100);
	check_stream(fd, 512 + 3, region, NONCE, data, length, 100);
	close(fd);
	dd_free(data);
}

static void test_on_disk_layout(void **state)
{
	uint8_t block[BLOCK];
	uint8_t *data = make_pattern(PAYLOAD + 10, 4);
	uint64_t nonce = 0x0102030405060708ULL;
	int fd = make_file();

	(void) state;
	write_stream(fd, 0, 3 * BLOCK, nonce, data, PAYLOAD + 10, 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 2 * BLOCK);

	read_block(fd, 0, block);
	assert_memory_equal(block, "DDBS", 4);
	assert_int_equal(le_field(block + 4, 2), 1);
	assert_int_equal(le_field(block + 6, 2), 0);
	assert_int_equal(le_field(block + 8, 8), 0);
	assert_true(le_field(block + 16, 8) == nonce);
	assert_int_equal(block[16], 0x08);
	assert_int_equal(le_field(block + 24, 4), PAYLOAD);
	assert_int_equal(le_field(block + 28, 4), 0);
	assert_memory_equal(block + 32, data, PAYLOAD);
	assert_true(le_field(block + 4088, 8) == XXH3_64bits_withSeed(block, 4088, nonce));

	read_block(fd, 1, block);
	assert_memory_equal(block, "DDBS", 4);
	assert_int_equal(le_field(block + 6, 2), DD_BUFFERED_FINAL);
	assert_int_equal(le_field(block + 8, 8), 1);
	assert_int_equal(le_field(block + 24, 4), 10);
	assert_memory_equal(block + 32, data + PAYLOAD, 10);
	for (int i = 32 + 10; i < 4088; i++)
		assert_int_equal(block[i], 0);
	assert_true(le_field(block + 4088, 8) == XXH3_64bits_withSeed(block, 4088, nonce));
	close(fd);
	dd_free(data);
}

static void test_region_overflow(void **state)
{
	struct dd_buffered_writer *writer;
	uint8_t *data = make_pattern(2 * PAYLOAD + 1, 5);
	int fd = make_file();

	(void) state;
	assert_success(dd_make_buffered_writer(fd, 0, 2 * BLOCK, NONCE, &writer));
	assert_int_equal(dd_write_to_buffered_writer(writer, data, 2 * PAYLOAD + 1), DD_OVERFLOW);
	assert_success(dd_write_to_buffered_writer(writer, data, PAYLOAD));
	assert_success(dd_write_to_buffered_writer(writer, data + PAYLOAD, PAYLOAD - 1));
	assert_int_equal(dd_write_to_buffered_writer(writer, data, 2), DD_OVERFLOW);
	assert_success(dd_write_to_buffered_writer(writer, data + 2 * PAYLOAD - 1, 1));
	assert_int_equal(dd_write_to_buffered_writer(writer, data, 1), DD_OVERFLOW);
	assert_success(dd_write_to_buffered_writer(writer, data, 0));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
	/* Nothing was written past the region, and the stream is intact. */
	assert_int_equal(lseek(fd, 0, SEEK_END), 2 * BLOCK);
	check_stream(fd, 0, 2 * BLOCK, NONCE, data, 2 * PAYLOAD, 333);
	close(fd);
	dd_free(data);
}

static void test_bad_arguments_and_states(void **state)
{
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	int fd = make_file();

	(void) state;
	assert_int_equal(dd_make_buffered_writer(fd, 0, 0, NONCE, &writer), DD_INVALID_ARGUMENT);
	assert_int_equal(dd_make_buffered_writer(fd, 0, BLOCK + 1, NONCE, &writer),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(dd_make_buffered_writer(fd, -1, BLOCK, NONCE, &writer),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(dd_make_buffered_writer(-1, 0, BLOCK, NONCE, &writer),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(dd_make_buffered_writer(fd, INT64_MAX - BLOCK + 1, BLOCK, NONCE, &writer),
	                 DD_INVALID_ARGUMENT);
	assert_int_equal(dd_make_buffered_reader(fd, 0, 100, NONCE, &reader), DD_INVALID_ARGUMENT);

	assert_success(dd_make_buffered_writer(fd, 0, BLOCK, NONCE, &writer));
	assert_success(dd_finish_buffered_writer(writer, true));
	assert_int_equal(dd_finish_buffered_writer(writer, false), DD_BAD_STATE);
	assert_int_equal(dd_write_to_buffered_writer(writer, "x", 1), DD_BAD_STATE);
	dd_free_buffered_writer(writer);
	dd_free_buffered_writer(NULL);
	dd_free_buffered_reader(NULL);
	close(fd);
}

static void test_io_errors(void **state)
{
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	int pipe_fds[2];

	(void) state;
	assert_int_equal(pipe(pipe_fds), 0);
	assert_success(dd_make_buffered_writer(pipe_fds[1], 0, BLOCK, NONCE, &writer));
	assert_success(dd_write_to_buffered_writer(writer, "data", 4));
	assert_int_equal(dd_finish_buffered_writer(writer, false), ESPIPE);
	/* The error sticks. */
	assert_int_equal(dd_finish_buffered_writer(writer, false), ESPIPE);
	assert_int_equal(dd_write_to_buffered_writer(writer, "data", 4), ESPIPE);
	dd_free_buffered_writer(writer);
	assert_int_equal(dd_make_buffered_reader(pipe_fds[0], 0, BLOCK, NONCE, &reader), ESPIPE);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void test_wrong_nonce_and_stale_blocks(void **state)
{
	size_t length = 3 * PAYLOAD;
	size_t region = dd_buffered_stream_size(length);
	uint8_t *old_data = make_pattern(length, 8);
	uint8_t *new_data = make_pattern(length, 9);
	uint8_t *buffer = make_pattern(length, 0);
	uint8_t block[BLOCK];
	int fd = make_file();
	int new_fd = make_file();

	(void) state;
	write_stream(fd, 0, region, 1, old_data, length, 0);
	assert_int_equal(try_read(fd, region, 2, buffer, length), DD_CHECKSUM_MISMATCH);
	assert_int_equal(try_read(fd, region, 0, buffer, length), DD_CHECKSUM_MISMATCH);

	/* A save with nonce 2 that got as far as its first block before a crash. */
	write_stream(new_fd, 0, region, 2, new_data, length, 0);
	read_block(new_fd, 0, block);
	write_block(fd, 0, block);
	assert_int_equal(try_read(fd, region, 2, buffer, length), DD_CHECKSUM_MISMATCH);
	assert_memory_equal(buffer, new_data, PAYLOAD);
	assert_int_equal(try_read(fd, region, 1, buffer, length), DD_CHECKSUM_MISMATCH);

	/* A shorter new save over a longer old one: the old blocks after it are never read. */
	write_stream(fd, 0, region, 3, new_data, 10, 0);
	check_stream(fd, 0, region, 3, new_data, 10, 0);
	close(fd);
	close(new_fd);
	dd_free(old_data);
	dd_free(new_data);
	dd_free(buffer);
}

static void test_every_bit_flip_is_detected(void **state)
{
	size_t length = PAYLOAD + 100;
	size_t region = 2 * BLOCK;
	uint8_t *data = make_pattern(length, 10);
	uint8_t *buffer = make_pattern(length, 0);
	enum dd_log_level level = dd_log_get_level();
	uint8_t original[2 * BLOCK];
	int fd = make_file();

	(void) state;
	write_stream(fd, 0, region, NONCE, data, length, 0);
	assert_int_equal(pread(fd, original, region, 0), region);
	dd_log_set_level(DD_LOG_ERROR);
	for (size_t byte = 0; byte < region; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t flipped = original[byte] ^ (uint8_t) (1 << bit);
			int result;

			assert_int_equal(pwrite(fd, &flipped, 1, (off_t) byte), 1);
			memset(buffer, 0, length);
			result = try_read(fd, region, NONCE, buffer, length);
			if (result == DD_SUCCESS)
				fail_msg("flip of bit %d of byte %zu went unnoticed", bit, byte);
			assert_true((result == DD_CHECKSUM_MISMATCH) || (result == DD_BAD_MAGIC) ||
			            (result == DD_UNSUPPORTED_VERSION));
			/* Whatever was handed out before the error was right. */
			if (byte >= BLOCK)
				assert_memory_equal(buffer, data, PAYLOAD);
			assert_int_equal(pwrite(fd, &original[byte], 1, (off_t) byte), 1);
		}
	}
	dd_log_set_level(level);
	check_stream(fd, 0, region, NONCE, data, length, 0);
	close(fd);
	dd_free(data);
	dd_free(buffer);
}

static void test_truncated_streams(void **state)
{
	size_t length = 2 * PAYLOAD + 50;
	size_t region = dd_buffered_stream_size(length);
	uint8_t *data = make_pattern(length, 11);
	uint8_t *buffer = make_pattern(length, 0);
	uint8_t zero[BLOCK] = { 0 };
	struct dd_buffered_reader *reader;
	int fd = make_file();

	(void) state;
	/* The final block zeroed: the reader hands out the first two blocks, then refuses. */
	write_stream(fd, 0, region, NONCE, data, length, 0);
	write_block(fd, 2, zero);
	assert_success(dd_make_buffered_reader(fd, 0, region, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 2 * PAYLOAD));
	assert_memory_equal(buffer, data, 2 * PAYLOAD);
	assert_false(dd_buffered_reader_at_end(reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_BAD_MAGIC);
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 0), DD_BAD_MAGIC);
	dd_free_buffered_reader(reader);

	/* The final block cut off the file. */
	assert_int_equal(ftruncate(fd, 2 * BLOCK), 0);
	assert_int_equal(try_read(fd, region, NONCE, buffer, length), DD_CORRUPT_DATA);
	/* Even a reader that wants no more than the first two blocks' data sees it at the end. */
	assert_success(dd_make_buffered_reader(fd, 0, region, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 2 * PAYLOAD));
	assert_false(dd_buffered_reader_at_end(reader));
	dd_free_buffered_reader(reader);

	/* The region too small for the stream that was written. */
	write_stream(fd, 0, region, NONCE, data, length, 0);
	assert_int_equal(try_read(fd, 2 * BLOCK, NONCE, buffer, length), DD_CORRUPT_DATA);

	/* A file with no stream at all. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(try_read(fd, region, NONCE, buffer, 1), DD_CORRUPT_DATA);
	assert_int_equal(ftruncate(fd, region), 0);
	assert_int_equal(try_read(fd, region, NONCE, buffer, 1), DD_BAD_MAGIC);
	close(fd);
	dd_free(data);
	dd_free(buffer);
}

static void test_abandoned_writer(void **state)
{
	size_t length = 40 * PAYLOAD;
	size_t region = dd_buffered_stream_size(length);
	uint8_t *data = make_pattern(length, 12);
	uint8_t *buffer = make_pattern(length, 0);
	struct dd_buffered_writer *writer;
	int fd = make_file();

	(void) state;
	assert_success(dd_make_buffered_writer(fd, 0, region, NONCE, &writer));
	assert_success(dd_write_to_buffered_writer(writer, data, length));
	dd_free_buffered_writer(writer);
	/* Whole batches reached the file, but no final block did. */
	assert_true(lseek(fd, 0, SEEK_END) > 0);
	assert_int_equal(try_read(fd, region, NONCE, buffer, length), DD_CORRUPT_DATA);
	assert_int_equal(ftruncate(fd, (off_t) region), 0);
	assert_int_equal(try_read(fd, region, NONCE, buffer, length), DD_BAD_MAGIC);
	close(fd);
	dd_free(data);
	dd_free(buffer);
}

/* Edit a field of block @index, reseal it and expect reading the stream to fail with @error. */
static void expect_edit_refused(int fd, size_t region, size_t length, size_t index, int offset,
                                int size, uint64_t value, int error)
{
	uint8_t saved[BLOCK];
	uint8_t block[BLOCK];
	uint8_t *buffer = make_pattern(length, 0);

	read_block(fd, index, saved);
	memcpy(block, saved, BLOCK);
	put_le_field(block + offset, size, value);
	reseal(block, NONCE);
	write_block(fd, index, block);
	assert_int_equal(try_read(fd, region, NONCE, buffer, length), error);
	write_block(fd, index, saved);
	dd_free(buffer);
}

static void test_validated_fields(void **state)
{
	size_t length = PAYLOAD + 100;
	size_t region = dd_buffered_stream_size(length);
	uint8_t *data = make_pattern(length, 13);
	uint8_t block[BLOCK];
	int fd = make_file();

	(void) state;
	write_stream(fd, 0, region, NONCE, data, length, 0);
	expect_edit_refused(fd, region, length, 0, 0, 4, 0x53424445, DD_BAD_MAGIC);
	expect_edit_refused(fd, region, length, 1, 4, 2, 2, DD_UNSUPPORTED_VERSION);
	/* A full block 0 marked final is a valid, shorter stream: the reader runs out early. */
	expect_edit_refused(fd, region, length, 0, 6, 2, DD_BUFFERED_FINAL, DD_END_OF_FILE);
	expect_edit_refused(fd, region, length, 1, 6, 2, 0x0003, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 8, 8, 0, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 0, 16, 8, NONCE + 1, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 0, 24, 4, PAYLOAD - 1, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 24, 4, PAYLOAD + 1, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 24, 4, 0, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 24, 4, 99, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 28, 4, 1, DD_CORRUPT_DATA);
	expect_edit_refused(fd, region, length, 1, 4000, 1, 1, DD_CORRUPT_DATA);

	/* The same two blocks swapped: each carries the other's sequence number. */
	read_block(fd, 0, block);
	write_block(fd, 2, block);
	read_block(fd, 1, block);
	write_block(fd, 0, block);
	read_block(fd, 2, block);
	write_block(fd, 1, block);
	assert_int_equal(try_read(fd, region, NONCE, block, 1), DD_CORRUPT_DATA);
	close(fd);
	dd_free(data);
}

static void test_read_past_end(void **state)
{
	struct dd_buffered_reader *reader;
	uint8_t buffer[PAYLOAD + 20];
	int fd = make_file();

	(void) state;
	memset(buffer, 0x77, sizeof(buffer));
	write_stream(fd, 0, 2 * BLOCK, NONCE, (const uint8_t *) "0123456789", 10, 0);
	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 11), DD_END_OF_FILE);
	assert_memory_equal(buffer, "0123456789", 10);
	assert_true(dd_buffered_reader_at_end(reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 0));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);

	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 10));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);

	write_stream(fd, 0, 2 * BLOCK, NONCE, buffer, PAYLOAD + 10, 0);
	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, PAYLOAD + 20),
	                 DD_END_OF_FILE);
	dd_free_buffered_reader(reader);
	close(fd);
}

static void test_verify_data(void **state)
{
	static const char magic[] = "DD-INDEX-SAVE-01";
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	uint8_t *data = make_pattern(3 * PAYLOAD, 14);
	size_t region = 4 * BLOCK;
	int fd = make_file();

	(void) state;
	assert_success(dd_make_buffered_writer(fd, 0, region, NONCE, &writer));
	assert_success(dd_write_to_buffered_writer(writer, magic, sizeof(magic)));
	assert_success(dd_write_to_buffered_writer(writer, data, 3 * PAYLOAD));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);

	assert_success(dd_make_buffered_reader(fd, 0, region, NONCE, &reader));
	assert_success(dd_verify_buffered_data(reader, magic, sizeof(magic)));
	/* Across block boundaries, longer than the verifier's chunk. */
	assert_success(dd_verify_buffered_data(reader, data, 2 * PAYLOAD));
	assert_int_equal(dd_verify_buffered_data(reader, data, 10), DD_CORRUPT_DATA);
	/* A mismatch still consumes the bytes compared. */
	assert_success(dd_verify_buffered_data(reader, data + 2 * PAYLOAD + 10, PAYLOAD - 10));
	assert_true(dd_buffered_reader_at_end(reader));
	assert_int_equal(dd_verify_buffered_data(reader, data, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);

	assert_success(dd_make_buffered_reader(fd, 0, region, NONCE, &reader));
	assert_int_equal(dd_verify_buffered_data(reader, "DD-INDEX-SAVE-02", sizeof(magic)),
	                 DD_CORRUPT_DATA);
	dd_free_buffered_reader(reader);
	close(fd);
	dd_free(data);
}

static void test_at_end(void **state)
{
	struct dd_buffered_reader *reader;
	uint8_t *data = make_pattern(2 * PAYLOAD, 15);
	uint8_t *buffer = make_pattern(2 * PAYLOAD, 0);
	uint8_t block[BLOCK];
	int fd = make_file();

	(void) state;
	/* An empty stream is at its end at once. */
	write_stream(fd, 0, BLOCK, NONCE, NULL, 0, 0);
	assert_success(dd_make_buffered_reader(fd, 0, BLOCK, NONCE, &reader));
	assert_true(dd_buffered_reader_at_end(reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);

	/* Exactly one full block. */
	write_stream(fd, 0, 2 * BLOCK, NONCE, data, PAYLOAD, 0);
	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, PAYLOAD - 1));
	assert_false(dd_buffered_reader_at_end(reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 1));
	assert_true(dd_buffered_reader_at_end(reader));
	assert_true(dd_buffered_reader_at_end(reader));
	dd_free_buffered_reader(reader);

	/* One byte more: at a block boundary the reader must look at the next block to tell. */
	write_stream(fd, 0, 2 * BLOCK, NONCE, data, PAYLOAD + 1, 0);
	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, PAYLOAD));
	assert_false(dd_buffered_reader_at_end(reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, 1));
	assert_int_equal(buffer[0], data[PAYLOAD]);
	assert_true(dd_buffered_reader_at_end(reader));
	dd_free_buffered_reader(reader);

	/* A damaged next block: not at the end, and the error sticks. */
	read_block(fd, 1, block);
	block[100] ^= 0x40;
	write_block(fd, 1, block);
	assert_success(dd_make_buffered_reader(fd, 0, 2 * BLOCK, NONCE, &reader));
	assert_success(dd_read_from_buffered_reader(reader, buffer, PAYLOAD));
	assert_false(dd_buffered_reader_at_end(reader));
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_CHECKSUM_MISMATCH);
	assert_int_equal(dd_read_from_buffered_reader(reader, buffer, 1), DD_CHECKSUM_MISMATCH);
	assert_false(dd_buffered_reader_at_end(reader));
	dd_free_buffered_reader(reader);
	close(fd);
	dd_free(data);
	dd_free(buffer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_size),
		cmocka_unit_test(test_round_trip_sizes),
		cmocka_unit_test(test_odd_chunks_and_small_writes),
		cmocka_unit_test(test_many_small_records),
		cmocka_unit_test(test_two_streams_side_by_side),
		cmocka_unit_test(test_unaligned_offset),
		cmocka_unit_test(test_on_disk_layout),
		cmocka_unit_test(test_region_overflow),
		cmocka_unit_test(test_bad_arguments_and_states),
		cmocka_unit_test(test_io_errors),
		cmocka_unit_test(test_wrong_nonce_and_stale_blocks),
		cmocka_unit_test(test_every_bit_flip_is_detected),
		cmocka_unit_test(test_truncated_streams),
		cmocka_unit_test(test_abandoned_writer),
		cmocka_unit_test(test_validated_fields),
		cmocka_unit_test(test_read_past_end),
		cmocka_unit_test(test_verify_data),
		cmocka_unit_test(test_at_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
