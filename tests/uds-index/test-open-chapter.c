// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the open chapter.
 *
 * Zones are driven with random puts, updates, searches and removals over a pool of names, and
 * every result is checked against a reference model: per zone, the records in arrival order with
 * their deleted flags, and per name whether it is live and its data. Some pools make many names
 * share bytes 8-15 (and so their home slot) to force long probe chains through tombstones. After
 * batches of operations the zone's hash table is checked slot by slot and the collation of all
 * zones is compared with a round robin over the models. Save and load are checked for round trips
 * into the same and other zone counts (where records that do not fit their new zone are dropped),
 * and for damaged, crafted and oversized streams, which must leave the zones empty.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buffered-io.h"
#include "memory-alloc.h"
#include "open-chapter.h"
#include "test-harness.h"
#include "test-random.h"

enum {
	NONCE = 0x0C4A97E5,
	MAX_TEST_ZONES = UDS_MAX_ZONES,
};

/* ------------------------------------------------------------------------------------------ */
/* Random numbers, names and geometries                                                        */
/* ------------------------------------------------------------------------------------------ */

static void random_data(struct uds_record_data *data)
{
	uint64_t a = next_random();
	uint64_t b = next_random();

	memcpy(data->data, &a, sizeof(a));
	memcpy(data->data + 8, &b, sizeof(b));
}

/* A dense geometry of @pages 4 KiB record pages (127 records each) per chapter. */
static void make_geometry(uint32_t pages, struct uds_geometry *geometry)
{
	assert_success(uds_make_custom_geometry(0, pages, 4, 0, geometry));
	assert_int_equal(geometry->records_per_chapter, 127 * pages);
}

static void make_zones(const struct uds_geometry *geometry, unsigned int zone_count,
                       struct uds_open_chapter_zone **zones)
{
	for (unsigned int z = 0; z < zone_count; z++) {
		assert_success(uds_make_open_chapter(geometry, zone_count, &zones[z]));
		assert_int_equal(zones[z]->capacity, geometry->records_per_chapter / zone_count);
	}
}

static void free_zones(struct uds_open_chapter_zone **zones, unsigned int zone_count)
{
	for (unsigned int z = 0; z < zone_count; z++)
		uds_free_open_chapter(zones[z]);
}

/* The router of the tests: volume index bits modulo the zone count (the context). */
static unsigned int route_name(const void *context, const struct dd_record_name *name)
{
	unsigned int zone_count = *(const unsigned int *) context;

	return (unsigned int) (dd_record_name_volume_index_bits(name) % zone_count);
}

static bool same_data(const struct uds_record_data *a, const struct uds_record_data *b)
{
	return memcmp(a->data, b->data, sizeof(a->data)) == 0;
}

static void assert_same_record(const struct uds_volume_record *a, const struct uds_volume_record *b)
{
	assert_true(dd_record_name_equal(&a->name, &b->name));
	assert_true(same_data(&a->data, &b->data));
}

/* ------------------------------------------------------------------------------------------ */
/* Structure checks                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* Check a zone's hash table against its records, slot by slot. */
static void check_structure(const struct uds_open_chapter_zone *zone)
{
	uint32_t live_slots = 0;
	uint32_t tombstones = 0;
	bool *seen = calloc(zone->size + 1, sizeof(bool));

	assert_non_null(seen);
	assert_true(zone->size <= zone->capacity);
	assert_true(zone->deletions <= zone->size);
	assert_int_equal(zone->slot_count & (zone->slot_count - 1), 0);
	assert_true(zone->slot_count >= 2 * zone->capacity);
	assert_true(zone->slot_count < 4 * zone->capacity + 4);
	for (uint32_t i = 0; i < zone->slot_count; i++) {
		uint32_t entry = zone->slots[i];

		if (entry == 0)
			continue;
		if (entry == UINT32_MAX) {
			tombstones++;
			continue;
		}
		assert_true(entry - 1 < zone->size);
		assert_false(zone->deleted[entry - 1]);
		assert_false(seen[entry - 1]);
		seen[entry - 1] = true;
		live_slots++;
	}
	assert_int_equal(live_slots, uds_open_chapter_live_records(zone));
	assert_true(live_slots + tombstones <= zone->size);
	for (uint32_t r = 0; r < zone->size; r++) {
		struct uds_record_data data;

		if (zone->deleted[r])
			continue;
		assert_true(seen[r]);
		assert_true(uds_search_open_chapter(zone, &zone->records[r].name, &data));
		assert_true(same_data(&data, &zone->records[r].data));
	}
	free(seen);
}

static void assert_zone_empty(const struct uds_open_chapter_zone *zone)
{
	assert_int_equal(zone->size, 0);
	assert_int_equal(zone->deletions, 0);
	for (uint32_t i = 0; i < zone->slot_count; i++)
		assert_int_equal(zone->slots[i], 0);
}

static void assert_zones_empty(struct uds_open_chapter_zone *const *zones, unsigned int zone_count)
{
	for (unsigned int z = 0; z < zone_count; z++)
		assert_zone_empty(zones[z]);
}

/* ------------------------------------------------------------------------------------------ */
/* The reference model                                                                         */
/* ------------------------------------------------------------------------------------------ */

struct pool_name {
	struct dd_record_name name;
	struct uds_record_data data;
	bool live;
};

/* One zone: a pool of names it may be asked about, and its records in arrival order. */
struct model {
	struct pool_name *pool;
	uint32_t pool_size;
	uint32_t capacity;
	/* Records in arrival order: the pool index and data of each, and deleted flags. */
	uint32_t *order;
	struct uds_record_data *order_data;
	bool *order_deleted;
	uint32_t size;
	uint32_t deletions;
	/* The record number of each live pool name. */
	uint32_t *record_of;
};

