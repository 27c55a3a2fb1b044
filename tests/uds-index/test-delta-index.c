// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the delta index.
 *
 * The mutable index is driven with random sequences of puts, gets, value changes and removals,
 * including forced collisions (several names with the same list and key), and every result is
 * checked against a reference model: per list, the entries in the order the delta index keeps
 * them (by key; for equal keys the default entry first, then collisions newest first). Full
 * walks of every list compare the two completely. The same model checks immutable pages,
 * save/restore across zone counts, and the state left behind by overflows.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "buffered-io.h"
#include "delta-index.h"
#include "memory-alloc.h"
#include "test-harness.h"
#include "test-random.h"

/* ------------------------------------------------------------------------------------------ */
/* The reference model                                                                         */
/* ------------------------------------------------------------------------------------------ */

struct model_entry {
	uint32_t key;
	uint32_t value;
	bool collision;
	struct dd_record_name name;
};

struct model_list {
	struct model_entry *entries;
	uint32_t count;
	uint32_t capacity;
};

struct model {
	struct model_list *lists;
	uint32_t list_count;
	uint64_t records;
	uint64_t collisions;
};

static void make_model(struct model *model, uint32_t list_count)
{
	model->lists = calloc(list_count, sizeof(*model->lists));
	assert_non_null(model->lists);
	model->list_count = list_count;
	model->records = 0;
	model->collisions = 0;
}

static void free_model(struct model *model)
{
	for (uint32_t i = 0; i < model->list_count; i++)
		free(model->lists[i].entries);
	free(model->lists);
}

static void model_insert(struct model *model, uint32_t list_number, uint32_t position,
                         const struct model_entry *entry)
{
	struct model_list *list = &model->lists[list_number];

	if (list->count == list->capacity) {
		list->capacity = list->capacity * 2 + 8;
		list->entries = realloc(list->entries, list->capacity * sizeof(*list->entries));
		assert_non_null(list->entries);
	}
	memmove(&list->entries[position + 1], &list->entries[position],
	        (list->count - position) * sizeof(*list->entries));
	list->entries[position] = *entry;
	list->count++;
	model->records++;
	model->collisions += entry->collision ? 1 : 0;
}

static void model_remove(struct model *model, uint32_t list_number, uint32_t position)
{
	struct model_list *list = &model->lists[list_number];
	bool was_default = !list->entries[position].collision;

	model->records--;
	model->collisions -= was_default ? 0 : 1;
	memmove(&list->entries[position], &list->entries[position + 1],
	        (list->count - position - 1) * sizeof(*list->entries));
	list->count--;
	/* A collision that follows a removed default entry becomes the default entry. */
	if (was_default && (position < list->count) && list->entries[position].collision &&
	    ((position == 0) || (list->entries[position - 1].key != list->entries[position].key))) {
		list->entries[position].collision = false;
		model->collisions--;
	}
}

/* The position of the first entry with a key >= @key. */
static uint32_t model_lower_bound(const struct model_list *list, uint32_t key)
{
	uint32_t position = 0;

	while ((position < list->count) && (list->entries[position].key < key))
		position++;
	return position;
}

/* The position of the entry for @name with @key, or UINT32_MAX. */
static uint32_t model_find(const struct model_list *list, uint32_t key,
                           const struct dd_record_name *name)
{
	for (uint32_t p = model_lower_bound(list, key);
	     (p < list->count) && (list->entries[p].key == key); p++) {
		if (memcmp(&list->entries[p].name, name, sizeof(*name)) == 0)
			return p;
	}
	return UINT32_MAX;
}

/* ------------------------------------------------------------------------------------------ */
/* Checking the index against the model                                                        */
/* ------------------------------------------------------------------------------------------ */

static void check_list(const struct uds_delta_index *index, const struct model *model,
                       uint32_t list_number, uint32_t first_list)
{
	const struct model_list *list = &model->lists[list_number];
	struct uds_delta_entry entry;

	assert_success(uds_start_delta_search(index, list_number - first_list, 0, &entry));
	for (uint32_t p = 0; p < list->count; p++) {
		const struct model_entry *expected = &list->entries[p];

		assert_success(uds_next_delta_entry(&entry));
		assert_false(entry.at_end);
		assert_int_equal(entry.key, expected->key);
		assert_int_equal(uds_get_delta_entry_value(&entry), expected->value);
		assert_int_equal(entry.is_collision, expected->collision);
		if (expected->collision) {
			struct dd_record_name name;

			assert_success(uds_get_delta_entry_collision(&entry, &name));
			assert_memory_equal(&name, &expected->name, sizeof(name));
		}
	}
	assert_success(uds_next_delta_entry(&entry));
	assert_true(entry.at_end);
}

static void check_index(const struct uds_delta_index *index, const struct model *model)
{
	struct uds_delta_index_stats stats;

	for (uint32_t i = 0; i < model->list_count; i++)
		check_list(index, model, i, 0);
	/* Each zone's count of list bits matches its lists, which lie in order, apart. */
	for (unsigned int z = 0; index->is_mutable && (z < index->zone_count); z++) {
		const struct uds_delta_zone *zone = &index->zones[z];
		uint64_t bits = 0;

		for (uint32_t i = 1; i <= zone->list_count + 1; i++) {
			assert_true(zone->lists[i - 1].start + zone->lists[i - 1].size <=
			            zone->lists[i].start);
			bits += zone->lists[i].size;
		}
		assert_int_equal(zone->used_bits, bits);
	}
	uds_get_delta_index_stats(index, &stats);
	assert_int_equal(stats.record_count, model->records);
	assert_int_equal(stats.collision_count, model->collisions);
	assert_int_equal(stats.list_count, model->list_count);
}

/* ------------------------------------------------------------------------------------------ */
/* Operations on index and model together                                                      */
/* ------------------------------------------------------------------------------------------ */

struct harness {
	struct uds_delta_index_params params;
	struct uds_delta_index *index;
	struct model model;
	uint32_t key_range;
	uint64_t overflows;
};

static void make_harness(struct harness *harness, const struct uds_delta_index_params *params,
                         uint32_t key_range)
{
	harness->params = *params;
	assert_success(uds_make_delta_index(params, &harness->index));
	make_model(&harness->model, params->list_count);
	harness->key_range = key_range;
	harness->overflows = 0;
}

static void free_harness(struct harness *harness)
{
	uds_free_delta_index(harness->index);
	free_model(&harness->model);
}

static uint32_t random_value(const struct harness *harness)
{
	return (uint32_t) (next_random() & ((1ULL << harness->params.payload_bits) - 1));
}

/* Look a name up in both and check they agree; returns the model position or UINT32_MAX. */
static uint32_t lookup(struct harness *harness, uint32_t list_number, uint32_t key,
                       const struct dd_record_name *name, struct uds_delta_entry *entry)
{
	const struct model_list *list = &harness->model.lists[list_number];
	uint32_t position = model_find(list, key, name);
	uint32_t bound = model_lower_bound(list, key);

	assert_success(uds_get_delta_entry(harness->index, list_number, key, name, entry));
	if (bound == list->count) {
		assert_true(entry->at_end);
		return position;
	}
	assert_false(entry->at_end);
	assert_int_equal(entry->key, list->entries[bound].key);
	if ((position != UINT32_MAX) && list->entries[position].collision) {
		assert_true(entry->is_collision);
		assert_int_equal(uds_get_delta_entry_value(entry), list->entries[position].value);
	} else {
		/* Not found among collisions: the search yields the default entry. */
		assert_false(entry->is_collision);
		assert_int_equal(uds_get_delta_entry_value(entry), list->entries[bound].value);
	}
	return position;
}

