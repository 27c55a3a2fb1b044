// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sleeping on the monotonic clock with an absolute deadline, so that signals do not lengthen
 * or shorten the sleep.
 */
#include "time-utils.h"

#include <errno.h>

void dd_sleep_ns(dd_ktime_t ns)
{
	struct timespec deadline = dd_ns_to_timespec(dd_monotonic_ns() + ns);

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
		;
}
