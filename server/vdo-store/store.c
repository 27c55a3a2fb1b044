// SPDX-License-Identifier: GPL-2.0-only
/*
 * Opening, running and closing a volume; see vdo-store.h and vdo.h.
 *
 * Open loads the super block, replays the journal of a volume left dirty (recovery.h), makes
 * the zones and their components, recovers the slabs each zone needs to allocate from and
 * leaves the rest to background recovery (background-recovery.h), and marks the volume dirty on
 * disk before the first write can reach the journal. Close waits for every request and for
 * background recovery, drains the block map and the slab depot (which gives every recovery
 * journal lock back), drains the journal to an empty state, marks every slab clean in the
 * summary, and writes the super block clean with the journal's new start.
 */
#include <stdio.h>
#include <string.h>

#include "data-vio.h"
#include "logger.h"
#include "memory-alloc.h"
#include "recovery.h"

enum {
	DEFAULT_CACHE_PAGES = 32768,
};

/* Work done on one zone's thread for the caller. */
struct zone_action {
	struct vdo_store *store;
	unsigned int zone;
	struct vdo_journal_stats journal;
	struct vdo_map_cache_stats map;
	struct vdo_slab_stats slabs;
};

/* --------------------------------------------------------------------------------------------
 * Read-only mode
 */

static void save_read_only(struct dd_completion *completion)
{
	struct vdo_store *store = completion->parent;

	store->super.state = VDO_STATE_READ_ONLY;
	if (vdo_save_super_block(store->device, &store->super) != DD_SUCCESS)
		dd_log_error("cannot record read-only mode in the super block");
}

void vdo_enter_read_only(struct vdo_store *store, int result)
{
	if (atomic_exchange(&store->read_only, true))
		return;
	dd_log_error_strerror(result, "the volume is read-only from now on");
	dd_prepare_completion(&store->read_only_completion, save_read_only, NULL,
	                      store->thread_ids.admin, store);
	dd_launch_completion(&store->read_only_completion);
}

void vdo_component_failed(void *store, int result)
{
	vdo_enter_read_only(store, result);
}

/* --------------------------------------------------------------------------------------------
 * Asking zones for journal locks
 */

static void release_in_zone(struct dd_completion *completion)
{
	struct lock_release *release = completion->parent;
	struct vdo_store *store = release->store;
	vdo_sequence_t through;

	atomic_store(&release->queued, false);
	through = atomic_load(&release->through);
	if (release->logical)
		vdo_write_map_zone(store->map, release->zone, through);
	else
		vdo_commit_depot_zone(store->depot, release->zone, through);
}

static void ask_zone(struct lock_release *release, vdo_sequence_t through, dd_thread_id_t thread)
{
	vdo_sequence_t asked = atomic_load(&release->through);

	while ((through > asked) &&
	       !atomic_compare_exchange_weak(&release->through, &asked, through))
		;
	if (atomic_exchange(&release->queued, true))
		return;
	dd_prepare_completion(&release->completion, release_in_zone, NULL, thread, release);
	dd_launch_completion(&release->completion);
}

/* Journal thread: the journal is filling up; ask every zone for its locks up to @through. */
static void release_locks(void *context, vdo_sequence_t through)
{
	struct vdo_store *store = context;
	unsigned int logical = store->thread_ids.logical_count;

	for (unsigned int z = 0; z < logical; z++)
		ask_zone(&store->releases[z], through, store->thread_ids.logical[z]);
	for (unsigned int z = 0; z < store->thread_ids.physical_count; z++)
		ask_zone(&store->releases[logical + z], through, store->thread_ids.physical[z]);
}

static void notify_journal(void *context)
{
	struct vdo_store *store = context;

	vdo_journal_notify(store->journal);
}

static void hurry_slab(void *context, struct vdo_slab *slab)
{
	struct vdo_store *store = context;

	vdo_hurry_slab_recovery(store->background, slab);
}

static void background_done(void *context)
{
	struct vdo_store *store = context;

	pthread_mutex_lock(&store->background_mutex);
	store->background_running = false;
	pthread_cond_broadcast(&store->background_done);
	pthread_mutex_unlock(&store->background_mutex);
}

static void wait_for_background(struct vdo_store *store)
{
	if (store->background != NULL)
		vdo_rush_background_recovery(store->background);
	pthread_mutex_lock(&store->background_mutex);
	while (store->background_running)
		pthread_cond_wait(&store->background_done, &store->background_mutex);
	pthread_mutex_unlock(&store->background_mutex);
}