/* Insert or update @name; returns the result of the put (DD_OVERFLOW is allowed). */
static int put_name(struct harness *harness, uint32_t list_number, uint32_t key,
                    const struct dd_record_name *name, uint32_t value)
{
	struct model_list *list = &harness->model.lists[list_number];
	struct uds_delta_entry entry;
	uint32_t position = lookup(harness, list_number, key, name, &entry);
	struct model_entry added = { .key = key, .value = value, .name = *name };
	uint32_t insert_at;
	int result;

	if (position != UINT32_MAX) {
		assert_success(uds_set_delta_entry_value(&entry, value));
		list->entries[position].value = value;
		return DD_SUCCESS;
	}
	if (!entry.at_end && (entry.key == key)) {
		added.collision = true;
		insert_at = model_lower_bound(list, key) + 1;
		result = uds_put_delta_entry(&entry, key, value, name);
	} else {
		insert_at = model_lower_bound(list, key);
		result = uds_put_delta_entry(&entry, key, value, NULL);
	}
	if (result == DD_OVERFLOW) {
		harness->overflows++;
		return result;
	}
	assert_success(result);
	assert_int_equal(entry.key, key);
	assert_int_equal(entry.is_collision, added.collision);
	assert_int_equal(uds_get_delta_entry_value(&entry), value);
	model_insert(&harness->model, list_number, insert_at, &added);
	return DD_SUCCESS;
}

static void remove_at(struct harness *harness, uint32_t list_number, uint32_t position)
{
	struct model_list *list = &harness->model.lists[list_number];
	struct model_entry victim = list->entries[position];
	struct uds_delta_entry entry;

	assert_int_equal(lookup(harness, list_number, victim.key, &victim.name, &entry), position);
	assert_success(uds_remove_delta_entry(&entry));
	model_remove(&harness->model, list_number, position);
	/* The entry now refers to whatever followed the removed one. */
	if (position < list->count) {
		assert_false(entry.at_end);
		assert_int_equal(entry.key, list->entries[position].key);
	} else {
		assert_true(entry.at_end);
	}
}

static uint32_t random_key(const struct harness *harness)
{
	return random_below(harness->key_range);
}

/* One random operation. Returns the put's result for puts, DD_SUCCESS otherwise. */
static int random_operation(struct harness *harness, unsigned int put_weight)
{
	uint32_t list_number = random_below(harness->params.list_count);
	struct model_list *list = &harness->model.lists[list_number];
	unsigned int choice = random_below(100);
	struct dd_record_name name;
	struct uds_delta_entry entry;

	if (choice < put_weight) {
		uint32_t key = random_key(harness);

		/* Sometimes reuse an existing key with a new name to force a collision. */
		if ((list->count > 0) && (random_below(8) == 0))
			key = list->entries[random_below(list->count)].key;
		random_name(&name);
		return put_name(harness, list_number, key, &name, random_value(harness));
	}
	if (list->count == 0) {
		random_name(&name);
		lookup(harness, list_number, random_key(harness), &name, &entry);
		return DD_SUCCESS;
	}
	uint32_t position = random_below(list->count);

	if (choice < put_weight + 15) {
		remove_at(harness, list_number, position);
	} else if (choice < put_weight + 30) {
		struct model_entry *target = &list->entries[position];

		put_name(harness, list_number, target->key, &target->name, random_value(harness));
	} else {
		random_name(&name);
		lookup(harness, list_number, list->entries[position].key, &name, &entry);
		lookup(harness, list_number, random_key(harness), &name, &entry);
	}
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Randomized sequences                                                                        */
/* ------------------------------------------------------------------------------------------ */

struct shape {
	unsigned int zones;
	uint32_t lists;
	uint32_t mean_delta;
	uint32_t payload_bits;
	uint32_t entries_per_list;
};

static void run_random_sequence(const struct shape *shape, unsigned int operations)
{
	struct uds_delta_index_params params = {
		.zone_count = shape->zones,
		.list_count = shape->lists,
		.mean_delta = shape->mean_delta,
		.payload_bits = shape->payload_bits,
		.tag = 'm',
	};
	uint64_t expected_bits =
	    uds_compute_delta_index_bits((uint64_t) shape->lists * shape->entries_per_list,
	                                 shape->mean_delta, shape->payload_bits);
	struct harness harness;

	/* Room for twice the expected entries plus collisions, so overflow is not expected. */
	params.memory_size = expected_bits / 4 + shape->lists * 64 + 4096;
	make_harness(&harness, &params, shape->mean_delta * shape->entries_per_list);
	uint64_t target = (uint64_t) shape->lists * shape->entries_per_list;

	for (unsigned int i = 0; i < operations; i++) {
		/* Grow towards the target size, then hover around it. */
		assert_success(
		    random_operation(&harness, (harness.model.records < target) ? 60 : 15));
		if ((i % 4096) == 4095)
			check_index(harness.index, &harness.model);
	}
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

static void test_random_sequences(void **state)
{
	static const struct shape shapes[] = {
		{ .zones = 1,
		  .lists = 1,
		  .mean_delta = 4096,
		  .payload_bits = 10,
		  .entries_per_list = 300 },
		{ .zones = 1,
		  .lists = 64,
		  .mean_delta = 4096,
		  .payload_bits = 10,
		  .entries_per_list = 256 },
		{ .zones = 3,
		  .lists = 100,
		  .mean_delta = 256,
		  .payload_bits = 6,
		  .entries_per_list = 64 },
		{ .zones = 7,
		  .lists = 50,
		  .mean_delta = 2,
		  .payload_bits = 1,
		  .entries_per_list = 40 },
		{ .zones = 2,
		  .lists = 17,
		  .mean_delta = 1,
		  .payload_bits = 32,
		  .entries_per_list = 30 },
		{ .zones = 4,
		  .lists = 256,
		  .mean_delta = 100000,
		  .payload_bits = 20,
		  .entries_per_list = 20 },
		{ .zones = 16,
		  .lists = 1000,
		  .mean_delta = 64,
		  .payload_bits = 8,
		  .entries_per_list = 10 },
	};

	(void) state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		random_state = 1000 + i;
		run_random_sequence(&shapes[i], 40000);
	}
}

/* Look up the largest ordinary key of a list, which starts from the remembered position. */
static void check_largest_key(struct harness *harness, uint32_t list_number)
{
	const struct model_list *list = &harness->model.lists[list_number];
	struct uds_delta_entry entry;

	for (uint32_t p = list->count; p-- > 0;) {
		if (!list->entries[p].collision) {
			assert_int_equal(lookup(harness, list_number, list->entries[p].key,
			                        &list->entries[p].name, &entry),
			                 p);
			return;
		}
	}
}

/*
 * Walk a list with uds_next_delta_entry() after a search has remembered a position in its
 * middle, removing (@remove) or inserting entries in its first quarter. These changes happen
 * before the remembered position, so it must be moved or dropped. (Few enough changes that the
 * stale position would still lie within the list and be used.)
 */
static void walk_and_change(struct harness *harness, uint32_t list_number, bool remove)
{
	struct uds_delta_entry entry;
	struct dd_record_name name;
	uint32_t position = 0;
	uint32_t quarter = harness->model.lists[list_number].count / 4;

	random_name(&name);
	lookup(harness, list_number, 4096 * 100, &name, &entry);
	assert_success(uds_start_delta_search(harness->index, list_number, 0, &entry));
	assert_success(uds_next_delta_entry(&entry));
	while (!entry.at_end) {
		uint32_t value = uds_get_delta_entry_value(&entry);
		uint32_t previous = entry.key - entry.delta;

		if (position >= quarter)
			break;
		if (remove && ((value % 3) == 0)) {
			assert_success(uds_remove_delta_entry(&entry));
			model_remove(&harness->model, list_number, position);
			continue;
		}
		if (!remove && (value % 3 == 1) && !entry.is_collision &&
		    (entry.key > previous + 1)) {
			struct model_entry added = { .key = entry.key - 1, .value = 7 };

			random_name(&added.name);
			assert_success(uds_put_delta_entry(&entry, added.key, 7, NULL));
			model_insert(&harness->model, list_number, position, &added);
			assert_success(uds_next_delta_entry(&entry));
			position++;
		}
		assert_success(uds_next_delta_entry(&entry));
		position++;
	}
	check_largest_key(harness, list_number);
}

/* Change lists while walking them, as expiring old entries does. */
static void test_change_while_walking(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 32,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 1 << 20,
		.tag = 'm',
	};
	struct harness harness;

	(void) state;
	random_state = 404;
	make_harness(&harness, &params, 4096 * 200);
	for (unsigned int i = 0; i < 8000; i++)
		assert_success(random_operation(&harness, 90));
	for (uint32_t list_number = 0; list_number < params.list_count; list_number++) {
		walk_and_change(&harness, list_number, true);
		walk_and_change(&harness, list_number, false);
	}
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

/* Fill past the zones' capacity: overflows must be reported and change nothing. */
static void test_zone_overflow(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 64,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 2 * 64 * 1024,
		.tag = 'm',
	};
	struct uds_delta_index_stats stats;
	struct harness harness;
	unsigned int i;

	(void) state;
	random_state = 77;
	make_harness(&harness, &params, 4096 * 1024);
	for (i = 0; (i < 200000) && (harness.overflows < 200); i++) {
		int result = random_operation(&harness, 95);

		assert_true((result == DD_SUCCESS) || (result == DD_OVERFLOW));
	}
	assert_true(harness.overflows >= 200);
	check_index(harness.index, &harness.model);
	uds_get_delta_index_stats(harness.index, &stats);
	assert_int_equal(stats.overflow_count, harness.overflows);
	assert_true(stats.rebalance_count > 0);
	/* After an overflow the index keeps working: remove some, add some. */
	for (i = 0; i < 20000; i++) {
		int result = random_operation(&harness, 40);

		assert_true((result == DD_SUCCESS) || (result == DD_OVERFLOW));
	}
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

/* A single list can only grow to UDS_DELTA_LIST_MAX_BITS bits. */
static void test_list_overflow(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = 1,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 1 << 20,
		.tag = 'm',
	};
	struct harness harness;
	struct dd_record_name name;
	int result = DD_SUCCESS;
	unsigned int puts;

	(void) state;
	random_state = 5;
	make_harness(&harness, &params, 4096 * 4000);
	for (puts = 0; (puts < 10000) && (result == DD_SUCCESS); puts++) {
		random_name(&name);
		result =
		    put_name(&harness, 0, random_below(4096 * 4000), &name, random_value(&harness));
	}
	assert_int_equal(result, DD_OVERFLOW);
	assert_true(harness.index->zones[0].lists[1].size <= UDS_DELTA_LIST_MAX_BITS);
	assert_true(harness.index->zones[0].lists[1].size > UDS_DELTA_LIST_MAX_BITS - 200);
	check_index(harness.index, &harness.model);
	/* Gaps too large for a list are refused, not wrapped. */
	free_harness(&harness);
}

