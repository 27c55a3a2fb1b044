// SPDX-License-Identifier: GPL-2.0-only
/*
 * Computing and checking a volume's layout; see layout.h.
 */
#include "layout.h"

#include "logger.h"

#define VDO_MAX_LOGICAL_BLOCKS (UINT64_C(1) << 40)

enum {
	DEFAULT_MIN_SLAB_BITS = 10,
	DEFAULT_MAX_SLAB_BITS = 19,
	DEFAULT_SLABS_WANTED = 8,
	DEFAULT_MAX_SLAB_JOURNAL_BLOCKS = 224,
	DEFAULT_MIN_SLAB_JOURNAL_BLOCKS = 8,
	DEFAULT_MIN_RECOVERY_JOURNAL_BLOCKS = 64,
	DEFAULT_MAX_RECOVERY_JOURNAL_BLOCKS = 32768,
	/* Blocks before the slab depot, besides the recovery journal. */
	FIXED_BLOCKS = VDO_SUPER_BLOCK_COPIES + VDO_BLOCK_MAP_TREE_COUNT + VDO_SUMMARY_BLOCKS,
};

static uint32_t log2_floor(uint64_t value)
{
	return (value == 0) ? 0 : 63 - (uint32_t) __builtin_clzll(value);
}

static uint64_t clamp(uint64_t value, uint64_t low, uint64_t high)
{
	return (value < low) ? low : (value > high) ? high : value;
}

static uint32_t default_journal_blocks(uint64_t physical_blocks)
{
	return (uint32_t) clamp(physical_blocks / 64, DEFAULT_MIN_RECOVERY_JOURNAL_BLOCKS,
	                        DEFAULT_MAX_RECOVERY_JOURNAL_BLOCKS);
}

/* About DEFAULT_SLABS_WANTED slabs, within the default range; smaller ones if the storage is too
 * small for one slab of the default minimum. */
static uint32_t default_slab_bits(uint64_t depot_blocks)
{
	if (depot_blocks < (UINT64_C(1) << DEFAULT_MIN_SLAB_BITS))
		return (uint32_t) clamp(log2_floor(depot_blocks), VDO_MIN_SLAB_BITS,
		                        DEFAULT_MIN_SLAB_BITS);
	return (uint32_t) clamp(log2_floor(depot_blocks / DEFAULT_SLABS_WANTED),
	                        DEFAULT_MIN_SLAB_BITS, DEFAULT_MAX_SLAB_BITS);
}

static uint32_t default_slab_journal_blocks(uint32_t slab_blocks)
{
	return (uint32_t) clamp(slab_blocks / 64, DEFAULT_MIN_SLAB_JOURNAL_BLOCKS,
	                        DEFAULT_MAX_SLAB_JOURNAL_BLOCKS);
}

/* Split a slab into data, reference count and journal blocks. */
static int divide_slab(struct vdo_layout *layout)
{
	uint32_t rest = layout->slab_blocks - layout->slab_journal_blocks;

	if ((layout->slab_journal_blocks < VDO_MIN_SLAB_JOURNAL_BLOCKS) ||
	    (layout->slab_journal_blocks > layout->slab_blocks / 4))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT,
		    "a slab journal of %u blocks does not suit slabs of %u "
		    "blocks (%u to a quarter of the slab)",
		    layout->slab_journal_blocks, layout->slab_blocks, VDO_MIN_SLAB_JOURNAL_BLOCKS);
	/* data + ceil(data / per_block) <= rest, with data as large as possible. */
	layout->slab_ref_blocks =
	    (rest + VDO_COUNTS_PER_REF_BLOCK) / (VDO_COUNTS_PER_REF_BLOCK + 1);
	layout->slab_data_blocks = rest - layout->slab_ref_blocks;
	while ((uint64_t) layout->slab_ref_blocks * VDO_COUNTS_PER_REF_BLOCK <
	       layout->slab_data_blocks) {
		layout->slab_ref_blocks++;
		layout->slab_data_blocks--;
	}
	return DD_SUCCESS;
}

static int check_slab_shape(const struct vdo_layout *layout)
{
	if ((layout->slab_bits < VDO_MIN_SLAB_BITS) || (layout->slab_bits > VDO_MAX_SLAB_BITS) ||
	    (layout->slab_blocks != (UINT32_C(1) << layout->slab_bits)))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "slabs must be a power of two from %u to %u blocks, "
		                             "not %u",
		                             1U << VDO_MIN_SLAB_BITS, 1U << VDO_MAX_SLAB_BITS,
		                             layout->slab_blocks);
	return DD_SUCCESS;
}

