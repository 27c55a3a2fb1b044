// SPDX-License-Identifier: GPL-2.0-only
/*
 * The chapter writer: one thread that turns each closed chapter into pages and writes it.
 *
 * When a chapter closes, every zone hands its part (its open chapter records) to the writer and
 * goes on with a fresh open chapter; the part stays readable by its zone until the next close.
 * Once all Z parts are in, the writer collates them into record pages (arrival order, sorted
 * within each page), builds and packs the chapter index, writes the chapter with one pwrite and
 * updates the index page map. written_below tells the zones which parts they may reuse.
 */
#include <pthread.h>
#include <string.h>

#include "chapter-index.h"
#include "index-internal.h"
#include "logger.h"
#include "memory-alloc.h"
#include "record-page.h"

/* Wait (rarely) until the writer is done with every chapter below @chapter. */
void uds_wait_for_chapter_writer(struct chapter_writer *writer, uint64_t chapter)
{
	pthread_mutex_lock(&writer->mutex);
	while (writer->written_below < chapter)
		pthread_cond_wait(&writer->changed, &writer->mutex);
	pthread_mutex_unlock(&writer->mutex);
}

/* Hand a zone's part of a chapter to the writer. */
void uds_submit_to_chapter_writer(struct chapter_writer *writer, unsigned int zone_number,
                                  struct uds_open_chapter_zone *part, unsigned int zone_count)
{
	pthread_mutex_lock(&writer->mutex);
	writer->parts[zone_number] = part;
	if (++writer->zones_closed == zone_count)
		pthread_cond_broadcast(&writer->changed);
	pthread_mutex_unlock(&writer->mutex);
}

/* Build the record pages and the chapter index of the collated records. */
static int build_chapter(struct uds_index *index, uint64_t chapter, uint32_t record_count)
{
	struct chapter_writer *writer = &index->writer;
	const struct uds_geometry *g = &index->geometry;
	uint8_t *record_pages =
	    writer->pages + (size_t) g->index_pages_per_chapter * g->bytes_per_page;
	uint32_t first_list = 0;
	int result = DD_SUCCESS;

	uds_empty_open_chapter_index(writer->chapter_index, chapter);
	for (uint32_t page = 0; page < g->record_pages_per_chapter; page++) {
		uint32_t start = page * g->records_per_page;
		uint32_t count = 0;

		if (start < record_count)
			count = record_count - start;
		if (count > g->records_per_page)
			count = g->records_per_page;
		for (uint32_t i = 0; (i < count) && (result == DD_SUCCESS); i++) {
			result = uds_put_open_chapter_index_record(
			    writer->chapter_index, &writer->records[start + i].name, page);
			if (result == DD_OVERFLOW)
				result = DD_SUCCESS;
		}
		if (result == DD_SUCCESS)
			result = uds_encode_record_page(
			    g, index->layout.nonce, chapter, page, &writer->records[start], count,
			    record_pages + (size_t) page * g->bytes_per_page);
		if (result != DD_SUCCESS)
			return result;
	}
	for (uint32_t page = 0; page < g->index_pages_per_chapter; page++) {
		uint32_t lists = 0;

		result = uds_pack_open_chapter_index_page(
		    writer->chapter_index, writer->pages + (size_t) page * g->bytes_per_page,
		    first_list, page + 1 == g->index_pages_per_chapter, &lists);
		if (result != DD_SUCCESS)
			return result;
		first_list += lists;
		writer->last_lists[page] = (uint16_t) ((first_list == 0) ? 0 : first_list - 1);
		if (lists == 0)
			writer->last_lists[page] = (page == 0) ? 0 : writer->last_lists[page - 1];
	}
	return DD_SUCCESS;
}

static void *writer_thread(void *argument)
{
	struct uds_index *index = argument;
	struct chapter_writer *writer = &index->writer;

	pthread_mutex_lock(&writer->mutex);
	for (;;) {
		uint64_t chapter;
		uint32_t count;
		int result;

		while (!writer->stopping && (writer->zones_closed < index->zone_count))
			pthread_cond_wait(&writer->changed, &writer->mutex);
		if (writer->zones_closed < index->zone_count)
			break;
		chapter = writer->chapter;
		pthread_mutex_unlock(&writer->mutex);

		count =
		    uds_collate_open_chapters(writer->parts, index->zone_count, writer->records);
		result = build_chapter(index, chapter, count);
		if (result == DD_SUCCESS)
			result = uds_write_chapter(index->volume, chapter, writer->pages,
			                           writer->last_lists);
		if (result != DD_SUCCESS)
			dd_log_error_strerror(result, "cannot write chapter %llu",
			                      (unsigned long long) chapter);

		pthread_mutex_lock(&writer->mutex);
		if ((result != DD_SUCCESS) && (writer->result == DD_SUCCESS))
			writer->result = result;
		writer->chapters_written += (result == DD_SUCCESS);
		writer->zones_closed = 0;
		writer->chapter = chapter + 1;
		writer->written_below = chapter + 1;
		pthread_cond_broadcast(&writer->changed);
	}
	pthread_mutex_unlock(&writer->mutex);
	return NULL;
}

int uds_make_chapter_writer(struct uds_index *index)
{
	struct chapter_writer *writer = &index->writer;
	const struct uds_geometry *g = &index->geometry;
	int result;

	pthread_mutex_init(&writer->mutex, NULL);
	pthread_cond_init(&writer->changed, NULL);
	result = DD_ALLOCATE(index->zone_count, struct uds_open_chapter_zone *, "writer parts",
	                     &writer->parts);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(g->records_per_chapter, struct uds_volume_record,
		                     "writer records", &writer->records);
	if (result == DD_SUCCESS)
		result = dd_allocate_aligned((size_t) g->pages_per_chapter * g->bytes_per_page,
		                             4096, "writer pages", (void **) &writer->pages);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(g->index_pages_per_chapter, uint16_t, "writer page map",
		                     &writer->last_lists);
	if (result == DD_SUCCESS)
		result =
		    uds_make_open_chapter_index(g, index->layout.nonce, &writer->chapter_index);
	return result;
}

int uds_start_chapter_writer(struct uds_index *index, uint64_t open_chapter)
{
	struct chapter_writer *writer = &index->writer;
	int result;

	writer->chapter = open_chapter;
	writer->written_below = open_chapter;
	result = pthread_create(&writer->thread, NULL, writer_thread, index);
	if (result != 0)
		return dd_log_error_strerror(result, "cannot start the chapter writer");
	writer->started = true;
	return DD_SUCCESS;
}

void uds_free_chapter_writer(struct uds_index *index)
{
	struct chapter_writer *writer = &index->writer;

	if (writer->started) {
		pthread_mutex_lock(&writer->mutex);
		writer->stopping = true;
		pthread_cond_broadcast(&writer->changed);
		pthread_mutex_unlock(&writer->mutex);
		pthread_join(writer->thread, NULL);
	}
	uds_free_open_chapter_index(writer->chapter_index);
	dd_free(writer->last_lists);
	dd_free(writer->pages);
	dd_free(writer->records);
	dd_free(writer->parts);
	pthread_cond_destroy(&writer->changed);
	pthread_mutex_destroy(&writer->mutex);
}
