// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of a slab on real zone threads: its journal under pressure (many more entries than it
 * holds, so reference count blocks must be written and the head must move), the recovery
 * journal locks it takes and gives back, the summary, and loading after power cuts: a clean
 * stop, a crash that drops every unflushed write, and crashes that keep a random part of them,
 * torn sectors included. After a crash the counts must be exactly those of the entries the
 * slab journal says it holds (every entry up to its last recovery point, none after).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block-device.h"
#include "completion.h"
#include "errors.h"
#include "format.h"
#include "lock-counter.h"
#include "memory-alloc.h"
#include "slab.h"
#include "test-harness.h"
#include "work-queue.h"

enum {
	SLAB_THREAD = 0,
	SUMMARY_THREAD = 1,
	SLAB_NUMBER = 1,
	ENTRIES_PER_RECOVERY_BLOCK = 100,
};

struct fixture {
	struct block_device *device;
	struct vdo_super_block super;
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_slab_summary *summary;
	struct vdo_slab_context context;
	struct vdo_slab *slab;
	int failure;
};

/* One change the test makes, and the model of the counts. */
struct change {
	uint32_t offset;
	bool increment;
};

static void no_notify(void *context)
{
	(void) context;
}

static void record_failure(void *context, int result)
{
	((struct fixture *) context)->failure = result;
}

static void open_slab(struct fixture *f)
{
	assert_success(vdo_load_slab_summary(f->device, &f->super.layout, f->super.nonce,
	                                     f->threads, SUMMARY_THREAD, false, &f->summary));
	assert_success(
	    vdo_make_lock_counter(f->super.layout.journal_blocks, 1, no_notify, NULL, &f->locks));
	f->context = (struct vdo_slab_context){ .device = f->device,
		                                .layout = &f->super.layout,
		                                .nonce = f->super.nonce,
		                                .threads = f->threads,
		                                .summary = f->summary,
		                                .locks = f->locks,
		                                .fail = record_failure,
		                                .fail_context = f };
	assert_success(vdo_make_slab(&f->context, SLAB_NUMBER, 0, SLAB_THREAD, 0, &f->slab));
	assert_success(vdo_load_slab(f->slab));
}

static void close_slab(struct fixture *f)
{
	vdo_free_slab(f->slab);
	vdo_free_slab_summary(f->summary);
	vdo_free_lock_counter(f->locks);
}

static struct fixture *make_fixture(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vdo_format_config config = { .slab_blocks = 1024, .slab_journal_blocks = 8 };
	struct dd_thread_set_config threads = dd_default_thread_set_config("slabtest", 2);

	assert_success(vdo_make_ram_device(8192, &f->device));
	assert_success(vdo_format(f->device, &config, &f->super));
	assert_success(dd_make_thread_set(&threads, &f->threads));
	open_slab(f);
	return f;
}

static void free_fixture(struct fixture *f)
{
	close_slab(f);
	/* The device's completions launch work into the threads: drain them first. */
	vdo_close_device(f->device);
	dd_free_thread_set(f->threads);
	free(f);
}

/* Adding a batch of entries from the slab's thread, and waiting for all of them. */
struct batch {
	struct fixture *fixture;
	const struct change *changes;
	uint32_t count;
	uint32_t first_number;
	struct vdo_slab_entry_request *requests;
	uint32_t remaining;
	int result;
	struct dd_completion *action;
};

static struct vdo_journal_point recovery_point_of(uint32_t number)
{
	return (struct vdo_journal_point){
		.sequence = 1 + number / ENTRIES_PER_RECOVERY_BLOCK,
		.entry = (uint16_t) (2 * (number % ENTRIES_PER_RECOVERY_BLOCK)),
	};
}

static void one_done(struct batch *batch)
{
	if (--batch->remaining == 0)
		dd_finish_completion(batch->action, batch->result);
}

static void entry_done(struct dd_completion *completion)
{
	struct batch *batch = completion->parent;

	if ((completion->result != DD_SUCCESS) && (batch->result == DD_SUCCESS))
		batch->result = completion->result;
	one_done(batch);
}

static void add_batch(struct dd_completion *completion)
{
	struct batch *batch = completion->parent;
	struct fixture *f = batch->fixture;

	uint32_t count = batch->count;

	batch->action = completion;
	/* One more than the entries, given up last, so that no entry finishes the batch (and
	 * frees it) before all are launched. */
	batch->remaining = count + 1;
	for (uint32_t i = 0; i < count; i++) {
		struct vdo_slab_entry_request *request = &batch->requests[i];

		dd_initialize_completion(&request->completion, f->threads);
		dd_prepare_completion(&request->completion, entry_done, NULL, SLAB_THREAD, batch);
		request->offset = batch->changes[i].offset;
		request->increment = batch->changes[i].increment;
		request->recovery_point = recovery_point_of(batch->first_number + i);
		vdo_add_slab_entry(f->slab, request);
	}
	one_done(batch);
}