static int check_sizes(const struct vdo_layout *layout)
{
	if ((layout->journal_blocks < VDO_MIN_RECOVERY_JOURNAL_BLOCKS) ||
	    (layout->journal_blocks > VDO_MAX_RECOVERY_JOURNAL_BLOCKS))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "the recovery journal must have %u to %u blocks, not %u",
		    VDO_MIN_RECOVERY_JOURNAL_BLOCKS, VDO_MAX_RECOVERY_JOURNAL_BLOCKS,
		    layout->journal_blocks);
	if (layout->slab_count == 0)
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT,
		    "%llu blocks of storage cannot hold one slab of %u blocks "
		    "after %llu blocks of fixed metadata",
		    (unsigned long long) layout->physical_blocks, layout->slab_blocks,
		    (unsigned long long) layout->depot_origin);
	if (layout->slab_count > VDO_MAX_SLABS)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%u slabs is more than the %u a volume can have; use "
		                             "larger slabs",
		                             layout->slab_count, VDO_MAX_SLABS);
	if (layout->physical_blocks > VDO_MAX_PBN + 1)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "%llu blocks of storage is more than 36-bit block "
		                             "numbers address",
		                             (unsigned long long) layout->physical_blocks);
	if ((layout->logical_blocks == 0) || (layout->logical_blocks > VDO_MAX_LOGICAL_BLOCKS))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "the logical size must be 1 to %llu blocks, not %llu",
		                             (unsigned long long) VDO_MAX_LOGICAL_BLOCKS,
		                             (unsigned long long) layout->logical_blocks);
	return DD_SUCCESS;
}

/* Place the regions and count the slabs, given the sizes. */
static void place_regions(struct vdo_layout *layout)
{
	layout->journal_origin = VDO_SUPER_BLOCK_COPIES;
	layout->root_origin = layout->journal_origin + layout->journal_blocks;
	layout->summary_origin = layout->root_origin + VDO_BLOCK_MAP_TREE_COUNT;
	layout->index_origin = layout->summary_origin + VDO_SUMMARY_BLOCKS;
	layout->depot_origin = layout->index_origin + layout->index_blocks;
	layout->slab_count =
	    (layout->physical_blocks > layout->depot_origin)
	        ? (uint32_t) ((layout->physical_blocks - layout->depot_origin) >> layout->slab_bits)
	        : 0;
}

int vdo_compute_layout(const struct vdo_format_config *config, uint64_t device_blocks,
                       struct vdo_layout *layout)
{
	uint64_t physical = config->physical_blocks ?: device_blocks;
	int result;

	if (physical > device_blocks)
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "asked for %llu blocks of storage but the device has %llu",
		    (unsigned long long) physical, (unsigned long long) device_blocks);
	*layout = (struct vdo_layout){ .physical_blocks = physical,
		                       .index_blocks = config->index_blocks };
	layout->journal_blocks =
	    config->recovery_journal_blocks ?: default_journal_blocks(physical);
	if (config->slab_blocks != 0) {
		layout->slab_blocks = config->slab_blocks;
		layout->slab_bits = log2_floor(config->slab_blocks);
	} else {
		uint64_t fixed = FIXED_BLOCKS + layout->journal_blocks + layout->index_blocks;

		layout->slab_bits = default_slab_bits((physical > fixed) ? physical - fixed : 0);
		layout->slab_blocks = UINT32_C(1) << layout->slab_bits;
	}
	result = check_slab_shape(layout);
	if (result != DD_SUCCESS)
		return result;
	layout->slab_journal_blocks =
	    config->slab_journal_blocks ?: default_slab_journal_blocks(layout->slab_blocks);
	result = divide_slab(layout);
	if (result != DD_SUCCESS)
		return result;
	place_regions(layout);
	layout->logical_blocks = config->logical_blocks ?: vdo_data_blocks(layout);
	return check_sizes(layout);
}

int vdo_check_layout(const struct vdo_layout *layout)
{
	struct vdo_layout expected = *layout;
	int result = check_slab_shape(layout);

	if (result == DD_SUCCESS)
		result = divide_slab(&expected);
	if (result != DD_SUCCESS)
		return result;
	place_regions(&expected);
	if ((expected.journal_origin != layout->journal_origin) ||
	    (expected.root_origin != layout->root_origin) ||
	    (expected.summary_origin != layout->summary_origin) ||
	    (expected.index_origin != layout->index_origin) ||
	    (expected.depot_origin != layout->depot_origin) ||
	    (expected.slab_count != layout->slab_count) ||
	    (expected.slab_data_blocks != layout->slab_data_blocks) ||
	    (expected.slab_ref_blocks != layout->slab_ref_blocks))
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "the volume's layout is inconsistent");
	return check_sizes(layout);
}

int vdo_grow_layout(const struct vdo_layout *layout, uint64_t physical_blocks,
                    struct vdo_layout *grown)
{
	*grown = *layout;
	grown->physical_blocks = physical_blocks;
	place_regions(grown);
	if (grown->slab_count <= layout->slab_count)
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT,
		    "%llu blocks of storage add no slab of %u blocks to the "
		    "%u there are",
		    (unsigned long long) physical_blocks, layout->slab_blocks, layout->slab_count);
	return check_sizes(grown);
}

uint64_t vdo_overhead_blocks(const struct vdo_layout *layout)
{
	return layout->depot_origin + (uint64_t) layout->slab_count *
	                                  (layout->slab_ref_blocks + layout->slab_journal_blocks);
}
