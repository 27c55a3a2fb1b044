/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Time in nanoseconds as plain 64-bit integers, on the monotonic clock unless stated otherwise.
 */
#ifndef DD_TIME_UTILS_H
#define DD_TIME_UTILS_H

#include <stdint.h>
#include <time.h>

typedef int64_t dd_ktime_t;

enum {
	DD_NSEC_PER_USEC = 1000,
	DD_NSEC_PER_MSEC = 1000 * 1000,
	DD_NSEC_PER_SEC = 1000 * 1000 * 1000,
};

/** dd_current_time_ns() - The time of @clock (CLOCK_MONOTONIC, CLOCK_REALTIME...) in ns. */
static inline dd_ktime_t dd_current_time_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (dd_ktime_t) now.tv_sec * DD_NSEC_PER_SEC + now.tv_nsec;
}

/** dd_monotonic_ns() - Nanoseconds on the monotonic clock. */
static inline dd_ktime_t dd_monotonic_ns(void)
{
	return dd_current_time_ns(CLOCK_MONOTONIC);
}

/** dd_thread_cpu_ns() - CPU time consumed by the calling thread, in ns. */
static inline dd_ktime_t dd_thread_cpu_ns(void)
{
	return dd_current_time_ns(CLOCK_THREAD_CPUTIME_ID);
}

/** dd_process_cpu_ns() - CPU time consumed by the whole process, in ns. */
static inline dd_ktime_t dd_process_cpu_ns(void)
{
	return dd_current_time_ns(CLOCK_PROCESS_CPUTIME_ID);
}

/** dd_ns_to_timespec() - Convert nanoseconds to a struct timespec. */
static inline struct timespec dd_ns_to_timespec(dd_ktime_t ns)
{
	return (struct timespec){ .tv_sec = ns / DD_NSEC_PER_SEC, .tv_nsec = ns % DD_NSEC_PER_SEC };
}

/** dd_seconds_between() - Seconds (as a double) from @start to @end, both in ns. */
static inline double dd_seconds_between(dd_ktime_t start, dd_ktime_t end)
{
	return (double) (end - start) / DD_NSEC_PER_SEC;
}

/**
 * dd_sleep_ns() - Sleep for at least @ns nanoseconds, resuming after signals.
 */
void dd_sleep_ns(dd_ktime_t ns);

#endif /* DD_TIME_UTILS_H */
