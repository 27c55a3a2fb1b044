// SPDX-License-Identifier: GPL-2.0-only
/*
 * A slab's life apart from its journal: making it, writing its reference counts back, loading
 * it and scrubbing it after a crash; see slab.h.
 *
 * Loading reads what the summary says is worth reading. A slab never used has nothing on disk.
 * A clean slab's counts are read, and its journal's last block (where the summary says the
 * tail is) gives the sequence to go on from. A dirty slab is scrubbed: its counts are read with
 * each sector's slab journal point, its whole journal ring is read, and every entry from the
 * journal's head to its newest block that a sector's point does not cover is applied again.
 * The blocks it changed are dirty and keep the journal's old head until they are written.
 */
#include <string.h>

#include "logger.h"
#include "memory-alloc.h"
#include "slab.h"

static void ref_block_written(struct dd_completion *completion);
static void note_formatted(struct vdo_slab *slab, uint32_t index, int result);

int vdo_make_slab(struct vdo_slab_context *context, uint32_t number, unsigned int zone,
                  dd_thread_id_t thread, unsigned int lock_zone, struct vdo_slab **slab_ptr)
{
	const struct vdo_layout *layout = context->layout;
	struct vdo_slab *slab;
	int result = dd_allocate(sizeof(*slab), "slab", &slab);

	if (result != DD_SUCCESS)
		return result;
	slab->context = context;
	slab->number = number;
	slab->origin = vdo_slab_origin(layout, number);
	slab->ref_origin = slab->origin + layout->slab_data_blocks;
	slab->zone = zone;
	slab->thread = thread;
	slab->lock_zone = lock_zone;
	slab->journal.origin = slab->ref_origin + layout->slab_ref_blocks;
	slab->journal.size = layout->slab_journal_blocks;
	dd_initialize_completion(&slab->journal.write_completion, context->threads);
	dd_initialize_completion(&slab->journal.reap_completion, context->threads);
	dd_initialize_completion(&slab->journal.summary_update.completion, context->threads);
	dd_initialize_completion(&slab->format_completion, context->threads);
	dd_initialize_completion(&slab->hurry_completion, context->threads);
	result = vdo_make_ref_counts(layout->slab_data_blocks, &slab->counts);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(vdo_ref_block_count(slab->counts), bool, "formatted blocks",
		                     &slab->formatted);
	if (result == DD_SUCCESS)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "slab journal tail",
		                             &slab->journal.tail_block);
	if (result == DD_SUCCESS)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "slab journal write",
		                             &slab->journal.write_buffer);
	for (unsigned int w = 0; (result == DD_SUCCESS) && (w < VDO_REF_WRITES_PER_SLAB); w++) {
		slab->writes[w].slab = slab;
		dd_initialize_completion(&slab->writes[w].completion, context->threads);
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "reference write",
		                             &slab->writes[w].buffer);
	}
	if (result != DD_SUCCESS) {
		vdo_free_slab(slab);
		return result;
	}
	vdo_start_slab_journal(slab, 1);
	*slab_ptr = slab;
	return DD_SUCCESS;
}

void vdo_free_slab(struct vdo_slab *slab)
{
	if (slab == NULL)
		return;
	for (unsigned int w = 0; w < VDO_REF_WRITES_PER_SLAB; w++)
		dd_free(slab->writes[w].buffer);
	dd_free(slab->included);
	dd_free(slab->formatted);
	dd_free(slab->journal.write_buffer);
	dd_free(slab->journal.tail_block);
	vdo_free_ref_counts(slab->counts);
	dd_free(slab);
}

void vdo_slab_fail(struct vdo_slab *slab, int result)
{
	if (slab->failed)
		return;
	slab->failed = true;
	dd_log_error_strerror(result, "slab %u failed", slab->number);
	if (slab->context->fail != NULL)
		slab->context->fail(slab->context->fail_context, result);
}

void vdo_write_ref_blocks(struct vdo_slab *slab, vdo_sequence_t before)
{
	while (!slab->failed && (slab->writes_in_flight < VDO_REF_WRITES_PER_SLAB)) {
		struct vdo_ref_write *write = NULL;
		uint32_t index;

		for (unsigned int w = 0; w < VDO_REF_WRITES_PER_SLAB; w++) {
			if (!slab->writes[w].busy) {
				write = &slab->writes[w];
				break;
			}
		}
		if ((write == NULL) || !vdo_take_dirty_ref_block(slab->counts, before, &index))
			return;
		write->busy = true;
		write->index = index;
		slab->writes_in_flight++;
		vdo_pack_ref_block(slab->counts, index, write->buffer, slab->context->nonce,
		                   slab->ref_origin + index, NULL);
		dd_prepare_completion(&write->completion, ref_block_written, NULL, slab->thread,
		                      write);
		vdo_submit_vio(slab->context->device, &write->vio, &write->completion, VDO_IO_WRITE,
		               0, slab->ref_origin + index, 1, write->buffer);
	}
}

