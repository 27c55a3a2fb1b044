// SPDX-License-Identifier: GPL-2.0-only
/*
 * Recovery after a crash; see recovery.h.
 *
 * Everything here runs on the caller's thread before the zones exist: the depot is loaded with
 * a thread set in manual mode (nothing is launched), pages and counts are read and written
 * synchronously. Block map pages replayed are kept in a hash table until they are written.
 */
#include "recovery.h"

#include <string.h>

#include "block-map-page.h"
#include "journal-reader.h"
#include "logger.h"
#include "memory-alloc.h"
#include "slab-depot.h"
#include "work-queue.h"

struct replay_page {
	vdo_pbn_t pbn;
	uint8_t *data;
	struct replay_page *next;
};

struct recovery {
	struct block_device *device;
	const struct vdo_super_block *super;
	struct vdo_slab_depot *depot;
	bool counts;
	struct replay_page **buckets;
	uint32_t mask;
	/* A page get_page() must make rather than read. */
	vdo_pbn_t fresh;
	uint64_t pages;
	uint64_t increments;
	uint64_t decrements;
	uint64_t skipped;
	/* Slabs whose counts the replay changed. */
	bool *touched;
};

static void no_notify(void *context)
{
	(void) context;
}

static uint32_t bucket_of(const struct recovery *recovery, vdo_pbn_t pbn)
{
	return (uint32_t) ((pbn * 0x9e3779b97f4a7c15ULL) >> 32) & recovery->mask;
}

static bool is_root(const struct recovery *recovery, vdo_pbn_t pbn)
{
	const struct vdo_layout *layout = &recovery->super->layout;

	return (pbn >= layout->root_origin) &&
	       (pbn < layout->root_origin + VDO_BLOCK_MAP_TREE_COUNT);
}

static int get_page(struct recovery *recovery, vdo_pbn_t pbn, uint8_t **data_ptr);

static struct replay_page *find_page(struct recovery *recovery, vdo_pbn_t pbn)
{
	struct replay_page *page = recovery->buckets[bucket_of(recovery, pbn)];

	while ((page != NULL) && (page->pbn != pbn))
		page = page->next;
	return page;
}

/*
 * A page allocated in the journal's window: every change to it is in the window, so it is made
 * again from nothing, whatever its block holds (its first write may have been torn, leaving
 * some sectors of whatever the block held before).
 */
static int new_page(struct recovery *recovery, vdo_pbn_t pbn)
{
	struct replay_page *page = find_page(recovery, pbn);
	uint8_t *data;
	int result;

	if (page != NULL) {
		vdo_format_block_map_page(page->data, recovery->super->nonce, pbn);
		return DD_SUCCESS;
	}
	recovery->fresh = pbn;
	result = get_page(recovery, pbn, &data);
	recovery->fresh = VDO_ZERO_BLOCK;
	return result;
}

/* The page at @pbn, read (or made, if it was never written) on first use. */
static int get_page(struct recovery *recovery, vdo_pbn_t pbn, uint8_t **data_ptr)
{
	uint32_t bucket = bucket_of(recovery, pbn);
	struct replay_page *page = find_page(recovery, pbn);
	uint32_t offset;
	int result;

	if (page != NULL) {
		*data_ptr = page->data;
		return DD_SUCCESS;
	}
	if (!is_root(recovery, pbn) && (vdo_depot_slab_of(recovery->depot, pbn, &offset) == NULL))
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "the journal names block map page %llu, which is not "
		                             "a data block",
		                             (unsigned long long) pbn);
	result = dd_allocate(sizeof(*page), "replay page", &page);
	if (result == DD_SUCCESS)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "replay page data",
		                             &page->data);
	if ((result == DD_SUCCESS) && (pbn == recovery->fresh)) {
		vdo_format_block_map_page(page->data, recovery->super->nonce, pbn);
	} else if (result == DD_SUCCESS) {
		result = vdo_sync_io(recovery->device, VDO_IO_READ, 0, pbn, 1, page->data);
	}
	if ((result == DD_SUCCESS) && (pbn != recovery->fresh)) {
		switch (vdo_validate_block_map_page(page->data, recovery->super->nonce, pbn)) {
		case VDO_PAGE_VALID:
			break;
		case VDO_PAGE_UNFORMATTED:
			vdo_format_block_map_page(page->data, recovery->super->nonce, pbn);
			break;
		case VDO_PAGE_CORRUPT:
			result =
			    dd_log_error_strerror(DD_CORRUPT_DATA, "block map page %llu is damaged",
			                          (unsigned long long) pbn);
			break;
		}
	}
	if (result != DD_SUCCESS) {
		if (page != NULL)
			dd_free(page->data);
		dd_free(page);
		return result;
	}
	page->pbn = pbn;
	page->next = recovery->buckets[bucket];
	recovery->buckets[bucket] = page;
	recovery->pages++;
	*data_ptr = page->data;
	return DD_SUCCESS;
}

