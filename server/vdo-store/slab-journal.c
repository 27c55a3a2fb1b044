// SPDX-License-Identifier: GPL-2.0-only
/*
 * The slab journal: every reference change of a slab, in order; see slab.h for its place and
 * slab-journal-format.h for its blocks.
 *
 * Entries go into the tail block in memory and take effect on the counts at once. The tail
 * block is written when it is full, or sooner when the recovery journal asks for the lock it
 * holds (the lock on the oldest recovery journal block its entries came from: the journal reaps
 * in order, so that one lock is enough). One block is written at a time; the next tail block
 * needs a free place in the ring, which the head frees as reference count blocks are written.
 * An entry that cannot be made yet waits, and every later entry waits behind it, so that the
 * journal keeps the order the entries arrived in.
 */
#include <string.h>

#include "logger.h"
#include "slab.h"

static void try_progress(struct vdo_slab *slab);

static struct vdo_slab_journal *journal_of(struct vdo_slab *slab)
{
	return &slab->journal;
}

void vdo_start_slab_journal(struct vdo_slab *slab, vdo_sequence_t tail)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	journal->head = tail;
	journal->tail = tail;
	journal->entry_count = 0;
	journal->tail_lock = VDO_NO_LOCK;
	journal->commit_through = VDO_NO_LOCK;
	journal->commit_all = false;
	vdo_start_slab_journal_block(journal->tail_block);
}

uint32_t vdo_slab_journal_blocks_in_use(const struct vdo_slab *slab)
{
	return (uint32_t) (slab->journal.tail - slab->journal.head + 1);
}

/* Whether the ring has a place for the block after the tail. */
static bool has_room_for_next_block(const struct vdo_slab_journal *journal)
{
	return journal->tail + 1 - journal->head < journal->size;
}

static void block_written(struct dd_completion *completion);

/* Write the tail block and start the next one, if a write may start now. */
static bool start_block_write(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	struct vdo_slab_journal_header header = {
		.entry_count = journal->entry_count,
		.nonce = slab->context->nonce,
		.sequence = journal->tail,
		.head = journal->head,
		.recovery_point = journal->last_recovery_point,
	};
	vdo_pbn_t pbn = journal->origin + journal->tail % journal->size;

	if (journal->writing || !has_room_for_next_block(journal))
		return false;
	memcpy(journal->write_buffer, journal->tail_block, VDO_BLOCK_SIZE);
	vdo_seal_slab_journal_block(journal->write_buffer, &header, pbn);
	journal->writing = true;
	journal->writing_lock = journal->tail_lock;
	journal->tail_lock = VDO_NO_LOCK;
	journal->tail++;
	journal->entry_count = 0;
	vdo_start_slab_journal_block(journal->tail_block);
	dd_prepare_completion(&journal->write_completion, block_written, NULL, slab->thread, slab);
	vdo_submit_vio(slab->context->device, &journal->write_vio, &journal->write_completion,
	               VDO_IO_WRITE, 0, pbn, 1, journal->write_buffer);
	return true;
}

/* The write is over (or failed, which fails the slab): give back its lock and go on. */
static void finish_block_write(struct vdo_slab *slab, int result)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	if (result != DD_SUCCESS)
		vdo_slab_fail(slab, result);
	if (journal->writing_lock != VDO_NO_LOCK)
		vdo_release_zone_lock(slab->context->locks, slab->lock_zone, journal->writing_lock);
	journal->writing_lock = VDO_NO_LOCK;
	journal->writing = false;
	try_progress(slab);
}

static void summary_updated(struct dd_completion *completion)
{
	struct vdo_slab *slab = completion->parent;

	slab->journal.updating_summary = false;
	if (completion->result == DD_SUCCESS)
		slab->summary_dirty = true;
	finish_block_write(slab, completion->result);
}

/* Mark the slab as needing a scrub in the summary, then finish the write. */
static void mark_summary_dirty(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	struct vdo_summary_update *update = &journal->summary_update;

	journal->updating_summary = true;
	dd_prepare_completion(&update->completion, summary_updated, NULL, slab->thread, slab);
	update->slab = slab->number;
	update->entry = (struct vdo_summary_entry){
		.tail_block_offset = (uint16_t) (journal->tail % journal->size),
		.fullness_hint = vdo_fullness_hint(vdo_free_blocks(slab->counts),
		                                   slab->context->layout->slab_data_blocks),
		.load_ref_counts = true,
		.dirty = true,
	};
	vdo_update_slab_summary(slab->context->summary, update);
}

/* The first time the summary marks the slab, its counts must all be on disk first. */
static void counts_formatted(struct vdo_slab *slab, int result)
{
	if (result != DD_SUCCESS)
		finish_block_write(slab, result);
	else
		mark_summary_dirty(slab);
}