static int add_changes(struct fixture *f, const struct change *changes, uint32_t count,
                       uint32_t first_number)
{
	struct batch batch = {
		.fixture = f, .changes = changes, .count = count, .first_number = first_number
	};
	int result;

	batch.requests = calloc(count, sizeof(*batch.requests));
	result = dd_perform_synchronous_action(f->threads, SLAB_THREAD, add_batch, &batch);
	free(batch.requests);
	return result;
}

static void commit(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	vdo_commit_slab_journal(f->slab, VDO_NO_LOCK);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void check_quiet(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	dd_finish_completion(completion, vdo_slab_is_quiet(f->slab) ? DD_SUCCESS : DD_QUEUED);
}

/* Commit the tail and wait until nothing is in flight. */
static void settle(struct fixture *f)
{
	assert_success(dd_perform_synchronous_action(f->threads, SLAB_THREAD, commit, f));
	while (dd_perform_synchronous_action(f->threads, SLAB_THREAD, check_quiet, f) != DD_SUCCESS)
		usleep(200);
}

/* A deterministic mix of increments and decrements that never goes below zero or past 254. */
static struct change *make_changes(uint32_t count, uint32_t data_blocks, uint8_t *model,
                                   uint64_t seed)
{
	struct change *changes = calloc(count, sizeof(*changes));

	for (uint32_t i = 0; i < count; i++) {
		uint32_t offset;
		bool increment;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		offset = (uint32_t) ((seed >> 33) % data_blocks);
		increment =
		    (model[offset] == 0) || ((model[offset] < 20) && (((seed >> 20) & 3) != 0));
		model[offset] = (uint8_t) (model[offset] + (increment ? 1 : -1));
		changes[i] = (struct change){ .offset = offset, .increment = increment };
	}
	return changes;
}

static void check_counts(struct fixture *f, const uint8_t *model)
{
	for (uint32_t b = 0; b < f->super.layout.slab_data_blocks; b++) {
		if (vdo_get_ref_count(f->slab->counts, b) != model[b])
			fail_msg("block %u: count %u, expected %u", b,
			         vdo_get_ref_count(f->slab->counts, b), model[b]);
	}
}

static void test_journal_under_pressure(void **state)
{
	enum {
		COUNT = 30000
	};
	struct fixture *f = make_fixture();
	uint32_t data_blocks = f->super.layout.slab_data_blocks;
	uint8_t *model = calloc(data_blocks, 1);
	struct change *changes = make_changes(COUNT, data_blocks, model, 7);

	(void) state;
	/* Nearly three times what the journal holds: counts must be written and the head move. */
	assert_success(add_changes(f, changes, COUNT, 0));
	settle(f);
	check_counts(f, model);
	assert_int_equal(f->failure, DD_SUCCESS);
	assert_true(f->slab->journal.tail > 2 * f->slab->journal.size);
	assert_true(vdo_slab_journal_blocks_in_use(f->slab) <= f->slab->journal.size);
	/* Every recovery journal lock the journal took has been given back. */
	for (vdo_sequence_t r = 1; r <= 1 + COUNT / ENTRIES_PER_RECOVERY_BLOCK; r++)
		assert_false(vdo_is_journal_block_locked(f->locks, r));
	/* The summary knows the slab must be scrubbed after a crash. */
	assert_true(vdo_get_summary_entry_of(f->summary, SLAB_NUMBER).dirty);
	free(changes);
	free(model);
	free_fixture(f);
}

static void crash_and_reload(struct fixture *f, enum ram_crash_mode mode, uint64_t seed)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(f->device, mode, seed, &survivor));
	/* What was still running finds the power gone; let it run down. */
	while (dd_perform_synchronous_action(f->threads, SLAB_THREAD, check_quiet, f) != DD_SUCCESS)
		usleep(200);
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	close_slab(f);
	vdo_close_device(f->device);
	f->device = survivor;
	f->failure = DD_SUCCESS;
	open_slab(f);
}

static void test_flushed_entries_survive(void **state)
{
	enum {
		COUNT = 12000
	};
	struct fixture *f = make_fixture();
	uint32_t data_blocks = f->super.layout.slab_data_blocks;
	uint8_t *model = calloc(data_blocks, 1);
	struct change *changes = make_changes(COUNT, data_blocks, model, 11);

	(void) state;
	assert_success(add_changes(f, changes, COUNT, 0));
	settle(f);
	assert_success(vdo_sync_io(f->device, VDO_IO_FLUSH, 0, 0, 0, NULL));
	crash_and_reload(f, RAM_CRASH_DROP_ALL, 0);
	check_counts(f, model);
	assert_int_equal(f->slab->journal.last_recovery_point.sequence,
	                 recovery_point_of(COUNT - 1).sequence);
	/* And it goes on from there, and survives another crash. */
	free(changes);
	changes = make_changes(COUNT, data_blocks, model, 12);
	assert_success(add_changes(f, changes, COUNT, COUNT));
	settle(f);
	assert_success(vdo_sync_io(f->device, VDO_IO_FLUSH, 0, 0, 0, NULL));
	crash_and_reload(f, RAM_CRASH_RANDOM, 5);
	check_counts(f, model);
	free(changes);
	free(model);
	free_fixture(f);
}

