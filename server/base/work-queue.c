// SPDX-License-Identifier: GPL-2.0-only
/*
 * Zone threads: queues, the idle policy, manual mode and shutdown.
 *
 * Each zone has a funnel queue of completions, consumed by its thread alone. The zone thread's
 * loop is: poll; if nothing is ready, poll for up to spin_ns (with a pause instruction between
 * polls); if still nothing, sleep on a futex until a producer wakes it.
 *
 * Why spin, and why yield while spinning. On an idle machine a futex wake-up costs from a few
 * microseconds (bare metal) to 10-20 us (a VM whose idle vCPU has halted), which is more than
 * a whole index request should take. A thread that was busy a moment ago is likely to get more
 * work soon (the next stage of the same request), so it polls for a while first; a hop between
 * two polling threads costs a few hundred nanoseconds. But when there are more runnable
 * threads than CPUs, a spinner holds a CPU that the very thread about to send it work may be
 * waiting for. So the spinner calls sched_yield() every SPIN_YIELD_NS: nearly free when nothing
 * else wants the CPU, and it bounds the damage to about that long when something does. Set
 * spin_ns to 0 where zone threads always outnumber CPUs.
 *
 * Sleeping without losing a wake-up. The futex word is the zone's @sleeping flag.
 *   consumer:  store(sleeping, 1)             producer:  put (exchange on the queue's tail)
 *              if the queue is not idle,                 if load(sleeping) == 1 and
 *                  store(sleeping, 0), go on                exchange(sleeping, 0) == 1,
 *              futex_wait(sleeping, 1)                      futex_wake(sleeping)
 * The four marked operations are sequentially consistent (the idle check ends with a seq_cst
 * load of the tail), so they fall into one total order. If the consumer's idle check misses
 * the producer's exchange, the check came first in that order, so the consumer's store of 1
 * came before the producer's load of the flag: the producer sees 1 and wakes the consumer. If
 * the wake-up comes before the consumer reaches futex_wait(), the kernel sees the flag is no
 * longer 1 and returns at once. Only producers clear the flag of a sleeping thread, so a
 * spurious return from futex_wait() with the flag still at 1 means "check again and sleep on".
 * A producer thus makes a system call only when the consumer has raised its flag, and the
 * busy path costs the producer one extra load of a line the consumer rarely writes.
 *
 * Draining. dd_free_thread_set() must run everything that is queued, including completions
 * queued by completions that are running. Each zone counts completions enqueued (by producers,
 * before the put) and completions run (by the zone thread, after the callback returns), both
 * with sequentially consistent operations. The set is quiescent when the sum of the run
 * counters, read first, equals the sum of the enqueued counters, read afterwards: the counters
 * only grow, so equality means that at the moment between the two sweeps nothing was queued or
 * running, and since only running completions (and outside threads, which must have stopped)
 * enqueue, nothing ever will be. The freeing thread checks this, sleeping briefly between
 * checks, then tells each thread to stop and joins it.
 *
 * Work outside the set. A zone thread may hand work to something outside the set (a device
 * request, a call to another service) whose answer comes back later as a completion launched
 * from a foreign thread. Such work counts as one more "enqueue" when it is handed out
 * (dd_begin_external_work(), before it can come back) and one more "run" once its answer has
 * been launched (dd_end_external_work()), so the same two sweeps see it: the set is not
 * quiescent while anything it handed out is still out, or while the completion it came back
 * as is queued or running. Asking the outside party whether it is idle instead is not enough:
 * an answer that comes back between that question and the look at the queues is missed, and
 * its completion runs on after the set was declared idle.
 *
 * Current thread. A thread-local pointer names the zone the caller is serving; zone threads set
 * it once, manual mode sets it around each completion it runs.
 */
#include "work-queue.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "completion.h"
#include "funnel-queue.h"
#include "futex.h"
#include "logger.h"
#include "memory-alloc.h"
#include "permassert.h"
#include "time-utils.h"

enum {
	/* Polls between two looks at the clock while spinning. */
	POLLS_PER_CLOCK_CHECK = 32,
	/* How often a spinning thread yields, in case other threads wait for its CPU. */
	SPIN_YIELD_NS = 2 * 1000,
	/* How long the freeing thread sleeps between checks for quiescence. */
	DRAIN_CHECK_NS = 50 * 1000,
};