static bool is_data_block(void *context, vdo_pbn_t pbn)
{
	struct vdo_store *store = context;
	uint32_t offset;

	return vdo_depot_slab_of(store->depot, pbn, &offset) != NULL;
}

/* --------------------------------------------------------------------------------------------
 * Threads
 */

static int make_threads(struct vdo_store *store)
{
	struct vdo_threads *ids = &store->thread_ids;
	unsigned int count = 0;
	char names[5 + 4 * VDO_MAX_ZONES][32];
	const char *pointers[5 + 4 * VDO_MAX_ZONES];
	struct dd_thread_set_config config;

	ids->logical_count = store->config.logical_zones;
	ids->physical_count = store->config.physical_zones;
	ids->journal = count;
	snprintf(names[count++], sizeof(names[0]), "vdojournal");
	for (unsigned int z = 0; z < ids->logical_count; z++) {
		ids->logical[z] = count;
		snprintf(names[count++], sizeof(names[0]), "vdolog%u", z);
	}
	for (unsigned int z = 0; z < ids->physical_count; z++) {
		ids->physical[z] = count;
		snprintf(names[count++], sizeof(names[0]), "vdophys%u", z);
	}
	ids->summary = count;
	snprintf(names[count++], sizeof(names[0]), "vdosummary");
	ids->ack = count;
	snprintf(names[count++], sizeof(names[0]), "vdoack");
	ids->admin = count;
	snprintf(names[count++], sizeof(names[0]), "vdoadmin");
	ids->recovery = count;
	snprintf(names[count++], sizeof(names[0]), "vdorecover");
	if (store->config.index != NULL) {
		ids->hash_count = store->config.hash_zones;
		ids->cpu_count = store->config.cpu_threads;
	}
	for (unsigned int z = 0; z < ids->hash_count; z++) {
		ids->hash[z] = count;
		snprintf(names[count++], sizeof(names[0]), "vdohash%u", z);
	}
	for (unsigned int c = 0; c < ids->cpu_count; c++) {
		ids->cpu[c] = count;
		snprintf(names[count++], sizeof(names[0]), "vdocpu%u", c);
	}
	for (unsigned int t = 0; t < count; t++)
		pointers[t] = names[t];
	config = dd_default_thread_set_config("vdo", count);
	config.thread_names = pointers;
	return dd_make_thread_set(&config, &store->threads);
}

/* --------------------------------------------------------------------------------------------
 * Components
 */

static int make_logical_zones(struct vdo_store *store)
{
	for (unsigned int z = 0; z < store->thread_ids.logical_count; z++) {
		struct logical_zone *zone = &store->logical[z];
		int result;

		zone->index = z;
		zone->thread = store->thread_ids.logical[z];
		result = vdo_make_lock_table(VDO_DATA_VIO_COUNT, &zone->lbn_locks);
		if (result == DD_SUCCESS)
			result = vdo_make_lock_table(VDO_DATA_VIO_COUNT / 4, &zone->slot_locks);
		if (result != DD_SUCCESS)
			return result;
	}
	return DD_SUCCESS;
}

static int make_depot(struct vdo_store *store)
{
	unsigned int lock_zones[VDO_MAX_ZONES];
	struct vdo_depot_config config = {
		.device = store->device,
		.layout = &store->super.layout,
		.nonce = store->super.nonce,
		.threads = store->threads,
		.summary_thread = store->thread_ids.summary,
		.zone_count = store->thread_ids.physical_count,
		.zone_threads = store->thread_ids.physical,
		.lock_zones = lock_zones,
		.locks = store->locks,
		.fail = vdo_component_failed,
		.fail_context = store,
		.hurry = hurry_slab,
		.hurry_context = store,
		/* A read-only volume writes nothing: its counts are not needed (nor trusted). */
		.reset = (store->super.state == VDO_STATE_READ_ONLY),
		.touched = (store->recovery != NULL) ? vdo_recovery_touched(store->recovery) : NULL,
	};

	for (unsigned int z = 0; z < config.zone_count; z++)
		lock_zones[z] = store->thread_ids.logical_count + z;
	return vdo_load_slab_depot(&config, &store->depot);
}