static void test_huge_delta(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = 2,
		.mean_delta = 16,
		.payload_bits = 4,
		.memory_size = 1 << 20,
		.tag = 'm',
	};
	struct harness harness;
	struct dd_record_name name;

	(void) state;
	make_harness(&harness, &params, 16);
	random_name(&name);
	/* A delta of 2^32 - 1 at mean 16 needs hundreds of millions of unary bits. */
	assert_int_equal(put_name(&harness, 0, UINT32_MAX, &name, 3), DD_OVERFLOW);
	/* A delta of a few thousand needs a long unary code that spans several words. */
	assert_success(put_name(&harness, 0, 3000, &name, 3));
	random_name(&name);
	assert_success(put_name(&harness, 0, 1500, &name, 5));
	random_name(&name);
	assert_success(put_name(&harness, 0, 4000, &name, 7));
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

static void test_bad_arguments(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 4,
		.list_count = 3,
		.mean_delta = 16,
		.payload_bits = 4,
		.memory_size = 1 << 20,
		.tag = 'm',
	};
	struct uds_delta_index *index = NULL;
	struct uds_delta_entry entry;
	struct dd_record_name name = { { 0 } };

	(void) state;
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
	params.list_count = 9;
	params.zone_count = 4; /* 3 lists per zone would leave the fourth zone none */
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
	params.list_count = 13;
	params.payload_bits = 33;
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
	params.payload_bits = 4;
	params.mean_delta = 0;
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
	params.mean_delta = 16;
	assert_success(uds_make_delta_index(&params, &index));
	assert_int_equal(uds_get_delta_entry(index, 13, 0, NULL, &entry), DD_INVALID_ARGUMENT);
	assert_success(uds_get_delta_entry(index, 12, 5, NULL, &entry));
	assert_true(entry.at_end);
	assert_int_equal(uds_put_delta_entry(&entry, 5, 16, NULL), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_set_delta_entry_value(&entry, 1), DD_BAD_STATE);
	assert_int_equal(uds_remove_delta_entry(&entry), DD_BAD_STATE);
	assert_int_equal(uds_put_delta_entry(&entry, 5, 1, &name), DD_INVALID_ARGUMENT);
	assert_success(uds_put_delta_entry(&entry, 5, 1, NULL));
	assert_int_equal(uds_get_delta_entry_collision(&entry, &name), DD_BAD_STATE);
	assert_int_equal(uds_set_delta_entry_value(&entry, 16), DD_INVALID_ARGUMENT);
	/* A key that belongs elsewhere in the list is refused. */
	assert_success(uds_get_delta_entry(index, 12, 3, NULL, &entry));
	assert_int_equal(uds_put_delta_entry(&entry, 9, 1, NULL), DD_INVALID_ARGUMENT);
	assert_success(uds_put_delta_entry(&entry, 5, 2, &name));
	assert_int_equal(uds_put_delta_entry(&entry, 5, 2, &name), DD_DUPLICATE_NAME);
	uds_free_delta_index(index);
	uds_free_delta_index(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Immutable pages                                                                             */
/* ------------------------------------------------------------------------------------------ */

enum {
	CHAPTER_LISTS = 256,
	NONCE = 0x1234567890ABCDEFULL,
	/* The delta index's zone allocation unit. */
	ZONE_UNIT = 64 * 1024
};

/* Fill a chapter-shaped index; every @collision_every-th record collides on purpose (0: never). */
static void fill_chapter(struct harness *harness, unsigned int records,
                         unsigned int collision_every)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = CHAPTER_LISTS,
		.mean_delta = 256,
		.payload_bits = 6,
		.memory_size = 1 << 20,
		.tag = 'c',
	};
	struct dd_record_name name;

	make_harness(harness, &params, 256 * 64);
	for (unsigned int i = 0; i < records; i++) {
		uint32_t list = random_below(CHAPTER_LISTS);
		uint32_t key = random_key(harness);

		if ((collision_every > 0) && ((i % collision_every) == 0) &&
		    (harness->model.lists[list].count > 0))
			key = harness->model.lists[list].entries[0].key;
		random_name(&name);
		assert_success(put_name(harness, list, key, &name, random_value(harness)));
	}
}

