/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Queries of the dedupe index for its tests (test-dedupe-index.c, test-dedupe-remote.c): each
 * number has a name (the record name of its 8 bytes) and its data holds a number. Every
 * callback is counted, per query and in all, with the thread it ran on and whether it ran on
 * the stack of a thread that was submitting; waits are for conditions, with a generous deadline
 * that only a hung index reaches.
 */
#ifndef VDO_TEST_DEDUPE_QUERIES_H
#define VDO_TEST_DEDUPE_QUERIES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "dedupe-index.h"
#include "test-harness.h"
#include "time-utils.h"

enum {
	/* How long a wait for a condition may take before the test fails, in seconds. */
	WAIT_SECONDS = 120,
	/* How often a wait looks, in nanoseconds. */
	WAIT_POLL_NS = 200 * 1000,
};

struct test_query {
	/* First: the callback gets back to the test_query from the query. */
	struct vdo_index_query query;
	atomic_uint calls;
	pthread_t thread;
	dd_ktime_t submitted_ns;
	dd_ktime_t answered_ns;
};

/* What a test learns of one answer. */
struct answer {
	enum vdo_index_status status;
	bool found;
	uint64_t old_data;
	/* Milliseconds from submit to callback. */
	double ms;
};

/* Set on a thread while it is inside vdo_query_index(). */
static _Thread_local unsigned int submitting;
static atomic_uint_least64_t callbacks_run;
static atomic_uint_least64_t callbacks_on_caller_stack;

/** query_done() - The callback of every test query: note where and when it ran, count it. */
static void query_done(struct vdo_index_query *query)
{
	struct test_query *tq = (struct test_query *) query;

	if (submitting > 0)
		atomic_fetch_add(&callbacks_on_caller_stack, 1);
	tq->thread = pthread_self();
	tq->answered_ns = dd_monotonic_ns();
	atomic_fetch_add(&callbacks_run, 1);
	/* Last: once the test sees the count, everything above is visible. */
	atomic_fetch_add(&tq->calls, 1);
}

/** make_query_name() - The name of a number. */
static inline void make_query_name(uint64_t number, struct dd_record_name *name)
{
	dd_record_name_of_block(&number, sizeof(number), name);
}

/** submit_query() - Start a query for @number with data @data. */
static inline void submit_query(struct vdo_dedupe_index *index, struct test_query *tq,
                                enum vdo_index_operation operation, uint64_t number, uint64_t data)
{
	memset(tq, 0, sizeof(*tq));
	make_query_name(number, &tq->query.name);
	memcpy(tq->query.new_data.data, &data, sizeof(data));
	tq->query.operation = operation;
	tq->query.callback = query_done;
	tq->query.context = tq;
	tq->submitted_ns = dd_monotonic_ns();
	submitting++;
	vdo_query_index(index, &tq->query);
	submitting--;
}

/** wait_answered() - Wait until @tq's callback has run; check it ran once, elsewhere. */
static inline struct answer wait_answered(struct test_query *tq)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;
	struct answer answer = { 0 };

	while (atomic_load(&tq->calls) == 0) {
		if (dd_monotonic_ns() > deadline)
			fail_msg("a query was not answered in %d s", WAIT_SECONDS);
		dd_sleep_ns(WAIT_POLL_NS);
	}
	assert_int_equal(atomic_load(&tq->calls), 1);
	assert_false(pthread_equal(tq->thread, pthread_self()));
	answer.status = tq->query.status;
	answer.found = tq->query.found;
	memcpy(&answer.old_data, tq->query.old_data.data, sizeof(answer.old_data));
	answer.ms = (double) (tq->answered_ns - tq->submitted_ns) / 1e6;
	return answer;
}

/** run_query() - One query, waited for. */
static inline struct answer run_query(struct vdo_dedupe_index *index,
                                      enum vdo_index_operation operation, uint64_t number,
                                      uint64_t data)
{
	struct test_query tq;

	submit_query(index, &tq, operation, number, data);
	return wait_answered(&tq);
}

/** wait_opened() - Wait until the index leaves the opening states; return where it went. */
static inline enum vdo_index_state wait_opened(struct vdo_dedupe_index *index)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;
	enum vdo_index_state state;

	while (((state = vdo_get_dedupe_index_state(index)) == VDO_INDEX_OPENING) ||
	       (state == VDO_INDEX_REBUILDING)) {
		if (dd_monotonic_ns() > deadline)
			fail_msg("the index did not open in %d s", WAIT_SECONDS);
		dd_sleep_ns(WAIT_POLL_NS);
	}
	return state;
}

/** assert_answer() - Check an answer's status, found flag and (if found) data. */
static inline void assert_answer(struct answer answer, enum vdo_index_status status, bool found,
                                 uint64_t old_data)
{
	assert_int_equal(answer.status, status);
	assert_int_equal(answer.found, found);
	if (found)
		assert_int_equal(answer.old_data, old_data);
}

#endif /* VDO_TEST_DEDUPE_QUERIES_H */
