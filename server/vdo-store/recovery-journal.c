// SPDX-License-Identifier: GPL-2.0-only
/*
 * The recovery journal; see recovery-journal.h.
 *
 * The journal keeps the last JOURNAL_BUFFERS blocks in memory; the block with sequence s uses
 * buffer s % JOURNAL_BUFFERS. The tail block takes new entries; when it is full the next block
 * starts, if the ring has room for it (s - head < size) and its buffer's previous block has been
 * written whole. Blocks are written oldest first, one write at a time, each write taking every
 * entry its block had when it started; a block may be written several times as it fills.
 *
 * The head moves past a block when it is wholly written, it is not the tail, and the lock
 * counter says nobody holds it; a flush comes first, so that whatever the holders wrote before
 * giving their locks back is durable before the journal forgets the entries.
 */
#include "recovery-journal.h"

#include <string.h>

#include "logger.h"
#include "memory-alloc.h"

enum {
	JOURNAL_BUFFERS = 4,
};

/* Requests in arrival order. */
struct request_list {
	struct vdo_journal_request *first;
	struct vdo_journal_request *last;
};

struct journal_block {
	uint8_t *data;
	vdo_sequence_t sequence;
	unsigned int entries;
	unsigned int committed;
	/* Requests whose entries are in this block and not yet durable, in entry order. */
	struct request_list waiters;
};

struct vdo_recovery_journal {
	struct vdo_journal_config config;
	struct journal_block blocks[JOURNAL_BUFFERS];
	vdo_sequence_t head;
	vdo_sequence_t tail;
	uint64_t logical_blocks_used;
	uint64_t block_map_data_blocks;
	/* The write in flight. */
	bool writing;
	struct journal_block *writing_block;
	unsigned int writing_entries;
	uint8_t *write_buffer;
	struct vdo_vio write_vio;
	struct dd_completion write_completion;
	/* The flush before the head moves. */
	bool reaping;
	vdo_sequence_t reap_target;
	struct vdo_vio reap_vio;
	struct dd_completion reap_completion;
	struct dd_completion notify_completion;
	/* Entries waiting for room. */
	struct request_list space_waiters;
	vdo_sequence_t release_requested;
	bool failed;
	struct dd_completion *drain_waiter;
	struct vdo_journal_stats stats;
};

static void try_reap(struct vdo_recovery_journal *journal);
static void schedule_write(struct vdo_recovery_journal *journal);

static void push(struct request_list *list, struct vdo_journal_request *request)
{
	request->next = NULL;
	if (list->last != NULL)
		list->last->next = request;
	else
		list->first = request;
	list->last = request;
}

static struct vdo_journal_request *pop(struct request_list *list)
{
	struct vdo_journal_request *request = list->first;

	list->first = request->next;
	if (list->first == NULL)
		list->last = NULL;
	return request;
}

static struct journal_block *block_of(struct vdo_recovery_journal *journal, vdo_sequence_t sequence)
{
	return &journal->blocks[sequence % JOURNAL_BUFFERS];
}

static void start_block(struct vdo_recovery_journal *journal, vdo_sequence_t sequence)
{
	struct journal_block *block = block_of(journal, sequence);
	struct vdo_journal_block_header header = {
		.sequence = sequence,
		.head = journal->head,
		.logical_blocks_used = journal->logical_blocks_used,
		.block_map_data_blocks = journal->block_map_data_blocks,
	};

	block->sequence = sequence;
	block->entries = 0;
	block->committed = 0;
	block->waiters = (struct request_list){ NULL, NULL };
	vdo_start_journal_block(block->data, &header);
	journal->stats.blocks_started++;
}

static void notify_handler(struct dd_completion *completion)
{
	struct vdo_recovery_journal *journal = completion->parent;

	vdo_lock_counter_notified(journal->config.locks);
	try_reap(journal);
}

void vdo_free_recovery_journal(struct vdo_recovery_journal *journal)
{
	if (journal == NULL)
		return;
	for (unsigned int b = 0; b < JOURNAL_BUFFERS; b++)
		dd_free(journal->blocks[b].data);
	dd_free(journal->write_buffer);
	dd_free(journal);
}

int vdo_make_recovery_journal(const struct vdo_journal_config *config,
                              struct vdo_recovery_journal **journal_ptr)
{
	struct vdo_recovery_journal *journal;
	int result;

	if ((config->size < JOURNAL_BUFFERS) || (config->head > config->tail) ||
	    (config->tail - config->head >= config->size) || (config->head == 0))
		return DD_INVALID_ARGUMENT;
	result = dd_allocate(sizeof(*journal), "recovery journal", &journal);
	if (result != DD_SUCCESS)
		return result;
	journal->config = *config;
	journal->head = config->head;
	journal->tail = config->tail;
	journal->release_requested = config->head;
	journal->logical_blocks_used = config->logical_blocks_used;
	journal->block_map_data_blocks = config->block_map_data_blocks;
	dd_initialize_completion(&journal->write_completion, config->threads);
	dd_initialize_completion(&journal->reap_completion, config->threads);
	dd_initialize_completion(&journal->notify_completion, config->threads);
	dd_prepare_completion(&journal->notify_completion, notify_handler, NULL, config->thread,
	                      journal);
	result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "journal write",
	                             &journal->write_buffer);
	for (unsigned int b = 0; (result == DD_SUCCESS) && (b < JOURNAL_BUFFERS); b++)
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "journal block",
		                             &journal->blocks[b].data);
	if (result != DD_SUCCESS) {
		vdo_free_recovery_journal(journal);
		return result;
	}
	start_block(journal, journal->tail);
	*journal_ptr = journal;
	return DD_SUCCESS;
}

