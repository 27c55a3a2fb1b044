// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rebuilding the volume index after a crash.
 *
 * With no clean save, the chapters on storage are the truth. The newest chapter is the highest
 * chapter number in a valid first index page; the window below it is replayed, oldest first.
 * A chapter with any page that does not verify (checksum, chapter number) is dropped, the rest
 * kept. Two chapter buffers alternate: the zone threads replay one while this thread reads and
 * verifies the next.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "chapter-index.h"
#include "delta-index.h"
#include "index-internal.h"
#include "logger.h"
#include "memory-alloc.h"
#include "record-page.h"
#include "time-utils.h"

/* A chapter read for replay, shared by the zones that replay it. */
struct replay_chapter {
	struct dd_completion completions[UDS_MAX_ZONES];
	struct uds_index *index;
	uint64_t chapter;
	uint32_t record_count;
	struct uds_volume_record *records;
	atomic_uint zones_left;
	pthread_mutex_t *mutex;
	pthread_cond_t *done;
};

/*
 * The chapter a name's volume index entry points at might hold another name with the same
 * address. Look in that chapter (blocking reads are fine while rebuilding).
 */
static bool chapter_has_name(struct index_zone *zone, uint64_t chapter,
                             const struct dd_record_name *name)
{
	struct uds_index *index = zone->index;
	const struct uds_geometry *g = &index->geometry;
	uint32_t list = uds_chapter_index_list(g, name);
	struct uds_cached_page *pages[2];
	uint32_t page_numbers[2];
	uint32_t record_page;

	if (uds_find_index_page(index->volume, chapter, list, &page_numbers[0]) != DD_SUCCESS)
		return false;
	for (int i = 0; i < 2; i++) {
		pages[i] = uds_page_cache_find(zone->cache, chapter, page_numbers[i]);
		if (pages[i] == NULL) {
			pages[i] = uds_page_cache_claim(zone->cache, chapter, page_numbers[i]);
			if ((pages[i] == NULL) ||
			    (uds_read_volume_page(index->volume, chapter, page_numbers[i],
			                          pages[i]->data) != DD_SUCCESS) ||
			    (uds_validate_cached_page(index, pages[i]) != DD_SUCCESS)) {
				if (pages[i] != NULL)
					uds_page_cache_release(zone->cache, pages[i]);
				return false;
			}
			pages[i]->state = UDS_PAGE_READY;
		}
		if (i == 1)
			break;
		if ((uds_search_chapter_index_page(&pages[0]->index_page, g, name, &record_page) !=
		     DD_SUCCESS) ||
		    (record_page == UDS_NO_RECORD_PAGE))
			return false;
		page_numbers[1] = g->index_pages_per_chapter + record_page;
	}
	return uds_search_record_page(g, pages[1]->data, name, NULL);
}

/* Replay one record of a chapter into the zone's part of the volume index. */
static int replay_record(struct index_zone *zone, const struct dd_record_name *name,
                         uint64_t chapter)
{
	struct uds_volume_index_record record;
	bool same_name;
	int result;

	result = uds_get_volume_index_record(zone->index->volume_index, name, &record);
	if (result != DD_SUCCESS)
		return result;
	if (!record.is_found)
		return uds_put_volume_index_record(&record, chapter);
	if (record.virtual_chapter == chapter)
		return DD_SUCCESS;
	same_name = record.is_collision || chapter_has_name(zone, record.virtual_chapter, name);
	if (same_name)
		return uds_set_volume_index_record_chapter(&record, chapter);
	/* The page reads may have moved nothing: the zone is ours alone. Search again. */
	result = uds_get_volume_index_record(zone->index->volume_index, name, &record);
	if (result != DD_SUCCESS)
		return result;
	return uds_put_volume_index_record(&record, chapter);
}

static void replay_chapter_on_zone(struct dd_completion *completion)
{
	struct replay_chapter *replay = completion->parent;
	struct index_zone *zone = &replay->index->zones[dd_current_thread_id()];

	for (uint32_t i = 0; i < replay->record_count; i++) {
		const struct dd_record_name *name = &replay->records[i].name;
		int result;

		if (uds_get_volume_index_zone(replay->index->volume_index, name) != zone->id)
			continue;
		result = replay_record(zone, name, replay->chapter);
		if ((result != DD_SUCCESS) && (result != DD_OVERFLOW)) {
			dd_log_error_strerror(result, "replay of chapter %llu failed",
			                      (unsigned long long) replay->chapter);
			break;
		}
	}
	if (atomic_fetch_sub(&replay->zones_left, 1) == 1) {
		pthread_mutex_lock(replay->mutex);
		pthread_cond_broadcast(replay->done);
		pthread_mutex_unlock(replay->mutex);
	}
}

/* Read the chapter in a slot; DD_SUCCESS only if every page verifies. */
static int read_chapter_for_replay(struct uds_index *index, uint64_t chapter, uint8_t *pages,
                                   struct replay_chapter *replay, uint16_t *last_lists)
{
	const struct uds_geometry *g = &index->geometry;
	int result = uds_read_chapter(index->volume, uds_chapter_slot(g, chapter), pages);

