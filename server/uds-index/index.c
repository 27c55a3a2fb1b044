// SPDX-License-Identifier: GPL-2.0-only
/*
 * The index: zones, requests, chapter closing, save, load and rebuild.
 *
 * Zones. The volume index splits names among Z zones; zone z's thread owns the volume index
 * lists of zone z, its share of the open chapter, its page cache and its counters, and nothing
 * else touches them while the index runs. A request is routed to the zone of its name and runs
 * there from start to callback, so requests for one name are handled in order and nothing on the
 * request path takes a lock.
 *
 * A request. Search the volume index. If it names a chapter: the open chapter is searched in
 * memory, so is the chapter being written (each zone keeps its part until the next close);
 * older chapters are searched through one chapter index page and one record page, taken from
 * the zone's page cache or read, and the request is parked on the cache entry until the page
 * arrives. It then resumes where it stopped (search_volume()), so it needs each page once.
 * Then the request acts: POST adds or refreshes, UPDATE stores, QUERY refreshes, DELETE removes;
 * the callback runs on the zone thread.
 *
 * Reads. Pages are read where they lie in the mapped volume (volume.h); "reading" a page means
 * making sure that it is in memory and checking it. A zone with nothing else to do checks a
 * page itself when the OS has it cached: for one request in flight that is quicker than any
 * hand-off. A busy zone hands every read to a reader thread, so that the checksums run beside
 * the zone thread on another core. Readers never wait for the disk either: a page that is not
 * in memory goes on to one of the disk threads, which are many so that cold reads keep the
 * device busy.
 *
 * Closing a chapter. Each zone holds records_per_chapter / Z records of the open chapter. The
 * first zone to fill its part closes the chapter and tells every other zone to close it too
 * (a message in their queue, so each closes between two of its requests). Closing swaps the
 * zone's open chapter with its previous one (after waiting, rarely, until the writer has
 * finished with it), hands it to the chapter writer (chapter-writer.c) and advances the zone's
 * window. A save loaded into another zone count may leave a zone's part full; then the chapter
 * is closed as the index opens.
 *
 * Save and load are in index-save.c, rebuild in rebuild.c; index-internal.h holds what they
 * share with this file.
 */
#include "uds.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffered-io.h"
#include "byte-order.h"
#include "chapter-index.h"
#include "delta-index.h"
#include "geometry.h"
#include "index-layout.h"
#include "logger.h"
#include "memory-alloc.h"
#include "open-chapter.h"
#include "page-cache.h"
#include "permassert.h"
#include "record-page.h"
#include "time-utils.h"
#include "volume-index.h"
#include "volume.h"
#include "work-queue.h"

#include "index-internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static struct index_zone *zone_of(struct uds_index *index, const struct dd_record_name *name)
{
	return &index->zones[uds_get_volume_index_zone(index->volume_index, name)];
}

/* ------------------------------------------------------------------------------------------ */
/* Pages                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void process_request(struct uds_request *request);

/* Check a page just read into a cache entry, and open it if it is an index page. */
int uds_validate_cached_page(struct uds_index *index, struct uds_cached_page *page)
{
	if (uds_is_index_page(index, page->page_number))
		return uds_open_chapter_index_page(&page->index_page, &index->geometry,
		                                   index->layout.nonce, page->virtual_chapter,
		                                   page->data);
	return uds_validate_record_page(
	    &index->geometry, index->layout.nonce, page->virtual_chapter,
	    page->page_number - index->geometry.index_pages_per_chapter, page->data);
}

/* Finish loading a cache entry: keep it if it verified, and restart its waiters. */
/* Waiters are pushed on a stack; restart them in arrival order, so one name's stay in order. */
static struct uds_request *in_arrival_order(struct uds_request *stack)
{
	struct uds_request *list = NULL;

	while (stack != NULL) {
		struct uds_request *request = stack;

		stack = request->next_waiter;
		request->next_waiter = list;
		list = request;
	}
	return list;
}

static void restart_waiters(struct uds_request *waiters, bool read_failed)
{
	waiters = in_arrival_order(waiters);
	while (waiters != NULL) {
		struct uds_request *request = waiters;

		waiters = request->next_waiter;
		request->next_waiter = NULL;
		request->read_failed = read_failed;
		process_request(request);
	}
}

/*
 * Park a request until a cache entry can be claimed: every entry is being read (more misses in
 * flight than the cache has entries). Requests wait in arrival order; one being restarted is
 * older than all those still waiting, so it goes back at the front.
 */
static void wait_for_cache_entry(struct index_zone *zone, struct uds_request *request)
{
	if (zone->cache_waiters == NULL) {
		request->next_waiter = NULL;
		zone->cache_waiters = request;
		zone->cache_waiters_tail = request;
	} else if (zone->restarting_cache_waiters) {
		request->next_waiter = zone->cache_waiters;
		zone->cache_waiters = request;
	} else {
		request->next_waiter = NULL;
		zone->cache_waiters_tail->next_waiter = request;
		zone->cache_waiters_tail = request;
	}
}

/*
 * Restart the requests waiting for a cache entry, in order, while an entry can be claimed. Each
 * claims at most one entry before it finishes or parks, so each one restarted gets its entry.
 */
static void restart_cache_waiters(struct index_zone *zone)
{
	zone->restarting_cache_waiters = true;
	while ((zone->cache_waiters != NULL) && uds_page_cache_can_claim(zone->cache)) {
		struct uds_request *request = zone->cache_waiters;

		zone->cache_waiters = request->next_waiter;
		request->next_waiter = NULL;
		process_request(request);
	}
	zone->restarting_cache_waiters = false;
}

/*
 * Finish loading a cache entry: keep it if it read and verified, and restart its waiters. The
 * entry stays pinned while they run, so that none of them evicts it before the others have
 * used it; then the requests waiting for a free entry get their turn.
 */
static void finish_page_load(struct index_zone *zone, struct uds_cached_page *page, int result)
{
	struct uds_request *waiters = page->waiters;

	page->waiters = NULL;
	if (result == DD_SUCCESS) {
		uds_page_cache_loaded(zone->cache, page);
		uds_page_cache_pin(zone->cache, page);
	} else {
		zone->stats.read_errors++;
		dd_log_warning("page %u of chapter %llu is unreadable or corrupt: %s",
		               page->page_number, (unsigned long long) page->virtual_chapter,
		               dd_strerror(result));
		uds_page_cache_release(zone->cache, page);
	}
	restart_waiters(waiters, result != DD_SUCCESS);
	uds_page_cache_unpin(zone->cache, page);
	restart_cache_waiters(zone);
}

/* Zone thread: a reader finished. Its claimer learns what the reader found for it. */
static void page_read_done(struct dd_completion *completion)
{
	struct page_read *read = completion->parent;

	if ((read->claimer != NULL) && (read->result == DD_SUCCESS))
		read->claimer->assist = read->assist;
	read->claimer = NULL;
	finish_page_load(read->zone, read->page, read->result);
}

