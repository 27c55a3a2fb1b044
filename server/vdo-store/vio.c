// SPDX-License-Identifier: GPL-2.0-only
/*
 * I/O tied to completions; see vio.h. Each I/O counts as work handed outside the completion's
 * thread set (work-queue.h), from before it is submitted until its completion has been
 * launched, so that nobody finds the set idle, and frees what the completion will touch, while
 * the I/O is still out or its answer is on its way.
 */
#include "vio.h"

/* The device's thread: continue the completion, then tell its thread set the I/O is back. */
static void vio_done(struct vdo_io *io)
{
	struct vdo_vio *vio = io->context;
	struct dd_thread_set *set = vio->completion->thread_set;

	/* The vio may be reused as soon as its completion runs: read nothing of it after. */
	dd_continue_completion(vio->completion, io->result);
	dd_end_external_work(set);
}

void vdo_submit_vio(struct block_device *device, struct vdo_vio *vio,
                    struct dd_completion *completion, enum vdo_io_operation operation,
                    unsigned int flags, vdo_pbn_t pbn, uint32_t count, void *buffer)
{
	dd_begin_external_work(completion->thread_set);
	vio->completion = completion;
	vio->io = (struct vdo_io){
		.operation = operation,
		.flags = flags,
		.block = pbn,
		.count = count,
		.buffer = buffer,
		.done = vio_done,
		.context = vio,
	};
	vdo_submit_io(device, &vio->io);
}
