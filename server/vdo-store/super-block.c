// SPDX-License-Identifier: GPL-2.0-only
/*
 * Encoding, loading and saving the super block; see super-block.h. A generation g lives in copy
 * g % 2, so the next save (g + 1) always overwrites the older copy.
 */
#include "super-block.h"

#include <string.h>
#include <xxhash.h>

#include "byte-order.h"
#include "logger.h"
#include "memory-alloc.h"

static const uint8_t MAGIC[8] = { 'V', 'D', 'O', 'S', 'T', 'O', 'R', 'E' };

enum {
	VERSION = 2,
	/* Before dedupe: no index fields. */
	FIRST_VERSION = 1,
	INDEX_SPARSE = 1,
	CHECKSUM_OFFSET = VDO_BLOCK_SIZE - 8,
};

const char *vdo_state_name(enum vdo_volume_state state)
{
	switch (state) {
	case VDO_STATE_CLEAN:
		return "clean";
	case VDO_STATE_DIRTY:
		return "dirty";
	case VDO_STATE_READ_ONLY:
		return "read-only";
	case VDO_STATE_REBUILDING:
		return "rebuilding";
	}
	return "unknown";
}

void vdo_encode_super_block(const struct vdo_super_block *super, uint8_t *block)
{
	const struct vdo_layout *layout = &super->layout;

	memset(block, 0, VDO_BLOCK_SIZE);
	memcpy(block, MAGIC, sizeof(MAGIC));
	dd_put_le32(block + 8, VERSION);
	dd_put_le32(block + 12, super->state);
	dd_put_le64(block + 16, super->generation);
	dd_put_le64(block + 24, super->nonce);
	memcpy(block + 32, super->uuid, sizeof(super->uuid));
	dd_put_le64(block + 48, layout->logical_blocks);
	dd_put_le64(block + 56, layout->physical_blocks);
	dd_put_le64(block + 64, layout->journal_origin);
	dd_put_le32(block + 72, layout->journal_blocks);
	dd_put_le32(block + 76, layout->slab_bits);
	dd_put_le32(block + 80, layout->slab_journal_blocks);
	dd_put_le32(block + 84, layout->slab_count);
	dd_put_le64(block + 88, layout->root_origin);
	dd_put_le64(block + 96, layout->summary_origin);
	dd_put_le64(block + 104, layout->depot_origin);
	dd_put_le32(block + 112, layout->slab_data_blocks);
	dd_put_le32(block + 116, layout->slab_ref_blocks);
	dd_put_le64(block + 120, super->journal_start);
	dd_put_le64(block + 128, super->journal_tail);
	dd_put_le64(block + 136, super->logical_blocks_used);
	dd_put_le64(block + 144, super->block_map_data_blocks);
	dd_put_le32(block + 152, super->recovery_count);
	dd_put_le32(block + 156, super->read_only_rebuild_count);
	dd_put_le64(block + 160, layout->index_origin);
	dd_put_le64(block + 168, layout->index_blocks);
	dd_put_le32(block + 176, super->index.kind);
	dd_put_le32(block + 180, super->index.sparse ? INDEX_SPARSE : 0);
	dd_put_le32(block + 184, super->index.memory_mb);
	dd_put_le64(block + 192, super->index.nonce);
	memcpy(block + 200, super->index.name, strnlen(super->index.name, VDO_INDEX_NAME_BYTES));
	dd_put_le64(block + CHECKSUM_OFFSET, XXH3_64bits(block, CHECKSUM_OFFSET));
}

static void decode_fields(const uint8_t *block, struct vdo_super_block *super)
{
	struct vdo_layout *layout = &super->layout;

	super->state = (enum vdo_volume_state) dd_get_le32(block + 12);
	super->generation = dd_get_le64(block + 16);
	super->nonce = dd_get_le64(block + 24);
	memcpy(super->uuid, block + 32, sizeof(super->uuid));
	layout->logical_blocks = dd_get_le64(block + 48);
	layout->physical_blocks = dd_get_le64(block + 56);
	layout->journal_origin = dd_get_le64(block + 64);
	layout->journal_blocks = dd_get_le32(block + 72);
	layout->slab_bits = dd_get_le32(block + 76);
	layout->slab_blocks = (layout->slab_bits < 32) ? (UINT32_C(1) << layout->slab_bits) : 0;
	layout->slab_journal_blocks = dd_get_le32(block + 80);
	layout->slab_count = dd_get_le32(block + 84);
	layout->root_origin = dd_get_le64(block + 88);
	layout->summary_origin = dd_get_le64(block + 96);
	layout->depot_origin = dd_get_le64(block + 104);
	layout->slab_data_blocks = dd_get_le32(block + 112);
	layout->slab_ref_blocks = dd_get_le32(block + 116);
	super->journal_start = dd_get_le64(block + 120);
	super->journal_tail = dd_get_le64(block + 128);
	super->logical_blocks_used = dd_get_le64(block + 136);
	super->block_map_data_blocks = dd_get_le64(block + 144);
	super->recovery_count = dd_get_le32(block + 152);
	super->read_only_rebuild_count = dd_get_le32(block + 156);
	/* Version 1 has zeros here: no index, and its region starts where the depot does. */
	layout->index_origin = dd_get_le64(block + 160);
	layout->index_blocks = dd_get_le64(block + 168);
	if (super->version == FIRST_VERSION)
		layout->index_origin = layout->summary_origin + VDO_SUMMARY_BLOCKS;
	super->index.kind = (enum vdo_index_record_kind) dd_get_le32(block + 176);
	super->index.sparse = (dd_get_le32(block + 180) & INDEX_SPARSE) != 0;
	super->index.memory_mb = dd_get_le32(block + 184);
	super->index.nonce = dd_get_le64(block + 192);
	memcpy(super->index.name, block + 200, VDO_INDEX_NAME_BYTES);
	super->index.name[VDO_INDEX_NAME_BYTES] = '\0';
}