static void block_written(struct dd_completion *completion)
{
	struct vdo_slab *slab = completion->parent;

	if (completion->result != DD_SUCCESS) {
		dd_log_error_strerror(completion->result, "slab %u: cannot write its journal",
		                      slab->number);
		finish_block_write(slab, completion->result);
		return;
	}
	slab->journal_blocks_written++;
	if (!slab->summary_dirty) {
		if (slab->counts_on_disk)
			mark_summary_dirty(slab);
		else
			vdo_format_slab_counts(slab, counts_formatted);
		return;
	}
	finish_block_write(slab, DD_SUCCESS);
}

/*
 * The last mapping of a block went away: if hash locks hold it read-locked, to share it, keep
 * it provisionally until their increments land or they let go (pbn-lock.h).
 */
static int keep_read_locked_block(struct vdo_slab *slab, uint32_t offset)
{
	struct vdo_pbn_lock *lock;

	if ((slab->pbn_locks == NULL) ||
	    (vdo_get_ref_count(slab->counts, offset) != VDO_EMPTY_REFERENCE))
		return DD_SUCCESS;
	lock = vdo_get_pbn_lock(slab->pbn_locks, vdo_slab_pbn(slab, offset));
	if ((lock == NULL) || (lock->type != VDO_PBN_READ_LOCK))
		return DD_SUCCESS;
	lock->has_provisional_reference = true;
	return vdo_adjust_ref_count(slab->counts, offset, VDO_REF_PROVISIONAL,
	                            (struct vdo_ref_points){ 0 });
}

/* Put the entry in the tail block and change the count. The tail block has room. */
static void make_entry(struct vdo_slab *slab, struct vdo_slab_entry_request *request)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	uint16_t index = journal->entry_count++;
	struct vdo_journal_point point = { .sequence = journal->tail, .entry = index };
	int result;

	vdo_set_slab_journal_entry(
	    journal->tail_block, index,
	    (struct vdo_slab_journal_entry){ .offset = request->offset,
	                                     .increment = request->increment });
	journal->last_recovery_point = request->recovery_point;
	if (journal->tail_lock == VDO_NO_LOCK) {
		journal->tail_lock = request->recovery_point.sequence;
		vdo_acquire_zone_lock(slab->context->locks, slab->lock_zone, journal->tail_lock);
	}
	result = vdo_adjust_ref_count(
	    slab->counts, request->offset,
	    request->increment ? VDO_REF_INCREMENT : VDO_REF_DECREMENT,
	    (struct vdo_ref_points){ .slab = point, .recovery = request->recovery_point });
	if ((result == DD_SUCCESS) && !request->increment)
		result = keep_read_locked_block(slab, request->offset);
	if (result != DD_SUCCESS)
		vdo_slab_fail(slab, result);
	if (journal->entry_count == VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK)
		start_block_write(slab);
	dd_continue_completion(&request->completion, result);
}

/* Make the entry if the journal can take it now. */
static bool try_entry(struct vdo_slab *slab, struct vdo_slab_entry_request *request)
{
	if ((slab->journal.entry_count == VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK) &&
	    !start_block_write(slab))
		return false;
	make_entry(slab, request);
	return true;
}

static void enqueue(struct vdo_slab_journal *journal, struct vdo_slab_entry_request *request)
{
	request->next = NULL;
	if (journal->last_waiter != NULL)
		journal->last_waiter->next = request;
	else
		journal->waiters = request;
	journal->last_waiter = request;
}

/* Make waiting entries, in order, while there is room. */
static void serve_waiters(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	while (journal->waiters != NULL) {
		struct vdo_slab_entry_request *request = journal->waiters;

		if (slab->failed) {
			journal->waiters = request->next;
			dd_continue_completion(&request->completion, DD_READ_ONLY);
			continue;
		}
		if ((journal->entry_count == VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK) &&
		    !start_block_write(slab))
			break;
		journal->waiters = request->next;
		if (journal->waiters == NULL)
			journal->last_waiter = NULL;
		make_entry(slab, request);
	}
}

/* Keep @request until the slab is recovered, and ask for that to happen soon. */
static void park(struct vdo_slab *slab, struct vdo_slab_entry_request *request)
{
	request->next = NULL;
	if (slab->last_parked != NULL)
		slab->last_parked->next = request;
	else
		slab->parked = request;
	slab->last_parked = request;
	if (!slab->hurried && (slab->context->hurry != NULL)) {
		slab->hurried = true;
		slab->context->hurry(slab->context->hurry_context, slab);
	}
}

