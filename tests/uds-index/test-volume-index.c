// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the volume index.
 *
 * The main test drives an index the way the index engine does (search, then put, set or remove)
 * across many chapters, with every zone advancing its own window, and checks every answer
 * against a reference model of which chapter each name was last indexed in. Names expire after
 * chapters_per_volume chapters; the model also keeps an exact account of entries (puts less
 * removals less expiry discards), which the index's record count must match at all times.
 * Further tests build collisions by hand, check zone routing and independent zone windows,
 * overload the index to see early flushes and overflows, save and load across zone counts,
 * feed corrupt saves, exercise the two sub-indexes of a sparse index, and report the memory
 * cost in bits per record.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "buffered-io.h"
#include "geometry.h"
#include "memory-alloc.h"
#include "test-harness.h"
#include "test-random.h"
#include "volume-index.h"

enum {
	NONCE = 0x5eed,
};

static const uint64_t NO_CHAPTER = UINT64_MAX;

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return (a < b) ? a : b;
}

/* ------------------------------------------------------------------------------------------ */
/* Random numbers and names                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Set the sample bits (bytes 14-15) of a name to make it a sparse hook or not. */
static void set_hook(struct dd_record_name *name, bool hook)
{
	uint16_t sample = (uint16_t) (random_below(2048) * UDS_SPARSE_SAMPLE_RATE);

	if (!hook)
		sample += 1 + random_below(UDS_SPARSE_SAMPLE_RATE - 1);
	name->name[14] = (uint8_t) (sample >> 8);
	name->name[15] = (uint8_t) sample;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void make_geometry(uint32_t pages, uint32_t chapters, uint32_t sparse,
                          struct uds_geometry *geometry)
{
	assert_success(uds_make_custom_geometry(0, pages, chapters, sparse, geometry));
}

static struct uds_volume_index *make_index(const struct uds_geometry *geometry, unsigned int zones)
{
	struct uds_volume_index *index;

	assert_success(uds_make_volume_index(geometry, zones, &index));
	return index;
}

static struct uds_volume_index_stats get_stats(const struct uds_volume_index *index)
{
	struct uds_volume_index_stats stats;

	uds_get_volume_index_stats(index, &stats);
	return stats;
}

static void search(struct uds_volume_index *index, const struct dd_record_name *name,
                   struct uds_volume_index_record *record)
{
	assert_success(uds_get_volume_index_record(index, name, record));
	assert_int_equal(record->zone_number, uds_get_volume_index_zone(index, name));
}

static uint64_t lookup(const struct uds_volume_index *index, const struct dd_record_name *name)
{
	uint64_t chapter;

	assert_success(uds_lookup_volume_index_name(index, name, &chapter));
	return chapter;
}

/* Index a new name in @chapter (with a collision entry if it meets another name's entry). */
static int index_new_name(struct uds_volume_index *index, const struct dd_record_name *name,
                          uint64_t chapter)
{
	struct uds_volume_index_record record;

	search(index, name, &record);
	assert_false(record.is_found && record.is_collision);
	return uds_put_volume_index_record(&record, chapter);
}

static void open_chapter_in_zones(struct uds_volume_index *index, unsigned int zones,
                                  uint64_t chapter)
{
	/* Zones advance one by one, as their threads would. */
	for (unsigned int z = 0; z < zones; z++)
		uds_set_volume_index_zone_open_chapter(index, z, chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* The reference model                                                                         */
/* ------------------------------------------------------------------------------------------ */

struct model_name {
	struct dd_record_name name;
	/* The chapter of the name's entry, or NO_CHAPTER if it has none. */
	uint64_t chapter;
};

struct model {
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	unsigned int zones;
	struct model_name *names;
	uint32_t name_count;
	uint32_t used;
	uint64_t newest;
	/* Accounting of entries: every put adds one, every removal takes one away. */
	uint64_t puts;
	uint64_t removes;
	uint64_t overflows;
	uint64_t tolerated;
};

/* Give the model @name_count random names, none of them indexed yet. */
static void make_model_names(struct model *model, uint32_t name_count)
{
	free(model->names);
	model->names = calloc(name_count, sizeof(*model->names));
	assert_non_null(model->names);
	for (uint32_t i = 0; i < name_count; i++) {
		random_name(&model->names[i].name);
		model->names[i].chapter = NO_CHAPTER;
	}
	model->name_count = name_count;
	model->used = 0;
}

static void make_model(struct model *model, uint32_t pages, uint32_t chapters, uint32_t sparse,
                       unsigned int zones, uint32_t name_count)
{
	memset(model, 0, sizeof(*model));
	make_geometry(pages, chapters, sparse, &model->geometry);
	model->index = make_index(&model->geometry, zones);
	model->zones = zones;
	make_model_names(model, name_count);
}

static void free_model(struct model *model)
{
	uds_free_volume_index(model->index);
	free(model->names);
}

/* The chapters a name stays in the index. */
static uint32_t model_window(const struct model *model, const struct dd_record_name *name)
{
	/* In a sparse index only hooks stay beyond the dense chapters. */
	if (uds_is_sparse_geometry(&model->geometry) &&
	    !uds_is_volume_index_sample(model->index, name))
		return model->geometry.dense_chapters_per_volume;
	return model->geometry.chapters_per_volume;
}

/*
 * Entries hold their chapter modulo this power of two (the design of volume-index.c): an entry
 * left unpurged this long after its chapter reads as a chapter of the window again.
 */
static uint64_t alias_period(uint32_t window)
{
	uint64_t limit = window - 1 + ((window / 256 > 2) ? window / 256 : 2);
	uint64_t period = 2;

	while (period <= limit)
		period *= 2;
	return period;
}

/* The oldest chapter in which @name can be found when every zone has opened model->newest. */
static uint64_t model_oldest(const struct model *model, const struct dd_record_name *name)
{
	uint32_t window = model_window(model, name);

	return (model->newest >= window) ? model->newest - window + 1 : 0;
}

static bool model_is_live(const struct model *model, const struct model_name *entry)
{
	return (entry->chapter != NO_CHAPTER) &&
	       (entry->chapter >= model_oldest(model, &entry->name));
}

/*
 * Search a name and check the answer against the model, and against the read-only lookup done
 * first. A live name must be found in its chapter. A name without a live entry may still meet
 * another name's ordinary entry of a live chapter, or its own long-expired entry aliased into
 * the window.
 */
static void model_search(struct model *model, struct model_name *entry,
                         struct uds_volume_index_record *record)
{
	uint64_t looked_up;

	/* Prefetching (this name, and any other) must change nothing. */
	uds_prefetch_volume_index_name(model->index, &entry->name, 0);
	uds_prefetch_volume_index_name(
	    model->index, &model->names[random_below(model->used + 1)].name, random_below(2));
	uds_prefetch_volume_index_name(model->index, &entry->name, 1);
	looked_up = lookup(model->index, &entry->name);
	search(model->index, &entry->name, record);
	assert_int_equal(looked_up, record->is_found ? record->virtual_chapter : NO_CHAPTER);
	if (model_is_live(model, entry)) {
		assert_true(record->is_found);
		assert_int_equal(record->virtual_chapter, entry->chapter);
		return;
	}
	if (record->is_found) {
		if (record->is_collision) {
			assert_true(entry->chapter != NO_CHAPTER);
			assert_int_equal((record->virtual_chapter - entry->chapter) %
			                     alias_period(model_window(model, &entry->name)),
			                 0);
		}
		assert_in_range(record->virtual_chapter, model_oldest(model, &entry->name),
		                model->newest);
		model->tolerated++;
	}
}

/* Index a name in the newest chapter, as the engine would. */
static void model_index(struct model *model, struct model_name *entry)
{
	struct uds_volume_index_record record;
	int result;

	model_search(model, entry, &record);
	if (model_is_live(model, entry) || record.is_collision) {
		assert_success(uds_set_volume_index_record_chapter(&record, model->newest));
		assert_true(record.is_found);
		entry->chapter = model->newest;
		return;
	}
	result = uds_put_volume_index_record(&record, model->newest);
	if (result == DD_OVERFLOW) {
		model->overflows++;
		return;
	}
	assert_success(result);
	assert_true(record.is_found);
	model->puts++;
	entry->chapter = model->newest;
}

static void model_remove(struct model *model, struct model_name *entry)
{
	struct uds_volume_index_record record;

	model_search(model, entry, &record);
	if (!model_is_live(model, entry))
		return;
	assert_success(uds_remove_volume_index_record(&record));
	assert_false(record.is_found);
	assert_int_equal(uds_remove_volume_index_record(&record), DD_BAD_STATE);
	model->removes++;
	entry->chapter = NO_CHAPTER;
}

/* Chapters outside a zone's window are refused by put and set. */
static void check_window_refusals(struct model *model, struct model_name *entry)
{
	struct uds_volume_index_record record;
	uint64_t oldest = model_oldest(model, &entry->name);

	search(model->index, &entry->name, &record);
	assert_int_equal(uds_put_volume_index_record(&record, model->newest + 1),
	                 DD_INVALID_ARGUMENT);
	if (oldest > 0)
		assert_int_equal(uds_put_volume_index_record(&record, oldest - 1),
		                 DD_INVALID_ARGUMENT);
	if (record.is_found)
		assert_int_equal(uds_set_volume_index_record_chapter(&record, model->newest + 1),
		                 DD_INVALID_ARGUMENT);
}

/* The index's entry count must be exactly what the model accounts for. */
static void check_accounting(const struct model *model)
{
	struct uds_volume_index_stats stats = get_stats(model->index);

	assert_int_equal(stats.record_count, model->puts - model->removes - stats.discard_count);
	assert_int_equal(stats.overflow_count, model->overflows);
}

/* One chapter of engine-like traffic: new names, repeated names, a few removals. */
static void model_chapter(struct model *model, uint32_t operations)
{
	for (uint32_t i = 0; i < operations; i++) {
		uint32_t choice = random_below(100);
		struct model_name *entry;

		if ((choice < 55) && (model->used < model->name_count)) {
			entry = &model->names[model->used++];
		} else {
			if (model->used == 0)
				continue;
			entry = &model->names[random_below(model->used)];
		}
		if (choice >= 95)
			model_remove(model, entry);
		else
			model_index(model, entry);
		if (choice == 94)
			check_window_refusals(model, entry);
	}
}

/* Advance every zone to the next chapter. */
static void model_open_chapter(struct model *model, uint64_t chapter)
{
	model->newest = chapter;
	open_chapter_in_zones(model->index, model->zones, chapter);
}

/* Search every name that was ever indexed (removing every expired entry at its key). */
static void model_search_all(struct model *model)
{
	for (uint32_t i = 0; i < model->used; i++) {
		struct uds_volume_index_record record;

		model_search(model, &model->names[i], &record);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: traffic against the model                                                            */
/* ------------------------------------------------------------------------------------------ */

static void run_model_traffic(unsigned int zones, uint32_t pages, uint32_t chapters,
                              uint32_t sparse, uint32_t rounds)
{
	struct model model;
	struct uds_volume_index_stats stats;
	uint64_t chapter;
	uint64_t step;

	make_model(&model, pages, chapters, sparse, zones, 0);
	make_model_names(&model, model.geometry.records_per_chapter * chapters * rounds);
	for (chapter = 0; chapter < (uint64_t) chapters * rounds; chapter++) {
		if (chapter > 0)
			model_open_chapter(&model, chapter);
		model_chapter(&model, model.geometry.records_per_chapter);
		check_accounting(&model);
	}
	stats = get_stats(model.index);
	assert_true(stats.discard_count > 0);
	/* Entries still held: the live ones plus expired ones nobody has walked over yet. */
	assert_true(stats.record_count <= model.geometry.records_per_volume * 3 / 2);
	assert_int_equal(stats.early_flushes, 0);
	assert_int_equal(stats.overflow_count, 0);
	/* Few names meet an entry that is not theirs. */
	assert_true(model.tolerated * 50 < model.puts);

	/*
	 * Let every chapter expire, searching every name often enough that each entry is seen while
	 * it reads as expired: that purges everything.
	 */
	step = alias_period(chapters) - chapters;
	if (sparse > 0)
		step = min_u64(step, alias_period(chapters - sparse) - (chapters - sparse));
	for (uint64_t last = chapter - 1; chapter < last + alias_period(chapters) + step;
	     chapter += step) {
		model_open_chapter(&model, chapter);
		model_search_all(&model);
		check_accounting(&model);
	}
	stats = get_stats(model.index);
	assert_int_equal(stats.record_count, 0);
	assert_int_equal(stats.collision_count, 0);
	assert_int_equal(stats.discard_count, model.puts - model.removes);
	free_model(&model);
}

static void test_dense_traffic_one_zone(void **state)
{
	(void) state;
	random_state = 1;
	/* 16 chapters of 254 records: entry values have 5 bits. */
	run_model_traffic(1, 2, 16, 0, 5);
}

static void test_dense_traffic_three_zones(void **state)
{
	(void) state;
	random_state = 2;
	/* A chapter count that is not a power of two, and uneven zones. */
	run_model_traffic(3, 3, 23, 0, 4);
}

static void test_sparse_traffic(void **state)
{
	(void) state;
	random_state = 3;
	/* 40 chapters, the newest 8 dense; hooks live 40 chapters, other names 8. */
	run_model_traffic(2, 2, 40, 32, 3);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: collisions                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* Names that share bytes 0-7 (so list and key) and differ after. */
static void make_colliding_names(struct dd_record_name *names, unsigned int count, bool hook)
{
	random_name(&names[0]);
	set_hook(&names[0], hook);
	for (unsigned int i = 1; i < count; i++) {
		do {
			names[i] = names[0];
			for (unsigned int b = 8; b < 14; b++)
				names[i].name[b] = (uint8_t) next_random();
			set_hook(&names[i], hook);
		} while (dd_record_name_equal(&names[i], &names[0]));
	}
}

static void expect_found(struct uds_volume_index *index, const struct dd_record_name *name,
                         uint64_t chapter, bool collision)
{
	struct uds_volume_index_record record;

	assert_int_equal(lookup(index, name), chapter);
	search(index, name, &record);
	assert_true(record.is_found);
	assert_int_equal(record.virtual_chapter, chapter);
	assert_int_equal(record.is_collision, collision);
}

static void run_collisions(uint32_t sparse, bool hook)
{
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	struct uds_volume_index_record record;
	struct uds_volume_index_stats stats;
	struct dd_record_name names[5];
	uint32_t window;

	make_geometry(1, 16, sparse, &geometry);
	window = (sparse > 0 && !hook) ? geometry.dense_chapters_per_volume : 16;
	index = make_index(&geometry, 2);
	make_colliding_names(names, 5, hook);
	assert_int_equal(uds_is_volume_index_sample(index, &names[0]), (sparse > 0) && hook);
	for (unsigned int i = 1; i < 5; i++)
		assert_int_equal(uds_get_volume_index_zone(index, &names[i]),
		                 uds_get_volume_index_zone(index, &names[0]));
	uds_set_volume_index_open_chapter(index, 3);

	/* A: an ordinary entry. */
	search(index, &names[0], &record);
	assert_false(record.is_found);
	assert_success(uds_put_volume_index_record(&record, 1));
	/* B meets A's entry; the engine finds its record is not there and adds a collision. */
	search(index, &names[1], &record);
	assert_true(record.is_found);
	assert_false(record.is_collision);
	assert_int_equal(record.virtual_chapter, 1);
	assert_success(uds_put_volume_index_record(&record, 2));
	assert_true(record.is_collision);
	expect_found(index, &names[1], 2, true);
	expect_found(index, &names[0], 1, false);
	/* The name's own collision entry cannot be added twice. */
	search(index, &names[1], &record);
	assert_int_equal(uds_put_volume_index_record(&record, 3), DD_DUPLICATE_NAME);
	/* C and D too. */
	search(index, &names[2], &record);
	assert_success(uds_put_volume_index_record(&record, 3));
	search(index, &names[3], &record);
	assert_success(uds_put_volume_index_record(&record, 2));
	stats = get_stats(index);
	assert_int_equal(stats.record_count, 4);
	assert_int_equal(stats.collision_count, 3);
	/* E, never indexed, sees the default entry (A's). */
	expect_found(index, &names[4], 1, false);

	/* Changing a collision entry's chapter. */
	search(index, &names[1], &record);
	assert_success(uds_set_volume_index_record_chapter(&record, 3));
	expect_found(index, &names[1], 3, true);
	expect_found(index, &names[2], 3, true);
	expect_found(index, &names[3], 2, true);

	/*
	 * Removing the default entry: the next entry becomes the default. Collision entries are
	 * kept newest first, so that is D's.
	 */
	search(index, &names[0], &record);
	assert_success(uds_remove_volume_index_record(&record));
	stats = get_stats(index);
	assert_int_equal(stats.record_count, 3);
	assert_int_equal(stats.collision_count, 2);
	expect_found(index, &names[3], 2, false);
	expect_found(index, &names[1], 3, true);
	expect_found(index, &names[2], 3, true);
	/* Removing a collision entry (C's): C then sees the default. */
	search(index, &names[2], &record);
	assert_success(uds_remove_volume_index_record(&record));
	expect_found(index, &names[2], 2, false);
	expect_found(index, &names[1], 3, true);

	/* The default (D, chapter 2) expires while B (moved to window + 1) lives on. */
	uds_set_volume_index_open_chapter(index, window + 1);
	search(index, &names[1], &record);
	assert_success(uds_set_volume_index_record_chapter(&record, window + 1));
	uds_set_volume_index_open_chapter(index, window + 2);
	assert_int_equal(lookup(index, &names[1]), window + 1);
	stats = get_stats(index);
	expect_found(index, &names[1], window + 1, false);
	stats.discard_count++;
	assert_int_equal(get_stats(index).discard_count, stats.discard_count);
	assert_int_equal(get_stats(index).collision_count, 0);
	assert_int_equal(get_stats(index).record_count, 1);
	/* C is indexed again, as a collision behind B. */
	search(index, &names[2], &record);
	assert_true(record.is_found && !record.is_collision);
	assert_success(uds_put_volume_index_record(&record, window + 2));
	expect_found(index, &names[2], window + 2, true);

	/* B expires before C: C's collision entry becomes the default. */
	uds_set_volume_index_open_chapter(index, 2 * window + 1);
	expect_found(index, &names[2], window + 2, false);
	expect_found(index, &names[1], window + 2, false);
	assert_int_equal(get_stats(index).discard_count, stats.discard_count + 1);
	assert_int_equal(get_stats(index).record_count, 1);
	assert_int_equal(get_stats(index).collision_count, 0);

	/* A collision entry (E's) expires while the default (C's) lives on. */
	search(index, &names[4], &record);
	assert_success(uds_put_volume_index_record(&record, 2 * window + 1));
	expect_found(index, &names[4], 2 * window + 1, true);
	uds_set_volume_index_open_chapter(index, 2 * window + 2);
	search(index, &names[2], &record);
	assert_success(uds_set_volume_index_record_chapter(&record, 2 * window + 2));
	uds_set_volume_index_open_chapter(index, 3 * window + 1);
	assert_int_equal(lookup(index, &names[4]), 2 * window + 2);
	expect_found(index, &names[4], 2 * window + 2, false);
	assert_int_equal(get_stats(index).discard_count, stats.discard_count + 2);
	assert_int_equal(get_stats(index).record_count, 1);
	assert_int_equal(get_stats(index).collision_count, 0);
	uds_free_volume_index(index);
}

static void test_collisions(void **state)
{
	(void) state;
	random_state = 4;
	run_collisions(0, false);
}

static void test_sparse_collisions(void **state)
{
	(void) state;
	random_state = 5;
	run_collisions(12, true);
	run_collisions(12, false);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: zones and windows                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_zones(void **state)
{
	enum {
		ZONES = 4,
		NAMES = 4000
	};
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	struct dd_record_name *names = calloc(NAMES, sizeof(*names));
	unsigned int counts[ZONES] = { 0 };
	unsigned int zone_zero_puts = 0;

	(void) state;
	random_state = 6;
	assert_non_null(names);
	make_geometry(4, 32, 0, &geometry);
	index = make_index(&geometry, ZONES);
	assert_int_equal(get_stats(index).list_count, 256);
	for (unsigned int i = 0; i < NAMES; i++) {
		struct uds_volume_index_record record;

		random_name(&names[i]);
		search(index, &names[i], &record);
		assert_true(record.zone_number < ZONES);
		counts[record.zone_number]++;
		if (record.is_found)
			continue;
		assert_success(uds_put_volume_index_record(&record, 0));
		zone_zero_puts += (record.zone_number == 0) ? 1 : 0;
	}
	for (unsigned int z = 0; z < ZONES; z++)
		assert_in_range(counts[z], NAMES / ZONES * 3 / 4, NAMES / ZONES * 5 / 4);

	/* Zone 0 moves a whole window on; the others stay at chapter 0. */
	for (uint64_t chapter = 1; chapter <= 32; chapter++)
		uds_set_volume_index_zone_open_chapter(index, 0, chapter);
	for (unsigned int i = 0; i < NAMES; i++) {
		struct uds_volume_index_record record;
		unsigned int zone = uds_get_volume_index_zone(index, &names[i]);

		if (zone == 0) {
			assert_int_equal(lookup(index, &names[i]), NO_CHAPTER);
			search(index, &names[i], &record);
			assert_false(record.is_found);
			assert_success(uds_put_volume_index_record(&record, 32));
			assert_int_equal(lookup(index, &names[i]), 32);
		} else {
			assert_int_equal(lookup(index, &names[i]), 0);
			search(index, &names[i], &record);
			assert_true(record.is_found);
			assert_int_equal(uds_put_volume_index_record(&record, 32),
			                 DD_INVALID_ARGUMENT);
			assert_int_equal(uds_set_volume_index_record_chapter(&record, 1),
			                 DD_INVALID_ARGUMENT);
		}
	}
	assert_int_equal(get_stats(index).discard_count, zone_zero_puts);

	/* Moving every zone at once: the window of each becomes [9, 40]. */
	uds_set_volume_index_open_chapter(index, 40);
	for (unsigned int i = 0; i < 200; i++) {
		struct uds_volume_index_record record;
		bool zone_zero = (uds_get_volume_index_zone(index, &names[i]) == 0);

		assert_int_equal(lookup(index, &names[i]), zone_zero ? 32 : NO_CHAPTER);
		search(index, &names[i], &record);
		assert_int_equal(record.is_found, zone_zero);
		if (zone_zero) {
			assert_int_equal(uds_set_volume_index_record_chapter(&record, 8),
			                 DD_INVALID_ARGUMENT);
			assert_success(uds_set_volume_index_record_chapter(&record, 9));
		} else {
			assert_success(uds_put_volume_index_record(&record, 40));
		}
	}
	uds_free_volume_index(index);
	free(names);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: running out of memory                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * More new names per chapter than the index is sized for: the index must expire chapters early
 * to make room rather than refuse names.
 */
static void test_early_flush(void **state)
{
	enum {
		PAGES = 4,
		CHAPTERS = 58,
		ROUNDS = 3
	};
	struct model model;
	struct uds_volume_index_stats stats;
	uint32_t per_chapter;
	uint64_t chapter;
	uint64_t newest_puts = 0;
	uint64_t old_puts = 0;
	uint64_t old_found = 0;

	(void) state;
	random_state = 7;
	/* This shape needs just under one 64 KiB zone, so little memory is left over. */
	make_model(&model, PAGES, CHAPTERS, 0, 1, 0);
	per_chapter = model.geometry.records_per_chapter * 3 / 2;
	make_model_names(&model, per_chapter * CHAPTERS * ROUNDS);
	for (chapter = 0; chapter < CHAPTERS * ROUNDS; chapter++) {
		if (chapter > 0)
			model_open_chapter(&model, chapter);
		for (uint32_t i = 0; i < per_chapter; i++) {
			struct model_name *entry = &model.names[model.used++];
			struct uds_volume_index_record record;
			int result;

			search(model.index, &entry->name, &record);
			if (record.is_found && record.is_collision)
				continue;
			result = uds_put_volume_index_record(&record, chapter);
			if (result == DD_OVERFLOW) {
				model.overflows++;
				continue;
			}
			assert_success(result);
			model.puts++;
			entry->chapter = chapter;
		}
	}
	stats = get_stats(model.index);
	printf("early flush: %llu puts, %llu early flushes, %llu overflows, %llu discards\n",
	       (unsigned long long) model.puts, (unsigned long long) stats.early_flushes,
	       (unsigned long long) stats.overflow_count, (unsigned long long) stats.discard_count);
	assert_true(stats.early_flushes > 0);
	assert_int_equal(stats.overflow_count, model.overflows);
	/* The index makes room by expiring early, not by refusing names. */
	assert_true(model.overflows * 1000 < model.puts);
	assert_int_equal(stats.record_count, model.puts - stats.discard_count);
	/* It holds about what it is sized for, not the 1.5 windows it was given. */
	assert_true(stats.record_count < model.geometry.records_per_volume * 11 / 10);

	/* The newest chapter is whole; the oldest chapters of the window are mostly gone. */
	for (uint32_t i = 0; i < model.used; i++) {
		const struct model_name *entry = &model.names[i];
		uint64_t found;

		if (entry->chapter == NO_CHAPTER)
			continue;
		found = lookup(model.index, &entry->name);
		if (entry->chapter == chapter - 1) {
			assert_int_equal(found, entry->chapter);
			newest_puts++;
		} else if ((entry->chapter + CHAPTERS >= chapter) &&
		           (entry->chapter + CHAPTERS - 8 < chapter)) {
			old_puts++;
			old_found += (found == entry->chapter) ? 1 : 0;
		}
	}
	printf("early flush: %llu of %llu names of the oldest 8 chapters of the window found\n",
	       (unsigned long long) old_found, (unsigned long long) old_puts);
	assert_true(newest_puts > per_chapter * 99 / 100);
	assert_true(old_found * 10 < old_puts);
	free_model(&model);
}

static void test_overflow(void **state)
{
	enum {
		NAMES = 40000
	};
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	struct dd_record_name *names = calloc(NAMES, sizeof(*names));
	bool *stored = calloc(NAMES, sizeof(*stored));
	uint64_t overflows = 0;
	uint64_t stored_count = 0;
	struct uds_volume_index_stats stats;

	(void) state;
	random_state = 8;
	assert_non_null(names);
	assert_non_null(stored);
	make_geometry(1, 64, 0, &geometry);
	index = make_index(&geometry, 1);
	/* Far more names than the memory holds, all in one chapter: no early flush can help. */
	for (unsigned int i = 0; i < NAMES; i++) {
		struct uds_volume_index_record record;
		int result;

		random_name(&names[i]);
		search(index, &names[i], &record);
		if (record.is_found) {
			/* Rare: another name's entry; the engine would add a collision. */
			continue;
		}
		result = uds_put_volume_index_record(&record, 0);
		if (result == DD_OVERFLOW) {
			overflows++;
			assert_false(record.is_found);
			continue;
		}
		assert_success(result);
		stored[i] = true;
		stored_count++;
	}
	stats = get_stats(index);
	assert_true(overflows > 0);
	assert_int_equal(stats.overflow_count, overflows);
	assert_int_equal(stats.record_count, stored_count);
	assert_int_equal(stats.early_flushes, 0);
	for (unsigned int i = 0; i < NAMES; i++) {
		if (stored[i])
			assert_int_equal(lookup(index, &names[i]), 0);
	}

	/* Opening the next chapter expires chapter 0 early, and puts succeed again. */
	uds_set_volume_index_open_chapter(index, 1);
	stats = get_stats(index);
	assert_int_equal(stats.early_flushes, 1);
	overflows = 0;
	for (unsigned int i = 0; i < 2000; i++) {
		struct uds_volume_index_record record;
		struct dd_record_name name;
		int result;

		random_name(&name);
		search(index, &name, &record);
		assert_false(record.is_found);
		result = uds_put_volume_index_record(&record, 1);
		if (result == DD_OVERFLOW) {
			/* Only until searches have purged enough of chapter 0. */
			assert_true(i < 20);
			overflows++;
			continue;
		}
		assert_success(result);
		assert_int_equal(lookup(index, &name), 1);
	}
	printf("overflow: %llu overflows after the early flush\n", (unsigned long long) overflows);
	assert_true(get_stats(index).discard_count > 0);
	/* A put outside the (now narrowed) window is refused. */
	{
		struct uds_volume_index_record record;

		search(index, &names[0], &record);
		assert_int_equal(uds_put_volume_index_record(&record, 0), DD_INVALID_ARGUMENT);
	}
	uds_free_volume_index(index);
	free(names);
	free(stored);
}

/* ------------------------------------------------------------------------------------------ */
/* Save and load                                                                               */
/* ------------------------------------------------------------------------------------------ */

struct saved {
	int fd;
	size_t region;
	unsigned int zones;
};

static void save_zones(const struct uds_volume_index *index, const struct uds_geometry *geometry,
                       unsigned int zones, struct saved *saved)
{
	saved->fd = memfd_create("volume-index-save", 0);
	assert_true(saved->fd >= 0);
	saved->zones = zones;
	saved->region =
	    dd_buffered_stream_size(uds_compute_volume_index_save_bytes(geometry, zones));
	for (unsigned int z = 0; z < zones; z++) {
		struct dd_buffered_writer *writer;

		assert_success(dd_make_buffered_writer(saved->fd, (off_t) (z * saved->region),
		                                       saved->region, NONCE + z, &writer));
		assert_success(uds_save_volume_index_zone(index, z, writer));
		assert_success(dd_finish_buffered_writer(writer, false));
		dd_free_buffered_writer(writer);
	}
}

/* Load from the saved streams, taken in the order @order (NULL: in order), @count of them. */
static int load_zones(struct uds_volume_index *index, const struct saved *saved,
                      const unsigned int *order, unsigned int count)
{
	struct dd_buffered_reader *readers[UDS_MAX_ZONES] = { NULL };
	int result = DD_SUCCESS;

	for (unsigned int i = 0; (i < count) && (result == DD_SUCCESS); i++) {
		unsigned int z = (order == NULL) ? i : order[i];

		result = dd_make_buffered_reader(saved->fd, (off_t) (z * saved->region),
		                                 saved->region, NONCE + z, &readers[i]);
	}
	if (result == DD_SUCCESS)
		result = uds_load_volume_index(index, readers, count);
	for (unsigned int i = 0; i < count; i++)
		dd_free_buffered_reader(readers[i]);
	return result;
}

static void assert_empty(const struct uds_volume_index *index, const struct model *model)
{
	struct uds_volume_index_stats stats = get_stats(index);

	assert_int_equal(stats.record_count, 0);
	assert_int_equal(stats.collision_count, 0);
	for (uint32_t i = 0; i < model->used; i += 7)
		assert_int_equal(lookup(index, &model->names[i].name), NO_CHAPTER);
}

/* Fill a model's index over several windows, with collisions, and note every lookup. */
static uint64_t *fill_for_save(struct model *model, uint32_t chapters)
{
	uint64_t *expected;

	for (uint64_t chapter = 0; chapter < chapters; chapter++) {
		if (chapter > 0)
			model_open_chapter(model, chapter);
		model_chapter(model, model->geometry.records_per_chapter);
		/* A few hand-made collisions in the newest chapter. */
		for (unsigned int i = 0; i < 3; i++) {
			struct dd_record_name names[2];
			struct uds_volume_index_record record;

			make_colliding_names(names, 2, (i % 2) == 0);
			search(model->index, &names[0], &record);
			if (record.is_found)
				continue;
			assert_success(uds_put_volume_index_record(&record, chapter));
			search(model->index, &names[1], &record);
			assert_success(uds_put_volume_index_record(&record, chapter));
			model->puts += 2;
		}
	}
	assert_true(get_stats(model->index).collision_count > 0);
	expected = calloc(model->used, sizeof(*expected));
	assert_non_null(expected);
	for (uint32_t i = 0; i < model->used; i++)
		expected[i] = lookup(model->index, &model->names[i].name);
	return expected;
}

static void check_loaded(const struct uds_volume_index *index, const struct model *model,
                         const uint64_t *expected)
{
	struct uds_volume_index_stats original = get_stats(model->index);
	struct uds_volume_index_stats loaded = get_stats(index);

	assert_int_equal(loaded.record_count, original.record_count);
	assert_int_equal(loaded.collision_count, original.collision_count);
	assert_int_equal(loaded.discard_count, original.discard_count);
	assert_int_equal(loaded.list_count, original.list_count);
	for (uint32_t i = 0; i < model->used; i++)
		assert_int_equal(lookup(index, &model->names[i].name), expected[i]);
}

static void run_save_load(uint32_t sparse)
{
	static const unsigned int zone_counts[] = { 1, 2, 3, 5, UDS_MAX_ZONES };
	struct model model;
	struct saved saved;
	uint64_t *expected;
	uint32_t chapters = 24;

	make_model(&model, 2, 16 + sparse, sparse, 3, 254 * chapters);
	expected = fill_for_save(&model, chapters);
	save_zones(model.index, &model.geometry, 3, &saved);

	for (unsigned int i = 0; i < sizeof(zone_counts) / sizeof(zone_counts[0]); i++) {
		struct uds_volume_index *index = make_index(&model.geometry, zone_counts[i]);
		struct uds_volume_index_record record;
		struct dd_record_name name;

		assert_success(load_zones(index, &saved, NULL, 3));
		check_loaded(index, &model, expected);
		/* The engine then sets the open chapter; nothing moves. */
		uds_set_volume_index_open_chapter(index, model.newest);
		check_loaded(index, &model, expected);
		/* And the loaded index takes new names. */
		random_name(&name);
		search(index, &name, &record);
		assert_false(record.is_found);
		assert_success(uds_put_volume_index_record(&record, model.newest));
		assert_int_equal(lookup(index, &name), model.newest);
		uds_free_volume_index(index);
	}
	/* Loading into the index that was saved replaces its contents with the same. */
	assert_success(load_zones(model.index, &saved, NULL, 3));
	for (uint32_t i = 0; i < model.used; i++)
		assert_int_equal(lookup(model.index, &model.names[i].name), expected[i]);
	close(saved.fd);
	free(expected);
	free_model(&model);
}

static void test_save_load(void **state)
{
	(void) state;
	random_state = 9;
	run_save_load(0);
}

static void test_sparse_save_load(void **state)
{
	(void) state;
	random_state = 10;
	run_save_load(24);
}

/* Zones saved at different chapters load with the newest window. */
static void test_load_uneven_windows(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	struct uds_volume_index *loaded;
	struct dd_record_name names[3];
	struct saved saved;

	(void) state;
	random_state = 11;
	make_geometry(1, 16, 0, &geometry);
	index = make_index(&geometry, 2);
	/* One name in one zone, two in the other. */
	random_name(&names[0]);
	for (unsigned int i = 1; i < 3; i++) {
		do {
			random_name(&names[i]);
		} while (uds_get_volume_index_zone(index, &names[i]) ==
		         uds_get_volume_index_zone(index, &names[0]));
	}
	uds_set_volume_index_open_chapter(index, 20);
	assert_success(index_new_name(index, &names[0], 20));
	assert_success(index_new_name(index, &names[1], 18));
	assert_success(index_new_name(index, &names[2], 10));
	/* The zone of names[0] moves on to chapter 30; the other stays at 20. */
	uds_set_volume_index_zone_open_chapter(index, uds_get_volume_index_zone(index, &names[0]),
	                                       30);
	assert_int_equal(lookup(index, &names[2]), 10);
	save_zones(index, &geometry, 2, &saved);
	loaded = make_index(&geometry, 1);
	assert_success(load_zones(loaded, &saved, NULL, 2));
	assert_int_equal(lookup(loaded, &names[0]), 20);
	assert_int_equal(lookup(loaded, &names[1]), 18);
	/* Chapter 10 is below the window of the newest chapter: it was overwritten. */
	assert_int_equal(lookup(loaded, &names[2]), NO_CHAPTER);
	/* The window is [15, 30]: chapter 14 is refused, 30 accepted. */
	{
		struct uds_volume_index_record record;
		struct dd_record_name name;

		random_name(&name);
		search(loaded, &name, &record);
		assert_int_equal(uds_put_volume_index_record(&record, 14), DD_INVALID_ARGUMENT);
		assert_int_equal(uds_put_volume_index_record(&record, 31), DD_INVALID_ARGUMENT);
		assert_success(uds_put_volume_index_record(&record, 30));
	}
	close(saved.fd);
	uds_free_volume_index(loaded);
	uds_free_volume_index(index);
}

/*
 * A zone that expired chapters early does not hide them after a load: they are still on
 * storage, and the other zones kept them.
 */
static void test_load_early_flushed_zone(void **state)
{
	enum {
		FILL = 40000
	};
	struct uds_geometry geometry;
	struct uds_volume_index *index;
	struct uds_volume_index *loaded;
	struct dd_record_name kept;
	struct dd_record_name flushed;
	struct saved saved;
	unsigned int filled = 0;

	(void) state;
	random_state = 16;
	make_geometry(1, 16, 0, &geometry);
	index = make_index(&geometry, 2);
	uds_set_volume_index_open_chapter(index, 8);
	do {
		random_name(&kept);
	} while (uds_get_volume_index_zone(index, &kept) != 0);
	assert_success(index_new_name(index, &kept, 8));
	do {
		random_name(&flushed);
	} while (uds_get_volume_index_zone(index, &flushed) != 1);
	assert_success(index_new_name(index, &flushed, 8));
	/* Zone 1 gets far more names than it can hold, so that opening chapter 9 flushes 8. */
	while (filled < FILL) {
		struct uds_volume_index_record record;
		struct dd_record_name name;
		int result;

		random_name(&name);
		if (uds_get_volume_index_zone(index, &name) != 1)
			continue;
		filled++;
		search(index, &name, &record);
		if (record.is_found)
			continue;
		result = uds_put_volume_index_record(&record, 8);
		assert_true((result == DD_SUCCESS) || (result == DD_OVERFLOW));
	}
	assert_true(get_stats(index).overflow_count > 0);
	uds_set_volume_index_open_chapter(index, 9);
	assert_true(get_stats(index).early_flushes > 0);
	assert_int_equal(lookup(index, &kept), 8);
	assert_int_equal(lookup(index, &flushed), NO_CHAPTER);

	save_zones(index, &geometry, 2, &saved);
	for (unsigned int zones = 1; zones <= 2; zones++) {
		loaded = make_index(&geometry, zones);
		assert_success(load_zones(loaded, &saved, NULL, 2));
		assert_int_equal(lookup(loaded, &kept), 8);
		assert_int_equal(lookup(loaded, &flushed), 8);
		assert_int_equal(get_stats(loaded).early_flushes, get_stats(index).early_flushes);
		uds_free_volume_index(loaded);
	}
	close(saved.fd);
	uds_free_volume_index(index);
}

/* Read a whole stream's payload. */
static size_t read_stream(const struct saved *saved, unsigned int z, uint8_t **data_ptr)
{
	struct dd_buffered_reader *reader;
	uint8_t *data = malloc(saved->region);
	size_t size = 0;

	assert_non_null(data);
	assert_success(dd_make_buffered_reader(saved->fd, (off_t) (z * saved->region),
	                                       saved->region, NONCE + z, &reader));
	while (dd_read_from_buffered_reader(reader, data + size, 1) == DD_SUCCESS)
		size++;
	dd_free_buffered_reader(reader);
	*data_ptr = data;
	return size;
}

/* Replace a stream's payload. */
static void write_stream(const struct saved *saved, unsigned int z, const uint8_t *data,
                         size_t size)
{
	struct dd_buffered_writer *writer;

	assert_success(dd_make_buffered_writer(saved->fd, (off_t) (z * saved->region),
	                                       saved->region, NONCE + z, &writer));
	assert_success(dd_write_to_buffered_writer(writer, data, size));
	assert_success(dd_finish_buffered_writer(writer, false));
	dd_free_buffered_writer(writer);
}

/* Load after replacing zone 1's stream with @data; it must fail and leave the index empty. */
static void expect_bad_stream(struct uds_volume_index *index, const struct model *model,
                              const struct saved *saved, const uint8_t *data, size_t size,
                              int expected)
{
	int result;

	write_stream(saved, 1, data, size);
	result = load_zones(index, saved, NULL, 2);
	if (expected != DD_SUCCESS)
		assert_int_equal(result, expected);
	else
		assert_int_not_equal(result, DD_SUCCESS);
	assert_empty(index, model);
}

static void test_load_rejects_bad_saves(void **state)
{
	static const unsigned int swapped[] = { 1, 0 };
	struct model model;
	struct uds_geometry other_geometry;
	struct uds_volume_index *other;
	struct saved saved;
	uint64_t *expected;
	uint8_t *good;
	uint8_t *bad;
	size_t size;

	(void) state;
	random_state = 12;
	/* Four pages a chapter: enough records for zone 1's stream to fill two blocks. */
	make_model(&model, 4, 16, 0, 2, 508 * 20);
	expected = fill_for_save(&model, 20);
	save_zones(model.index, &model.geometry, 2, &saved);

	/* Too few zones, or zones out of order. */
	assert_int_equal(load_zones(model.index, &saved, NULL, 1), DD_CORRUPT_DATA);
	assert_empty(model.index, &model);
	assert_success(load_zones(model.index, &saved, NULL, 2));
	check_loaded(model.index, &model, expected);
	assert_int_equal(load_zones(model.index, &saved, swapped, 2), DD_CORRUPT_DATA);
	assert_empty(model.index, &model);
	assert_int_equal(uds_load_volume_index(model.index, NULL, 0), DD_INVALID_ARGUMENT);

	/* Another geometry: more chapters, or sparse. */
	make_geometry(2, 17, 0, &other_geometry);
	other = make_index(&other_geometry, 2);
	assert_int_equal(load_zones(other, &saved, NULL, 2), DD_CORRUPT_DATA);
	uds_free_volume_index(other);
	make_geometry(2, 16, 4, &other_geometry);
	other = make_index(&other_geometry, 2);
	assert_int_equal(load_zones(other, &saved, NULL, 2), DD_CORRUPT_DATA);
	uds_free_volume_index(other);

	/* Streams whose blocks are sound but whose contents are not. */
	size = read_stream(&saved, 1, &good);
	bad = malloc(size);
	assert_non_null(bad);
	memcpy(bad, good, size);
	bad[0] ^= 1;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_BAD_MAGIC);
	memcpy(bad, good, size);
	bad[4] = 1;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_UNSUPPORTED_VERSION);
	memcpy(bad, good, size);
	bad[8] = 0;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_CORRUPT_DATA);
	memcpy(bad, good, size);
	bad[20] = 1;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_CORRUPT_DATA);
	/* The window: oldest after newest, then a window wider than the volume. */
	memcpy(bad, good, size);
	bad[24 + 8 + 7] = 0x40;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_CORRUPT_DATA);
	memcpy(bad, good, size);
	bad[24 + 16 + 7] = 0x40;
	expect_bad_stream(model.index, &model, &saved, bad, size, DD_CORRUPT_DATA);
	/* Truncated: header only, then half the delta data. */
	expect_bad_stream(model.index, &model, &saved, good, 72, DD_SUCCESS);
	expect_bad_stream(model.index, &model, &saved, good, size / 2, DD_SUCCESS);
	/* Damage in the delta lists. */
	for (size_t offset = 72 + 60; offset < size; offset += size / 7) {
		memcpy(bad, good, size);
		bad[offset] ^= 0xA5;
		write_stream(&saved, 1, bad, size);
		if (load_zones(model.index, &saved, NULL, 2) != DD_SUCCESS)
			assert_empty(model.index, &model);
	}
	/* And the good stream loads again. */
	write_stream(&saved, 1, good, size);
	assert_success(load_zones(model.index, &saved, NULL, 2));
	check_loaded(model.index, &model, expected);

	/* A flipped byte in the blocks themselves. */
	{
		uint8_t byte;
		/* In the second block: the first is checked when the reader is made. */
		off_t offset = (off_t) saved.region + DD_BUFFERED_BLOCK_SIZE + 100;

		assert_int_equal(pread(saved.fd, &byte, 1, offset), 1);
		byte ^= 0x10;
		assert_int_equal(pwrite(saved.fd, &byte, 1, offset), 1);
		assert_int_equal(load_zones(model.index, &saved, NULL, 2), DD_CHECKSUM_MISMATCH);
		assert_empty(model.index, &model);
	}
	free(good);
	free(bad);
	free(expected);
	close(saved.fd);
	free_model(&model);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests: sparse specifics, arguments, memory                                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * A zone filled to the brim (more new names than it is sized for) still saves within
 * uds_compute_volume_index_save_bytes(), and not far under it: the bound sizes the save slots.
 */
static void test_full_zone_save_bound(void **state)
{
	struct model model;
	struct saved saved;
	struct uds_volume_index *loaded;
	uint8_t *data;
	size_t bound;
	size_t size;

	(void) state;
	random_state = 21;
	make_model(&model, 4, 58, 0, 1, 508 * 3 / 2 * 116);
	for (uint64_t chapter = 0; chapter < 116; chapter++) {
		if (chapter > 0)
			model_open_chapter(&model, chapter);
		/* Half again as many new names as a chapter holds: the zone runs full. */
		for (uint32_t i = 0; i < 508 * 3 / 2; i++) {
			struct uds_volume_index_record record;
			int result;

			search(model.index, &model.names[model.used++].name, &record);
			if (record.is_found && record.is_collision)
				continue;
			result = uds_put_volume_index_record(&record, chapter);
			assert_true((result == DD_SUCCESS) || (result == DD_OVERFLOW));
		}
	}
	assert_true(get_stats(model.index).early_flushes > 0);
	bound = uds_compute_volume_index_save_bytes(&model.geometry, 1);
	save_zones(model.index, &model.geometry, 1, &saved);
	size = read_stream(&saved, 0, &data);
	printf("full zone save: %zu bytes, bound %zu\n", size, bound);
	assert_true(size <= bound);
	assert_true(size > bound * 3 / 4);
	loaded = make_index(&model.geometry, 1);
	assert_success(load_zones(loaded, &saved, NULL, 1));
	assert_int_equal(get_stats(loaded).record_count, get_stats(model.index).record_count);
	uds_free_volume_index(loaded);
	free(data);
	close(saved.fd);
	free_model(&model);
}

static void test_sparse_windows(void **state)
{
	struct uds_geometry geometry;
	struct uds_geometry dense_geometry;
	struct uds_volume_index *index;
	struct uds_volume_index *dense;
	struct dd_record_name hooks[100];
	struct dd_record_name others[100];
	struct uds_volume_index_stats stats;

	(void) state;
	random_state = 13;
	/* 20 chapters, 5 of them dense. */
	make_geometry(1, 20, 15, &geometry);
	make_geometry(1, 20, 0, &dense_geometry);
	index = make_index(&geometry, 3);
	dense = make_index(&dense_geometry, 3);
	stats = get_stats(index);
	assert_int_equal(stats.list_count, 2 * 256);
	assert_true(stats.memory_allocated > 0);
	for (unsigned int i = 0; i < 100; i++) {
		random_name(&hooks[i]);
		set_hook(&hooks[i], true);
		random_name(&others[i]);
		set_hook(&others[i], false);
		assert_true(uds_is_volume_index_sample(index, &hooks[i]));
		assert_false(uds_is_volume_index_sample(index, &others[i]));
		assert_false(uds_is_volume_index_sample(dense, &hooks[i]));
		assert_success(index_new_name(index, &hooks[i], 0));
		assert_success(index_new_name(index, &others[i], 0));
	}
	uds_set_volume_index_open_chapter(index, 4);
	for (unsigned int i = 0; i < 100; i++) {
		assert_int_equal(lookup(index, &hooks[i]), 0);
		assert_int_equal(lookup(index, &others[i]), 0);
	}
	/* Chapter 0 becomes sparse: only the hooks remain. */
	uds_set_volume_index_open_chapter(index, 5);
	for (unsigned int i = 0; i < 100; i++) {
		struct uds_volume_index_record record;

		assert_int_equal(lookup(index, &hooks[i]), 0);
		assert_int_equal(lookup(index, &others[i]), NO_CHAPTER);
		search(index, &others[i], &record);
		assert_false(record.is_found);
		/* The dense window is [1, 5], the hook window [0, 5]. */
		assert_int_equal(uds_put_volume_index_record(&record, 0), DD_INVALID_ARGUMENT);
		search(index, &hooks[i], &record);
		assert_success(uds_set_volume_index_record_chapter(&record, 0));
	}
	stats = get_stats(index);
	assert_int_equal(stats.record_count, 100);
	assert_int_equal(stats.discard_count, 100);
	/* Hooks last the whole window of 20 chapters. */
	uds_set_volume_index_open_chapter(index, 19);
	assert_int_equal(lookup(index, &hooks[0]), 0);
	uds_set_volume_index_open_chapter(index, 20);
	assert_int_equal(lookup(index, &hooks[0]), NO_CHAPTER);
	uds_free_volume_index(dense);
	uds_free_volume_index(index);
}

static void test_bad_arguments(void **state)
{
	struct uds_geometry geometry;
	struct uds_volume_index *index = NULL;
	struct uds_volume_index_record record;
	struct dd_record_name name;
	struct dd_buffered_writer *writer;
	int fd;

	(void) state;
	random_state = 14;
	make_geometry(1, 16, 0, &geometry);
	assert_int_equal(uds_make_volume_index(&geometry, 0, &index), DD_INVALID_ARGUMENT);
	assert_int_equal(uds_make_volume_index(&geometry, UDS_MAX_ZONES + 1, &index),
	                 DD_INVALID_ARGUMENT);
	assert_null(index);
	uds_free_volume_index(NULL);
	index = make_index(&geometry, UDS_MAX_ZONES);
	random_name(&name);
	search(index, &name, &record);
	assert_false(record.is_found);
	assert_int_equal(uds_set_volume_index_record_chapter(&record, 0), DD_BAD_STATE);
	assert_int_equal(uds_remove_volume_index_record(&record), DD_BAD_STATE);
	assert_int_equal(uds_put_volume_index_record(&record, 1), DD_INVALID_ARGUMENT);
	assert_success(uds_put_volume_index_record(&record, 0));
	assert_int_equal(lookup(index, &name), 0);
	fd = memfd_create("bad-arguments", 0);
	assert_true(fd >= 0);
	assert_success(dd_make_buffered_writer(fd, 0, 1 << 20, NONCE, &writer));
	assert_int_equal(uds_save_volume_index_zone(index, UDS_MAX_ZONES, writer),
	                 DD_INVALID_ARGUMENT);
	dd_free_buffered_writer(writer);
	close(fd);
	uds_free_volume_index(index);
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - start->tv_sec) +
	       (double) (now.tv_nsec - start->tv_nsec) / 1e9;
}

/*
 * Fill an index for several windows with new names (as a workload without duplicates would),
 * check that it neither flushes early nor overflows, and report its memory per record and speed.
 */
static void measure(uint32_t pages, uint32_t chapters, unsigned int zones, uint32_t rounds)
{
	enum {
		LOOKUPS = 100000
	};
	struct model model;
	struct uds_volume_index_stats stats;
	struct timespec start;
	double fill_seconds;
	double lookup_seconds;
	size_t computed;
	double bits;

	make_model(&model, pages, chapters, 0, zones, 0);
	computed = uds_compute_volume_index_memory(&model.geometry);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (uint64_t chapter = 0; chapter < (uint64_t) chapters * rounds; chapter++) {
		if (chapter > 0)
			open_chapter_in_zones(model.index, zones, chapter);
		for (uint32_t i = 0; i < model.geometry.records_per_chapter; i++) {
			struct uds_volume_index_record record;
			struct dd_record_name name;

			random_name(&name);
			assert_success(uds_get_volume_index_record(model.index, &name, &record));
			if (!record.is_found || !record.is_collision)
				assert_success(uds_put_volume_index_record(&record, chapter));
			model.puts++;
		}
	}
	fill_seconds = seconds_since(&start);
	stats = get_stats(model.index);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (uint32_t i = 0; i < LOOKUPS; i++) {
		struct dd_record_name name;

		random_name(&name);
		lookup(model.index, &name);
	}
	lookup_seconds = seconds_since(&start);
	bits = (double) stats.memory_allocated * 8 / (double) model.geometry.records_per_volume;
	printf("%u zones, %llu records per volume: %.2f bits per record allocated; %llu entries "
	       "(%.1f%% of the volume), %llu early flushes, %llu overflows; %.0f ns per search "
	       "and put, %.0f ns per lookup\n",
	       zones, (unsigned long long) model.geometry.records_per_volume, bits,
	       (unsigned long long) stats.record_count,
	       100.0 * (double) stats.record_count / (double) model.geometry.records_per_volume,
	       (unsigned long long) stats.early_flushes, (unsigned long long) stats.overflow_count,
	       fill_seconds * 1e9 / (double) model.puts, lookup_seconds * 1e9 / LOOKUPS);
	/* Computed for the zone count that rounds zone memory up the most. */
	assert_true(stats.memory_allocated <= computed);
	assert_true(stats.memory_allocated + UDS_MAX_ZONES * 64 * 1024 >= computed);
	assert_int_equal(stats.early_flushes, 0);
	assert_int_equal(stats.overflow_count, 0);
	/* Not yet purged expired entries stay within a few percent. */
	assert_true(stats.record_count < model.geometry.records_per_volume * 103 / 100);
	free_model(&model);
}

static void test_memory(void **state)
{
	static const uint32_t memory_sizes[] = { 256, 1024, 4096 };
	struct uds_geometry geometry;

	(void) state;
	random_state = 15;
	for (unsigned int i = 0; i < sizeof(memory_sizes) / sizeof(memory_sizes[0]); i++) {
		for (int sparse = 0; sparse <= 1; sparse++) {
			double bits;

			assert_success(uds_make_geometry(memory_sizes[i], sparse, 0, &geometry));
			bits = (double) uds_compute_volume_index_memory(&geometry) * 8 /
			       (double) geometry.records_per_volume;
			printf(
			    "%u MB %s: %llu records per volume, volume index %zu bytes, %.2f bits "
			    "per record (%.2f per record of the dense-equivalent window)\n",
			    memory_sizes[i], sparse ? "sparse" : "dense",
			    (unsigned long long) geometry.records_per_volume,
			    uds_compute_volume_index_memory(&geometry), bits,
			    sparse ? bits * UDS_SPARSE_CHAPTER_FACTOR : bits);
			/* The budget of the whole process is 3.4 bytes per record. */
			if (memory_sizes[i] == 256)
				assert_true(bits * (sparse ? UDS_SPARSE_CHAPTER_FACTOR : 1) < 27.2);
		}
	}
	/*
	 * Scaled-down indexes of 1,016 lists of 256 records: 1024 chapters, so that a list sees
	 * about one new name every four chapters as in the full-size index; and 256 chapters in
	 * four zones.
	 */
	measure(2, 1024, 1, 2);
	measure(8, 256, 4, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_sparse_collisions),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_dense_traffic_one_zone),
		cmocka_unit_test(test_dense_traffic_three_zones),
		cmocka_unit_test(test_sparse_traffic),
		cmocka_unit_test(test_sparse_windows),
		cmocka_unit_test(test_early_flush),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_sparse_save_load),
		cmocka_unit_test(test_load_uneven_windows),
		cmocka_unit_test(test_load_early_flushed_zone),
		cmocka_unit_test(test_load_rejects_bad_saves),
		cmocka_unit_test(test_full_zone_save_bound),
		cmocka_unit_test(test_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
