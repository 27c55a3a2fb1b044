// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the recovery journal on real zone threads: entries committed in order and read back
 * after a power cut, a journal full of locked blocks (entries wait, the zones are asked for
 * their locks, and everything goes through once they give them back), draining, torn writes
 * (what was acknowledged always survives, and what is read back is a prefix of what was added),
 * and a write error that stops the journal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block-device.h"
#include "errors.h"
#include "format.h"
#include "journal-reader.h"
#include "lock-counter.h"
#include "memory-alloc.h"
#include "recovery-journal.h"
#include "test-harness.h"
#include "work-queue.h"

enum {
	JOURNAL_THREAD = 0,
	JOURNAL_BLOCKS = 16,
};

struct fixture {
	struct block_device *device;
	struct vdo_super_block super;
	struct dd_thread_set *threads;
	struct vdo_lock_counter *locks;
	struct vdo_recovery_journal *journal;
	/* What the test asked of the journal. */
	uint32_t count;
	struct vdo_journal_request *requests;
	uint32_t committed;
	uint32_t failed;
	bool hold_locks;
	vdo_sequence_t release_asked;
	int failure;
	struct vdo_journal_stats stats;
};

static void notify(void *context)
{
	struct fixture *f = context;

	vdo_journal_notify(f->journal);
}

static void release_locks(void *context, vdo_sequence_t through)
{
	((struct fixture *) context)->release_asked = through;
}

static void record_failure(void *context, int result)
{
	((struct fixture *) context)->failure = result;
}

static struct fixture *make_fixture(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vdo_format_config format = { .slab_blocks = 1024,
		                            .recovery_journal_blocks = JOURNAL_BLOCKS };
	struct dd_thread_set_config threads = dd_default_thread_set_config("journaltest", 1);
	struct vdo_journal_config config;

	assert_success(vdo_make_ram_device(8192, &f->device));
	assert_success(vdo_format(f->device, &format, &f->super));
	assert_success(dd_make_thread_set(&threads, &f->threads));
	assert_success(vdo_make_lock_counter(JOURNAL_BLOCKS, 1, notify, f, &f->locks));
	config = (struct vdo_journal_config){ .device = f->device,
		                              .nonce = f->super.nonce,
		                              .origin = f->super.layout.journal_origin,
		                              .size = JOURNAL_BLOCKS,
		                              .threads = f->threads,
		                              .thread = JOURNAL_THREAD,
		                              .locks = f->locks,
		                              .head = f->super.journal_start,
		                              .tail = f->super.journal_tail,
		                              .release_locks = release_locks,
		                              .fail = record_failure,
		                              .context = f };
	assert_success(vdo_make_recovery_journal(&config, &f->journal));
	return f;
}

static void free_fixture(struct fixture *f)
{
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	vdo_close_device(f->device);
	dd_free_thread_set(f->threads);
	vdo_free_recovery_journal(f->journal);
	vdo_free_lock_counter(f->locks);
	free(f->requests);
	free(f);
}

/* The entry the test makes for number @n: a data remapping in a page of its own. */
static struct vdo_journal_entry entry_of(uint32_t n)
{
	return (struct vdo_journal_entry){
		.operation = VDO_JOURNAL_DATA_REMAPPING,
		.slot = { .pbn = 1000 + n / 7, .slot = (uint16_t) (n % 812) },
		.new_mapping = { .pbn = 5000 + n, .state = VDO_MAPPING_UNCOMPRESSED },
		.old_mapping = { .pbn = (n % 3 == 0) ? 4000 + n : 0,
		                 .state = (n % 3 == 0) ? VDO_MAPPING_UNCOMPRESSED
		                                       : VDO_MAPPING_UNMAPPED },
	};
}

