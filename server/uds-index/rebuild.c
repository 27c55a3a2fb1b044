// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rebuilding the volume index after a crash.
 *
 * With no clean save, the chapters on storage are the truth. The newest chapter is the highest
 * chapter number in a valid first index page; the window below it is replayed, oldest first.
 * A chapter with any page that does not verify (checksum, chapter number) is dropped, the rest
 * kept. Dense chapters replay every name; in a sparse index, the chapters that are sparse
 * relative to the newest one replay their hooks only (the dense sub-index does not cover them).
 *
 * Threads. Replaying a name is a search and an insertion in the volume index, bound by cache
 * misses, so the replay uses every core whatever the index's zone count: it fills a volume
 * index of R zones, R = max(zone count, online cores), at most UDS_MAX_ZONES, and each zone
 * is replayed by a replay thread of its own (plain threads: the index's zone threads are not
 * used). The calling thread reads and verifies chapters into one of two batch buffers while
 * the replay threads work through the other.
 *
 * Order. A batch holds the names of several chapters (up to BATCH_CHAPTERS chapters' worth).
 * Each replay thread picks the names of its zone out of the batch and sorts them with a stable
 * radix sort by their place in the volume index, (list, key): it then walks the volume index
 * memory in order instead of jumping about, and names that share a list are replayed one after
 * the other, so each search starts where the last one stopped (the delta index keeps a search
 * cursor per zone). Each name's list header and then its list bits are
 * prefetched a few names ahead, so the cache misses of several searches overlap. At 0.25 GB the
 * two together cut the CPU time of the replay by about a third; prefetching without sorting
 * saves only half as much, and bigger batches little more. The order comes from the volume index
 * itself (uds_get_volume_index_order()). The copies of one name in several chapters stay oldest
 * first, being stable sorted; replay_record() does not depend on it anyway: the newest chapter wins
 * in any order.
 *
 * Same address. An entry found at a name's address may be another name's: a collision entry
 * certainly is this name's; otherwise the chapter it points at is searched, reading its index
 * page and record page from storage into the replay thread's own page buffers (the zones' page
 * caches belong to the zone threads). The chapter is one this rebuild has already verified and
 * mapped, so the page map is only ever read for chapters published to the replay threads.
 *
 * Conversion. If R is the index's zone count, the rebuilt volume index is the index's own. If
 * not, it is written zone by zone (in parallel) into the save slot that uds_begin_save() picks,
 * the one not holding the newest save, and the save is never committed: the slot header stays
 * invalid, so a crash from here on simply leads to another rebuild. The R-zone index is freed
 * before the index's own volume index is made and loaded from those streams, so two full volume
 * indexes never exist at once. Should the conversion fail, the rebuild is done again directly
 * into an index of the right zone count.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chapter-index.h"
#include "delta-index.h"
#include "index-internal.h"
#include "logger.h"
#include "memory-alloc.h"
#include "record-page.h"
#include "time-utils.h"

enum {
	/* Chapters' worth of names in a batch (more sorts better, but costs memory). */
	BATCH_CHAPTERS = 2,
	/* Most chapters in one batch (a sparse chapter brings its hooks only). */
	MAX_BATCH_CHAPTERS = 64,
	/* Batch buffers: one being read while the replay threads work through the other. */
	BATCH_BUFFERS = 2,
	/* Names ahead of the one replayed whose list header, then list bits, are prefetched. */
	PREFETCH_HEADER_AHEAD = 8,
	PREFETCH_LIST_AHEAD = 4,
	/* Radix sort digits. */
	RADIX_BITS = 8,
	RADIX_SIZE = 1 << RADIX_BITS,
	RADIX_DIGITS = 32 / RADIX_BITS,
};

/* The names of a run of chapters, in chapter order, and who is still replaying them. */
struct batch {
	struct dd_record_name *names;
	uint32_t name_count;
	unsigned int chapter_count;
	uint64_t chapters[MAX_BATCH_CHAPTERS];
	/* The names of chapters[i] are names[starts[i]] to names[starts[i + 1] - 1]. */
	uint32_t starts[MAX_BATCH_CHAPTERS + 1];
	/* Replay threads not done with the batch (under the rebuild mutex). */
	unsigned int threads_left;
};