/* Pack the whole chapter into pages of @page_size; returns the page count. */
static unsigned int pack_chapter(const struct harness *harness, uint8_t *pages, size_t page_size,
                                 unsigned int max_pages, uint32_t *first_lists)
{
	uint32_t first = 0;
	unsigned int page = 0;

	while (first < CHAPTER_LISTS) {
		uint32_t count;

		assert_true(page < max_pages);
		assert_success(uds_pack_delta_page(harness->index, NONCE, 42, first,
		                                   pages + page * page_size, page_size, &count));
		assert_true(count > 0);
		first_lists[page++] = first;
		first += count;
	}
	return page;
}

static void check_page_against_model(const struct harness *harness, uint8_t *memory,
                                     size_t page_size, uint32_t first_list)
{
	struct uds_delta_page page;
	struct uds_delta_entry entry;
	struct dd_record_name name;

	assert_success(uds_open_delta_page(&page, NONCE, 256, 6, memory, page_size));
	assert_int_equal(page.lowest_list_number, first_list);
	assert_int_equal(page.virtual_chapter_number, 42);
	for (uint32_t list = page.lowest_list_number; list <= page.highest_list_number; list++) {
		const struct model_list *expected = &harness->model.lists[list];

		check_list(&page.index, &harness->model, list, first_list);
		for (uint32_t p = 0; p < expected->count; p++) {
			const struct model_entry *record = &expected->entries[p];

			assert_success(uds_get_delta_entry(&page.index, list - first_list,
			                                   record->key, &record->name, &entry));
			assert_int_equal(entry.key, record->key);
			assert_int_equal(uds_get_delta_entry_value(&entry), record->value);
			assert_int_equal(entry.is_collision, record->collision);
		}
		random_name(&name);
		assert_success(uds_get_delta_entry(&page.index, list - first_list,
		                                   random_key(harness), &name, &entry));
	}
	/* Pages cannot be changed. */
	assert_success(uds_get_delta_entry(&page.index, 0, 0, NULL, &entry));
	assert_int_equal(uds_put_delta_entry(&entry, 0, 0, NULL), DD_BAD_STATE);
	assert_int_equal(uds_remember_delta_offset(&entry), DD_BAD_STATE);
}

static void test_pages_round_trip(void **state)
{
	static const size_t page_sizes[] = { 1024, 4096, 32768 };
	struct harness harness;

	(void) state;
	random_state = 31;
	fill_chapter(&harness, 64 * CHAPTER_LISTS, 0);
	for (size_t s = 0; s < sizeof(page_sizes) / sizeof(page_sizes[0]); s++) {
		size_t page_size = page_sizes[s];
		unsigned int max_pages = 256;
		uint8_t *pages = calloc(max_pages, page_size);
		uint32_t first_lists[256];
		unsigned int count =
		    pack_chapter(&harness, pages, page_size, max_pages, first_lists);
		uint32_t predicted =
		    uds_get_delta_page_count(64 * CHAPTER_LISTS, CHAPTER_LISTS, 256, 6, page_size);

		/* Natural collisions only here, so the size estimate must hold. */
		assert_true(count <= predicted);
		for (unsigned int p = 0; p < count; p++)
			check_page_against_model(&harness, pages + p * page_size, page_size,
			                         first_lists[p]);
		free(pages);
	}
	free_harness(&harness);
}

static void test_page_too_small(void **state)
{
	struct harness harness;
	uint8_t page[128];
	uint32_t count;

	(void) state;
	random_state = 8;
	fill_chapter(&harness, 8 * CHAPTER_LISTS, 50);
	/* Fill list 0 beyond what a 128-byte page holds. */
	for (int i = 0; i < 60; i++) {
		struct dd_record_name name;

		random_name(&name);
		assert_success(put_name(&harness, 0, random_key(&harness), &name, 1));
	}
	assert_int_equal(
	    uds_pack_delta_page(harness.index, NONCE, 1, 0, page, sizeof(page), &count),
	    DD_OVERFLOW);
	assert_int_equal(uds_pack_delta_page(harness.index, NONCE, 1, 0, page, 64, &count),
	                 DD_INVALID_ARGUMENT);
	assert_success(uds_pack_delta_page(harness.index, NONCE, 1, CHAPTER_LISTS, page,
	                                   sizeof(page), &count));
	assert_int_equal(count, 0);
	free_harness(&harness);
}

/* Every single-bit flip anywhere in a page is detected when the page is opened. */
static void test_page_bit_flips(void **state)
{
	enum {
		PAGE_SIZE = 4096
	};
	struct harness harness;
	struct uds_delta_page page;
	uint8_t *pages = calloc(64, PAGE_SIZE);
	uint32_t first_lists[64];

	(void) state;
	random_state = 99;
	fill_chapter(&harness, 16 * CHAPTER_LISTS, 50);
	pack_chapter(&harness, pages, PAGE_SIZE, 64, first_lists);
	for (unsigned int bit = 0; bit < PAGE_SIZE * 8; bit++) {
		pages[bit / 8] ^= (uint8_t) (1 << (bit % 8));
		assert_int_not_equal(uds_open_delta_page(&page, NONCE, 256, 6, pages, PAGE_SIZE),
		                     DD_SUCCESS);
		pages[bit / 8] ^= (uint8_t) (1 << (bit % 8));
	}
	check_page_against_model(&harness, pages, PAGE_SIZE, first_lists[0]);
	free(pages);
	free_harness(&harness);
}

/* Recompute the checksum of a page after a deliberate change, as a buggy writer would. */
static void reseal_page(uint8_t *memory, size_t size)
{
	uint64_t seed = XXH3_64bits(memory, 32);
	uint64_t checksum = XXH3_64bits_withSeed(memory + 40, size - 40, seed);

	for (int i = 0; i < 8; i++)
		memory[32 + i] = (uint8_t) (checksum >> (8 * i));
}

static void set_bits(uint8_t *memory, uint64_t offset, unsigned int bits, uint32_t value)
{
	for (unsigned int i = 0; i < bits; i++) {
		uint64_t bit = offset + i;

		memory[bit / 8] &= (uint8_t) ~(1 << (bit % 8));
		memory[bit / 8] |= (uint8_t) (((value >> i) & 1) << (bit % 8));
	}
}

