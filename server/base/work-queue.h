/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Zone threads: the threads that run completions.
 *
 * Both daemons follow dm-vdo's model: every structure belongs to exactly one zone, every zone is
 * served by exactly one thread, and work moves between zones as completions (completion.h).
 * A thread set is a fixed group of N named zone threads with ids 0..N-1. Each owns a funnel
 * queue of completions and runs them one at a time, in the order they arrived, so code running
 * on a zone thread owns that zone's data without locks. Code asserts where it runs with
 * dd_assert_on_thread().
 *
 * Idle policy. A zone thread whose queue is empty polls it for a short while (spin_ns, 20 us by
 * default, yielding the CPU every 2 us in case another thread wants it) and then sleeps on a
 * futex. Producers pay for a wake-up system call only when the
 * thread really sleeps: the thread raises a "sleeping" flag, checks its queue once more, and
 * only then waits, while a producer checks the flag after its put. Both sides use sequentially
 * consistent operations, so one of them always sees the other (work-queue.c explains why).
 *
 * Manual mode, for unit tests. The same thread set with no OS threads: completions queue up
 * until the test calls dd_thread_set_run_until_idle(), which runs them on the caller's thread,
 * visiting the zones round-robin and taking one completion from each per round, with the
 * current-thread id set to the zone being served. The order of execution is fully determined
 * by the order of the enqueues, and ownership assertions behave as they do with real threads.
 */
#ifndef DD_WORK_QUEUE_H
#define DD_WORK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

typedef unsigned int dd_thread_id_t;

/* The id reported off zone threads; never a valid zone thread. */
#define DD_INVALID_THREAD_ID ((dd_thread_id_t) -1)

enum {
	/* The default time an idle zone thread polls its queue before sleeping. */
	DD_DEFAULT_SPIN_NS = 20 * 1000,
	/* Longest thread name kept (the kernel's limit is 15 characters). */
	DD_THREAD_NAME_MAX = 15,
};

struct dd_completion;
struct dd_thread_set;

enum dd_thread_set_mode {
	/* One OS thread per zone. */
	DD_THREAD_SET_REAL = 0,
	/* No OS threads: the caller runs queued work with dd_thread_set_run_until_idle(). */
	DD_THREAD_SET_MANUAL,
};

enum {
	/* Completions a zone thread with a prefetch hook takes from its queue ahead of time. */
	DD_LOOKAHEAD = 8,
};

struct dd_thread_set_config {
	/* Prefix of the thread names: zone i is called "<name><i>" unless thread_names is set. */
	const char *name;
	/* Optional: thread_count names, one per zone. */
	const char *const *thread_names;
	/* Number of zone threads, at least 1. */
	unsigned int thread_count;
	/* How long an idle zone thread polls before it sleeps; 0 sleeps at once (best when
	 * zone threads outnumber CPUs). */
	int64_t spin_ns;
	enum dd_thread_set_mode mode;
	/*
	 * Optional, real mode only: the zone thread takes up to DD_LOOKAHEAD completions from its
	 * queue ahead of running them and calls this on each, with stage 0 when it is taken and
	 * stage 1 just before the completion ahead of it runs, so that what the completion will
	 * touch (e.g. a random place in a large table) can be prefetched while other work runs.
	 * It runs on the zone thread and must only read. NULL: completions are taken one by one.
	 */
	void (*prefetch)(struct dd_completion *completion, unsigned int stage);
};

/* Counters of one zone thread, all since the thread set was made. */
struct dd_zone_thread_stats {
	/* Completions put on the zone's queue. */
	uint64_t enqueued;
	/* Completions taken from the queue and run (not counting callbacks run directly). */
	uint64_t run;
	/* Times the thread went to sleep on its futex. */
	uint64_t sleeps;
	/* Wake-up system calls made by producers for this thread. */
	uint64_t wakeups;
};

/**
 * dd_default_thread_set_config() - A configuration with the default spin, real threads.
 * @name: prefix of the thread names.
 * @thread_count: number of zone threads.
 */
static inline struct dd_thread_set_config dd_default_thread_set_config(const char *name,
                                                                       unsigned int thread_count)
{
	/* Every field, in order, so that C++ (the benchmarks) can use this too. */
	struct dd_thread_set_config config = {
		name, NULL, thread_count, DD_DEFAULT_SPIN_NS, DD_THREAD_SET_REAL, NULL
	};

	return config;
}

/**
 * dd_make_thread_set() - Make a thread set and, in real mode, start its threads.
 * @config: the configuration (copied; names are copied too).
 * @set_ptr: receives the new set.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a bad configuration, ENOMEM, or the error from
 * starting a thread.
 */
int DD_MUST_CHECK dd_make_thread_set(const struct dd_thread_set_config *config,
                                     struct dd_thread_set **set_ptr);

