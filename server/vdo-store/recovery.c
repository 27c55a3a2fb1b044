// SPDX-License-Identifier: GPL-2.0-only
/*
 * Recovery after a crash; see recovery.h.
 *
 * The replay runs on the caller's thread before the zones exist. It walks the journal twice in
 * memory: first to note the block map pages it changes, which are then read all at once, then
 * to replay; the pages are kept in a hash table and written all at once at the end. Reference
 * changes are kept per slab in journal order, eight bytes each: the block's offset in its slab with
 * the direction in the top bit, and the recovery point packed as (sequence - head) * 512 + entry
 * (slab journal form: twice the entry's index, plus one for a decrement).
 */
#include "recovery.h"

#include <string.h>

#include "block-map-page.h"
#include "logger.h"
#include "memory-alloc.h"
#include "recovery-journal-format.h"
#include "time-utils.h"

enum {
	DECREMENT_BIT = 0x80000000U,
	ENTRY_BITS = 9,
	FIRST_CHANGES = 64,
	PAGE_BUCKETS = 1U << 16,
	/* Page reads or writes in flight at once. */
	PAGE_BATCH = 256,
};

struct replay_page {
	vdo_pbn_t pbn;
	uint8_t *data;
	/* Still to be read, or read and found damaged. */
	bool unread;
	bool damaged;
	struct replay_page *next;
};

struct ref_change {
	uint32_t offset;
	uint32_t point;
};

struct slab_changes {
	struct ref_change *changes;
	uint32_t count;
	uint32_t capacity;
};

struct vdo_recovery {
	struct block_device *device;
	struct vdo_layout layout;
	uint64_t nonce;
	bool keep_changes;
	struct vdo_journal_contents contents;
	struct slab_changes *slabs;
	bool *touched;
	/* While replaying: the pages changed, and a page get_page() must make rather than
	 * read. */
	struct replay_page **buckets;
	vdo_pbn_t fresh;
	uint64_t pages;
	uint64_t changes;
};

static void no_notify(void *context)
{
	(void) context;
}

/* ---------------------------------------------------------------------------------------------
 * Block map pages
 */

static uint32_t bucket_of(vdo_pbn_t pbn)
{
	return (uint32_t) ((pbn * 0x9e3779b97f4a7c15ULL) >> 32) & (PAGE_BUCKETS - 1);
}

static bool is_root(const struct vdo_recovery *recovery, vdo_pbn_t pbn)
{
	return (pbn >= recovery->layout.root_origin) &&
	       (pbn < recovery->layout.root_origin + VDO_BLOCK_MAP_TREE_COUNT);
}

static bool is_data_block(const struct vdo_recovery *recovery, vdo_pbn_t pbn)
{
	uint32_t slab;
	uint32_t offset;

	return vdo_locate_data_block(&recovery->layout, pbn, &slab, &offset);
}

static struct replay_page *find_page(struct vdo_recovery *recovery, vdo_pbn_t pbn)
{
	struct replay_page *page = recovery->buckets[bucket_of(pbn)];

	while ((page != NULL) && (page->pbn != pbn))
		page = page->next;
	return page;
}

/* Check a page read from disk; one never written becomes a new, empty one. */
static int validate_page(struct vdo_recovery *recovery, uint8_t *data, vdo_pbn_t pbn)
{
	switch (vdo_validate_block_map_page(data, recovery->nonce, pbn)) {
	case VDO_PAGE_VALID:
		return DD_SUCCESS;
	case VDO_PAGE_UNFORMATTED:
		vdo_format_block_map_page(data, recovery->nonce, pbn);
		return DD_SUCCESS;
	case VDO_PAGE_CORRUPT:
		break;
	}
	return dd_log_error_strerror(DD_CORRUPT_DATA, "block map page %llu is damaged",
	                             (unsigned long long) pbn);
}

/* Keep a page for @pbn: made new and empty if @fresh, else to be read. */
static int add_page(struct vdo_recovery *recovery, vdo_pbn_t pbn, bool fresh,
                    struct replay_page **page_ptr)
{
	struct replay_page *page;
	int result = dd_allocate(sizeof(*page), "replay page", &page);

