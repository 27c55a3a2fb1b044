// SPDX-License-Identifier: GPL-2.0-only
/*
 * The life of a data_vio; see data-vio.h.
 *
 * The pool hands data_vios out under a mutex and makes submitters wait on a condition while it
 * is empty (discards may hold at most VDO_MAX_DISCARDS). A request counts its parts; each
 * part acknowledges once, and the last one sends the request to the ack thread, whose callback
 * calls the caller back. A data_vio returns to the pool when both its journey and the callback
 * it sent (if any) are over: it holds a reference for each.
 *
 * Flushes: every write acknowledged before it was committed is counted in the generation it was
 * acknowledged in; a flush takes the current generation and starts the next one, and completes
 * once no write of its generation or an older one is left uncommitted. A committed write is
 * durable (the journal flushes before each block and writes it with FUA).
 */
#include "data-vio.h"

#include <string.h>

#include "dedupe.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	FLUSH_GENERATIONS = 4096,
};

static const uint8_t zero_block[VDO_BLOCK_SIZE];

bool vdo_block_is_zero(const uint8_t *data)
{
	return memcmp(data, zero_block, VDO_BLOCK_SIZE) == 0;
}

/* --------------------------------------------------------------------------------------------
 * The pool
 */

struct pooled {
	struct data_vio data_vio;
	atomic_uint references;
};

static atomic_uint *references_of(struct data_vio *data_vio)
{
	return &((struct pooled *) data_vio)->references;
}

int vdo_make_data_vio_pool(struct vdo_store *store)
{
	struct data_vio_pool *pool = &store->pool;
	struct pooled *vios;
	int result = DD_ALLOCATE(VDO_DATA_VIO_COUNT, struct pooled, "data_vios", &vios);

	if (result != DD_SUCCESS)
		return result;
	pool->vios = &vios[0].data_vio;
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->available, NULL);
	pthread_cond_init(&pool->idle, NULL);
	for (uint32_t i = 0; i < VDO_DATA_VIO_COUNT; i++) {
		struct data_vio *data_vio = &vios[i].data_vio;

		data_vio->store = store;
		result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE, "data_vio block",
		                             &data_vio->data);
		/* Only agents of hash locks read blocks to verify advice. */
		if ((result == DD_SUCCESS) && (store->config.index != NULL))
			result = dd_allocate_aligned(VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
			                             "data_vio scratch", &data_vio->scratch);
		if (result != DD_SUCCESS)
			return result;
		data_vio->next = pool->free;
		pool->free = data_vio;
	}
	return DD_SUCCESS;
}

void vdo_free_data_vio_pool(struct vdo_store *store)
{
	struct data_vio_pool *pool = &store->pool;
	struct pooled *vios = (struct pooled *) pool->vios;

	if (vios == NULL)
		return;
	for (uint32_t i = 0; i < VDO_DATA_VIO_COUNT; i++) {
		dd_free(vios[i].data_vio.data);
		dd_free(vios[i].data_vio.scratch);
	}
	dd_free(vios);
	pool->vios = NULL;
	pthread_cond_destroy(&pool->idle);
	pthread_cond_destroy(&pool->available);
	pthread_mutex_destroy(&pool->mutex);
}

static struct data_vio *acquire_data_vio(struct vdo_store *store, bool discard)
{
	struct data_vio_pool *pool = &store->pool;
	struct data_vio *data_vio;

	pthread_mutex_lock(&pool->mutex);
	while ((pool->free == NULL) || (discard && (pool->discards >= VDO_MAX_DISCARDS)))
		pthread_cond_wait(&pool->available, &pool->mutex);
	data_vio = pool->free;
	pool->free = data_vio->next;
	pool->busy++;
	if (discard)
		pool->discards++;
	pthread_mutex_unlock(&pool->mutex);
	return data_vio;
}