/*
 * Reader or disk thread: search a record page for the claimer's name, if it is valid and (unless
 * the thread may wait for the disk) in memory. An invalid page is left for the zone to read and
 * report.
 */
static void search_record_page_for_claimer(struct page_read *read, uint32_t record_page,
                                           bool may_wait)
{
	const struct uds_index *index = read->zone->index;
	const struct uds_geometry *g = &index->geometry;
	uint64_t chapter = read->page->virtual_chapter;
	uint32_t page_number = g->index_pages_per_chapter + record_page;
	const uint8_t *page = uds_volume_page(index->volume, chapter, page_number);

	if (may_wait ? (uds_fetch_volume_page(index->volume, chapter, page_number) != DD_SUCCESS)
	             : !uds_volume_page_in_memory(index->volume, chapter, page_number))
		return;
	if (uds_validate_record_page(g, index->layout.nonce, chapter, record_page, page) !=
	    DD_SUCCESS)
		return;
	read->assist.record_searched = true;
	read->assist.found = uds_search_record_page(g, page, &read->name, &read->assist.data);
}

/*
 * Reader or disk thread: the page just read is valid and still hot in this core's cache; search
 * it for the claimer's name. An index page names the record page to search next, which is
 * searched too when it can be had without waiting (or on a disk thread, which may wait).
 */
static void search_page_for_claimer(struct page_read *read, bool may_wait)
{
	const struct uds_index *index = read->zone->index;
	struct uds_cached_page *page = read->page;
	uint32_t record_page;

	read->assist.chapter = page->virtual_chapter;
	read->assist.page_number = page->page_number;
	if (!uds_is_index_page(index, page->page_number)) {
		read->assist.record_searched = true;
		read->assist.found = uds_search_record_page(&index->geometry, page->data,
		                                            &read->name, &read->assist.data);
		return;
	}
	if (uds_search_chapter_index_page(&page->index_page, &index->geometry, &read->name,
	                                  &record_page) != DD_SUCCESS) {
		read->assist.chapter = UINT64_MAX;
		return;
	}
	read->assist.record_page = record_page;
	if (record_page != UDS_NO_RECORD_PAGE)
		search_record_page_for_claimer(read, record_page, may_wait);
}

/* Reader or disk thread: check a page read into a cache entry and hand it back to its zone. */
static void return_page_read(struct page_read *read, bool may_wait)
{
	struct index_zone *zone = read->zone;
	struct dd_completion *completion = &read->completion;

	if (read->result == DD_SUCCESS)
		read->result = uds_validate_cached_page(zone->index, read->page);
	if (read->result == DD_SUCCESS)
		search_page_for_claimer(read, may_wait);
	completion->thread_set = zone->index->zone_threads;
	dd_launch_completion_callback(completion, page_read_done, zone->id);
}

/* Disk thread: bring the page into memory, waiting for the disk if need be. */
static void read_page_on_disk_thread(struct dd_completion *completion)
{
	struct page_read *read = completion->parent;
	const struct uds_cached_page *page = read->page;

	read->result = uds_fetch_volume_page(read->zone->index->volume, page->virtual_chapter,
	                                     page->page_number);
	return_page_read(read, true);
}

static unsigned int next_thread(atomic_uint *counter, struct dd_thread_set *threads)
{
	return atomic_fetch_add_explicit(counter, 1, memory_order_relaxed) %
	       dd_thread_set_count(threads);
}

static unsigned int next_reader(struct uds_index *index)
{
	return next_thread(&index->next_reader, index->reader_threads);
}

/* Send a read to a disk thread. */
static void queue_disk_read(struct page_read *read)
{
	struct uds_index *index = read->zone->index;
	struct dd_completion *completion = &read->completion;

	completion->thread_set = index->disk_threads;
	dd_launch_completion_callback(completion, read_page_on_disk_thread,
	                              next_thread(&index->next_disk_thread, index->disk_threads));
}

/*
 * Reader thread: check a page that is in the OS cache, or start its read and pass it on to a
 * disk thread if touching it would wait. The entry is LOADING, so the zone leaves it alone
 * meanwhile.
 */
static void read_page_on_reader(struct dd_completion *completion)
{
	struct page_read *read = completion->parent;
	const struct uds_cached_page *page = read->page;
	const struct uds_volume *volume = read->zone->index->volume;

	if (!uds_volume_page_in_memory(volume, page->virtual_chapter, page->page_number) &&
	    !uds_start_volume_page_fetch(volume, page->virtual_chapter, page->page_number)) {
		queue_disk_read(read);
		return;
	}
	read->result = DD_SUCCESS;
	return_page_read(read, false);
}

/*
 * Hand a page read to a reader thread (@cached: it may be in the OS cache) or a disk thread,
 * with the name of the request that claimed the entry.
 */
static void queue_page_read(struct index_zone *zone, struct uds_cached_page *page, bool cached,
                            const struct dd_record_name *name)
{
	struct uds_index *index = zone->index;
	struct page_read *read = &zone->reads[page - zone->cache->pages];

	zone->stats.reads_queued++;
	read->zone = zone;
	read->page = page;
	read->name = *name;
	read->assist =
	    (struct uds_read_assist){ .chapter = UINT64_MAX, .record_page = UDS_NO_RECORD_PAGE };
	read->claimer = NULL;
	if (!cached) {
		dd_initialize_completion(&read->completion, index->disk_threads);
		read->completion.parent = read;
		queue_disk_read(read);
		return;
	}
	dd_initialize_completion(&read->completion, index->reader_threads);
	dd_prepare_completion(&read->completion, read_page_on_reader, NULL, next_reader(index),
	                      read);
	dd_launch_completion(&read->completion);
}

/*
 * Whether the zone has work waiting behind the current request. A busy zone hands every page
 * read to the reader threads, so that the checks of many reads run beside the zone thread; an
 * idle one checks a page in the OS cache itself, which is quicker for one request.
 */
static bool zone_is_busy(const struct index_zone *zone)
{
	const struct uds_index *index = zone->index;

	return atomic_load_explicit(&index->requests_in_flight, memory_order_relaxed) >
	       2 * index->zone_count;
}

/*
 * Load a page into a claimed cache entry on the zone thread, or queue the load. The entry points
 * at the page in the mapped volume; loading it means making sure that it is in memory and valid.
 */
static int load_page(struct index_zone *zone, struct uds_cached_page *page,
                     const struct dd_record_name *name)
{
	const struct uds_volume *volume = zone->index->volume;
	int result;

	page->data = uds_volume_page(volume, page->virtual_chapter, page->page_number);
	if (zone_is_busy(zone)) {
		queue_page_read(zone, page, true, name);
		return DD_SUCCESS;
	}
	if (!uds_volume_page_in_memory(volume, page->virtual_chapter, page->page_number)) {
		queue_page_read(zone, page, false, name);
		return DD_SUCCESS;
	}
	result = uds_validate_cached_page(zone->index, page);
	if (result != DD_SUCCESS) {
		zone->stats.read_errors++;
		uds_page_cache_release(zone->cache, page);
		return result;
	}
	uds_page_cache_loaded(zone->cache, page);
	return DD_SUCCESS;
}

