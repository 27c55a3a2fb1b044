// SPDX-License-Identifier: GPL-2.0-only
/*
 * The index layout; see index-layout.h for the formats and the rules of saving.
 */
#include "index-layout.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "buffered-io.h"
#include "byte-order.h"
#include "logger.h"
#include "open-chapter.h"
#include "volume-index.h"

enum {
	LAYOUT_VERSION = 1,
	CHECKSUM_OFFSET = UDS_LAYOUT_BLOCK_BYTES - 8,
};

static const char SUPER_MAGIC[8] = "UDSINDEX";
static const char SAVE_MAGIC[8] = "UDSSAVE1";

static uint64_t round_up(uint64_t value, uint64_t unit)
{
	return (value + unit - 1) / unit * unit;
}

uint64_t uds_index_page_map_save_bytes(const struct uds_geometry *geometry)
{
	return (uint64_t) geometry->chapters_per_volume *
	       (sizeof(uint64_t) + geometry->index_pages_per_chapter * sizeof(uint16_t));
}

/* Region bytes of the volume index streams of a save with @zones zones. */
static uint64_t volume_index_region(const struct uds_geometry *geometry, unsigned int zones)
{
	return zones *
	       dd_buffered_stream_size(uds_compute_volume_index_save_bytes(geometry, zones));
}

/* Bytes of one save slot: room for any zone count. */
static uint64_t compute_slot_size(const struct uds_geometry *geometry)
{
	uint64_t largest = 0;

	for (unsigned int zones = 1; zones <= UDS_MAX_ZONES; zones++) {
		uint64_t size = volume_index_region(geometry, zones);

		if (size > largest)
			largest = size;
	}
	return UDS_LAYOUT_BLOCK_BYTES + largest +
	       dd_buffered_stream_size(uds_compute_open_chapter_save_bytes(geometry)) +
	       dd_buffered_stream_size(uds_index_page_map_save_bytes(geometry));
}

uint64_t uds_compute_index_storage_size(const struct uds_geometry *geometry)
{
	return UDS_LAYOUT_VOLUME_OFFSET + round_up(geometry->bytes_per_volume, 4096) +
	       2 * compute_slot_size(geometry);
}

static int write_block(int fd, const uint8_t *block, uint64_t offset)
{
	ssize_t written;

	do {
		written = pwrite(fd, block, UDS_LAYOUT_BLOCK_BYTES, (off_t) offset);
	} while ((written < 0) && (errno == EINTR));
	if (written != UDS_LAYOUT_BLOCK_BYTES)
		return dd_log_error_strerror((written < 0) ? errno : EIO,
		                             "cannot write index layout block at %llu",
		                             (unsigned long long) offset);
	return DD_SUCCESS;
}

static int read_block(int fd, uint8_t *block, uint64_t offset)
{
	ssize_t bytes;

	do {
		bytes = pread(fd, block, UDS_LAYOUT_BLOCK_BYTES, (off_t) offset);
	} while ((bytes < 0) && (errno == EINTR));
	if (bytes < 0)
		return dd_log_error_strerror(errno, "cannot read index layout block at %llu",
		                             (unsigned long long) offset);
	if (bytes != UDS_LAYOUT_BLOCK_BYTES)
		memset(block + (bytes > 0 ? bytes : 0), 0,
		       UDS_LAYOUT_BLOCK_BYTES - (size_t) (bytes > 0 ? bytes : 0));
	return DD_SUCCESS;
}

static int sync_storage(int fd)
{
	if (fdatasync(fd) != 0)
		return dd_log_error_strerror(errno, "cannot sync index storage");
	return DD_SUCCESS;
}

/* The size of a file or block device. */
static int get_storage_size(int fd, uint64_t *size_ptr)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return dd_log_error_strerror(errno, "cannot stat index storage");
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);

		if (end < 0)
			return dd_log_error_strerror(errno, "cannot size index block device");
		*size_ptr = (uint64_t) end;
	} else {
		*size_ptr = (uint64_t) st.st_size;
	}
	return DD_SUCCESS;
}

