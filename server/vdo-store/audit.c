// SPDX-License-Identifier: GPL-2.0-only
/*
 * The audit and the read-only rebuild; see audit.h.
 *
 * The walk runs twice over the trees. The first pass reads the interior pages, marks every page
 * below a root as a tree page and counts the reference its parent holds; the second reads the
 * interior pages again and now the leaves, counting data references. Doing the pages first means
 * a leaf that maps a block which is really a tree page (in any tree) is caught, whichever tree
 * is walked first. Counts are kept per block of the depot, 16 bits each.
 */
#include "audit.h"

#include <stdarg.h>
#include <string.h>

#include "block-map-page.h"
#include "logger.h"
#include "memory-alloc.h"
#include "recovery.h"
#include "super-block.h"

struct audit {
	struct block_device *device;
	struct vdo_super_block super;
	struct vdo_slab_depot *depot;
	bool repair;
	FILE *out;
	struct vdo_audit_report *report;
	/* Per block from the depot's origin: references found, and whether it is a tree page. */
	uint16_t *counts;
	uint8_t *tree_page;
	uint64_t depot_blocks;
	/* A page buffer per level. */
	uint8_t *pages[VDO_BLOCK_MAP_TREE_HEIGHT];
};

static void __attribute__((format(printf, 2, 3)))
describe(struct audit *audit, const char *format, ...)
{
	va_list args;

	if (audit->out == NULL)
		return;
	va_start(args, format);
	vfprintf(audit->out, format, args);
	va_end(args);
	fputc('\n', audit->out);
}

static bool is_data_block(struct audit *audit, vdo_pbn_t pbn)
{
	uint32_t offset;

	return vdo_depot_slab_of(audit->depot, pbn, &offset) != NULL;
}

static uint64_t index_of(const struct audit *audit, vdo_pbn_t pbn)
{
	return pbn - audit->super.layout.depot_origin;
}

static int write_page(struct audit *audit, uint8_t *page, vdo_pbn_t pbn)
{
	vdo_seal_block_map_page(page, audit->super.nonce, pbn);
	return vdo_sync_io(audit->device, VDO_IO_WRITE, 0, pbn, 1, page);
}

/* Read the page at @pbn into the buffer of @level; false if it is not a good page. */
static bool read_page(struct audit *audit, vdo_pbn_t pbn, unsigned int level, int *result)
{
	uint8_t *page = audit->pages[level];

	*result = vdo_sync_io(audit->device, VDO_IO_READ, 0, pbn, 1, page);
	if (*result != DD_SUCCESS)
		return false;
	return vdo_validate_block_map_page(page, audit->super.nonce, pbn) == VDO_PAGE_VALID;
}

/* A slot that must be dropped: count it, and clear it if repairing. */
static void drop(struct audit *audit, uint8_t *page, unsigned int slot, bool *dirty)
{
	if (!audit->repair)
		return;
	vdo_set_block_map_entry(page, slot, (struct vdo_mapping){ .state = VDO_MAPPING_UNMAPPED });
	*dirty = true;
}

static int visit(struct audit *audit, vdo_pbn_t pbn, unsigned int level, bool leaves);

/* A repair dropped a page it had counted: take it back. */
static void uncount_page(struct audit *audit, vdo_pbn_t pbn)
{
	uint64_t index = index_of(audit, pbn);

	if (!audit->repair)
		return;
	audit->counts[index]--;
	audit->tree_page[index] = 0;
	audit->report->tree_pages--;
}

/* Pass 1 (pages): a page mapping must be a data block, and a page has one parent. */
static bool count_page(struct audit *audit, vdo_pbn_t parent, unsigned int slot,
                       struct vdo_mapping child)
{
	uint64_t index = index_of(audit, child.pbn);

	if ((child.state != VDO_MAPPING_UNCOMPRESSED) || !is_data_block(audit, child.pbn) ||
	    audit->tree_page[index]) {
		audit->report->bad_mappings++;
		describe(audit, "page %llu slot %u: bad page mapping to %llu (state %u)",
		         (unsigned long long) parent, slot, (unsigned long long) child.pbn,
		         child.state);
		return false;
	}
	audit->tree_page[index] = 1;
	audit->counts[index]++;
	audit->report->tree_pages++;
	return true;
}

/* The children of the interior page in @level's buffer. */
static int visit_children(struct audit *audit, vdo_pbn_t pbn, unsigned int level, bool leaves,
                          bool *dirty)
{
	uint8_t *page = audit->pages[level];
	int result = DD_SUCCESS;

	for (unsigned int slot = 0;
	     (result == DD_SUCCESS) && (slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE); slot++) {
		struct vdo_mapping child = vdo_get_block_map_entry(page, slot);

		if (!vdo_is_mapped(child))
			continue;
		if (!leaves && !count_page(audit, pbn, slot, child)) {
			drop(audit, page, slot, dirty);
			continue;
		}
		/* The pages pass does not read the leaves. */
		if (!leaves && (level == 1))
			continue;
		result = visit(audit, child.pbn, level - 1, leaves);
		if (result == DD_CORRUPT_DATA) {
			/* With a repair, the damaged page and all under it are gone. */
			drop(audit, page, slot, dirty);
			uncount_page(audit, child.pbn);
			result = DD_SUCCESS;
		}
	}
	return result;
}