/* A name of a batch to replay, with its sort key. */
struct replay_name {
	uint32_t sort_key;
	uint32_t ref;
};

struct rebuild;

/* A replay thread: one zone of the volume index being rebuilt. */
struct replay_thread {
	struct rebuild *rebuild;
	unsigned int zone;
	pthread_t thread;
	bool started;
	struct replay_name *names;
	struct replay_name *scratch;
	uint32_t capacity;
	/* Two pages (index page, record page) for looking a name up in a chapter. */
	uint8_t *pages;
	uint64_t lookups;
	uint64_t failures;
	int result;
};

struct rebuild {
	struct uds_index *index;
	const struct uds_geometry *geometry;
	struct uds_volume_index *volume_index;
	unsigned int thread_count;
	struct replay_thread *threads;
	/* The newest closed chapter, and the open chapter after it. */
	uint64_t newest;
	uint64_t open_chapter;
	uint32_t batch_capacity;
	struct batch batches[BATCH_BUFFERS];
	pthread_mutex_t mutex;
	pthread_cond_t published;
	pthread_cond_t replayed;
	/* Batches published so far, and whether the last one is. */
	uint64_t batch_count;
	bool finished;
	/* The reader's buffers: one chapter's pages and one page's records. */
	uint8_t *chapter_pages;
	struct uds_volume_record *page_records;
	uint16_t *last_lists;
};

/**
 * sort_names() - Stable LSD radix sort of names by sort key; skips digits all names share.
 *
 * Return: the array that holds the sorted names (@names or @scratch).
 */
static struct replay_name *sort_names(struct replay_name *names, struct replay_name *scratch,
                                      uint32_t count)
{
	uint32_t counts[RADIX_DIGITS][RADIX_SIZE];

	if (count < 2)
		return names;
	memset(counts, 0, sizeof(counts));
	for (uint32_t i = 0; i < count; i++)
		for (unsigned int d = 0; d < RADIX_DIGITS; d++)
			counts[d][(names[i].sort_key >> (d * RADIX_BITS)) & (RADIX_SIZE - 1)]++;
	for (unsigned int d = 0; d < RADIX_DIGITS; d++) {
		unsigned int shift = d * RADIX_BITS;
		uint32_t offset = 0;
		struct replay_name *swap;

		if (counts[d][(names[0].sort_key >> shift) & (RADIX_SIZE - 1)] == count)
			continue;
		for (unsigned int b = 0; b < RADIX_SIZE; b++) {
			uint32_t n = counts[d][b];

			counts[d][b] = offset;
			offset += n;
		}
		for (uint32_t i = 0; i < count; i++)
			scratch[counts[d][(names[i].sort_key >> shift) & (RADIX_SIZE - 1)]++] =
			    names[i];
		swap = names;
		names = scratch;
		scratch = swap;
	}
	return names;
}

/** chapter_of() - The chapter of name @ref of a batch. */
static uint64_t chapter_of(const struct batch *batch, uint32_t ref)
{
	unsigned int low = 0;
	unsigned int high = batch->chapter_count - 1;

	while (low < high) {
		unsigned int middle = (low + high + 1) / 2;

		if (batch->starts[middle] <= ref)
			low = middle;
		else
			high = middle - 1;
	}
	return batch->chapters[low];
}

/**
 * chapter_has_name() - Tell whether a chapter holds a name, reading its index page and record
 *                      page into the replay thread's own buffers.
 */
