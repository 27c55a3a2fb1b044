// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of completions and zone threads.
 *
 * Manual mode makes the order of execution exact, so the dispatch rules (error handler or
 * callback, first error wins, direct run or queue, round-robin) are checked against a precise
 * log. Real threads are checked for what they add: callbacks on the right thread, hops between
 * threads, synchronous actions, draining at shutdown, sleeping and waking. No test depends on
 * timing: they wait for conditions, never for durations. Callbacks on zone threads record what
 * they see and the test thread asserts afterwards, since cmocka's checks must run on the test
 * thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "completion.h"
#include "errors.h"
#include "memory-alloc.h"
#include "test-harness.h"
#include "time-utils.h"
#include "work-queue.h"

enum {
	ZONES = 4,
	CHAIN_HOPS = 1000,
	CHAIN_COUNT = 64,
	DRAIN_COUNT = 10000,
	LOG_MAX = 64,
};

static struct dd_thread_set *make_set(unsigned int count, enum dd_thread_set_mode mode,
                                      int64_t spin_ns)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("wq", count);
	struct dd_thread_set *set = NULL;

	config.mode = mode;
	config.spin_ns = spin_ns;
	assert_success(dd_make_thread_set(&config, &set));
	return set;
}

/* An action that finishes at once with the int its parent points to. */
static void finish_with_parent_result(struct dd_completion *completion)
{
	dd_finish_completion(completion, *(int *) completion->parent);
}

static void test_bad_configurations_and_arguments(void **state)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("bad", 0);
	struct dd_zone_thread_stats stats;
	struct dd_thread_set *set = NULL;

	(void) state;
	assert_int_equal(dd_make_thread_set(&config, &set), DD_INVALID_ARGUMENT);
	config.thread_count = 2;
	config.mode = (enum dd_thread_set_mode) 9;
	assert_int_equal(dd_make_thread_set(&config, &set), DD_INVALID_ARGUMENT);
	assert_null(set);
	set = make_set(2, DD_THREAD_SET_REAL, DD_DEFAULT_SPIN_NS);
	assert_int_equal(dd_thread_set_count(set), 2);
	assert_false(dd_thread_set_is_manual(set));
	assert_int_equal(dd_thread_set_run_until_idle(set, NULL), DD_BAD_STATE);
	assert_int_equal(dd_thread_set_get_stats(set, 2, &stats), DD_INVALID_ARGUMENT);
	assert_null(dd_thread_set_thread_name(set, 2));
	assert_string_equal(dd_thread_set_thread_name(set, 1), "wq1");
	assert_int_equal(dd_current_thread_id(), DD_INVALID_THREAD_ID);
	assert_null(dd_current_thread_set());
	dd_free_thread_set(set);
	dd_free_thread_set(NULL);
}

struct where {
	dd_thread_id_t id;
	struct dd_thread_set *set;
	int assert_result;
	char name[DD_THREAD_NAME_MAX + 1];
};

static void record_where(struct dd_completion *completion)
{
	struct where *where = completion->parent;

	where->id = dd_current_thread_id();
	where->set = dd_current_thread_set();
	where->assert_result = dd_assert_on_thread(completion->thread_set,
	                                           completion->callback_thread_id, "record_where");
	pthread_getname_np(pthread_self(), where->name, sizeof(where->name));
	dd_finish_completion(completion, DD_SUCCESS);
}

static void test_actions_run_on_named_threads(void **state)
{
	const char *const names[] = { "index", "a-name-longer-than-fifteen", "volume" };
	const char *const expected[] = { "index", "a-name-longer-t", "volume" };
	struct dd_thread_set_config config = dd_default_thread_set_config("unused", 3);
	struct dd_thread_set *set;

	(void) state;
	config.thread_names = names;
	assert_success(dd_make_thread_set(&config, &set));
	for (dd_thread_id_t id = 0; id < 3; id++) {
		struct where where = { .id = DD_INVALID_THREAD_ID };

		assert_success(dd_perform_synchronous_action(set, id, record_where, &where));
		assert_int_equal(where.id, id);
		assert_ptr_equal(where.set, set);
		assert_int_equal(where.assert_result, DD_SUCCESS);
		assert_string_equal(where.name, expected[id]);
		assert_string_equal(dd_thread_set_thread_name(set, id), expected[id]);
	}
	dd_free_thread_set(set);
}

