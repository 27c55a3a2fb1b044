/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The slab summary: for each slab, whether its reference counts on disk are up to date, and
 * about how full it is (summary-block.h has the format).
 *
 * The summary belongs to one zone thread. Physical zones change entries by sending an update
 * (a completion and the new entry); the summary thread changes its copy of the block and writes
 * it, with FUA, and the update completes once the block holding it is durable. Updates that
 * arrive while their block is being written are gathered and go out together in the next
 * write. Recovery relies on the order this gives: a slab is marked as needing a scrub before its
 * slab journal gives up the recovery journal locks its entries hold.
 */
#ifndef VDO_SLAB_SUMMARY_H
#define VDO_SLAB_SUMMARY_H

#include "block-device.h"
#include "completion.h"
#include "errors.h"
#include "layout.h"
#include "summary-block.h"

struct vdo_slab_summary;

/* A change of one entry; embedded in whoever asks, who fills the first three fields. */
struct vdo_summary_update {
	/* Continued, on the thread it was prepared for, once the entry is durable. */
	struct dd_completion completion;
	uint32_t slab;
	struct vdo_summary_entry entry;
	/* The summary's: the trip to its thread, and its lists. */
	struct dd_completion hop;
	struct vdo_slab_summary *summary;
	struct vdo_summary_update *next;
};

/**
 * vdo_load_slab_summary() - Read the summary of the volume (any thread, before the zones run),
 *                           or with @fresh start one of never-used slabs without reading it.
 *
 * Return: DD_SUCCESS, DD_CORRUPT_DATA if a block is damaged or unformatted, or an I/O error.
 */
int DD_MUST_CHECK vdo_load_slab_summary(struct block_device *device,
                                        const struct vdo_layout *layout, uint64_t nonce,
                                        struct dd_thread_set *threads, dd_thread_id_t thread,
                                        bool fresh, struct vdo_slab_summary **summary_ptr);

/** vdo_free_slab_summary() - Free @summary (NULL is fine); no update may be in flight. */
void vdo_free_slab_summary(struct vdo_slab_summary *summary);

/** vdo_get_summary_entry_of() - Slab @slab's entry, as last updated (any thread, when quiet). */
struct vdo_summary_entry vdo_get_summary_entry_of(const struct vdo_slab_summary *summary,
                                                  uint32_t slab);

/**
 * vdo_update_slab_summary() - Send @update to the summary thread; update->completion (prepared
 *                             by the caller for where it continues) is continued with the
 *                             result once the entry is durable.
 */
void vdo_update_slab_summary(struct vdo_slab_summary *summary, struct vdo_summary_update *update);

/**
 * vdo_save_slab_summary() - Write every block of the summary now (summary thread idle; any
 *                           thread). For a clean save and after growing.
 */
int DD_MUST_CHECK vdo_save_slab_summary(struct vdo_slab_summary *summary);

/** vdo_set_summary_entry_of() - Change an entry without writing it (before the zones run). */
void vdo_set_summary_entry_of(struct vdo_slab_summary *summary, uint32_t slab,
                              struct vdo_summary_entry entry);

/** vdo_fullness_hint() - The fullness hint for @free of @total blocks free (0: all free). */
uint8_t vdo_fullness_hint(uint32_t free, uint32_t total);

#endif /* VDO_SLAB_SUMMARY_H */