	if (result == DD_SUCCESS)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "replay page data",
		                             &page->data);
	if (result != DD_SUCCESS) {
		if (page != NULL)
			dd_free(page->data);
		dd_free(page);
		return result;
	}
	page->pbn = pbn;
	page->unread = !fresh;
	if (fresh)
		vdo_format_block_map_page(page->data, recovery->nonce, pbn);
	page->next = recovery->buckets[bucket_of(pbn)];
	recovery->buckets[bucket_of(pbn)] = page;
	recovery->pages++;
	*page_ptr = page;
	return DD_SUCCESS;
}

/* Read @count pages at once, and check them. */
static int read_batch(struct vdo_recovery *recovery, struct replay_page **batch, uint32_t count)
{
	struct vdo_io ios[PAGE_BATCH];
	int result;

	for (uint32_t i = 0; i < count; i++)
		ios[i] = (struct vdo_io){ .operation = VDO_IO_READ,
			                  .block = batch[i]->pbn,
			                  .count = 1,
			                  .buffer = batch[i]->data };
	result = vdo_sync_io_batch(recovery->device, ios, count);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot read the block map pages to replay");
	for (uint32_t i = 0; i < count; i++) {
		batch[i]->unread = false;
		batch[i]->damaged =
		    (validate_page(recovery, batch[i]->data, batch[i]->pbn) != DD_SUCCESS);
	}
	return DD_SUCCESS;
}

/* Read every page still unread, PAGE_BATCH at a time. */
static int read_pages(struct vdo_recovery *recovery)
{
	struct replay_page *batch[PAGE_BATCH];
	uint32_t count = 0;
	int result = DD_SUCCESS;

	for (uint32_t b = 0; (result == DD_SUCCESS) && (b < PAGE_BUCKETS); b++) {
		for (struct replay_page *page = recovery->buckets[b];
		     (result == DD_SUCCESS) && (page != NULL); page = page->next) {
			if (!page->unread)
				continue;
			batch[count++] = page;
			if (count == PAGE_BATCH) {
				result = read_batch(recovery, batch, count);
				count = 0;
			}
		}
	}
	if ((result == DD_SUCCESS) && (count > 0))
		result = read_batch(recovery, batch, count);
	return result;
}

/* First walk: note each page the journal changes, and each it makes anew, once. */
static int note_pages(void *context, const struct vdo_journal_entry *entry,
                      struct vdo_journal_point point)
{
	struct vdo_recovery *recovery = context;
	vdo_pbn_t pbn = entry->slot.pbn;
	struct replay_page *page;
	int result = DD_SUCCESS;

	(void) point;
	if ((find_page(recovery, pbn) == NULL) &&
	    (is_root(recovery, pbn) || is_data_block(recovery, pbn)))
		result = add_page(recovery, pbn, false, &page);
	pbn = entry->new_mapping.pbn;
	if ((result == DD_SUCCESS) && (entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING) &&
	    (find_page(recovery, pbn) == NULL) && is_data_block(recovery, pbn))
		result = add_page(recovery, pbn, true, &page);
	return result;
}

/* The page at @pbn (read or made by the first walk, or now if it missed it). */
static int get_page(struct vdo_recovery *recovery, vdo_pbn_t pbn, uint8_t **data_ptr)
{
	struct replay_page *page = find_page(recovery, pbn);
	int result;

	if ((page == NULL) && !is_root(recovery, pbn) && !is_data_block(recovery, pbn))
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "the journal names block map page %llu, which is not "
		                             "a data block",
		                             (unsigned long long) pbn);
	if (page == NULL) {
		result = add_page(recovery, pbn, pbn == recovery->fresh, &page);
		if ((result == DD_SUCCESS) && page->unread)
			result = read_batch(recovery, &page, 1);
		if (result != DD_SUCCESS)
			return result;
	}
	if (page->damaged)
		return DD_CORRUPT_DATA;
	*data_ptr = page->data;
	return DD_SUCCESS;
}

