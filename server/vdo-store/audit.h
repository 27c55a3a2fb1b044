/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Auditing a stopped volume (vdo-store check) and the read-only rebuild (vdo-store rebuild).
 *
 * Both walk every block map tree from its root, reading each page once, and count what refers
 * to each data block: each tree page below a root is referred to by its parent, each mapped
 * logical block refers to its data block.
 *
 * Check compares those counts with the reference counts on disk: a block counted more than it
 * is mapped is leaked, one counted less than it is mapped may be handed out again while in
 * use. It recovers a volume left dirty first (as opening it would), and reports every problem.
 *
 * A read-only rebuild makes a volume consistent again whatever its reference counts say: it
 * replays the recovery journal into the block map, then walks the trees, dropping what cannot
 * be trusted (a damaged page and everything under it, a mapping outside the data blocks, a
 * block mapped more often than a count can say), and sets every count from the walk. Data under
 * a damaged page is lost; everything else is kept. The volume is marked as being rebuilt while
 * this runs, so an interrupted rebuild must be run again.
 */
#ifndef VDO_AUDIT_H
#define VDO_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "block-device.h"
#include "errors.h"

struct vdo_audit_report {
	uint64_t tree_pages;
	uint64_t mapped_blocks;
	uint64_t zero_blocks;
	/* Problems in the block map (dropped by a rebuild). */
	uint64_t bad_pages;
	uint64_t bad_mappings;
	/* Counts that differ from the walk. */
	uint64_t leaked_blocks;
	uint64_t undercounted_blocks;
};

/** vdo_audit_problems() - How many problems the report holds. */
static inline uint64_t vdo_audit_problems(const struct vdo_audit_report *report)
{
	return report->bad_pages + report->bad_mappings + report->leaked_blocks +
	       report->undercounted_blocks;
}

/**
 * vdo_check_volume() - Audit the stopped volume on @device; each problem found is described on
 *                      @out (if not NULL).
 *
 * Return: DD_SUCCESS when the audit ran (look at the report for problems), or the error that
 *         kept it from running (no volume, I/O error, a volume that cannot be recovered).
 */
int DD_MUST_CHECK vdo_check_volume(struct block_device *device, FILE *out,
                                   struct vdo_audit_report *report);

/**
 * vdo_rebuild_volume() - Run a read-only rebuild of the stopped volume on @device; the report
 *                        tells what was dropped.
 */
int DD_MUST_CHECK vdo_rebuild_volume(struct block_device *device, struct vdo_audit_report *report);

#endif /* VDO_AUDIT_H */