static bool chapter_has_name(struct replay_thread *thread, uint64_t chapter,
                             const struct dd_record_name *name)
{
	struct uds_index *index = thread->rebuild->index;
	const struct uds_geometry *g = &index->geometry;
	uint8_t *index_page = thread->pages;
	uint8_t *record_page = thread->pages + g->bytes_per_page;
	struct uds_delta_page delta_page;
	uint32_t page_number;
	uint32_t record_page_number;

	thread->lookups++;
	if ((uds_find_index_page(index->volume, chapter, uds_chapter_index_list(g, name),
	                         &page_number) != DD_SUCCESS) ||
	    (uds_read_volume_page(index->volume, chapter, page_number, index_page) != DD_SUCCESS) ||
	    (uds_open_chapter_index_page(&delta_page, g, index->layout.nonce, chapter,
	                                 index_page) != DD_SUCCESS) ||
	    (uds_search_chapter_index_page(&delta_page, g, name, &record_page_number) !=
	     DD_SUCCESS) ||
	    (record_page_number == UDS_NO_RECORD_PAGE))
		return false;
	page_number = g->index_pages_per_chapter + record_page_number;
	if ((uds_read_volume_page(index->volume, chapter, page_number, record_page) !=
	     DD_SUCCESS) ||
	    (uds_validate_record_page(g, index->layout.nonce, chapter, record_page_number,
	                              record_page) != DD_SUCCESS))
		return false;
	return uds_search_record_page(g, record_page, name, NULL);
}

/**
 * replay_record() - Replay one name of a chapter into its zone of the volume index.
 *
 * The newest chapter of a name wins, whatever order its copies are replayed in. An entry of
 * another name at the same address gets a collision entry added after it.
 */
static int replay_record(struct replay_thread *thread, const struct dd_record_name *name,
                         uint64_t chapter)
{
	struct uds_volume_index_record record;
	int result;

	result = uds_get_volume_index_record(thread->rebuild->volume_index, name, &record);
	if (result != DD_SUCCESS)
		return result;
	if (!record.is_found)
		return uds_put_volume_index_record(&record, chapter);
	if (record.virtual_chapter == chapter)
		return DD_SUCCESS;
	if (!record.is_collision && !chapter_has_name(thread, record.virtual_chapter, name))
		return uds_put_volume_index_record(&record, chapter);
	if (record.virtual_chapter > chapter)
		return DD_SUCCESS;
	return uds_set_volume_index_record_chapter(&record, chapter);
}

/** gather_names() - Pick out the names of a batch that belong to the thread's zone. */
static int gather_names(struct replay_thread *thread, const struct batch *batch,
                        uint32_t *count_ptr)
{
	const struct rebuild *rebuild = thread->rebuild;
	uint32_t count = 0;

	for (uint32_t i = 0; i < batch->name_count; i++) {
		const struct dd_record_name *name = &batch->names[i];

		if (uds_get_volume_index_zone(rebuild->volume_index, name) != thread->zone)
			continue;
		if (count == thread->capacity) {
			/* Rare (names are hashes): grow both arrays by half. */
			uint32_t capacity = thread->capacity + thread->capacity / 2 + 1024;
			struct replay_name *names;
			int result =
			    DD_ALLOCATE(capacity, struct replay_name, "rebuild names", &names);

			if (result != DD_SUCCESS)
				return result;
			memcpy(names, thread->names, count * sizeof(*names));
			dd_free(thread->names);
			thread->names = names;
			dd_free(thread->scratch);
			thread->scratch = NULL;
			thread->capacity = capacity;
			result = DD_ALLOCATE(capacity, struct replay_name, "rebuild names",
			                     &thread->scratch);
			if (result != DD_SUCCESS)
				return result;
		}
		thread->names[count++] =
		    (struct replay_name){ uds_get_volume_index_order(rebuild->volume_index, name),
			                  i };
	}
	*count_ptr = count;
	return DD_SUCCESS;
}

/** replay_batch() - Replay the names of a batch that belong to the thread's zone, in order. */
static void replay_batch(struct replay_thread *thread, const struct batch *batch)
{
	const struct uds_volume_index *volume_index = thread->rebuild->volume_index;
	struct replay_name *names;
	uint32_t count;
	int result = gather_names(thread, batch, &count);

	if (result != DD_SUCCESS) {
		thread->result = result;
		return;
	}
	names = sort_names(thread->names, thread->scratch, count);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t chapter = chapter_of(batch, names[i].ref);

		if (i + PREFETCH_HEADER_AHEAD < count)
			uds_prefetch_volume_index_name(
			    volume_index, &batch->names[names[i + PREFETCH_HEADER_AHEAD].ref], 0);
		if (i + PREFETCH_LIST_AHEAD < count)
			uds_prefetch_volume_index_name(
			    volume_index, &batch->names[names[i + PREFETCH_LIST_AHEAD].ref], 1);

		result = replay_record(thread, &batch->names[names[i].ref], chapter);
		if ((result == DD_SUCCESS) || (result == DD_OVERFLOW))
			continue;
		if (thread->failures++ == 0)
			dd_log_error_strerror(result, "rebuild: replay in chapter %llu failed",
			                      (unsigned long long) chapter);
	}
}

