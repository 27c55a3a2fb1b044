// SPDX-License-Identifier: GPL-2.0-only
/*
 * The chapter writer: one thread that turns each closed chapter into pages and writes it.
 *
 * When a chapter closes, every zone hands its part (its open chapter records) to the writer and
 * goes on with a fresh open chapter; the part stays readable by its zone until the next close.
 * Once all Z parts are in, the writer walks the parts in chapter order (round robin over the
 * zones, see uds_start_open_chapter_collation()) one record page at a time: it puts the page's
 * names into the open chapter index, encodes the page (sorted within itself) and adds it to a
 * batch of WRITE_BATCH_BYTES of pages, written with one pwrite when full. Once every record page
 * is written, all the names are in the chapter index: it packs the index pages into the same
 * batch buffer and writes them the same way, then records the chapter's index page map, so the
 * zones (which only read chapters below written_below) never see a chapter half written.
 *
 * Memory. The writer holds one record page of records and one batch of pages (128 KiB at 4 KiB
 * pages) instead of a whole chapter of each (2.1 MB of records and 2.3 MB of pages for the 0.25
 * GB geometry), plus the open chapter index it fills. What lands on storage is the same, page for
 * page, as writing the chapter from one buffer.
 *
 * A crash part way through leaves some pages of the chapter new and the others of an older lap of
 * the ring (or never written); every page carries its chapter number and a checksum, so rebuild
 * sees such a chapter as torn.
 */
#include <pthread.h>
#include <string.h>

#include "chapter-index.h"
#include "index-internal.h"
#include "logger.h"
#include "memory-alloc.h"
#include "record-page.h"

enum {
	/* Bytes of pages written by one pwrite (at least one page is). */
	WRITE_BATCH_BYTES = 128 * 1024,
};

/* Pages in one write batch. */
static uint32_t batch_pages(const struct uds_geometry *geometry)
{
	uint32_t pages = WRITE_BATCH_BYTES / geometry->bytes_per_page;

	if (pages == 0)
		pages = 1;
	return (pages < geometry->pages_per_chapter) ? pages : geometry->pages_per_chapter;
}

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

/*
 * Write the @batched pages at the start of the batch buffer, which end with page @next_page - 1
 * of @chapter.
 */
static int write_batch(struct uds_index *index, uint64_t chapter, uint32_t next_page,
                       uint32_t batched)
{
	return uds_write_chapter_pages(index->volume, chapter, next_page - batched,
	                               index->writer.pages, batched);
}

/*
 * Collate, index, encode and write the record pages of @chapter; the open chapter index then
 * holds every name of the chapter.
 */
static int write_record_pages(struct uds_index *index, uint64_t chapter,
                              struct uds_open_chapter_collator *collator)
{
	struct chapter_writer *writer = &index->writer;
	const struct uds_geometry *g = &index->geometry;
	uint32_t batch = batch_pages(g);
	uint32_t batched = 0;
	int result = DD_SUCCESS;

	for (uint32_t page = 0; page < g->record_pages_per_chapter; page++) {
		uint32_t count = uds_collate_open_chapter_records(collator, writer->records,
		                                                  g->records_per_page);

		for (uint32_t i = 0; (i < count) && (result == DD_SUCCESS); i++) {
			result = uds_put_open_chapter_index_record(writer->chapter_index,
			                                           &writer->records[i].name, page);
			if (result == DD_OVERFLOW)
				result = DD_SUCCESS;
		}
		if (result == DD_SUCCESS)
			result = uds_encode_record_page(
			    g, index->layout.nonce, chapter, page, writer->records, count,
			    writer->pages + (size_t) batched * g->bytes_per_page);
		if ((result == DD_SUCCESS) &&
		    ((++batched == batch) || (page + 1 == g->record_pages_per_chapter))) {
			result = write_batch(index, chapter, g->index_pages_per_chapter + page + 1,
			                     batched);
			batched = 0;
		}
		if (result != DD_SUCCESS)
			return result;
	}
	return DD_SUCCESS;
}

/* Pack and write the chapter index pages of @chapter, and note the last list of each. */
static int write_index_pages(struct uds_index *index, uint64_t chapter)
{
	struct chapter_writer *writer = &index->writer;
	const struct uds_geometry *g = &index->geometry;
	uint32_t batch = batch_pages(g);
	uint32_t batched = 0;
	uint32_t first_list = 0;
	int result;

	for (uint32_t page = 0; page < g->index_pages_per_chapter; page++) {
		uint32_t lists = 0;

		result = uds_pack_open_chapter_index_page(
		    writer->chapter_index, writer->pages + (size_t) batched * g->bytes_per_page,
		    first_list, page + 1 == g->index_pages_per_chapter, &lists);
		if (result != DD_SUCCESS)
			return result;
		first_list += lists;
		writer->last_lists[page] = (uint16_t) ((first_list == 0) ? 0 : first_list - 1);
		if (lists == 0)
			writer->last_lists[page] = (page == 0) ? 0 : writer->last_lists[page - 1];
		if ((++batched == batch) || (page + 1 == g->index_pages_per_chapter)) {
			result = write_batch(index, chapter, page + 1, batched);
			batched = 0;
			if (result != DD_SUCCESS)
				return result;
		}
	}
	return DD_SUCCESS;
}

/* Build and write the chapter made of the zones' parts, then record its index page map. */
static int write_chapter(struct uds_index *index, uint64_t chapter)
{
	struct chapter_writer *writer = &index->writer;
	struct uds_open_chapter_collator collator;
	int result;

	uds_empty_open_chapter_index(writer->chapter_index, chapter);
	uds_start_open_chapter_collation(&collator, writer->parts, index->zone_count);
	result = write_record_pages(index, chapter, &collator);
	if (result == DD_SUCCESS)
		result = write_index_pages(index, chapter);
	if (result != DD_SUCCESS)
		return result;
	uds_set_index_page_map(index->volume, chapter, writer->last_lists);
	return DD_SUCCESS;
}

static void *writer_thread(void *argument)
{
	struct uds_index *index = argument;
	struct chapter_writer *writer = &index->writer;

	pthread_mutex_lock(&writer->mutex);
	for (;;) {
		uint64_t chapter;
		int result;

		while (!writer->stopping && (writer->zones_closed < index->zone_count))
			pthread_cond_wait(&writer->changed, &writer->mutex);
		if (writer->zones_closed < index->zone_count)
			break;
		chapter = writer->chapter;
		pthread_mutex_unlock(&writer->mutex);

		result = write_chapter(index, chapter);
		if (result != DD_SUCCESS)
			dd_log_error_strerror(result, "cannot write chapter %llu",
			                      (unsigned long long) chapter);

		pthread_mutex_lock(&writer->mutex);
		if ((result != DD_SUCCESS) && (writer->result == DD_SUCCESS))
			writer->result = result;
		writer->chapters_written += (result == DD_SUCCESS);
		/* Read here, under the mutex: the chapter index is the writer thread's alone. */
		writer->chapter_index_discards += writer->chapter_index->discarded_entries;
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
		result = DD_ALLOCATE(g->records_per_page, struct uds_volume_record,
		                     "writer records", &writer->records);
	if (result == DD_SUCCESS)
		result = dd_allocate_aligned((size_t) batch_pages(g) * g->bytes_per_page, 4096,
		                             "writer pages", (void **) &writer->pages);
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
