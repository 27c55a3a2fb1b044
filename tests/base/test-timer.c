// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of timers: entries fire in deadline order and never early, on their zone's thread;
 * a cancelled entry never fires; and a thread set is not idle while an entry is armed.
 * Nothing depends on how late an entry fires, only on order and on "not before".
 */
#include <stdatomic.h>

#include "completion.h"
#include "test-harness.h"
#include "time-utils.h"
#include "timer.h"
#include "work-queue.h"

enum {
	ENTRIES = 3,
	MS = 1000 * 1000,
};

struct alarm {
	struct dd_completion completion;
	struct dd_timer_entry entry;
	dd_ktime_t deadline;
	dd_ktime_t fired_at;
	int order;
	dd_thread_id_t thread;
	atomic_int *next_order;
};

static void ring(struct dd_completion *completion)
{
	struct alarm *alarm = completion->parent;

	alarm->fired_at = dd_monotonic_ns();
	alarm->thread = dd_current_thread_id();
	alarm->order = atomic_fetch_add(alarm->next_order, 1);
}

static void set_alarm(struct dd_timer *timer, struct dd_thread_set *set, struct alarm *alarm,
                      atomic_int *next_order, dd_thread_id_t thread, dd_ktime_t deadline)
{
	*alarm = (struct alarm){ .deadline = deadline, .order = -1, .next_order = next_order };
	dd_initialize_completion(&alarm->completion, set);
	dd_prepare_completion(&alarm->completion, ring, NULL, thread, alarm);
	dd_arm_timer(timer, &alarm->entry, &alarm->completion, deadline);
}

static struct dd_thread_set *make_set(void)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("timed", 2);
	struct dd_thread_set *set;

	assert_success(dd_make_thread_set(&config, &set));
	return set;
}

static void test_entries_fire_in_order_on_their_thread(void **state)
{
	const dd_ktime_t offsets[ENTRIES] = { 30 * MS, 10 * MS, 20 * MS };
	const int expected_order[ENTRIES] = { 2, 0, 1 };
	struct dd_thread_set *set = make_set();
	struct alarm alarms[ENTRIES];
	atomic_int next_order = 0;
	struct dd_timer *timer;
	dd_ktime_t now = dd_monotonic_ns();

	(void) state;
	assert_success(dd_make_timer("testtimer", &timer));
	/* All on one zone thread, whose queue keeps the order the timer launched them in. */
	for (int i = 0; i < ENTRIES; i++)
		set_alarm(timer, set, &alarms[i], &next_order, 1, now + offsets[i]);
	/* Armed entries are the set's work: idle means they have all fired and run. */
	assert_success(dd_thread_set_wait_until_idle(set));
	for (int i = 0; i < ENTRIES; i++) {
		assert_int_equal(alarms[i].order, expected_order[i]);
		assert_true(alarms[i].fired_at >= alarms[i].deadline);
		assert_int_equal(alarms[i].thread, 1);
		assert_false(dd_cancel_timer(timer, &alarms[i].entry));
	}
	dd_free_timer(timer);
	dd_free_thread_set(set);
}

static void test_cancelled_entries_never_fire(void **state)
{
	struct dd_thread_set *set = make_set();
	struct alarm cancelled;
	struct alarm kept;
	atomic_int next_order = 0;
	struct dd_timer *timer;
	dd_ktime_t now = dd_monotonic_ns();

	(void) state;
	assert_success(dd_make_timer("testtimer", &timer));
	/* Far away, so that the cancel surely comes first. */
	set_alarm(timer, set, &cancelled, &next_order, 0, now + 3600LL * 1000 * MS);
	set_alarm(timer, set, &kept, &next_order, 1, now + 5 * MS);
	assert_true(dd_cancel_timer(timer, &cancelled.entry));
	assert_false(dd_cancel_timer(timer, &cancelled.entry));
	/* Idle does not wait for the cancelled entry, but does for the other. */
	assert_success(dd_thread_set_wait_until_idle(set));
	assert_int_equal(cancelled.order, -1);
	assert_int_equal(kept.order, 0);
	/* A cancelled entry may be armed again. */
	set_alarm(timer, set, &cancelled, &next_order, 0, dd_monotonic_ns());
	assert_success(dd_thread_set_wait_until_idle(set));
	assert_int_equal(cancelled.order, 1);
	dd_free_timer(timer);
	dd_free_thread_set(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_fire_in_order_on_their_thread),
		cmocka_unit_test(test_cancelled_entries_never_fire),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