int vdo_decode_super_block(const uint8_t *block, struct vdo_super_block *super)
{
	uint32_t version;

	if (memcmp(block, MAGIC, sizeof(MAGIC)) != 0)
		return DD_BAD_MAGIC;
	version = dd_get_le32(block + 8);
	if ((version < FIRST_VERSION) || (version > VERSION))
		return dd_log_error_strerror(DD_UNSUPPORTED_VERSION,
		                             "super block version %u; this program reads versions "
		                             "%u to %u",
		                             version, FIRST_VERSION, VERSION);
	if (dd_get_le64(block + CHECKSUM_OFFSET) != XXH3_64bits(block, CHECKSUM_OFFSET))
		return DD_CHECKSUM_MISMATCH;
	memset(super, 0, sizeof(*super));
	super->version = version;
	decode_fields(block, super);
	if ((super->state < VDO_STATE_CLEAN) || (super->state > VDO_STATE_REBUILDING) ||
	    (super->index.kind > VDO_INDEX_RECORD_REMOTE) ||
	    (super->journal_start > super->journal_tail) ||
	    (super->journal_tail - super->journal_start > super->layout.journal_blocks))
		return dd_log_error_strerror(DD_CORRUPT_DATA, "super block state is impossible");
	return vdo_check_layout(&super->layout);
}

int vdo_load_super_block(struct block_device *device, struct vdo_super_block *super)
{
	struct vdo_super_block copies[VDO_SUPER_BLOCK_COPIES];
	int results[VDO_SUPER_BLOCK_COPIES];
	int best = -1;
	uint8_t *blocks;
	int result;

	if (vdo_device_blocks(device) < VDO_SUPER_BLOCK_COPIES)
		return dd_log_error_strerror(DD_BAD_MAGIC, "%s is too small for a volume",
		                             device->name);
	result = dd_allocate_aligned(VDO_SUPER_BLOCK_COPIES * VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
	                             "super blocks", &blocks);
	if (result != DD_SUCCESS)
		return result;
	result = vdo_sync_io(device, VDO_IO_READ, 0, 0, VDO_SUPER_BLOCK_COPIES, blocks);
	if (result != DD_SUCCESS) {
		dd_free(blocks);
		return dd_log_error_strerror(result, "cannot read the super block of %s",
		                             device->name);
	}
	for (int c = 0; c < VDO_SUPER_BLOCK_COPIES; c++) {
		results[c] = vdo_decode_super_block(blocks + c * VDO_BLOCK_SIZE, &copies[c]);
		if ((results[c] == DD_SUCCESS) &&
		    ((best < 0) || (copies[c].generation > copies[best].generation)))
			best = c;
	}
	dd_free(blocks);
	if ((best < 0) && (results[0] == DD_BAD_MAGIC) && (results[1] == DD_BAD_MAGIC))
		return DD_BAD_MAGIC;
	if (best < 0)
		return dd_log_error_strerror((results[0] != DD_BAD_MAGIC) ? results[0] : results[1],
		                             "%s holds no valid vdo-store super block",
		                             device->name);
	if (results[1 - best] != DD_SUCCESS)
		dd_log_warning("%s: super block copy %d is not valid (%s); using copy %d",
		               device->name, 1 - best, dd_error_name(results[1 - best]), best);
	*super = copies[best];
	return DD_SUCCESS;
}

static int write_copy(struct block_device *device, const struct vdo_super_block *super)
{
	uint8_t *block;
	int result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "super block", &block);

	if (result != DD_SUCCESS)
		return result;
	vdo_encode_super_block(super, block);
	result = vdo_sync_io(device, VDO_IO_WRITE, VDO_IO_PREFLUSH | VDO_IO_FUA,
	                     super->generation % VDO_SUPER_BLOCK_COPIES, 1, block);
	dd_free(block);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot write the super block of %s",
		                             device->name);
	return DD_SUCCESS;
}

int vdo_save_super_block(struct block_device *device, struct vdo_super_block *super)
{
	if ((super->version != 0) && (super->version < VERSION)) {
		dd_log_info("%s: writing the super block as version %u (it was version %u)",
		            device->name, VERSION, super->version);
	}
	super->version = VERSION;
	super->generation++;
	return write_copy(device, super);
}

int vdo_write_both_super_blocks(struct block_device *device, struct vdo_super_block *super)
{
	int result = vdo_save_super_block(device, super);

	if (result == DD_SUCCESS)
		result = vdo_save_super_block(device, super);
	return result;
}