static void entry_committed(struct dd_completion *completion)
{
	/* The completion is the request's first member. */
	struct vdo_journal_request *request = (struct vdo_journal_request *) completion;
	struct fixture *f = completion->parent;

	if (completion->result != DD_SUCCESS) {
		f->failed++;
		return;
	}
	f->committed++;
	if (!f->hold_locks)
		vdo_release_journal_lock(f->locks, request->point.sequence);
}

static void add_entries(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	for (uint32_t n = 0; n < f->count; n++) {
		struct vdo_journal_request *request = &f->requests[n];

		dd_initialize_completion(&request->completion, f->threads);
		dd_prepare_completion(&request->completion, entry_committed, NULL, JOURNAL_THREAD,
		                      f);
		request->entry = entry_of(n);
		vdo_add_journal_entry(f->journal, request);
	}
	dd_finish_completion(completion, DD_SUCCESS);
}

static void start_entries(struct fixture *f, uint32_t count)
{
	f->count = count;
	f->requests = calloc(count, sizeof(*f->requests));
	assert_success(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, add_entries, f));
}

static void read_committed(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	dd_finish_completion(completion, (int) f->committed);
}

static void read_stats(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	vdo_get_journal_stats(f->journal, &f->stats);
	dd_finish_completion(completion, DD_SUCCESS);
}

static uint32_t wait_for_commits(struct fixture *f, uint32_t count)
{
	for (int tries = 0; tries < 20000; tries++) {
		int committed =
		    dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, read_committed, f);

		if ((uint32_t) committed >= count)
			return (uint32_t) committed;
		usleep(100);
	}
	assert_success(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, read_stats, f));
	fail_msg(
	    "only %u of %u entries were committed (head %llu tail %llu entries %llu writes %llu)",
	    f->committed, count, (unsigned long long) f->stats.head,
	    (unsigned long long) f->stats.tail, (unsigned long long) f->stats.entries,
	    (unsigned long long) f->stats.writes);
	return 0;
}

/* Reading back: the entries must be the first ones added, in order. */
struct reading {
	uint32_t count;
	bool wrong;
};

static int check_entry(void *context, const struct vdo_journal_entry *entry,
                       struct vdo_journal_point point)
{
	struct reading *reading = context;
	struct vdo_journal_entry expected = entry_of(reading->count);

	if ((entry->operation != expected.operation) || (entry->slot.pbn != expected.slot.pbn) ||
	    (entry->slot.slot != expected.slot.slot) ||
	    (entry->new_mapping.pbn != expected.new_mapping.pbn) ||
	    (entry->old_mapping.state != expected.old_mapping.state)) {
		if (!reading->wrong)
			print_message("entry %u at %llu/%u: op %d slot %llu/%u new %llu old %d\n",
			              reading->count, (unsigned long long) point.sequence,
			              point.entry, entry->operation,
			              (unsigned long long) entry->slot.pbn, entry->slot.slot,
			              (unsigned long long) entry->new_mapping.pbn,
			              entry->old_mapping.state);
		reading->wrong = true;
	}
	reading->count++;
	return DD_SUCCESS;
}

static struct reading read_back(struct block_device *device, const struct fixture *f,
                                struct vdo_journal_contents *contents)
{
	struct reading reading = { 0 };

	assert_success(vdo_read_recovery_journal(
	    device, f->super.nonce, f->super.layout.journal_origin, JOURNAL_BLOCKS,
	    f->super.journal_start, check_entry, &reading, contents));
	assert_false(reading.wrong);
	return reading;
}

static struct block_device *crash(struct fixture *f, enum ram_crash_mode mode, uint64_t seed)
{
	struct block_device *survivor;

	assert_success(vdo_ram_device_crash(f->device, mode, seed, &survivor));
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	return survivor;
}