static void test_synchronous_action_returns_its_result(void **state)
{
	enum dd_thread_set_mode modes[] = { DD_THREAD_SET_REAL, DD_THREAD_SET_MANUAL };

	(void) state;
	for (int m = 0; m < 2; m++) {
		struct dd_thread_set *set = make_set(2, modes[m], DD_DEFAULT_SPIN_NS);
		int success = DD_SUCCESS;
		int corrupt = DD_CORRUPT_DATA;

		assert_int_equal(
		    dd_perform_synchronous_action(set, 1, finish_with_parent_result, &success),
		    DD_SUCCESS);
		assert_int_equal(
		    dd_perform_synchronous_action(set, 0, finish_with_parent_result, &corrupt),
		    DD_CORRUPT_DATA);
		dd_free_thread_set(set);
	}
}

/* What a callback or error handler saw when it ran. */
struct outcome {
	char ran;
	int result;
	bool complete;
	dd_thread_id_t thread;
};

static void note_outcome(struct dd_completion *completion, char ran)
{
	struct outcome *outcome = completion->parent;

	outcome->ran = ran;
	outcome->result = completion->result;
	outcome->complete = completion->complete;
	outcome->thread = dd_current_thread_id();
}

static void outcome_callback(struct dd_completion *completion)
{
	note_outcome(completion, 'c');
}

static void outcome_error_handler(struct dd_completion *completion)
{
	note_outcome(completion, 'e');
}

/* Run everything queued and check that exactly @expected_runs completions came off queues. */
static void run_manual(struct dd_thread_set *set, uint64_t expected_runs)
{
	uint64_t count;

	assert_success(dd_thread_set_run_until_idle(set, &count));
	assert_int_equal(count, expected_runs);
	assert_int_equal(dd_current_thread_id(), DD_INVALID_THREAD_ID);
}

static void test_first_error_wins(void **state)
{
	struct dd_thread_set *set = make_set(2, DD_THREAD_SET_MANUAL, 0);
	struct dd_completion completion;
	struct outcome outcome = { 0 };

	(void) state;
	dd_initialize_completion(&completion, set);
	dd_prepare_completion(&completion, outcome_callback, outcome_error_handler, 1, &outcome);
	dd_set_completion_result(&completion, DD_CORRUPT_DATA);
	dd_set_completion_result(&completion, DD_BAD_STATE);
	dd_set_completion_result(&completion, DD_SUCCESS);
	dd_continue_completion(&completion, DD_OUT_OF_RANGE);
	run_manual(set, 1);
	assert_int_equal(outcome.ran, 'e');
	assert_int_equal(outcome.result, DD_CORRUPT_DATA);
	assert_int_equal(outcome.thread, 1);
	assert_false(outcome.complete);

	/* Prepare clears the error; success goes to the callback. */
	dd_prepare_completion(&completion, outcome_callback, outcome_error_handler, 0, &outcome);
	dd_continue_completion(&completion, DD_SUCCESS);
	run_manual(set, 1);
	assert_int_equal(outcome.ran, 'c');
	assert_int_equal(outcome.result, DD_SUCCESS);
	assert_int_equal(outcome.thread, 0);

	/* Finish marks the completion complete and still routes errors to the handler. */
	dd_prepare_completion(&completion, outcome_callback, outcome_error_handler, 1, &outcome);
	dd_finish_completion(&completion, DD_TIMED_OUT);
	run_manual(set, 1);
	assert_int_equal(outcome.ran, 'e');
	assert_int_equal(outcome.result, DD_TIMED_OUT);
	assert_true(outcome.complete);

	/* Without an error handler, errors go to the callback. */
	dd_prepare_completion(&completion, outcome_callback, NULL, 1, &outcome);
	dd_continue_completion(&completion, DD_BAD_STATE);
	run_manual(set, 1);
	assert_int_equal(outcome.ran, 'c');
	assert_int_equal(outcome.result, DD_BAD_STATE);
	dd_reset_completion(&completion);
	assert_int_equal(completion.result, DD_SUCCESS);
	dd_free_thread_set(set);
}

/* A step of the manual-mode scenario: log where it ran, then launch its children in order. */
struct step {
	struct dd_completion completion;
	char tag;
	struct step *children[2];
	struct run_log *log;
};

