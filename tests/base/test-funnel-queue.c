// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the funnel queue: order, emptiness and idleness, the transient state of a put that
 * has swapped the tail but not linked yet, and many producers against one consumer.
 *
 * The transient state is produced deterministically by doing the two halves of a put by hand
 * (white-box); the multi-threaded test checks counts and per-producer order, and never depends
 * on timing: the consumer simply polls until it has seen every entry.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "funnel-queue.h"
#include "memory-alloc.h"
#include "test-harness.h"

enum {
	SINGLE_COUNT = 1000,
	PRODUCER_COUNT = 4,
	ENTRIES_PER_PRODUCER = 200 * 1000,
};

struct item {
	struct dd_funnel_queue_entry entry;
	unsigned int producer;
	unsigned int sequence;
};

static struct item *item_of(struct dd_funnel_queue_entry *entry)
{
	return (struct item *) ((char *) entry - offsetof(struct item, entry));
}

static void assert_idle(struct dd_funnel_queue *queue)
{
	assert_true(dd_funnel_queue_is_empty(queue));
	assert_true(dd_funnel_queue_is_idle(queue));
	assert_null(dd_funnel_queue_poll(queue));
}

static void test_new_queue_is_idle(void **state)
{
	struct dd_funnel_queue queue;

	(void) state;
	dd_funnel_queue_initialize(&queue);
	assert_idle(&queue);
	assert_idle(&queue);
}

static void test_single_entry_comes_back(void **state)
{
	struct dd_funnel_queue queue;
	struct item item = { .sequence = 7 };

	(void) state;
	dd_funnel_queue_initialize(&queue);
	dd_funnel_queue_put(&queue, &item.entry);
	assert_false(dd_funnel_queue_is_empty(&queue));
	assert_false(dd_funnel_queue_is_idle(&queue));
	assert_ptr_equal(dd_funnel_queue_poll(&queue), &item.entry);
	assert_idle(&queue);
	/* A polled entry may be put again at once. */
	dd_funnel_queue_put(&queue, &item.entry);
	assert_ptr_equal(dd_funnel_queue_poll(&queue), &item.entry);
	assert_idle(&queue);
}

static void test_fifo_order(void **state)
{
	struct dd_funnel_queue queue;
	struct item *items;

	(void) state;
	assert_success(DD_ALLOCATE(SINGLE_COUNT, struct item, "items", &items));
	dd_funnel_queue_initialize(&queue);
	for (unsigned int i = 0; i < SINGLE_COUNT; i++) {
		items[i].sequence = i;
		dd_funnel_queue_put(&queue, &items[i].entry);
	}
	for (unsigned int i = 0; i < SINGLE_COUNT; i++) {
		struct dd_funnel_queue_entry *entry = dd_funnel_queue_poll(&queue);

		assert_non_null(entry);
		assert_int_equal(item_of(entry)->sequence, i);
	}
	assert_idle(&queue);
	dd_free(items);
}

/* Interleave puts and polls so that the stub leaves and rejoins the list many times. */
static void test_interleaved_put_and_poll(void **state)
{
	struct dd_funnel_queue queue;
	struct item items[3];
	unsigned int next_out = 0;
	unsigned int next_in = 0;

	(void) state;
	dd_funnel_queue_initialize(&queue);
	for (int round = 0; round < 100; round++) {
		/* Put two, take one: the queue holds at most three at a time. */
		for (int k = 0; k < 2 && next_in - next_out < 3; k++) {
			items[next_in % 3].sequence = next_in;
			dd_funnel_queue_put(&queue, &items[next_in % 3].entry);
			next_in++;
		}
		assert_int_equal(item_of(dd_funnel_queue_poll(&queue))->sequence, next_out++);
	}
	while (next_out < next_in)
		assert_int_equal(item_of(dd_funnel_queue_poll(&queue))->sequence, next_out++);
	assert_idle(&queue);
}

/*
 * Half a put, done by hand: swap the tail but do not link. The queue must report "nothing ready"
 * but not idle, and the entry must appear once the link is stored.
 */
static struct dd_funnel_queue_entry *begin_put(struct dd_funnel_queue *queue,
                                               struct dd_funnel_queue_entry *entry)
{
	atomic_store(&entry->next, NULL);
	return atomic_exchange(&queue->newest, entry);
}

static void finish_put(struct dd_funnel_queue_entry *previous, struct dd_funnel_queue_entry *entry)
{
	atomic_store(&previous->next, entry);
}