/*
 * The bytes of the region [@offset, @offset + @size) that the storage holds (@size 0: to its
 * end): the room the index has.
 */
static int get_region_bytes(int fd, uint64_t offset, uint64_t size, uint64_t *bytes_ptr)
{
	uint64_t storage = 0;
	int result = get_storage_size(fd, &storage);

	if (result != DD_SUCCESS)
		return result;
	storage = (storage > offset) ? storage - offset : 0;
	*bytes_ptr = ((size == 0) || (size > storage)) ? storage : size;
	return DD_SUCCESS;
}

/* Fail unless the region has room for @needed bytes of index. */
static int check_region(int fd, uint64_t offset, uint64_t size, uint64_t needed)
{
	uint64_t available;
	int result = get_region_bytes(fd, offset, size, &available);

	if (result != DD_SUCCESS)
		return result;
	if (available < needed)
		return dd_log_error_strerror(
		    DD_OUT_OF_RANGE, "index region at %llu has %llu bytes; the index needs %llu",
		    (unsigned long long) offset, (unsigned long long) available,
		    (unsigned long long) needed);
	return DD_SUCCESS;
}

/* Place the save slots at the end of the index, within its region. */
static void set_slot_offsets(struct uds_index_layout *layout)
{
	uint64_t end = layout->region_offset + layout->total_size;

	layout->slot_offsets[0] = end - 2 * layout->slot_size;
	layout->slot_offsets[1] = end - layout->slot_size;
}