struct run_log {
	char tags[LOG_MAX + 1];
	dd_thread_id_t threads[LOG_MAX];
	unsigned int count;
};

static void run_step(struct dd_completion *completion)
{
	struct step *step = completion->parent;
	struct run_log *log = step->log;

	if (log->count < LOG_MAX) {
		log->threads[log->count] = dd_current_thread_id();
		log->tags[log->count++] = step->tag;
	}
	for (int i = 0; i < 2; i++) {
		if (step->children[i] != NULL)
			dd_launch_completion(&step->children[i]->completion);
	}
}

static void prepare_step(struct dd_thread_set *set, struct step *step, char tag,
                         dd_thread_id_t thread_id, bool requeue, struct run_log *log)
{
	memset(step, 0, sizeof(*step));
	dd_initialize_completion(&step->completion, set);
	dd_prepare_completion(&step->completion, run_step, NULL, thread_id, step);
	step->completion.requeue = requeue;
	step->tag = tag;
	step->log = log;
}

/*
 * Three zones. A(0) launches E(1) and F(0); C(0) launches G(0, requeue); D(2) launches H(2),
 * which launches I(0). The test thread launches A, B(1), C, D. Expected, by round:
 *   round 1: A F (F runs directly inside A), B, D H (H directly inside D)
 *   round 2: C, E
 *   round 3: I        round 4: G
 */
static void test_manual_mode_order_is_exact(void **state)
{
	struct dd_thread_set *set = make_set(3, DD_THREAD_SET_MANUAL, 0);
	const dd_thread_id_t expected_threads[] = { 0, 0, 1, 2, 2, 0, 1, 0, 0 };
	struct run_log log = { .count = 0 };
	struct step s[9];
	enum {
		A,
		B,
		C,
		D,
		E,
		F,
		G,
		H,
		I
	};

	(void) state;
	prepare_step(set, &s[A], 'A', 0, false, &log);
	prepare_step(set, &s[B], 'B', 1, false, &log);
	prepare_step(set, &s[C], 'C', 0, false, &log);
	prepare_step(set, &s[D], 'D', 2, false, &log);
	prepare_step(set, &s[E], 'E', 1, false, &log);
	prepare_step(set, &s[F], 'F', 0, false, &log);
	prepare_step(set, &s[G], 'G', 0, true, &log);
	prepare_step(set, &s[H], 'H', 2, false, &log);
	prepare_step(set, &s[I], 'I', 0, false, &log);
	s[A].children[0] = &s[E];
	s[A].children[1] = &s[F];
	s[C].children[0] = &s[G];
	s[D].children[0] = &s[H];
	s[H].children[0] = &s[I];
	dd_launch_completion(&s[A].completion);
	dd_launch_completion(&s[B].completion);
	dd_launch_completion(&s[C].completion);
	dd_launch_completion(&s[D].completion);
	assert_int_equal(log.count, 0);
	run_manual(set, 7);
	assert_string_equal(log.tags, "AFBDHCEIG");
	assert_memory_equal(log.threads, expected_threads, sizeof(expected_threads));
	run_manual(set, 0);
	dd_free_thread_set(set);
}

/* Relaunches itself on its own thread @count times, tracking how deep the nesting gets. */
struct recursion {
	struct dd_completion completion;
	unsigned int remaining;
	unsigned int depth;
	unsigned int max_depth;
};

static void recurse(struct dd_completion *completion)
{
	struct recursion *recursion = completion->parent;

	if (recursion->remaining == 0)
		return;
	recursion->remaining--;
	recursion->depth++;
	if (recursion->depth > recursion->max_depth)
		recursion->max_depth = recursion->depth;
	dd_launch_completion(completion);
	recursion->depth--;
}

static void test_direct_runs_are_bounded(void **state)
{
	struct dd_thread_set *set = make_set(1, DD_THREAD_SET_MANUAL, 0);
	struct recursion recursion = { .remaining = 1000 };
	uint64_t count;

	(void) state;
	dd_initialize_completion(&recursion.completion, set);
	dd_prepare_completion(&recursion.completion, recurse, NULL, 0, &recursion);
	dd_launch_completion(&recursion.completion);
	assert_success(dd_thread_set_run_until_idle(set, &count));
	assert_int_equal(recursion.remaining, 0);
	assert_true(recursion.max_depth <= DD_MAX_DIRECT_RUN_DEPTH + 1);
	/* Each queued run allows DD_MAX_DIRECT_RUN_DEPTH nested ones before queueing again. */
	assert_true(count >= 1000 / (DD_MAX_DIRECT_RUN_DEPTH + 1));
	assert_true(count < 1000);
	dd_free_thread_set(set);
}