/**
 * dd_free_thread_set() - Drain all pending work, stop and join the threads, and free @set.
 *
 * Completions still queued, and those they launch, run first (in manual mode the caller's thread
 * runs them). Threads outside the set must have stopped launching work into it. Must not be
 * called from one of the set's own zone threads. NULL is accepted and ignored.
 */
void dd_free_thread_set(struct dd_thread_set *set);

/**
 * dd_thread_set_wait_until_idle() - Wait until no completion of @set is queued or running and
 * no work it handed outside (dd_begin_external_work()) is still out.
 *
 * In manual mode this runs the queued work, as dd_thread_set_run_until_idle() does, and waits
 * for outside work to come back and runs what it launches. The answer holds only if no thread
 * outside the set launches work meanwhile, other than the answers of outside work. Everything
 * the completions wrote is visible to the caller when this returns.
 *
 * Return: DD_SUCCESS, or DD_ASSERTION_FAILED when called from one of the set's zone threads.
 */
int DD_MUST_CHECK dd_thread_set_wait_until_idle(struct dd_thread_set *set);

/**
 * dd_thread_set_run_until_idle() - Run the queued completions of a manual-mode set on the
 * calling thread until every queue is empty.
 * @set: a set made in DD_THREAD_SET_MANUAL mode.
 * @count_ptr: if not NULL, receives the number of completions taken from the queues.
 *
 * Zones are served round-robin in id order, one completion per zone per round, with
 * dd_current_thread_id() reporting the zone being served.
 *
 * Return: DD_SUCCESS, or DD_BAD_STATE if @set is not in manual mode or is already being run.
 */
int DD_MUST_CHECK dd_thread_set_run_until_idle(struct dd_thread_set *set, uint64_t *count_ptr);

/** dd_thread_set_count() - The number of zone threads in @set. */
unsigned int dd_thread_set_count(const struct dd_thread_set *set);

/** dd_thread_set_is_manual() - Tell whether @set runs in manual mode. */
bool dd_thread_set_is_manual(const struct dd_thread_set *set);

/**
 * dd_thread_set_thread_name() - The name of zone thread @thread_id, or NULL for a bad id.
 */
const char *dd_thread_set_thread_name(const struct dd_thread_set *set, dd_thread_id_t thread_id);

/**
 * dd_thread_set_get_stats() - Read the counters of zone thread @thread_id. Any thread.
 *
 * Each counter is read atomically but the set of them is not a single snapshot.
 *
 * Return: DD_SUCCESS or DD_INVALID_ARGUMENT for a bad id.
 */
int DD_MUST_CHECK dd_thread_set_get_stats(const struct dd_thread_set *set, dd_thread_id_t thread_id,
                                          struct dd_zone_thread_stats *stats_ptr);

/**
 * dd_enqueue_completion() - Queue @completion on the zone thread it names, always through the
 * queue, even when called on that thread. Any thread; lock-free; does not allocate.
 *
 * Wakes the zone thread if it sleeps. @completion must not already be queued.
 */
void dd_enqueue_completion(struct dd_completion *completion);

/**
 * dd_begin_external_work() - Count work that is handed outside @set and will come back as a
 * completion launched from another thread (a device request, a call to another service).
 *
 * Call it before the work can come back (before submitting it). Until the matching
 * dd_end_external_work(), the set is not idle: dd_thread_set_wait_until_idle() and
 * dd_free_thread_set() wait for it. Any thread; lock-free.
 */
void dd_begin_external_work(struct dd_thread_set *set);

/**
 * dd_end_external_work() - The work counted by dd_begin_external_work() has come back.
 *
 * Call it after the completion that carries the answer has been launched (or after the answer
 * has been dropped for good), and touch nothing of the set's owner afterwards: the set may be
 * found idle and freed at once. Any thread; lock-free.
 */
void dd_end_external_work(struct dd_thread_set *set);

/** dd_current_thread_id() - The id of the calling zone thread, or DD_INVALID_THREAD_ID. */
dd_thread_id_t dd_current_thread_id(void);

/** dd_current_thread_set() - The set of the calling zone thread, or NULL off zone threads. */
struct dd_thread_set *dd_current_thread_set(void);

/**
 * dd_is_on_thread() - Tell whether the caller runs as zone thread @thread_id of @set.
 */
bool dd_is_on_thread(const struct dd_thread_set *set, dd_thread_id_t thread_id);

/**
 * dd_assert_on_thread() - Check that the caller runs as zone thread @thread_id of @set.
 * @what: names the code that asserts, for the log.
 *
 * Like DD_ASSERT(), this logs a failure and returns it; callers that can fail an operation
 * should, the others may ignore the value.
 *
 * Return: DD_SUCCESS or DD_ASSERTION_FAILED.
 */
int dd_assert_on_thread(const struct dd_thread_set *set, dd_thread_id_t thread_id,
                        const char *what);

#endif /* DD_WORK_QUEUE_H */
