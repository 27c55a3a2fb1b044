/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * I/O from zone threads: a device request tied to a completion, so that the zone that issued
 * it continues on its own thread when the device is done. All of the store's asynchronous I/O
 * goes through here (metadata and data alike), so that closing the store can wait for every
 * request still out (work-queue.h, dd_begin_external_work()).
 *
 * A vio is embedded in whatever owns the buffer (a slab journal's tail block, a reference count
 * block being written, a block map page). vdo_submit_vio() sends it; when the device completes
 * it, the vio's completion continues with the device's result: its callback runs on the thread
 * it was prepared for, or its error handler if the I/O failed.
 */
#ifndef VDO_VIO_H
#define VDO_VIO_H

#include "block-device.h"
#include "completion.h"
#include "vdo-types.h"

struct vdo_vio {
	struct vdo_io io;
	struct dd_completion *completion;
};

/**
 * vdo_submit_vio() - Do @operation on @count blocks at @pbn from @buffer, then continue
 *                    @completion (already prepared) with the result.
 */
void vdo_submit_vio(struct block_device *device, struct vdo_vio *vio,
                    struct dd_completion *completion, enum vdo_io_operation operation,
                    unsigned int flags, vdo_pbn_t pbn, uint32_t count, void *buffer);

#endif /* VDO_VIO_H */