/* A new nonce: random, and never 0 (which would read as "no identity"). */
static int choose_nonce(uint64_t *nonce_ptr)
{
	uint64_t nonce = 0;

	while (nonce == 0) {
		if (getentropy(&nonce, sizeof(nonce)) != 0)
			return dd_log_error_strerror(errno, "cannot choose an index nonce");
	}
	*nonce_ptr = nonce;
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Super block                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void encode_super_block(const struct uds_index_layout *layout, uint8_t *block)
{
	memset(block, 0, UDS_LAYOUT_BLOCK_BYTES);
	memcpy(block, SUPER_MAGIC, sizeof(SUPER_MAGIC));
	dd_put_le32(block + 8, LAYOUT_VERSION);
	dd_put_le64(block + 16, layout->generation);
	dd_put_le64(block + 24, layout->nonce);
	dd_put_le32(block + 32, layout->shape.bytes_per_page);
	dd_put_le32(block + 36, layout->shape.record_pages_per_chapter);
	dd_put_le32(block + 40, layout->shape.chapters_per_volume);
	dd_put_le32(block + 44, layout->shape.sparse_chapters_per_volume);
	dd_put_le32(block + 48, layout->shape.memory_mb);
	dd_put_le64(block + 56, layout->volume_offset);
	dd_put_le64(block + 64, layout->slot_size);
	dd_put_le64(block + 72, layout->total_size);
	dd_put_le64(block + 80, layout->invalidated_through);
	dd_put_le64(block + CHECKSUM_OFFSET, XXH3_64bits(block, CHECKSUM_OFFSET));
}

/* Decode one copy; DD_SUCCESS only for a fully valid copy. */
static int decode_super_block(const uint8_t *block, struct uds_index_layout *layout)
{
	if (memcmp(block, SUPER_MAGIC, sizeof(SUPER_MAGIC)) != 0)
		return DD_BAD_MAGIC;
	if (dd_get_le64(block + CHECKSUM_OFFSET) != XXH3_64bits(block, CHECKSUM_OFFSET))
		return DD_CHECKSUM_MISMATCH;
	if (dd_get_le32(block + 8) != LAYOUT_VERSION)
		return DD_UNSUPPORTED_VERSION;
	layout->generation = dd_get_le64(block + 16);
	layout->nonce = dd_get_le64(block + 24);
	layout->shape.bytes_per_page = dd_get_le32(block + 32);
	layout->shape.record_pages_per_chapter = dd_get_le32(block + 36);
	layout->shape.chapters_per_volume = dd_get_le32(block + 40);
	layout->shape.sparse_chapters_per_volume = dd_get_le32(block + 44);
	layout->shape.memory_mb = dd_get_le32(block + 48);
	layout->volume_offset = dd_get_le64(block + 56);
	layout->slot_size = dd_get_le64(block + 64);
	layout->total_size = dd_get_le64(block + 72);
	layout->invalidated_through = dd_get_le64(block + 80);
	return DD_SUCCESS;
}

/* Write the next generation of the super block over the older copy. */
static int write_super_block(struct uds_index_layout *layout)
{
	uint8_t block[UDS_LAYOUT_BLOCK_BYTES] __attribute__((aligned(64)));
	int result;

	layout->generation++;
	encode_super_block(layout, block);
	result = write_block(layout->fd, block,
	                     layout->region_offset +
	                         (layout->generation % 2) * (uint64_t) UDS_LAYOUT_BLOCK_BYTES);
	if (result != DD_SUCCESS)
		return result;
	return sync_storage(layout->fd);
}

int uds_create_index_layout(int fd, uint64_t region_offset, uint64_t region_size,
                            const struct uds_geometry *geometry, uint32_t memory_mb,
                            struct uds_index_layout *layout)
{
	uint8_t block[UDS_LAYOUT_BLOCK_BYTES] = { 0 };
	uint64_t needed = uds_compute_index_storage_size(geometry);
	int result = check_region(fd, region_offset, region_size, needed);

	if (result != DD_SUCCESS)
		return result;
	*layout = (struct uds_index_layout){
		.fd = fd,
		.region_offset = region_offset,
		.shape = { geometry->bytes_per_page, geometry->record_pages_per_chapter,
		           geometry->chapters_per_volume, geometry->sparse_chapters_per_volume,
		           memory_mb },
		.volume_offset = UDS_LAYOUT_VOLUME_OFFSET,
		.slot_size = compute_slot_size(geometry),
		.total_size = needed,
	};
	set_slot_offsets(layout);
	result = choose_nonce(&layout->nonce);
	if (result != DD_SUCCESS)
		return result;
	/* Destroy any older index's super blocks and saves first, then write ours twice. */
	for (int i = 0; i < 2; i++) {
		result = write_block(fd, block, layout->slot_offsets[i]);
		if (result == DD_SUCCESS)
			result = write_block(fd, block,
			                     region_offset + (uint64_t) i * UDS_LAYOUT_BLOCK_BYTES);
		if (result != DD_SUCCESS)
			return result;
	}
	result = write_super_block(layout);
	if (result == DD_SUCCESS)
		result = write_super_block(layout);
	return result;
}

/* Read a slot's header into the layout's slot sequences; fill @save if valid. */
static bool read_save_header(struct uds_index_layout *layout, unsigned int slot,
                             struct uds_save_info *save)
{
	uint8_t block[UDS_LAYOUT_BLOCK_BYTES] __attribute__((aligned(64)));
	uint64_t base = layout->slot_offsets[slot];

	layout->slot_sequences[slot] = 0;
	if ((read_block(layout->fd, block, base) != DD_SUCCESS) ||
	    (memcmp(block, SAVE_MAGIC, sizeof(SAVE_MAGIC)) != 0) ||
	    (dd_get_le64(block + CHECKSUM_OFFSET) !=
	     XXH3_64bits_withSeed(block, CHECKSUM_OFFSET, layout->nonce)) ||
	    (dd_get_le32(block + 8) != LAYOUT_VERSION) ||
	    (dd_get_le64(block + 24) != layout->nonce))
		return false;
	save->slot = slot;
	save->zone_count = dd_get_le32(block + 12);
	save->sequence = dd_get_le64(block + 16);
	save->open_chapter = dd_get_le64(block + 32);
	save->oldest_chapter = dd_get_le64(block + 40);
	save->stream_count = dd_get_le32(block + 48);
	if ((save->zone_count == 0) || (save->zone_count > UDS_MAX_ZONES) ||
	    (save->stream_count != save->zone_count + UDS_SAVE_EXTRA_STREAMS))
		return false;
	for (uint32_t i = 0; i < save->stream_count; i++) {
		uint64_t offset = dd_get_le64(block + 56 + 16 * i);
		uint64_t size = dd_get_le64(block + 64 + 16 * i);

		if ((offset < UDS_LAYOUT_BLOCK_BYTES) || (size > layout->slot_size) ||
		    (offset > layout->slot_size - size))
			return false;
		save->streams[i] = (struct uds_save_stream){ base + offset, size };
	}
	layout->slot_sequences[slot] = save->sequence;
	if (save->sequence > layout->last_sequence)
		layout->last_sequence = save->sequence;
	return true;
}

int uds_load_index_layout(int fd, uint64_t region_offset, uint64_t region_size,
                          struct uds_index_layout *layout)
{
	uint8_t block[UDS_LAYOUT_BLOCK_BYTES] __attribute__((aligned(64)));
	struct uds_index_layout copies[2];
	int results[2];
	int best;
	int result;

	for (int i = 0; i < 2; i++) {
		result =
		    read_block(fd, block, region_offset + (uint64_t) i * UDS_LAYOUT_BLOCK_BYTES);
		if (result != DD_SUCCESS)
			return result;
		memset(&copies[i], 0, sizeof(copies[i]));
		results[i] = decode_super_block(block, &copies[i]);
		/* Copy A has even generations, copy B odd ones: a copy in the other's place means
		 * that the region given starts 4 KiB away from the index's start. */
		if ((results[i] == DD_SUCCESS) && (copies[i].generation % 2 != (uint64_t) i))
			results[i] = DD_BAD_MAGIC;
	}
	if ((results[0] != DD_SUCCESS) && (results[1] != DD_SUCCESS)) {
		result = (results[0] == DD_BAD_MAGIC) ? results[1] : results[0];
		return dd_log_error_strerror(result, "no valid index super block");
	}
	if (results[0] != DD_SUCCESS)
		best = 1;
	else if (results[1] != DD_SUCCESS)
		best = 0;
	else
		best = (copies[1].generation > copies[0].generation) ? 1 : 0;
	*layout = copies[best];
	layout->fd = fd;
	layout->region_offset = region_offset;
	if (layout->total_size < 2 * layout->slot_size)
		return dd_log_error_strerror(
		    DD_OUT_OF_RANGE, "index super block has save slots larger than the index");
	result = check_region(fd, region_offset, region_size, layout->total_size);
	if (result != DD_SUCCESS)
		return result;
	set_slot_offsets(layout);
	for (unsigned int slot = 0; slot < 2; slot++) {
		struct uds_save_info ignored;

		read_save_header(layout, slot, &ignored);
	}
	return DD_SUCCESS;
}

int uds_check_layout_geometry(const struct uds_index_layout *layout,
                              const struct uds_geometry *geometry)
{
	if ((layout->volume_offset != UDS_LAYOUT_VOLUME_OFFSET) ||
	    (layout->slot_size != compute_slot_size(geometry)) ||
	    (layout->total_size != uds_compute_index_storage_size(geometry)))
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "index super block sizes do not match its geometry");
	return DD_SUCCESS;
}

