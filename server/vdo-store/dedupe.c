// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hash zones and hash locks; see dedupe.h.
 *
 * A hash lock gathers the data_vios writing one record name at once. Its members form a ring
 * (any of them holds the data, to compare newcomers with); one of them, the agent, does the
 * lock's work while the others wait in a queue. The states, after dm-vdo's:
 *
 *   QUERYING   the agent asks the index: POST (offering its allocation as the new advice) when
 *              it has an allocation, QUERY otherwise. Valid advice: LOCKING. No advice, a
 *              failure or a timeout: WRITING.
 *   LOCKING    the agent read-locks the advised block on its physical zone's thread; a block
 *              being written, free, full, or in a slab still recovering cannot be shared: the
 *              advice is stale, WRITING.
 *   VERIFYING  the agent reads the advised block and compares all 4096 bytes with its data.
 *              Equal, and the block can take the agent's reference: DEDUPING. Otherwise the
 *              advice is stale: UNLOCKING, then WRITING.
 *   UNLOCKING  the agent gives the read lock of stale advice back before writing.
 *   WRITING    the agent writes its data to its allocation (if it has none, a waiter with one
 *              becomes the agent; if none has, everyone writes plainly and runs out of space).
 *              Its write lock then becomes the lock's read lock on the new block, with room for
 *              253 more references. If the advice was stale, or the data went somewhere else
 *              than the POST said, the index is UPDATEd. Then DEDUPING.
 *   DEDUPING   no agent: every waiter, and every data_vio that joins from now on, claims a
 *              reference on the shared block and goes on with it as its new mapping. A claim
 *              that fails (the block has 254 references) forks the lock: a new lock for the
 *              name takes its place, with the claimer as agent, which writes a new copy and
 *              UPDATEs the index with it; the old lock serves those already sharing.
 *   BYPASSING  dedupe is off for this lock (the agent failed, or nobody has an allocation):
 *              everyone writes plainly.
 *
 * When the last member lets go (its mapping stored, so its increment has landed), the lock
 * leaves the zone's map and gives the shared block's read lock back on the block's zone
 * thread (RELEASING), then returns to the pool.
 *
 * A newcomer whose data differs from the members' (a hash collision, which anyone who can
 * write blocks can provoke, since the name is no cryptographic hash) never joins: it writes
 * plainly. Advice is likewise only a hint: nothing is shared that was not read and compared.
 *
 * Queries and time. Each query takes a context from the zone's pool (when it is empty, the
 * write goes on without asking) and joins the zone's list of pending queries, in the order
 * they were sent, which is also the order of their deadlines. The zone's timer fires at the
 * first deadline (no sooner than the minimum interval); whatever is due by then is abandoned:
 * its lock goes on as if the index had no advice, and its context waits, out of the pool,
 * for the late answer, which is dropped. Each query counts as the thread set's work outside
 * until its answer has been handed to the zone (work-queue.h).
 */
#include "dedupe.h"

#include <stdatomic.h>
#include <string.h>

#include "advice.h"
#include "byte-order.h"
#include "data-vio.h"
#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"

enum {
	/* Registered locks and locks still releasing a read lock: twice the data_vios. */
	LOCKS_PER_ZONE = 2 * VDO_DATA_VIO_COUNT,
	CONTEXTS_PER_ZONE = VDO_DATA_VIO_COUNT,
	DEFAULT_MIN_TIMER_INTERVAL_MS = 100,
};

enum lock_state {
	QUERYING = 0,
	LOCKING,
	VERIFYING,
	UNLOCKING,
	WRITING,
	DEDUPING,
	BYPASSING,
	RELEASING,
};

struct hash_zone;

struct hash_lock {
	struct dd_record_name name;
	enum lock_state state;
	struct hash_zone *zone;
	/* In the zone's map (a forked or released lock is not). */
	bool registered;
	struct data_vio *agent;
	struct data_vio *members;
	unsigned int member_count;
	struct data_vio *first_waiter;
	struct data_vio *last_waiter;
	/* The block to share, and the lock's read lock on it. */
	struct vdo_mapping duplicate;
	struct vdo_pbn_lock *duplicate_lock;
	/* The index must learn where the data went once it is written. */
	bool update_advice;
	/* The block the POST offered (0: the agent asked with QUERY). */
	vdo_pbn_t posted;
	/* Giving the read lock back when the lock is released. */
	struct dd_completion completion;
	/* The map's chain, or the pool's free list. */
	struct hash_lock *next;
};

