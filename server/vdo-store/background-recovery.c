// SPDX-License-Identifier: GPL-2.0-only
/*
 * Background recovery; see background-recovery.h.
 *
 * The recovery thread owns the list of slabs to do and the slabs asked for; it recovers one
 * slab per turn of its completion, which goes back through the thread's queue between slabs so
 * that requests to hurry a slab are seen. Slabs come back to their zones through their summary
 * update, whose completion continues on the slab's thread.
 */
#include "background-recovery.h"

#include <stdatomic.h>
#include <stddef.h>

#include "logger.h"
#include "memory-alloc.h"
#include "time-utils.h"

struct vdo_background_recovery {
	struct vdo_background_config config;
	struct vdo_recovery *recovery;
	/* Recovery thread: the slabs to do, emptiest first; those asked for (a stack); which
	 * have been taken. */
	uint32_t *order;
	uint32_t count;
	uint32_t next;
	uint32_t *hurried;
	uint32_t hurried_count;
	bool *taken;
	bool paused;
	atomic_bool rushed;
	struct dd_completion step;
	/* Slabs not back in their zones yet. */
	atomic_uint left;
	dd_ktime_t started;
};

int vdo_recover_first_slabs(const struct vdo_recovery *recovery, struct vdo_slab_depot *depot,
                            uint32_t *count_ptr)
{
	int result = DD_SUCCESS;

	*count_ptr = 0;
	for (unsigned int z = 0; (result == DD_SUCCESS) && (z < vdo_depot_zone_count(depot)); z++) {
		struct vdo_slab *slab;

		while ((result == DD_SUCCESS) &&
		       ((slab = vdo_first_slab_to_recover(depot, z)) != NULL)) {
			result = vdo_recover_slab(recovery, slab);
			if (result == DD_SUCCESS) {
				vdo_slab_recovered_early(depot, slab);
				(*count_ptr)++;
			}
		}
	}
	if ((result == DD_SUCCESS) && (*count_ptr > 0))
		result = vdo_save_slab_summary(vdo_depot_summary(depot));
	return result;
}

static struct vdo_slab *slab_of_summary_update(struct dd_completion *completion)
{
	return (struct vdo_slab *) ((char *) completion -
	                            offsetof(struct vdo_slab, journal.summary_update.completion));
}

/* Any thread: every slab is back; give the journal its blocks. */
static void finish(struct vdo_background_recovery *background)
{
	const struct vdo_background_config *config = &background->config;

	for (vdo_sequence_t s = config->first_locked; s < config->end_locked; s++)
		vdo_release_journal_lock(config->locks, s);
	dd_log_info("background recovery done: %u slabs in %.3f s", background->count,
	            dd_seconds_between(background->started, dd_monotonic_ns()));
	config->done(config->context);
}

/* The slab's thread: the summary has its entry (or recovery failed); the slab goes home. */
static void slab_back(struct dd_completion *completion)
{
	struct vdo_background_recovery *background = completion->parent;
	struct vdo_slab *slab = slab_of_summary_update(completion);

	vdo_slab_back_from_recovery(background->config.depot, slab, completion->result);
	if (atomic_fetch_sub(&background->left, 1) == 1)
		finish(background);
}

/* Recovery thread: write @slab's summary entry, then hand it back. */
static void hand_back(struct vdo_background_recovery *background, struct vdo_slab *slab, int result)
{
	struct vdo_summary_update *update = &slab->journal.summary_update;

	dd_prepare_completion(&update->completion, slab_back, NULL, slab->thread, background);
	if (result != DD_SUCCESS) {
		dd_continue_completion(&update->completion, result);
		return;
	}
	update->slab = slab->number;
	update->entry = vdo_clean_summary_entry(slab);
	vdo_update_slab_summary(slab->context->summary, update);
}

/* Recovery thread: the next slab to do, or NULL. */
static struct vdo_slab *next_slab(struct vdo_background_recovery *background)
{
	uint32_t number;

	while (background->hurried_count > 0) {
		number = background->hurried[--background->hurried_count];
		if (!background->taken[number])
			return vdo_depot_slab(background->config.depot, number);
	}
	while (background->next < background->count) {
		number = background->order[background->next++];
		if (!background->taken[number])
			return vdo_depot_slab(background->config.depot, number);
	}
	return NULL;
}

/* Go round the recovery thread's queue again. */
static void requeue(struct dd_completion *completion)
{
	dd_reset_completion(completion);
	completion->requeue = true;
	dd_launch_completion(completion);
}