int uds_find_latest_save(struct uds_index_layout *layout, const struct uds_geometry *geometry,
                         struct uds_save_info *save)
{
	struct uds_save_info saves[2];
	bool valid[2];
	int best = -1;

	(void) geometry;
	for (unsigned int slot = 0; slot < 2; slot++) {
		valid[slot] = read_save_header(layout, slot, &saves[slot]) &&
		              (saves[slot].sequence > layout->invalidated_through);
		if (valid[slot] && ((best < 0) || (saves[slot].sequence > saves[best].sequence)))
			best = (int) slot;
	}
	if (best < 0)
		return DD_END_OF_FILE;
	*save = saves[best];
	return DD_SUCCESS;
}

int uds_invalidate_saves(struct uds_index_layout *layout)
{
	if (layout->invalidated_through >= layout->last_sequence)
		return DD_SUCCESS;
	layout->invalidated_through = layout->last_sequence;
	return write_super_block(layout);
}

int uds_begin_save(struct uds_index_layout *layout, const struct uds_geometry *geometry,
                   unsigned int zone_count, uint64_t open_chapter, uint64_t oldest_chapter,
                   struct uds_save_info *save)
{
	uint64_t zone_region;
	uint64_t offset = UDS_LAYOUT_BLOCK_BYTES;
	unsigned int slot;