/* A completion that hops around the zones, finishing @parent at the end. */
struct chain {
	struct dd_completion completion;
	struct dd_completion *parent;
	unsigned int hops_done;
	unsigned int fail_at;
	unsigned int wrong_thread;
	dd_thread_id_t error_thread;
	/* visits[i] is touched only on zone i. */
	unsigned long *visits;
	atomic_uint *finished;
};

static dd_thread_id_t next_zone(struct dd_completion *completion)
{
	return (completion->callback_thread_id + 1) % dd_thread_set_count(completion->thread_set);
}

static void end_chain(struct chain *chain, int result)
{
	if (chain->finished != NULL)
		atomic_fetch_add(chain->finished, 1);
	if (chain->parent != NULL)
		dd_finish_completion(chain->parent, result);
}

static void hop(struct dd_completion *completion)
{
	struct chain *chain = completion->parent;
	dd_thread_id_t here = dd_current_thread_id();

	if (dd_assert_on_thread(completion->thread_set, completion->callback_thread_id, "hop") !=
	    DD_SUCCESS)
		chain->wrong_thread++;
	chain->visits[here]++;
	chain->hops_done++;
	if (chain->hops_done == chain->fail_at) {
		dd_set_completion_callback(completion, hop, next_zone(completion));
		dd_continue_completion(completion, DD_CORRUPT_DATA);
		return;
	}
	if (chain->hops_done == CHAIN_HOPS) {
		end_chain(chain, DD_SUCCESS);
		return;
	}
	dd_launch_completion_callback(completion, hop, next_zone(completion));
}

static void chain_failed(struct dd_completion *completion)
{
	struct chain *chain = completion->parent;

	chain->error_thread = dd_current_thread_id();
	end_chain(chain, completion->result);
}

static void start_chain(struct chain *chain, struct dd_thread_set *set, dd_thread_id_t first)
{
	dd_initialize_completion(&chain->completion, set);
	dd_prepare_completion(&chain->completion, hop, chain_failed, first, chain);
	dd_launch_completion(&chain->completion);
}

/* The synchronous action that starts a chain and lets the chain finish it. */
static void launch_chain(struct dd_completion *completion)
{
	struct chain *chain = completion->parent;

	chain->parent = completion;
	start_chain(chain, completion->thread_set, next_zone(completion));
}

static void test_chain_hops_between_threads(void **state)
{
	struct dd_thread_set *set = make_set(ZONES, DD_THREAD_SET_REAL, DD_DEFAULT_SPIN_NS);
	unsigned long visits[ZONES] = { 0 };
	struct chain chain = { .visits = visits, .error_thread = DD_INVALID_THREAD_ID };

	(void) state;
	assert_success(dd_perform_synchronous_action(set, 0, launch_chain, &chain));
	assert_int_equal(chain.hops_done, CHAIN_HOPS);
	assert_int_equal(chain.wrong_thread, 0);
	assert_int_equal(chain.error_thread, DD_INVALID_THREAD_ID);
	for (int i = 0; i < ZONES; i++)
		assert_int_equal(visits[i], CHAIN_HOPS / ZONES);
	dd_free_thread_set(set);
}

static void test_chain_error_reaches_handler_on_next_thread(void **state)
{
	struct dd_thread_set *set = make_set(ZONES, DD_THREAD_SET_REAL, 0);
	unsigned long visits[ZONES] = { 0 };
	struct chain chain = { .visits = visits, .fail_at = 7 };

	(void) state;
	/* Hop 1 runs on zone 1, so hop 7 runs on zone 3 and the handler on zone 0. */
	assert_int_equal(dd_perform_synchronous_action(set, 0, launch_chain, &chain),
	                 DD_CORRUPT_DATA);
	assert_int_equal(chain.hops_done, 7);
	assert_int_equal(chain.error_thread, 0);
	assert_int_equal(chain.wrong_thread, 0);
	dd_free_thread_set(set);
}