/** run_replay_thread() - A replay thread: replay each batch published, then stop. */
static void *run_replay_thread(void *argument)
{
	struct replay_thread *thread = argument;
	struct rebuild *rebuild = thread->rebuild;

	for (uint64_t sequence = 0;; sequence++) {
		struct batch *batch = &rebuild->batches[sequence % BATCH_BUFFERS];

		pthread_mutex_lock(&rebuild->mutex);
		while ((rebuild->batch_count <= sequence) && !rebuild->finished)
			pthread_cond_wait(&rebuild->published, &rebuild->mutex);
		if (rebuild->batch_count <= sequence) {
			pthread_mutex_unlock(&rebuild->mutex);
			return NULL;
		}
		pthread_mutex_unlock(&rebuild->mutex);
		if (thread->result == DD_SUCCESS)
			replay_batch(thread, batch);
		pthread_mutex_lock(&rebuild->mutex);
		if (--batch->threads_left == 0)
			pthread_cond_signal(&rebuild->replayed);
		pthread_mutex_unlock(&rebuild->mutex);
	}
}

/** wait_for_batch() - Wait until the replay threads are done with a batch buffer. */
static void wait_for_batch(struct rebuild *rebuild, struct batch *batch)
{
	pthread_mutex_lock(&rebuild->mutex);
	while (batch->threads_left > 0)
		pthread_cond_wait(&rebuild->replayed, &rebuild->mutex);
	pthread_mutex_unlock(&rebuild->mutex);
}

/** publish_batch() - Hand a filled batch buffer to the replay threads. */
static void publish_batch(struct rebuild *rebuild, struct batch *batch)
{
	pthread_mutex_lock(&rebuild->mutex);
	batch->threads_left = rebuild->thread_count;
	rebuild->batch_count++;
	pthread_cond_broadcast(&rebuild->published);
	pthread_mutex_unlock(&rebuild->mutex);
}

/** finish_batches() - Tell the replay threads no batch follows, and wait for them to stop. */
static void finish_batches(struct rebuild *rebuild)
{
	pthread_mutex_lock(&rebuild->mutex);
	rebuild->finished = true;
	pthread_cond_broadcast(&rebuild->published);
	pthread_mutex_unlock(&rebuild->mutex);
	for (unsigned int t = 0; t < rebuild->thread_count; t++) {
		if (rebuild->threads[t].started)
			pthread_join(rebuild->threads[t].thread, NULL);
		rebuild->threads[t].started = false;
	}
}

/**
 * read_chapter() - Read and verify a chapter, and add its names (its hooks only if it is
 *                  sparse) to a batch.
 *
 * Return: DD_SUCCESS only if every page verifies; the batch is unchanged otherwise.
 */