static void return_data_vio(struct data_vio *data_vio)
{
	struct data_vio_pool *pool = &data_vio->store->pool;

	pthread_mutex_lock(&pool->mutex);
	if (data_vio->discard_permit)
		pool->discards--;
	data_vio->next = pool->free;
	pool->free = data_vio;
	if (--pool->busy == 0)
		pthread_cond_broadcast(&pool->idle);
	pthread_cond_broadcast(&pool->available);
	pthread_mutex_unlock(&pool->mutex);
}

static void put_reference(struct data_vio *data_vio)
{
	if (atomic_fetch_sub(references_of(data_vio), 1) == 1)
		return_data_vio(data_vio);
}

void vdo_wait_for_idle_pool(struct vdo_store *store)
{
	struct data_vio_pool *pool = &store->pool;

	pthread_mutex_lock(&pool->mutex);
	while (pool->busy > 0)
		pthread_cond_wait(&pool->idle, &pool->mutex);
	pthread_mutex_unlock(&pool->mutex);
}

/* --------------------------------------------------------------------------------------------
 * Flushes
 */

int vdo_make_flusher(struct flusher *flusher)
{
	pthread_mutex_init(&flusher->mutex, NULL);
	flusher->generation = 1;
	flusher->oldest = 1;
	return DD_ALLOCATE(FLUSH_GENERATIONS, uint64_t, "flush generations", &flusher->counts);
}

void vdo_free_flusher(struct flusher *flusher)
{
	dd_free(flusher->counts);
	flusher->counts = NULL;
	pthread_mutex_destroy(&flusher->mutex);
}

/* The oldest generation with uncommitted writes (the current one if none). Mutex held. */
static void advance_oldest(struct flusher *flusher)
{
	while ((flusher->oldest < flusher->generation) &&
	       (flusher->counts[flusher->oldest % FLUSH_GENERATIONS] == 0))
		flusher->oldest++;
}

/* Flushes now done, in order, taken off the list. Mutex held. */
static struct data_vio *take_done_flushes(struct flusher *flusher)
{
	struct data_vio *done = NULL;
	struct data_vio **tail = &done;

	while ((flusher->waiters != NULL) &&
	       (flusher->waiters->flush_generation < flusher->oldest)) {
		*tail = flusher->waiters;
		tail = &flusher->waiters->next;
		flusher->waiters = flusher->waiters->next;
	}
	*tail = NULL;
	if (flusher->waiters == NULL)
		flusher->last_waiter = NULL;
	return done;
}

static void acknowledge_all(struct data_vio *list)
{
	while (list != NULL) {
		struct data_vio *next = list->next;

		vdo_acknowledge(list);
		vdo_finish_data_vio(list);
		list = next;
	}
}

static void count_for_flush(struct data_vio *data_vio)
{
	struct flusher *flusher = &data_vio->store->flusher;
	uint64_t generation;

	pthread_mutex_lock(&flusher->mutex);
	generation = flusher->generation;
	/* Out of room: count it in an older generation, which only makes flushes wait longer. */
	if (generation - flusher->oldest >= FLUSH_GENERATIONS)
		generation = flusher->oldest + FLUSH_GENERATIONS - 1;
	flusher->counts[generation % FLUSH_GENERATIONS]++;
	pthread_mutex_unlock(&flusher->mutex);
	data_vio->flush_generation = generation;
	data_vio->counted_for_flush = true;
}

void vdo_write_committed(struct data_vio *data_vio)
{
	struct flusher *flusher = &data_vio->store->flusher;
	struct data_vio *done;

	if (!data_vio->counted_for_flush)
		return;
	data_vio->counted_for_flush = false;
	pthread_mutex_lock(&flusher->mutex);
	flusher->counts[data_vio->flush_generation % FLUSH_GENERATIONS]--;
	advance_oldest(flusher);
	done = take_done_flushes(flusher);
	pthread_mutex_unlock(&flusher->mutex);
	acknowledge_all(done);
}