/*
 * A page allocated in the journal's window: every change to it is in the window, so it is made
 * again from nothing, whatever its block holds (its first write may have been torn, leaving
 * some sectors of whatever the block held before).
 */
static int new_page(struct vdo_recovery *recovery, vdo_pbn_t pbn)
{
	struct replay_page *page = find_page(recovery, pbn);
	uint8_t *data;
	int result;

	if (page != NULL) {
		vdo_format_block_map_page(page->data, recovery->nonce, pbn);
		page->damaged = false;
		return DD_SUCCESS;
	}
	recovery->fresh = pbn;
	result = get_page(recovery, pbn, &data);
	recovery->fresh = VDO_ZERO_BLOCK;
	return result;
}

/* Write every page kept (but damaged ones a rebuild dropped), PAGE_BATCH at a time. */
static int write_pages(struct vdo_recovery *recovery)
{
	struct vdo_io ios[PAGE_BATCH];
	uint32_t count = 0;
	int result = DD_SUCCESS;

	for (uint32_t b = 0; (result == DD_SUCCESS) && (b < PAGE_BUCKETS); b++) {
		for (struct replay_page *page = recovery->buckets[b];
		     (result == DD_SUCCESS) && (page != NULL); page = page->next) {
			if (page->damaged)
				continue;
			vdo_seal_block_map_page(page->data, recovery->nonce, page->pbn);
			ios[count++] = (struct vdo_io){ .operation = VDO_IO_WRITE,
				                        .block = page->pbn,
				                        .count = 1,
				                        .buffer = page->data };
			if (count == PAGE_BATCH) {
				result = vdo_sync_io_batch(recovery->device, ios, count);
				count = 0;
			}
		}
	}
	if ((result == DD_SUCCESS) && (count > 0))
		result = vdo_sync_io_batch(recovery->device, ios, count);
	return result;
}

static void free_pages(struct vdo_recovery *recovery)
{
	for (uint32_t b = 0; (recovery->buckets != NULL) && (b < PAGE_BUCKETS); b++) {
		while (recovery->buckets[b] != NULL) {
			struct replay_page *page = recovery->buckets[b];

			recovery->buckets[b] = page->next;
			dd_free(page->data);
			dd_free(page);
		}
	}
	DD_FREE_AND_NULL(recovery->buckets);
}

/* ---------------------------------------------------------------------------------------------
 * Reference changes
 */

static int grow_changes(struct slab_changes *list)
{
	uint32_t capacity = (list->capacity == 0) ? FIRST_CHANGES : 2 * list->capacity;
	struct ref_change *changes;
	int result = DD_ALLOCATE(capacity, struct ref_change, "reference changes", &changes);

	if (result != DD_SUCCESS)
		return result;
	if (list->count > 0)
		memcpy(changes, list->changes, list->count * sizeof(*changes));
	dd_free(list->changes);
	list->changes = changes;
	list->capacity = capacity;
	return DD_SUCCESS;
}

/* List one reference change of @pbn at @point (slab journal form). */
static int keep_change(struct vdo_recovery *recovery, vdo_pbn_t pbn, bool increment,
                       struct vdo_journal_point point)
{
	struct slab_changes *list;
	uint32_t slab;
	uint32_t offset;
	int result;

	if (!vdo_locate_data_block(&recovery->layout, pbn, &slab, &offset))
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "the journal maps to block %llu, which is not a data "
		                             "block",
		                             (unsigned long long) pbn);
	list = &recovery->slabs[slab];
	if (list->count == list->capacity) {
		result = grow_changes(list);
		if (result != DD_SUCCESS)
			return result;
	}
	list->changes[list->count++] = (struct ref_change){
		.offset = offset | (increment ? 0 : DECREMENT_BIT),
		.point = (uint32_t) ((point.sequence - recovery->contents.head) << ENTRY_BITS) |
		         point.entry,
	};
	recovery->touched[slab] = true;
	recovery->changes++;
	return DD_SUCCESS;
}