/*
 * Get a page of a chapter for a request: DD_SUCCESS with *page_ptr READY, DD_QUEUED when the
 * request has been parked until the page arrives, or an error when the page cannot be had.
 */
static int get_page(struct index_zone *zone, struct uds_request *request, uint64_t chapter,
                    uint32_t page_number, struct uds_cached_page **page_ptr)
{
	struct uds_cached_page *page = uds_page_cache_find(zone->cache, chapter, page_number);
	bool claimed = (page == NULL);

	if (page == NULL) {
		int result;

		/* Claims are served in order: none ahead of requests already waiting for one. */
		if (!uds_page_cache_can_claim(zone->cache) ||
		    ((zone->cache_waiters != NULL) && !zone->restarting_cache_waiters)) {
			wait_for_cache_entry(zone, request);
			return DD_QUEUED;
		}
		page = uds_page_cache_claim(zone->cache, chapter, page_number);
		if (page == NULL)
			return DD_OVERFLOW;
		result = load_page(zone, page, &request->record_name);
		if (result != DD_SUCCESS)
			return result;
	}
	if (page->state == UDS_PAGE_LOADING) {
		if (request->requeue_count >= MAX_REQUEUES)
			return DD_OVERFLOW;
		request->requeue_count++;
		request->next_waiter = page->waiters;
		page->waiters = request;
		if (claimed)
			zone->reads[page - zone->cache->pages].claimer = request;
		return DD_QUEUED;
	}
	*page_ptr = page;
	return DD_SUCCESS;
}

/*
 * Keep a record page that a reader checked for a request as if the zone had read it, so that
 * later requests find it cached (when an entry is free for it).
 */
static void cache_checked_page(struct index_zone *zone, uint64_t chapter, uint32_t page_number)
{
	struct uds_cached_page *page;

	if ((uds_page_cache_find(zone->cache, chapter, page_number) != NULL) ||
	    !uds_page_cache_can_claim(zone->cache) || (zone->cache_waiters != NULL))
		return;
	page = uds_page_cache_claim(zone->cache, chapter, page_number);
	if (page == NULL)
		return;
	page->data = uds_volume_page(zone->index->volume, chapter, page_number);
	uds_page_cache_loaded(zone->cache, page);
}

/*
 * Use what a reader learned for the request from page @page_number of @chapter, if that is the
 * page it read. Return: true when the chapter's search is then complete (*found, *data set);
 * false otherwise, with request->resume_record_page set if the reader searched an index page.
 */
static bool use_read_assist(struct index_zone *zone, struct uds_request *request, uint64_t chapter,
                            uint32_t page_number, bool *found, struct uds_record_data *data)
{
	const struct uds_geometry *g = &zone->index->geometry;
	struct uds_read_assist *assist = &request->assist;

	if ((assist->chapter != chapter) || (assist->page_number != page_number))
		return false;
	assist->chapter = UINT64_MAX;
	if (uds_is_index_page(zone->index, page_number)) {
		request->resume_record_page = assist->record_page;
		if (assist->record_page == UDS_NO_RECORD_PAGE)
			return true;
		if (!assist->record_searched)
			return false;
		cache_checked_page(zone, chapter, g->index_pages_per_chapter + assist->record_page);
	}
	*found = assist->found;
	if (*found)
		*data = assist->data;
	return true;
}

/*
 * Search a closed chapter on storage (through the cache). The request notes how far it got, so
 * that once parked it resumes with the page it waited for instead of starting over: at high
 * depth the index page it read first may be evicted before the record page arrives. A request
 * that claimed the page it waited for finds the reader's search of it ready (use_read_assist()).
 */
static int search_volume(struct index_zone *zone, struct uds_request *request, uint64_t chapter,
                         bool *found, struct uds_record_data *data)
{
	struct uds_index *index = zone->index;
	uint32_t first_record_page = index->geometry.index_pages_per_chapter;
	struct uds_cached_page *page;
	int result;

	*found = false;
	if (request->resume_chapter != chapter) {
		request->resume_chapter = chapter;
		request->resume_record_page = UDS_NO_RECORD_PAGE;
	}
	if (request->resume_record_page == UDS_NO_RECORD_PAGE) {
		uint32_t list = uds_chapter_index_list(&index->geometry, &request->record_name);
		uint32_t index_page;

		if (uds_find_index_page(index->volume, chapter, list, &index_page) != DD_SUCCESS)
			return DD_SUCCESS;
		if (use_read_assist(zone, request, chapter, index_page, found, data))
			return DD_SUCCESS;
		if (request->resume_record_page == UDS_NO_RECORD_PAGE) {
			result = get_page(zone, request, chapter, index_page, &page);
			if (result != DD_SUCCESS)
				return result;
			result = uds_search_chapter_index_page(&page->index_page, &index->geometry,
			                                       &request->record_name,
			                                       &request->resume_record_page);
			if ((result != DD_SUCCESS) ||
			    (request->resume_record_page == UDS_NO_RECORD_PAGE))
				return result;
		}
	}
	if (use_read_assist(zone, request, chapter, first_record_page + request->resume_record_page,
	                    found, data))
		return DD_SUCCESS;
	result = get_page(zone, request, chapter, first_record_page + request->resume_record_page,
	                  &page);
	if (result != DD_SUCCESS)
		return result;
	*found = uds_search_record_page(&index->geometry, page->data, &request->record_name, data);
	return DD_SUCCESS;
}

/* Search the chapter the volume index named. DD_QUEUED: the request is parked. */
static int search_chapter(struct index_zone *zone, struct uds_request *request, uint64_t chapter,
                          bool *found, struct uds_record_data *data,
                          enum uds_index_region *location)
{
	const struct uds_geometry *g = &zone->index->geometry;
	int result;