static int make_block_map(struct vdo_store *store)
{
	unsigned int lock_zones[VDO_MAX_ZONES];
	uint32_t pages = store->config.block_map_cache_pages;
	struct vdo_block_map_config config = {
		.device = store->device,
		.nonce = store->super.nonce,
		.root_origin = store->super.layout.root_origin,
		.logical_blocks = store->super.layout.logical_blocks,
		.threads = store->threads,
		.zone_count = store->thread_ids.logical_count,
		.zone_threads = store->thread_ids.logical,
		.lock_zones = lock_zones,
		.locks = store->locks,
		.is_data_block = is_data_block,
		.fail = vdo_component_failed,
		.context = store,
	};

	config.leaf_pages_per_zone =
	    (pages + store->thread_ids.logical_count - 1) / store->thread_ids.logical_count;
	for (unsigned int z = 0; z < config.zone_count; z++)
		lock_zones[z] = z;
	return vdo_make_block_map(&config, &store->map);
}

/*
 * Whether the replayed journal's blocks stay locked while the slabs are recovered in the
 * background: only if there were some, and the journal keeps room for new blocks after them.
 */
static bool keeps_journal_window(const struct vdo_store *store)
{
	const struct vdo_journal_contents *contents;

	if (store->recovery == NULL)
		return false;
	contents = vdo_recovery_contents(store->recovery);
	return (contents->end > contents->head) &&
	       (contents->next_tail - contents->head < store->super.layout.journal_blocks);
}

/* After a replay, the journal goes on after every block it found. */
static void take_replayed_journal(struct vdo_store *store)
{
	vdo_take_journal_contents(store->recovery, keeps_journal_window(store), &store->super);
	store->recovery_entries = vdo_recovery_contents(store->recovery)->entries;
}

static int make_journal(struct vdo_store *store)
{
	struct vdo_journal_config config = {
		.device = store->device,
		.nonce = store->super.nonce,
		.origin = store->super.layout.journal_origin,
		.size = store->super.layout.journal_blocks,
		.threads = store->threads,
		.thread = store->thread_ids.journal,
		.locks = store->locks,
		.head = store->super.journal_start,
		.tail = store->super.journal_tail,
		.logical_blocks_used = store->super.logical_blocks_used,
		.block_map_data_blocks = store->super.block_map_data_blocks,
		.release_locks = release_locks,
		.fail = vdo_component_failed,
		.context = store,
	};

	return vdo_make_recovery_journal(&config, &store->journal);
}

/*
 * The index to use: the caller's, or the embedded one the volume's super block names (in the
 * volume's own region; created there on first use). A read-only volume writes nothing and
 * needs none. Sets store->config.index.
 */
static void choose_index(struct vdo_store *store)
{
	const struct vdo_index_record *record = &store->super.index;
	const struct vdo_layout *layout = &store->super.layout;

	if ((store->super.state == VDO_STATE_READ_ONLY) || store->config.no_dedupe) {
		store->config.index = NULL;
		return;
	}
	if (store->config.index != NULL) {
		store->index_config = *store->config.index;
		/* The identity recorded is the one to expect. */
		if ((store->index_config.kind == VDO_INDEX_REMOTE) &&
		    (record->kind == VDO_INDEX_RECORD_REMOTE) && (record->nonce != 0))
			store->index_config.index_nonce = record->nonce;
		store->config.index = &store->index_config;
		return;
	}
	if (record->kind != VDO_INDEX_RECORD_EMBEDDED)
		return;
	if (store->device->path == NULL) {
		dd_log_warning("%s: its embedded index needs a file; no dedupe",
		               store->device->name);
		return;
	}
	store->index_config = (struct vdo_index_config){
		.kind = VDO_INDEX_EMBEDDED,
		.path = store->device->path,
		.region_start = layout->index_origin,
		.region_blocks = layout->index_blocks,
		.memory_mb = record->memory_mb,
		.sparse = record->sparse,
		.create = (record->nonce == 0),
	};
	store->config.index = &store->index_config;
}

/* At a clean close: the volume's own index record learns the identity of the index met. */
static void record_index_identity(struct vdo_store *store)
{
	struct vdo_index_record *record = &store->super.index;
	enum vdo_index_record_kind kind = (store->index_config.kind == VDO_INDEX_REMOTE)
	                                      ? VDO_INDEX_RECORD_REMOTE
	                                      : VDO_INDEX_RECORD_EMBEDDED;

	if ((store->index_identity == 0) || (record->kind != kind))
		return;
	record->nonce = store->index_identity;
	if ((kind == VDO_INDEX_RECORD_REMOTE) && (store->index_config.index_name != NULL))
		snprintf(record->name, sizeof(record->name), "%s", store->index_config.index_name);
}