static int read_chapter(struct rebuild *rebuild, uint64_t chapter, struct batch *batch)
{
	struct uds_index *index = rebuild->index;
	const struct uds_geometry *g = rebuild->geometry;
	bool sparse = uds_is_chapter_sparse(g, uds_oldest_chapter_of(index, rebuild->open_chapter),
	                                    rebuild->open_chapter, chapter);
	uint32_t count = batch->name_count;
	int result =
	    uds_read_chapter(index->volume, uds_chapter_slot(g, chapter), rebuild->chapter_pages);

	for (uint32_t page = 0; (page < g->pages_per_chapter) && (result == DD_SUCCESS); page++) {
		uint8_t *data = rebuild->chapter_pages + (size_t) page * g->bytes_per_page;
		struct uds_delta_page delta_page;

		if (page >= g->index_pages_per_chapter) {
			result = uds_validate_record_page(g, index->layout.nonce, chapter,
			                                  page - g->index_pages_per_chapter, data);
			continue;
		}
		result =
		    uds_open_chapter_index_page(&delta_page, g, index->layout.nonce, chapter, data);
		if (result != DD_SUCCESS)
			break;
		if (delta_page.highest_list_number + 1 != delta_page.lowest_list_number)
			rebuild->last_lists[page] = (uint16_t) delta_page.highest_list_number;
		else
			rebuild->last_lists[page] = (page == 0) ? 0 : rebuild->last_lists[page - 1];
	}
	if (result != DD_SUCCESS)
		return result;
	for (uint32_t page = g->index_pages_per_chapter; page < g->pages_per_chapter; page++) {
		uint32_t records = uds_get_record_page_records(
		    g, rebuild->chapter_pages + (size_t) page * g->bytes_per_page,
		    rebuild->page_records);

		for (uint32_t i = 0; i < records; i++) {
			const struct dd_record_name *name = &rebuild->page_records[i].name;

			if (!sparse || uds_is_volume_index_sample(rebuild->volume_index, name))
				batch->names[count++] = *name;
		}
	}
	uds_set_index_page_map(index->volume, chapter, rebuild->last_lists);
	batch->chapters[batch->chapter_count] = chapter;
	batch->starts[batch->chapter_count] = batch->name_count;
	batch->chapter_count++;
	batch->starts[batch->chapter_count] = count;
	batch->name_count = count;
	return DD_SUCCESS;
}

/**
 * read_chapters() - Read the window, oldest first, a batch at a time, while the replay threads
 *                   replay the batch before.
 */
static void read_chapters(struct rebuild *rebuild, uint64_t first)
{
	const struct uds_geometry *g = rebuild->geometry;
	uint64_t chapter = first;
	uint64_t sequence = 0;

	while (chapter <= rebuild->newest) {
		struct batch *batch = &rebuild->batches[sequence % BATCH_BUFFERS];

		wait_for_batch(rebuild, batch);
		batch->name_count = 0;
		batch->chapter_count = 0;
		while ((chapter <= rebuild->newest) &&
		       (batch->chapter_count < MAX_BATCH_CHAPTERS) &&
		       (batch->name_count + g->records_per_chapter <= rebuild->batch_capacity)) {
			if (read_chapter(rebuild, chapter, batch) != DD_SUCCESS) {
				rebuild->index->chapters_dropped++;
				dd_log_warning(
				    "rebuild: chapter %llu is missing or damaged; dropped",
				    (unsigned long long) chapter);
			}
			chapter++;
		}
		if (batch->chapter_count == 0)
			continue;
		publish_batch(rebuild, batch);
		sequence++;
	}
	finish_batches(rebuild);
}

/** find_newest_chapter() - The highest chapter number of a valid first index page. */
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

/** free_rebuild() - Free the buffers of a rebuild (its threads have stopped). */
static void free_rebuild(struct rebuild *rebuild)
{
	for (unsigned int t = 0; (rebuild->threads != NULL) && (t < rebuild->thread_count); t++) {
		dd_free(rebuild->threads[t].names);
		dd_free(rebuild->threads[t].scratch);
		dd_free(rebuild->threads[t].pages);
	}
	dd_free(rebuild->threads);
	for (int i = 0; i < BATCH_BUFFERS; i++)
		dd_free(rebuild->batches[i].names);
	dd_free(rebuild->chapter_pages);
	dd_free(rebuild->page_records);
	dd_free(rebuild->last_lists);
	pthread_mutex_destroy(&rebuild->mutex);
	pthread_cond_destroy(&rebuild->published);
	pthread_cond_destroy(&rebuild->replayed);
}