	if (chapter == zone->newest_chapter) {
		*location = UDS_LOCATION_IN_OPEN_CHAPTER;
		*found = uds_search_open_chapter(zone->open_chapter, &request->record_name, data);
		return DD_SUCCESS;
	}
	*location = uds_is_chapter_sparse(g, 0, zone->newest_chapter, chapter)
	                ? UDS_LOCATION_IN_SPARSE
	                : UDS_LOCATION_IN_DENSE;
	if (chapter == zone->writing_chapter_number) {
		*found =
		    uds_search_open_chapter(zone->writing_chapter, &request->record_name, data);
		return DD_SUCCESS;
	}
	if (request->read_failed) {
		*found = false;
		return DD_SUCCESS;
	}
	result = search_volume(zone, request, chapter, found, data);
	if ((result != DD_SUCCESS) && (result != DD_QUEUED)) {
		/* An unreadable chapter only costs this lookup its answer. */
		*found = false;
		return DD_SUCCESS;
	}
	return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Sparse chapters                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Zone thread: a sparse chapter index has been loaded (or not); restart the waiting requests. */
static void sparse_load_done(struct dd_completion *completion)
{
	struct sparse_load *load = completion->parent;
	struct index_zone *zone = load->zone;
	struct uds_request *waiters = zone->sparse_waiters;

	if (load->result != DD_SUCCESS) {
		zone->stats.read_errors++;
		dd_log_warning("cannot cache the index of sparse chapter %llu: %s",
		               (unsigned long long) load->chapter->virtual_chapter,
		               dd_strerror(load->result));
	}
	uds_sparse_cache_loaded(zone->sparse_cache, load->chapter, load->result);
	zone->sparse_waiters = NULL;
	restart_waiters(waiters, false);
	atomic_fetch_sub_explicit(&zone->index->requests_in_flight, 1, memory_order_release);
}

/* Disk thread: read and open the chapter's index pages, then hand the entry back. */
static void load_sparse_on_disk_thread(struct dd_completion *completion)
{
	struct sparse_load *load = completion->parent;
	struct index_zone *zone = load->zone;

	load->result =
	    uds_load_sparse_chapter(zone->index->volume, zone->index->layout.nonce, load->chapter);
	completion->thread_set = zone->index->zone_threads;
	dd_launch_completion_callback(completion, sparse_load_done, zone->id);
}

/*
 * Start caching a sparse chapter's index in this zone. Return: false if the chapter is cached or
 * loading already, or is not a sparse chapter of the window.
 */
static bool cache_sparse_chapter(struct index_zone *zone, uint64_t chapter)
{
	struct uds_index *index = zone->index;
	uint64_t oldest = uds_oldest_chapter_of(index, zone->newest_chapter);
	struct uds_sparse_chapter *entry;
	struct sparse_load *load;

	if ((chapter < oldest) ||
	    !uds_is_chapter_sparse(&index->geometry, oldest, zone->newest_chapter, chapter) ||
	    (uds_sparse_cache_find(zone->sparse_cache, chapter) != NULL))
		return false;
	entry = uds_sparse_cache_claim(zone->sparse_cache, chapter, oldest);
	if (entry == NULL)
		return true;
	load = &zone->sparse_loads[entry - zone->sparse_cache->chapters];
	load->zone = zone;
	load->chapter = entry;
	/* A load in flight counts as work in flight, so flushes and saves wait for it. */
	atomic_fetch_add_explicit(&index->requests_in_flight, 1, memory_order_relaxed);
	dd_initialize_completion(&load->completion, index->disk_threads);
	dd_prepare_completion(&load->completion, load_sparse_on_disk_thread, NULL,
	                      next_thread(&index->next_disk_thread, index->disk_threads), load);
	dd_launch_completion(&load->completion);
	return true;
}

static void sparse_chapter_on_message(struct dd_completion *completion)
{
	struct sparse_message *message = completion->parent;

	(void) cache_sparse_chapter(message->zone, message->chapter);
	dd_free(message);
}

/*
 * A hook was found in a sparse chapter: cache that chapter's index in every zone, so that the
 * other names written with the hook are found too. Other zones get a message in their queue.
 */
static void note_sparse_hook(struct index_zone *zone, uint64_t chapter)
{
	struct uds_index *index = zone->index;

	if (!cache_sparse_chapter(zone, chapter))
		return;
	for (unsigned int z = 0; z < index->zone_count; z++) {
		struct sparse_message *message;

		if ((z == zone->id) ||
		    (dd_allocate(sizeof(*message), "sparse message", &message) != DD_SUCCESS))
			continue;
		message->zone = &index->zones[z];
		message->chapter = chapter;
		dd_initialize_completion(&message->completion, index->zone_threads);
		dd_prepare_completion(&message->completion, sparse_chapter_on_message, NULL, z,
		                      message);
		dd_launch_completion(&message->completion);
	}
}

/*
 * Look for a name the volume index does not know in the cached sparse chapters. The request
 * first waits for the chapter indexes whose loads started before it got here (brought in by
 * hooks ahead of it in the zone's queue). DD_QUEUED: the request is parked.
 */
static int search_sparse_cache(struct index_zone *zone, struct uds_request *request, bool *found,
                               struct uds_record_data *data, uint64_t *chapter_ptr)
{
	struct uds_index *index = zone->index;
	const struct uds_geometry *g = &index->geometry;
	struct uds_cached_page *page;
	uint32_t record_page;
	int result;