/* Make one reference change unless the slab's counts have it already. */
static int adjust(struct recovery *recovery, vdo_pbn_t pbn, bool increment,
                  struct vdo_journal_point point)
{
	uint32_t offset;
	struct vdo_slab *slab = vdo_depot_slab_of(recovery->depot, pbn, &offset);
	struct vdo_ref_points points;

	if (slab == NULL)
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "the journal maps to block %llu, which is not a data "
		                             "block",
		                             (unsigned long long) pbn);
	if (vdo_slab_includes(slab, offset, point)) {
		recovery->skipped++;
		return DD_SUCCESS;
	}
	/* Before any entry the slab journal will take after recovery. */
	points = (struct vdo_ref_points){
		.slab = { .sequence = slab->journal.tail - 1, .entry = UINT16_MAX },
		.recovery = point,
	};
	if (vdo_adjust_ref_count(slab->counts, offset,
	                         increment ? VDO_REF_INCREMENT : VDO_REF_DECREMENT,
	                         points) != DD_SUCCESS)
		return dd_log_error_strerror(
		    DD_CORRUPT_DATA,
		    "replaying the journal would %s block %llu's count past "
		    "its limits",
		    increment ? "raise" : "lower", (unsigned long long) pbn);
	if (increment)
		recovery->increments++;
	else
		recovery->decrements++;
	recovery->touched[slab->number] = true;
	return DD_SUCCESS;
}

static int replay_entry(void *context, const struct vdo_journal_entry *entry,
                        struct vdo_journal_point point)
{
	struct recovery *recovery = context;
	struct vdo_journal_point increment = { .sequence = point.sequence,
		                               .entry = (uint16_t) (2 * point.entry) };
	struct vdo_journal_point decrement = { .sequence = point.sequence,
		                               .entry = (uint16_t) (2 * point.entry + 1) };
	uint8_t *page = NULL;
	int result = get_page(recovery, entry->slot.pbn, &page);

	/* A rebuild drops what it cannot read; the walk after it takes care of the rest. */
	if ((result == DD_CORRUPT_DATA) && !recovery->counts)
		return DD_SUCCESS;
	if (result != DD_SUCCESS)
		return result;
	vdo_set_block_map_entry(page, entry->slot.slot, entry->new_mapping);
	if (entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING)
		result = new_page(recovery, entry->new_mapping.pbn);
	if ((result != DD_SUCCESS) || !recovery->counts)
		return result;
	if (vdo_mapping_uses_storage(entry->new_mapping))
		result = adjust(recovery, entry->new_mapping.pbn, true, increment);
	if ((result == DD_SUCCESS) && vdo_mapping_uses_storage(entry->old_mapping))
		result = adjust(recovery, entry->old_mapping.pbn, false, decrement);
	return result;
}

/*
 * Every slab that may have written journal blocks before the crash goes on past them: those
 * whose counts are on disk, and those the replay changed (a slab journal block written in the
 * crashed run holds entries the recovery journal still had).
 */
static int skip_stale_slab_journals(struct recovery *recovery)
{
	int result = DD_SUCCESS;

	for (uint32_t s = 0; (result == DD_SUCCESS) && (s < vdo_depot_slab_count(recovery->depot));
	     s++) {
		struct vdo_slab *slab = vdo_depot_slab(recovery->depot, s);

		if (slab->counts_on_disk || recovery->touched[s])
			result = vdo_skip_stale_slab_journal(slab);
	}
	return result;
}

/* Write every page replayed, and every count changed, then flush. */
static int write_back(struct recovery *recovery)
{
	int result = recovery->counts ? skip_stale_slab_journals(recovery) : DD_SUCCESS;

	for (uint32_t b = 0; (result == DD_SUCCESS) && (b <= recovery->mask); b++) {
		for (struct replay_page *page = recovery->buckets[b];
		     (result == DD_SUCCESS) && (page != NULL); page = page->next) {
			vdo_seal_block_map_page(page->data, recovery->super->nonce, page->pbn);
			result = vdo_sync_io(recovery->device, VDO_IO_WRITE, 0, page->pbn, 1,
			                     page->data);
		}
	}
	for (uint32_t s = 0; (result == DD_SUCCESS) && (s < vdo_depot_slab_count(recovery->depot));
	     s++)
		result = vdo_save_slab_counts(vdo_depot_slab(recovery->depot, s));
	if (result == DD_SUCCESS)
		result = vdo_sync_io(recovery->device, VDO_IO_FLUSH, 0, 0, 0, NULL);
	return result;
}

