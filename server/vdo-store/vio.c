// SPDX-License-Identifier: GPL-2.0-only
/*
 * Metadata I/O tied to completions; see vio.h.
 */
#include "vio.h"

static void vio_done(struct vdo_io *io)
{
	struct vdo_vio *vio = io->context;

	dd_continue_completion(vio->completion, io->result);
}

void vdo_submit_vio(struct block_device *device, struct vdo_vio *vio,
                    struct dd_completion *completion, enum vdo_io_operation operation,
                    unsigned int flags, vdo_pbn_t pbn, uint32_t count, void *buffer)
{
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