static void test_many_chains_at_once(void **state)
{
	struct dd_thread_set *set = make_set(ZONES, DD_THREAD_SET_REAL, DD_DEFAULT_SPIN_NS);
	unsigned long visits[ZONES] = { 0 };
	atomic_uint finished = 0;
	struct chain *chains;

	(void) state;
	assert_success(DD_ALLOCATE(CHAIN_COUNT, struct chain, "chains", &chains));
	for (int i = 0; i < CHAIN_COUNT; i++) {
		chains[i].visits = visits;
		chains[i].finished = &finished;
		start_chain(&chains[i], set, i % ZONES);
	}
	assert_success(dd_thread_set_wait_until_idle(set));
	assert_int_equal(atomic_load(&finished), CHAIN_COUNT);
	for (int i = 0; i < CHAIN_COUNT; i++) {
		assert_int_equal(chains[i].hops_done, CHAIN_HOPS);
		assert_int_equal(chains[i].wrong_thread, 0);
	}
	for (int i = 0; i < ZONES; i++)
		assert_int_equal(visits[i], CHAIN_COUNT * CHAIN_HOPS / ZONES);
	dd_free_thread_set(set);
	dd_free(chains);
}

/* Two-step work for the drain test: hop to the next zone, then count. */
static void count_done(struct dd_completion *completion)
{
	atomic_fetch_add((atomic_uint *) completion->parent, 1);
}

static void hop_then_count(struct dd_completion *completion)
{
	dd_launch_completion_callback(completion, count_done, next_zone(completion));
}

static void launch_drain_work(struct dd_thread_set *set, struct dd_completion *work,
                              atomic_uint *done)
{
	for (int i = 0; i < DRAIN_COUNT; i++) {
		dd_initialize_completion(&work[i], set);
		dd_prepare_completion(&work[i], hop_then_count, NULL, i % dd_thread_set_count(set),
		                      done);
		dd_launch_completion(&work[i]);
	}
}

static void test_free_drains_pending_work(void **state)
{
	enum dd_thread_set_mode modes[] = { DD_THREAD_SET_REAL, DD_THREAD_SET_MANUAL };
	struct dd_completion *work;

	(void) state;
	assert_success(DD_ALLOCATE(DRAIN_COUNT, struct dd_completion, "work", &work));
	for (int m = 0; m < 2; m++) {
		/* No spinning, so the threads are asleep and must be woken. */
		struct dd_thread_set *set = make_set(ZONES, modes[m], 0);
		atomic_uint done = 0;

		launch_drain_work(set, work, &done);
		dd_free_thread_set(set);
		assert_int_equal(atomic_load(&done), DRAIN_COUNT);
	}
	dd_free(work);
}

/* Work handed to a thread outside the set, which launches its answer back into the set. */
struct outside_work {
	struct dd_completion completion;
	pthread_t outsider;
	atomic_bool came_back;
};

static void came_back(struct dd_completion *completion)
{
	struct outside_work *work = completion->parent;

	atomic_store(&work->came_back, true);
}

/* The outside thread: answer late, as a device does. */
static void *answer_later(void *argument)
{
	struct outside_work *work = argument;
	struct dd_thread_set *set = work->completion.thread_set;

	dd_sleep_ns(20 * 1000 * 1000);
	dd_launch_completion_callback(&work->completion, came_back, 1);
	dd_end_external_work(set);
	return NULL;
}

static void hand_outside(struct dd_completion *completion)
{
	struct outside_work *work = completion->parent;

	dd_begin_external_work(completion->thread_set);
	if (pthread_create(&work->outsider, NULL, answer_later, work) != 0)
		abort();
}

/*
 * A set is not idle while work it handed outside is out, nor while the completion that work
 * came back as waits or runs: waiting for idle and freeing the set wait for both.
 */
static void test_idle_waits_for_outside_work(void **state)
{
	enum dd_thread_set_mode modes[] = { DD_THREAD_SET_REAL, DD_THREAD_SET_MANUAL };

	(void) state;
	for (int m = 0; m < 2; m++) {
		for (int freeing = 0; freeing < 2; freeing++) {
			struct dd_thread_set *set = make_set(2, modes[m], 0);
			struct outside_work work = { .came_back = false };

			dd_initialize_completion(&work.completion, set);
			dd_prepare_completion(&work.completion, hand_outside, NULL, 0, &work);
			dd_launch_completion(&work.completion);
			if (freeing == 0) {
				assert_success(dd_thread_set_wait_until_idle(set));
				assert_true(atomic_load(&work.came_back));
			}
			dd_free_thread_set(set);
			assert_true(atomic_load(&work.came_back));
			pthread_join(work.outsider, NULL);
		}
	}
}