	replay->record_count = 0;
	for (uint32_t page = 0; (page < g->pages_per_chapter) && (result == DD_SUCCESS); page++) {
		uint8_t *data = pages + (size_t) page * g->bytes_per_page;

		if (page < g->index_pages_per_chapter) {
			struct uds_delta_page delta_page;

			result = uds_open_chapter_index_page(&delta_page, g, index->layout.nonce,
			                                     chapter, data);
			if (result != DD_SUCCESS)
				break;
			if (delta_page.highest_list_number + 1 != delta_page.lowest_list_number)
				last_lists[page] = (uint16_t) delta_page.highest_list_number;
			else
				last_lists[page] = (page == 0) ? 0 : last_lists[page - 1];
			continue;
		}
		result = uds_validate_record_page(g, index->layout.nonce, chapter,
		                                  page - g->index_pages_per_chapter, data);
		if (result == DD_SUCCESS)
			replay->record_count += uds_get_record_page_records(
			    g, data, &replay->records[replay->record_count]);
	}
	return result;
}

/* Find the newest chapter on storage: the highest chapter number of a valid first index page. */
static bool find_newest_chapter(struct uds_index *index, uint8_t *buffer, uint64_t *newest_ptr)
{
	const struct uds_geometry *g = &index->geometry;
	bool any = false;

	for (uint32_t slot = 0; slot < g->chapters_per_volume; slot++) {
		struct uds_delta_page page;

		if ((uds_read_volume_page(index->volume, slot, 0, buffer) != DD_SUCCESS) ||
		    (uds_open_delta_page(&page, index->layout.nonce, g->chapter_mean_delta,
		                         g->chapter_payload_bits, buffer,
		                         g->bytes_per_page) != DD_SUCCESS) ||
		    (uds_chapter_slot(g, page.virtual_chapter_number) != slot))
			continue;
		if (!any || (page.virtual_chapter_number > *newest_ptr))
			*newest_ptr = page.virtual_chapter_number;
		any = true;
	}
	return any;
}

static void launch_replay(struct uds_index *index, struct replay_chapter *replay)
{
	atomic_store(&replay->zones_left, index->zone_count);
	for (unsigned int z = 0; z < index->zone_count; z++) {
		dd_initialize_completion(&replay->completions[z], index->zone_threads);
		dd_prepare_completion(&replay->completions[z], replay_chapter_on_zone, NULL, z,
		                      replay);
		dd_launch_completion(&replay->completions[z]);
	}
}

static void wait_for_replay(struct replay_chapter *replay)
{
	pthread_mutex_lock(replay->mutex);
	while (atomic_load(&replay->zones_left) > 0)
		pthread_cond_wait(replay->done, replay->mutex);
	pthread_mutex_unlock(replay->mutex);
}

/*
 * Rebuild the volume index from the chapters on storage. Two chapter buffers alternate: the
 * zones replay one while this thread reads and verifies the next.
 */
int uds_rebuild_index(struct uds_index *index, uint64_t *open_chapter_ptr)
{
	const struct uds_geometry *g = &index->geometry;
	size_t chapter_bytes = (size_t) g->pages_per_chapter * g->bytes_per_page;
	pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t done = PTHREAD_COND_INITIALIZER;
	struct replay_chapter replays[2] = { 0 };
	uint8_t *pages[2] = { NULL, NULL };
	uint16_t *last_lists = NULL;
	uint64_t newest = 0;
	uint64_t first;
	dd_ktime_t start = dd_monotonic_ns();
	int result = DD_SUCCESS;

	for (int i = 0; (i < 2) && (result == DD_SUCCESS); i++) {
		result = dd_allocate_aligned(chapter_bytes, 4096, "rebuild chapter",
		                             (void **) &pages[i]);
		if (result == DD_SUCCESS)
			result = DD_ALLOCATE(g->records_per_chapter, struct uds_volume_record,
			                     "rebuild records", &replays[i].records);
		replays[i].index = index;
		replays[i].mutex = &mutex;
		replays[i].done = &done;
	}
	if (result == DD_SUCCESS)
		result =
		    DD_ALLOCATE(g->index_pages_per_chapter, uint16_t, "rebuild map", &last_lists);
	if ((result == DD_SUCCESS) && find_newest_chapter(index, pages[0], &newest)) {
		first = (newest + 2 >= g->chapters_per_volume) ? newest + 2 - g->chapters_per_volume
		                                               : 0;
		uds_set_volume_index_open_chapter(index->volume_index, newest + 1);
		for (unsigned int z = 0; z < index->zone_count; z++)
			index->zones[z].newest_chapter = newest + 1;
		for (uint64_t chapter = first; chapter <= newest; chapter++) {
			struct replay_chapter *replay = &replays[chapter % 2];

			wait_for_replay(replay);
			if (read_chapter_for_replay(index, chapter, pages[chapter % 2], replay,
			                            last_lists) != DD_SUCCESS) {
				index->chapters_dropped++;
				dd_log_warning(
				    "rebuild: chapter %llu is missing or damaged; dropped",
				    (unsigned long long) chapter);
				continue;
			}
			uds_set_index_page_map(index->volume, chapter, last_lists);
			replay->chapter = chapter;
			launch_replay(index, replay);
		}
		*open_chapter_ptr = newest + 1;
	} else {
		*open_chapter_ptr = 0;
	}
	for (int i = 0; i < 2; i++)
		wait_for_replay(&replays[i]);
	for (int i = 0; i < 2; i++) {
		dd_free(pages[i]);
		dd_free(replays[i].records);
	}
	dd_free(last_lists);
	index->rebuilt = true;
	dd_log_info("rebuilt the index through chapter %llu in %.1f s (%llu chapters dropped)",
	            (unsigned long long) newest, (double) (dd_monotonic_ns() - start) / 1e9,
	            (unsigned long long) index->chapters_dropped);
	return result;
}