void vdo_slab_recovered(struct vdo_slab *slab, int result)
{
	struct vdo_slab_entry_request *parked = slab->parked;

	(void) dd_assert_on_thread(slab->context->threads, slab->thread, __func__);
	slab->recovering = false;
	slab->parked = NULL;
	slab->last_parked = NULL;
	if (result != DD_SUCCESS)
		vdo_slab_fail(slab, result);
	while (parked != NULL) {
		struct vdo_slab_entry_request *request = parked;

		parked = request->next;
		vdo_add_slab_entry(slab, request);
	}
}

void vdo_add_slab_entry(struct vdo_slab *slab, struct vdo_slab_entry_request *request)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	(void) dd_assert_on_thread(slab->context->threads, slab->thread, __func__);
	if (slab->recovering) {
		park(slab, request);
		return;
	}
	if (slab->failed) {
		dd_continue_completion(&request->completion, DD_READ_ONLY);
		return;
	}
	if ((journal->waiters == NULL) && try_entry(slab, request))
		return;
	enqueue(journal, request);
	vdo_reap_slab_journal(slab);
}

static bool commit_wanted(const struct vdo_slab_journal *journal)
{
	if ((journal->entry_count == 0) || (journal->tail_lock == VDO_NO_LOCK))
		return false;
	return journal->commit_all || ((journal->commit_through != VDO_NO_LOCK) &&
	                               (journal->tail_lock <= journal->commit_through));
}

void vdo_commit_slab_journal(struct vdo_slab *slab, vdo_sequence_t through)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	if (through == VDO_NO_LOCK)
		journal->commit_all = true;
	else if (through > journal->commit_through)
		journal->commit_through = through;
	try_progress(slab);
}

static void reap_done(struct dd_completion *completion)
{
	struct vdo_slab *slab = completion->parent;
	struct vdo_slab_journal *journal = journal_of(slab);

	journal->reaping = false;
	if (completion->result != DD_SUCCESS)
		vdo_slab_fail(slab, completion->result);
	else
		journal->head = journal->reap_target;
	try_progress(slab);
}

/* Write the counts the journal's oldest blocks are waiting for, when it is filling up. */
static void relieve_pressure(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	uint32_t in_use = vdo_slab_journal_blocks_in_use(slab);

	if (slab->drain_waiter != NULL)
		vdo_write_ref_blocks(slab, VDO_NO_LOCK);
	else if ((journal->waiters != NULL) || (4 * in_use >= 3 * journal->size))
		vdo_write_ref_blocks(slab, journal->tail);
	else if (2 * in_use >= journal->size)
		vdo_write_ref_blocks(slab, journal->head + in_use / 2);
}

void vdo_reap_slab_journal(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	vdo_sequence_t oldest = vdo_oldest_ref_lock(slab->counts);
	vdo_sequence_t target =
	    ((oldest == VDO_NO_LOCK) || (oldest > journal->tail)) ? journal->tail : oldest;

	if (slab->failed) {
		vdo_check_drain(slab);
		return;
	}
	relieve_pressure(slab);
	if (journal->reaping || (target <= journal->head)) {
		vdo_check_drain(slab);
		return;
	}
	/* The counts written so far must be durable before the journal forgets their entries. */
	journal->reaping = true;
	journal->reap_target = target;
	dd_prepare_completion(&journal->reap_completion, reap_done, NULL, slab->thread, slab);
	vdo_submit_vio(slab->context->device, &journal->reap_vio, &journal->reap_completion,
	               VDO_IO_FLUSH, 0, 0, 0, NULL);
}

static void try_progress(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);

	serve_waiters(slab);
	if (slab->failed) {
		vdo_check_drain(slab);
		return;
	}
	if (slab->drain_waiter != NULL)
		journal->commit_all = true;
	if (((journal->entry_count == VDO_SLAB_JOURNAL_ENTRIES_PER_BLOCK) ||
	     commit_wanted(journal)) &&
	    start_block_write(slab)) {
		journal->commit_all = false;
		journal->commit_through = VDO_NO_LOCK;
	}
	vdo_reap_slab_journal(slab);
}

void vdo_drain_slab(struct vdo_slab *slab, struct dd_completion *waiter)
{
	(void) dd_assert_on_thread(slab->context->threads, slab->thread, __func__);
	slab->drain_waiter = waiter;
	try_progress(slab);
}

void vdo_check_drain(struct vdo_slab *slab)
{
	struct vdo_slab_journal *journal = journal_of(slab);
	struct dd_completion *waiter = slab->drain_waiter;

	if ((waiter == NULL) || !vdo_slab_is_quiet(slab))
		return;
	if (!slab->failed && ((journal->entry_count > 0) || (journal->head != journal->tail) ||
	                      (vdo_dirty_ref_blocks(slab->counts) > 0)))
		return;
	slab->drain_waiter = NULL;
	dd_continue_completion(waiter, slab->failed ? DD_READ_ONLY : DD_SUCCESS);
}