static struct dd_zone_thread_stats get_stats(struct dd_thread_set *set, dd_thread_id_t id)
{
	struct dd_zone_thread_stats stats;

	assert_success(dd_thread_set_get_stats(set, id, &stats));
	return stats;
}

static void test_sleeping_thread_is_woken_and_counted(void **state)
{
	struct dd_thread_set *set = make_set(1, DD_THREAD_SET_REAL, 0);
	int success = DD_SUCCESS;
	struct dd_zone_thread_stats stats;

	(void) state;
	/* Wait (however long it takes) for the idle thread to go to sleep. */
	while (get_stats(set, 0).sleeps == 0)
		dd_sleep_ns(100 * DD_NSEC_PER_USEC);
	assert_success(dd_perform_synchronous_action(set, 0, finish_with_parent_result, &success));
	assert_success(dd_thread_set_wait_until_idle(set));
	stats = get_stats(set, 0);
	assert_int_equal(stats.enqueued, 1);
	assert_int_equal(stats.run, 1);
	assert_int_equal(stats.wakeups, 1);
	assert_true(stats.sleeps >= 1);
	dd_free_thread_set(set);
}

/* Actions that must fail when run on a zone thread of their own set. */
static void wait_on_own_set(struct dd_completion *completion)
{
	int success = DD_SUCCESS;

	dd_finish_completion(completion,
	                     dd_perform_synchronous_action(completion->thread_set, 1,
	                                                   finish_with_parent_result, &success));
}

/* An action that asserts it runs on zone 0 of the set given as its parent. */
static void assert_on_zone_zero(struct dd_completion *completion)
{
	dd_finish_completion(completion,
	                     dd_assert_on_thread(completion->parent, 0, "assert_on_zone_zero"));
}

static void check_misuse_is_refused(struct dd_thread_set *set, struct dd_thread_set *other)
{
	struct outcome outcome = { 0 };
	struct dd_completion completion;

	assert_int_equal(dd_assert_on_thread(set, 0, "test thread"), DD_ASSERTION_FAILED);
	assert_success(dd_perform_synchronous_action(set, 0, assert_on_zone_zero, set));
	assert_int_equal(dd_perform_synchronous_action(set, 1, assert_on_zone_zero, set),
	                 DD_ASSERTION_FAILED);
	assert_int_equal(dd_perform_synchronous_action(other, 0, assert_on_zone_zero, set),
	                 DD_ASSERTION_FAILED);
	assert_int_equal(dd_perform_synchronous_action(set, 0, wait_on_own_set, NULL),
	                 DD_ASSERTION_FAILED);
	assert_int_equal(dd_perform_synchronous_action(set, 5, assert_on_zone_zero, set),
	                 DD_ASSERTION_FAILED);
	/* A bad thread id, a double enqueue and a second finish are refused, not run. */
	dd_initialize_completion(&completion, set);
	dd_prepare_completion(&completion, outcome_callback, NULL, 7, &outcome);
	dd_launch_completion(&completion);
	assert_success(dd_thread_set_wait_until_idle(set));
	assert_int_equal(outcome.ran, 0);
	dd_prepare_completion(&completion, outcome_callback, NULL, 1, &outcome);
	if (dd_thread_set_is_manual(set)) {
		/* With a real thread the first enqueue could run before the second is refused. */
		dd_enqueue_completion(&completion);
		dd_enqueue_completion(&completion);
		run_manual(set, 1);
		assert_int_equal(outcome.ran, 'c');
	}
	dd_finish_completion(&completion, DD_SUCCESS);
	assert_success(dd_thread_set_wait_until_idle(set));
	outcome.ran = 0;
	dd_finish_completion(&completion, DD_SUCCESS);
	assert_success(dd_thread_set_wait_until_idle(set));
	assert_int_equal(outcome.ran, 0);
}