struct zone_thread {
	/* Written by producers on every enqueue. */
	atomic_uint_least64_t enqueued;
	atomic_uint_least64_t wakeups;
	/* The futex word: 1 while the thread is (about to be) asleep. */
	atomic_uint sleeping;
	char producer_padding[DD_CACHE_LINE_SIZE];
	struct dd_funnel_queue queue;
	char consumer_padding[DD_CACHE_LINE_SIZE];
	/* Written by the zone thread (or the manual runner). */
	atomic_uint_least64_t run;
	atomic_uint_least64_t sleeps;
	/* Set when the thread must exit once its queue is idle. */
	atomic_bool stopping;
	struct dd_thread_set *set;
	dd_thread_id_t id;
	bool started;
	pthread_t thread;
	char name[DD_THREAD_NAME_MAX + 1];
};

struct dd_thread_set {
	struct zone_thread *zones;
	unsigned int count;
	enum dd_thread_set_mode mode;
	int64_t spin_ns;
	void (*prefetch)(struct dd_completion *completion, unsigned int stage);
	/* Manual mode: someone is inside dd_thread_set_run_until_idle(). */
	atomic_bool manual_running;
	/* Work handed outside the set, and work come back (see the top of this file). */
	atomic_uint_least64_t external_begun;
	atomic_uint_least64_t external_ended;
};

static _Thread_local struct zone_thread *current_zone;

static struct dd_completion *completion_of(struct dd_funnel_queue_entry *entry)
{
	return (struct dd_completion *) ((char *) entry - offsetof(struct dd_completion, entry));
}