/* Structurally bad pages are refused even when their checksum matches. */
static void test_page_structure_checks(void **state)
{
	enum {
		PAGE_SIZE = 4096,
		OFFSETS = 40 * 8,
		OFFSET_BITS = 19
	};
	struct harness harness;
	struct uds_delta_page page;
	uint8_t *pages = calloc(64, PAGE_SIZE);
	uint8_t *copy = malloc(PAGE_SIZE);
	uint32_t first_lists[64];
	uint32_t list_count;

	(void) state;
	random_state = 3;
	fill_chapter(&harness, 16 * CHAPTER_LISTS, 50);
	pack_chapter(&harness, pages, PAGE_SIZE, 64, first_lists);
	list_count = pages[6] | (pages[7] << 8);
	assert_true(list_count > 2);

	/* Wrong nonce, wrong coding, wrong magic, wrong version. */
	assert_int_equal(uds_open_delta_page(&page, NONCE + 1, 256, 6, pages, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 512, 6, pages, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 7, pages, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	memcpy(copy, pages, PAGE_SIZE);
	copy[0] = 'X';
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE), DD_BAD_MAGIC);
	memcpy(copy, pages, PAGE_SIZE);
	copy[4] = 9;
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_UNSUPPORTED_VERSION);
	/* Lists out of order. */
	memcpy(copy, pages, PAGE_SIZE);
	set_bits(copy, OFFSETS + 2 * OFFSET_BITS, OFFSET_BITS, 0);
	reseal_page(copy, PAGE_SIZE);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	/* First list not right after the offset table. */
	memcpy(copy, pages, PAGE_SIZE);
	set_bits(copy, OFFSETS, OFFSET_BITS, 5000);
	reseal_page(copy, PAGE_SIZE);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	/* Last list running into the guard bytes. */
	memcpy(copy, pages, PAGE_SIZE);
	set_bits(copy, OFFSETS + list_count * OFFSET_BITS, OFFSET_BITS, PAGE_SIZE * 8 - 8);
	reseal_page(copy, PAGE_SIZE);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	/* Damaged guard bytes. */
	memcpy(copy, pages, PAGE_SIZE);
	copy[PAGE_SIZE - 1] = 0x7F;
	reseal_page(copy, PAGE_SIZE);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	/* More lists than the page could describe. */
	memcpy(copy, pages, PAGE_SIZE);
	copy[6] = 0xFF;
	copy[7] = 0xFF;
	reseal_page(copy, PAGE_SIZE);
	assert_int_equal(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE),
	                 DD_CORRUPT_DATA);
	/* Garbage list bits behind a valid header: searches fail cleanly, never crash. */
	memcpy(copy, pages, PAGE_SIZE);
	for (uint32_t b = OFFSETS + (list_count + 1) * OFFSET_BITS; b < (PAGE_SIZE - 8) * 8; b++)
		set_bits(copy, b, 1, (uint32_t) next_random() & 1);
	reseal_page(copy, PAGE_SIZE);
	assert_success(uds_open_delta_page(&page, NONCE, 256, 6, copy, PAGE_SIZE));
	for (uint32_t list = 0; list < list_count; list++) {
		struct uds_delta_entry entry;
		int result = uds_start_delta_search(&page.index, list, 0, &entry);

		while ((result == DD_SUCCESS) && !entry.at_end)
			result = uds_next_delta_entry(&entry);
		assert_true((result == DD_SUCCESS) || (result == DD_CORRUPT_DATA));
	}
	free(copy);
	free(pages);
	free_harness(&harness);
}

/* ------------------------------------------------------------------------------------------ */
/* Save and restore                                                                            */
/* ------------------------------------------------------------------------------------------ */

struct saved {
	int fd;
	size_t region;
	unsigned int zones;
};

static void save_index(const struct uds_delta_index *index, struct saved *saved)
{
	saved->fd = memfd_create("delta-save", 0);
	assert_true(saved->fd >= 0);
	saved->zones = index->zone_count;
	saved->region = dd_buffered_stream_size(
	    uds_compute_delta_save_bytes(index->lists_per_zone, index->zones[0].size));
	for (unsigned int z = 0; z < index->zone_count; z++) {
		struct dd_buffered_writer *writer;

		assert_success(dd_make_buffered_writer(saved->fd, (off_t) (z * saved->region),
		                                       saved->region, NONCE + z, &writer));
		assert_success(uds_save_delta_zone(index, z, writer));
		assert_success(dd_finish_buffered_writer(writer, false));
		dd_free_buffered_writer(writer);
	}
}

static int restore_index(struct uds_delta_index *index, const struct saved *saved,
                         unsigned int zones)
{
	struct dd_buffered_reader *readers[UDS_DELTA_MAX_ZONES] = { NULL };
	unsigned int opened;
	int result = DD_SUCCESS;

	/* A reader checks its first block when it is made: a missing stream fails here. */
	for (opened = 0; (opened < zones) && (result == DD_SUCCESS); opened++)
		result = dd_make_buffered_reader(saved->fd, (off_t) (opened * saved->region),
		                                 saved->region, NONCE + opened, &readers[opened]);
	if (result == DD_SUCCESS)
		result = uds_restore_delta_index(index, readers, zones);
	else
		uds_reset_delta_index(index);
	for (unsigned int z = 0; z < zones; z++)
		dd_free_buffered_reader(readers[z]);
	return result;
}

static void assert_empty(const struct uds_delta_index *index)
{
	struct uds_delta_index_stats stats;

	uds_get_delta_index_stats(index, &stats);
	assert_int_equal(stats.record_count, 0);
	assert_int_equal(stats.used_bits, 0);
}

static void test_save_restore_across_zone_counts(void **state)
{
	static const unsigned int zone_counts[] = { 1, 2, 3, 5, 8 };
	struct uds_delta_index_params params = {
		.zone_count = 3,
		.list_count = 240,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 3 << 20,
		.tag = 'm',
	};
	struct harness harness;
	struct saved saved;

	(void) state;
	random_state = 12;
	make_harness(&harness, &params, 4096 * 256);
	for (unsigned int i = 0; i < 60000; i++)
		assert_success(random_operation(&harness, 80));
	save_index(harness.index, &saved);
	for (size_t i = 0; i < sizeof(zone_counts) / sizeof(zone_counts[0]); i++) {
		struct uds_delta_index *restored;
		struct saved again;

		params.zone_count = zone_counts[i];
		assert_success(uds_make_delta_index(&params, &restored));
		assert_success(restore_index(restored, &saved, saved.zones));
		check_index(restored, &harness.model);
		/* And back again, from this zone count. */
		save_index(restored, &again);
		uds_reset_delta_index(restored);
		assert_empty(restored);
		assert_success(restore_index(restored, &again, again.zones));
		check_index(restored, &harness.model);
		close(again.fd);
		uds_free_delta_index(restored);
	}
	/* The restored index keeps working. */
	assert_success(restore_index(harness.index, &saved, saved.zones));
	for (unsigned int i = 0; i < 10000; i++)
		assert_success(random_operation(&harness, 50));
	check_index(harness.index, &harness.model);
	close(saved.fd);
	free_harness(&harness);
}