/* The index (opening on its own thread), the timer of late queries, and the hash zones. */
static int make_dedupe(struct vdo_store *store)
{
	struct vdo_dedupe_config config = {
		.threads = store->threads,
		.zone_count = store->thread_ids.hash_count,
		.zone_threads = store->thread_ids.hash,
		.depot = store->depot,
		.nonce = store->super.nonce,
		.timeout_ms = store->config.dedupe_timeout_ms,
		.min_timer_interval_ms = store->config.dedupe_timer_interval_ms,
		.name_block = store->config.name_block,
	};
	int result = vdo_open_dedupe_index(store->config.index, &store->index);

	if (result == DD_SUCCESS)
		result = dd_make_timer("vdotimer", &store->timer);
	if (result != DD_SUCCESS)
		return result;
	config.index = store->index;
	config.timer = store->timer;
	return vdo_make_hash_zones(&config, &store->hash_zones);
}

static int make_components(struct vdo_store *store)
{
	unsigned int zones = store->thread_ids.logical_count + store->thread_ids.physical_count;
	int result = vdo_make_lock_counter(store->super.layout.journal_blocks, zones,
	                                   notify_journal, store, &store->locks);

	if (store->recovery != NULL)
		take_replayed_journal(store);

	for (unsigned int z = 0; z < zones; z++) {
		struct lock_release *release = &store->releases[z];

		release->store = store;
		release->logical = (z < store->thread_ids.logical_count);
		release->zone = release->logical ? z : z - store->thread_ids.logical_count;
		dd_initialize_completion(&release->completion, store->threads);
	}
	dd_initialize_completion(&store->read_only_completion, store->threads);
	if (result == DD_SUCCESS)
		result = make_logical_zones(store);
	if (result == DD_SUCCESS)
		result = make_depot(store);
	if (result == DD_SUCCESS)
		result = make_block_map(store);
	if (result == DD_SUCCESS)
		result = make_journal(store);
	if (result == DD_SUCCESS)
		result = vdo_make_flusher(&store->flusher);
	if (result == DD_SUCCESS)
		result = vdo_make_data_vio_pool(store);
	if ((result == DD_SUCCESS) && (store->config.index != NULL))
		result = make_dedupe(store);
	return result;
}

/*
 * Wait until the zones have nothing queued or running and no I/O of ours is out: every I/O
 * counts as the zones' work until its completion has been launched (vio.h).
 */
static void settle(struct vdo_store *store)
{
	if ((store->threads != NULL) &&
	    (dd_thread_set_wait_until_idle(store->threads) != DD_SUCCESS))
		dd_log_error("the store's threads did not settle");
}

static void drain_hash(struct dd_completion *completion);

/*
 * Close the index (every answer comes back to its zone first), then stop the hash zones'
 * timers and wait for their queries. Idempotent.
 */
static void close_dedupe(struct vdo_store *store)
{
	int result;

	if (store->index == NULL)
		return;
	store->index_identity = vdo_dedupe_index_identity(store->index);
	result = vdo_close_dedupe_index(store->index);
	if (result != DD_SUCCESS)
		dd_log_error_strerror(result, "the dedupe index did not save cleanly");
	store->index = NULL;
	for (unsigned int z = 0; (store->hash_zones != NULL) && (z < store->thread_ids.hash_count);
	     z++) {
		struct zone_action action = { .store = store, .zone = z };

		if (dd_perform_synchronous_action(store->threads, store->thread_ids.hash[z],
		                                  drain_hash, &action) != DD_SUCCESS)
			dd_log_error("hash zone %u did not drain", z);
	}
}

static void free_store(struct vdo_store *store)
{
	wait_for_background(store);
	close_dedupe(store);
	settle(store);
	vdo_free_hash_zones(store->hash_zones);
	dd_free_timer(store->timer);
	vdo_free_background_recovery(store->background);
	vdo_free_recovery(store->recovery);
	vdo_free_data_vio_pool(store);
	if (store->flusher.counts != NULL)
		vdo_free_flusher(&store->flusher);
	vdo_free_recovery_journal(store->journal);
	vdo_free_block_map(store->map);
	vdo_free_slab_depot(store->depot);
	for (unsigned int z = 0; z < VDO_MAX_ZONES; z++) {
		vdo_free_lock_table(&store->logical[z].lbn_locks);
		vdo_free_lock_table(&store->logical[z].slot_locks);
	}
	dd_free_thread_set(store->threads);
	vdo_free_lock_counter(store->locks);
	pthread_cond_destroy(&store->background_done);
	pthread_mutex_destroy(&store->background_mutex);
	dd_free(store);
}

