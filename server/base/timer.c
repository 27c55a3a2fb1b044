// SPDX-License-Identifier: GPL-2.0-only
/*
 * Timers; see timer.h.
 *
 * The armed entries form a list sorted by deadline (there are few: one per zone that uses the
 * timer), under a mutex. The thread sleeps on a condition variable on the monotonic clock until
 * the first deadline or until an earlier entry is armed; then it unlinks each entry that is
 * due, marks it disarmed and, outside the mutex, launches its completion and ends the external
 * work the entry stood for. A cancel that finds its entry disarmed knows the launch is on its
 * way (or done) and leaves the rest to it.
 */
#include "timer.h"

#include <pthread.h>
#include <stdio.h>

#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"
#include "work-queue.h"

struct dd_timer {
	pthread_mutex_t mutex;
	pthread_cond_t changed;
	struct dd_timer_entry *first;
	bool stopping;
	pthread_t thread;
	char name[DD_THREAD_NAME_MAX + 1];
};

/* Unlink the first entry if it is due at @now. Mutex held. */
static struct dd_timer_entry *take_due(struct dd_timer *timer, dd_ktime_t now)
{
	struct dd_timer_entry *entry = timer->first;

	if ((entry == NULL) || (entry->deadline > now))
		return NULL;
	timer->first = entry->next;
	entry->armed = false;
	return entry;
}

static void fire(struct dd_timer_entry *entry)
{
	struct dd_completion *completion = entry->completion;
	struct dd_thread_set *set = completion->thread_set;

	dd_launch_completion(completion);
	dd_end_external_work(set);
}

/* Sleep until the first deadline, a change, or a stop. Mutex held. */
static void wait_for_change(struct dd_timer *timer)
{
	struct timespec until;

	if (timer->first == NULL) {
		pthread_cond_wait(&timer->changed, &timer->mutex);
		return;
	}
	until = dd_ns_to_timespec(timer->first->deadline);
	pthread_cond_timedwait(&timer->changed, &timer->mutex, &until);
}

static void *timer_thread(void *argument)
{
	struct dd_timer *timer = argument;

	dd_log_set_thread_name(timer->name);
	pthread_setname_np(pthread_self(), timer->name);
	pthread_mutex_lock(&timer->mutex);
	while (!timer->stopping) {
		struct dd_timer_entry *entry = take_due(timer, dd_monotonic_ns());

		if (entry == NULL) {
			wait_for_change(timer);
			continue;
		}
		pthread_mutex_unlock(&timer->mutex);
		fire(entry);
		pthread_mutex_lock(&timer->mutex);
	}
	pthread_mutex_unlock(&timer->mutex);
	return NULL;
}

int dd_make_timer(const char *name, struct dd_timer **timer_ptr)
{
	struct dd_timer *timer;
	pthread_condattr_t attributes;
	int result = dd_allocate(sizeof(*timer), "timer", &timer);

	if (result != DD_SUCCESS)
		return result;
	snprintf(timer->name, sizeof(timer->name), "%s", name);
	pthread_mutex_init(&timer->mutex, NULL);
	pthread_condattr_init(&attributes);
	pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
	pthread_cond_init(&timer->changed, &attributes);
	pthread_condattr_destroy(&attributes);
	result = pthread_create(&timer->thread, NULL, timer_thread, timer);
	if (result != 0) {
		pthread_cond_destroy(&timer->changed);
		pthread_mutex_destroy(&timer->mutex);
		dd_free(timer);
		return dd_log_error_strerror(result, "cannot start timer thread %s", name);
	}
	*timer_ptr = timer;
	return DD_SUCCESS;
}

void dd_free_timer(struct dd_timer *timer)
{
	if (timer == NULL)
		return;
	pthread_mutex_lock(&timer->mutex);
	if (timer->first != NULL)
		dd_log_error("timer %s is freed with entries armed", timer->name);
	timer->stopping = true;
	pthread_cond_signal(&timer->changed);
	pthread_mutex_unlock(&timer->mutex);
	pthread_join(timer->thread, NULL);
	pthread_cond_destroy(&timer->changed);
	pthread_mutex_destroy(&timer->mutex);
	dd_free(timer);
}

void dd_arm_timer(struct dd_timer *timer, struct dd_timer_entry *entry,
                  struct dd_completion *completion, dd_ktime_t deadline)
{
	struct dd_timer_entry **link;

	dd_begin_external_work(completion->thread_set);
	pthread_mutex_lock(&timer->mutex);
	if (DD_ASSERT(!entry->armed, "timer entry %p is not armed twice", (void *) entry) !=
	    DD_SUCCESS) {
		pthread_mutex_unlock(&timer->mutex);
		dd_end_external_work(completion->thread_set);
		return;
	}
	entry->deadline = deadline;
	entry->completion = completion;
	entry->armed = true;
	link = &timer->first;
	while ((*link != NULL) && ((*link)->deadline <= deadline))
		link = &(*link)->next;
	entry->next = *link;
	*link = entry;
	/* Wake the thread only if it must now wake up earlier. */
	if (timer->first == entry)
		pthread_cond_signal(&timer->changed);
	pthread_mutex_unlock(&timer->mutex);
}

bool dd_cancel_timer(struct dd_timer *timer, struct dd_timer_entry *entry)
{
	struct dd_timer_entry **link;
	bool armed;

	pthread_mutex_lock(&timer->mutex);
	armed = entry->armed;
	if (armed) {
		link = &timer->first;
		while (*link != entry)
			link = &(*link)->next;
		*link = entry->next;
		entry->armed = false;
	}
	pthread_mutex_unlock(&timer->mutex);
	if (armed)
		dd_end_external_work(entry->completion->thread_set);
	return armed;
}