/* Apply the changes the reloaded counts include: for each block, those up to its sector's
 * recovery point. */
static void model_included(struct fixture *f, uint8_t *model, const struct change *changes,
                           uint32_t count, uint32_t first_number)
{
	for (uint32_t i = 0; i < count; i++) {
		if (vdo_slab_includes(f->slab, changes[i].offset,
		                      recovery_point_of(first_number + i)))
			model[changes[i].offset] += changes[i].increment ? 1 : -1;
	}
}

static void test_random_crashes(void **state)
{
	enum {
		BASE = 5000,
		MORE = 9000
	};

	(void) state;
	for (uint64_t seed = 1; seed <= 12; seed++) {
		struct fixture *f = make_fixture();
		uint32_t data_blocks = f->super.layout.slab_data_blocks;
		uint8_t *model = calloc(data_blocks, 1);
		uint8_t *scratch = calloc(data_blocks, 1);
		struct change *base = make_changes(BASE, data_blocks, model, seed);
		struct change *more;

		assert_success(add_changes(f, base, BASE, 0));
		settle(f);
		assert_success(vdo_sync_io(f->device, VDO_IO_FLUSH, 0, 0, 0, NULL));
		memcpy(scratch, model, data_blocks);
		more = make_changes(MORE, data_blocks, scratch, seed * 100);
		assert_success(add_changes(f, more, MORE, BASE));
		if (seed % 2 == 0)
			settle(f);
		crash_and_reload(f, RAM_CRASH_RANDOM, seed);
		assert_int_equal(f->failure, DD_SUCCESS);
		/* At least what was flushed, and exactly the changes the counts claim. */
		for (uint32_t i = 0; i < BASE; i++)
			assert_true(
			    vdo_slab_includes(f->slab, base[i].offset, recovery_point_of(i)));
		model_included(f, model, more, MORE, BASE);
		check_counts(f, model);
		free(base);
		free(more);
		free(scratch);
		free(model);
		free_fixture(f);
	}
}

/*
 * A count block can reach the disk while the journal block its points name does not: the
 * journal must go on past that block after a crash, or its new entries would look included.
 */
static void test_counts_ahead_of_the_journal(void **state)
{
	enum {
		COUNT = 3000
	};
	struct fixture *f = make_fixture();
	uint32_t data_blocks = f->super.layout.slab_data_blocks;
	uint8_t *model = calloc(data_blocks, 1);
	struct change *changes = make_changes(COUNT, data_blocks, model, 21);
	struct vdo_ref_points ahead[VDO_SECTORS_PER_BLOCK];
	uint8_t *block = malloc(VDO_BLOCK_SIZE);
	vdo_sequence_t claimed;

	(void) state;
	assert_success(add_changes(f, changes, COUNT, 0));
	settle(f);
	assert_success(vdo_sync_io(f->device, VDO_IO_FLUSH, 0, 0, 0, NULL));
	/* Count block 0 as written for entries of a journal block the crash lost. */
	claimed = f->slab->journal.tail + 3;
	for (unsigned int s = 0; s < VDO_SECTORS_PER_BLOCK; s++)
		ahead[s] = (struct vdo_ref_points){
			.slab = { .sequence = claimed, .entry = 2 },
			.recovery = recovery_point_of(COUNT - 1),
		};
	vdo_pack_ref_block(f->slab->counts, 0, block, f->super.nonce, f->slab->ref_origin, ahead);
	vdo_ram_device_poke(f->device, f->slab->ref_origin * VDO_BLOCK_SIZE, block, VDO_BLOCK_SIZE);
	crash_and_reload(f, RAM_CRASH_DROP_ALL, 0);
	check_counts(f, model);
	assert_true(f->slab->journal.tail > claimed);
	free(block);
	free(changes);
	free(model);
	free_fixture(f);
}

static void test_write_errors_fail_the_slab(void **state)
{
	enum {
		COUNT = 3000
	};
	struct fixture *f = make_fixture();
	uint32_t data_blocks = f->super.layout.slab_data_blocks;
	uint8_t *model = calloc(data_blocks, 1);
	struct change *changes = make_changes(COUNT, data_blocks, model, 3);
	int result;

	(void) state;
	vdo_ram_device_fail(f->device, f->slab->journal.origin, f->slab->journal.size);
	/* The entries made before the failure succeed; those waiting when it came are refused. */
	result = add_changes(f, changes, COUNT, 0);
	assert_true((result == DD_SUCCESS) || (result == DD_READ_ONLY));
	settle(f);
	assert_int_equal(f->failure, EIO);
	assert_true(f->slab->failed);
	/* Later entries are refused. */
	assert_int_equal(add_changes(f, changes, 1, COUNT), DD_READ_ONLY);
	free(changes);
	free(model);
	free_fixture(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_under_pressure),
		cmocka_unit_test(test_flushed_entries_survive),
		cmocka_unit_test(test_random_crashes),
		cmocka_unit_test(test_counts_ahead_of_the_journal),
		cmocka_unit_test(test_write_errors_fail_the_slab),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