static int check_config(struct vdo_store_config *config)
{
	config->logical_zones = config->logical_zones ?: 1;
	config->physical_zones = config->physical_zones ?: 1;
	config->block_map_cache_pages = config->block_map_cache_pages ?: DEFAULT_CACHE_PAGES;
	config->hash_zones = config->hash_zones ?: 1;
	config->cpu_threads = config->cpu_threads ?: 1;
	if ((config->logical_zones > VDO_MAX_ZONES) || (config->physical_zones > VDO_MAX_ZONES) ||
	    (config->hash_zones > VDO_MAX_HASH_ZONES) || (config->cpu_threads > VDO_MAX_ZONES))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "at most %u zones of each kind",
		                             VDO_MAX_ZONES);
	if (config->block_map_cache_pages < 16 * config->logical_zones)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "a block map cache of %u pages is too small",
		                             config->block_map_cache_pages);
	return DD_SUCCESS;
}

static int load_volume(struct vdo_store *store)
{
	int result = vdo_load_super_block(store->device, &store->super);

	if (result == DD_BAD_MAGIC)
		return dd_log_error_strerror(result, "%s holds no volume", store->device->name);
	if (result != DD_SUCCESS)
		return result;
	if (store->super.layout.physical_blocks > vdo_device_blocks(store->device))
		return dd_log_error_strerror(
		    DD_CORRUPT_DATA, "the volume needs %llu blocks but %s has %llu",
		    (unsigned long long) store->super.layout.physical_blocks, store->device->name,
		    (unsigned long long) vdo_device_blocks(store->device));
	if (store->super.state == VDO_STATE_REBUILDING)
		return dd_log_error_strerror(
		    DD_BAD_STATE, "a read-only rebuild of %s did not finish; run it again",
		    store->device->name);
	if (store->super.state != VDO_STATE_DIRTY)
		return DD_SUCCESS;
	dd_log_info("%s was not closed cleanly: recovering", store->device->name);
	return vdo_replay_recovery_journal(store->device, &store->super, true, &store->recovery);
}

/*
 * Recover the slabs the zones need before the volume opens, and leave the rest to background
 * recovery; or recover them all now if the journal cannot keep its replayed blocks meanwhile.
 */
static int recover_slabs(struct vdo_store *store)
{
	const struct vdo_journal_contents *contents = vdo_recovery_contents(store->recovery);
	struct vdo_background_config config = {
		.threads = store->threads,
		.thread = store->thread_ids.recovery,
		.depot = store->depot,
		.locks = store->locks,
		.first_locked = contents->head,
		.end_locked = contents->next_tail,
		.pause_ns = (dd_ktime_t) store->config.recovery_pause_ms * 1000000,
		.read_only = &store->read_only,
		.done = background_done,
		.context = store,
	};
	int result;

	store->super.recovery_count++;
	if (!keeps_journal_window(store)) {
		result = vdo_recover_all_slabs(store->recovery, store->depot);
		if (result == DD_SUCCESS)
			result = vdo_save_slab_summary(vdo_depot_summary(store->depot));
		store->slabs_recovered_before_online = store->super.layout.slab_count;
		return result;
	}
	result = vdo_recover_first_slabs(store->recovery, store->depot,
	                                 &store->slabs_recovered_before_online);
	if (result != DD_SUCCESS)
		return result;
	store->background_running = true;
	result = vdo_start_background_recovery(&config, store->recovery, &store->background);
	if (result != DD_SUCCESS) {
		store->background_running = false;
		return result;
	}
	/* Background recovery has it now. */
	store->recovery = NULL;
	return DD_SUCCESS;
}

static int open_store(struct block_device *device, const struct vdo_store_config *config,
                      struct vdo_store **store_ptr)
{
	struct vdo_store *store;
	int result = dd_allocate(sizeof(*store), "store", &store);