static struct vdo_journal_point point_of(const struct vdo_recovery *recovery,
                                         struct ref_change change)
{
	return (struct vdo_journal_point){
		.sequence = recovery->contents.head + (change.point >> ENTRY_BITS),
		.entry = (uint16_t) (change.point & ((1U << ENTRY_BITS) - 1)),
	};
}

static int replay_entry(void *context, const struct vdo_journal_entry *entry,
                        struct vdo_journal_point point)
{
	struct vdo_recovery *recovery = context;
	struct vdo_journal_point increment = { .sequence = point.sequence,
		                               .entry = (uint16_t) (2 * point.entry) };
	struct vdo_journal_point decrement = { .sequence = point.sequence,
		                               .entry = (uint16_t) (2 * point.entry + 1) };
	uint8_t *page = NULL;
	int result = get_page(recovery, entry->slot.pbn, &page);

	/* A rebuild drops what it cannot read; the walk after it takes care of the rest. */
	if ((result == DD_CORRUPT_DATA) && !recovery->keep_changes)
		return DD_SUCCESS;
	if (result != DD_SUCCESS)
		return result;
	vdo_set_block_map_entry(page, entry->slot.slot, entry->new_mapping);
	if (entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING)
		result = new_page(recovery, entry->new_mapping.pbn);
	if ((result != DD_SUCCESS) || !recovery->keep_changes)
		return result;
	if (vdo_mapping_uses_storage(entry->new_mapping))
		result = keep_change(recovery, entry->new_mapping.pbn, true, increment);
	if ((result == DD_SUCCESS) && vdo_mapping_uses_storage(entry->old_mapping))
		result = keep_change(recovery, entry->old_mapping.pbn, false, decrement);
	return result;
}

/* ---------------------------------------------------------------------------------------------
 * The journal
 */

/*
 * Write empty blocks over the places the walk could not reach, up to where the journal goes on,
 * so that a walk from the same head after another crash carries on into the blocks written
 * next.
 */
static int close_journal_gap(struct vdo_recovery *recovery)
{
	const struct vdo_journal_contents *contents = &recovery->contents;
	uint8_t *block = NULL;
	int result;

	if ((contents->end == contents->head) || (contents->end == contents->next_tail))
		return DD_SUCCESS;
	result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "journal gap", &block);
	for (vdo_sequence_t s = contents->end; (result == DD_SUCCESS) && (s < contents->next_tail);
	     s++) {
		vdo_pbn_t pbn =
		    recovery->layout.journal_origin + s % recovery->layout.journal_blocks;

		vdo_start_journal_block(
		    block, &(struct vdo_journal_block_header){
		               .sequence = s,
		               .head = contents->head,
		               .logical_blocks_used = contents->logical_blocks_used,
		               .block_map_data_blocks = contents->block_map_data_blocks,
		           });
		vdo_seal_journal_block(block, recovery->nonce, pbn);
		result = vdo_sync_io(recovery->device, VDO_IO_WRITE, 0, pbn, 1, block);
	}
	dd_free(block);
	return result;
}

void vdo_free_recovery(struct vdo_recovery *recovery)
{
	if (recovery == NULL)
		return;
	free_pages(recovery);
	for (uint32_t s = 0; (recovery->slabs != NULL) && (s < recovery->layout.slab_count); s++)
		dd_free(recovery->slabs[s].changes);
	dd_free(recovery->slabs);
	dd_free(recovery->touched);
	dd_free(recovery);
}

static int make_recovery(struct block_device *device, const struct vdo_super_block *super,
                         bool keep_changes, struct vdo_recovery **recovery_ptr)
{
	struct vdo_recovery *recovery;
	int result = dd_allocate(sizeof(*recovery), "recovery", &recovery);

	if (result != DD_SUCCESS)
		return result;
	recovery->device = device;
	recovery->layout = super->layout;
	recovery->nonce = super->nonce;
	recovery->keep_changes = keep_changes;
	result =
	    DD_ALLOCATE(PAGE_BUCKETS, struct replay_page *, "replay pages", &recovery->buckets);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(super->layout.slab_count, struct slab_changes,
		                     "reference changes", &recovery->slabs);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(super->layout.slab_count, bool, "touched slabs",
		                     &recovery->touched);
	if (result != DD_SUCCESS) {
		vdo_free_recovery(recovery);
		return result;
	}
	*recovery_ptr = recovery;
	return DD_SUCCESS;
}