struct dedupe_context {
	struct vdo_index_query query;
	struct hash_zone *zone;
	/* The lock waiting for the answer: NULL for an update, or once abandoned. */
	struct hash_lock *lock;
	dd_ktime_t deadline;
	bool pending;
	struct dedupe_context *prev;
	struct dedupe_context *next;
	struct dd_completion completion;
};

struct zone_counters {
	atomic_uint_least64_t advice_valid;
	atomic_uint_least64_t advice_stale;
	atomic_uint_least64_t advice_timeouts;
	atomic_uint_least64_t data_matches;
	atomic_uint_least64_t hash_collisions;
	atomic_uint_least64_t queries_out;
	atomic_uint_least64_t invalid_advice;
	atomic_uint_least64_t context_busy;
	atomic_uint_least64_t shared;
	atomic_uint_least64_t forks;
};

struct hash_zone {
	struct vdo_hash_zones *zones;
	unsigned int index;
	dd_thread_id_t thread;
	struct hash_lock *locks;
	struct hash_lock *free_locks;
	struct hash_lock **buckets;
	uint32_t mask;
	struct dedupe_context *contexts;
	struct dedupe_context *free_contexts;
	uint32_t contexts_out;
	/* Queries waiting for an answer, oldest first. */
	struct dedupe_context *pending_first;
	struct dedupe_context *pending_last;
	struct dd_timer_entry timer_entry;
	struct dd_completion timer_completion;
	bool timer_armed;
	bool draining;
	struct dd_completion *drain_waiter;
	struct zone_counters counters;
	bool warned_no_locks;
};

struct vdo_hash_zones {
	struct vdo_dedupe_config config;
	dd_ktime_t timeout_ns;
	dd_ktime_t min_interval_ns;
	unsigned int count;
	struct hash_zone zones[];
};

static void start_writing(struct hash_lock *lock);
static void enter_deduping(struct hash_lock *lock);
static void release_lock(struct hash_lock *lock);