	*found = false;
	if (request->sparse_ticket == 0)
		request->sparse_ticket = uds_sparse_cache_ticket(zone->sparse_cache);
	if (uds_sparse_cache_loading_before(zone->sparse_cache, request->sparse_ticket)) {
		request->next_waiter = zone->sparse_waiters;
		zone->sparse_waiters = request;
		return DD_QUEUED;
	}
	if (request->read_failed)
		return DD_SUCCESS;
	/* A chapter index can match a name its chapter does not hold; then try older chapters. */
	for (uint64_t below = UINT64_MAX;; below = *chapter_ptr) {
		if (!uds_search_sparse_cache(zone->sparse_cache, index->volume,
		                             &request->record_name,
		                             uds_oldest_chapter_of(index, zone->newest_chapter),
		                             below, chapter_ptr, &record_page))
			return DD_SUCCESS;
		result = get_page(zone, request, *chapter_ptr,
		                  g->index_pages_per_chapter + record_page, &page);
		if (result == DD_QUEUED)
			return result;
		if (result != DD_SUCCESS)
			continue;
		*found = uds_search_record_page(g, page->data, &request->record_name, data);
		if (*found)
			return DD_SUCCESS;
	}
}

/* Whether a request should look in the sparse cache after the volume index found nothing. */
static bool wants_sparse_search(struct index_zone *zone, const struct uds_request *request)
{
	return (zone->sparse_cache != NULL) && (request->type != UDS_DELETE) &&
	       !uds_is_volume_index_sample(zone->index->volume_index, &request->record_name);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing chapters                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void close_chapter_on_message(struct dd_completion *completion);

/* Close this zone's part of its open chapter and open the next one. */
static void close_zone_chapter(struct index_zone *zone)
{
	struct uds_index *index = zone->index;
	struct uds_open_chapter_zone *part = zone->open_chapter;
	uint64_t closing = zone->newest_chapter;

	/* The writer must be done with our previous part before we reuse its memory. */
	uds_wait_for_chapter_writer(&index->writer, closing);
	zone->open_chapter = zone->writing_chapter;
	zone->writing_chapter = part;
	zone->writing_chapter_number = closing;
	uds_reset_open_chapter(zone->open_chapter);
	zone->newest_chapter = closing + 1;
	uds_set_volume_index_zone_open_chapter(index->volume_index, zone->id, closing + 1);
	uds_submit_to_chapter_writer(&index->writer, zone->id, part, index->zone_count);
}

/* Tell the other zones to close @chapter. */
static void broadcast_close(struct index_zone *zone, uint64_t chapter)
{
	struct uds_index *index = zone->index;

	for (unsigned int z = 0; z < index->zone_count; z++) {
		struct close_message *message;

		if (z == zone->id)
			continue;
		if (dd_allocate(sizeof(*message), "close message", &message) != DD_SUCCESS) {
			dd_log_error("cannot tell zone %u to close chapter %llu", z,
			             (unsigned long long) chapter);
			continue;
		}
		message->zone = &index->zones[z];
		message->chapter = chapter;
		dd_initialize_completion(&message->completion, index->zone_threads);
		dd_prepare_completion(&message->completion, close_chapter_on_message, NULL, z,
		                      message);
		dd_launch_completion(&message->completion);
	}
}

static void close_chapter_on_message(struct dd_completion *completion)
{
	struct close_message *message = completion->parent;
	struct index_zone *zone = message->zone;

	if (zone->newest_chapter == message->chapter)
		close_zone_chapter(zone);
	dd_free(message);
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * Put a record into the zone's open chapter, closing the chapter when the zone's part fills.
 * Return: DD_SUCCESS, or the put's error (the record is not in the open chapter).
 */
static int DD_MUST_CHECK put_record_in_zone(struct index_zone *zone,
                                            const struct dd_record_name *name,
                                            const struct uds_record_data *data)
{
	uint32_t remaining;
	int result = uds_put_open_chapter(zone->open_chapter, name, data, &remaining);

	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "zone %u cannot add to its open chapter",
		                             zone->id);
	if (remaining == 0) {
		uint64_t closing = zone->newest_chapter;

		close_zone_chapter(zone);
		broadcast_close(zone, closing);
	}
	return DD_SUCCESS;
}

static void finish_request(struct index_zone *zone, struct uds_request *request, int status)
{
	struct uds_index *index = zone->index;

	request->status = status;
	zone->stats.requests[request->type]++;
	if (request->found) {
		zone->stats.found[request->type]++;
		zone->stats.found_in[request->location]++;
	}
	request->callback(request);
	atomic_fetch_sub_explicit(&index->requests_in_flight, 1, memory_order_release);
}

/* What a request learned from its search. */
struct search_result {
	struct uds_volume_index_record record;
	bool found;
	struct uds_record_data data;
	enum uds_index_region location;
};

/* Search the volume index for the request's name, then the chapter it names (or the sparse cache).
 */
static int search_index(struct index_zone *zone, struct uds_request *request,
                        struct search_result *search)
{
	struct uds_index *index = zone->index;
	int result;

	request->resume_chapter = NO_RESUME_CHAPTER;
	result = uds_get_volume_index_record(index->volume_index, &request->record_name,
	                                     &search->record);
	if (result != DD_SUCCESS)
		return result;
	if (search->record.is_found) {
		if ((zone->sparse_cache != NULL) &&
		    uds_is_volume_index_sample(index->volume_index, &request->record_name))
			note_sparse_hook(zone, search->record.virtual_chapter);
		return search_chapter(zone, request, search->record.virtual_chapter, &search->found,
		                      &search->data, &search->location);
	}
	if (wants_sparse_search(zone, request)) {
		uint64_t chapter;

		search->location = UDS_LOCATION_IN_SPARSE;
		return search_sparse_cache(zone, request, &search->found, &search->data, &chapter);
	}
	return DD_SUCCESS;
}

/*
 * A request parked on a page of a closed chapter resumes that chapter's search without searching
 * the volume index again. A request that will change the index then takes its volume index
 * record afresh, and starts over if the record no longer names that chapter.
 */
static int resume_search(struct index_zone *zone, struct uds_request *request,
                         struct search_result *search)
{
	struct uds_index *index = zone->index;
	uint64_t chapter = request->resume_chapter;
	int result;

	if (chapter < uds_oldest_chapter_of(index, zone->newest_chapter))
		return search_index(zone, request, search);
	result = search_chapter(zone, request, chapter, &search->found, &search->data,
	                        &search->location);
	if (result != DD_SUCCESS)
		return result;
	if (request->type == UDS_QUERY_NO_UPDATE) {
		search->record.is_found = true;
		search->record.virtual_chapter = chapter;
		return DD_SUCCESS;
	}
	result = uds_get_volume_index_record(index->volume_index, &request->record_name,
	                                     &search->record);
	if (result != DD_SUCCESS)
		return result;
	if (search->record.is_found && (search->record.virtual_chapter == chapter))
		return DD_SUCCESS;
	*search = (struct search_result){ .location = UDS_LOCATION_UNAVAILABLE };
	return search_index(zone, request, search);
}

/*
 * Undo the volume index change made for a record that the open chapter then refused: remove the
 * entry just added, or point the entry back at @old_chapter.
 */
static void restore_volume_index_entry(struct uds_volume_index_record *record, bool added,
                                       uint64_t old_chapter)
{
	int result = added ? uds_remove_volume_index_record(record)
	                   : uds_set_volume_index_record_chapter(record, old_chapter);

	if (result != DD_SUCCESS)
		dd_log_warning_strerror(result, "cannot restore a volume index entry");
}

/*
 * Store the record of a POST, an UPDATE or a QUERY that found its name: point the name's volume
 * index entry at the open chapter (adding one if need be) and put the record there. If the open
 * chapter refuses it, the request fails with that error and the entry is restored, so that the
 * failed request changes nothing.
 */
static int store_record(struct index_zone *zone, struct uds_request *request,
                        struct search_result *search)
{
	struct uds_volume_index_record *record = &search->record;
	const struct uds_record_data *data =
	    (search->found && (request->type != UDS_UPDATE)) ? &search->data : &request->new_data;
	uint64_t old_chapter = record->virtual_chapter;
	bool added = false;
	int result;

	if (search->found && (old_chapter == zone->newest_chapter)) {
		/* Already in the open chapter: only an UPDATE changes it, and only its data. */
		if (request->type != UDS_UPDATE)
			return DD_SUCCESS;
		return put_record_in_zone(zone, &request->record_name, data);
	}
	if (record->is_found && (search->found || record->is_collision)) {
		result = uds_set_volume_index_record_chapter(record, zone->newest_chapter);
	} else {
		result = uds_put_volume_index_record(record, zone->newest_chapter);
		if (result == DD_OVERFLOW)
			return DD_SUCCESS;
		added = true;
	}
	if (result != DD_SUCCESS)
		return result;
	result = put_record_in_zone(zone, &request->record_name, data);
	if (result != DD_SUCCESS)
		restore_volume_index_entry(record, added, old_chapter);
	return result;
}

/* The request's work on its zone thread; see the top of the file. */
static int dispatch_request(struct index_zone *zone, struct uds_request *request)
{
	struct search_result search = { .location = UDS_LOCATION_UNAVAILABLE };
	struct uds_volume_index_record *record = &search.record;
	bool found;
	int result;

	if (request->resume_chapter != NO_RESUME_CHAPTER)
		result = resume_search(zone, request, &search);
	else
		result = search_index(zone, request, &search);
	if (result != DD_SUCCESS)
		return result;
	found = search.found;
	request->found = found;
	request->location = found ? search.location : UDS_LOCATION_UNAVAILABLE;
	if (found)
		request->old_data = search.data;

	switch (request->type) {
	case UDS_QUERY_NO_UPDATE:
		return DD_SUCCESS;
	case UDS_DELETE:
		if (found) {
			if (record->virtual_chapter == zone->newest_chapter)
				uds_remove_from_open_chapter(zone->open_chapter,
				                             &request->record_name);
			return uds_remove_volume_index_record(record);
		}
		return DD_SUCCESS;
	case UDS_QUERY:
		if (!found)
			return DD_SUCCESS;
		break;
	default:
		break;
	}

	/* POST, UPDATE, and QUERY of a found record: it goes into the open chapter. */
	return store_record(zone, request, &search);
}

static void process_request(struct uds_request *request)
{
	struct index_zone *zone = &request->index->zones[request->zone_number];
	int result = dispatch_request(zone, request);

	if (result == DD_QUEUED)
		return;
	finish_request(zone, request, result);
}

static void process_request_callback(struct dd_completion *completion)
{
	process_request(completion->parent);
}

int uds_launch_request(struct uds_request *request)
{
	struct uds_index *index = request->index;
	struct index_zone *zone;

	if ((index == NULL) || (request->callback == NULL) ||
	    ((unsigned int) request->type >= UDS_REQUEST_TYPES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "malformed index request");
	zone = zone_of(index, &request->record_name);
	request->zone_number = zone->id;
	request->found = false;
	request->status = DD_SUCCESS;
	request->location = UDS_LOCATION_UNAVAILABLE;
	request->next_waiter = NULL;
	request->requeue_count = 0;
	request->read_failed = false;
	request->sparse_ticket = 0;
	request->resume_chapter = NO_RESUME_CHAPTER;
	request->assist.chapter = UINT64_MAX;
	atomic_fetch_add_explicit(&index->requests_in_flight, 1, memory_order_relaxed);
	dd_initialize_completion(&request->completion, index->zone_threads);
	dd_prepare_completion(&request->completion, process_request_callback, NULL, zone->id,
	                      request);
	dd_launch_completion(&request->completion);
	return DD_SUCCESS;
}

static void wait_for_requests(struct uds_index *index)
{
	unsigned int spins = 0;

	while (atomic_load_explicit(&index->requests_in_flight, memory_order_acquire) > 0) {
		if (++spins > 1000)
			dd_sleep_ns(50 * 1000);
	}
}

void uds_flush_index(struct uds_index *index)
{
	wait_for_requests(index);
	if (dd_thread_set_wait_until_idle(index->zone_threads) != DD_SUCCESS)
		return;
	/* Queued messages (closes, sparse hooks) may have started more work. */
	wait_for_requests(index);
	if (dd_thread_set_wait_until_idle(index->zone_threads) != DD_SUCCESS)
		return;
	/* Every zone has closed the same chapters now. */
	if (index->writer.started)
		uds_wait_for_chapter_writer(&index->writer, index->zones[0].newest_chapter);
}

/* ------------------------------------------------------------------------------------------ */
/* Stats                                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct stats_gather {
	struct uds_index *index;
	struct uds_index_stats *stats;
};

/* Zone thread: add this zone's counters. */
static void gather_zone_stats(struct dd_completion *completion)
{
	struct stats_gather *gather = completion->parent;
	struct index_zone *zone = &gather->index->zones[dd_current_thread_id()];
	struct uds_index_stats *stats = gather->stats;

	for (int type = 0; type < UDS_REQUEST_TYPES; type++) {
		stats->requests[type] += zone->stats.requests[type];
		stats->found[type] += zone->stats.found[type];
	}
	for (int location = 0; location < UDS_LOCATIONS; location++)
		stats->found_in[location] += zone->stats.found_in[location];
	stats->cache_hits += zone->cache->stats.hits;
	stats->cache_misses += zone->cache->stats.misses;
	stats->reads_queued += zone->stats.reads_queued;
	stats->read_errors += zone->stats.read_errors;
	if (zone->sparse_cache != NULL) {
		stats->sparse_cache_hits += zone->sparse_cache->stats.hits;
		stats->sparse_cache_misses += zone->sparse_cache->stats.misses;
		stats->sparse_chapters_loaded += zone->sparse_cache->stats.loads;
	}
	if (zone->id == 0) {
		stats->open_chapter = zone->newest_chapter;
		stats->oldest_chapter = uds_oldest_chapter_of(gather->index, zone->newest_chapter);
	}
	dd_finish_completion(completion, DD_SUCCESS);
}

int uds_get_index_stats(struct uds_index *index, struct uds_index_stats *stats)
{
	struct stats_gather gather = { index, stats };
	struct uds_volume_index_stats vi;

	memset(stats, 0, sizeof(*stats));
	stats->nonce = index->layout.nonce;
	for (unsigned int z = 0; z < index->zone_count; z++) {
		int result = dd_perform_synchronous_action(index->zone_threads, z,
		                                           gather_zone_stats, &gather);

		if (result != DD_SUCCESS)
			return result;
	}
	/* Every zone has just synchronized with this thread; their lists are quiet enough. */
	uds_get_volume_index_stats(index->volume_index, &vi);
	stats->entries_indexed = vi.record_count;
	stats->collisions = vi.collision_count;
	stats->entries_discarded = vi.discard_count;
	stats->early_flushes = vi.early_flushes;
	stats->overflows = vi.overflow_count;
	stats->rebalances = vi.rebalance_count;
	stats->volume_index_memory = vi.memory_allocated;
	pthread_mutex_lock(&index->writer.mutex);
	stats->chapters_written = index->writer.chapters_written;
	stats->chapter_index_discards = index->writer.chapter_index_discards;
	pthread_mutex_unlock(&index->writer.mutex);
	stats->chapters_dropped = index->chapters_dropped;
	stats->rebuilt = index->rebuilt;
	stats->memory_used = index->memory_bytes;
	stats->records_per_volume = index->geometry.records_per_volume;
	stats->records_per_chapter = index->geometry.records_per_chapter;
	stats->zone_count = index->zone_count;
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Open and close                                                                              */
/* ------------------------------------------------------------------------------------------ */

static unsigned int default_zone_count(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int zones = (cores > 1) ? (unsigned int) (cores / 2) : 1;

	return (zones > UDS_MAX_ZONES) ? UDS_MAX_ZONES : zones;
}

/* Check the parameters and derive the geometry of a new index. */
static int make_geometry_for(const struct uds_parameters *parameters, struct uds_geometry *geometry)
{
	if ((parameters->record_pages_per_chapter != 0) || (parameters->chapters_per_volume != 0))
		return uds_make_custom_geometry(parameters->bytes_per_page,
		                                parameters->record_pages_per_chapter,
		                                parameters->chapters_per_volume,
		                                parameters->sparse_chapters_per_volume, geometry);
	return uds_make_geometry(parameters->memory_mb ?: 256, parameters->sparse,
	                         parameters->bytes_per_page, geometry);
}

int uds_compute_index_size(const struct uds_parameters *parameters, uint64_t *size_ptr)
{
	struct uds_geometry geometry;
	int result = make_geometry_for(parameters, &geometry);

	if (result != DD_SUCCESS)
		return result;
	*size_ptr = uds_compute_index_storage_size(&geometry);
	return DD_SUCCESS;
}

/*
 * Check the region of the storage the parameters give the index, for an index of @needed bytes
 * (0: not known yet). A region given a size must hold the index; every byte the index may use
 * must have an offset that off_t can express.
 */
static int check_region_parameters(const struct uds_parameters *parameters, uint64_t needed)
{
	uint64_t offset = parameters->offset;
	uint64_t size = parameters->size;

	if ((offset % UDS_LAYOUT_BLOCK_BYTES) != 0)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "index region offset %llu is not a multiple of %u",
		                             (unsigned long long) offset, UDS_LAYOUT_BLOCK_BYTES);
	if ((offset > INT64_MAX) || (size > INT64_MAX - offset) || (needed > INT64_MAX - offset))
		return dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "index region of %llu bytes at %llu is out of reach",
		    (unsigned long long) size, (unsigned long long) offset);
	if ((size != 0) && (size < needed))
		return dd_log_error_strerror(
		    DD_OUT_OF_RANGE, "index region has %llu bytes; this index needs %llu",
		    (unsigned long long) size, (unsigned long long) needed);
	return DD_SUCCESS;
}

/*
 * Open the storage. For a new index, a regular file that ends before @end (the end of what the
 * index will use) is created or extended up to it; nothing else is changed.
 */
static int open_storage(const char *path, bool create, uint64_t end, int *fd_ptr)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);