/* Load a counter that other threads may read. */
static uint64_t load_counter(const atomic_uint_least64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

/* Add one to a counter that only the calling thread writes. */
static void bump_private_counter(atomic_uint_least64_t *counter, memory_order order)
{
	atomic_store_explicit(counter, load_counter(counter) + 1, order);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Producer side: wake @zone if it has raised its sleeping flag. */
static void wake_if_sleeping(struct zone_thread *zone)
{
	if (atomic_load_explicit(&zone->sleeping, memory_order_seq_cst) == 0)
		return;
	if (atomic_exchange_explicit(&zone->sleeping, 0, memory_order_seq_cst) == 0)
		return;
	atomic_fetch_add_explicit(&zone->wakeups, 1, memory_order_relaxed);
	dd_futex_wake(&zone->sleeping);
}

void dd_enqueue_completion(struct dd_completion *completion)
{
	struct dd_thread_set *set = completion->thread_set;
	dd_thread_id_t id = completion->callback_thread_id;
	struct zone_thread *zone;

	if (DD_ASSERT((set != NULL) && (id < set->count), "completion %p names thread %u of %u",
	              (void *) completion, id, (set != NULL) ? set->count : 0) != DD_SUCCESS)
		return;
	if (DD_ASSERT(!completion->enqueued, "completion %p is not queued twice",
	              (void *) completion) != DD_SUCCESS)
		return;
	completion->enqueued = true;
	zone = &set->zones[id];
	atomic_fetch_add_explicit(&zone->enqueued, 1, memory_order_seq_cst);
	dd_funnel_queue_put(&zone->queue, &completion->entry);
	if (set->mode == DD_THREAD_SET_REAL)
		wake_if_sleeping(zone);
}

/* Consumer side: run one completion taken from @zone's queue, then count it. */
static void run_entry(struct zone_thread *zone, struct dd_funnel_queue_entry *entry)
{
	struct dd_completion *completion = completion_of(entry);

	completion->enqueued = false;
	dd_run_completion(completion);
	/* Not before: the drain check must see a running completion as unfinished. */
	bump_private_counter(&zone->run, memory_order_seq_cst);
}

/* Poll a few times, pausing between polls. */
static struct dd_funnel_queue_entry *poll_a_few_times(struct zone_thread *zone)
{
	struct dd_funnel_queue_entry *entry;

	for (int i = 0; i < POLLS_PER_CLOCK_CHECK; i++) {
		entry = dd_funnel_queue_poll(&zone->queue);
		if (entry != NULL)
			return entry;
		cpu_relax();
	}
	return NULL;
}

/* Poll for up to the set's spin time, yielding the CPU every SPIN_YIELD_NS. */
static struct dd_funnel_queue_entry *spin_for_work(struct zone_thread *zone)
{
	dd_ktime_t now;
	dd_ktime_t deadline;
	dd_ktime_t next_yield;
	struct dd_funnel_queue_entry *entry;

	if (zone->set->spin_ns <= 0)
		return NULL;
	now = dd_monotonic_ns();
	deadline = now + zone->set->spin_ns;
	next_yield = now + SPIN_YIELD_NS;
	do {
		entry = poll_a_few_times(zone);
		if (entry != NULL)
			return entry;
		now = dd_monotonic_ns();
		if (now >= next_yield) {
			sched_yield();
			next_yield = now + SPIN_YIELD_NS;
		}
	} while (now < deadline);
	return NULL;
}

static bool should_stop(struct zone_thread *zone)
{
	return atomic_load_explicit(&zone->stopping, memory_order_seq_cst);
}

/* Sleep until a producer (or the stopper) wakes us, unless work or a stop is already there. */
static void sleep_until_woken(struct zone_thread *zone)
{
	atomic_store_explicit(&zone->sleeping, 1, memory_order_seq_cst);
	for (;;) {
		if (!dd_funnel_queue_is_idle(&zone->queue) || should_stop(zone)) {
			atomic_store_explicit(&zone->sleeping, 0, memory_order_relaxed);
			return;
		}
		bump_private_counter(&zone->sleeps, memory_order_relaxed);
		/* EAGAIN (the flag changed) and EINTR are answered by the re-check below. */
		dd_futex_wait(&zone->sleeping, 1);
		if (atomic_load_explicit(&zone->sleeping, memory_order_seq_cst) == 0)
			return;
	}
}

/* The next completion for @zone, or NULL once it must stop and its queue is idle. */
static struct dd_funnel_queue_entry *next_entry(struct zone_thread *zone)
{
	struct dd_funnel_queue_entry *entry = dd_funnel_queue_poll(&zone->queue);

	if (entry != NULL)
		return entry;
	entry = spin_for_work(zone);
	while (entry == NULL) {
		if (dd_funnel_queue_is_idle(&zone->queue)) {
			if (should_stop(zone))
				return NULL;
			sleep_until_woken(zone);
		} else {
			/* A put is half done; its producer, maybe preempted, is one store away. */
			sched_yield();
		}
		entry = dd_funnel_queue_poll(&zone->queue);
	}
	return entry;
}

/*
 * The loop of a zone thread with a prefetch hook: keep up to DD_LOOKAHEAD completions taken
 * from the queue in a ring, in order, and run the oldest; each is shown to the hook when taken
 * and again when it is next to run.
 */
static void run_with_lookahead(struct zone_thread *zone)
{
	void (*prefetch)(struct dd_completion *, unsigned int) = zone->set->prefetch;
	struct dd_funnel_queue_entry *ring[DD_LOOKAHEAD];
	unsigned int head = 0;
	unsigned int count = 0;

	for (;;) {
		struct dd_funnel_queue_entry *entry;

		while ((count < DD_LOOKAHEAD) &&
		       ((entry = dd_funnel_queue_poll(&zone->queue)) != NULL)) {
			ring[(head + count) % DD_LOOKAHEAD] = entry;
			count++;
			prefetch(completion_of(entry), 0);
		}
		if (count == 0) {
			entry = next_entry(zone);
			if (entry == NULL)
				return;
			ring[head] = entry;
			count = 1;
		}
		entry = ring[head];
		head = (head + 1) % DD_LOOKAHEAD;
		count--;
		if (count > 0)
			prefetch(completion_of(ring[head]), 1);
		run_entry(zone, entry);
	}
}

static void *zone_thread_main(void *argument)
{
	struct zone_thread *zone = argument;
	struct dd_funnel_queue_entry *entry;

	current_zone = zone;
	dd_log_set_thread_name(zone->name);
	/* The kernel's name helps top and gdb; failing to set it is harmless. */
	pthread_setname_np(pthread_self(), zone->name);
	if (zone->set->prefetch != NULL)
		run_with_lookahead(zone);
	else
		while ((entry = next_entry(zone)) != NULL)
			run_entry(zone, entry);
	current_zone = NULL;
	return NULL;
}

static void name_zone(struct zone_thread *zone, const struct dd_thread_set_config *config)
{
	if (config->thread_names != NULL)
		snprintf(zone->name, sizeof(zone->name), "%s", config->thread_names[zone->id]);
	else
		snprintf(zone->name, sizeof(zone->name), "%s%u",
		         (config->name != NULL) ? config->name : "zone", zone->id);
}

static int start_zone_thread(struct zone_thread *zone)
{
	int result = pthread_create(&zone->thread, NULL, zone_thread_main, zone);

	if (result != 0)
		return dd_log_error_strerror(result, "cannot start zone thread %s", zone->name);
	zone->started = true;
	return DD_SUCCESS;
}

static int check_config(const struct dd_thread_set_config *config)
{
	if ((config->thread_count == 0) || (config->thread_count >= DD_INVALID_THREAD_ID))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad zone thread count %u",
		                             config->thread_count);
	if ((config->mode != DD_THREAD_SET_REAL) && (config->mode != DD_THREAD_SET_MANUAL))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad thread set mode %d",
		                             (int) config->mode);
	return DD_SUCCESS;
}

