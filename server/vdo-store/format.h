/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Formatting: laying a new, empty volume out on backing storage.
 *
 * Format writes only what must be there: the 60 block map tree roots (empty pages), the slab
 * summary (every slab never used, so no reference count or slab journal block needs to be
 * written or read until the slab is used) and, after a flush, both copies of the super block,
 * in the clean state. Recovery journal and slab journal blocks left over from whatever the
 * storage held before carry another nonce, so they are never taken for ours: format is quick
 * on any size of storage.
 */
#ifndef VDO_FORMAT_H
#define VDO_FORMAT_H

#include "block-device.h"
#include "errors.h"
#include "layout.h"
#include "super-block.h"

/**
 * vdo_format() - Format a volume on @device.
 * @super: if not NULL, receives the new super block
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a configuration that does not fit (with a
 *         message), or the device's error.
 */
int DD_MUST_CHECK vdo_format(struct block_device *device, const struct vdo_format_config *config,
                             struct vdo_super_block *super);

/**
 * vdo_format_with_index() - Format a volume on @device that uses the dedupe index @index
 *                           (NULL: none). An embedded index needs config->index_blocks
 *                           (uds_compute_index_size() of its shape, in blocks); it is created
 *                           there when the volume is first opened.
 */
int DD_MUST_CHECK vdo_format_with_index(struct block_device *device,
                                        const struct vdo_format_config *config,
                                        const struct vdo_index_record *index,
                                        struct vdo_super_block *super);

#endif /* VDO_FORMAT_H */