	if (fd < 0)
		return dd_log_error_strerror(errno, "cannot open index storage %s", path);
	if (create && (fstat(fd, &st) == 0) && S_ISREG(st.st_mode) &&
	    ((uint64_t) st.st_size < end) && (ftruncate(fd, (off_t) end) != 0)) {
		int result = errno;

		close(fd);
		return dd_log_error_strerror(result, "cannot size index storage %s", path);
	}
	*fd_ptr = fd;
	return DD_SUCCESS;
}

static int make_zones(struct uds_index *index)
{
	const struct uds_geometry *g = &index->geometry;
	uint32_t cache_chapters = index->parameters.cache_chapters ?: DEFAULT_CACHE_CHAPTERS;
	uint32_t cache_pages =
	    (uint32_t) ((uint64_t) cache_chapters * g->pages_per_chapter / index->zone_count);
	int result =
	    DD_ALLOCATE(index->zone_count, struct index_zone, "index zones", &index->zones);

	for (unsigned int z = 0; (z < index->zone_count) && (result == DD_SUCCESS); z++) {
		struct index_zone *zone = &index->zones[z];

		zone->index = index;
		zone->id = z;
		zone->writing_chapter_number = UINT64_MAX;
		result = uds_make_open_chapter(g, index->zone_count, &zone->open_chapter);
		if (result == DD_SUCCESS)
			result =
			    uds_make_open_chapter(g, index->zone_count, &zone->writing_chapter);
		if (result == DD_SUCCESS)
			result = uds_make_page_cache(g, cache_pages, &zone->cache);
		if (result == DD_SUCCESS)
			result = DD_ALLOCATE(zone->cache->capacity, struct page_read, "page reads",
			                     &zone->reads);
		if ((result == DD_SUCCESS) && uds_is_sparse_geometry(g))
			result = uds_make_sparse_cache(g, cache_chapters, &zone->sparse_cache);
		if (zone->sparse_cache != NULL)
			result = DD_ALLOCATE(zone->sparse_cache->capacity, struct sparse_load,
			                     "sparse loads", &zone->sparse_loads);
	}
	return result;
}

