/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The basic vocabulary of the data store: block numbers, mappings and the fixed shape of the
 * block map.
 *
 * A logical block number (LBN) is an address the host writes to; a physical block number (PBN)
 * is a 4 KiB block of the backing storage. A mapping is where a logical block's data lives: a
 * PBN and a state (unmapped, uncompressed, or compressed in one of 14 slots of a packed block).
 * PBN 0 holds the super block, so it is never data: the mapping (0, uncompressed) is the zero
 * block, which maps to no storage at all.
 */
#ifndef VDO_TYPES_H
#define VDO_TYPES_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t vdo_pbn_t;
typedef uint64_t vdo_lbn_t;
typedef uint64_t vdo_sequence_t;

enum {
	/* Physical block numbers have 36 bits. */
	VDO_PBN_BITS = 36,
	/* Slots of a compressed block. */
	VDO_MAX_COMPRESSION_SLOTS = 14,
	/* Mapping entries in one block map page, and how many trees interleave them. */
	VDO_BLOCK_MAP_ENTRIES_PER_PAGE = 812,
	VDO_BLOCK_MAP_TREE_COUNT = 60,
	/* Levels of each tree, the leaves included: enough for any 36-bit logical space. */
	VDO_BLOCK_MAP_TREE_HEIGHT = 5,
	/* Data_vios: the bound on work in flight (and on what recovery must redo). */
	VDO_DATA_VIO_COUNT = 2048,
	/* Most references a block can have. */
	VDO_MAX_REFERENCES = 254,
	/* No journal lock held, or no limit on locks (journal sequences start at 1). */
	VDO_NO_LOCK = 0,
};

#define VDO_MAX_PBN ((UINT64_C(1) << VDO_PBN_BITS) - 1)
/* The zero block: a mapping to it means "all zeros". */
#define VDO_ZERO_BLOCK ((vdo_pbn_t) 0)

enum vdo_mapping_state {
	VDO_MAPPING_UNMAPPED = 0,
	VDO_MAPPING_UNCOMPRESSED = 1,
	/* VDO_MAPPING_COMPRESSED_BASE + slot, for slots 0-13. */
	VDO_MAPPING_COMPRESSED_BASE = 2,
};

/* A place in a journal: a block's sequence number and an entry in that block. Slab journal
 * points order reference count updates; recovery journal points order mapping changes. */
struct vdo_journal_point {
	vdo_sequence_t sequence;
	uint16_t entry;
};

static inline bool vdo_before_journal_point(struct vdo_journal_point a, struct vdo_journal_point b)
{
	return (a.sequence < b.sequence) || ((a.sequence == b.sequence) && (a.entry < b.entry));
}

/* Where a logical block's data is. */
struct vdo_mapping {
	vdo_pbn_t pbn;
	/* An enum vdo_mapping_state value, 0-15. */
	uint8_t state;
};

static inline bool vdo_is_mapped(struct vdo_mapping mapping)
{
	return mapping.state != VDO_MAPPING_UNMAPPED;
}

static inline bool vdo_is_zero_mapping(struct vdo_mapping mapping)
{
	return (mapping.state == VDO_MAPPING_UNCOMPRESSED) && (mapping.pbn == VDO_ZERO_BLOCK);
}

static inline bool vdo_is_compressed(uint8_t state)
{
	return state >= VDO_MAPPING_COMPRESSED_BASE;
}

/* Whether the mapping uses a block of storage (and so holds a reference on it). */
static inline bool vdo_mapping_uses_storage(struct vdo_mapping mapping)
{
	return vdo_is_mapped(mapping) && (mapping.pbn != VDO_ZERO_BLOCK);
}

#endif /* VDO_TYPES_H */
