// SPDX-License-Identifier: GPL-2.0-only
/*
 * Saving and loading the index.
 *
 * A save waits until the index is idle, writes each volume index zone from its own thread into
 * its stream, then the open chapter and the index page map, and commits the save slot last (see
 * index-layout.h). A load reads them back into any zone count.
 */
#include "byte-order.h"
#include "index-internal.h"
#include "logger.h"
#include "memory-alloc.h"

/* Wait until no request, message or chapter write is pending. */
static int quiesce(struct uds_index *index)
{
	int result;

	struct dd_thread_set *caller = dd_current_thread_set();

	if ((caller != NULL) &&
	    ((caller == index->zone_threads) || (caller == index->reader_threads) ||
	     (caller == index->disk_threads)))
		return dd_log_error_strerror(DD_ASSERTION_FAILED,
		                             "an index cannot be saved from one of its threads");
	uds_flush_index(index);
	pthread_mutex_lock(&index->writer.mutex);
	result = index->writer.result;
	pthread_mutex_unlock(&index->writer.mutex);
	return result;
}

struct zone_save {
	struct uds_index *index;
	struct dd_buffered_writer **writers;
};

static void save_zone_on_thread(struct dd_completion *completion)
{
	struct zone_save *save = completion->parent;
	unsigned int zone = dd_current_thread_id();

	dd_finish_completion(completion, uds_save_volume_index_zone(save->index->volume_index, zone,
	                                                            save->writers[zone]));
}

static int save_index_page_map(struct uds_index *index, struct dd_buffered_writer *writer)
{
	const struct uds_volume *volume = index->volume;
	const struct uds_geometry *g = &index->geometry;
	int result = DD_SUCCESS;

	for (uint32_t slot = 0; (slot < g->chapters_per_volume) && (result == DD_SUCCESS); slot++) {
		uint8_t chapter[8];

		dd_put_le64(chapter, volume->map_chapters[slot]);
		result = dd_write_to_buffered_writer(writer, chapter, sizeof(chapter));
		for (uint32_t page = 0;
		     (page < g->index_pages_per_chapter) && (result == DD_SUCCESS); page++) {
			uint8_t last[2];

			dd_put_le16(
			    last,
			    volume->map_last_lists[(size_t) slot * g->index_pages_per_chapter +
			                           page]);
			result = dd_write_to_buffered_writer(writer, last, sizeof(last));
		}
	}
	return result;
}

static int load_index_page_map(struct uds_index *index, struct dd_buffered_reader *reader)
{
	const struct uds_geometry *g = &index->geometry;
	struct uds_volume *volume = index->volume;
	uint16_t *lists = NULL;
	int result = DD_ALLOCATE(g->index_pages_per_chapter, uint16_t, "page map", &lists);

	for (uint32_t slot = 0; (slot < g->chapters_per_volume) && (result == DD_SUCCESS); slot++) {
		uint8_t chapter[8];

		result = dd_read_from_buffered_reader(reader, chapter, sizeof(chapter));
		for (uint32_t page = 0;
		     (page < g->index_pages_per_chapter) && (result == DD_SUCCESS); page++) {
			uint8_t last[2];

			result = dd_read_from_buffered_reader(reader, last, sizeof(last));
			lists[page] = dd_get_le16(last);
		}
		if ((result == DD_SUCCESS) && (dd_get_le64(chapter) != UINT64_MAX)) {
			if (uds_chapter_slot(g, dd_get_le64(chapter)) != slot)
				result = dd_log_error_strerror(
				    DD_CORRUPT_DATA, "index page map slot %u is wrong", slot);
			else
				uds_set_index_page_map(volume, dd_get_le64(chapter), lists);
		}
	}
	dd_free(lists);
	return result;
}

static void free_writers(struct dd_buffered_writer **writers, unsigned int count)
{
	for (unsigned int i = 0; i < count; i++)
		dd_free_buffered_writer(writers[i]);
}

int uds_save_index(struct uds_index *index)
{
	struct dd_buffered_writer *writers[UDS_SAVE_MAX_STREAMS] = { NULL };
	struct uds_open_chapter_zone *parts[UDS_MAX_ZONES];
	struct zone_save zone_save = { index, writers };
	struct uds_save_info save;
	uint64_t newest;
	int result = quiesce(index);

	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot save index: it has failed");
	newest = index->zones[0].newest_chapter;
	result = uds_begin_save(&index->layout, &index->geometry, index->zone_count, newest,
	                        uds_oldest_chapter_of(index, newest), &save);
	for (unsigned int i = 0; (i < save.stream_count) && (result == DD_SUCCESS); i++)
		result = dd_make_buffered_writer(
		    index->fd, (off_t) save.streams[i].offset, save.streams[i].size,
		    uds_save_stream_nonce(&index->layout, &save, i), &writers[i]);
	for (unsigned int z = 0; (z < index->zone_count) && (result == DD_SUCCESS); z++)
		result = dd_perform_synchronous_action(index->zone_threads, z, save_zone_on_thread,
		                                       &zone_save);
	for (unsigned int z = 0; z < index->zone_count; z++)
		parts[z] = index->zones[z].open_chapter;
	if (result == DD_SUCCESS)
		result =
		    uds_save_open_chapter(parts, index->zone_count, writers[index->zone_count]);
	if (result == DD_SUCCESS)
		result = save_index_page_map(index, writers[index->zone_count + 1]);
	for (unsigned int i = 0; (i < save.stream_count) && (result == DD_SUCCESS); i++)
		result = dd_finish_buffered_writer(writers[i], false);
	if (result == DD_SUCCESS)
		result = uds_commit_save(&index->layout, &save);
	free_writers(writers, UDS_SAVE_MAX_STREAMS);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "index save failed");
	dd_log_info("index saved (sequence %llu, open chapter %llu)",
	            (unsigned long long) save.sequence, (unsigned long long) newest);
	return DD_SUCCESS;
}

static unsigned int route_by_volume_index(const void *context, const struct dd_record_name *name)
{
	return uds_get_volume_index_zone(context, name);
}

static void free_readers(struct dd_buffered_reader **readers, unsigned int count)
{
	for (unsigned int i = 0; i < count; i++)
		dd_free_buffered_reader(readers[i]);
}

/* Load a save into the (empty, not yet running) index. */
int uds_load_index_save(struct uds_index *index, const struct uds_save_info *save)
{
	struct dd_buffered_reader *readers[UDS_SAVE_MAX_STREAMS] = { NULL };
	struct uds_open_chapter_zone *parts[UDS_MAX_ZONES];
	int result = DD_SUCCESS;

	for (unsigned int i = 0; (i < save->stream_count) && (result == DD_SUCCESS); i++)
		result = dd_make_buffered_reader(
		    index->fd, (off_t) save->streams[i].offset, save->streams[i].size,
		    uds_save_stream_nonce(&index->layout, save, i), &readers[i]);
	if (result == DD_SUCCESS)
		result = uds_load_volume_index(index->volume_index, readers, save->zone_count);
	for (unsigned int z = 0; z < index->zone_count; z++)
		parts[z] = index->zones[z].open_chapter;
	if (result == DD_SUCCESS)
		result = uds_load_open_chapter(parts, index->zone_count, route_by_volume_index,
		                               index->volume_index, readers[save->zone_count]);
	if (result == DD_SUCCESS)
		result = load_index_page_map(index, readers[save->zone_count + 1]);
	free_readers(readers, UDS_SAVE_MAX_STREAMS);
	return result;
}