/*
 * Zone threads look a few requests ahead in their queues (see work-queue.h): load the volume
 * index list header and the open chapter slot of each request taken, then the list itself and
 * the record the slot names just before its turn, so the cache misses of the next searches
 * overlap the work of this one.
 */
static void prefetch_zone_work(struct dd_completion *completion, unsigned int stage)
{
	struct uds_request *request = completion->parent;
	const struct index_zone *zone;

	if (completion->callback != process_request_callback)
		return;
	zone = &request->index->zones[request->zone_number];
	uds_prefetch_volume_index_name(request->index->volume_index, &request->record_name, stage);
	uds_prefetch_open_chapter_name(zone->open_chapter, &request->record_name, stage);
}

/* Start a set of I/O threads that sleep as soon as they run out of work. */
static int start_io_threads(const char *name, unsigned int count, struct dd_thread_set **set_ptr)
{
	struct dd_thread_set_config config = dd_default_thread_set_config(name, count);

	config.spin_ns = 0;
	return dd_make_thread_set(&config, set_ptr);
}

static int start_threads(struct uds_index *index)
{
	const struct uds_parameters *p = &index->parameters;
	struct dd_thread_set_config config =
	    dd_default_thread_set_config("udszone", index->zone_count);
	int result;

	config.prefetch = prefetch_zone_work;
	result = dd_make_thread_set(&config, &index->zone_threads);
	if (result == DD_SUCCESS)
		result = start_io_threads("udsread", p->reader_threads ?: DEFAULT_READER_THREADS,
		                          &index->reader_threads);
	if (result == DD_SUCCESS)
		result = start_io_threads("udsdisk", p->disk_threads ?: DEFAULT_DISK_THREADS,
		                          &index->disk_threads);
	return result;
}

/* Zone thread: close the zone's part of the open chapter just loaded. */
static void close_loaded_chapter_on_zone(struct dd_completion *completion)
{
	close_zone_chapter(completion->parent);
	dd_finish_completion(completion, DD_SUCCESS);
}

/*
 * A save loaded into another zone count may fill a zone's part of the open chapter (see
 * open-chapter.h), and a zone closes the chapter only when a put fills its part: with no room
 * for another put, it would lose every name it is given. Close such a chapter now, in every
 * zone, as the put that filled it would have. The writer has started; no request has.
 */