static void initialize_zone(struct dd_thread_set *set, dd_thread_id_t id,
                            const struct dd_thread_set_config *config)
{
	struct zone_thread *zone = &set->zones[id];

	zone->set = set;
	zone->id = id;
	atomic_init(&zone->enqueued, 0);
	atomic_init(&zone->wakeups, 0);
	atomic_init(&zone->sleeping, 0);
	atomic_init(&zone->run, 0);
	atomic_init(&zone->sleeps, 0);
	atomic_init(&zone->stopping, false);
	dd_funnel_queue_initialize(&zone->queue);
	name_zone(zone, config);
}

static int allocate_thread_set(const struct dd_thread_set_config *config,
                               struct dd_thread_set **set_ptr)
{
	struct dd_thread_set *set;
	int result;

	result = dd_allocate(sizeof(*set), "thread set", &set);
	if (result != DD_SUCCESS)
		return result;
	result = dd_allocate_aligned(config->thread_count * sizeof(struct zone_thread),
	                             DD_CACHE_LINE_SIZE, "zone threads", &set->zones);
	if (result != DD_SUCCESS) {
		dd_free(set);
		return result;
	}
	set->count = config->thread_count;
	set->mode = config->mode;
	set->spin_ns = config->spin_ns;
	set->prefetch = config->prefetch;
	atomic_init(&set->manual_running, false);
	atomic_init(&set->external_begun, 0);
	atomic_init(&set->external_ended, 0);
	for (dd_thread_id_t id = 0; id < set->count; id++)
		initialize_zone(set, id, config);
	*set_ptr = set;
	return DD_SUCCESS;
}

int dd_make_thread_set(const struct dd_thread_set_config *config, struct dd_thread_set **set_ptr)
{
	struct dd_thread_set *set;
	int result;

	result = check_config(config);
	if (result != DD_SUCCESS)
		return result;
	result = allocate_thread_set(config, &set);
	if (result != DD_SUCCESS)
		return result;
	for (dd_thread_id_t id = 0; (id < set->count) && (set->mode == DD_THREAD_SET_REAL); id++) {
		result = start_zone_thread(&set->zones[id]);
		if (result != DD_SUCCESS) {
			dd_free_thread_set(set);
			return result;
		}
	}
	*set_ptr = set;
	return DD_SUCCESS;
}

/* Tell whether nothing is queued or running anywhere in @set (see the top of this file). */
static bool is_quiescent(const struct dd_thread_set *set)
{
	uint64_t run = atomic_load_explicit(&set->external_ended, memory_order_seq_cst);
	uint64_t enqueued;

	for (unsigned int i = 0; i < set->count; i++)
		run += atomic_load_explicit(&set->zones[i].run, memory_order_seq_cst);
	enqueued = atomic_load_explicit(&set->external_begun, memory_order_seq_cst);
	for (unsigned int i = 0; i < set->count; i++)
		enqueued += atomic_load_explicit(&set->zones[i].enqueued, memory_order_seq_cst);
	return run == enqueued;
}

/* Tell whether anything handed outside @set has not come back yet. */
static bool has_external_work(struct dd_thread_set *set)
{
	uint64_t ended = atomic_load_explicit(&set->external_ended, memory_order_seq_cst);

	return atomic_load_explicit(&set->external_begun, memory_order_seq_cst) != ended;
}

void dd_begin_external_work(struct dd_thread_set *set)
{
	atomic_fetch_add_explicit(&set->external_begun, 1, memory_order_seq_cst);
}

void dd_end_external_work(struct dd_thread_set *set)
{
	atomic_fetch_add_explicit(&set->external_ended, 1, memory_order_seq_cst);
}

/* Manual mode: run the queues dry, and again whenever work handed outside comes back. */
static int run_until_settled(struct dd_thread_set *set)
{
	for (;;) {
		int result = dd_thread_set_run_until_idle(set, NULL);

		if ((result != DD_SUCCESS) || !has_external_work(set))
			return result;
		dd_sleep_ns(DRAIN_CHECK_NS);
	}
}