/* The mappings of the leaf in the level 0 buffer. */
static void visit_leaf(struct audit *audit, vdo_pbn_t pbn, bool *dirty)
{
	uint8_t *page = audit->pages[0];

	for (unsigned int slot = 0; slot < VDO_BLOCK_MAP_ENTRIES_PER_PAGE; slot++) {
		struct vdo_mapping mapping = vdo_get_block_map_entry(page, slot);
		uint64_t index;

		if (!vdo_is_mapped(mapping))
			continue;
		if (vdo_is_zero_mapping(mapping)) {
			audit->report->zero_blocks++;
			continue;
		}
		index = index_of(audit, mapping.pbn);
		if (vdo_is_compressed(mapping.state) || !is_data_block(audit, mapping.pbn) ||
		    audit->tree_page[index] || (audit->counts[index] >= VDO_MAX_REFERENCES)) {
			audit->report->bad_mappings++;
			describe(audit, "leaf %llu slot %u: bad mapping to %llu (state %u)",
			         (unsigned long long) pbn, slot, (unsigned long long) mapping.pbn,
			         mapping.state);
			drop(audit, page, slot, dirty);
			continue;
		}
		audit->counts[index]++;
		audit->report->mapped_blocks++;
	}
}

/*
 * Visit the page at @pbn of @level in one pass; DD_CORRUPT_DATA if it is damaged (reported by
 * the pass that reads it first: the pages pass for interior pages, the leaves pass for leaves).
 */
static int visit(struct audit *audit, vdo_pbn_t pbn, unsigned int level, bool leaves)
{
	bool first_read = leaves ? (level == 0) : (level > 0);
	bool dirty = false;
	int result;

	if (!read_page(audit, pbn, level, &result)) {
		if (result != DD_SUCCESS)
			return result;
		if (first_read && (level < VDO_BLOCK_MAP_TREE_HEIGHT - 1)) {
			audit->report->bad_pages++;
			describe(audit, "block map page %llu (level %u) is damaged",
			         (unsigned long long) pbn, level);
		}
		return DD_CORRUPT_DATA;
	}
	if (level == 0)
		visit_leaf(audit, pbn, &dirty);
	else
		result = visit_children(audit, pbn, level, leaves, &dirty);
	if ((result == DD_SUCCESS) && dirty)
		result = write_page(audit, audit->pages[level], pbn);
	return result;
}

/* Both passes over the 60 trees. */
static int walk(struct audit *audit)
{
	int result = DD_SUCCESS;

	for (int pass = 0; (result == DD_SUCCESS) && (pass < 2); pass++) {
		for (unsigned int tree = 0;
		     (result == DD_SUCCESS) && (tree < VDO_BLOCK_MAP_TREE_COUNT); tree++) {
			vdo_pbn_t root = audit->super.layout.root_origin + tree;

			result = visit(audit, root, VDO_BLOCK_MAP_TREE_HEIGHT - 1, pass == 1);
			if (result != DD_CORRUPT_DATA)
				continue;
			result = DD_SUCCESS;
			if (pass == 1)
				continue;
			/* A damaged root: a repair starts the tree again, empty. */
			audit->report->bad_pages++;
			describe(audit, "the root of tree %u is damaged", tree);
			if (audit->repair) {
				vdo_format_block_map_page(audit->pages[0], audit->super.nonce,
				                          root);
				result = write_page(audit, audit->pages[0], root);
			}
		}
	}
	return result;
}

static int start_audit(struct audit *audit)
{
	const struct vdo_layout *layout = &audit->super.layout;
	int result;

	audit->depot_blocks = layout->physical_blocks - layout->depot_origin;
	result = DD_ALLOCATE(audit->depot_blocks, uint16_t, "audit counts", &audit->counts);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(audit->depot_blocks, uint8_t, "tree pages", &audit->tree_page);
	for (unsigned int l = 0; (result == DD_SUCCESS) && (l < VDO_BLOCK_MAP_TREE_HEIGHT); l++)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "audit page",
		                             &audit->pages[l]);
	return result;
}

static void finish_audit(struct audit *audit)
{
	for (unsigned int l = 0; l < VDO_BLOCK_MAP_TREE_HEIGHT; l++)
		dd_free(audit->pages[l]);
	dd_free(audit->tree_page);
	dd_free(audit->counts);
}