static void test_entries_survive_a_crash(void **state)
{
	enum {
		COUNT = 1000
	};
	struct fixture *f = make_fixture();
	struct vdo_journal_contents contents;
	struct block_device *survivor;
	struct reading reading;

	(void) state;
	/* Nothing is given back, so every block stays and reads back. */
	f->hold_locks = true;
	start_entries(f, COUNT);
	wait_for_commits(f, COUNT);
	/* Entries come back in order with their places. */
	for (uint32_t n = 1; n < COUNT; n++)
		assert_true(
		    vdo_before_journal_point(f->requests[n - 1].point, f->requests[n].point));
	survivor = crash(f, RAM_CRASH_DROP_ALL, 0);
	reading = read_back(survivor, f, &contents);
	assert_int_equal(reading.count, COUNT);
	assert_int_equal(contents.entries, COUNT);
	/* Two of three entries map a new block; the others replace one. */
	assert_int_equal(contents.logical_blocks_used, COUNT - (COUNT + 2) / 3);
	assert_true(contents.next_tail > contents.head);
	vdo_close_device(survivor);
	free_fixture(f);
}

static void release_held(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	f->hold_locks = false;
	for (uint32_t n = 0; n < f->committed; n++)
		vdo_release_journal_lock(f->locks, f->requests[n].point.sequence);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void drain(struct dd_completion *completion)
{
	struct fixture *f = completion->parent;

	vdo_drain_recovery_journal(f->journal, completion);
}

static void test_full_journal_waits_for_locks(void **state)
{
	enum {
		COUNT = 5000
	};
	struct fixture *f = make_fixture();
	struct vdo_journal_stats stats;
	uint32_t committed;

	(void) state;
	f->hold_locks = true;
	start_entries(f, COUNT);
	/* 16 blocks of 221 entries: the journal fills and the rest wait. */
	usleep(20000);
	committed = wait_for_commits(f, 1);
	assert_true(committed < COUNT);
	assert_true(committed <= JOURNAL_BLOCKS * VDO_JOURNAL_ENTRIES_PER_BLOCK);
	assert_true(f->release_asked > 1);
	assert_success(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, release_held, f));
	wait_for_commits(f, COUNT);
	assert_success(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, drain, f));
	assert_success(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, read_stats, f));
	stats = f->stats;
	assert_true(stats.waits_for_space > 0);
	assert_int_equal(stats.entries, COUNT);
	assert_int_equal(stats.head, stats.tail);
	assert_true(stats.writes < stats.entries);
	free_fixture(f);
}

static void test_torn_writes_keep_a_prefix(void **state)
{
	(void) state;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct fixture *f = make_fixture();
		struct vdo_journal_contents contents;
		struct block_device *survivor;
		struct reading reading;
		uint32_t acknowledged;

		/* Locks held: the head stays, and every entry written reads back. */
		f->hold_locks = true;
		start_entries(f, 300 + (uint32_t) seed * 37);
		survivor = crash(f, RAM_CRASH_RANDOM, seed);
		acknowledged = f->committed;
		reading = read_back(survivor, f, &contents);
		assert_true(reading.count >= acknowledged);
		assert_true(reading.count <= f->count);
		vdo_close_device(survivor);
		free_fixture(f);
	}
}

static void test_write_error_stops_the_journal(void **state)
{
	struct fixture *f = make_fixture();

	(void) state;
	vdo_ram_device_fail(f->device, f->super.layout.journal_origin, JOURNAL_BLOCKS);
	start_entries(f, 500);
	assert_success(dd_thread_set_wait_until_idle(f->threads));
	while (f->failed < 500)
		usleep(100);
	assert_int_equal(f->committed, 0);
	assert_int_equal(f->failure, EIO);
	assert_int_equal(dd_perform_synchronous_action(f->threads, JOURNAL_THREAD, drain, f),
	                 DD_READ_ONLY);
	free_fixture(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_survive_a_crash),
		cmocka_unit_test(test_full_journal_waits_for_locks),
		cmocka_unit_test(test_torn_writes_keep_a_prefix),
		cmocka_unit_test(test_write_error_stops_the_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