/** make_rebuild() - Allocate the buffers of a rebuild into @volume_index with its threads. */
static int make_rebuild(struct uds_index *index, struct uds_volume_index *volume_index,
                        unsigned int thread_count, struct rebuild *rebuild)
{
	const struct uds_geometry *g = &index->geometry;
	size_t chapter_bytes = (size_t) g->pages_per_chapter * g->bytes_per_page;
	uint32_t share;
	int result;

	*rebuild = (struct rebuild){
		.index = index,
		.geometry = g,
		.volume_index = volume_index,
		.thread_count = thread_count,
		.batch_capacity = BATCH_CHAPTERS * g->records_per_chapter,
	};
	pthread_mutex_init(&rebuild->mutex, NULL);
	pthread_cond_init(&rebuild->published, NULL);
	pthread_cond_init(&rebuild->replayed, NULL);
	/* A thread's expected share of a batch, with room for chance. */
	share = rebuild->batch_capacity / thread_count;
	share += share / 8 + 1024;
	result =
	    dd_allocate_aligned(chapter_bytes, 4096, "rebuild chapter", &rebuild->chapter_pages);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(g->records_per_page, struct uds_volume_record,
		                     "rebuild records", &rebuild->page_records);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(g->index_pages_per_chapter, uint16_t, "rebuild map",
		                     &rebuild->last_lists);
	for (int i = 0; (i < BATCH_BUFFERS) && (result == DD_SUCCESS); i++)
		result = DD_ALLOCATE(rebuild->batch_capacity, struct dd_record_name,
		                     "rebuild batch", &rebuild->batches[i].names);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(thread_count, struct replay_thread, "rebuild threads",
		                     &rebuild->threads);
	for (unsigned int t = 0; (t < thread_count) && (result == DD_SUCCESS); t++) {
		struct replay_thread *thread = &rebuild->threads[t];

		thread->rebuild = rebuild;
		thread->zone = t;
		thread->capacity = share;
		result = DD_ALLOCATE(share, struct replay_name, "rebuild names", &thread->names);
		if (result == DD_SUCCESS)
			result = DD_ALLOCATE(share, struct replay_name, "rebuild names",
			                     &thread->scratch);
		if (result == DD_SUCCESS)
			result = dd_allocate_aligned(2 * (size_t) g->bytes_per_page, 4096,
			                             "rebuild pages", &thread->pages);
	}
	if (result != DD_SUCCESS)
		free_rebuild(rebuild);
	return result;
}

/** start_replay_threads() - Start the replay threads of a rebuild. */
static int start_replay_threads(struct rebuild *rebuild)
{
	for (unsigned int t = 0; t < rebuild->thread_count; t++) {
		struct replay_thread *thread = &rebuild->threads[t];
		int result = pthread_create(&thread->thread, NULL, run_replay_thread, thread);

		if (result != 0) {
			finish_batches(rebuild);
			return dd_log_error_strerror(result, "cannot start rebuild threads");
		}
		thread->started = true;
		{
			char name[16];

			snprintf(name, sizeof(name), "udsreplay%u", t % 100);
			pthread_setname_np(thread->thread, name);
		}
	}
	return DD_SUCCESS;
}

/**
 * replay_window() - Replay chapters [first, newest] into @volume_index (of any zone count) on
 *                   one replay thread per zone.
 */
static int replay_window(struct uds_index *index, struct uds_volume_index *volume_index,
                         unsigned int zone_count, uint64_t first, uint64_t newest)
{
	struct rebuild rebuild;
	uint64_t lookups = 0;
	uint64_t failures = 0;
	int result = make_rebuild(index, volume_index, zone_count, &rebuild);

	if (result != DD_SUCCESS)
		return result;
	rebuild.newest = newest;
	rebuild.open_chapter = newest + 1;
	uds_set_volume_index_open_chapter(volume_index, newest + 1);
	result = start_replay_threads(&rebuild);
	if (result == DD_SUCCESS)
		read_chapters(&rebuild, first);
	for (unsigned int t = 0; t < rebuild.thread_count; t++) {
		lookups += rebuild.threads[t].lookups;
		failures += rebuild.threads[t].failures;
		if ((result == DD_SUCCESS) && (rebuild.threads[t].result != DD_SUCCESS))
			result = rebuild.threads[t].result;
	}
	if (failures > 0)
		dd_log_warning("rebuild: %llu names could not be replayed",
		               (unsigned long long) failures);
	dd_log_debug("rebuild: %llu names looked up in their chapters",
	             (unsigned long long) lookups);
	free_rebuild(&rebuild);
	return result;
}

