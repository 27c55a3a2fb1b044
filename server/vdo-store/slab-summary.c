// SPDX-License-Identifier: GPL-2.0-only
/*
 * The slab summary; see slab-summary.h.
 *
 * Each summary block has its in-memory copy, a list of updates waiting to be written and a list
 * of updates riding on the write in flight. An update that arrives changes the copy at once and
 * joins the waiting list; if the block is not being written, a write starts with everything
 * waiting. When a write completes, its updates are continued and the next write starts if more
 * arrived meanwhile.
 */
#include "slab-summary.h"

#include <string.h>

#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"
#include "vio.h"

struct summary_block {
	struct vdo_slab_summary *summary;
	uint32_t index;
	uint8_t *data;
	uint8_t *write_buffer;
	bool writing;
	struct vdo_summary_update *waiting;
	struct vdo_summary_update *writing_updates;
	struct vdo_vio vio;
	struct dd_completion completion;
};

struct vdo_slab_summary {
	struct block_device *device;
	vdo_pbn_t origin;
	uint64_t nonce;
	struct dd_thread_set *threads;
	dd_thread_id_t thread;
	struct summary_block blocks[VDO_SUMMARY_BLOCKS];
};

uint8_t vdo_fullness_hint(uint32_t free, uint32_t total)
{
	if ((total == 0) || (free >= total))
		return 0;
	return (uint8_t) (((uint64_t) (total - free) * 255 + total - 1) / total);
}

static struct summary_block *block_of(struct vdo_slab_summary *summary, uint32_t slab)
{
	return &summary->blocks[slab / VDO_SUMMARY_ENTRIES_PER_BLOCK];
}

void vdo_free_slab_summary(struct vdo_slab_summary *summary)
{
	if (summary == NULL)
		return;
	for (unsigned int b = 0; b < VDO_SUMMARY_BLOCKS; b++) {
		dd_free(summary->blocks[b].data);
		dd_free(summary->blocks[b].write_buffer);
	}
	dd_free(summary);
}

static int allocate_blocks(struct vdo_slab_summary *summary)
{
	for (unsigned int b = 0; b < VDO_SUMMARY_BLOCKS; b++) {
		struct summary_block *block = &summary->blocks[b];
		int result;

		block->summary = summary;
		block->index = b;
		dd_initialize_completion(&block->completion, summary->threads);
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "summary block",
		                             &block->data);
		if (result == DD_SUCCESS)
			result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
			                             "summary block", &block->write_buffer);
		if (result != DD_SUCCESS)
			return result;
	}
	return DD_SUCCESS;
}

static int read_blocks(struct vdo_slab_summary *summary)
{
	uint8_t *buffer;
	int result = dd_allocate_aligned((size_t) VDO_SUMMARY_BLOCKS * VDO_BLOCK_SIZE,
	                                 VDO_BLOCK_SIZE, "summary", &buffer);

	if (result != DD_SUCCESS)
		return result;
	result = vdo_sync_io(summary->device, VDO_IO_READ, 0, summary->origin, VDO_SUMMARY_BLOCKS,
	                     buffer);
	for (unsigned int b = 0; (result == DD_SUCCESS) && (b < VDO_SUMMARY_BLOCKS); b++) {
		uint8_t *data = buffer + (size_t) b * VDO_BLOCK_SIZE;

		if (vdo_validate_summary_block(data, summary->nonce, summary->origin + b) !=
		    VDO_SUMMARY_VALID)
			result = dd_log_error_strerror(DD_CORRUPT_DATA,
			                               "slab summary block %u is damaged", b);
		else
			memcpy(summary->blocks[b].data, data, VDO_BLOCK_SIZE);
	}
	dd_free(buffer);
	return result;
}

int vdo_load_slab_summary(struct block_device *device, const struct vdo_layout *layout,
                          uint64_t nonce, struct dd_thread_set *threads, dd_thread_id_t thread,
                          bool fresh, struct vdo_slab_summary **summary_ptr)
{
	struct vdo_slab_summary *summary;
	int result = dd_allocate(sizeof(*summary), "slab summary", &summary);

	if (result != DD_SUCCESS)
		return result;
	*summary = (struct vdo_slab_summary){ .device = device,
		                              .origin = layout->summary_origin,
		                              .nonce = nonce,
		                              .threads = threads,
		                              .thread = thread };
	result = allocate_blocks(summary);
	for (unsigned int b = 0; fresh && (result == DD_SUCCESS) && (b < VDO_SUMMARY_BLOCKS); b++)
		vdo_format_summary_block(summary->blocks[b].data);
	if ((result == DD_SUCCESS) && !fresh)
		result = read_blocks(summary);
	if (result != DD_SUCCESS) {
		vdo_free_slab_summary(summary);
		return result;
	}
	*summary_ptr = summary;
	return DD_SUCCESS;
}