void vdo_journal_notify(void *context)
{
	struct vdo_recovery_journal *journal = context;

	dd_launch_completion(&journal->notify_completion);
}

/* Whether block @sequence is written whole and no write of it is in flight. */
static bool is_committed(struct vdo_recovery_journal *journal, vdo_sequence_t sequence)
{
	struct journal_block *block = block_of(journal, sequence);

	if ((sequence + JOURNAL_BUFFERS <= journal->tail) || (block->sequence != sequence))
		return true;
	return (block->committed == block->entries) &&
	       !(journal->writing && (journal->writing_block == block));
}

/* Start the block after the tail if there is room for it. */
static bool advance_tail(struct vdo_recovery_journal *journal)
{
	vdo_sequence_t next = journal->tail + 1;

	if ((next - journal->head >= journal->config.size) ||
	    !is_committed(journal, next - JOURNAL_BUFFERS))
		return false;
	journal->tail = next;
	start_block(journal, next);
	return true;
}

static void count_entry(struct vdo_recovery_journal *journal, const struct vdo_journal_entry *entry)
{
	if (entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING) {
		journal->block_map_data_blocks++;
		return;
	}
	if (vdo_mapping_uses_storage(entry->new_mapping))
		journal->logical_blocks_used++;
	if (vdo_mapping_uses_storage(entry->old_mapping))
		journal->logical_blocks_used--;
}

/* Put the entry in the tail block, which has room. */
static void append(struct vdo_recovery_journal *journal, struct vdo_journal_request *request)
{
	struct journal_block *block = block_of(journal, journal->tail);
	unsigned int index = block->entries++;

	vdo_put_journal_entry(block->data, index, &request->entry);
	request->point =
	    (struct vdo_journal_point){ .sequence = block->sequence, .entry = (uint16_t) index };
	vdo_acquire_journal_lock(journal->config.locks, block->sequence, 1);
	count_entry(journal, &request->entry);
	push(&block->waiters, request);
	journal->stats.entries++;
}

static bool has_room(struct vdo_recovery_journal *journal)
{
	return (block_of(journal, journal->tail)->entries < VDO_JOURNAL_ENTRIES_PER_BLOCK) ||
	       advance_tail(journal);
}

/* Ask the zones for the oldest blocks' locks when the journal is filling up. */
static void relieve_pressure(struct vdo_recovery_journal *journal)
{
	vdo_sequence_t in_use = journal->tail - journal->head + 1;
	vdo_sequence_t through;

	if ((journal->space_waiters.first == NULL) && (journal->drain_waiter == NULL) &&
	    (2 * in_use < journal->config.size))
		return;
	through = (journal->drain_waiter != NULL) ? journal->tail : journal->head + in_use / 4;
	if ((through <= journal->release_requested) || (journal->config.release_locks == NULL))
		return;
	journal->release_requested = through;
	journal->config.release_locks(journal->config.context, through);
}

static void serve_space_waiters(struct vdo_recovery_journal *journal)
{
	while ((journal->space_waiters.first != NULL) && has_room(journal))
		append(journal, pop(&journal->space_waiters));
}

static void fail_journal(struct vdo_recovery_journal *journal, int result)
{
	if (journal->failed)
		return;
	journal->failed = true;
	dd_log_error_strerror(result, "the recovery journal failed");
	if (journal->config.fail != NULL)
		journal->config.fail(journal->config.context, result);
}

/* Continue every waiting request with @result. */
static void release_all(struct vdo_recovery_journal *journal, int result)
{
	for (unsigned int b = 0; b < JOURNAL_BUFFERS; b++) {
		while (journal->blocks[b].waiters.first != NULL)
			dd_continue_completion(&pop(&journal->blocks[b].waiters)->completion,
			                       result);
	}
	while (journal->space_waiters.first != NULL)
		dd_continue_completion(&pop(&journal->space_waiters)->completion, result);
}

static void check_drain(struct vdo_recovery_journal *journal)
{
	struct dd_completion *waiter = journal->drain_waiter;

	if ((waiter == NULL) || journal->writing || journal->reaping)
		return;
	if (!journal->failed) {
		/* The tail block must be reaped too: close it, and reap up to the new tail. */
		if ((block_of(journal, journal->tail)->entries > 0) &&
		    is_committed(journal, journal->tail) && advance_tail(journal)) {
			try_reap(journal);
			if (journal->reaping)
				return;
		}
		if ((journal->head != journal->tail) ||
		    (block_of(journal, journal->tail)->entries > 0) ||
		    (journal->space_waiters.first != NULL))
			return;
	}
	journal->drain_waiter = NULL;
	dd_continue_completion(waiter, journal->failed ? DD_READ_ONLY : DD_SUCCESS);
}