/* One zone of the rebuilt index being written to its stream. */
struct zone_save {
	const struct uds_volume_index *volume_index;
	unsigned int zone;
	struct dd_buffered_writer *writer;
	pthread_t thread;
	bool started;
	int result;
};

/** save_zone() - Write one zone of the rebuilt index and finish its stream (no sync). */
static void *save_zone(void *argument)
{
	struct zone_save *save = argument;

	save->result = uds_save_volume_index_zone(save->volume_index, save->zone, save->writer);
	if (save->result == DD_SUCCESS)
		save->result = dd_finish_buffered_writer(save->writer, false);
	return NULL;
}

/**
 * save_zones() - Write every zone of the rebuilt index into the streams of an uncommitted save,
 *                one thread per zone.
 */
static int save_zones(struct uds_index *index, const struct uds_volume_index *volume_index,
                      unsigned int zone_count, const struct uds_save_info *save)
{
	struct zone_save saves[UDS_MAX_ZONES];
	int result = DD_SUCCESS;

	memset(saves, 0, sizeof(saves));
	for (unsigned int z = 0; (z < zone_count) && (result == DD_SUCCESS); z++) {
		saves[z].volume_index = volume_index;
		saves[z].zone = z;
		result = dd_make_buffered_writer(
		    index->fd, (off_t) save->streams[z].offset, save->streams[z].size,
		    uds_save_stream_nonce(&index->layout, save, z), &saves[z].writer);
	}
	for (unsigned int z = 0; (z < zone_count) && (result == DD_SUCCESS); z++) {
		/* Without a thread, the zone is simply written after the others. */
		saves[z].started =
		    (pthread_create(&saves[z].thread, NULL, save_zone, &saves[z]) == 0);
		if (!saves[z].started)
			save_zone(&saves[z]);
	}
	for (unsigned int z = 0; z < zone_count; z++) {
		if (saves[z].started)
			pthread_join(saves[z].thread, NULL);
		if (result == DD_SUCCESS)
			result = saves[z].result;
		dd_free_buffered_writer(saves[z].writer);
	}
	return result;
}

/** load_zones() - Load the index's own volume index from the streams save_zones() wrote. */
static int load_zones(struct uds_index *index, unsigned int zone_count,
                      const struct uds_save_info *save)
{
	struct dd_buffered_reader *readers[UDS_MAX_ZONES] = { NULL };
	int result = DD_SUCCESS;

	for (unsigned int z = 0; (z < zone_count) && (result == DD_SUCCESS); z++)
		result = dd_make_buffered_reader(
		    index->fd, (off_t) save->streams[z].offset, save->streams[z].size,
		    uds_save_stream_nonce(&index->layout, save, z), &readers[z]);
	if (result == DD_SUCCESS)
		result = uds_load_volume_index(index->volume_index, readers, zone_count);
	for (unsigned int z = 0; z < zone_count; z++)
		dd_free_buffered_reader(readers[z]);
	return result;
}

/**
 * convert_zones() - Turn the rebuilt index of @zone_count zones into the index's own volume
 *                   index, through the streams of an uncommitted save; frees @rebuilt.
 */
static int convert_zones(struct uds_index *index, struct uds_volume_index *rebuilt,
                         unsigned int zone_count, const struct uds_save_info *save)
{
	int result = save_zones(index, rebuilt, zone_count, save);

	uds_free_volume_index(rebuilt);
	if (result != DD_SUCCESS)
		return result;
	result = uds_make_volume_index(&index->geometry, index->zone_count, &index->volume_index);
	if (result == DD_SUCCESS)
		result = load_zones(index, zone_count, save);
	return result;
}

/**
 * get_replay_thread_count() - Replay threads to use: every online core, and at least one per
 *                             zone of the index; at most UDS_MAX_ZONES. The environment
 *                             variable UDS_REBUILD_THREADS sets it (for tests and measurements).
 */
static unsigned int get_replay_thread_count(const struct uds_index *index)
{
	const char *forced = getenv("UDS_REBUILD_THREADS");
	long count = sysconf(_SC_NPROCESSORS_ONLN);

	if ((forced != NULL) && (*forced != '\0'))
		count = strtol(forced, NULL, 10);
	else if (count < (long) index->zone_count)
		count = index->zone_count;
	if (count < 1)
		count = 1;
	return (count > UDS_MAX_ZONES) ? UDS_MAX_ZONES : (unsigned int) count;
}

