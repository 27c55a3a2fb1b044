/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The super block: what a volume is (its layout, nonce and identity) and the state it was left
 * in (clean, in use, read-only), with the few counters that must survive a restart.
 *
 * Two copies live in PBN 0 and 1, each whole in one block, little-endian:
 *
 *   0    magic "VDOSTORE"                   8 bytes
 *   8    version (2)                        u32
 *   12   state                              u32   enum vdo_volume_state
 *   16   generation                         u64   the valid copy with the highest one wins
 *   24   nonce                              u64   random at format; every metadata block
 *                                                 carries it, so stale blocks of an earlier
 *                                                 format are never mistaken for ours
 *   32   uuid                               16 bytes
 *   48   logical blocks                     u64
 *   56   physical blocks                    u64
 *   64   journal origin, blocks             u64, u32
 *   76   slab bits                          u32
 *   80   slab journal blocks                u32
 *   84   slab count                         u32
 *   88   root origin                        u64
 *   96   summary origin                     u64
 *   104  depot origin                       u64
 *   112  slab data blocks, ref blocks       u32, u32
 *   120  journal start                      u64   first recovery journal sequence to replay
 *   128  journal tail                       u64   next recovery journal sequence to write
 *   136  logical blocks used                u64   as of journal start
 *   144  block map data blocks              u64   as of journal start
 *   152  recovery count                     u32   recoveries after a crash
 *   156  read-only rebuild count            u32
 *   160  index origin, blocks               u64, u64  the embedded index's region (layout.h)
 *   176  index kind                         u32   enum vdo_index_record_kind
 *   180  index flags                        u32   bit 0: sparse
 *   184  index memory                       u32   MB (embedded)
 *   188  zero                               u32
 *   192  index nonce                        u64   the identity of the index in use: the nonce
 *                                                 it was created with (0: not created, or not
 *                                                 met yet)
 *   200  index name                         64 bytes, NUL-padded (remote)
 *   264  zero up to 4088
 *   4088 checksum                           u64   XXH3-64 of bytes 0-4087
 *
 * Version 1 (before dedupe) ended at 160, with zeros after: it reads as a volume with no index
 * and no index region, and is written as version 2 at its next save. A program that reads only
 * version 1 refuses a version 2 volume.
 *
 * Saving writes the copy with the older generation, with a generation one past the newer, after
 * a flush and with FUA: a torn or lost write leaves the other copy, which describes a state the
 * volume can still be opened from. Format writes both.
 */
#ifndef VDO_SUPER_BLOCK_H
#define VDO_SUPER_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "block-device.h"
#include "errors.h"
#include "layout.h"

enum vdo_volume_state {
	/* Closed cleanly: every structure is on disk and the journal is empty. */
	VDO_STATE_CLEAN = 1,
	/* In use, or left by a crash: the journal must be replayed on the next open. */
	VDO_STATE_DIRTY,
	/* An unrecoverable error stopped writes; only a read-only rebuild makes it writable. */
	VDO_STATE_READ_ONLY,
	/* A read-only rebuild started and has not finished. */
	VDO_STATE_REBUILDING,
};

enum vdo_index_record_kind {
	VDO_INDEX_RECORD_NONE = 0,
	VDO_INDEX_RECORD_EMBEDDED,
	VDO_INDEX_RECORD_REMOTE,
};

enum {
	VDO_INDEX_NAME_BYTES = 64,
};

/* The index a volume uses: no credentials, only what identifies it. */
struct vdo_index_record {
	enum vdo_index_record_kind kind;
	bool sparse;
	uint32_t memory_mb;
	uint64_t nonce;
	char name[VDO_INDEX_NAME_BYTES + 1];
};

struct vdo_super_block {
	/* The version the volume was read in (saves write the current one). */
	uint32_t version;
	enum vdo_volume_state state;
	uint64_t generation;
	uint64_t nonce;
	uint8_t uuid[16];
	struct vdo_layout layout;
	vdo_sequence_t journal_start;
	vdo_sequence_t journal_tail;
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
	uint32_t recovery_count;
	uint32_t read_only_rebuild_count;
	struct vdo_index_record index;
};

/** vdo_state_name() - "clean", "dirty", "read-only" or "rebuilding". */
const char *vdo_state_name(enum vdo_volume_state state);

/** vdo_encode_super_block() - Fill @block (VDO_BLOCK_SIZE bytes) with @super. */
void vdo_encode_super_block(const struct vdo_super_block *super, uint8_t *block);

/**
 * vdo_decode_super_block() - Decode and check one copy.
 *
 * Return: DD_SUCCESS, DD_BAD_MAGIC (not a vdo-store super block), DD_UNSUPPORTED_VERSION,
 *         DD_CHECKSUM_MISMATCH or DD_CORRUPT_DATA (fields that do not make sense).
 */
int DD_MUST_CHECK vdo_decode_super_block(const uint8_t *block, struct vdo_super_block *super);

/**
 * vdo_load_super_block() - Read both copies and take the valid one with the higher generation.
 *
 * Return: DD_SUCCESS; DD_BAD_MAGIC, quietly, when neither copy looks like a super block (no
 *         volume there); the decode error of a copy that does when neither is valid; or the
 *         device's error.
 */
int DD_MUST_CHECK vdo_load_super_block(struct block_device *device, struct vdo_super_block *super);

/**
 * vdo_save_super_block() - Write @super over the older copy, durably, after a flush; advances
 *                          super->generation.
 */
int DD_MUST_CHECK vdo_save_super_block(struct block_device *device, struct vdo_super_block *super);

/** vdo_write_both_super_blocks() - Write both copies (format); super->generation advances. */
int DD_MUST_CHECK vdo_write_both_super_blocks(struct block_device *device,
                                              struct vdo_super_block *super);

#endif /* VDO_SUPER_BLOCK_H */