/*
 * Make a model whose pool names are all routed to zone @zone of @zone_count by route_name().
 * @shared_percent of them copy bytes 8-15 from one of a few earlier names.
 */
static void make_model(struct model *model, uint32_t capacity, uint32_t pool_size,
                       unsigned int zone, unsigned int zone_count, unsigned int shared_percent)
{
	*model = (struct model){ .pool_size = pool_size, .capacity = capacity };
	model->pool = calloc(pool_size, sizeof(*model->pool));
	model->order = calloc(capacity, sizeof(*model->order));
	model->order_data = calloc(capacity, sizeof(*model->order_data));
	model->order_deleted = calloc(capacity, sizeof(*model->order_deleted));
	model->record_of = calloc(pool_size, sizeof(*model->record_of));
	assert_non_null(model->pool);
	assert_non_null(model->order);
	assert_non_null(model->order_data);
	assert_non_null(model->order_deleted);
	assert_non_null(model->record_of);
	for (uint32_t i = 0; i < pool_size; i++) {
		struct dd_record_name *name = &model->pool[i].name;

		do {
			random_name(name);
		} while (route_name(&zone_count, name) != zone);
		if ((i > 0) && (random_below(100) < shared_percent))
			memcpy(&name->name[8],
			       &model->pool[random_below(i < 4 ? i : 4)].name.name[8], 8);
	}
}

static void free_model(struct model *model)
{
	free(model->pool);
	free(model->order);
	free(model->order_data);
	free(model->order_deleted);
	free(model->record_of);
}

static void reset_model(struct model *model)
{
	for (uint32_t i = 0; i < model->pool_size; i++)
		model->pool[i].live = false;
	model->size = 0;
	model->deletions = 0;
}

/* Put pool name @i with @data in the zone and the model, and check the outcome. */
static void put_and_check(struct uds_open_chapter_zone *zone, struct model *model, uint32_t i,
                          const struct uds_record_data *data)
{
	struct pool_name *entry = &model->pool[i];
	uint32_t remaining = 12345;
	int result = uds_put_open_chapter(zone, &entry->name, data, &remaining);

	if (entry->live) {
		assert_int_equal(result, DD_SUCCESS);
		entry->data = *data;
		model->order_data[model->record_of[i]] = *data;
	} else if (model->size < model->capacity) {
		assert_int_equal(result, DD_SUCCESS);
		entry->live = true;
		entry->data = *data;
		model->record_of[i] = model->size;
		model->order[model->size] = i;
		model->order_data[model->size] = *data;
		model->order_deleted[model->size++] = false;
	} else {
		assert_int_equal(result, DD_OVERFLOW);
		assert_int_equal(remaining, 0);
		assert_false(uds_search_open_chapter(zone, &entry->name, NULL));
		return;
	}
	assert_int_equal(remaining, model->capacity - model->size);
	assert_int_equal(zone->size, model->size);
}

/* Search for pool name @i and check the outcome. */
static void search_and_check(const struct uds_open_chapter_zone *zone, const struct model *model,
                             uint32_t i)
{
	const struct pool_name *entry = &model->pool[i];
	struct uds_record_data data;

	assert_int_equal(uds_search_open_chapter(zone, &entry->name, &data), entry->live);
	if (entry->live)
		assert_true(same_data(&data, &entry->data));
	assert_int_equal(uds_search_open_chapter(zone, &entry->name, NULL), entry->live);
}

/* Remove pool name @i and check the outcome. */
static void remove_and_check(struct uds_open_chapter_zone *zone, struct model *model, uint32_t i)
{
	struct pool_name *entry = &model->pool[i];

	assert_int_equal(uds_remove_from_open_chapter(zone, &entry->name), entry->live);
	if (entry->live) {
		entry->live = false;
		model->order_deleted[model->record_of[i]] = true;
		model->deletions++;
	}
	assert_int_equal(zone->deletions, model->deletions);
	assert_false(uds_search_open_chapter(zone, &entry->name, NULL));
}

/* Check every pool name and every record of a zone against its model. */
static void check_zone(const struct uds_open_chapter_zone *zone, const struct model *model)
{
	assert_int_equal(zone->size, model->size);
	assert_int_equal(zone->deletions, model->deletions);
	assert_int_equal(zone->capacity, model->capacity);
	for (uint32_t r = 0; r < model->size; r++) {
		assert_true(dd_record_name_equal(&zone->records[r].name,
		                                 &model->pool[model->order[r]].name));
		assert_int_equal(zone->deleted[r], model->order_deleted[r]);
		if (!model->order_deleted[r])
			assert_true(same_data(&zone->records[r].data, &model->order_data[r]));
	}
	for (uint32_t i = 0; i < model->pool_size; i++)
		search_and_check(zone, model, i);
	check_structure(zone);
}

/* The chapter order of the models' live records, written to @records; returns the count. */
static uint32_t collate_models(const struct model *models, unsigned int zone_count,
                               struct uds_volume_record *records)
{
	uint32_t cursors[MAX_TEST_ZONES] = { 0 };
	uint32_t count = 0;
	bool progress = true;

	while (progress) {
		progress = false;
		for (unsigned int z = 0; z < zone_count; z++) {
			const struct model *model = &models[z];
			uint32_t *r = &cursors[z];

			while ((*r < model->size) && model->order_deleted[*r])
				(*r)++;
			if (*r == model->size)
				continue;
			records[count].name = model->pool[model->order[*r]].name;
			records[count++].data = model->order_data[*r];
			(*r)++;
			progress = true;
		}
	}
	return count;
}