static int close_full_loaded_chapter(struct uds_index *index)
{
	bool full = false;
	int result = DD_SUCCESS;

	for (unsigned int z = 0; z < index->zone_count; z++) {
		const struct uds_open_chapter_zone *part = index->zones[z].open_chapter;

		full = full || (part->size >= part->capacity);
	}
	if (!full)
		return DD_SUCCESS;
	dd_log_info("the loaded open chapter %llu fills a zone; closing it",
	            (unsigned long long) index->zones[0].newest_chapter);
	for (unsigned int z = 0; (z < index->zone_count) && (result == DD_SUCCESS); z++)
		result = dd_perform_synchronous_action(
		    index->zone_threads, z, close_loaded_chapter_on_zone, &index->zones[z]);
	return result;
}

/* Bring the index's state up: load the newest clean save, or rebuild. */
static int load_or_rebuild(struct uds_index *index, enum uds_open_mode mode)
{
	struct uds_save_info save;
	uint64_t open_chapter = 0;
	int result = uds_find_latest_save(&index->layout, &index->geometry, &save);

	if (result == DD_SUCCESS) {
		result = uds_load_index_save(index, &save);
		if (result == DD_SUCCESS) {
			open_chapter = save.open_chapter;
			dd_log_info("loaded index save %llu (open chapter %llu)",
			            (unsigned long long) save.sequence,
			            (unsigned long long) open_chapter);
		} else {
			dd_log_warning("the index save is unusable; the index must be rebuilt");
		}
	}
	if (result != DD_SUCCESS) {
		if (mode == UDS_NO_REBUILD)
			return dd_log_error_strerror(
			    DD_END_OF_FILE, "index was not saved cleanly and rebuild is off");
		uds_free_volume_index(index->volume_index);
		index->volume_index = NULL;
		result = uds_make_volume_index(&index->geometry, index->zone_count,
		                               &index->volume_index);
		if (result == DD_SUCCESS)
			result = uds_rebuild_index(index, &open_chapter);
		if (result != DD_SUCCESS)
			return result;
	}
	uds_set_volume_index_open_chapter(index->volume_index, open_chapter);
	for (unsigned int z = 0; z < index->zone_count; z++)
		index->zones[z].newest_chapter = open_chapter;
	/* From here on the index changes: no save made so far may be loaded after a crash. */
	result = uds_invalidate_saves(&index->layout);
	if (result == DD_SUCCESS)
		result = uds_start_chapter_writer(index, open_chapter);
	if (result != DD_SUCCESS)
		return result;
	return close_full_loaded_chapter(index);
}

int uds_open_index(enum uds_open_mode mode, const struct uds_parameters *parameters,
                   struct uds_index **index_ptr)
{
	int64_t balance_before = dd_thread_memory_balance();
	struct uds_index *index;
	bool create = (mode == UDS_CREATE);
	int result;

	if ((parameters == NULL) || (parameters->path == NULL) ||
	    (parameters->zone_count > UDS_MAX_ZONES) || ((unsigned int) mode > UDS_NO_REBUILD))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad index parameters");
	result = DD_ALLOCATE(1, struct uds_index, "index", &index);
	if (result != DD_SUCCESS)
		return result;
	index->fd = -1;
	index->parameters = *parameters;
	index->zone_count = parameters->zone_count ?: default_zone_count();
	if (create) {
		uint64_t needed = 0;

		result = make_geometry_for(parameters, &index->geometry);
		if (result == DD_SUCCESS) {
			needed = uds_compute_index_storage_size(&index->geometry);
			result = check_region_parameters(parameters, needed);
		}
		if (result == DD_SUCCESS)
			result = open_storage(parameters->path, true, parameters->offset + needed,
			                      &index->fd);
		if (result == DD_SUCCESS)
			result = uds_create_index_layout(
			    index->fd, parameters->offset, parameters->size, &index->geometry,
			    parameters->memory_mb ?: 256, &index->layout);
	} else {
		result = check_region_parameters(parameters, 0);
		if (result == DD_SUCCESS)
			result = open_storage(parameters->path, false, 0, &index->fd);
		if (result == DD_SUCCESS)
			result = uds_load_index_layout(index->fd, parameters->offset,
			                               parameters->size, &index->layout);
		if (result == DD_SUCCESS)
			result = uds_make_custom_geometry(
			    index->layout.shape.bytes_per_page,
			    index->layout.shape.record_pages_per_chapter,
			    index->layout.shape.chapters_per_volume,
			    index->layout.shape.sparse_chapters_per_volume, &index->geometry);
		if (result == DD_SUCCESS)
			result = uds_check_layout_geometry(&index->layout, &index->geometry);
	}
	if (result == DD_SUCCESS)
		result = uds_make_volume(&index->geometry, index->fd,
		                         index->layout.region_offset + index->layout.volume_offset,
		                         index->layout.nonce, &index->volume);
	if (result == DD_SUCCESS)
		result = uds_make_volume_index(&index->geometry, index->zone_count,
		                               &index->volume_index);
	if (result == DD_SUCCESS)
		result = make_zones(index);
	if (result == DD_SUCCESS)
		result = uds_make_chapter_writer(index);
	if (result == DD_SUCCESS)
		result = start_threads(index);
	if (result == DD_SUCCESS) {
		if (create) {
			uds_set_volume_index_open_chapter(index->volume_index, 0);
			result = uds_start_chapter_writer(index, 0);
		} else {
			result = load_or_rebuild(index, mode);
		}
	}
	if (result != DD_SUCCESS) {
		uds_free_index(index);
		return result;
	}
	index->memory_bytes = (uint64_t) (dd_thread_memory_balance() - balance_before);
	*index_ptr = index;
	return DD_SUCCESS;
}

void uds_free_index(struct uds_index *index)
{
	if (index == NULL)
		return;
	if (index->zone_threads != NULL)
		uds_flush_index(index);
	/* Readers, then disk threads, then zones: each may still be inside its hand-off to the
	 * next one's queue. */
	dd_free_thread_set(index->reader_threads);
	dd_free_thread_set(index->disk_threads);
	dd_free_thread_set(index->zone_threads);
	uds_free_chapter_writer(index);
	if (index->zones != NULL) {
		for (unsigned int z = 0; z < index->zone_count; z++) {
			struct index_zone *zone = &index->zones[z];

			uds_free_open_chapter(zone->open_chapter);
			uds_free_open_chapter(zone->writing_chapter);
			uds_free_page_cache(zone->cache);
			dd_free(zone->reads);
			uds_free_sparse_cache(zone->sparse_cache);
			dd_free(zone->sparse_loads);
		}
		dd_free(index->zones);
	}
	uds_free_volume_index(index->volume_index);
	uds_free_volume(index->volume);
	if (index->fd >= 0)
		close(index->fd);
	dd_free(index);
}

int uds_close_index(struct uds_index *index)
{
	int result = uds_save_index(index);

	uds_free_index(index);
	return result;
}

void uds_drop_index_os_cache(struct uds_index *index)
{
	uds_drop_volume_cache(index->volume);
}