int vdo_replay_recovery_journal(struct block_device *device, const struct vdo_super_block *super,
                                bool keep_changes, struct vdo_recovery **recovery_ptr)
{
	struct vdo_recovery *recovery = NULL;
	struct vdo_journal_ring *ring = NULL;
	dd_ktime_t start = dd_monotonic_ns();
	int result = make_recovery(device, super, keep_changes, &recovery);

	if (result == DD_SUCCESS)
		result = vdo_load_journal_ring(device, super->nonce, super->layout.journal_origin,
		                               super->layout.journal_blocks, super->journal_start,
		                               &ring);
	if (result == DD_SUCCESS)
		result = vdo_walk_journal_ring(ring, note_pages, recovery, &recovery->contents);
	if (result == DD_SUCCESS)
		result = read_pages(recovery);
	if (result == DD_SUCCESS)
		result = vdo_walk_journal_ring(ring, replay_entry, recovery, &recovery->contents);
	vdo_free_journal_ring(ring);
	if (result == DD_SUCCESS)
		result = write_pages(recovery);
	if (result == DD_SUCCESS)
		result = close_journal_gap(recovery);
	if (result == DD_SUCCESS)
		result = vdo_sync_io(device, VDO_IO_FLUSH, 0, 0, 0, NULL);
	if (result != DD_SUCCESS) {
		vdo_free_recovery(recovery);
		return result;
	}
	free_pages(recovery);
	dd_log_info("replayed %llu journal entries (blocks %llu to %llu) in %.3f s: %llu block "
	            "map pages, %llu reference changes",
	            (unsigned long long) recovery->contents.entries,
	            (unsigned long long) recovery->contents.head,
	            (unsigned long long) recovery->contents.end,
	            dd_seconds_between(start, dd_monotonic_ns()),
	            (unsigned long long) recovery->pages, (unsigned long long) recovery->changes);
	*recovery_ptr = recovery;
	return DD_SUCCESS;
}

const struct vdo_journal_contents *vdo_recovery_contents(const struct vdo_recovery *recovery)
{
	return &recovery->contents;
}

void vdo_take_journal_contents(const struct vdo_recovery *recovery, bool keep_window,
                               struct vdo_super_block *super)
{
	const struct vdo_journal_contents *contents = &recovery->contents;

	if (contents->end > contents->head) {
		super->logical_blocks_used = contents->logical_blocks_used;
		super->block_map_data_blocks = contents->block_map_data_blocks;
	}
	super->journal_start = keep_window ? contents->head : contents->next_tail;
	super->journal_tail = contents->next_tail;
}

const bool *vdo_recovery_touched(const struct vdo_recovery *recovery)
{
	return recovery->touched;
}

/* ---------------------------------------------------------------------------------------------
 * Slabs
 */

/* Apply the journal's changes of @slab that its counts do not include yet. */
static int apply_changes(const struct vdo_recovery *recovery, struct vdo_slab *slab)
{
	const struct slab_changes *list = &recovery->slabs[slab->number];
	/* Before any entry the slab journal will take after recovery. */
	struct vdo_journal_point slab_point = { .sequence = slab->journal.tail - 1,
		                                .entry = UINT16_MAX };

	for (uint32_t c = 0; c < list->count; c++) {
		struct ref_change change = list->changes[c];
		uint32_t offset = change.offset & ~DECREMENT_BIT;
		bool increment = (change.offset & DECREMENT_BIT) == 0;
		struct vdo_journal_point point = point_of(recovery, change);

		if (vdo_slab_includes(slab, offset, point))
			continue;
		if (vdo_adjust_ref_count(
		        slab->counts, offset, increment ? VDO_REF_INCREMENT : VDO_REF_DECREMENT,
		        (struct vdo_ref_points){ .slab = slab_point, .recovery = point }) !=
		    DD_SUCCESS)
			return dd_log_error_strerror(
			    DD_CORRUPT_DATA,
			    "slab %u: replaying the journal would %s block "
			    "%u's count past its limits",
			    slab->number, increment ? "raise" : "lower", offset);
	}
	return DD_SUCCESS;
}