	if ((zone_count == 0) || (zone_count > UDS_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "save of %u zones", zone_count);
	/* Never overwrite the newest save: use the slot with the lower sequence. */
	slot = (layout->slot_sequences[0] <= layout->slot_sequences[1]) ? 0 : 1;
	*save = (struct uds_save_info){
		.slot = slot,
		.zone_count = zone_count,
		.sequence = layout->last_sequence + 1,
		.open_chapter = open_chapter,
		.oldest_chapter = oldest_chapter,
		.stream_count = zone_count + UDS_SAVE_EXTRA_STREAMS,
	};
	/* The slot may hold an older save: make sure a torn save there is never loaded. */
	{
		uint8_t empty[UDS_LAYOUT_BLOCK_BYTES] __attribute__((aligned(64))) = { 0 };
		int result = write_block(layout->fd, empty, layout->slot_offsets[slot]);

		if (result != DD_SUCCESS)
			return result;
		layout->slot_sequences[slot] = 0;
	}
	zone_region = volume_index_region(geometry, zone_count) / zone_count;
	for (unsigned int zone = 0; zone < zone_count; zone++) {
		save->streams[zone] =
		    (struct uds_save_stream){ layout->slot_offsets[slot] + offset, zone_region };
		offset += zone_region;
	}
	save->streams[zone_count] = (struct uds_save_stream){
		layout->slot_offsets[slot] + offset,
		dd_buffered_stream_size(uds_compute_open_chapter_save_bytes(geometry))
	};
	offset += save->streams[zone_count].size;
	save->streams[zone_count + 1] = (struct uds_save_stream){
		layout->slot_offsets[slot] + offset,
		dd_buffered_stream_size(uds_index_page_map_save_bytes(geometry))
	};
	offset += save->streams[zone_count + 1].size;
	if (offset > layout->slot_size)
		return dd_log_error_strerror(DD_OVERFLOW, "save does not fit its slot");
	return DD_SUCCESS;
}

int uds_commit_save(struct uds_index_layout *layout, const struct uds_save_info *save)
{
	uint8_t block[UDS_LAYOUT_BLOCK_BYTES] __attribute__((aligned(64)));
	uint64_t base = layout->slot_offsets[save->slot];
	int result = sync_storage(layout->fd);

	if (result != DD_SUCCESS)
		return result;
	memset(block, 0, sizeof(block));
	memcpy(block, SAVE_MAGIC, sizeof(SAVE_MAGIC));
	dd_put_le32(block + 8, LAYOUT_VERSION);
	dd_put_le32(block + 12, save->zone_count);
	dd_put_le64(block + 16, save->sequence);
	dd_put_le64(block + 24, layout->nonce);
	dd_put_le64(block + 32, save->open_chapter);
	dd_put_le64(block + 40, save->oldest_chapter);
	dd_put_le32(block + 48, save->stream_count);
	for (uint32_t i = 0; i < save->stream_count; i++) {
		dd_put_le64(block + 56 + 16 * i, save->streams[i].offset - base);
		dd_put_le64(block + 64 + 16 * i, save->streams[i].size);
	}
	dd_put_le64(block + CHECKSUM_OFFSET,
	            XXH3_64bits_withSeed(block, CHECKSUM_OFFSET, layout->nonce));
	result = write_block(layout->fd, block, base);
	if (result == DD_SUCCESS)
		result = sync_storage(layout->fd);
	if (result != DD_SUCCESS)
		return result;
	layout->slot_sequences[save->slot] = save->sequence;
	layout->last_sequence = save->sequence;
	return DD_SUCCESS;
}

uint64_t uds_save_stream_nonce(const struct uds_index_layout *layout,
                               const struct uds_save_info *save, unsigned int stream)
{
	return XXH3_64bits_withSeed(&save->sequence, sizeof(save->sequence),
	                            layout->nonce + stream);
}