int vdo_load_offline_depot(struct block_device *device, const struct vdo_super_block *super,
                           bool reset, struct vdo_offline_depot *offline)
{
	static const dd_thread_id_t zone_thread[1] = { 0 };
	static const unsigned int lock_zone[1] = { 0 };
	struct dd_thread_set_config threads = dd_default_thread_set_config("offline", 1);
	struct vdo_depot_config config = {
		.device = device,
		.layout = &super->layout,
		.nonce = super->nonce,
		.summary_thread = 0,
		.zone_count = 1,
		.zone_threads = zone_thread,
		.lock_zones = lock_zone,
		.reset = reset,
	};
	int result;

	*offline = (struct vdo_offline_depot){ 0 };
	threads.mode = DD_THREAD_SET_MANUAL;
	result = dd_make_thread_set(&threads, &offline->threads);
	if (result == DD_SUCCESS)
		result = vdo_make_lock_counter(super->layout.journal_blocks, 1, no_notify, NULL,
		                               &offline->locks);
	if (result == DD_SUCCESS) {
		config.threads = offline->threads;
		config.locks = offline->locks;
		result = vdo_load_slab_depot(&config, &offline->depot);
	}
	if (result != DD_SUCCESS)
		vdo_free_offline_depot(offline);
	return result;
}

void vdo_free_offline_depot(struct vdo_offline_depot *offline)
{
	vdo_free_slab_depot(offline->depot);
	vdo_free_lock_counter(offline->locks);
	dd_free_thread_set(offline->threads);
	*offline = (struct vdo_offline_depot){ 0 };
}

static void free_pages(struct recovery *recovery)
{
	for (uint32_t b = 0; (recovery->buckets != NULL) && (b <= recovery->mask); b++) {
		while (recovery->buckets[b] != NULL) {
			struct replay_page *page = recovery->buckets[b];

			recovery->buckets[b] = page->next;
			dd_free(page->data);
			dd_free(page);
		}
	}
	dd_free(recovery->buckets);
}

int vdo_replay_journal(struct block_device *device, const struct vdo_super_block *super,
                       struct vdo_slab_depot *depot, bool counts,
                       struct vdo_journal_contents *contents)
{
	struct recovery recovery = { .device = device,
		                     .super = super,
		                     .depot = depot,
		                     .counts = counts,
		                     .mask = (1U << 16) - 1 };
	int result =
	    DD_ALLOCATE(recovery.mask + 1, struct replay_page *, "replay pages", &recovery.buckets);

	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(vdo_depot_slab_count(depot), bool, "touched slabs",
		                     &recovery.touched);

	if (result == DD_SUCCESS)
		result =
		    vdo_read_recovery_journal(device, super->nonce, super->layout.journal_origin,
		                              super->layout.journal_blocks, super->journal_start,
		                              replay_entry, &recovery, contents);
	if (result == DD_SUCCESS)
		result = write_back(&recovery);
	if (result == DD_SUCCESS)
		dd_log_info("replayed %llu journal entries (blocks %llu to %llu): %llu block map "
		            "pages, %llu increments, %llu decrements, %llu already counted",
		            (unsigned long long) contents->entries,
		            (unsigned long long) contents->head, (unsigned long long) contents->end,
		            (unsigned long long) recovery.pages,
		            (unsigned long long) recovery.increments,
		            (unsigned long long) recovery.decrements,
		            (unsigned long long) recovery.skipped);
	free_pages(&recovery);
	dd_free(recovery.touched);
	return result;
}

static int mark_read_only(struct block_device *device, struct vdo_super_block *super, int error)
{
	super->state = VDO_STATE_READ_ONLY;
	if (vdo_save_super_block(device, super) != DD_SUCCESS)
		dd_log_error("cannot record read-only mode in the super block");
	return dd_log_error_strerror(error,
	                             "recovery failed: %s is read-only until a read-only "
	                             "rebuild",
	                             device->name);
}

int vdo_recover(struct block_device *device, struct vdo_super_block *super, uint64_t *entries_ptr)
{
	struct vdo_offline_depot offline;
	struct vdo_journal_contents contents;
	int result;

	dd_log_info("%s was not closed cleanly: recovering", device->name);
	result = vdo_load_offline_depot(device, super, false, &offline);
	if (result != DD_SUCCESS)
		return (result == DD_CORRUPT_DATA) ? mark_read_only(device, super, result) : result;
	result = vdo_replay_journal(device, super, offline.depot, true, &contents);
	if (result == DD_SUCCESS)
		result = vdo_save_depot_summary(offline.depot);
	if ((result == DD_SUCCESS) && (entries_ptr != NULL))
		*entries_ptr = contents.entries;
	if (result == DD_SUCCESS) {
		if (contents.end > contents.head) {
			super->logical_blocks_used = contents.logical_blocks_used;
			super->block_map_data_blocks = contents.block_map_data_blocks;
		}
		super->journal_start = contents.next_tail;
		super->journal_tail = contents.next_tail;
		super->recovery_count++;
		super->state = VDO_STATE_CLEAN;
		result = vdo_save_super_block(device, super);
	}
	vdo_free_offline_depot(&offline);
	if (result == DD_CORRUPT_DATA)
		return mark_read_only(device, super, result);
	return result;
}