	if (result != DD_SUCCESS)
		return result;
	store->device = device;
	pthread_mutex_init(&store->background_mutex, NULL);
	pthread_cond_init(&store->background_done, NULL);
	if (config != NULL)
		store->config = *config;
	result = check_config(&store->config);
	if (result == DD_SUCCESS)
		result = load_volume(store);
	if (result == DD_SUCCESS) {
		choose_index(store);
		result = make_threads(store);
	}
	if (result == DD_SUCCESS)
		result = make_components(store);
	if ((result == DD_SUCCESS) && (store->recovery != NULL))
		result = recover_slabs(store);
	if ((result == DD_SUCCESS) && (store->super.state == VDO_STATE_READ_ONLY)) {
		atomic_store(&store->read_only, true);
		dd_log_warning("%s is read-only: only a read-only rebuild makes it writable",
		               device->name);
	} else if (result == DD_SUCCESS) {
		/* From now on a crash needs a recovery. */
		store->super.state = VDO_STATE_DIRTY;
		result = vdo_save_super_block(device, &store->super);
	}
	if ((result == DD_CORRUPT_DATA) && (store->super.nonce != 0)) {
		/* Damaged metadata: the volume is read-only from now on (recovery may have
		 * recorded that already). */
		if (store->super.state != VDO_STATE_READ_ONLY) {
			store->super.state = VDO_STATE_READ_ONLY;
			if (vdo_save_super_block(device, &store->super) != DD_SUCCESS)
				dd_log_error("cannot record read-only mode in the super block");
		}
		dd_log_error("%s has damaged metadata and is read-only until a read-only rebuild",
		             device->name);
		result = DD_READ_ONLY;
	}
	if (result != DD_SUCCESS) {
		free_store(store);
		return result;
	}
	*store_ptr = store;
	return DD_SUCCESS;
}

int vdo_store_open(struct block_device *device, const struct vdo_store_config *config,
                   struct vdo_store **store_ptr)
{
	int result = open_store(device, config, store_ptr);

	/* It went read-only while opening: open it so, for reading. */
	if (result == DD_READ_ONLY)
		result = open_store(device, config, store_ptr);
	return result;
}

/* --------------------------------------------------------------------------------------------
 * Closing
 */

static void drain_physical(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_drain_depot_zone(action->store->depot, action->zone, completion);
}

static void drain_logical(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_drain_map_zone(action->store->map, action->zone, completion);
}

static void drain_hash(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_drain_hash_zone(action->store->hash_zones, action->zone, completion);
}

static void drain_journal(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_drain_recovery_journal(action->store->journal, completion);
}