static void recover_next(struct dd_completion *completion)
{
	struct vdo_background_recovery *background = completion->parent;
	struct vdo_slab *slab;
	int result;

	if ((background->config.pause_ns > 0) && !background->paused &&
	    !atomic_load(&background->rushed) && (background->hurried_count == 0) &&
	    (background->next < background->count)) {
		/* Asks to hurry a slab that came meanwhile are seen before the next slab. */
		dd_sleep_ns(background->config.pause_ns);
		background->paused = true;
		requeue(completion);
		return;
	}
	background->paused = false;
	slab = next_slab(background);
	if (slab == NULL) {
		/* Every slab is recovered: the changes are not needed any more. */
		vdo_free_recovery(background->recovery);
		background->recovery = NULL;
		return;
	}
	background->taken[slab->number] = true;
	result = atomic_load(background->config.read_only)
	             ? DD_READ_ONLY
	             : vdo_recover_slab(background->recovery, slab);
	hand_back(background, slab, result);
	/* Through the queue, so that requests to hurry a slab come in between. */
	requeue(completion);
}

/* Recovery thread: a slab is wanted; it goes next. */
static void hurry(struct dd_completion *completion)
{
	struct vdo_background_recovery *background = completion->parent;
	struct vdo_slab *slab =
	    (struct vdo_slab *) ((char *) completion - offsetof(struct vdo_slab, hurry_completion));

	if (!background->taken[slab->number])
		background->hurried[background->hurried_count++] = slab->number;
}

void vdo_hurry_slab_recovery(struct vdo_background_recovery *background, struct vdo_slab *slab)
{
	dd_prepare_completion(&slab->hurry_completion, hurry, NULL, background->config.thread,
	                      background);
	dd_launch_completion(&slab->hurry_completion);
}

/* The slabs to do, those the summary says are emptiest first. */
static int list_slabs(struct vdo_background_recovery *background)
{
	struct vdo_slab_depot *depot = background->config.depot;
	uint32_t slabs = vdo_depot_slab_count(depot);
	int result = DD_ALLOCATE(slabs, uint32_t, "slabs to recover", &background->order);

	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(slabs, uint32_t, "slabs hurried", &background->hurried);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(slabs, bool, "slabs taken", &background->taken);
	if (result != DD_SUCCESS)
		return result;
	for (uint32_t s = 0; s < slabs; s++) {
		struct vdo_slab *slab = vdo_depot_slab(depot, s);
		uint32_t i = background->count++;

		if (!slab->recovering) {
			background->count--;
			continue;
		}
		/* Insertion, keeping the emptiest first. */
		while ((i > 0) && (vdo_depot_slab(depot, background->order[i - 1])->free_estimate <
		                   slab->free_estimate)) {
			background->order[i] = background->order[i - 1];
			i--;
		}
		background->order[i] = s;
	}
	return DD_SUCCESS;
}

int vdo_start_background_recovery(const struct vdo_background_config *config,
                                  struct vdo_recovery *recovery,
                                  struct vdo_background_recovery **background_ptr)
{
	struct vdo_background_recovery *background;
	int result = dd_allocate(sizeof(*background), "background recovery", &background);

	if (result != DD_SUCCESS)
		return result;
	background->config = *config;
	result = list_slabs(background);
	if (result != DD_SUCCESS) {
		vdo_free_background_recovery(background);
		return result;
	}
	background->recovery = recovery;
	background->started = dd_monotonic_ns();
	atomic_store(&background->left, background->count);
	for (vdo_sequence_t s = config->first_locked; s < config->end_locked; s++)
		vdo_acquire_journal_lock(config->locks, s, 1);
	*background_ptr = background;
	dd_log_info("recovering %u slabs in the background", background->count);
	dd_initialize_completion(&background->step, config->threads);
	dd_prepare_completion(&background->step, recover_next, NULL, config->thread, background);
	if (background->count == 0) {
		finish(background);
		return DD_SUCCESS;
	}
	background->step.requeue = true;
	dd_launch_completion(&background->step);
	return DD_SUCCESS;
}

void vdo_rush_background_recovery(struct vdo_background_recovery *background)
{
	atomic_store(&background->rushed, true);
}

void vdo_free_background_recovery(struct vdo_background_recovery *background)
{
	if (background == NULL)
		return;
	vdo_free_recovery(background->recovery);
	dd_free(background->order);
	dd_free(background->hurried);
	dd_free(background->taken);
	dd_free(background);
}
