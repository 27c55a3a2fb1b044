/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Timers: launch a completion at a given time, for zones that must notice when something they
 * wait for is late (a query the index has not answered).
 *
 * One thread serves all the entries of a timer. An entry is embedded in its owner and armed
 * for a deadline with a completion to launch then; the owner's zone runs that completion and
 * decides what is due. An armed entry counts as its thread set's work outside the set
 * (dd_begin_external_work()) until its completion has been launched or it is cancelled, so
 * that a set is never found idle, and freed, while a timer is about to launch into it. A zone
 * that drains cancels its entry; if the cancel comes too late (the completion is on its way),
 * the zone simply runs it once more.
 *
 * Typical use, one entry per zone: arm it for the earliest deadline of what the zone waits
 * for, if it is not armed already; when its completion runs, handle what is due and arm it
 * again for the next deadline.
 */
#ifndef DD_TIMER_H
#define DD_TIMER_H

#include <stdbool.h>

#include "completion.h"
#include "errors.h"
#include "time-utils.h"

struct dd_timer;

/* An entry, embedded in its owner. Private to the timer once armed. */
struct dd_timer_entry {
	dd_ktime_t deadline;
	struct dd_completion *completion;
	bool armed;
	struct dd_timer_entry *next;
};

/** dd_make_timer() - Start a timer thread named @name. */
int DD_MUST_CHECK dd_make_timer(const char *name, struct dd_timer **timer_ptr);

/**
 * dd_free_timer() - Stop the thread and free @timer (NULL is fine). No entry may be armed.
 */
void dd_free_timer(struct dd_timer *timer);

/**
 * dd_arm_timer() - Launch @completion (prepared by the caller) at @deadline, a time of
 *                  dd_monotonic_ns(). Any thread.
 *
 * @entry must not be armed. @completion must not be queued or launched by anyone else until
 * it runs (or the entry is cancelled).
 */
void dd_arm_timer(struct dd_timer *timer, struct dd_timer_entry *entry,
                  struct dd_completion *completion, dd_ktime_t deadline);

/**
 * dd_cancel_timer() - Disarm @entry. Any thread.
 *
 * Return: true if it was armed and will not fire; false if it was not armed, or its
 *         completion has been (or is being) launched.
 */
bool dd_cancel_timer(struct dd_timer *timer, struct dd_timer_entry *entry);

#endif /* DD_TIMER_H */