static void journal_stats(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_get_journal_stats(action->store->journal, &action->journal);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void map_stats(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_get_map_zone_stats(action->store->map, action->zone, &action->map);
	dd_finish_completion(completion, DD_SUCCESS);
}

static void free_block_stats(struct dd_completion *completion)
{
	struct zone_action *action = completion->parent;

	vdo_get_zone_slab_stats(action->store->depot, action->zone, &action->slabs);
	dd_finish_completion(completion, DD_SUCCESS);
}

/* Write everything out and leave an empty journal. */
static int drain_all(struct vdo_store *store)
{
	struct vdo_threads *ids = &store->thread_ids;
	int result = DD_SUCCESS;

	for (unsigned int z = 0; z < ids->logical_count; z++) {
		struct zone_action action = { .store = store, .zone = z };
		int drained = dd_perform_synchronous_action(store->threads, ids->logical[z],
		                                            drain_logical, &action);

		result = (result != DD_SUCCESS) ? result : drained;
	}
	for (unsigned int z = 0; z < ids->physical_count; z++) {
		struct zone_action action = { .store = store, .zone = z };
		int drained = dd_perform_synchronous_action(store->threads, ids->physical[z],
		                                            drain_physical, &action);

		result = (result != DD_SUCCESS) ? result : drained;
	}
	if (result == DD_SUCCESS) {
		struct zone_action action = { .store = store };

		result = dd_perform_synchronous_action(store->threads, ids->journal, drain_journal,
		                                       &action);
	}
	return result;
}

static int save_clean(struct vdo_store *store)
{
	struct zone_action action = { .store = store };
	int result = dd_perform_synchronous_action(store->threads, store->thread_ids.journal,
	                                           journal_stats, &action);

	if (result == DD_SUCCESS)
		result = vdo_save_depot_summary(store->depot);
	if (result != DD_SUCCESS)
		return result;
	record_index_identity(store);
	store->super.state = VDO_STATE_CLEAN;
	store->super.journal_start = action.journal.tail;
	store->super.journal_tail = action.journal.tail;
	store->super.logical_blocks_used = action.journal.logical_blocks_used;
	store->super.block_map_data_blocks = action.journal.block_map_data_blocks;
	return vdo_save_super_block(store->device, &store->super);
}

int vdo_store_close(struct vdo_store *store)
{
	int result;

	vdo_wait_for_idle_pool(store);
	/* No query may be out, nor the index running, once the zones drain. */
	close_dedupe(store);
	/* Every slab must be back before the depot can drain. */
	wait_for_background(store);
	result = dd_thread_set_wait_until_idle(store->threads);
	if ((result == DD_SUCCESS) && !atomic_load(&store->read_only))
		result = drain_all(store);
	if ((result == DD_SUCCESS) && !atomic_load(&store->read_only)) {
		result = dd_thread_set_wait_until_idle(store->threads);
		if (result == DD_SUCCESS)
			result = save_clean(store);
	}
	if (atomic_load(&store->read_only) && (result == DD_SUCCESS))
		result = DD_READ_ONLY;
	free_store(store);
	return result;
}

/* --------------------------------------------------------------------------------------------
 * Requests, stats, growth
 */

void vdo_store_submit(struct vdo_store *store, struct vdo_request *request)
{
	vdo_launch_request(store, request);
}

void vdo_store_wait_for_idle(struct vdo_store *store)
{
	vdo_wait_for_idle_pool(store);
	settle(store);
}

uint64_t vdo_store_logical_bytes(const struct vdo_store *store)
{
	return vdo_map_logical_blocks(store->map) * VDO_BLOCK_SIZE;
}

bool vdo_store_is_read_only(const struct vdo_store *store)
{
	return atomic_load(&store->read_only);
}

int vdo_store_grow_logical(struct vdo_store *store, uint64_t logical_blocks)
{
	struct vdo_layout layout = store->super.layout;
	int result;

	if (atomic_load(&store->read_only))
		return DD_READ_ONLY;
	if (logical_blocks <= layout.logical_blocks)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "the volume has %llu logical blocks already",
		                             (unsigned long long) layout.logical_blocks);
	layout.logical_blocks = logical_blocks;
	result = vdo_check_layout(&layout);
	if (result != DD_SUCCESS)
		return result;
	store->super.layout = layout;
	result = vdo_save_super_block(store->device, &store->super);
	if (result == DD_SUCCESS)
		vdo_set_logical_blocks(store->map, logical_blocks);
	return result;
}

int vdo_store_grow_physical(struct vdo_store *store)
{
	struct vdo_layout grown;
	int result;

	if (atomic_load(&store->read_only))
		return DD_READ_ONLY;
	result = vdo_refresh_device_size(store->device);
	if (result == DD_SUCCESS)
		result =
		    vdo_grow_layout(&store->super.layout, vdo_device_blocks(store->device), &grown);
	if (result == DD_SUCCESS)
		result = dd_thread_set_wait_until_idle(store->threads);
	if (result == DD_SUCCESS)
		result = vdo_grow_slab_depot(store->depot, &grown);
	if (result != DD_SUCCESS)
		return result;
	store->super.layout = grown;
	return vdo_save_super_block(store->device, &store->super);
}

static void get_dedupe_stats(struct vdo_store *store, struct vdo_store_stats *stats)
{
	struct vdo_dedupe_stats dedupe;
	struct vdo_dedupe_index_stats index;

	stats->index_state = vdo_index_state_name(VDO_INDEX_OFFLINE);
	if (store->hash_zones == NULL)
		return;
	vdo_get_dedupe_stats(store->hash_zones, &dedupe);
	stats->dedupe_enabled = true;
	stats->dedupe_advice_valid = dedupe.dedupe_advice_valid;
	stats->dedupe_advice_stale = dedupe.dedupe_advice_stale;
	stats->dedupe_advice_timeouts = dedupe.dedupe_advice_timeouts;
	stats->concurrent_data_matches = dedupe.concurrent_data_matches;
	stats->concurrent_hash_collisions = dedupe.concurrent_hash_collisions;
	stats->curr_dedupe_queries = dedupe.curr_dedupe_queries;
	stats->invalid_advice_pbn_count = dedupe.invalid_advice_pbn_count;
	stats->dedupe_context_busy = dedupe.dedupe_context_busy;
	stats->dedupe_shared = dedupe.dedupe_shared;
	stats->dedupe_forks = dedupe.dedupe_forks;
	if (store->index == NULL)
		return;
	vdo_get_dedupe_index_stats(store->index, &index);
	stats->index_state = vdo_index_state_name(index.state);
	stats->posts_found = index.posts_found;
	stats->posts_not_found = index.posts_not_found;
	stats->queries_found = index.queries_found;
	stats->queries_not_found = index.queries_not_found;
	stats->updates_found = index.updates_found;
	stats->updates_not_found = index.updates_not_found;
	stats->entries_indexed = index.entries_indexed;
	stats->index_memory_bytes = index.memory_bytes;
}