static void ref_block_written(struct dd_completion *completion)
{
	struct vdo_ref_write *write = completion->parent;
	struct vdo_slab *slab = write->slab;

	write->busy = false;
	slab->writes_in_flight--;
	if (completion->result != DD_SUCCESS) {
		dd_log_error_strerror(completion->result,
		                      "slab %u: cannot write reference count block %u",
		                      slab->number, write->index);
		vdo_slab_fail(slab, completion->result);
	}
	vdo_ref_block_written(slab->counts, write->index);
	slab->ref_blocks_written++;
	if (slab->formatting)
		note_formatted(slab, write->index, completion->result);
	vdo_reap_slab_journal(slab);
}

static void finish_format(struct vdo_slab *slab, int result)
{
	slab->formatting = false;
	slab->format_done(slab, result);
}

static void format_flushed(struct dd_completion *completion)
{
	struct vdo_slab *slab = completion->parent;

	if (completion->result == DD_SUCCESS)
		slab->counts_on_disk = true;
	finish_format(slab, completion->result);
}

/* A count block write completed while formatting: one fewer to go, or keep writing. */
static void note_formatted(struct vdo_slab *slab, uint32_t index, int result)
{
	if (result != DD_SUCCESS) {
		finish_format(slab, result);
		return;
	}
	if (!slab->formatted[index]) {
		slab->formatted[index] = true;
		if (--slab->unformatted == 0) {
			dd_prepare_completion(&slab->format_completion, format_flushed, NULL,
			                      slab->thread, slab);
			vdo_submit_vio(slab->context->device, &slab->format_vio,
			               &slab->format_completion, VDO_IO_FLUSH, 0, 0, 0, NULL);
			return;
		}
	}
	vdo_write_ref_blocks(slab, VDO_NO_LOCK);
}

void vdo_format_slab_counts(struct vdo_slab *slab, void (*done)(struct vdo_slab *slab, int result))
{
	uint32_t blocks = vdo_ref_block_count(slab->counts);

	slab->formatting = true;
	slab->format_done = done;
	slab->unformatted = blocks;
	memset(slab->formatted, 0, blocks * sizeof(slab->formatted[0]));
	vdo_dirty_all_ref_blocks(slab->counts, slab->journal.tail);
	vdo_write_ref_blocks(slab, VDO_NO_LOCK);
}

bool vdo_slab_is_quiet(const struct vdo_slab *slab)
{
	const struct vdo_slab_journal *journal = &slab->journal;

	return (slab->writes_in_flight == 0) && !journal->writing && !journal->reaping &&
	       !journal->updating_summary && !slab->formatting && (journal->waiters == NULL);
}

/* Read @count blocks from @pbn into a new buffer. */
static int read_region(struct vdo_slab *slab, vdo_pbn_t pbn, uint32_t count, uint8_t **buffer_ptr)
{
	uint8_t *buffer = NULL;
	int result = dd_allocate_aligned((size_t) count * VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
	                                 "slab load", &buffer);

	if (result != DD_SUCCESS)
		return result;
	result = vdo_sync_io(slab->context->device, VDO_IO_READ, 0, pbn, count, buffer);
	if (result != DD_SUCCESS) {
		dd_free(buffer);
		return dd_log_error_strerror(result, "slab %u: cannot read its metadata",
		                             slab->number);
	}
	*buffer_ptr = buffer;
	return DD_SUCCESS;
}

/* Read the counts, with each sector's points into @points (VDO_SECTORS_PER_BLOCK per block). */
static int load_counts(struct vdo_slab *slab, struct vdo_ref_points *points)
{
	uint32_t blocks = vdo_ref_block_count(slab->counts);
	uint8_t *buffer = NULL;
	int result = read_region(slab, slab->ref_origin, blocks, &buffer);

	for (uint32_t b = 0; (result == DD_SUCCESS) && (b < blocks); b++)
		result = vdo_unpack_ref_block(slab->counts, b, buffer + (size_t) b * VDO_BLOCK_SIZE,
		                              slab->context->nonce, slab->ref_origin + b,
		                              points + (size_t) b * VDO_SECTORS_PER_BLOCK);
	dd_free(buffer);
	return result;
}