static void test_restore_rejects_bad_streams(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 64,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 1 << 20,
		.tag = 'm',
	};
	struct uds_delta_index *other;
	struct harness harness;
	struct saved saved;
	uint8_t byte;

	(void) state;
	random_state = 21;
	make_harness(&harness, &params, 4096 * 256);
	for (unsigned int i = 0; i < 30000; i++)
		assert_success(random_operation(&harness, 90));
	save_index(harness.index, &saved);

	/* Too few or too many zone streams. */
	assert_int_not_equal(restore_index(harness.index, &saved, 1), DD_SUCCESS);
	assert_empty(harness.index);
	assert_int_not_equal(restore_index(harness.index, &saved, 3), DD_SUCCESS);
	assert_empty(harness.index);

	/* An index of another shape. */
	params.list_count = 65;
	assert_success(uds_make_delta_index(&params, &other));
	assert_int_equal(restore_index(other, &saved, 2), DD_CORRUPT_DATA);
	uds_free_delta_index(other);
	params.list_count = 64;
	params.payload_bits = 11;
	assert_success(uds_make_delta_index(&params, &other));
	assert_int_equal(restore_index(other, &saved, 2), DD_CORRUPT_DATA);
	uds_free_delta_index(other);
	params.payload_bits = 10;
	params.tag = 'x';
	assert_success(uds_make_delta_index(&params, &other));
	assert_int_equal(restore_index(other, &saved, 2), DD_CORRUPT_DATA);
	uds_free_delta_index(other);
	params.tag = 'm';
	/* Too little memory for the saved lists. */
	params.zone_count = 1;
	params.memory_size = 64 * 1024;
	assert_success(uds_make_delta_index(&params, &other));
	assert_int_equal(restore_index(other, &saved, 2), DD_OVERFLOW);
	assert_empty(other);
	uds_free_delta_index(other);

	/* A flipped bit anywhere in the first blocks of a stream is caught. */
	for (off_t offset = 0; offset < 3 * DD_BUFFERED_BLOCK_SIZE; offset += 97) {
		assert_int_equal(pread(saved.fd, &byte, 1, offset), 1);
		byte ^= 0x10;
		assert_int_equal(pwrite(saved.fd, &byte, 1, offset), 1);
		assert_int_not_equal(restore_index(harness.index, &saved, 2), DD_SUCCESS);
		assert_empty(harness.index);
		byte ^= 0x10;
		assert_int_equal(pwrite(saved.fd, &byte, 1, offset), 1);
	}
	/* A truncated stream. */
	assert_success(ftruncate(saved.fd, (off_t) DD_BUFFERED_BLOCK_SIZE));
	assert_int_not_equal(restore_index(harness.index, &saved, 2), DD_SUCCESS);
	assert_empty(harness.index);
	close(saved.fd);
	free_harness(&harness);
}

/* Streams that pass their checksums but carry bad contents, as a buggy writer might produce. */
static void write_crafted(int fd, const void *data, size_t length)
{
	struct dd_buffered_writer *writer;

	assert_success(ftruncate(fd, 0));
	assert_success(dd_make_buffered_writer(fd, 0, 1 << 20, NONCE, &writer));
	assert_success(dd_write_to_buffered_writer(writer, data, length));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
}

/* The bits of packed list data a saved zone stream of @list_count lists holds. */
static uint64_t saved_list_bits(const uint8_t *stream, uint32_t list_count)
{
	uint64_t bits = 0;

	for (uint32_t i = 0; i < list_count; i++)
		bits += stream[56 + 2 * i] | (stream[56 + 2 * i + 1] << 8);
	return bits;
}

static void test_restore_rejects_bad_contents(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = 4,
		.mean_delta = 16,
		.payload_bits = 4,
		.memory_size = 1 << 16,
		.tag = 'm',
	};
	struct uds_delta_index *index;
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	int fd = memfd_create("crafted", 0);
	uint8_t stream[4096];
	size_t length;
	struct harness harness;

	(void) state;
	random_state = 4;
	make_harness(&harness, &params, 16 * 20);
	for (unsigned int i = 0; i < 300; i++)
		assert_success(random_operation(&harness, 90));
	/* Save the good zone, then read its bytes back as plain data to tamper with. */
	assert_success(dd_make_buffered_writer(fd, 0, 1 << 20, NONCE, &writer));
	assert_success(uds_save_delta_zone(harness.index, 0, writer));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
	assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
	for (length = 0; !dd_buffered_reader_at_end(reader); length++)
		assert_success(dd_read_from_buffered_reader(reader, &stream[length], 1));
	dd_free_buffered_reader(reader);
	assert_success(uds_make_delta_index(&params, &index));

	struct {
		size_t offset;
		uint8_t value;
		int expected;
	} tampering[] = {
		{ 0, 'X', DD_BAD_MAGIC },          /* magic */
		{ 8, 2, DD_UNSUPPORTED_VERSION },  /* version */
		{ 16 + 8, 3, DD_CORRUPT_DATA },    /* min keys */
		{ 8 + 16, 1, DD_CORRUPT_DATA },    /* zone number */
		{ 8 + 28, 5, DD_CORRUPT_DATA },    /* list count */
		{ 8 + 32, 0xFF, DD_CORRUPT_DATA }, /* record count */
		{ 8 + 40, 0xFF, DD_CORRUPT_DATA }, /* collision count */
		{ 57, 0xFF, DD_END_OF_FILE },      /* size of list 0: more bits than saved */
		{ 56 + 2 * 3 + 1, 0x01, 0 },       /* size of list 3: bits misaligned */
	};
	for (size_t t = 0; t < sizeof(tampering) / sizeof(tampering[0]); t++) {
		uint8_t original = stream[tampering[t].offset];

		stream[tampering[t].offset] = tampering[t].value;
		if (stream[tampering[t].offset] == original)
			stream[tampering[t].offset] ^= 1;
		write_crafted(fd, stream, length);
		assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
		if (tampering[t].expected != 0)
			assert_int_equal(uds_restore_delta_index(index, &reader, 1),
			                 tampering[t].expected);
		else
			assert_int_not_equal(uds_restore_delta_index(index, &reader, 1),
			                     DD_SUCCESS);
		dd_free_buffered_reader(reader);
		assert_empty(index);
		stream[tampering[t].offset] = original;
	}
	/* Padding after the packed lists must be zero. */
	if (saved_list_bits(stream, 4) % 8 != 0) {
		stream[length - 1] ^= 0x80;
		write_crafted(fd, stream, length);
		assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
		assert_int_equal(uds_restore_delta_index(index, &reader, 1), DD_CORRUPT_DATA);
		dd_free_buffered_reader(reader);
		assert_empty(index);
		stream[length - 1] ^= 0x80;
	}
	/* The stream is exactly the header, the sizes and the packed bits. */
	assert_int_equal(length, 56 + 2 * 4 + (saved_list_bits(stream, 4) + 7) / 8);
	/* Scrambled list bits: each byte of list data flipped in turn. */
	for (size_t offset = 56 + 2 * 4; offset < length; offset++) {
		int result;

		stream[offset] ^= 0xA5;
		write_crafted(fd, stream, length);
		assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
		result = uds_restore_delta_index(index, &reader, 1);
		dd_free_buffered_reader(reader);
		/* Scrambled bits may still decode; if not, nothing is kept. */
		if (result != DD_SUCCESS)
			assert_empty(index);
		stream[offset] ^= 0xA5;
	}
	/* A stream cut short. */
	write_crafted(fd, stream, length - 3);
	assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
	assert_int_equal(uds_restore_delta_index(index, &reader, 1), DD_END_OF_FILE);
	dd_free_buffered_reader(reader);
	assert_empty(index);
	/* And the untouched stream restores. */
	write_crafted(fd, stream, length);
	assert_success(dd_make_buffered_reader(fd, 0, 1 << 20, NONCE, &reader));
	assert_success(uds_restore_delta_index(index, &reader, 1));
	dd_free_buffered_reader(reader);
	check_index(index, &harness.model);
	uds_free_delta_index(index);
	close(fd);
	free_harness(&harness);
}