static void test_transient_state_on_empty_queue(void **state)
{
	struct dd_funnel_queue queue;
	struct dd_funnel_queue_entry *previous;
	struct item item;

	(void) state;
	dd_funnel_queue_initialize(&queue);
	previous = begin_put(&queue, &item.entry);
	assert_null(dd_funnel_queue_poll(&queue));
	assert_true(dd_funnel_queue_is_empty(&queue));
	assert_false(dd_funnel_queue_is_idle(&queue));
	finish_put(previous, &item.entry);
	assert_false(dd_funnel_queue_is_empty(&queue));
	assert_ptr_equal(dd_funnel_queue_poll(&queue), &item.entry);
	assert_idle(&queue);
}

static void test_transient_state_behind_last_entry(void **state)
{
	struct dd_funnel_queue queue;
	struct dd_funnel_queue_entry *previous;
	struct item first;
	struct item second;

	(void) state;
	dd_funnel_queue_initialize(&queue);
	dd_funnel_queue_put(&queue, &first.entry);
	previous = begin_put(&queue, &second.entry);
	/* The first entry cannot be detached while its successor's link is pending. */
	assert_null(dd_funnel_queue_poll(&queue));
	assert_true(dd_funnel_queue_is_empty(&queue));
	assert_false(dd_funnel_queue_is_idle(&queue));
	finish_put(previous, &second.entry);
	assert_ptr_equal(dd_funnel_queue_poll(&queue), &first.entry);
	assert_ptr_equal(dd_funnel_queue_poll(&queue), &second.entry);
	assert_idle(&queue);
}

struct producer {
	pthread_t thread;
	struct dd_funnel_queue *queue;
	struct item *items;
	unsigned int id;
	atomic_bool *go;
};

static void *produce(void *argument)
{
	struct producer *producer = argument;

	while (!atomic_load(producer->go))
		sched_yield();
	for (unsigned int i = 0; i < ENTRIES_PER_PRODUCER; i++) {
		producer->items[i].producer = producer->id;
		producer->items[i].sequence = i;
		dd_funnel_queue_put(producer->queue, &producer->items[i].entry);
	}
	return NULL;
}

/* Take one entry, polling until one is ready; check it against its producer's order. */
static void consume_one(struct dd_funnel_queue *queue, unsigned int *next_sequence)
{
	struct dd_funnel_queue_entry *entry;
	struct item *item;

	while ((entry = dd_funnel_queue_poll(queue)) == NULL)
		sched_yield();
	item = item_of(entry);
	assert_true(item->producer < PRODUCER_COUNT);
	assert_int_equal(item->sequence, next_sequence[item->producer]);
	next_sequence[item->producer]++;
}

static void test_many_producers_one_consumer(void **state)
{
	struct producer producers[PRODUCER_COUNT];
	unsigned int next_sequence[PRODUCER_COUNT] = { 0 };
	struct dd_funnel_queue queue;
	atomic_bool go = false;
	struct item *items;

	(void) state;
	assert_success(
	    DD_ALLOCATE(PRODUCER_COUNT * ENTRIES_PER_PRODUCER, struct item, "items", &items));
	dd_funnel_queue_initialize(&queue);
	for (unsigned int p = 0; p < PRODUCER_COUNT; p++) {
		producers[p] = (struct producer){ .queue = &queue,
			                          .items = &items[p * ENTRIES_PER_PRODUCER],
			                          .id = p,
			                          .go = &go };
		assert_int_equal(pthread_create(&producers[p].thread, NULL, produce, &producers[p]),
		                 0);
	}
	atomic_store(&go, true);
	for (unsigned int n = 0; n < PRODUCER_COUNT * ENTRIES_PER_PRODUCER; n++)
		consume_one(&queue, next_sequence);
	for (unsigned int p = 0; p < PRODUCER_COUNT; p++) {
		assert_int_equal(pthread_join(producers[p].thread, NULL), 0);
		assert_int_equal(next_sequence[p], ENTRIES_PER_PRODUCER);
	}
	assert_idle(&queue);
	dd_free(items);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_queue_is_idle),
		cmocka_unit_test(test_single_entry_comes_back),
		cmocka_unit_test(test_fifo_order),
		cmocka_unit_test(test_interleaved_put_and_poll),
		cmocka_unit_test(test_transient_state_on_empty_queue),
		cmocka_unit_test(test_transient_state_behind_last_entry),
		cmocka_unit_test(test_many_producers_one_consumer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