int vdo_recover_slab(const struct vdo_recovery *recovery, struct vdo_slab *slab)
{
	bool touched = recovery->touched[slab->number];
	int result = vdo_load_slab(slab);

	if (result == DD_SUCCESS)
		result = apply_changes(recovery, slab);
	/* A slab journal block written in the crashed run may hold entries the recovery
	 * journal still had: go on past every block of the ring. */
	if ((result == DD_SUCCESS) && (slab->counts_on_disk || touched))
		result = vdo_skip_stale_slab_journal(slab);
	if (result == DD_SUCCESS)
		result = vdo_save_slab_counts(slab);
	if (result == DD_SUCCESS)
		result = vdo_sync_io(slab->context->device, VDO_IO_FLUSH, 0, 0, 0, NULL);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot recover slab %u", slab->number);
	vdo_slab_recovery_done(slab);
	slab->summary_dirty = false;
	return DD_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * Offline
 */

int vdo_load_offline_depot(struct block_device *device, const struct vdo_super_block *super,
                           bool reset, const struct vdo_recovery *recovery,
                           struct vdo_offline_depot *offline)
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
		.touched = (recovery != NULL) ? vdo_recovery_touched(recovery) : NULL,
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

int vdo_mark_read_only(struct block_device *device, struct vdo_super_block *super, int error)
{
	super->state = VDO_STATE_READ_ONLY;
	if (vdo_save_super_block(device, super) != DD_SUCCESS)
		dd_log_error("cannot record read-only mode in the super block");
	return dd_log_error_strerror(error,
	                             "recovery failed: %s is read-only until a read-only "
	                             "rebuild",
	                             device->name);
}

int vdo_recover_all_slabs(const struct vdo_recovery *recovery, struct vdo_slab_depot *depot)
{
	int result = DD_SUCCESS;

	for (uint32_t s = 0; (result == DD_SUCCESS) && (s < vdo_depot_slab_count(depot)); s++) {
		struct vdo_slab *slab = vdo_depot_slab(depot, s);

		if (!slab->recovering)
			continue;
		result = vdo_recover_slab(recovery, slab);
		if (result == DD_SUCCESS)
			vdo_slab_recovered_early(depot, slab);
	}
	return result;
}

int vdo_recover(struct block_device *device, struct vdo_super_block *super, uint64_t *entries_ptr)
{
	struct vdo_offline_depot offline = { 0 };
	struct vdo_recovery *recovery = NULL;
	int result;

	dd_log_info("%s was not closed cleanly: recovering", device->name);
	result = vdo_replay_recovery_journal(device, super, true, &recovery);
	if (result == DD_SUCCESS)
		result = vdo_load_offline_depot(device, super, false, recovery, &offline);
	if (result == DD_SUCCESS)
		result = vdo_recover_all_slabs(recovery, offline.depot);
	if (result == DD_SUCCESS)
		result = vdo_save_depot_summary(offline.depot);
	if (result == DD_SUCCESS) {
		if (entries_ptr != NULL)
			*entries_ptr = vdo_recovery_contents(recovery)->entries;
		vdo_take_journal_contents(recovery, false, super);
		super->recovery_count++;
		super->state = VDO_STATE_CLEAN;
		result = vdo_save_super_block(device, super);
	}
	vdo_free_offline_depot(&offline);
	vdo_free_recovery(recovery);
	if (result == DD_CORRUPT_DATA)
		return vdo_mark_read_only(device, super, result);
	return result;
}