/* ------------------------------------------------------------------------------------------ */
/* Coding constants and sizes                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* List headers, the zone cursor, local rebalancing, prefetching                               */
/* ------------------------------------------------------------------------------------------ */

/* A list header is 8 bytes and holds any offset a zone may have and any list size. */
static void test_compact_headers(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = 4,
		.mean_delta = 64,
		.payload_bits = 8,
		.memory_size = (size_t) 1 << 45,
		.tag = 'm',
	};
	struct uds_delta_index *index;
	struct uds_delta_list list = { 0 };
	uint64_t largest = ((uint64_t) 1 << 48) - 1;

	(void) state;
	assert_int_equal(sizeof(struct uds_delta_list), 8);
	list.start = largest;
	list.size = UDS_DELTA_LIST_MAX_BITS;
	assert_true(list.start == largest);
	assert_int_equal(list.size, UDS_DELTA_LIST_MAX_BITS);
	list.start -= 3;
	list.size -= 1;
	assert_true(list.start == largest - 3);
	assert_int_equal(list.size, UDS_DELTA_LIST_MAX_BITS - 1);
	/* A zone whose bit offsets would not fit 48 bits is refused before any allocation. */
	params.memory_size = ((size_t) 1 << 45) + 1;
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
	params.zone_count = 2;
	params.memory_size = ((size_t) 1 << 46) + 4 * ZONE_UNIT;
	assert_int_equal(uds_make_delta_index(&params, &index), DD_INVALID_ARGUMENT);
}

/* Search @key in @list and check the zone cursor then points at the entry found. */
static void search_and_check_cursor(struct harness *harness, uint32_t list_number, uint32_t key)
{
	struct dd_record_name name;
	struct uds_delta_entry entry;
	const struct uds_delta_cursor *cursor;

	random_name(&name);
	lookup(harness, list_number, key, &name, &entry);
	cursor = &entry.zone->cursor;
	if (entry.is_collision)
		return;
	assert_int_equal(cursor->list, entry.list_number + 1);
	assert_int_equal(cursor->offset, entry.offset);
	assert_int_equal(cursor->key, entry.key - entry.delta);
}

/*
 * One cursor per zone: sorted inserts resume where the last search stopped, searches of other
 * lists move it, and changes ahead of it (puts and removes before its offset) move it back to a
 * place from which every later search still decodes correctly.
 */
static void test_zone_cursor(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 4,
		.mean_delta = 64,
		.payload_bits = 8,
		.memory_size = 1 << 18,
		.tag = 'm',
	};
	struct harness harness;
	struct dd_record_name name;

	(void) state;
	random_state = 31;
	make_harness(&harness, &params, 64 * 400);
	/* Sorted inserts into list 1: each search starts at the cursor, at the end. */
	for (uint32_t key = 10; key < 64 * 400; key += 64) {
		const struct uds_delta_zone *zone = &harness.index->zones[0];

		random_name(&name);
		assert_success(put_name(&harness, 1, key, &name, key & 0xFF));
		/* The put's search left the cursor at the new entry, the list's last. */
		assert_int_equal(zone->cursor.list, 2);
		assert_true(zone->cursor.offset < zone->lists[2].size);
		search_and_check_cursor(&harness, 1, key + 1);
		assert_true(zone->cursor.offset == zone->lists[2].size);
	}
	check_index(harness.index, &harness.model);
	/* A search of list 0 (same zone) moves the cursor; list 2 is in the other zone. */
	search_and_check_cursor(&harness, 0, 5);
	assert_int_equal(harness.index->zones[0].cursor.list, 1);
	search_and_check_cursor(&harness, 2, 5);
	assert_int_equal(harness.index->zones[0].cursor.list, 1);
	assert_int_equal(harness.index->zones[1].cursor.list, 1);
	/* Back in list 1: walk up, changing the list behind and ahead of the cursor. */
	for (unsigned int round = 0; round < 3000; round++) {
		struct model_list *list = &harness.model.lists[1];
		uint32_t key = random_below(64 * 400);
		unsigned int choice = random_below(4);

		search_and_check_cursor(&harness, 1, key);
		if ((choice == 0) && (list->count > 0)) {
			remove_at(&harness, 1, random_below(list->count));
		} else if (choice == 1) {
			random_name(&name);
			put_name(&harness, 1, random_below(64 * 400), &name, 1);
		} else if ((choice == 2) && (list->count > 0)) {
			/* A collision behind the cursor. */
			random_name(&name);
			put_name(&harness, 1, list->entries[random_below(list->count)].key, &name,
			         2);
		}
		/* A larger key now resumes from the (possibly moved) cursor. */
		search_and_check_cursor(&harness, 1, key + random_below(2000));
	}
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

/*
 * A zone with little free space: most rebalances move a neighbourhood of lists, not the zone,
 * and the index stays exact. Positions are computed as lists move (there is no scratch array),
 * so this also checks that no list overwrites another while moving.
 */
static void test_local_rebalance(void **state)
{
	enum {
		LISTS = 2000,
		PER_LIST = 40,
		MEAN = 256
	};
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = LISTS,
		.mean_delta = MEAN,
		.payload_bits = 8,
		.tag = 'm',
	};
	uint64_t bits = uds_compute_delta_index_bits(LISTS * PER_LIST, MEAN, 8);
	struct uds_delta_index_stats before;
	struct uds_delta_index_stats stats;
	const struct uds_delta_zone *zone;
	struct harness harness;
	uint64_t rebalances;
	uint64_t capacity;
	uint64_t moved;
	uint64_t full;
	unsigned int i;

	(void) state;
	random_state = 8;
	params.memory_size = (size_t) (bits * 2 / 8) + LISTS;
	make_harness(&harness, &params, MEAN * PER_LIST);
	zone = &harness.index->zones[0];
	capacity = (zone->size - 7) * 8;
	/* Fill the zone until it overflows, then empty it to 97% full. */
	while (harness.overflows == 0)
		random_operation(&harness, 100);
	while (zone->used_bits > capacity * 97 / 100) {
		uint32_t list_number = random_below(LISTS);
		struct model_list *list = &harness.model.lists[list_number];

		if (list->count > 0)
			remove_at(&harness, list_number, random_below(list->count));
	}
	check_index(harness.index, &harness.model);
	uds_get_delta_index_stats(harness.index, &before);
	/* As many puts as removes: the zone stays about 97% full. */
	for (i = 0; i < 100000; i++) {
		int result = random_operation(&harness, 15);

		assert_true((result == DD_SUCCESS) || (result == DD_OVERFLOW));
	}
	check_index(harness.index, &harness.model);
	uds_get_delta_index_stats(harness.index, &stats);
	rebalances = stats.rebalance_count - before.rebalance_count;
	full = stats.full_rebalance_count - before.full_rebalance_count;
	moved = stats.rebalance_bytes - before.rebalance_bytes;
	printf("local rebalance: %llu rebalances, %llu of the whole zone, %llu bytes moved "
	       "(zone %zu bytes, %llu%% used)\n",
	       (unsigned long long) rebalances, (unsigned long long) full,
	       (unsigned long long) moved, zone->size,
	       (unsigned long long) (zone->used_bits * 100 / capacity));
	assert_true(rebalances > 100);
	assert_true(full * 10 < rebalances);
	/* On average far less than a zone's worth of bytes moves per rebalance. */
	assert_true(moved / rebalances < zone->size / 20);
	/* Filling the zone to the brim ends in whole-zone rebalances and then overflows. */
	while (harness.overflows < 50)
		random_operation(&harness, 100);
	uds_get_delta_index_stats(harness.index, &stats);
	assert_true(stats.full_rebalance_count > 0);
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