/* After any change: write, make room, reap, and see whether a drain is done. */
static void make_progress(struct vdo_recovery_journal *journal)
{
	if (journal->failed) {
		release_all(journal, DD_READ_ONLY);
		check_drain(journal);
		return;
	}
	serve_space_waiters(journal);
	schedule_write(journal);
	relieve_pressure(journal);
	try_reap(journal);
	check_drain(journal);
}

void vdo_add_journal_entry(struct vdo_recovery_journal *journal,
                           struct vdo_journal_request *request)
{
	(void) dd_assert_on_thread(journal->config.threads, journal->config.thread, __func__);
	if (journal->failed) {
		dd_continue_completion(&request->completion, DD_READ_ONLY);
		return;
	}
	if ((journal->space_waiters.first == NULL) && has_room(journal)) {
		append(journal, request);
	} else {
		push(&journal->space_waiters, request);
		journal->stats.waits_for_space++;
	}
	make_progress(journal);
}

static void write_done(struct dd_completion *completion)
{
	struct vdo_recovery_journal *journal = completion->parent;
	struct journal_block *block = journal->writing_block;

	journal->writing = false;
	journal->writing_block = NULL;
	if (completion->result != DD_SUCCESS) {
		fail_journal(journal, completion->result);
		make_progress(journal);
		return;
	}
	block->committed = journal->writing_entries;
	/* Release the requests now durable, in order. */
	while ((block->waiters.first != NULL) &&
	       (block->waiters.first->point.entry < block->committed))
		dd_continue_completion(&pop(&block->waiters)->completion, DD_SUCCESS);
	make_progress(journal);
}

/* Write the oldest block with entries not yet written, if no write is in flight. */
static void schedule_write(struct vdo_recovery_journal *journal)
{
	vdo_sequence_t first =
	    (journal->tail >= JOURNAL_BUFFERS - 1) ? journal->tail - (JOURNAL_BUFFERS - 1) : 0;
	struct journal_block *block = NULL;
	vdo_pbn_t pbn;

	if (journal->writing || journal->failed)
		return;
	for (vdo_sequence_t s = (first > journal->head) ? first : journal->head; s <= journal->tail;
	     s++) {
		struct journal_block *candidate = block_of(journal, s);

		if ((candidate->sequence == s) && (candidate->committed < candidate->entries)) {
			block = candidate;
			break;
		}
	}
	if (block == NULL)
		return;
	journal->writing = true;
	journal->writing_block = block;
	journal->writing_entries = block->entries;
	memcpy(journal->write_buffer, block->data, VDO_BLOCK_SIZE);
	vdo_set_journal_block_head(journal->write_buffer, journal->head);
	pbn = journal->config.origin + block->sequence % journal->config.size;
	vdo_seal_journal_block(journal->write_buffer, journal->config.nonce, pbn);
	journal->stats.writes++;
	dd_prepare_completion(&journal->write_completion, write_done, NULL, journal->config.thread,
	                      journal);
	vdo_submit_vio(journal->config.device, &journal->write_vio, &journal->write_completion,
	               VDO_IO_WRITE, VDO_IO_PREFLUSH | VDO_IO_FUA, pbn, 1, journal->write_buffer);
}

static void reap_done(struct dd_completion *completion)
{
	struct vdo_recovery_journal *journal = completion->parent;

	journal->reaping = false;
	if (completion->result != DD_SUCCESS)
		fail_journal(journal, completion->result);
	else
		journal->head = journal->reap_target;
	make_progress(journal);
}

static void try_reap(struct vdo_recovery_journal *journal)
{
	vdo_sequence_t target = journal->head;

	if (journal->reaping || journal->failed)
		return;
	while ((target < journal->tail) && is_committed(journal, target) &&
	       !vdo_is_journal_block_locked(journal->config.locks, target))
		target++;
	if (target == journal->head)
		return;
	journal->reaping = true;
	journal->reap_target = target;
	dd_prepare_completion(&journal->reap_completion, reap_done, NULL, journal->config.thread,
	                      journal);
	vdo_submit_vio(journal->config.device, &journal->reap_vio, &journal->reap_completion,
	               VDO_IO_FLUSH, 0, 0, 0, NULL);
}

void vdo_drain_recovery_journal(struct vdo_recovery_journal *journal, struct dd_completion *waiter)
{
	(void) dd_assert_on_thread(journal->config.threads, journal->config.thread, __func__);
	journal->drain_waiter = waiter;
	make_progress(journal);
}

void vdo_get_journal_stats(const struct vdo_recovery_journal *journal,
                           struct vdo_journal_stats *stats)
{
	*stats = journal->stats;
	stats->head = journal->head;
	stats->tail = journal->tail;
	stats->logical_blocks_used = journal->logical_blocks_used;
	stats->block_map_data_blocks = journal->block_map_data_blocks;
}