/* Run @action on @thread for the stats; a failure leaves zeros. */
static void gather(struct vdo_store *store, dd_thread_id_t thread, dd_action_fn action,
                   struct zone_action *parent)
{
	if (dd_perform_synchronous_action(store->threads, thread, action, parent) != DD_SUCCESS)
		dd_log_warning("cannot gather statistics from thread %u", thread);
}

void vdo_store_get_stats(struct vdo_store *store, struct vdo_store_stats *stats)
{
	struct vdo_threads *ids = &store->thread_ids;
	const struct vdo_layout *layout = &store->super.layout;
	struct zone_action action = { .store = store };
	struct block_device_stats device;

	memset(stats, 0, sizeof(*stats));
	gather(store, ids->journal, journal_stats, &action);
	for (unsigned int z = 0; z < ids->logical_count; z++) {
		action.zone = z;
		gather(store, ids->logical[z], map_stats, &action);
		stats->block_map_hits += action.map.hits;
		stats->block_map_misses += action.map.misses;
		stats->block_map_reads += action.map.reads;
		stats->block_map_writes += action.map.writes;
		stats->block_map_dirty_pages += action.map.dirty_pages;
	}
	for (unsigned int z = 0; z < ids->physical_count; z++) {
		action.zone = z;
		gather(store, ids->physical[z], free_block_stats, &action);
		stats->free_blocks += action.slabs.free_blocks;
		stats->slab_journal_blocks_written += action.slabs.journal_blocks_written;
		stats->ref_blocks_written += action.slabs.ref_blocks_written;
		stats->dirty_slabs += action.slabs.dirty_slabs;
	}
	vdo_get_device_stats(store->device, &device);
	stats->physical_blocks = layout->physical_blocks;
	stats->logical_blocks = vdo_map_logical_blocks(store->map);
	/* Block map pages live in data blocks but count as overhead, as in vdostats. */
	stats->block_map_data_blocks = action.journal.block_map_data_blocks;
	stats->overhead_blocks_used = vdo_overhead_blocks(layout) + stats->block_map_data_blocks;
	stats->data_blocks_used =
	    vdo_data_blocks(layout) - stats->free_blocks - stats->block_map_data_blocks;
	stats->logical_blocks_used = action.journal.logical_blocks_used;
	stats->read_only = atomic_load(&store->read_only);
	stats->slabs_recovering = vdo_depot_slabs_recovering(store->depot);
	stats->operating_mode = stats->read_only                ? "read-only"
	                        : (stats->slabs_recovering > 0) ? "recovering"
	                                                        : "normal";
	stats->recovery_count = store->super.recovery_count;
	stats->read_only_rebuild_count = store->super.read_only_rebuild_count;
	stats->slab_count = layout->slab_count;
	stats->recovery_entries = store->recovery_entries;
	stats->slabs_recovered_before_online = store->slabs_recovered_before_online;
	stats->reads = atomic_load(&store->reads);
	stats->writes = atomic_load(&store->writes);
	stats->zero_writes = atomic_load(&store->zero_writes);
	stats->partial_writes = atomic_load(&store->partial_writes);
	stats->discards = atomic_load(&store->discards);
	stats->flushes = atomic_load(&store->flushes);
	stats->read_hits_in_flight = atomic_load(&store->read_hits_in_flight);
	stats->journal_entries = action.journal.entries;
	stats->journal_writes = action.journal.writes;
	stats->journal_waits_for_space = action.journal.waits_for_space;
	stats->journal_head = action.journal.head;
	stats->journal_tail = action.journal.tail;
	stats->device_reads = device.reads;
	stats->device_writes = device.writes;
	stats->device_flushes = device.flushes;
	get_dedupe_stats(store, stats);
}