static void bump(atomic_uint_least64_t *counter)
{
	atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static struct hash_zone *zone_of(const struct data_vio *data_vio)
{
	return &data_vio->store->hash_zones->zones[data_vio->hash_zone];
}

static const struct vdo_dedupe_config *config_of(const struct hash_zone *zone)
{
	return &zone->zones->config;
}

static void assert_on_zone(const struct hash_zone *zone, const char *what)
{
	(void) dd_assert_on_thread(config_of(zone)->threads, zone->thread, what);
}

/* The thread of the physical zone that owns data block @pbn (a data block: checked before). */
static dd_thread_id_t block_thread(const struct hash_zone *zone, vdo_pbn_t pbn)
{
	uint32_t offset;

	return vdo_depot_slab_of(config_of(zone)->depot, pbn, &offset)->thread;
}

/* ---------------------------------------------------------------------------------------------
 * Making and freeing the zones
 */

static int make_zone(struct vdo_hash_zones *zones, unsigned int index)
{
	struct hash_zone *zone = &zones->zones[index];
	uint32_t buckets = 1;
	int result;

	while (buckets < 2 * LOCKS_PER_ZONE)
		buckets *= 2;
	zone->zones = zones;
	zone->index = index;
	zone->thread = zones->config.zone_threads[index];
	zone->mask = buckets - 1;
	result = DD_ALLOCATE(LOCKS_PER_ZONE, struct hash_lock, "hash locks", &zone->locks);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(buckets, struct hash_lock *, "hash lock map", &zone->buckets);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(CONTEXTS_PER_ZONE, struct dedupe_context, "dedupe contexts",
		                     &zone->contexts);
	if (result != DD_SUCCESS)
		return result;
	for (uint32_t i = LOCKS_PER_ZONE; i > 0; i--) {
		zone->locks[i - 1].next = zone->free_locks;
		zone->free_locks = &zone->locks[i - 1];
	}
	for (uint32_t i = CONTEXTS_PER_ZONE; i > 0; i--) {
		struct dedupe_context *context = &zone->contexts[i - 1];

		context->zone = zone;
		dd_initialize_completion(&context->completion, zones->config.threads);
		context->next = zone->free_contexts;
		zone->free_contexts = context;
	}
	dd_initialize_completion(&zone->timer_completion, zones->config.threads);
	return DD_SUCCESS;
}

int vdo_make_hash_zones(const struct vdo_dedupe_config *config, struct vdo_hash_zones **zones_ptr)
{
	struct vdo_hash_zones *zones;
	unsigned int timeout_ms = config->timeout_ms ?: VDO_DEFAULT_DEDUPE_TIMEOUT_MS;
	unsigned int interval_ms = config->min_timer_interval_ms ?: DEFAULT_MIN_TIMER_INTERVAL_MS;
	int result;

	if ((config->zone_count == 0) || (config->zone_count > VDO_MAX_HASH_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "%u hash zones (1 to %u)",
		                             config->zone_count, VDO_MAX_HASH_ZONES);
	result = dd_allocate(sizeof(*zones) + config->zone_count * sizeof(struct hash_zone),
	                     "hash zones", &zones);
	if (result != DD_SUCCESS)
		return result;
	zones->config = *config;
	zones->count = config->zone_count;
	zones->timeout_ns = (dd_ktime_t) timeout_ms * 1000 * 1000;
	zones->min_interval_ns =
	    (dd_ktime_t) ((interval_ms < timeout_ms) ? interval_ms : timeout_ms) * 1000 * 1000;
	for (unsigned int z = 0; (result == DD_SUCCESS) && (z < zones->count); z++)
		result = make_zone(zones, z);
	if (result != DD_SUCCESS) {
		vdo_free_hash_zones(zones);
		return result;
	}
	*zones_ptr = zones;
	return DD_SUCCESS;
}

void vdo_free_hash_zones(struct vdo_hash_zones *zones)
{
	if (zones == NULL)
		return;
	for (unsigned int z = 0; z < zones->count; z++) {
		struct hash_zone *zone = &zones->zones[z];

		if (zone->contexts_out > 0)
			dd_log_error("hash zone %u is freed with %u queries out", z,
			             zone->contexts_out);
		dd_free(zone->contexts);
		dd_free(zone->buckets);
		dd_free(zone->locks);
	}
	dd_free(zones);
}

dd_thread_id_t vdo_hash_zone_thread(const struct vdo_hash_zones *zones, unsigned int zone)
{
	return zones->zones[zone].thread;
}

void vdo_name_data_vio(struct vdo_hash_zones *zones, struct data_vio *data_vio)
{
	if (zones->config.name_block != NULL)
		zones->config.name_block(data_vio->data, &data_vio->record_name);
	else
		dd_record_name_of_block(data_vio->data, VDO_BLOCK_SIZE, &data_vio->record_name);
	/* Byte 8 is the chapter index's, not the volume index zone's: zones stay independent. */
	data_vio->hash_zone = (data_vio->record_name.name[8] * zones->count) >> 8;
}

/* ---------------------------------------------------------------------------------------------
 * The map of locks, and membership
 */

static struct hash_lock **bucket_of(struct hash_zone *zone, const struct dd_record_name *name)
{
	return &zone->buckets[dd_get_le32(name->name) & zone->mask];
}

static struct hash_lock *find_lock(struct hash_zone *zone, const struct dd_record_name *name)
{
	for (struct hash_lock *lock = *bucket_of(zone, name); lock != NULL; lock = lock->next) {
		if (memcmp(&lock->name, name, sizeof(*name)) == 0)
			return lock;
	}
	return NULL;
}

/* A new lock for @name, in the map (replacing a forked one); NULL if the pool is empty. */
static struct hash_lock *new_lock(struct hash_zone *zone, const struct dd_record_name *name)
{
	struct hash_lock *lock = zone->free_locks;
	struct hash_lock **bucket = bucket_of(zone, name);

	if (lock == NULL) {
		if (!zone->warned_no_locks)
			dd_log_warning("hash zone %u has no hash lock left: writing without dedupe",
			               zone->index);
		zone->warned_no_locks = true;
		return NULL;
	}
	zone->free_locks = lock->next;
	*lock = (struct hash_lock){ .name = *name, .zone = zone, .registered = true };
	dd_initialize_completion(&lock->completion, config_of(zone)->threads);
	lock->next = *bucket;
	*bucket = lock;
	return lock;
}

static void unregister_lock(struct hash_lock *lock)
{
	struct hash_lock **link = bucket_of(lock->zone, &lock->name);

	if (!lock->registered)
		return;
	while (*link != lock)
		link = &(*link)->next;
	*link = lock->next;
	lock->registered = false;
}

static void return_lock(struct hash_lock *lock)
{
	struct hash_zone *zone = lock->zone;

	(void) DD_ASSERT((lock->member_count == 0) && (lock->duplicate_lock == NULL),
	                 "a hash lock goes back empty");
	lock->next = zone->free_locks;
	zone->free_locks = lock;
}

static void join(struct hash_lock *lock, struct data_vio *data_vio)
{
	data_vio->hash_lock = lock;
	if (lock->members == NULL) {
		data_vio->member_next = data_vio;
		data_vio->member_prev = data_vio;
		lock->members = data_vio;
	} else {
		struct data_vio *first = lock->members;

		data_vio->member_next = first;
		data_vio->member_prev = first->member_prev;
		first->member_prev->member_next = data_vio;
		first->member_prev = data_vio;
	}
	lock->member_count++;
}

static void leave(struct hash_lock *lock, struct data_vio *data_vio)
{
	if (data_vio->member_next == data_vio) {
		lock->members = NULL;
	} else {
		data_vio->member_prev->member_next = data_vio->member_next;
		data_vio->member_next->member_prev = data_vio->member_prev;
		if (lock->members == data_vio)
			lock->members = data_vio->member_next;
	}
	data_vio->member_next = NULL;
	data_vio->member_prev = NULL;
	data_vio->hash_lock = NULL;
	lock->member_count--;
}

static void add_waiter(struct hash_lock *lock, struct data_vio *data_vio)
{
	data_vio->hash_next = NULL;
	if (lock->last_waiter != NULL)
		lock->last_waiter->hash_next = data_vio;
	else
		lock->first_waiter = data_vio;
	lock->last_waiter = data_vio;
}

static struct data_vio *take_waiters(struct hash_lock *lock)
{
	struct data_vio *waiters = lock->first_waiter;

	lock->first_waiter = NULL;
	lock->last_waiter = NULL;
	return waiters;
}

/* ---------------------------------------------------------------------------------------------
 * Leaving the lock's work
 */

/* A member leaves @lock to write its data plainly (the caller releases an empty lock). */
static void write_plainly(struct hash_lock *lock, struct data_vio *data_vio)
{
	leave(lock, data_vio);
	vdo_write_data_plainly(data_vio);
}

/*
 * Dedupe is off for this lock: the agent and every waiter write plainly. The caller releases
 * the lock if nobody is left in it.
 */
static void bypass(struct hash_lock *lock)
{
	struct data_vio *waiter = take_waiters(lock);
	struct data_vio *agent = lock->agent;

	lock->state = BYPASSING;
	lock->agent = NULL;
	lock->update_advice = false;
	while (waiter != NULL) {
		struct data_vio *next = waiter->hash_next;

		write_plainly(lock, waiter);
		waiter = next;
	}
	if (agent != NULL)
		write_plainly(lock, agent);
}

/* ---------------------------------------------------------------------------------------------
 * Queries
 */

static void set_pending(struct hash_zone *zone, struct dedupe_context *context)
{
	context->pending = true;
	context->next = NULL;
	context->prev = zone->pending_last;
	if (zone->pending_last != NULL)
		zone->pending_last->next = context;
	else
		zone->pending_first = context;
	zone->pending_last = context;
}

static void clear_pending(struct hash_zone *zone, struct dedupe_context *context)
{
	if (!context->pending)
		return;
	if (context->prev != NULL)
		context->prev->next = context->next;
	else
		zone->pending_first = context->next;
	if (context->next != NULL)
		context->next->prev = context->prev;
	else
		zone->pending_last = context->prev;
	context->pending = false;
}

static void expire_queries(struct dd_completion *completion);

/* Arm the zone's timer for its oldest pending query, if it is not armed. */
static void arm_timer(struct hash_zone *zone)
{
	dd_ktime_t earliest;

	if (zone->timer_armed || (zone->pending_first == NULL) || zone->draining)
		return;
	earliest = dd_monotonic_ns() + zone->zones->min_interval_ns;
	dd_prepare_completion(&zone->timer_completion, expire_queries, NULL, zone->thread, zone);
	zone->timer_armed = true;
	dd_arm_timer(config_of(zone)->timer, &zone->timer_entry, &zone->timer_completion,
	             (zone->pending_first->deadline > earliest) ? zone->pending_first->deadline
	                                                        : earliest);
}

static void finish_querying(struct hash_lock *lock, const struct vdo_index_query *query);
static void check_drained(struct hash_zone *zone);

/* The zone's thread: the timer fired; every query due is abandoned. */
static void expire_queries(struct dd_completion *completion)
{
	struct hash_zone *zone = completion->parent;
	dd_ktime_t now = dd_monotonic_ns();

	zone->timer_armed = false;
	while ((zone->pending_first != NULL) && (zone->pending_first->deadline <= now)) {
		struct dedupe_context *context = zone->pending_first;
		struct hash_lock *lock = context->lock;
		struct vdo_index_query late = { .status = VDO_INDEX_TIMED_OUT };

		clear_pending(zone, context);
		context->lock = NULL;
		bump(&zone->counters.advice_timeouts);
		if (lock != NULL)
			finish_querying(lock, &late);
	}
	arm_timer(zone);
	check_drained(zone);
}

static void check_drained(struct hash_zone *zone)
{
	struct dd_completion *waiter = zone->drain_waiter;

	if ((waiter == NULL) || (zone->contexts_out > 0) || zone->timer_armed)
		return;
	zone->drain_waiter = NULL;
	dd_finish_completion(waiter, DD_SUCCESS);
}

/* The zone's thread: an answer came back; hand it to its lock, if it still waits. */
static void answer_arrived(struct dd_completion *completion)
{
	struct dedupe_context *context = completion->parent;
	struct hash_zone *zone = context->zone;
	struct hash_lock *lock = context->lock;
	struct vdo_index_query answer = context->query;

	clear_pending(zone, context);
	context->lock = NULL;
	context->next = zone->free_contexts;
	zone->free_contexts = context;
	zone->contexts_out--;
	atomic_fetch_sub_explicit(&zone->counters.queries_out, 1, memory_order_relaxed);
	if (lock != NULL)
		finish_querying(lock, &answer);
	check_drained(zone);
}

/* An index thread: send the answer to the zone. */
static void index_answered(struct vdo_index_query *query)
{
	struct dedupe_context *context = query->context;
	struct dd_thread_set *set = config_of(context->zone)->threads;

	dd_launch_completion(&context->completion);
	dd_end_external_work(set);
}

/*
 * Send @operation for @name, offering @advice for a POST or an UPDATE; @lock waits for the
 * answer (NULL: nobody does). Return false if the zone has no context left.
 */
static bool send_query(struct hash_zone *zone, const struct dd_record_name *name,
                       struct hash_lock *lock, enum vdo_index_operation operation,
                       struct vdo_mapping advice)
{
	struct dedupe_context *context = zone->free_contexts;
	const struct vdo_dedupe_config *config = config_of(zone);

	if (context == NULL) {
		bump(&zone->counters.context_busy);
		return false;
	}
	zone->free_contexts = context->next;
	zone->contexts_out++;
	atomic_fetch_add_explicit(&zone->counters.queries_out, 1, memory_order_relaxed);
	context->lock = lock;
	context->query = (struct vdo_index_query){ .name = *name,
		                                   .operation = operation,
		                                   .callback = index_answered,
		                                   .context = context };
	if (operation != VDO_INDEX_QUERY)
		vdo_encode_advice(advice, config->nonce, context->query.new_data.data);
	dd_prepare_completion(&context->completion, answer_arrived, NULL, zone->thread, context);
	context->pending = false;
	if (lock != NULL) {
		context->deadline = dd_monotonic_ns() + zone->zones->timeout_ns;
		set_pending(zone, context);
		arm_timer(zone);
	}
	dd_begin_external_work(config->threads);
	vdo_query_index(config->index, &context->query);
	return true;
}

/* Tell the index where the lock's data is now; nobody waits for the answer. */
static void update_index(struct hash_lock *lock)
{
	lock->update_advice = false;
	(void) send_query(lock->zone, &lock->name, NULL, VDO_INDEX_UPDATE, lock->duplicate);
}

static void start_querying(struct hash_lock *lock)
{
	struct data_vio *agent = lock->agent;
	struct vdo_mapping offer = { .pbn = agent->allocation, .state = VDO_MAPPING_UNCOMPRESSED };
	bool post = (agent->allocation != VDO_ZERO_BLOCK);

	lock->state = QUERYING;
	lock->posted = post ? agent->allocation : VDO_ZERO_BLOCK;
	if (!send_query(lock->zone, &lock->name, lock, post ? VDO_INDEX_POST : VDO_INDEX_QUERY,
	                offer)) {
		lock->posted = VDO_ZERO_BLOCK;
		start_writing(lock);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Advice: locking and verifying
 */

static void duplicate_unlocked(struct dd_completion *completion);

/* The agent's hash zone thread: the advised block is read-locked, or could not be. */
static void duplicate_locked(struct dd_completion *completion);

/* The advised block's zone thread: read-lock it for the agent. */
static void lock_duplicate(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;

	agent->found_lock = vdo_read_lock_pbn(agent->store->depot, lock->duplicate.pbn);
	vdo_launch_on(agent, duplicate_locked, zone_of(agent)->thread);
}

static void start_locking(struct hash_lock *lock)
{
	lock->state = LOCKING;
	vdo_launch_on(lock->agent, lock_duplicate, block_thread(lock->zone, lock->duplicate.pbn));
}

/* The advice was not usable: the index will learn where the data goes instead. */
static void advice_was_stale(struct hash_lock *lock)
{
	bump(&lock->zone->counters.advice_stale);
	lock->update_advice = true;
}

static void finish_querying(struct hash_lock *lock, const struct vdo_index_query *answer)
{
	struct hash_zone *zone = lock->zone;
	struct vdo_mapping advice;

	if ((answer->status != VDO_INDEX_OK) || !answer->found) {
		/* A QUERY told the index nothing: it learns of the block once it is written. */
		lock->update_advice = (answer->status == VDO_INDEX_OK) && (lock->posted == 0);
		start_writing(lock);
		return;
	}
	if (!vdo_decode_advice(answer->old_data.data, config_of(zone)->nonce, &advice) ||
	    vdo_is_compressed(advice.state) ||
	    (vdo_depot_slab_of(config_of(zone)->depot, advice.pbn, &(uint32_t){ 0 }) == NULL)) {
		bump(&zone->counters.invalid_advice);
		lock->update_advice = true;
		start_writing(lock);
		return;
	}
	lock->duplicate = advice;
	start_locking(lock);
}

static void verified(struct dd_completion *completion);

static void duplicate_locked(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;

	lock->duplicate_lock = agent->found_lock;
	agent->found_lock = NULL;
	if (lock->duplicate_lock == NULL) {
		advice_was_stale(lock);
		start_writing(lock);
		return;
	}
	lock->state = VERIFYING;
	dd_set_completion_callback(completion, verified, zone_of(agent)->thread);
	vdo_submit_vio(agent->store->device, &agent->vio, completion, VDO_IO_READ, 0,
	               lock->duplicate.pbn, 1, agent->scratch);
}

/* The agent's hash zone thread: the advised block is read; share it if it holds our data. */
static void verified(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;
	bool equal = (completion->result == DD_SUCCESS) &&
	             (memcmp(agent->scratch, agent->data, VDO_BLOCK_SIZE) == 0);

	/* A read error only costs this dedupe: the data is written anew. */
	dd_reset_completion(completion);
	if (equal && vdo_claim_pbn_increment(lock->duplicate_lock)) {
		bump(&lock->zone->counters.advice_valid);
		agent->new_mapping = lock->duplicate;
		agent->is_duplicate = true;
		enter_deduping(lock);
		return;
	}
	advice_was_stale(lock);
	lock->state = UNLOCKING;
	vdo_launch_on(agent, duplicate_unlocked, block_thread(lock->zone, lock->duplicate.pbn));
}

static void back_to_writing(struct dd_completion *completion);

/* The stale block's zone thread: give its read lock back, then write. */
static void duplicate_unlocked(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;

	vdo_unlock_pbn(agent->store->depot, lock->duplicate_lock);
	vdo_launch_on(agent, back_to_writing, zone_of(agent)->thread);
}

static void back_to_writing(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;

	lock->duplicate_lock = NULL;
	start_writing(lock);
}

/* ---------------------------------------------------------------------------------------------
 * Writing
 */

/* Make a waiter with an allocation the agent; false if none has one. */
static bool find_agent_with_allocation(struct hash_lock *lock)
{
	struct data_vio **link = &lock->first_waiter;
	struct data_vio *previous = NULL;

	while ((*link != NULL) && ((*link)->allocation == VDO_ZERO_BLOCK)) {
		previous = *link;
		link = &(*link)->hash_next;
	}
	if (*link == NULL)
		return false;
	{
		struct data_vio *found = *link;
		struct data_vio *old_agent = lock->agent;

		*link = found->hash_next;
		if (lock->last_waiter == found)
			lock->last_waiter = previous;
		/* The old agent waits first in line. */
		old_agent->hash_next = lock->first_waiter;
		lock->first_waiter = old_agent;
		if (lock->last_waiter == NULL)
			lock->last_waiter = old_agent;
		lock->agent = found;
	}
	return true;
}

static void start_writing(struct hash_lock *lock)
{
	if ((lock->agent->allocation == VDO_ZERO_BLOCK) && !find_agent_with_allocation(lock)) {
		/* Nobody can write: each fails for want of space. */
		bypass(lock);
		release_lock(lock);
		return;
	}
	lock->state = WRITING;
	vdo_write_data_for_lock(lock->agent);
}

static void data_written_in_lock(struct dd_completion *completion);

void vdo_hash_lock_data_written(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct vdo_pbn_lock *written = agent->pbn_lock;

	if (completion->result == DD_SUCCESS) {
		/* The new block is the lock's to share now; the agent's reference is its own. */
		written->type = VDO_PBN_READ_LOCK;
		written->increment_limit = VDO_MAX_REFERENCES - 1;
		agent->found_lock = written;
		agent->pbn_lock = NULL;
	}
	vdo_launch_on(agent, data_written_in_lock, zone_of(agent)->thread);
}

/* The agent's write failed: it fails alone, and the others write plainly. */
static void agent_failed(struct hash_lock *lock, struct data_vio *agent, int result)
{
	/* It may have been acknowledged: its data is lost. */
	if (atomic_load(&agent->acknowledged))
		vdo_enter_read_only(agent->store, result);
	lock->agent = NULL;
	leave(lock, agent);
	bypass(lock);
	if (lock->member_count == 0)
		release_lock(lock);
	vdo_fail_data_vio(agent, result);
}

static void data_written_in_lock(struct dd_completion *completion)
{
	struct data_vio *agent = completion->parent;
	struct hash_lock *lock = agent->hash_lock;
	int result = completion->result;

	if (result != DD_SUCCESS) {
		dd_reset_completion(completion);
		agent_failed(lock, agent, result);
		return;
	}
	lock->duplicate_lock = agent->found_lock;
	agent->found_lock = NULL;
	lock->duplicate =
	    (struct vdo_mapping){ .pbn = agent->allocation, .state = VDO_MAPPING_UNCOMPRESSED };
	agent->new_mapping = lock->duplicate;
	if (lock->update_advice || (lock->posted != agent->allocation))
		update_index(lock);
	enter_deduping(lock);
}

/* ---------------------------------------------------------------------------------------------
 * Sharing
 */

static void share(struct hash_lock *lock, struct data_vio *data_vio);

/* @data_vio could not claim a reference: a new lock takes over the name, with it as agent. */
static void fork_lock(struct hash_lock *lock, struct data_vio *data_vio)
{
	struct hash_zone *zone = lock->zone;
	struct hash_lock *fork;

	bump(&zone->counters.forks);
	unregister_lock(lock);
	leave(lock, data_vio);
	fork = new_lock(zone, &lock->name);
	if (lock->member_count == 0)
		release_lock(lock);
	if (fork == NULL) {
		vdo_write_data_plainly(data_vio);
		return;
	}
	join(fork, data_vio);
	fork->agent = data_vio;
	/* Only the new copy updates the index. */
	fork->update_advice = true;
	start_writing(fork);
}

static void share(struct hash_lock *lock, struct data_vio *data_vio)
{
	struct hash_lock *current;

	if (!lock->registered) {
		/* The lock forked: wait for the new copy instead. */
		current = find_lock(lock->zone, &lock->name);
		leave(lock, data_vio);
		if (lock->member_count == 0)
			release_lock(lock);
		if (current == NULL) {
			vdo_write_data_plainly(data_vio);
			return;
		}
		join(current, data_vio);
		if (current->state == DEDUPING)
			share(current, data_vio);
		else
			add_waiter(current, data_vio);
		return;
	}
	if (!vdo_claim_pbn_increment(lock->duplicate_lock)) {
		fork_lock(lock, data_vio);
		return;
	}
	bump(&lock->zone->counters.shared);
	data_vio->new_mapping = lock->duplicate;
	data_vio->is_duplicate = true;
	vdo_continue_write_with_mapping(data_vio);
}

static void enter_deduping(struct hash_lock *lock)
{
	struct data_vio *agent = lock->agent;
	struct data_vio *waiter = take_waiters(lock);

	lock->state = DEDUPING;
	lock->agent = NULL;
	while (waiter != NULL) {
		struct data_vio *next = waiter->hash_next;

		share(lock, waiter);
		waiter = next;
	}
	vdo_continue_write_with_mapping(agent);
}

/* ---------------------------------------------------------------------------------------------
 * Arriving and leaving
 */

void vdo_acquire_hash_lock(struct dd_completion *completion)
{
	struct data_vio *data_vio = completion->parent;
	struct hash_zone *zone = zone_of(data_vio);
	struct hash_lock *lock = find_lock(zone, &data_vio->record_name);

	assert_on_zone(zone, __func__);
	if (lock == NULL) {
		lock = new_lock(zone, &data_vio->record_name);
		if (lock == NULL) {
			vdo_write_data_plainly(data_vio);
			return;
		}
		join(lock, data_vio);
		lock->agent = data_vio;
		start_querying(lock);
		return;
	}
	if ((lock->state == BYPASSING) || (lock->members == NULL)) {
		vdo_write_data_plainly(data_vio);
		return;
	}
	if (memcmp(lock->members->data, data_vio->data, VDO_BLOCK_SIZE) != 0) {
		/* Same name, other data: never shared. */
		bump(&zone->counters.hash_collisions);
		vdo_write_data_plainly(data_vio);
		return;
	}
	bump(&zone->counters.data_matches);
	join(lock, data_vio);
	if (lock->state == DEDUPING)
		share(lock, data_vio);
	else
		add_waiter(lock, data_vio);
}

static void lock_returned(struct dd_completion *completion)
{
	struct hash_lock *lock = completion->parent;

	lock->duplicate_lock = NULL;
	return_lock(lock);
}

/* The shared block's zone thread: give the lock's read lock back. */
static void unlock_shared_block(struct dd_completion *completion)
{
	struct hash_lock *lock = completion->parent;

	vdo_unlock_pbn(config_of(lock->zone)->depot, lock->duplicate_lock);
	dd_launch_completion_callback(completion, lock_returned, lock->zone->thread);
}

/* Nobody holds @lock any more: it leaves the map and gives its read lock back. */
static void release_lock(struct hash_lock *lock)
{
	unregister_lock(lock);
	lock->state = RELEASING;
	if (lock->duplicate_lock == NULL) {
		return_lock(lock);
		return;
	}
	dd_prepare_completion(&lock->completion, unlock_shared_block, NULL,
	                      block_thread(lock->zone, lock->duplicate_lock->pbn), lock);
	dd_launch_completion(&lock->completion);
}

void vdo_release_hash_lock(struct data_vio *data_vio, dd_action_fn next, dd_thread_id_t thread)
{
	struct hash_lock *lock = data_vio->hash_lock;

	assert_on_zone(zone_of(data_vio), __func__);
	if (lock != NULL) {
		if (lock->agent == data_vio) {
			/* The agent fails in the middle of the lock's work: the others go on
			 * without it. */
			lock->agent = NULL;
			leave(lock, data_vio);
			bypass(lock);
		} else {
			leave(lock, data_vio);
		}
		if (lock->member_count == 0)
			release_lock(lock);
	}
	vdo_launch_on(data_vio, next, thread);
}

/* ---------------------------------------------------------------------------------------------
 * Draining and stats
 */

void vdo_drain_hash_zone(struct vdo_hash_zones *zones, unsigned int zone_number,
                         struct dd_completion *completion)
{
	struct hash_zone *zone = &zones->zones[zone_number];

	assert_on_zone(zone, __func__);
	zone->draining = true;
	zone->drain_waiter = completion;
	if (zone->timer_armed && dd_cancel_timer(config_of(zone)->timer, &zone->timer_entry))
		zone->timer_armed = false;
	check_drained(zone);
}

static uint64_t sum(const struct vdo_hash_zones *zones, size_t offset)
{
	uint64_t total = 0;

	for (unsigned int z = 0; z < zones->count; z++) {
		const atomic_uint_least64_t *counter =
		    (const atomic_uint_least64_t *) ((const char *) &zones->zones[z].counters +
		                                     offset);

		total += atomic_load_explicit(counter, memory_order_relaxed);
	}
	return total;
}

#define SUM(field) sum(zones, offsetof(struct zone_counters, field))

void vdo_get_dedupe_stats(const struct vdo_hash_zones *zones, struct vdo_dedupe_stats *stats)
{
	*stats = (struct vdo_dedupe_stats){
		.dedupe_advice_valid = SUM(advice_valid),
		.dedupe_advice_stale = SUM(advice_stale),
		.dedupe_advice_timeouts = SUM(advice_timeouts),
		.concurrent_data_matches = SUM(data_matches),
		.concurrent_hash_collisions = SUM(hash_collisions),
		.curr_dedupe_queries = SUM(queries_out),
		.invalid_advice_pbn_count = SUM(invalid_advice),
		.dedupe_context_busy = SUM(context_busy),
		.dedupe_shared = SUM(shared),
		.dedupe_forks = SUM(forks),
	};
}