static void test_misuse_fails_assertions(void **state)
{
	enum dd_thread_set_mode modes[] = { DD_THREAD_SET_REAL, DD_THREAD_SET_MANUAL };

	(void) state;
	/* Only while no zone thread exists: the environment is not thread-safe. */
	unsetenv("DD_ASSERT_ABORT");
	for (int m = 0; m < 2; m++) {
		struct dd_thread_set *set = make_set(2, modes[m], DD_DEFAULT_SPIN_NS);
		struct dd_thread_set *other = make_set(1, modes[m], DD_DEFAULT_SPIN_NS);

		check_misuse_is_refused(set, other);
		dd_free_thread_set(other);
		dd_free_thread_set(set);
	}
	setenv("DD_ASSERT_ABORT", "1", 1);
}

/* Lookahead: a blocked thread gets a backlog, then runs it in order, showing each to the hook. */
enum {
	LOOKAHEAD_ITEMS = 100,
};

struct lookahead_item {
	struct dd_completion completion;
	atomic_uint stage_calls[2];
	unsigned int ran_as;
};

static atomic_bool lookahead_release;
static unsigned int lookahead_runs;

static void wait_for_release(struct dd_completion *completion)
{
	(void) completion;
	while (!atomic_load(&lookahead_release))
		;
}

static void record_run_order(struct dd_completion *completion)
{
	struct lookahead_item *item = completion->parent;

	item->ran_as = lookahead_runs++;
}

static void count_prefetch(struct dd_completion *completion, unsigned int stage)
{
	struct lookahead_item *item = completion->parent;

	if ((completion->callback == record_run_order) && (stage < 2))
		atomic_fetch_add(&item->stage_calls[stage], 1);
}

static void test_lookahead_keeps_order_and_shows_work_ahead(void **state)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("ahead", 1);
	static struct lookahead_item items[LOOKAHEAD_ITEMS];
	struct dd_completion blocker;
	struct dd_thread_set *set;
	unsigned int stage0 = 0;
	unsigned int stage1 = 0;

	(void) state;
	config.prefetch = count_prefetch;
	assert_success(dd_make_thread_set(&config, &set));
	atomic_store(&lookahead_release, false);
	lookahead_runs = 0;
	dd_initialize_completion(&blocker, set);
	dd_prepare_completion(&blocker, wait_for_release, NULL, 0, NULL);
	dd_launch_completion(&blocker);
	for (unsigned int i = 0; i < LOOKAHEAD_ITEMS; i++) {
		memset(&items[i], 0, sizeof(items[i]));
		dd_initialize_completion(&items[i].completion, set);
		dd_prepare_completion(&items[i].completion, record_run_order, NULL, 0, &items[i]);
		dd_launch_completion(&items[i].completion);
	}
	atomic_store(&lookahead_release, true);
	assert_success(dd_thread_set_wait_until_idle(set));
	for (unsigned int i = 0; i < LOOKAHEAD_ITEMS; i++) {
		assert_int_equal(items[i].ran_as, i);
		assert_true(atomic_load(&items[i].stage_calls[0]) <= 1);
		assert_true(atomic_load(&items[i].stage_calls[1]) <= 1);
		stage0 += atomic_load(&items[i].stage_calls[0]);
		stage1 += atomic_load(&items[i].stage_calls[1]);
	}
	/* The backlog was there when the blocker finished: most items were seen ahead of time. */
	assert_true(stage0 >= LOOKAHEAD_ITEMS - DD_LOOKAHEAD);
	assert_true(stage1 >= LOOKAHEAD_ITEMS - DD_LOOKAHEAD);
	dd_free_thread_set(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_configurations_and_arguments),
		cmocka_unit_test(test_actions_run_on_named_threads),
		cmocka_unit_test(test_synchronous_action_returns_its_result),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_manual_mode_order_is_exact),
		cmocka_unit_test(test_direct_runs_are_bounded),
		cmocka_unit_test(test_chain_hops_between_threads),
		cmocka_unit_test(test_chain_error_reaches_handler_on_next_thread),
		cmocka_unit_test(test_many_chains_at_once),
		cmocka_unit_test(test_free_drains_pending_work),
		cmocka_unit_test(test_idle_waits_for_outside_work),
		cmocka_unit_test(test_sleeping_thread_is_woken_and_counted),
		cmocka_unit_test(test_misuse_fails_assertions),
		cmocka_unit_test(test_lookahead_keeps_order_and_shows_work_ahead),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