/**
 * rebuild_on_more_zones() - Replay into an index of @thread_count zones, then convert it into
 *                           the index's own volume index (which this replaces).
 */
static int rebuild_on_more_zones(struct uds_index *index, unsigned int thread_count, uint64_t first,
                                 uint64_t newest, const struct uds_save_info *save)
{
	struct uds_volume_index *rebuilt = NULL;
	dd_ktime_t start;
	int result;

	/* The empty index's memory goes before the rebuilt index's is taken. */
	uds_free_volume_index(index->volume_index);
	index->volume_index = NULL;
	result = uds_make_volume_index(&index->geometry, thread_count, &rebuilt);
	if (result == DD_SUCCESS)
		result = replay_window(index, rebuilt, thread_count, first, newest);
	if (result != DD_SUCCESS) {
		uds_free_volume_index(rebuilt);
		return result;
	}
	start = dd_monotonic_ns();
	result = convert_zones(index, rebuilt, thread_count, save);
	if (result == DD_SUCCESS)
		dd_log_info("rebuild: converted %u zones to %u in %.1f s", thread_count,
		            index->zone_count, (double) (dd_monotonic_ns() - start) / 1e9);
	return result;
}

/*
 * Rebuild the volume index from the chapters on storage (see the top of this file). On entry
 * index->volume_index is empty; it may be freed and replaced.
 */
int uds_rebuild_index(struct uds_index *index, uint64_t *open_chapter_ptr)
{
	const struct uds_geometry *g = &index->geometry;
	unsigned int thread_count = get_replay_thread_count(index);
	uint64_t dropped = index->chapters_dropped;
	dd_ktime_t start = dd_monotonic_ns();
	struct uds_save_info save;
	uint8_t *page = NULL;
	uint64_t newest = 0;
	uint64_t first;
	bool any;
	int result = dd_allocate_aligned(g->bytes_per_page, 4096, "rebuild page", &page);

	if (result != DD_SUCCESS)
		return result;
	any = find_newest_chapter(index, page, &newest);
	dd_free(page);
	index->rebuilt = true;
	if (!any) {
		*open_chapter_ptr = 0;
		dd_log_info("rebuild: no chapter on storage; the index is empty");
		return DD_SUCCESS;
	}
	first = (newest + 2 >= g->chapters_per_volume) ? newest + 2 - g->chapters_per_volume : 0;
	*open_chapter_ptr = newest + 1;
	for (unsigned int z = 0; z < index->zone_count; z++)
		index->zones[z].newest_chapter = newest + 1;
	if ((thread_count != index->zone_count) &&
	    (uds_begin_save(&index->layout, g, thread_count, newest + 1,
	                    uds_oldest_chapter_of(index, newest + 1), &save) != DD_SUCCESS)) {
		dd_log_warning("rebuild: no room to convert zones; replaying on %u threads",
		               index->zone_count);
		thread_count = index->zone_count;
	}
	if (thread_count != index->zone_count) {
		result = rebuild_on_more_zones(index, thread_count, first, newest, &save);
		if (result != DD_SUCCESS) {
			dd_log_warning_strerror(
			    result, "rebuild on %u zones failed; replaying on %u threads",
			    thread_count, index->zone_count);
			thread_count = index->zone_count;
			index->chapters_dropped = dropped;
			uds_free_volume_index(index->volume_index);
			index->volume_index = NULL;
			result = uds_make_volume_index(g, index->zone_count, &index->volume_index);
			if (result != DD_SUCCESS)
				return result;
		}
	}
	if (thread_count == index->zone_count)
		result = replay_window(index, index->volume_index, thread_count, first, newest);
	dd_log_info("rebuilt the index through chapter %llu in %.1f s on %u threads (%llu "
	            "chapters dropped)",
	            (unsigned long long) newest, (double) (dd_monotonic_ns() - start) / 1e9,
	            thread_count, (unsigned long long) (index->chapters_dropped - dropped));
	return result;
}
