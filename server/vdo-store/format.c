// SPDX-License-Identifier: GPL-2.0-only
/*
 * Formatting a volume; see format.h.
 */
#include "format.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "block-map-page.h"
#include "logger.h"
#include "memory-alloc.h"
#include "summary-block.h"

static int format_volume(struct block_device *device, const struct vdo_format_config *config,
                         struct vdo_super_block *super_in, struct vdo_super_block *super_ptr);

static int random_bytes(void *buffer, size_t size)
{
	uint8_t *bytes = buffer;

	while (size > 0) {
		ssize_t n = getrandom(bytes, size, 0);

		if ((n < 0) && (errno == EINTR))
			continue;
		if (n < 0)
			return dd_log_error_strerror(errno, "cannot get random bytes");
		bytes += n;
		size -= (size_t) n;
	}
	return DD_SUCCESS;
}

/* Write @count blocks made by @make (given each block's PBN) from @origin. */
static int write_region(struct block_device *device, uint64_t origin, uint32_t count,
                        uint64_t nonce, void (*make)(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn))
{
	uint8_t *blocks;
	int result = dd_allocate_aligned((size_t) count * VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
	                                 "format blocks", &blocks);

	if (result != DD_SUCCESS)
		return result;
	for (uint32_t i = 0; i < count; i++)
		make(blocks + (size_t) i * VDO_BLOCK_SIZE, nonce, origin + i);
	result = vdo_sync_io(device, VDO_IO_WRITE, 0, origin, count, blocks);
	dd_free(blocks);
	return result;
}

static void make_root(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	vdo_format_block_map_page(block, nonce, pbn);
	vdo_seal_block_map_page(block, nonce, pbn);
}

static void make_summary_block(uint8_t *block, uint64_t nonce, vdo_pbn_t pbn)
{
	vdo_format_summary_block(block);
	vdo_seal_summary_block(block, nonce, pbn);
}

int vdo_format(struct block_device *device, const struct vdo_format_config *config,
               struct vdo_super_block *super_ptr)
{
	return vdo_format_with_index(device, config, NULL, super_ptr);
}

int vdo_format_with_index(struct block_device *device, const struct vdo_format_config *config,
                          const struct vdo_index_record *index, struct vdo_super_block *super_ptr)
{
	struct vdo_super_block super = { .state = VDO_STATE_CLEAN,
		                         .journal_start = 1,
		                         .journal_tail = 1 };

	if (index != NULL)
		super.index = *index;
	/* A new index is created in the region on first use, and then recorded. */
	super.index.nonce = 0;
	if ((super.index.kind == VDO_INDEX_RECORD_EMBEDDED) && (config->index_blocks == 0))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "an embedded index needs a region of the volume");
	return format_volume(device, config, &super, super_ptr);
}

/* Lay out and write the new volume @super describes (its index record set). */
static int format_volume(struct block_device *device, const struct vdo_format_config *config,
                         struct vdo_super_block *super_in, struct vdo_super_block *super_ptr)
{
	struct vdo_super_block super = *super_in;
	int result = vdo_compute_layout(config, vdo_device_blocks(device), &super.layout);

	super.version = 0;
	if (result == DD_SUCCESS)
		result = random_bytes(&super.nonce, sizeof(super.nonce));
	if (result == DD_SUCCESS)
		result = random_bytes(super.uuid, sizeof(super.uuid));
	if (result == DD_SUCCESS)
		result = write_region(device, super.layout.root_origin, VDO_BLOCK_MAP_TREE_COUNT,
		                      super.nonce, make_root);
	if (result == DD_SUCCESS)
		result = write_region(device, super.layout.summary_origin, VDO_SUMMARY_BLOCKS,
		                      super.nonce, make_summary_block);
	if (result == DD_SUCCESS)
		result = vdo_write_both_super_blocks(device, &super);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot format %s", device->name);
	dd_log_info("formatted %s: %llu logical blocks, %u slabs of %u blocks (%u for data), "
	            "recovery journal of %u blocks",
	            device->name, (unsigned long long) super.layout.logical_blocks,
	            super.layout.slab_count, super.layout.slab_blocks,
	            super.layout.slab_data_blocks, super.layout.journal_blocks);
	if (super_ptr != NULL)
		*super_ptr = super;
	return DD_SUCCESS;
}