int dd_thread_set_wait_until_idle(struct dd_thread_set *set)
{
	int result = DD_ASSERT(dd_current_thread_set() != set,
	                       "a thread set is not waited for by its own zone thread");

	if (result != DD_SUCCESS)
		return result;
	if (set->mode == DD_THREAD_SET_MANUAL)
		return run_until_settled(set);
	while (!is_quiescent(set))
		dd_sleep_ns(DRAIN_CHECK_NS);
	return DD_SUCCESS;
}

static void stop_zone_thread(struct zone_thread *zone)
{
	atomic_store_explicit(&zone->stopping, true, memory_order_seq_cst);
	atomic_store_explicit(&zone->sleeping, 0, memory_order_seq_cst);
	dd_futex_wake(&zone->sleeping);
	pthread_join(zone->thread, NULL);
}

void dd_free_thread_set(struct dd_thread_set *set)
{
	if (set == NULL)
		return;
	/* Leaking is the only safe answer to a set freed by its own thread or mid-run. */
	if (dd_thread_set_wait_until_idle(set) != DD_SUCCESS)
		return;
	for (unsigned int i = 0; i < set->count; i++) {
		if (set->zones[i].started)
			stop_zone_thread(&set->zones[i]);
	}
	dd_free(set->zones);
	dd_free(set);
}

/* One round-robin pass of manual mode. Return the number of completions run. */
static uint64_t run_one_round(struct dd_thread_set *set, bool *busy_ptr)
{
	uint64_t count = 0;

	for (unsigned int i = 0; i < set->count; i++) {
		struct zone_thread *zone = &set->zones[i];
		struct dd_funnel_queue_entry *entry = dd_funnel_queue_poll(&zone->queue);

		if (entry != NULL) {
			current_zone = zone;
			run_entry(zone, entry);
			count++;
		}
		if (!dd_funnel_queue_is_idle(&zone->queue))
			*busy_ptr = true;
	}
	return count;
}

int dd_thread_set_run_until_idle(struct dd_thread_set *set, uint64_t *count_ptr)
{
	struct zone_thread *saved_zone = current_zone;
	uint64_t count = 0;
	bool busy = true;

	if (set->mode != DD_THREAD_SET_MANUAL)
		return dd_log_error_strerror(DD_BAD_STATE, "thread set is not in manual mode");
	if (atomic_exchange(&set->manual_running, true))
		return dd_log_error_strerror(DD_BAD_STATE, "thread set is already being run");
	while (busy) {
		busy = false;
		count += run_one_round(set, &busy);
	}
	current_zone = saved_zone;
	atomic_store(&set->manual_running, false);
	if (count_ptr != NULL)
		*count_ptr = count;
	return DD_SUCCESS;
}

unsigned int dd_thread_set_count(const struct dd_thread_set *set)
{
	return set->count;
}

bool dd_thread_set_is_manual(const struct dd_thread_set *set)
{
	return set->mode == DD_THREAD_SET_MANUAL;
}

const char *dd_thread_set_thread_name(const struct dd_thread_set *set, dd_thread_id_t thread_id)
{
	return (thread_id < set->count) ? set->zones[thread_id].name : NULL;
}

int dd_thread_set_get_stats(const struct dd_thread_set *set, dd_thread_id_t thread_id,
                            struct dd_zone_thread_stats *stats_ptr)
{
	const struct zone_thread *zone;

	if (thread_id >= set->count)
		return DD_INVALID_ARGUMENT;
	zone = &set->zones[thread_id];
	*stats_ptr = (struct dd_zone_thread_stats){
		.enqueued = load_counter(&zone->enqueued),
		.run = load_counter(&zone->run),
		.sleeps = load_counter(&zone->sleeps),
		.wakeups = load_counter(&zone->wakeups),
	};
	return DD_SUCCESS;
}

dd_thread_id_t dd_current_thread_id(void)
{
	return (current_zone != NULL) ? current_zone->id : DD_INVALID_THREAD_ID;
}

struct dd_thread_set *dd_current_thread_set(void)
{
	return (current_zone != NULL) ? current_zone->set : NULL;
}

bool dd_is_on_thread(const struct dd_thread_set *set, dd_thread_id_t thread_id)
{
	return (current_zone != NULL) && (current_zone->set == set) &&
	       (current_zone->id == thread_id);
}

int dd_assert_on_thread(const struct dd_thread_set *set, dd_thread_id_t thread_id, const char *what)
{
	return DD_ASSERT(dd_is_on_thread(set, thread_id),
	                 "%s must run on zone thread %u, not on %s", what, thread_id,
	                 (current_zone != NULL) ? current_zone->name : "a non-zone thread");
}