/* A flush request's data_vio: wait for the writes before it. */
static void start_flush(struct data_vio *data_vio)
{
	struct flusher *flusher = &data_vio->store->flusher;
	struct data_vio *done;

	atomic_fetch_add_explicit(&data_vio->store->flushes, 1, memory_order_relaxed);
	pthread_mutex_lock(&flusher->mutex);
	data_vio->flush_generation = flusher->generation++;
	data_vio->next = NULL;
	if (flusher->last_waiter != NULL)
		flusher->last_waiter->next = data_vio;
	else
		flusher->waiters = data_vio;
	flusher->last_waiter = data_vio;
	advance_oldest(flusher);
	done = take_done_flushes(flusher);
	pthread_mutex_unlock(&flusher->mutex);
	acknowledge_all(done);
}

/* --------------------------------------------------------------------------------------------
 * Acknowledgement
 */

static void call_back(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct vdo_request *request = data_vio->request;

	request->result = request->first_error;
	request->callback(request);
	put_reference(data_vio);
}

void vdo_acknowledge(struct data_vio *data_vio)
{
	struct vdo_request *request = data_vio->request;
	struct vdo_store *store = data_vio->store;
	int expected = DD_SUCCESS;

	if (atomic_load_explicit(&data_vio->acknowledged, memory_order_relaxed))
		return;
	atomic_store_explicit(&data_vio->acknowledged, true, memory_order_release);
	if (data_vio->result != DD_SUCCESS)
		__atomic_compare_exchange_n(&request->first_error, &expected, data_vio->result,
		                            false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	else if (!data_vio->committed && ((data_vio->operation == VDO_REQUEST_WRITE) ||
	                                  (data_vio->operation == VDO_REQUEST_DISCARD)))
		count_for_flush(data_vio);
	if (__atomic_fetch_sub(&request->pending, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	atomic_fetch_add(references_of(data_vio), 1);
	dd_initialize_completion(&data_vio->ack_completion, store->threads);
	dd_prepare_completion(&data_vio->ack_completion, call_back, NULL, store->thread_ids.ack,
	                      data_vio);
	dd_launch_completion(&data_vio->ack_completion);
}

/* --------------------------------------------------------------------------------------------
 * Logical locks and the end of the journey
 */

dd_thread_id_t vdo_logical_thread(const struct data_vio *data_vio)
{
	return data_vio->store->logical[data_vio->logical_zone].thread;
}

void vdo_launch_on(struct data_vio *data_vio, dd_action_fn callback, dd_thread_id_t thread)
{
	dd_launch_completion_callback(&data_vio->completion, callback, thread);
}

static struct data_vio *holder_of(struct vdo_zone_lock *lock)
{
	return (struct data_vio *) ((char *) lock - offsetof(struct data_vio, lbn_lock));
}

void vdo_acquire_logical_lock(struct data_vio *data_vio, dd_action_fn next)
{
	struct logical_zone *zone = &data_vio->store->logical[data_vio->logical_zone];
	struct vdo_zone_lock *holder = vdo_lock_holder(&zone->lbn_locks, data_vio->lbn);

	/* Only the newest write to the block, with nobody queued behind it, has the data. */
	if ((data_vio->operation == VDO_REQUEST_READ) && (holder != NULL) &&
	    (holder->first_waiter == NULL) && vdo_read_from_holder(data_vio, holder_of(holder)))
		return;
	/* When a holder lets go, it launches the waiter with this callback. */
	dd_set_completion_callback(&data_vio->completion, next, zone->thread);
	if (vdo_acquire_zone_key(&zone->lbn_locks, &data_vio->lbn_lock, data_vio->lbn)) {
		data_vio->holds_lbn_lock = true;
		next(&data_vio->completion);
	}
}

void vdo_finish_data_vio(struct data_vio *data_vio)
{
	if (data_vio->operation != VDO_REQUEST_FLUSH) {
		struct logical_zone *zone = &data_vio->store->logical[data_vio->logical_zone];
		struct vdo_zone_lock *next;

		if (data_vio->holds_lbn_lock) {
			data_vio->holds_lbn_lock = false;
			next = vdo_release_zone_key(&zone->lbn_locks, &data_vio->lbn_lock);
			if (next != NULL) {
				holder_of(next)->holds_lbn_lock = true;
				dd_launch_completion(&holder_of(next)->completion);
			}
		}
	}
	vdo_acknowledge(data_vio);
	vdo_write_committed(data_vio);
	put_reference(data_vio);
}

/* Last step of a failure: on the logical zone, with the block released where it belongs. */
static void finish_failure(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct logical_zone *zone = &data_vio->store->logical[data_vio->logical_zone];

	if (data_vio->holds_slot_lock) {
		struct vdo_zone_lock *next =
		    vdo_release_zone_key(&zone->slot_locks, &data_vio->slot_lock);

		data_vio->holds_slot_lock = false;
		if (next != NULL)
			dd_launch_completion(
			    &((struct data_vio *) ((char *) next -
			                           offsetof(struct data_vio, slot_lock)))
			         ->completion);
	}
	vdo_finish_data_vio(data_vio);
}

void vdo_give_back_allocation(struct data_vio *data_vio)
{
	if (data_vio->pbn_lock != NULL) {
		vdo_unlock_pbn(data_vio->store->depot, data_vio->pbn_lock);
		data_vio->pbn_lock = NULL;
	}
	vdo_release_allocation(data_vio->store->depot, data_vio->allocation);
	data_vio->allocation = VDO_ZERO_BLOCK;
}

static void release_allocation(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	vdo_give_back_allocation(data_vio);
	vdo_launch_on(data_vio, finish_failure, vdo_logical_thread(data_vio));
}

static void fail_onward(struct dd_completion *completion);

/* The hash zone: a failed data_vio lets go of its hash lock, then cleans up the rest. */
static void leave_hash_lock_on_failure(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	vdo_release_hash_lock(
	    data_vio, fail_onward,
	    vdo_hash_zone_thread(data_vio->store->hash_zones, data_vio->hash_zone));
}

void vdo_fail_data_vio(struct data_vio *data_vio, int result)
{
	if (data_vio->result == DD_SUCCESS)
		data_vio->result = result;
	dd_reset_completion(&data_vio->completion);
	if (data_vio->holds_journal_lock) {
		vdo_release_journal_lock(data_vio->store->locks, data_vio->journal.point.sequence);
		data_vio->holds_journal_lock = false;
	}
	fail_onward(&data_vio->completion);
}

/* Any zone: the next step of cleaning up after a failure. */
static void fail_onward(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	uint32_t offset;
	struct vdo_slab *slab;

	if (data_vio->hash_lock != NULL) {
		vdo_launch_on(
		    data_vio, leave_hash_lock_on_failure,
		    vdo_hash_zone_thread(data_vio->store->hash_zones, data_vio->hash_zone));
		return;
	}
	slab = (data_vio->allocation != VDO_ZERO_BLOCK)
	           ? vdo_depot_slab_of(data_vio->store->depot, data_vio->allocation, &offset)
	           : NULL;
	if (slab != NULL) {
		vdo_launch_on(data_vio, release_allocation, slab->thread);
		return;
	}
	vdo_launch_on(data_vio, finish_failure, vdo_logical_thread(data_vio));
}

/* --------------------------------------------------------------------------------------------
 * Requests
 */

static int check_request(const struct vdo_store *store, const struct vdo_request *request)
{
	uint64_t size = vdo_map_logical_blocks(store->map) * VDO_BLOCK_SIZE;

	if (request->operation == VDO_REQUEST_FLUSH)
		return DD_SUCCESS;
	if ((unsigned int) request->operation > VDO_REQUEST_DISCARD)
		return DD_INVALID_ARGUMENT;
	if ((request->length == 0) || (request->offset % VDO_SECTOR_SIZE != 0) ||
	    (request->length % VDO_SECTOR_SIZE != 0) ||
	    ((request->buffer == NULL) && (request->operation != VDO_REQUEST_DISCARD)))
		return DD_INVALID_ARGUMENT;
	if ((request->offset >= size) || (request->length > size - request->offset))
		return DD_OUT_OF_RANGE;
	if ((request->operation != VDO_REQUEST_READ) && atomic_load(&store->read_only))
		return DD_READ_ONLY;
	return DD_SUCCESS;
}

static void start_part(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;

	vdo_acquire_logical_lock(
	    data_vio, (data_vio->operation == VDO_REQUEST_READ) ? vdo_start_read : vdo_start_write);
}

/* Set up @data_vio for the part of @request in block @lbn. */
static void prepare_part(struct data_vio *data_vio, struct vdo_request *request, vdo_lbn_t lbn)
{
	struct vdo_store *store = data_vio->store;
	uint64_t block_start = lbn * VDO_BLOCK_SIZE;
	uint64_t start = (request->offset > block_start) ? request->offset : block_start;
	uint64_t end = request->offset + request->length;
	uint8_t *data = data_vio->data;
	uint8_t *scratch = data_vio->scratch;

	if (end > block_start + VDO_BLOCK_SIZE)
		end = block_start + VDO_BLOCK_SIZE;
	memset(data_vio, 0, sizeof(*data_vio));
	data_vio->store = store;
	data_vio->data = data;
	data_vio->scratch = scratch;
	data_vio->request = request;
	data_vio->operation = request->operation;
	data_vio->fua = (request->flags & VDO_REQUEST_FUA) != 0;
	data_vio->lbn = lbn;
	data_vio->offset_in_block = (uint32_t) (start - block_start);
	data_vio->length = (uint32_t) (end - start);
	data_vio->is_discard = (request->operation == VDO_REQUEST_DISCARD);
	if (request->buffer != NULL)
		data_vio->request_data = (uint8_t *) request->buffer + (start - request->offset);
	if ((data_vio->operation == VDO_REQUEST_WRITE) && (data_vio->length == VDO_BLOCK_SIZE)) {
		memcpy(data, data_vio->request_data, VDO_BLOCK_SIZE);
		data_vio->is_zero = vdo_block_is_zero(data);
	}
	data_vio->logical_zone = vdo_map_zone_of(store->map, lbn);
	atomic_store(references_of(data_vio), 1);
	dd_initialize_completion(&data_vio->completion, store->threads);
	dd_prepare_completion(&data_vio->completion, start_part, NULL, vdo_logical_thread(data_vio),
	                      data_vio);
}

/* A request that never reaches the zones (a flush, or a bad request): one carrier part. */
static void launch_carrier(struct vdo_store *store, struct vdo_request *request, int result)
{
	struct data_vio *data_vio = acquire_data_vio(store, false);
	uint8_t *data = data_vio->data;
	uint8_t *scratch = data_vio->scratch;

	memset(data_vio, 0, sizeof(*data_vio));
	data_vio->data = data;
	data_vio->scratch = scratch;
	data_vio->store = store;
	data_vio->request = request;
	data_vio->operation = VDO_REQUEST_FLUSH;
	data_vio->result = result;
	atomic_store(references_of(data_vio), 1);
	if (result == DD_SUCCESS) {
		start_flush(data_vio);
		return;
	}
	vdo_finish_data_vio(data_vio);
}

void vdo_launch_request(struct vdo_store *store, struct vdo_request *request)
{
	int result = check_request(store, request);
	vdo_lbn_t first;
	vdo_lbn_t last;

	request->first_error = DD_SUCCESS;
	request->result = DD_SUCCESS;
	if ((result != DD_SUCCESS) || (request->operation == VDO_REQUEST_FLUSH)) {
		request->pending = 1;
		launch_carrier(store, request, result);
		return;
	}
	first = request->offset / VDO_BLOCK_SIZE;
	last = (request->offset + request->length - 1) / VDO_BLOCK_SIZE;
	request->pending = last - first + 1;
	for (vdo_lbn_t lbn = first; lbn <= last; lbn++) {
		struct data_vio *data_vio =
		    acquire_data_vio(store, request->operation == VDO_REQUEST_DISCARD);

		prepare_part(data_vio, request, lbn);
		data_vio->discard_permit = (request->operation == VDO_REQUEST_DISCARD);
		dd_launch_completion(&data_vio->completion);
	}
}