/* The valid block in @position of the journal ring @ring, if any. */
static bool open_position(struct vdo_slab *slab, const uint8_t *ring, uint32_t position,
                          struct vdo_slab_journal_header *header)
{
	return vdo_open_slab_journal_block(ring + (size_t) position * VDO_BLOCK_SIZE,
	                                   slab->context->nonce, slab->journal.origin + position,
	                                   position, slab->journal.size, header) == DD_SUCCESS;
}

/* The newest valid block of the ring; false if there is none. */
static bool find_newest(struct vdo_slab *slab, const uint8_t *ring,
                        struct vdo_slab_journal_header *newest)
{
	bool found = false;

	for (uint32_t p = 0; p < slab->journal.size; p++) {
		struct vdo_slab_journal_header header;

		if (open_position(slab, ring, p, &header) &&
		    (!found || (header.sequence > newest->sequence))) {
			*newest = header;
			found = true;
		}
	}
	return found;
}

/* Apply one journal block's entries that the counts' sectors do not include yet. */
static int replay_block(struct vdo_slab *slab, const uint8_t *block,
                        const struct vdo_slab_journal_header *header,
                        const struct vdo_ref_points *points)
{
	for (uint16_t i = 0; i < header->entry_count; i++) {
		struct vdo_slab_journal_entry entry = vdo_get_slab_journal_entry(block, i);
		struct vdo_journal_point point = { .sequence = header->sequence, .entry = i };
		uint32_t within = entry.offset % VDO_COUNTS_PER_REF_BLOCK;
		const struct vdo_journal_point *sector_point =
		    &points[(entry.offset / VDO_COUNTS_PER_REF_BLOCK) * VDO_SECTORS_PER_BLOCK +
		            within / VDO_COUNTS_PER_SECTOR]
		         .slab;
		int result;

		if (entry.offset >= slab->context->layout->slab_data_blocks)
			return dd_log_error_strerror(
			    DD_CORRUPT_DATA,
			    "slab %u: journal entry for block %u is beyond "
			    "the slab",
			    slab->number, entry.offset);
		if (!vdo_before_journal_point(*sector_point, point))
			continue;
		/* Entries carry no recovery point of their own: their block's last will do, as
		 * whole blocks are replayed before the counts are written. */
		result =
		    vdo_adjust_ref_count(slab->counts, entry.offset,
		                         entry.increment ? VDO_REF_INCREMENT : VDO_REF_DECREMENT,
		                         (struct vdo_ref_points){
		                             .slab = point,
		                             .recovery = header->recovery_point,
		                         });
		if (result != DD_SUCCESS)
			return DD_CORRUPT_DATA;
	}
	return DD_SUCCESS;
}

/*
 * Write every dirty count block now (loading: the zones are not running). After a crash the
 * sectors no longer include the same changes, so each may get its own @points (NULL: the
 * latest change's, for every sector).
 */
static int write_all_counts(struct vdo_slab *slab, const struct vdo_ref_points *points)
{
	uint8_t *buffer = slab->writes[0].buffer;
	uint32_t index;
	int result = DD_SUCCESS;

	while ((result == DD_SUCCESS) &&
	       vdo_take_dirty_ref_block(slab->counts, VDO_NO_LOCK, &index)) {
		const struct vdo_ref_points *sector_points =
		    (points != NULL) ? points + (size_t) index * VDO_SECTORS_PER_BLOCK : NULL;

		vdo_pack_ref_block(slab->counts, index, buffer, slab->context->nonce,
		                   slab->ref_origin + index, sector_points);
		result = vdo_sync_io(slab->context->device, VDO_IO_WRITE, 0,
		                     slab->ref_origin + index, 1, buffer);
		vdo_ref_block_written(slab->counts, index);
	}
	return result;
}

int vdo_save_slab_counts(struct vdo_slab *slab)
{
	int result;

	/* Counts that never left zero, of a journal that never went on past its first block,
	 * need no blocks; others need them all on disk. */
	if (!slab->counts_on_disk) {
		if ((vdo_free_blocks(slab->counts) == slab->context->layout->slab_data_blocks) &&
		    (slab->journal.tail == 1))
			return DD_SUCCESS;
		vdo_dirty_all_ref_blocks(slab->counts, slab->journal.tail);
	}
	result = write_all_counts(slab, NULL);
	if (result == DD_SUCCESS)
		slab->counts_on_disk = true;
	return result;
}

