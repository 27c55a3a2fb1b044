// SPDX-License-Identifier: GPL-2.0-only
/*
 * The read path; see data-vio.h.
 *
 * A read holds its logical block's lock, walks the tree without linking anything in, and reads
 * the mapped block into the data_vio's buffer (or zeros it: unmapped, the zero block, or no
 * leaf page yet), then copies its part out. A read that finds its block locked by a write that
 * will complete takes that write's data instead of waiting.
 *
 * A partial write starts here too: it reads the block it will change, and then goes on as a
 * whole-block write (write-path.c).
 */
#include <string.h>

#include "data-vio.h"
#include "logger.h"

static void read_done(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		vdo_fail_data_vio(data_vio, completion->result);
		return;
	}
	if (data_vio->operation != VDO_REQUEST_READ) {
		vdo_continue_partial_write(data_vio);
		return;
	}
	memcpy(data_vio->request_data, data_vio->data + data_vio->offset_in_block,
	       data_vio->length);
	atomic_fetch_add_explicit(&data_vio->store->reads, 1, memory_order_relaxed);
	vdo_finish_data_vio(data_vio);
}

static void zeros(struct data_vio *data_vio)
{
	memset(data_vio->data, 0, VDO_BLOCK_SIZE);
	read_done(&data_vio->completion);
}

static void got_mapping(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_mapping mapping = data_vio->map.mapping;

	if (completion->result != DD_SUCCESS) {
		vdo_fail_data_vio(data_vio, completion->result);
		return;
	}
	if (!vdo_mapping_uses_storage(mapping)) {
		zeros(data_vio);
		return;
	}
	if (vdo_is_compressed(mapping.state)) {
		vdo_fail_data_vio(data_vio,
		                  dd_log_error_strerror(DD_CORRUPT_DATA,
		                                        "logical block %llu is mapped "
		                                        "compressed",
		                                        (unsigned long long) data_vio->lbn));
		return;
	}
	dd_set_completion_callback(completion, read_done, vdo_logical_thread(data_vio));
	vdo_submit_vio(data_vio->store->device, &data_vio->vio, completion, VDO_IO_READ, 0,
	               mapping.pbn, 1, data_vio->data);
}

static void looked_up(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	if (completion->result != DD_SUCCESS) {
		vdo_fail_data_vio(data_vio, completion->result);
		return;
	}
	if (data_vio->map.leaf_pbn == 0) {
		zeros(data_vio);
		return;
	}
	dd_prepare_completion(&data_vio->map.completion, got_mapping, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_GET);
}

void vdo_start_read(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	dd_initialize_completion(&data_vio->map.completion, data_vio->store->threads);
	dd_prepare_completion(&data_vio->map.completion, looked_up, NULL,
	                      vdo_logical_thread(data_vio), data_vio);
	data_vio->map.lbn = data_vio->lbn;
	vdo_map_operate(data_vio->store->map, &data_vio->map, VDO_MAP_LOOKUP);
}

bool vdo_read_from_holder(struct data_vio *data_vio, struct data_vio *holder)
{
	/* A write holding the lock has its whole new block in hand once it is acknowledged, and
	 * then will complete (or the volume goes read-only). */
	if ((holder->operation == VDO_REQUEST_READ) ||
	    !atomic_load_explicit(&holder->acknowledged, memory_order_acquire))
		return false;
	if (holder->is_zero || holder->is_discard)
		memset(data_vio->request_data, 0, data_vio->length);
	else
		memcpy(data_vio->request_data, holder->data + data_vio->offset_in_block,
		       data_vio->length);
	atomic_fetch_add_explicit(&data_vio->store->reads, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&data_vio->store->read_hits_in_flight, 1, memory_order_relaxed);
	vdo_finish_data_vio(data_vio);
	return true;
}