/* Check the collation of the zones against the models. */
static void check_collation(struct uds_open_chapter_zone *const *zones, const struct model *models,
                            unsigned int zone_count)
{
	uint32_t total = 0;
	struct uds_volume_record *expected;
	struct uds_volume_record *actual;
	uint32_t count;

	for (unsigned int z = 0; z < zone_count; z++)
		total += models[z].capacity;
	expected = calloc(total + 1, sizeof(*expected));
	actual = calloc(total + 1, sizeof(*actual));
	assert_non_null(expected);
	assert_non_null(actual);
	count = collate_models(models, zone_count, expected);
	assert_int_equal(uds_collate_open_chapters(zones, zone_count, actual), count);
	for (uint32_t i = 0; i < count; i++)
		assert_same_record(&actual[i], &expected[i]);
	free(expected);
	free(actual);
}

/* One random operation on a zone and its model. */
static void random_operation(struct uds_open_chapter_zone *zone, struct model *model)
{
	uint32_t i = random_below(model->pool_size);
	uint32_t choice = random_below(100);
	struct uds_record_data data;
	struct dd_record_name stranger;

	if (choice < 45) {
		random_data(&data);
		put_and_check(zone, model, i, &data);
	} else if (choice < 70) {
		search_and_check(zone, model, i);
	} else if (choice < 92) {
		remove_and_check(zone, model, i);
	} else {
		random_name(&stranger);
		assert_false(uds_search_open_chapter(zone, &stranger, NULL));
		assert_false(uds_remove_from_open_chapter(zone, &stranger));
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Basic operations                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void test_make_and_sizes(void **state)
{
	struct uds_open_chapter_zone *zone = NULL;
	struct uds_geometry geometry;

	(void) state;
	make_geometry(2, &geometry);
	assert_int_equal(uds_make_open_chapter(&geometry, 0, &zone), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_open_chapter(&geometry, UDS_MAX_ZONES + 1, &zone),
	                 DD_INVALID_ARGUMENT);
	assert_null(zone);
	for (unsigned int zone_count = 1; zone_count <= UDS_MAX_ZONES; zone_count++) {
		uint32_t capacity = 254 / zone_count;
		uint32_t slots = 1;

		while (slots < 2 * capacity)
			slots <<= 1;
		assert_success(uds_make_open_chapter(&geometry, zone_count, &zone));
		assert_int_equal(zone->capacity, capacity);
		assert_int_equal(zone->slot_count, slots);
		assert_int_equal(zone->memory_size,
		                 sizeof(*zone) + capacity * (UDS_RECORD_BYTES + sizeof(bool)) +
		                     slots * sizeof(uint32_t));
		assert_zone_empty(zone);
		uds_free_open_chapter(zone);
	}
	uds_free_open_chapter(NULL);
	assert_int_equal(uds_compute_open_chapter_save_bytes(&geometry), 16 + 254 * 32);

	/* Full-size chapters: at most 49 bytes a record (32 + 1 + up to 4 slots of 4). */
	assert_success(uds_make_geometry(256, false, 0, &geometry));
	for (unsigned int zone_count = 1; zone_count <= UDS_MAX_ZONES; zone_count++) {
		assert_success(uds_make_open_chapter(&geometry, zone_count, &zone));
		assert_true(zone->memory_size <= (size_t) zone->capacity * 49 + sizeof(*zone));
		uds_free_open_chapter(zone);
	}
}

static void test_random_operations(void **state)
{
	static const uint32_t pages[] = { 1, 3, 8 };
	static const unsigned int zone_counts[] = { 1, 2, 3, 7, 16 };
	static const unsigned int shared_percents[] = { 0, 30, 0, 90, 0 };

	(void) state;
	random_state = 1;
	for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
		for (size_t c = 0; c < sizeof(zone_counts) / sizeof(zone_counts[0]); c++) {
			struct uds_open_chapter_zone *zones[MAX_TEST_ZONES];
			struct model models[MAX_TEST_ZONES];
			unsigned int zone_count = zone_counts[c];
			struct uds_geometry geometry;

			make_geometry(pages[p], &geometry);
			make_zones(&geometry, zone_count, zones);
			for (unsigned int z = 0; z < zone_count; z++)
				make_model(&models[z], zones[z]->capacity,
				           zones[z]->capacity * 3 / 2 + 4, z, zone_count,
				           shared_percents[c]);
			for (unsigned int op = 1; op <= 40000; op++) {
				unsigned int z = random_below(zone_count);

				random_operation(zones[z], &models[z]);
				if (op % 2503 == 0) {
					for (unsigned int y = 0; y < zone_count; y++)
						check_zone(zones[y], &models[y]);
					check_collation(zones, models, zone_count);
				}
				if (random_below(3000) == 0) {
					uds_reset_open_chapter(zones[z]);
					reset_model(&models[z]);
					assert_zone_empty(zones[z]);
				}
			}
			for (unsigned int z = 0; z < zone_count; z++) {
				check_zone(zones[z], &models[z]);
				free_model(&models[z]);
			}
			free_zones(zones, zone_count);
		}
	}
}

static void test_fill_to_capacity(void **state)
{
	static const unsigned int zone_counts[] = { 1, 3, 16 };

	(void) state;
	random_state = 2;
	for (size_t c = 0; c < sizeof(zone_counts) / sizeof(zone_counts[0]); c++) {
		struct uds_open_chapter_zone *zone;
		struct uds_geometry geometry;
		struct uds_record_data data;
		struct model model;
		uint32_t remaining;

		make_geometry(2, &geometry);
		assert_success(uds_make_open_chapter(&geometry, zone_counts[c], &zone));
		make_model(&model, zone->capacity, zone->capacity + 8, 0, 1, 0);
		for (int lap = 0; lap < 2; lap++) {
			for (uint32_t i = 0; i < zone->capacity; i++) {
				random_data(&data);
				assert_success(uds_put_open_chapter(zone, &model.pool[i].name,
				                                    &data, &remaining));
				assert_int_equal(remaining, zone->capacity - i - 1);
				model.pool[i].live = true;
				model.pool[i].data = data;
			}
			/* A new name overflows and changes nothing. */
			for (uint32_t i = zone->capacity; i < model.pool_size; i++) {
				remaining = 99;
				assert_int_equal(uds_put_open_chapter(zone, &model.pool[i].name,
				                                      &data, &remaining),
				                 DD_OVERFLOW);
				assert_int_equal(remaining, 0);
				assert_false(
				    uds_search_open_chapter(zone, &model.pool[i].name, NULL));
			}
			assert_int_equal(zone->size, zone->capacity);
			/* A name already there is updated in place, even when full. */
			random_data(&data);
			assert_success(
			    uds_put_open_chapter(zone, &model.pool[0].name, &data, &remaining));
			assert_int_equal(remaining, 0);
			model.pool[0].data = data;
			/* Removing does not give back room. */
			assert_true(uds_remove_from_open_chapter(zone, &model.pool[1].name));
			model.pool[1].live = false;
			assert_int_equal(
			    uds_put_open_chapter(zone, &model.pool[1].name, &data, &remaining),
			    DD_OVERFLOW);
			for (uint32_t i = 0; i < model.pool_size; i++) {
				struct uds_record_data found;

				assert_int_equal(
				    uds_search_open_chapter(zone, &model.pool[i].name, &found),
				    model.pool[i].live);
				if (model.pool[i].live)
					assert_true(same_data(&found, &model.pool[i].data));
			}
			check_structure(zone);
			uds_reset_open_chapter(zone);
			reset_model(&model);
			assert_zone_empty(zone);
		}
		free_model(&model);
		uds_free_open_chapter(zone);
	}
}

static void test_remove_then_put_again(void **state)
{
	struct uds_open_chapter_zone *zone;
	struct uds_volume_record records[8];
	struct uds_volume_record expected[3];
	struct uds_geometry geometry;
	struct uds_record_data data;
	uint32_t remaining;

	(void) state;
	random_state = 3;
	make_geometry(1, &geometry);
	assert_success(uds_make_open_chapter(&geometry, 1, &zone));
	for (int i = 0; i < 3; i++) {
		random_name(&records[i].name);
		random_data(&records[i].data);
		assert_success(
		    uds_put_open_chapter(zone, &records[i].name, &records[i].data, &remaining));
	}
	assert_true(uds_remove_from_open_chapter(zone, &records[1].name));
	assert_false(uds_remove_from_open_chapter(zone, &records[1].name));
	assert_false(uds_search_open_chapter(zone, &records[1].name, &data));
	assert_int_equal(uds_open_chapter_live_records(zone), 2);

	/* Putting it again takes a new record at the end of the arrival order. */
	random_data(&records[1].data);
	assert_success(uds_put_open_chapter(zone, &records[1].name, &records[1].data, &remaining));
	assert_int_equal(remaining, 127 - 4);
	assert_int_equal(zone->size, 4);
	assert_int_equal(zone->deletions, 1);
	assert_true(uds_search_open_chapter(zone, &records[1].name, &data));
	assert_true(same_data(&data, &records[1].data));
	expected[0] = records[0];
	expected[1] = records[2];
	expected[2] = records[1];
	assert_int_equal(uds_collate_open_chapters(&zone, 1, &records[3]), 3);
	for (int i = 0; i < 3; i++)
		assert_same_record(&records[3 + i], &expected[i]);
	check_structure(zone);

	/* And removed once more. */
	assert_true(uds_remove_from_open_chapter(zone, &records[1].name));
	assert_false(uds_search_open_chapter(zone, &records[1].name, NULL));
	assert_int_equal(uds_open_chapter_live_records(zone), 2);
	check_structure(zone);
	uds_free_open_chapter(zone);
}

/* Keep a sliding window of live names until the zone is full: one removal per put. */
static void run_sliding_window(struct uds_open_chapter_zone *zone, struct model *model,
                               uint32_t window)
{
	uint32_t oldest = 0;

	for (uint32_t i = 0; i < zone->capacity; i++) {
		struct uds_record_data data;

		random_data(&data);
		put_and_check(zone, model, i, &data);
		if (i + 1 >= window)
			remove_and_check(zone, model, oldest++);
		if (i % 61 == 0)
			check_structure(zone);
	}
	check_zone(zone, model);
}

static void test_tombstone_heavy(void **state)
{
	struct uds_open_chapter_zone *zone;
	struct uds_geometry geometry;
	struct model model;

	(void) state;
	random_state = 4;
	/* Random names: most removals leave tombstones in a crowded table. */
	make_geometry(8, &geometry);
	assert_success(uds_make_open_chapter(&geometry, 1, &zone));
	make_model(&model, zone->capacity, zone->capacity, 0, 1, 0);
	run_sliding_window(zone, &model, 16);
	assert_int_equal(uds_open_chapter_live_records(zone), 15);
	uds_reset_open_chapter(zone);
	reset_model(&model);
	run_sliding_window(zone, &model, 600);
	free_model(&model);

	/* Every name with the same home slot: one long chain of records and tombstones. */
	make_model(&model, zone->capacity, zone->capacity, 0, 1, 100);
	for (uint32_t i = 1; i < model.pool_size; i++)
		memcpy(&model.pool[i].name.name[8], &model.pool[0].name.name[8], 8);
	uds_reset_open_chapter(zone);
	run_sliding_window(zone, &model, 40);
	uds_reset_open_chapter(zone);
	reset_model(&model);
	for (unsigned int op = 0; op < 20000; op++) {
		random_operation(zone, &model);
		if (op % 1999 == 0)
			check_zone(zone, &model);
	}
	check_zone(zone, &model);
	free_model(&model);
	uds_free_open_chapter(zone);
}

static void test_reset(void **state)
{
	struct uds_open_chapter_zone *zone;
	struct uds_geometry geometry;
	struct model model;

	(void) state;
	random_state = 5;
	make_geometry(2, &geometry);
	assert_success(uds_make_open_chapter(&geometry, 2, &zone));
	make_model(&model, zone->capacity, zone->capacity * 2, 0, 1, 20);
	for (int lap = 0; lap < 5; lap++) {
		for (unsigned int op = 0; op < 500; op++)
			random_operation(zone, &model);
		check_zone(zone, &model);
		uds_reset_open_chapter(zone);
		assert_zone_empty(zone);
		for (uint32_t i = 0; i < model.pool_size; i++)
			assert_false(uds_search_open_chapter(zone, &model.pool[i].name, NULL));
		reset_model(&model);
	}
	/* Resetting an empty zone is fine too. */
	uds_reset_open_chapter(zone);
	assert_zone_empty(zone);
	free_model(&model);
	uds_free_open_chapter(zone);
}

/* ------------------------------------------------------------------------------------------ */
/* Collation                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Put a new record with a random name into @zone, returning it in @record. */
static void put_new(struct uds_open_chapter_zone *zone, struct uds_volume_record *record)
{
	uint32_t remaining;

	random_name(&record->name);
	random_data(&record->data);
	assert_success(uds_put_open_chapter(zone, &record->name, &record->data, &remaining));
}

static void test_collation_order(void **state)
{
	struct uds_open_chapter_zone *zones[4];
	struct uds_volume_record a[4];
	struct uds_volume_record b[1];
	struct uds_volume_record c[3];
	struct uds_volume_record out[16];
	struct uds_geometry geometry;

	(void) state;
	random_state = 6;
	make_geometry(1, &geometry);
	make_zones(&geometry, 4, zones);
	assert_int_equal(uds_collate_open_chapters(zones, 4, out), 0);

	/* Zone 0: a0 a1 a2 a3, a1 deleted; zone 1: b0; zone 2: c0 c1 c2, c0 deleted; zone 3: none.
	 */
	for (int i = 0; i < 4; i++)
		put_new(zones[0], &a[i]);
	put_new(zones[1], &b[0]);
	for (int i = 0; i < 3; i++)
		put_new(zones[2], &c[i]);
	assert_true(uds_remove_from_open_chapter(zones[0], &a[1].name));
	assert_true(uds_remove_from_open_chapter(zones[2], &c[0].name));
	assert_int_equal(uds_collate_open_chapters(zones, 4, out), 6);
	assert_same_record(&out[0], &a[0]);
	assert_same_record(&out[1], &b[0]);
	assert_same_record(&out[2], &c[1]);
	assert_same_record(&out[3], &a[2]);
	assert_same_record(&out[4], &c[2]);
	assert_same_record(&out[5], &a[3]);

	/* A zone whose records are all deleted contributes nothing; the others keep their turns. */
	assert_true(uds_remove_from_open_chapter(zones[1], &b[0].name));
	put_new(zones[3], &b[0]);
	assert_int_equal(uds_collate_open_chapters(zones, 4, out), 6);
	assert_same_record(&out[0], &a[0]);
	assert_same_record(&out[1], &c[1]);
	assert_same_record(&out[2], &b[0]);
	assert_same_record(&out[3], &a[2]);
	assert_same_record(&out[4], &c[2]);
	assert_same_record(&out[5], &a[3]);

	/* A subset of the zones, in another order. */
	{
		struct uds_open_chapter_zone *subset[2] = { zones[2], zones[0] };

		assert_int_equal(uds_collate_open_chapters(subset, 2, out), 5);
		assert_same_record(&out[0], &c[1]);
		assert_same_record(&out[1], &a[0]);
		assert_same_record(&out[2], &c[2]);
		assert_same_record(&out[3], &a[2]);
		assert_same_record(&out[4], &a[3]);
	}
	free_zones(zones, 4);
}

/* ------------------------------------------------------------------------------------------ */
/* Save and load                                                                               */
/* ------------------------------------------------------------------------------------------ */

struct saved {
	int fd;
	size_t region;
};

static void open_saved(const struct uds_geometry *geometry, struct saved *saved)
{
	saved->fd = memfd_create("open-chapter-save", 0);
	assert_true(saved->fd >= 0);
	saved->region = dd_buffered_stream_size(uds_compute_open_chapter_save_bytes(geometry));
}

static void save_zones(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                       struct saved *saved)
{
	struct dd_buffered_writer *writer;

	assert_success(ftruncate(saved->fd, 0));
	assert_success(dd_make_buffered_writer(saved->fd, 0, saved->region, NONCE, &writer));
	assert_success(uds_save_open_chapter(zones, zone_count, writer));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
}

/* Load into @zones; the zone count is also the router's context. */
static int load_zones(struct uds_open_chapter_zone *const *zones, const unsigned int *zone_count,
                      const struct saved *saved)
{
	struct dd_buffered_reader *reader;
	int result;

	result = dd_make_buffered_reader(saved->fd, 0, saved->region, NONCE, &reader);
	if (result != DD_SUCCESS)
		return result;
	result = uds_load_open_chapter(zones, *zone_count, route_name, zone_count, reader);
	dd_free_buffered_reader(reader);
	return result;
}

/* Fill zones (routed by route_name()) with random operations up to about @percent full. */
static void fill_routed(struct uds_open_chapter_zone **zones, struct model *models,
                        unsigned int zone_count, unsigned int percent)
{
	for (unsigned int z = 0; z < zone_count; z++) {
		make_model(&models[z], zones[z]->capacity, zones[z]->capacity * 2, z, zone_count,
		           10);
		while (zones[z]->size * 100 < zones[z]->capacity * percent)
			random_operation(zones[z], &models[z]);
	}
}

/* Check a zone loaded from a save of the zone @model describes: its live records, in order. */
static void check_reloaded_zone(const struct uds_open_chapter_zone *zone, const struct model *model)
{
	uint32_t r = 0;

	for (uint32_t m = 0; m < model->size; m++) {
		if (model->order_deleted[m])
			continue;
		assert_true(dd_record_name_equal(&zone->records[r].name,
		                                 &model->pool[model->order[m]].name));
		assert_true(same_data(&zone->records[r++].data, &model->order_data[m]));
	}
	assert_int_equal(zone->size, r);
	assert_int_equal(zone->deletions, 0);
	for (uint32_t i = 0; i < model->pool_size; i++)
		search_and_check(zone, model, i);
	check_structure(zone);
}

/* Check that @zones hold exactly the live records of @expected (any order, routed). */
static void check_loaded(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                         const struct uds_volume_record *expected, uint32_t count)
{
	uint32_t live = 0;

	for (unsigned int z = 0; z < zone_count; z++) {
		assert_int_equal(zones[z]->deletions, 0);
		live += uds_open_chapter_live_records(zones[z]);
		check_structure(zones[z]);
	}
	assert_int_equal(live, count);
	for (uint32_t i = 0; i < count; i++) {
		unsigned int z = route_name(&zone_count, &expected[i].name);
		struct uds_record_data data;

		assert_true(uds_search_open_chapter(zones[z], &expected[i].name, &data));
		assert_true(same_data(&data, &expected[i].data));
	}
}

static void test_save_load_round_trip(void **state)
{
	static const unsigned int load_counts[] = { 1, 2, 3, 5, 16 };
	struct uds_open_chapter_zone *zones[MAX_TEST_ZONES];
	struct uds_volume_record *expected;
	struct uds_volume_record *actual;
	struct model models[3];
	struct uds_geometry geometry;
	unsigned int zone_count = 3;
	struct saved saved;
	uint32_t count;

	(void) state;
	random_state = 7;
	make_geometry(4, &geometry);
	expected = calloc(geometry.records_per_chapter, sizeof(*expected));
	actual = calloc(geometry.records_per_chapter, sizeof(*actual));
	assert_non_null(expected);
	assert_non_null(actual);
	open_saved(&geometry, &saved);

	/* Three zones, a third full, with deletions. */
	make_zones(&geometry, zone_count, zones);
	fill_routed(zones, models, zone_count, 33);
	count = uds_collate_open_chapters(zones, zone_count, expected);
	save_zones(zones, zone_count, &saved);
	free_zones(zones, zone_count);

	/* The same zone count gets every zone's records back in arrival order. */
	make_zones(&geometry, zone_count, zones);
	assert_success(load_zones(zones, &zone_count, &saved));
	for (unsigned int z = 0; z < zone_count; z++)
		check_reloaded_zone(zones[z], &models[z]);
	assert_int_equal(uds_collate_open_chapters(zones, zone_count, actual), count);
	for (uint32_t i = 0; i < count; i++)
		assert_same_record(&actual[i], &expected[i]);
	free_zones(zones, zone_count);

	/* Other zone counts get the same records; one zone gets them in the saved order. */
	for (size_t c = 0; c < sizeof(load_counts) / sizeof(load_counts[0]); c++) {
		unsigned int load_count = load_counts[c];

		make_zones(&geometry, load_count, zones);
		assert_success(load_zones(zones, &load_count, &saved));
		check_loaded(zones, load_count, expected, count);
		if (load_count == 1) {
			for (uint32_t i = 0; i < count; i++)
				assert_same_record(&zones[0]->records[i], &expected[i]);
		}
		free_zones(zones, load_count);
	}
	for (unsigned int z = 0; z < zone_count; z++)
		free_model(&models[z]);

	/* Full zones: the largest save fits its computed size and loads back. */
	make_zones(&geometry, zone_count, zones);
	fill_routed(zones, models, zone_count, 100);
	count = uds_collate_open_chapters(zones, zone_count, expected);
	save_zones(zones, zone_count, &saved);
	for (unsigned int z = 0; z < zone_count; z++) {
		uds_reset_open_chapter(zones[z]);
		free_model(&models[z]);
	}
	assert_success(load_zones(zones, &zone_count, &saved));
	check_loaded(zones, zone_count, expected, count);
	free_zones(zones, zone_count);

	/* An empty chapter. */
	zone_count = 2;
	make_zones(&geometry, zone_count, zones);
	save_zones(zones, zone_count, &saved);
	assert_success(load_zones(zones, &zone_count, &saved));
	assert_zones_empty(zones, zone_count);
	free_zones(zones, zone_count);

	close(saved.fd);
	free(expected);
	free(actual);
}

/*
 * Load the save of the one-zone chapter @model describes (no deletions) into @zone_count
 * zones, which cannot hold all of it: each zone keeps the records routed to it, in chapter
 * order, until it is full, and drops the others.
 */
static void check_overfull_load(struct uds_open_chapter_zone *const *zones, unsigned int zone_count,
                                const struct saved *saved, const struct model *model)
{
	struct dd_buffered_reader *reader;
	uint32_t routed[MAX_TEST_ZONES] = { 0 };
	uint64_t expected_dropped = 0;
	uint64_t dropped = 99;

	assert_success(dd_make_buffered_reader(saved->fd, 0, saved->region, NONCE, &reader));
	assert_success(uds_load_open_chapter_dropping(zones, zone_count, route_name, &zone_count,
	                                              reader, &dropped));
	dd_free_buffered_reader(reader);
	for (uint32_t m = 0; m < model->size; m++) {
		const struct pool_name *entry = &model->pool[model->order[m]];
		unsigned int z = route_name(&zone_count, &entry->name);
		struct uds_record_data data;

		if (routed[z]++ < zones[z]->capacity) {
			assert_true(uds_search_open_chapter(zones[z], &entry->name, &data));
			assert_true(same_data(&data, &model->order_data[m]));
		} else {
			assert_false(uds_search_open_chapter(zones[z], &entry->name, NULL));
			expected_dropped++;
		}
	}
	assert_true(expected_dropped > 0);
	assert_int_equal(dropped, expected_dropped);
	for (unsigned int z = 0; z < zone_count; z++) {
		assert_int_equal(zones[z]->size,
		                 (routed[z] < zones[z]->capacity) ? routed[z] : zones[z]->capacity);
		check_structure(zones[z]);
	}
}

static void test_save_load_limits(void **state)
{
	struct uds_open_chapter_zone *zones[MAX_TEST_ZONES];
	struct uds_open_chapter_zone *full;
	struct dd_buffered_writer *writer;
	struct uds_geometry geometry;
	struct model model;
	unsigned int zone_count;
	struct saved saved;

	(void) state;
	random_state = 8;
	make_geometry(4, &geometry);
	open_saved(&geometry, &saved);
	assert_success(uds_make_open_chapter(&geometry, 1, &full));
	make_model(&model, full->capacity, full->capacity, 0, 1, 0);
	for (uint32_t i = 0; i < full->capacity; i++) {
		struct uds_record_data data;

		random_data(&data);
		put_and_check(full, &model, i, &data);
	}

	/* A region too small for the records. */
	assert_success(
	    dd_make_buffered_writer(saved.fd, 0, DD_BUFFERED_BLOCK_SIZE, NONCE, &writer));
	assert_int_equal(uds_save_open_chapter(&full, 1, writer), DD_OVERFLOW);
	dd_free_buffered_writer(writer);
	save_zones(&full, 1, &saved);

	/*
	 * A full one-zone chapter does not fit three zones (3 x 169 < 508), nor two (the routing
	 * is never an exact split, so a zone overflows part way through). The open chapter is a
	 * hint: what fits is loaded, the rest dropped.
	 */
	zone_count = 3;
	make_zones(&geometry, zone_count, zones);
	check_overfull_load(zones, zone_count, &saved, &model);
	free_zones(zones, zone_count);
	zone_count = 2;
	make_zones(&geometry, zone_count, zones);
	check_overfull_load(zones, zone_count, &saved, &model);
	for (unsigned int z = 0; z < zone_count; z++)
		uds_reset_open_chapter(zones[z]);
	/* Zones that are not empty are refused, and emptied. */
	zone_count = 1;
	uds_reset_open_chapter(full);
	reset_model(&model);
	put_and_check(full, &model, 0, &model.pool[0].data);
	assert_int_equal(load_zones(&full, &zone_count, &saved), DD_BAD_STATE);
	assert_zone_empty(full);
	/* A zone count of zero. */
	{
		struct dd_buffered_reader *reader;

		assert_success(dd_make_buffered_reader(saved.fd, 0, saved.region, NONCE, &reader));
		assert_int_equal(uds_load_open_chapter(zones, 0, route_name, &zone_count, reader),
		                 DD_INVALID_ARGUMENT);
		dd_free_buffered_reader(reader);
	}
	free_zones(zones, 2);
	free_model(&model);
	uds_free_open_chapter(full);
	close(saved.fd);
}

static void test_load_rejects_damaged_streams(void **state)
{
	struct uds_open_chapter_zone *zones[MAX_TEST_ZONES];
	struct model models[2];
	struct uds_geometry geometry;
	unsigned int zone_count = 2;
	struct saved saved;
	off_t size;

	(void) state;
	random_state = 9;
	make_geometry(4, &geometry);
	open_saved(&geometry, &saved);
	make_zones(&geometry, zone_count, zones);
	fill_routed(zones, models, zone_count, 95);
	save_zones(zones, zone_count, &saved);
	size = lseek(saved.fd, 0, SEEK_END);
	assert_true(size >= 4 * DD_BUFFERED_BLOCK_SIZE);
	for (unsigned int z = 0; z < zone_count; z++)
		uds_reset_open_chapter(zones[z]);

	/*
	 * A flipped bit anywhere is caught, and the zones are left empty even when the damage is
	 * found only after records of the earlier blocks were loaded.
	 */
	for (off_t offset = 0; offset < size; offset += 89) {
		uint8_t byte;

		assert_int_equal(pread(saved.fd, &byte, 1, offset), 1);
		byte ^= (uint8_t) (1 << (offset % 8));
		assert_int_equal(pwrite(saved.fd, &byte, 1, offset), 1);
		assert_int_not_equal(load_zones(zones, &zone_count, &saved), DD_SUCCESS);
		assert_zones_empty(zones, zone_count);
		byte ^= (uint8_t) (1 << (offset % 8));
		assert_int_equal(pwrite(saved.fd, &byte, 1, offset), 1);
	}
	assert_success(load_zones(zones, &zone_count, &saved));
	for (unsigned int z = 0; z < zone_count; z++) {
		check_reloaded_zone(zones[z], &models[z]);
		uds_reset_open_chapter(zones[z]);
		free_model(&models[z]);
	}

	/* A truncated stream. */
	assert_success(ftruncate(saved.fd, 2 * DD_BUFFERED_BLOCK_SIZE));
	assert_int_not_equal(load_zones(zones, &zone_count, &saved), DD_SUCCESS);
	assert_zones_empty(zones, zone_count);
	free_zones(zones, zone_count);
	close(saved.fd);
}

/* Write @length bytes as a whole, valid stream. */
static void write_crafted(const struct saved *saved, const void *data, size_t length)
{
	struct dd_buffered_writer *writer;

	assert_success(ftruncate(saved->fd, 0));
	assert_success(dd_make_buffered_writer(saved->fd, 0, saved->region, NONCE, &writer));
	assert_success(dd_write_to_buffered_writer(writer, data, length));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
}

/* A stream header followed by @count random records (or as many as @records_written). */
static size_t craft_stream(uint8_t *buffer, const char *magic, uint32_t version, uint64_t count,
                           uint32_t records_written)
{
	memcpy(buffer, magic, 4);
	for (int i = 0; i < 4; i++)
		buffer[4 + i] = (uint8_t) (version >> (8 * i));
	for (int i = 0; i < 8; i++)
		buffer[8 + i] = (uint8_t) (count >> (8 * i));
	for (uint32_t r = 0; r < records_written; r++) {
		struct dd_record_name name;
		struct uds_record_data data;

		random_name(&name);
		random_data(&data);
		memcpy(buffer + 16 + r * 32, name.name, 16);
		memcpy(buffer + 16 + r * 32 + 16, data.data, 16);
	}
	return 16 + (size_t) records_written * 32;
}

/* A router that sends every name to a zone that does not exist. */
static unsigned int route_nowhere(const void *context, const struct dd_record_name *name)
{
	(void) name;
	return *(const unsigned int *) context;
}

static void test_load_rejects_bad_contents(void **state)
{
	struct uds_open_chapter_zone *zones[MAX_TEST_ZONES];
	struct dd_buffered_reader *reader;
	struct uds_geometry geometry;
	unsigned int zone_count = 2;
	uint8_t buffer[16 + 40 * 32];
	struct saved saved;
	size_t length;

	(void) state;
	random_state = 10;
	make_geometry(1, &geometry);
	open_saved(&geometry, &saved);
	make_zones(&geometry, zone_count, zones);

	/* A valid one first. */
	length = craft_stream(buffer, "UOCH", 1, 40, 40);
	write_crafted(&saved, buffer, length);
	assert_success(load_zones(zones, &zone_count, &saved));
	assert_int_equal(
	    uds_open_chapter_live_records(zones[0]) + uds_open_chapter_live_records(zones[1]), 40);
	for (unsigned int z = 0; z < zone_count; z++)
		uds_reset_open_chapter(zones[z]);

	length = craft_stream(buffer, "UOCX", 1, 40, 40);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_BAD_MAGIC);
	assert_zones_empty(zones, zone_count);

	length = craft_stream(buffer, "UOCH", 2, 40, 40);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_UNSUPPORTED_VERSION);
	assert_zones_empty(zones, zone_count);

	/*
	 * Far more records than the zones hold (2 x 63): more than twice as many is more than a
	 * save of any zone count writes. (Fewer are loaded as far as they fit; see
	 * test_save_load_limits().)
	 */
	length = craft_stream(buffer, "UOCH", 1, 2 * 126 + 1, 40);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_OVERFLOW);
	assert_zones_empty(zones, zone_count);
	length = craft_stream(buffer, "UOCH", 1, UINT64_MAX, 40);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_OVERFLOW);
	assert_zones_empty(zones, zone_count);

	/* A count larger than the records in the stream. */
	length = craft_stream(buffer, "UOCH", 1, 41, 40);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_END_OF_FILE);
	assert_zones_empty(zones, zone_count);

	/* A header cut short. */
	write_crafted(&saved, buffer, 10);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_END_OF_FILE);
	assert_zones_empty(zones, zone_count);

	/* A name saved twice (the copy comes after other records were loaded). */
	length = craft_stream(buffer, "UOCH", 1, 40, 40);
	memcpy(buffer + 16 + 30 * 32, buffer + 16 + 3 * 32, 16);
	write_crafted(&saved, buffer, length);
	assert_int_equal(load_zones(zones, &zone_count, &saved), DD_CORRUPT_DATA);
	assert_zones_empty(zones, zone_count);

	/* A router that names a zone out of range. */
	length = craft_stream(buffer, "UOCH", 1, 40, 40);
	write_crafted(&saved, buffer, length);
	assert_success(dd_make_buffered_reader(saved.fd, 0, saved.region, NONCE, &reader));
	assert_int_equal(
	    uds_load_open_chapter(zones, zone_count, route_nowhere, &zone_count, reader),
	    DD_INVALID_ARGUMENT);
	dd_free_buffered_reader(reader);
	assert_zones_empty(zones, zone_count);

	free_zones(zones, zone_count);
	close(saved.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_and_sizes),
		cmocka_unit_test(test_random_operations),
		cmocka_unit_test(test_fill_to_capacity),
		cmocka_unit_test(test_remove_then_put_again),
		cmocka_unit_test(test_tombstone_heavy),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_collation_order),
		cmocka_unit_test(test_save_load_round_trip),
		cmocka_unit_test(test_save_load_limits),
		cmocka_unit_test(test_load_rejects_damaged_streams),
		cmocka_unit_test(test_load_rejects_bad_contents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