/*
 * The sequence the journal goes on from: past @newest, and past every block a sector of the
 * counts on disk names. A count block can reach the disk while the journal block its points
 * name does not (they are written with no flush between them); numbering new blocks like that
 * one would make later entries look included in that sector already.
 */
static vdo_sequence_t sequence_after(const struct vdo_slab *slab, vdo_sequence_t newest)
{
	return ((newest > slab->claimed) ? newest : slab->claimed) + 1;
}

/* The points of the block before the head, whose entries every sector includes. */
static struct vdo_ref_points points_before_head(struct vdo_slab *slab, const uint8_t *ring,
                                                vdo_sequence_t head)
{
	uint32_t position = (uint32_t) ((head - 1) % slab->journal.size);
	struct vdo_slab_journal_header header;

	if ((head <= 1) || !open_position(slab, ring, position, &header) ||
	    (header.sequence != head - 1))
		return (struct vdo_ref_points){ 0 };
	return (struct vdo_ref_points){
		.slab = { .sequence = head - 1, .entry = header.entry_count },
		.recovery = header.recovery_point,
	};
}

/* Raise each sector's points to @through, which every sector now includes. */
static void include_through(struct vdo_slab *slab, struct vdo_ref_points *points,
                            struct vdo_ref_points through)
{
	uint32_t sectors = vdo_ref_block_count(slab->counts) * VDO_SECTORS_PER_BLOCK;

	for (uint32_t s = 0; s < sectors; s++) {
		if (vdo_before_journal_point(points[s].slab, through.slab))
			points[s].slab = through.slab;
		if (vdo_before_journal_point(points[s].recovery, through.recovery))
			points[s].recovery = through.recovery;
	}
}

/*
 * Replay the journal from its head into the counts, up to the newest block or the first one
 * missing, whichever comes first. Blocks after a missing one were never made durable in order,
 * so the recovery journal still holds their entries (it forgets entries only after a flush that
 * followed their slab journal write). The next block is numbered past every block in the ring,
 * and the counts are written at once, so that the journal can start empty after the blocks it
 * skipped. @points come in as the sectors were read and go out as what each sector includes.
 */
static int scrub(struct vdo_slab *slab, struct vdo_ref_points *points)
{
	struct vdo_slab_journal *journal = &slab->journal;
	struct vdo_slab_journal_header newest = { 0 };
	struct vdo_ref_points through;
	uint8_t *ring = NULL;
	int result = read_region(slab, journal->origin, journal->size, &ring);

	if (result != DD_SUCCESS)
		return result;
	if (!find_newest(slab, ring, &newest)) {
		dd_free(ring);
		return dd_log_error_strerror(DD_CORRUPT_DATA,
		                             "slab %u needs scrubbing but its journal is empty",
		                             slab->number);
	}
	through = points_before_head(slab, ring, newest.head);
	for (vdo_sequence_t sequence = newest.head;
	     (result == DD_SUCCESS) && (sequence <= newest.sequence); sequence++) {
		uint32_t position = (uint32_t) (sequence % journal->size);
		struct vdo_slab_journal_header header;

		if (!open_position(slab, ring, position, &header) || (header.sequence != sequence))
			break;
		result =
		    replay_block(slab, ring + (size_t) position * VDO_BLOCK_SIZE, &header, points);
		through = (struct vdo_ref_points){
			.slab = { .sequence = sequence, .entry = header.entry_count },
			.recovery = header.recovery_point,
		};
	}
	dd_free(ring);
	include_through(slab, points, through);
	if (result == DD_SUCCESS)
		result = write_all_counts(slab, points);
	if (result == DD_SUCCESS)
		result = vdo_sync_io(slab->context->device, VDO_IO_FLUSH, 0, 0, 0, NULL);
	if (result != DD_SUCCESS)
		return result;
	vdo_start_slab_journal(slab, sequence_after(slab, newest.sequence));
	journal->last_recovery_point = through.recovery;
	slab->summary_dirty = true;
	return DD_SUCCESS;
}

/* A clean slab: go on after the journal's last block, which every sector includes. */
static int find_clean_tail(struct vdo_slab *slab, struct vdo_summary_entry entry,
                           struct vdo_ref_points *points)
{
	struct vdo_slab_journal *journal = &slab->journal;
	uint32_t last = (entry.tail_block_offset + journal->size - 1) % journal->size;
	struct vdo_slab_journal_header header;
	uint8_t *block = NULL;
	int result = read_region(slab, journal->origin + last, 1, &block);