struct vdo_summary_entry vdo_get_summary_entry_of(const struct vdo_slab_summary *summary,
                                                  uint32_t slab)
{
	return vdo_get_summary_entry(summary->blocks[slab / VDO_SUMMARY_ENTRIES_PER_BLOCK].data,
	                             slab % VDO_SUMMARY_ENTRIES_PER_BLOCK);
}

void vdo_set_summary_entry_of(struct vdo_slab_summary *summary, uint32_t slab,
                              struct vdo_summary_entry entry)
{
	vdo_set_summary_entry(block_of(summary, slab)->data, slab % VDO_SUMMARY_ENTRIES_PER_BLOCK,
	                      entry);
}

static void write_done(struct dd_completion *completion);

/* Write @block with the updates waiting on it. Summary thread. */
static void start_write(struct summary_block *block)
{
	struct vdo_slab_summary *summary = block->summary;

	block->writing = true;
	block->writing_updates = block->waiting;
	block->waiting = NULL;
	memcpy(block->write_buffer, block->data, VDO_BLOCK_SIZE);
	vdo_seal_summary_block(block->write_buffer, summary->nonce, summary->origin + block->index);
	dd_prepare_completion(&block->completion, write_done, NULL, summary->thread, block);
	vdo_submit_vio(summary->device, &block->vio, &block->completion, VDO_IO_WRITE, VDO_IO_FUA,
	               summary->origin + block->index, 1, block->write_buffer);
}

static void write_done(struct dd_completion *completion)
{
	struct summary_block *block = completion->parent;
	struct vdo_summary_update *update = block->writing_updates;
	int result = completion->result;

	if (result != DD_SUCCESS)
		dd_log_error_strerror(result, "cannot write slab summary block %u", block->index);
	block->writing = false;
	block->writing_updates = NULL;
	if (block->waiting != NULL)
		start_write(block);
	while (update != NULL) {
		struct vdo_summary_update *next = update->next;

		dd_continue_completion(&update->completion, result);
		update = next;
	}
}

static void apply_update(struct dd_completion *completion)
{
	struct vdo_summary_update *update = completion->parent;
	struct vdo_slab_summary *summary = update->summary;
	struct summary_block *block = block_of(summary, update->slab);

	(void) dd_assert_on_thread(summary->threads, summary->thread, __func__);
	vdo_set_summary_entry(block->data, update->slab % VDO_SUMMARY_ENTRIES_PER_BLOCK,
	                      update->entry);
	update->next = block->waiting;
	block->waiting = update;
	if (!block->writing)
		start_write(block);
}

void vdo_update_slab_summary(struct vdo_slab_summary *summary, struct vdo_summary_update *update)
{
	update->summary = summary;
	dd_initialize_completion(&update->hop, summary->threads);
	dd_prepare_completion(&update->hop, apply_update, NULL, summary->thread, update);
	dd_launch_completion(&update->hop);
}

int vdo_save_slab_summary(struct vdo_slab_summary *summary)
{
	uint8_t *buffer;
	int result = dd_allocate_aligned((size_t) VDO_SUMMARY_BLOCKS * VDO_BLOCK_SIZE,
	                                 VDO_BLOCK_SIZE, "summary", &buffer);

	if (result != DD_SUCCESS)
		return result;
	for (unsigned int b = 0; b < VDO_SUMMARY_BLOCKS; b++) {
		uint8_t *data = buffer + (size_t) b * VDO_BLOCK_SIZE;

		(void) DD_ASSERT(!summary->blocks[b].writing &&
		                     (summary->blocks[b].waiting == NULL),
		                 "summary block %u is quiet", b);
		memcpy(data, summary->blocks[b].data, VDO_BLOCK_SIZE);
		vdo_seal_summary_block(data, summary->nonce, summary->origin + b);
	}
	result = vdo_sync_io(summary->device, VDO_IO_WRITE, VDO_IO_FUA, summary->origin,
	                     VDO_SUMMARY_BLOCKS, buffer);
	dd_free(buffer);
	return result;
}
