/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The index layout: where everything of an index lives on its storage (a file or block device).
 *
 * The index owns a region of the storage (uds_parameters offset and size: the whole storage by
 * default, or a part of a data store's volume) and never reads or writes outside it. The offsets
 * below, and those recorded in the super block and in save headers, are relative to the first
 * byte of the region, which is a multiple of 4096 (so that the chapter ring, 64 KiB into it, can
 * be mapped); the index uses the first uds_compute_index_storage_size() bytes of the region.
 *
 *   offset 0       super block, copy A (4 KiB)
 *   offset 4 KiB   super block, copy B (4 KiB)
 *   offset 64 KiB  the chapter ring (see volume.h), geometry->bytes_per_volume bytes
 *   then           save slot 0, then save slot 1, each slot_size bytes
 *
 * Super block (both copies the same format, little-endian, 4 KiB):
 *   0   magic "UDSINDEX"              8 bytes
 *   8   version (1)                   u32
 *   12  reserved (0)                  u32
 *   16  generation                    u64  the copy with the highest valid generation wins
 *   24  nonce                         u64  random, chosen at creation; seeds every checksum
 *   32  bytes per page                u32
 *   36  record pages per chapter      u32
 *   40  chapters per volume           u32
 *   44  sparse chapters per volume    u32
 *   48  memory size in MB             u32  as configured (for reports)
 *   52  reserved (0)                  u32
 *   56  volume offset                 u64
 *   64  save slot size                u64
 *   72  total size                    u64
 *   80  invalidated through           u64  saves with a sequence <= this are stale
 *   88  zero up to 4088
 *   4088 checksum                     u64  XXH3-64 of bytes 0-4087 (seed 0)
 * Updates write the copy with the older generation, so a torn write always leaves the other.
 * Copy A always has an even generation and copy B an odd one (a copy found in the other's place
 * is not believed: the region given does not start where the index does).
 *
 * Save slot: a 4 KiB header, then the streams of the save (buffered-io.h): one per volume index
 * zone, the open chapter, the index page map. Header:
 *   0   magic "UDSSAVE1"              8 bytes
 *   8   version (1)                   u32
 *   12  zone count                    u32
 *   16  sequence                      u64  one more than any save before it
 *   24  nonce                         u64  the index nonce
 *   32  open chapter                  u64  the newest virtual chapter at the save
 *   40  oldest chapter                u64
 *   48  stream count                  u32  zone count + 2
 *   52  reserved (0)                  u32
 *   56  streams: { offset in slot u64, region bytes u64 } x stream count
 *   4088 checksum                     u64  XXH3-64 of bytes 0-4087 seeded with the nonce
 *
 * A save writes its streams into the slot that does not hold the newest save, syncs, then writes
 * the header and syncs again: a crash at any point leaves the previous save intact. Opening an
 * index that loaded a save marks all existing saves stale (invalidated through), because the
 * index will change; after a crash the index is then rebuilt from its chapters.
 */
#ifndef UDS_INDEX_LAYOUT_H
#define UDS_INDEX_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "geometry.h"

enum {
	UDS_LAYOUT_BLOCK_BYTES = 4096,
	UDS_LAYOUT_VOLUME_OFFSET = 64 * 1024,
	/* Streams of a save beyond the volume index zones: open chapter, index page map. */
	UDS_SAVE_EXTRA_STREAMS = 2,
	UDS_SAVE_MAX_STREAMS = UDS_MAX_ZONES + UDS_SAVE_EXTRA_STREAMS,
};

/* What a super block records about the index's shape. */
struct uds_layout_shape {
	uint32_t bytes_per_page;
	uint32_t record_pages_per_chapter;
	uint32_t chapters_per_volume;
	uint32_t sparse_chapters_per_volume;
	uint32_t memory_mb;
};

/* One stream of a save: its region within the file. */
struct uds_save_stream {
	uint64_t offset;
	uint64_t size;
};

/* A save, being written or found. */
struct uds_save_info {
	unsigned int slot;
	uint32_t zone_count;
	uint64_t sequence;
	uint64_t open_chapter;
	uint64_t oldest_chapter;
	uint32_t stream_count;
	/* Absolute storage offsets (region_offset included). */
	struct uds_save_stream streams[UDS_SAVE_MAX_STREAMS];
};

struct uds_index_layout {
	int fd;
	/* The first byte of the index's region of the storage. */
	uint64_t region_offset;
	uint64_t nonce;
	struct uds_layout_shape shape;
	/* As the super block records them: within the region. */
	uint64_t volume_offset;
	uint64_t slot_size;
	uint64_t total_size;
	/* Absolute storage offsets of the save slots (region_offset added). */
	uint64_t slot_offsets[2];
	uint64_t generation;
	uint64_t invalidated_through;
	/* The highest save sequence seen in either slot's valid header. */
	uint64_t last_sequence;
	/* Per slot: the sequence of its valid header, or 0. */
	uint64_t slot_sequences[2];
};

/**
 * uds_compute_index_storage_size() - Bytes of storage an index of this geometry needs.
 */
uint64_t uds_compute_index_storage_size(const struct uds_geometry *geometry);

/**
 * uds_create_index_layout() - Lay out a new index in a region of its storage, with a new nonce,
 *                             and write its super block.
 * @fd:            the storage, open read-write
 * @region_offset: the first byte of the region (a multiple of 4096)
 * @region_size:   the bytes of the region (0: to the end of the storage)
 * @geometry:      the geometry
 * @memory_mb:     the configured memory size (recorded for reports)
 * @layout:        filled in
 *
 * Return: DD_SUCCESS, DD_OUT_OF_RANGE (logged) if the region or the storage is too small, or an
 *         error (logged) from the storage or the random source.
 */
int DD_MUST_CHECK uds_create_index_layout(int fd, uint64_t region_offset, uint64_t region_size,
                                          const struct uds_geometry *geometry, uint32_t memory_mb,
                                          struct uds_index_layout *layout);

/**
 * uds_load_index_layout() - Read and check the super block of the index in a region of its
 *                           storage.
 * @fd:            the storage
 * @region_offset: the first byte of the region (a multiple of 4096)
 * @region_size:   the bytes of the region (0: to the end of the storage)
 * @layout:        filled in (with the shape to rebuild the geometry from)
 *
 * Return: DD_SUCCESS; DD_BAD_MAGIC (not an index), DD_UNSUPPORTED_VERSION,
 *         DD_CHECKSUM_MISMATCH (both copies damaged), DD_OUT_OF_RANGE (a region, or a storage,
 *         smaller than the index), all logged.
 */
int DD_MUST_CHECK uds_load_index_layout(int fd, uint64_t region_offset, uint64_t region_size,
                                        struct uds_index_layout *layout);

/**
 * uds_check_layout_geometry() - Check that a layout's recorded sizes agree with a geometry.
 */
int DD_MUST_CHECK uds_check_layout_geometry(const struct uds_index_layout *layout,
                                            const struct uds_geometry *geometry);

/**
 * uds_find_latest_save() - Find the newest save that is complete and not stale.
 *
 * Return: DD_SUCCESS with @save filled in, or DD_END_OF_FILE when there is none.
 */
int DD_MUST_CHECK uds_find_latest_save(struct uds_index_layout *layout,
                                       const struct uds_geometry *geometry,
                                       struct uds_save_info *save);

/**
 * uds_invalidate_saves() - Mark every save made so far stale (writes the super block).
 */
int DD_MUST_CHECK uds_invalidate_saves(struct uds_index_layout *layout);

/**
 * uds_begin_save() - Plan a save: choose its slot and the regions of its streams.
 * @layout:     the layout
 * @geometry:   the geometry
 * @zone_count: volume index zones to save
 * @save:       filled in (streams: zone 0..zone_count-1, open chapter, page map)
 */
int DD_MUST_CHECK uds_begin_save(struct uds_index_layout *layout,
                                 const struct uds_geometry *geometry, unsigned int zone_count,
                                 uint64_t open_chapter, uint64_t oldest_chapter,
                                 struct uds_save_info *save);

/**
 * uds_commit_save() - Make a save whose streams are written the newest (sync, header, sync).
 */
int DD_MUST_CHECK uds_commit_save(struct uds_index_layout *layout,
                                  const struct uds_save_info *save);

/** uds_save_stream_nonce() - The nonce for one stream of a save. */
uint64_t uds_save_stream_nonce(const struct uds_index_layout *layout,
                               const struct uds_save_info *save, unsigned int stream);

/** uds_index_page_map_save_bytes() - Payload bytes of the index page map stream. */
uint64_t uds_index_page_map_save_bytes(const struct uds_geometry *geometry);

#endif /* UDS_INDEX_LAYOUT_H */