/* Compare the counts on disk with the walk's. */
static void compare_counts(struct audit *audit)
{
	for (uint32_t s = 0; s < vdo_depot_slab_count(audit->depot); s++) {
		struct vdo_slab *slab = vdo_depot_slab(audit->depot, s);

		for (uint32_t offset = 0; offset < audit->super.layout.slab_data_blocks; offset++) {
			vdo_pbn_t pbn = vdo_slab_pbn(slab, offset);
			uint16_t expected = audit->counts[index_of(audit, pbn)];
			uint8_t actual = vdo_get_ref_count(slab->counts, offset);

			if (actual == expected)
				continue;
			if (actual > expected)
				audit->report->leaked_blocks++;
			else
				audit->report->undercounted_blocks++;
			describe(audit, "block %llu: reference count %u, but %u references found",
			         (unsigned long long) pbn, actual, expected);
		}
	}
}

int vdo_check_volume(struct block_device *device, FILE *out, struct vdo_audit_report *report)
{
	struct audit audit = { .device = device, .out = out, .report = report };
	struct vdo_offline_depot offline = { 0 };
	int result = vdo_load_super_block(device, &audit.super);

	memset(report, 0, sizeof(*report));
	if ((result == DD_SUCCESS) && (audit.super.state == VDO_STATE_DIRTY))
		result = vdo_recover(device, &audit.super, NULL);
	if (result == DD_SUCCESS)
		result = vdo_load_offline_depot(device, &audit.super, false, NULL, &offline);
	if (result == DD_SUCCESS) {
		audit.depot = offline.depot;
		result = start_audit(&audit);
	}
	if (result == DD_SUCCESS)
		result = walk(&audit);
	if (result == DD_SUCCESS)
		compare_counts(&audit);
	finish_audit(&audit);
	vdo_free_offline_depot(&offline);
	return result;
}

/* Set every count from the walk, and write them all. */
static int set_counts(struct audit *audit)
{
	int result = DD_SUCCESS;

	for (uint32_t s = 0; (result == DD_SUCCESS) && (s < vdo_depot_slab_count(audit->depot));
	     s++) {
		struct vdo_slab *slab = vdo_depot_slab(audit->depot, s);
		struct vdo_ref_points points = {
			.slab = { .sequence = slab->journal.tail - 1, .entry = UINT16_MAX },
		};

		for (uint32_t offset = 0; offset < audit->super.layout.slab_data_blocks; offset++) {
			uint16_t count = audit->counts[index_of(audit, vdo_slab_pbn(slab, offset))];

			for (uint16_t c = 0; (result == DD_SUCCESS) && (c < count); c++)
				result = vdo_adjust_ref_count(slab->counts, offset,
				                              VDO_REF_INCREMENT, points);
		}
		if (result == DD_SUCCESS) {
			vdo_dirty_all_ref_blocks(slab->counts, points.slab.sequence);
			result = vdo_save_slab_counts(slab);
		}
	}
	if (result == DD_SUCCESS)
		result = vdo_sync_io(audit->device, VDO_IO_FLUSH, 0, 0, 0, NULL);
	return result;
}

int vdo_rebuild_volume(struct block_device *device, struct vdo_audit_report *report)
{
	struct audit audit = { .device = device, .repair = true, .report = report };
	struct vdo_offline_depot offline = { 0 };
	struct vdo_recovery *recovery = NULL;
	vdo_sequence_t next_tail = 0;
	int result = vdo_load_super_block(device, &audit.super);

	memset(report, 0, sizeof(*report));
	if (result != DD_SUCCESS)
		return result;
	dd_log_info("read-only rebuild of %s (it was %s)", device->name,
	            vdo_state_name(audit.super.state));
	audit.super.state = VDO_STATE_REBUILDING;
	result = vdo_save_super_block(device, &audit.super);
	if (result == DD_SUCCESS)
		result = vdo_load_offline_depot(device, &audit.super, true, NULL, &offline);
	if (result == DD_SUCCESS) {
		audit.depot = offline.depot;
		result = vdo_replay_recovery_journal(device, &audit.super, false, &recovery);
	}
	if (result == DD_SUCCESS)
		next_tail = vdo_recovery_contents(recovery)->next_tail;
	vdo_free_recovery(recovery);
	if (result == DD_SUCCESS)
		result = start_audit(&audit);
	if (result == DD_SUCCESS)
		result = walk(&audit);
	if (result == DD_SUCCESS)
		result = set_counts(&audit);
	if (result == DD_SUCCESS)
		result = vdo_save_depot_summary(audit.depot);
	if (result == DD_SUCCESS) {
		audit.super.state = VDO_STATE_CLEAN;
		audit.super.journal_start = next_tail;
		audit.super.journal_tail = next_tail;
		audit.super.logical_blocks_used = report->mapped_blocks;
		audit.super.block_map_data_blocks = report->tree_pages;
		audit.super.read_only_rebuild_count++;
		result = vdo_save_super_block(device, &audit.super);
	}
	finish_audit(&audit);
	vdo_free_offline_depot(&offline);
	return result;
}