	if (result != DD_SUCCESS)
		return result;
	if (vdo_open_slab_journal_block(block, slab->context->nonce, journal->origin + last, last,
	                                journal->size, &header) == DD_SUCCESS) {
		vdo_start_slab_journal(slab, sequence_after(slab, header.sequence));
		journal->last_recovery_point = header.recovery_point;
		include_through(
		    slab, points,
		    (struct vdo_ref_points){
		        .slab = { .sequence = header.sequence, .entry = header.entry_count },
		        .recovery = header.recovery_point,
		    });
	} else {
		vdo_start_slab_journal(slab, sequence_after(slab, 0));
	}
	dd_free(block);
	return DD_SUCCESS;
}

int vdo_load_slab(struct vdo_slab *slab)
{
	struct vdo_summary_entry entry =
	    vdo_get_summary_entry_of(slab->context->summary, slab->number);
	uint32_t sectors = vdo_ref_block_count(slab->counts) * VDO_SECTORS_PER_BLOCK;
	struct vdo_ref_points *points;
	int result;

	vdo_reset_ref_counts(slab->counts);
	vdo_start_slab_journal(slab, 1);
	slab->claimed = 0;
	slab->summary_dirty = entry.dirty;
	slab->counts_on_disk = entry.load_ref_counts;
	dd_free(slab->included);
	slab->included = NULL;
	result = DD_ALLOCATE(sectors, struct vdo_journal_point, "included", &slab->included);
	if ((result != DD_SUCCESS) || (!entry.load_ref_counts && !entry.dirty))
		return result;
	result = DD_ALLOCATE(sectors, struct vdo_ref_points, "sector points", &points);
	if (result != DD_SUCCESS)
		return result;
	result = load_counts(slab, points);
	/* Unpacking keeps the latest points any sector has. */
	slab->claimed = vdo_ref_counts_last_points(slab->counts).slab.sequence;
	if (result == DD_SUCCESS)
		result = entry.dirty ? scrub(slab, points) : find_clean_tail(slab, entry, points);
	for (uint32_t s = 0; (result == DD_SUCCESS) && (s < sectors); s++)
		slab->included[s] = points[s].recovery;
	dd_free(points);
	return result;
}

bool vdo_slab_includes(const struct vdo_slab *slab, uint32_t offset, struct vdo_journal_point point)
{
	uint32_t sector = (offset / VDO_COUNTS_PER_REF_BLOCK) * VDO_SECTORS_PER_BLOCK +
	                  (offset % VDO_COUNTS_PER_REF_BLOCK) / VDO_COUNTS_PER_SECTOR;

	return (slab->included != NULL) && !vdo_before_journal_point(slab->included[sector], point);
}

struct vdo_summary_entry vdo_clean_summary_entry(const struct vdo_slab *slab)
{
	return (struct vdo_summary_entry){
		.tail_block_offset = (uint16_t) (slab->journal.tail % slab->journal.size),
		.fullness_hint = vdo_fullness_hint(vdo_free_blocks(slab->counts),
		                                   slab->context->layout->slab_data_blocks),
		.load_ref_counts = slab->counts_on_disk,
		.dirty = false,
	};
}

void vdo_slab_recovery_done(struct vdo_slab *slab)
{
	dd_free(slab->included);
	slab->included = NULL;
}

int vdo_reset_slab(struct vdo_slab *slab)
{
	struct vdo_slab_journal_header newest = { 0 };
	uint8_t *ring = NULL;
	int result = read_region(slab, slab->journal.origin, slab->journal.size, &ring);

	if (result != DD_SUCCESS)
		return result;
	vdo_reset_ref_counts(slab->counts);
	vdo_start_slab_journal(slab, find_newest(slab, ring, &newest) ? newest.sequence + 1 : 1);
	dd_free(ring);
	dd_free(slab->included);
	slab->included = NULL;
	slab->summary_dirty = false;
	slab->counts_on_disk = false;
	return DD_SUCCESS;
}

int vdo_skip_stale_slab_journal(struct vdo_slab *slab)
{
	struct vdo_slab_journal_header newest = { 0 };
	uint8_t *ring = NULL;
	int result = read_region(slab, slab->journal.origin, slab->journal.size, &ring);

	if (result != DD_SUCCESS)
		return result;
	if (!find_newest(slab, ring, &newest))
		newest.sequence = 0;
	if (sequence_after(slab, newest.sequence) > slab->journal.tail)
		vdo_start_slab_journal(slab, sequence_after(slab, newest.sequence));
	dd_free(ring);
	return DD_SUCCESS;
}
