/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Reading the recovery journal back after a crash.
 *
 * The reader loads the whole ring, finds the newest good block and, from the head recorded in
 * it, walks the blocks in order, giving each entry it can trust (recovery-journal-format.h says
 * which) to a visitor with the entry's recovery point. It stops at the first block missing from
 * the walk: blocks are written one after another, each durable before the next one starts, so
 * nothing after a missing block was ever acknowledged.
 */
#ifndef VDO_JOURNAL_READER_H
#define VDO_JOURNAL_READER_H

#include "block-device.h"
#include "errors.h"
#include "recovery-journal-format.h"

/* What the journal held. */
struct vdo_journal_contents {
	/* The blocks walked: [head, end). A journal never written: head == end == 1. */
	vdo_sequence_t head;
	vdo_sequence_t end;
	/* Where the journal goes on: past every block found in the ring. */
	vdo_sequence_t next_tail;
	uint64_t entries;
	/* The counters after the last entry walked. */
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
};

/* Called for each entry, in order; a non-zero return stops the walk with that error. */
typedef int (*vdo_journal_visitor)(void *context, const struct vdo_journal_entry *entry,
                                   struct vdo_journal_point point);

struct vdo_journal_ring;

/**
 * vdo_load_journal_ring() - Read the journal of @size blocks at @origin into memory, to walk it
 *                           (as often as needed) with vdo_walk_journal_ring(); @start as below.
 */
int DD_MUST_CHECK vdo_load_journal_ring(struct block_device *device, uint64_t nonce,
                                        vdo_pbn_t origin, uint32_t size, vdo_sequence_t start,
                                        struct vdo_journal_ring **ring_ptr);

/** vdo_walk_journal_ring() - Walk a journal read by vdo_load_journal_ring(); as below. */
int DD_MUST_CHECK vdo_walk_journal_ring(const struct vdo_journal_ring *ring,
                                        vdo_journal_visitor visitor, void *context,
                                        struct vdo_journal_contents *contents);

/** vdo_free_journal_ring() - Free @ring (NULL is fine). */
void vdo_free_journal_ring(struct vdo_journal_ring *ring);

/**
 * vdo_read_recovery_journal() - Read the journal of @size blocks at @origin and walk it.
 * @start: the oldest block that may be needed (the super block's journal start); blocks older
 *         than it are never walked
 *
 * Return: DD_SUCCESS, the visitor's error, DD_CORRUPT_DATA for an entry that makes no sense, or
 *         the device's error.
 */
int DD_MUST_CHECK vdo_read_recovery_journal(struct block_device *device, uint64_t nonce,
                                            vdo_pbn_t origin, uint32_t size, vdo_sequence_t start,
                                            vdo_journal_visitor visitor, void *context,
                                            struct vdo_journal_contents *contents);

#endif /* VDO_JOURNAL_READER_H */