/*
 * Purging a list removes exactly the entries whose value is outside the circular range, as
 * removing them one by one would (collision entries whose first entry goes become first
 * entries), counts them, and leaves the rest of the index and the cursor usable.
 */
static void test_purge_list(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 2,
		.list_count = 20,
		.mean_delta = 64,
		.payload_bits = 6,
		.memory_size = 2 * ZONE_UNIT,
		.tag = 'm',
	};
	struct harness harness;
	uint32_t counts[64];

	(void) state;
	random_state = 17;
	make_harness(&harness, &params, 64 * 100);
	for (unsigned int round = 0; round < 400; round++) {
		uint32_t list_number = random_below(params.list_count);
		struct model_list *list = &harness.model.lists[list_number];
		uint32_t newest = random_below(64);
		uint32_t span = random_below(64);
		uint32_t expected_removed = 0;
		uint32_t expected_max_age = 0;
		uint32_t removed;
		uint32_t max_age;

		for (unsigned int i = 0; i < 150; i++)
			assert_success(random_operation(&harness, 85));
		memset(counts, 0, sizeof(counts));
		for (uint32_t p = 0; p < list->count;) {
			uint32_t age = (newest - list->entries[p].value) & 63;

			if (age > span) {
				counts[list->entries[p].value]++;
				model_remove(&harness.model, list_number, p);
				expected_removed++;
			} else {
				if (age > expected_max_age)
					expected_max_age = age;
				p++;
			}
		}
		/* The counts go back to zero: one decrement per entry removed, by value. */
		assert_success(uds_purge_delta_list(harness.index, list_number, newest, span,
		                                    counts, &removed, &max_age));
		assert_int_equal(removed, expected_removed);
		assert_int_equal(max_age, expected_max_age);
		for (unsigned int v = 0; v < 64; v++)
			assert_int_equal(counts[v], 0);
		if ((round % 16) == 0)
			check_index(harness.index, &harness.model);
	}
	check_index(harness.index, &harness.model);
	free_harness(&harness);
}

/* Prefetching is only a hint: any list, any stage, any index, and nothing changes. */
static void test_prefetch_is_harmless(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 3,
		.list_count = 30,
		.mean_delta = 256,
		.payload_bits = 6,
		.memory_size = 3 * ZONE_UNIT,
		.tag = 'm',
	};
	struct harness harness;
	uint8_t page[4096];
	struct uds_delta_page delta_page;
	uint32_t count;

	(void) state;
	random_state = 3;
	make_harness(&harness, &params, 256 * 50);
	for (unsigned int i = 0; i < 5000; i++) {
		uint32_t list = random_below(params.list_count + 2);

		uds_prefetch_delta_list(harness.index, list, random_below(3));
		assert_success(random_operation(&harness, 70));
	}
	for (uint32_t list = 0; list < params.list_count + 5; list++) {
		uds_prefetch_delta_list(harness.index, list, 0);
		uds_prefetch_delta_list(harness.index, list, 1);
	}
	uds_prefetch_delta_list(harness.index, UINT32_MAX, 1);
	check_index(harness.index, &harness.model);
	free_harness(&harness);

	/* An immutable page ignores it. */
	params.zone_count = 1;
	make_harness(&harness, &params, 256 * 4);
	for (unsigned int i = 0; i < 100; i++)
		assert_success(random_operation(&harness, 90));
	assert_success(uds_pack_delta_page(harness.index, NONCE, 1, 0, page, sizeof(page), &count));
	assert_success(uds_open_delta_page(&delta_page, NONCE, 256, 6, page, sizeof(page)));
	uds_prefetch_delta_list(&delta_page.index, 0, 0);
	uds_prefetch_delta_list(&delta_page.index, 0, 1);
	/* Nor can it be purged. */
	{
		uint32_t removed;
		uint32_t max_age;

		assert_int_equal(
		    uds_purge_delta_list(&delta_page.index, 0, 0, 0, NULL, &removed, &max_age),
		    DD_BAD_STATE);
	}
	free_harness(&harness);
}

static void test_coding_constants(void **state)
{
	struct uds_delta_index_params params = {
		.zone_count = 1,
		.list_count = 1,
		.mean_delta = 4096,
		.payload_bits = 10,
		.memory_size = 1 << 16,
		.tag = 'm',
	};
	struct uds_delta_index *index;

	(void) state;
	assert_success(uds_make_delta_index(&params, &index));
	/* round(ln 2 * 4096) = 2839; 2^12 > 2839; 4096 - 2839 = 1257. */
	assert_int_equal(index->zones[0].coding.incr_keys, 2839);
	assert_int_equal(index->zones[0].coding.min_bits, 12);
	assert_int_equal(index->zones[0].coding.min_keys, 1257);
	assert_int_equal(uds_get_delta_min_bits(4096), 12);
	assert_int_equal(uds_get_delta_min_bits(256), 8);
	assert_int_equal(uds_get_delta_min_bits(0), 0);
	assert_int_equal(uds_compute_delta_index_bits(2, 4096, 10), 2 * 23 + 1);
	uds_free_delta_index(index);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coding_constants),
		cmocka_unit_test(test_compact_headers),
		cmocka_unit_test(test_zone_cursor),
		cmocka_unit_test(test_local_rebalance),
		cmocka_unit_test(test_purge_list),
		cmocka_unit_test(test_prefetch_is_harmless),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_random_sequences),
		cmocka_unit_test(test_change_while_walking),
		cmocka_unit_test(test_zone_overflow),
		cmocka_unit_test(test_list_overflow),
		cmocka_unit_test(test_huge_delta),
		cmocka_unit_test(test_pages_round_trip),
		cmocka_unit_test(test_page_too_small),
		cmocka_unit_test(test_page_bit_flips),
		cmocka_unit_test(test_page_structure_checks),
		cmocka_unit_test(test_save_restore_across_zone_counts),
		cmocka_unit_test(test_restore_rejects_bad_streams),
		cmocka_unit_test(test_restore_rejects_bad_contents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
